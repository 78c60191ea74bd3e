//! The kubeconfig ladder and the way kvip reaches the API server, against the in-repo Lease
//! endpoint: kubeadm >= 1.29's admin.conf 403 → super-admin.conf → binding created → admin.conf.

mod support;

use std::collections::BTreeMap;

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{ApiResource, DynamicObject};
use kvip::credentials::{ApiEndpoint, Credential, Ladder};
use kvip::election::ElectorConfig;
use kvip::lab::apiserver::{Identity, Subject};
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forbidden_admin_conf_falls_back_to_super_admin_then_returns_once_bound() {
    // The first node during `kubeadm init`: admin.conf is not bound yet.
    let world = World::start_unbound().await;
    world.write_admin_conf("cp-1");
    world.write_super_admin_conf("cp-1");
    let node = world.elector("cp-1", fast());

    eventually("cp-1 leads with super-admin.conf", || {
        let s = node.status.borrow();
        s.leading && s.credential == Some(Credential::SuperAdmin)
    })
    .await;
    let writes = world.writes();
    assert!(
        writes.iter().all(|w| w.user == "kubernetes-super-admin"),
        "{writes:#?}"
    );

    // kubeadm creates the kubeadm:cluster-admins binding through the (now reachable) VIP.
    world.server.grant(Subject::group(CLUSTER_ADMINS));
    eventually("cp-1 moves back to admin.conf", || {
        node.status.borrow().credential == Some(Credential::Admin)
    })
    .await;
    eventually("a renew is written with admin.conf", || {
        world
            .writes()
            .last()
            .is_some_and(|w| w.user == "admin-cp-1")
    })
    .await;
    assert!(
        node.leading(),
        "the switch back does not interrupt leadership"
    );
    assert_eq!(
        world.elections().len(),
        1,
        "no re-election on a credential switch"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_kubeconfig_at_all_names_both_paths_and_keeps_retrying_until_one_appears() {
    let world = World::start().await;
    let paths = world.paths("cp-1");
    let node = world.elector("cp-1", fast());

    eventually("the error is reported", || {
        node.status.borrow().last_error.is_some()
    })
    .await;
    let error = node.status.borrow().last_error.clone().unwrap();
    assert_eq!(
        error,
        format!(
            "no usable kubeconfig: super-admin.conf: not found at {} (it exists only on the node \
             that ran `kubeadm init`); admin.conf: not found at {} (kubeadm writes it on every \
             control-plane node; is the hostPath mounted?)",
            paths.super_admin.display(),
            paths.admin.display()
        )
    );
    assert_eq!(node.status.borrow().credential, None);
    assert!(!node.status.borrow().api_reachable);

    // The elector did not give up: the file appears later and it leads.
    world.write_admin_conf("cp-1");
    eventually("cp-1 leads once admin.conf exists", || node.leading()).await;
    assert_eq!(node.status.borrow().credential, Some(Credential::Admin));
    assert_eq!(node.status.borrow().last_error, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forbidden_admin_without_super_admin_names_both_with_their_reasons() {
    // A joining control plane before the binding exists: no super-admin.conf there.
    let world = World::start_unbound().await;
    let paths = world.paths("cp-2");
    world.write_admin_conf("cp-2");
    let node = world.elector("cp-2", fast());

    eventually("the error names both files", || {
        node.status
            .borrow()
            .last_error
            .as_deref()
            .is_some_and(|e| e.starts_with("no usable kubeconfig"))
    })
    .await;
    let error = node.status.borrow().last_error.clone().unwrap();
    let expected_start = format!(
        "no usable kubeconfig: super-admin.conf: not found at {} (it exists only on the node that \
         ran `kubeadm init`); admin.conf: 403 Forbidden for leases in kube-system (RBAC not yet \
         bound?): ",
        paths.super_admin.display()
    );
    assert!(error.starts_with(&expected_start), "{error}");
    assert!(
        error.contains("admin-cp-2"),
        "the server's RBAC message names the user: {error}"
    );
    assert!(!node.leading());
    assert!(world.writes().is_empty());

    world.server.grant(Subject::group(CLUSTER_ADMINS));
    eventually("cp-2 leads once bound", || node.leading()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubernetes_addr_overrides_the_local_endpoint() {
    let world = World::start().await;
    world.write_admin_conf("cp-1");
    let config = ElectorConfig::new("cp-1", fast()).unwrap();
    let ladder = Ladder::new(
        world.paths("cp-1"),
        ApiEndpoint::from_options(Some(&world.server.addr().to_string()), 6443),
        config.client_timeouts(),
        config.lease_location(),
    );
    let node = world.elector_with(config, ladder);
    eventually("cp-1 leads through kubernetes_addr", || node.leading()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_written_by_kvip_follows_the_published_lease_schema() {
    let world = World::start().await;
    world.write_admin_conf("cp-1");
    let mut config = ElectorConfig::new("cp-1", fast()).unwrap();
    config.annotations = BTreeMap::from([("kube-vip.io/owner".to_owned(), "kvip".to_owned())]);
    let ladder = world.ladder("cp-1", &config);
    let node = world.elector_with(config, ladder);
    eventually("cp-1 leads", || node.leading()).await;
    eventually("a renew", || world.writes().len() >= 2).await;

    // Read the Lease as untyped JSON, the way any client-go program would see it.
    let client = kube::Client::try_from(
        world
            .server
            .kube_config(&Identity::kubeadm_super_admin())
            .await
            .unwrap(),
    )
    .unwrap();
    let resource = ApiResource::erase::<Lease>(&());
    let api: kube::Api<DynamicObject> =
        kube::Api::namespaced_with(client, "kube-system", &resource);
    let lease = api.get("plndr-cp-lock").await.unwrap();
    let spec = &lease.data["spec"];
    assert_eq!(spec["holderIdentity"], "cp-1");
    assert!(spec["leaseDurationSeconds"].is_i64(), "{spec}");
    assert_eq!(spec["leaseDurationSeconds"], 3);
    assert!(spec["leaseTransitions"].is_i64(), "{spec}");
    for field in ["acquireTime", "renewTime"] {
        let text = spec[field]
            .as_str()
            .unwrap_or_else(|| panic!("{field} missing: {spec}"));
        // MicroTime: RFC 3339, UTC, exactly six fractional digits.
        let (seconds, fraction) = text.split_once('.').unwrap();
        assert_eq!(seconds.len(), "2025-01-01T00:00:00".len(), "{text}");
        assert_eq!(fraction.len(), 7, "{text}");
        assert!(fraction.ends_with('Z') && fraction[..6].bytes().all(|b| b.is_ascii_digit()));
        assert!(
            text.parse::<k8s_openapi::jiff::Timestamp>().is_ok(),
            "{text}"
        );
    }
    assert_ne!(
        spec["acquireTime"], spec["renewTime"],
        "a renew keeps acquireTime"
    );
    let annotations = lease.metadata.annotations.unwrap_or_default();
    assert_eq!(
        annotations.get("kube-vip.io/owner").map(String::as_str),
        Some("kvip")
    );
}
