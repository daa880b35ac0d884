//! Checks at the edge of every request, before and after the app: what a
//! connection-level server cannot see but the routes should not have to.
//!
//! - A request head over the limits is refused with 414 / 431 (gRPC:
//!   `RESOURCE_EXHAUSTED`) and a JSON body, not hyper's empty answer.
//! - An HTTP body whose `Content-Length` is over `http_body_bytes_max` is
//!   refused with 413 before any of it is read (HTTP/1: at once, closing the
//!   connection; HTTP/2: after discarding what the client sends, below).
//! - An HTTP body that stalls for `body_read_timeout_ms` fails the request
//!   with 408.
//! - A refused HTTP request's unread body is read and discarded (up to
//!   `refusal_drain_bytes_max`) before the answer goes out. Over HTTP/2 an
//!   answer sent while the client still sends ends with RST_STREAM, and
//!   curl (7.88) then reports a framing error instead of the status; once
//!   the body is read, the stream closes cleanly. An HTTP/1.1 client that
//!   waits for `100 Continue` is not asked for a body it was refused.
//! - tonic's refusals of undecodable gRPC messages get this API's codes
//!   ([`crate::error::refine_decode_status`]).

use std::future::Future as _;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes, HttpBody};
use axum::http::{HeaderMap, HeaderValue, Request, Response, Version, header};
use axum::response::IntoResponse;
use http_body::{Frame, SizeHint};
use tokio::time::Sleep;
use tower::ServiceExt as _;

use crate::config::ServerConfig;
use crate::error::Error;

/// Longest request target (path and query) accepted, in bytes; no route
/// needs more than a few dozen.
pub(crate) const REQUEST_TARGET_BYTES_MAX: usize = 8 << 10;

/// Most header bytes (names and values) accepted in one request.
pub(crate) const HEADER_BYTES_MAX: usize = 32 << 10;

/// Whether a request is gRPC (by its content type).
pub(crate) fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"))
}

/// Runs `request` through the edge checks and `app`.
pub(crate) async fn handle(
    app: Router,
    config: &ServerConfig,
    request: Request<Body>,
) -> Response<Body> {
    let grpc = is_grpc(request.headers());
    let (parts, body) = request.into_parts();
    let waits_for_continue = parts.version == Version::HTTP_11
        && parts
            .headers
            .get(header::EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let body = Shared::new(body, Duration::from_millis(config.body_read_timeout_ms));
    if let Err(error) = check_head(&parts, config, grpc) {
        let announced_too_large = matches!(error, Error::MessageTooLarge { .. });
        if parts.version == Version::HTTP_2 {
            if !grpc {
                body.drain(config.refusal_drain_bytes_max).await;
            }
        } else if announced_too_large {
            // HTTP/1: answer at once and close rather than wait for a body
            // that may never come (or read megabytes to throw away).
            let mut response = error.into_response();
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            return response;
        } else if !waits_for_continue {
            body.drain(config.refusal_drain_bytes_max).await;
        }
        return error.into_response_for(grpc);
    }
    if grpc {
        // gRPC streams may idle, and a gRPC client reads while it sends:
        // the body goes to tonic as it is.
        let request = Request::from_parts(parts, body.take());
        return refine_grpc(app.oneshot(request).await.unwrap_or_else(|e| match e {}));
    }
    let got = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let request = Request::from_parts(parts, Body::new(body.reader()));
    let mut response = app.oneshot(request).await.unwrap_or_else(|e| match e {});
    if response.headers().contains_key("grpc-status") {
        // tonic answered a request that is not gRPC (a plain GET of a
        // method): an empty 200 means nothing to an HTTP client.
        response = Error::UnsupportedMediaType {
            expected: "application/grpc",
            got,
        }
        .into_response();
    }
    if let Some(stalled_ms) = body.stalled() {
        return Error::RequestTimeout(stalled_ms).into_response();
    }
    let refused = response.status().is_client_error() || response.status().is_server_error();
    if refused && (!waits_for_continue || body.polled()) {
        body.drain(config.refusal_drain_bytes_max).await;
    }
    response
}

/// Refuses a head over the limits, or an HTTP body announced over the
/// limit.
fn check_head(
    parts: &axum::http::request::Parts,
    config: &ServerConfig,
    grpc: bool,
) -> Result<(), Error> {
    let target = parts.uri.path_and_query().map_or(0, |p| p.as_str().len());
    if target > REQUEST_TARGET_BYTES_MAX {
        return Err(Error::UriTooLong {
            size: target as u64,
            limit: REQUEST_TARGET_BYTES_MAX as u64,
        });
    }
    let header_bytes: usize = parts
        .headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if header_bytes > HEADER_BYTES_MAX {
        return Err(Error::HeadersTooLarge {
            size: header_bytes as u64,
            limit: HEADER_BYTES_MAX as u64,
        });
    }
    if !grpc {
        let announced = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let limit = config.http_body_bytes_max as u64;
        if let Some(size) = announced.filter(|size| *size > limit) {
            return Err(Error::MessageTooLarge {
                size: Some(size),
                limit,
            });
        }
    }
    Ok(())
}

/// A trailers-only gRPC answer (tonic's refusal before the handler ran)
/// with its status in this API's terms.
fn refine_grpc(response: Response<Body>) -> Response<Body> {
    let Some(status) = tonic::Status::from_header_map(response.headers()) else {
        return response;
    };
    let code = status.code();
    let refined = crate::error::refine_decode_status(status);
    if refined.code() == code {
        return response;
    }
    refined.into_http()
}

/// A request body shared between the app (through [`Reader`]) and the edge,
/// which may read what the app left unread.
#[derive(Clone)]
struct Shared {
    state: Arc<Mutex<State>>,
    timeout: Duration,
}

struct State {
    body: Body,
    /// Whether anyone asked for a frame yet (HTTP/1.1: whether hyper has
    /// sent `100 Continue`).
    polled: bool,
    /// Set when the body stalled for the timeout, in milliseconds.
    stalled_ms: Option<u64>,
    /// Whether the body ended (or failed): nothing more to read.
    done: bool,
}

impl Shared {
    fn new(body: Body, timeout: Duration) -> Self {
        Self {
            state: Arc::new(Mutex::new(State {
                body,
                polled: false,
                stalled_ms: None,
                done: false,
            })),
            timeout,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The body itself, for the app to own (gRPC).
    fn take(&self) -> Body {
        std::mem::replace(&mut self.lock().body, Body::empty())
    }

    fn reader(&self) -> Reader {
        Reader {
            shared: self.clone(),
            deadline: None,
        }
    }

    fn polled(&self) -> bool {
        self.lock().polled
    }

    fn stalled(&self) -> Option<u64> {
        self.lock().stalled_ms
    }

    /// Reads and discards what is left of the body, at most `bytes_max`
    /// bytes and never waiting longer than the body timeout for a frame.
    async fn drain(&self, bytes_max: u64) {
        let mut reader = self.reader();
        let mut drained = 0u64;
        while drained <= bytes_max {
            match std::future::poll_fn(|cx| Pin::new(&mut reader).poll_frame(cx)).await {
                Some(Ok(frame)) => {
                    drained += frame.data_ref().map_or(0, |d| d.len() as u64);
                }
                Some(Err(_)) | None => return,
            }
        }
        tracing::debug!(
            refusal_drain_bytes_max = bytes_max,
            "refused request body longer than the drain limit; resetting it"
        );
    }
}

/// The app's view of a [`Shared`] body: each frame must arrive within the
/// body timeout.
struct Reader {
    shared: Shared,
    deadline: Option<Pin<Box<Sleep>>>,
}

impl HttpBody for Reader {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let timeout = self.shared.timeout;
        let shared = self.shared.clone();
        let mut state = shared.lock();
        if state.done {
            return Poll::Ready(None);
        }
        state.polled = true;
        match Pin::new(&mut state.body).poll_frame(cx) {
            Poll::Ready(frame) => {
                self.deadline = None;
                if !matches!(frame, Some(Ok(_))) {
                    state.done = true;
                }
                Poll::Ready(frame)
            }
            Poll::Pending => {
                let deadline = self
                    .deadline
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                if deadline.as_mut().poll(cx).is_ready() {
                    state.done = true;
                    let stalled_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
                    state.stalled_ms = Some(stalled_ms);
                    return Poll::Ready(Some(Err(axum::Error::new(Error::RequestTimeout(
                        stalled_ms,
                    )))));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        let state = self.shared.lock();
        state.done || state.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.shared.lock().body.size_hint()
    }
}
