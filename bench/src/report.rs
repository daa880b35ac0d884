//! Turning samples into the table, the targets and `bench/results/latest.md`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use crate::ceilings::Ceilings;
use crate::machine::MachineInfo;
use crate::stats::{Latency, median};
use crate::system::{Mode, System, Workload};

/// The record size the targets are stated for.
const TARGET_SIZE_BYTES: usize = 1024;

/// proglog's memory budget under the concurrent-producer workload.
const RSS_BUDGET_BYTES: u64 = 256 << 20;

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
    /// A figure to read, with no pass mark.
    Info,
    /// A row the target needs was not run.
    NoData,
}

/// One line of the targets section.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// What is compared.
    pub name: String,
    /// The figures.
    pub figure: String,
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

    /// The targets: proglog against the machine's ceilings and the peers.
    pub fn targets(&self) -> Vec<Target> {
        let size = TARGET_SIZE_BYTES;
        let ceilings = &self.ceilings;
        let mut targets = Vec::new();
        let ours = |mode, workload| self.row(System::Proglog, mode, workload, size);
        let peer = |system, mode, workload| self.row(system, mode, workload, size);

        let relaxed = ours(Mode::Relaxed, Workload::Pipelined);
        targets.push(share(
            "produce pipelined, 1 KiB, relaxed, share of the page-cache write ceiling",
            relaxed,
            ceilings.page_cache_write_mb_per_s,
        ));
        for system in [System::Nats, System::Redis] {
            targets.push(versus(
                format!(
                    "produce pipelined, 1 KiB, relaxed, vs {system} ({})",
                    Mode::Relaxed.sync_label(system, self.nats_sync_always)
                ),
                relaxed,
                peer(system, Mode::Relaxed, Workload::Pipelined),
            ));
        }
        for workload in [Workload::Pipelined, Workload::Concurrent] {
            let durable = ours(Mode::Durable, workload);
            targets.push(versus(
                format!("{workload}, 1 KiB, durable, vs redis (appendfsync always)"),
                durable,
                peer(System::Redis, Mode::Durable, workload),
            ));
            targets.push(share(
                &format!("{workload}, 1 KiB, durable, share of the 1 MiB fdatasync ceiling"),
                durable,
                ceilings.fdatasync_write_mb_per_s,
            ));
        }
        let consume_mode = if ours(Mode::Relaxed, Workload::Consume).is_some() {
            Mode::Relaxed
        } else {
            Mode::Durable
        };
        for workload in [Workload::Consume, Workload::ConsumeStream] {
            targets.push(share(
                &format!("{workload}, 1 KiB, share of the loopback TCP ceiling"),
                ours(consume_mode, workload),
                ceilings.loopback_tcp_mb_per_s,
            ));
        }
        targets.push(versus(
            "consume batches, 1 KiB, vs nats pull consumer".to_owned(),
            ours(consume_mode, Workload::Consume),
            peer(System::Nats, consume_mode, Workload::Consume),
        ));
        for size_bytes in self.sizes() {
            let redis = self.row(
                System::Redis,
                Mode::Relaxed,
                Workload::OneAtATime,
                size_bytes,
            );
            for workload in [Workload::OneAtATime, Workload::OneAtATimeUnary] {
                let ours = self.row(System::Proglog, Mode::Relaxed, workload, size_bytes);
                let name = format!(
                    "{workload}, {}, relaxed, p50 latency vs redis (appendfsync 1 s)",
                    size_label(size_bytes)
                );
                targets.push(
                    match (ours.and_then(|r| r.p50_us), redis.and_then(|r| r.p50_us)) {
                        (Some(ours), Some(redis)) => Target {
                            name,
                            figure: format!(
                                "{ours:.0} µs vs {redis:.0} µs ({})",
                                ratio(ours, redis)
                            ),
                            verdict: if ours <= redis {
                                Verdict::Met
                            } else {
                                Verdict::Missed
                            },
                        },
                        _ => no_data(name),
                    },
                );
            }
        }
        let name = "proglog peak RSS under concurrent producers vs 256 MiB".to_owned();
        targets.push(match self.rss_peaks.iter().map(|p| p.bytes).max() {
            Some(peak) => Target {
                name,
                figure: format!(
                    "{:.0} MiB (largest of {} runs)",
                    peak as f64 / 1_048_576.0,
                    self.rss_peaks.len()
                ),
                verdict: if peak <= RSS_BUDGET_BYTES {
                    Verdict::Met
                } else {
                    Verdict::Missed
                },
            },
            None => no_data(name),
        });
        targets
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
        let _ = writeln!(text, "\n## Targets\n");
        let targets: Vec<Vec<String>> = self
            .targets()
            .into_iter()
            .map(|t| vec![t.name, t.figure, verdict_label(t.verdict).to_owned()])
            .collect();
        text.push_str(&format_table(&["target", "figure", "verdict"], &targets));
        text
    }
}

fn verdict_label(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Met => "met",
        Verdict::Missed => "MISSED",
        Verdict::Info => "—",
        Verdict::NoData => "not run",
    }
}

fn no_data(name: String) -> Target {
    Target {
        name,
        figure: "—".to_owned(),
        verdict: Verdict::NoData,
    }
}

/// proglog against a peer: met when proglog's rate is at least the peer's.
fn versus(name: String, ours: Option<&Row>, peer: Option<&Row>) -> Target {
    match (ours, peer) {
        (Some(ours), Some(peer)) => Target {
            name,
            figure: format!(
                "{:.0} vs {:.0} records/s ({})",
                ours.records_per_s,
                peer.records_per_s,
                ratio(ours.records_per_s, peer.records_per_s)
            ),
            verdict: if ours.records_per_s >= peer.records_per_s {
                Verdict::Met
            } else {
                Verdict::Missed
            },
        },
        _ => no_data(name),
    }
}

/// proglog's MB/s as a share of a ceiling.
fn share(name: &str, ours: Option<&Row>, ceiling_mb_per_s: f64) -> Target {
    match ours {
        Some(ours) => Target {
            name: name.to_owned(),
            figure: format!(
                "{:.1} of {:.0} MB/s = {:.1} %",
                ours.mb_per_s(),
                ceiling_mb_per_s,
                100.0 * ours.mb_per_s() / ceiling_mb_per_s.max(f64::MIN_POSITIVE)
            ),
            verdict: Verdict::Info,
        },
        None => no_data(name.to_owned()),
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

    #[test]
    fn sizes_and_ratios_read_naturally() {
        assert_eq!(size_label(100), "100 B");
        assert_eq!(size_label(1024), "1 KiB");
        assert_eq!(ratio(3.0, 2.0), "1.50×");
        assert_eq!(ratio(1.0, 0.0), "—");
    }
}
