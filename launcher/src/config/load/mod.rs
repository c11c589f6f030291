//! Parses `config.toml` with `toml_edit` (which keeps spans) into a validated [`Config`], so
//! every error can name the file, line, key and value. Unknown keys are errors, never ignored.
//!
//! | file | job |
//! |---|---|
//! | `mod.rs` | the entry points, and the top level: `[base]`, `[defaults]`, `[workspaces.NAME]`, `mode`, `password_mode` |
//! | `section.rs` | the keys of `[defaults]` and `[workspaces.NAME]`, one reader each |
//! | `secrets.rs` | a section's `secrets` tables |
//! | `host.rs` | values naming something on the host: paths, `mounts` entries, Dockerfiles |
//! | `items.rs` | one TOML item read as the type a key wants; lines, type errors, unknown keys |

mod host;
mod items;
mod secrets;
mod section;

use std::cell::RefCell;
use std::path::{Path, PathBuf};

use toml_edit::Item;

use super::paths::HostDirs;
use super::schema::{
    AttachMode, Config, DockerfileRef, PasswordMode, Section, BASE_KEYS, ROOT_KEYS,
};
use super::validate;
use super::ConfigError;

type Result<T> = std::result::Result<T, ConfigError>;

/// Reads and validates the config file at `file`. `dirs.home` resolves `~`; `dirs` also places
/// the deny-listed directories (jailoc's own, OpenCode's data).
pub fn load_file(file: &Path, dirs: &HostDirs) -> Result<Config> {
    let text = std::fs::read_to_string(file).map_err(|e| ConfigError {
        file: file.to_path_buf(),
        line: 0,
        key: String::new(),
        message: format!("failed to read the file: {e}"),
    })?;
    parse_with(&text, file, dirs)
}

/// [`parse_with`] for a host whose XDG directories are the defaults under `home`.
pub fn parse_str(text: &str, file: &Path, home: &Path) -> Result<Config> {
    parse_with(text, file, &HostDirs::from_home(home))
}

/// Parses and validates config `text` that came from `file`. Never panics on any input.
pub fn parse_with(text: &str, file: &Path, dirs: &HostDirs) -> Result<Config> {
    let parser = Parser {
        text,
        file: file.to_path_buf(),
        dirs: dirs.clone(),
        deferred: RefCell::new(Vec::new()),
        config_dir: file
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("/")),
    };
    parser.parse()
}

/// One config file being read: its text (for lines) and what resolves its paths. The readers
/// of each part are methods in this module's files.
struct Parser<'a> {
    text: &'a str,
    file: PathBuf,
    /// The home (`~`) and the deny-listed directories.
    dirs: HostDirs,
    /// The config file's directory: relative paths (`dockerfile`, `env_file`) start there.
    config_dir: PathBuf,
    /// Deny-list refusals of the table being parsed, kept for `up` ([`Section::refused`]).
    deferred: RefCell<Vec<ConfigError>>,
}

impl Parser<'_> {
    /// The whole file: each top-level key in the order written; the first error wins.
    fn parse(&self) -> Result<Config> {
        let doc = toml_edit::Document::parse(self.text).map_err(|e| {
            let line = self.line_of(e.span()).max(1);
            self.err(line, "", format!("invalid TOML: {}", e.message().trim()))
        })?;
        let root = doc.as_table();
        let mut cfg = Config {
            file: self.file.clone(),
            ..Config::default()
        };
        for (key, item) in root.iter() {
            let line = self.key_line(root, key);
            match key {
                "base" => cfg.base_dockerfile = self.base(item, line)?,
                "defaults" => cfg.defaults = self.defaults(item, line)?,
                "workspaces" => self.workspaces(item, line, &mut cfg)?,
                "mode" => cfg.mode = self.attach_mode(item, key, line)?,
                "image" => {
                    return Err(self.err(
                        line,
                        key,
                        "[image] is an early Go jailoc table that is no longer read: move `dockerfile` to [base] and a ready-made `repository` to [defaults] image",
                    ))
                }
                "password_mode" => cfg.password_mode = self.password_mode(item, line)?,
                _ => return Err(self.unknown(line, key, key, ROOT_KEYS)),
            }
        }
        Ok(cfg)
    }

    /// `[base]`: the Dockerfile every image starts from ("" means unset, as in the Go
    /// jailoc's template).
    fn base(&self, item: &Item, line: usize) -> Result<Option<DockerfileRef>> {
        let table = self.table(item, "base", line)?;
        let mut dockerfile = None;
        for (key, value) in table.iter() {
            let full = format!("base.{key}");
            let key_line = self.key_line(table, key);
            match key {
                "dockerfile" => {
                    let s = self.string(value, &full, key_line)?;
                    if !s.is_empty() {
                        dockerfile = Some(self.dockerfile(&s, &full, key_line)?);
                    }
                }
                _ => return Err(self.unknown(key_line, &full, key, BASE_KEYS)),
            }
        }
        Ok(dockerfile)
    }

    /// `[defaults]`: a section without `paths` (those belong to one workspace).
    fn defaults(&self, item: &Item, line: usize) -> Result<Section> {
        let table = self.table(item, "defaults", line)?;
        let defaults = self.section(table, "defaults")?;
        if let Some(paths) = &defaults.paths {
            let paths_line = paths.first().map(|p| p.line).unwrap_or(line);
            return Err(self.err(
                paths_line,
                "defaults.paths",
                "paths belong to a workspace: move them to [workspaces.NAME]",
            ));
        }
        Ok(defaults)
    }

    /// `[workspaces.NAME]`, each a section under a valid name, into `cfg.workspaces`.
    fn workspaces(&self, item: &Item, line: usize, cfg: &mut Config) -> Result<()> {
        let table = self.table(item, "workspaces", line)?;
        for (name, section) in table.iter() {
            let full = format!("workspaces.{name}");
            let name_line = self.key_line(table, name);
            validate::workspace_name(name).map_err(|m| self.err(name_line, &full, m))?;
            let section_table = self.table(section, &full, name_line)?;
            let section = self.section(section_table, &full)?;
            cfg.workspaces.insert(name.to_string(), section);
        }
        Ok(())
    }

    /// `password_mode = "auto" | "env" | "file" | "keyring"` (empty: auto).
    fn password_mode(&self, item: &Item, line: usize) -> Result<PasswordMode> {
        let key = "password_mode";
        let v = self.string(item, key, line)?;
        match v.as_str() {
            "" | "auto" => Ok(PasswordMode::Auto),
            "env" => Ok(PasswordMode::Env),
            "file" => Ok(PasswordMode::File),
            // The Go jailoc's OS keyring: accepted, and stored like "file" (`up` says so), so
            // a Go config never blocks `down`, `status` or `config`.
            "keyring" => Ok(PasswordMode::Keyring),
            _ => Err(self.err(
                line,
                key,
                format!(
                    "invalid password_mode {v:?}: use \"auto\", \"env\", \"file\" or \"keyring\""
                ),
            )),
        }
    }

    /// `mode = "remote" | "exec" | ""` (empty: decide at attach time).
    fn attach_mode(&self, item: &Item, key: &str, line: usize) -> Result<Option<AttachMode>> {
        let v = self.string(item, key, line)?;
        match v.as_str() {
            "" => Ok(None),
            "remote" => Ok(Some(AttachMode::Remote)),
            "exec" => Ok(Some(AttachMode::Exec)),
            _ => Err(self.err(
                line,
                key,
                format!("invalid mode {v:?}: use \"remote\" (opencode attach on the host), \"exec\" (inside the container) or \"\" (auto)"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::schema::{Egress, HostPath};

    pub(super) fn parse(text: &str) -> Result<Config> {
        parse_str(
            text,
            Path::new("/cfg/config.toml"),
            Path::new("/nonexistent-home/u"),
        )
    }

    #[test]
    fn errors_name_file_line_key_value() {
        let e = parse("[workspaces.web]\npaths = [\"/srv/web\"]\nmemory = \"0m\"\n")
            .expect_err("must fail");
        assert_eq!(
            e.to_string(),
            "/cfg/config.toml:3: workspaces.web.memory: invalid memory \"0m\": use a whole number with an optional k, m or g suffix, at least 6m (e.g. \"512m\" or \"4g\")"
        );
        let e = parse("[defaults]\npahts = 1\n").expect_err("must fail");
        assert_eq!(
            e.to_string(),
            "/cfg/config.toml:2: defaults.pahts: unknown key \"pahts\" (did you mean `paths`?)"
        );
        let e = parse("[workspaces.a]\nallowed_hosts = [\n  \"ok.org\",\n  \"bad host\",\n]\n")
            .expect_err("must fail");
        assert_eq!(e.line, 4);
        assert_eq!(e.key, "workspaces.a.allowed_hosts");
        let e = parse("[workspaces.a]\ncpu = \"lots\"\n").expect_err("must fail");
        assert_eq!(
            e.to_string(),
            "/cfg/config.toml:2: workspaces.a.cpu: expected a number like 2.0, got \"lots\""
        );
        let e = parse("x = [").expect_err("must fail");
        assert!(
            e.to_string()
                .starts_with("/cfg/config.toml:1: invalid TOML: "),
            "{e}"
        );
    }

    #[test]
    fn parses_a_full_section() {
        let c = parse(
            r#"
[base]
dockerfile = "base.Dockerfile"
[defaults]
allowed_hosts = ["pypi.org"]
env = { A = "1" }
egress = "allowlist"
cpu = 1
[workspaces.web]
paths = ["/srv/web"]
mounts = ["/srv/data:/data:ro", ":/home/agent/.gitconfig"]
[workspaces.web.secrets.env.GH_TOKEN]
from_file = "/srv/secrets/gh"
"#,
        )
        .expect("parse");
        assert_eq!(
            c.base_dockerfile,
            Some(DockerfileRef::Path(HostPath {
                raw: "base.Dockerfile".into(),
                line: 3,
                path: PathBuf::from("/cfg/base.Dockerfile")
            }))
        );
        assert_eq!(c.defaults.egress, Some(Egress::Allowlist));
        assert_eq!(c.defaults.cpu, Some(1.0));
        let web = &c.workspaces["web"];
        let mounts = web.mounts.as_ref().expect("mounts");
        assert!(mounts[0].read_only);
        assert_eq!(mounts[1].host, None);
    }

    /// The Go jailoc's own first-use template, every line uncommented, loads.
    #[test]
    fn go_template_uncommented_loads() {
        let c = parse(
            r#"mode = ""
password_mode = "auto"
[base]
dockerfile = ""
[defaults]
image = ""
env = ["KEY=VALUE"]
env_file = []
mounts = ["~/.config/opencode:/home/agent/.config/opencode:rw"]
allowed_hosts = ["example.com"]
allowed_networks = ["10.0.0.0/8"]
ssh_auth_sock = false
git_config = true
expose_port = true
enable_docker = true
cpu = 2.0
memory = "4g"
[workspaces.default]
paths = []
image = ""
allowed_hosts = []
allowed_networks = []
env = ["KEY=VALUE"]
env_file = []
mounts = ["~/.config/opencode:/home/agent/.config/opencode:rw"]
build_context = ""
dockerfile = ""
ssh_auth_sock = false
git_config = true
expose_port = true
enable_docker = true
cpu = 2.0
memory = "4g"
"#,
        )
        .expect("Go's template");
        assert_eq!(c.base_dockerfile, None);
        let d = &c.workspaces["default"];
        assert_eq!(
            (&d.image, &d.dockerfile, &d.build_context),
            (&None, &None, &None)
        );
        assert_eq!(c.mode, None);
    }

    /// Garbage in, an error (or a config) out: never a panic.
    #[test]
    fn never_panics_on_garbage() {
        let seeds = [
            "[workspaces.a]\npaths = [\"/srv/a\"]\nmemory = \"4g\"\ncpu = 2.5\n",
            "[defaults]\nenv = { A = \"b\" }\nmounts = [\"/x:/y:ro\"]\n",
            "[[workspaces]]\n[base]\ndockerfile = 3\n",
        ];
        let junk = [
            "", "[", "]", "\"", "=", "\n", "\u{0}", "é", "[[", "{", "}", ",", "~", "..", "/", ":",
            "1e999", "-0", "inf", "nan", "\\u0000", "'''", "[a.b.c]", "x.y = 1",
        ];
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for seed in seeds {
            for _ in 0..400 {
                let mut s: Vec<char> = seed.chars().collect();
                for _ in 0..(next() % 6 + 1) {
                    let pos = (next() as usize) % (s.len() + 1);
                    match next() % 3 {
                        0 if !s.is_empty() => {
                            s.remove(pos.min(s.len() - 1));
                        }
                        1 => {
                            let j = junk[(next() as usize) % junk.len()];
                            for (i, c) in j.chars().enumerate() {
                                s.insert(pos + i, c);
                            }
                        }
                        _ => {
                            let b = (next() % 128) as u8 as char;
                            s.insert(pos, b);
                        }
                    }
                }
                let text: String = s.into_iter().collect();
                let _ = parse(&text);
            }
        }
    }
}
