//! An OTLP/gRPC trace collector that counts spans and drops them: the cheap
//! far end for measuring the node's tracing overhead.
//!
//! ```text
//! cargo run --release -p agent --example otlp_sink -- 127.0.0.1:4317
//! proglog agent --otlp-endpoint http://127.0.0.1:4317 ...
//! ```
//!
//! Prints the number of spans received so far every second it changed.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};

/// Counts the spans of every export request.
struct Sink {
    spans: Arc<AtomicU64>,
}

#[tonic::async_trait]
impl TraceService for Sink {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let count: usize = request
            .into_inner()
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len())
            .sum();
        self.spans.fetch_add(count as u64, Ordering::Relaxed);
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:4317".to_owned())
        .parse()?;
    let spans = Arc::new(AtomicU64::new(0));
    let report = Arc::clone(&spans);
    tokio::spawn(async move {
        let mut last = 0;
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let now = report.load(Ordering::Relaxed);
            if now != last {
                eprintln!("spans received: {now}");
                last = now;
            }
        }
    });
    eprintln!("OTLP sink listening on {addr}");
    tonic::transport::Server::builder()
        .add_service(TraceServiceServer::new(Sink { spans }))
        .serve(addr)
        .await?;
    Ok(())
}
