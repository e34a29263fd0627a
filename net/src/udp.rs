//! UDP: [`UdpSocket`], with the API of `std::net`.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::OwnedFd;

use crate::addr::{each_addr, ToSocketAddrs};
use crate::socket::{delegate, settings, socket_common, Socket};

/// A UDP socket: [`std::net::UdpSocket`] for coroutines.
///
/// Receiving parks the calling coroutine until a datagram arrives (and sending until there is
/// room, which is rare); outside a coroutine the calls block the thread. A timed-out call
/// returns `ErrorKind::TimedOut`.
///
/// ```
/// use weft::net::UdpSocket;
///
/// let server = UdpSocket::bind("127.0.0.1:0")?;
/// let addr = server.local_addr()?;
/// let echo = weft::spawn(move || -> std::io::Result<()> {
///     let mut buf = [0; 64];
///     let (n, from) = server.recv_from(&mut buf)?;
///     server.send_to(&buf[..n], from)?;
///     Ok(())
/// });
/// let client = UdpSocket::bind("127.0.0.1:0")?;
/// client.connect(addr)?;
/// client.send(b"hello")?;
/// let mut buf = [0; 64];
/// let n = client.recv(&mut buf)?;
/// assert_eq!(&buf[..n], b"hello");
/// echo.join().unwrap()?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct UdpSocket {
    sock: Socket,
}

impl UdpSocket {
    fn wrap(sock: Socket) -> UdpSocket {
        UdpSocket { sock }
    }

    /// Creates a socket bound to `addr`, as [`std::net::UdpSocket::bind`].
    ///
    /// # Errors
    ///
    /// The error of the last address tried, or `InvalidInput` if none resolved.
    pub fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<UdpSocket> {
        each_addr(&addr, |a| UdpSocket::from_std(std::net::UdpSocket::bind(a)?))
    }

    /// Receives a datagram, returning its length and sender.
    ///
    /// # Errors
    ///
    /// `TimedOut` after the read timeout; `WouldBlock` in non-blocking mode; the socket's
    /// error (an ICMP unreachable on a connected socket, say).
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        let view = self.sock.view::<std::net::UdpSocket>();
        self.sock.read_with(|| view.recv_from(buf))
    }

    /// Like [`recv_from`](UdpSocket::recv_from), leaving the datagram in the queue.
    ///
    /// # Errors
    ///
    /// As [`recv_from`](UdpSocket::recv_from).
    pub fn peek_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        let view = self.sock.view::<std::net::UdpSocket>();
        self.sock.read_with(|| view.peek_from(buf))
    }

    /// Receives a datagram from the connected peer.
    ///
    /// # Errors
    ///
    /// As [`recv_from`](UdpSocket::recv_from).
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        let view = self.sock.view::<std::net::UdpSocket>();
        self.sock.read_with(|| view.recv(buf))
    }

    /// Like [`recv`](UdpSocket::recv), leaving the datagram in the queue.
    ///
    /// # Errors
    ///
    /// As [`recv_from`](UdpSocket::recv_from).
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        let view = self.sock.view::<std::net::UdpSocket>();
        self.sock.read_with(|| view.peek(buf))
    }

    /// Sends `buf` to `addr` (its first resolved address), as
    /// [`std::net::UdpSocket::send_to`].
    ///
    /// # Errors
    ///
    /// `InvalidInput` if `addr` resolves to nothing; `TimedOut` after the write timeout; the
    /// error of `sendto`.
    pub fn send_to<A: ToSocketAddrs>(&self, buf: &[u8], addr: A) -> io::Result<usize> {
        let Some(addr) = addr.to_socket_addrs()?.next() else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "no addresses to send data to",
            ));
        };
        let view = self.sock.view::<std::net::UdpSocket>();
        self.sock.write_with(|| view.send_to(buf, addr))
    }

    /// Sends `buf` to the connected peer.
    ///
    /// # Errors
    ///
    /// As [`send_to`](UdpSocket::send_to); `NotConnected` without a peer.
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        let view = self.sock.view::<std::net::UdpSocket>();
        self.sock.write_with(|| view.send(buf))
    }

    /// Connects the socket to `addr`, as [`std::net::UdpSocket::connect`]: the first resolved
    /// address that works.
    ///
    /// # Errors
    ///
    /// The error of the last address tried, or `InvalidInput` if none resolved.
    pub fn connect<A: ToSocketAddrs>(&self, addr: A) -> io::Result<()> {
        let view = self.sock.view::<std::net::UdpSocket>();
        each_addr(&addr, |a| view.connect(a))
    }

    settings!(UdpSocket, timeouts);

    delegate! { std::net::UdpSocket;
        fn peer_addr(&self) -> io::Result<SocketAddr>;
        fn local_addr(&self) -> io::Result<SocketAddr>;
        fn set_broadcast(&self, broadcast: bool) -> io::Result<()>;
        fn broadcast(&self) -> io::Result<bool>;
        fn set_multicast_loop_v4(&self, on: bool) -> io::Result<()>;
        fn multicast_loop_v4(&self) -> io::Result<bool>;
        fn set_multicast_ttl_v4(&self, ttl: u32) -> io::Result<()>;
        fn multicast_ttl_v4(&self) -> io::Result<u32>;
        fn set_multicast_loop_v6(&self, on: bool) -> io::Result<()>;
        fn multicast_loop_v6(&self) -> io::Result<bool>;
        fn set_ttl(&self, ttl: u32) -> io::Result<()>;
        fn ttl(&self) -> io::Result<u32>;
        fn join_multicast_v4(&self, multiaddr: &Ipv4Addr, interface: &Ipv4Addr) -> io::Result<()>;
        fn join_multicast_v6(&self, multiaddr: &Ipv6Addr, interface: u32) -> io::Result<()>;
        fn leave_multicast_v4(&self, multiaddr: &Ipv4Addr, interface: &Ipv4Addr) -> io::Result<()>;
        fn leave_multicast_v6(&self, multiaddr: &Ipv6Addr, interface: u32) -> io::Result<()>;
        fn take_error(&self) -> io::Result<Option<io::Error>>;
    }
}

socket_common!(UdpSocket, std::net::UdpSocket);
