//! Regression tests, each named after the bug it pins. Each bug was found by review, with a
//! reproducer, and fixed in the runtime.

mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use support::{run_child, watchdog};

/// A cancelled `sleep` returned at once without a switch, so a coroutine polling a flag with
/// `sleep` spun forever once its runtime was dropped, starving the coroutine on the same
/// worker that would have set the flag; the drop never returned.
#[test]
fn cancelled_sleep_loop_does_not_starve_its_worker() {
    let _dog = watchdog("cancelled_sleep_loop_does_not_starve_its_worker", Duration::from_secs(30));
    let rt = weft::Runtime::builder().workers(1).build().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let started = Arc::new(AtomicUsize::new(0));
    let (s1, st1) = (stop.clone(), started.clone());
    let poller = rt.spawn(move || {
        st1.fetch_add(1, SeqCst);
        while !s1.load(SeqCst) {
            weft::sleep(Duration::from_millis(10));
        }
    });
    let (s2, st2) = (stop.clone(), started.clone());
    let setter = rt.spawn(move || {
        st2.fetch_add(1, SeqCst);
        weft::sleep(Duration::from_secs(3600)); // ended by the drop's cancellation
        s2.store(true, SeqCst);
    });
    assert!(support::wait_until(Duration::from_secs(10), || started.load(SeqCst) == 2));
    drop(rt); // the watchdog fails the test if this never returns
    poller.join().unwrap();
    setter.join().unwrap();
    assert!(stop.load(SeqCst));
}

/// A stack is taken from the spawning worker's pool (or the pool for outside spawns) and
/// returned to the pool of the worker it finished on. Nothing flowed back, so sequential
/// spawns from outside the runtime mapped a new stack every time, without bound.
#[test]
fn stacks_returned_on_another_worker_are_reused() {
    let _dog = watchdog("stacks_returned_on_another_worker_are_reused", Duration::from_secs(60));
    let rt = weft::Runtime::builder().workers(2).build().unwrap();
    let n = support::sized(20_000, 200_000);
    for _ in 0..n {
        rt.spawn(|| ()).join().unwrap();
    }
    // `join` returns once the result is in; the last coroutine returns its stack just after.
    let settled = support::wait_until(Duration::from_secs(10), || rt.metrics().stacks_in_use == 0);
    assert!(settled, "a stack stayed in use: {:?}", rt.metrics());
    let m = rt.metrics();
    assert!(m.stacks_mapped < 4096, "{} stacks mapped for {n} sequential spawns", m.stacks_mapped);
}

/// An idle pool thread counted itself idle until it took the lock again, so several quick
/// `spawn_blocking` calls all relied on the same idle thread and started none: jobs that
/// waited for a later job deadlocked far below the thread limit.
#[test]
fn blocking_pool_starts_a_thread_for_every_job_that_waits() {
    let _dog =
        watchdog("blocking_pool_starts_a_thread_for_every_job_that_waits", Duration::from_secs(60));
    let rt = weft::Runtime::builder().workers(1).build().unwrap();
    const N: usize = 4;
    for _ in 0..support::sized(50, 500) {
        rt.block_on(|| {
            // N jobs make N pool threads exist and go idle.
            wait_on_each_other(N);
            // Now N + 1 jobs each wait for all the others.
            wait_on_each_other(N + 1);
        });
    }
}

/// Runs `n` blocking jobs that each wait until all `n` have started, and joins them.
fn wait_on_each_other(n: usize) {
    let gate = Arc::new(Barrier::new(n));
    let jobs: Vec<_> = (0..n)
        .map(|_| {
            let gate = gate.clone();
            weft::spawn_blocking(move || {
                gate.wait();
            })
        })
        .collect();
    jobs.into_iter().for_each(|j| j.join().unwrap());
}

/// The panic hook runs on the worker's stack, but the runtime still named the panicking
/// coroutine as current there, so a hook that called a weft function (`yield_now`, `park`)
/// suspended "the coroutine" from the worker's stack, and the process crashed.
#[test]
fn a_panic_hook_may_call_weft() {
    const SCENARIO: &str = "hook-calls-weft";
    if support::is_child(SCENARIO) {
        let hooked = Arc::new(AtomicUsize::new(0));
        let h = hooked.clone();
        std::panic::set_hook(Box::new(move |_| {
            weft::yield_now();
            h.fetch_add(1, SeqCst);
        }));
        let rt = weft::Runtime::builder().workers(1).build().unwrap();
        for i in 0..100 {
            let r = rt.spawn(move || -> u32 { panic!("boom {i}") }).join();
            assert!(r.is_err());
            assert_eq!(rt.spawn(move || i).join().unwrap(), i);
        }
        println!("hook ran {} times", hooked.load(SeqCst));
        return;
    }
    let _dog = watchdog("a_panic_hook_may_call_weft", Duration::from_secs(60));
    let out = run_child("a_panic_hook_may_call_weft", SCENARIO, &[], Duration::from_secs(50));
    assert!(out.status.success(), "{out}");
    assert!(out.stdout.contains("hook ran 100 times"), "{out}");
}

/// A coroutine cancelled before it started was dropped from the worker's stack through
/// corosensei; a captured value whose Drop panicked made corosensei drop the closure a second
/// time (a double free), then killed the worker.
#[test]
fn a_cancelled_closure_that_panics_on_drop_is_dropped_once() {
    const SCENARIO: &str = "panicking-drop-cancelled";
    if support::is_child(SCENARIO) {
        static DROPS: AtomicU64 = AtomicU64::new(0);
        struct Counted(#[allow(dead_code)] Box<u64>);
        impl Drop for Counted {
            fn drop(&mut self) {
                DROPS.fetch_add(1, SeqCst);
            }
        }
        struct PanicOnDrop;
        impl Drop for PanicOnDrop {
            fn drop(&mut self) {
                panic!("PanicOnDrop");
            }
        }
        std::panic::set_hook(Box::new(|_| {}));
        let rt = weft::Runtime::builder().workers(1).build().unwrap();
        let dropping = Arc::new(AtomicBool::new(false));
        let d = dropping.clone();
        // Hold the only worker until the drop has begun, so the next coroutine is still
        // unstarted when it is cancelled. The hold is timed: nothing shows the moment the
        // drop has cancelled it. If it ran instead, its closure is still dropped once.
        let blocker = rt.spawn(move || {
            while !d.load(SeqCst) {
                std::hint::spin_loop();
            }
            std::thread::sleep(Duration::from_millis(300));
        });
        let (p, c) = (PanicOnDrop, Counted(Box::new(7)));
        let queued = rt.spawn(move || {
            let _keep = (&p, &c);
        });
        dropping.store(true, SeqCst);
        drop(rt);
        let _ = blocker.join();
        let joined = queued.join();
        println!("drops {} joined_err {}", DROPS.load(SeqCst), joined.is_err());
        return;
    }
    let _dog = watchdog(
        "a_cancelled_closure_that_panics_on_drop_is_dropped_once",
        Duration::from_secs(60),
    );
    let out = run_child(
        "a_cancelled_closure_that_panics_on_drop_is_dropped_once",
        SCENARIO,
        &[],
        Duration::from_secs(50),
    );
    assert!(out.status.success(), "{out}");
    assert!(out.stdout.contains("drops 1 joined_err true"), "{out}");
}
