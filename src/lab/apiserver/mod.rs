//! The in-repo Lease endpoint: kube-apiserver, as far as kvip depends on it.
//!
//! There is no cluster on a test machine or in `kvip lab`, yet kvip must be exercised with its
//! ordinary `kube::Client` and ordinary kubeconfig files, never a mocked trait. This module serves
//! `coordination.k8s.io/v1` Leases over HTTPS (HTTP/1.1 and HTTP/2) with kube-apiserver's
//! semantics where kvip relies on them:
//!
//! - TLS with a throw-away CA; the serving certificate carries kubeadm's SANs (`kubernetes`,
//!   `localhost`, 127.0.0.1, ::1) plus any the caller adds;
//! - client-certificate authentication (CN = user, O = groups), and bearer tokens for
//!   ServiceAccounts ([`ApiServer::add_token`]); neither, or an unknown token → 401;
//! - RBAC replayed per subject and changeable at runtime (`system:masters` always allowed;
//!   everyone else 403 with RBAC's exact message until [`ApiServer::grant`]);
//! - get / create / update / delete / list / watch with a global revision as `resourceVersion`,
//!   409 Conflict on a stale update, 409 AlreadyExists, 404, 400 / 422 for bad bodies;
//! - watches that resume from a resourceVersion, report 410 Expired for compacted history,
//!   send bookmarks, and end after their timeout;
//! - outages per identity ([`ApiServer::set_outage`]) and a write log ([`ApiServer::writes`]) so
//!   tests can cut one elector off and then check that no two leaders ever wrote.
//!
//! Layout: [`pki`] (CA, certificates, identities), [`kubeconfig`] (admin.conf-shaped files),
//! `store` (Leases, revisions, history, watch fan-out), `routes` / `watch` / `validate` /
//! [`status`] (HTTP semantics), `access` (grants and outages), `serve` (TLS and connections).

mod access;
pub mod kubeconfig;
pub mod pki;
mod routes;
mod serve;
pub mod status;
mod store;
pub mod tokens;
mod validate;
mod watch;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use tokio_rustls::TlsAcceptor;

pub use access::{OutageMode, OutageScope, Subject};
pub use pki::{CertificateAuthority, CertifiedKey, Identity, SYSTEM_MASTERS};
pub use store::{EventKind, WriteRecord};

use serve::{Limits, Shared};

/// Why the endpoint could not start or could not produce credentials.
#[derive(Debug, thiserror::Error)]
pub enum ApiServerError {
    /// Certificate generation failed.
    #[error(transparent)]
    Pki(#[from] pki::PkiError),
    /// rustls rejected the TLS configuration.
    #[error("lease endpoint: TLS configuration rejected: {0}")]
    Tls(String),
    /// The listener could not be bound or handed to tokio.
    #[error("lease endpoint: cannot listen on {what}: {source}")]
    Listen {
        /// The address or "the given listener".
        what: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A kubeconfig could not be written.
    #[error(transparent)]
    Kubeconfig(#[from] kubeconfig::KubeconfigWriteError),
    /// kube could not turn a generated kubeconfig into a client configuration.
    #[error("lease endpoint: kube rejected the generated kubeconfig for {user:?}: {source}")]
    KubeConfig {
        /// The identity's user.
        user: String,
        /// kube's error.
        #[source]
        source: kube::config::KubeconfigError,
    },
}

/// How to start the endpoint. `Options::default()` listens on 127.0.0.1 with an ephemeral port
/// and kube-apiserver's own limits.
#[derive(Debug)]
pub struct Options {
    /// An already-bound listener (e.g. bound inside a network namespace by a thread that entered
    /// it); None binds 127.0.0.1:0.
    pub listener: Option<std::net::TcpListener>,
    /// Extra DNS names for the serving certificate.
    pub extra_dns_names: Vec<String>,
    /// Extra IP addresses for the serving certificate (e.g. the lab's 10.x addresses).
    pub extra_ips: Vec<IpAddr>,
    /// The longest a watch stays open whatever `timeoutSeconds` asks; lower it to make tests
    /// exercise re-establishment (kube-apiserver: up to 2 × `--min-request-timeout` = 3600 s).
    pub watch_timeout_cap: Duration,
    /// How often watches that allow bookmarks get one (kube-apiserver: about once a minute).
    pub bookmark_interval: Duration,
    /// How many events are kept for watches to resume from; older → 410 Expired.
    pub history_limit: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            listener: None,
            extra_dns_names: Vec::new(),
            extra_ips: Vec::new(),
            watch_timeout_cap: Duration::from_secs(3600),
            bookmark_interval: Duration::from_secs(60),
            history_limit: 1000,
        }
    }
}

/// A running endpoint. All controls take `&self` and are safe from any thread; dropping the
/// handle shuts the endpoint down.
pub struct ApiServer {
    shared: Arc<Shared>,
    addr: SocketAddr,
    ca: CertificateAuthority,
}

impl std::fmt::Debug for ApiServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// Starts the endpoint on the current tokio runtime (its tasks live there).
pub async fn start(options: Options) -> Result<ApiServer, ApiServerError> {
    let listen_err = |what: &str| {
        let what = what.to_string();
        move |source| ApiServerError::Listen { what, source }
    };
    let listener = match options.listener {
        Some(listener) => listener,
        None => std::net::TcpListener::bind(("127.0.0.1", 0)).map_err(listen_err("127.0.0.1:0"))?,
    };
    listener
        .set_nonblocking(true)
        .map_err(listen_err("the given listener"))?;
    let addr = listener
        .local_addr()
        .map_err(listen_err("the given listener"))?;
    let listener =
        tokio::net::TcpListener::from_std(listener).map_err(listen_err(&addr.to_string()))?;

    let ca = CertificateAuthority::generate()?;
    let serving = ca.issue_serving(&options.extra_dns_names, &options.extra_ips)?;
    let acceptor = TlsAcceptor::from(Arc::new(tls_config(&ca, &serving)?));

    let shared = Arc::new(Shared {
        store: store::Store::new(options.history_limit),
        grants: access::Grants::default(),
        tokens: tokens::Tokens::default(),
        outages: tokio::sync::watch::Sender::new(access::Outages::default()),
        shutdown: tokio::sync::watch::Sender::new(false),
        requests: Mutex::new(HashMap::new()),
        limits: Limits {
            watch_timeout_cap: options.watch_timeout_cap,
            bookmark_interval: options.bookmark_interval.max(Duration::from_millis(10)),
        },
    });
    tokio::spawn(serve::accept_loop(listener, acceptor, shared.clone()));
    Ok(ApiServer { shared, addr, ca })
}

fn tls_config(
    ca: &CertificateAuthority,
    serving: &CertifiedKey,
) -> Result<rustls::ServerConfig, ApiServerError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(ca.cert_der().clone())
        .map_err(|e| ApiServerError::Tls(format!("CA certificate: {e}")))?;
    // Unauthenticated clients are let through the handshake so that "no certificate" is an
    // HTTP 401, as kube-apiserver answers it, rather than a TLS alert.
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .allow_unauthenticated()
    .build()
    .map_err(|e| ApiServerError::Tls(format!("client verifier: {e}")))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ApiServerError::Tls(format!("protocol versions: {e}")))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![serving.cert_der.clone()], serving.private_key())
        .map_err(|e| ApiServerError::Tls(format!("serving certificate: {e}")))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

impl ApiServer {
    /// Where the endpoint listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://<addr>`, for kubeconfig files that point straight at the endpoint.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The CA certificate (PEM) that signed the serving and client certificates.
    pub fn ca_pem(&self) -> &str {
        self.ca.cert_pem()
    }

    /// A client certificate and key for `identity`, signed by this endpoint's CA.
    pub fn issue(&self, identity: &Identity) -> Result<CertifiedKey, ApiServerError> {
        Ok(self.ca.issue_client(identity)?)
    }

    /// A kubeconfig for `identity` whose `server` is `server` (which need not be
    /// [`ApiServer::url`]: kubeadm's admin.conf points at the VIP).
    pub fn kubeconfig(
        &self,
        identity: &Identity,
        server: &str,
    ) -> Result<kube::config::Kubeconfig, ApiServerError> {
        let client = self.issue(identity)?;
        Ok(kubeconfig::build(
            server,
            self.ca_pem(),
            &identity.user,
            &client,
        ))
    }

    /// Writes a kubeconfig for `identity` pointing at `server` to `path` (mode 0600).
    pub fn write_kubeconfig(
        &self,
        identity: &Identity,
        server: &str,
        path: &Path,
    ) -> Result<(), ApiServerError> {
        let config = self.kubeconfig(identity, server)?;
        Ok(kubeconfig::write(&config, &identity.user, path)?)
    }

    /// A `kube::Config` for `identity` that talks to this endpoint directly.
    pub async fn kube_config(&self, identity: &Identity) -> Result<kube::Config, ApiServerError> {
        let kubeconfig = self.kubeconfig(identity, &self.url())?;
        kube::Config::from_custom_kubeconfig(
            kubeconfig,
            &kube::config::KubeConfigOptions::default(),
        )
        .await
        .map_err(|source| ApiServerError::KubeConfig {
            user: identity.user.clone(),
            source,
        })
    }

    /// Allows `subject` (a user or a group) to use Leases, like binding it to cluster-admin.
    pub fn grant(&self, subject: Subject) {
        self.shared.grants.grant(subject);
    }

    /// Accepts the bearer token `token` as `identity` (e.g. [`Identity::service_account`]), as
    /// kube-apiserver accepts a ServiceAccount token. Authorization is as for any identity.
    pub fn add_token(&self, token: &str, identity: Identity) {
        self.shared.tokens.add(token, identity);
    }

    /// Stops accepting `token` (expired or invalidated): its next request is 401 Unauthorized.
    pub fn remove_token(&self, token: &str) {
        self.shared.tokens.remove(token);
    }

    /// How many requests presented `token` while it was accepted (which token a client uses).
    pub fn token_requests(&self, token: &str) -> u64 {
        self.shared.tokens.requests(token)
    }

    /// Writes a ServiceAccount directory as kubelet mounts it (`token`, `ca.crt` with this
    /// endpoint's CA, `namespace`) and accepts `token` as the ServiceAccount `namespace`/`name`.
    pub fn write_service_account_dir(
        &self,
        dir: &Path,
        token: &str,
        namespace: &str,
        name: &str,
    ) -> std::io::Result<()> {
        self.add_token(token, Identity::service_account(namespace, name));
        tokens::write_service_account_dir(dir, token, self.ca_pem(), namespace)
    }

    /// Takes a grant away; the next request from that subject is 403.
    pub fn revoke(&self, subject: Subject) {
        self.shared.grants.revoke(&subject);
    }

    /// The stored Lease, if any (read directly, not through the API).
    pub fn lease(&self, namespace: &str, name: &str) -> Option<Lease> {
        self.shared.store.get(namespace, name)
    }

    /// Every accepted write so far, oldest first: who wrote which holder at which revision.
    pub fn writes(&self) -> Vec<WriteRecord> {
        self.shared.store.writes()
    }

    /// The latest resourceVersion, as a number.
    pub fn revision(&self) -> u64 {
        self.shared.store.revision()
    }

    /// Forgets the watch history (an etcd compaction): watches resuming from an older
    /// resourceVersion get 410 Expired.
    pub fn compact(&self) {
        self.shared.store.compact();
    }

    /// Starts (`true`) or ends (`false`) a transport-level outage for `scope`: its connections
    /// are dropped, new ones are closed after the handshake, its watch streams end.
    pub fn set_outage(&self, scope: impl Into<OutageScope>, on: bool) {
        self.set_outage_mode(scope, on.then_some(OutageMode::Drop));
    }

    /// Starts (`Some`) or ends (`None`) an outage of the given kind for `scope`.
    pub fn set_outage_mode(&self, scope: impl Into<OutageScope>, mode: Option<OutageMode>) {
        let scope = scope.into();
        self.shared
            .outages
            .send_modify(|outages| outages.set(scope, mode));
    }

    /// How many requests `user` has made (including refused ones; "" = no certificate).
    pub fn requests(&self, user: &str) -> u64 {
        let requests = self
            .shared
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        requests.get(user).copied().unwrap_or(0)
    }

    /// Stops accepting, drops every connection and ends every watch. Idempotent.
    pub fn shutdown(&self) {
        self.shared.shutdown.send_replace(true);
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}
