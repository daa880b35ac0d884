//! Connections to nodes, and the TLS failures they can meet said in the
//! user's terms (the `proglog` CLI's flags are named where one would help).
//!
//! In TLS 1.3 a client finishes its handshake before the node has checked
//! the client's certificate; the node's verdict (session tickets when it
//! accepts, an alert when it refuses) comes right after. Left to HTTP/2,
//! that alert surfaces later as whatever the first request happens to meet
//! (`CANCELLED`, `broken pipe`). So the connector waits for the verdict
//! before handing the connection on, and a refusal becomes an error that
//! names its cause. A plaintext connection checks that the port answers
//! HTTP/2 before using it, so a TLS port is named as one.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rustls::client::{ClientSessionStore, Tls12ClientSessionValue, Tls13ClientSessionValue};
use rustls::pki_types::ServerName;
use rustls::{AlertDescription, NamedGroup};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio_rustls::client::TlsStream;

/// How long to wait for the node's verdict on our certificate after the
/// handshake when it sends no session ticket (a node other than proglog):
/// a refusal arrives within a round trip, so this is only a bound.
const VERDICT_TIMEOUT: Duration = Duration::from_secs(2);

/// The error for a connection the node refused, or `None` if `error` is
/// not about that.
fn explain(
    error: &io::Error,
    presented_certificate: bool,
    after_handshake: bool,
) -> Option<String> {
    let rustls_error = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match rustls_error {
        Some(rustls::Error::AlertReceived(AlertDescription::CertificateRequired)) => {
            Some(wants_certificate())
        }
        Some(rustls::Error::AlertReceived(alert)) if presented_certificate => Some(format!(
            "the node refused our client certificate (TLS alert {alert:?}): it must be issued \
             by the CA the node trusts for clients, be valid now and allow client \
             authentication"
        )),
        Some(rustls::Error::AlertReceived(alert)) => Some(format!(
            "the node refused the TLS connection (TLS alert {alert:?})"
        )),
        Some(rustls::Error::InvalidCertificate(reason)) => Some(format!(
            "the node's certificate is not trusted ({reason:?}): check --ca-file, and \
             --tls-server-name when dialling a name or address the certificate does not carry"
        )),
        Some(rustls::Error::InvalidMessage(_)) => {
            Some("the port does not answer in TLS: it may be plaintext (drop --ca-file)".to_owned())
        }
        Some(_) => None,
        None if !after_handshake => None,
        None => match error.kind() {
            io::ErrorKind::UnexpectedEof
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted => {
                Some(closed_after_handshake(presented_certificate))
            }
            _ => None,
        },
    }
}

fn wants_certificate() -> String {
    "the node wants a client certificate (mutual TLS): pass --cert-file and --key-file".to_owned()
}

fn closed_after_handshake(presented_certificate: bool) -> String {
    if presented_certificate {
        "the node closed the connection after the TLS handshake: it refused our client \
         certificate"
            .to_owned()
    } else {
        format!(
            "the node closed the connection after the TLS handshake: {}",
            wants_certificate()
        )
    }
}

/// A connector for tonic's `Endpoint::connect_with_connector`: dials TCP
/// and runs the TLS handshake, verifying the server's certificate against
/// `config`'s roots and `server_name` (else the host dialled), then waits
/// for the node's verdict on our certificate when `presents_certificate`
/// (or on our lack of one), so a refusal is an error that names its cause.
pub fn tls(
    config: Arc<rustls::ClientConfig>,
    server_name: Option<ServerName<'static>>,
    presents_certificate: bool,
) -> impl tower::Service<
    tonic::transport::Uri,
    Response = TokioIo<Prefixed<TlsStream<TcpStream>>>,
    Error = io::Error,
    Future = impl Send,
> + Send
+ Clone
+ 'static {
    tower::service_fn(move |uri: tonic::transport::Uri| {
        let config = Arc::clone(&config);
        let server_name = server_name.clone();
        async move {
            let invalid = |what: &str| io::Error::new(io::ErrorKind::InvalidInput, what.to_owned());
            let host = uri
                .host()
                .ok_or_else(|| invalid("the address has no host"))?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let port = uri.port_u16().unwrap_or(443);
            let server_name = match server_name {
                Some(name) => name,
                None => ServerName::try_from(host.to_owned()).map_err(|_| {
                    invalid(&format!("{host:?} is neither a DNS name nor an IP address"))
                })?,
            };
            let tcp = TcpStream::connect((host, port)).await?;
            tcp.set_nodelay(true)?;
            // A store per connection that says when a ticket arrives: the
            // node accepted us.
            let tickets = Arc::new(TicketSignal::default());
            let mut config = (*config).clone();
            config.resumption = rustls::client::Resumption::store(Arc::clone(&tickets) as _);
            let stream = tokio_rustls::TlsConnector::from(Arc::new(config))
                .connect(server_name, tcp)
                .await
                .map_err(|e| refusal(e, presents_certificate, false))?;
            let stream = await_verdict(stream, &tickets, presents_certificate).await?;
            Ok(TokioIo::new(stream))
        }
    })
}

fn refusal(error: io::Error, presented_certificate: bool, after_handshake: bool) -> io::Error {
    match explain(&error, presented_certificate, after_handshake) {
        Some(message) => io::Error::new(io::ErrorKind::PermissionDenied, message),
        None => error,
    }
}

/// Reads until the node's verdict: a session ticket (accepted), an alert
/// or a close (refused), or, with TLS 1.2 (whose handshake already
/// included the verdict) at once.
async fn await_verdict(
    mut stream: TlsStream<TcpStream>,
    tickets: &TicketSignal,
    presented_certificate: bool,
) -> io::Result<Prefixed<TlsStream<TcpStream>>> {
    if stream.get_ref().1.protocol_version() != Some(rustls::ProtocolVersion::TLSv1_3) {
        return Ok(Prefixed::new(stream, Vec::new()));
    }
    let mut first = [0u8; 1];
    let verdict = tokio::time::timeout(VERDICT_TIMEOUT, async {
        tokio::select! {
            // The read is cancel-safe: rustls keeps what it has decrypted.
            read = stream.read(&mut first) => Some(read),
            () = tickets.arrived.notified() => None,
        }
    })
    .await;
    match verdict {
        // A ticket, or no word either way: go on.
        Ok(None) | Err(_) => Ok(Prefixed::new(stream, Vec::new())),
        // The node spoke first (not proglog's way): keep what it said.
        Ok(Some(Ok(n))) if n > 0 => Ok(Prefixed::new(stream, first[..n].to_vec())),
        Ok(Some(Ok(_))) => Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            closed_after_handshake(presented_certificate),
        )),
        Ok(Some(Err(e))) => Err(refusal(e, presented_certificate, true)),
    }
}

/// The HTTP/2 client connection preface.
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// A connector for plaintext gRPC that makes sure the port speaks
/// plaintext HTTP/2: it sends the connection preface itself and reads the
/// node's first bytes (its SETTINGS frame) before handing the connection to
/// HTTP/2. A TLS port answers with an alert or closes: then the error says
/// the port speaks TLS, instead of an HTTP/2 framing error.
pub fn plaintext() -> impl tower::Service<
    tonic::transport::Uri,
    Response = TokioIo<Primed>,
    Error = io::Error,
    Future = impl Send,
> + Send
+ Clone
+ 'static {
    tower::service_fn(move |uri: tonic::transport::Uri| async move {
        let host = uri.host().ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "the address has no host")
        })?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port = uri.port_u16().unwrap_or(80);
        let mut tcp = TcpStream::connect((host, port)).await?;
        tcp.set_nodelay(true)?;
        tcp.write_all(H2_PREFACE)
            .await
            .map_err(speaks_tls_if_closed)?;
        let mut first = [0u8; 9];
        let read = tokio::time::timeout(VERDICT_TIMEOUT, tcp.read(&mut first)).await;
        let replay = match read {
            // No word either way: go on, HTTP/2 will tell.
            Err(_) => Vec::new(),
            Ok(Ok(0)) => return Err(speaks_tls()),
            Ok(Ok(n)) if looks_like_tls(&first[..n]) => return Err(speaks_tls()),
            Ok(Ok(n)) => first[..n].to_vec(),
            Ok(Err(e)) => return Err(speaks_tls_if_closed(e)),
        };
        Ok(TokioIo::new(Primed {
            inner: Prefixed::new(tcp, replay),
            preface_left: H2_PREFACE.len(),
        }))
    })
}

fn speaks_tls() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        "the port does not speak plaintext HTTP/2: it probably speaks TLS (pass --ca-file, and \
         --cert-file and --key-file for mutual TLS)",
    )
}

fn speaks_tls_if_closed(error: io::Error) -> io::Error {
    match error.kind() {
        io::ErrorKind::BrokenPipe
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::UnexpectedEof => speaks_tls(),
        _ => error,
    }
}

/// Whether `bytes` start like a TLS record: content type handshake (22)
/// or alert (21), then protocol version 3.x.
fn looks_like_tls(bytes: &[u8]) -> bool {
    matches!(bytes, [21 | 22, 3, ..])
}

/// A plaintext connection whose HTTP/2 preface was already sent: the
/// preface HTTP/2 writes is dropped, the rest passes through.
pub struct Primed {
    inner: Prefixed<TcpStream>,
    /// Bytes of HTTP/2's own preface still to drop.
    preface_left: usize,
}

impl AsyncRead for Primed {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Primed {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.preface_left > 0 {
            let sent = H2_PREFACE.len() - self.preface_left;
            let n = self.preface_left.min(buf.len());
            if buf[..n] != H2_PREFACE[sent..sent + n] {
                return Poll::Ready(Err(io::Error::other(
                    "HTTP/2 did not start with its connection preface",
                )));
            }
            self.preface_left -= n;
            return Poll::Ready(Ok(n));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A stream with bytes already read from it put back in front.
pub struct Prefixed<S> {
    prefix: Vec<u8>,
    inner: S,
}

impl<S> Prefixed<S> {
    fn new(inner: S, prefix: Vec<u8>) -> Self {
        Self { prefix, inner }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.drain(..n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A session store that keeps nothing and says when a TLS 1.3 ticket
/// arrives (the CLI makes one connection per command; resumption would not
/// help it).
#[derive(Debug, Default)]
struct TicketSignal {
    arrived: Notify,
}

impl ClientSessionStore for TicketSignal {
    fn set_kx_hint(&self, _: ServerName<'static>, _: NamedGroup) {}

    fn kx_hint(&self, _: &ServerName<'_>) -> Option<NamedGroup> {
        None
    }

    fn set_tls12_session(&self, _: ServerName<'static>, _: Tls12ClientSessionValue) {}

    fn tls12_session(&self, _: &ServerName<'_>) -> Option<Tls12ClientSessionValue> {
        None
    }

    fn remove_tls12_session(&self, _: &ServerName<'static>) {}

    fn insert_tls13_ticket(&self, _: ServerName<'static>, _: Tls13ClientSessionValue) {
        self.arrived.notify_one();
    }

    fn take_tls13_ticket(&self, _: &ServerName<'static>) -> Option<Tls13ClientSessionValue> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alerts_name_their_cause() {
        let alert = |description| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                rustls::Error::AlertReceived(description),
            )
        };
        let wants =
            explain(&alert(AlertDescription::CertificateRequired), false, true).expect("known");
        assert!(wants.contains("wants a client certificate"), "{wants}");
        let refused = explain(&alert(AlertDescription::UnknownCA), true, true).expect("known");
        assert!(
            refused.contains("refused our client certificate"),
            "{refused}"
        );
        let closed =
            explain(&io::Error::from(io::ErrorKind::BrokenPipe), true, true).expect("known");
        assert!(explain(&io::Error::from(io::ErrorKind::BrokenPipe), true, false).is_none());
        assert!(
            closed.contains("refused our client certificate"),
            "{closed}"
        );
        assert!(looks_like_tls(&[21, 3, 3, 0, 2]));
        assert!(!looks_like_tls(b"\0\0\x12\x04"));
    }
}
