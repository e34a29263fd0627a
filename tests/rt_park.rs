//! Park/unpark: races between a wake and a park, between two wakes, and between a wake and a
//! timeout, in loops with exact assertions; and every blocking call from plain threads.
//!
//! The races share one token protocol ([`Race`]). Per iteration `i`:
//!
//! ```text
//!   waker w                                   target
//!   wait until consumed >= i-1                [park_timeout(tiny)]      (timeout races only)
//!   spin a seeded jitter                      while some posted[w] < i:
//!   posted[w] = max(posted[w], i)                 park(); park_returns += 1
//!   unparks += 1; target.unpark()             consumed = i
//! ```
//!
//! - A lost wake-up leaves the target parked with every `posted[w] >= i`: `consumed` stops
//!   at `i-1`, the wakers' wait for it passes its deadline, and the test fails naming `i`
//!   (and whether one more unpark frees the target).
//! - A doubled wake-up (one unpark resuming the target twice, or a stale timer waking a later
//!   `park`) makes `park` return without an unpark. weft's `park` returns only for a token, so
//!   `park_returns <= unparks` must hold; a double resume also tends to crash outright.
//!
//! Sizes: 10,000 iterations per phase by default, 100,000 under `WEFT_STRESS=1`.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use support::{Mode, Rng};

/// How long one iteration may take before the race declares a lost wake-up. Far above any
/// scheduling delay, far below the watchdog's budget.
const ITERATION_DEADLINE: Duration = Duration::from_secs(10);

/// Longest seeded spin before a waker posts, to vary where in the target's park path the
/// unpark lands.
const MAX_JITTER_SPINS: u64 = 200;

/// Longest `park_timeout` in the timeout race: short enough that timeouts and unparks land
/// together.
const MAX_TINY_TIMEOUT_NS: u64 = 100_000;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Side {
    /// A coroutine on the runtime under test.
    Coroutine,
    /// A plain thread.
    Thread,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum TargetWait {
    /// `park()` until posted.
    Park,
    /// One `park_timeout(tiny)` racing the unpark, then `park()` until posted.
    TimeoutThenPark,
}

/// The shared state of one race phase; see the module docs.
struct Race {
    iterations: usize,
    posted: Vec<AtomicUsize>,
    consumed: AtomicUsize,
    park_returns: AtomicUsize,
    unparks: AtomicUsize,
    /// The first iteration that passed its deadline, 0 if none.
    hung_at: AtomicUsize,
    /// `consumed` when the rescuing unpark was sent, and after it (if it freed the target).
    rescue: std::sync::Mutex<Option<(usize, bool)>>,
}

impl Race {
    fn all_posted(&self, i: usize) -> bool {
        self.posted.iter().all(|p| p.load(Ordering::Acquire) >= i)
    }
}

fn pause() {
    if weft::is_coroutine() {
        weft::yield_now();
    } else {
        std::thread::yield_now();
    }
}

/// Target side: `iterations` rounds of the protocol; `timeouts[i]` is the tiny timeout of
/// round `i` for [`TargetWait::TimeoutThenPark`].
fn target_body(race: &Race, wait: TargetWait, timeouts: &[Duration]) {
    for i in 1..=race.iterations {
        if wait == TargetWait::TimeoutThenPark {
            weft::park_timeout(timeouts[i - 1]);
        }
        while !race.all_posted(i) {
            weft::park();
            race.park_returns.fetch_add(1, Ordering::SeqCst);
        }
        race.consumed.store(i, Ordering::Release);
    }
}

/// Waits until `consumed >= i` or the iteration deadline passes.
fn wait_consumed(race: &Race, i: usize) -> bool {
    let deadline = Instant::now() + ITERATION_DEADLINE;
    while race.consumed.load(Ordering::Acquire) < i {
        if race.hung_at.load(Ordering::Relaxed) != 0 || Instant::now() > deadline {
            return false;
        }
        pause();
    }
    true
}

/// Waker side (`w` of the race's wakers).
fn waker_body(race: &Race, w: usize, target: &weft::Coroutine, mut rng: Rng) {
    for i in 1..=race.iterations + 1 {
        if !wait_consumed(race, i - 1) {
            if race.hung_at.compare_exchange(0, i - 1, Ordering::SeqCst, Ordering::SeqCst).is_ok() {
                rescue(race, target);
            }
            return;
        }
        if i > race.iterations {
            return;
        }
        for _ in 0..rng.below(MAX_JITTER_SPINS) {
            std::hint::spin_loop();
        }
        race.posted[w].fetch_max(i, Ordering::Release);
        race.unparks.fetch_add(1, Ordering::SeqCst);
        target.unpark();
    }
}

/// After a hang: post everything, unpark once more, and note whether that freed the target
/// (then the hang was a lost wake-up, not a target stuck elsewhere).
fn rescue(race: &Race, target: &weft::Coroutine) {
    let before = race.consumed.load(Ordering::Acquire);
    for posted in &race.posted {
        posted.store(usize::MAX, Ordering::Release);
    }
    target.unpark();
    let freed =
        support::wait_until(ITERATION_DEADLINE, || race.consumed.load(Ordering::Acquire) > before);
    *race.rescue.lock().unwrap_or_else(|e| e.into_inner()) = Some((before, freed));
}

/// Waits for a spawned side to finish; `Err` names what panicked.
type Done = Box<dyn FnOnce() -> Result<(), String>>;

/// Starts the target on `side`; returns its handle (for the wakers) and its completion.
fn spawn_target(
    rt: &weft::Runtime,
    side: Side,
    race: &Arc<Race>,
    wait: TargetWait,
    timeouts: Vec<Duration>,
) -> (weft::Coroutine, Done) {
    let race = Arc::clone(race);
    match side {
        Side::Coroutine => {
            let handle = rt.spawn(move || target_body(&race, wait, &timeouts));
            let target = handle.coroutine().clone();
            let done: Done = Box::new(move || {
                handle
                    .join()
                    .map_err(|p| format!("target panicked: {:?}", support::panic_message(&*p)))
            });
            (target, done)
        }
        Side::Thread => {
            let (handle_tx, handle_rx) = mpsc::channel();
            let thread = std::thread::spawn(move || {
                handle_tx.send(weft::current()).expect("send the target's handle");
                target_body(&race, wait, &timeouts);
            });
            let target = handle_rx.recv().expect("the target thread's handle");
            let done: Done =
                Box::new(move || thread.join().map_err(|_| "target thread panicked".to_owned()));
            (target, done)
        }
    }
}

/// Starts waker `w` on `side`.
fn spawn_waker(
    rt: &weft::Runtime,
    side: Side,
    race: &Arc<Race>,
    w: usize,
    target: &weft::Coroutine,
    rng: Rng,
) -> Done {
    let (race, target) = (Arc::clone(race), target.clone());
    match side {
        Side::Coroutine => {
            let handle = rt.spawn(move || waker_body(&race, w, &target, rng));
            Box::new(move || handle.join().map_err(|_| format!("waker {w} panicked")))
        }
        Side::Thread => {
            let thread = std::thread::spawn(move || waker_body(&race, w, &target, rng));
            Box::new(move || thread.join().map_err(|_| format!("waker thread {w} panicked")))
        }
    }
}

/// Runs one phase: a target on `target` side waiting as `wait`, and one waker per entry of
/// `wakers`; then asserts the protocol's invariants.
fn race_phase(
    rt: &weft::Runtime,
    wd: &support::Watchdog,
    label: &str,
    rng: &mut Rng,
    target: Side,
    wait: TargetWait,
    wakers: &[Side],
) {
    let iterations = support::sized(10_000, 100_000);
    let race = Arc::new(Race {
        iterations,
        posted: wakers.iter().map(|_| AtomicUsize::new(0)).collect(),
        consumed: AtomicUsize::new(0),
        park_returns: AtomicUsize::new(0),
        unparks: AtomicUsize::new(0),
        hung_at: AtomicUsize::new(0),
        rescue: std::sync::Mutex::new(None),
    });
    let timeouts: Vec<Duration> =
        (0..iterations).map(|_| Duration::from_nanos(rng.below(MAX_TINY_TIMEOUT_NS + 1))).collect();
    wd.note(format!(
        "phase {label}: target {target:?}/{wait:?}, wakers {wakers:?}, {iterations} iterations"
    ));
    let started = Instant::now();

    let (target_handle, target_done) = spawn_target(rt, target, &race, wait, timeouts);
    let wakers_done: Vec<Done> = wakers
        .iter()
        .enumerate()
        .map(|(w, &side)| spawn_waker(rt, side, &race, w, &target_handle, rng.fork()))
        .collect();
    let errors: Vec<String> =
        wakers_done.into_iter().chain([target_done]).filter_map(|done| done().err()).collect();

    let hung_at = race.hung_at.load(Ordering::SeqCst);
    let rescue = *race.rescue.lock().unwrap_or_else(|e| e.into_inner());
    let verdict = match rescue {
        Some((_, true)) => "one more unpark freed it: the wake-up was lost",
        _ => "one more unpark did not free it either: the target is stuck elsewhere",
    };
    assert!(
        hung_at == 0,
        "phase {label}: iteration {hung_at} of {iterations} hung: every waker had posted and \
         unparked, but the target did not return from park within {ITERATION_DEADLINE:?} \
         (consumed {}); {verdict}",
        rescue.map_or(0, |r| r.0),
    );
    assert!(errors.is_empty(), "phase {label}: {errors:?}");
    let consumed = race.consumed.load(Ordering::SeqCst);
    assert_eq!(consumed, iterations, "phase {label}: iterations consumed");
    let returns = race.park_returns.load(Ordering::SeqCst);
    let unparks = race.unparks.load(Ordering::SeqCst);
    assert_eq!(unparks, iterations * wakers.len(), "phase {label}: unparks sent");
    assert!(
        returns <= unparks,
        "phase {label}: park() returned {returns} times for {unparks} unparks: \
         a wake-up was delivered twice"
    );
    eprintln!(
        "[{label}] {iterations} iterations in {:?}; park returned {returns} times for {unparks} unparks",
        started.elapsed()
    );
}

fn race_test(name: &str, mode: Mode, target: Side, wait: TargetWait, phases: &[&[Side]]) {
    let wd = support::watchdog(name, support::budget(Duration::from_secs(300)));
    let seed = wd.seed();
    let mut rng = Rng::new(seed);
    let rt = support::runtime(2, mode);
    wd.watch_runtime("rt", &rt);
    for (p, wakers) in phases.iter().enumerate() {
        race_phase(&rt, &wd, &format!("{name}#{p} (seed {seed})"), &mut rng, target, wait, wakers);
    }
}

/// One unpark (from a coroutine, then from a plain thread) races the target coroutine's
/// `park`.
fn stress_unpark_races_park(name: &str, mode: Mode) {
    race_test(
        name,
        mode,
        Side::Coroutine,
        TargetWait::Park,
        &[&[Side::Coroutine], &[Side::Thread]],
    );
}

/// Two unparks race each other and the target's `park`: two coroutines, then a coroutine and
/// a thread. The target needs both posts, so a second unpark swallowed by the first shows.
fn stress_two_unparks_race(name: &str, mode: Mode) {
    race_test(
        name,
        mode,
        Side::Coroutine,
        TargetWait::Park,
        &[&[Side::Coroutine, Side::Coroutine], &[Side::Coroutine, Side::Thread]],
    );
}

/// An unpark races a `park_timeout` of 0–100 µs. The untimed `park` that follows would hang
/// if the race lost the wake (or a stale timer consumed it).
fn stress_unpark_races_park_timeout(name: &str, mode: Mode) {
    race_test(
        name,
        mode,
        Side::Coroutine,
        TargetWait::TimeoutThenPark,
        &[&[Side::Coroutine], &[Side::Thread]],
    );
}

#[test]
fn stress_unpark_races_park_pinned() {
    stress_unpark_races_park("stress_unpark_races_park_pinned", Mode::Pinned);
}

#[test]
fn stress_unpark_races_park_migrating() {
    stress_unpark_races_park("stress_unpark_races_park_migrating", Mode::Migrating);
}

#[test]
fn stress_two_unparks_race_pinned() {
    stress_two_unparks_race("stress_two_unparks_race_pinned", Mode::Pinned);
}

#[test]
fn stress_two_unparks_race_migrating() {
    stress_two_unparks_race("stress_two_unparks_race_migrating", Mode::Migrating);
}

#[test]
fn stress_unpark_races_park_timeout_pinned() {
    stress_unpark_races_park_timeout("stress_unpark_races_park_timeout_pinned", Mode::Pinned);
}

#[test]
fn stress_unpark_races_park_timeout_migrating() {
    stress_unpark_races_park_timeout("stress_unpark_races_park_timeout_migrating", Mode::Migrating);
}

/// A plain thread parks (`park`, then `park_timeout` + `park`) while a coroutine unparks it.
#[test]
fn stress_coroutine_unparks_parked_thread() {
    const TEST: &str = "stress_coroutine_unparks_parked_thread";
    race_test(
        TEST,
        Mode::Pinned,
        Side::Thread,
        TargetWait::Park,
        &[&[Side::Coroutine], &[Side::Coroutine, Side::Thread]],
    );
    race_test(TEST, Mode::Pinned, Side::Thread, TargetWait::TimeoutThenPark, &[&[Side::Coroutine]]);
}

/// How long the token tests wait in `park_timeout` before calling the token lost.
const TOKEN_WAIT: Duration = Duration::from_secs(10);

/// `park_timeout(TOKEN_WAIT)`; panics if it waited the whole time (the token was lost).
fn park_expecting_token(what: &str) {
    let t0 = Instant::now();
    weft::park_timeout(TOKEN_WAIT);
    assert!(
        t0.elapsed() < TOKEN_WAIT,
        "{what}: park waited {TOKEN_WAIT:?}, so the unpark token was lost"
    );
}

/// An unpark before the park leaves a token, and the next park returns at once: on a thread
/// and in a coroutine, unparked by itself or by another coroutine while it ran.
#[test]
fn unpark_before_park_leaves_a_token() {
    let wd = support::watchdog("unpark_before_park_leaves_a_token", Duration::from_secs(60));
    weft::current().unpark();
    park_expecting_token("thread unparked by itself");
    let rt = support::runtime(1, Mode::Pinned);
    wd.watch_runtime("rt", &rt);
    rt.block_on(|| {
        weft::current().unpark();
        park_expecting_token("coroutine unparked by itself");
    });
    rt.block_on(|| {
        let me = weft::current();
        let unparker = weft::spawn(move || me.unpark());
        assert!(support::wait_until(TOKEN_WAIT, || unparker.is_finished()), "unparker never ran");
        park_expecting_token("coroutine unparked by another coroutine while running");
    });
}

/// std semantics: a token stays until `park` takes it, whatever the holder blocks on in
/// between. Here the holder joins a coroutine (the very one that unparked it) before parking,
/// as a coroutine and as a plain thread.
#[test]
fn unpark_token_survives_join() {
    let wd = support::watchdog("unpark_token_survives_join", Duration::from_secs(60));
    let rt = support::runtime(1, Mode::Pinned);
    wd.watch_runtime("rt", &rt);
    rt.block_on(|| {
        let me = weft::current();
        weft::spawn(move || me.unpark()).join().expect("unparker");
        park_expecting_token("coroutine that joined its unparker");
    });
    let me = weft::current();
    rt.spawn(move || me.unpark()).join().expect("unparker");
    park_expecting_token("thread that joined its unparker");
}

/// `park_timeout` with no unpark waits at least its duration, on a thread and in a coroutine;
/// `park_timeout` with a token returns before it.
#[test]
fn park_timeout_waits_its_duration() {
    let wd = support::watchdog("park_timeout_waits_its_duration", Duration::from_secs(60));
    const DUR: Duration = Duration::from_millis(30);
    let t0 = Instant::now();
    weft::park_timeout(DUR);
    assert!(
        t0.elapsed() >= DUR,
        "park_timeout on a thread returned after {:?} < {DUR:?}",
        t0.elapsed()
    );

    let rt = support::runtime(2, Mode::Pinned);
    wd.watch_runtime("rt", &rt);
    let elapsed = rt.block_on(|| {
        let t0 = Instant::now();
        weft::park_timeout(DUR);
        t0.elapsed()
    });
    assert!(elapsed >= DUR, "park_timeout in a coroutine returned after {elapsed:?} < {DUR:?}");

    let long = Duration::from_secs(20);
    let elapsed = rt.block_on(|| {
        weft::current().unpark();
        let t0 = Instant::now();
        weft::park_timeout(long);
        t0.elapsed()
    });
    assert!(elapsed < long, "park_timeout ignored a pending token");
}

/// `sleep` on a plain thread sleeps at least its duration.
#[test]
fn sleep_on_plain_thread() {
    let _wd = support::watchdog("sleep_on_plain_thread", Duration::from_secs(30));
    const DUR: Duration = Duration::from_millis(30);
    let t0 = Instant::now();
    weft::sleep(DUR);
    assert!(t0.elapsed() >= DUR, "weft::sleep on a thread returned after {:?}", t0.elapsed());
    assert!(!weft::is_coroutine());
}

/// `join` works from the test thread, from another plain thread, and from a coroutine, on
/// coroutines that are still running when the join starts.
#[test]
fn join_from_plain_threads_and_coroutines() {
    let wd = support::watchdog("join_from_plain_threads_and_coroutines", Duration::from_secs(60));
    let rt = support::runtime(2, Mode::Pinned);
    wd.watch_runtime("rt", &rt);
    let nap = || {
        weft::sleep(Duration::from_millis(20));
        7
    };
    assert_eq!(rt.spawn(nap).join().expect("join from the test thread"), 7);
    let handle = rt.spawn(nap);
    let from_thread = std::thread::spawn(move || handle.join().expect("join from a plain thread"));
    assert_eq!(from_thread.join().expect("joining thread"), 7);
    let handle = rt.spawn(nap);
    assert_eq!(rt.block_on(move || handle.join().expect("join from a coroutine")), 7);
    // On the default runtime, joined from another plain thread.
    let handle = weft::spawn(nap);
    assert_eq!(
        std::thread::spawn(move || handle.join().expect("default runtime join"))
            .join()
            .expect("thread"),
        7
    );
}

/// `weft::spawn` and `Runtime::spawn` from threads outside any runtime run the closure as a
/// coroutine and return its value.
#[test]
fn spawn_from_non_runtime_threads() {
    let wd = support::watchdog("spawn_from_non_runtime_threads", Duration::from_secs(60));
    let rt = support::runtime(2, Mode::Pinned);
    wd.watch_runtime("rt", &rt);
    std::thread::scope(|s| {
        let threads: Vec<_> = (0..4u64)
            .map(|t| {
                let rt = &rt;
                s.spawn(move || {
                    let mut sum = 0;
                    for k in 0..50 {
                        let on_default = weft::spawn(move || (weft::is_coroutine(), t * 1000 + k));
                        let on_rt = rt.spawn(move || (weft::is_coroutine(), t * 1000 + k));
                        for (inside, value) in [
                            on_default.join().expect("weft::spawn"),
                            on_rt.join().expect("Runtime::spawn"),
                        ] {
                            assert!(
                                inside,
                                "closure spawned from a plain thread did not run as a coroutine"
                            );
                            assert_eq!(value, t * 1000 + k);
                            sum += value;
                        }
                    }
                    sum
                })
            })
            .collect();
        for (t, thread) in threads.into_iter().enumerate() {
            let t = t as u64;
            assert_eq!(thread.join().expect("spawner thread"), 2 * (50 * t * 1000 + 49 * 50 / 2));
        }
    });
}

/// Pins a lost wake-up: when the target already held a stale unpark token, `unpark` found the
/// token set and wrote nothing to the state word, so the flag stored before it travelled with
/// no release; the target consumed the old token, re-read the stale flag, and parked for good.
/// A ping-pong by park/unpark between two workers hit it within a few hundred rounds. The race
/// is timing-bound: with the bug back, this test caught it in about half of its runs; the loom
/// model `unpark_with_a_stale_token_is_not_lost` in the runtime's state module catches it
/// every time.
fn unpark_with_a_stale_token_is_not_lost(name: &str, mode: Mode) {
    use std::sync::atomic::AtomicU8;
    use std::sync::OnceLock;

    const TURN_A: u8 = 0;
    const TURN_B: u8 = 1;
    const STOP: u8 = 2;
    struct PingPong {
        turn: AtomicU8,
        arrived: AtomicUsize,
        a: OnceLock<weft::Coroutine>,
        b: OnceLock<weft::Coroutine>,
    }
    let wd = support::watchdog(name, support::budget(Duration::from_secs(60)));
    let mut rng = Rng::new(wd.seed());
    let rt = support::runtime(2, mode);
    let rounds = support::sized(2000, 20000);
    for round in 0..rounds {
        let iters = rng.range(1, 300);
        wd.note(format!("round {round}: {iters} hand-offs"));
        let s = Arc::new(PingPong {
            turn: AtomicU8::new(TURN_A),
            arrived: AtomicUsize::new(0),
            a: OnceLock::new(),
            b: OnceLock::new(),
        });
        // Both sides spin until the other has started, so they run on different workers.
        let meet = |s: &PingPong, mine: &OnceLock<weft::Coroutine>| {
            let _ = mine.set(weft::current());
            s.arrived.fetch_add(1, Ordering::SeqCst);
            while s.arrived.load(Ordering::SeqCst) < 2 {
                std::hint::spin_loop();
            }
        };
        let sa = s.clone();
        let a = rt.spawn(move || {
            meet(&sa, &sa.a);
            let b = sa.b.get().expect("B arrived");
            for _ in 0..iters {
                sa.turn.store(TURN_B, Ordering::Release);
                b.unpark();
                while sa.turn.load(Ordering::Acquire) != TURN_A {
                    weft::park();
                }
            }
            sa.turn.store(STOP, Ordering::Release);
            b.unpark();
        });
        let sb = s.clone();
        let b = rt.spawn(move || {
            meet(&sb, &sb.b);
            let a = sb.a.get().expect("A arrived");
            loop {
                match sb.turn.load(Ordering::Acquire) {
                    STOP => return,
                    TURN_B => {
                        sb.turn.store(TURN_A, Ordering::Release);
                        a.unpark();
                    }
                    _ => weft::park(),
                }
            }
        });
        let done =
            support::wait_until(Duration::from_secs(10), || a.is_finished() && b.is_finished());
        assert!(
            done,
            "seed {}: round {round} ({iters} hand-offs) lost a wake-up; turn is {}",
            wd.seed(),
            s.turn.load(Ordering::SeqCst)
        );
        a.join().unwrap();
        b.join().unwrap();
    }
}

#[test]
fn unpark_with_a_stale_token_is_not_lost_pinned() {
    unpark_with_a_stale_token_is_not_lost(
        "unpark_with_a_stale_token_is_not_lost_pinned",
        Mode::Pinned,
    );
}

#[test]
fn unpark_with_a_stale_token_is_not_lost_migrating() {
    unpark_with_a_stale_token_is_not_lost(
        "unpark_with_a_stale_token_is_not_lost_migrating",
        Mode::Migrating,
    );
}
