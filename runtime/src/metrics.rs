//! Runtime counters. They stay on because they are cheap: each worker bumps its own, on its own
//! cache line, with plain relaxed load-and-store where it is the only writer.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// A snapshot of a runtime's counters, from [`Runtime::metrics`](crate::Runtime::metrics).
///
/// ```
/// let rt = weft::Runtime::builder().workers(2).build()?;
/// rt.block_on(|| weft::spawn(|| ()).join().unwrap());
/// assert_eq!(rt.metrics().workers.len(), 2);
/// // A worker counts a coroutine as finished when it cleans it up, just after the coroutine's
/// // result reaches its `join`: the count catches up a moment later.
/// let finished = || rt.metrics().workers.iter().map(|w| w.finished).sum::<u64>();
/// while finished() < 2 {
///     std::thread::yield_now();
/// }
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct RuntimeMetrics {
    /// One entry per worker, in worker order.
    pub workers: Vec<WorkerMetrics>,
    /// Coroutines spawned and not yet finished, runtime-wide.
    pub alive: u64,
    /// Coroutines spawned from threads outside the runtime (through the global queue).
    pub spawned_outside: u64,
    /// Coroutine stacks mapped now, in use or pooled.
    pub stacks_mapped: usize,
    /// Coroutine stacks held by coroutines now.
    pub stacks_in_use: usize,
}

/// One worker's counters; see [`RuntimeMetrics`].
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct WorkerMetrics {
    /// Coroutines spawned by coroutines running on this worker.
    pub spawned: u64,
    /// Coroutines that finished on this worker.
    pub finished: u64,
    /// Coroutines started on this worker and not finished yet.
    pub alive: u64,
    /// Coroutine resumes.
    pub switches: u64,
    /// Coroutines this worker stole from other workers' queues.
    pub steals: u64,
    /// Times this worker went to sleep for lack of work.
    pub parks: u64,
    /// `epoll_wait` calls.
    pub polls: u64,
    /// Events `epoll_wait` returned.
    pub events: u64,
    /// Parks of coroutines on this worker waiting for fd readiness.
    pub io_waits: u64,
    /// Those parks that a readiness edge ended, after which the call would still block: wakes
    /// for readiness that was already used up, or would be, for a closed and reused fd, stale.
    pub io_spurious: u64,
}

/// The live counters behind [`WorkerMetrics`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) spawned: AtomicU64,
    pub(crate) finished: AtomicU64,
    pub(crate) alive: AtomicU64,
    pub(crate) steals: AtomicU64,
    pub(crate) parks: AtomicU64,
    pub(crate) polls: AtomicU64,
    pub(crate) events: AtomicU64,
    pub(crate) io_waits: AtomicU64,
    pub(crate) io_spurious: AtomicU64,
}

/// Adds `n` to a counter that only the calling worker writes.
pub(crate) fn bump(counter: &AtomicU64, n: u64) {
    counter.store(counter.load(Relaxed).wrapping_add(n), Relaxed);
}

impl Counters {
    /// The counters, with the switch count kept apart on the monitor's line.
    pub(crate) fn snapshot(&self, switches: &AtomicU64) -> WorkerMetrics {
        WorkerMetrics {
            spawned: self.spawned.load(Relaxed),
            finished: self.finished.load(Relaxed),
            alive: self.alive.load(Relaxed),
            switches: switches.load(Relaxed),
            steals: self.steals.load(Relaxed),
            parks: self.parks.load(Relaxed),
            polls: self.polls.load(Relaxed),
            events: self.events.load(Relaxed),
            io_waits: self.io_waits.load(Relaxed),
            io_spurious: self.io_spurious.load(Relaxed),
        }
    }
}
