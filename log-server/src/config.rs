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
