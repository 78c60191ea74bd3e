//! kube-vip's environment that kvip does not implement.
//!
//! A kube-vip manifest carries many variables for features outside control-plane ARP mode
//! (generated manifests always set `dns_mode`, `dhcp_mode`, `svc_leasename`, …). Swapping the
//! image must not fail on them, but silently ignoring a variable the operator relies on is worse
//! than saying so once: kvip names every such variable that is set in one startup warning, and
//! refuses only the ones that select a different *mode*, because running ARP mode where the
//! operator asked for BGP would announce the VIP the wrong way.

/// Variables kvip accepts and ignores, with the reason shown in the startup warning.
const IGNORED: &[(&str, &str)] = &[
    (
        "cp_detect",
        "kvip elects through 127.0.0.1:<port> (or kubernetes_addr)",
    ),
    ("dns_mode", "DNS-name VIPs are not supported yet"),
    ("vip_ddns", "DNS-name VIPs are not supported yet"),
    ("dhcp_mode", "DHCP VIPs are not supported"),
    ("dhcp_backoff_attempts", "DHCP VIPs are not supported"),
    (
        "vip_preserve_on_leadership_loss",
        "kvip always removes the VIP when it stops leading",
    ),
    (
        "vip_loseleadership",
        "kvip watches the interface and re-adds the VIP itself",
    ),
    (
        "vip_loseleadership_timeout_seconds",
        "kvip watches the interface itself",
    ),
    ("vip_interfaceloglobal", "a VIP on lo is not supported"),
    ("enable_node_labeling", "node labels are not supported yet"),
    ("vip_cidr", "kube-vip ignores it too; use vip_subnet"),
    ("vip_singlenode", "kube-vip ignores it too"),
    ("vip_startleader", "kube-vip ignores it too"),
    (
        "config_file",
        "kube-vip ignores it too; use flags or environment",
    ),
    ("lb_enable", "the IPVS load balancer is not supported"),
    ("lb_port", "the IPVS load balancer is not supported"),
    ("lb_fwdmethod", "the IPVS load balancer is not supported"),
];

/// Prefixes of variable families that belong to modes kvip does not implement.
const IGNORED_PREFIXES: &[(&str, &str)] = &[
    ("svc_", "Services mode is not supported yet"),
    ("lb_class_", "Services mode is not supported yet"),
    ("egress_", "egress is not supported"),
    ("bgp_", "BGP mode is not supported"),
];

/// Variables that select a mode kvip does not have: set to true, they are an error.
const REFUSED_MODES: &[(&str, &str)] = &[
    ("bgp_enable", "BGP mode"),
    ("vip_wireguard", "WireGuard mode"),
    ("vip_routingtable", "routing-table mode"),
    ("vip_leaderelectiontype", "etcd leader election"),
];

/// Variables kvip reads itself (some share a prefix with an ignored family).
const IMPLEMENTED: &[&str] = &["svc_enable", "health_check_port"];

/// The ignored kube-vip variables that are set in `env`, each with the reason it is ignored.
pub fn ignored_variables<'a>(env: impl IntoIterator<Item = (&'a str, &'a str)>) -> Vec<String> {
    let mut found: Vec<String> = env
        .into_iter()
        .filter(|(_, value)| !value.is_empty())
        .filter(|(name, _)| !IMPLEMENTED.contains(name))
        .filter_map(|(name, _)| {
            let reason = IGNORED
                .iter()
                .find(|(known, _)| known == &name)
                .map(|(_, why)| *why)
                .or_else(|| {
                    IGNORED_PREFIXES
                        .iter()
                        .find(|(prefix, _)| name.starts_with(prefix))
                        .map(|(_, why)| *why)
                })?;
            Some(format!("{name} ({reason})"))
        })
        .collect();
    found.sort();
    found
}

/// The first mode-selecting variable set to a true value, as an error message.
pub fn refused_mode<'a>(env: impl IntoIterator<Item = (&'a str, &'a str)>) -> Option<String> {
    env.into_iter().find_map(|(name, value)| {
        let (_, mode) = REFUSED_MODES.iter().find(|(known, _)| known == &name)?;
        let enabled = match crate::cli::parse_go_bool(value) {
            Ok(on) => on,
            // vip_leaderelectiontype is a word, not a bool: anything but "kubernetes" is etcd.
            Err(_) => name == "vip_leaderelectiontype" && value != "kubernetes",
        };
        enabled.then(|| {
            format!(
                "{name}={value}: kvip implements control-plane ARP mode only, not {mode}; \
                 remove {name} or keep kube-vip for this cluster"
            )
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_kube_vip_manifest_variables_are_named_once_with_reasons() {
        let env = [
            ("dns_mode", "first"),
            ("svc_leasename", "plndr-svcs-lock"),
            ("svc_enable", "true"),
            ("vip_arp", "true"),
            ("dhcp_mode", ""),
        ];
        assert_eq!(
            ignored_variables(env),
            vec![
                "dns_mode (DNS-name VIPs are not supported yet)".to_string(),
                "svc_leasename (Services mode is not supported yet)".to_string(),
            ]
        );
    }

    #[test]
    fn another_mode_is_refused_but_its_false_value_is_not() {
        assert!(refused_mode([("bgp_enable", "false")]).is_none());
        let err = refused_mode([("bgp_enable", "true")]).unwrap_or_default();
        assert!(
            err.contains("bgp_enable=true") && err.contains("BGP mode"),
            "{err}"
        );
        assert!(refused_mode([("vip_leaderelectiontype", "kubernetes")]).is_none());
        assert!(refused_mode([("vip_leaderelectiontype", "etcd")]).is_some());
    }
}
