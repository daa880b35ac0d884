//! In-process Raft clusters over an in-memory transport with cuts, under
//! `tokio::time::pause()` (time moves only when every task waits, so
//! election bounds are virtual time and cannot flake). Logs use
//! `fsync = never`, so storage writes run inline; the disk path is the same
//! code with an fsync added.
//!
//! Every scenario records a `proglog_checker::History` and ends with the
//! same check ([`assert_safe`]): every acknowledged value is in every
//! replica's committed records exactly once, at the index it was
//! acknowledged at, with no gap below it; a value whose proposal was
//! refused is in none; and replicas agree on every index they both hold.
//! `the_checker_catches_a_lost_record` is its negative control.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use bytes::Bytes;
use log_core::{Producer, RecordKind};
use proglog_checker::{AnomalyKind, History, Report};
use replicator::{
    Config, Error, LogStorage, MembershipChange, MemoryRouter, Proposed, Replica, Role,
};
use tokio::task::JoinHandle;

/// Virtual time a cluster gets to elect a leader: a few election timeouts
/// (1-2 s each at the default ticks).
const ELECTION_BOUND: Duration = Duration::from_secs(10);
/// Virtual time for every replica to apply what the leader committed.
const CATCH_UP_BOUND: Duration = Duration::from_secs(10);
/// Virtual time one proposal may take on a healthy majority.
const PROPOSE_BOUND: Duration = Duration::from_secs(5);
/// Pause between two looks at the replicas' status.
const POLL: Duration = Duration::from_millis(50);

/// A replica's committed entries as (index, value): a client record's value,
/// or for any other entry its term and stored bytes (so replicas that
/// disagree on one diverge).
type Committed = Vec<(u64, Bytes)>;

struct Cluster {
    router: MemoryRouter,
    dir: tempfile::TempDir,
    ids: Vec<u64>,
    nodes: HashMap<u64, (Replica, JoinHandle<()>)>,
}

impl Cluster {
    fn new(n: u64) -> Self {
        let mut cluster = Self {
            router: MemoryRouter::new(),
            dir: tempfile::tempdir().expect("tempdir"),
            ids: (1..=n).collect(),
            nodes: HashMap::new(),
        };
        for id in cluster.ids.clone() {
            cluster.start(id);
        }
        cluster
    }

    fn start(&mut self, id: u64) {
        self.start_with(id, true);
    }

    /// Starts replica `id`; a new one bootstraps with the cluster's ids
    /// when `bootstrap`, or else waits empty for a leader to add it.
    fn start_with(&mut self, id: u64, bootstrap: bool) {
        let config = log_core::Config {
            fsync: log_core::FsyncPolicy::Never,
            ..log_core::Config::default()
        };
        let storage =
            LogStorage::open(&self.dir.path().join(id.to_string()), config).expect("open storage");
        if bootstrap && !storage.is_initialized() {
            storage.bootstrap(&self.ids).expect("bootstrap");
        }
        let (transport, inbox) = self.router.join(id);
        let replica = Replica::start(Config::new(id), storage, transport, inbox).expect("start");
        self.nodes.insert(id, replica);
    }

    /// Crashes a replica: its task ends without a clean stop and messages
    /// to it are dropped.
    async fn kill(&mut self, id: u64) {
        self.router.leave(id);
        if let Some((replica, task)) = self.nodes.remove(&id) {
            task.abort();
            let _ended = task.await;
            drop(replica);
        }
    }

    fn replica(&self, id: u64) -> &Replica {
        &self.nodes[&id].0
    }

    /// The one leader among `among`, once they agree on it.
    async fn leader(&self, among: &[u64]) -> u64 {
        let deadline = tokio::time::Instant::now() + ELECTION_BOUND;
        loop {
            let statuses: Vec<_> = among
                .iter()
                .filter_map(|id| self.nodes.get(id))
                .map(|(replica, _)| *replica.status().borrow())
                .collect();
            let leaders: Vec<_> = statuses.iter().filter(|s| s.role == Role::Leader).collect();
            if let [leader] = leaders[..]
                && statuses.iter().all(|s| s.leader == Some(leader.id))
            {
                return leader.id;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no single leader among {among:?} within {ELECTION_BOUND:?}: {statuses:?}"
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until every running replica has applied `index`.
    async fn caught_up(&self, index: u64) {
        for (id, (replica, _)) in &self.nodes {
            let mut status = replica.status();
            let waited = tokio::time::timeout(
                CATCH_UP_BOUND,
                status.wait_for(|status| status.applied_index >= index),
            )
            .await;
            assert!(
                matches!(waited, Ok(Ok(_))),
                "replica {id} did not apply {index}: {:?}",
                *replica.status().borrow()
            );
        }
    }

    /// Every replica's committed entries.
    fn committed(&self) -> BTreeMap<u64, Committed> {
        self.nodes
            .iter()
            .map(|(id, (replica, _))| (*id, committed_of(replica)))
            .collect()
    }
}

fn committed_of(replica: &Replica) -> Committed {
    let applied = replica.status().borrow().applied_index;
    let log = replica.log();
    let mut entries = Vec::new();
    let mut next = log.lowest_offset().max(1);
    while next <= applied {
        let batch = log
            .read_batch(next, u64::MAX, applied + 1 - next)
            .expect("read committed");
        assert!(!batch.is_empty(), "committed index {next} missing");
        for record in batch {
            let value = match record.kind {
                RecordKind::Data => record.value,
                RecordKind::Internal => {
                    [&b"internal "[..], &record.term.to_le_bytes(), &record.value]
                        .concat()
                        .into()
                }
            };
            entries.push((record.offset, value));
            next = record.offset + 1;
        }
    }
    entries
}

/// The history check of every scenario: `history` against every replica's
/// committed entries.
fn check(history: &History, committed: &BTreeMap<u64, Committed>) -> Report {
    let replicas: Vec<(String, Committed)> = committed
        .iter()
        .map(|(id, entries)| (format!("replica {id}"), entries.clone()))
        .collect();
    proglog_checker::check(history, &replicas)
}

/// Fails the test, listing every anomaly, unless the run is safe.
fn assert_safe(history: &History, committed: &BTreeMap<u64, Committed>) -> Report {
    let report = check(history, committed);
    assert!(report.is_ok(), "{report:#}");
    report
}

fn value(tag: &str, i: usize) -> Bytes {
    Bytes::from(format!("{tag}-{i}"))
}

async fn propose_acked(replica: &Replica, values: Vec<Bytes>) -> u64 {
    tokio::time::timeout(PROPOSE_BOUND, replica.propose(values))
        .await
        .expect("proposal answered in time")
        .expect("proposal committed")
}

#[tokio::test(start_paused = true)]
async fn three_replicas_elect_one_leader_and_every_acknowledged_record_is_everywhere() {
    let cluster = Cluster::new(3);
    let leader = cluster.leader(&cluster.ids).await;
    let mut history = History::new();
    let mut last = 0;
    for i in 0..50 {
        let batch = vec![value("a", 2 * i), value("a", 2 * i + 1)];
        let first = propose_acked(cluster.replica(leader), batch.clone()).await;
        last = first + 1;
        history.ok(batch[0].clone(), first);
        history.ok(batch[1].clone(), first + 1);
    }
    cluster.caught_up(last).await;
    // Each at the index it was acknowledged at, so in order on every replica.
    let report = assert_safe(&history, &cluster.committed());
    assert_eq!(report.acked, 100);
    let follower = cluster
        .ids
        .iter()
        .copied()
        .find(|&id| id != leader)
        .expect("a follower");
    let refused = cluster.replica(follower).propose(vec![value("f", 0)]).await;
    assert!(
        matches!(refused, Err(Error::NotLeader { leader: Some(l) }) if l == leader),
        "{refused:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_partitioned_leader_loses_its_uncommitted_suffix_when_it_rejoins() {
    let cluster = Cluster::new(3);
    let old = cluster.leader(&cluster.ids).await;
    let mut history = History::new();
    let first = propose_acked(cluster.replica(old), vec![value("before", 0)]).await;
    history.ok(value("before", 0), first);
    cluster.caught_up(first).await;

    cluster.router.isolate(old, &cluster.ids);
    let stranded = {
        let replica = cluster.replica(old).clone();
        tokio::spawn(async move { replica.propose(vec![value("stranded", 0)]).await })
    };
    let majority: Vec<u64> = cluster
        .ids
        .iter()
        .copied()
        .filter(|&id| id != old)
        .collect();
    let new = cluster.leader(&majority).await;
    assert_ne!(new, old);
    let mut last = 0;
    for i in 0..10 {
        last = propose_acked(cluster.replica(new), vec![value("after", i)]).await;
        history.ok(value("after", i), last);
    }

    cluster.router.heal();
    let answer = tokio::time::timeout(PROPOSE_BOUND, stranded)
        .await
        .expect("the stranded proposal is answered once the old leader rejoins")
        .expect("task");
    assert!(matches!(answer, Err(Error::Dropped)), "{answer:?}");
    history.fail(value("stranded", 0));
    cluster.caught_up(last).await;
    assert_safe(&history, &cluster.committed());
}

#[tokio::test(start_paused = true)]
async fn a_crashed_follower_catches_up_after_restart() {
    let mut cluster = Cluster::new(3);
    let leader = cluster.leader(&cluster.ids).await;
    let follower = cluster
        .ids
        .iter()
        .copied()
        .find(|&id| id != leader)
        .expect("a follower");
    let mut history = History::new();
    let index = propose_acked(cluster.replica(leader), vec![value("one", 0)]).await;
    history.ok(value("one", 0), index);
    cluster.kill(follower).await;
    let mut last = 0;
    for i in 0..20 {
        last = propose_acked(cluster.replica(leader), vec![value("while-down", i)]).await;
        history.ok(value("while-down", i), last);
    }
    cluster.start(follower);
    cluster.caught_up(last).await;
    assert_safe(&history, &cluster.committed());
}

#[tokio::test(start_paused = true)]
async fn killing_the_leader_under_load_loses_no_acknowledged_record() {
    let mut cluster = Cluster::new(3);
    let mut history = History::new();
    let mut i = 0;
    for round in 0..3 {
        let leader = cluster
            .leader(&cluster.nodes.keys().copied().collect::<Vec<_>>())
            .await;
        for _ in 0..20 {
            let v = value("load", i);
            i += 1;
            match tokio::time::timeout(
                PROPOSE_BOUND,
                cluster.replica(leader).propose(vec![v.clone()]),
            )
            .await
            {
                Ok(Ok(index)) => history.ok(v, index),
                Ok(Err(Error::Dropped | Error::NotLeader { .. })) => history.fail(v),
                _ => history.timeout(v),
            }
        }
        // Crash the leader with proposals in flight that never reached a
        // follower (its messages are cut first): whatever it answered
        // before dying must survive, and what it did not answer is
        // indeterminate. Then bring it back for the next round.
        cluster.router.isolate(leader, &cluster.ids);
        let in_flight: Vec<_> = (0..3)
            .map(|k| {
                let replica = cluster.replica(leader).clone();
                let v = value(&format!("in-flight-{round}"), k);
                tokio::spawn(async move { (v.clone(), replica.propose(vec![v]).await) })
            })
            .collect();
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        cluster.kill(leader).await;
        cluster.router.heal();
        for proposal in in_flight {
            match proposal.await.expect("task") {
                (v, Ok(index)) => history.ok(v, index),
                (v, Err(_)) => history.timeout(v),
            }
        }
        let survivors: Vec<u64> = cluster.nodes.keys().copied().collect();
        cluster.leader(&survivors).await;
        cluster.start(leader);
    }
    let leader = cluster.leader(&cluster.ids).await;
    let last = propose_acked(cluster.replica(leader), vec![value("final", 0)]).await;
    history.ok(value("final", 0), last);
    cluster.caught_up(last).await;
    let report = assert_safe(&history, &cluster.committed());
    assert!(report.acked >= 60, "too few acknowledged: {report}");
    eprintln!("{report} (3 leader kills)");
}

#[tokio::test(start_paused = true)]
async fn the_checker_catches_a_lost_record() {
    let cluster = Cluster::new(3);
    let leader = cluster.leader(&cluster.ids).await;
    let mut history = History::new();
    let mut last = 0;
    for i in 0..5 {
        last = propose_acked(cluster.replica(leader), vec![value("c", i)]).await;
        history.ok(value("c", i), last);
    }
    cluster.caught_up(last).await;
    let committed = cluster.committed();
    assert_safe(&history, &committed);
    let kinds = |report: Report| {
        let mut kinds: Vec<AnomalyKind> = report.anomalies().iter().map(|a| a.kind()).collect();
        kinds.dedup();
        kinds
    };
    // Lose one acknowledged record on one replica: the check must see it
    // (and the hole it leaves).
    let mut lost = committed.clone();
    lost.values_mut()
        .next()
        .expect("a replica")
        .retain(|(_, v)| *v != value("c", 2));
    assert_eq!(
        kinds(check(&history, &lost)),
        [AnomalyKind::Lost, AnomalyKind::Gap]
    );
    // A value whose proposal was refused, yet committed.
    let mut refused = History::new();
    refused.fail(value("c", 0));
    assert_eq!(
        kinds(check(&refused, &committed)),
        [AnomalyKind::FailedButStored]
    );
    // Divergence: one replica's first entry (the leader's empty entry, or
    // the bootstrap's) differs.
    let mut diverged = committed;
    diverged.values_mut().next().expect("a replica")[0].1 = Bytes::from_static(b"other");
    assert_eq!(
        kinds(check(&history, &diverged)),
        [AnomalyKind::OffsetConflict, AnomalyKind::Divergence]
    );
}

/// Waits until the leader's conf state (as `replica` persisted it) passes
/// `check`.
async fn wait_for_conf(replica: &Replica, what: &str, check: impl Fn(&[u64], &[u64]) -> bool) {
    let deadline = tokio::time::Instant::now() + CATCH_UP_BOUND;
    loop {
        let conf = replica.conf_state();
        if check(conf.get_voters(), conf.get_learners()) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "conf state never had {what}: {conf:?}"
        );
        tokio::time::sleep(POLL).await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_single_node_grows_to_three_through_learners_and_survives_losing_the_first() {
    let mut cluster = Cluster::new(1);
    let first = cluster.leader(&[1]).await;
    assert_eq!(first, 1);
    let mut history = History::new();
    for i in 0..10 {
        let index = propose_acked(cluster.replica(1), vec![value("alone", i)]).await;
        history.ok(value("alone", i), index);
    }
    for new in [2, 3] {
        cluster.ids.push(new);
        cluster.start_with(new, false);
        let leader = cluster.replica(1).clone();
        leader
            .change_membership(MembershipChange::AddLearner(new))
            .await
            .expect("add learner");
        wait_for_conf(&leader, "the learner", |_, learners| {
            learners.contains(&new)
        })
        .await;
        // Caught up: the learner has what the leader committed.
        let commit = leader.status().borrow().commit_index;
        cluster.caught_up(commit).await;
        let progress = leader.progress().await;
        assert!(
            progress
                .iter()
                .any(|p| p.id == new && p.learner && p.matched >= commit),
            "{progress:?}"
        );
        leader
            .change_membership(MembershipChange::Promote(new))
            .await
            .expect("promote");
        wait_for_conf(&leader, "the new voter", |voters, _| voters.contains(&new)).await;
    }
    let last = propose_acked(cluster.replica(1), vec![value("three", 0)]).await;
    history.ok(value("three", 0), last);
    cluster.caught_up(last).await;
    // Three voters now: losing the first node keeps a majority.
    cluster.kill(1).await;
    let leader = cluster.leader(&[2, 3]).await;
    let last = propose_acked(cluster.replica(leader), vec![value("after", 0)]).await;
    history.ok(value("after", 0), last);
    cluster.caught_up(last).await;
    assert_safe(&history, &cluster.committed());
}

async fn propose_once(replica: &Replica, values: &[Bytes], id: u64, sequence: u64) -> Proposed {
    tokio::time::timeout(
        PROPOSE_BOUND,
        replica.propose_idempotent(values.to_vec(), Producer { id, sequence }),
    )
    .await
    .expect("idempotent proposal answered in time")
    .expect("idempotent proposal committed")
}

fn all_ids(cluster: &Cluster) -> Vec<u64> {
    cluster.nodes.keys().copied().collect()
}

/// Resending a producer's sequences (a client retry) answers the original
/// indices instead of appending again: on the same leader, on the next
/// leader, after every replica crashed (table rebuilt from the log) and
/// after a clean stop (table from its checkpoint). The values are checked
/// to be committed exactly once everywhere; the negative control below
/// shows the same resends without a producer id are caught as duplicates.
#[tokio::test(start_paused = true)]
async fn a_resent_sequence_gets_its_original_index_across_leaders_and_restarts() {
    let mut cluster = Cluster::new(3);
    let leader = cluster.leader(&cluster.ids).await;
    let batch: Vec<Bytes> = (0..3).map(|i| value("once", i)).collect();
    let first = propose_once(cluster.replica(leader), &batch, 7, 0).await;
    assert_eq!((first.count, first.duplicate), (3, false));
    let again = propose_once(cluster.replica(leader), &batch, 7, 0).await;
    assert_eq!(
        again,
        Proposed {
            duplicate: true,
            ..first
        }
    );
    // A resend overlapping old and new records: the old prefix is answered
    // alone, then the rest is new.
    let overlap = [value("once", 1), value("once", 2), value("once", 3)];
    let prefix = propose_once(cluster.replica(leader), &overlap, 7, 1).await;
    assert_eq!(
        prefix,
        Proposed {
            first: first.first + 1,
            count: 2,
            duplicate: true
        }
    );
    let rest = propose_once(cluster.replica(leader), &overlap[2..], 7, 3).await;
    assert_eq!((rest.count, rest.duplicate), (1, false));
    // Another producer's sequence 0 is its own.
    let other = propose_once(cluster.replica(leader), &[value("other", 0)], 8, 0).await;
    assert!(!other.duplicate);

    cluster.caught_up(other.first).await;
    cluster.kill(leader).await;
    let next = cluster.leader(&all_ids(&cluster)).await;
    let on_next = propose_once(cluster.replica(next), &batch, 7, 0).await;
    assert_eq!(on_next, again, "the next leader knows the producer");
    cluster.start(leader);
    cluster.leader(&cluster.ids).await;

    // Every replica crashes (no checkpoint written): rebuilt from the log.
    for id in cluster.ids.clone() {
        cluster.kill(id).await;
    }
    for id in cluster.ids.clone() {
        cluster.start(id);
    }
    let leader = cluster.leader(&cluster.ids).await;
    assert_eq!(
        propose_once(cluster.replica(leader), &batch, 7, 0).await,
        again
    );
    assert_eq!(
        propose_once(cluster.replica(leader), &overlap[2..], 7, 3).await,
        Proposed {
            duplicate: true,
            ..rest
        }
    );

    // A clean stop writes the checkpoint; the table comes back from it.
    for id in cluster.ids.clone() {
        cluster.replica(id).stop().await;
        cluster.kill(id).await;
        assert!(
            cluster
                .dir
                .path()
                .join(id.to_string())
                .join("producers")
                .exists(),
            "replica {id} checkpointed its producer table"
        );
    }
    for id in cluster.ids.clone() {
        cluster.start(id);
    }
    let leader = cluster.leader(&cluster.ids).await;
    assert_eq!(
        propose_once(cluster.replica(leader), &batch, 7, 0).await,
        again
    );

    let last = propose_acked(cluster.replica(leader), vec![value("final", 0)]).await;
    cluster.caught_up(last).await;
    // Each value exactly once, at the index its first answer gave.
    let mut history = History::new();
    for (k, v) in batch.iter().enumerate() {
        history.ok(v.clone(), first.first + k as u64);
    }
    history.ok(value("once", 3), rest.first);
    history.ok(value("other", 0), other.first);
    history.ok(value("final", 0), last);
    assert_safe(&history, &cluster.committed());
}

/// The negative control: the same resend without a producer id appends
/// the records again, and the check sees it.
#[tokio::test(start_paused = true)]
async fn without_a_producer_id_a_resend_is_a_duplicate_the_check_catches() {
    let cluster = Cluster::new(3);
    let leader = cluster.leader(&cluster.ids).await;
    let batch: Vec<Bytes> = (0..3).map(|i| value("twice", i)).collect();
    let first = propose_acked(cluster.replica(leader), batch.clone()).await;
    let last = propose_acked(cluster.replica(leader), batch.clone()).await + 2;
    cluster.caught_up(last).await;
    let mut history = History::new();
    for (k, v) in batch.into_iter().enumerate() {
        history.ok(v, first + k as u64);
    }
    let report = check(&history, &cluster.committed());
    // Every value twice on every replica, and nothing else wrong.
    assert_eq!(report.duplicated(), 3 * cluster.ids.len(), "{report:#}");
    assert_eq!(report.anomalies().len(), report.duplicated(), "{report:#}");
}

/// A resend while the first send is still uncommitted (the leader lost its
/// followers) waits for the same commit rather than appending again; a
/// sequence older than the window is refused, not guessed.
#[tokio::test(start_paused = true)]
async fn a_resend_of_an_uncommitted_sequence_waits_for_it_and_an_old_one_is_refused() {
    let cluster = Cluster::new(3);
    let leader = cluster.leader(&cluster.ids).await;
    cluster.router.isolate(leader, &cluster.ids);
    let replica = cluster.replica(leader).clone();
    let before = replica.status().borrow().last_index;
    let send = || {
        let replica = replica.clone();
        tokio::spawn(async move {
            replica
                .propose_idempotent(vec![value("slow", 0)], Producer { id: 3, sequence: 0 })
                .await
        })
    };
    let first = send();
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    let resent = send();
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert_eq!(
        replica.status().borrow().last_index,
        before + 1,
        "the first send appended one entry, the resend none"
    );
    cluster.router.heal();
    let first = first.await.expect("task").expect("committed");
    let resent = resent.await.expect("task").expect("committed");
    assert_eq!(
        resent,
        Proposed {
            duplicate: true,
            ..first
        }
    );
    // Past the window (4096 sequences by default), an old sequence cannot
    // be told: refused.
    let leader = cluster.leader(&cluster.ids).await;
    let many: Vec<Bytes> = (0..4100).map(|i| value("many", i)).collect();
    let mut sequence = 1;
    for chunk in many.chunks(1000) {
        let got = propose_once(cluster.replica(leader), chunk, 3, sequence).await;
        assert_eq!(got.count, chunk.len() as u64);
        sequence += got.count;
    }
    let old = cluster
        .replica(leader)
        .propose_idempotent(vec![value("slow", 0)], Producer { id: 3, sequence: 0 })
        .await;
    assert!(
        matches!(
            old,
            Err(Error::SequenceTooOld {
                producer: 3,
                sequence: 0,
                ..
            })
        ),
        "{old:?}"
    );
}
