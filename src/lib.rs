//! # weft
//!
//! Stackful coroutines for Rust with a blocking-style API. Write handlers as ordinary
//! sequential code; when a call would block, only the coroutine is suspended and its worker
//! thread runs other coroutines.
//!
//! ```
//! use std::time::Duration;
//!
//! let handles: Vec<_> = (0..1000)
//!     .map(|i| {
//!         weft::spawn(move || {
//!             weft::sleep(Duration::from_millis(10)); // parks the coroutine, not the thread
//!             i
//!         })
//!     })
//!     .collect();
//! let sum: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
//! assert_eq!(sum, 499_500);
//! ```
//!
//! The API mirrors `std::thread`: [`spawn`], [`Builder`], [`JoinHandle::join`], [`scope`],
//! [`sleep`], [`yield_now`], [`park`], [`current`]. Porting thread-per-task code means changing
//! `std::thread::` to `weft::`.
//!
//! Free functions act on the runtime of the calling coroutine; from a plain thread they use a
//! default runtime, started on first use with `WEFT_WORKERS` workers (default: one per core).
//! [`Runtime::builder`] makes a runtime of your own.

#![warn(missing_docs)]

pub use weft_runtime::*;

/// Networking on coroutines, mirroring `std::net`.
pub use weft_net as net;
