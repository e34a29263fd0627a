//! TCP: [`TcpListener`] and [`TcpStream`], with the API of `std::net`.

use std::io;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::time::Duration;

use socket2::{Domain, Protocol, SockRef, Type};
use weft_runtime::reactor::Interest;

use crate::addr::{each_addr, ToSocketAddrs};
use crate::backoff::AcceptBackoff;
use crate::socket::{
    check_timeout, delegate, settings, socket_common, stream_io, Deadline, Socket,
};

/// The listen backlog: the kernel caps it at `net.core.somaxconn` (4096 by default), which a
/// burst of thousands of connects needs. std asks for 128.
const BACKLOG: i32 = libc::SOMAXCONN;

/// A TCP socket server, listening for connections: [`std::net::TcpListener`] for coroutines.
///
/// `accept` parks the calling coroutine until a connection arrives; on a plain thread it
/// blocks the thread. When the process is out of file descriptors, `accept` waits a growing
/// backoff (5 ms doubling to 1 s, as Go's servers do) before it returns the error, so a loop
/// that retries cannot spin.
///
/// ```
/// use std::io::{Read, Write};
/// use weft::net::{TcpListener, TcpStream};
///
/// let listener = TcpListener::bind("127.0.0.1:0")?;
/// let addr = listener.local_addr()?;
/// let server = weft::spawn(move || -> std::io::Result<()> {
///     let (mut stream, _) = listener.accept()?;
///     let mut buf = [0; 4];
///     stream.read_exact(&mut buf)?;
///     stream.write_all(&buf)
/// });
/// let mut client = TcpStream::connect(addr)?;
/// client.write_all(b"ping")?;
/// let mut echo = [0; 4];
/// client.read_exact(&mut echo)?;
/// assert_eq!(&echo, b"ping");
/// server.join().unwrap()?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct TcpListener {
    sock: Socket,
    backoff: AcceptBackoff,
}

impl TcpListener {
    fn wrap(sock: Socket) -> TcpListener {
        TcpListener { sock, backoff: AcceptBackoff::default() }
    }

    /// Shuts the listening socket down: `accept` calls waiting on it wake and fail, and so do
    /// later ones (the HTTP server's shutdown).
    pub(crate) fn stop_accepting(&self) {
        // A listener that is not listening any more has nothing left to stop.
        let _ = self.sock.shutdown(std::net::Shutdown::Read);
    }

    /// Creates a listener bound to `addr`, as [`std::net::TcpListener::bind`]: each resolved
    /// address is tried in turn. `SO_REUSEADDR` is set, as std does.
    ///
    /// # Errors
    ///
    /// The error of the last address tried, or `InvalidInput` if none resolved.
    pub fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<TcpListener> {
        each_addr(&addr, |a| listen(a, false))
    }

    /// Like [`bind`](TcpListener::bind), with `SO_REUSEPORT` set too, so that several
    /// listeners (one per worker, say) can bind the same address and the kernel spreads the
    /// incoming connections among them.
    ///
    /// ```
    /// use weft::net::TcpListener;
    ///
    /// let a = TcpListener::bind_reuse_port("127.0.0.1:0")?;
    /// let b = TcpListener::bind_reuse_port(a.local_addr()?)?;
    /// assert_eq!(a.local_addr()?, b.local_addr()?);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`bind`](TcpListener::bind).
    pub fn bind_reuse_port<A: ToSocketAddrs>(addr: A) -> io::Result<TcpListener> {
        each_addr(&addr, |a| listen(a, true))
    }

    /// Accepts a new connection, parking the coroutine until one arrives.
    ///
    /// # Errors
    ///
    /// - `TimedOut` never (a listener has no timeout);
    /// - `WouldBlock` in non-blocking mode when no connection waits;
    /// - `EMFILE`/`ENFILE` (and `ENOBUFS`/`ENOMEM`) after the backoff described on the type
    ///   (at once in non-blocking mode);
    /// - `Other` when the runtime shuts down while the coroutine waits or backs off.
    pub fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let flags = libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
        let accepted = self.sock.read_with(|| SockRef::from(self.sock.fd()).accept4(flags));
        match accepted {
            Ok((socket, addr)) => {
                self.backoff.reset();
                let stream = TcpStream::wrap(Socket::from_nonblocking(socket));
                let addr = addr.as_socket().ok_or_else(|| {
                    io::Error::new(io::ErrorKind::InvalidData, "accepted a non-IP address")
                })?;
                Ok((stream, addr))
            }
            Err(e) if crate::sys::is_resource_exhaustion(&e) && !self.sock.is_nonblocking() => {
                self.backoff.wait(&e, self)?;
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    /// An iterator over the connections, as [`std::net::TcpListener::incoming`]: it never
    /// ends, and yields each `accept` error.
    pub fn incoming(&self) -> Incoming<'_> {
        Incoming { listener: self }
    }

    settings!(TcpListener);

    delegate! { std::net::TcpListener;
        fn local_addr(&self) -> io::Result<SocketAddr>;
        fn set_ttl(&self, ttl: u32) -> io::Result<()>;
        fn ttl(&self) -> io::Result<u32>;
        fn take_error(&self) -> io::Result<Option<io::Error>>;
    }
}

fn listen(addr: &SocketAddr, reuse_port: bool) -> io::Result<TcpListener> {
    let socket = socket2::Socket::new(
        Domain::for_address(*addr),
        Type::STREAM.nonblocking(),
        Some(Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    socket.bind(&(*addr).into())?;
    socket.listen(BACKLOG)?;
    Ok(TcpListener::wrap(Socket::from_nonblocking(socket)))
}

socket_common!(TcpListener, std::net::TcpListener);

/// The iterator of [`TcpListener::incoming`].
#[derive(Debug)]
pub struct Incoming<'a> {
    listener: &'a TcpListener,
}

impl Iterator for Incoming<'_> {
    type Item = io::Result<TcpStream>;

    fn next(&mut self) -> Option<io::Result<TcpStream>> {
        Some(self.listener.accept().map(|(stream, _)| stream))
    }
}

/// A TCP connection: [`std::net::TcpStream`] for coroutines.
///
/// Reads and writes park the calling coroutine until the socket is ready, and block the
/// thread outside a coroutine. `Read` and `Write` are implemented for `&TcpStream` too, so one
/// coroutine may read while another writes the same stream. A timed-out call returns
/// `ErrorKind::TimedOut` (std returns `WouldBlock` on Unix). Writes never raise SIGPIPE: a
/// write to a closed peer returns `BrokenPipe` or `ConnectionReset`.
///
/// ```
/// use std::io::{Read, Write};
/// use std::time::Duration;
/// use weft::net::{TcpListener, TcpStream};
///
/// let listener = TcpListener::bind("127.0.0.1:0")?;
/// let client = TcpStream::connect(listener.local_addr()?)?;
/// let (mut server, _) = listener.accept()?;
/// server.set_read_timeout(Some(Duration::from_millis(10)))?;
/// let mut buf = [0; 8];
/// let err = server.read(&mut buf).unwrap_err();
/// assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
/// (&client).write_all(b"late")?;
/// assert_eq!(server.read(&mut buf)?, 4);
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct TcpStream {
    sock: Socket,
}

impl TcpStream {
    fn wrap(sock: Socket) -> TcpStream {
        TcpStream { sock }
    }

    /// `read`, waiting for data until `deadline` at most instead of the read timeout.
    pub(crate) fn read_until(&self, buf: &mut [u8], deadline: Deadline) -> io::Result<usize> {
        let view = self.sock.view::<std::net::TcpStream>();
        self.sock.io_until(Interest::Readable, deadline, || io::Read::read(&mut &*view, buf))
    }

    /// `write`, waiting for room until `deadline` at most instead of the write timeout.
    pub(crate) fn write_until(&self, buf: &[u8], deadline: Deadline) -> io::Result<usize> {
        self.sock.send_until(buf, deadline)
    }

    /// `write_vectored`, waiting for room until `deadline` at most instead of the write
    /// timeout.
    pub(crate) fn write_vectored_until(
        &self,
        bufs: &[io::IoSlice<'_>],
        deadline: Deadline,
    ) -> io::Result<usize> {
        self.sock.send_vectored_until(bufs, deadline)
    }

    /// Opens a connection to `addr`, as [`std::net::TcpStream::connect`]: each resolved
    /// address is tried in turn. Host names are resolved without blocking the worker.
    ///
    /// # Errors
    ///
    /// The error of the last address tried (`ConnectionRefused`, say), or `InvalidInput` if
    /// none resolved.
    pub fn connect<A: ToSocketAddrs>(addr: A) -> io::Result<TcpStream> {
        each_addr(&addr, |a| connect(a, None))
    }

    /// Opens a connection to `addr`, giving up after `timeout`, as
    /// [`std::net::TcpStream::connect_timeout`].
    ///
    /// # Errors
    ///
    /// - `TimedOut` when the connection is not made within `timeout`;
    /// - `InvalidInput` for a zero `timeout`, as std;
    /// - the connection's error, such as `ConnectionRefused`.
    pub fn connect_timeout(addr: &SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
        check_timeout(Some(timeout))?;
        connect(addr, Some(timeout))
    }

    /// Reads into `buf` without removing the data from the queue, as
    /// [`std::net::TcpStream::peek`].
    ///
    /// # Errors
    ///
    /// As `read`.
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        let view = self.sock.view::<std::net::TcpStream>();
        self.sock.read_with(|| view.peek(buf))
    }

    settings!(TcpStream, timeouts, shutdown);

    delegate! { std::net::TcpStream;
        fn peer_addr(&self) -> io::Result<SocketAddr>;
        fn local_addr(&self) -> io::Result<SocketAddr>;
        fn set_nodelay(&self, nodelay: bool) -> io::Result<()>;
        fn nodelay(&self) -> io::Result<bool>;
        fn set_ttl(&self, ttl: u32) -> io::Result<()>;
        fn ttl(&self) -> io::Result<u32>;
        fn take_error(&self) -> io::Result<Option<io::Error>>;
    }
}

fn connect(addr: &SocketAddr, timeout: Option<Duration>) -> io::Result<TcpStream> {
    let socket = socket2::Socket::new(
        Domain::for_address(*addr),
        Type::STREAM.nonblocking(),
        Some(Protocol::TCP),
    )?;
    let stream = TcpStream::wrap(Socket::from_nonblocking(socket));
    let sock = SockRef::from(stream.sock.fd());
    match sock.connect(&(*addr).into()) {
        Ok(()) => return Ok(stream),
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    // Writable means the handshake ended; SO_ERROR says how.
    stream.sock.connect_with(timeout, || {
        if let Some(e) = sock.take_error()? {
            return Err(e);
        }
        match sock.peer_addr() {
            Ok(_) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => {
                Err(io::ErrorKind::WouldBlock.into())
            }
            Err(e) => Err(e),
        }
    })?;
    Ok(stream)
}

socket_common!(TcpStream, std::net::TcpStream);

stream_io!(TcpStream, std::net::TcpStream);
