//! [`RwLock`]: std's reader-writer lock, with waits that park the coroutine (or the thread).
//!
//! # The word and the hand-off
//!
//! `state` counts readers in units of `READER` and has `WRITER` and `QUEUED` bits. Without
//! waiters, read and write locks are compare-exchanges on the word. Once anyone waits
//! (`QUEUED`), new `read`/`write` calls queue behind them, and every release that leaves the
//! lock free hands it over in queue order: to the first writer, or to the run of readers at the
//! front. So neither side starves the other. `try_read` still succeeds beside queued waiters
//! while no writer holds the lock, as std's does.
//!
//! **No lost wake-up.** A waiter sets `QUEUED` under the queue's lock after reading that it
//! cannot take the lock. From then on no release takes its fast path: the last reader out and
//! a writer's unlock both see `QUEUED` and go to the queue, and under its lock
//! [`RwLock::grant`] hands the lock to the front. A waiter is woken only once granted, and
//! uninterruptible parks end only by their wake, so a woken waiter holds the lock.

use std::cell::UnsafeCell;
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};
use std::sync::{LockResult, TryLockError, TryLockResult};

use super::poison::{self, Held};
use super::queue::WaitQueue;
use super::shim::{maybe_const_fn, AtomicUsize, Lock};
use crate::park::park_with;
use crate::state::ParkKind;

const WRITER: usize = 1;
const QUEUED: usize = 2;
const READER: usize = 4;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Want {
    Read,
    Write,
}

/// A reader-writer lock, as [`std::sync::RwLock`], whose waits park only the calling
/// coroutine (a plain thread parks itself). Poisoned when a writer panics, as std's.
///
/// ```
/// use weft::sync::RwLock;
///
/// let lock = RwLock::new(5);
/// {
///     let r1 = lock.read().unwrap();
///     let r2 = lock.read().unwrap();
///     assert_eq!(*r1 + *r2, 10);
/// }
/// *lock.write().unwrap() += 1;
/// assert_eq!(*lock.read().unwrap(), 6);
/// ```
pub struct RwLock<T: ?Sized> {
    state: AtomicUsize,
    queue: Lock<WaitQueue<Want>>,
    poison: poison::Flag,
    data: UnsafeCell<T>,
}

// SAFETY: readers on several threads share `&T` (so `T: Sync`), and a writer may be on any
// thread (so `T: Send`), as for std's lock.
unsafe impl<T: ?Sized + Send> Send for RwLock<T> {}
// SAFETY: as above.
unsafe impl<T: ?Sized + Send + Sync> Sync for RwLock<T> {}

/// Shared access to an [`RwLock`]'s data; released on drop.
#[must_use = "if unused the RwLock will immediately unlock"]
pub struct RwLockReadGuard<'a, T: ?Sized + 'a> {
    lock: &'a RwLock<T>,
    _not_send: PhantomData<*const ()>,
}

/// Exclusive access to an [`RwLock`]'s data; released on drop.
#[must_use = "if unused the RwLock will immediately unlock"]
pub struct RwLockWriteGuard<'a, T: ?Sized + 'a> {
    lock: &'a RwLock<T>,
    held: Held,
    _not_send: PhantomData<*const ()>,
}

// SAFETY: shared guards give only `&T`.
unsafe impl<T: ?Sized + Sync> Sync for RwLockReadGuard<'_, T> {}
// SAFETY: as above.
unsafe impl<T: ?Sized + Sync> Sync for RwLockWriteGuard<'_, T> {}

impl<T> RwLock<T> {
    maybe_const_fn! {
        /// A new unlocked lock holding `t`.
        pub fn new(t: T) -> RwLock<T> {
            RwLock {
                state: AtomicUsize::new(0),
                queue: Lock::new(WaitQueue::new()),
                poison: poison::Flag::new(),
                data: UnsafeCell::new(t),
            }
        }
    }

    /// Consumes the lock and returns its data; `Err` (still with the data) if poisoned.
    pub fn into_inner(self) -> LockResult<T>
    where
        T: Sized,
    {
        let poison = self.poison;
        poison.result(self.data.into_inner())
    }
}

impl<T: ?Sized> RwLock<T> {
    /// Acquires shared access, parking the caller while a writer holds or waits for the lock.
    ///
    /// # Errors
    ///
    /// If a writer panicked while holding the lock, the guard is returned inside the error.
    pub fn read(&self) -> LockResult<RwLockReadGuard<'_, T>> {
        let s = self.state.load(Relaxed);
        let fast = s & (WRITER | QUEUED) == 0
            && self.state.compare_exchange_weak(s, s + READER, Acquire, Relaxed).is_ok();
        if !fast {
            self.lock_slow(Want::Read);
        }
        self.poison.result(RwLockReadGuard { lock: self, _not_send: PhantomData })
    }

    /// Acquires exclusive access, parking the caller until no one else holds the lock.
    ///
    /// # Errors
    ///
    /// If a writer panicked while holding the lock, the guard is returned inside the error.
    pub fn write(&self) -> LockResult<RwLockWriteGuard<'_, T>> {
        if self.state.compare_exchange_weak(0, WRITER, Acquire, Relaxed).is_err() {
            self.lock_slow(Want::Write);
        }
        self.write_guard()
    }

    fn write_guard(&self) -> LockResult<RwLockWriteGuard<'_, T>> {
        let guard =
            RwLockWriteGuard { lock: self, held: self.poison.held(), _not_send: PhantomData };
        self.poison.result(guard)
    }

    /// Acquires shared access if no writer holds the lock now.
    ///
    /// # Errors
    ///
    /// `WouldBlock` if a writer holds it, `Poisoned` (with the guard) if it was poisoned.
    pub fn try_read(&self) -> TryLockResult<RwLockReadGuard<'_, T>> {
        let mut s = self.state.load(Relaxed);
        loop {
            if s & WRITER != 0 {
                return Err(TryLockError::WouldBlock);
            }
            match self.state.compare_exchange_weak(s, s + READER, Acquire, Relaxed) {
                Ok(_) => {
                    let guard = RwLockReadGuard { lock: self, _not_send: PhantomData };
                    return Ok(self.poison.result(guard)?);
                }
                Err(now) => s = now,
            }
        }
    }

    /// Acquires exclusive access if no one holds the lock now.
    ///
    /// # Errors
    ///
    /// `WouldBlock` if it is held, `Poisoned` (with the guard) if it was poisoned.
    pub fn try_write(&self) -> TryLockResult<RwLockWriteGuard<'_, T>> {
        let mut s = self.state.load(Relaxed);
        loop {
            if s & (WRITER | !(READER - 1)) != 0 {
                return Err(TryLockError::WouldBlock);
            }
            match self.state.compare_exchange_weak(s, s | WRITER, Acquire, Relaxed) {
                Ok(_) => return Ok(self.write_guard()?),
                Err(now) => s = now,
            }
        }
    }

    /// Whether the lock is poisoned.
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

    /// Takes `want` at once if the lock allows it and no one is queued. Under the queue's
    /// lock, or racing only fast paths.
    fn try_take(&self, want: Want, queue_empty: bool) -> bool {
        let mut s = self.state.load(Relaxed);
        loop {
            let next = match want {
                Want::Read if s & WRITER == 0 && queue_empty => s + READER,
                Want::Write if s & !QUEUED == 0 && queue_empty => s | WRITER,
                _ => return false,
            };
            match self.state.compare_exchange_weak(s, next, Acquire, Relaxed) {
                Ok(_) => return true,
                Err(now) => s = now,
            }
        }
    }

    #[cold]
    fn lock_slow(&self, want: Want) {
        park_with(ParkKind::Uninterruptible, None, |waker| {
            let mut q = self.queue.lock();
            if self.try_take(want, q.is_empty()) {
                return false;
            }
            self.state.fetch_or(QUEUED, AcqRel);
            // The holder may have left between the check and setting QUEUED, on its fast path:
            // then nobody would come to the queue. Take it, or queue and let `grant` decide.
            q.push_back(waker, want);
            self.grant(&mut q);
            true
        });
        // Woken only by `grant`, which took the lock for us.
    }

    /// Hands the lock to the front of the queue while it can; called under the queue's lock
    /// after any change that may have freed it.
    fn grant(&self, q: &mut WaitQueue<Want>) {
        while let Some(first) = q.front() {
            let s = self.state.load(Acquire);
            let next = match first.data {
                Want::Read if s & WRITER == 0 => s + READER,
                Want::Write if s & !QUEUED == 0 => s | WRITER,
                _ => return,
            };
            if self.state.compare_exchange(s, next, AcqRel, Relaxed).is_err() {
                continue;
            }
            let first = q.pop().expect("front exists");
            if q.is_empty() {
                self.state.fetch_and(!QUEUED, Relaxed);
            }
            first.waker.wake();
            if first.data == Want::Write {
                return;
            }
        }
    }

    fn read_unlock(&self) {
        let mut s = self.state.load(Relaxed);
        loop {
            if s & QUEUED != 0 && s & !QUEUED == READER {
                return self.unlock_slow(READER);
            }
            match self.state.compare_exchange_weak(s, s - READER, Release, Relaxed) {
                Ok(_) => return,
                Err(now) => s = now,
            }
        }
    }

    fn write_unlock(&self) {
        if self.state.compare_exchange(WRITER, 0, Release, Relaxed).is_err() {
            self.unlock_slow(WRITER);
        }
    }

    #[cold]
    fn unlock_slow(&self, held: usize) {
        let mut q = self.queue.lock();
        self.state.fetch_sub(held, Release);
        self.grant(&mut q);
    }
}

impl<T: ?Sized> Drop for RwLockReadGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.read_unlock();
    }
}

impl<T: ?Sized> Drop for RwLockWriteGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.poison.release(self.held);
        self.lock.write_unlock();
    }
}

impl<T: ?Sized> Deref for RwLockReadGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: a read guard means no writer holds the lock.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T: ?Sized> Deref for RwLockWriteGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the write guard holds the lock alone.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T: ?Sized> DerefMut for RwLockWriteGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the write guard holds the lock alone, and `&mut self` is its only use.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        poison::fmt_lock(f, "RwLock", self.try_read(), self.poison.get())
    }
}

poison::guard_fmt!(RwLockReadGuard);
poison::guard_fmt!(RwLockWriteGuard);

poison::lock_impls!(RwLock);
