//! `proglog-compare` (`make compare`): proglog against NATS JetStream and
//! Redis streams on one machine, with the same workloads, matched and
//! labelled durability, and the machine's own ceilings measured in the same
//! run. See bench/README.md for what is measured and how to read it.
//!
//! A bench tool, not a library: errors are `anyhow` throughout, and the
//! library target exists so the pure parts (statistics, the table) are
//! unit-tested and documented.

pub mod ceilings;
pub mod cli;
pub mod driver;
pub mod machine;
pub mod payload;
pub mod report;
pub mod run;
pub mod service;
pub mod stats;
pub mod system;
