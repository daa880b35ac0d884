//! Each way a history and the replicas' records can disagree.

use std::fmt;

use bytes::Bytes;

/// One anomaly, with what is needed to find it in the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Anomaly {
    /// An acknowledged value is missing from some replicas (or all): the
    /// write the client was promised is gone there.
    Lost {
        /// The value.
        value: Bytes,
        /// The offset it was acknowledged at.
        acked_offset: u64,
        /// The replicas that do not hold it, in the order given.
        missing_on: Vec<String>,
    },
    /// A value of the history is at two or more offsets of one replica:
    /// written twice (a resend appended again).
    Duplicated {
        /// The value.
        value: Bytes,
        /// The replica.
        replica: String,
        /// Every offset it is at there, ascending.
        offsets: Vec<u64>,
    },
    /// An acknowledged value is stored, but not at the offset its client
    /// was told.
    WrongOffset {
        /// The value.
        value: Bytes,
        /// The offset it was acknowledged at.
        acked_offset: u64,
        /// The replica.
        replica: String,
        /// Where that replica holds it.
        stored_offset: u64,
    },
    /// Replicas hold different values at one offset (or one replica lists
    /// two): there is no single log any more.
    OffsetConflict {
        /// The offset.
        offset: u64,
        /// Each replica's value there, in the order given.
        values: Vec<(String, Bytes)>,
    },
    /// A replica is missing offsets inside the acknowledged prefix (from
    /// the lowest acknowledged offset, or its first record if lower, to
    /// the highest acknowledged offset): the log has a hole where every
    /// offset should be assigned.
    Gap {
        /// The replica.
        replica: String,
        /// The first missing offset.
        from: u64,
        /// The offset after the last missing one.
        to: u64,
    },
    /// A consumer read an offset not above one it had already read: its
    /// reads went backwards or repeated.
    NonMonotonicRead {
        /// The consumer.
        consumer: u64,
        /// The offset it had read before.
        previous_offset: u64,
        /// The offset it read next.
        offset: u64,
    },
    /// A consumer read a value at an offset where no replica holds that
    /// value: it saw a record the log does not have (lost since, or never
    /// committed).
    ReadMismatch {
        /// The consumer.
        consumer: u64,
        /// The offset read.
        offset: u64,
        /// The value read.
        value: Bytes,
    },
    /// A replica disagrees with the first replica on an offset both hold:
    /// their common prefix differs.
    Divergence {
        /// The first replica given (the reference).
        reference: String,
        /// The replica that disagrees with it.
        replica: String,
        /// The first offset where they differ.
        offset: u64,
    },
    /// A value whose write was refused is stored: the client was told it
    /// failed, so it may have been written again elsewhere.
    FailedButStored {
        /// The value.
        value: Bytes,
        /// The replica.
        replica: String,
        /// Where that replica holds it.
        offset: u64,
    },
    /// A value was invoked more than once: the history itself is unsound
    /// (values must name one attempt), so no other finding about it holds.
    ReusedValue {
        /// The value.
        value: Bytes,
        /// How often it was invoked.
        invocations: u32,
    },
}

/// An [`Anomaly`]'s variant, without its details: what the report counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AnomalyKind {
    /// [`Anomaly::Lost`].
    Lost,
    /// [`Anomaly::Duplicated`].
    Duplicated,
    /// [`Anomaly::WrongOffset`].
    WrongOffset,
    /// [`Anomaly::OffsetConflict`].
    OffsetConflict,
    /// [`Anomaly::Gap`].
    Gap,
    /// [`Anomaly::NonMonotonicRead`].
    NonMonotonicRead,
    /// [`Anomaly::ReadMismatch`].
    ReadMismatch,
    /// [`Anomaly::Divergence`].
    Divergence,
    /// [`Anomaly::FailedButStored`].
    FailedButStored,
    /// [`Anomaly::ReusedValue`].
    ReusedValue,
}

impl Anomaly {
    /// Which kind of anomaly this is.
    pub fn kind(&self) -> AnomalyKind {
        match self {
            Self::Lost { .. } => AnomalyKind::Lost,
            Self::Duplicated { .. } => AnomalyKind::Duplicated,
            Self::WrongOffset { .. } => AnomalyKind::WrongOffset,
            Self::OffsetConflict { .. } => AnomalyKind::OffsetConflict,
            Self::Gap { .. } => AnomalyKind::Gap,
            Self::NonMonotonicRead { .. } => AnomalyKind::NonMonotonicRead,
            Self::ReadMismatch { .. } => AnomalyKind::ReadMismatch,
            Self::Divergence { .. } => AnomalyKind::Divergence,
            Self::FailedButStored { .. } => AnomalyKind::FailedButStored,
            Self::ReusedValue { .. } => AnomalyKind::ReusedValue,
        }
    }
}

/// A value for people: its bytes as an escaped string, cut at 64 bytes.
struct Shown<'a>(&'a [u8]);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN_BYTES_MAX: usize = 64;
        let cut = self.0.len().min(SHOWN_BYTES_MAX);
        write!(f, "\"{}\"", self.0[..cut].escape_ascii())?;
        if cut < self.0.len() {
            write!(f, "... ({} bytes)", self.0.len())?;
        }
        Ok(())
    }
}

impl fmt::Display for Anomaly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Lost {
                value,
                acked_offset,
                missing_on,
            } => write!(
                f,
                "lost: {} acknowledged at {acked_offset} is missing on {}",
                Shown(value),
                missing_on.join(", ")
            ),
            Self::Duplicated {
                value,
                replica,
                offsets,
            } => write!(
                f,
                "duplicated: {} is at offsets {offsets:?} on {replica}",
                Shown(value)
            ),
            Self::WrongOffset {
                value,
                acked_offset,
                replica,
                stored_offset,
            } => write!(
                f,
                "wrong offset: {} acknowledged at {acked_offset} is at {stored_offset} on {replica}",
                Shown(value)
            ),
            Self::OffsetConflict { offset, values } => {
                write!(f, "offset conflict at {offset}:")?;
                for (replica, value) in values {
                    write!(f, " {replica}={}", Shown(value))?;
                }
                Ok(())
            }
            Self::Gap { replica, from, to } => {
                write!(f, "gap: {replica} lacks offsets {from}..{to}")
            }
            Self::NonMonotonicRead {
                consumer,
                previous_offset,
                offset,
            } => write!(
                f,
                "non-monotonic read: consumer {consumer} read {offset} after {previous_offset}"
            ),
            Self::ReadMismatch {
                consumer,
                offset,
                value,
            } => write!(
                f,
                "read mismatch: consumer {consumer} read {} at {offset}, which no replica holds there",
                Shown(value)
            ),
            Self::Divergence {
                reference,
                replica,
                offset,
            } => write!(
                f,
                "divergence: {replica} differs from {reference} at offset {offset}"
            ),
            Self::FailedButStored {
                value,
                replica,
                offset,
            } => write!(
                f,
                "failed but stored: refused {} is at {offset} on {replica}",
                Shown(value)
            ),
            Self::ReusedValue { value, invocations } => write!(
                f,
                "reused value: {} was invoked {invocations} times",
                Shown(value)
            ),
        }
    }
}
