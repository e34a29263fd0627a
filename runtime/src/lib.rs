//! The weft runtime: stackful coroutines on pooled stacks, run M:N on worker threads with
//! work stealing, behind an API shaped like `std::thread`.
//!
//! Use it through the `weft` crate, which re-exports everything here. The pieces:
//!
//! - [`spawn`], [`Builder`], [`JoinHandle`], [`scope`]: coroutines, as threads are spawned;
//! - [`sleep`], [`yield_now`], [`park`], [`park_timeout`], [`current`]: as in `std::thread`;
//! - [`Runtime`] and [`runtime::Builder`]: a runtime of your own; [`block_on`] for the default;
//! - [`spawn_blocking`]: a bounded pool for calls that can only block a thread;
//! - [`reactor::Registration`]: blocking-style I/O on any non-blocking fd (`weft::net` is built
//!   on it).
//!
//! Internally, every blocking call parks through one protocol ([`state`](self) module docs),
//! each worker owns its queues, timers and epoll instance, and a started coroutine stays on
//! its worker unless migration is opted into.

#![warn(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

mod blocking;
mod context;
mod idle;
mod join;
mod metrics;
mod monitor;
mod overflow;
mod panic_hook;
mod park;
pub mod reactor;
mod registry;
mod scope;
mod stack;
mod state;
pub mod sync;
mod sys;
mod task;
mod timer;
mod worker;

/// The runtime handle's builder and related items.
pub mod runtime;

pub use join::{spawn, spawn_blocking, workers, Builder, JoinHandle};
pub use metrics::{RuntimeMetrics, WorkerMetrics};
pub use park::{current, is_coroutine, park, park_timeout, sleep, yield_now};
pub use runtime::{block_on, Runtime};
pub use scope::{scope, Scope, ScopedJoinHandle};
pub use task::{Coroutine, CoroutineId};
