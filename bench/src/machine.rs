//! What the figures were measured on.

use std::path::Path;
use std::process::Command;

/// The machine and software versions of a run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MachineInfo {
    /// Logical CPUs available to the process.
    pub cpus: usize,
    /// Total memory, from /proc/meminfo.
    pub memory: String,
    /// Kernel release.
    pub kernel: String,
    /// CPU model name, from /proc/cpuinfo.
    pub cpu_model: String,
    /// `nats-server --version`.
    pub nats_version: String,
    /// `redis-server --version`.
    pub redis_version: String,
    /// The proglog tree's commit (with `-dirty` when it has changes).
    pub git_commit: String,
    /// When the run started, UTC.
    pub date: String,
}

impl MachineInfo {
    /// Collects everything; a part that cannot be read says "unknown".
    pub fn collect(nats_server: &Path, redis_server: &Path) -> Self {
        let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
        let memory = read("/proc/meminfo")
            .lines()
            .find_map(|line| line.strip_prefix("MemTotal:"))
            .and_then(|kb| kb.split_whitespace().next()?.parse::<u64>().ok())
            .map(|kb| format!("{:.1} GiB", kb as f64 / 1_048_576.0));
        let cpu_model = read("/proc/cpuinfo")
            .lines()
            .find(|line| line.starts_with("model name"))
            .and_then(|line| line.split_once(':'))
            .map(|(_, model)| model.trim().to_owned());
        let dirty =
            command_output("git", &["status", "--porcelain"]).is_some_and(|s| !s.is_empty());
        let git_commit =
            command_output("git", &["rev-parse", "--short=12", "HEAD"]).map(|commit| {
                if dirty {
                    format!("{commit}-dirty")
                } else {
                    commit
                }
            });
        Self {
            cpus: std::thread::available_parallelism().map_or(0, usize::from),
            memory: known(memory),
            kernel: known(Some(read("/proc/sys/kernel/osrelease").trim().to_owned())),
            cpu_model: known(cpu_model),
            nats_version: known(command_output(
                &nats_server.display().to_string(),
                &["--version"],
            )),
            redis_version: known(command_output(
                &redis_server.display().to_string(),
                &["--version"],
            )),
            git_commit: known(git_commit),
            date: known(command_output("date", &["-u", "+%Y-%m-%d %H:%M UTC"])),
        }
    }
}

fn known(value: Option<String>) -> String {
    value
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// A command's trimmed stdout, when it ran and succeeded.
fn command_output(program: &str, args: &[&str]) -> Option<String> {
    let output = Command::new(program).args(args).output().ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}
