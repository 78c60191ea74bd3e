//! The ServiceAccount rung: the pod's ServiceAccount token (DaemonSet mode) turned into the same
//! election clients as a kubeconfig rung.
//!
//! Why a rung of its own: `kvip manifest daemonset` runs kvip with `serviceAccountName: kvip` and
//! no host kubeconfigs, so the token kubelet mounts is the only credential there is. It is also
//! the least privileged one (`kvip manifest rbac` grants leases in one namespace, nothing else),
//! so when it exists the kubeconfig files are not consulted. Static pods never get a token.
//!
//! The token goes to kube as a `tokenFile`, not as a string: kube re-reads the file (its cache
//! lives about a minute), so a projected token that kubelet rotates keeps working without a
//! restart. The endpoint is the kubeconfig rungs' [`ApiEndpoint`]: by default the node's own API
//! server on 127.0.0.1, so a hostNetwork DaemonSet still steps down when its local API server
//! dies (through the Service IP it would not, kube-vip#1787); [`ApiEndpoint::FromKubeconfig`]
//! means the in-cluster Service (`KUBERNETES_SERVICE_HOST` / `KUBERNETES_SERVICE_PORT`).

use std::path::{Path, PathBuf};

use kube::config::{
    AuthInfo, Cluster, Context, Kubeconfig, NamedAuthInfo, NamedCluster, NamedContext,
};

use super::Credential;
use super::kubeconfig::{self, ApiEndpoint, ClientTimeouts, Clients, Problem};

/// Where kubelet mounts a pod's ServiceAccount token, CA bundle and namespace.
pub const DEFAULT_SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// The token file in a ServiceAccount directory: its presence selects this rung.
pub fn token_path(dir: &Path) -> PathBuf {
    dir.join("token")
}

/// Whether the pod has a ServiceAccount token in `dir` (a projected volume's `token` is a
/// symlink into its `..data` directory; this follows it).
pub(crate) fn present(dir: &Path) -> bool {
    token_path(dir).is_file()
}

/// Builds the clients for the ServiceAccount in `dir`, pointed at `endpoint`.
pub(crate) async fn load(
    dir: &Path,
    endpoint: &ApiEndpoint,
    timeouts: ClientTimeouts,
) -> Result<Clients, Problem> {
    let token = token_path(dir);
    let ca = dir.join("ca.crt");
    for file in [&token, &ca] {
        if let Err(e) = std::fs::File::open(file) {
            return Err(match e.kind() {
                std::io::ErrorKind::NotFound => Problem::NotFound(file.clone()),
                _ => Problem::Unreadable(file.clone(), e.to_string()),
            });
        }
    }
    let unusable = |e: String| Problem::NotAKubeconfig(dir.to_owned(), e);
    let server = match endpoint {
        ApiEndpoint::FromKubeconfig => in_cluster_server(|name| std::env::var(name).ok())
            .map_err(|e| unusable(e.to_owned()))?,
        // Replaced by `endpoint` when the clients are built; the kubeconfig needs some server.
        ApiEndpoint::Local { .. } | ApiEndpoint::Address(_) => "https://kubernetes".to_owned(),
    };
    let kubeconfig = in_memory_kubeconfig(server, &token, &ca);
    kubeconfig::clients(Credential::ServiceAccount, kubeconfig, endpoint, timeouts)
        .await
        .map_err(unusable)
}

/// The in-cluster API server, as client-go's `rest.InClusterConfig` finds it (both variables
/// required; an IPv6 host in brackets).
fn in_cluster_server(env: impl Fn(&str) -> Option<String>) -> Result<String, &'static str> {
    const MISSING: &str = "KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must both be set \
                           to reach the API server in-cluster (set kubernetes_addr instead)";
    let host = env("KUBERNETES_SERVICE_HOST").filter(|h| !h.is_empty());
    let port = env("KUBERNETES_SERVICE_PORT").filter(|p| !p.is_empty());
    let (Some(host), Some(port)) = (host, port) else {
        return Err(MISSING);
    };
    Ok(if host.contains(':') {
        format!("https://[{host}]:{port}")
    } else {
        format!("https://{host}:{port}")
    })
}

/// What `rest.InClusterConfig` amounts to, as a kubeconfig, so that this rung goes through the
/// same client construction as the kubeconfig files.
fn in_memory_kubeconfig(server: String, token: &Path, ca: &Path) -> Kubeconfig {
    const NAME: &str = "serviceaccount";
    Kubeconfig {
        clusters: vec![NamedCluster {
            name: NAME.to_owned(),
            cluster: Some(Cluster {
                server: Some(server),
                certificate_authority: Some(ca.to_string_lossy().into_owned()),
                ..Cluster::default()
            }),
            other: Default::default(),
        }],
        auth_infos: vec![NamedAuthInfo {
            name: NAME.to_owned(),
            auth_info: Some(AuthInfo {
                token_file: Some(token.to_string_lossy().into_owned()),
                ..AuthInfo::default()
            }),
            other: Default::default(),
        }],
        contexts: vec![NamedContext {
            name: NAME.to_owned(),
            context: Some(Context {
                cluster: NAME.to_owned(),
                user: Some(NAME.to_owned()),
                ..Context::default()
            }),
            other: Default::default(),
        }],
        current_context: Some(NAME.to_owned()),
        ..Kubeconfig::default()
    }
}

/// The user a 403 names (`User "system:serviceaccount:kube-system:kvip" cannot …`), so the
/// error says which ServiceAccount lacks the binding.
pub(crate) fn forbidden_user(message: &str) -> Option<&str> {
    let rest = &message[message.find("User \"")? + "User \"".len()..];
    rest.split('"').next().filter(|u| !u.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_cluster_server_needs_both_variables_and_brackets_ipv6() {
        let env = |host: Option<&'static str>, port: Option<&'static str>| {
            move |name: &str| match name {
                "KUBERNETES_SERVICE_HOST" => host.map(str::to_owned),
                "KUBERNETES_SERVICE_PORT" => port.map(str::to_owned),
                _ => None,
            }
        };
        assert_eq!(
            in_cluster_server(env(Some("10.96.0.1"), Some("443"))).unwrap(),
            "https://10.96.0.1:443"
        );
        assert_eq!(
            in_cluster_server(env(Some("fd00::1"), Some("443"))).unwrap(),
            "https://[fd00::1]:443"
        );
        let err = in_cluster_server(env(Some("10.96.0.1"), None)).unwrap_err();
        assert!(err.contains("kubernetes_addr"), "{err}");
    }

    #[test]
    fn the_forbidden_user_is_read_from_rbacs_message() {
        let message = "leases.coordination.k8s.io \"plndr-cp-lock\" is forbidden: User \
                       \"system:serviceaccount:kube-system:kvip\" cannot get resource \"leases\" \
                       in API group \"coordination.k8s.io\" in the namespace \"kube-system\"";
        assert_eq!(
            forbidden_user(message),
            Some("system:serviceaccount:kube-system:kvip")
        );
        assert_eq!(forbidden_user("forbidden"), None);
    }

    #[tokio::test]
    async fn a_missing_ca_bundle_is_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(token_path(dir.path()), "t").unwrap();
        let timeouts = ClientTimeouts {
            request: std::time::Duration::from_secs(1),
            watch: std::time::Duration::from_secs(5),
        };
        let err = load(dir.path(), &ApiEndpoint::Local { port: 6443 }, timeouts)
            .await
            .unwrap_err();
        assert_eq!(err, Problem::NotFound(dir.path().join("ca.crt")));
        assert!(present(dir.path()));
        assert!(!present(&dir.path().join("elsewhere")));
    }
}
