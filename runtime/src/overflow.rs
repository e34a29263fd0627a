//! Reporting a coroutine stack overflow, as std does for threads.
//!
//! A coroutine that runs past its stack touches the guard below it and takes a SIGSEGV (or
//! SIGBUS). The handler installed here runs on the thread's alternate signal stack (std gives
//! its threads one; workers make sure of it), and:
//!
//! 1. reads the running task from the runtime's thread-local (a `const`-initialised `Cell`,
//!    so reading it allocates nothing and registers nothing);
//! 2. if the fault address lies in that task's guard, writes
//!    `coroutine '<name>' has overflowed its stack (<size>)` to stderr with `write(2)` and
//!    aborts;
//! 3. otherwise hands the signal to the handler that was installed before, or, if that was
//!    the default, restores the default and returns, so the fault repeats and kills the
//!    process as it would have.
//!
//! Everything the handler calls is async-signal-safe: `write`, `abort`, `sigaction`, and
//! plain memory reads. The task cannot be freed while it runs: its worker holds a reference.

use std::mem::MaybeUninit;
use std::ptr;
use std::sync::OnceLock;

use crate::context;

static PREVIOUS_SEGV: OnceLock<libc::sigaction> = OnceLock::new();
static PREVIOUS_BUS: OnceLock<libc::sigaction> = OnceLock::new();

/// Installs the handler for SIGSEGV and SIGBUS, once per process.
pub(crate) fn install() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        for (signal, previous) in [(libc::SIGSEGV, &PREVIOUS_SEGV), (libc::SIGBUS, &PREVIOUS_BUS)] {
            // SAFETY: a zeroed sigaction is a valid starting point; the handler has the
            // three-argument signature that SA_SIGINFO asks for.
            unsafe {
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = handler as *const () as usize;
                action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
                libc::sigemptyset(&mut action.sa_mask);
                let mut old = MaybeUninit::<libc::sigaction>::zeroed();
                if libc::sigaction(signal, &action, old.as_mut_ptr()) == 0 {
                    let _ = previous.set(old.assume_init());
                }
            }
        }
    });
}

extern "C" fn handler(signal: libc::c_int, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers.
    let addr = unsafe { (*info).si_addr() } as usize;
    let task = context::current_task_ptr();
    // SAFETY: a non-null current task is alive while its coroutine runs (see the module docs).
    if let Some(task) = unsafe { task.as_ref() } {
        let (low, high) = task.guard;
        if (low..high).contains(&addr) {
            report(task.name_or_unnamed(), task.stack_size);
            // SAFETY: abort is async-signal-safe and never returns.
            unsafe { libc::abort() };
        }
    }
    let previous = if signal == libc::SIGSEGV { PREVIOUS_SEGV.get() } else { PREVIOUS_BUS.get() };
    match previous {
        Some(prev) if prev.sa_sigaction != libc::SIG_DFL && prev.sa_sigaction != libc::SIG_IGN => {
            if prev.sa_flags & libc::SA_SIGINFO != 0 {
                let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                    // SAFETY: SA_SIGINFO says the stored address is a three-argument handler.
                    unsafe { std::mem::transmute(prev.sa_sigaction) };
                f(signal, info, context);
            } else {
                // SAFETY: without SA_SIGINFO the stored address is a one-argument handler.
                let f: extern "C" fn(libc::c_int) =
                    unsafe { std::mem::transmute(prev.sa_sigaction) };
                f(signal);
            }
        }
        _ => {
            // SAFETY: restoring the default action for this signal; the faulting instruction
            // runs again on return and the default action ends the process.
            unsafe {
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = libc::SIG_DFL;
                libc::sigaction(signal, &action, ptr::null_mut());
            }
        }
    }
}

/// Writes the overflow message without allocating.
fn report(name: &str, size: usize) {
    let mut buf = [0u8; 512];
    let mut len = 0;
    let mut put = |bytes: &[u8]| {
        let n = bytes.len().min(buf.len() - len);
        buf[len..len + n].copy_from_slice(&bytes[..n]);
        len += n;
    };
    put(b"\ncoroutine '");
    put(name.as_bytes());
    put(b"' has overflowed its stack (");
    let mut digits = [0u8; 20];
    let (value, unit): (usize, &[u8]) =
        if size % 1024 == 0 { (size / 1024, b" KiB)\n") } else { (size, b" bytes)\n") };
    put(format_decimal(value, &mut digits));
    put(unit);
    put(b"fatal runtime error: stack overflow, aborting\n");
    // SAFETY: writes `len` initialised bytes of `buf` to stderr; write is async-signal-safe.
    unsafe { libc::write(libc::STDERR_FILENO, buf.as_ptr().cast(), len) };
}

fn format_decimal(mut value: usize, digits: &mut [u8; 20]) -> &[u8] {
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            return &digits[at..];
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_decimals() {
        let mut d = [0u8; 20];
        assert_eq!(super::format_decimal(0, &mut d), b"0");
        assert_eq!(super::format_decimal(65536, &mut d), b"65536");
        assert_eq!(super::format_decimal(usize::MAX, &mut d), usize::MAX.to_string().as_bytes());
    }
}
