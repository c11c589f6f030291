//! The address ranges sandbox-init always blocks (unless allowlisted), and the ones a *name* may
//! never open (link-local / cloud metadata). docs/net.md, "What is blocked, and why", says why
//! each is there.

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Blocked IPv4 ranges, with why.
pub const BLOCKED_V4: &[(&str, &str)] = &[
    ("0.0.0.0/8", "\"this network\""),
    ("10.0.0.0/8", "private (RFC 1918)"),
    ("100.64.0.0/10", "carrier-grade NAT (RFC 6598)"),
    (
        "169.254.0.0/16",
        "link-local, cloud metadata 169.254.169.254",
    ),
    (
        "172.16.0.0/12",
        "private (RFC 1918), Docker's default bridges and gateway",
    ),
    ("192.0.0.0/24", "IETF protocol assignments"),
    ("192.168.0.0/16", "private (RFC 1918)"),
    ("198.18.0.0/15", "benchmarking"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved, broadcast"),
    ("168.63.129.16/32", "Azure platform/metadata endpoint"),
];

/// Blocked IPv6 ranges of their own (the NAT64/6to4 forms of [`BLOCKED_V4`] come on top).
pub const BLOCKED_V6: &[(&str, &str)] = &[
    ("fc00::/7", "unique local (ULA), Docker's IPv6 networks"),
    ("fe80::/10", "link-local"),
    (
        "ff00::/8",
        "multicast (neighbour discovery is allowed before this)",
    ),
    ("::ffff:0:0/96", "IPv4-mapped"),
    (
        "64:ff9b:1::/48",
        "local-use NAT64 (RFC 8215): a translator may map it to any IPv4 address, private ones too",
    ),
];

/// Ranges an allowlisted *name* may not open: a DNS answer pointing there is refused unless the
/// user lists the range (or a part of it) in `allowed_networks` themselves.
pub const REFUSED_FOR_NAMES: &[&str] = &[
    "169.254.0.0/16",
    "168.63.129.16/32",
    "fe80::/10",
    "fd00:ec2::254/128", // AWS IMDS over IPv6
    // Local-use NAT64 (RFC 8215): a translator may map it to any IPv4 address, metadata too,
    // and the embedding cannot be read back from the address.
    "64:ff9b:1::/48",
];

fn net(text: &str) -> IpNet {
    // The tables above are constants checked by the unit tests.
    text.parse()
        .unwrap_or_else(|_| unreachable!("bad constant range {text}"))
}

/// [`BLOCKED_V4`] as networks.
pub fn blocked_v4() -> Vec<Ipv4Net> {
    BLOCKED_V4
        .iter()
        .filter_map(|(n, _)| match net(n) {
            IpNet::V4(v4) => Some(v4),
            IpNet::V6(_) => None,
        })
        .collect()
}

/// Every blocked IPv6 range: [`BLOCKED_V6`], then the NAT64 and 6to4 form of each blocked IPv4
/// range.
pub fn blocked_v6() -> Vec<Ipv6Net> {
    let mut out: Vec<Ipv6Net> = BLOCKED_V6
        .iter()
        .filter_map(|(n, _)| match net(n) {
            IpNet::V6(v6) => Some(v6),
            IpNet::V4(_) => None,
        })
        .collect();
    let v4 = blocked_v4();
    out.extend(v4.iter().map(|n| nat64(*n)));
    out.extend(v4.iter().map(|n| sixto4(*n)));
    out
}

/// The built-in blocked range (IPv6: NAT64/6to4 forms included) that contains all of `net`, if
/// any: an extra destination inside one needs no rule of its own.
pub fn covering(net: IpNet) -> Option<IpNet> {
    static V4: std::sync::LazyLock<Vec<Ipv4Net>> = std::sync::LazyLock::new(blocked_v4);
    static V6: std::sync::LazyLock<Vec<Ipv6Net>> = std::sync::LazyLock::new(blocked_v6);
    match net {
        IpNet::V4(n) => V4.iter().find(|b| b.contains(&n)).map(|b| IpNet::V4(*b)),
        IpNet::V6(n) => V6.iter().find(|b| b.contains(&n)).map(|b| IpNet::V6(*b)),
    }
}

/// `10.0.0.0/8` → `64:ff9b::a00:0/104`.
pub fn nat64(v4: Ipv4Net) -> Ipv6Net {
    let bits = 0x0064_ff9b_u128 << 96 | u128::from(u32::from(v4.network()));
    Ipv6Net::new(Ipv6Addr::from(bits), 96 + v4.prefix_len()).unwrap_or_else(|_| unreachable!())
}

/// `10.0.0.0/8` → `2002:a00::/24`.
pub fn sixto4(v4: Ipv4Net) -> Ipv6Net {
    let bits = 0x2002_u128 << 112 | u128::from(u32::from(v4.network())) << 80;
    Ipv6Net::new(Ipv6Addr::from(bits), 16 + v4.prefix_len()).unwrap_or_else(|_| unreachable!())
}

/// The IPv4 address an IPv6 address carries in its mapped, NAT64 or 6to4 form, if any.
pub fn embedded_v4(addr: Ipv6Addr) -> Option<Ipv4Addr> {
    let bits = u128::from(addr);
    let low32 = Ipv4Addr::from((bits & 0xffff_ffff) as u32);
    if let Some(v4) = addr.to_ipv4_mapped() {
        return Some(v4);
    }
    if bits >> 32 == 0x0064_ff9b_u128 << 64 {
        return Some(low32);
    }
    if bits >> 112 == 0x2002 {
        return Some(Ipv4Addr::from(((bits >> 80) & 0xffff_ffff) as u32));
    }
    None
}

/// The refused range `addr` falls in (looking through embedded IPv4 forms), if any.
pub fn refused_range(addr: IpAddr) -> Option<IpNet> {
    // Parsed once: this runs for every resolved address.
    static REFUSED: std::sync::LazyLock<Vec<IpNet>> =
        std::sync::LazyLock::new(|| REFUSED_FOR_NAMES.iter().map(|n| net(n)).collect());
    let refused = &*REFUSED;
    let direct = refused.iter().find(|n| n.contains(&addr)).copied();
    direct.or_else(|| match addr {
        IpAddr::V6(v6) => {
            let v4 = IpAddr::V4(embedded_v4(v6)?);
            refused.iter().find(|n| n.contains(&v4)).copied()
        }
        IpAddr::V4(_) => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants_parse() {
        for (n, _) in BLOCKED_V4.iter().chain(BLOCKED_V6) {
            let parsed: IpNet = n.parse().expect(n);
            assert_eq!(parsed.trunc(), parsed, "{n} has host bits");
        }
        assert_eq!(blocked_v4().len(), BLOCKED_V4.len());
        assert_eq!(blocked_v6().len(), BLOCKED_V6.len() + 2 * BLOCKED_V4.len());
    }

    #[test]
    fn nat64_and_6to4_forms() {
        let ten: Ipv4Net = "10.0.0.0/8".parse().expect("net");
        assert_eq!(nat64(ten).to_string(), "64:ff9b::a00:0/104");
        assert_eq!(sixto4(ten).to_string(), "2002:a00::/24");
        let azure: Ipv4Net = "168.63.129.16/32".parse().expect("net");
        assert_eq!(nat64(azure).to_string(), "64:ff9b::a83f:8110/128");
        assert_eq!(sixto4(azure).to_string(), "2002:a83f:8110::/48");
        let meta: Ipv6Addr = "64:ff9b::169.254.169.254".parse().expect("addr");
        assert!(blocked_v6().iter().any(|n| n.contains(&meta)));
        let docker_gw: Ipv6Addr = "2002:ac11:1::".parse().expect("addr");
        assert!(blocked_v6().iter().any(|n| n.contains(&docker_gw)));
        let public: Ipv6Addr = "64:ff9b::c000:201".parse().expect("addr"); // 192.0.2.1
        assert!(!blocked_v6().iter().any(|n| n.contains(&public)));
    }

    #[test]
    fn documentation_ranges_stay_reachable() {
        for addr in ["192.0.2.1", "198.51.100.7", "203.0.113.9", "2001:db8::1"] {
            let addr: IpAddr = addr.parse().expect("addr");
            let blocked = match addr {
                IpAddr::V4(a) => blocked_v4().iter().any(|n| n.contains(&a)),
                IpAddr::V6(a) => blocked_v6().iter().any(|n| n.contains(&a)),
            };
            assert!(!blocked, "{addr} must not be blocked");
        }
    }

    #[test]
    fn covering_finds_the_built_in_range_that_holds_a_whole_network() {
        let c = |n: &str| covering(n.parse().expect("net")).map(|n| n.to_string());
        assert_eq!(c("172.17.0.1/32").as_deref(), Some("172.16.0.0/12"));
        assert_eq!(c("172.17.0.0/16").as_deref(), Some("172.16.0.0/12"));
        assert_eq!(c("fe80::/64").as_deref(), Some("fe80::/10"));
        assert_eq!(
            c("64:ff9b::ac11:1/128").as_deref(),
            Some("64:ff9b::ac10:0/108")
        );
        // Only partly inside, or outside: no.
        assert_eq!(c("172.0.0.0/8"), None);
        assert_eq!(c("203.0.113.7/32"), None);
        assert_eq!(c("2001:db8:17::/64"), None);
    }

    #[test]
    fn refused_ranges_see_through_embedded_forms() {
        let r = |a: &str| refused_range(a.parse().expect("addr")).map(|n| n.to_string());
        assert_eq!(r("169.254.169.254").as_deref(), Some("169.254.0.0/16"));
        assert_eq!(r("168.63.129.16").as_deref(), Some("168.63.129.16/32"));
        assert_eq!(r("fe80::1").as_deref(), Some("fe80::/10"));
        assert_eq!(r("fd00:ec2::254").as_deref(), Some("fd00:ec2::254/128"));
        assert_eq!(
            r("::ffff:169.254.169.254").as_deref(),
            Some("169.254.0.0/16")
        );
        assert_eq!(r("64:ff9b::a9fe:a9fe").as_deref(), Some("169.254.0.0/16"));
        assert_eq!(r("2002:a9fe:a9fe::1").as_deref(), Some("169.254.0.0/16"));
        assert_eq!(r("10.0.0.1"), None);
        assert_eq!(r("fd00::1"), None);
    }
}
