//! Socket timeouts: a read, write or connect that passes its timeout returns
//! `ErrorKind::TimedOut` (never `WouldBlock`), not before the timeout and not absurdly after
//! it, and leaves the socket usable; a timeout set while another coroutine is parked in the
//! call moves that call's deadline to start-of-call + timeout; the getters return what was set,
//! and a zero timeout is `InvalidInput`, as in std.
//!
//! Each check runs on a plain thread (weft blocks in poll(2) there) and inside a coroutine of a
//! two-worker runtime, pinned and migrating.

mod support;

use std::io::{self, ErrorKind, Read, Write};
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::Mode;
use weft::net::{TcpListener, TcpStream, UdpSocket, UnixDatagram, UnixStream};

/// The timeout of the plain timeout checks.
const TIMEOUT: Duration = Duration::from_millis(100);

/// How late a timeout may fire before the test calls it broken. A sanity bound for a noisy
/// 2-core CI machine: it catches a timeout that never fires or waits for an unrelated wake-up,
/// not a slow one.
const SANE_LATENESS: Duration = Duration::from_secs(2);

/// Timeouts far below a millisecond: they must still fire (not round to "no timeout").
const TINY_TIMEOUTS: [Duration; 4] = [
    Duration::from_nanos(1),
    Duration::from_micros(1),
    Duration::from_micros(999),
    Duration::from_millis(1),
];

/// Writes stop after this many bytes: a write timeout that never fires fails the test here,
/// long before the watchdog.
const MAX_FILL: usize = 256 << 20;

/// Chunk size of the writes that fill a socket buffer.
const CHUNK: usize = 64 << 10;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Asserts that `result`, of a call started at `start` under `timeout`, is `TimedOut`, not
/// before `timeout` and within `SANE_LATENESS` after it.
fn assert_timed_out<T: std::fmt::Debug>(
    what: &str,
    start: Instant,
    timeout: Duration,
    result: io::Result<T>,
) {
    let took = start.elapsed();
    match result {
        Err(e) if e.kind() == ErrorKind::TimedOut => {}
        other => panic!("{what} with a {timeout:?} timeout: expected TimedOut, got {other:?}"),
    }
    assert!(took >= timeout, "{what}: timed out after {took:?}, before its {timeout:?} timeout");
    assert!(
        took < timeout + SANE_LATENESS,
        "{what}: timed out after {took:?}, far past its {timeout:?} timeout"
    );
}

/// The byte at offset `i` of a filling stream.
fn pattern(i: usize) -> u8 {
    (i % 251) as u8
}

/// The two stream types, for the checks they share.
trait Stream: Read + Write {
    fn set_read(&self, timeout: Option<Duration>) -> io::Result<()>;
    fn set_write(&self, timeout: Option<Duration>) -> io::Result<()>;
    fn get_read(&self) -> io::Result<Option<Duration>>;
    fn get_write(&self) -> io::Result<Option<Duration>>;
}

macro_rules! impl_stream {
    ($($ty:ty),*) => {$(
        impl Stream for $ty {
            fn set_read(&self, timeout: Option<Duration>) -> io::Result<()> {
                self.set_read_timeout(timeout)
            }
            fn set_write(&self, timeout: Option<Duration>) -> io::Result<()> {
                self.set_write_timeout(timeout)
            }
            fn get_read(&self) -> io::Result<Option<Duration>> {
                self.read_timeout()
            }
            fn get_write(&self) -> io::Result<Option<Duration>> {
                self.write_timeout()
            }
        }
    )*};
}

impl_stream!(TcpStream, UnixStream);

// ---------------------------------------------------------------------------------------------
// Read and write timeouts
// ---------------------------------------------------------------------------------------------

/// `client` times out reading twice (each time the peer then writes, and a read gets exactly
/// those bytes), and times out promptly under each of the sub-millisecond timeouts.
fn stream_read_times_out_and_stays_usable(
    what: &str,
    mut client: impl Stream,
    mut server: impl Stream,
) {
    client.set_read(Some(TIMEOUT)).expect("set_read_timeout");
    let mut buf = [0u8; 64];
    for round in 0..2 {
        let start = Instant::now();
        let result = client.read(&mut buf);
        assert_timed_out(&format!("{what} read, round {round}"), start, TIMEOUT, result);
        let message = format!("{what}: bytes after timeout {round}");
        server.write_all(message.as_bytes()).expect("peer write");
        let mut got = vec![0u8; message.len()];
        client.read_exact(&mut got).expect("read after a timeout");
        assert_eq!(got, message.as_bytes(), "{what}: bytes read after a timeout");
    }
    for tiny in TINY_TIMEOUTS {
        client.set_read(Some(tiny)).expect("set a tiny read timeout");
        let start = Instant::now();
        let result = client.read(&mut buf);
        assert_timed_out(&format!("{what} read"), start, tiny, result);
    }
}

/// `client` writes a pattern without the peer reading until a write times out; then the peer
/// reads every byte written, in order, and a further write gets through.
fn stream_write_times_out_and_stays_usable(
    what: &str,
    mut client: impl Stream,
    mut server: impl Stream,
) {
    client.set_write(Some(TIMEOUT)).expect("set_write_timeout");
    let source: Vec<u8> = (0..CHUNK + 251).map(pattern).collect();
    let mut written = 0usize;
    let (start, result) = loop {
        let start = Instant::now();
        match client.write(&source[written % 251..][..CHUNK]) {
            Ok(n) => {
                assert!(n > 0, "{what}: write returned Ok(0)");
                written += n;
                assert!(
                    written < MAX_FILL,
                    "{what}: wrote {written} bytes to a peer that never reads, no timeout"
                );
            }
            Err(e) => break (start, Err::<(), _>(e)),
        }
    };
    assert_timed_out(&format!("{what} write after {written} bytes"), start, TIMEOUT, result);

    let mut buf = vec![0u8; CHUNK];
    let mut read = 0usize;
    while read < written {
        let want = (written - read).min(CHUNK);
        let n = server.read(&mut buf[..want]).expect("peer read");
        assert!(n > 0, "{what}: EOF after {read} of {written} bytes");
        if let Some(k) = (0..n).find(|&k| buf[k] != pattern(read + k)) {
            panic!(
                "{what}: byte {} of the stream is {}, expected {}",
                read + k,
                buf[k],
                pattern(read + k)
            );
        }
        read += n;
    }
    client.write_all(b"after the timeout").expect("write after a timeout");
    let mut tail = [0u8; 17];
    server.read_exact(&mut tail).expect("peer reads the write after the timeout");
    assert_eq!(&tail, b"after the timeout");
}

fn tcp_read_timeout() {
    let (client, server) = support::tcp_pair();
    stream_read_times_out_and_stays_usable("tcp", client, server);
}

fn tcp_write_timeout() {
    let (client, server) = support::tcp_pair();
    stream_write_times_out_and_stays_usable("tcp", client, server);
}

fn unix_read_timeout() {
    let (client, server) = UnixStream::pair().expect("UnixStream::pair");
    stream_read_times_out_and_stays_usable("unix stream", client, server);
}

fn unix_write_timeout() {
    let (client, server) = UnixStream::pair().expect("UnixStream::pair");
    stream_write_times_out_and_stays_usable("unix stream", client, server);
}

/// UDP `recv_from` and `recv` time out, and the socket then receives a datagram sent to it.
fn udp_recv_timeout() {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
    let peer = UdpSocket::bind("127.0.0.1:0").expect("bind udp peer");
    let addr = socket.local_addr().expect("udp address");
    socket.set_read_timeout(Some(TIMEOUT)).expect("set_read_timeout");
    let mut buf = [0u8; 64];
    let start = Instant::now();
    let result = socket.recv_from(&mut buf);
    assert_timed_out("udp recv_from", start, TIMEOUT, result);
    peer.send_to(b"late datagram", addr).expect("send_to");
    let (n, from) = socket.recv_from(&mut buf).expect("recv_from after a timeout");
    assert_eq!((&buf[..n], from), (&b"late datagram"[..], peer.local_addr().unwrap()));

    socket.connect(peer.local_addr().unwrap()).expect("connect udp");
    let start = Instant::now();
    let result = socket.recv(&mut buf);
    assert_timed_out("udp recv", start, TIMEOUT, result);
    peer.send_to(b"second", addr).expect("send_to");
    let n = socket.recv(&mut buf).expect("recv after a timeout");
    assert_eq!(&buf[..n], b"second");
}

/// Unix datagram `recv` and `recv_from` time out, and the socket then receives.
fn unix_datagram_recv_timeout() {
    let (a, b) = UnixDatagram::pair().expect("UnixDatagram::pair");
    a.set_read_timeout(Some(TIMEOUT)).expect("set_read_timeout");
    let mut buf = [0u8; 64];
    let start = Instant::now();
    let result = a.recv(&mut buf);
    assert_timed_out("unix datagram recv", start, TIMEOUT, result);
    b.send(b"late datagram").expect("send");
    assert_eq!(a.recv(&mut buf).expect("recv after a timeout"), 13);
    assert_eq!(&buf[..13], b"late datagram");
    let start = Instant::now();
    let result = a.recv_from(&mut buf);
    assert_timed_out("unix datagram recv_from", start, TIMEOUT, result);
}

#[test]
fn tcp_read_timeout_is_timed_out_and_the_stream_stays_usable() {
    support::on_thread_and_coroutines(
        "tcp_read_timeout_is_timed_out_and_the_stream_stays_usable",
        tcp_read_timeout,
    );
}

#[test]
fn tcp_write_timeout_is_timed_out_and_the_stream_stays_usable() {
    support::on_thread_and_coroutines(
        "tcp_write_timeout_is_timed_out_and_the_stream_stays_usable",
        tcp_write_timeout,
    );
}

#[test]
fn unix_stream_read_timeout_is_timed_out_and_the_stream_stays_usable() {
    support::on_thread_and_coroutines(
        "unix_stream_read_timeout_is_timed_out_and_the_stream_stays_usable",
        unix_read_timeout,
    );
}

#[test]
fn unix_stream_write_timeout_is_timed_out_and_the_stream_stays_usable() {
    support::on_thread_and_coroutines(
        "unix_stream_write_timeout_is_timed_out_and_the_stream_stays_usable",
        unix_write_timeout,
    );
}

#[test]
fn datagram_recv_timeouts_are_timed_out_and_the_socket_stays_usable() {
    support::on_thread_and_coroutines(
        "datagram_recv_timeouts_are_timed_out_and_the_socket_stays_usable",
        || {
            udp_recv_timeout();
            unix_datagram_recv_timeout();
        },
    );
}

// ---------------------------------------------------------------------------------------------
// connect_timeout
// ---------------------------------------------------------------------------------------------

/// The timeout of the connects to a full backlog.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(200);

fn connect_timeout_to_full_backlog() {
    let full = support::full_listener();
    for round in 0..2 {
        let start = Instant::now();
        let result = TcpStream::connect_timeout(&full.addr, CONNECT_TIMEOUT);
        assert_timed_out(
            &format!("connect_timeout to a full backlog, round {round}"),
            start,
            CONNECT_TIMEOUT,
            result,
        );
    }
}

/// `TcpStream::connect_timeout` to a listener whose accept queue is full returns `TimedOut`
/// after its timeout, on a thread and in coroutines.
#[test]
fn connect_timeout_to_a_full_backlog_is_timed_out() {
    support::on_thread_and_coroutines(
        "connect_timeout_to_a_full_backlog_is_timed_out",
        connect_timeout_to_full_backlog,
    );
}

/// While a coroutine waits in `connect_timeout` on a one-worker runtime, another coroutine on
/// that worker runs: the connect parks the coroutine, not the worker.
#[test]
fn connect_timeout_parks_only_the_coroutine() {
    let wd = support::watchdog("connect_timeout_parks_only_the_coroutine", Duration::from_secs(30));
    let rt = support::runtime(1, Mode::Pinned);
    wd.watch_runtime("rt", &rt);
    let full = support::full_listener();
    let addr = full.addr;
    let ticks = Arc::new(AtomicUsize::new(0));
    let ticker = {
        let ticks = Arc::clone(&ticks);
        rt.spawn(move || {
            let stop = Instant::now() + CONNECT_TIMEOUT / 2;
            while Instant::now() < stop {
                weft::sleep(Duration::from_millis(5));
                ticks.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    let (result, ticks_before, ticks_after) = rt.block_on(|| {
        let before = ticks.load(Ordering::SeqCst);
        let result = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT);
        (result.map(|_| ()), before, ticks.load(Ordering::SeqCst))
    });
    ticker.join().expect("ticker");
    assert_eq!(result.map_err(|e| e.kind()), Err(ErrorKind::TimedOut));
    assert!(
        ticks_after > ticks_before,
        "no other coroutine ran on the worker during connect_timeout (ticks {ticks_before})"
    );
}

// ---------------------------------------------------------------------------------------------
// A timeout set while a call is parked
// ---------------------------------------------------------------------------------------------

/// Who sets the timeout on the parked coroutine's stream.
#[derive(Clone, Copy, Debug)]
enum Setter {
    /// Another coroutine of the same runtime.
    Coroutine,
    /// The test thread, outside the runtime.
    Thread,
}

/// The (mode, setter) pairs every parked-deadline case runs in.
const PARKED_CASES: [(Mode, Setter); 2] =
    [(Mode::Pinned, Setter::Coroutine), (Mode::Migrating, Setter::Thread)];

/// What the parked call returned, and when it started and ended.
struct Parked {
    start: Instant,
    end: Instant,
    result: Result<usize, ErrorKind>,
}

/// A coroutine blocked in a socket call; see [`start_parked`].
struct ParkedCall {
    handle: weft::JoinHandle<Parked>,
    io_waits_before: u64,
}

/// Starts `call` in a coroutine of `rt` and waits until it is parked. The coroutine publishes
/// the tid of its worker thread just before the call; once the call parks, that worker has
/// nothing to run and sleeps in the kernel (state `S`). (`io_waits` counts a park when it
/// ends, so it confirms the park afterwards, in [`finish`], but cannot show it while it lasts.)
fn start_parked(
    rt: &Arc<weft::Runtime>,
    call: impl FnOnce() -> (Instant, io::Result<usize>) + Send + 'static,
) -> ParkedCall {
    let io_waits_before = support::io_waits(rt);
    let tid = Arc::new(AtomicI32::new(0));
    let published = Arc::clone(&tid);
    let handle = rt.spawn(move || {
        support::publish_tid(&published);
        let (start, result) = call();
        Parked { start, end: Instant::now(), result: result.map_err(|e| e.kind()) }
    });
    let parked = support::wait_sleeping(&tid, Duration::from_secs(10));
    assert!(parked, "the coroutine's worker never went to sleep: the call never parked");
    assert!(!handle.is_finished(), "the call returned before anything could end it");
    ParkedCall { handle, io_waits_before }
}

/// After `delay`, sets a timeout through `set` from the setter's side; returns when it was
/// set.
fn set_later(
    rt: &weft::Runtime,
    setter: Setter,
    delay: Duration,
    set: impl FnOnce() + Send + 'static,
) -> Instant {
    match setter {
        Setter::Coroutine => rt
            .spawn(move || {
                if !delay.is_zero() {
                    weft::sleep(delay);
                }
                set();
                Instant::now()
            })
            .join()
            .expect("setter coroutine"),
        Setter::Thread => {
            if !delay.is_zero() {
                std::thread::sleep(delay);
            }
            set();
            Instant::now()
        }
    }
}

/// Waits up to `limit` for the parked call to finish. If it does not, `unblock` frees it (so
/// the test fails with a message instead of hanging) and the test fails. Checks that the call
/// parked on readiness (`io_waits` grew) rather than blocking its worker.
fn finish(
    rt: &weft::Runtime,
    call: ParkedCall,
    limit: Duration,
    what: &str,
    unblock: impl FnOnce(),
) -> Parked {
    if !support::wait_until(limit, || call.handle.is_finished()) {
        unblock();
        let _ = call.handle.join();
        panic!("{what}: the parked call was still parked {limit:?} after the timeout was set");
    }
    let parked = call.handle.join().expect("parked coroutine");
    let io_waits_after = support::io_waits(rt);
    assert!(
        io_waits_after > call.io_waits_before,
        "{what}: the call returned without a park on fd readiness (io_waits {} -> {io_waits_after})",
        call.io_waits_before
    );
    parked
}

/// Asserts that the parked call timed out at start + `timeout`: not before, and within
/// `SANE_LATENESS` after.
fn assert_parked_timed_out(parked: &Parked, timeout: Duration, what: &str) {
    assert_eq!(parked.result, Err(ErrorKind::TimedOut), "{what}");
    let took = parked.end - parked.start;
    assert!(took >= timeout, "{what}: timed out after {took:?}, before start + {timeout:?}");
    assert!(took < timeout + SANE_LATENESS, "{what}: timed out after {took:?}");
}

/// One read case: a coroutine parks in `read` on a stream with `initial` read timeout; after
/// `delay` the setter sets `new`. Returns the parked call's outcome and when `new` was set.
fn parked_read_case(
    name: &str,
    via_clone: bool,
    initial: Option<Duration>,
    delay: Duration,
    new: Option<Duration>,
    on_done: impl Fn(&Parked, Instant, &str),
) {
    let wd = support::watchdog(name, Duration::from_secs(60));
    for (mode, setter) in PARKED_CASES {
        let what = format!("{name} ({mode:?}, setter {setter:?})");
        wd.note(what.clone());
        let rt = support::runtime(2, mode);
        wd.watch_runtime("rt", &rt);
        let (client, mut server) = support::tcp_pair();
        client.set_read_timeout(initial).expect("set the initial read timeout");
        let client = Arc::new(client);
        let reader = {
            let client = Arc::clone(&client);
            start_parked(&rt, move || {
                let mut buf = [0u8; 64];
                let start = Instant::now();
                (start, (&*client).read(&mut buf))
            })
        };
        let set_at = {
            // Through a `try_clone` handle, or through the parked coroutine's own stream.
            let handle = match via_clone {
                true => Arc::new(client.try_clone().expect("try_clone")),
                false => Arc::clone(&client),
            };
            set_later(&rt, setter, delay, move || {
                handle.set_read_timeout(new).expect("set_read_timeout")
            })
        };
        let limit = new.unwrap_or(Duration::ZERO) + SANE_LATENESS;
        let parked = finish(&rt, reader, limit + Duration::from_secs(1), &what, || {
            let _ = server.write_all(b"unblock");
        });
        on_done(&parked, set_at, &what);
        drop(server);
    }
}

/// A coroutine parks in `read` with no timeout; another coroutine (or a thread) sets a 300 ms
/// read timeout at once: the read returns `TimedOut` 300 ms after it started.
#[test]
fn read_timeout_set_while_parked_fires_at_start_plus_timeout() {
    const NEW: Duration = Duration::from_millis(300);
    parked_read_case(
        "read_timeout_set_while_parked_fires_at_start_plus_timeout",
        false,
        None,
        Duration::ZERO,
        Some(NEW),
        |parked, _, what| assert_parked_timed_out(parked, NEW, what),
    );
}

/// A coroutine parks in `read` with no timeout; 1 s later a 600 ms timeout is set. Its
/// deadline (start + 600 ms) has passed, so the read returns `TimedOut` at once, not 600 ms
/// after the set.
#[test]
fn read_timeout_set_after_its_deadline_fires_at_once() {
    const DELAY: Duration = Duration::from_millis(1000);
    const NEW: Duration = Duration::from_millis(600);
    /// "At once": well under `NEW`, so a deadline of set-time + timeout fails.
    const PROMPT: Duration = Duration::from_millis(400);
    parked_read_case(
        "read_timeout_set_after_its_deadline_fires_at_once",
        false,
        None,
        DELAY,
        Some(NEW),
        |parked, set_at, what| {
            assert_eq!(parked.result, Err(ErrorKind::TimedOut), "{what}");
            let took = parked.end - parked.start;
            assert!(
                took >= DELAY,
                "{what}: the read returned after {took:?}, before the timeout was set"
            );
            let after_set = parked.end.saturating_duration_since(set_at);
            assert!(
                after_set < PROMPT,
                "{what}: a deadline already past when set fired {after_set:?} after the set"
            );
        },
    );
}

/// A coroutine parks in `read` under a 30 s timeout; a 200 ms timeout is set at once: the
/// read returns `TimedOut` 200 ms after it started.
#[test]
fn read_timeout_shortened_while_parked_takes_effect() {
    const NEW: Duration = Duration::from_millis(200);
    parked_read_case(
        "read_timeout_shortened_while_parked_takes_effect",
        false,
        Some(Duration::from_secs(30)),
        Duration::ZERO,
        Some(NEW),
        |parked, _, what| assert_parked_timed_out(parked, NEW, what),
    );
}

/// As [`read_timeout_set_while_parked_fires_at_start_plus_timeout`], with the timeout set
/// through a `try_clone` of the stream: clones share their settings, as std's do, so the
/// parked read must take it too.
#[test]
fn read_timeout_set_through_a_clone_while_parked_takes_effect() {
    const NEW: Duration = Duration::from_millis(300);
    parked_read_case(
        "read_timeout_set_through_a_clone_while_parked_takes_effect",
        true,
        None,
        Duration::ZERO,
        Some(NEW),
        |parked, _, what| assert_parked_timed_out(parked, NEW, what),
    );
}

/// A plain thread blocks in `read` with no timeout (in poll(2)); the test thread sets a 300 ms
/// read timeout, through the same stream and then through a `try_clone`: the read returns
/// `TimedOut` 300 ms after it started, give or take the thread's re-poll interval.
#[test]
fn read_timeout_set_while_a_thread_is_blocked_takes_effect() {
    const TEST: &str = "read_timeout_set_while_a_thread_is_blocked_takes_effect";
    const NEW: Duration = Duration::from_millis(300);
    let wd = support::watchdog(TEST, Duration::from_secs(60));
    for via_clone in [false, true] {
        let what = format!("{TEST} (via clone {via_clone})");
        wd.note(what.clone());
        let (client, mut server) = support::tcp_pair();
        let client = Arc::new(client);
        let tid = Arc::new(AtomicI32::new(0));
        let reader = std::thread::spawn({
            let (client, tid) = (Arc::clone(&client), Arc::clone(&tid));
            move || {
                support::publish_tid(&tid);
                let start = Instant::now();
                let result = (&*client).read(&mut [0u8; 64]).map_err(|e| e.kind());
                Parked { start, end: Instant::now(), result }
            }
        });
        let blocked = support::wait_sleeping(&tid, Duration::from_secs(10));
        assert!(blocked, "{what}: the reading thread never blocked");
        let clone;
        let handle: &TcpStream = if via_clone {
            clone = client.try_clone().expect("try_clone");
            &clone
        } else {
            &client
        };
        handle.set_read_timeout(Some(NEW)).expect("set_read_timeout");
        if !support::wait_until(NEW + SANE_LATENESS, || reader.is_finished()) {
            server.write_all(b"unblock").expect("peer write");
            let _ = reader.join();
            panic!(
                "{what}: the blocked read was still blocked {:?} after the set",
                NEW + SANE_LATENESS
            );
        }
        let parked = reader.join().expect("reading thread");
        assert_eq!(parked.result, Err(ErrorKind::TimedOut), "{what}");
        let took = parked.end - parked.start;
        assert!(took >= NEW, "{what}: timed out after {took:?}, before start + {NEW:?}");
    }
}

/// A coroutine parks in `read` under a 300 ms timeout; the timeout is cleared at once; the
/// peer writes 800 ms later: the read gets the bytes instead of timing out.
#[test]
fn read_timeout_cleared_while_parked_takes_effect() {
    const TEST: &str = "read_timeout_cleared_while_parked_takes_effect";
    const INITIAL: Duration = Duration::from_millis(300);
    const WRITE_AFTER: Duration = Duration::from_millis(800);
    let wd = support::watchdog(TEST, Duration::from_secs(60));
    for (mode, setter) in PARKED_CASES {
        let what = format!("{TEST} ({mode:?}, setter {setter:?})");
        wd.note(what.clone());
        let rt = support::runtime(2, mode);
        wd.watch_runtime("rt", &rt);
        let (client, mut server) = support::tcp_pair();
        client.set_read_timeout(Some(INITIAL)).expect("set_read_timeout");
        let client = Arc::new(client);
        let reader = {
            let client = Arc::clone(&client);
            start_parked(&rt, move || {
                let mut buf = [0u8; 64];
                let start = Instant::now();
                (start, (&*client).read(&mut buf))
            })
        };
        let c = Arc::clone(&client);
        set_later(&rt, setter, Duration::ZERO, move || c.set_read_timeout(None).expect("clear"));
        std::thread::sleep(WRITE_AFTER);
        server.write_all(b"hello").expect("peer write");
        let parked = finish(&rt, reader, SANE_LATENESS, &what, || {});
        assert_eq!(parked.result, Ok(5), "{what}: a cleared timeout still fired");
        assert!(parked.end - parked.start >= WRITE_AFTER, "{what}");
        assert_eq!(client.read_timeout().expect("read_timeout"), None, "{what}");
    }
}

/// A coroutine fills the send buffer and parks in `write` with no timeout; a 200 ms write
/// timeout is set: the write returns `TimedOut` 200 ms after it started.
#[test]
fn write_timeout_set_while_parked_fires_at_start_plus_timeout() {
    const TEST: &str = "write_timeout_set_while_parked_fires_at_start_plus_timeout";
    const NEW: Duration = Duration::from_millis(200);
    let wd = support::watchdog(TEST, Duration::from_secs(60));
    for (mode, setter) in PARKED_CASES {
        let what = format!("{TEST} ({mode:?}, setter {setter:?})");
        wd.note(what.clone());
        let rt = support::runtime(2, mode);
        wd.watch_runtime("rt", &rt);
        let (client, server) = support::tcp_pair();
        let client = Arc::new(client);
        let writer = {
            let client = Arc::clone(&client);
            start_parked(&rt, move || {
                let chunk = vec![7u8; CHUNK];
                let mut written = 0;
                loop {
                    let start = Instant::now();
                    match (&*client).write(&chunk) {
                        Ok(n) if written + n < MAX_FILL => written += n,
                        Ok(n) => return (start, Ok(written + n)),
                        Err(e) => return (start, Err(e)),
                    }
                }
            })
        };
        let c = Arc::clone(&client);
        let set_at = set_later(&rt, setter, Duration::ZERO, move || {
            c.set_write_timeout(Some(NEW)).expect("set")
        });
        // Dropping the peer with unread bytes resets the connection, which frees the writer.
        let parked = finish(&rt, writer, NEW + SANE_LATENESS, &what, move || drop(server));
        assert_parked_timed_out(&parked, NEW, &what);
        assert!(parked.end >= set_at, "{what}");
    }
}

// ---------------------------------------------------------------------------------------------
// Getters and zero timeouts
// ---------------------------------------------------------------------------------------------

/// The read and write timeouts of one socket: `get` starts at `None`, returns what `set` set,
/// and `None` again after clearing; a zero timeout is `InvalidInput` and changes nothing.
fn check_timeout_option(
    what: &str,
    set: &dyn Fn(Option<Duration>) -> io::Result<()>,
    get: &dyn Fn() -> io::Result<Option<Duration>>,
) {
    assert_eq!(get().expect("get"), None, "{what}: initial timeout");
    for d in [Duration::from_millis(250), Duration::from_secs(3), Duration::from_micros(1500)] {
        set(Some(d)).expect("set a timeout");
        assert_eq!(get().expect("get"), Some(d), "{what}: after setting {d:?}");
    }
    let err = set(Some(Duration::ZERO)).expect_err("a zero timeout must be rejected");
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{what}: zero timeout: {err}");
    assert_eq!(
        get().expect("get"),
        Some(Duration::from_micros(1500)),
        "{what}: after a failed set"
    );
    set(None).expect("clear the timeout");
    assert_eq!(get().expect("get"), None, "{what}: after clearing");
}

fn stream_timeout_options(what: &str, s: &dyn Stream) {
    check_timeout_option(&format!("{what} read"), &|d| s.set_read(d), &|| s.get_read());
    check_timeout_option(&format!("{what} write"), &|d| s.set_write(d), &|| s.get_write());
}

fn timeout_getters() {
    let (client, _server) = support::tcp_pair();
    stream_timeout_options("tcp", &client);
    let (a, _b) = UnixStream::pair().expect("UnixStream::pair");
    stream_timeout_options("unix stream", &a);

    let udp = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
    check_timeout_option("udp read", &|d| udp.set_read_timeout(d), &|| udp.read_timeout());
    check_timeout_option("udp write", &|d| udp.set_write_timeout(d), &|| udp.write_timeout());

    let path = support::TempPath::new("getters");
    let dgram = UnixDatagram::bind(path.path()).expect("bind a unix datagram socket");
    check_timeout_option("unix datagram read", &|d| dgram.set_read_timeout(d), &|| {
        dgram.read_timeout()
    });
    check_timeout_option("unix datagram write", &|d| dgram.set_write_timeout(d), &|| {
        dgram.write_timeout()
    });

    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("listener address");
    let err = TcpStream::connect_timeout(&addr, Duration::ZERO).expect_err("connect_timeout(0)");
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "connect_timeout with a zero timeout: {err}");
}

/// Timeout getters return what was set, on every socket type; zero timeouts are
/// `InvalidInput` (as std), including `connect_timeout`'s.
#[test]
fn timeout_getters_return_what_was_set_and_zero_is_invalid_input() {
    support::on_thread_and_coroutines(
        "timeout_getters_return_what_was_set_and_zero_is_invalid_input",
        timeout_getters,
    );
}
