//! `kvip lab` as CI runs it: one round of every scenario with the real binary, checked for what
//! the lab promises (every fault ends with another node answering through the VIP, and never two
//! MACs at once), not for how fast (timing belongs to `benches/failover.rs`).

use std::process::Command;

use serde_json::Value;

#[test]
fn every_scenario_fails_over_to_another_node_without_split_brain() {
    let output = Command::new(env!("CARGO_BIN_EXE_kvip"))
        .args(["lab", "--scenario", "all", "--rounds", "1", "--json"])
        .output()
        .expect("kvip lab runs");
    let narration = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "kvip lab failed:\n{narration}");
    let reports: Vec<Value> = serde_json::from_slice(&output.stdout).expect("JSON on stdout");
    let scenarios: Vec<&str> = reports
        .iter()
        .map(|r| r["scenario"].as_str().unwrap())
        .collect();
    assert_eq!(scenarios, ["planned", "crash", "partition", "api-outage"]);
    for report in &reports {
        let scenario = &report["scenario"];
        assert_eq!(report["split_brain_windows"], 0, "{scenario}: {narration}");
        let rounds = report["rounds"].as_array().unwrap();
        assert_eq!(rounds.len(), 1, "{scenario}");
        let round = &rounds[0];
        assert_ne!(round["old"], round["new"], "{scenario}: the VIP moved");
        for figure in [
            "fault_to_first_garp_ms",
            "fault_to_first_reply_ms",
            "takeover_ms",
        ] {
            assert!(
                round[figure].as_f64().is_some(),
                "{scenario}: {figure} was observed: {round}"
            );
        }
    }
    assert!(narration.contains("leads:"), "the lab says who leads");
    assert!(narration.contains("split brain: none"), "{narration}");
}

#[test]
fn impossible_timings_are_refused_before_anything_is_built() {
    let output = Command::new(env!("CARGO_BIN_EXE_kvip"))
        .args(["lab", "--leaseDuration", "2", "--leaseRenewDuration", "1"])
        .output()
        .expect("kvip lab runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--leaseDuration 2"), "{stderr}");
    assert!(stderr.contains("at least 3s"), "{stderr}");
}

/// The split-brain verdict above would pass vacuously if the detector saw nothing. keepalived's
/// killed master keeps the VIP on its interface and keeps answering ARP, a real split brain in
/// the same topology: the lab must catch it, and still find none for kvip.
#[test]
fn the_lab_catches_keepalived_split_brain_after_a_crash_and_none_for_kvip() {
    let output = Command::new(env!("CARGO_BIN_EXE_kvip"))
        .args([
            "lab",
            "--keepalived",
            "--scenario",
            "crash",
            "--rounds",
            "1",
            "--json",
        ])
        .output()
        .expect(
            "kvip lab runs (keepalived is installed by scripts/test: apt-get install keepalived)",
        );
    let narration = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "kvip lab failed:\n{narration}");
    let reports: Vec<Value> = serde_json::from_slice(&output.stdout).expect("JSON on stdout");
    let daemons: Vec<&str> = reports
        .iter()
        .map(|r| r["daemon"].as_str().unwrap())
        .collect();
    assert_eq!(
        daemons.len(),
        3,
        "kvip and keepalived at two advert intervals: {daemons:?}"
    );
    for report in &reports {
        let daemon = report["daemon"].as_str().unwrap();
        if daemon.starts_with("kvip") {
            assert_eq!(report["split_brain_windows"], 0, "{daemon}: {narration}");
        } else {
            assert!(
                report["split_brain_windows"].as_u64().unwrap() >= 1,
                "{daemon}: {narration}"
            );
            assert_eq!(
                report["still_split_rounds"], 1,
                "{daemon}: the dead master still answers"
            );
        }
    }
}
