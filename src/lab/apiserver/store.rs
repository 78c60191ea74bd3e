//! The Lease store: etcd's part of kube-apiserver, in memory.
//!
//! One global, monotonically increasing revision stamps every write (as etcd's does), so
//! `resourceVersion` comparisons, watch resumption and "too old resource version" behave as on a
//! real cluster. The store keeps a bounded history of events for watches to resume from, and a
//! log of every write with the identity that made it: the "never two leaders" tests read that
//! log, not the clients' opinion of who leads.
//!
//! The store owns all Lease state; everything else reads it through these methods, and watch
//! streams learn of writes through one broadcast channel fed under the same lock, so a watch that
//! replays history and then subscribes can neither miss nor repeat an event.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use tokio::sync::broadcast;

use super::status::{self, ApiError};

/// What a write did, as a watch reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// The Lease was created.
    Added,
    /// The Lease was updated.
    Modified,
    /// The Lease was deleted.
    Deleted,
}

impl EventKind {
    /// The watch event `type` string.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Added => "ADDED",
            EventKind::Modified => "MODIFIED",
            EventKind::Deleted => "DELETED",
        }
    }
}

/// One change, as watchers receive it.
#[derive(Debug)]
pub struct Event {
    /// The revision of this write.
    pub revision: u64,
    /// What happened.
    pub kind: EventKind,
    /// The object after the write (for a delete: its last state, stamped with the delete's
    /// revision, as etcd-backed watches report it).
    pub object: Lease,
}

impl Event {
    fn namespace(&self) -> &str {
        self.object
            .metadata
            .namespace
            .as_deref()
            .unwrap_or_default()
    }
    fn name(&self) -> &str {
        self.object.metadata.name.as_deref().unwrap_or_default()
    }
    /// Whether a watch on `namespace` (None = all) and `name` (None = all) sees this event.
    pub fn matches(&self, namespace: Option<&str>, name: Option<&str>) -> bool {
        namespace.is_none_or(|ns| ns == self.namespace()) && name.is_none_or(|n| n == self.name())
    }
}

/// One accepted write, for tests that judge the election by what the server stored.
#[derive(Debug, Clone)]
pub struct WriteRecord {
    /// The revision (resourceVersion) the write produced.
    pub resource_version: u64,
    /// What the write did.
    pub kind: EventKind,
    /// The Lease's namespace.
    pub namespace: String,
    /// The Lease's name.
    pub name: String,
    /// The authenticated user that made the write.
    pub user: String,
    /// `spec.holderIdentity` after the write (None when unset or after a delete).
    pub holder_identity: Option<String>,
    /// `spec.leaseTransitions` after the write.
    pub lease_transitions: Option<i32>,
    /// When the server applied it (local monotonic clock).
    pub at: Instant,
}

/// Where a watch starts.
#[derive(Debug, Clone, Copy)]
pub enum WatchStart {
    /// resourceVersion "" or "0": synthetic ADDED events for the current objects, then changes.
    Now,
    /// A resourceVersion: every change after it.
    After(u64),
}

/// What a new watch gets: the events to send first, and the live feed after them.
pub struct WatchFeed {
    /// Events to send before anything from `live`.
    pub backlog: Vec<Arc<Event>>,
    /// Every later write (the watcher filters by namespace and name).
    pub live: broadcast::Receiver<Arc<Event>>,
    /// The store's revision when the watch started: `live` carries only later ones.
    pub revision: u64,
}

#[derive(Default)]
struct Inner {
    /// The revision of the latest write (0 = none yet).
    revision: u64,
    /// Current objects by (namespace, name).
    leases: BTreeMap<(String, String), Lease>,
    /// Recent events, oldest first, at most `history_limit`.
    history: VecDeque<Arc<Event>>,
    /// Watches may resume only from revisions at or after this one (etcd's compaction point).
    compacted: u64,
    /// Every accepted write.
    writes: Vec<WriteRecord>,
}

/// The in-memory Lease store. See the module docs.
pub struct Store {
    inner: Mutex<Inner>,
    live: broadcast::Sender<Arc<Event>>,
    history_limit: usize,
    uid_counter: AtomicU64,
}

impl Store {
    /// An empty store that keeps `history_limit` events for watch resumption.
    pub fn new(history_limit: usize) -> Self {
        let (live, _) = broadcast::channel(history_limit.max(64));
        Store {
            inner: Mutex::new(Inner::default()),
            live,
            history_limit: history_limit.max(1),
            uid_counter: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves consistent data (every write is applied in one
        // step at the end), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn new_uid(&self) -> String {
        let n = self.uid_counter.fetch_add(1, Ordering::Relaxed);
        format!("{:08x}-6b76-4970-8000-{n:012x}", std::process::id())
    }

    /// The stored Lease, if any.
    pub fn get(&self, namespace: &str, name: &str) -> Option<Lease> {
        self.lock()
            .leases
            .get(&(namespace.to_string(), name.to_string()))
            .cloned()
    }

    /// The Leases in `namespace` (None = all) named `name` (None = any), and the revision the
    /// list is consistent with.
    pub fn list(&self, namespace: Option<&str>, name: Option<&str>) -> (Vec<Lease>, u64) {
        let inner = self.lock();
        let items = inner
            .leases
            .iter()
            .filter(|((ns, n), _)| {
                namespace.is_none_or(|want| want == ns) && name.is_none_or(|want| want == n)
            })
            .map(|(_, lease)| lease.clone())
            .collect();
        (items, inner.revision)
    }

    /// Creates `lease` (already validated, name and namespace set) as `user`.
    pub fn create(&self, mut lease: Lease, user: &str) -> Result<Lease, ApiError> {
        let key = key_of(&lease);
        let uid = self.new_uid();
        let mut inner = self.lock();
        if inner.leases.contains_key(&key) {
            return Err(status::already_exists(&key.1));
        }
        let revision = inner.revision + 1;
        let meta = &mut lease.metadata;
        meta.uid = Some(uid);
        meta.creation_timestamp = Some(Time(jiff::Timestamp::now()));
        meta.resource_version = Some(revision.to_string());
        meta.generation = None;
        Ok(self.commit(&mut inner, EventKind::Added, lease, user))
    }

    /// Replaces the stored Lease with `lease` as `user`, conditioned on the body's
    /// resourceVersion. Returns the stored object and whether the write created it (a PUT may
    /// create a Lease, as the real lease strategy allows).
    pub fn update(&self, mut lease: Lease, user: &str) -> Result<(Lease, bool), ApiError> {
        let key = key_of(&lease);
        let wanted = lease.metadata.resource_version.clone().unwrap_or_default();
        let mut inner = self.lock();
        let Some(existing) = inner.leases.get(&key) else {
            drop(inner);
            lease.metadata.resource_version = None;
            return self.create(lease, user).map(|created| (created, true));
        };
        if wanted.is_empty() {
            // Lease's strategy refuses unconditional updates (AllowUnconditionalUpdate = false).
            return Err(status::invalid(
                status::RESOURCE,
                &key.1,
                &[status::FieldError {
                    field: "metadata.resourceVersion".to_string(),
                    value: "0x0".to_string(),
                    detail: "must be specified for an update".to_string(),
                }],
            ));
        }
        if existing.metadata.resource_version.as_deref() != Some(wanted.as_str()) {
            return Err(status::conflict(&key.1));
        }
        let meta = &mut lease.metadata;
        meta.uid.clone_from(&existing.metadata.uid);
        meta.creation_timestamp
            .clone_from(&existing.metadata.creation_timestamp);
        meta.generation = None;
        meta.resource_version
            .clone_from(&existing.metadata.resource_version);
        if lease == *existing {
            // The real server does not write (nor bump the revision) for a no-op update.
            return Ok((lease, false));
        }
        lease.metadata.resource_version = Some((inner.revision + 1).to_string());
        Ok((
            self.commit(&mut inner, EventKind::Modified, lease, user),
            false,
        ))
    }

    /// Deletes the Lease as `user`, returning its last state.
    pub fn delete(&self, namespace: &str, name: &str, user: &str) -> Result<Lease, ApiError> {
        let mut inner = self.lock();
        let Some(mut lease) = inner
            .leases
            .remove(&(namespace.to_string(), name.to_string()))
        else {
            return Err(status::not_found(name));
        };
        lease.metadata.resource_version = Some((inner.revision + 1).to_string());
        Ok(self.commit(&mut inner, EventKind::Deleted, lease, user))
    }

    /// Applies one write under the lock: bump the revision, store, log, publish.
    fn commit(&self, inner: &mut Inner, kind: EventKind, lease: Lease, user: &str) -> Lease {
        inner.revision += 1;
        let key = key_of(&lease);
        let spec = lease.spec.as_ref();
        inner.writes.push(WriteRecord {
            resource_version: inner.revision,
            kind,
            namespace: key.0.clone(),
            name: key.1.clone(),
            user: user.to_string(),
            holder_identity: spec
                .and_then(|s| s.holder_identity.clone())
                .filter(|_| kind != EventKind::Deleted),
            lease_transitions: spec.and_then(|s| s.lease_transitions),
            at: Instant::now(),
        });
        if kind == EventKind::Deleted {
            inner.leases.remove(&key);
        } else {
            inner.leases.insert(key, lease.clone());
        }
        let event = Arc::new(Event {
            revision: inner.revision,
            kind,
            object: lease.clone(),
        });
        inner.history.push_back(event.clone());
        while inner.history.len() > self.history_limit {
            if let Some(evicted) = inner.history.pop_front() {
                inner.compacted = evicted.revision;
            }
        }
        // No receivers is fine: nobody is watching.
        let _ = self.live.send(event);
        lease
    }

    /// Starts a watch: the backlog to send and the live feed, or 410 Expired when `start` is
    /// older than the retained history.
    pub fn watch(
        &self,
        namespace: Option<&str>,
        name: Option<&str>,
        start: WatchStart,
    ) -> Result<WatchFeed, ApiError> {
        let inner = self.lock();
        let backlog = match start {
            WatchStart::Now => inner
                .leases
                .values()
                .map(|lease| {
                    Arc::new(Event {
                        revision: inner.revision,
                        kind: EventKind::Added,
                        object: lease.clone(),
                    })
                })
                .filter(|e| e.matches(namespace, name))
                .collect(),
            WatchStart::After(from) => {
                if from < inner.compacted {
                    return Err(status::expired(from, inner.compacted + 1));
                }
                inner
                    .history
                    .iter()
                    .filter(|e| e.revision > from && e.matches(namespace, name))
                    .cloned()
                    .collect()
            }
        };
        Ok(WatchFeed {
            backlog,
            live: self.live.subscribe(),
            revision: inner.revision,
        })
    }

    /// The latest revision (what a bookmark reports).
    pub fn revision(&self) -> u64 {
        self.lock().revision
    }

    /// Forgets all watch history, as an etcd compaction does: every watch that resumes from a
    /// revision before now gets 410 Expired.
    pub fn compact(&self) {
        let mut inner = self.lock();
        inner.history.clear();
        inner.compacted = inner.revision;
    }

    /// Every accepted write so far, oldest first.
    pub fn writes(&self) -> Vec<WriteRecord> {
        self.lock().writes.clone()
    }
}

fn key_of(lease: &Lease) -> (String, String) {
    (
        lease.metadata.namespace.clone().unwrap_or_default(),
        lease.metadata.name.clone().unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn named(name: &str) -> Lease {
        Lease {
            metadata: ObjectMeta {
                namespace: Some("kube-system".to_string()),
                name: Some(name.to_string()),
                ..ObjectMeta::default()
            },
            spec: None,
        }
    }

    #[test]
    fn history_beyond_the_limit_is_gone_for_watches() {
        let store = Store::new(2);
        for name in ["a", "b", "c"] {
            store.create(named(name), "test").unwrap();
        }
        // Revisions 1..=3 written, only 2 and 3 retained: resuming after 1 still works,
        // resuming after 0 would need event 1.
        let feed = store.watch(None, None, WatchStart::After(1)).unwrap();
        assert_eq!(feed.backlog.len(), 2);
        let gone = store.watch(None, None, WatchStart::After(0)).err().unwrap();
        assert_eq!(gone.code, 410);
    }
}
