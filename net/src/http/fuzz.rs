//! The server's connection code driven over memory instead of a socket: what the fuzz target
//! and the generated-request tests feed. Not a stable API.

use std::cell::RefCell;
use std::io::{self, IoSlice, Read, Write};
use std::time::Instant;

use super::conn::{self, Transport};
use super::{Body, Limits, Request, Response};
use crate::socket::Deadline;

/// A transport over an input byte string, handed out at most `step` bytes per read, that
/// records what is written. The end of the input reads as the peer closing.
struct Memory<'a> {
    input: RefCell<&'a [u8]>,
    step: usize,
    output: RefCell<Vec<u8>>,
}

impl Transport for Memory<'_> {
    fn read_until(&self, buf: &mut [u8], _deadline: Deadline) -> io::Result<usize> {
        let mut input = self.input.borrow_mut();
        let n = buf.len().min(self.step).min(input.len());
        buf[..n].copy_from_slice(&input[..n]);
        *input = &input[n..];
        Ok(n)
    }

    fn write_until(&self, a: &[u8], b: &[u8], _deadline: Deadline) -> io::Result<usize> {
        self.output.borrow_mut().write_vectored(&[IoSlice::new(a), IoSlice::new(b)])
    }

    fn shutdown_write(&self) {}
}

/// The limits the fuzzer runs with: the defaults, scaled down so that inputs of a few
/// kilobytes reach every one of them.
fn limits() -> Limits {
    Limits {
        max_request_line: 256,
        max_head: 1024,
        max_headers: 16,
        max_body: 4096,
        max_chunk_line: 64,
        max_drain: 1024,
        ..Limits::default()
    }
}

/// The handler under fuzzing: `/echo` reads the body whole and returns it, `/stream` streams
/// it back chunked, `/ignore` leaves it unread, anything else reads it and reports its length.
fn handler(mut req: Request<'_>) -> Response {
    match req.uri().path() {
        "/ignore" => Response::new(Body::empty()),
        "/stream" => {
            let mut data = Vec::new();
            if req.body_mut().read_to_end(&mut data).is_err() {
                return Response::new(Body::empty());
            }
            Response::new(Body::stream(move |w| w.write_all(&data)))
        }
        "/echo" => match req.body_mut().read_all(2048) {
            Ok(data) => Response::new(data.into()),
            Err(_) => Response::new(Body::empty()),
        },
        _ => {
            let n = io::copy(req.body_mut(), &mut io::sink()).unwrap_or(0);
            Response::new(n.to_string().into())
        }
    }
}

/// Serves `input` as one connection's bytes, read `step` bytes at a time, and returns what
/// the server wrote.
pub fn serve_bytes(input: &[u8], step: usize) -> Vec<u8> {
    let io =
        Memory { input: RefCell::new(input), step: step.max(1), output: RefCell::new(Vec::new()) };
    conn::serve(&io, &limits(), None, Instant::now(), &handler);
    io.output.into_inner()
}
