//! Shutdown: dropping a runtime cancels its parked coroutines cooperatively (their `park` and
//! `sleep` return early and their stacks unwind through ordinary returns), returns promptly,
//! and leaks neither file descriptors nor stacks; `join` on a cancelled coroutine returns.
//!
//! Sizes: 10,000 parked coroutines per cycle; 20 cycles by default, 100 under
//! `WEFT_STRESS=1`. The tests measure process-wide resources, so they hold `support::serial()`.

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use support::{Mode, Watchdog};
use weft::JoinHandle;

/// Coroutines parked in each shutdown cycle.
const PARKED: usize = 10_000;

/// The longest a runtime drop with `PARKED` parked coroutines may take.
const DROP_LIMIT: Duration = Duration::from_secs(1);

/// A sleep that only a cancellation can cut short.
const FOREVER: Duration = Duration::from_secs(3600);

/// Slack over the baseline for the mapping count after a drop: thread stacks and malloc
/// arenas come and go. A leaked cycle of stacks under the mprotect fallback is 2 × `PARKED`
/// mappings.
const MAPS_SLACK: usize = 64;

/// Slack over the baseline for the virtual size after a drop. One leaked cycle of 64 KiB
/// stacks is `PARKED` × 64 KiB = 625 MiB, more than this.
const VM_SLACK: u64 = 512 << 20;

/// Counts its drops: proof that a cancelled coroutine's stack unwound.
struct DropCount(Arc<AtomicUsize>);

impl Drop for DropCount {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Spawns `n` detached coroutines that hold a `DropCount` and block once, half in `park()`
/// and half in `sleep(FOREVER)`; waits until all have arrived; checks the metrics; drops the
/// runtime and asserts the drop took under `DROP_LIMIT` and every coroutine resumed and
/// dropped its guard. Returns how long the drop took.
fn park_and_drop(wd: &Watchdog, mode: Mode, n: usize, cycle: usize) -> Duration {
    let rt = support::runtime(2, mode);
    wd.watch_runtime(&format!("cycle {cycle}"), &rt);
    let arrived = Arc::new(AtomicUsize::new(0));
    let resumed = Arc::new(AtomicUsize::new(0));
    let dropped = Arc::new(AtomicUsize::new(0));
    for i in 0..n {
        let (arrived, resumed, dropped) =
            (Arc::clone(&arrived), Arc::clone(&resumed), Arc::clone(&dropped));
        // Detached: the handle is dropped at once.
        let _ = rt.spawn(move || {
            let _guard = DropCount(dropped);
            arrived.fetch_add(1, Ordering::SeqCst);
            if i % 2 == 0 {
                weft::park();
            } else {
                weft::sleep(FOREVER);
            }
            resumed.fetch_add(1, Ordering::SeqCst);
        });
    }
    let all = support::wait_until(Duration::from_secs(60), || arrived.load(Ordering::SeqCst) == n);
    assert!(
        all,
        "cycle {cycle}: only {} of {n} coroutines arrived",
        arrived.load(Ordering::SeqCst)
    );
    let metrics = rt.metrics();
    assert!(metrics.alive >= n as u64, "cycle {cycle}: metrics.alive {} < {n}", metrics.alive);
    assert!(
        metrics.stacks_mapped >= n,
        "cycle {cycle}: metrics.stacks_mapped {} < {n}",
        metrics.stacks_mapped
    );

    wd.note(format!("cycle {cycle}: dropping a runtime with {n} parked coroutines"));
    let t0 = Instant::now();
    drop(rt);
    let took = t0.elapsed();
    assert!(
        took < DROP_LIMIT,
        "cycle {cycle} ({mode:?}): dropping the runtime took {took:?} >= {DROP_LIMIT:?}"
    );
    assert_eq!(
        resumed.load(Ordering::SeqCst),
        n,
        "cycle {cycle}: coroutines whose park/sleep returned on drop"
    );
    assert_eq!(
        dropped.load(Ordering::SeqCst),
        n,
        "cycle {cycle}: coroutine stacks unwound (guards dropped) on drop"
    );
    took
}

/// Repeats [`park_and_drop`] with `PARKED` coroutines; after each cycle the open fds equal
/// the baseline and the mapping count and virtual size are back near it.
fn stress_drop_with_parked_coroutines(name: &str, mode: Mode) {
    let _serial = support::serial();
    let cycles = support::sized(20, 100);
    let wd = support::watchdog(name, support::budget(Duration::from_secs(240)));
    let done = wd.counter("cycles done");

    // One small cycle first, so lazily created process state (thread-stack caches, malloc
    // arenas, the panic machinery) is in the baseline.
    park_and_drop(&wd, mode, 100, 0);
    let (fds0, maps0, vm0) = (support::open_fds(), support::mappings(), support::vm_size());
    let mut slowest_drop = Duration::ZERO;
    for cycle in 1..=cycles {
        slowest_drop = slowest_drop.max(park_and_drop(&wd, mode, PARKED, cycle));
        let fds = support::open_fds();
        let new: Vec<_> = fds.iter().filter(|fd| !fds0.contains(fd)).collect();
        assert!(
            fds.len() == fds0.len() && new.is_empty(),
            "cycle {cycle}: {} fds open, baseline {}; new: {new:?}",
            fds.len(),
            fds0.len()
        );
        let maps = support::mappings();
        assert!(
            maps <= maps0 + MAPS_SLACK,
            "cycle {cycle}: {maps} mappings after the drop, baseline {maps0}: stacks leaked"
        );
        let vm = support::vm_size();
        assert!(
            vm <= vm0 + VM_SLACK,
            "cycle {cycle}: virtual size {} MiB after the drop, baseline {} MiB: stacks leaked",
            vm >> 20,
            vm0 >> 20
        );
        done.fetch_add(1, Ordering::SeqCst);
    }
    println!(
        "[{name}] {cycles} cycles of {PARKED} parked coroutines; slowest drop {slowest_drop:?}; fds {}, maps {} (baseline {maps0}), VmSize {} MiB (baseline {} MiB)",
        fds0.len(),
        support::mappings(),
        support::vm_size() >> 20,
        vm0 >> 20
    );
}

#[test]
fn stress_drop_with_parked_coroutines_pinned() {
    stress_drop_with_parked_coroutines("stress_drop_with_parked_coroutines_pinned", Mode::Pinned);
}

#[test]
fn stress_drop_with_parked_coroutines_migrating() {
    stress_drop_with_parked_coroutines(
        "stress_drop_with_parked_coroutines_migrating",
        Mode::Migrating,
    );
}

/// Coroutines parked in `park`, in `sleep`, and in `join` of another parked coroutine are
/// cancelled by the runtime's drop, and every `JoinHandle` still returns: one joined by a
/// plain thread that is already blocked in `join` when the drop starts, the rest joined after
/// the drop. Cancelled `park`/`sleep` return early, so those coroutines return their value.
fn join_returns_after_runtime_drop(name: &str, mode: Mode) {
    const N: usize = 1_000;
    let _serial = support::serial();
    let wd = support::watchdog(name, Duration::from_secs(60));
    let rt = support::runtime(2, mode);
    wd.watch_runtime("rt", &rt);
    let arrived = wd.counter("arrived");
    let mut handles: Vec<_> = (0..N)
        .map(|i| {
            let arrived = Arc::clone(&arrived);
            rt.spawn(move || {
                arrived.fetch_add(1, Ordering::SeqCst);
                if i % 2 == 0 {
                    weft::park();
                } else {
                    weft::sleep(FOREVER);
                }
                i
            })
        })
        .collect();
    let victim = handles.pop().expect("a victim");
    let joiner = rt.spawn({
        let arrived = Arc::clone(&arrived);
        move || {
            arrived.fetch_add(1, Ordering::SeqCst);
            victim.join().is_ok()
        }
    });
    let blocked = handles.pop().expect("a handle for the blocked thread");
    let blocked_index = N - 2;
    let blocked_join = std::thread::spawn(move || blocked.join());
    let all =
        support::wait_until(Duration::from_secs(30), || arrived.load(Ordering::SeqCst) == N + 1);
    assert!(all, "only {} of {} coroutines arrived", arrived.load(Ordering::SeqCst), N + 1);

    wd.note("dropping the runtime");
    drop(rt);
    wd.note("joining after the drop");
    match blocked_join.join().expect("blocked joiner thread") {
        Ok(value) => {
            assert_eq!(value, blocked_index, "value of the coroutine joined across the drop")
        }
        Err(_) => panic!(
            "coroutine {blocked_index}, joined across the drop, panicked instead of returning"
        ),
    }
    for (i, handle) in handles.into_iter().enumerate() {
        match handle.join() {
            Ok(value) => assert_eq!(value, i, "value of cancelled coroutine {i}"),
            Err(p) => panic!("cancelled coroutine {i} panicked: {:?}", support::panic_message(&*p)),
        }
    }
    // The joiner's join was cancelled: whatever it returns, it must return.
    let _ = joiner.join();
}

#[test]
fn join_returns_after_runtime_drop_pinned() {
    join_returns_after_runtime_drop("join_returns_after_runtime_drop_pinned", Mode::Pinned);
}

#[test]
fn join_returns_after_runtime_drop_migrating() {
    join_returns_after_runtime_drop("join_returns_after_runtime_drop_migrating", Mode::Migrating);
}

/// How long a blocker keeps its worker after the test thread starts the drop, unless the
/// canary finishes first. The API shows no "cancellation done" event; this keeps the queued
/// coroutines unstarted while the drop cancels them.
const HOLD_AFTER_DROP: Duration = Duration::from_millis(300);

/// Coroutines still queued, never started, when the runtime is dropped: every `join` returns
/// (with the value, if the coroutine ran after all).
///
/// Both workers are held by blockers that spin without yielding, so the `N` coroutines spawned
/// next stay queued. A blocker lets go once a queued canary's handle reports finished (a
/// cancellation may do that at once), or `HOLD_AFTER_DROP` after the test thread started the
/// drop.
fn join_returns_for_coroutines_unstarted_at_drop(name: &str, mode: Mode) {
    const N: usize = 2_000;
    const WORKERS: usize = 2;
    let _serial = support::serial();
    let wd = support::watchdog(name, Duration::from_secs(60));
    let rt = support::runtime(WORKERS, mode);
    let holding = wd.counter("blockers holding a worker");
    let dropping = Arc::new(AtomicBool::new(false));
    let canary: Arc<OnceLock<JoinHandle<()>>> = Arc::new(OnceLock::new());
    let blockers: Vec<_> = (0..WORKERS)
        .map(|_| {
            let (holding, canary) = (Arc::clone(&holding), Arc::clone(&canary));
            let dropping = Arc::clone(&dropping);
            rt.spawn(move || {
                holding.fetch_add(1, Ordering::SeqCst);
                let mut drop_seen: Option<Instant> = None;
                loop {
                    if canary.get().is_some_and(JoinHandle::is_finished) {
                        return true;
                    }
                    match drop_seen {
                        Some(t) if t.elapsed() >= HOLD_AFTER_DROP => return false,
                        None if dropping.load(Ordering::SeqCst) => drop_seen = Some(Instant::now()),
                        _ => std::hint::spin_loop(),
                    }
                }
            })
        })
        .collect();
    let both =
        support::wait_until(Duration::from_secs(30), || holding.load(Ordering::SeqCst) == WORKERS);
    assert!(both, "the blockers did not both start");
    let handles: Vec<_> = (0..N).map(|i| rt.spawn(move || i)).collect();
    assert!(canary.set(rt.spawn(|| ())).is_ok(), "canary set twice");

    wd.note("dropping the runtime");
    dropping.store(true, Ordering::SeqCst);
    drop(rt);
    wd.note("joining after the drop");
    let mut ran = 0;
    for (i, handle) in handles.into_iter().enumerate() {
        match handle.join() {
            Ok(value) => {
                assert_eq!(value, i, "value of coroutine {i}");
                ran += 1;
            }
            Err(payload) => {
                let message = support::panic_message(&*payload).unwrap_or("<not a string>");
                assert!(
                    message.contains("cancelled") && message.contains("shut down"),
                    "coroutine {i} failed with {message:?} instead of the cancellation"
                );
            }
        }
    }
    let released =
        blockers.into_iter().map(JoinHandle::join).filter(|r| matches!(r, Ok(true))).count();
    println!(
        "[{name}] {ran} of {N} queued coroutines ran, the rest were cancelled; \
         {released} of {WORKERS} blockers released by the canary (the rest by the hold)"
    );
}

#[test]
fn join_returns_for_coroutines_unstarted_at_drop_pinned() {
    join_returns_for_coroutines_unstarted_at_drop(
        "join_returns_for_coroutines_unstarted_at_drop_pinned",
        Mode::Pinned,
    );
}

#[test]
fn join_returns_for_coroutines_unstarted_at_drop_migrating() {
    join_returns_for_coroutines_unstarted_at_drop(
        "join_returns_for_coroutines_unstarted_at_drop_migrating",
        Mode::Migrating,
    );
}
