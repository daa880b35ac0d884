//! Replication between real `proglog agent` processes on 127.0.0.1: three
//! nodes bootstrap with `--bootstrap-expect 3`, elect one leader, take
//! produce on every node (followers forward to the leader), and serve the
//! same committed records everywhere. Then the leader is SIGKILLed while a
//! client writes: writes resume through the others, the old leader restarts
//! from its data and catches up, and every acknowledged record is on every
//! replica, in the same order, exactly once.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::Node;

/// Longest a cluster may take to elect a leader (election timeouts are
/// 1-2 s at the default ticks; a few rounds may be needed).
const ELECTION_TIMEOUT: Duration = Duration::from_secs(20);
/// Longest one produce may keep failing while a new leader is elected.
const FAILOVER_TIMEOUT: Duration = Duration::from_secs(20);
/// Longest a restarted replica may take to catch up.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(20);
/// Pause between two polls of a condition.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

const GOSSIP_ENV: [(&str, &str); 2] = [
    ("PROGLOG_CLUSTER__PROBE_PERIOD_MS", "200"),
    ("PROGLOG_CLUSTER__SUSPECT_TO_DOWN_MS", "1000"),
];

/// A free UDP port on 127.0.0.1 (bound, noted, freed).
fn free_udp_addr() -> String {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    socket.local_addr().expect("addr").to_string()
}

fn spawn(dir: &Path, name: &str, gossip: &str, seeds: &str) -> Node {
    Node::spawn(
        &dir.join(name),
        &[
            "--node-name",
            name,
            "--gossip-addr",
            gossip,
            "--join",
            seeds,
            "--bootstrap-expect",
            "3",
        ],
        &GOSSIP_ENV,
    )
}

fn proglog(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_proglog"))
        .args(args)
        .output()
        .expect("run proglog")
}

fn leader_of(addr: &str) -> Option<String> {
    let output = proglog(&["servers", "--json", "--addr", addr]);
    if !output.status.success() {
        return None;
    }
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).ok()?;
    let leaders: Vec<String> = json["servers"]
        .as_array()?
        .iter()
        .filter(|s| s["isLeader"] == true)
        .filter_map(|s| s["id"].as_str().map(str::to_owned))
        .collect();
    match &leaders[..] {
        [leader] => Some(leader.clone()),
        _ => None,
    }
}

/// `(name, role)` of every server `proglog servers --json` lists at `addr`.
fn roles_of(addr: &str) -> Vec<(String, String)> {
    let output = proglog(&["servers", "--json", "--addr", addr]);
    assert!(output.status.success(), "{output:?}");
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    let mut roles: Vec<(String, String)> = json["servers"]
        .as_array()
        .expect("servers")
        .iter()
        .map(|s| {
            let field = |key: &str| s[key].as_str().unwrap_or_default().to_owned();
            (field("id"), field("role"))
        })
        .collect();
    roles.sort();
    roles
}

/// Waits until every node in `addrs` names the same single leader.
fn agreed_leader(addrs: &[&str]) -> String {
    let deadline = Instant::now() + ELECTION_TIMEOUT;
    loop {
        let seen: Vec<Option<String>> = addrs.iter().map(|a| leader_of(a)).collect();
        if let Some(Some(first)) = seen.first()
            && seen.iter().all(|s| s.as_ref() == Some(first))
        {
            return first.clone();
        }
        assert!(Instant::now() < deadline, "no agreed leader: {seen:?}");
        std::thread::sleep(POLL_INTERVAL);
    }
}

fn produce(addr: &str, value: &str) -> Result<u64, String> {
    let output = proglog(&["produce", "--addr", addr, value]);
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .map_err(|e| format!("not an offset: {e}"))
}

/// Every committed (offset, value) a node serves.
fn consume_all(addr: &str) -> Vec<(u64, String)> {
    let output = proglog(&["consume", "--addr", addr, "--from", "0", "--output", "json"]);
    assert!(output.status.success(), "consume from {addr}: {output:?}");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| {
            let record: serde_json::Value = serde_json::from_str(line).expect("json line");
            let value = record["value"].as_str().expect("value").to_owned();
            (record["offset"].as_u64().expect("offset"), value)
        })
        .collect()
}

fn wait_for_records(addr: &str, count: usize) -> Vec<(u64, String)> {
    let deadline = Instant::now() + CATCH_UP_TIMEOUT;
    loop {
        let records = consume_all(addr);
        if records.len() >= count {
            return records;
        }
        assert!(
            Instant::now() < deadline,
            "{addr} serves {} records, expected {count}",
            records.len()
        );
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// Three nodes n1..n3 bootstrapping together (each seeded with the other
/// two), with `extra(i)` flags for node i; waits until all listen.
fn start_three(dir: &Path, extra: impl Fn(usize) -> Vec<String>) -> (Vec<Node>, Vec<String>) {
    let names = ["n1", "n2", "n3"];
    let gossip: Vec<String> = names.iter().map(|_| free_udp_addr()).collect();
    let mut nodes: Vec<Node> = (0..3)
        .map(|i| {
            let seeds = format!("{},{}", gossip[(i + 1) % 3], gossip[(i + 2) % 3]);
            let mut args = vec![
                "--node-name".to_owned(),
                names[i].to_owned(),
                "--gossip-addr".to_owned(),
                gossip[i].clone(),
                "--join".to_owned(),
                seeds,
                "--bootstrap-expect".to_owned(),
                "3".to_owned(),
            ];
            args.extend(extra(i));
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            Node::spawn(&dir.join(names[i]), &args, &GOSSIP_ENV)
        })
        .collect();
    for node in &mut nodes {
        node.wait_listening();
    }
    (nodes, gossip)
}

#[test]
fn three_replicas_agree_survive_a_leader_kill_and_lose_no_acknowledged_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    let names = ["n1", "n2", "n3"];
    let (mut nodes, gossip) = start_three(dir.path(), |_| Vec::new());
    let addrs: Vec<String> = nodes.iter().map(|n| n.addr.clone()).collect();
    let addr_refs: Vec<&str> = addrs.iter().map(String::as_str).collect();
    let leader = agreed_leader(&addr_refs);
    let metrics = reqwest_get(&format!("http://{}/metrics", addrs[0]));
    assert!(metrics.contains("proglog_raft_term"), "{metrics}");
    assert!(metrics.contains("proglog_raft_applied_index"), "{metrics}");

    // Produce through every node: offsets are dense whichever node took it.
    let mut acked: Vec<(u64, String)> = Vec::new();
    for i in 0..9 {
        let value = format!("v{i}");
        let offset = produce(&addrs[i % 3], &value).expect("produce");
        acked.push((offset, base64(&value)));
    }
    let offsets: Vec<u64> = acked.iter().map(|(o, _)| *o).collect();
    assert_eq!(offsets, (0..9).collect::<Vec<u64>>());
    for addr in &addrs {
        assert_eq!(wait_for_records(addr, acked.len()), acked, "{addr}");
    }

    // SIGKILL the leader; writes resume through the others.
    let index = names
        .iter()
        .position(|n| *n == leader)
        .expect("leader is a node");
    let killed = nodes.remove(index);
    let killed_gossip = gossip[index].clone();
    drop(killed);
    let survivors: Vec<&str> = addrs
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != index)
        .map(|(_, a)| a.as_str())
        .collect();
    for i in 9..15 {
        let value = format!("v{i}");
        let deadline = Instant::now() + FAILOVER_TIMEOUT;
        let offset = loop {
            match produce(survivors[i % 2], &value) {
                Ok(offset) => break offset,
                Err(e) => {
                    assert!(Instant::now() < deadline, "no failover: {e}");
                    std::thread::sleep(POLL_INTERVAL);
                }
            }
        };
        acked.push((offset, base64(&value)));
    }
    let new_leader = agreed_leader(&survivors);
    assert_ne!(new_leader, leader);

    // The old leader restarts from its data and catches up.
    let seeds = gossip
        .iter()
        .filter(|g| **g != killed_gossip)
        .cloned()
        .collect::<Vec<_>>()
        .join(",");
    let mut restarted = spawn(dir.path(), &leader, &killed_gossip, &seeds);
    restarted.wait_listening();
    restarted.wait_for("raft state found; rejoining (never bootstrapping again)");
    let mut all: Vec<String> = survivors.iter().map(|s| (*s).to_owned()).collect();
    all.push(restarted.addr.clone());
    let reference = wait_for_records(&all[0], acked.len());
    for addr in &all {
        let records = wait_for_records(addr, acked.len());
        assert_eq!(records, reference, "{addr} diverges");
    }
    // Every acknowledged record, at its acknowledged offset, exactly once.
    for (offset, value) in &acked {
        let found: Vec<_> = reference.iter().filter(|(_, v)| v == value).collect();
        assert_eq!(found, [&(*offset, value.clone())], "{value}");
    }
    let offsets: Vec<u64> = reference.iter().map(|(o, _)| *o).collect();
    assert_eq!(
        offsets,
        (0..reference.len() as u64).collect::<Vec<u64>>(),
        "dense offsets"
    );
}

fn base64(value: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(value)
}

/// A free TCP port on 127.0.0.1 (bound, noted, freed), so a restarted node
/// keeps its RPC address.
fn free_tcp_addr() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").to_string()
}

#[test]
fn a_rolling_restart_with_a_producer_running_loses_no_acknowledged_record() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};

    let dir = tempfile::tempdir().expect("tempdir");
    let names = ["n1", "n2", "n3"];
    let gossip: Vec<String> = names.iter().map(|_| free_udp_addr()).collect();
    let rpc: Vec<String> = names.iter().map(|_| free_tcp_addr()).collect();
    let start = |i: usize| {
        let seeds = format!("{},{}", gossip[(i + 1) % 3], gossip[(i + 2) % 3]);
        Node::spawn(
            &dir.path().join(names[i]),
            &[
                "--node-name",
                names[i],
                "--rpc-addr",
                &rpc[i],
                "--gossip-addr",
                &gossip[i],
                "--join",
                &seeds,
                "--bootstrap-expect",
                "3",
            ],
            &GOSSIP_ENV,
        )
    };
    let mut nodes: Vec<Node> = (0..3).map(start).collect();
    for node in &mut nodes {
        node.wait_listening();
    }
    let rpc_refs: Vec<&str> = rpc.iter().map(String::as_str).collect();
    agreed_leader(&rpc_refs);

    // One producer, round robin over the nodes, retrying on the next node.
    let acked = Arc::new(Mutex::new(Vec::<(u64, String)>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let producer = {
        let (acked, stop, rpc) = (Arc::clone(&acked), Arc::clone(&stop), rpc.clone());
        std::thread::spawn(move || {
            let mut i = 0_usize;
            while !stop.load(Ordering::Relaxed) {
                let value = format!("r{i}");
                // A failure (that node is restarting) moves on to the
                // next node with a new value: a failed produce is
                // indeterminate, never counted as acknowledged.
                if let Ok(offset) = produce(&rpc[i % 3], &value) {
                    acked.lock().expect("lock").push((offset, base64(&value)));
                }
                i += 1;
            }
        })
    };
    let acked_count = || acked.lock().expect("lock").len();
    let mut handovers = 0;
    for i in 0..3 {
        let before = acked_count();
        // SIGTERM is a restart, not a leave: exit 0, log closed cleanly;
        // a leader hands leadership over first.
        let was_leader = leader_of(&rpc[i]).as_deref() == Some(names[i]);
        nodes[i].signal("TERM");
        assert!(
            nodes[i].wait_exit().success(),
            "{} exited with an error",
            names[i]
        );
        nodes[i].wait_for("log flushed and closed cleanly");
        if was_leader {
            nodes[i].wait_for("leadership handed over");
            handovers += 1;
        }
        nodes[i] = start(i);
        nodes[i].wait_listening();
        nodes[i].wait_for("log was closed cleanly; no recovery needed");
        agreed_leader(&rpc_refs);
        // Writes went on while this node was away, and go on now.
        let deadline = Instant::now() + FAILOVER_TIMEOUT;
        while acked_count() < before + 5 {
            assert!(
                Instant::now() < deadline,
                "writes stalled after restarting {}",
                names[i]
            );
            std::thread::sleep(POLL_INTERVAL);
        }
    }
    stop.store(true, Ordering::Relaxed);
    producer.join().expect("producer");
    eprintln!("leaderships handed over on SIGTERM: {handovers}");
    let acked = acked.lock().expect("lock").clone();
    assert!(
        acked.len() >= 15,
        "too few writes acknowledged: {}",
        acked.len()
    );
    let reference = wait_for_records(&rpc[0], acked.len());
    for addr in &rpc {
        assert_eq!(
            wait_for_records(addr, acked.len()),
            reference,
            "{addr} diverges"
        );
    }
    for (offset, value) in &acked {
        let found: Vec<_> = reference.iter().filter(|(_, v)| v == value).collect();
        assert_eq!(found, [&(*offset, value.clone())], "{value}");
    }
}

fn reqwest_get(url: &str) -> String {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        reqwest::get(url)
            .await
            .expect("GET")
            .text()
            .await
            .expect("body")
    })
}

#[test]
fn a_single_node_grows_to_three_and_then_survives_losing_the_first() {
    let dir = tempfile::tempdir().expect("tempdir");
    let names = ["n1", "n2", "n3"];
    let gossip: Vec<String> = names.iter().map(|_| free_udp_addr()).collect();
    // n1 alone: a one-voter cluster (no seeds).
    let mut n1 = Node::spawn(
        &dir.path().join("n1"),
        &[
            "--node-name",
            "n1",
            "--gossip-addr",
            &gossip[0],
            "--bootstrap-expect",
            "1",
        ],
        &GOSSIP_ENV,
    );
    n1.wait_listening();
    n1.wait_for("bootstrapping the Raft cluster");
    agreed_leader(&[n1.addr.as_str()]);
    assert_eq!(roles_of(&n1.addr), [("n1".to_owned(), "voter".to_owned())]);
    let mut acked: Vec<(u64, String)> = Vec::new();
    for i in 0..5 {
        let value = format!("g{i}");
        acked.push((produce(&n1.addr, &value).expect("produce"), base64(&value)));
    }
    // n2 and n3 join through n1: learners first, voters once caught up.
    let mut joined = Vec::new();
    for i in 1..3 {
        let mut node = Node::spawn(
            &dir.path().join(names[i]),
            &[
                "--node-name",
                names[i],
                "--gossip-addr",
                &gossip[i],
                "--join",
                &gossip[0],
                "--bootstrap-expect",
                "1",
            ],
            &GOSSIP_ENV,
        );
        node.wait_listening();
        node.wait_for("joining the running Raft cluster: waiting for its leader to add this node as a learner");
        assert_eq!(
            wait_for_records(&node.addr, acked.len()),
            acked,
            "{} caught up",
            names[i]
        );
        joined.push(node);
    }
    // Three voters: without n1 the other two still have a majority.
    let deadline = Instant::now() + FAILOVER_TIMEOUT;
    while !reqwest_get(&format!("http://{}/metrics", n1.addr)).contains("proglog_raft_voters 3") {
        assert!(
            Instant::now() < deadline,
            "n2 and n3 were not promoted to voters"
        );
        std::thread::sleep(POLL_INTERVAL);
    }
    let voters: Vec<(String, String)> = names
        .iter()
        .map(|name| ((*name).to_owned(), "voter".to_owned()))
        .collect();
    assert_eq!(
        roles_of(&joined[1].addr),
        voters,
        "GetServers shows the roles"
    );
    let deadline = Instant::now() + FAILOVER_TIMEOUT;
    loop {
        let metrics = reqwest_get(&format!("http://{}/metrics", n1.addr));
        let lag = |peer: &str| format!("proglog_raft_peer_lag_entries{{peer=\"{peer}\"}}");
        if ["n2", "n3"].iter().all(|peer| metrics.contains(&lag(peer))) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the leader exports no lag for its peers: {metrics}"
        );
        std::thread::sleep(POLL_INTERVAL);
    }
    let value = "before-kill".to_owned();
    acked.push((
        produce(&joined[0].addr, &value).expect("produce"),
        base64(&value),
    ));
    drop(n1);
    let survivors: Vec<&str> = joined.iter().map(|n| n.addr.as_str()).collect();
    let value = "after-kill".to_owned();
    let deadline = Instant::now() + FAILOVER_TIMEOUT;
    let offset = loop {
        match produce(survivors[0], &value) {
            Ok(offset) => break offset,
            Err(e) => {
                assert!(
                    Instant::now() < deadline,
                    "the grown cluster lost its majority: {e}"
                );
                std::thread::sleep(POLL_INTERVAL);
            }
        }
    };
    acked.push((offset, base64(&value)));
    for addr in &survivors {
        assert_eq!(wait_for_records(addr, acked.len()), acked, "{addr}");
    }
}

fn cluster_status(addr: &str) -> serde_json::Value {
    let output = proglog(&["cluster", "status", "--json", "--addr", addr]);
    assert!(output.status.success(), "cluster status: {output:?}");
    serde_json::from_slice(&output.stdout).expect("json")
}

#[test]
fn cluster_commands_show_status_transfer_leadership_and_remove_a_voter() {
    let dir = tempfile::tempdir().expect("tempdir");
    let names = ["n1", "n2", "n3"];
    let (nodes, _gossip) = start_three(dir.path(), |_| Vec::new());
    let addrs: Vec<&str> = nodes.iter().map(|n| n.addr.as_str()).collect();
    let leader = agreed_leader(&addrs);
    produce(addrs[0], "x").expect("produce");

    let status = cluster_status(addrs[1]);
    let peers = status["peers"].as_array().expect("peers");
    assert_eq!(peers.len(), 3, "{status}");
    assert!(peers.iter().all(|p| p["membership"] == "voter"), "{status}");
    assert!(status["commitIndex"].as_u64() >= Some(1), "{status}");

    // Hand leadership to a chosen follower, asking through any node.
    let target = names.iter().find(|n| **n != leader).expect("a follower");
    let output = proglog(&["cluster", "transfer-leader", target, "--addr", addrs[2]]);
    assert!(output.status.success(), "transfer: {output:?}");
    assert_eq!(agreed_leader(&addrs), *target);

    // Remove the third node: two voters remain and still take writes.
    let removed = names.iter().find(|n| **n != *target).expect("another node");
    let output = proglog(&["cluster", "remove", removed, "--addr", addrs[0]]);
    assert!(output.status.success(), "remove: {output:?}");
    let index = names.iter().position(|n| n == removed).expect("index");
    let remaining: Vec<&str> = (0..3).filter(|i| *i != index).map(|i| addrs[i]).collect();
    let status = cluster_status(remaining[0]);
    assert_eq!(
        status["peers"].as_array().map(Vec::len),
        Some(2),
        "{status}"
    );
    produce(remaining[1], "y").expect("produce after removal");
    // The leader itself cannot be removed; it must transfer first.
    let output = proglog(&["cluster", "remove", target, "--addr", remaining[0]]);
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("transfer leadership first"),
        "{output:?}"
    );
}

/// Goal: with mutual TLS on, nodes replicate and forward to each other with
/// their node certificates (the default policy grants node-* `replicate`
/// only), and a client certificate with the rights produces through a
/// follower and reads back from every node.
#[test]
fn replication_runs_over_mutual_tls_with_node_certificates() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = dir.path().join("pki");
    let pki_str = pki.to_str().expect("utf-8").to_owned();
    let run = |args: &[&str]| {
        let output = proglog(args);
        assert!(output.status.success(), "{args:?}: {output:?}");
    };
    run(&["cert", "ca", "--out-dir", &pki_str]);
    let names = ["n1", "n2", "n3"];
    for name in names {
        run(&[
            "cert",
            "node",
            "--name",
            name,
            "--ip",
            "127.0.0.1",
            "--ca-dir",
            &pki_str,
            "--out-dir",
            &pki_str,
        ]);
    }
    run(&[
        "cert",
        "client",
        "--cn",
        "root",
        "--ca-dir",
        &pki_str,
        "--out-dir",
        &pki_str,
    ]);
    let file = |name: &str| pki.join(name).to_str().expect("utf-8").to_owned();
    let (nodes, _gossip) = start_three(dir.path(), |i| {
        [
            "--tls-cert-file".to_owned(),
            file(&format!("{}.pem", names[i])),
            "--tls-key-file".to_owned(),
            file(&format!("{}-key.pem", names[i])),
            "--tls-client-ca-file".to_owned(),
            file("ca.pem"),
        ]
        .to_vec()
    });
    let tls = [
        "--ca-file".to_owned(),
        file("ca.pem"),
        "--cert-file".to_owned(),
        file("root.pem"),
        "--key-file".to_owned(),
        file("root-key.pem"),
    ];
    let with_tls = |args: &[&str]| {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(tls.iter().map(String::as_str));
        proglog(&all)
    };
    let mut acked = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        let value = format!("tls-{i}");
        let deadline = Instant::now() + ELECTION_TIMEOUT;
        let offset: u64 = loop {
            let output = with_tls(&["produce", "--addr", &node.addr, &value]);
            if output.status.success() {
                break String::from_utf8_lossy(&output.stdout)
                    .trim()
                    .parse()
                    .expect("offset");
            }
            assert!(Instant::now() < deadline, "produce over TLS: {output:?}");
            std::thread::sleep(POLL_INTERVAL);
        };
        acked.push((offset, base64(&value)));
    }
    for node in &nodes {
        let deadline = Instant::now() + CATCH_UP_TIMEOUT;
        loop {
            let output = with_tls(&[
                "consume", "--addr", &node.addr, "--from", "0", "--output", "json",
            ]);
            assert!(output.status.success(), "consume over TLS: {output:?}");
            let records: Vec<(u64, String)> = String::from_utf8_lossy(&output.stdout)
                .lines()
                .map(|line| {
                    let record: serde_json::Value = serde_json::from_str(line).expect("json");
                    (
                        record["offset"].as_u64().expect("offset"),
                        record["value"].as_str().expect("value").to_owned(),
                    )
                })
                .collect();
            if records == acked {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{} serves {records:?}, want {acked:?}",
                node.addr
            );
            std::thread::sleep(POLL_INTERVAL);
        }
    }
    let output = with_tls(&["cluster", "status", "--json", "--addr", &nodes[0].addr]);
    assert!(
        output.status.success(),
        "cluster status over TLS: {output:?}"
    );
}
