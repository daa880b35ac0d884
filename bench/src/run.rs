//! The run: ceilings, then every (repetition, mode, size, system) cell, then
//! the report.
//!
//! Systems alternate within each repetition and their order rotates from
//! one repetition to the next, so drift on the machine (page-cache
//! writeback, thermal limits, the other tenant) spreads over all of them.
//! Every workload group gets a freshly started system with an empty data
//! directory: one for one-at-a-time, one for pipelined, one for concurrent
//! producers followed by the consume reads of what they wrote. A fresh
//! proglog also makes its VmHWM that of the concurrent workload alone.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::ceilings::Ceilings;
use crate::cli::CompareArgs;
use crate::driver::{Connection, ProducePlan};
use crate::machine::MachineInfo;
use crate::payload::Payload;
use crate::report::{Report, RssPeak, Sample, size_label, summarize};
use crate::service::{Executables, Service, nats_accepts_sync_always};
use crate::stats::Latency;
use crate::system::{Mode, System, Workload};

/// Everything a cell needs besides its coordinates.
struct Context<'a> {
    args: &'a CompareArgs,
    executables: Executables,
    work_dir: PathBuf,
    nats_sync_always: bool,
}

/// Runs the whole comparison, prints the report and writes it to
/// `args.output`.
///
/// # Errors
/// A binary is missing, a system fails to start or to answer, or the
/// report cannot be written.
pub async fn run(args: &CompareArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    anyhow::ensure!(
        !args.systems.contains(&System::Proglog) || args.proglog.exists(),
        "{} does not exist; build it with `cargo build --release -p agent`",
        args.proglog.display()
    );
    let work_dir = args.work_dir.clone().unwrap_or_else(std::env::temp_dir);
    let executables = Executables {
        proglog: args.proglog.clone(),
        nats_server: args.nats_server.clone(),
        redis_server: args.redis_server.clone(),
    };
    let machine = MachineInfo::collect(&executables.nats_server, &executables.redis_server);
    let nats_sync_always = if args.systems.contains(&System::Nats) {
        nats_accepts_sync_always(&executables.nats_server, &work_dir)?
    } else {
        false
    };
    if !nats_sync_always && args.systems.contains(&System::Nats) {
        eprintln!(
            "note: nats-server rejects `sync_interval: always`; its durable rows are NOT fsynced"
        );
    }

    eprintln!(
        "measuring the machine's ceilings ({} s each) in {}",
        args.ceiling_seconds,
        work_dir.display()
    );
    let ceilings = Ceilings::measure(&work_dir, args.ceiling_seconds).await?;
    eprintln!(
        "  page cache {:.0} MB/s, 1 MiB+fdatasync {:.0} MB/s, 4 KiB+fdatasync {:.0}/s, loopback TCP {:.0} MB/s",
        ceilings.page_cache_write_mb_per_s,
        ceilings.fdatasync_write_mb_per_s,
        ceilings.small_fdatasyncs_per_s,
        ceilings.loopback_tcp_mb_per_s
    );

    let context = Context {
        args,
        executables,
        work_dir,
        nats_sync_always,
    };
    let mut samples = Vec::new();
    let mut rss_peaks = Vec::new();
    for repetition in 0..args.repetitions {
        let mut systems = args.systems.clone();
        let turn = usize::try_from(repetition).unwrap_or(0) % systems.len().max(1);
        systems.rotate_left(turn);
        for &mode in &args.modes {
            for &size_bytes in &args.sizes {
                for &system in &systems {
                    eprintln!(
                        "[{}/{}] {system} {mode} {} ({:.0} s so far)",
                        repetition + 1,
                        args.repetitions,
                        size_label(size_bytes),
                        started.elapsed().as_secs_f64()
                    );
                    context
                        .run_cell(system, mode, size_bytes, &mut samples, &mut rss_peaks)
                        .await
                        .with_context(|| format!("{system} {mode} {}", size_label(size_bytes)))?;
                }
            }
        }
    }

    let report = Report {
        machine,
        ceilings,
        rows: summarize(&samples),
        rss_peaks,
        nats_sync_always,
        plan: plan_lines(args),
        wall_time: started.elapsed(),
    };
    let markdown = report.markdown();
    print!("{markdown}");
    write_report(&args.output, &markdown)?;
    eprintln!(
        "wrote {} ({:.0} s in all)",
        args.output.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn write_report(path: &Path, markdown: &str) -> anyhow::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, markdown).with_context(|| format!("cannot write {}", path.display()))
}

/// The parameters as report lines.
fn plan_lines(args: &CompareArgs) -> Vec<String> {
    vec![
        format!(
            "plan: {} repetitions, systems alternating (order rotated each repetition), a fresh \
             server and data directory per workload group",
            args.repetitions
        ),
        format!(
            "records at most: one-at-a-time {}, pipelined {} (window {}), concurrent {} over {} \
             producers (window {} each), consume reads what the concurrent producers wrote in \
             batches of {}; each workload stops issuing after {} s",
            args.one_at_a_time_records,
            args.pipelined_records,
            args.window,
            args.concurrent_records,
            args.producers,
            args.window,
            args.batch_records,
            args.workload_seconds
        ),
    ]
}

impl Context<'_> {
    async fn start(&self, system: System, mode: Mode) -> anyhow::Result<Service> {
        Service::start(
            system,
            mode,
            &self.executables,
            &self.work_dir,
            self.nats_sync_always,
        )
        .await
    }

    fn deadline(&self) -> Instant {
        Instant::now() + Duration::from_secs_f64(self.args.workload_seconds)
    }

    /// Every workload for one system, mode and size.
    async fn run_cell(
        &self,
        system: System,
        mode: Mode,
        size_bytes: usize,
        samples: &mut Vec<Sample>,
        rss_peaks: &mut Vec<RssPeak>,
    ) -> anyhow::Result<()> {
        let args = self.args;
        let payload = Payload::new(size_bytes);
        let window = usize::try_from(args.window)?;
        let sample = |workload, records, elapsed, latency| {
            let sample = Sample {
                system,
                mode,
                workload,
                size_bytes,
                records,
                elapsed,
                latency,
            };
            progress(&sample);
            sample
        };

        let mut single = vec![
            (Workload::OneAtATime, args.one_at_a_time_records, 1),
            (Workload::Pipelined, args.pipelined_records, window),
        ];
        if system == System::Proglog {
            single.insert(
                1,
                (Workload::OneAtATimeUnary, args.one_at_a_time_records, 1),
            );
        }
        for (workload, records, window) in single {
            let service = self.start(system, mode).await?;
            let connections = open(system, service.port(), 1).await?;
            let unary = workload == Workload::OneAtATimeUnary;
            let (acked, elapsed, latency) = self
                .produce(&connections, records, window, &payload, unary)
                .await?;
            samples.push(sample(workload, acked, elapsed, latency));
            drop(connections);
            drop(service);
            sync_disks().await;
        }

        let service = self.start(system, mode).await?;
        let connections = open(system, service.port(), args.producers).await?;
        let (acked, elapsed, latency) = self
            .produce(
                &connections,
                args.concurrent_records,
                window,
                &payload,
                false,
            )
            .await?;
        samples.push(sample(Workload::Concurrent, acked, elapsed, latency));
        if system == System::Proglog {
            let bytes = service.peak_rss_bytes()?;
            eprintln!("    proglog peak RSS {:.0} MiB", bytes as f64 / 1_048_576.0);
            rss_peaks.push(RssPeak {
                mode,
                size_bytes,
                bytes,
            });
        }
        let reader = &connections[0];
        let batch = usize::try_from(args.batch_records)?;
        let started = Instant::now();
        let read = reader
            .consume_batches(acked, batch, self.deadline())
            .await?;
        samples.push(sample(
            Workload::Consume,
            read.records,
            started.elapsed(),
            None,
        ));
        if system == System::Proglog {
            let started = Instant::now();
            let read = reader.consume_stream(acked, self.deadline()).await?;
            samples.push(sample(
                Workload::ConsumeStream,
                read.records,
                started.elapsed(),
                None,
            ));
        }
        drop(connections);
        drop(service);
        sync_disks().await;
        Ok(())
    }

    /// `records` split over the connections, each producing with `window`
    /// in flight (or, with `unary`, proglog's unary calls one at a time),
    /// all stopping at one deadline. Returns the records acknowledged, the
    /// wall time and the latency percentiles.
    async fn produce(
        &self,
        connections: &[Connection],
        records: u64,
        window: usize,
        payload: &Payload,
        unary: bool,
    ) -> anyhow::Result<(u64, Duration, Option<Latency>)> {
        let producers = connections.len() as u64;
        let started = Instant::now();
        let deadline = self.deadline();
        let mut tasks = tokio::task::JoinSet::new();
        let mut first = 0;
        for (index, connection) in (0u64..).zip(connections) {
            // The first `records % producers` producers take one more.
            let count = records / producers + u64::from(index < records % producers);
            let plan = ProducePlan {
                first,
                count,
                window,
                deadline,
                payload: payload.clone(),
            };
            let connection = connection.clone();
            tasks.spawn(async move {
                if unary {
                    connection.produce_unary(plan).await
                } else {
                    connection.produce(plan).await
                }
            });
            first += count;
        }
        let mut latencies_ns = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            latencies_ns.extend(joined.context("a producer task failed")??);
        }
        let elapsed = started.elapsed();
        let acked = latencies_ns.len() as u64;
        anyhow::ensure!(acked > 0, "no record was acknowledged");
        Ok((acked, elapsed, Latency::from_samples(latencies_ns)))
    }
}

/// `count` new connections, each prepared for produce.
async fn open(system: System, port: u16, count: u64) -> anyhow::Result<Vec<Connection>> {
    let mut connections = Vec::new();
    for _ in 0..count {
        let connection = Connection::open(system, port).await?;
        connection.prepare().await?;
        connections.push(connection);
    }
    Ok(connections)
}

/// Flushes dirty pages left by the last system, so the next one does not
/// pay for its writeback.
async fn sync_disks() {
    let _ = tokio::task::spawn_blocking(|| std::process::Command::new("sync").status()).await;
}

fn progress(sample: &Sample) {
    let latency = sample
        .latency
        .map(|l| format!(", p50 {:.0} µs, p99 {:.0} µs", l.p50_us, l.p99_us))
        .unwrap_or_default();
    eprintln!(
        "    {:<22} {:>9} records in {:>5.2} s = {:>8.0} records/s{latency}",
        sample.workload.to_string(),
        sample.records,
        sample.elapsed.as_secs_f64(),
        sample.records_per_s()
    );
}
