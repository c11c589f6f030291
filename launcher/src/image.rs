//! Resolves the workspace's image through the cascade and builds what needs building. Built
//! images are tagged by a hash of their inputs: an unchanged config never rebuilds, a changed
//! one always does. Build output goes straight to the terminal.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::config::merge::{BaseImage, Dockerfile, ImagePlan};
use crate::config::Workspace;
use crate::context::Context;
use crate::engine::{run_checked, spawn_error, Engine};
use crate::error::{Error, Result};
use crate::fsutil;
use crate::process::{Cmd, Mode};

/// The default OpenCode Dockerfile, embedded so the launcher works from a single binary.
pub const EMBEDDED_DOCKERFILE: &str = include_str!("../../dockerfiles/opencode.Dockerfile");

/// One build: tag, Dockerfile, context and build arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Build {
    pub tag: String,
    pub dockerfile: PathBuf,
    pub context: PathBuf,
    pub build_args: Vec<(String, String)>,
}

/// The image reference to run and the builds (in order) that produce it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub image: String,
    pub builds: Vec<Build>,
}

fn hash(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    h.finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::file("read", path, e))
}

/// A cheap fingerprint of the companion binary (size + mtime): it is copied into the embedded
/// image's build context, so a new sandbox-init gives a new tag.
fn fingerprint(p: &Path) -> String {
    std::fs::metadata(p)
        .map(|m| {
            let mtime = m
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            format!("{}:{mtime}", m.len())
        })
        .unwrap_or_default()
}

/// Largest Dockerfile fetched from a URL (the Go jailoc's limit).
pub const MAX_DOCKERFILE_BYTES: u64 = 1 << 20;

fn local(df: &Dockerfile) -> Result<&Path> {
    match df {
        Dockerfile::Path(p) => Ok(p),
        Dockerfile::Url(u) => Err(Error::Other(format!(
            "internal error: Dockerfile {u} was not fetched before planning"
        ))),
    }
}

/// Replaces every URL Dockerfile in `plan` by a local copy: `curl -fsSL --max-filesize 1048576`
/// through the context's runner into `cache/dockerfiles/` (fetched on every `up`, so a changed
/// remote file changes the image tag). Each URL gets its own directory, which is the build
/// context when none is configured (the Go jailoc uses an empty temporary one).
pub fn fetch(ctx: &Context, plan: &ImagePlan, cache: &Path) -> Result<ImagePlan> {
    let get = |df: &Dockerfile| -> Result<Dockerfile> {
        let Dockerfile::Url(url) = df else {
            return Ok(df.clone());
        };
        // One directory per URL: it is also the build context when none is configured, so it
        // holds nothing but this Dockerfile.
        let dest = cache
            .join("dockerfiles")
            .join(hash(&[url.as_bytes()]))
            .join("Dockerfile");
        let part = dest.with_extension("part");
        fsutil::create_dir_private(dest.parent().unwrap_or(cache))
            .map_err(|e| Error::file("create", &dest, e))?;
        let _ = std::fs::remove_file(&part);
        let cmd = Cmd::new(
            "curl",
            [
                "-fsSL",
                "--max-filesize",
                &MAX_DOCKERFILE_BYTES.to_string(),
                "-o",
                &part.to_string_lossy(),
                url,
            ],
        );
        let out = ctx.run(&cmd, Mode::Capture).map_err(|e| Error::Fetch {
            url: url.clone(),
            reason: format!(
                "could not run curl ({e}); install curl, or download the file yourself and set dockerfile to its path"
            ),
        })?;
        if !out.success() {
            let _ = std::fs::remove_file(&part);
            return Err(Error::CommandFailed {
                what: format!("download the Dockerfile {url}"),
                command: cmd.display(),
                code: out.code,
                stderr: match out.stderr.trim() {
                    "" => String::new(),
                    e => format!(": {e}"),
                },
            });
        }
        let len = std::fs::metadata(&part)
            .map_err(|e| Error::file("read", &part, e))?
            .len();
        if len > MAX_DOCKERFILE_BYTES {
            let _ = std::fs::remove_file(&part);
            return Err(Error::Fetch {
                url: url.clone(),
                reason: format!("it is larger than 1 MiB ({len} bytes)"),
            });
        }
        std::fs::rename(&part, &dest).map_err(|e| Error::file("write", &dest, e))?;
        Ok(Dockerfile::Path(dest))
    };
    let base = match &plan.base {
        BaseImage::Dockerfile(df) => BaseImage::Dockerfile(get(df)?),
        other => other.clone(),
    };
    let overlay = match &plan.overlay {
        None => None,
        Some(o) => {
            let dockerfile = get(&o.dockerfile)?;
            let context = match (&o.context, &dockerfile) {
                (Some(c), _) => c.clone(),
                (None, df) => local(df)?.parent().unwrap_or(cache).to_path_buf(),
            };
            Some(crate::config::merge::Overlay {
                dockerfile,
                context: Some(context),
            })
        }
    };
    Ok(ImagePlan { base, overlay })
}

/// Plans the image for `plan` (pure apart from reading the Dockerfiles, which must be local:
/// see [`fetch`]).
pub fn plan(
    name: &str,
    plan: &ImagePlan,
    embedded_dir: &Path,
    sandbox_init: &Path,
) -> Result<Resolved> {
    let mut builds = Vec::new();
    let base = match &plan.base {
        BaseImage::Ready(r) => r.clone(),
        BaseImage::Dockerfile(df) => {
            let df = local(df)?;
            let ctxdir = df.parent().unwrap_or(Path::new("/")).to_path_buf();
            let tag = format!(
                "jailoc-base:{}",
                hash(&[&read(df)?, ctxdir.to_string_lossy().as_bytes()])
            );
            builds.push(Build {
                tag: tag.clone(),
                dockerfile: df.to_path_buf(),
                context: ctxdir,
                build_args: Vec::new(),
            });
            tag
        }
        BaseImage::Embedded => {
            let tag = format!(
                "jailoc-base:{}",
                hash(&[
                    EMBEDDED_DOCKERFILE.as_bytes(),
                    fingerprint(sandbox_init).as_bytes()
                ])
            );
            builds.push(Build {
                tag: tag.clone(),
                dockerfile: embedded_dir.join("Dockerfile"),
                context: embedded_dir.to_path_buf(),
                build_args: Vec::new(),
            });
            tag
        }
    };
    let image = match &plan.overlay {
        None => base,
        Some(o) => {
            let dockerfile = local(&o.dockerfile)?;
            let context = o.context.clone().ok_or_else(|| {
                Error::Other("internal error: overlay without a build context".into())
            })?;
            let tag = format!(
                "jailoc-{name}:{}",
                hash(&[
                    base.as_bytes(),
                    &read(dockerfile)?,
                    context.to_string_lossy().as_bytes()
                ])
            );
            builds.push(Build {
                tag: tag.clone(),
                dockerfile: dockerfile.to_path_buf(),
                context,
                // The Go jailoc's overlays say `ARG BASE` / `FROM ${BASE}`; jailoc's own docs
                // `BASE_IMAGE`. Both are passed (Docker warns about the unused one).
                build_args: vec![("BASE".into(), base.clone()), ("BASE_IMAGE".into(), base)],
            });
            tag
        }
    };
    Ok(Resolved { image, builds })
}

/// A one-line description of where the image comes from (for `status` and `config`).
pub fn describe(plan: &ImagePlan) -> String {
    let base = match &plan.base {
        BaseImage::Ready(r) => r.clone(),
        BaseImage::Dockerfile(p) => format!("built from {p}"),
        BaseImage::Embedded => "built-in OpenCode image".to_string(),
    };
    match &plan.overlay {
        None => base,
        Some(o) => format!("{base} + {}", o.dockerfile),
    }
}

/// Resolves the image and builds every missing layer. Returns the reference to run.
pub fn ensure(
    ctx: &mut Context,
    engine: &Engine,
    ws: &Workspace,
    sandbox_init: &Path,
) -> Result<String> {
    let embedded_dir = ctx.cache_dir().join("base");
    let local_plan = fetch(ctx, &ws.image, &ctx.cache_dir())?;
    let resolved = plan(&ws.name, &local_plan, &embedded_dir, sandbox_init)?;
    for b in &resolved.builds {
        let inspect = Cmd::new(
            &engine.cli,
            ["image", "inspect", "--format", "{{.Id}}", &b.tag],
        );
        let out = ctx
            .run(&inspect, Mode::Capture)
            .map_err(|e| spawn_error(&inspect, e))?;
        if out.success() {
            continue;
        }
        if b.context == embedded_dir {
            // The embedded Dockerfile's context: the Dockerfile and the companion binary.
            let df = embedded_dir.join("Dockerfile");
            fsutil::write_if_changed(&df, EMBEDDED_DOCKERFILE.as_bytes(), 0o644)
                .map_err(|e| Error::file("write", &df, e))?;
            let bin = embedded_dir.join("sandbox-init");
            let data = read(sandbox_init)?;
            fsutil::write_if_changed(&bin, &data, 0o755)
                .map_err(|e| Error::file("write", &bin, e))?;
        }
        ctx.warn(&format!("building image {}", b.tag));
        let mut cmd = Cmd::new(
            &engine.cli,
            [
                "build".to_string(),
                "-t".into(),
                b.tag.clone(),
                "-f".into(),
                b.dockerfile.to_string_lossy().into_owned(),
            ],
        );
        for (k, v) in &b.build_args {
            cmd.args.push("--build-arg".into());
            cmd.args.push(format!("{k}={v}"));
        }
        cmd.args.push(b.context.to_string_lossy().into_owned());
        run_checked(ctx, &cmd, Mode::Inherit, &format!("build image {}", b.tag))?;
    }
    Ok(resolved.image)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::merge::Overlay;

    #[test]
    fn tags_follow_content() {
        let dir = tempfile::tempdir().expect("tempdir");
        let df = dir.path().join("Dockerfile");
        std::fs::write(&df, "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\n").expect("write");
        let p = ImagePlan {
            base: BaseImage::Ready("corp/agent:1".into()),
            overlay: Some(Overlay {
                dockerfile: Dockerfile::Path(df.clone()),
                context: Some(dir.path().to_path_buf()),
            }),
        };
        let a = plan("web", &p, dir.path(), &df).expect("plan");
        let b = plan("web", &p, dir.path(), &df).expect("plan");
        assert_eq!(a, b, "same inputs, same tag: no rebuild");
        assert!(a.image.starts_with("jailoc-web:"));
        assert_eq!(a.builds.len(), 1);
        assert_eq!(
            a.builds[0].build_args,
            [
                ("BASE".to_string(), "corp/agent:1".to_string()),
                ("BASE_IMAGE".to_string(), "corp/agent:1".to_string())
            ]
        );
        std::fs::write(&df, "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nRUN true\n").expect("write");
        let c = plan("web", &p, dir.path(), &df).expect("plan");
        assert_ne!(a.image, c.image, "changed Dockerfile, new tag");
        let ready = ImagePlan {
            base: BaseImage::Ready("x:1".into()),
            overlay: None,
        };
        let r = plan("web", &ready, dir.path(), &df).expect("plan");
        assert_eq!(r.image, "x:1");
        assert!(r.builds.is_empty());
    }
}
