//! `kvip manifest rbac`: exactly the rights a DaemonSet-mode kvip needs, and nothing more.

use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::pod::NAME;
use crate::cli::RbacArgs;
use crate::config::{self, ConfigError};

/// The Lease's namespace and name, validated as `kvip run` would.
pub fn lease_location(args: &RbacArgs) -> Result<(String, String), ConfigError> {
    config::lease_location(args.namespace.as_deref(), args.lease_name.as_deref())
}

/// A ServiceAccount, a Role on leases in the Lease's namespace (get/list/watch to follow the
/// holder, create/update to take and renew it), and the binding between them. The Role could be
/// narrowed to the one Lease by `resourceNames`, but `create` cannot be, and list/watch by name
/// need the field selector kvip already uses; so it stays namespace-wide, as kube-vip's.
pub fn rbac(namespace: &str, lease_name: &str) -> (ServiceAccount, Role, RoleBinding) {
    let meta = || ObjectMeta {
        name: Some(NAME.into()),
        namespace: Some(namespace.into()),
        ..Default::default()
    };
    let account = ServiceAccount {
        metadata: meta(),
        ..Default::default()
    };
    let mut role_meta = meta();
    role_meta.annotations = Some(
        [(
            "kvip.io/lease".to_string(),
            format!("{namespace}/{lease_name}"),
        )]
        .into_iter()
        .collect(),
    );
    let role = Role {
        metadata: role_meta,
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec!["coordination.k8s.io".into()]),
            resources: Some(vec!["leases".into()]),
            verbs: ["get", "list", "watch", "create", "update"]
                .map(String::from)
                .to_vec(),
            ..Default::default()
        }]),
    };
    let binding = RoleBinding {
        metadata: meta(),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "Role".into(),
            name: NAME.into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: NAME.into(),
            namespace: Some(namespace.into()),
            ..Default::default()
        }]),
    };
    (account, role, binding)
}
