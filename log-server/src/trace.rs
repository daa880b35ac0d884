//! Request spans: every request, gRPC or HTTP, runs in one `request` span.
//!
//! The span carries `method` (gRPC: `proglog.v1.Log/Produce`; HTTP: the
//! matched route, `GET /v1/records/{offset}`), `protocol` (`grpc` or
//! `http`), `subject` (empty until authentication fills it) and `trace_id`,
//! so a log line can be joined to its trace. A W3C `traceparent` header
//! (gRPC metadata is an HTTP/2 header, so one extractor serves both) becomes
//! the span's OpenTelemetry parent through the global propagator.
//!
//! `trace_id` is the span's own OpenTelemetry trace id when an OpenTelemetry
//! layer is installed; without one it is the caller's trace id from
//! `traceparent`, and empty when the caller sent none.
//!
//! The span stays open until the response body ends, so streams are measured
//! whole and a gRPC status sent in trailers is seen. One `debug` event,
//! "request finished", reports `status` (the HTTP status, or the numeric
//! gRPC code) and `latency_ms`. Health probes and `/metrics` get a
//! `trace`-level span and event only, so probes do not flood the logs.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::Response;
use http_body::{Frame, SizeHint};
use opentelemetry::propagation::Extractor;
use opentelemetry::trace::TraceContextExt as _;
use tracing::field::{Empty, display};
use tracing::{Instrument as _, Level, Span};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// HTTP paths of probes and scrapes: traced at `trace` level only.
const PROBE_PATHS: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

/// Path prefix of the gRPC health service's methods.
const GRPC_HEALTH_PREFIX: &str = "/grpc.health.v1.Health/";

/// The gRPC status reported when a response body is dropped before its
/// status was sent: the client went away.
const GRPC_CANCELLED: u16 = 1;

/// gRPC codes that are the server's fault, marked as errors on the span
/// (OpenTelemetry's convention for gRPC servers): UNKNOWN,
/// DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS.
const GRPC_SERVER_ERRORS: [u16; 6] = [2, 4, 12, 13, 14, 15];

/// Which API a request uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Grpc,
    Http,
}

impl Protocol {
    fn of(headers: &HeaderMap) -> Self {
        let grpc = headers
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.starts_with("application/grpc"));
        if grpc { Self::Grpc } else { Self::Http }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Grpc => "grpc",
            Self::Http => "http",
        }
    }
}

/// The `method` field: the full gRPC method, or the HTTP method and route.
/// Unrouted HTTP paths fall back to the raw path.
fn method_name(protocol: Protocol, request: &Request) -> String {
    let path = request.uri().path();
    match protocol {
        Protocol::Grpc => path.trim_start_matches('/').to_owned(),
        Protocol::Http => {
            let route = request
                .extensions()
                .get::<MatchedPath>()
                .map_or(path, MatchedPath::as_str);
            format!("{} {route}", request.method())
        }
    }
}

fn is_probe(path: &str) -> bool {
    path.starts_with(GRPC_HEALTH_PREFIX) || PROBE_PATHS.contains(&path)
}

/// Reads W3C trace context out of request headers.
struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|key| key.as_str()).collect()
    }
}

/// A `grpc-status` header or trailer, as its numeric code.
fn grpc_status(headers: &HeaderMap) -> Option<u16> {
    headers.get("grpc-status")?.to_str().ok()?.parse().ok()
}

/// Spawns a task that stays in the current span, so work a streaming
/// handler hands to a task (appends, reads) is part of the request's trace.
pub(crate) fn spawn<F>(task: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    tokio::spawn(task.in_current_span())
}

/// The middleware: runs the request in its span and wraps the response body
/// so the span ends, and "request finished" is logged, when the body does.
pub(crate) async fn trace_request(request: Request, next: Next) -> Response {
    let start = Instant::now();
    let protocol = Protocol::of(request.headers());
    let probe = is_probe(request.uri().path());
    let span = if probe {
        if !tracing::level_enabled!(Level::TRACE) {
            return next.run(request).await;
        }
        tracing::trace_span!(
            parent: None,
            "request",
            method = %method_name(protocol, &request),
            protocol = protocol.as_str(),
            subject = Empty,
            trace_id = Empty,
        )
    } else {
        // Cheap exit when nothing listens at this level (`--log-level
        // error` and no OTLP): no propagation work, no body wrapper.
        if !tracing::level_enabled!(Level::INFO) {
            return next.run(request).await;
        }
        let parent = opentelemetry::global::get_text_map_propagator(|propagator| {
            propagator.extract(&HeaderExtractor(request.headers()))
        });
        let caller = parent.span().span_context().clone();
        let caller_trace_id = caller.is_valid().then(|| caller.trace_id());
        let span = tracing::info_span!(
            parent: None,
            "request",
            method = %method_name(protocol, &request),
            protocol = protocol.as_str(),
            subject = Empty,
            trace_id = caller_trace_id.map(display),
            otel.kind = "server",
            otel.status_code = Empty,
        );
        if caller.is_valid() {
            // Fails only without an OpenTelemetry layer, where the caller's
            // trace id recorded above is all there is to keep.
            let _ = span.set_parent(parent);
        } else {
            // With an OpenTelemetry layer the span started a new trace.
            let context = span.context();
            let own = context.span().span_context().clone();
            if own.is_valid() {
                span.record("trace_id", display(own.trace_id()));
            }
        }
        span
    };
    if span.is_disabled() {
        return next.run(request).await;
    }
    let response = next.run(request).instrument(span.clone()).await;
    let (parts, body) = response.into_parts();
    let status = match protocol {
        Protocol::Http => Some(parts.status.as_u16()),
        // Trailers-only responses (errors) carry the status in the headers.
        Protocol::Grpc => grpc_status(&parts.headers),
    };
    let finish = Finish {
        span,
        start,
        protocol,
        probe,
        status,
    };
    let body = Body::new(TracedBody {
        inner: body,
        finish: Some(finish),
    });
    Response::from_parts(parts, body)
}

/// What is logged when a response body ends.
struct Finish {
    span: Span,
    start: Instant,
    protocol: Protocol,
    probe: bool,
    /// The HTTP status, or the gRPC code once seen in headers or trailers.
    status: Option<u16>,
}

impl Finish {
    fn log(self) {
        // Whole microseconds, so the logged number stays short.
        let latency_ms = self.start.elapsed().as_micros() as f64 / 1000.0;
        let status = self.status.unwrap_or(GRPC_CANCELLED);
        let failed = match self.protocol {
            Protocol::Http => status >= 500,
            Protocol::Grpc => GRPC_SERVER_ERRORS.contains(&status),
        };
        if failed {
            self.span.record("otel.status_code", "ERROR");
        }
        self.span.in_scope(|| {
            if self.probe {
                tracing::trace!(status, latency_ms, "request finished");
            } else {
                tracing::debug!(status, latency_ms, "request finished");
            }
        });
    }
}

/// A response body that holds the request span until it ends, reads the
/// gRPC status from the trailers, and logs the request when it ends or is
/// dropped (the client went away).
struct TracedBody {
    inner: Body,
    finish: Option<Finish>,
}

impl HttpBody for TracedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(context);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(trailers), Some(finish)) = (frame.trailers_ref(), &mut this.finish) {
                    finish.status = finish.status.or_else(|| grpc_status(trailers));
                }
            }
            Poll::Ready(Some(Err(_)) | None) => {
                if let Some(finish) = this.finish.take() {
                    finish.log();
                }
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for TracedBody {
    fn drop(&mut self) {
        // hyper stops polling at the end of the stream (after trailers, or
        // at once for an empty body), so most requests finish here.
        if let Some(finish) = self.finish.take() {
            finish.log();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str, path: &str, content_type: Option<&str>) -> Request {
        let mut builder = axum::http::Request::builder().method(method).uri(path);
        if let Some(content_type) = content_type {
            builder = builder.header(header::CONTENT_TYPE, content_type);
        }
        builder.body(Body::empty()).expect("request")
    }

    #[test]
    fn grpc_requests_are_named_by_their_full_method() {
        let request = request(
            "POST",
            "/proglog.v1.Log/Produce",
            Some("application/grpc+proto"),
        );
        let protocol = Protocol::of(request.headers());
        assert_eq!(protocol, Protocol::Grpc);
        assert_eq!(
            method_name(protocol, &request),
            "proglog.v1.Log/Produce".to_owned()
        );
    }

    #[test]
    fn unrouted_http_requests_fall_back_to_the_raw_path() {
        let request = request("GET", "/v1/records/42", Some("application/json"));
        let protocol = Protocol::of(request.headers());
        assert_eq!(protocol, Protocol::Http);
        assert_eq!(method_name(protocol, &request), "GET /v1/records/42");
    }

    #[test]
    fn probes_are_recognised_and_api_routes_are_not() {
        assert!(is_probe("/grpc.health.v1.Health/Check"));
        assert!(is_probe("/healthz"));
        assert!(is_probe("/readyz"));
        assert!(is_probe("/metrics"));
        assert!(!is_probe("/v1/records"));
        assert!(!is_probe("/proglog.v1.Log/Produce"));
        assert!(!is_probe("/healthz/extra"));
    }

    #[test]
    fn grpc_status_is_read_as_its_numeric_code() {
        let mut headers = HeaderMap::new();
        assert_eq!(grpc_status(&headers), None);
        headers.insert("grpc-status", "5".parse().expect("value"));
        assert_eq!(grpc_status(&headers), Some(5));
    }
}
