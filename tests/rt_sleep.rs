//! Sleeping: timers never fire early, lateness stays sane under load, and a sleeping
//! coroutine does not hold its worker.
//!
//! Sizes: 10,000 sleepers by default, 100,000 under `WEFT_STRESS=1`.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::{Mode, Rng};

/// Seeded sleep durations are drawn from this range.
const MIN_SLEEP_MS: u64 = 1;
const MAX_SLEEP_MS: u64 = 200;

/// Sanity bounds only: the machine is noisy, so these catch a broken timer (one that fires a
/// whole wheel revolution late, or waits for an unrelated wake), not a slow one.
const SANE_P99_LATENESS: Duration = Duration::from_secs(1);
const SANE_MAX_LATENESS: Duration = Duration::from_secs(5);

/// N coroutines each sleep a seeded 1–200 ms, measuring the sleep with `Instant`. Asserts
/// none wakes early; prints the p50/p99/max lateness and checks it against sanity bounds.
#[test]
fn stress_sleepers_never_wake_early() {
    const TEST: &str = "stress_sleepers_never_wake_early";
    let n = support::sized(10_000, 100_000);
    let wd = support::watchdog(TEST, support::budget(Duration::from_secs(120)));
    let seed = wd.seed();
    let mut rng = Rng::new(seed);
    let rt = support::runtime(2, Mode::Pinned);
    wd.watch_runtime("rt", &rt);
    let woke = wd.counter("woke");

    let handles: Vec<_> = (0..n)
        .map(|_| {
            let nap = Duration::from_millis(rng.range(MIN_SLEEP_MS, MAX_SLEEP_MS));
            let woke = Arc::clone(&woke);
            rt.spawn(move || {
                let t0 = Instant::now();
                weft::sleep(nap);
                let slept = t0.elapsed();
                woke.fetch_add(1, Ordering::Relaxed);
                (nap, slept)
            })
        })
        .collect();

    let mut lateness = Vec::with_capacity(n);
    let mut early = Vec::new();
    for (i, handle) in handles.into_iter().enumerate() {
        let (nap, slept) = handle.join().expect("sleeper");
        match slept.checked_sub(nap) {
            Some(late) => lateness.push(late),
            None => early.push((i, nap, slept)),
        }
    }
    assert!(
        early.is_empty(),
        "{} of {n} sleepers woke early, e.g. (index, asked, slept) {:?} (seed {seed})",
        early.len(),
        &early[..early.len().min(5)]
    );

    lateness.sort();
    let (p50, p99, max) =
        (support::percentile(&lateness, 50), support::percentile(&lateness, 99), lateness[n - 1]);
    println!("[{TEST}] {n} sleepers of {MIN_SLEEP_MS}-{MAX_SLEEP_MS} ms: lateness p50 {p50:?}, p99 {p99:?}, max {max:?}");
    assert!(p99 <= SANE_P99_LATENESS, "p99 lateness {p99:?} > {SANE_P99_LATENESS:?} (seed {seed})");
    assert!(max <= SANE_MAX_LATENESS, "max lateness {max:?} > {SANE_MAX_LATENESS:?} (seed {seed})");
}

/// On one worker, a coroutine that is already sleeping (300 ms) lets another, spawned after
/// it fell asleep, run to completion: the sleeper must find the other's flag set when it wakes.
#[test]
fn sleep_does_not_hold_the_worker() {
    let wd = support::watchdog("sleep_does_not_hold_the_worker", Duration::from_secs(60));
    let rt = support::runtime(1, Mode::Pinned);
    wd.watch_runtime("rt", &rt);
    let sleeping = Arc::new(AtomicBool::new(false));
    let other_done = Arc::new(AtomicBool::new(false));
    let sleeper = rt.spawn({
        let sleeping = Arc::clone(&sleeping);
        let other_done = Arc::clone(&other_done);
        move || {
            sleeping.store(true, Ordering::SeqCst);
            weft::sleep(Duration::from_millis(300));
            other_done.load(Ordering::SeqCst)
        }
    });
    assert!(
        support::wait_until(Duration::from_secs(10), || sleeping.load(Ordering::SeqCst)),
        "the sleeper never started"
    );
    let other = rt.spawn({
        let other_done = Arc::clone(&other_done);
        move || other_done.store(true, Ordering::SeqCst)
    });
    other.join().expect("other coroutine");
    assert!(
        sleeper.join().expect("sleeper"),
        "the other coroutine had not run when the sleeper woke: sleep held the worker"
    );
}

/// `sleep(0)` returns promptly in a coroutine and on a thread, and short sleeps are not early.
#[test]
fn zero_and_short_sleeps() {
    let wd = support::watchdog("zero_and_short_sleeps", Duration::from_secs(60));
    let rt = support::runtime(1, Mode::Pinned);
    wd.watch_runtime("rt", &rt);
    let check = || {
        let t0 = Instant::now();
        weft::sleep(Duration::ZERO);
        assert!(t0.elapsed() < Duration::from_secs(1), "sleep(0) took {:?}", t0.elapsed());
        for micros in [1, 10, 100, 1_000, 5_000] {
            let nap = Duration::from_micros(micros);
            let t0 = Instant::now();
            weft::sleep(nap);
            assert!(t0.elapsed() >= nap, "sleep({nap:?}) returned after {:?}", t0.elapsed());
        }
    };
    check();
    rt.block_on(check);
}
