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

/// The impls std's locks share beyond their methods: `Default`, `From<T>` and unwind safety
/// (a poisoned lock reports a panic's broken invariants, so catching one is fine).
macro_rules! lock_impls {
    ($ty:ident) => {
        impl<T: Default> Default for $ty<T> {
            fn default() -> $ty<T> {
                $ty::new(T::default())
            }
        }

        impl<T> From<T> for $ty<T> {
            fn from(t: T) -> $ty<T> {
                $ty::new(t)
            }
        }

        impl<T: ?Sized> std::panic::UnwindSafe for $ty<T> {}
        impl<T: ?Sized> std::panic::RefUnwindSafe for $ty<T> {}
    };
}
pub(crate) use lock_impls;

/// `Debug` and `Display` of a guard: those of the data it gives access to.
macro_rules! guard_fmt {
    ($guard:ident) => {
        impl<T: ?Sized + std::fmt::Debug> std::fmt::Debug for $guard<'_, T> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                std::fmt::Debug::fmt(&**self, f)
            }
        }

        impl<T: ?Sized + std::fmt::Display> std::fmt::Display for $guard<'_, T> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                std::fmt::Display::fmt(&**self, f)
            }
        }
    };
}
pub(crate) use guard_fmt;

/// `Debug` of a lock, as std prints one: its data if a non-blocking attempt gets it, and
/// whether it is poisoned.
pub(crate) fn fmt_lock<G: std::ops::Deref>(
    f: &mut std::fmt::Formatter<'_>,
    name: &str,
    attempt: std::sync::TryLockResult<G>,
    poisoned: bool,
) -> std::fmt::Result
where
    G::Target: std::fmt::Debug,
{
    use std::sync::TryLockError;
    let mut d = f.debug_struct(name);
    match attempt {
        Ok(guard) => d.field("data", &&*guard),
        Err(TryLockError::Poisoned(err)) => d.field("data", &&**err.get_ref()),
        Err(TryLockError::WouldBlock) => d.field("data", &format_args!("<locked>")),
    };
    d.field("poisoned", &poisoned).finish_non_exhaustive()
}
