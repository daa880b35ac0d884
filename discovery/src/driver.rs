//! The one task that owns foca: transport, ordered timers, commands, the
//! join loop and what gets published.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use foca::{AccumulatingRuntime, Foca, PostcardCodec, State, Timer};
use rand::SeedableRng as _;
use rand::rngs::StdRng;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::config::Config;
use crate::envelope;
use crate::handle::{MemberEvent, MemberInfo, MemberState};
use crate::identity::Member;
use crate::keyring::Keyring;
use crate::meta::{MemberMeta, MetaHandler, MetaUpdate, MetaVersion};
use crate::metrics;
use crate::transport::Transport;

/// What the handle asks of the task.
#[derive(Debug)]
pub(crate) enum Command {
    /// Replace this node's tags and spread them.
    SetTags(BTreeMap<String, String>),
    /// Announce a leave, linger, stop; reply once the leave is sent.
    Leave(oneshot::Sender<()>),
}

/// A timer foca asked for, ordered by deadline, then by submission.
#[derive(Debug)]
struct Scheduled {
    at: Instant,
    sequence: u64,
    timer: Timer<Member>,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.sequence) == (other.at, other.sequence)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    // Reversed: BinaryHeap is a max-heap and the earliest must come first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.sequence).cmp(&(self.at, self.sequence))
    }
}

type MetaStore = Arc<Mutex<MetaHandlerShared>>;

/// The metadata foca's broadcast handler keeps, shared with the driver
/// (foca does not lend its handler out).
#[derive(Debug, Default)]
pub(crate) struct MetaHandlerShared {
    handler: MetaHandler,
}

/// foca's broadcast handler: a view on the shared store.
#[derive(Debug)]
pub(crate) struct SharedMeta(MetaStore);

impl foca::BroadcastHandler<Member> for SharedMeta {
    type Key = <MetaHandler as foca::BroadcastHandler<Member>>::Key;
    type Error = <MetaHandler as foca::BroadcastHandler<Member>>::Error;

    fn receive_item(
        &mut self,
        data: &[u8],
        sender: Option<&Member>,
    ) -> Result<Option<Self::Key>, Self::Error> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .handler
            .receive_item(data, sender)
    }
}

pub(crate) struct Driver<T: Transport> {
    foca: Foca<Member, PostcardCodec, StdRng, SharedMeta>,
    runtime: AccumulatingRuntime<Member>,
    timers: BinaryHeap<Scheduled>,
    sequence: u64,
    transport: T,
    keyring: Option<Keyring>,
    config: Config,
    commands: mpsc::Receiver<Command>,
    resolved_sender: mpsc::Sender<Vec<SocketAddr>>,
    resolved: mpsc::Receiver<Vec<SocketAddr>>,
    resolving: bool,
    next_join: Instant,
    join_backoff: Duration,
    join_attempts: u64,
    events: mpsc::Sender<MemberEvent>,
    members: watch::Sender<Arc<Vec<MemberInfo>>>,
    known: HashMap<u64, MemberInfo>,
    meta: MetaStore,
    own_meta: MemberMeta,
    meta_version: MetaVersion,
}

impl<T: Transport> Driver<T> {
    pub(crate) fn new(
        config: Config,
        transport: T,
        commands: mpsc::Receiver<Command>,
        events: mpsc::Sender<MemberEvent>,
    ) -> (Self, watch::Receiver<Arc<Vec<MemberInfo>>>) {
        let identity = Member {
            id: config.node_id,
            name: config.node_name.clone(),
            gossip_addr: config.advertise_addr,
            rpc_addr: config.rpc_addr.clone(),
            incarnation: config.incarnation,
        };
        let meta = MetaStore::default();
        let rng = match config.rng_seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_rng(&mut rand::rng()),
        };
        let foca = Foca::with_custom_broadcast(
            identity,
            config.foca_config(),
            rng,
            PostcardCodec,
            SharedMeta(Arc::clone(&meta)),
        );
        let (members, receiver) = watch::channel(Arc::new(Vec::new()));
        let (resolved_sender, resolved) = mpsc::channel(4);
        let join_backoff = Duration::from_millis(config.join_backoff_min_ms);
        let meta_version = (config.incarnation, 0);
        let mut driver = Self {
            foca,
            runtime: AccumulatingRuntime::new(),
            timers: BinaryHeap::new(),
            sequence: 0,
            transport,
            keyring: config.keyring.clone(),
            config,
            commands,
            resolved_sender,
            resolved,
            resolving: false,
            next_join: Instant::now(),
            join_backoff,
            join_attempts: 0,
            events,
            members,
            known: HashMap::new(),
            meta,
            own_meta: MemberMeta::default(),
            meta_version,
        };
        driver.spread_meta();
        driver.publish();
        (driver, receiver)
    }

    pub(crate) async fn run(mut self) {
        tracing::info!(
            node = %self.config.node_name,
            id = self.config.node_id,
            incarnation = self.config.incarnation,
            gossip_addr = %self.config.advertise_addr,
            encrypted = self.keyring.is_some(),
            "gossip started"
        );
        loop {
            let next_timer = self.timers.peek().map(|scheduled| scheduled.at);
            tokio::select! {
                biased;
                command = self.commands.recv() => match command {
                    Some(Command::SetTags(tags)) => {
                        self.own_meta.tags = tags;
                        self.spread_meta();
                    }
                    Some(Command::Leave(reply)) => {
                        self.leave(reply).await;
                        return;
                    }
                    // Every handle is gone: nobody can ask anything more.
                    None => return,
                },
                () = sleep_until_some(next_timer) => self.fire_due_timers(),
                received = self.transport.recv() => match received {
                    Ok((packet, from)) => self.receive(&packet, from),
                    Err(e) if e.kind() == std::io::ErrorKind::NotConnected => return,
                    // UDP reports ICMP errors of earlier sends on receive:
                    // a peer is gone, nothing is wrong with our socket.
                    Err(e) => tracing::debug!(error = %e, "gossip receive failed"),
                },
                Some(addrs) = self.resolved.recv() => self.announce(&addrs),
                () = tokio::time::sleep_until(self.next_join) => self.join_tick(),
            }
            self.drain();
        }
    }

    fn receive(&mut self, packet: &[u8], from: SocketAddr) {
        metrics::packet_received(packet.len());
        match envelope::open(self.keyring.as_ref(), packet) {
            Ok(payload) => {
                let result = self.foca.handle_data(&payload, &mut self.runtime);
                self.note_foca_result(result, "handle_data");
            }
            Err(reason) => {
                metrics::envelope_refused(reason);
                tracing::debug!(%from, reason = reason.label(), "gossip packet dropped");
            }
        }
    }

    fn fire_due_timers(&mut self) {
        let now = Instant::now();
        while self
            .timers
            .peek()
            .is_some_and(|scheduled| scheduled.at <= now)
        {
            if let Some(scheduled) = self.timers.pop() {
                let result = self.foca.handle_timer(scheduled.timer, &mut self.runtime);
                self.note_foca_result(result, "handle_timer");
                self.drain();
            }
        }
    }

    /// Join attempts: while no other member is active, resolve the seeds
    /// again and announce to them, backing off; once joined, check again
    /// at the longest backoff (a node cut off from everyone rejoins).
    fn join_tick(&mut self) {
        let max = Duration::from_millis(self.config.join_backoff_max_ms);
        if self.foca.num_members() > 0 || self.config.join.is_empty() {
            self.join_backoff = Duration::from_millis(self.config.join_backoff_min_ms);
            self.join_attempts = 0;
            self.next_join = Instant::now() + max;
            return;
        }
        if self.join_attempts > 0 {
            tracing::warn!(
                seeds = ?self.config.join,
                attempts = self.join_attempts,
                retry_in_ms = self.join_backoff.as_millis() as u64,
                "no seed answered yet; still serving alone and retrying"
            );
        } else {
            tracing::info!(seeds = ?self.config.join, "joining the cluster through its seeds");
        }
        self.join_attempts += 1;
        if !self.resolving {
            self.resolving = true;
            let seeds = self.config.join.clone();
            let own = self.config.advertise_addr;
            let sender = self.resolved_sender.clone();
            tokio::spawn(async move {
                let mut addrs = Vec::new();
                for seed in &seeds {
                    match tokio::net::lookup_host(seed.as_str()).await {
                        Ok(found) => addrs.extend(found.filter(|addr| *addr != own)),
                        Err(e) => tracing::warn!(seed = %seed, error = %e, "cannot resolve seed"),
                    }
                }
                let _closed = sender.send(addrs).await;
            });
        }
        self.next_join = Instant::now() + self.join_backoff;
        self.join_backoff = (self.join_backoff * 2).min(max);
    }

    fn announce(&mut self, addrs: &[SocketAddr]) {
        self.resolving = false;
        for &addr in addrs {
            let result = self.foca.announce(Member::seed(addr), &mut self.runtime);
            self.note_foca_result(result, "announce");
        }
    }

    async fn leave(&mut self, reply: oneshot::Sender<()>) {
        tracing::info!("announcing a graceful leave to the cluster");
        self.own_meta.leaving = true;
        self.spread_meta();
        // Push the leaving flag out before foca stops talking.
        let result = self.foca.gossip(&mut self.runtime);
        self.note_foca_result(result, "gossip");
        self.drain();
        let result = self.foca.leave_cluster(&mut self.runtime);
        self.note_foca_result(result, "leave_cluster");
        self.drain();
        let _gone = reply.send(());
        // Keep answering and firing timers for a bounded while, so the
        // leave reaches every member (foca#30).
        let until = Instant::now() + Duration::from_millis(self.config.leave_linger_ms);
        loop {
            let next_timer = self.timers.peek().map(|scheduled| scheduled.at);
            tokio::select! {
                () = tokio::time::sleep_until(until) => return,
                () = sleep_until_some(next_timer) => self.fire_due_timers(),
                received = self.transport.recv() => match received {
                    Ok((packet, from)) => self.receive(&packet, from),
                    Err(_) => return,
                },
            }
            self.drain();
        }
    }

    fn spread_meta(&mut self) {
        self.meta_version.1 += 1;
        let update = MetaUpdate {
            node_id: self.config.node_id,
            version: self.meta_version,
            meta: self.own_meta.clone(),
        };
        let result = self.foca.add_broadcast(&MetaHandler::encode(&update));
        self.note_foca_result(result.map(|_| ()), "add_broadcast");
    }

    fn note_foca_result(&self, result: Result<(), foca::Error>, call: &'static str) {
        if let Err(e) = result {
            let kind = match e {
                foca::Error::DataFromOurselves => {
                    tracing::warn!(
                        "gossip from another node with our name or id: two nodes share the name {:?}",
                        self.config.node_name
                    );
                    "data_from_ourselves"
                }
                foca::Error::Decode(_) | foca::Error::MalformedPacket => "decode",
                foca::Error::DataTooBig => "too_big",
                _ => "other",
            };
            metrics::foca_error(kind);
            tracing::debug!(error = %e, call, "foca refused an input");
        }
    }

    /// Sends what foca queued, schedules its timers, and publishes the
    /// member list when it changed.
    fn drain(&mut self) {
        while let Some((to, payload)) = self.runtime.to_send() {
            if to.id == self.config.node_id {
                continue;
            }
            let packet = envelope::seal(self.keyring.as_ref(), &payload);
            match self.transport.send(to.gossip_addr, &packet) {
                Ok(()) => metrics::packet_sent(packet.len()),
                Err(e) => {
                    metrics::packet_dropped("send_failed");
                    tracing::debug!(to = %to.gossip_addr, error = %e, "gossip send failed");
                }
            }
        }
        let now = Instant::now();
        while let Some((after, timer)) = self.runtime.to_schedule() {
            self.sequence += 1;
            self.timers.push(Scheduled {
                at: now + after,
                sequence: self.sequence,
                timer,
            });
        }
        // The member list is recomputed below; notifications only log.
        while let Some(notification) = self.runtime.to_notify() {
            tracing::trace!(?notification, "foca notification");
        }
        self.publish();
    }

    /// Recomputes the member list; on a change, publishes it and sends one
    /// event per changed member.
    fn publish(&mut self) {
        let meta = self.meta.lock().unwrap_or_else(PoisonError::into_inner);
        let mut current: HashMap<u64, MemberInfo> = HashMap::new();
        let local = self.foca.identity();
        current.insert(
            local.id,
            MemberInfo {
                id: local.id,
                name: local.name.clone(),
                gossip_addr: local.gossip_addr,
                rpc_addr: local.rpc_addr.clone(),
                incarnation: local.incarnation,
                state: MemberState::Alive,
                meta: self.own_meta.clone(),
                is_local: true,
            },
        );
        for member in self.foca.iter_membership_state() {
            let id = member.id();
            let member_meta = meta.handler.get(id.id).cloned().unwrap_or_default();
            let state = match member.state() {
                State::Alive => MemberState::Alive,
                State::Suspect => MemberState::Suspect,
                State::Down if member_meta.leaving => MemberState::Left,
                State::Down => MemberState::Down,
            };
            // Seeds never become members; an older identity of a node that
            // came back elsewhere hides behind the newer one.
            if id.id == 0
                || current
                    .get(&id.id)
                    .is_some_and(|known| known.is_local || known.incarnation >= id.incarnation)
            {
                continue;
            }
            current.insert(
                id.id,
                MemberInfo {
                    id: id.id,
                    name: id.name.clone(),
                    gossip_addr: id.gossip_addr,
                    rpc_addr: id.rpc_addr.clone(),
                    incarnation: id.incarnation,
                    state,
                    meta: member_meta,
                    is_local: false,
                },
            );
        }
        drop(meta);
        if current == self.known {
            return;
        }
        let mut newcomers = false;
        for (id, info) in &current {
            let event = match self.known.get(id) {
                None => Some(MemberEvent::Joined(info.clone())),
                Some(old) if old == info => None,
                Some(old) => Some(match (old.state.is_active(), info.state) {
                    (false, state) if state.is_active() => MemberEvent::Joined(info.clone()),
                    (true, MemberState::Down) => MemberEvent::Down(info.clone()),
                    (true, MemberState::Left) => MemberEvent::Left(info.clone()),
                    _ => MemberEvent::Updated(info.clone()),
                }),
            };
            if let Some(event) = event {
                if matches!(event, MemberEvent::Joined(_)) && !info.is_local {
                    newcomers = true;
                    tracing::info!(member = %info.name, id = info.id, rpc_addr = %info.rpc_addr, "member joined");
                }
                if let MemberEvent::Down(info) | MemberEvent::Left(info) = &event {
                    tracing::warn!(member = %info.name, id = info.id, state = %info.state, "member is gone");
                }
                if self.events.try_send(event).is_err() {
                    metrics::packet_dropped("event_queue_full");
                }
            }
        }
        let (mut alive, mut suspect, mut down) = (0, 0, 0);
        for info in current.values() {
            match info.state {
                MemberState::Alive => alive += 1,
                MemberState::Suspect => suspect += 1,
                MemberState::Down | MemberState::Left => down += 1,
            }
        }
        metrics::members(alive, suspect, down);
        let mut list: Vec<MemberInfo> = current.values().cloned().collect();
        list.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
        self.known = current;
        self.members.send_replace(Arc::new(list));
        // A newcomer never saw our earlier broadcasts: spread them again.
        if newcomers {
            self.spread_meta();
        }
    }
}

/// Sleeps until `at`, or forever without a deadline.
async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
