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
use proto::v1::{RaftBatch, RaftBatchResponse};
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

/// The sending side, one per replica.
#[derive(Clone)]
pub struct GrpcTransport {
    from: u64,
    addrs: PeerAddrs,
    peers: Arc<Mutex<HashMap<u64, mpsc::Sender<Message>>>>,
}

impl GrpcTransport {
    /// A transport for node `from`, dialling peers at `addrs`.
    pub fn new(from: u64, addrs: PeerAddrs) -> Self {
        Self {
            from,
            addrs,
            peers: Arc::default(),
        }
    }

    fn queue(&self, to: u64) -> mpsc::Sender<Message> {
        let mut peers = self.peers.lock().unwrap_or_else(PoisonError::into_inner);
        peers
            .entry(to)
            .or_insert_with(|| {
                let (sender, receiver) = mpsc::channel(PEER_QUEUE);
                tokio::spawn(peer_loop(self.from, to, Arc::clone(&self.addrs), receiver));
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

async fn peer_loop(from: u64, to: u64, addrs: PeerAddrs, mut queue: mpsc::Receiver<Message>) {
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
            client = connect(&addr).await.map(|c| (addr.clone(), c));
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

async fn connect(addr: &str) -> Option<RaftClient<tonic::transport::Channel>> {
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .ok()?
        .connect_timeout(PEER_TIMEOUT)
        .tcp_nodelay(true);
    match endpoint.connect().await {
        Ok(channel) => Some(RaftClient::new(channel)),
        Err(e) => {
            tracing::debug!(%addr, error = %e, "cannot reach raft peer");
            None
        }
    }
}

/// The receiving side: hands messages to the local replica's inbox.
pub struct RaftService {
    inbox: mpsc::Sender<Message>,
}

impl RaftService {
    /// The service as routes to serve next to the public API.
    pub fn router(inbox: mpsc::Sender<Message>) -> axum::Router {
        // A plain route, not tonic's `Routes`: those carry a fallback, and
        // two routers with fallbacks cannot be merged.
        axum::Router::new().route_service(
            "/proglog.v1.Raft/{*method}",
            RaftServer::new(Self { inbox }),
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
}
