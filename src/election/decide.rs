//! The side-effect-free heart of the elector: given what this node last observed of the Lease,
//! its identity and the current monotonic instant, what should it do?
//!
//! Kept apart from the kube I/O so the rules that decide safety (who may write, when a Lease has
//! expired) are unit-tested without a server or a clock: instants are passed in.

use k8s_openapi::api::coordination::v1::Lease;
use tokio::time::{Duration, Instant};

use super::record::LeaderRecord;

/// What this node knows about the Lease: the last object read (its `resourceVersion` conditions
/// the next write) and the local instant at which its election record last *changed*.
#[derive(Debug, Clone)]
pub struct Observation {
    /// The Lease object as last read or written; the base of the next conditional update.
    pub lease: Lease,
    /// The election record in `lease`.
    pub record: LeaderRecord,
    /// Local monotonic instant at which `record` was first seen with its current content. Like
    /// client-go's `observedTime`, it does not move while the record stays the same.
    pub observed_at: Instant,
}

impl Observation {
    /// When the Lease expires *as seen from this node*: the observation instant plus the
    /// duration the record itself announces. Remote `renewTime` is never used.
    pub fn expires_at(&self) -> Instant {
        let secs = u64::try_from(self.record.lease_duration_seconds).unwrap_or(0);
        self.observed_at + Duration::from_secs(secs)
    }
}

/// Folds a freshly read Lease into the previous observation. The observation instant moves only
/// when the election record changed (client-go's `observedRawRecord` comparison), so re-reading an
/// unchanged Lease never postpones its expiry; the object (and its `resourceVersion`) is always
/// replaced by the fresher one.
pub fn observe(previous: Option<Observation>, lease: Lease, now: Instant) -> Observation {
    let record = LeaderRecord::from_lease(&lease);
    let observed_at = match previous {
        Some(prev) if prev.record == record => prev.observed_at,
        _ => now,
    };
    Observation {
        lease,
        record,
        observed_at,
    }
}

/// What to do next, following client-go's `tryAcquireOrRenew`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// The Lease does not exist: create it naming us (AlreadyExists = lost the race).
    Create,
    /// Someone else's term is over (expired as observed here, or released): take the Lease with
    /// an update conditioned on the observed `resourceVersion`.
    Acquire,
    /// The record names us: renew it, keeping the term (also how a restarted node resumes).
    Renew,
    /// Another node holds an unexpired Lease: do nothing until this instant, then look again.
    WaitUntil(Instant),
}

/// Decides the next step. `observation` is `None` when the Lease is known to be absent.
pub fn decide(identity: &str, observation: Option<&Observation>, now: Instant) -> Action {
    let Some(obs) = observation else {
        return Action::Create;
    };
    if obs.record.holder == identity {
        return Action::Renew;
    }
    if obs.record.holder.is_empty() {
        return Action::Acquire;
    }
    let expiry = obs.expires_at();
    if now >= expiry {
        Action::Acquire
    } else {
        Action::WaitUntil(expiry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::election::record::{lease_with_record, now_micro};
    use std::collections::BTreeMap;

    fn lease(holder: &str, secs: i32, rv: &str) -> Lease {
        let rec = LeaderRecord {
            holder: holder.to_owned(),
            lease_duration_seconds: secs,
            ..LeaderRecord::default()
        };
        let mut l = lease_with_record(None, "ns", "l", &BTreeMap::new(), &rec);
        l.metadata.resource_version = Some(rv.to_owned());
        l
    }

    fn s(v: u64) -> Duration {
        Duration::from_secs(v)
    }

    #[test]
    fn absent_lease_is_created() {
        assert_eq!(decide("me", None, Instant::now()), Action::Create);
    }

    #[test]
    fn another_holder_is_waited_for_until_the_observed_expiry() {
        let t0 = Instant::now();
        let obs = observe(None, lease("other", 15, "1"), t0);
        assert_eq!(
            decide("me", Some(&obs), t0 + s(14)),
            Action::WaitUntil(t0 + s(15))
        );
        assert_eq!(decide("me", Some(&obs), t0 + s(15)), Action::Acquire);
    }

    #[test]
    fn rereading_an_unchanged_record_does_not_postpone_expiry() {
        let t0 = Instant::now();
        let obs = observe(None, lease("other", 15, "1"), t0);
        // Same record, new resourceVersion (e.g. an annotation changed): expiry stays.
        let obs = observe(Some(obs), lease("other", 15, "2"), t0 + s(10));
        assert_eq!(obs.observed_at, t0);
        assert_eq!(obs.lease.metadata.resource_version.as_deref(), Some("2"));
        assert_eq!(decide("me", Some(&obs), t0 + s(15)), Action::Acquire);
    }

    #[test]
    fn a_renewal_seen_restarts_the_expiry_clock() {
        let t0 = Instant::now();
        let obs = observe(None, lease("other", 15, "1"), t0);
        let mut renewed = lease("other", 15, "2");
        renewed.spec.as_mut().unwrap().renew_time = Some(now_micro());
        let obs = observe(Some(obs), renewed, t0 + s(10));
        assert_eq!(obs.observed_at, t0 + s(10));
        assert_eq!(
            decide("me", Some(&obs), t0 + s(15)),
            Action::WaitUntil(t0 + s(25))
        );
    }

    #[test]
    fn the_first_observation_counts_from_now_whatever_the_remote_clock_says() {
        // A Lease renewed "an hour ago" by a skewed clock is still valid for a full duration
        // from the moment we first see it: we never compare remote times to our clock.
        let t0 = Instant::now();
        let mut l = lease("other", 15, "1");
        l.spec.as_mut().unwrap().renew_time =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(
                "2000-01-01T00:00:00Z".parse().unwrap(),
            ));
        let obs = observe(None, l, t0);
        assert_eq!(
            decide("me", Some(&obs), t0 + s(1)),
            Action::WaitUntil(t0 + s(15))
        );
    }

    #[test]
    fn a_released_lease_is_acquired_at_once() {
        let t0 = Instant::now();
        let obs = observe(None, lease("", 1, "1"), t0);
        assert_eq!(decide("me", Some(&obs), t0), Action::Acquire);
    }

    #[test]
    fn our_own_record_is_renewed_even_on_first_sight_after_a_restart() {
        let t0 = Instant::now();
        let obs = observe(None, lease("me", 15, "7"), t0);
        assert_eq!(decide("me", Some(&obs), t0), Action::Renew);
    }
}
