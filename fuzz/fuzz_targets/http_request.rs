//! Feeds arbitrary bytes to weft's HTTP server as one connection's input, through the real
//! connection loop (`weft::net::http::fuzz::serve_bytes`, with limits scaled down so that
//! small inputs reach them), and checks what the server writes back:
//!
//! 1. no panic, in the server or in the fuzz handler (a 500 means one was caught);
//! 2. the output is a sequence of well-formed HTTP/1.1 responses with known statuses, framed
//!    so that a client can read them, and nothing after one that closes (`check::read`);
//! 3. no more responses than the input can hold requests (`check::most_replies`);
//! 4. the same answers when each read takes all it can (`check::same_answers`).
//!
//! The first byte of the input picks how many bytes each read returns (`check::step_for`),
//! so requests straddle reads.
//!
//! Running it needs `cargo-fuzz` and a nightly toolchain (or `RUSTC_BOOTSTRAP=1` on a stable
//! one), from the `fuzz/` directory:
//!
//! ```text
//! cargo install cargo-fuzz
//! mkdir -p corpus/http_request
//! cargo +nightly fuzz run http_request corpus/http_request seeds/http_request
//! ```
//!
//! New inputs go to `corpus/`, which is not committed; `seeds/` holds a few hand-written
//! requests to start from. A crash is saved under `artifacts/http_request/`; replay it with
//! `cargo +nightly fuzz run http_request artifacts/http_request/<file>`, and pin it as a
//! regression test in `tests/http_fuzz.rs`.

#![no_main]

use libfuzzer_sys::fuzz_target;

// Shared with `tests/http_fuzz.rs`, which uses what this target does not.
#[allow(dead_code)]
#[path = "../check.rs"]
mod check;

use check::Methods;
use weft::net::http::fuzz::serve_bytes;

fuzz_target!(|data: &[u8]| {
    let Some((&first, input)) = data.split_first() else { return };
    let out = serve_bytes(input, check::step_for(first));
    let replies =
        check::read(&out, Methods::Unknown).unwrap_or_else(|e| panic!("malformed output: {e}"));
    let finals = replies.iter().filter(|r| r.status != 100).count();
    assert!(finals <= check::most_replies(input), "{finals} responses to too few requests");
    let whole = serve_bytes(input, usize::MAX);
    let at_once = check::read(&whole, Methods::Unknown)
        .unwrap_or_else(|e| panic!("malformed output, in whole reads: {e}"));
    assert!(
        check::same_answers(&replies, &at_once),
        "in reads of {}: {replies:?}\nin whole reads: {at_once:?}",
        check::step_for(first)
    );
});
