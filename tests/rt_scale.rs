//! Scale: 100,000 coroutines parked at once (on `park` or in `sleep`), and what each parked
//! coroutine costs in resident memory.
//!
//! Sizes: 20,000 coroutines by default, 100,000 under `WEFT_STRESS=1`. The tests measure RSS,
//! which is process-wide, so they hold `support::serial()`.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::{Mode, Rng};

/// The default coroutine stack; a parked coroutine that costs this much RSS has had its whole
/// stack faulted in, which the design rules out (about one page per idle coroutine).
const DEFAULT_STACK: u64 = 64 * 1024;

fn report_rss(test: &str, n: usize, before: u64, after: u64) -> u64 {
    let per = after.saturating_sub(before) / n as u64;
    println!(
        "[{test}] RSS {} KiB -> {} KiB with {n} parked coroutines: {per} bytes ({:.1} KiB) per parked coroutine",
        before / 1024,
        after / 1024,
        per as f64 / 1024.0
    );
    per
}

/// Warms the runtime up (workers started, first stacks mapped), so that the RSS baseline
/// does not charge one-off costs to the parked coroutines.
fn warm_up(rt: &weft::Runtime) {
    let handles: Vec<_> = (0..256).map(|i| rt.spawn(move || i)).collect();
    for handle in handles {
        handle.join().expect("warm-up coroutine");
    }
}

/// N coroutines park until released; the test waits until all have arrived, checks the
/// metrics, reports RSS per parked coroutine, then releases and unparks them in a seeded
/// order and joins every one.
#[test]
fn stress_scale_parked_until_unparked() {
    const TEST: &str = "stress_scale_parked_until_unparked";
    let _serial = support::serial();
    let n = support::sized(20_000, 100_000);
    let wd = support::watchdog(TEST, support::budget(Duration::from_secs(180)));
    let seed = wd.seed();
    let rt = support::runtime(2, Mode::Pinned);
    wd.watch_runtime("rt", &rt);
    warm_up(&rt);
    let parked = wd.counter("parked");
    let release = Arc::new(AtomicBool::new(false));
    let rss_before = support::rss();

    wd.note(format!("spawning {n} parkers"));
    let started = Instant::now();
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let parked = Arc::clone(&parked);
            let release = Arc::clone(&release);
            rt.spawn(move || {
                parked.fetch_add(1, Ordering::SeqCst);
                while !release.load(Ordering::Acquire) {
                    weft::park();
                }
                i
            })
        })
        .collect();
    wd.note(format!("waiting for {n} parkers to arrive"));
    let arrived = support::wait_until(support::budget(Duration::from_secs(60)), || {
        parked.load(Ordering::SeqCst) == n
    });
    assert!(
        arrived,
        "only {} of {n} coroutines reached park (seed {seed})",
        parked.load(Ordering::SeqCst)
    );
    let spawn_time = started.elapsed();

    let metrics = rt.metrics();
    assert!(metrics.alive >= n as u64, "metrics.alive {} < {n} parked coroutines", metrics.alive);
    assert!(
        metrics.stacks_in_use >= n,
        "metrics.stacks_in_use {} < {n} parked coroutines",
        metrics.stacks_in_use
    );
    assert!(
        metrics.stacks_mapped >= metrics.stacks_in_use,
        "stacks_mapped < stacks_in_use: {metrics:#?}"
    );
    let per = report_rss(TEST, n, rss_before, support::rss());

    wd.note(format!("unparking {n} parkers"));
    let woken = Instant::now();
    release.store(true, Ordering::Release);
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = Rng::new(seed);
    for k in (1..n).rev() {
        order.swap(k, rng.below(k as u64 + 1) as usize);
    }
    for &i in &order {
        handles[i].coroutine().unpark();
    }
    for (i, handle) in handles.into_iter().enumerate() {
        assert_eq!(
            handle.join().expect("parked coroutine"),
            i,
            "join of parked coroutine {i} (seed {seed})"
        );
    }
    println!("[{TEST}] {n} coroutines: spawned and parked in {spawn_time:?}, unparked and joined in {:?}", woken.elapsed());
    assert!(
        per < DEFAULT_STACK,
        "{per} bytes of RSS per parked coroutine: the whole 64 KiB stack is resident"
    );
}

/// N coroutines sleep at once: each marks itself asleep, sleeps D, and unmarks itself. The
/// peak of the asleep count must reach N (all asleep together; D leaves ample time to spawn
/// them), and no sleep may end early. Reports RSS per sleeping coroutine.
#[test]
fn stress_scale_sleeping() {
    const TEST: &str = "stress_scale_sleeping";
    let _serial = support::serial();
    let n = support::sized(20_000, 100_000);
    // Long enough that the last coroutine falls asleep before the first one wakes, even for a
    // slow debug spawn: 2 s plus 50 µs per coroutine.
    let nap = Duration::from_secs(2) + Duration::from_micros(50) * n as u32;
    let wd = support::watchdog(TEST, support::budget(Duration::from_secs(180)));
    wd.seed();
    let rt = support::runtime(2, Mode::Pinned);
    wd.watch_runtime("rt", &rt);
    warm_up(&rt);
    let asleep = wd.counter("asleep now");
    let peak = wd.counter("peak asleep");
    let rss_before = support::rss();

    wd.note(format!("spawning {n} sleepers of {nap:?}"));
    let handles: Vec<_> = (0..n)
        .map(|_| {
            let asleep = Arc::clone(&asleep);
            let peak = Arc::clone(&peak);
            rt.spawn(move || {
                let now = asleep.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                let t0 = Instant::now();
                weft::sleep(nap);
                let slept = t0.elapsed();
                asleep.fetch_sub(1, Ordering::SeqCst);
                slept
            })
        })
        .collect();
    let arrived = support::wait_until(nap, || peak.load(Ordering::SeqCst) == n);
    let rss_asleep = support::rss();
    assert!(
        arrived,
        "never had all {n} coroutines asleep at once: peak {} within {nap:?}",
        peak.load(Ordering::SeqCst)
    );
    let metrics = rt.metrics();
    assert!(metrics.alive >= n as u64, "metrics.alive {} < {n} sleeping coroutines", metrics.alive);
    let per = report_rss(TEST, n, rss_before, rss_asleep);

    wd.note(format!("joining {n} sleepers"));
    let mut early = 0;
    for (i, handle) in handles.into_iter().enumerate() {
        let slept = handle.join().expect("sleeper");
        if slept < nap {
            early += 1;
            eprintln!("[{TEST}] sleeper {i} woke early: slept {slept:?} of {nap:?}");
        }
    }
    assert_eq!(early, 0, "sleepers woke early");
    assert_eq!(peak.load(Ordering::SeqCst), n, "peak asleep");
    assert!(
        per < DEFAULT_STACK,
        "{per} bytes of RSS per sleeping coroutine: the whole 64 KiB stack is resident"
    );
}
