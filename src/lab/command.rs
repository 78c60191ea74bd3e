//! `kvip lab`: build the lab, narrate each failover round, print the verdict.
//!
//! The output is for a person watching a failover for the first time: who leads, where the VIP
//! is, what the client resolves it to, then per round a timeline from the fault to the first
//! answer through the VIP, and whether two MACs ever answered. `--json` prints the same figures
//! as a JSON document on stdout (the narration goes to stderr then) for scripts and CI.

use std::io::Write;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::failover::{Daemon, Lab, LabOptions, Round, Scenario};
use super::host;
use super::report::{self, ScenarioReport};
use crate::cli::{LabArgs, LabScenario, parse_duration};

/// keepalived's fastest advertisement interval (VRRPv3 counts in centiseconds).
pub const KEEPALIVED_FASTEST: Duration = Duration::from_millis(10);

/// Runs `kvip lab`.
pub fn run(args: &LabArgs) -> Result<()> {
    host::check_privileges()?;
    let timings = [
        args.lease_duration.clone(),
        args.renew_deadline.clone(),
        args.retry_period.clone(),
    ];
    check_timings(&timings)?;
    if args.nodes < 2 {
        bail!("--nodes {}: a failover needs at least 2 nodes", args.nodes);
    }
    host::on_interrupt();
    let json = args.json;
    let say = |line: String| {
        if json {
            eprintln!("{line}");
        } else {
            println!("{line}");
            let _ = std::io::stdout().flush();
        }
    };
    for leftover in host::remove_leftovers() {
        say(format!("removed a leftover of an earlier lab: {leftover}"));
    }
    let scenarios: Vec<Scenario> = match args.scenario {
        LabScenario::All => Scenario::ALL.to_vec(),
        LabScenario::Planned => vec![Scenario::Planned],
        LabScenario::Crash => vec![Scenario::Crash],
        LabScenario::Partition => vec![Scenario::Partition],
        LabScenario::ApiOutage => vec![Scenario::ApiOutage],
    };
    let mut daemons = vec![Daemon::Kvip];
    if args.keepalived {
        daemons.push(Daemon::Keepalived(Duration::from_secs(1)));
        daemons.push(Daemon::Keepalived(KEEPALIVED_FASTEST));
    }
    let kvip = std::env::current_exe().context("finding kvip's own executable")?;
    let mut reports = Vec::new();
    for daemon in daemons {
        let options = LabOptions {
            nodes: args.nodes,
            kvip: kvip.clone(),
            timings: timings.clone(),
            arp_rate_ms: args.arp_rate,
            daemon,
        };
        say(format!("\n=== {}", daemon.label(&timings)));
        let mut lab = Lab::build(&options)?;
        // The directory goes with the lab: a failure says what the nodes logged instead.
        introduce(&lab, &say)?;
        for &scenario in &scenarios {
            if !daemon.supports(scenario) {
                say(format!(
                    "\n--- {}: no keepalived equivalent (VRRP does not use the Kubernetes API)",
                    scenario.name()
                ));
                continue;
            }
            let mut rounds = Vec::new();
            for n in 1..=args.rounds {
                let round = lab
                    .round(scenario)
                    .inspect_err(|_| eprint!("{}", lab.cluster.log_tails(15)))?;
                narrate(&round, n, args.rounds, &say);
                rounds.push(round);
            }
            reports.push(ScenarioReport::new(lab.label(), scenario, rounds));
        }
    }
    say(format!("\n{}", report::table(&reports)));
    let kvip_split: usize = reports
        .iter()
        .filter(|r| r.daemon.starts_with("kvip"))
        .map(|r| r.split_brain_windows)
        .sum();
    if json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
    }
    if kvip_split > 0 {
        bail!("split brain: two MACs answered for the VIP in {kvip_split} window(s) under kvip");
    }
    say("verdict: kvip never let two MACs answer for the VIP.".to_string());
    Ok(())
}

/// The daemon's own checks, early: a bad value would otherwise surface as three nodes that
/// exit at once.
fn check_timings(timings: &[String; 3]) -> Result<()> {
    let names = ["--leaseDuration", "--leaseRenewDuration", "--leaseRetry"];
    let mut parsed = [Duration::ZERO; 3];
    for ((value, name), slot) in timings.iter().zip(names).zip(&mut parsed) {
        *slot = parse_duration(value).map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
    }
    let [lease, renew, retry] = parsed;
    if lease.subsec_nanos() != 0 || lease < crate::config::MIN_LEASE_DURATION {
        bail!(
            "--leaseDuration {}: must be whole seconds and at least {:?} (kvip's kernel fence)",
            timings[0],
            crate::config::MIN_LEASE_DURATION
        );
    }
    crate::election::Timings::new(lease, renew, retry).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}

fn introduce(lab: &Lab, say: &impl Fn(String)) -> Result<()> {
    let cluster = &lab.cluster;
    for node in &cluster.nodes {
        say(format!(
            "node {:5} {:12} eth0 {}",
            node.name,
            node.addr.to_string(),
            node.mac
        ));
    }
    let holder = lab.settle()?;
    let node = &cluster.nodes[holder];
    say(format!(
        "{} leads: {}/32 is on its eth0",
        node.name, cluster.vip
    ));
    let seen = cluster.client.neighbours("eth0")?;
    let vip = cluster.vip.to_string();
    let mac = seen
        .iter()
        .find(|n| n.dst == vip)
        .and_then(|n| n.lladdr.clone())
        .unwrap_or_else(|| "nothing yet".to_string());
    say(format!(
        "the client resolves {vip} to {mac} and gets echo replies from {}",
        node.name
    ));
    Ok(())
}

fn narrate(round: &Round, n: usize, of: usize, say: &impl Fn(String)) {
    let fault = match round.scenario {
        Scenario::Planned => "SIGTERM",
        Scenario::Crash => "SIGKILL",
        Scenario::Partition => "unplug the switch port of",
        Scenario::ApiOutage => "black-hole the API for",
    };
    say(format!(
        "\n--- {} {n}/{of}: {fault} {} (the holder)",
        round.scenario.name(),
        round.old
    ));
    let f = &round.figures;
    let new = &round.new;
    let mut events: Vec<(f64, String)> = vec![(0.0, format!("fault: {fault} {}", round.old))];
    let mut add = |at: Option<f64>, what: String| {
        if let Some(at) = at {
            events.push((at, what));
        }
    };
    add(f.fault_to_lease_ms, format!("Lease taken by {new}"));
    add(f.fault_to_vip_up_ms, format!("VIP up on {new}'s eth0"));
    add(
        f.fault_to_first_garp_ms,
        format!("client sees {new}'s first gratuitous ARP"),
    );
    add(
        f.fault_to_first_reply_ms,
        format!("client's first reply through the VIP, from {new}"),
    );
    events.sort_by(|a, b| a.0.total_cmp(&b.0));
    for (at, what) in events {
        say(format!("  +{at:9.1} ms  {what}"));
    }
    if let Some(takeover) = f.takeover_ms {
        say(format!(
            "  takeover on {new} (Lease acquired → first GARP sent): {takeover:.3} ms"
        ));
    }
    if f.split_brain_windows == 0 {
        say("  split brain: none, one MAC answered for the VIP at a time".to_string());
    } else {
        say(format!(
            "  SPLIT BRAIN: two MACs answered in {} window(s), {:.0} ms in total{}",
            f.split_brain_windows,
            f.split_brain_ms,
            if f.still_split {
                ", still answering when the round ended"
            } else {
                ""
            }
        ));
    }
}
