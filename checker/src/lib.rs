//! The history checker of proglog's reliability tests: record what clients
//! did and were told, read what every replica holds at the end, and list
//! every way the two disagree.
//!
//! A producer gives every attempt a value of its own (values are never
//! reused, so a value names one attempt). Each attempt ends acknowledged
//! at an offset, failed (definitely not written), or indeterminate (a
//! timeout, a reset connection: written or not, both are correct).
//! Consumers' reads are recorded as (consumer, offset, value) in the order
//! each consumer saw them.
//!
//! [`check`] compares that [`History`] with every replica's records and
//! returns a [`Report`]: the counts of the run and each [`Anomaly`]
//! found. What counts as an anomaly, and why, is documented on
//! [`Anomaly`]'s variants. A run is correct when [`Report::is_ok`].
//!
//! ```
//! use proglog_checker::{History, check};
//!
//! let mut history = History::new();
//! history.invoke("a");
//! history.ok("a", 0);
//! history.invoke("b");
//! history.timeout("b");
//! history.read(1, 0, "a");
//! let replicas = [
//!     ("node-1", vec![(0, "a".into()), (1, "b".into())]),
//!     ("node-2", vec![(0, "a".into())]),
//! ];
//! let report = check(&history, &replicas);
//! assert!(report.is_ok(), "{report}");
//! assert_eq!((report.acked, report.indeterminate), (1, 1));
//! ```

mod anomaly;
mod check;
mod history;
mod report;

pub use anomaly::{Anomaly, AnomalyKind};
pub use check::check;
pub use history::{History, Outcome, Read};
pub use report::Report;
