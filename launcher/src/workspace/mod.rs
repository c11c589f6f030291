//! A workspace on the host, as the commands use it. One job a file:
//!
//! | file | job |
//! |---|---|
//! | `config_file.rs` | the config file: where it is, its creation on first use, loading it into the context |
//! | `select.rs` | which workspace a command acts on |
//! | `files.rs` | where a workspace's files live, and its compose project name |
//! | `password.rs` | the OpenCode server password and its 0600 env file |
//! | `sandbox_init.rs` | finding the companion `sandbox-init` |
//! | `checks.rs` | what must exist on the host before `up` runs or writes anything |
//! | `secrets.rs` | the secrets' copies, written at `up` and removed at `down` |
//! | `policy_dir.rs` | the policy directory is jailoc's alone: what it may hold |
//! | `data_dir.rs` | the workspace's own OpenCode data directory and the logins' copy |
//! | `mounts.rs` | the built-in mounts that may be used; a host path resolving through a writable one |
//! | `env.rs` | `env` values expanded from the host's environment |
//! | `compose_file.rs` | the compose file: the pure renderer fed with what this host knows |
//! | `prepare.rs` | `up`'s steps before the engine starts, in their fixed order |

mod checks;
mod compose_file;
mod config_file;
mod data_dir;
mod env;
mod files;
mod mounts;
mod password;
mod policy_dir;
mod prepare;
mod sandbox_init;
mod secrets;
mod select;

pub use checks::check_inputs;
pub use compose_file::render_compose;
pub use config_file::load_config;
pub use files::{files, project, Files};
pub use password::{ensure_password, PASSWORD_VAR};
pub use prepare::{prepare, prepare_in, Prepared};
pub use secrets::remove_secret_files;
pub use select::{select, select_for};
