//! `jailoc config`: the resolved view of the selected workspace, as TOML. Secrets and env-file
//! values appear by reference (their file), never by value; the password never appears.

use crate::cli::Cli;
use crate::config::schema::{SecretDest, SecretSource};
use crate::config::Workspace;
use crate::context::Context;
use crate::error::Result;
use crate::image;
use crate::policy::toml_str;
use crate::workspace;

/// Runs `jailoc config`.
pub fn run(ctx: &mut Context, cli: &Cli) -> Result<()> {
    let (cfg, ws) = super::load(ctx, cli, crate::config::Use::Inspect)?;
    let files = workspace::files(ctx, &ws.name);
    let text = render(&ws, &cfg.file, &files);
    ctx.say(text.trim_end());
    Ok(())
}

fn list<I: IntoIterator<Item = String>>(items: I) -> String {
    let v: Vec<String> = items.into_iter().map(|s| toml_str(&s)).collect();
    format!("[{}]", v.join(", "))
}

/// Renders the resolved view.
pub fn render(ws: &Workspace, file: &std::path::Path, files: &workspace::Files) -> String {
    let mut s = String::new();
    let mut kv = |k: &str, v: String| s.push_str(&format!("{k} = {v}\n"));
    kv("config_file", toml_str(&file.to_string_lossy()));
    kv("workspace", toml_str(&ws.name));
    kv(
        "port",
        if ws.expose_port {
            ws.port.to_string()
        } else {
            "\"not published\"".into()
        },
    );
    kv("egress", toml_str(ws.egress.as_str()));
    kv("mode", toml_str(ws.mode.map(|m| m.as_str()).unwrap_or("")));
    kv("image", toml_str(&image::describe(&ws.image)));
    kv(
        "paths",
        list(ws.paths.iter().map(|p| p.to_string_lossy().into_owned())),
    );
    kv(
        "allowed_hosts",
        list(ws.allowed_hosts.iter().map(ToString::to_string)),
    );
    kv(
        "allowed_networks",
        list(ws.allowed_networks.iter().map(ToString::to_string)),
    );
    kv(
        "mounts",
        list(ws.mounts.iter().map(|m| match &m.host {
            Some(h) => format!(
                "{}:{}:{}",
                h.display(),
                m.container,
                if m.read_only { "ro" } else { "rw" }
            ),
            None => format!(":{} (removed)", m.container),
        })),
    );
    kv("cpu", format!("{:?}", ws.cpu));
    kv("memory", toml_str(&ws.memory));
    kv("git_config", ws.git_config.to_string());
    kv("ssh_auth_sock", ws.ssh_auth_sock.to_string());
    kv("expose_port", ws.expose_port.to_string());
    kv("enable_docker", ws.enable_docker.to_string());
    kv("policy_dir", toml_str(&files.policy_dir.to_string_lossy()));
    kv(
        "compose_file",
        toml_str(&files.compose_file.to_string_lossy()),
    );
    kv("password_mode", toml_str(ws.password_mode.as_str()));
    kv(
        "server_password",
        toml_str(&format!("(stored in {})", files.password_file.display())),
    );
    for e in &ws.refused {
        s.push_str(&format!("# refused, `jailoc up` fails: {e}\n"));
    }
    s.push_str("\n[env]\n");
    for (file, why) in &ws.env_files_unread {
        s.push_str(&format!("# env file {} not read: {why}\n", file.display()));
    }
    for (k, v) in &ws.env {
        match ws.env_from_file.get(k) {
            Some(f) => s.push_str(&format!(
                "{k} = {}\n",
                toml_str(&format!("(from {})", f.display()))
            )),
            None => s.push_str(&format!("{k} = {}\n", toml_str(v))),
        }
    }
    // Secrets by reference (their source), never by value, grouped like the config file.
    for dest in [SecretDest::Env, SecretDest::File] {
        let of_kind: Vec<_> = ws.secrets.values().filter(|e| e.dest == dest).collect();
        if of_kind.is_empty() {
            continue;
        }
        s.push_str(&format!("\n[secrets.{}]\n", dest.as_str()));
        for e in of_kind {
            let source = match &e.source {
                SecretSource::HostEnv(var) => format!("(from_env {var})"),
                SecretSource::HostFile(hp) => format!("(from_file {})", hp.path.display()),
            };
            s.push_str(&format!("{} = {}\n", e.name, toml_str(&source)));
        }
    }
    s
}
