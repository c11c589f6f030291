//! Finding the companion `sandbox-init` binary that every container runs as PID 1.

use std::path::PathBuf;

use crate::context::Context;
use crate::error::{Error, Result};

/// The companion `sandbox-init`: `JAILOC_SANDBOX_INIT`, else next to the `jailoc` executable,
/// else on `PATH`.
pub(super) fn find_sandbox_init(ctx: &Context) -> Result<PathBuf> {
    if let Some(p) = ctx.var("JAILOC_SANDBOX_INIT") {
        let p = PathBuf::from(p);
        if p.is_file() {
            return Ok(std::fs::canonicalize(&p).unwrap_or(p));
        }
        return Err(Error::NoSandboxInit {
            detail: format!("JAILOC_SANDBOX_INIT={} is not a file", p.display()),
        });
    }
    if let Some(dir) = &ctx.exe_dir {
        let p = dir.join("sandbox-init");
        if p.is_file() {
            return Ok(p);
        }
    }
    if let Some(path) = ctx.var("PATH") {
        for dir in std::env::split_paths(path) {
            let p = dir.join("sandbox-init");
            if p.is_file() {
                return Ok(std::fs::canonicalize(&p).unwrap_or(p));
            }
        }
    }
    let beside = ctx
        .exe_dir
        .as_ref()
        .map(|d| format!(" ({})", d.display()))
        .unwrap_or_default();
    Err(Error::NoSandboxInit {
        detail: format!(
            "it is not next to the jailoc executable{beside} nor on PATH, and JAILOC_SANDBOX_INIT is not set"
        ),
    })
}
