//! Why a packet was refused, in words: the same tables the rules were rendered from (the
//! built-in ranges with their "why", the extra destinations with their origin), looked at in
//! the order that says the most — the rules' own order only decides *that* a packet is refused.

use super::packet::{Packet, Proto};
use crate::firewall::link::{Extra, Origin};
use crate::firewall::ranges::{self, BLOCKED_V4, BLOCKED_V6};
use crate::policy::Egress;
use ipnet::IpNet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The cloud metadata endpoints (AWS/GCP/Azure/OpenStack's 169.254.169.254, AWS's IPv6 one,
/// Azure's wire server): named as such, the most telling reason there is.
const METADATA: &[&str] = &["169.254.169.254", "fd00:ec2::254", "168.63.129.16"];

/// The reason for a name the DNS gate refused.
pub const NOT_ALLOWLISTED: &str = "not allowlisted";

/// The reasons of one sandbox: its egress mode and extra blocked destinations.
#[derive(Debug, Clone)]
pub struct Reasons {
    egress: Egress,
    /// Built-in ranges with a short label ("private"), in table order.
    builtin: Vec<(IpNet, String)>,
    /// The extra destinations: the gateways first, then `blocked_networks`, then on-link
    /// prefixes (a gateway is in its on-link prefix; the narrower name wins).
    extras: Vec<(IpNet, &'static str)>,
}

impl Reasons {
    /// The reasons for a sandbox with `egress` and the extra blocked destinations `extras`
    /// (the plan's, from `blocked_networks` and the container's routes).
    pub fn new(egress: Egress, extras: &[Extra]) -> Self {
        let builtin = BLOCKED_V4
            .iter()
            .chain(BLOCKED_V6)
            .filter_map(|(net, why)| Some((net.parse().ok()?, label(why).to_owned())))
            .collect();
        let words = |origin: &Origin| match origin {
            Origin::Gateway { .. } => (0, "the Docker gateway (your host)"),
            Origin::Policy => (1, "your host's address (blocked_networks)"),
            Origin::OnLink { .. } => (2, "the container's own network"),
        };
        let mut extras: Vec<(usize, IpNet, &'static str)> = extras
            .iter()
            .map(|e| {
                let (rank, words) = words(&e.origin);
                (rank, e.dest, words)
            })
            .collect();
        extras.sort_by_key(|(rank, net, _)| (*rank, std::cmp::Reverse(net.prefix_len())));
        Reasons {
            egress,
            builtin,
            extras: extras.into_iter().map(|(_, n, w)| (n, w)).collect(),
        }
    }

    /// Why `packet` was refused.
    pub fn of(&self, packet: &Packet) -> String {
        if packet.routing_header {
            return "IPv6 routing header".to_owned();
        }
        let transport = matches!(packet.proto, Proto::Tcp | Proto::Udp);
        if transport && packet.src_port == Some(53) {
            return "sent from port 53 (posing as a resolver)".to_owned();
        }
        if transport && packet.dest_port == Some(53) {
            return "DNS past the gate".to_owned();
        }
        if let Some(reason) = self.blocked(packet.dest) {
            return reason;
        }
        if let IpAddr::V6(v6) = packet.dest {
            if let Some((form, v4)) = embedded(v6) {
                if let Some(reason) = self.blocked(IpAddr::V4(v4)) {
                    return format!("{reason} ({form} form)");
                }
            }
        }
        if let Some(reason) = self.builtin_range(packet.dest) {
            return reason;
        }
        match self.egress {
            Egress::Allowlist => NOT_ALLOWLISTED.to_owned(),
            Egress::Open => "refused by the firewall".to_owned(),
        }
    }

    /// The reason a destination is refused in its own right: metadata, an extra destination,
    /// a built-in range other than the ones made of IPv4 forms (those say less than the IPv4
    /// address inside, which [`Reasons::of`] looks at next).
    fn blocked(&self, dest: IpAddr) -> Option<String> {
        if METADATA.iter().any(|m| m.parse() == Ok(dest)) {
            return Some("cloud metadata".to_owned());
        }
        if let Some((_, words)) = self.extras.iter().find(|(net, _)| net.contains(&dest)) {
            return Some((*words).to_owned());
        }
        if matches!(dest, IpAddr::V6(v6) if embedded(v6).is_some()) {
            return None;
        }
        self.builtin_range(dest)
    }

    /// "private 10.0.0.0/8": the built-in range holding `dest`, with its label.
    fn builtin_range(&self, dest: IpAddr) -> Option<String> {
        let (net, label) = self.builtin.iter().find(|(net, _)| net.contains(&dest))?;
        Some(format!("{label} {net}"))
    }
}

/// The IPv4 address an IPv6 address carries, and the form it is carried in.
fn embedded(v6: Ipv6Addr) -> Option<(&'static str, Ipv4Addr)> {
    let v4 = ranges::embedded_v4(v6)?;
    let form = if v6.to_ipv4_mapped().is_some() {
        "IPv4-mapped"
    } else if v6.segments()[0] == 0x2002 {
        "6to4"
    } else {
        "NAT64"
    };
    Some((form, v4))
}

/// The first words of a range's "why": `private (RFC 1918), Docker's ...` → `private`.
fn label(why: &str) -> &str {
    let end = why.find([',', '(', ':']).unwrap_or(why.len());
    why[..end].trim().trim_matches('"')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(dest: &str, proto: Proto, port: Option<u16>) -> Packet {
        Packet {
            dest: dest.parse().expect("addr"),
            proto,
            src_port: port.map(|_| 40000),
            dest_port: port,
            routing_header: false,
            membership: false,
        }
    }

    fn extra(dest: &str, origin: Origin) -> Extra {
        Extra {
            dest: dest.parse().expect("net"),
            origin,
        }
    }

    fn reasons(egress: Egress) -> Reasons {
        let eth0 = || "eth0".to_owned();
        Reasons::new(
            egress,
            &[
                extra("203.0.113.7/32", Origin::Policy),
                extra("172.17.0.0/16", Origin::OnLink { dev: eth0() }),
                extra("172.17.0.1/32", Origin::Gateway { dev: eth0() }),
                extra("2001:db8:17::/64", Origin::OnLink { dev: eth0() }),
            ],
        )
    }

    #[test]
    fn each_destination_has_its_reason_in_words() {
        let r = reasons(Egress::Allowlist);
        let of = |dest: &str| r.of(&packet(dest, Proto::Tcp, Some(80)));
        let table = [
            ("169.254.169.254", "cloud metadata"),
            ("fd00:ec2::254", "cloud metadata"),
            ("168.63.129.16", "cloud metadata"),
            ("10.0.0.5", "private 10.0.0.0/8"),
            ("192.168.1.1", "private 192.168.0.0/16"),
            ("100.64.0.1", "carrier-grade NAT 100.64.0.0/10"),
            ("169.254.1.1", "link-local 169.254.0.0/16"),
            ("0.1.2.3", "this network 0.0.0.0/8"),
            ("240.0.0.1", "reserved 240.0.0.0/4"),
            ("fd00::1", "unique local fc00::/7"),
            ("fe80::1", "link-local fe80::/10"),
            ("64:ff9b:1::1", "local-use NAT64 64:ff9b:1::/48"),
            ("172.17.0.1", "the Docker gateway (your host)"),
            ("172.17.0.9", "the container's own network"),
            ("172.18.0.9", "private 172.16.0.0/12"),
            ("2001:db8:17::3", "the container's own network"),
            ("203.0.113.7", "your host's address (blocked_networks)"),
            ("64:ff9b::a9fe:a9fe", "cloud metadata (NAT64 form)"),
            ("2002:a00:5::1", "private 10.0.0.0/8 (6to4 form)"),
            ("::ffff:10.0.0.5", "private 10.0.0.0/8 (IPv4-mapped form)"),
            (
                "64:ff9b::cb00:7107",
                "your host's address (blocked_networks) (NAT64 form)",
            ),
            ("::ffff:198.51.100.7", "IPv4-mapped ::ffff:0.0.0.0/96"),
            ("198.51.100.7", "not allowlisted"),
            ("2001:db8::10", "not allowlisted"),
            ("64:ff9b::c633:6407", "not allowlisted"),
        ];
        for (dest, want) in table {
            assert_eq!(of(dest), want, "{dest}");
        }
    }

    #[test]
    fn the_dns_rules_and_the_routing_header_say_so() {
        let r = reasons(Egress::Open);
        let mut p = packet("10.53.0.53", Proto::Udp, Some(53));
        assert_eq!(r.of(&p), "DNS past the gate");
        p.src_port = Some(53);
        p.dest_port = Some(40000);
        assert_eq!(r.of(&p), "sent from port 53 (posing as a resolver)");
        let mut p = packet("2001:db8::10", Proto::Udp, Some(443));
        p.routing_header = true;
        assert_eq!(r.of(&p), "IPv6 routing header");
        // ICMP has no port: an echo to a resolver is not DNS.
        let p = packet("10.53.0.53", Proto::Icmp, None);
        assert_eq!(r.of(&p), "private 10.0.0.0/8");
    }

    #[test]
    fn open_egress_never_says_not_allowlisted() {
        let r = reasons(Egress::Open);
        assert_eq!(
            r.of(&packet("198.51.100.7", Proto::Tcp, Some(443))),
            "refused by the firewall"
        );
    }
}
