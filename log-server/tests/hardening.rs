//! The node's edges against clients that misbehave or merely differ: a cap
//! on connections, timeouts for idle connections, half-sent heads and
//! stalled bodies, HTTP/2 keepalive that closes dead peers, an early 413
//! from `Content-Length`, refusals that reach curl intact over HTTP/1.1 and
//! HTTP/2, and gRPC codes for messages tonic cannot decode.
//!
//! Method: a real server on 127.0.0.1:0 with small limits and short
//! timeouts, driven by raw TCP (hand-written HTTP/1.1 and HTTP/2 frames),
//! curl itself and a tonic client. Every wait is on a condition (a closed
//! socket, a response) bounded by a named timeout.

#[path = "common/counters.rs"]
mod counters;

use counters::counter;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use log_server::{Access, AccessPolicy, Action, Caller, LocalLog, ServerConfig};
use proto::v1::log_client::LogClient;
use proto::v1::{ProduceRequest, Record};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Longest any awaited condition may take before the test fails; far above
/// what it takes on a loaded 2-core machine, and far below the timeouts the
/// tests must show are not in force (an hour).
const CONDITION_TIMEOUT: Duration = Duration::from_secs(10);

/// A timeout that must never be what ends a test: if the server relied on
/// it, the test would hit [`CONDITION_TIMEOUT`] first.
const NEVER_MS: u64 = 3_600_000;

/// The short timeouts under test: long enough that a request sent at once
/// beats them, short enough that waiting for them is quick.
const SHORT_MS: u64 = 200;

struct Server {
    addr: SocketAddr,
    shutdown: CancellationToken,
    served: JoinHandle<std::io::Result<()>>,
    _dir: tempfile::TempDir,
}

impl Server {
    async fn start(config: ServerConfig) -> Self {
        Self::start_with(config, Access::open()).await
    }

    async fn start_with(config: ServerConfig, access: Access) -> Self {
        counters::counters();
        let dir = tempfile::tempdir().expect("tempdir");
        let log = log_core::Log::open(
            dir.path(),
            log_core::Config {
                record_bytes_max: 1 << 16,
                fsync: log_core::FsyncPolicy::Never,
                ..log_core::Config::default()
            },
        )
        .expect("open log");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let log = Arc::new(LocalLog::new(Arc::new(log), "n", &addr.to_string(), 1000));
        let shutdown = CancellationToken::new();
        let served = tokio::spawn(log_server::serve(
            listener,
            log,
            config,
            shutdown.clone(),
            None,
            access,
        ));
        Self {
            addr,
            shutdown,
            served,
            _dir: dir,
        }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(CONDITION_TIMEOUT, self.served)
            .await
            .expect("stopped in time")
            .expect("server task")
            .expect("server result");
    }
}

/// Timeouts that never fire, so each test turns on only what it checks.
fn patient() -> ServerConfig {
    ServerConfig {
        drain_timeout_ms: 2_000,
        header_read_timeout_ms: NEVER_MS,
        idle_timeout_ms: NEVER_MS,
        body_read_timeout_ms: NEVER_MS,
        http2_keepalive_interval_ms: NEVER_MS,
        http2_keepalive_timeout_ms: NEVER_MS,
        ..ServerConfig::default()
    }
}

/// Reads until the server closes the connection; what it sent.
async fn read_to_close(tcp: &mut TcpStream) -> Vec<u8> {
    let mut seen = Vec::new();
    let read = tokio::time::timeout(CONDITION_TIMEOUT, async {
        let mut buf = [0u8; 16 << 10];
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(
        read.is_ok(),
        "the server kept the connection open; it sent {:?}",
        String::from_utf8_lossy(&seen)
    );
    seen
}

/// One HTTP/1.1 exchange on a fresh connection: the status line's code
/// and the body after the head; `None` if the server closed without one.
async fn try_http1(addr: SocketAddr, request: &[u8]) -> Option<(u16, String)> {
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    // A refused connection may be closed before the request is written.
    let _ = tcp.write_all(request).await;
    let text = String::from_utf8_lossy(&read_to_close(&mut tcp).await).into_owned();
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok())?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned());
    Some((status, body.unwrap_or_default()))
}

async fn http1(addr: SocketAddr, request: &[u8]) -> (u16, String) {
    try_http1(addr, request)
        .await
        .expect("an HTTP/1.1 response")
}

/// An HTTP/1.1 POST of `body` as JSON to /v1/records, closing after.
fn post_json(body: &str) -> Vec<u8> {
    format!(
        "POST /v1/records HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Goal: with `connections_max` open, one more connection is closed at
/// once and counted, and once one closes a new client is served again.
/// Method: cap 4; four idle connections hold the cap; the fifth must see
/// end-of-file; then one of the four closes and a GET /healthz succeeds.
#[tokio::test]
async fn a_connection_over_the_cap_is_closed_at_once_and_counted() {
    let server = Server::start(ServerConfig {
        connections_max: 4,
        ..patient()
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(TcpStream::connect(server.addr).await.expect("connect"));
    }
    // Each held connection is served: it answers a request (and so counts).
    for tcp in &mut held {
        tcp.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .expect("send");
        let mut buf = [0u8; 12];
        tokio::time::timeout(CONDITION_TIMEOUT, tcp.read_exact(&mut buf))
            .await
            .expect("answered in time")
            .expect("read");
        assert_eq!(&buf, b"HTTP/1.1 200");
    }
    let before = counter("proglog_connections_refused_total");
    let mut over = TcpStream::connect(server.addr).await.expect("connect");
    assert!(
        read_to_close(&mut over).await.is_empty(),
        "closed unanswered"
    );
    assert_eq!(counter("proglog_connections_refused_total"), before + 1);

    drop(held.pop());
    // The freed slot is seen when the server notices the close; until then
    // a new connection may still be refused.
    let served = tokio::time::timeout(CONDITION_TIMEOUT, async {
        loop {
            let answer = try_http1(
                server.addr,
                b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
            )
            .await;
            if answer.is_some_and(|(status, _)| status == 200) {
                return;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(
        served.is_ok(),
        "a slot freed by a closed connection is reused"
    );
    server.stop().await;
}

/// Goal: a connection with no request in progress is closed after
/// `idle_timeout_ms`, whether it sent nothing or half a request head,
/// while a tail follower on the same server stays connected.
/// Method: open a silent connection, a half-head connection and an HTTP
/// follower at once; wait until the first two are closed; then produce and
/// see the follower receive the record (it outlived the same deadline).
#[tokio::test]
async fn idle_and_half_sent_connections_are_closed_but_followers_stay() {
    let server = Server::start(ServerConfig {
        idle_timeout_ms: SHORT_MS,
        ..patient()
    })
    .await;
    let mut follower = TcpStream::connect(server.addr).await.expect("connect");
    follower
        .write_all(b"GET /v1/records/stream HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .expect("send");
    let mut silent = TcpStream::connect(server.addr).await.expect("connect");
    let mut half = TcpStream::connect(server.addr).await.expect("connect");
    half.write_all(b"GET /v1/info HTTP/1.1\r\nhost:")
        .await
        .expect("send");
    assert!(read_to_close(&mut silent).await.is_empty());
    assert!(read_to_close(&mut half).await.is_empty());

    let (status, _) = http1(server.addr, &post_json(r#"{"record":{"value":"aGk="}}"#)).await;
    assert_eq!(status, 200);
    let mut seen = Vec::new();
    let got = tokio::time::timeout(CONDITION_TIMEOUT, async {
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&seen).contains("\"value\":\"aGk=\"") {
            let n = follower.read(&mut buf).await.expect("read");
            assert!(
                n > 0,
                "the follower was closed: {:?}",
                String::from_utf8_lossy(&seen)
            );
            seen.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    assert!(
        got.is_ok(),
        "follower got {:?}",
        String::from_utf8_lossy(&seen)
    );
    server.stop().await;
}

/// Goal: an HTTP/1 head that does not arrive within
/// `header_read_timeout_ms` closes the connection, even when the idle
/// timeout is far away.
#[tokio::test]
async fn a_slow_request_head_is_cut_off() {
    let server = Server::start(ServerConfig {
        header_read_timeout_ms: SHORT_MS,
        ..patient()
    })
    .await;
    let mut half = TcpStream::connect(server.addr).await.expect("connect");
    half.write_all(b"GET /v1/info HTTP/1.1\r\nhost:")
        .await
        .expect("send");
    read_to_close(&mut half).await;
    server.stop().await;
}

/// Goal: a request body that stops arriving fails the request with 408
/// and a JSON body after `body_read_timeout_ms`, and the connection closes.
#[tokio::test]
async fn a_stalled_body_is_refused_with_408() {
    let server = Server::start(ServerConfig {
        body_read_timeout_ms: SHORT_MS,
        ..patient()
    })
    .await;
    let (status, body) = http1(
        server.addr,
        b"POST /v1/records HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"record\":",
    )
    .await;
    assert_eq!(status, 408, "{body}");
    assert!(body.contains("\"code\":\"DEADLINE_EXCEEDED\""), "{body}");
    server.stop().await;
}

/// Goal: a body announced over `http_body_bytes_max` is refused with 413
/// at once, before any of it is sent.
/// Method: HTTP/1.1 head with `Content-Length: 20000000` and no body; the
/// body timeout is an hour, so a server waiting for the body would miss
/// the condition timeout.
#[tokio::test]
async fn an_announced_oversize_body_is_refused_before_it_is_sent() {
    let server = Server::start(patient()).await;
    let (status, body) = http1(
        server.addr,
        b"POST /v1/records HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 20000000\r\n\r\n",
    )
    .await;
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("\"code\":\"RESOURCE_EXHAUSTED\""), "{body}");
    assert!(body.contains("20000000"), "{body}");
    server.stop().await;
}

/// An HTTP/2 frame: length, type, flags, stream id, payload.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut out = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// HPACK literal header fields without indexing (names and values < 127
/// bytes, no Huffman).
fn hpack(headers: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in headers {
        out.push(0);
        out.push(name.len() as u8);
        out.extend_from_slice(name.as_bytes());
        out.push(value.len() as u8);
        out.extend_from_slice(value.as_bytes());
    }
    out
}

/// Goal: an HTTP/2 peer that stops answering keepalive pings is closed,
/// even with a request in progress (so the idle timeout does not apply).
/// Method: a hand-written HTTP/2 client opens a tail-follow stream and
/// then only reads: it never acknowledges a PING. The server must ping
/// and then close the connection.
#[tokio::test]
async fn an_http2_peer_that_ignores_pings_is_closed() {
    let server = Server::start(ServerConfig {
        http2_keepalive_interval_ms: SHORT_MS,
        http2_keepalive_timeout_ms: SHORT_MS,
        ..patient()
    })
    .await;
    let mut tcp = TcpStream::connect(server.addr).await.expect("connect");
    let mut hello = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    hello.extend(frame(0x4, 0, 0, &[])); // SETTINGS
    hello.extend(frame(0x4, 0x1, 0, &[])); // SETTINGS ACK (of the server's)
    let headers = hpack(&[
        (":method", "GET"),
        (":scheme", "http"),
        (":path", "/v1/records/stream"),
        (":authority", "x"),
    ]);
    hello.extend(frame(0x1, 0x4 | 0x1, 1, &headers)); // HEADERS, END_HEADERS | END_STREAM
    tcp.write_all(&hello).await.expect("send");
    let seen = read_to_close(&mut tcp).await;
    // Walk the frames: the server must have pinged before closing.
    let mut rest = &seen[..];
    let mut pinged = false;
    while rest.len() >= 9 {
        let len = (usize::from(rest[0]) << 16) | (usize::from(rest[1]) << 8) | usize::from(rest[2]);
        pinged |= rest[3] == 0x6 && rest[4] & 0x1 == 0;
        rest = &rest[(9 + len).min(rest.len())..];
    }
    assert!(pinged, "no PING before the close");
    server.stop().await;
}

/// Refuses every call (plaintext callers are anonymous: 401).
struct DenyAll;

impl AccessPolicy for DenyAll {
    fn allows(&self, _caller: &Caller, action: Action) -> bool {
        action == Action::Consume
    }
}

/// Runs curl with `args` against `url`; its exit code, `%{http_code}` and
/// the response body.
fn curl(args: &[String], url: &str) -> (i32, String, String) {
    let out = std::process::Command::new("curl")
        .args(["-sS", "-o", "-", "-w", "\n%{http_code}"])
        .args(args)
        .arg(url)
        .output()
        .expect("curl runs (install it: apt-get install curl)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (
        out.status.code().unwrap_or(-1),
        code.to_owned(),
        format!("{body}{}", String::from_utf8_lossy(&out.stderr)),
    )
}

/// Goal: refusals of requests with bodies reach curl intact, as a status
/// and a JSON body with exit code 0, over HTTP/1.1 and HTTP/2 (prior
/// knowledge), for a policy refusal (401), a wrong content type (415) and
/// bodies over the limit with and without `Content-Length` (413).
/// Method: curl itself (7.88 fails with "(92) Stream error in the HTTP/2
/// framing layer" when the server resets a stream it answered early).
#[tokio::test]
async fn refusals_reach_curl_intact_over_http1_and_http2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let big = dir.path().join("big.json");
    // Four times the body limit below; valid JSON so only size refuses it.
    let value = "A".repeat(4 << 20);
    std::fs::write(&big, format!("{{\"record\":{{\"value\":\"{value}\"}}}}")).expect("write");
    let big = format!("@{}", big.display());
    // Under the limit, but far over an HTTP/2 stream's first window.
    let medium = dir.path().join("medium.json");
    let value = "A".repeat(512 << 10);
    std::fs::write(&medium, format!("{{\"record\":{{\"value\":\"{value}\"}}}}")).expect("write");
    let medium = format!("@{}", medium.display());
    let small = r#"{"record":{"value":"aGk="}}"#;
    let config = ServerConfig {
        http_body_bytes_max: 1 << 20,
        ..patient()
    };
    let open = Server::start(config.clone()).await;
    let closed = Server::start_with(
        config,
        Access {
            policy: Arc::new(DenyAll),
            ..Access::open()
        },
    )
    .await;
    let json = "content-type: application/json";
    let cases: [(&Server, Vec<&str>, &str, &str); 5] = [
        (
            &closed,
            vec!["-H", json, "--data-binary", small],
            "401",
            "UNAUTHENTICATED",
        ),
        (
            &closed,
            vec!["-H", json, "--data-binary", medium.as_str()],
            "401",
            "UNAUTHENTICATED",
        ),
        (
            &open,
            vec![
                "-H",
                "content-type: text/plain",
                "--data-binary",
                medium.as_str(),
            ],
            "415",
            "INVALID_ARGUMENT",
        ),
        (
            &open,
            vec!["-H", json, "--data-binary", big.as_str()],
            "413",
            "RESOURCE_EXHAUSTED",
        ),
        (
            &open,
            vec![
                "-H",
                json,
                "-H",
                "transfer-encoding: chunked",
                "--data-binary",
                big.as_str(),
            ],
            "413",
            "RESOURCE_EXHAUSTED",
        ),
    ];
    for (server, args, status, code) in &cases {
        for protocol in ["--http1.1", "--http2-prior-knowledge"] {
            if protocol == "--http2-prior-knowledge" && args.contains(&"transfer-encoding: chunked")
            {
                continue; // not an HTTP/2 header
            }
            let url = format!("http://{}/v1/records", server.addr);
            let mut all: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
            all.push(protocol.to_owned());
            let (exit, got, body) = tokio::task::spawn_blocking(move || curl(&all, &url))
                .await
                .expect("curl");
            assert_eq!(
                (exit, got.as_str()),
                (0, *status),
                "{protocol} {args:?}: {body}"
            );
            assert!(
                body.contains(&format!("\"code\":\"{code}\"")),
                "{protocol} {args:?}: {body}"
            );
        }
    }
    open.stop().await;
    closed.stop().await;
}

/// Goal: gRPC refusals of messages tonic cannot decode use this API's
/// codes: over the message limit is RESOURCE_EXHAUSTED (unary and
/// streamed), not OUT_OF_RANGE; bytes that are not protobuf are
/// INVALID_ARGUMENT, not INTERNAL.
#[tokio::test]
async fn undecodable_grpc_messages_get_resource_exhausted_and_invalid_argument() {
    let server = Server::start(ServerConfig {
        grpc_message_bytes_max: 64 << 10,
        ..patient()
    })
    .await;
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", server.addr))
        .expect("endpoint")
        .connect()
        .await
        .expect("connect");
    let mut client = LogClient::new(channel).max_encoding_message_size(1 << 20);
    let oversize = ProduceRequest {
        record: Some(Record {
            value: vec![0; 200 << 10].into(),
            ..Record::default()
        }),
        ..Default::default()
    };
    let status = client
        .produce(oversize.clone())
        .await
        .expect_err("over the limit");
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("65536"), "{status:?}");
    let streamed = async {
        let mut responses = client
            .produce_stream(tokio_stream::iter([oversize]))
            .await?
            .into_inner();
        while responses.message().await?.is_some() {}
        Ok::<_, tonic::Status>(())
    };
    let status = streamed.await.expect_err("over the limit");
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");

    // A gRPC frame whose message is a truncated length-delimited field.
    let dir = tempfile::tempdir().expect("tempdir");
    let body = dir.path().join("frame");
    std::fs::write(&body, [0, 0, 0, 0, 2, 0x0a, 0xff]).expect("write");
    let url = format!("http://{}/proglog.v1.Log/Produce", server.addr);
    let body = format!("@{}", body.display());
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("curl")
            .args([
                "-sS",
                "-D",
                "-",
                "-o",
                "/dev/null",
                "--http2-prior-knowledge",
            ])
            .args(["-H", "content-type: application/grpc", "-H", "te: trailers"])
            .args(["--data-binary", &body, &url])
            .output()
            .expect("curl runs")
    })
    .await
    .expect("curl");
    let head = String::from_utf8_lossy(&out.stdout).to_lowercase();
    assert!(head.contains("grpc-status: 3\r\n"), "{head}");
    server.stop().await;
}
