//! The systems compared, the durability modes, and the workloads.

use std::fmt;

/// A system under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, clap::ValueEnum)]
pub enum System {
    /// proglog over gRPC.
    Proglog,
    /// NATS JetStream, one file-backed stream.
    Nats,
    /// Redis, one stream key (XADD / XRANGE).
    Redis,
}

impl System {
    /// Every system, in table order.
    pub const ALL: [Self; 3] = [Self::Proglog, Self::Nats, Self::Redis];
}

impl fmt::Display for System {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Proglog => "proglog",
            Self::Nats => "nats",
            Self::Redis => "redis",
        })
    }
}

/// How durable an acknowledged record is; each system is configured to
/// its closest match (see [`Mode::sync_label`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, clap::ValueEnum)]
pub enum Mode {
    /// On disk (fdatasync) before the ack, where the system can do that.
    Durable,
    /// Acked from memory; synced in the background.
    Relaxed,
}

impl Mode {
    /// What `system` does in this mode, for the table. `nats_sync_always`
    /// says whether nats-server accepted `sync_interval: always`.
    pub fn sync_label(self, system: System, nats_sync_always: bool) -> &'static str {
        match (self, system) {
            (Self::Durable, System::Proglog) => "fsync always",
            (Self::Durable, System::Nats) if nats_sync_always => "sync_interval always",
            (Self::Durable, System::Nats) => "NOT fsynced (2 min)",
            (Self::Durable, System::Redis) => "appendfsync always",
            (Self::Relaxed, System::Proglog) => "fsync 50 ms",
            (Self::Relaxed, System::Nats) => "fsync 2 min",
            (Self::Relaxed, System::Redis) => "appendfsync 1 s",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Durable => "durable",
            Self::Relaxed => "relaxed",
        })
    }
}

/// One measured workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Workload {
    /// One producer, waiting for each ack before the next record.
    OneAtATime,
    /// proglog only: the same with unary `Produce` calls instead of a
    /// stream with a window of one.
    OneAtATimeUnary,
    /// One producer, `window` records in flight.
    Pipelined,
    /// `producers` producers, each with its own connection and window.
    Concurrent,
    /// Read everything from the start in batches.
    Consume,
    /// proglog only: the same read over one ConsumeStream.
    ConsumeStream,
}

impl Workload {
    /// Every workload, in table order.
    pub const ALL: [Self; 6] = [
        Self::OneAtATime,
        Self::OneAtATimeUnary,
        Self::Pipelined,
        Self::Concurrent,
        Self::Consume,
        Self::ConsumeStream,
    ];

    /// Whether requests of this workload have a latency worth reporting.
    pub fn has_latency(self) -> bool {
        matches!(
            self,
            Self::OneAtATime | Self::OneAtATimeUnary | Self::Pipelined | Self::Concurrent
        )
    }
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::OneAtATime => "1 produce at a time",
            Self::OneAtATimeUnary => "1 at a time, unary",
            Self::Pipelined => "produce pipelined",
            Self::Concurrent => "concurrent producers",
            Self::Consume => "consume batches",
            Self::ConsumeStream => "consume stream",
        })
    }
}
