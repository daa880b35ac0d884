//! The client subcommands (`produce`, `consume`, `info`, `servers`, `bench`)
//! run as the real binary against a real node.
//!
//! Method: each test starts `proglog agent` as a child process on
//! 127.0.0.1:0 with its own data directory, learns the chosen address from
//! the agent's JSON log line, runs the client commands as further child
//! processes and checks their exact stdout, stderr and exit codes. Every
//! child is killed when its guard drops, also when an assertion fails.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long a node may take to start listening, and a client command to
/// finish: far above what either takes on a loaded 2-core machine running
/// unoptimised binaries.
const CONDITION_TIMEOUT: Duration = Duration::from_secs(30);

/// How often a waiting test checks whether a child has exited.
const EXIT_POLL_INTERVAL: Duration = Duration::from_millis(10);

const BINARY: &str = env!("CARGO_BIN_EXE_proglog");

/// A child process that is killed and reaped when dropped.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A running `proglog agent`.
struct Node {
    addr: String,
    _child: ChildGuard,
    _dir: tempfile::TempDir,
}

impl Node {
    fn start() -> Self {
        Self::start_with_env(&[])
    }

    /// Starts a node with extra `PROGLOG_*` settings and waits until it
    /// listens.
    fn start_with_env(env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut command = Command::new(BINARY);
        command
            .args([
                "agent",
                "--rpc-addr",
                "127.0.0.1:0",
                "--log-format",
                "json",
                "--fsync",
                "never",
            ])
            .arg("--data-dir")
            .arg(dir.path())
            .env_remove("RUST_LOG")
            .env_remove("PROGLOG_CONFIG")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("spawn agent");
        let stderr = child.stderr.take().expect("agent stderr");
        let child = ChildGuard(child);
        let (found, addr) = mpsc::sync_channel(1);
        std::thread::spawn(move || {
            let mut seen = Vec::new();
            let mut lines = BufReader::new(stderr).lines();
            for line in lines.by_ref().map_while(Result::ok) {
                let parsed: Option<serde_json::Value> = serde_json::from_str(&line).ok();
                let listening = parsed.as_ref().and_then(|event| {
                    (event["message"] == "listening for gRPC and HTTP")
                        .then(|| event["addr"].as_str())?
                });
                if let Some(addr) = listening {
                    let _ = found.send(Ok(addr.to_owned()));
                    // Keep draining so the agent never blocks on a full pipe.
                    lines.for_each(drop);
                    return;
                }
                seen.push(line);
            }
            let _ = found.send(Err(seen.join("\n")));
        });
        let addr = match addr.recv_timeout(CONDITION_TIMEOUT) {
            Ok(Ok(addr)) => addr,
            Ok(Err(log)) => panic!("the agent exited before listening; its log:\n{log}"),
            Err(e) => panic!("the agent did not log its address within {CONDITION_TIMEOUT:?}: {e}"),
        };
        Self {
            addr,
            _child: child,
            _dir: dir,
        }
    }

    /// Runs `proglog <command> --addr <node> <args>` to completion.
    fn run(&self, command: &str, args: &[&str], stdin: &[u8]) -> Output {
        let mut all = vec![command, "--addr", &self.addr];
        all.extend_from_slice(args);
        run(&all, stdin)
    }

    /// Like [`Node::run`], and expects success.
    fn ok(&self, command: &str, args: &[&str], stdin: &[u8]) -> String {
        let output = self.run(command, args, stdin);
        assert!(
            output.status.success(),
            "proglog {command} {args:?} failed: {output:?}"
        );
        output.stdout
    }
}

/// What a finished command printed.
#[derive(Debug)]
struct Output {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// Spawns `proglog` with piped stdio; stdout and stderr are read by threads.
fn spawn(
    args: &[&str],
) -> (
    ChildGuard,
    mpsc::Receiver<String>,
    std::thread::JoinHandle<String>,
) {
    let mut child = Command::new(BINARY)
        .args(args)
        .env_remove("PROGLOG_ADDR")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn proglog");
    let stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    // Lines of stdout as they come, so a test can wait for one.
    let (lines_tx, lines) = mpsc::sync_channel(1 << 16);
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        loop {
            let mut line = String::new();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    if lines_tx.send(line).is_err() {
                        return;
                    }
                }
            }
        }
    });
    let stderr = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    (ChildGuard(child), lines, stderr)
}

/// Waits for the child to exit and collects what it printed.
fn finish(
    mut child: ChildGuard,
    lines: mpsc::Receiver<String>,
    stderr: std::thread::JoinHandle<String>,
) -> Output {
    let deadline = Instant::now() + CONDITION_TIMEOUT;
    let status = loop {
        if let Some(status) = child.0.try_wait().expect("try_wait") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "proglog did not exit within {CONDITION_TIMEOUT:?}"
        );
        std::thread::sleep(EXIT_POLL_INTERVAL);
    };
    // The process has exited, so its pipes end and the readers finish.
    let stderr = stderr.join().expect("stderr reader");
    let stdout = lines.iter().collect();
    Output {
        status,
        stdout,
        stderr,
    }
}

/// Runs `proglog <args>` with `stdin`, to completion.
fn run(args: &[&str], stdin: &[u8]) -> Output {
    let (mut child, lines, stderr) = spawn(args);
    let mut input = child.0.stdin.take().expect("stdin");
    let stdin = stdin.to_vec();
    // A writer thread: a large stdin must not block while stdout fills.
    std::thread::spawn(move || {
        let _ = input.write_all(&stdin);
    });
    finish(child, lines, stderr)
}

fn lines_of(offsets: std::ops::Range<u64>) -> String {
    offsets.map(|offset| format!("{offset}\n")).collect()
}

#[test]
fn produced_values_read_back_in_order_from_arguments_and_stdin() {
    let node = Node::start();
    assert_eq!(node.ok("produce", &["first", "second"], b""), "0\n1\n");
    // CRLF is a line ending; an empty line is an empty record; the last line
    // needs no newline.
    assert_eq!(node.ok("produce", &[], b"third\r\n\nfifth"), "2\n3\n4\n");
    assert_eq!(
        node.ok("consume", &[], b""),
        "first\nsecond\nthird\n\nfifth\n"
    );
    assert_eq!(
        node.ok("consume", &["--from", "1", "--limit", "2"], b""),
        "second\nthird\n"
    );
    assert_eq!(node.ok("consume", &["--from", "4"], b""), "fifth\n");
    assert_eq!(
        node.ok("consume", &["--from", "5"], b""),
        "",
        "the commit offset is an empty read"
    );
}

#[test]
fn json_output_has_offset_timestamp_and_base64_value() {
    let before_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis();
    let node = Node::start();
    node.ok("produce", &["a", "bb", "ccc"], b"");
    let stdout = node.ok(
        "consume",
        &["--output", "json", "--from", "1", "--limit", "5"],
        b"",
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    for (line, (offset, base64)) in lines.iter().zip([(1, "YmI="), (2, "Y2Nj")]) {
        // The timestamp is the server's; take it from the line and check it.
        let parsed: serde_json::Value = serde_json::from_str(line).expect("json line");
        let timestamp_ms = parsed["timestampMs"].as_u64().expect("timestampMs");
        assert!(u128::from(timestamp_ms) >= before_ms, "{line}");
        let expected =
            format!(r#"{{"offset":{offset},"timestampMs":{timestamp_ms},"value":"{base64}"}}"#);
        assert_eq!(*line, expected);
    }
}

#[test]
fn a_large_stdin_is_streamed_and_acknowledged_in_order() {
    let node = Node::start();
    let records = 5000;
    let input: String = (0..records).map(|i| format!("record-{i}\n")).collect();
    assert_eq!(
        node.ok("produce", &[], input.as_bytes()),
        lines_of(0..records)
    );
    assert_eq!(node.ok("consume", &[], b""), input);
}

#[test]
fn info_and_servers_describe_the_node() {
    let node = Node::start();
    assert_eq!(
        node.ok("info", &[], b""),
        "lowest offset:  0\nhighest offset: none (the log is empty)\nnext offset:    0\ncommit offset:  0\n"
    );
    assert_eq!(
        node.ok("info", &["--json"], b""),
        "{\"lowestOffset\":0,\"highestOffset\":null,\"nextOffset\":0,\"commitOffset\":0}\n"
    );
    node.ok("produce", &["x", "y", "z"], b"");
    assert_eq!(
        node.ok("info", &[], b""),
        "lowest offset:  0\nhighest offset: 2\nnext offset:    3\ncommit offset:  3\n"
    );
    assert_eq!(
        node.ok("info", &["--json"], b""),
        "{\"lowestOffset\":0,\"highestOffset\":2,\"nextOffset\":3,\"commitOffset\":3}\n"
    );
    let addr = &node.addr;
    let padding = " ".repeat(addr.len().saturating_sub("RPC ADDRESS".len()));
    // FNV-1a of "proglog-0": the id every node derives from that name.
    let id = discovery::node_id_from_name("proglog-0");
    let id_padding = " ".repeat(id.to_string().len().saturating_sub("NODE ID".len()));
    assert_eq!(
        node.ok("servers", &[], b""),
        format!(
            "NAME       NODE ID{id_padding}  RPC ADDRESS{padding}  STATE  ROLE   LEADER\n\
             proglog-0  {id}  {addr}  alive  voter  yes\n"
        )
    );
    assert_eq!(
        node.ok("servers", &["--json"], b""),
        format!(
            "{{\"servers\":[{{\"id\":\"proglog-0\",\"nodeId\":{id},\"rpcAddr\":\"{addr}\",\
             \"state\":\"alive\",\"isLeader\":true,\"role\":\"voter\"}}]}}\n"
        )
    );
}

#[test]
fn consume_outside_the_log_fails_with_the_valid_range() {
    let node = Node::start();
    node.ok("produce", &["a", "b", "c"], b"");
    for args in [&["--from", "9"][..], &["--from", "9", "--follow"]] {
        let output = node.run("consume", args, b"");
        assert_eq!(output.status.code(), Some(1), "{output:?}");
        assert_eq!(output.stdout, "");
        assert_eq!(
            output.stderr,
            format!(
                "error: consuming from {} at offset 9: OUT_OF_RANGE: offset 9 is out of range: \
                 the log holds offsets 0..3 (next is exclusive)\n",
                node.addr
            )
        );
    }
}

#[test]
fn a_record_over_the_limit_fails_after_the_records_before_it() {
    let node = Node::start_with_env(&[("PROGLOG_LOG__RECORD_BYTES_MAX", "1024")]);
    let input = format!("small\n{}\nnever sent\n", "x".repeat(2000));
    let output = node.run("produce", &[], input.as_bytes());
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert_eq!(
        output.stdout, "0\n",
        "the record before the bad one is acknowledged"
    );
    assert_eq!(
        output.stderr,
        format!(
            "error: producing to {}: INVALID_ARGUMENT: record of 2000 bytes exceeds the limit of 1024 bytes\n",
            node.addr
        )
    );
    assert_eq!(node.ok("consume", &[], b""), "small\n");
}

#[test]
fn commands_name_the_address_they_cannot_reach() {
    // A port that was free a moment ago; nothing listens on it now.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    drop(listener);
    for command in ["produce", "consume", "info", "servers", "bench"] {
        let mut args = vec![command, "--addr", &addr];
        if command == "produce" {
            args.push("value");
        }
        let output = run(&args, b"");
        assert_eq!(output.status.code(), Some(1), "{command}: {output:?}");
        assert!(
            output
                .stderr
                .starts_with(&format!("error: cannot connect to {addr}: ")),
            "{command}: {}",
            output.stderr
        );
        assert!(
            output.stderr.contains("Connection refused"),
            "{command}: {}",
            output.stderr
        );
    }
}

#[test]
fn follow_waits_for_new_records_until_the_limit() {
    let node = Node::start();
    node.ok("produce", &["before"], b"");
    let (follower, lines, stderr) =
        spawn(&["consume", "--addr", &node.addr, "--follow", "--limit", "3"]);
    // The follower has caught up once it printed the existing record.
    let first = lines
        .recv_timeout(CONDITION_TIMEOUT)
        .expect("the follower printed the first record");
    assert_eq!(first, "before\n");
    node.ok("produce", &["after-1", "after-2", "after-3"], b"");
    let output = finish(follower, lines, stderr);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        output.stdout, "after-1\nafter-2\n",
        "the records after the first, up to the limit"
    );
}

#[test]
fn bench_produces_and_consumes_every_record() {
    let node = Node::start();
    let args = [
        "--records",
        "500",
        "--size",
        "64",
        "--connections",
        "2",
        "--window",
        "16",
        "--json",
    ];
    let stdout = node.ok("bench", &args, b"");
    let summary: serde_json::Value = serde_json::from_str(&stdout).expect("one JSON object");
    assert_eq!(summary["produce"]["records"], 500, "{summary}");
    assert_eq!(summary["produce"]["bytes"], 500 * 64, "{summary}");
    assert_eq!(
        (
            summary["produce"]["firstOffset"].as_u64(),
            summary["produce"]["lastOffset"].as_u64()
        ),
        (Some(0), Some(499))
    );
    assert_eq!(summary["consume"]["records"], 500, "{summary}");
    assert_eq!(summary["consume"]["bytes"], 500 * 64, "{summary}");
    let latency = &summary["produce"]["latencyUs"];
    let (p50, p99, max) = (
        latency["p50"].as_f64(),
        latency["p99"].as_f64(),
        latency["max"].as_f64(),
    );
    assert!(p50 > Some(0.0) && p50 <= p99 && p99 <= max, "{latency}");
    // The records really are in the log.
    assert!(node.ok("info", &[], b"").contains("next offset:    500\n"));
    let skipped = node.ok(
        "bench",
        &["--records", "10", "--skip-consume", "--json"],
        b"",
    );
    let summary: serde_json::Value = serde_json::from_str(&skipped).expect("one JSON object");
    assert_eq!(
        (
            summary["produce"]["records"].as_u64(),
            summary["consume"].is_null()
        ),
        (Some(10), true)
    );
}
