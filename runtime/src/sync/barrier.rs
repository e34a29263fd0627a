//! [`Barrier`] and [`WaitGroup`]: waits for a count, one fixed and reusable, one Go-style.

use std::fmt;
use std::sync::Arc;

use super::queue::{wake_all, WaitQueue};
use super::shim::Lock;
use crate::park::park_with;
use crate::state::ParkKind;

/// A barrier, as [`std::sync::Barrier`]: `n` callers of [`wait`](Barrier::wait) meet, then
/// all go on. The barrier can be reused. Waits park only the calling coroutine.
///
/// ```
/// use std::sync::Arc;
/// use weft::sync::Barrier;
///
/// let barrier = Arc::new(Barrier::new(10));
/// let handles: Vec<_> = (0..10)
///     .map(|_| {
///         let b = barrier.clone();
///         weft::spawn(move || b.wait().is_leader())
///     })
///     .collect();
/// let leaders = handles.into_iter().map(|h| h.join().unwrap()).filter(|&l| l).count();
/// assert_eq!(leaders, 1);
/// ```
pub struct Barrier {
    n: usize,
    state: Lock<BarrierState>,
}

struct BarrierState {
    arrived: usize,
    waiters: WaitQueue<()>,
}

/// What [`Barrier::wait`] returns: whether this caller is the generation's leader.
pub struct BarrierWaitResult(bool);

impl BarrierWaitResult {
    /// True for exactly one caller per generation: the one whose arrival released the rest.
    pub fn is_leader(&self) -> bool {
        self.0
    }
}

impl fmt::Debug for BarrierWaitResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BarrierWaitResult").field("is_leader", &self.0).finish()
    }
}

impl Barrier {
    /// A barrier for `n` callers. With `n` of 0 or 1, `wait` never blocks.
    pub fn new(n: usize) -> Barrier {
        Barrier { n, state: Lock::new(BarrierState { arrived: 0, waiters: WaitQueue::new() }) }
    }

    /// Parks until `n` callers have called `wait` in this generation. The last to arrive
    /// returns at once, as the leader, and releases the rest.
    pub fn wait(&self) -> BarrierWaitResult {
        let mut leader = false;
        park_with(ParkKind::Uninterruptible, None, |waker| {
            let mut s = self.state.lock();
            s.arrived += 1;
            if s.arrived < self.n {
                s.waiters.push_back(waker, ());
                return true;
            }
            s.arrived = 0;
            let rest = s.waiters.take_all();
            drop(s);
            wake_all(rest);
            leader = true;
            false
        });
        // A follower's park ends only by the leader's wake.
        BarrierWaitResult(leader)
    }
}

impl fmt::Debug for Barrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Barrier").field("n", &self.n).finish_non_exhaustive()
    }
}

/// Waits for a group of coroutines to finish, as Go's `sync.WaitGroup`: [`add`](WaitGroup::add)
/// before starting work, [`done`](WaitGroup::done) when each piece ends, and
/// [`wait`](WaitGroup::wait) until the count is back to zero. Clones share one count.
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
/// use weft::sync::WaitGroup;
///
/// let wg = WaitGroup::new();
/// let finished = Arc::new(AtomicUsize::new(0));
/// for _ in 0..10 {
///     wg.add(1);
///     let (wg, finished) = (wg.clone(), finished.clone());
///     weft::spawn(move || {
///         finished.fetch_add(1, Ordering::Relaxed);
///         wg.done();
///     });
/// }
/// wg.wait();
/// assert_eq!(finished.load(Ordering::Relaxed), 10);
/// ```
#[derive(Clone)]
pub struct WaitGroup {
    inner: Arc<Lock<GroupState>>,
}

struct GroupState {
    count: usize,
    waiters: WaitQueue<()>,
}

impl WaitGroup {
    /// A group with a count of zero.
    pub fn new() -> WaitGroup {
        WaitGroup { inner: Arc::new(Lock::new(GroupState { count: 0, waiters: WaitQueue::new() })) }
    }

    /// Adds `n` to the count.
    pub fn add(&self, n: usize) {
        let mut s = self.inner.lock();
        s.count = s.count.checked_add(n).expect("WaitGroup count overflowed");
    }

    /// Subtracts one from the count, releasing the waiters when it reaches zero.
    ///
    /// # Panics
    ///
    /// If the count is already zero: more `done` than `add`.
    pub fn done(&self) {
        let mut s = self.inner.lock();
        s.count = s.count.checked_sub(1).expect("WaitGroup::done called more times than add");
        if s.count == 0 {
            let all = s.waiters.take_all();
            drop(s);
            wake_all(all);
        }
    }

    /// The current count.
    pub fn count(&self) -> usize {
        self.inner.lock().count
    }

    /// Parks until the count is zero; returns at once if it is.
    pub fn wait(&self) {
        park_with(ParkKind::Uninterruptible, None, |waker| {
            let mut s = self.inner.lock();
            if s.count == 0 {
                return false;
            }
            s.waiters.push_back(waker, ());
            true
        });
        // Woken only by the `done` that brought the count to zero.
    }
}

impl Default for WaitGroup {
    fn default() -> WaitGroup {
        WaitGroup::new()
    }
}

impl fmt::Debug for WaitGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WaitGroup").field("count", &self.count()).finish()
    }
}
