//! The nf_tables backend's fast path: the plan written over netlink in one transaction for
//! both families, and read back over netlink — no iptables process on the boot's path.
//!
//! | file | job |
//! |---|---|
//! | `msg.rs` | nfnetlink messages as bytes: the writer and a bounded reader |
//! | `encode.rs` | a plan as the transaction, encoded as `iptables-nft-restore` encodes it |
//! | `names.rs` | the DNS gate's opens and closes in `JAILOC-NAMES`, the same way |
//!
//! [`install`] sends the fresh transaction (`-N` of every chain of ours, the rules, the jump
//! first in `OUTPUT`; IPv4 and IPv6 together, all or nothing) and then dumps every rule of the
//! namespace to check that the kernel holds exactly what was sent: each chain of ours rule for
//! rule (the expressions in order, every attribute sent with the value sent; counters aside),
//! nothing else in them, and the jump the first rule of each `OUTPUT` and its only one. A dump
//! before the transaction finds a restart (our chains stand): the same check then says whether
//! they already hold this plan (kept as they are, nothing written). `JAILOC-NAMES` is the
//! gate's and is not compared. Anything else — another plan standing, a kernel that refuses a
//! message, a socket error — is an `Err`, and `apply.rs` falls back to `iptables-nft-restore`,
//! which also handles the refill and the legacy backend. Except one state: our rules standing
//! where no packet meets them (a dormant table, an `OUTPUT` off its hook) is
//! [`NativeError::Unhooked`], fatal: `iptables-nft-save` prints it as the plan.

pub mod encode;
pub mod msg;
pub mod names;

use crate::firewall::rules::{ChainName, Family, Table, CHAIN_PREFIX};
use crate::firewall::Plan;
use crate::sys::{self, Errno, Netlink};
use encode::Sent;
use msg::{attrs, find};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

/// What [`install`] found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A fresh namespace: the plan was written and read back.
    Fresh,
    /// The plan stood already (a restart with the same policy): nothing was written.
    Kept,
}

/// Why the netlink path did not install the plan (the iptables path takes over).
#[derive(Debug, thiserror::Error)]
pub enum NativeError {
    #[error("netlink socket: {0}")]
    Socket(Errno),
    #[error("the kernel refused the transaction: {0}")]
    Refused(Errno),
    #[error("our chains stand with other rules: {0}")]
    AnotherPlan(String),
    #[error("read back: {0}")]
    ReadBack(String),
    /// Our rules stand, but no packet meets them (a dormant table, an `OUTPUT` off its hook):
    /// `iptables-nft-save` prints such a state as the plan, so no fallback can tell.
    #[error("our rules stand off the output path: {0}")]
    Unhooked(String),
}

/// The receive buffer for one answer. A dump's datagrams are cut to fit it (the kernel sizes
/// them by what the reader offers, up to 32 KiB), an error echoes one request: 16 KiB holds
/// many rules, and the DNS gate, which reads its changes' answers here too, stays small.
const DATAGRAM: usize = 16 << 10;

/// How long the kernel gets to answer a dump (it answers at once; this bounds a lost reply).
const DUMP_TIMEOUT: Duration = Duration::from_secs(2);

/// Writes `plan` (fresh namespace) or finds it standing (restart), and checks the kernel's
/// rules against it.
pub fn install(plan: &Plan) -> Result<Outcome, NativeError> {
    let (batch, sent) = encode::fresh(plan);
    let socket = Netlink::netfilter().map_err(NativeError::Socket)?;
    // The transaction is one datagram, and every failed message is echoed back in an error.
    let room = i32::try_from(batch.len() * 2 + (1 << 20)).unwrap_or(i32::MAX);
    let _ = socket.set_send_buffer(room);
    let _ = socket.set_recv_buffer(room);
    // A restart finds our chains: looked for first, because a transaction the kernel aborts
    // costs it a grace period (~10 ms here), more than the whole fresh path.
    let before = dump_rules(&socket)?;
    if before.iter().any(|d| d.chain.starts_with(CHAIN_PREFIX)) {
        check(plan, &sent, &before).map_err(NativeError::AnotherPlan)?;
        hooked(&socket)?;
        return Ok(Outcome::Kept);
    }
    socket.send(&batch).map_err(NativeError::Socket)?;
    // The kernel handles a batch inside the send: its errors are queued already.
    if let Some(&e) = drain_errors(&socket)?.first() {
        return Err(NativeError::Refused(Errno(e)));
    }
    let after = dump_rules(&socket)?;
    check(plan, &sent, &after).map_err(NativeError::ReadBack)?;
    hooked(&socket)?;
    Ok(Outcome::Fresh)
}

/// Every rule of this network namespace, as the kernel holds it (the oracle test's view).
pub fn dump() -> Result<Vec<Dumped>, NativeError> {
    let socket = Netlink::netfilter().map_err(NativeError::Socket)?;
    let _ = socket.set_recv_buffer(1 << 22);
    dump_rules(&socket)
}

/// The error numbers of the answers waiting on `socket` (positive, `EEXIST` = 17).
pub(crate) fn drain_errors(socket: &Netlink) -> Result<Vec<i32>, NativeError> {
    let mut buf = vec![0u8; DATAGRAM];
    let mut errors = Vec::new();
    loop {
        match socket.recv(&mut buf) {
            Ok(n) => {
                for m in msg::messages(&buf[..n]) {
                    match m.error() {
                        Some(e) if e != 0 => errors.push(-e),
                        _ => {}
                    }
                }
            }
            Err(e) if e.0 == libc::EAGAIN => return Ok(errors),
            Err(e) => return Err(NativeError::Socket(e)),
        }
    }
}

/// One rule as the kernel holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dumped {
    pub family: u8,
    pub table: String,
    pub chain: String,
    pub exprs: Vec<u8>,
}

/// Every rule of the namespace (all families), in chain order.
fn dump_rules(socket: &Netlink) -> Result<Vec<Dumped>, NativeError> {
    Ok(dump_rule_handles(socket)?
        .into_iter()
        .map(|(rule, _)| rule)
        .collect())
}

/// [`dump_rules`], each rule with its handle (what deletes it).
pub(crate) fn dump_rule_handles(socket: &Netlink) -> Result<Vec<(Dumped, u64)>, NativeError> {
    let rules = dump_all(socket, msg::GETRULE, msg::NEWRULE)?;
    Ok(rules
        .into_iter()
        .map(|(family, body)| {
            let text = |kind| {
                find(&body, kind)
                    .map(|b| {
                        String::from_utf8_lossy(b.strip_suffix(b"\0").unwrap_or(b)).into_owned()
                    })
                    .unwrap_or_default()
            };
            let handle = find(&body, 3)
                .and_then(|b| b.try_into().ok())
                .map_or(0, u64::from_be_bytes);
            let rule = Dumped {
                family,
                table: text(1),
                chain: text(2),
                exprs: find(&body, 4).unwrap_or_default().to_vec(),
            };
            (rule, handle)
        })
        .collect())
}

/// Every object the dump request `get` answers with `new` messages (all families): each
/// one's family and attributes.
fn dump_all(socket: &Netlink, get: u16, new: u16) -> Result<Vec<(u8, Vec<u8>)>, NativeError> {
    let mut w = msg::Writer::default();
    w.message(get, msg::F_REQUEST | msg::F_DUMP, 0, |_| {});
    socket.send(&w.buf).map_err(NativeError::Socket)?;
    let mut buf = vec![0u8; DATAGRAM];
    let mut found = Vec::new();
    let deadline = Instant::now() + DUMP_TIMEOUT;
    loop {
        let n = match socket.recv(&mut buf) {
            Ok(n) => n,
            Err(e) if e.0 == libc::EAGAIN => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(NativeError::ReadBack("no answer to a dump".into()));
                }
                sys::poll_readable(&[socket.as_fd()], left).map_err(NativeError::Socket)?;
                continue;
            }
            Err(e) => return Err(NativeError::Socket(e)),
        };
        for m in msg::messages(&buf[..n]) {
            if m.flags & msg::F_DUMP_INTR != 0 {
                return Err(NativeError::ReadBack(
                    "the rules changed while they were read".into(),
                ));
            }
            match m.kind {
                msg::NLMSG_DONE => {
                    return match m.error().unwrap_or(0) {
                        0 => Ok(found),
                        e => Err(NativeError::Refused(Errno(-e))),
                    }
                }
                msg::NLMSG_ERROR => {
                    let e = m.error().unwrap_or(0);
                    return Err(NativeError::Refused(Errno(-e)));
                }
                kind if kind == new => found.push((m.family, m.body.to_vec())),
                _ => {}
            }
        }
    }
}

/// Whether the kernel's rules (`dumped`) are exactly the plan's (`sent`): see the module doc.
pub fn check(plan: &Plan, sent: &[Sent], dumped: &[Dumped]) -> Result<(), String> {
    for family in [Family::V4, Family::V6] {
        let nf = encode::nfproto(family);
        for table in Table::ALL {
            let name = table.to_string();
            let here = |d: &&Dumped| d.family == nf && d.table == name;
            let chains = match table {
                Table::Filter => plan.chains.get(family),
                Table::Nat => plan.nat.get(family),
            };
            // Each chain of ours, rule for rule.
            for chain in chains.iter().filter(|c| c.name != ChainName::Names) {
                let chain = chain.name.to_string();
                let want: Vec<&Sent> = sent
                    .iter()
                    .filter(|s| s.family == family && s.table == table && s.chain == chain)
                    .collect();
                let have: Vec<&Dumped> = dumped
                    .iter()
                    .filter(here)
                    .filter(|d| d.chain == chain)
                    .collect();
                if want.len() != have.len() {
                    return Err(format!(
                        "{family} {name} {chain}: {} rules sent, {} in the kernel",
                        want.len(),
                        have.len()
                    ));
                }
                for (i, (w, h)) in want.iter().zip(&have).enumerate() {
                    if !same_rule(&h.exprs, &w.exprs) {
                        return Err(format!("{family} {name} {chain}: rule {} differs", i + 1));
                    }
                }
            }
            // No chain of ours beyond the plan's.
            let names: Vec<String> = chains.iter().map(|p| p.name.to_string()).collect();
            let planned = |c: &str| names.iter().any(|p| p == c);
            if let Some(d) = dumped
                .iter()
                .filter(here)
                .find(|d| d.chain.starts_with(CHAIN_PREFIX) && !planned(&d.chain))
            {
                return Err(format!("{family} {name}: {} is not in the plan", d.chain));
            }
            // The one jump, first in OUTPUT.
            let hook = table.hook().to_string();
            let output: Vec<&Dumped> = dumped
                .iter()
                .filter(here)
                .filter(|d| d.chain == "OUTPUT")
                .collect();
            let jump = encode::hook_exprs(table.hook());
            if !output.first().is_some_and(|d| same_rule(&d.exprs, &jump)) {
                return Err(format!(
                    "{family} {name}: the first rule of OUTPUT is not the jump to {hook}"
                ));
            }
            let jumps = output.iter().filter(|d| jumps_to(&d.exprs, &hook)).count();
            if jumps != 1 {
                return Err(format!(
                    "{family} {name}: {jumps} jumps from OUTPUT to {hook}"
                ));
            }
        }
    }
    Ok(())
}

/// Whether packets meet our rules: see [`live`].
fn hooked(socket: &Netlink) -> Result<(), NativeError> {
    let tables = dump_all(socket, msg::GETTABLE, msg::NEWTABLE)?;
    let chains = dump_all(socket, msg::GETCHAIN, msg::NEWCHAIN)?;
    live(&tables, &chains).map_err(NativeError::Unhooked)
}

/// Whether each family's `filter` and `nat` table (`tables`, as dumped: family, attributes)
/// is awake and its `OUTPUT` (`chains`, the same) a base chain on the output hook at
/// iptables' priority and of its type. The rules alone do not say it: a dormant table or an
/// `OUTPUT` no hook calls holds every rule and filters nothing.
pub fn live(tables: &[(u8, Vec<u8>)], chains: &[(u8, Vec<u8>)]) -> Result<(), String> {
    let be32 = |b: &[u8]| b.try_into().ok().map(u32::from_be_bytes);
    let text = |s: &str| [s.as_bytes(), b"\0"].concat();
    for family in [Family::V4, Family::V6] {
        let nf = encode::nfproto(family);
        for table in Table::ALL {
            let name = table.to_string();
            let Some((_, t)) = tables
                .iter()
                .find(|(f, b)| *f == nf && find(b, 1) == Some(&text(&name)[..]))
            else {
                return Err(format!("{family} {name}: no such table"));
            };
            if find(t, 2).and_then(be32).unwrap_or(0) & 1 != 0 {
                return Err(format!("{family} {name}: the table is dormant"));
            }
            let (priority, kind) = encode::output_hook(table);
            let hook = chains
                .iter()
                .find(|(f, b)| {
                    *f == nf
                        && find(b, 1) == Some(&text(&name)[..])
                        && find(b, 3) == Some(&b"OUTPUT\0"[..])
                })
                .and_then(|(_, c)| Some((find(c, 4)?, find(c, 7)?)));
            let on_output = hook.is_some_and(|(hook, type_)| {
                find(hook, 1).and_then(be32) == Some(3) // NF_INET_LOCAL_OUT
                    && find(hook, 2).and_then(be32) == Some(priority as u32)
                    && type_ == text(kind)
            });
            if !on_output {
                return Err(format!(
                    "{family} {name}: OUTPUT is not a {kind} chain on the output hook at priority {priority}"
                ));
            }
        }
    }
    Ok(())
}

/// Whether a rule the kernel holds is the rule sent: the same expressions in the same order,
/// each with every attribute sent at the value sent (a counter's values aside: they count).
pub fn same_rule(dumped: &[u8], sent: &[u8]) -> bool {
    attrs(dumped).count() == attrs(sent).count()
        && attrs(dumped).zip(attrs(sent)).all(|(h, w)| {
            let name = find(w.data, 1);
            find(h.data, 1) == name
                && (name == Some(&b"counter\0"[..])
                    || covers(
                        find(h.data, 2).unwrap_or_default(),
                        find(w.data, 2).unwrap_or_default(),
                    ))
        })
}

/// Whether `dumped` holds every attribute of `sent` with the same value (nests compared the
/// same way; the kernel may add defaults of its own, such as a bitwise operation).
fn covers(dumped: &[u8], sent: &[u8]) -> bool {
    attrs(sent).all(|w| {
        attrs(dumped).find(|h| h.kind == w.kind).is_some_and(|h| {
            if w.nested {
                covers(h.data, w.data)
            } else {
                h.data == w.data
            }
        })
    })
}

/// Whether one of a rule's expressions is a jump to `chain`.
fn jumps_to(exprs: &[u8], chain: &str) -> bool {
    attrs(exprs).any(|e| {
        find(e.data, 1) == Some(&b"immediate\0"[..])
            && find(e.data, 2)
                .and_then(|d| find(d, 2))
                .and_then(|d| find(d, 2))
                .and_then(|v| find(v, 2))
                .and_then(|v| v.strip_suffix(b"\0"))
                == Some(chain.as_bytes())
    })
}
