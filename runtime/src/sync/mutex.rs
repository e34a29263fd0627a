//! [`Mutex`]: std's mutex, with a wait that parks the coroutine (or the thread).
//!
//! # The lock word and its queue
//!
//! `state` holds `LOCKED` and `QUEUED`; the queue of waiters sits behind a short internal lock.
//! Locking is one compare-exchange `0 → LOCKED`, unlocking one `LOCKED → 0`; either fails over
//! to the slow path only while `QUEUED` is set. `QUEUED` changes only under the queue's lock,
//! and is set whenever the queue is not empty.
//!
//! **No lost wake-up.** A waiter, under the queue's lock, sets `QUEUED` with a read-modify-write
//! and in the same step reads `LOCKED`. If the lock was free, it does not queue and retries. If
//! it was held, the holder's unlock (a read-modify-write of the same word, so ordered after the
//! waiter's) sees `QUEUED`, fails its fast path, and takes the queue's lock, where it finds the
//! waiter's entry.
//!
//! **Fairness.** An unlock normally frees the lock and wakes the first waiter, which then
//! competes with any running locker (barging keeps a busy lock fast: the unlocker can re-lock
//! without a switch). A waiter that loses goes back to the front of the queue. Once the first
//! waiter has waited [`HAND_OFF_AFTER`], the unlock hands the lock to it directly instead: it
//! stays `LOCKED`, and the queue records whose it is. So no waiter waits more than about that
//! long plus one critical section per waiter ahead of it.

use std::cell::UnsafeCell;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};
use std::sync::{LockResult, TryLockError, TryLockResult};
use std::time::{Duration, Instant};

use super::poison::{self, Held};
use super::queue::WaitQueue;
use super::shim::{maybe_const_fn, AtomicU8, Lock};
use crate::park::park_with;
use crate::state::ParkKind;

const LOCKED: u8 = 1;
const QUEUED: u8 = 2;

/// Rounds of exponential spinning (2, 4, 8 pauses) before a contended `lock` parks.
const SPIN_ROUNDS: u32 = 3;

/// How long the first waiter may wait before an unlock hands it the lock directly.
pub(crate) const HAND_OFF_AFTER: Duration = Duration::from_millis(1);

/// Whether an unlock hands the lock to a waiter that first queued at `since`.
fn should_hand_off(since: Instant) -> bool {
    #[cfg(not(loom))]
    return since.elapsed() >= HAND_OFF_AFTER;
    // Time would make a loom model non-deterministic: its models choose.
    #[cfg(loom)]
    {
        let _ = since;
        LOOM_HAND_OFF.with(std::cell::Cell::get)
    }
}

#[cfg(loom)]
std::thread_local! {
    /// Set by a loom model (all its threads run on the test's thread) to explore the hand-off
    /// path instead of the barging one.
    pub(crate) static LOOM_HAND_OFF: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// The lock without the data: the word and the queue.
pub(crate) struct RawMutex {
    state: AtomicU8,
    queue: Lock<MutexQueue>,
}

struct MutexQueue {
    /// Each waiter with the time it first queued.
    waiters: WaitQueue<Instant>,
    /// The waiter the lock was handed to, until it takes it.
    handed_to: Option<u64>,
}

impl RawMutex {
    maybe_const_fn! {
        pub(crate) fn new() -> RawMutex {
            RawMutex {
                state: AtomicU8::new(0),
                queue: Lock::new(MutexQueue { waiters: WaitQueue::new(), handed_to: None }),
            }
        }
    }

    #[inline]
    pub(crate) fn try_lock(&self) -> bool {
        let mut s = self.state.load(Relaxed);
        loop {
            if s & LOCKED != 0 {
                return false;
            }
            match self.state.compare_exchange_weak(s, s | LOCKED, Acquire, Relaxed) {
                Ok(_) => return true,
                Err(now) => s = now,
            }
        }
    }

    #[inline]
    pub(crate) fn lock(&self) {
        if self.state.compare_exchange_weak(0, LOCKED, Acquire, Relaxed).is_err() {
            self.lock_slow();
        }
    }

    #[cold]
    fn lock_slow(&self) {
        let mut first_queued = None;
        let mut spins = 0;
        loop {
            if self.try_lock() {
                return;
            }
            // While no one is queued, the holder is likely running on another worker or thread
            // and about to leave: a few short spins save a park and a cross-thread wake.
            if spins < SPIN_ROUNDS && self.state.load(Relaxed) & QUEUED == 0 {
                spins += 1;
                for _ in 0..1 << spins {
                    std::hint::spin_loop();
                }
                continue;
            }
            let mut queued = None;
            park_with(ParkKind::Uninterruptible, None, |waker| {
                let mut q = self.queue.lock();
                if self.state.fetch_or(QUEUED, AcqRel) & LOCKED == 0 {
                    if q.waiters.is_empty() {
                        self.state.fetch_and(!QUEUED, Relaxed);
                    }
                    return false;
                }
                queued = Some(match first_queued {
                    // It already waited its turn: back to the front, keeping its age.
                    Some(since) => q.waiters.push_front(waker, since),
                    None => {
                        let now = Instant::now();
                        first_queued = Some(now);
                        q.waiters.push_back(waker, now)
                    }
                });
                true
            });
            let Some(id) = queued else { continue };
            // The park ended by the unlock's wake, which took the entry off the queue; the
            // queue says whether it also handed over the lock.
            let mut q = self.queue.lock();
            if q.handed_to == Some(id) {
                q.handed_to = None;
                return;
            }
        }
    }

    /// Releases the lock.
    ///
    /// # Safety
    ///
    /// The caller holds it.
    #[inline]
    pub(crate) unsafe fn unlock(&self) {
        if self.state.compare_exchange(LOCKED, 0, Release, Relaxed).is_err() {
            self.unlock_slow();
        }
    }

    #[cold]
    fn unlock_slow(&self) {
        let mut q = self.queue.lock();
        let Some(first) = q.waiters.pop() else {
            // Unreachable while QUEUED tracks the queue, but harmless: just release.
            self.state.store(0, Release);
            return;
        };
        let rest = if q.waiters.is_empty() { 0 } else { QUEUED };
        // Under the queue's lock nobody else writes the word: lockers cannot take it while
        // LOCKED is set, and QUEUED changes only under this lock.
        if should_hand_off(first.data) {
            q.handed_to = Some(first.id);
            self.state.store(LOCKED | rest, Release);
        } else {
            self.state.store(rest, Release);
        }
        drop(q);
        first.waker.wake();
    }
}

/// A mutual exclusion lock, as [`std::sync::Mutex`], whose `lock` parks only the calling
/// coroutine while another holds it (a plain thread parks itself).
///
/// The guard may be held across any blocking call, a `weft::sleep` or a socket read: the lock
/// belongs to the coroutine, not to the worker thread, so other coroutines on the same worker
/// keep running and simply wait their turn. Poisoning works as std's.
///
/// Lock and unlock without contention are one atomic operation each. Under contention the
/// lock is eventually fair: a waiter that has waited about a millisecond is handed the lock
/// directly at the next unlock.
///
/// ```
/// use std::sync::Arc;
/// use weft::sync::Mutex;
///
/// let counter = Arc::new(Mutex::new(0));
/// let handles: Vec<_> = (0..100)
///     .map(|_| {
///         let counter = counter.clone();
///         weft::spawn(move || {
///             let mut n = counter.lock().unwrap();
///             weft::yield_now(); // holding the guard across a switch is fine
///             *n += 1;
///         })
///     })
///     .collect();
/// for h in handles {
///     h.join().unwrap();
/// }
/// assert_eq!(*counter.lock().unwrap(), 100);
/// ```
pub struct Mutex<T: ?Sized> {
    pub(crate) raw: RawMutex,
    poison: poison::Flag,
    data: UnsafeCell<T>,
}

// SAFETY: the mutex hands out access to `T` to one holder at a time, on any thread, as std's
// does; that needs `T: Send` only.
unsafe impl<T: ?Sized + Send> Send for Mutex<T> {}
// SAFETY: as above.
unsafe impl<T: ?Sized + Send> Sync for Mutex<T> {}

/// The holder's access to a [`Mutex`]'s data; the lock is released when it drops.
#[must_use = "if unused the Mutex will immediately unlock"]
pub struct MutexGuard<'a, T: ?Sized + 'a> {
    pub(crate) lock: &'a Mutex<T>,
    held: Held,
    /// `!Send`, as std's guard.
    _not_send: std::marker::PhantomData<*const ()>,
}

// SAFETY: a shared guard gives only `&T`, as std's guard does.
unsafe impl<T: ?Sized + Sync> Sync for MutexGuard<'_, T> {}

impl<T> Mutex<T> {
    maybe_const_fn! {
        /// A new unlocked mutex holding `t`.
        pub fn new(t: T) -> Mutex<T> {
            Mutex { raw: RawMutex::new(), poison: poison::Flag::new(), data: UnsafeCell::new(t) }
        }
    }

    /// Consumes the mutex and returns its data; `Err` (still with the data) if poisoned.
    pub fn into_inner(self) -> LockResult<T>
    where
        T: Sized,
    {
        let poison = self.poison;
        poison.result(self.data.into_inner())
    }
}

impl<T: ?Sized> Mutex<T> {
    /// Acquires the lock, parking the caller until it is free.
    ///
    /// # Errors
    ///
    /// If a holder panicked while holding it, the guard is returned inside the error.
    pub fn lock(&self) -> LockResult<MutexGuard<'_, T>> {
        self.raw.lock();
        // SAFETY: just acquired.
        unsafe { self.guard() }
    }

    /// Acquires the lock if it is free now.
    ///
    /// # Errors
    ///
    /// `WouldBlock` if it is held, `Poisoned` (with the guard) if it was poisoned.
    pub fn try_lock(&self) -> TryLockResult<MutexGuard<'_, T>> {
        if self.raw.try_lock() {
            // SAFETY: just acquired.
            Ok(unsafe { self.guard() }?)
        } else {
            Err(TryLockError::WouldBlock)
        }
    }

    /// # Safety
    ///
    /// The caller has just acquired `raw`.
    pub(crate) unsafe fn guard(&self) -> LockResult<MutexGuard<'_, T>> {
        let guard =
            MutexGuard { lock: self, held: self.poison.held(), _not_send: Default::default() };
        self.poison.result(guard)
    }

    /// Whether the mutex is poisoned.
    pub fn is_poisoned(&self) -> bool {
        self.poison.get()
    }

    /// Clears the poisoned state.
    pub fn clear_poison(&self) {
        self.poison.clear();
    }

    /// The data, through the exclusive borrow; no locking needed.
    ///
    /// # Errors
    ///
    /// `Err` (still with the reference) if poisoned.
    pub fn get_mut(&mut self) -> LockResult<&mut T> {
        self.poison.result(self.data.get_mut())
    }
}

impl<T: ?Sized> MutexGuard<'_, T> {
    /// Releases the lock without poisoning it, for a wait that gives it up.
    pub(crate) fn unlock_for_wait(&self) {
        // SAFETY: the guard holds the lock; the caller forgets the guard, so it is released
        // once.
        unsafe { self.lock.raw.unlock() }
    }
}

impl<T: ?Sized> Drop for MutexGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        self.lock.poison.release(self.held);
        // SAFETY: the guard holds the lock.
        unsafe { self.lock.raw.unlock() }
    }
}

impl<T: ?Sized> Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard holds the lock, so no one else accesses the data.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T: ?Sized> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`, and `&mut self` makes this the only access through the guard.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        poison::fmt_lock(f, "Mutex", self.try_lock(), self.poison.get())
    }
}

poison::guard_fmt!(MutexGuard);

poison::lock_impls!(Mutex);
