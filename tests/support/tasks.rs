//! Tasks on either side for the lock tests (`tests/sync_mutex.rs`, `tests/sync_locks.rs`): a
//! task runs on a coroutine of the runtime under test or on a plain thread ([`super::spawn_on`]),
//! and [`finish`] joins a batch of them within [`super::hang`], so that a lost wake-up or a
//! deadlock fails the test with a message instead of running into the watchdog's abort.
//!
//! What the tasks do inside a lock: [`hold`] (a coroutine yields, so every other coroutine of
//! its worker runs and finds the lock taken; a thread spins), [`Exclusive`] (an
//! in-critical-section flag, set on entry: two holders at once fail), [`retry`] (a `try_*`
//! until it succeeds). [`mix`] spreads threads among coroutines and [`storm`] sets up a seeded
//! storm.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use weft::sync::{TryLockError, TryLockResult};

use super::{hang, pause, Handle, Mode, Rng, Side, Watchdog};

/// Spins a thread does while it holds a lock: long enough that others pile up behind it,
/// short enough to keep the tight loop tight.
const THREAD_HOLD_SPINS: u32 = 200;

/// Waits up to [`super::hang`] for every task, then joins them. Panics naming how many are still
/// running (a lost wake-up or a deadlock) or what the panicked ones said.
///
/// On a hang the runtime is leaked on purpose: dropping it would wait for coroutines that
/// never finish, and the failure would turn into a watchdog abort without this message.
pub fn finish(wd: &Watchdog, rt: &Arc<weft::Runtime>, tasks: Vec<Handle<()>>, what: &str) {
    let limit = hang();
    if !super::wait_until(limit, || tasks.iter().all(Handle::is_finished)) {
        let stuck = tasks.iter().filter(|t| !t.is_finished()).count();
        let message =
            format!("{what}: {stuck} of {} tasks still running after {limit:?}", tasks.len());
        wd.note(message.clone());
        std::mem::forget(Arc::clone(rt));
        std::mem::forget(tasks);
        panic!("{message}: a lost wake-up or a deadlock");
    }
    let count = tasks.len();
    let failures: Vec<String> = tasks
        .into_iter()
        .enumerate()
        .filter_map(|(i, task)| task.join().err().map(|p| (i, p)))
        .map(|(i, p)| {
            format!("task {i}: {}", super::panic_message(&*p).unwrap_or("(not a string)"))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{what}: {} of {count} tasks panicked; the first ones:\n{}",
        failures.len(),
        failures[..failures.len().min(4)].join("\n")
    );
}

/// What a lock holder does while it holds: a coroutine yields (so every other coroutine of its
/// worker runs and finds the lock taken), a thread spins a little.
pub fn hold() {
    if weft::is_coroutine() {
        weft::yield_now();
    } else {
        for _ in 0..THREAD_HOLD_SPINS {
            std::hint::spin_loop();
        }
    }
}

/// An in-critical-section flag: entering while it is set means two holders at once.
#[derive(Default)]
pub struct Exclusive {
    pub inside: AtomicBool,
}

impl Exclusive {
    pub fn enter(&self, what: &str) {
        assert!(!self.inside.swap(true, Ordering::SeqCst), "{what}: found another holder inside");
    }

    pub fn leave(&self) {
        self.inside.store(false, Ordering::SeqCst);
    }
}

/// Retries `try_lock` (a `try_lock`, `try_read` or `try_write`) until it returns the guard,
/// calling `busy` and then [`super::pause`] on every `WouldBlock`. Poison panics, after `what`.
pub fn retry<G>(
    mut try_lock: impl FnMut() -> TryLockResult<G>,
    mut busy: impl FnMut(),
    what: &str,
) -> G {
    loop {
        match try_lock() {
            Ok(guard) => return guard,
            Err(TryLockError::WouldBlock) => {
                busy();
                pause();
            }
            Err(TryLockError::Poisoned(e)) => panic!("{what}: {e}"),
        }
    }
}

/// The sides of `coroutines + threads` tasks, the threads spread evenly among the coroutines.
pub fn mix(coroutines: usize, threads: usize) -> Vec<Side> {
    let total = coroutines + threads;
    (0..total)
        .map(|i| {
            if threads > 0 && i % (total / threads) == 0 && i / (total / threads) < threads {
                Side::Thread
            } else {
                Side::Coroutine
            }
        })
        .collect()
}

/// The set-up of a seeded storm: its watchdog, the seed and a generator seeded with it, and
/// a runtime of two migrating workers for the storm's coroutines.
pub fn storm(name: &str) -> (Watchdog, u64, Rng, Arc<weft::Runtime>) {
    let wd = super::watchdog(name, super::budget(Duration::from_secs(120)));
    let seed = wd.seed();
    let rt = super::runtime(2, Mode::Migrating);
    wd.watch_runtime("rt", &rt);
    (wd, seed, Rng::new(seed), rt)
}
