//! The firewall as data: [`Plan::new`] joins the policy, the hosts file, the resolvers of
//! resolv.conf and the container's own link (gateways, on-link prefixes) once, into the typed
//! chains of both families. Pure: the boot installs this plan, `--print-plan` prints it and the
//! golden tests compare it, all from the same value.
//!
//! The order of `JAILOC-OUTPUT` (docs/net.md, "What is allowed, in this order"): IPv6 routing
//! headers refused first of all; the agent's packets from port 53 (posing as a resolver) and
//! its DNS that did not go to the gate (a stale connection of the gate's); loopback; established connections; ICMPv6 neighbour discovery;
//! the DNS gate's own queries to the resolvers; the agent's DNS, redirected to the gate; the
//! allowlist's literal addresses and networks (a tree of sub-chains when it is long);
//! `JAILOC-NAMES`, the addresses the gate opened for allowlisted names; every built-in blocked
//! range; the extra blocked destinations; in `allowlist` egress everything else. Every refusal
//! jumps to `JAILOC-REJECT`, which hands the packet's headers to the DNS gate (NFLOG group
//! [`NFLOG_GROUP`], the egress record) and answers with a TCP reset or ICMP(v6)
//! administratively-prohibited, so a tool fails at once instead of hanging.
//!
//! In the `nat` table, `JAILOC-DNS` (first in `OUTPUT`) sends DNS (53/udp+tcp, to any address)
//! of every process but the gate to the gate's port on loopback. Docker's own `nat` rules for
//! its embedded DNS stay untouched: the gate's queries return from our chain and meet them.

use super::link::{self, Extra, Routes};
use super::ranges;
use super::rules::{Chain, ChainName, Family, Match, PerFamily, Proto, RejectWith, Rule, Target};
use crate::dns::allow::{self, Allowlist};
use crate::dns::conf::HostsFile;
use crate::policy::{dedup, Egress, HostRef, Policy, GATE_PORT, GATE_UID};
use ipnet::IpNet;
use std::net::IpAddr;

/// ICMPv6 types neighbour discovery needs to send: router solicitation, neighbour solicitation,
/// neighbour advertisement.
const ND_TYPES: &[u8] = &[133, 135, 136];

/// Up to this many allowlisted destinations per family are plain rules in `JAILOC-OUTPUT`;
/// more are arranged as a tree of sub-chains ([`allow_tree`]).
pub const TREE_ABOVE: usize = LEAF;

/// The netlink group `JAILOC-REJECT` logs every refused packet to (`-j NFLOG`), read by the
/// DNS gate into the egress record. Any of 0-65535 works; a fixed one so the gate and the rules
/// agree, and one nothing else in a container is likely to bind (a group has one reader).
pub const NFLOG_GROUP: u16 = 14;

/// Bytes of each refused packet the kernel copies to the gate: the IPv4 header (at most 60
/// bytes) or the IPv6 header (40) with room for extension headers, then the 4 bytes of the
/// TCP/UDP ports. The agent's payload beyond that is never copied.
pub const NFLOG_SIZE: u16 = 128;

/// Destinations per leaf chain of the allowlist tree. Leaves hold nearly every rule, so their
/// size sets the number of chains, each of which costs the restore and the read-back more
/// netlink work; a new connection walks at most one leaf.
pub const LEAF: usize = 64;

/// Branching factor of the tree's inner chains: jumps per inner chain.
pub const FANOUT: usize = 16;

/// One destination the allowlist opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Allow {
    pub dest: IpNet,
    /// Only this TCP and UDP port, when set.
    pub port: Option<u16>,
}

/// Everything the firewall will be, decided before anything is run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub egress: Egress,
    /// What the plan opens from the start, both families, each once, in policy order: literal
    /// addresses, hosts-file names the allowlist covers, networks. Other names the gate opens.
    pub allows: Vec<Allow>,
    /// The `nameserver`s of resolv.conf: the gate's own DNS (53/udp+tcp) may reach these.
    pub resolvers: Vec<IpAddr>,
    /// Destinations refused besides the built-in ranges, with where each came from: the
    /// policy's `blocked_networks`, then the container's gateways and on-link prefixes.
    pub extras: Vec<Extra>,
    /// Names refused for resolving into link-local/metadata space, then what the routing
    /// tables could not say.
    pub warnings: Vec<String>,
    /// Our `filter` chains per family: `JAILOC-OUTPUT`, `JAILOC-REJECT`, `JAILOC-NAMES`
    /// (empty: the gate fills it), then any allowlist sub-chains.
    pub chains: PerFamily<Vec<Chain>>,
    /// Our `nat` chain per family: `JAILOC-DNS`, the redirect to the gate.
    pub nat: PerFamily<Vec<Chain>>,
}

impl Plan {
    /// The plan for `policy`, the `hosts` file, the `resolvers` of resolv.conf and the
    /// container's `routes`.
    pub fn new(policy: &Policy, hosts: &HostsFile, resolvers: &[IpAddr], routes: &Routes) -> Plan {
        let (allows, mut warnings) = allows(policy, hosts);
        warnings.extend(routes.warnings.iter().cloned());
        let extras = link::extras(&policy.blocked, &routes.found);
        Plan::build_for(
            policy.agent.uid,
            policy.egress,
            allows,
            resolvers.to_vec(),
            extras,
            warnings,
        )
    }

    /// The chains for what [`Plan::new`] joined, for the default agent uid (tests).
    #[cfg(test)]
    pub(crate) fn build(
        egress: Egress,
        allows: Vec<Allow>,
        resolvers: Vec<IpAddr>,
        extras: Vec<Extra>,
        warnings: Vec<String>,
    ) -> Plan {
        let agent = crate::policy::AGENT_UID;
        Plan::build_for(agent, egress, allows, resolvers, extras, warnings)
    }

    /// The chains for what [`Plan::new`] joined, the agent being `agent_uid`.
    pub(crate) fn build_for(
        agent_uid: u32,
        egress: Egress,
        allows: Vec<Allow>,
        resolvers: Vec<IpAddr>,
        extras: Vec<Extra>,
        warnings: Vec<String>,
    ) -> Plan {
        let blocked: Vec<IpNet> = extras.iter().map(|e| e.dest).collect();
        let chains = PerFamily::new(|family| {
            chains(family, agent_uid, egress, &allows, &resolvers, &blocked)
        });
        let nat = PerFamily::new(|_| vec![redirect_chain()]);
        Plan {
            egress,
            allows,
            resolvers,
            extras,
            warnings,
            chains,
            nat,
        }
    }
}

/// What is open from the start: the literal addresses, the hosts-file names the allowlist
/// covers (the agent's C library answers those without DNS, so the gate never sees them) and
/// the networks. A name's address in link-local/metadata space is refused with a warning unless
/// `allowed_networks` holds that range or a part of it covering the address
/// ([`allow::admit`]); literal addresses are taken as written.
pub(crate) fn allows(policy: &Policy, hosts: &HostsFile) -> (Vec<Allow>, Vec<String>) {
    let mut allows = Vec::new();
    let mut warnings = Vec::new();
    for entry in &policy.hosts {
        if let HostRef::Addr(addr) = entry.host {
            allows.push(Allow {
                dest: IpNet::from(addr),
                port: entry.port,
            });
        }
    }
    // Only the entries covering a name of the hosts file are indexed: a long allowlist is
    // scanned once, without copying it (the gate indexes it all, after the fork).
    let in_file = hosts.sorted();
    let names = Allowlist::new(
        policy
            .hosts
            .iter()
            .filter(|entry| in_file.iter().any(|(name, _)| entry.host.covers(name)))
            .collect(),
    );
    if !names.is_empty() {
        for (name, addrs) in in_file {
            let ports = names.ports(name);
            if ports.is_empty() {
                continue;
            }
            for addr in addrs {
                match allow::admit(&policy.networks, *addr) {
                    Ok(()) => allows.extend(allow::allows_for(*addr, &ports)),
                    Err(range) => warnings.push(format!(
                        "refusing {addr} for {name}: it is in {range} (link-local/metadata); \
                         add {range} to allowed_networks to allow it"
                    )),
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
    (dedup(allows), warnings)
}

/// `JAILOC-DNS` (`nat`): the gate's and root's queries return untouched (to Docker's rules for
/// its embedded DNS, or out); every other DNS packet, to any address, goes to the gate.
fn redirect_chain() -> Chain {
    // Root's DNS returns too: in a container that is Docker's embedded DNS forwarding the gate's
    // queries upstream from inside the namespace (sent back to the gate, they would loop). The
    // agent is never root.
    let mut rules = vec![
        Rule::new(Match::Owner(GATE_UID), Target::Return),
        Rule::new(Match::Owner(0), Target::Return),
    ];
    for proto in [Proto::Udp, Proto::Tcp] {
        rules.push(Rule::new(
            Match::Port(proto, 53),
            Target::Redirect(GATE_PORT),
        ));
    }
    Chain {
        name: ChainName::Dns,
        rules,
    }
}

/// One family's chains, in the order of the module comment.
fn chains(
    family: Family,
    agent_uid: u32,
    egress: Egress,
    allows: &[Allow],
    resolvers: &[IpAddr],
    blocked: &[IpNet],
) -> Vec<Chain> {
    let reject = Target::Jump(ChainName::Reject);
    let mut rules = Vec::new();
    if family == Family::V6 {
        // First of all, before loopback and established connections: an IPv6 packet with a
        // routing header. `-d` sees only its next segment; a type-4 segment routing header
        // (which any process may attach with IPV6_RTHDR) can name a blocked destination as the
        // final one behind an allowed first, also on an established connection. Nothing the
        // agent legitimately sends carries one.
        rules.push(Rule::new(Match::RoutingHeader, reject));
    }
    // Before loopback and established connections: the agent sending from port 53. The gate's
    // upstream socket takes any datagram from its resolver's address and port 53; with Docker's
    // embedded DNS that address is local (127.0.0.11), and the agent may bind port 53 there
    // (Docker lets any user bind low ports) and forge the answer that opens an address. An
    // answer to the gate's own query would even pass as an established connection.
    //
    // And the agent's DNS that the redirect did not send to the gate. The `nat` table decides
    // once per connection: a packet that belongs to a connection conntrack already knows is not
    // redirected again. The gate's closed upstream sockets leave such connections behind
    // (its port → the resolver's 53, marked established), so an agent that sends from that
    // same port to the resolver would reach it directly, past the gate, as an established
    // connection. Only DNS sent to the gate (loopback, port 53 after the redirect) may pass.
    let gate = match family {
        Family::V4 => IpNet::from(IpAddr::from([127, 0, 0, 1])),
        Family::V6 => IpNet::from(IpAddr::from(std::net::Ipv6Addr::LOCALHOST)),
    };
    for proto in [Proto::Udp, Proto::Tcp] {
        let posing = Match::OwnerSourcePort {
            uid: agent_uid,
            port: (proto, 53),
        };
        rules.push(Rule::new(posing, reject));
        let past_the_gate = Match::OwnerPortNotTo {
            uid: agent_uid,
            except: gate,
            port: (proto, 53),
        };
        rules.push(Rule::new(past_the_gate, reject));
    }
    // And the agent to a resolver on loopback at any other port: Docker's embedded DNS listens
    // on 127.0.0.11 at a random port (53 there is only its DNAT), which the agent can read in
    // /proc/net/udp; a query sent straight there would skip the gate (and `-o lo` accepts it).
    // Not the gate's own addresses: the agent's DNS arrives there.
    let gate_addrs = [
        IpAddr::from([127, 0, 0, 1]),
        IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
    ];
    for resolver in resolvers
        .iter()
        .filter(|r| r.is_loopback() && !gate_addrs.contains(r))
        .map(|r| IpNet::from(*r))
        .filter(|d| family.holds(d))
    {
        let past = Match::OwnerTo {
            uid: agent_uid,
            net: resolver,
        };
        rules.push(Rule::new(past, reject));
    }
    rules.push(Rule::new(Match::Loopback, Target::Accept));
    rules.push(Rule::new(Match::Established, Target::Accept));
    if family == Family::V6 {
        for t in ND_TYPES {
            rules.push(Rule::new(Match::Icmpv6(*t), Target::Accept));
        }
    }
    // The gate's own queries, to the resolvers only (a resolver in a blocked range, such as a
    // corporate one in 10.0.0.0/8, still answers it; the agent's DNS never leaves as it is).
    for net in resolvers
        .iter()
        .map(|r| IpNet::from(*r))
        .filter(|d| family.holds(d))
    {
        for proto in [Proto::Udp, Proto::Tcp] {
            let dns = Match::OwnerDest {
                uid: GATE_UID,
                net,
                port: (proto, 53),
            };
            rules.push(Rule::new(dns, Target::Accept));
        }
    }
    // Root's DNS, anywhere: Docker's embedded DNS forwarding upstream from inside the
    // namespace (see `redirect_chain`). The agent is never root.
    for proto in [Proto::Udp, Proto::Tcp] {
        let root_dns = Match::OwnerPort {
            uid: 0,
            port: (proto, 53),
        };
        rules.push(Rule::new(root_dns, Target::Accept));
    }
    // The agent's DNS, as the `nat` redirect left it: to the gate on loopback. It leaves
    // through the interface the original destination was routed to, so `-o lo` misses it.
    for proto in [Proto::Udp, Proto::Tcp] {
        let to_gate = Match::Dest {
            net: gate,
            port: Some((proto, GATE_PORT)),
        };
        rules.push(Rule::new(to_gate, Target::Accept));
    }
    let mut family_allows: Vec<Allow> = allows
        .iter()
        .filter(|a| family.holds(&a.dest))
        .copied()
        .collect();
    let mut subchains: Vec<Chain> = Vec::new();
    if family_allows.len() <= TREE_ABOVE {
        rules.extend(family_allows.iter().flat_map(allow_rules));
    } else {
        // Many allows: a tree of chains instead of one long list, so a new connection walks
        // O(FANOUT x depth) rules, not all of them (see `allow_tree`).
        family_allows.sort_by_key(|a| (a.dest.network(), a.dest.prefix_len(), a.port));
        rules.extend(allow_tree(&family_allows, family, &mut subchains));
    }
    // What the gate opened for allowlisted names (empty until it answers one).
    rules.push(Rule::new(Match::Any, Target::Jump(ChainName::Names)));
    // Blocked: one rule per range, all jumping to one chain that refuses fast (TCP reset,
    // ICMP administratively-prohibited otherwise). Half the rules of a reset/prohibited pair
    // per range, and plain address matches instead of ~100 REJECT targets per boot, which the
    // kernel installs more slowly (nft's compat layer).
    let builtin: Vec<IpNet> = match family {
        Family::V4 => ranges::blocked_v4().into_iter().map(IpNet::V4).collect(),
        Family::V6 => ranges::blocked_v6().into_iter().map(IpNet::V6).collect(),
    };
    // Then the extra destinations, the same way (after the allow rules, so an allowlist entry
    // still opens a specific one; after DNS, so a resolver among them still answers on 53).
    for net in builtin.into_iter().chain(extra_blocked(family, blocked)) {
        rules.push(Rule::new(Match::Dest { net, port: None }, reject));
    }
    if egress == Egress::Allowlist {
        rules.push(Rule::new(Match::Any, reject));
    }
    let icmp = match family {
        Family::V4 => RejectWith::Icmp,
        Family::V6 => RejectWith::Icmp6,
    };
    // First in the reject chain: a copy of the refused packet's headers to the gate, which
    // records what was refused and why (the egress record). NFLOG does not decide: the packet
    // goes on to the refusal below.
    let nflog = Target::Nflog {
        group: NFLOG_GROUP,
        size: NFLOG_SIZE,
    };
    let refuse = vec![
        Rule::new(Match::Any, nflog),
        Rule::new(
            Match::Proto(Proto::Tcp),
            Target::Reject(RejectWith::TcpReset),
        ),
        Rule::new(Match::Any, Target::Reject(icmp)),
    ];
    let mut chains = vec![
        Chain {
            name: ChainName::Output,
            rules,
        },
        Chain {
            name: ChainName::Reject,
            rules: refuse,
        },
        Chain {
            name: ChainName::Names,
            rules: Vec::new(),
        },
    ];
    chains.extend(subchains);
    chains
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
    dedup(needed.collect())
}

/// The rules that accept one allowlisted destination.
pub(crate) fn allow_rules(allow: &Allow) -> Vec<Rule> {
    let net = allow.dest;
    let to = |port| Rule::new(Match::Dest { net, port }, Target::Accept);
    match allow.port {
        None => vec![to(None)],
        Some(port) => vec![to(Some((Proto::Tcp, port))), to(Some((Proto::Udp, port)))],
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
/// `subchains`, numbered in the order they are opened.
fn allow_tree(allows: &[Allow], family: Family, subchains: &mut Vec<Chain>) -> Vec<Rule> {
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
        let slot = subchains.len();
        let name = ChainName::Allow {
            family,
            index: slot,
        };
        subchains.push(Chain {
            name,
            rules: Vec::new(),
        });
        subchains[slot].rules = allow_tree(group, family, subchains);
        // iptables prints a /0 match as no match at all: render it the same way.
        let when = match cover(group) {
            net if net.prefix_len() == 0 => Match::Any,
            net => Match::Dest { net, port: None },
        };
        rules.push(Rule::new(when, Target::Jump(name)));
    }
    rules
}
