//! Micro-benchmarks of `weft::sync` against its peers, each group measuring every peer in the
//! same run.
//!
//! ```text
//! group                   weft                                   peers
//! pingpong_one_worker     2 coroutines, 1 worker, mpsc::channel  may (1 worker, may mpsc),
//!                                                                tokio current_thread (unbounded mpsc),
//!                                                                2 std threads (std mpsc),
//!                                                                2 std threads (crossbeam unbounded)
//! pingpong_cross_worker   2 coroutines pinned to workers 0 and   tokio multi_thread, 2 workers
//!                         1 of 2, mpsc::channel                  (may: skipped, see below)
//! mutex_contended/N       N coroutines on 2 workers (pinned      N std threads, std Mutex;
//!                         round-robin), sync::Mutex; and the     may (1 worker), may Mutex;
//!                         same on 1 worker                       tokio multi_thread (2), tokio Mutex
//! spsc_throughput         producer and consumer coroutines on    std mpsc and sync_channel(1024),
//!                         workers 0 and 1 of 2: mpsc::channel,  crossbeam unbounded / bounded(1024),
//!                         sync_channel(1024); and channel on     on 2 threads; may mpsc (1 worker);
//!                         1 worker                               tokio multi_thread (2) unbounded /
//!                                                                channel(1024)
//! ```
//!
//! What one iteration is:
//!
//! - `pingpong_*`: a round trip, A sends a `u64` to B and B sends it back, two hand-offs through
//!   two channels. A times its own loop after one untimed round trip, so both sides have started
//!   and are waiting in `recv` when the clock starts.
//! - `mutex_contended/N`: N × `MUTEX_OPS` lock / increment / unlock, reported per lock
//!   acquisition (`Throughput::Elements`). N in {2, 8, 64} (64 is also the cap on threads).
//! - `spsc_throughput`: `SPSC_MSGS` messages from the producer to the consumer, reported per
//!   message.
//!
//! Timed sections: the ping-pongs time inside side A (as `runtime.rs` does), so start-up, spawn
//! and join stay outside. The gangs (`mutex_contended`, `spsc_throughput`) are spawned, wait on
//! a barrier of their own library (`weft::sync::Barrier`, `may::sync::Barrier`, std's, tokio's)
//! until every member has arrived, and the clock runs from the barrier's release to the last
//! join: thread spawn (tens of µs) stays outside, the barrier's wake-up fan-out and the joins
//! are inside, once per sample.
//!
//! may is configured once for the whole process (its scheduler is global and reads its
//! configuration once, when it starts): 1 worker, no core pinning (weft does not pin), 64 KiB
//! stacks (weft's default). So every may case runs on 1 worker, and is compared with a weft
//! case on 1 worker as well as the 2-worker one. may has no `pingpong_cross_worker` case: a
//! second may scheduler with 2 workers cannot exist in this process, and may cannot place a
//! coroutine on a given worker anyway. may's mpsc has no bounded flavour.
//!
//! tokio cannot place a task on a given worker either: in `pingpong_cross_worker` its LIFO slot
//! runs the woken task on the waker's worker, so most hops stay on one thread; the bench prints
//! the share that crossed threads.

use std::cell::OnceCell;
use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use crossbeam_channel as crossbeam;
use may::sync::mpsc as may_mpsc;
use weft::sync::mpsc as weft_mpsc;

/// Lock acquisitions per member of a `mutex_contended` gang, per iteration.
const MUTEX_OPS: u64 = 1_000;
/// Gang sizes of `mutex_contended`; the largest is also the cap on std threads.
const MUTEX_GANGS: [usize; 3] = [2, 8, 64];
/// Messages per `spsc_throughput` iteration.
const SPSC_MSGS: u64 = 10_000;
/// Capacity of the bounded channels.
const BOUND: usize = 1024;
/// may's stack size is counted in words: 0x2000 words = 64 KiB, weft's default.
const MAY_STACK_WORDS: usize = 0x2000;

fn configure_may() {
    let config = may::config();
    config.set_workers(1).set_stack_size(MAY_STACK_WORDS);
    config.set_worker_pin(false);
}

fn weft_runtime(workers: usize) -> weft::Runtime {
    weft::Runtime::builder().workers(workers).build().expect("build weft runtime")
}

fn tokio_current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().build().expect("build tokio runtime")
}

fn tokio_multi_thread(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .build()
        .expect("build tokio runtime")
}

// ---------------------------------------------------------------------------------------------
// Executors and channels with a blocking API: weft, may, std threads
// ---------------------------------------------------------------------------------------------

/// What the cases need of something that runs blocking-style code: a runtime of coroutines, or
/// plain threads.
trait Exec {
    type Barrier: Send + Sync + 'static;
    fn barrier(n: usize) -> Self::Barrier;
    fn wait(barrier: &Self::Barrier);
    /// Runs `f` in the executor's context (a coroutine, for a runtime) and waits for it.
    fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T;
    /// Spawns `f` from inside `run`, on worker `worker` where the executor can place it;
    /// returns a closure that joins it.
    fn spawn<T: Send + 'static>(
        worker: Option<usize>,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Box<dyn FnOnce() -> T>;
    /// A short wait inside a polling loop.
    fn pause();
}

impl Exec for weft::Runtime {
    type Barrier = weft::sync::Barrier;
    fn barrier(n: usize) -> Self::Barrier {
        weft::sync::Barrier::new(n)
    }
    fn wait(barrier: &Self::Barrier) {
        barrier.wait();
    }
    fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        self.block_on(f)
    }
    fn spawn<T: Send + 'static>(
        worker: Option<usize>,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Box<dyn FnOnce() -> T> {
        let builder = weft::Builder::new();
        let builder = match worker {
            Some(index) => builder.worker(index),
            None => builder,
        };
        let handle = builder.spawn(f).expect("spawn weft coroutine");
        Box::new(move || handle.join().expect("weft coroutine panicked"))
    }
    fn pause() {
        weft::yield_now();
    }
}

/// may's scheduler is global; this stands for it.
struct May;

impl Exec for May {
    type Barrier = may::sync::Barrier;
    fn barrier(n: usize) -> Self::Barrier {
        may::sync::Barrier::new(n)
    }
    fn wait(barrier: &Self::Barrier) {
        barrier.wait();
    }
    fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        May::spawn(None, f)()
    }
    fn spawn<T: Send + 'static>(
        _worker: Option<usize>,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Box<dyn FnOnce() -> T> {
        // `go!` is may's unsafe `spawn` behind a safe face. Its conditions (no thread-local
        // storage, stay within the stack) hold for every closure this file passes in.
        let handle = may::go!(f);
        Box::new(move || handle.join().expect("may coroutine panicked"))
    }
    fn pause() {
        // Not `yield_now`: a coroutine that yields in may's local queue starves its global
        // queue, where the coroutines it is waiting for were spawned. A sleep parks it.
        may::coroutine::sleep(Duration::from_micros(20));
    }
}

/// Plain OS threads; `run` runs on the bench's own thread.
struct Threads;

impl Exec for Threads {
    type Barrier = std::sync::Barrier;
    fn barrier(n: usize) -> Self::Barrier {
        std::sync::Barrier::new(n)
    }
    fn wait(barrier: &Self::Barrier) {
        barrier.wait();
    }
    fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        f()
    }
    fn spawn<T: Send + 'static>(
        _worker: Option<usize>,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Box<dyn FnOnce() -> T> {
        let handle = std::thread::spawn(f);
        Box::new(move || handle.join().expect("thread panicked"))
    }
    fn pause() {
        std::thread::yield_now();
    }
}

/// A channel of `u64` with a blocking API, std's shape.
trait Channel: 'static {
    type Tx: Send + 'static;
    type Rx: Send + 'static;
    fn pair() -> (Self::Tx, Self::Rx);
    /// False once the receiver is gone.
    fn send(tx: &Self::Tx, value: u64) -> bool;
    /// `None` once every sender is gone and the channel is empty.
    fn recv(rx: &Self::Rx) -> Option<u64>;
}

/// [`Channel`]s, each made by its `$make`, whose ends have std's `send` and `recv`.
macro_rules! channel_kinds {
    ($($(#[$doc:meta])* $name:ident($tx:ty, $rx:ty) = $make:expr;)*) => {$(
        $(#[$doc])*
        struct $name;

        impl Channel for $name {
            type Tx = $tx;
            type Rx = $rx;
            fn pair() -> (Self::Tx, Self::Rx) {
                $make
            }
            fn send(tx: &Self::Tx, value: u64) -> bool {
                tx.send(value).is_ok()
            }
            fn recv(rx: &Self::Rx) -> Option<u64> {
                rx.recv().ok()
            }
        }
    )*};
}

channel_kinds! {
    /// `weft::sync::mpsc::channel`.
    WeftUnbounded(weft_mpsc::Sender<u64>, weft_mpsc::Receiver<u64>) = weft_mpsc::channel();
    /// `weft::sync::mpsc::sync_channel(BOUND)`.
    WeftBounded(weft_mpsc::SyncSender<u64>, weft_mpsc::Receiver<u64>) = weft_mpsc::sync_channel(BOUND);
    /// `std::sync::mpsc::channel`.
    StdUnbounded(std_mpsc::Sender<u64>, std_mpsc::Receiver<u64>) = std_mpsc::channel();
    /// `std::sync::mpsc::sync_channel(BOUND)`.
    StdBounded(std_mpsc::SyncSender<u64>, std_mpsc::Receiver<u64>) = std_mpsc::sync_channel(BOUND);
    /// `crossbeam_channel::unbounded`.
    CrossbeamUnbounded(crossbeam::Sender<u64>, crossbeam::Receiver<u64>) = crossbeam::unbounded();
    /// `crossbeam_channel::bounded(BOUND)`.
    CrossbeamBounded(crossbeam::Sender<u64>, crossbeam::Receiver<u64>) = crossbeam::bounded(BOUND);
    /// `may::sync::mpsc::channel` (may has no bounded mpsc).
    MayUnbounded(may_mpsc::Sender<u64>, may_mpsc::Receiver<u64>) = may_mpsc::channel();
}

/// A `Mutex<u64>` with a blocking API, std's shape.
trait Lock: Send + Sync + 'static {
    fn new() -> Self;
    fn increment(&self);
    fn value(&self) -> u64;
}

/// Implements [`Lock`] for a `Mutex<u64>` type whose `lock` returns std's `LockResult`.
macro_rules! lock_kind {
    ($mutex:ty) => {
        impl Lock for $mutex {
            fn new() -> Self {
                <$mutex>::new(0)
            }
            fn increment(&self) {
                *self.lock().unwrap() += 1;
            }
            fn value(&self) -> u64 {
                *self.lock().unwrap()
            }
        }
    };
}

lock_kind!(weft::sync::Mutex<u64>);
lock_kind!(may::sync::Mutex<u64>);
lock_kind!(std::sync::Mutex<u64>);

/// A member of a gang: where to place it, and what it does.
type Job = (Option<usize>, Box<dyn FnOnce() + Send>);

/// Spawns the jobs, lets them through a barrier once all have arrived, and times from there to
/// the last join.
fn timed_gang<E: Exec>(exec: &E, jobs: Vec<Job>) -> Duration {
    exec.run(move || {
        let n = jobs.len();
        // Release/Acquire: the count publishes nothing else; Acquire keeps the clock read
        // below after the loads.
        let arrived = Arc::new(AtomicUsize::new(0));
        let gate = Arc::new(E::barrier(n + 1));
        let handles: Vec<_> = jobs
            .into_iter()
            .map(|(worker, job)| {
                let (arrived, gate) = (arrived.clone(), gate.clone());
                E::spawn(worker, move || {
                    arrived.fetch_add(1, Ordering::Release);
                    E::wait(&gate);
                    job();
                })
            })
            .collect();
        // Every member has started (threads spawned, coroutines placed) before the clock runs.
        while arrived.load(Ordering::Acquire) < n {
            E::pause();
        }
        let start = Instant::now();
        E::wait(&gate);
        for join in handles {
            join();
        }
        start.elapsed()
    })
}

// ---------------------------------------------------------------------------------------------
// pingpong
// ---------------------------------------------------------------------------------------------

/// `iters` round trips between A (placed on `workers[0]`) and B (on `workers[1]`); returns A's
/// time and whether the two ran on one OS thread.
fn pingpong<E: Exec, C: Channel>(
    exec: &E,
    workers: [Option<usize>; 2],
    iters: u64,
) -> (Duration, bool) {
    exec.run(move || {
        let (to_b, from_a) = C::pair();
        let (to_a, from_b) = C::pair();
        let b = E::spawn(workers[1], move || {
            while let Some(value) = C::recv(&from_a) {
                if !C::send(&to_a, value) {
                    break;
                }
            }
            std::thread::current().id()
        });
        let a = E::spawn(workers[0], move || {
            // One untimed round trip: B has started and waits in `recv`.
            assert!(C::send(&to_b, 0));
            C::recv(&from_b).expect("B answers");
            let start = Instant::now();
            for i in 0..iters {
                C::send(&to_b, i);
                black_box(C::recv(&from_b));
            }
            let elapsed = start.elapsed();
            // Dropping `to_b` (on return) ends B's loop.
            (elapsed, std::thread::current().id())
        });
        let (elapsed, a_thread) = a();
        let b_thread = b();
        (elapsed, a_thread == b_thread)
    })
}

/// The same with tokio tasks and `tokio::sync::mpsc::unbounded_channel`; returns A's time.
fn tokio_pingpong(rt: &tokio::runtime::Runtime, iters: u64) -> Duration {
    rt.block_on(async move {
        let (to_b, mut from_a) = tokio::sync::mpsc::unbounded_channel::<u64>();
        let (to_a, mut from_b) = tokio::sync::mpsc::unbounded_channel::<u64>();
        let b = tokio::spawn(async move {
            while let Some(value) = from_a.recv().await {
                if to_a.send(value).is_err() {
                    break;
                }
            }
        });
        let a = tokio::spawn(async move {
            to_b.send(0).expect("B is alive");
            from_b.recv().await.expect("B answers");
            let start = Instant::now();
            for i in 0..iters {
                let _ = to_b.send(i);
                black_box(from_b.recv().await);
            }
            start.elapsed()
        });
        let elapsed = a.await.expect("tokio task panicked");
        b.await.expect("tokio task panicked");
        elapsed
    })
}

/// The share of tokio ping-pong hops (A → B or B → A) whose receiver ran on another OS thread
/// than the sender.
fn tokio_crossing_share(rt: &tokio::runtime::Runtime) -> f64 {
    const ROUND_TRIPS: usize = 10_000;
    rt.block_on(async {
        let (to_b, mut from_a) = tokio::sync::mpsc::unbounded_channel::<ThreadId>();
        let (to_a, mut from_b) = tokio::sync::mpsc::unbounded_channel::<(bool, ThreadId)>();
        let b = tokio::spawn(async move {
            while let Some(sender) = from_a.recv().await {
                let here = std::thread::current().id();
                if to_a.send((sender != here, here)).is_err() {
                    break;
                }
            }
        });
        let a = tokio::spawn(async move {
            let mut crossed = 0;
            for _ in 0..ROUND_TRIPS {
                let _ = to_b.send(std::thread::current().id());
                let (b_crossed, b_thread) = from_b.recv().await.expect("B answers");
                crossed += usize::from(b_crossed);
                crossed += usize::from(b_thread != std::thread::current().id());
            }
            crossed
        });
        let crossed = a.await.expect("tokio task panicked");
        b.await.expect("tokio task panicked");
        crossed as f64 / (2 * ROUND_TRIPS) as f64
    })
}

fn pingpong_one_worker(c: &mut Criterion) {
    let mut group = c.benchmark_group("pingpong_one_worker");

    // Built on first use, so that a name filter that skips the case skips its runtime too.
    let rt = OnceCell::new();
    group.bench_function("weft_1_worker", |b| {
        let rt = rt.get_or_init(|| weft_runtime(1));
        b.iter_custom(|iters| {
            let (elapsed, same_thread) = pingpong::<_, WeftUnbounded>(rt, [None, None], iters);
            assert!(same_thread, "one worker, yet two threads");
            elapsed
        })
    });
    drop(rt);

    group.bench_function("may_1_worker", |b| {
        b.iter_custom(|iters| pingpong::<_, MayUnbounded>(&May, [None, None], iters).0)
    });

    let rt = OnceCell::new();
    group.bench_function("tokio_current_thread", |b| {
        let rt = rt.get_or_init(tokio_current_thread);
        b.iter_custom(|iters| tokio_pingpong(rt, iters))
    });
    drop(rt);

    group.bench_function("std_threads_std_mpsc", |b| {
        b.iter_custom(|iters| pingpong::<_, StdUnbounded>(&Threads, [None, None], iters).0)
    });

    group.bench_function("std_threads_crossbeam", |b| {
        b.iter_custom(|iters| pingpong::<_, CrossbeamUnbounded>(&Threads, [None, None], iters).0)
    });

    group.finish();
}

fn pingpong_cross_worker(c: &mut Criterion) {
    let mut group = c.benchmark_group("pingpong_cross_worker");

    let rt = OnceCell::new();
    group.bench_function("weft_2_workers_pinned", |b| {
        let rt = rt.get_or_init(|| weft_runtime(2));
        b.iter_custom(|iters| {
            let (elapsed, same_thread) =
                pingpong::<_, WeftUnbounded>(rt, [Some(0), Some(1)], iters);
            assert!(!same_thread, "pinned to two workers, yet one thread");
            elapsed
        })
    });
    drop(rt);

    let rt = OnceCell::new();
    group.bench_function("tokio_multi_thread_2_workers", |b| {
        let rt = rt.get_or_init(|| {
            let rt = tokio_multi_thread(2);
            eprintln!(
                "note: tokio multi_thread ping-pong: {:.1}% of hops crossed threads",
                100.0 * tokio_crossing_share(&rt)
            );
            rt
        });
        b.iter_custom(|iters| tokio_pingpong(rt, iters))
    });
    drop(rt);

    // No may case: see the module's documentation (one global may scheduler, 1 worker).

    group.finish();
}

// ---------------------------------------------------------------------------------------------
// mutex_contended
// ---------------------------------------------------------------------------------------------

/// `n` members each doing `iters × MUTEX_OPS` increments under `L`; member `i` placed on worker
/// `i % spread` where the executor places.
fn mutex_gang<E: Exec, L: Lock>(exec: &E, n: usize, spread: usize, iters: u64) -> Duration {
    let lock = Arc::new(L::new());
    let per_member = iters * MUTEX_OPS;
    let jobs = (0..n)
        .map(|i| {
            let lock = lock.clone();
            let job: Box<dyn FnOnce() + Send> = Box::new(move || {
                for _ in 0..per_member {
                    lock.increment();
                }
            });
            (Some(i % spread), job)
        })
        .collect();
    let elapsed = timed_gang(exec, jobs);
    assert_eq!(lock.value(), n as u64 * per_member, "lost increments");
    elapsed
}

/// A tokio task of a gang.
type AsyncJob = Pin<Box<dyn Future<Output = ()> + Send>>;

/// [`timed_gang`] with tokio tasks and `tokio::sync::Barrier`.
fn tokio_timed_gang(rt: &tokio::runtime::Runtime, jobs: Vec<AsyncJob>) -> Duration {
    rt.block_on(async move {
        let n = jobs.len();
        let arrived = Arc::new(AtomicUsize::new(0));
        let gate = Arc::new(tokio::sync::Barrier::new(n + 1));
        let handles: Vec<_> = jobs
            .into_iter()
            .map(|job| {
                let (arrived, gate) = (arrived.clone(), gate.clone());
                tokio::spawn(async move {
                    arrived.fetch_add(1, Ordering::Release);
                    gate.wait().await;
                    job.await;
                })
            })
            .collect();
        while arrived.load(Ordering::Acquire) < n {
            tokio::task::yield_now().await;
        }
        let start = Instant::now();
        gate.wait().await;
        for handle in handles {
            handle.await.expect("tokio task panicked");
        }
        start.elapsed()
    })
}

fn tokio_mutex_gang(rt: &tokio::runtime::Runtime, n: usize, iters: u64) -> Duration {
    let lock = Arc::new(tokio::sync::Mutex::new(0u64));
    let per_member = iters * MUTEX_OPS;
    let jobs = (0..n)
        .map(|_| {
            let lock = lock.clone();
            Box::pin(async move {
                for _ in 0..per_member {
                    *lock.lock().await += 1;
                }
            }) as AsyncJob
        })
        .collect();
    let elapsed = tokio_timed_gang(rt, jobs);
    assert_eq!(*lock.try_lock().expect("no task left"), n as u64 * per_member, "lost increments");
    elapsed
}

fn mutex_contended(c: &mut Criterion) {
    let mut group = c.benchmark_group("mutex_contended");
    // An iteration is thousands of acquisitions; the default linear sampling would ask for far
    // more than the measurement time at 64 threads.
    group.sampling_mode(SamplingMode::Flat).sample_size(20);

    let weft_2 = OnceCell::new();
    let weft_1 = OnceCell::new();
    let tokio_2 = OnceCell::new();
    for n in MUTEX_GANGS {
        group.throughput(Throughput::Elements(n as u64 * MUTEX_OPS));
        group.bench_with_input(BenchmarkId::new("weft_2_workers", n), &n, |b, &n| {
            let rt = weft_2.get_or_init(|| weft_runtime(2));
            b.iter_custom(|iters| mutex_gang::<_, weft::sync::Mutex<u64>>(rt, n, 2, iters))
        });
        group.bench_with_input(BenchmarkId::new("weft_1_worker", n), &n, |b, &n| {
            let rt = weft_1.get_or_init(|| weft_runtime(1));
            b.iter_custom(|iters| mutex_gang::<_, weft::sync::Mutex<u64>>(rt, n, 1, iters))
        });
        group.bench_with_input(BenchmarkId::new("may_1_worker", n), &n, |b, &n| {
            b.iter_custom(|iters| mutex_gang::<_, may::sync::Mutex<u64>>(&May, n, 1, iters))
        });
        group.bench_with_input(BenchmarkId::new("tokio_multi_thread_2_workers", n), &n, |b, &n| {
            let rt = tokio_2.get_or_init(|| tokio_multi_thread(2));
            b.iter_custom(|iters| tokio_mutex_gang(rt, n, iters))
        });
        group.bench_with_input(BenchmarkId::new("std_threads", n), &n, |b, &n| {
            b.iter_custom(|iters| mutex_gang::<_, std::sync::Mutex<u64>>(&Threads, n, 1, iters))
        });
    }

    group.finish();
}

// ---------------------------------------------------------------------------------------------
// spsc_throughput
// ---------------------------------------------------------------------------------------------

/// One producer sending `iters × SPSC_MSGS` messages through a `C` to one consumer, producer
/// placed on `workers[0]` and consumer on `workers[1]`.
fn spsc_gang<E: Exec, C: Channel>(exec: &E, workers: [Option<usize>; 2], iters: u64) -> Duration {
    let total = iters * SPSC_MSGS;
    let (tx, rx) = C::pair();
    let received = Arc::new(AtomicU64::new(0));
    let received2 = received.clone();
    let consumer: Box<dyn FnOnce() + Send> = Box::new(move || {
        let mut count = 0;
        while let Some(value) = C::recv(&rx) {
            black_box(value);
            count += 1;
        }
        received2.store(count, Ordering::Relaxed);
    });
    let producer: Box<dyn FnOnce() + Send> = Box::new(move || {
        for i in 0..total {
            assert!(C::send(&tx, i), "consumer gone");
        }
        // Dropping `tx` ends the consumer's loop.
    });
    let elapsed = timed_gang(exec, vec![(workers[1], consumer), (workers[0], producer)]);
    // Relaxed: the joins ordered the store before this load.
    assert_eq!(received.load(Ordering::Relaxed), total, "lost messages");
    elapsed
}

/// The consumer of [`tokio_spsc_gang`], on either flavour of tokio receiver (`poll_recv` is
/// the receiver's own; its `recv` is that same poll): counts what it receives into `received`.
fn tokio_consumer<R: Send + 'static>(
    mut rx: R,
    poll_recv: fn(&mut R, &mut Context<'_>) -> Poll<Option<u64>>,
    received: Arc<AtomicU64>,
) -> AsyncJob {
    Box::pin(async move {
        let mut count = 0;
        while let Some(value) = std::future::poll_fn(|cx| poll_recv(&mut rx, cx)).await {
            black_box(value);
            count += 1;
        }
        received.store(count, Ordering::Relaxed);
    })
}

/// The same with tokio tasks; `bounded` picks `channel(BOUND)` over `unbounded_channel`.
fn tokio_spsc_gang(rt: &tokio::runtime::Runtime, bounded: bool, iters: u64) -> Duration {
    let total = iters * SPSC_MSGS;
    let received = Arc::new(AtomicU64::new(0));
    let received2 = received.clone();
    let jobs: Vec<AsyncJob> = if bounded {
        let (tx, rx) = tokio::sync::mpsc::channel::<u64>(BOUND);
        vec![
            tokio_consumer(rx, tokio::sync::mpsc::Receiver::poll_recv, received2),
            Box::pin(async move {
                for i in 0..total {
                    tx.send(i).await.expect("consumer gone");
                }
            }),
        ]
    } else {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<u64>();
        vec![
            tokio_consumer(rx, tokio::sync::mpsc::UnboundedReceiver::poll_recv, received2),
            Box::pin(async move {
                for i in 0..total {
                    tx.send(i).expect("consumer gone");
                }
            }),
        ]
    };
    let elapsed = tokio_timed_gang(rt, jobs);
    assert_eq!(received.load(Ordering::Relaxed), total, "lost messages");
    elapsed
}

fn spsc_throughput(c: &mut Criterion) {
    let mut group = c.benchmark_group("spsc_throughput");
    group.sampling_mode(SamplingMode::Flat).sample_size(20);
    group.throughput(Throughput::Elements(SPSC_MSGS));

    let rt = OnceCell::new();
    let cross = [Some(0), Some(1)];
    group.bench_function("weft_2_workers_unbounded", |b| {
        let rt = rt.get_or_init(|| weft_runtime(2));
        b.iter_custom(|iters| spsc_gang::<_, WeftUnbounded>(rt, cross, iters))
    });
    group.bench_function("weft_2_workers_sync_channel_1024", |b| {
        let rt = rt.get_or_init(|| weft_runtime(2));
        b.iter_custom(|iters| spsc_gang::<_, WeftBounded>(rt, cross, iters))
    });
    drop(rt);

    let rt = OnceCell::new();
    group.bench_function("weft_1_worker_unbounded", |b| {
        let rt = rt.get_or_init(|| weft_runtime(1));
        b.iter_custom(|iters| spsc_gang::<_, WeftUnbounded>(rt, [None, None], iters))
    });
    drop(rt);

    group.bench_function("may_1_worker_unbounded", |b| {
        b.iter_custom(|iters| spsc_gang::<_, MayUnbounded>(&May, [None, None], iters))
    });

    let threads = [None, None];
    group.bench_function("std_threads_std_mpsc_unbounded", |b| {
        b.iter_custom(|iters| spsc_gang::<_, StdUnbounded>(&Threads, threads, iters))
    });
    group.bench_function("std_threads_std_sync_channel_1024", |b| {
        b.iter_custom(|iters| spsc_gang::<_, StdBounded>(&Threads, threads, iters))
    });
    group.bench_function("std_threads_crossbeam_unbounded", |b| {
        b.iter_custom(|iters| spsc_gang::<_, CrossbeamUnbounded>(&Threads, threads, iters))
    });
    group.bench_function("std_threads_crossbeam_bounded_1024", |b| {
        b.iter_custom(|iters| spsc_gang::<_, CrossbeamBounded>(&Threads, threads, iters))
    });

    let rt = OnceCell::new();
    group.bench_function("tokio_multi_thread_2_workers_unbounded", |b| {
        let rt = rt.get_or_init(|| tokio_multi_thread(2));
        b.iter_custom(|iters| tokio_spsc_gang(rt, false, iters))
    });
    group.bench_function("tokio_multi_thread_2_workers_channel_1024", |b| {
        let rt = rt.get_or_init(|| tokio_multi_thread(2));
        b.iter_custom(|iters| tokio_spsc_gang(rt, true, iters))
    });
    drop(rt);

    group.finish();
}

/// The criterion configuration; also configures may, before any may coroutine exists (may reads
/// its configuration once, when its global scheduler starts).
fn criterion_config() -> Criterion {
    configure_may();
    // Short: 32 cases, and the whole bench should stay within a few minutes on 2 cores.
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args()
}

criterion_group! {
    name = benches;
    config = criterion_config();
    targets = pingpong_one_worker, pingpong_cross_worker, mutex_contended, spsc_throughput
}
criterion_main!(benches);
