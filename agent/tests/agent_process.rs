//! The `proglog agent` process: configuration errors, the embedded default,
//! graceful shutdown on signals, and a clean restart.

mod common;

use std::time::Duration;

use common::{Node, proglog};

const CLEAN: &str = "log was closed cleanly; no recovery needed";
const RECOVERED: &str = "log was not closed cleanly; recovered its newest segment";

fn produce_http(addr: &str, base64: &str) -> u64 {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let response = reqwest::Client::new()
            .post(format!("http://{addr}/v1/records"))
            .header("content-type", "application/json")
            .body(serde_json::json!({ "record": { "value": base64 } }).to_string())
            .send()
            .await
            .expect("produce");
        assert_eq!(response.status().as_u16(), 200);
        let body: serde_json::Value = response.json().await.expect("json");
        body["offset"].as_u64().expect("offset")
    })
}

#[test]
fn an_invalid_config_exits_2_naming_the_key_before_opening_anything() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("data");
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "[log]\nsegment_bytes_max = 12\n").expect("write");
    // (flags, environment, the key the error must name)
    type Case<'a> = (Vec<String>, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case<'_>> = vec![
        (
            vec!["--config".into(), file.display().to_string()],
            vec![],
            "log.segment_bytes_max",
        ),
        (
            vec!["--config".into(), "/nonexistent.toml".into()],
            vec![],
            "/nonexistent.toml",
        ),
        (
            vec!["--rpc-addr".into(), "not-an-address".into()],
            vec![],
            "rpc_addr",
        ),
        (
            vec![],
            vec![("PROGLOG_LOG__FSYNC", "sometimes")],
            "log.fsync",
        ),
        (vec![], vec![("PROGLOG_NO_SUCH_KEY", "1")], "no_such_key"),
    ];
    for (args, env, key) in cases {
        let output = proglog()
            .args(["agent", "--data-dir"])
            .arg(&data_dir)
            .args(&args)
            .envs(env.iter().copied())
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?} {env:?}: {stderr}");
        assert!(stderr.contains(key), "{args:?} {env:?}: {stderr}");
        assert!(
            !data_dir.exists(),
            "nothing may be created before the config is valid"
        );
    }
    let output = proglog()
        .args(["agent", "--fsync", "sometimes"])
        .output()
        .expect("run");
    assert_eq!(
        output.status.code(),
        Some(2),
        "clap rejects a bad flag value with 2 too"
    );
}

/// Goal: a shell set up for the CLI (`PROGLOG_ADDR`, `PROGLOG_CA_FILE`, ...,
/// as docs/security.md suggests), or a pod with Kubernetes service links
/// (`PROGLOG_SERVICE_HOST`, ...), can still start a node: those variables
/// are not agent keys.
#[test]
fn the_clients_environment_variables_do_not_stop_the_agent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let _node = Node::start_with_env(
        dir.path(),
        &[],
        &[
            ("PROGLOG_ADDR", "127.0.0.1:1"),
            ("PROGLOG_CA_FILE", "/nonexistent/ca.pem"),
            ("PROGLOG_CERT_FILE", "/nonexistent/c.pem"),
            ("PROGLOG_KEY_FILE", "/nonexistent/k.pem"),
            ("PROGLOG_TLS_SERVER_NAME", "node-0"),
            // What Kubernetes injects for a Service named `proglog`.
            ("PROGLOG_SERVICE_HOST", "10.0.0.7"),
            ("PROGLOG_SERVICE_PORT_GRPC", "8400"),
            ("PROGLOG_PORT", "tcp://10.0.0.7:8400"),
            ("PROGLOG_PORT_8400_TCP_ADDR", "10.0.0.7"),
        ],
    );
}

/// Goal: SIGTERM stops the node cleanly (exit 0, log closed) even with a
/// follow stream open, and the next start needs no recovery.
#[test]
fn sigterm_drains_closes_the_log_and_the_restart_is_clean() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut node = Node::start(dir.path(), &["--fsync", "always"]);
    node.wait_for("created a new log");
    for i in 0..3 {
        assert_eq!(produce_http(&node.addr, "aGVsbG8="), i);
    }
    // An open NDJSON follower must not hold the shutdown up.
    let follower = std::net::TcpStream::connect(&node.addr).expect("connect");
    std::io::Write::write_all(
        &mut &follower,
        b"GET /v1/records/stream?from=0 HTTP/1.1\r\nhost: x\r\n\r\n",
    )
    .expect("request");
    node.signal("TERM");
    node.wait_for("log flushed and closed cleanly");
    assert!(node.wait_exit().success());
    drop(follower);

    let node = Node::start(dir.path(), &[]);
    let opened = node.wait_for_any(&[CLEAN, RECOVERED]);
    assert_eq!(opened["message"], CLEAN);
    assert_eq!(
        values_http(&node.addr),
        ["aGVsbG8="; 3],
        "the records survived the restart"
    );
    assert_eq!(produce_http(&node.addr, "eA=="), 3);
}

/// Every record's value, base64 as the API gives it, read over HTTP.
fn values_http(addr: &str) -> Vec<String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let response = reqwest::get(format!("http://{addr}/v1/records?from=0&limit=1000"))
            .await
            .expect("read");
        assert_eq!(response.status().as_u16(), 200);
        let body: serde_json::Value = response.json().await.expect("json");
        body["records"]
            .as_array()
            .expect("records")
            .iter()
            .map(|r| r["value"].as_str().expect("value").to_owned())
            .collect()
    })
}

/// The drain bound the next test gives the node.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(1);
/// How long after the drain bound the process may take to exit: aborting
/// the stuck connection, closing the log and exiting take milliseconds; the
/// rest is room for a loaded 2-core CI machine.
const EXIT_MARGIN: Duration = Duration::from_secs(10);

/// Goal: a request that never finishes holds the shutdown for at most
/// `drain_timeout_ms`: the process exits 0 between the bound and the bound
/// plus `EXIT_MARGIN`, having closed its log cleanly, and after a restart
/// the acknowledged records read back by value while the stuck request
/// wrote nothing.
/// Method: a raw HTTP/1.1 produce with `Expect: 100-continue` is in flight
/// once the node answers `100 Continue` (its handler is reading the body);
/// the client sends half the body and stops. Then SIGTERM.
#[test]
fn sigterm_exits_within_the_drain_bound_even_with_a_request_stuck() {
    use std::io::{Read as _, Write as _};
    let dir = tempfile::tempdir().expect("tempdir");
    let drain_ms = DRAIN_TIMEOUT.as_millis().to_string();
    let mut node = Node::start_with_env(
        dir.path(),
        &["--fsync", "always"],
        &[("PROGLOG_SERVER__DRAIN_TIMEOUT_MS", drain_ms.as_str())],
    );
    for (offset, value) in ["YQ==", "Yg=="].into_iter().enumerate() {
        assert_eq!(produce_http(&node.addr, value), offset as u64);
    }
    let body = r#"{"record":{"value":"c3R1Y2s="}}"#;
    let mut stuck = std::net::TcpStream::connect(&node.addr).expect("connect");
    stuck
        .set_read_timeout(Some(common::PROCESS_TIMEOUT))
        .expect("read timeout");
    write!(
        stuck,
        "POST /v1/records HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nexpect: 100-continue\r\n\r\n",
        body.len()
    )
    .expect("write head");
    let mut seen = Vec::new();
    let mut buffer = [0u8; 256];
    while !String::from_utf8_lossy(&seen).contains("100 Continue") {
        let read = stuck.read(&mut buffer).expect("read 100 Continue");
        assert!(read > 0, "closed before 100 Continue");
        seen.extend_from_slice(&buffer[..read]);
    }
    stuck
        .write_all(&body.as_bytes()[..body.len() / 2])
        .expect("write half the body");

    let signalled = std::time::Instant::now();
    node.signal("TERM");
    // Fails by itself after `PROCESS_TIMEOUT`, longer than the bound below.
    let status = node.wait_exit();
    let took = signalled.elapsed();
    assert!(status.success(), "{status:?}");
    assert!(
        took <= DRAIN_TIMEOUT + EXIT_MARGIN,
        "exited {took:?} after SIGTERM, past the {DRAIN_TIMEOUT:?} drain and {EXIT_MARGIN:?}"
    );
    assert!(
        took >= DRAIN_TIMEOUT,
        "exited after {took:?}, before the {DRAIN_TIMEOUT:?} drain with a request in flight"
    );
    node.wait_for("log flushed and closed cleanly");
    drop(stuck);

    let node = Node::start(dir.path(), &[]);
    assert_eq!(node.wait_for_any(&[CLEAN, RECOVERED])["message"], CLEAN);
    assert_eq!(values_http(&node.addr), ["YQ==", "Yg=="]);
}

#[test]
fn sigint_stops_the_node_too() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut node = Node::start(dir.path(), &[]);
    node.signal("INT");
    assert!(node.wait_exit().success());
}

#[test]
fn a_killed_node_recovers_on_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut node = Node::start(dir.path(), &["--fsync", "always"]);
    produce_http(&node.addr, "aGVsbG8=");
    node.signal("KILL");
    node.wait_exit();
    let node = Node::start(dir.path(), &[]);
    let opened = node.wait_for_any(&[CLEAN, RECOVERED]);
    assert_eq!(opened["message"], RECOVERED);
    assert_eq!(produce_http(&node.addr, "eA=="), 1);
}

/// Goal: a port already in use stops the start before the data directory
/// is created.
#[test]
fn a_port_in_use_fails_before_anything_is_created() {
    let dir = tempfile::tempdir().expect("tempdir");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let data_dir = dir.path().join("data");
    let output = proglog()
        .args(["agent", "--rpc-addr", &addr, "--data-dir"])
        .arg(&data_dir)
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("binding rpc_addr"), "{stderr}");
    assert_eq!(
        stderr.matches("os error").count(),
        1,
        "the cause is printed once: {stderr}"
    );
    assert!(!data_dir.exists(), "the data directory was created");
}

/// Goal: a storage error names its cause once, not once per error layer.
#[test]
fn an_unusable_data_directory_names_the_os_error_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"not a directory").expect("write");
    let output = proglog()
        .args(["agent", "--rpc-addr", "127.0.0.1:0", "--data-dir"])
        .arg(file.join("data"))
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let last = stderr.lines().last().unwrap_or_default();
    assert!(last.starts_with("error: opening the log"), "{stderr}");
    assert_eq!(last.matches("os error").count(), 1, "{last}");
}

/// Goal: a data directory holding a standalone log is never served as an
/// empty replicated one (the default is a Raft cluster of one), nor the
/// reverse: the start is refused, naming the setting that fits, and the
/// records are still there with it.
#[test]
fn a_data_directory_of_the_other_kind_of_log_is_refused_naming_the_setting() {
    let dir = tempfile::tempdir().expect("tempdir");
    let standalone = dir.path().join("standalone");
    let mut node = Node::start(&standalone, &["--bootstrap-expect", "0"]);
    assert_eq!(produce_http(&node.addr, "aGVsbG8="), 0);
    node.signal("TERM");
    assert!(node.wait_exit().success());
    let refused = |data_dir: &std::path::Path, extra: &[&str]| {
        let output = proglog()
            .args(["agent", "--rpc-addr", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(extra)
            .output()
            .expect("run");
        assert_eq!(output.status.code(), Some(1), "{output:?}");
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let stderr = refused(&standalone, &[]);
    assert!(
        stderr.contains("holds a standalone log") && stderr.contains("--bootstrap-expect 0"),
        "{stderr}"
    );
    assert!(!standalone.join("raft").exists(), "no Raft log was created");
    let node = Node::start(&standalone, &["--bootstrap-expect", "0"]);
    assert_eq!(values_http(&node.addr), ["aGVsbG8="], "the record is there");
    drop(node);

    let replicated = dir.path().join("replicated");
    let mut node = Node::start(&replicated, &[]);
    assert_eq!(produce_http(&node.addr, "aGVsbG8="), 0);
    node.signal("TERM");
    assert!(node.wait_exit().success());
    let stderr = refused(&replicated, &["--bootstrap-expect", "0"]);
    assert!(
        stderr.contains("holds a replicated log") && stderr.contains("--bootstrap-expect 1"),
        "{stderr}"
    );
}
