//! The world most data-plane tests need: a holder namespace where kvip runs and a peer namespace
//! that watches the wire, joined by one veth pair. Dropping it deletes both namespaces.

#![allow(dead_code)] // each test binary uses its own subset

use std::net::Ipv6Addr;
use std::time::Duration;

use kvip::lab::netns::{NetNs, veth};
use pnet::util::MacAddr;
use serde::Deserialize;

/// kvip's end of the veth pair, in the holder namespace.
pub const HOLDER_IF: &str = "kv0";
/// The peer's end, where frames are captured.
pub const PEER_IF: &str = "pr0";
/// Generous give-up guard for anything that waits on the kernel.
pub const PATIENCE: Duration = Duration::from_secs(15);

pub struct Lab {
    pub holder: NetNs,
    pub peer: NetNs,
}

impl Lab {
    /// Two namespaces on one segment: holder 192.0.2.1/24, peer 192.0.2.2/24, IPv6 link-locals
    /// without DAD (so the holder's link-local is usable as an NA source at once).
    pub fn new() -> Lab {
        let holder = NetNs::new().unwrap();
        let peer = NetNs::new().unwrap();
        for ns in [&holder, &peer] {
            ns.sysctl("net.ipv6.conf.default.accept_dad", "0").unwrap();
        }
        veth(&holder, HOLDER_IF, &peer, PEER_IF).unwrap();
        holder
            .ip(&["addr", "add", "192.0.2.1/24", "dev", HOLDER_IF])
            .unwrap();
        peer.ip(&["addr", "add", "192.0.2.2/24", "dev", PEER_IF])
            .unwrap();
        Lab { holder, peer }
    }

    pub fn holder_mac(&self) -> MacAddr {
        self.holder.mac(HOLDER_IF).unwrap()
    }

    /// The holder's link-local address as `ip` sees it.
    pub fn holder_link_local(&self) -> Ipv6Addr {
        let addrs = addresses(&self.holder, HOLDER_IF);
        addrs
            .iter()
            .find(|a| a.family == "inet6" && a.scope == "link")
            .map(|a| a.local.parse().unwrap())
            .expect("holder has a link-local address")
    }
}

/// One entry of `ip -j addr`'s addr_info, as an operator would read it.
#[derive(Debug, Deserialize)]
pub struct AddrInfo {
    pub family: String,
    pub local: String,
    pub prefixlen: u8,
    pub scope: String,
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default)]
    pub deprecated: bool,
    #[serde(default)]
    pub nodad: bool,
    pub valid_life_time: u64,
    pub preferred_life_time: u64,
}

#[derive(Deserialize)]
struct Link {
    addr_info: Vec<AddrInfo>,
}

/// The addresses on an interface, read with `ip -j addr` (independently of kvip's netlink code).
pub fn addresses(ns: &NetNs, ifname: &str) -> Vec<AddrInfo> {
    let json = ns.ip(&["-j", "addr", "show", "dev", ifname]).unwrap();
    let links: Vec<Link> = serde_json::from_str(&json).unwrap();
    links.into_iter().flat_map(|link| link.addr_info).collect()
}

/// Whether a frame is an ARP packet whose sender protocol address is `vip`.
pub fn is_arp_for(frame: &[u8], vip: [u8; 4]) -> bool {
    frame.len() >= 42 && frame[12..14] == [0x08, 0x06] && frame[28..32] == vip
}

/// Whether a frame is an ICMPv6 neighbour advertisement.
pub fn is_neighbour_advert(frame: &[u8]) -> bool {
    frame.len() >= 78 && frame[12..14] == [0x86, 0xdd] && frame[20] == 58 && frame[54] == 136
}
