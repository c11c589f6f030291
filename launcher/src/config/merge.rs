//! Merges `[defaults]` into one workspace, the Go jailoc's way: env is defaults → env files →
//! workspace (last wins); hosts and networks are an order-preserving union; mounts are keyed by
//! container path (an empty host side removes one); scalars inherit, then fall back.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::schema::{Config, Egress, HostPath, Section, DEFAULT_WORKSPACE};
use super::validate;
use super::ConfigError;

/// Fallback CPU count.
pub const DEFAULT_CPU: f64 = 2.0;
/// Fallback memory limit.
pub const DEFAULT_MEMORY: &str = "4g";

/// A bind mount into the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// `None` removes a built-in mount at `container` (an entry with an empty host side).
    pub host: Option<PathBuf>,
    pub container: String,
    pub read_only: bool,
}

/// Where the image comes from (see `image.rs` for building it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BaseImage {
    /// A ready-made image reference.
    Ready(String),
    /// `[base] dockerfile`.
    Dockerfile(PathBuf),
    /// The default Dockerfile embedded in the binary.
    Embedded,
}

/// A Dockerfile built on top of the base (`FROM ${BASE_IMAGE}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overlay {
    pub dockerfile: PathBuf,
    pub context: PathBuf,
}

/// The image cascade's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImagePlan {
    pub base: BaseImage,
    pub overlay: Option<Overlay>,
}

/// One workspace with every default applied: what the renderers consume.
#[derive(Debug, Clone, PartialEq)]
pub struct Workspace {
    pub name: String,
    /// Host port (`4096 + sorted index`), published on 127.0.0.1 only.
    pub port: u16,
    pub paths: Vec<PathBuf>,
    pub mounts: Vec<Mount>,
    pub allowed_hosts: Vec<String>,
    pub allowed_networks: Vec<String>,
    pub image: ImagePlan,
    /// Final environment (sorted by name).
    pub env: BTreeMap<String, String>,
    /// Variables whose final value came from an env file (shown by reference in `config`).
    pub env_from_file: BTreeMap<String, PathBuf>,
    /// Secrets: name → host file, mounted read-only at `/run/secrets/NAME`.
    pub secrets: BTreeMap<String, PathBuf>,
    pub ssh_auth_sock: bool,
    pub git_config: bool,
    pub expose_port: bool,
    pub enable_docker: bool,
    pub cpu: f64,
    pub memory: String,
    pub egress: Egress,
    /// True when the workspace is not in the config file (only the implicit `default`).
    pub implicit: bool,
}

/// Resolves workspace `name` of `cfg`. Reads the env files (their errors name file and line).
pub fn resolve_workspace(cfg: &Config, name: &str) -> Result<Workspace, ConfigError> {
    let empty = Section::default();
    let implicit = !cfg.workspaces.contains_key(name);
    if implicit && name != DEFAULT_WORKSPACE {
        let known = cfg.workspace_names();
        let refs: Vec<&str> = known.iter().map(String::as_str).collect();
        let hint = match validate::did_you_mean(name, &refs) {
            Some(k) => format!(" (did you mean {k:?}?)"),
            None => format!(" (configured: {})", known.join(", ")),
        };
        return Err(ConfigError {
            file: cfg.file.clone(),
            line: 0,
            key: format!("workspaces.{name}"),
            message: format!("no workspace named {name:?}{hint}"),
        });
    }
    let d = &cfg.defaults;
    let w = cfg.workspaces.get(name).unwrap_or(&empty);

    // env: defaults → env files (defaults' then the workspace's) → workspace.
    let mut env = BTreeMap::new();
    let mut env_from_file = BTreeMap::new();
    for (k, v) in d.env.iter().flatten() {
        env.insert(k.clone(), v.value.clone());
    }
    for f in d
        .env_file
        .iter()
        .flatten()
        .chain(w.env_file.iter().flatten())
    {
        for (k, v) in read_env_file(f)? {
            env_from_file.insert(k.clone(), f.path.clone());
            env.insert(k, v);
        }
    }
    for (k, v) in w.env.iter().flatten() {
        env_from_file.remove(k);
        env.insert(k.clone(), v.value.clone());
    }

    let union = |a: &Option<Vec<super::Spanned<String>>>,
                 b: &Option<Vec<super::Spanned<String>>>| {
        let mut out: Vec<String> = Vec::new();
        for e in a.iter().flatten().chain(b.iter().flatten()) {
            if !out.contains(&e.value) {
                out.push(e.value.clone());
            }
        }
        out
    };

    // mounts: keyed by container path, workspace entries replace or remove defaults'.
    let mut mounts: Vec<Mount> = Vec::new();
    for m in d.mounts.iter().flatten().chain(w.mounts.iter().flatten()) {
        mounts.retain(|x| x.container != m.container);
        mounts.push(Mount {
            host: m.host.clone(),
            container: m.container.clone(),
            read_only: m.read_only,
        });
    }

    let mut secrets = BTreeMap::new();
    for (k, p) in d.secrets.iter().flatten().chain(w.secrets.iter().flatten()) {
        secrets.insert(k.clone(), p.path.clone());
    }
    for k in secrets.keys() {
        if env.contains_key(k) {
            return Err(ConfigError {
                file: cfg.file.clone(),
                line: 0,
                key: format!("workspaces.{name}.secrets.{k}"),
                message: format!("{k:?} is both a secret and an env variable: keep one"),
            });
        }
    }

    Ok(Workspace {
        name: name.to_string(),
        port: cfg.port_of(name).unwrap_or(super::schema::BASE_PORT),
        paths: w.paths.iter().flatten().map(|p| p.path.clone()).collect(),
        mounts,
        allowed_hosts: union(&d.allowed_hosts, &w.allowed_hosts),
        allowed_networks: union(&d.allowed_networks, &w.allowed_networks),
        image: image_plan(cfg, w),
        env,
        env_from_file,
        secrets,
        ssh_auth_sock: w.ssh_auth_sock.or(d.ssh_auth_sock).unwrap_or(false),
        git_config: w.git_config.or(d.git_config).unwrap_or(true),
        expose_port: w.expose_port.or(d.expose_port).unwrap_or(true),
        enable_docker: w.enable_docker.or(d.enable_docker).unwrap_or(false),
        cpu: w.cpu.or(d.cpu).unwrap_or(DEFAULT_CPU),
        memory: w
            .memory
            .clone()
            .or_else(|| d.memory.clone())
            .unwrap_or_else(|| DEFAULT_MEMORY.to_string()),
        egress: w.egress.or(d.egress).unwrap_or_default(),
        implicit,
    })
}

/// The cascade from DESIGN.md, first that applies: workspace `image` → `[defaults] image` +
/// workspace Dockerfile → `[defaults] image` → `[base] dockerfile` (+ overlay) → embedded
/// (+ overlay).
fn image_plan(cfg: &Config, w: &Section) -> ImagePlan {
    let d = &cfg.defaults;
    if let Some(img) = &w.image {
        return ImagePlan {
            base: BaseImage::Ready(img.value.clone()),
            overlay: None,
        };
    }
    let overlay = match (&w.dockerfile, &d.dockerfile) {
        (Some(df), _) => Some(overlay_of(df, w.build_context.as_ref())),
        (None, Some(df)) => Some(overlay_of(df, d.build_context.as_ref())),
        _ => None,
    };
    let base = if let Some(img) = &d.image {
        BaseImage::Ready(img.value.clone())
    } else if let Some(df) = &cfg.base_dockerfile {
        BaseImage::Dockerfile(df.path.clone())
    } else {
        BaseImage::Embedded
    };
    ImagePlan { base, overlay }
}

fn overlay_of(df: &HostPath, ctx: Option<&HostPath>) -> Overlay {
    let context = match ctx {
        Some(c) => c.path.clone(),
        None => df
            .path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("/")),
    };
    Overlay {
        dockerfile: df.path.clone(),
        context,
    }
}

/// Reads a dotenv-style file: `KEY=VALUE` lines, `#` comments, optional `export `, optional
/// matching quotes around the value.
pub fn read_env_file(f: &HostPath) -> Result<Vec<(String, String)>, ConfigError> {
    let text = std::fs::read_to_string(&f.path).map_err(|e| ConfigError {
        file: f.path.clone(),
        line: 0,
        key: "env_file".into(),
        message: format!("failed to read env file {:?}: {e}", f.raw),
    })?;
    parse_env(&text, &f.path)
}

/// Parses env-file text (see [`read_env_file`]).
pub fn parse_env(text: &str, file: &Path) -> Result<Vec<(String, String)>, ConfigError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let err = |m: String| ConfigError {
            file: file.to_path_buf(),
            line: i + 1,
            key: "env_file".into(),
            message: m,
        };
        let Some((k, v)) = line.split_once('=') else {
            return Err(err(format!("invalid line {raw:?}: use KEY=VALUE")));
        };
        let k = k.trim();
        validate::env_name(k).map_err(err)?;
        let v = v.trim();
        let v = ['"', '\'']
            .iter()
            .find_map(|q| v.strip_prefix(*q).and_then(|s| s.strip_suffix(*q)))
            .unwrap_or(v);
        out.push((k.to_string(), v.to_string()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_str;

    fn cfg(text: &str) -> Config {
        parse_str(
            text,
            Path::new("/cfg/config.toml"),
            Path::new("/nonexistent-home/u"),
        )
        .expect("config")
    }

    #[test]
    fn merge_rules() {
        let c = cfg(r#"
[defaults]
allowed_hosts = ["a.org", "b.org"]
mounts = ["/srv/x:/home/agent/x:ro", "/srv/y:/home/agent/y"]
env = { A = "d", B = "d" }
memory = "2g"
[workspaces.web]
paths = ["/srv/web"]
allowed_hosts = ["b.org", "c.org"]
mounts = [":/home/agent/x", "/srv/z:/home/agent/y:ro"]
env = { B = "w" }
cpu = 0.5
"#);
        let w = resolve_workspace(&c, "web").expect("resolve");
        assert_eq!(w.allowed_hosts, ["a.org", "b.org", "c.org"]);
        assert_eq!(
            w.mounts,
            [
                Mount {
                    host: None,
                    container: "/home/agent/x".into(),
                    read_only: false
                },
                Mount {
                    host: Some("/srv/z".into()),
                    container: "/home/agent/y".into(),
                    read_only: true
                }
            ]
        );
        assert_eq!(w.env["A"], "d");
        assert_eq!(w.env["B"], "w");
        assert_eq!(w.memory, "2g");
        assert_eq!(w.cpu, 0.5);
        assert!(w.git_config && w.expose_port && !w.enable_docker && !w.ssh_auth_sock);
        assert_eq!(w.image.base, BaseImage::Embedded);
        // Ports: sorted names default(implicit), web.
        assert_eq!(c.workspace_names(), ["default", "web"]);
        assert_eq!(w.port, 4097);
        assert!(resolve_workspace(&c, "default").expect("default").implicit);
        assert!(resolve_workspace(&c, "wbe")
            .expect_err("must fail")
            .to_string()
            .contains("did you mean \"web\"?"));
    }

    #[test]
    fn image_cascade() {
        let c = cfg(r#"
[base]
dockerfile = "/srv/base.Dockerfile"
[defaults]
image = "corp/agent:1"
[workspaces.a]
image = "mine:2"
[workspaces.b]
dockerfile = "/srv/b/Dockerfile"
[workspaces.c]
"#);
        let plan = |n| resolve_workspace(&c, n).expect("resolve").image;
        assert_eq!(plan("a").base, BaseImage::Ready("mine:2".into()));
        assert_eq!(plan("b").base, BaseImage::Ready("corp/agent:1".into()));
        assert_eq!(
            plan("b").overlay.expect("overlay").context,
            PathBuf::from("/srv/b")
        );
        assert_eq!(plan("c").base, BaseImage::Ready("corp/agent:1".into()));
        let c2 = cfg("[base]\ndockerfile = \"/srv/base.Dockerfile\"\n");
        assert_eq!(
            resolve_workspace(&c2, "default").expect("r").image.base,
            BaseImage::Dockerfile("/srv/base.Dockerfile".into())
        );
    }

    #[test]
    fn env_files() {
        let v = parse_env(
            "# c\nexport A=1\nB=\"two words\"\n\nC='x'\n",
            Path::new("/e"),
        )
        .expect("parse");
        assert_eq!(
            v,
            [
                ("A".into(), "1".into()),
                ("B".into(), "two words".into()),
                ("C".into(), "x".into())
            ]
        );
        let e = parse_env("A=1\nnot a line\n", Path::new("/e")).expect_err("must fail");
        assert_eq!(
            e.to_string(),
            "/e:2: env_file: invalid line \"not a line\": use KEY=VALUE"
        );
    }
}
