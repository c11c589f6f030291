//! The OpenCode server password: where it comes from (`password_mode`) and the 0600 env file
//! compose hands it to the container through.

use std::path::Path;

use crate::config::schema::PasswordMode;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::fsutil;

/// The variable OpenCode reads its server password from (and `password_mode` "env"/"auto"
/// take it from on the host).
pub const PASSWORD_VAR: &str = "OPENCODE_SERVER_PASSWORD";

/// The OpenCode server password per `password_mode`, kept in the 0600 env file compose reads
/// (so it is never on a command line or in the compose file). `file`: generated once (32
/// random bytes) and reused. `env`: `$OPENCODE_SERVER_PASSWORD`, copied into the file. `auto`:
/// the variable if set, else the file. Returns the password and whether the file changed (a
/// running container must then be recreated).
pub fn ensure_password(ctx: &Context, mode: PasswordMode, path: &Path) -> Result<(String, bool)> {
    const KEY: &str = "OPENCODE_SERVER_PASSWORD=";
    let from_env = match mode {
        PasswordMode::File | PasswordMode::Keyring => None,
        PasswordMode::Env | PasswordMode::Auto => ctx.var(PASSWORD_VAR),
    };
    if let Some(pw) = from_env {
        if pw.contains(['\n', '\r', '\0']) {
            return Err(Error::Other(format!(
                "failed to use {PASSWORD_VAR} from the environment: it contains a line break or NUL"
            )));
        }
        let changed = fsutil::write_if_changed(path, format!("{KEY}{pw}\n").as_bytes(), 0o600)
            .map_err(|e| Error::file("write", path, e))?;
        return Ok((pw.to_string(), changed));
    }
    if mode == PasswordMode::Env {
        return Err(password_env_missing());
    }
    if let Ok(text) = std::fs::read_to_string(path) {
        if let Some(pw) = text
            .lines()
            .find_map(|l| l.strip_prefix(KEY))
            .filter(|p| !p.is_empty())
        {
            let mut changed = false;
            if fsutil::mode_of(path).is_some_and(|m| m != 0o600) {
                fsutil::write_atomic(path, text.as_bytes(), 0o600)
                    .map_err(|e| Error::file("write", path, e))?;
                changed = true;
            }
            return Ok((pw.to_string(), changed));
        }
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| Error::Other(format!("failed to generate a password: {e}")))?;
    let pw: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    fsutil::write_atomic(path, format!("{KEY}{pw}\n").as_bytes(), 0o600)
        .map_err(|e| Error::file("write", path, e))?;
    Ok((pw, true))
}

fn password_env_missing() -> Error {
    Error::Other(format!(
        "failed to read the server password: password_mode = \"env\" but {PASSWORD_VAR} is not set or empty (export it, or use password_mode = \"auto\" or \"file\")"
    ))
}
