//! Locks, condition variables and channels that park the coroutine, not the thread:
//! drop-in replacements for `std::sync`'s, plus [`Semaphore`], [`WaitGroup`], [`mpmc`]
//! channels and [`Select`].
//!
//! Every type works from coroutines on any worker and from plain threads, in any mix: a
//! coroutine that waits parks itself and its worker runs others; a thread parks the thread.
//! All waits go through the one park protocol of the runtime.
//!
//! # How they are built
//!
//! Each primitive is an atomic word for the uncontended path, where lock and unlock (or send
//! and receive) take no syscall and do not allocate, plus a FIFO [`queue`] of parked waiters
//! behind a short internal lock (`parking_lot`'s). The queue's rule, that an entry taken off
//! the queue was handed what it waited for, is what makes timeouts race hand-offs safely; each
//! module writes down its own lost-wake-up argument next to its state.
//!
//! Lock waits (`Mutex`, `RwLock`, `Condvar`, `Barrier`, `Once`, `Semaphore`, `WaitGroup`) are
//! uninterruptible, as std's: a runtime's shutdown does not end them. Channel waits end during
//! shutdown with the disconnection error (the message comes back in `SendError`), so loops
//! over a channel finish.
//!
//! ```
//! use weft::sync::{mpsc, Mutex};
//!
//! static TOTAL: Mutex<u64> = Mutex::new(0);
//! let (tx, rx) = mpsc::channel();
//! for i in 0..10 {
//!     let tx = tx.clone();
//!     weft::spawn(move || tx.send(i).unwrap());
//! }
//! drop(tx);
//! for i in rx {
//!     *TOTAL.lock().unwrap() += i;
//! }
//! assert_eq!(*TOTAL.lock().unwrap(), 45);
//! ```

mod barrier;
mod chan;
mod condvar;
mod mutex;
mod once;
mod poison;
mod queue;
mod rwlock;
mod select;
mod semaphore;
mod shim;

pub mod mpmc;
pub mod mpsc;

#[cfg(all(loom, test))]
mod loom_models;

pub use barrier::{Barrier, BarrierWaitResult, WaitGroup};
pub use condvar::{Condvar, WaitTimeoutResult};
pub use mutex::{Mutex, MutexGuard};
pub use once::{Once, OnceLock, OnceState};
pub use rwlock::{RwLock, RwLockReadGuard, RwLockWriteGuard};
#[doc(hidden)]
pub use select::{__slot, __take};
pub use select::{Select, SelectRecv, SelectTimeoutError};
pub use semaphore::{Semaphore, SemaphorePermit};
pub use std::sync::{LockResult, PoisonError, TryLockError, TryLockResult};
