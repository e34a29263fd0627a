//! Backing off an accept loop that has run out of file descriptors.
//!
//! When the process (EMFILE) or the system (ENFILE) has no fd to give, `accept` fails at once,
//! and keeps failing at once while the connection waits in the backlog: a loop that retries
//! would spin a core. Go's HTTP server sleeps 5 ms after such an error, doubling up to 1 s, and
//! weft's listeners do the same inside `accept`, before returning the error, so that any loop
//! around `accept` is slowed down whatever it does with the error. The first failure of a
//! burst is logged; the first success ends the burst.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// The first delay of a burst.
const FIRST: Duration = Duration::from_millis(5);
/// The longest delay.
const MAX: Duration = Duration::from_secs(1);

/// The backoff state of one listener: the current delay in nanoseconds, 0 outside a burst.
#[derive(Debug, Default)]
pub(crate) struct AcceptBackoff(AtomicU64);

impl AcceptBackoff {
    /// Sleeps the caller (coroutine or thread) for the next delay of the burst.
    ///
    /// # Errors
    ///
    /// The shutdown error, at once, while the caller's runtime shuts down.
    pub(crate) fn wait(&self, error: &io::Error, listener: &dyn std::fmt::Debug) -> io::Result<()> {
        let prev = self.0.load(Relaxed);
        let delay = if prev == 0 {
            log::warn!(
                "weft: accept on {listener:?} failed ({error}); retrying with a backoff from \
                 {FIRST:?} up to {MAX:?} until file descriptors are free"
            );
            FIRST
        } else {
            (Duration::from_nanos(prev) * 2).min(MAX)
        };
        self.0.store(delay.as_nanos() as u64, Relaxed);
        weft_runtime::reactor::sleep_io(delay)
    }

    /// Ends a burst, after an accept that succeeded.
    pub(crate) fn reset(&self) {
        if self.0.load(Relaxed) != 0 {
            self.0.store(0, Relaxed);
            log::info!("weft: accept succeeds again");
        }
    }
}
