//! DaemonSet mode: kvip authenticates with its pod's ServiceAccount token (the ladder's first
//! rung), against the in-repo Lease endpoint with kvip's real client.

mod support;

use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kvip::credentials::Credential;
use kvip::election::ElectionEvent;
use kvip::lab::apiserver::Subject;
use kvip::lab::apiserver::tokens::write_token;
use support::*;

/// The user kube-apiserver gives the token of `kvip manifest rbac`'s ServiceAccount.
const KVIP_SA: &str = "system:serviceaccount:kube-system:kvip";

impl World {
    /// Mounts a ServiceAccount directory for `node` (kubelet's layout) whose token the endpoint
    /// accepts as `kube-system/kvip`.
    fn mount_service_account(&self, node: &str, token: &str) -> PathBuf {
        let dir = self.paths(node).service_account;
        self.server
            .write_service_account_dir(&dir, token, "kube-system", "kvip")
            .unwrap();
        dir
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemonset_pod_leads_as_its_service_account_and_ignores_the_kubeconfigs() {
    let world = World::start().await; // admin.conf's group is bound: it would work too
    world.write_admin_conf("cp-1");
    world.write_super_admin_conf("cp-1");
    world.mount_service_account("cp-1", "sa-token-1");
    world.server.grant(Subject::user(KVIP_SA)); // `kvip manifest rbac` applied
    let node = world.elector("cp-1", fast());

    eventually("cp-1 leads", || node.leading()).await;
    eventually("a renew", || world.writes().len() >= 2).await;
    assert_eq!(
        node.status.borrow().credential,
        Some(Credential::ServiceAccount)
    );
    let writes = world.writes();
    assert!(writes.iter().all(|w| w.user == KVIP_SA), "{writes:#?}");
    assert_eq!(world.server.requests("admin-cp-1"), 0);
    assert_eq!(world.server.requests("kubernetes-super-admin"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unbound_service_account_is_told_to_apply_the_rbac_and_leads_once_it_is() {
    // The DaemonSet was applied without `kvip manifest rbac`. super-admin.conf would pass RBAC,
    // but a pod with a token never climbs to the kubeconfigs.
    let world = World::start_unbound().await;
    world.write_super_admin_conf("cp-1");
    let dir = world.mount_service_account("cp-1", "sa-token-1");
    let node = world.elector("cp-1", fast());

    eventually("the error is reported", || {
        node.status
            .borrow()
            .last_error
            .as_deref()
            .is_some_and(|e| e.starts_with("ServiceAccount token in"))
    })
    .await;
    let error = node.status.borrow().last_error.clone().unwrap();
    let expected_start = format!(
        "ServiceAccount token in {}: 403 Forbidden for leases in kube-system: {KVIP_SA} is not \
         bound to kvip's Role; apply `kvip manifest rbac --namespace kube-system | kubectl \
         apply -f -` (server said: ",
        dir.display()
    );
    assert!(error.starts_with(&expected_start), "{error}");
    assert!(!node.leading());
    assert!(world.writes().is_empty());
    assert_eq!(world.server.requests("kubernetes-super-admin"), 0);
    // It keeps trying (with back-off) rather than giving up.
    let tries = world.server.token_requests("sa-token-1");
    eventually("another try", || {
        world.server.token_requests("sa-token-1") > tries
    })
    .await;

    world.server.grant(Subject::user(KVIP_SA));
    eventually("cp-1 leads once the Role is bound", || node.leading()).await;
    assert!(world.writes().iter().all(|w| w.user == KVIP_SA));
    assert_eq!(
        node.status.borrow().credential,
        Some(Credential::ServiceAccount)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_account_holder_steps_down_when_its_api_server_drops_it() {
    // The DaemonSet elects through the node's own API server (not the Service IP), so losing
    // that server must cost it the VIP, as it does a static pod.
    let world = World::start().await;
    world.mount_service_account("cp-1", "sa-token-1");
    world.server.grant(Subject::user(KVIP_SA));
    let node = world.elector("cp-1", fast());
    eventually("cp-1 leads", || node.leading()).await;

    world.server.set_outage(Subject::user(KVIP_SA), true);
    eventually("cp-1 steps down", || !node.leading()).await;
    world.server.set_outage(Subject::user(KVIP_SA), false);
    eventually("cp-1 leads again", || node.leading()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_token_is_401_unauthorized_with_a_status_body() {
    let world = World::start().await;
    // The endpoint's URL and CA, but a bearer token instead of a client certificate.
    let mut config = world
        .server
        .kube_config(&kvip::lab::apiserver::Identity::kubeadm_admin())
        .await
        .unwrap();
    config.auth_info = kube::config::AuthInfo {
        token: Some("never-issued".to_owned().into()),
        ..Default::default()
    };
    let api: kube::Api<Lease> =
        kube::Api::namespaced(kube::Client::try_from(config).unwrap(), "kube-system");
    match api.get_opt("plndr-cp-lock").await {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 401, "{status:?}");
            assert_eq!(status.reason, "Unauthorized");
            assert_eq!(status.message, "Unauthorized");
        }
        other => panic!("expected 401, got {other:?}"),
    }
    assert_eq!(world.server.token_requests("never-issued"), 0);
}

/// kube re-reads a `tokenFile` when its cached copy is ~50 s old (60 s cache, refreshed 10 s
/// early). kubelet rotates a projected token at 80 % of its lifetime (at least 10 minutes) and
/// the old one stays valid until it expires, so that re-read is all a rotation needs. This test
/// waits for it once (~50 s, running beside the others).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_token_is_picked_up_from_the_file_without_losing_leadership() {
    let world = World::start().await;
    let dir = world.mount_service_account("cp-1", "sa-token-1");
    world.server.grant(Subject::user(KVIP_SA));
    let node = world.elector("cp-1", fast());
    eventually("cp-1 leads", || node.leading()).await;

    // kubelet writes the new token; both stay valid for now.
    world.server.add_token(
        "sa-token-2",
        kvip::lab::apiserver::Identity::service_account("kube-system", "kvip"),
    );
    write_token(&dir, "sa-token-2").unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while world.server.token_requests("sa-token-2") == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "kube never re-read the token file"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The old token expires: from now on only the new one works.
    world.server.remove_token("sa-token-1");
    let renews = world.writes().len();
    eventually("renews with the new token", || {
        world.writes().len() >= renews + 4
    })
    .await;
    assert!(node.leading());
    let stepped_down = world
        .events()
        .iter()
        .any(|r| matches!(r.event, ElectionEvent::SteppedDown { .. }));
    assert!(!stepped_down, "the rotation interrupted leadership");
    assert_eq!(world.elections().len(), 1);
}
