//! UDP and Unix sockets in coroutines: echo servers with several concurrent clients, every
//! byte checked.
//!
//! - UDP: `send_to`/`recv_from` and `connect`/`send`/`recv` clients against one echo socket;
//!   `peek_from` and `peek` leave the datagram queued; the broadcast flag reads back.
//! - Unix streams: a `UnixListener` at a temp path serving a coroutine per connection, and
//!   `UnixStream::pair`; each client writes from one coroutine while another reads the echo.
//! - Unix datagrams: a server bound to a path answering clients bound to paths (through
//!   `send_to`/`recv_from` and through `connect`/`send`/`recv`), an unbound sender, and
//!   `UnixDatagram::pair`.
//!
//! Servers and clients are coroutines of a two-worker runtime, pinned and migrating. Payload
//! sizes and contents are seeded (`WEFT_SEED`). Every socket has a 10 s read timeout, so a lost
//! datagram or wake-up fails with a message rather than the watchdog's abort. Socket paths are
//! `support::TempPath`s, removed on drop.

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use support::{Rng, MODES};
use weft::net::{UdpSocket, UnixDatagram, UnixListener, UnixStream};

/// Concurrent clients per server.
const CLIENTS: usize = 8;

/// Datagrams each datagram client exchanges.
const ROUNDS: usize = 40;

/// Largest datagram payload.
const MAX_DATAGRAM: u64 = 1200;

/// Largest payload a stream client sends: several times a socket buffer, so writers park.
const MAX_STREAM_PAYLOAD: u64 = 512 << 10;

/// The read timeout of every socket here: far above any scheduling delay.
const LOSS_TIMEOUT: Duration = Duration::from_secs(10);

/// A seeded payload of `min(max, …)` bytes that starts with `<client>:<round>:`, so a
/// misdirected or reordered echo cannot match.
fn payload(rng: &mut Rng, client: usize, round: usize, max: u64) -> Vec<u8> {
    let mut bytes = format!("{client}:{round}:").into_bytes();
    let len = rng.range(bytes.len() as u64, max) as usize;
    while bytes.len() < len {
        bytes.push(rng.next_u64() as u8);
    }
    bytes
}

/// Runs `body(runtime, rng, seed)` on a two-worker runtime in each mode, under one watchdog
/// that prints and records the seed.
fn in_both_modes(name: &str, body: fn(&Arc<weft::Runtime>, Rng, u64)) {
    let wd = support::watchdog(name, Duration::from_secs(60));
    let seed = wd.seed();
    let mut rng = Rng::new(seed);
    for mode in MODES {
        wd.note(format!("{mode:?}"));
        let rt = support::runtime(2, mode);
        wd.watch_runtime("rt", &rt);
        body(&rt, rng.fork(), seed);
    }
}

// ---------------------------------------------------------------------------------------------
// UDP
// ---------------------------------------------------------------------------------------------

fn udp_echo(rt: &Arc<weft::Runtime>, mut rng: Rng, seed: u64) {
    let server = UdpSocket::bind("127.0.0.1:0").expect("bind the udp server");
    let addr = server.local_addr().expect("server address");
    assert_eq!(server.peer_addr().map_err(|e| e.kind()), Err(ErrorKind::NotConnected));
    server.set_read_timeout(Some(LOSS_TIMEOUT)).expect("set_read_timeout");
    let server = rt.spawn(move || {
        let mut buf = [0u8; 2048];
        for i in 0..CLIENTS * ROUNDS {
            let (n, from) = server.recv_from(&mut buf).unwrap_or_else(|e| {
                panic!("server recv_from #{i}: {e} (seed {seed})");
            });
            assert_eq!(server.send_to(&buf[..n], from).expect("server send_to"), n);
        }
    });
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let mut rng = rng.fork();
            let connected = client % 2 == 1;
            rt.spawn(move || {
                let socket = UdpSocket::bind("127.0.0.1:0").expect("bind a udp client");
                socket.set_read_timeout(Some(LOSS_TIMEOUT)).expect("set_read_timeout");
                if connected {
                    socket.connect(addr).expect("udp connect");
                    assert_eq!(socket.peer_addr().expect("peer_addr"), addr);
                }
                let mut buf = [0u8; 2048];
                for round in 0..ROUNDS {
                    let sent = payload(&mut rng, client, round, MAX_DATAGRAM);
                    let n = if connected {
                        assert_eq!(socket.send(&sent).expect("send"), sent.len());
                        socket.recv(&mut buf).unwrap_or_else(|e| {
                            panic!("client {client} recv, round {round}: {e} (seed {seed})")
                        })
                    } else {
                        assert_eq!(socket.send_to(&sent, addr).expect("send_to"), sent.len());
                        let (n, from) = socket.recv_from(&mut buf).unwrap_or_else(|e| {
                            panic!("client {client} recv_from, round {round}: {e} (seed {seed})")
                        });
                        assert_eq!(from, addr, "client {client}: an echo from elsewhere");
                        n
                    };
                    assert_eq!(
                        &buf[..n],
                        &sent[..],
                        "client {client} (connected {connected}), round {round}: echo differs \
                         (seed {seed})"
                    );
                }
            })
        })
        .collect();
    for (client, handle) in clients.into_iter().enumerate() {
        handle.join().unwrap_or_else(|_| panic!("udp client {client} panicked (seed {seed})"));
    }
    server.join().expect("udp server");
}

/// Eight coroutine clients (half `send_to`/`recv_from`, half `connect`/`send`/`recv`) exchange
/// 40 seeded datagrams each with a coroutine echo server; every echo is exact.
#[test]
fn udp_echo_with_concurrent_clients() {
    in_both_modes("udp_echo_with_concurrent_clients", udp_echo);
}

fn udp_peek_and_broadcast(rt: &Arc<weft::Runtime>, _rng: Rng, _seed: u64) {
    let receiver = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let sender = UdpSocket::bind("127.0.0.1:0").expect("bind");
    receiver.set_read_timeout(Some(LOSS_TIMEOUT)).expect("set_read_timeout");
    let (to, from) = (receiver.local_addr().unwrap(), sender.local_addr().unwrap());
    let receiver = Arc::new(receiver);

    // The peeking coroutine starts before the datagram is sent, so its first peek parks.
    let peeker = {
        let receiver = Arc::clone(&receiver);
        rt.spawn(move || {
            let mut seen: Vec<(Vec<u8>, SocketAddr)> = Vec::new();
            let mut buf = [0u8; 64];
            for _ in 0..2 {
                let (n, addr) = receiver.peek_from(&mut buf).expect("peek_from");
                seen.push((buf[..n].to_vec(), addr));
            }
            let (n, addr) = receiver.recv_from(&mut buf).expect("recv_from after peeks");
            seen.push((buf[..n].to_vec(), addr));
            seen
        })
    };
    assert_eq!(sender.send_to(b"peek me", to).expect("send_to"), 7);
    let seen = peeker.join().expect("peeker");
    for (i, (bytes, addr)) in seen.iter().enumerate() {
        assert_eq!((&bytes[..], *addr), (&b"peek me"[..], from), "look {i} (2 peeks, then recv)");
    }

    rt.block_on(|| {
        receiver.connect(from).expect("connect");
        sender.send_to(b"peek connected", to).expect("send_to");
        let mut buf = [0u8; 64];
        assert_eq!(receiver.peek(&mut buf).expect("peek"), 14);
        assert_eq!(&buf[..14], b"peek connected");
        let mut again = [0u8; 64];
        assert_eq!(receiver.recv(&mut again).expect("recv after peek"), 14);
        assert_eq!(&again[..14], b"peek connected");

        for on in [true, false, true] {
            sender.set_broadcast(on).expect("set_broadcast");
            assert_eq!(sender.broadcast().expect("broadcast"), on);
        }
    });
}

/// `peek_from` (parked until the datagram comes) and `peek` return the datagram and leave it
/// queued for `recv_from`/`recv`; `set_broadcast`/`broadcast` round-trip.
#[test]
fn udp_peek_leaves_the_datagram_and_broadcast_round_trips() {
    in_both_modes("udp_peek_leaves_the_datagram_and_broadcast_round_trips", udp_peek_and_broadcast);
}

// ---------------------------------------------------------------------------------------------
// Unix streams
// ---------------------------------------------------------------------------------------------

/// Client side: one coroutine writes `sent` and shuts down writing while this one reads the
/// echo to EOF; the echo must equal `sent`.
fn exchange(stream: UnixStream, sent: Vec<u8>, what: &str) {
    stream.set_read_timeout(Some(LOSS_TIMEOUT)).expect("set_read_timeout");
    let stream = Arc::new(stream);
    let len = sent.len();
    let writer = {
        let stream = Arc::clone(&stream);
        weft::spawn(move || {
            (&*stream).write_all(&sent).expect("client write_all");
            stream.shutdown(Shutdown::Write).expect("client shutdown(Write)");
            sent
        })
    };
    let mut got = Vec::with_capacity(len);
    (&*stream).read_to_end(&mut got).unwrap_or_else(|e| panic!("{what}: read_to_end: {e}"));
    let sent = writer.join().expect("writer coroutine");
    assert_eq!(got.len(), len, "{what}: echo length");
    if let Some(i) = (0..len).find(|&i| got[i] != sent[i]) {
        panic!("{what}: echo differs first at byte {i} of {len}");
    }
}

fn unix_stream_echo(rt: &Arc<weft::Runtime>, mut rng: Rng, seed: u64) {
    let path = Arc::new(support::TempPath::new("stream-echo"));
    let listener = UnixListener::bind(path.path()).expect("bind a UnixListener");
    let local = listener.local_addr().expect("local_addr");
    assert_eq!(local.as_pathname(), Some(path.path()));

    let server = rt.spawn(move || {
        let handlers: Vec<_> = (0..CLIENTS)
            .map(|_| {
                let (stream, _peer) = listener.accept().expect("accept");
                weft::spawn(move || support::echo_until_eof(&stream))
            })
            .collect();
        handlers.into_iter().map(|h| h.join().expect("echo handler")).sum::<usize>()
    });
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let sent = payload(&mut rng, client, 0, MAX_STREAM_PAYLOAD);
            let path = Arc::clone(&path);
            rt.spawn(move || {
                let stream = UnixStream::connect(path.path()).expect("UnixStream::connect");
                let peer = stream.peer_addr().expect("peer_addr");
                assert_eq!(peer.as_pathname(), Some(path.path()));
                let len = sent.len();
                exchange(stream, sent, &format!("unix client {client} (seed {seed})"));
                len
            })
        })
        .collect();
    let sent: usize = clients.into_iter().map(|h| h.join().expect("unix client")).sum();
    assert_eq!(server.join().expect("unix server"), sent, "bytes echoed by the server");
}

/// Eight coroutine clients connect to a `UnixListener` at a temp path; a coroutine per
/// connection echoes; each client writes up to 512 KiB from one coroutine and reads the echo
/// in another; every byte is checked.
#[test]
fn unix_stream_echo_with_concurrent_clients() {
    in_both_modes("unix_stream_echo_with_concurrent_clients", unix_stream_echo);
}

fn unix_stream_pair_echo(rt: &Arc<weft::Runtime>, mut rng: Rng, seed: u64) {
    let handles: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let sent = payload(&mut rng, client, 0, MAX_STREAM_PAYLOAD);
            rt.spawn(move || {
                let (a, b) = UnixStream::pair().expect("UnixStream::pair");
                let len = sent.len();
                let echo = weft::spawn(move || support::echo_until_eof(&b));
                exchange(a, sent, &format!("pair {client} (seed {seed})"));
                assert_eq!(echo.join().expect("pair echo"), len);
            })
        })
        .collect();
    for handle in handles {
        handle.join().expect("pair client");
    }
}

/// `UnixStream::pair`: eight pairs at once, one end echoing, the other writing and reading
/// up to 512 KiB concurrently.
#[test]
fn unix_stream_pair_echoes_concurrently() {
    in_both_modes("unix_stream_pair_echoes_concurrently", unix_stream_pair_echo);
}

// ---------------------------------------------------------------------------------------------
// Unix datagrams
// ---------------------------------------------------------------------------------------------

fn unix_datagram_echo(rt: &Arc<weft::Runtime>, mut rng: Rng, seed: u64) {
    let server_path = Arc::new(support::TempPath::new("dgram-server"));
    let server = UnixDatagram::bind(server_path.path()).expect("bind the datagram server");
    assert_eq!(server.local_addr().expect("local_addr").as_pathname(), Some(server_path.path()));
    server.set_read_timeout(Some(LOSS_TIMEOUT)).expect("set_read_timeout");
    let server = rt.spawn(move || {
        let mut buf = [0u8; 2048];
        for i in 0..CLIENTS * ROUNDS {
            let (n, from) = server.recv_from(&mut buf).unwrap_or_else(|e| {
                panic!("datagram server recv_from #{i}: {e} (seed {seed})");
            });
            let to = from.as_pathname().expect("every client is bound to a path");
            assert_eq!(server.send_to(&buf[..n], to).expect("server send_to"), n);
        }
    });
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let mut rng = rng.fork();
            let server_path = Arc::clone(&server_path);
            let connected = client % 2 == 1;
            rt.spawn(move || {
                let own = support::TempPath::new(&format!("dgram-client-{client}"));
                let socket = UnixDatagram::bind(own.path()).expect("bind a datagram client");
                socket.set_read_timeout(Some(LOSS_TIMEOUT)).expect("set_read_timeout");
                if connected {
                    socket.connect(server_path.path()).expect("UnixDatagram::connect");
                    let peer = socket.peer_addr().expect("peer_addr");
                    assert_eq!(peer.as_pathname(), Some(server_path.path()));
                }
                let mut buf = [0u8; 2048];
                for round in 0..ROUNDS {
                    let sent = payload(&mut rng, client, round, MAX_DATAGRAM);
                    let n = if connected {
                        assert_eq!(socket.send(&sent).expect("send"), sent.len());
                        socket.recv(&mut buf).unwrap_or_else(|e| {
                            panic!("client {client} recv, round {round}: {e} (seed {seed})")
                        })
                    } else {
                        let n = socket.send_to(&sent, server_path.path()).expect("send_to");
                        assert_eq!(n, sent.len());
                        let (n, from) = socket.recv_from(&mut buf).unwrap_or_else(|e| {
                            panic!("client {client} recv_from, round {round}: {e} (seed {seed})")
                        });
                        assert_eq!(from.as_pathname(), Some(server_path.path()));
                        n
                    };
                    assert_eq!(
                        &buf[..n],
                        &sent[..],
                        "datagram client {client} (connected {connected}), round {round}: \
                         echo differs (seed {seed})"
                    );
                }
            })
        })
        .collect();
    for (client, handle) in clients.into_iter().enumerate() {
        handle.join().unwrap_or_else(|_| panic!("datagram client {client} panicked (seed {seed})"));
    }
    server.join().expect("datagram server");

    // An unbound socket can send; its datagrams come from an unnamed address.
    let path = support::TempPath::new("dgram-unbound-target");
    let target = UnixDatagram::bind(path.path()).expect("bind");
    target.set_read_timeout(Some(LOSS_TIMEOUT)).expect("set_read_timeout");
    let anonymous = UnixDatagram::unbound().expect("UnixDatagram::unbound");
    rt.block_on(|| {
        assert_eq!(anonymous.send_to(b"anonymous", path.path()).expect("send_to"), 9);
        let mut buf = [0u8; 64];
        let (n, from) = target.recv_from(&mut buf).expect("recv_from");
        assert_eq!(&buf[..n], b"anonymous");
        assert!(from.is_unnamed(), "an unbound sender's address: {from:?}");
    });
}

/// A coroutine server bound to a path echoes to eight coroutine clients bound to their own
/// paths (half `send_to`/`recv_from`, half `connect`/`send`/`recv`); an unbound socket's
/// datagram arrives from an unnamed address.
#[test]
fn unix_datagram_echo_with_concurrent_clients() {
    in_both_modes("unix_datagram_echo_with_concurrent_clients", unix_datagram_echo);
}

fn unix_datagram_pair_echo(rt: &Arc<weft::Runtime>, mut rng: Rng, seed: u64) {
    let (a, b) = UnixDatagram::pair().expect("UnixDatagram::pair");
    a.set_read_timeout(Some(LOSS_TIMEOUT)).expect("set_read_timeout");
    b.set_read_timeout(Some(LOSS_TIMEOUT)).expect("set_read_timeout");
    let echo = rt.spawn(move || {
        let mut buf = [0u8; 2048];
        for _ in 0..ROUNDS {
            let n = b.recv(&mut buf).expect("pair echo recv");
            assert_eq!(b.send(&buf[..n]).expect("pair echo send"), n);
        }
    });
    let sent: Vec<Vec<u8>> =
        (0..ROUNDS).map(|round| payload(&mut rng, 0, round, MAX_DATAGRAM)).collect();
    rt.block_on(|| {
        let mut buf = [0u8; 2048];
        for (round, sent) in sent.iter().enumerate() {
            assert_eq!(a.send(sent).expect("pair send"), sent.len());
            let n = a.recv(&mut buf).expect("pair recv");
            assert_eq!(&buf[..n], &sent[..], "pair round {round}: echo differs (seed {seed})");
        }
    });
    echo.join().expect("pair echo");
}

/// `UnixDatagram::pair`: one end echoes 40 seeded datagrams to the other.
#[test]
fn unix_datagram_pair_echoes() {
    in_both_modes("unix_datagram_pair_echoes", unix_datagram_pair_echo);
}
