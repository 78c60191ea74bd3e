//! The in-repo Lease endpoint, driven by a real `kube::Client` built from real kubeconfig files,
//! as kvip's elector will drive it.

mod crud;
mod transport;
mod watch;

use std::time::Duration;

use futures::{StreamExt as _, TryStreamExt as _};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, DeleteParams, ListParams, PostParams, WatchEvent, WatchParams};
use kvip::lab::apiserver::{self, ApiServer, EventKind, Identity, Options, Subject};

const NS: &str = "kube-system";
const LOCK: &str = "plndr-cp-lock";
/// Give-up guard for anything that waits; never a timing assertion.
const GUARD: Duration = Duration::from_secs(20);

struct World {
    server: ApiServer,
    dir: tempfile::TempDir,
}

impl World {
    async fn start() -> Self {
        Self::with(Options::default()).await
    }

    async fn with(options: Options) -> Self {
        World {
            server: apiserver::start(options).await.unwrap(),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// Writes a kubeconfig for `identity` (server = the endpoint) and builds a client from the
    /// file, exactly as kvip will.
    async fn client_for(&self, identity: &Identity) -> kube::Client {
        let url = self.server.url();
        self.client_via(identity, &url, None).await
    }

    async fn client_via(
        &self,
        identity: &Identity,
        server: &str,
        tls_server_name: Option<&str>,
    ) -> kube::Client {
        let path = self.dir.path().join(format!("{}.conf", identity.user));
        self.server
            .write_kubeconfig(identity, server, &path)
            .unwrap();
        let kubeconfig = kube::config::Kubeconfig::read_from(&path).unwrap();
        let mut config = kube::Config::from_custom_kubeconfig(
            kubeconfig,
            &kube::config::KubeConfigOptions::default(),
        )
        .await
        .unwrap();
        config.tls_server_name = tls_server_name.map(str::to_string);
        kube::Client::try_from(config).unwrap()
    }

    async fn leases_for(&self, identity: &Identity) -> Api<Lease> {
        Api::namespaced(self.client_for(identity).await, NS)
    }

    async fn super_admin(&self) -> Api<Lease> {
        self.leases_for(&Identity::kubeadm_super_admin()).await
    }
}

/// Now, at MicroTime's precision (what the server stores and returns).
fn now_micro() -> MicroTime {
    let now = jiff::Timestamp::now();
    MicroTime(jiff::Timestamp::from_microsecond(now.as_microsecond()).unwrap())
}

fn lease(name: &str, holder: &str) -> Lease {
    Lease {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            ..ObjectMeta::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(holder.to_string()),
            lease_duration_seconds: Some(15),
            acquire_time: Some(now_micro()),
            renew_time: Some(now_micro()),
            lease_transitions: Some(0),
            ..LeaseSpec::default()
        }),
    }
}

fn api_status(result: Result<impl std::fmt::Debug, kube::Error>) -> Box<kube::core::Status> {
    match result {
        Err(kube::Error::Api(status)) => status,
        other => panic!("expected an API error Status, got {other:?}"),
    }
}

fn holder(lease: &Lease) -> Option<&str> {
    lease.spec.as_ref()?.holder_identity.as_deref()
}
