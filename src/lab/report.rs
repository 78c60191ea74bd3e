//! Percentiles, the failover table and its JSON form: what `kvip lab --json` prints and
//! `benches/failover.rs` writes to `target/failover.json`.

use serde::Serialize;

use super::failover::{Round, Scenario};

/// Percentiles of one figure over the rounds, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Worst round.
    pub max: f64,
    /// How many rounds observed this figure.
    pub n: usize,
}

/// Nearest-rank percentiles; `None` when nothing was observed.
pub fn percentiles(values: impl IntoIterator<Item = f64>) -> Option<Percentiles> {
    let mut v: Vec<f64> = values.into_iter().collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let rank = |p: f64| v[((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
    Some(Percentiles {
        p50: rank(0.50),
        p95: rank(0.95),
        p99: rank(0.99),
        max: v[v.len() - 1],
        n: v.len(),
    })
}

/// One daemon under one scenario: every round and their summary.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioReport {
    /// Which daemon and timings, e.g. `kvip 3/2/500ms`.
    pub daemon: String,
    /// The scenario.
    pub scenario: Scenario,
    /// Fault → the new holder's first gratuitous ARP seen by the client.
    pub fault_to_first_garp: Option<Percentiles>,
    /// Fault → first echo reply through the VIP from the new holder (the blackout).
    pub fault_to_first_reply: Option<Percentiles>,
    /// Lease acquired → first gratuitous ARP (kvip's own measurement).
    pub takeover: Option<Percentiles>,
    /// Split-brain windows over all rounds.
    pub split_brain_windows: usize,
    /// Their total length in milliseconds.
    pub split_brain_ms: f64,
    /// Rounds that ended with a split brain still open.
    pub still_split_rounds: usize,
    /// Every round.
    pub rounds: Vec<Round>,
}

impl ScenarioReport {
    /// Summarises `rounds` of one daemon under one scenario.
    pub fn new(daemon: String, scenario: Scenario, rounds: Vec<Round>) -> Self {
        let f = |get: fn(&Round) -> Option<f64>| percentiles(rounds.iter().filter_map(get));
        ScenarioReport {
            daemon,
            scenario,
            fault_to_first_garp: f(|r| r.figures.fault_to_first_garp_ms),
            fault_to_first_reply: f(|r| r.figures.fault_to_first_reply_ms),
            takeover: f(|r| r.figures.takeover_ms),
            split_brain_windows: rounds.iter().map(|r| r.figures.split_brain_windows).sum(),
            split_brain_ms: rounds.iter().map(|r| r.figures.split_brain_ms).sum(),
            still_split_rounds: rounds.iter().filter(|r| r.figures.still_split).count(),
            rounds,
        }
    }
}

/// The table: one row per daemon and scenario; for kvip rows, the ratio of its p50 blackout to
/// each keepalived profile's under the same scenario.
pub fn table(reports: &[ScenarioReport]) -> String {
    let cell = |p: Option<Percentiles>| match p {
        Some(p) => format!("{:.0} / {:.0} / {:.0} / {:.0}", p.p50, p.p95, p.p99, p.max),
        None => "n/a".to_string(),
    };
    let mut out = String::from(
        "| daemon | scenario | rounds | fault → first GARP p50/p95/p99/max ms | fault → first reply p50/p95/p99/max ms | takeover p50/p99/max ms | split-brain windows (total ms) | first reply p50 vs peer |\n|---|---|---|---|---|---|---|---|\n",
    );
    for r in reports {
        let takeover = r.takeover.map_or("n/a".to_string(), |p| {
            format!("{:.3} / {:.3} / {:.3}", p.p50, p.p99, p.max)
        });
        let split = if r.split_brain_windows == 0 {
            "0".to_string()
        } else {
            let open = if r.still_split_rounds > 0 {
                format!(", {} still open at the end", r.still_split_rounds)
            } else {
                String::new()
            };
            format!(
                "**{}** ({:.0}{open})",
                r.split_brain_windows, r.split_brain_ms
            )
        };
        let ratios: Vec<String> = reports
            .iter()
            .filter(|p| p.scenario == r.scenario && p.daemon.starts_with("keepalived"))
            .filter(|_| r.daemon.starts_with("kvip"))
            .filter_map(|p| {
                let (k, p50) = (r.fault_to_first_reply?.p50, p.fault_to_first_reply?.p50);
                Some(format!("{:.2}× {}", k / p50, p.daemon))
            })
            .collect();
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |\n",
            r.daemon,
            r.scenario.name(),
            r.rounds.len(),
            cell(r.fault_to_first_garp),
            cell(r.fault_to_first_reply),
            takeover,
            split,
            if ratios.is_empty() {
                "".to_string()
            } else {
                ratios.join("; ")
            },
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let p = percentiles((1..=100).map(f64::from)).unwrap();
        assert_eq!(
            (p.p50, p.p95, p.p99, p.max, p.n),
            (50.0, 95.0, 99.0, 100.0, 100)
        );
        let one = percentiles([7.0]).unwrap();
        assert_eq!((one.p50, one.p99), (7.0, 7.0));
        assert_eq!(percentiles([]), None);
    }
}
