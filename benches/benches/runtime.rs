//! Micro-benchmarks of the weft runtime against its peers, each group measuring every peer in
//! the same run.
//!
//! ```text
//! group                     weft                                    peers
//! yield_round_trip          2 coroutines, 1 worker, yield_now       corosensei pair (the floor),
//!                                                                   deque + corosensei loop,
//!                                                                   may (1 worker),
//!                                                                   tokio current_thread (2 tasks),
//!                                                                   2 std threads on one CPU
//! spawn_join                10,000 empty coroutines, 1 worker       may (1 worker),
//!                                                                   tokio current_thread (10,000
//!                                                                   tasks), std threads (batches
//!                                                                   of 100)
//! park_unpark_cross_worker  2 coroutines on 2 workers, park/unpark  2 std threads, park/unpark
//! ```
//!
//! What one iteration is:
//!
//! - `yield_round_trip`: one yield by each of the two coroutines, that is four stack switches
//!   (A → scheduler → B → scheduler → A). The corosensei floors do the same four switches: two
//!   resume/suspend pairs. tokio's tasks return to the scheduler instead (`yield_now().await`),
//!   and the two threads call `sched_yield` while pinned to one CPU, which is the kernel's
//!   round trip between them.
//! - `spawn_join`: a batch, reported per element (`Throughput::Elements`).
//! - `park_unpark_cross_worker`: a round trip A → B → A, two hand-offs, each an unpark of a
//!   parked peer on the other worker (or thread) and a park.
//!
//! Timed sections run inside the coroutines (`iter_custom`), so runtime start-up, `block_on`'s
//! cross-thread hand-off and the spawn of the measuring coroutines stay outside the numbers.
//!
//! may is configured once for the whole process (its scheduler is global): 1 worker, no core
//! pinning (weft does not pin), 64 KiB stacks (weft's default; may's own default is 32 KiB), and a
//! stack pool large enough to hold a whole `spawn_join` batch (weft's free list is unbounded;
//! may's default pool keeps 1,000), so both reuse stacks across batches.

use std::cell::OnceCell;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once, OnceLock};
use std::time::{Duration, Instant};

use corosensei::{Coroutine, CoroutineResult, Yielder};
use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use crossbeam_deque::Worker;

/// Coroutines per `spawn_join` batch for weft and may.
const SPAWN_BATCH: usize = 10_000;
/// Threads per `spawn_join` batch for std: a thread costs tens of microseconds, and 10,000 live
/// threads would measure the kernel's limits rather than spawn + join.
const THREAD_BATCH: usize = 100;
/// may's stack size is counted in words: 0x2000 words = 64 KiB, weft's default.
const MAY_STACK_WORDS: usize = 0x2000;
/// How long the cross-worker handshake may spin before the bench gives up: far beyond the
/// 10 ms after which weft's monitor serves a busy worker's unstarted coroutines.
const HANDSHAKE_LIMIT: Duration = Duration::from_secs(10);

fn configure_may() {
    let config = may::config();
    config.set_workers(1).set_stack_size(MAY_STACK_WORDS).set_pool_capacity(SPAWN_BATCH);
    config.set_worker_pin(false);
}

fn weft_runtime(workers: usize) -> weft::Runtime {
    weft::Runtime::builder().workers(workers).build().expect("build weft runtime")
}

/// The same, with started coroutines free to migrate between workers, to weigh the two modes
/// against each other.
fn weft_runtime_migrating(workers: usize) -> weft::Runtime {
    let builder = weft::Runtime::builder().workers(workers);
    // SAFETY: the benchmark coroutines hold only `Arc`s, atomics and plain data across their
    // yields and parks: nothing tied to a thread.
    unsafe { builder.migrate_started_coroutines() }.build().expect("build weft runtime")
}

// ---------------------------------------------------------------------------------------------
// yield_round_trip
// ---------------------------------------------------------------------------------------------

/// A corosensei coroutine that suspends until it is resumed with `true`, then returns.
type Bare = Coroutine<bool, (), ()>;

fn bare_yielder() -> Bare {
    Coroutine::new(|yielder: &Yielder<bool, ()>, mut stop: bool| {
        while !stop {
            stop = yielder.suspend(());
        }
    })
}

/// Lets a bare coroutine return, so that it is not dropped suspended (which would unwind it).
fn finish_bare(mut co: Bare) {
    assert!(matches!(co.resume(true), CoroutineResult::Return(())));
}

/// What the yield and spawn cases need of a runtime.
trait Scheduler {
    const NAME: &'static str;
    /// Runs `f` as a coroutine and waits for it, from a plain thread.
    fn block_on<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T;
    /// Spawns `f` from inside a coroutine; returns a closure that joins it.
    fn spawn<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Box<dyn FnOnce() -> T>;
    fn yield_now();
}

impl Scheduler for weft::Runtime {
    const NAME: &'static str = "weft";
    fn block_on<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        weft::Runtime::block_on(self, f)
    }
    fn spawn<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Box<dyn FnOnce() -> T> {
        let handle = weft::spawn(f);
        Box::new(move || handle.join().expect("weft coroutine panicked"))
    }
    fn yield_now() {
        weft::yield_now();
    }
}

/// may's scheduler is global; this stands for it.
struct May;

impl Scheduler for May {
    const NAME: &'static str = "may";
    fn block_on<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        May::spawn(f)()
    }
    fn spawn<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Box<dyn FnOnce() -> T> {
        // `go!` is may's unsafe `spawn` behind a safe face. Its conditions (no thread-local
        // storage, stay within the stack) hold for every closure this file passes in.
        let handle = may::go!(f);
        Box::new(move || handle.join().expect("may coroutine panicked"))
    }
    fn yield_now() {
        may::coroutine::yield_now();
    }
}

/// Two std threads pinned to one CPU, yielding with `sched_yield`: the kernel switches between
/// them as a coroutine scheduler switches between coroutines.
struct PinnedThreads;

impl Scheduler for PinnedThreads {
    const NAME: &'static str = "std_threads_1_cpu";
    fn block_on<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        std::thread::spawn(move || {
            // Threads the parent starts inherit its CPU set, so both yielders share CPU 0.
            pin_to_cpu0();
            f()
        })
        .join()
        .expect("thread panicked")
    }
    fn spawn<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Box<dyn FnOnce() -> T> {
        let handle = std::thread::spawn(f);
        Box::new(move || handle.join().expect("thread panicked"))
    }
    fn yield_now() {
        std::thread::yield_now();
    }
}

/// Pins the calling thread to CPU 0.
fn pin_to_cpu0() {
    // SAFETY: all zeroes is the empty cpu_set_t; CPU_SET writes bit 0 inside it; the set and
    // its size are valid for sched_setaffinity, and pid 0 is the calling thread.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(0, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    assert_eq!(rc, 0, "sched_setaffinity: {}", std::io::Error::last_os_error());
}

/// Two tokio tasks on a current_thread runtime, each yielding `iters` times; the first times
/// its loop, as `yield_pair` does.
fn tokio_yield_pair(rt: &tokio::runtime::Runtime, iters: u64) -> Duration {
    rt.block_on(async move {
        let b = tokio::spawn(async move {
            for _ in 0..iters {
                tokio::task::yield_now().await;
            }
        });
        let a = tokio::spawn(async move {
            let start = Instant::now();
            for _ in 0..iters {
                tokio::task::yield_now().await;
            }
            start.elapsed()
        });
        let elapsed = a.await.expect("task panicked");
        b.await.expect("task panicked");
        elapsed
    })
}

fn tokio_current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().build().expect("tokio current_thread runtime")
}

/// Runs `a` and `b` as two coroutines that are in the scheduler's run queue together before
/// either is timed; returns `a`'s result.
///
/// 1. A parent coroutine spawns A, then B, and joins them. may puts both spawns in its global
///    queue and, once the parent parks, moves both to its local queue at once; weft puts both in
///    the worker's deque of unstarted coroutines.
/// 2. A yields until B has started, and B yields once after saying so. weft serves its deque
///    and its queue of started coroutines alternately, so B starts within a yield or two.
///
/// Both spawns must come from one coroutine: a coroutine that yields in may's local queue
/// starves its global queue, so A spawned from outside could yield forever before B arrived.
fn run_pair<S: Scheduler, T: Send + 'static>(
    sched: &S,
    a: impl FnOnce() -> T + Send + 'static,
    b: impl FnOnce() + Send + 'static,
) -> T {
    sched.block_on(move || {
        // Relaxed: a flag that publishes nothing else, read in a loop.
        let b_started = Arc::new(AtomicBool::new(false));
        let b_started2 = b_started.clone();
        let a = S::spawn(move || {
            while !b_started.load(Ordering::Relaxed) {
                S::yield_now();
            }
            a()
        });
        let b = S::spawn(move || {
            b_started2.store(true, Ordering::Relaxed);
            // Hand the turn to A, which now sees the flag and starts.
            S::yield_now();
            b()
        });
        let result = a();
        b();
        result
    })
}

/// Two coroutines each yielding `iters` times. A times its own loop, which covers B's yields as
/// well: the loops run in lockstep, and A's last yield returns after B's last yield.
fn yield_pair<S: Scheduler>(sched: &S, iters: u64) -> Duration {
    run_pair(
        sched,
        move || {
            let start = Instant::now();
            for _ in 0..iters {
                S::yield_now();
            }
            start.elapsed()
        },
        move || {
            for _ in 0..iters {
                S::yield_now();
            }
        },
    )
}

/// Runs a logged `yield_pair` and warns when the two did not alternate, as a scheduler that
/// runs the yielder again at once (a LIFO slot, say) would do: then the case would not measure
/// a round trip.
fn check_alternation<S: Scheduler>(sched: &S) {
    const YIELDS: usize = 1000;
    let log = Arc::new(Mutex::new(Vec::with_capacity(2 * YIELDS)));
    let logged = |id: u8, log: Arc<Mutex<Vec<u8>>>| {
        move || {
            for _ in 0..YIELDS {
                log.lock().unwrap().push(id);
                S::yield_now();
            }
        }
    };
    run_pair(sched, logged(0, log.clone()), logged(1, log.clone()));
    let log = log.lock().unwrap();
    let switches = log.windows(2).filter(|w| w[0] != w[1]).count();
    if switches + 1 < log.len() {
        eprintln!(
            "warning: {}: yields did not alternate ({switches} switches in {} yields), so \
             yield_round_trip/{} does not measure a round trip",
            S::NAME,
            log.len(),
            S::NAME,
        );
    }
}

fn yield_round_trip(c: &mut Criterion) {
    let mut group = c.benchmark_group("yield_round_trip");

    group.bench_function("corosensei_pair_floor", |b| {
        let (mut a, mut z) = (bare_yielder(), bare_yielder());
        b.iter(|| {
            black_box(a.resume(false));
            black_box(z.resume(false));
        });
        finish_bare(a);
        finish_bare(z);
    });

    // The queue holds boxed coroutines, as a scheduler holds pointers to tasks: moving the
    // coroutine struct itself through the deque would add copies no scheduler makes.
    group.bench_function("deque_corosensei_loop", |b| {
        let queue = Worker::new_fifo();
        queue.push(Box::new(bare_yielder()));
        queue.push(Box::new(bare_yielder()));
        b.iter(|| {
            for _ in 0..2 {
                let mut co = queue.pop().expect("two coroutines are queued");
                match co.resume(false) {
                    CoroutineResult::Yield(()) => queue.push(co),
                    CoroutineResult::Return(()) => unreachable!("resumed with false"),
                }
            }
        });
        while let Some(co) = queue.pop() {
            finish_bare(*co);
        }
    });

    // Built on first use, so that a name filter that skips the case skips its runtime too.
    for (name, migrating) in [("weft_1_worker", false), ("weft_1_worker_migrating", true)] {
        let rt = OnceCell::new();
        group.bench_function(name, |b| {
            let rt = rt.get_or_init(|| {
                let rt = if migrating { weft_runtime_migrating(1) } else { weft_runtime(1) };
                check_alternation(&rt);
                rt
            });
            b.iter_custom(|iters| yield_pair(rt, iters))
        });
    }

    let may_checked = Once::new();
    group.bench_function("may_1_worker", |b| {
        may_checked.call_once(|| check_alternation(&May));
        b.iter_custom(|iters| yield_pair(&May, iters))
    });

    let tokio_rt = OnceCell::new();
    group.bench_function("tokio_current_thread", |b| {
        let rt = tokio_rt.get_or_init(tokio_current_thread);
        b.iter_custom(|iters| tokio_yield_pair(rt, iters))
    });

    let threads_checked = Once::new();
    group.bench_function("std_threads_1_cpu", |b| {
        threads_checked.call_once(|| check_alternation(&PinnedThreads));
        b.iter_custom(|iters| yield_pair(&PinnedThreads, iters))
    });

    group.finish();
}

// ---------------------------------------------------------------------------------------------
// spawn_join
// ---------------------------------------------------------------------------------------------

fn spawn_join(c: &mut Criterion) {
    let mut group = c.benchmark_group("spawn_join");
    // One iteration is a whole batch (milliseconds), so the default linear sampling would ask
    // for far more than the measurement time.
    group.sampling_mode(SamplingMode::Flat).sample_size(30);

    group.throughput(Throughput::Elements(SPAWN_BATCH as u64));
    let rt = OnceCell::new();
    group.bench_function("weft_1_worker", |b| {
        let rt = rt.get_or_init(|| weft_runtime(1));
        b.iter_custom(|iters| {
            rt.block_on(|| {
                let start = Instant::now();
                for _ in 0..iters {
                    let mut handles = Vec::with_capacity(SPAWN_BATCH);
                    for _ in 0..SPAWN_BATCH {
                        handles.push(weft::spawn(|| {}));
                    }
                    for handle in handles {
                        handle.join().unwrap();
                    }
                }
                start.elapsed()
            })
        })
    });
    drop(rt);

    group.bench_function("may_1_worker", |b| {
        b.iter_custom(|iters| {
            May.block_on(move || {
                let start = Instant::now();
                for _ in 0..iters {
                    let mut handles = Vec::with_capacity(SPAWN_BATCH);
                    for _ in 0..SPAWN_BATCH {
                        // SAFETY: may asks that the coroutine touch no thread-local storage
                        // and fit its stack; an empty closure does neither.
                        handles.push(unsafe { may::coroutine::spawn(|| {}) });
                    }
                    for handle in handles {
                        handle.join().unwrap();
                    }
                }
                start.elapsed()
            })
        })
    });

    let tokio_rt = OnceCell::new();
    group.bench_function("tokio_current_thread", |b| {
        let rt = tokio_rt.get_or_init(tokio_current_thread);
        b.iter_custom(|iters| {
            rt.block_on(async move {
                let start = Instant::now();
                for _ in 0..iters {
                    let mut handles = Vec::with_capacity(SPAWN_BATCH);
                    for _ in 0..SPAWN_BATCH {
                        handles.push(tokio::spawn(async {}));
                    }
                    for handle in handles {
                        handle.await.unwrap();
                    }
                }
                start.elapsed()
            })
        })
    });
    drop(tokio_rt);

    group.throughput(Throughput::Elements(THREAD_BATCH as u64));
    group.bench_function("std_thread", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                let mut handles = Vec::with_capacity(THREAD_BATCH);
                for _ in 0..THREAD_BATCH {
                    handles.push(std::thread::spawn(|| {}));
                }
                for handle in handles {
                    handle.join().unwrap();
                }
            }
            start.elapsed()
        })
    });

    group.finish();
}

// ---------------------------------------------------------------------------------------------
// park_unpark_cross_worker
// ---------------------------------------------------------------------------------------------

/// Whose turn it is in the ping-pong; `STOP` ends it.
const TURN_A: u8 = 0;
const TURN_B: u8 = 1;
const STOP: u8 = 2;

/// What the ping-pong needs of a park/unpark implementation.
trait Parking: Send + Sync + 'static {
    type Handle: Send + Sync + 'static;
    fn current() -> Self::Handle;
    fn park();
    fn unpark(handle: &Self::Handle);
    /// The OS thread that runs the caller: the worker, for a coroutine.
    fn thread_id() -> std::thread::ThreadId {
        std::thread::current().id()
    }
}

struct StdThreads;

impl Parking for StdThreads {
    type Handle = std::thread::Thread;
    fn current() -> Self::Handle {
        std::thread::current()
    }
    fn park() {
        std::thread::park();
    }
    fn unpark(handle: &Self::Handle) {
        handle.unpark();
    }
}

struct WeftCoroutines;

impl Parking for WeftCoroutines {
    type Handle = weft::Coroutine;
    fn current() -> Self::Handle {
        weft::current()
    }
    fn park() {
        weft::park();
    }
    fn unpark(handle: &Self::Handle) {
        handle.unpark();
    }
}

/// State shared by the two sides of one ping-pong.
struct PingPong<P: Parking> {
    turn: AtomicU8,
    /// Sides that have arrived at the rendezvous.
    arrived: AtomicUsize,
    a: OnceLock<(P::Handle, std::thread::ThreadId)>,
    b: OnceLock<(P::Handle, std::thread::ThreadId)>,
}

impl<P: Parking> PingPong<P> {
    fn new() -> Self {
        PingPong {
            turn: AtomicU8::new(TURN_A),
            arrived: AtomicUsize::new(0),
            a: OnceLock::new(),
            b: OnceLock::new(),
        }
    }

    /// Publishes the caller's handle, then spins until the other side has done the same. Both
    /// sides spin without yielding, so once both have arrived they were running at the same
    /// time, hence on different workers; and a started coroutine stays on its worker.
    fn rendezvous(&self, mine: &OnceLock<(P::Handle, std::thread::ThreadId)>) {
        let _ = mine.set((P::current(), P::thread_id()));
        // Release/Acquire: pairs with the other side's `fetch_add`, so its `set` is visible.
        self.arrived.fetch_add(1, Ordering::Release);
        let start = Instant::now();
        while self.arrived.load(Ordering::Acquire) < 2 {
            assert!(
                start.elapsed() < HANDSHAKE_LIMIT,
                "park_unpark_cross_worker: the second side never started on another worker"
            );
            std::hint::spin_loop();
        }
    }

    /// Side A: `iters` round trips, timed; then tells B to stop.
    fn run_a(&self, iters: u64) -> Duration {
        self.rendezvous(&self.a);
        let (b, b_thread) = self.b.get().expect("B arrived");
        assert_ne!(*b_thread, P::thread_id(), "both sides on one thread");
        let start = Instant::now();
        for _ in 0..iters {
            // Release/Acquire on `turn`: hands over the turn, and pairs with B's store of TURN_A.
            self.turn.store(TURN_B, Ordering::Release);
            P::unpark(b);
            // No lost wake-up: an unpark that lands before `park` leaves the token set, so park
            // returns at once; a spurious return re-checks `turn`.
            while self.turn.load(Ordering::Acquire) != TURN_A {
                P::park();
            }
        }
        let elapsed = start.elapsed();
        self.turn.store(STOP, Ordering::Release);
        P::unpark(b);
        elapsed
    }

    /// Side B: answers every turn until A stops it.
    fn run_b(&self) {
        self.rendezvous(&self.b);
        let (a, _) = self.a.get().expect("A arrived");
        loop {
            match self.turn.load(Ordering::Acquire) {
                STOP => return,
                TURN_B => {
                    self.turn.store(TURN_A, Ordering::Release);
                    P::unpark(a);
                }
                // Same argument as in `run_a`: the token closes the race.
                _ => P::park(),
            }
        }
    }
}

fn park_unpark_cross_worker(c: &mut Criterion) {
    let mut group = c.benchmark_group("park_unpark_cross_worker");

    for (name, migrating) in [("weft_2_workers", false), ("weft_2_workers_migrating", true)] {
        let rt = OnceCell::new();
        group.bench_function(name, |b| {
            let rt =
                rt.get_or_init(
                    || {
                        if migrating {
                            weft_runtime_migrating(2)
                        } else {
                            weft_runtime(2)
                        }
                    },
                );
            b.iter_custom(|iters| {
                let state = Arc::new(PingPong::<WeftCoroutines>::new());
                let state_b = state.clone();
                let a = rt.spawn(move || state.run_a(iters));
                let b = rt.spawn(move || state_b.run_b());
                let elapsed = a.join().unwrap();
                b.join().unwrap();
                elapsed
            })
        });
    }

    group.bench_function("std_threads", |b| {
        b.iter_custom(|iters| {
            let state = Arc::new(PingPong::<StdThreads>::new());
            let state_b = state.clone();
            let a = std::thread::spawn(move || state.run_a(iters));
            let b = std::thread::spawn(move || state_b.run_b());
            let elapsed = a.join().unwrap();
            b.join().unwrap();
            elapsed
        })
    });

    group.finish();
}

/// The criterion configuration; also configures may, before any may coroutine exists (may reads
/// its configuration once, when its global scheduler starts).
fn criterion_config() -> Criterion {
    configure_may();
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args()
}

criterion_group! {
    name = benches;
    config = criterion_config();
    targets = yield_round_trip, spawn_join, park_unpark_cross_worker
}
criterion_main!(benches);
