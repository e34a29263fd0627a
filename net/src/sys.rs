//! The system calls weft-net makes itself; everything else goes through socket2 or std.
//!
//! Writes are made here because std's `write` on a Unix socket, and `write_vectored` on any
//! socket, use `write(2)`/`writev(2)`, which raise SIGPIPE on a closed peer. weft writes with
//! `send(2)`/`sendmsg(2)` and `MSG_NOSIGNAL`, so a closed peer is an `EPIPE` error and never a
//! signal, whatever the program's SIGPIPE disposition.

use std::io::{self, IoSlice};
use std::os::fd::RawFd;

/// Calls a libc function and maps a `-1` result to the thread's `errno` as an `io::Error`.
macro_rules! syscall {
    ($fn:ident ( $($arg:expr),* $(,)? )) => {{
        // SAFETY: each call site passes arguments that satisfy the libc function's contract;
        // the sites are all in this module and say why where it is not obvious.
        let res = unsafe { libc::$fn($($arg),*) };
        if res == -1 {
            Err(io::Error::last_os_error())
        } else {
            Ok(res)
        }
    }};
}

/// The most buffers one `sendmsg` takes (`IOV_MAX` on Linux); more are left for the next call,
/// as a short write.
const IOV_MAX: usize = 1024;

/// `send(fd, buf, MSG_NOSIGNAL)`.
pub(crate) fn send(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    syscall!(send(fd, buf.as_ptr().cast(), buf.len(), libc::MSG_NOSIGNAL)).map(|n| n as usize)
}

/// `sendmsg` of `bufs` with `MSG_NOSIGNAL`: a vectored write that cannot raise SIGPIPE.
pub(crate) fn send_vectored(fd: RawFd, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
    // SAFETY: an all-zero msghdr is a valid empty message.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    // IoSlice is documented to be ABI-compatible with iovec on Unix; sendmsg only reads them.
    msg.msg_iov = bufs.as_ptr() as *mut libc::iovec;
    msg.msg_iovlen = bufs.len().min(IOV_MAX) as _;
    syscall!(sendmsg(fd, &msg, libc::MSG_NOSIGNAL)).map(|n| n as usize)
}

/// Whether the fd has `O_NONBLOCK` set.
pub(crate) fn is_nonblocking(fd: RawFd) -> io::Result<bool> {
    let flags = syscall!(fcntl(fd, libc::F_GETFL))?;
    Ok(flags & libc::O_NONBLOCK != 0)
}

/// Sets or clears `O_NONBLOCK` on the fd.
pub(crate) fn set_nonblocking(fd: RawFd, nonblocking: bool) -> io::Result<()> {
    let mut on = libc::c_int::from(nonblocking);
    // FIONBIO: one call, where F_GETFL + F_SETFL take two. It reads the int we pass.
    syscall!(ioctl(fd, libc::FIONBIO, &mut on)).map(drop)
}

/// Whether an error means the process or system is out of file descriptors (or of the memory
/// behind them): an accept that fails so is worth retrying later, not at once.
pub(crate) fn is_resource_exhaustion(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM))
}
