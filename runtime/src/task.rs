//! A coroutine's shared record ([`Task`]), the user-facing handle ([`Coroutine`]) and the
//! [`Waker`] that every blocking primitive stores to end a park.
//!
//! A `Task` is shared (`Arc`) between the run queues, its wakers, the runtime's registry and
//! user handles; the corosensei coroutine inside it is not. Who may touch what:
//!
//! - `state` is the park word of [`crate::state`]; anyone may run its transitions.
//! - `coro` and `yielder` belong to whoever holds the RUNNING state: the worker that popped the
//!   task and resumes it, and the coroutine itself while it runs. Nobody else reads them.
//! - `home` is written by the worker that first starts the task (and, in migration mode, by the
//!   worker that resumes it), before the task can be woken, and read by wakers.
//! - everything else is fixed at spawn.

use std::cell::{Cell, UnsafeCell};
use std::fmt;
use std::num::NonZeroU64;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};

use crate::runtime::Shared;
use crate::stack::PooledStack;
use crate::state::State;

/// What a worker passes into a coroutine when it resumes it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Resume {
    /// The runtime is shutting down; interruptible waits should end.
    pub(crate) cancelled: bool,
}

/// What a coroutine asks of its worker when it suspends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Suspend {
    /// Commit the park begun with [`State::begin_park`].
    Park,
    /// Queue me again behind the other ready work.
    Yield,
}

pub(crate) type Coro = corosensei::Coroutine<Resume, Suspend, (), PooledStack>;
pub(crate) type Yielder = corosensei::Yielder<Resume, Suspend>;

/// `home` of a task no worker has started yet.
pub(crate) const NOT_STARTED: usize = usize::MAX;

/// A unique identifier of a coroutine (or of a plain thread using weft), as
/// `std::thread::ThreadId` is for threads. Identifiers are never reused.
///
/// ```
/// let a = weft::spawn(|| weft::current().id()).join().unwrap();
/// let b = weft::spawn(|| weft::current().id()).join().unwrap();
/// assert_ne!(a, b);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CoroutineId(NonZeroU64);

/// The next identifier no one has; workers take them [`ID_BLOCK`] at a time.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);
/// Identifiers a worker reserves at once, so spawns on different workers do not contend on
/// `NEXT_ID`.
pub(crate) const ID_BLOCK: u64 = 1024;

impl CoroutineId {
    pub(crate) fn next() -> CoroutineId {
        CoroutineId::from_u64(NEXT_ID.fetch_add(1, Relaxed))
    }

    /// Reserves [`ID_BLOCK`] identifiers; returns the first.
    pub(crate) fn reserve_block() -> u64 {
        NEXT_ID.fetch_add(ID_BLOCK, Relaxed)
    }

    pub(crate) fn from_u64(id: u64) -> CoroutineId {
        CoroutineId(NonZeroU64::new(id).expect("coroutine ids never wrap"))
    }

    /// The identifier as a number.
    pub fn as_u64(&self) -> NonZeroU64 {
        self.0
    }
}

/// The runtime's record of one coroutine.
pub(crate) struct Task {
    pub(crate) state: State,
    pub(crate) id: CoroutineId,
    pub(crate) name: Option<String>,
    pub(crate) shared: Arc<Shared>,
    /// The worker it runs on once started, or [`NOT_STARTED`].
    pub(crate) home: AtomicUsize,
    /// Its slot in the runtime's registry of live tasks.
    pub(crate) registry_key: AtomicUsize,
    /// Guard range and usable size of its stack, for the overflow report.
    pub(crate) guard: (usize, usize),
    pub(crate) stack_size: usize,
    coro: UnsafeCell<Option<Coro>>,
    yielder: Cell<*const Yielder>,
    /// Lowest stack address seen at a switch, so a stack that went deep is trimmed.
    pub(crate) low_water: Cell<usize>,
}

// SAFETY: `coro` and `yielder` are only touched by the holder of the RUNNING state (see the
// module docs), which the state word hands from thread to thread with AcqRel transitions; the
// coroutine they hold stays on its home worker unless the runtime was built with the unsafe
// migration opt-in, whose contract makes moving it sound. All other fields are Sync.
unsafe impl Send for Task {}
// SAFETY: as above.
unsafe impl Sync for Task {}

impl Task {
    pub(crate) fn new(
        shared: Arc<Shared>,
        id: CoroutineId,
        name: Option<String>,
        stack: &PooledStack,
    ) -> Task {
        Task {
            state: State::new_queued(),
            id,
            name,
            shared,
            home: AtomicUsize::new(NOT_STARTED),
            registry_key: AtomicUsize::new(usize::MAX),
            guard: stack.guard(),
            stack_size: stack.size(),
            coro: UnsafeCell::new(None),
            yielder: Cell::new(std::ptr::null()),
            low_water: Cell::new(usize::MAX),
        }
    }

    /// A task with no coroutine, for unit tests of the parts around it.
    #[cfg(test)]
    pub(crate) fn new_detached_for_tests(shared: Arc<Shared>) -> Task {
        Task {
            state: State::new_queued(),
            id: CoroutineId::next(),
            name: None,
            shared,
            home: AtomicUsize::new(0),
            registry_key: AtomicUsize::new(usize::MAX),
            guard: (0, 0),
            stack_size: 0,
            coro: UnsafeCell::new(None),
            yielder: Cell::new(std::ptr::null()),
            low_water: Cell::new(usize::MAX),
        }
    }

    /// Installs the coroutine, before the task is shared.
    pub(crate) fn set_coro(&mut self, coro: Coro) {
        *self.coro.get_mut() = Some(coro);
    }

    /// The coroutine, for the worker that holds the RUNNING state.
    ///
    /// # Safety
    ///
    /// The caller holds the RUNNING state of this task (or is dropping the last reference), so
    /// no other reference to the coroutine exists.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn coro(&self) -> &mut Option<Coro> {
        // SAFETY: exclusive by the caller's promise.
        unsafe { &mut *self.coro.get() }
    }

    /// Called by the coroutine itself when it starts, with its yielder's address.
    pub(crate) fn set_yielder(&self, yielder: &Yielder) {
        self.yielder.set(yielder);
    }

    /// The yielder, for the running coroutine itself.
    ///
    /// # Safety
    ///
    /// The caller is this task's coroutine, running; the yielder lives on its stack.
    pub(crate) unsafe fn yielder(&self) -> &Yielder {
        // SAFETY: set when the coroutine started; it lives as long as the coroutine's stack
        // frame, and the caller runs inside that frame.
        unsafe { &*self.yielder.get() }
    }

    pub(crate) fn name_or_unnamed(&self) -> &str {
        self.name.as_deref().unwrap_or("<unnamed>")
    }
}

impl fmt::Debug for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Task").field("id", &self.id).field("name", &self.name).finish()
    }
}

/// A plain thread (or a `spawn_blocking` job) that uses weft: its identity and its parker.
pub(crate) struct ThreadInner {
    pub(crate) id: CoroutineId,
    pub(crate) name: Option<String>,
    pub(crate) state: State,
    /// The thread to unpark; a `spawn_blocking` job learns it when a pool thread takes it up.
    pub(crate) thread: OnceLock<crate::context::OsThread>,
}

impl ThreadInner {
    pub(crate) fn for_current_thread() -> ThreadInner {
        let thread = crate::context::os_current();
        let inner = ThreadInner::unbound(thread.name().map(str::to_owned));
        let _ = inner.thread.set(thread);
        inner
    }

    /// For a job that has not found its thread yet.
    pub(crate) fn unbound(name: Option<String>) -> ThreadInner {
        ThreadInner {
            id: CoroutineId::next(),
            name,
            state: State::new_running(),
            thread: OnceLock::new(),
        }
    }

    pub(crate) fn unpark_thread(&self) {
        if let Some(thread) = self.thread.get() {
            thread.unpark();
        }
    }
}

/// A handle to a coroutine, as [`std::thread::Thread`] is to a thread.
///
/// Get one from [`current`](crate::current) or [`JoinHandle::coroutine`](crate::JoinHandle).
/// On a plain thread, `current()` returns a handle for that thread, so [`park`](crate::park)
/// and [`Coroutine::unpark`] work there too.
///
/// ```
/// let handle = weft::spawn(|| {
///     weft::park();
///     "unparked"
/// });
/// handle.coroutine().unpark();
/// assert_eq!(handle.join().unwrap(), "unparked");
/// ```
#[derive(Clone)]
pub struct Coroutine {
    pub(crate) inner: Inner,
}

#[derive(Clone)]
pub(crate) enum Inner {
    Task(Arc<Task>),
    Thread(Arc<ThreadInner>),
}

impl Coroutine {
    /// Its unique identifier.
    pub fn id(&self) -> CoroutineId {
        match &self.inner {
            Inner::Task(t) => t.id,
            Inner::Thread(t) => t.id,
        }
    }

    /// Its name, if it was given one with [`Builder::name`](crate::Builder::name). On a plain
    /// thread, the thread's name.
    pub fn name(&self) -> Option<&str> {
        match &self.inner {
            Inner::Task(t) => t.name.as_deref(),
            Inner::Thread(t) => t.name.as_deref(),
        }
    }

    /// Makes the unpark token available, waking the coroutine if it is parked in
    /// [`park`](crate::park) or [`park_timeout`](crate::park_timeout), with the semantics of
    /// [`std::thread::Thread::unpark`]. Other waits (a lock, a sleep) are not ended by it.
    pub fn unpark(&self) {
        match &self.inner {
            Inner::Task(t) => {
                if t.state.unpark() {
                    crate::worker::schedule(t.clone());
                }
            }
            Inner::Thread(t) => {
                if t.state.unpark() {
                    t.unpark_thread();
                }
            }
        }
    }
}

impl fmt::Debug for Coroutine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Coroutine").field("id", &self.id()).field("name", &self.name()).finish()
    }
}

/// Ends one park: the coroutine or thread and the park generation it waits in. Stored by
/// whatever the parked side waits on; waking a generation that is over does nothing, so a
/// clone may be woken any number of times.
#[derive(Clone)]
pub(crate) enum Waker {
    Task(Arc<Task>, u64),
    Thread(Arc<ThreadInner>, u64),
}

impl Waker {
    /// Wakes the park, if it is still the current one.
    pub(crate) fn wake(self) {
        match self {
            Waker::Task(task, gen) => {
                if task.state.wake(gen) {
                    crate::worker::schedule(task);
                }
            }
            Waker::Thread(thread, gen) => {
                if thread.state.wake(gen) {
                    thread.unpark_thread();
                }
            }
        }
    }

    /// Whether both wakers are for the same coroutine or thread (whatever the park).
    pub(crate) fn same_owner(&self, other: &Waker) -> bool {
        match (self, other) {
            (Waker::Task(a, _), Waker::Task(b, _)) => Arc::ptr_eq(a, b),
            (Waker::Thread(a, _), Waker::Thread(b, _)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }

    /// False once the park this waker ends is known to be over; true while it may still be
    /// waiting (or about to).
    pub(crate) fn may_be_waiting(&self) -> bool {
        match self {
            Waker::Task(task, gen) => task.state.may_be_in_park(*gen),
            Waker::Thread(thread, gen) => thread.state.may_be_in_park(*gen),
        }
    }
}

impl fmt::Debug for Waker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Waker::Task(t, gen) => write!(f, "Waker(coroutine {:?}, park {gen})", t.id),
            Waker::Thread(t, gen) => write!(f, "Waker(thread {:?}, park {gen})", t.id),
        }
    }
}
