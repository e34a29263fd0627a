//! [`Once`] and [`OnceLock`]: one-time initialisation whose waiters park.
//!
//! `state` goes INCOMPLETE → RUNNING → COMPLETE (or POISONED if the closure panicked, from
//! where a forced call may run again). A caller that finds RUNNING queues under the lock, after
//! re-reading the state there; the runner stores the outcome and then takes the queue under the
//! same lock, so it finds every waiter that saw RUNNING.

use std::cell::UnsafeCell;
use std::fmt;
use std::mem::MaybeUninit;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};

use super::queue::{wake_all, WaitQueue};
use super::shim::{maybe_const_fn, AtomicU8, Lock};
use crate::park::park_with;
use crate::state::ParkKind;

const INCOMPLETE: u8 = 0;
const RUNNING: u8 = 1;
const COMPLETE: u8 = 2;
const POISONED: u8 = 3;

/// A one-time initialisation, as [`std::sync::Once`]. Callers that find it running park until
/// it is done.
///
/// ```
/// use weft::sync::Once;
///
/// static INIT: Once = Once::new();
/// let mut runs = 0;
/// INIT.call_once(|| runs += 1);
/// INIT.call_once(|| runs += 1);
/// assert_eq!(runs, 1);
/// assert!(INIT.is_completed());
/// ```
pub struct Once {
    state: AtomicU8,
    waiters: Lock<WaitQueue<()>>,
}

/// The state passed to [`Once::call_once_force`]'s closure.
#[derive(Debug)]
pub struct OnceState {
    poisoned: bool,
}

impl OnceState {
    /// True if an earlier call's closure panicked.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned
    }
}

impl Once {
    maybe_const_fn! {
        /// A new `Once`, not yet run.
        pub fn new() -> Once {
            Once { state: AtomicU8::new(INCOMPLETE), waiters: Lock::new(WaitQueue::new()) }
        }
    }

    /// Runs `f` if no call has completed yet; waits if one is running.
    ///
    /// # Panics
    ///
    /// If an earlier call's closure panicked (the `Once` is poisoned), and re-raises a panic of
    /// `f` after poisoning.
    pub fn call_once<F: FnOnce()>(&self, f: F) {
        if self.is_completed() {
            return;
        }
        let mut f = Some(f);
        self.call(false, &mut |_| (f.take().expect("runs once"))());
    }

    /// As [`call_once`](Once::call_once), but also runs on a poisoned `Once`, telling `f` so.
    pub fn call_once_force<F: FnOnce(&OnceState)>(&self, f: F) {
        if self.is_completed() {
            return;
        }
        let mut f = Some(f);
        self.call(true, &mut |state| (f.take().expect("runs once"))(state));
    }

    /// Whether a call has completed.
    pub fn is_completed(&self) -> bool {
        self.state.load(Acquire) == COMPLETE
    }

    #[cold]
    fn call(&self, force: bool, f: &mut dyn FnMut(&OnceState)) {
        loop {
            let mut run = None;
            park_with(ParkKind::Uninterruptible, None, |waker| {
                let mut q = self.waiters.lock();
                match self.state.load(Acquire) {
                    COMPLETE => false,
                    POISONED if !force => false,
                    RUNNING => {
                        q.push_back(waker, ());
                        true
                    }
                    s => {
                        self.state.store(RUNNING, Relaxed);
                        run = Some(s == POISONED);
                        false
                    }
                }
            });
            match (run, self.state.load(Acquire)) {
                (Some(poisoned), _) => return self.run(poisoned, f),
                (None, COMPLETE) => return,
                (None, POISONED) if !force => panic!("Once instance has previously been poisoned"),
                _ => {}
            }
        }
    }

    fn run(&self, poisoned: bool, f: &mut dyn FnMut(&OnceState)) {
        /// Stores the outcome and wakes the waiters, on return or on unwind.
        struct Finish<'a> {
            once: &'a Once,
            outcome: u8,
        }
        impl Drop for Finish<'_> {
            fn drop(&mut self) {
                let mut q = self.once.waiters.lock();
                self.once.state.store(self.outcome, Release);
                let all = q.take_all();
                drop(q);
                wake_all(all);
            }
        }
        let mut finish = Finish { once: self, outcome: POISONED };
        f(&OnceState { poisoned });
        finish.outcome = COMPLETE;
    }
}

impl Default for Once {
    fn default() -> Once {
        Once::new()
    }
}

impl fmt::Debug for Once {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Once").finish_non_exhaustive()
    }
}

/// A cell written once, as [`std::sync::OnceLock`]. Callers that find it being initialised
/// park until it is done. A panicking initialiser leaves it empty, for the next caller to try.
///
/// ```
/// use weft::sync::OnceLock;
///
/// static CONFIG: OnceLock<String> = OnceLock::new();
/// let value = CONFIG.get_or_init(|| "loaded".to_owned());
/// assert_eq!(value, "loaded");
/// assert_eq!(CONFIG.set("again".to_owned()), Err("again".to_owned()));
/// ```
pub struct OnceLock<T> {
    once: Once,
    value: UnsafeCell<MaybeUninit<T>>,
}

// SAFETY: the value is written once, by one caller, before `once` completes (a Release
// store), and read only after observing completion (Acquire); sharing it needs `T: Sync`, and
// the writer may be any thread, so `T: Send` too, as for std's `OnceLock`.
unsafe impl<T: Sync + Send> Sync for OnceLock<T> {}
// SAFETY: owning the cell owns the value.
unsafe impl<T: Send> Send for OnceLock<T> {}

impl<T> OnceLock<T> {
    maybe_const_fn! {
        /// An empty cell.
        pub fn new() -> OnceLock<T> {
            OnceLock { once: Once::new(), value: UnsafeCell::new(MaybeUninit::uninit()) }
        }
    }

    /// The value, if set.
    pub fn get(&self) -> Option<&T> {
        if self.once.is_completed() {
            // SAFETY: completion means the value was written, and is never written again
            // through `&self`.
            Some(unsafe { (*self.value.get()).assume_init_ref() })
        } else {
            None
        }
    }

    /// The value, mutably, if set.
    pub fn get_mut(&mut self) -> Option<&mut T> {
        if self.once.is_completed() {
            // SAFETY: as in `get`, and `&mut self` is exclusive.
            Some(unsafe { self.value.get_mut().assume_init_mut() })
        } else {
            None
        }
    }

    /// Sets the value if the cell is empty; otherwise gives `value` back.
    ///
    /// # Errors
    ///
    /// `Err(value)` if the cell was already set.
    pub fn set(&self, value: T) -> Result<(), T> {
        let mut value = Some(value);
        self.get_or_init(|| value.take().expect("taken once"));
        match value {
            None => Ok(()),
            Some(value) => Err(value),
        }
    }

    /// The value, initialising it with `f` if the cell is empty. Concurrent callers park while
    /// one of them runs `f`.
    pub fn get_or_init(&self, f: impl FnOnce() -> T) -> &T {
        if let Some(value) = self.get() {
            return value;
        }
        self.once.call_once_force(|_| {
            let value = f();
            // SAFETY: the running `Once` makes this the only writer, and no reader looks before
            // it completes.
            unsafe { (*self.value.get()).write(value) };
        });
        self.get().expect("initialised by the call above or by a concurrent one")
    }

    /// Takes the value out, leaving the cell empty.
    pub fn take(&mut self) -> Option<T> {
        if !self.once.is_completed() {
            return None;
        }
        self.once = Once::new();
        // SAFETY: it was complete, so initialised; resetting `once` first means it is not
        // read or dropped again.
        Some(unsafe { self.value.get_mut().assume_init_read() })
    }

    /// The value, if set, consuming the cell.
    pub fn into_inner(mut self) -> Option<T> {
        self.take()
    }
}

impl<T> Drop for OnceLock<T> {
    fn drop(&mut self) {
        if self.once.is_completed() {
            // SAFETY: complete means initialised, and this is the last use.
            unsafe { self.value.get_mut().assume_init_drop() };
        }
    }
}

impl<T> Default for OnceLock<T> {
    fn default() -> OnceLock<T> {
        OnceLock::new()
    }
}

impl<T: fmt::Debug> fmt::Debug for OnceLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_tuple("OnceLock");
        match self.get() {
            Some(v) => d.field(v),
            None => d.field(&format_args!("<uninit>")),
        };
        d.finish()
    }
}

impl<T: Clone> Clone for OnceLock<T> {
    fn clone(&self) -> OnceLock<T> {
        let cell = OnceLock::new();
        if let Some(value) = self.get() {
            let _ = cell.set(value.clone());
        }
        cell
    }
}

impl<T> From<T> for OnceLock<T> {
    fn from(value: T) -> OnceLock<T> {
        let cell = OnceLock::new();
        let _ = cell.set(value);
        cell
    }
}

impl<T: PartialEq> PartialEq for OnceLock<T> {
    fn eq(&self, other: &OnceLock<T>) -> bool {
        self.get() == other.get()
    }
}

impl<T: Eq> Eq for OnceLock<T> {}
