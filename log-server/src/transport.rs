//! Connections: the accept loop, an optional handshake (TLS, supplied by the
//! agent through [`Handshake`]), and who the caller is.
//!
//! Accepting never waits on a handshake: each runs in its own task, bounded
//! in number and time, and finished connections queue for the server. The
//! caller's identity travels with the connection into every request's
//! extensions as a [`Caller`].

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::IncomingStream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};

/// Handshakes in progress at once; more wait in the accept backlog.
const HANDSHAKES_MAX: usize = 256;
/// A client that has not finished its handshake by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections handshaken but not yet picked up by the server.
const READY_QUEUE: usize = 64;

/// Who is calling, as the transport established it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Caller {
    /// The authenticated subject (for TLS, from the client certificate);
    /// `None` when the connection is not authenticated (no TLS).
    pub subject: Option<String>,
    /// The peer's address.
    pub peer: Option<SocketAddr>,
}

/// Any byte stream a connection can run on.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

/// A handshaken connection: the stream and who is on the other end.
pub type Handshaken = (Box<dyn Io>, Option<String>);

/// Turns an accepted TCP connection into an authenticated stream (the
/// agent's TLS implementation). An error drops the connection and is logged
/// at debug level (scanners and wrong-protocol clients are routine).
pub trait Handshake: Send + Sync + 'static {
    /// Performs the handshake.
    fn handshake(
        &self,
        tcp: TcpStream,
    ) -> Pin<Box<dyn Future<Output = io::Result<Handshaken>> + Send>>;
}

/// No handshake: plaintext, anonymous callers.
pub struct Plaintext;

impl Handshake for Plaintext {
    fn handshake(
        &self,
        tcp: TcpStream,
    ) -> Pin<Box<dyn Future<Output = io::Result<Handshaken>> + Send>> {
        Box::pin(async move { Ok((Box::new(tcp) as Box<dyn Io>, None)) })
    }
}

/// One connection as the server sees it.
pub struct Connection {
    io: Box<dyn Io>,
    caller: Caller,
}

impl AsyncRead for Connection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// The server's listener: connections that finished their handshake.
pub struct Incoming {
    ready: mpsc::Receiver<(Connection, SocketAddr)>,
    local: SocketAddr,
    accept_task: tokio::task::JoinHandle<()>,
}

impl Incoming {
    /// Accepts on `listener`, handshaking each connection with `handshake`.
    ///
    /// # Errors
    /// The listener has no local address.
    pub fn new(listener: TcpListener, handshake: Arc<dyn Handshake>) -> io::Result<Self> {
        let local = listener.local_addr()?;
        let (queue, ready) = mpsc::channel(READY_QUEUE);
        let permits = Arc::new(Semaphore::new(HANDSHAKES_MAX));
        let accept_task = tokio::spawn(async move {
            loop {
                let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
                    return;
                };
                let (tcp, peer) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of file descriptors and the like: back off
                        // instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                // Small responses (acks, health) must leave at once: with
                // Nagle's algorithm and delayed ACKs they would wait ~40 ms.
                if let Err(e) = tcp.set_nodelay(true) {
                    tracing::warn!(error = %e, "cannot set TCP_NODELAY");
                }
                let (queue, handshake) = (queue.clone(), Arc::clone(&handshake));
                tokio::spawn(async move {
                    let _permit = permit;
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake.handshake(tcp)).await {
                        Ok(Ok((io, subject))) => {
                            let caller = Caller {
                                subject,
                                peer: Some(peer),
                            };
                            let _ = queue.send((Connection { io, caller }, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "handshake failed"),
                        Err(_) => tracing::debug!(%peer, "handshake timed out"),
                    }
                });
            }
        });
        Ok(Self {
            ready,
            local,
            accept_task,
        })
    }
}

impl Drop for Incoming {
    fn drop(&mut self) {
        self.accept_task.abort();
    }
}

impl axum::serve::Listener for Incoming {
    type Io = Connection;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(accepted) => accepted,
            // The accept task ended (aborted on drop): nothing more comes.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local)
    }
}

impl Connected<IncomingStream<'_, Incoming>> for Caller {
    fn connect_info(stream: IncomingStream<'_, Incoming>) -> Self {
        stream.io().caller.clone()
    }
}
