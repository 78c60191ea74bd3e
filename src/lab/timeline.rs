//! What one failover looked like to the client: when the new holder's first gratuitous ARP and
//! first echo reply arrived, and whether two MACs ever answered for the VIP at once.
//!
//! Pure functions over the probe's [`Sighting`]s, so the verdict is unit-tested without a kernel.
//!
//! **Split brain**, as a client experiences it: two MACs answering for the VIP *at the same
//! time*. Each MAC is "answering" over the intervals its sightings cover, sightings less than
//! [`JOIN_GAP`] apart joining into one interval (the probe asks every 50 ms, so a node that keeps
//! the VIP answers continuously); a split-brain window is where two MACs' intervals overlap. A
//! clean handover (the old holder's last answer before the new holder's first) has none; a node
//! that keeps the address after its daemon died has one until someone removes it (keepalived
//! after SIGKILL); two VRRP masters after a partition heals have one until one yields.

use std::time::{Duration, Instant};

use pnet::util::MacAddr;
use serde::Serialize;

use super::probe::{Seen, Sighting};

/// Sightings of one MAC closer than this are one answering interval: several of the probe's
/// questions ([`super::probe::ASK_EVERY`]).
pub const JOIN_GAP: Duration = Duration::from_millis(250);

/// A period in which two MACs answered for the VIP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// From when both answered.
    pub start: Instant,
    /// Until when both answered.
    pub end: Instant,
    /// The two MACs (the first pair found, if more overlapped).
    pub macs: (MacAddr, MacAddr),
}

impl Window {
    /// How long two MACs answered.
    pub fn length(&self) -> Duration {
        self.end - self.start
    }
}

/// The client's view of one failover, measured from the fault.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientView {
    /// The new holder's first gratuitous ARP.
    pub first_garp: Option<Instant>,
    /// The first echo reply through the VIP from the new holder: the end of the blackout.
    pub first_reply: Option<Instant>,
    /// Periods in which two MACs answered.
    pub split_brain: Vec<Window>,
    /// Whether a split-brain window was still open when observation ended.
    pub still_split: bool,
}

/// Analyses the sightings from `fault` to `end`; `new` is the MAC of the node that holds the VIP
/// after the failover.
pub fn analyse(fault: Instant, end: Instant, new: MacAddr, sightings: &[Sighting]) -> ClientView {
    let mut seen: Vec<&Sighting> = sightings
        .iter()
        .filter(|s| s.at >= fault && s.at <= end)
        .collect();
    seen.sort_by_key(|s| s.at);
    let mut view = ClientView::default();
    for s in seen.iter().filter(|s| s.mac == new) {
        match s.seen {
            Seen::Garp => view.first_garp = view.first_garp.or(Some(s.at)),
            Seen::EchoReply => view.first_reply = view.first_reply.or(Some(s.at)),
            Seen::ArpReply => {}
        }
    }
    // Each MAC's answering intervals.
    let mut intervals: Vec<(MacAddr, Instant, Instant)> = Vec::new();
    for s in &seen {
        match intervals.iter_mut().rev().find(|(mac, _, _)| *mac == s.mac) {
            Some(last) if s.at - last.2 <= JOIN_GAP => last.2 = s.at,
            _ => intervals.push((s.mac, s.at, s.at)),
        }
    }
    // Overlaps between different MACs, merged into windows.
    let mut overlaps: Vec<Window> = Vec::new();
    for (i, a) in intervals.iter().enumerate() {
        for b in intervals.iter().skip(i + 1).filter(|b| b.0 != a.0) {
            let (start, stop) = (a.1.max(b.1), a.2.min(b.2));
            if start <= stop {
                overlaps.push(Window {
                    start,
                    end: stop,
                    macs: (a.0, b.0),
                });
            }
        }
    }
    overlaps.sort_by_key(|w| w.start);
    for w in overlaps {
        match view.split_brain.last_mut() {
            Some(last) if w.start <= last.end => last.end = last.end.max(w.end),
            _ => view.split_brain.push(w),
        }
    }
    view.still_split = view
        .split_brain
        .last()
        .is_some_and(|w| end.saturating_duration_since(w.end) <= JOIN_GAP);
    view
}

/// A duration in milliseconds with microsecond precision, for reports.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// One failover round's figures, in milliseconds from the fault (None: not observed).
#[derive(Debug, Clone, Default, Serialize)]
pub struct RoundFigures {
    /// Fault → the new holder's first gratuitous ARP seen by the client.
    pub fault_to_first_garp_ms: Option<f64>,
    /// Fault → first echo reply through the VIP from the new holder (the blackout).
    pub fault_to_first_reply_ms: Option<f64>,
    /// Lease acquired → first gratuitous ARP sent, as the new holder measured it (kvip only).
    pub takeover_ms: Option<f64>,
    /// Fault → the Lease written with the new holder (kvip only).
    pub fault_to_lease_ms: Option<f64>,
    /// Fault → VIP on the new holder's interface (kvip only; the holder's own measurement
    /// added to the server's write time).
    pub fault_to_vip_up_ms: Option<f64>,
    /// How many split-brain windows.
    pub split_brain_windows: usize,
    /// Their total length.
    pub split_brain_ms: f64,
    /// Whether one was still open when observation ended.
    pub still_split: bool,
}

impl RoundFigures {
    /// Fills the client-side figures from a [`ClientView`].
    pub fn from_view(fault: Instant, view: &ClientView) -> Self {
        let since = |at: Option<Instant>| at.map(|at| ms(at.saturating_duration_since(fault)));
        RoundFigures {
            fault_to_first_garp_ms: since(view.first_garp),
            fault_to_first_reply_ms: since(view.first_reply),
            split_brain_windows: view.split_brain.len(),
            split_brain_ms: view.split_brain.iter().map(|w| ms(w.length())).sum(),
            still_split: view.still_split,
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: MacAddr = MacAddr(2, 0, 0, 0, 0, 1);
    const NEW: MacAddr = MacAddr(2, 0, 0, 0, 0, 2);

    fn at(t0: Instant, ms: u64, mac: MacAddr, seen: Seen) -> Sighting {
        Sighting {
            at: t0 + Duration::from_millis(ms),
            mac,
            seen,
        }
    }

    #[test]
    fn a_clean_handover_has_no_split_brain_and_ends_at_the_first_reply() {
        let t0 = Instant::now();
        let s = [
            at(t0, 0, OLD, Seen::EchoReply),
            at(t0, 10, OLD, Seen::ArpReply),
            at(t0, 40, NEW, Seen::Garp),
            at(t0, 42, NEW, Seen::EchoReply),
            at(t0, 50, NEW, Seen::ArpReply),
        ];
        let view = analyse(t0, t0 + Duration::from_secs(1), NEW, &s);
        assert_eq!(view.first_garp, Some(t0 + Duration::from_millis(40)));
        assert_eq!(view.first_reply, Some(t0 + Duration::from_millis(42)));
        assert!(view.split_brain.is_empty());
        assert!(!view.still_split);
    }

    #[test]
    fn the_old_mac_answering_after_the_new_one_is_a_window() {
        let t0 = Instant::now();
        let s = [
            at(t0, 40, NEW, Seen::Garp),
            at(t0, 50, NEW, Seen::ArpReply),
            at(t0, 51, OLD, Seen::ArpReply),
            at(t0, 100, NEW, Seen::ArpReply),
            at(t0, 101, OLD, Seen::ArpReply),
            at(t0, 900, NEW, Seen::ArpReply),
        ];
        let view = analyse(t0, t0 + Duration::from_secs(1), NEW, &s);
        assert_eq!(view.split_brain.len(), 1);
        let w = view.split_brain[0];
        assert_eq!(w.length(), Duration::from_millis(49));
        assert!(!view.still_split);
    }

    #[test]
    fn two_masters_until_the_old_one_wins_back_is_one_closed_window() {
        let t0 = Instant::now();
        let mut s = vec![at(t0, 40, NEW, Seen::Garp)];
        s.extend((1..=10).map(|i| at(t0, 50 * i, NEW, Seen::ArpReply)));
        // The healed old master answers from 300 ms on; the new one yields at 500 ms.
        s.extend((6..=19).map(|i| at(t0, 50 * i + 1, OLD, Seen::ArpReply)));
        let view = analyse(t0, t0 + Duration::from_secs(1), NEW, &s);
        assert_eq!(view.split_brain.len(), 1);
        assert_eq!(view.split_brain[0].length(), Duration::from_millis(199));
        assert!(!view.still_split, "{view:?}");
    }

    #[test]
    fn a_node_that_keeps_answering_is_still_split_at_the_end() {
        let t0 = Instant::now();
        let s: Vec<Sighting> = (0..20)
            .flat_map(|i| {
                [
                    at(t0, 100 + i * 50, NEW, Seen::ArpReply),
                    at(t0, 101 + i * 50, OLD, Seen::ArpReply),
                ]
            })
            .collect();
        let view = analyse(t0, t0 + Duration::from_millis(1_100), NEW, &s);
        assert_eq!(view.split_brain.len(), 1);
        assert!(view.still_split);
    }

    #[test]
    fn sightings_before_the_fault_do_not_count() {
        let t0 = Instant::now();
        let s = [
            at(t0, 0, NEW, Seen::Garp),
            at(t0, 5, OLD, Seen::ArpReply),
            at(t0, 100, NEW, Seen::Garp),
        ];
        let fault = t0 + Duration::from_millis(50);
        let view = analyse(fault, t0 + Duration::from_secs(1), NEW, &s);
        assert!(view.split_brain.is_empty());
        assert_eq!(view.first_garp, Some(t0 + Duration::from_millis(100)));
    }
}
