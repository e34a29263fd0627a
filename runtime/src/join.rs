//! Spawning coroutines and joining them: [`spawn`], [`Builder`], [`JoinHandle`].
//!
//! A coroutine's result travels in a [`Packet`] shared by the coroutine and its handle. The
//! coroutine's closure holds a [`Completer`] for it; if the closure is dropped without running
//! (its runtime shut down first), the completer's `Drop` fills the packet with a cancellation
//! payload, so `join` never waits for a result that cannot come.

use std::io;
use std::marker::PhantomData;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::thread;

use parking_lot::Mutex;

use crate::context;
use crate::metrics::bump;
use crate::park::park_with;
use crate::runtime::{current_shared, Shared};
use crate::scope::ScopeData;
use crate::stack;
use crate::state::ParkKind;
use crate::task::{Coro, Coroutine, CoroutineId, Inner, Resume, Task, Waker, Yielder};
use crate::worker::Local;

/// The payload `join` returns for a coroutine that never ran because its runtime shut down.
pub(crate) const CANCELLED: &str = "coroutine cancelled: its runtime shut down before it started";

struct Slot<T> {
    result: Option<thread::Result<T>>,
    done: bool,
    waiter: Option<Waker>,
}

/// Where a coroutine's (or a blocking job's) result waits for `join`.
pub(crate) struct Packet<T> {
    slot: Mutex<Slot<T>>,
    scope: Option<Arc<ScopeData>>,
}

impl<T> Packet<T> {
    pub(crate) fn new(scope: Option<Arc<ScopeData>>) -> Packet<T> {
        Packet { slot: Mutex::new(Slot { result: None, done: false, waiter: None }), scope }
    }

    fn complete(&self, result: thread::Result<T>) {
        let waiter = {
            let mut slot = self.slot.lock();
            slot.result = Some(result);
            slot.done = true;
            slot.waiter.take()
        };
        if let Some(waiter) = waiter {
            waiter.wake();
        }
    }

    pub(crate) fn is_done(&self) -> bool {
        self.slot.lock().done
    }

    /// Blocks (parks the coroutine, or the thread) until the result is in, and takes it.
    ///
    /// The wait is uninterruptible: scoped and `block_on` borrows depend on it.
    pub(crate) fn wait(&self) -> thread::Result<T> {
        loop {
            {
                let mut slot = self.slot.lock();
                if slot.done {
                    return slot.result.take().expect("a result is taken once");
                }
            }
            // No lost wake-up: the waker is stored under the same lock under which `complete`
            // sets `done` and takes the waker, and `done` is re-checked under it.
            park_with(ParkKind::Uninterruptible, None, |waker| {
                let mut slot = self.slot.lock();
                if slot.done {
                    return false;
                }
                slot.waiter = Some(waker);
                true
            });
        }
    }
}

impl<T> Drop for Packet<T> {
    fn drop(&mut self) {
        if let Some(scope) = &self.scope {
            let slot = self.slot.get_mut();
            let unhandled_panic = matches!(slot.result, Some(Err(_)));
            // Drop the result now, inside the scope's lifetime, whatever its Drop does.
            let _ = panic::catch_unwind(AssertUnwindSafe(|| slot.result = None));
            scope.decrement(unhandled_panic);
        }
    }
}

/// Completes a packet exactly once: by [`Completer::complete`], or on drop with the
/// cancellation payload.
pub(crate) struct Completer<T>(Option<Arc<Packet<T>>>);

impl<T> Completer<T> {
    pub(crate) fn new(packet: Arc<Packet<T>>) -> Completer<T> {
        Completer(Some(packet))
    }

    pub(crate) fn complete(mut self, result: thread::Result<T>) {
        if let Some(packet) = self.0.take() {
            packet.complete(result);
        }
    }
}

impl<T> Drop for Completer<T> {
    fn drop(&mut self) {
        if let Some(packet) = self.0.take() {
            packet.complete(Err(Box::new(CANCELLED)));
        }
    }
}

/// A handle to join a coroutine with, as [`std::thread::JoinHandle`] is for a thread.
///
/// Dropping it detaches the coroutine, which runs on.
///
/// ```
/// let h = weft::spawn(|| 1 + 1);
/// assert_eq!(h.join().unwrap(), 2);
/// ```
pub struct JoinHandle<T> {
    pub(crate) inner: JoinInner<'static, T>,
}

/// The lifetime-generic body of [`JoinHandle`] and [`ScopedJoinHandle`](crate::ScopedJoinHandle).
pub(crate) struct JoinInner<'a, T> {
    packet: Arc<Packet<T>>,
    coroutine: Coroutine,
    marker: PhantomData<&'a ()>,
}

impl<T> JoinInner<'_, T> {
    pub(crate) fn new(packet: Arc<Packet<T>>, coroutine: Coroutine) -> Self {
        JoinInner { packet, coroutine, marker: PhantomData }
    }

    pub(crate) fn wait(self) -> thread::Result<T> {
        self.packet.wait()
    }

    pub(crate) fn is_finished(&self) -> bool {
        self.packet.is_done()
    }

    pub(crate) fn coroutine(&self) -> &Coroutine {
        &self.coroutine
    }
}

impl<T> JoinHandle<T> {
    /// Waits for the coroutine to finish and returns its result: `Err` with the panic payload
    /// if it panicked, as [`std::thread::JoinHandle::join`].
    ///
    /// In a coroutine this parks only the coroutine; on a plain thread it blocks the thread.
    ///
    /// ```
    /// let h = weft::spawn(|| -> u32 { panic!("oops") });
    /// let payload = h.join().unwrap_err();
    /// assert_eq!(payload.downcast_ref::<&str>(), Some(&"oops"));
    /// ```
    pub fn join(self) -> thread::Result<T> {
        self.inner.wait()
    }

    /// Whether the coroutine has finished running its function (without blocking).
    ///
    /// ```
    /// let h = weft::spawn(|| ());
    /// while !h.is_finished() {
    ///     std::thread::yield_now();
    /// }
    /// h.join().unwrap();
    /// ```
    pub fn is_finished(&self) -> bool {
        self.inner.is_finished()
    }

    /// The coroutine's handle.
    ///
    /// ```
    /// let h = weft::Builder::new().name("named".into()).spawn(|| ())?;
    /// assert_eq!(h.coroutine().name(), Some("named"));
    /// # h.join().unwrap();
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn coroutine(&self) -> &Coroutine {
        self.inner.coroutine()
    }
}

impl<T> std::fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinHandle").field("coroutine", self.coroutine()).finish_non_exhaustive()
    }
}

/// Spawns a coroutine and returns its [`JoinHandle`], as [`std::thread::spawn`] does a thread.
///
/// It runs on the runtime of the calling coroutine, or, called from a plain thread, on the
/// default runtime (started on first use, with `WEFT_WORKERS` workers or one per core).
///
/// # Panics
///
/// If no stack can be mapped for it; [`Builder::spawn`] returns that error instead.
///
/// ```
/// let handles: Vec<_> = (0..10).map(|i| weft::spawn(move || i * i)).collect();
/// let total: i32 = handles.into_iter().map(|h| h.join().unwrap()).sum();
/// assert_eq!(total, 285);
/// ```
pub fn spawn<F, T>(f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    Builder::new().spawn(f).unwrap_or_else(|e| panic!("weft: failed to spawn coroutine: {e}"))
}

/// Sets up a coroutine before spawning it, as [`std::thread::Builder`] does a thread.
///
/// ```
/// let h = weft::Builder::new()
///     .name("parser".into())
///     .stack_size(256 * 1024)
///     .spawn(|| weft::current().name().unwrap().len())?;
/// assert_eq!(h.join().unwrap(), 6);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Default)]
#[must_use = "a Builder does nothing until it spawns"]
pub struct Builder {
    pub(crate) name: Option<String>,
    pub(crate) stack_size: Option<usize>,
    pub(crate) worker: Option<usize>,
}

impl Builder {
    /// A builder with no name and the runtime's default stack size.
    pub fn new() -> Builder {
        Builder::default()
    }

    /// Names the coroutine. The name shows in [`Coroutine::name`], in the monitor's warnings,
    /// and in the stack-overflow message.
    pub fn name(mut self, name: String) -> Builder {
        self.name = Some(name);
        self
    }

    /// The coroutine's stack size in bytes: at least 16 KiB, rounded up to a power of two.
    pub fn stack_size(mut self, size: usize) -> Builder {
        self.stack_size = Some(size);
        self
    }

    /// Starts the coroutine on worker `index` (modulo the number of workers, see [`workers`])
    /// instead of queueing it where any worker may steal it. It then stays there, as every
    /// started coroutine does.
    ///
    /// A spawned coroutine normally starts on the spawning worker unless an idle worker steals
    /// it first, and a busy worker usually runs its own queue before a sleeping one wakes up.
    /// Long-lived coroutines that should spread over the cores, such as one acceptor per
    /// worker on a `SO_REUSEPORT` listener, are placed with this.
    ///
    /// ```
    /// let names: Vec<_> = (0..weft::workers())
    ///     .map(|i| weft::Builder::new().worker(i).spawn(|| std::thread::current().name().map(String::from)))
    ///     .collect::<Result<_, _>>()?;
    /// let mut names: Vec<_> = names.into_iter().map(|h| h.join().unwrap()).collect();
    /// names.dedup();
    /// assert_eq!(names.len(), weft::workers());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn worker(mut self, index: usize) -> Builder {
        self.worker = Some(index);
        self
    }

    /// Spawns the coroutine on the current runtime (see [`spawn`]).
    ///
    /// # Errors
    ///
    /// `ErrorKind::OutOfMemory` when no stack can be mapped. The message names the limit that
    /// is usually behind it, `vm.max_map_count`.
    ///
    /// ```
    /// let h = weft::Builder::new().spawn(|| "ok")?;
    /// assert_eq!(h.join().unwrap(), "ok");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn spawn<F, T>(self, f: F) -> io::Result<JoinHandle<T>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        spawn_on(&current_shared(), self, f)
    }
}

/// The number of worker threads of the runtime the caller runs on: its coroutine's runtime,
/// or, on a plain thread, the default runtime (which this starts if it has not started yet).
///
/// ```
/// let rt = weft::Runtime::builder().workers(3).build()?;
/// assert_eq!(rt.block_on(weft::workers), 3);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn workers() -> usize {
    current_shared().remotes.len()
}

/// Spawns a `'static` coroutine on `shared`.
pub(crate) fn spawn_on<F, T>(shared: &Arc<Shared>, opts: Builder, f: F) -> io::Result<JoinHandle<T>>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    // SAFETY: `F` and `T` are 'static, so the coroutine borrows nothing that could end.
    let inner = unsafe { spawn_unchecked(shared, opts, None, f)? };
    Ok(JoinHandle { inner })
}

/// Spawns a coroutine whose closure and result may borrow.
///
/// # Safety
///
/// Everything `f` and `T` borrow stays valid until the coroutine has finished: the caller
/// waits for the packet (uninterruptibly) before the borrows end, or hands the packet to a
/// scope that does.
pub(crate) unsafe fn spawn_unchecked<'a, F, T>(
    shared: &Arc<Shared>,
    opts: Builder,
    scope: Option<Arc<ScopeData>>,
    f: F,
) -> io::Result<JoinInner<'a, T>>
where
    F: FnOnce() -> T + Send + 'a,
    T: Send + 'a,
{
    let Builder { name, stack_size, worker } = opts;
    let size = stack::size_class(stack_size.unwrap_or(shared.config.stack_size));
    let local = crate::worker::local_of(shared);
    let stack = match local {
        Some(local) => {
            local.stacks.borrow_mut().get_or_refill(&shared.slabs, size, &shared.shared_stacks)?
        }
        None => shared.shared_stacks.lock().get(&shared.slabs, size)?,
    };
    let packet = Arc::new(Packet::new(scope));
    let completer = Completer::new(packet.clone());
    let id = local.map_or_else(CoroutineId::next, Local::next_id);
    let mut task = Task::new(shared.clone(), id, name, &stack);
    let body = move |yielder: &Yielder, first: Resume| {
        let me = context::current_task_ptr();
        // SAFETY: the worker sets the current task before resuming, so `me` is this task.
        unsafe { &*me }.set_yielder(yielder);
        if first.cancelled {
            // Its runtime shut down before it ever ran. Drop the closure here, on its own
            // stack, where a panicking Drop is caught like any panic; dropping `completer`
            // then reports the cancellation to `join`.
            if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(move || drop(f))) {
                std::mem::forget(payload);
            }
            return;
        }
        let result = panic::catch_unwind(AssertUnwindSafe(f));
        // With the handle gone, completing drops the result here; a panic in its Drop must not
        // escape into the worker. std aborts in the same case, and so does weft.
        if let Err(payload) =
            panic::catch_unwind(AssertUnwindSafe(move || completer.complete(result)))
        {
            std::mem::forget(payload);
            eprintln!("fatal runtime error: a coroutine's result panicked on drop, aborting");
            std::process::abort();
        }
    };
    // SAFETY: the caller keeps the borrows of `f` and `T` alive until the packet is complete.
    // After `complete`, the closure has been consumed and its captures dropped, and only
    // corosensei's return path runs on the stack, which touches none of them.
    let coro = unsafe { Coro::with_stack_unchecked(stack, body) };
    task.set_coro(coro);
    let task = Arc::new(task);
    let handle = task.clone();
    match local {
        Some(local) => {
            shared.registry.insert(local.index, &task);
            bump(&shared.remotes[local.index].counters.spawned, 1);
        }
        None => {
            shared.registry.insert(shared.outside_shard(), &task);
            shared.spawned_outside.fetch_add(1, Relaxed);
        }
    }
    match (worker, local) {
        // An unstarted task in an inbox: only that worker pops it, and starts it.
        (Some(index), _) => {
            let remote = &shared.remotes[index % shared.remotes.len()];
            remote.inbox.push(task);
            remote.unpark();
        }
        (None, Some(local)) => local.deque.push(task),
        (None, None) => shared.injector.push(task),
    }
    shared.spawned(&handle, worker.is_none());
    Ok(JoinInner::new(packet, Coroutine { inner: Inner::Task(handle) }))
}

/// Runs `f` on the runtime's bounded pool of threads for calls that can only block a thread
/// (file I/O, DNS, heavy CPU work), and returns a handle to join it with. Joining it from a
/// coroutine parks only the coroutine.
///
/// The pool belongs to the current runtime (the default one outside coroutines). It grows to
/// [`max_blocking_threads`](crate::runtime::Builder::max_blocking_threads) threads; beyond
/// that, jobs queue. Idle threads exit after a while.
///
/// ```
/// let h = weft::spawn(|| {
///     let contents = weft::spawn_blocking(|| std::fs::read_to_string("Cargo.toml"));
///     contents.join().unwrap().map(|s| s.len())
/// });
/// assert!(h.join().unwrap()? > 0);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn spawn_blocking<F, T>(f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let shared = current_shared();
    let packet = Arc::new(Packet::new(None));
    let completer = Completer::new(packet.clone());
    let identity = Arc::new(crate::task::ThreadInner::unbound(Some("weft-blocking".into())));
    let coroutine = Coroutine { inner: Inner::Thread(identity.clone()) };
    let job = Box::new(move || {
        let _ = identity.thread.set(crate::context::os_current());
        let previous = context::replace_current_thread(Some(identity));
        let result = panic::catch_unwind(AssertUnwindSafe(f));
        context::replace_current_thread(previous);
        completer.complete(result);
    });
    shared.blocking.submit(&shared, job);
    JoinHandle { inner: JoinInner::new(packet, coroutine) }
}

/// A boxed job for the blocking pool.
pub(crate) type Job = Box<dyn FnOnce() + Send>;
