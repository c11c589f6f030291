//! The host's own interface addresses, which the policy walls off (`blocked_networks`,
//! contract B): the private ranges sandbox-init blocks anyway do not cover a host's public
//! IPv4 or global IPv6 address, and a service listening there is the host. Reading them is the
//! effect ([`system`], through the `if-addrs` crate: `getifaddrs` on Linux and macOS without
//! `unsafe` here); turning them into policy entries is pure ([`blocked_networks`]).
//!
//! An IPv6 address on a SLAAC prefix (/64 up to /127) is walled off with its whole prefix, not
//! only as itself: hosts with privacy extensions (the desktop default) make a new temporary
//! address in that prefix every day, long after `up` wrote the policy, and the container would
//! reach the host on it. The prefix is the host's own segment (its router and neighbours
//! included), as the container's on-link prefixes are. IPv4 addresses stay /32.

use std::net::{IpAddr, Ipv6Addr};

/// One address of a host interface and the length of its interface prefix.
pub type HostAddr = (IpAddr, u8);

/// IPv6 interface prefixes from this length to /127 are walled off whole (SLAAC needs /64;
/// a shorter one is no single segment).
pub const MIN_V6_PREFIX: u8 = 64;

/// Every address of every interface of this host, with its prefix length (both families,
/// loopback included; the filter is [`blocked_networks`]). Only reads the interface list: no
/// traffic.
pub fn system() -> std::io::Result<Vec<HostAddr>> {
    Ok(if_addrs::get_if_addrs()?
        .into_iter()
        .map(|i| match i.addr {
            if_addrs::IfAddr::V4(a) => (IpAddr::V4(a.ip), a.prefixlen),
            if_addrs::IfAddr::V6(a) => (IpAddr::V6(a.ip), a.prefixlen),
        })
        .collect())
}

/// `addrs` as `blocked_networks` entries: loopback and the unspecified address left out, an
/// IPv4 address as a /32, an IPv6 one as its interface prefix when that is /64 to /127 (see the
/// module comment) and as a /128 otherwise; sorted (IPv4 first, then by value) and
/// de-duplicated.
pub fn blocked_networks(addrs: impl IntoIterator<Item = HostAddr>) -> Vec<String> {
    let mut v: Vec<(IpAddr, u8)> = addrs
        .into_iter()
        .filter(|(a, _)| !a.is_loopback() && !a.is_unspecified())
        .map(|(a, prefix)| match a {
            IpAddr::V4(_) => (a, 32),
            IpAddr::V6(v6) if (MIN_V6_PREFIX..128).contains(&prefix) => {
                let mask = u128::MAX << (128 - u32::from(prefix));
                (IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask)), prefix)
            }
            IpAddr::V6(_) => (a, 128),
        })
        .collect();
    v.sort();
    v.dedup();
    // A /128 inside a walled-off prefix of the same host adds nothing.
    let covered = |(a, len): &(IpAddr, u8)| {
        *len == 128
            && v.iter().any(|(n, plen)| {
                *plen < 128
                    && matches!((n, a), (IpAddr::V6(n), IpAddr::V6(a))
                        if u128::from(*n) ^ u128::from(*a) < 1u128 << (128 - u32::from(*plen)))
            })
    };
    v.iter()
        .filter(|e| !covered(e))
        .map(|(a, len)| format!("{a}/{len}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(list: &[(&str, u8)]) -> Vec<HostAddr> {
        list.iter()
            .map(|(a, p)| (a.parse().expect("addr"), *p))
            .collect()
    }

    #[test]
    fn every_non_loopback_address_once_sorted() {
        let addrs = host(&[
            ("2001:db8::7", 128),
            ("203.0.113.7", 24),
            ("127.0.0.1", 8),
            ("::1", 128),
            ("198.51.100.2", 32),
            ("203.0.113.7", 24),
            ("fe80::1", 64),
            ("0.0.0.0", 0),
            ("172.17.0.1", 16),
            ("2001:db8:5::9", 48),
        ]);
        assert_eq!(
            blocked_networks(addrs),
            [
                "172.17.0.1/32",
                "198.51.100.2/32",
                "203.0.113.7/32",
                "2001:db8::7/128",
                "2001:db8:5::9/128",
                "fe80::/64"
            ]
        );
    }

    /// Whether the entry `entry` (`ADDR/LEN`) holds `addr`.
    fn covers(entry: &str, addr: IpAddr) -> bool {
        let (net, len) = entry.split_once('/').expect("a prefix");
        let len: u32 = len.parse().expect("length");
        match (net.parse().expect("addr"), addr) {
            (IpAddr::V4(n), IpAddr::V4(a)) => (u32::from(n) ^ u32::from(a)).leading_zeros() >= len,
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                (u128::from(n) ^ u128::from(a)).leading_zeros() >= len
            }
            _ => false,
        }
    }

    /// The host's IPv6 privacy addresses rotate: the one it has at `up` is gone a day later,
    /// replaced by a new one in the same /64, which the container would reach the host on
    /// (through the gateway, to a listener on `[::]`) had only the address been walled off.
    /// The prefix is, so every later temporary address is too; the host's public IPv4
    /// neighbours stay reachable (an IPv4 address does not rotate).
    #[test]
    fn attack_host_on_a_temporary_ipv6_address_made_after_up_is_walled_off() {
        let blocked = blocked_networks(host(&[
            ("2001:db8:1::a11:b22", 64),
            ("2001:db8:1::5", 128),
            ("203.0.113.7", 24),
        ]));
        assert_eq!(blocked, ["203.0.113.7/32", "2001:db8:1::/64"]);
        let later: IpAddr = "2001:db8:1::c33:d44".parse().expect("addr");
        assert!(
            blocked.iter().any(|e| covers(e, later)),
            "the host's next temporary address is open: {blocked:?}"
        );
        let neighbour: IpAddr = "203.0.113.8".parse().expect("addr");
        assert!(!blocked.iter().any(|e| covers(e, neighbour)), "{blocked:?}");
    }

    /// Reads this machine's interfaces (no traffic): loopback exists on every test machine and
    /// never appears in the result; an IPv4 entry is a /32, an IPv6 one /64 or longer.
    #[test]
    fn reads_this_hosts_addresses_without_loopback() {
        let addrs = system().expect("getifaddrs");
        assert!(addrs.iter().any(|(a, _)| a.is_loopback()), "{addrs:?}");
        for e in blocked_networks(addrs) {
            let (a, len) = e.split_once('/').expect("prefix");
            let len: u8 = len.parse().expect("length");
            match a.parse::<IpAddr>().expect("addr") {
                IpAddr::V4(a) => assert!(len == 32 && !a.is_loopback(), "{e}"),
                IpAddr::V6(a) => assert!(len >= MIN_V6_PREFIX && !a.is_loopback(), "{e}"),
            }
        }
    }
}
