//! Peers for the std-behaviour tests (`tests/sync_std_locks.rs`, `tests/sync_std_channels.rs`):
//! most checks run on the test thread and in a coroutine, and the peers a check starts are of
//! its own kind, threads from a thread and coroutines from a coroutine ([`peer`]).
//!
//! Where a check must know that a peer is blocked in a call, [`start_blocked`] returns only
//! once it is:
//!
//! 1. A thread peer publishes its id; it is blocked once the kernel shows it asleep.
//! 2. A coroutine peer runs on a fresh one-worker runtime beside the coroutine that watches
//!    it: the watcher runs again only once the peer has given the worker back, and the peer's
//!    only way to do that is to park inside the call.
//!
//! Every wait that must end is bounded by [`super::hang`].

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::{hang, Handle, Mode, Side};

/// The timeout of the checks that time out on purpose.
pub const SHORT: Duration = Duration::from_millis(30);

/// Starts `f` on a peer of the caller's kind.
pub fn peer<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Handle<T> {
    if weft::is_coroutine() {
        Handle::Coroutine(weft::spawn(f))
    } else {
        Handle::Thread(std::thread::spawn(f))
    }
}

/// Starts `f` on a coroutine of `rt` if `coroutine`, else on a thread.
pub fn peer_on<T: Send + 'static>(
    rt: &weft::Runtime,
    coroutine: bool,
    f: impl FnOnce() -> T + Send + 'static,
) -> Handle<T> {
    let side = if coroutine { Side::Coroutine } else { Side::Thread };
    super::spawn_on(side, Some(rt), "peer", f)
}

/// A peer known to be blocked in a call; see [`start_blocked`].
pub struct Blocked<T> {
    peer: Handle<T>,
    /// The one-worker runtime of a coroutine peer; dropped after the peer is joined.
    _rt: Option<Arc<weft::Runtime>>,
}

impl<T> Blocked<T> {
    pub fn value(self, what: &str) -> T {
        self.peer.value(what)
    }
}

/// Starts `f` on a peer of the caller's kind and returns once the peer is blocked inside `f`
/// (`f` must block at once: its first call is the blocking one).
///
/// - A thread peer publishes its id; it is blocked once the kernel shows it asleep.
/// - A coroutine peer runs on a fresh one-worker runtime, spawned by a coroutine of that
///   runtime which then waits (yielding) until the peer says it is about to call. On one
///   worker the watcher runs again only after the peer gave the worker back, and the peer's
///   only way to do that is to park inside the call. A call that does not block runs to the
///   end first, which the caller's assertions then see.
pub fn start_blocked<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Blocked<T> {
    if weft::is_coroutine() {
        let rt = super::runtime(1, Mode::Pinned);
        let about = Arc::new(AtomicBool::new(false));
        let handle = rt.block_on(|| {
            let about2 = Arc::clone(&about);
            let handle = weft::spawn(move || {
                about2.store(true, Ordering::SeqCst);
                f()
            });
            assert!(super::wait_until(hang(), || about.load(Ordering::SeqCst)));
            handle
        });
        Blocked { peer: Handle::Coroutine(handle), _rt: Some(rt) }
    } else {
        let tid = Arc::new(AtomicI32::new(0));
        let tid2 = Arc::clone(&tid);
        let thread = std::thread::spawn(move || {
            super::publish_tid(&tid2);
            f()
        });
        assert!(
            super::wait_sleeping(&tid, hang()),
            "the peer thread did not block (it is not asleep in the kernel)"
        );
        Blocked { peer: Handle::Thread(thread), _rt: None }
    }
}

/// Waits until `flag` is set, for a peer that holds something until told.
pub fn wait_for(flag: &AtomicBool) {
    assert!(super::wait_until(hang(), || flag.load(Ordering::SeqCst)), "flag never set");
}

pub fn flag() -> Arc<AtomicBool> {
    Arc::new(AtomicBool::new(false))
}
