//! The API's errors and their one mapping to gRPC status codes and HTTP
//! responses. Internals (paths, I/O details) are logged, never sent.

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
    /// The request is malformed.
    #[error("{0}")]
    InvalidArgument(String),
    /// Too much is in flight; retry with backoff.
    #[error("{0}")]
    Overloaded(String),
    /// The node cannot serve now (shutting down, log failed).
    #[error("{0}")]
    Unavailable(String),
    /// A fault the client cannot fix; details are in the server's log.
    #[error("internal error")]
    Internal,
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

/// Trailer keys carrying the valid range with `OUT_OF_RANGE`.
pub const LOWEST_OFFSET_KEY: &str = "proglog-lowest-offset";
/// See [`LOWEST_OFFSET_KEY`].
pub const NEXT_OFFSET_KEY: &str = "proglog-next-offset";

impl From<Error> for tonic::Status {
    fn from(error: Error) -> Self {
        let message = error.to_string();
        match error {
            Error::OutOfRange { lowest, next, .. } => {
                let mut status = tonic::Status::out_of_range(message);
                let metadata = status.metadata_mut();
                metadata.insert(LOWEST_OFFSET_KEY, lowest.into());
                metadata.insert(NEXT_OFFSET_KEY, next.into());
                status
            }
            Error::RecordTooLarge { .. } | Error::InvalidArgument(_) => {
                tonic::Status::invalid_argument(message)
            }
            Error::Overloaded(_) => tonic::Status::resource_exhausted(message),
            Error::Unavailable(_) => tonic::Status::unavailable(message),
            Error::Internal => tonic::Status::internal(message),
        }
    }
}

impl Error {
    /// The HTTP status for this error.
    pub fn http_status(&self) -> StatusCode {
        match self {
            Self::OutOfRange { .. } => StatusCode::NOT_FOUND,
            Self::RecordTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::InvalidArgument(_) => StatusCode::BAD_REQUEST,
            Self::Overloaded(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The gRPC-style code name, also used in HTTP error bodies.
    pub fn code(&self) -> &'static str {
        match self {
            Self::OutOfRange { .. } => "OUT_OF_RANGE",
            Self::RecordTooLarge { .. } | Self::InvalidArgument(_) => "INVALID_ARGUMENT",
            Self::Overloaded(_) => "RESOURCE_EXHAUSTED",
            Self::Unavailable(_) => "UNAVAILABLE",
            Self::Internal => "INTERNAL",
        }
    }

    /// The JSON body of an HTTP error: `{"error":{"code","message",...}}`.
    pub fn json_body(&self) -> serde_json::Value {
        let mut body = serde_json::json!({ "code": self.code(), "message": self.to_string() });
        match self {
            Self::OutOfRange { lowest, next, .. } => {
                body["lowestOffset"] = (*lowest).into();
                body["nextOffset"] = (*next).into();
            }
            Self::RecordTooLarge { limit, .. } => body["limitBytes"] = (*limit).into(),
            _ => {}
        }
        serde_json::json!({ "error": body })
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        (self.http_status(), axum::Json(self.json_body())).into_response()
    }
}

/// An HTTP error that is about the request itself (status and message).
pub(crate) fn http_error(status: StatusCode, message: impl Into<String>) -> Response {
    let code = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "INVALID_ARGUMENT",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "INVALID_ARGUMENT",
        _ if status.is_client_error() => "INVALID_ARGUMENT",
        _ => "INTERNAL",
    };
    let body = serde_json::json!({ "error": { "code": code, "message": message.into() } });
    (status, axum::Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn each_error_has_its_grpc_code() {
        let cases = [
            (
                Error::RecordTooLarge { size: 2, limit: 1 },
                tonic::Code::InvalidArgument,
            ),
            (
                Error::InvalidArgument("x".into()),
                tonic::Code::InvalidArgument,
            ),
            (
                Error::Overloaded("x".into()),
                tonic::Code::ResourceExhausted,
            ),
            (Error::Unavailable("x".into()), tonic::Code::Unavailable),
            (Error::Internal, tonic::Code::Internal),
        ];
        for (error, code) in cases {
            assert_eq!(tonic::Status::from(error).code(), code);
        }
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
