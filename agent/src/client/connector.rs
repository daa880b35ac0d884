//! The TLS connector Raft peers dial each other with: the client crate's
//! (which waits for the node's verdict on our certificate and names a
//! refusal's cause), over a configuration from `auth`.

use std::sync::Arc;

/// A connector for tonic's `Endpoint::connect_with_connector` speaking
/// TLS with `tls` (its CA, certificate and server name override).
pub(crate) fn tls(
    tls: Arc<auth::ClientTls>,
    presents_certificate: bool,
) -> impl tower::Service<
    tonic::transport::Uri,
    Response = hyper_util::rt::TokioIo<
        proglog_client::connector::Prefixed<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>,
    >,
    Error = std::io::Error,
    Future = impl Send,
> + Send
+ Clone
+ 'static {
    proglog_client::connector::tls(
        Arc::clone(&tls.config),
        tls.server_name.clone(),
        presents_certificate,
    )
}
