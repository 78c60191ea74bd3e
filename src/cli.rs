//! The command line: kube-vip's flags and environment variables, and kvip's own options.
//!
//! Users migrate from kube-vip by swapping the image, so every kube-vip option that matters for
//! control-plane ARP mode keeps its flag name (camelCase, as cobra spelled it), its environment
//! variable (lower case, case-sensitive) and its meaning. kvip's own options use kebab-case flags
//! and `kvip_*` variables so the two never collide.
//!
//! Precedence is flag > environment > default (clap's order). Values that have a default are
//! `Option`s here so that [`crate::config`] and [`crate::manifest`] can tell "the user said so"
//! from "the default": a generated manifest carries only what the user chose, and kvip's own
//! defaults stay kvip's to tune. Nothing is validated here; [`crate::config`] does that.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// kvip: a virtual IP for highly available kubeadm control planes.
#[derive(Debug, Parser)]
#[command(name = "kvip", version, propagate_version = true)]
#[command(
    about = "A virtual IP for highly available kubeadm control planes (a drop-in for kube-vip's control-plane ARP mode)",
    after_help = "Options take their value from the flag, then the environment variable, then the default."
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: elect a leader through the Lease; the leader holds and announces the VIP.
    ///
    /// `manager` is an alias so kube-vip manifests that pass `args: [manager]` work unchanged.
    #[command(visible_alias = "manager")]
    Run(Box<RunArgs>),
    /// Print a Kubernetes manifest that runs kvip.
    #[command(subcommand)]
    Manifest(ManifestCommand),
    /// Send one burst of gratuitous ARP (IPv4) or unsolicited NA (IPv6) for an address, like
    /// `arping -U`, without adding it anywhere.
    Announce(AnnounceArgs),
    /// Watch failovers on this machine: N nodes and a client in throw-away network namespaces,
    /// a Lease endpoint, one real `kvip run` per node, faults injected, timelines printed.
    /// Needs root.
    Lab(LabArgs),
    /// Print the version.
    Version,
}

/// `kvip manifest …`
#[derive(Debug, Subcommand)]
pub enum ManifestCommand {
    /// A static Pod for /etc/kubernetes/manifests/, identical on every control-plane node.
    Pod(Box<ManifestArgs>),
    /// A DaemonSet with a ServiceAccount and in-cluster credentials (apply `manifest rbac` too).
    Daemonset(Box<ManifestArgs>),
    /// The ServiceAccount, Role and RoleBinding the DaemonSet needs for its Lease.
    Rbac(RbacArgs),
}

/// Options of `kvip run` (alias `manager`).
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The VIP and how it is elected.
    #[command(flatten)]
    pub vip: VipArgs,
    /// Logging, metrics and health.
    #[command(flatten)]
    pub observe: ObserveArgs,
    /// Validate the configuration, print it as JSON and exit without touching the host.
    #[arg(long = "dry-run")]
    pub dry_run: bool,
}

/// Options of `kvip manifest pod|daemonset`: the daemon's options, written into the manifest as
/// kube-vip-compatible environment variables, plus the image.
///
/// The generator reads flags only (never the environment), so a manifest is a function of its
/// command line.
#[derive(Debug, Args)]
pub struct ManifestArgs {
    /// The VIP and how it is elected.
    #[command(flatten)]
    pub vip: VipArgs,
    /// Logging, metrics and health.
    #[command(flatten)]
    pub observe: ObserveArgs,
    /// Container image [default: ghcr.io/kvip/kvip:<this version>].
    #[arg(long)]
    pub image: Option<String>,
    /// Accepted for kube-vip compatibility: `manifest daemonset` is always in-cluster.
    #[arg(long = "inCluster", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = parse_go_bool)]
    pub in_cluster: Option<bool>,
}

/// Options of `kvip manifest rbac`.
#[derive(Debug, Args)]
pub struct RbacArgs {
    /// Namespace of the Lease (and of the ServiceAccount) [default: kube-system].
    #[arg(short = 'n', long = "namespace")]
    pub namespace: Option<String>,
    /// Name of the Lease, or namespace/name [default: plndr-cp-lock].
    #[arg(long = "leaseName")]
    pub lease_name: Option<String>,
}

/// Options of `kvip announce`.
#[derive(Debug, Args)]
pub struct AnnounceArgs {
    /// Interface to send on [default: the interface of the default route].
    #[arg(long, env = "vip_interface")]
    pub interface: Option<String>,
    /// The address to announce (IPv4: gratuitous ARP; IPv6: unsolicited NA).
    #[arg(long, env = "address")]
    pub address: String,
    /// How many rounds to send (each round is every frame form once).
    #[arg(long, default_value_t = 3)]
    pub count: u32,
    /// Pause between rounds.
    #[arg(long, default_value = "200ms", value_parser = parse_duration)]
    pub interval: std::time::Duration,
}

/// Options of `kvip lab`. The timings default to short lab values so a round takes seconds;
/// they take the same spelling as `kvip run`'s.
#[derive(Debug, Args)]
pub struct LabArgs {
    /// How many control-plane nodes.
    #[arg(long, default_value_t = 3)]
    pub nodes: usize,
    /// Which fault to inject into the holder.
    #[arg(long, value_enum, default_value = "all")]
    pub scenario: LabScenario,
    /// How many rounds of each scenario.
    #[arg(long, default_value_t = 1)]
    pub rounds: usize,
    /// Lease duration for every node (whole seconds, at least 3).
    #[arg(long = "leaseDuration", default_value = "3")]
    pub lease_duration: String,
    /// Renew deadline for every node.
    #[arg(long = "leaseRenewDuration", default_value = "2")]
    pub renew_deadline: String,
    /// Retry period for every node.
    #[arg(long = "leaseRetry", default_value = "500ms")]
    pub retry_period: String,
    /// Gratuitous ARP refresh interval while leading, in milliseconds.
    #[arg(long = "arp-rate", default_value_t = 500)]
    pub arp_rate: u32,
    /// Also run every scenario with keepalived's VRRP (advert_int 1 s and 10 ms) in the same
    /// topology, for comparison (needs the keepalived package).
    #[arg(long)]
    pub keepalived: bool,
    /// Print the results as JSON on stdout (the narration goes to stderr).
    #[arg(long)]
    pub json: bool,
}

/// The faults `kvip lab` can inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LabScenario {
    /// SIGTERM the holder (planned restart).
    Planned,
    /// SIGKILL the holder (crash).
    Crash,
    /// Unplug the holder from the switch.
    Partition,
    /// The holder's API requests hang.
    ApiOutage,
    /// All four, one after the other.
    All,
}

/// The VIP, its interface and its election: kube-vip's options for control-plane ARP mode.
#[derive(Debug, Args, Clone, Default)]
pub struct VipArgs {
    /// Interface that carries the VIP [default: the interface of the IPv4 default route, then IPv6].
    #[arg(long, env = "vip_interface")]
    pub interface: Option<String>,
    /// The VIP: an IPv4 or IPv6 address, or one of each separated by a comma (dual stack).
    #[arg(long, env = "address")]
    pub address: Option<String>,
    /// Deprecated kube-vip spelling of --address.
    #[arg(long = "vip", env = "vip_address", hide_short_help = true)]
    pub legacy_address: Option<String>,
    /// Prefix length of the VIP: 32 (IPv4) or 128 (IPv6); "32,128" for dual stack [default: 32 / 128].
    #[arg(long = "vipSubnet", env = "vip_subnet")]
    pub vip_subnet: Option<String>,
    /// Port of the API servers [default: 6443].
    #[arg(long, env = "port")]
    pub port: Option<String>,
    /// Control-plane mode, kvip's only mode [default: true].
    #[arg(long = "controlplane", env = "cp_enable", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = parse_go_bool)]
    pub controlplane: Option<bool>,
    /// ARP/NDP announcement, kvip's only mode [default: true].
    #[arg(long = "arp", env = "vip_arp", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = parse_go_bool)]
    pub arp: Option<bool>,
    /// Leader election; always on for the control plane (kube-vip ignores it there too) [default: true].
    #[arg(long = "leaderElection", env = "vip_leaderelection", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = parse_go_bool)]
    pub leader_election: Option<bool>,
    /// Services (LoadBalancer) mode: accepted, but not supported yet; kvip warns and ignores it.
    #[arg(long = "services", env = "svc_enable", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = parse_go_bool)]
    pub services: Option<bool>,
    /// Name of the Lease, or namespace/name [default: plndr-cp-lock].
    #[arg(long = "leaseName", env = "vip_leasename")]
    pub lease_name: Option<String>,
    /// Namespace of the Lease [default: kube-system].
    #[arg(short = 'n', long = "namespace", env = "cp_namespace")]
    pub namespace: Option<String>,
    /// How long a Lease stays valid without renewal; seconds, or a duration like 1500ms [default: 5].
    #[arg(long = "leaseDuration", env = "vip_leaseduration")]
    pub lease_duration: Option<String>,
    /// How long the leader keeps trying to renew before it steps down [default: 3].
    #[arg(long = "leaseRenewDuration", env = "vip_renewdeadline")]
    pub renew_deadline: Option<String>,
    /// How often the leader renews and candidates retry [default: 1].
    #[arg(long = "leaseRetry", env = "vip_retryperiod")]
    pub retry_period: Option<String>,
    /// Annotations for the Lease, as a JSON object of strings.
    #[arg(long = "leaseAnnotations", env = "vip_leaseannotations")]
    pub lease_annotations: Option<String>,
    /// This node's identity in the Lease [default: the lower-cased hostname].
    #[arg(long = "nodeName", env = "vip_nodename")]
    pub node_name: Option<String>,
    /// The least-privileged kubeconfig, tried first [default: /etc/kubernetes/admin.conf].
    #[arg(long = "k8sConfigPath", env = "k8s_config_file")]
    pub kubeconfig: Option<PathBuf>,
    /// The fallback kubeconfig, used only while the first one is forbidden (kubeadm >= 1.29
    /// bootstrap) [default: /etc/kubernetes/super-admin.conf].
    #[arg(long = "super-admin-kubeconfig", env = "kvip_super_admin_kubeconfig")]
    pub super_admin_kubeconfig: Option<PathBuf>,
    /// ServiceAccount directory; if its `token` exists (DaemonSet mode) it is the credential and the kubeconfigs are not used [default: /var/run/secrets/kubernetes.io/serviceaccount].
    #[arg(long = "service-account-dir", env = "kvip_service_account_dir")]
    pub service_account_dir: Option<PathBuf>,
    /// API server to elect through, host:port or URL [default: 127.0.0.1:<port>, TLS name `kubernetes`].
    #[arg(long = "kubernetes-addr", env = "kubernetes_addr")]
    pub kubernetes_addr: Option<String>,
    /// Interval between gratuitous ARP refreshes while leading, in milliseconds [default: 3000].
    #[arg(long = "arp-rate", env = "vip_arpRate")]
    pub arp_rate: Option<String>,
    /// Start even if the interface is not up [default: false].
    #[arg(long = "allowInterfaceNotUp", env = "vip_allow_interface_not_up", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = parse_go_bool)]
    pub allow_interface_not_up: Option<bool>,
    /// Skip IPv6 duplicate address detection for the VIP [default: false].
    #[arg(long = "skip-dad", env = "vip_skipdad", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = parse_go_bool)]
    pub skip_dad: Option<bool>,
}

/// Logging, metrics and health endpoints.
#[derive(Debug, Args, Clone, Default)]
pub struct ObserveArgs {
    /// Address of the Prometheus /metrics server; empty disables it [default: :2112].
    #[arg(long = "prometheusHTTPServer", env = "prometheus_server")]
    pub prometheus_server: Option<String>,
    /// Address of /healthz, /readyz (and /metrics); empty disables it [default: 127.0.0.1:2113].
    #[arg(long = "health-address", env = "kvip_health_address")]
    pub health_address: Option<String>,
    /// kube-vip's health port: also serve /healthz on :<port> (must be > 1024) [default: off].
    #[arg(long = "healthCheckPort", env = "health_check_port")]
    pub health_check_port: Option<String>,
    /// Log level: a kube-vip (slog) number, -4 debug, 0 info, 4 warn, 8 error, or a name [default: 0].
    #[arg(long = "log", env = "vip_loglevel", allow_hyphen_values = true)]
    pub log_level: Option<String>,
    /// Log format: text or json [default: text].
    #[arg(long = "log-format", env = "kvip_log_format")]
    pub log_format: Option<String>,
}

/// Parses a boolean the way Go's `strconv.ParseBool` does, so values that worked in a kube-vip
/// manifest work here and values kube-vip rejected are rejected too.
pub fn parse_go_bool(value: &str) -> Result<bool, String> {
    match value {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(format!(
            "`{value}` is not a boolean; use true or false (also accepted: 1, t, T, TRUE, True, 0, f, F, FALSE, False)"
        )),
    }
}

/// Parses a duration: a bare number is seconds (kube-vip's unit), otherwise a humantime string
/// such as `1500ms` or `2s`.
pub fn parse_duration(value: &str) -> Result<std::time::Duration, String> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Ok(std::time::Duration::from_secs(secs));
    }
    humantime::parse_duration(value).map_err(|e| {
        format!("`{value}` is not a duration ({e}); use seconds (e.g. 5) or a unit (e.g. 1500ms)")
    })
}

/// The command line as clap sees it, with one change: `kvip manifest …` reads flags only.
/// A generator that picked up `address` or `port` from the operator's shell would write a
/// manifest nobody asked for (a kube-vip pitfall), so its options lose their environment
/// variables here.
pub fn command() -> clap::Command {
    use clap::CommandFactory;
    Cli::command().mut_subcommand("manifest", |manifest| {
        ["pod", "daemonset", "rbac"]
            .into_iter()
            .fold(manifest, |m, name| m.mut_subcommand(name, without_env))
    })
}

/// Parses `args` (the first is the program name) with [`command`].
pub fn try_parse_from<I, T>(args: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    use clap::FromArgMatches;
    let matches = command().try_get_matches_from(args)?;
    Cli::from_arg_matches(&matches)
}

/// Removes the options' environment variables that are set but empty, so they count as unset:
/// kube-vip ignores an empty variable (`if env != ""`), and manifests rely on that.
///
/// # Safety
///
/// Changes the process environment: call it first thing in `main`, before any thread starts.
pub unsafe fn ignore_empty_environment() {
    let mut names = Vec::new();
    collect_env_names(&command(), &mut names);
    for name in names {
        if std::env::var_os(&name).is_some_and(|value| value.is_empty()) {
            // SAFETY: the caller guarantees no other thread reads the environment.
            unsafe { std::env::remove_var(&name) };
        }
    }
}

fn collect_env_names(cmd: &clap::Command, names: &mut Vec<std::ffi::OsString>) {
    names.extend(
        cmd.get_arguments()
            .filter_map(|a| a.get_env())
            .map(|e| e.to_os_string()),
    );
    for sub in cmd.get_subcommands() {
        collect_env_names(sub, names);
    }
}

fn without_env(cmd: clap::Command) -> clap::Command {
    let ids: Vec<clap::Id> = cmd.get_arguments().map(|a| a.get_id().clone()).collect();
    ids.into_iter()
        .fold(cmd, |cmd, id| cmd.mut_arg(id, |arg| arg.env(None::<&str>)))
}
