//! Rules as data: a pure function from the policy, the resolved addresses and a few facts about
//! the machine to two `iptables-restore --noflush` payloads (IPv4, IPv6).
//!
//! Everything lives in our own chain [`CHAIN`], hooked from `OUTPUT` by one jump. Two forms:
//!
//! - *fresh* (no facts about the current rules: the common case, a new container): `-N` creates
//!   the chain and `-I OUTPUT 1` adds the jump. If the chain already exists, `-N` fails and the
//!   whole restore with it, atomically, changing nothing — the executor then falls back to
//! - *refill* (facts from `iptables-save`): declaring the chain (`:CHAIN - [0:0]`) makes
//!   `--noflush` restore empty and refill it, and the jump is added only when the facts say it
//!   is missing (or not first).
//!
//! Either way applying twice leaves the same rules with one jump.
//! Built-in chains' policies and the `nat` table (Docker's embedded DNS) are never touched.

use super::ranges;
use crate::policy::{Egress, Host, Policy};
use crate::resolve::Resolution;
use ipnet::IpNet;
use std::fmt::Write as _;
use std::net::IpAddr;

/// Our chain in the `filter` table of both families.
pub const CHAIN: &str = "JAILOC-OUTPUT";

/// Where every blocked destination jumps: refuses the packet fast (TCP reset, ICMP
/// administratively-prohibited otherwise) so a tool fails at once instead of hanging.
pub const REJECT_CHAIN: &str = "JAILOC-REJECT";

/// ICMPv6 types neighbour discovery needs to send: router solicitation, neighbour solicitation,
/// neighbour advertisement.
const ND_TYPES: &[u8] = &[133, 135, 136];

/// One destination the allowlist opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Allow {
    pub dest: IpNet,
    /// Only this TCP and UDP port, when set.
    pub port: Option<u16>,
}

/// How `OUTPUT` jumps to our chain right now (read from `iptables-save`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Hook {
    /// Number of `-j JAILOC-OUTPUT` rules in `OUTPUT`.
    pub jumps: usize,
    /// Whether the first rule of `OUTPUT` is that jump.
    pub first: bool,
}

/// Facts about the machine the renderer needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// The `nameserver`s of resolv.conf: DNS (53/udp+tcp) may reach exactly these.
    pub resolvers: Vec<IpAddr>,
    /// How `OUTPUT` jumps to our chain now, per `iptables-save`; `None` renders the fresh form
    /// (create the chain with `-N`, which fails atomically if it exists).
    pub hook_v4: Option<Hook>,
    pub hook_v6: Option<Hook>,
    /// Our chains that exist now, per `iptables-save` (see [`our_chains`]): sub-chains a
    /// smaller allowlist no longer needs are emptied and deleted in the same restore.
    pub chains_v4: Vec<String>,
    pub chains_v6: Vec<String>,
    /// Destinations refused besides the built-in ranges, both families (the policy's
    /// `blocked_networks`, the container's gateways and on-link prefixes: see [`super::link`]).
    pub blocked: Vec<IpNet>,
}

/// The two payloads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleSets {
    pub v4: String,
    pub v6: String,
}

/// Which family a payload is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

impl std::fmt::Display for Family {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        })
    }
}

/// Turns the policy and the resolved names into destinations to open. A name whose address
/// falls in link-local/metadata space is refused with a warning unless `allowed_networks` holds
/// that range or a part of it covering the address; literal addresses are taken as written.
pub fn allows(policy: &Policy, resolution: &Resolution) -> (Vec<Allow>, Vec<String>) {
    let mut allows = Vec::new();
    let mut warnings = Vec::new();
    let resolved: std::collections::HashMap<&str, &[IpAddr]> = resolution
        .addrs
        .iter()
        .map(|(name, addrs)| (name.as_str(), addrs.as_slice()))
        .collect();
    for entry in &policy.hosts {
        match &entry.host {
            Host::Addr(addr) => allows.push(Allow {
                dest: IpNet::from(*addr),
                port: entry.port,
            }),
            Host::Name(name) => {
                for addr in resolved.get(name.as_str()).copied().unwrap_or_default() {
                    if let Some(range) = ranges::refused_range(*addr) {
                        let covered = policy
                            .networks
                            .iter()
                            .any(|n| n.net.contains(addr) && range.contains(&n.net));
                        if !covered {
                            warnings.push(format!(
                                "refusing {addr} for {name}: it is in {range} (link-local/metadata); \
                                 add {range} to allowed_networks to allow it"
                            ));
                            continue;
                        }
                    }
                    allows.push(Allow {
                        dest: IpNet::from(*addr),
                        port: entry.port,
                    });
                }
            }
        }
    }
    for network in &policy.networks {
        allows.push(Allow {
            dest: network.net,
            port: network.port,
        });
    }
    (crate::policy::dedup(allows), warnings)
}

/// Renders both payloads. Pure: the same inputs always give the same bytes.
pub fn render(egress: Egress, allows: &[Allow], facts: &Facts) -> RuleSets {
    RuleSets {
        v4: render_family(Family::V4, egress, allows, facts),
        v6: render_family(Family::V6, egress, allows, facts),
    }
}

fn in_family(family: Family, net: &IpNet) -> bool {
    matches!(
        (family, net),
        (Family::V4, IpNet::V4(_)) | (Family::V6, IpNet::V6(_))
    )
}

fn render_family(family: Family, egress: Egress, allows: &[Allow], facts: &Facts) -> String {
    let (reject, blocked): (&str, Vec<IpNet>) = match family {
        Family::V4 => (
            "icmp-admin-prohibited",
            ranges::blocked_v4().into_iter().map(IpNet::V4).collect(),
        ),
        Family::V6 => (
            "icmp6-adm-prohibited",
            ranges::blocked_v6().into_iter().map(IpNet::V6).collect(),
        ),
    };
    // The rule bodies, in the order DESIGN.md prescribes; each becomes `-A JAILOC-OUTPUT ...`.
    let mut rules = Vec::new();
    if family == Family::V6 {
        // First of all, before loopback and established connections: an IPv6 packet with a
        // routing header. `-d` sees only its next segment; a type-4 segment routing header
        // (which any process may attach with IPV6_RTHDR) can name a blocked destination as the
        // final one behind an allowed first, also on an established connection. Nothing the
        // agent legitimately sends carries one.
        rules.push(format!("-m rt -j {REJECT_CHAIN}"));
    }
    rules.push("-o lo -j ACCEPT".to_owned());
    rules.push("-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT".to_owned());
    if family == Family::V6 {
        for t in ND_TYPES {
            rules.push(format!("-p ipv6-icmp -m icmp6 --icmpv6-type {t} -j ACCEPT"));
        }
    }
    for dest in facts
        .resolvers
        .iter()
        .map(|r| IpNet::from(*r))
        .filter(|d| in_family(family, d))
    {
        rules.push(format!("-d {dest} -p udp -m udp --dport 53 -j ACCEPT"));
        rules.push(format!("-d {dest} -p tcp -m tcp --dport 53 -j ACCEPT"));
    }
    let mut family_allows: Vec<Allow> = allows
        .iter()
        .filter(|a| in_family(family, &a.dest))
        .copied()
        .collect();
    let mut subchains: Vec<(String, Vec<String>)> = Vec::new();
    if family_allows.len() <= TREE_ABOVE {
        rules.extend(family_allows.iter().flat_map(allow_rules));
    } else {
        // Many allows: a tree of chains instead of one long list, so a new connection walks
        // O(FANOUT x depth) rules, not all of them (see `allow_tree`).
        family_allows.sort_by_key(|a| (a.dest.network(), a.dest.prefix_len(), a.port));
        let tag = match family {
            Family::V4 => "A4",
            Family::V6 => "A6",
        };
        rules.extend(allow_tree(&family_allows, tag, &mut subchains));
    }
    // Blocked: one rule per range, all jumping to one chain that refuses fast (TCP reset,
    // ICMP administratively-prohibited otherwise). Half the rules of a reset/prohibited pair
    // per range, and plain address matches instead of ~100 REJECT targets per boot, which the
    // kernel installs more slowly (nft's compat layer).
    for dest in &blocked {
        rules.push(format!("-d {dest} -j {REJECT_CHAIN}"));
    }
    // Then the extra destinations, the same way (after the allow rules, so an allowlist entry
    // still opens a specific one; after DNS, so a resolver among them still answers on 53).
    for dest in extra_blocked(family, &facts.blocked) {
        rules.push(format!("-d {dest} -j {REJECT_CHAIN}"));
    }
    if egress == Egress::Allowlist {
        rules.push(format!("-j {REJECT_CHAIN}"));
    }
    let refuse = [
        "-p tcp -j REJECT --reject-with tcp-reset".to_owned(),
        format!("-j REJECT --reject-with {reject}"),
    ];

    let hook = match family {
        Family::V4 => facts.hook_v4,
        Family::V6 => facts.hook_v6,
    };
    let declare = |chain: &str| match hook {
        None => format!("-N {chain}\n"),
        Some(_) => format!(":{chain} - [0:0]\n"),
    };
    let mut doc = format!(
        "# jailoc sandbox-init: {family} rules, {egress} egress\n*filter\n{}{}",
        declare(CHAIN),
        declare(REJECT_CHAIN)
    );
    for (name, _) in &subchains {
        doc.push_str(&declare(name));
    }
    let existing = match family {
        Family::V4 => &facts.chains_v4,
        Family::V6 => &facts.chains_v6,
    };
    let stale: Vec<&String> = existing
        .iter()
        .filter(|c| {
            *c != CHAIN && *c != REJECT_CHAIN && !subchains.iter().any(|(name, _)| name == *c)
        })
        .collect();
    for chain in &stale {
        let _ = writeln!(doc, ":{chain} - [0:0]");
    }
    for rule in &rules {
        let _ = writeln!(doc, "-A {CHAIN} {rule}");
    }
    for rule in &refuse {
        let _ = writeln!(doc, "-A {REJECT_CHAIN} {rule}");
    }
    for (name, body) in &subchains {
        for rule in body {
            let _ = writeln!(doc, "-A {name} {rule}");
        }
    }
    // Emptied above and no longer referenced (our main chain was refilled): delete.
    for chain in &stale {
        let _ = writeln!(doc, "-X {chain}");
    }
    let hook = hook.unwrap_or_default();
    if hook
        != (Hook {
            jumps: 1,
            first: true,
        })
    {
        for _ in 0..hook.jumps {
            let _ = writeln!(doc, "-D OUTPUT -j {CHAIN}");
        }
        let _ = writeln!(doc, "-I OUTPUT 1 -j {CHAIN}");
    }
    doc.push_str("COMMIT\n");
    doc
}

/// The extra blocked destinations as `family` renders them, each once: that family's own and,
/// for IPv6, the NAT64 and 6to4 forms of the IPv4 ones (as for the built-in ranges, so IPv6
/// cannot smuggle them); minus whatever a built-in blocked range holds already.
pub fn extra_blocked(family: Family, extras: &[IpNet]) -> Vec<IpNet> {
    let forms = extras.iter().flat_map(|dest| match (family, dest) {
        (Family::V4, IpNet::V4(_)) | (Family::V6, IpNet::V6(_)) => vec![*dest],
        (Family::V6, IpNet::V4(v4)) => vec![
            IpNet::V6(ranges::nat64(*v4)),
            IpNet::V6(ranges::sixto4(*v4)),
        ],
        (Family::V4, IpNet::V6(_)) => vec![],
    });
    let needed = forms.filter(|dest| ranges::covering(*dest).is_none());
    crate::policy::dedup(needed.collect())
}

/// Up to this many allowlisted destinations per family are plain rules in [`CHAIN`]; more are
/// arranged as a tree of sub-chains ([`allow_tree`]).
pub const TREE_ABOVE: usize = LEAF;

/// Destinations per leaf chain of the allowlist tree. Leaves hold nearly every rule, so their
/// size sets the number of chains, each of which costs the restore and the read-back more
/// netlink work; a new connection walks at most one leaf.
pub const LEAF: usize = 64;

/// Branching factor of the tree's inner chains: jumps per inner chain.
pub const FANOUT: usize = 16;

/// Prefix of every chain of ours (the main chain and the allowlist sub-chains).
pub const CHAIN_PREFIX: &str = "JAILOC-";

/// The rule bodies that accept one allowlisted destination.
fn allow_rules(allow: &Allow) -> Vec<String> {
    let dest = allow.dest;
    match allow.port {
        None => vec![format!("-d {dest} -j ACCEPT")],
        Some(port) => vec![
            format!("-d {dest} -p tcp -m tcp --dport {port} -j ACCEPT"),
            format!("-d {dest} -p udp -m udp --dport {port} -j ACCEPT"),
        ],
    }
}

/// The smallest network containing every destination of `group` (sorted by address).
fn cover(group: &[Allow]) -> IpNet {
    let (Some(first), Some(_)) = (group.first(), group.last()) else {
        return IpNet::default();
    };
    let lo = first.dest.network();
    let hi = group.iter().map(|a| a.dest.broadcast()).max().unwrap_or(lo);
    let common = match (lo, hi) {
        (IpAddr::V4(a), IpAddr::V4(b)) => (u32::from(a) ^ u32::from(b)).leading_zeros() as u8,
        (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a) ^ u128::from(b)).leading_zeros() as u8,
        _ => 0,
    };
    IpNet::new(lo, common)
        .map(|n| n.trunc())
        .unwrap_or(first.dest)
}

/// Many allowlisted destinations (sorted by address) as a tree: `allows` is cut into at most
/// [`FANOUT`] consecutive groups of [`LEAF`] × FANOUTⁿ; each group becomes one
/// `-d COVER -j SUBCHAIN` rule whose sub-chain holds the group (recursively, down to leaves of
/// at most LEAF destinations), where COVER is the smallest network containing the whole group.
/// A packet outside a cover skips the group with one rule; inside, it tries the group and, if
/// nothing there accepts, returns and goes on. So the result is exactly "accept if any allow
/// matches", and a new connection walks about FANOUT rules per inner level plus a leaf instead
/// of every allow. Returns the rules for the calling chain; the sub-chains are appended to
/// `subchains` as `(name, rules)`.
pub fn allow_tree(
    allows: &[Allow],
    tag: &str,
    subchains: &mut Vec<(String, Vec<String>)>,
) -> Vec<String> {
    if allows.len() <= LEAF {
        return allows.iter().flat_map(allow_rules).collect();
    }
    let mut chunk = LEAF;
    while allows.len() > chunk * FANOUT {
        chunk *= FANOUT;
    }
    let mut rules = Vec::new();
    for group in allows.chunks(chunk) {
        if group.len() == 1 {
            rules.extend(group.iter().flat_map(allow_rules));
            continue;
        }
        let name = format!("{CHAIN_PREFIX}{tag}-{}", subchains.len());
        let slot = subchains.len();
        subchains.push((name.clone(), Vec::new()));
        let body = allow_tree(group, tag, subchains);
        subchains[slot].1 = body;
        // iptables prints a /0 match as no match at all: render it the same way.
        match cover(group) {
            net if net.prefix_len() == 0 => rules.push(format!("-j {name}")),
            net => rules.push(format!("-d {net} -j {name}")),
        }
    }
    rules
}

/// The rules of all our chains (`-A JAILOC-...`) in a payload or in `iptables-save` output,
/// grouped by chain name (in order within a chain), so the two can be compared whatever order a
/// save lists chains in.
pub fn chain_rules(text: &str) -> Vec<RuleLine<'_>> {
    let prefix = format!("-A {CHAIN_PREFIX}");
    let mut rules: Vec<RuleLine<'_>> = text
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with(&prefix))
        .map(|text| RuleLine {
            chain: text.split_whitespace().nth(1).unwrap_or_default(),
            text,
        })
        .collect();
    // Stable: rules keep their order within a chain.
    rules.sort_by(|a, b| a.chain.cmp(b.chain));
    rules
}

/// One of our rule lines as text. Two are equal when their text is, or else when they
/// normalise to the same [`Rule`]: what an iptables version saves is nearly always our text
/// to the letter, so a read-back of thousands of rules parses only the few that differ.
#[derive(Debug, Clone, Copy)]
pub struct RuleLine<'a> {
    /// The chain the rule is appended to (`-A CHAIN`).
    pub chain: &'a str,
    text: &'a str,
}

impl PartialEq for RuleLine<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text || Rule::parse(self.text) == Rule::parse(other.text)
    }
}

impl std::fmt::Display for RuleLine<'_> {
    /// The normalised form (what a mismatch report shows).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        Rule::parse(self.text).fmt(f)
    }
}

/// One rule line, canonicalised so that what we render and what any iptables version saves
/// compare equal: addresses compared as networks (not as text), protocol numbers as names, and
/// the implicit protocol matches (`-m tcp` after `-p tcp`) dropped, since versions differ in
/// printing them. Borrowed from the text, so normalising a large read-back costs no copies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule<'a> {
    tokens: Vec<Token<'a>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token<'a> {
    Word(&'a str),
    Net(IpNet),
}

impl<'a> Rule<'a> {
    /// Normalises one `-A ...` line.
    pub fn parse(line: &'a str) -> Self {
        let words: Vec<&str> = line.split_whitespace().collect();
        let mut tokens: Vec<Token<'a>> = Vec::with_capacity(words.len());
        let mut i = 0;
        while i < words.len() {
            let word = words[i];
            let next = words.get(i + 1).copied();
            if word == "-m" && matches!(next, Some("tcp" | "udp" | "icmp" | "icmp6")) {
                i += 2;
                continue;
            }
            let token = if tokens.last() == Some(&Token::Word("-p")) {
                Token::Word(match word {
                    "1" => "icmp",
                    "6" => "tcp",
                    "17" => "udp",
                    "58" | "icmpv6" => "ipv6-icmp",
                    other => other,
                })
            } else {
                parse_net(word).map_or(Token::Word(word), Token::Net)
            };
            tokens.push(token);
            i += 1;
        }
        Rule { tokens }
    }
}

impl std::fmt::Display for Rule<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, token) in self.tokens.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            match token {
                Token::Word(word) => f.write_str(word)?,
                Token::Net(net) => write!(f, "{net}")?,
            }
        }
        Ok(())
    }
}

/// [`Rule::parse`] as text: the normalised form a read-back mismatch reports.
pub fn normalise_rule(line: &str) -> String {
    Rule::parse(line).to_string()
}

/// `ADDR` or `ADDR/LEN` as a network (an address alone is a host network), or `None` for
/// anything else. Cheap on the keywords that make up most of a read-back's tokens.
fn parse_net(word: &str) -> Option<IpNet> {
    let first = *word.as_bytes().first()?;
    if !(first.is_ascii_hexdigit() || first == b':') || !word.contains(['.', ':']) {
        return None;
    }
    let (addr, len) = match word.split_once('/') {
        Some((addr, len)) => (addr.parse::<IpAddr>().ok()?, Some(len.parse::<u8>().ok()?)),
        None => (word.parse::<IpAddr>().ok()?, None),
    };
    match len {
        Some(len) => IpNet::new(addr, len).ok(),
        None => Some(IpNet::from(addr)),
    }
}

/// The names of our chains (`JAILOC-...`) declared in `iptables-save` output.
pub fn our_chains(save: &str) -> Vec<String> {
    save.lines()
        .filter_map(|l| l.strip_prefix(':'))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| name.starts_with(CHAIN_PREFIX))
        .map(str::to_owned)
        .collect()
}

/// How `OUTPUT` currently jumps to our chain, from `iptables-save` output.
pub fn hook_of(save: &str) -> Hook {
    let jump = format!("-A OUTPUT -j {CHAIN}");
    let output: Vec<&str> = save
        .lines()
        .map(str::trim_end)
        .filter(|l| l.starts_with("-A OUTPUT "))
        .collect();
    Hook {
        jumps: output.iter().filter(|l| **l == jump).count(),
        first: output.first().is_some_and(|l| *l == jump),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{parse_host, parse_network};

    fn policy(egress: Egress, hosts: &[&str], networks: &[&str]) -> Policy {
        Policy {
            egress,
            hosts: hosts.iter().map(|h| parse_host(h).expect("host")).collect(),
            networks: networks
                .iter()
                .map(|n| parse_network(n).expect("net"))
                .collect(),
            ..Policy::default()
        }
    }

    fn resolution(pairs: &[(&str, &[&str])]) -> Resolution {
        Resolution {
            addrs: pairs
                .iter()
                .map(|(n, a)| {
                    (
                        n.to_string(),
                        a.iter().map(|a| a.parse().expect("ip")).collect(),
                    )
                })
                .collect(),
            warnings: vec![],
        }
    }

    fn facts(resolvers: &[&str]) -> Facts {
        Facts {
            resolvers: resolvers.iter().map(|r| r.parse().expect("ip")).collect(),
            ..Facts::default()
        }
    }

    fn position(rules: &str, needle: &str) -> usize {
        rules
            .lines()
            .position(|l| l == needle)
            .unwrap_or_else(|| panic!("missing {needle:?} in\n{rules}"))
    }

    #[test]
    fn dns_to_a_blocked_resolver_comes_before_the_block() {
        let r = render(Egress::Open, &[], &facts(&["10.0.0.2", "fd00::53"]));
        let dns = position(
            &r.v4,
            "-A JAILOC-OUTPUT -d 10.0.0.2/32 -p udp -m udp --dport 53 -j ACCEPT",
        );
        let block = position(&r.v4, "-A JAILOC-OUTPUT -d 10.0.0.0/8 -j JAILOC-REJECT");
        assert!(dns < block);
        assert!(
            position(
                &r.v6,
                "-A JAILOC-OUTPUT -d fd00::53/128 -p tcp -m tcp --dport 53 -j ACCEPT"
            ) < position(&r.v6, "-A JAILOC-OUTPUT -d fc00::/7 -j JAILOC-REJECT")
        );
        // Only port 53 of the resolver: no rule opens the resolver as a whole.
        assert!(!r.v4.contains("-d 10.0.0.2/32 -j ACCEPT"));
    }

    #[test]
    fn order_is_loopback_established_nd_dns_allow_block() {
        let p = policy(Egress::Allowlist, &["pypi.org"], &[]);
        let (a, _) = allows(
            &p,
            &resolution(&[("pypi.org", &["151.101.0.223", "2a04:4e42::223"])]),
        );
        let r = render(p.egress, &a, &facts(&["127.0.0.11"]));
        let v6 = [
            "-A JAILOC-OUTPUT -o lo -j ACCEPT",
            "-A JAILOC-OUTPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
            "-A JAILOC-OUTPUT -p ipv6-icmp -m icmp6 --icmpv6-type 135 -j ACCEPT",
            "-A JAILOC-OUTPUT -d 2a04:4e42::223/128 -j ACCEPT",
            "-A JAILOC-OUTPUT -d fe80::/10 -j JAILOC-REJECT",
            "-A JAILOC-OUTPUT -j JAILOC-REJECT",
        ];
        let positions: Vec<usize> = v6.iter().map(|l| position(&r.v6, l)).collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
        assert!(r.v4.lines().last() == Some("COMMIT"));
        assert!(!r.v4.contains("icmp6") && !r.v4.contains("2a04"));
        assert!(!r.v6.contains("151.101"));
    }

    #[test]
    fn ipv6_packets_with_a_routing_header_are_refused_before_anything_is_accepted() {
        // A segment routing header hides the real destination behind an allowed first segment,
        // also on an established connection or via loopback: the rule comes first of all.
        let p = policy(Egress::Open, &["2001:db8::10"], &[]);
        let (a, _) = allows(&p, &Resolution::default());
        for egress in [Egress::Open, Egress::Allowlist] {
            let r = render(egress, &a, &facts(&["fd00::53"]));
            let rules = chain_rules(&r.v6);
            let first = rules.iter().find(|l| l.chain == CHAIN).expect("rules");
            assert_eq!(first.to_string(), "-A JAILOC-OUTPUT -m rt -j JAILOC-REJECT");
            assert_eq!(r.v6.matches("-m rt").count(), 1);
            assert!(!r.v4.contains("-m rt"), "IPv4 has no routing header");
        }
    }

    fn with_blocked(
        egress: Egress,
        hosts: &[&str],
        resolvers: &[&str],
        blocked: &[&str],
    ) -> RuleSets {
        let p = policy(egress, hosts, &[]);
        let (a, _) = allows(&p, &Resolution::default());
        let facts = Facts {
            blocked: blocked.iter().map(|b| b.parse().expect("net")).collect(),
            ..facts(resolvers)
        };
        render(egress, &a, &facts)
    }

    #[test]
    fn extra_blocked_destinations_come_after_the_allows_and_dns_in_both_modes() {
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        for egress in [Egress::Open, Egress::Allowlist] {
            let r = with_blocked(
                egress,
                &["203.0.113.7:443", "[2001:db8:17::1]:22"],
                &["203.0.113.53", "2001:db8:17::53"],
                &["203.0.113.0/24", "2001:db8:17::/64", "2001:db8:17::1/128"],
            );
            let last_builtin = position(
                &r.v4,
                "-A JAILOC-OUTPUT -d 168.63.129.16/32 -j JAILOC-REJECT",
            );
            let extra = position(&r.v4, "-A JAILOC-OUTPUT -d 203.0.113.0/24 -j JAILOC-REJECT");
            assert!(last_builtin < extra);
            assert!(
                position(
                    &r.v4,
                    "-A JAILOC-OUTPUT -d 203.0.113.7/32 -p tcp -m tcp --dport 443 -j ACCEPT"
                ) < extra
            );
            // What the chain does with new connections: refused in both modes, except the
            // allowlisted port and the resolvers' port 53.
            for (payload, dest, proto, port, want) in [
                (&r.v4, "203.0.113.9", "tcp", 80, "REJECT"),
                (&r.v4, "203.0.113.7", "tcp", 80, "REJECT"),
                (&r.v4, "203.0.113.7", "tcp", 443, "ACCEPT"),
                (&r.v4, "203.0.113.53", "udp", 53, "ACCEPT"),
                (&r.v4, "203.0.113.53", "tcp", 80, "REJECT"),
                (&r.v6, "2001:db8:17::2", "tcp", 22, "REJECT"),
                (&r.v6, "2001:db8:17::1", "tcp", 22, "ACCEPT"),
                (&r.v6, "2001:db8:17::1", "tcp", 2222, "REJECT"),
                (&r.v6, "2001:db8:17::53", "tcp", 53, "ACCEPT"),
            ] {
                assert_eq!(
                    evaluate(payload, ip(dest), proto, port).0,
                    want,
                    "{egress} {dest} {proto}/{port}"
                );
            }
            // A public host elsewhere stays open in open egress.
            let open = if egress == Egress::Open { "" } else { "REJECT" };
            assert_eq!(evaluate(&r.v4, ip("198.51.100.10"), "tcp", 80).0, open);
        }
    }

    #[test]
    fn extra_ipv4_destinations_are_blocked_in_their_nat64_and_6to4_forms_too() {
        let r = with_blocked(Egress::Open, &[], &[], &["203.0.113.7/32"]);
        assert!(r
            .v4
            .contains("-A JAILOC-OUTPUT -d 203.0.113.7/32 -j JAILOC-REJECT\n"));
        assert!(r
            .v6
            .contains("-A JAILOC-OUTPUT -d 64:ff9b::cb00:7107/128 -j JAILOC-REJECT\n"));
        assert!(r
            .v6
            .contains("-A JAILOC-OUTPUT -d 2002:cb00:7107::/48 -j JAILOC-REJECT\n"));
        assert!(!r.v6.contains("203.0.113.7/32"));
    }

    #[test]
    fn extras_a_built_in_range_holds_already_get_no_rule_and_duplicates_one() {
        // Docker's usual facts: the bridge, its gateway, link-local: nothing new to render.
        let plain = render(Egress::Open, &[], &facts(&[]));
        let docker = with_blocked(
            Egress::Open,
            &[],
            &[],
            &[
                "172.17.0.0/16",
                "172.17.0.1/32",
                "fe80::/64",
                "fd17::1/128",
                "fd17::/64",
            ],
        );
        assert_eq!(docker, plain);
        let twice = with_blocked(
            Egress::Open,
            &[],
            &[],
            &["2001:db8:17::/64", "2001:db8:17::/64"],
        );
        assert_eq!(twice.v6.matches("-d 2001:db8:17::/64 ").count(), 1);
    }

    #[test]
    fn open_egress_has_no_catch_all_and_allowlist_has_one() {
        let open = render(Egress::Open, &[], &facts(&[]));
        let closed = render(Egress::Allowlist, &[], &facts(&[]));
        for rules in [&open.v4, &open.v6] {
            assert!(!rules.contains("-A JAILOC-OUTPUT -j JAILOC-REJECT"));
        }
        for rules in [&closed.v4, &closed.v6] {
            let last = rules
                .lines()
                .rfind(|l| l.starts_with("-A JAILOC-OUTPUT "))
                .expect("rules");
            assert_eq!(last, "-A JAILOC-OUTPUT -j JAILOC-REJECT");
        }
    }

    #[test]
    fn ports_give_tcp_and_udp_rules_only_for_that_port() {
        let p = policy(
            Egress::Open,
            &["[fd00::5]:8080", "10.1.2.3"],
            &["192.168.5.0/24:5432"],
        );
        let (a, _) = allows(&p, &Resolution::default());
        let r = render(p.egress, &a, &facts(&[]));
        assert!(r.v6.contains("-A JAILOC-OUTPUT -d fd00::5/128 -p tcp -m tcp --dport 8080 -j ACCEPT\n-A JAILOC-OUTPUT -d fd00::5/128 -p udp -m udp --dport 8080 -j ACCEPT\n"));
        assert!(r
            .v4
            .contains("-A JAILOC-OUTPUT -d 192.168.5.0/24 -p tcp -m tcp --dport 5432 -j ACCEPT\n"));
        assert!(r.v4.contains("-A JAILOC-OUTPUT -d 10.1.2.3/32 -j ACCEPT\n"));
        assert!(!r.v6.contains("-d fd00::5/128 -j ACCEPT"));
    }

    #[test]
    fn every_blocked_range_gets_a_tcp_reset_and_an_icmp_reject() {
        let r = render(Egress::Open, &[], &facts(&[]));
        for net in ranges::blocked_v4() {
            assert!(r
                .v4
                .contains(&format!("-A JAILOC-OUTPUT -d {net} -j JAILOC-REJECT\n")));
        }
        for net in ranges::blocked_v6() {
            assert!(r
                .v6
                .contains(&format!("-A JAILOC-OUTPUT -d {net} -j JAILOC-REJECT\n")));
        }
        // The one place that refuses: a TCP reset, ICMP(v6) admin-prohibited for the rest.
        let refuse = |rules: &str| -> Vec<String> {
            rules
                .lines()
                .filter(|l| l.starts_with("-A JAILOC-REJECT "))
                .map(String::from)
                .collect()
        };
        assert_eq!(
            refuse(&r.v4),
            [
                "-A JAILOC-REJECT -p tcp -j REJECT --reject-with tcp-reset",
                "-A JAILOC-REJECT -j REJECT --reject-with icmp-admin-prohibited"
            ]
        );
        assert_eq!(
            refuse(&r.v6),
            [
                "-A JAILOC-REJECT -p tcp -j REJECT --reject-with tcp-reset",
                "-A JAILOC-REJECT -j REJECT --reject-with icmp6-adm-prohibited"
            ]
        );
        assert!(!r.v4.contains("DROP") && !r.v6.contains("DROP"));
    }

    #[test]
    fn never_touches_builtin_policies_or_nat() {
        let r = render(Egress::Allowlist, &[], &facts(&["127.0.0.11"]));
        for rules in [&r.v4, &r.v6] {
            assert!(!rules.contains("*nat"));
            assert!(
                !rules.contains(":OUTPUT")
                    && !rules.contains(":INPUT")
                    && !rules.contains(":FORWARD")
            );
            assert!(!rules.contains("-F") && !rules.contains("-P "));
        }
    }

    #[test]
    fn the_jump_is_added_only_when_missing_or_not_first() {
        let jump = "-I OUTPUT 1 -j JAILOC-OUTPUT";
        let with = |hook: Hook| {
            render(
                Egress::Open,
                &[],
                &Facts {
                    hook_v4: Some(hook),
                    ..Facts::default()
                },
            )
            .v4
        };
        assert!(with(Hook {
            jumps: 0,
            first: false
        })
        .contains(jump));
        assert!(!with(Hook {
            jumps: 1,
            first: true
        })
        .contains(jump));
        let moved = with(Hook {
            jumps: 1,
            first: false,
        });
        assert!(moved.contains("-D OUTPUT -j JAILOC-OUTPUT\n-I OUTPUT 1 -j JAILOC-OUTPUT\n"));
        let doubled = with(Hook {
            jumps: 2,
            first: true,
        });
        assert_eq!(doubled.matches("-D OUTPUT -j JAILOC-OUTPUT").count(), 2);
    }

    #[test]
    fn without_facts_the_chain_is_created_with_n_and_hooked_first() {
        let fresh = render(Egress::Open, &[], &Facts::default());
        for (doc, first) in [
            (&fresh.v4, "-o lo -j ACCEPT"),
            (&fresh.v6, "-m rt -j JAILOC-REJECT"),
        ] {
            assert!(doc.contains(&format!(
                "\n*filter\n-N JAILOC-OUTPUT\n-N JAILOC-REJECT\n-A JAILOC-OUTPUT {first}\n"
            )));
            assert!(!doc.contains(":JAILOC-OUTPUT"));
            assert!(doc.ends_with("\n-I OUTPUT 1 -j JAILOC-OUTPUT\nCOMMIT\n"));
            assert!(!doc.contains("-D OUTPUT"));
        }
        let refill = render(
            Egress::Open,
            &[],
            &Facts {
                hook_v4: Some(Hook::default()),
                ..Facts::default()
            },
        );
        assert!(refill.v4.contains("\n*filter\n:JAILOC-OUTPUT - [0:0]\n"));
        assert!(!refill.v4.contains("-N JAILOC-OUTPUT"));
        let shrunk = render(
            Egress::Open,
            &[],
            &Facts {
                hook_v4: Some(Hook {
                    jumps: 1,
                    first: true,
                }),
                chains_v4: vec!["JAILOC-OUTPUT".into(), "JAILOC-A4-3".into()],
                ..Facts::default()
            },
        );
        assert!(shrunk.v4.contains(
            "*filter\n:JAILOC-OUTPUT - [0:0]\n:JAILOC-REJECT - [0:0]\n:JAILOC-A4-3 - [0:0]\n"
        ));
        assert!(shrunk.v4.ends_with("\n-X JAILOC-A4-3\nCOMMIT\n"));
        assert_eq!(
            our_chains(&shrunk.v4),
            ["JAILOC-OUTPUT", "JAILOC-REJECT", "JAILOC-A4-3"]
        );
    }

    #[test]
    fn hook_of_reads_iptables_save() {
        let save = "*filter\n:OUTPUT ACCEPT [0:0]\n:JAILOC-OUTPUT - [0:0]\n-A OUTPUT -j JAILOC-OUTPUT\n-A OUTPUT -d 1.2.3.4/32 -j ACCEPT\nCOMMIT\n";
        assert_eq!(
            hook_of(save),
            Hook {
                jumps: 1,
                first: true
            }
        );
        assert_eq!(
            hook_of("*filter\n-A OUTPUT -o lo -j ACCEPT\n-A OUTPUT -j JAILOC-OUTPUT\n"),
            Hook {
                jumps: 1,
                first: false
            }
        );
        assert_eq!(hook_of(""), Hook::default());
    }

    #[test]
    fn names_resolving_into_metadata_space_are_refused_unless_that_range_is_allowed() {
        let res = resolution(&[("evil.example", &["169.254.169.254", "93.184.216.34"])]);
        let p = policy(Egress::Open, &["evil.example"], &[]);
        let (a, w) = allows(&p, &res);
        assert_eq!(
            a,
            vec![Allow {
                dest: "93.184.216.34/32".parse().expect("net"),
                port: None
            }]
        );
        assert_eq!(w, ["refusing 169.254.169.254 for evil.example: it is in 169.254.0.0/16 (link-local/metadata); add 169.254.0.0/16 to allowed_networks to allow it"]);

        let p = policy(Egress::Open, &["evil.example"], &["169.254.169.254/32"]);
        let (a, w) = allows(&p, &res);
        assert!(w.is_empty());
        assert!(a.iter().any(|x| x.dest.to_string() == "169.254.169.254/32"));

        // A wider allowed network (0.0.0.0/0) is not "that range".
        let p = policy(Egress::Open, &["evil.example"], &["0.0.0.0/0"]);
        assert_eq!(allows(&p, &res).1.len(), 1);

        // Private space is what allowlisting an internal host is for.
        let res = resolution(&[("db.corp", &["10.1.2.3"])]);
        let (a, w) = allows(&policy(Egress::Open, &["db.corp:5432"], &[]), &res);
        assert!(w.is_empty());
        assert_eq!(a[0].port, Some(5432));
    }

    #[test]
    fn normalise_and_chain_rules() {
        assert_eq!(
            normalise_rule("-A JAILOC-OUTPUT  -d 10.0.0.1 -j ACCEPT"),
            "-A JAILOC-OUTPUT -d 10.0.0.1/32 -j ACCEPT"
        );
        assert_eq!(
            normalise_rule("-A X -d FD00:0::5/128 -j ACCEPT"),
            "-A X -d fd00::5/128 -j ACCEPT"
        );
        // Versions differ in printing implicit matches and protocol names: both forms agree.
        assert_eq!(
            normalise_rule("-A X -d 10.0.0.2/32 -p udp -m udp --dport 53 -j ACCEPT"),
            normalise_rule("-A X -d 10.0.0.2/32 -p 17 --dport 53 -j ACCEPT")
        );
        assert_eq!(
            normalise_rule("-A X -p ipv6-icmp -m icmp6 --icmpv6-type 135 -j ACCEPT"),
            normalise_rule("-A X -p icmpv6 --icmpv6-type 135 -j ACCEPT")
        );
        // But a different port, protocol or target still differs.
        assert_ne!(
            normalise_rule("-A X -p tcp -m tcp --dport 53 -j ACCEPT"),
            normalise_rule("-A X -p udp -m udp --dport 53 -j ACCEPT")
        );
        assert_ne!(
            normalise_rule("-A X -d 10.0.0.0/8 -j ACCEPT"),
            normalise_rule("-A X -d 10.0.0.0/8 -j REJECT")
        );
        // Addresses that start with a colon are addresses too.
        assert_eq!(
            normalise_rule("-A X -d ::ffff:0:0/96 -j JAILOC-REJECT"),
            normalise_rule("-A X -d ::ffff:0.0.0.0/96 -j JAILOC-REJECT")
        );
        let r = render(Egress::Open, &[], &facts(&[]));
        // lo, established, one jump per blocked range, and the two refusals.
        assert_eq!(chain_rules(&r.v4).len(), 2 + ranges::BLOCKED_V4.len() + 2);
    }

    #[test]
    fn rendering_is_deterministic() {
        let p = policy(
            Egress::Allowlist,
            &["a.example", "10.0.0.5:22"],
            &["fd00:1::/64"],
        );
        let res = resolution(&[("a.example", &["198.51.100.7", "2001:db8::7"])]);
        let (a1, _) = allows(&p, &res);
        let (a2, _) = allows(&p, &res);
        assert_eq!(
            render(p.egress, &a1, &facts(&["127.0.0.11"])),
            render(p.egress, &a2, &facts(&["127.0.0.11"]))
        );
    }

    /// A tiny iptables evaluator for a new TCP/UDP connection: follows jumps, returns the
    /// verdict ("ACCEPT", "REJECT", or "" when the chain falls through) and how many rules the
    /// packet was compared with.
    fn evaluate(payload: &str, dest: IpAddr, proto: &str, port: u16) -> (String, usize) {
        let mut chains: std::collections::HashMap<String, Vec<Vec<String>>> = Default::default();
        for line in payload.lines().filter(|l| l.starts_with("-A ")) {
            let tokens: Vec<String> = line.split_whitespace().map(String::from).collect();
            chains
                .entry(tokens[1].clone())
                .or_default()
                .push(tokens[2..].to_vec());
        }
        fn walk(
            chains: &std::collections::HashMap<String, Vec<Vec<String>>>,
            chain: &str,
            pkt: (IpAddr, &str, u16),
            seen: &mut usize,
        ) -> Option<String> {
            for rule in chains.get(chain).map(Vec::as_slice).unwrap_or_default() {
                *seen += 1;
                let arg = |flag: &str| {
                    rule.iter()
                        .position(|t| t == flag)
                        .map(|i| rule[i + 1].clone())
                };
                // The packets evaluated carry no routing header and are new, not on loopback.
                let matches = rule
                    .iter()
                    .all(|t| t != "-o" && t != "conntrack" && t != "rt")
                    && arg("-d").is_none_or(|d| d.parse::<IpNet>().expect("net").contains(&pkt.0))
                    && arg("-p").is_none_or(|p| p == pkt.1)
                    && arg("--dport").is_none_or(|p| p == pkt.2.to_string());
                if !matches {
                    continue;
                }
                match arg("-j").as_deref() {
                    Some(t @ ("ACCEPT" | "REJECT")) => return Some(t.to_owned()),
                    Some(sub) => {
                        if let Some(v) = walk(chains, sub, pkt, seen) {
                            return Some(v);
                        }
                    }
                    None => {}
                }
            }
            None
        }
        let mut seen = 0;
        let verdict = walk(&chains, CHAIN, (dest, proto, port), &mut seen).unwrap_or_default();
        (verdict, seen)
    }

    #[test]
    fn many_allows_become_a_tree_that_accepts_exactly_what_the_list_does() {
        let mut networks: Vec<String> = (0..5000)
            .map(|i| {
                format!(
                    "10.{}.{}.{}/32",
                    200 + i / 62500,
                    (i / 250) % 250,
                    i % 250 + 1
                )
            })
            .collect();
        networks.push("172.20.0.0/16:5432".to_owned());
        networks.push("fd00:5::/64".to_owned());
        let networks: Vec<&str> = networks.iter().map(String::as_str).collect();
        let p = policy(Egress::Allowlist, &["192.0.2.10"], &networks);
        let (allows, _) = allows(&p, &Resolution::default());
        let tree = render(Egress::Allowlist, &allows, &facts(&["127.0.0.11"]));
        assert!(tree.v4.contains("-j JAILOC-A4-"), "a tree for v4");
        assert!(
            !tree.v6.contains("-j JAILOC-A6-"),
            "v6 has few allows: a plain list"
        );
        // The same destinations, rendered as one plain list, as the reference.
        let plain = |a: &Allow| {
            allow_rules(a)
                .into_iter()
                .map(|r| format!("-A {CHAIN} {r}\n"))
        };
        let list: String = allows
            .iter()
            .filter(|a| a.dest.addr().is_ipv4())
            .flat_map(plain)
            .collect();
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        for (dest, proto, port) in [
            ("10.200.0.1", "tcp", 443),
            ("10.200.19.250", "udp", 53),
            ("10.200.120.7", "tcp", 80),
            ("10.200.119.250", "tcp", 80),
            ("10.200.0.0", "tcp", 80),
            ("10.201.0.1", "tcp", 80),
            ("172.20.3.4", "tcp", 5432),
            ("172.20.3.4", "tcp", 5433),
            ("192.0.2.10", "udp", 9),
            ("192.0.2.11", "tcp", 80),
            ("198.51.100.10", "tcp", 80),
        ] {
            let (want, _) = evaluate(&list, ip(dest), proto, port);
            let want = if want.is_empty() {
                "REJECT"
            } else {
                want.as_str()
            };
            let (got, _) = evaluate(&tree.v4, ip(dest), proto, port);
            assert_eq!(got, want, "{dest} {proto}/{port}");
        }
        // What a user notices: a new connection no longer walks 5,000 rules.
        for dest in ["198.51.100.10", "10.200.13.77", "10.200.19.250"] {
            let (_, walked) = evaluate(&tree.v4, ip(dest), "tcp", 80);
            let (_, linear) = evaluate(&list, ip(dest), "tcp", 80);
            assert!(linear >= 4900 || dest != "198.51.100.10");
            assert!(walked < 400, "{dest}: {walked} rules walked");
        }
    }

    #[test]
    fn up_to_tree_above_allows_stay_a_plain_list() {
        let networks: Vec<String> = (0..TREE_ABOVE).map(|i| format!("10.9.{i}.0/24")).collect();
        let networks: Vec<&str> = networks.iter().map(String::as_str).collect();
        let p = policy(Egress::Open, &[], &networks);
        let (allows, _) = allows(&p, &Resolution::default());
        let r = render(Egress::Open, &allows, &facts(&[]));
        assert!(!r.v4.contains("JAILOC-A4"));
        assert_eq!(r.v4.matches(" -j ACCEPT\n").count(), TREE_ABOVE + 2);
    }
}
