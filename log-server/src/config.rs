//! Limits of the API layer.

/// Configuration of the gRPC and HTTP server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// After shutdown starts, in-flight requests get this many milliseconds to
    /// finish before connections are dropped.
    pub drain_timeout_ms: u64,
    /// Largest gRPC message accepted or sent, in bytes.
    pub grpc_message_bytes_max: usize,
    /// Largest HTTP request body accepted, in bytes.
    pub http_body_bytes_max: usize,
    /// Records a consume batch or stream step returns when the client does not
    /// say.
    pub consume_records_default: u32,
    /// Bytes a consume batch or stream step returns when the client does not
    /// say.
    pub consume_bytes_default: u64,
    /// Requests a `ProduceStream` batches into one append at most (and
    /// queues while an append runs).
    pub produce_stream_batch_max: usize,
    /// Records one consume batch returns at most, whatever the client asks.
    pub consume_records_max: u32,
    /// Records one `ProduceBatch` (or HTTP batch) may carry.
    pub produce_batch_records_max: usize,
    /// Connections open at once (handshaking or served); one more is
    /// accepted and closed at once, and counted in
    /// `proglog_connections_refused_total`. Keep it below the process's
    /// open-file limit, with room for the log's files.
    pub connections_max: usize,
    /// Milliseconds an HTTP/1 client has to send a request's headers.
    pub header_read_timeout_ms: u64,
    /// Milliseconds a connection may stay open with no request in progress
    /// (a half-sent request head counts as none) before it is closed.
    pub idle_timeout_ms: u64,
    /// Milliseconds an HTTP request body may go without sending anything
    /// before the request is refused with 408 (gRPC streams may idle).
    pub body_read_timeout_ms: u64,
    /// Milliseconds of silence from an HTTP/2 peer before the server pings
    /// it.
    pub http2_keepalive_interval_ms: u64,
    /// Milliseconds an HTTP/2 peer has to answer a ping before its
    /// connection is closed as dead.
    pub http2_keepalive_timeout_ms: u64,
    /// Bytes of a refused HTTP request's body the server reads and discards
    /// before answering, so that clients which send the whole body before
    /// reading (curl over HTTP/2) get the refusal intact; a longer body has
    /// its stream reset after the answer.
    pub refusal_drain_bytes_max: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            drain_timeout_ms: 10_000,
            grpc_message_bytes_max: 16 << 20,
            http_body_bytes_max: 16 << 20,
            consume_records_default: 1000,
            consume_bytes_default: 1 << 20,
            produce_stream_batch_max: 256,
            consume_records_max: 10_000,
            produce_batch_records_max: 65_536,
            connections_max: 1024,
            header_read_timeout_ms: 10_000,
            idle_timeout_ms: 60_000,
            body_read_timeout_ms: 10_000,
            http2_keepalive_interval_ms: 30_000,
            http2_keepalive_timeout_ms: 10_000,
            refusal_drain_bytes_max: 64 << 20,
        }
    }
}

impl ServerConfig {
    /// The most record bytes one batch response carries, whatever the client
    /// asks: under the gRPC message limit, with room for the envelope
    /// (a frame's 36-byte header is larger than a record's protobuf overhead).
    pub fn batch_bytes_max(&self) -> u64 {
        (self.grpc_message_bytes_max as u64)
            .saturating_sub(BATCH_ENVELOPE_BYTES)
            .max(1)
    }
}

/// Bytes kept free in a batch response for its envelope.
const BATCH_ENVELOPE_BYTES: u64 = 4096;
