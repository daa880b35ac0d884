//! How Raft messages reach peers: a trait the driver sends through, and an
//! in-memory router with cuts for tests. (The agent's gRPC transport is the
//! production implementation, to come with the wiring.)

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use raft::prelude::Message;
use tokio::sync::mpsc;

/// Sends Raft messages; never waits.
pub trait Transport: Send + Sync + 'static {
    /// Queues `message` for `message.to`. Returns `false` when it cannot be
    /// delivered now (no route, queue full, cut): the driver then reports
    /// the peer unreachable and Raft retries.
    fn send(&self, message: Message) -> bool;
}

/// Messages queued per in-memory replica before more are dropped.
const ROUTER_QUEUE: usize = 4096;

/// An in-memory network of replicas for tests: routes by node id, with
/// one-way and two-way cuts.
#[derive(Debug, Clone, Default)]
pub struct MemoryRouter {
    state: Arc<Mutex<RouterState>>,
}

#[derive(Debug, Default)]
struct RouterState {
    inboxes: HashMap<u64, mpsc::Sender<Message>>,
    cut: HashSet<(u64, u64)>,
    dropped: u64,
}

impl MemoryRouter {
    /// A router with no replicas.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, RouterState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers replica `id` (replacing an earlier one: a restart) and
    /// returns its inbox and its sending side.
    pub fn join(&self, id: u64) -> (MemoryTransport, mpsc::Receiver<Message>) {
        let (sender, receiver) = mpsc::channel(ROUTER_QUEUE);
        self.state().inboxes.insert(id, sender);
        (
            MemoryTransport {
                router: self.clone(),
                from: id,
            },
            receiver,
        )
    }

    /// Removes replica `id` (a crash): messages to it are dropped.
    pub fn leave(&self, id: u64) {
        self.state().inboxes.remove(&id);
    }

    /// Cuts `a` off from `b`, both ways.
    pub fn cut(&self, a: u64, b: u64) {
        let mut state = self.state();
        state.cut.insert((a, b));
        state.cut.insert((b, a));
    }

    /// Cuts `node` off from every other replica in `others`.
    pub fn isolate(&self, node: u64, others: &[u64]) {
        for &other in others {
            if other != node {
                self.cut(node, other);
            }
        }
    }

    /// Removes every cut.
    pub fn heal(&self) {
        self.state().cut.clear();
    }

    /// Messages dropped so far (cut, no route, full).
    pub fn dropped(&self) -> u64 {
        self.state().dropped
    }
}

/// One replica's sending side of a [`MemoryRouter`].
#[derive(Debug, Clone)]
pub struct MemoryTransport {
    router: MemoryRouter,
    from: u64,
}

impl Transport for MemoryTransport {
    fn send(&self, message: Message) -> bool {
        let mut state = self.router.state();
        let to = message.get_to();
        let delivered = !state.cut.contains(&(self.from, to))
            && state
                .inboxes
                .get(&to)
                .is_some_and(|inbox| inbox.try_send(message).is_ok());
        if !delivered {
            state.dropped += 1;
        }
        delivered
    }
}
