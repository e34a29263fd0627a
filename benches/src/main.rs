//! Placeholder for the side-by-side comparison runner. The micro-benchmarks are in
//! `benches/runtime.rs` (`cargo bench -p weft-bench`), the memory probe in `src/bin/rss.rs`
//! (`cargo run --release -p weft-bench --bin rss`).

fn main() {}
