//! Unix domain sockets: [`UnixListener`], [`UnixStream`] and [`UnixDatagram`], with the API of
//! `std::os::unix::net`.
//!
//! Sockets are made by std (binding and pairing never block) and then adopted; connecting a
//! stream is weft's own, because a Unix `connect` on a full backlog blocks.

use std::io;
use std::os::fd::OwnedFd;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{self as std_unix, SocketAddr};
use std::path::Path;
use std::time::Duration;

use socket2::{Domain, SockAddr, SockRef, Type};

use crate::backoff::AcceptBackoff;
use crate::socket::{delegate, settings, socket_common, stream_io, Socket};

/// A Unix socket server: [`std::os::unix::net::UnixListener`] for coroutines.
///
/// ```
/// use std::io::{Read, Write};
/// use weft::net::{UnixListener, UnixStream};
///
/// let path = std::env::temp_dir().join(format!("weft-doc-{}.sock", std::process::id()));
/// let listener = UnixListener::bind(&path)?;
/// let server = weft::spawn(move || -> std::io::Result<()> {
///     let (mut stream, _) = listener.accept()?;
///     stream.write_all(b"hi")
/// });
/// let mut client = UnixStream::connect(&path)?;
/// let mut buf = String::new();
/// client.read_to_string(&mut buf)?;
/// assert_eq!(buf, "hi");
/// server.join().unwrap()?;
/// std::fs::remove_file(&path)?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct UnixListener {
    sock: Socket,
    backoff: AcceptBackoff,
}

impl UnixListener {
    fn wrap(sock: Socket) -> UnixListener {
        UnixListener { sock, backoff: AcceptBackoff::default() }
    }

    /// Creates a listener bound to `path`.
    ///
    /// # Errors
    ///
    /// The error of `bind` or `listen` (`AddrInUse` if the path exists, say).
    pub fn bind<P: AsRef<Path>>(path: P) -> io::Result<UnixListener> {
        UnixListener::from_std(std_unix::UnixListener::bind(path)?)
    }

    /// Creates a listener bound to `addr`.
    ///
    /// # Errors
    ///
    /// As [`bind`](UnixListener::bind).
    pub fn bind_addr(addr: &SocketAddr) -> io::Result<UnixListener> {
        UnixListener::from_std(std_unix::UnixListener::bind_addr(addr)?)
    }

    /// Accepts a connection, parking the coroutine until one arrives. Out of fds, it waits a
    /// backoff first, as [`TcpListener::accept`](crate::TcpListener::accept) does.
    ///
    /// # Errors
    ///
    /// `WouldBlock` in non-blocking mode; `EMFILE` and kin after the backoff; `Other` when
    /// the runtime shuts down while the coroutine waits.
    pub fn accept(&self) -> io::Result<(UnixStream, SocketAddr)> {
        // accept4 makes the new fd non-blocking, where std's accept leaves an ioctl to make.
        let flags = libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
        let accepted = self.sock.read_with(|| SockRef::from(self.sock.fd()).accept4(flags));
        match accepted {
            Ok((socket, addr)) => {
                self.backoff.reset();
                let stream = UnixStream::wrap(Socket::from_nonblocking(socket));
                let addr = match std_addr(&addr) {
                    Some(addr) => addr,
                    // A peer address std cannot rebuild (a path of all 108 bytes): the kernel's
                    // own, as std would have returned it.
                    None => stream.peer_addr()?,
                };
                Ok((stream, addr))
            }
            Err(e) if crate::sys::is_resource_exhaustion(&e) && !self.sock.is_nonblocking() => {
                self.backoff.wait(&e, self)?;
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    /// An endless iterator over the connections, yielding each `accept` error.
    pub fn incoming(&self) -> UnixIncoming<'_> {
        UnixIncoming { listener: self }
    }

    settings!(UnixListener);

    delegate! { std_unix::UnixListener;
        fn local_addr(&self) -> io::Result<SocketAddr>;
        fn take_error(&self) -> io::Result<Option<io::Error>>;
    }
}

socket_common!(UnixListener, std_unix::UnixListener);

/// The std address of a Unix socket address from socket2, if std can spell it.
fn std_addr(addr: &SockAddr) -> Option<SocketAddr> {
    if addr.is_unnamed() {
        // An empty path is how std spells the unnamed address (the family alone).
        SocketAddr::from_pathname("").ok()
    } else if let Some(path) = addr.as_pathname() {
        SocketAddr::from_pathname(path).ok()
    } else {
        SocketAddr::from_abstract_name(addr.as_abstract_namespace()?).ok()
    }
}

/// The iterator of [`UnixListener::incoming`].
#[derive(Debug)]
pub struct UnixIncoming<'a> {
    listener: &'a UnixListener,
}

impl Iterator for UnixIncoming<'_> {
    type Item = io::Result<UnixStream>;

    fn next(&mut self) -> Option<io::Result<UnixStream>> {
        Some(self.listener.accept().map(|(stream, _)| stream))
    }
}

/// A Unix stream socket: [`std::os::unix::net::UnixStream`] for coroutines. `Read` and
/// `Write` are implemented for `&UnixStream` too; writes never raise SIGPIPE.
///
/// ```
/// use std::io::{Read, Write};
/// use weft::net::UnixStream;
///
/// let (mut a, mut b) = UnixStream::pair()?;
/// let reader = weft::spawn(move || {
///     let mut buf = [0; 5];
///     b.read_exact(&mut buf).map(|()| buf)
/// });
/// a.write_all(b"hello")?;
/// assert_eq!(&reader.join().unwrap()?, b"hello");
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct UnixStream {
    sock: Socket,
}

/// Delay before retrying a connect refused for a full backlog, doubling up to
/// [`CONNECT_RETRY_MAX`]. A Unix socket gives no readiness to wait for in that case.
const CONNECT_RETRY_FIRST: Duration = Duration::from_millis(1);
const CONNECT_RETRY_MAX: Duration = Duration::from_millis(100);

impl UnixStream {
    fn wrap(sock: Socket) -> UnixStream {
        UnixStream { sock }
    }

    /// Connects to the socket at `path`. If the listener's backlog is full, it retries with a
    /// short backoff until there is room, parking only the coroutine (std blocks the thread).
    ///
    /// # Errors
    ///
    /// The error of `connect` (`NotFound`, `ConnectionRefused`, …).
    pub fn connect<P: AsRef<Path>>(path: P) -> io::Result<UnixStream> {
        connect(&SockAddr::unix(path)?)
    }

    /// Connects to the socket at `addr`.
    ///
    /// # Errors
    ///
    /// As [`connect`](UnixStream::connect).
    pub fn connect_addr(addr: &SocketAddr) -> io::Result<UnixStream> {
        match addr.as_pathname() {
            Some(path) => UnixStream::connect(path),
            // Abstract names: std knows how to spell them; its connect may block the thread
            // while the listener's backlog is full.
            None => UnixStream::from_std(std_unix::UnixStream::connect_addr(addr)?),
        }
    }

    /// A pair of connected sockets.
    ///
    /// # Errors
    ///
    /// The error of `socketpair`, such as `EMFILE`.
    pub fn pair() -> io::Result<(UnixStream, UnixStream)> {
        let (a, b) = socket2::Socket::pair(Domain::UNIX, Type::STREAM.nonblocking(), None)?;
        let wrap = |s: socket2::Socket| UnixStream::wrap(Socket::from_nonblocking(s));
        Ok((wrap(a), wrap(b)))
    }

    settings!(UnixStream, timeouts, shutdown);

    delegate! { std_unix::UnixStream;
        fn local_addr(&self) -> io::Result<SocketAddr>;
        fn peer_addr(&self) -> io::Result<SocketAddr>;
        fn take_error(&self) -> io::Result<Option<io::Error>>;
    }
}

fn connect(addr: &SockAddr) -> io::Result<UnixStream> {
    let socket = socket2::Socket::new(Domain::UNIX, Type::STREAM.nonblocking(), None)?;
    let mut delay = CONNECT_RETRY_FIRST;
    loop {
        match connect_once(&socket, addr) {
            Ok(()) => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                weft_runtime::reactor::sleep_io(delay)?;
                delay = (delay * 2).min(CONNECT_RETRY_MAX);
            }
            Err(e) => return Err(e),
        }
    }
    Ok(UnixStream::wrap(Socket::from_nonblocking(socket)))
}

/// One `connect(2)`, out of line: the loop around it parks between attempts, and a migrated
/// coroutine must read `errno` on the thread it runs on now (see `Registration::io`).
#[inline(never)]
fn connect_once(socket: &socket2::Socket, addr: &SockAddr) -> io::Result<()> {
    socket.connect(addr)
}

socket_common!(UnixStream, std_unix::UnixStream);

stream_io!(UnixStream, std_unix::UnixStream);

/// A Unix datagram socket: [`std::os::unix::net::UnixDatagram`] for coroutines.
///
/// ```
/// use weft::net::UnixDatagram;
///
/// let (a, b) = UnixDatagram::pair()?;
/// let receiver = weft::spawn(move || {
///     let mut buf = [0; 16];
///     b.recv(&mut buf).map(|n| buf[..n].to_vec())
/// });
/// a.send(b"one datagram")?;
/// assert_eq!(receiver.join().unwrap()?, b"one datagram");
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct UnixDatagram {
    sock: Socket,
}

impl UnixDatagram {
    fn wrap(sock: Socket) -> UnixDatagram {
        UnixDatagram { sock }
    }

    /// Creates a socket bound to `path`.
    ///
    /// # Errors
    ///
    /// The error of `bind`.
    pub fn bind<P: AsRef<Path>>(path: P) -> io::Result<UnixDatagram> {
        UnixDatagram::from_std(std_unix::UnixDatagram::bind(path)?)
    }

    /// Creates a socket bound to `addr`.
    ///
    /// # Errors
    ///
    /// The error of `bind`.
    pub fn bind_addr(addr: &SocketAddr) -> io::Result<UnixDatagram> {
        UnixDatagram::from_std(std_unix::UnixDatagram::bind_addr(addr)?)
    }

    /// Creates a socket bound to no address.
    ///
    /// # Errors
    ///
    /// The error of `socket`.
    pub fn unbound() -> io::Result<UnixDatagram> {
        UnixDatagram::from_std(std_unix::UnixDatagram::unbound()?)
    }

    /// A pair of connected sockets.
    ///
    /// # Errors
    ///
    /// The error of `socketpair`.
    pub fn pair() -> io::Result<(UnixDatagram, UnixDatagram)> {
        let (a, b) = socket2::Socket::pair(Domain::UNIX, Type::DGRAM.nonblocking(), None)?;
        let wrap = |s: socket2::Socket| UnixDatagram::wrap(Socket::from_nonblocking(s));
        Ok((wrap(a), wrap(b)))
    }

    /// Receives a datagram and its sender's address.
    ///
    /// # Errors
    ///
    /// `TimedOut` after the read timeout; `WouldBlock` in non-blocking mode.
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        let view = self.sock.view::<std_unix::UnixDatagram>();
        self.sock.read_with(|| view.recv_from(buf))
    }

    /// Receives a datagram from the connected peer.
    ///
    /// # Errors
    ///
    /// As [`recv_from`](UnixDatagram::recv_from).
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        let view = self.sock.view::<std_unix::UnixDatagram>();
        self.sock.read_with(|| view.recv(buf))
    }

    /// Sends a datagram to the socket at `path`, waiting while the receiver's queue is full.
    ///
    /// # Errors
    ///
    /// `TimedOut` after the write timeout; the error of `sendto`.
    pub fn send_to<P: AsRef<Path>>(&self, buf: &[u8], path: P) -> io::Result<usize> {
        let addr = SockAddr::unix(path)?;
        let sock = SockRef::from(self.sock.fd());
        self.sock.write_with(|| sock.send_to_with_flags(buf, &addr, libc::MSG_NOSIGNAL))
    }

    /// Sends a datagram to `addr`.
    ///
    /// # Errors
    ///
    /// As [`send_to`](UnixDatagram::send_to).
    pub fn send_to_addr(&self, buf: &[u8], addr: &SocketAddr) -> io::Result<usize> {
        let view = self.sock.view::<std_unix::UnixDatagram>();
        self.sock.write_with(|| view.send_to_addr(buf, addr))
    }

    /// Sends a datagram to the connected peer.
    ///
    /// # Errors
    ///
    /// As [`send_to`](UnixDatagram::send_to); `NotConnected` without a peer.
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.sock.send(buf)
    }

    /// Connects the socket to the one at `path`.
    ///
    /// # Errors
    ///
    /// The error of `connect`.
    pub fn connect<P: AsRef<Path>>(&self, path: P) -> io::Result<()> {
        self.sock.view::<std_unix::UnixDatagram>().connect(path)
    }

    /// Connects the socket to `addr`.
    ///
    /// # Errors
    ///
    /// The error of `connect`.
    pub fn connect_addr(&self, addr: &SocketAddr) -> io::Result<()> {
        self.sock.view::<std_unix::UnixDatagram>().connect_addr(addr)
    }

    settings!(UnixDatagram, timeouts, shutdown);

    delegate! { std_unix::UnixDatagram;
        fn local_addr(&self) -> io::Result<SocketAddr>;
        fn peer_addr(&self) -> io::Result<SocketAddr>;
        fn take_error(&self) -> io::Result<Option<io::Error>>;
    }
}

socket_common!(UnixDatagram, std_unix::UnixDatagram);
