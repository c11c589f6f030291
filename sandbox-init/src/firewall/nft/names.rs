//! The DNS gate's changes to `JAILOC-NAMES` over netlink, where the boot wrote the rules so:
//! the rules of the destinations opened and closed, both families in one transaction, encoded
//! as `iptables-nft-restore` encodes `-A` / `-D JAILOC-NAMES` (the oracle test holds the two
//! equal) — without a process for every first-seen address.
//!
//! A rule is closed by its handle, found in a dump of the chain by its expressions; adding
//! appends. Emptying the chain (a restart's new gate) is one flush.

use super::encode::{self, nfproto};
use super::msg::{Writer, DELRULE, F_APPEND, F_CREATE, F_REQUEST, NEWRULE};
use super::{drain_errors, dump_rule_handles, same_rule, NativeError};
use crate::firewall::rules::{ChainName, Family, Rule, Table};
use crate::sys::Netlink;

/// The gate's netlink socket to the namespace's nf_tables.
#[derive(Debug)]
pub struct Names {
    socket: Netlink,
}

impl Names {
    /// A socket of the gate's own (it holds `CAP_NET_ADMIN`).
    pub fn open() -> Result<Self, NativeError> {
        let socket = Netlink::netfilter().map_err(NativeError::Socket)?;
        let _ = socket.set_recv_buffer(1 << 22);
        let _ = socket.set_send_buffer(1 << 22);
        Ok(Names { socket })
    }

    /// Adds `add` and removes `remove` (per family) in one transaction. A rule to remove that is
    /// not there is no error: it is closed either way.
    pub fn apply(&self, change: &[(Family, Vec<Rule>, Vec<Rule>)]) -> Result<(), String> {
        let table = Table::Filter.to_string();
        let chain = ChainName::Names.to_string();
        let standing = if change.iter().any(|(_, _, remove)| !remove.is_empty()) {
            self.standing().map_err(|e| e.to_string())?
        } else {
            Vec::new()
        };
        let mut w = Writer::default();
        w.begin_batch();
        let mut any = false;
        for (family, add, remove) in change {
            let nf = nfproto(*family);
            let mut taken = Vec::new();
            for rule in remove {
                let exprs = encode::rule_exprs(*family, rule);
                let found = standing
                    .iter()
                    .position(|(f, e, h)| *f == nf && !taken.contains(h) && same_rule(e, &exprs));
                if let Some(i) = found {
                    let handle = standing[i].2;
                    taken.push(handle);
                    w.message(DELRULE, F_REQUEST, nf, |w| {
                        w.str(1, &table);
                        w.str(2, &chain);
                        w.attr(3, &handle.to_be_bytes());
                    });
                    any = true;
                }
            }
            for rule in add {
                let exprs = encode::rule_exprs(*family, rule);
                w.message(NEWRULE, F_REQUEST | F_CREATE | F_APPEND, nf, |w| {
                    encode::rule_body(w, &table, &chain, &exprs, encode::l4proto(&rule.when));
                });
                any = true;
            }
        }
        w.end_batch();
        if !any {
            return Ok(());
        }
        self.commit(&w.buf)
    }

    /// Removes every rule of `JAILOC-NAMES` in `families` (what a previous gate opened).
    pub fn empty(&self, families: &[Family]) -> Result<(), String> {
        let mut w = Writer::default();
        w.begin_batch();
        for family in families {
            w.message(DELRULE, F_REQUEST, nfproto(*family), |w| {
                w.str(1, &Table::Filter.to_string());
                w.str(2, &ChainName::Names.to_string());
            });
        }
        w.end_batch();
        self.commit(&w.buf)
    }

    fn commit(&self, batch: &[u8]) -> Result<(), String> {
        self.socket
            .send(batch)
            .map_err(|e| format!("netlink: {e}"))?;
        match drain_errors(&self.socket)
            .map_err(|e| e.to_string())?
            .first()
        {
            None => Ok(()),
            Some(&e) => Err(format!(
                "the kernel refused the change: {}",
                crate::sys::Errno(e)
            )),
        }
    }

    /// The rules of `JAILOC-NAMES` now: family, expressions, handle.
    fn standing(&self) -> Result<Vec<(u8, Vec<u8>, u64)>, NativeError> {
        let table = Table::Filter.to_string();
        let chain = ChainName::Names.to_string();
        Ok(dump_rule_handles(&self.socket)?
            .into_iter()
            .filter(|(rule, _)| rule.table == table && rule.chain == chain)
            .map(|(rule, handle)| (rule.family, rule.exprs, handle))
            .collect())
    }
}
