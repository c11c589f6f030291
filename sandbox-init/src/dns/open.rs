//! The addresses the gate has opened for allowlisted names, how long each stays open, and the
//! rules that add and remove them in `JAILOC-NAMES` (as `iptables-restore` payloads, or for
//! `firewall::nft::names` over netlink).
//!
//! An address opened for a name stays open until `GRACE` after the last answer that named it
//! has expired (its TTL, capped at [`MAX_TTL`]): clients cache answers beyond their TTL (a JVM,
//! a connection pool re-dialling), and a refusal there would look like a network bug.
//! Connections already made are never cut (the established rule comes first); a name whose
//! addresses change reaches the new ones as soon as the gate has answered with them.

use crate::firewall::plan::allow_rules;
use crate::firewall::{Allow, ChainName, Family, Rule};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// How long an address stays open after the TTL of the last answer naming it ran out.
pub const GRACE: Duration = Duration::from_secs(10 * 60);
/// TTLs above this count as this (a day): a name cannot keep an address open for longer
/// without being asked again.
pub const MAX_TTL: Duration = Duration::from_secs(24 * 60 * 60);
/// At most this many destinations open at once; beyond, the ones expiring first make room.
pub const MAX_OPEN: usize = 4096;

/// The destinations open now, each with when it closes.
#[derive(Debug, Default)]
pub struct OpenSet {
    until: HashMap<Allow, Instant>,
}

/// What to change in the kernel: destinations to add and to remove, per family.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Change {
    pub add: Vec<Allow>,
    pub remove: Vec<Allow>,
}

impl Change {
    /// Nothing to do.
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.remove.is_empty()
    }

    /// `family`'s rules of `JAILOC-NAMES` to add and to remove: those of each new and of each
    /// closed destination.
    pub fn rules(&self, family: Family) -> (Vec<Rule>, Vec<Rule>) {
        let mine = |list: &[Allow]| -> Vec<Rule> {
            list.iter()
                .filter(|a| family.holds(&a.dest))
                .flat_map(allow_rules)
                .collect()
        };
        (mine(&self.add), mine(&self.remove))
    }

    /// The `iptables-restore --noflush` payload of `family`'s part, if it has one: `-A` for
    /// each new destination, `-D` for each closed one, in one atomic commit.
    pub fn payload(&self, family: Family) -> Option<String> {
        let (add, remove) = self.rules(family);
        if add.is_empty() && remove.is_empty() {
            return None;
        }
        let chain = ChainName::Names;
        let mut doc = String::from("*filter\n");
        for rule in &remove {
            let _ = writeln!(doc, "-D {chain} {rule}");
        }
        for rule in &add {
            let _ = writeln!(doc, "-A {chain} {rule}");
        }
        doc.push_str("COMMIT\n");
        Some(doc)
    }
}

impl OpenSet {
    /// Records that `allows` were answered now with `ttl`; returns those that are not open
    /// yet (to be added before the answer is released), and any destination pushed out to stay
    /// within [`MAX_OPEN`] (to be removed).
    pub fn answer(&mut self, allows: &[Allow], ttl: Duration, now: Instant) -> Change {
        let until = now + ttl.min(MAX_TTL) + GRACE;
        let mut change = Change::default();
        for allow in allows {
            match self.until.get_mut(allow) {
                Some(old) => *old = (*old).max(until),
                None => {
                    if self.until.len() >= MAX_OPEN {
                        if let Some(oldest) = self.soonest() {
                            self.until.remove(&oldest);
                            change.remove.push(oldest);
                        }
                    }
                    self.until.insert(*allow, until);
                    change.add.push(*allow);
                }
            }
        }
        change
    }

    /// Takes back a failed addition: the kernel does not hold these.
    pub fn forget(&mut self, allows: &[Allow]) {
        for allow in allows {
            self.until.remove(allow);
        }
    }

    /// Removes and returns every destination whose time ran out by `now`.
    pub fn expire(&mut self, now: Instant) -> Vec<Allow> {
        let mut gone: Vec<Allow> = self
            .until
            .iter()
            .filter(|(_, until)| **until <= now)
            .map(|(allow, _)| *allow)
            .collect();
        gone.sort_by_key(|a| (a.dest, a.port));
        for allow in &gone {
            self.until.remove(allow);
        }
        gone
    }

    /// How many destinations are open.
    pub fn len(&self) -> usize {
        self.until.len()
    }

    /// Whether nothing is open.
    pub fn is_empty(&self) -> bool {
        self.until.is_empty()
    }

    /// When the next destination closes.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.until.values().min().copied()
    }

    fn soonest(&self) -> Option<Allow> {
        self.until
            .iter()
            .min_by_key(|(_, until)| **until)
            .map(|(allow, _)| *allow)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipnet::IpNet;

    fn allow(dest: &str, port: Option<u16>) -> Allow {
        Allow {
            dest: IpNet::from(dest.parse::<std::net::IpAddr>().expect("ip")),
            port,
        }
    }

    #[test]
    fn a_new_address_is_added_once_and_stays_for_ttl_plus_grace() {
        let mut open = OpenSet::default();
        let t0 = Instant::now();
        let a = allow("198.51.100.7", None);
        let first = open.answer(&[a], Duration::from_secs(30), t0);
        assert_eq!(first.add, [a]);
        assert!(open.answer(&[a], Duration::from_secs(30), t0).is_empty());
        let ttl_end = t0 + Duration::from_secs(30);
        assert!(open
            .expire(ttl_end + GRACE - Duration::from_secs(1))
            .is_empty());
        assert_eq!(open.expire(ttl_end + GRACE), [a]);
        assert!(open.is_empty());
    }

    #[test]
    fn a_later_answer_extends_and_a_huge_ttl_is_capped() {
        let mut open = OpenSet::default();
        let t0 = Instant::now();
        let a = allow("2001:db8::7", Some(443));
        open.answer(&[a], Duration::from_secs(10), t0);
        open.answer(&[a], Duration::from_secs(100), t0 + Duration::from_secs(5));
        assert!(open
            .expire(t0 + Duration::from_secs(104) + GRACE)
            .is_empty());
        assert_eq!(open.expire(t0 + Duration::from_secs(105) + GRACE), [a]);
        open.answer(&[a], Duration::from_secs(u64::from(u32::MAX)), t0);
        assert_eq!(open.next_expiry(), Some(t0 + MAX_TTL + GRACE));
    }

    #[test]
    fn the_set_stays_bounded_by_pushing_out_the_soonest() {
        let mut open = OpenSet::default();
        let t0 = Instant::now();
        for i in 0..MAX_OPEN {
            let addr = std::net::Ipv4Addr::from(0xc633_0000u32 + i as u32);
            let a = Allow {
                dest: IpNet::from(std::net::IpAddr::V4(addr)),
                port: None,
            };
            open.answer(&[a], Duration::from_secs(60 + i as u64), t0);
        }
        let change = open.answer(&[allow("203.0.113.1", None)], Duration::from_secs(60), t0);
        assert_eq!(change.remove, [allow("198.51.0.0", None)]);
        assert_eq!(open.len(), MAX_OPEN);
    }

    #[test]
    fn payloads_add_and_delete_per_family_in_one_commit() {
        let change = Change {
            add: vec![allow("198.51.100.7", Some(443)), allow("2001:db8::7", None)],
            remove: vec![allow("198.51.100.6", None)],
        };
        assert_eq!(
            change.payload(Family::V4).expect("v4"),
            "*filter\n-D JAILOC-NAMES -d 198.51.100.6/32 -j ACCEPT\n\
             -A JAILOC-NAMES -d 198.51.100.7/32 -p tcp -m tcp --dport 443 -j ACCEPT\n\
             -A JAILOC-NAMES -d 198.51.100.7/32 -p udp -m udp --dport 443 -j ACCEPT\nCOMMIT\n"
        );
        assert_eq!(
            change.payload(Family::V6).expect("v6"),
            "*filter\n-A JAILOC-NAMES -d 2001:db8::7/128 -j ACCEPT\nCOMMIT\n"
        );
        assert_eq!(Change::default().payload(Family::V4), None);
    }
}
