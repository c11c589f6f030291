//! Parses `config.toml` with `toml_edit` (which keeps spans) into a validated [`Config`], so
//! every error can name the file, line, key and value. Unknown keys are errors, never ignored.

use std::path::{Path, PathBuf};

use toml_edit::{Item, TableLike, Value};

use super::paths::{self, HostDirs};
use super::schema::{
    AttachMode, Config, DockerfileRef, Egress, HostPath, MountEntry, PasswordMode, SecretDest,
    SecretEntry, SecretSource, Section, BASE_KEYS, ROOT_KEYS, SECRET_KINDS, SECRET_SOURCES,
    SECTION_KEYS,
};
use super::validate;
use super::{ConfigError, Spanned};

/// Reads and validates the config file at `file`. `dirs.home` resolves `~`; `dirs` also places
/// the deny-listed directories (jailoc's own, OpenCode's data).
pub fn load_file(file: &Path, dirs: &HostDirs) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(file).map_err(|e| ConfigError {
        file: file.to_path_buf(),
        line: 0,
        key: String::new(),
        message: format!("failed to read the file: {e}"),
    })?;
    parse_with(&text, file, dirs)
}

/// [`parse_with`] for a host whose XDG directories are the defaults under `home`.
pub fn parse_str(text: &str, file: &Path, home: &Path) -> Result<Config, ConfigError> {
    parse_with(text, file, &HostDirs::from_home(home))
}

/// Parses and validates config `text` that came from `file`. Never panics on any input.
pub fn parse_with(text: &str, file: &Path, dirs: &HostDirs) -> Result<Config, ConfigError> {
    let p = Parser {
        text,
        file: file.to_path_buf(),
        home: dirs.home.clone(),
        dirs: dirs.clone(),
        deferred: std::cell::RefCell::new(Vec::new()),
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
    dirs: HostDirs,
    base: PathBuf,
    /// Deny-list refusals of the table being parsed, kept for `up` ([`Section::refused`]).
    deferred: std::cell::RefCell<Vec<ConfigError>>,
}

type R<T> = Result<T, ConfigError>;

impl Parser<'_> {
    fn line_of(&self, span: Option<std::ops::Range<usize>>) -> usize {
        let Some(span) = span else { return 0 };
        let end = span.start.min(self.text.len());
        let prefix = self.text.get(..end).unwrap_or("");
        prefix.bytes().filter(|&b| b == b'\n').count() + 1
    }

    /// Keeps a deny-list refusal for `up` instead of failing the load (see
    /// [`Section::refused`]). Returns whether `result` was fine.
    fn defer(&self, result: Result<(), String>, line: usize, key: &str) -> bool {
        match result {
            Ok(()) => true,
            Err(m) => {
                self.deferred.borrow_mut().push(self.err(line, key, m));
                false
            }
        }
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
                                // "" means unset, as in the Go jailoc's template.
                                if !s.is_empty() {
                                    cfg.base_dockerfile = Some(self.dockerfile(&s, &full, l)?);
                                }
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
                "mode" => cfg.mode = self.attach_mode(item, key, line)?,
                "image" => {
                    return Err(self.err(
                        line,
                        key,
                        "[image] is an early Go jailoc table that is no longer read: move `dockerfile` to [base] and a ready-made `repository` to [defaults] image",
                    ))
                }
                "password_mode" => {
                    let v = self.string(item, key, line)?;
                    cfg.password_mode = match v.as_str() {
                        "" | "auto" => PasswordMode::Auto,
                        "env" => PasswordMode::Env,
                        "file" => PasswordMode::File,
                        // The Go jailoc's OS keyring: accepted, and stored like "file" (`up`
                        // says so), so a Go config never blocks `down`, `status` or `config`.
                        "keyring" => PasswordMode::Keyring,
                        _ => {
                            return Err(self.err(
                                line,
                                key,
                                format!("invalid password_mode {v:?}: use \"auto\", \"env\", \"file\" or \"keyring\""),
                            ))
                        }
                    };
                }
                _ => return Err(self.unknown(line, key, key, ROOT_KEYS)),
            }
        }
        Ok(cfg)
    }

    /// `mode = "remote" | "exec" | ""` (empty: decide at attach time).
    fn attach_mode(&self, item: &Item, key: &str, line: usize) -> R<Option<AttachMode>> {
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

    /// `secrets`: `[SCOPE.secrets.env.NAME]` / `[SCOPE.secrets.file.NAME]`, each with exactly
    /// one of `from_env` / `from_file` (the Go jailoc's schema).
    fn secrets(&self, item: &Item, full: &str, line: usize) -> R<Vec<SecretEntry>> {
        let t = self.table(item, full, line)?;
        let mut out: Vec<SecretEntry> = Vec::new();
        for (kind, sub) in t.iter() {
            let l = self.key_line(t, kind);
            let kf = format!("{full}.{kind}");
            let dest = match kind {
                "env" => SecretDest::Env,
                "file" => SecretDest::File,
                _ if sub.is_str() => {
                    let v = sub.as_str().unwrap_or_default();
                    return Err(self.err(
                        l,
                        &kf,
                        format!(
                            "{kind} = {v:?} is not a secret declaration: write [{full}.env.{kind}] with from_file = {v:?} (the agent gets ${kind}), or [{full}.file.{kind}] for /run/secrets/{kind} only"
                        ),
                    ));
                }
                _ => return Err(self.unknown(l, &kf, kind, SECRET_KINDS)),
            };
            let st = self.table(sub, &kf, l)?;
            for (name, entry) in st.iter() {
                let nl = self.key_line(st, name);
                let key = format!("{kf}.{name}");
                match dest {
                    SecretDest::Env => validate::secret_env_name(name),
                    SecretDest::File => validate::secret_file_name(name),
                }
                .map_err(|m| self.err(nl, &key, m))?;
                let et = self.table(entry, &key, nl)?;
                let mut from_env = None;
                let mut from_file = None;
                for (field, v) in et.iter() {
                    let fl = self.key_line(et, field);
                    let ff = format!("{key}.{field}");
                    match field {
                        "from_env" => {
                            let var = self.string(v, &ff, fl)?;
                            validate::host_var(&var).map_err(|m| self.err(fl, &ff, m))?;
                            from_env = Some((var, fl));
                        }
                        "from_file" => {
                            let raw = self.string(v, &ff, fl)?;
                            // The last component is kept as written: `up` refuses a symlink
                            // there instead of following it.
                            let path = paths::resolve_parent(&raw, &self.home)
                                .map_err(|m| self.err(fl, &ff, m))?;
                            let _ = self.defer(
                                paths::check_secret_source(&raw, &path, &self.dirs),
                                fl,
                                &ff,
                            );
                            from_file = Some(HostPath {
                                raw,
                                line: fl,
                                path,
                            });
                        }
                        _ => return Err(self.unknown(fl, &ff, field, SECRET_SOURCES)),
                    }
                }
                let source = match (from_env, from_file) {
                    (Some((var, _)), None) => SecretSource::HostEnv(var),
                    (None, Some(hp)) => SecretSource::HostFile(hp),
                    (None, None) => {
                        return Err(self.err(
                            nl,
                            &key,
                            format!("secret {name:?} needs exactly one of from_env = \"HOSTVAR\" or from_file = \"/path\""),
                        ))
                    }
                    (Some((_, fl)), Some(_)) => {
                        return Err(self.err(
                            fl,
                            &key,
                            format!("secret {name:?}: from_env and from_file are mutually exclusive: keep one"),
                        ))
                    }
                };
                if let Some(other) = out.iter().find(|e| e.name == name) {
                    return Err(self.err(
                        nl,
                        &key,
                        format!(
                            "secret {name:?} is declared in both secrets.env and secrets.file of this table (line {}): only one per scope",
                            other.line
                        ),
                    ));
                }
                out.push(SecretEntry {
                    name: name.to_string(),
                    dest,
                    source,
                    key,
                    line: nl,
                });
            }
        }
        Ok(out)
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
                        paths::check_not_container_dir(&hp.raw, &hp.path)
                            .map_err(|m| self.err(e.line, &full, m))?;
                        // A denied path is left out (nothing mounts or trusts it as
                        // writable) and refused by `up`.
                        if self.defer(
                            paths::check_host_path(&hp.raw, &hp.path, &self.dirs),
                            e.line,
                            &full,
                        ) {
                            v.push(hp);
                        } else {
                            s.refused_paths.push(hp);
                        }
                    }
                    s.paths = Some(v);
                }
                "mounts" => {
                    let mut v = Vec::new();
                    for e in self.strings(item, &full, line)? {
                        v.extend(self.mount(&e.value, &full, e.line)?);
                    }
                    s.mounts = Some(v);
                }
                "allowed_hosts" => {
                    let v = self.strings(item, &full, line)?;
                    let v = validate::entries(v, jailoc_policy::parse_host);
                    s.allowed_hosts = Some(v.map_err(|(l, m)| self.err(l, &full, m))?);
                }
                "allowed_networks" => {
                    let v = self.strings(item, &full, line)?;
                    let v = validate::entries(v, jailoc_policy::parse_network);
                    s.allowed_networks = Some(v.map_err(|(l, m)| self.err(l, &full, m))?);
                }
                // For image, dockerfile and build_context, "" means unset (the Go jailoc's
                // commented template has `image = ""` etc.).
                "image" => {
                    let v = self.string(item, &full, line)?;
                    if v.is_empty() {
                        continue;
                    }
                    if v.trim().is_empty() || v.contains(char::is_whitespace) {
                        return Err(self.err(line, &full, format!("invalid image {v:?}")));
                    }
                    s.image = Some(Spanned { value: v, line });
                }
                "dockerfile" => {
                    let v = self.string(item, &full, line)?;
                    if !v.is_empty() {
                        s.dockerfile = Some(self.dockerfile(&v, &full, line)?);
                    }
                }
                "build_context" => {
                    let v = self.string(item, &full, line)?;
                    if !v.is_empty() {
                        s.build_context = Some(self.host_path(&v, &full, line, true)?);
                    }
                }
                "env" => {
                    let mut v: Vec<(String, Spanned<String>)> = Vec::new();
                    let mut push = |k: &str, value: String, l: usize, kf: &str| -> R<()> {
                        validate::env_name(k).map_err(|m| self.err(l, kf, m))?;
                        if value.contains('\0') {
                            return Err(self.err(l, kf, "value contains a NUL byte"));
                        }
                        v.retain(|(old, _)| old != k);
                        v.push((k.to_string(), Spanned { value, line: l }));
                        Ok(())
                    };
                    if item.is_array() {
                        // The Go jailoc's form: ["KEY=VALUE", ...].
                        for e in self.strings(item, &full, line)? {
                            let Some((k, val)) = e.value.split_once('=') else {
                                return Err(self.err(
                                    e.line,
                                    &full,
                                    format!("invalid env entry {:?}: use KEY=VALUE", e.value),
                                ));
                            };
                            push(k, val.to_string(), e.line, &format!("{full}.{k}"))?;
                        }
                    } else {
                        // Our table form: { KEY = "VALUE" }.
                        let et = item.as_table_like().ok_or_else(|| {
                            self.type_err(
                                item,
                                &full,
                                line,
                                "an array of \"KEY=VALUE\" strings or a table",
                            )
                        })?;
                        for (k, val) in et.iter() {
                            let l = self.key_line(et, k);
                            let kf = format!("{full}.{k}");
                            let value = self.string(val, &kf, l)?;
                            push(k, value, l, &kf)?;
                        }
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
                "secrets" => s.secrets = Some(self.secrets(item, &full, line)?),
                "mode" => s.mode = self.attach_mode(item, &full, line)?,
                "egress" => {
                    let v = self.string(item, &full, line)?;
                    s.egress = Some(Egress::parse(&v).ok_or_else(|| {
                        let m = format!("invalid egress {v:?}: use \"open\" or \"allowlist\"");
                        self.err(line, &full, m)
                    })?);
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
        s.refused = self.deferred.borrow_mut().drain(..).collect();
        // A `build_context` without a `dockerfile` in its table is accepted and has no effect,
        // as in the Go jailoc (its own TestLoadFullConfig has one): nothing is built from it, so
        // it is never read either.
        Ok(s)
    }

    /// A `mounts` entry; `None` when the deny-list refuses its host side (kept for `up`, which
    /// refuses it: [`Section::refused`]).
    fn mount(&self, raw: &str, key: &str, line: usize) -> R<Option<MountEntry>> {
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
        let container = paths::check_mount_target(target, &self.home)
            .map_err(|m| self.err(line, key, format!("invalid mount {raw:?}: {m}")))?;
        let host = if host.is_empty() {
            None
        } else {
            let p = paths::resolve(host, &self.home, None)
                .map_err(|m| self.err(line, key, format!("invalid mount {raw:?}: {m}")))?;
            if !self.defer(
                paths::check_host_path(host, &p, &self.dirs)
                    .map_err(|m| format!("invalid mount {raw:?}: {m}")),
                line,
                key,
            ) {
                return Ok(None);
            }
            Some(p)
        };
        Ok(Some(MountEntry {
            raw: raw.to_string(),
            line,
            host,
            container,
            read_only,
        }))
    }

    /// A Dockerfile: `http://` / `https://` with a host is a URL (fetched at `up`); another
    /// `scheme://` is refused; anything else is a path.
    fn dockerfile(&self, raw: &str, key: &str, line: usize) -> R<DockerfileRef> {
        let lower = raw.to_ascii_lowercase();
        if let Some(rest) = lower
            .strip_prefix("http://")
            .or_else(|| lower.strip_prefix("https://"))
        {
            let host = rest.split(['/', '?', '#']).next().unwrap_or("");
            if host.is_empty() || raw.contains(char::is_whitespace) {
                return Err(self.err(
                    line,
                    key,
                    format!("invalid URL {raw:?}: an http(s) URL needs a host, e.g. https://example.com/Dockerfile"),
                ));
            }
            return Ok(DockerfileRef::Url(Spanned {
                value: raw.to_string(),
                line,
            }));
        }
        if let Some((scheme, _)) = raw.split_once("://") {
            if !scheme.is_empty()
                && scheme
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+.-".contains(&b))
            {
                return Err(self.err(
                    line,
                    key,
                    format!("invalid dockerfile {raw:?}: use a path (absolute, ~/ or relative to the config file) or an http(s) URL, not {scheme}://"),
                ));
            }
        }
        Ok(DockerfileRef::Path(self.host_path(raw, key, line, true)?))
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

    #[test]
    fn dockerfile_urls_and_paths() {
        let c = parse(
            "[base]\ndockerfile = \"https://example.com/Dockerfiles/custom\"\n[workspaces.a]\ndockerfile = \"~/a.Dockerfile\"\n[workspaces.b]\ndockerfile = \"HTTP://Example.com:8080/x?y=1\"\n",
        )
        .expect("parse");
        assert_eq!(
            c.base_dockerfile,
            Some(DockerfileRef::Url(Spanned {
                value: "https://example.com/Dockerfiles/custom".into(),
                line: 2
            }))
        );
        assert!(matches!(
            &c.workspaces["a"].dockerfile,
            Some(DockerfileRef::Path(hp)) if hp.path == Path::new("/nonexistent-home/u/a.Dockerfile")
        ));
        assert!(matches!(
            &c.workspaces["b"].dockerfile,
            Some(DockerfileRef::Url(_))
        ));
        for (bad, why) in [
            ("http:///path", "an http(s) URL needs a host"),
            ("https://", "an http(s) URL needs a host"),
            ("ftp://example.com/Dockerfile", "not ftp://"),
            ("file:///etc/Dockerfile", "not file://"),
        ] {
            let e = parse(&format!("[base]\ndockerfile = \"{bad}\"\n")).expect_err(bad);
            assert_eq!(e.line, 2);
            assert_eq!(e.key, "base.dockerfile");
            assert!(e.message.contains(why), "{bad}: {e}");
        }
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
