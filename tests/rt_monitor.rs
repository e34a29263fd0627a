//! The monitor, the blocking pool, and the stack-mapping limit.

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::{run_child, wait_until, watchdog};

/// Keeps every warning the runtime logs.
struct Capture(Mutex<Vec<String>>);

impl log::Log for Capture {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::Level::Warn
    }
    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            self.0.lock().unwrap().push(record.args().to_string());
        }
    }
    fn flush(&self) {}
}

fn capture() -> &'static Capture {
    static CAPTURE: std::sync::OnceLock<&'static Capture> = std::sync::OnceLock::new();
    CAPTURE.get_or_init(|| {
        let capture: &'static Capture = Box::leak(Box::new(Capture(Mutex::new(Vec::new()))));
        log::set_logger(capture).expect("no other logger in this test binary");
        log::set_max_level(log::LevelFilter::Warn);
        capture
    })
}

#[test]
fn monitor_names_a_coroutine_that_holds_its_worker() {
    let _dog = watchdog("monitor_names_a_coroutine_that_holds_its_worker", Duration::from_secs(30));
    let capture = capture();
    let rt = weft::Runtime::builder().workers(2).build().unwrap();
    let release = Arc::new(AtomicBool::new(false));
    // A std call that blocks the thread, which weft cannot see.
    let block_thread = |release: Arc<AtomicBool>| {
        move || {
            while !release.load(Ordering::Acquire) {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    };
    let named_hog = rt.block_on(|| {
        weft::Builder::new().name("thread-blocker".into()).spawn(block_thread(release.clone()))
    });
    let unnamed_hog = rt.spawn(block_thread(release.clone()));
    let named = |name: &str| {
        capture
            .0
            .lock()
            .unwrap()
            .iter()
            .any(|m| m.contains(&format!("'{name}'")) && m.contains("without switching"))
    };
    let seen =
        wait_until(Duration::from_secs(10), || named("thread-blocker") && named("<unnamed>"));
    release.store(true, Ordering::Release);
    named_hog.unwrap().join().unwrap();
    unnamed_hog.join().unwrap();
    assert!(
        seen,
        "no warning named the stalled coroutines; captured: {:?}",
        capture.0.lock().unwrap()
    );
}

/// Pins a bug: a worker woken as a searcher that found its first task in the global queue
/// (not by stealing) kept counting as searching, so no later spawn woke the sleeping worker,
/// and coroutines queued behind a held worker waited for it.
#[test]
fn unstarted_coroutines_behind_a_stalled_worker_run_elsewhere() {
    let _dog = watchdog(
        "unstarted_coroutines_behind_a_stalled_worker_run_elsewhere",
        Duration::from_secs(30),
    );
    let rt = weft::Runtime::builder().workers(2).build().unwrap();
    let ran = Arc::new(AtomicUsize::new(0));
    let release = Arc::new(AtomicBool::new(false));
    let (ran2, release2) = (ran.clone(), release.clone());
    let hog = rt.spawn(move || {
        // Queue work on this worker, then hold it until that work has run elsewhere.
        for _ in 0..16 {
            let ran = ran2.clone();
            drop(weft::spawn(move || ran.fetch_add(1, Ordering::SeqCst)));
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while !release2.load(Ordering::Acquire) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
    });
    let all_ran = wait_until(Duration::from_secs(10), || ran.load(Ordering::SeqCst) == 16);
    let metrics = rt.metrics();
    release.store(true, Ordering::Release);
    hog.join().unwrap();
    assert!(
        all_ran,
        "only {} of 16 ran while their worker was held; {metrics:?}",
        ran.load(Ordering::SeqCst)
    );
}

#[test]
fn joining_a_blocking_job_parks_only_the_coroutine() {
    let _dog = watchdog("joining_a_blocking_job_parks_only_the_coroutine", Duration::from_secs(30));
    // One worker: if joining blocked the worker, the coroutine that releases the job could
    // never run, and the watchdog would fire.
    let rt = weft::Runtime::builder().workers(1).build().unwrap();
    let out = rt.block_on(|| {
        let go = Arc::new(AtomicBool::new(false));
        let g = go.clone();
        let job = weft::spawn_blocking(move || {
            while !g.load(Ordering::Acquire) {
                std::thread::sleep(Duration::from_millis(1));
            }
            std::thread::current().name().map(str::to_owned)
        });
        let joiner = weft::spawn(move || job.join().unwrap());
        let releaser = weft::spawn(move || go.store(true, Ordering::Release));
        releaser.join().unwrap();
        joiner.join().unwrap()
    });
    let name = out.expect("pool threads are named");
    assert!(name.starts_with("weft-blocking-"), "ran on {name}");
}

#[test]
fn blocking_job_panics_and_identity() {
    let _dog = watchdog("blocking_job_panics_and_identity", Duration::from_secs(30));
    let payload = weft::spawn_blocking(|| panic!("blocking boom")).join().unwrap_err();
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"blocking boom"));
    // Inside a job, park/unpark work against the job's own handle.
    let flag = Arc::new(AtomicBool::new(false));
    let f = flag.clone();
    let job = weft::spawn_blocking(move || {
        while !f.load(Ordering::Acquire) {
            weft::park();
        }
        weft::is_coroutine()
    });
    flag.store(true, Ordering::Release);
    job.coroutine().unpark();
    assert!(!job.join().unwrap(), "a blocking job is a thread, not a coroutine");
}

#[test]
fn mprotect_guards_hit_the_map_count_with_a_clear_error() {
    const SCENARIO: &str = "mprotect-limit";
    if support::is_child(SCENARIO) {
        let rt = weft::Runtime::builder().workers(1).stack_size(16 * 1024).build().unwrap();
        let mut handles = Vec::new();
        let error = loop {
            match weft::Builder::new().spawn(weft::park) {
                Ok(h) => handles.push(h),
                Err(e) => break e,
            }
            if handles.len() > 200_000 {
                panic!("no limit reached with mprotect guards");
            }
        };
        println!("spawned {} coroutines; then: kind {:?}: {error}", handles.len(), error.kind());
        drop(rt);
        return;
    }
    let _dog =
        watchdog("mprotect_guards_hit_the_map_count_with_a_clear_error", Duration::from_secs(120));
    let out = run_child(
        "mprotect_guards_hit_the_map_count_with_a_clear_error",
        SCENARIO,
        &[("WEFT_STACK_GUARD", "mprotect"), ("WEFT_WORKERS", "1")],
        Duration::from_secs(100),
    );
    assert!(out.status.success(), "{out}");
    let line = out.stdout.lines().find_map(|l| l.split_once("spawned ")).map(|(_, rest)| rest);
    let line = line.unwrap_or_else(|| panic!("{out}"));
    assert!(line.contains("vm.max_map_count"), "{line}");
    assert!(line.contains("OutOfMemory"), "{line}");
    let spawned: usize = line.split(' ').next().unwrap().parse().unwrap();
    assert!(spawned > 1000, "only {spawned} stacks before the limit: {line}");
}
