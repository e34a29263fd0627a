//! `weft::sync::Mutex` under load, shared by coroutines and plain threads at once, and the
//! fairness of every lock that queues its waiters.
//!
//! - Exactness: a counter behind a `Mutex`, bumped by 10,000 coroutines and 8 threads with a
//!   yield between the read and the write, ends exact: a lost increment means two holders at
//!   once. A seeded storm of `lock`/`try_lock` checks an in-critical-section flag on every
//!   entry.
//! - No deadlock: a guard held across `weft::sleep` on a one-worker runtime while every other
//!   coroutine of that worker waits for it; every contender must get in exactly once.
//! - No starvation: a hog that re-locks in a tight loop, yielding while it holds the lock (the
//!   worst case for a barging lock: a woken waiter always finds it taken again), does not keep
//!   the contenders out, on one worker, two workers, threads and a mix. The same hog phases
//!   run on a `Mutex`, a `Semaphore` of one permit and an `RwLock` of writers.
//!
//! Every wait that must end is bounded by [`hang`]: a task still unfinished then fails the test
//! and says what it was doing, before the watchdog would abort the binary.
//!
//! Sizes: the counter does 10 increments per task by default and 100 under `WEFT_STRESS=1`;
//! the storm and the fairness phases grow about 10× the same way.

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::tasks::{finish, hold, mix, retry, storm, Exclusive};
use support::{hang, pause, spawn_on, Handle, Mode, Side, Watchdog, MODES};
use weft::sync::{Mutex, RwLock, Semaphore};

/// Coroutines and threads of the counter test.
const COUNTER_COROUTINES: usize = 10_000;
const COUNTER_THREADS: usize = 8;

/// How long the holder keeps the guard across `weft::sleep` in the one-worker test.
const HOLD_ACROSS_SLEEP: Duration = Duration::from_millis(50);
// ---------------------------------------------------------------------------------------------
// Mutex: exactness and mutual exclusion
// ---------------------------------------------------------------------------------------------

/// 10,000 coroutines and 8 threads each do K increments of a `Mutex<usize>`, reading and
/// writing in two steps with a yield between every other pair: a lost increment means two
/// holders at once. All start together behind a gate, so the threads meet the coroutines.
#[test]
fn mutex_counter_is_exact_across_coroutines_and_threads() {
    let name = "mutex_counter_is_exact_across_coroutines_and_threads";
    let wd = support::watchdog(name, support::budget(Duration::from_secs(120)));
    let k = support::sized(10, 100);
    for mode in MODES {
        wd.note(format!(
            "{mode:?}: {COUNTER_COROUTINES} coroutines and {COUNTER_THREADS} threads x {k}"
        ));
        let rt = support::runtime(2, mode);
        wd.watch_runtime("rt", &rt);
        let counter = Arc::new(Mutex::new(0usize));
        let gate = Arc::new(AtomicBool::new(false));
        let progress = wd.counter(&format!("{mode:?} increments"));
        let sides = mix(COUNTER_COROUTINES, COUNTER_THREADS);
        assert_eq!(sides.iter().filter(|&&s| s == Side::Thread).count(), COUNTER_THREADS);
        let tasks: Vec<Handle<()>> = sides
            .iter()
            .map(|&side| {
                let (counter, gate, progress) =
                    (Arc::clone(&counter), Arc::clone(&gate), Arc::clone(&progress));
                spawn_on(side, Some(&rt), "task", move || {
                    assert!(support::wait_until(hang(), || gate.load(Ordering::Acquire)));
                    for i in 0..k {
                        let mut guard = counter.lock().unwrap();
                        let seen = *guard;
                        if i % 2 == 0 {
                            pause();
                        }
                        *guard = seen + 1;
                        drop(guard);
                        progress.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        gate.store(true, Ordering::Release);
        finish(&wd, &rt, tasks, &format!("{mode:?} counter"));
        let total = *counter.lock().unwrap();
        assert_eq!(
            total,
            (COUNTER_COROUTINES + COUNTER_THREADS) * k,
            "{mode:?}: the counter lost (or gained) increments"
        );
    }
}

/// On one worker, a coroutine holds the guard across `weft::sleep` while every other coroutine
/// (and two threads) queue for it: the holder waits, guard in hand, until all of them have
/// called `lock` (on one worker a coroutine only gives the worker back by parking, so they are
/// all parked in `lock`), then sleeps. Nobody deadlocks, every contender gets in exactly once,
/// and nobody enters while another is inside; every tenth contender sleeps inside too.
#[test]
fn mutex_guard_held_across_sleep_on_one_worker() {
    let wd = support::watchdog(
        "mutex_guard_held_across_sleep_on_one_worker",
        support::budget(Duration::from_secs(120)),
    );
    let contenders = support::sized(200, 2_000);
    let rt = support::runtime(1, Mode::Pinned);
    wd.watch_runtime("rt", &rt);
    let mutex = Arc::new(Mutex::new(0usize));
    let ex = Arc::new(Exclusive::default());
    let holding = Arc::new(AtomicBool::new(false));
    let all_queued = Arc::new(AtomicBool::new(false));
    let started = wd.counter("contenders that called lock");
    let sides = mix(contenders, 2);
    let total = sides.len();

    wd.note("the holder takes the guard");
    let holder = {
        let (mutex, ex, holding, all_queued, started) = (
            Arc::clone(&mutex),
            Arc::clone(&ex),
            Arc::clone(&holding),
            Arc::clone(&all_queued),
            Arc::clone(&started),
        );
        spawn_on(Side::Coroutine, Some(&rt), "task", move || {
            let guard = mutex.lock().unwrap();
            ex.enter("holder");
            holding.store(true, Ordering::SeqCst);
            let queued = support::wait_until(hang(), || started.load(Ordering::SeqCst) == total);
            all_queued.store(queued, Ordering::SeqCst);
            weft::sleep(HOLD_ACROSS_SLEEP);
            ex.leave();
            drop(guard);
        })
    };
    assert!(support::wait_until(hang(), || holding.load(Ordering::SeqCst)), "holder never ran");

    wd.note("contenders queue behind the sleeping holder");
    let mut tasks: Vec<Handle<()>> = sides
        .iter()
        .enumerate()
        .map(|(i, &side)| {
            let (mutex, ex, started) = (Arc::clone(&mutex), Arc::clone(&ex), Arc::clone(&started));
            spawn_on(side, Some(&rt), "task", move || {
                started.fetch_add(1, Ordering::SeqCst);
                let mut guard = mutex.lock().unwrap();
                ex.enter(&format!("contender {i} ({side:?})"));
                *guard += 1;
                if i % 10 == 0 {
                    weft::sleep(Duration::from_millis(1));
                } else if i % 3 == 0 {
                    pause();
                }
                ex.leave();
                drop(guard);
            })
        })
        .collect();
    tasks.push(holder);
    finish(&wd, &rt, tasks, "contenders behind a sleeping holder");
    assert!(
        all_queued.load(Ordering::SeqCst),
        "the contenders could not all reach lock() while the holder slept: {} of {total} did; \
         a lock() that blocks the worker thread instead of parking the coroutine?",
        started.load(Ordering::SeqCst)
    );
    assert_eq!(*mutex.lock().unwrap(), total, "every contender enters exactly once");
}

/// A seeded storm on one `Mutex` from coroutines (two workers, migrating) and threads: each
/// operation is a `lock`, or a `try_lock` retried until it succeeds; inside, the holder may
/// yield between the read and the write of a two-step increment. The in-critical-section flag
/// is never set on entry, and the count is exact.
#[test]
fn stress_mutex_exclusion_with_try_lock_mixed_in() {
    let (wd, seed, mut rng, rt) = storm("stress_mutex_exclusion_with_try_lock_mixed_in");
    let ops = support::sized(500, 5_000);
    let sides = mix(24, 6);
    let mutex = Arc::new(Mutex::new(0usize));
    let ex = Arc::new(Exclusive::default());
    let would_block = wd.counter("try_lock WouldBlock");
    let progress = wd.counter("operations");
    wd.note(format!("{} tasks x {ops} operations", sides.len()));
    let tasks: Vec<Handle<()>> = sides
        .iter()
        .enumerate()
        .map(|(t, &side)| {
            let mut rng = rng.fork();
            let (mutex, ex, would_block, progress) = (
                Arc::clone(&mutex),
                Arc::clone(&ex),
                Arc::clone(&would_block),
                Arc::clone(&progress),
            );
            spawn_on(side, Some(&rt), "task", move || {
                for op in 0..ops {
                    let mut guard = if rng.percent(30) {
                        retry(
                            || mutex.try_lock(),
                            || {
                                would_block.fetch_add(1, Ordering::Relaxed);
                            },
                            &format!("seed {seed}: poisoned without a panic"),
                        )
                    } else {
                        mutex.lock().unwrap()
                    };
                    ex.enter(&format!("seed {seed}: task {t} ({side:?}) op {op}"));
                    let seen = *guard;
                    if rng.percent(20) {
                        pause();
                    }
                    *guard = seen + 1;
                    ex.leave();
                    drop(guard);
                    progress.fetch_add(1, Ordering::Relaxed);
                    if rng.percent(10) {
                        pause();
                    }
                }
            })
        })
        .collect();
    finish(&wd, &rt, tasks, &format!("seed {seed}: storm"));
    assert_eq!(*mutex.lock().unwrap(), sides.len() * ops, "seed {seed}: lost increments");
}

// ---------------------------------------------------------------------------------------------
// Fairness: a hog cannot starve the others
// ---------------------------------------------------------------------------------------------

/// Anything held: a guard or a permit, boxed so one phase runs every primitive.
trait Held {}
impl<T> Held for T {}

/// The shared state of one hog phase.
#[derive(Default)]
struct Hog {
    /// Set by the contenders when the last one finishes; the hog stops.
    stop: AtomicBool,
    /// Set by the hog if the deadline passed first.
    gave_up: AtomicBool,
    rounds: AtomicUsize,
    finished: AtomicUsize,
    /// The contenders' progress when the hog gave up.
    at_give_up: std::sync::Mutex<Vec<usize>>,
}

/// Runs one hog phase: the hog re-acquires in a tight loop through `acquire` (holding across
/// [`hold`]) until every contender has acquired `each` times, or until the deadline. Passes
/// if the contenders finished while the hog was still hammering.
fn hog_phase<L: Send + Sync + 'static>(
    wd: &Watchdog,
    label: &str,
    workers: usize,
    hog_side: Side,
    contenders: &[Side],
    lock: L,
    acquire: fn(&L) -> Box<dyn Held + '_>,
) {
    let each = support::sized(100, 1_000);
    wd.note(format!(
        "{label}: hog {hog_side:?} on {workers} worker(s), contenders {contenders:?} x {each}"
    ));
    let rt = support::runtime(workers, Mode::Pinned);
    wd.watch_runtime("rt", &rt);
    let lock = Arc::new(lock);
    let hog = Arc::new(Hog::default());
    let deadline = Instant::now() + hang();
    let progress: Arc<Vec<AtomicUsize>> =
        Arc::new(contenders.iter().map(|_| AtomicUsize::new(0)).collect());

    let hog_task = {
        let (lock, hog, progress) = (Arc::clone(&lock), Arc::clone(&hog), Arc::clone(&progress));
        spawn_on(hog_side, Some(&rt), "task", move || {
            while !hog.stop.load(Ordering::SeqCst) {
                let guard = acquire(&lock);
                hog.rounds.fetch_add(1, Ordering::Relaxed);
                hold();
                drop(guard);
                if Instant::now() > deadline {
                    *hog.at_give_up.lock().unwrap() =
                        progress.iter().map(|p| p.load(Ordering::Relaxed)).collect();
                    hog.gave_up.store(true, Ordering::SeqCst);
                    return;
                }
            }
        })
    };
    // The contenders arrive while the hog is already hammering.
    assert!(support::wait_until(hang(), || hog.rounds.load(Ordering::Relaxed) > 0));
    let mut tasks: Vec<Handle<()>> = contenders
        .iter()
        .enumerate()
        .map(|(c, &side)| {
            let (lock, hog, progress) =
                (Arc::clone(&lock), Arc::clone(&hog), Arc::clone(&progress));
            let n = contenders.len();
            spawn_on(side, Some(&rt), "task", move || {
                for _ in 0..each {
                    drop(acquire(&lock));
                    progress[c].fetch_add(1, Ordering::Relaxed);
                }
                if hog.finished.fetch_add(1, Ordering::SeqCst) + 1 == n {
                    hog.stop.store(true, Ordering::SeqCst);
                }
            })
        })
        .collect();
    tasks.push(hog_task);
    finish(wd, &rt, tasks, label);
    assert!(
        !hog.gave_up.load(Ordering::SeqCst),
        "{label}: the hog starved the contenders for {:?}: they had {:?} of {each} \
         acquisitions each when it gave up after {} rounds",
        hang(),
        hog.at_give_up.lock().unwrap(),
        hog.rounds.load(Ordering::Relaxed)
    );
}

/// The sides of the hog phases: (label, workers, hog, contenders).
fn hog_phases() -> Vec<(&'static str, usize, Side, Vec<Side>)> {
    use Side::{Coroutine as C, Thread as T};
    vec![
        ("1 worker, coroutines", 1, C, vec![C; 4]),
        ("2 workers, coroutines", 2, C, vec![C; 6]),
        ("threads", 1, T, vec![T; 4]),
        ("coroutine hog on 1 worker, thread contenders", 1, C, vec![T; 3]),
        ("thread hog, mixed contenders on 2 workers", 2, T, vec![C, C, C, T, T]),
    ]
}

/// Runs every one of [`hog_phases`], each on a fresh lock from `new`, taken through `acquire`.
fn hog_test<L: Send + Sync + 'static>(
    name: &str,
    new: fn() -> L,
    acquire: fn(&L) -> Box<dyn Held + '_>,
) {
    let wd = support::watchdog(name, support::budget(Duration::from_secs(240)));
    for (label, workers, hog, contenders) in hog_phases() {
        hog_phase(&wd, label, workers, hog, &contenders, new(), acquire);
    }
}

/// A `Mutex` hog (re-locking in a tight loop, yielding while it holds) does not starve the
/// other lockers, on one worker, two workers, threads and mixes.
#[test]
fn mutex_hog_cannot_starve_contenders() {
    hog_test(
        "mutex_hog_cannot_starve_contenders",
        || Mutex::new(()),
        |m| Box::new(m.lock().unwrap()),
    );
}

/// The same with a `Semaphore` of one permit, which promises FIFO order.
#[test]
fn semaphore_hog_cannot_starve_contenders() {
    hog_test(
        "semaphore_hog_cannot_starve_contenders",
        || Semaphore::new(1),
        |s| Box::new(s.acquire()),
    );
}

/// The same with an `RwLock` whose hog and contenders all write.
#[test]
fn rwlock_write_hog_cannot_starve_writers() {
    hog_test(
        "rwlock_write_hog_cannot_starve_writers",
        || RwLock::new(()),
        |l| Box::new(l.write().unwrap()),
    );
}
