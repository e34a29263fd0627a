//! Networking for weft coroutines, mirroring `std::net` and `std::os::unix::net`:
//! blocking-style sockets that park the calling coroutine instead of its thread.
//!
//! | std | weft |
//! |---|---|
//! | `std::net::{TcpListener, TcpStream, UdpSocket}` | `weft::net::{TcpListener, TcpStream, UdpSocket}` |
//! | `std::os::unix::net::{UnixListener, UnixStream, UnixDatagram}` | `weft::net::{UnixListener, UnixStream, UnixDatagram}` |
//! | `std::net::ToSocketAddrs` | `weft::net::ToSocketAddrs` (same impls; lookups off the worker) |
//!
//! Every call is syscall-first: it tries the non-blocking system call, and only if that would
//! block does it park the coroutine until the fd is ready (through the worker's epoll, see
//! `weft::reactor`). Outside a coroutine the same calls block the thread in `poll(2)`, so
//! `main`, tests and plain threads can use these types too.
//!
//! Where weft differs from std:
//! - a read or write that times out returns `ErrorKind::TimedOut`, where std on Unix returns
//!   `WouldBlock`;
//! - a timeout set while another coroutine waits on the socket applies to that wait at once;
//! - writes never raise SIGPIPE (`MSG_NOSIGNAL`), Unix sockets included;
//! - when the process is out of fds, `accept` waits a backoff before returning the error;
//! - while the runtime shuts down, a waiting call returns an `ErrorKind::Other` error.

#![warn(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

#[cfg(not(target_os = "linux"))]
compile_error!("weft-net supports Linux only, as weft-runtime does");

mod addr;
mod backoff;
pub mod http;
mod socket;
mod sys;
mod tcp;
mod udp;
mod unix;

pub use addr::ToSocketAddrs;
pub use tcp::{Incoming, TcpListener, TcpStream};
pub use udp::UdpSocket;
pub use unix::{UnixDatagram, UnixIncoming, UnixListener, UnixStream};
