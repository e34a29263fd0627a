//! Address resolution that never blocks a worker.
//!
//! std's `ToSocketAddrs` resolves host names with `getaddrinfo`, which blocks the calling
//! thread, and a coroutine calling it would hold its whole worker. weft's trait has std's shape
//! and std's implementations, but a lookup made from a coroutine runs on the runtime's
//! blocking pool ([`weft_runtime::spawn_blocking`]) while only the coroutine waits. Literal
//! addresses (`"127.0.0.1:80"`, `(ip, port)`, `SocketAddr`) never reach a lookup.
//!
//! The trait is weft's own, rather than std's, because a generic `A: std::net::ToSocketAddrs`
//! cannot be sent to another thread: a lookup needs an owned query (`String`, port), which
//! only the implementations for concrete types can make.

use std::io;
use std::iter::Cloned;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::{option, slice, vec};

/// A value that can be turned into socket addresses: weft's counterpart of
/// [`std::net::ToSocketAddrs`], implemented for the same types.
///
/// Host names are resolved without blocking the worker: from a coroutine, the lookup runs on
/// weft's blocking pool and only the coroutine waits. Literal IP addresses skip the lookup.
///
/// ```
/// use weft::net::ToSocketAddrs;
///
/// let addrs: Vec<_> = ("127.0.0.1", 80).to_socket_addrs()?.collect();
/// assert_eq!(addrs, ["127.0.0.1:80".parse().unwrap()]);
/// let local = weft::spawn(|| "localhost:80".to_socket_addrs().map(|a| a.count()));
/// assert!(local.join().unwrap()? >= 1);
/// # Ok::<(), std::io::Error>(())
/// ```
pub trait ToSocketAddrs {
    /// The addresses this value resolves to.
    type Iter: Iterator<Item = SocketAddr>;

    /// Resolves this value to socket addresses.
    ///
    /// # Errors
    ///
    /// What std's lookup returns for a name that does not resolve or a malformed address.
    fn to_socket_addrs(&self) -> io::Result<Self::Iter>;
}

macro_rules! literal {
    ($($ty:ty => $to:expr),* $(,)?) => {$(
        impl ToSocketAddrs for $ty {
            type Iter = option::IntoIter<SocketAddr>;

            fn to_socket_addrs(&self) -> io::Result<Self::Iter> {
                let to: fn(&$ty) -> SocketAddr = $to;
                Ok(Some(to(self)).into_iter())
            }
        }
    )*};
}

literal! {
    SocketAddr => |a| *a,
    SocketAddrV4 => |a| SocketAddr::V4(*a),
    SocketAddrV6 => |a| SocketAddr::V6(*a),
    (IpAddr, u16) => |&(ip, port)| SocketAddr::new(ip, port),
    (Ipv4Addr, u16) => |&(ip, port)| SocketAddr::new(IpAddr::V4(ip), port),
    (Ipv6Addr, u16) => |&(ip, port)| SocketAddr::new(IpAddr::V6(ip), port),
}

impl ToSocketAddrs for (&str, u16) {
    type Iter = vec::IntoIter<SocketAddr>;

    fn to_socket_addrs(&self) -> io::Result<Self::Iter> {
        let (host, port) = *self;
        match host.parse::<IpAddr>() {
            Ok(ip) => Ok(vec![SocketAddr::new(ip, port)].into_iter()),
            Err(_) => lookup((host.to_owned(), port)),
        }
    }
}

impl ToSocketAddrs for (String, u16) {
    type Iter = vec::IntoIter<SocketAddr>;

    fn to_socket_addrs(&self) -> io::Result<Self::Iter> {
        (self.0.as_str(), self.1).to_socket_addrs()
    }
}

impl ToSocketAddrs for str {
    type Iter = vec::IntoIter<SocketAddr>;

    fn to_socket_addrs(&self) -> io::Result<Self::Iter> {
        match self.parse::<SocketAddr>() {
            Ok(addr) => Ok(vec![addr].into_iter()),
            // std parses "host:port" and reports a malformed one; it does so on the pool too.
            Err(_) => lookup(self.to_owned()),
        }
    }
}

impl ToSocketAddrs for String {
    type Iter = vec::IntoIter<SocketAddr>;

    fn to_socket_addrs(&self) -> io::Result<Self::Iter> {
        self.as_str().to_socket_addrs()
    }
}

impl<'a> ToSocketAddrs for &'a [SocketAddr] {
    type Iter = Cloned<slice::Iter<'a, SocketAddr>>;

    fn to_socket_addrs(&self) -> io::Result<Self::Iter> {
        Ok(self.iter().cloned())
    }
}

impl<T: ToSocketAddrs + ?Sized> ToSocketAddrs for &T {
    type Iter = T::Iter;

    fn to_socket_addrs(&self) -> io::Result<Self::Iter> {
        (**self).to_socket_addrs()
    }
}

/// Resolves `query` with std: on the blocking pool from a coroutine, in place on a thread.
fn lookup<Q>(query: Q) -> io::Result<vec::IntoIter<SocketAddr>>
where
    Q: std::net::ToSocketAddrs + Send + 'static,
{
    let resolve = move || query.to_socket_addrs().map(Iterator::collect::<Vec<_>>);
    let addrs = if weft_runtime::is_coroutine() {
        match weft_runtime::spawn_blocking(resolve).join() {
            Ok(addrs) => addrs,
            Err(payload) => std::panic::resume_unwind(payload),
        }
    } else {
        resolve()
    };
    addrs.map(Vec::into_iter)
}

/// Runs `f` on each address of `addr` in turn until one succeeds, as std's `connect` and
/// `bind` do; returns the last error, or std's error for an empty list.
pub(crate) fn each_addr<A: ToSocketAddrs + ?Sized, T>(
    addr: &A,
    mut f: impl FnMut(&SocketAddr) -> io::Result<T>,
) -> io::Result<T> {
    let mut last = None;
    for addr in addr.to_socket_addrs()? {
        match f(&addr) {
            Ok(value) => return Ok(value),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidInput, "could not resolve to any addresses")
    }))
}
