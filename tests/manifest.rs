//! The generated manifests: they parse back into k8s-openapi types, carry what a kubeadm
//! control plane needs, and pass an independent Kubernetes schema validator.

use std::process::Command;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kvip::cli::{self, ManifestCommand};
use kvip::manifest::{self, Kind};

/// The exact kube-vip command line from the walkthrough in shared/context.
const WALKTHROUGH: &[&str] = &[
    "kvip",
    "manifest",
    "pod",
    "--interface",
    "enp19s0",
    "--address",
    "10.238.40.166",
    "--controlplane",
    "--services",
    "--arp",
    "--leaderElection",
];

fn render(argv: &[&str]) -> (String, Vec<String>) {
    let cli = cli::try_parse_from(argv).expect("command line parses");
    let cli::Command::Manifest(command) = cli.command else {
        panic!("not a manifest command")
    };
    match command {
        ManifestCommand::Pod(args) => manifest::render(Kind::StaticPod, &args).expect("renders"),
        ManifestCommand::Daemonset(args) => {
            manifest::render(Kind::DaemonSet, &args).expect("renders")
        }
        ManifestCommand::Rbac(args) => (manifest::render_rbac(&args).expect("renders"), vec![]),
    }
}

fn env_value(container: &Container, name: &str) -> Option<String> {
    let env = container.env.as_ref()?;
    env.iter()
        .find(|e| e.name == name)
        .and_then(|e| e.value.clone())
}

fn the_container(spec: &PodSpec) -> &Container {
    assert_eq!(spec.containers.len(), 1);
    &spec.containers[0]
}

/// Runs kubernetes-validate (PyPI, installed by the README's test command) in strict mode against
/// the oldest Kubernetes kvip supports.
fn assert_schema_valid(yaml: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("manifest.yaml");
    std::fs::write(&path, yaml).unwrap();
    let out = Command::new("python3")
        .args([
            "-m",
            "kubernetes_validate",
            "--strict",
            "--kubernetes-version",
            "1.33.0",
            "--quiet",
        ])
        .arg(&path)
        .output()
        .expect(
            "kubernetes-validate runs (pip install kubernetes-validate; scripts/test installs it)",
        );
    assert!(
        out.status.success(),
        "schema validation failed:\n{}{}\n{yaml}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn walkthrough_command_line_gives_a_static_pod_for_every_node() {
    let (yaml, warnings) = render(WALKTHROUGH);
    assert_eq!(
        warnings.len(),
        1,
        "--services is reported, not silently dropped: {warnings:?}"
    );
    assert!(warnings[0].contains("Services (LoadBalancer) mode is not supported"));

    let pod: Pod = serde_saphyr::from_str(&yaml).expect("parses back into a k8s-openapi Pod");
    assert_eq!(pod.metadata.namespace.as_deref(), Some("kube-system"));
    let spec = pod.spec.as_ref().unwrap();
    assert_eq!(spec.host_network, Some(true));
    assert_eq!(
        spec.priority_class_name.as_deref(),
        Some("system-node-critical")
    );
    let aliases = spec.host_aliases.as_ref().unwrap();
    assert_eq!(aliases[0].ip, "127.0.0.1");
    assert_eq!(
        aliases[0].hostnames.as_deref(),
        Some(&["kubernetes".to_string()][..])
    );

    let c = the_container(spec);
    assert_eq!(
        c.image.as_deref(),
        Some(concat!("ghcr.io/kvip/kvip:v", env!("CARGO_PKG_VERSION")))
    );
    let caps = c
        .security_context
        .as_ref()
        .unwrap()
        .capabilities
        .as_ref()
        .unwrap();
    assert_eq!(
        caps.add.as_deref(),
        Some(&["NET_ADMIN".to_string(), "NET_RAW".to_string()][..])
    );
    assert_eq!(caps.drop.as_deref(), Some(&["ALL".to_string()][..]));
    let requests = c.resources.as_ref().unwrap().requests.as_ref().unwrap();
    assert!(requests.contains_key("cpu") && requests.contains_key("memory"));
    let probe = c
        .liveness_probe
        .as_ref()
        .unwrap()
        .http_get
        .as_ref()
        .unwrap();
    assert_eq!(
        (probe.host.as_deref(), probe.path.as_deref()),
        (Some("127.0.0.1"), Some("/healthz"))
    );

    assert_eq!(env_value(c, "vip_interface").as_deref(), Some("enp19s0"));
    assert_eq!(env_value(c, "address").as_deref(), Some("10.238.40.166"));
    assert_eq!(env_value(c, "vip_arp").as_deref(), Some("true"));
    assert_eq!(env_value(c, "cp_enable").as_deref(), Some("true"));
    assert_eq!(
        env_value(c, "svc_enable"),
        None,
        "unsupported Services mode is not written"
    );
    let node = c
        .env
        .as_ref()
        .unwrap()
        .iter()
        .find(|e| e.name == "vip_nodename")
        .unwrap();
    let field = node
        .value_from
        .as_ref()
        .unwrap()
        .field_ref
        .as_ref()
        .unwrap();
    assert_eq!(
        field.field_path, "spec.nodeName",
        "identical on every node: the name comes from the kubelet"
    );

    assert_schema_valid(&yaml);
}

#[test]
fn both_kubeconfigs_are_reachable_read_only_without_creating_anything_on_the_host() {
    let (yaml, _) = render(WALKTHROUGH);
    let pod: Pod = serde_saphyr::from_str(&yaml).unwrap();
    let spec = pod.spec.unwrap();
    let volumes = spec.volumes.as_ref().unwrap();
    assert_eq!(volumes.len(), 1);
    let host = volumes[0].host_path.as_ref().unwrap();
    // `Directory` never creates anything; a file-level hostPath for super-admin.conf would either
    // fail on joined nodes (File) or leave an empty file (FileOrCreate) or a directory (unset).
    assert_eq!(
        (host.path.as_str(), host.type_.as_deref()),
        ("/etc/kubernetes", Some("Directory"))
    );
    let mounts = the_container(&spec).volume_mounts.as_ref().unwrap();
    assert_eq!(mounts.len(), 1);
    assert_eq!(
        (mounts[0].mount_path.as_str(), mounts[0].read_only),
        ("/etc/kubernetes", Some(true))
    );
    // Both default kubeconfig paths resolve inside that mount.
    for file in [
        "/etc/kubernetes/admin.conf",
        "/etc/kubernetes/super-admin.conf",
    ] {
        assert!(file.starts_with(&format!("{}/", mounts[0].mount_path)));
    }
}

#[test]
fn kubeconfigs_outside_etc_kubernetes_get_their_own_directory() {
    let (yaml, _) = render(&[
        "kvip",
        "manifest",
        "pod",
        "--address",
        "10.0.0.5",
        "--k8sConfigPath",
        "/etc/kubernetes/admin.conf",
        "--super-admin-kubeconfig",
        "/srv/bootstrap/super-admin.conf",
    ]);
    let pod: Pod = serde_saphyr::from_str(&yaml).unwrap();
    let spec = pod.spec.unwrap();
    let paths: Vec<_> = spec
        .volumes
        .clone()
        .unwrap()
        .iter()
        .map(|v| v.host_path.clone().unwrap().path)
        .collect();
    assert_eq!(paths, vec!["/etc/kubernetes", "/srv/bootstrap"]);
    let c = the_container(&spec);
    assert_eq!(
        env_value(c, "kvip_super_admin_kubeconfig").as_deref(),
        Some("/srv/bootstrap/super-admin.conf")
    );
    assert_schema_valid(&yaml);
}

#[test]
fn only_chosen_options_are_written_as_kube_vip_variables() {
    let (yaml, _) = render(&[
        "kvip",
        "manifest",
        "pod",
        "--address",
        "fd00::10",
        "--port",
        "8443",
        "--leaseDuration",
        "5",
        "--leaseRenewDuration",
        "3",
        "--leaseRetry",
        "1",
        "--leaseName",
        "my-lock",
        "--namespace",
        "infra",
        "--image",
        "registry.local/kvip:dev",
        "--prometheusHTTPServer",
        "",
        "--log",
        "-4",
    ]);
    let pod: Pod = serde_saphyr::from_str(&yaml).unwrap();
    assert_eq!(pod.metadata.namespace.as_deref(), Some("infra"));
    let spec = pod.spec.unwrap();
    let c = the_container(&spec);
    assert_eq!(c.image.as_deref(), Some("registry.local/kvip:dev"));
    for (name, want) in [
        ("address", Some("fd00::10")),
        ("port", Some("8443")),
        ("vip_leaseduration", Some("5")),
        ("vip_renewdeadline", Some("3")),
        ("vip_retryperiod", Some("1")),
        ("vip_leasename", Some("my-lock")),
        ("cp_namespace", Some("infra")),
        ("prometheus_server", Some("")),
        ("vip_loglevel", Some("-4")),
        ("vip_interface", None),
        ("vip_arpRate", None),
        ("k8s_config_file", None),
    ] {
        assert_eq!(env_value(c, name).as_deref(), want, "{name}");
    }
    assert_schema_valid(&yaml);
}

#[test]
fn daemonset_runs_on_control_plane_nodes_with_its_service_account() {
    let (yaml, _) = render(&[
        "kvip",
        "manifest",
        "daemonset",
        "--interface",
        "eth0",
        "--address",
        "10.0.0.5",
    ]);
    let ds: DaemonSet = serde_saphyr::from_str(&yaml).unwrap();
    let spec = ds.spec.unwrap();
    let template = spec.template.spec.unwrap();
    assert_eq!(template.service_account_name.as_deref(), Some("kvip"));
    assert_eq!(template.host_network, Some(true));
    assert!(
        template
            .node_selector
            .unwrap()
            .contains_key("node-role.kubernetes.io/control-plane")
    );
    assert!(
        template.volumes.is_none(),
        "in-cluster credentials: no host kubeconfigs"
    );
    assert_eq!(
        spec.selector.match_labels,
        spec.template.metadata.unwrap().labels
    );
    assert_schema_valid(&yaml);
}

#[test]
fn rbac_grants_exactly_the_lease_verbs_in_the_lease_namespace() {
    let (yaml, _) = render(&["kvip", "manifest", "rbac", "--leaseName", "infra/my-lock"]);
    let docs: Vec<serde_json::Value> = serde_saphyr::from_str_multiple(&yaml).unwrap();
    assert_eq!(docs.len(), 3);
    let account: ServiceAccount = serde_json::from_value(docs[0].clone()).unwrap();
    let role: Role = serde_json::from_value(docs[1].clone()).unwrap();
    let binding: RoleBinding = serde_json::from_value(docs[2].clone()).unwrap();
    assert_eq!(account.metadata.namespace.as_deref(), Some("infra"));
    let rules = role.rules.unwrap();
    assert_eq!(rules.len(), 1);
    assert_eq!(
        rules[0].api_groups.as_deref(),
        Some(&["coordination.k8s.io".to_string()][..])
    );
    assert_eq!(
        rules[0].resources.as_deref(),
        Some(&["leases".to_string()][..])
    );
    assert_eq!(
        rules[0].verbs,
        vec!["get", "list", "watch", "create", "update"]
    );
    assert_eq!(role.metadata.namespace.as_deref(), Some("infra"));
    let subject = &binding.subjects.unwrap()[0];
    assert_eq!(
        (subject.kind.as_str(), subject.name.as_str()),
        ("ServiceAccount", "kvip")
    );
    assert_eq!(binding.role_ref.name, "kvip");
    assert_schema_valid(&yaml);
}

#[test]
fn invalid_options_produce_no_manifest() {
    let cli = cli::try_parse_from([
        "kvip",
        "manifest",
        "pod",
        "--address",
        "10.0.0.5",
        "--leaseDuration",
        // Not above the default renew deadline (3 s).
        "3",
    ])
    .unwrap();
    let cli::Command::Manifest(ManifestCommand::Pod(args)) = cli.command else {
        panic!()
    };
    let err = manifest::render(Kind::StaticPod, &args)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("must be greater than --leaseRenewDuration"),
        "{err}"
    );
}
