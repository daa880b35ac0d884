//! The CLI names what went wrong with TLS, every time, and exits non-zero:
//! no client certificate for a node that wants one, a certificate from
//! another CA, plaintext to a TLS port; and `proglog cert client` refuses
//! a node's name.
//!
//! Method: the real binary: `proglog cert` makes two CAs (the second with
//! the same name as the first, the hardest case), a node with mutual TLS
//! runs on 127.0.0.1, and each wrong call runs several times (the old
//! messages depended on which side of a race the first request fell).

mod common;

use std::path::Path;

use common::{Node, proglog};

/// Runs of each wrong call: the old messages varied from run to run.
const RUNS: usize = 4;

fn run(args: &[&str]) -> (bool, String) {
    let out = proglog().args(args).output().expect("run proglog");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn cert(args: &[&str]) {
    let (ok, stderr) = run(&[&["cert"], args].concat());
    assert!(ok, "proglog cert {args:?}: {stderr}");
}

fn pki(dir: &Path) -> String {
    let pki = dir.to_str().expect("utf-8 path").to_owned();
    cert(&["ca", "--out-dir", &pki]);
    pki
}

#[test]
fn tls_failures_name_their_cause() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = pki(&dir.path().join("pki"));
    let other = pki_other(&dir.path().join("other"));
    cert(&[
        "node",
        "--ca-dir",
        &pki,
        "--name",
        "0",
        "--ip",
        "127.0.0.1",
        "--out-dir",
        &pki,
    ]);
    cert(&[
        "client",
        "--ca-dir",
        &pki,
        "--cn",
        "root",
        "--out-dir",
        &pki,
    ]);
    let file = |dir: &str, name: &str| format!("{dir}/{name}");
    let node = Node::start(
        &dir.path().join("data"),
        &[
            "--tls-cert-file",
            &file(&pki, "0.pem"),
            "--tls-key-file",
            &file(&pki, "0-key.pem"),
            "--tls-client-ca-file",
            &file(&pki, "ca.pem"),
        ],
    );
    let ca = file(&pki, "ca.pem");
    let cases: [(&str, Vec<&str>, &str); 3] = [
        (
            "no client certificate",
            vec!["--ca-file", &ca],
            "the node wants a client certificate",
        ),
        (
            "a certificate from another CA of the same name",
            vec![
                "--ca-file",
                &ca,
                "--cert-file",
                &other.0,
                "--key-file",
                &other.1,
            ],
            "the node refused our client certificate",
        ),
        (
            "plaintext to the TLS port",
            vec![],
            "it probably speaks TLS",
        ),
    ];
    for (what, args, cause) in &cases {
        for _ in 0..RUNS {
            let (ok, stderr) = run(&[&["info", "--addr", &node.addr][..], args].concat());
            assert!(!ok, "{what}: succeeded");
            assert!(stderr.contains(cause), "{what}: {stderr}");
        }
    }
    let root = file(&pki, "root.pem");
    let root_key = file(&pki, "root-key.pem");
    let (ok, stderr) = run(&[
        "info",
        "--addr",
        &node.addr,
        "--ca-file",
        &ca,
        "--cert-file",
        &root,
        "--key-file",
        &root_key,
    ]);
    assert!(ok, "the right certificate works: {stderr}");
}

/// A second CA named like the first, and a client `root` from it: the
/// certificate and key paths.
fn pki_other(dir: &Path) -> (String, String) {
    let other = pki(dir);
    cert(&[
        "client",
        "--ca-dir",
        &other,
        "--cn",
        "root",
        "--out-dir",
        &other,
    ]);
    (format!("{other}/root.pem"), format!("{other}/root-key.pem"))
}

#[test]
fn a_client_certificate_is_never_named_like_a_node() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = pki(dir.path());
    let (ok, stderr) = run(&[
        "cert",
        "client",
        "--ca-dir",
        &pki,
        "--cn",
        "node-evil",
        "--out-dir",
        &pki,
    ]);
    assert!(!ok, "issued a node's name to a client");
    assert!(stderr.contains("node-*"), "{stderr}");
    assert!(!dir.path().join("node-evil.pem").exists());
}
