//! The boot sequence, top to bottom. Each step fails closed: the agent never starts after an error.

/// Entry point of the binary; returns the process exit code.
pub fn main() -> i32 {
    0
}
