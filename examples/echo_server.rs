//! A TCP echo server on weft coroutines: one acceptor per worker, one coroutine per connection.
//!
//! ```text
//! cargo run --release --example echo_server -- [--addr 127.0.0.1:9000] [--workers N] [--threads]
//! ```
//!
//! `--workers` defaults to weft's default: `WEFT_WORKERS`, else one worker per core. Drive it
//! with the load generator of the benchmark suite:
//! `cargo run --release -p weft-bench -- load echo --addr 127.0.0.1:9000`. Because of SO_REUSEPORT, a second server
//! started on the same address binds too and takes a share of the connections: stop the old
//! one before a benchmark.
//!
//! How it starts:
//!
//! 1. A runtime with N workers.
//! 2. The main coroutine binds the first listener on `--addr` with
//!    `TcpListener::bind_reuse_port`, which settles the address (a port of 0 becomes a real
//!    port here).
//! 3. It spawns N acceptors, acceptor `i` on worker `i` (`weft::Builder::worker`).
//! 4. Acceptor 0 takes the first listener; acceptors 1..N bind the same address with a listener
//!    of their own. With SO_REUSEPORT the kernel spreads incoming connections over the N
//!    listeners, so no accept queue is shared, and each acceptor spawns its connections on its
//!    own worker.
//! 5. Once all N are bound, the main coroutine prints `listening on <addr>` to stdout: scripts
//!    and tests wait for that line.
//!
//! Each accepted connection gets a coroutine that `read`s and `write_all`s the bytes back until
//! the client closes. The code is what it would be with threads; weft parks the coroutine, not
//! the worker, whenever a call would block. An error ends its own connection only. An accept
//! error is printed and the acceptor goes on (weft's `accept` already waits out EMFILE, so the
//! loop cannot spin on it).
//!
//! `--threads` serves the same `echo` function the std way instead, one `std::thread` per
//! connection on `std::net` sockets, as the baseline the benchmarks compare weft with.

#[path = "common/cli.rs"]
mod cli;

use std::io::{self, Read, Write};
use std::process::ExitCode;

use weft::net::TcpListener;
use weft::sync::mpsc;

/// The address served when `--addr` is not given.
const DEFAULT_ADDR: &str = "127.0.0.1:9000";

/// The echo buffer, on the connection's coroutine stack. One page: an idle connection then
/// touches about two pages of its 64 KiB stack, and 4 KiB per read keeps up with small-message
/// benchmarks, where each read returns one message.
const BUF_SIZE: usize = 4096;

/// The `--help` text.
const USAGE: &str = "\
usage: echo_server [--addr ADDR] [--workers N] [--threads]

  --addr ADDR    address to listen on (default 127.0.0.1:9000; port 0 picks a free port)
  --workers N    worker threads, one acceptor each (default: WEFT_WORKERS, else one per core)
  --threads      serve with std::net and one std::thread per connection instead
  -h, --help     show this help

Prints `listening on <addr>` once every acceptor is bound.";

/// The command line.
struct Options {
    addr: String,
    workers: Option<usize>,
    threads: bool,
}

fn main() -> ExitCode {
    let opts = match cli::parse("echo_server", USAGE, parse_args) {
        Ok(opts) => opts,
        Err(code) => return code,
    };
    if opts.threads {
        if let Err(e) = serve_threads(&opts.addr) {
            eprintln!("echo_server: cannot serve on {}: {e}", opts.addr);
            return ExitCode::FAILURE;
        }
        return ExitCode::SUCCESS;
    }
    let rt = match cli::runtime(opts.workers) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("echo_server: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(|| serve(&opts.addr, weft::workers())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("echo_server: cannot serve on {}: {e}", opts.addr);
            ExitCode::FAILURE
        }
    }
}

/// Starts `acceptors` acceptors on `addr`, announces the address, and serves until the process
/// ends. Runs as the main coroutine.
///
/// # Errors
///
/// The first bind error; nothing is served then.
fn serve(addr: &str, acceptors: usize) -> io::Result<()> {
    // Step 2.
    let first = TcpListener::bind_reuse_port(addr)?;
    let local = first.local_addr()?;

    // Steps 3 and 4. Each acceptor sends the result of its bind on `bound_tx`.
    let (bound_tx, bound_rx) = mpsc::channel();
    let mut first = Some(first);
    let mut handles = Vec::with_capacity(acceptors);
    for id in 0..acceptors {
        let listener = first.take();
        let bound_tx = bound_tx.clone();
        let acceptor = move || {
            let bound = listener.map_or_else(|| TcpListener::bind_reuse_port(local), Ok);
            accept_loop(id, bound, &bound_tx);
        };
        let builder = weft::Builder::new().name(format!("acceptor-{id}")).worker(id);
        handles.push(builder.spawn(acceptor)?);
    }
    drop(bound_tx);
    for _ in 0..acceptors {
        // Only an acceptor that panicked before its bind leaves the channel short.
        bound_rx.recv().map_err(|_| io::Error::other("an acceptor died before binding"))??;
    }

    // Step 5.
    let mut stdout = io::stdout().lock();
    writeln!(stdout, "listening on {local}")?;
    stdout.flush()?;
    drop(stdout);

    for handle in handles {
        if handle.join().is_err() {
            eprintln!("echo_server: an acceptor panicked");
        }
    }
    Ok(())
}

/// Sends the result of the bind of `listener` on `bound`, then accepts forever, one coroutine
/// per connection.
fn accept_loop(id: usize, listener: io::Result<TcpListener>, bound: &mpsc::Sender<io::Result<()>>) {
    // A failed send means the main coroutine has already returned with another acceptor's
    // error: nothing is left to tell.
    let listener = match listener {
        Ok(listener) => {
            let _ = bound.send(Ok(()));
            listener
        }
        Err(e) => {
            let _ = bound.send(Err(e));
            return;
        }
    };
    loop {
        let (stream, peer) = match listener.accept() {
            Ok(accepted) => accepted,
            Err(e) => {
                eprintln!("echo_server: acceptor {id}: accept: {e}");
                continue;
            }
        };
        let spawned = weft::Builder::new().spawn(move || {
            if let Err(e) = stream.set_nodelay(true).and_then(|()| echo(stream)) {
                if !is_peer_gone(&e) {
                    eprintln!("echo_server: connection from {peer}: {e}");
                }
            }
        });
        if let Err(e) = spawned {
            // The stream was moved into the closure, which is dropped: the connection closes.
            eprintln!("echo_server: acceptor {id}: no coroutine for {peer}: {e}");
        }
    }
}

/// The `--threads` server: std's listener, and a thread per connection running [`echo`].
///
/// # Errors
///
/// The bind error; nothing is served then.
fn serve_threads(addr: &str) -> io::Result<()> {
    let listener = std::net::TcpListener::bind(addr)?;
    println!("listening on {}", listener.local_addr()?);
    for stream in listener.incoming() {
        let stream = match stream {
            Ok(stream) => stream,
            Err(e) => {
                eprintln!("echo_server: accept: {e}");
                // std's accept does not back off when fds run out; this loop must.
                std::thread::sleep(std::time::Duration::from_millis(5));
                continue;
            }
        };
        let spawned = std::thread::Builder::new().stack_size(64 * 1024).spawn(move || {
            if let Err(e) = stream.set_nodelay(true).and_then(|()| echo(&stream)) {
                if !is_peer_gone(&e) {
                    eprintln!("echo_server: connection: {e}");
                }
            }
        });
        if let Err(e) = spawned {
            eprintln!("echo_server: no thread for a connection: {e}");
        }
    }
    Ok(())
}

/// Writes back everything `stream` reads, until the peer closes its side. Echo replies are
/// small writes answering small reads, so callers turn Nagle's algorithm off first.
///
/// # Errors
///
/// The first failed read or write; the connection is closed when `stream` drops.
fn echo<S>(stream: S) -> io::Result<()>
where
    S: Read + Write,
{
    let mut stream = stream;
    let mut buf = [0u8; BUF_SIZE];
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        stream.write_all(&buf[..n])?;
    }
}

/// Whether `e` only says the client went away (reset or closed), which needs no log line.
fn is_peer_gone(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionAborted
    )
}

/// Parses the command line.
///
/// # Errors
///
/// `--help`, or a message naming the bad argument.
fn parse_args(args: &mut cli::Args) -> Result<Options, cli::Stop> {
    let mut opts = Options { addr: DEFAULT_ADDR.to_owned(), workers: None, threads: false };
    while let Some(mut flag) = args.next()? {
        match flag.name() {
            "--addr" => opts.addr = flag.value()?,
            "--threads" => opts.threads = true,
            "--workers" => opts.workers = Some(flag.positive()?),
            _ => return Err(flag.unknown()),
        }
    }
    Ok(opts)
}
