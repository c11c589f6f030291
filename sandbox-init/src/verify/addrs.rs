//! The container's own addresses (probing them proves nothing: loopback is accepted) and the
//! interface link-local IPv6 probes go out on, from `/proc/net/fib_trie` and
//! `/proc/net/if_inet6` (pure parsers; the mode reads the files).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The local addresses: IPv4's `/32 host LOCAL` entries of `fib_trie`, every address of
/// `if_inet6`.
pub(crate) fn local(fib_trie: &str, if_inet6: &str) -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = Vec::new();
    let mut last: Option<Ipv4Addr> = None;
    for line in fib_trie.lines() {
        let line = line.trim();
        if let Some(addr) = line.strip_prefix("|-- ") {
            last = addr.trim().parse().ok();
        } else if line == "/32 host LOCAL" {
            if let Some(addr) = last {
                if !out.contains(&IpAddr::V4(addr)) {
                    out.push(IpAddr::V4(addr));
                }
            }
        }
    }
    for fields in if_inet6
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
    {
        let Some(addr) = fields
            .first()
            .filter(|hex| hex.len() == 32)
            .and_then(|hex| u128::from_str_radix(hex, 16).ok())
        else {
            continue;
        };
        let addr = IpAddr::V6(Ipv6Addr::from(addr));
        if !out.contains(&addr) {
            out.push(addr);
        }
    }
    out
}

/// The index of the first interface besides `lo` in `if_inet6` (0 when there is none).
pub(crate) fn scope(if_inet6: &str) -> u32 {
    if_inet6
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.get(5).is_some_and(|name| *name != "lo"))
        .and_then(|f| f.get(1).and_then(|i| u32::from_str_radix(i, 16).ok()))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Docker container's `fib_trie` (kernel 6.x), trimmed to the two tables.
    const FIB_TRIE: &str = "\
Main:
  +-- 0.0.0.0/0 3 0 5
     |-- 0.0.0.0
        /0 universe UNICAST
     +-- 127.0.0.0/8 2 0 2
        +-- 127.0.0.0/31 1 0 0
           |-- 127.0.0.0
              /8 host LOCAL
           |-- 127.0.0.1
              /32 host LOCAL
        |-- 127.255.255.255
           /32 link BROADCAST
     +-- 172.17.0.0/16 2 0 2
        +-- 172.17.0.0/30 2 0 2
           |-- 172.17.0.0
              /16 link UNICAST
           |-- 172.17.0.2
              /32 host LOCAL
Local:
  +-- 0.0.0.0/0 3 0 5
           |-- 172.17.0.2
              /32 host LOCAL
";
    const IF_INET6: &str = "\
00000000000000000000000000000001 01 80 10 80       lo
fe80000000000000004242fffeac1102 1b 40 20 80     eth0
";

    #[test]
    fn own_addresses_are_the_local_hosts_and_every_ipv6_address() {
        let got: Vec<String> = local(FIB_TRIE, IF_INET6)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            got,
            ["127.0.0.1", "172.17.0.2", "::1", "fe80::42:42ff:feac:1102"]
        );
    }

    #[test]
    fn the_scope_is_the_first_interface_but_loopback() {
        assert_eq!(scope(IF_INET6), 0x1b);
        assert_eq!(
            scope("00000000000000000000000000000001 01 80 10 80 lo\n"),
            0
        );
        assert_eq!(scope(""), 0);
    }
}
