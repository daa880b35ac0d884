//! `proglog bench`: load a running server and report throughput and latency.
//!
//! Produce: the records are split over `--connections` clients (each its
//! own HTTP/2 connections), each with one pipelined producer (one
//! `ProduceStream`, idempotent where the cluster supports it) driven by a
//! sender task and a receiver task. At most `--window` records are
//! unacknowledged per producer; a record's latency runs from the moment it
//! is handed to the producer to its acknowledgement. Acknowledgements come
//! in order, so the send instants form a queue.
//!
//! Consume: the produced offset range is cut into one contiguous slice per
//! connection, each read with its own follow stream (`ConsumeStream`).

use std::io::IsTerminal as _;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use clap::Args;
use futures_util::StreamExt as _;
use indicatif::{ProgressBar, ProgressStyle};
use proglog_client::Client;
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::client::{ConnectArgs, TraceParent, builder};

/// Distinct value start positions in the payload pattern; prime, so record
/// values do not line up with power-of-two sizes.
const PATTERN_SHIFTS: usize = 251;

/// Bytes in a megabyte as reported (SI), and in a mebibyte.
const MEGABYTE: f64 = 1e6;
const MEBIBYTE: f64 = 1_048_576.0;

/// `proglog bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Where the server is.
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Records to produce.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub records: u64,
    /// Bytes per record value.
    #[arg(long, default_value_t = 1024)]
    pub size: usize,
    /// Connections, each with one produce stream and one consume stream.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..))]
    pub connections: u16,
    /// Unacknowledged produce requests per stream at most.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
    pub window: u32,
    /// Only produce; do not read the records back.
    #[arg(long)]
    pub skip_consume: bool,
    /// Print the summary as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Deterministic record values: windows into one pseudo-random block, so a
/// value costs no allocation and no two neighbours are equal.
#[derive(Clone)]
struct Payload {
    block: Bytes,
    size: usize,
}

impl Payload {
    fn new(size: usize) -> Self {
        // splitmix64: a fixed seed gives the same bytes on every run.
        let mut state: u64 = 0x5052_4f47_4c4f_4721;
        let mut block = Vec::with_capacity(size + PATTERN_SHIFTS + 8);
        while block.len() < size + PATTERN_SHIFTS {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            block.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
        }
        Self {
            block: Bytes::from(block),
            size,
        }
    }

    fn value(&self, index: u64) -> Bytes {
        let start = usize::try_from(index % PATTERN_SHIFTS as u64).unwrap_or(0);
        self.block.slice(start..start + self.size)
    }
}

/// What one produce stream did.
struct ProduceReport {
    /// Latency of each request, nanoseconds, in response order.
    latencies_ns: Vec<u64>,
    /// Offsets of the first and last acknowledged record.
    offsets: Option<(u64, u64)>,
}

/// Produces records `first..first + count` through one producer.
async fn produce_stream(
    client: Client,
    first: u64,
    count: u64,
    window: usize,
    payload: Payload,
    progress: ProgressBar,
) -> anyhow::Result<ProduceReport> {
    let producer = client.producer();
    // Each entry is one unacknowledged record, so the channel's capacity is
    // the window: the sender waits for a slot before it takes the time.
    let (sent, mut sent_rx) = mpsc::channel(window);
    let sender = tokio::spawn(async move {
        for index in first..first + count {
            let Ok(slot) = sent.reserve().await else {
                return Ok(());
            };
            let at = Instant::now();
            let ack = producer.send(payload.value(index)).await?;
            slot.send((at, ack));
        }
        Ok::<_, proglog_client::Error>(())
    });
    let mut latencies_ns = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
    let mut offsets = None;
    while let Some((sent_at, ack)) = sent_rx.recv().await {
        let offset = ack.await?;
        latencies_ns.push(u64::try_from(sent_at.elapsed().as_nanos()).unwrap_or(u64::MAX));
        offsets = match offsets {
            None => Some((offset, offset)),
            Some((first_offset, last_offset)) => {
                anyhow::ensure!(
                    offset > last_offset,
                    "offsets did not increase within a stream: {offset} after {last_offset}"
                );
                Some((first_offset, offset))
            }
        };
        progress.inc(1);
    }
    sender.await.context("the sender task failed")??;
    let acknowledged = latencies_ns.len() as u64;
    anyhow::ensure!(
        acknowledged == count,
        "the producer stopped after {acknowledged} of {count} records"
    );
    Ok(ProduceReport {
        latencies_ns,
        offsets,
    })
}

/// What one consume stream read.
struct ConsumeReport {
    records: u64,
    bytes: u64,
}

/// Reads offsets `from..from + count` over one stream.
async fn consume_slice(
    client: Client,
    from: u64,
    count: u64,
    progress: ProgressBar,
) -> anyhow::Result<ConsumeReport> {
    let mut report = ConsumeReport {
        records: 0,
        bytes: 0,
    };
    if count == 0 {
        return Ok(report);
    }
    let mut stream = client.follow(from);
    while report.records < count {
        let record = stream.next().await.with_context(|| {
            format!(
                "the stream ended after {} of {count} records",
                report.records
            )
        })??;
        let expected = from + report.records;
        anyhow::ensure!(
            record.offset == expected,
            "read offset {} where {expected} was due",
            record.offset
        );
        report.records += 1;
        report.bytes += record.value.len() as u64;
        progress.inc(1);
    }
    // Dropping the stream cancels it; the server stops following the tail.
    Ok(report)
}

/// Throughput of one phase.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Throughput {
    records: u64,
    bytes: u64,
    seconds: f64,
    records_per_second: f64,
    megabytes_per_second: f64,
    mebibytes_per_second: f64,
}

impl Throughput {
    fn new(records: u64, bytes: u64, elapsed: Duration) -> Self {
        let seconds = elapsed.as_secs_f64().max(f64::MIN_POSITIVE);
        Self {
            records,
            bytes,
            seconds,
            records_per_second: records as f64 / seconds,
            megabytes_per_second: bytes as f64 / MEGABYTE / seconds,
            mebibytes_per_second: bytes as f64 / MEBIBYTE / seconds,
        }
    }
}

/// Produce latency percentiles, microseconds.
#[derive(Debug, Serialize)]
struct LatencyUs {
    p50: f64,
    p99: f64,
    p999: f64,
    max: f64,
}

impl LatencyUs {
    /// Nearest-rank percentiles of all samples (exact; 8 bytes per record).
    fn from_samples(mut samples_ns: Vec<u64>) -> Self {
        samples_ns.sort_unstable();
        let at = |quantile: f64| {
            let rank = (quantile * samples_ns.len() as f64).ceil() as usize;
            let ns = samples_ns
                .get(rank.clamp(1, samples_ns.len().max(1)) - 1)
                .copied()
                .unwrap_or(0);
            ns as f64 / 1e3
        };
        Self {
            p50: at(0.50),
            p99: at(0.99),
            p999: at(0.999),
            max: at(1.0),
        }
    }
}

/// The produce phase's results.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ProduceSummary {
    #[serde(flatten)]
    throughput: Throughput,
    /// Produced offsets lie in `first_offset..=last_offset`.
    first_offset: u64,
    last_offset: u64,
    latency_us: LatencyUs,
}

/// The consume phase's results.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ConsumeSummary {
    #[serde(flatten)]
    throughput: Throughput,
    /// How the range was read.
    method: &'static str,
}

/// Everything `proglog bench` reports.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Summary {
    addr: String,
    record_bytes: usize,
    connections: u16,
    window: u32,
    produce: ProduceSummary,
    consume: Option<ConsumeSummary>,
}

fn progress_bar(len: u64, phase: &'static str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let style =
        ProgressStyle::with_template("{prefix:>8} [{bar:40}] {pos}/{len} {per_sec} eta {eta}")
            .map(|style| style.progress_chars("=> "))
            .unwrap_or_else(|_| ProgressStyle::default_bar());
    ProgressBar::new(len).with_style(style).with_prefix(phase)
}

/// Waits for every task; the first failure aborts the rest.
async fn join_all<T: 'static>(
    mut tasks: JoinSet<anyhow::Result<T>>,
    what: &str,
) -> anyhow::Result<Vec<T>> {
    let mut results = Vec::with_capacity(tasks.len());
    while let Some(joined) = tasks.join_next().await {
        let result = joined.with_context(|| format!("a {what} task failed"))?;
        results.push(result.with_context(|| format!("{what} stream failed"))?);
    }
    Ok(results)
}

/// Runs the benchmark.
///
/// # Errors
/// Connection or server errors, or a stream that acknowledged or returned
/// fewer records than it was given.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let connections = u64::from(args.connections).min(args.records);
    let window = usize::try_from(args.window).unwrap_or(usize::MAX);
    let trace = TraceParent::random();
    let mut clients = Vec::new();
    for _ in 0..connections {
        // A client each: its own HTTP/2 connection to every node.
        let client = builder(&args.connect, &trace)?
            .in_flight_max(window)
            .connect()
            .await?;
        clients.push(client);
    }
    let payload = Payload::new(args.size);

    let progress = progress_bar(args.records, "produce");
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    let mut first = 0;
    for (i, client) in (0u64..).zip(&clients) {
        // The first `records % connections` streams take one more record.
        let count = args.records / connections + u64::from(i < args.records % connections);
        tasks.spawn(produce_stream(
            client.clone(),
            first,
            count,
            window,
            payload.clone(),
            progress.clone(),
        ));
        first += count;
    }
    let reports = join_all(tasks, "produce").await?;
    let produce_elapsed = started.elapsed();
    progress.finish_and_clear();

    let first_offset = reports
        .iter()
        .filter_map(|r| r.offsets)
        .map(|(first, _)| first)
        .min();
    let last_offset = reports
        .iter()
        .filter_map(|r| r.offsets)
        .map(|(_, last)| last)
        .max();
    let (Some(first_offset), Some(last_offset)) = (first_offset, last_offset) else {
        anyhow::bail!("no record was acknowledged");
    };
    let latencies_ns = reports.into_iter().flat_map(|r| r.latencies_ns).collect();
    let produce = ProduceSummary {
        throughput: Throughput::new(
            args.records,
            args.records * args.size as u64,
            produce_elapsed,
        ),
        first_offset,
        last_offset,
        latency_us: LatencyUs::from_samples(latencies_ns),
    };

    let consume = if args.skip_consume {
        None
    } else {
        // Other producers may have interleaved; their records are read too.
        let total = last_offset - first_offset + 1;
        let progress = progress_bar(total, "consume");
        let started = Instant::now();
        let mut tasks = JoinSet::new();
        let mut from = first_offset;
        for (i, client) in (0u64..).zip(&clients) {
            let count = total / connections + u64::from(i < total % connections);
            tasks.spawn(consume_slice(client.clone(), from, count, progress.clone()));
            from += count;
        }
        let reports = join_all(tasks, "consume").await?;
        let elapsed = started.elapsed();
        progress.finish_and_clear();
        let records = reports.iter().map(|r| r.records).sum();
        let bytes = reports.iter().map(|r| r.bytes).sum();
        Some(ConsumeSummary {
            throughput: Throughput::new(records, bytes, elapsed),
            method: "one ConsumeStream per connection, each over a contiguous slice of the produced range",
        })
    };

    let summary = Summary {
        addr: args.connect.addr.clone(),
        record_bytes: args.size,
        connections: u16::try_from(connections).unwrap_or(u16::MAX),
        window: args.window,
        produce,
        consume,
    };
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        print!("{}", human(&summary));
    }
    Ok(())
}

fn rate_line(t: &Throughput) -> String {
    format!(
        "{:.3} s, {:.0} records/s, {:.2} MB/s ({:.2} MiB/s)",
        t.seconds, t.records_per_second, t.megabytes_per_second, t.mebibytes_per_second
    )
}

fn human(summary: &Summary) -> String {
    let produce = &summary.produce;
    let latency = &produce.latency_us;
    let mut text = format!(
        "bench against {}: {} connections\n\
         produce  {} records x {} B = {:.2} MB, one ProduceStream per connection, window {}\n\
         \x20        {}\n\
         \x20        latency p50 {:.0} us, p99 {:.0} us, p99.9 {:.0} us, max {:.0} us\n\
         \x20        offsets {}..={}\n",
        summary.addr,
        summary.connections,
        produce.throughput.records,
        summary.record_bytes,
        produce.throughput.bytes as f64 / MEGABYTE,
        summary.window,
        rate_line(&produce.throughput),
        latency.p50,
        latency.p99,
        latency.p999,
        latency.max,
        produce.first_offset,
        produce.last_offset,
    );
    if let Some(consume) = &summary.consume {
        text.push_str(&format!(
            "consume  {} records = {:.2} MB, {}\n\
             \x20        {}\n",
            consume.throughput.records,
            consume.throughput.bytes as f64 / MEGABYTE,
            consume.method,
            rate_line(&consume.throughput),
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_deterministic_sized_and_not_all_zero() {
        let (a, b) = (Payload::new(100), Payload::new(100));
        for index in [0, 1, 250, 251, 1_000_000] {
            let value = a.value(index);
            assert_eq!(value, b.value(index));
            assert_eq!(value.len(), 100);
            assert!(value.iter().any(|&byte| byte != 0));
        }
        assert_ne!(a.value(0), a.value(1));
        assert_eq!(Payload::new(0).value(7).len(), 0);
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let samples: Vec<u64> = (1..=1000).map(|us| us * 1000).collect();
        let latency = LatencyUs::from_samples(samples);
        assert_eq!(
            (latency.p50, latency.p99, latency.p999, latency.max),
            (500.0, 990.0, 999.0, 1000.0)
        );
        assert_eq!(LatencyUs::from_samples(Vec::new()).max, 0.0);
    }
}
