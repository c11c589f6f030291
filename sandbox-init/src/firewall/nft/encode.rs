//! A [`Plan`] as one nf_tables transaction, encoded exactly as `iptables-nft-restore` (1.8.9)
//! encodes the same rules: the same tables and chains, native expressions where iptables-nft
//! uses them (addresses, protocols, ports, the output interface, verdicts, NFLOG as `log`), the
//! xtables matches and targets it keeps (`owner`, `conntrack`, `icmp6`, `rt`, `REJECT`,
//! `REDIRECT`) with the same binary info. So `iptables-nft-save`, the gate's later
//! `iptables-nft-restore` and `sandbox-init --verify` read these rules as if iptables had
//! written them; the privileged oracle test (`sandbox-init/tests/netns_iptables.rs`) holds the
//! two encodings equal, attribute by attribute, for every golden fixture policy.

use super::msg::{Writer, F_APPEND, F_CREATE, F_EXCL, F_REQUEST, NEWCHAIN, NEWRULE, NEWTABLE};
use crate::firewall::rules::{
    Chain, ChainName, Family, Match, Proto, RejectWith, Rule, Table, Target,
};
use crate::firewall::Plan;
use ipnet::IpNet;
use std::net::IpAddr;

/// `AF_INET` / `AF_INET6`: the nfgenmsg family of each family's tables.
pub fn nfproto(family: Family) -> u8 {
    match family {
        Family::V4 => 2,
        Family::V6 => 10,
    }
}

/// A rule as sent: where it went and its expressions (the `NFTA_RULE_EXPRESSIONS` nest's
/// content), for the read-back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    pub family: Family,
    pub table: Table,
    pub chain: String,
    pub exprs: Vec<u8>,
}

/// The transaction: every family's `filter` and `nat` chains of `plan` as a fresh container
/// gets them (`-N` for each chain of ours, its rules, the jump first in `OUTPUT`), and the
/// rules as sent.
pub fn fresh(plan: &Plan) -> (Vec<u8>, Vec<Sent>) {
    // A 10-name plan's batch is 32 KiB: written without growing (a long allowlist's doubles).
    let mut w = Writer::with_capacity(64 << 10);
    let mut sent = Vec::new();
    w.begin_batch();
    for family in [Family::V4, Family::V6] {
        for table in Table::ALL {
            let chains = match table {
                Table::Filter => plan.chains.get(family),
                Table::Nat => plan.nat.get(family),
            };
            section(&mut w, &mut sent, family, table, chains);
        }
    }
    w.end_batch();
    (w.buf, sent)
}

/// One table of one family, message for message as `iptables-nft-restore --noflush` sends it.
fn section(w: &mut Writer, sent: &mut Vec<Sent>, family: Family, table: Table, chains: &[Chain]) {
    let nf = nfproto(family);
    let name = table.to_string();
    let new_table = |w: &mut Writer| {
        w.message(NEWTABLE, F_REQUEST | F_CREATE, nf, |w| w.str(1, &name));
    };
    for chain in chains {
        new_table(w);
        // EXCL: on a restart our chains exist, and the whole transaction fails, changing nothing.
        w.message(NEWCHAIN, F_REQUEST | F_EXCL, nf, |w| {
            w.str(1, &name);
            w.str(3, &chain.name.to_string());
        });
    }
    for chain in chains {
        let chain_name = chain.name.to_string();
        for rule in &chain.rules {
            new_table(w);
            let exprs = rule_exprs(family, rule);
            w.message(NEWRULE, F_REQUEST | F_CREATE | F_APPEND, nf, |w| {
                rule_body(w, &name, &chain_name, &exprs, l4proto(&rule.when));
            });
            sent.push(Sent {
                family,
                table,
                chain: chain_name.clone(),
                exprs,
            });
        }
    }
    // The built-in OUTPUT, created where it is missing (a fresh namespace), and our jump as
    // its first rule (no APPEND: inserted at the head).
    new_table(w);
    let (priority, kind) = output_hook(table);
    w.message(NEWCHAIN, F_REQUEST | F_CREATE, nf, |w| {
        w.str(1, &name);
        w.str(3, "OUTPUT");
        w.nest(4, |w| {
            w.be32(1, 3); // NF_INET_LOCAL_OUT
            w.be32(2, priority as u32);
        });
        w.be32(5, 1); // policy NF_ACCEPT
        w.str(7, kind);
    });
    let jump = hook_exprs(table.hook());
    w.message(NEWRULE, F_REQUEST | F_CREATE, nf, |w| {
        rule_body(w, &name, "OUTPUT", &jump, 0);
    });
    sent.push(Sent {
        family,
        table,
        chain: "OUTPUT".into(),
        exprs: jump,
    });
}

/// The priority and type of `table`'s built-in `OUTPUT` chain, as iptables hooks it.
pub fn output_hook(table: Table) -> (i32, &'static str) {
    match table {
        Table::Filter => (0, "filter"),
        Table::Nat => (-100, "nat"),
    }
}

/// The expressions of the one jump from `OUTPUT` into `chain`.
pub fn hook_exprs(chain: ChainName) -> Vec<u8> {
    let mut e = Writer::default();
    counter(&mut e);
    verdict(&mut e, VERDICT_JUMP, Some(&chain.to_string()));
    e.buf
}

pub(crate) fn rule_body(w: &mut Writer, table: &str, chain: &str, exprs: &[u8], proto: u8) {
    w.str(1, table);
    w.str(2, chain);
    w.nest(4, |w| w.buf.extend_from_slice(exprs));
    // NFTA_RULE_COMPAT: the protocol xtables matches may rely on.
    w.nest(5, |w| {
        w.be32(1, u32::from(proto));
        w.be32(2, 0);
    });
}

/// The protocol number a rule is limited to (`-p`), 0 for none.
pub(crate) fn l4proto(when: &Match) -> u8 {
    let proto = match *when {
        Match::Icmpv6(_) => return 58,
        Match::Proto(p) | Match::Port(p, _) => p,
        Match::Dest {
            port: Some((p, _)), ..
        } => p,
        Match::OwnerSourcePort { port: (p, _), .. }
        | Match::OwnerPort { port: (p, _), .. }
        | Match::OwnerPortNotTo { port: (p, _), .. }
        | Match::OwnerDest { port: (p, _), .. } => p,
        _ => return 0,
    };
    proto_number(proto)
}

fn proto_number(proto: Proto) -> u8 {
    match proto {
        Proto::Tcp => 6,
        Proto::Udp => 17,
    }
}

/// One rule's expressions, in iptables-nft's order: output interface, protocol, destination,
/// the matches as the rule text names them, a counter, the target.
pub fn rule_exprs(family: Family, rule: &Rule) -> Vec<u8> {
    let mut e = Writer::with_capacity(512);
    let proto = l4proto(&rule.when);
    if rule.when == Match::Loopback {
        meta(&mut e, META_OIFNAME);
        cmp(&mut e, CMP_EQ, b"lo\0");
    }
    if proto != 0 {
        meta(&mut e, META_L4PROTO);
        cmp(&mut e, CMP_EQ, &[proto]);
    }
    match rule.when {
        Match::Dest { net, .. } | Match::OwnerTo { net, .. } | Match::OwnerDest { net, .. } => {
            dest(&mut e, net, false)
        }
        Match::OwnerPortNotTo { except, .. } => dest(&mut e, except, true),
        _ => {}
    }
    match rule.when {
        Match::Owner(uid)
        | Match::OwnerSourcePort { uid, .. }
        | Match::OwnerPort { uid, .. }
        | Match::OwnerTo { uid, .. }
        | Match::OwnerPortNotTo { uid, .. }
        | Match::OwnerDest { uid, .. } => owner(&mut e, uid),
        _ => {}
    }
    match rule.when {
        Match::OwnerSourcePort { port: (_, p), .. } => port(&mut e, SOURCE_PORT, p),
        Match::Port(_, p)
        | Match::Dest {
            port: Some((_, p)), ..
        }
        | Match::OwnerPort { port: (_, p), .. }
        | Match::OwnerPortNotTo { port: (_, p), .. }
        | Match::OwnerDest { port: (_, p), .. } => port(&mut e, DEST_PORT, p),
        Match::Icmpv6(kind) => xt(&mut e, "match", "icmp6", 0, &[kind, 0, 0xff, 0, 0, 0, 0, 0]),
        Match::Established => xt(&mut e, "match", "conntrack", 3, &conntrack_established()),
        Match::RoutingHeader => xt(&mut e, "match", "rt", 0, &routing_header()),
        _ => {}
    }
    counter(&mut e);
    match rule.then {
        Target::Accept => verdict(&mut e, VERDICT_ACCEPT, None),
        Target::Return => verdict(&mut e, VERDICT_RETURN, None),
        Target::Jump(chain) => verdict(&mut e, VERDICT_JUMP, Some(&chain.to_string())),
        Target::Reject(with) => {
            let code: u8 = match (family, with) {
                (Family::V4, RejectWith::TcpReset) => 7, // IPT_TCP_RESET
                (Family::V6, RejectWith::TcpReset) => 6, // IP6T_TCP_RESET
                (_, RejectWith::Icmp) => 8,              // IPT_ICMP_ADMIN_PROHIBITED
                (_, RejectWith::Icmp6) => 1,             // IP6T_ICMP6_ADM_PROHIBITED
            };
            xt(&mut e, "target", "REJECT", 0, &[code, 0, 0, 0, 0, 0, 0, 0]);
        }
        Target::Redirect(to) => xt(&mut e, "target", "REDIRECT", 0, &redirect(family, to)),
        Target::Nflog { group, size } => expr(&mut e, "log", |w| {
            w.attr(1, &group.to_be_bytes()); // NFTA_LOG_GROUP
            w.be32(3, u32::from(size)); // NFTA_LOG_SNAPLEN
        }),
    }
    e.buf
}

const META_OIFNAME: u32 = 7;
const META_L4PROTO: u32 = 16;
const CMP_EQ: u32 = 0;
const CMP_NEQ: u32 = 1;
const NETWORK_HEADER: u32 = 1;
const TRANSPORT_HEADER: u32 = 2;
const SOURCE_PORT: u32 = 0;
const DEST_PORT: u32 = 2;
pub const VERDICT_ACCEPT: i32 = 1;
pub const VERDICT_JUMP: i32 = -3;
pub const VERDICT_RETURN: i32 = -5;
/// Register 1, where every match loads what it compares.
const REG: u32 = 1;

/// One element of the expression list: `NFTA_EXPR_NAME` and its `NFTA_EXPR_DATA`.
fn expr(w: &mut Writer, name: &str, data: impl FnOnce(&mut Writer)) {
    w.nest(1, |w| {
        w.str(1, name);
        w.nest(2, data);
    });
}

fn meta(w: &mut Writer, key: u32) {
    expr(w, "meta", |w| {
        w.be32(2, key);
        w.be32(1, REG);
    });
}

fn cmp(w: &mut Writer, op: u32, value: &[u8]) {
    expr(w, "cmp", |w| {
        w.be32(1, REG);
        w.be32(2, op);
        w.nest(3, |w| w.attr(1, value));
    });
}

fn payload(w: &mut Writer, base: u32, offset: u32, len: u32) {
    expr(w, "payload", |w| {
        w.be32(1, REG);
        w.be32(2, base);
        w.be32(3, offset);
        w.be32(4, len);
    });
}

/// `-d NET` (`! -d` with `negate`): a whole-byte prefix loads just its bytes; any other loads
/// the address and masks it. A /0 matches everything and is left out, as iptables does.
fn dest(w: &mut Writer, net: IpNet, negate: bool) {
    let (addr, offset): (Vec<u8>, u32) = match net.network() {
        IpAddr::V4(a) => (a.octets().to_vec(), 16),
        IpAddr::V6(a) => (a.octets().to_vec(), 24),
    };
    let bits = usize::from(net.prefix_len());
    if bits == 0 && !negate {
        return;
    }
    let op = if negate { CMP_NEQ } else { CMP_EQ };
    if bits.is_multiple_of(8) {
        payload(w, NETWORK_HEADER, offset, (bits / 8) as u32);
        cmp(w, op, &addr[..bits / 8]);
        return;
    }
    let mask: Vec<u8> = match net.netmask() {
        IpAddr::V4(m) => m.octets().to_vec(),
        IpAddr::V6(m) => m.octets().to_vec(),
    };
    let len = addr.len() as u32;
    payload(w, NETWORK_HEADER, offset, len);
    expr(w, "bitwise", |w| {
        w.be32(1, REG);
        w.be32(2, REG);
        w.be32(3, len);
        w.nest(4, |w| w.attr(1, &mask));
        w.nest(5, |w| w.attr(1, &vec![0; mask.len()]));
    });
    cmp(w, op, &addr);
}

fn port(w: &mut Writer, offset: u32, port: u16) {
    payload(w, TRANSPORT_HEADER, offset, 2);
    cmp(w, CMP_EQ, &port.to_be_bytes());
}

/// An xtables match or target (`name` is "match" or "target") with its binary info.
fn xt(w: &mut Writer, kind: &str, name: &str, revision: u32, info: &[u8]) {
    expr(w, kind, |w| {
        w.str(1, name);
        w.be32(2, revision);
        w.attr(3, info);
    });
}

/// `-m owner --uid-owner UID` (struct xt_owner_match_info, host byte order).
fn owner(w: &mut Writer, uid: u32) {
    let mut info = [0u8; 24];
    info[0..4].copy_from_slice(&uid.to_ne_bytes()); // uid_min
    info[4..8].copy_from_slice(&uid.to_ne_bytes()); // uid_max
    info[16] = 1; // match: XT_OWNER_UID
    xt(w, "match", "owner", 1, &info);
}

/// `-m conntrack --ctstate RELATED,ESTABLISHED` (struct xt_conntrack_mtinfo3).
fn conntrack_established() -> [u8; 168] {
    let mut info = [0u8; 168];
    info[146] = 1; // match_flags: XT_CONNTRACK_STATE
    info[150] = 6; // state_mask: ESTABLISHED | RELATED
    info
}

/// `-m rt` (struct ip6t_rt: any type, segments left 0 to 0xffffffff).
fn routing_header() -> [u8; 280] {
    let mut info = [0u8; 280];
    info[8..12].copy_from_slice(&[0xff; 4]); // ids[1]
    info
}

/// `-j REDIRECT --to-ports PORT`: IPv4's nf_nat_ipv4_multi_range_compat, IPv6's nf_nat_range.
fn redirect(family: Family, to: u16) -> Vec<u8> {
    let port = to.to_be_bytes();
    match family {
        Family::V4 => {
            let mut info = vec![0u8; 24];
            info[0] = 1; // rangesize
            info[4] = 2; // flags: NF_NAT_RANGE_PROTO_SPECIFIED
            info[16..18].copy_from_slice(&port);
            info[18..20].copy_from_slice(&port);
            info
        }
        Family::V6 => {
            let mut info = vec![0u8; 40];
            info[0] = 2;
            info[36..38].copy_from_slice(&port);
            info[38..40].copy_from_slice(&port);
            info
        }
    }
}

fn counter(w: &mut Writer) {
    expr(w, "counter", |w| {
        w.attr(1, &0u64.to_be_bytes()); // bytes
        w.attr(2, &0u64.to_be_bytes()); // packets
    });
}

fn verdict(w: &mut Writer, code: i32, chain: Option<&str>) {
    expr(w, "immediate", |w| {
        w.be32(1, 0); // NFT_REG_VERDICT
        w.nest(2, |w| {
            w.nest(2, |w| {
                w.be32(1, code as u32);
                if let Some(chain) = chain {
                    w.str(2, chain);
                }
            });
        });
    });
}
