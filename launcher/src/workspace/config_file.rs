//! The config file a command reads: `--config`, else the default location, where the first
//! use creates it with commented defaults. Loading it also fills in what the context keeps from
//! it for every later step (the variables no child process inherits, the paths a container can
//! write).

use std::path::{Path, PathBuf};

use super::password::PASSWORD_VAR;
use crate::config::{self, Config};
use crate::context::Context;
use crate::error::{Error, Result};
use crate::fsutil;

/// The config file: `--config`, else `$XDG_CONFIG_HOME/jailoc/config.toml`.
pub(super) fn config_path(ctx: &Context, explicit: Option<&Path>) -> PathBuf {
    match explicit {
        Some(p) if p.is_absolute() => p.to_path_buf(),
        Some(p) => ctx.cwd.join(p),
        None => ctx.config_dir().join("config.toml"),
    }
}

/// Loads the config, creating it with commented defaults on first use (only at the default
/// location: a missing `--config` file is an error, not something to create).
pub fn load_config(ctx: &mut Context, explicit: Option<&Path>) -> Result<Config> {
    let path = config_path(ctx, explicit);
    if explicit.is_none() && !path.exists() {
        fsutil::write_atomic(&path, config::defaults::DEFAULT_CONFIG.as_bytes(), 0o600)
            .map_err(|e| Error::file("create", &path, e))?;
        ctx.warn(&format!(
            "created {} with commented defaults",
            path.display()
        ));
    }
    let cfg = config::load_file(&path, &ctx.dirs())?;
    // No process jailoc starts (compose, builds, attach) inherits a `from_env` secret's host
    // variable: its value reaches the container only as a file under /run/secrets.
    ctx.hidden_env = cfg.secret_source_vars();
    // The password reaches the container through its 0600 env file only.
    ctx.hidden_env.push(PASSWORD_VAR.to_string());
    // No program jailoc starts may come from a directory a container can write.
    ctx.writable = config::merge::writable_paths(&cfg);
    Ok(cfg)
}
