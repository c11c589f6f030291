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
    "JAILOC",
    "JAILOC_WORKSPACE",
];

/// Names an environment-destination secret may not have, beyond [`RESERVED_ENV`] (the Go
/// jailoc's list).
pub const RESERVED_SECRET_ENV: &[&str] = &["PATH", "OPENCODE_LOG"];

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

/// A memory size: the Go jailoc's grammar `^[1-9][0-9]*[kmgKMG]?$` (bytes without a suffix),
/// and at least 6 MiB, which Docker requires (said here rather than at `up`). Returns it
/// normalised to lowercase.
pub fn memory(value: &str) -> Result<String, String> {
    let bad = || {
        Err(format!(
            "invalid memory {value:?}: use a whole number with an optional k, m or g suffix, at least 6m (e.g. \"512m\" or \"4g\")"
        ))
    };
    let v = value.to_ascii_lowercase();
    let (num, mult) = match v.as_bytes().last() {
        Some(b'k') => (&v[..v.len() - 1], 1u128 << 10),
        Some(b'm') => (&v[..v.len() - 1], 1 << 20),
        Some(b'g') => (&v[..v.len() - 1], 1 << 30),
        _ => (v.as_str(), 1),
    };
    let grammar = num
        .bytes()
        .next()
        .is_some_and(|b| (b'1'..=b'9').contains(&b))
        && num.bytes().all(|b| b.is_ascii_digit());
    if !grammar {
        return bad();
    }
    // Saturate: a number too long for u128 is certainly large enough.
    let n: u128 = num.parse().unwrap_or(u128::MAX);
    if n.saturating_mul(mult) < 6 << 20 {
        return bad();
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

/// The NAME of `secrets.env.NAME`: an environment variable name that neither jailoc,
/// sandbox-init nor the Go jailoc reserves.
pub fn secret_env_name(name: &str) -> Result<(), String> {
    if !is_identifier(name) {
        return Err(format!(
            "invalid name {name:?}: an environment secret's name must match ^[A-Za-z_][A-Za-z0-9_]*$"
        ));
    }
    if RESERVED_SECRET_ENV.contains(&name) {
        return Err(format!("{name:?} is reserved: the container sets it"));
    }
    env_name(name)
}

/// The NAME of `secrets.file.NAME` (the file `/run/secrets/NAME`): `^[a-zA-Z0-9_-]+$`.
pub fn secret_file_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid name {name:?}: a file secret's name must match ^[a-zA-Z0-9_-]+$ (it becomes /run/secrets/NAME)"
        ))
    }
}

/// `from_env = "HOSTVAR"`: a host environment variable name.
pub fn host_var(var: &str) -> Result<(), String> {
    if is_identifier(var) {
        Ok(())
    } else {
        Err(format!(
            "invalid from_env {var:?}: a host environment variable name must match ^[A-Za-z_][A-Za-z0-9_]*$"
        ))
    }
}

fn is_identifier(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
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
        assert_eq!(
            memory("6291456"),
            Ok("6291456".into()),
            "plain bytes, as Go"
        );
        assert_eq!(memory("6144K"), Ok("6144k".into()));
        // Go's grammar: no leading zero, no fraction, no "b" unit, no spaces or signs.
        for bad in [
            "0m", "", "4x", "m", "-1g", "1.2.3g", "1.5g", "04g", "4gb", " 4g", "+4g", "4 g", "1b",
        ] {
            assert!(memory(bad).is_err(), "{bad}");
        }
        // Valid for Go, but below Docker's 6 MiB minimum: refused here rather than at `up`.
        for tiny in ["1024", "1k", "5m"] {
            assert!(memory(tiny).is_err(), "{tiny}");
        }
        assert!(memory("99999999999999999999999999999999999999999999g").is_ok());
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
        assert!(env_name("JAILOC_WORKSPACE").is_err());
    }

    #[test]
    fn secret_names() {
        for ok in ["TOKEN_1", "_TOKEN", "token", "A"] {
            assert_eq!(secret_env_name(ok), Ok(()), "{ok}");
            assert_eq!(host_var(ok), Ok(()), "{ok}");
        }
        for bad in [
            "1TOKEN",
            "TOKEN-NAME",
            "TOKEN.NAME",
            "TOKEN=1",
            "TOKEN NAME",
            "",
            "A$B",
        ] {
            let e = secret_env_name(bad).expect_err(bad);
            assert!(e.contains("^[A-Za-z_][A-Za-z0-9_]*$"), "{e}");
            assert!(host_var(bad).is_err(), "{bad}");
        }
        for reserved in [
            "HOME",
            "PATH",
            "OPENCODE_LOG",
            "OPENCODE_SERVER_PASSWORD",
            "DOCKER_HOST",
            "SSH_AUTH_SOCK",
            "JAILOC",
            "JAILOC_WORKSPACE",
        ] {
            let e = secret_env_name(reserved).expect_err(reserved);
            assert!(e.contains("reserved"), "{e}");
        }
        for ok in ["my-secret_1", "NETRC", "gh-token"] {
            assert_eq!(secret_file_name(ok), Ok(()), "{ok}");
        }
        for bad in ["my.secret", "dir/token", "", "a b", ".."] {
            assert!(secret_file_name(bad)
                .expect_err(bad)
                .contains("^[a-zA-Z0-9_-]+$"));
        }
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
