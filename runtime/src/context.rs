//! The runtime's only thread-locals.
//!
//! A coroutine can move between threads while it is suspended (in the opt-in migration mode),
//! and the compiler is free to keep a thread-local's address in a register across a call that
//! switches stacks. Code that read a thread-local before a switch and wrote through the same
//! address after it would then touch the old thread's slot. So every access goes through a
//! function here that is `#[inline(never)]`, computes the address afresh, and never switches
//! coroutines while it holds it.
//!
//! Both slots are `const`-initialised `Cell`s of raw pointers: no lazy initialisation and no
//! destructor, so the stack-overflow signal handler may read [`current_task_ptr`] too.

use std::cell::{Cell, RefCell};
use std::ptr;
use std::sync::Arc;

use crate::runtime::Shared;
use crate::task::{Task, ThreadInner};
use crate::worker::Local;

#[cfg(loom)]
pub(crate) use loom::thread::{current as os_current, park as os_park, Thread as OsThread};
/// The OS-thread handle type and calls a parked plain thread uses; loom's own under loom, so
/// that the `weft::sync` models run the real thread-park path.
#[cfg(not(loom))]
pub(crate) use std::thread::{current as os_current, park as os_park, Thread as OsThread};

/// `park_timeout` for a plain thread. loom has no timed park; its models use no deadlines.
pub(crate) fn os_park_timeout(dur: std::time::Duration) {
    #[cfg(not(loom))]
    std::thread::park_timeout(dur);
    #[cfg(loom)]
    {
        let _ = dur;
        loom::thread::park();
    }
}

#[cfg(loom)]
loom::thread_local! {
    static THREAD: RefCell<Option<Arc<ThreadInner>>> = RefCell::new(None);
}

thread_local! {
    /// The coroutine this worker thread is running, or null on the worker's own stack and on
    /// every thread that is not a worker.
    static TASK: Cell<*const Task> = const { Cell::new(ptr::null()) };
    /// The worker whose loop runs on this thread, or null.
    static WORKER: Cell<*const Local> = const { Cell::new(ptr::null()) };
    /// The weft identity of a plain thread, made on first use; a `spawn_blocking` job swaps
    /// in its own while it runs. (Under loom, a loom thread-local above.)
    #[cfg(not(loom))]
    static THREAD: RefCell<Option<Arc<ThreadInner>>> = const { RefCell::new(None) };
    /// The runtime a `spawn_blocking` pool thread belongs to.
    static BLOCKING_RUNTIME: RefCell<Option<Arc<Shared>>> = const { RefCell::new(None) };
}

/// The running coroutine, if the caller is one.
#[inline(never)]
pub(crate) fn current_task_ptr() -> *const Task {
    TASK.with(Cell::get)
}

/// Set by the worker around each resume, on its own stack.
#[inline(never)]
pub(crate) fn set_current_task(task: *const Task) {
    TASK.with(|c| c.set(task));
}

/// The worker running on this thread, if any. Coroutines see the worker they run on now.
#[inline(never)]
pub(crate) fn current_worker_ptr() -> *const Local {
    WORKER.with(Cell::get)
}

/// Set once by a worker thread when its loop starts, and cleared when it ends.
#[inline(never)]
pub(crate) fn set_current_worker(worker: *const Local) {
    WORKER.with(|c| c.set(worker));
}

/// The weft identity of the calling plain thread.
#[inline(never)]
pub(crate) fn current_thread() -> Arc<ThreadInner> {
    THREAD.with(|t| {
        t.borrow_mut().get_or_insert_with(|| Arc::new(ThreadInner::for_current_thread())).clone()
    })
}

/// Replaces the calling thread's weft identity, returning the previous one.
#[inline(never)]
pub(crate) fn replace_current_thread(with: Option<Arc<ThreadInner>>) -> Option<Arc<ThreadInner>> {
    THREAD.with(|t| t.replace(with))
}

/// The runtime of the `spawn_blocking` pool thread calling, if it is one.
#[inline(never)]
pub(crate) fn blocking_runtime() -> Option<Arc<Shared>> {
    BLOCKING_RUNTIME.with(|r| r.borrow().clone())
}

/// Marks the calling thread as a pool thread of `shared` (or clears that).
#[inline(never)]
pub(crate) fn set_blocking_runtime(shared: Option<Arc<Shared>>) {
    BLOCKING_RUNTIME.with(|r| *r.borrow_mut() = shared);
}
