//! What a check found: the run's figures and every anomaly.

use std::fmt;
use std::time::Duration;

use crate::anomaly::{Anomaly, AnomalyKind};

/// The outcome of [`crate::check`].
///
/// The counts of anomalies are by [`AnomalyKind`]; [`Report::anomalies`]
/// has the specifics. `elections` and `longest_unavailability` are not
/// derived from the history: the caller, which ran the cluster, sets them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Attempts acknowledged with an offset.
    pub acked: usize,
    /// Attempts with no definite answer (timed out, or never answered).
    pub indeterminate: usize,
    /// Indeterminate attempts whose value some replica holds (they were
    /// written after all; informational, not an anomaly).
    pub indeterminate_stored: usize,
    /// Attempts refused.
    pub failed: usize,
    /// Replicas checked.
    pub replicas: usize,
    /// Leader elections during the run (set by the caller).
    pub elections: u64,
    /// The longest time no write was acknowledged while clients were
    /// trying (set by the caller).
    pub longest_unavailability: Duration,
    pub(crate) anomalies: Vec<Anomaly>,
}

impl Report {
    /// Whether the run shows no anomaly at all.
    pub fn is_ok(&self) -> bool {
        self.anomalies.is_empty()
    }

    /// Every anomaly found, grouped by kind in a fixed order.
    pub fn anomalies(&self) -> &[Anomaly] {
        &self.anomalies
    }

    /// Anomalies of one kind.
    pub fn count(&self, kind: AnomalyKind) -> usize {
        self.anomalies.iter().filter(|a| a.kind() == kind).count()
    }

    /// Acknowledged values missing from some replica or all.
    pub fn lost(&self) -> usize {
        self.count(AnomalyKind::Lost)
    }

    /// Values at two or more offsets of one replica.
    pub fn duplicated(&self) -> usize {
        self.count(AnomalyKind::Duplicated)
    }

    /// Acknowledged values stored at another offset, plus offsets holding
    /// two values across replicas.
    pub fn inconsistent_offsets(&self) -> usize {
        self.count(AnomalyKind::WrongOffset) + self.count(AnomalyKind::OffsetConflict)
    }

    /// Runs of missing offsets inside the acknowledged prefix.
    pub fn gaps(&self) -> usize {
        self.count(AnomalyKind::Gap)
    }

    /// Consumer reads that went backwards or repeated, plus reads of values
    /// no replica holds at that offset.
    pub fn bad_reads(&self) -> usize {
        self.count(AnomalyKind::NonMonotonicRead) + self.count(AnomalyKind::ReadMismatch)
    }

    /// Replicas that disagree with the first on an offset both hold.
    pub fn divergent_replicas(&self) -> usize {
        self.count(AnomalyKind::Divergence)
    }
}

impl fmt::Display for Report {
    /// One line of figures; then, with `{:#}`, one line per anomaly.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} replicas, acked {}, lost {}, duplicated {}, inconsistent offsets {}, gaps {}, \
             bad reads {}, divergent replicas {}, failed but stored {}, reused values {}, \
             failed {}, indeterminate {} ({} stored), elections {}, longest unavailability {:.3}s",
            if self.is_ok() { "ok" } else { "ANOMALIES" },
            self.replicas,
            self.acked,
            self.lost(),
            self.duplicated(),
            self.inconsistent_offsets(),
            self.gaps(),
            self.bad_reads(),
            self.divergent_replicas(),
            self.count(AnomalyKind::FailedButStored),
            self.count(AnomalyKind::ReusedValue),
            self.failed,
            self.indeterminate,
            self.indeterminate_stored,
            self.elections,
            self.longest_unavailability.as_secs_f64(),
        )?;
        if f.alternate() {
            for anomaly in &self.anomalies {
                write!(f, "\n  {anomaly}")?;
            }
        }
        Ok(())
    }
}
