//! The container's environment: kube-vip's variable names, so the manifest reads the same to
//! an operator who knows kube-vip, and only the values the operator chose.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, ObjectFieldSelector};

use crate::cli::ManifestArgs;
use crate::config::{self, ConfigError, Opt};

/// Everything the Pod and DaemonSet builders need, already validated.
#[derive(Debug, Clone)]
pub struct PodInputs {
    /// The container image.
    pub image: String,
    /// The container's environment, in kube-vip's order.
    pub env: Vec<EnvVar>,
    /// Where kvip serves `/healthz` for the liveness probe; `None` disables the probe.
    pub health: Option<SocketAddr>,
    /// Host directories holding the kubeconfig files (static Pod only).
    pub kubeconfig_dirs: Vec<PathBuf>,
    /// The Lease's namespace (the DaemonSet and its RBAC live there).
    pub namespace: String,
}

impl PodInputs {
    /// Validates the options exactly as `kvip run` would and collects the environment; returns
    /// the warnings `kvip run` would log too.
    pub fn new(args: &ManifestArgs) -> Result<(Self, Vec<String>), ConfigError> {
        // The node name comes from the downward API at run time; any valid stand-in will do here.
        let mut vip_args = args.vip.clone();
        vip_args.node_name = Some("node-from-downward-api".into());
        let resolved = config::Config::from_args(&vip_args, &args.observe, std::iter::empty())?;

        let v = &args.vip;
        let o = &args.observe;
        let joined = |vips: &[config::Vip]| {
            vips.iter()
                .map(|v| v.addr.to_string())
                .collect::<Vec<_>>()
                .join(",")
        };
        let mut env = vec![value("vip_arp", "true"), value("cp_enable", "true")];
        env.push(EnvVar {
            name: "vip_nodename".into(),
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    field_path: "spec.nodeName".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        });
        let optional: [(&str, Option<String>); 21] = [
            ("vip_interface", resolved.interface.clone()),
            ("address", Some(joined(&resolved.vips))),
            ("vip_subnet", v.vip_subnet.clone()),
            ("port", v.port.clone()),
            ("cp_namespace", v.namespace.clone()),
            ("vip_leasename", v.lease_name.clone()),
            ("vip_leaseduration", v.lease_duration.clone()),
            ("vip_renewdeadline", v.renew_deadline.clone()),
            ("vip_retryperiod", v.retry_period.clone()),
            ("vip_leaseannotations", v.lease_annotations.clone()),
            ("vip_arpRate", v.arp_rate.clone()),
            (
                "vip_allow_interface_not_up",
                v.allow_interface_not_up.map(|b| b.to_string()),
            ),
            ("vip_skipdad", v.skip_dad.map(|b| b.to_string())),
            (
                "k8s_config_file",
                v.kubeconfig.as_ref().map(|p| p.display().to_string()),
            ),
            (
                "kvip_super_admin_kubeconfig",
                v.super_admin_kubeconfig
                    .as_ref()
                    .map(|p| p.display().to_string()),
            ),
            ("kubernetes_addr", v.kubernetes_addr.clone()),
            ("prometheus_server", o.prometheus_server.clone()),
            ("kvip_health_address", o.health_address.clone()),
            ("health_check_port", o.health_check_port.clone()),
            ("vip_loglevel", o.log_level.clone()),
            ("kvip_log_format", o.log_format.clone()),
        ];
        env.extend(
            optional
                .into_iter()
                .filter_map(|(name, v)| v.map(|v| value(name, &v))),
        );

        let image = match args.image.as_deref().map(str::trim) {
            None => super::DEFAULT_IMAGE.to_string(),
            Some(image) if !image.is_empty() && !image.contains(char::is_whitespace) => {
                image.to_string()
            }
            Some(image) => {
                return Err(Opt {
                    flag: "--image",
                    env: "",
                }
                .invalid(
                    image,
                    "a container image reference such as ghcr.io/kvip/kvip:v0.1.0",
                ));
            }
        };
        let health = health_target(args, &resolved)?;
        let mut kubeconfig_dirs: Vec<PathBuf> = Vec::new();
        for file in [&resolved.kubeconfig, &resolved.super_admin_kubeconfig] {
            let dir = file.parent().filter(|d| d.is_absolute() && d != &Path::new("/")).ok_or_else(|| {
                ConfigError::Other(format!(
                    "kubeconfig path {} must be an absolute path below a directory (e.g. /etc/kubernetes/admin.conf)",
                    file.display()
                ))
            })?;
            if !kubeconfig_dirs.iter().any(|d| d == dir) {
                kubeconfig_dirs.push(dir.to_path_buf());
            }
        }
        let namespace = resolved.lease.namespace.clone();
        Ok((
            PodInputs {
                image,
                env,
                health,
                kubeconfig_dirs,
                namespace,
            },
            resolved.warnings,
        ))
    }
}

/// The address kubelet's liveness probe should reach: the health address, or failing that any
/// listener (they all serve `/healthz`). An unspecified address is probed on loopback.
fn health_target(
    args: &ManifestArgs,
    resolved: &config::Config,
) -> Result<Option<SocketAddr>, ConfigError> {
    let health_disabled = args
        .observe
        .health_address
        .as_deref()
        .is_some_and(|a| a.trim().is_empty());
    let preferred = if health_disabled {
        resolved.http_listeners.first().copied()
    } else {
        resolved
            .http_listeners
            .iter()
            .copied()
            .find(|a| a.ip().is_loopback())
            .or(resolved.http_listeners.first().copied())
    };
    Ok(preferred.map(|mut addr| {
        if addr.ip().is_unspecified() {
            addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        addr
    }))
}

fn value(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        ..Default::default()
    }
}
