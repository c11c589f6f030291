//! `[defaults]` and `[workspaces.NAME]`: the keys a section may hold ([`SECTION_KEYS`]), one
//! reader each, and the one rule across keys (`image` excludes `dockerfile` and
//! `build_context`).

use toml_edit::{Item, TableLike, Value};

use super::{Parser, Result};
use crate::config::schema::{DockerfileRef, Egress, HostPath, MountEntry, Section, SECTION_KEYS};
use crate::config::{paths, validate, Spanned};

/// One `env` entry: the variable's name, its value and line.
type EnvEntry = (String, Spanned<String>);

impl Parser<'_> {
    /// The section `table` whose dotted name is `prefix` (`defaults`, `workspaces.NAME`).
    pub(super) fn section(&self, table: &dyn TableLike, prefix: &str) -> Result<Section> {
        let mut s = Section::default();
        for (key, item) in table.iter() {
            let full = format!("{prefix}.{key}");
            let line = self.key_line(table, key);
            match key {
                "paths" => {
                    let (kept, refused) = self.workspace_paths(item, &full, line)?;
                    s.paths = Some(kept);
                    s.refused_paths.extend(refused);
                }
                "mounts" => s.mounts = Some(self.mounts(item, &full, line)?),
                "allowed_hosts" => {
                    let entries = self.strings(item, &full, line)?;
                    let hosts = validate::entries(entries, jailoc_policy::parse_host);
                    s.allowed_hosts = Some(hosts.map_err(|(l, m)| self.err(l, &full, m))?);
                }
                "allowed_networks" => {
                    let entries = self.strings(item, &full, line)?;
                    let networks = validate::entries(entries, jailoc_policy::parse_network);
                    s.allowed_networks = Some(networks.map_err(|(l, m)| self.err(l, &full, m))?);
                }
                // For image, dockerfile and build_context, "" means unset (the Go jailoc's
                // commented template has `image = ""` etc.).
                "image" => s.image = self.image(item, &full, line)?,
                "dockerfile" => s.dockerfile = self.section_dockerfile(item, &full, line)?,
                "build_context" => s.build_context = self.build_context(item, &full, line)?,
                "env" => s.env = Some(self.env(item, &full, line)?),
                "env_file" => s.env_file = Some(self.env_files(item, &full, line)?),
                "ssh_auth_sock" => s.ssh_auth_sock = Some(self.boolean(item, &full, line)?),
                "git_config" => s.git_config = Some(self.boolean(item, &full, line)?),
                "expose_port" => s.expose_port = Some(self.boolean(item, &full, line)?),
                "enable_docker" => s.enable_docker = Some(self.boolean(item, &full, line)?),
                "cpu" => s.cpu = Some(self.cpu(item, &full, line)?),
                "memory" => {
                    let v = self.string(item, &full, line)?;
                    s.memory = Some(validate::memory(&v).map_err(|m| self.err(line, &full, m))?);
                }
                "secrets" => s.secrets = Some(self.secrets(item, &full, line)?),
                "mode" => s.mode = self.attach_mode(item, &full, line)?,
                "egress" => s.egress = Some(self.egress(item, &full, line)?),
                _ => return Err(self.unknown(line, &full, key, SECTION_KEYS)),
            }
        }
        self.check_one_image_source(&s, prefix)?;
        s.refused = self.deferred.borrow_mut().drain(..).collect();
        // A `build_context` without a `dockerfile` in its table is accepted and has no effect,
        // as in the Go jailoc (its own TestLoadFullConfig has one): nothing is built from it, so
        // it is never read either.
        Ok(s)
    }

    /// `image` names a ready-made image, `dockerfile` (with `build_context`) builds one: not
    /// both in one table.
    fn check_one_image_source(&self, s: &Section, prefix: &str) -> Result<()> {
        let Some(img) = &s.image else { return Ok(()) };
        if s.dockerfile.is_none() && s.build_context.is_none() {
            return Ok(());
        }
        let other = if s.dockerfile.is_some() {
            "dockerfile"
        } else {
            "build_context"
        };
        Err(self.err(
            img.line,
            &format!("{prefix}.image"),
            format!(
                "image {:?} cannot be combined with `{other}` in the same table: use `image` for a ready-made image, or `dockerfile` to build one",
                img.value
            ),
        ))
    }

    /// `paths`: the workspace's directories, and apart those the deny-lists refuse (left out,
    /// so nothing mounts or trusts them as writable; refused by `up`).
    fn workspace_paths(
        &self,
        item: &Item,
        key: &str,
        line: usize,
    ) -> Result<(Vec<HostPath>, Vec<HostPath>)> {
        let (mut kept, mut refused) = (Vec::new(), Vec::new());
        for entry in self.strings(item, key, line)? {
            let hp = self.host_path(&entry.value, key, entry.line, false)?;
            paths::check_not_container_dir(&hp.raw, &hp.path)
                .map_err(|m| self.err(entry.line, key, m))?;
            let allowed = paths::check_host_path(&hp.raw, &hp.path, &self.dirs);
            if self.defer(allowed, entry.line, key) {
                kept.push(hp);
            } else {
                refused.push(hp);
            }
        }
        Ok((kept, refused))
    }

    /// `mounts`, less the entries whose host side the deny-lists refuse (kept for `up`).
    fn mounts(&self, item: &Item, key: &str, line: usize) -> Result<Vec<MountEntry>> {
        let mut mounts = Vec::new();
        for entry in self.strings(item, key, line)? {
            mounts.extend(self.mount(&entry.value, key, entry.line)?);
        }
        Ok(mounts)
    }

    /// `image`: a ready-made image's name, without white space.
    fn image(&self, item: &Item, key: &str, line: usize) -> Result<Option<Spanned<String>>> {
        let v = self.string(item, key, line)?;
        if v.is_empty() {
            return Ok(None);
        }
        if v.trim().is_empty() || v.contains(char::is_whitespace) {
            return Err(self.err(line, key, format!("invalid image {v:?}")));
        }
        Ok(Some(Spanned { value: v, line }))
    }

    /// A section's `dockerfile`: the image to build ("" means unset).
    fn section_dockerfile(
        &self,
        item: &Item,
        key: &str,
        line: usize,
    ) -> Result<Option<DockerfileRef>> {
        let v = self.string(item, key, line)?;
        if v.is_empty() {
            return Ok(None);
        }
        self.dockerfile(&v, key, line).map(Some)
    }

    /// `build_context`: the directory the `dockerfile` is built in ("" means unset).
    fn build_context(&self, item: &Item, key: &str, line: usize) -> Result<Option<HostPath>> {
        let v = self.string(item, key, line)?;
        if v.is_empty() {
            return Ok(None);
        }
        self.host_path(&v, key, line, true).map(Some)
    }

    /// `env`, in the Go jailoc's form `["KEY=VALUE", ...]` or as a table `{ KEY = "VALUE" }`;
    /// a name given twice keeps its last value.
    fn env(&self, item: &Item, key: &str, line: usize) -> Result<Vec<EnvEntry>> {
        let mut env: Vec<EnvEntry> = Vec::new();
        let mut push = |name: &str, value: String, value_line: usize, name_key: &str| {
            validate::env_name(name).map_err(|m| self.err(value_line, name_key, m))?;
            if value.contains('\0') {
                return Err(self.err(value_line, name_key, "value contains a NUL byte"));
            }
            env.retain(|(old, _)| old != name);
            env.push((
                name.to_string(),
                Spanned {
                    value,
                    line: value_line,
                },
            ));
            Ok(())
        };
        if item.is_array() {
            for entry in self.strings(item, key, line)? {
                let Some((name, value)) = entry.value.split_once('=') else {
                    return Err(self.err(
                        entry.line,
                        key,
                        format!("invalid env entry {:?}: use KEY=VALUE", entry.value),
                    ));
                };
                push(
                    name,
                    value.to_string(),
                    entry.line,
                    &format!("{key}.{name}"),
                )?;
            }
        } else {
            let table = item.as_table_like().ok_or_else(|| {
                self.type_err(
                    item,
                    key,
                    line,
                    "an array of \"KEY=VALUE\" strings or a table",
                )
            })?;
            for (name, value) in table.iter() {
                let value_line = self.key_line(table, name);
                let name_key = format!("{key}.{name}");
                let value = self.string(value, &name_key, value_line)?;
                push(name, value, value_line, &name_key)?;
            }
        }
        Ok(env)
    }

    /// `env_file`: one path or an array of them, relative to the config file allowed.
    fn env_files(&self, item: &Item, key: &str, line: usize) -> Result<Vec<HostPath>> {
        let list = match item.as_str() {
            Some(one) => vec![Spanned {
                value: one.to_string(),
                line,
            }],
            None => self.strings(item, key, line)?,
        };
        list.into_iter()
            .map(|entry| self.host_path(&entry.value, key, entry.line, true))
            .collect()
    }

    /// `cpu`: a number of CPUs, integer or float.
    fn cpu(&self, item: &Item, key: &str, line: usize) -> Result<f64> {
        let n = match item.as_value() {
            Some(Value::Float(f)) => *f.value(),
            Some(Value::Integer(i)) => *i.value() as f64,
            _ => return Err(self.type_err(item, key, line, "a number like 2.0")),
        };
        validate::cpu(n).map_err(|m| self.err(line, key, m))
    }

    /// `egress = "open" | "allowlist"`.
    fn egress(&self, item: &Item, key: &str, line: usize) -> Result<Egress> {
        let v = self.string(item, key, line)?;
        Egress::parse(&v).ok_or_else(|| {
            let m = format!("invalid egress {v:?}: use \"open\" or \"allowlist\"");
            self.err(line, key, m)
        })
    }
}
