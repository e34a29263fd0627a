//! Regression tests for the reactor and `weft::net`, each named after the bug it pins. Each
//! bug was found by review, with a reproducer, and fixed:
//!
//! 1. a wait whose snapshot was taken before its `Registration` had a slot parked on a tick
//!    read after the syscall, so an edge that another caller's first registration latched in
//!    between was lost;
//! 2. `into_std` (and `into_raw_fd`, `From<_> for OwnedFd`) of a `try_clone` cleared
//!    `O_NONBLOCK` on the socket the other weft handles share, so their calls blocked their
//!    worker thread;
//! 3. a worker busy with long slices looked at its epoll only every 64 switches, so an fd
//!    registered there woke a reader on an idle worker hundreds of milliseconds late;
//! 4. `UnixStream::connect` retrying on a full backlog slept with `weft::sleep`, which a
//!    shutdown ends at once without ending the loop, so dropping the runtime hung;
//! 5. a second `Registration` of an fd on the same epoll silently took over the first one's
//!    events;
//! 6. in migration mode, a coroutine parked in a write, woken by the peer's reset and resumed
//!    on the other worker, read that worker's stale `errno` (`EAGAIN`) instead of its send's
//!    `ECONNRESET`, and parked for good: the address of the thread-local `errno` had been
//!    hoisted out of `Registration::io`'s loop, across the park.
//!
//! The coroutines are placed with `Builder::worker`, and the test thread drives them, reading
//! flags and `Runtime::metrics`: no worker stall can hold it up.

mod support;

use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use support::{wait_until, watchdog, Mode};
use weft::net::{TcpListener, TcpStream, UnixStream};
use weft::reactor::{Interest, Registration};
use weft::Runtime;

/// Watchdog budget of each test; each takes well under a second when the bug is fixed.
const BUDGET: Duration = Duration::from_secs(30);
/// How long a step that needs microseconds (a coroutine starting or parking, a worker taking
/// an event) may take before the test fails: far above any scheduling delay.
const STEP_DEADLINE: Duration = Duration::from_secs(10);

/// Spawns `f` on worker `index` of `rt`.
fn spawn_on<T: Send + 'static>(
    rt: &Runtime,
    index: usize,
    f: impl FnOnce() -> T + Send + 'static,
) -> weft::JoinHandle<T> {
    rt.block_on(|| weft::Builder::new().worker(index).spawn(f)).expect("spawn a coroutine")
}

/// Worker `index`'s counters, now.
fn worker_metrics(rt: &Runtime, index: usize) -> weft::WorkerMetrics {
    rt.metrics().workers[index].clone()
}

/// Bytes waiting unread in `fd`'s receive queue (`FIONREAD`).
fn unread_bytes(fd: RawFd) -> libc::c_int {
    let mut pending: libc::c_int = 0;
    // SAFETY: FIONREAD writes one c_int through the pointer, which points at a live c_int.
    let rc = unsafe { libc::ioctl(fd, libc::FIONREAD, &mut pending) };
    assert_eq!(rc, 0, "ioctl(FIONREAD): {}", io::Error::last_os_error());
    pending
}

/// An operation for `Registration::io` that would block on its first call, so the caller
/// waits (and registers the fd, at its registration's first wait), and on later calls succeeds
/// with the number of calls so far.
fn blocks_once() -> impl FnMut() -> io::Result<usize> {
    let mut calls = 0;
    move || {
        calls += 1;
        if calls == 1 {
            Err(io::ErrorKind::WouldBlock.into())
        } else {
            Ok(calls)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Lost wake-up of a first wait
// ---------------------------------------------------------------------------------------------

/// How long the reader may take to return once its worker is released: it has a byte waiting
/// and needs one more `read`.
const READ_LIMIT: Duration = Duration::from_secs(1);

/// Sets its flag when dropped, so that a worker thread stalled on the flag is released when
/// the test fails before it releases it, and the runtime's drop can join the worker.
struct SetOnDrop(Arc<AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, SeqCst);
    }
}

/// Two callers share a `Registration`. The reader (worker 0) makes its first `read` before the
/// registration has a slot, so it has no tick to compare against. Before it reaches its wait,
/// the other caller (worker 1) makes the registration's first wait, which registers the fd on
/// worker 1's epoll; a byte then arrives, and its edge is latched as a tick. The reader's wait
/// took the tick as it found it, after that edge, and parked with the byte unread: nothing
/// would wake it until another byte came. Fixed: a wait without a snapshot never parks; it
/// retries the call.
#[test]
fn first_wait_racing_another_callers_registration_is_not_lost() {
    let dog = watchdog("first_wait_racing_another_callers_registration_is_not_lost", BUDGET);
    let rt = support::runtime(2, Mode::Pinned);
    dog.watch_runtime("rt", &rt);
    let (a, b) = std::os::unix::net::UnixStream::pair().expect("socketpair");
    b.set_nonblocking(true).expect("set_nonblocking");
    let (a, b) = (Arc::new(a), Arc::new(b));
    let fd = b.as_raw_fd();
    let reg = Arc::new(Registration::new());
    let syscalled = Arc::new(AtomicBool::new(false));
    let go = Arc::new(AtomicBool::new(false));
    let release = SetOnDrop(Arc::clone(&go));
    let done = Arc::new(AtomicBool::new(false));

    // The other caller, once the reader's syscall has found nothing.
    let registrar = spawn_on(&rt, 1, {
        let (a, reg, syscalled) = (Arc::clone(&a), Arc::clone(&reg), Arc::clone(&syscalled));
        move || -> io::Result<()> {
            let reader_waits = wait_until(STEP_DEADLINE, || syscalled.load(SeqCst));
            assert!(reader_waits, "the reader's first read did not happen");
            // The registration's first wait: it allocates the slot and registers the fd on
            // this worker's epoll.
            assert_eq!(reg.io(fd, Interest::Writable, || None, blocks_once())?, 2);
            // The edge: a byte arrives after the reader's syscall. This wait's snapshot comes
            // before the write, so it returns once the edge is latched as a tick, whoever
            // takes it from the epoll (this worker, or the monitor).
            let mut wrote = false;
            let write_then_wait = || {
                if std::mem::replace(&mut wrote, true) {
                    return Ok(());
                }
                (&*a).write_all(b"x")?;
                Err(io::ErrorKind::WouldBlock.into())
            };
            reg.io(fd, Interest::Readable, || None, write_then_wait)
        }
    });
    let reader = spawn_on(&rt, 0, {
        let (b, reg, done) = (Arc::clone(&b), Arc::clone(&reg), Arc::clone(&done));
        let (syscalled, go) = (Arc::clone(&syscalled), Arc::clone(&go));
        move || {
            let mut buf = [0u8; 8];
            let mut first = true;
            let read = || {
                let res = (&*b).read(&mut buf);
                if std::mem::take(&mut first) {
                    assert!(
                        matches!(&res, Err(e) if e.kind() == io::ErrorKind::WouldBlock),
                        "the first read found {res:?}, not an empty socket"
                    );
                    syscalled.store(true, SeqCst);
                    // A deliberate stall of worker 0's thread: it holds the reader between its
                    // syscall and its wait, the window a preemption of the thread opens in
                    // production, until the other caller has registered the fd and the edge
                    // is latched. A coroutine cannot be held there by parking, since this
                    // closure runs inside `Registration::io`.
                    while !go.load(SeqCst) {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
                res
            };
            let res = reg.io(fd, Interest::Readable, || None, read);
            done.store(true, SeqCst);
            res.map(|n| buf[..n].to_vec())
        }
    });

    dog.note("joining the registrar");
    registrar.join().expect("the registrar panicked").expect("the registrar's waits");
    dog.note("reader released");
    drop(release);
    let returned = wait_until(READ_LIMIT, || done.load(SeqCst));
    let unread = if returned { 0 } else { unread_bytes(fd) };
    if !returned {
        // A new edge frees the lost reader, for a clean end.
        (&*a).write_all(b"y").expect("write a second byte");
    }
    dog.note(format!("joining the reader (returned by itself: {returned})"));
    let read = reader.join().expect("the reader panicked");
    assert!(
        returned,
        "the reader parked with {unread} byte(s) unread for {READ_LIMIT:?}: its wait took the \
         tick after the edge latched between the reader's syscall and its wait (lost \
         wake-up); a second byte freed it, and it read {read:?}"
    );
    assert_eq!(read.expect("the reader's read"), b"x");
}

// ---------------------------------------------------------------------------------------------
// 2. into_std of a clone
// ---------------------------------------------------------------------------------------------

/// Ways a weft handle is given back to std.
type GiveBack = fn(TcpStream) -> OwnedFd;

/// `O_NONBLOCK` belongs to the open socket, which `try_clone` shares. Giving a clone back to
/// std (`into_std`, `into_raw_fd`, `From<_> for OwnedFd`) restored blocking mode on it while
/// the original weft handle lived, so the original's `read` blocked its worker thread in
/// `recv(2)`, and no other coroutine of that worker ran. Fixed: only the last weft handle of a
/// clone family restores blocking mode; a dropped clone leaves the family too.
#[test]
fn into_std_of_a_clone_keeps_the_other_handles_nonblocking() {
    let _dog = watchdog("into_std_of_a_clone_keeps_the_other_handles_nonblocking", BUDGET);
    // Declared before the client, so it drops after it: a read that blocked the worker ends
    // at the client's close, and the runtime's drop can join the worker.
    let rt = support::runtime(1, Mode::Pinned);
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("local_addr");
    let mut client = std::net::TcpStream::connect(addr).expect("connect");
    let (server, _) = listener.accept().expect("accept");
    let fd = server.as_raw_fd();
    assert!(support::is_nonblocking(fd), "a weft socket is in non-blocking mode");

    let give_backs: [(&str, GiveBack); 3] = [
        ("into_std", |s| OwnedFd::from(s.into_std().expect("into_std"))),
        // SAFETY: into_raw_fd hands over the ownership of an open fd, taken here.
        ("into_raw_fd", |s| unsafe { OwnedFd::from_raw_fd(s.into_raw_fd()) }),
        ("OwnedFd::from", OwnedFd::from),
    ];
    for (how, give_back) in give_backs {
        let given = give_back(server.try_clone().expect("try_clone"));
        assert!(
            support::is_nonblocking(fd),
            "{how} of a try_clone cleared O_NONBLOCK on the socket the original weft handle \
             shares: the original's calls now block their worker thread"
        );
        drop(given);
    }

    // So a read through the original parks its coroutine, and the worker runs others.
    let reader = rt.spawn(move || {
        let mut buf = [0u8; 4];
        (&server).read_exact(&mut buf).map(|()| (buf, server))
    });
    let parked = wait_until(STEP_DEADLINE, || worker_metrics(&rt, 0).io_waits >= 1);
    assert!(parked, "the read did not park its coroutine: {:?}", rt.metrics());
    let ran = Arc::new(AtomicBool::new(false));
    let other = rt.spawn({
        let ran = Arc::clone(&ran);
        move || ran.store(true, SeqCst)
    });
    let other_ran = wait_until(STEP_DEADLINE, || ran.load(SeqCst));
    assert!(other_ran, "no other coroutine ran on the reader's worker while the reader waited");
    other.join().expect("the other coroutine panicked");
    client.write_all(b"ping").expect("client write");
    let (buf, server) = reader.join().expect("the reader panicked").expect("read");
    assert_eq!(&buf, b"ping");

    // The last weft handle given back, after its clone was dropped, restores blocking mode,
    // which std's handle expects.
    drop(server.try_clone().expect("try_clone"));
    let mut server = server.into_std().expect("into_std");
    assert!(
        !support::is_nonblocking(server.as_raw_fd()),
        "into_std of the last weft handle (its clone dropped) left the socket non-blocking"
    );
    client.write_all(b"pong").expect("client write");
    let mut buf = [0u8; 4];
    server.read_exact(&mut buf).expect("a blocking std read");
    assert_eq!(&buf, b"pong");
}

// ---------------------------------------------------------------------------------------------
// 3. The epoll of a busy worker
// ---------------------------------------------------------------------------------------------

/// What the busy coroutine computes between yields: under the monitor's 10 ms stall
/// threshold, so the busy worker does not look stalled, and long enough that the 64 switches
/// between its own looks at its epoll take 384 ms.
const BUSY_SLICE: Duration = Duration::from_millis(6);
/// How soon after a write the reader must have woken: the monitor serves an epoll that no one
/// has polled for 10 ms, every 5 ms; the rest is room for a loaded CI machine, and the limit
/// stays far below the 64 slices between the busy worker's own looks.
const WAKE_LIMIT: Duration = Duration::from_millis(150);
/// Bytes the reader reads: one to line the writes up with the busy worker's looks at its
/// epoll (in the buggy code), then the measured ones.
const ROUNDS: usize = 4;

/// An fd is registered on the epoll of the worker where it first waits. When that worker then
/// ran coroutines with long slices, it looked at its epoll only every 64 switches, and the
/// monitor served its epoll only when one coroutine ran 10 ms without a switch: a reader of
/// the fd on an idle worker woke up to 64 slices after the data came. Fixed: the monitor serves
/// the epoll of a busy worker that has not polled it for 10 ms.
///
/// In the buggy code a wake comes at one of the busy worker's looks, so after the first one
/// each write lands just after a look and waits for nearly all the next 64 slices. The test
/// checks the median latency of those later rounds, so that one wake delayed by the OS
/// scheduler of a loaded machine does not fail it.
#[test]
fn busy_worker_epoll_is_served_by_the_monitor() {
    let _dog = watchdog("busy_worker_epoll_is_served_by_the_monitor", BUDGET);
    let rt = support::runtime(2, Mode::Pinned);
    let (a, b) = UnixStream::pair().expect("socketpair");
    let b = Arc::new(b);

    // A read that times out on worker 0: its wait registers b on worker 0's epoll.
    let timed_out = spawn_on(&rt, 0, {
        let b = Arc::clone(&b);
        move || {
            b.set_read_timeout(Some(Duration::from_millis(1)))?;
            let res = (&*b).read(&mut [0u8; 1]);
            b.set_read_timeout(None)?;
            res
        }
    });
    let res = timed_out.join().expect("the first reader panicked");
    assert_eq!(res.map_err(|e| e.kind()), Err(io::ErrorKind::TimedOut));

    // Worker 0 gets busy: one coroutine computing slices and yielding between them.
    let stop = Arc::new(AtomicBool::new(false));
    let started = Arc::new(AtomicBool::new(false));
    let busy = spawn_on(&rt, 0, {
        let (stop, started) = (Arc::clone(&stop), Arc::clone(&started));
        move || {
            started.store(true, SeqCst);
            let mut slices = 0u64;
            while !stop.load(SeqCst) {
                let slice = Instant::now();
                while slice.elapsed() < BUSY_SLICE {
                    std::hint::spin_loop();
                }
                slices += 1;
                weft::yield_now();
            }
            slices
        }
    });
    assert!(wait_until(STEP_DEADLINE, || started.load(SeqCst)), "the busy coroutine did not start");

    // The reader lives on worker 1, which is idle; it reports each byte and when it came.
    let (tx, rx) = mpsc::channel();
    let reader = spawn_on(&rt, 1, {
        let b = Arc::clone(&b);
        move || -> io::Result<()> {
            for _ in 0..ROUNDS {
                let mut byte = [0u8; 1];
                (&*b).read_exact(&mut byte)?;
                tx.send((byte[0], Instant::now())).expect("the test hung up");
            }
            Ok(())
        }
    });
    let mut latencies = Vec::new();
    for round in 0..ROUNDS {
        let parked = wait_until(STEP_DEADLINE, || worker_metrics(&rt, 1).io_waits > round as u64);
        assert!(parked, "round {round}: the reader did not park: {:?}", rt.metrics());
        let byte = b'0' + round as u8;
        let sent = Instant::now();
        (&a).write_all(&[byte]).expect("write");
        let (got, at) = rx.recv_timeout(STEP_DEADLINE).expect("the reader did not wake");
        assert_eq!(got, byte);
        latencies.push(at.saturating_duration_since(sent));
    }
    stop.store(true, SeqCst);
    let slices = busy.join().expect("the busy coroutine panicked");
    reader.join().expect("the reader panicked").expect("read");
    let mut measured = latencies[1..].to_vec();
    measured.sort();
    let median = measured[measured.len() / 2];
    assert!(
        median < WAKE_LIMIT,
        "reads on idle worker 1 woke {latencies:?} after their writes (median of the last {}: \
         {median:?}, limit {WAKE_LIMIT:?}); the fd is on the epoll of worker 0, which ran \
         {slices} slices of {BUSY_SLICE:?} and looks at its epoll itself only every 64 switches",
        measured.len()
    );
}

// ---------------------------------------------------------------------------------------------
// 4. UnixStream::connect at shutdown
// ---------------------------------------------------------------------------------------------

/// How long the runtime's drop may take: it cancels one sleeping coroutine and joins one
/// worker.
const DROP_LIMIT: Duration = Duration::from_secs(2);
/// More connections than a backlog of 0 admits (one, on Linux): a listener that never fills
/// fails the test instead of eating fds.
const MAX_FILLERS: usize = 64;

/// A `sockaddr_un` for `path`.
fn sockaddr_un(path: &Path) -> libc::sockaddr_un {
    use std::os::unix::ffi::OsStrExt;

    // SAFETY: sockaddr_un is plain data, for which all zeroes is a valid value.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let bytes = path.as_os_str().as_bytes();
    assert!(bytes.len() < addr.sun_path.len(), "socket path too long: {path:?}");
    for (dst, &src) in addr.sun_path.iter_mut().zip(bytes) {
        *dst = src as libc::c_char;
    }
    addr
}

/// Connects non-blocking Unix stream sockets to the listener at `path` until its backlog is
/// full (the next connect would block), and returns them.
fn fill_backlog(path: &Path) -> Vec<OwnedFd> {
    let addr = sockaddr_un(path);
    let mut fillers = Vec::new();
    loop {
        let flags = libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
        // SAFETY: socket(2) takes no pointers.
        let raw = unsafe { libc::socket(libc::AF_UNIX, flags, 0) };
        assert!(raw >= 0, "socket: {}", io::Error::last_os_error());
        // SAFETY: `raw` is a new socket that nothing else owns.
        let socket = unsafe { OwnedFd::from_raw_fd(raw) };
        let len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
        // SAFETY: `addr` is a live sockaddr_un, and `len` is its size.
        let rc = unsafe {
            libc::connect(socket.as_raw_fd(), (&addr as *const libc::sockaddr_un).cast(), len)
        };
        if rc == 0 {
            fillers.push(socket);
            assert!(fillers.len() < MAX_FILLERS, "the backlog of 0 took {MAX_FILLERS} connections");
            continue;
        }
        let err = io::Error::last_os_error();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock, "a filler's connect: {err}");
        return fillers;
    }
}

/// `UnixStream::connect` retries while the listener's backlog is full (a Unix socket gives no
/// readiness to wait for), sleeping between tries. Once the runtime shut down, its
/// `weft::sleep` returned at once and the loop went on: the coroutine never ended, and
/// dropping the runtime hung. Fixed: the retry sleeps with `weft::reactor::sleep_io`, which
/// returns the shutdown error, and the connect returns it.
#[test]
fn unix_connect_to_a_full_backlog_ends_at_runtime_drop() {
    let _dog = watchdog("unix_connect_to_a_full_backlog_ends_at_runtime_drop", BUDGET);
    let socket_path = support::TempPath::new("full-backlog");
    let path = socket_path.path().to_path_buf();
    let listener = std::os::unix::net::UnixListener::bind(&path).expect("bind");
    // std listens with a long backlog; a second listen(2) shrinks it.
    // SAFETY: listen(2) on a socket this test owns; no pointers.
    let rc = unsafe { libc::listen(listener.as_raw_fd(), 0) };
    assert_eq!(rc, 0, "listen: {}", io::Error::last_os_error());
    let fillers = fill_backlog(&path);

    let rt = support::runtime(1, Mode::Pinned);
    let connect = rt.spawn({
        let path = path.clone();
        move || UnixStream::connect(&path).map(drop)
    });
    // Its only coroutine: a second switch means its first try found the backlog full, and it
    // woke from a retry sleep.
    let retrying = wait_until(STEP_DEADLINE, || worker_metrics(&rt, 0).switches >= 2);
    assert!(retrying, "the connect did not retry: {:?}", rt.metrics());

    let (tx, rx) = mpsc::channel();
    let dropper = std::thread::spawn(move || {
        drop(rt);
        let _ = tx.send(());
    });
    let ended = rx.recv_timeout(DROP_LIMIT).is_ok();
    // Closing the listener makes a connect still retrying fail, which ends a hung drop too.
    drop(listener);
    drop(fillers);
    dropper.join().expect("the runtime's drop panicked");
    let res = connect.join().expect("the connect panicked");
    assert!(
        ended,
        "dropping the runtime did not end within {DROP_LIMIT:?} while a UnixStream::connect \
         retried on a full backlog; it ended once the listener closed, the connect returning \
         {res:?}"
    );
    let err = res.expect_err("the connect succeeded on a full backlog");
    assert_eq!(
        (err.kind(), err.to_string()),
        (io::ErrorKind::Other, "weft runtime is shutting down".to_owned())
    );
}

// ---------------------------------------------------------------------------------------------
// 5. Two registrations of an fd
// ---------------------------------------------------------------------------------------------

/// How long the first registration's reader may take to wake after the write.
const FIRST_WAKE_LIMIT: Duration = Duration::from_secs(2);

/// The first wait of a `Registration` adds the fd to its worker's epoll with the
/// registration's token. A second `Registration` of the same fd, waiting on the same worker,
/// met `EEXIST` and replaced the token with its own: the events went to it, the first one's
/// reader was never woken, and dropping the second removed the one epoll item they shared.
/// Fixed: the second registration fails with `AlreadyExists` and leaves the first untouched.
#[test]
fn second_registration_of_an_fd_is_refused() {
    let _dog = watchdog("second_registration_of_an_fd_is_refused", BUDGET);
    let rt = support::runtime(1, Mode::Pinned);
    let (a, b) = std::os::unix::net::UnixStream::pair().expect("socketpair");
    b.set_nonblocking(true).expect("set_nonblocking");
    let b = Arc::new(b);
    let fd = b.as_raw_fd();

    let done = Arc::new(AtomicBool::new(false));
    let reader = rt.spawn({
        let (b, done) = (Arc::clone(&b), Arc::clone(&done));
        move || {
            let first = Registration::new();
            let mut buf = [0u8; 8];
            let res = first.io(fd, Interest::Readable, || None, || (&*b).read(&mut buf));
            done.store(true, SeqCst);
            res.map(|n| buf[..n].to_vec())
        }
    });
    // Parked: the fd is on the worker's epoll with the first registration's token.
    let parked = wait_until(STEP_DEADLINE, || worker_metrics(&rt, 0).io_waits >= 1);
    assert!(parked, "the reader did not park: {:?}", rt.metrics());

    // A second registration's first wait on the same fd, on the same worker.
    let second = rt
        .spawn(move || {
            let second = Registration::new();
            second.io(fd, Interest::Writable, || None, blocks_once())
        })
        .join()
        .expect("the second registration's coroutine panicked");
    assert_eq!(
        second.as_ref().map_err(io::Error::kind),
        Err(io::ErrorKind::AlreadyExists),
        "a second Registration of an fd on the same epoll must be refused; it returned \
         {second:?}, having taken the fd's epoll registration over"
    );

    // The first registration still gets the fd's events (the second is dropped by now).
    (&a).write_all(b"x").expect("write");
    let woke = wait_until(FIRST_WAKE_LIMIT, || done.load(SeqCst));
    assert!(woke, "the first registration's reader did not wake within {FIRST_WAKE_LIMIT:?}");
    assert_eq!(reader.join().expect("the reader panicked").expect("read"), b"x");
}

#[test]
fn migrated_coroutine_reads_the_errno_of_its_own_thread() {
    let dog = watchdog("migrated_coroutine_reads_the_errno_of_its_own_thread", BUDGET);
    // The hang came within ten rounds in release builds; each round takes about 2 ms.
    let rounds = support::sized(200, 2_000);
    for round in 0..rounds {
        dog.note(format!("round {round}"));
        let rt = support::runtime(2, support::Mode::Migrating);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let client = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (server, _) = listener.accept().expect("accept");
        support::set_linger_zero(&server);
        let writer = rt.spawn(move || {
            let chunk = vec![0u8; 64 * 1024];
            loop {
                if let Err(e) = (&client).write(&chunk) {
                    return e;
                }
            }
        });
        let parked =
            wait_until(STEP_DEADLINE, || rt.metrics().workers.iter().any(|w| w.io_waits > 0));
        assert!(parked, "round {round}: the writer never parked on a full socket");
        drop(server);
        let ended = wait_until(STEP_DEADLINE, || writer.is_finished());
        assert!(
            ended,
            "round {round}: the writer stayed parked after the peer reset; metrics {:#?}",
            rt.metrics()
        );
        let err = writer.join().expect("the writer panicked");
        assert!(
            matches!(err.kind(), io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe),
            "round {round}: the write failed with {err:?}, not a reset or broken pipe"
        );
    }
}
