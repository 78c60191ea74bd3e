//! Configuration: the command line and kube-vip's environment, validated into one [`Config`].
//!
//! Validation happens before anything touches the host, so a bad value costs the operator one
//! clear message and a non-zero exit, never a half-added address or an orphaned Lease holder.
//! Defaults live here (not in clap) so that a generated manifest only carries what the operator
//! chose, and kvip can tune its own defaults without rewriting anyone's manifests.

mod compat;
mod values;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

pub use crate::address::Vip;
use crate::cli::{ObserveArgs, VipArgs};
use crate::election::{Timings, TimingsError};
pub use values::Opt;

pub use crate::credentials::{
    DEFAULT_ADMIN_KUBECONFIG, DEFAULT_SERVICE_ACCOUNT_DIR, DEFAULT_SUPER_ADMIN_KUBECONFIG,
};
pub use crate::election::{DEFAULT_LEASE_NAME, DEFAULT_LEASE_NAMESPACE};

/// Default API server port.
pub const DEFAULT_PORT: u16 = 6443;
pub use crate::announce::DEFAULT_ARP_RATE;
/// Default metrics address (kube-vip's `prometheus_server`).
pub const DEFAULT_PROMETHEUS_SERVER: &str = ":2112";
/// Default health address: loopback only, for kubelet's liveness probe on the host network.
pub const DEFAULT_HEALTH_ADDRESS: &str = "127.0.0.1:2113";
/// The shortest lease duration kvip accepts: the kernel fence (see `daemon::fence`) needs a
/// lifetime of at least one whole second after taking off the kernel's one-second slack and a
/// margin, before the Lease can expire for the other nodes.
pub const MIN_LEASE_DURATION: Duration = Duration::from_secs(3);

/// A configuration error: one message that names the option, the value and the fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A value that cannot be used as given.
    #[error("{option}: `{value}` is not valid: expected {expected}")]
    Invalid {
        /// The flag and environment variable.
        option: String,
        /// The value as the operator gave it.
        value: String,
        /// What would have been accepted, and how to get there.
        expected: String,
    },
    /// A required option that is missing or a combination that cannot work.
    #[error("{0}")]
    Other(String),
}

/// The Lease and its timings (client-go's names).
#[derive(Debug, Clone, Serialize)]
pub struct LeaseSettings {
    /// Namespace of the Lease.
    pub namespace: String,
    /// Name of the Lease.
    pub name: String,
    /// How long a Lease is valid without renewal (whole seconds: the Lease stores seconds).
    #[serde(with = "humantime_serde_compat")]
    pub duration: Duration,
    /// How long the holder keeps trying to renew before stepping down.
    #[serde(with = "humantime_serde_compat")]
    pub renew_deadline: Duration,
    /// How often the holder renews and candidates retry.
    #[serde(with = "humantime_serde_compat")]
    pub retry_period: Duration,
    /// Annotations written on the Lease (kube-vip's `vip_leaseannotations`).
    pub annotations: BTreeMap<String, String>,
}

/// Log output settings.
#[derive(Debug, Clone, Serialize)]
pub struct LogSettings {
    /// The most verbose level that is written.
    pub level: String,
    /// Machine-readable JSON lines instead of text.
    pub json: bool,
}

/// Everything `kvip run` needs, validated.
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    /// The interface that carries the VIP; `None` = the interface of the default route.
    pub interface: Option<String>,
    /// Start even when the interface is down (kube-vip's `vip_allow_interface_not_up`).
    pub allow_interface_not_up: bool,
    /// The VIPs: one, or one per address family (dual stack).
    pub vips: Vec<Vip>,
    /// Skip IPv6 duplicate address detection when adding the VIP.
    pub skip_dad: bool,
    /// The API servers' port: the local API server is reached on it.
    pub port: u16,
    /// The Lease this node competes for.
    pub lease: LeaseSettings,
    /// This node's identity in the Lease.
    pub node_name: String,
    /// The least-privileged kubeconfig, tried first.
    pub kubeconfig: PathBuf,
    /// The fallback kubeconfig for the kubeadm >= 1.29 bootstrap window.
    pub super_admin_kubeconfig: PathBuf,
    /// The ServiceAccount directory; its token, when present, is the credential (DaemonSet mode).
    pub service_account_dir: PathBuf,
    /// An explicit API server (`kubernetes_addr`); `None` = the node's own, `127.0.0.1:<port>`.
    pub api_server: Option<String>,
    /// The interval of refresh announcements while leading.
    #[serde(with = "humantime_serde_compat")]
    pub arp_rate: Duration,
    /// Where `/metrics`, `/healthz` and `/readyz` are served (deduplicated; may be empty).
    pub http_listeners: Vec<SocketAddr>,
    /// Logging.
    pub log: LogSettings,
    /// Things the operator should know that do not stop kvip (logged once at startup).
    #[serde(skip)]
    pub warnings: Vec<String>,
}

impl Config {
    /// Validates the daemon's options. `env` is the process environment, read only to find
    /// kube-vip variables kvip does not implement (clap has already read the ones it does).
    pub fn from_args<'a>(
        vip: &VipArgs,
        observe: &ObserveArgs,
        env: impl IntoIterator<Item = (&'a str, &'a str)> + Clone,
    ) -> Result<Config, ConfigError> {
        if let Some(message) = compat::refused_mode(env.clone()) {
            return Err(ConfigError::Other(message));
        }
        let mut warnings = Vec::new();
        let ignored = compat::ignored_variables(env);
        if !ignored.is_empty() {
            warnings.push(format!(
                "ignoring kube-vip settings kvip does not implement: {}",
                ignored.join(", ")
            ));
        }
        let checked = check_vip_args(vip, &mut warnings)?;

        let node_name = match &vip.node_name {
            Some(name) => node_name(NODE_NAME, name)?,
            None => {
                let host = std::fs::read_to_string("/proc/sys/kernel/hostname").map_err(|e| {
                    ConfigError::Other(format!(
                        "{NODE_NAME} is not set and the hostname cannot be read ({e}); set {NODE_NAME}"
                    ))
                })?;
                node_name(NODE_NAME, &host.trim().to_lowercase())?
            }
        };
        let port = opt_or(vip.port.as_deref(), PORT, values::port, DEFAULT_PORT)?;
        let api_server = vip
            .kubernetes_addr
            .as_deref()
            .map(|addr| api_server(KUBERNETES_ADDR, addr))
            .transpose()?;
        let arp_rate = match vip.arp_rate.as_deref() {
            None => DEFAULT_ARP_RATE,
            Some(text) => {
                let ms = text.trim().parse::<u64>().ok().filter(|ms| *ms >= 100);
                let ms = ms.ok_or_else(|| {
                    ARP_RATE.invalid(
                        text,
                        "a whole number of milliseconds, at least 100 (e.g. 3000)",
                    )
                })?;
                Duration::from_millis(ms)
            }
        };
        Ok(Config {
            interface: checked.interface,
            allow_interface_not_up: vip.allow_interface_not_up.unwrap_or(false),
            vips: checked.vips,
            skip_dad: vip.skip_dad.unwrap_or(false),
            port,
            lease: checked.lease,
            node_name,
            kubeconfig: vip
                .kubeconfig
                .clone()
                .unwrap_or_else(|| DEFAULT_ADMIN_KUBECONFIG.into()),
            super_admin_kubeconfig: vip
                .super_admin_kubeconfig
                .clone()
                .unwrap_or_else(|| DEFAULT_SUPER_ADMIN_KUBECONFIG.into()),
            service_account_dir: vip
                .service_account_dir
                .clone()
                .unwrap_or_else(|| DEFAULT_SERVICE_ACCOUNT_DIR.into()),
            api_server,
            arp_rate,
            http_listeners: http_listeners(observe)?,
            log: log_settings(observe)?,
            warnings,
        })
    }
}

/// The VIP options that need no host access to validate.
struct CheckedVipArgs {
    pub interface: Option<String>,
    pub vips: Vec<Vip>,
    pub lease: LeaseSettings,
}

/// Validates the mode, interface, VIP and Lease options.
fn check_vip_args(
    vip: &VipArgs,
    warnings: &mut Vec<String>,
) -> Result<CheckedVipArgs, ConfigError> {
    if vip.controlplane == Some(false) {
        return Err(ConfigError::Other(format!(
            "{CONTROLPLANE} is false, but control-plane mode is the only mode kvip implements; \
             remove it or set it to true"
        )));
    }
    if vip.arp == Some(false) {
        return Err(ConfigError::Other(format!(
            "{ARP} is false, but ARP/NDP is the only way kvip announces the VIP (BGP and \
             routing-table modes are not implemented); remove it or set it to true"
        )));
    }
    if vip.services == Some(true) {
        warnings.push(format!(
            "{SERVICES} is set, but Services (LoadBalancer) mode is not supported by kvip yet: \
             only the control-plane VIP is managed"
        ));
    }
    if vip.leader_election == Some(false) {
        warnings.push(format!(
            "{LEADER_ELECTION}=false is ignored: the control-plane VIP is always elected (as in kube-vip)"
        ));
    }
    let interface = vip
        .interface
        .as_deref()
        .filter(|name| !name.is_empty())
        .map(|name| values::interface_name(INTERFACE, name))
        .transpose()?;
    let vips = vips(vip)?;
    let lease = lease_settings(vip)?;
    Ok(CheckedVipArgs {
        interface,
        vips,
        lease,
    })
}

const INTERFACE: Opt = Opt {
    flag: "--interface",
    env: "vip_interface",
};
const ADDRESS: Opt = Opt {
    flag: "--address",
    env: "address",
};
const LEGACY_ADDRESS: Opt = Opt {
    flag: "--vip",
    env: "vip_address",
};
const SUBNET: Opt = Opt {
    flag: "--vipSubnet",
    env: "vip_subnet",
};
const PORT: Opt = Opt {
    flag: "--port",
    env: "port",
};
const CONTROLPLANE: Opt = Opt {
    flag: "--controlplane",
    env: "cp_enable",
};
const ARP: Opt = Opt {
    flag: "--arp",
    env: "vip_arp",
};
const SERVICES: Opt = Opt {
    flag: "--services",
    env: "svc_enable",
};
const LEADER_ELECTION: Opt = Opt {
    flag: "--leaderElection",
    env: "vip_leaderelection",
};
const LEASE_NAME: Opt = Opt {
    flag: "--leaseName",
    env: "vip_leasename",
};
const NAMESPACE: Opt = Opt {
    flag: "--namespace",
    env: "cp_namespace",
};
const LEASE_DURATION: Opt = Opt {
    flag: "--leaseDuration",
    env: "vip_leaseduration",
};
const RENEW_DEADLINE: Opt = Opt {
    flag: "--leaseRenewDuration",
    env: "vip_renewdeadline",
};
const RETRY_PERIOD: Opt = Opt {
    flag: "--leaseRetry",
    env: "vip_retryperiod",
};
const ANNOTATIONS: Opt = Opt {
    flag: "--leaseAnnotations",
    env: "vip_leaseannotations",
};
const NODE_NAME: Opt = Opt {
    flag: "--nodeName",
    env: "vip_nodename",
};
const KUBERNETES_ADDR: Opt = Opt {
    flag: "--kubernetes-addr",
    env: "kubernetes_addr",
};
const ARP_RATE: Opt = Opt {
    flag: "--arp-rate",
    env: "vip_arpRate",
};
const PROMETHEUS: Opt = Opt {
    flag: "--prometheusHTTPServer",
    env: "prometheus_server",
};
const HEALTH: Opt = Opt {
    flag: "--health-address",
    env: "kvip_health_address",
};
const HEALTH_PORT: Opt = Opt {
    flag: "--healthCheckPort",
    env: "health_check_port",
};
const LOG_LEVEL: Opt = Opt {
    flag: "--log",
    env: "vip_loglevel",
};
const LOG_FORMAT: Opt = Opt {
    flag: "--log-format",
    env: "kvip_log_format",
};

fn opt_or<T>(
    value: Option<&str>,
    opt: Opt,
    parse: fn(Opt, &str) -> Result<T, ConfigError>,
    default: T,
) -> Result<T, ConfigError> {
    value
        .map(|v| parse(opt, v))
        .transpose()
        .map(|v| v.unwrap_or(default))
}

/// The VIPs from `--address` (or the legacy `--vip`) and `--vipSubnet`.
fn vips(vip: &VipArgs) -> Result<Vec<Vip>, ConfigError> {
    let (opt, text) = match (&vip.address, &vip.legacy_address) {
        (Some(a), _) if !a.trim().is_empty() => (ADDRESS, a.as_str()),
        (_, Some(a)) if !a.trim().is_empty() => (LEGACY_ADDRESS, a.as_str()),
        _ => {
            return Err(ConfigError::Other(format!(
                "{ADDRESS} is not set: give the VIP, the address of --control-plane-endpoint \
                 (e.g. --address 192.168.0.100)"
            )));
        }
    };
    let addrs = text
        .split(',')
        .map(|part| values::vip_address(opt, part))
        .collect::<Result<Vec<_>, _>>()?;
    let dual = matches!(addrs.as_slice(), [a, b] if a.is_ipv4() != b.is_ipv4());
    if addrs.len() > 2 || (addrs.len() == 2 && !dual) {
        return Err(opt.invalid(
            text,
            "one address, or one IPv4 and one IPv6 address separated by a comma",
        ));
    }
    let subnets: Vec<&str> = vip
        .vip_subnet
        .as_deref()
        .map(|s| s.split(',').collect())
        .unwrap_or_default();
    if !subnets.is_empty() && subnets.len() != addrs.len() {
        return Err(SUBNET.invalid(
            vip.vip_subnet.as_deref().unwrap_or_default(),
            format!(
                "one prefix length per address in {opt} ({} given)",
                addrs.len()
            ),
        ));
    }
    addrs
        .iter()
        .enumerate()
        .map(|(i, addr)| {
            let max = if addr.is_ipv4() { 32 } else { 128 };
            let prefix_len = match subnets.get(i) {
                None => max,
                Some(text) => text
                    .trim()
                    .parse::<u8>()
                    .ok()
                    .filter(|p| (1..=max).contains(p))
                    .ok_or_else(|| {
                        SUBNET.invalid(
                            text,
                            format!("a prefix length from 1 to {max} for {addr} (normally {max})"),
                        )
                    })?,
            };
            Ok(Vip {
                addr: *addr,
                prefix_len,
            })
        })
        .collect()
}

/// The Lease name (possibly `namespace/name`), namespace and timings, with client-go's rule.
fn lease_settings(vip: &VipArgs) -> Result<LeaseSettings, ConfigError> {
    let (namespace, name) = lease_location(vip.namespace.as_deref(), vip.lease_name.as_deref())?;
    let defaults = Timings::default();
    let duration = opt_or(
        vip.lease_duration.as_deref(),
        LEASE_DURATION,
        values::duration,
        defaults.lease_duration(),
    )?;
    let renew_deadline = opt_or(
        vip.renew_deadline.as_deref(),
        RENEW_DEADLINE,
        values::duration,
        defaults.renew_deadline(),
    )?;
    let retry_period = opt_or(
        vip.retry_period.as_deref(),
        RETRY_PERIOD,
        values::duration,
        defaults.retry_period(),
    )?;
    if duration.subsec_nanos() != 0 {
        return Err(LEASE_DURATION.invalid(
            &humantime::format_duration(duration).to_string(),
            "whole seconds: the Lease stores its duration in seconds",
        ));
    }
    let fmt = |d: Duration| humantime::format_duration(d).to_string();
    if duration < MIN_LEASE_DURATION {
        return Err(LEASE_DURATION.invalid(
            &fmt(duration),
            "at least 3 seconds: kvip's kernel fence removes the VIP in whole seconds, \
             with one second of slack, before the Lease can expire for the other nodes",
        ));
    }
    // The rule itself lives with the elector; here it is only worded for the operator.
    if let Err(err) = Timings::new(duration, renew_deadline, retry_period) {
        let why = match err {
            TimingsError::LeaseNotAboveRenew { .. } => format!(
                "{LEASE_DURATION} ({}) must be greater than {RENEW_DEADLINE} ({}): a leader that \
                 cannot renew must step down before its Lease can expire for the other nodes",
                fmt(duration),
                fmt(renew_deadline)
            ),
            TimingsError::RenewNotAboveRetry { .. } => format!(
                "{RENEW_DEADLINE} ({}) must be greater than 1.2 x {RETRY_PERIOD} ({}): the leader \
                 needs at least one jittered retry before its deadline",
                fmt(renew_deadline),
                fmt(retry_period)
            ),
            other => other.to_string(),
        };
        return Err(ConfigError::Other(format!(
            "{why} (client-go's rule; kvip's defaults are 5/3/1, kube-vip's 15/10/2)"
        )));
    }
    let annotations = match vip.lease_annotations.as_deref().map(str::trim) {
        None | Some("") => BTreeMap::new(),
        Some(json) => serde_json::from_str(json).map_err(|e| {
            ANNOTATIONS.invalid(
                json,
                format!("a JSON object of strings such as {{\"team\":\"infra\"}} ({e})"),
            )
        })?,
    };
    Ok(LeaseSettings {
        namespace,
        name,
        duration,
        renew_deadline,
        retry_period,
        annotations,
    })
}

/// The Lease's namespace and name from `--namespace` and `--leaseName` (which may be
/// `namespace/name`, as in kube-vip), with the defaults, validated as Kubernetes names.
pub fn lease_location(
    namespace: Option<&str>,
    lease_name: Option<&str>,
) -> Result<(String, String), ConfigError> {
    let mut namespace = namespace.unwrap_or(DEFAULT_LEASE_NAMESPACE);
    let mut name = lease_name.unwrap_or(DEFAULT_LEASE_NAME);
    if let Some((ns, n)) = name.split_once('/') {
        (namespace, name) = (ns, n);
    }
    let name = values::dns1123(LEASE_NAME, name, 253)?;
    let namespace = values::dns1123(NAMESPACE, namespace, 63)?;
    Ok((namespace, name))
}

/// A node name as the Lease's `holderIdentity`: non-empty, printable, no white space.
fn node_name(opt: Opt, value: &str) -> Result<String, ConfigError> {
    if value.is_empty()
        || value.len() > 253
        || value.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(opt.invalid(
            value,
            "this node's name as Kubernetes knows it (non-empty, no spaces); in a manifest, \
             take it from spec.nodeName",
        ));
    }
    Ok(value.to_string())
}

/// `kubernetes_addr`: `host:port` or an https URL.
fn api_server(opt: Opt, value: &str) -> Result<String, ConfigError> {
    let text = value.trim();
    let url = if text.contains("://") {
        text.to_string()
    } else {
        format!("https://{text}")
    };
    match url.parse::<hyper::Uri>() {
        Ok(uri) if uri.scheme_str() == Some("https") && uri.host().is_some() => Ok(url),
        _ => Err(opt.invalid(
            value,
            "host:port or https://host:port of an API server, e.g. 10.0.0.11:6443",
        )),
    }
}

fn http_listeners(observe: &ObserveArgs) -> Result<Vec<SocketAddr>, ConfigError> {
    let metrics = values::listen_address(
        PROMETHEUS,
        observe
            .prometheus_server
            .as_deref()
            .unwrap_or(DEFAULT_PROMETHEUS_SERVER),
    )?;
    let health = values::listen_address(
        HEALTH,
        observe
            .health_address
            .as_deref()
            .unwrap_or(DEFAULT_HEALTH_ADDRESS),
    )?;
    let legacy_health = match observe.health_check_port.as_deref().map(str::trim) {
        None | Some("") | Some("0") => None,
        Some(text) => {
            let port = values::port(HEALTH_PORT, text)
                .ok()
                .filter(|p| *p > 1024)
                .ok_or_else(|| {
                    HEALTH_PORT.invalid(text, "a port from 1025 to 65535, or 0 to disable")
                })?;
            Some(SocketAddr::new(IpAddr::from([0u8; 16]), port))
        }
    };
    let mut listeners: Vec<SocketAddr> = Vec::new();
    for addr in [metrics, health, legacy_health].into_iter().flatten() {
        if !listeners.contains(&addr) {
            listeners.push(addr);
        }
    }
    Ok(listeners)
}

/// kube-vip's `vip_loglevel` is a Go slog level (-4 debug, 0 info, 4 warn, 8 error: records at or
/// above it are written); names are accepted too.
fn log_settings(observe: &ObserveArgs) -> Result<LogSettings, ConfigError> {
    let level = match observe.log_level.as_deref().map(str::trim) {
        None | Some("") => "info",
        Some(text) => match text.to_ascii_lowercase().as_str() {
            "trace" => "trace",
            "debug" => "debug",
            "info" => "info",
            "warn" | "warning" => "warn",
            "error" => "error",
            other => match other.parse::<i64>() {
                Ok(n) if n < -4 => "trace",
                Ok(-4) => "debug",
                Ok(n) if n <= 0 => "info",
                Ok(n) if n <= 4 => "warn",
                Ok(_) => "error",
                Err(_) => {
                    return Err(LOG_LEVEL.invalid(
                        text,
                        "a slog level number (-4 debug, 0 info, 4 warn, 8 error) or trace/debug/info/warn/error",
                    ));
                }
            },
        },
    };
    let json = match observe.log_format.as_deref().map(str::trim) {
        None | Some("") | Some("text") => false,
        Some("json") => true,
        Some(other) => return Err(LOG_FORMAT.invalid(other, "text or json")),
    };
    Ok(LogSettings {
        level: level.to_string(),
        json,
    })
}

/// Serializes durations as humantime strings ("15s") in `kvip run --dry-run` output.
mod humantime_serde_compat {
    use std::time::Duration;

    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }
}

#[cfg(test)]
mod tests;
