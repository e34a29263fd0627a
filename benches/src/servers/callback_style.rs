//! The callback style: a hand-written, non-blocking epoll state machine per thread. It is what
//! weft's coroutines save a programmer from writing, and the ceiling weft is measured against.
//!
//! - **One reactor per thread**, each with its own epoll instance and its own SO_REUSEPORT
//!   listener, so the kernel spreads connections over the threads and no state is shared.
//! - **Edge-triggered, registered once.** A connection is added with `EPOLLIN | EPOLLOUT |
//!   EPOLLRDHUP | EPOLLET` when it is accepted and never modified again: no `epoll_ctl` per
//!   message, which is what a tuned callback server does. The price is the edge-triggered
//!   rule: after an event, read until `EAGAIN`, or no new edge will come.
//! - **Per-connection buffers.** Each connection owns a 4 KiB input buffer from its accept on
//!   (grown for an HTTP head that does not fit, up to [`MAX_INPUT`]) and an output buffer that
//!   holds whatever the socket did not take.
//! - **Partial writes and back-pressure.** Echo bytes and HTTP responses are written straight
//!   from where they are; what the socket does not take goes to the output buffer, and the
//!   connection stops reading until the next `EPOLLOUT` edge has drained it. A client that
//!   sends without reading therefore cannot grow the server's memory.
//!
//! The state machine of a connection is [`Conn::drive`]: flush, then read and answer, until the
//! socket would block either way.

use std::collections::TryReserveError;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use socket2::{Domain, Socket, Type};

use super::plaintext;

/// The epoll `u64` of the listener; connections use their slab index.
const LISTENER: u64 = u64::MAX;

/// Events taken per `epoll_wait`.
const EVENTS: usize = 1024;

/// Each connection's input buffer to begin with: one page, as weft's echo coroutines use.
const INPUT: usize = 4096;

/// The largest HTTP head kept waiting for its end; a longer one closes the connection.
const MAX_INPUT: usize = 64 * 1024;

/// The listen backlog.
const BACKLOG: i32 = 1024;

/// What a server speaks.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Speaks {
    Echo,
    Http,
}

/// Serves echo on `addr` with `workers` reactor threads.
///
/// # Errors
///
/// Creating or binding a listener, or creating an epoll instance.
pub fn serve_echo(addr: SocketAddr, workers: usize) -> io::Result<()> {
    serve(addr, workers, Speaks::Echo)
}

/// Serves HTTP plaintext on `addr` with `workers` reactor threads.
///
/// # Errors
///
/// Creating or binding a listener, or creating an epoll instance.
pub fn serve_http(addr: SocketAddr, workers: usize) -> io::Result<()> {
    serve(addr, workers, Speaks::Http)
}

fn serve(addr: SocketAddr, workers: usize, speaks: Speaks) -> io::Result<()> {
    let mut reactors = (0..workers.max(1))
        .map(|_| Reactor::new(listen(addr)?, speaks))
        .collect::<io::Result<Vec<_>>>()?;
    super::ready(addr);
    let first = reactors.remove(0);
    for reactor in reactors {
        std::thread::Builder::new().name("callback-reactor".into()).spawn(move || reactor.run())?;
    }
    first.run()
}

/// A non-blocking SO_REUSEPORT listener on `addr`.
fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM.nonblocking(), None)?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

/// An epoll instance.
struct Epoll {
    fd: OwnedFd,
}

impl Epoll {
    fn new() -> io::Result<Epoll> {
        // SAFETY: epoll_create1 takes flags only; a non-negative result is a new fd we own.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by epoll_create1 and is owned by nothing else.
        Ok(Epoll { fd: unsafe { OwnedFd::from_raw_fd(fd) } })
    }

    /// Adds `fd` with `events`, tagged with `key`.
    fn add(&self, fd: &impl AsRawFd, events: u32, key: u64) -> io::Result<()> {
        let mut event = libc::epoll_event { events, u64: key };
        // SAFETY: both fds are open (borrowed for the call), and `event` is a valid
        // epoll_event that the kernel only reads.
        let rc = unsafe {
            libc::epoll_ctl(self.fd.as_raw_fd(), libc::EPOLL_CTL_ADD, fd.as_raw_fd(), &mut event)
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Waits for events without a timeout; returns how many of `events` were filled.
    fn wait(&self, events: &mut [libc::epoll_event]) -> io::Result<usize> {
        let max = i32::try_from(events.len()).unwrap_or(i32::MAX);
        loop {
            // SAFETY: `events` is valid for writes of `max` entries for the whole call.
            let n = unsafe { libc::epoll_wait(self.fd.as_raw_fd(), events.as_mut_ptr(), max, -1) };
            if n >= 0 {
                return Ok(n as usize);
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
}

/// Accepts one connection from the non-blocking `listener`, itself non-blocking, with a single
/// `accept4` (std's accept would need another syscall to make it non-blocking).
fn accept(listener: &TcpListener) -> io::Result<TcpStream> {
    let flags = libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
    // SAFETY: null address pointers are allowed (the peer's address is not wanted); the
    // listener's fd is open for the call.
    let fd = unsafe {
        libc::accept4(listener.as_raw_fd(), std::ptr::null_mut(), std::ptr::null_mut(), flags)
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: accept4 returned a new connected socket that nothing else owns.
    Ok(unsafe { TcpStream::from_raw_fd(fd) })
}

/// One thread's reactor: its listener, its epoll, and its connections.
struct Reactor {
    listener: TcpListener,
    epoll: Epoll,
    speaks: Speaks,
    /// Connections by slab index; `None` is a free slot, listed in `free`.
    conns: Vec<Option<Conn>>,
    free: Vec<usize>,
}

impl Reactor {
    fn new(listener: TcpListener, speaks: Speaks) -> io::Result<Reactor> {
        let epoll = Epoll::new()?;
        // Level-triggered: an accept loop that stops early (no fds left) is reminded.
        epoll.add(&listener, libc::EPOLLIN as u32, LISTENER)?;
        Ok(Reactor { listener, epoll, speaks, conns: Vec::new(), free: Vec::new() })
    }

    fn run(mut self) -> io::Result<()> {
        let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; EVENTS];
        loop {
            let n = self.epoll.wait(&mut events)?;
            for event in &events[..n] {
                let (key, flags) = (event.u64, event.events);
                if key == LISTENER {
                    self.accept_all();
                    continue;
                }
                let index = key as usize;
                let Some(conn) = self.conns.get_mut(index).and_then(Option::as_mut) else {
                    continue;
                };
                let broken = flags & (libc::EPOLLERR as u32) != 0;
                if broken || conn.drive(self.speaks) == Next::Close {
                    self.conns[index] = None;
                    self.free.push(index);
                }
            }
        }
    }

    /// Accepts until the listener would block. On any other error (EMFILE among them) it stops
    /// for this round: the listener is level-triggered, so the next `epoll_wait` returns it
    /// again once a connection has closed. A production server would also keep a spare fd to
    /// shed connections when the table is full; the suite never fills it.
    fn accept_all(&mut self) {
        loop {
            let stream = match accept(&self.listener) {
                Ok(stream) => stream,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.raw_os_error() == Some(libc::ECONNABORTED) => continue,
                Err(_) => return,
            };
            // Only a failed allocation or epoll_ctl ends up here: that connection is dropped
            // (closed), and the others go on.
            let _ = self.add(stream);
        }
    }

    fn add(&mut self, stream: TcpStream) -> io::Result<()> {
        stream.set_nodelay(true)?;
        let conn = Conn::new(stream).map_err(|_| io::Error::from(io::ErrorKind::OutOfMemory))?;
        let index = match self.free.pop() {
            Some(index) => index,
            None => {
                self.conns.push(None);
                self.conns.len() - 1
            }
        };
        let events = libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET;
        if let Err(e) = self.epoll.add(&conn.stream, events as u32, index as u64) {
            self.free.push(index);
            return Err(e);
        }
        self.conns[index] = Some(conn);
        Ok(())
    }
}

/// What a connection wants after an event.
#[derive(Debug, PartialEq, Eq)]
enum Next {
    /// Wait for the next edge.
    Wait,
    /// Close it (drop it: the fd closes, which also takes it out of the epoll set).
    Close,
}

/// One connection's state.
struct Conn {
    stream: TcpStream,
    /// Bytes read and not yet answered: `input[..filled]`.
    input: Vec<u8>,
    filled: usize,
    /// Bytes the socket has not taken yet: `output[written..]`.
    output: Vec<u8>,
    written: usize,
    /// Close once `output` is flushed: the peer closed its side, or the HTTP request asked for
    /// it (or was malformed). Nothing more is read.
    closing: bool,
}

impl Conn {
    fn new(stream: TcpStream) -> Result<Conn, TryReserveError> {
        let mut input = Vec::new();
        input.try_reserve_exact(INPUT)?;
        input.resize(INPUT, 0);
        Ok(Conn { stream, input, filled: 0, output: Vec::new(), written: 0, closing: false })
    }

    /// Runs the connection until the socket would block: flush what is pending, then read
    /// and answer, writing each answer at once.
    fn drive(&mut self, speaks: Speaks) -> Next {
        loop {
            match self.flush() {
                Ok(true) => {}
                // The rest waits for the next EPOLLOUT edge; until then nothing is read
                // (back-pressure).
                Ok(false) => return Next::Wait,
                Err(_) => return Next::Close,
            }
            if self.closing {
                return Next::Close;
            }
            let n = match self.stream.read(&mut self.input[self.filled..]) {
                Ok(0) => return Next::Close,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Next::Wait,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return Next::Close,
            };
            let answered = match speaks {
                Speaks::Echo => self.echo(n),
                Speaks::Http => self.http(n),
            };
            if answered.is_err() {
                return Next::Close;
            }
        }
    }

    /// Writes the `n` bytes just read straight back; what the socket does not take is kept.
    fn echo(&mut self, n: usize) -> io::Result<()> {
        let sent = write_some(&mut self.stream, &self.input[..n])?;
        self.output.extend_from_slice(&self.input[sent..n]);
        Ok(())
    }

    /// Answers the complete requests among the input, and keeps the rest for the next read.
    fn http(&mut self, n: usize) -> io::Result<()> {
        self.filled += n;
        let answered = plaintext::respond(&self.input[..self.filled], &mut self.output);
        self.input.copy_within(answered.consumed..self.filled, 0);
        self.filled -= answered.consumed;
        self.closing = answered.close;
        if self.filled == self.input.len() {
            if self.input.len() >= MAX_INPUT {
                // A head this long is not answered: the connection closes.
                self.closing = true;
                self.output.clear();
            } else {
                let grown = (self.input.len() * 2).min(MAX_INPUT);
                self.input.resize(grown, 0);
            }
        }
        Ok(())
    }

    /// Writes pending output; returns whether all of it went.
    fn flush(&mut self) -> io::Result<bool> {
        while self.written < self.output.len() {
            let sent = write_some(&mut self.stream, &self.output[self.written..])?;
            if sent == 0 {
                return Ok(false);
            }
            self.written += sent;
        }
        self.output.clear();
        self.written = 0;
        Ok(true)
    }
}

/// Writes as much of `buf` as the socket takes now: 0 when it would block.
fn write_some(stream: &mut TcpStream, buf: &[u8]) -> io::Result<usize> {
    loop {
        match stream.write(buf) {
            Ok(0) if !buf.is_empty() => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(0),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::mpsc;
    use std::thread;
    use std::time::{Duration, Instant};

    /// The longest any client operation may take: a bug fails a test instead of hanging it.
    const WATCHDOG: Duration = Duration::from_secs(20);

    /// Starts `serve` with `workers` threads on a free loopback port, and returns its address
    /// once it accepts connections. The server thread outlives the test.
    fn start(serve: fn(SocketAddr, usize) -> io::Result<()>, workers: usize) -> SocketAddr {
        let addr = TcpListener::bind("127.0.0.1:0")
            .and_then(|probe| probe.local_addr())
            .expect("a free loopback port");
        let (done, ended) = mpsc::channel();
        thread::spawn(move || {
            let _ = done.send(serve(addr, workers));
        });
        let deadline = Instant::now() + WATCHDOG;
        while TcpStream::connect(addr).is_err() {
            if let Ok(result) = ended.try_recv() {
                panic!("the server on {addr} stopped: {result:?}");
            }
            assert!(Instant::now() < deadline, "nothing listened on {addr} within {WATCHDOG:?}");
            thread::sleep(Duration::from_millis(5));
        }
        addr
    }

    fn connect(addr: SocketAddr) -> TcpStream {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(WATCHDOG)).expect("a read timeout");
        stream.set_write_timeout(Some(WATCHDOG)).expect("a write timeout");
        stream
    }

    /// `len` bytes in a cycle of 251, which no read size divides, so that bytes out of place
    /// show; `seed` tells connections apart.
    fn pattern(seed: u8, len: usize) -> Vec<u8> {
        let cycle: Vec<u8> = (0..251u8).map(|b| b.wrapping_add(seed)).collect();
        let mut bytes = Vec::with_capacity(len);
        while bytes.len() < len {
            let take = cycle.len().min(len - bytes.len());
            bytes.extend_from_slice(&cycle[..take]);
        }
        bytes
    }

    /// Sends `msg` from one thread while this one reads it back, so that a message larger than
    /// the socket buffers cannot deadlock the test.
    fn round_trip(stream: &TcpStream, msg: &[u8]) {
        thread::scope(|s| {
            s.spawn(|| {
                let mut writer = stream;
                writer.write_all(msg).expect("write the message");
            });
            let mut reader = stream;
            let mut back = vec![0; msg.len()];
            reader.read_exact(&mut back).expect("read the echo");
            let differs = back.iter().zip(msg).position(|(a, b)| a != b);
            assert!(differs.is_none(), "echo of {} bytes differs at byte {differs:?}", msg.len());
        });
    }

    #[test]
    fn echo_returns_every_size_on_concurrent_connections() {
        let addr = start(serve_echo, 2);
        thread::scope(|s| {
            for seed in 0..8u8 {
                s.spawn(move || {
                    let stream = connect(addr);
                    for len in [64, 4096, 1 << 20, 64, 4096] {
                        round_trip(&stream, &pattern(seed, len));
                    }
                });
            }
        });
    }

    #[test]
    fn echo_stops_reading_under_back_pressure_and_resumes_after_draining() {
        let addr = start(serve_echo, 1);
        let stream = connect(addr);
        // More than every socket buffer on the way (at most 32 MiB on a loopback receive side,
        // 4 MiB on a send side) plus one read of unsent echo: only a server that stopped
        // reading holds the writer up. There is no event for "still blocked", so the writer is
        // given 300 ms to finish, which it must not.
        let msg = pattern(7, 64 << 20);
        let written = AtomicBool::new(false);
        thread::scope(|s| {
            s.spawn(|| {
                let mut writer = &stream;
                writer.write_all(&msg).expect("write the message");
                written.store(true, Ordering::Relaxed);
            });
            thread::sleep(Duration::from_millis(300));
            assert!(!written.load(Ordering::Relaxed), "the server buffered everything");
            // The drain: the server must read again, including the bytes it left unread
            // while its output was pending.
            let mut reader = &stream;
            let mut back = vec![0; msg.len()];
            reader.read_exact(&mut back).expect("read the echo");
            assert!(back == msg, "the echo differs");
        });
    }

    #[test]
    fn echo_outlives_clients_that_leave_mid_message() {
        let addr = start(serve_echo, 1);
        let steady = connect(addr);
        round_trip(&steady, &pattern(1, 64));

        // Leaves right after connecting.
        drop(connect(addr));
        // Leaves without reading its echo.
        let mut quiet = connect(addr);
        quiet.write_all(&pattern(2, 4096)).expect("write");
        drop(quiet);
        // Leaves in the middle of a large message, with output pending on the server: its
        // unread bytes make the close a reset, so the server sees ECONNRESET or EPIPE.
        let rude = connect(addr);
        rude.set_nonblocking(true).expect("non-blocking");
        let msg = pattern(3, 8 << 20);
        let mut sent = 0;
        while sent < msg.len() {
            match (&rude).write(&msg[sent..]) {
                Ok(n) => sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("write: {e}"),
            }
        }
        drop(rude);

        round_trip(&steady, &pattern(4, 1 << 20));
        round_trip(&connect(addr), &pattern(5, 4096));
    }

    /// A response, as a client that is not the server's parser reads it.
    struct Response {
        code: u16,
        close: bool,
        body: Vec<u8>,
    }

    /// Reads the next response, keeping what follows it in `buf`.
    fn read_response(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Response {
        loop {
            if let Some((response, len)) = parse_response(buf) {
                buf.drain(..len);
                return response;
            }
            let mut chunk = [0; 4096];
            let n = stream.read(&mut chunk).expect("read a response");
            assert_ne!(n, 0, "the server closed before a whole response");
            buf.extend_from_slice(&chunk[..n]);
        }
    }

    fn parse_response(buf: &[u8]) -> Option<(Response, usize)> {
        let mut fields = [httparse::EMPTY_HEADER; 16];
        let mut head = httparse::Response::new(&mut fields);
        let httparse::Status::Complete(head_len) = head.parse(buf).expect("a well-formed head")
        else {
            return None;
        };
        let field = |name: &str| {
            head.headers.iter().find(|f| f.name.eq_ignore_ascii_case(name)).map(|f| f.value)
        };
        let body_len: usize = field("content-length")
            .and_then(|v| std::str::from_utf8(v).ok()?.parse().ok())
            .expect("a Content-Length");
        let close = field("connection").is_some_and(|v| v.eq_ignore_ascii_case(b"close"));
        let end = head_len + body_len;
        let body = buf.get(head_len..end)?.to_vec();
        Some((Response { code: head.code.expect("a status"), close, body }, end))
    }

    /// Asserts that the server closed the connection and sent nothing more.
    fn assert_closed(stream: &mut TcpStream) {
        let mut rest = Vec::new();
        stream.read_to_end(&mut rest).expect("read to the close");
        assert!(rest.is_empty(), "{} bytes after the last response", rest.len());
    }

    const GET: &[u8] = b"GET /plaintext HTTP/1.1\r\nHost: test\r\n\r\n";

    #[test]
    fn http_answers_get_plaintext_and_keeps_the_connection() {
        let addr = start(serve_http, 2);
        let mut stream = connect(addr);
        let mut buf = Vec::new();
        for _ in 0..3 {
            stream.write_all(GET).expect("write a request");
            let response = read_response(&mut stream, &mut buf);
            assert_eq!(response.code, 200);
            assert_eq!(response.body, plaintext::BODY);
            assert!(!response.close);
        }
        assert!(buf.is_empty(), "bytes after the responses");
    }

    #[test]
    fn http_answers_pipelined_requests_in_order() {
        let addr = start(serve_http, 1);
        let mut stream = connect(addr);
        let mut requests = Vec::new();
        for i in 0..16 {
            // Every third request asks for a path that is not there, so the order shows.
            let path = if i % 3 == 0 { "/missing" } else { "/plaintext" };
            requests
                .extend_from_slice(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
        }
        stream.write_all(&requests).expect("write the requests");
        let mut buf = Vec::new();
        for i in 0..16 {
            let response = read_response(&mut stream, &mut buf);
            if i % 3 == 0 {
                assert_eq!(response.code, 404, "response {i}");
            } else {
                assert_eq!(
                    (response.code, &response.body[..]),
                    (200, plaintext::BODY),
                    "response {i}"
                );
            }
        }
        // Still open and answering.
        stream.write_all(GET).expect("write a request");
        assert_eq!(read_response(&mut stream, &mut buf).code, 200);
    }

    #[test]
    fn http_closes_after_a_response_to_connection_close() {
        let addr = start(serve_http, 1);
        let mut stream = connect(addr);
        stream
            .write_all(b"GET /plaintext HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            .expect("write a request");
        let mut buf = Vec::new();
        let response = read_response(&mut stream, &mut buf);
        assert_eq!((response.code, response.close), (200, true));
        assert!(buf.is_empty());
        assert_closed(&mut stream);
    }

    #[test]
    fn http_answers_garbage_with_400_and_closes() {
        let addr = start(serve_http, 1);
        let mut stream = connect(addr);
        stream.write_all(b"\x01\x02 not http at all\r\n\r\n").expect("write garbage");
        let mut buf = Vec::new();
        let response = read_response(&mut stream, &mut buf);
        assert_eq!((response.code, response.close), (400, true));
        assert!(buf.is_empty());
        assert_closed(&mut stream);
    }

    #[test]
    fn http_closes_on_a_head_longer_than_max_input() {
        let addr = start(serve_http, 1);
        let mut stream = connect(addr);
        let mut head = b"GET /plaintext HTTP/1.1\r\nX-Long: ".to_vec();
        head.resize(MAX_INPUT + 8192, b'a');
        // The server may close, with a reset for what it left unread, before all of it is
        // written; either way it must answer nothing.
        let _ = stream.write_all(&head);
        let mut rest = Vec::new();
        match stream.read_to_end(&mut rest) {
            Ok(_) => {}
            Err(e) => assert_eq!(e.kind(), io::ErrorKind::ConnectionReset, "{e}"),
        }
        assert!(rest.is_empty(), "{} bytes of answer", rest.len());
    }
}
