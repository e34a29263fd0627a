//! Parking the caller, coroutine or plain thread, through the one state-word protocol; and the
//! public functions built directly on it: `park`, `park_timeout`, `sleep`, `yield_now`,
//! `current`, `is_coroutine`.
//!
//! Every wait in weft ends up in [`park_with`]: the caller says what kind of wait it is, an
//! optional deadline, and how to publish its [`Waker`]. In a coroutine the park is committed by
//! the worker after the switch (see [`crate::state`]); on a plain thread the thread commits it
//! itself and sleeps in `std::thread::park`, re-checking the state word after every return, so a
//! stray `std::thread::unpark` only causes a spurious loop.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::context;
use crate::state::{Commit, NoPark, ParkKind};
use crate::task::{Coroutine, Inner, Suspend, Task, Waker};

/// How a park ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Woke {
    /// A wake, a timeout, or the registration found nothing to wait for. Callers re-check.
    Woken,
    /// `park()` found the unpark token.
    Token,
    /// The runtime is shutting down and the wait was interruptible.
    Cancelled,
}

/// Parks the caller until a wake of this park, the deadline, or (unless `kind` is
/// uninterruptible) cancellation. `register` publishes the waker; returning false means the
/// condition already holds, and the caller does not park.
pub(crate) fn park_with(
    kind: ParkKind,
    deadline: Option<Instant>,
    register: impl FnOnce(Waker) -> bool,
) -> Woke {
    park_inner(kind, deadline, Some(register))
}

/// Parks with no waker but the deadline (and, for [`ParkKind::User`], `unpark`).
pub(crate) fn park_until(kind: ParkKind, deadline: Option<Instant>) -> Woke {
    park_inner::<fn(Waker) -> bool>(kind, deadline, None)
}

fn park_inner<F: FnOnce(Waker) -> bool>(
    kind: ParkKind,
    deadline: Option<Instant>,
    register: Option<F>,
) -> Woke {
    let task = context::current_task_ptr();
    if task.is_null() {
        park_thread(kind, deadline, register)
    } else {
        // SAFETY: a non-null current task is the coroutine running this code; its worker holds
        // an `Arc` to it for as long as it runs.
        park_task(unsafe { task_arc(task) }, kind, deadline, register)
    }
}

/// An owned reference to the running task.
///
/// # Safety
///
/// `task` is `context::current_task_ptr()` and not null.
pub(crate) unsafe fn task_arc(task: *const Task) -> Arc<Task> {
    // SAFETY: the pointer came from `Arc::as_ptr` of an `Arc` the worker keeps alive while the
    // task runs, so adding a strong count and adopting it is sound.
    unsafe {
        Arc::increment_strong_count(task);
        Arc::from_raw(task)
    }
}

fn park_task<F: FnOnce(Waker) -> bool>(
    task: Arc<Task>,
    kind: ParkKind,
    deadline: Option<Instant>,
    register: Option<F>,
) -> Woke {
    let gen = match task.state.begin_park(kind) {
        Ok(gen) => gen,
        Err(NoPark::Token) => return Woke::Token,
        Err(NoPark::Cancelled) => {
            // Give the worker to the others before returning: a loop that polls with `sleep`
            // or `park` would otherwise spin without a switch, starving the coroutine it waits
            // for, and shutdown with it.
            suspend(&task, Suspend::Yield);
            return Woke::Cancelled;
        }
    };
    if let Some(register) = register {
        if !register(Waker::Task(task.clone(), gen)) {
            return Woke::Woken;
        }
    }
    if let Some(deadline) = deadline {
        crate::worker::add_timer(deadline, task.clone(), gen);
    }
    let cancelled = suspend(&task, Suspend::Park);
    if cancelled && kind != ParkKind::Uninterruptible {
        Woke::Cancelled
    } else {
        Woke::Woken
    }
}

/// Switches to the worker with `request`; returns whether the resume said "cancelled".
fn suspend(task: &Task, request: Suspend) -> bool {
    let probe = 0u8;
    let depth = black_box(&probe) as *const u8 as usize;
    if depth < task.low_water.get() {
        task.low_water.set(depth);
    }
    // SAFETY: `task` is the running coroutine, which is the caller.
    let yielder = unsafe { task.yielder() };
    yielder.suspend(request).cancelled
}

fn park_thread<F: FnOnce(Waker) -> bool>(
    kind: ParkKind,
    deadline: Option<Instant>,
    register: Option<F>,
) -> Woke {
    let me = context::current_thread();
    let gen = match me.state.begin_park(kind) {
        Ok(gen) => gen,
        Err(NoPark::Token) => return Woke::Token,
        Err(NoPark::Cancelled) => return Woke::Cancelled,
    };
    if let Some(register) = register {
        if !register(Waker::Thread(me.clone(), gen)) {
            return Woke::Woken;
        }
    }
    if me.state.commit_park() == Commit::Requeue {
        me.state.start_running();
        return Woke::Woken;
    }
    // No wake is lost: a waker changes the state word before it unparks the thread, and the
    // loop re-reads the word after every return from `park`.
    loop {
        if !me.state.is_parked() {
            me.state.start_running();
            return Woke::Woken;
        }
        match deadline {
            None => context::os_park(),
            Some(deadline) => {
                let now = Instant::now();
                if now >= deadline {
                    me.state.withdraw();
                    return Woke::Woken;
                }
                context::os_park_timeout(deadline - now);
            }
        }
    }
}

/// Blocks until the current coroutine's unpark token is available, as [`std::thread::park`].
///
/// Call [`Coroutine::unpark`] on its handle to wake it. As with std, the call may also return
/// spuriously, so use it in a loop that checks a condition. On a plain thread it parks the
/// thread. While the coroutine's runtime shuts down, `park` returns at once.
///
/// ```
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use std::sync::Arc;
///
/// let flag = Arc::new(AtomicBool::new(false));
/// let f = flag.clone();
/// let parked = weft::spawn(move || {
///     while !f.load(Ordering::Acquire) {
///         weft::park();
///     }
/// });
/// flag.store(true, Ordering::Release);
/// parked.coroutine().unpark();
/// parked.join().unwrap();
/// ```
pub fn park() {
    park_until(ParkKind::User, None);
}

/// Like [`park`], but returns after `dur` at the latest, as [`std::thread::park_timeout`].
///
/// ```
/// use std::time::{Duration, Instant};
///
/// let start = Instant::now();
/// weft::park_timeout(Duration::from_millis(10));
/// // Without an unpark, it returns on time (or spuriously early, as std allows).
/// assert!(start.elapsed() < Duration::from_secs(5));
/// ```
pub fn park_timeout(dur: Duration) {
    park_until(ParkKind::User, Instant::now().checked_add(dur));
}

/// Puts the current coroutine to sleep for at least `dur`, as [`std::thread::sleep`]; the worker
/// runs other coroutines meanwhile. On a plain thread it sleeps the thread.
///
/// It never returns early, except while the coroutine's runtime shuts down, when it returns at
/// once so the coroutine can finish.
///
/// ```
/// use std::time::{Duration, Instant};
///
/// let slept = weft::spawn(|| {
///     let start = Instant::now();
///     weft::sleep(Duration::from_millis(20));
///     start.elapsed()
/// });
/// assert!(slept.join().unwrap() >= Duration::from_millis(20));
/// ```
pub fn sleep(dur: Duration) {
    sleep_unless_cancelled(dur);
}

/// [`sleep`], saying how it ended: `Woke::Cancelled` if the runtime's shutdown cut it short.
pub(crate) fn sleep_unless_cancelled(dur: Duration) -> Woke {
    if !is_coroutine() {
        std::thread::sleep(dur);
        return Woke::Woken;
    }
    let deadline = Instant::now().checked_add(dur);
    loop {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Woke::Woken;
        }
        if park_until(ParkKind::Interruptible, deadline) == Woke::Cancelled {
            return Woke::Cancelled;
        }
    }
}

/// Gives the worker to the other ready coroutines; this one runs again after them. On a plain
/// thread it calls [`std::thread::yield_now`].
///
/// ```
/// let h = weft::spawn(|| {
///     for _ in 0..3 {
///         weft::yield_now();
///     }
///     7
/// });
/// assert_eq!(h.join().unwrap(), 7);
/// ```
pub fn yield_now() {
    let task = context::current_task_ptr();
    if task.is_null() {
        std::thread::yield_now();
        return;
    }
    // SAFETY: a non-null current task is the running coroutine, kept alive by its worker.
    suspend(unsafe { &*task }, Suspend::Yield);
}

/// A handle to the calling coroutine, or, on a plain thread, to that thread.
///
/// ```
/// let h = weft::Builder::new()
///     .name("worker".into())
///     .spawn(|| weft::current().name().map(str::to_owned))?;
/// assert_eq!(h.join().unwrap().as_deref(), Some("worker"));
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn current() -> Coroutine {
    let task = context::current_task_ptr();
    if task.is_null() {
        Coroutine { inner: Inner::Thread(context::current_thread()) }
    } else {
        // SAFETY: non-null, so it is the running coroutine.
        Coroutine { inner: Inner::Task(unsafe { task_arc(task) }) }
    }
}

/// Whether the caller is a weft coroutine (as opposed to a plain thread).
///
/// ```
/// assert!(!weft::is_coroutine());
/// assert!(weft::spawn(weft::is_coroutine).join().unwrap());
/// ```
pub fn is_coroutine() -> bool {
    !context::current_task_ptr().is_null()
}
