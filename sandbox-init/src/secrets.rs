//! Secrets and the agent's environment.
//!
//! `secret-env` in the config dir lists one environment variable name a line (`#` comments and
//! blank lines ignored). Each `/run/secrets/NAME` is read as root, before the drop, and handed to
//! the agent as `NAME`. Trailing newlines are stripped, as the Go jailoc's `$(cat ...)` did.
//!
//! Root reads these, so only from a `/run/secrets` that [`Trust`] finds to be root's (it and
//! every directory above it root-owned, not writable by group or others), and each file with
//! `O_NOFOLLOW` through that directory's descriptor: an agent that could create
//! `/run/secrets/NAME -> /etc/shadow` must not have root hand it the target.
//!
//! Exit codes: an invalid name, a listed secret that does not exist, or a value with a NUL byte
//! is a configuration mismatch (the launcher wrote a secret the container was not given) → 78;
//! a secret that exists but cannot be read (permissions, I/O) is an OS failure → 71. Values never
//! appear in messages.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use crate::policy::{is_env_name, ENV_PREFIX as OWN_PREFIX, SECRET_ENV_FILE};
use crate::sys;
use crate::trust::{Trust, TrustError};

/// Errors of reading `secret-env` and the secrets.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    /// `secret-env` exists but cannot be read.
    #[error("failed to read {}: {source}", .path.display())]
    ReadList {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A line is not a valid environment variable name.
    #[error(
        "{}:{line}: invalid secret name {value:?}: use letters, digits and _, not starting with a digit",
        .path.display()
    )]
    InvalidName {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The entry.
        value: String,
    },
    /// A listed secret has no file.
    #[error(
        "failed to read secret {name} listed in {}:{line}: {} does not exist (mount it, or remove the line)",
        .list.display(), .path.display()
    )]
    Missing {
        /// The list file.
        list: PathBuf,
        /// 1-based line number in the list.
        line: usize,
        /// The name.
        name: String,
        /// The secret file.
        path: PathBuf,
    },
    /// A secret's value cannot be an environment variable.
    #[error("failed to read secret {name} from {}: the value contains a NUL byte", .path.display())]
    Nul {
        /// The name.
        name: String,
        /// The secret file.
        path: PathBuf,
    },
    /// The secrets directory is not root's alone.
    #[error("failed to read the secrets listed in {}: {source}", .list.display())]
    Untrusted {
        /// The list file.
        list: PathBuf,
        /// What is wrong with the directory.
        source: TrustError,
    },
    /// A secret is a symlink or not a regular file.
    #[error("failed to read secret {name} from {}: it is not a regular file (a symlink is never followed)", .path.display())]
    NotAFile {
        /// The name.
        name: String,
        /// The secret file.
        path: PathBuf,
    },
    /// A secret file exists but cannot be read.
    #[error("failed to read secret {name} from {}: {source}", .path.display())]
    Read {
        /// The name.
        name: String,
        /// The secret file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
}

/// A listed secret name and the line it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretName {
    /// The variable name.
    pub name: String,
    /// 1-based line in `secret-env`.
    pub line: usize,
}

/// Parse the text of `secret-env` (`path` only for messages). Duplicates are kept once.
pub fn parse_list(path: &Path, text: &str) -> Result<Vec<SecretName>, SecretsError> {
    let mut names: Vec<SecretName> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let entry = raw.split('#').next().unwrap_or("").trim();
        if entry.is_empty() {
            continue;
        }
        if !is_env_name(entry) {
            return Err(SecretsError::InvalidName {
                path: path.to_owned(),
                line: i + 1,
                value: entry.to_owned(),
            });
        }
        if !names.iter().any(|n| n.name == entry) {
            names.push(SecretName {
                name: entry.to_owned(),
                line: i + 1,
            });
        }
    }
    Ok(names)
}

/// Read `CONFIG_DIR/secret-env` (absent = no secrets) and every listed secret from
/// `secrets_dir` (normally `/run/secrets`, as `trust` sees it). Returns (name, value) pairs in
/// list order.
pub fn load(
    config_dir: &Path,
    secrets_dir: &Path,
    trust: &Trust,
) -> Result<Vec<(OsString, OsString)>, SecretsError> {
    let list = config_dir.join(SECRET_ENV_FILE);
    let text = match std::fs::read_to_string(&list) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(SecretsError::ReadList { path: list, source }),
    };
    let names = parse_list(&list, &text)?;
    let Some(first) = names.first() else {
        return Ok(Vec::new());
    };
    let missing = |SecretName { name, line }: &SecretName| SecretsError::Missing {
        list: list.clone(),
        line: *line,
        name: name.clone(),
        path: secrets_dir.join(name),
    };
    let dir = match trust.dir(secrets_dir) {
        Ok(real) => real,
        Err(TrustError::Missing { .. }) => return Err(missing(first)),
        Err(source) => return Err(SecretsError::Untrusted { list, source }),
    };
    let dir = sys::open_dir(&dir).map_err(|errno| SecretsError::Read {
        name: first.name.clone(),
        path: secrets_dir.to_owned(),
        source: io::Error::from_raw_os_error(errno.0),
    })?;
    let mut out = Vec::with_capacity(names.len());
    for secret in &names {
        let name = &secret.name;
        let path = secrets_dir.join(name);
        let read = |errno: sys::Errno| SecretsError::Read {
            name: name.clone(),
            path: path.clone(),
            source: io::Error::from_raw_os_error(errno.0),
        };
        let fd = match sys::open_file_at(std::os::fd::AsFd::as_fd(&dir), OsStr::new(name)) {
            Ok(fd) => fd,
            Err(sys::Errno(libc::ENOENT)) => return Err(missing(secret)),
            Err(sys::Errno(libc::ELOOP)) => {
                return Err(SecretsError::NotAFile {
                    name: name.clone(),
                    path,
                })
            }
            Err(errno) => return Err(read(errno)),
        };
        let mut file = std::fs::File::from(fd);
        let is_file = file
            .metadata()
            .map_err(|e| read(sys::Errno(e.raw_os_error().unwrap_or(libc::EIO))))?
            .is_file();
        if !is_file {
            return Err(SecretsError::NotAFile {
                name: name.clone(),
                path,
            });
        }
        let mut value = Vec::new();
        io::Read::read_to_end(&mut file, &mut value)
            .map_err(|e| read(sys::Errno(e.raw_os_error().unwrap_or(libc::EIO))))?;
        while value.last() == Some(&b'\n') {
            value.pop();
        }
        if value.contains(&0) {
            return Err(SecretsError::Nul {
                name: name.clone(),
                path,
            });
        }
        out.push((OsString::from(name), OsString::from_vec(value)));
    }
    Ok(out)
}

/// The agent's login name: the `/etc/passwd` entry for `uid` (path as a parameter), else
/// "agent".
pub fn user_name(passwd: &Path, uid: u32) -> String {
    let text = std::fs::read_to_string(passwd).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?;
            let entry_uid: u32 = f.nth(1)?.parse().ok()?;
            (entry_uid == uid && !name.is_empty()).then(|| name.to_owned())
        })
        .next()
        .unwrap_or_else(|| "agent".to_owned())
}

/// The agent's environment: the container's environment minus sandbox-init's own variables
/// (`SANDBOX_INIT_*`), then `HOME`, `USER` and `LOGNAME`, then the secrets (later entries
/// replace earlier ones with the same name; the order of first appearance is kept).
pub fn agent_environment(
    container: impl IntoIterator<Item = (OsString, OsString)>,
    home: &Path,
    user: &str,
    secrets: Vec<(OsString, OsString)>,
) -> Vec<(OsString, OsString)> {
    let mut env: Vec<(OsString, OsString)> = Vec::new();
    let mut set = |key: OsString, value: OsString| match env.iter_mut().find(|(k, _)| *k == key) {
        Some(slot) => slot.1 = value,
        None => env.push((key, value)),
    };
    for (k, v) in container {
        if !k.as_bytes().starts_with(OWN_PREFIX.as_bytes()) {
            set(k, v);
        }
    }
    set("HOME".into(), home.as_os_str().to_owned());
    set("USER".into(), user.into());
    set("LOGNAME".into(), user.into());
    for (k, v) in secrets {
        set(k, v);
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The exit code the boot ends with for `err`.
    fn code(err: SecretsError) -> i32 {
        crate::exit::for_error(&err.into())
    }

    /// A throwaway directory with empty `config/` and `secrets/` inside; it stands in for `/`
    /// (and the test's uid for root) when secrets are read.
    struct Tmp(tempfile::TempDir);
    impl Tmp {
        fn new() -> Self {
            use std::os::unix::fs::PermissionsExt;
            let t = tempfile::tempdir().expect("tempdir");
            std::fs::create_dir_all(t.path().join("config")).expect("mkdir");
            std::fs::create_dir_all(t.path().join("secrets")).expect("mkdir");
            for d in [t.path(), &t.path().join("secrets")] {
                std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).expect("chmod");
            }
            Self(t)
        }
        fn config(&self) -> PathBuf {
            self.0.path().join("config")
        }
        fn secrets(&self) -> PathBuf {
            self.0.path().join("secrets")
        }
        /// Reads the secrets as the boot does, from `/secrets` of this stand-in root.
        fn load(&self) -> Result<Vec<(OsString, OsString)>, SecretsError> {
            use std::os::unix::fs::MetadataExt;
            let me = std::fs::metadata("/proc/self").expect("proc").uid();
            load(
                &self.config(),
                Path::new("/secrets"),
                &Trust::within(self.0.path(), me),
            )
        }
    }

    #[test]
    fn list_allows_comments_blanks_and_dedupes() {
        let names = parse_list(
            Path::new("/etc/jailoc/secret-env"),
            "# tokens\n\nGITHUB_TOKEN\n  _X1 # trailing comment\nGITHUB_TOKEN\n",
        )
        .expect("valid");
        assert_eq!(
            names,
            [
                SecretName {
                    name: "GITHUB_TOKEN".into(),
                    line: 3
                },
                SecretName {
                    name: "_X1".into(),
                    line: 4
                }
            ]
        );
    }

    #[test]
    fn invalid_names_name_file_line_and_value() {
        for bad in ["1ABC", "A-B", "A B", "../etc/shadow", "X=1", "É"] {
            let err = parse_list(Path::new("/etc/jailoc/secret-env"), &format!("OK\n{bad}\n"))
                .expect_err(bad);
            assert_eq!(
                err.to_string(),
                format!(
                    "/etc/jailoc/secret-env:2: invalid secret name {bad:?}: use letters, digits \
                     and _, not starting with a digit"
                )
            );
            assert_eq!(code(err), 78);
        }
    }

    #[test]
    fn every_launcher_fixture_secret_env_parses() {
        // The launcher writes secret-env; both halves must agree on the format.
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/launcher");
        let Ok(cases) = std::fs::read_dir(&root) else {
            panic!("no launcher fixtures at {}", root.display());
        };
        let mut seen = 0;
        for case in cases.flatten() {
            let file = case.path().join("expected/secret-env");
            let Ok(text) = std::fs::read_to_string(&file) else {
                continue;
            };
            let names = parse_list(&file, &text)
                .unwrap_or_else(|e| panic!("launcher fixture rejected: {e}"));
            let listed = text
                .lines()
                .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
                .count();
            assert_eq!(names.len(), listed, "{}", file.display());
            seen += 1;
        }
        assert!(
            seen > 0,
            "no secret-env fixture found under {}",
            root.display()
        );
    }

    #[test]
    fn secrets_are_read_and_trailing_newlines_stripped() {
        let t = Tmp::new();
        std::fs::write(t.config().join("secret-env"), "API_KEY\nOTHER\n").expect("write");
        std::fs::write(t.secrets().join("API_KEY"), "s3cr3t\n\n").expect("write");
        std::fs::write(t.secrets().join("OTHER"), "a\nb").expect("write");
        let got = t.load().expect("load");
        assert_eq!(
            got,
            [
                ("API_KEY".into(), "s3cr3t".into()),
                ("OTHER".into(), "a\nb".into())
            ]
        );
    }

    #[test]
    fn no_list_means_no_secrets() {
        let t = Tmp::new();
        assert!(t.load().expect("load").is_empty());
    }

    #[test]
    fn a_missing_secret_is_fatal_and_says_which() {
        let t = Tmp::new();
        std::fs::write(t.config().join("secret-env"), "# x\nAPI_KEY\n").expect("write");
        let err = t.load().expect_err("missing");
        assert_eq!(
            err.to_string(),
            format!(
                "failed to read secret API_KEY listed in {}:2: /secrets/API_KEY does not exist (mount it, or remove the line)",
                t.config().join("secret-env").display(),
            )
        );
        assert_eq!(code(err), 78);
    }

    #[test]
    fn nul_in_a_value_is_refused_without_printing_it() {
        let t = Tmp::new();
        std::fs::write(t.config().join("secret-env"), "K\n").expect("write");
        std::fs::write(t.secrets().join("K"), b"ab\0cd").expect("write");
        let err = t.load().expect_err("nul");
        assert!(!err.to_string().contains("ab"));
        assert_eq!(code(err), 78);
    }

    #[test]
    fn environment_drops_own_vars_and_adds_identity_and_secrets() {
        let container = [
            ("PATH", "/usr/bin"),
            ("SANDBOX_INIT_CONFIG_DIR", "/etc/jailoc"),
            ("SANDBOX_INIT_LOG", "debug"),
            ("HOME", "/root"),
            ("TERM", "xterm"),
        ]
        .map(|(k, v)| (OsString::from(k), OsString::from(v)));
        let env = agent_environment(
            container,
            Path::new("/home/agent"),
            "agent",
            vec![("API_KEY".into(), "v".into())],
        );
        let pairs: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string_lossy().into(), v.to_string_lossy().into()))
            .collect();
        let want = [
            ("PATH", "/usr/bin"),
            ("HOME", "/home/agent"),
            ("TERM", "xterm"),
            ("USER", "agent"),
            ("LOGNAME", "agent"),
            ("API_KEY", "v"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        assert_eq!(pairs, want);
    }

    #[test]
    fn user_name_comes_from_passwd_or_defaults() {
        let t = Tmp::new();
        let passwd = t.0.path().join("passwd");
        std::fs::write(
            &passwd,
            "root:x:0:0:root:/root:/bin/sh\nnode:x:1000:1000::/home/node:/bin/sh\n",
        )
        .expect("write");
        assert_eq!(user_name(&passwd, 1000), "node");
        assert_eq!(user_name(&passwd, 1001), "agent");
        assert_eq!(user_name(&t.0.path().join("absent"), 1000), "agent");
    }

    #[test]
    fn a_planted_symlink_is_not_followed() {
        // Even in a directory that passes the check (how the agent would have got a link in
        // there is another question): the target is never read.
        let t = Tmp::new();
        std::fs::write(t.config().join("secret-env"), "API_KEY\n").expect("write");
        let target = t.0.path().join("shadow");
        std::fs::write(&target, "root's\n").expect("write");
        std::os::unix::fs::symlink(&target, t.secrets().join("API_KEY")).expect("ln");
        let err = t.load().expect_err("symlink");
        assert_eq!(
            err.to_string(),
            "failed to read secret API_KEY from /secrets/API_KEY: it is not a regular file (a \
             symlink is never followed)"
        );
        assert_eq!(code(err), 71);
    }

    #[test]
    fn a_secrets_dir_others_can_write_is_not_read() {
        use std::os::unix::fs::PermissionsExt;
        let t = Tmp::new();
        std::fs::write(t.config().join("secret-env"), "API_KEY\n").expect("write");
        std::fs::write(t.secrets().join("API_KEY"), "v").expect("write");
        std::fs::set_permissions(t.secrets(), std::fs::Permissions::from_mode(0o1777))
            .expect("chmod");
        let err = t.load().expect_err("writable dir");
        assert_eq!(
            err.to_string(),
            format!(
                "failed to read the secrets listed in {}: failed to trust /secrets: it is \
                 writable by group or others (mode 1777)",
                t.config().join("secret-env").display()
            )
        );
        assert_eq!(code(err), 71);
    }

    #[test]
    fn no_secrets_dir_is_a_missing_secret() {
        let t = Tmp::new();
        std::fs::remove_dir(t.secrets()).expect("rmdir");
        std::fs::write(t.config().join("secret-env"), "API_KEY\n").expect("write");
        let err = t.load().expect_err("missing");
        assert!(
            err.to_string().contains("/secrets/API_KEY does not exist"),
            "{err}"
        );
        assert_eq!(code(err), 78);
    }
}
