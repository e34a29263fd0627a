//! Peer faults: each gives its documented error, and the process lives on.
//!
//! - A reset (SO_LINGER 0 close) while we are parked in a write: `BrokenPipe` or
//!   `ConnectionReset`; while we are parked in a read: `ConnectionReset`.
//! - A half-close: we read the rest, then `Ok(0)`, and can still write to the peer.
//! - Writes to a closed peer, TCP and Unix, plain and vectored: `BrokenPipe` or
//!   `ConnectionReset`.
//! - A connect with no listener: `ConnectionRefused` (`NotFound` for a missing Unix path).
//! - Our own `shutdown(Read | Both)` ends a parked read with `Ok(0)`; our own `shutdown(Write)`
//!   ends a parked write with `BrokenPipe`.
//!
//! None of these may raise SIGPIPE (weft writes with `MSG_NOSIGNAL`). The Rust runtime ignores
//! SIGPIPE in every binary, which would hide one, so [`no_fault_raises_sigpipe`] re-runs the
//! write faults in a child process with SIGPIPE's default action (death), and a control child
//! checks that a plain `write(2)` there does die.
//!
//! Each fault runs with the blocked side on a plain thread and in a coroutine of a two-worker
//! runtime, pinned and migrating.

mod support;

use std::io::{self, ErrorKind, IoSlice, Read, Write};
use std::net::Shutdown;
use std::os::fd::AsRawFd;
use std::os::unix::process::ExitStatusExt;
use std::sync::atomic::AtomicI32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::Mode;
use weft::net::{TcpStream, UnixListener, UnixStream};

/// Chunk size of the writes that fill a socket buffer.
const CHUNK: usize = 64 << 10;

/// A write loop that has not failed after this many bytes has missed its fault.
const MAX_WRITTEN: usize = 256 << 20;

/// How long a blocked call may take to notice its fault before the test calls it lost.
const NOTICE: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------------------------
// Where the blocked side runs
// ---------------------------------------------------------------------------------------------

/// Where the side that blocks runs.
#[derive(Clone, Copy, Debug)]
enum Side {
    /// A plain thread: weft blocks it in poll(2).
    Thread,
    /// A coroutine of a fresh two-worker runtime in this mode.
    Coroutine(Mode),
}

const SIDES: [Side; 3] =
    [Side::Thread, Side::Coroutine(Mode::Pinned), Side::Coroutine(Mode::Migrating)];

/// A call running on a [`Side`], which the test thread can watch block.
///
/// The call's thread publishes its tid first (in a coroutine: its worker thread's). A blocked
/// thread, or a worker whose only coroutine is parked, sleeps in the kernel: state `S` in
/// `/proc/self/task/<tid>/stat`. (The runtime's `io_waits` counts a park only when it ends.)
struct Running<T> {
    kind: Kind<T>,
    tid: Arc<AtomicI32>,
}

enum Kind<T> {
    Thread(std::thread::JoinHandle<T>),
    /// The runtime is kept alive with its coroutine.
    Coroutine(weft::JoinHandle<T>, Arc<weft::Runtime>),
}

fn run_on<T: Send + 'static>(side: Side, f: impl FnOnce() -> T + Send + 'static) -> Running<T> {
    let tid = Arc::new(AtomicI32::new(0));
    let published = Arc::clone(&tid);
    let body = move || {
        support::publish_tid(&published);
        f()
    };
    let kind = match side {
        Side::Thread => Kind::Thread(std::thread::spawn(body)),
        Side::Coroutine(mode) => {
            let rt = support::runtime(2, mode);
            Kind::Coroutine(rt.spawn(body), rt)
        }
    };
    Running { kind, tid }
}

impl<T> Running<T> {
    /// Waits until the call is blocked: its thread sleeps in the kernel.
    fn wait_blocked(&self, what: &str) {
        let blocked = support::wait_sleeping(&self.tid, NOTICE);
        assert!(blocked, "{what}: the call never blocked");
        assert!(!self.is_finished(), "{what}: the call returned before its fault");
    }

    fn is_finished(&self) -> bool {
        match &self.kind {
            Kind::Thread(handle) => handle.is_finished(),
            Kind::Coroutine(handle, _) => handle.is_finished(),
        }
    }

    /// Joins the call. If it is not done within [`NOTICE`], `unblock` frees it and the test
    /// fails: a lost wake-up fails with a message, not the watchdog's abort.
    fn join(self, what: &str, unblock: impl FnOnce()) -> T {
        let finished = support::wait_until(NOTICE, || self.is_finished());
        if !finished {
            unblock();
        }
        let value = match self.kind {
            Kind::Thread(handle) => handle.join(),
            Kind::Coroutine(handle, _rt) => handle.join(),
        };
        let value = value.unwrap_or_else(|payload| {
            let message = support::panic_message(&*payload).unwrap_or("(not a string)");
            panic!("{what}: the blocked side panicked: {message}")
        });
        assert!(finished, "{what}: still blocked {NOTICE:?} after its fault");
        value
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// The errors a write to a reset or closed peer may give.
fn is_broken(e: &io::Error) -> bool {
    matches!(e.kind(), ErrorKind::BrokenPipe | ErrorKind::ConnectionReset)
}

/// How a write loop ended.
enum Ended {
    /// A write failed with this error, after this many bytes.
    Failed(usize, io::Error),
    /// `MAX_WRITTEN` bytes went through: the fault was missed.
    NoError(usize),
}

/// Writes `CHUNK`s (vectored in two halves if `vectored`) until one fails.
fn write_until_error(mut w: impl Write, vectored: bool) -> Ended {
    let chunk = vec![0x5a_u8; CHUNK];
    let mut written = 0;
    while written < MAX_WRITTEN {
        let result = if vectored {
            let (a, b) = chunk.split_at(CHUNK / 2);
            w.write_vectored(&[IoSlice::new(a), IoSlice::new(b)])
        } else {
            w.write(&chunk)
        };
        match result {
            Ok(n) => written += n,
            Err(e) => return Ended::Failed(written, e),
        }
    }
    Ended::NoError(written)
}

fn assert_broken(what: &str, ended: Ended) {
    match ended {
        Ended::Failed(_, ref e) if is_broken(e) => {}
        Ended::Failed(written, e) => {
            panic!(
                "{what}: after {written} bytes, expected BrokenPipe or ConnectionReset, got {e:?}"
            )
        }
        Ended::NoError(written) => panic!("{what}: {written} bytes written, no error"),
    }
}

// ---------------------------------------------------------------------------------------------
// The faults
// ---------------------------------------------------------------------------------------------

/// Rounds of each reset scenario. A coroutine woken by the reset may resume on another worker
/// (in migrating mode), which is where a reset has been lost; one round rarely shows it.
const RESET_ROUNDS: usize = 10;

/// A writer fills its buffer and blocks; the peer closes with SO_LINGER 0 (a reset): the
/// blocked write fails with `BrokenPipe` or `ConnectionReset`.
fn tcp_reset_while_blocked_in_write(side: Side) {
    for round in 0..RESET_ROUNDS {
        let what = format!("tcp reset while blocked in write ({side:?}, round {round})");
        let (client, server) = support::tcp_pair();
        support::set_linger_zero(&server);
        let rescue = client.try_clone().expect("try_clone");
        let writer = run_on(side, move || write_until_error(client, false));
        writer.wait_blocked(&what);
        drop(server);
        // shutdown(2) on the reset socket fails (ENOTCONN) but still wakes its waiters.
        let ended = writer.join(&what, || {
            let _ = rescue.shutdown(Shutdown::Both);
        });
        assert_broken(&what, ended);
    }
}

/// A reader blocks on an idle connection; the peer closes with SO_LINGER 0 (a reset): the
/// blocked read fails with `ConnectionReset`.
fn tcp_reset_while_blocked_in_read(side: Side) {
    for round in 0..RESET_ROUNDS {
        let what = format!("tcp reset while blocked in read ({side:?}, round {round})");
        let (client, server) = support::tcp_pair();
        support::set_linger_zero(&server);
        let rescue = client.try_clone().expect("try_clone");
        let reader = run_on(side, move || (&client).read(&mut [0u8; 64]).map_err(|e| e.kind()));
        reader.wait_blocked(&what);
        drop(server);
        let result = reader.join(&what, || {
            let _ = rescue.shutdown(Shutdown::Both);
        });
        assert_eq!(result, Err(ErrorKind::ConnectionReset), "{what}");
    }
}

/// The peer closes (normally, nothing unread); writes to it, plain or vectored, end in
/// `BrokenPipe` or `ConnectionReset` (the first may still succeed: the peer answers it with
/// a reset).
fn tcp_write_to_closed_peer(side: Side) {
    for vectored in [false, true] {
        let what = format!("tcp write to a closed peer ({side:?}, vectored {vectored})");
        let (client, server) = support::tcp_pair();
        drop(server);
        let rescue = client.try_clone().expect("try_clone");
        let writer = run_on(side, move || write_until_error(client, vectored));
        let ended = writer.join(&what, || {
            let _ = rescue.shutdown(Shutdown::Both);
        });
        assert_broken(&what, ended);
    }
}

/// Unix stream: writes to a closed peer, plain or vectored, give `BrokenPipe` (or
/// `ConnectionReset`); and a writer blocked on a full buffer fails when the peer closes.
fn unix_write_to_closed_peer(side: Side) {
    for vectored in [false, true] {
        let what = format!("unix write to a closed peer ({side:?}, vectored {vectored})");
        let (a, b) = UnixStream::pair().expect("UnixStream::pair");
        drop(b);
        let rescue = a.try_clone().expect("try_clone");
        let writer = run_on(side, move || write_until_error(a, vectored));
        let ended = writer.join(&what, || {
            let _ = rescue.shutdown(Shutdown::Both);
        });
        assert_broken(&what, ended);
    }

    let what = format!("unix peer closes while blocked in write ({side:?})");
    let (a, b) = UnixStream::pair().expect("UnixStream::pair");
    let rescue = a.try_clone().expect("try_clone");
    let writer = run_on(side, move || write_until_error(a, false));
    writer.wait_blocked(&what);
    drop(b);
    let ended = writer.join(&what, || {
        let _ = rescue.shutdown(Shutdown::Both);
    });
    assert_broken(&what, ended);
}

/// A writer on `side` fills `stream`'s buffer and blocks; the test thread shuts `stream` down
/// for writing: the blocked write must fail with `BrokenPipe`, and so must the next one. If the
/// write stays blocked, dropping `peer` frees it and the test fails.
fn check_shutdown_write_ends_blocked_write<S, P>(
    what: &str,
    side: Side,
    stream: S,
    peer: P,
    shutdown: impl FnOnce(&S) -> io::Result<()>,
) where
    S: Send + Sync + 'static,
    P: Send + 'static,
    for<'b> &'b S: Write,
{
    let stream = Arc::new(stream);
    let writer = run_on(side, {
        let stream = Arc::clone(&stream);
        move || {
            let ended = write_until_error(ByRef(&*stream), false);
            let again = ByRef(&*stream).write(b"again").map_err(|e| e.kind());
            (ended, again)
        }
    });
    writer.wait_blocked(what);
    shutdown(&stream).expect("shutdown(Write)");
    let (ended, again) = writer.join(what, move || drop(peer));
    match ended {
        Ended::Failed(_, ref e) if e.kind() == ErrorKind::BrokenPipe => {}
        Ended::Failed(written, e) => {
            panic!("{what}: after {written} bytes, expected BrokenPipe, got {e:?}")
        }
        Ended::NoError(written) => panic!("{what}: {written} bytes written, no error"),
    }
    assert_eq!(again, Err(ErrorKind::BrokenPipe), "{what}: a write after shutdown(Write)");
}

fn tcp_shutdown_write_ends_blocked_write(side: Side) {
    let (client, server) = support::tcp_pair();
    let what = format!("tcp shutdown(Write) while blocked in write ({side:?})");
    check_shutdown_write_ends_blocked_write(&what, side, client, server, |s| {
        s.shutdown(Shutdown::Write)
    });
    // Through a `try_clone`: the same socket, so the same effect on the blocked write.
    let (client, server) = support::tcp_pair();
    let clone = client.try_clone().expect("try_clone");
    let what = format!("tcp shutdown(Write) through a clone while blocked in write ({side:?})");
    check_shutdown_write_ends_blocked_write(&what, side, client, server, move |_| {
        clone.shutdown(Shutdown::Write)
    });
}

fn unix_shutdown_write_ends_blocked_write(side: Side) {
    let (a, b) = UnixStream::pair().expect("UnixStream::pair");
    let what = format!("unix shutdown(Write) while blocked in write ({side:?})");
    check_shutdown_write_ends_blocked_write(&what, side, a, b, |s| s.shutdown(Shutdown::Write));
    // Through a `try_clone`. A Unix socket reports no readiness for a local shutdown(Write),
    // so only weft can wake the write blocked on the other handle.
    let (a, b) = UnixStream::pair().expect("UnixStream::pair");
    let clone = a.try_clone().expect("try_clone");
    let what = format!("unix shutdown(Write) through a clone while blocked in write ({side:?})");
    check_shutdown_write_ends_blocked_write(&what, side, a, b, move |_| {
        clone.shutdown(Shutdown::Write)
    });
}

/// After our own `shutdown(Write)`, writes (plain and vectored) fail with `BrokenPipe`.
fn write_after_shutdown_write(side: Side) {
    let what = format!("writes after shutdown(Write) ({side:?})");
    let run = move || {
        let (client, _server) = support::tcp_pair();
        client.shutdown(Shutdown::Write).expect("shutdown(Write)");
        let (a, _b) = UnixStream::pair().expect("UnixStream::pair");
        a.shutdown(Shutdown::Write).expect("shutdown(Write)");
        let slices = [IoSlice::new(b"x")];
        [
            ("tcp write", (&client).write(b"x").map_err(|e| e.kind())),
            ("tcp write_vectored", (&client).write_vectored(&slices).map_err(|e| e.kind())),
            ("unix write", (&a).write(b"x").map_err(|e| e.kind())),
            ("unix write_vectored", (&a).write_vectored(&slices).map_err(|e| e.kind())),
        ]
    };
    for (call, result) in run_on(side, run).join(&what, || {}) {
        assert_eq!(result, Err(ErrorKind::BrokenPipe), "{what}: {call}");
    }
}

/// A writer that writes through `&S` (std's `impl Write for &TcpStream` and the like).
struct ByRef<'a, S>(&'a S);

impl<S> Write for ByRef<'_, S>
where
    for<'b> &'b S: Write,
{
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut s = self.0;
        s.write(buf)
    }
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let mut s = self.0;
        s.write_vectored(bufs)
    }
    fn flush(&mut self) -> io::Result<()> {
        let mut s = self.0;
        s.flush()
    }
}

/// A reader blocks; another thread shuts the stream down for reading (`Read`, then `Both` on
/// a fresh stream; through the reader's own handle, then through a `try_clone`): the blocked
/// read returns `Ok(0)`, as std documents. If it stays blocked, the peer's close frees it and
/// the test fails.
fn shutdown_read_ends_blocked_read(side: Side) {
    fn check<S: Send + Sync + 'static, P: Send + 'static>(
        what: &str,
        side: Side,
        stream: S,
        peer: P,
        shutdown: impl FnOnce(&S),
    ) where
        for<'b> &'b S: Read,
    {
        let stream = Arc::new(stream);
        let reader = run_on(side, {
            let stream = Arc::clone(&stream);
            move || {
                let mut buf = [0u8; 64];
                (&*stream).read(&mut buf).map_err(|e| e.kind())
            }
        });
        reader.wait_blocked(what);
        shutdown(&stream);
        let result = reader.join(what, move || drop(peer));
        assert_eq!(result, Ok(0), "{what}");
    }
    for how in [Shutdown::Read, Shutdown::Both] {
        let (client, server) = support::tcp_pair();
        let what = format!("tcp shutdown({how:?}) while blocked in read ({side:?})");
        check(&what, side, client, server, |s| s.shutdown(how).expect("shutdown"));
        let (client, server) = support::tcp_pair();
        let clone = client.try_clone().expect("try_clone");
        let what =
            format!("tcp shutdown({how:?}) through a clone while blocked in read ({side:?})");
        check(&what, side, client, server, move |_| clone.shutdown(how).expect("shutdown"));

        let (a, b) = UnixStream::pair().expect("UnixStream::pair");
        let what = format!("unix shutdown({how:?}) while blocked in read ({side:?})");
        check(&what, side, a, b, |s| s.shutdown(how).expect("shutdown"));
        let (a, b) = UnixStream::pair().expect("UnixStream::pair");
        let clone = a.try_clone().expect("try_clone");
        let what =
            format!("unix shutdown({how:?}) through a clone while blocked in read ({side:?})");
        check(&what, side, a, b, move |_| clone.shutdown(how).expect("shutdown"));
    }
}

/// The peer sends two parts and shuts down its write half while we are blocked reading: we
/// read exactly the parts, then `Ok(0)`; then we can still write, and the peer reads it.
fn tcp_half_close(side: Side) {
    let what = format!("tcp half-close ({side:?})");
    let (mut client, mut server) = support::tcp_pair();
    let reader = run_on(side, move || -> io::Result<(Vec<u8>, usize)> {
        let mut got = Vec::new();
        client.read_to_end(&mut got)?;
        let again = client.read(&mut [0u8; 16])?;
        client.write_all(b"reply after EOF")?;
        client.shutdown(Shutdown::Write)?;
        Ok((got, again))
    });
    reader.wait_blocked(&what);
    server.write_all(b"first part, ").expect("peer write");
    server.write_all(b"second part").expect("peer write");
    server.shutdown(Shutdown::Write).expect("peer shutdown(Write)");
    let (got, again) = reader.join(&what, || {}).expect("the reading side");
    assert_eq!(got, b"first part, second part", "{what}");
    assert_eq!(again, 0, "{what}: a read after EOF");
    let mut reply = Vec::new();
    server.read_to_end(&mut reply).expect("peer read_to_end");
    assert_eq!(reply, b"reply after EOF", "{what}");
}

/// Connects where nothing listens: `ConnectionRefused` (TCP, with and without a timeout; a
/// Unix socket file with no listener), `NotFound` (a missing Unix path).
fn connect_refused(side: Side) {
    let run = move || {
        let (_holder, port) = reserved_port();
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let kind = |r: io::Result<TcpStream>| r.map(|_| ()).map_err(|e| e.kind());
        assert_eq!(kind(TcpStream::connect(addr)), Err(ErrorKind::ConnectionRefused));
        assert_eq!(
            kind(TcpStream::connect(format!("127.0.0.1:{port}"))),
            Err(ErrorKind::ConnectionRefused)
        );
        assert_eq!(
            kind(TcpStream::connect_timeout(&addr, Duration::from_secs(5))),
            Err(ErrorKind::ConnectionRefused)
        );

        let missing = support::TempPath::new("missing");
        let r = UnixStream::connect(missing.path()).map(|_| ()).map_err(|e| e.kind());
        assert_eq!(r, Err(ErrorKind::NotFound), "unix connect to a missing path");
        let stale = support::TempPath::new("stale");
        drop(UnixListener::bind(stale.path()).expect("bind a unix listener"));
        assert!(stale.path().exists(), "a dropped UnixListener leaves its socket file");
        let r = UnixStream::connect(stale.path()).map(|_| ()).map_err(|e| e.kind());
        assert_eq!(r, Err(ErrorKind::ConnectionRefused), "unix connect with no listener");
    };
    let start = Instant::now();
    run_on(side, run).join(&format!("connect refused ({side:?})"), || {});
    assert!(start.elapsed() < NOTICE, "refused connects took {:?}", start.elapsed());
}

/// A loopback TCP port that nothing listens on and nothing else can take while the returned
/// socket lives: it is bound (without SO_REUSEADDR) but never listens. A freed port is not
/// enough: a parallel test may bind it, or a connect to it may pick it as its own source port
/// and connect to itself.
fn reserved_port() -> (std::os::fd::OwnedFd, u16) {
    use std::os::fd::FromRawFd;
    // SAFETY: socket(2) takes no pointers.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    assert!(fd >= 0, "socket: {}", io::Error::last_os_error());
    // SAFETY: `fd` is a fresh socket that nothing else owns.
    let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
    // SAFETY: all-zero is a valid sockaddr_in (port 0, address 0), then filled in.
    let mut addr: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    addr.sin_family = libc::AF_INET as libc::sa_family_t;
    addr.sin_addr.s_addr = u32::from_ne_bytes([127, 0, 0, 1]);
    let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: bind(2) reads `len` bytes of a live sockaddr_in.
    let rc = unsafe { libc::bind(fd.as_raw_fd(), (&addr as *const libc::sockaddr_in).cast(), len) };
    assert_eq!(rc, 0, "bind: {}", io::Error::last_os_error());
    // SAFETY: getsockname(2) writes at most `len` bytes into the live sockaddr_in.
    let rc = unsafe {
        libc::getsockname(fd.as_raw_fd(), (&mut addr as *mut libc::sockaddr_in).cast(), &mut len)
    };
    assert_eq!(rc, 0, "getsockname: {}", io::Error::last_os_error());
    (fd, u16::from_be(addr.sin_port))
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

/// Runs `fault` with its blocked side on each [`Side`]; a failing side does not hide the
/// others: the test fails at the end, naming every side that failed.
fn on_every_side(name: &str, fault: fn(Side)) {
    let wd = support::watchdog(name, Duration::from_secs(90));
    let mut failed = Vec::new();
    for side in SIDES {
        wd.note(format!("{side:?}"));
        if let Err(payload) = std::panic::catch_unwind(move || fault(side)) {
            let message = support::panic_message(&*payload).unwrap_or("(not a string)");
            failed.push(format!("{side:?}: {message}"));
        }
    }
    assert!(failed.is_empty(), "{name} failed on {} side(s):\n{}", failed.len(), failed.join("\n"));
}

#[test]
fn tcp_reset_while_blocked_in_write_is_broken_pipe_or_reset() {
    on_every_side(
        "tcp_reset_while_blocked_in_write_is_broken_pipe_or_reset",
        tcp_reset_while_blocked_in_write,
    );
}

#[test]
fn tcp_reset_while_blocked_in_read_is_connection_reset() {
    on_every_side(
        "tcp_reset_while_blocked_in_read_is_connection_reset",
        tcp_reset_while_blocked_in_read,
    );
}

#[test]
fn tcp_write_to_a_closed_peer_is_broken_pipe_or_reset() {
    on_every_side("tcp_write_to_a_closed_peer_is_broken_pipe_or_reset", tcp_write_to_closed_peer);
}

#[test]
fn unix_write_to_a_closed_peer_is_broken_pipe() {
    on_every_side("unix_write_to_a_closed_peer_is_broken_pipe", unix_write_to_closed_peer);
}

#[test]
fn tcp_shutdown_write_ends_a_blocked_write_with_broken_pipe() {
    on_every_side(
        "tcp_shutdown_write_ends_a_blocked_write_with_broken_pipe",
        tcp_shutdown_write_ends_blocked_write,
    );
}

#[test]
fn unix_shutdown_write_ends_a_blocked_write_with_broken_pipe() {
    on_every_side(
        "unix_shutdown_write_ends_a_blocked_write_with_broken_pipe",
        unix_shutdown_write_ends_blocked_write,
    );
}

#[test]
fn writes_after_shutdown_write_are_broken_pipe() {
    on_every_side("writes_after_shutdown_write_are_broken_pipe", write_after_shutdown_write);
}

#[test]
fn shutdown_read_ends_a_blocked_read_with_eof() {
    on_every_side("shutdown_read_ends_a_blocked_read_with_eof", shutdown_read_ends_blocked_read);
}

#[test]
fn tcp_half_close_reads_to_eof_and_still_writes() {
    on_every_side("tcp_half_close_reads_to_eof_and_still_writes", tcp_half_close);
}

#[test]
fn connect_with_no_listener_is_refused() {
    on_every_side("connect_with_no_listener_is_refused", connect_refused);
}

/// The child's SIGPIPE action, as a word for its output.
fn sigpipe_action() -> &'static str {
    // SAFETY: sigaction(2) with a null new action only writes the current one into `old`.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: as above; `old` is a live, writable sigaction.
    let rc = unsafe { libc::sigaction(libc::SIGPIPE, std::ptr::null(), &mut old) };
    assert_eq!(rc, 0, "sigaction: {}", io::Error::last_os_error());
    match old.sa_sigaction {
        libc::SIG_DFL => "default",
        libc::SIG_IGN => "ignored",
        _ => "handled",
    }
}

/// Restores SIGPIPE's default action (terminate), which the Rust runtime had set to ignore.
fn default_sigpipe() {
    // SAFETY: signal(2) with SIG_DFL installs no handler code.
    let previous = unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    assert_ne!(previous, libc::SIG_ERR, "signal(SIGPIPE, SIG_DFL)");
    assert_eq!(sigpipe_action(), "default");
}

/// With SIGPIPE's default action, every write fault above fails its write with an error and
/// the process lives; weft left SIGPIPE's action alone (ignoring it would only hide a missing
/// `MSG_NOSIGNAL`). A control child shows a plain `write(2)` to a closed peer does kill it.
#[test]
fn no_fault_raises_sigpipe() {
    const TEST: &str = "no_fault_raises_sigpipe";
    if support::is_child("sigpipe-faults") {
        let _wd = support::watchdog(TEST, Duration::from_secs(120));
        default_sigpipe();
        // Only survival is judged here: a scenario that fails its own assertions fails in its
        // own test too, so it is counted and the child goes on.
        let faults: [fn(Side); 5] = [
            tcp_write_to_closed_peer,
            tcp_reset_while_blocked_in_write,
            unix_write_to_closed_peer,
            tcp_shutdown_write_ends_blocked_write,
            write_after_shutdown_write,
        ];
        let mut failed = 0;
        for side in SIDES {
            for fault in faults {
                failed += usize::from(std::panic::catch_unwind(move || fault(side)).is_err());
            }
        }
        println!("scenarios that failed an assertion: {failed}");
        println!("faults survived; SIGPIPE action at the end: {}", sigpipe_action());
        return;
    }
    if support::is_child("sigpipe-control") {
        default_sigpipe();
        let (a, b) = UnixStream::pair().expect("UnixStream::pair");
        drop(b);
        // SAFETY: write(2) of 1 byte from a live buffer to a socket fd `a` owns.
        let n = unsafe { libc::write(a.as_raw_fd(), b"x".as_ptr().cast(), 1) };
        println!("UNREACHABLE: write(2) to a closed peer returned {n} without SIGPIPE");
        return;
    }
    let _wd = support::watchdog(TEST, Duration::from_secs(150));

    let control = support::run_child(TEST, "sigpipe-control", &[], Duration::from_secs(60));
    assert_eq!(
        control.status.signal(),
        Some(libc::SIGPIPE),
        "control: a plain write(2) to a closed peer should die of SIGPIPE here:\n{control}"
    );

    let out = support::run_child(TEST, "sigpipe-faults", &[], Duration::from_secs(130));
    assert_ne!(out.status.signal(), Some(libc::SIGPIPE), "a weft write raised SIGPIPE:\n{out}");
    assert!(out.status.success(), "the fault child failed:\n{out}");
    assert!(
        out.stdout.contains("faults survived; SIGPIPE action at the end: default"),
        "weft changed SIGPIPE's action (or the child did not finish):\n{out}"
    );
}
