//! keepalived's VRRP in the lab's topology: the peer every kvip figure is compared with.
//!
//! Each node runs `keepalived --vrrp` in its own namespace with a configuration, pid files and
//! log in the lab's temporary directory: `/etc/keepalived` and the host's namespace are never
//! touched. Every node starts as BACKUP with the same priority and `nopreempt`, so a restarted
//! node does not take the VIP back (that would add a failover the scenario did not ask for),
//! and VRRPv3 so that sub-second advertisement intervals (keepalived's fastest setting) are
//! allowed. GARP settings are keepalived's defaults (5 on becoming MASTER, 5 more after 5 s).
//!
//! keepalived has nothing like the Lease, so the `api-outage` scenario has no equivalent.

use std::ffi::OsString;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};

use super::cluster::Cluster;

/// The keepalived binary, found on `PATH`.
pub fn binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|dir| dir.join("keepalived"))
        .find(|candidate| candidate.is_file())
}

/// The configuration of node `name`: one VRRP instance for `vip` on `eth0`.
pub fn config(name: &str, vip: Ipv4Addr, advert: Duration) -> String {
    format!(
        "global_defs {{\n    router_id {name}\n    vrrp_version 3\n}}\n\
         vrrp_instance kvip_lab {{\n    state BACKUP\n    nopreempt\n    interface eth0\n    \
         virtual_router_id 51\n    priority 100\n    advert_int {advert}\n    \
         virtual_ipaddress {{\n        {vip}/32 dev eth0\n    }}\n}}\n",
        advert = advert.as_secs_f64(),
    )
}

/// Starts keepalived on node `i` of `cluster` with advertisement interval `advert`.
pub fn start(cluster: &mut Cluster, i: usize, advert: Duration) -> Result<()> {
    let keepalived = binary()
        .context("keepalived is not installed (Debian/Ubuntu: `apt-get install keepalived`)")?;
    let name = cluster.nodes[i].name.clone();
    let dir: &Path = cluster.dir();
    let file = |suffix: &str| dir.join(format!("{name}-keepalived{suffix}"));
    let conf = file(".conf");
    std::fs::write(&conf, config(&name, cluster.vip, advert))
        .with_context(|| format!("writing {}", conf.display()))?;
    let mut args: Vec<OsString> = ["--vrrp", "--dont-fork", "--log-console", "--log-detail"]
        .into_iter()
        .chain(["--no-syslog"])
        .map(OsString::from)
        .collect();
    // A killed keepalived leaves its pid files behind, and its VRRP child may linger as a
    // zombie that makes keepalived believe it is "already running": the files are the lab's own.
    for suffix in [".pid", "-vrrp.pid", "-checkers.pid"] {
        let _ = std::fs::remove_file(file(suffix));
    }
    for (flag, path) in [
        ("--use-file", conf),
        ("--pid", file(".pid")),
        ("--vrrp_pid", file("-vrrp.pid")),
        ("--checkers_pid", file("-checkers.pid")),
    ] {
        let mut arg = OsString::from(format!("{flag}="));
        arg.push(path);
        args.push(arg);
    }
    cluster.spawn_in_node(i, keepalived.as_os_str(), &args)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fractional_intervals_are_written_as_keepalived_reads_them() {
        let vip = Ipv4Addr::new(10, 240, 0, 50);
        let conf = config("cp-1", vip, Duration::from_millis(100));
        assert!(conf.contains("advert_int 0.1\n"), "{conf}");
        assert!(conf.contains("10.240.0.50/32 dev eth0"), "{conf}");
        assert!(config("cp-1", vip, Duration::from_secs(1)).contains("advert_int 1\n"));
    }
}
