//! The in-repo Lease endpoint, driven by a real `kube::Client` built from real kubeconfig files,
//! as kvip's elector will drive it.

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

#[tokio::test]
async fn create_get_update_and_conflicts_behave_like_kube_apiserver() {
    let world = World::start().await;
    let leases = world.super_admin().await;

    let created = leases
        .create(&PostParams::default(), &lease(LOCK, "node-a"))
        .await
        .unwrap();
    let meta = &created.metadata;
    assert!(meta.uid.is_some() && meta.creation_timestamp.is_some());
    let first_rv = meta.resource_version.clone().unwrap();

    let again = api_status(
        leases
            .create(&PostParams::default(), &lease(LOCK, "node-b"))
            .await,
    );
    assert_eq!((again.code, again.reason.as_str()), (409, "AlreadyExists"));
    assert_eq!(
        again.message,
        format!("leases.coordination.k8s.io \"{LOCK}\" already exists")
    );

    let mut fetched = leases.get(LOCK).await.unwrap();
    assert_eq!(fetched, created);
    fetched.spec.as_mut().unwrap().holder_identity = Some("node-b".to_string());
    let updated = leases
        .replace(LOCK, &PostParams::default(), &fetched)
        .await
        .unwrap();
    let second_rv = updated.metadata.resource_version.clone().unwrap();
    assert_ne!(second_rv, first_rv);
    assert_eq!(holder(&updated), Some("node-b"));

    // `fetched` still carries the first resourceVersion: someone else has written since.
    fetched.spec.as_mut().unwrap().holder_identity = Some("node-c".to_string());
    let stale = api_status(leases.replace(LOCK, &PostParams::default(), &fetched).await);
    assert_eq!((stale.code, stale.reason.as_str()), (409, "Conflict"));
    assert_eq!(
        stale.message,
        format!(
            "Operation cannot be fulfilled on leases.coordination.k8s.io \"{LOCK}\": the object \
             has been modified; please apply your changes to the latest version and try again"
        )
    );
    let stored = world.server.lease(NS, LOCK).unwrap();
    assert_eq!(holder(&stored), Some("node-b"));

    let missing = api_status(leases.get("no-such-lease").await);
    assert_eq!((missing.code, missing.reason.as_str()), (404, "NotFound"));
    assert_eq!(
        missing.message,
        "leases.coordination.k8s.io \"no-such-lease\" not found"
    );

    let writes = world.server.writes();
    let summary: Vec<_> = writes
        .iter()
        .map(|w| (w.kind, w.holder_identity.as_deref(), w.user.as_str()))
        .collect();
    assert_eq!(
        summary,
        [
            (EventKind::Added, Some("node-a"), "kubernetes-super-admin"),
            (
                EventKind::Modified,
                Some("node-b"),
                "kubernetes-super-admin"
            ),
        ]
    );
}

#[tokio::test]
async fn admin_conf_is_forbidden_until_granted_and_again_after_revoke() {
    let world = World::start().await;
    world
        .super_admin()
        .await
        .create(&PostParams::default(), &lease(LOCK, "node-a"))
        .await
        .unwrap();
    let admin = world.leases_for(&Identity::kubeadm_admin()).await;

    let refused = api_status(admin.get(LOCK).await);
    assert_eq!((refused.code, refused.reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        refused.message,
        "leases.coordination.k8s.io \"plndr-cp-lock\" is forbidden: User \"kubernetes-admin\" \
         cannot get resource \"leases\" in API group \"coordination.k8s.io\" in the namespace \
         \"kube-system\""
    );
    let details = refused.details.unwrap();
    assert_eq!(
        (
            details.name.as_str(),
            details.group.as_str(),
            details.kind.as_str()
        ),
        (LOCK, "coordination.k8s.io", "leases")
    );

    world.server.grant(Subject::group("kubeadm:cluster-admins"));
    assert_eq!(holder(&admin.get(LOCK).await.unwrap()), Some("node-a"));

    world
        .server
        .revoke(Subject::group("kubeadm:cluster-admins"));
    assert!(api_status(admin.get(LOCK).await).is_forbidden());
    // system:masters needs no grant at any point.
    assert!(world.super_admin().await.get(LOCK).await.is_ok());
}

#[tokio::test]
async fn a_client_without_a_certificate_is_unauthorized() {
    let world = World::start().await;
    let mut kubeconfig = world
        .server
        .kubeconfig(&Identity::kubeadm_admin(), &world.server.url())
        .unwrap();
    for user in &mut kubeconfig.auth_infos {
        user.auth_info = Some(kube::config::AuthInfo::default());
    }
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .unwrap();
    let anonymous: Api<Lease> = Api::namespaced(kube::Client::try_from(config).unwrap(), NS);
    let refused = api_status(anonymous.get(LOCK).await);
    assert_eq!(
        (refused.code, refused.reason.as_str()),
        (401, "Unauthorized")
    );
}

#[tokio::test]
async fn tls_server_name_kubernetes_is_accepted_on_a_loopback_address() {
    let world = World::start().await;
    // kubeadm's admin.conf names the VIP; kvip dials the local address and checks the name
    // `kubernetes`, which the serving certificate carries.
    let server = format!("https://127.0.0.1:{}", world.server.addr().port());
    let client = world
        .client_via(
            &Identity::kubeadm_super_admin(),
            &server,
            Some("kubernetes"),
        )
        .await;
    let leases: Api<Lease> = Api::namespaced(client, NS);
    leases
        .create(&PostParams::default(), &lease(LOCK, "node-a"))
        .await
        .unwrap();

    // A name the certificate does not carry must fail the handshake, or the check is not real.
    let wrong = world
        .client_via(
            &Identity::kubeadm_super_admin(),
            &server,
            Some("not-kubernetes"),
        )
        .await;
    let result = Api::<Lease>::namespaced(wrong, NS).get(LOCK).await;
    assert!(
        !matches!(result, Ok(_) | Err(kube::Error::Api(_))),
        "TLS with a wrong server name must fail below HTTP: {result:?}"
    );
}

#[tokio::test]
async fn lease_json_round_trips_through_the_k8s_openapi_type() {
    let world = World::start().await;
    let leases = world.super_admin().await;
    let sent = lease(LOCK, "node-a");
    let created = leases.create(&PostParams::default(), &sent).await.unwrap();
    // Server-set metadata aside, the spec comes back as written, MicroTime precision included.
    assert_eq!(created.spec, sent.spec);
    let text = serde_json::to_string(&created).unwrap();
    let parsed: Lease = serde_json::from_str(&text).unwrap();
    assert_eq!(parsed, created);
    let raw: serde_json::Value = serde_json::from_str(&text).unwrap();
    let renew = raw["spec"]["renewTime"].as_str().unwrap();
    assert_eq!(renew.len(), "2025-01-02T03:04:05.123456Z".len(), "{renew}");
}

#[tokio::test]
async fn delete_and_list_with_a_field_selector() {
    let world = World::start().await;
    let leases = world.super_admin().await;
    for name in ["one", "two"] {
        leases
            .create(&PostParams::default(), &lease(name, "node-a"))
            .await
            .unwrap();
    }
    let listed = leases
        .list(&ListParams::default().fields("metadata.name=two"))
        .await
        .unwrap();
    let names: Vec<_> = listed.iter().map(|l| l.metadata.name.clone()).collect();
    assert_eq!(names, [Some("two".to_string())]);
    assert_eq!(
        listed.metadata.resource_version,
        Some(world.server.revision().to_string())
    );

    leases
        .delete("two", &DeleteParams::default())
        .await
        .unwrap();
    assert!(world.server.lease(NS, "two").is_none());
    assert!(api_status(leases.get("two").await).is_not_found());
}

#[tokio::test]
async fn malformed_and_invalid_bodies_are_rejected_like_the_real_api() {
    let world = World::start().await;
    let leases = world.super_admin().await;
    let mut zero = lease(LOCK, "node-a");
    zero.spec.as_mut().unwrap().lease_duration_seconds = Some(0);
    let invalid = api_status(leases.create(&PostParams::default(), &zero).await);
    assert_eq!((invalid.code, invalid.reason.as_str()), (422, "Invalid"));

    let created = leases
        .create(&PostParams::default(), &lease(LOCK, "node-a"))
        .await
        .unwrap();
    let mismatch = api_status(
        leases
            .replace("other-name", &PostParams::default(), &created)
            .await,
    );
    assert_eq!(
        (mismatch.code, mismatch.reason.as_str()),
        (400, "BadRequest")
    );

    // An update must be conditional: Lease's strategy refuses unconditional updates.
    let mut unconditional = created.clone();
    unconditional.metadata.resource_version = None;
    let refused = api_status(
        leases
            .replace(LOCK, &PostParams::default(), &unconditional)
            .await,
    );
    assert_eq!((refused.code, refused.reason.as_str()), (422, "Invalid"));
}

#[tokio::test]
async fn watch_sees_another_clients_update() {
    let world = World::start().await;
    let writer = world.super_admin().await;
    world.server.grant(Subject::user("node-b"));
    let watcher = world.leases_for(&Identity::new("node-b", &[])).await;

    let created = writer
        .create(&PostParams::default(), &lease(LOCK, "node-a"))
        .await
        .unwrap();
    let rv = created.metadata.resource_version.clone().unwrap();
    let params = WatchParams::default().fields(&format!("metadata.name={LOCK}"));
    let mut events = watcher.watch(&params, &rv).await.unwrap().boxed();

    let mut changed = created.clone();
    changed.spec.as_mut().unwrap().holder_identity = Some("node-c".to_string());
    let updated = writer
        .replace(LOCK, &PostParams::default(), &changed)
        .await
        .unwrap();

    let event = tokio::time::timeout(GUARD, events.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    match event {
        WatchEvent::Modified(seen) => assert_eq!(seen, updated),
        other => panic!("expected MODIFIED, got {other:?}"),
    }
}

#[tokio::test]
async fn kubeconfig_file_looks_like_kubeadms_admin_conf() {
    let world = World::start().await;
    let path = world.dir.path().join("admin.conf");
    world
        .server
        .write_kubeconfig(&Identity::kubeadm_admin(), "https://10.0.0.100:6443", &path)
        .unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.contains("\n    certificate-authority-data: LS0t"),
        "plain scalars like kubeadm's:\n{text}"
    );
    let config = kube::config::Kubeconfig::read_from(&path).unwrap();
    assert_eq!(
        config.current_context.as_deref(),
        Some("kubernetes-admin@kubernetes")
    );
    let cluster = config.clusters[0].cluster.as_ref().unwrap();
    assert_eq!(config.clusters[0].name, "kubernetes");
    assert_eq!(cluster.server.as_deref(), Some("https://10.0.0.100:6443"));
    assert!(cluster.certificate_authority_data.is_some());
    let user = config.auth_infos[0].auth_info.as_ref().unwrap();
    assert_eq!(config.auth_infos[0].name, "kubernetes-admin");
    assert!(user.client_certificate_data.is_some() && user.client_key_data.is_some());
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}
