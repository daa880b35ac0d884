//! The API's errors and their one mapping to gRPC status codes and HTTP
//! responses. Internals (paths, I/O details) are logged, never sent.
//!
//! Every refusal either protocol can give is an [`Error`]; [`Error::codes`]
//! is the only place a gRPC code or an HTTP status is chosen, and an HTTP
//! error body names the gRPC code of the same error, so both protocols say
//! the same thing about the same refusal.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// `Result` with the API's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything a request can fail with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The offset is not in the committed, retained range.
    #[error(
        "offset {offset} is out of range: the log holds offsets {lowest}..{next} (next is exclusive)"
    )]
    OutOfRange {
        /// The offset asked for.
        offset: u64,
        /// Lowest retained offset.
        lowest: u64,
        /// The commit offset: the first offset not readable yet.
        next: u64,
    },
    /// A record's payload is over the limit.
    #[error("record of {size} bytes exceeds the limit of {limit} bytes")]
    RecordTooLarge {
        /// Payload bytes.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// A request message (gRPC) or body (HTTP) is over the server's limit.
    #[error("{}", too_large("request", *.size, *.limit))]
    MessageTooLarge {
        /// Its size, when known before reading it.
        size: Option<u64>,
        /// The limit, bytes.
        limit: u64,
    },
    /// The request is malformed.
    #[error("{0}")]
    InvalidArgument(String),
    /// A request body of another type than the route takes (JSON for
    /// the HTTP routes, gRPC for the gRPC methods).
    #[error("expected Content-Type {expected}, got {got:?}")]
    UnsupportedMediaType {
        /// What the route takes.
        expected: &'static str,
        /// What the request said.
        got: String,
    },
    /// The request target (path and query) is over the limit.
    #[error("{}", too_large("request target", Some(*.size), *.limit))]
    UriTooLong {
        /// Its length, bytes.
        size: u64,
        /// The limit, bytes.
        limit: u64,
    },
    /// The request's headers are over the limit.
    #[error("{}", too_large("request headers", Some(*.size), *.limit))]
    HeadersTooLarge {
        /// Their size, bytes.
        size: u64,
        /// The limit, bytes.
        limit: u64,
    },
    /// The caller has no identity and the call needs one.
    #[error("authentication required to {0}")]
    Unauthenticated(&'static str),
    /// The policy does not allow the caller this call.
    #[error("{subject:?} may not {action}")]
    PermissionDenied {
        /// Who asked.
        subject: String,
        /// The action refused.
        action: &'static str,
    },
    /// No such gRPC method or HTTP route.
    #[error("no such method or route")]
    NoRoute,
    /// The route exists, not with this HTTP method.
    #[error("method {0} is not allowed on this route")]
    MethodNotAllowed(String),
    /// The client stopped sending its request body.
    #[error("the request body stalled for {0} ms")]
    RequestTimeout(u64),
    /// Too much is in flight; retry with backoff.
    #[error("{0}")]
    Overloaded(String),
    /// The node cannot serve now (shutting down, log failed).
    #[error("{0}")]
    Unavailable(String),
    /// The request cannot be served in the log's state (an idempotent
    /// sequence older than the log remembers, or idempotence without
    /// replication); retrying the same request will not help.
    #[error("{message}")]
    FailedPrecondition {
        /// Why, for programs: the `proglog-error` trailer
        /// ([`SEQUENCE_TOO_OLD`] or [`IDEMPOTENCE_UNSUPPORTED`]).
        reason: &'static str,
        /// Why, for people.
        message: String,
    },
    /// A replicated node did not take the write, and nothing of it was
    /// appended: no leader is elected, the leader changed before the
    /// records committed, or the node taken for the leader no longer
    /// leads. Retrying (perhaps on `leader`) may succeed.
    #[error("{message}")]
    NoLeader {
        /// What happened.
        message: String,
        /// The leader's RPC address, when this node knows one.
        leader: Option<String>,
    },
    /// A fault the client cannot fix; details are in the server's log.
    #[error("internal error")]
    Internal,
}

fn too_large(what: &str, size: Option<u64>, limit: u64) -> String {
    match size {
        Some(size) => format!("{what} of {size} bytes is over the limit of {limit} bytes"),
        None => format!("{what} is over the limit of {limit} bytes"),
    }
}

impl From<log_core::Error> for Error {
    fn from(error: log_core::Error) -> Self {
        match error {
            log_core::Error::OutOfRange {
                offset,
                lowest,
                next,
            } => Self::OutOfRange {
                offset,
                lowest,
                next,
            },
            log_core::Error::RecordTooLarge { size, limit } => Self::RecordTooLarge { size, limit },
            log_core::Error::Closed => Self::Unavailable("the log is closed".into()),
            log_core::Error::Failed { .. } => {
                tracing::error!(error = %error, "request refused: the log has failed");
                Self::Unavailable(
                    "the log has failed and refuses writes until the node restarts".into(),
                )
            }
            other => {
                tracing::error!(error = %other, "log error");
                Self::Internal
            }
        }
    }
}

/// Trailer naming, for programs, why a request was refused (with
/// `UNAVAILABLE` and `FAILED_PRECONDITION`): one of [`NOT_LEADER`],
/// [`SEQUENCE_TOO_OLD`], [`IDEMPOTENCE_UNSUPPORTED`].
pub const ERROR_KEY: &str = "proglog-error";
/// Trailer with the leader's RPC address, when the refusing node knows it.
pub const LEADER_KEY: &str = "proglog-leader";
/// [`ERROR_KEY`]: no leader could take the write (see [`Error::NoLeader`]).
pub const NOT_LEADER: &str = "not-leader";
/// [`ERROR_KEY`]: an idempotent sequence older than the remembered window.
pub const SEQUENCE_TOO_OLD: &str = "sequence-too-old";
/// [`ERROR_KEY`]: a producer id sent to a node without replication.
pub const IDEMPOTENCE_UNSUPPORTED: &str = "idempotence-unsupported";

/// Trailer keys carrying the valid range with `OUT_OF_RANGE`.
pub const LOWEST_OFFSET_KEY: &str = "proglog-lowest-offset";
/// See [`LOWEST_OFFSET_KEY`].
pub const NEXT_OFFSET_KEY: &str = "proglog-next-offset";

impl Error {
    /// The gRPC code and the HTTP status of this error: the one mapping.
    pub fn codes(&self) -> (tonic::Code, StatusCode) {
        use tonic::Code;
        match self {
            Self::OutOfRange { .. } => (Code::OutOfRange, StatusCode::NOT_FOUND),
            Self::RecordTooLarge { .. } => (Code::InvalidArgument, StatusCode::PAYLOAD_TOO_LARGE),
            Self::MessageTooLarge { .. } => {
                (Code::ResourceExhausted, StatusCode::PAYLOAD_TOO_LARGE)
            }
            Self::InvalidArgument(_) => (Code::InvalidArgument, StatusCode::BAD_REQUEST),
            Self::UnsupportedMediaType { .. } => {
                (Code::InvalidArgument, StatusCode::UNSUPPORTED_MEDIA_TYPE)
            }
            Self::UriTooLong { .. } => (Code::ResourceExhausted, StatusCode::URI_TOO_LONG),
            Self::HeadersTooLarge { .. } => (
                Code::ResourceExhausted,
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ),
            Self::Unauthenticated(_) => (Code::Unauthenticated, StatusCode::UNAUTHORIZED),
            Self::PermissionDenied { .. } => (Code::PermissionDenied, StatusCode::FORBIDDEN),
            Self::NoRoute => (Code::Unimplemented, StatusCode::NOT_FOUND),
            Self::MethodNotAllowed(_) => (Code::Unimplemented, StatusCode::METHOD_NOT_ALLOWED),
            Self::RequestTimeout(_) => (Code::DeadlineExceeded, StatusCode::REQUEST_TIMEOUT),
            Self::Overloaded(_) => (Code::ResourceExhausted, StatusCode::TOO_MANY_REQUESTS),
            Self::Unavailable(_) => (Code::Unavailable, StatusCode::SERVICE_UNAVAILABLE),
            Self::FailedPrecondition { .. } => (Code::FailedPrecondition, StatusCode::CONFLICT),
            Self::NoLeader { .. } => (Code::Unavailable, StatusCode::SERVICE_UNAVAILABLE),
            Self::Internal => (Code::Internal, StatusCode::INTERNAL_SERVER_ERROR),
        }
    }

    /// The HTTP status for this error.
    pub fn http_status(&self) -> StatusCode {
        self.codes().1
    }

    /// The gRPC code name, also used in HTTP error bodies.
    pub fn code(&self) -> &'static str {
        proto::code_name(self.codes().0)
    }

    /// The JSON body of an HTTP error: `{"error":{"code","message",...}}`.
    pub fn json_body(&self) -> serde_json::Value {
        let mut body = serde_json::json!({ "code": self.code(), "message": self.to_string() });
        match self {
            Self::OutOfRange { lowest, next, .. } => {
                body["lowestOffset"] = (*lowest).into();
                body["nextOffset"] = (*next).into();
            }
            Self::RecordTooLarge { limit, .. }
            | Self::MessageTooLarge { limit, .. }
            | Self::UriTooLong { limit, .. }
            | Self::HeadersTooLarge { limit, .. } => body["limitBytes"] = (*limit).into(),
            Self::FailedPrecondition { reason, .. } => body["reason"] = (*reason).into(),
            Self::NoLeader { leader, .. } => {
                body["reason"] = NOT_LEADER.into();
                if let Some(leader) = leader {
                    body["leader"] = leader.as_str().into();
                }
            }
            _ => {}
        }
        serde_json::json!({ "error": body })
    }

    /// The answer to a request of either protocol: a gRPC status for a
    /// gRPC caller, an HTTP status with a JSON body otherwise.
    pub fn into_response_for(self, grpc: bool) -> Response {
        if grpc {
            tonic::Status::from(self).into_http()
        } else {
            self.into_response()
        }
    }
}

impl From<Error> for tonic::Status {
    fn from(error: Error) -> Self {
        let message = error.to_string();
        let mut status = tonic::Status::new(error.codes().0, message);
        let metadata = status.metadata_mut();
        match error {
            Error::OutOfRange { lowest, next, .. } => {
                metadata.insert(LOWEST_OFFSET_KEY, lowest.into());
                metadata.insert(NEXT_OFFSET_KEY, next.into());
            }
            Error::FailedPrecondition { reason, .. } => {
                metadata.insert(
                    ERROR_KEY,
                    tonic::metadata::MetadataValue::from_static(reason),
                );
            }
            Error::NoLeader { leader, .. } => {
                metadata.insert(
                    ERROR_KEY,
                    tonic::metadata::MetadataValue::from_static(NOT_LEADER),
                );
                if let Some(value) = leader.and_then(|leader| leader.parse().ok()) {
                    metadata.insert(LEADER_KEY, value);
                }
            }
            _ => {}
        }
        status
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        (self.http_status(), axum::Json(self.json_body())).into_response()
    }
}

/// tonic's own refusals of a request message it could not decode, in this
/// API's terms: a message over the limit is `RESOURCE_EXHAUSTED` (as gRPC
/// itself answers it; tonic says `OUT_OF_RANGE`, which here means an offset
/// past the end), and one that is not valid protobuf is `INVALID_ARGUMENT`
/// (the client's fault; tonic says `INTERNAL`, which here means a server
/// fault). Any other status is returned as it is.
pub(crate) fn refine_decode_status(status: tonic::Status) -> tonic::Status {
    const TOO_LARGE: &str = "Error, decoded message length too large";
    const MALFORMED: &str = "failed to decode Protobuf message";
    let message = status.message();
    match status.code() {
        tonic::Code::OutOfRange if message.starts_with(TOO_LARGE) => {
            // "...: found {size} bytes, the limit is: {limit} bytes"
            let mut numbers = message
                .split(|c: char| !c.is_ascii_digit())
                .filter_map(|n| n.parse::<u64>().ok());
            let (size, limit) = (numbers.next(), numbers.next());
            Error::MessageTooLarge {
                size: size.filter(|_| limit.is_some()),
                limit: limit.or(size).unwrap_or(0),
            }
            .into()
        }
        tonic::Code::Internal if message.starts_with(MALFORMED) => Error::InvalidArgument(format!(
            "the request is not a valid protobuf message: {message}"
        ))
        .into(),
        _ => status,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_error() -> Vec<Error> {
        vec![
            Error::OutOfRange {
                offset: 9,
                lowest: 2,
                next: 5,
            },
            Error::RecordTooLarge { size: 2, limit: 1 },
            Error::MessageTooLarge {
                size: Some(2),
                limit: 1,
            },
            Error::InvalidArgument("x".into()),
            Error::UnsupportedMediaType {
                expected: "application/json",
                got: "text/plain".into(),
            },
            Error::UriTooLong { size: 2, limit: 1 },
            Error::HeadersTooLarge { size: 2, limit: 1 },
            Error::Unauthenticated("produce"),
            Error::PermissionDenied {
                subject: "reader".into(),
                action: "produce",
            },
            Error::NoRoute,
            Error::MethodNotAllowed("GET".into()),
            Error::RequestTimeout(1),
            Error::Overloaded("x".into()),
            Error::Unavailable("x".into()),
            Error::FailedPrecondition {
                reason: SEQUENCE_TOO_OLD,
                message: "x".into(),
            },
            Error::NoLeader {
                message: "x".into(),
                leader: Some("10.0.0.2:8400".into()),
            },
            Error::Internal,
        ]
    }

    #[test]
    fn no_leader_names_its_reason_and_the_leader_in_trailers_and_body() {
        let error = Error::NoLeader {
            message: "the leader changed; retry".into(),
            leader: Some("10.0.0.2:8400".into()),
        };
        let status = tonic::Status::from(error.clone());
        let trailer = |key| status.metadata().get(key).and_then(|v| v.to_str().ok());
        assert_eq!(status.code(), tonic::Code::Unavailable);
        assert_eq!(trailer(ERROR_KEY), Some(NOT_LEADER));
        assert_eq!(trailer(LEADER_KEY), Some("10.0.0.2:8400"));
        assert_eq!(error.json_body()["error"]["leader"], "10.0.0.2:8400");
        assert_eq!(error.json_body()["error"]["reason"], NOT_LEADER);
        let unknown = tonic::Status::from(Error::NoLeader {
            message: "no leader".into(),
            leader: None,
        });
        assert!(unknown.metadata().get(LEADER_KEY).is_none());
        // A plain Unavailable (shutting down) claims no reason.
        let plain = tonic::Status::from(Error::Unavailable("shutting down".into()));
        assert!(plain.metadata().get(ERROR_KEY).is_none());
    }

    #[test]
    fn out_of_range_carries_the_range_in_status_and_body() {
        let error = Error::OutOfRange {
            offset: 9,
            lowest: 2,
            next: 5,
        };
        let status = tonic::Status::from(error.clone());
        assert_eq!(status.code(), tonic::Code::OutOfRange);
        assert_eq!(
            status
                .metadata()
                .get(NEXT_OFFSET_KEY)
                .and_then(|v| v.to_str().ok()),
            Some("5")
        );
        assert!(status.message().contains("2..5"));
        assert_eq!(error.http_status(), StatusCode::NOT_FOUND);
        assert_eq!(error.json_body()["error"]["lowestOffset"], 2);
    }

    #[test]
    fn an_http_body_names_the_grpc_code_of_the_same_error() {
        for error in every_error() {
            let status = tonic::Status::from(error.clone());
            assert_eq!(
                error.json_body()["error"]["code"],
                proto::code_name(status.code()),
                "{error:?}"
            );
            assert_eq!(
                error.json_body()["error"]["message"],
                status.message(),
                "{error:?}"
            );
            assert!(
                error.http_status().is_client_error() || error.http_status().is_server_error(),
                "{error:?}"
            );
        }
    }

    #[test]
    fn each_error_has_its_grpc_code() {
        let cases = [
            (
                Error::RecordTooLarge { size: 2, limit: 1 },
                tonic::Code::InvalidArgument,
            ),
            (
                Error::MessageTooLarge {
                    size: None,
                    limit: 1,
                },
                tonic::Code::ResourceExhausted,
            ),
            (
                Error::InvalidArgument("x".into()),
                tonic::Code::InvalidArgument,
            ),
            (
                Error::Overloaded("x".into()),
                tonic::Code::ResourceExhausted,
            ),
            (Error::NoRoute, tonic::Code::Unimplemented),
            (Error::Unavailable("x".into()), tonic::Code::Unavailable),
            (Error::Internal, tonic::Code::Internal),
        ];
        for (error, code) in cases {
            assert_eq!(tonic::Status::from(error).code(), code);
        }
    }

    #[test]
    fn tonic_decode_refusals_get_this_apis_codes() {
        let oversize = refine_decode_status(tonic::Status::out_of_range(
            "Error, decoded message length too large: found 20971525 bytes, the limit is: 16777216 bytes",
        ));
        assert_eq!(oversize.code(), tonic::Code::ResourceExhausted);
        assert_eq!(
            oversize.message(),
            "request of 20971525 bytes is over the limit of 16777216 bytes"
        );
        let malformed = refine_decode_status(tonic::Status::internal(
            "failed to decode Protobuf message: buffer underflow",
        ));
        assert_eq!(malformed.code(), tonic::Code::InvalidArgument);
        let ours = refine_decode_status(Error::Internal.into());
        assert_eq!(ours.code(), tonic::Code::Internal);
    }

    #[test]
    fn io_details_never_reach_the_client() {
        let error = Error::from(log_core::Error::Corrupt {
            path: "/secret/path".into(),
            position: 1,
            reason: "x".into(),
        });
        assert_eq!(error, Error::Internal);
        assert!(!tonic::Status::from(error).message().contains("secret"));
    }
}
