//! Spawning and joining: every coroutine runs exactly once; the `Builder`, `JoinHandle`,
//! `Coroutine`, `current`, `is_coroutine`, `scope` and `block_on` APIs do what std's do.

mod support;

use std::collections::HashSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use support::{Mode, Rng};

/// Largest wave of coroutines spawned before the wave is joined.
const MAX_WAVE: u64 = 4096;

/// Spawns coroutines in seeded waves on 1, 2 and 4 workers. Each increments its own counter
/// slot (after 0–2 `yield_now`s, so started coroutines are requeued and, in migrating mode,
/// may move) and returns its index. Waves alternate between spawning from the test thread
/// (`Runtime::spawn`: the injector) and from inside a coroutine (`weft::spawn`: the worker's
/// deque). Asserts every join returns its own index and every slot ends at exactly 1.
fn stress_spawn_exactly_once(name: &str, mode: Mode) {
    let total = support::sized(100_000, 1_000_000);
    let wd = support::watchdog(name, support::budget(Duration::from_secs(240)));
    let seed = wd.seed();
    let mut rng = Rng::new(seed);
    let joined = wd.counter("joined");

    for workers in [1usize, 2, 4] {
        let n = total / 3;
        let rt = support::runtime(workers, mode);
        wd.watch_runtime(&format!("{workers} workers"), &rt);
        let slots: Arc<Vec<AtomicU32>> = Arc::new((0..n).map(|_| AtomicU32::new(0)).collect());

        let mut start = 0;
        let mut wave_no = 0;
        while start < n {
            let len = (rng.range(1, MAX_WAVE) as usize).min(n - start);
            let yields: Vec<u8> = (0..len).map(|_| rng.below(3) as u8).collect();
            wd.note(format!("{workers} workers, wave {wave_no}: indices {start}..{}", start + len));
            let spawn_one = |i: usize, yields: u8| {
                let slots = Arc::clone(&slots);
                move || {
                    for _ in 0..yields {
                        weft::yield_now();
                    }
                    slots[i].fetch_add(1, Ordering::Relaxed);
                    i
                }
            };
            let results: Vec<(usize, std::thread::Result<usize>)> = if wave_no % 2 == 0 {
                let handles: Vec<_> = (0..len)
                    .map(|k| (start + k, rt.spawn(spawn_one(start + k, yields[k]))))
                    .collect();
                handles.into_iter().map(|(i, h)| (i, h.join())).collect()
            } else {
                rt.block_on(|| {
                    let handles: Vec<_> = (0..len)
                        .map(|k| (start + k, weft::spawn(spawn_one(start + k, yields[k]))))
                        .collect();
                    handles.into_iter().map(|(i, h)| (i, h.join())).collect()
                })
            };
            for (i, result) in results {
                match result {
                    Ok(got) => {
                        assert_eq!(got, i, "join of coroutine {i} returned {got} (seed {seed})")
                    }
                    Err(_) => panic!("coroutine {i} panicked (seed {seed}, {workers} workers)"),
                }
            }
            joined.fetch_add(len, Ordering::Relaxed);
            start += len;
            wave_no += 1;
        }

        let wrong: Vec<(usize, u32)> = slots
            .iter()
            .enumerate()
            .map(|(i, slot)| (i, slot.load(Ordering::Relaxed)))
            .filter(|&(_, count)| count != 1)
            .take(10)
            .collect();
        assert!(wrong.is_empty(), "slots not run exactly once (index, count): {wrong:?} ({workers} workers, {mode:?}, seed {seed})");

        let metrics = rt.metrics();
        assert_eq!(metrics.workers.len(), workers, "metrics.workers.len() (seed {seed})");
        let finished_all = support::wait_until(Duration::from_secs(10), || {
            let m = rt.metrics();
            m.alive == 0
                && m.stacks_in_use == 0
                && support::sum_workers(&m, |w| w.finished) >= n as u64
        });
        assert!(
            finished_all,
            "after joining all {n} coroutines: want alive == 0, stacks_in_use == 0, finished >= {n}; got {:#?} (seed {seed})",
            rt.metrics()
        );
    }
}

#[test]
fn stress_spawn_exactly_once_pinned() {
    stress_spawn_exactly_once("stress_spawn_exactly_once_pinned", Mode::Pinned);
}

#[test]
fn stress_spawn_exactly_once_migrating() {
    stress_spawn_exactly_once("stress_spawn_exactly_once_migrating", Mode::Migrating);
}

/// `Builder::name` is visible through the handle and through `current()` inside; a stack size
/// at the 16 KiB floor, or below it, still runs a coroutine.
#[test]
fn builder_name_and_small_stack() {
    let _wd = support::watchdog("builder_name_and_small_stack", Duration::from_secs(60));
    let rt = support::runtime(2, Mode::Pinned);
    let (handle_name, inside_name, unnamed) = rt.block_on(|| {
        let handle = weft::Builder::new()
            .name("worker-7".to_owned())
            .spawn(|| weft::current().name().map(str::to_owned))
            .expect("Builder::spawn");
        let handle_name = handle.coroutine().name().map(str::to_owned);
        let inside_name = handle.join().expect("named coroutine");
        let unnamed = weft::spawn(|| weft::current().name().map(str::to_owned))
            .join()
            .expect("unnamed coroutine");
        (handle_name, inside_name, unnamed)
    });
    assert_eq!(handle_name.as_deref(), Some("worker-7"), "JoinHandle::coroutine().name()");
    assert_eq!(inside_name.as_deref(), Some("worker-7"), "current().name() inside");
    assert_eq!(unnamed, None, "an unnamed coroutine has no name");

    for size in [16 * 1024, 1024, 0] {
        let handle = weft::Builder::new()
            .stack_size(size)
            .spawn(|| std::hint::black_box([7u8; 2048]).iter().map(|&b| u32::from(b)).sum::<u32>())
            .unwrap_or_else(|e| panic!("Builder::stack_size({size}).spawn: {e}"));
        assert_eq!(handle.join().expect("small-stack coroutine"), 7 * 2048, "stack_size({size})");
    }
}

/// Recursion using about `depth` KiB of stack (more in debug builds).
#[inline(never)]
fn use_stack(depth: u32) -> u64 {
    let buf = std::hint::black_box([depth as u8; 1024]);
    if depth == 0 {
        return u64::from(buf[0]);
    }
    use_stack(depth - 1) + u64::from(std::hint::black_box(buf)[1023])
}

/// `Builder::stack_size(1 MiB)` gives a stack that holds 128 frames of over 1 KiB each, which
/// would overflow the 64 KiB default. Runs in a child process, since failing means an abort.
#[test]
fn builder_stack_size_is_honoured() {
    const TEST: &str = "builder_stack_size_is_honoured";
    const DEPTH: u32 = 128;
    let _wd = support::watchdog(TEST, Duration::from_secs(120));
    if support::is_child("big_stack") {
        let handle = weft::Builder::new()
            .name("big".to_owned())
            .stack_size(1024 * 1024)
            .spawn(|| use_stack(DEPTH))
            .expect("Builder::spawn");
        let sum = handle.join().expect("deep coroutine");
        assert_eq!(sum, (1..=u64::from(DEPTH)).map(|d| d % 256).sum::<u64>());
        println!("BIG-STACK-OK");
        return;
    }
    let out = support::run_child(TEST, "big_stack", &[], Duration::from_secs(90));
    assert!(
        out.status.success() && out.stdout.contains("BIG-STACK-OK"),
        "a 1 MiB coroutine stack did not hold 128 KiB-plus of frames:\n{out}"
    );
}

/// `is_finished` is false while the coroutine is parked and becomes true once it returns,
/// before `join` is called.
#[test]
fn join_handle_is_finished() {
    let wd = support::watchdog("join_handle_is_finished", Duration::from_secs(60));
    let rt = support::runtime(2, Mode::Pinned);
    wd.watch_runtime("rt", &rt);
    let go = Arc::new(AtomicBool::new(false));
    let handle = rt.spawn({
        let go = Arc::clone(&go);
        move || {
            while !go.load(Ordering::Acquire) {
                weft::park();
            }
            42
        }
    });
    assert!(!handle.is_finished(), "is_finished before the coroutine was released");
    go.store(true, Ordering::Release);
    handle.coroutine().unpark();
    assert!(
        support::wait_until(Duration::from_secs(10), || handle.is_finished()),
        "is_finished never became true"
    );
    assert_eq!(handle.join().expect("join"), 42);
}

/// `current()` inside a coroutine has the id of its `JoinHandle`; ids are distinct and
/// `as_u64` is stable.
#[test]
fn current_id_matches_handle() {
    let _wd = support::watchdog("current_id_matches_handle", Duration::from_secs(60));
    let rt = support::runtime(2, Mode::Pinned);
    let handles: Vec<_> = (0..200).map(|_| rt.spawn(|| weft::current().id())).collect();
    let mut seen = HashSet::new();
    for handle in handles {
        let outside = handle.coroutine().id();
        let inside = handle.join().expect("join");
        assert_eq!(inside, outside, "current().id() inside vs JoinHandle::coroutine().id()");
        assert_eq!(inside.as_u64(), outside.as_u64());
        assert!(seen.insert(inside), "coroutine id {inside:?} handed out twice");
    }
}

/// `current()` on a plain thread is a stable handle for that thread, distinct per thread.
#[test]
fn current_on_plain_threads() {
    let _wd = support::watchdog("current_on_plain_threads", Duration::from_secs(30));
    let a = weft::current().id();
    assert_eq!(a, weft::current().id(), "current() on one thread changed id");
    let b = std::thread::spawn(|| weft::current().id()).join().expect("thread");
    assert_ne!(a, b, "two threads got the same current() id");
}

/// `is_coroutine()` is false on the test thread and on a plain thread, true inside `spawn`
/// and `block_on`.
#[test]
fn is_coroutine_inside_and_outside() {
    let _wd = support::watchdog("is_coroutine_inside_and_outside", Duration::from_secs(60));
    assert!(!weft::is_coroutine(), "is_coroutine() on the test thread");
    assert!(
        !std::thread::spawn(weft::is_coroutine).join().expect("thread"),
        "is_coroutine() on a plain thread"
    );
    let rt = support::runtime(1, Mode::Pinned);
    assert!(rt.block_on(weft::is_coroutine), "is_coroutine() inside Runtime::block_on");
    assert!(
        rt.spawn(weft::is_coroutine).join().expect("join"),
        "is_coroutine() inside Runtime::spawn"
    );
    assert!(
        weft::spawn(weft::is_coroutine).join().expect("join"),
        "is_coroutine() inside weft::spawn"
    );
    assert!(weft::block_on(weft::is_coroutine), "is_coroutine() inside weft::block_on");
    assert!(!weft::is_coroutine(), "is_coroutine() on the test thread after block_on");
}

/// A spawn from inside a coroutine lands on that coroutine's runtime, not the default one.
#[test]
fn spawn_inside_coroutine_uses_current_runtime() {
    let wd =
        support::watchdog("spawn_inside_coroutine_uses_current_runtime", Duration::from_secs(60));
    let rt = support::runtime(1, Mode::Pinned);
    wd.watch_runtime("rt", &rt);
    const N: usize = 100;
    let ran = Arc::new(AtomicUsize::new(0));
    rt.block_on(|| {
        let handles: Vec<_> = (0..N)
            .map(|_| {
                let ran = Arc::clone(&ran);
                weft::spawn(move || ran.fetch_add(1, Ordering::Relaxed))
            })
            .collect();
        for handle in handles {
            handle.join().expect("join");
        }
    });
    assert_eq!(ran.load(Ordering::Relaxed), N);
    // The N children and the block_on coroutine all finish on rt's only worker.
    let counted = support::wait_until(Duration::from_secs(10), || {
        rt.metrics().workers[0].finished > N as u64
    });
    assert!(counted, "rt finished fewer than {} coroutines: {:#?}", N + 1, rt.metrics());
}

/// `weft::scope` lets coroutines borrow local data, shared and mutable, and waits for every
/// coroutine it spawned, joined or not; from a plain thread and from inside a coroutine.
#[test]
fn scope_borrows_local_data() {
    let _wd = support::watchdog("scope_borrows_local_data", Duration::from_secs(60));
    fn check() {
        let data: Vec<u64> = (1..=1000).collect();
        let mut sums = vec![0u64; 8];
        let unjoined = AtomicUsize::new(0);
        let total = weft::scope(|s| {
            for (sum, chunk) in sums.iter_mut().zip(data.chunks(125)) {
                s.spawn(move || {
                    weft::yield_now();
                    *sum = chunk.iter().sum();
                });
            }
            for _ in 0..16 {
                s.spawn(|| {
                    weft::yield_now();
                    unjoined.fetch_add(1, Ordering::Relaxed);
                });
            }
            let named = weft::Builder::new()
                .name("scoped".to_owned())
                .spawn_scoped(s, || (weft::current().name().map(str::to_owned), data.len()))
                .expect("spawn_scoped");
            assert!(
                named.coroutine().name() == Some("scoped"),
                "ScopedJoinHandle::coroutine().name()"
            );
            let (name, len) = named.join().expect("scoped join");
            assert_eq!(name.as_deref(), Some("scoped"));
            let h = s.spawn(|| data.iter().sum::<u64>());
            h.join().expect("scoped join") + len as u64
        });
        assert_eq!(total, 500_500 + 1000, "scope's return value");
        let expected: Vec<u64> = data.chunks(125).map(|c| c.iter().sum()).collect();
        assert_eq!(sums, expected, "mutable borrows written through scoped coroutines");
        assert_eq!(
            unjoined.load(Ordering::Relaxed),
            16,
            "scope returned before its unjoined coroutines finished"
        );
    }
    check();
    let rt = support::runtime(2, Mode::Pinned);
    rt.block_on(check);
}

/// `block_on` runs a borrowing closure and returns its value, on an explicit runtime and on
/// the default one.
#[test]
fn block_on_returns_value() {
    let _wd = support::watchdog("block_on_returns_value", Duration::from_secs(60));
    let rt = support::runtime(2, Mode::Pinned);
    let words = ["weft".to_owned(), "warp".to_owned()];
    assert_eq!(rt.block_on(|| words.join("+")), "weft+warp");
    assert_eq!(weft::block_on(|| words.iter().map(String::len).sum::<usize>()), 8);
    let nested = rt.block_on(|| weft::spawn(|| 6 * 7).join().expect("inner join"));
    assert_eq!(nested, 42);
}

/// A panic inside `block_on` resumes in the caller with its payload; the runtime still works.
#[test]
fn block_on_reraises_panic() {
    let _wd = support::watchdog("block_on_reraises_panic", Duration::from_secs(60));
    let rt = support::runtime(2, Mode::Pinned);
    let err = catch_unwind(AssertUnwindSafe(|| {
        rt.block_on(|| -> u32 { panic!("boom in block_on {}", 42) })
    }))
    .expect_err("Runtime::block_on swallowed a panic");
    assert_eq!(support::panic_message(&*err), Some("boom in block_on 42"));
    assert_eq!(rt.block_on(|| 7), 7, "runtime after a panic in block_on");

    let err = catch_unwind(|| weft::block_on(|| -> u32 { std::panic::panic_any(0xC0FFEE_u32) }))
        .expect_err("weft::block_on swallowed a panic");
    assert_eq!(err.downcast_ref::<u32>(), Some(&0xC0FFEE), "payload of weft::block_on's panic");
    assert_eq!(weft::block_on(|| 8), 8, "default runtime after a panic in block_on");
}
