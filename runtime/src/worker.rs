//! A worker thread: its queues, its loop, and how tasks get onto it.
//!
//! Each worker owns:
//!
//! ```text
//!   deque   crossbeam Worker (FIFO)  coroutines not started yet; other workers steal from it
//!   runq    VecDeque                 started coroutines woken or yielding on this worker;
//!                                    never stolen (their stacks may hold thread-bound values)
//!   inbox   Injector (in Remote)     started coroutines homed here, woken from other threads;
//!                                    only this worker pops it
//!   timers, a stack pool, an epoll instance with an eventfd (in Remote)
//! ```
//!
//! With the unsafe migration opt-in, started coroutines go to the stealable `deque` as well,
//! and wakes from other threads go to the waker's own deque or the global injector.
//!
//! # One scheduling tick
//!
//! 1. Every [`TIMER_CHECK_INTERVAL`] ticks, due timers; every [`GLOBAL_QUEUE_INTERVAL`]
//!    ticks, the global injector first, so outside spawns are served even when local work
//!    never runs out.
//! 2. The inbox is moved into the runq.
//! 3. The runq and the deque, alternating which goes first, so neither starves the other; a
//!    yielding coroutine goes to the back of the runq, behind the ready work.
//! 4. Then the injector.
//! 5. With nothing to run: fire due timers, else search (steal), else sleep in `epoll_wait`
//!    until the next timer (see [`crate::idle`] for the searching and sleeping rules).
//!
//! # Sleeping without losing a wake
//!
//! `Remote::unpark` is a three-state word (AWAKE, SLEEPING, NOTIFIED). The worker moves
//! AWAKE → SLEEPING before `epoll_wait` and back after. A waker pushes its task first, then
//! swaps in NOTIFIED and writes the eventfd only if it found SLEEPING. If the swap comes before
//! the worker's AWAKE → SLEEPING, that compare-exchange fails and the worker does not sleep; if
//! after, the eventfd write ends the `epoll_wait`. Either way the pushed task is seen.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::ptr;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Instant;

use corosensei::CoroutineResult;
use crossbeam_deque::{Injector, Steal, Stealer, Worker as Deque};

use crate::context;
use crate::metrics::{bump, Counters};
use crate::registry::Padded;
use crate::runtime::Shared;
use crate::stack::StackPool;
use crate::state::Commit;
use crate::sys::{self, Epoll, Event, EventFd};
use crate::task::{CoroutineId, Resume, Suspend, Task, ID_BLOCK, NOT_STARTED};
use crate::timer::Timers;

/// Ticks between looks at the global injector, so outside spawns are served even when local
/// work never runs out. Go looks every 61 ticks; a power of two makes the check a mask, and
/// 32 stays within Go's bound.
const GLOBAL_QUEUE_INTERVAL: u32 = 32;
/// Ticks between timer checks while there is other work; reading the clock every tick would
/// cost more than the switch itself. An idle worker checks at once. A power of two, and a
/// divisor of [`GLOBAL_QUEUE_INTERVAL`].
const TIMER_CHECK_INTERVAL: u32 = 16;
/// Ticks between non-blocking looks at the worker's epoll while it has fds registered and
/// other work to do, so I/O readiness is not left waiting behind a busy run queue. A look
/// costs one syscall, about what 64 switches do. Ticks do not bound the time between looks
/// (a coroutine may run long); the monitor serves an epoll left alone for 10 ms, as Go's
/// sysmon polls the network when no one has for 10 ms.
const EVENT_INTERVAL: u32 = 64;
/// Events taken from one `epoll_wait`.
const EVENTS_PER_POLL: usize = 256;
/// The eventfd's token in the worker's epoll set. It names no reactor slot, so `dispatch`
/// passes it over.
const WAKE_TOKEN: u64 = u64::MAX;

/// How long an idle worker spins, watching for a wake, before it sleeps in `epoll_wait`. A
/// wake of a sleeping thread costs tens of microseconds on these machines; a hand-off between
/// workers that lands within the spin costs well under one. Measured with the criterion case
/// park_unpark_cross_worker (one run, same machine): 12.7 µs per round trip without the
/// spin, 0.70 µs with 20 µs, 0.72 µs with 50 µs; std threads 7.2 µs.
const IDLE_SPIN: std::time::Duration = std::time::Duration::from_micros(20);

const AWAKE: u8 = 0;
const SLEEPING: u8 = 1;
const NOTIFIED: u8 = 2;

/// The part of a worker that other threads reach.
pub(crate) struct Remote {
    pub(crate) stealer: Stealer<Arc<Task>>,
    pub(crate) inbox: Injector<Arc<Task>>,
    pub(crate) epoll: Epoll,
    eventfd: EventFd,
    unpark: AtomicU8,
    pub(crate) counters: Padded<Counters>,
    /// Coroutine resumes so far, for the monitor (its own line: written on every switch).
    pub(crate) switches: Padded<std::sync::atomic::AtomicU64>,
    /// Id of the coroutine running now (0 when none) and its registry key.
    pub(crate) current_id: std::sync::atomic::AtomicU64,
    pub(crate) current_key: std::sync::atomic::AtomicUsize,
    /// Fds registered on `epoll` (see [`crate::reactor`]); while there are none, a busy worker
    /// does not look at its epoll.
    pub(crate) registered: std::sync::atomic::AtomicUsize,
}

impl Remote {
    /// Makes a worker's remote half and the deque its loop will own.
    pub(crate) fn new() -> std::io::Result<(Remote, Deque<Arc<Task>>)> {
        let deque = Deque::new_fifo();
        let epoll = Epoll::new()?;
        let eventfd = EventFd::new()?;
        let edge = (libc::EPOLLIN | libc::EPOLLET) as u32;
        epoll.add(eventfd.as_raw_fd(), edge, WAKE_TOKEN)?;
        let remote = Remote {
            stealer: deque.stealer(),
            inbox: Injector::new(),
            epoll,
            eventfd,
            unpark: AtomicU8::new(AWAKE),
            counters: Padded::default(),
            switches: Padded::default(),
            current_id: Default::default(),
            current_key: Default::default(),
            registered: Default::default(),
        };
        Ok((remote, deque))
    }

    /// Takes the ready events of this worker's epoll from another thread (the monitor, for a
    /// busy worker that has not looked at its epoll for a while) and wakes their coroutines.
    /// An eventfd edge taken here was meant to wake the worker, so it is written again.
    pub(crate) fn serve_epoll_from_outside(&self, events: &mut [Event]) {
        let Ok(n) = self.epoll.wait(events, Some(std::time::Duration::ZERO)) else { return };
        if events[..n].iter().any(|e| e.u64 == WAKE_TOKEN) {
            self.eventfd.notify();
        }
        crate::reactor::dispatch(&events[..n]);
    }

    /// Wakes the worker if it sleeps, or makes its next sleep return at once.
    pub(crate) fn unpark(&self) {
        if self.unpark.swap(NOTIFIED, SeqCst) == SLEEPING {
            self.eventfd.notify();
        }
    }
}

/// The part of a worker only its own thread touches. Coroutines running on the worker reach it
/// through [`context::current_worker_ptr`], for short borrows that never span a switch.
pub(crate) struct Local {
    pub(crate) index: usize,
    pub(crate) shared: Arc<Shared>,
    /// `&shared.remotes[index]`, resolved once: the loop reaches it several times a switch.
    remote: *const Remote,
    /// `shared.config.migrate`, copied for the same reason.
    migrate: bool,
    pub(crate) deque: Deque<Arc<Task>>,
    runq: RefCell<VecDeque<Arc<Task>>>,
    timers: RefCell<Timers>,
    pub(crate) stacks: RefCell<StackPool>,
    events: RefCell<Vec<Event>>,
    tick: Cell<u32>,
    searching: Cell<bool>,
    rng: Cell<u64>,
    /// The rest of this worker's block of coroutine ids: next, end.
    ids: Cell<(u64, u64)>,
}

impl Local {
    pub(crate) fn new(index: usize, shared: Arc<Shared>, deque: Deque<Arc<Task>>) -> Local {
        Local {
            index,
            remote: &shared.remotes[index],
            migrate: shared.config.migrate,
            shared,
            deque,
            runq: RefCell::new(VecDeque::new()),
            timers: RefCell::new(Timers::default()),
            stacks: RefCell::new(StackPool::new(index)),
            events: RefCell::new(vec![Event { events: 0, u64: 0 }; EVENTS_PER_POLL]),
            tick: Cell::new(0),
            searching: Cell::new(false),
            rng: Cell::new(0x9e37_79b9_7f4a_7c15 ^ (index as u64 + 1)),
            ids: Cell::new((0, 0)),
        }
    }

    /// A fresh coroutine id from this worker's block.
    pub(crate) fn next_id(&self) -> CoroutineId {
        let (mut next, mut end) = self.ids.get();
        if next == end {
            next = CoroutineId::reserve_block();
            end = next + ID_BLOCK;
        }
        self.ids.set((next + 1, end));
        CoroutineId::from_u64(next)
    }

    fn remote(&self) -> &Remote {
        // SAFETY: points into `self.shared.remotes`, a boxed slice that is never resized and
        // lives as long as `self.shared`, which this Local holds.
        unsafe { &*self.remote }
    }

    /// The worker loop; returns when the runtime has shut down and no coroutine is left.
    pub(crate) fn run(&self) {
        context::set_current_worker(self);
        let _altstack = sys::ensure_sigaltstack();
        loop {
            if let Some(task) = self.next_task() {
                self.run_task(task);
                continue;
            }
            if self.fire_timers() > 0 || self.poll_io() > 0 {
                continue;
            }
            if let Some(task) = self.search() {
                self.run_task(task);
                continue;
            }
            if self.shared.is_finished() {
                break;
            }
            self.sleep();
        }
        if self.searching.replace(false) {
            self.shared.idle.stop_searching();
        }
        context::set_current_worker(ptr::null());
    }

    #[inline]
    fn next_task(&self) -> Option<Arc<Task>> {
        let tick = self.tick.get().wrapping_add(1);
        self.tick.set(tick);
        if tick & (TIMER_CHECK_INTERVAL - 1) == 0 {
            if let Some(task) = self.periodic_checks(tick) {
                return Some(task);
            }
        }
        let remote = self.remote();
        if !remote.inbox.is_empty() {
            let mut runq = self.runq.borrow_mut();
            loop {
                match remote.inbox.steal() {
                    Steal::Success(task) => runq.push_back(task),
                    Steal::Empty => break,
                    Steal::Retry => continue,
                }
            }
        }
        let from_runq = || self.runq.borrow_mut().pop_front();
        let task = if tick % 2 == 0 {
            from_runq().or_else(|| self.deque.pop())
        } else {
            self.deque.pop().or_else(from_runq)
        };
        task.or_else(|| self.pop_injector())
    }

    /// The work of every [`TIMER_CHECK_INTERVAL`]th tick, kept off the hot path: due timers,
    /// and every [`GLOBAL_QUEUE_INTERVAL`]th tick a task from the injector before local work.
    #[cold]
    fn periodic_checks(&self, tick: u32) -> Option<Arc<Task>> {
        self.fire_timers();
        if tick & (EVENT_INTERVAL - 1) == 0 {
            self.poll_io();
        }
        if tick & (GLOBAL_QUEUE_INTERVAL - 1) == 0 {
            return self.pop_injector();
        }
        None
    }

    fn pop_injector(&self) -> Option<Arc<Task>> {
        loop {
            match self.shared.injector.steal_batch_and_pop(&self.deque) {
                Steal::Success(task) => return Some(task),
                Steal::Empty => return None,
                Steal::Retry => continue,
            }
        }
    }

    /// Takes the events that are ready on this worker's epoll, without waiting, and wakes their
    /// coroutines; returns how many events there were. Skipped while no fd is registered.
    fn poll_io(&self) -> usize {
        let remote = self.remote();
        if remote.registered.load(Relaxed) == 0 {
            return 0;
        }
        self.wait_io(Some(std::time::Duration::ZERO))
    }

    /// One `epoll_wait` with `timeout`, and the dispatch of what it returns.
    fn wait_io(&self, timeout: Option<std::time::Duration>) -> usize {
        let remote = self.remote();
        let mut events = self.events.borrow_mut();
        bump(&remote.counters.polls, 1);
        let n = match remote.epoll.wait(&mut events, timeout) {
            Ok(n) => n,
            Err(e) => {
                log::error!("weft: epoll_wait failed on worker {}: {e}", self.index);
                0
            }
        };
        bump(&remote.counters.events, n as u64);
        crate::reactor::dispatch(&events[..n]);
        n
    }

    /// Fires due timers; returns how many fired.
    fn fire_timers(&self) -> usize {
        let mut timers = self.timers.borrow_mut();
        if timers.is_empty() {
            return 0;
        }
        let mut woken = Vec::new();
        let fired = timers.fire_due(Instant::now(), |task, gen| {
            // A timer carries no data, so a dead one (its park already over) needs no wake:
            // skip the read-modify-write that a wake always makes.
            if task.state.is_parked_at(gen) && task.state.wake(gen) {
                woken.push(task);
            }
        });
        drop(timers);
        for task in woken {
            schedule(task);
        }
        fired
    }

    fn run_task(&self, task: Arc<Task>) {
        // However the task was found, a searcher stops searching before it runs anything, or
        // it would keep counting as the searcher that makes notifiers skip waking a sleeper.
        if self.searching.get() {
            self.stop_searching();
        }
        let cancelled = match task.state.resume_from_yield() {
            Some(cancelled) => cancelled,
            None => task.state.start_running(),
        };
        // SAFETY: this worker popped the task, so it holds the RUNNING state: `start_running`
        // gave it, or the task yielded and kept it (see `crate::state`).
        let slot = unsafe { task.coro() };
        let coro = slot.as_mut().expect("a queued task has its coroutine");
        if !coro.started() {
            // Even when cancelled before it ever ran, it is resumed: its body then drops the
            // closure on its own stack (see `join::spawn_unchecked`). Dropping it unstarted
            // from here would run user Drop code on the worker's stack, where a panic would
            // make corosensei drop the closure twice.
            task.home.store(self.index, Relaxed);
            self.remote().counters.alive.fetch_add(1, Relaxed);
        } else if self.migrate {
            let home = task.home.swap(self.index, Relaxed);
            if home != self.index {
                self.shared.remotes[home].counters.alive.fetch_sub(1, Relaxed);
                self.remote().counters.alive.fetch_add(1, Relaxed);
            }
        }
        let remote = self.remote();
        remote.current_key.store(task.registry_key.load(Relaxed), Relaxed);
        remote.current_id.store(task.id.as_u64().get(), Relaxed);
        bump(&remote.switches, 1);
        context::set_current_task(Arc::as_ptr(&task));
        let result = coro.resume(Resume { cancelled });
        context::set_current_task(ptr::null());
        remote.current_id.store(0, Relaxed);
        match result {
            CoroutineResult::Yield(Suspend::Park) => match task.state.commit_park() {
                Commit::Parked => {}
                Commit::Requeue => self.push_started(task),
            },
            CoroutineResult::Yield(Suspend::Yield) => self.push_started(task),
            CoroutineResult::Return(()) => self.finish(task),
        }
    }

    /// Queues a started coroutine on this worker.
    #[inline]
    fn push_started(&self, task: Arc<Task>) {
        if self.migrate {
            self.deque.push(task);
            self.shared.notify_stealable();
        } else {
            self.runq.borrow_mut().push_back(task);
        }
    }

    /// Retires a coroutine that returned.
    fn finish(&self, task: Arc<Task>) {
        task.state.finish();
        // SAFETY: this worker still holds the task's RUNNING state, so the coroutine is ours.
        let coro = unsafe { task.coro() }.take().expect("finish runs once");
        let mut stack = coro.into_stack();
        stack.note_depth(task.low_water.get());
        self.stacks.borrow_mut().put(&self.shared.slabs, stack, Some(&self.shared.shared_stacks));
        let counters = &self.remote().counters;
        bump(&counters.finished, 1);
        let home = task.home.load(Relaxed);
        if home != NOT_STARTED {
            self.shared.remotes[home].counters.alive.fetch_sub(1, Relaxed);
        }
        self.shared.retire(&task);
    }

    /// Steals if the searching rules allow. A worker that finds work stops searching when it
    /// runs it (see `run_task`).
    fn search(&self) -> Option<Arc<Task>> {
        if !self.searching.get() {
            if !self.shared.idle.try_start_searching() {
                return None;
            }
            self.searching.set(true);
        }
        self.steal()
    }

    /// Leaves the searching state; the last searcher to find work wakes another to take over
    /// (rule 3 of `crate::idle`).
    fn stop_searching(&self) {
        self.searching.set(false);
        if self.shared.idle.stop_searching() {
            self.shared.notify_stealable();
        }
    }

    fn steal(&self) -> Option<Arc<Task>> {
        let remotes = &self.shared.remotes;
        let n = remotes.len();
        let start = self.next_random() as usize % n;
        for i in 0..n {
            let victim = (start + i) % n;
            if victim == self.index {
                continue;
            }
            let before = self.deque.len();
            loop {
                match remotes[victim].stealer.steal_batch_and_pop(&self.deque) {
                    Steal::Success(task) => {
                        let stolen = (self.deque.len() - before) as u64 + 1;
                        bump(&self.remote().counters.steals, stolen);
                        return Some(task);
                    }
                    Steal::Empty => break,
                    Steal::Retry => continue,
                }
            }
        }
        self.pop_injector()
    }

    fn next_random(&self) -> u64 {
        // xorshift64: only spreads the victims; quality does not matter.
        let mut x = self.rng.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng.set(x);
        x
    }

    /// Sleeps in `epoll_wait` until woken, an event, or the next timer.
    fn sleep(&self) {
        let was_searching = self.searching.replace(false);
        let shared = &self.shared;
        shared.idle.transition_to_parked(self.index, was_searching);
        if shared.has_stealable() {
            // Work appeared while this worker was giving up: search again. Either it takes
            // itself off the sleeper list as a searcher, or a notifier already did so. Every
            // worker re-checks here, not only the last searcher: a spawner that saw this
            // worker still awake woke nobody, and this check, made after the worker counted
            // itself out (SeqCst), is what sees that spawner's work.
            shared.idle.wake_self(self.index, true);
            self.searching.set(true);
            return;
        }
        let remote = self.remote();
        let spun = self.spin_for_wake(remote);
        // Woken while spinning, the CAS below fails on NOTIFIED; with local work ready, it is
        // not tried. Either way the loop goes on.
        if spun == Spin::TimedOut {
            self.stacks.borrow_mut().trim_idle();
        }
        let timeout = self
            .timers
            .borrow_mut()
            .next_deadline()
            .map(|d| d.saturating_duration_since(Instant::now()));
        if spun != Spin::LocalWork
            && remote.unpark.compare_exchange(AWAKE, SLEEPING, SeqCst, SeqCst).is_ok()
        {
            bump(&remote.counters.parks, 1);
            self.wait_io(timeout);
        }
        remote.unpark.store(AWAKE, SeqCst);
        if !shared.idle.wake_self(self.index, false) {
            // A notifier chose this worker and counted it as a searcher.
            self.searching.set(true);
        }
    }
}

/// How [`Local::spin_for_wake`] ended.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Spin {
    /// `Remote::unpark` left NOTIFIED.
    Woken,
    /// An I/O event made a coroutine of this worker ready.
    LocalWork,
    /// Nothing came within [`IDLE_SPIN`].
    TimedOut,
}

impl Local {
    /// Spins for up to [`IDLE_SPIN`] before sleeping, watching for a wake. Every wake of this
    /// worker (inbox work, a notifier choosing it, shutdown) goes through `Remote::unpark`,
    /// which leaves NOTIFIED here while the worker is not SLEEPING, so that one word is all
    /// there is to watch; with fds registered, it also looks at its epoll now and then, and
    /// stops when an event woke a coroutine.
    fn spin_for_wake(&self, remote: &Remote) -> Spin {
        if IDLE_SPIN.is_zero() {
            return Spin::TimedOut;
        }
        let until = Instant::now() + IDLE_SPIN;
        let mut spins = 0u32;
        while remote.unpark.load(Relaxed) == AWAKE {
            std::hint::spin_loop();
            spins = spins.wrapping_add(1);
            if spins % 64 == 0 {
                if self.poll_io() > 0 && (!self.runq.borrow().is_empty() || !self.deque.is_empty())
                {
                    return Spin::LocalWork;
                }
                if Instant::now() >= until {
                    return Spin::TimedOut;
                }
            }
        }
        Spin::Woken
    }
}

/// The worker loop running on this thread, if any.
///
/// The reference is only for use before the caller next switches coroutines (a migrated
/// coroutine would hold another thread's worker); its lifetime is the caller's choice.
pub(crate) fn current_local<'a>() -> Option<&'a Local> {
    let local = context::current_worker_ptr();
    // SAFETY: a non-null worker pointer is the `Local` of the loop running on this thread,
    // which outlives every coroutine and timer that runs on it; callers drop the reference
    // before they switch.
    unsafe { local.as_ref() }
}

/// The worker loop running on this thread, if it belongs to the runtime `shared`; see
/// [`current_local`].
pub(crate) fn local_of<'a>(shared: &Arc<Shared>) -> Option<&'a Local> {
    current_local().filter(|l| Arc::ptr_eq(&l.shared, shared))
}

/// Queues a coroutine whose park just ended, by the rules of the module docs.
pub(crate) fn schedule(task: Arc<Task>) {
    if let Some(local) = local_of(&task.shared) {
        if local.migrate {
            local.deque.push(task);
            local.shared.notify_stealable();
            return;
        }
        if local.index == task.home.load(Relaxed) {
            local.runq.borrow_mut().push_back(task);
            return;
        }
    }
    // From another thread. Hold the runtime while touching it: once the task is pushed, its
    // worker may finish it and drop the last other reference.
    let shared = task.shared.clone();
    if shared.config.migrate {
        shared.injector.push(task);
        shared.notify_stealable();
    } else {
        let home = task.home.load(Relaxed);
        debug_assert_ne!(home, NOT_STARTED, "only started coroutines park");
        let remote = &shared.remotes[home];
        remote.inbox.push(task);
        remote.unpark();
    }
}

/// Bumps an I/O counter of the worker the calling coroutine runs on.
pub(crate) fn count_io(counter: impl FnOnce(&crate::metrics::Counters) -> &AtomicU64) {
    if let Some(local) = current_local() {
        bump(counter(&local.remote().counters), 1);
    }
}

/// Arms a timer for park `gen` of `task` on the current worker.
pub(crate) fn add_timer(deadline: Instant, task: Arc<Task>, gen: u64) {
    // Timers are only added by running coroutines, whose thread runs a worker loop.
    let local = current_local().expect("a coroutine runs on a worker");
    local.timers.borrow_mut().insert(deadline, task, gen);
}
