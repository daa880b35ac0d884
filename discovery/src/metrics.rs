//! Gossip metrics, all under `proglog_gossip_`.

use crate::envelope::DropReason;

/// A packet went out.
pub(crate) fn packet_sent(bytes: usize) {
    metrics::counter!("proglog_gossip_packets_sent_total").increment(1);
    metrics::counter!("proglog_gossip_bytes_sent_total").increment(bytes as u64);
}

/// A packet came in (before it is opened).
pub(crate) fn packet_received(bytes: usize) {
    metrics::counter!("proglog_gossip_packets_received_total").increment(1);
    metrics::counter!("proglog_gossip_bytes_received_total").increment(bytes as u64);
}

/// A packet was dropped before it reached foca, or could not be sent.
pub(crate) fn packet_dropped(reason: &'static str) {
    metrics::counter!("proglog_gossip_packets_dropped_total", "reason" => reason).increment(1);
}

/// A received packet that did not open.
pub(crate) fn envelope_refused(reason: DropReason) {
    packet_dropped(reason.label());
}

/// foca refused an input (decode errors, data from ourselves, ...).
pub(crate) fn foca_error(kind: &'static str) {
    metrics::counter!("proglog_gossip_foca_errors_total", "kind" => kind).increment(1);
}

/// The members known, by state.
pub(crate) fn members(alive: usize, suspect: usize, down: usize) {
    metrics::gauge!("proglog_gossip_members", "state" => "alive").set(alive as f64);
    metrics::gauge!("proglog_gossip_members", "state" => "suspect").set(suspect as f64);
    metrics::gauge!("proglog_gossip_members", "state" => "down").set(down as f64);
}
