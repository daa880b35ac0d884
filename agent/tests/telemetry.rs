//! Logs and traces of a real `proglog agent` process.
//!
//! Goal: a request's spans reach an OTLP collector as part of the caller's
//! trace, and JSON log lines carry the request span's fields so they can be
//! joined to that trace. Method: run the binary as a child process (its
//! global subscriber is its own), talk to it over gRPC and HTTP with
//! `traceparent` headers, and read its stderr and an in-process collector.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, Span, span::SpanKind};

/// Longest a node may take to start, answer or stop, and spans to arrive
/// after it stopped (it exports them before exiting): generous for a loaded
/// CI machine, short enough that a missing span fails the test soon.
const TIMEOUT: Duration = Duration::from_secs(20);

/// The caller's trace and span ids in the tests' `traceparent` headers.
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_SPAN_ID: &str = "00f067aa0ba902b7";

fn traceparent(trace_id: &str) -> String {
    format!("00-{trace_id}-{PARENT_SPAN_ID}-01")
}

fn proglog() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_proglog"));
    // Keep the test's own environment from configuring the node.
    for (key, _) in std::env::vars() {
        if key.starts_with("PROGLOG_") || key == "RUST_LOG" {
            command.env_remove(key);
        }
    }
    command
}

/// A node whose stderr lines arrive on a channel; killed on drop.
struct Node {
    child: Child,
    lines: mpsc::Receiver<String>,
    addr: String,
}

impl Node {
    fn start(data_dir: &Path, extra: &[&str]) -> Self {
        let mut child = proglog()
            .args(["agent", "--rpc-addr", "127.0.0.1:0", "--log-format", "json"])
            .args(["--fsync", "never", "--data-dir"])
            .arg(data_dir)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn proglog agent");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let mut node = Self {
            child,
            lines,
            addr: String::new(),
        };
        let listening =
            node.next_line_where(|line| line["message"] == "listening for gRPC and HTTP");
        node.addr = listening["addr"].as_str().expect("addr").to_owned();
        node
    }

    /// The next line satisfying `wanted`; every line on the way must be
    /// one JSON object.
    fn next_line_where(&self, wanted: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .expect("the wanted log line within the timeout");
            let value: serde_json::Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
            assert!(value.is_object(), "not a JSON object: {line}");
            if wanted(&value) {
                return value;
            }
        }
    }

    /// Sends SIGTERM and waits for a successful exit.
    fn stop(&mut self) {
        let status = Command::new("kill")
            .args(["-s", "TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                assert!(status.success(), "node exited with {status}");
                return;
            }
            assert!(Instant::now() < deadline, "node did not exit");
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

/// An OTLP/gRPC trace collector that forwards what it receives.
struct Collector {
    received: std::sync::Mutex<mpsc::Sender<ResourceSpans>>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let received = self.received.lock().expect("collector lock");
        for spans in request.into_inner().resource_spans {
            let _ = received.send(spans);
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

/// Starts a collector on 127.0.0.1:0 on `runtime`; returns its address and
/// what it receives.
fn start_collector(
    runtime: &tokio::runtime::Runtime,
) -> (SocketAddr, mpsc::Receiver<ResourceSpans>) {
    let (tx, rx) = mpsc::channel();
    let collector = Collector {
        received: std::sync::Mutex::new(tx),
    };
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind collector");
    let addr = listener.local_addr().expect("collector addr");
    runtime.spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(collector))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    (addr, rx)
}

fn attribute<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a any_value::Value> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|value: &AnyValue| value.value.as_ref())
}

fn string_attribute(attributes: &[KeyValue], key: &str) -> Option<String> {
    match attribute(attributes, key) {
        Some(any_value::Value::StringValue(s)) => Some(s.clone()),
        _ => None,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn a_produce_is_exported_as_a_child_of_the_callers_trace_with_its_append() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let (collector, received) = start_collector(&runtime);
    let dir = tempfile::tempdir().expect("tempdir");
    let endpoint = format!("http://{collector}");
    let mut node = Node::start(
        dir.path(),
        &[
            "--node-name",
            "traced-node",
            "--otlp-endpoint",
            &endpoint,
            "--otlp-sampling-ratio",
            "0.0",
        ],
    );

    runtime.block_on(async {
        let mut client = proto::v1::log_client::LogClient::connect(format!("http://{}", node.addr))
            .await
            .expect("connect");
        let mut request = tonic::Request::new(proto::v1::ProduceRequest {
            record: Some(proto::v1::Record {
                value: bytes::Bytes::from_static(b"traced"),
                ..proto::v1::Record::default()
            }),
            ..Default::default()
        });
        request.metadata_mut().insert(
            "traceparent",
            traceparent(TRACE_ID).parse().expect("metadata"),
        );
        client.produce(request).await.expect("produce");
    });
    // Spans are batched for seconds; a clean stop must export the rest.
    node.stop();

    // Ratio 0.0 samples no new trace: only the caller's sampled trace is
    // exported, so every span here belongs to it.
    let mut spans: Vec<Span> = Vec::new();
    let deadline = Instant::now() + TIMEOUT;
    let (request, append) = loop {
        let request = spans.iter().find(|s| {
            s.name == "request"
                && string_attribute(&s.attributes, "method").as_deref()
                    == Some("proglog.v1.Log/Produce")
        });
        let append = request.and_then(|request| {
            spans
                .iter()
                .find(|s| s.name == "append" && s.parent_span_id == request.span_id)
        });
        if let (Some(request), Some(append)) = (request, append) {
            break (request.clone(), append.clone());
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let resource_spans = received
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no request span with an append child; got {spans:#?}"));
        let resource = resource_spans.resource.expect("resource").attributes;
        assert_eq!(
            string_attribute(&resource, "service.name").as_deref(),
            Some("proglog")
        );
        assert_eq!(
            string_attribute(&resource, "service.instance.id").as_deref(),
            Some("traced-node")
        );
        spans.extend(resource_spans.scope_spans.into_iter().flat_map(|s| s.spans));
    };

    assert_eq!(hex(&request.trace_id), TRACE_ID, "the caller's trace");
    assert_eq!(
        hex(&request.parent_span_id),
        PARENT_SPAN_ID,
        "the caller's span"
    );
    assert_eq!(request.kind, SpanKind::Server as i32);
    assert_eq!(
        string_attribute(&request.attributes, "protocol").as_deref(),
        Some("grpc")
    );
    assert_eq!(hex(&append.trace_id), TRACE_ID);
    assert_eq!(
        attribute(&append.attributes, "records"),
        Some(&any_value::Value::IntValue(1))
    );
    assert!(
        spans.iter().all(|s| hex(&s.trace_id) == TRACE_ID),
        "an unsampled trace was exported: {spans:#?}"
    );
}

#[test]
fn json_log_lines_carry_the_request_span_and_the_callers_trace_id() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = Node::start(dir.path(), &["--log-level", "debug"]);
    let finished = |method: &'static str| {
        move |line: &serde_json::Value| {
            line["message"] == "request finished" && line["span"]["method"] == method
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let http = reqwest::Client::new();
    let base = format!("http://{}", node.addr);
    let get = |path: &str, trace_id: Option<&str>| {
        let mut request = http.get(format!("{base}{path}"));
        if let Some(trace_id) = trace_id {
            request = request.header("traceparent", traceparent(trace_id));
        }
        let response = runtime.block_on(request.send()).expect("GET");
        assert!(response.status().is_success(), "GET {path}");
        runtime.block_on(response.text()).expect("body")
    };

    // A probe first: it must leave no debug line behind.
    get("/healthz", None);
    let response = runtime
        .block_on(
            http.post(format!("{base}/v1/records"))
                .header("traceparent", traceparent(TRACE_ID))
                .json(&serde_json::json!({ "record": { "value": "aGk=" } }))
                .send(),
        )
        .expect("produce");
    assert_eq!(response.status().as_u16(), 200);
    let produced = node.next_line_where(|line| {
        finished("GET /healthz")(line) || finished("POST /v1/records")(line)
    });
    assert_eq!(produced["span"]["method"], "POST /v1/records", "{produced}");
    assert_eq!(produced["span"]["name"], "request");
    assert_eq!(produced["span"]["protocol"], "http");
    assert_eq!(produced["span"]["trace_id"], TRACE_ID);
    assert_eq!(produced["status"], 200);
    assert_eq!(produced["level"], "DEBUG");
    assert!(produced["latency_ms"].as_f64().is_some(), "{produced}");

    // Routes are named by their pattern, not the concrete path.
    let other_trace = "0af7651916cd43dd8448eb211c80319c";
    get("/v1/records/0", Some(other_trace));
    let consumed = node.next_line_where(finished("GET /v1/records/{offset}"));
    assert_eq!(consumed["span"]["trace_id"], other_trace);

    // The CLI sends its own random traceparent over gRPC.
    let info = proglog()
        .args(["info", "--addr", &node.addr])
        .output()
        .expect("proglog info");
    assert!(info.status.success(), "{info:?}");
    let grpc = node.next_line_where(finished("proglog.v1.Log/GetLogInfo"));
    assert_eq!(grpc["span"]["protocol"], "grpc");
    assert_eq!(grpc["status"], 0, "gRPC OK");
    let trace_id = grpc["span"]["trace_id"].as_str().expect("trace_id");
    assert_eq!(trace_id.len(), 32, "{grpc}");
    assert!(trace_id.bytes().all(|b| b.is_ascii_hexdigit()) && trace_id != "0".repeat(32));
}
