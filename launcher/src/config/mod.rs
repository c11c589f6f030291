//! The user's `config.toml`: schema ([`schema`]), loading with line numbers ([`load`]), value
//! and path validation ([`validate`], [`paths`]) and the defaults → workspace merge ([`merge`]).

pub mod defaults;
pub mod load;
pub mod merge;
pub mod paths;
pub mod schema;
pub mod validate;

use std::path::PathBuf;

pub use load::{load_file, parse_str};
pub use merge::{resolve_workspace, Workspace};
pub use schema::{Config, Egress, Section};

/// A config problem, always with the file, line and key (and the value in the message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}:{line}: {}{message}", file.display(), key_prefix(key))]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based line number.
    pub line: usize,
    /// Dotted key path, e.g. `workspaces.web.memory` (empty for syntax errors).
    pub key: String,
    pub message: String,
}

fn key_prefix(key: &str) -> String {
    if key.is_empty() {
        String::new()
    } else {
        format!("{key}: ")
    }
}

/// A value with the line it came from, so later checks can still point at it.
#[derive(Debug, Clone, PartialEq)]
pub struct Spanned<T> {
    pub value: T,
    pub line: usize,
}
