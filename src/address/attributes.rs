//! How a VIP's attributes are encoded for the kernel: its valid lifetime and its IPv4 label.

use std::time::Duration;

use super::{AddressError, Vip};

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
}
