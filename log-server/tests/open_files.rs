//! The "a few idle sockets take the node down", bounded: with the
//! process's open-file limit lowered, far more idle connections than it
//! allows are refused at the cap, accepting never fails for want of a
//! descriptor, and the node serves again once they go.
//!
//! Method: this test binary lowers its own soft `RLIMIT_NOFILE` (with
//! `prlimit`; nextest runs each test in its own process, and this file has
//! one test) before the server starts with a cap far above it; a Python
//! process (its own descriptors) opens and holds 300 connections.

#[path = "common/counters.rs"]
mod counters;

use counters::counter;

use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use log_server::{Access, LocalLog, ServerConfig};
use tokio_util::sync::CancellationToken;

/// Longest any awaited condition may take before the test fails.
const CONDITION_TIMEOUT: Duration = Duration::from_secs(20);

/// Connections the outside process holds: more than the limit allows.
const HELD: u64 = 300;

/// Descriptors the lowered limit leaves above those open at the start.
const HEADROOM: u64 = 150;

fn open_descriptors() -> u64 {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .count() as u64
}

/// Lowers this process's soft open-file limit to `soft`.
fn lower_open_file_limit(soft: u64) {
    let pid = std::process::id().to_string();
    let hard = Command::new("prlimit")
        .args([
            "--pid",
            &pid,
            "--nofile",
            "--output",
            "HARD",
            "--noheadings",
        ])
        .output()
        .expect("prlimit runs (util-linux)");
    let hard = String::from_utf8_lossy(&hard.stdout).trim().to_owned();
    let status = Command::new("prlimit")
        .args(["--pid", &pid, &format!("--nofile={soft}:{hard}")])
        .status()
        .expect("prlimit runs");
    assert!(status.success(), "prlimit --nofile={soft}:{hard}");
}

async fn wait_until(what: &str, condition: impl Fn() -> bool) {
    let waited = tokio::time::timeout(CONDITION_TIMEOUT, async {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "timed out waiting until {what}");
}

/// Goal: far more idle connections than the open-file limit allows never
/// make accepting fail; the excess is refused at the (lowered) cap, and
/// once the connections go the node serves again.
#[tokio::test]
async fn idle_connections_over_the_open_file_limit_are_refused_not_fatal() {
    counters::counters();
    let dir = tempfile::tempdir().expect("tempdir");
    let log = log_core::Log::open(
        dir.path(),
        log_core::Config {
            fsync: log_core::FsyncPolicy::Never,
            ..log_core::Config::default()
        },
    )
    .expect("open log");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    // The holder is spawned before the limit drops (spawning needs
    // descriptors) and connects when told.
    let mut holder = Command::new("python3")
        .args([
            "-c",
            "import socket,sys\n\
             port,n=int(sys.argv[1]),int(sys.argv[2])\n\
             sys.stdin.readline()\n\
             held=[socket.create_connection(('127.0.0.1',port)) for _ in range(n)]\n\
             print('connected',flush=True)\n\
             sys.stdin.readline()\n",
            &addr.port().to_string(),
            &HELD.to_string(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    let mut to_holder = holder.stdin.take().expect("stdin");
    let mut from_holder = BufReader::new(holder.stdout.take().expect("stdout"));
    lower_open_file_limit(open_descriptors() + HEADROOM);

    let log = Arc::new(LocalLog::new(Arc::new(log), "n", &addr.to_string(), 1000));
    let shutdown = CancellationToken::new();
    let served = tokio::spawn(log_server::serve(
        listener,
        log,
        ServerConfig {
            // Far above the limit: the server must lower it.
            connections_max: 100_000,
            drain_timeout_ms: 1_000,
            ..ServerConfig::default()
        },
        shutdown.clone(),
        None,
        Access::open(),
    ));

    writeln!(to_holder, "go").expect("tell the holder");
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        from_holder.read_line(&mut line).map(|_| line)
    })
    .await
    .expect("join")
    .expect("holder output");
    assert_eq!(line.trim(), "connected");
    // The cap is below HEADROOM, so at least HELD - HEADROOM are refused.
    wait_until("the excess is refused", || {
        counter("proglog_connections_refused_total") >= HELD - HEADROOM
    })
    .await;
    assert_eq!(
        counter("proglog_accept_errors_total"),
        0,
        "accept never failed"
    );

    drop(to_holder); // the holder exits, closing its connections
    tokio::task::spawn_blocking(move || holder.wait())
        .await
        .expect("join")
        .expect("holder exits");
    let healthz = format!("http://{addr}/healthz");
    let served_again = tokio::time::timeout(CONDITION_TIMEOUT, async {
        loop {
            if let Ok(response) = reqwest::get(&healthz).await
                && response.status() == 200
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(served_again.is_ok(), "serves again once the connections go");
    assert_eq!(counter("proglog_accept_errors_total"), 0);
    shutdown.cancel();
    let _ = tokio::time::timeout(CONDITION_TIMEOUT, served).await;
}
