//! `jailoc status [--json]`: every workspace's state from one engine query.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::cli::Cli;
use crate::compose::SERVICE;
use crate::config::inspect_workspace;
use crate::context::Context;
use crate::engine::{container_cli, parse_ps, ps_cmd, run_checked, ContainerInfo};
use crate::error::Result;
use crate::image;
use crate::process::Mode;
use crate::workspace;

/// One row of `status`.
#[derive(Debug, Serialize, PartialEq)]
pub struct Row {
    /// The workspace's name.
    pub name: String,
    /// `running`, `exited`, ... or `stopped` when no container exists.
    pub state: String,
    /// `healthy`, `unhealthy`, `starting` or empty.
    pub health: String,
    /// The published port, if `expose_port`.
    pub port: Option<u16>,
    pub url: Option<String>,
    pub egress: String,
    pub image: String,
    pub paths: Vec<String>,
}

/// Runs `jailoc status`.
pub fn run(ctx: &mut Context, cli: &Cli, json: bool) -> Result<()> {
    let cfg = workspace::load_config(ctx, cli.config.as_deref())?;
    let cmd = ps_cmd(&container_cli(ctx), None);
    let out = run_checked(ctx, &cmd, Mode::Capture, "query the container engine")?;
    let containers: BTreeMap<String, ContainerInfo> = parse_ps(&out.stdout)
        .into_iter()
        .filter(|c| c.service == SERVICE)
        .map(|c| (c.workspace.clone(), c))
        .collect();
    let mut rows = Vec::new();
    for name in cfg.workspace_names() {
        let ws = inspect_workspace(&cfg, &name)?;
        let c = containers.get(&name);
        rows.push(Row {
            name: name.clone(),
            state: c
                .map(|c| c.state.clone())
                .unwrap_or_else(|| "stopped".into()),
            health: c.map(|c| c.health.clone()).unwrap_or_default(),
            port: ws.expose_port.then_some(ws.port),
            url: super::url(&ws),
            egress: ws.egress.as_str().into(),
            image: c
                .map(|c| c.image.clone())
                .filter(|i| !i.is_empty())
                .unwrap_or_else(|| image::describe(&ws.image)),
            paths: ws
                .paths
                .iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect(),
        });
    }
    if json {
        let text = serde_json::to_string_pretty(&rows)
            .map_err(|e| crate::error::Error::Other(format!("failed to encode JSON: {e}")))?;
        ctx.say(&text);
        return Ok(());
    }
    let table = render_table(&rows);
    ctx.say(table.trim_end());
    Ok(())
}

/// The human table (aligned columns).
pub fn render_table(rows: &[Row]) -> String {
    let mut cells = vec![[
        "WORKSPACE".to_string(),
        "STATE".into(),
        "PORT".into(),
        "EGRESS".into(),
        "IMAGE".into(),
    ]];
    for r in rows {
        let state = if r.health.is_empty() {
            r.state.clone()
        } else {
            format!("{} ({})", r.state, r.health)
        };
        cells.push([
            r.name.clone(),
            state,
            r.port.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
            r.egress.clone(),
            r.image.clone(),
        ]);
    }
    let mut widths = [0usize; 5];
    for row in &cells {
        for (i, c) in row.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let mut s = String::new();
    for row in &cells {
        let mut line = String::new();
        for (i, c) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(c);
            } else {
                line.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        s.push_str(line.trim_end());
        s.push('\n');
    }
    s
}
