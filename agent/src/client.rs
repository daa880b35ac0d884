//! Client subcommands: produce, consume, info, servers, and [`connect`],
//! which `bench` and `cluster` share.
//!
//! Every command talks to the cluster through the `proglog-client` crate:
//! `--addr` is a comma-separated list of seeds; writes follow the leader by
//! themselves, and reads go to the first seed while it answers (so
//! `consume --addr N` reads node N's copy), then to the others. Server
//! errors come back as `CODE: message`, so a script can tell an
//! `OUT_OF_RANGE` from an `UNAVAILABLE` without parsing the rest.

pub(crate) mod connector;

use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use base64::Engine as _;
use bytes::Bytes;
use clap::{Args, ValueEnum};
use futures_util::{FutureExt as _, StreamExt as _};
use opentelemetry::trace::{SpanId, TraceId};
use opentelemetry_sdk::trace::{IdGenerator as _, RandomIdGenerator};
use proglog_client::{Client, ClientBuilder, ReadPreference, Record, TlsConfig};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

/// Records asked for per `ConsumeBatch` page.
const PAGE_RECORDS_MAX: u64 = 1000;

/// Stdin lines read ahead of the stream; bounds memory when the server is
/// slower than the pipe.
const STDIN_QUEUE_RECORDS: usize = 1024;

/// Where the server is, and how to authenticate to it.
#[derive(Debug, Clone, Args)]
pub struct ConnectArgs {
    /// Nodes of the cluster, HOST:PORT, comma-separated: the first that
    /// answers tells the client about the others and the leader. Writes go
    /// to the leader; reads to the first address while it answers.
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

/// A W3C `traceparent` sent on every request of one command: a fresh
/// random trace (and parent span) id, marked sampled, so a node that
/// exports spans records one command's requests as one trace.
#[derive(Debug, Clone)]
pub struct TraceParent {
    trace_id: TraceId,
    header: String,
}

impl TraceParent {
    /// A new random trace.
    pub fn random() -> Self {
        let ids = RandomIdGenerator::default();
        Self::new(ids.new_trace_id(), ids.new_span_id())
    }

    fn new(trace_id: TraceId, span_id: SpanId) -> Self {
        let header = format!("00-{trace_id}-{span_id}-01");
        Self { trace_id, header }
    }

    /// The `traceparent` header value.
    pub fn header(&self) -> &str {
        &self.header
    }

    /// The trace id, as 32 hex digits (as the node logs it).
    pub fn trace_id(&self) -> String {
        self.trace_id.to_string()
    }
}

impl ConnectArgs {
    /// The seed addresses of `--addr`.
    pub fn seeds(&self) -> Vec<String> {
        self.addr
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// The client's TLS settings from the flags (files read now, each named
    /// in its error), or `None` for plaintext.
    ///
    /// # Errors
    /// A TLS file is missing or invalid.
    pub fn tls(&self) -> anyhow::Result<Option<TlsConfig>> {
        let Some(ca_file) = &self.ca_file else {
            return Ok(None);
        };
        let tls = auth::ClientTlsConfig {
            ca_file: ca_file.clone(),
            cert_file: self.cert_file.clone(),
            key_file: self.key_file.clone(),
            server_name: self.tls_server_name.clone(),
        }
        .load()?;
        Ok(Some(TlsConfig::from_rustls(
            Arc::clone(&tls.config),
            tls.server_name,
        )))
    }
}

/// A client builder for the seeds of `--addr`: reads prefer the first
/// seed, and every request carries `trace` as its `traceparent`.
///
/// # Errors
/// No seed given, or TLS files unusable.
pub fn builder(args: &ConnectArgs, trace: &TraceParent) -> anyhow::Result<ClientBuilder> {
    let seeds = args.seeds();
    let first = seeds
        .first()
        .cloned()
        .with_context(|| format!("invalid address {:?}: expected HOST:PORT", args.addr))?;
    let mut builder = Client::builder(seeds)
        .read_preference(ReadPreference::Node(first))
        .header("traceparent", trace.header());
    if let Some(tls) = args.tls()? {
        builder = builder.tls(tls);
    }
    Ok(builder)
}

/// Connects to the cluster through the seeds of `--addr` (see [`builder`]).
///
/// # Errors
/// As [`builder`], or no seed answers once the retry policy gives up; the
/// message names the address.
pub async fn connect_traced(args: &ConnectArgs, trace: &TraceParent) -> anyhow::Result<Client> {
    let client = builder(args, trace)?.connect().await?;
    tracing::debug!(trace_id = %trace.trace_id(), addr = %args.addr, "connected");
    Ok(client)
}

/// As [`connect_traced`], with a new random trace.
///
/// # Errors
/// As [`connect_traced`].
pub async fn connect(args: &ConnectArgs) -> anyhow::Result<Client> {
    connect_traced(args, &TraceParent::random()).await
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
    let client = connect(&args.connect).await?;
    let mut out = stdout();
    let result = if args.values.is_empty() {
        produce_stdin(&client, &mut out).await
    } else {
        produce_values(&client, args.values, &mut out).await
    };
    let flushed = out.flush().context("writing offsets to stdout");
    result.with_context(|| format!("producing to {}", args.connect.addr))?;
    flushed
}

/// Appends `values` as one batch: dense offsets, one round trip.
async fn produce_values(
    client: &Client,
    values: Vec<String>,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let offsets = client
        .produce_batch(values.into_iter().map(Bytes::from).collect())
        .await?;
    for offset in offsets {
        writeln!(out, "{offset}").context("writing offsets to stdout")?;
    }
    Ok(())
}

/// Streams stdin lines through one pipelined producer: a reader thread
/// feeds it while this task prints offsets as they come back, in order.
async fn produce_stdin(client: &Client, out: &mut impl Write) -> anyhow::Result<()> {
    let (lines, mut lines_rx) = mpsc::channel::<Bytes>(STDIN_QUEUE_RECORDS);
    let (read_done, read_result) = oneshot::channel();
    // A plain thread, not `spawn_blocking`: a read blocked on an idle stdin
    // must not keep the runtime from shutting down after an error.
    std::thread::spawn(move || {
        let _ = read_done.send(read_lines(io::stdin().lock(), &lines));
    });
    let producer = client.producer();
    let (acks, mut acks_rx) = mpsc::channel(STDIN_QUEUE_RECORDS);
    tokio::spawn(async move {
        while let Some(line) = lines_rx.recv().await {
            let Ok(ack) = producer.send(line).await else {
                return;
            };
            if acks.send(ack).await.is_err() {
                return;
            }
        }
    });
    let mut acknowledged = 0u64;
    loop {
        // Flush only when the next offset is not already here, so a large
        // stdin is not one write per line and a terminal still sees each.
        let mut ack = match acks_rx.recv().now_or_never() {
            Some(Some(ack)) => ack,
            Some(None) => break,
            None => {
                out.flush().context("writing offsets to stdout")?;
                match acks_rx.recv().await {
                    Some(ack) => ack,
                    None => break,
                }
            }
        };
        let offset = match (&mut ack).now_or_never() {
            Some(offset) => offset,
            None => {
                out.flush().context("writing offsets to stdout")?;
                ack.await
            }
        };
        writeln!(out, "{}", offset?).context("writing offsets to stdout")?;
        acknowledged += 1;
    }
    let sent = read_result
        .await
        .context("the stdin reader stopped")?
        .context("reading stdin")?;
    anyhow::ensure!(
        acknowledged == sent,
        "the cluster acknowledged {acknowledged} of {sent} records"
    );
    Ok(())
}

/// Sends one produce request per line of `input` until it ends; returns how
/// many were sent.
fn read_lines(mut input: impl io::BufRead, requests: &mpsc::Sender<Bytes>) -> io::Result<u64> {
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
        if requests.blocking_send(Bytes::from(line)).is_err() {
            // The producer is gone; the response side reports why.
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

impl From<proglog_client::Error> for Stop {
    fn from(error: proglog_client::Error) -> Self {
        Self::Failed(error.into())
    }
}

/// Runs `proglog consume`.
///
/// # Errors
/// Connection or server errors, e.g. `OUT_OF_RANGE` naming the valid range
/// when `--from` is outside it.
pub async fn consume(args: ConsumeArgs) -> anyhow::Result<()> {
    let addr = &args.connect.addr;
    let client = connect(&args.connect).await?;
    let info = client
        .log_info()
        .await
        .with_context(|| format!("asking {addr} for the log's offsets"))?;
    let from = args.from.unwrap_or(info.lowest_offset);
    let limit = args.limit.unwrap_or(u64::MAX);
    let mut out = stdout();
    let result = if args.follow {
        consume_follow(&client, from, limit, args.output, &mut out).await
    } else {
        consume_pages(
            &client,
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
    client: &Client,
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
        let page = client
            .consume_batch(next, u32::try_from(wanted).unwrap_or(u32::MAX), 0)
            .await?;
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

/// Reads from `from` on, following the tail (and failing over to another
/// node when this one goes) until `limit` records or Ctrl-C.
async fn consume_follow(
    client: &Client,
    from: u64,
    limit: u64,
    format: OutputFormat,
    out: &mut impl Write,
) -> Result<(), Stop> {
    if limit == 0 {
        return Ok(());
    }
    let mut records = client.follow(from);
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    let mut remaining = limit;
    loop {
        let next = match records.next().now_or_never() {
            Some(next) => next,
            None => {
                // Caught up: show what we have, then wait for more.
                out.flush()?;
                tokio::select! {
                    next = records.next() => next,
                    _ = &mut interrupted => return Ok(()),
                }
            }
        };
        let Some(record) = next else { return Ok(()) };
        write_record(out, &record?, format)?;
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
    let client = connect(&args.connect).await?;
    let info = client
        .log_info()
        .await
        .with_context(|| format!("asking {} for the log's offsets", args.connect.addr))?;
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
    role: String,
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
    let client = connect(&args.connect).await?;
    let servers = client
        .servers()
        .await
        .with_context(|| format!("asking {} for the servers", args.connect.addr))?;
    let text = if args.json {
        let servers: Vec<_> = servers
            .into_iter()
            .map(|s| ServerJson {
                id: s.name,
                node_id: s.node_id,
                rpc_addr: s.rpc_addr,
                state: s.state,
                is_leader: s.is_leader,
                role: s.role,
            })
            .collect();
        format!("{}\n", serde_json::to_string(&ServersJson { servers })?)
    } else {
        let rows: Vec<[String; 6]> = servers
            .into_iter()
            .map(|s| {
                [
                    s.name,
                    s.node_id.to_string(),
                    s.rpc_addr,
                    s.state,
                    if s.role.is_empty() {
                        "-".to_owned()
                    } else {
                        s.role
                    },
                    if s.is_leader { "yes" } else { "no" }.to_owned(),
                ]
            })
            .collect();
        table(
            ["NAME", "NODE ID", "RPC ADDRESS", "STATE", "ROLE", "LEADER"],
            &rows,
        )
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
        while let Ok(value) = received.try_recv() {
            values.push(value);
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
    fn every_request_carries_the_commands_traceparent() {
        let trace = TraceParent::new(
            TraceId::from(0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736),
            SpanId::from(0x00f0_67aa_0ba9_02b7),
        );
        assert_eq!(
            trace.header(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        );
        assert_eq!(trace.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_ne!(
            TraceParent::random().trace_id(),
            TraceParent::random().trace_id()
        );
    }

    #[test]
    fn addr_is_a_comma_separated_seed_list() {
        let args = ConnectArgs {
            addr: "n1:8400, n2:8400,,n3:8400".to_owned(),
            ca_file: None,
            cert_file: None,
            key_file: None,
            tls_server_name: None,
        };
        assert_eq!(args.seeds(), ["n1:8400", "n2:8400", "n3:8400"]);
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
