//! The system calls weft-net makes itself; everything else goes through socket2 or std.

use std::io;
use std::os::fd::RawFd;

/// Sets or clears `O_NONBLOCK` on the fd.
pub(crate) fn set_nonblocking(fd: RawFd, nonblocking: bool) -> io::Result<()> {
    let mut on = libc::c_int::from(nonblocking);
    // FIONBIO: one call, where F_GETFL + F_SETFL (socket2's and std's way) take two.
    // SAFETY: FIONBIO reads the int we pass, which lives for the call.
    if unsafe { libc::ioctl(fd, libc::FIONBIO, &mut on) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Whether an error means the process or system is out of file descriptors (or of the memory
/// behind them): an accept that fails so is worth retrying later, not at once.
pub(crate) fn is_resource_exhaustion(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM))
}
