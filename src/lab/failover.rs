//! Failover rounds: inject one fault into the node that holds the VIP, watch the client until
//! the VIP answers from another node, put the world back, and report what happened when.
//!
//! `kvip lab` narrates the rounds, `benches/failover.rs` repeats them, and `tests/lab.rs` checks
//! their verdict: all three drive this one type. The same rounds run with keepalived in place of
//! kvip ([`Daemon::Keepalived`]) so every figure has a peer measured in the same topology.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use pnet::util::MacAddr;
use serde::Serialize;

use super::apiserver::{OutageMode, Subject};
use super::cluster::{Cluster, ClusterOptions};
use super::probe::{Probe, Seen};
use super::timeline::{self, RoundFigures};
use super::{interrupted, keepalived, logs};

/// How long to wait for anything before giving up (a guard, not a measurement).
const PATIENCE: Duration = Duration::from_secs(30);

/// A fault to inject into the holder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// SIGTERM the holder: a planned restart or upgrade.
    Planned,
    /// SIGKILL the holder: a crash or OOM kill; it cannot clean up.
    Crash,
    /// Unplug the holder's port on the switch: it is cut off from the API, its peers and the
    /// client, and nothing tells it so.
    Partition,
    /// The holder's API requests hang (the path to the API server is black-holed); its link to
    /// the client still works, so a holder that kept the VIP would be seen at once.
    ApiOutage,
}

impl Scenario {
    /// Every scenario, in the order the lab runs them.
    pub const ALL: [Scenario; 4] = [
        Scenario::Planned,
        Scenario::Crash,
        Scenario::Partition,
        Scenario::ApiOutage,
    ];

    /// The scenario's name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Planned => "planned",
            Scenario::Crash => "crash",
            Scenario::Partition => "partition",
            Scenario::ApiOutage => "api-outage",
        }
    }
}

/// Which daemon holds the VIP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Daemon {
    /// `kvip run`, the binary at [`LabOptions::kvip`].
    Kvip,
    /// keepalived's VRRP with this advertisement interval.
    Keepalived(Duration),
}

impl Daemon {
    /// A short label for reports.
    pub fn label(self, timings: &[String; 3]) -> String {
        match self {
            Daemon::Kvip => format!("kvip {}/{}/{}", timings[0], timings[1], timings[2]),
            Daemon::Keepalived(advert) => {
                format!("keepalived advert {}", humantime::format_duration(advert))
            }
        }
    }

    /// Whether the daemon has an equivalent of `scenario`.
    pub fn supports(self, scenario: Scenario) -> bool {
        !(matches!(self, Daemon::Keepalived(_)) && scenario == Scenario::ApiOutage)
    }
}

/// What to build.
#[derive(Debug, Clone)]
pub struct LabOptions {
    /// How many nodes.
    pub nodes: usize,
    /// The kvip binary the nodes run (`kvip lab` passes its own executable).
    pub kvip: PathBuf,
    /// kvip's lease duration, renew deadline and retry period, as on its command line.
    pub timings: [String; 3],
    /// kvip's `vip_arpRate` in milliseconds.
    pub arp_rate_ms: u32,
    /// Which daemon holds the VIP.
    pub daemon: Daemon,
}

/// One round's story: who held the VIP, who holds it now, when what happened.
#[derive(Debug, Clone, Serialize)]
pub struct Round {
    /// The scenario.
    pub scenario: Scenario,
    /// The node that held the VIP and suffered the fault.
    pub old: String,
    /// The node that holds it afterwards.
    pub new: String,
    /// The figures, in milliseconds from the fault.
    #[serde(flatten)]
    pub figures: RoundFigures,
}

/// A running lab: the cluster, its daemons and the client's probe.
pub struct Lab {
    /// The topology (public so callers can narrate addresses and MACs).
    pub cluster: Cluster,
    probe: Probe,
    daemon: Daemon,
}

impl Lab {
    /// Builds the topology, starts one daemon per node and the probe, and waits until one node
    /// holds the VIP and the client gets answers through it.
    pub fn build(options: &LabOptions) -> Result<Lab> {
        let mut cluster_options = ClusterOptions::new(&options.kvip);
        cluster_options.nodes = options.nodes;
        cluster_options.timings = options.timings.clone();
        cluster_options.arp_rate_ms = options.arp_rate_ms;
        let cluster = Cluster::build(cluster_options)?;
        let probe = Probe::start(&cluster.client, cluster.client_addr, cluster.vip)?;
        let mut lab = Lab {
            cluster,
            probe,
            daemon: options.daemon,
        };
        for i in 0..options.nodes {
            lab.start(i)?;
        }
        lab.settle()?;
        Ok(lab)
    }

    /// The node that holds the VIP once the world is quiet: exactly one node has the VIP, the
    /// client's latest echo reply came from it, and (kvip) the Lease names it.
    pub fn settle(&self) -> Result<usize> {
        let holder = self.until("one node to hold the VIP and answer the client", || {
            let with_vip: Vec<usize> = (0..self.cluster.nodes.len())
                .filter(|&i| self.cluster.has_vip(i).unwrap_or(false))
                .collect();
            let &[i] = with_vip.as_slice() else {
                return Ok(None);
            };
            let recent = Instant::now() - Duration::from_millis(200);
            let answers = self.probe.since(recent);
            let last = answers.iter().rev().find(|s| s.seen == Seen::EchoReply);
            let lease_ok = self.daemon != Daemon::Kvip
                || self.cluster.holder().as_deref() == Some(&self.cluster.nodes[i].name);
            Ok((last.is_some_and(|s| s.mac == self.cluster.nodes[i].mac) && lease_ok).then_some(i))
        })?;
        Ok(holder)
    }

    /// Runs one round of `scenario`; leaves the world settled again.
    pub fn round(&mut self, scenario: Scenario) -> Result<Round> {
        if !self.daemon.supports(scenario) {
            bail!(
                "{} has no equivalent of the {} scenario",
                self.label(),
                scenario.name()
            );
        }
        let old = self.settle()?;
        let old_name = self.cluster.nodes[old].name.clone();
        let old_mac = self.cluster.nodes[old].mac;
        let offsets: Vec<u64> = self
            .cluster
            .nodes
            .iter()
            .map(|n| logs::size(&n.log))
            .collect();
        self.probe
            .forget_before(Instant::now() - Duration::from_secs(1));

        let fault = Instant::now();
        match scenario {
            Scenario::Planned => self.cluster.signal(old, libc::SIGTERM)?,
            Scenario::Crash => self.cluster.kill_group(old, libc::SIGKILL)?,
            Scenario::Partition => self.cluster.partition(old, true)?,
            Scenario::ApiOutage => self
                .cluster
                .server
                .set_outage_mode(Subject::user(old_name.clone()), Some(OutageMode::Hang)),
        }
        let new = self.until("another node to answer through the VIP", || {
            Ok(self
                .probe
                .since(fault)
                .iter()
                .find(|s| s.seen == Seen::EchoReply && s.mac != old_mac)
                .and_then(|s| self.node_with(s.mac)))
        });
        // Heal before anything else can fail, so the world is whole again either way.
        match scenario {
            Scenario::Partition => self.cluster.partition(old, false)?,
            Scenario::ApiOutage => self
                .cluster
                .server
                .set_outage_mode(Subject::user(old_name.clone()), None),
            Scenario::Planned | Scenario::Crash => {}
        }
        let new = new?;
        // Watch on: the old holder may come back (healed link or API) still holding the VIP.
        let watch = match self.daemon {
            Daemon::Kvip => Duration::from_secs(1),
            Daemon::Keepalived(advert) => (advert * 2).max(Duration::from_secs(1)),
        };
        self.sleep(watch)?;
        let end = Instant::now();
        let new_mac = self.cluster.nodes[new].mac;
        let view = timeline::analyse(fault, end, new_mac, &self.probe.since(fault));
        let mut figures = RoundFigures::from_view(fault, &view);
        if self.daemon == Daemon::Kvip {
            self.kvip_figures(fault, new, offsets[new], &mut figures)?;
        }
        self.recover(scenario, old)?;
        Ok(Round {
            scenario,
            old: old_name,
            new: self.cluster.nodes[new].name.clone(),
            figures,
        })
    }

    /// This lab's daemon label.
    pub fn label(&self) -> String {
        self.daemon.label(&self.cluster.options().timings)
    }

    fn start(&mut self, i: usize) -> Result<()> {
        match self.daemon {
            Daemon::Kvip => self.cluster.start_node(i),
            Daemon::Keepalived(advert) => keepalived::start(&mut self.cluster, i, advert),
        }
    }

    /// Lease taken, VIP up and takeover, from the Lease history and the new holder's log.
    fn kvip_figures(
        &self,
        fault: Instant,
        new: usize,
        log_offset: u64,
        figures: &mut RoundFigures,
    ) -> Result<()> {
        let name = &self.cluster.nodes[new].name;
        let taken = self
            .cluster
            .server
            .writes()
            .into_iter()
            .find(|w| w.at >= fault && w.holder_identity.as_deref() == Some(name.as_str()))
            .map(|w| w.at);
        let log = &self.cluster.nodes[new].log;
        let line = self.until("the new holder's takeover log line", || {
            logs::find(log, log_offset, "leading: VIP up and announced")
        })?;
        figures.takeover_ms =
            logs::field_us(&line, "lease_acquired_to_first_garp_us").map(timeline::ms);
        if let Some(taken) = taken {
            figures.fault_to_lease_ms = Some(timeline::ms(taken - fault));
            figures.fault_to_vip_up_ms = logs::field_us(&line, "lease_acquired_to_vip_up_us")
                .map(|up| timeline::ms(taken - fault + up));
        }
        Ok(())
    }

    /// Puts the world back after a round: restarts a stopped or killed node and waits until it
    /// competes again; removes what a killed peer left behind.
    fn recover(&mut self, scenario: Scenario, old: usize) -> Result<()> {
        if !matches!(scenario, Scenario::Planned | Scenario::Crash) {
            return Ok(());
        }
        let status = self.cluster.wait_exit(old, PATIENCE)?;
        if scenario == Scenario::Planned && self.daemon == Daemon::Kvip && !status.success() {
            bail!(
                "{} did not exit cleanly on SIGTERM: {status}",
                self.cluster.nodes[old].name
            );
        }
        if scenario == Scenario::Crash && self.cluster.has_vip(old)? {
            // keepalived killed: the address stays until someone removes it (kvip's fence has
            // removed it already). The split brain it causes has been measured by now.
            let vip = format!("{}/32", self.cluster.vip);
            self.cluster.nodes[old]
                .ns
                .ip(&["addr", "del", &vip, "dev", "eth0"])?;
        }
        let log = self.cluster.nodes[old].log.clone();
        let offset = logs::size(&log);
        self.start(old)?;
        // kvip: it has read the Lease. keepalived: it has left INIT (BACKUP, or MASTER for a
        // moment when its first adverts race the master's at short intervals).
        let ready = match self.daemon {
            Daemon::Kvip => "leader observed",
            Daemon::Keepalived(_) => " STATE",
        };
        self.until("the restarted node to compete again", || {
            logs::find(&log, offset, ready)
        })?;
        Ok(())
    }

    fn node_with(&self, mac: MacAddr) -> Option<usize> {
        self.cluster.nodes.iter().position(|n| n.mac == mac)
    }

    /// Polls `f` until it returns `Some`, the lab is interrupted or [`PATIENCE`] runs out.
    fn until<T>(&self, what: &str, mut f: impl FnMut() -> Result<Option<T>>) -> Result<T> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(value) = f()? {
                return Ok(value);
            }
            if interrupted() {
                bail!("interrupted");
            }
            if Instant::now() > deadline {
                bail!("gave up after {PATIENCE:?} waiting for {what}");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn sleep(&self, d: Duration) -> Result<()> {
        let end = Instant::now() + d;
        while Instant::now() < end {
            if interrupted() {
                bail!("interrupted");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }
}
