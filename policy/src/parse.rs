//! The reader of the two file formats: strict `policy.toml` (with spans, so errors name the
//! line) and the Go jailoc's line files (`#` starts a comment, blank lines ignored, surrounding
//! blanks trimmed).

mod quick;

use crate::{entry, suggest, Agent, Egress, EntryError, Policy, RESOLVE_TIMEOUT_MS};
use std::borrow::Cow;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// A policy that cannot be loaded (sandbox-init exits 78). Each names the file and line.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("failed to read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("{path}:{line}: invalid TOML: {message}")]
    Syntax {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{path}:{line}: unknown key {key:?}{hint}")]
    UnknownKey {
        path: PathBuf,
        line: usize,
        key: String,
        hint: String,
    },
    #[error("{path}:{line}: invalid value for {key:?}: {reason}")]
    Value {
        path: PathBuf,
        line: usize,
        key: String,
        reason: String,
    },
    #[error("{path}:{line}: invalid {list} entry {entry:?}: {reason}")]
    Entry {
        path: PathBuf,
        line: usize,
        list: &'static str,
        entry: String,
        reason: EntryError,
    },
}

/// The keys of `policy.toml`'s top level.
pub const TOP_KEYS: &[&str] = &[
    "egress",
    "allowed_hosts",
    "allowed_networks",
    "blocked_networks",
    "agent",
    "resolve_timeout_ms",
];
/// The keys of its `[agent]` table.
pub const AGENT_KEYS: &[&str] = &["uid", "gid", "home"];

/// 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset)
        .map_or(1, |head| head.matches('\n').count() + 1)
}

struct Ctx<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Ctx<'_> {
    fn value_error(&self, at: &Item<'_>, key: &str, reason: String) -> PolicyError {
        PolicyError::Value {
            path: self.path.to_owned(),
            line: line_of(self.text, at.at),
            key: key.to_owned(),
            reason,
        }
    }

    fn unknown_key(&self, at: usize, key: String, known: &[&str]) -> PolicyError {
        let leaf = key.rsplit('.').next().unwrap_or(&key);
        let hint = match suggest::did_you_mean(leaf, known) {
            Some(best) => format!(" (did you mean {best:?}?)"),
            None => format!(" (expected one of: {})", known.join(", ")),
        };
        PolicyError::UnknownKey {
            path: self.path.to_owned(),
            line: line_of(self.text, at),
            key,
            hint,
        }
    }
}

/// A value of `policy.toml` as the policy is read from it, whichever reader read it: the common
/// shape is read in one pass ([`quick`]), anything else by the `toml` crate ([`from_toml`]).
#[derive(Debug, PartialEq)]
pub(crate) enum Value<'i> {
    String(Cow<'i, str>),
    /// An integer: its value when it fits an `i64`, and its text for messages.
    Integer {
        value: Option<i64>,
        text: String,
    },
    Array(Vec<Item<'i>>),
    /// An array of strings as the one-pass reader found it: where each string's content lies in
    /// the text (8 bytes a string, where an [`Item`] takes 56: a 10,000-name list is read
    /// without touching half a megabyte).
    Strings(Vec<quick::Span>),
    /// A table's entries in source order.
    Table(Vec<Entry<'i>>),
    /// A boolean, float, date or time: never what a key of the policy takes.
    Other,
}

/// A value and the byte offset it starts at (for the line in messages).
#[derive(Debug, PartialEq)]
pub(crate) struct Item<'i> {
    pub at: usize,
    pub value: Value<'i>,
}

/// A key, where it starts, and its value.
#[derive(Debug, PartialEq)]
pub(crate) struct Entry<'i> {
    pub key: Cow<'i, str>,
    pub at: usize,
    pub value: Item<'i>,
}

/// The document's top-level entries, read by the `toml` crate: any TOML, with its syntax errors.
fn from_toml<'i>(ctx: &Ctx<'i>) -> Result<Vec<Entry<'i>>, PolicyError> {
    let doc = DeTable::parse(ctx.text).map_err(|e| PolicyError::Syntax {
        path: ctx.path.to_owned(),
        line: e.span().map_or(1, |s| line_of(ctx.text, s.start)),
        message: e.message().trim().to_owned(),
    })?;
    Ok(table_entries(doc.into_inner()))
}

/// A table's entries in source order (the parser's map is sorted by key).
fn table_entries(table: DeTable<'_>) -> Vec<Entry<'_>> {
    let mut entries: Vec<Entry<'_>> = table
        .into_iter()
        .map(|(key, value)| Entry {
            at: key.span().start,
            key: key.into_inner(),
            value: item(value),
        })
        .collect();
    entries.sort_by_key(|entry| entry.at);
    entries
}

fn item(spanned: Spanned<DeValue<'_>>) -> Item<'_> {
    let at = spanned.span().start;
    let value = match spanned.into_inner() {
        DeValue::String(s) => Value::String(s),
        DeValue::Integer(i) => Value::Integer {
            value: i64::from_str_radix(i.as_str(), i.radix()).ok(),
            text: i.to_string(),
        },
        DeValue::Array(items) => Value::Array(items.into_iter().map(item).collect()),
        DeValue::Table(table) => Value::Table(table_entries(table)),
        _ => Value::Other,
    };
    Item { at, value }
}

/// Parses the text of a `policy.toml` (`path` only for messages). Keys left out keep their
/// defaults ([`Policy::default`]); the lists are taken as written (not deduplicated).
pub fn parse_toml(path: &Path, text: &str) -> Result<Policy, PolicyError> {
    let ctx = Ctx { path, text };
    // The common shape (what `jailoc up` writes, and what people write by hand) in one pass;
    // a 10,000-name allowlist costs the boot ~1 ms this way, ~5 ms through the `toml` crate.
    let entries = match quick::read(text) {
        Some(entries) => entries,
        None => from_toml(&ctx)?,
    };
    policy_from(&ctx, entries)
}

/// [`parse_toml`] through the `toml` crate alone: what the one-pass reader must agree with.
#[cfg(test)]
pub(crate) fn parse_toml_slow(path: &Path, text: &str) -> Result<Policy, PolicyError> {
    let ctx = Ctx { path, text };
    let entries = from_toml(&ctx)?;
    policy_from(&ctx, entries)
}

fn policy_from(ctx: &Ctx<'_>, entries: Vec<Entry<'_>>) -> Result<Policy, PolicyError> {
    let mut policy = Policy::default();
    for Entry { key, at, value } in entries {
        match key.as_ref() {
            "egress" => {
                policy.egress = match &value.value {
                    Value::String(s) => Egress::parse(s).ok_or_else(|| {
                        let reason = format!("expected \"open\" or \"allowlist\", found {s:?}");
                        ctx.value_error(&value, "egress", reason)
                    })?,
                    _ => {
                        let reason = "expected \"open\" or \"allowlist\"".to_owned();
                        return Err(ctx.value_error(&value, "egress", reason));
                    }
                }
            }
            "allowed_hosts" => {
                let mut hosts = crate::HostList::new();
                if let Value::Strings(spans) = &value.value {
                    hosts.reserve(spans.len(), quick::Span::total(spans));
                }
                each_entry(ctx, &value, "allowed_hosts", |text| hosts.push_parsed(text))?;
                policy.hosts = hosts;
            }
            "allowed_networks" => {
                policy.networks =
                    parse_list(ctx, &value, "allowed_networks", entry::parse_network)?;
            }
            "blocked_networks" => {
                policy.blocked = parse_list(ctx, &value, "blocked_networks", entry::parse_blocked)?;
            }
            "resolve_timeout_ms" => {
                let (min, max) = RESOLVE_TIMEOUT_MS.into_inner();
                let ms = integer(ctx, &value, "resolve_timeout_ms", min, max, "")?;
                policy.resolve_timeout = Duration::from_millis(ms);
            }
            "agent" => policy.agent = parse_agent(ctx, &value)?,
            other => return Err(ctx.unknown_key(at, other.to_owned(), TOP_KEYS)),
        }
    }
    Ok(policy)
}

fn parse_agent(ctx: &Ctx<'_>, value: &Item<'_>) -> Result<Agent, PolicyError> {
    let Value::Table(table) = &value.value else {
        return Err(ctx.value_error(value, "agent", "expected a table".to_owned()));
    };
    let mut agent = Agent::default();
    // 1 to 4294967294: neither root nor the kernel's "no id" (u32::MAX).
    let id = |value, key| {
        let not_root = " (the agent must not be root)";
        let n = integer(ctx, value, key, 1, u64::from(u32::MAX - 1), not_root)?;
        Ok::<u32, PolicyError>(u32::try_from(n).unwrap_or(u32::MAX))
    };
    for Entry { key, at, value } in table {
        match key.as_ref() {
            "uid" => agent.uid = id(value, "agent.uid")?,
            "gid" => agent.gid = id(value, "agent.gid")?,
            "home" => {
                let home = match &value.value {
                    Value::String(s) if s.starts_with('/') && !s.contains('\0') => {
                        PathBuf::from(s.as_ref())
                    }
                    Value::String(s) => {
                        let reason = format!("expected an absolute path, found {s:?}");
                        return Err(ctx.value_error(value, "agent.home", reason));
                    }
                    _ => {
                        return Err(ctx.value_error(
                            value,
                            "agent.home",
                            "expected a string".to_owned(),
                        ))
                    }
                };
                agent.home = home;
            }
            other => return Err(ctx.unknown_key(*at, format!("agent.{other}"), AGENT_KEYS)),
        }
    }
    Ok(agent)
}

fn integer(
    ctx: &Ctx<'_>,
    value: &Item<'_>,
    key: &str,
    min: u64,
    max: u64,
    note: &str,
) -> Result<u64, PolicyError> {
    let found = match &value.value {
        Value::Integer {
            value: parsed,
            text,
        } => match parsed.and_then(|n| u64::try_from(n).ok()) {
            Some(n) if (min..=max).contains(&n) => return Ok(n),
            _ => text.clone(),
        },
        Value::String(s) => format!("{s:?}"),
        _ => "a non-integer".to_owned(),
    };
    let reason = format!("expected an integer from {min} to {max}{note}, found {found}");
    Err(ctx.value_error(value, key, reason))
}

fn parse_list<T>(
    ctx: &Ctx<'_>,
    value: &Item<'_>,
    key: &'static str,
    parse: fn(&str) -> Result<T, EntryError>,
) -> Result<Vec<T>, PolicyError> {
    let mut out = Vec::new();
    each_entry(ctx, value, key, |text| {
        out.push(parse(text)?);
        Ok(())
    })?;
    Ok(out)
}

/// Hands each string of the array `value` (the list `key`) to `take`, in order; the first entry
/// `take` refuses is the error, naming its line.
fn each_entry(
    ctx: &Ctx<'_>,
    value: &Item<'_>,
    key: &'static str,
    mut take: impl FnMut(&str) -> Result<(), EntryError>,
) -> Result<(), PolicyError> {
    let expected = || ctx.value_error(value, key, "expected an array of strings".to_owned());
    let refused = |at: usize, text: &str, reason| PolicyError::Entry {
        path: ctx.path.to_owned(),
        line: line_of(ctx.text, at),
        list: key,
        entry: text.to_owned(),
        reason,
    };
    match &value.value {
        Value::Array(items) => {
            for item in items {
                let Value::String(text) = &item.value else {
                    return Err(expected());
                };
                take(text).map_err(|reason| refused(item.at, text, reason))?;
            }
            Ok(())
        }
        Value::Strings(spans) => {
            for span in spans {
                let text = span.of(ctx.text);
                take(text).map_err(|reason| refused(span.at(), text, reason))?;
            }
            Ok(())
        }
        _ => Err(expected()),
    }
}

/// Parses a line file (`list` names it in messages), each entry with `parse`.
pub fn parse_lines<T>(
    path: &Path,
    text: &str,
    list: &'static str,
    parse: fn(&str) -> Result<T, EntryError>,
) -> Result<Vec<T>, PolicyError> {
    let mut out = Vec::new();
    each_line(path, text, list, |entry| {
        out.push(parse(entry)?);
        Ok(())
    })?;
    Ok(out)
}

/// Hands each entry of a line file to `take`, in order; the first it refuses is the error.
pub(crate) fn each_line(
    path: &Path,
    text: &str,
    list: &'static str,
    mut take: impl FnMut(&str) -> Result<(), EntryError>,
) -> Result<(), PolicyError> {
    for (index, raw) in text.lines().enumerate() {
        let content = raw.split_once('#').map_or(raw, |(before, _)| before);
        // Trim only ASCII blanks so that other whitespace or control characters still fail.
        let entry = content.trim_matches(|c| c == ' ' || c == '\t' || c == '\r');
        if entry.is_empty() {
            continue;
        }
        take(entry).map_err(|reason| PolicyError::Entry {
            path: path.to_owned(),
            line: index + 1,
            list,
            entry: entry.to_owned(),
            reason,
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `allowed_hosts` of `n` names, one a line from line 2, with `bad` (index → entry) put in.
    fn long_list(n: usize, bad: &[(usize, &str)]) -> String {
        let mut text = String::from("allowed_hosts = [\n");
        for i in 0..n {
            let entry = bad
                .iter()
                .find(|(at, _)| *at == i)
                .map_or_else(|| format!("n{i}.example.com"), |(_, e)| (*e).to_owned());
            text.push_str(&format!("  \"{entry}\",\n"));
        }
        text.push_str("]\n");
        text
    }

    #[test]
    fn a_long_list_is_read_in_order_and_its_first_error_names_its_line() {
        let path = Path::new("/cfg/policy.toml");
        let n = 5_011;
        let policy = parse_toml(path, &long_list(n, &[])).expect("valid");
        let names: Vec<String> = policy.hosts.iter().map(|h| h.to_string()).collect();
        let want: Vec<String> = (0..n).map(|i| format!("n{i}.example.com")).collect();
        assert_eq!(names, want);

        // The first error in source order wins; its line is the index + 2.
        for bad in [
            vec![(7, "bad host")],
            vec![(n - 1, "bad host")],
            vec![(n / 2, "x.*.y"), (n - 3, "bad host")],
            vec![(3, "x.*.y"), (n / 2 + 1, "bad host")],
        ] {
            let e = parse_toml(path, &long_list(n, &bad))
                .expect_err("invalid")
                .to_string();
            let (at, entry) = bad[0];
            assert!(
                e.starts_with(&format!(
                    "/cfg/policy.toml:{}: invalid allowed_hosts entry {entry:?}",
                    at + 2
                )),
                "{e}"
            );
        }
    }
}
