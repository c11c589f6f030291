//! The two files the DNS gate reads at boot, with no network I/O: `/etc/resolv.conf` (where
//! the gate's own queries go) and `/etc/hosts` (names the agent's C library answers without
//! DNS, so their addresses must be open from the start if the allowlist covers them).

use std::collections::HashMap;
use std::net::IpAddr;

/// `/etc/resolv.conf`, parsed once at boot: its nameservers are where the gate forwards the
/// queries it lets through, and the only destinations the gate's own DNS may reach.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolvConf {
    /// The `nameserver` addresses, in order, each once, scope stripped. Read leniently, line by
    /// line, as the C library does: a line it cannot use is skipped, never the whole file.
    pub nameservers: Vec<IpAddr>,
}

impl ResolvConf {
    /// Parses the text of a resolv.conf.
    pub fn parse(text: &str) -> Self {
        let servers = text.lines().filter_map(|line| {
            let mut fields = line.split_whitespace();
            match (fields.next(), fields.next()) {
                (Some("nameserver"), Some(addr)) => strip_scope(addr).parse::<IpAddr>().ok(),
                _ => None,
            }
        });
        ResolvConf {
            nameservers: crate::policy::dedup(servers.collect()),
        }
    }
}

/// A hosts file: lowercase name → addresses, in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostsFile {
    pub names: HashMap<String, Vec<IpAddr>>,
}

impl HostsFile {
    /// Parses the text of a hosts file (comments, blank and malformed lines skipped).
    pub fn parse(text: &str) -> Self {
        let mut names: HashMap<String, Vec<IpAddr>> = HashMap::new();
        for line in text.lines() {
            let line = line.split_once('#').map_or(line, |(before, _)| before);
            let mut fields = line.split_whitespace();
            let Some(addr) = fields
                .next()
                .and_then(|a| strip_scope(a).parse::<IpAddr>().ok())
            else {
                continue;
            };
            for name in fields {
                let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
                let addrs = names.entry(name).or_default();
                if !addrs.contains(&addr) {
                    addrs.push(addr);
                }
            }
        }
        HostsFile { names }
    }

    /// The names and their addresses, sorted by name (a plan must not depend on hash order).
    pub fn sorted(&self) -> Vec<(&str, &[IpAddr])> {
        let mut all: Vec<(&str, &[IpAddr])> = self
            .names
            .iter()
            .map(|(n, a)| (n.as_str(), a.as_slice()))
            .collect();
        all.sort_by(|a, b| a.0.cmp(b.0));
        all
    }
}

/// `fe80::1%eth0` → `fe80::1`.
fn strip_scope(addr: &str) -> &str {
    addr.split_once('%').map_or(addr, |(a, _)| a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn nameservers_in_order_each_once_with_scope_stripped() {
        let conf = "# c\nnameserver 127.0.0.11\nsearch x\nnameserver fe80::1%eth0\nnameserver bogus\nnameserver 127.0.0.11\noptions ndots:0\n";
        assert_eq!(
            ResolvConf::parse(conf).nameservers,
            [ip("127.0.0.11"), ip("fe80::1")]
        );
        assert!(ResolvConf::parse("").nameservers.is_empty());
    }

    #[test]
    fn hosts_file_names_are_lowercase_with_every_address() {
        let hosts = HostsFile::parse(
            "127.0.0.1 localhost\n# x\n172.17.0.1 Host.Docker.Internal. # gw\nfd00::1 host.docker.internal\nnot-an-ip name\n",
        );
        assert_eq!(
            hosts.names.get("host.docker.internal"),
            Some(&vec![ip("172.17.0.1"), ip("fd00::1")])
        );
        assert!(!hosts.names.contains_key("name"));
        assert_eq!(hosts.sorted()[0].0, "host.docker.internal");
    }
}
