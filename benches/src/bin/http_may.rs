//! The may_minihttp peer of `benches/http.sh`: `GET /plaintext` answers `Hello, World!`, as
//! TechEmpower's plaintext test asks; any other path gets 404.
//!
//! ```text
//! http_may [--addr 127.0.0.1:8080] [--workers N]
//! ```
//!
//! `--workers` sets may's worker threads (default: one per core). One listener, one acceptor
//! coroutine, Nagle left on: that is how may_minihttp serves. Prints `listening on <addr>` once
//! bound; the address is the one given, since may_minihttp does not expose the bound one, so
//! give a port rather than 0.

use std::io::{self, Write};

use may_minihttp::{HttpService, HttpServiceFactory, Request, Response};

struct Plaintext;

impl HttpService for Plaintext {
    fn call(&mut self, req: Request, rsp: &mut Response) -> io::Result<()> {
        if req.path() == "/plaintext" {
            rsp.header("Content-Type: text/plain").body("Hello, World!");
        } else {
            rsp.status_code(404, "Not Found").body("");
        }
        Ok(())
    }
}

struct Factory;

impl HttpServiceFactory for Factory {
    type Service = Plaintext;

    fn new_service(&self, _id: usize) -> Plaintext {
        Plaintext
    }
}

fn main() -> io::Result<()> {
    let (addr, workers) = weft_bench::peer_args();
    if let Some(n) = workers {
        may::config().set_workers(n);
    }
    let server = Factory.start(addr.as_str())?;
    println!("listening on {addr}");
    io::stdout().flush()?;
    server.join().map_err(|_| io::Error::other("may_minihttp's server panicked"))
}
