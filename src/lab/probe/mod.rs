//! The client's view of the VIP, measured from the outside.
//!
//! A failover is only over when a client gets answers again, so the lab does not trust the
//! daemons' own logs for it: a probe in the client namespace
//!
//! - pings the VIP every [`PING_EVERY`] (ICMP echo, answered by the holder's kernel: nothing
//!   listens on the VIP in the lab) and records the Ethernet source of every echo reply;
//! - asks "who has the VIP?" by broadcast every [`ASK_EVERY`] and records every ARP reply: a node
//!   that still has the VIP on its interface answers, even if its daemon is dead, which is how a
//!   split brain shows itself to a client that re-resolves;
//! - records every gratuitous ARP for the VIP (sender IP = target IP = VIP) with its sender MAC.
//!
//! Frames are read from one AF_PACKET socket with kernel receive timestamps (`SO_TIMESTAMPNS`,
//! wall clock), converted to the monotonic clock through an anchor taken when the probe starts,
//! so they compare with the [`Instant`]s at which the lab injects faults.
//!
//! The client's neighbour cache is set up like an attentive but ordinary host: `locktime` 0 (an
//! ARP reply replaces the entry at once instead of after up to 1 s: otherwise the probe would
//! measure the client's lock and not the failover) and `arp_accept` 1 (a gratuitous ARP may
//! create an entry). Everything else is the kernel's default.

use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result};
use pnet::util::MacAddr;

use super::netns::NetNs;

mod frames;

pub use frames::classify;
use frames::{echo_request, who_has};

/// How often the probe pings the VIP: the resolution of "first reply".
pub const PING_EVERY: Duration = Duration::from_millis(5);
/// How often the probe asks who has the VIP: the resolution of split-brain detection.
pub const ASK_EVERY: Duration = Duration::from_millis(50);

const ETH_P_ALL: u16 = 0x0003;
const ETH_P_ARP: u16 = 0x0806;
const ICMP_FILTER: libc::c_int = 1;

/// What the client saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// A gratuitous ARP for the VIP: a node announcing that it holds it.
    Garp,
    /// An answer to the probe's "who has the VIP?".
    ArpReply,
    /// An ICMP echo reply from the VIP: the VIP works, through this MAC.
    EchoReply,
}

/// One frame about the VIP, when the kernel received it and from which MAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sighting {
    /// Kernel receive time, on the monotonic clock.
    pub at: Instant,
    /// The MAC that claimed or answered for the VIP.
    pub mac: MacAddr,
    /// What kind of frame it was.
    pub seen: Seen,
}

/// A running probe; stops and closes its sockets on drop.
pub struct Probe {
    sightings: Arc<Mutex<Vec<Sighting>>>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Probe {
    /// Starts probing `vip` from `client`'s `eth0` (address `client_ip`).
    pub fn start(client: &NetNs, client_ip: Ipv4Addr, vip: Ipv4Addr) -> Result<Probe> {
        client.sysctl("net.ipv4.neigh.eth0.locktime", "0")?;
        client.sysctl("net.ipv4.conf.eth0.arp_accept", "1")?;
        let client_mac = client.mac("eth0")?;
        let (packet, icmp, ifindex) = client.run(open_sockets)??;
        let (packet, icmp) = (Arc::new(packet), Arc::new(icmp));
        let sightings = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let receiver = {
            let (packet, sightings, stop) = (packet.clone(), sightings.clone(), stop.clone());
            std::thread::spawn(move || receive(&packet, vip, client_ip, &sightings, &stop))
        };
        let sender = {
            let stop = stop.clone();
            let ask = who_has(client_mac, client_ip, vip);
            std::thread::spawn(move || send(&packet, &icmp, ifindex, &ask, vip, &stop))
        };
        Ok(Probe {
            sightings,
            stop,
            threads: vec![receiver, sender],
        })
    }

    /// Everything seen so far, in order of arrival.
    pub fn sightings(&self) -> Vec<Sighting> {
        self.sightings.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Everything seen at or after `since`.
    pub fn since(&self, since: Instant) -> Vec<Sighting> {
        let mut all = self.sightings();
        all.retain(|s| s.at >= since);
        all
    }

    /// Forgets sightings older than `before` (a long lab run would otherwise grow without end).
    pub fn forget_before(&self, before: Instant) {
        if let Ok(mut s) = self.sightings.lock() {
            s.retain(|s| s.at >= before);
        }
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// Opens, inside the client namespace, the AF_PACKET socket (receive with kernel timestamps;
/// send ARP) and the raw ICMP socket (send echo; receive nothing).
fn open_sockets() -> Result<(OwnedFd, OwnedFd, i32)> {
    // SAFETY: plain socket syscalls; every returned fd is owned at once.
    unsafe {
        let packet = libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW,
            i32::from(ETH_P_ALL.to_be()),
        );
        let packet = owned(packet).context("opening an AF_PACKET socket in the client")?;
        let name = c"eth0";
        let ifindex = i32::try_from(libc::if_nametoindex(name.as_ptr())).unwrap_or(0);
        if ifindex == 0 {
            anyhow::bail!("the client namespace has no eth0");
        }
        let mut addr: libc::sockaddr_ll = std::mem::zeroed();
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = ETH_P_ALL.to_be();
        addr.sll_ifindex = ifindex;
        let rc = libc::bind(
            packet.as_raw_fd(),
            (&raw const addr).cast(),
            size_of::<libc::sockaddr_ll>() as u32,
        );
        check(rc).context("binding the capture to eth0")?;
        setsockopt(&packet, libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, &1i32)
            .context("SO_TIMESTAMPNS")?;
        let timeout = libc::timeval {
            tv_sec: 0,
            tv_usec: 100_000,
        };
        setsockopt(&packet, libc::SOL_SOCKET, libc::SO_RCVTIMEO, &timeout)?;
        let icmp = libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP);
        let icmp = owned(icmp).context("opening a raw ICMP socket in the client")?;
        // Replies are read from the capture (it knows the Ethernet source); drop them here.
        setsockopt(&icmp, libc::SOL_RAW, ICMP_FILTER, &u32::MAX)?;
        Ok((packet, icmp, ifindex))
    }
}

fn owned(fd: i32) -> std::io::Result<OwnedFd> {
    check(fd)?;
    // SAFETY: `fd` was just returned by socket(2) and nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn check(rc: i32) -> std::io::Result<()> {
    if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn setsockopt<T>(fd: &OwnedFd, level: i32, name: i32, value: &T) -> std::io::Result<()> {
    // SAFETY: `value` points to a live T of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (value as *const T).cast(),
            size_of::<T>() as u32,
        )
    };
    check(rc)
}

fn send(
    packet: &OwnedFd,
    icmp: &OwnedFd,
    ifindex: i32,
    ask: &[u8],
    vip: Ipv4Addr,
    stop: &AtomicBool,
) {
    // SAFETY: zeroed sockaddrs are valid; the fields that matter are set below.
    let (mut to_vip, mut to_all): (libc::sockaddr_in, libc::sockaddr_ll) =
        unsafe { (std::mem::zeroed(), std::mem::zeroed()) };
    to_vip.sin_family = libc::AF_INET as u16;
    to_vip.sin_addr.s_addr = u32::from_ne_bytes(vip.octets());
    to_all.sll_family = libc::AF_PACKET as u16;
    to_all.sll_protocol = ETH_P_ARP.to_be();
    to_all.sll_ifindex = ifindex;
    to_all.sll_halen = 6;
    to_all.sll_addr[..6].copy_from_slice(&[0xff; 6]);
    let mut seq: u16 = 0;
    let mut next_ask = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        seq = seq.wrapping_add(1);
        let ping = echo_request(seq);
        // Send errors (no neighbour yet, queue full) are the blackout itself: keep going.
        // SAFETY: buffers and addresses are live for the calls.
        unsafe {
            libc::sendto(
                icmp.as_raw_fd(),
                ping.as_ptr().cast(),
                ping.len(),
                libc::MSG_DONTWAIT,
                (&raw const to_vip).cast(),
                size_of::<libc::sockaddr_in>() as u32,
            );
            if Instant::now() >= next_ask {
                next_ask += ASK_EVERY;
                libc::sendto(
                    packet.as_raw_fd(),
                    ask.as_ptr().cast(),
                    ask.len(),
                    libc::MSG_DONTWAIT,
                    (&raw const to_all).cast(),
                    size_of::<libc::sockaddr_ll>() as u32,
                );
            }
        }
        std::thread::sleep(PING_EVERY);
    }
}

fn receive(
    packet: &OwnedFd,
    vip: Ipv4Addr,
    client: Ipv4Addr,
    sightings: &Mutex<Vec<Sighting>>,
    stop: &AtomicBool,
) {
    let anchor = (Instant::now(), SystemTime::now());
    let mut buf = [0u8; 2048];
    let mut control = [0u64; 16];
    while !stop.load(Ordering::Relaxed) {
        // SAFETY: zeroed msghdr/sockaddr_ll are valid; every pointer set refers to live buffers.
        let (len, from, stamp) = unsafe {
            let mut from: libc::sockaddr_ll = std::mem::zeroed();
            let mut iov = libc::iovec {
                iov_base: buf.as_mut_ptr().cast(),
                iov_len: buf.len(),
            };
            let mut msg: libc::msghdr = std::mem::zeroed();
            msg.msg_name = (&raw mut from).cast();
            msg.msg_namelen = size_of::<libc::sockaddr_ll>() as u32;
            msg.msg_iov = &raw mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = control.as_mut_ptr().cast();
            // `socklen_t` on musl, `size_t` on glibc; the buffer is a few dozen bytes either way.
            msg.msg_controllen = size_of_val(&control) as _;
            let len = libc::recvmsg(packet.as_raw_fd(), &raw mut msg, 0);
            let mut stamp = None;
            let mut cmsg = libc::CMSG_FIRSTHDR(&raw const msg);
            while !cmsg.is_null() {
                if (*cmsg).cmsg_level == libc::SOL_SOCKET
                    && (*cmsg).cmsg_type == libc::SCM_TIMESTAMPNS
                {
                    let ts =
                        std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::timespec>());
                    stamp = Some(Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32));
                }
                cmsg = libc::CMSG_NXTHDR(&raw const msg, cmsg);
            }
            (len, from, stamp)
        };
        let Ok(len) = usize::try_from(len) else {
            continue; // timeout: check `stop`
        };
        if from.sll_pkttype == libc::PACKET_OUTGOING {
            continue;
        }
        let Some((mac, seen)) = classify(&buf[..len], vip, client) else {
            continue;
        };
        let at = stamp
            .and_then(|stamp| {
                let wall = SystemTime::UNIX_EPOCH + stamp;
                match wall.duration_since(anchor.1) {
                    Ok(after) => Some(anchor.0 + after),
                    Err(before) => anchor.0.checked_sub(before.duration()),
                }
            })
            .unwrap_or_else(Instant::now);
        if let Ok(mut s) = sightings.lock() {
            s.push(Sighting { at, mac, seen });
        }
    }
}
