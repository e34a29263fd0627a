//! [`Semaphore`]: counted permits, handed out in FIFO order.
//!
//! `state` is the number of free permits shifted left by one, with `QUEUED` in bit 0. Without
//! waiters, acquire and release are compare-exchanges on it. Once anyone waits, acquirers queue
//! behind them and releases go through the queue, where [`Semaphore::grant`] hands permits to
//! the front in order. The lost-wake-up argument is the one of [`super::rwlock`]: `QUEUED` is
//! set under the queue's lock before a waiter parks, and from then on every release sees it.
//! A timed-out waiter withdraws its entry under that lock; if the entry is gone, the grant won
//! the race and the waiter keeps the permit (see [`super::queue`]).

use std::fmt;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};
use std::time::{Duration, Instant};

use super::queue::WaitQueue;
use super::shim::{maybe_const_fn, AtomicUsize, Lock};
use crate::park::park_with;
use crate::state::ParkKind;

const QUEUED: usize = 1;
const PERMIT: usize = 2;

/// A counting semaphore whose waits park only the calling coroutine (or a plain thread).
/// Permits go to waiters in the order they came; a [`SemaphorePermit`] returns its permit when
/// dropped.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use weft::sync::Semaphore;
///
/// let sem = Arc::new(Semaphore::new(2));
/// let a = sem.acquire();
/// let b = sem.try_acquire().expect("a second permit is free");
/// assert!(sem.try_acquire().is_none());
/// assert!(sem.acquire_timeout(Duration::from_millis(5)).is_none());
/// drop(a);
/// assert_eq!(sem.available_permits(), 1);
/// # drop(b);
/// ```
pub struct Semaphore {
    state: AtomicUsize,
    queue: Lock<WaitQueue<()>>,
}

/// One permit of a [`Semaphore`], returned on drop.
#[must_use = "the permit is released at once if unused"]
pub struct SemaphorePermit<'a> {
    sem: &'a Semaphore,
}

impl Semaphore {
    maybe_const_fn! {
        /// A semaphore with `permits` free permits.
        ///
        /// # Panics
        ///
        /// If `permits` exceeds `usize::MAX / 2`.
        pub fn new(permits: usize) -> Semaphore {
            assert!(permits <= usize::MAX / PERMIT, "too many permits");
            Semaphore { state: AtomicUsize::new(permits * PERMIT), queue: Lock::new(WaitQueue::new()) }
        }
    }

    /// The number of free permits now.
    pub fn available_permits(&self) -> usize {
        self.state.load(Relaxed) / PERMIT
    }

    /// Takes a permit if one is free and no one waits for it.
    pub fn try_acquire(&self) -> Option<SemaphorePermit<'_>> {
        self.try_take(false).then(|| SemaphorePermit { sem: self })
    }

    /// `queue_empty`: the caller holds the queue's lock and found it empty, so it may take a
    /// permit past a stale `QUEUED`.
    fn try_take(&self, queue_empty: bool) -> bool {
        let mut s = self.state.load(Relaxed);
        loop {
            if s < PERMIT || (s & QUEUED != 0 && !queue_empty) {
                return false;
            }
            match self.state.compare_exchange_weak(s, s - PERMIT, Acquire, Relaxed) {
                Ok(_) => return true,
                Err(now) => s = now,
            }
        }
    }

    /// Takes a permit, parking until one is free.
    pub fn acquire(&self) -> SemaphorePermit<'_> {
        if !self.try_take(false) {
            let granted = self.acquire_slow(None);
            debug_assert!(granted, "an acquire without a deadline ends only granted");
        }
        SemaphorePermit { sem: self }
    }

    /// Takes a permit, parking for at most `timeout`; `None` if none came in time.
    pub fn acquire_timeout(&self, timeout: Duration) -> Option<SemaphorePermit<'_>> {
        let granted =
            self.try_take(false) || self.acquire_slow(Instant::now().checked_add(timeout));
        granted.then(|| SemaphorePermit { sem: self })
    }

    #[cold]
    fn acquire_slow(&self, deadline: Option<Instant>) -> bool {
        let mut queued = None;
        park_with(ParkKind::Uninterruptible, deadline, |waker| {
            let mut q = self.queue.lock();
            if self.try_take(q.is_empty()) {
                return false;
            }
            self.state.fetch_or(QUEUED, AcqRel);
            queued = Some(q.push_back(waker, ()));
            // A release may have come between the check and QUEUED, on its fast path.
            self.grant(&mut q);
            true
        });
        let Some(id) = queued else { return true };
        if deadline.is_none() {
            // Woken only by `grant`.
            return true;
        }
        let mut q = self.queue.lock();
        if q.remove(id).is_none() {
            return true;
        }
        if q.is_empty() {
            self.state.fetch_and(!QUEUED, Relaxed);
        }
        false
    }

    /// Hands free permits to the front of the queue; under the queue's lock.
    fn grant(&self, q: &mut WaitQueue<()>) {
        while q.front().is_some() {
            let s = self.state.load(Acquire);
            if s < PERMIT {
                return;
            }
            if self.state.compare_exchange(s, s - PERMIT, AcqRel, Relaxed).is_err() {
                continue;
            }
            let first = q.pop().expect("front exists");
            if q.is_empty() {
                self.state.fetch_and(!QUEUED, Relaxed);
            }
            first.waker.wake();
        }
    }

    /// Adds `n` permits, waking waiters they satisfy.
    ///
    /// # Panics
    ///
    /// If the count would exceed `usize::MAX / 2`.
    pub fn add_permits(&self, n: usize) {
        let add = n.checked_mul(PERMIT).expect("too many permits");
        let mut s = self.state.load(Relaxed);
        loop {
            if s & QUEUED != 0 {
                let mut q = self.queue.lock();
                let prev = self.state.fetch_add(add, Release);
                assert!(prev.checked_add(add).is_some(), "too many permits");
                self.grant(&mut q);
                return;
            }
            let next = s.checked_add(add).expect("too many permits");
            match self.state.compare_exchange_weak(s, next, Release, Relaxed) {
                Ok(_) => return,
                Err(now) => s = now,
            }
        }
    }
}

impl SemaphorePermit<'_> {
    /// Keeps the permit taken for good: dropping it no longer returns it.
    pub fn forget(self) {
        std::mem::forget(self);
    }
}

impl Drop for SemaphorePermit<'_> {
    fn drop(&mut self) {
        self.sem.add_permits(1);
    }
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Semaphore").field("permits", &self.available_permits()).finish()
    }
}

impl fmt::Debug for SemaphorePermit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SemaphorePermit").finish_non_exhaustive()
    }
}
