//! The kernel-enforced fence (how long the VIP may outlive its last refresh) and the IPv4 label.

use std::time::Duration;

use super::{AddressError, Vip};

/// What the fence leaves for the kernel's own timing: up to 1 s of lifetime-worker rounding
/// plus 1 s of margin for scheduling on a loaded node.
pub const FENCE_MARGIN: Duration = Duration::from_secs(2);

/// The valid lifetime to give the VIP after a successful lease acquisition or renewal whose
/// request was *sent* `since_request` ago, or `None` if there is no safe lifetime left (then do
/// not refresh: let the VIP expire and step down).
///
/// Another node can take the lease at the earliest `lease_duration` after it observed this
/// renewal, which is after the request was sent. Counting from the send, the kernel removes the
/// VIP at the latest `lease_duration - FENCE_MARGIN + 1 s`, i.e. at least 1 s before anyone else
/// can hold the lease, without trusting any clock but the local monotonic one. With kube-vip's
/// defaults (lease 15 s, renew deadline 10 s, retry 2 s) that is ~13 s, longer than the renew
/// deadline, so a healthy leader that cannot reach the API server for a while keeps the VIP until
/// it steps down on its own.
pub fn fence_lifetime(lease_duration: Duration, since_request: Duration) -> Option<Duration> {
    let left = lease_duration
        .checked_sub(since_request)?
        .checked_sub(FENCE_MARGIN)?;
    let whole = Duration::from_secs(left.as_secs());
    (whole >= Duration::from_secs(1)).then_some(whole)
}

/// The kernel counts lifetimes in whole seconds; round down (a fence must never be longer than
/// asked), refuse less than one second, and keep clear of `u32::MAX`, which means "forever".
pub(super) fn lifetime_secs(vip: Vip, lifetime: Duration) -> Result<u32, AddressError> {
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
    use std::time::Duration;

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
    fn fence_expires_before_another_node_can_take_the_lease() {
        let lease = Duration::from_secs(15);
        assert_eq!(
            fence_lifetime(lease, Duration::from_millis(30)),
            Some(Duration::from_secs(12))
        );
        assert_eq!(
            fence_lifetime(lease, Duration::ZERO),
            Some(Duration::from_secs(13))
        );
        // The worst case: removed at lifetime + 1 s after the refresh, still before 15 s.
        let since = Duration::from_millis(1500);
        let removed_by = since + fence_lifetime(lease, since).unwrap() + Duration::from_secs(1);
        assert!(removed_by < lease, "{removed_by:?}");
    }

    #[test]
    fn no_fence_is_left_when_the_renewal_took_too_long() {
        let lease = Duration::from_secs(15);
        assert_eq!(fence_lifetime(lease, Duration::from_millis(12_500)), None);
        assert_eq!(fence_lifetime(lease, Duration::from_secs(20)), None);
        assert_eq!(fence_lifetime(Duration::from_secs(2), Duration::ZERO), None);
    }
}
