//! The policy: `policy.toml` plus the Go jailoc's line files `allowed-hosts` and
//! `allowed-networks`, validated into one [`Policy`] before anything is changed.
//!
//! Validation is strict: an unknown key, a wrong type or a malformed entry is an error that names
//! the file, the line and the offending key or entry (exit 78). All paths are parameters.

mod entry;
mod file;

pub use entry::{
    parse_blocked, parse_host, parse_network, EntryError, Host, HostEntry, NetworkEntry,
};

use ipnet::IpNet;
use std::collections::HashSet;
use std::hash::Hash;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The native policy file in the config dir.
pub const POLICY_FILE: &str = "policy.toml";
/// The Go jailoc's host list, one entry a line.
pub const HOSTS_FILE: &str = "allowed-hosts";
/// The Go jailoc's network list, one entry a line.
pub const NETWORKS_FILE: &str = "allowed-networks";

/// Default bound on the whole resolve step (all names, A and AAAA, all resolvers).
pub const DEFAULT_RESOLVE_TIMEOUT: Duration = Duration::from_millis(2000);

/// What leaves the container besides the allowlist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Egress {
    /// Public internet allowed; the special ranges are blocked (default).
    #[default]
    Open,
    /// Only the allowlisted hosts/networks and DNS to the resolvers.
    Allowlist,
}

impl std::fmt::Display for Egress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Egress::Open => "open",
            Egress::Allowlist => "allowlist",
        })
    }
}

/// The unprivileged user the agent runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
}

impl Default for Agent {
    fn default() -> Self {
        Agent {
            uid: 1000,
            gid: 1000,
            home: PathBuf::from("/home/agent"),
        }
    }
}

/// The validated, merged policy.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Policy {
    pub egress: Egress,
    /// TOML entries first, then `allowed-hosts`; deduplicated, first occurrence kept.
    pub hosts: Vec<HostEntry>,
    /// TOML entries first, then `allowed-networks`; deduplicated, first occurrence kept.
    pub networks: Vec<NetworkEntry>,
    /// `blocked_networks`: extra destinations refused like the built-in blocked ranges (after
    /// the allow rules); the launcher lists the host's own addresses here. Deduplicated.
    pub blocked: Vec<IpNet>,
    pub agent: Agent,
    /// Bound on the resolve step (`resolve_timeout_ms`, 100-30000, default 2000).
    pub resolve_timeout: Duration,
}

impl Policy {
    /// The allowlisted names to resolve, in policy order, each once.
    pub fn names(&self) -> Vec<String> {
        let names = self.hosts.iter().filter_map(|h| match &h.host {
            Host::Name(n) => Some(n.clone()),
            Host::Addr(_) => None,
        });
        dedup(names.collect())
    }
}

/// A policy that cannot be loaded (exit 78).
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

/// Loads `policy.toml`, `allowed-hosts` and `allowed-networks` from `dir` (each optional).
pub fn load(dir: &Path) -> Result<Policy, PolicyError> {
    let toml_path = dir.join(POLICY_FILE);
    let mut policy = match read_optional(&toml_path)? {
        Some(text) => file::parse_toml(&toml_path, &text)?,
        None => Policy {
            resolve_timeout: DEFAULT_RESOLVE_TIMEOUT,
            ..Policy::default()
        },
    };
    let hosts_path = dir.join(HOSTS_FILE);
    if let Some(text) = read_optional(&hosts_path)? {
        let extra = file::parse_lines(&hosts_path, &text, "allowed-hosts", parse_host)?;
        policy.hosts.extend(extra);
    }
    let networks_path = dir.join(NETWORKS_FILE);
    if let Some(text) = read_optional(&networks_path)? {
        let extra = file::parse_lines(&networks_path, &text, "allowed-networks", parse_network)?;
        policy.networks.extend(extra);
    }
    policy.hosts = dedup(policy.hosts);
    policy.networks = dedup(policy.networks);
    policy.blocked = dedup(policy.blocked);
    Ok(policy)
}

fn read_optional(path: &Path) -> Result<Option<String>, PolicyError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(PolicyError::Read {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Order-preserving deduplication: the first occurrence wins.
pub fn dedup<T: Clone + Eq + Hash>(items: Vec<T>) -> Vec<T> {
    let mut seen = HashSet::new();
    items
        .into_iter()
        .filter(|item| seen.insert(item.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        for (name, text) in files {
            fs::write(dir.path().join(name), text).expect("write");
        }
        dir
    }

    fn err(files: &[(&str, &str)]) -> String {
        let dir = dir_with(files);
        let e = load(dir.path()).expect_err("must fail");
        e.to_string()
            .replace(&dir.path().display().to_string(), "DIR")
    }

    #[test]
    fn empty_dir_is_the_default_policy() {
        let dir = dir_with(&[]);
        let policy = load(dir.path()).expect("load");
        assert_eq!(policy.egress, Egress::Open);
        assert!(policy.hosts.is_empty() && policy.networks.is_empty());
        assert_eq!(
            policy.agent,
            Agent {
                uid: 1000,
                gid: 1000,
                home: "/home/agent".into()
            }
        );
        assert_eq!(policy.resolve_timeout, Duration::from_millis(2000));
    }

    #[test]
    fn toml_and_line_files_merge_in_order_without_duplicates() {
        let dir = dir_with(&[
            (
                "policy.toml",
                "egress = \"allowlist\"\nallowed_hosts = [\"pypi.org\", \"b.example:443\"]\n\
                 allowed_networks = [\"10.20.0.0/16\"]\nresolve_timeout_ms = 500\n\
                 blocked_networks = [\"203.0.113.7\", \"2001:db8::/32\", \"203.0.113.7/32\"]\n\
                 [agent]\nuid = 1001\ngid = 1002\nhome = \"/home/me\"\n",
            ),
            (
                "allowed-hosts",
                "# legacy\n\nPYPI.org.\na.example # trailing comment\nb.example:443\n",
            ),
            (
                "allowed-networks",
                "10.30.0.0/16\n10.20.0.0/16\n  fd00:1::/64:80  \n",
            ),
        ]);
        let policy = load(dir.path()).expect("load");
        assert_eq!(policy.egress, Egress::Allowlist);
        let hosts: Vec<String> = policy.hosts.iter().map(ToString::to_string).collect();
        assert_eq!(hosts, ["pypi.org", "b.example:443", "a.example"]);
        let nets: Vec<String> = policy.networks.iter().map(ToString::to_string).collect();
        assert_eq!(nets, ["10.20.0.0/16", "10.30.0.0/16", "fd00:1::/64:80"]);
        let blocked: Vec<String> = policy.blocked.iter().map(ToString::to_string).collect();
        assert_eq!(blocked, ["203.0.113.7/32", "2001:db8::/32"]);
        assert_eq!(
            policy.agent,
            Agent {
                uid: 1001,
                gid: 1002,
                home: "/home/me".into()
            }
        );
        assert_eq!(policy.resolve_timeout, Duration::from_millis(500));
    }

    #[test]
    fn same_host_with_and_without_port_are_distinct_entries() {
        let dir = dir_with(&[("allowed-hosts", "a.example\na.example:80\na.example\n")]);
        let policy = load(dir.path()).expect("load");
        assert_eq!(policy.hosts.len(), 2);
    }

    #[test]
    fn errors_name_file_line_key_and_value() {
        assert_eq!(
            err(&[("policy.toml", "egress = \"open\"\negres = \"open\"\n")]),
            "DIR/policy.toml:2: unknown key \"egres\" (did you mean \"egress\"?)"
        );
        assert_eq!(
            err(&[("policy.toml", "[agent]\nuid = 1000\nshell = \"/bin/sh\"\n")]),
            "DIR/policy.toml:3: unknown key \"agent.shell\" (expected one of: uid, gid, home)"
        );
        assert_eq!(
            err(&[("policy.toml", "allowed_host = []\n")]),
            "DIR/policy.toml:1: unknown key \"allowed_host\" (did you mean \"allowed_hosts\"?)"
        );
        assert_eq!(
            err(&[("policy.toml", "egress = \"closed\"\n")]),
            "DIR/policy.toml:1: invalid value for \"egress\": expected \"open\" or \"allowlist\", found \"closed\""
        );
        assert_eq!(
            err(&[("policy.toml", "allowed_hosts = \"pypi.org\"\n")]),
            "DIR/policy.toml:1: invalid value for \"allowed_hosts\": expected an array of strings"
        );
        assert_eq!(
            err(&[(
                "policy.toml",
                "allowed_hosts = [\n  \"ok.example\",\n  \"bad host\",\n]\n"
            )]),
            "DIR/policy.toml:3: invalid allowed_hosts entry \"bad host\": contains whitespace"
        );
        assert_eq!(
            err(&[("policy.toml", "allowed_networks = [1]\n")]),
            "DIR/policy.toml:1: invalid value for \"allowed_networks\": expected an array of strings"
        );
        assert_eq!(
            err(&[("policy.toml", "[agent]\nuid = 0\n")]),
            "DIR/policy.toml:2: invalid value for \"agent.uid\": expected an integer from 1 to 4294967294 (the agent must not be root), found 0"
        );
        assert_eq!(
            err(&[("policy.toml", "[agent]\nhome = \"home/agent\"\n")]),
            "DIR/policy.toml:2: invalid value for \"agent.home\": expected an absolute path, found \"home/agent\""
        );
        assert_eq!(
            err(&[("policy.toml", "agent = 3\n")]),
            "DIR/policy.toml:1: invalid value for \"agent\": expected a table"
        );
        assert_eq!(
            err(&[("policy.toml", "resolve_timeout_ms = 5\n")]),
            "DIR/policy.toml:1: invalid value for \"resolve_timeout_ms\": expected an integer from 100 to 30000, found 5"
        );
        assert!(
            err(&[("policy.toml", "egress = \n")]).starts_with("DIR/policy.toml:1: invalid TOML: ")
        );
        assert_eq!(
            err(&[("allowed-hosts", "ok.example\n\n# c\n*.example.com\n")]),
            "DIR/allowed-hosts:4: invalid allowed-hosts entry \"*.example.com\": wildcards (*) are not supported: list each host name"
        );
        assert_eq!(
            err(&[("policy.toml", "blocked_networks = [\"10.0.0.0/8:22\"]\n")]),
            "DIR/policy.toml:1: invalid blocked_networks entry \"10.0.0.0/8:22\": a blocked network takes no port: the whole destination is refused"
        );
        assert_eq!(
            err(&[("policy.toml", "blocked_network = []\n")]),
            "DIR/policy.toml:1: unknown key \"blocked_network\" (did you mean \"blocked_networks\"?)"
        );
        assert_eq!(
            err(&[("allowed-networks", "10.0.0.1/8\n")]),
            "DIR/allowed-networks:1: invalid allowed-networks entry \"10.0.0.1/8\": host bits are set (did you mean 10.0.0.0/8?)"
        );
    }

    #[test]
    fn unreadable_file_is_an_error() {
        let dir = dir_with(&[]);
        fs::create_dir(dir.path().join("policy.toml")).expect("mkdir");
        assert!(load(dir.path())
            .expect_err("dir")
            .to_string()
            .starts_with("failed to read "));
    }
}
