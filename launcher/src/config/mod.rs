//! The user's `config.toml`: schema ([`schema`]), loading with line numbers ([`load`]), value
//! and path validation ([`validate`], [`paths`]) and the defaults → workspace merge ([`merge`]).

pub mod defaults;
pub mod load;
pub mod merge;
pub mod paths;
pub mod schema;
pub mod validate;

use std::path::PathBuf;

pub use load::{load_file, parse_str, parse_with};
pub use merge::{inspect_workspace, resolve_workspace, Use, Workspace};
pub use paths::HostDirs;
pub use schema::{Config, Egress, Section};

/// A config problem, always with the file, line and key (and the value in the message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based line number.
    pub line: usize,
    /// Dotted key path, e.g. `workspaces.web.memory` (empty for syntax errors).
    pub key: String,
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    /// `FILE:LINE: KEY: MESSAGE`; the line is left out when unknown (0), the key when empty.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}", self.line)?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// A value with the line it came from, so later checks can still point at it.
#[derive(Debug, Clone, PartialEq)]
pub struct Spanned<T> {
    pub value: T,
    pub line: usize,
}
