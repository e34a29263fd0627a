//! The runtime: its shared state, its builder, the default runtime, and shutdown.
//!
//! # Shutdown, in order (`Drop for Runtime`)
//!
//! 1. Set `shutdown`. A spawn that registers its task after this point sees the flag and
//!    cancels the task itself (a SeqCst fence on both sides makes one of them see the other).
//! 2. Cancel every registered task: each interruptible park in it now returns at once (I/O
//!    with an error, `sleep` and `park` early), and its stack unwinds by ordinary returns. A task
//!    not started yet is dropped unstarted, and its join handle reports the cancellation.
//! 3. Shut the `spawn_blocking` pool down and join its threads; queued jobs still run.
//! 4. Let the workers exit once no task is left, and join them.
//! 5. Stop and join the monitor, then unmap every stack slab.
//!
//! A coroutine that never parks or yields keeps step 4 waiting, as a thread that never
//! returns keeps `std::thread::scope` waiting.

use std::io;
use std::num::NonZeroUsize;
use std::panic;
use std::sync::atomic::{fence, AtomicBool, AtomicU64, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::{Arc, OnceLock};
use std::thread;

use crossbeam_deque::Injector;
use parking_lot::{Condvar, Mutex};

use crate::blocking::BlockingPool;
use crate::context;
use crate::idle::Idle;
use crate::join::{self, JoinHandle};
use crate::metrics::RuntimeMetrics;
use crate::registry::Registry;
use crate::stack::{self, Slabs, StackPool};
use crate::task::Task;
use crate::worker::{Local, Remote};

/// How many threads the default runtime and a builder without `.workers(n)` use.
fn default_workers() -> usize {
    if let Some(n) = std::env::var("WEFT_WORKERS").ok().and_then(|v| v.trim().parse().ok()) {
        if n > 0 {
            return n;
        }
    }
    thread::available_parallelism().map_or(1, NonZeroUsize::get)
}

/// Fixed settings of a runtime.
#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub(crate) stack_size: usize,
    pub(crate) migrate: bool,
    pub(crate) max_blocking_threads: usize,
}

/// The state every worker and every task of one runtime share.
pub(crate) struct Shared {
    pub(crate) remotes: Box<[Remote]>,
    pub(crate) injector: Injector<Arc<Task>>,
    pub(crate) idle: Idle,
    pub(crate) registry: Registry,
    pub(crate) slabs: Slabs,
    /// Stacks for spawns from threads outside the runtime, and the overflow of the workers'
    /// pools: a stack goes back to the pool of the worker it finished on, which need not be
    /// the one it came from, so without this, pools that mostly spawn would keep mapping new
    /// stacks while pools that mostly finish piled them up.
    pub(crate) shared_stacks: Mutex<StackPool>,
    pub(crate) config: Config,
    pub(crate) blocking: BlockingPool,
    shutdown: AtomicBool,
    /// Set once the blocking pool is joined: from then on, workers exit when no task is left.
    workers_may_exit: AtomicBool,
    pub(crate) spawned_outside: AtomicU64,
    pub(crate) monitor_stop: (Mutex<bool>, Condvar),
}

impl Shared {
    /// Whether the workers may exit: shut down, and no task left.
    pub(crate) fn is_finished(&self) -> bool {
        self.workers_may_exit.load(SeqCst) && self.registry.alive() == 0
    }

    /// Called once a new task is registered and queued: cancels it if shutdown has begun
    /// (step 1), and wakes a worker to steal it if the rules of `idle` call for it. One SeqCst
    /// fence serves both checks: each is the second half of a store-then-load pair whose other
    /// half (the shutdown store; a searcher's count decrement) is SeqCst too.
    ///
    /// A task pinned to a worker (`stealable` false) was pushed to that worker's inbox, which
    /// unparked it; no other worker could take it, so none is woken.
    pub(crate) fn spawned(&self, task: &Arc<Task>, stealable: bool) {
        fence(SeqCst);
        if self.shutdown.load(SeqCst) && task.state.cancel() {
            // It was already started elsewhere and parked: the cancel owns its re-queue.
            crate::worker::schedule(task.clone());
        }
        if stealable {
            self.wake_for_stealable();
        }
    }

    /// Removes a finished task; the last one during shutdown releases the workers.
    pub(crate) fn retire(&self, task: &Task) {
        self.registry.remove(task);
        if self.workers_may_exit.load(SeqCst) && self.registry.alive() == 0 {
            self.unpark_all();
        }
    }

    /// Wakes a sleeping worker for new stealable work, if the rules of `idle` call for it.
    pub(crate) fn notify_stealable(&self) {
        fence(SeqCst);
        self.wake_for_stealable();
    }

    /// [`Shared::notify_stealable`] for a caller that has just issued the SeqCst fence.
    fn wake_for_stealable(&self) {
        if let Some(worker) = self.idle.notify_one() {
            self.remotes[worker].unpark();
        }
    }

    /// Whether any queue holds work another worker could take.
    pub(crate) fn has_stealable(&self) -> bool {
        !self.injector.is_empty() || self.remotes.iter().any(|r| !r.stealer.is_empty())
    }

    fn unpark_all(&self) {
        for remote in self.remotes.iter() {
            remote.unpark();
        }
    }

    /// The shard of the registry a spawn from the calling thread uses.
    pub(crate) fn outside_shard(&self) -> usize {
        self.remotes.len()
    }
}

/// The runtime that free functions called from the current context act on: the caller's own
/// runtime inside a coroutine (or a `spawn_blocking` job), else the default runtime.
pub(crate) fn current_shared() -> Arc<Shared> {
    let task = context::current_task_ptr();
    if !task.is_null() {
        // SAFETY: the running coroutine's task is kept alive by its worker.
        return unsafe { &*task }.shared.clone();
    }
    let worker = context::current_worker_ptr();
    if !worker.is_null() {
        // SAFETY: the worker loop on this thread owns the `Local` for as long as it runs.
        return unsafe { &*worker }.shared.clone();
    }
    if let Some(shared) = context::blocking_runtime() {
        return shared;
    }
    default_runtime().shared.clone()
}

fn default_runtime() -> &'static Runtime {
    static DEFAULT: OnceLock<Runtime> = OnceLock::new();
    DEFAULT.get_or_init(|| {
        Runtime::builder()
            .build()
            .unwrap_or_else(|e| panic!("weft: cannot start the default runtime: {e}"))
    })
}

/// Runs `f` as a coroutine on the default runtime and blocks the caller until it returns, as
/// [`Runtime::block_on`] does.
///
/// ```
/// let sum = weft::block_on(|| {
///     let parts: Vec<_> = (0..4).map(|i| weft::spawn(move || i * 10)).collect();
///     parts.into_iter().map(|h| h.join().unwrap()).sum::<i32>()
/// });
/// assert_eq!(sum, 60);
/// ```
pub fn block_on<F, T>(f: F) -> T
where
    F: FnOnce() -> T + Send,
    T: Send,
{
    default_runtime().block_on(f)
}

/// A weft runtime: worker threads that run coroutines.
///
/// Most programs use the default runtime behind the free functions ([`spawn`](crate::spawn),
/// [`block_on`]); build one for control over its size or its lifetime. Dropping it shuts it
/// down: parked coroutines are cancelled cooperatively, its threads are joined and its stacks
/// unmapped.
///
/// ```
/// let rt = weft::Runtime::builder().workers(2).stack_size(32 * 1024).build()?;
/// let answer = rt.block_on(|| weft::spawn(|| 6 * 7).join().unwrap());
/// assert_eq!(answer, 42);
/// drop(rt);
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Runtime {
    shared: Arc<Shared>,
    threads: Vec<thread::JoinHandle<()>>,
    monitor: Option<thread::JoinHandle<()>>,
}

impl Runtime {
    /// A [`Builder`] with the default settings.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// Runs `f` as a coroutine of this runtime and blocks the caller (a thread, or a coroutine
    /// of any runtime) until it returns. A panic in `f` resumes in the caller.
    ///
    /// `f` may borrow from the caller: `block_on` does not return or unwind before `f` is done.
    ///
    /// ```
    /// let rt = weft::Runtime::builder().workers(1).build()?;
    /// let words = vec!["a", "b"];
    /// let n = rt.block_on(|| words.len());
    /// assert_eq!(n, 2);
    ///
    /// let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
    ///     rt.block_on(|| panic!("boom"))
    /// }));
    /// assert!(caught.is_err());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn block_on<F, T>(&self, f: F) -> T
    where
        F: FnOnce() -> T + Send,
        T: Send,
    {
        // SAFETY: the wait below returns only once the coroutine has finished with `f` and its
        // borrows; it cannot be interrupted or unwound.
        let handle = unsafe { join::spawn_unchecked(&self.shared, join::Builder::new(), None, f) }
            .unwrap_or_else(|e| panic!("weft: cannot spawn the block_on coroutine: {e}"));
        match handle.wait() {
            Ok(value) => value,
            Err(payload) => panic::resume_unwind(payload),
        }
    }

    /// Spawns a coroutine on this runtime, as [`spawn`](crate::spawn) does on the current one.
    ///
    /// # Panics
    ///
    /// If no stack can be mapped for it; see [`Builder::spawn`](crate::Builder::spawn).
    ///
    /// ```
    /// let rt = weft::Runtime::builder().workers(1).build()?;
    /// let h = rt.spawn(|| "done");
    /// assert_eq!(h.join().unwrap(), "done");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn spawn<F, T>(&self, f: F) -> JoinHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        join::spawn_on(&self.shared, join::Builder::new(), f)
            .unwrap_or_else(|e| panic!("weft: {e}"))
    }

    /// A snapshot of the runtime's counters.
    pub fn metrics(&self) -> RuntimeMetrics {
        snapshot(&self.shared)
    }
}

fn snapshot(shared: &Shared) -> RuntimeMetrics {
    RuntimeMetrics {
        workers: shared.remotes.iter().map(|r| r.counters.snapshot(&r.switches)).collect(),
        alive: shared.registry.alive(),
        spawned_outside: shared.spawned_outside.load(Relaxed),
        stacks_mapped: shared.slabs.mapped(),
        stacks_in_use: shared.slabs.in_use(),
    }
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime").field("config", &self.shared.config).finish_non_exhaustive()
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        let shared = &self.shared;
        let own = context::current_task_ptr();
        // SAFETY: a non-null current task is the running coroutine, alive while it runs.
        if !own.is_null() && Arc::ptr_eq(&unsafe { &*own }.shared, shared) {
            panic!("weft: a runtime cannot be dropped from one of its own coroutines");
        }
        // Step 1 and 2.
        shared.shutdown.store(true, SeqCst);
        fence(SeqCst);
        for task in shared.registry.snapshot() {
            if task.state.cancel() {
                crate::worker::schedule(task);
            }
        }
        // Step 3.
        shared.blocking.shutdown();
        // Step 4.
        shared.workers_may_exit.store(true, SeqCst);
        shared.unpark_all();
        for thread in self.threads.drain(..) {
            if thread.join().is_err() {
                log::error!("weft: a worker thread panicked");
            }
        }
        // Step 5.
        *shared.monitor_stop.0.lock() = true;
        shared.monitor_stop.1.notify_all();
        if let Some(monitor) = self.monitor.take() {
            let _ = monitor.join();
        }
        shared.slabs.release(&mut shared.shared_stacks.lock());
    }
}

/// Builds a [`Runtime`] with custom settings.
///
/// ```
/// let rt = weft::Runtime::builder().workers(4).stack_size(128 * 1024).build()?;
/// # drop(rt);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Debug)]
#[must_use = "a Builder does nothing until .build() is called"]
pub struct Builder {
    workers: Option<usize>,
    stack_size: usize,
    migrate: bool,
    max_blocking_threads: usize,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            workers: None,
            stack_size: stack::DEFAULT_STACK_SIZE,
            migrate: false,
            max_blocking_threads: 512,
        }
    }
}

impl Builder {
    /// Worker threads; by default `WEFT_WORKERS`, else the available parallelism. At least 1.
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = Some(n.max(1));
        self
    }

    /// The default stack size of the runtime's coroutines, in bytes (default 64 KiB, at least
    /// 16 KiB; rounded up to a power of two).
    pub fn stack_size(mut self, bytes: usize) -> Self {
        self.stack_size = bytes;
        self
    }

    /// The most threads [`spawn_blocking`](crate::spawn_blocking) may run at once (default 512).
    pub fn max_blocking_threads(mut self, n: usize) -> Self {
        self.max_blocking_threads = n.max(1);
        self
    }

    /// Lets idle workers steal coroutines that have already started, not just new ones.
    ///
    /// By default a started coroutine always resumes on the worker it first ran on, because
    /// its stack may hold values tied to that thread. Migration balances load better when a
    /// few long-lived coroutines do most of the work.
    ///
    /// # Safety
    ///
    /// With this set, a coroutine may resume on a different thread after any blocking weft
    /// call (`sleep`, `park`, `join`, a lock, I/O). The caller promises that no coroutine of
    /// this runtime holds across such a call:
    ///
    /// - a value that is not `Send` (an `Rc`, a `RefCell` borrow, a raw pointer used as a
    ///   thread-owned handle, a `!Send` guard such as `std::sync::MutexGuard`);
    /// - a reference into a `thread_local!`, or any state cached from one (an address read
    ///   before the call and used after it refers to the old thread's slot). This includes
    ///   `errno`: the compiler may compute its address once in a function that makes a libc
    ///   call, parks, and makes another, so a function that does so reads `errno` from an
    ///   out-of-line helper (`#[inline(never)]`), as weft's own I/O calls do;
    /// - anything whose correctness depends on the OS thread id.
    ///
    /// Breaking this is undefined behaviour, which the compiler cannot catch: corosensei
    /// makes coroutines `!Send` for exactly this reason.
    pub unsafe fn migrate_started_coroutines(mut self) -> Self {
        self.migrate = true;
        self
    }

    /// Starts the runtime's threads.
    ///
    /// # Errors
    ///
    /// The error of creating an epoll instance, an eventfd or a thread.
    pub fn build(self) -> io::Result<Runtime> {
        crate::overflow::install();
        crate::panic_hook::install();
        let workers = self.workers.unwrap_or_else(default_workers);
        let config = Config {
            stack_size: stack::size_class(self.stack_size),
            migrate: self.migrate,
            max_blocking_threads: self.max_blocking_threads,
        };
        let mut remotes = Vec::with_capacity(workers);
        let mut deques = Vec::with_capacity(workers);
        for _ in 0..workers {
            let (remote, deque) = Remote::new()?;
            remotes.push(remote);
            deques.push(deque);
        }
        let shared = Arc::new(Shared {
            remotes: remotes.into_boxed_slice(),
            injector: Injector::new(),
            idle: Idle::new(workers),
            registry: Registry::new(workers + 1),
            slabs: Slabs::new(workers + 1),
            shared_stacks: Mutex::new(StackPool::new(workers)),
            blocking: BlockingPool::new(config.max_blocking_threads),
            config,
            shutdown: AtomicBool::new(false),
            workers_may_exit: AtomicBool::new(false),
            spawned_outside: AtomicU64::new(0),
            monitor_stop: (Mutex::new(false), Condvar::new()),
        });
        let mut runtime = Runtime { shared: shared.clone(), threads: Vec::new(), monitor: None };
        for (index, deque) in deques.into_iter().enumerate() {
            let shared = shared.clone();
            let thread = thread::Builder::new()
                .name(format!("weft-worker-{index}"))
                .spawn(move || Local::new(index, shared, deque).run());
            match thread {
                Ok(thread) => runtime.threads.push(thread),
                // Dropping the partial runtime shuts down the workers already started.
                Err(e) => return Err(e),
            }
        }
        let monitor_shared = shared.clone();
        runtime.monitor = Some(
            thread::Builder::new()
                .name("weft-monitor".into())
                .spawn(move || crate::monitor::run(&monitor_shared))?,
        );
        Ok(runtime)
    }
}

#[cfg(test)]
impl Shared {
    /// A runtime's shared state with no threads, for unit tests of the parts.
    pub(crate) fn for_tests() -> Arc<Shared> {
        let (remote, _deque) = Remote::new().expect("epoll and eventfd");
        Arc::new(Shared {
            remotes: vec![remote].into_boxed_slice(),
            injector: Injector::new(),
            idle: Idle::new(1),
            registry: Registry::new(2),
            slabs: Slabs::new(2),
            shared_stacks: Mutex::new(StackPool::new(1)),
            blocking: BlockingPool::new(1),
            config: Config {
                stack_size: stack::DEFAULT_STACK_SIZE,
                migrate: false,
                max_blocking_threads: 1,
            },
            shutdown: AtomicBool::new(false),
            workers_may_exit: AtomicBool::new(false),
            spawned_outside: AtomicU64::new(0),
            monitor_stop: (Mutex::new(false), Condvar::new()),
        })
    }
}
