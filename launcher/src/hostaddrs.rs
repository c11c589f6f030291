//! The host's own interface addresses, which the policy walls off (`blocked_networks`,
//! contract B): the private ranges sandbox-init blocks anyway do not cover a host's public
//! IPv4 or global IPv6 address, and a service listening there is the host. Reading them is the
//! effect ([`system`], through the `if-addrs` crate: `getifaddrs` on Linux and macOS without
//! `unsafe` here); turning them into policy entries is pure ([`blocked_networks`]).

use jailoc_policy::IpNet;
use std::net::IpAddr;

/// Every address of every interface of this host (both families, loopback included; the
/// filter is [`blocked_networks`]). Only reads the interface list: no traffic.
pub fn system() -> std::io::Result<Vec<IpAddr>> {
    Ok(if_addrs::get_if_addrs()?
        .into_iter()
        .map(|i| i.ip())
        .collect())
}

/// `addrs` as `blocked_networks` entries: loopback and the unspecified address left out, each
/// address as a /32 or /128, sorted (IPv4 first, then by value) and de-duplicated.
pub fn blocked_networks(addrs: impl IntoIterator<Item = IpAddr>) -> Vec<IpNet> {
    let mut v: Vec<IpAddr> = addrs
        .into_iter()
        .filter(|a| !a.is_loopback() && !a.is_unspecified())
        .collect();
    v.sort();
    v.dedup();
    v.into_iter().map(IpNet::from).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_non_loopback_address_once_sorted_as_host_prefixes() {
        let addrs: Vec<IpAddr> = [
            "2001:db8::7",
            "203.0.113.7",
            "127.0.0.1",
            "::1",
            "198.51.100.2",
            "203.0.113.7",
            "fe80::1",
            "0.0.0.0",
            "172.17.0.1",
        ]
        .iter()
        .map(|a| a.parse().expect("addr"))
        .collect();
        let entries: Vec<String> = blocked_networks(addrs)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            entries,
            [
                "172.17.0.1/32",
                "198.51.100.2/32",
                "203.0.113.7/32",
                "2001:db8::7/128",
                "fe80::1/128"
            ]
        );
    }

    /// Reads this machine's interfaces (no traffic): loopback exists on every test machine and
    /// never appears in the result; every entry is a host prefix.
    #[test]
    fn reads_this_hosts_addresses_without_loopback() {
        let addrs = system().expect("getifaddrs");
        assert!(addrs.iter().any(IpAddr::is_loopback), "{addrs:?}");
        for e in blocked_networks(addrs).iter().map(ToString::to_string) {
            assert!(e.ends_with("/32") || e.ends_with("/128"), "{e}");
            assert!(!e.starts_with("127.") && e != "::1/128", "{e}");
        }
    }
}
