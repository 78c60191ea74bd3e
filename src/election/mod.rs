//! A Lease elector with client-go semantics, so kvip and kube-vip (or any client-go elector) on the
//! same cluster contend for one lock and never both lead.
//!
//! kube-rs has no elector, kube-leader-election needs kube 4, and kube-lease-manager judges expiry
//! by the local wall clock against the remote `renewTime` (clock skew then decides who leads). This
//! module mirrors client-go's `tools/leaderelection` instead:
//!
//! - the Lease fields are the ones `resourcelock.LeaseLock` writes ([`record`]);
//! - every write is an update conditioned on the `resourceVersion` last read, so a 409 means
//!   someone else won the race;
//! - expiry is the *local monotonic* instant at which this node last observed a change of the
//!   record, plus the record's `leaseDurationSeconds` ([`decide`]); remote clocks never matter.
//!
//! Where kvip differs from client-go, and why:
//!
//! - **Followers watch** the Lease instead of polling every retry period with jitter: they act at
//!   the exact observed expiry (a local timer) and at once when the holder releases. A re-GET every
//!   [`Timings::resync_period`] is the safety net for a watch that stalls silently.
//! - **A holder that cannot renew steps down and keeps competing**, instead of exiting (kube-vip
//!   exits and waits for kubelet's restart back-off). The step-down is driven by a local timer at
//!   `last successful renew + renew deadline`, never by a failing request returning: requests can
//!   hang. The "last successful renew" is the instant the successful request was *sent*, which is
//!   never later than the instant the server recorded it — stricter than client-go, and what makes
//!   the timing invariant below hold.
//! - **Release is explicit.** Cancelling the task never releases: the daemon removes the VIP first
//!   and then calls [`ElectorHandle::release_and_stop`] (kube-vip releases first, which leaves a
//!   window with two holders of the VIP).
//!
//! # Timing invariant (safety)
//!
//! Another node can take the Lease no earlier than `D` (the lease duration) after it observed our
//! last renew, and it cannot observe a renew before we sent it. We step down at `R` (the renew
//! deadline) after sending our last successful renew. With `R < D`, we have stopped announcing and
//! removed the VIP before anyone else can hold the Lease. Every request is bounded by
//! [`Timings::request_timeout`] (`min(R/2, 10 s)`) so a hung request cannot starve the renew loop,
//! and the step-down timer runs concurrently with the request anyway. Clock *rate* differences
//! between nodes eat into `D - R`; client-go's package docs discuss this trade-off.

mod config;
mod decide;
mod elector;
mod events;
mod io;
mod record;

pub use config::{ElectorConfig, ElectorConfigError};
pub use decide::{Action, Observation, decide, observe};
pub use elector::spawn;
pub use events::{ElectionEvent, ElectorHandle, ElectorStatus, ReleaseError, StepDownReason};
pub use record::{LeaderRecord, lease_with_record, now_micro};

use std::time::Duration;

/// The default Lease namespace: kube-vip's, so both contend for one lock.
pub const DEFAULT_LEASE_NAMESPACE: &str = "kube-system";
/// The default Lease name: kube-vip's control-plane lock.
pub const DEFAULT_LEASE_NAME: &str = "plndr-cp-lock";

/// Election timings, validated the way client-go's `NewLeaderElector` does, but returning an error
/// instead of panicking (kube-vip's `RunOrDie` crashes the process on bad timings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timings {
    lease_duration: Duration,
    renew_deadline: Duration,
    retry_period: Duration,
}

/// Why a set of election timings was refused; names the values and the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimingsError {
    /// The retry period must be positive, or the loop would spin.
    #[error("retry period must be > 0 (got {0:?})")]
    ZeroRetry(Duration),
    /// client-go's rule: a holder must give up renewing before anyone else may take over.
    #[error(
        "lease duration ({lease:?}) must be greater than the renew deadline ({renew:?}): a holder that cannot renew must step down before the lease can expire elsewhere"
    )]
    LeaseNotAboveRenew {
        /// The lease duration seen.
        lease: Duration,
        /// The renew deadline seen.
        renew: Duration,
    },
    /// client-go's rule (`JitterFactor` 1.2): the deadline must leave room for at least one retry.
    #[error(
        "renew deadline ({renew:?}) must be greater than 1.2 × the retry period ({retry:?}), so a holder gets at least one retry before it steps down"
    )]
    RenewNotAboveRetry {
        /// The renew deadline seen.
        renew: Duration,
        /// The retry period seen.
        retry: Duration,
    },
}

impl Timings {
    /// Checks `lease duration > renew deadline > 1.2 × retry period > 0`. Sub-second values are
    /// allowed (tests use them); the Lease stores whole seconds, rounded up.
    pub fn new(
        lease_duration: Duration,
        renew_deadline: Duration,
        retry_period: Duration,
    ) -> Result<Self, TimingsError> {
        if retry_period.is_zero() {
            return Err(TimingsError::ZeroRetry(retry_period));
        }
        if lease_duration <= renew_deadline {
            return Err(TimingsError::LeaseNotAboveRenew {
                lease: lease_duration,
                renew: renew_deadline,
            });
        }
        if renew_deadline.as_secs_f64() <= 1.2 * retry_period.as_secs_f64() {
            return Err(TimingsError::RenewNotAboveRetry {
                renew: renew_deadline,
                retry: retry_period,
            });
        }
        Ok(Self {
            lease_duration,
            renew_deadline,
            retry_period,
        })
    }

    /// How long others must wait after observing our last renew before taking over.
    pub fn lease_duration(&self) -> Duration {
        self.lease_duration
    }

    /// How long the holder keeps leading without a successful renew.
    pub fn renew_deadline(&self) -> Duration {
        self.renew_deadline
    }

    /// How often the holder renews (and the base of every other retry).
    pub fn retry_period(&self) -> Duration {
        self.retry_period
    }

    /// `leaseDurationSeconds` as written to the Lease: whole seconds, rounded *up*, so a
    /// sub-second remainder never shortens what other nodes wait (client-go truncates; with
    /// whole-second configurations both agree).
    pub fn lease_duration_seconds(&self) -> i32 {
        let d = self.lease_duration;
        let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
        i32::try_from(secs).unwrap_or(i32::MAX)
    }

    /// The bound on every single API request: well inside the renew deadline, so one hung request
    /// cannot use up the holder's whole budget.
    pub fn request_timeout(&self) -> Duration {
        (self.renew_deadline / 2).min(Duration::from_secs(10))
    }

    /// How often a follower re-reads the Lease even when its watch says nothing: the safety net
    /// for a watch that stalls without ending.
    pub fn resync_period(&self) -> Duration {
        self.retry_period * 4
    }
}

impl Default for Timings {
    /// kvip's defaults, 5 s / 3 s / 1 s, chosen with `benches/failover.rs` (kube-vip's are
    /// 15 s / 10 s / 2 s; a value from a kube-vip manifest still wins over these).
    ///
    /// - **Safe**: zero split-brain windows under the `partition` and `api-outage` faults, as at
    ///   every valid setting (step-down at the renew deadline, kernel fence before expiry).
    /// - **Fast**: a crashed holder is replaced about 5 s after its last renew (about 15 s with
    ///   kube-vip's defaults); a planned stop hands over in milliseconds whatever the timings.
    /// - **Why not shorter**: 3 s is the shortest lease the kernel fence allows, but its fence
    ///   (lease − 1.25 s, whole seconds) would then end before a 2 s renew deadline: a holder
    ///   whose API is merely slow would lose the VIP without stepping down. At 5/3/1 the fence
    ///   (3.75 s) outlasts the renew deadline, a single request may take 1.5 s, and the holder
    ///   rides out 3 s of failing renews; it costs one Lease write per second.
    fn default() -> Self {
        Self {
            lease_duration: Duration::from_secs(5),
            renew_deadline: Duration::from_secs(3),
            retry_period: Duration::from_secs(1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn defaults_are_the_benchmarked_five_three_one_and_valid() {
        let t = Timings::default();
        assert_eq!(Timings::new(ms(5_000), ms(3_000), ms(1_000)), Ok(t));
        assert_eq!(t.lease_duration_seconds(), 5);
        assert_eq!(t.request_timeout(), ms(1_500));
    }

    #[test]
    fn invalid_timings_are_refused_with_the_rule() {
        let err = Timings::new(ms(10_000), ms(10_000), ms(2_000)).unwrap_err();
        assert!(
            err.to_string()
                .contains("must be greater than the renew deadline")
        );
        let err = Timings::new(ms(15_000), ms(2_400), ms(2_000)).unwrap_err();
        assert!(matches!(err, TimingsError::RenewNotAboveRetry { .. }));
        assert!(matches!(
            Timings::new(ms(15_000), ms(10_000), ms(0)),
            Err(TimingsError::ZeroRetry(_))
        ));
    }

    #[test]
    fn sub_second_lease_duration_rounds_up() {
        let t = Timings::new(ms(2_500), ms(2_000), ms(500)).unwrap();
        assert_eq!(t.lease_duration_seconds(), 3);
        assert_eq!(t.request_timeout(), ms(1_000));
        let t = Timings::new(ms(30_000), ms(25_000), ms(2_000)).unwrap();
        assert_eq!(t.request_timeout(), ms(10_000), "capped at 10 s");
    }
}
