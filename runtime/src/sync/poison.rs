//! Poisoning, as std's locks do it: a guard dropped while its holder panics marks the lock,
//! and later acquisitions still succeed but report it through `PoisonError`.
//!
//! `std::thread::panicking` is per thread, and a coroutine unwinds on the worker thread it
//! runs on, so it answers for the coroutine too: a panic's unwinding runs to completion (or to
//! a `catch_unwind`) without a switch, unless a destructor parks on the way.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{LockResult, PoisonError};

pub(crate) struct Flag(AtomicBool);

/// Whether the holder was already panicking when it took the guard; only a panic that
/// starts while the guard is held poisons.
#[derive(Clone, Copy)]
pub(crate) struct Held {
    panicking: bool,
}

impl Flag {
    pub(crate) const fn new() -> Flag {
        Flag(AtomicBool::new(false))
    }

    pub(crate) fn get(&self) -> bool {
        self.0.load(Relaxed)
    }

    pub(crate) fn clear(&self) {
        self.0.store(false, Relaxed);
    }

    /// Called when the lock is taken.
    pub(crate) fn held(&self) -> Held {
        Held { panicking: std::thread::panicking() }
    }

    /// Called when the guard is dropped, before the lock is released.
    pub(crate) fn release(&self, held: Held) {
        if !held.panicking && std::thread::panicking() {
            self.0.store(true, Relaxed);
        }
    }

    /// `Ok(value)`, or `Err` carrying it if the lock is poisoned.
    pub(crate) fn result<T>(&self, value: T) -> LockResult<T> {
        if self.get() {
            Err(PoisonError::new(value))
        } else {
            Ok(value)
        }
    }
}

/// Applies `f` to the value inside a `LockResult`, poisoned or not.
pub(crate) fn map_result<T, U>(result: LockResult<T>, f: impl FnOnce(T) -> U) -> LockResult<U> {
    match result {
        Ok(t) => Ok(f(t)),
        Err(e) => Err(PoisonError::new(f(e.into_inner()))),
    }
}
