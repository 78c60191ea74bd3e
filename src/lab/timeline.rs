//! What one failover looked like to the client: when the new holder's first gratuitous ARP and
//! first echo reply arrived, and whether two MACs ever answered for the VIP at once.
//!
//! Pure functions over the probe's [`Sighting`]s, so the verdict is unit-tested without a kernel.
//!
//! **Split brain**, as a client experiences it: after the new holder has answered once, any
//! further claim or answer from another MAC. The old holder answering *before* the new one is
//! not split brain (the VIP simply has not moved yet); a node that keeps the address after its
//! daemon died and keeps answering "who has the VIP?" is (keepalived after SIGKILL). A window
//! opens at the new holder's last sighting before the foreign one (from then on both answered)
//! and closes when the new holder has answered alone for [`CLOSE_AFTER`].

use std::time::{Duration, Instant};

use pnet::util::MacAddr;
use serde::Serialize;

use super::probe::{Seen, Sighting};

/// How long only the new holder must answer before a split-brain window counts as closed:
/// several of the probe's questions ([`super::probe::ASK_EVERY`]) without a second answer.
pub const CLOSE_AFTER: Duration = Duration::from_millis(250);

/// A period in which two MACs answered for the VIP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// From when both answered.
    pub start: Instant,
    /// The last answer from the other MAC.
    pub end: Instant,
    /// The MAC that answered besides the new holder.
    pub other: MacAddr,
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
    let mut last_new: Option<Instant> = None;
    let mut open: Option<Window> = None;
    for s in seen {
        if s.mac == new {
            match s.seen {
                Seen::Garp => {
                    view.first_garp.get_or_insert(s.at);
                }
                Seen::EchoReply => {
                    view.first_reply.get_or_insert(s.at);
                }
                Seen::ArpReply => {}
            }
            if let Some(window) = open.filter(|w| s.at - w.end > CLOSE_AFTER) {
                view.split_brain.push(window);
                open = None;
            }
            last_new = Some(s.at);
        } else if let Some(since) = last_new {
            let window = open.get_or_insert(Window {
                start: since,
                end: s.at,
                other: s.mac,
            });
            window.end = s.at;
        }
    }
    if let Some(window) = open {
        view.still_split = end.saturating_duration_since(window.end) <= CLOSE_AFTER;
        view.split_brain.push(window);
    }
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
        assert_eq!((w.length(), w.other), (Duration::from_millis(51), OLD));
        assert!(!view.still_split);
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
