//! HTTP/1.1 for weft coroutines: a [`Server`] whose handlers are plain blocking functions, and a
//! small blocking [`Client`].
//!
//! A handler is a function from [`Request`] to [`Response`], the `http` crate's types with a
//! body reader and a body of weft's. It runs in the connection's coroutine, so it may block
//! as any weft code does: read the request body, call another service through the
//! [`Client`], take a lock, sleep.
//!
//! ```no_run
//! use weft::net::http::{Request, Response, Server, StatusCode};
//!
//! fn handle(req: Request) -> Response {
//!     match req.uri().path() {
//!         "/plaintext" => Response::new("Hello, World!".into()),
//!         _ => {
//!             let mut not_found = Response::new("no such page\n".into());
//!             *not_found.status_mut() = StatusCode::NOT_FOUND;
//!             not_found
//!         }
//!     }
//! }
//!
//! Server::bind("127.0.0.1:8080")?.serve(handle)?;
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # The server
//!
//! [`Server::bind`] opens one `SO_REUSEPORT` listener per worker, and each worker runs an
//! acceptor on its own, so the kernel spreads connections over the workers. Each connection
//! is one coroutine, which reads requests and writes responses in order:
//!
//! - keep-alive, with an idle timeout, and pipelining: the responses to requests that arrive
//!   together are written together, in request order;
//! - HTTP/1.0: one request per connection unless it asks for `keep-alive`; streamed bodies
//!   are delimited by closing the connection;
//! - `Expect: 100-continue`: the `100 Continue` goes out when the handler first reads the
//!   body, so a handler that refuses a request without reading spares the client the upload;
//! - a `Date` header on every response, formatted once per second; `HEAD` responses carry the
//!   head of the matching `GET` and no body;
//! - a request body the handler did not read is read and dropped, up to
//!   [`Server::max_drain`], so the next request can be read; past that the connection closes.
//!
//! Bad input gets a status and a closed connection, never a panic or a hang:
//!
//! | input | status |
//! |---|---|
//! | request line over [`max_request_line`](Server::max_request_line) (8 KiB) | 414 |
//! | head over [`max_head_size`](Server::max_head_size) (64 KiB) or [`max_headers`](Server::max_headers) (100) fields | 431 |
//! | body over [`max_body_size`](Server::max_body_size) (8 MiB) | 413 |
//! | malformed request line or field; `Content-Length` not all digits, duplicated or with `Transfer-Encoding`; `Transfer-Encoding` other than `chunked`; a bad chunk line; a missing or duplicate `Host` in HTTP/1.1 | 400 |
//! | a coding list that ends in `chunked` but holds others (`gzip, chunked`) | 501 |
//! | an `Expect` other than `100-continue` | 417 |
//! | HTTP/2 or later on the request line | 505 |
//! | the head not complete within [`header_timeout`](Server::header_timeout) (30 s) | 408 |
//! | a panicking handler | 500 |
//!
//! When a body turns out bad while the handler reads it (a malformed chunk, more than the
//! limit), the handler's read fails with `InvalidData`, and the server answers 400 or 413
//! itself, whatever the handler returns.
//!
//! [`Server::shutdown_handle`] stops a server gracefully: no new connections, idle ones
//! closed, requests in flight finished within a grace period.

mod body;
mod client;
mod conn;
mod date;
#[doc(hidden)]
pub mod fuzz;
mod head;
mod request;
mod response;
mod server;
mod wire;

pub use http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, Version};

pub use client::Client;
pub use request::RequestBody;
pub use response::{Body, BodyWriter};
pub use server::{Server, ShutdownHandle};

/// A request as a handler sees it: the `http` crate's request, with a body that reads from
/// the connection.
pub type Request<'a> = http::Request<RequestBody<'a>>;

/// A response as a handler returns it.
pub type Response = http::Response<Body>;

use std::time::Duration;

/// The server's limits and timeouts; [`Server`]'s builder methods set them.
#[derive(Clone, Debug)]
pub(crate) struct Limits {
    pub(crate) max_request_line: usize,
    pub(crate) max_head: usize,
    pub(crate) max_headers: usize,
    pub(crate) max_body: u64,
    pub(crate) max_chunk_line: usize,
    pub(crate) max_drain: u64,
    pub(crate) header_timeout: Duration,
    pub(crate) keep_alive_timeout: Duration,
    pub(crate) read_timeout: Duration,
    pub(crate) write_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_request_line: 8 * 1024,
            max_head: 64 * 1024,
            max_headers: 100,
            max_body: 8 * 1024 * 1024,
            max_chunk_line: 1024,
            max_drain: 256 * 1024,
            header_timeout: Duration::from_secs(30),
            keep_alive_timeout: Duration::from_secs(60),
            read_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(30),
        }
    }
}

impl Limits {
    pub(crate) fn chunk(&self) -> body::ChunkLimits {
        body::ChunkLimits { line: self.max_chunk_line, trailers: self.max_head }
    }
}
