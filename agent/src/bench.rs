//! `proglog bench`: load a running server and report throughput and latency.

use clap::Args;

/// `proglog bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Where the server is.
    #[command(flatten)]
    pub connect: crate::client::ConnectArgs,
}

/// Runs the benchmark.
///
/// # Errors
/// Connection or server errors.
pub async fn run(_args: BenchArgs) -> anyhow::Result<()> {
    anyhow::bail!("bench is not implemented yet")
}
