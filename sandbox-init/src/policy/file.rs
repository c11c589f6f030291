//! The two file formats: strict `policy.toml` (with spans, so errors name the line) and the
//! line files (`#` starts a comment, blank lines ignored, surrounding whitespace trimmed).

use super::{entry, Agent, Egress, EntryError, Policy, PolicyError};
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

const TOP_KEYS: &[&str] = &[
    "egress",
    "allowed_hosts",
    "allowed_networks",
    "blocked_networks",
    "agent",
    "resolve_timeout_ms",
];
const AGENT_KEYS: &[&str] = &["uid", "gid", "home"];

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
    fn line<T>(&self, spanned: &Spanned<T>) -> usize {
        line_of(self.text, spanned.span().start)
    }

    fn value_error<T>(&self, at: &Spanned<T>, key: &str, reason: String) -> PolicyError {
        PolicyError::Value {
            path: self.path.to_owned(),
            line: self.line(at),
            key: key.to_owned(),
            reason,
        }
    }

    fn unknown_key<T>(&self, at: &Spanned<T>, key: String, known: &[&str]) -> PolicyError {
        let leaf = key.rsplit('.').next().unwrap_or(&key);
        let hint = match suggest(leaf, known) {
            Some(best) => format!(" (did you mean {best:?}?)"),
            None => format!(" (expected one of: {})", known.join(", ")),
        };
        PolicyError::UnknownKey {
            path: self.path.to_owned(),
            line: self.line(at),
            key,
            hint,
        }
    }
}

/// The known key closest to `key`, if it is close enough to be a typo.
fn suggest<'k>(key: &str, known: &[&'k str]) -> Option<&'k str> {
    known
        .iter()
        .map(|k| (edit_distance(key, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// Entries of a table in source order (the parser's map is sorted by key).
fn in_source_order<'t, 'i>(
    table: &'t DeTable<'i>,
) -> Vec<(
    &'t Spanned<std::borrow::Cow<'i, str>>,
    &'t Spanned<DeValue<'i>>,
)> {
    let mut entries: Vec<_> = table.iter().collect();
    entries.sort_by_key(|(k, _)| k.span().start);
    entries
}

pub(super) fn parse_toml(path: &Path, text: &str) -> Result<Policy, PolicyError> {
    let ctx = Ctx { path, text };
    let doc = DeTable::parse(text).map_err(|e| PolicyError::Syntax {
        path: path.to_owned(),
        line: e.span().map_or(1, |s| line_of(text, s.start)),
        message: e.message().trim().to_owned(),
    })?;
    let mut policy = Policy {
        resolve_timeout: super::DEFAULT_RESOLVE_TIMEOUT,
        ..Policy::default()
    };
    for (key, value) in in_source_order(doc.get_ref()) {
        match key.get_ref().as_ref() {
            "egress" => {
                policy.egress = match value.get_ref() {
                    DeValue::String(s) if s == "open" => Egress::Open,
                    DeValue::String(s) if s == "allowlist" => Egress::Allowlist,
                    DeValue::String(s) => {
                        let reason = format!("expected \"open\" or \"allowlist\", found {s:?}");
                        return Err(ctx.value_error(value, "egress", reason));
                    }
                    _ => {
                        let reason = "expected \"open\" or \"allowlist\"".to_owned();
                        return Err(ctx.value_error(value, "egress", reason));
                    }
                }
            }
            "allowed_hosts" => {
                policy.hosts = parse_list(&ctx, value, "allowed_hosts", entry::parse_host)?;
            }
            "allowed_networks" => {
                policy.networks =
                    parse_list(&ctx, value, "allowed_networks", entry::parse_network)?;
            }
            "blocked_networks" => {
                policy.blocked = parse_list(&ctx, value, "blocked_networks", entry::parse_blocked)?;
            }
            "resolve_timeout_ms" => {
                let ms = integer(&ctx, value, "resolve_timeout_ms", 100, 30_000, "")?;
                policy.resolve_timeout = Duration::from_millis(ms);
            }
            "agent" => policy.agent = parse_agent(&ctx, value)?,
            other => return Err(ctx.unknown_key(key, other.to_owned(), TOP_KEYS)),
        }
    }
    Ok(policy)
}

fn parse_agent(ctx: &Ctx<'_>, value: &Spanned<DeValue<'_>>) -> Result<Agent, PolicyError> {
    let DeValue::Table(table) = value.get_ref() else {
        return Err(ctx.value_error(value, "agent", "expected a table".to_owned()));
    };
    let mut agent = Agent::default();
    let not_root = " (the agent must not be root)";
    for (key, value) in in_source_order(table) {
        match key.get_ref().as_ref() {
            "uid" => {
                agent.uid = id(integer(
                    ctx,
                    value,
                    "agent.uid",
                    1,
                    u64::from(u32::MAX - 1),
                    not_root,
                )?)
            }
            "gid" => {
                agent.gid = id(integer(
                    ctx,
                    value,
                    "agent.gid",
                    1,
                    u64::from(u32::MAX - 1),
                    not_root,
                )?)
            }
            "home" => {
                let home = match value.get_ref() {
                    DeValue::String(s) if s.starts_with('/') && !s.contains('\0') => {
                        PathBuf::from(s.as_ref())
                    }
                    DeValue::String(s) => {
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
            other => return Err(ctx.unknown_key(key, format!("agent.{other}"), AGENT_KEYS)),
        }
    }
    Ok(agent)
}

fn id(value: u64) -> u32 {
    u32::try_from(value).unwrap_or(u32::MAX)
}

fn integer(
    ctx: &Ctx<'_>,
    value: &Spanned<DeValue<'_>>,
    key: &str,
    min: u64,
    max: u64,
    note: &str,
) -> Result<u64, PolicyError> {
    let found = match value.get_ref() {
        DeValue::Integer(i) => {
            let parsed = i64::from_str_radix(i.as_str(), i.radix()).ok();
            match parsed.and_then(|n| u64::try_from(n).ok()) {
                Some(n) if (min..=max).contains(&n) => return Ok(n),
                _ => i.to_string(),
            }
        }
        DeValue::String(s) => format!("{s:?}"),
        _ => "a non-integer".to_owned(),
    };
    let reason = format!("expected an integer from {min} to {max}{note}, found {found}");
    Err(ctx.value_error(value, key, reason))
}

fn parse_list<T>(
    ctx: &Ctx<'_>,
    value: &Spanned<DeValue<'_>>,
    key: &'static str,
    parse: fn(&str) -> Result<T, EntryError>,
) -> Result<Vec<T>, PolicyError> {
    let expected = || ctx.value_error(value, key, "expected an array of strings".to_owned());
    let DeValue::Array(items) = value.get_ref() else {
        return Err(expected());
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items.iter() {
        let DeValue::String(text) = item.get_ref() else {
            return Err(expected());
        };
        out.push(parse(text).map_err(|reason| PolicyError::Entry {
            path: ctx.path.to_owned(),
            line: ctx.line(item),
            list: key,
            entry: text.to_string(),
            reason,
        })?);
    }
    Ok(out)
}

pub(super) fn parse_lines<T>(
    path: &Path,
    text: &str,
    list: &'static str,
    parse: fn(&str) -> Result<T, EntryError>,
) -> Result<Vec<T>, PolicyError> {
    let mut out = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let content = raw.split_once('#').map_or(raw, |(before, _)| before);
        // Trim only ASCII blanks so that other whitespace or control characters still fail.
        let entry = content.trim_matches(|c| c == ' ' || c == '\t' || c == '\r');
        if entry.is_empty() {
            continue;
        }
        out.push(parse(entry).map_err(|reason| PolicyError::Entry {
            path: path.to_owned(),
            line: index + 1,
            list,
            entry: entry.to_owned(),
            reason,
        })?);
    }
    Ok(out)
}
