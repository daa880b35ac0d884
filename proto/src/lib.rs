//! The wire contract of proglog: `proto/proglog/v1/log.proto` (package
//! `proglog.v1`, service `Log`), the prost messages and tonic client and
//! server generated from it at build time without a system `protoc`, the
//! encoded descriptor set for server reflection, and the conversions between
//! wire and `log-core` records.

/// Generated code for package `proglog.v1`.
#[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
pub mod v1 {
    tonic::include_proto!("proglog.v1");
}

/// The encoded `FileDescriptorSet` of `proglog.v1`, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/proglog_descriptor.bin"));

/// The `.proto` source, for tools that want to show or ship it.
pub const LOG_PROTO: &str = include_str!("../proglog/v1/log.proto");

/// The canonical name of a gRPC code, as in the `.proto` comments.
pub fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code;
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

impl From<log_core::Record> for v1::Record {
    fn from(record: log_core::Record) -> Self {
        Self {
            value: record.value,
            offset: record.offset,
            timestamp_ms: record.timestamp_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_record_converts_without_losing_fields() {
        let record = log_core::Record {
            offset: 7,
            timestamp_ms: 9,
            ..log_core::Record::new(b"abc".to_vec())
        };
        let wire = v1::Record::from(record);
        assert_eq!(
            (wire.offset, wire.timestamp_ms, &wire.value[..]),
            (7, 9, &b"abc"[..])
        );
    }

    #[test]
    fn the_descriptor_set_names_the_log_service() {
        assert!(
            FILE_DESCRIPTOR_SET
                .windows(b"proglog.v1".len())
                .any(|w| w == b"proglog.v1")
        );
        assert!(
            FILE_DESCRIPTOR_SET
                .windows(b"ConsumeStream".len())
                .any(|w| w == b"ConsumeStream")
        );
    }
}
