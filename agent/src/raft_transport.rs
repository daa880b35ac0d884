//! Raft messages between nodes over the internal gRPC service
//! `proglog.v1.Raft` on the RPC port: raft-rs's own encoding inside our
//! protos as opaque bytes.
//!
//! Sending never waits: each peer has a bounded queue and one task that
//! batches what is queued into one `Step` call, dialling the peer's current
//! RPC address (from gossip) and reconnecting after failures. A full queue
//! or an unknown peer makes `send` return `false`, and the driver reports
//! the peer unreachable; raft retransmits.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use proto::v1::raft_client::RaftClient;
use proto::v1::raft_server::{Raft, RaftServer};
use proto::v1::{ForwardRequest, ForwardResponse, RaftBatch, RaftBatchResponse};
use protobuf::Message as _;
use raft::prelude::Message;
use tokio::sync::mpsc;
use tonic::{Request, Response, Status};

/// The one Raft group a node runs today.
pub const GROUP: u64 = 1;
/// Messages queued per peer before `send` refuses more.
const PEER_QUEUE: usize = 4096;
/// Messages sent in one `Step` call at most.
const BATCH_MESSAGES: usize = 256;
/// Longest wait to connect to a peer, and for one `Step` answer.
const PEER_TIMEOUT: Duration = Duration::from_secs(2);
/// Pause after a failed call before the next connection attempt.
const RECONNECT_DELAY: Duration = Duration::from_millis(200);

/// Where a peer's RPC port is, by node id (gossip knows).
pub type PeerAddrs = Arc<dyn Fn(u64) -> Option<String> + Send + Sync>;

/// How a node dials its peers: plaintext, or TLS presenting its own node
/// certificate (the peers' policy must grant it `replicate`).
#[derive(Clone, Default)]
pub struct PeerTls(Option<Arc<auth::ClientTls>>);

impl PeerTls {
    /// Plaintext, or mutual TLS with the node's certificate and key,
    /// verifying peers against `ca_file`.
    ///
    /// # Errors
    /// A file cannot be loaded.
    pub fn load(
        tls: Option<(&std::path::Path, &std::path::Path, &std::path::Path)>,
    ) -> anyhow::Result<Self> {
        let Some((ca_file, cert_file, key_file)) = tls else {
            return Ok(Self(None));
        };
        let config = auth::ClientTlsConfig {
            ca_file: ca_file.to_path_buf(),
            cert_file: Some(cert_file.to_path_buf()),
            key_file: Some(key_file.to_path_buf()),
            server_name: None,
        }
        .load()?;
        Ok(Self(Some(Arc::new(config))))
    }

    /// Dials with a client configuration built elsewhere (the CLI's
    /// `--ca-file`, `--cert-file`, `--key-file`), or plaintext.
    pub fn from_client(tls: Option<Arc<auth::ClientTls>>) -> Self {
        Self(tls)
    }

    /// A channel to the peer at `addr` (`HOST:PORT`).
    ///
    /// # Errors
    /// Nothing answers within the peer timeout (2 s), or TLS refuses.
    pub async fn connect(&self, addr: &str) -> anyhow::Result<tonic::transport::Channel> {
        let scheme = if self.0.is_some() { "https" } else { "http" };
        let endpoint = tonic::transport::Endpoint::from_shared(format!("{scheme}://{addr}"))?
            .connect_timeout(PEER_TIMEOUT)
            .tcp_nodelay(true);
        let connecting = async {
            match &self.0 {
                Some(tls) => {
                    endpoint
                        .connect_with_connector(crate::client::connector::tls(
                            Arc::clone(tls),
                            tls.config.client_auth_cert_resolver.has_certs(),
                        ))
                        .await
                }
                None => endpoint.connect().await,
            }
        };
        match tokio::time::timeout(PEER_TIMEOUT, connecting).await {
            Ok(channel) => Ok(channel?),
            Err(_) => anyhow::bail!("no answer within {PEER_TIMEOUT:?}"),
        }
    }
}

/// The sending side, one per replica.
#[derive(Clone)]
pub struct GrpcTransport {
    from: u64,
    addrs: PeerAddrs,
    tls: PeerTls,
    peers: Arc<Mutex<HashMap<u64, mpsc::Sender<Message>>>>,
}

impl GrpcTransport {
    /// A transport for node `from`, dialling peers at `addrs`.
    pub fn new(from: u64, addrs: PeerAddrs, tls: PeerTls) -> Self {
        Self {
            from,
            addrs,
            tls,
            peers: Arc::default(),
        }
    }

    fn queue(&self, to: u64) -> mpsc::Sender<Message> {
        let mut peers = self.peers.lock().unwrap_or_else(PoisonError::into_inner);
        peers
            .entry(to)
            .or_insert_with(|| {
                let (sender, receiver) = mpsc::channel(PEER_QUEUE);
                tokio::spawn(peer_loop(
                    self.from,
                    to,
                    Arc::clone(&self.addrs),
                    self.tls.clone(),
                    receiver,
                ));
                sender
            })
            .clone()
    }
}

impl replicator::Transport for GrpcTransport {
    fn send(&self, message: Message) -> bool {
        let to = message.get_to();
        if (self.addrs)(to).is_none() {
            return false;
        }
        self.queue(to).try_send(message).is_ok()
    }
}

async fn peer_loop(
    from: u64,
    to: u64,
    addrs: PeerAddrs,
    tls: PeerTls,
    mut queue: mpsc::Receiver<Message>,
) {
    let mut client: Option<(String, RaftClient<tonic::transport::Channel>)> = None;
    while let Some(first) = queue.recv().await {
        let mut batch = vec![first];
        while batch.len() < BATCH_MESSAGES {
            match queue.try_recv() {
                Ok(message) => batch.push(message),
                Err(_) => break,
            }
        }
        let Some(addr) = addrs(to) else { continue };
        if client.as_ref().is_none_or(|(known, _)| *known != addr) {
            client = match tls.connect(&addr).await {
                Ok(channel) => Some((addr.clone(), RaftClient::new(channel))),
                Err(e) => {
                    tracing::debug!(%addr, error = %e, "cannot reach raft peer");
                    None
                }
            };
        }
        let Some((_, raft)) = client.as_mut() else {
            metrics::counter!("proglog_raft_send_failures_total", "peer" => to.to_string())
                .increment(1);
            tokio::time::sleep(RECONNECT_DELAY).await;
            continue;
        };
        let request = RaftBatch {
            group: GROUP,
            from,
            messages: batch
                .iter()
                .filter_map(|m| m.write_to_bytes().ok())
                .collect(),
        };
        let mut request = Request::new(request);
        request.set_timeout(PEER_TIMEOUT);
        if let Err(status) = raft.step(request).await {
            tracing::debug!(peer = to, %addr, error = %status, "raft messages not delivered");
            metrics::counter!("proglog_raft_send_failures_total", "peer" => to.to_string())
                .increment(1);
            client = None;
            tokio::time::sleep(RECONNECT_DELAY).await;
        }
    }
}

/// The receiving side: hands messages to the local replica's inbox, and
/// proposes what followers forward.
pub struct RaftService {
    inbox: mpsc::Sender<Message>,
    replica: replicator::Replica,
    storage: replicator::LogStorage,
}

impl RaftService {
    /// The service as routes to serve next to the public API.
    pub fn router(
        inbox: mpsc::Sender<Message>,
        replica: replicator::Replica,
        storage: replicator::LogStorage,
    ) -> axum::Router {
        // A plain route, not tonic's `Routes`: those carry a fallback, and
        // two routers with fallbacks cannot be merged.
        axum::Router::new().route_service(
            "/proglog.v1.Raft/{*method}",
            RaftServer::new(Self {
                inbox,
                replica,
                storage,
            })
            .max_decoding_message_size(FORWARD_MESSAGE_BYTES_MAX),
        )
    }
}

#[tonic::async_trait]
impl Raft for RaftService {
    async fn step(
        &self,
        request: Request<RaftBatch>,
    ) -> Result<Response<RaftBatchResponse>, Status> {
        let batch = request.into_inner();
        if batch.group != GROUP {
            return Err(Status::not_found(format!("no raft group {}", batch.group)));
        }
        for bytes in &batch.messages {
            let message = Message::parse_from_bytes(bytes)
                .map_err(|e| Status::invalid_argument(format!("raft message: {e}")))?;
            if self.inbox.try_send(message).is_err() {
                // Like a full network buffer: raft retransmits.
                metrics::counter!("proglog_raft_inbox_dropped_total").increment(1);
            }
        }
        Ok(Response::new(RaftBatchResponse {}))
    }

    async fn forward(
        &self,
        request: Request<ForwardRequest>,
    ) -> Result<Response<ForwardResponse>, Status> {
        let request = request.into_inner();
        if request.group != GROUP {
            return Err(Status::not_found(format!(
                "no raft group {}",
                request.group
            )));
        }
        let proposed = if request.producer_id == 0 {
            let count = request.values.len() as u64;
            self.replica
                .propose(request.values)
                .await
                .map(|first| replicator::Proposed {
                    first,
                    count,
                    duplicate: false,
                })
        } else {
            let producer = log_core::Producer {
                id: request.producer_id,
                sequence: request.sequence,
            };
            self.replica
                .propose_idempotent(request.values, producer)
                .await
        };
        match proposed {
            Ok(proposed) => Ok(Response::new(ForwardResponse {
                base_offset: self.storage.user_offset(proposed.first),
                count: proposed.count,
                duplicate: proposed.duplicate,
            })),
            Err(replicator::Error::NotLeader { .. }) => Err(Status::failed_precondition(
                "this node is no longer the leader",
            )),
            Err(e @ replicator::Error::SequenceTooOld { .. }) => {
                Err(Status::out_of_range(e.to_string()))
            }
            Err(e) => Err(Status::unavailable(e.to_string())),
        }
    }
}

/// Largest forwarded batch, bytes: a ProduceBatch the follower accepted.
const FORWARD_MESSAGE_BYTES_MAX: usize = 64 << 20;

/// Forwards a follower's produce to the leader, over cached channels.
#[derive(Clone, Default)]
pub struct Forwarder {
    tls: PeerTls,
    clients: Arc<Mutex<HashMap<String, RaftClient<tonic::transport::Channel>>>>,
}

impl Forwarder {
    /// A forwarder dialling with `tls`.
    pub fn new(tls: PeerTls) -> Self {
        Self {
            tls,
            clients: Arc::default(),
        }
    }

    /// Proposes `values` on the leader at `addr`; returns the user offset
    /// of the first, or the gRPC status it answered.
    ///
    /// # Errors
    /// The leader cannot be reached (`UNAVAILABLE`) or refused.
    pub async fn forward(
        &self,
        addr: &str,
        values: Vec<bytes::Bytes>,
        producer: Option<log_core::Producer>,
        timeout: Duration,
    ) -> Result<log_server::Appended, Status> {
        let cached = self
            .clients
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(addr)
            .cloned();
        let mut client = match cached {
            Some(client) => client,
            None => {
                let channel = self.tls.connect(addr).await.map_err(|e| {
                    Status::unavailable(format!("the leader at {addr} cannot be reached: {e}"))
                })?;
                let client =
                    RaftClient::new(channel).max_encoding_message_size(FORWARD_MESSAGE_BYTES_MAX);
                self.clients
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(addr.to_owned(), client.clone());
                client
            }
        };
        let producer = producer.unwrap_or(log_core::Producer { id: 0, sequence: 0 });
        let mut request = Request::new(ForwardRequest {
            group: GROUP,
            values,
            producer_id: producer.id,
            sequence: producer.sequence,
        });
        request.set_timeout(timeout);
        match client.forward(request).await {
            Ok(response) => {
                let response = response.into_inner();
                Ok(log_server::Appended {
                    first: response.base_offset,
                    count: response.count,
                    duplicate: response.duplicate,
                })
            }
            Err(status) => {
                self.clients
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(addr);
                Err(status)
            }
        }
    }
}
