//! Every validation error, and the defaults. Precedence (flag > environment > default) is clap's
//! and is tested end to end through the binary in `tests/cli.rs`.

use super::*;

fn args(address: &str) -> VipArgs {
    VipArgs {
        address: Some(address.into()),
        node_name: Some("cp-1".into()),
        ..VipArgs::default()
    }
}

fn config(vip: &VipArgs) -> Result<Config, ConfigError> {
    Config::from_args(vip, &ObserveArgs::default(), std::iter::empty())
}

fn error(vip: &VipArgs) -> String {
    match config(vip) {
        Ok(c) => panic!("expected an error, got {c:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn the_service_account_directory_can_be_moved() {
    let vip = VipArgs {
        service_account_dir: Some("/run/kvip-sa".into()),
        ..args("192.168.0.100")
    };
    assert_eq!(
        config(&vip).unwrap().service_account_dir,
        PathBuf::from("/run/kvip-sa")
    );
}

#[test]
fn defaults_match_kube_vip() {
    let c = config(&args("192.168.0.100")).unwrap();
    assert_eq!(
        c.vips,
        vec![Vip {
            addr: "192.168.0.100".parse().unwrap(),
            prefix_len: 32
        }]
    );
    assert_eq!(c.port, 6443);
    assert_eq!(
        (c.lease.namespace.as_str(), c.lease.name.as_str()),
        ("kube-system", "plndr-cp-lock")
    );
    assert_eq!(
        (
            c.lease.duration,
            c.lease.renew_deadline,
            c.lease.retry_period
        ),
        // kvip's own timings (benchmarked; see election::Timings::default), not kube-vip's.
        (
            Duration::from_secs(5),
            Duration::from_secs(3),
            Duration::from_secs(1)
        )
    );
    assert_eq!(c.arp_rate, Duration::from_millis(3000));
    assert_eq!(c.kubeconfig, PathBuf::from("/etc/kubernetes/admin.conf"));
    assert_eq!(
        c.super_admin_kubeconfig,
        PathBuf::from("/etc/kubernetes/super-admin.conf")
    );
    assert_eq!(
        c.service_account_dir,
        PathBuf::from("/var/run/secrets/kubernetes.io/serviceaccount")
    );
    assert_eq!(
        c.http_listeners,
        vec![
            "[::]:2112".parse().unwrap(),
            "127.0.0.1:2113".parse().unwrap()
        ]
    );
    assert_eq!(c.log.level, "info");
    assert!(c.interface.is_none() && c.api_server.is_none() && c.warnings.is_empty());
}

#[test]
fn node_name_falls_back_to_the_lower_cased_hostname() {
    let vip = VipArgs {
        node_name: None,
        ..args("192.168.0.100")
    };
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(config(&vip).unwrap().node_name, host.trim().to_lowercase());
}

#[test]
fn ipv6_and_dual_stack_get_their_own_prefixes() {
    let c = config(&args("fd00::100")).unwrap();
    assert_eq!(c.vips[0].prefix_len, 128);
    let vip = VipArgs {
        vip_subnet: Some("32,128".into()),
        ..args("10.0.0.5,fd00::5")
    };
    assert_eq!(
        config(&vip)
            .unwrap()
            .vips
            .iter()
            .map(|v| v.prefix_len)
            .collect::<Vec<_>>(),
        vec![32, 128]
    );
}

#[test]
fn legacy_vip_flag_is_accepted() {
    let vip = VipArgs {
        address: None,
        legacy_address: Some("10.0.0.5".into()),
        ..args("")
    };
    assert_eq!(
        config(&vip).unwrap().vips[0].addr,
        "10.0.0.5".parse::<IpAddr>().unwrap()
    );
}

#[test]
fn lease_name_may_carry_its_namespace() {
    let vip = VipArgs {
        lease_name: Some("infra/my-lock".into()),
        ..args("10.0.0.5")
    };
    let c = config(&vip).unwrap();
    assert_eq!(
        (c.lease.namespace.as_str(), c.lease.name.as_str()),
        ("infra", "my-lock")
    );
}

#[test]
fn address_errors_name_the_option_and_the_fix() {
    let e = error(&args("10.0.0.300"));
    assert!(
        e.starts_with("--address/address: `10.0.0.300` is not valid"),
        "{e}"
    );
    assert!(e.contains("IPv4 or IPv6 address"), "{e}");
    let e = error(&args("api.example.com"));
    assert!(e.contains("DNS names are not supported by kvip yet"), "{e}");
    let e = error(&args("127.0.0.1"));
    assert!(e.contains("not loopback"), "{e}");
    let e = error(&args("fe80::1"));
    assert!(e.contains("link-local"), "{e}");
    let e = error(&args("10.0.0.1,10.0.0.2"));
    assert!(e.contains("one IPv4 and one IPv6"), "{e}");
    let e = error(&VipArgs {
        address: None,
        ..args("")
    });
    assert!(e.contains("--address/address is not set"), "{e}");
}

#[test]
fn subnet_errors() {
    let e = error(&VipArgs {
        vip_subnet: Some("33".into()),
        ..args("10.0.0.5")
    });
    assert!(
        e.starts_with("--vipSubnet/vip_subnet: `33`") && e.contains("1 to 32"),
        "{e}"
    );
    let e = error(&VipArgs {
        vip_subnet: Some("32,128".into()),
        ..args("10.0.0.5")
    });
    assert!(e.contains("one prefix length per address"), "{e}");
}

#[test]
fn port_out_of_range_is_refused() {
    for bad in ["0", "65536", "https"] {
        let e = error(&VipArgs {
            port: Some(bad.into()),
            ..args("10.0.0.5")
        });
        assert!(
            e.starts_with(&format!("--port/port: `{bad}`")) && e.contains("1 to 65535"),
            "{e}"
        );
    }
}

fn timings(duration: &str, renew: &str, retry: &str) -> VipArgs {
    VipArgs {
        lease_duration: Some(duration.into()),
        renew_deadline: Some(renew.into()),
        retry_period: Some(retry.into()),
        ..args("10.0.0.5")
    }
}

#[test]
fn timings_follow_client_go_rules() {
    let c = config(&timings("5", "3", "1")).unwrap();
    assert_eq!(c.lease.renew_deadline, Duration::from_secs(3));
    let c = config(&timings("3", "2", "500ms")).unwrap();
    assert_eq!(c.lease.retry_period, Duration::from_millis(500));

    let e = error(&timings("10", "10", "2"));
    assert!(
        e.contains(
            "--leaseDuration/vip_leaseduration (10s) must be greater than --leaseRenewDuration"
        ),
        "{e}"
    );
    let e = error(&timings("15", "10", "9"));
    assert!(
        e.contains("must be greater than 1.2 x --leaseRetry/vip_retryperiod (9s)"),
        "{e}"
    );
    let e = error(&timings("15", "12", "10"));
    assert!(
        e.contains("1.2 x"),
        "renew 12s = 1.2 x 10s is not greater: {e}"
    );
    let e = error(&timings("0", "10", "2"));
    assert!(
        e.starts_with("--leaseDuration/vip_leaseduration: `0`") && e.contains("greater than zero"),
        "{e}"
    );
    let e = error(&timings("3500ms", "2", "1"));
    assert!(e.contains("whole seconds"), "{e}");
    let e = error(&timings("2", "1", "500ms"));
    assert!(
        e.starts_with("--leaseDuration/vip_leaseduration: `2s`")
            && e.contains("at least 3 seconds"),
        "{e}"
    );
    let e = error(&timings("15", "ten", "2"));
    assert!(
        e.starts_with("--leaseRenewDuration/vip_renewdeadline: `ten`"),
        "{e}"
    );
}

#[test]
fn node_name_must_not_be_empty() {
    for bad in ["", "cp 1"] {
        let e = error(&VipArgs {
            node_name: Some(bad.into()),
            ..args("10.0.0.5")
        });
        assert!(
            e.starts_with(&format!("--nodeName/vip_nodename: `{bad}`"))
                && e.contains("spec.nodeName"),
            "{e}"
        );
    }
}

#[test]
fn interface_names_the_kernel_could_never_accept() {
    for bad in [
        "a-name-longer-than-15",
        "eth0/1",
        "eth:0",
        "eth 0",
        ".",
        "..",
    ] {
        let e = error(&VipArgs {
            interface: Some(bad.into()),
            ..args("10.0.0.5")
        });
        assert!(
            e.starts_with(&format!("--interface/vip_interface: `{bad}`")),
            "{e}"
        );
    }
    let ok = VipArgs {
        interface: Some("enp19s0".into()),
        ..args("10.0.0.5")
    };
    assert_eq!(config(&ok).unwrap().interface.as_deref(), Some("enp19s0"));
    let empty = VipArgs {
        interface: Some(String::new()),
        ..args("10.0.0.5")
    };
    assert_eq!(
        config(&empty).unwrap().interface,
        None,
        "empty means the default route's interface"
    );
}

#[test]
fn lease_names_and_annotations() {
    let e = error(&VipArgs {
        lease_name: Some("Plndr".into()),
        ..args("10.0.0.5")
    });
    assert!(e.starts_with("--leaseName/vip_leasename: `Plndr`"), "{e}");
    let e = error(&VipArgs {
        namespace: Some("kube.system".into()),
        ..args("10.0.0.5")
    });
    assert!(e.starts_with("--namespace/cp_namespace"), "{e}");
    let e = error(&VipArgs {
        lease_annotations: Some("[1]".into()),
        ..args("10.0.0.5")
    });
    assert!(
        e.starts_with("--leaseAnnotations/vip_leaseannotations") && e.contains("JSON object"),
        "{e}"
    );
    let ok = VipArgs {
        lease_annotations: Some(r#"{"team":"infra"}"#.into()),
        ..args("10.0.0.5")
    };
    assert_eq!(
        config(&ok)
            .unwrap()
            .lease
            .annotations
            .get("team")
            .map(String::as_str),
        Some("infra")
    );
}

#[test]
fn modes_kvip_does_not_have_are_refused_or_warned() {
    let e = error(&VipArgs {
        controlplane: Some(false),
        ..args("10.0.0.5")
    });
    assert!(e.contains("control-plane mode is the only mode"), "{e}");
    let e = error(&VipArgs {
        arp: Some(false),
        ..args("10.0.0.5")
    });
    assert!(e.contains("ARP/NDP is the only way"), "{e}");
    let c = config(&VipArgs {
        services: Some(true),
        leader_election: Some(false),
        ..args("10.0.0.5")
    })
    .unwrap();
    assert_eq!(c.warnings.len(), 2, "{:?}", c.warnings);
    assert!(c.warnings[0].contains("Services (LoadBalancer) mode is not supported"));
    let e = Config::from_args(
        &args("10.0.0.5"),
        &ObserveArgs::default(),
        [("bgp_enable", "true")],
    )
    .unwrap_err();
    assert!(e.to_string().contains("not BGP mode"), "{e}");
    let c = Config::from_args(
        &args("10.0.0.5"),
        &ObserveArgs::default(),
        [("dns_mode", "first"), ("lb_enable", "true")],
    )
    .unwrap();
    assert_eq!(
        c.warnings.len(),
        1,
        "one startup warning names them all: {:?}",
        c.warnings
    );
    assert!(c.warnings[0].contains("dns_mode") && c.warnings[0].contains("lb_enable"));
}

#[test]
fn kubernetes_addr_and_arp_rate() {
    let c = config(&VipArgs {
        kubernetes_addr: Some("10.0.0.11:6443".into()),
        ..args("10.0.0.5")
    })
    .unwrap();
    assert_eq!(c.api_server.as_deref(), Some("https://10.0.0.11:6443"));
    let e = error(&VipArgs {
        kubernetes_addr: Some("http://10.0.0.11".into()),
        ..args("10.0.0.5")
    });
    assert!(e.starts_with("--kubernetes-addr/kubernetes_addr"), "{e}");
    let c = config(&VipArgs {
        arp_rate: Some("1000".into()),
        ..args("10.0.0.5")
    })
    .unwrap();
    assert_eq!(c.arp_rate, Duration::from_millis(1000));
    for bad in ["50", "3s", "-1"] {
        let e = error(&VipArgs {
            arp_rate: Some(bad.into()),
            ..args("10.0.0.5")
        });
        assert!(
            e.starts_with(&format!("--arp-rate/vip_arpRate: `{bad}`"))
                && e.contains("milliseconds"),
            "{e}"
        );
    }
}

#[test]
fn observability_options() {
    let observe = ObserveArgs {
        prometheus_server: Some(String::new()),
        health_address: Some("127.0.0.1:9000".into()),
        health_check_port: Some("9000".into()),
        log_level: Some("-4".into()),
        log_format: Some("json".into()),
    };
    let c = Config::from_args(&args("10.0.0.5"), &observe, std::iter::empty()).unwrap();
    assert_eq!(
        c.http_listeners,
        vec![
            "127.0.0.1:9000".parse().unwrap(),
            "[::]:9000".parse().unwrap()
        ]
    );
    assert_eq!((c.log.level.as_str(), c.log.json), ("debug", true));
    for (level, want) in [
        ("0", "info"),
        ("4", "warn"),
        ("8", "error"),
        ("-2", "info"),
        ("debug", "debug"),
    ] {
        let observe = ObserveArgs {
            log_level: Some(level.into()),
            ..ObserveArgs::default()
        };
        assert_eq!(
            Config::from_args(&args("10.0.0.5"), &observe, std::iter::empty())
                .unwrap()
                .log
                .level,
            want
        );
    }
    let bad = |o: ObserveArgs| {
        Config::from_args(&args("10.0.0.5"), &o, std::iter::empty())
            .unwrap_err()
            .to_string()
    };
    let e = bad(ObserveArgs {
        health_check_port: Some("80".into()),
        ..ObserveArgs::default()
    });
    assert!(
        e.starts_with("--healthCheckPort/health_check_port: `80`") && e.contains("1025"),
        "{e}"
    );
    let e = bad(ObserveArgs {
        log_format: Some("xml".into()),
        ..ObserveArgs::default()
    });
    assert!(e.starts_with("--log-format/kvip_log_format: `xml`"), "{e}");
    let e = bad(ObserveArgs {
        log_level: Some("loud".into()),
        ..ObserveArgs::default()
    });
    assert!(e.starts_with("--log/vip_loglevel: `loud`"), "{e}");
    let e = bad(ObserveArgs {
        prometheus_server: Some("2112".into()),
        ..ObserveArgs::default()
    });
    assert!(
        e.starts_with("--prometheusHTTPServer/prometheus_server: `2112`"),
        "{e}"
    );
}
