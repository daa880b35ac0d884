//! Command-line flags, the runtime, and Ctrl-C/SIGTERM handling.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use crate::system::{Mode, System};

/// How long blocking work (a ceiling's file writes) may hold up exit.
const RUNTIME_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// proglog-compare: the same workloads against proglog, NATS JetStream and
/// Redis streams on this machine, with the machine's own limits measured in
/// the same run. Results go to stdout and to --output.
#[derive(Debug, Clone, Parser)]
#[command(name = "proglog-compare", version)]
pub struct CompareArgs {
    /// Repetitions of every workload per system; the table shows medians.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub repetitions: u32,
    /// Record value sizes, bytes.
    #[arg(long, value_delimiter = ',', default_value = "100,1024")]
    pub sizes: Vec<usize>,
    /// Durability modes to run.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "durable,relaxed"
    )]
    pub modes: Vec<Mode>,
    /// Systems to run (proglog/peer ratios need proglog).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "proglog,nats,redis"
    )]
    pub systems: Vec<System>,
    /// Records of the one-at-a-time workload at most.
    #[arg(long, default_value_t = 5_000)]
    pub one_at_a_time_records: u64,
    /// Records of the one-producer pipelined workload at most.
    #[arg(long, default_value_t = 200_000)]
    pub pipelined_records: u64,
    /// Records of the concurrent workload at most, over all producers.
    #[arg(long, default_value_t = 400_000)]
    pub concurrent_records: u64,
    /// Producers (each with its own connection) of the concurrent workload.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..))]
    pub producers: u64,
    /// Unacknowledged records per pipelined producer.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..))]
    pub window: u64,
    /// Records per consume request (batch).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    pub batch_records: u64,
    /// Time cap of each workload, seconds: no request is issued after it.
    #[arg(long, default_value_t = 4.0)]
    pub workload_seconds: f64,
    /// Time each machine ceiling is measured for, seconds.
    #[arg(long, default_value_t = 2.0)]
    pub ceiling_seconds: f64,
    /// The proglog binary.
    #[arg(long, default_value = "target/release/proglog")]
    pub proglog: PathBuf,
    /// The nats-server binary.
    #[arg(long, default_value = "nats-server")]
    pub nats_server: PathBuf,
    /// The redis-server binary.
    #[arg(long, default_value = "redis-server")]
    pub redis_server: PathBuf,
    /// Where data directories are made (must be on a real disk, not tmpfs,
    /// for fsync to mean anything); default: the system temp directory.
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// Where the Markdown report is written.
    #[arg(long, default_value = "bench/results/latest.md")]
    pub output: PathBuf,
}

/// Parses the flags and runs the comparison; Ctrl-C or SIGTERM drops the
/// run, which kills every started system and removes its data.
pub fn main() -> ExitCode {
    let args = CompareArgs::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        tokio::select! {
            result = crate::run::run(&args) => result,
            signal = shutdown_signal() => Err(anyhow::anyhow!(
                "stopped by {signal}; the started systems were killed and their data removed"
            )),
        }
    });
    runtime.shutdown_timeout(RUNTIME_SHUTDOWN_TIMEOUT);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM with the signal's name.
async fn shutdown_signal() -> &'static str {
    let mut terminate =
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return "SIGINT";
            }
        };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "SIGINT",
        _ = terminate.recv() => "SIGTERM",
    }
}
