//! The binary's command line as an operator meets it: precedence flag > environment > default,
//! kube-vip's spellings, help text, and errors that exit non-zero with one clear message.

use std::process::{Command, Output};

use serde_json::Value;

fn kvip(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kvip"));
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("kvip runs")
}

fn dry_run(args: &[&str], env: &[(&str, &str)]) -> Value {
    let mut argv = vec!["run", "--dry-run"];
    argv.extend_from_slice(args);
    let out = kvip(&argv, env);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("--dry-run prints JSON")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn flag_beats_environment_beats_default() {
    let base = [("address", "10.0.0.5"), ("vip_nodename", "cp-1")];
    let defaults = dry_run(&[], &base);
    assert_eq!(defaults["lease"]["duration"], "5s");
    assert_eq!(defaults["lease"]["name"], "plndr-cp-lock");
    assert_eq!(defaults["port"], 6443);

    let env = [
        base[0],
        base[1],
        ("vip_leaseduration", "20"),
        ("port", "7443"),
        ("vip_leasename", "from-env"),
    ];
    let from_env = dry_run(&[], &env);
    assert_eq!(from_env["lease"]["duration"], "20s");
    assert_eq!(from_env["port"], 7443);
    assert_eq!(from_env["lease"]["name"], "from-env");

    let from_flags = dry_run(&["--leaseDuration", "30", "--port", "8443"], &env);
    assert_eq!(from_flags["lease"]["duration"], "30s");
    assert_eq!(from_flags["port"], 8443);
    assert_eq!(
        from_flags["lease"]["name"], "from-env",
        "untouched by flags, still from the environment"
    );
}

#[test]
fn a_kube_vip_static_pod_environment_is_understood() {
    // The environment `kube-vip manifest pod … --controlplane --services --arp --leaderElection`
    // writes, as the kubelet passes it to the container with `args: [manager]`.
    let env = [
        ("vip_arp", "true"),
        ("port", "6443"),
        ("vip_nodename", "CP-1"),
        ("vip_interface", "enp19s0"),
        ("vip_subnet", "32"),
        ("dns_mode", "first"),
        ("dhcp_mode", "ipv4"),
        ("cp_enable", "true"),
        ("cp_namespace", "kube-system"),
        ("svc_enable", "true"),
        ("svc_leasename", "plndr-svcs-lock"),
        ("vip_leaderelection", "true"),
        ("vip_leasename", "plndr-cp-lock"),
        ("vip_leaseduration", "5"),
        ("vip_renewdeadline", "3"),
        ("vip_retryperiod", "1"),
        ("address", "10.238.40.166"),
        ("prometheus_server", ":2112"),
        ("vip_arpRate", "1000"),
    ];
    let out = kvip(&["manager", "--dry-run"], &env);
    assert!(out.status.success(), "{}", stderr(&out));
    let config: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(config["interface"], "enp19s0");
    assert_eq!(config["vips"][0]["addr"], "10.238.40.166");
    assert_eq!(
        config["node_name"], "CP-1",
        "an explicit node name is used as given"
    );
    assert_eq!(config["lease"]["retry_period"], "1s");
    assert_eq!(config["arp_rate"], "1s");
}

#[test]
fn go_booleans_and_empty_variables_behave_like_kube_vip() {
    let base = [("address", "10.0.0.5"), ("vip_nodename", "cp-1")];
    let config = dry_run(
        &[],
        &[base[0], base[1], ("vip_allow_interface_not_up", "T")],
    );
    assert_eq!(config["allow_interface_not_up"], true);
    let config = dry_run(&[], &[base[0], base[1], ("vip_leaseduration", "")]);
    assert_eq!(
        config["lease"]["duration"], "5s",
        "an empty variable is ignored, as kube-vip does"
    );
    let out = kvip(
        &["run", "--dry-run"],
        &[base[0], base[1], ("vip_arp", "yes")],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("`yes` is not a boolean"),
        "{}",
        stderr(&out)
    );
    let config = dry_run(&["--allowInterfaceNotUp"], &base);
    assert_eq!(
        config["allow_interface_not_up"], true,
        "a bare kube-vip flag means true"
    );
}

#[test]
fn bad_input_exits_non_zero_with_one_message_naming_the_option() {
    let out = kvip(
        &[
            "run",
            "--address",
            "10.0.0.5",
            "--nodeName",
            "cp-1",
            "--leaseRetry",
            "9",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(
            "kvip: --leaseRenewDuration/vip_renewdeadline (3s) must be greater than 1.2 x"
        ),
        "{err}"
    );
    assert!(out.stdout.is_empty());

    let out = kvip(&["run", "--nodeName", "cp-1"], &[("address", "not-an-ip!")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("--address/address: `not-an-ip!` is not valid"),
        "{}",
        stderr(&out)
    );

    let out = kvip(
        &[
            "run",
            "--dry-run",
            "--address",
            "10.0.0.5",
            "--nodeName",
            "cp-1",
        ],
        &[("bgp_enable", "true")],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("not BGP mode"), "{}", stderr(&out));
}

#[test]
fn manifest_generation_ignores_the_shell_environment() {
    let out = kvip(
        &["manifest", "pod", "--address", "10.0.0.5"],
        &[("port", "9999"), ("vip_leaseduration", "1")],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let yaml = String::from_utf8_lossy(&out.stdout);
    assert!(
        !yaml.contains("9999") && !yaml.contains("vip_leaseduration"),
        "{yaml}"
    );
}

#[test]
fn help_explains_every_option_with_default_and_variable() {
    let out = kvip(&["run", "--help"], &[]);
    // Compare with white space folded: clap wraps help to the terminal's width.
    let help = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    for needle in [
        "--interface <INTERFACE>",
        "[env: vip_interface=]",
        "How long a Lease stays valid",
        "--leaseDuration",
        "[env: vip_leaseduration=]",
        "[default: 5]",
        "--k8sConfigPath",
        "[env: k8s_config_file=]",
        "[env: vip_arpRate=]",
        "--super-admin-kubeconfig",
        "--service-account-dir",
        "--prometheusHTTPServer",
        "[default: :2112]",
    ] {
        assert!(help.contains(needle), "run --help lacks {needle}:\n{help}");
    }
    for sub in [
        &["manifest", "pod", "--help"][..],
        &["manifest", "rbac", "--help"],
        &["announce", "--help"],
        &["--help"],
    ] {
        let out = kvip(sub, &[]);
        assert!(out.status.success() && !out.stdout.is_empty(), "{sub:?}");
    }
    let out = kvip(&["version"], &[]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        concat!("kvip ", env!("CARGO_PKG_VERSION"))
    );
}
