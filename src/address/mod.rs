//! The VIP on the interface, over netlink, with a kernel-enforced lifetime fence.
//!
//! # Why this shape
//!
//! - **One long-lived netlink connection.** [`Addresses`] opens one `NETLINK_ROUTE` socket and
//!   keeps it (its connection task runs on the caller's tokio runtime), so adding the VIP on
//!   takeover is one request and one ACK (~50 µs), not a socket setup.
//! - **Preferred lifetime 0.** Like kube-vip, the VIP is added *deprecated*, so the kernel never
//!   picks it as the source address of the node's own connections (RFC 3484 / 6724 rule 3).
//! - **A finite valid lifetime is the fence.** The holder refreshes the lifetime on every
//!   successful lease renewal ([`Addresses::refresh_lifetime`]). If kvip is SIGKILLed, OOM-killed
//!   or frozen, nobody refreshes, and the kernel deletes the address by itself when the lifetime
//!   runs out, before another node can take the lease. The kernel's lifetime worker counts whole
//!   seconds, checks up to 20 ms early and is scheduled rounded up to the next second, so an
//!   address with valid lifetime *v* disappears between *v* − 20 ms and *v* + 1 s after the last
//!   refresh; measured here (IPv4 and IPv6, v = 1, 2, 3, 5 s): *v* + 0.02 s to *v* + 0.27 s. The
//!   daemon's `fence` module turns this bound into a lifetime.
//! - **Watch, don't poll.** [`Addresses::watch`] subscribes to the kernel's address and link
//!   notifications, so the owner learns within milliseconds that someone deleted the VIP or that
//!   the interface flapped, and can put it back and announce again.
//! - **Idempotent.** Adding a present VIP replaces it (and so refreshes it); removing an absent VIP
//!   succeeds. Every other kernel error names the operation, the address, the interface and the
//!   errno, with a hint when the fix is known (EPERM → CAP_NET_ADMIN).
//!
//! This module never decides anything: the daemon's supervisor owns leadership and tells it what
//! to do. The product code talks netlink only; it never runs `ip`.

mod attributes;
mod error;
mod interface;
mod watch;

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use futures::TryStreamExt;
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags, AddressMessage, CacheInfo};

use attributes::lifetime_secs;
pub use attributes::{LABEL_MAX, ipv4_label};
pub use error::AddressError;
pub(crate) use error::errno_of;
pub use interface::{Interface, resolve_interface};
pub use watch::InterfaceEvent;

/// A virtual IP and its prefix length, as the configuration produces it and the kernel stores it.
///
/// The prefix is normally /32 (IPv4) or /128 (IPv6), so the kernel adds no subnet route for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Vip {
    /// The address itself.
    pub addr: IpAddr,
    /// Prefix length given to the kernel (32 / 128 for a host address).
    pub prefix_len: u8,
}

impl Vip {
    /// A host VIP: /32 for IPv4, /128 for IPv6, which is what a control-plane VIP nearly always is.
    pub fn host(addr: IpAddr) -> Self {
        let prefix_len = if addr.is_ipv4() { 32 } else { 128 };
        Self { addr, prefix_len }
    }
}

impl fmt::Display for Vip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

/// How VIPs are added, beyond address and lifetime.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AddressOptions {
    /// Set IFA_F_NODAD on IPv6 VIPs (kube-vip's `vip_skipdad`), so the address is usable at once
    /// instead of after duplicate address detection (~1 s, and it fails while the old holder still
    /// answers).
    pub skip_dad: bool,
}

/// What the kernel says about a VIP's lifetimes, read back over netlink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressLifetime {
    /// Seconds until the kernel deprecates the address (0: already deprecated, as kvip adds it).
    pub preferred_secs: u32,
    /// Seconds until the kernel deletes the address (`u32::MAX`: forever).
    pub valid_secs: u32,
}

/// The handle the daemon uses to put its VIPs on one interface and take them off.
///
/// Holds the one long-lived netlink connection; its connection task runs on the tokio runtime
/// that created it and ends when this is dropped. Cheap to share by reference; every method
/// takes `&self`.
pub struct Addresses {
    handle: rtnetlink::Handle,
    interface: Interface,
    options: AddressOptions,
    connection: tokio::task::JoinHandle<()>,
}

impl Drop for Addresses {
    fn drop(&mut self) {
        self.connection.abort();
    }
}

/// Opens a NETLINK_ROUTE connection and spawns its task on the current tokio runtime.
pub(crate) fn connect() -> Result<(rtnetlink::Handle, tokio::task::JoinHandle<()>), AddressError> {
    let (connection, handle, _) = rtnetlink::new_connection().map_err(AddressError::Connect)?;
    Ok((handle, tokio::spawn(connection)))
}

impl Addresses {
    /// Connects to the kernel and resolves the interface (`None`: the default route's interface).
    ///
    /// Must be called inside a tokio runtime. `allow_not_up` is kube-vip's
    /// `vip_allow_interface_not_up`: without it a down interface is an error.
    pub async fn open(
        interface: Option<&str>,
        allow_not_up: bool,
        options: AddressOptions,
    ) -> Result<Self, AddressError> {
        let (handle, connection) = connect()?;
        let interface = match interface::resolve_with(&handle, interface, allow_not_up).await {
            Ok(found) => found,
            Err(err) => {
                connection.abort();
                return Err(err);
            }
        };
        Ok(Self {
            handle,
            interface,
            options,
            connection,
        })
    }

    /// The interface the VIPs go on, as resolved when this handle was opened.
    pub fn interface(&self) -> &Interface {
        &self.interface
    }

    /// Puts the VIP on the interface with preferred lifetime 0 and the given valid lifetime (the
    /// fence). Succeeds quietly if the VIP is already there, and then refreshes its lifetime.
    pub async fn add(&self, vip: Vip, valid_lifetime: Duration) -> Result<(), AddressError> {
        self.upsert("add", vip, valid_lifetime).await
    }

    /// Extends the VIP's valid lifetime; call it on every successful lease renewal.
    ///
    /// One netlink request with NLM_F_REPLACE (~50 µs). If the VIP had vanished, the kernel
    /// creates it again (both IPv4 and IPv6 treat a replace of a missing address as an add), which
    /// is what a leader wants.
    pub async fn refresh_lifetime(
        &self,
        vip: Vip,
        valid_lifetime: Duration,
    ) -> Result<(), AddressError> {
        self.upsert("refresh the lifetime of", vip, valid_lifetime)
            .await
    }

    async fn upsert(
        &self,
        op: &'static str,
        vip: Vip,
        valid_lifetime: Duration,
    ) -> Result<(), AddressError> {
        let valid_secs = lifetime_secs(vip, valid_lifetime)?;
        let mut request = self
            .handle
            .address()
            .add(self.interface.index, vip.addr, vip.prefix_len)
            .replace();
        let message = request.message_mut();
        let mut cache = CacheInfo::default();
        cache.ifa_preferred = 0;
        cache.ifa_valid = valid_secs;
        message.attributes.push(AddressAttribute::CacheInfo(cache));
        match vip.addr {
            IpAddr::V4(_) => {
                let label = ipv4_label(&self.interface.name);
                message.attributes.push(AddressAttribute::Label(label));
            }
            IpAddr::V6(_) if self.options.skip_dad => {
                message
                    .attributes
                    .push(AddressAttribute::Flags(AddressFlags::Nodad));
            }
            IpAddr::V6(_) => {}
        }
        request
            .execute()
            .await
            .map_err(|err| AddressError::from_rtnetlink(op, vip, &self.interface.name, err))
    }

    /// Takes the VIP off the interface. Succeeds quietly if it is not there.
    pub async fn remove(&self, vip: Vip) -> Result<(), AddressError> {
        let message = self.vip_message(vip);
        match self.handle.address().del(message).execute().await {
            Ok(()) => Ok(()),
            Err(err) if errno_of(&err) == Some(libc::EADDRNOTAVAIL) => Ok(()),
            Err(err) => Err(AddressError::from_rtnetlink(
                "remove",
                vip,
                &self.interface.name,
                err,
            )),
        }
    }

    /// Whether the VIP (address and prefix length) is on the interface right now.
    pub async fn is_present(&self, vip: Vip) -> Result<bool, AddressError> {
        Ok(self.find(vip).await?.is_some())
    }

    /// The VIP's lifetimes as the kernel reports them, or `None` if it is not on the interface.
    pub async fn lifetime(&self, vip: Vip) -> Result<Option<AddressLifetime>, AddressError> {
        let Some(message) = self.find(vip).await? else {
            return Ok(None);
        };
        let lifetime = message.attributes.iter().find_map(|attr| match attr {
            AddressAttribute::CacheInfo(info) => Some(AddressLifetime {
                preferred_secs: info.ifa_preferred,
                valid_secs: info.ifa_valid,
            }),
            _ => None,
        });
        Ok(lifetime)
    }

    /// Subscribes to address and link notifications for this interface.
    ///
    /// Opens a second, multicast netlink socket (so a burst of notifications can never delay the
    /// add/refresh requests on the main one) and a task that forwards the events that concern this
    /// interface. Dropping the receiver ends the task and closes the socket. If the kernel drops
    /// notifications because the receiver fell behind (ENOBUFS), events can be lost; the refresh
    /// on every lease renewal re-creates a missing VIP anyway.
    pub async fn watch(&self) -> Result<tokio::sync::mpsc::Receiver<InterfaceEvent>, AddressError> {
        watch::spawn(&self.interface)
    }

    async fn find(&self, vip: Vip) -> Result<Option<AddressMessage>, AddressError> {
        let mut request = self
            .handle
            .address()
            .get()
            .set_link_index_filter(self.interface.index)
            .set_address_filter(vip.addr)
            .set_prefix_length_filter(vip.prefix_len);
        request.message_mut().header.family = family_of(vip.addr);
        let mut stream = Box::pin(request.execute());
        stream
            .try_next()
            .await
            .map_err(|err| AddressError::from_rtnetlink("look up", vip, &self.interface.name, err))
    }

    fn vip_message(&self, vip: Vip) -> AddressMessage {
        let mut message = AddressMessage::default();
        message.header.family = family_of(vip.addr);
        message.header.prefix_len = vip.prefix_len;
        message.header.index = self.interface.index;
        message.attributes.push(AddressAttribute::Local(vip.addr));
        message.attributes.push(AddressAttribute::Address(vip.addr));
        message
    }
}

fn family_of(addr: IpAddr) -> AddressFamily {
    match addr {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_vip_prefix_follows_the_family() {
        assert_eq!(Vip::host("192.0.2.10".parse().unwrap()).prefix_len, 32);
        assert_eq!(
            Vip::host("2001:db8::10".parse().unwrap()).to_string(),
            "2001:db8::10/128"
        );
    }
}
