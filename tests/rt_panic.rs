//! Panics stay inside their coroutine: `join` returns the payload, every other coroutine
//! completes, the runtime keeps working, and a panic that prints a backtrace does not
//! overflow a 16 KiB stack.

mod support;

use std::os::unix::process::ExitStatusExt;
use std::sync::Arc;
use std::time::Duration;

use support::{Mode, Rng};

/// A payload that is neither `&str` nor `String`.
#[derive(Debug, PartialEq)]
struct Custom(usize);

#[derive(Clone, Copy, Debug)]
enum Fate {
    Return,
    /// `panic!` with a formatted message: a `String` payload.
    PanicString,
    /// `panic!` with a literal: a `&'static str` payload.
    PanicStr,
    /// `panic_any(Custom(i))`.
    PanicCustom,
}

const STATIC_MESSAGE: &str = "static panic payload";

fn run(i: usize, fate: Fate, yields: u8) -> usize {
    for _ in 0..yields {
        weft::yield_now();
    }
    match fate {
        Fate::Return => i * 3,
        Fate::PanicString => panic!("coroutine {i} panics on purpose"),
        Fate::PanicStr => panic!("static panic payload"),
        Fate::PanicCustom => std::panic::panic_any(Custom(i)),
    }
}

/// Of N coroutines, a seeded 10% panic (with `String`, `&str` and custom payloads) after a
/// seeded number of yields. Asserts that every other coroutine returns its value, that every
/// `join` of a panicked one returns exactly its payload, that alive and in-use stack counts
/// return to zero, and that the runtime then runs N more coroutines and a `block_on`.
fn stress_panics_are_contained(name: &str, mode: Mode) {
    let n = support::sized(2_000, 100_000);
    let workers = 2;
    let wd = support::watchdog(name, support::budget(Duration::from_secs(120)));
    let seed = wd.seed();
    let mut rng = Rng::new(seed);
    let rt = support::runtime(workers, mode);
    wd.watch_runtime("rt", &rt);

    // Exactly n / 10 victims, chosen by a partial Fisher-Yates shuffle.
    let mut fates = vec![Fate::Return; n];
    let mut order: Vec<usize> = (0..n).collect();
    for k in 0..n / 10 {
        let pick = k + rng.below((n - k) as u64) as usize;
        order.swap(k, pick);
        fates[order[k]] = match rng.below(3) {
            0 => Fate::PanicString,
            1 => Fate::PanicStr,
            _ => Fate::PanicCustom,
        };
    }

    wd.note("first round: 10% panic");
    let handles: Vec<_> = fates
        .iter()
        .enumerate()
        .map(|(i, &fate)| {
            let yields = rng.below(3) as u8;
            rt.spawn(move || run(i, fate, yields))
        })
        .collect();
    let mut panicked = 0;
    for (i, (handle, fate)) in handles.into_iter().zip(&fates).enumerate() {
        match (fate, handle.join()) {
            (Fate::Return, Ok(value)) => {
                assert_eq!(value, i * 3, "value of coroutine {i} (seed {seed})")
            }
            (Fate::Return, Err(payload)) => {
                panic!(
                    "coroutine {i} was not meant to panic but did: {:?} (seed {seed})",
                    support::panic_message(&*payload)
                )
            }
            (_, Ok(value)) => panic!(
                "coroutine {i} was meant to panic ({fate:?}) but returned {value} (seed {seed})"
            ),
            (Fate::PanicString, Err(payload)) => {
                let message = payload.downcast_ref::<String>().map(String::as_str);
                assert_eq!(
                    message,
                    Some(format!("coroutine {i} panics on purpose").as_str()),
                    "String payload of {i} (seed {seed})"
                );
                panicked += 1;
            }
            (Fate::PanicStr, Err(payload)) => {
                assert_eq!(
                    payload.downcast_ref::<&str>(),
                    Some(&STATIC_MESSAGE),
                    "&str payload of {i} (seed {seed})"
                );
                panicked += 1;
            }
            (Fate::PanicCustom, Err(payload)) => {
                assert_eq!(
                    payload.downcast_ref::<Custom>(),
                    Some(&Custom(i)),
                    "custom payload of {i} (seed {seed})"
                );
                panicked += 1;
            }
        }
    }
    assert_eq!(panicked, n / 10, "number of panicked coroutines (seed {seed})");

    let settled = support::wait_until(Duration::from_secs(10), || {
        let m = rt.metrics();
        m.alive == 0 && m.stacks_in_use == 0
    });
    assert!(
        settled,
        "after joining every coroutine, alive/stacks_in_use did not reach 0: {:#?} (seed {seed})",
        rt.metrics()
    );
    assert_eq!(rt.metrics().workers.len(), workers, "workers after the panics");

    wd.note("second round: none panic");
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let yields = rng.below(3) as u8;
            rt.spawn(move || run(i, Fate::Return, yields))
        })
        .collect();
    for (i, handle) in handles.into_iter().enumerate() {
        assert_eq!(
            handle.join().expect("coroutine after the panics"),
            i * 3,
            "after the panics (seed {seed})"
        );
    }
    let shared = Arc::new(5);
    assert_eq!(rt.block_on(|| *shared + 1), 6, "block_on after the panics");
}

#[test]
fn stress_panics_are_contained_pinned() {
    stress_panics_are_contained("stress_panics_are_contained_pinned", Mode::Pinned);
}

#[test]
fn stress_panics_are_contained_migrating() {
    stress_panics_are_contained("stress_panics_are_contained_migrating", Mode::Migrating);
}

const SMALL_STACK_MESSAGE: &str = "small-stack panic with a backtrace";

/// With `RUST_BACKTRACE=1`, a coroutine on a 16 KiB stack panics. In a child process: the
/// child must print the panic message and a backtrace, get the payload from `join`, and exit
/// normally — no overflow report, no signal.
#[test]
fn panic_backtrace_on_16k_stack() {
    const TEST: &str = "panic_backtrace_on_16k_stack";
    let _wd = support::watchdog(TEST, Duration::from_secs(150));
    if support::is_child("small_stack_backtrace") {
        let rt = support::runtime(1, Mode::Pinned);
        let payload = rt.block_on(|| {
            weft::Builder::new()
                .name("small".to_owned())
                .stack_size(16 * 1024)
                .spawn(|| -> u32 { panic!("{}", SMALL_STACK_MESSAGE) })
                .expect("Builder::spawn")
                .join()
                .expect_err("the coroutine's panic")
        });
        assert_eq!(support::panic_message(&*payload), Some(SMALL_STACK_MESSAGE));
        println!("SMALL-STACK-PANIC-JOINED");
        return;
    }
    let out = support::run_child(
        TEST,
        "small_stack_backtrace",
        &[("RUST_BACKTRACE", "1")],
        Duration::from_secs(120),
    );
    assert_eq!(out.status.signal(), None, "the child died by a signal:\n{out}");
    assert!(
        !out.stderr.contains("overflowed its stack"),
        "the panic overflowed the 16 KiB stack:\n{out}"
    );
    assert!(out.status.success(), "the child did not exit normally:\n{out}");
    assert!(
        out.stdout.contains("SMALL-STACK-PANIC-JOINED"),
        "join did not return the payload:\n{out}"
    );
    assert!(out.stderr.contains(SMALL_STACK_MESSAGE), "the panic message was not printed:\n{out}");
    let frames = out.stderr.lines().filter(|line| is_frame_line(line)).count();
    assert!(
        out.stderr.contains("stack backtrace") && frames > 0,
        "no backtrace printed ({frames} frame lines):\n{out}"
    );
}

/// A backtrace frame line as std prints it: `  12: symbol::name`.
fn is_frame_line(line: &str) -> bool {
    let line = line.trim_start();
    line.split_once(": ").is_some_and(|(index, symbol)| {
        !index.is_empty() && index.bytes().all(|b| b.is_ascii_digit()) && !symbol.is_empty()
    })
}
