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
//!   runs out, before another node can take the lease. Measured on this kernel: an IPv4 address
//!   with valid lifetime *v* seconds disappears between *v* and *v* + 1 s after the last refresh
//!   (the kernel's lifetime worker is rounded up to whole seconds), e.g. `valid_lft 2` → removed
//!   2.05 s later. So the rule is `valid_lifetime + 1 s < lease_duration` (see the README).
//! - **Watch, don't poll.** [`Addresses::watch`] subscribes to the kernel's address and link
//!   notifications, so the owner learns within milliseconds that someone deleted the VIP or that
//!   the interface flapped, and can put it back and announce again.
//! - **Idempotent.** Adding a present VIP replaces it (and so refreshes it); removing an absent VIP
//!   succeeds. Every other kernel error names the operation, the address, the interface and the
//!   errno, with a hint when the fix is known (EPERM → CAP_NET_ADMIN).
//!
//! This module never decides anything: the daemon's supervisor owns leadership and tells it what
//! to do. The product code talks netlink only; it never runs `ip`.

mod interface;
mod watch;

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use futures::TryStreamExt;
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags, AddressMessage, CacheInfo};

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

/// Everything that can go wrong between kvip and the kernel's address table.
///
/// Each message names what was being done, on which interface, and what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum AddressError {
    /// The NETLINK_ROUTE socket could not be opened (out of file descriptors, seccomp, …).
    #[error("cannot open a NETLINK_ROUTE socket: {0}")]
    Connect(std::io::Error),
    /// The configured interface does not exist in this network namespace.
    #[error(
        "interface `{name}` does not exist (interfaces here: {available}); set --interface / vip_interface to one of them"
    )]
    NoSuchInterface {
        /// The name that was asked for.
        name: String,
        /// The names that do exist, comma separated.
        available: String,
    },
    /// The interface exists but is not up, and the operator did not allow that.
    #[error(
        "interface `{name}` is not up (operational state {state}); bring it up, or set vip_allow_interface_not_up=true / --allowInterfaceNotUp to start anyway"
    )]
    InterfaceDown {
        /// The interface name.
        name: String,
        /// The kernel's operational state, e.g. `DOWN` or `LOWERLAYERDOWN`.
        state: String,
    },
    /// No interface was configured and there is no default route to take one from.
    #[error(
        "no interface configured and no IPv4 or IPv6 default route to take it from; set --interface / vip_interface"
    )]
    NoDefaultRoute,
    /// A valid lifetime the kernel cannot express.
    #[error(
        "valid lifetime {lifetime:?} for {vip}: the kernel counts whole seconds, so it must be at least 1 s"
    )]
    InvalidLifetime {
        /// The VIP it was meant for.
        vip: Vip,
        /// The lifetime asked for.
        lifetime: Duration,
    },
    /// The kernel refused a request; `errno` is the kernel's answer.
    #[error("{op} {target} on interface `{interface}`: {reason} (errno {errno}){hint}")]
    Kernel {
        /// What was being done: "add", "remove", "list addresses of", …
        op: &'static str,
        /// The address (or object) it was done to.
        target: String,
        /// The interface name.
        interface: String,
        /// The positive errno the kernel returned.
        errno: i32,
        /// The errno's text.
        reason: String,
        /// What to do about it, when known (starts with "; ").
        hint: &'static str,
    },
    /// The netlink exchange itself failed (connection task gone, undecodable answer).
    #[error("{op} {target} on interface `{interface}`: netlink request failed: {detail}")]
    Netlink {
        /// What was being done.
        op: &'static str,
        /// The address (or object) it was done to.
        target: String,
        /// The interface name.
        interface: String,
        /// rtnetlink's description.
        detail: String,
    },
}

impl AddressError {
    /// The kernel's errno, when the kernel refused the request.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Self::Kernel { errno, .. } => Some(*errno),
            _ => None,
        }
    }

    /// Turns an rtnetlink error into one that names the operation, target and interface.
    pub(crate) fn from_rtnetlink(
        op: &'static str,
        target: impl fmt::Display,
        interface: &str,
        err: rtnetlink::Error,
    ) -> Self {
        match errno_of(&err) {
            Some(errno) => Self::Kernel {
                op,
                target: target.to_string(),
                interface: interface.to_string(),
                errno,
                reason: std::io::Error::from_raw_os_error(errno).to_string(),
                hint: hint_for(errno),
            },
            None => Self::Netlink {
                op,
                target: target.to_string(),
                interface: interface.to_string(),
                detail: err.to_string(),
            },
        }
    }
}

/// The positive errno inside an rtnetlink error, if the kernel sent one.
pub(crate) fn errno_of(err: &rtnetlink::Error) -> Option<i32> {
    match err {
        rtnetlink::Error::NetlinkError(msg) => msg.code.map(|code| code.get().abs()),
        _ => None,
    }
}

fn hint_for(errno: i32) -> &'static str {
    match errno {
        libc::EPERM | libc::EACCES => {
            "; changing addresses needs CAP_NET_ADMIN: run kvip as root or add NET_ADMIN to the container's securityContext.capabilities"
        }
        libc::ENODEV => "; the interface disappeared: check --interface / vip_interface",
        _ => "",
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

/// The kernel counts lifetimes in whole seconds; round down (a fence must never be longer than
/// asked), refuse less than one second, and keep clear of `u32::MAX`, which means "forever".
fn lifetime_secs(vip: Vip, lifetime: Duration) -> Result<u32, AddressError> {
    let secs = lifetime.as_secs();
    if secs == 0 {
        return Err(AddressError::InvalidLifetime { vip, lifetime });
    }
    Ok(u32::try_from(secs)
        .unwrap_or(u32::MAX - 1)
        .min(u32::MAX - 1))
}

/// The kernel's longest interface or label name, without the trailing NUL (IFNAMSIZ - 1).
pub const LABEL_MAX: usize = 15;

/// The IPv4 label that shows the VIP's owner in `ip addr`: `<ifname>:kvip`, cut to the kernel's
/// 15 bytes.
///
/// Names up to 10 bytes get the full suffix (`eth0:kvip`). Longer names get a shortened suffix
/// (`enp0s31f6abc:kv`). A name of 14 or 15 bytes leaves room for at most the colon, so the label
/// is the interface name itself, which is the kernel's own default label.
pub fn ipv4_label(ifname: &str) -> String {
    let full = format!("{ifname}:kvip");
    if ifname.len() + 2 > LABEL_MAX {
        return ifname.chars().take(LABEL_MAX).collect();
    }
    let mut label = String::with_capacity(LABEL_MAX);
    for ch in full.chars() {
        if label.len() + ch.len_utf8() > LABEL_MAX {
            break;
        }
        label.push(ch);
    }
    label
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_has_the_full_suffix_when_it_fits() {
        assert_eq!(ipv4_label("eth0"), "eth0:kvip");
        assert_eq!(ipv4_label("enp0s31f6a"), "enp0s31f6a:kvip");
        assert_eq!(ipv4_label("enp0s31f6a").len(), 15);
    }

    #[test]
    fn label_suffix_is_cut_for_long_names() {
        assert_eq!(ipv4_label("enp0s31f6abc"), "enp0s31f6abc:kv");
        assert_eq!(ipv4_label("enp0s31f6abcd"), "enp0s31f6abcd:k");
    }

    #[test]
    fn label_is_the_interface_name_when_no_suffix_fits() {
        assert_eq!(ipv4_label("abcdefghijklmn"), "abcdefghijklmn");
        assert_eq!(ipv4_label("abcdefghijklmno"), "abcdefghijklmno");
    }

    #[test]
    fn lifetime_is_whole_seconds_rounded_down_and_at_least_one() {
        let vip = Vip::host("192.0.2.10".parse().unwrap());
        assert_eq!(lifetime_secs(vip, Duration::from_millis(2999)).unwrap(), 2);
        assert!(matches!(
            lifetime_secs(vip, Duration::from_millis(999)),
            Err(AddressError::InvalidLifetime { .. })
        ));
        assert_eq!(lifetime_secs(vip, Duration::MAX).unwrap(), u32::MAX - 1);
    }

    #[test]
    fn host_vip_prefix_follows_the_family() {
        assert_eq!(Vip::host("192.0.2.10".parse().unwrap()).prefix_len, 32);
        assert_eq!(
            Vip::host("2001:db8::10".parse().unwrap()).to_string(),
            "2001:db8::10/128"
        );
    }
}
