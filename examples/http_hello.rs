//! An HTTP/1.1 server on weft: TechEmpower's plaintext and JSON tests, a health check and the
//! runtime's metrics, with handlers written as plain functions.
//!
//! ```text
//! cargo run --release --example http_hello -- [--addr 127.0.0.1:8080] [--workers N] [--grace SECS]
//! curl http://127.0.0.1:8080/plaintext
//! wrk -t1 -c256 -d10s http://127.0.0.1:8080/plaintext
//! ```
//!
//! | route | answer |
//! |---|---|
//! | `GET /plaintext` | `Hello, World!` (`text/plain`) |
//! | `GET /json` | `{"message":"Hello, World!"}` (`application/json`) |
//! | `GET /healthz` | `ok` |
//! | `GET /metrics` | the runtime's counters, in Prometheus text format |
//!
//! Other paths get 404, other methods on these paths 405. `HEAD` works wherever `GET` does.
//!
//! The server binds one `SO_REUSEPORT` listener per worker and prints `listening on <addr>`
//! once it accepts; scripts wait for that line. SIGINT (Ctrl-C) and SIGTERM stop it
//! gracefully: it stops accepting, closes idle connections, lets requests in flight finish for
//! up to `--grace` seconds (default 5), prints `shut down cleanly` and exits 0.
//!
//! The signals are blocked in every thread (the mask is set before the runtime starts its
//! workers, which inherit it), and one plain thread takes them with `sigwait`: nothing runs in
//! a signal handler.

#[path = "common/cli.rs"]
mod cli;

use std::io;
use std::process::ExitCode;
use std::sync::{Arc, Weak};
use std::time::Duration;

use weft::net::http::{
    header, Body, HeaderValue, Method, Request, Response, Server, ShutdownHandle, StatusCode,
};

const USAGE: &str = "\
usage: http_hello [--addr ADDR] [--workers N] [--grace SECS]

  --addr ADDR    address to listen on (default 127.0.0.1:8080; port 0 picks a free port)
  --workers N    worker threads, one acceptor each (default: WEFT_WORKERS, else one per core)
  --grace SECS   how long requests in flight may take to finish on SIGINT/SIGTERM (default 5)
  -h, --help     show this help

Prints `listening on <addr>` once it accepts.";

struct Options {
    addr: String,
    workers: Option<usize>,
    grace: Duration,
}

fn parse_args(args: &mut cli::Args) -> Result<Options, cli::Stop> {
    let mut opts =
        Options { addr: "127.0.0.1:8080".into(), workers: None, grace: Duration::from_secs(5) };
    while let Some(mut flag) = args.next()? {
        match flag.name() {
            "--addr" => opts.addr = flag.value()?,
            "--workers" => opts.workers = Some(flag.positive()?),
            "--grace" => opts.grace = flag.seconds(true)?,
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    Ok(opts)
}

fn main() -> ExitCode {
    let opts = match cli::parse("http_hello", USAGE, parse_args) {
        Ok(opts) => opts,
        Err(code) => return code,
    };
    if let Err(e) = block_stop_signals() {
        eprintln!("http_hello: cannot block SIGINT and SIGTERM: {e}");
        return ExitCode::FAILURE;
    }
    let rt = match cli::runtime(opts.workers) {
        Ok(rt) => Arc::new(rt),
        Err(e) => {
            eprintln!("http_hello: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let metrics_of = Arc::downgrade(&rt);
    match rt.block_on(move || serve(&opts, metrics_of)) {
        Ok(()) => {
            println!("shut down cleanly");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("http_hello: cannot serve: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Binds, hands the shutdown handle to the signal thread, and serves until a signal's
/// shutdown is done.
fn serve(opts: &Options, rt: Weak<weft::Runtime>) -> io::Result<()> {
    let server = Server::bind(opts.addr.as_str())?;
    let addr = server.local_addr()?;
    let stop = server.shutdown_handle();
    let grace = opts.grace;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || wait_for_stop_signal(&stop, grace))?;
    println!("listening on {addr}");
    server.serve(move |req| route(&req, &rt))
}

fn route(req: &Request, rt: &Weak<weft::Runtime>) -> Response {
    let get = req.method() == Method::GET || req.method() == Method::HEAD;
    let (content_type, body): (&'static str, Body) = match req.uri().path() {
        "/plaintext" if get => ("text/plain", "Hello, World!".into()),
        "/json" if get => ("application/json", r#"{"message":"Hello, World!"}"#.into()),
        "/healthz" if get => ("text/plain", "ok\n".into()),
        "/metrics" if get => {
            let mut text = String::new();
            if let Some(rt) = rt.upgrade() {
                // Writing into a String cannot fail.
                let _ = rt.metrics().write_prometheus(&mut text);
            }
            ("text/plain; version=0.0.4", text.into())
        }
        "/plaintext" | "/json" | "/healthz" | "/metrics" => {
            let mut rsp = status(StatusCode::METHOD_NOT_ALLOWED);
            rsp.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return rsp;
        }
        _ => return status(StatusCode::NOT_FOUND),
    };
    let mut rsp = Response::new(body);
    rsp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    rsp
}

/// An empty response with `code`.
fn status(code: StatusCode) -> Response {
    let mut rsp = Response::new(Body::empty());
    *rsp.status_mut() = code;
    rsp
}

/// The signals that stop the server.
fn stop_signals() -> libc::sigset_t {
    // SAFETY: sigemptyset and sigaddset only write into the set they are given, which is a
    // local, fully owned value; the signal numbers are valid.
    unsafe {
        let mut set = std::mem::zeroed::<libc::sigset_t>();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        set
    }
}

/// Blocks SIGINT and SIGTERM in the calling thread, and so in every thread it starts later.
fn block_stop_signals() -> io::Result<()> {
    let set = stop_signals();
    // SAFETY: `set` is an initialised signal set; a null old-set pointer is allowed.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(rc))
    }
}

/// Waits for SIGINT or SIGTERM, then starts the server's graceful shutdown.
fn wait_for_stop_signal(stop: &ShutdownHandle, grace: Duration) {
    let set = stop_signals();
    let mut signal = 0;
    // SAFETY: `set` is initialised and blocked in this thread (inherited from main), and
    // `signal` is a valid place for the result.
    let rc = unsafe { libc::sigwait(&set, &mut signal) };
    if rc == 0 {
        eprintln!("http_hello: signal {signal}, shutting down (grace {grace:?})");
        stop.shutdown(grace);
    }
}
