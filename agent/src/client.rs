//! Client subcommands: produce, consume, info, servers.

use clap::Args;

/// Where the server is.
#[derive(Debug, Clone, Args)]
pub struct ConnectArgs {
    /// Server address, HOST:PORT.
    #[arg(long, env = "PROGLOG_ADDR", default_value = "127.0.0.1:8400")]
    pub addr: String,
}

/// `proglog produce`.
#[derive(Debug, Args)]
pub struct ProduceArgs {
    /// Where the server is.
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Values to append; without any, one record per stdin line.
    pub values: Vec<String>,
}

/// `proglog consume`.
#[derive(Debug, Args)]
pub struct ConsumeArgs {
    /// Where the server is.
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// First offset to read (default: the lowest retained).
    #[arg(long)]
    pub from: Option<u64>,
}

/// `proglog info` and `proglog servers`.
#[derive(Debug, Args)]
pub struct InfoArgs {
    /// Where the server is.
    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// Runs `proglog produce`.
///
/// # Errors
/// Connection or server errors.
pub async fn produce(_args: ProduceArgs) -> anyhow::Result<()> {
    anyhow::bail!("produce is not implemented yet")
}

/// Runs `proglog consume`.
///
/// # Errors
/// Connection or server errors.
pub async fn consume(_args: ConsumeArgs) -> anyhow::Result<()> {
    anyhow::bail!("consume is not implemented yet")
}

/// Runs `proglog info`.
///
/// # Errors
/// Connection or server errors.
pub async fn info(_args: InfoArgs) -> anyhow::Result<()> {
    anyhow::bail!("info is not implemented yet")
}

/// Runs `proglog servers`.
///
/// # Errors
/// Connection or server errors.
pub async fn servers(_args: InfoArgs) -> anyhow::Result<()> {
    anyhow::bail!("servers is not implemented yet")
}
