//! The egress record's reader: what the walls refused inside a container, as sandbox-init's DNS
//! gate writes it (`/run/jailoc-egress/egress.jsonl`, docs/net.md "Egress record"), and the two
//! ways jailoc shows it — the one-line summary `jailoc run` ends with and `jailoc egress`'s table.
//!
//! The file is append-only JSON lines, one per key and update; a reader keeps the last line per
//! key. The container writes it, so it is read as untrusted input: line by line, a line longer
//! than [`MAX_LINE`] or not of the schema is skipped, and at most [`MAX_KEYS`] keys are kept
//! (the gate itself keeps 1,024), so memory stays bounded whatever the file holds.

use std::collections::BTreeMap;
use std::io::BufRead;

use serde::{Deserialize, Serialize};

/// The longest line kept (a line of the schema is a few hundred bytes).
pub const MAX_LINE: usize = 4096;
/// The most keys kept: the gate's 1,024 and its overflow key, with room to spare.
pub const MAX_KEYS: usize = 2048;
/// How many destinations the summary line names before it says "and N more".
const SUMMARY_NAMES: usize = 5;

/// One line of the record: a refused connection or a refused name, with how often and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    #[serde(flatten)]
    pub what: Refused,
    /// Why, in words ("cloud metadata", "private 10.0.0.0/8", "not allowlisted").
    pub reason: String,
    pub count: u64,
    /// First and last seen, RFC 3339 UTC (as written; jailoc only shows them).
    pub first: String,
    pub last: String,
}

/// What was refused; the key of an entry.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Refused {
    /// A connection the firewall refused: `proto` is tcp, udp, icmp, icmpv6 or other; `port`
    /// is absent for ICMP and "other".
    Connection {
        proto: String,
        dest: String,
        port: Option<u16>,
    },
    /// A name the DNS gate answered NXDOMAIN.
    Name { name: String },
}

impl Refused {
    /// The destination as a user writes it: `169.254.169.254:80`, `[2001:db8::1]:443`,
    /// `udp 10.0.0.5:53`, `icmp 10.1.2.3`, or the name.
    pub fn destination(&self) -> String {
        match self {
            Refused::Name { name } => name.clone(),
            Refused::Connection { proto, dest, port } => {
                let addr = match port {
                    Some(p) if dest.contains(':') => format!("[{dest}]:{p}"),
                    Some(p) => format!("{dest}:{p}"),
                    None => dest.clone(),
                };
                if proto == "tcp" {
                    addr
                } else {
                    format!("{proto} {addr}")
                }
            }
        }
    }
}

/// The record as read: the last entry of every key, in the order keys were first seen.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    pub entries: Vec<Entry>,
    /// Lines skipped: too long, not JSON, or not of the schema.
    pub skipped: usize,
}

impl Record {
    /// Reads a record, keeping the last line per key (see the module docs for the bounds).
    pub fn read(mut input: impl BufRead) -> std::io::Result<Record> {
        let mut index: BTreeMap<Refused, usize> = BTreeMap::new();
        let mut record = Record::default();
        let mut line = Vec::new();
        loop {
            line.clear();
            let n = read_bounded_line(&mut input, &mut line)?;
            if n == 0 {
                break;
            }
            if line.len() > MAX_LINE {
                record.skipped += 1;
                continue;
            }
            let text = String::from_utf8_lossy(&line);
            if text.trim().is_empty() {
                continue;
            }
            let Ok(entry) = serde_json::from_str::<Entry>(text.trim()) else {
                record.skipped += 1;
                continue;
            };
            match index.get(&entry.what) {
                Some(&i) => record.entries[i] = entry,
                None if index.len() < MAX_KEYS => {
                    index.insert(entry.what.clone(), record.entries.len());
                    record.entries.push(entry);
                }
                None => record.skipped += 1,
            }
        }
        Ok(record)
    }

    /// The refused connections.
    pub fn connections(&self) -> impl Iterator<Item = &Entry> {
        self.entries
            .iter()
            .filter(|e| matches!(e.what, Refused::Connection { .. }))
    }

    /// The refused names.
    pub fn names(&self) -> impl Iterator<Item = &Entry> {
        self.entries
            .iter()
            .filter(|e| matches!(e.what, Refused::Name { .. }))
    }

    /// The line `jailoc run` ends with, `None` when nothing was refused:
    /// `blocked 2 connections: 169.254.169.254:80 (cloud metadata), 10.0.0.5:22 (private
    /// 10.0.0.0/8); refused 1 name: x.attacker.example (not allowlisted)`. It counts
    /// destinations, not attempts (`jailoc egress` has the counts), and names a few: the most
    /// serious first ([`severity`]), then the most attempted, so that refusals the agent makes
    /// before cannot push an attempt on the metadata service or the host out of the line.
    pub fn summary(&self) -> Option<String> {
        let part = |verb: &str, noun: &str, mut entries: Vec<&Entry>| {
            if entries.is_empty() {
                return None;
            }
            // Stable: equals stay in the order seen.
            entries.sort_by_key(|e| (severity(&e.reason), std::cmp::Reverse(e.count)));
            let n = entries.len();
            let mut named: Vec<String> = entries
                .iter()
                .take(SUMMARY_NAMES)
                .map(|e| format!("{} ({})", e.what.destination(), e.reason))
                .collect();
            if n > SUMMARY_NAMES {
                named.push(format!("and {} more", n - SUMMARY_NAMES));
            }
            let plural = if n == 1 { "" } else { "s" };
            Some(format!("{verb} {n} {noun}{plural}: {}", named.join(", ")))
        };
        let parts: Vec<String> = [
            part("blocked", "connection", self.connections().collect()),
            part("refused", "name", self.names().collect()),
        ]
        .into_iter()
        .flatten()
        .collect();
        (!parts.is_empty()).then(|| parts.join("; "))
    }

    /// `jailoc egress`'s table: one row per destination and reason, connections first.
    pub fn table(&self) -> String {
        let header = ["KIND", "DESTINATION", "REASON", "COUNT", "FIRST", "LAST"];
        let rows: Vec<[String; 6]> = self
            .connections()
            .chain(self.names())
            .map(|e| {
                let kind = match e.what {
                    Refused::Connection { .. } => "connection",
                    Refused::Name { .. } => "name",
                };
                [
                    kind.to_string(),
                    e.what.destination(),
                    e.reason.clone(),
                    e.count.to_string(),
                    e.first.clone(),
                    e.last.clone(),
                ]
            })
            .collect();
        let mut widths = header.map(str::len);
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |cells: &[&str]| {
            let mut s = String::new();
            for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
                if i + 1 == cells.len() {
                    s.push_str(cell);
                } else {
                    s.push_str(&format!("{cell:<w$}  "));
                }
            }
            s.push('\n');
            s
        };
        let mut out = line(&header);
        for row in &rows {
            let cells: Vec<&str> = row.iter().map(String::as_str).collect();
            out.push_str(&line(&cells));
        }
        out
    }
}

/// Reads up to and including the next `\n` into `buf`, but never keeps more than
/// [`MAX_LINE`] + 1 bytes of it (the rest of an over-long line is consumed and dropped).
/// Returns the bytes consumed; 0 at the end.
fn read_bounded_line(input: &mut impl BufRead, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    let mut consumed = 0;
    loop {
        let chunk = input.fill_buf()?;
        if chunk.is_empty() {
            return Ok(consumed);
        }
        let (take, done) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (chunk.len(), false),
        };
        let room = (MAX_LINE + 1).saturating_sub(buf.len());
        buf.extend_from_slice(&chunk[..take.min(room)]);
        input.consume(take);
        consumed += take;
        if done {
            return Ok(consumed);
        }
    }
}

/// How serious a refusal's reason is, lower first: the cloud metadata service (credentials),
/// then the host (the Docker gateway, `blocked_networks`), then the rest. The reasons are
/// sandbox-init's words (docs/net.md); a suffix such as " (NAT64 form)" keeps the rank.
fn severity(reason: &str) -> u8 {
    const RANKED: [&str; 3] = [
        "cloud metadata",
        "the Docker gateway (your host)",
        "your host's address (blocked_networks)",
    ];
    match RANKED.iter().position(|r| reason.starts_with(r)) {
        Some(0) => 0,
        Some(_) => 1,
        None => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const META: &str = r#"{"kind":"connection","proto":"tcp","dest":"169.254.169.254","port":80,"reason":"cloud metadata","count":1,"first":"2026-12-06T11:20:01Z","last":"2026-12-06T11:20:01Z"}"#;
    const META_LATER: &str = r#"{"kind":"connection","proto":"tcp","dest":"169.254.169.254","port":80,"reason":"cloud metadata","count":3,"first":"2026-12-06T11:20:01Z","last":"2026-12-06T11:20:05Z"}"#;
    const PRIVATE: &str = r#"{"kind":"connection","proto":"tcp","dest":"10.0.0.5","port":22,"reason":"private 10.0.0.0/8","count":1,"first":"2026-12-06T11:20:02Z","last":"2026-12-06T11:20:02Z"}"#;
    const NAME: &str = r#"{"kind":"name","name":"x.attacker.example","reason":"not allowlisted","count":1,"first":"2026-12-06T11:20:03Z","last":"2026-12-06T11:20:03Z"}"#;

    fn read(text: &str) -> Record {
        Record::read(text.as_bytes()).expect("read")
    }

    #[test]
    fn the_last_line_per_key_wins_and_the_summary_names_both_kinds() {
        let r = read(&format!("{META}\n{PRIVATE}\n{NAME}\n{META_LATER}\n"));
        assert_eq!(r.entries.len(), 3);
        assert_eq!(r.entries[0].count, 3, "the later line of the same key");
        assert_eq!(
            r.summary().as_deref(),
            Some("blocked 2 connections: 169.254.169.254:80 (cloud metadata), 10.0.0.5:22 (private 10.0.0.0/8); refused 1 name: x.attacker.example (not allowlisted)")
        );
        assert_eq!(read("").summary(), None);
        assert_eq!(
            read(&format!("{NAME}\n")).summary().as_deref(),
            Some("refused 1 name: x.attacker.example (not allowlisted)")
        );
    }

    /// The attack: `jailoc run` removes its container, so the summary line is all that is left
    /// of the record. An agent that is refused five harmless destinations first pushes its
    /// attempt on the cloud metadata service into "and 1 more".
    #[test]
    fn attack_the_summary_names_metadata_whatever_came_before() {
        let mut text = String::new();
        for port in 1..=5 {
            text.push_str(&format!(
                "{{\"kind\":\"connection\",\"proto\":\"tcp\",\"dest\":\"10.0.0.5\",\"port\":{port},\"reason\":\"private 10.0.0.0/8\",\"count\":1,\"first\":\"a\",\"last\":\"a\"}}\n"
            ));
        }
        text.push_str(&format!("{META}\n"));
        let summary = read(&text).summary().expect("a summary");
        assert!(
            summary.contains("cloud metadata"),
            "the metadata attempt is not in the summary: {summary}"
        );
    }

    /// Past the metadata service, the host comes before the rest and the most attempted before
    /// the others; the totals count every destination.
    #[test]
    fn the_summary_names_the_host_then_the_most_attempted() {
        let line = |dest: &str, reason: &str, count: u64| {
            format!("{{\"kind\":\"connection\",\"proto\":\"tcp\",\"dest\":\"{dest}\",\"port\":22,\"reason\":\"{reason}\",\"count\":{count},\"first\":\"a\",\"last\":\"a\"}}\n")
        };
        let mut text = String::new();
        for (i, count) in [1, 9, 1, 1, 1, 1].into_iter().enumerate() {
            text.push_str(&line(&format!("10.0.0.{i}"), "private 10.0.0.0/8", count));
        }
        text.push_str(&line(
            "203.0.113.7",
            "your host's address (blocked_networks)",
            1,
        ));
        text.push_str(&line(
            "64:ff9b::a9fe:a9fe",
            "cloud metadata (NAT64 form)",
            1,
        ));
        assert_eq!(
            read(&text).summary().as_deref(),
            Some("blocked 8 connections: [64:ff9b::a9fe:a9fe]:22 (cloud metadata (NAT64 form)), 203.0.113.7:22 (your host's address (blocked_networks)), 10.0.0.1:22 (private 10.0.0.0/8), 10.0.0.0:22 (private 10.0.0.0/8), 10.0.0.2:22 (private 10.0.0.0/8), and 3 more")
        );
    }

    /// The record comes from inside the container: junk, another schema, a line of a megabyte
    /// and a line without its newline are skipped or read, never fatal.
    #[test]
    fn malformed_and_overlong_lines_are_skipped() {
        let huge = format!(
            "{{\"kind\":\"name\",\"name\":\"{}\",\"reason\":\"r\",\"count\":1,\"first\":\"\",\"last\":\"\"}}",
            "a".repeat(1 << 20)
        );
        let text = format!(
            "not json\n{{\"kind\":\"other\"}}\n{huge}\n\n{META}\n{{\"kind\":\"connection\",\"proto\":\"tcp\",\"dest\":\"x\",\"port\":99999,\"reason\":\"r\",\"count\":1,\"first\":\"\",\"last\":\"\"}}\n{NAME}"
        );
        let r = read(&text);
        assert_eq!(r.skipped, 4, "{r:?}");
        assert_eq!(r.entries.len(), 2, "{r:?}");
        assert_eq!(r.entries[1].what.destination(), "x.attacker.example");
    }

    #[test]
    fn keys_beyond_the_bound_are_counted_not_kept() {
        let mut text = String::new();
        for i in 0..MAX_KEYS + 10 {
            text.push_str(&format!(
                "{{\"kind\":\"connection\",\"proto\":\"udp\",\"dest\":\"10.0.{}.{}\",\"port\":53,\"reason\":\"private 10.0.0.0/8\",\"count\":1,\"first\":\"a\",\"last\":\"b\"}}\n",
                i / 256,
                i % 256
            ));
        }
        let r = read(&text);
        assert_eq!((r.entries.len(), r.skipped), (MAX_KEYS, 10));
        let s = r.summary().expect("a summary");
        assert!(
            s.starts_with("blocked 2048 connections: udp 10.0.0.0:53 (private 10.0.0.0/8), "),
            "{s}"
        );
        assert!(s.ends_with(", and 2043 more"), "{s}");
    }

    #[test]
    fn destinations_read_as_users_write_them() {
        let c = |proto: &str, dest: &str, port: Option<u16>| Refused::Connection {
            proto: proto.into(),
            dest: dest.into(),
            port,
        };
        assert_eq!(
            c("tcp", "2001:db8::1", Some(443)).destination(),
            "[2001:db8::1]:443"
        );
        assert_eq!(c("icmp", "10.1.2.3", None).destination(), "icmp 10.1.2.3");
        assert_eq!(
            c("udp", "10.0.0.5", Some(53)).destination(),
            "udp 10.0.0.5:53"
        );
    }

    #[test]
    fn the_table_has_a_row_per_destination_and_the_json_round_trips() {
        let r = read(&format!("{NAME}\n{META_LATER}\n"));
        assert_eq!(
            r.table(),
            "KIND        DESTINATION         REASON           COUNT  FIRST                 LAST\n\
             connection  169.254.169.254:80  cloud metadata   3      2026-12-06T11:20:01Z  2026-12-06T11:20:05Z\n\
             name        x.attacker.example  not allowlisted  1      2026-12-06T11:20:03Z  2026-12-06T11:20:03Z\n"
        );
        let json = serde_json::to_string(&r.entries[1]).expect("json");
        assert_eq!(json, META_LATER);
    }
}
