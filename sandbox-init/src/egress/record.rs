//! The egress record's aggregation and its lines (schema: docs/net.md, "Egress record"; the
//! launcher reads it). One entry per key — a connection's (protocol, destination, port) or a
//! refused name — counting how often it was refused, first and last seen. A line is due the
//! first time a key is seen, then at most once per [`EVERY`] while its count grows, and once
//! more at the end ([`Record::flush`]): a loop hammering one address writes a handful of lines,
//! not one per packet. At most [`MAX_KEYS`] keys; what comes after is counted under one key.
//!
//! Pure: the caller passes the time and writes the lines (the gate: the file and the log).

use super::packet::Proto;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Keys kept at most (besides the one that counts the rest).
pub const MAX_KEYS: usize = 1024;

/// The shortest time between two lines of one key.
pub const EVERY: Duration = Duration::from_secs(10);

/// What the record counts.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Key {
    /// A refused packet's protocol, destination (`*`: the key for everything past
    /// [`MAX_KEYS`]) and TCP/UDP destination port.
    Connection {
        proto: Proto,
        dest: String,
        port: Option<u16>,
    },
    /// A name the DNS gate refused.
    Name(String),
}

impl Key {
    /// The key that counts what comes after [`MAX_KEYS`].
    fn overflow() -> Key {
        Key::Connection {
            proto: Proto::Other,
            dest: "*".to_owned(),
            port: None,
        }
    }
}

/// The reason of the overflow key.
pub const OVERFLOW_REASON: &str = "more destinations than the record keeps";

#[derive(Debug, Clone)]
struct Entry {
    reason: String,
    count: u64,
    /// Wall-clock seconds since the epoch.
    first: u64,
    last: u64,
    /// The count the last line written showed.
    written: u64,
    written_at: Instant,
}

/// The record's state.
#[derive(Debug, Default)]
pub struct Record {
    entries: BTreeMap<Key, Entry>,
}

impl Record {
    /// Counts one refusal of `key` for `reason`, at wall-clock `unix` seconds and monotonic
    /// `now`; returns the line to write now, if one is due.
    pub fn note(&mut self, key: Key, reason: &str, unix: u64, now: Instant) -> Option<String> {
        let (key, reason) = if self.entries.len() >= MAX_KEYS && !self.entries.contains_key(&key) {
            (Key::overflow(), OVERFLOW_REASON)
        } else {
            (key, reason)
        };
        match self.entries.get_mut(&key) {
            Some(entry) => {
                entry.count = entry.count.saturating_add(1);
                entry.last = unix;
                if now.duration_since(entry.written_at) < EVERY {
                    return None;
                }
                entry.written = entry.count;
                entry.written_at = now;
                Some(line(&key, entry))
            }
            None => {
                let entry = Entry {
                    reason: reason.to_owned(),
                    count: 1,
                    first: unix,
                    last: unix,
                    written: 1,
                    written_at: now,
                };
                let text = line(&key, &entry);
                self.entries.insert(key, entry);
                Some(text)
            }
        }
    }

    /// When the next held-back line is due (`None`: nothing is held back).
    pub fn next_due(&self) -> Option<Instant> {
        self.held_back().map(|(_, e)| e.written_at + EVERY).min()
    }

    /// The held-back lines due at `now`.
    pub fn due(&mut self, now: Instant) -> Vec<String> {
        self.take(|entry| now.duration_since(entry.written_at) >= EVERY, now)
    }

    /// Every held-back line (the gate is stopping).
    pub fn flush(&mut self, now: Instant) -> Vec<String> {
        self.take(|_| true, now)
    }

    /// Keys counted so far.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }

    fn held_back(&self) -> impl Iterator<Item = (&Key, &Entry)> {
        self.entries.iter().filter(|(_, e)| e.count > e.written)
    }

    fn take(&mut self, when: impl Fn(&Entry) -> bool, now: Instant) -> Vec<String> {
        let mut lines = Vec::new();
        for (key, entry) in &mut self.entries {
            if entry.count > entry.written && when(entry) {
                entry.written = entry.count;
                entry.written_at = now;
                lines.push(line(key, entry));
            }
        }
        lines
    }
}

/// One JSON line (without the newline), in the schema's field order.
fn line(key: &Key, entry: &Entry) -> String {
    let head = match key {
        Key::Connection { proto, dest, port } => format!(
            "\"kind\":\"connection\",\"proto\":\"{}\",\"dest\":{},\"port\":{}",
            proto.as_str(),
            json_string(dest),
            port.map_or("null".to_owned(), |p| p.to_string())
        ),
        Key::Name(name) => format!("\"kind\":\"name\",\"name\":{}", json_string(name)),
    };
    format!(
        "{{{head},\"reason\":{},\"count\":{},\"first\":\"{}\",\"last\":\"{}\"}}",
        json_string(&entry.reason),
        entry.count,
        rfc3339(entry.first),
        rfc3339(entry.last)
    )
}

/// `text` as a JSON string: quotes, backslashes and control characters escaped (the egress
/// record's lines and `--verify --json` alike).
pub fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\u{:04x}", u32::from(c)))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Seconds since the epoch as RFC 3339 UTC (`2026-12-06T11:20:01Z`), without a date library:
/// the days-to-civil conversion of Howard Hinnant's `chrono`-compatible algorithms.
pub fn rfc3339(unix: u64) -> String {
    let days = unix / 86_400;
    let secs = unix % 86_400;
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(dest: &str, port: u16) -> Key {
        Key::Connection {
            proto: Proto::Tcp,
            dest: dest.to_owned(),
            port: Some(port),
        }
    }

    const T0: u64 = 1_796_556_001; // 2026-12-06T11:20:01Z

    #[test]
    fn lines_follow_the_schema() {
        let mut r = Record::default();
        let now = Instant::now();
        assert_eq!(
            r.note(tcp("169.254.169.254", 80), "cloud metadata", T0, now)
                .as_deref(),
            Some(
                "{\"kind\":\"connection\",\"proto\":\"tcp\",\"dest\":\"169.254.169.254\",\"port\":80,\
                 \"reason\":\"cloud metadata\",\"count\":1,\"first\":\"2026-12-06T11:20:01Z\",\
                 \"last\":\"2026-12-06T11:20:01Z\"}"
            )
        );
        let icmp = Key::Connection {
            proto: Proto::Icmp,
            dest: "10.1.2.3".to_owned(),
            port: None,
        };
        let line = r.note(icmp, "private 10.0.0.0/8", T0, now).expect("line");
        assert!(line.contains("\"proto\":\"icmp\",\"dest\":\"10.1.2.3\",\"port\":null,"));
        let name = Key::Name("x.attacker.example".to_owned());
        let line = r.note(name, "not allowlisted", T0, now).expect("line");
        assert!(line.starts_with(
            "{\"kind\":\"name\",\"name\":\"x.attacker.example\",\"reason\":\"not allowlisted\",\"count\":1,"
        ));
    }

    #[test]
    fn a_hammered_key_writes_once_per_interval_and_at_the_end() {
        let mut r = Record::default();
        let start = Instant::now();
        let mut lines = Vec::new();
        // 2,000 refusals over 25 s, as a loop would send them.
        for i in 0..2000u64 {
            let now = start + Duration::from_millis(i * 12);
            lines.extend(r.note(tcp("10.0.0.5", 22), "private 10.0.0.0/8", T0 + i / 80, now));
            lines.extend(r.due(now));
        }
        lines.extend(r.flush(start + Duration::from_secs(25)));
        assert!(lines.len() <= 5, "{} lines: {lines:#?}", lines.len());
        let last = lines.last().expect("a line");
        assert!(last.contains("\"count\":2000,"), "{last}");
        assert!(
            last.contains("\"first\":\"2026-12-06T11:20:01Z\",\"last\":\"2026-12-06T11:20:25Z\"")
        );
        assert!(
            r.flush(start + Duration::from_secs(60)).is_empty(),
            "nothing new"
        );
    }

    #[test]
    fn a_held_back_count_is_due_after_the_interval() {
        let mut r = Record::default();
        let t = Instant::now();
        assert!(r.note(tcp("10.0.0.5", 22), "x", T0, t).is_some());
        assert!(r
            .note(tcp("10.0.0.5", 22), "x", T0, t + Duration::from_secs(1))
            .is_none());
        assert_eq!(r.next_due(), Some(t + EVERY));
        assert!(r.due(t + Duration::from_secs(9)).is_empty());
        let due = r.due(t + EVERY);
        assert_eq!(due.len(), 1);
        assert!(due[0].contains("\"count\":2,"));
        assert_eq!(r.next_due(), None);
    }

    #[test]
    fn keys_are_bounded_and_the_rest_counted_under_one() {
        let mut r = Record::default();
        let t = Instant::now();
        for i in 0..MAX_KEYS + 500 {
            let dest = format!("10.{}.{}.1", i / 256, i % 256);
            r.note(tcp(&dest, 80), "private 10.0.0.0/8", T0, t);
        }
        assert_eq!(r.len(), MAX_KEYS + 1);
        let lines = r.flush(t + EVERY);
        assert_eq!(lines.len(), 1);
        assert!(lines[0].starts_with(
            "{\"kind\":\"connection\",\"proto\":\"other\",\"dest\":\"*\",\"port\":null,\
             \"reason\":\"more destinations than the record keeps\",\"count\":500,"
        ));
        // A key already kept is still counted as itself.
        assert!(r
            .note(tcp("10.0.0.1", 80), "x", T0, t + EVERY * 2)
            .is_some());
    }

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(
            json_string("a\"b\\c\n\u{1}"),
            "\"a\\\"b\\\\c\\u000a\\u0001\""
        );
    }

    #[test]
    fn rfc3339_matches_known_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(T0), "2026-12-06T11:20:01Z");
        assert_eq!(rfc3339(4_102_444_799), "2099-12-31T23:59:59Z");
    }
}
