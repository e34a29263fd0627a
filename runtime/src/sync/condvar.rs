//! [`Condvar`]: std's condition variable over [`Mutex`], with waits that park the coroutine.
//!
//! **No lost wake-up.** A waiter queues itself *before* it releases the mutex, inside the
//! park's registration. A notifier changes the condition under the mutex, so it runs after
//! that release, and finds the entry in the queue. `notify_*` take entries off the queue
//! before waking them; a timed-out waiter withdraws its entry under the same lock, so a notify
//! and a timeout never both count for one waiter (see [`super::queue`]).

use std::fmt;
use std::time::{Duration, Instant};

use super::mutex::MutexGuard;
use super::poison::map_result;
use super::queue::{wake_all, WaitQueue};
use super::shim::{maybe_const_fn, Lock};
use crate::park::park_with;
use crate::state::ParkKind;
use std::sync::LockResult;

/// Whether a timed wait on a [`Condvar`] returned because its time ran out.
#[derive(Debug, PartialEq, Eq, Copy, Clone)]
pub struct WaitTimeoutResult(bool);

impl WaitTimeoutResult {
    /// True if the wait ended by its timeout rather than a notification.
    pub fn timed_out(&self) -> bool {
        self.0
    }
}

/// A condition variable, as [`std::sync::Condvar`], for use with [`weft::sync::Mutex`]
/// (`crate::sync::Mutex`). A wait parks only the calling coroutine, or a plain thread.
///
/// Spurious wake-ups are allowed, as with std: wait in a loop, or use
/// [`wait_while`](Condvar::wait_while).
///
/// ```
/// use std::sync::Arc;
/// use weft::sync::{Condvar, Mutex};
///
/// let pair = Arc::new((Mutex::new(false), Condvar::new()));
/// let pair2 = pair.clone();
/// weft::spawn(move || {
///     let (ready, cv) = &*pair2;
///     *ready.lock().unwrap() = true;
///     cv.notify_one();
/// });
/// let (ready, cv) = &*pair;
/// let guard = cv.wait_while(ready.lock().unwrap(), |ready| !*ready).unwrap();
/// assert!(*guard);
/// ```
pub struct Condvar {
    waiters: Lock<WaitQueue<()>>,
}

impl Condvar {
    maybe_const_fn! {
        /// A new condition variable with no waiters.
        pub fn new() -> Condvar {
            Condvar { waiters: Lock::new(WaitQueue::new()) }
        }
    }

    /// Releases the guard's mutex, parks until notified, and re-acquires it.
    ///
    /// # Errors
    ///
    /// If the mutex is poisoned when re-acquired, the guard comes back inside the error.
    pub fn wait<'a, T: ?Sized>(&self, guard: MutexGuard<'a, T>) -> LockResult<MutexGuard<'a, T>> {
        map_result(self.wait_until(guard, None), |(guard, _)| guard)
    }

    /// Waits while `condition` holds for the data, re-checking it after every wake-up.
    ///
    /// # Errors
    ///
    /// As [`wait`](Condvar::wait).
    pub fn wait_while<'a, T: ?Sized, F: FnMut(&mut T) -> bool>(
        &self,
        mut guard: MutexGuard<'a, T>,
        mut condition: F,
    ) -> LockResult<MutexGuard<'a, T>> {
        while condition(&mut *guard) {
            guard = self.wait(guard)?;
        }
        Ok(guard)
    }

    /// As [`wait`](Condvar::wait), but for at most `dur`.
    ///
    /// # Errors
    ///
    /// As [`wait`](Condvar::wait).
    pub fn wait_timeout<'a, T: ?Sized>(
        &self,
        guard: MutexGuard<'a, T>,
        dur: Duration,
    ) -> LockResult<(MutexGuard<'a, T>, WaitTimeoutResult)> {
        self.wait_until(guard, Instant::now().checked_add(dur))
    }

    /// As [`wait_while`](Condvar::wait_while), but for at most `dur` in all. The result says
    /// whether the time ran out with the condition still holding.
    ///
    /// # Errors
    ///
    /// As [`wait`](Condvar::wait).
    pub fn wait_timeout_while<'a, T: ?Sized, F: FnMut(&mut T) -> bool>(
        &self,
        mut guard: MutexGuard<'a, T>,
        dur: Duration,
        mut condition: F,
    ) -> LockResult<(MutexGuard<'a, T>, WaitTimeoutResult)> {
        let deadline = Instant::now().checked_add(dur);
        loop {
            if !condition(&mut *guard) {
                return Ok((guard, WaitTimeoutResult(false)));
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok((guard, WaitTimeoutResult(true)));
            }
            guard = self.wait_until(guard, deadline)?.0;
        }
    }

    fn wait_until<'a, T: ?Sized>(
        &self,
        guard: MutexGuard<'a, T>,
        deadline: Option<Instant>,
    ) -> LockResult<(MutexGuard<'a, T>, WaitTimeoutResult)> {
        let mutex = guard.lock;
        let mut id = 0;
        park_with(ParkKind::Uninterruptible, deadline, |waker| {
            id = self.waiters.lock().push_back(waker, ());
            // Released without poisoning: a wait is not a panic.
            guard.unlock_for_wait();
            std::mem::forget(guard);
            true
        });
        // Still queued means the deadline ended the park, not a notify.
        let timed_out = self.waiters.lock().remove(id).is_some();
        map_result(mutex.lock(), |guard| (guard, WaitTimeoutResult(timed_out)))
    }

    /// Wakes one waiter, if any.
    pub fn notify_one(&self) {
        let first = self.waiters.lock().pop();
        if let Some(first) = first {
            first.waker.wake();
        }
    }

    /// Wakes every waiter.
    pub fn notify_all(&self) {
        let all = self.waiters.lock().take_all();
        wake_all(all);
    }
}

impl Default for Condvar {
    fn default() -> Condvar {
        Condvar::new()
    }
}

impl fmt::Debug for Condvar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Condvar").finish_non_exhaustive()
    }
}
