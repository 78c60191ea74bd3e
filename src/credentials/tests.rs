//! The ladder's choice of rung, without a server: which credential is picked, and what the
//! errors say.

use super::*;

fn ladder(dir: &std::path::Path) -> Ladder {
    Ladder::new(
        KubeconfigPaths {
            admin: dir.join("admin.conf"),
            super_admin: dir.join("super-admin.conf"),
            service_account: dir.join("serviceaccount"),
        },
        ApiEndpoint::Local { port: 6443 },
        ClientTimeouts {
            request: Duration::from_secs(1),
            watch: Duration::from_secs(5),
        },
        LeaseLocation {
            namespace: "kube-system".into(),
            name: "plndr-cp-lock".into(),
        },
    )
}

#[tokio::test]
async fn both_missing_names_both_paths_with_the_kubeadm_hint() {
    let dir = tempfile::tempdir().unwrap();
    let mut ladder = ladder(dir.path());
    let err = ladder.clients().await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains(&format!(
        "super-admin.conf: not found at {} (it exists only on the node that ran `kubeadm init`)",
        dir.path().join("super-admin.conf").display()
    )), "{text}");
    assert!(
        text.contains(&format!(
            "admin.conf: not found at {}",
            dir.path().join("admin.conf").display()
        )),
        "{text}"
    );
    assert_eq!(*ladder.credential().borrow(), None);
}

/// A ServiceAccount directory as kubelet mounts it, with a real CA certificate.
fn write_service_account(dir: &std::path::Path) {
    let ca = crate::lab::apiserver::CertificateAuthority::generate().unwrap();
    crate::lab::apiserver::tokens::write_service_account_dir(
        &dir.join("serviceaccount"),
        "token-1",
        ca.cert_pem(),
        "kube-system",
    )
    .unwrap();
}

const SA_FORBIDDEN: &str = "leases.coordination.k8s.io \"plndr-cp-lock\" is forbidden: User \
    \"system:serviceaccount:kube-system:kvip\" cannot get resource \"leases\" in API group \
    \"coordination.k8s.io\" in the namespace \"kube-system\"";

#[tokio::test]
async fn a_service_account_token_is_the_credential_and_the_kubeconfigs_are_not_read() {
    let dir = tempfile::tempdir().unwrap();
    write_service_account(dir.path());
    // Garbage where admin.conf would be: if the ladder read it, choosing would fail.
    std::fs::write(dir.path().join("admin.conf"), "this: [is not").unwrap();
    let mut ladder = ladder(dir.path());
    let clients = ladder.clients().await.unwrap();
    assert_eq!(clients.credential, Credential::ServiceAccount);
    assert_eq!(
        *ladder.credential().borrow(),
        Some(Credential::ServiceAccount)
    );
    assert_eq!(ladder.next_admin_recheck(), None, "no admin.conf re-checks");
    assert_eq!(Credential::ServiceAccount.to_string(), "serviceaccount");
}

#[tokio::test]
async fn a_forbidden_service_account_says_to_apply_the_rbac_and_never_climbs_to_kubeconfigs() {
    let dir = tempfile::tempdir().unwrap();
    write_service_account(dir.path());
    std::fs::write(dir.path().join("super-admin.conf"), "this: [is not").unwrap();
    let mut ladder = ladder(dir.path());
    ladder.clients().await.unwrap();
    let err = ladder
        .forbidden(Credential::ServiceAccount, SA_FORBIDDEN)
        .await
        .unwrap_err();
    assert!(matches!(err, LadderError::ServiceAccount { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.starts_with(&format!(
            "ServiceAccount token in {}: 403 Forbidden for leases in kube-system: \
             system:serviceaccount:kube-system:kvip is not bound to kvip's Role; apply \
             `kvip manifest rbac --namespace kube-system | kubectl apply -f -`",
            dir.path().join("serviceaccount").display()
        )),
        "{text}"
    );
    assert_eq!(*ladder.credential().borrow(), None);
    // The next try (after the elector's back-off) is the ServiceAccount again.
    let clients = ladder.clients().await.unwrap();
    assert_eq!(clients.credential, Credential::ServiceAccount);
}

#[tokio::test]
async fn without_a_token_a_static_pod_uses_the_kubeconfigs() {
    let dir = tempfile::tempdir().unwrap();
    write_service_account(dir.path());
    std::fs::remove_file(dir.path().join("serviceaccount/token")).unwrap();
    let mut ladder = ladder(dir.path());
    let err = ladder.clients().await.unwrap_err();
    assert!(matches!(err, LadderError::Kubeconfigs { .. }), "{err:?}");
}

#[tokio::test]
async fn a_service_account_without_its_ca_bundle_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    write_service_account(dir.path());
    let ca = dir.path().join("serviceaccount/ca.crt");
    std::fs::remove_file(&ca).unwrap();
    let err = ladder(dir.path()).clients().await.unwrap_err();
    assert_eq!(
        err,
        LadderError::ServiceAccount {
            dir: dir.path().join("serviceaccount"),
            problem: Problem::NotFound(ca),
        }
    );
    assert!(err.to_string().contains("ca.crt"), "{err}");
}
