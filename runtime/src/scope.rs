//! Scoped coroutines, as [`std::thread::scope`]: they may borrow from the caller's stack,
//! because [`scope`] returns only after every one of them has finished.

use std::io;
use std::marker::PhantomData;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{
    AtomicBool, AtomicUsize, Ordering::AcqRel, Ordering::Acquire, Ordering::Relaxed,
};
use std::sync::Arc;
use std::thread;

use parking_lot::Mutex;

use crate::join::{self, Builder, JoinInner};
use crate::park::park_with;
use crate::runtime::current_shared;
use crate::state::ParkKind;
use crate::task::{Coroutine, Waker};

/// What a scope and its coroutines share.
///
/// No lost wake-up: a finishing coroutine decrements `running` and then takes the waiter
/// under `waiter`'s lock; the scope's owner stores its waker under that lock only after
/// re-reading `running` there.
pub(crate) struct ScopeData {
    running: AtomicUsize,
    panicked: AtomicBool,
    waiter: Mutex<Option<Waker>>,
}

impl ScopeData {
    fn increment(&self) {
        self.running.fetch_add(1, Relaxed);
    }

    pub(crate) fn decrement(&self, panicked: bool) {
        if panicked {
            self.panicked.store(true, Relaxed);
        }
        if self.running.fetch_sub(1, AcqRel) == 1 {
            if let Some(waker) = self.waiter.lock().take() {
                waker.wake();
            }
        }
    }

    fn wait_all(&self) {
        while self.running.load(Acquire) != 0 {
            park_with(ParkKind::Uninterruptible, None, |waker| {
                let mut waiter = self.waiter.lock();
                if self.running.load(Acquire) == 0 {
                    return false;
                }
                *waiter = Some(waker);
                true
            });
        }
    }
}

/// A scope to spawn scoped coroutines in; see [`scope`].
pub struct Scope<'scope, 'env: 'scope> {
    data: Arc<ScopeData>,
    scope: PhantomData<&'scope mut &'scope ()>,
    env: PhantomData<&'env mut &'env ()>,
}

/// A handle to join a scoped coroutine with.
pub struct ScopedJoinHandle<'scope, T> {
    inner: JoinInner<'scope, T>,
}

/// Creates a scope for spawning coroutines that borrow from the caller, as
/// [`std::thread::scope`] does for threads.
///
/// Every coroutine spawned in the scope is joined before `scope` returns. If one of them
/// panicked and was not joined, `scope` panics once they are all done.
///
/// ```
/// let mut totals = [0u64; 4];
/// let data: Vec<u64> = (1..=100).collect();
/// weft::scope(|s| {
///     for (chunk, total) in data.chunks(25).zip(totals.iter_mut()) {
///         s.spawn(move || *total = chunk.iter().sum());
///     }
/// });
/// assert_eq!(totals.iter().sum::<u64>(), 5050);
/// ```
#[track_caller]
pub fn scope<'env, F, T>(f: F) -> T
where
    F: for<'scope> FnOnce(&'scope Scope<'scope, 'env>) -> T,
{
    let data = Arc::new(ScopeData {
        running: AtomicUsize::new(0),
        panicked: AtomicBool::new(false),
        waiter: Mutex::new(None),
    });
    let scope = Scope { data: data.clone(), scope: PhantomData, env: PhantomData };
    let result = panic::catch_unwind(AssertUnwindSafe(|| f(&scope)));
    data.wait_all();
    match result {
        Err(payload) => panic::resume_unwind(payload),
        Ok(_) if data.panicked.load(Relaxed) => panic!("a scoped coroutine panicked"),
        Ok(value) => value,
    }
}

impl<'scope> Scope<'scope, '_> {
    /// Spawns a scoped coroutine, which may borrow anything that outlives the scope.
    ///
    /// # Panics
    ///
    /// If no stack can be mapped; [`Builder::spawn_scoped`] returns that error instead.
    ///
    /// ```
    /// let name = String::from("weft");
    /// weft::scope(|s| {
    ///     let h = s.spawn(|| name.len());
    ///     assert_eq!(h.join().unwrap(), 4);
    /// });
    /// ```
    pub fn spawn<F, T>(&'scope self, f: F) -> ScopedJoinHandle<'scope, T>
    where
        F: FnOnce() -> T + Send + 'scope,
        T: Send + 'scope,
    {
        Builder::new()
            .spawn_scoped(self, f)
            .unwrap_or_else(|e| panic!("weft: failed to spawn scoped coroutine: {e}"))
    }
}

impl Builder {
    /// Spawns a scoped coroutine with this builder's settings; see [`Scope::spawn`].
    ///
    /// # Errors
    ///
    /// As [`Builder::spawn`].
    ///
    /// ```
    /// let v = vec![1, 2, 3];
    /// weft::scope(|s| {
    ///     let h = weft::Builder::new().name("summer".into()).spawn_scoped(s, || v.iter().sum::<i32>())?;
    ///     assert_eq!(h.join().unwrap(), 6);
    ///     Ok::<(), std::io::Error>(())
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn spawn_scoped<'scope, 'env, F, T>(
        self,
        scope: &'scope Scope<'scope, 'env>,
        f: F,
    ) -> io::Result<ScopedJoinHandle<'scope, T>>
    where
        F: FnOnce() -> T + Send + 'scope,
        T: Send + 'scope,
    {
        let shared = current_shared();
        scope.data.increment();
        // SAFETY: the packet carries the scope, and `scope` waits (uninterruptibly) until every
        // packet of it is dropped, which happens only after its coroutine finished; the borrows
        // live at least as long as 'scope, which outlives that wait.
        let spawned = unsafe { join::spawn_unchecked(&shared, self, Some(scope.data.clone()), f) };
        match spawned {
            Ok(inner) => Ok(ScopedJoinHandle { inner }),
            Err(e) => {
                scope.data.decrement(false);
                Err(e)
            }
        }
    }
}

impl<T> ScopedJoinHandle<'_, T> {
    /// Waits for the coroutine to finish, as [`JoinHandle::join`](crate::JoinHandle::join).
    pub fn join(self) -> thread::Result<T> {
        self.inner.wait()
    }

    /// Whether the coroutine has finished running its function.
    pub fn is_finished(&self) -> bool {
        self.inner.is_finished()
    }

    /// The coroutine's handle.
    pub fn coroutine(&self) -> &Coroutine {
        self.inner.coroutine()
    }
}

impl std::fmt::Debug for Scope<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scope")
            .field("running", &self.data.running.load(Relaxed))
            .finish_non_exhaustive()
    }
}

impl<T> std::fmt::Debug for ScopedJoinHandle<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScopedJoinHandle")
            .field("coroutine", self.coroutine())
            .finish_non_exhaustive()
    }
}
