//! Starting the systems as child processes, each with its data in a fresh
//! temporary directory, and stopping them.
//!
//! A [`Service`] owns its child and its directory: dropping it kills the
//! child (SIGKILL), reaps it, and then removes the directory, so an error,
//! a panic or the signal handler dropping the run leaves nothing behind.
//! Children run in their own process group, so a Ctrl-C at the terminal
//! reaches only the harness, which then drops them in order.

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tempfile::TempDir;

use crate::system::{Mode, System};

/// Longest a system may take to open its port: a fresh data directory
/// opens in well under a second; a busy 2-core machine gets ten times that.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// Pause between readiness probes.
const PROBE_INTERVAL: Duration = Duration::from_millis(20);

/// Where the peer and proglog executables are.
#[derive(Debug, Clone)]
pub struct Executables {
    /// The `proglog` binary.
    pub proglog: PathBuf,
    /// The `nats-server` binary.
    pub nats_server: PathBuf,
    /// The `redis-server` binary.
    pub redis_server: PathBuf,
}

/// A running system: its child process, port and data directory.
#[derive(Debug)]
pub struct Service {
    system: System,
    port: u16,
    child: Child,
    // Dropped after the child is reaped (see `Drop`).
    dir: TempDir,
}

impl Service {
    /// Starts `system` in `mode` with a fresh data directory under
    /// `work_dir` and waits until its port accepts connections.
    ///
    /// # Errors
    /// The executable cannot be started, exits early, or does not open its
    /// port in time; the message carries the tail of its output.
    pub async fn start(
        system: System,
        mode: Mode,
        executables: &Executables,
        work_dir: &Path,
        nats_sync_always: bool,
    ) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("compare-{system}-"))
            .tempdir_in(work_dir)
            .with_context(|| format!("cannot create a directory in {}", work_dir.display()))?;
        let port = free_port()?;
        let data = dir.path().join("data");
        std::fs::create_dir(&data)?;
        let mut command = match system {
            System::Proglog => {
                let mut command = Command::new(&executables.proglog);
                command
                    .arg("agent")
                    .arg("--data-dir")
                    .arg(&data)
                    .arg("--rpc-addr")
                    .arg(format!("127.0.0.1:{port}"))
                    .arg("--fsync")
                    .arg(match mode {
                        Mode::Durable => "always",
                        Mode::Relaxed => "interval",
                    })
                    .arg("--log-level")
                    .arg("warn");
                command
            }
            System::Nats => {
                let config = dir.path().join("nats.conf");
                std::fs::write(&config, nats_config(&data, mode, nats_sync_always))?;
                let mut command = Command::new(&executables.nats_server);
                command
                    .arg("-c")
                    .arg(&config)
                    .args(["-a", "127.0.0.1", "-p"])
                    .arg(port.to_string());
                command
            }
            System::Redis => {
                let mut command = Command::new(&executables.redis_server);
                command
                    .args(["--bind", "127.0.0.1", "--port"])
                    .arg(port.to_string())
                    .arg("--dir")
                    .arg(&data)
                    .args(["--appendonly", "yes", "--appendfsync"])
                    .arg(match mode {
                        Mode::Durable => "always",
                        Mode::Relaxed => "everysec",
                    })
                    .args(["--save", "", "--daemonize", "no", "--protected-mode", "no"]);
                command
            }
        };
        let log = File::create(dir.path().join("output.log"))?;
        command
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0);
        let child = command
            .spawn()
            .with_context(|| format!("cannot start {:?}", command.get_program()))?;
        let mut service = Self {
            system,
            port,
            child,
            dir,
        };
        service.wait_until_listening().await?;
        Ok(service)
    }

    /// The system this is.
    pub fn system(&self) -> System {
        self.system
    }

    /// The loopback port it serves on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The child's peak resident set size so far (VmHWM), bytes.
    ///
    /// # Errors
    /// /proc cannot be read or has no VmHWM line.
    pub fn peak_rss_bytes(&self) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))?;
        parse_vm_hwm_bytes(&status).context("no VmHWM line in /proc/<pid>/status")
    }

    async fn wait_until_listening(&mut self) -> anyhow::Result<()> {
        let started = Instant::now();
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        loop {
            if let Some(status) = self.child.try_wait()? {
                anyhow::bail!(
                    "{} exited at start ({status}):\n{}",
                    self.system,
                    self.output_tail()
                );
            }
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                return Ok(());
            }
            if started.elapsed() > START_TIMEOUT {
                anyhow::bail!(
                    "{} did not listen on {addr} within {START_TIMEOUT:?}:\n{}",
                    self.system,
                    self.output_tail()
                );
            }
            tokio::time::sleep(PROBE_INTERVAL).await;
        }
    }

    /// The last lines the child wrote, for error messages.
    fn output_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.path().join("output.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        // SIGKILL: the data is thrown away, so there is nothing to flush.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The nats-server configuration file: JetStream with its store in
/// `data`, and `sync_interval: always` in durable mode when the server
/// accepts it.
pub fn nats_config(data: &Path, mode: Mode, sync_always: bool) -> String {
    let sync = if mode == Mode::Durable && sync_always {
        " sync_interval: always"
    } else {
        ""
    };
    format!(
        "jetstream {{ store_dir: {:?}{sync} }}\n",
        data.display().to_string()
    )
}

/// Whether this nats-server accepts `sync_interval: always` (2.10 and
/// later do; Debian 12's 2.9.10 does not), by testing a configuration with
/// `nats-server -t`.
///
/// # Errors
/// nats-server cannot be run at all.
pub fn nats_accepts_sync_always(nats_server: &Path, work_dir: &Path) -> anyhow::Result<bool> {
    let dir = tempfile::tempdir_in(work_dir)?;
    let config = dir.path().join("nats.conf");
    std::fs::write(&config, nats_config(dir.path(), Mode::Durable, true))?;
    let status = Command::new(nats_server)
        .arg("-c")
        .arg(&config)
        .arg("-t")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .with_context(|| format!("cannot run {}", nats_server.display()))?;
    Ok(status.success())
}

/// A loopback port that was free a moment ago.
fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}

/// VmHWM from the text of `/proc/<pid>/status`, in bytes.
pub fn parse_vm_hwm_bytes(status: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kilobytes: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kilobytes * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_hwm_is_read_in_kilobytes() {
        let status = "Name:\tproglog\nVmPeak:\t  9000 kB\nVmHWM:\t   2048 kB\nVmRSS:\t 1024 kB\n";
        assert_eq!(parse_vm_hwm_bytes(status), Some(2048 * 1024));
        assert_eq!(parse_vm_hwm_bytes("Name:\tx\n"), None);
    }

    #[test]
    fn nats_durable_config_asks_for_sync_only_when_accepted() {
        let data = Path::new("/tmp/x");
        assert!(nats_config(data, Mode::Durable, true).contains("sync_interval: always"));
        assert!(!nats_config(data, Mode::Durable, false).contains("sync_interval"));
        assert!(!nats_config(data, Mode::Relaxed, true).contains("sync_interval"));
    }
}
