//! API parity with std::net: what a program ported from std by changing its `use` lines relies
//! on.
//!
//! - `Read`/`Write` for `&TcpStream`: one coroutine reads while another writes the same stream,
//!   through `&TcpStream` and through `try_clone`; options set on a clone apply to the original.
//! - Vectored I/O, `peek`, `nodelay`, `ttl`, `local_addr`/`peer_addr`, `take_error`.
//! - `set_nonblocking(true)`: `read`, `write`, `accept`, `recv_from` return `WouldBlock`.
//! - `from_std`/`into_std` and `AsRawFd`/`IntoRawFd`/`FromRawFd` round trips.
//! - `incoming()`, `bind_reuse_port`, host-name resolution, bad addresses.
//! - The socket types are `Send + Sync`, and `&TcpStream`/`&UnixStream` are `Read + Write`.
//!
//! Coroutine checks run on a two-worker runtime, pinned and migrating; thread checks on the
//! test thread.

mod support;

use std::io::{self, ErrorKind, IoSlice, IoSliceMut, Read, Write};
use std::net::Shutdown;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, IntoRawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::{Stream, MODES};
use weft::net::{TcpListener, TcpStream, UdpSocket, UnixDatagram, UnixListener, UnixStream};

/// Bytes each direction carries in the concurrent read/write checks.
const DUPLEX_BYTES: usize = 1 << 20;

/// A bound on calls that must return at once (`WouldBlock`) or soon (a failed lookup).
const PROMPT: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn byte(i: usize) -> u8 {
    (i % 253) as u8
}

/// Writes `n` pattern bytes to `w` in uneven chunks.
fn write_pattern(mut w: impl Write, n: usize) {
    let source: Vec<u8> = (0..n).map(byte).collect();
    for chunk in source.chunks(7919) {
        w.write_all(chunk).expect("write_all");
    }
}

/// Reads `n` bytes from `r` and checks they are the pattern.
fn read_pattern(mut r: impl Read, n: usize, what: &str) {
    let mut got = vec![0u8; n];
    r.read_exact(&mut got).unwrap_or_else(|e| panic!("{what}: read_exact: {e}"));
    if let Some(i) = (0..n).find(|&i| got[i] != byte(i)) {
        panic!("{what}: byte {i} is {}, expected {}", got[i], byte(i));
    }
}

/// The kind of `result`'s error, or `None` for `Ok`.
fn err_kind<T>(result: io::Result<T>) -> Option<ErrorKind> {
    result.err().map(|e| e.kind())
}

// ---------------------------------------------------------------------------------------------
// Read and Write through &TcpStream
// ---------------------------------------------------------------------------------------------

/// One coroutine writes 1 MiB through `&S` (or a `try_clone`) while another reads the peer's
/// 1 MiB through `&S`; the peer echoes nothing but sends and receives on its own coroutines.
/// Both directions are checked byte for byte.
fn full_duplex<S: Stream>(rt: &weft::Runtime, (client, server): (S, S), kind: &str, via_clone: bool)
where
    for<'a> &'a S: Read + Write,
{
    let what = format!("{kind} full duplex (via clone {via_clone})");
    let client = Arc::new(client);
    let server = Arc::new(server);
    let writer = if via_clone {
        let clone = client.try_clone().expect("try_clone");
        rt.spawn(move || write_pattern(&clone, DUPLEX_BYTES))
    } else {
        let client = Arc::clone(&client);
        rt.spawn(move || write_pattern(&*client, DUPLEX_BYTES))
    };
    let reader = {
        let client = Arc::clone(&client);
        let what = what.clone();
        rt.spawn(move || read_pattern(&*client, DUPLEX_BYTES, &format!("{what}: client")))
    };
    let peer_writer = {
        let server = Arc::clone(&server);
        rt.spawn(move || write_pattern(&*server, DUPLEX_BYTES))
    };
    let peer_reader = {
        let what = what.clone();
        rt.spawn(move || read_pattern(&*server, DUPLEX_BYTES, &format!("{what}: server")))
    };
    for (name, h) in [
        ("writer", writer),
        ("reader", reader),
        ("peer writer", peer_writer),
        ("peer reader", peer_reader),
    ] {
        h.join().unwrap_or_else(|_| panic!("{what}: {name} panicked"));
    }
}

/// `&TcpStream` is `Read` and `Write`: two coroutines use one stream at once, directly and
/// through `try_clone`, 1 MiB each way.
#[test]
fn tcp_stream_by_reference_reads_and_writes_concurrently() {
    let wd = support::watchdog(
        "tcp_stream_by_reference_reads_and_writes_concurrently",
        Duration::from_secs(60),
    );
    for mode in MODES {
        let rt = support::runtime(2, mode);
        wd.watch_runtime("rt", &rt);
        for via_clone in [false, true] {
            wd.note(format!("{mode:?}, via clone {via_clone}"));
            full_duplex(&rt, support::tcp_pair(), "tcp", via_clone);
        }
    }
}

/// `&UnixStream` is `Read` and `Write` too: the same with a `UnixStream::pair`.
#[test]
fn unix_stream_by_reference_reads_and_writes_concurrently() {
    let wd = support::watchdog(
        "unix_stream_by_reference_reads_and_writes_concurrently",
        Duration::from_secs(60),
    );
    for mode in MODES {
        wd.note(format!("{mode:?}"));
        let rt = support::runtime(2, mode);
        wd.watch_runtime("rt", &rt);
        full_duplex(&rt, UnixStream::pair().expect("pair"), "unix", true);
    }
}

/// A read on `stream` that the peer frees (by writing one byte) if it is still blocked after
/// `STUCK`: returns what the read returned, and whether the peer had to free it.
fn read_unless_stuck(stream: &TcpStream, peer: TcpStream) -> (io::Result<usize>, bool, TcpStream) {
    const STUCK: Duration = Duration::from_secs(2);
    let done = Arc::new(AtomicBool::new(false));
    let freer = std::thread::spawn({
        let done = Arc::clone(&done);
        move || {
            let stuck = !support::wait_until(STUCK, || done.load(Ordering::SeqCst));
            if stuck {
                (&peer).write_all(b"x").expect("free the stuck read");
            }
            (stuck, peer)
        }
    });
    let result = (&*stream).read(&mut [0u8; 8]);
    done.store(true, Ordering::SeqCst);
    let (stuck, peer) = freer.join().expect("freer thread");
    (result, stuck, peer)
}

/// Options set through a `try_clone` apply to the original, as std documents ("options set on
/// one stream will be propagated to the other"): the timeouts (their getters, and a read that
/// times out), non-blocking mode, and `nodelay`. Every difference is listed before failing.
fn clone_shares_options() {
    const TIMEOUT: Duration = Duration::from_millis(50);
    let (client, server) = support::tcp_pair();
    let clone = client.try_clone().expect("try_clone");
    let mut differences = Vec::new();

    clone.set_read_timeout(Some(TIMEOUT)).expect("set_read_timeout");
    clone.set_write_timeout(Some(TIMEOUT * 2)).expect("set_write_timeout");
    let read_timeout = client.read_timeout().expect("read_timeout");
    if read_timeout != Some(TIMEOUT) {
        differences.push(format!("original's read_timeout() is {read_timeout:?}"));
    }
    let write_timeout = client.write_timeout().expect("write_timeout");
    if write_timeout != Some(TIMEOUT * 2) {
        differences.push(format!("original's write_timeout() is {write_timeout:?}"));
    }
    let (result, stuck, server) = read_unless_stuck(&client, server);
    if err_kind(result) != Some(ErrorKind::TimedOut) || stuck {
        differences.push(format!(
            "a read on the original did not time out (still blocked after 2 s: {stuck})"
        ));
    }
    clone.set_read_timeout(None).expect("set_read_timeout");
    client.set_read_timeout(None).expect("set_read_timeout");

    clone.set_nonblocking(true).expect("set_nonblocking");
    let (result, stuck, _server) = read_unless_stuck(&client, server);
    if !matches!(&result, Err(e) if e.kind() == ErrorKind::WouldBlock) {
        differences.push(format!(
            "a read on the original gave {result:?}, not WouldBlock (blocked 2 s: {stuck})"
        ));
    }
    clone.set_nonblocking(false).expect("set_nonblocking");

    clone.set_nodelay(true).expect("set_nodelay");
    if !client.nodelay().expect("nodelay") {
        differences.push("original's nodelay() is false".to_owned());
    }
    assert!(
        differences.is_empty(),
        "options set on a try_clone did not reach the original:\n{}",
        differences.join("\n")
    );
}

#[test]
fn options_set_on_a_clone_apply_to_the_original() {
    support::on_thread_and_coroutines(
        "options_set_on_a_clone_apply_to_the_original",
        clone_shares_options,
    );
}

// ---------------------------------------------------------------------------------------------
// Vectored I/O, peek, options, addresses
// ---------------------------------------------------------------------------------------------

fn vectored_and_peek() {
    let (mut client, mut server) = support::tcp_pair();
    let parts: [&[u8]; 3] = [b"vectored ", b"writes ", b"gather"];
    let slices = parts.map(IoSlice::new);
    // Into an empty socket buffer, writev takes every slice at once.
    assert_eq!(client.write_vectored(&slices).expect("write_vectored"), 22);

    // peek does not consume: wait until all 22 bytes show, then read them.
    let mut peeked = [0u8; 64];
    let mut n = 0;
    let all_there = support::wait_until(PROMPT, || {
        n = server.peek(&mut peeked).expect("peek");
        n == 22
    });
    assert!(all_there, "peek saw {n} of 22 bytes");
    assert_eq!(&peeked[..22], b"vectored writes gather");
    let (mut first, mut second) = ([0u8; 9], [0u8; 64]);
    let mut bufs = [IoSliceMut::new(&mut first), IoSliceMut::new(&mut second)];
    assert_eq!(server.read_vectored(&mut bufs).expect("read_vectored"), 22);
    assert_eq!(&first, b"vectored ");
    assert_eq!(&second[..13], b"writes gather");

    // Through references, and for Unix streams.
    assert_eq!(
        (&server).write_vectored(&[IoSlice::new(b"ab"), IoSlice::new(b"cd")]).expect("writev"),
        4
    );
    let mut got = [0u8; 4];
    (&client).read_exact(&mut got).expect("read");
    assert_eq!(&got, b"abcd");
    let (mut a, mut b) = UnixStream::pair().expect("pair");
    assert_eq!(a.write_vectored(&slices).expect("unix write_vectored"), 22);
    let (mut first, mut second) = ([0u8; 9], [0u8; 13]);
    let mut bufs = [IoSliceMut::new(&mut first), IoSliceMut::new(&mut second)];
    assert_eq!(b.read_vectored(&mut bufs).expect("unix read_vectored"), 22);
    assert_eq!((&first, &second), (b"vectored ", b"writes gather"));
}

/// `write_vectored` gathers every slice, `read_vectored` scatters, `peek` leaves bytes for
/// `read`; for `TcpStream`, `&TcpStream` and `UnixStream`.
#[test]
fn vectored_io_and_peek() {
    support::on_thread_and_coroutines("vectored_io_and_peek", vectored_and_peek);
}

fn options_and_addresses() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("local_addr");
    assert!(addr.ip().is_loopback() && addr.port() != 0, "{addr}");
    let client = TcpStream::connect(addr).expect("connect");
    let (server, accepted_from) = listener.accept().expect("accept");

    assert_eq!(client.peer_addr().expect("peer_addr"), addr);
    assert_eq!(server.local_addr().expect("local_addr"), addr);
    assert_eq!(server.peer_addr().expect("peer_addr"), client.local_addr().expect("local_addr"));
    assert_eq!(accepted_from, client.local_addr().unwrap());

    for on in [true, false, true] {
        client.set_nodelay(on).expect("set_nodelay");
        assert_eq!(client.nodelay().expect("nodelay"), on);
    }
    for ttl in [42, 1, 255] {
        client.set_ttl(ttl).expect("set_ttl");
        assert_eq!(client.ttl().expect("ttl"), ttl);
        listener.set_ttl(ttl).expect("listener set_ttl");
        assert_eq!(listener.ttl().expect("listener ttl"), ttl);
    }
    assert!(client.take_error().expect("take_error").is_none());
    assert!(server.take_error().expect("take_error").is_none());
    assert!(listener.take_error().expect("take_error").is_none());

    let udp = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
    udp.set_ttl(7).expect("udp set_ttl");
    assert_eq!(udp.ttl().expect("udp ttl"), 7);
    assert!(udp.take_error().expect("udp take_error").is_none());

    // shutdown(Both) on one end: the other reads EOF.
    client.shutdown(Shutdown::Both).expect("shutdown(Both)");
    assert_eq!((&server).read(&mut [0u8; 8]).expect("read after the peer's shutdown"), 0);
}

/// `nodelay`, `ttl` (stream, listener, UDP), addresses, `take_error` read back what was set
/// or what is true.
#[test]
fn options_and_addresses_read_back() {
    support::on_thread_and_coroutines("options_and_addresses_read_back", options_and_addresses);
}

// ---------------------------------------------------------------------------------------------
// Non-blocking mode
// ---------------------------------------------------------------------------------------------

fn nonblocking_mode() {
    let assert_would_block = |what: &str, result: Option<ErrorKind>, start: Instant| {
        assert_eq!(result, Some(ErrorKind::WouldBlock), "{what} in non-blocking mode");
        assert!(start.elapsed() < PROMPT, "{what}: WouldBlock took {:?}", start.elapsed());
    };

    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("set_nonblocking");
    let start = Instant::now();
    assert_would_block("TcpListener::accept", err_kind(listener.accept()), start);
    let client = TcpStream::connect(listener.local_addr().unwrap()).expect("connect");
    // The server side is queued when the handshake's last ACK is processed, which may be just
    // after connect returns: poll the non-blocking accept until it takes the connection.
    let mut server = None;
    let took = support::wait_until(PROMPT, || match listener.accept() {
        Ok((stream, _)) => {
            server = Some(stream);
            true
        }
        Err(e) if e.kind() == ErrorKind::WouldBlock => false,
        Err(e) => panic!("non-blocking accept: {e}"),
    });
    assert!(took, "a non-blocking accept never took a connected client");

    client.set_nonblocking(true).expect("set_nonblocking");
    let start = Instant::now();
    assert_would_block("TcpStream::read", err_kind((&client).read(&mut [0u8; 8])), start);
    // Writes fill the buffer, then WouldBlock.
    let chunk = vec![1u8; 64 << 10];
    let mut written = 0usize;
    let start = Instant::now();
    let result = loop {
        match (&client).write(&chunk) {
            Ok(n) => {
                written += n;
                assert!(written < 256 << 20, "non-blocking writes never filled the buffer");
            }
            Err(e) => break e,
        }
    };
    assert_would_block("TcpStream::write on a full buffer", Some(result.kind()), start);

    // Back to blocking: a read waits (here until its timeout) instead of WouldBlock.
    let (reader, _peer) = support::tcp_pair();
    reader.set_nonblocking(true).expect("set_nonblocking");
    reader.set_nonblocking(false).expect("set_nonblocking(false)");
    reader.set_read_timeout(Some(Duration::from_millis(50))).expect("set_read_timeout");
    let start = Instant::now();
    assert_eq!(err_kind((&reader).read(&mut [0u8; 8])), Some(ErrorKind::TimedOut));
    assert!(start.elapsed() >= Duration::from_millis(50));
    drop(server);

    let udp = UdpSocket::bind("127.0.0.1:0").expect("bind");
    udp.set_nonblocking(true).expect("set_nonblocking");
    let start = Instant::now();
    assert_would_block("UdpSocket::recv_from", err_kind(udp.recv_from(&mut [0u8; 8])), start);

    let path = support::TempPath::new("nonblocking");
    let unix_listener = UnixListener::bind(path.path()).expect("bind");
    unix_listener.set_nonblocking(true).expect("set_nonblocking");
    let start = Instant::now();
    assert_would_block("UnixListener::accept", err_kind(unix_listener.accept()), start);
    let (a, _b) = UnixStream::pair().expect("pair");
    a.set_nonblocking(true).expect("set_nonblocking");
    let start = Instant::now();
    assert_would_block("UnixStream::read", err_kind((&a).read(&mut [0u8; 8])), start);
    let (d, _e) = UnixDatagram::pair().expect("pair");
    d.set_nonblocking(true).expect("set_nonblocking");
    let start = Instant::now();
    assert_would_block("UnixDatagram::recv", err_kind(d.recv(&mut [0u8; 8])), start);
}

/// `set_nonblocking(true)` makes calls that would block return `WouldBlock`, as in std:
/// accept, read and write (TCP), recv_from (UDP), accept, read, recv (Unix);
/// `set_nonblocking(false)` makes them block again.
#[test]
fn nonblocking_calls_return_would_block() {
    support::on_thread_and_coroutines("nonblocking_calls_return_would_block", nonblocking_mode);
}

// ---------------------------------------------------------------------------------------------
// from_std / into_std, raw fds
// ---------------------------------------------------------------------------------------------

/// A std listener converted with `from_std` accepts in a coroutine (parked until a thread
/// connects); an accepted weft stream converted with `into_std` is blocking again and keeps
/// working with std's own calls; a std stream converted with `from_std` works in a coroutine.
#[test]
fn from_std_and_into_std_round_trip() {
    let wd = support::watchdog("from_std_and_into_std_round_trip", Duration::from_secs(60));
    for mode in MODES {
        wd.note(format!("{mode:?}"));
        let rt = support::runtime(2, mode);
        wd.watch_runtime("rt", &rt);
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("std bind");
        let addr = std_listener.local_addr().unwrap();
        let listener = TcpListener::from_std(std_listener).expect("TcpListener::from_std");
        assert_eq!(listener.local_addr().unwrap(), addr);
        let accepted = rt.spawn(move || {
            let (stream, _) = listener.accept().expect("accept on a from_std listener");
            (listener, stream)
        });
        let mut std_client = std::net::TcpStream::connect(addr).expect("std connect");
        let (listener, stream) = accepted.join().expect("accepting coroutine");

        // into_std: blocking, and std's calls work on it.
        let mut std_server = stream.into_std().expect("TcpStream::into_std");
        assert!(
            !support::is_nonblocking(std_server.as_raw_fd()),
            "into_std gave a non-blocking stream"
        );
        std_client.write_all(b"to std").expect("std write");
        let mut got = [0u8; 6];
        std_server.read_exact(&mut got).expect("std read");
        assert_eq!(&got, b"to std");
        std_server.write_all(b"from std").expect("std write");
        let mut got = [0u8; 8];
        std_client.read_exact(&mut got).expect("std read");
        assert_eq!(&got, b"from std");

        // from_std of a blocking std stream: works in a coroutine, parking on reads.
        let stream = TcpStream::from_std(std_server).expect("TcpStream::from_std");
        let reader = rt.spawn(move || {
            let mut got = [0u8; 5];
            (&stream).read_exact(&mut got).expect("read on a from_std stream");
            (&stream).write_all(&got).expect("write on a from_std stream");
            got
        });
        std_client.write_all(b"again").expect("std write");
        assert_eq!(&reader.join().expect("reader"), b"again");
        let mut got = [0u8; 5];
        std_client.read_exact(&mut got).expect("std read");
        assert_eq!(&got, b"again");

        // The listener back to std: blocking, and accepts.
        let std_listener = listener.into_std().expect("TcpListener::into_std");
        assert!(
            !support::is_nonblocking(std_listener.as_raw_fd()),
            "into_std gave a non-blocking listener"
        );
        let _c = std::net::TcpStream::connect(addr).expect("std connect");
        std_listener.accept().expect("std accept after into_std");

        // UDP and Unix types round-trip too.
        let udp = UdpSocket::from_std(std::net::UdpSocket::bind("127.0.0.1:0").unwrap())
            .expect("from_std");
        let udp = udp.into_std().expect("into_std");
        assert!(!support::is_nonblocking(udp.as_raw_fd()));
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let a = UnixStream::from_std(a).expect("UnixStream::from_std");
        rt.block_on(|| {
            let mut b = b;
            b.write_all(b"unix").unwrap();
            let mut got = [0u8; 4];
            (&a).read_exact(&mut got).expect("read on a from_std unix stream");
            assert_eq!(&got, b"unix");
        });
        let a = a.into_std().expect("UnixStream::into_std");
        assert!(!support::is_nonblocking(a.as_raw_fd()));
    }
}

/// A stream the user set non-blocking stays non-blocking through `into_std`: std's socket
/// then behaves as the weft one did.
#[test]
fn into_std_keeps_a_user_set_nonblocking_mode() {
    let _wd =
        support::watchdog("into_std_keeps_a_user_set_nonblocking_mode", Duration::from_secs(30));
    let (client, _server) = support::tcp_pair();
    client.set_nonblocking(true).expect("set_nonblocking");
    let std_client = client.into_std().expect("into_std");
    assert!(
        support::is_nonblocking(std_client.as_raw_fd()),
        "into_std dropped the user's non-blocking mode"
    );
}

/// `as_raw_fd`, `as_fd`, `into_raw_fd` agree; `from_raw_fd` of that fd gives a working
/// stream (in a coroutine, parked on reads), for TCP streams, listeners and Unix streams.
#[test]
fn raw_fd_round_trip() {
    let wd = support::watchdog("raw_fd_round_trip", Duration::from_secs(60));
    for mode in MODES {
        wd.note(format!("{mode:?}"));
        let rt = support::runtime(2, mode);
        wd.watch_runtime("rt", &rt);
        let (client, mut server) = support::tcp_pair();
        let fd = client.as_raw_fd();
        assert_eq!(client.as_fd().as_raw_fd(), fd);
        let raw = client.into_raw_fd();
        assert_eq!(raw, fd);
        // SAFETY: `raw` came from `into_raw_fd` just above; nothing else owns or closes it.
        let client = unsafe { TcpStream::from_raw_fd(raw) };
        let reader = rt.spawn(move || {
            let mut got = [0u8; 3];
            (&client).read_exact(&mut got).expect("read on a from_raw_fd stream");
            (&client).write_all(b"pong").expect("write");
            got
        });
        server.write_all(b"raw").expect("write");
        assert_eq!(&reader.join().expect("reader"), b"raw");
        let mut got = [0u8; 4];
        server.read_exact(&mut got).expect("read");
        assert_eq!(&got, b"pong");

        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().unwrap();
        let raw = listener.into_raw_fd();
        // SAFETY: `raw` came from `into_raw_fd` just above; nothing else owns or closes it.
        let listener = unsafe { TcpListener::from_raw_fd(raw) };
        assert_eq!(listener.as_raw_fd(), raw);
        let acceptor = rt.spawn(move || listener.accept().map(|(_, from)| from).expect("accept"));
        let c = TcpStream::connect(addr).expect("connect");
        assert_eq!(acceptor.join().expect("acceptor"), c.local_addr().unwrap());

        let (a, b) = UnixStream::pair().expect("pair");
        let raw = a.into_raw_fd();
        // SAFETY: `raw` came from `into_raw_fd` just above; nothing else owns or closes it.
        let a = unsafe { UnixStream::from_raw_fd(raw) };
        rt.block_on(|| {
            (&b).write_all(b"fd").unwrap();
            let mut got = [0u8; 2];
            (&a).read_exact(&mut got).expect("read on a from_raw_fd unix stream");
            assert_eq!(&got, b"fd");
        });
    }
}

// ---------------------------------------------------------------------------------------------
// incoming, SO_REUSEPORT
// ---------------------------------------------------------------------------------------------

/// `incoming()` in a coroutine yields each connection in turn; each is answered.
#[test]
fn incoming_yields_each_connection() {
    const CLIENTS: usize = 8;
    let wd = support::watchdog("incoming_yields_each_connection", Duration::from_secs(60));
    for mode in MODES {
        wd.note(format!("{mode:?}"));
        let rt = support::runtime(2, mode);
        wd.watch_runtime("rt", &rt);
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().unwrap();
        let server = rt.spawn(move || {
            let mut served = 0;
            for stream in listener.incoming().take(CLIENTS) {
                let stream = stream.expect("incoming");
                let mut id = [0u8; 1];
                (&stream).read_exact(&mut id).expect("read");
                (&stream).write_all(&[id[0] ^ 0xff]).expect("write");
                served += 1;
            }
            served
        });
        let clients: Vec<_> = (0..CLIENTS as u8)
            .map(|i| {
                rt.spawn(move || {
                    let mut s = TcpStream::connect(addr).expect("connect");
                    s.write_all(&[i]).expect("write");
                    let mut got = [0u8; 1];
                    s.read_exact(&mut got).expect("read");
                    assert_eq!(got[0], i ^ 0xff);
                })
            })
            .collect();
        for c in clients {
            c.join().expect("client");
        }
        assert_eq!(server.join().expect("server"), CLIENTS);
    }
}

/// Two listeners bind the same port with `bind_reuse_port`, where a plain `bind` fails with
/// `AddrInUse`; 64 connections to the port are all queued on one or the other, and the
/// kernel spreads them over both.
#[test]
fn bind_reuse_port_shares_a_port() {
    const CONNECTIONS: usize = 64;
    let _wd = support::watchdog("bind_reuse_port_shares_a_port", Duration::from_secs(60));
    let first = TcpListener::bind_reuse_port("127.0.0.1:0").expect("bind_reuse_port");
    let addr = first.local_addr().unwrap();
    let second = TcpListener::bind_reuse_port(addr).expect("a second bind_reuse_port, same port");
    assert_eq!(second.local_addr().unwrap(), addr);
    assert_eq!(err_kind(TcpListener::bind(addr)), Some(ErrorKind::AddrInUse));

    let clients: Vec<TcpStream> =
        (0..CONNECTIONS).map(|_| TcpStream::connect(addr).expect("connect")).collect();
    first.set_nonblocking(true).expect("set_nonblocking");
    second.set_nonblocking(true).expect("set_nonblocking");
    // Drain both queues until every connection has been accepted (the last handshakes may
    // complete on the server side just after their connects return).
    let mut accepted = [0usize; 2];
    let all = support::wait_until(PROMPT, || {
        for (i, listener) in [&first, &second].into_iter().enumerate() {
            loop {
                match listener.accept() {
                    Ok(_) => accepted[i] += 1,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) => panic!("accept: {e}"),
                }
            }
        }
        accepted[0] + accepted[1] >= CONNECTIONS
    });
    assert!(all, "accepted {accepted:?} of {CONNECTIONS} connections");
    assert_eq!(accepted[0] + accepted[1], CONNECTIONS, "accepted {accepted:?}");
    assert!(accepted[0] > 0 && accepted[1] > 0, "one listener got every connection: {accepted:?}");
    drop(clients);
}

// ---------------------------------------------------------------------------------------------
// Host names and bad addresses
// ---------------------------------------------------------------------------------------------

fn host_names() {
    let listener = TcpListener::bind("localhost:0").expect("bind localhost:0");
    let addr = listener.local_addr().unwrap();
    assert!(addr.ip().is_loopback(), "localhost bound {addr}");
    let port = addr.port();
    let text = format!("localhost:{port}");
    let clients = [
        TcpStream::connect(text.as_str()).expect("connect \"localhost:PORT\""),
        TcpStream::connect(text.clone()).expect("connect String"),
        TcpStream::connect(("localhost", port)).expect("connect (\"localhost\", PORT)"),
        TcpStream::connect(&[addr][..]).expect("connect &[SocketAddr]"),
        TcpStream::connect((addr.ip(), port)).expect("connect (IpAddr, u16)"),
    ];
    for client in &clients {
        let (server, from) = listener.accept().expect("accept");
        assert_eq!(from, client.local_addr().unwrap());
        drop(server);
    }

    let udp = UdpSocket::bind("localhost:0").expect("udp bind localhost:0");
    let peer = UdpSocket::bind("127.0.0.1:0").expect("udp bind");
    let to = format!("localhost:{}", peer.local_addr().unwrap().port());
    assert_eq!(udp.send_to(b"by name", to.as_str()).expect("send_to \"localhost:PORT\""), 7);
    let mut buf = [0u8; 16];
    let (n, from) = peer.recv_from(&mut buf).expect("recv_from");
    assert_eq!((&buf[..n], from), (&b"by name"[..], udp.local_addr().unwrap()));
    udp.connect(to.as_str()).expect("udp connect \"localhost:PORT\"");
    assert_eq!(udp.peer_addr().unwrap(), peer.local_addr().unwrap());
}

/// Host names resolve (`"localhost:PORT"`, `String`, `("localhost", PORT)`) for
/// `TcpListener::bind`, `TcpStream::connect`, `UdpSocket::bind`/`send_to`/`connect`, from the
/// test thread and from coroutines; `&[SocketAddr]` and `(IpAddr, u16)` work too.
#[test]
fn host_names_resolve() {
    support::on_thread_and_coroutines("host_names_resolve", host_names);
}

fn bad_addresses() {
    // An unresolvable host: an error within PROMPT, and not one that means "try again".
    let start = Instant::now();
    let result = err_kind(TcpStream::connect("no-such-host.invalid:80"));
    let took = start.elapsed();
    assert!(
        !matches!(result, None | Some(ErrorKind::WouldBlock | ErrorKind::TimedOut)),
        "connect to an unresolvable host gave {result:?}"
    );
    assert!(took < PROMPT, "connect to an unresolvable host took {took:?}");
    assert!(UdpSocket::bind("no-such-host.invalid:0").is_err(), "udp bind to an unresolvable host");

    // Malformed addresses: the error kind std gives, without a lookup.
    for bad in ["localhost", "localhost:notaport", "127.0.0.1:99999", ""] {
        let ours = err_kind(TcpStream::connect(bad));
        assert!(ours.is_some(), "connect({bad:?}) succeeded");
        assert_eq!(ours, err_kind(std::net::TcpStream::connect(bad)), "connect({bad:?}) vs std");
        let ours = err_kind(UdpSocket::bind(bad));
        assert_eq!(ours, err_kind(std::net::UdpSocket::bind(bad)), "udp bind({bad:?}) vs std");
        let ours = err_kind(TcpListener::bind(bad));
        assert_eq!(ours, err_kind(std::net::TcpListener::bind(bad)), "bind({bad:?}) vs std");
    }
}

/// An unresolvable host is an error, promptly; missing or bad ports and empty strings give the
/// error kind std gives; from the test thread and from coroutines.
#[test]
fn bad_addresses_are_errors_not_hangs() {
    support::on_thread_and_coroutines("bad_addresses_are_errors_not_hangs", bad_addresses);
}

// ---------------------------------------------------------------------------------------------
// Compile-time guarantees
// ---------------------------------------------------------------------------------------------

fn assert_send<T: Send>() {}
fn assert_sync<T: Sync>() {}
fn assert_read_write<T: Read + Write>() {}

/// Every socket type is `Send + Sync` (as std's are), and `&TcpStream`/`&UnixStream` are
/// `Read + Write`. This is checked when the test compiles; running it checks nothing more.
#[test]
fn socket_types_are_send_sync_and_by_ref_read_write() {
    assert_send::<TcpListener>();
    assert_sync::<TcpListener>();
    assert_send::<TcpStream>();
    assert_sync::<TcpStream>();
    assert_send::<UdpSocket>();
    assert_sync::<UdpSocket>();
    assert_send::<UnixListener>();
    assert_sync::<UnixListener>();
    assert_send::<UnixStream>();
    assert_sync::<UnixStream>();
    assert_send::<UnixDatagram>();
    assert_sync::<UnixDatagram>();
    assert_read_write::<TcpStream>();
    assert_read_write::<&TcpStream>();
    assert_read_write::<UnixStream>();
    assert_read_write::<&UnixStream>();
}
