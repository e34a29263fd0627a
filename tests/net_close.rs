//! Close while parked: a coroutine parked on a socket (or on a raw `Registration`) is woken
//! when another coroutine shuts the socket down (or deregisters the fd), promptly, with the
//! result std documents, and never before; and no wake-up is stale.
//!
//! Each iteration of a race uses a new socket pair and drops it at the end, so the kernel
//! hands the same fd numbers out again and again: an event or a waker left over from an
//! earlier owner of an fd number would show as a spurious wake. Per iteration:
//!
//! ```text
//!   test coroutine                          victim coroutine
//!   make a pair; note io_waits
//!   spawn the victim ---------------------> read / write_all / Registration::io
//!   wait until io_waits grew                  (would block: parks on readiness)
//!   [seeded yields]
//!   issued = true
//!   shutdown / deregister ----------------> wakes; returns; records `issued` and the time
//!   join: check the result, `issued`,
//!   the wake latency, io_spurious unchanged
//! ```
//!
//! Each test runs on a runtime of its own, so the io counters count only its coroutines, and
//! the victim is its only coroutine doing I/O while it runs: `io_waits` growing means the
//! victim's park on readiness has begun (the counter counts a park when it begins), and
//! `io_spurious` must not move at all.
//!
//! Sizes: 10,000 iterations per race (and per mode for the reader), 100,000 under
//! `WEFT_STRESS=1`. In a debug build, the reader race takes about 1.5 s per mode, the writer
//! race (which fills a socket's buffers every iteration) about 2 s.

mod support;

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::{Mode, Rng};
use weft::net::{TcpListener, TcpStream};
use weft::reactor::{Interest, Registration};
use weft::Runtime;

/// Iterations of each race in CI.
const CI_ITERATIONS: usize = 10_000;
/// Iterations of each race under `WEFT_STRESS=1`.
const FULL_ITERATIONS: usize = 100_000;
/// How soon after the shutdown a parked call must have returned.
const WAKE_LIMIT: Duration = Duration::from_millis(100);
/// How long the victim may take to park before the iteration fails: far above any scheduling
/// delay.
const PARK_DEADLINE: Duration = Duration::from_secs(10);
/// Most seeded `yield_now`s between seeing the victim parked and the shutdown, to vary where
/// the shutdown lands relative to the park's commit on the victim's worker.
const MAX_JITTER_YIELDS: u64 = 3;
/// Bytes a parked writer tries to write: far more than the shrunken socket buffers hold.
const WRITE_SIZE: usize = 1 << 20;
/// The socket buffer sizes (`SO_SNDBUF`, `SO_RCVBUF`) of the writer race, so that a few
/// tens of KiB fill them (the kernel doubles the value and applies its minimum).
const SMALL_BUFFER: libc::c_int = 4096;
/// The highest fd number a race may see. The pairs are dropped every iteration, so the
/// numbers come round again (other tests of this binary hold a few dozen fds); an fd leaked
/// per iteration would climb past this within a few hundred iterations.
const MAX_FD: RawFd = 256;

fn io_spurious(rt: &Runtime) -> u64 {
    support::sum_workers(&rt.metrics(), |w| w.io_spurious)
}

fn iterations() -> usize {
    support::sized(CI_ITERATIONS, FULL_ITERATIONS)
}

/// What a victim coroutine saw: its call's result, whether the shutdown had been issued when
/// the call returned, and when it returned.
struct Outcome<T> {
    result: io::Result<T>,
    issued: bool,
    at: Instant,
}

/// Runs `call` as the victim; returns its outcome.
fn victim<T: Send + 'static>(
    issued: &Arc<AtomicBool>,
    call: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> weft::JoinHandle<Outcome<T>> {
    let issued = Arc::clone(issued);
    weft::spawn(move || {
        let result = call();
        Outcome { result, issued: issued.load(Ordering::SeqCst), at: Instant::now() }
    })
}

/// Waits until `rt`'s io_waits passed `before` (the victim parked), then yields a seeded few
/// times.
fn wait_parked(rt: &Runtime, before: u64, rng: &mut Rng, what: &str) {
    let parked = support::wait_until(PARK_DEADLINE, || support::io_waits(rt) > before);
    assert!(
        parked,
        "{what}: the victim did not park on readiness within {PARK_DEADLINE:?}: io_waits \
         stayed at {before} (it must count a park when the park begins, not when it ends); \
         metrics: {:#?}",
        rt.metrics()
    );
    for _ in 0..rng.below(MAX_JITTER_YIELDS + 1) {
        weft::yield_now();
    }
}

/// Checks an outcome's ordering and latency, and that no wake was spurious.
fn check_wake<T>(
    outcome: &Outcome<T>,
    issued_at: Instant,
    rt: &Runtime,
    spurious_before: u64,
    what: &str,
) -> Duration {
    assert!(
        outcome.issued,
        "{what}: the parked call returned before the shutdown was issued: {:?}",
        outcome.result.as_ref().err()
    );
    let latency = outcome.at.saturating_duration_since(issued_at);
    assert!(latency < WAKE_LIMIT, "{what}: the parked call returned {latency:?} after it");
    let spurious = io_spurious(rt);
    assert_eq!(
        spurious, spurious_before,
        "{what}: io_spurious went from {spurious_before} to {spurious}: a stale or needless wake"
    );
    latency
}

/// A connected pair: (accepted end, connecting end).
fn pair(listener: &TcpListener) -> (TcpStream, TcpStream) {
    let addr = listener.local_addr().expect("local_addr");
    let client = TcpStream::connect(addr).expect("connect");
    let (server, _) = listener.accept().expect("accept");
    (server, client)
}

/// Sets an `int` socket option with `setsockopt(2)`.
fn set_int_option(fd: RawFd, level: libc::c_int, name: libc::c_int, value: libc::c_int) {
    // SAFETY: `value` is a live c_int and the length passed is its size.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "setsockopt({name}): {}", io::Error::last_os_error());
}

/// The latency figures of a race, for its report line.
#[derive(Default)]
struct Latencies(Vec<Duration>);

impl Latencies {
    fn report(mut self) -> String {
        self.0.sort();
        format!(
            "wake latency p50 {:?}, p99 {:?}, max {:?}",
            support::percentile(&self.0, 50),
            support::percentile(&self.0, 99),
            self.0.last().copied().unwrap_or_default()
        )
    }
}

fn assert_fds_reused(fds: &BTreeSet<RawFd>, what: &str) {
    let highest = fds.last().copied().unwrap_or_default();
    assert!(
        highest < MAX_FD,
        "{what}: fd numbers climbed to {highest} over the race ({} distinct): fds leak",
        fds.len()
    );
}

/// What a race keeps across its iterations: its runtime (of its own, so the io counters count
/// only its coroutines), its seeded generator, the fd numbers and the wake latencies seen.
struct Race {
    name: String,
    seed: u64,
    iterations: usize,
    rng: Rng,
    rt: Arc<Runtime>,
    done: Arc<AtomicUsize>,
    fds: BTreeSet<RawFd>,
    latencies: Latencies,
    t0: Instant,
    _wd: support::Watchdog,
}

impl Race {
    /// Arms the watchdog, draws the seed and builds a two-worker runtime in `mode`.
    fn start(name: &str, mode: Mode) -> Race {
        let wd = support::watchdog(name, support::budget(Duration::from_secs(120)));
        let seed = wd.seed();
        let rt = support::runtime(2, mode);
        wd.watch_runtime("rt", &rt);
        Race {
            name: name.to_owned(),
            seed,
            iterations: iterations(),
            rng: Rng::new(seed),
            rt,
            done: wd.counter("iterations done"),
            fds: BTreeSet::new(),
            latencies: Latencies::default(),
            t0: Instant::now(),
            _wd: wd,
        }
    }

    /// Runs `iteration(self, i)` for every iteration, in a coroutine of the race's runtime.
    fn run(&mut self, mut iteration: impl FnMut(&mut Race, usize) + Send) {
        let rt = Arc::clone(&self.rt);
        rt.block_on(|| {
            for i in 0..self.iterations {
                iteration(self, i);
                self.done.fetch_add(1, Ordering::SeqCst);
            }
        });
    }

    /// One wake-up: runs `call` as the victim (the `who`), waits until it parked, issues the
    /// wake with `trigger`, joins the victim and checks the wake ([`check_wake`]); returns the
    /// victim's outcome for the race's own check.
    fn wake_parked<T: Send + 'static>(
        &mut self,
        what: &str,
        who: &str,
        call: impl FnOnce() -> io::Result<T> + Send + 'static,
        trigger: impl FnOnce(),
    ) -> Outcome<T> {
        let issued = Arc::new(AtomicBool::new(false));
        let (waits, spurious) = (support::io_waits(&self.rt), io_spurious(&self.rt));
        let handle = victim(&issued, call);
        wait_parked(&self.rt, waits, &mut self.rng, what);
        issued.store(true, Ordering::SeqCst);
        let issued_at = Instant::now();
        trigger();
        let outcome = handle.join().unwrap_or_else(|_| panic!("{what}: the {who} panicked"));
        self.latencies.0.push(check_wake(&outcome, issued_at, &self.rt, spurious, what));
        outcome
    }

    /// After the last iteration: the fd numbers came round, no wake was spurious; prints the
    /// report line with `summary`.
    fn end(self, summary: &str) {
        assert_fds_reused(&self.fds, &self.name);
        let spurious = io_spurious(&self.rt);
        assert_eq!(spurious, 0, "io_spurious over the whole run (WEFT_SEED={})", self.seed);
        println!(
            "[{}] {} iterations in {:?}; {summary}; {}; fds used {:?}",
            self.name,
            self.iterations,
            self.t0.elapsed(),
            self.latencies.report(),
            self.fds
        );
    }
}

// ---------------------------------------------------------------------------------------------
// A parked read, then shutdown(Read) or shutdown(Both)
// ---------------------------------------------------------------------------------------------

/// The reader race: either end of a fresh pair reads (nothing is ever written), parks, and
/// the test coroutine shuts that end down (`Read` or `Both`, seeded). std documents that "all
/// currently blocked and future reads will return `Ok(0)`"; an error is accepted too. Data
/// is never returned, the read never returns before the shutdown, and within `WAKE_LIMIT`.
fn stress_shutdown_wakes_parked_reader(name: &str, mode: Mode) {
    let mut race = Race::start(name, mode);
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let (mut eofs, mut errors) = (0usize, 0usize);
    race.run(|race, i| {
        let (server, client) = pair(&listener);
        let read_accepted = race.rng.percent(50);
        let how = if race.rng.percent(50) { Shutdown::Read } else { Shutdown::Both };
        let (reader, other) = if read_accepted { (server, client) } else { (client, server) };
        let what = format!(
            "iteration {i} (WEFT_SEED={}, {mode:?}, {} end reads, shutdown({how:?}))",
            race.seed,
            if read_accepted { "accepted" } else { "connecting" }
        );
        race.fds.insert(reader.as_raw_fd());
        let reader = Arc::new(reader);
        let call = {
            let reader = Arc::clone(&reader);
            move || {
                let mut buf = [0u8; 64];
                (&*reader).read(&mut buf)
            }
        };
        let outcome = race.wake_parked(&what, "reader", call, || {
            reader.shutdown(how).unwrap_or_else(|e| panic!("{what}: shutdown: {e}"));
        });
        match outcome.result {
            Ok(0) => eofs += 1,
            Ok(n) => panic!("{what}: read returned {n} bytes, and none were written"),
            Err(_) => errors += 1,
        }
        drop((reader, other));
    });
    let io_waits = support::io_waits(&race.rt);
    race.end(&format!("{eofs} Ok(0), {errors} errors; io_waits {io_waits}"));
}

#[test]
fn stress_shutdown_wakes_parked_reader_pinned() {
    stress_shutdown_wakes_parked_reader("stress_shutdown_wakes_parked_reader_pinned", Mode::Pinned);
}

#[test]
fn stress_shutdown_wakes_parked_reader_migrating() {
    stress_shutdown_wakes_parked_reader(
        "stress_shutdown_wakes_parked_reader_migrating",
        Mode::Migrating,
    );
}

// ---------------------------------------------------------------------------------------------
// A parked write_all, then shutdown(Write)
// ---------------------------------------------------------------------------------------------

/// The writer race: the connecting end of a fresh pair, with small socket buffers, writes
/// `WRITE_SIZE` bytes with `write_all` to a peer that never reads, parks on the full buffer,
/// and the test coroutine calls `shutdown(Write)` on it: `write_all` returns `BrokenPipe`,
/// not before the shutdown, and within `WAKE_LIMIT`.
#[test]
fn stress_shutdown_write_wakes_parked_writer() {
    let mut race = Race::start("stress_shutdown_write_wakes_parked_writer", Mode::Pinned);
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let data: Arc<[u8]> = vec![0x5A; WRITE_SIZE].into();
    race.run(|race, i| {
        let what = format!("iteration {i} (WEFT_SEED={})", race.seed);
        let (server, client) = pair(&listener);
        set_int_option(client.as_raw_fd(), libc::SOL_SOCKET, libc::SO_SNDBUF, SMALL_BUFFER);
        set_int_option(server.as_raw_fd(), libc::SOL_SOCKET, libc::SO_RCVBUF, SMALL_BUFFER);
        race.fds.insert(client.as_raw_fd());
        let writer = Arc::new(client);
        let call = {
            let (writer, data) = (Arc::clone(&writer), Arc::clone(&data));
            move || (&*writer).write_all(&data)
        };
        let outcome = race.wake_parked(&what, "writer", call, || {
            writer.shutdown(Shutdown::Write).unwrap_or_else(|e| panic!("{what}: shutdown: {e}"));
        });
        match &outcome.result {
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {}
            Err(e) => panic!("{what}: write_all failed with {:?} ({e}), not BrokenPipe", e.kind()),
            Ok(()) => {
                panic!("{what}: write_all of {WRITE_SIZE} B to a peer that never reads succeeded")
            }
        }
        drop((writer, server));
    });
    race.end("every write_all BrokenPipe");
}

// ---------------------------------------------------------------------------------------------
// A parked Registration::io on a pipe, then deregister()
// ---------------------------------------------------------------------------------------------

/// A non-blocking pipe: (read end, write end).
fn pipe() -> (File, File) {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two fds into the array we pass.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) };
    assert_eq!(rc, 0, "pipe2: {}", io::Error::last_os_error());
    // SAFETY: pipe2 succeeded, so both fds are open and owned by nobody else.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    (File::from(read), File::from(write))
}

/// The registration race: a coroutine reads an empty pipe through `Registration::io` and
/// parks; the test coroutine calls `deregister()`: the read returns an error, not before the
/// deregistration and within `WAKE_LIMIT`; a later `io` on the deregistered registration fails
/// at once too (the pipe is still empty, so the call would otherwise wait).
#[test]
fn stress_deregister_wakes_parked_registration() {
    let mut race = Race::start("stress_deregister_wakes_parked_registration", Mode::Pinned);
    let mut kinds = BTreeSet::new();
    race.run(|race, i| {
        let what = format!("iteration {i} (WEFT_SEED={})", race.seed);
        // Fields drop in declaration order: the registration before the fds, as its docs ask.
        let reg = Arc::new(Registration::new());
        let (read_end, write_end) = pipe();
        let read_end = Arc::new(read_end);
        race.fds.insert(read_end.as_raw_fd());
        let call = {
            let (reg, read_end) = (Arc::clone(&reg), Arc::clone(&read_end));
            move || {
                let mut buf = [0u8; 64];
                let fd = read_end.as_raw_fd();
                reg.io(fd, Interest::Readable, || None, || (&*read_end).read(&mut buf))
            }
        };
        let outcome = race.wake_parked(&what, "reader", call, || reg.deregister());
        match &outcome.result {
            Err(e) => {
                kinds.insert(format!("{:?}", e.kind()));
            }
            Ok(n) => panic!("{what}: the read returned Ok({n}) after deregister()"),
        }
        let fd = read_end.as_raw_fd();
        let again = reg.io(
            fd,
            Interest::Readable,
            || Some(PARK_DEADLINE),
            || (&*read_end).read(&mut [0u8; 8]),
        );
        match again {
            Err(e) if e.kind() != io::ErrorKind::TimedOut => {}
            other => panic!("{what}: io after deregister() gave {other:?}, not an error"),
        }
        drop(reg);
        drop((read_end, write_end));
    });
    race.end(&format!("errors {kinds:?}"));
}
