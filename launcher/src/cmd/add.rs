//! `jailoc add [PATH]`: add a directory to a workspace, editing config.toml in place with
//! toml_edit so the user's comments and layout survive.

use std::path::Path;

use toml_edit::{Array, DocumentMut, Item, Table, Value};

use crate::cli::Cli;
use crate::config::{self, paths, schema::DEFAULT_WORKSPACE, ConfigError};
use crate::context::Context;
use crate::error::{Error, Result};
use crate::fsutil;
use crate::workspace;

/// Runs `jailoc add`.
pub fn run(ctx: &mut Context, cli: &Cli, path: Option<&Path>) -> Result<()> {
    let cfg = workspace::load_config(ctx, cli.config.as_deref())?;
    let name = cli
        .workspace
        .clone()
        .unwrap_or_else(|| DEFAULT_WORKSPACE.to_string());
    let raw = match path {
        Some(p) if p.is_absolute() || p.starts_with("~") => p.to_string_lossy().into_owned(),
        Some(p) => ctx.cwd.join(p).to_string_lossy().into_owned(),
        None => ctx.cwd.to_string_lossy().into_owned(),
    };
    add(ctx, &cfg.file, &name, &raw)
}

/// Adds `raw` (resolved) to workspace `name` in `file`.
pub fn add(ctx: &mut Context, file: &Path, name: &str, raw: &str) -> Result<()> {
    let dirs = ctx.dirs();
    let home = dirs.home.clone();
    let bad = |m: String| {
        Error::Config(ConfigError {
            file: file.to_path_buf(),
            line: 0,
            key: format!("workspaces.{name}.paths"),
            message: m,
        })
    };
    config::validate::workspace_name(name).map_err(bad)?;
    let resolved = paths::resolve(raw, &home, None).map_err(bad)?;
    paths::check_workspace_path(raw, &resolved, &dirs).map_err(bad)?;
    if !resolved.is_dir() {
        return Err(bad(format!("path {raw:?} is not a directory")));
    }
    let text = std::fs::read_to_string(file).map_err(|e| Error::file("read", file, e))?;
    let new = add_to_text(&text, name, &resolved.to_string_lossy()).map_err(bad)?;
    let Some(new) = new else {
        ctx.say(&format!(
            "{} is already in workspace {name:?}",
            resolved.display()
        ));
        return Ok(());
    };
    // Never write a config that would not load.
    config::parse_with(&new, file, &dirs)?;
    let mode = fsutil::mode_of(file).unwrap_or(0o600);
    fsutil::write_atomic(file, new.as_bytes(), mode).map_err(|e| Error::file("write", file, e))?;
    ctx.say(&format!(
        "added {} to workspace {name:?} in {}",
        resolved.display(),
        file.display()
    ));
    Ok(())
}

/// The edited document text, or `None` if the path is already there.
pub fn add_to_text(
    text: &str,
    name: &str,
    path: &str,
) -> std::result::Result<Option<String>, String> {
    let mut doc: DocumentMut = text
        .parse()
        .map_err(|e: toml_edit::TomlError| format!("invalid TOML: {}", e.message()))?;
    // Comments at the end of the file stay above a table we append, not below it.
    let trailing = doc.trailing().as_str().unwrap_or("").to_string();
    let needs_table = doc
        .get("workspaces")
        .and_then(Item::as_table_like)
        .is_none_or(|w| !w.contains_key(name));
    if needs_table && !trailing.trim().is_empty() {
        doc.set_trailing("");
    }
    let root = doc.as_table_mut();
    if !root.contains_key("workspaces") {
        let mut t = Table::new();
        t.set_implicit(true);
        root.insert("workspaces", Item::Table(t));
    }
    let wss = root
        .get_mut("workspaces")
        .and_then(Item::as_table_like_mut)
        .ok_or("`workspaces` is not a table")?;
    if !wss.contains_key(name) {
        let mut t = Table::new();
        if !trailing.trim().is_empty() {
            let sep = if trailing.ends_with("\n\n") { "" } else { "\n" };
            t.decor_mut().set_prefix(format!("{trailing}{sep}"));
        }
        wss.insert(name, Item::Table(t));
    }
    let ws = wss
        .get_mut(name)
        .and_then(Item::as_table_like_mut)
        .ok_or_else(|| format!("`workspaces.{name}` is not a table"))?;
    if !ws.contains_key("paths") {
        ws.insert("paths", Item::Value(Value::Array(Array::new())));
    }
    let arr = ws
        .get_mut("paths")
        .and_then(Item::as_array_mut)
        .ok_or_else(|| format!("`workspaces.{name}.paths` is not an array"))?;
    if arr.iter().any(|v| v.as_str() == Some(path)) {
        return Ok(None);
    }
    arr.push(path);
    Ok(Some(doc.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_comments_and_layout() {
        let text = "# my config\n[defaults]\nmemory = \"2g\" # plenty\n\n[workspaces.web]\n# the app\npaths = [\"/srv/a\"]\n";
        let out = add_to_text(text, "web", "/srv/b")
            .expect("ok")
            .expect("changed");
        assert_eq!(
            out,
            "# my config\n[defaults]\nmemory = \"2g\" # plenty\n\n[workspaces.web]\n# the app\npaths = [\"/srv/a\", \"/srv/b\"]\n"
        );
        assert_eq!(add_to_text(&out, "web", "/srv/b"), Ok(None));
        let out = add_to_text("# only a comment\n", "default", "/srv/c")
            .expect("ok")
            .expect("changed");
        assert_eq!(
            out,
            "# only a comment\n\n[workspaces.default]\npaths = [\"/srv/c\"]\n"
        );
    }
}
