//! What `--verify` probes, decided before the drop from what the boot decided (pure): the
//! metadata addresses, the container's gateways and on-link prefixes, the policy's
//! `blocked_networks` (the host's own addresses), one sample of every built-in blocked range in
//! both families with the IPv4-mapped form of each IPv4 sample (the NAT64 and 6to4 forms are
//! ranges of their own), and in `allowlist` egress a public address and a name that are not
//! allowlisted.
//!
//! A sample is never an address the firewall lets through on purpose: one the allowlist opens
//! (the plan's allows, and what the gate opened in `JAILOC-NAMES`) or the container's own
//! (loopback is accepted). Where every candidate of a range is open, the check is skipped and
//! says why.

use crate::dns::allow::Allowlist;
use crate::firewall::link::{Extra, Origin};
use crate::firewall::{ranges, Allow};
use crate::policy::Egress;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};

/// The port a TCP/UDP probe asks, unless the target has a port of its own (metadata: 80).
pub(crate) const PROBE_PORT: u16 = 443;
/// The port the metadata services answer on.
pub(crate) const METADATA_PORT: u16 = 80;
/// The cloud metadata addresses probed by name: AWS/GCP/Azure IMDS, AWS IMDS over IPv6, Azure's
/// platform endpoint.
pub(crate) const METADATA: [&str; 3] = ["169.254.169.254", "fd00:ec2::254", "168.63.129.16"];
/// Public addresses that route nowhere real (the documentation ranges: outside every blocked
/// range, so the firewall treats them as the internet), in the order tried.
pub(crate) const PUBLIC: [&str; 6] = [
    "192.0.2.1",
    "198.51.100.1",
    "203.0.113.1",
    "2001:db8::1",
    "2001:db8:1::1",
    "2001:db8:2::1",
];
/// Names that exist in the public DNS, in the order tried: upstream would answer them, so an
/// NXDOMAIN can only be the gate's.
pub(crate) const NAMES: [&str; 3] = ["example.com", "example.net", "example.org"];

/// How a probe reaches its target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Probe {
    /// A TCP connect: the firewall answers with a reset.
    Tcp(SocketAddr),
    /// One UDP datagram (multicast, where TCP never leaves the kernel): the firewall makes the
    /// send fail.
    Udp(SocketAddr),
    /// An A query for `name` to `server`:53, which the `nat` rules hand to the gate.
    Dns { server: SocketAddr, name: String },
    /// Nothing to probe, and why (every candidate is allowlisted; no IPv6 in the container).
    Skip(String),
}

impl Probe {
    /// The target as the table shows it.
    pub(crate) fn target(&self) -> String {
        match self {
            Probe::Tcp(addr) => format!("tcp {addr}"),
            Probe::Udp(addr) => format!("udp {addr}"),
            Probe::Dns { server, name } => format!("{name} via {server}"),
            Probe::Skip(_) => "-".to_owned(),
        }
    }
}

/// One probe to run as the agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Check {
    /// What is proved, e.g. `metadata`, `blocked 10.0.0.0/8 (mapped)`, `gateway (eth0)`.
    pub name: String,
    pub probe: Probe,
}

impl Check {
    /// What a passing probe shows.
    pub(crate) fn expected(&self) -> &'static str {
        match self.probe {
            Probe::Dns { .. } => "NXDOMAIN from the gate",
            Probe::Skip(_) => "-",
            Probe::Tcp(_) | Probe::Udp(_) => "refused",
        }
    }
}

/// What the list is built from; everything read before the drop.
#[derive(Debug, Clone)]
pub(crate) struct Inputs<'a> {
    pub egress: Egress,
    /// What the firewall lets through on purpose: the plan's allows and the gate's opened names.
    pub open: &'a [Allow],
    /// The plan's extra blocked destinations (the policy's, then the link's).
    pub extras: &'a [Extra],
    /// The allowlist's names (for the name the DNS check asks).
    pub names: &'a Allowlist,
    /// The first `nameserver` of resolv.conf: where the agent's resolver sends its queries.
    pub resolver: Option<IpAddr>,
    /// The container's own addresses (loopback is accepted, so they prove nothing).
    pub local: &'a [IpAddr],
    /// The container has an IPv6 address besides loopback.
    pub ipv6: bool,
    /// The interface index link-local IPv6 probes go out on.
    pub scope: u32,
}

impl Inputs<'_> {
    /// Whether a packet to `addr`:`port` is meant to pass (or is the container's own).
    fn is_open(&self, addr: IpAddr, port: u16) -> bool {
        let v4 = match addr {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4),
            IpAddr::V4(_) => None,
        };
        [Some(addr), v4].into_iter().flatten().any(|addr| {
            self.local.contains(&addr)
                || self
                    .open
                    .iter()
                    .any(|allow| allow.dest.contains(&addr) && allow.port.is_none_or(|p| p == port))
        })
    }

    /// The probe of `addr`:`port`: UDP for multicast (TCP to it never leaves the kernel), a
    /// scope for link-local IPv6, a skip where the container has no IPv6.
    fn probe(&self, addr: IpAddr, port: u16) -> Probe {
        let socket = match addr {
            IpAddr::V6(v6) if v6.to_ipv4_mapped().is_none() && !self.ipv6 => {
                return Probe::Skip("the container has no IPv6 address".to_owned())
            }
            IpAddr::V6(v6) if is_link_scoped(v6) => {
                SocketAddr::V6(SocketAddrV6::new(v6, port, 0, self.scope))
            }
            _ => SocketAddr::new(addr, port),
        };
        if is_multicast(addr) {
            Probe::Udp(socket)
        } else {
            Probe::Tcp(socket)
        }
    }

    /// The probe of the first of `candidates` that is not open, else a skip.
    fn first_closed(&self, candidates: &[IpAddr], port: u16) -> Probe {
        match candidates.iter().find(|a| !self.is_open(**a, port)) {
            Some(addr) => self.probe(*addr, port),
            None => Probe::Skip("every candidate address is allowlisted".to_owned()),
        }
    }
}

/// Every probe for `inputs`, in the order the table shows them; each target once.
pub(crate) fn checks(inputs: &Inputs<'_>) -> Vec<Check> {
    let mut out = Vec::new();
    let port = PROBE_PORT;
    let mut add = |name: String, probe: Probe| {
        let seen = !matches!(probe, Probe::Skip(_)) && out.iter().any(|c: &Check| c.probe == probe);
        if !seen {
            out.push(Check { name, probe });
        }
    };

    // The metadata services, then the three IPv6 spellings of the best known one.
    for text in METADATA {
        let addr: IpAddr = constant(text);
        add(
            "metadata".into(),
            inputs.first_closed(&[addr], METADATA_PORT),
        );
    }
    let imds = Ipv4Addr::new(169, 254, 169, 254);
    for (form, addr) in v6_forms(imds) {
        add(
            format!("metadata ({form})"),
            inputs.first_closed(&[IpAddr::V6(addr)], METADATA_PORT),
        );
    }

    // The host and its link: every gateway, a sample of every on-link prefix (its last
    // addresses first: the first is usually the gateway), the policy's blocked networks.
    for extra in inputs.extras {
        let (name, from_end) = match &extra.origin {
            Origin::Gateway { dev } => (format!("gateway ({dev})"), false),
            Origin::OnLink { dev } => (format!("link {} ({dev})", extra.dest), true),
            Origin::Policy => (format!("host {}", extra.dest), false),
        };
        add(
            name,
            inputs.first_closed(&candidates(extra.dest, from_end), port),
        );
    }

    // Every built-in range: IPv4 with the mapped form of its sample, then IPv6's own and the
    // NAT64 and 6to4 forms of each IPv4 range.
    for net in ranges::blocked_v4() {
        let net = IpNet::V4(net);
        let probe = inputs.first_closed(&candidates(net, false), port);
        let mapped = match &probe {
            Probe::Tcp(SocketAddr::V4(a)) | Probe::Udp(SocketAddr::V4(a)) => {
                Some(IpAddr::V6(a.ip().to_ipv6_mapped()))
            }
            _ => None,
        };
        add(format!("blocked {net}"), probe);
        if let Some(mapped) = mapped {
            add(
                format!("blocked {net} (mapped)"),
                inputs.first_closed(&[mapped], port),
            );
        }
    }
    for net in ranges::blocked_v6() {
        let net = IpNet::V6(net);
        add(
            format!("blocked {net}"),
            inputs.first_closed(&candidates(net, false), port),
        );
    }

    // Allowlist egress: the rest of the internet, and the names.
    if inputs.egress == Egress::Allowlist {
        let public: Vec<IpAddr> = PUBLIC.iter().map(|a| constant(a)).collect();
        let (v4, v6): (Vec<IpAddr>, Vec<IpAddr>) = public.iter().partition(|a| a.is_ipv4());
        add(
            "public, not allowlisted".into(),
            inputs.first_closed(&v4, port),
        );
        add(
            "public, not allowlisted".into(),
            inputs.first_closed(&v6, port),
        );
        add("name, not allowlisted".into(), dns_probe(inputs));
    }
    out
}

/// The DNS check: a name no allowlist entry covers, asked where the agent's resolver asks.
fn dns_probe(inputs: &Inputs<'_>) -> Probe {
    let Some(name) = NAMES.iter().find(|n| inputs.names.ports(n).is_empty()) else {
        return Probe::Skip("every candidate name is allowlisted".to_owned());
    };
    let Some(resolver) = inputs.resolver else {
        return Probe::Skip("resolv.conf names no nameserver".to_owned());
    };
    Probe::Dns {
        server: SocketAddr::new(resolver, 53),
        name: (*name).to_owned(),
    }
}

/// The IPv6 spellings of an IPv4 address the firewall must refuse like the address itself.
pub(crate) fn v6_forms(v4: Ipv4Addr) -> [(&'static str, Ipv6Addr); 3] {
    let single = Ipv4Net::from(v4);
    let host = |net: Ipv6Net| Ipv6Addr::from(u128::from(net.network()) | 1);
    [
        ("mapped", v4.to_ipv6_mapped()),
        ("NAT64", ranges::nat64(single).network()),
        ("6to4", host(ranges::sixto4(single))),
    ]
}

/// Candidate samples of `net`: its first host, middle and last host (`from_end` reverses the
/// order); a single address is itself.
pub(crate) fn candidates(net: IpNet, from_end: bool) -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = match net {
        IpNet::V4(n) => {
            let (lo, hi) = (u32::from(n.network()), u32::from(n.broadcast()));
            spread(u128::from(lo), u128::from(hi), n.prefix_len() >= 31)
                .into_iter()
                .filter_map(|v| u32::try_from(v).ok())
                .map(|v| IpAddr::V4(Ipv4Addr::from(v)))
                .collect()
        }
        IpNet::V6(n) => {
            let (lo, hi) = (u128::from(n.network()), u128::from(n.broadcast()));
            spread(lo, hi, n.prefix_len() >= 127)
                .into_iter()
                .map(|v| IpAddr::V6(Ipv6Addr::from(v)))
                .collect()
        }
    };
    if from_end {
        out.reverse();
    }
    out
}

/// First host, the first host of the upper half, last host of `lo..=hi` (every address of a
/// `tiny` or four-address range), each once.
fn spread(lo: u128, hi: u128, tiny: bool) -> Vec<u128> {
    let picks: Vec<u128> = if tiny || hi - lo < 4 {
        (lo..=hi).collect()
    } else {
        vec![lo + 1, lo + (hi - lo) / 2 + 2, hi - 1]
    };
    let mut out: Vec<u128> = Vec::new();
    for p in picks {
        if !out.contains(&p) {
            out.push(p);
        }
    }
    out
}

fn is_multicast(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(v4) => v4.is_multicast(),
        IpAddr::V6(v6) => {
            v6.is_multicast() || v6.to_ipv4_mapped().is_some_and(|a| a.is_multicast())
        }
    }
}

/// Link-local unicast and multicast (`fe80::/10`, `ff02::/16`): reachable only with a scope.
fn is_link_scoped(addr: Ipv6Addr) -> bool {
    let first = addr.segments()[0];
    first & 0xffc0 == 0xfe80 || first & 0xff0f == 0xff02
}

/// A constant of this module as an address.
fn constant<T: std::str::FromStr>(text: &str) -> T {
    // The constants are checked by the unit tests.
    text.parse()
        .unwrap_or_else(|_| unreachable!("bad constant address {text}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{parse_host, HostList};

    fn net(text: &str) -> IpNet {
        text.parse().expect("net")
    }

    fn tcp(text: &str) -> Probe {
        Probe::Tcp(text.parse().expect("socket address"))
    }

    /// The inputs of a container on Docker's default bridge, IPv4 only.
    struct World {
        egress: Egress,
        open: Vec<Allow>,
        extras: Vec<Extra>,
        hosts: HostList,
        local: Vec<IpAddr>,
        ipv6: bool,
    }

    impl World {
        fn new(egress: Egress) -> World {
            World {
                egress,
                open: Vec::new(),
                extras: vec![
                    Extra {
                        dest: net("203.0.113.7/32"),
                        origin: Origin::Policy,
                    },
                    Extra {
                        dest: net("172.17.0.1/32"),
                        origin: Origin::Gateway { dev: "eth0".into() },
                    },
                    Extra {
                        dest: net("172.17.0.0/16"),
                        origin: Origin::OnLink { dev: "eth0".into() },
                    },
                ],
                hosts: HostList::new(),
                local: vec![
                    "127.0.0.1".parse().expect("lo"),
                    "172.17.0.2".parse().expect("own"),
                ],
                ipv6: false,
            }
        }

        fn checks(&self) -> Vec<Check> {
            let names = Allowlist::new(self.hosts.clone());
            checks(&Inputs {
                egress: self.egress,
                open: &self.open,
                extras: &self.extras,
                names: &names,
                resolver: Some("127.0.0.11".parse().expect("resolver")),
                local: &self.local,
                ipv6: self.ipv6,
                scope: 2,
            })
        }

        fn probe_of(&self, name: &str) -> Probe {
            self.checks()
                .into_iter()
                .find(|c| c.name == name)
                .unwrap_or_else(|| panic!("no check {name}"))
                .probe
        }
    }

    #[test]
    fn constants_parse() {
        for text in METADATA.iter().chain(&PUBLIC) {
            let _: IpAddr = constant(text);
        }
        for name in NAMES {
            assert!(Name::from_hostname(name).is_ok(), "{name}");
        }
    }
    use crate::dns::wire::Name;

    #[test]
    fn metadata_the_host_its_link_and_every_range_are_probed() {
        let world = World::new(Egress::Open);
        let checks = world.checks();
        let shown: Vec<(String, String)> = checks
            .iter()
            .map(|c| (c.name.clone(), c.probe.target()))
            .collect();
        for (name, target) in [
            ("metadata", "tcp 169.254.169.254:80"),
            ("metadata", "tcp 168.63.129.16:80"),
            ("metadata (mapped)", "tcp [::ffff:169.254.169.254]:80"),
            ("host 203.0.113.7/32", "tcp 203.0.113.7:443"),
            ("gateway (eth0)", "tcp 172.17.0.1:443"),
            // The link's last address, not the gateway's first (probed on its own).
            ("link 172.17.0.0/16 (eth0)", "tcp 172.17.255.254:443"),
            ("blocked 10.0.0.0/8", "tcp 10.0.0.1:443"),
            ("blocked 10.0.0.0/8 (mapped)", "tcp [::ffff:10.0.0.1]:443"),
            ("blocked 168.63.129.16/32", "tcp 168.63.129.16:443"),
            // Multicast: TCP never leaves the kernel, a datagram does.
            ("blocked 224.0.0.0/4", "udp 224.0.0.1:443"),
        ] {
            assert!(
                shown.contains(&(name.to_owned(), target.to_owned())),
                "missing {name} {target} in {shown:#?}"
            );
        }
        // Every IPv4 range with its mapped form, and every IPv6 range (skipped without IPv6);
        // the IPv4-mapped range's sample is the mapped form of 0.0.0.1, probed already.
        let v4 = ranges::blocked_v4().len();
        let v6 = ranges::blocked_v6().len();
        assert_eq!(
            checks
                .iter()
                .filter(|c| c.name.starts_with("blocked "))
                .count(),
            2 * v4 + v6 - 1
        );
        assert!(checks
            .iter()
            .filter(
                |c| c.name.starts_with("blocked 64:ff9b::") || c.name.starts_with("blocked 2002:")
            )
            .all(|c| c.probe == Probe::Skip("the container has no IPv6 address".into())));
        // Open egress: neither the public address nor a name is a wall.
        assert!(!checks.iter().any(|c| c.name.contains("not allowlisted")));
    }

    #[test]
    fn with_ipv6_the_nat64_6to4_and_link_local_forms_are_probed() {
        let mut world = World::new(Egress::Open);
        world.ipv6 = true;
        assert_eq!(
            world.probe_of("metadata (NAT64)"),
            tcp("[64:ff9b::a9fe:a9fe]:80")
        );
        assert_eq!(
            world.probe_of("metadata (6to4)"),
            tcp("[2002:a9fe:a9fe::1]:80")
        );
        assert_eq!(
            world.probe_of("blocked 64:ff9b::a00:0/104"),
            tcp("[64:ff9b::a00:1]:443")
        );
        assert_eq!(
            world.probe_of("blocked 2002:a00::/24"),
            tcp("[2002:a00::1]:443")
        );
        // Link-local needs the interface.
        assert_eq!(
            world.probe_of("blocked fe80::/10"),
            Probe::Tcp(SocketAddr::V6(SocketAddrV6::new(
                "fe80::1".parse().expect("addr"),
                443,
                0,
                2
            )))
        );
    }

    #[test]
    fn what_the_policy_opens_and_the_containers_own_addresses_are_never_samples() {
        let mut world = World::new(Egress::Open);
        // 10.0.0.1 allowlisted on every port, 100.64.0.0/10 only on 22 (443 stays closed).
        world.open = vec![
            Allow {
                dest: net("10.0.0.0/24"),
                port: None,
            },
            Allow {
                dest: net("100.64.0.0/10"),
                port: Some(22),
            },
        ];
        world.local.push("172.17.255.254".parse().expect("own"));
        assert_eq!(world.probe_of("blocked 10.0.0.0/8"), tcp("10.128.0.1:443"));
        assert_eq!(
            world.probe_of("blocked 100.64.0.0/10"),
            tcp("100.64.0.1:443")
        );
        assert_eq!(
            world.probe_of("link 172.17.0.0/16 (eth0)"),
            tcp("172.17.128.1:443")
        );
        // The mapped form of a sample is as open as the sample.
        world.open.push(Allow {
            dest: net("192.168.0.0/16"),
            port: None,
        });
        assert_eq!(
            world.probe_of("blocked 192.168.0.0/16"),
            Probe::Skip("every candidate address is allowlisted".into())
        );
        assert!(!world
            .checks()
            .iter()
            .any(|c| c.name == "blocked 192.168.0.0/16 (mapped)"));
    }

    #[test]
    fn allowlist_egress_adds_a_public_address_and_a_name_that_are_not_allowlisted() {
        let mut world = World::new(Egress::Allowlist);
        world.ipv6 = true;
        world.open.push(Allow {
            dest: net("192.0.2.0/24"),
            port: Some(443),
        });
        world.hosts = vec![parse_host("example.com").expect("entry")].into();
        let public: Vec<Probe> = world
            .checks()
            .into_iter()
            .filter(|c| c.name == "public, not allowlisted")
            .map(|c| c.probe)
            .collect();
        assert_eq!(public, [tcp("198.51.100.1:443"), tcp("[2001:db8::1]:443")]);
        assert_eq!(
            world.probe_of("name, not allowlisted"),
            Probe::Dns {
                server: "127.0.0.11:53".parse().expect("server"),
                name: "example.net".into(),
            }
        );
        world.hosts = vec![
            parse_host("example.net").expect("entry"),
            parse_host("example.com").expect("entry"),
            parse_host("example.org").expect("entry"),
        ]
        .into();
        assert_eq!(
            world.probe_of("name, not allowlisted"),
            Probe::Skip("every candidate name is allowlisted".into())
        );
    }

    #[test]
    fn samples_spread_over_the_range() {
        let c = |n: &str, end: bool| -> Vec<String> {
            candidates(net(n), end)
                .iter()
                .map(ToString::to_string)
                .collect()
        };
        assert_eq!(
            c("10.0.0.0/8", false),
            ["10.0.0.1", "10.128.0.1", "10.255.255.254"]
        );
        assert_eq!(
            c("172.17.0.0/16", true),
            ["172.17.255.254", "172.17.128.1", "172.17.0.1"]
        );
        assert_eq!(c("168.63.129.16/32", false), ["168.63.129.16"]);
        assert_eq!(c("192.0.2.0/31", false), ["192.0.2.0", "192.0.2.1"]);
        assert_eq!(
            c("fe80::/10", false),
            [
                "fe80::1",
                "fea0::1",
                "febf:ffff:ffff:ffff:ffff:ffff:ffff:fffe"
            ]
        );
    }
}
