//! The one error type of the client, and how a gRPC status becomes one.

use std::time::Duration;

use tonic::Code;

/// Trailer with the lowest retained offset on an `OUT_OF_RANGE` answer.
pub const LOWEST_OFFSET_KEY: &str = "proglog-lowest-offset";
/// Trailer with the offset after the last readable one on an
/// `OUT_OF_RANGE` answer.
pub const NEXT_OFFSET_KEY: &str = "proglog-next-offset";

/// Trailer naming, for programs, why a node refused a request.
const ERROR_KEY: &str = "proglog-error";

/// What went wrong, in proglog's terms rather than as a raw gRPC status.
///
/// Every variant that came from a node names the node (`addr`), so a
/// message says where the failure happened.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The offset asked for is outside what the node can serve: below the
    /// lowest retained offset, or at or past `next` (what is committed
    /// there). `lowest` and `next` are `None` from servers that do not send
    /// them.
    #[error("OUT_OF_RANGE: {message}")]
    OutOfRange {
        /// The node's message, naming the valid range.
        message: String,
        /// The lowest retained offset.
        lowest: Option<u64>,
        /// The offset after the last committed record.
        next: Option<u64>,
    },
    /// No leader is known (an election is running, or the node lost its
    /// quorum), or the node answering is not the leader and cannot forward.
    #[error("NOT_LEADER: {message}")]
    NotLeader {
        /// The node's message.
        message: String,
    },
    /// No node could serve the request: each was unreachable, shutting down
    /// or failed, until the retry policy gave up.
    #[error("UNAVAILABLE: {message}")]
    Unavailable {
        /// The last node's message, or the connection failure.
        message: String,
    },
    /// The caller was identified but the node's policy refuses it the
    /// action (`produce`, `consume`, `admin`).
    #[error("PERMISSION_DENIED: {message}")]
    PermissionDenied {
        /// The node's message.
        message: String,
    },
    /// The node could not identify the caller (mutual TLS needed).
    #[error("UNAUTHENTICATED: {message}")]
    Unauthenticated {
        /// The node's message.
        message: String,
    },
    /// The request was refused as malformed: a missing record, a record over
    /// the node's limit (the message names it).
    #[error("INVALID_ARGUMENT: {message}")]
    InvalidArgument {
        /// The node's message.
        message: String,
    },
    /// The node is overloaded; the client retried with backoff until its
    /// policy gave up.
    #[error("RESOURCE_EXHAUSTED: {message}")]
    ResourceExhausted {
        /// The node's message.
        message: String,
    },
    /// An idempotent sequence is older than the window the cluster
    /// remembers for this producer: it cannot tell whether that record is
    /// in the log. The producer must not resend it blindly.
    #[error("FAILED_PRECONDITION: {message}")]
    SequenceTooOld {
        /// The node's message.
        message: String,
    },
    /// The node cannot do idempotent produce (it runs without replication);
    /// see [`Idempotence`](crate::Idempotence).
    #[error("idempotent produce is not supported there: {message}")]
    IdempotenceUnsupported {
        /// The node's message.
        message: String,
    },
    /// No answer within the configured request timeout.
    #[error("no answer within {after:?}")]
    Timeout {
        /// The timeout that expired.
        after: Duration,
    },
    /// The connection failed: refused, reset, or TLS refused it (the message
    /// says which, e.g. that the node wants a client certificate).
    #[error("cannot connect to {addr}: {message}")]
    Connect {
        /// The node dialled.
        addr: String,
        /// Why, with its causes.
        message: String,
    },
    /// The TLS connection was refused or cannot work: the node wants a
    /// client certificate, refused ours, its certificate is not trusted, or
    /// the port does not speak what was configured. Not retried.
    #[error("cannot connect to {addr}: {message}")]
    Tls {
        /// The node dialled.
        addr: String,
        /// Why, in the user's terms.
        message: String,
    },
    /// The client's own configuration is unusable: no seed, a malformed
    /// address, unreadable or invalid TLS files.
    #[error("invalid client configuration: {message}")]
    Config {
        /// What is wrong.
        message: String,
    },
    /// A pipelined record was not sent because an earlier one was refused;
    /// see [`Producer`](crate::Producer).
    #[error("not appended: {message}")]
    Aborted {
        /// Which earlier failure.
        message: String,
    },
    /// A producer handle or stream was used after it closed.
    #[error("the producer is closed")]
    Closed,
    /// Any other status a node answered with.
    #[error("{}: {message}", proto::code_name(*.code))]
    Status {
        /// The gRPC code.
        code: Code,
        /// The node's message.
        message: String,
    },
}

/// The client's `Result`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A status from a call made outside the client (e.g. on
/// [`Client::channel`](crate::Client::channel)); `Connect` and `Tls` errors
/// then name no address.
impl From<tonic::Status> for Error {
    fn from(status: tonic::Status) -> Self {
        Self::from_status(&status, "")
    }
}

impl Error {
    /// Classifies a status a call to `addr` ended with.
    pub(crate) fn from_status(status: &tonic::Status, addr: &str) -> Self {
        let message = status.message().to_owned();
        // The server's machine-readable reason first; older servers send
        // none, and the message text is read below.
        match status
            .metadata()
            .get(ERROR_KEY)
            .and_then(|v| v.to_str().ok())
        {
            Some("not-leader") => return Self::NotLeader { message },
            Some("sequence-too-old") => return Self::SequenceTooOld { message },
            Some("idempotence-unsupported") => return Self::IdempotenceUnsupported { message },
            _ => {}
        }
        match status.code() {
            Code::OutOfRange => {
                let trailer = |key: &str| {
                    status
                        .metadata()
                        .get(key)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse().ok())
                };
                Self::OutOfRange {
                    lowest: trailer(LOWEST_OFFSET_KEY),
                    next: trailer(NEXT_OFFSET_KEY),
                    message,
                }
            }
            Code::Unavailable | Code::Unknown if refused_by_tls(status) => Self::Tls {
                addr: addr.to_owned(),
                message: connect_message(status),
            },
            Code::Unavailable if is_transport(status) => Self::Connect {
                addr: addr.to_owned(),
                message: connect_message(status),
            },
            Code::Unavailable if mentions_leader(&message) => Self::NotLeader { message },
            Code::Unavailable => Self::Unavailable { message },
            Code::PermissionDenied => Self::PermissionDenied { message },
            Code::Unauthenticated => Self::Unauthenticated { message },
            Code::InvalidArgument => Self::InvalidArgument { message },
            Code::ResourceExhausted => Self::ResourceExhausted { message },
            Code::DeadlineExceeded => Self::Timeout {
                after: Duration::ZERO,
            },
            Code::FailedPrecondition if mentions_replication(&message) => {
                Self::IdempotenceUnsupported { message }
            }
            Code::FailedPrecondition if mentions_sequence(&message) => {
                Self::SequenceTooOld { message }
            }
            Code::FailedPrecondition if mentions_leader(&message) => Self::NotLeader { message },
            Code::Unknown | Code::Cancelled if is_transport(status) => Self::Connect {
                addr: addr.to_owned(),
                message: connect_message(status),
            },
            code => Self::Status { code, message },
        }
    }

    /// Whether a retry (perhaps on another node) may succeed where this
    /// attempt failed. Retrying a produce is safe only with idempotence or
    /// when [`Error::is_not_applied`] holds.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::NotLeader { .. }
                | Self::Unavailable { .. }
                | Self::ResourceExhausted { .. }
                | Self::Timeout { .. }
                | Self::Connect { .. }
        )
    }

    /// Whether the failure proves the request was not applied, so that even
    /// a produce without idempotence may be retried: the node refused it
    /// before appending (overload, no leader).
    pub fn is_not_applied(&self) -> bool {
        matches!(
            self,
            Self::ResourceExhausted { .. } | Self::NotLeader { .. }
        )
    }

    /// Whether the client's picture of the cluster may be stale: the node
    /// was unreachable, is not the leader, or is going away.
    pub(crate) fn suggests_refresh(&self) -> bool {
        matches!(
            self,
            Self::NotLeader { .. }
                | Self::Unavailable { .. }
                | Self::Connect { .. }
                | Self::Timeout { .. }
        )
    }

    /// The error's gRPC code, for callers that map it onward.
    pub fn code(&self) -> Code {
        match self {
            Self::OutOfRange { .. } => Code::OutOfRange,
            Self::NotLeader { .. }
            | Self::Unavailable { .. }
            | Self::Connect { .. }
            | Self::Tls { .. }
            | Self::Closed => Code::Unavailable,
            Self::Aborted { .. } => Code::Aborted,
            Self::PermissionDenied { .. } => Code::PermissionDenied,
            Self::Unauthenticated { .. } => Code::Unauthenticated,
            Self::InvalidArgument { .. } | Self::Config { .. } => Code::InvalidArgument,
            Self::ResourceExhausted { .. } => Code::ResourceExhausted,
            Self::SequenceTooOld { .. } | Self::IdempotenceUnsupported { .. } => {
                Code::FailedPrecondition
            }
            Self::Timeout { .. } => Code::DeadlineExceeded,
            Self::Status { code, .. } => *code,
        }
    }
}

/// A status tonic made from a connection failure rather than one a node
/// sent: it carries the transport error as its source.
fn is_transport(status: &tonic::Status) -> bool {
    std::error::Error::source(status).is_some()
}

/// A connection failure the connector explained (TLS refusals, a port
/// that speaks the other protocol): retrying cannot help.
fn refused_by_tls(status: &tonic::Status) -> bool {
    let mut source = std::error::Error::source(status);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                std::io::ErrorKind::PermissionDenied
                    | std::io::ErrorKind::InvalidData
                    | std::io::ErrorKind::InvalidInput
            )
        {
            return true;
        }
        if cause.downcast_ref::<rustls::Error>().is_some() {
            return true;
        }
        source = cause.source();
    }
    false
}

fn connect_message(status: &tonic::Status) -> String {
    match std::error::Error::source(status) {
        Some(cause) => chain(cause),
        None => status.message().to_owned(),
    }
}

fn mentions_leader(message: &str) -> bool {
    let message = message.to_ascii_lowercase();
    message.contains("no leader") || message.contains("not the leader")
}

fn mentions_replication(message: &str) -> bool {
    message.to_ascii_lowercase().contains("without replication")
}

fn mentions_sequence(message: &str) -> bool {
    message.to_ascii_lowercase().contains("sequence")
}

/// An error and its causes joined by `: `, each said once (hyper and tonic
/// wrap some causes in an error with the same text).
pub fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut last = text.clone();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if cause_text != last && !last.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        last = cause_text;
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_range_carries_the_valid_range_from_the_trailers() {
        let mut status = tonic::Status::out_of_range("offset 9 is out of range [0, 3)");
        status
            .metadata_mut()
            .insert(LOWEST_OFFSET_KEY, "0".parse().expect("ascii"));
        status
            .metadata_mut()
            .insert(NEXT_OFFSET_KEY, "3".parse().expect("ascii"));
        let error = Error::from_status(&status, "n1:8400");
        assert!(
            matches!(
                error,
                Error::OutOfRange {
                    lowest: Some(0),
                    next: Some(3),
                    ..
                }
            ),
            "{error:?}"
        );
        assert_eq!(
            error.to_string(),
            "OUT_OF_RANGE: offset 9 is out of range [0, 3)"
        );
        assert!(!error.is_retryable());
    }

    #[test]
    fn the_error_trailer_decides_before_the_message() {
        let mut status = tonic::Status::unavailable("some new wording");
        status
            .metadata_mut()
            .insert(ERROR_KEY, "not-leader".parse().expect("ascii"));
        assert!(matches!(
            Error::from_status(&status, "n1"),
            Error::NotLeader { .. }
        ));
        let mut status = tonic::Status::failed_precondition("some new wording");
        status
            .metadata_mut()
            .insert(ERROR_KEY, "sequence-too-old".parse().expect("ascii"));
        assert!(matches!(
            Error::from_status(&status, "n1"),
            Error::SequenceTooOld { .. }
        ));
        let plain = tonic::Status::failed_precondition("some new wording");
        assert!(matches!(
            Error::from_status(&plain, "n1"),
            Error::Status { .. }
        ));
    }

    #[test]
    fn no_leader_is_retryable_and_proves_nothing_was_appended() {
        let status = tonic::Status::unavailable("no leader is elected yet; retry shortly");
        let error = Error::from_status(&status, "n1:8400");
        assert!(matches!(error, Error::NotLeader { .. }), "{error:?}");
        assert!(error.is_retryable() && error.is_not_applied());
        let shutting_down = Error::from_status(
            &tonic::Status::unavailable("the server is shutting down"),
            "n1",
        );
        assert!(shutting_down.is_retryable() && !shutting_down.is_not_applied());
        let unsupported = Error::from_status(
            &tonic::Status::failed_precondition(
                "idempotent produce (a nonzero producer_id) needs a replicated log; this node \
                 runs without replication (cluster.bootstrap_expect = 0)",
            ),
            "n1",
        );
        assert!(
            matches!(unsupported, Error::IdempotenceUnsupported { .. }),
            "{unsupported:?}"
        );
        let too_old = Error::from_status(
            &tonic::Status::failed_precondition(
                "sequence 3 of producer 9 is older than the oldest remembered (4096)",
            ),
            "n1",
        );
        assert!(
            matches!(too_old, Error::SequenceTooOld { .. }),
            "{too_old:?}"
        );
        assert!(!too_old.is_retryable());
        let denied = Error::from_status(&tonic::Status::permission_denied("no"), "n1");
        assert!(!denied.is_retryable());
        assert_eq!(denied.code(), Code::PermissionDenied);
    }
}
