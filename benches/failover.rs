//! Failover latency, measured from a client: `cargo bench --bench failover` (needs root).
//!
//! Runs `kvip lab`'s rounds many times per scenario and prints, per daemon and scenario,
//! p50/p95/p99/max of fault → first GARP from the new holder, fault → first reply through the
//! VIP, and lease acquired → first GARP (kvip's takeover), plus split-brain windows. When
//! keepalived is installed, the same rounds run with keepalived's VRRP (advert_int 1 s and its
//! fastest, 10 ms) in the same topology at the same time, so every kvip figure has a peer
//! measured under the same load. Writes `target/failover.json` as well as the table.
//!
//! Environment:
//! - `KVIP_BENCH_ROUNDS`: rounds per scenario (default 20);
//! - `KVIP_BENCH_TIMINGS`: kvip timings to compare, `lease/renew/retry` separated by commas
//!   (default `3/2/500ms`, the lab's);
//! - `KVIP_BENCH_SCENARIOS`: comma-separated subset of planned,crash,partition,api-outage;
//! - `KVIP_BENCH_KEEPALIVED=0`: skip keepalived even when installed.
//!
//! Each daemon configuration runs in its own lab on its own thread: the labs mostly wait, and
//! running them side by side keeps a full run within a few minutes.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use kvip::lab::command::KEEPALIVED_FASTEST;
use kvip::lab::failover::{Daemon, Lab, LabOptions, Round, Scenario};
use kvip::lab::report::{self, ScenarioReport};
use kvip::lab::{host, keepalived};
use serde::Serialize;

/// Everything one bench run found, as written to `target/failover.json`.
#[derive(Serialize)]
struct Results {
    date: String,
    cores: usize,
    rounds_per_scenario: usize,
    reports: Vec<ScenarioReport>,
    failures: Vec<String>,
}

fn main() -> Result<()> {
    host::check_privileges()?;
    host::on_interrupt();
    host::remove_leftovers();
    let rounds: usize = env_or("KVIP_BENCH_ROUNDS", "20").parse()?;
    let scenarios: Vec<Scenario> = env_or("KVIP_BENCH_SCENARIOS", "")
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| {
            Scenario::ALL
                .into_iter()
                .find(|c| c.name() == s)
                .with_context(|| format!("KVIP_BENCH_SCENARIOS: unknown scenario {s}"))
        })
        .collect::<Result<_>>()?;
    let scenarios = if scenarios.is_empty() {
        Scenario::ALL.to_vec()
    } else {
        scenarios
    };
    let mut configs: Vec<([String; 3], Daemon)> = Vec::new();
    for timings in env_or("KVIP_BENCH_TIMINGS", "3/2/500ms").split(',') {
        let parts: Vec<String> = timings.split('/').map(str::to_string).collect();
        let timings: [String; 3] = parts.try_into().map_err(|_| {
            anyhow::anyhow!("KVIP_BENCH_TIMINGS: `{timings}` is not lease/renew/retry")
        })?;
        configs.push((timings, Daemon::Kvip));
    }
    if keepalived::binary().is_some() && env_or("KVIP_BENCH_KEEPALIVED", "1") != "0" {
        let lab = configs[0].0.clone();
        configs.push((lab.clone(), Daemon::Keepalived(Duration::from_secs(1))));
        configs.push((lab, Daemon::Keepalived(KEEPALIVED_FASTEST)));
    } else {
        eprintln!("keepalived not installed (apt-get install keepalived): kvip only");
    }
    let started = Instant::now();
    let outcomes: Vec<(Vec<ScenarioReport>, Vec<String>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = configs
            .iter()
            .map(|(timings, daemon)| {
                let scenarios = &scenarios;
                scope.spawn(move || bench(timings, *daemon, scenarios, rounds))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| (Vec::new(), vec!["a lab thread panicked".into()]))
            })
            .collect()
    });
    let (mut reports, mut failures) = (Vec::new(), Vec::new());
    for (r, f) in outcomes {
        reports.extend(r);
        failures.extend(f);
    }
    println!(
        "\nfailover benchmark: {rounds} rounds per scenario, {} cores, {:.0} s\n",
        cores(),
        started.elapsed().as_secs_f64()
    );
    println!("{}", report::table(&reports));
    targets(&reports);
    for failure in &failures {
        println!("failed round: {failure}");
    }
    let results = Results {
        date: jiff::Timestamp::now().to_string(),
        cores: cores(),
        rounds_per_scenario: rounds,
        reports,
        failures,
    };
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/failover.json");
    std::fs::write(&path, serde_json::to_string_pretty(&results)?)
        .with_context(|| format!("writing {}", path.display()))?;
    println!("JSON: {}", path.display());
    Ok(())
}

/// All rounds of one daemon configuration. A failed round (a peer that never settles, say) is
/// recorded and the lab rebuilt, so one bad round does not lose the rest of the run.
fn bench(
    timings: &[String; 3],
    daemon: Daemon,
    scenarios: &[Scenario],
    rounds: usize,
) -> (Vec<ScenarioReport>, Vec<String>) {
    let options = LabOptions {
        nodes: 3,
        kvip: env!("CARGO_BIN_EXE_kvip").into(),
        timings: timings.clone(),
        arp_rate_ms: 500,
        daemon,
    };
    let label = daemon.label(timings);
    let (mut reports, mut failures) = (Vec::new(), Vec::new());
    let mut lab: Option<Lab> = None;
    for &scenario in scenarios.iter().filter(|&&s| daemon.supports(s)) {
        let mut done: Vec<Round> = Vec::new();
        let mut attempts = 0;
        while done.len() < rounds && attempts < rounds * 2 && !host::interrupted() {
            attempts += 1;
            let result = match lab.as_mut() {
                Some(lab) => lab.round(scenario),
                None => Lab::build(&options).and_then(|built| lab.insert(built).round(scenario)),
            };
            match result {
                Ok(round) => done.push(round),
                Err(err) => {
                    let tails = lab.as_ref().map(|l| l.cluster.log_tails(10));
                    eprintln!(
                        "{label} {}: {err:#}\n{}",
                        scenario.name(),
                        tails.unwrap_or_default()
                    );
                    failures.push(format!("{label} {}: {err:#}", scenario.name()));
                    lab = None;
                }
            }
        }
        eprintln!("{label} {}: {} rounds", scenario.name(), done.len());
        reports.push(ScenarioReport::new(label.clone(), scenario, done));
    }
    (reports, failures)
}

/// The targets, checked against this run (reported, never asserted).
fn targets(reports: &[ScenarioReport]) {
    for r in reports.iter().filter(|r| r.daemon.starts_with("kvip")) {
        let lease_ms: f64 = r
            .daemon
            .split_whitespace()
            .nth(1)
            .and_then(|t| t.split('/').next())
            .and_then(|s| s.parse::<f64>().ok())
            .map_or(f64::NAN, |s| s * 1e3);
        let garp_p99 = r.fault_to_first_garp.map(|p| p.p99);
        let check = |ok: bool| if ok { "met" } else { "MISSED" };
        match r.scenario {
            Scenario::Planned => println!(
                "target {} planned: fault → first GARP p99 < 100 ms: {:?} ms, {}",
                r.daemon,
                garp_p99,
                check(garp_p99.is_some_and(|p| p < 100.0))
            ),
            Scenario::Crash => println!(
                "target {} crash: first GARP p99 < lease + 100 ms ({} ms): {:?} ms, {}",
                r.daemon,
                lease_ms + 100.0,
                garp_p99,
                check(garp_p99.is_some_and(|p| p < lease_ms + 100.0))
            ),
            _ => {}
        }
        let takeover = r.takeover.map(|p| p.p99);
        println!(
            "target {} {}: takeover p99 < 1 ms: {:?} ms, {}; split-brain windows: {}, {}",
            r.daemon,
            r.scenario.name(),
            takeover,
            check(takeover.is_some_and(|p| p < 1.0)),
            r.split_brain_windows,
            check(r.split_brain_windows == 0)
        );
    }
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
