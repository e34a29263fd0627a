//! may's style: blocking-style coroutines, as weft's; may_minihttp for HTTP.

use std::io;
use std::net::SocketAddr;

use may::net::{TcpListener, TcpStream};
use may_minihttp::{HttpService, HttpServiceFactory, Request, Response};

/// may counts stack sizes in words: 0x2000 words are 64 KiB, weft's default stack (may's own
/// default is half that).
const STACK_WORDS: usize = 0x2000;

fn configure(workers: usize) {
    may::config().set_workers(workers).set_stack_size(STACK_WORDS);
}

/// Serves echo on `addr`: one listener, one acceptor coroutine, a coroutine per connection.
///
/// # Errors
///
/// The bind.
pub fn serve_echo(addr: SocketAddr, workers: usize) -> io::Result<()> {
    configure(workers);
    let listener = TcpListener::bind(addr)?;
    super::ready(addr);
    // `go!` is may's unsafe spawn behind a safe face. Its rule is that a coroutine must not
    // use thread-local storage across a switch (may moves coroutines between threads) nor
    // overflow its stack: `echo` uses neither, and 4 KiB of its 64 KiB stack.
    let acceptor = may::go!(move || {
        for stream in listener.incoming() {
            // An accept error ends that accept only; may waits out EMFILE itself.
            let Ok(stream) = stream else { continue };
            may::go!(move || {
                let _ = echo(stream);
            });
        }
    });
    acceptor.join().map_err(|_| io::Error::other("may's acceptor panicked"))
}

fn echo(stream: TcpStream) -> io::Result<()> {
    stream.set_nodelay(true)?;
    super::echo_blocking(stream)
}

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

/// Serves HTTP plaintext on `addr` with may_minihttp: one listener and one acceptor, as
/// may_minihttp serves.
///
/// # Errors
///
/// The bind.
pub fn serve_http(addr: SocketAddr, workers: usize) -> io::Result<()> {
    configure(workers);
    let server = Factory.start(addr)?;
    super::ready(addr);
    server.join().map_err(|_| io::Error::other("may_minihttp's server panicked"))
}
