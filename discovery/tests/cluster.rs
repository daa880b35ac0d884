//! In-process clusters over a simulated, seeded, lossy network, under
//! `tokio::time::pause()`: no sockets, and time moves only when every task
//! waits, so the bounds below are virtual time and cannot flake on a slow
//! machine.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use discovery::transport::MemoryNetwork;
use discovery::{Config, Discovery, KEY_BYTES, Keyring, MemberEvent, MemberInfo, MemberState};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Virtual time a healthy cluster gets to converge: a few probe periods
/// and join backoffs.
const CONVERGE_BOUND: Duration = Duration::from_secs(30);
/// Virtual time we watch a cluster for things that must NOT happen.
const QUIET_PERIOD: Duration = Duration::from_secs(60);
/// Probe period of the test configuration.
const PROBE_PERIOD_MS: u64 = 1_000;
/// Suspicion timeout of the test configuration.
const SUSPECT_TO_DOWN_MS: u64 = 4_000;
/// Time from a crash to "down" everywhere: the crashed node must first be
/// probed and miss it (a probe period plus its indirect probes, up to two
/// periods until it is picked), then the suspicion must run out and the
/// verdict spread (another period).
const DOWN_BOUND: Duration = Duration::from_millis(4 * PROBE_PERIOD_MS + SUSPECT_TO_DOWN_MS);

fn addr(index: usize) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, 1], 7000 + index as u16))
}

fn config(index: usize, incarnation: u64, seeds: &[usize], keyring: Option<&Keyring>) -> Config {
    let mut config = Config::new(
        format!("n{index}"),
        index as u64 + 1,
        incarnation,
        addr(index),
        format!("10.0.0.1:{}", 8000 + index),
    );
    config.join = seeds.iter().map(|&seed| addr(seed).to_string()).collect();
    config.keyring = keyring.cloned();
    config.probe_period_ms = PROBE_PERIOD_MS;
    config.suspect_to_down_ms = SUSPECT_TO_DOWN_MS;
    config.join_backoff_min_ms = 200;
    config.join_backoff_max_ms = 2_000;
    config.rng_seed = Some(index as u64 * 7919 + incarnation);
    config
}

struct Node {
    handle: Discovery,
    _events: mpsc::Receiver<MemberEvent>,
}

fn start(network: &MemoryNetwork, config: Config) -> Node {
    let transport = network.bind(config.advertise_addr);
    let (handle, events) = Discovery::start(config, transport).expect("start");
    Node {
        handle,
        _events: events,
    }
}

/// A cluster of `n` where every node joins through node 0.
fn cluster(network: &MemoryNetwork, n: usize, keyring: Option<&Keyring>) -> Vec<Node> {
    (0..n)
        .map(|i| {
            let seeds: &[usize] = if i == 0 { &[] } else { &[0] };
            start(network, config(i, 1, seeds, keyring))
        })
        .collect()
}

fn state_of(members: &[MemberInfo], id: u64) -> Option<MemberState> {
    members.iter().find(|m| m.id == id).map(|m| m.state)
}

/// Waits until `node` sees exactly the ids `alive` as alive, or panics
/// after `bound` of virtual time.
async fn wait_until(
    node: &Discovery,
    bound: Duration,
    what: &str,
    check: impl Fn(&[MemberInfo]) -> bool,
) {
    let mut watch = node.watch();
    let waited = tokio::time::timeout(bound, watch.wait_for(|members| check(members))).await;
    assert!(
        matches!(waited, Ok(Ok(_))),
        "node {} did not see {what} within {bound:?}; it sees {:?}",
        node.local_id(),
        node.members()
            .iter()
            .map(|m| (m.name.clone(), m.state))
            .collect::<Vec<_>>()
    );
}

async fn wait_all_alive(nodes: &[Node], ids: &[u64], bound: Duration) {
    for node in nodes {
        wait_until(&node.handle, bound, "every member alive", |members| {
            ids.iter()
                .all(|&id| state_of(members, id) == Some(MemberState::Alive))
        })
        .await;
    }
}

fn ids(n: usize) -> Vec<u64> {
    (0..n).map(|i| i as u64 + 1).collect()
}

#[tokio::test(start_paused = true)]
async fn three_members_converge() {
    let network = MemoryNetwork::new(3);
    let nodes = cluster(&network, 3, None);
    wait_all_alive(&nodes, &ids(3), CONVERGE_BOUND).await;
    let members = nodes[2].handle.members();
    assert_eq!(members.len(), 3);
    let n0 = members.iter().find(|m| m.id == 1).expect("n0 listed");
    assert_eq!(n0.rpc_addr, "10.0.0.1:8000");
    assert_eq!(n0.name, "n0");
}

#[tokio::test(start_paused = true)]
async fn seven_members_converge_through_one_seed() {
    let network = MemoryNetwork::new(7);
    let nodes = cluster(&network, 7, None);
    wait_all_alive(&nodes, &ids(7), CONVERGE_BOUND).await;
}

#[tokio::test(start_paused = true)]
async fn seven_members_converge_with_ten_percent_packet_loss() {
    let network = MemoryNetwork::new(10);
    network.set_loss(0.10);
    let nodes = cluster(&network, 7, None);
    wait_all_alive(&nodes, &ids(7), CONVERGE_BOUND * 2).await;
    let (delivered, dropped) = network.counts();
    assert!(
        dropped > 0 && delivered > dropped,
        "loss was not applied: {delivered} delivered, {dropped} dropped"
    );
}

#[tokio::test(start_paused = true)]
async fn a_crashed_member_is_marked_down_within_the_suspicion_bound() {
    let network = MemoryNetwork::new(4);
    let nodes = cluster(&network, 3, None);
    wait_all_alive(&nodes, &ids(3), CONVERGE_BOUND).await;
    nodes[2].handle.abort();
    let crashed = Instant::now();
    for node in &nodes[..2] {
        wait_until(&node.handle, DOWN_BOUND, "n2 down", |members| {
            state_of(members, 3) == Some(MemberState::Down)
        })
        .await;
    }
    assert!(crashed.elapsed() <= DOWN_BOUND);
}

#[tokio::test(start_paused = true)]
async fn a_restarted_member_rejoins_with_its_newer_identity_and_does_not_flap() {
    let network = MemoryNetwork::new(5);
    let mut nodes = cluster(&network, 3, None);
    wait_all_alive(&nodes, &ids(3), CONVERGE_BOUND).await;
    nodes[2].handle.abort();
    for node in &nodes[..2] {
        wait_until(&node.handle, DOWN_BOUND, "n2 down", |members| {
            state_of(members, 3) == Some(MemberState::Down)
        })
        .await;
    }
    // Same name and id, newer incarnation, and a new address (a pod that
    // came back with another IP).
    let mut restarted = config(2, 2, &[0], None);
    restarted.advertise_addr = addr(9);
    restarted.rpc_addr = "10.0.0.1:8009".into();
    nodes[2] = start(&network, restarted);
    for node in &nodes {
        wait_until(
            &node.handle,
            CONVERGE_BOUND,
            "n2 back with incarnation 2",
            |members| {
                members.iter().any(|m| {
                    m.id == 3
                        && m.state == MemberState::Alive
                        && m.incarnation == 2
                        && m.gossip_addr == addr(9)
                })
            },
        )
        .await;
    }
    // No flapping: nobody sees the new n2 anything but alive for a while,
    // and nobody lists its old identity.
    let mut watches: Vec<_> = nodes[..2].iter().map(|n| n.handle.watch()).collect();
    let quiet_until = Instant::now() + QUIET_PERIOD;
    for watch in &mut watches {
        let changed = tokio::time::timeout_at(
            quiet_until,
            watch.wait_for(|members| {
                members.iter().filter(|m| m.id == 3).count() != 1
                    || state_of(members, 3) != Some(MemberState::Alive)
            }),
        )
        .await;
        assert!(
            changed.is_err(),
            "n2 flapped after its restart: {:?}",
            changed
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_member_with_the_wrong_key_never_appears() {
    let network = MemoryNetwork::new(6);
    let key = Keyring::new(&[[7; KEY_BYTES]]).expect("key");
    let nodes = cluster(&network, 3, Some(&key));
    wait_all_alive(&nodes, &ids(3), CONVERGE_BOUND).await;
    let other = Keyring::new(&[[8; KEY_BYTES]]).expect("key");
    let intruder = start(&network, config(5, 1, &[0, 1], Some(&other)));
    let plaintext = start(&network, config(6, 1, &[0, 1], None));
    tokio::time::sleep(QUIET_PERIOD).await;
    for node in &nodes {
        let members = node.handle.members();
        assert_eq!(
            state_of(&members, 6),
            None,
            "wrong-key member listed: {members:?}"
        );
        assert_eq!(
            state_of(&members, 7),
            None,
            "plaintext member listed: {members:?}"
        );
        assert_eq!(members.len(), 3);
    }
    assert_eq!(intruder.handle.members().len(), 1);
    assert_eq!(plaintext.handle.members().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_rotated_keyring_keeps_the_cluster_together() {
    let network = MemoryNetwork::new(8);
    let old = Keyring::new(&[[1; KEY_BYTES]]).expect("key");
    let rotating = Keyring::new(&[[2; KEY_BYTES], [1; KEY_BYTES]]).expect("key");
    let nodes = vec![
        start(&network, config(0, 1, &[], Some(&rotating))),
        start(&network, config(1, 1, &[0], Some(&rotating))),
    ];
    wait_all_alive(&nodes, &ids(2), CONVERGE_BOUND).await;
    // A node still on the old key alone can send to the rotated ones but
    // cannot read their replies: it must not be taken for a member.
    let lagging = start(&network, config(2, 1, &[0], Some(&old)));
    tokio::time::sleep(QUIET_PERIOD).await;
    assert_eq!(
        lagging.handle.members().len(),
        1,
        "{:?}",
        lagging.handle.members()
    );
}

#[tokio::test(start_paused = true)]
async fn a_graceful_leave_is_seen_as_left_not_down() {
    let network = MemoryNetwork::new(9);
    let nodes = cluster(&network, 3, None);
    wait_all_alive(&nodes, &ids(3), CONVERGE_BOUND).await;
    nodes[2].handle.leave().await.expect("leave");
    for node in &nodes[..2] {
        wait_until(&node.handle, CONVERGE_BOUND, "n2 left", |members| {
            state_of(members, 3) == Some(MemberState::Left)
        })
        .await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_node_whose_seed_is_down_keeps_trying_and_joins_when_it_starts() {
    let network = MemoryNetwork::new(11);
    let waiting = start(&network, config(1, 1, &[0], None));
    tokio::time::sleep(QUIET_PERIOD).await;
    assert_eq!(waiting.handle.members().len(), 1);
    let seed = start(&network, config(0, 1, &[], None));
    let nodes = [seed, waiting];
    wait_all_alive(&nodes, &ids(2), CONVERGE_BOUND).await;
}

#[tokio::test(start_paused = true)]
async fn tags_spread_and_reach_late_joiners() {
    let network = MemoryNetwork::new(12);
    let nodes = cluster(&network, 2, None);
    wait_all_alive(&nodes, &ids(2), CONVERGE_BOUND).await;
    let tags = BTreeMap::from([("raft".to_owned(), "voter".to_owned())]);
    nodes[0].handle.set_tags(tags.clone()).await.expect("tags");
    let late = start(&network, config(2, 1, &[1], None));
    for node in [&nodes[1].handle, &late.handle] {
        wait_until(node, CONVERGE_BOUND, "n0's tags", |members| {
            members.iter().any(|m| m.id == 1 && m.meta.tags == tags)
        })
        .await;
    }
}
