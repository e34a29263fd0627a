//! Feeds arbitrary bytes to weft's HTTP server as one connection's input, through the real
//! connection loop (`weft::net::http::fuzz::serve_bytes`), and checks that it never panics and
//! that whatever it writes back starts with a well-formed response head.
//!
//! The first byte picks how many bytes each read returns, so requests straddle reads.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&first, input)) = data.split_first() else { return };
    let step = [1, 2, 3, 7, 64, 512, 4096][usize::from(first) % 7];
    let out = weft::net::http::fuzz::serve_bytes(input, step);
    if out.is_empty() {
        return;
    }
    let mut fields = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut fields);
    match resp.parse(&out) {
        Ok(httparse::Status::Complete(_)) => {
            let status = resp.code.unwrap_or(0);
            assert!(
                // Not 500: the fuzz handler never panics, so a 500 is a panic in the server.
                [100, 200, 400, 408, 413, 414, 417, 431, 501, 505].contains(&status),
                "unexpected status {status}"
            );
        }
        other => panic!("the server wrote a malformed response head: {other:?}"),
    }
});
