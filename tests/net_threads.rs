//! weft's sockets outside the runtime: on the test thread and on plain std threads, every
//! socket type blocks the thread (in poll(2)) and works, including `accept`/`recv_from`
//! blocking until a peer shows up; plain-thread clients talk to a coroutine server and
//! coroutine clients to a plain-thread server; and a socket moves between threads,
//! coroutines and runtimes (the one it was first parked on already dropped) and keeps working.
//!
//! "Blocked" is observed, not slept on: the blocked thread publishes its tid, and the test
//! waits until `/proc/self/task/<tid>/stat` shows it asleep in the kernel (state `S`).

mod support;

use std::io::{Read, Write};
use std::net::Shutdown;
use std::path::Path;
use std::sync::atomic::AtomicI32;
use std::sync::Arc;
use std::time::Duration;

use support::{Mode, Stream};
use weft::net::{TcpListener, TcpStream, UdpSocket, UnixDatagram, UnixListener, UnixStream};

/// Clients per server.
const CLIENTS: usize = 6;

/// Bytes each stream client sends: above a socket buffer, so both ends block on writes.
const PAYLOAD: usize = 384 << 10;

/// How long a blocked call may take to block or to notice its peer.
const PATIENCE: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------------
// Threads that can be watched blocking
// ---------------------------------------------------------------------------------------------

/// A std thread that publishes its tid before running its body.
struct Watched<T> {
    handle: std::thread::JoinHandle<T>,
    tid: Arc<AtomicI32>,
}

fn spawn_watched<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Watched<T> {
    let tid = Arc::new(AtomicI32::new(0));
    let published = Arc::clone(&tid);
    let handle = std::thread::spawn(move || {
        support::publish_tid(&published);
        f()
    });
    Watched { handle, tid }
}

impl<T> Watched<T> {
    /// Waits until the thread sleeps in the kernel, and checks it has not returned.
    fn wait_blocked(&self, what: &str) {
        let blocked = support::wait_sleeping(&self.tid, PATIENCE);
        assert!(blocked, "{what}: the thread never blocked");
        assert!(!self.handle.is_finished(), "{what}: returned before its peer came");
    }

    fn join(self) -> T {
        self.handle.join().expect("watched thread panicked")
    }
}

// ---------------------------------------------------------------------------------------------
// Stream helpers
// ---------------------------------------------------------------------------------------------

/// The payload of client `client`.
fn payload(client: usize) -> Vec<u8> {
    (0..PAYLOAD).map(|i| (i.wrapping_mul(31) ^ client) as u8).collect()
}

/// Takes `CLIENTS` connections from `incoming` and echoes each on its own thread; returns the
/// bytes echoed in all.
fn echo_each_on_threads<S: Read + Write + Send + 'static>(
    incoming: impl Iterator<Item = std::io::Result<S>>,
) -> usize {
    let handlers: Vec<_> = incoming
        .take(CLIENTS)
        .map(|stream| {
            let stream = stream.expect("incoming");
            std::thread::spawn(move || support::echo_until_eof(stream))
        })
        .collect();
    handlers.into_iter().map(|h| h.join().expect("echo thread")).sum()
}

/// Takes `CLIENTS` connections from `accept` and echoes each in its own coroutine; returns
/// the bytes echoed in all.
fn echo_each_in_coroutines<S: Read + Write + Send + 'static>(
    mut accept: impl FnMut() -> S,
) -> usize {
    let handlers: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let stream = accept();
            weft::spawn(move || support::echo_until_eof(stream))
        })
        .collect();
    handlers.into_iter().map(|h| h.join().expect("echo coroutine")).sum()
}

/// Client side on plain threads: a second thread writes `sent` through a clone of `reader` and
/// shuts it down for writing, while this thread reads the echo from `reader` to EOF.
fn exchange_on_threads<S: Stream>(mut reader: S, sent: Vec<u8>, what: &str) {
    let writer = reader.try_clone().expect("try_clone");
    let len = sent.len();
    let writing = std::thread::spawn(move || {
        let mut writer = writer;
        writer.write_all(&sent).expect("client write_all");
        writer.shutdown(Shutdown::Write).expect("shutdown(Write)");
        sent
    });
    let mut got = Vec::with_capacity(len);
    reader.read_to_end(&mut got).unwrap_or_else(|e| panic!("{what}: read_to_end: {e}"));
    let sent = writing.join().expect("writer thread");
    assert_eq!(got.len(), len, "{what}: echo length");
    assert!(got == sent, "{what}: echo differs");
}

/// Client `client` on plain threads over `stream` (a `kind` stream); returns the bytes sent.
fn client_on_threads<S: Stream>(stream: S, kind: &str, client: usize) -> usize {
    let sent = payload(client);
    let len = sent.len();
    exchange_on_threads(stream, sent, &format!("{kind} thread client {client}"));
    len
}

fn tcp_client_on_threads(addr: std::net::SocketAddr, client: usize) -> usize {
    client_on_threads(TcpStream::connect(addr).expect("connect"), "tcp", client)
}

fn unix_client_on_threads(path: &Path, client: usize) -> usize {
    client_on_threads(UnixStream::connect(path).expect("connect"), "unix", client)
}

// ---------------------------------------------------------------------------------------------
// Everything on plain threads
// ---------------------------------------------------------------------------------------------

/// TCP without a runtime: a thread blocks in `accept` until the test thread connects, and
/// echoes; then a thread serving `incoming()` (a thread per connection) echoes 384 KiB to
/// each of several client threads.
#[test]
fn tcp_on_plain_threads() {
    let _wd = support::watchdog("tcp_on_plain_threads", Duration::from_secs(60));
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("local_addr");

    let acceptor = spawn_watched(move || {
        let (stream, peer) = listener.accept().expect("accept");
        let echoed = support::echo_until_eof(&stream);
        (listener, peer, echoed)
    });
    acceptor.wait_blocked("accept with no client");
    let mut client = TcpStream::connect(addr).expect("connect");
    client.write_all(b"hello from the test thread").expect("write");
    let mut got = [0u8; 26];
    client.read_exact(&mut got).expect("read the echo");
    assert_eq!(&got, b"hello from the test thread");
    client.shutdown(Shutdown::Write).expect("shutdown(Write)");
    let (listener, peer, echoed) = acceptor.join();
    assert_eq!(peer, client.local_addr().expect("client local_addr"));
    assert_eq!(echoed, 26);

    let server = std::thread::spawn(move || echo_each_on_threads(listener.incoming()));
    let clients: Vec<_> =
        (0..CLIENTS).map(|c| std::thread::spawn(move || tcp_client_on_threads(addr, c))).collect();
    let sent: usize = clients.into_iter().map(|h| h.join().expect("client thread")).sum();
    assert_eq!(server.join().expect("server thread"), sent);
}

/// UDP without a runtime: a thread blocks in `recv_from` until the test thread sends, and
/// echoes; `send`/`recv` on connected sockets across two threads.
#[test]
fn udp_on_plain_threads() {
    let _wd = support::watchdog("udp_on_plain_threads", Duration::from_secs(60));
    let server = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let addr = server.local_addr().expect("local_addr");
    let receiver = spawn_watched(move || {
        let mut buf = [0u8; 64];
        let (n, from) = server.recv_from(&mut buf).expect("recv_from");
        server.send_to(&buf[..n], from).expect("send_to");
        server
    });
    receiver.wait_blocked("recv_from with nothing sent");
    let client = UdpSocket::bind("127.0.0.1:0").expect("bind");
    client.send_to(b"datagram", addr).expect("send_to");
    let mut buf = [0u8; 64];
    let (n, from) = client.recv_from(&mut buf).expect("recv_from");
    assert_eq!((&buf[..n], from), (&b"datagram"[..], addr));
    let server = receiver.join();

    server.connect(client.local_addr().unwrap()).expect("connect");
    client.connect(addr).expect("connect");
    let receiver = spawn_watched(move || {
        let mut buf = [0u8; 64];
        let n = server.recv(&mut buf).expect("recv");
        server.send(&buf[..n]).expect("send");
    });
    receiver.wait_blocked("recv with nothing sent");
    client.send(b"connected").expect("send");
    let n = client.recv(&mut buf).expect("recv");
    assert_eq!(&buf[..n], b"connected");
    receiver.join();
}

/// Unix sockets without a runtime: a thread blocks in `UnixListener::accept` until the test
/// thread connects; several client threads get 384 KiB echoes; a thread blocks in
/// `UnixDatagram::recv_from` until a datagram comes; `UnixStream::pair` across two threads.
#[test]
fn unix_on_plain_threads() {
    let _wd = support::watchdog("unix_on_plain_threads", Duration::from_secs(60));
    let path = Arc::new(support::TempPath::new("listener"));
    let listener = UnixListener::bind(path.path()).expect("bind");

    let acceptor = spawn_watched(move || {
        let (stream, _) = listener.accept().expect("accept");
        let echoed = support::echo_until_eof(&stream);
        (listener, echoed)
    });
    acceptor.wait_blocked("unix accept with no client");
    let mut client = UnixStream::connect(path.path()).expect("connect");
    client.write_all(b"over a unix socket").expect("write");
    let mut got = [0u8; 18];
    client.read_exact(&mut got).expect("read the echo");
    assert_eq!(&got, b"over a unix socket");
    client.shutdown(Shutdown::Write).expect("shutdown(Write)");
    let (listener, echoed) = acceptor.join();
    assert_eq!(echoed, 18);

    let server = std::thread::spawn(move || echo_each_on_threads(listener.incoming()));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let path = Arc::clone(&path);
            std::thread::spawn(move || unix_client_on_threads(path.path(), c))
        })
        .collect();
    let sent: usize = clients.into_iter().map(|h| h.join().expect("client thread")).sum();
    assert_eq!(server.join().expect("server thread"), sent);

    let server_path = support::TempPath::new("dgram");
    let client_path = support::TempPath::new("dgram-client");
    let server = UnixDatagram::bind(server_path.path()).expect("bind");
    let receiver = spawn_watched(move || {
        let mut buf = [0u8; 64];
        let (n, from) = server.recv_from(&mut buf).expect("recv_from");
        let to = from.as_pathname().expect("a bound sender").to_owned();
        server.send_to(&buf[..n], to).expect("send_to");
    });
    receiver.wait_blocked("unix recv_from with nothing sent");
    let client = UnixDatagram::bind(client_path.path()).expect("bind");
    client.send_to(b"unix datagram", server_path.path()).expect("send_to");
    let mut buf = [0u8; 64];
    let (n, from) = client.recv_from(&mut buf).expect("recv_from");
    assert_eq!(&buf[..n], b"unix datagram");
    assert_eq!(from.as_pathname(), Some(server_path.path()));
    receiver.join();

    let (a, b) = UnixStream::pair().expect("pair");
    let echoing = spawn_watched(move || support::echo_until_eof(b));
    echoing.wait_blocked("a pair's echo with nothing sent");
    exchange_on_threads(a, payload(99), "unix pair across threads");
    assert_eq!(echoing.join(), PAYLOAD);
}

// ---------------------------------------------------------------------------------------------
// Threads and coroutines mixed
// ---------------------------------------------------------------------------------------------

/// A coroutine server (a coroutine per connection) on a two-worker runtime, with client
/// threads, for TCP and Unix streams, pinned and migrating.
#[test]
fn coroutine_server_with_thread_clients() {
    let wd = support::watchdog("coroutine_server_with_thread_clients", Duration::from_secs(60));
    for mode in support::MODES {
        wd.note(format!("tcp, {mode:?}"));
        let rt = support::runtime(2, mode);
        wd.watch_runtime("rt", &rt);

        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("local_addr");
        let server =
            rt.spawn(move || echo_each_in_coroutines(|| listener.accept().expect("accept").0));
        let clients: Vec<_> = (0..CLIENTS)
            .map(|c| std::thread::spawn(move || tcp_client_on_threads(addr, c)))
            .collect();
        let sent: usize = clients.into_iter().map(|h| h.join().expect("client thread")).sum();
        assert_eq!(server.join().expect("tcp server coroutine"), sent, "{mode:?}");

        wd.note(format!("unix, {mode:?}"));
        let path = Arc::new(support::TempPath::new("coroutine-server"));
        let listener = UnixListener::bind(path.path()).expect("bind");
        let server =
            rt.spawn(move || echo_each_in_coroutines(|| listener.accept().expect("accept").0));
        let clients: Vec<_> = (0..CLIENTS)
            .map(|c| {
                let path = Arc::clone(&path);
                std::thread::spawn(move || unix_client_on_threads(path.path(), c))
            })
            .collect();
        let sent: usize = clients.into_iter().map(|h| h.join().expect("client thread")).sum();
        assert_eq!(server.join().expect("unix server coroutine"), sent, "{mode:?}");
    }
}

/// A plain-thread server (a thread per connection) with coroutine clients on a two-worker
/// runtime, each writing from one coroutine and reading the echo in another.
#[test]
fn thread_server_with_coroutine_clients() {
    let wd = support::watchdog("thread_server_with_coroutine_clients", Duration::from_secs(60));
    for mode in support::MODES {
        wd.note(format!("{mode:?}"));
        let rt = support::runtime(2, mode);
        wd.watch_runtime("rt", &rt);
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("local_addr");
        let server = std::thread::spawn(move || echo_each_on_threads(listener.incoming()));
        let clients: Vec<_> = (0..CLIENTS)
            .map(|client| {
                rt.spawn(move || {
                    let stream = Arc::new(TcpStream::connect(addr).expect("connect"));
                    let sent = payload(client);
                    let len = sent.len();
                    let writer = {
                        let stream = Arc::clone(&stream);
                        weft::spawn(move || {
                            (&*stream).write_all(&sent).expect("write_all");
                            stream.shutdown(Shutdown::Write).expect("shutdown(Write)");
                            sent
                        })
                    };
                    let mut got = Vec::with_capacity(len);
                    (&*stream).read_to_end(&mut got).expect("read_to_end");
                    let sent = writer.join().expect("writer coroutine");
                    assert!(got == sent, "coroutine client {client} ({mode:?}): echo differs");
                    len
                })
            })
            .collect();
        let sent: usize = clients.into_iter().map(|h| h.join().expect("client coroutine")).sum();
        assert_eq!(server.join().expect("server thread"), sent, "{mode:?}");
    }
}

/// A stream's read parks in a coroutine of `rt` until `peer` writes `message`; returns the
/// stream. The coroutine publishes its worker's tid before the read; that worker sleeping in
/// the kernel shows the read parked, and `io_waits` confirms it after the wake.
fn read_in_coroutine(
    rt: &weft::Runtime,
    stream: TcpStream,
    peer: &mut TcpStream,
    message: &[u8],
) -> TcpStream {
    let before = support::io_waits(rt);
    let len = message.len();
    let tid = Arc::new(AtomicI32::new(0));
    let published = Arc::clone(&tid);
    let reader = rt.spawn(move || {
        support::publish_tid(&published);
        let mut stream = stream;
        let mut got = vec![0u8; len];
        stream.read_exact(&mut got).expect("read_exact in a coroutine");
        (stream, got)
    });
    let parked = support::wait_sleeping(&tid, PATIENCE);
    assert!(parked && !reader.is_finished(), "the coroutine never parked in read");
    peer.write_all(message).expect("peer write");
    let (stream, got) = reader.join().expect("reader coroutine");
    assert_eq!(got, message);
    assert!(support::io_waits(rt) > before, "the read returned without a park on fd readiness");
    stream
}

/// One TCP stream used, in turn: on the test thread; in a coroutine of runtime 1 (its read
/// parks, so the fd is registered with a reactor of runtime 1); on a thread again after
/// runtime 1 is dropped (its read blocks until a peer thread writes); in a coroutine of
/// runtime 2; and on the test thread once more.
#[test]
fn a_stream_moves_between_threads_coroutines_and_runtimes() {
    let wd = support::watchdog(
        "a_stream_moves_between_threads_coroutines_and_runtimes",
        Duration::from_secs(60),
    );
    let (mut client, mut server) = support::tcp_pair();

    wd.note("on the test thread");
    client.write_all(b"one").expect("write");
    let mut got = [0u8; 3];
    server.read_exact(&mut got).expect("read");
    assert_eq!(&got, b"one");

    wd.note("in a coroutine of runtime 1");
    let rt1 = support::runtime(2, Mode::Pinned);
    wd.watch_runtime("rt1", &rt1);
    let mut client = read_in_coroutine(&rt1, client, &mut server, b"two");
    drop(rt1);

    wd.note("on a thread, runtime 1 dropped");
    let reader = spawn_watched(move || {
        let mut got = [0u8; 5];
        client.read_exact(&mut got).expect("read_exact on a thread");
        assert_eq!(&got, b"three");
        client
    });
    reader.wait_blocked("a thread reading a stream a dropped runtime had registered");
    server.write_all(b"three").expect("write");
    let client = reader.join();

    wd.note("in a coroutine of runtime 2");
    let rt2 = support::runtime(2, Mode::Migrating);
    wd.watch_runtime("rt2", &rt2);
    let mut client = read_in_coroutine(&rt2, client, &mut server, b"four");

    wd.note("on the test thread again");
    client.write_all(b"five").expect("write");
    let mut got = [0u8; 4];
    server.read_exact(&mut got).expect("read");
    assert_eq!(&got, b"five");
}
