//! The election record: the part of a `coordination.k8s.io/v1` Lease that client-go's
//! `resourcelock.LeaseLock` reads and writes, so kvip and client-go electors read each other's
//! Leases the same way.
//!
//! Why a separate type rather than `LeaseSpec` itself: expiry is judged by *when this node last saw
//! the record change* (client-go compares `observedRawRecord`), and only these five fields count;
//! a change of metadata (annotations, managed fields) must not restart anyone's expiry timer.

use std::collections::BTreeMap;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;

/// client-go's `LeaderElectionRecord` as stored in a Lease spec.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LeaderRecord {
    /// Who holds the Lease; empty when nobody does (never created, or released).
    pub holder: String,
    /// How long others wait after observing a change before taking over.
    pub lease_duration_seconds: i32,
    /// When the current holder acquired the Lease (informational: never compared to a clock).
    pub acquire_time: Option<MicroTime>,
    /// When the holder last renewed (informational: never compared to a clock).
    pub renew_time: Option<MicroTime>,
    /// How many times the holder changed; client-go increments it on every acquisition by a
    /// node that was not the holder.
    pub transitions: i32,
}

impl LeaderRecord {
    /// Reads the record the way client-go's `LeaseSpecToLeaderElectionRecord` does: absent fields
    /// are empty / zero.
    pub fn from_lease(lease: &Lease) -> Self {
        let Some(spec) = &lease.spec else {
            return Self::default();
        };
        Self {
            holder: spec.holder_identity.clone().unwrap_or_default(),
            lease_duration_seconds: spec.lease_duration_seconds.unwrap_or(0),
            acquire_time: spec.acquire_time.clone(),
            renew_time: spec.renew_time.clone(),
            transitions: spec.lease_transitions.unwrap_or(0),
        }
    }

    /// Writes the record the way client-go's `LeaderElectionRecordToLeaseSpec` does: every field
    /// present, an empty holder written as `""` (a released Lease).
    pub fn to_spec(&self) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.holder.clone()),
            lease_duration_seconds: Some(self.lease_duration_seconds),
            acquire_time: self.acquire_time.clone(),
            renew_time: self.renew_time.clone(),
            lease_transitions: Some(self.transitions),
            ..LeaseSpec::default()
        }
    }

    /// A record naming `identity` as holder, for a Lease that does not exist yet.
    pub fn created(identity: &str, lease_duration_seconds: i32, now: &MicroTime) -> Self {
        Self {
            holder: identity.to_owned(),
            lease_duration_seconds,
            acquire_time: Some(now.clone()),
            renew_time: Some(now.clone()),
            transitions: 0,
        }
    }

    /// The record after `identity` takes the Lease from `self` (expired or released): a new term,
    /// so `acquireTime` is now and the transition count goes up, as in client-go.
    pub fn acquired_by(
        &self,
        identity: &str,
        lease_duration_seconds: i32,
        now: &MicroTime,
    ) -> Self {
        Self {
            transitions: self.transitions.saturating_add(1),
            ..Self::created(identity, lease_duration_seconds, now)
        }
    }

    /// The record after the holder renews: same term, so `acquireTime` and the transition count
    /// are kept.
    pub fn renewed(&self, identity: &str, lease_duration_seconds: i32, now: &MicroTime) -> Self {
        Self {
            holder: identity.to_owned(),
            lease_duration_seconds,
            acquire_time: self.acquire_time.clone().or_else(|| Some(now.clone())),
            renew_time: Some(now.clone()),
            transitions: self.transitions,
        }
    }

    /// The record client-go's `release()` writes: empty holder, `leaseDurationSeconds` 1, and
    /// both `renewTime` and `acquireTime` set to now; the transition count is kept.
    pub fn released(&self, now: &MicroTime) -> Self {
        Self {
            holder: String::new(),
            lease_duration_seconds: 1,
            acquire_time: Some(now.clone()),
            renew_time: Some(now.clone()),
            transitions: self.transitions,
        }
    }
}

/// The wall-clock time to write into `acquireTime` / `renewTime`, truncated to microseconds so
/// what we write is exactly what the server stores and returns.
pub fn now_micro() -> MicroTime {
    let now = Timestamp::now();
    MicroTime(Timestamp::from_microsecond(now.as_microsecond()).unwrap_or(now))
}

/// The Lease object to send: `base` (the object last read, carrying its `resourceVersion`, so the
/// write is conditional) with its spec replaced by `record`, or a new object when `base` is
/// `None`. `annotations` (kube-vip's `vip_leaseannotations`) are merged into the metadata;
/// client-go only sets them on create, kvip also restores them on update so an operator's
/// annotations survive a Lease created by another elector.
pub fn lease_with_record(
    base: Option<&Lease>,
    namespace: &str,
    name: &str,
    annotations: &BTreeMap<String, String>,
    record: &LeaderRecord,
) -> Lease {
    let mut lease = base.cloned().unwrap_or_else(|| Lease {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(namespace.to_owned()),
            ..ObjectMeta::default()
        },
        spec: None,
    });
    if !annotations.is_empty() {
        let existing = lease.metadata.annotations.get_or_insert_with(BTreeMap::new);
        for (k, v) in annotations {
            existing.insert(k.clone(), v.clone());
        }
    }
    lease.spec = Some(record.to_spec());
    lease
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> MicroTime {
        MicroTime(s.parse().unwrap())
    }

    #[test]
    fn acquisition_starts_a_new_term_and_counts_a_transition() {
        let old = LeaderRecord::created("a", 15, &t("2025-01-01T00:00:00Z"));
        let new = old.acquired_by("b", 15, &t("2025-01-01T00:00:20Z"));
        assert_eq!(new.holder, "b");
        assert_eq!(new.transitions, 1);
        assert_eq!(new.acquire_time, Some(t("2025-01-01T00:00:20Z")));
    }

    #[test]
    fn renewal_keeps_the_term() {
        let old = LeaderRecord::created("a", 15, &t("2025-01-01T00:00:00Z")).acquired_by(
            "a",
            15,
            &t("2025-01-01T00:00:01Z"),
        );
        let new = old.renewed("a", 15, &t("2025-01-01T00:00:03Z"));
        assert_eq!(new.acquire_time, old.acquire_time);
        assert_eq!(new.transitions, old.transitions);
        assert_eq!(new.renew_time, Some(t("2025-01-01T00:00:03Z")));
    }

    #[test]
    fn release_is_client_gos_empty_holder_one_second_record() {
        let held = LeaderRecord::created("a", 15, &t("2025-01-01T00:00:00Z"));
        let now = t("2025-01-01T00:00:09Z");
        let released = held.released(&now);
        assert_eq!(released.holder, "");
        assert_eq!(released.lease_duration_seconds, 1);
        assert_eq!(released.renew_time, Some(now.clone()));
        assert_eq!(released.acquire_time, Some(now));
        let spec = released.to_spec();
        assert_eq!(
            spec.holder_identity.as_deref(),
            Some(""),
            "written as \"\", like client-go"
        );
    }

    #[test]
    fn spec_round_trip_and_json_shape() {
        let rec = LeaderRecord::created("node-1", 15, &t("2025-01-01T00:00:00.5Z"));
        let lease = lease_with_record(None, "kube-system", "plndr-cp-lock", &BTreeMap::new(), &rec);
        assert_eq!(LeaderRecord::from_lease(&lease), rec);
        let json = serde_json::to_value(&lease).unwrap();
        assert_eq!(json["spec"]["holderIdentity"], "node-1");
        assert_eq!(json["spec"]["leaseDurationSeconds"], 15);
        assert_eq!(json["spec"]["renewTime"], "2025-01-01T00:00:00.500000Z");
        assert_eq!(json["spec"]["leaseTransitions"], 0);
    }

    #[test]
    fn annotations_are_merged_and_the_base_resource_version_kept() {
        let mut base =
            lease_with_record(None, "ns", "l", &BTreeMap::new(), &LeaderRecord::default());
        base.metadata.resource_version = Some("42".into());
        let ann = BTreeMap::from([("a".to_owned(), "b".to_owned())]);
        let rec = LeaderRecord::created("x", 3, &now_micro());
        let out = lease_with_record(Some(&base), "ns", "l", &ann, &rec);
        assert_eq!(out.metadata.resource_version.as_deref(), Some("42"));
        assert_eq!(out.metadata.annotations.unwrap()["a"], "b");
    }

    #[test]
    fn now_micro_has_no_sub_microsecond_part() {
        let now = now_micro();
        assert_eq!(now.0.subsec_nanosecond() % 1_000, 0);
    }
}
