//! TLS, mutual TLS and authorization on a real `proglog agent` port, with
//! certificates made per test by `proglog`'s own CA code and by `openssl`.
//!
//! Clients: the `proglog` CLI for gRPC (`--ca-file`, `--cert-file`,
//! `--key-file`, `--tls-server-name`) and a small HTTP/1.1-over-TLS client
//! for the HTTP routes.

mod common;

use std::io::{Read as _, Write as _};
use std::net::{IpAddr, Ipv4Addr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use auth::{CertificateAndKey, CertificateAuthority, Validity};
use common::{Node, proglog};

/// Clients of the example policy, each with a certificate from the test CA.
const PRINCIPALS: [&str; 3] = ["root", "reader", "nobody"];

/// A node certificate from `ca` (CN node-0) for 127.0.0.1 and `localhost`.
fn node_certificate(ca: &CertificateAuthority) -> CertificateAndKey {
    ca.issue_node(
        "node-0",
        &["localhost".to_owned()],
        &[IpAddr::V4(Ipv4Addr::LOCALHOST)],
        Validity::days_from_now(1),
    )
    .expect("node certificate")
}

/// Certificates and policies in a temporary directory.
struct Pki {
    dir: tempfile::TempDir,
    ca: CertificateAuthority,
}

impl Pki {
    /// A CA, a node certificate for 127.0.0.1 and `localhost`, and one
    /// client certificate per principal.
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = CertificateAuthority::generate("proglog test CA", Validity::days_from_now(3))
            .expect("CA");
        let pki = Self { dir, ca };
        pki.save("ca", pki.ca.files());
        pki.save("node", &node_certificate(&pki.ca));
        for principal in PRINCIPALS {
            pki.client(principal, Validity::days_from_now(1));
        }
        pki
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes `<name>.pem` and `<name>-key.pem`, replacing earlier ones.
    fn save(&self, name: &str, files: &CertificateAndKey) {
        files
            .write(
                &self.path(&format!("{name}.pem")),
                &self.path(&format!("{name}-key.pem")),
                true,
            )
            .expect("write certificate");
    }

    /// Issues `<name>.pem` for CN `name` with `validity`.
    fn client(&self, name: &str, validity: Validity) {
        let files = self.ca.issue_client(name, validity).expect("client");
        self.save(name, &files);
    }

    fn write_policy(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, text).expect("write policy");
        path
    }

    /// `proglog agent` flags for mutual TLS with this PKI and `policy`.
    fn agent_flags(&self, policy: Option<&Path>) -> Vec<String> {
        let mut flags = vec![
            "--tls-cert-file".to_owned(),
            self.path("node.pem").display().to_string(),
            "--tls-key-file".to_owned(),
            self.path("node-key.pem").display().to_string(),
            "--tls-client-ca-file".to_owned(),
            self.path("ca.pem").display().to_string(),
        ];
        if let Some(policy) = policy {
            flags.push("--acl-policy-file".to_owned());
            flags.push(policy.display().to_string());
        }
        flags
    }

    fn start(&self, policy: Option<&Path>) -> Node {
        let flags = self.agent_flags(policy);
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        Node::start(&self.path("data"), &flags)
    }

    /// The identity `name` as a client: its certificate and key, trusting
    /// the server through `ca`.
    fn identity(&self, ca: &str, name: Option<&str>) -> Identity {
        Identity {
            ca_file: self.path(&format!("{ca}.pem")),
            cert_and_key: name.map(|name| {
                (
                    self.path(&format!("{name}.pem")),
                    self.path(&format!("{name}-key.pem")),
                )
            }),
            server_name: None,
        }
    }
}

/// How a test client authenticates.
#[derive(Clone)]
struct Identity {
    ca_file: PathBuf,
    cert_and_key: Option<(PathBuf, PathBuf)>,
    server_name: Option<String>,
}

impl Identity {
    fn cli_flags(&self) -> Vec<String> {
        let mut flags = vec!["--ca-file".to_owned(), self.ca_file.display().to_string()];
        if let Some((cert, key)) = &self.cert_and_key {
            flags.extend([
                "--cert-file".to_owned(),
                cert.display().to_string(),
                "--key-file".to_owned(),
                key.display().to_string(),
            ]);
        }
        if let Some(name) = &self.server_name {
            flags.extend(["--tls-server-name".to_owned(), name.clone()]);
        }
        flags
    }

    /// Runs `proglog <command> --addr <addr> <TLS flags> <args>`; a call
    /// still running after `PROCESS_TIMEOUT` is killed and fails the test
    /// (a refused handshake must end the call, not hang it).
    fn cli(&self, addr: &str, command: &str, args: &[&str]) -> Output {
        let mut child = proglog()
            .args([command, "--addr", addr])
            .args(self.cli_flags())
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run proglog");
        let pipe = |mut from: Box<dyn std::io::Read + Send>| {
            std::thread::spawn(move || {
                let mut bytes = Vec::new();
                let _ = from.read_to_end(&mut bytes);
                bytes
            })
        };
        let stdout = pipe(Box::new(child.stdout.take().expect("stdout")));
        let stderr = pipe(Box::new(child.stderr.take().expect("stderr")));
        let deadline = std::time::Instant::now() + common::PROCESS_TIMEOUT;
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait for proglog") {
                break status;
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "proglog {command} --addr {addr} still ran after {:?}",
                    common::PROCESS_TIMEOUT
                );
            }
            // A poll interval; the deadline bounds the wait.
            std::thread::sleep(Duration::from_millis(5));
        };
        Output {
            status,
            stdout: stdout.join().expect("stdout reader"),
            stderr: stderr.join().expect("stderr reader"),
        }
    }

    /// One HTTP/1.1 request over TLS: the status, or the error that kept
    /// it from getting one (handshake refused, connection closed).
    fn https(
        &self,
        addr: &str,
        method: &str,
        path: &str,
        body: &str,
    ) -> Result<(u16, String), String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(self.https_async(addr, method, path, body))
    }

    async fn https_async(
        &self,
        addr: &str,
        method: &str,
        path: &str,
        body: &str,
    ) -> Result<(u16, String), String> {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let (cert_file, key_file) = match &self.cert_and_key {
            Some((cert, key)) => (Some(cert.as_path()), Some(key.as_path())),
            None => (None, None),
        };
        let tls = auth::ClientTlsConfig::from_pem_files(
            &self.ca_file,
            cert_file,
            key_file,
            Some(self.server_name.as_deref().unwrap_or("localhost")),
        )
        .map_err(|e| e.to_string())?;
        // HTTP/1.1 only: the text below is not HTTP/2.
        let mut config = (*tls.config).clone();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| e.to_string())?;
        let name = tls
            .server_name_for("localhost")
            .map_err(|e| e.to_string())?;
        let handshake = tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp);
        let mut stream = tokio::time::timeout(common::PROCESS_TIMEOUT, handshake)
            .await
            .map_err(|_| format!("no handshake within {:?}", common::PROCESS_TIMEOUT))?
            .map_err(|e| format!("handshake: {e}"))?;
        let request = format!(
            "{method} {path} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\
             content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| format!("write: {e}"))?;
        let mut response = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response))
            .await
            .map_err(|_| "no response within 10 s".to_owned())?;
        // A clean close after a complete response is fine; an error with
        // nothing read is the refusal.
        if let Err(e) = read
            && response.is_empty()
        {
            return Err(format!("read: {e}"));
        }
        let text = String::from_utf8_lossy(&response).into_owned();
        let status = text
            .strip_prefix("HTTP/1.1 ")
            .and_then(|rest| rest.get(..3))
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| format!("not an HTTP response: {text:?}"))?;
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, body)| body.to_owned())
            .unwrap_or_default();
        Ok((status, body))
    }
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The next offset, as `root` sees it.
fn next_offset(pki: &Pki, addr: &str) -> u64 {
    let output = pki
        .identity("ca", Some("root"))
        .cli(addr, "info", &["--json"]);
    assert!(output.status.success(), "info as root: {}", stderr(&output));
    let info: serde_json::Value = serde_json::from_slice(&output.stdout).expect("info JSON");
    info["nextOffset"].as_u64().expect("nextOffset")
}

/// Asserts the CLI call failed without any output on stdout, on a
/// connection it had made: a transport error, not a TCP connect failure (a
/// client that never reached the server), not a refusal after the
/// handshake, not a usage error. Which TLS alert tonic reports races with
/// the connection closing, so the alert itself is checked over HTTPS
/// ([`assert_https_refused_with`]).
fn assert_refused_at_handshake(output: &Output, case: &str) {
    assert!(!output.status.success(), "{case}: succeeded");
    assert!(
        output.stdout.is_empty(),
        "{case}: printed {}",
        stdout(output)
    );
    let error = stderr(output);
    assert!(
        error.contains("transport error"),
        "{case}: not a transport-level refusal: {error}"
    );
    for after_connecting in ["PERMISSION_DENIED", "UNAUTHENTICATED", "usage"] {
        assert!(
            !error.contains(after_connecting),
            "{case}: refused after the handshake, or a usage error: {error}"
        );
    }
    for never_connected in ["connect error", "Connection refused", "dns error"] {
        assert!(
            !error.contains(never_connected),
            "{case}: never reached the server: {error}"
        );
    }
}

/// Asserts an HTTPS request was refused by the server's TLS alert `alert`
/// (rustls's name for it): the handshake ran, and failed for that reason.
fn assert_https_refused_with(result: &Result<(u16, String), String>, alert: &str, case: &str) {
    let expected = format!("received fatal alert: {alert}");
    assert!(
        result.as_ref().is_err_and(|e| e.ends_with(&expected)),
        "{case}: expected the server's {alert} alert, got {result:?}"
    );
}

/// Goal: every caller that cannot prove an identity from the trusted CA is
/// turned away at the handshake, on the gRPC and the HTTP side alike, while
/// a proper identity gets through (the control that makes the rest mean
/// something).
#[test]
fn callers_without_a_valid_client_certificate_are_refused_at_the_handshake() {
    let pki = Pki::new();
    let node = pki.start(Some(Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../auth/policies/example.polar"
    ))));
    let root = pki.identity("ca", Some("root"));
    let output = root.cli(&node.addr, "info", &[]);
    assert!(output.status.success(), "root: {}", stderr(&output));
    assert_eq!(
        root.https(&node.addr, "GET", "/v1/info", "").map(|r| r.0),
        Ok(200)
    );

    let now = SystemTime::now();
    let day = Duration::from_secs(86_400);
    pki.client(
        "expired",
        Validity {
            not_before: now - 2 * day,
            not_after: now - day,
        },
    );
    pki.client(
        "future",
        Validity {
            not_before: now + day,
            not_after: now + 2 * day,
        },
    );
    let other_ca = CertificateAuthority::generate("proglog test CA", Validity::days_from_now(2))
        .expect("other CA");
    pki.save(
        "other-root",
        &other_ca
            .issue_client("root", Validity::days_from_now(1))
            .expect("other CA client"),
    );
    // A self-signed certificate is its own CA: present the other CA's.
    pki.save("self-signed", other_ca.files());

    // Each with the alert the server (rustls) refuses it with. The other
    // CA has the same name as ours, so its client's chain reaches our CA by
    // name and fails on the signature.
    let cases = [
        (
            "no client certificate",
            pki.identity("ca", None),
            "CertificateRequired",
        ),
        (
            "root from another CA",
            pki.identity("ca", Some("other-root")),
            "DecryptError",
        ),
        (
            "self-signed",
            pki.identity("ca", Some("self-signed")),
            "CertificateUnknown",
        ),
        (
            "expired",
            pki.identity("ca", Some("expired")),
            "CertificateExpired",
        ),
        (
            "not yet valid",
            pki.identity("ca", Some("future")),
            "CertificateExpired",
        ),
    ];
    for (case, identity, alert) in &cases {
        assert_refused_at_handshake(&identity.cli(&node.addr, "info", &[]), case);
        let produced = identity.cli(&node.addr, "produce", &["x"]);
        assert_refused_at_handshake(&produced, case);
        let http = identity.https(&node.addr, "GET", "/v1/info", "");
        assert_https_refused_with(&http, alert, case);
    }
    assert_eq!(next_offset(&pki, &node.addr), 0, "nothing was written");
}

/// Goal: the server speaks TLS 1.2+ only, and nothing in plaintext.
#[test]
fn plaintext_and_old_tls_versions_get_no_answer() {
    let pki = Pki::new();
    let node = pki.start(None);

    // gRPC and HTTP in plaintext.
    let output = proglog()
        .args(["info", "--addr", &node.addr])
        .output()
        .expect("run");
    assert!(
        !output.status.success(),
        "plaintext gRPC: {}",
        stdout(&output)
    );
    let mut tcp = TcpStream::connect(&node.addr).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .expect("write");
    let mut answer = Vec::new();
    let _ = tcp.read_to_end(&mut answer);
    assert!(
        !answer.starts_with(b"HTTP/"),
        "plaintext HTTP answered: {:?}",
        String::from_utf8_lossy(&answer)
    );

    // A TLS 1.1 ClientHello (no supported_versions extension) is answered
    // with an alert record, never a ServerHello.
    let mut hello = vec![0x03, 0x02]; // legacy_version: TLS 1.1
    hello.extend_from_slice(&[0x42; 32]); // random
    hello.push(0); // session id
    hello.extend_from_slice(&[0x00, 0x04, 0xc0, 0x13, 0x00, 0x2f]); // cipher suites
    hello.extend_from_slice(&[0x01, 0x00]); // compression: null
    let mut handshake = vec![0x01, 0x00, 0x00, u8::try_from(hello.len()).expect("short")];
    handshake.extend_from_slice(&hello);
    let mut record = vec![
        0x16,
        0x03,
        0x01,
        0x00,
        u8::try_from(handshake.len()).expect("short"),
    ];
    record.extend_from_slice(&handshake);
    let mut tcp = TcpStream::connect(&node.addr).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    tcp.write_all(&record).expect("write");
    let mut answer = Vec::new();
    let _ = tcp.read_to_end(&mut answer);
    assert_eq!(
        answer.first(),
        Some(&0x15),
        "expected an alert record, got {answer:02x?}"
    );

    // The same port answers TLS 1.2+ (the control).
    let output = pki
        .identity("ca", Some("root"))
        .cli(&node.addr, "info", &[]);
    assert!(output.status.success(), "{}", stderr(&output));
}

/// Goal: the client checks the server's name: a certificate that does not
/// name what was dialled (or what --tls-server-name says) is refused.
#[test]
fn the_client_refuses_a_server_certificate_for_another_name() {
    let pki = Pki::new();
    let node = pki.start(None);
    let mut identity = pki.identity("ca", Some("root"));
    identity.server_name = Some("proglog.example".to_owned());
    let output = identity.cli(&node.addr, "info", &[]);
    assert!(!output.status.success(), "wrong name accepted");
    assert!(
        stderr(&output).contains("NotValidForName") || stderr(&output).contains("not valid for"),
        "{}",
        stderr(&output)
    );
    identity.server_name = Some("localhost".to_owned());
    let output = identity.cli(&node.addr, "info", &[]);
    assert!(output.status.success(), "{}", stderr(&output));
}

/// What a principal tries, over one protocol.
fn attempt(identity: &Identity, addr: &str, action: &str, grpc: bool) -> Result<String, String> {
    if grpc {
        let output = match action {
            "produce" => identity.cli(addr, "produce", &["from-test"]),
            "consume" => identity.cli(addr, "consume", &["--from", "0", "--limit", "1"]),
            other => panic!("no gRPC call for {other}"),
        };
        if output.status.success() {
            Ok(stdout(&output))
        } else {
            Err(stderr(&output))
        }
    } else {
        let (method, path, body) = match action {
            "produce" => (
                "POST",
                "/v1/records",
                r#"{"record":{"value":"ZnJvbS10ZXN0"}}"#,
            ),
            "consume" => ("GET", "/v1/records/0", ""),
            "admin" => ("GET", "/metrics", ""),
            other => panic!("no HTTP call for {other}"),
        };
        match identity.https(addr, method, path, body) {
            Ok((200, body)) => Ok(body),
            Ok((status, body)) => Err(format!("{status} {body}")),
            Err(e) => panic!("{action} over HTTP: no response: {e}"),
        }
    }
}

/// Goal: for every principal of the example policy and every action with a
/// route, gRPC and HTTP both do exactly what the policy says; a denial is
/// PERMISSION_DENIED / 403 and writes or reveals nothing.
#[test]
fn grpc_and_http_results_equal_the_example_policy_for_every_principal_and_action() {
    let pki = Pki::new();
    let node = pki.start(Some(Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../auth/policies/example.polar"
    ))));
    let secret = "c2VjcmV0LXJlY29yZA=="; // "secret-record"
    let (status, _) = pki
        .identity("ca", Some("root"))
        .https(
            &node.addr,
            "POST",
            "/v1/records",
            &format!(r#"{{"record":{{"value":"{secret}"}}}}"#),
        )
        .expect("root produces");
    assert_eq!(status, 200);

    let allowed = |principal: &str, action: &str| match principal {
        "root" => true,
        "reader" => action == "consume",
        _ => false,
    };
    let mut produced = 1;
    for principal in PRINCIPALS {
        let identity = pki.identity("ca", Some(principal));
        for (action, protocols) in [
            ("produce", &[true, false][..]),
            ("consume", &[true, false][..]),
            ("admin", &[false][..]),
        ] {
            for &grpc in protocols {
                let case = format!(
                    "{principal} {action} over {}",
                    if grpc { "gRPC" } else { "HTTP" }
                );
                let before = next_offset(&pki, &node.addr);
                let result = attempt(&identity, &node.addr, action, grpc);
                let after = next_offset(&pki, &node.addr);
                if allowed(principal, action) {
                    let output = result.unwrap_or_else(|e| panic!("{case}: refused: {e}"));
                    if action == "consume" {
                        assert!(
                            output.contains("secret-record") || output.contains(secret),
                            "{case}: {output}"
                        );
                    }
                    if action == "produce" {
                        produced += 1;
                        assert_eq!(after, before + 1, "{case}");
                    }
                } else {
                    let error = result.expect_err(&format!("{case}: allowed"));
                    let wanted = if grpc { "PERMISSION_DENIED" } else { "403" };
                    assert!(error.contains(wanted), "{case}: {error}");
                    assert!(
                        !error.contains(secret) && !error.contains("secret-record"),
                        "{case}: revealed the record: {error}"
                    );
                    assert_eq!(after, before, "{case}: a denied call wrote");
                }
            }
        }
    }
    assert_eq!(next_offset(&pki, &node.addr), produced);
}

/// Goal: TLS without client certificates makes every caller anonymous, and
/// the shipped default policy allows anonymous callers nothing: gRPC says
/// UNAUTHENTICATED, HTTP 401; health stays public.
#[test]
fn without_client_certificates_the_default_policy_refuses_as_unauthenticated() {
    let pki = Pki::new();
    let flags = [
        "--tls-cert-file".to_owned(),
        pki.path("node.pem").display().to_string(),
        "--tls-key-file".to_owned(),
        pki.path("node-key.pem").display().to_string(),
    ];
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let node = Node::start(&pki.path("data"), &flags);
    let anonymous = pki.identity("ca", None);
    let output = anonymous.cli(&node.addr, "info", &[]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("UNAUTHENTICATED"),
        "{}",
        stderr(&output)
    );
    assert_eq!(
        anonymous
            .https(
                &node.addr,
                "POST",
                "/v1/records",
                r#"{"record":{"value":"eA=="}}"#
            )
            .map(|r| r.0),
        Ok(401)
    );
    assert_eq!(
        anonymous
            .https(&node.addr, "GET", "/healthz", "")
            .map(|r| r.0),
        Ok(200)
    );
}

/// Goal: SIGHUP puts a new server certificate and a new policy in force
/// without a restart, and a broken policy is refused with the old one kept.
#[test]
fn sighup_reloads_the_certificate_and_policy_and_refuses_a_broken_policy() {
    let pki = Pki::new();
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../auth/policies/example.polar"
    ))
    .expect("example policy");
    let policy = pki.write_policy("policy.polar", &example);
    let node = pki.start(Some(&policy));
    let reader = pki.identity("ca", Some("reader"));
    let denied = reader.cli(&node.addr, "produce", &["x"]);
    assert!(
        stderr(&denied).contains("PERMISSION_DENIED"),
        "{}",
        stderr(&denied)
    );

    // A new server certificate from a second CA, and a policy that lets
    // the reader produce. Client certificates still come from the first CA.
    let second_ca =
        CertificateAuthority::generate("second CA", Validity::days_from_now(2)).expect("second CA");
    pki.save("ca2", second_ca.files());
    let through_second_ca = pki.identity("ca2", Some("reader"));
    let before = through_second_ca.cli(&node.addr, "info", &[]);
    assert!(
        !before.status.success(),
        "the old certificate is from the first CA"
    );
    pki.save("node", &node_certificate(&second_ca));
    pki.write_policy(
        "policy.polar",
        &format!("{example}\nallow(client: Client, \"produce\", _log: Log) if client.name = \"reader\";\n"),
    );
    node.signal("HUP");
    node.wait_for("SIGHUP: certificates and policy reloaded");
    let produced = through_second_ca.cli(&node.addr, "produce", &["x"]);
    assert!(produced.status.success(), "{}", stderr(&produced));
    let old_ca = reader.cli(&node.addr, "info", &[]);
    assert!(
        !old_ca.status.success(),
        "the old certificate is still served"
    );

    // A broken policy: refused, named with its line; the old one stays.
    pki.write_policy(
        "policy.polar",
        "allow(client: Client, \"produce\", _log: Log) if\n",
    );
    node.signal("HUP");
    let refused =
        node.wait_for("SIGHUP: reload refused; the previous certificates and policy stay in force");
    let error = refused["error"].as_str().unwrap_or_default();
    assert!(error.contains("policy.polar"), "{refused}");
    let produced = through_second_ca.cli(&node.addr, "produce", &["y"]);
    assert!(produced.status.success(), "{}", stderr(&produced));
}

/// Goal: a certificate or policy that cannot be used stops the agent before
/// it opens anything, with exit 2 and the file (and policy line) named.
#[test]
fn unusable_security_files_are_startup_errors_naming_the_file() {
    let pki = Pki::new();
    let broken_policy = pki.write_policy(
        "broken.polar",
        "# a comment\nallow(client: Client, \"produce\", _log: Log) if\n  client.name = ;\n",
    );
    let node = |file: &str| pki.path(file).display().to_string();
    let cases: Vec<(Vec<String>, String)> = vec![
        (
            vec![
                "--tls-cert-file".into(),
                node("missing.pem"),
                "--tls-key-file".into(),
                node("node-key.pem"),
            ],
            node("missing.pem"),
        ),
        (
            // The root client's key does not belong to the node certificate.
            vec![
                "--tls-cert-file".into(),
                node("node.pem"),
                "--tls-key-file".into(),
                node("root-key.pem"),
            ],
            node("root-key.pem"),
        ),
        (
            vec![
                "--tls-cert-file".into(),
                node("node.pem"),
                "--tls-key-file".into(),
                node("node-key.pem"),
                "--tls-client-ca-file".into(),
                node("node-key.pem"),
            ],
            node("node-key.pem"),
        ),
        (
            vec![
                "--acl-policy-file".into(),
                broken_policy.display().to_string(),
            ],
            format!("{}:3", broken_policy.display()),
        ),
    ];
    let data_dir = pki.path("data");
    for (flags, named) in cases {
        let output = proglog()
            .args(["agent", "--data-dir"])
            .arg(&data_dir)
            .args(&flags)
            .output()
            .expect("run");
        let error = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{flags:?}: {error}");
        assert!(
            error.contains(&named),
            "{flags:?} must name {named}: {error}"
        );
        assert!(
            !data_dir.exists(),
            "nothing may be created before the files load"
        );
    }
}

/// Runs `openssl` in `dir` with `command`, split at spaces (no argument
/// here contains one).
fn openssl(dir: &Path, command: &str) {
    let output = Command::new("openssl")
        .current_dir(dir)
        .args(command.split_whitespace())
        .output()
        .expect("run openssl (apt install openssl)");
    assert!(
        output.status.success(),
        "openssl {command}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Issues `<name>.pem`/`<name>-key.pem` signed by the openssl CA with the
/// given subject and X.509 extensions.
fn openssl_issue(dir: &Path, name: &str, subject: &str, extensions: &str) {
    std::fs::write(dir.join(format!("{name}.ext")), extensions).expect("write extensions");
    openssl(
        dir,
        &format!(
            "req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
             -keyout {name}-key.pem -out {name}.csr -subj {subject}"
        ),
    );
    openssl(
        dir,
        &format!(
            "x509 -req -in {name}.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 1 \
             -out {name}.pem -extfile {name}.ext"
        ),
    );
}

/// Goal: certificates from an ordinary `openssl` CA work as well as ours,
/// and a client certificate limited to server authentication is refused.
#[test]
fn certificates_from_an_openssl_ca_work_and_server_auth_only_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path();
    openssl(
        path,
        "req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
         -keyout ca-key.pem -out ca.pem -days 2 -subj /CN=openssl-test-CA \
         -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign",
    );
    openssl_issue(
        path,
        "node",
        "/CN=node-0",
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n\
         extendedKeyUsage=serverAuth,clientAuth\nkeyUsage=critical,digitalSignature\n",
    );
    openssl_issue(
        path,
        "root",
        "/O=proglog/CN=root",
        "extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature\n",
    );
    openssl_issue(
        path,
        "server-only",
        "/CN=root",
        "extendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature\n",
    );
    let file = |name: &str| path.join(name).display().to_string();
    let flags = [
        "--tls-cert-file".to_owned(),
        file("node.pem"),
        "--tls-key-file".to_owned(),
        file("node-key.pem"),
        "--tls-client-ca-file".to_owned(),
        file("ca.pem"),
    ];
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let node = Node::start(&path.join("data"), &flags);
    let identity = |name: &str| Identity {
        ca_file: path.join("ca.pem"),
        cert_and_key: Some((
            path.join(format!("{name}.pem")),
            path.join(format!("{name}-key.pem")),
        )),
        server_name: None,
    };
    let root = identity("root");
    let output = root.cli(&node.addr, "produce", &["from-openssl"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output).trim(), "0");
    assert_eq!(
        root.https(&node.addr, "GET", "/v1/records/0", "")
            .map(|r| r.0),
        Ok(200)
    );
    let server_only = identity("server-only");
    assert_refused_at_handshake(
        &server_only.cli(&node.addr, "produce", &["x"]),
        "server-auth-only client certificate",
    );
    assert_https_refused_with(
        &server_only.https(&node.addr, "GET", "/v1/info", ""),
        "UnsupportedCertificate",
        "server-auth-only client certificate",
    );
}
