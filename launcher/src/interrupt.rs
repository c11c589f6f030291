//! Ctrl-C and `kill` while `jailoc run` runs. By default SIGINT or SIGTERM would end jailoc at
//! once and leave the run's container, network and volumes behind; instead the signal is only
//! noted ([`Interrupt::signal`]), and the run stops its container, cleans up and exits with
//! 128 + the signal's number, as a shell reports a command killed by it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// The signals a run stops on: Ctrl-C (SIGINT), `kill` and CI runners' cancel (SIGTERM), a
/// closed terminal (SIGHUP).
const STOPPING: [i32; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// The last stopping signal received (0: none yet).
#[derive(Debug, Clone, Default)]
pub struct Interrupt(Arc<AtomicUsize>);

impl Interrupt {
    /// Notes [`STOPPING`] signals from now on for the rest of the process, instead of dying of
    /// them.
    pub fn install() -> std::io::Result<Interrupt> {
        let flag = Interrupt::default();
        for sig in STOPPING {
            let value = usize::try_from(sig).map_err(std::io::Error::other)?;
            signal_hook::flag::register_usize(sig, Arc::clone(&flag.0), value)?;
        }
        Ok(flag)
    }

    /// The stopping signal received, if any.
    pub fn signal(&self) -> Option<i32> {
        match self.0.load(Ordering::SeqCst) {
            0 => None,
            n => i32::try_from(n).ok(),
        }
    }

    /// Notes `signal` as if it had arrived (tests).
    pub fn raise(&self, signal: i32) {
        self.0
            .store(usize::try_from(signal).unwrap_or(0), Ordering::SeqCst);
    }
}

/// A signal's name for messages ("SIGINT").
pub fn name(signal: i32) -> String {
    match signal {
        libc::SIGINT => "SIGINT".into(),
        libc::SIGTERM => "SIGTERM".into(),
        libc::SIGHUP => "SIGHUP".into(),
        n => format!("signal {n}"),
    }
}
