//! The core every socket type is built on: an fd in non-blocking mode, its reactor
//! registration, and the settings std keeps in the kernel (timeouts, blocking mode) but weft
//! must know without a syscall. Like the kernel's, the settings belong to the socket: the
//! handles made by `try_clone` share them (the [`Family`]).
//!
//! Every blocking call goes through [`Socket::read_with`] or [`Socket::write_with`]:
//!
//! 1. If the user asked for non-blocking mode, the call is made once and `WouldBlock` returned
//!    as std does.
//! 2. Otherwise [`Registration::io`] makes the call, and on `WouldBlock` parks the coroutine
//!    (or polls the thread) until the fd is ready or the direction's timeout passes.
//!
//! The kernel's `O_NONBLOCK` is always set while weft owns the fd. What a user sees as
//! "blocking mode" is the `nonblocking` flag here. `SO_RCVTIMEO`/`SO_SNDTIMEO` are set too, so
//! a socket handed back to std (`into_std`, `into_raw_fd`) keeps its timeouts and becomes
//! blocking again.
//!
//! Writes use `send(2)`/`sendmsg(2)` with `MSG_NOSIGNAL`, because std's `write` on a Unix
//! socket, and `write_vectored` on any socket, use `write(2)`/`writev(2)`, which raise SIGPIPE
//! on a closed peer. So a closed peer is an `EPIPE` error and never a signal, whatever the
//! program's SIGPIPE disposition.
//!
//! `O_NONBLOCK` belongs to the open socket too, so a handle given back to std restores
//! blocking mode only if it is the last weft handle of its family: clearing it under a live
//! weft handle would make that handle's calls block its worker.

use std::io;
use std::mem::ManuallyDrop;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::AcqRel, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use socket2::SockRef;
use weft_runtime::reactor::{Interest, Notifier, Registration};

use crate::sys;

/// The most buffers one `sendmsg` takes (`IOV_MAX` on Linux); more are left for the next call,
/// as a short write.
const IOV_MAX: usize = 1024;

/// When a wait of one call gives up: at a fixed instant, or a time after the call's first
/// wait (which reads no clock unless the call waits).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Deadline {
    At(Instant),
    After(Duration),
}

/// A timeout in nanoseconds, 0 for none (std refuses a zero timeout, so 0 is free).
struct Timeout(AtomicU64);

impl Timeout {
    fn new(value: Option<Duration>) -> Timeout {
        Timeout(AtomicU64::new(value.map_or(0, nanos)))
    }

    fn get(&self) -> Option<Duration> {
        match self.0.load(Relaxed) {
            0 => None,
            n => Some(Duration::from_nanos(n)),
        }
    }

    fn set(&self, value: Option<Duration>) {
        self.0.store(value.map_or(0, nanos), Relaxed);
    }
}

fn nanos(d: Duration) -> u64 {
    // Durations past u64 nanoseconds (584 years) are as good as none.
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1)
}

/// An owned socket fd with weft's bookkeeping.
pub(crate) struct Socket {
    // Declared before `fd`: fields drop in order, and the registration must leave the epoll
    // set while the fd is still open.
    reg: Registration,
    fd: OwnedFd,
    family: Family,
}

/// What the weft handles on one socket made by `try_clone` share, as std's handles share the
/// kernel's state: the settings, and a count of the handles (see the module docs). A handle
/// leaves the family when it is dropped or given back.
struct Family {
    shared: Arc<FamilyShared>,
    /// This handle has left (see [`Family::leave`]).
    left: bool,
}

struct FamilyShared {
    read_timeout: Timeout,
    write_timeout: Timeout,
    /// The user's blocking mode (the fd itself is always non-blocking).
    nonblocking: AtomicBool,
    /// Handles in the family; 0 once the last has left.
    members: AtomicUsize,
    /// How to wake the callers of every handle made by `try_clone` (each has a registration
    /// of its own fd), so a change made through one reaches those waiting on the others.
    /// Empty until the first clone.
    notifiers: Mutex<Vec<Notifier>>,
}

impl Family {
    fn new(read: Option<Duration>, write: Option<Duration>, nonblocking: bool) -> Family {
        let shared = Arc::new(FamilyShared {
            read_timeout: Timeout::new(read),
            write_timeout: Timeout::new(write),
            nonblocking: AtomicBool::new(nonblocking),
            members: AtomicUsize::new(1),
            notifiers: Mutex::new(Vec::new()),
        });
        Family { shared, left: false }
    }

    /// The family of a new clone of a handle of this family.
    fn join(&self) -> Family {
        self.shared.members.fetch_add(1, Relaxed);
        Family { shared: Arc::clone(&self.shared), left: false }
    }

    /// Leaves the family, once; returns whether this handle was its last.
    fn leave(&mut self) -> bool {
        if std::mem::replace(&mut self.left, true) {
            return false;
        }
        // AcqRel: the last handle out sees the others leave before it changes the fd's mode.
        self.shared.members.fetch_sub(1, AcqRel) == 1
    }
}

impl Drop for Family {
    fn drop(&mut self) {
        self.leave();
    }
}

impl std::ops::Deref for Family {
    type Target = FamilyShared;

    fn deref(&self) -> &FamilyShared {
        &self.shared
    }
}

impl Socket {
    /// Wraps an fd that is already in non-blocking mode, with no timeouts.
    pub(crate) fn from_nonblocking(fd: impl Into<OwnedFd>) -> Socket {
        Socket { reg: Registration::new(), fd: fd.into(), family: Family::new(None, None, false) }
    }

    /// Adopts an fd from std or from a raw owner: its blocking mode and timeouts become this
    /// handle's settings, and the fd is switched to non-blocking mode. The second value is the
    /// error of that switch, if it failed; the socket then blocks the thread in its calls.
    pub(crate) fn adopt(fd: OwnedFd) -> (Socket, io::Result<()>) {
        let raw = fd.as_raw_fd();
        let sock = SockRef::from(&fd);
        let nonblocking = sock.nonblocking();
        // Every socket type weft wraps has these options; an error leaves "no timeout".
        let read_timeout = sock.read_timeout().unwrap_or(None);
        let write_timeout = sock.write_timeout().unwrap_or(None);
        let user_nonblocking = matches!(nonblocking, Ok(true));
        let switched = match nonblocking {
            Ok(true) => Ok(()),
            Ok(false) => sys::set_nonblocking(raw, true),
            Err(e) => Err(e),
        };
        let family = Family::new(read_timeout, write_timeout, user_nonblocking);
        (Socket { reg: Registration::new(), fd, family }, switched)
    }

    /// Gives the fd back, out of the reactor, in the blocking mode the user last set; or, if
    /// other weft handles of its clone family remain, still in non-blocking mode, which they
    /// need. The second value is the error of restoring blocking mode, if that failed.
    fn give_back(self) -> (OwnedFd, io::Result<()>) {
        let Socket { reg, fd, mut family } = self;
        drop(reg);
        let restored = if family.leave() && !family.nonblocking.load(Relaxed) {
            sys::set_nonblocking(fd.as_raw_fd(), false)
        } else {
            Ok(())
        };
        (fd, restored)
    }

    /// [`give_back`](Socket::give_back) for `into_std`, which reports the error.
    pub(crate) fn release(self) -> io::Result<OwnedFd> {
        let (fd, restored) = self.give_back();
        restored.map(|()| fd)
    }

    /// Like [`Socket::release`], for `IntoRawFd` and `From`, which cannot fail: if the fd
    /// cannot be made blocking again (it always can, for an open socket), it is handed over
    /// as it is.
    pub(crate) fn into_owned_fd(self) -> OwnedFd {
        self.give_back().0
    }

    pub(crate) fn fd(&self) -> &OwnedFd {
        &self.fd
    }

    pub(crate) fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// A std (or socket2) value of type `T` over this fd, for calls that never block or that
    /// std already makes right. It must not outlive `self`, and is never dropped, so it never
    /// closes the fd.
    pub(crate) fn view<T: FromRawFd>(&self) -> ManuallyDrop<T> {
        // SAFETY: the fd is open and owned by `self` for as long as the borrow lasts, and the
        // ManuallyDrop wrapper never runs T's destructor, so the view cannot close it. Callers
        // pick a T of the fd's socket type.
        ManuallyDrop::new(unsafe { T::from_raw_fd(self.fd.as_raw_fd()) })
    }

    /// Runs `op` until it does not return `WouldBlock`, waiting for readability and the read
    /// timeout in between (or once, in non-blocking mode).
    pub(crate) fn read_with<T>(&self, op: impl FnMut() -> io::Result<T>) -> io::Result<T> {
        self.io(Interest::Readable, &self.family.read_timeout, op)
    }

    /// As [`Socket::read_with`], for writability and the write timeout.
    pub(crate) fn write_with<T>(&self, op: impl FnMut() -> io::Result<T>) -> io::Result<T> {
        self.io(Interest::Writable, &self.family.write_timeout, op)
    }

    /// As [`Socket::write_with`], with `timeout` in place of the write timeout (for connect).
    pub(crate) fn connect_with<T>(
        &self,
        timeout: Option<Duration>,
        op: impl FnMut() -> io::Result<T>,
    ) -> io::Result<T> {
        self.reg.io(self.raw(), Interest::Writable, || timeout, op)
    }

    /// As [`Socket::read_with`] or [`Socket::write_with`] by `interest`, with `deadline` in
    /// place of the direction's timeout (the HTTP server's budgets span calls).
    pub(crate) fn io_until<T>(
        &self,
        interest: Interest,
        deadline: Deadline,
        op: impl FnMut() -> io::Result<T>,
    ) -> io::Result<T> {
        match deadline {
            Deadline::At(at) => self.reg.io_until(self.raw(), interest, Some(at), op),
            Deadline::After(dur) => self.reg.io(self.raw(), interest, || Some(dur), op),
        }
    }

    /// `send(2)` with `MSG_NOSIGNAL`, waiting for writability until `deadline` at most.
    pub(crate) fn send_until(&self, buf: &[u8], deadline: Deadline) -> io::Result<usize> {
        let sock = SockRef::from(&self.fd);
        self.io_until(Interest::Writable, deadline, || {
            sock.send_with_flags(buf, libc::MSG_NOSIGNAL)
        })
    }

    fn io<T>(
        &self,
        interest: Interest,
        timeout: &Timeout,
        mut op: impl FnMut() -> io::Result<T>,
    ) -> io::Result<T> {
        if self.family.nonblocking.load(Relaxed) {
            loop {
                match op() {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    res => return res,
                }
            }
        }
        self.reg.io(self.raw(), interest, || timeout.get(), op)
    }

    /// `send(2)` with `MSG_NOSIGNAL`: a write that cannot raise SIGPIPE.
    pub(crate) fn send(&self, buf: &[u8]) -> io::Result<usize> {
        let sock = SockRef::from(&self.fd);
        self.write_with(|| sock.send_with_flags(buf, libc::MSG_NOSIGNAL))
    }

    /// `sendmsg(2)` of at most [`IOV_MAX`] of `bufs` with `MSG_NOSIGNAL`: a vectored write
    /// that cannot raise SIGPIPE.
    pub(crate) fn send_vectored(&self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        let sock = SockRef::from(&self.fd);
        let bufs = &bufs[..bufs.len().min(IOV_MAX)];
        self.write_with(|| sock.send_vectored_with_flags(bufs, libc::MSG_NOSIGNAL))
    }

    /// As [`Socket::send_vectored`], waiting for writability until `deadline` at most.
    pub(crate) fn send_vectored_until(
        &self,
        bufs: &[io::IoSlice<'_>],
        deadline: Deadline,
    ) -> io::Result<usize> {
        let sock = SockRef::from(&self.fd);
        let bufs = &bufs[..bufs.len().min(IOV_MAX)];
        self.io_until(Interest::Writable, deadline, || {
            sock.send_vectored_with_flags(bufs, libc::MSG_NOSIGNAL)
        })
    }

    pub(crate) fn set_read_timeout(&self, dur: Option<Duration>) -> io::Result<()> {
        self.set_timeout(&self.family.read_timeout, Interest::Readable, dur)
    }

    pub(crate) fn set_write_timeout(&self, dur: Option<Duration>) -> io::Result<()> {
        self.set_timeout(&self.family.write_timeout, Interest::Writable, dur)
    }

    /// Sets the timeout of the `interest` direction, in the kernel too, so that a socket
    /// handed back to std keeps it.
    fn set_timeout(
        &self,
        timeout: &Timeout,
        interest: Interest,
        dur: Option<Duration>,
    ) -> io::Result<()> {
        check_timeout(dur)?;
        let sock = SockRef::from(&self.fd);
        match interest {
            Interest::Readable => sock.set_read_timeout(dur)?,
            Interest::Writable => sock.set_write_timeout(dur)?,
        }
        timeout.set(dur);
        // A caller parked in that direction re-reads its deadline.
        self.notify(interest);
        Ok(())
    }

    pub(crate) fn read_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(self.family.read_timeout.get())
    }

    pub(crate) fn write_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(self.family.write_timeout.get())
    }

    /// `shutdown(2)`, then a wake of the callers waiting in the directions shut down. TCP
    /// reports a local shutdown as readiness, but a Unix socket does not report a local
    /// `shutdown(Write)`, where std's blocked `write` fails with `EPIPE`; the wake makes the
    /// waiting calls retry and see it.
    pub(crate) fn shutdown(&self, how: std::net::Shutdown) -> io::Result<()> {
        SockRef::from(&self.fd).shutdown(how)?;
        if how != std::net::Shutdown::Write {
            self.notify(Interest::Readable);
        }
        if how != std::net::Shutdown::Read {
            self.notify(Interest::Writable);
        }
        Ok(())
    }

    pub(crate) fn is_nonblocking(&self) -> bool {
        self.family.nonblocking.load(Relaxed)
    }

    pub(crate) fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        // Callers already parked keep waiting; new calls return at once, as with a std socket
        // switched while another thread blocks in it.
        self.family.nonblocking.store(nonblocking, Relaxed);
        Ok(())
    }

    /// A new handle on the same socket (a `dup` of the fd), in the same family.
    pub(crate) fn try_clone(&self) -> io::Result<Socket> {
        let fd = self.fd.try_clone()?;
        let clone = Socket { reg: Registration::new(), fd, family: self.family.join() };
        let (mine, theirs) = (self.reg.notifier()?, clone.reg.notifier()?);
        let mut notifiers = self.family.notifiers.lock().unwrap_or_else(PoisonError::into_inner);
        notifiers.retain(Notifier::is_live);
        if !notifiers.iter().any(|n| n.same_registration(&mine)) {
            notifiers.push(mine);
        }
        notifiers.push(theirs);
        drop(notifiers);
        Ok(clone)
    }

    /// Wakes the callers waiting for `interest` on this handle and on every handle of its
    /// family, so they re-read a setting or see a shutdown.
    fn notify(&self, interest: Interest) {
        self.reg.notify(interest);
        let notifiers = self.family.notifiers.lock().unwrap_or_else(PoisonError::into_inner);
        for notifier in notifiers.iter() {
            notifier.notify(interest);
        }
    }
}

impl std::fmt::Debug for Socket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "fd {}", self.raw())
    }
}

/// std's rule: a zero timeout is an error, not "no timeout".
pub(crate) fn check_timeout(dur: Option<Duration>) -> io::Result<()> {
    if dur == Some(Duration::ZERO) {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "cannot set a 0 duration timeout"));
    }
    Ok(())
}

/// Implements the std-shaped plumbing every socket type shares: the fd traits, `Debug` as
/// the std type `$std` shows it, and `from_std` / `into_std` conversions with `$std`. The type
/// has a `sock: Socket` field and a `fn wrap(Socket) -> Self`.
macro_rules! socket_common {
    ($ty:ident, $std:ty) => {
        impl $ty {
            /// Adopts a std socket: weft takes over its fd, keeps its timeouts and its
            /// blocking mode as this handle's settings, and waits the weft way.
            ///
            /// # Errors
            ///
            /// The error of the `fcntl`/`ioctl` call that switches the fd to non-blocking
            /// mode.
            pub fn from_std(std: $std) -> io::Result<$ty> {
                let (sock, switched) = Socket::adopt(OwnedFd::from(std));
                switched?;
                Ok($ty::wrap(sock))
            }

            /// Hands the socket back to std, out of weft's reactor, blocking again unless
            /// `set_nonblocking(true)` was called, with its timeouts.
            ///
            /// # Errors
            ///
            /// The error of the call that restores blocking mode.
            pub fn into_std(self) -> io::Result<$std> {
                Ok(<$std>::from(self.sock.release()?))
            }
        }

        impl std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                std::fmt::Debug::fmt(&*self.sock.view::<$std>(), f)
            }
        }

        impl std::os::fd::AsFd for $ty {
            fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
                self.sock.fd().as_fd()
            }
        }

        impl std::os::fd::AsRawFd for $ty {
            fn as_raw_fd(&self) -> std::os::fd::RawFd {
                self.sock.raw()
            }
        }

        impl std::os::fd::FromRawFd for $ty {
            /// Adopts `fd` as [`from_std`](Self::from_std) does. If the fd cannot be switched
            /// to non-blocking mode (an open socket always can), its calls block the thread.
            unsafe fn from_raw_fd(fd: std::os::fd::RawFd) -> $ty {
                // SAFETY: the caller passes ownership of an open fd, as the trait requires.
                let (sock, _) = Socket::adopt(unsafe { OwnedFd::from_raw_fd(fd) });
                $ty::wrap(sock)
            }
        }

        impl std::os::fd::IntoRawFd for $ty {
            /// Gives up the fd, out of weft's reactor and blocking again unless
            /// `set_nonblocking(true)` was called.
            fn into_raw_fd(self) -> std::os::fd::RawFd {
                std::os::fd::IntoRawFd::into_raw_fd(self.sock.into_owned_fd())
            }
        }

        impl From<$ty> for OwnedFd {
            /// Gives up the fd as [`IntoRawFd`](std::os::fd::IntoRawFd) does.
            fn from(value: $ty) -> OwnedFd {
                value.sock.into_owned_fd()
            }
        }
    };
}

/// Methods that only forward to the std type `$std` over the same fd: calls that never block.
macro_rules! delegate {
    ($std:ty; $(fn $name:ident(&self $(, $arg:ident: $argty:ty)*) -> $ret:ty;)*) => {$(
        #[doc = concat!("As [`", stringify!($std), "::", stringify!($name), "`].")]
        ///
        /// # Errors
        ///
        /// The error of the underlying system call.
        pub fn $name(&self $(, $arg: $argty)*) -> $ret {
            self.sock.view::<$std>().$name($($arg),*)
        }
    )*};
}

/// `Read` and `Write` for a stream type and for a shared reference to it. Reads go through
/// the std type `$std` over the same fd; writes through weft's `MSG_NOSIGNAL` calls.
macro_rules! stream_io {
    ($ty:ident, $std:ty) => {
        impl std::io::Read for &$ty {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                let view = self.sock.view::<$std>();
                self.sock.read_with(|| std::io::Read::read(&mut &*view, buf))
            }

            fn read_vectored(
                &mut self,
                bufs: &mut [std::io::IoSliceMut<'_>],
            ) -> std::io::Result<usize> {
                let view = self.sock.view::<$std>();
                self.sock.read_with(|| std::io::Read::read_vectored(&mut &*view, bufs))
            }
        }

        impl std::io::Write for &$ty {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.sock.send(buf)
            }

            fn write_vectored(&mut self, bufs: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
                self.sock.send_vectored(bufs)
            }

            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }

        impl std::io::Read for $ty {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                (&*self).read(buf)
            }

            fn read_vectored(
                &mut self,
                bufs: &mut [std::io::IoSliceMut<'_>],
            ) -> std::io::Result<usize> {
                (&*self).read_vectored(bufs)
            }
        }

        impl std::io::Write for $ty {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                (&*self).write(buf)
            }

            fn write_vectored(&mut self, bufs: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
                (&*self).write_vectored(bufs)
            }

            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
    };
}

/// The settings every socket type has: `try_clone` and `set_nonblocking`, and with
/// `timeouts`, the four timeout calls.
macro_rules! settings {
    ($ty:ident) => {
        /// Creates a new handle on the same socket (a `dup` of its fd). As with std, the
        /// handles share their timeouts and blocking mode.
        ///
        /// # Errors
        ///
        /// The error of `dup`, such as `EMFILE`.
        pub fn try_clone(&self) -> std::io::Result<$ty> {
            Ok($ty::wrap(self.sock.try_clone()?))
        }

        /// Moves this handle in or out of non-blocking mode: calls then return `WouldBlock`
        /// instead of waiting, as with std.
        ///
        /// # Errors
        ///
        /// None on Linux; the `Result` mirrors std.
        pub fn set_nonblocking(&self, nonblocking: bool) -> std::io::Result<()> {
            self.sock.set_nonblocking(nonblocking)
        }
    };
    ($ty:ident, timeouts, shutdown) => {
        $crate::socket::settings!($ty, timeouts);

        /// Shuts down the read half, the write half or both, as std's `shutdown`. A call
        /// waiting in a shut-down direction wakes: a `read` returns `Ok(0)`, a `write` an error
        /// (`BrokenPipe`), as std documents.
        ///
        /// # Errors
        ///
        /// The error of `shutdown(2)`, such as `NotConnected`.
        pub fn shutdown(&self, how: std::net::Shutdown) -> std::io::Result<()> {
            self.sock.shutdown(how)
        }
    };
    ($ty:ident, timeouts) => {
        $crate::socket::settings!($ty);

        /// Sets the read timeout; `None` waits without limit. A read that waits longer
        /// returns `TimedOut`. A read already waiting takes the new timeout, counted from the
        /// start of its call.
        ///
        /// # Errors
        ///
        /// `InvalidInput` for `Some(Duration::ZERO)`, as std.
        pub fn set_read_timeout(&self, dur: Option<std::time::Duration>) -> std::io::Result<()> {
            self.sock.set_read_timeout(dur)
        }

        /// Sets the write timeout, as `set_read_timeout` does for reads.
        ///
        /// # Errors
        ///
        /// `InvalidInput` for `Some(Duration::ZERO)`, as std.
        pub fn set_write_timeout(&self, dur: Option<std::time::Duration>) -> std::io::Result<()> {
            self.sock.set_write_timeout(dur)
        }

        /// The read timeout.
        ///
        /// # Errors
        ///
        /// None on Linux; the `Result` mirrors std.
        pub fn read_timeout(&self) -> std::io::Result<Option<std::time::Duration>> {
            self.sock.read_timeout()
        }

        /// The write timeout.
        ///
        /// # Errors
        ///
        /// None on Linux; the `Result` mirrors std.
        pub fn write_timeout(&self) -> std::io::Result<Option<std::time::Duration>> {
            self.sock.write_timeout()
        }
    };
}

pub(crate) use {delegate, settings, socket_common, stream_io};
