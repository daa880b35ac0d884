//! Serving accepted connections: hyper's HTTP/1.1 + HTTP/2 connection
//! driver with the node's timeouts, one task per connection, and graceful
//! shutdown.
//!
//! What keeps a connection from being held by a client that does nothing:
//! HTTP/1 request heads must arrive within `header_read_timeout_ms`; a
//! connection with no request in progress for `idle_timeout_ms` is closed
//! (a half-sent head or HTTP/2 preface is no request); HTTP/2 peers that
//! stop answering keepalive pings are closed; request bodies that stall are
//! refused ([`crate::edge`]). Streams that follow the tail are requests in
//! progress, so idle followers stay connected.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::ConnectInfo;
use axum::http::{Request, Response};
use http_body::{Frame, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::ServerConfig;
use crate::transport::{Caller, Connection, Incoming};

/// After an idle connection is told to close, how long it may take to say
/// goodbye (an HTTP/2 GOAWAY) before it is dropped.
const IDLE_CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Serves connections from `incoming` with `app` until `stop` is cancelled;
/// then stops accepting, asks every connection to finish (HTTP/2 GOAWAY,
/// HTTP/1 close after the current response) and returns when all have
/// closed. Dropping the returned future drops every connection.
pub(crate) async fn serve(
    mut incoming: Incoming,
    app: Router,
    config: Arc<ServerConfig>,
    stop: CancellationToken,
) {
    let builder = builder(&config);
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            (connection, _peer) = incoming.accept() => {
                connections.spawn(serve_one(
                    connection,
                    builder.clone(),
                    app.clone(),
                    Arc::clone(&config),
                    stop.clone(),
                ));
            }
            // Reaps finished connections so the set holds only open ones.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(incoming);
    while connections.join_next().await.is_some() {}
}

/// hyper's connection settings from the node's configuration.
fn builder(config: &ServerConfig) -> Builder<TokioExecutor> {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(config.header_read_timeout_ms));
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Duration::from_millis(config.http2_keepalive_interval_ms))
        .keep_alive_timeout(Duration::from_millis(config.http2_keepalive_timeout_ms));
    builder
}

/// Drives one connection until it ends, is idle too long, or `stop`.
async fn serve_one(
    connection: Connection,
    builder: Builder<TokioExecutor>,
    app: Router,
    config: Arc<ServerConfig>,
    stop: CancellationToken,
) {
    let (open, mut open_changes) = watch::channel(0usize);
    let service = PerConnection {
        app,
        config: Arc::clone(&config),
        caller: connection.caller().clone(),
        open: Arc::new(open),
    };
    let conn =
        builder.serve_connection(TokioIo::new(connection), TowerToHyperService::new(service));
    tokio::pin!(conn);
    let idle_timeout = Duration::from_millis(config.idle_timeout_ms);
    let mut closing = false;
    loop {
        let idle = *open_changes.borrow_and_update() == 0;
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            () = stop.cancelled(), if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
            changed = open_changes.changed() => {
                if changed.is_err() {
                    // Cannot happen while the service (and its sender) lives.
                    return;
                }
            }
            () = tokio::time::sleep(idle_timeout), if idle && !closing => {
                tracing::debug!("closing a connection idle for idle_timeout_ms");
                conn.as_mut().graceful_shutdown();
                // A half-sent request head keeps a graceful close waiting
                // for the rest: drop it after a short grace.
                let _ = tokio::time::timeout(IDLE_CLOSE_GRACE, conn.as_mut()).await;
                return;
            }
        }
    }
}

/// The service of one connection: attaches the caller, counts requests in
/// progress (until their response body ends) and hands each to the edge
/// checks and then the app.
#[derive(Clone)]
struct PerConnection {
    app: Router,
    config: Arc<ServerConfig>,
    caller: Caller,
    open: Arc<watch::Sender<usize>>,
}

impl<B> tower::Service<Request<B>> for PerConnection
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let in_progress = InProgress::new(Arc::clone(&self.open));
        let mut request = request.map(Body::new);
        request
            .extensions_mut()
            .insert(ConnectInfo(self.caller.clone()));
        let (app, config) = (self.app.clone(), Arc::clone(&self.config));
        Box::pin(async move {
            let response = crate::edge::handle(app, &config, request).await;
            Ok(response.map(|body| {
                Body::new(Tracked {
                    inner: body,
                    _in_progress: in_progress,
                })
            }))
        })
    }
}

/// One request in progress on its connection, until dropped.
struct InProgress(Arc<watch::Sender<usize>>);

impl InProgress {
    fn new(open: Arc<watch::Sender<usize>>) -> Self {
        open.send_modify(|open| *open += 1);
        Self(open)
    }
}

impl Drop for InProgress {
    fn drop(&mut self) {
        self.0.send_modify(|open| *open -= 1);
    }
}

/// A response body that keeps its request counted in progress.
struct Tracked {
    inner: Body,
    _in_progress: InProgress,
}

impl HttpBody for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
