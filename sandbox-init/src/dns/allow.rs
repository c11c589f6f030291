//! What the allowlist says about a name the agent asks for, and which answered addresses a name
//! may open. Used by the gate for every query and by the plan for the hosts file, so both
//! decide alike.

use crate::firewall::ranges;
use crate::firewall::Allow;
use crate::policy::{Host, HostEntry, NetworkEntry};
use ipnet::IpNet;
use std::collections::HashMap;
use std::net::IpAddr;

/// The ports an address may be opened with for one name: `None` is every port.
pub type Ports = Vec<Option<u16>>;

/// The `allowed_hosts` names and wildcards, indexed so a query costs one hash lookup per label
/// of the name, however long the allowlist is.
#[derive(Debug, Clone, Default)]
pub struct Allowlist {
    exact: HashMap<String, Ports>,
    /// Wildcard suffix (`example.com` for `*.example.com`) → ports.
    below: HashMap<String, Ports>,
}

impl Allowlist {
    /// The names and wildcards of `hosts` (literal addresses are the plan's, not the gate's).
    pub fn new(hosts: &[HostEntry]) -> Self {
        let mut list = Allowlist::default();
        for entry in hosts {
            let (map, key) = match &entry.host {
                Host::Name(name) => (&mut list.exact, name),
                Host::Wildcard(suffix) => (&mut list.below, suffix),
                Host::Addr(_) => continue,
            };
            add_port(map.entry(key.clone()).or_default(), entry.port);
        }
        list
    }

    /// The ports the entries covering `name` (lowercase, no trailing dot) allow; empty when no
    /// entry covers it.
    pub fn ports(&self, name: &str) -> Ports {
        let mut ports = Ports::new();
        for port in self.exact.get(name).into_iter().flatten() {
            add_port(&mut ports, *port);
        }
        // Every proper suffix of the name, at a label boundary: a.b.example.com asks
        // b.example.com, example.com, com.
        let mut rest = name;
        while let Some((_, tail)) = rest.split_once('.') {
            for port in self.below.get(tail).into_iter().flatten() {
                add_port(&mut ports, *port);
            }
            rest = tail;
        }
        ports
    }

    /// Whether no name or wildcard is listed.
    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.below.is_empty()
    }
}

/// Adds `port` to `ports`, keeping "every port" (`None`) as the only member once present.
fn add_port(ports: &mut Ports, port: Option<u16>) {
    if ports.contains(&None) || ports.contains(&port) {
        return;
    }
    match port {
        None => *ports = vec![None],
        Some(_) => ports.push(port),
    }
}

/// Whether an address answered for an allowlisted name may be opened: not when it lies in
/// link-local/metadata space, unless `allowed_networks` lists that range or a part of it that
/// holds the address (DNS rebinding to 169.254.169.254 must not reach the metadata service).
/// `Err` carries the refused range.
pub fn admit(networks: &[NetworkEntry], addr: IpAddr) -> Result<(), IpNet> {
    let Some(range) = ranges::refused_range(addr) else {
        return Ok(());
    };
    let covered = networks
        .iter()
        .any(|n| n.net.contains(&addr) && range.contains(&n.net));
    if covered {
        Ok(())
    } else {
        Err(range)
    }
}

/// The destinations to open for `addr`, answered for a name the allowlist gives `ports`.
pub fn allows_for(addr: IpAddr, ports: &Ports) -> impl Iterator<Item = Allow> + '_ {
    ports.iter().map(move |port| Allow {
        dest: IpNet::from(addr),
        port: *port,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{parse_host, parse_network};

    fn list(entries: &[&str]) -> Allowlist {
        let hosts: Vec<HostEntry> = entries
            .iter()
            .map(|e| parse_host(e).expect("entry"))
            .collect();
        Allowlist::new(&hosts)
    }

    #[test]
    fn exact_names_and_wildcards_give_their_ports() {
        let list = list(&[
            "pypi.org",
            "api.example.com:443",
            "*.example.com:8443",
            "*.cdn.example.net",
            "api.example.com:443",
            "10.0.0.1",
        ]);
        assert_eq!(list.ports("pypi.org"), [None]);
        assert_eq!(list.ports("api.example.com"), [Some(443), Some(8443)]);
        assert_eq!(list.ports("x.y.example.com"), [Some(8443)]);
        assert_eq!(list.ports("example.com"), Ports::new());
        assert_eq!(list.ports("a.cdn.example.net"), [None]);
        assert_eq!(list.ports("cdn.example.net"), Ports::new());
        assert_eq!(list.ports("evil-pypi.org"), Ports::new());
        assert_eq!(list.ports("pypi.org.evil.example"), Ports::new());
        assert_eq!(list.ports(""), Ports::new());
        assert_eq!(list.ports("10.0.0.1"), Ports::new());
    }

    #[test]
    fn every_port_absorbs_the_single_ports() {
        let list = list(&["a.b.example:443", "*.b.example", "a.b.example:80"]);
        assert_eq!(list.ports("a.b.example"), [None]);
    }

    #[test]
    fn metadata_answers_are_refused_unless_that_range_is_allowed() {
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        let none: Vec<NetworkEntry> = vec![];
        assert_eq!(
            admit(&none, ip("169.254.169.254")),
            Err("169.254.0.0/16".parse().expect("net"))
        );
        assert!(admit(&none, ip("fd00:ec2::254")).is_err());
        // Metadata behind the well-known NAT64 prefix, and anything behind a local-use one
        // (its translator may map it anywhere).
        assert!(admit(&none, ip("64:ff9b::a9fe:a9fe")).is_err());
        assert!(admit(&none, ip("64:ff9b:1:a9fe:a9fe::")).is_err());
        assert!(admit(&none, ip("::ffff:169.254.169.254")).is_err());
        assert!(
            admit(&none, ip("10.1.2.3")).is_ok(),
            "private space is what internal hosts are"
        );
        assert!(admit(&none, ip("198.51.100.7")).is_ok());
        let meta = vec![parse_network("169.254.169.254/32").expect("net")];
        assert!(admit(&meta, ip("169.254.169.254")).is_ok());
        let world = vec![parse_network("0.0.0.0/0").expect("net")];
        assert!(
            admit(&world, ip("169.254.169.254")).is_err(),
            "a wider network is not that range"
        );
    }
}
