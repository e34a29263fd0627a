//! std's documented behaviours of the `std::sync` locks, re-tested against `weft::sync`: what a
//! program ported from std by changing its `use` lines relies on. (The channels are in
//! `tests/sync_std_channels.rs`.)
//!
//! - `Mutex`: poisoning by a panic while a guard is held (not by one without), the guard inside
//!   the `PoisonError`, `clear_poison`, `into_inner`/`get_mut` on poisoned and healthy locks,
//!   `try_lock` refusing with `WouldBlock`, `const fn new`, unsized data.
//! - `RwLock`: only a writer's panic poisons; `try_read`/`try_write` refuse as std's do.
//! - `Condvar`: `wait_while`, `wait_timeout` and `wait_timeout_while` (timed out not before
//!   the timeout, and not ended early by notifications that leave the predicate true),
//!   `notify_all` waking every waiter, `notify_one` one waiter per call.
//! - `Barrier`: exactly one leader per generation over many generations; `new(0)`/`new(1)`
//!   never block.
//! - `Once`: a panicking init poisons; `call_once` then panics, `call_once_force` runs and sees
//!   `is_poisoned()`. `OnceLock`: `set`/`get`/`get_mut`/`take`/`into_inner`/`get_or_init`, and
//!   `get` never blocks during another caller's init.
//!
//! Most checks run on the test thread and in a coroutine on a two-worker runtime, pinned and
//! migrating (`support::on_thread_and_coroutines`); the peers a check starts are of its own
//! kind, threads from a thread and coroutines from a coroutine ([`peer`]). A peer that holds a
//! lock until told waits on a flag ([`wait_for`]), so the check knows what is held while it
//! calls.

mod support;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::peers::{flag, peer, peer_on, wait_for, SHORT};
use support::{hang, Handle, Mode};
use weft::sync::{
    Barrier, Condvar, LockResult, Mutex, MutexGuard, Once, OnceLock, RwLock, Semaphore,
    TryLockError,
};

/// What a poisoned lock's `call` gives back inside its `PoisonError`; panics if it returned
/// `Ok` (the message is "`call` returned Ok").
fn poisoned<G>(result: LockResult<G>, call: &str) -> G {
    match result {
        Err(poisoned) => poisoned.into_inner(),
        Ok(_) => panic!("{call} returned Ok"),
    }
}

// ---------------------------------------------------------------------------------------------
// Mutex
// ---------------------------------------------------------------------------------------------

fn mutex_poisoning() {
    let m = Arc::new(Mutex::new(vec![1]));
    // A panic that does not hold a guard leaves the mutex healthy.
    let m2 = Arc::clone(&m);
    let r = peer(move || {
        let len = m2.lock().unwrap().len();
        panic!("intended panic, after the guard of {len} is gone");
    })
    .join();
    assert!(r.is_err());
    assert!(!m.is_poisoned(), "a panic without a guard poisoned the mutex");

    // A panic while a guard is held poisons; the data stays as the panicking holder left it.
    let m2 = Arc::clone(&m);
    let r = peer(move || {
        let mut guard = m2.lock().unwrap();
        guard.push(2);
        panic!("intended panic, holding the guard");
    })
    .join();
    assert!(r.is_err());
    assert!(m.is_poisoned(), "a panic holding the guard did not poison the mutex");
    let mut guard = poisoned(m.lock(), "lock() on a poisoned mutex");
    assert_eq!(*guard, [1, 2]);
    guard.push(3);
    drop(guard);
    assert!(m.is_poisoned(), "the poison went away without clear_poison");
    match m.try_lock() {
        Err(TryLockError::Poisoned(poisoned)) => assert_eq!(*poisoned.into_inner(), [1, 2, 3]),
        Err(TryLockError::WouldBlock) => panic!("try_lock on a free poisoned mutex: WouldBlock"),
        Ok(_) => panic!("try_lock on a poisoned mutex returned Ok"),
    }
    m.clear_poison();
    assert!(!m.is_poisoned());
    assert_eq!(*m.lock().unwrap(), [1, 2, 3]);

    // A panic caught in the same task poisons too.
    let r = catch_unwind(AssertUnwindSafe(|| {
        let _guard = m.lock().unwrap();
        panic!("intended panic, caught, holding the guard");
    }));
    assert!(r.is_err());
    assert!(m.is_poisoned());

    // get_mut and into_inner report the poison and still give the data.
    let mut m = Arc::try_unwrap(m).unwrap_or_else(|_| panic!("the peers kept their clones"));
    poisoned(m.get_mut(), "get_mut on a poisoned mutex").push(4);
    assert_eq!(poisoned(m.into_inner(), "into_inner on a poisoned mutex"), [1, 2, 3, 4]);
}

#[test]
fn mutex_poisoning_and_clear_poison() {
    support::on_thread_and_coroutines("mutex_poisoning_and_clear_poison", mutex_poisoning);
}

fn mutex_data_access() {
    let mut m = Mutex::new(String::from("a"));
    m.get_mut().unwrap().push('b');
    *m.lock().unwrap() += "c";
    assert_eq!(m.into_inner().unwrap(), "abc");
    assert_eq!(*Mutex::<u32>::default().lock().unwrap(), 0);
    assert_eq!(*Mutex::from(5u8).lock().unwrap(), 5);
    // T: ?Sized.
    let slice: Arc<Mutex<[u32]>> = Arc::new(Mutex::new([1, 2, 3]));
    slice.lock().unwrap()[1] = 20;
    assert_eq!(&*slice.lock().unwrap(), &[1, 20, 3]);
    // A guard moves its data between holders of any kind.
    let shared = Arc::new(Mutex::new(Vec::new()));
    let peers: Vec<_> = (0..4)
        .map(|i| {
            let shared = Arc::clone(&shared);
            peer(move || shared.lock().unwrap().push(i))
        })
        .collect();
    peers.into_iter().for_each(|p| p.value("pusher"));
    let mut all = shared.lock().unwrap().clone();
    all.sort_unstable();
    assert_eq!(all, [0, 1, 2, 3]);
}

#[test]
fn mutex_into_inner_get_mut_default_from() {
    support::on_thread_and_coroutines("mutex_into_inner_get_mut_default_from", mutex_data_access);
}

fn mutex_try_lock() {
    let m = Arc::new(Mutex::new(0));
    {
        let _guard = m.lock().unwrap();
        assert!(
            matches!(m.try_lock(), Err(TryLockError::WouldBlock)),
            "try_lock by the holder itself"
        );
    }
    let (held, release) = (flag(), flag());
    let holder = {
        let (m, held, release) = (Arc::clone(&m), Arc::clone(&held), Arc::clone(&release));
        peer(move || {
            let mut guard = m.lock().unwrap();
            *guard += 1;
            held.store(true, Ordering::SeqCst);
            wait_for(&release);
        })
    };
    wait_for(&held);
    assert!(matches!(m.try_lock(), Err(TryLockError::WouldBlock)), "try_lock while another holds");
    assert!(!m.is_poisoned());
    release.store(true, Ordering::SeqCst);
    holder.value("holder");
    match m.try_lock() {
        Ok(guard) => assert_eq!(*guard, 1),
        Err(e) => panic!("try_lock on a free mutex: {e}"),
    };
}

#[test]
fn mutex_try_lock_would_block() {
    support::on_thread_and_coroutines("mutex_try_lock_would_block", mutex_try_lock);
}

/// `const fn new` of the std-shaped types: usable in statics.
#[test]
fn statics_are_const_initialized() {
    static MUTEX: Mutex<u32> = Mutex::new(0);
    static RWLOCK: RwLock<u32> = RwLock::new(0);
    static CONDVAR: Condvar = Condvar::new();
    static ONCE: Once = Once::new();
    static CELL: OnceLock<u32> = OnceLock::new();
    static PERMITS: Semaphore = Semaphore::new(1);
    let wd = support::watchdog(
        "statics_are_const_initialized",
        support::budget(Duration::from_secs(30)),
    );
    let rt = support::runtime(2, Mode::Pinned);
    wd.watch_runtime("rt", &rt);
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            rt.spawn(move || {
                *MUTEX.lock().unwrap() += 1;
                let before = *RWLOCK.read().unwrap();
                *RWLOCK.write().unwrap() += 1;
                assert!(*RWLOCK.read().unwrap() > before);
                ONCE.call_once(|| *MUTEX.lock().unwrap() += 100);
                assert_eq!(*CELL.get_or_init(|| 7), 7);
                drop(PERMITS.acquire());
                CONDVAR.notify_all();
            })
        })
        .collect();
    tasks.into_iter().for_each(|t| t.join().expect("a task on the statics"));
    assert_eq!(*MUTEX.lock().unwrap(), 108);
    assert_eq!(*RWLOCK.read().unwrap(), 8);
    assert!(ONCE.is_completed());
    assert_eq!(PERMITS.available_permits(), 1);
}

// ---------------------------------------------------------------------------------------------
// RwLock
// ---------------------------------------------------------------------------------------------

fn rwlock_poisoning() {
    let lock = Arc::new(RwLock::new(1));
    let l2 = Arc::clone(&lock);
    let r = peer(move || {
        let _read = l2.read().unwrap();
        panic!("intended panic, holding a read guard");
    })
    .join();
    assert!(r.is_err());
    assert!(!lock.is_poisoned(), "a reader's panic poisoned the RwLock");
    assert_eq!(*lock.read().unwrap(), 1);
    *lock.write().unwrap() = 2;

    let l2 = Arc::clone(&lock);
    let r = peer(move || {
        let mut write = l2.write().unwrap();
        *write = 3;
        panic!("intended panic, holding the write guard");
    })
    .join();
    assert!(r.is_err());
    assert!(lock.is_poisoned(), "a writer's panic did not poison the RwLock");
    assert_eq!(*poisoned(lock.read(), "read() on a poisoned RwLock"), 3);
    *poisoned(lock.write(), "write() on a poisoned RwLock") = 4;
    match lock.try_read() {
        Err(TryLockError::Poisoned(poisoned)) => assert_eq!(*poisoned.into_inner(), 4),
        _ => panic!("try_read on a poisoned RwLock: not Poisoned"),
    }
    assert!(
        matches!(lock.try_write(), Err(TryLockError::Poisoned(_))),
        "try_write on a poisoned RwLock: not Poisoned"
    );
    lock.clear_poison();
    assert!(!lock.is_poisoned());
    assert_eq!(*lock.read().unwrap(), 4);

    // Caught in the same task: a read guard does not poison, a write guard does.
    let r = catch_unwind(AssertUnwindSafe(|| {
        let _read = lock.read().unwrap();
        panic!("intended panic, caught, holding a read guard");
    }));
    assert!(r.is_err());
    assert!(!lock.is_poisoned(), "a caught reader's panic poisoned the RwLock");
    let r = catch_unwind(AssertUnwindSafe(|| {
        let _write = lock.write().unwrap();
        panic!("intended panic, caught, holding the write guard");
    }));
    assert!(r.is_err());
    assert!(lock.is_poisoned());

    let mut lock = Arc::try_unwrap(lock).unwrap_or_else(|_| panic!("the peers kept their clones"));
    *poisoned(lock.get_mut(), "get_mut on a poisoned RwLock") = 5;
    assert_eq!(poisoned(lock.into_inner(), "into_inner on a poisoned RwLock"), 5);
    let mut healthy = RwLock::new(1);
    *healthy.get_mut().unwrap() += 1;
    assert_eq!(healthy.into_inner().unwrap(), 2);
}

#[test]
fn rwlock_poisoned_only_by_writers() {
    support::on_thread_and_coroutines("rwlock_poisoned_only_by_writers", rwlock_poisoning);
}

/// Holds `lock` (a write guard if `write`) on a peer until `release` is set.
fn hold_rwlock(lock: &Arc<RwLock<u32>>, write: bool, release: &Arc<AtomicBool>) -> Handle<()> {
    let (lock, release, held) = (Arc::clone(lock), Arc::clone(release), flag());
    let held2 = Arc::clone(&held);
    let holder = peer(move || {
        if write {
            let _guard = lock.write().unwrap();
            held2.store(true, Ordering::SeqCst);
            wait_for(&release);
        } else {
            let _guard = lock.read().unwrap();
            held2.store(true, Ordering::SeqCst);
            wait_for(&release);
        }
    });
    wait_for(&held);
    holder
}

fn rwlock_try() {
    let lock = Arc::new(RwLock::new(0u32));
    let release = flag();
    let writer = hold_rwlock(&lock, true, &release);
    assert!(matches!(lock.try_read(), Err(TryLockError::WouldBlock)), "try_read beside a writer");
    assert!(matches!(lock.try_write(), Err(TryLockError::WouldBlock)), "try_write beside a writer");
    release.store(true, Ordering::SeqCst);
    writer.value("writer");

    let release = flag();
    let reader = hold_rwlock(&lock, false, &release);
    assert!(lock.try_read().is_ok(), "try_read beside a reader");
    assert!(matches!(lock.try_write(), Err(TryLockError::WouldBlock)), "try_write beside a reader");
    {
        let _mine = lock.read().unwrap();
        assert!(matches!(lock.try_write(), Err(TryLockError::WouldBlock)));
    }
    release.store(true, Ordering::SeqCst);
    reader.value("reader");
    assert!(lock.try_write().is_ok(), "try_write on a free RwLock");
}

#[test]
fn rwlock_try_read_try_write_would_block() {
    support::on_thread_and_coroutines("rwlock_try_read_try_write_would_block", rwlock_try);
}

// ---------------------------------------------------------------------------------------------
// Condvar
// ---------------------------------------------------------------------------------------------

#[derive(Default)]
struct State {
    /// Set by a waiter under the lock just before it waits: once anyone else holds the lock
    /// and sees it, the waiter is inside `wait*` (the wait is what released the lock).
    waiting: usize,
    value: u32,
    go: bool,
    tokens: usize,
    noise: usize,
}

type Pair = Arc<(Mutex<State>, Condvar)>;

fn new_pair() -> Pair {
    Arc::new((Mutex::new(State::default()), Condvar::new()))
}

/// Waits until `n` waiters have announced themselves under the lock.
fn wait_waiting(pair: &Pair, n: usize) {
    let ok = support::wait_until(hang(), || pair.0.lock().unwrap().waiting >= n);
    assert!(ok, "only {} of {n} waiters reached the condvar", pair.0.lock().unwrap().waiting);
}

fn condvar_wait_while() {
    let pair = new_pair();
    let producer = {
        let pair = Arc::clone(&pair);
        peer(move || {
            wait_waiting(&pair, 1);
            let (m, cv) = &*pair;
            for v in 1..=3 {
                m.lock().unwrap().value = v;
                cv.notify_one();
            }
        })
    };
    let (m, cv) = &*pair;
    let mut guard = m.lock().unwrap();
    guard.waiting += 1;
    let mut checks = Vec::new();
    let guard = cv
        .wait_while(guard, |s| {
            checks.push(s.value);
            s.value < 3
        })
        .unwrap();
    assert_eq!(guard.value, 3);
    assert_eq!(checks.first(), Some(&0), "the predicate is checked before the first wait");
    assert_eq!(checks.last(), Some(&3));
    drop(guard);
    producer.value("producer");

    // A predicate already false returns at once, without a notification.
    let guard = cv.wait_while(m.lock().unwrap(), |s| s.value != 3).unwrap();
    assert_eq!(guard.value, 3);
}

#[test]
fn condvar_wait_while_waits_for_the_predicate() {
    support::on_thread_and_coroutines(
        "condvar_wait_while_waits_for_the_predicate",
        condvar_wait_while,
    );
}

fn condvar_timeouts() {
    let pair = new_pair();
    let (m, cv) = &*pair;

    // wait_timeout: nobody notifies; a return that is not timed out is a spurious wake-up.
    let start = Instant::now();
    let mut guard = m.lock().unwrap();
    loop {
        let (g, result) = cv.wait_timeout(guard, SHORT).unwrap();
        guard = g;
        if result.timed_out() {
            break;
        }
        assert!(start.elapsed() < hang(), "wait_timeout never timed out");
    }
    let waited = start.elapsed();
    assert!(waited >= SHORT, "wait_timeout({SHORT:?}) timed out after {waited:?}");
    drop(guard);

    // wait_timeout_while with a predicate that stays true: times out, not before the timeout,
    // though a peer keeps notifying (changing other fields) all along.
    let stop = flag();
    let noisy = {
        let (pair, stop) = (Arc::clone(&pair), Arc::clone(&stop));
        peer(move || {
            while !stop.load(Ordering::SeqCst) {
                pair.0.lock().unwrap().noise += 1;
                pair.1.notify_all();
                if weft::is_coroutine() {
                    weft::yield_now();
                } else {
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
        })
    };
    let start = Instant::now();
    let (guard, result) =
        cv.wait_timeout_while(m.lock().unwrap(), SHORT, |s| s.value == 0).unwrap();
    let waited = start.elapsed();
    assert!(result.timed_out(), "the predicate never turned false, yet not timed out");
    assert!(waited >= SHORT, "wait_timeout_while({SHORT:?}) gave up after {waited:?}");
    assert_eq!(guard.value, 0);
    drop(guard);
    stop.store(true, Ordering::SeqCst);
    noisy.value("notifier");

    // The predicate turns false in time: not timed out, and the change is seen.
    let producer = {
        let pair = Arc::clone(&pair);
        peer(move || {
            wait_waiting(&pair, 1);
            pair.0.lock().unwrap().value = 7;
            pair.1.notify_one();
        })
    };
    let mut guard = m.lock().unwrap();
    guard.waiting += 1;
    let (guard, result) = cv.wait_timeout_while(guard, hang(), |s| s.value == 0).unwrap();
    assert!(!result.timed_out(), "timed out though the predicate turned false");
    assert_eq!(guard.value, 7);
    drop(guard);
    producer.value("producer");
}

#[test]
fn condvar_wait_timeout_and_wait_timeout_while() {
    support::on_thread_and_coroutines(
        "condvar_wait_timeout_and_wait_timeout_while",
        condvar_timeouts,
    );
}

/// Waiters of the notify checks.
const CONDVAR_WAITERS: usize = 4;

/// Starts [`CONDVAR_WAITERS`] peers that each announce themselves under the lock and then
/// `wait` on the condvar with the guard; returns once every one of them is waiting.
fn start_waiters(pair: &Pair, wait: fn(&Condvar, MutexGuard<'_, State>)) -> Vec<Handle<()>> {
    let waiters = (0..CONDVAR_WAITERS)
        .map(|_| {
            let pair = Arc::clone(pair);
            peer(move || {
                let (m, cv) = &*pair;
                let mut guard = m.lock().unwrap();
                guard.waiting += 1;
                wait(cv, guard);
            })
        })
        .collect();
    wait_waiting(pair, CONDVAR_WAITERS);
    waiters
}

fn condvar_notify() {
    // notify_all: one call wakes every waiter.
    let pair = new_pair();
    let waiters = start_waiters(&pair, |cv, guard| drop(cv.wait_while(guard, |s| !s.go).unwrap()));
    pair.0.lock().unwrap().go = true;
    pair.1.notify_all();
    waiters.into_iter().for_each(|w| w.value("a waiter after one notify_all"));

    // notify_one: one token and one notify_one per waiter frees them all.
    let pair = new_pair();
    let waiters = start_waiters(&pair, |cv, guard| {
        let mut guard = cv.wait_while(guard, |s| s.tokens == 0).unwrap();
        guard.tokens -= 1;
    });
    for _ in 0..CONDVAR_WAITERS {
        pair.0.lock().unwrap().tokens += 1;
        pair.1.notify_one();
    }
    waiters.into_iter().for_each(|w| w.value("a waiter after one notify_one each"));
    assert_eq!(pair.0.lock().unwrap().tokens, 0);
}

#[test]
fn condvar_notify_all_wakes_every_waiter_notify_one_one_each() {
    support::on_thread_and_coroutines(
        "condvar_notify_all_wakes_every_waiter_notify_one_one_each",
        condvar_notify,
    );
}

// ---------------------------------------------------------------------------------------------
// Barrier
// ---------------------------------------------------------------------------------------------

/// Generations of the barrier checks.
const GENERATIONS: usize = 30;

/// Arrivals and leaders per generation of one barrier.
struct Generations {
    n: usize,
    arrived: Vec<AtomicUsize>,
    leaders: Vec<AtomicUsize>,
}

impl Generations {
    fn new(n: usize) -> Arc<Generations> {
        let zeros = || (0..GENERATIONS).map(|_| AtomicUsize::new(0)).collect();
        Arc::new(Generations { n, arrived: zeros(), leaders: zeros() })
    }

    /// One participant: arrives at every generation, checks it was released only once all
    /// `n` had arrived, and counts itself if it is the leader.
    fn participate(&self, barrier: &Barrier) {
        for g in 0..GENERATIONS {
            self.arrived[g].fetch_add(1, Ordering::SeqCst);
            let result = barrier.wait();
            let seen = self.arrived[g].load(Ordering::SeqCst);
            assert_eq!(
                seen, self.n,
                "generation {g}: released after {seen} of {} arrivals",
                self.n
            );
            if result.is_leader() {
                self.leaders[g].fetch_add(1, Ordering::SeqCst);
            }
        }
    }

    fn assert_one_leader_each(&self) {
        let leaders: Vec<usize> = self.leaders.iter().map(|l| l.load(Ordering::SeqCst)).collect();
        assert!(
            leaders.iter().all(|&l| l == 1),
            "leaders per generation (each must be 1): {leaders:?}"
        );
    }
}

fn barrier_generations() {
    const N: usize = 5;
    let barrier = Arc::new(Barrier::new(N));
    let generations = Generations::new(N);
    let peers: Vec<_> = (1..N)
        .map(|_| {
            let (barrier, generations) = (Arc::clone(&barrier), Arc::clone(&generations));
            peer(move || generations.participate(&barrier))
        })
        .collect();
    generations.participate(&barrier);
    peers.into_iter().for_each(|p| p.value("a participant"));
    generations.assert_one_leader_each();
}

#[test]
fn barrier_one_leader_per_generation() {
    support::on_thread_and_coroutines("barrier_one_leader_per_generation", barrier_generations);
}

/// The same with coroutines (two migrating workers) and threads at one barrier.
#[test]
fn barrier_one_leader_per_generation_mixed() {
    let wd = support::watchdog(
        "barrier_one_leader_per_generation_mixed",
        support::budget(Duration::from_secs(60)),
    );
    let rt = support::runtime(2, Mode::Migrating);
    wd.watch_runtime("rt", &rt);
    let (coroutines, threads) = (5, 3);
    let barrier = Arc::new(Barrier::new(coroutines + threads));
    let generations = Generations::new(coroutines + threads);
    let peers: Vec<Handle<()>> = (0..coroutines + threads)
        .map(|i| {
            let (barrier, generations) = (Arc::clone(&barrier), Arc::clone(&generations));
            peer_on(&rt, i < coroutines, move || generations.participate(&barrier))
        })
        .collect();
    peers.into_iter().for_each(|p| p.value("a participant"));
    generations.assert_one_leader_each();
}

fn barrier_trivial() {
    for n in [0, 1] {
        let barrier = Barrier::new(n);
        for call in 0..3 {
            assert!(barrier.wait().is_leader(), "Barrier::new({n}), call {call}: not the leader");
        }
    }
}

#[test]
fn barrier_of_zero_or_one_never_blocks() {
    support::on_thread_and_coroutines("barrier_of_zero_or_one_never_blocks", barrier_trivial);
}

// ---------------------------------------------------------------------------------------------
// Once and OnceLock
// ---------------------------------------------------------------------------------------------

fn once_poisoning() {
    let once = Arc::new(Once::new());
    let o2 = Arc::clone(&once);
    let r = peer(move || o2.call_once(|| panic!("intended panic in call_once"))).join();
    assert!(r.is_err());
    assert!(!once.is_completed(), "a panicking init completed the Once");

    let mut ran = false;
    let r = catch_unwind(AssertUnwindSafe(|| once.call_once(|| ran = true)));
    assert!(r.is_err(), "call_once on a poisoned Once did not panic");
    assert!(!ran, "call_once on a poisoned Once ran its closure");

    let mut saw = None;
    once.call_once_force(|state| saw = Some(state.is_poisoned()));
    assert_eq!(saw, Some(true), "call_once_force on a poisoned Once: is_poisoned()");
    assert!(once.is_completed());
    let mut ran = false;
    once.call_once(|| ran = true);
    once.call_once_force(|_| ran = true);
    assert!(!ran, "a completed Once ran another closure");

    // A panicking call_once_force poisons as well; the next one sees it.
    let once = Once::new();
    let mut first = None;
    let r = catch_unwind(AssertUnwindSafe(|| {
        once.call_once_force(|state| {
            first = Some(state.is_poisoned());
            panic!("intended panic in call_once_force");
        })
    }));
    assert!(r.is_err());
    assert_eq!(first, Some(false), "a fresh Once reported poisoned");
    let mut second = None;
    once.call_once_force(|state| second = Some(state.is_poisoned()));
    assert_eq!(second, Some(true));
    assert!(once.is_completed());
}

#[test]
fn once_poisoning_and_call_once_force() {
    support::on_thread_and_coroutines("once_poisoning_and_call_once_force", once_poisoning);
}

fn once_lock_api() {
    let cell = OnceLock::new();
    assert_eq!(cell.get(), None);
    assert_eq!(cell.set(1), Ok(()));
    assert_eq!(cell.set(2), Err(2), "set on a full cell gives the value back");
    assert_eq!(cell.get(), Some(&1));
    assert_eq!(*cell.get_or_init(|| panic!("get_or_init ran on a full cell")), 1);
    let mut cell = cell;
    *cell.get_mut().expect("get_mut on a full cell") += 10;
    assert_eq!(cell.take(), Some(11));
    assert_eq!(cell.get(), None, "take leaves the cell empty");
    assert_eq!(cell.get_mut(), None);
    assert_eq!(cell.take(), None);
    assert_eq!(*cell.get_or_init(|| 5), 5);
    assert_eq!(cell.into_inner(), Some(5));
    assert_eq!(OnceLock::<u8>::new().into_inner(), None);

    // A panicking init propagates and leaves the cell empty; the next init runs.
    let cell = OnceLock::new();
    let r =
        catch_unwind(AssertUnwindSafe(|| cell.get_or_init(|| panic!("intended panic in init"))));
    assert!(r.is_err());
    assert_eq!(cell.get(), None);
    assert_eq!(*cell.get_or_init(|| 3), 3);
}

#[test]
fn once_lock_set_get_take_into_inner() {
    support::on_thread_and_coroutines("once_lock_set_get_take_into_inner", once_lock_api);
}

fn once_lock_during_init() {
    let cell = Arc::new(OnceLock::new());
    let (started, release) = (flag(), flag());
    let init = {
        let (cell, started, release) =
            (Arc::clone(&cell), Arc::clone(&started), Arc::clone(&release));
        peer(move || {
            *cell.get_or_init(|| {
                started.store(true, Ordering::SeqCst);
                wait_for(&release);
                9
            })
        })
    };
    wait_for(&started);
    assert_eq!(cell.get(), None, "get() during another caller's init");
    // A set racing the init waits for it and loses.
    let setter = {
        let cell = Arc::clone(&cell);
        peer(move || cell.set(1))
    };
    assert_eq!(cell.get(), None);
    release.store(true, Ordering::SeqCst);
    assert_eq!(init.value("the init"), 9);
    assert_eq!(setter.value("the setter"), Err(1), "a set racing an init won");
    assert_eq!(cell.get(), Some(&9));
}

#[test]
fn once_lock_get_never_blocks_during_init() {
    support::on_thread_and_coroutines(
        "once_lock_get_never_blocks_during_init",
        once_lock_during_init,
    );
}
