//! `kvip manifest pod|daemonset|rbac`: the objects that run kvip, built from k8s-openapi types.
//!
//! The static Pod is the main deliverable: one file, identical on every control-plane node, that
//! survives the kubeadm >= 1.29 bootstrap without edits (see [`pod`] for the kubeconfig volume).
//! The generator validates its options exactly as `kvip run` does, so it never writes a manifest
//! the daemon would refuse, and it writes only the options the operator chose: kvip's defaults
//! stay kvip's to improve, and a value the operator set always wins.

mod env;
mod pod;
mod rbac;

use anyhow::Context;
use serde::Serialize;

use crate::cli::{ManifestArgs, RbacArgs};
use crate::config::ConfigError;

pub use pod::{daemonset, static_pod};
pub use rbac::rbac;

/// The image manifests name unless `--image` says otherwise: the tag is this crate's version, so
/// a manifest and the binary that generated it always match.
pub const DEFAULT_IMAGE: &str = concat!("ghcr.io/kvip/kvip:v", env!("CARGO_PKG_VERSION"));

/// Which workload to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A static Pod for `/etc/kubernetes/manifests/`.
    StaticPod,
    /// A DaemonSet on the control-plane nodes, with in-cluster credentials.
    DaemonSet,
}

/// Renders the manifest for `kind` as YAML, plus warnings for the operator (stderr).
pub fn render(kind: Kind, args: &ManifestArgs) -> Result<(String, Vec<String>), ConfigError> {
    let (spec, warnings) = env::PodInputs::new(args)?;
    let yaml = match kind {
        Kind::StaticPod => to_yaml(&[static_pod(&spec)]),
        Kind::DaemonSet => to_yaml(&[daemonset(&spec)]),
    };
    Ok((
        yaml.map_err(|e| ConfigError::Other(format!("{e:#}")))?,
        warnings,
    ))
}

/// Renders `kvip manifest rbac`.
pub fn render_rbac(args: &RbacArgs) -> Result<String, ConfigError> {
    let (namespace, name) = rbac::lease_location(args)?;
    let (account, role, binding) = rbac(&namespace, &name);
    let docs = [
        serde_json::to_value(account),
        serde_json::to_value(role),
        serde_json::to_value(binding),
    ];
    let docs = docs
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ConfigError::Other(format!("cannot serialize the RBAC objects: {e}")))?;
    to_yaml(&docs).map_err(|e| ConfigError::Other(format!("{e:#}")))
}

/// YAML documents separated by `---`, as `kubectl apply -f` reads them.
fn to_yaml<T: Serialize>(docs: &[T]) -> anyhow::Result<String> {
    let mut out = String::new();
    for (i, doc) in docs.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        out.push_str(&serde_saphyr::to_string(doc).context("cannot render the manifest as YAML")?);
        if !out.ends_with('\n') {
            out.push('\n');
        }
    }
    Ok(out)
}
