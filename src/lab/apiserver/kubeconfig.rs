//! Kubeconfig files shaped like kubeadm's admin.conf and super-admin.conf.
//!
//! kvip reads ordinary kubeconfig files, so the tests and `kvip lab` hand it ordinary kubeconfig
//! files: cluster `kubernetes`, the CA and the client certificate embedded as `*-data`, context
//! `<user>@kubernetes`. kubeadm points `server` at the VIP (`https://<vip>:6443`) and kvip overrides
//! it to reach its local API server, so the server URL here is whatever the caller says, not
//! necessarily where the endpoint listens.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use kube::config::{
    AuthInfo, Cluster, Context, Kubeconfig, NamedAuthInfo, NamedCluster, NamedContext,
};
use secrecy::SecretString;

use super::pki::CertifiedKey;

/// Why a kubeconfig could not be written.
#[derive(Debug, thiserror::Error)]
pub enum KubeconfigWriteError {
    /// YAML serialization failed (a bug: every field is a plain string).
    #[error("kubeconfig for {user:?}: cannot serialize as YAML: {message}")]
    Serialize {
        /// The kubeconfig's user.
        user: String,
        /// The serializer's complaint.
        message: String,
    },
    /// The file could not be written.
    #[error("kubeconfig for {user:?}: cannot write {path}: {source}")]
    Write {
        /// The kubeconfig's user.
        user: String,
        /// Where it was to be written.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// kubeadm's cluster name in every kubeconfig it writes.
const CLUSTER_NAME: &str = "kubernetes";

/// A kubeconfig for `user` holding `client` (certificate and key) that trusts `ca_pem` and talks
/// to `server`, with kubeadm's names.
pub fn build(server: &str, ca_pem: &str, user: &str, client: &CertifiedKey) -> Kubeconfig {
    let context_name = format!("{user}@{CLUSTER_NAME}");
    Kubeconfig {
        clusters: vec![NamedCluster {
            name: CLUSTER_NAME.to_string(),
            cluster: Some(Cluster {
                server: Some(server.to_string()),
                certificate_authority_data: Some(STANDARD.encode(ca_pem)),
                ..Cluster::default()
            }),
            other: Default::default(),
        }],
        auth_infos: vec![NamedAuthInfo {
            name: user.to_string(),
            auth_info: Some(AuthInfo {
                client_certificate_data: Some(STANDARD.encode(&client.cert_pem)),
                client_key_data: Some(SecretString::from(STANDARD.encode(&client.key_pem))),
                ..AuthInfo::default()
            }),
            other: Default::default(),
        }],
        contexts: vec![NamedContext {
            name: context_name.clone(),
            context: Some(Context {
                cluster: CLUSTER_NAME.to_string(),
                user: Some(user.to_string()),
                ..Context::default()
            }),
            other: Default::default(),
        }],
        current_context: Some(context_name),
        kind: Some("Config".to_string()),
        api_version: Some("v1".to_string()),
        ..Kubeconfig::default()
    }
}

/// `config` as YAML text, as kubeadm would write it.
pub fn to_yaml(config: &Kubeconfig, user: &str) -> Result<String, KubeconfigWriteError> {
    // Plain scalars, as kubeadm writes them: block styles (`>-`) are valid YAML but surprise
    // anyone who greps or seds a kubeconfig.
    let options = serde_saphyr::ser_options! { prefer_block_scalars: false };
    serde_saphyr::to_string_with_options(config, options).map_err(|e| {
        KubeconfigWriteError::Serialize {
            user: user.to_string(),
            message: e.to_string(),
        }
    })
}

/// Writes `config` to `path` with mode 0600, as kubeadm does for admin.conf.
pub fn write(config: &Kubeconfig, user: &str, path: &Path) -> Result<(), KubeconfigWriteError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let text = to_yaml(config, user)?;
    let io_err = |source| KubeconfigWriteError::Write {
        user: user.to_string(),
        path: path.display().to_string(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io_err)?;
    file.write_all(text.as_bytes()).map_err(io_err)
}
