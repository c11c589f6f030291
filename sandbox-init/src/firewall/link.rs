//! The container's own link: its gateways and on-link prefixes, read at boot from
//! `/proc/net/route` and `/proc/net/ipv6_route`, and whether it has IPv6 at all
//! (`/proc/net/if_inet6`). Pure parsers here; the boot reads the files.
//!
//! Why: the built-in blocked ranges catch the host only where Docker puts it, on a private
//! bridge address. A host reachable on a public IPv4 address or a global IPv6 address of the
//! agent's link (Docker with a global IPv6 prefix, macvlan/ipvlan, pasta copying the host's
//! addresses) and the other containers on that link are not in any private range. The gateway of
//! every route is the host (or a router next to it), and every on-link prefix is the host's
//! segment: both are refused like a blocked range, whatever their addresses are.
//!
//! Parsing is bounded: at most [`MAX_ROUTES`] lines per file are read, a line with the wrong
//! number of fields or a malformed number is skipped (and counted), and nothing indexes blindly.

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Lines read per routing file; a container has a handful. More are ignored with a warning.
pub const MAX_ROUTES: usize = 4096;

/// The shortest on-link prefixes that are walled off. A wider "on-link" route (e.g.
/// `0.0.0.0/1 dev tun0` of a VPN sharing the namespace) is not a link to the host: refusing it
/// would refuse nearly everything, so it is left alone (with a warning).
pub const MIN_ONLINK_V4: u8 = 8;
/// See [`MIN_ONLINK_V4`].
pub const MIN_ONLINK_V6: u8 = 16;

/// Where an extra blocked destination came from (`--print-plan` shows it).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Origin {
    /// The gateway of a route on this device: the host, or a router on the host's side.
    Gateway { dev: String },
    /// A prefix routed straight onto this device: the host's segment, other containers.
    OnLink { dev: String },
    /// The policy's `blocked_networks` (the launcher lists the host's own addresses there).
    Policy,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Gateway { dev } => write!(f, "gateway on {dev}"),
            Origin::OnLink { dev } => write!(f, "on-link prefix of {dev}"),
            Origin::Policy => f.write_str("blocked_networks"),
        }
    }
}

/// One destination refused besides the built-in ranges.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Extra {
    pub dest: IpNet,
    pub origin: Origin,
}

/// What one routing file yielded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Routes {
    /// Gateways and on-link prefixes, in file order, each once.
    pub found: Vec<Extra>,
    /// Why something was left out (malformed lines, too-wide prefixes, too many lines).
    pub warnings: Vec<String>,
}

// Route flags (linux/route.h, linux/ipv6_route.h).
const RTF_UP: u32 = 0x0001;
const RTF_GATEWAY: u32 = 0x0002;
const RTF_REJECT: u32 = 0x0200;
const RTF_ANYCAST: u32 = 0x0010_0000;
/// A cached/exception route (a PMTU or redirect entry for one destination): not the link.
const RTF_CACHE: u32 = 0x0100_0000;
const RTF_LOCAL: u32 = 0x8000_0000;

/// What one route line says, family-neutral.
struct Route<'a> {
    dev: &'a str,
    dest: IpNet,
    gateway: Option<IpAddr>,
    flags: u32,
}

/// Parses `/proc/net/route` (IPv4, the main table): `Iface Destination Gateway Flags RefCnt Use
/// Metric Mask MTU Window IRTT`, addresses as the kernel's in-memory u32 in hex.
pub fn parse_ipv4_routes(text: &str) -> Routes {
    parse_lines(text, "/proc/net/route", |fields| {
        let [dev, dest, gateway, flags, _, _, _, mask, _, _, _] = fields else {
            return None;
        };
        let dest = v4(dest)?;
        let mask = u32::from(v4(mask)?);
        if mask.leading_ones() != mask.count_ones() {
            return None;
        }
        let len = u8::try_from(mask.leading_ones()).ok()?;
        let gateway = v4(gateway)?;
        Some(Route {
            dev,
            dest: IpNet::V4(Ipv4Net::new(dest, len).ok()?.trunc()),
            gateway: (!gateway.is_unspecified()).then_some(IpAddr::V4(gateway)),
            flags: u32::from_str_radix(flags, 16).ok()?,
        })
    })
}

/// Parses `/proc/net/ipv6_route` (every table): `dest plen src src_plen nexthop metric refcnt use
/// flags dev`, addresses as 32 hex digits.
pub fn parse_ipv6_routes(text: &str) -> Routes {
    parse_lines(text, "/proc/net/ipv6_route", |fields| {
        let [dest, plen, _, _, nexthop, _, _, _, flags, dev] = fields else {
            return None;
        };
        let len = u8::from_str_radix(plen, 16).ok()?;
        let nexthop = v6(nexthop)?;
        Some(Route {
            dev,
            dest: IpNet::V6(Ipv6Net::new(v6(dest)?, len).ok()?.trunc()),
            gateway: (!nexthop.is_unspecified()).then_some(IpAddr::V6(nexthop)),
            flags: u32::from_str_radix(flags, 16).ok()?,
        })
    })
}

fn parse_lines<'a>(
    text: &'a str,
    file: &str,
    parse: impl Fn(&[&'a str]) -> Option<Route<'a>>,
) -> Routes {
    let mut routes = Routes::default();
    let mut malformed = 0usize;
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    for line in lines.by_ref().take(MAX_ROUTES) {
        let fields: Vec<&str> = line.split_whitespace().take(12).collect();
        if fields.first() == Some(&"Iface") {
            continue; // /proc/net/route's header
        }
        match parse(&fields) {
            Some(route) => consider(route, &mut routes),
            None => malformed += 1,
        }
    }
    if lines.next().is_some() {
        routes.warnings.push(format!(
            "{file} has more than {MAX_ROUTES} routes: only the first {MAX_ROUTES} were read"
        ));
    }
    if malformed > 0 {
        routes
            .warnings
            .push(format!("{file}: skipped {malformed} malformed lines"));
    }
    routes
}

/// Adds what one route contributes: its gateway, or (without one) its on-link prefix.
fn consider(route: Route<'_>, routes: &mut Routes) {
    let skip = route.flags & RTF_UP == 0
        || route.flags & (RTF_REJECT | RTF_LOCAL | RTF_ANYCAST | RTF_CACHE) != 0
        || route.dev == "lo"
        || route.dest.addr().is_multicast();
    if skip {
        return;
    }
    let dev = route.dev.to_owned();
    let extra = match route.gateway {
        Some(gw) if route.flags & RTF_GATEWAY != 0 => Extra {
            dest: IpNet::from(gw),
            origin: Origin::Gateway { dev },
        },
        // A next hop without the gateway flag, or the flag without a next hop: not a route
        // the kernel writes; nothing to learn from it.
        Some(_) => return,
        None if route.flags & RTF_GATEWAY != 0 => return,
        None => {
            let min = match route.dest {
                IpNet::V4(_) => MIN_ONLINK_V4,
                IpNet::V6(_) => MIN_ONLINK_V6,
            };
            if route.dest.prefix_len() < min {
                routes.warnings.push(format!(
                    "on-link prefix {} of {dev} is wider than /{min}: left open (it is no link to the host)",
                    route.dest
                ));
                return;
            }
            Extra {
                dest: route.dest,
                origin: Origin::OnLink { dev },
            }
        }
    };
    if !routes.found.iter().any(|e| e.dest == extra.dest) {
        routes.found.push(extra);
    }
}

/// `010011AC` (the kernel's u32 in this machine's byte order) → 172.17.0.1.
fn v4(hex: &str) -> Option<Ipv4Addr> {
    if hex.len() != 8 {
        return None;
    }
    Some(Ipv4Addr::from(
        u32::from_str_radix(hex, 16).ok()?.to_ne_bytes(),
    ))
}

/// 32 hex digits → the IPv6 address.
fn v6(hex: &str) -> Option<Ipv6Addr> {
    if hex.len() != 32 {
        return None;
    }
    Some(Ipv6Addr::from(u128::from_str_radix(hex, 16).ok()?))
}

/// Every extra destination, in rule order: the policy's `blocked_networks` first, then the
/// gateways and on-link prefixes; each destination once (the first origin wins).
pub fn extras(policy_blocked: &[IpNet], link: &[Extra]) -> Vec<Extra> {
    let mut out: Vec<Extra> = Vec::new();
    let policy = policy_blocked.iter().map(|dest| Extra {
        dest: *dest,
        origin: Origin::Policy,
    });
    for extra in policy.chain(link.iter().cloned()) {
        if !out.iter().any(|e| e.dest == extra.dest) {
            out.push(extra);
        }
    }
    out
}

/// The container's own link, from the text of `/proc/net/route` and `/proc/net/ipv6_route`:
/// IPv4's gateways and on-link prefixes, then IPv6's, with both parsers' warnings.
pub fn read(route: &str, ipv6_route: &str) -> Routes {
    let v4 = parse_ipv4_routes(route);
    let v6 = parse_ipv6_routes(ipv6_route);
    Routes {
        found: v4.found.into_iter().chain(v6.found).collect(),
        warnings: v4.warnings.into_iter().chain(v6.warnings).collect(),
    }
}

/// Whether `/proc/net/if_inet6` (its text) lists an address on an interface other than `lo`:
/// then a missing IPv6 firewall is fatal.
pub fn ipv6_present(if_inet6: &str) -> bool {
    if_inet6
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .any(|ifname| ifname != "lo")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `ip netns` gives a container on a dual-stack network with a global IPv6 prefix and
    /// a public IPv4 subnet next to Docker's private one (captured on this kernel, 6.18; the
    /// IPv6 table's last line, a cached /128 as a PMTU exception leaves, added by hand).
    const ROUTE: &str = "\
Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t00000000\t010011AC\t0003\t0\t0\t0\t00000000\t0\t0\t0
eth0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0
eth0\t800200C0\t00000000\t0001\t0\t0\t0\tC0FFFFFF\t0\t0\t0
";
    const IPV6_ROUTE: &str = "\
20010db8001700000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0
fd170000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000002 00000000 00000001     eth0
fe800000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 20010db8001700000000000000000001 00000400 00000001 00000000 00000003     eth0
00000000000000000000000000000001 80 00000000000000000000000000000000 00 00000000000000000000000000000000 00000000 00000003 00000000 80200001       lo
20010db8001700000000000000000002 80 00000000000000000000000000000000 00 00000000000000000000000000000000 00000000 00000002 00000000 80200001     eth0
fd170000000000000000000000000002 80 00000000000000000000000000000000 00 00000000000000000000000000000000 00000000 00000003 00000000 80200001     eth0
ff000000000000000000000000000000 08 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo
20010db8000000000000000000000010 80 00000000000000000000000000000000 00 00000000000000000000000000000000 00000000 00000001 00000000 01000001     eth0
";

    fn shown(routes: &Routes) -> Vec<String> {
        routes
            .found
            .iter()
            .map(|e| format!("{} {}", e.dest, e.origin))
            .collect()
    }

    #[test]
    fn ipv4_gateways_and_on_link_prefixes() {
        // The kernel prints its in-memory u32: these fixtures are little-endian, as x86/arm.
        if cfg!(target_endian = "big") {
            return;
        }
        let routes = parse_ipv4_routes(ROUTE);
        assert_eq!(
            shown(&routes),
            [
                "172.17.0.1/32 gateway on eth0",
                "172.17.0.0/16 on-link prefix of eth0",
                "192.0.2.128/26 on-link prefix of eth0",
            ]
        );
        assert!(routes.warnings.is_empty(), "{:?}", routes.warnings);
    }

    #[test]
    fn ipv6_skips_local_multicast_reject_cached_and_loopback_routes() {
        let routes = parse_ipv6_routes(IPV6_ROUTE);
        assert_eq!(
            shown(&routes),
            [
                "2001:db8:17::/64 on-link prefix of eth0",
                "fd17::/64 on-link prefix of eth0",
                "fe80::/64 on-link prefix of eth0",
                "2001:db8:17::1/128 gateway on eth0",
            ]
        );
        assert!(routes.warnings.is_empty(), "{:?}", routes.warnings);
    }

    #[test]
    fn a_default_route_without_a_gateway_is_not_walled_off() {
        if cfg!(target_endian = "big") {
            return;
        }
        // `default dev tun0` and a VPN's 0.0.0.0/1 halves: everything is "on-link" there.
        let text = "tun0\t00000000\t00000000\t0001\t0\t0\t0\t00000000\t0\t0\t0\n\
                    tun0\t00000000\t00000000\t0001\t0\t0\t0\t00000080\t0\t0\t0\n\
                    tun0\t0000000A\t00000000\t0001\t0\t0\t0\t000000FF\t0\t0\t0\n";
        let routes = parse_ipv4_routes(text);
        assert_eq!(shown(&routes), ["10.0.0.0/8 on-link prefix of tun0"]);
        assert_eq!(
            routes.warnings,
            [
                "on-link prefix 0.0.0.0/0 of tun0 is wider than /8: left open (it is no link to the host)",
                "on-link prefix 0.0.0.0/1 of tun0 is wider than /8: left open (it is no link to the host)",
            ]
        );
        let v6 = "00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 00000400 00000001 00000000 00000001     wg0\n";
        assert_eq!(
            parse_ipv6_routes(v6).warnings,
            ["on-link prefix ::/0 of wg0 is wider than /16: left open (it is no link to the host)"]
        );
    }

    #[test]
    fn malformed_lines_are_skipped_and_counted_never_a_panic() {
        let text = "eth0\t0000\t010011AC\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
                    eth0\tZZZZZZZZ\t010011AC\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
                    eth0\t000011AC\t00000000\t0001\t0\t0\t0\t00FF00FF\t0\t0\t0\n\
                    eth0\t000011AC\n\
                    \n\
                    eth0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\textra\n\
                    \u{e9}\u{e9}\u{e9}\t\u{e9}\n";
        let routes = parse_ipv4_routes(text);
        assert!(routes.found.is_empty());
        assert_eq!(
            routes.warnings,
            ["/proc/net/route: skipped 6 malformed lines"]
        );
        let v6 = "fd17 40 00 00 00 00 00 00 00000001 eth0\n\
                  fd170000000000000000000000000000 81 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001 eth0\n\
                  fd170000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 0000000G eth0\n";
        let routes = parse_ipv6_routes(v6);
        assert!(routes.found.is_empty());
        assert_eq!(
            routes.warnings,
            ["/proc/net/ipv6_route: skipped 3 malformed lines"]
        );
        assert_eq!(parse_ipv6_routes(""), Routes::default());
    }

    #[test]
    fn reading_stops_at_the_bound() {
        let line = "fd170000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001 eth0\n";
        let routes = parse_ipv6_routes(&line.repeat(MAX_ROUTES + 1));
        assert_eq!(routes.found.len(), 1, "duplicates collapse");
        assert_eq!(
            routes.warnings,
            ["/proc/net/ipv6_route has more than 4096 routes: only the first 4096 were read"]
        );
    }

    #[test]
    fn policy_entries_come_first_and_every_destination_once() {
        let link = parse_ipv6_routes(IPV6_ROUTE).found;
        let policy: Vec<IpNet> = vec![
            "2001:db8:17::1/128".parse().expect("net"),
            "203.0.113.7/32".parse().expect("net"),
        ];
        let all = extras(&policy, &link);
        let shown: Vec<String> = all
            .iter()
            .map(|e| format!("{} {}", e.dest, e.origin))
            .collect();
        assert_eq!(
            shown,
            [
                "2001:db8:17::1/128 blocked_networks",
                "203.0.113.7/32 blocked_networks",
                "2001:db8:17::/64 on-link prefix of eth0",
                "fd17::/64 on-link prefix of eth0",
                "fe80::/64 on-link prefix of eth0",
            ]
        );
    }

    #[test]
    fn ipv6_presence_ignores_loopback() {
        let lo = "00000000000000000000000000000001 01 80 10 80       lo\n";
        let eth = "fe800000000000000000000000000001 02 40 20 80     eth0\n";
        assert!(!ipv6_present(""));
        assert!(!ipv6_present(lo));
        assert!(ipv6_present(&format!("{lo}{eth}")));
    }
}
