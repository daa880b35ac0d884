//! Connections: the accept loop, an optional handshake (TLS, supplied by the
//! agent through [`Handshake`]), and who the caller is.
//!
//! Accepting never waits on a handshake: each runs in its own task, bounded
//! in number and time, and finished connections queue for the server. The
//! caller's identity travels with the connection into every request's
//! extensions as a [`Caller`].
//!
//! Connections are capped: each holds a permit from accept until it closes,
//! and a connection beyond the cap is accepted and closed at once (counted
//! in `proglog_connections_refused_total`), so idle or slow clients cannot
//! exhaust the process's file descriptors. The cap is lowered, with a
//! warning, to what the open-file limit leaves after the descriptors open
//! at start and a reserve. When accepting fails anyway (out
//! of descriptors), the loop backs off exponentially and warns once per
//! episode instead of once per attempt.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

/// Handshakes in progress at once; more wait in the accept backlog.
const HANDSHAKES_MAX: usize = 256;
/// A client that has not finished its handshake by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections handshaken but not yet picked up by the server.
const READY_QUEUE: usize = 64;
/// First wait after a failed accept; doubles while accepting keeps failing.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(5);
/// Longest wait between accept attempts while accepting fails: short
/// enough to recover soon after descriptors are freed.
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

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

/// One connection as the server sees it; it counts against the
/// connection cap until dropped.
pub struct Connection {
    io: Box<dyn Io>,
    caller: Caller,
    _permit: OwnedSemaphorePermit,
}

impl Connection {
    /// Who is on the other end.
    pub fn caller(&self) -> &Caller {
        &self.caller
    }
}

/// The waits of an accept loop while accepting fails: doubling from
/// [`ACCEPT_BACKOFF_MIN`] to [`ACCEPT_BACKOFF_MAX`], back to the start after
/// a success. Only the first failure of a run is worth a warning.
#[derive(Debug, Default)]
pub(crate) struct AcceptBackoff {
    /// Failures since the last success.
    failures: u32,
}

impl AcceptBackoff {
    /// Records a failure; returns how long to wait before the next attempt
    /// and whether this failure starts a new run (warn about it).
    pub(crate) fn failed(&mut self) -> (Duration, bool) {
        self.failures = self.failures.saturating_add(1);
        let doublings = self.failures.saturating_sub(1).min(16);
        let wait = ACCEPT_BACKOFF_MIN
            .saturating_mul(1 << doublings)
            .min(ACCEPT_BACKOFF_MAX);
        (wait, self.failures == 1)
    }

    /// Records a success; returns how many failures the run that just
    /// ended had (0: there was none).
    pub(crate) fn succeeded(&mut self) -> u32 {
        std::mem::take(&mut self.failures)
    }
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
    /// Accepts on `listener`, handshaking each connection with `handshake`,
    /// with at most `connections_max` connections open at once.
    ///
    /// # Errors
    /// The listener has no local address.
    pub fn new(
        listener: TcpListener,
        handshake: Arc<dyn Handshake>,
        connections_max: usize,
    ) -> io::Result<Self> {
        let local = listener.local_addr()?;
        let (queue, ready) = mpsc::channel(READY_QUEUE);
        let handshakes = Arc::new(Semaphore::new(HANDSHAKES_MAX));
        let connections_max = within_open_file_limit(connections_max, open_files());
        let connections = Arc::new(Semaphore::new(connections_max));
        let accept_task = tokio::spawn(async move {
            let refused = metrics::counter!("proglog_connections_refused_total");
            let mut backoff = AcceptBackoff::default();
            loop {
                let Ok(handshake_permit) = Arc::clone(&handshakes).acquire_owned().await else {
                    return;
                };
                let (tcp, peer) = accept_with_backoff(|| listener.accept(), &mut backoff).await;
                let Ok(permit) = Arc::clone(&connections).try_acquire_owned() else {
                    // Over the cap: closed at once, so the client learns it
                    // now rather than waiting on a connection never served.
                    refused.increment(1);
                    tracing::debug!(%peer, "connection refused: at the connection cap");
                    drop(tcp);
                    continue;
                };
                // Small responses (acks, health) must leave at once: with
                // Nagle's algorithm and delayed ACKs they would wait ~40 ms.
                if let Err(e) = tcp.set_nodelay(true) {
                    tracing::warn!(error = %e, "cannot set TCP_NODELAY");
                }
                let (queue, handshake) = (queue.clone(), Arc::clone(&handshake));
                tokio::spawn(async move {
                    let _handshake_permit = handshake_permit;
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake.handshake(tcp)).await {
                        Ok(Ok((io, subject))) => {
                            let caller = Caller {
                                subject,
                                peer: Some(peer),
                            };
                            let connection = Connection {
                                io,
                                caller,
                                _permit: permit,
                            };
                            let _ = queue.send((connection, peer)).await;
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

    /// The next handshaken connection; pending forever once the accept task
    /// has ended.
    pub async fn accept(&mut self) -> (Connection, SocketAddr) {
        match self.ready.recv().await {
            Some(accepted) => accepted,
            None => std::future::pending().await,
        }
    }

    /// The address accepted on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }
}

impl Drop for Incoming {
    fn drop(&mut self) {
        self.accept_task.abort();
    }
}

/// File descriptors kept free of connections beyond those open when the
/// listener starts: for segments the log opens later, the other listener's
/// first connections, and the process's own.
const DESCRIPTORS_RESERVED: u64 = 64;

/// The process's soft limit on open files and the descriptors open now
/// (Linux: `/proc/self/limits`, `/proc/self/fd`), or `None` where they
/// cannot be read.
fn open_files() -> Option<(u64, u64)> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let limit = line.split_whitespace().nth(3)?.parse().ok()?;
    let open = std::fs::read_dir("/proc/self/fd").ok()?.count() as u64;
    Some((limit, open))
}

/// `connections_max`, lowered (with a warning) so that connections cannot
/// use up the open-file limit: a node out of descriptors can neither
/// accept nor open a segment. `files` is the limit and the descriptors
/// already open.
fn within_open_file_limit(connections_max: usize, files: Option<(u64, u64)>) -> usize {
    let wanted = connections_max.max(1);
    let Some((limit, open)) = files else {
        return wanted;
    };
    let room = limit.saturating_sub(open + DESCRIPTORS_RESERVED).max(1);
    let room = usize::try_from(room).unwrap_or(usize::MAX);
    if wanted > room {
        tracing::warn!(
            connections_max = wanted,
            open_file_limit = limit,
            open_files = open,
            using = room,
            "connections_max is above what the open-file limit leaves room for; lowered"
        );
        return room;
    }
    wanted
}

/// The next accepted connection: a failed accept (out of file descriptors
/// and the like) is retried after [`AcceptBackoff`]'s wait instead of at
/// once, warned about once per run and counted in
/// `proglog_accept_errors_total`.
async fn accept_with_backoff<S, F>(
    mut accept: impl FnMut() -> F,
    backoff: &mut AcceptBackoff,
) -> (S, SocketAddr)
where
    F: Future<Output = io::Result<(S, SocketAddr)>>,
{
    loop {
        match accept().await {
            Ok(accepted) => {
                let failures = backoff.succeeded();
                if failures > 0 {
                    tracing::info!(failures, "accepting again");
                }
                return accepted;
            }
            Err(e) => {
                metrics::counter!("proglog_accept_errors_total").increment(1);
                let (wait, first) = backoff.failed();
                if first {
                    tracing::warn!(error = %e, "accept failed; backing off until it succeeds again");
                }
                tokio::time::sleep(wait).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connection_cap_stays_under_the_open_file_limit() {
        assert_eq!(within_open_file_limit(1024, Some((128, 0))), 64);
        assert_eq!(within_open_file_limit(1024, Some((1024, 500))), 460);
        assert_eq!(within_open_file_limit(1024, Some((20_000, 30))), 1024);
        assert_eq!(within_open_file_limit(1024, None), 1024);
        assert_eq!(within_open_file_limit(0, Some((20_000, 30))), 1);
        assert_eq!(within_open_file_limit(10, Some((10, 5))), 1);
        assert!(
            open_files().is_some_and(|(limit, open)| open > 0 && limit >= open),
            "Linux reports both"
        );
    }

    /// Goal: a listener whose accepts keep failing is tried about once a
    /// second, not in a hot loop, and serves again as soon as one succeeds.
    /// Method: a fake accept that fails (EMFILE) for ten virtual seconds,
    /// then succeeds, under a paused clock; count the attempts.
    #[tokio::test(start_paused = true)]
    async fn a_failing_accept_is_retried_with_backoff() {
        const FAILING: Duration = Duration::from_secs(10);
        let started = tokio::time::Instant::now();
        let mut attempts = 0u32;
        let mut backoff = AcceptBackoff::default();
        let peer: SocketAddr = "127.0.0.1:1".parse().expect("addr");
        let ((), got) = accept_with_backoff(
            || {
                attempts += 1;
                let failing = started.elapsed() < FAILING;
                async move {
                    if failing {
                        Err(io::Error::from_raw_os_error(24)) // EMFILE
                    } else {
                        Ok(((), peer))
                    }
                }
            },
            &mut backoff,
        )
        .await;
        assert_eq!(got, peer);
        // 5 ms doubling to 1 s takes 8 tries to reach a second, then one a
        // second: about 17 in ten seconds (a fixed 50 ms would be 200).
        assert!(attempts <= 20, "{attempts} accept attempts in {FAILING:?}");
        // And the wait never exceeds the cap: the success came within a
        // second of the failures' end.
        assert!(started.elapsed() <= FAILING + ACCEPT_BACKOFF_MAX);
        assert_eq!(backoff.succeeded(), 0, "the run ended with the success");
    }

    #[test]
    fn accept_backoff_doubles_to_its_cap_and_warns_once_per_run() {
        let mut backoff = AcceptBackoff::default();
        let mut waits = Vec::new();
        let mut warnings = 0;
        for _ in 0..20 {
            let (wait, warn) = backoff.failed();
            waits.push(wait);
            warnings += u32::from(warn);
        }
        assert_eq!(warnings, 1, "one warning for a run of failures");
        assert_eq!(waits[0], ACCEPT_BACKOFF_MIN);
        assert_eq!(waits[1], ACCEPT_BACKOFF_MIN * 2);
        assert!(waits.windows(2).all(|w| w[0] <= w[1]), "{waits:?}");
        assert_eq!(*waits.last().expect("waits"), ACCEPT_BACKOFF_MAX);
        // A second of backoff is reached within a dozen failures: a failing
        // accept is tried about once a second, not in a hot loop.
        let to_cap = waits.iter().position(|w| *w == ACCEPT_BACKOFF_MAX);
        assert!(to_cap.is_some_and(|n| n <= 12), "{waits:?}");
        assert_eq!(backoff.succeeded(), 20);
        assert_eq!(backoff.failed(), (ACCEPT_BACKOFF_MIN, true), "a new run");
    }
}
