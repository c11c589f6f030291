//! The writer of `policy.toml`: what the launcher puts in a workspace's policy directory, in
//! the form [`crate::parse_toml`] reads back to the same [`Policy`].

use crate::{Policy, DEFAULT_RESOLVE_TIMEOUT};
use std::fmt::Write as _;

/// `policy` as `policy.toml` text: every list (also an empty one), `[agent]` in full, and
/// `resolve_timeout_ms` only when it is not the default. Entries are written in their canonical
/// form (names lowercase, `[IPv6]:PORT`), so the file says exactly what sandbox-init will do.
pub fn write_toml(policy: &Policy) -> String {
    let list = |items: Vec<String>| {
        let quoted: Vec<String> = items.iter().map(|s| basic_string(s)).collect();
        format!("[{}]", quoted.join(", "))
    };
    let mut s = String::new();
    let _ = writeln!(s, "egress = {}", basic_string(policy.egress.as_str()));
    let hosts = policy.hosts.iter().map(|h| h.to_string()).collect();
    let _ = writeln!(s, "allowed_hosts = {}", list(hosts));
    let networks = policy.networks.iter().map(ToString::to_string).collect();
    let _ = writeln!(s, "allowed_networks = {}", list(networks));
    let blocked = policy.blocked.iter().map(ToString::to_string).collect();
    let _ = writeln!(s, "blocked_networks = {}", list(blocked));
    if policy.resolve_timeout != DEFAULT_RESOLVE_TIMEOUT {
        let _ = writeln!(
            s,
            "resolve_timeout_ms = {}",
            policy.resolve_timeout.as_millis()
        );
    }
    let agent = &policy.agent;
    let _ = write!(
        s,
        "\n[agent]\nuid = {}\ngid = {}\nhome = {}\n",
        agent.uid,
        agent.gid,
        basic_string(&agent.home.to_string_lossy())
    );
    s
}

/// `s` as a TOML basic string: in double quotes, with `\"`, `\\`, `\n`, `\r`, `\t` and
/// `\uXXXX` for any other control character. YAML's double-quoted scalars read the same
/// escapes (the launcher's compose renderer builds on this).
pub fn basic_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{parse_host, parse_network, Egress};

    #[test]
    fn the_launchers_layout_byte_for_byte() {
        let policy = Policy {
            egress: Egress::Allowlist,
            hosts: vec![
                parse_host("PyPI.org.").expect("host"),
                parse_host("[FD00::5]:8080").expect("host"),
            ]
            .into(),
            networks: vec![parse_network("10.20.0.0/16:5432").expect("net")],
            blocked: vec!["203.0.113.7/32".parse().expect("net")],
            ..Policy::default()
        };
        assert_eq!(
            write_toml(&policy),
            "egress = \"allowlist\"\nallowed_hosts = [\"pypi.org\", \"[fd00::5]:8080\"]\n\
             allowed_networks = [\"10.20.0.0/16:5432\"]\nblocked_networks = [\"203.0.113.7/32\"]\n\
             \n[agent]\nuid = 1000\ngid = 1000\nhome = \"/home/agent\"\n"
        );
    }

    #[test]
    fn a_basic_string_escapes_what_toml_needs() {
        assert_eq!(
            basic_string("a\"b\\c\nd\re\tf\u{1}g\u{7f}h $HOME é"),
            "\"a\\\"b\\\\c\\nd\\re\\tf\\u0001g\\u007Fh $HOME é\""
        );
    }
}
