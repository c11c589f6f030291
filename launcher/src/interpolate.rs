//! `${VAR}` in `env` and env-file values, expanded at `up` from the host's environment the way
//! Docker Compose expands them in the Go jailoc's compose file (`env = ["GITHUB_TOKEN=${GITHUB_TOKEN}"]`
//! is a common Go pattern): `$VAR`, `${VAR}`, `${VAR:-default}` / `${VAR-default}`,
//! `${VAR:?message}` / `${VAR?message}`, `${VAR:+other}` / `${VAR+other}`, `$$` for a literal
//! `$`. An unset variable is empty, with a warning, as Compose does. jailoc expands the value
//! itself and writes the result with every `$` doubled, so Compose never interpolates anything.

/// The result of expanding one value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expanded {
    pub value: String,
    /// Variables the value named that are not set (each expanded to nothing).
    pub unset: Vec<String>,
}

/// Expands `value`; `lookup` returns a host variable's value (`Some("")` when set but empty).
/// Errors say what is wrong with the template (a lone `$`, an unclosed `${`, `${VAR:?msg}`
/// with VAR unset).
pub fn expand(value: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<Expanded, String> {
    let mut out = Expanded {
        value: String::new(),
        unset: Vec::new(),
    };
    expand_into(value, lookup, &mut out)?;
    Ok(out)
}

fn is_name_start(c: char) -> bool {
    c == '_' || c.is_ascii_alphabetic()
}

fn is_name(c: char) -> bool {
    c == '_' || c.is_ascii_alphanumeric()
}

fn expand_into(
    s: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    out: &mut Expanded,
) -> Result<(), String> {
    let mut rest = s;
    while let Some(at) = rest.find('$') {
        out.value.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let mut chars = after.chars();
        match chars.next() {
            Some('$') => {
                out.value.push('$');
                rest = &after[1..];
            }
            Some('{') => {
                let body_end = closing_brace(&after[1..]).ok_or_else(|| {
                    format!(
                        "\"${{\" without its closing \"}}\" in {s:?} (write $$ for a literal $)"
                    )
                })?;
                let body = &after[1..1 + body_end];
                braced(body, lookup, out)?;
                rest = &after[1 + body_end + 1..];
            }
            Some(c) if is_name_start(c) => {
                let len = after.find(|c: char| !is_name(c)).unwrap_or(after.len());
                let name = &after[..len];
                substitute(name, lookup, out);
                rest = &after[len..];
            }
            _ => {
                return Err(format!(
                    "a \"$\" that starts no variable in {s:?}: write $$ for a literal $"
                ))
            }
        }
    }
    out.value.push_str(rest);
    Ok(())
}

/// The index of the `}` that closes a `${` whose body starts `s` (nested `${...}` skipped).
fn closing_brace(s: &str) -> Option<usize> {
    let mut depth = 0usize;
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'$' if bytes.get(i + 1) == Some(&b'{') => {
                depth += 1;
                i += 2;
                continue;
            }
            b'}' if depth == 0 => return Some(i),
            b'}' => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    None
}

fn substitute(name: &str, lookup: &dyn Fn(&str) -> Option<String>, out: &mut Expanded) {
    match lookup(name) {
        Some(v) => out.value.push_str(&v),
        None => {
            if !out.unset.iter().any(|u| u == name) {
                out.unset.push(name.to_string());
            }
        }
    }
}

/// `NAME`, or `NAME` followed by `:-`, `-`, `:?`, `?`, `:+`, `+` and a word.
fn braced(
    body: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    out: &mut Expanded,
) -> Result<(), String> {
    let len = body.find(|c: char| !is_name(c)).unwrap_or(body.len());
    let name = &body[..len];
    if name.is_empty() || !name.starts_with(is_name_start) {
        return Err(format!(
            "\"${{{body}}}\" names no variable (write $$ for a literal $)"
        ));
    }
    let op = &body[len..];
    let value = lookup(name);
    let set = value.is_some();
    let non_empty = value.as_deref().is_some_and(|v| !v.is_empty());
    let (kind, word) = if let Some(w) = op.strip_prefix(":-") {
        ("-", Some((w, non_empty)))
    } else if let Some(w) = op.strip_prefix('-') {
        ("-", Some((w, set)))
    } else if let Some(w) = op.strip_prefix(":?") {
        ("?", Some((w, non_empty)))
    } else if let Some(w) = op.strip_prefix('?') {
        ("?", Some((w, set)))
    } else if let Some(w) = op.strip_prefix(":+") {
        ("+", Some((w, non_empty)))
    } else if let Some(w) = op.strip_prefix('+') {
        ("+", Some((w, set)))
    } else if op.is_empty() {
        ("", None)
    } else {
        return Err(format!(
            "\"${{{body}}}\": unknown operator {op:?} (use :- - :? ? :+ +)"
        ));
    };
    match (kind, word) {
        ("", _) => substitute(name, lookup, out),
        ("-", Some((_, true))) => out.value.push_str(&value.unwrap_or_default()),
        ("-", Some((w, false))) => expand_into(w, lookup, out)?,
        ("?", Some((_, true))) => out.value.push_str(&value.unwrap_or_default()),
        ("?", Some((w, false))) => {
            let mut msg = Expanded {
                value: String::new(),
                unset: Vec::new(),
            };
            expand_into(w, lookup, &mut msg)?;
            let why = if msg.value.is_empty() {
                "it is required".to_string()
            } else {
                msg.value
            };
            return Err(format!("${name} is not set in your environment: {why}"));
        }
        ("+", Some((w, true))) => expand_into(w, lookup, out)?,
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "TOKEN" => Some("t0k".into()),
            "EMPTY" => Some(String::new()),
            "HOME" => Some("/home/u".into()),
            _ => None,
        }
    }

    fn x(s: &str) -> Result<(String, Vec<String>), String> {
        expand(s, &env).map(|e| (e.value, e.unset))
    }

    #[test]
    fn compose_forms() {
        let ok = |s: &str, want: &str| assert_eq!(x(s), Ok((want.to_string(), vec![])), "{s}");
        ok("GITHUB=${TOKEN}", "GITHUB=t0k");
        ok("$TOKEN/$HOME.x", "t0k//home/u.x");
        ok("cost $$5 and $${HOME}", "cost $5 and ${HOME}");
        ok("${EMPTY:-def}|${EMPTY-def}|${NOPE-def}", "def||def");
        ok(
            "${TOKEN:+on}|${EMPTY+set}|${EMPTY:+x}|${NOPE+x}",
            "on|set||",
        );
        ok("${NOPE:-${HOME}/d}", "/home/u/d");
        ok("${TOKEN:?need it}", "t0k");
        ok("no dollars", "no dollars");
        assert_eq!(
            x("a=${NOPE}b$NOPE"),
            Ok(("a=b".to_string(), vec!["NOPE".to_string()]))
        );
    }

    #[test]
    fn bad_templates_say_what_to_write() {
        assert_eq!(
            x("${NOPE:?set NOPE first}"),
            Err("$NOPE is not set in your environment: set NOPE first".into())
        );
        assert_eq!(
            x("${EMPTY:?}"),
            Err("$EMPTY is not set in your environment: it is required".into())
        );
        assert_eq!(
            x("cost $5"),
            Err("a \"$\" that starts no variable in \"cost $5\": write $$ for a literal $".into())
        );
        assert!(x("${TOKEN")
            .expect_err("unclosed")
            .contains("without its closing"));
        assert!(x("${}").expect_err("empty").contains("names no variable"));
        assert!(x("${A*b}").expect_err("op").contains("unknown operator"));
        assert!(x("trailing $").is_err());
    }
}
