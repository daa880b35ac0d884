//! Client subcommands: produce, consume, info, servers, and the connection
//! helper [`connect`] that `bench` shares.
//!
//! Every command talks gRPC to one node. Server errors come back as
//! `CODE: message` (see [`status_error`]), so a script can tell an
//! `OUT_OF_RANGE` from an `UNAVAILABLE` without parsing the rest.

pub(crate) mod connector;

use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use base64::Engine as _;
use bytes::Bytes;
use clap::{Args, ValueEnum};
use futures_util::FutureExt as _;
use opentelemetry::trace::{SpanId, TraceId};
use opentelemetry_sdk::trace::{IdGenerator as _, RandomIdGenerator};
use proto::v1::log_client::LogClient;
use proto::v1::{
    ConsumeBatchRequest, ConsumeRequest, GetLogInfoRequest, GetServersRequest, ProduceBatchRequest,
    ProduceRequest, Record,
};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

/// Longest a connection attempt may take: long enough for a busy node,
/// short enough that a wrong address fails while the user still waits.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Largest gRPC message the client sends or accepts. Above the server's
/// default (16 MiB) so the server's limit is the one that applies.
const MESSAGE_BYTES_MAX: usize = 64 << 20;

/// Records asked for per `ConsumeBatch` page.
const PAGE_RECORDS_MAX: u64 = 1000;

/// Stdin lines read ahead of the stream; bounds memory when the server is
/// slower than the pipe.
const STDIN_QUEUE_RECORDS: usize = 1024;

/// Where the server is, and how to authenticate to it.
#[derive(Debug, Clone, Args)]
pub struct ConnectArgs {
    /// Server address, HOST:PORT.
    #[arg(long, env = "PROGLOG_ADDR", default_value = "127.0.0.1:8400")]
    pub addr: String,
    /// PEM CA the server's certificate must chain to; turns TLS on.
    #[arg(long, env = "PROGLOG_CA_FILE", value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate to present (mutual TLS); needs --key-file.
    #[arg(
        long,
        env = "PROGLOG_CERT_FILE",
        value_name = "FILE",
        requires_all = ["ca_file", "key_file"]
    )]
    pub cert_file: Option<PathBuf>,
    /// PEM private key of --cert-file.
    #[arg(
        long,
        env = "PROGLOG_KEY_FILE",
        value_name = "FILE",
        requires = "cert_file"
    )]
    pub key_file: Option<PathBuf>,
    /// Name to verify the server certificate against instead of the host
    /// in --addr (e.g. when dialling an IP the certificate does not name).
    #[arg(
        long,
        env = "PROGLOG_TLS_SERVER_NAME",
        value_name = "NAME",
        requires = "ca_file"
    )]
    pub tls_server_name: Option<String>,
}

/// `proglog produce`.
#[derive(Debug, Args)]
pub struct ProduceArgs {
    /// Where the server is.
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Values to append, together as one batch; without any, one record per
    /// stdin line (without its line ending; an empty line is an empty record).
    pub values: Vec<String>,
}

/// How `consume` prints records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// The value's bytes, then a newline.
    Raw,
    /// One JSON object per line: `{"offset":N,"timestampMs":T,"value":"<base64>"}`.
    Json,
}

/// `proglog consume`.
#[derive(Debug, Args)]
pub struct ConsumeArgs {
    /// Where the server is.
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// First offset to read (default: the lowest retained).
    #[arg(long, value_name = "OFFSET")]
    pub from: Option<u64>,
    /// Keep reading new records as they are committed, until --limit or
    /// Ctrl-C. Without it, stop at the commit offset seen at the start.
    #[arg(long)]
    pub follow: bool,
    /// Stop after this many records.
    #[arg(long, value_name = "RECORDS")]
    pub limit: Option<u64>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Raw)]
    pub output: OutputFormat,
}

/// `proglog info` and `proglog servers`.
#[derive(Debug, Args)]
pub struct InfoArgs {
    /// Where the server is.
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// A connection to one node; every request carries the connection's
/// [`TraceParent`].
pub type Client = LogClient<InterceptedService<Channel, TraceParent>>;

/// Sends a W3C `traceparent` on every request: a fresh random trace (and
/// parent span) id per connection, marked sampled, so a node that exports
/// spans records one command's requests as one trace.
#[derive(Debug, Clone)]
pub struct TraceParent {
    trace_id: TraceId,
    header: MetadataValue<Ascii>,
}

impl TraceParent {
    /// A new random trace.
    pub fn random() -> Self {
        let ids = RandomIdGenerator::default();
        Self::new(ids.new_trace_id(), ids.new_span_id())
    }

    fn new(trace_id: TraceId, span_id: SpanId) -> Self {
        let text = format!("00-{trace_id}-{span_id}-01");
        // Hex digits and dashes are always valid metadata.
        let header = MetadataValue::try_from(text.as_str()).expect("ASCII traceparent");
        Self { trace_id, header }
    }

    /// The trace id, as 32 hex digits (as the node logs it).
    pub fn trace_id(&self) -> String {
        self.trace_id.to_string()
    }
}

impl Interceptor for TraceParent {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        request
            .metadata_mut()
            .insert("traceparent", self.header.clone());
        Ok(request)
    }
}

/// Connects to the node at `args.addr` (a `HOST:PORT`, or a full
/// `http://` URL); requests carry a new random [`TraceParent`].
///
/// Each call opens its own HTTP/2 connection (and trace), so callers that
/// want several connections (bench) call it several times.
///
/// # Errors
/// The address is malformed, or nothing answers there within
/// the connect timeout (5 s); the message names the address.
pub async fn connect(args: &ConnectArgs) -> anyhow::Result<Client> {
    let addr = &args.addr;
    let tls = match &args.ca_file {
        Some(ca_file) => Some(Arc::new(
            auth::ClientTlsConfig {
                ca_file: ca_file.clone(),
                cert_file: args.cert_file.clone(),
                key_file: args.key_file.clone(),
                server_name: args.tls_server_name.clone(),
            }
            .load()?,
        )),
        None => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let uri = match addr.split_once("://") {
        Some((given, _)) if given != scheme => anyhow::bail!(
            "invalid address {addr:?}: {given}:// does not match {} (use HOST:PORT)",
            if tls.is_some() {
                "--ca-file (TLS)"
            } else {
                "a plaintext connection (no --ca-file)"
            }
        ),
        Some(_) => addr.clone(),
        None => format!("{scheme}://{addr}"),
    };
    let endpoint = Endpoint::from_shared(uri)
        .with_context(|| format!("invalid address {addr:?}: expected HOST:PORT"))?
        .connect_timeout(CONNECT_TIMEOUT);
    let presents_certificate = args.cert_file.is_some();
    let connecting = async {
        match tls {
            Some(tls) => {
                endpoint
                    .connect_with_connector(connector::tls(tls, presents_certificate))
                    .await
            }
            None => {
                endpoint
                    .connect_with_connector(connector::plaintext())
                    .await
            }
        }
    };
    // The outer timeout also covers a peer that accepts TCP but never
    // completes the TLS or HTTP/2 handshake.
    let channel = match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
        Ok(connected) => {
            connected.map_err(|e| anyhow::anyhow!("cannot connect to {addr}: {}", chain(&e)))?
        }
        Err(_) => anyhow::bail!("cannot connect to {addr}: no answer within {CONNECT_TIMEOUT:?}"),
    };
    let trace = TraceParent::random();
    tracing::debug!(trace_id = %trace.trace_id(), addr = %addr, "connected");
    Ok(LogClient::with_interceptor(channel, trace)
        .max_decoding_message_size(MESSAGE_BYTES_MAX)
        .max_encoding_message_size(MESSAGE_BYTES_MAX))
}

/// A gRPC status as `CODE: message`, followed by the transport's cause when
/// the status came from the connection rather than the server.
///
/// tonic's own `Display` also prints details and metadata, which is noise
/// on a terminal.
pub fn status_error(status: tonic::Status) -> anyhow::Error {
    let code = proto::code_name(status.code());
    match std::error::Error::source(&status) {
        Some(cause) => anyhow::anyhow!("{code}: {}: {}", status.message(), chain(cause)),
        None => anyhow::anyhow!("{code}: {}", status.message()),
    }
}

/// An error and its causes joined by `: `, each said once (hyper and tonic
/// wrap some causes in an error with the same text).
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut last = text.clone();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if cause_text != last {
            text.push_str(": ");
            text.push_str(&cause_text);
            last = cause_text;
        }
        source = cause.source();
    }
    text
}

/// Stdout, buffered; flushed when the command would otherwise wait.
fn stdout() -> io::BufWriter<io::Stdout> {
    io::BufWriter::with_capacity(64 << 10, io::stdout())
}

/// Runs `proglog produce`.
///
/// # Errors
/// Connection or server errors; records acknowledged before a failure have
/// their offsets printed first.
pub async fn produce(args: ProduceArgs) -> anyhow::Result<()> {
    let addr = args.connect.addr.clone();
    let mut client = connect(&args.connect).await?;
    let mut out = stdout();
    let result = if args.values.is_empty() {
        produce_stdin(&mut client, &mut out).await
    } else {
        produce_values(&mut client, args.values, &mut out).await
    };
    let flushed = out.flush().context("writing offsets to stdout");
    result.with_context(|| format!("producing to {addr}"))?;
    flushed
}

/// Appends `values` as one batch: dense offsets, one round trip.
async fn produce_values(
    client: &mut Client,
    values: Vec<String>,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let records = values
        .into_iter()
        .map(|value| Record {
            value: Bytes::from(value),
            ..Record::default()
        })
        .collect();
    let response = client
        .produce_batch(ProduceBatchRequest {
            records,
            ..Default::default()
        })
        .await
        .map_err(status_error)?
        .into_inner();
    for offset in response.base_offset..response.base_offset + response.count {
        writeln!(out, "{offset}").context("writing offsets to stdout")?;
    }
    Ok(())
}

/// Streams stdin lines over one `ProduceStream`: a reader thread feeds the
/// request stream while this task prints offsets as they come back.
async fn produce_stdin(client: &mut Client, out: &mut impl Write) -> anyhow::Result<()> {
    let (requests, requests_rx) = mpsc::channel(STDIN_QUEUE_RECORDS);
    let (read_done, read_result) = oneshot::channel();
    // A plain thread, not `spawn_blocking`: a read blocked on an idle stdin
    // must not keep the runtime from shutting down after an error.
    std::thread::spawn(move || {
        let _ = read_done.send(read_lines(io::stdin().lock(), &requests));
    });
    let mut responses = client
        .produce_stream(ReceiverStream::new(requests_rx))
        .await
        .map_err(status_error)?
        .into_inner();
    let mut acknowledged = 0u64;
    loop {
        // Flush only when the next offset is not already here, so a large
        // stdin is not one write per line and a terminal still sees each.
        let next = match responses.message().now_or_never() {
            Some(next) => next,
            None => {
                out.flush().context("writing offsets to stdout")?;
                responses.message().await
            }
        };
        let Some(response) = next.map_err(status_error)? else {
            break;
        };
        writeln!(out, "{}", response.offset).context("writing offsets to stdout")?;
        acknowledged += 1;
    }
    let sent = read_result
        .await
        .context("the stdin reader stopped")?
        .context("reading stdin")?;
    anyhow::ensure!(
        acknowledged == sent,
        "the server ended the stream after {acknowledged} of {sent} records"
    );
    Ok(())
}

/// Sends one produce request per line of `input` until it ends; returns how
/// many were sent.
fn read_lines(
    mut input: impl io::BufRead,
    requests: &mpsc::Sender<ProduceRequest>,
) -> io::Result<u64> {
    let mut sent = 0;
    loop {
        let mut line = Vec::new();
        if input.read_until(b'\n', &mut line)? == 0 {
            return Ok(sent);
        }
        if line.last() == Some(&b'\n') {
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
        }
        let record = Record {
            value: Bytes::from(line),
            ..Record::default()
        };
        if requests
            .blocking_send(ProduceRequest {
                record: Some(record),
                ..Default::default()
            })
            .is_err()
        {
            // The stream is gone; the response side reports why.
            return Ok(sent);
        }
        sent += 1;
    }
}

/// A record as `consume --output json` prints it (proto3 JSON names, the
/// same shape as the HTTP API).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RecordJson {
    offset: u64,
    timestamp_ms: u64,
    value: String,
}

fn write_record(out: &mut impl Write, record: &Record, format: OutputFormat) -> io::Result<()> {
    match format {
        OutputFormat::Raw => {
            out.write_all(&record.value)?;
            out.write_all(b"\n")
        }
        OutputFormat::Json => {
            let json = RecordJson {
                offset: record.offset,
                timestamp_ms: record.timestamp_ms,
                value: base64::engine::general_purpose::STANDARD.encode(&record.value),
            };
            serde_json::to_writer(&mut *out, &json)?;
            out.write_all(b"\n")
        }
    }
}

/// Why a consume loop stopped early.
enum Stop {
    /// The reader of stdout went away (`| head`): a normal end.
    StdoutClosed,
    /// A real failure.
    Failed(anyhow::Error),
}

impl From<io::Error> for Stop {
    fn from(error: io::Error) -> Self {
        if error.kind() == io::ErrorKind::BrokenPipe {
            Self::StdoutClosed
        } else {
            Self::Failed(anyhow::Error::new(error).context("writing records to stdout"))
        }
    }
}

impl From<tonic::Status> for Stop {
    fn from(status: tonic::Status) -> Self {
        Self::Failed(status_error(status))
    }
}

/// Runs `proglog consume`.
///
/// # Errors
/// Connection or server errors, e.g. `OUT_OF_RANGE` naming the valid range
/// when `--from` is outside it.
pub async fn consume(args: ConsumeArgs) -> anyhow::Result<()> {
    let addr = &args.connect.addr;
    let mut client = connect(&args.connect).await?;
    let info = client
        .get_log_info(GetLogInfoRequest {})
        .await
        .map_err(status_error)
        .with_context(|| format!("asking {addr} for the log's offsets"))?
        .into_inner();
    let from = args.from.unwrap_or(info.lowest_offset);
    let limit = args.limit.unwrap_or(u64::MAX);
    let mut out = stdout();
    let result = if args.follow {
        consume_follow(&mut client, from, limit, args.output, &mut out).await
    } else {
        consume_pages(
            &mut client,
            from,
            info.commit_offset,
            limit,
            args.output,
            &mut out,
        )
        .await
    };
    let result = result.and_then(|()| out.flush().map_err(Stop::from));
    match result {
        Ok(()) | Err(Stop::StdoutClosed) => Ok(()),
        Err(Stop::Failed(error)) => {
            // What was read before the failure is still worth showing.
            let _ = out.flush();
            Err(error.context(format!("consuming from {addr} at offset {from}")))
        }
    }
}

/// Reads `[from, end)` (at most `limit` records) in `ConsumeBatch` pages.
async fn consume_pages(
    client: &mut Client,
    from: u64,
    end: u64,
    limit: u64,
    format: OutputFormat,
    out: &mut impl Write,
) -> Result<(), Stop> {
    let mut next = from;
    let mut remaining = limit;
    // The first page is always asked for, even when `from` is the end, so a
    // bad `--from` gets the server's OUT_OF_RANGE with the valid range.
    while remaining > 0 {
        let wanted = remaining
            .min(end.saturating_sub(next))
            .clamp(1, PAGE_RECORDS_MAX);
        let request = ConsumeBatchRequest {
            from_offset: next,
            max_records: u32::try_from(wanted).unwrap_or(u32::MAX),
            max_bytes: 0,
        };
        let page = client.consume_batch(request).await?.into_inner();
        // Records committed after the start are left for the next run.
        let records: Vec<_> = page
            .records
            .into_iter()
            .filter(|r| r.offset < end)
            .collect();
        if records.is_empty() {
            return Ok(());
        }
        for record in records
            .iter()
            .take(usize::try_from(remaining).unwrap_or(usize::MAX))
        {
            write_record(out, record, format)?;
            remaining -= 1;
        }
        next = page.next_offset;
        if next >= end {
            return Ok(());
        }
    }
    Ok(())
}

/// Reads from `from` with `ConsumeStream`, following the tail until `limit`
/// records or Ctrl-C.
async fn consume_follow(
    client: &mut Client,
    from: u64,
    limit: u64,
    format: OutputFormat,
    out: &mut impl Write,
) -> Result<(), Stop> {
    if limit == 0 {
        return Ok(());
    }
    let mut records = client
        .consume_stream(ConsumeRequest { offset: from })
        .await?
        .into_inner();
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    let mut remaining = limit;
    loop {
        let next = match records.message().now_or_never() {
            Some(next) => next,
            None => {
                // Caught up: show what we have, then wait for more.
                out.flush()?;
                tokio::select! {
                    next = records.message() => next,
                    _ = &mut interrupted => return Ok(()),
                }
            }
        };
        let Some(response) = next? else { return Ok(()) };
        let Some(record) = response.record else {
            return Err(Stop::Failed(anyhow::anyhow!(
                "the server sent a response without a record"
            )));
        };
        write_record(out, &record, format)?;
        remaining -= 1;
        if remaining == 0 {
            return Ok(());
        }
    }
}

/// `proglog info --json`: the proto3 JSON names, as the HTTP API uses.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct InfoJson {
    lowest_offset: u64,
    highest_offset: Option<u64>,
    next_offset: u64,
    commit_offset: u64,
}

/// Runs `proglog info`.
///
/// # Errors
/// Connection or server errors.
pub async fn info(args: InfoArgs) -> anyhow::Result<()> {
    let mut client = connect(&args.connect).await?;
    let info = client
        .get_log_info(GetLogInfoRequest {})
        .await
        .map_err(status_error)
        .with_context(|| format!("asking {} for the log's offsets", args.connect.addr))?
        .into_inner();
    let text = if args.json {
        let json = InfoJson {
            lowest_offset: info.lowest_offset,
            highest_offset: info.highest_offset,
            next_offset: info.next_offset,
            commit_offset: info.commit_offset,
        };
        format!("{}\n", serde_json::to_string(&json)?)
    } else {
        let highest = info
            .highest_offset
            .map_or_else(|| "none (the log is empty)".to_owned(), |h| h.to_string());
        format!(
            "lowest offset:  {}\nhighest offset: {highest}\nnext offset:    {}\ncommit offset:  {}\n",
            info.lowest_offset, info.next_offset, info.commit_offset
        )
    };
    io::stdout()
        .write_all(text.as_bytes())
        .context("writing to stdout")
}

/// One server in `proglog servers --json`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ServerJson {
    id: String,
    node_id: u64,
    rpc_addr: String,
    state: String,
    is_leader: bool,
}

/// `proglog servers --json`.
#[derive(Serialize)]
struct ServersJson {
    servers: Vec<ServerJson>,
}

/// Runs `proglog servers`.
///
/// # Errors
/// Connection or server errors.
pub async fn servers(args: InfoArgs) -> anyhow::Result<()> {
    let mut client = connect(&args.connect).await?;
    let servers = client
        .get_servers(GetServersRequest {})
        .await
        .map_err(status_error)
        .with_context(|| format!("asking {} for the servers", args.connect.addr))?
        .into_inner()
        .servers;
    let text = if args.json {
        let servers: Vec<_> = servers
            .into_iter()
            .map(|s| ServerJson {
                id: s.id,
                node_id: s.node_id,
                rpc_addr: s.rpc_addr,
                state: s.state,
                is_leader: s.is_leader,
            })
            .collect();
        format!("{}\n", serde_json::to_string(&ServersJson { servers })?)
    } else {
        let rows: Vec<[String; 5]> = servers
            .into_iter()
            .map(|s| {
                [
                    s.id,
                    s.node_id.to_string(),
                    s.rpc_addr,
                    s.state,
                    if s.is_leader { "yes" } else { "no" }.to_owned(),
                ]
            })
            .collect();
        table(["NAME", "NODE ID", "RPC ADDRESS", "STATE", "LEADER"], &rows)
    };
    io::stdout()
        .write_all(text.as_bytes())
        .context("writing to stdout")
}

/// Left-aligned columns two spaces apart; the last column is not padded.
fn table<const N: usize>(header: [&str; N], rows: &[[String; N]]) -> String {
    let mut widths = header.map(str::len);
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut text = String::new();
    let lines = std::iter::once(header.map(str::to_owned)).chain(rows.iter().cloned());
    for row in lines {
        let mut line = String::new();
        for (i, (cell, width)) in row.iter().zip(widths).enumerate() {
            if i + 1 == N {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}  "));
            }
        }
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stdin_lines_become_records_without_their_line_endings() {
        let (requests, mut received) = mpsc::channel(16);
        let input = &b"one\r\ntwo\n\nlast"[..];
        let sent = read_lines(input, &requests).expect("read");
        drop(requests);
        let mut values = Vec::new();
        while let Ok(request) = received.try_recv() {
            values.push(request.record.expect("record").value);
        }
        assert_eq!(sent, 4);
        assert_eq!(values, [&b"one"[..], b"two", b"", b"last"]);
    }

    #[test]
    fn json_output_uses_proto3_names_and_base64() {
        let record = Record {
            value: Bytes::from_static(b"hi"),
            offset: 3,
            timestamp_ms: 7,
        };
        let mut out = Vec::new();
        write_record(&mut out, &record, OutputFormat::Json).expect("write");
        assert_eq!(
            out,
            b"{\"offset\":3,\"timestampMs\":7,\"value\":\"aGk=\"}\n"
        );
    }

    #[test]
    fn every_request_carries_the_connections_traceparent() {
        let mut trace = TraceParent::new(
            TraceId::from(0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736),
            SpanId::from(0x00f0_67aa_0ba9_02b7),
        );
        let request = trace.call(tonic::Request::new(())).expect("interceptor");
        assert_eq!(
            request.metadata().get("traceparent").expect("traceparent"),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        );
        assert_eq!(trace.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_ne!(
            TraceParent::random().trace_id(),
            TraceParent::random().trace_id()
        );
    }

    #[test]
    fn a_status_prints_as_code_and_message() {
        let error = status_error(tonic::Status::out_of_range("offset 9 is out of range"));
        assert_eq!(error.to_string(), "OUT_OF_RANGE: offset 9 is out of range");
    }

    #[test]
    fn table_columns_line_up() {
        let rows = [[
            "node-a".to_owned(),
            "127.0.0.1:1".to_owned(),
            "yes".to_owned(),
        ]];
        assert_eq!(
            table(["ID", "RPC ADDRESS", "LEADER"], &rows),
            "ID      RPC ADDRESS  LEADER\nnode-a  127.0.0.1:1  yes\n"
        );
    }
}
