//! How gossip packets move: UDP in production, an in-memory network with
//! seeded loss and partitions in tests.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use rand::rngs::StdRng;
use rand::{RngExt as _, SeedableRng as _};
use tokio::sync::mpsc;

use crate::envelope::PACKET_BYTES_MAX;

/// A datagram transport.
///
/// Sending never waits: a packet that cannot leave at once is dropped, as
/// UDP would, and gossip retransmits.
pub trait Transport: Send + Sync + 'static {
    /// Sends one datagram, best effort.
    ///
    /// # Errors
    /// The packet could not be handed to the network (it is dropped).
    fn send(&self, to: SocketAddr, packet: &[u8]) -> io::Result<()>;

    /// Waits for the next datagram and its sender.
    fn recv(&mut self) -> impl Future<Output = io::Result<(Vec<u8>, SocketAddr)>> + Send;
}

/// A UDP socket.
#[derive(Debug)]
pub struct UdpTransport {
    socket: tokio::net::UdpSocket,
    buffer: Vec<u8>,
}

impl UdpTransport {
    /// Binds `addr`.
    ///
    /// # Errors
    /// The address cannot be bound.
    pub async fn bind(addr: SocketAddr) -> io::Result<Self> {
        let socket = tokio::net::UdpSocket::bind(addr).await?;
        Ok(Self {
            socket,
            // One byte more than the largest packet, so an oversize one is
            // seen as such instead of silently cut.
            buffer: vec![0; PACKET_BYTES_MAX + 1],
        })
    }

    /// The bound address.
    ///
    /// # Errors
    /// As [`tokio::net::UdpSocket::local_addr`].
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }
}

impl Transport for UdpTransport {
    fn send(&self, to: SocketAddr, packet: &[u8]) -> io::Result<()> {
        self.socket.try_send_to(packet, to).map(|_| ())
    }

    async fn recv(&mut self) -> io::Result<(Vec<u8>, SocketAddr)> {
        let (length, from) = self.socket.recv_from(&mut self.buffer).await?;
        Ok((self.buffer[..length].to_vec(), from))
    }
}

/// Packets queued per in-memory endpoint before more are dropped.
const MEMORY_QUEUE_PACKETS: usize = 1024;

/// An in-memory network for tests: endpoints by address, seeded random
/// loss, and cuts between pairs of addresses (one-way or both).
#[derive(Debug, Clone)]
pub struct MemoryNetwork {
    state: Arc<Mutex<NetworkState>>,
}

#[derive(Debug)]
struct NetworkState {
    endpoints: HashMap<SocketAddr, mpsc::Sender<(Vec<u8>, SocketAddr)>>,
    cut: HashSet<(SocketAddr, SocketAddr)>,
    loss: f64,
    rng: StdRng,
    delivered: u64,
    dropped: u64,
}

impl MemoryNetwork {
    /// A network whose losses follow `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            state: Arc::new(Mutex::new(NetworkState {
                endpoints: HashMap::new(),
                cut: HashSet::new(),
                loss: 0.0,
                rng: StdRng::seed_from_u64(seed),
                delivered: 0,
                dropped: 0,
            })),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, NetworkState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// An endpoint at `addr`, replacing any earlier one there (a restart).
    pub fn bind(&self, addr: SocketAddr) -> MemoryTransport {
        let (sender, receiver) = mpsc::channel(MEMORY_QUEUE_PACKETS);
        self.state().endpoints.insert(addr, sender);
        MemoryTransport {
            network: self.clone(),
            addr,
            receiver,
        }
    }

    /// Drops every packet with probability `loss` (0.0 to 1.0).
    pub fn set_loss(&self, loss: f64) {
        self.state().loss = loss;
    }

    /// Drops packets from `from` to `to` (one way).
    pub fn cut_one_way(&self, from: SocketAddr, to: SocketAddr) {
        self.state().cut.insert((from, to));
    }

    /// Drops packets between `a` and `b`, both ways.
    pub fn cut(&self, a: SocketAddr, b: SocketAddr) {
        let mut state = self.state();
        state.cut.insert((a, b));
        state.cut.insert((b, a));
    }

    /// Removes every cut.
    pub fn heal(&self) {
        self.state().cut.clear();
    }

    /// Packets delivered and dropped so far.
    pub fn counts(&self) -> (u64, u64) {
        let state = self.state();
        (state.delivered, state.dropped)
    }

    fn deliver(&self, from: SocketAddr, to: SocketAddr, packet: &[u8]) {
        let mut state = self.state();
        let loss = state.loss.clamp(0.0, 1.0);
        let lost = loss > 0.0 && state.rng.random_bool(loss);
        let delivered = !lost
            && !state.cut.contains(&(from, to))
            && state
                .endpoints
                .get(&to)
                .is_some_and(|endpoint| endpoint.try_send((packet.to_vec(), from)).is_ok());
        if delivered {
            state.delivered += 1;
        } else {
            state.dropped += 1;
        }
    }
}

/// One endpoint of a [`MemoryNetwork`].
#[derive(Debug)]
pub struct MemoryTransport {
    network: MemoryNetwork,
    addr: SocketAddr,
    receiver: mpsc::Receiver<(Vec<u8>, SocketAddr)>,
}

impl Transport for MemoryTransport {
    fn send(&self, to: SocketAddr, packet: &[u8]) -> io::Result<()> {
        self.network.deliver(self.addr, to, packet);
        Ok(())
    }

    async fn recv(&mut self) -> io::Result<(Vec<u8>, SocketAddr)> {
        self.receiver
            .recv()
            .await
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "endpoint replaced"))
    }
}

/// Sends raw bytes into a network as if from `from`: for tests that inject
/// forged or foreign packets.
pub fn inject(network: &MemoryNetwork, from: SocketAddr, to: SocketAddr, packet: &[u8]) {
    network.deliver(from, to, packet);
}
