//! The cloneable handle to the discovery task, and what it publishes.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::driver::{Command, Driver};
use crate::error::{Error, Result};
use crate::meta::MemberMeta;
use crate::transport::{Transport, UdpTransport};

/// Commands queued for the task before senders wait.
const COMMAND_QUEUE: usize = 64;
/// Events queued for the subscriber before new ones are dropped (the
/// member list on the `watch` stays exact either way).
pub(crate) const EVENT_QUEUE: usize = 1024;

/// A member's state as gossip sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MemberState {
    /// Answering probes.
    Alive,
    /// Missed a probe; has until the suspicion timeout to refute.
    Suspect,
    /// Declared failed.
    Down,
    /// Announced a graceful leave (a shutdown) and is gone.
    Left,
}

impl MemberState {
    /// The lowercase name used in APIs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Alive => "alive",
            Self::Suspect => "suspect",
            Self::Down => "down",
            Self::Left => "left",
        }
    }

    /// Alive or suspect: still counted as a member that may answer.
    pub fn is_active(self) -> bool {
        matches!(self, Self::Alive | Self::Suspect)
    }
}

impl std::fmt::Display for MemberState {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// One member as published on the `watch`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberInfo {
    /// Stable node id.
    pub id: u64,
    /// Node name.
    pub name: String,
    /// Where it gossips.
    pub gossip_addr: SocketAddr,
    /// Where its RPC port is.
    pub rpc_addr: String,
    /// Its current incarnation.
    pub incarnation: u64,
    /// Alive, suspect, down or left.
    pub state: MemberState,
    /// The newest metadata it spread.
    pub meta: MemberMeta,
    /// This is the local node.
    pub is_local: bool,
}

/// A change in membership, as the agent consumes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberEvent {
    /// A member appeared, or came back after being down or leaving.
    Joined(MemberInfo),
    /// A known member changed: new incarnation or addresses, suspicion
    /// raised or refuted, new metadata.
    Updated(MemberInfo),
    /// A member was declared failed.
    Down(MemberInfo),
    /// A member left gracefully.
    Left(MemberInfo),
}

/// A handle to the discovery task; cheap to clone.
#[derive(Debug, Clone)]
pub struct Discovery {
    commands: mpsc::Sender<Command>,
    members: watch::Receiver<Arc<Vec<MemberInfo>>>,
    local_id: u64,
    task: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl Discovery {
    /// Binds a UDP socket at `bind_addr` and starts gossiping.
    ///
    /// # Errors
    /// A bad configuration, or the socket cannot be bound.
    pub async fn bind(
        config: Config,
        bind_addr: SocketAddr,
    ) -> Result<(Self, mpsc::Receiver<MemberEvent>)> {
        config.validate()?;
        let transport = UdpTransport::bind(bind_addr)
            .await
            .map_err(|source| Error::Socket {
                addr: bind_addr.to_string(),
                source,
            })?;
        Self::start(config, transport)
    }

    /// Starts the discovery task over `transport`; it announces itself to
    /// the seeds in `config.join` and keeps trying while it knows no other
    /// member.
    ///
    /// # Errors
    /// A bad configuration.
    pub fn start<T: Transport>(
        config: Config,
        transport: T,
    ) -> Result<(Self, mpsc::Receiver<MemberEvent>)> {
        config.validate()?;
        let (commands, command_receiver) = mpsc::channel(COMMAND_QUEUE);
        let (events, event_receiver) = mpsc::channel(EVENT_QUEUE);
        let local_id = config.node_id;
        let (driver, members) = Driver::new(config, transport, command_receiver, events);
        let task = tokio::spawn(driver.run());
        let handle = Self {
            commands,
            members,
            local_id,
            task: Arc::new(Mutex::new(Some(task))),
        };
        Ok((handle, event_receiver))
    }

    /// This node's id.
    pub fn local_id(&self) -> u64 {
        self.local_id
    }

    /// Every member known, this node included, sorted by name.
    pub fn members(&self) -> Vec<MemberInfo> {
        self.members.borrow().as_ref().clone()
    }

    /// A receiver that sees every new member list.
    pub fn watch(&self) -> watch::Receiver<Arc<Vec<MemberInfo>>> {
        self.members.clone()
    }

    /// Replaces this node's tags and spreads them.
    ///
    /// # Errors
    /// [`Error::Stopped`] when the task has ended.
    pub async fn set_tags(&self, tags: std::collections::BTreeMap<String, String>) -> Result<()> {
        self.commands
            .send(Command::SetTags(tags))
            .await
            .map_err(|_| Error::Stopped)
    }

    /// Announces a graceful leave, keeps gossiping for the configured
    /// linger so it spreads, then stops the task. Returns once it stopped.
    ///
    /// # Errors
    /// [`Error::Stopped`] when the task had already ended.
    pub async fn leave(&self) -> Result<()> {
        let (reply, done) = oneshot::channel();
        self.commands
            .send(Command::Leave(reply))
            .await
            .map_err(|_| Error::Stopped)?;
        done.await.map_err(|_| Error::Stopped)?;
        self.join_task().await;
        Ok(())
    }

    /// Stops the task at once, without a leave: for tests that model a
    /// crash.
    pub fn abort(&self) {
        if let Some(task) = self
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            task.abort();
        }
    }

    async fn join_task(&self) {
        let task = self
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(task) = task {
            let _ended = task.await;
        }
    }
}
