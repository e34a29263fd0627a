//! weft-bench: weft's blocking-style coroutines side by side with the hand-written callback
//! style, threads and async, on the same protocols, with the same load and method.
//!
//! The binary (`src/main.rs`) is the runner; this library is its parts, so that the tests
//! can use them too:
//!
//! - [`servers`]: an echo server and an HTTP plaintext server in each style;
//! - [`process`]: a server in a process of its own, pinned to its CPU;
//! - [`verify`]: the correctness check every server passes before it is timed;
//! - [`load`]: the load generator, closed loop or fixed rate;
//! - [`sys`]: CPU affinity and `/proc` readings;
//! - [`results`], [`report`], [`chart`]: what a run measured, as markdown and SVG;
//! - [`targets`]: `--check`, against `targets.toml`.

pub mod chart;
pub mod load;
pub mod process;
pub mod report;
pub mod results;
pub mod servers;
pub mod sys;
pub mod targets;
pub mod verify;
