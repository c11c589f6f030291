//! Pure validators for single values. Each returns the user-facing reason on failure; the
//! loader adds file, line and key. The allowlist entries are not here: the loader parses them
//! with the policy contract's grammar (`jailoc_policy`), the one sandbox-init reads them with.

use super::Spanned;
use jailoc_policy::{is_env_name, EntryError, CONFIG_DIR_ENV, ENV_PREFIX, LOG_ENV};

/// The one "did you mean" for unknown keys, shared with sandbox-init's `policy.toml` reader.
pub use jailoc_policy::did_you_mean;

/// Environment variables the launcher or sandbox-init set themselves.
pub const RESERVED_ENV: &[&str] = &[
    "HOME",
    "USER",
    "OPENCODE_SERVER_PASSWORD",
    "OPENCODE_SERVER_USERNAME",
    CONFIG_DIR_ENV,
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

/// `allowed_hosts` / `allowed_networks`: each entry parsed by the policy contract's grammar
/// (the one sandbox-init reads the policy with), kept typed until the policy is written. On the
/// first bad entry: its line and the reason.
pub fn entries<T>(
    items: Vec<Spanned<String>>,
    parse: fn(&str) -> Result<T, EntryError>,
) -> Result<Vec<Spanned<T>>, (usize, String)> {
    items
        .into_iter()
        .map(|e| match parse(&e.value) {
            Ok(value) => Ok(Spanned {
                value,
                line: e.line,
            }),
            Err(reason) => Err((e.line, format!("invalid entry {:?}: {reason}", e.value))),
        })
        .collect()
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
    if !is_env_name(name) {
        return Err(format!(
            "invalid variable name {name:?}: use letters, digits and '_' and do not start with a digit"
        ));
    }
    if RESERVED_ENV.contains(&name) || name.starts_with(ENV_PREFIX) && name != LOG_ENV {
        return Err(format!(
            "{name:?} is reserved: jailoc or sandbox-init sets it"
        ));
    }
    Ok(())
}

/// The NAME of `secrets.env.NAME`: an environment variable name that neither jailoc,
/// sandbox-init nor the Go jailoc reserves.
pub fn secret_env_name(name: &str) -> Result<(), String> {
    if !is_env_name(name) {
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
    if is_env_name(var) {
        Ok(())
    } else {
        Err(format!(
            "invalid from_env {var:?}: a host environment variable name must match ^[A-Za-z_][A-Za-z0-9_]*$"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
