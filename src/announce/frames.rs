//! The frames kvip puts on the wire, built with pnet's packet types.
//!
//! Frames are built once per takeover and then only copied to the socket, so a refresh is one
//! `sendto`. kvip sends exactly what kube-vip sends, so switches and hosts that work with
//! kube-vip work with kvip:
//!
//! | VIP  | frame | Ethernet dst | Ethernet src | payload |
//! |------|-------|--------------|--------------|---------|
//! | IPv4 | gratuitous ARP request | ff:ff:ff:ff:ff:ff | own MAC | op 1, SHA own MAC, SPA VIP, THA ff:ff:ff:ff:ff:ff, TPA VIP |
//! | IPv4 | gratuitous ARP reply | ff:ff:ff:ff:ff:ff | own MAC | op 2, SHA own MAC, SPA VIP, THA own MAC, TPA VIP |
//! | IPv6 | unsolicited neighbour advertisement | 33:33:00:00:00:01 | own MAC | IPv6 src link-local, dst ff02::1, hop limit 255; ICMPv6 136, flags O (not S, not R), target VIP, option 2 (target link-layer address) own MAC |
//!
//! Both ARP forms go out because receivers disagree about which one updates their cache (Linux
//! with `arp_accept=0` ignores unsolicited requests for unknown entries but updates existing ones
//! from either; some switches only learn from requests).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use pnet::packet::arp::{ArpHardwareTypes, ArpOperation, ArpOperations, MutableArpPacket};
use pnet::packet::ethernet::{EtherType, EtherTypes, MutableEthernetPacket};
use pnet::packet::icmpv6::ndp::{
    MutableNeighborAdvertPacket, NdpOption, NdpOptionTypes, NeighborAdvertFlags,
};
use pnet::packet::icmpv6::{self, Icmpv6Code, Icmpv6Packet, Icmpv6Types};
use pnet::packet::ip::IpNextHeaderProtocols;
use pnet::packet::ipv6::MutableIpv6Packet;
use pnet::util::MacAddr;

/// Ethernet header length.
const ETHERNET_LEN: usize = 14;
/// ARP payload for IPv4 over Ethernet.
const ARP_LEN: usize = 28;
/// Length of a gratuitous ARP frame (without the padding the NIC adds to 60 bytes).
pub const ARP_FRAME_LEN: usize = ETHERNET_LEN + ARP_LEN;
const IPV6_LEN: usize = 40;
/// ICMPv6 NA: 4 bytes header, 4 flags/reserved, 16 target, 8 for the link-layer address option.
const NA_LEN: usize = 24 + 8;
/// Length of an unsolicited neighbour advertisement frame.
pub const NA_FRAME_LEN: usize = ETHERNET_LEN + IPV6_LEN + NA_LEN;

/// All-nodes multicast group: every IPv6 host on the link listens to it.
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
/// The Ethernet address of ff02::1 (33:33 followed by the group's last 32 bits, RFC 2464 §7).
pub const ALL_NODES_MAC: MacAddr = MacAddr(0x33, 0x33, 0, 0, 0, 1);

/// Why frames for a VIP cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The interface has no Ethernet address to announce.
    #[error(
        "interface `{interface}` has no Ethernet (6-byte) link-layer address, so there is nothing to announce"
    )]
    NoMac {
        /// The interface name.
        interface: String,
    },
    /// An IPv6 VIP needs a link-local source address and the interface has none.
    #[error(
        "interface `{interface}` has no IPv6 link-local address, which an unsolicited neighbour advertisement for {vip} must come from; check that IPv6 is enabled on it (net.ipv6.conf.{interface}.disable_ipv6=0) and that it is up"
    )]
    NoLinkLocal {
        /// The interface name.
        interface: String,
        /// The VIP that needed it.
        vip: Ipv6Addr,
    },
    /// A link-local VIP cannot be announced with NDP (kube-vip refuses it too).
    #[error("{vip} is an IPv6 link-local address; a VIP must be a global or unique-local address")]
    LinkLocalVip {
        /// The VIP.
        vip: Ipv6Addr,
    },
}

/// A gratuitous ARP request: op 1, SPA = TPA = VIP, THA broadcast (kube-vip's form; RFC 5227
/// uses zeros, and receivers treat both alike).
pub fn arp_request(mac: MacAddr, vip: Ipv4Addr) -> [u8; ARP_FRAME_LEN] {
    arp(mac, vip, ArpOperations::Request, MacAddr::broadcast())
}

/// A gratuitous ARP reply: op 2, SPA = TPA = VIP, THA = own MAC.
pub fn arp_reply(mac: MacAddr, vip: Ipv4Addr) -> [u8; ARP_FRAME_LEN] {
    arp(mac, vip, ArpOperations::Reply, mac)
}

fn arp(
    mac: MacAddr,
    vip: Ipv4Addr,
    operation: ArpOperation,
    target_mac: MacAddr,
) -> [u8; ARP_FRAME_LEN] {
    let mut frame = [0u8; ARP_FRAME_LEN];
    set_ethernet(&mut frame, MacAddr::broadcast(), mac, EtherTypes::Arp);
    if let Some(mut arp) = MutableArpPacket::new(&mut frame[ETHERNET_LEN..]) {
        arp.set_hardware_type(ArpHardwareTypes::Ethernet);
        arp.set_protocol_type(EtherTypes::Ipv4);
        arp.set_hw_addr_len(6);
        arp.set_proto_addr_len(4);
        arp.set_operation(operation);
        arp.set_sender_hw_addr(mac);
        arp.set_sender_proto_addr(vip);
        arp.set_target_hw_addr(target_mac);
        arp.set_target_proto_addr(vip);
    }
    frame
}

/// An unsolicited neighbour advertisement (RFC 4861 §7.2.6): override set, solicited and router
/// clear, to all nodes, from the interface's link-local address, with the target link-layer
/// address option, hop limit 255 (receivers drop NDP with any other) and a valid checksum.
pub fn neighbour_advert(mac: MacAddr, source: Ipv6Addr, vip: Ipv6Addr) -> [u8; NA_FRAME_LEN] {
    let mut frame = [0u8; NA_FRAME_LEN];
    set_ethernet(&mut frame, ALL_NODES_MAC, mac, EtherTypes::Ipv6);
    let ip_start = ETHERNET_LEN;
    let icmp_start = ip_start + IPV6_LEN;
    if let Some(mut ip) = MutableIpv6Packet::new(&mut frame[ip_start..]) {
        ip.set_version(6);
        ip.set_payload_length(NA_LEN as u16);
        ip.set_next_header(IpNextHeaderProtocols::Icmpv6);
        ip.set_hop_limit(255);
        ip.set_source(source);
        ip.set_destination(ALL_NODES);
    }
    if let Some(mut na) = MutableNeighborAdvertPacket::new(&mut frame[icmp_start..]) {
        na.set_icmpv6_type(Icmpv6Types::NeighborAdvert);
        na.set_icmpv6_code(Icmpv6Code(0));
        na.set_flags(NeighborAdvertFlags::Override);
        na.set_target_addr(vip);
        na.set_options(&[NdpOption {
            option_type: NdpOptionTypes::TargetLLAddr,
            length: 1,
            data: mac.octets().to_vec(),
        }]);
    }
    let checksum = Icmpv6Packet::new(&frame[icmp_start..])
        .map(|packet| icmpv6::checksum(&packet, &source, &ALL_NODES))
        .unwrap_or(0);
    if let Some(mut na) = MutableNeighborAdvertPacket::new(&mut frame[icmp_start..]) {
        na.set_checksum(checksum);
    }
    frame
}

fn set_ethernet(frame: &mut [u8], destination: MacAddr, source: MacAddr, ethertype: EtherType) {
    if let Some(mut packet) = MutableEthernetPacket::new(frame) {
        packet.set_destination(destination);
        packet.set_source(source);
        packet.set_ethertype(ethertype);
    }
}

/// Every frame that announces `vip` from an interface: both ARP forms for IPv4, one NA for IPv6.
pub fn frames_for(
    interface: &str,
    mac: Option<MacAddr>,
    link_local: Option<Ipv6Addr>,
    vip: IpAddr,
) -> Result<Vec<Vec<u8>>, FrameError> {
    let mac = mac.ok_or_else(|| FrameError::NoMac {
        interface: interface.to_string(),
    })?;
    match vip {
        IpAddr::V4(vip) => Ok(vec![
            arp_request(mac, vip).to_vec(),
            arp_reply(mac, vip).to_vec(),
        ]),
        IpAddr::V6(vip) if vip.segments()[0] & 0xffc0 == 0xfe80 => {
            Err(FrameError::LinkLocalVip { vip })
        }
        IpAddr::V6(vip) => {
            let source = link_local.ok_or_else(|| FrameError::NoLinkLocal {
                interface: interface.to_string(),
                vip,
            })?;
            Ok(vec![neighbour_advert(mac, source, vip).to_vec()])
        }
    }
}

#[cfg(test)]
mod tests;
