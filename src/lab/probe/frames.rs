//! The probe's frames: what it sends (a broadcast "who has the VIP?", ICMP echo requests) and
//! how it reads what comes back. Pure byte handling, unit-tested without a kernel.

use std::net::Ipv4Addr;

use pnet::util::MacAddr;

use super::Seen;

const ETH_P_ARP: u16 = 0x0806;
const ETH_P_IP: u16 = 0x0800;
/// The ICMP identifier of the probe's echo requests: replies to other pings are not ours.
const PING_ID: u16 = 0x6b76;

/// A broadcast ARP request "who has `vip`? tell `ip`".
pub(super) fn who_has(mac: MacAddr, ip: Ipv4Addr, vip: Ipv4Addr) -> Vec<u8> {
    let mut frame = vec![0xff; 6];
    frame.extend_from_slice(&mac.octets());
    frame.extend_from_slice(&ETH_P_ARP.to_be_bytes());
    frame.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
    frame.extend_from_slice(&mac.octets());
    frame.extend_from_slice(&ip.octets());
    frame.extend_from_slice(&[0; 6]);
    frame.extend_from_slice(&vip.octets());
    frame
}

/// An ICMP echo request with the probe's id and sequence number `seq`.
pub(super) fn echo_request(seq: u16) -> [u8; 16] {
    let mut packet = [0u8; 16];
    packet[0] = 8;
    packet[4..6].copy_from_slice(&PING_ID.to_be_bytes());
    packet[6..8].copy_from_slice(&seq.to_be_bytes());
    packet[8..].copy_from_slice(b"kvip-lab");
    let sum = packet
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum::<u32>();
    let folded = (sum & 0xffff) + (sum >> 16);
    let folded = (folded & 0xffff) + (folded >> 16);
    packet[2..4].copy_from_slice(&(!(folded as u16)).to_be_bytes());
    packet
}

/// What a received frame says about the VIP, if anything.
pub fn classify(frame: &[u8], vip: Ipv4Addr, client: Ipv4Addr) -> Option<(MacAddr, Seen)> {
    let mac = |b: &[u8]| MacAddr::new(b[0], b[1], b[2], b[3], b[4], b[5]);
    let ip = |b: &[u8]| Ipv4Addr::new(b[0], b[1], b[2], b[3]);
    let ethertype = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
    let body = frame.get(14..)?;
    match ethertype {
        ETH_P_ARP if body.len() >= 28 => {
            let (sender_mac, sender_ip, target_ip) =
                (mac(&body[8..14]), ip(&body[14..18]), ip(&body[24..28]));
            if sender_ip != vip {
                return None;
            }
            if target_ip == vip {
                Some((sender_mac, Seen::Garp))
            } else if body[7] == 2 && target_ip == client {
                Some((sender_mac, Seen::ArpReply))
            } else {
                None
            }
        }
        ETH_P_IP if body.len() >= 20 => {
            let header = usize::from(body[0] & 0x0f) * 4;
            let icmp = body.get(header..)?;
            let is_reply = body[9] == 1
                && ip(&body[12..16]) == vip
                && ip(&body[16..20]) == client
                && icmp.len() >= 8
                && icmp[0] == 0
                && icmp[4..6] == PING_ID.to_be_bytes();
            is_reply.then(|| (mac(&frame[6..12]), Seen::EchoReply))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VIP: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 50);
    const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 200);

    #[test]
    fn the_probes_own_question_is_not_a_claim_but_the_answer_is() {
        let me = MacAddr::new(2, 0, 0, 0, 0, 1);
        let ask = who_has(me, CLIENT, VIP);
        assert_eq!(classify(&ask, VIP, CLIENT), None);
        let holder = MacAddr::new(2, 0, 0, 0, 0, 9);
        let mut answer = ask.clone();
        answer[21] = 2; // reply
        answer[22..28].copy_from_slice(&holder.octets());
        answer[28..32].copy_from_slice(&VIP.octets());
        answer[32..38].copy_from_slice(&me.octets());
        answer[38..42].copy_from_slice(&CLIENT.octets());
        assert_eq!(
            classify(&answer, VIP, CLIENT),
            Some((holder, Seen::ArpReply))
        );
    }

    #[test]
    fn a_gratuitous_arp_names_its_sender() {
        let holder = MacAddr::new(2, 0, 0, 0, 0, 9);
        let mut garp = who_has(holder, VIP, VIP);
        garp[38..42].copy_from_slice(&VIP.octets());
        assert_eq!(classify(&garp, VIP, CLIENT), Some((holder, Seen::Garp)));
    }

    #[test]
    fn echo_requests_carry_a_valid_checksum() {
        let packet = echo_request(7);
        let sum: u32 = packet
            .chunks(2)
            .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
            .sum();
        let folded = (sum & 0xffff) + (sum >> 16);
        assert_eq!((folded & 0xffff) + (folded >> 16), 0xffff);
    }
}
