//! The `proglog agent` process: configuration errors, the embedded default,
//! graceful shutdown on signals, and a clean restart.

mod common;

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
/// as docs/security.md suggests) can still start a node: those variables
/// are the client's, not agent keys.
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
        produce_http(&node.addr, "eA=="),
        3,
        "the records survived the restart"
    );
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
