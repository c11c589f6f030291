//! The expansion of a workspace's `env` values from the host's environment at `up`.

use crate::config::Workspace;
use crate::context::Context;
use crate::error::{Error, Result};

/// `ws` with its `env` and env-file values expanded from the host's environment
/// ([`interpolate`](crate::interpolate)), as the Go jailoc's compose does at `up`; a warning for
/// each variable that is not set (it expands to nothing). Errors name the config file, line and
/// key (or the env file) and the value.
pub(super) fn expand_env(ctx: &mut Context, ws: &Workspace) -> Result<Workspace> {
    let mut out = ws.clone();
    let lookup = |name: &str| ctx.env.get(name).cloned();
    let mut warnings = Vec::new();
    for (k, v) in out.env.iter_mut() {
        let place = match (ws.env_from_file.get(k), ws.env_lines.get(k)) {
            (Some(file), _) => (file.clone(), 0, format!("env_file: {k}")),
            (None, Some((key, line))) => (ws.config_file.clone(), *line, format!("{key}.{k}")),
            (None, None) => (ws.config_file.clone(), 0, format!("env.{k}")),
        };
        let e = crate::interpolate::expand(v, &lookup).map_err(|m| {
            Error::Config(crate::config::ConfigError {
                file: place.0.clone(),
                line: place.1,
                key: place.2.clone(),
                message: format!("failed to expand {v:?}: {m}"),
            })
        })?;
        for name in &e.unset {
            warnings.push(format!(
                "warning: {}: ${name} is not set in your environment: it is empty in the container (write $$ for a literal $)",
                place.2
            ));
        }
        *v = e.value;
    }
    for w in warnings {
        ctx.warn(&w);
    }
    Ok(out)
}
