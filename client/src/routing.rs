//! Which node a request goes to: pure decisions over the client's picture
//! of the cluster, so they are tested without a network.

use std::collections::HashSet;
use std::time::Duration;

/// Where reads (consume, follow, log info) go. Writes always go to the
/// leader when one is known (and to any node otherwise: followers forward).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ReadPreference {
    /// The leader only: the freshest commit offset, at the leader's cost.
    Leader,
    /// Followers, in turn, so reads spread and spare the leader; the leader
    /// when no follower is usable. A follower serves only committed records
    /// but may be a little behind the leader.
    #[default]
    Followers,
    /// Every usable node in turn.
    Any,
    /// The node with the lowest observed round-trip time (each node is tried
    /// once to measure it).
    Nearest,
    /// This node (`HOST:PORT` as `GetServers` names it, or a seed address)
    /// while it is usable, then as [`Followers`](Self::Followers).
    Node(String),
}

/// What a request does, for routing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Operation {
    /// Produce: to the leader.
    Write,
    /// Consume and info: by the read preference.
    Read,
}

/// A node as `GetServers` and the client's measurements describe it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Candidate {
    pub(crate) addr: String,
    pub(crate) is_leader: bool,
    /// Gossip says "down" or "left".
    pub(crate) gone: bool,
    /// Smoothed round-trip time of its recent answers.
    pub(crate) latency: Option<Duration>,
}

/// The node for `operation`, skipping `excluded` (nodes that failed this
/// operation already) and nodes gossip calls gone while others remain;
/// `turn` rotates among equals. `None` when every node is excluded.
pub(crate) fn pick(
    nodes: &[Candidate],
    operation: Operation,
    preference: &ReadPreference,
    excluded: &HashSet<String>,
    turn: usize,
) -> Option<String> {
    let open: Vec<&Candidate> = nodes
        .iter()
        .filter(|n| !excluded.contains(&n.addr))
        .collect();
    let alive: Vec<&Candidate> = open.iter().copied().filter(|n| !n.gone).collect();
    let usable = if alive.is_empty() { open } else { alive };
    if usable.is_empty() {
        return None;
    }
    let rotate = |among: &[&Candidate]| among[turn % among.len()].addr.clone();
    let leader_or_any = |usable: &[&Candidate]| {
        usable
            .iter()
            .find(|n| n.is_leader)
            .map_or_else(|| rotate(usable), |n| n.addr.clone())
    };
    let followers = |usable: &[&Candidate]| {
        let followers: Vec<&Candidate> = usable.iter().copied().filter(|n| !n.is_leader).collect();
        if followers.is_empty() {
            rotate(usable)
        } else {
            rotate(&followers)
        }
    };
    Some(match (operation, preference) {
        (Operation::Write, _) | (Operation::Read, ReadPreference::Leader) => leader_or_any(&usable),
        (Operation::Read, ReadPreference::Followers) => followers(&usable),
        (Operation::Read, ReadPreference::Any) => rotate(&usable),
        (Operation::Read, ReadPreference::Nearest) => usable
            .iter()
            .min_by_key(|n| n.latency.unwrap_or(Duration::ZERO))
            .map(|n| n.addr.clone())
            .unwrap_or_else(|| rotate(&usable)),
        (Operation::Read, ReadPreference::Node(addr)) => usable
            .iter()
            .find(|n| &n.addr == addr)
            .map_or_else(|| followers(&usable), |n| n.addr.clone()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(addr: &str, is_leader: bool) -> Candidate {
        Candidate {
            addr: addr.to_owned(),
            is_leader,
            gone: false,
            latency: None,
        }
    }

    fn three() -> Vec<Candidate> {
        vec![node("a", false), node("b", true), node("c", false)]
    }

    fn none() -> HashSet<String> {
        HashSet::new()
    }

    #[test]
    fn writes_go_to_the_leader_whatever_the_read_preference() {
        for preference in [
            ReadPreference::Followers,
            ReadPreference::Any,
            ReadPreference::Nearest,
            ReadPreference::Node("a".to_owned()),
        ] {
            for turn in 0..3 {
                assert_eq!(
                    pick(&three(), Operation::Write, &preference, &none(), turn).as_deref(),
                    Some("b")
                );
            }
        }
    }

    #[test]
    fn without_a_known_leader_writes_rotate_over_nodes_that_forward() {
        let nodes = vec![node("a", false), node("c", false)];
        let picked: Vec<_> = (0..2)
            .filter_map(|turn| {
                pick(
                    &nodes,
                    Operation::Write,
                    &ReadPreference::default(),
                    &none(),
                    turn,
                )
            })
            .collect();
        assert_eq!(picked, ["a", "c"]);
    }

    #[test]
    fn reads_spread_over_followers_and_fall_back_to_the_leader() {
        let picked: Vec<_> = (0..4)
            .filter_map(|turn| {
                pick(
                    &three(),
                    Operation::Read,
                    &ReadPreference::Followers,
                    &none(),
                    turn,
                )
            })
            .collect();
        assert_eq!(picked, ["a", "c", "a", "c"]);
        let excluded: HashSet<String> = ["a".to_owned(), "c".to_owned()].into();
        assert_eq!(
            pick(
                &three(),
                Operation::Read,
                &ReadPreference::Followers,
                &excluded,
                0
            )
            .as_deref(),
            Some("b")
        );
        assert_eq!(
            pick(
                &three(),
                Operation::Read,
                &ReadPreference::Leader,
                &none(),
                1
            )
            .as_deref(),
            Some("b")
        );
    }

    #[test]
    fn a_failed_or_gone_node_is_skipped_while_another_remains() {
        let mut nodes = three();
        nodes[0].gone = true;
        let excluded: HashSet<String> = ["c".to_owned()].into();
        // Only the leader is alive and not excluded.
        assert_eq!(
            pick(
                &nodes,
                Operation::Read,
                &ReadPreference::Followers,
                &excluded,
                0
            )
            .as_deref(),
            Some("b")
        );
        // Leader excluded too: the gone node is still better than nothing.
        let excluded: HashSet<String> = ["b".to_owned(), "c".to_owned()].into();
        assert_eq!(
            pick(&nodes, Operation::Write, &ReadPreference::Any, &excluded, 0).as_deref(),
            Some("a")
        );
        let all: HashSet<String> = ["a", "b", "c"].map(str::to_owned).into();
        assert_eq!(
            pick(&nodes, Operation::Write, &ReadPreference::Any, &all, 0),
            None
        );
    }

    #[test]
    fn nearest_measures_every_node_then_keeps_the_fastest() {
        let mut nodes = three();
        nodes[0].latency = Some(Duration::from_millis(5));
        nodes[1].latency = Some(Duration::from_millis(1));
        // c was never measured: it is tried first.
        assert_eq!(
            pick(
                &nodes,
                Operation::Read,
                &ReadPreference::Nearest,
                &none(),
                0
            )
            .as_deref(),
            Some("c")
        );
        nodes[2].latency = Some(Duration::from_millis(9));
        assert_eq!(
            pick(
                &nodes,
                Operation::Read,
                &ReadPreference::Nearest,
                &none(),
                0
            )
            .as_deref(),
            Some("b")
        );
    }

    #[test]
    fn a_preferred_node_is_kept_until_it_fails() {
        let preference = ReadPreference::Node("b".to_owned());
        assert_eq!(
            pick(&three(), Operation::Read, &preference, &none(), 7).as_deref(),
            Some("b")
        );
        let excluded: HashSet<String> = ["b".to_owned()].into();
        let other = pick(&three(), Operation::Read, &preference, &excluded, 0);
        assert!(matches!(other.as_deref(), Some("a" | "c")), "{other:?}");
    }
}
