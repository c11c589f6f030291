//! Parses `config.toml` with `toml_edit` (which keeps spans) into a validated [`Config`], so
//! every error can name the file, line, key and value. Unknown keys are errors, never ignored.

use std::path::{Path, PathBuf};

use toml_edit::{Item, TableLike, Value};

use super::paths;
use super::schema::{
    Config, Egress, HostPath, MountEntry, Section, BASE_KEYS, ROOT_KEYS, SECTION_KEYS,
};
use super::validate;
use super::{ConfigError, Spanned};

/// Reads and validates the config file at `file`. `home` resolves `~`.
pub fn load_file(file: &Path, home: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(file).map_err(|e| ConfigError {
        file: file.to_path_buf(),
        line: 0,
        key: String::new(),
        message: format!("failed to read the file: {e}"),
    })?;
    parse_str(&text, file, home)
}

/// Parses and validates config `text` that came from `file`. Never panics on any input.
pub fn parse_str(text: &str, file: &Path, home: &Path) -> Result<Config, ConfigError> {
    let p = Parser {
        text,
        file: file.to_path_buf(),
        home: home.to_path_buf(),
        base: file
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("/")),
    };
    p.parse()
}

struct Parser<'a> {
    text: &'a str,
    file: PathBuf,
    home: PathBuf,
    base: PathBuf,
}

type R<T> = Result<T, ConfigError>;

impl Parser<'_> {
    fn line_of(&self, span: Option<std::ops::Range<usize>>) -> usize {
        let Some(span) = span else { return 0 };
        let end = span.start.min(self.text.len());
        let prefix = self.text.get(..end).unwrap_or("");
        prefix.bytes().filter(|&b| b == b'\n').count() + 1
    }

    fn err(&self, line: usize, key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.clone(),
            line,
            key: key.to_string(),
            message: message.into(),
        }
    }

    /// The line of `key` inside `table` (its key if known, else its value).
    fn key_line(&self, table: &dyn TableLike, key: &str) -> usize {
        let from_key = table.key(key).and_then(|k| k.span());
        let from_item = table.get(key).and_then(Item::span);
        let line = self.line_of(from_key.or(from_item));
        if line == 0 {
            // Implicit tables (`[workspaces.a]` without `[workspaces]`) have no key span; fall
            // back to the first line mentioning the key.
            self.text
                .lines()
                .position(|l| !l.trim_start().starts_with('#') && l.contains(key))
                .map(|i| i + 1)
                .unwrap_or(1)
        } else {
            line
        }
    }

    fn parse(&self) -> R<Config> {
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
                "base" => {
                    let t = self.table(item, key, line)?;
                    for (k, v) in t.iter() {
                        let full = format!("base.{k}");
                        let l = self.key_line(t, k);
                        match k {
                            "dockerfile" => {
                                let s = self.string(v, &full, l)?;
                                cfg.base_dockerfile = Some(self.host_path(&s, &full, l, true)?);
                            }
                            _ => return Err(self.unknown(l, &full, k, BASE_KEYS)),
                        }
                    }
                }
                "defaults" => {
                    let t = self.table(item, key, line)?;
                    cfg.defaults = self.section(t, "defaults")?;
                    if let Some(p) = &cfg.defaults.paths {
                        let l = p.first().map(|p| p.line).unwrap_or(line);
                        return Err(self.err(
                            l,
                            "defaults.paths",
                            "paths belong to a workspace: move them to [workspaces.NAME]",
                        ));
                    }
                }
                "workspaces" => {
                    let t = self.table(item, key, line)?;
                    for (name, ws) in t.iter() {
                        let full = format!("workspaces.{name}");
                        let l = self.key_line(t, name);
                        validate::workspace_name(name).map_err(|m| self.err(l, &full, m))?;
                        let wt = self.table(ws, &full, l)?;
                        let section = self.section(wt, &full)?;
                        cfg.workspaces.insert(name.to_string(), section);
                    }
                }
                _ => return Err(self.unknown(line, key, key, ROOT_KEYS)),
            }
        }
        Ok(cfg)
    }

    fn unknown(&self, line: usize, full: &str, key: &str, known: &[&str]) -> ConfigError {
        let hint = match validate::did_you_mean(key, known) {
            Some(k) => format!(" (did you mean `{k}`?)"),
            None => format!(" (known keys: {})", known.join(", ")),
        };
        self.err(line, full, format!("unknown key {key:?}{hint}"))
    }

    fn section(&self, t: &dyn TableLike, prefix: &str) -> R<Section> {
        let mut s = Section::default();
        for (key, item) in t.iter() {
            let full = format!("{prefix}.{key}");
            let line = self.key_line(t, key);
            match key {
                "paths" => {
                    let mut v = Vec::new();
                    for e in self.strings(item, &full, line)? {
                        let hp = self.host_path(&e.value, &full, e.line, false)?;
                        paths::check_workspace_path(&hp.raw, &hp.path, &self.home)
                            .map_err(|m| self.err(e.line, &full, m))?;
                        v.push(hp);
                    }
                    s.paths = Some(v);
                }
                "mounts" => {
                    let mut v = Vec::new();
                    for e in self.strings(item, &full, line)? {
                        v.push(self.mount(&e.value, &full, e.line)?);
                    }
                    s.mounts = Some(v);
                }
                "allowed_hosts" => {
                    let v = self.strings(item, &full, line)?;
                    for e in &v {
                        validate::host_entry(&e.value).map_err(|m| self.err(e.line, &full, m))?;
                    }
                    s.allowed_hosts = Some(v);
                }
                "allowed_networks" => {
                    let v = self.strings(item, &full, line)?;
                    for e in &v {
                        validate::network_entry(&e.value)
                            .map_err(|m| self.err(e.line, &full, m))?;
                    }
                    s.allowed_networks = Some(v);
                }
                "image" => {
                    let v = self.string(item, &full, line)?;
                    if v.trim().is_empty() || v.contains(char::is_whitespace) {
                        return Err(self.err(line, &full, format!("invalid image {v:?}")));
                    }
                    s.image = Some(Spanned { value: v, line });
                }
                "dockerfile" => {
                    let v = self.string(item, &full, line)?;
                    s.dockerfile = Some(self.host_path(&v, &full, line, true)?);
                }
                "build_context" => {
                    let v = self.string(item, &full, line)?;
                    s.build_context = Some(self.host_path(&v, &full, line, true)?);
                }
                "env" => {
                    let et = self.table(item, &full, line)?;
                    let mut v = Vec::new();
                    for (k, val) in et.iter() {
                        let l = self.key_line(et, k);
                        let kf = format!("{full}.{k}");
                        validate::env_name(k).map_err(|m| self.err(l, &kf, m))?;
                        let value = self.string(val, &kf, l)?;
                        if value.contains('\0') {
                            return Err(self.err(l, &kf, "value contains a NUL byte"));
                        }
                        v.push((k.to_string(), Spanned { value, line: l }));
                    }
                    s.env = Some(v);
                }
                "env_file" => {
                    let list = match item.as_str() {
                        Some(one) => vec![Spanned {
                            value: one.to_string(),
                            line,
                        }],
                        None => self.strings(item, &full, line)?,
                    };
                    let mut v = Vec::new();
                    for e in list {
                        v.push(self.host_path(&e.value, &full, e.line, true)?);
                    }
                    s.env_file = Some(v);
                }
                "ssh_auth_sock" => s.ssh_auth_sock = Some(self.boolean(item, &full, line)?),
                "git_config" => s.git_config = Some(self.boolean(item, &full, line)?),
                "expose_port" => s.expose_port = Some(self.boolean(item, &full, line)?),
                "enable_docker" => s.enable_docker = Some(self.boolean(item, &full, line)?),
                "cpu" => {
                    let n = match item.as_value() {
                        Some(Value::Float(f)) => *f.value(),
                        Some(Value::Integer(i)) => *i.value() as f64,
                        _ => return Err(self.type_err(item, &full, line, "a number like 2.0")),
                    };
                    s.cpu = Some(validate::cpu(n).map_err(|m| self.err(line, &full, m))?);
                }
                "memory" => {
                    let v = self.string(item, &full, line)?;
                    s.memory = Some(validate::memory(&v).map_err(|m| self.err(line, &full, m))?);
                }
                "secrets" => {
                    let st = self.table(item, &full, line)?;
                    let mut v = Vec::new();
                    for (k, val) in st.iter() {
                        let l = self.key_line(st, k);
                        let kf = format!("{full}.{k}");
                        validate::env_name(k).map_err(|m| self.err(l, &kf, m))?;
                        let path = self.string(val, &kf, l)?;
                        v.push((k.to_string(), self.host_path(&path, &kf, l, true)?));
                    }
                    s.secrets = Some(v);
                }
                "egress" => {
                    let v = self.string(item, &full, line)?;
                    s.egress = Some(match v.as_str() {
                        "open" => Egress::Open,
                        "allowlist" => Egress::Allowlist,
                        _ => {
                            return Err(self.err(
                                line,
                                &full,
                                format!("invalid egress {v:?}: use \"open\" or \"allowlist\""),
                            ))
                        }
                    });
                }
                _ => return Err(self.unknown(line, &full, key, SECTION_KEYS)),
            }
        }
        if let Some(img) = &s.image {
            if s.dockerfile.is_some() || s.build_context.is_some() {
                let other = if s.dockerfile.is_some() {
                    "dockerfile"
                } else {
                    "build_context"
                };
                return Err(self.err(
                    img.line,
                    &format!("{prefix}.image"),
                    format!(
                        "image {:?} cannot be combined with `{other}` in the same table: use `image` for a ready-made image, or `dockerfile` to build one",
                        img.value
                    ),
                ));
            }
        }
        if s.build_context.is_some() && s.dockerfile.is_none() {
            let l = s.build_context.as_ref().map(|b| b.line).unwrap_or(0);
            return Err(self.err(
                l,
                &format!("{prefix}.build_context"),
                "build_context needs a `dockerfile` in the same table",
            ));
        }
        Ok(s)
    }

    fn mount(&self, raw: &str, key: &str, line: usize) -> R<MountEntry> {
        let parts: Vec<&str> = raw.split(':').collect();
        let (host, target, mode) = match parts.as_slice() {
            [h, t] => (*h, *t, None),
            [h, t, m] => (*h, *t, Some(*m)),
            _ => {
                return Err(self.err(
                    line,
                    key,
                    format!("invalid mount {raw:?}: use HOST:CONTAINER[:ro|rw] (an empty HOST removes an inherited mount)"),
                ))
            }
        };
        let read_only = match mode {
            None | Some("rw") => false,
            Some("ro") => true,
            Some(m) => {
                return Err(self.err(
                    line,
                    key,
                    format!("invalid mount {raw:?}: mode {m:?} is not \"ro\" or \"rw\""),
                ))
            }
        };
        let container = paths::check_mount_target(target)
            .map_err(|m| self.err(line, key, format!("invalid mount {raw:?}: {m}")))?;
        let host = if host.is_empty() {
            None
        } else {
            let p = paths::resolve(host, &self.home, None)
                .map_err(|m| self.err(line, key, format!("invalid mount {raw:?}: {m}")))?;
            paths::check_host_path(host, &p, &self.home)
                .map_err(|m| self.err(line, key, format!("invalid mount {raw:?}: {m}")))?;
            Some(p)
        };
        Ok(MountEntry {
            raw: raw.to_string(),
            line,
            host,
            container,
            read_only,
        })
    }

    fn host_path(&self, raw: &str, key: &str, line: usize, relative_ok: bool) -> R<HostPath> {
        let base = relative_ok.then_some(self.base.as_path());
        let path = paths::resolve(raw, &self.home, base).map_err(|m| self.err(line, key, m))?;
        Ok(HostPath {
            raw: raw.to_string(),
            line,
            path,
        })
    }

    fn describe(item: &Item) -> String {
        match item {
            Item::Value(v) => {
                let mut v = v.clone();
                v.decor_mut().clear();
                let s = v.to_string();
                if s.len() > 60 {
                    format!("{}...", s.chars().take(57).collect::<String>())
                } else {
                    s
                }
            }
            Item::Table(_) => "a table".into(),
            Item::ArrayOfTables(_) => "an array of tables".into(),
            Item::None => "nothing".into(),
        }
    }

    fn type_err(&self, item: &Item, key: &str, line: usize, want: &str) -> ConfigError {
        self.err(
            line,
            key,
            format!("expected {want}, got {}", Self::describe(item)),
        )
    }

    fn table<'t>(&self, item: &'t Item, key: &str, line: usize) -> R<&'t dyn TableLike> {
        item.as_table_like()
            .ok_or_else(|| self.type_err(item, key, line, "a table"))
    }

    fn string(&self, item: &Item, key: &str, line: usize) -> R<String> {
        item.as_str()
            .map(str::to_string)
            .ok_or_else(|| self.type_err(item, key, line, "a string"))
    }

    fn boolean(&self, item: &Item, key: &str, line: usize) -> R<bool> {
        item.as_bool()
            .ok_or_else(|| self.type_err(item, key, line, "true or false"))
    }

    fn strings(&self, item: &Item, key: &str, line: usize) -> R<Vec<Spanned<String>>> {
        let arr = item
            .as_array()
            .ok_or_else(|| self.type_err(item, key, line, "an array of strings"))?;
        let mut out = Vec::new();
        for v in arr.iter() {
            let l = match self.line_of(v.span()) {
                0 => line,
                n => n,
            };
            match v.as_str() {
                Some(s) => out.push(Spanned {
                    value: s.to_string(),
                    line: l,
                }),
                None => {
                    return Err(self.type_err(&Item::Value(v.clone()), key, l, "a string"));
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
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
            "/cfg/config.toml:3: workspaces.web.memory: invalid memory \"0m\": use a size of at least 6m like \"512m\" or \"4g\""
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
secrets = { GH_TOKEN = "/srv/secrets/gh" }
"#,
        )
        .expect("parse");
        assert_eq!(
            c.base_dockerfile.expect("base").path,
            PathBuf::from("/cfg/base.Dockerfile")
        );
        assert_eq!(c.defaults.egress, Some(Egress::Allowlist));
        assert_eq!(c.defaults.cpu, Some(1.0));
        let web = &c.workspaces["web"];
        let mounts = web.mounts.as_ref().expect("mounts");
        assert!(mounts[0].read_only);
        assert_eq!(mounts[1].host, None);
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
