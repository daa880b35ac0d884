//! Raft membership from gossip: the leader adds nodes that gossip says are
//! waiting to join as learners, and promotes a learner to voter once it has
//! caught up, one change at a time. Every node keeps its gossip tags in
//! step with its Raft membership. A voter leaves only by an explicit
//! removal: a node that fails or stops is never removed from here.

use std::time::Duration;

use replicator::{MembershipChange, Replica, Role};
use tokio_util::sync::CancellationToken;

use crate::cluster::Cluster;

/// How often membership is looked at.
const MEMBERSHIP_TICK: Duration = Duration::from_millis(500);

/// Runs until `shutdown`.
pub async fn manage(replica: Replica, cluster: Cluster, shutdown: CancellationToken) {
    let id = cluster.node_id();
    let mut announced: Option<Vec<u64>> = None;
    loop {
        tokio::select! {
            () = tokio::time::sleep(MEMBERSHIP_TICK) => {}
            () = shutdown.cancelled() => return,
        }
        let conf = replica.conf_state();
        let voters = conf.get_voters().to_vec();
        metrics::gauge!("proglog_raft_voters").set(voters.len() as f64);
        metrics::gauge!("proglog_raft_learners").set(conf.get_learners().len() as f64);
        let member = voters.contains(&id) || conf.get_learners().contains(&id);
        if member && announced.as_ref() != Some(&voters) {
            cluster.mark_raft_member(&voters).await;
            announced = Some(voters.clone());
        }
        let status = *replica.status().borrow();
        if status.role != Role::Leader {
            continue;
        }
        // Promote a caught-up learner first, then add one newcomer.
        let progress = replica.progress().await;
        // Each peer's replication lag, on the leader (entries behind its
        // last index); followers export none.
        for peer in progress.iter().filter(|p| p.id != id) {
            let name = cluster
                .member_name(peer.id)
                .unwrap_or_else(|| peer.id.to_string());
            metrics::gauge!("proglog_raft_peer_lag_entries", "peer" => name)
                .set(status.last_index.saturating_sub(peer.matched) as f64);
        }
        let caught_up = progress
            .iter()
            .find(|p| p.learner && p.matched >= status.commit_index)
            .map(|p| p.id);
        let change = if let Some(learner) = caught_up {
            Some(MembershipChange::Promote(learner))
        } else if conf.get_learners().is_empty() {
            cluster
                .joining_members()
                .into_iter()
                .find(|node| !voters.contains(node))
                .map(MembershipChange::AddLearner)
        } else {
            None
        };
        if let Some(change) = change {
            match replica.change_membership(change).await {
                Ok(()) => wait_applied(&replica, change).await,
                Err(e) => tracing::debug!(error = %e, ?change, "membership change not proposed"),
            }
        }
    }
}

/// Longest a proposed change may take to show in the applied conf state
/// before the loop looks again (and may propose it again).
const CHANGE_BOUND: Duration = Duration::from_secs(5);

async fn wait_applied(replica: &Replica, change: MembershipChange) {
    let deadline = tokio::time::Instant::now() + CHANGE_BOUND;
    while tokio::time::Instant::now() < deadline {
        let conf = replica.conf_state();
        let done = match change {
            MembershipChange::AddLearner(node) => conf.get_learners().contains(&node),
            MembershipChange::Promote(node) => conf.get_voters().contains(&node),
            MembershipChange::Remove(node) => {
                !conf.get_voters().contains(&node) && !conf.get_learners().contains(&node)
            }
        };
        if done {
            return;
        }
        tokio::time::sleep(MEMBERSHIP_TICK / 5).await;
    }
}
