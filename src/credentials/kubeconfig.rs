//! One rung of the ladder: a kubeconfig file turned into kube clients that reach the node's
//! *local* API server.
//!
//! Why not the kubeconfig's own `server`: on a kubeadm control plane it is the VIP itself, which
//! only exists once someone has won the election (the chicken-and-egg of kube-vip v1.2.2 /
//! dell/omnia#4992). kube-vip reaches `https://kubernetes:<port>` through the pod's `hostAliases`
//! (kubernetes → 127.0.0.1); kvip connects to `https://127.0.0.1:<port>` and verifies the
//! certificate for the name `kubernetes` — the same endpoint and the same check, without
//! depending on hostAliases, which some 1.28–1.30 patch releases did not apply to static pods
//! (kube-vip#692).

use std::path::{Path, PathBuf};
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};

use super::Credential;

/// Which API server the election talks to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiEndpoint {
    /// The default: `https://127.0.0.1:<port>`, certificate checked for the name `kubernetes`
    /// (a SAN of every kubeadm API-server certificate).
    Local {
        /// The local API server's port (kube-vip's `port`, 6443 by default).
        port: u16,
    },
    /// `kubernetes_addr`: `host:port` or a URL, used as given (TLS name from the host), like
    /// kube-vip.
    Address(String),
    /// Use the kubeconfig's `server` unchanged (for clusters where that is not the VIP); for the
    /// ServiceAccount rung, the in-cluster Service (`KUBERNETES_SERVICE_HOST` / `_PORT`).
    FromKubeconfig,
}

impl ApiEndpoint {
    /// kube-vip's rule: `kubernetes_addr` when set, else the local API server on `port`.
    pub fn from_options(kubernetes_addr: Option<&str>, port: u16) -> Self {
        match kubernetes_addr.map(str::trim).filter(|a| !a.is_empty()) {
            Some(addr) => Self::Address(addr.to_owned()),
            None => Self::Local { port },
        }
    }

    fn apply(&self, config: &mut kube::Config) -> Result<(), String> {
        match self {
            Self::Local { port } => {
                config.cluster_url = format!("https://127.0.0.1:{port}")
                    .parse()
                    .map_err(|e| format!("bad local API server port {port}: {e}"))?;
                config.tls_server_name = Some("kubernetes".to_owned());
            }
            Self::Address(addr) => {
                let url = if addr.contains("://") {
                    addr.clone()
                } else {
                    format!("https://{addr}")
                };
                config.cluster_url = url.parse().map_err(|e| {
                    format!("kubernetes_addr {addr:?} is not host:port or a URL ({e})")
                })?;
            }
            Self::FromKubeconfig => {}
        }
        Ok(())
    }
}

/// Client timeouts for an election: every request well inside the renew deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientTimeouts {
    /// Connect / read / write timeout of ordinary requests.
    pub request: Duration,
    /// The watch's server-side `timeoutSeconds`; the watch client's read timeout is a few seconds
    /// longer so the server, not the client, ends a quiet watch.
    pub watch: Duration,
}

/// The clients built from one rung (a kubeconfig file or the ServiceAccount token).
#[derive(Clone)]
pub struct Clients {
    /// Which rung these clients belong to.
    pub credential: Credential,
    /// For get / create / update: short timeouts, no automatic retries (the elector decides
    /// when to retry; a hidden retry could outlive the renew deadline).
    pub requests: kube::Client,
    /// For the watch: a read timeout longer than the watch's `timeoutSeconds`.
    pub watch: kube::Client,
}

impl std::fmt::Debug for Clients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Clients")
            .field("credential", &self.credential)
            .finish()
    }
}

/// What is wrong with one rung (a kubeconfig file, or the ServiceAccount directory), worded for
/// the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The file does not exist (yet).
    NotFound(PathBuf),
    /// The file exists but cannot be read.
    Unreadable(PathBuf, String),
    /// The file is not a usable kubeconfig (syntax, missing context, bad certificate data…).
    NotAKubeconfig(PathBuf, String),
    /// The API server answered 403 for the Lease with this identity.
    Forbidden {
        /// The Lease namespace.
        namespace: String,
        /// The server's message.
        message: String,
    },
}

impl Problem {
    /// The sentence for this problem, with a hint that depends on which rung it is.
    pub fn describe(&self, credential: Credential) -> String {
        match self {
            Problem::NotFound(path) => match credential {
                Credential::SuperAdmin => format!(
                    "not found at {} (it exists only on the node that ran `kubeadm init`)",
                    path.display()
                ),
                Credential::Admin => format!(
                    "not found at {} (kubeadm writes it on every control-plane node; is the hostPath mounted?)",
                    path.display()
                ),
                Credential::ServiceAccount => format!(
                    "not found at {} (kubelet mounts token, ca.crt and namespace together; is \
                     the ServiceAccount volume complete?)",
                    path.display()
                ),
            },
            Problem::Unreadable(path, e) => format!("cannot read {}: {e}", path.display()),
            Problem::NotAKubeconfig(path, e) => match credential {
                Credential::ServiceAccount => format!(
                    "{} is not a usable ServiceAccount directory: {e}",
                    path.display()
                ),
                Credential::Admin | Credential::SuperAdmin => {
                    format!("{} is not a usable kubeconfig: {e}", path.display())
                }
            },
            Problem::Forbidden { namespace, message } => match credential {
                Credential::ServiceAccount => {
                    let who = super::service_account::forbidden_user(message)
                        .unwrap_or("the ServiceAccount");
                    format!(
                        "403 Forbidden for leases in {namespace}: {who} is not bound to kvip's \
                         Role; apply `kvip manifest rbac --namespace {namespace} | kubectl \
                         apply -f -` (server said: {message})"
                    )
                }
                Credential::Admin | Credential::SuperAdmin => format!(
                    "403 Forbidden for leases in {namespace} (RBAC not yet bound?): {message}"
                ),
            },
        }
    }
}

/// Reads `path` and builds the clients for `credential`, pointed at `endpoint`.
pub(crate) async fn load(
    credential: Credential,
    path: &Path,
    endpoint: &ApiEndpoint,
    timeouts: ClientTimeouts,
) -> Result<Clients, Problem> {
    // A few kilobytes read once per rung change: not worth a blocking-pool hop.
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Problem::NotFound(path.to_owned()));
        }
        Err(e) => return Err(Problem::Unreadable(path.to_owned(), e.to_string())),
    };
    let bad = |e: String| Problem::NotAKubeconfig(path.to_owned(), e);
    let kubeconfig = Kubeconfig::from_yaml(&text).map_err(|e| bad(e.to_string()))?;
    clients(credential, kubeconfig, endpoint, timeouts)
        .await
        .map_err(bad)
}

/// Builds the election's clients from a kubeconfig (a file's, or the ServiceAccount rung's
/// in-memory one): pointed at `endpoint`, no automatic retries, request timeouts, and a separate
/// watch client whose read timeout outlasts the watch. Every rung goes through here, so every
/// rung gets the same client behaviour.
pub(crate) async fn clients(
    credential: Credential,
    kubeconfig: Kubeconfig,
    endpoint: &ApiEndpoint,
    timeouts: ClientTimeouts,
) -> Result<Clients, String> {
    let mut config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .map_err(|e| e.to_string())?;
    endpoint.apply(&mut config)?;
    config.default_retry = false;
    config.connect_timeout = Some(timeouts.request);
    config.write_timeout = Some(timeouts.request);
    let mut request_config = config.clone();
    request_config.read_timeout = Some(timeouts.request);
    // A pooled connection's idle time must not count against the next request's read timeout.
    request_config.reset_reader_on_write = true;
    let mut watch_config = config;
    watch_config.read_timeout = Some(timeouts.watch + Duration::from_secs(5));
    let requests = kube::Client::try_from(request_config).map_err(|e| e.to_string())?;
    let watch = kube::Client::try_from(watch_config).map_err(|e| e.to_string())?;
    Ok(Clients {
        credential,
        requests,
        watch,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubernetes_addr_overrides_the_local_default() {
        assert_eq!(
            ApiEndpoint::from_options(None, 6443),
            ApiEndpoint::Local { port: 6443 }
        );
        assert_eq!(
            ApiEndpoint::from_options(Some(" "), 6443),
            ApiEndpoint::Local { port: 6443 }
        );
        assert_eq!(
            ApiEndpoint::from_options(Some("10.0.0.5:6443"), 6443),
            ApiEndpoint::Address("10.0.0.5:6443".into())
        );
    }

    #[test]
    fn local_endpoint_is_loopback_with_the_kubernetes_tls_name() {
        let mut config = kube::Config::new("https://192.168.1.100:6443".parse().unwrap());
        ApiEndpoint::Local { port: 7443 }
            .apply(&mut config)
            .unwrap();
        assert_eq!(config.cluster_url.to_string(), "https://127.0.0.1:7443/");
        assert_eq!(config.tls_server_name.as_deref(), Some("kubernetes"));
        ApiEndpoint::Address("10.1.2.3:6443".into())
            .apply(&mut config)
            .unwrap();
        assert_eq!(config.cluster_url.host(), Some("10.1.2.3"));
    }

    #[test]
    fn problems_name_the_file_and_the_fix() {
        let p = Problem::NotFound("/etc/kubernetes/super-admin.conf".into());
        assert_eq!(
            p.describe(Credential::SuperAdmin),
            "not found at /etc/kubernetes/super-admin.conf (it exists only on the node that ran `kubeadm init`)"
        );
    }

    #[tokio::test]
    async fn garbage_is_not_a_kubeconfig() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admin.conf");
        std::fs::write(&path, "this: [is not").unwrap();
        let timeouts = ClientTimeouts {
            request: Duration::from_secs(1),
            watch: Duration::from_secs(5),
        };
        let err = load(
            Credential::Admin,
            &path,
            &ApiEndpoint::FromKubeconfig,
            timeouts,
        )
        .await
        .unwrap_err();
        assert!(matches!(err, Problem::NotAKubeconfig(..)), "{err:?}");
        let missing = dir.path().join("nope.conf");
        let err = load(
            Credential::Admin,
            &missing,
            &ApiEndpoint::FromKubeconfig,
            timeouts,
        )
        .await
        .unwrap_err();
        assert_eq!(err, Problem::NotFound(missing));
    }
}
