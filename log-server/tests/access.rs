//! Authorization: for every principal × action of a policy table, gRPC and
//! HTTP results equal the table; refused calls write and reveal nothing.
//!
//! Method: one server per principal, whose handshake stamps every connection
//! with that principal's subject (what TLS does with a client certificate),
//! and a table policy. Health stays public for everyone. The last test makes
//! every gRPC method (the Log service, reflection v1 and v1alpha, health)
//! and HTTP route ([`CALLS`]) as every principal.

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use common::{TestServer, record};
use futures_util::StreamExt as _;
use log_server::{Access, AccessPolicy, Action, Caller, Handshake};
use proto::v1::{
    ConsumeBatchRequest, ConsumeRequest, GetLogInfoRequest, GetServersRequest, ProduceBatchRequest,
    ProduceRequest,
};
use tonic::Code;

/// Stamps every connection with one subject.
struct Stamp(Option<String>);

impl Handshake for Stamp {
    fn handshake(
        &self,
        tcp: tokio::net::TcpStream,
    ) -> std::pin::Pin<
        Box<
            dyn std::future::Future<Output = std::io::Result<log_server::transport::Handshaken>>
                + Send,
        >,
    > {
        let subject = self.0.clone();
        Box::pin(async move { Ok((Box::new(tcp) as Box<dyn log_server::transport::Io>, subject)) })
    }
}

/// Who may do what.
struct Table(HashMap<&'static str, Vec<Action>>);

impl AccessPolicy for Table {
    fn allows(&self, caller: &Caller, action: Action) -> bool {
        caller
            .subject
            .as_deref()
            .and_then(|s| self.0.get(s))
            .is_some_and(|actions| actions.contains(&action))
    }
}

fn table() -> Arc<Table> {
    Arc::new(Table(HashMap::from([
        (
            "root",
            vec![Action::Produce, Action::Consume, Action::Admin],
        ),
        ("reader", vec![Action::Consume]),
        ("writer", vec![Action::Produce]),
        ("nobody", vec![]),
    ])))
}

async fn server_for(dir: &std::path::Path, subject: Option<&str>) -> TestServer {
    let access = Access {
        handshake: Arc::new(Stamp(subject.map(str::to_owned))),
        policy: table(),
    };
    TestServer::start_with_access(
        dir,
        common::log_config(),
        log_server::ServerConfig::default(),
        access,
    )
    .await
}

#[tokio::test]
async fn grpc_and_http_results_equal_the_policy_table() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Seed one record as root so consumers have something to (not) see.
    let root = server_for(dir.path(), Some("root")).await;
    root.client()
        .await
        .produce(ProduceRequest {
            record: Some(record(b"secret")),
            ..Default::default()
        })
        .await
        .expect("root produces");
    root.stop().await;

    let http = reqwest::Client::new();
    for principal in ["root", "reader", "writer", "nobody"] {
        let allowed = table().0[principal].clone();
        let server = server_for(dir.path(), Some(principal)).await;
        let mut client = server.client().await;
        let before = server.log.next_offset();

        let produced = client
            .produce(ProduceRequest {
                record: Some(record(b"x")),
                ..Default::default()
            })
            .await;
        let http_produced = http
            .post(server.url("/v1/records"))
            .header("content-type", "application/json")
            .body(r#"{"record":{"value":"eA=="}}"#)
            .send()
            .await
            .expect("http produce");
        if allowed.contains(&Action::Produce) {
            produced.expect("allowed produce");
            assert_eq!(http_produced.status(), 200, "{principal}");
            assert_eq!(server.log.next_offset(), before + 2, "{principal}");
        } else {
            assert_eq!(
                produced.expect_err("denied").code(),
                Code::PermissionDenied,
                "{principal}"
            );
            assert_eq!(http_produced.status(), 403, "{principal}");
            assert_eq!(
                server.log.next_offset(),
                before,
                "{principal}: a denied produce wrote"
            );
        }

        let consumed = client.consume(ConsumeRequest { offset: 0 }).await;
        let info = client.get_log_info(GetLogInfoRequest {}).await;
        let http_consumed = http
            .get(server.url("/v1/records/0"))
            .send()
            .await
            .expect("http consume");
        let status = http_consumed.status();
        let body = http_consumed.text().await.expect("body");
        if allowed.contains(&Action::Consume) {
            assert_eq!(
                &consumed
                    .expect("allowed consume")
                    .into_inner()
                    .record
                    .expect("record")
                    .value[..],
                b"secret"
            );
            info.expect("allowed info");
            assert_eq!(status, 200, "{principal}");
        } else {
            assert_eq!(
                consumed.expect_err("denied").code(),
                Code::PermissionDenied,
                "{principal}"
            );
            assert_eq!(
                info.expect_err("denied").code(),
                Code::PermissionDenied,
                "{principal}"
            );
            assert_eq!(status, 403, "{principal}");
            assert!(
                !body.contains("c2VjcmV0"),
                "{principal}: a denied read revealed the record"
            );
        }

        let metrics = http
            .get(server.url("/metrics"))
            .send()
            .await
            .expect("metrics")
            .status();
        assert_eq!(
            metrics == 403,
            !allowed.contains(&Action::Admin),
            "{principal}: /metrics is admin-only"
        );
        // Health is public for everyone.
        assert_eq!(
            http.get(server.url("/readyz"))
                .send()
                .await
                .expect("readyz")
                .status(),
            200
        );
        drop(client);
        server.stop().await;
    }
}

#[tokio::test]
async fn a_caller_without_identity_is_unauthenticated_not_forbidden() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = server_for(dir.path(), None).await;
    let mut client = server.client().await;
    let error = client
        .produce(ProduceRequest {
            record: Some(record(b"x")),
            ..Default::default()
        })
        .await
        .expect_err("anonymous");
    assert_eq!(error.code(), Code::Unauthenticated);
    let response = reqwest::get(server.url("/v1/info")).await.expect("http");
    assert_eq!(response.status(), 401);
    assert!(
        response
            .text()
            .await
            .expect("body")
            .contains("authentication required")
    );
    assert_eq!(
        reqwest::get(server.url("/healthz"))
            .await
            .expect("healthz")
            .status(),
        200
    );
    server.stop().await;
}

/// Every gRPC method of the Log service and every HTTP route, with the
/// action it needs (`None`: public).
#[derive(Debug, Clone, Copy)]
enum Call {
    GrpcProduce,
    GrpcProduceBatch,
    GrpcProduceStream,
    GrpcConsume,
    GrpcConsumeBatch,
    GrpcConsumeStream,
    GrpcGetLogInfo,
    GrpcGetServers,
    GrpcReflectionV1,
    GrpcReflectionV1Alpha,
    GrpcHealth,
    HttpProduce,
    HttpProduceBatch,
    HttpRange,
    HttpConsume,
    HttpFollow,
    HttpInfo,
    HttpServers,
    HttpMetrics,
    HttpUnknownRoute,
    HttpHealthz,
    HttpReadyz,
}

const CALLS: [Call; 22] = [
    Call::GrpcProduce,
    Call::GrpcProduceBatch,
    Call::GrpcProduceStream,
    Call::GrpcConsume,
    Call::GrpcConsumeBatch,
    Call::GrpcConsumeStream,
    Call::GrpcGetLogInfo,
    Call::GrpcGetServers,
    Call::GrpcReflectionV1,
    Call::GrpcReflectionV1Alpha,
    Call::GrpcHealth,
    Call::HttpProduce,
    Call::HttpProduceBatch,
    Call::HttpRange,
    Call::HttpConsume,
    Call::HttpFollow,
    Call::HttpInfo,
    Call::HttpServers,
    Call::HttpMetrics,
    Call::HttpUnknownRoute,
    Call::HttpHealthz,
    Call::HttpReadyz,
];

impl Call {
    /// The action the call needs, per docs/api.md and the access module.
    fn needs(self) -> Option<Action> {
        match self {
            Self::GrpcProduce
            | Self::GrpcProduceBatch
            | Self::GrpcProduceStream
            | Self::HttpProduce
            | Self::HttpProduceBatch => Some(Action::Produce),
            Self::GrpcConsume
            | Self::GrpcConsumeBatch
            | Self::GrpcConsumeStream
            | Self::GrpcGetLogInfo
            | Self::GrpcGetServers
            | Self::GrpcReflectionV1
            | Self::GrpcReflectionV1Alpha
            | Self::HttpRange
            | Self::HttpConsume
            | Self::HttpFollow
            | Self::HttpInfo
            | Self::HttpServers => Some(Action::Consume),
            Self::HttpMetrics | Self::HttpUnknownRoute => Some(Action::Admin),
            Self::GrpcHealth | Self::HttpHealthz | Self::HttpReadyz => None,
        }
    }

    /// Records the call appends when allowed.
    fn writes(self) -> u64 {
        match self {
            Self::GrpcProduce | Self::GrpcProduceStream | Self::HttpProduce => 1,
            Self::GrpcProduceBatch | Self::HttpProduceBatch => 2,
            _ => 0,
        }
    }
}

/// What a call did: served, or refused as the caller's lack of permission.
#[derive(Debug, PartialEq)]
enum Outcome {
    Served,
    Refused,
}

fn grpc_outcome<T>(what: Call, result: Result<T, tonic::Status>) -> Outcome {
    match result {
        Ok(_) => Outcome::Served,
        Err(status) if status.code() == Code::PermissionDenied => Outcome::Refused,
        Err(status) => panic!("{what:?}: neither served nor refused: {status:?}"),
    }
}

/// The HTTP outcome: 403 is a refusal; anything else must be the route's
/// own answer (unknown routes and `/metrics` without an exporter are 404),
/// and a refused body never holds the seeded record.
fn http_outcome(what: Call, status: u16, body: &str, served: &[u16]) -> Outcome {
    if status == 403 {
        assert!(
            !body.contains("c2VjcmV0"),
            "{what:?}: a refusal revealed the record"
        );
        return Outcome::Refused;
    }
    assert!(
        served.contains(&status),
        "{what:?}: status {status}: {body}"
    );
    Outcome::Served
}

async fn attempt(server: &TestServer, what: Call) -> Outcome {
    let mut client = server.client().await;
    let http = reqwest::Client::new();
    let post = |path: &str, body: &'static str| {
        http.post(server.url(path))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let get = |path: &str| http.get(server.url(path)).send();
    let text = |response: reqwest::Response| async move {
        let status = response.status().as_u16();
        (status, response.text().await.expect("body"))
    };
    match what {
        Call::GrpcProduce => grpc_outcome(
            what,
            client
                .produce(ProduceRequest {
                    record: Some(record(b"x")),
                    ..Default::default()
                })
                .await,
        ),
        Call::GrpcProduceBatch => grpc_outcome(
            what,
            client
                .produce_batch(ProduceBatchRequest {
                    records: vec![record(b"x"), record(b"y")],
                    ..Default::default()
                })
                .await,
        ),
        Call::GrpcProduceStream => {
            let requests = futures_util::stream::iter([ProduceRequest {
                record: Some(record(b"x")),
                ..Default::default()
            }]);
            match client.produce_stream(requests).await {
                Ok(response) => {
                    let mut responses = response.into_inner();
                    responses
                        .next()
                        .await
                        .expect("an answer")
                        .expect("acknowledged");
                    Outcome::Served
                }
                Err(status) => grpc_outcome::<()>(what, Err(status)),
            }
        }
        Call::GrpcConsume => {
            let result = client.consume(ConsumeRequest { offset: 0 }).await;
            if let Ok(response) = &result {
                let value = &response.get_ref().record.as_ref().expect("record").value;
                assert_eq!(&value[..], b"secret");
            }
            grpc_outcome(what, result)
        }
        Call::GrpcConsumeBatch => grpc_outcome(
            what,
            client
                .consume_batch(ConsumeBatchRequest {
                    from_offset: 0,
                    max_records: 1,
                    ..Default::default()
                })
                .await,
        ),
        Call::GrpcConsumeStream => {
            match client.consume_stream(ConsumeRequest { offset: 0 }).await {
                Ok(response) => {
                    let first = response
                        .into_inner()
                        .next()
                        .await
                        .expect("an item")
                        .expect("a record");
                    assert_eq!(&first.record.expect("record").value[..], b"secret");
                    Outcome::Served
                }
                Err(status) => grpc_outcome::<()>(what, Err(status)),
            }
        }
        Call::GrpcGetLogInfo => grpc_outcome(what, client.get_log_info(GetLogInfoRequest {}).await),
        Call::GrpcGetServers => grpc_outcome(what, client.get_servers(GetServersRequest {}).await),
        Call::GrpcReflectionV1 => {
            use tonic_reflection::pb::v1::{
                ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
                server_reflection_request::MessageRequest,
            };
            let mut reflection = ServerReflectionClient::new(server.channel().await);
            let request = ServerReflectionRequest {
                message_request: Some(MessageRequest::ListServices(String::new())),
                ..Default::default()
            };
            match reflection
                .server_reflection_info(futures_util::stream::iter([request]))
                .await
            {
                Ok(response) => {
                    let first = response.into_inner().next().await.expect("an answer");
                    grpc_outcome(what, first)
                }
                Err(status) => grpc_outcome::<()>(what, Err(status)),
            }
        }
        Call::GrpcReflectionV1Alpha => {
            use tonic_reflection::pb::v1alpha::{
                ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
                server_reflection_request::MessageRequest,
            };
            let mut reflection = ServerReflectionClient::new(server.channel().await);
            let request = ServerReflectionRequest {
                message_request: Some(MessageRequest::ListServices(String::new())),
                ..Default::default()
            };
            match reflection
                .server_reflection_info(futures_util::stream::iter([request]))
                .await
            {
                Ok(response) => {
                    let first = response.into_inner().next().await.expect("an answer");
                    grpc_outcome(what, first)
                }
                Err(status) => grpc_outcome::<()>(what, Err(status)),
            }
        }
        Call::GrpcHealth => {
            let mut health =
                tonic_health::pb::health_client::HealthClient::new(server.channel().await);
            grpc_outcome(
                what,
                health
                    .check(tonic_health::pb::HealthCheckRequest {
                        service: "proglog.v1.Log".into(),
                    })
                    .await,
            )
        }
        Call::HttpProduce => {
            let (status, body) = text(
                post("/v1/records", r#"{"record":{"value":"eA=="}}"#)
                    .await
                    .expect("http"),
            )
            .await;
            http_outcome(what, status, &body, &[200])
        }
        Call::HttpProduceBatch => {
            let (status, body) = text(
                post(
                    "/v1/records/batch",
                    r#"{"records":[{"value":"eA=="},{"value":"eQ=="}]}"#,
                )
                .await
                .expect("http"),
            )
            .await;
            http_outcome(what, status, &body, &[200])
        }
        Call::HttpRange => {
            let (status, body) = text(get("/v1/records?from=0&limit=1").await.expect("http")).await;
            http_outcome(what, status, &body, &[200])
        }
        Call::HttpConsume => {
            let (status, body) = text(get("/v1/records/0").await.expect("http")).await;
            let outcome = http_outcome(what, status, &body, &[200]);
            if outcome == Outcome::Served {
                assert!(body.contains("c2VjcmV0"), "{body}");
            }
            outcome
        }
        Call::HttpFollow => {
            let response = get("/v1/records/stream?from=0").await.expect("http");
            let status = response.status().as_u16();
            if status != 200 {
                let body = response.text().await.expect("body");
                return http_outcome(what, status, &body, &[]);
            }
            // Served: the first line is the seeded record; the stream then
            // stays open, so read one chunk and drop it.
            let mut chunks = response.bytes_stream();
            let first = tokio::time::timeout(common::CONDITION_TIMEOUT, chunks.next())
                .await
                .expect("the first line in time")
                .expect("a chunk")
                .expect("bytes");
            assert!(String::from_utf8_lossy(&first).contains("c2VjcmV0"));
            Outcome::Served
        }
        Call::HttpInfo => {
            let (status, body) = text(get("/v1/info").await.expect("http")).await;
            http_outcome(what, status, &body, &[200])
        }
        Call::HttpServers => {
            let (status, body) = text(get("/v1/servers").await.expect("http")).await;
            http_outcome(what, status, &body, &[200])
        }
        Call::HttpMetrics => {
            let (status, body) = text(get("/metrics").await.expect("http")).await;
            http_outcome(what, status, &body, &[404])
        }
        Call::HttpUnknownRoute => {
            let (status, body) = text(get("/v1/no-such-route").await.expect("http")).await;
            http_outcome(what, status, &body, &[404])
        }
        Call::HttpHealthz => {
            let (status, body) = text(get("/healthz").await.expect("http")).await;
            http_outcome(what, status, &body, &[200])
        }
        Call::HttpReadyz => {
            let (status, body) = text(get("/readyz").await.expect("http")).await;
            http_outcome(what, status, &body, &[200])
        }
    }
}

/// Goal: every gRPC method and HTTP route is served exactly when the policy
/// allows its action (public health for everyone), for every principal, and
/// a refused call writes nothing and reveals nothing.
/// Method: seed one record as root; then, for each principal of the table,
/// make every call of [`CALLS`] against a server stamping that principal
/// and compare each outcome, and the records written, with the table.
#[tokio::test]
async fn every_method_and_route_is_served_exactly_when_the_table_allows_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = server_for(dir.path(), Some("root")).await;
    root.client()
        .await
        .produce(ProduceRequest {
            record: Some(record(b"secret")),
            ..Default::default()
        })
        .await
        .expect("root produces");
    root.stop().await;
    for principal in ["root", "reader", "writer", "nobody"] {
        let allowed = table().0[principal].clone();
        let server = server_for(dir.path(), Some(principal)).await;
        let mut wrong = Vec::new();
        for call in CALLS {
            let before = server.log.next_offset();
            let expected = match call.needs() {
                Some(action) if !allowed.contains(&action) => Outcome::Refused,
                _ => Outcome::Served,
            };
            let got = attempt(&server, call).await;
            let written = server.log.next_offset() - before;
            let expected_written = if expected == Outcome::Served {
                call.writes()
            } else {
                0
            };
            if got != expected || written != expected_written {
                wrong.push(format!(
                    "{principal} {call:?}: {got:?} writing {written}, expected {expected:?} writing {expected_written}"
                ));
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
        server.stop().await;
    }
}
