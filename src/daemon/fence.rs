//! The kernel-enforced fence: how long the VIP may live on this node after a renew.
//!
//! The VIP is added with a finite valid lifetime that every successful renew extends. If kvip is
//! SIGKILLed, OOM-killed or frozen, nobody extends it and the kernel deletes the address on its
//! own — before any other node can take the Lease. The deadline is computed from the instant the
//! last successful renew was *sent*: no other node can observe that renew, and so take the Lease,
//! before `sent + lease duration`. A lifetime counted from "now" would let a late response (or a
//! re-add after an external `ip addr del`) push the VIP past that point.
//!
//! The kernel counts lifetimes in whole seconds and its expiry worker may run up to one second
//! late (measured: `valid_lft 2` gone after ~2.05 s), so the fence ends [`KERNEL_SLACK`] plus
//! [`MARGIN`] before the Lease can expire elsewhere, and lifetimes are rounded down.

use std::time::Duration;

use tokio::time::Instant;

/// How late the kernel may delete an address after its valid lifetime ran out.
pub const KERNEL_SLACK: Duration = Duration::from_secs(1);

/// Extra room for clock-rate differences between nodes and scheduling delays.
pub const MARGIN: Duration = Duration::from_millis(250);

/// When the VIP must be gone at the latest, for a renew sent at `renew_sent`.
pub fn deadline(renew_sent: Instant, lease_duration: Duration) -> Instant {
    renew_sent + lease_duration.saturating_sub(KERNEL_SLACK + MARGIN)
}

/// The valid lifetime to give the address at `now` so the kernel deletes it by the deadline, in
/// whole seconds rounded down; `None` when less than one second is left: then the VIP must not be
/// (re-)added at all.
pub fn lifetime(renew_sent: Instant, lease_duration: Duration, now: Instant) -> Option<Duration> {
    let left = deadline(renew_sent, lease_duration).saturating_duration_since(now);
    let secs = left.as_secs();
    (secs >= 1).then(|| Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: Duration = Duration::from_secs(15);

    #[test]
    fn the_vip_is_gone_before_anyone_else_can_hold_the_lease() {
        let sent = Instant::now();
        for late_ms in [0u64, 3, 900, 4_000, 9_999, 12_000] {
            let now = sent + Duration::from_millis(late_ms);
            if let Some(life) = lifetime(sent, D, now) {
                let latest_removal = now + life + KERNEL_SLACK;
                assert!(
                    latest_removal < sent + D,
                    "response {late_ms} ms late: fence outlives the Lease"
                );
            }
        }
    }

    #[test]
    fn a_fresh_renew_gets_most_of_the_lease_and_a_stale_one_none() {
        let sent = Instant::now();
        assert_eq!(
            lifetime(sent, D, sent + Duration::from_millis(2)),
            Some(Duration::from_secs(13))
        );
        assert_eq!(
            lifetime(sent, D, sent + Duration::from_millis(12_700)),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            lifetime(sent, D, sent + Duration::from_millis(12_800)),
            None
        );
        let shortest = crate::config::MIN_LEASE_DURATION;
        assert_eq!(lifetime(sent, shortest, sent), Some(Duration::from_secs(1)));
        assert_eq!(lifetime(sent, Duration::from_secs(2), sent), None);
    }
}
