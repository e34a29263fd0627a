//! The servers of the suite: one echo server and one HTTP plaintext server in each style.
//!
//! Every server serves on the address it is given, with `workers` threads of its own style, and
//! calls [`ready`] once every listener is bound. The runner starts each in a process of its
//! own (`weft-bench serve STYLE PROTO`), pinned to its CPU, so that its CPU time and memory can
//! be read from `/proc/<pid>`.

pub mod callback_style;
pub mod may_style;
pub mod plaintext;
pub mod threads;
pub mod tokio_style;
pub mod weft_style;

use std::fmt;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use tokio_style::Flavor;

/// The threads of the fixed pool. A pool thread serves one connection until it closes, so the
/// pool serves at most this many connections at a time; the runner skips the cells with more.
pub const POOL_THREADS: usize = 512;

/// A style of writing a server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Style {
    /// weft: blocking-style handlers, a coroutine per connection, an acceptor per worker.
    Weft,
    /// A hand-written epoll state machine per thread: the ceiling for weft.
    Callback,
    /// A `std::thread` per connection.
    Threads,
    /// A fixed pool of [`POOL_THREADS`] threads.
    Pool,
    /// tokio's multi-thread runtime (hyper for HTTP).
    TokioMt,
    /// tokio's current-thread runtime (hyper for HTTP).
    TokioCt,
    /// may's coroutines (may_minihttp for HTTP).
    May,
}

impl Style {
    /// Every style, in the order of the report.
    pub const ALL: [Style; 7] = [
        Style::Callback,
        Style::Weft,
        Style::May,
        Style::TokioMt,
        Style::TokioCt,
        Style::Threads,
        Style::Pool,
    ];

    /// The name on the command line and in the results.
    pub fn name(self) -> &'static str {
        match self {
            Style::Weft => "weft",
            Style::Callback => "callback",
            Style::Threads => "threads",
            Style::Pool => "pool",
            Style::TokioMt => "tokio-mt",
            Style::TokioCt => "tokio-ct",
            Style::May => "may",
        }
    }

    /// What the style's server is made of, for the report.
    pub fn describe(self, proto: Proto) -> &'static str {
        match (self, proto) {
            (Style::Weft, Proto::Echo) => "a coroutine per connection",
            (Style::Weft, Proto::Http) => "weft::net::http",
            (Style::Callback, Proto::Echo) => "epoll state machine",
            (Style::Callback, Proto::Http) => "epoll state machine + httparse",
            (Style::Threads, Proto::Echo) => "std::thread per connection",
            (Style::Threads, Proto::Http) => "std::thread per connection + httparse",
            (Style::Pool, Proto::Echo) => "pool of 512 std::threads",
            (Style::Pool, Proto::Http) => "pool of 512 std::threads + httparse",
            (Style::TokioMt, Proto::Echo) => "tokio multi-thread",
            (Style::TokioMt, Proto::Http) => "hyper on tokio multi-thread",
            (Style::TokioCt, Proto::Echo) => "tokio current-thread",
            (Style::TokioCt, Proto::Http) => "hyper on tokio current-thread",
            (Style::May, Proto::Echo) => "a may coroutine per connection",
            (Style::May, Proto::Http) => "may_minihttp",
        }
    }

    /// Whether the style can serve `conns` connections at once.
    pub fn serves(self, conns: usize) -> bool {
        self != Style::Pool || conns <= POOL_THREADS
    }
}

impl fmt::Display for Style {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Style {
    type Err = String;

    fn from_str(s: &str) -> Result<Style, String> {
        Style::ALL.into_iter().find(|style| style.name() == s).ok_or_else(|| {
            let names: Vec<_> = Style::ALL.iter().map(|s| s.name()).collect();
            format!("unknown style {s:?}; styles: {}", names.join(", "))
        })
    }
}

/// What a server speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Proto {
    /// Every byte read is written back.
    Echo,
    /// HTTP/1.1 keep-alive; `GET /plaintext` answers `Hello, World!`.
    Http,
}

impl Proto {
    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Proto::Echo => "echo",
            Proto::Http => "http",
        }
    }
}

impl FromStr for Proto {
    type Err = String;

    fn from_str(s: &str) -> Result<Proto, String> {
        match s {
            "echo" => Ok(Proto::Echo),
            "http" => Ok(Proto::Http),
            _ => Err(format!("unknown protocol {s:?}; protocols: echo, http")),
        }
    }
}

/// Serves `proto` in `style` on `addr` (a real port, not 0) with `workers` threads. Returns
/// only on an error that stops the whole server.
///
/// # Errors
///
/// Binding the listeners, or building the runtime.
pub fn serve(style: Style, proto: Proto, addr: SocketAddr, workers: usize) -> io::Result<()> {
    match (style, proto) {
        (Style::Weft, Proto::Echo) => weft_style::serve_echo(addr, workers),
        (Style::Weft, Proto::Http) => weft_style::serve_http(addr, workers),
        (Style::Callback, Proto::Echo) => callback_style::serve_echo(addr, workers),
        (Style::Callback, Proto::Http) => callback_style::serve_http(addr, workers),
        (Style::Threads, Proto::Echo) => threads::serve_per_connection(addr, threads::echo),
        (Style::Threads, Proto::Http) => threads::serve_per_connection(addr, threads::http),
        (Style::Pool, Proto::Echo) => threads::serve_pool(addr, threads::echo),
        (Style::Pool, Proto::Http) => threads::serve_pool(addr, threads::http),
        (Style::TokioMt, proto) => tokio_style::serve(proto, Flavor::MultiThread, addr, workers),
        (Style::TokioCt, proto) => tokio_style::serve(proto, Flavor::CurrentThread, addr, workers),
        (Style::May, Proto::Echo) => may_style::serve_echo(addr, workers),
        (Style::May, Proto::Http) => may_style::serve_http(addr, workers),
    }
}

/// The echo buffer of the blocking styles (weft, may, threads), on the stack of the coroutine or
/// thread: one page, so an idle connection touches about two pages of its 64 KiB stack.
const ECHO_BUF: usize = 4096;

/// The echo of every blocking style: weft's, may's and std's streams all implement `Read` and
/// `Write`, so the three styles run this same loop, and differ only in what a blocked `read`
/// does. Writes back everything read until the peer closes.
///
/// # Errors
///
/// The first failed read or write.
pub fn echo_blocking<S: io::Read + io::Write>(mut stream: S) -> io::Result<()> {
    let mut buf = [0u8; ECHO_BUF];
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        stream.write_all(&buf[..n])?;
    }
}

/// Tells the runner the server is bound: prints `listening on ADDR` and flushes.
pub fn ready(addr: SocketAddr) {
    let mut out = io::stdout().lock();
    // The runner waits for this line; if stdout is gone there is no one to tell.
    let _ = writeln!(out, "listening on {addr}");
    let _ = out.flush();
}
