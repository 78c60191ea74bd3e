//! The failover hot path on a real kernel: `cargo bench --bench takeover`.
//!
//! In a throw-away namespace with a veth pair, measures over many iterations:
//!
//! - **takeover**: from "this node became leader" to "VIP on the interface (netlink ACK) and first
//!   gratuitous ARP handed to the kernel" — `Addresses::add` then `Announcer::announce` (frames
//!   prepared once, at start-up) and waiting for its first-frame report, exactly what the daemon
//!   does;
//! - **refresh GARP**: one frame on the long-lived raw socket (`RawLink::send`);
//! - **lifetime refresh**: `Addresses::refresh_lifetime`, which runs on every lease renewal.
//!
//! Prints p50 / p99 / max. Targets: takeover p99 < 1 ms, one GARP < 10 µs. Needs root.

use std::time::{Duration, Instant};

use kvip::address::{AddressOptions, Addresses, Vip};
use kvip::announce::{Announcer, RawLink, Schedule, frames};
use kvip::lab::netns::{NetNs, veth};

const TAKEOVERS: usize = 2_000;
const GARPS: usize = 20_000;
const REFRESHES: usize = 5_000;
const WARMUP: usize = 100;

fn main() -> anyhow::Result<()> {
    let holder = NetNs::new()?;
    let peer = NetNs::new()?;
    veth(&holder, "kv0", &peer, "pr0")?;
    holder.ip(&["addr", "add", "192.0.2.1/24", "dev", "kv0"])?;

    let results = holder.block_on(|| async { measure().await })??;
    println!("kvip takeover benchmark (veth in a network namespace, {TAKEOVERS} takeovers)");
    for (name, samples) in results {
        report(name, samples);
    }
    Ok(())
}

async fn measure() -> anyhow::Result<Vec<(&'static str, Vec<Duration>)>> {
    let vip = Vip::host("192.0.2.100".parse()?);
    let addresses = Addresses::open(Some("kv0"), false, AddressOptions::default()).await?;
    let interface = addresses.interface().clone();
    let announcer = Announcer::open(&interface, Schedule::default())?;
    let announcement = announcer.prepare(&[vip])?;
    let lifetime = Duration::from_secs(10);

    let mut takeover = Vec::with_capacity(TAKEOVERS);
    for i in 0..TAKEOVERS + WARMUP {
        addresses.remove(vip).await?;
        let became_leader = Instant::now();
        addresses.add(vip, lifetime).await?;
        announcer.announce(&announcement).wait().await?;
        let elapsed = became_leader.elapsed();
        announcer.stop();
        if i >= WARMUP {
            takeover.push(elapsed);
        }
    }
    drop(announcer);

    let mut link = RawLink::open(&interface)?;
    let frame = frames::frames_for(&interface.name, interface.mac, None, vip.addr)?.remove(0);
    let mut garp = Vec::with_capacity(GARPS);
    for i in 0..GARPS + WARMUP {
        let start = Instant::now();
        link.send(&frame)?;
        if i >= WARMUP {
            garp.push(start.elapsed());
        }
    }

    let mut refresh = Vec::with_capacity(REFRESHES);
    for i in 0..REFRESHES + WARMUP {
        let start = Instant::now();
        addresses.refresh_lifetime(vip, lifetime).await?;
        if i >= WARMUP {
            refresh.push(start.elapsed());
        }
    }
    addresses.remove(vip).await?;
    Ok(vec![
        ("takeover (add + first GARP)", takeover),
        ("one refresh GARP", garp),
        ("lifetime refresh", refresh),
    ])
}

fn report(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    println!(
        "{name:<28} p50 {:>9.1?}  p99 {:>9.1?}  max {:>9.1?}  (n = {})",
        at(0.50),
        at(0.99),
        samples[samples.len() - 1],
        samples.len()
    );
}
