//! Pure validators for single values. Each returns the user-facing reason on failure; the
//! loader adds file, line and key.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Environment variables the launcher or sandbox-init set themselves.
pub const RESERVED_ENV: &[&str] = &[
    "HOME",
    "USER",
    "OPENCODE_SERVER_PASSWORD",
    "OPENCODE_SERVER_USERNAME",
    "SANDBOX_INIT_CONFIG_DIR",
    "DOCKER_HOST",
    "SSH_AUTH_SOCK",
];

/// `^[a-z0-9-]+$`, at most 63 characters (it becomes part of a compose project name).
pub fn workspace_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        return Ok(());
    }
    let suggestion: String = name
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    Err(format!(
        "invalid workspace name {name:?}: use only lowercase letters, digits and '-' (e.g. {suggestion:?})"
    ))
}

/// A host entry: `NAME`, `NAME:PORT`, `IPv4`, `IPv4:PORT`, `IPv6`, `[IPv6]:PORT`.
pub fn host_entry(entry: &str) -> Result<(), String> {
    let bad = |why: &str| {
        Err(format!(
            "invalid host {entry:?}: {why} (use NAME, NAME:PORT, IP, IPv4:PORT or [IPv6]:PORT)"
        ))
    };
    if entry.is_empty() {
        return bad("empty");
    }
    if let Some(rest) = entry.strip_prefix('[') {
        let Some((ip, after)) = rest.split_once(']') else {
            return bad("brackets are only for [IPv6]:PORT");
        };
        if ip.parse::<Ipv6Addr>().is_err() {
            return bad("not an IPv6 address inside the brackets");
        }
        return match after {
            "" => Ok(()),
            _ => match after.strip_prefix(':') {
                Some(port) => port_of(port).map(|_| ()).or_else(|e| bad(&e)),
                None => bad("brackets are only for [IPv6]:PORT"),
            },
        };
    }
    if entry.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    let (name, port) = match entry.split_once(':') {
        Some((n, p)) if !p.contains(':') => (n, Some(p)),
        Some(_) => return bad("an IPv6 address with a port needs brackets"),
        None => (entry, None),
    };
    if let Some(p) = port {
        if let Err(e) = port_of(p) {
            return bad(&e);
        }
    }
    if name.parse::<Ipv4Addr>().is_ok() {
        return Ok(());
    }
    host_name(name).or_else(|e| bad(&e))
}

fn host_name(name: &str) -> Result<(), String> {
    let trimmed = name.strip_suffix('.').unwrap_or(name);
    if trimmed.is_empty() || trimmed.len() > 253 {
        return Err("not a valid host name".into());
    }
    for label in trimmed.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !ok {
            return Err(format!("{label:?} is not a valid host name label"));
        }
    }
    // "10.1.2" or "300.1.1.1" is a mistyped address, not a name (no TLD is all digits).
    if trimmed
        .rsplit('.')
        .next()
        .is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err("not a valid IPv4 address".into());
    }
    Ok(())
}

fn port_of(p: &str) -> Result<u16, String> {
    match p.parse::<u16>() {
        Ok(n) if n > 0 && !p.starts_with('+') => Ok(n),
        _ => Err(format!("{p:?} is not a port (1-65535)")),
    }
}

/// A network entry: `CIDR` or `CIDR:PORT`, IPv4 or IPv6, without host bits set.
pub fn network_entry(entry: &str) -> Result<(), String> {
    let bad = |why: String| {
        Err(format!(
            "invalid network {entry:?}: {why} (use a CIDR like 10.20.0.0/16 or fd00::/64, optionally with :PORT)"
        ))
    };
    let Some((addr, rest)) = entry.split_once('/') else {
        return bad("missing /PREFIX".into());
    };
    let (prefix, port) = match rest.split_once(':') {
        Some((p, port)) => (p, Some(port)),
        None => (rest, None),
    };
    let Ok(ip) = addr.parse::<IpAddr>() else {
        return bad(format!("{addr:?} is not an IP address"));
    };
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let plen = match prefix.parse::<u8>() {
        Ok(n) if n <= max && !prefix.starts_with('+') => n,
        _ => return bad(format!("prefix length {prefix:?} is not 0-{max}")),
    };
    if let Some(p) = port {
        if let Err(e) = port_of(p) {
            return bad(e);
        }
    }
    let network = mask(ip, plen);
    if network != ip {
        return bad(format!("host bits set, did you mean {network}/{plen}?"));
    }
    Ok(())
}

fn mask(ip: IpAddr, plen: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let m = if plen == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(plen))
            };
            IpAddr::V4(Ipv4Addr::from(bits & m))
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let m = if plen == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(plen))
            };
            IpAddr::V6(Ipv6Addr::from(bits & m))
        }
    }
}

/// A memory size like `512m` or `4g` (Docker's syntax); returns it normalised to lowercase.
pub fn memory(value: &str) -> Result<String, String> {
    let v = value.trim().to_ascii_lowercase();
    let digits_end = v
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(v.len());
    let (num, unit) = v.split_at(digits_end);
    let unit_ok = matches!(unit, "" | "b" | "k" | "m" | "g");
    let n: f64 = num.parse().unwrap_or(0.0);
    let bytes = n * match unit {
        "k" => 1024.0,
        "m" => 1024.0 * 1024.0,
        "g" => 1024.0 * 1024.0 * 1024.0,
        _ => 1.0,
    };
    // Docker refuses less than 6 MiB; say so here rather than at `up`.
    if !unit_ok || num.is_empty() || !n.is_finite() || bytes < 6.0 * 1024.0 * 1024.0 {
        return Err(format!(
            "invalid memory {value:?}: use a size of at least 6m like \"512m\" or \"4g\""
        ));
    }
    Ok(v)
}

/// A CPU count: more than 0, at most 1024.
pub fn cpu(value: f64) -> Result<f64, String> {
    if value.is_finite() && value > 0.0 && value <= 1024.0 {
        Ok(value)
    } else {
        Err(format!(
            "invalid cpu {value}: use a number of CPUs greater than 0 like 2.0 or 0.5"
        ))
    }
}

/// An environment variable (or secret) name; not one the launcher sets itself.
pub fn env_name(name: &str) -> Result<(), String> {
    let mut bytes = name.bytes();
    let ok = matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !ok {
        return Err(format!(
            "invalid variable name {name:?}: use letters, digits and '_' and do not start with a digit"
        ));
    }
    if RESERVED_ENV.contains(&name)
        || name.starts_with("SANDBOX_INIT_") && name != "SANDBOX_INIT_LOG"
    {
        return Err(format!(
            "{name:?} is reserved: jailoc or sandbox-init sets it"
        ));
    }
    Ok(())
}

/// The closest candidate to a misspelt key, if any is close enough to be a likely typo.
pub fn did_you_mean<'a>(unknown: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (edit_distance(unknown, c), *c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        for ok in [
            "pypi.org",
            "db.corp.example:5432",
            "10.1.2.3",
            "10.1.2.3:80",
            "fd00::5",
            "[fd00::5]:8080",
            "host.docker.internal:11434",
            "Example.COM.",
            "[FD00::5]",
            "_srv.example.com",
            "[FD00::5]",
            "_srv.example.com",
        ] {
            assert_eq!(host_entry(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "a b",
            "*.x.org",
            "x:0",
            "x:99999",
            "fd00::5:80:",
            "[x]:1",
            "-a.org",
            "1.2.3.999",
            "a..b",
            "x:",
            "[fd00::1]x",
            "foo.123",
            "10.0.0.0/8",
        ] {
            assert!(host_entry(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn networks() {
        for ok in [
            "10.20.0.0/16",
            "fd00:1::/64",
            "192.168.5.0/24:5432",
            "0.0.0.0/0",
        ] {
            assert_eq!(network_entry(ok), Ok(()), "{ok}");
        }
        assert_eq!(
            network_entry("999.0.0.0/99").expect_err("must fail"),
            "invalid network \"999.0.0.0/99\": \"999.0.0.0\" is not an IP address (use a CIDR like 10.20.0.0/16 or fd00::/64, optionally with :PORT)"
        );
        assert!(network_entry("10.0.0.1/8")
            .expect_err("must fail")
            .contains("did you mean 10.0.0.0/8?"));
        for bad in [
            "10.0.0.0",
            "10.0.0.0/33",
            "10.0.0.0/8:0",
            "fd00::/129",
            "x/8",
        ] {
            assert!(network_entry(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn memory_and_cpu() {
        assert_eq!(memory("4G"), Ok("4g".into()));
        assert_eq!(memory("512m"), Ok("512m".into()));
        for bad in ["0m", "", "4x", "m", "1k", "-1g", "1.2.3g"] {
            assert!(memory(bad).is_err(), "{bad}");
        }
        assert!(cpu(0.0).is_err());
        assert!(cpu(f64::NAN).is_err());
        assert_eq!(cpu(0.5), Ok(0.5));
    }

    #[test]
    fn names() {
        assert!(workspace_name("web-2").is_ok());
        assert_eq!(
            workspace_name("Foo_bar").expect_err("must fail"),
            "invalid workspace name \"Foo_bar\": use only lowercase letters, digits and '-' (e.g. \"foo-bar\")"
        );
        assert!(env_name("OPENCODE_SERVER_PASSWORD").is_err());
        assert!(env_name("1X").is_err());
        assert!(env_name("SANDBOX_INIT_LOG").is_ok());
        assert!(env_name("GITHUB_TOKEN").is_ok());
    }

    #[test]
    fn suggestions() {
        assert_eq!(
            did_you_mean("pahts", super::super::schema::SECTION_KEYS),
            Some("paths")
        );
        assert_eq!(
            did_you_mean("allowed_host", super::super::schema::SECTION_KEYS),
            Some("allowed_hosts")
        );
        assert_eq!(
            did_you_mean("zzzzzz", super::super::schema::SECTION_KEYS),
            None
        );
    }
}
