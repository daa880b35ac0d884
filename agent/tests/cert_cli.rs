//! `proglog cert`: a CA, a node and a client certificate from the real
//! binary, usable together for mutual TLS, keys private, no silent
//! overwrites.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, Output};

fn proglog(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_proglog"))
        .args(args)
        .output()
        .expect("run proglog")
}

fn ok(args: &[&str]) -> String {
    let output = proglog(args);
    assert!(
        output.status.success(),
        "proglog {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8")
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).expect("stat").permissions().mode() & 0o777
}

#[test]
fn a_ca_node_and_client_certificate_work_together() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = dir.path().join("pki");
    let pki_str = pki.to_str().expect("utf-8 path");
    let printed = ok(&["cert", "ca", "--out-dir", pki_str]);
    assert_eq!(
        printed.lines().count(),
        2,
        "prints the two files: {printed}"
    );
    ok(&[
        "cert",
        "node",
        "--ca-dir",
        pki_str,
        "--name",
        "0",
        "--dns",
        "localhost",
        "--ip",
        "127.0.0.1",
        "--out-dir",
        pki_str,
    ]);
    ok(&[
        "cert",
        "client",
        "--ca-dir",
        pki_str,
        "--cn",
        "reader",
        "--out-dir",
        pki_str,
    ]);
    for key in ["ca-key.pem", "0-key.pem", "reader-key.pem"] {
        assert_eq!(mode(&pki.join(key)), 0o600, "{key} must be private");
    }
    // The node certificate, its key and the CA make a working mTLS server
    // config; the client certificate and key a working client config.
    auth::ServerTlsConfig::from_pem_files(
        pki.join("0.pem"),
        pki.join("0-key.pem"),
        Some(&pki.join("ca.pem")),
    )
    .expect("server config from the issued files");
    auth::ClientTlsConfig::from_pem_files(
        pki.join("ca.pem"),
        Some(&pki.join("reader.pem")),
        Some(&pki.join("reader-key.pem")),
        None,
    )
    .expect("client config from the issued files");
}

#[test]
fn existing_files_are_not_overwritten_without_force() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = dir.path().to_str().expect("utf-8 path");
    ok(&["cert", "ca", "--out-dir", pki]);
    let before = std::fs::read(dir.path().join("ca-key.pem")).expect("key");
    let refused = proglog(&["cert", "ca", "--out-dir", pki]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("already exists"));
    assert_eq!(
        std::fs::read(dir.path().join("ca-key.pem")).expect("key"),
        before,
        "the key is untouched"
    );
    ok(&["cert", "ca", "--out-dir", pki, "--force"]);
    assert_ne!(
        std::fs::read(dir.path().join("ca-key.pem")).expect("key"),
        before,
        "--force replaces it"
    );
}

#[test]
fn a_node_certificate_needs_a_name_to_be_reached_by() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = dir.path().to_str().expect("utf-8 path");
    ok(&["cert", "ca", "--out-dir", pki]);
    let output = proglog(&[
        "cert",
        "node",
        "--ca-dir",
        pki,
        "--name",
        "0",
        "--out-dir",
        pki,
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("DNS name or IP"),
        "{output:?}"
    );
}
