//! Gossip discovery between real `proglog agent` processes on 127.0.0.1:
//! three nodes find each other through one seed each, `proglog servers` on
//! any of them lists all three, a killed node is marked down on the others
//! and comes back alive (with a newer incarnation) when restarted.
//!
//! Gossip timings are shortened through the environment so a failure is
//! detected in about a second; every wait polls a condition under a named
//! bound.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::Node;

/// Longest the three nodes may take to see each other alive: a few probe
/// periods and join attempts.
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(20);
/// Longest a killed node may take to be marked down: probe, indirect
/// probes, then the suspicion timeout, at the shortened timings below.
const DOWN_TIMEOUT: Duration = Duration::from_secs(20);
/// Pause between two polls of `proglog servers`.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Fast gossip for the test: 200 ms probes, 1 s suspicion.
const GOSSIP_ENV: [(&str, &str); 3] = [
    ("PROGLOG_CLUSTER__PROBE_PERIOD_MS", "200"),
    ("PROGLOG_CLUSTER__SUSPECT_TO_DOWN_MS", "1000"),
    ("PROGLOG_CLUSTER__LEAVE_TIMEOUT_MS", "300"),
];

struct Member {
    node: Node,
    gossip_addr: String,
}

/// A gossip member without Raft (`--bootstrap-expect 0`): these tests are
/// about discovery alone (replication_process.rs has the Raft ones).
fn start(dir: &Path, name: &str, gossip_addr: &str, seed: Option<&str>) -> Member {
    let mut args = vec![
        "--node-name",
        name,
        "--gossip-addr",
        gossip_addr,
        "--fsync",
        "never",
        "--bootstrap-expect",
        "0",
    ];
    if let Some(seed) = seed {
        args.extend(["--join", seed]);
    }
    let node = Node::start_with_env(&dir.join(name), &args, &GOSSIP_ENV);
    let line = node.wait_for("gossip listening");
    let gossip_addr = line["gossip_addr"]
        .as_str()
        .expect("gossip_addr field")
        .to_owned();
    Member { node, gossip_addr }
}

/// `proglog servers --json` against `addr`: (name, state, node id) rows.
fn servers(addr: &str) -> Vec<(String, String, u64)> {
    let output = Command::new(env!("CARGO_BIN_EXE_proglog"))
        .args(["servers", "--json", "--addr", addr])
        .output()
        .expect("run proglog servers");
    assert!(
        output.status.success(),
        "proglog servers failed: {output:?}"
    );
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    let mut rows: Vec<(String, String, u64)> = json["servers"]
        .as_array()
        .expect("servers array")
        .iter()
        .map(|s| {
            (
                s["id"].as_str().unwrap_or_default().to_owned(),
                s["state"].as_str().unwrap_or_default().to_owned(),
                s["nodeId"].as_u64().unwrap_or_default(),
            )
        })
        .collect();
    rows.sort();
    rows
}

/// The node's Prometheus page.
fn metrics(addr: &str) -> String {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        reqwest::get(format!("http://{addr}/metrics"))
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("metrics body")
    })
}

fn wait_for_states(addr: &str, want: &[(&str, &str)], bound: Duration) {
    let deadline = Instant::now() + bound;
    loop {
        let got = servers(addr);
        let matches = got.len() == want.len()
            && want
                .iter()
                .all(|(name, state)| got.iter().any(|(n, s, _)| n == name && s == state));
        if matches {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{addr} did not list {want:?} within {bound:?}; it lists {got:?}"
        );
        std::thread::sleep(POLL_INTERVAL);
    }
}

#[test]
fn three_agents_find_each_other_and_see_one_die_and_return() {
    let dir = tempfile::tempdir().expect("tempdir");
    let n1 = start(dir.path(), "n1", "127.0.0.1:0", None);
    let n2 = start(dir.path(), "n2", "127.0.0.1:0", Some(&n1.gossip_addr));
    let n3 = start(dir.path(), "n3", "127.0.0.1:0", Some(&n2.gossip_addr));
    let all_alive = [("n1", "alive"), ("n2", "alive"), ("n3", "alive")];
    for member in [&n1, &n2, &n3] {
        wait_for_states(&member.node.addr, &all_alive, CONVERGE_TIMEOUT);
    }
    let ids: Vec<u64> = servers(&n1.node.addr)
        .iter()
        .map(|(_, _, id)| *id)
        .collect();
    assert!(ids.iter().all(|&id| id != 0), "{ids:?}");
    let metrics = metrics(&n1.node.addr);
    assert!(
        metrics.contains("proglog_gossip_members{state=\"alive\"} 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains("proglog_gossip_packets_received_total"),
        "{metrics}"
    );

    // kill -9: no leave, so the others must detect the failure.
    let n2_gossip = n2.gossip_addr.clone();
    drop(n2);
    let n2_down = [("n1", "alive"), ("n2", "down"), ("n3", "alive")];
    wait_for_states(&n1.node.addr, &n2_down, DOWN_TIMEOUT);
    wait_for_states(&n3.node.addr, &n2_down, DOWN_TIMEOUT);

    // Same name, same data directory, same address: it rejoins alive.
    let n2 = start(dir.path(), "n2", &n2_gossip, Some(&n1.gossip_addr));
    for member in [&n1, &n2, &n3] {
        wait_for_states(&member.node.addr, &all_alive, CONVERGE_TIMEOUT);
    }
}

#[test]
fn a_graceful_stop_is_listed_as_left() {
    let dir = tempfile::tempdir().expect("tempdir");
    let n1 = start(dir.path(), "n1", "127.0.0.1:0", None);
    let mut n2 = start(dir.path(), "n2", "127.0.0.1:0", Some(&n1.gossip_addr));
    let both = [("n1", "alive"), ("n2", "alive")];
    wait_for_states(&n1.node.addr, &both, CONVERGE_TIMEOUT);
    wait_for_states(&n2.node.addr, &both, CONVERGE_TIMEOUT);
    n2.node.signal("TERM");
    assert!(n2.node.wait_exit().success());
    n2.node.wait_for("left the gossip cluster");
    wait_for_states(
        &n1.node.addr,
        &[("n1", "alive"), ("n2", "left")],
        DOWN_TIMEOUT,
    );
}

#[test]
fn a_node_whose_seed_is_down_keeps_serving_and_retries() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A UDP port with nobody behind it: bind one, note it, free it.
    let free = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let nowhere = free.local_addr().expect("addr").to_string();
    drop(free);
    let lonely = start(dir.path(), "n1", "127.0.0.1:0", Some(&nowhere));
    lonely
        .node
        .wait_for("no seed answered yet; still serving alone and retrying");
    wait_for_states(&lonely.node.addr, &[("n1", "alive")], CONVERGE_TIMEOUT);
}

#[test]
fn a_bad_gossip_key_file_stops_the_agent_before_it_opens_anything() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("gossip.key");
    std::fs::write(&key, "not base64!\n").expect("write");
    let data = dir.path().join("data");
    let output = common::proglog()
        .args([
            "agent",
            "--rpc-addr",
            "127.0.0.1:0",
            "--gossip-addr",
            "127.0.0.1:0",
        ])
        .arg("--gossip-key-file")
        .arg(&key)
        .arg("--data-dir")
        .arg(&data)
        .output()
        .expect("run agent");
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cluster.gossip_key_file") && stderr.contains("line 1"),
        "{stderr}"
    );
    assert!(!data.exists(), "the data directory was created");
}

#[test]
fn cert_gossip_key_writes_a_private_key_file_the_agent_accepts() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("gossip.key");
    let status = common::proglog()
        .args(["cert", "gossip-key"])
        .arg(&key)
        .status()
        .expect("run cert");
    assert!(status.success());
    let mode = std::fs::metadata(&key)
        .expect("key file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let again = common::proglog()
        .args(["cert", "gossip-key"])
        .arg(&key)
        .output()
        .expect("run cert");
    assert!(!again.status.success(), "an existing key was overwritten");
    let n1 = Node::start_with_env(
        &dir.path().join("n1"),
        &[
            "--gossip-addr",
            "127.0.0.1:0",
            "--gossip-key-file",
            key.to_str().expect("utf-8"),
        ],
        &[],
    );
    n1.wait_for("gossip listening");
}
