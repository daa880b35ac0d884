//! One replica: the handle, and the task that owns the `RawNode`.
//!
//! The task selects on a tick timer, inbound messages and commands, then
//! handles `Ready` in the order raft-rs documents: send the leader's
//! messages, apply a snapshot, apply committed entries, persist new entries
//! (fsync, on the blocking pool when the log syncs every append), persist
//! the hard state, send the messages that had to wait for persistence,
//! advance, and handle the light ready the same way.
//!
//! Proposals are tracked by the (index, term) of their last entry: when the
//! entry at that index commits with the same term, the proposal succeeded;
//! with another term, a new leader replaced it and the client gets
//! [`Error::Dropped`] (retryable). Leadership changes never fail proposals
//! by themselves, because what an old leader proposed may still commit.
//!
//! Idempotent proposals ([`Replica::propose_idempotent`]) are checked
//! against the producer table ([`crate::producers`]) built from applied
//! entries, plus what this leader proposed in its term and has not applied
//! yet. A leader checks only once it has applied an entry of its own term:
//! then every entry an earlier leader may have committed is applied here,
//! so the table is complete. Requests that arrive before are held until
//! then.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use log_core::Producer;
use protobuf::Message as _;
use raft::prelude::{
    ConfChange, ConfChangeType, ConfChangeV2, Entry, EntryType, Message, MessageType,
};
use raft::{RawNode, StateRole};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::entry;
use crate::error::{Error, Result};
use crate::producers::{Checkpoint, Lookup, Producers, ProducersConfig};
use crate::storage::LogStorage;
use crate::transport::Transport;

/// Commands queued for the task before senders wait.
const COMMAND_QUEUE: usize = 1024;
/// Inbound messages handled before the next Ready, so a burst is one Ready.
const STEP_BATCH: usize = 256;

/// What a replica is doing, as published on its `watch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    /// This node's id.
    pub id: u64,
    /// Current term.
    pub term: u64,
    /// The leader this node knows (None: none known).
    pub leader: Option<u64>,
    /// Leader, follower, candidate or pre-candidate.
    pub role: Role,
    /// Highest index known committed.
    pub commit_index: u64,
    /// Highest index applied; consumers read up to here.
    pub applied_index: u64,
    /// Highest index in this node's log.
    pub last_index: u64,
    /// The replica stopped on a fatal storage error.
    pub failed: bool,
}

/// A replica's Raft role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Accepts proposals.
    Leader,
    /// Follows a leader.
    Follower,
    /// Campaigning.
    Candidate,
    /// Checking whether a campaign could win (pre-vote).
    PreCandidate,
}

impl From<StateRole> for Role {
    fn from(role: StateRole) -> Self {
        match role {
            StateRole::Leader => Self::Leader,
            StateRole::Follower => Self::Follower,
            StateRole::Candidate => Self::Candidate,
            StateRole::PreCandidate => Self::PreCandidate,
        }
    }
}

/// What a proposal got: Raft indices `first .. first + count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Proposed {
    /// Raft index of the first record.
    pub first: u64,
    /// Records, from the first value proposed: all of them, except for an
    /// idempotent proposal whose first records were already in the log
    /// (then this many of them, at their original indices; propose the rest
    /// again) or whose later records were (then the new ones before them).
    pub count: u64,
    /// Whether these records were already in the log.
    pub duplicate: bool,
}

struct Proposal {
    values: Vec<Bytes>,
    producer: Option<Producer>,
    timestamp_ms: u64,
    reply: oneshot::Sender<Result<Proposed>>,
}

enum Command {
    Propose(Proposal),
    Campaign,
    TransferLeadership {
        to: Option<u64>,
        reply: oneshot::Sender<Option<u64>>,
    },
    ChangeMembership {
        change: MembershipChange,
        reply: oneshot::Sender<Result<()>>,
    },
    Progress(oneshot::Sender<Vec<PeerProgress>>),
    Stop(oneshot::Sender<()>),
}

/// One change of the voter set, proposed by the leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MembershipChange {
    /// Add a node as a learner: it receives the log but does not vote.
    AddLearner(u64),
    /// Make a learner (or a new node) a voter.
    Promote(u64),
    /// Remove a node from the voters and learners.
    Remove(u64),
}

/// How far one peer has replicated, as the leader tracks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerProgress {
    /// The peer's node id.
    pub id: u64,
    /// The highest index known to be in its log.
    pub matched: u64,
    /// Whether it is a learner (not a voter).
    pub learner: bool,
}

/// A handle to a running replica; cheap to clone.
#[derive(Debug, Clone)]
pub struct Replica {
    commands: mpsc::Sender<Command>,
    status: watch::Receiver<Status>,
    storage_log: std::sync::Arc<log_core::Log>,
    storage: LogStorage,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(match self {
            Self::Propose(_) => "Propose",
            Self::Campaign => "Campaign",
            Self::TransferLeadership { .. } => "TransferLeadership",
            Self::ChangeMembership { .. } => "ChangeMembership",
            Self::Progress(_) => "Progress",
            Self::Stop(_) => "Stop",
        })
    }
}

impl Replica {
    /// Starts the replica over `storage`, sending through `transport` and
    /// receiving from `inbox`. A new cluster's storage must have been
    /// bootstrapped ([`LogStorage::bootstrap`]) or be joined later as a
    /// learner by a leader.
    ///
    /// # Errors
    /// A bad configuration, or raft refusing the stored state.
    pub fn start<T: Transport>(
        config: Config,
        storage: LogStorage,
        transport: T,
        inbox: mpsc::Receiver<Message>,
    ) -> Result<(Self, JoinHandle<()>)> {
        config.validate()?;
        let applied = storage.hard_state().get_commit();
        let checkpoint = Checkpoint::in_dir(&storage.dir());
        let producers = load_producers(&storage, &checkpoint, config.producers, applied)?;
        let logger = crate::logger::raft_logger(config.id);
        let raw = RawNode::new(&config.raft_config(applied), storage.clone(), &logger)?;
        let status = Status {
            id: config.id,
            term: raw.raft.term,
            leader: None,
            role: raw.raft.state.into(),
            commit_index: raw.raft.raft_log.committed,
            applied_index: applied,
            last_index: raw.raft.raft_log.last_index(),
            failed: false,
        };
        let mut raw = raw;
        let voters = storage.conf_state();
        if voters.get_voters() == [config.id] {
            // A one-voter cluster need not wait an election timeout.
            raw.campaign()?;
        }
        let (status_sender, status_receiver) = watch::channel(status);
        let (commands, command_receiver) = mpsc::channel(COMMAND_QUEUE);
        let storage_log = storage.log();
        let storage_handle = storage.clone();
        let driver = Driver {
            raw,
            storage,
            transport,
            inbox,
            commands: command_receiver,
            pending: BTreeMap::new(),
            status: status_sender,
            tick: Duration::from_millis(config.tick_ms),
            applied,
            producers,
            proposed: Producers::new(config.producers),
            proposed_term: 0,
            held: Vec::new(),
            checkpoint,
            checkpointed: applied,
        };
        let task = tokio::spawn(driver.run());
        Ok((
            Self {
                commands,
                status: status_receiver,
                storage_log,
                storage: storage_handle,
            },
            task,
        ))
    }

    /// Proposes `values` as one batch of client records; returns the Raft
    /// index of the first once a majority has them durably.
    ///
    /// # Errors
    /// [`Error::NotLeader`] (with the leader known), [`Error::Dropped`]
    /// (retry), [`Error::Stopped`].
    pub async fn propose(&self, values: Vec<Bytes>) -> Result<u64> {
        Ok(self.submit(values, None).await?.first)
    }

    /// Proposes `values` as records `producer.sequence ..` of producer
    /// `producer.id`, unless they are already in the log: then answers
    /// where they are. The answer may cover only a prefix of `values`
    /// ([`Proposed::count`]); propose the rest again, from sequence
    /// `producer.sequence + count`.
    ///
    /// # Errors
    /// As [`propose`](Self::propose), and [`Error::SequenceTooOld`] for a
    /// sequence older than the producer's remembered window.
    pub async fn propose_idempotent(
        &self,
        values: Vec<Bytes>,
        producer: Producer,
    ) -> Result<Proposed> {
        self.submit(values, Some(producer)).await
    }

    async fn submit(&self, values: Vec<Bytes>, producer: Option<Producer>) -> Result<Proposed> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Propose(Proposal {
                values,
                producer,
                timestamp_ms: log_core::now_ms(),
                reply,
            }))
            .await
            .map_err(|_| Error::Stopped)?;
        answer.await.map_err(|_| Error::Stopped)?
    }

    /// Asks this node to campaign now (tests, and leadership hand-over).
    ///
    /// # Errors
    /// [`Error::Stopped`].
    pub async fn campaign(&self) -> Result<()> {
        self.commands
            .send(Command::Campaign)
            .await
            .map_err(|_| Error::Stopped)
    }

    /// If this node leads, hands leadership to the most caught-up voter and
    /// waits (at most `bound`) until it no longer leads, so a planned stop
    /// costs no election timeout. Returns the node it handed over to.
    /// Proposals meanwhile are answered [`Error::Dropped`] by raft.
    pub async fn transfer_leadership(&self, bound: Duration) -> Option<u64> {
        self.transfer_leadership_to(None, bound).await
    }

    /// As [`transfer_leadership`](Self::transfer_leadership), to voter `to`
    /// when given.
    pub async fn transfer_leadership_to(&self, to: Option<u64>, bound: Duration) -> Option<u64> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::TransferLeadership { to, reply })
            .await
            .ok()?;
        let target = answer.await.ok().flatten()?;
        let mut status = self.status();
        let moved = tokio::time::timeout(bound, status.wait_for(|s| s.role != Role::Leader)).await;
        matches!(moved, Ok(Ok(_))).then_some(target)
    }

    /// Proposes one change of the voter set (leader only); returns once it
    /// is proposed. The change takes effect when it is applied: watch
    /// [`LogStorage::conf_state`](crate::LogStorage::conf_state).
    ///
    /// # Errors
    /// [`Error::NotLeader`], [`Error::Dropped`] (another change is still
    /// pending, or leadership is moving), [`Error::Stopped`].
    pub async fn change_membership(&self, change: MembershipChange) -> Result<()> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::ChangeMembership { change, reply })
            .await
            .map_err(|_| Error::Stopped)?;
        answer.await.map_err(|_| Error::Stopped)?
    }

    /// The leader's view of each peer's replication (empty elsewhere).
    pub async fn progress(&self) -> Vec<PeerProgress> {
        let (reply, answer) = oneshot::channel();
        if self.commands.send(Command::Progress(reply)).await.is_err() {
            return Vec::new();
        }
        answer.await.unwrap_or_default()
    }

    /// Stops the task after persisting the commit index.
    pub async fn stop(&self) {
        let (reply, done) = oneshot::channel();
        if self.commands.send(Command::Stop(reply)).await.is_ok() {
            let _stopped = done.await;
        }
    }

    /// The voters and learners as of the newest applied change.
    pub fn conf_state(&self) -> raft::prelude::ConfState {
        self.storage.conf_state()
    }

    /// The replica's status, updated after every Ready.
    pub fn status(&self) -> watch::Receiver<Status> {
        self.status.clone()
    }

    /// The log the replica writes (read committed data up to
    /// [`Status::applied_index`]).
    pub fn log(&self) -> &std::sync::Arc<log_core::Log> {
        &self.storage_log
    }
}

struct Pending {
    answer: Proposed,
    term: u64,
    reply: oneshot::Sender<Result<Proposed>>,
}

/// The producer table as of `applied`: the checkpoint, then the entries
/// after it (raft applies the ones after `applied` itself).
fn load_producers(
    storage: &LogStorage,
    checkpoint: &Checkpoint,
    config: ProducersConfig,
    applied: u64,
) -> Result<Producers> {
    let (mut table, from) = match checkpoint.load(config) {
        Ok(Some((table, at))) if at <= applied => (table, at + 1),
        Ok(Some(_)) | Ok(None) => (Producers::new(config), 1),
        Err(e) => {
            tracing::warn!(error = %e, "producer table checkpoint unusable; rebuilding it from the log");
            (Producers::new(config), 1)
        }
    };
    let log = storage.log();
    let mut index = from.max(log.lowest_offset());
    let replayed_from = index;
    while index <= applied {
        let batch = log.read_batch(index, 8 << 20, (applied + 1 - index).min(4096))?;
        let Some(last) = batch.last().map(|r| r.offset) else {
            break;
        };
        for record in batch {
            if let Some(producer) = record.producer {
                table.note(producer, record.offset, record.timestamp_ms);
            }
        }
        index = last + 1;
    }
    if index > replayed_from {
        tracing::info!(
            from = replayed_from,
            to = index - 1,
            producers = table.len(),
            "producer table rebuilt from the log"
        );
    }
    Ok(table)
}

/// Answers `reply` after commit, or at once when there is nothing to wait
/// for.
type Reply = oneshot::Sender<Result<Proposed>>;

struct Driver<T: Transport> {
    raw: RawNode<LogStorage>,
    storage: LogStorage,
    transport: T,
    inbox: mpsc::Receiver<Message>,
    commands: mpsc::Receiver<Command>,
    /// Proposals (and resent duplicates waiting for them) by the index of
    /// their last entry.
    pending: BTreeMap<u64, Vec<Pending>>,
    status: watch::Sender<Status>,
    tick: Duration,
    applied: u64,
    /// The producer table of applied entries.
    producers: Producers,
    /// What this leader proposed in `proposed_term` with a producer.
    proposed: Producers,
    proposed_term: u64,
    /// Idempotent proposals held until this leader applied its term's
    /// first entry.
    held: Vec<Proposal>,
    checkpoint: Checkpoint,
    checkpointed: u64,
}

impl<T: Transport> Driver<T> {
    async fn run(mut self) {
        let mut ticker = tokio::time::interval(self.tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {
                    self.raw.tick();
                }
                command = self.commands.recv() => match command {
                    Some(Command::Stop(reply)) => {
                        self.stop();
                        let _stopped = reply.send(());
                        return;
                    }
                    Some(command) => self.handle(command),
                    None => {
                        self.stop();
                        return;
                    }
                },
                Some(message) = self.inbox.recv() => {
                    self.step(message);
                    for _ in 0..STEP_BATCH {
                        match self.inbox.try_recv() {
                            Ok(message) => self.step(message),
                            Err(_) => break,
                        }
                    }
                }
            }
            let result = self.on_ready().await;
            if result.is_ok() && !self.held.is_empty() {
                self.release_held();
            }
            if let Err(e) = result {
                // Fail-stop: raft cannot continue on a storage it cannot
                // trust; a restart recovers from what is on disk.
                tracing::error!(error = %e, id = self.raw.raft.id, "replica storage failed; stopping the replica");
                self.status.send_modify(|status| status.failed = true);
                self.fail_waiting();
                return;
            }
        }
    }

    fn stop(&mut self) {
        let commit = self.raw.raft.raft_log.committed;
        if let Err(e) = self.storage.set_commit_durably(commit) {
            tracing::warn!(error = %e, "could not persist the commit index on stop");
        }
        if let Err(e) = self.checkpoint.store(&self.producers, self.applied) {
            tracing::warn!(error = %e, "could not checkpoint the producer table on stop");
        }
        self.fail_waiting();
    }

    fn fail_waiting(&mut self) {
        for pending in std::mem::take(&mut self.pending).into_values().flatten() {
            let _gone = pending.reply.send(Err(Error::Stopped));
        }
        for held in std::mem::take(&mut self.held) {
            let _gone = held.reply.send(Err(Error::Stopped));
        }
    }

    fn step(&mut self, message: Message) {
        if let Err(e) = self.raw.step(message) {
            tracing::debug!(error = %e, "raft refused a message");
        }
    }

    fn handle(&mut self, command: Command) {
        match command {
            Command::Propose(proposal) => match proposal.producer {
                None => self.propose(proposal.values, proposal.timestamp_ms, proposal.reply),
                Some(producer) => self.propose_idempotent(proposal, producer),
            },
            Command::Campaign => {
                if let Err(e) = self.raw.campaign() {
                    tracing::warn!(error = %e, "campaign refused");
                }
            }
            Command::TransferLeadership { to, reply } => {
                let voters = self.storage.conf_state();
                let target = match to {
                    Some(to) if to != self.raw.raft.id && voters.get_voters().contains(&to) => {
                        (self.raw.raft.state == StateRole::Leader).then_some(to)
                    }
                    Some(_) => None,
                    None => self.transfer_target(),
                };
                if let Some(target) = target {
                    tracing::info!(to = target, "transferring leadership before stopping");
                    self.raw.transfer_leader(target);
                }
                let _gone = reply.send(target);
            }
            Command::ChangeMembership { change, reply } => {
                let _gone = reply.send(self.change_membership(change));
            }
            Command::Progress(reply) => {
                let raft = &self.raw.raft;
                let learners = self.storage.conf_state();
                let progress = if raft.state == StateRole::Leader {
                    raft.prs()
                        .iter()
                        .map(|(id, progress)| PeerProgress {
                            id: *id,
                            matched: progress.matched,
                            learner: learners.get_learners().contains(id),
                        })
                        .collect()
                } else {
                    Vec::new()
                };
                let _gone = reply.send(progress);
            }
            Command::Stop(_) => {}
        }
    }

    fn change_membership(&mut self, change: MembershipChange) -> Result<()> {
        let raft = &self.raw.raft;
        if raft.state != StateRole::Leader {
            let leader = (raft.leader_id != 0).then_some(raft.leader_id);
            return Err(Error::NotLeader { leader });
        }
        let (kind, node) = match change {
            MembershipChange::AddLearner(id) => (ConfChangeType::AddLearnerNode, id),
            MembershipChange::Promote(id) => (ConfChangeType::AddNode, id),
            MembershipChange::Remove(id) => (ConfChangeType::RemoveNode, id),
        };
        let mut conf_change = ConfChange::default();
        conf_change.set_change_type(kind);
        conf_change.set_node_id(node);
        tracing::info!(?change, "proposing a membership change");
        match self.raw.propose_conf_change(Vec::new(), conf_change) {
            Ok(()) => Ok(()),
            Err(raft::Error::ProposalDropped) => Err(Error::Dropped),
            Err(e) => Err(Error::Raft(e)),
        }
    }

    /// The voter (not us) with the highest match index, when we lead.
    fn transfer_target(&self) -> Option<u64> {
        let raft = &self.raw.raft;
        if raft.state != StateRole::Leader {
            return None;
        }
        let voters = self.storage.conf_state();
        raft.prs()
            .iter()
            .filter(|(id, _)| **id != raft.id && voters.get_voters().contains(id))
            .max_by_key(|(_, progress)| progress.matched)
            .map(|(id, _)| *id)
    }

    fn not_leader(&self) -> Option<Error> {
        let raft = &self.raw.raft;
        (raft.state != StateRole::Leader).then(|| Error::NotLeader {
            leader: (raft.leader_id != 0).then_some(raft.leader_id),
        })
    }

    fn propose(&mut self, values: Vec<Bytes>, timestamp_ms: u64, reply: Reply) {
        if let Some(error) = self.not_leader() {
            let _gone = reply.send(Err(error));
            return;
        }
        let context = entry::data_context(timestamp_ms);
        let contexts = vec![context; values.len()];
        self.append_proposal(values, contexts, reply);
    }

    /// Whether this leader has applied an entry of its own term, so every
    /// entry an earlier leader committed is in the producer table.
    fn knows_every_producer(&self) -> bool {
        let raft = &self.raw.raft;
        raft.state == StateRole::Leader
            && raft
                .raft_log
                .term(self.applied)
                .is_ok_and(|term| term == raft.term)
    }

    fn release_held(&mut self) {
        if self.raw.raft.state != StateRole::Leader {
            for held in std::mem::take(&mut self.held) {
                let error = self.not_leader().unwrap_or(Error::Dropped);
                let _gone = held.reply.send(Err(error));
            }
        } else if self.knows_every_producer() {
            for held in std::mem::take(&mut self.held) {
                let producer = held.producer.unwrap_or(Producer { id: 0, sequence: 0 });
                self.propose_idempotent(held, producer);
            }
        }
    }

    fn lookup(&self, id: u64, sequence: u64) -> Lookup {
        match self.proposed.lookup(id, sequence) {
            Lookup::At(index) => Lookup::At(index),
            _ => self.producers.lookup(id, sequence),
        }
    }

    fn propose_idempotent(&mut self, proposal: Proposal, producer: Producer) {
        if let Some(error) = self.not_leader() {
            let _gone = proposal.reply.send(Err(error));
            return;
        }
        if !self.knows_every_producer() {
            self.held.push(proposal);
            return;
        }
        let term = self.raw.raft.term;
        if self.proposed_term != term {
            self.proposed.clear();
            self.proposed_term = term;
        }
        let Proposal {
            mut values,
            timestamp_ms,
            reply,
            ..
        } = proposal;
        let total = values.len() as u64;
        let Producer { id, sequence } = producer;
        match self.lookup(id, sequence) {
            Lookup::TooOld { oldest } => {
                let _gone = reply.send(Err(Error::SequenceTooOld {
                    producer: id,
                    sequence,
                    oldest,
                }));
            }
            Lookup::At(first) => {
                let mut count = 1;
                while count < total
                    && self.lookup(id, sequence + count) == Lookup::At(first + count)
                {
                    count += 1;
                }
                metrics::counter!("proglog_produce_duplicates_total").increment(count);
                let answer = Proposed {
                    first,
                    count,
                    duplicate: true,
                };
                let last = first + count - 1;
                if last <= self.applied {
                    let _gone = reply.send(Ok(answer));
                } else {
                    // In flight in this term: answered when it commits.
                    self.pending.entry(last).or_default().push(Pending {
                        answer,
                        term,
                        reply,
                    });
                }
            }
            Lookup::Unknown => {
                let mut count = 1;
                while count < total && self.lookup(id, sequence + count) == Lookup::Unknown {
                    count += 1;
                }
                values.truncate(count as usize);
                let contexts = entry::producer_contexts(timestamp_ms, producer, count);
                let first = self.raw.raft.raft_log.last_index() + 1;
                if self.append_proposal(values, contexts, reply) {
                    for k in 0..count {
                        let producer = Producer {
                            id,
                            sequence: sequence + k,
                        };
                        self.proposed.note(producer, first + k, timestamp_ms);
                    }
                }
            }
        }
    }

    /// Proposes one entry per value with its context; whether raft took
    /// them (the reply is answered either way, now or after commit).
    fn append_proposal(&mut self, values: Vec<Bytes>, contexts: Vec<Bytes>, reply: Reply) -> bool {
        let raft = &self.raw.raft;
        if values.is_empty() {
            let _gone = reply.send(Ok(Proposed {
                first: raft.raft_log.last_index() + 1,
                count: 0,
                duplicate: false,
            }));
            return false;
        }
        let before = raft.raft_log.last_index();
        let count = values.len() as u64;
        let entries: Vec<Entry> = values
            .into_iter()
            .zip(contexts)
            .map(|(value, context)| {
                // The client's buffer and shared contexts: no copies.
                let mut entry = Entry::default();
                entry.set_data(value);
                entry.set_context(context);
                entry
            })
            .collect();
        let mut message = Message::default();
        message.set_msg_type(MessageType::MsgPropose);
        message.set_from(self.raw.raft.id);
        message.set_entries(entries.into());
        match self.raw.step(message) {
            Ok(()) => {
                let after = self.raw.raft.raft_log.last_index();
                if after != before + count {
                    let _gone = reply.send(Err(Error::Dropped));
                    return false;
                }
                let term = self.raw.raft.term;
                self.pending.entry(after).or_default().push(Pending {
                    answer: Proposed {
                        first: before + 1,
                        count,
                        duplicate: false,
                    },
                    term,
                    reply,
                });
                true
            }
            Err(raft::Error::ProposalDropped) => {
                metrics::counter!("proglog_raft_proposals_dropped_total").increment(1);
                let _gone = reply.send(Err(Error::Dropped));
                false
            }
            Err(e) => {
                let _gone = reply.send(Err(Error::Raft(e)));
                false
            }
        }
    }

    fn send(&mut self, messages: Vec<Message>) {
        for message in messages {
            let to = message.get_to();
            let is_snapshot = message.get_msg_type() == MessageType::MsgSnapshot;
            let sent = self.transport.send(message);
            if !sent {
                self.raw.report_unreachable(to);
            }
            if is_snapshot {
                let status = if sent {
                    raft::SnapshotStatus::Finish
                } else {
                    raft::SnapshotStatus::Failure
                };
                self.raw.report_snapshot(to, status);
            }
        }
    }

    async fn persist_entries(&self, entries: Vec<Entry>) -> Result<()> {
        let always = self.storage.log().config().fsync == log_core::FsyncPolicy::Always;
        if !always {
            // A copy into the page cache: cheaper than a thread hand-off.
            return self.storage.append(&entries);
        }
        let storage = self.storage.clone();
        tokio::task::spawn_blocking(move || storage.append(&entries))
            .await
            .map_err(|_| Error::Stopped)?
    }

    async fn on_ready(&mut self) -> Result<()> {
        if !self.raw.has_ready() {
            return Ok(());
        }
        let mut ready = self.raw.ready();
        if let Some(soft) = ready.ss() {
            tracing::info!(
                id = self.raw.raft.id,
                term = self.raw.raft.term,
                role = ?soft.raft_state,
                leader = soft.leader_id,
                "raft role changed"
            );
        }
        self.send(ready.take_messages());
        if !ready.snapshot().is_empty() {
            self.storage.apply_snapshot(ready.snapshot())?;
            self.applied = ready.snapshot().get_metadata().get_index();
        }
        let committed = ready.take_committed_entries();
        self.apply(committed)?;
        if !ready.entries().is_empty() {
            self.persist_entries(ready.take_entries()).await?;
        }
        if let Some(hard_state) = ready.hs() {
            self.storage.set_hard_state(hard_state)?;
        }
        self.send(ready.take_persisted_messages());
        let mut light = self.raw.advance(ready);
        if let Some(commit) = light.commit_index() {
            self.storage.set_commit(commit);
        }
        self.send(light.take_messages());
        self.apply(light.take_committed_entries())?;
        self.raw.advance_apply();
        self.publish();
        Ok(())
    }

    fn apply(&mut self, entries: Vec<Entry>) -> Result<()> {
        let mut answers = Vec::new();
        for entry in entries {
            match entry.get_entry_type() {
                EntryType::EntryConfChange => {
                    let change = ConfChange::parse_from_bytes(entry.get_data())
                        .map_err(|e| Error::Raft(raft::Error::CodecError(e)))?;
                    let conf_state = self.raw.apply_conf_change(&change)?;
                    tracing::info!(
                        voters = ?conf_state.get_voters(),
                        learners = ?conf_state.get_learners(),
                        "membership changed"
                    );
                    self.storage.set_conf_state(&conf_state)?;
                }
                EntryType::EntryConfChangeV2 => {
                    let change = ConfChangeV2::parse_from_bytes(entry.get_data())
                        .map_err(|e| Error::Raft(raft::Error::CodecError(e)))?;
                    let conf_state = self.raw.apply_conf_change(&change)?;
                    self.storage.set_conf_state(&conf_state)?;
                }
                EntryType::EntryNormal => {
                    if let Some((timestamp_ms, Some(producer))) = entry::data_meta(&entry) {
                        self.producers
                            .note(producer, entry.get_index(), timestamp_ms);
                    }
                }
            }
            self.applied = entry.get_index();
            for pending in self.pending.remove(&entry.get_index()).unwrap_or_default() {
                let answer = if entry.get_term() == pending.term {
                    Ok(pending.answer)
                } else {
                    Err(Error::Dropped)
                };
                answers.push((pending.reply, answer));
            }
        }
        if self.applied >= self.checkpointed + crate::producers::CHECKPOINT_EVERY {
            self.checkpoint.store(&self.producers, self.applied)?;
            self.checkpointed = self.applied;
        }
        // Publish before answering: a client that reads its record right
        // after the produce returns must find it applied.
        self.publish();
        for (reply, answer) in answers {
            let _gone = reply.send(answer);
        }
        Ok(())
    }

    fn publish(&mut self) {
        let raft = &self.raw.raft;
        let status = Status {
            id: raft.id,
            term: raft.term,
            leader: (raft.leader_id != 0).then_some(raft.leader_id),
            role: raft.state.into(),
            commit_index: raft.raft_log.committed,
            applied_index: self.applied,
            last_index: raft.raft_log.last_index(),
            failed: false,
        };
        self.status.send_if_modified(|old| {
            if old.leader != status.leader {
                metrics::counter!("proglog_raft_leader_changes_total").increment(1);
            }
            let changed = *old != status;
            *old = status;
            changed
        });
        metrics::gauge!("proglog_raft_term").set(status.term as f64);
        metrics::gauge!("proglog_raft_commit_index").set(status.commit_index as f64);
        metrics::gauge!("proglog_raft_applied_index").set(status.applied_index as f64);
        metrics::gauge!("proglog_raft_last_index").set(status.last_index as f64);
        metrics::gauge!("proglog_raft_is_leader")
            .set(f64::from(u8::from(status.role == Role::Leader)));
        metrics::gauge!("proglog_raft_proposals_pending").set(self.pending.len() as f64);
        metrics::gauge!("proglog_producers").set(self.producers.len() as f64);
    }
}
