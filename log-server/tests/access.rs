//! Authorization: for every principal × action of a policy table, gRPC and
//! HTTP results equal the table; refused calls write and reveal nothing.
//!
//! Method: one server per principal, whose handshake stamps every connection
//! with that principal's subject (what TLS does with a client certificate),
//! and a table policy. Health stays public for everyone.

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use common::{TestServer, record};
use log_server::{Access, AccessPolicy, Action, Caller, Handshake};
use proto::v1::{ConsumeRequest, GetLogInfoRequest, ProduceRequest};
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
