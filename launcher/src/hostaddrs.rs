//! The host's own interface addresses, which the policy walls off (`blocked_networks`,
//! contract B): the private ranges sandbox-init blocks anyway do not cover a host's public
//! IPv4 or global IPv6 address, and a service listening there is the host. Reading them is the
//! effect ([`system`], through the `if-addrs` crate: `getifaddrs` on Linux and macOS without
//! `unsafe` here); turning them into policy entries is pure ([`blocked_networks`]).
//!
//! An IPv6 address that comes and goes (SLAAC, privacy extensions, DHCPv6: a finite lifetime)
//! is walled off with its whole interface prefix (/64 up to /127), not only as itself: hosts
//! with privacy extensions (the desktop default) make a new temporary address in that prefix
//! every day, long after `up` wrote the policy, and the container would reach the host on it.
//! That prefix is the host's own segment (its router and neighbours included), as the
//! container's on-link prefixes are. A permanent address (configured by hand or by a daemon:
//! Docker's bridges, whose prefixes hold other containers and, in the tests, the lab's public
//! hosts) stays a /128, as IPv4 addresses stay /32. Linux tells the two apart in
//! `/proc/net/if_inet6` (`IFA_F_PERMANENT`); elsewhere every IPv6 address counts as moving.

use jailoc_policy::IpNet;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};

/// One address of a host interface and the prefix it may move within (its interface prefix
/// for an IPv6 address that comes and goes, else its own length: 32 or 128).
pub type HostAddr = (IpAddr, u8);

/// `IFA_F_PERMANENT` (linux/if_addr.h): an address without a lifetime.
const IFA_F_PERMANENT: u32 = 0x80;

/// Where Linux lists every IPv6 address with its prefix length and flags.
const IF_INET6: &str = "/proc/net/if_inet6";

/// IPv6 interface prefixes from this length to /127 are walled off whole (SLAAC needs /64;
/// a shorter one is no single segment).
pub const MIN_V6_PREFIX: u8 = 64;

/// Every address of every interface of this host, with the prefix it may move within (both
/// families, loopback included; the filter is [`blocked_networks`]). Only reads the interface
/// list (and `/proc/net/if_inet6` on Linux): no traffic.
pub fn system() -> std::io::Result<Vec<HostAddr>> {
    let interfaces = if_addrs::get_if_addrs()?.into_iter().map(|i| match i.addr {
        if_addrs::IfAddr::V4(a) => (IpAddr::V4(a.ip), a.prefixlen),
        if_addrs::IfAddr::V6(a) => (IpAddr::V6(a.ip), a.prefixlen),
    });
    let if_inet6 = std::fs::read_to_string(IF_INET6).ok();
    Ok(moving_within(interfaces, if_inet6.as_deref()))
}

/// `interfaces` (address, interface prefix length) as [`HostAddr`]s: an IPv4 address and a
/// permanent IPv6 address (per `if_inet6`, the text of `/proc/net/if_inet6`) keep their own
/// length, an IPv6 address with a lifetime its interface prefix; without `if_inet6` (not
/// Linux) every IPv6 address keeps its interface prefix. Pure.
pub fn moving_within(
    interfaces: impl IntoIterator<Item = (IpAddr, u8)>,
    if_inet6: Option<&str>,
) -> Vec<HostAddr> {
    let table: Option<HashMap<Ipv6Addr, (u8, u32)>> = if_inet6.map(parse_if_inet6);
    interfaces
        .into_iter()
        .map(|(addr, prefix)| match addr {
            IpAddr::V4(_) => (addr, 32),
            IpAddr::V6(v6) => match table.as_ref().map(|t| t.get(&v6)) {
                None => (addr, prefix),
                Some(Some((plen, flags))) if flags & IFA_F_PERMANENT == 0 => (addr, *plen),
                Some(_) => (addr, 128),
            },
        })
        .collect()
}

/// `/proc/net/if_inet6`: `ADDR IFINDEX PLEN SCOPE FLAGS NAME` a line, numbers in hex; a line
/// that does not parse is skipped.
fn parse_if_inet6(text: &str) -> HashMap<Ipv6Addr, (u8, u32)> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let [addr, _, plen, _, flags, ..] = f[..] else {
                return None;
            };
            let addr = Ipv6Addr::from(u128::from_str_radix(addr, 16).ok()?);
            let plen = u8::from_str_radix(plen, 16).ok()?;
            let flags = u32::from_str_radix(flags, 16).ok()?;
            Some((addr, (plen, flags)))
        })
        .collect()
}

/// `addrs` as `blocked_networks` entries: loopback and the unspecified address left out, an
/// IPv4 address as a /32, an IPv6 one as the prefix it may move within when that is /64 to
/// /127 (see the module comment) and as a /128 otherwise; sorted (IPv4 first, then by value)
/// and de-duplicated.
pub fn blocked_networks(addrs: impl IntoIterator<Item = HostAddr>) -> Vec<IpNet> {
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
        .map(|&(a, len)| IpNet::new(a, len).expect("a prefix length within the family's"))
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
            entries(addrs),
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

    /// `blocked_networks` of `addrs`, as text.
    fn entries(addrs: Vec<HostAddr>) -> Vec<String> {
        blocked_networks(addrs)
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    /// `/proc/net/if_inet6` of a desktop with a Docker network that has a global prefix:
    /// wlan0's stable SLAAC address (`mngtmpaddr`, 0x100) and today's temporary one (0x01),
    /// both with lifetimes; docker0's permanent address (0x80); link-local and loopback.
    const IF_INET6_TEXT: &str = "\
20010db8000100000000000000000a11 03 40 00 100    wlan0
20010db80001000000000000c33d4401 03 40 00 01    wlan0
20010db8000200000000000000000001 05 40 00 80  docker0
fe800000000000000000000000000001 03 40 20 80    wlan0
00000000000000000000000000000001 01 80 10 80       lo
not a line
";

    /// The host's IPv6 privacy addresses rotate: the one it has at `up` is gone a day later,
    /// replaced by a new one in the same /64, which the container would reach the host on
    /// (through the gateway, to a listener on `[::]`) had only the address been walled off.
    /// The prefix is, so every later temporary address is too. Docker's permanent bridge
    /// address stays a /128 (other containers on that network stay reachable, as before), and
    /// the host's public IPv4 neighbours stay reachable (an IPv4 address does not rotate).
    #[test]
    fn attack_host_on_a_temporary_ipv6_address_made_after_up_is_walled_off() {
        let interfaces = host(&[
            ("2001:db8:1::a11", 64),
            ("2001:db8:1::c33d:4401", 64),
            ("2001:db8:2::1", 64),
            ("fe80::1", 64),
            ("::1", 128),
            ("203.0.113.7", 24),
        ]);
        let blocked = blocked_networks(moving_within(interfaces.clone(), Some(IF_INET6_TEXT)));
        assert_eq!(
            blocked.iter().map(ToString::to_string).collect::<Vec<_>>(),
            [
                "203.0.113.7/32",
                "2001:db8:1::/64",
                "2001:db8:2::1/128",
                "fe80::1/128"
            ]
        );
        let later: IpAddr = "2001:db8:1::5e6:f7".parse().expect("addr");
        assert!(
            blocked.iter().any(|e| e.contains(&later)),
            "the host's next temporary address is open: {blocked:?}"
        );
        for open in ["203.0.113.8", "2001:db8:2::10"] {
            let open: IpAddr = open.parse().expect("addr");
            assert!(
                !blocked.iter().any(|e| e.contains(&open)),
                "{open}: {blocked:?}"
            );
        }
        // Without /proc/net/if_inet6 (macOS): every IPv6 address is taken as moving.
        assert_eq!(
            entries(moving_within(interfaces, None)),
            [
                "203.0.113.7/32",
                "2001:db8:1::/64",
                "2001:db8:2::/64",
                "fe80::/64"
            ]
        );
    }

    /// Reads this machine's interfaces (no traffic): loopback exists on every test machine and
    /// never appears in the result; an IPv4 entry is a /32, an IPv6 one /64 or longer.
    #[test]
    fn reads_this_hosts_addresses_without_loopback() {
        let addrs = system().expect("getifaddrs");
        assert!(addrs.iter().any(|(a, _)| a.is_loopback()), "{addrs:?}");
        for e in blocked_networks(addrs).iter().map(ToString::to_string) {
            let (a, len) = e.split_once('/').expect("prefix");
            let len: u8 = len.parse().expect("length");
            match a.parse::<IpAddr>().expect("addr") {
                IpAddr::V4(a) => assert!(len == 32 && !a.is_loopback(), "{e}"),
                IpAddr::V6(a) => assert!(len >= MIN_V6_PREFIX && !a.is_loopback(), "{e}"),
            }
        }
    }
}
