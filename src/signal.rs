//! Ctrl-C (SIGINT) as a flag: [`install`] replaces the default effect (the process dies at
//! once, a run's outputs never written) with a global flag that long loops poll through
//! [`interrupted`]. `bitrnn train` checks it after each window: it stops there, writes
//! loss.csv, loss.png, summary.json (and the checkpoint with `--save`) for the windows it ran,
//! and exits with [`crate::Error::Interrupted`] (exit code 130 = 128 + SIGINT, the shell's
//! convention).
//!
//! A second Ctrl-C exits at once with code 130, for when writing the outputs takes too long:
//! every output file is written to a temporary sibling and renamed (see [`crate::output`]),
//! so that leaves complete files or none, never a torn one.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set by the handler, read by [`interrupted`].
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Whether the handler was installed, decided by the first call to [`install`].
static INSTALLED: OnceLock<bool> = OnceLock::new();

/// Exit code of a process stopped by SIGINT: 128 + 2.
pub const EXIT_CODE: i32 = 130;

/// Installs the SIGINT handler; later calls do nothing and return the first call's result.
///
/// Returns `true` when the handler is in place, `false` when it could not be installed
/// (another handler already owns SIGINT through the `ctrlc` crate, or the OS refused). Then
/// [`interrupted`] stays `false` and Ctrl-C keeps its previous effect.
pub fn install() -> bool {
    *INSTALLED.get_or_init(|| {
        ctrlc::set_handler(|| {
            // `swap` tells the first Ctrl-C (ask the loop to stop) from a second one (stop now).
            if INTERRUPTED.swap(true, Ordering::SeqCst) {
                std::process::exit(EXIT_CODE);
            }
        })
        .is_ok()
    })
}

/// Whether SIGINT was received since [`install`]. One relaxed-enough atomic load (SeqCst on
/// x86 is a plain load), cheap enough to call after every window.
#[must_use]
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_is_idempotent_and_starts_clear() {
        let first = install();
        assert_eq!(install(), first);
        assert_eq!(install(), first);
        assert!(!interrupted());
    }
}
