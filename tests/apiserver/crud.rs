//! Lease verbs, RBAC and validation, as kvip's elector and credential ladder see them.

use super::*;

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
    // A create names no object on the URL, so RBAC's message names none either.
    let create = api_status(
        admin
            .create(&PostParams::default(), &lease("other", "node-a"))
            .await,
    );
    assert_eq!(
        create.message,
        "leases.coordination.k8s.io is forbidden: User \"kubernetes-admin\" cannot create \
         resource \"leases\" in API group \"coordination.k8s.io\" in the namespace \"kube-system\""
    );
    // system:masters needs no grant at any point.
    assert!(world.super_admin().await.get(LOCK).await.is_ok());
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

    let answer = leases
        .delete("two", &DeleteParams::default())
        .await
        .unwrap();
    // Leases have no graceful deletion: the answer is a Status, as from kube-apiserver.
    assert!(answer.right().is_some_and(|status| status.is_success()));
    assert!(world.server.lease(NS, "two").is_none());
    let last = world.server.writes().pop().unwrap();
    assert_eq!((last.kind, last.name.as_str()), (EventKind::Deleted, "two"));
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
async fn an_update_of_a_missing_lease_creates_it_as_the_lease_strategy_allows() {
    let world = World::start().await;
    let leases = world.super_admin().await;
    let created = leases
        .replace(LOCK, &PostParams::default(), &lease(LOCK, "node-a"))
        .await
        .unwrap();
    assert!(created.metadata.uid.is_some());
    assert_eq!(world.server.writes()[0].kind, EventKind::Added);
}
