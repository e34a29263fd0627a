//! Stack overflow in a coroutine is reported like std reports it for threads, and aborts.
//!
//! Each test re-runs this binary as a child process (`support::run_child`), since the
//! scenario ends the process.

mod support;

use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

/// Recurses until the stack runs out. The buffer and the `black_box`es keep the optimiser from
/// turning this into a loop or shrinking the frames.
#[inline(never)]
fn recurse(depth: u64) -> u64 {
    let buf = std::hint::black_box([depth as u8; 256]);
    if std::hint::black_box(depth) == u64::MAX {
        return 0;
    }
    let below = recurse(depth + 1);
    std::hint::black_box(u64::from(buf[(below % 256) as usize]) + below)
}

/// Child side: a coroutine named `name` (with `stack_size` if given) recurses without bound.
/// Nothing after the join may run: the process must abort first.
fn overflow(name: &str, stack_size: Option<usize>) -> ! {
    let mut builder = weft::Builder::new().name(name.to_owned());
    if let Some(size) = stack_size {
        builder = builder.stack_size(size);
    }
    let result = builder.spawn(|| recurse(0)).expect("Builder::spawn").join();
    println!("UNREACHABLE: the overflowing coroutine was joined: ok = {}", result.is_ok());
    std::process::exit(0);
}

/// Parent side: runs `scenario` and checks that the child printed `expected` and died by
/// SIGABRT.
fn expect_overflow_abort(test: &str, scenario: &str, expected: &str) {
    let out = support::run_child(test, scenario, &[], Duration::from_secs(120));
    assert!(!out.status.success(), "the child exited 0 after overflowing:\n{out}");
    assert!(!out.stdout.contains("UNREACHABLE"), "join returned after a stack overflow:\n{out}");
    assert!(out.stderr.contains(expected), "stderr lacks {expected:?}:\n{out}");
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGABRT),
        "the child did not die by SIGABRT:\n{out}"
    );
}

/// A coroutine named "deep" overflows: stderr names it (`coroutine 'deep' has overflowed its
/// stack (`) and the process dies by SIGABRT, never exiting 0.
#[test]
fn overflow_named_coroutine_aborts() {
    const TEST: &str = "overflow_named_coroutine_aborts";
    let _wd = support::watchdog(TEST, Duration::from_secs(150));
    if support::is_child("deep") {
        overflow("deep", None);
    }
    expect_overflow_abort(TEST, "deep", "coroutine 'deep' has overflowed its stack (");
}

/// The report gives the stack size: `(64 KiB)` for the default stack.
#[test]
fn overflow_report_names_default_stack_size() {
    const TEST: &str = "overflow_report_names_default_stack_size";
    let _wd = support::watchdog(TEST, Duration::from_secs(150));
    if support::is_child("deep_default") {
        overflow("deep", None);
    }
    expect_overflow_abort(
        TEST,
        "deep_default",
        "coroutine 'deep' has overflowed its stack (64 KiB)",
    );
}

/// The report gives the stack size: `(128 KiB)` for `Builder::stack_size(128 * 1024)`.
#[test]
fn overflow_report_names_custom_stack_size() {
    const TEST: &str = "overflow_report_names_custom_stack_size";
    let _wd = support::watchdog(TEST, Duration::from_secs(150));
    if support::is_child("deep_128k") {
        overflow("deep128", Some(128 * 1024));
    }
    expect_overflow_abort(
        TEST,
        "deep_128k",
        "coroutine 'deep128' has overflowed its stack (128 KiB)",
    );
}
