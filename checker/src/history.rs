//! What clients did and what they were told.

use std::collections::HashMap;

use bytes::Bytes;

/// How one attempt ended, as its client saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Invoked, with no answer recorded yet: counted as indeterminate.
    Pending,
    /// Acknowledged at this offset: it must be on every replica, there.
    Ok(u64),
    /// Refused: it must be on no replica.
    Failed,
    /// Timed out (or the connection broke): on the replicas or not, both
    /// are correct.
    Indeterminate,
}

/// One attempt: its value, how it ended, and how often the value was
/// invoked (more than once breaks the history's premise).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Operation {
    pub(crate) value: Bytes,
    pub(crate) outcome: Outcome,
    pub(crate) invocations: u32,
}

/// One record a consumer read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Read {
    /// Which consumer read it.
    pub consumer: u64,
    /// The offset it was read at.
    pub offset: u64,
    /// The value read.
    pub value: Bytes,
}

/// A run's history: every produce attempt, by value, and every consumer
/// read, in the order recorded.
///
/// An answer for a value never invoked counts as its invocation (a caller
/// may record only the answers). An acknowledgement is final: a later
/// `fail` or `timeout` of the same value does not undo it, since a client
/// that was told an offset may already have acted on it.
#[derive(Debug, Clone, Default)]
pub struct History {
    operations: Vec<Operation>,
    by_value: HashMap<Bytes, usize>,
    reads: Vec<Read>,
}

impl History {
    /// An empty history.
    pub fn new() -> Self {
        Self::default()
    }

    /// A client starts writing `value`. Each value must be invoked once;
    /// a second invocation is reported as [`crate::Anomaly::ReusedValue`].
    pub fn invoke(&mut self, value: impl Into<Bytes>) {
        let value = value.into();
        match self.by_value.get(&value) {
            Some(&at) => self.operations[at].invocations += 1,
            None => {
                self.insert(value, Outcome::Pending);
            }
        }
    }

    /// `value` was acknowledged at `offset`.
    pub fn ok(&mut self, value: impl Into<Bytes>, offset: u64) {
        self.answer(value.into(), Outcome::Ok(offset));
    }

    /// `value` was refused: it was not written.
    pub fn fail(&mut self, value: impl Into<Bytes>) {
        self.answer(value.into(), Outcome::Failed);
    }

    /// `value`'s attempt timed out: whether it was written is unknown.
    pub fn timeout(&mut self, value: impl Into<Bytes>) {
        self.answer(value.into(), Outcome::Indeterminate);
    }

    /// Consumer `consumer` read `value` at `offset` (record reads in the
    /// order each consumer received them).
    pub fn read(&mut self, consumer: u64, offset: u64, value: impl Into<Bytes>) {
        self.reads.push(Read {
            consumer,
            offset,
            value: value.into(),
        });
    }

    /// How `value`'s attempt ended; `None` if it was never recorded.
    pub fn outcome(&self, value: &[u8]) -> Option<Outcome> {
        self.by_value
            .get(value)
            .map(|&at| self.operations[at].outcome)
    }

    /// Attempts recorded (distinct values).
    pub fn len(&self) -> usize {
        self.operations.len()
    }

    /// Whether nothing was recorded (no attempt, no read).
    pub fn is_empty(&self) -> bool {
        self.operations.is_empty() && self.reads.is_empty()
    }

    /// Every read, in the order recorded.
    pub fn reads(&self) -> &[Read] {
        &self.reads
    }

    pub(crate) fn operations(&self) -> &[Operation] {
        &self.operations
    }

    fn answer(&mut self, value: Bytes, outcome: Outcome) {
        let at = match self.by_value.get(&value) {
            Some(&at) => at,
            None => self.insert(value, Outcome::Pending),
        };
        let operation = &mut self.operations[at];
        if !matches!(operation.outcome, Outcome::Ok(_)) {
            operation.outcome = outcome;
        }
    }

    fn insert(&mut self, value: Bytes, outcome: Outcome) -> usize {
        let at = self.operations.len();
        self.by_value.insert(value.clone(), at);
        self.operations.push(Operation {
            value,
            outcome,
            invocations: 1,
        });
        at
    }
}
