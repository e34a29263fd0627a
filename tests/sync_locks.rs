//! `weft::sync` locks under load: `RwLock`, `Semaphore`, `WaitGroup`, `Once` and `OnceLock`
//! shared by coroutines and plain threads at once. (`Mutex`, and the hog phases every lock
//! runs, are in `tests/sync_mutex.rs`.)
//!
//! - Exactness: seeded storms of `read`/`write`/`try_*` and
//!   `acquire`/`try_acquire`/`acquire_timeout` check an in-critical-section flag (or holder
//!   count) on every entry: two writers, a reader beside a writer, or more holders than
//!   permits fail at once, naming the seed.
//! - No starvation: a stream of overlapping readers does not keep a writer out. A semaphore
//!   hands permits out in the order its waiters came.
//! - `WaitGroup`: `wait` returns only after every `done`, at once at zero, and `done` below
//!   zero panics.
//! - `Once`/`OnceLock`: the init runs exactly once, and every racer is inside
//!   `call_once`/`get_or_init` while it runs (the init waits for all of them to arrive).
//!
//! Every wait that must end is bounded by [`hang`]: a task still unfinished then fails the test
//! and says what it was doing, before the watchdog would abort the binary.
//!
//! Sizes: the storms and the reader streams grow about 10× under `WEFT_STRESS=1`.

mod support;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::peers::{flag, wait_for};
use support::tasks::{finish, hold, mix, retry, storm, Exclusive};
use support::{hang, pause, spawn_on, Handle, Mode, Rng, Side};
use weft::sync::{Once, OnceLock, RwLock, Semaphore, TryLockError, WaitGroup};

// ---------------------------------------------------------------------------------------------
// RwLock
// ---------------------------------------------------------------------------------------------

/// Readers share: each reader takes the read lock and, holding it, waits until every reader is
/// inside; then a `try_write` is refused. Then the readers leave and a writer gets in. On one
/// worker (coroutines), and on two workers with threads among the readers.
#[test]
fn rwlock_readers_share_and_exclude_writers() {
    let wd = support::watchdog(
        "rwlock_readers_share_and_exclude_writers",
        support::budget(Duration::from_secs(120)),
    );
    for (label, workers, readers) in [("1 worker", 1, mix(6, 0)), ("2 workers", 2, mix(4, 3))] {
        wd.note(format!("{label}: readers {readers:?}"));
        let rt = support::runtime(workers, Mode::Pinned);
        wd.watch_runtime("rt", &rt);
        let lock = Arc::new(RwLock::new(7u32));
        let inside = Arc::new(AtomicUsize::new(0));
        let release = flag();
        let n = readers.len();
        let tasks: Vec<Handle<()>> = readers
            .iter()
            .enumerate()
            .map(|(r, &side)| {
                let (lock, inside, release) =
                    (Arc::clone(&lock), Arc::clone(&inside), Arc::clone(&release));
                spawn_on(side, Some(&rt), "task", move || {
                    let guard = lock.read().unwrap();
                    assert_eq!(*guard, 7);
                    inside.fetch_add(1, Ordering::SeqCst);
                    let all = support::wait_until(hang(), || inside.load(Ordering::SeqCst) == n);
                    assert!(
                        all,
                        "reader {r} ({side:?}) holds the read lock but only {} of {n} readers \
                         got in beside it: readers do not share",
                        inside.load(Ordering::SeqCst)
                    );
                    wait_for(&release);
                    drop(guard);
                })
            })
            .collect();
        assert!(
            support::wait_until(hang(), || inside.load(Ordering::SeqCst) == n),
            "{label}: only {} of {n} readers got in together",
            inside.load(Ordering::SeqCst)
        );
        match lock.try_write() {
            Err(TryLockError::WouldBlock) => {}
            Ok(_) => panic!("{label}: try_write succeeded while {n} readers hold the lock"),
            Err(TryLockError::Poisoned(e)) => panic!("{label}: poisoned: {e}"),
        }
        assert!(lock.try_read().is_ok(), "{label}: one more reader is refused");
        release.store(true, Ordering::SeqCst);
        finish(&wd, &rt, tasks, label);
        *lock.write().unwrap() += 1;
        assert_eq!(*lock.read().unwrap(), 8);
    }
}

/// A seeded storm of readers and writers (coroutines on two migrating workers, and threads),
/// with `try_read`/`try_write` mixed in. A writer finds no reader and no other writer inside;
/// a reader finds no writer inside and sees the two halves of the data equal (a writer changes
/// them in two steps with a yield between). The write count is exact.
#[test]
fn stress_rwlock_writers_exclusive_readers_consistent() {
    let (wd, seed, mut rng, rt) = storm("stress_rwlock_writers_exclusive_readers_consistent");
    let ops = support::sized(400, 4_000);
    let sides = mix(20, 6);
    let lock = Arc::new(RwLock::new([0usize; 2]));
    let readers_in = Arc::new(AtomicUsize::new(0));
    let writer = Arc::new(Exclusive::default());
    let writes = Arc::new(AtomicUsize::new(0));
    let progress = wd.counter("operations");
    let tasks: Vec<Handle<()>> = sides
        .iter()
        .enumerate()
        .map(|(t, &side)| {
            let mut rng = rng.fork();
            let (lock, readers_in, writer, writes, progress) = (
                Arc::clone(&lock),
                Arc::clone(&readers_in),
                Arc::clone(&writer),
                Arc::clone(&writes),
                Arc::clone(&progress),
            );
            spawn_on(side, Some(&rt), "task", move || {
                for op in 0..ops {
                    let at = format!("seed {seed}: task {t} ({side:?}) op {op}");
                    let try_it = rng.percent(25);
                    if rng.percent(30) {
                        let mut guard = if try_it {
                            retry(|| lock.try_write(), || {}, &at)
                        } else {
                            lock.write().unwrap()
                        };
                        writer.enter(&format!("{at}: writer"));
                        let readers = readers_in.load(Ordering::SeqCst);
                        assert_eq!(readers, 0, "{at}: a writer got in beside {readers} readers");
                        guard[0] += 1;
                        if rng.percent(30) {
                            pause();
                        }
                        guard[1] += 1;
                        writes.fetch_add(1, Ordering::Relaxed);
                        writer.leave();
                    } else {
                        let guard = if try_it {
                            retry(|| lock.try_read(), || {}, &at)
                        } else {
                            lock.read().unwrap()
                        };
                        readers_in.fetch_add(1, Ordering::SeqCst);
                        assert!(
                            !writer.inside.load(Ordering::SeqCst),
                            "{at}: a reader got in beside a writer"
                        );
                        assert_eq!(guard[0], guard[1], "{at}: a reader saw a half-done write");
                        if rng.percent(30) {
                            pause();
                        }
                        assert_eq!(guard[0], guard[1], "{at}: the data changed under a reader");
                        readers_in.fetch_sub(1, Ordering::SeqCst);
                    }
                    progress.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    finish(&wd, &rt, tasks, &format!("seed {seed}: storm"));
    let data = *lock.read().unwrap();
    let writes = writes.load(Ordering::SeqCst);
    assert_eq!(data, [writes, writes], "seed {seed}: lost writes");
}

/// A stream of overlapping readers (each holds the read lock across a yield or a spin, so some
/// reader is always inside) does not keep a writer out: once the writer queues, new readers
/// queue behind it. The writer writes `writes` times while the readers keep streaming, then the
/// readers stop; the readers give up (and the test fails) at the deadline.
#[test]
fn rwlock_writer_not_starved_by_readers() {
    let wd = support::watchdog(
        "rwlock_writer_not_starved_by_readers",
        support::budget(Duration::from_secs(240)),
    );
    use Side::{Coroutine as C, Thread as T};
    let phases: [(&str, usize, Vec<Side>, Side); 4] = [
        ("1 worker, coroutines", 1, vec![C; 4], C),
        ("2 workers, coroutines", 2, vec![C; 6], C),
        ("threads", 1, vec![T; 4], T),
        ("mixed on 2 workers", 2, vec![C, C, C, T, T], T),
    ];
    let writes = support::sized(20, 200);
    for (label, workers, readers, writer_side) in phases {
        wd.note(format!("{label}: readers {readers:?}, writer {writer_side:?}"));
        let rt = support::runtime(workers, Mode::Pinned);
        wd.watch_runtime("rt", &rt);
        let lock = Arc::new(RwLock::new(0usize));
        let reads = wd.counter(&format!("{label}: reads"));
        let writer_done = flag();
        let gave_up = flag();
        let written = wd.counter(&format!("{label}: writes"));
        // The writes done when the first reader gave up.
        let written_at_give_up = Arc::new(AtomicUsize::new(usize::MAX));
        let deadline = Instant::now() + hang();
        let mut tasks: Vec<Handle<()>> = readers
            .iter()
            .map(|&side| {
                let (lock, reads, writer_done, gave_up, written, written_at_give_up) = (
                    Arc::clone(&lock),
                    Arc::clone(&reads),
                    Arc::clone(&writer_done),
                    Arc::clone(&gave_up),
                    Arc::clone(&written),
                    Arc::clone(&written_at_give_up),
                );
                spawn_on(side, Some(&rt), "task", move || {
                    while !writer_done.load(Ordering::SeqCst) {
                        let guard = lock.read().unwrap();
                        reads.fetch_add(1, Ordering::Relaxed);
                        hold();
                        drop(guard);
                        if Instant::now() > deadline {
                            let now = written.load(Ordering::SeqCst);
                            let _ = written_at_give_up.compare_exchange(
                                usize::MAX,
                                now,
                                Ordering::SeqCst,
                                Ordering::SeqCst,
                            );
                            gave_up.store(true, Ordering::SeqCst);
                            return;
                        }
                    }
                })
            })
            .collect();
        // The writer arrives while the readers stream.
        let n = readers.len();
        assert!(support::wait_until(hang(), || reads.load(Ordering::Relaxed) >= 2 * n));
        tasks.push({
            let (lock, written, writer_done) =
                (Arc::clone(&lock), Arc::clone(&written), Arc::clone(&writer_done));
            spawn_on(writer_side, Some(&rt), "task", move || {
                for _ in 0..writes {
                    *lock.write().unwrap() += 1;
                    written.fetch_add(1, Ordering::Relaxed);
                }
                writer_done.store(true, Ordering::SeqCst);
            })
        });
        finish(&wd, &rt, tasks, label);
        assert!(
            !gave_up.load(Ordering::SeqCst),
            "{label}: the readers starved the writer for {:?}: {} of {writes} writes when the \
             readers gave up, after {} reads",
            hang(),
            written_at_give_up.load(Ordering::SeqCst),
            reads.load(Ordering::Relaxed)
        );
        assert_eq!(*lock.read().unwrap(), writes);
    }
}

// ---------------------------------------------------------------------------------------------
// Semaphore
// ---------------------------------------------------------------------------------------------

/// Permits of the semaphore storm.
const STORM_PERMITS: usize = 3;

/// A seeded storm on a semaphore of [`STORM_PERMITS`]: coroutines (two migrating workers) and
/// threads take permits with `acquire`, `try_acquire` (retried) and `acquire_timeout` (retried
/// on `None`), hold them across a yield or not, and count the holders: never more than the
/// permits. All permits are free again at the end.
#[test]
fn stress_semaphore_never_exceeds_its_permits() {
    let (wd, seed, mut rng, rt) = storm("stress_semaphore_never_exceeds_its_permits");
    let ops = support::sized(400, 4_000);
    let sides = mix(20, 6);
    let sem = Arc::new(Semaphore::new(STORM_PERMITS));
    let holders = Arc::new(AtomicUsize::new(0));
    let progress = wd.counter("operations");
    let tasks: Vec<Handle<()>> = sides
        .iter()
        .enumerate()
        .map(|(t, &side)| {
            let mut rng = rng.fork();
            let (sem, holders, progress) =
                (Arc::clone(&sem), Arc::clone(&holders), Arc::clone(&progress));
            spawn_on(side, Some(&rt), "task", move || {
                for op in 0..ops {
                    let permit = match rng.below(3) {
                        0 => sem.acquire(),
                        1 => loop {
                            match sem.try_acquire() {
                                Some(permit) => break permit,
                                None => pause(),
                            }
                        },
                        _ => loop {
                            let timeout = Duration::from_micros(rng.range(1, 500));
                            if let Some(permit) = sem.acquire_timeout(timeout) {
                                break permit;
                            }
                        },
                    };
                    let now = holders.fetch_add(1, Ordering::SeqCst) + 1;
                    assert!(
                        now <= STORM_PERMITS,
                        "seed {seed}: task {t} ({side:?}) op {op}: {now} holders of \
                         {STORM_PERMITS} permits"
                    );
                    if rng.percent(50) {
                        pause();
                    }
                    holders.fetch_sub(1, Ordering::SeqCst);
                    drop(permit);
                    progress.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    finish(&wd, &rt, tasks, &format!("seed {seed}: storm"));
    assert_eq!(sem.available_permits(), STORM_PERMITS, "seed {seed}: permits leaked or gained");
}

/// Every permit can be held at once: N tasks each hold one and wait, permit in hand, until all
/// N hold one (a semaphore that let fewer in would fail here, where the storm cannot tell).
/// Then `try_acquire` finds none, and dropping one frees exactly one.
#[test]
fn semaphore_all_permits_held_at_once() {
    let wd = support::watchdog(
        "semaphore_all_permits_held_at_once",
        support::budget(Duration::from_secs(60)),
    );
    let permits = 5;
    let rt = support::runtime(1, Mode::Pinned);
    wd.watch_runtime("rt", &rt);
    let sem = Arc::new(Semaphore::new(permits));
    let holding = Arc::new(AtomicUsize::new(0));
    let release = flag();
    let tasks: Vec<Handle<()>> = mix(3, 2)
        .into_iter()
        .map(|side| {
            let (sem, holding, release) =
                (Arc::clone(&sem), Arc::clone(&holding), Arc::clone(&release));
            spawn_on(side, Some(&rt), "task", move || {
                let permit = sem.acquire();
                holding.fetch_add(1, Ordering::SeqCst);
                wait_for(&release);
                drop(permit);
            })
        })
        .collect();
    assert!(
        support::wait_until(hang(), || holding.load(Ordering::SeqCst) == permits),
        "only {} of {permits} permits could be held at once",
        holding.load(Ordering::SeqCst)
    );
    assert_eq!(sem.available_permits(), 0);
    assert!(sem.try_acquire().is_none(), "a permit beyond the {permits}");
    release.store(true, Ordering::SeqCst);
    finish(&wd, &rt, tasks, "holders");
    assert_eq!(sem.available_permits(), permits);
}

/// `try_acquire` and `available_permits`, on a thread and in coroutines.
fn try_acquire_counts() {
    let sem = Semaphore::new(2);
    assert_eq!(sem.available_permits(), 2);
    let a = sem.try_acquire().expect("the first of two permits");
    let b = sem.try_acquire().expect("the second of two permits");
    assert_eq!(sem.available_permits(), 0);
    assert!(sem.try_acquire().is_none(), "a third permit of two");
    drop(a);
    assert_eq!(sem.available_permits(), 1);
    let c = sem.try_acquire().expect("the permit just dropped");
    assert!(sem.try_acquire().is_none());
    drop((b, c));
    assert_eq!(sem.available_permits(), 2);
    let empty = Semaphore::new(0);
    assert!(empty.try_acquire().is_none());
    empty.add_permits(1);
    assert!(empty.try_acquire().is_some());
}

#[test]
fn semaphore_try_acquire_and_available_permits() {
    support::on_thread_and_coroutines(
        "semaphore_try_acquire_and_available_permits",
        try_acquire_counts,
    );
}

/// `acquire_timeout` on an empty semaphore returns `None`, and not before the timeout; with a
/// permit released while it waits (by a thread that, when the waiter is a thread, first sees
/// it asleep in the kernel), it returns `Some` long before its (long) timeout.
fn acquire_timeout_both_ways() {
    let sem = Arc::new(Semaphore::new(0));
    let timeout = Duration::from_millis(30);
    let start = Instant::now();
    assert!(sem.acquire_timeout(timeout).is_none(), "a permit from an empty semaphore");
    let waited = start.elapsed();
    assert!(waited >= timeout, "acquire_timeout({timeout:?}) gave up after {waited:?}");

    let holder = Arc::new(Semaphore::new(1));
    let permit = holder.acquire();
    let tid = Arc::new(std::sync::atomic::AtomicI32::new(0));
    let waiting = flag();
    let on_thread = !weft::is_coroutine();
    if on_thread {
        support::publish_tid(&tid);
    }
    let releaser = {
        let (holder, tid, waiting) = (Arc::clone(&holder), Arc::clone(&tid), Arc::clone(&waiting));
        std::thread::spawn(move || {
            wait_for(&waiting);
            if on_thread {
                assert!(support::wait_sleeping(&tid, hang()), "the waiter never slept");
            }
            holder.add_permits(1);
        })
    };
    waiting.store(true, Ordering::SeqCst);
    let got = holder.acquire_timeout(hang());
    assert!(got.is_some(), "acquire_timeout returned None though a permit came in time");
    releaser.join().expect("releaser");
    drop((got, permit));
    assert_eq!(holder.available_permits(), 2);
}

#[test]
fn semaphore_acquire_timeout_none_after_timeout_some_when_released() {
    support::on_thread_and_coroutines(
        "semaphore_acquire_timeout_none_after_timeout_some_when_released",
        acquire_timeout_both_ways,
    );
}

/// Waiters queued one by one on an empty semaphore get permits in the order they queued. Each
/// waiter queues only once the previous one is known to wait: a thread is asleep in the kernel;
/// a coroutine on a one-worker runtime has given the worker back after saying it is about to
/// acquire, which on one worker means it is parked in `acquire`. Winners `forget` their
/// permit, so each `add_permits(1)` frees exactly one waiter.
#[test]
fn semaphore_grants_in_fifo_order() {
    let wd = support::watchdog(
        "semaphore_grants_in_fifo_order",
        support::budget(Duration::from_secs(120)),
    );
    let waiters = 6;
    let sem = Arc::new(Semaphore::new(0));
    let order = Arc::new(std::sync::Mutex::new(Vec::new()));
    let got = Arc::new(AtomicUsize::new(0));

    // Threads.
    wd.note("thread waiters");
    let mut threads = Vec::new();
    for w in 0..waiters {
        let tid = Arc::new(std::sync::atomic::AtomicI32::new(0));
        let (sem, order, got, tid2) =
            (Arc::clone(&sem), Arc::clone(&order), Arc::clone(&got), Arc::clone(&tid));
        threads.push(std::thread::spawn(move || {
            support::publish_tid(&tid2);
            sem.acquire().forget();
            order.lock().unwrap().push(w);
            got.fetch_add(1, Ordering::SeqCst);
        }));
        assert!(support::wait_sleeping(&tid, hang()), "thread waiter {w} never slept");
    }
    release_one_by_one(&sem, &got, waiters, "thread waiters");
    threads.into_iter().for_each(|t| t.join().expect("waiter thread"));
    assert_eq!(*order.lock().unwrap(), (0..waiters).collect::<Vec<_>>(), "thread waiters");

    // Coroutines on one worker, queued from a coroutine of the same worker.
    wd.note("coroutine waiters");
    order.lock().unwrap().clear();
    got.store(0, Ordering::SeqCst);
    let rt = support::runtime(1, Mode::Pinned);
    wd.watch_runtime("rt", &rt);
    let handles = rt.block_on(|| {
        (0..waiters)
            .map(|w| {
                let about = flag();
                let (sem, order, got, about2) =
                    (Arc::clone(&sem), Arc::clone(&order), Arc::clone(&got), Arc::clone(&about));
                let handle = weft::spawn(move || {
                    about2.store(true, Ordering::SeqCst);
                    sem.acquire().forget();
                    order.lock().unwrap().push(w);
                    got.fetch_add(1, Ordering::SeqCst);
                });
                wait_for(&about);
                handle
            })
            .collect::<Vec<_>>()
    });
    release_one_by_one(&sem, &got, waiters, "coroutine waiters");
    handles.into_iter().for_each(|h| h.join().expect("waiter coroutine"));
    assert_eq!(*order.lock().unwrap(), (0..waiters).collect::<Vec<_>>(), "coroutine waiters");
    assert_eq!(sem.available_permits(), 0, "forgotten permits came back");
}

/// Adds one permit at a time and waits for one more waiter to get through each time.
fn release_one_by_one(sem: &Semaphore, got: &AtomicUsize, waiters: usize, what: &str) {
    for w in 1..=waiters {
        sem.add_permits(1);
        assert!(
            support::wait_until(hang(), || got.load(Ordering::SeqCst) == w),
            "{what}: after {w} permits, {} waiters got through",
            got.load(Ordering::SeqCst)
        );
    }
}

/// `forget` keeps a permit out for good; `add_permits(n)` raises the count and wakes up to `n`
/// waiters (coroutines and threads) at once.
#[test]
fn semaphore_forget_and_add_permits() {
    let wd = support::watchdog(
        "semaphore_forget_and_add_permits",
        support::budget(Duration::from_secs(60)),
    );
    let sem = Arc::new(Semaphore::new(2));
    sem.acquire().forget();
    assert_eq!(sem.available_permits(), 1, "a forgotten permit came back");
    let kept = sem.acquire();
    assert!(sem.try_acquire().is_none());
    drop(kept);
    assert_eq!(sem.available_permits(), 1);
    sem.add_permits(3);
    assert_eq!(sem.available_permits(), 4);
    for _ in 0..4 {
        sem.acquire().forget();
    }
    assert_eq!(sem.available_permits(), 0);

    let rt = support::runtime(2, Mode::Pinned);
    wd.watch_runtime("rt", &rt);
    let sides = mix(5, 3);
    let waiting = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<Handle<()>> = sides
        .iter()
        .map(|&side| {
            let (sem, waiting) = (Arc::clone(&sem), Arc::clone(&waiting));
            spawn_on(side, Some(&rt), "task", move || {
                waiting.fetch_add(1, Ordering::SeqCst);
                sem.acquire().forget();
            })
        })
        .collect();
    assert!(support::wait_until(hang(), || waiting.load(Ordering::SeqCst) == sides.len()));
    sem.add_permits(sides.len());
    finish(&wd, &rt, tasks, "waiters freed by one add_permits");
    assert_eq!(sem.available_permits(), 0);
}

// ---------------------------------------------------------------------------------------------
// WaitGroup
// ---------------------------------------------------------------------------------------------

/// `wait` returns only after every `done`: workers (coroutines and threads) each mark their slot
/// and call `done` on a clone after a seeded number of yields; waiters (coroutines and
/// threads) then find every slot marked. `count` falls as they finish.
#[test]
fn wait_group_wait_returns_after_every_done() {
    let wd = support::watchdog(
        "wait_group_wait_returns_after_every_done",
        support::budget(Duration::from_secs(120)),
    );
    let seed = wd.seed();
    let mut rng = Rng::new(seed);
    let rounds = support::sized(20, 200);
    let rt = support::runtime(2, Mode::Pinned);
    wd.watch_runtime("rt", &rt);
    for round in 0..rounds {
        wd.note(format!("round {round}"));
        let workers = mix(12, 4);
        let wg = WaitGroup::new();
        wg.add(workers.len());
        assert_eq!(wg.count(), workers.len());
        let marks: Arc<Vec<AtomicBool>> =
            Arc::new(workers.iter().map(|_| AtomicBool::new(false)).collect());
        let mut tasks: Vec<Handle<()>> = [Side::Coroutine, Side::Thread, Side::Coroutine]
            .into_iter()
            .map(|side| {
                let (wg, marks) = (wg.clone(), Arc::clone(&marks));
                spawn_on(side, Some(&rt), "task", move || {
                    wg.wait();
                    let missing: Vec<usize> =
                        (0..marks.len()).filter(|&i| !marks[i].load(Ordering::SeqCst)).collect();
                    assert!(
                        missing.is_empty(),
                        "seed {seed} round {round}: a {side:?} waiter returned before workers \
                         {missing:?} were done"
                    );
                    assert_eq!(wg.count(), 0);
                })
            })
            .collect();
        tasks.extend(workers.iter().enumerate().map(|(i, &side)| {
            let (wg, marks) = (wg.clone(), Arc::clone(&marks));
            let yields = rng.below(20);
            spawn_on(side, Some(&rt), "task", move || {
                for _ in 0..yields {
                    pause();
                }
                marks[i].store(true, Ordering::SeqCst);
                wg.done();
            })
        }));
        finish(&wd, &rt, tasks, &format!("seed {seed} round {round}"));
        assert_eq!(wg.count(), 0);
        wg.wait();
    }
}

/// A group at zero does not block: a new one, and one brought back to zero.
fn wait_group_zero() {
    let wg = WaitGroup::new();
    assert_eq!(wg.count(), 0);
    wg.wait();
    wg.add(2);
    let clone = wg.clone();
    clone.done();
    assert_eq!(wg.count(), 1, "a clone shares the count");
    wg.done();
    assert_eq!(clone.count(), 0);
    wg.wait();
    clone.wait();
}

#[test]
fn wait_group_at_zero_returns_immediately() {
    support::on_thread_and_coroutines("wait_group_at_zero_returns_immediately", wait_group_zero);
}

/// `done` below zero panics: on a fresh group, and after the count is back to zero.
fn wait_group_underflow() {
    let wg = WaitGroup::new();
    let fresh = catch_unwind(AssertUnwindSafe(|| wg.done()));
    assert!(fresh.is_err(), "done() on a group at zero did not panic");
    let wg = WaitGroup::new();
    wg.add(1);
    wg.done();
    let again = catch_unwind(AssertUnwindSafe(|| wg.done()));
    assert!(again.is_err(), "a second done() after add(1) did not panic");
}

#[test]
fn wait_group_done_below_zero_panics() {
    support::on_thread_and_coroutines("wait_group_done_below_zero_panics", wait_group_underflow);
}

// ---------------------------------------------------------------------------------------------
// Once and OnceLock under contention
// ---------------------------------------------------------------------------------------------

/// Racers of the Once/OnceLock tests, as (coroutines, threads).
const RACERS: (usize, usize) = (40, 6);

/// The arrivals of one Once/OnceLock race: each racer counts itself just before its call, and
/// the init counts itself and waits until all `n` racers have arrived.
struct Arrivals {
    n: usize,
    arrived: AtomicUsize,
    inits: AtomicUsize,
    /// Whether the init saw all `n` arrive (within [`hang`]).
    all_arrived: AtomicBool,
}

impl Arrivals {
    fn new(n: usize) -> Arrivals {
        Arrivals {
            n,
            arrived: AtomicUsize::new(0),
            inits: AtomicUsize::new(0),
            all_arrived: AtomicBool::new(false),
        }
    }

    /// A racer, just before its call.
    fn arrive(&self) {
        self.arrived.fetch_add(1, Ordering::SeqCst);
    }

    /// The init: counts itself and waits for every racer.
    fn init(&self) {
        self.inits.fetch_add(1, Ordering::SeqCst);
        let all = support::wait_until(hang(), || self.arrived.load(Ordering::SeqCst) == self.n);
        self.all_arrived.store(all, Ordering::SeqCst);
    }
}

/// Races [`RACERS`] coroutines and threads on a fresh `new()` cell, some rounds on one worker
/// and on two: racer `r` runs `race(&cell, &arrivals, r, side)`, which must call
/// [`Arrivals::arrive`] just before `call` and [`Arrivals::init`] in the init. After each
/// round the init ran exactly once, saw every racer arrive, and `check(&cell)` passes.
fn once_race<C: Send + Sync + 'static>(
    name: &str,
    call: &str,
    new: fn() -> C,
    race: fn(&C, &Arrivals, usize, Side),
    check: fn(&C),
) {
    let wd = support::watchdog(name, support::budget(Duration::from_secs(120)));
    let rounds = support::sized(5, 50);
    for workers in [1, 2] {
        let rt = support::runtime(workers, Mode::Pinned);
        wd.watch_runtime("rt", &rt);
        for round in 0..rounds {
            wd.note(format!("{workers} worker(s), round {round}"));
            let sides = mix(RACERS.0, RACERS.1);
            let n = sides.len();
            let cell = Arc::new(new());
            let arrivals = Arc::new(Arrivals::new(n));
            let tasks: Vec<Handle<()>> = sides
                .iter()
                .enumerate()
                .map(|(r, &side)| {
                    let (cell, arrivals) = (Arc::clone(&cell), Arc::clone(&arrivals));
                    spawn_on(side, Some(&rt), "task", move || race(&cell, &arrivals, r, side))
                })
                .collect();
            finish(&wd, &rt, tasks, &format!("{workers} worker(s), round {round}"));
            assert_eq!(arrivals.inits.load(Ordering::SeqCst), 1, "the init ran more than once");
            assert!(
                arrivals.all_arrived.load(Ordering::SeqCst),
                "the init waited in vain for all {n} racers ({} arrived): a {call} that \
                 blocks the worker instead of parking the coroutine?",
                arrivals.arrived.load(Ordering::SeqCst)
            );
            check(&cell);
        }
    }
}

/// Many coroutines and threads race `OnceLock::get_or_init`. The init runs exactly once and,
/// before it returns, waits until every racer has arrived (each counts itself just before its
/// call), so all of them are inside `get_or_init` while it runs: coroutines parked, threads
/// blocked, none of them holding up the worker the init runs on. All see the one value.
#[test]
fn once_lock_init_runs_once_under_contention() {
    once_race(
        "once_lock_init_runs_once_under_contention",
        "get_or_init",
        OnceLock::new,
        |cell, arrivals, r, _| {
            arrivals.arrive();
            let value = cell.get_or_init(|| {
                arrivals.init();
                vec![r; 3]
            });
            assert_eq!(value.len(), 3);
            assert!(value.iter().all(|&v| v == value[0]));
            assert_eq!(cell.get(), Some(value));
        },
        |cell| assert!(cell.get().is_some()),
    );
}

/// The same race on `Once::call_once`: the init runs once, every racer is inside `call_once`
/// while it runs, and after `call_once` returns each racer sees what the init wrote and
/// `is_completed()`.
#[test]
fn once_call_once_runs_once_under_contention() {
    once_race(
        "once_call_once_runs_once_under_contention",
        "call_once",
        || (Once::new(), AtomicUsize::new(0)),
        |(once, value), arrivals, r, side| {
            arrivals.arrive();
            once.call_once(|| {
                arrivals.init();
                // Relaxed: call_once's return is what must publish it.
                value.store(r + 1, Ordering::Relaxed);
            });
            assert!(once.is_completed());
            assert_ne!(
                value.load(Ordering::Relaxed),
                0,
                "racer {r} ({side:?}): call_once returned before the init's write"
            );
        },
        |_| {},
    );
}
