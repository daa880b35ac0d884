//! The client's picture of the cluster (who is there, who leads), one
//! HTTP/2 channel per node, refreshing the picture, and the retry loop
//! every request runs in.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use proto::v1::GetServersRequest;
use proto::v1::log_client::LogClient;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

use crate::config::{ClientConfig, Idempotence};
use crate::error::{Error, Result};
use crate::retry::Attempts;
use crate::routing::{Candidate, Operation, pick};

/// Two refreshes closer than this share one `GetServers`: many requests
/// failing at once must not each ask.
const REFRESH_SPACING: Duration = Duration::from_millis(100);

/// HTTP/2 keepalive: a dead node (no FIN, e.g. a cut cable) is noticed
/// within interval + timeout instead of at the next request's timeout.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(5);

/// The gRPC client of one node, with the configured headers on every
/// request.
pub(crate) type LogStub = LogClient<InterceptedService<Channel, Headers>>;

/// A node of the cluster, as its `GetServers` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    /// The node's name (`--node-name`).
    pub name: String,
    /// The stable numeric node id (0 from servers without one).
    pub node_id: u64,
    /// Where its gRPC port is reached.
    pub rpc_addr: String,
    /// Whether it leads (as the answering node believes).
    pub is_leader: bool,
    /// Its gossip state: "alive", "suspect", "down" or "left" (empty from
    /// servers without gossip).
    pub state: String,
    /// Its place in the Raft configuration: "voter", "learner" or empty
    /// (not in it yet, or no replication).
    pub role: String,
}

impl From<proto::v1::Server> for Server {
    fn from(server: proto::v1::Server) -> Self {
        Self {
            name: server.id,
            node_id: server.node_id,
            rpc_addr: server.rpc_addr,
            is_leader: server.is_leader,
            state: server.state,
            role: server.role,
        }
    }
}

/// Adds the configured metadata to every request.
#[derive(Debug, Clone)]
pub(crate) struct Headers(Arc<ClientConfig>);

impl Interceptor for Headers {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> std::result::Result<tonic::Request<()>, tonic::Status> {
        for (key, value) in &self.0.headers {
            request.metadata_mut().insert(key.clone(), value.clone());
        }
        Ok(request)
    }
}

/// Whether a retry of a failed request is safe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retry {
    /// Reads, and produce with a producer id: any retryable failure.
    Safe,
    /// Produce without a producer id: only when the node appended nothing.
    IfNotApplied,
}

#[derive(Debug, Default)]
struct View {
    servers: Vec<Server>,
    channels: HashMap<String, Channel>,
    latency: HashMap<String, Duration>,
    refreshed: Option<Instant>,
}

/// What every handle of one client shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: Arc<ClientConfig>,
    view: Mutex<View>,
    /// One refresh at a time.
    refreshing: tokio::sync::Mutex<()>,
    turn: AtomicUsize,
    /// Under [`Idempotence::Auto`], cleared once a node says it cannot.
    idempotent: AtomicBool,
}

/// `http://` or `https://` for `addr`, which is `HOST:PORT` or a URL of the
/// matching scheme.
pub(crate) fn endpoint_uri(addr: &str, tls: bool) -> Result<String> {
    let scheme = if tls { "https" } else { "http" };
    let uri = match addr.split_once("://") {
        Some((given, _)) if given != scheme => {
            return Err(Error::Config {
                message: format!(
                    "invalid address {addr:?}: {given}:// does not match {} (use HOST:PORT)",
                    if tls { "TLS" } else { "a plaintext connection" }
                ),
            });
        }
        Some(_) => addr.to_owned(),
        None => format!("{scheme}://{addr}"),
    };
    Endpoint::from_shared(uri.clone()).map_err(|_| Error::Config {
        message: format!("invalid address {addr:?}: expected HOST:PORT"),
    })?;
    Ok(uri)
}

impl Shared {
    pub(crate) fn new(config: ClientConfig) -> Arc<Self> {
        let idempotent = config.idempotence != Idempotence::Off;
        Arc::new(Self {
            config: Arc::new(config),
            view: Mutex::new(View::default()),
            refreshing: tokio::sync::Mutex::new(()),
            turn: AtomicUsize::new(0),
            idempotent: AtomicBool::new(idempotent),
        })
    }

    fn view(&self) -> std::sync::MutexGuard<'_, View> {
        // A panic under this short lock leaves plain data behind.
        self.view
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether produce should carry a producer id now.
    pub(crate) fn idempotent(&self) -> bool {
        self.idempotent.load(Ordering::Relaxed)
    }

    /// Under [`Idempotence::Auto`], a node said it cannot: stop asking.
    /// Returns whether the caller may resend without a producer id.
    pub(crate) fn idempotence_refused(&self) -> bool {
        if self.config.idempotence == Idempotence::Auto {
            self.idempotent.store(false, Ordering::Relaxed);
            tracing::debug!("the cluster does not do idempotent produce; sending plain requests");
            true
        } else {
            false
        }
    }

    /// The channel to `addr`, made (lazily: it dials on first use and
    /// redials after a loss) when there is none yet.
    pub(crate) fn channel(&self, addr: &str) -> Result<Channel> {
        if let Some(channel) = self.view().channels.get(addr) {
            return Ok(channel.clone());
        }
        let config = &self.config;
        let endpoint = Endpoint::from_shared(endpoint_uri(addr, config.tls.is_some())?)
            .map_err(|_| Error::Config {
                message: format!("invalid address {addr:?}"),
            })?
            .connect_timeout(config.connect_timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
            .keep_alive_timeout(KEEPALIVE_TIMEOUT)
            .keep_alive_while_idle(true);
        let channel = match &config.tls {
            Some(tls) => endpoint.connect_with_connector_lazy(crate::connector::tls(
                Arc::clone(&tls.config),
                tls.server_name.clone(),
                tls.presents_certificate,
            )),
            None => endpoint.connect_with_connector_lazy(crate::connector::plaintext()),
        };
        Ok(self
            .view()
            .channels
            .entry(addr.to_owned())
            .or_insert(channel)
            .clone())
    }

    /// The gRPC client of `addr`.
    pub(crate) fn stub(&self, addr: &str) -> Result<LogStub> {
        let channel = self.channel(addr)?;
        Ok(
            LogClient::with_interceptor(channel, Headers(Arc::clone(&self.config)))
                .max_decoding_message_size(self.config.message_bytes_max)
                .max_encoding_message_size(self.config.message_bytes_max),
        )
    }

    /// The servers last learned.
    pub(crate) fn servers(&self) -> Vec<Server> {
        self.view().servers.clone()
    }

    /// The leader's address, if one is known.
    pub(crate) fn leader(&self) -> Option<String> {
        self.view()
            .servers
            .iter()
            .find(|s| s.is_leader)
            .map(|s| s.rpc_addr.clone())
    }

    /// The node for `operation`, skipping `excluded`; `None` when every
    /// known node is excluded.
    pub(crate) fn route(&self, operation: Operation, excluded: &HashSet<String>) -> Option<String> {
        let candidates = {
            let view = self.view();
            let known: Vec<Candidate> = view
                .servers
                .iter()
                .map(|s| Candidate {
                    addr: s.rpc_addr.clone(),
                    is_leader: s.is_leader,
                    gone: matches!(s.state.as_str(), "down" | "left"),
                    latency: view.latency.get(&s.rpc_addr).copied(),
                })
                .collect();
            if known.is_empty() {
                // Nothing learned yet: the seeds, as equals.
                self.config
                    .seeds
                    .iter()
                    .map(|seed| Candidate {
                        addr: seed.clone(),
                        is_leader: false,
                        gone: false,
                        latency: None,
                    })
                    .collect()
            } else {
                known
            }
        };
        let turn = self.turn.fetch_add(1, Ordering::Relaxed);
        pick(
            &candidates,
            operation,
            &self.config.read_preference,
            excluded,
            turn,
        )
    }

    fn observe_latency(&self, addr: &str, took: Duration) {
        let mut view = self.view();
        let smoothed = match view.latency.get(addr) {
            Some(old) => old.mul_f64(0.8) + took.mul_f64(0.2),
            None => took,
        };
        view.latency.insert(addr.to_owned(), smoothed);
    }

    /// Asks the cluster who is there and who leads: the known leader first,
    /// then the other known nodes, then the seeds; the first answer wins.
    ///
    /// # Errors
    /// The last node's error when none answers.
    pub(crate) async fn refresh(&self) -> Result<()> {
        let asked_at = Instant::now();
        let _one = self.refreshing.lock().await;
        // Someone refreshed while this one waited, or just now.
        if self
            .view()
            .refreshed
            .is_some_and(|at| at >= asked_at || at.elapsed() < REFRESH_SPACING)
        {
            return Ok(());
        }
        let mut order: Vec<String> = Vec::new();
        {
            let view = self.view();
            let servers = view.servers.iter();
            let (leaders, others): (Vec<&Server>, Vec<&Server>) =
                servers.partition(|s| s.is_leader);
            order.extend(leaders.iter().chain(&others).map(|s| s.rpc_addr.clone()));
        }
        for seed in &self.config.seeds {
            if !order.contains(seed) {
                order.push(seed.clone());
            }
        }
        let mut last = None;
        for addr in order {
            match self.ask_servers(&addr).await {
                Ok(servers) => {
                    let mut view = self.view();
                    tracing::debug!(from = %addr, servers = servers.len(), "cluster refreshed");
                    view.servers = servers;
                    view.refreshed = Some(Instant::now());
                    return Ok(());
                }
                Err(error) => {
                    tracing::debug!(%addr, %error, "GetServers failed");
                    let fatal = !error.is_retryable();
                    last = Some(error);
                    if fatal {
                        break;
                    }
                }
            }
        }
        Err(last.unwrap_or_else(|| Error::Config {
            message: "no seed address given".to_owned(),
        }))
    }

    async fn ask_servers(&self, addr: &str) -> Result<Vec<Server>> {
        let mut stub = self.stub(addr)?;
        let timeout = self.config.request_timeout;
        let started = Instant::now();
        let response = tokio::time::timeout(timeout, stub.get_servers(GetServersRequest {}))
            .await
            .map_err(|_| Error::Timeout { after: timeout })?
            .map_err(|status| Error::from_status(&status, addr))?;
        self.observe_latency(addr, started.elapsed());
        Ok(response
            .into_inner()
            .servers
            .into_iter()
            .map(Server::from)
            .filter(|s| !s.rpc_addr.is_empty())
            .collect())
    }

    /// Runs `request` against the node routing picks for `operation`,
    /// retrying per the policy on another node (after a refresh) when the
    /// failure allows it.
    ///
    /// `read_offset` is the offset a read asks for: an `OUT_OF_RANGE` from
    /// a node that has not committed it yet sends the read elsewhere.
    pub(crate) async fn call<T, F, Fut>(
        &self,
        operation: Operation,
        retry: Retry,
        read_offset: Option<u64>,
        mut request: F,
    ) -> Result<T>
    where
        F: FnMut(LogStub, String) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<T>, tonic::Status>>,
    {
        let mut attempts = Attempts::new(self.config.retry.clone());
        let mut excluded = HashSet::new();
        let timeout = self.config.request_timeout;
        loop {
            let addr = match self.route(operation, &excluded) {
                Some(addr) => addr,
                None => {
                    // Every node failed once: start the round again.
                    excluded.clear();
                    self.route(operation, &excluded)
                        .ok_or_else(|| Error::Config {
                            message: "no node to send to".to_owned(),
                        })?
                }
            };
            let started = Instant::now();
            let outcome =
                match tokio::time::timeout(timeout, request(self.stub(&addr)?, addr.clone())).await
                {
                    Ok(Ok(response)) => {
                        self.observe_latency(&addr, started.elapsed());
                        return Ok(response.into_inner());
                    }
                    Ok(Err(status)) => Error::from_status(&status, &addr),
                    Err(_) => Error::Timeout { after: timeout },
                };
            let behind = matches!(
                (&outcome, read_offset),
                (Error::OutOfRange { next: Some(next), .. }, Some(offset))
                    if offset >= *next && self.leader().as_deref() != Some(addr.as_str())
            );
            let retryable = match retry {
                Retry::Safe => outcome.is_retryable() || behind,
                Retry::IfNotApplied => outcome.is_not_applied(),
            };
            if !retryable {
                return Err(outcome);
            }
            let Some(wait) = attempts.failed() else {
                return Err(outcome);
            };
            tracing::debug!(%addr, error = %outcome, ?wait, "retrying");
            excluded.insert(addr);
            if outcome.suggests_refresh() {
                // A failed refresh leaves the old picture; the retry tells.
                let _ = self.refresh().await;
            }
            if !behind {
                tokio::time::sleep(wait).await;
            }
        }
    }

    /// Refreshes every `refresh_interval` while any handle of the client
    /// lives.
    pub(crate) fn spawn_refresher(shared: &Arc<Self>) {
        let weak: Weak<Self> = Arc::downgrade(shared);
        let interval = shared.config.refresh_interval;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                let Some(shared) = weak.upgrade() else { return };
                if let Err(error) = shared.refresh().await {
                    tracing::debug!(%error, "periodic refresh failed");
                }
            }
        });
    }
}
