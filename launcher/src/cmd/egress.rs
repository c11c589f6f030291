//! `jailoc egress [NAME] [--json]`: what the walls of the running workspace refused — every
//! connection the firewall rejected and every name the DNS gate refused, per destination and
//! reason, with count, first and last seen — read from the record sandbox-init keeps inside the
//! container ([`jailoc_policy::EGRESS_RECORD`]). `jailoc run` reads the same record of its own
//! container before removing it ([`copy_record`]).

use std::io::BufReader;
use std::path::Path;

use crate::cli::Cli;
use crate::compose::SERVICE;
use crate::config::Use;
use crate::context::Context;
use crate::egress::Record;
use crate::engine::{self, parse_ps, ps_cmd, spawn_error};
use crate::error::{Error, Result};
use crate::fsutil;
use crate::process::Mode;

/// Runs `jailoc egress`.
pub fn run(ctx: &mut Context, cli: &Cli, json: bool) -> Result<()> {
    let (_, ws) = super::load(ctx, cli, Use::Inspect)?;
    let engine = engine::detect(ctx)?;
    let what = "show the egress record";
    let container =
        running_agent(ctx, &engine.cli, &ws.name)?.ok_or_else(|| Error::NotRunning {
            what: what.into(),
            workspace: ws.name.clone(),
        })?;
    let dir = ctx
        .cache_dir()
        .join(&ws.name)
        .join(format!("egress-{}", std::process::id()));
    let record = copy_record(ctx, &engine.cli, &container, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    let record = record?;
    if json {
        let entries = record.as_ref().map(|r| r.entries.as_slice()).unwrap_or(&[]);
        let text = serde_json::to_string_pretty(entries)
            .map_err(|e| Error::Other(format!("failed to write the record as JSON: {e}")))?;
        ctx.say(&text);
    } else {
        match &record {
            Some(r) if !r.entries.is_empty() => {
                let table = r.table();
                ctx.say(table.trim_end());
            }
            _ => ctx.say(&format!(
                "workspace {:?}: nothing refused so far (no egress record yet)",
                ws.name
            )),
        }
    }
    if let Some(skipped) = record.map(|r| r.skipped).filter(|&n| n > 0) {
        ctx.warn(&format!(
            "warning: skipped {skipped} line(s) of the record that were not of its schema"
        ));
    }
    Ok(())
}

/// The container of the workspace's agent if it is running (one `ps` query).
fn running_agent(ctx: &Context, cli: &str, name: &str) -> Result<Option<String>> {
    let cmd = ps_cmd(cli, Some(name));
    let out = ctx
        .run(&cmd, Mode::Capture)
        .map_err(|e| spawn_error(&cmd, e))?;
    if !out.success() {
        return Ok(None);
    }
    Ok(parse_ps(&out.stdout)
        .into_iter()
        .find(|c| {
            c.workspace == name && c.service == SERVICE && c.state == "running" && !c.go_jailoc
        })
        .map(|c| if c.id.is_empty() { c.name } else { c.id }))
}

/// Copies the egress record out of `container` (running or stopped) into `dir` (created
/// 0700, left for the caller to remove) and reads it; `None` when the container has no record
/// (nothing refused yet, or a sandbox-init without one). The copy is a file the engine's CLI
/// writes as the user; it is opened without following a symlink and read in bounded lines
/// ([`Record::read`]), so a record of any size costs bounded memory.
pub fn copy_record(
    ctx: &Context,
    cli: &str,
    container: &str,
    dir: &Path,
) -> Result<Option<Record>> {
    fsutil::create_dir_private(dir).map_err(|e| Error::file("create", dir, e))?;
    let cmd = engine::copy_out_cmd(cli, container, jailoc_policy::EGRESS_RECORD, dir);
    let out = ctx
        .run(&cmd, Mode::Capture)
        .map_err(|e| spawn_error(&cmd, e))?;
    if !out.success() {
        let stderr = out.stderr.to_ascii_lowercase();
        // Docker: "Could not find the file ... in container"; Podman: "no such file or
        // directory".
        if stderr.contains("could not find the file") || stderr.contains("no such file") {
            return Ok(None);
        }
        return Err(Error::CommandFailed {
            what: "copy the egress record out of the container".into(),
            command: cmd.display(),
            code: out.code,
            stderr: format!(": {}", out.stderr.trim()),
        });
    }
    let name = Path::new(jailoc_policy::EGRESS_RECORD)
        .file_name()
        .unwrap_or_default();
    let path = dir.join(name);
    let file = open_regular_nofollow(&path).map_err(|e| Error::file("read", &path, e))?;
    Record::read(BufReader::new(file))
        .map(Some)
        .map_err(|e| Error::file("read", &path, e))
}

/// Opens `path` for reading if it is a regular file, never through a symlink.
fn open_regular_nofollow(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::{Cmd, Output, Runner};
    use crate::testutil::{context, tempdir, Recorder};

    /// Plays `docker cp`: writes `content` as the record into the destination directory, or
    /// a symlink to `content` when `link`, or fails as Docker does for a missing file.
    #[derive(Debug)]
    struct Cp {
        content: Option<&'static str>,
        link: bool,
    }

    impl Runner for Cp {
        fn run(&self, cmd: &Cmd, _: Mode) -> std::io::Result<Output> {
            let dir = Path::new(cmd.args.last().expect("a destination"));
            match self.content {
                None => Ok(Output {
                    code: 1,
                    stderr: "Error response from daemon: Could not find the file /run/jailoc-egress/egress.jsonl in container c1\n".into(),
                    ..Output::default()
                }),
                Some(target) if self.link => {
                    std::os::unix::fs::symlink(target, dir.join("egress.jsonl"))?;
                    Ok(Output::default())
                }
                Some(text) => {
                    std::fs::write(dir.join("egress.jsonl"), text)?;
                    Ok(Output::default())
                }
            }
        }
    }

    #[test]
    fn the_record_is_copied_out_read_and_a_missing_one_is_none() {
        let dir = tempdir();
        let (mut ctx, _, _) = context(dir.path(), Recorder::default());
        let line = r#"{"kind":"name","name":"x.attacker.example","reason":"not allowlisted","count":2,"first":"a","last":"b"}"#;
        ctx.runner = Box::new(Cp {
            content: Some(Box::leak(format!("{line}\n").into_boxed_str())),
            link: false,
        });
        let r = copy_record(&ctx, "docker", "c1", &dir.path().join("a"))
            .expect("copy")
            .expect("a record");
        assert_eq!(
            r.summary().as_deref(),
            Some("refused 1 name: x.attacker.example (not allowlisted)")
        );
        ctx.runner = Box::new(Cp {
            content: None,
            link: false,
        });
        assert_eq!(
            copy_record(&ctx, "docker", "c1", &dir.path().join("b")).expect("copy"),
            None
        );
    }

    /// A record that is a symlink inside the container arrives as a symlink (`docker cp`
    /// copies links as links): jailoc does not read the host file it points to.
    #[test]
    fn attack_a_record_that_is_a_symlink_is_not_followed() {
        let dir = tempdir();
        let secret = dir.path().join("host-secret");
        std::fs::write(&secret, "{\"kind\":\"name\",\"name\":\"host-secret-value\",\"reason\":\"r\",\"count\":1,\"first\":\"a\",\"last\":\"b\"}\n").expect("write");
        let (mut ctx, _, _) = context(dir.path(), Recorder::default());
        ctx.runner = Box::new(Cp {
            content: Some(Box::leak(
                secret.to_string_lossy().into_owned().into_boxed_str(),
            )),
            link: true,
        });
        let e = copy_record(&ctx, "docker", "c1", &dir.path().join("c")).expect_err("refused");
        assert!(e.to_string().starts_with("failed to read "), "{e}");
    }
}
