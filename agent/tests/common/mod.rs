//! The `proglog agent` process as tests drive it: spawned with JSON logs,
//! its lines on a channel, killed on drop. Shared by the process-level test
//! binaries; each uses part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStderr, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Longest a node may take to start or stop before the test fails.
pub(crate) const PROCESS_TIMEOUT: Duration = Duration::from_secs(20);

pub(crate) fn proglog() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_proglog"));
    // Keep the test's own environment from configuring the node.
    for (key, _) in std::env::vars() {
        if key.starts_with("PROGLOG_") {
            command.env_remove(key);
        }
    }
    command
}

/// A node process whose JSON log lines arrive on a channel; killed on drop.
pub(crate) struct Node {
    child: Child,
    lines: mpsc::Receiver<serde_json::Value>,
    /// Every line received so far, so a wait can find an earlier one.
    seen: std::cell::RefCell<Vec<serde_json::Value>>,
    /// The gRPC + HTTP address the node listens on.
    pub(crate) addr: String,
}

impl Node {
    pub(crate) fn start(data_dir: &Path, extra: &[&str]) -> Self {
        Self::start_with_env(data_dir, extra, &[])
    }

    /// As [`Node::start`], with `PROGLOG_*` settings in the environment.
    pub(crate) fn start_with_env(data_dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Self {
        let mut node = Self::spawn(data_dir, extra, env);
        node.wait_listening();
        node
    }

    /// Starts a node without waiting for it to listen (a replicated node
    /// listens only once its cluster has bootstrapped).
    pub(crate) fn spawn(data_dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Self {
        let mut command = proglog();
        command.envs(env.iter().copied()).arg("agent");
        // Port 0 unless the test chose an address (to keep it over restarts).
        if !extra.contains(&"--rpc-addr") {
            command.args(["--rpc-addr", "127.0.0.1:0"]);
        }
        let mut child = command
            .args(["--log-format", "json", "--data-dir"])
            .arg(data_dir)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn proglog agent");
        let lines = forward_lines(child.stderr.take().expect("stderr"));
        Self {
            child,
            lines,
            seen: std::cell::RefCell::default(),
            addr: String::new(),
        }
    }

    /// Waits until the node listens and notes its address.
    pub(crate) fn wait_listening(&mut self) {
        let listening = self.wait_for("listening for gRPC and HTTP");
        self.addr = listening["addr"].as_str().expect("addr field").to_owned();
    }

    /// The first log line, earlier or to come, whose message is one of
    /// `messages`.
    pub(crate) fn wait_for_any(&self, messages: &[&str]) -> serde_json::Value {
        let matches = |line: &serde_json::Value| {
            line["message"]
                .as_str()
                .is_some_and(|m| messages.contains(&m))
        };
        if let Some(line) = self.seen.borrow().iter().find(|l| matches(l)) {
            return line.clone();
        }
        loop {
            let line = self
                .lines
                .recv_timeout(PROCESS_TIMEOUT)
                .unwrap_or_else(|_| panic!("no {messages:?} line"));
            self.seen.borrow_mut().push(line.clone());
            if matches(&line) {
                return line;
            }
        }
    }

    pub(crate) fn wait_for(&self, message: &str) -> serde_json::Value {
        self.wait_for_any(&[message])
    }

    pub(crate) fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args(["-s", signal, &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    pub(crate) fn wait_exit(&mut self) -> std::process::ExitStatus {
        let deadline = std::time::Instant::now() + PROCESS_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(std::time::Instant::now() < deadline, "node did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn forward_lines(stderr: ChildStderr) -> mpsc::Receiver<serde_json::Value> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { return };
            let value = serde_json::from_str(&line)
                .unwrap_or_else(|_| serde_json::json!({ "message": line }));
            if tx.send(value).is_err() {
                return;
            }
        }
    });
    rx
}
