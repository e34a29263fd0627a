//! C10K: a weft echo server holds 10,000 concurrent connections from a weft client in another
//! process, and every connection completes its exchange.
//!
//! 1. The parent binds a listener on loopback and runs an echo server on a weft runtime: an
//!    acceptor coroutine, and one handler coroutine per connection that echoes until
//!    end-of-file. It counts connections accepted, open now and open at most.
//! 2. It re-runs this test binary as the client (`support::run_child`), passing the server's
//!    address, the seed and the connection count in the environment: one process may hold at
//!    most 20,000 fds here, so 10,000 connections need a process per side.
//! 3. The client spawns one coroutine per connection. Each connects, then waits at a barrier
//!    until all have connected: the last to arrive unparks the others (`weft::current()`
//!    handles). Only then does each exchange `MESSAGES` seeded messages in lock-step and check
//!    every echo byte for byte. Each coroutine returns its stream, so all connections stay
//!    open until every exchange is done, and the server sees all of them open at once.
//! 4. The client prints its counts on stdout (`C10K_RESULT key=value ...`) and exits; the
//!    parent asserts them, waits until every handler has seen end-of-file, and checks the
//!    server's counts and that its fds return to the baseline once the runtime is dropped.
//!
//! Sizes: 10,000 connections; 16,000 under `WEFT_STRESS=1`.

mod support;

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use support::{Mode, Rng};
use weft::net::{TcpListener, TcpStream};

const TEST: &str = "stress_c10k_connections";
/// The child's scenario name.
const SCENARIO: &str = "c10k-client";
/// Environment of the child: the server's address, and how many connections to open.
const ADDR_ENV: &str = "WEFT_C10K_ADDR";
const CONNECTIONS_ENV: &str = "WEFT_C10K_CONNECTIONS";
/// The line prefix of the child's report.
const RESULT: &str = "C10K_RESULT ";
/// Connections in CI, and under `WEFT_STRESS=1` (each side holds one fd per connection, under
/// the limit of 20,000).
const CONNECTIONS: usize = 10_000;
const FULL_CONNECTIONS: usize = 16_000;
/// Messages each connection exchanges after the barrier.
const MESSAGES: usize = 4;
/// The largest message, in bytes.
const MAX_MESSAGE: usize = 2048;
/// Workers on each side.
const WORKERS: usize = 2;
/// How long the child may run before it is killed, and its own watchdog's budget (shorter,
/// so that a hang in the child prints the child's dump first).
const CHILD_TIMEOUT: Duration = Duration::from_secs(150);
const CHILD_BUDGET: Duration = Duration::from_secs(120);
/// How long the server's handlers get to see end-of-file after the client exited.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// At most this many error messages are kept for a report.
const KEPT_ERRORS: usize = 10;

fn keep(errors: &Mutex<Vec<String>>, text: String) {
    let mut errors = errors.lock().unwrap_or_else(|e| e.into_inner());
    if errors.len() < KEPT_ERRORS {
        errors.push(text);
    }
}

// ---------------------------------------------------------------------------------------------
// The client (child process)
// ---------------------------------------------------------------------------------------------

/// Everyone waits until the last of `n` has arrived.
struct Barrier {
    n: usize,
    arrived: AtomicUsize,
    released: AtomicBool,
    /// When the last one arrived.
    released_at: OnceLock<Instant>,
    waiting: Mutex<Vec<weft::Coroutine>>,
}

impl Barrier {
    fn new(n: usize) -> Barrier {
        Barrier {
            n,
            arrived: AtomicUsize::new(0),
            released: AtomicBool::new(false),
            released_at: OnceLock::new(),
            waiting: Mutex::new(Vec::with_capacity(n)),
        }
    }

    /// Arrives and waits for the others.
    ///
    /// No wake-up is lost: a coroutine publishes its handle before it counts itself, so the
    /// one whose count completes `n` finds every other handle in `waiting`. An `unpark` that
    /// comes before the `park` leaves a token that the `park` takes at once; `released` is
    /// re-checked after every `park`.
    fn wait(&self) {
        let me = weft::current();
        self.waiting.lock().unwrap_or_else(|e| e.into_inner()).push(me.clone());
        if self.arrived.fetch_add(1, Ordering::SeqCst) + 1 == self.n {
            let _ = self.released_at.set(Instant::now());
            self.released.store(true, Ordering::SeqCst);
            let all = std::mem::take(&mut *self.waiting.lock().unwrap_or_else(|e| e.into_inner()));
            for other in all.iter().filter(|c| c.id() != me.id()) {
                other.unpark();
            }
        } else {
            while !self.released.load(Ordering::SeqCst) {
                weft::park();
            }
        }
    }
}

/// One connection's exchange after the barrier: `MESSAGES` seeded messages, each echo checked
/// byte for byte. Returns the bytes sent.
fn exchange(stream: &TcpStream, mut rng: Rng) -> Result<u64, String> {
    let mut stream = stream;
    let (mut out, mut back) = (vec![0u8; MAX_MESSAGE], vec![0u8; MAX_MESSAGE]);
    let mut sent = 0;
    for m in 0..MESSAGES {
        let len = rng.range(1, MAX_MESSAGE as u64) as usize;
        for byte in &mut out[..len] {
            *byte = rng.next_u64() as u8;
        }
        stream.write_all(&out[..len]).map_err(|e| format!("message {m}: write: {e}"))?;
        stream.read_exact(&mut back[..len]).map_err(|e| format!("message {m}: read: {e}"))?;
        if out[..len] != back[..len] {
            let at = (0..len).find(|&i| out[i] != back[i]).unwrap_or(len);
            return Err(format!("message {m} ({len} B): echo differs from byte {at}"));
        }
        sent += len as u64;
    }
    Ok(sent)
}

/// The child: opens every connection, waits at the barrier, exchanges, reports.
fn client() {
    let wd = support::watchdog(&format!("{TEST} (child)"), support::budget(CHILD_BUDGET));
    let mut rng = Rng::new(wd.seed());
    let addr: SocketAddr = std::env::var(ADDR_ENV)
        .expect("the server's address in the environment")
        .parse()
        .expect("a socket address");
    let n: usize = std::env::var(CONNECTIONS_ENV)
        .expect("the connection count in the environment")
        .parse()
        .expect("a count");
    let rt = Arc::new(support::builder(WORKERS, Mode::Pinned).build().expect("build a runtime"));
    wd.watch_runtime("client rt", &rt);
    let barrier = Arc::new(Barrier::new(n));
    let connected = wd.counter("connected");
    let completed = wd.counter("exchanges completed");
    let bytes = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(Mutex::new(Vec::new()));
    let failed = Arc::new(AtomicUsize::new(0));
    wd.note("connecting");
    let t0 = Instant::now();
    let streams: Vec<Option<TcpStream>> = rt.block_on(|| {
        let handles: Vec<_> = (0..n)
            .map(|i| {
                let rng = rng.fork();
                let (barrier, connected, completed) =
                    (Arc::clone(&barrier), Arc::clone(&connected), Arc::clone(&completed));
                let (bytes, errors, failed) =
                    (Arc::clone(&bytes), Arc::clone(&errors), Arc::clone(&failed));
                weft::spawn(move || {
                    let stream = TcpStream::connect(addr);
                    if stream.is_ok() {
                        connected.fetch_add(1, Ordering::SeqCst);
                    }
                    // A failed connect arrives too, or the barrier would never open.
                    barrier.wait();
                    let result = stream
                        .map_err(|e| format!("connect: {:?}: {e}", e.kind()))
                        .and_then(|s| exchange(&s, rng).map(|sent| (s, sent)));
                    match result {
                        Ok((stream, sent)) => {
                            bytes.fetch_add(sent, Ordering::SeqCst);
                            completed.fetch_add(1, Ordering::SeqCst);
                            Some(stream)
                        }
                        Err(text) => {
                            failed.fetch_add(1, Ordering::SeqCst);
                            keep(&errors, format!("connection {i}: {text}"));
                            None
                        }
                    }
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or(None)).collect()
    });
    let took = t0.elapsed();
    let connect_phase = barrier.released_at.get().map(|t| t.duration_since(t0));
    let open = streams.iter().filter(|s| s.is_some()).count();
    for error in errors.lock().unwrap_or_else(|e| e.into_inner()).iter() {
        println!("C10K_ERROR {error}");
    }
    println!(
        "{RESULT}connected={} completed={} failed={} open_at_end={open} bytes={} \
         connect_ms={} total_ms={}",
        connected.load(Ordering::SeqCst),
        completed.load(Ordering::SeqCst),
        failed.load(Ordering::SeqCst),
        bytes.load(Ordering::SeqCst),
        connect_phase.map_or(u128::MAX, |d| d.as_millis()),
        took.as_millis(),
    );
    drop(streams);
    drop(rt);
}

// ---------------------------------------------------------------------------------------------
// The server (parent process)
// ---------------------------------------------------------------------------------------------

#[derive(Default)]
struct Server {
    accepted: AtomicUsize,
    open: AtomicUsize,
    peak: AtomicUsize,
    eofs: AtomicUsize,
    failed: AtomicUsize,
    bytes: AtomicU64,
    errors: Mutex<Vec<String>>,
}

/// Echoes until end-of-file.
fn echo(stream: TcpStream, server: &Server) -> io::Result<()> {
    let mut stream = &stream;
    let mut buf = vec![0u8; 4096];
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        stream.write_all(&buf[..n])?;
        server.bytes.fetch_add(n as u64, Ordering::SeqCst);
    }
}

#[test]
fn stress_c10k_connections() {
    if support::is_child(SCENARIO) {
        client();
        return;
    }
    let n = support::sized(CONNECTIONS, FULL_CONNECTIONS);
    let wd = support::watchdog(TEST, support::budget(Duration::from_secs(180)));
    let seed = wd.seed();
    let fds0 = support::open_fds();
    let rt = Arc::new(support::builder(WORKERS, Mode::Pinned).build().expect("build a runtime"));
    wd.watch_runtime("server rt", &rt);
    let server = Arc::new(Server::default());
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the server");
    let addr = listener.local_addr().expect("local_addr");
    let acceptor = {
        let server = Arc::clone(&server);
        rt.spawn(move || {
            for _ in 0..n {
                let (stream, _) = match listener.accept() {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        keep(&server.errors, format!("accept: {e}"));
                        return;
                    }
                };
                server.accepted.fetch_add(1, Ordering::SeqCst);
                let open = server.open.fetch_add(1, Ordering::SeqCst) + 1;
                server.peak.fetch_max(open, Ordering::SeqCst);
                let server = Arc::clone(&server);
                // Detached: the handler counts its own end.
                let _ = weft::spawn(move || {
                    match echo(stream, &server) {
                        Ok(()) => server.eofs.fetch_add(1, Ordering::SeqCst),
                        Err(e) => {
                            keep(&server.errors, format!("handler: {e}"));
                            server.failed.fetch_add(1, Ordering::SeqCst)
                        }
                    };
                    server.open.fetch_sub(1, Ordering::SeqCst);
                });
            }
        })
    };

    wd.note(format!("running the client child with {n} connections"));
    let t0 = Instant::now();
    let out = support::run_child(
        TEST,
        SCENARIO,
        &[
            (ADDR_ENV, &addr.to_string()),
            (CONNECTIONS_ENV, &n.to_string()),
            ("WEFT_SEED", &seed.to_string()),
        ],
        CHILD_TIMEOUT,
    );
    let took = t0.elapsed();
    assert!(out.status.success(), "the client failed (WEFT_SEED={seed}):\n{out}");
    let report = support::report_fields(&out.stdout, RESULT)
        .unwrap_or_else(|| panic!("no {RESULT:?} line from the client:\n{out}"));
    let field = |key: &str| report.get(key).copied().unwrap_or_else(|| panic!("no {key}: {out}"));
    let n128 = n as u128;
    assert_eq!(field("connected"), n128, "client connections (WEFT_SEED={seed}):\n{out}");
    assert_eq!(field("failed"), 0, "client connections that failed (WEFT_SEED={seed}):\n{out}");
    assert_eq!(field("completed"), n128, "exchanges completed (WEFT_SEED={seed}):\n{out}");
    assert_eq!(field("open_at_end"), n128, "connections open at the end:\n{out}");

    wd.note("waiting for every handler to see end-of-file");
    let drained = support::wait_until(DRAIN_TIMEOUT, || {
        server.eofs.load(Ordering::SeqCst) + server.failed.load(Ordering::SeqCst) >= n
    });
    let errors = server.errors.lock().unwrap_or_else(|e| e.into_inner()).clone();
    assert!(
        drained,
        "{} of {n} handlers ended within {DRAIN_TIMEOUT:?} of the client's exit; errors: {errors:?}",
        server.eofs.load(Ordering::SeqCst) + server.failed.load(Ordering::SeqCst)
    );
    assert_eq!(server.accepted.load(Ordering::SeqCst), n, "accepted; errors: {errors:?}");
    assert_eq!(server.failed.load(Ordering::SeqCst), 0, "handlers that failed: {errors:?}");
    assert_eq!(server.peak.load(Ordering::SeqCst), n, "connections the server held open at once");
    assert_eq!(
        u128::from(server.bytes.load(Ordering::SeqCst)),
        field("bytes"),
        "bytes echoed by the server, and sent and checked by the client"
    );
    acceptor.join().expect("the acceptor");
    let metrics = rt.metrics();
    drop(rt);
    if let Err(leak) = support::fds_return_to(&fds0, Duration::from_secs(10)) {
        panic!("after the server runtime was dropped: {leak}");
    }
    println!(
        "[{TEST}] {n} connections: client connect phase {} ms, client total {} ms, whole run \
         {took:?}; server io_waits {}",
        field("connect_ms"),
        field("total_ms"),
        support::sum_workers(&metrics, |w| w.io_waits)
    );
}
