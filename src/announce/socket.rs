//! The one raw socket per interface that every announcement goes through.
//!
//! kube-vip opens and closes an AF_PACKET socket for every packet; closing one waits for an RCU
//! grace period (~16 ms measured here), which is why it cannot announce quickly. kvip opens a
//! pnet datalink channel once and keeps it for the daemon's life, so a refresh is one `sendto`
//! (a few µs). Three details matter for a socket that lives forever:
//!
//! - **Not promiscuous.** pnet's default config puts the NIC into promiscuous mode; kvip only
//!   sends, so it turns that off.
//! - **Receives nothing.** pnet binds an `ETH_P_ALL` socket, which would get a copy of every
//!   frame on the interface, queue them (nobody reads) and cost CPU on a busy node. kvip creates
//!   the socket itself and attaches a one-instruction BPF filter that drops everything before
//!   pnet binds it, so the kernel discards incoming frames before copying them.
//! - **A write timeout.** A send waits at most [`WRITE_TIMEOUT`] for room in the queue, so a
//!   stuck qdisc can never block the daemon; the frame is then counted as failed.

use std::io;
use std::time::Duration;

use pnet::datalink::{self, Channel, DataLinkSender, NetworkInterface};

use super::AnnounceError;
use crate::address::Interface;

/// How long one send may wait for room in the socket's queue.
pub const WRITE_TIMEOUT: Duration = Duration::from_millis(20);

/// A long-lived, send-only AF_PACKET socket bound to one interface.
pub struct RawLink {
    sender: Box<dyn DataLinkSender>,
    interface: String,
}

impl RawLink {
    /// Opens the socket on the interface. Needs CAP_NET_RAW.
    pub fn open(interface: &Interface) -> Result<Self, AnnounceError> {
        let open_error = |error: io::Error| AnnounceError::Open {
            interface: interface.name.clone(),
            hint: if matches!(error.raw_os_error(), Some(libc::EPERM | libc::EACCES)) {
                "; sending gratuitous ARP / NA needs CAP_NET_RAW: run kvip as root or add NET_RAW to the container's securityContext.capabilities"
            } else {
                ""
            },
            error,
        };
        let fd = drop_all_socket().map_err(open_error)?;
        let target = NetworkInterface {
            name: interface.name.clone(),
            description: String::new(),
            index: interface.index,
            mac: interface.mac,
            ips: Vec::new(),
            flags: 0,
        };
        let config = datalink::Config {
            write_timeout: Some(WRITE_TIMEOUT),
            read_buffer_size: 64,
            promiscuous: false,
            socket_fd: Some(fd),
            ..Default::default()
        };
        // pnet owns the fd from here on and closes it on error or drop.
        match datalink::channel(&target, config).map_err(open_error)? {
            Channel::Ethernet(sender, _receiver) => Ok(Self {
                sender,
                interface: interface.name.clone(),
            }),
            _ => Err(open_error(io::Error::other(
                "pnet returned a non-Ethernet channel",
            ))),
        }
    }

    /// Hands one complete Ethernet frame to the kernel.
    pub fn send(&mut self, frame: &[u8]) -> Result<(), AnnounceError> {
        let send_error = |error: io::Error| AnnounceError::Send {
            interface: self.interface.clone(),
            error,
        };
        match self.sender.send_to(frame, None) {
            Some(Ok(())) => Ok(()),
            Some(Err(err)) => Err(send_error(err)),
            None => Err(send_error(io::Error::other(
                "frame larger than the write buffer",
            ))),
        }
    }
}

/// An AF_PACKET socket with a drop-everything BPF filter already attached.
fn drop_all_socket() -> io::Result<i32> {
    // Protocol 0: the socket receives nothing until pnet binds it, and by then the filter is on.
    // SAFETY: plain socket(2) call; the result is checked.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // `ret #0`: accept zero bytes of every packet, i.e. drop it.
    let mut drop_all = [libc::sock_filter {
        code: (libc::BPF_RET | libc::BPF_K) as u16,
        jt: 0,
        jf: 0,
        k: 0,
    }];
    let program = libc::sock_fprog {
        len: 1,
        filter: drop_all.as_mut_ptr(),
    };
    // SAFETY: `program` points at a live one-instruction filter; the kernel copies it.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            (&program as *const libc::sock_fprog).cast(),
            std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        let err = io::Error::last_os_error();
        // SAFETY: fd came from socket(2) above and is not used afterwards.
        unsafe { libc::close(fd) };
        return Err(err);
    }
    Ok(fd)
}
