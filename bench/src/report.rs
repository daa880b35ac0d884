//! Turning samples into the table, the targets and `bench/results/latest.md`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use crate::ceilings::Ceilings;
use crate::machine::MachineInfo;
use crate::stats::{Latency, median};
use crate::system::{Mode, System, Workload};

/// The project's targets for proglog (issue 6), in one place. Each is
/// evaluated from the same run's figures: proglog's medians against the
/// peers' medians on the same workload, record size and mode, and against the
/// machine ceilings measured at the start of the run.
pub mod goals {
    /// The record size the throughput targets are stated for.
    pub const SIZE_BYTES: usize = 1024;
    /// Pipelined produce, relaxed (`--fsync interval`): at least this share
    /// of the page-cache write ceiling, in MB/s.
    pub const RELAXED_PIPELINED_PAGE_CACHE_SHARE: f64 = 0.80;
    /// Pipelined produce, relaxed: at least this many times NATS
    /// JetStream's records/s on the same workload, size and mode.
    pub const RELAXED_PIPELINED_VS_NATS: f64 = 2.0;
    /// Pipelined produce, relaxed: at least this many times Redis
    /// `appendfsync everysec`'s records/s.
    pub const RELAXED_PIPELINED_VS_REDIS: f64 = 2.0;
    /// Pipelined and concurrent-producer produce, durable (`--fsync
    /// always`): at least this many times Redis `appendfsync always`'s
    /// records/s.
    pub const DURABLE_PRODUCE_VS_REDIS: f64 = 1.5;
    /// Pipelined and concurrent-producer produce, durable: at least this
    /// share of the "1 MiB write + fdatasync" ceiling, in MB/s.
    pub const DURABLE_PRODUCE_FDATASYNC_SHARE: f64 = 0.30;
    /// Consume from the start: proglog's better of batches and stream, at
    /// least this share of the loopback TCP ceiling, in MB/s.
    pub const CONSUME_LOOPBACK_SHARE: f64 = 0.40;
    /// Consume from the start, in batches: at least this many times the NATS
    /// pull consumer's records/s.
    pub const CONSUME_VS_NATS: f64 = 2.0;
    /// One-at-a-time acked produce, relaxed, over `ProduceStream` with a
    /// window of one: p50 latency at most this many times Redis
    /// `appendfsync everysec`'s p50.
    pub const ONE_AT_A_TIME_P50_VS_REDIS: f64 = 1.0;
    /// proglog's peak RSS during the concurrent-producer workload, at most.
    pub const RSS_BUDGET_BYTES: u64 = 256 << 20;
}

/// One workload run against one system.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The system measured.
    pub system: System,
    /// Its durability mode.
    pub mode: Mode,
    /// What was run.
    pub workload: Workload,
    /// Bytes per record value.
    pub size_bytes: usize,
    /// Records acknowledged (produce) or read (consume).
    pub records: u64,
    /// Wall time of the whole workload.
    pub elapsed: Duration,
    /// Request latency percentiles, for produce workloads.
    pub latency: Option<Latency>,
}

impl Sample {
    /// Records per second.
    pub fn records_per_s(&self) -> f64 {
        self.records as f64 / self.elapsed.as_secs_f64().max(f64::MIN_POSITIVE)
    }
}

/// The median over repetitions of one (system, mode, workload, size).
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The system measured.
    pub system: System,
    /// Its durability mode.
    pub mode: Mode,
    /// What was run.
    pub workload: Workload,
    /// Bytes per record value.
    pub size_bytes: usize,
    /// Median records per second.
    pub records_per_s: f64,
    /// Median p50 latency, microseconds.
    pub p50_us: Option<f64>,
    /// Median p99 latency, microseconds.
    pub p99_us: Option<f64>,
    /// Repetitions the medians are over.
    pub runs: usize,
}

impl Row {
    /// Median value megabytes (10^6 bytes) per second.
    pub fn mb_per_s(&self) -> f64 {
        self.records_per_s * self.size_bytes as f64 / 1e6
    }
}

/// The medians of `samples`, ordered by mode, workload, size, then system.
pub fn summarize(samples: &[Sample]) -> Vec<Row> {
    let mut groups: BTreeMap<(Mode, Workload, usize, System), Vec<&Sample>> = BTreeMap::new();
    for sample in samples {
        let key = (
            sample.mode,
            sample.workload,
            sample.size_bytes,
            sample.system,
        );
        groups.entry(key).or_default().push(sample);
    }
    groups
        .into_iter()
        .map(|((mode, workload, size_bytes, system), group)| {
            let rates: Vec<f64> = group.iter().map(|s| s.records_per_s()).collect();
            let p50: Vec<f64> = group
                .iter()
                .filter_map(|s| s.latency)
                .map(|l| l.p50_us)
                .collect();
            let p99: Vec<f64> = group
                .iter()
                .filter_map(|s| s.latency)
                .map(|l| l.p99_us)
                .collect();
            Row {
                system,
                mode,
                workload,
                size_bytes,
                records_per_s: median(&rates).unwrap_or(0.0),
                p50_us: median(&p50),
                p99_us: median(&p99),
                runs: group.len(),
            }
        })
        .collect()
}

/// proglog's peak resident memory in one concurrent-producer run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RssPeak {
    /// Its durability mode.
    pub mode: Mode,
    /// Bytes per record value.
    pub size_bytes: usize,
    /// VmHWM at the end of the workload, bytes.
    pub bytes: u64,
}

/// Whether a target is met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The figure meets the target.
    Met,
    /// It does not.
    Missed,
    /// A row or ceiling the target needs was not measured.
    NoData,
}

impl Verdict {
    fn of(met: bool) -> Self {
        if met { Self::Met } else { Self::Missed }
    }
}

/// One line of the targets section.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// What is compared.
    pub name: String,
    /// The measured figures.
    pub measured: String,
    /// The target they are held to (from [`goals`]).
    pub goal: String,
    /// The outcome.
    pub verdict: Verdict,
}

/// Everything a run produced.
#[derive(Debug, Clone)]
pub struct Report {
    /// What it ran on.
    pub machine: MachineInfo,
    /// The machine's limits.
    pub ceilings: Ceilings,
    /// Medians per (system, mode, workload, size).
    pub rows: Vec<Row>,
    /// proglog's peak RSS per concurrent-producer run.
    pub rss_peaks: Vec<RssPeak>,
    /// Whether nats-server accepted `sync_interval: always`.
    pub nats_sync_always: bool,
    /// The run's parameters, one line each.
    pub plan: Vec<String>,
    /// Wall time of the whole run.
    pub wall_time: Duration,
}

impl Report {
    fn row(
        &self,
        system: System,
        mode: Mode,
        workload: Workload,
        size_bytes: usize,
    ) -> Option<&Row> {
        self.rows.iter().find(|row| {
            (row.system, row.mode, row.workload, row.size_bytes)
                == (system, mode, workload, size_bytes)
        })
    }

    /// The results table: one line per row, with proglog's rate divided by
    /// each peer's on the peer's line.
    pub fn table(&self) -> String {
        let header = [
            "system",
            "mode",
            "sync",
            "workload",
            "size",
            "records/s",
            "MB/s",
            "p50 µs",
            "p99 µs",
            "proglog/peer",
        ];
        let lines: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|row| {
                let ratio = match row.system {
                    System::Proglog => "—".to_owned(),
                    _ => self
                        .row(System::Proglog, row.mode, row.workload, row.size_bytes)
                        .map_or("—".to_owned(), |ours| {
                            ratio(ours.records_per_s, row.records_per_s)
                        }),
                };
                vec![
                    row.system.to_string(),
                    row.mode.to_string(),
                    row.mode
                        .sync_label(row.system, self.nats_sync_always)
                        .to_owned(),
                    row.workload.to_string(),
                    size_label(row.size_bytes),
                    format!("{:.0}", row.records_per_s),
                    format!("{:.1}", row.mb_per_s()),
                    row.p50_us.map_or("—".to_owned(), |us| format!("{us:.0}")),
                    row.p99_us.map_or("—".to_owned(), |us| format!("{us:.0}")),
                    ratio,
                ]
            })
            .collect();
        format_table(&header, &lines)
    }

    /// The targets of issue 6 (see [`goals`]), each with its measured
    /// figures and verdict.
    pub fn targets(&self) -> Vec<Target> {
        let size = goals::SIZE_BYTES;
        let ceilings = &self.ceilings;
        let mut targets = Vec::new();
        let ours = |mode, workload| self.row(System::Proglog, mode, workload, size);
        let peer = |system, mode, workload| self.row(system, mode, workload, size);

        let relaxed = ours(Mode::Relaxed, Workload::Pipelined);
        targets.push(share(
            "produce pipelined, 1 KiB, relaxed, share of the page-cache write ceiling".to_owned(),
            relaxed.map(|row| ("", row)),
            ceilings.page_cache_write_mb_per_s,
            goals::RELAXED_PIPELINED_PAGE_CACHE_SHARE,
        ));
        for (system, factor) in [
            (System::Nats, goals::RELAXED_PIPELINED_VS_NATS),
            (System::Redis, goals::RELAXED_PIPELINED_VS_REDIS),
        ] {
            targets.push(versus(
                format!(
                    "produce pipelined, 1 KiB, relaxed, vs {system} ({})",
                    Mode::Relaxed.sync_label(system, self.nats_sync_always)
                ),
                relaxed,
                system,
                peer(system, Mode::Relaxed, Workload::Pipelined),
                factor,
            ));
        }
        for workload in [Workload::Pipelined, Workload::Concurrent] {
            let durable = ours(Mode::Durable, workload);
            targets.push(versus(
                format!("{workload}, 1 KiB, durable, vs redis (appendfsync always)"),
                durable,
                System::Redis,
                peer(System::Redis, Mode::Durable, workload),
                goals::DURABLE_PRODUCE_VS_REDIS,
            ));
            targets.push(share(
                format!("{workload}, 1 KiB, durable, share of the 1 MiB fdatasync ceiling"),
                durable.map(|row| ("", row)),
                ceilings.fdatasync_write_mb_per_s,
                goals::DURABLE_PRODUCE_FDATASYNC_SHARE,
            ));
        }
        let consume_mode = if ours(Mode::Relaxed, Workload::Consume).is_some() {
            Mode::Relaxed
        } else {
            Mode::Durable
        };
        let best_consume = [Workload::Consume, Workload::ConsumeStream]
            .into_iter()
            .filter_map(|workload| ours(consume_mode, workload))
            .reduce(|best, row| {
                if row.records_per_s > best.records_per_s {
                    row
                } else {
                    best
                }
            });
        targets.push(share(
            format!(
                "consume, 1 KiB, {consume_mode}, better of batches and stream, share of the \
                 loopback TCP ceiling"
            ),
            best_consume.map(|row| (consume_label(row.workload), row)),
            ceilings.loopback_tcp_mb_per_s,
            goals::CONSUME_LOOPBACK_SHARE,
        ));
        targets.push(versus(
            format!("consume batches, 1 KiB, {consume_mode}, vs nats pull consumer"),
            ours(consume_mode, Workload::Consume),
            System::Nats,
            peer(System::Nats, consume_mode, Workload::Consume),
            goals::CONSUME_VS_NATS,
        ));
        for size_bytes in self.sizes() {
            targets.push(self.one_at_a_time_latency(size_bytes));
        }
        targets.push(rss(&self.rss_peaks));
        targets
    }

    /// proglog's one-at-a-time p50 (`ProduceStream`, window 1) against
    /// Redis `everysec`'s, relaxed, with the unary row's p50 for reference.
    fn one_at_a_time_latency(&self, size_bytes: usize) -> Target {
        let p50 = |system, workload| {
            self.row(system, Mode::Relaxed, workload, size_bytes)
                .and_then(|row| row.p50_us)
        };
        let factor = goals::ONE_AT_A_TIME_P50_VS_REDIS;
        let name = format!(
            "{} (stream, window 1), {}, relaxed, p50 latency vs redis (appendfsync 1 s)",
            Workload::OneAtATime,
            size_label(size_bytes)
        );
        let goal = format!("p50 ≤ {factor}× redis p50");
        let (Some(ours), Some(redis)) = (
            p50(System::Proglog, Workload::OneAtATime),
            p50(System::Redis, Workload::OneAtATime),
        ) else {
            return no_data(name, goal);
        };
        let unary = p50(System::Proglog, Workload::OneAtATimeUnary)
            .map_or("not run".to_owned(), |us| format!("{us:.0} µs"));
        Target {
            name,
            measured: format!(
                "{ours:.0} µs vs {redis:.0} µs ({}); unary {unary}",
                ratio(ours, redis)
            ),
            goal,
            verdict: Verdict::of(ours <= factor * redis),
        }
    }

    fn sizes(&self) -> Vec<usize> {
        let mut sizes: Vec<usize> = self.rows.iter().map(|row| row.size_bytes).collect();
        sizes.sort_unstable();
        sizes.dedup();
        sizes
    }

    /// The whole report as Markdown (also readable as plain text).
    pub fn markdown(&self) -> String {
        let machine = &self.machine;
        let ceilings = &self.ceilings;
        let mut text = String::new();
        let _ = writeln!(text, "# proglog vs NATS JetStream vs Redis streams\n");
        let _ = writeln!(
            text,
            "The latest `make compare` run only (see bench/README.md for what each \
             workload and mode means). Loopback only; client and servers share the machine.\n"
        );
        let _ = writeln!(text, "## Run\n");
        let _ = writeln!(
            text,
            "- date: {}, wall time {:.0} s",
            machine.date,
            self.wall_time.as_secs_f64()
        );
        let _ = writeln!(text, "- proglog commit: {}", machine.git_commit);
        let _ = writeln!(
            text,
            "- machine: {} CPUs ({}), {} memory, Linux {}",
            machine.cpus, machine.cpu_model, machine.memory, machine.kernel
        );
        let _ = writeln!(
            text,
            "- peers: {}; {}",
            machine.nats_version, machine.redis_version
        );
        for line in &self.plan {
            let _ = writeln!(text, "- {line}");
        }
        let _ = writeln!(text, "\n## Machine ceilings (same run)\n");
        let _ = writeln!(
            text,
            "- page-cache sequential write, 1 MiB writes, no sync: {:.0} MB/s",
            ceilings.page_cache_write_mb_per_s
        );
        let _ = writeln!(
            text,
            "- 1 MiB write + fdatasync: {:.0} MB/s",
            ceilings.fdatasync_write_mb_per_s
        );
        let _ = writeln!(
            text,
            "- 4 KiB write + fdatasync: {:.0} syncs/s",
            ceilings.small_fdatasyncs_per_s
        );
        let _ = writeln!(
            text,
            "- loopback TCP, one tokio stream, 1 MiB writes: {:.0} MB/s",
            ceilings.loopback_tcp_mb_per_s
        );
        let runs = self.rows.iter().map(|row| row.runs).max().unwrap_or(0);
        let _ = writeln!(text, "\n## Results (median of {runs} repetitions)\n");
        text.push_str(&self.table());
        let _ = writeln!(
            text,
            "\nMB/s counts record values only (10^6 bytes). Latency runs from handing a \
             request to the client library to its ack. proglog/peer divides proglog's \
             records/s by the peer's on that line (above 1: proglog is faster)."
        );
        if !self.nats_sync_always {
            let _ = writeln!(
                text,
                "\n**NATS acks are not fsynced in either mode**: this nats-server rejects \
                 `jetstream {{ sync_interval: always }}` (added in 2.10), so its \"durable\" \
                 rows run the default, which fsyncs every 2 minutes. They are relaxed figures \
                 under a durable label, an upper bound for a durable NATS."
            );
        }
        let _ = writeln!(
            text,
            "\n## proglog peak RSS (VmHWM) under concurrent producers, largest of the repetitions\n"
        );
        let mut peaks: BTreeMap<(Mode, usize), u64> = BTreeMap::new();
        for peak in &self.rss_peaks {
            let largest = peaks.entry((peak.mode, peak.size_bytes)).or_default();
            *largest = (*largest).max(peak.bytes);
        }
        let peaks: Vec<Vec<String>> = peaks
            .into_iter()
            .map(|((mode, size_bytes), bytes)| {
                vec![
                    mode.to_string(),
                    size_label(size_bytes),
                    format!("{:.0}", bytes as f64 / 1_048_576.0),
                ]
            })
            .collect();
        text.push_str(&format_table(&["mode", "size", "peak MiB"], &peaks));
        let _ = writeln!(text, "\n## Targets (issue 6)\n");
        let targets: Vec<Vec<String>> = self
            .targets()
            .into_iter()
            .map(|t| {
                vec![
                    t.name,
                    t.measured,
                    t.goal,
                    verdict_label(t.verdict).to_owned(),
                ]
            })
            .collect();
        text.push_str(&format_table(
            &["target", "measured", "goal", "verdict"],
            &targets,
        ));
        text
    }
}

fn verdict_label(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Met => "met",
        Verdict::Missed => "missed",
        Verdict::NoData => "not run",
    }
}

fn no_data(name: String, goal: String) -> Target {
    Target {
        name,
        measured: "—".to_owned(),
        goal,
        verdict: Verdict::NoData,
    }
}

/// How a consume row is named in a measured figure.
fn consume_label(workload: Workload) -> &'static str {
    match workload {
        Workload::ConsumeStream => "consume stream: ",
        _ => "consume batches: ",
    }
}

/// proglog against a peer: met when proglog's records/s is at least
/// `factor` times `peer`'s (a row of `system`).
fn versus(
    name: String,
    ours: Option<&Row>,
    system: System,
    peer: Option<&Row>,
    factor: f64,
) -> Target {
    let goal = format!("≥ {factor}× {system}");
    match (ours, peer) {
        (Some(ours), Some(peer)) => Target {
            name,
            measured: format!(
                "{:.0} vs {:.0} records/s ({})",
                ours.records_per_s,
                peer.records_per_s,
                ratio(ours.records_per_s, peer.records_per_s)
            ),
            goal,
            verdict: Verdict::of(ours.records_per_s >= factor * peer.records_per_s),
        },
        _ => no_data(name, goal),
    }
}

/// proglog's MB/s as a share of a ceiling: met when at least `min_share`
/// of it. `ours` is the row with a prefix naming it in the figure.
fn share(
    name: String,
    ours: Option<(&str, &Row)>,
    ceiling_mb_per_s: f64,
    min_share: f64,
) -> Target {
    let goal = format!("≥ {:.0} % of ceiling", 100.0 * min_share);
    match ours {
        Some((label, ours)) if ceiling_mb_per_s > 0.0 => Target {
            name,
            measured: format!(
                "{label}{:.1} of {:.0} MB/s = {:.1} %",
                ours.mb_per_s(),
                ceiling_mb_per_s,
                100.0 * ours.mb_per_s() / ceiling_mb_per_s
            ),
            goal,
            verdict: Verdict::of(ours.mb_per_s() >= min_share * ceiling_mb_per_s),
        },
        _ => no_data(name, goal),
    }
}

/// proglog's largest peak RSS over the concurrent-producer runs against
/// the budget.
fn rss(peaks: &[RssPeak]) -> Target {
    let name = "proglog peak RSS, concurrent producers (every mode and size)".to_owned();
    let goal = format!("≤ {:.0} MiB", goals::RSS_BUDGET_BYTES as f64 / 1_048_576.0);
    match peaks.iter().map(|p| p.bytes).max() {
        Some(peak) => Target {
            name,
            measured: format!(
                "{:.0} MiB (largest of {} runs)",
                peak as f64 / 1_048_576.0,
                peaks.len()
            ),
            goal,
            verdict: Verdict::of(peak <= goals::RSS_BUDGET_BYTES),
        },
        None => no_data(name, goal),
    }
}

/// `a / b` as `1.23×`.
pub fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 {
        format!("{:.2}×", a / b)
    } else {
        "—".to_owned()
    }
}

/// `100 B`, `1 KiB`, `4 KiB`, `1500 B`.
pub fn size_label(size_bytes: usize) -> String {
    if size_bytes >= 1024 && size_bytes.is_multiple_of(1024) {
        format!("{} KiB", size_bytes / 1024)
    } else {
        format!("{size_bytes} B")
    }
}

/// A Markdown table with columns padded to their widest cell, so it reads
/// as well in a terminal as rendered.
pub fn format_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, &width)| format!("{cell}{}", " ".repeat(width - cell.chars().count())))
            .collect();
        format!("| {} |\n", padded.join(" | "))
    };
    let mut text = line(header.iter().map(|h| (*h).to_owned()).collect());
    text.push_str(&line(widths.iter().map(|&w| "-".repeat(w)).collect()));
    for row in rows {
        text.push_str(&line(row.clone()));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(system: System, records: u64, p50_us: f64) -> Sample {
        Sample {
            system,
            mode: Mode::Durable,
            workload: Workload::OneAtATime,
            size_bytes: 1024,
            records,
            elapsed: Duration::from_secs(1),
            latency: Some(Latency {
                p50_us,
                p99_us: 2.0 * p50_us,
            }),
        }
    }

    #[test]
    fn rows_are_medians_over_repetitions_in_table_order() {
        let samples = [
            sample(System::Redis, 100, 10.0),
            sample(System::Proglog, 300, 30.0),
            sample(System::Proglog, 100, 10.0),
            sample(System::Proglog, 200, 20.0),
        ];
        let rows = summarize(&samples);
        assert_eq!(rows.len(), 2);
        assert_eq!(
            (rows[0].system, rows[0].records_per_s, rows[0].runs),
            (System::Proglog, 200.0, 3)
        );
        assert_eq!((rows[0].p50_us, rows[0].p99_us), (Some(20.0), Some(40.0)));
        assert_eq!(rows[1].system, System::Redis);
        assert!((rows[0].mb_per_s() - 0.2048).abs() < 1e-9);
    }

    #[test]
    fn tables_pad_columns_to_the_widest_cell() {
        let table = format_table(
            &["a", "long"],
            &[vec!["wide cell".to_owned(), "x".to_owned()]],
        );
        assert_eq!(
            table,
            "| a         | long |\n| --------- | ---- |\n| wide cell | x    |\n"
        );
    }

    fn row(
        system: System,
        mode: Mode,
        workload: Workload,
        size_bytes: usize,
        records_per_s: f64,
        p50_us: Option<f64>,
    ) -> Row {
        Row {
            system,
            mode,
            workload,
            size_bytes,
            records_per_s,
            p50_us,
            p99_us: p50_us.map(|us| 2.0 * us),
            runs: 1,
        }
    }

    /// A run whose figures sit exactly on, or just off, each target. Rates
    /// are for 1 KiB records, so 1000 records/s is 1.024 MB/s.
    fn report(rows: Vec<Row>, rss_peaks: Vec<RssPeak>) -> Report {
        Report {
            machine: MachineInfo::default(),
            ceilings: Ceilings {
                page_cache_write_mb_per_s: 1024.0,
                fdatasync_write_mb_per_s: 102.4,
                small_fdatasyncs_per_s: 1000.0,
                loopback_tcp_mb_per_s: 1024.0,
            },
            rows,
            rss_peaks,
            nats_sync_always: false,
            plan: Vec::new(),
            wall_time: Duration::from_secs(1),
        }
    }

    fn verdicts(report: &Report) -> Vec<(String, Verdict)> {
        report
            .targets()
            .into_iter()
            .map(|t| (t.name, t.verdict))
            .collect()
    }

    #[test]
    fn targets_hold_proglog_to_the_issue_6_thresholds() {
        use Mode::{Durable, Relaxed};
        use System::{Nats, Proglog, Redis};
        use Workload::{
            Concurrent, Consume, ConsumeStream, OneAtATime, OneAtATimeUnary, Pipelined,
        };
        let k = 1024;
        let rows = vec![
            // 800 000 × 1024 B = 819.2 MB/s: exactly 80 % of the page cache.
            row(Proglog, Relaxed, Pipelined, k, 800_000.0, None),
            row(Nats, Relaxed, Pipelined, k, 400_000.0, None),
            row(Redis, Relaxed, Pipelined, k, 400_001.0, None),
            // 30 000 × 1024 B = 30.72 MB/s: exactly 30 % of fdatasync.
            row(Proglog, Durable, Pipelined, k, 30_000.0, None),
            row(Redis, Durable, Pipelined, k, 20_000.0, None),
            row(Proglog, Durable, Concurrent, k, 29_999.0, None),
            row(Redis, Durable, Concurrent, k, 20_000.0, None),
            // The stream is the better consume row: 400 000 records/s is
            // 409.6 MB/s, exactly 40 % of loopback TCP.
            row(Proglog, Relaxed, Consume, k, 300_000.0, None),
            row(Proglog, Relaxed, ConsumeStream, k, 400_000.0, None),
            row(Nats, Relaxed, Consume, k, 150_001.0, None),
            row(Proglog, Relaxed, OneAtATime, k, 100.0, Some(100.0)),
            row(Proglog, Relaxed, OneAtATimeUnary, k, 100.0, Some(250.0)),
            row(Redis, Relaxed, OneAtATime, k, 100.0, Some(100.0)),
            row(Proglog, Relaxed, OneAtATime, 100, 100.0, Some(101.0)),
            row(Redis, Relaxed, OneAtATime, 100, 100.0, Some(100.0)),
        ];
        let peak = |bytes| RssPeak {
            mode: Durable,
            size_bytes: k,
            bytes,
        };
        let report = report(rows, vec![peak(1 << 20), peak(goals::RSS_BUDGET_BYTES)]);
        let got = verdicts(&report);
        let expected = [
            ("relaxed, share of the page-cache", Verdict::Met),
            ("relaxed, vs nats", Verdict::Met),
            ("relaxed, vs redis", Verdict::Missed),
            ("produce pipelined, 1 KiB, durable, vs redis", Verdict::Met),
            ("produce pipelined, 1 KiB, durable, share", Verdict::Met),
            (
                "concurrent producers, 1 KiB, durable, vs redis",
                Verdict::Missed,
            ),
            (
                "concurrent producers, 1 KiB, durable, share",
                Verdict::Missed,
            ),
            ("consume, 1 KiB, relaxed, better of", Verdict::Met),
            ("consume batches, 1 KiB, relaxed, vs nats", Verdict::Missed),
            ("100 B, relaxed, p50", Verdict::Missed),
            ("1 KiB, relaxed, p50", Verdict::Met),
            ("peak RSS", Verdict::Met),
        ];
        assert_eq!(got.len(), expected.len(), "{got:#?}");
        for ((name, verdict), (part, want)) in got.iter().zip(expected) {
            assert!(name.contains(part), "{name:?} is not {part:?}");
            assert_eq!(*verdict, want, "{name}");
        }

        let targets = report.targets();
        let consume = &targets[7];
        assert_eq!(
            consume.measured,
            "consume stream: 409.6 of 1024 MB/s = 40.0 %"
        );
        assert_eq!(consume.goal, "≥ 40 % of ceiling");
        assert_eq!(targets[2].goal, "≥ 2× redis");
        assert_eq!(targets[3].goal, "≥ 1.5× redis");
        assert_eq!(targets[4].goal, "≥ 30 % of ceiling");
        assert_eq!(
            targets[10].measured,
            "100 µs vs 100 µs (1.00×); unary 250 µs"
        );
        assert_eq!(targets[11].goal, "≤ 256 MiB");

        let over = report_with_rss(goals::RSS_BUDGET_BYTES + 1);
        assert_eq!(
            over.targets().last().map(|t| t.verdict),
            Some(Verdict::Missed)
        );
    }

    fn report_with_rss(bytes: u64) -> Report {
        report(
            Vec::new(),
            vec![RssPeak {
                mode: Mode::Relaxed,
                size_bytes: 1024,
                bytes,
            }],
        )
    }

    #[test]
    fn targets_without_their_rows_are_not_run() {
        let report = report(Vec::new(), Vec::new());
        let targets = report.targets();
        // No sizes were run, so there is no latency line.
        assert_eq!(targets.len(), 10);
        assert!(
            targets
                .iter()
                .all(|t| t.verdict == Verdict::NoData && t.measured == "—")
        );
        assert_eq!(targets[1].goal, "≥ 2× nats");
        assert!(report.markdown().contains("| not run |"));
    }

    #[test]
    fn sizes_and_ratios_read_naturally() {
        assert_eq!(size_label(100), "100 B");
        assert_eq!(size_label(1024), "1 KiB");
        assert_eq!(ratio(3.0, 2.0), "1.50×");
        assert_eq!(ratio(1.0, 0.0), "—");
    }
}
