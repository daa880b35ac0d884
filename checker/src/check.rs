//! The check: a history against every replica's records.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;

use crate::anomaly::Anomaly;
use crate::history::{History, Outcome};
use crate::report::Report;

/// One replica's records, indexed both ways.
struct Contents<'a> {
    name: &'a str,
    /// Offset to the values listed there (more than one is a conflict).
    by_offset: BTreeMap<u64, Vec<&'a Bytes>>,
    /// Value to the offsets it is at, ascending.
    by_value: HashMap<&'a [u8], Vec<u64>>,
}

impl<'a> Contents<'a> {
    fn new(name: &'a str, records: &'a [(u64, Bytes)]) -> Self {
        let mut by_offset: BTreeMap<u64, Vec<&Bytes>> = BTreeMap::new();
        let mut by_value: HashMap<&[u8], Vec<u64>> = HashMap::new();
        for (offset, value) in records {
            by_offset.entry(*offset).or_default().push(value);
            by_value.entry(value.as_ref()).or_default().push(*offset);
        }
        for offsets in by_value.values_mut() {
            offsets.sort_unstable();
            offsets.dedup();
        }
        Self {
            name,
            by_offset,
            by_value,
        }
    }
}

/// Checks `history` against `replicas`, each a name and the records that
/// replica holds as (offset, value), in any order. Pass every replica's
/// complete contents once the run has settled: a replica still catching up
/// shows as losses, and one that dropped a prefix (retention, compaction)
/// as losses and gaps.
///
/// Values the history never mentions (a Raft leader's empty entry, say)
/// are not judged themselves, but still count for gaps, conflicts and
/// divergence. What each anomaly means is on [`Anomaly`]; the report lists
/// them grouped by kind, each kind in offset or history order.
pub fn check<S: AsRef<str>>(history: &History, replicas: &[(S, Vec<(u64, Bytes)>)]) -> Report {
    let contents: Vec<Contents<'_>> = replicas
        .iter()
        .map(|(name, records)| Contents::new(name.as_ref(), records))
        .collect();
    let mut report = Report {
        replicas: contents.len(),
        ..Report::default()
    };
    let mut anomalies = Vec::new();
    let mut highest_acked: Option<u64> = None;
    let mut lowest_acked: Option<u64> = None;

    for operation in history.operations() {
        let value = operation.value.as_ref();
        if operation.invocations > 1 {
            anomalies.push(Anomaly::ReusedValue {
                value: operation.value.clone(),
                invocations: operation.invocations,
            });
        }
        for replica in &contents {
            if let Some(offsets) = replica.by_value.get(value).filter(|o| o.len() > 1) {
                anomalies.push(Anomaly::Duplicated {
                    value: operation.value.clone(),
                    replica: replica.name.to_owned(),
                    offsets: offsets.clone(),
                });
            }
        }
        match operation.outcome {
            Outcome::Ok(acked_offset) => {
                report.acked += 1;
                highest_acked = highest_acked.max(Some(acked_offset));
                lowest_acked = Some(lowest_acked.map_or(acked_offset, |o| o.min(acked_offset)));
                let mut missing_on = Vec::new();
                for replica in &contents {
                    match replica.by_value.get(value) {
                        None => missing_on.push(replica.name.to_owned()),
                        // Duplicates are reported above; an ack is right if
                        // one of the copies is where the client was told.
                        Some(offsets) if !offsets.contains(&acked_offset) => {
                            anomalies.push(Anomaly::WrongOffset {
                                value: operation.value.clone(),
                                acked_offset,
                                replica: replica.name.to_owned(),
                                stored_offset: offsets[0],
                            });
                        }
                        Some(_) => {}
                    }
                }
                if !missing_on.is_empty() {
                    anomalies.push(Anomaly::Lost {
                        value: operation.value.clone(),
                        acked_offset,
                        missing_on,
                    });
                }
            }
            Outcome::Failed => {
                report.failed += 1;
                for replica in &contents {
                    if let Some(offsets) = replica.by_value.get(value) {
                        anomalies.push(Anomaly::FailedButStored {
                            value: operation.value.clone(),
                            replica: replica.name.to_owned(),
                            offset: offsets[0],
                        });
                    }
                }
            }
            Outcome::Pending | Outcome::Indeterminate => {
                report.indeterminate += 1;
                if contents.iter().any(|r| r.by_value.contains_key(value)) {
                    report.indeterminate_stored += 1;
                }
            }
        }
    }

    // Every offset that some replica holds, with each replica's values.
    let mut at_offset: BTreeMap<u64, Vec<(String, Bytes)>> = BTreeMap::new();
    for replica in &contents {
        for (offset, values) in &replica.by_offset {
            let listed = at_offset.entry(*offset).or_default();
            for value in values {
                listed.push((replica.name.to_owned(), (*value).clone()));
            }
        }
    }
    for (offset, values) in &at_offset {
        if values.iter().any(|(_, value)| *value != values[0].1) {
            anomalies.push(Anomaly::OffsetConflict {
                offset: *offset,
                values: values.clone(),
            });
        }
    }

    if let Some((lowest, highest)) = lowest_acked.zip(highest_acked) {
        for replica in &contents {
            let first = replica
                .by_offset
                .keys()
                .next()
                .map_or(lowest, |&o| o.min(lowest));
            let mut expected = first;
            for &offset in replica.by_offset.range(first..=highest).map(|(o, _)| o) {
                if offset > expected {
                    anomalies.push(Anomaly::Gap {
                        replica: replica.name.to_owned(),
                        from: expected,
                        to: offset,
                    });
                }
                expected = offset + 1;
            }
            if expected <= highest {
                anomalies.push(Anomaly::Gap {
                    replica: replica.name.to_owned(),
                    from: expected,
                    to: highest + 1,
                });
            }
        }
    }

    let mut last_read: HashMap<u64, u64> = HashMap::new();
    for read in history.reads() {
        if let Some(&previous_offset) = last_read.get(&read.consumer)
            && read.offset <= previous_offset
        {
            anomalies.push(Anomaly::NonMonotonicRead {
                consumer: read.consumer,
                previous_offset,
                offset: read.offset,
            });
        }
        last_read.insert(read.consumer, read.offset);
        let held = at_offset
            .get(&read.offset)
            .is_some_and(|values| values.iter().any(|(_, value)| *value == read.value));
        if !held {
            anomalies.push(Anomaly::ReadMismatch {
                consumer: read.consumer,
                offset: read.offset,
                value: read.value.clone(),
            });
        }
    }

    if let Some((reference, others)) = contents.split_first() {
        for replica in others {
            let differs = replica.by_offset.iter().find(|(offset, values)| {
                reference
                    .by_offset
                    .get(offset)
                    .is_some_and(|theirs| theirs != *values)
            });
            if let Some((&offset, _)) = differs {
                anomalies.push(Anomaly::Divergence {
                    reference: reference.name.to_owned(),
                    replica: replica.name.to_owned(),
                    offset,
                });
            }
        }
    }

    // Stable: each kind keeps the order it was found in.
    anomalies.sort_by_key(Anomaly::kind);
    report.anomalies = anomalies;
    report
}

#[cfg(test)]
mod tests {
    //! Each test builds a small run by hand, the clean one and one per
    //! anomaly, and checks that exactly the anomalies planted are reported.

    use std::collections::BTreeSet;
    use std::time::Duration;

    use super::*;
    use crate::AnomalyKind;

    type Replicas = Vec<(&'static str, Vec<(u64, Bytes)>)>;

    fn records(values: &[(u64, &'static str)]) -> Vec<(u64, Bytes)> {
        values
            .iter()
            .map(|&(offset, value)| (offset, Bytes::from_static(value.as_bytes())))
            .collect()
    }

    /// Offsets 0..4 hold a, b, c, d on three replicas; a, b and d acked,
    /// c timed out (and was written), e timed out (and was not), f failed.
    /// Consumer 1 reads 0, 1, 3; consumer 2 reads 1, 2.
    fn clean() -> (History, Replicas) {
        let mut history = History::new();
        for value in ["a", "b", "c", "d", "e", "f"] {
            history.invoke(value);
        }
        history.ok("a", 0);
        history.ok("b", 1);
        history.timeout("c");
        history.ok("d", 3);
        history.timeout("e");
        history.fail("f");
        history.read(1, 0, "a");
        history.read(2, 1, "b");
        history.read(1, 1, "b");
        history.read(2, 2, "c");
        history.read(1, 3, "d");
        let all = records(&[(0, "a"), (1, "b"), (2, "c"), (3, "d")]);
        let replicas = vec![("n1", all.clone()), ("n2", all.clone()), ("n3", all)];
        (history, replicas)
    }

    fn kinds(report: &Report) -> BTreeSet<AnomalyKind> {
        report.anomalies().iter().map(Anomaly::kind).collect()
    }

    fn replica<'a>(replicas: &'a mut Replicas, name: &str) -> &'a mut Vec<(u64, Bytes)> {
        &mut replicas
            .iter_mut()
            .find(|(n, _)| *n == name)
            .expect("a replica of that name")
            .1
    }

    #[test]
    fn a_clean_history_passes_with_its_figures() {
        let (history, replicas) = clean();
        let report = check(&history, &replicas);
        assert!(report.is_ok(), "{report:#}");
        assert_eq!(
            (
                report.acked,
                report.indeterminate,
                report.indeterminate_stored,
                report.failed,
                report.replicas
            ),
            (3, 2, 1, 1, 3)
        );
    }

    #[test]
    fn a_pending_attempt_is_indeterminate_and_values_outside_the_history_are_not_judged() {
        let (mut history, mut replicas) = clean();
        history.invoke("g");
        // A leader's empty entry at 4 on every replica, not in the history.
        for (_, records) in &mut replicas {
            records.push((4, Bytes::from_static(b"")));
        }
        history.ok("h", 5);
        for (_, records) in &mut replicas {
            records.push((5, Bytes::from_static(b"h")));
        }
        let report = check(&history, &replicas);
        assert!(report.is_ok(), "{report:#}");
        assert_eq!((report.acked, report.indeterminate), (4, 3));
    }

    #[test]
    fn an_acknowledged_value_missing_on_one_replica_is_lost_there() {
        let (history, mut replicas) = clean();
        replica(&mut replicas, "n2").retain(|(offset, _)| *offset != 1);
        let report = check(&history, &replicas);
        assert_eq!(report.lost(), 1, "{report:#}");
        assert!(report.anomalies().contains(&Anomaly::Lost {
            value: Bytes::from_static(b"b"),
            acked_offset: 1,
            missing_on: vec!["n2".into()],
        }));
        // The hole it leaves is a gap on n2 too.
        assert_eq!(
            kinds(&report),
            BTreeSet::from([AnomalyKind::Lost, AnomalyKind::Gap])
        );
    }

    #[test]
    fn an_acknowledged_value_missing_everywhere_names_every_replica() {
        let (history, mut replicas) = clean();
        for (_, records) in &mut replicas {
            records.retain(|(offset, _)| *offset != 3);
        }
        let report = check(&history, &replicas);
        assert!(report.anomalies().contains(&Anomaly::Lost {
            value: Bytes::from_static(b"d"),
            acked_offset: 3,
            missing_on: vec!["n1".into(), "n2".into(), "n3".into()],
        }));
        // Offset 3 was the tail: the acknowledged prefix now ends short.
        assert!(report.anomalies().contains(&Anomaly::Gap {
            replica: "n1".into(),
            from: 3,
            to: 4
        }));
        // Consumer 1 read d at 3, which no replica holds any more.
        assert_eq!(report.bad_reads(), 1, "{report:#}");
    }

    #[test]
    fn a_value_written_twice_is_duplicated() {
        let (history, mut replicas) = clean();
        for (_, records) in &mut replicas {
            records.push((4, Bytes::from_static(b"b")));
        }
        let report = check(&history, &replicas);
        assert_eq!(report.duplicated(), 3, "{report:#}");
        assert!(report.anomalies().contains(&Anomaly::Duplicated {
            value: Bytes::from_static(b"b"),
            replica: "n3".into(),
            offsets: vec![1, 4],
        }));
        assert_eq!(kinds(&report), BTreeSet::from([AnomalyKind::Duplicated]));
    }

    #[test]
    fn an_acknowledged_value_at_another_offset_is_inconsistent() {
        let (history, mut replicas) = clean();
        // Every replica has b and c swapped: b was acked at 1.
        for (_, records) in &mut replicas {
            *records = self::records(&[(0, "a"), (1, "c"), (2, "b"), (3, "d")]);
        }
        let report = check(&history, &replicas);
        assert!(report.anomalies().contains(&Anomaly::WrongOffset {
            value: Bytes::from_static(b"b"),
            acked_offset: 1,
            replica: "n1".into(),
            stored_offset: 2,
        }));
        assert_eq!(report.count(AnomalyKind::WrongOffset), 3);
        // The consumers read b at 1 and c at 2: neither is there now.
        assert_eq!(
            kinds(&report),
            BTreeSet::from([AnomalyKind::WrongOffset, AnomalyKind::ReadMismatch])
        );
    }

    #[test]
    fn two_values_at_one_offset_across_replicas_conflict_and_diverge() {
        let (history, mut replicas) = clean();
        // n3 holds an unacknowledged x where the others hold c (a timed
        // out value: no loss, but the log is no longer one log).
        replica(&mut replicas, "n3")[2].1 = Bytes::from_static(b"x");
        let report = check(&history, &replicas);
        assert_eq!(report.inconsistent_offsets(), 1, "{report:#}");
        assert!(report.anomalies().contains(&Anomaly::OffsetConflict {
            offset: 2,
            values: vec![
                ("n1".into(), Bytes::from_static(b"c")),
                ("n2".into(), Bytes::from_static(b"c")),
                ("n3".into(), Bytes::from_static(b"x")),
            ],
        }));
        assert!(report.anomalies().contains(&Anomaly::Divergence {
            reference: "n1".into(),
            replica: "n3".into(),
            offset: 2,
        }));
        assert_eq!(
            kinds(&report),
            BTreeSet::from([AnomalyKind::OffsetConflict, AnomalyKind::Divergence])
        );
    }

    #[test]
    fn one_replica_listing_two_values_at_one_offset_conflicts() {
        let (history, mut replicas) = clean();
        replica(&mut replicas, "n1").push((0, Bytes::from_static(b"y")));
        let report = check(&history, &replicas);
        assert_eq!(report.count(AnomalyKind::OffsetConflict), 1, "{report:#}");
        assert_eq!(report.divergent_replicas(), 2, "n2 and n3 differ from n1");
    }

    #[test]
    fn a_hole_inside_the_acknowledged_prefix_is_a_gap() {
        let (history, mut replicas) = clean();
        // Offset 2 holds the timed-out c: losing it loses no ack, but
        // leaves a hole below the acknowledged d at 3.
        replica(&mut replicas, "n2").retain(|(offset, _)| *offset != 2);
        let report = check(&history, &replicas);
        assert_eq!(
            report.anomalies(),
            &[Anomaly::Gap {
                replica: "n2".into(),
                from: 2,
                to: 3
            }]
        );
        assert_eq!(report.gaps(), 1);
    }

    #[test]
    fn records_past_the_highest_acknowledged_offset_may_be_sparse() {
        let (history, mut replicas) = clean();
        for (_, records) in &mut replicas {
            records.push((9, Bytes::from_static(b"e")));
        }
        let report = check(&history, &replicas);
        assert!(report.is_ok(), "{report:#}");
        assert_eq!(report.indeterminate_stored, 2);
    }

    #[test]
    fn a_consumer_reading_backwards_or_twice_is_non_monotonic() {
        let (mut history, replicas) = clean();
        history.read(2, 1, "b");
        history.read(1, 3, "d");
        let report = check(&history, &replicas);
        assert_eq!(
            report.anomalies(),
            &[
                Anomaly::NonMonotonicRead {
                    consumer: 2,
                    previous_offset: 2,
                    offset: 1
                },
                Anomaly::NonMonotonicRead {
                    consumer: 1,
                    previous_offset: 3,
                    offset: 3
                },
            ]
        );
    }

    #[test]
    fn reading_a_value_no_replica_holds_there_is_a_mismatch() {
        let (mut history, replicas) = clean();
        history.read(3, 2, "b");
        history.read(3, 7, "z");
        let report = check(&history, &replicas);
        assert_eq!(report.count(AnomalyKind::ReadMismatch), 2, "{report:#}");
        assert_eq!(kinds(&report), BTreeSet::from([AnomalyKind::ReadMismatch]));
    }

    #[test]
    fn replicas_that_disagree_on_their_common_prefix_diverge() {
        let (history, mut replicas) = clean();
        // n2 lags (holds 0..2 only, which is a loss of d there), and n3
        // holds a different tail past what was acknowledged.
        replica(&mut replicas, "n2").truncate(2);
        replica(&mut replicas, "n3").push((4, Bytes::from_static(b"p")));
        replica(&mut replicas, "n1").push((4, Bytes::from_static(b"q")));
        let report = check(&history, &replicas);
        assert!(report.anomalies().contains(&Anomaly::Divergence {
            reference: "n1".into(),
            replica: "n3".into(),
            offset: 4,
        }));
        assert_eq!(report.divergent_replicas(), 1, "n2's prefix agrees");
    }

    #[test]
    fn a_refused_value_that_is_stored_is_reported() {
        let (history, mut replicas) = clean();
        for (_, records) in &mut replicas {
            records.push((4, Bytes::from_static(b"f")));
        }
        let report = check(&history, &replicas);
        assert_eq!(report.count(AnomalyKind::FailedButStored), 3, "{report:#}");
        assert_eq!(
            kinds(&report),
            BTreeSet::from([AnomalyKind::FailedButStored])
        );
    }

    #[test]
    fn a_value_invoked_twice_breaks_the_history() {
        let (mut history, replicas) = clean();
        history.invoke("a");
        let report = check(&history, &replicas);
        assert_eq!(
            report.anomalies(),
            &[Anomaly::ReusedValue {
                value: Bytes::from_static(b"a"),
                invocations: 2
            }]
        );
    }

    #[test]
    fn an_acknowledgement_is_final() {
        let mut history = History::new();
        history.ok("a", 4);
        history.timeout("a");
        history.fail("a");
        assert_eq!(history.outcome(b"a"), Some(Outcome::Ok(4)));
        assert_eq!(history.outcome(b"b"), None);
    }

    #[test]
    fn every_kind_of_anomaly_is_caught_by_one_of_the_bad_histories() {
        // The union of what the tests above plant: if a kind is added to
        // `AnomalyKind` without a bad history, this fails.
        let all = [
            AnomalyKind::Lost,
            AnomalyKind::Duplicated,
            AnomalyKind::WrongOffset,
            AnomalyKind::OffsetConflict,
            AnomalyKind::Gap,
            AnomalyKind::NonMonotonicRead,
            AnomalyKind::ReadMismatch,
            AnomalyKind::Divergence,
            AnomalyKind::FailedButStored,
            AnomalyKind::ReusedValue,
        ];
        let (history, replicas) = clean();
        let mut caught = BTreeSet::new();
        let mut bad = |history: &History, replicas: &Replicas| {
            caught.extend(kinds(&check(history, replicas)));
        };
        let mut lost = replicas.clone();
        replica(&mut lost, "n1").remove(0);
        bad(&history, &lost);
        let mut twice = replicas.clone();
        replica(&mut twice, "n1").push((5, Bytes::from_static(b"a")));
        bad(&history, &twice);
        let mut moved = replicas.clone();
        replica(&mut moved, "n1")[0].0 = 7;
        bad(&history, &moved);
        let mut reread = history.clone();
        reread.read(1, 0, "a");
        reread.invoke("b");
        reread.read(3, 2, "zz");
        bad(&reread, &replicas);
        let mut refused = replicas.clone();
        replica(&mut refused, "n2").push((4, Bytes::from_static(b"f")));
        bad(&history, &refused);
        let mut other = replicas;
        replica(&mut other, "n3")[1].1 = Bytes::from_static(b"w");
        bad(&history, &other);
        // Exhaustive by construction: a new variant breaks this match.
        for kind in all {
            match kind {
                AnomalyKind::Lost
                | AnomalyKind::Duplicated
                | AnomalyKind::WrongOffset
                | AnomalyKind::OffsetConflict
                | AnomalyKind::Gap
                | AnomalyKind::NonMonotonicRead
                | AnomalyKind::ReadMismatch
                | AnomalyKind::Divergence
                | AnomalyKind::FailedButStored
                | AnomalyKind::ReusedValue => {}
            }
        }
        assert_eq!(caught, BTreeSet::from(all));
    }

    #[test]
    fn the_report_prints_its_figures_and_with_alternate_each_anomaly() {
        let (history, mut replicas) = clean();
        replica(&mut replicas, "n3").retain(|(offset, _)| *offset != 0);
        let mut report = check(&history, &replicas);
        report.elections = 2;
        report.longest_unavailability = Duration::from_millis(1500);
        let line = report.to_string();
        assert!(
            line.starts_with("ANOMALIES: 3 replicas, acked 3, lost 1,"),
            "{line}"
        );
        assert!(line.contains("indeterminate 2 (1 stored)"), "{line}");
        assert!(
            line.contains("elections 2, longest unavailability 1.500s"),
            "{line}"
        );
        assert!(!line.contains('\n'));
        let long = format!("{report:#}");
        assert!(
            long.contains("\n  lost: \"a\" acknowledged at 0 is missing on n3"),
            "{long}"
        );
        let (history, replicas) = clean();
        assert!(check(&history, &replicas).to_string().starts_with("ok: "));
    }
}
