//! One mapping of refusals for both protocols, route by route: every HTTP
//! refusal has a JSON body `{"error":{"code","message"}}` whose `code` is
//! the gRPC code the same refusal gets over gRPC, and every status in
//! docs/api.md's table has one.
//!
//! Method: a real server on 127.0.0.1:0 (and one whose handshake names
//! every caller `reader`, allowed only to consume); each row of the table
//! is sent over HTTP (reqwest) and, where gRPC has the same call, over
//! gRPC (tonic).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use log_server::transport::{Handshaken, Io};
use log_server::{Access, AccessPolicy, Action, Caller, Handshake, LocalLog, ServerConfig};
use proto::v1::log_client::LogClient;
use proto::v1::{ConsumeRequest, ProduceBatchRequest, ProduceRequest, Record};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tonic::Code;

/// Largest HTTP body the server takes in these tests, bytes.
const BODY_BYTES_MAX: usize = 256 << 10;

/// Largest record payload, bytes (under the body limit, so a record over
/// it is refused for its size, not the body's).
const RECORD_BYTES_MAX: u64 = 64 << 10;

/// Names every caller `reader`.
struct Reader;

impl Handshake for Reader {
    fn handshake(
        &self,
        tcp: TcpStream,
    ) -> Pin<Box<dyn Future<Output = std::io::Result<Handshaken>> + Send>> {
        Box::pin(async move { Ok((Box::new(tcp) as Box<dyn Io>, Some("reader".to_owned()))) })
    }
}

/// Consume only; anonymous callers nothing.
struct ConsumeOnly;

impl AccessPolicy for ConsumeOnly {
    fn allows(&self, caller: &Caller, action: Action) -> bool {
        caller.subject.is_some() && action == Action::Consume
    }
}

struct Server {
    addr: SocketAddr,
    shutdown: CancellationToken,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn start(access: Access) -> Server {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = log_core::Log::open(
        dir.path(),
        log_core::Config {
            record_bytes_max: RECORD_BYTES_MAX,
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
    tokio::spawn(log_server::serve(
        listener,
        log,
        ServerConfig {
            http_body_bytes_max: BODY_BYTES_MAX,
            ..ServerConfig::default()
        },
        shutdown.clone(),
        None,
        access,
    ));
    Server {
        addr,
        shutdown,
        _dir: dir,
    }
}

/// What one HTTP row sends.
struct Row {
    name: &'static str,
    method: reqwest::Method,
    path: String,
    content_type: Option<&'static str>,
    body: Option<reqwest::Body>,
    header: Option<(&'static str, String)>,
}

fn row(name: &'static str, method: reqwest::Method, path: &str) -> Row {
    Row {
        name,
        method,
        path: path.to_owned(),
        content_type: None,
        body: None,
        header: None,
    }
}

impl Row {
    fn json(mut self, body: impl Into<String>) -> Self {
        self.content_type = Some("application/json");
        self.body = Some(reqwest::Body::from(body.into()));
        self
    }
}

/// Sends `row`; its status, content type and the body's error code.
async fn send(server: &Server, row: Row) -> (u16, String, String) {
    let mut request =
        reqwest::Client::new().request(row.method, format!("http://{}{}", server.addr, row.path));
    if let Some(content_type) = row.content_type {
        request = request.header("content-type", content_type);
    }
    if let Some((name, value)) = row.header {
        request = request.header(name, value);
    }
    if let Some(body) = row.body {
        request = request.body(body);
    }
    let response = request.send().await.expect(row.name);
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let text = response.text().await.expect(row.name);
    let body: serde_json::Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{}: {status} body {text:?} is not JSON: {e}", row.name));
    let message = body["error"]["message"].as_str().unwrap_or("");
    assert!(!message.is_empty(), "{}: no message in {text}", row.name);
    let code = body["error"]["code"].as_str().unwrap_or("").to_owned();
    (status, content_type, code)
}

fn base64_of(len: usize) -> String {
    // 3 zero bytes are "AAAA".
    "AAAA".repeat(len.div_ceil(3))
}

/// Goal: every HTTP refusal names the code its gRPC twin gets, in a JSON
/// body, with the status docs/api.md gives it.
#[tokio::test]
async fn every_http_refusal_names_its_grpc_code_route_by_route() {
    use reqwest::Method;
    let server = start(Access::open()).await;
    let reader = start(Access {
        handshake: Arc::new(Reader),
        policy: Arc::new(ConsumeOnly),
    })
    .await;
    let anonymous = start(Access {
        policy: Arc::new(ConsumeOnly),
        ..Access::open()
    })
    .await;
    let oversize_record = format!(
        r#"{{"record":{{"value":"{}"}}}}"#,
        base64_of(RECORD_BYTES_MAX as usize + 1)
    );
    let oversize_body = format!(
        r#"{{"record":{{"value":"{}"}}}}"#,
        base64_of(BODY_BYTES_MAX)
    );
    let chunked = {
        let chunks: Vec<Result<String, std::io::Error>> =
            vec![Ok(oversize_body.clone()), Ok(String::new())];
        reqwest::Body::wrap_stream(futures_util::stream::iter(chunks))
    };
    let rows: Vec<(&Server, Row, u16, &str)> = vec![
        (
            &server,
            Row {
                content_type: Some("text/plain"),
                body: Some("x".into()),
                ..row("wrong content type", Method::POST, "/v1/records")
            },
            415,
            "INVALID_ARGUMENT",
        ),
        (
            &server,
            row("malformed JSON", Method::POST, "/v1/records").json("{"),
            400,
            "INVALID_ARGUMENT",
        ),
        (
            &server,
            row("unknown field", Method::POST, "/v1/records").json(r#"{"record":{},"x":1}"#),
            400,
            "INVALID_ARGUMENT",
        ),
        (
            &server,
            row("bad base64", Method::POST, "/v1/records").json(r#"{"record":{"value":"%%"}}"#),
            400,
            "INVALID_ARGUMENT",
        ),
        (
            &server,
            row("record over the limit", Method::POST, "/v1/records").json(oversize_record),
            413,
            "INVALID_ARGUMENT",
        ),
        (
            &server,
            row("body over the limit", Method::POST, "/v1/records").json(oversize_body),
            413,
            "RESOURCE_EXHAUSTED",
        ),
        (
            &server,
            Row {
                content_type: Some("application/json"),
                body: Some(chunked),
                ..row("chunked body over the limit", Method::POST, "/v1/records")
            },
            413,
            "RESOURCE_EXHAUSTED",
        ),
        (
            &server,
            row("empty batch", Method::POST, "/v1/records/batch").json(r#"{"records":[]}"#),
            400,
            "INVALID_ARGUMENT",
        ),
        (
            &server,
            row("bad offset", Method::GET, "/v1/records/abc"),
            400,
            "INVALID_ARGUMENT",
        ),
        (
            &server,
            row("offset past the end", Method::GET, "/v1/records/99"),
            404,
            "OUT_OF_RANGE",
        ),
        (
            &server,
            row("unknown query", Method::GET, "/v1/records?bogus=1"),
            400,
            "INVALID_ARGUMENT",
        ),
        (
            &server,
            row(
                "follow past the end",
                Method::GET,
                "/v1/records/stream?from=99",
            ),
            404,
            "OUT_OF_RANGE",
        ),
        (
            &server,
            row("no such route", Method::GET, "/v1/nope"),
            404,
            "UNIMPLEMENTED",
        ),
        (
            &server,
            row("wrong method", Method::DELETE, "/v1/records"),
            405,
            "UNIMPLEMENTED",
        ),
        (
            &server,
            row(
                "GET of a gRPC method",
                Method::GET,
                "/proglog.v1.Log/Produce",
            ),
            415,
            "INVALID_ARGUMENT",
        ),
        (
            &server,
            row(
                "target too long",
                Method::GET,
                &format!("/v1/{}", "a".repeat(10 << 10)),
            ),
            414,
            "RESOURCE_EXHAUSTED",
        ),
        (
            &server,
            Row {
                header: Some(("x-big", "b".repeat(40 << 10))),
                ..row("headers too large", Method::GET, "/v1/info")
            },
            431,
            "RESOURCE_EXHAUSTED",
        ),
        (
            &reader,
            row("not allowed", Method::POST, "/v1/records").json(r#"{"record":{}}"#),
            403,
            "PERMISSION_DENIED",
        ),
        (
            &anonymous,
            row("no identity", Method::POST, "/v1/records").json(r#"{"record":{}}"#),
            401,
            "UNAUTHENTICATED",
        ),
    ];
    let mut wrong = Vec::new();
    for (server, row, status, code) in rows {
        let name = row.name;
        let (got_status, content_type, got_code) = send(server, row).await;
        assert!(
            content_type.starts_with("application/json"),
            "{name}: {content_type}"
        );
        if (got_status, got_code.as_str()) != (status, code) {
            wrong.push(format!(
                "{name}: got {got_status} {got_code}, want {status} {code}"
            ));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

fn code<T>(result: Result<tonic::Response<T>, tonic::Status>) -> Code {
    match result {
        Ok(_) => Code::Ok,
        Err(status) => status.code(),
    }
}

async fn client(server: &Server) -> LogClient<tonic::transport::Channel> {
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", server.addr))
        .expect("endpoint")
        .connect()
        .await
        .expect("connect");
    LogClient::new(channel)
}

/// Goal: the gRPC twins of the HTTP rows get the codes the HTTP bodies
/// name.
#[tokio::test]
async fn the_grpc_twins_get_the_same_codes() {
    let server = start(Access::open()).await;
    let reader = start(Access {
        handshake: Arc::new(Reader),
        policy: Arc::new(ConsumeOnly),
    })
    .await;
    let anonymous = start(Access {
        policy: Arc::new(ConsumeOnly),
        ..Access::open()
    })
    .await;
    let record = |len: usize| ProduceRequest {
        record: Some(Record {
            value: vec![0; len].into(),
            ..Record::default()
        }),
        ..Default::default()
    };
    let mut open = client(&server).await;
    let cases = [
        (
            "record over the limit",
            code(open.produce(record(RECORD_BYTES_MAX as usize + 1)).await),
            Code::InvalidArgument,
        ),
        (
            "empty batch",
            code(open.produce_batch(ProduceBatchRequest::default()).await),
            Code::InvalidArgument,
        ),
        (
            "offset past the end",
            code(open.consume(ConsumeRequest { offset: 99 }).await),
            Code::OutOfRange,
        ),
        (
            "not allowed",
            code(client(&reader).await.produce(record(1)).await),
            Code::PermissionDenied,
        ),
        (
            "no identity",
            code(client(&anonymous).await.produce(record(1)).await),
            Code::Unauthenticated,
        ),
    ];
    for (name, got, want) in cases {
        assert_eq!(got, want, "{name}");
    }
    // An unknown method, by hand (no generated client has one): a
    // trailers-only answer, so its status is in the response head.
    let url = format!("http://{}/proglog.v1.Log/NoSuchMethod", server.addr);
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
            .args(["--data-binary", "", &url])
            .output()
            .expect("curl runs (install it: apt-get install curl)")
    })
    .await
    .expect("curl");
    let head = String::from_utf8_lossy(&out.stdout).to_lowercase();
    assert!(head.contains("grpc-status: 12\r\n"), "{head}");
}
