//! The Prometheus metrics kvip exports.
//!
//! Names start with `kvip_`. The three metrics kube-vip exports for its leases are exported under
//! kube-vip's names as well (and `kube_vip_build_info` is actually 1, unlike kube-vip's), so
//! dashboards keep working after the image swap.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::credentials::Credential;

/// All of kvip's metrics; cheap to clone (every metric is a shared handle).
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    /// 1 while this node holds the Lease.
    pub is_leader: Gauge,
    /// Times this node became leader.
    pub transitions: Counter,
    /// Renewals that failed (each failed attempt, not each step-down).
    pub renew_failures: Counter,
    /// Step-downs because renewal did not succeed within the renew deadline.
    pub step_downs: Counter,
    /// 1 for the kubeconfig in use.
    pub credential: Family<Vec<(String, String)>, Gauge>,
    /// 1 while the VIP is on this node's interface.
    pub vip_present: Gauge,
    /// Times the VIP was put back after something else removed it while leading.
    pub vip_restored: Counter,
    /// Lease acquired → first announcement on the wire, in seconds.
    pub takeover_seconds: Histogram,
    announcements: Arc<OnceLock<Arc<AtomicU64>>>,
}

impl Metrics {
    /// Registers every metric, labelled with this node and the Lease.
    pub fn new(node: &str, lease_namespace: &str, lease_name: &str) -> Self {
        let mut root = Registry::default();
        let labels = [
            ("node".into(), node.to_string().into()),
            (
                "lease".into(),
                format!("{lease_namespace}/{lease_name}").into(),
            ),
        ];
        let reg = root.sub_registry_with_labels(labels.into_iter());
        let metrics = Metrics {
            registry: Arc::new(Registry::default()),
            is_leader: Gauge::default(),
            transitions: Counter::default(),
            renew_failures: Counter::default(),
            step_downs: Counter::default(),
            credential: Family::default(),
            vip_present: Gauge::default(),
            vip_restored: Counter::default(),
            // 50 µs … ~6.5 s: the target is under 1 ms, a slow netlink or a stalled runtime shows.
            takeover_seconds: Histogram::new(exponential_buckets(50e-6, 2.0, 18)),
            announcements: Arc::new(OnceLock::new()),
        };
        reg.register(
            "kvip_is_leader",
            "1 while this node holds the Lease",
            metrics.is_leader.clone(),
        );
        reg.register(
            "kvip_leader_transitions",
            "Times this node became leader",
            metrics.transitions.clone(),
        );
        reg.register(
            "kvip_renew_failures",
            "Lease renewals that failed",
            metrics.renew_failures.clone(),
        );
        reg.register(
            "kvip_step_downs",
            "Step-downs because the Lease could not be renewed in time",
            metrics.step_downs.clone(),
        );
        reg.register(
            "kvip_credential",
            "1 for the credential the election uses (admin.conf, super-admin.conf or serviceaccount)",
            metrics.credential.clone(),
        );
        reg.register(
            "kvip_vip_present",
            "1 while the VIP is on this node's interface",
            metrics.vip_present.clone(),
        );
        reg.register(
            "kvip_vip_restored",
            "Times the VIP was put back after an external removal",
            metrics.vip_restored.clone(),
        );
        reg.register(
            "kvip_takeover_seconds",
            "Lease acquired to first announcement sent",
            metrics.takeover_seconds.clone(),
        );
        reg.register_collector(Box::new(AnnouncementCounter(metrics.announcements.clone())));

        let compat = root.sub_registry_with_labels(
            [
                ("node".into(), node.to_string().into()),
                ("lease_name".into(), lease_name.to_string().into()),
            ]
            .into_iter(),
        );
        compat.register(
            "kube_vip_is_leader",
            "kube-vip compatible: 1 while this node leads",
            metrics.is_leader.clone(),
        );
        compat.register(
            "kube_vip_leader_election_transitions",
            "kube-vip compatible: times this node became leader",
            metrics.transitions.clone(),
        );
        let build: Family<Vec<(String, String)>, Gauge> = Family::default();
        build
            .get_or_create(&vec![("version".into(), env!("CARGO_PKG_VERSION").into())])
            .set(1);
        compat.register(
            "kube_vip_build_info",
            "kube-vip compatible: build information",
            build,
        );
        Metrics {
            registry: Arc::new(root),
            ..metrics
        }
    }

    /// Exports the announcer's frame counter as `kvip_announcements_total`. The announcer keeps
    /// a plain atomic so its hot path needs nothing from the metrics crate; the first call wins.
    pub fn count_announcements(&self, frames_sent: Arc<AtomicU64>) {
        let _ = self.announcements.set(frames_sent);
    }

    /// Marks `current` as the credential in use (`None`: none is usable right now). The label
    /// stays `kubeconfig` (`admin.conf`, `super-admin.conf`, or `serviceaccount`) so dashboards
    /// keep working.
    pub fn set_credential(&self, current: Option<Credential>) {
        for c in Credential::ALL {
            let value = i64::from(Some(c) == current);
            self.credential
                .get_or_create(&vec![("kubeconfig".into(), c.as_str().into())])
                .set(value);
        }
    }

    /// Records one takeover's latency.
    pub fn observe_takeover(&self, took: Duration) {
        self.takeover_seconds.observe(took.as_secs_f64());
    }

    /// The OpenMetrics text exposition (what Prometheus scrapes).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Exposes the announcer's atomic as `kvip_announcements_total` at scrape time.
#[derive(Debug)]
struct AnnouncementCounter(Arc<OnceLock<Arc<AtomicU64>>>);

impl Collector for AnnouncementCounter {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let sent = self
            .0
            .get()
            .map_or(0, |frames| frames.load(Ordering::Relaxed));
        let counter = ConstCounter::new(sent);
        let metric = encoder.encode_descriptor(
            "kvip_announcements",
            "Gratuitous ARP / unsolicited NA frames sent",
            None,
            counter.metric_type(),
        )?;
        counter.encode(metric)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_carries_kvip_and_kube_vip_names() {
        let m = Metrics::new("cp-1", "kube-system", "plndr-cp-lock");
        m.is_leader.set(1);
        m.transitions.inc();
        m.set_credential(Some(Credential::SuperAdmin));
        m.count_announcements(Arc::new(AtomicU64::new(5)));
        m.observe_takeover(Duration::from_micros(300));
        let text = m.encode();
        for line in [
            r#"kvip_is_leader{node="cp-1",lease="kube-system/plndr-cp-lock"} 1"#,
            r#"kvip_leader_transitions_total{node="cp-1",lease="kube-system/plndr-cp-lock"} 1"#,
            r#"kvip_credential{node="cp-1",lease="kube-system/plndr-cp-lock",kubeconfig="super-admin.conf"} 1"#,
            r#"kvip_credential{node="cp-1",lease="kube-system/plndr-cp-lock",kubeconfig="admin.conf"} 0"#,
            r#"kvip_credential{node="cp-1",lease="kube-system/plndr-cp-lock",kubeconfig="serviceaccount"} 0"#,
            r#"kvip_announcements_total{node="cp-1",lease="kube-system/plndr-cp-lock"} 5"#,
            r#"kvip_takeover_seconds_count{node="cp-1",lease="kube-system/plndr-cp-lock"} 1"#,
            r#"kube_vip_is_leader{node="cp-1",lease_name="plndr-cp-lock"} 1"#,
            r#"kube_vip_build_info{node="cp-1",lease_name="plndr-cp-lock",version=""#,
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
    }
}
