//! A table's `secrets`: `[SCOPE.secrets.env.NAME]` / `[SCOPE.secrets.file.NAME]`, each with
//! exactly one of `from_env` / `from_file` (the Go jailoc's schema).

use toml_edit::{Item, TableLike};

use super::{Parser, Result};
use crate::config::paths;
use crate::config::schema::{
    HostPath, SecretDest, SecretEntry, SecretSource, SECRET_KINDS, SECRET_SOURCES,
};
use crate::config::validate;

impl Parser<'_> {
    /// `secrets` at `key`: every secret of both kinds, a name declared once per table.
    pub(super) fn secrets(&self, item: &Item, key: &str, line: usize) -> Result<Vec<SecretEntry>> {
        let kinds = self.table(item, key, line)?;
        let mut out: Vec<SecretEntry> = Vec::new();
        for (kind, kind_item) in kinds.iter() {
            let kind_line = self.key_line(kinds, kind);
            let kind_key = format!("{key}.{kind}");
            let dest = match kind {
                "env" => SecretDest::Env,
                "file" => SecretDest::File,
                _ if kind_item.is_str() => {
                    let v = kind_item.as_str().unwrap_or_default();
                    return Err(self.err(
                        kind_line,
                        &kind_key,
                        format!(
                            "{kind} = {v:?} is not a secret declaration: write [{key}.env.{kind}] with from_file = {v:?} (the agent gets ${kind}), or [{key}.file.{kind}] for /run/secrets/{kind} only"
                        ),
                    ));
                }
                _ => return Err(self.unknown(kind_line, &kind_key, kind, SECRET_KINDS)),
            };
            let by_name = self.table(kind_item, &kind_key, kind_line)?;
            for (name, entry) in by_name.iter() {
                let name_line = self.key_line(by_name, name);
                let secret_key = format!("{kind_key}.{name}");
                let secret = self.secret(name, dest, entry, &secret_key, name_line)?;
                if let Some(other) = out.iter().find(|e| e.name == name) {
                    return Err(self.err(
                        name_line,
                        &secret_key,
                        format!(
                            "secret {name:?} is declared in both secrets.env and secrets.file of this table (line {}): only one per scope",
                            other.line
                        ),
                    ));
                }
                out.push(secret);
            }
        }
        Ok(out)
    }

    /// One secret `name` of kind `dest`, declared at `key` (its table is `entry`).
    fn secret(
        &self,
        name: &str,
        dest: SecretDest,
        entry: &Item,
        key: &str,
        line: usize,
    ) -> Result<SecretEntry> {
        match dest {
            SecretDest::Env => validate::secret_env_name(name),
            SecretDest::File => validate::secret_file_name(name),
        }
        .map_err(|m| self.err(line, key, m))?;
        let fields = self.table(entry, key, line)?;
        let source = self.secret_source(name, fields, key, line)?;
        Ok(SecretEntry {
            name: name.to_string(),
            dest,
            source,
            key: key.to_string(),
            line,
        })
    }

    /// Where secret `name` (at `key`, `line`) comes from: exactly one of its `fields`
    /// `from_env` and `from_file`.
    fn secret_source(
        &self,
        name: &str,
        fields: &dyn TableLike,
        key: &str,
        line: usize,
    ) -> Result<SecretSource> {
        let mut from_env = None;
        let mut from_file = None;
        for (field, value) in fields.iter() {
            let field_line = self.key_line(fields, field);
            let field_key = format!("{key}.{field}");
            match field {
                "from_env" => {
                    let var = self.string(value, &field_key, field_line)?;
                    validate::host_var(&var).map_err(|m| self.err(field_line, &field_key, m))?;
                    from_env = Some((var, field_line));
                }
                "from_file" => {
                    let raw = self.string(value, &field_key, field_line)?;
                    // The last component is kept as written: `up` refuses a symlink there
                    // instead of following it.
                    let path = paths::resolve_parent(&raw, &self.dirs.home)
                        .map_err(|m| self.err(field_line, &field_key, m))?;
                    let _ = self.defer(
                        paths::check_secret_source(&raw, &path, &self.dirs),
                        field_line,
                        &field_key,
                    );
                    from_file = Some(HostPath {
                        raw,
                        line: field_line,
                        path,
                    });
                }
                _ => {
                    return Err(self.unknown(field_line, &field_key, field, SECRET_SOURCES));
                }
            }
        }
        match (from_env, from_file) {
            (Some((var, _)), None) => Ok(SecretSource::HostEnv(var)),
            (None, Some(host_path)) => Ok(SecretSource::HostFile(host_path)),
            (None, None) => Err(self.err(
                line,
                key,
                format!("secret {name:?} needs exactly one of from_env = \"HOSTVAR\" or from_file = \"/path\""),
            )),
            (Some((_, from_env_line)), Some(_)) => Err(self.err(
                from_env_line,
                key,
                format!("secret {name:?}: from_env and from_file are mutually exclusive: keep one"),
            )),
        }
    }
}
