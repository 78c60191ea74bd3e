//! `kvip announce`: one burst of gratuitous ARP / unsolicited NA, like `arping -U`, for runbooks
//! and for debugging switches. It never touches addresses, and it validates and fails exactly
//! like the daemon would on the same interface and address.

use std::net::IpAddr;

use anyhow::{Context, bail};

use super::{RawLink, frames};
use crate::address::resolve_interface;
use crate::cli::AnnounceArgs;

/// Sends `args.count` rounds of every frame form for `args.address`, `args.interval` apart.
///
/// Errors (non-zero exit): an address that does not parse, a missing or down interface, no
/// link-local address for an IPv6 VIP, no CAP_NET_RAW.
pub async fn run_cli(args: &AnnounceArgs) -> anyhow::Result<()> {
    let address: IpAddr = args.address.trim().parse().with_context(|| {
        format!(
            "--address / address: `{}` is not an IP address; expected e.g. 192.168.1.50 or 2001:db8::50 (no prefix length)",
            args.address
        )
    })?;
    if args.count == 0 {
        bail!("--count: 0 rounds would send nothing; use 1 or more");
    }
    let interface = resolve_interface(args.interface.as_deref(), false).await?;
    let frames = frames::frames_for(
        &interface.name,
        interface.mac,
        interface.link_local,
        address,
    )?;
    let mut link = RawLink::open(&interface)?;
    for round in 0..args.count {
        if round > 0 {
            tokio::time::sleep(args.interval).await;
        }
        for frame in &frames {
            link.send(frame)?;
        }
    }
    let kind = if address.is_ipv4() {
        "gratuitous ARP"
    } else {
        "unsolicited NA"
    };
    let mac = interface.mac.map(|mac| mac.to_string()).unwrap_or_default();
    println!(
        "kvip: sent {} {kind} frame(s) for {address} on {} ({mac})",
        frames.len() * args.count as usize,
        interface.name
    );
    Ok(())
}
