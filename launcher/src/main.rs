#![forbid(unsafe_code)]
//! `jailoc`: the host CLI. All logic lives in the library; this file only maps the result to an
//! exit code (see `jailoc::error::ExitCode` for the table).

fn main() {
    std::process::exit(jailoc::main_with_system());
}
