//! The world the election tests build: the in-repo Lease endpoint, kubeadm-shaped kubeconfig
//! files per node, and electors whose events are recorded on one shared monotonic clock.
#![allow(dead_code)] // each test crate uses a different part of this fixture

use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kvip::credentials::{ApiEndpoint, KubeconfigPaths, Ladder};
use kvip::election::{self, ElectionEvent, ElectorConfig, ElectorHandle, ElectorStatus, Timings};
use kvip::lab::apiserver::{self, ApiServer, Identity, Subject, WriteRecord};
use tokio::time::Instant;

/// kubeadm's admin.conf group, bound to cluster-admin once kubeadm creates the binding.
pub const CLUSTER_ADMINS: &str = "kubeadm:cluster-admins";
/// The `server` written into every kubeconfig: a "VIP" on loopback where nothing answers, so a
/// test fails if kvip ever talks to the kubeconfig's server instead of the local API server.
pub const VIP_SERVER: &str = "https://127.0.0.2:1";
/// How long a test waits for something that should happen within a few lease durations.
pub const GIVE_UP: Duration = Duration::from_secs(30);

/// Short timings for tests: lease 3 s, renew deadline 2 s, retry 500 ms.
pub fn fast() -> Timings {
    Timings::new(
        Duration::from_secs(3),
        Duration::from_secs(2),
        Duration::from_millis(500),
    )
    .unwrap()
}

/// Timings with a long lease and a resync period (4 × retry = 32 s) longer than the lease, for
/// tests that assert something happens *before* expiry: only the watch can make a follower act
/// that early.
pub fn long_lease() -> Timings {
    Timings::new(
        Duration::from_secs(30),
        Duration::from_secs(20),
        Duration::from_secs(8),
    )
    .unwrap()
}

/// One recorded event: which node, and the event (whose `at` instants share the test's clock).
#[derive(Debug, Clone)]
pub struct Recorded {
    pub node: String,
    pub received: Instant,
    pub event: ElectionEvent,
}

/// The Lease endpoint plus a directory of kubeconfigs and a shared event log.
pub struct World {
    pub server: ApiServer,
    pub dir: tempfile::TempDir,
    pub log: Arc<Mutex<Vec<Recorded>>>,
}

/// A running elector.
pub struct Node {
    pub name: String,
    pub handle: Option<ElectorHandle>,
    pub status: tokio::sync::watch::Receiver<ElectorStatus>,
}

impl Node {
    pub fn leading(&self) -> bool {
        self.status.borrow().leading
    }

    /// Stops the elector as a crash would: no release.
    pub fn kill(&mut self) {
        if let Some(handle) = self.handle.take() {
            handle.abort();
        }
    }

    pub async fn release(&mut self) -> bool {
        let handle = self.handle.take().expect("elector already stopped");
        handle.release_and_stop().await.expect("release failed")
    }
}

/// The admin.conf identity of a node (a distinct user per node, so outages can target one).
pub fn admin_identity(node: &str) -> Identity {
    Identity::new(format!("admin-{node}"), &[CLUSTER_ADMINS])
}

impl World {
    /// An endpoint where kubeadm's admin group is already bound (the steady state).
    pub async fn start() -> World {
        let world = Self::start_unbound().await;
        world.server.grant(Subject::group(CLUSTER_ADMINS));
        world
    }

    /// An endpoint where admin.conf is still forbidden (the first node during `kubeadm init`).
    pub async fn start_unbound() -> World {
        Self::start_with(apiserver::Options::default()).await
    }

    /// An endpoint with custom options (admin.conf still forbidden).
    pub async fn start_with(options: apiserver::Options) -> World {
        let server = apiserver::start(options).await.unwrap();
        World {
            server,
            dir: tempfile::tempdir().unwrap(),
            log: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// Paths of a node's admin.conf, super-admin.conf and ServiceAccount directory (none
    /// written yet).
    pub fn paths(&self, node: &str) -> KubeconfigPaths {
        KubeconfigPaths {
            admin: self.dir.path().join(format!("{node}-admin.conf")),
            super_admin: self.dir.path().join(format!("{node}-super-admin.conf")),
            service_account: self.dir.path().join(format!("{node}-serviceaccount")),
        }
    }

    /// Writes the node's admin.conf (its own `admin-<node>` user in the cluster-admins group).
    pub fn write_admin_conf(&self, node: &str) -> PathBuf {
        let path = self.paths(node).admin;
        self.server
            .write_kubeconfig(&admin_identity(node), VIP_SERVER, &path)
            .unwrap();
        path
    }

    /// Writes the node's super-admin.conf (system:masters).
    pub fn write_super_admin_conf(&self, node: &str) -> PathBuf {
        let path = self.paths(node).super_admin;
        self.server
            .write_kubeconfig(&Identity::kubeadm_super_admin(), VIP_SERVER, &path)
            .unwrap();
        path
    }

    /// The ladder every test elector uses: the node's two files, the local endpoint by port
    /// with the TLS name `kubernetes` (as in production), admin.conf re-checked every second.
    pub fn ladder(&self, node: &str, config: &ElectorConfig) -> Ladder {
        Ladder::new(
            self.paths(node),
            ApiEndpoint::Local {
                port: self.server.addr().port(),
            },
            config.client_timeouts(),
            config.lease_location(),
        )
        .with_admin_recheck(Duration::from_secs(1))
    }

    /// Starts an elector for `node` (kubeconfigs must be written by the caller).
    pub fn elector(&self, node: &str, timings: Timings) -> Node {
        let config = ElectorConfig::new(node, timings).unwrap();
        let ladder = self.ladder(node, &config);
        self.elector_with(config, ladder)
    }

    /// Starts an elector with a custom configuration and ladder; events go to the shared log.
    pub fn elector_with(&self, config: ElectorConfig, ladder: Ladder) -> Node {
        let node = config.identity.clone();
        let node = node.as_str();
        let (handle, mut events) = election::spawn(config, ladder);
        let status = handle.status();
        let log = self.log.clone();
        let name = node.to_owned();
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                let received = Instant::now();
                log.lock().unwrap().push(Recorded {
                    node: name.clone(),
                    received,
                    event,
                });
            }
        });
        Node {
            name: node.to_owned(),
            handle: Some(handle),
            status,
        }
    }

    /// Writes admin.conf for each name and starts its elector.
    pub fn nodes(&self, names: &[&str], timings: Timings) -> Vec<Node> {
        names
            .iter()
            .map(|n| {
                self.write_admin_conf(n);
                self.elector(n, timings)
            })
            .collect()
    }

    pub fn events(&self) -> Vec<Recorded> {
        self.log.lock().unwrap().clone()
    }

    /// The `Elected` events so far, in the order received.
    pub fn elections(&self) -> Vec<(String, Instant, bool)> {
        self.events()
            .into_iter()
            .filter_map(|r| match r.event {
                ElectionEvent::Elected { at, resumed } => Some((r.node, at, resumed)),
                _ => None,
            })
            .collect()
    }

    /// The writes to the default Lease, oldest first.
    pub fn writes(&self) -> Vec<WriteRecord> {
        self.server
            .writes()
            .into_iter()
            .filter(|w| w.namespace == "kube-system" && w.name == "plndr-cp-lock")
            .collect()
    }
}

/// Waits for `condition`, polling; panics with `what` after [`GIVE_UP`].
pub async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + GIVE_UP;
    while !condition() {
        assert!(Instant::now() < deadline, "gave up waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Awaits `future`, panicking with `what` after [`GIVE_UP`].
pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(GIVE_UP, future)
        .await
        .unwrap_or_else(|_| panic!("gave up waiting for: {what}"))
}

/// Waits until exactly one of `nodes` leads and every other one has observed it; returns its
/// index.
pub async fn settled_leader(nodes: &[Node]) -> usize {
    let mut leader = 0;
    eventually("one leader that every node has observed", || {
        let leaders: Vec<usize> = (0..nodes.len())
            .filter(|&i| nodes[i].handle.is_some() && nodes[i].leading())
            .collect();
        let [only] = leaders[..] else { return false };
        leader = only;
        let name = &nodes[only].name;
        nodes
            .iter()
            .filter(|n| n.handle.is_some())
            .all(|n| n.status.borrow().holder.as_deref() == Some(name))
    })
    .await;
    leader
}

/// The safety property, checked on the server's write history: whenever the holder changes from
/// one node to another without a release in between, the new holder's first write comes at least
/// a lease duration after the old holder's last write (nobody could have observed the old
/// holder's last renew earlier than it was applied). Returns the number of such takeovers.
pub fn assert_no_overlapping_holders(writes: &[WriteRecord], lease_seconds: u64) -> usize {
    let mut takeovers = 0;
    let mut last: Option<&WriteRecord> = None;
    for w in writes {
        let holder = w.holder_identity.clone().unwrap_or_default();
        if let Some(prev) = last {
            let prev_holder = prev.holder_identity.clone().unwrap_or_default();
            if !prev_holder.is_empty() && !holder.is_empty() && prev_holder != holder {
                takeovers += 1;
                let gap = w.at.duration_since(prev.at);
                assert!(
                    gap >= Duration::from_secs(lease_seconds),
                    "{holder} took the Lease {gap:?} after {prev_holder}'s last renew, \
                     inside its {lease_seconds} s lease: two holders overlapped\n{writes:#?}"
                );
            }
        }
        last = Some(w);
    }
    takeovers
}
