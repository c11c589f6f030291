//! What the allowlist says about a name the agent asks for, and which answered addresses a name
//! may open. Used by the gate for every query and by the plan for the hosts file, so both
//! decide alike.

use crate::firewall::ranges;
use crate::firewall::Allow;
use crate::policy::{Fx, HostList, HostRef, NetworkEntry};
use ipnet::IpNet;
use std::hash::Hasher;
use std::net::IpAddr;

/// The ports an address may be opened with for one name: `None` is every port.
pub type Ports = Vec<Option<u16>>;

/// The `allowed_hosts` names and wildcards, indexed so a query costs one hash lookup per label
/// of the name, however long the allowlist is. The index holds entry numbers, not names: the
/// names stay in the list's one buffer, so the gate indexes a 10,000-name allowlist after its
/// fork without an allocation per name.
#[derive(Debug, Clone)]
pub struct Allowlist {
    hosts: HostList,
    /// Open addressing with linear probing, at most half full: 0 is a free slot, anything else
    /// 1 + the number of a name or wildcard entry in `hosts`. One name listed with several
    /// ports has a slot per port; a repeat that adds no port has none (a name listed 10,000
    /// times would otherwise be one run of 10,000 slots, walked by every query landing in it).
    slots: Vec<u32>,
}

/// What a slot's key is: a name, or a wildcard's suffix (`example.com` for `*.example.com`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Key {
    Exact,
    Below,
}

impl Allowlist {
    /// The names and wildcards of `hosts` (literal addresses are the plan's, not the gate's).
    pub fn new(hosts: HostList) -> Self {
        let keyed = hosts.iter().filter(|e| key(e.host).is_some()).count();
        let size = (keyed * 2).next_power_of_two().max(8);
        let mut list = Allowlist {
            slots: vec![0; size],
            hosts,
        };
        for index in 0..list.hosts.len() {
            let Some(entry) = list.hosts.get(index) else {
                continue;
            };
            let Some((kind, text)) = key(entry.host) else {
                continue;
            };
            let mut at = list.home(kind, text);
            let mut redundant = false;
            while let Some(other) = list.slots[at].checked_sub(1) {
                // The same key with every port, or with this one: nothing to add.
                redundant = list.hosts.get(other as usize).is_some_and(|e| {
                    key(e.host) == Some((kind, text)) && (e.port.is_none() || e.port == entry.port)
                });
                if redundant {
                    break;
                }
                at = (at + 1) & (size - 1);
            }
            if redundant {
                continue;
            }
            // `hosts` is one policy's list: far fewer than 2^32 entries.
            list.slots[at] = u32::try_from(index + 1).unwrap_or(u32::MAX);
        }
        list
    }

    /// The ports the entries covering `name` (lowercase, no trailing dot) allow; empty when no
    /// entry covers it.
    pub fn ports(&self, name: &str) -> Ports {
        let mut ports = Ports::new();
        self.each(Key::Exact, name, |port| add_port(&mut ports, port));
        // Every proper suffix of the name, at a label boundary: a.b.example.com asks
        // b.example.com, example.com, com.
        let mut rest = name;
        while let Some((_, tail)) = rest.split_once('.') {
            self.each(Key::Below, tail, |port| add_port(&mut ports, port));
            rest = tail;
        }
        ports
    }

    /// Whether no name or wildcard is listed.
    pub fn is_empty(&self) -> bool {
        self.slots.iter().all(|slot| *slot == 0)
    }

    /// The port of each entry keyed `kind` and `text`: the slots from the key's home to the
    /// next free one.
    fn each(&self, kind: Key, text: &str, mut found: impl FnMut(Option<u16>)) {
        let mut at = self.home(kind, text);
        while let Some(index) = self.slots[at].checked_sub(1) {
            if let Some(entry) = self.hosts.get(index as usize) {
                if key(entry.host) == Some((kind, text)) {
                    found(entry.port);
                }
            }
            at = (at + 1) & (self.slots.len() - 1);
        }
    }

    /// The slot a key's probe starts at: the hash's top bits (FxHash mixes upwards).
    fn home(&self, kind: Key, text: &str) -> usize {
        let mut hasher = Fx::default();
        hasher.write_u8(kind as u8);
        hasher.write(text.as_bytes());
        let bits = self.slots.len().trailing_zeros();
        (hasher.finish() >> (64 - bits)) as usize
    }
}

/// The index key of a host: a name, or a wildcard's suffix; addresses have none.
fn key(host: HostRef<'_>) -> Option<(Key, &str)> {
    match host {
        HostRef::Name(name) => Some((Key::Exact, name)),
        HostRef::Wildcard(suffix) => Some((Key::Below, suffix)),
        HostRef::Addr(_) => None,
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
    use crate::policy::{parse_host, parse_network, HostList};

    fn list(entries: &[&str]) -> Allowlist {
        let hosts: HostList = entries
            .iter()
            .map(|e| parse_host(e).expect("entry"))
            .collect();
        Allowlist::new(hosts)
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

    /// The index answers as a walk of the whole list with [`HostRef::covers`] does: for names
    /// and wildcards listed several times with and without ports, for their suffixes and for
    /// names that are not listed, in a list long enough that probes run into each other.
    #[test]
    fn the_index_answers_as_the_grammars_covers_over_the_whole_list() {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        };
        let labels = [
            "a", "b", "cdn", "x-y", "0a", "example", "com", "net", "_srv",
        ];
        let name = |next: &mut dyn FnMut(u64) -> u64| {
            let n = 2 + next(3) as usize;
            (0..n)
                .map(|_| labels[next(labels.len() as u64) as usize])
                .collect::<Vec<_>>()
                .join(".")
        };
        let mut entries = Vec::new();
        for _ in 0..3_000 {
            let mut entry = name(&mut next);
            if next(4) == 0 {
                entry = format!("*.{entry}");
            }
            if next(3) == 0 {
                entry = format!("{entry}:{}", 1 + next(3));
            }
            entries.push(parse_host(&entry).expect("entry"));
        }
        let hosts: HostList = entries.iter().collect();
        let index = Allowlist::new(hosts.clone());
        for _ in 0..3_000 {
            let query = name(&mut next);
            let mut want = Ports::new();
            for entry in hosts.iter().filter(|e| e.host.covers(&query)) {
                add_port(&mut want, entry.port);
            }
            let mut have = index.ports(&query);
            want.sort();
            have.sort();
            assert_eq!(have, want, "{query}");
        }
    }

    /// A name listed many times takes one slot per distinct port: neither the build nor a
    /// lookup grows with the repeats (found by the red team: 10,000 copies of one entry took
    /// 25 ms to index, and a query landing in their run 3 ms).
    #[test]
    fn repeated_entries_do_not_lengthen_the_probe_chains() {
        let hosts: HostList = (0..20_000)
            .map(|i| {
                let entry = if i % 2 == 0 {
                    "pypi.org:443"
                } else {
                    "pypi.org:80"
                };
                parse_host(entry).expect("entry")
            })
            .chain([parse_host("pypi.org").expect("entry")])
            .chain([parse_host("pypi.org:22").expect("entry")])
            .collect();
        let index = Allowlist::new(hosts);
        assert_eq!(index.ports("pypi.org"), [None]);
        let used = index.slots.iter().filter(|s| **s != 0).count();
        assert_eq!(used, 3, "443, 80 and every port: {used} slots");
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
