//! The operating-system calls the runtime makes, in one place.
//!
//! weft runs on Linux only: it needs epoll, eventfd and `madvise(MADV_GUARD_INSTALL)` (with an
//! `mprotect` fallback for kernels before 6.13). Every raw call goes through [`syscall!`], which
//! turns a `-1` return into [`io::Error::last_os_error`], so callers above this module deal in
//! `io::Result` only.

#[cfg(not(target_os = "linux"))]
compile_error!("weft supports Linux only: it is built on epoll, eventfd and madvise guards");

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr;
use std::sync::OnceLock;
use std::time::Duration;

/// Calls a libc function and maps a `-1` result to the thread's `errno` as an `io::Error`.
macro_rules! syscall {
    ($fn:ident ( $($arg:expr),* $(,)? )) => {{
        // SAFETY: each call site passes arguments that satisfy the libc function's contract;
        // the sites are all in this module and say why where it is not obvious.
        let res = unsafe { libc::$fn($($arg),*) };
        if res == -1 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(res)
        }
    }};
}

/// `MADV_GUARD_INSTALL`: Linux 6.13 installs guard markers in page tables without splitting the
/// mapping. Not yet exported by the libc crate.
const MADV_GUARD_INSTALL: libc::c_int = 102;

/// The size of a memory page.
pub(crate) fn page_size() -> usize {
    static PAGE: OnceLock<usize> = OnceLock::new();
    *PAGE.get_or_init(|| {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        if page <= 0 {
            4096
        } else {
            page as usize
        }
    })
}

/// Maps `len` bytes of private, anonymous, unreserved read-write memory meant for stacks.
pub(crate) fn map_stack_region(len: usize) -> io::Result<*mut u8> {
    let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_STACK;
    let prot = libc::PROT_READ | libc::PROT_WRITE;
    // SAFETY: a fresh anonymous mapping at an address of the kernel's choosing touches no
    // existing memory.
    let addr = unsafe { libc::mmap(ptr::null_mut(), len, prot, flags, -1, 0) };
    if addr == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    // Huge pages would turn one touched stack page into 2 MiB of resident memory. MAP_STACK
    // implies this on recent kernels; say it for the older ones too. Failure only costs memory.
    // SAFETY: the range is the mapping just created.
    unsafe { libc::madvise(addr, len, libc::MADV_NOHUGEPAGE) };
    Ok(addr.cast())
}

/// Unmaps a region returned by [`map_stack_region`].
///
/// # Safety
///
/// `addr..addr + len` is a whole region from `map_stack_region`, and nothing uses it any more.
pub(crate) unsafe fn unmap(addr: *mut u8, len: usize) {
    // SAFETY: the caller owns the mapping and promises it is unused.
    unsafe { libc::munmap(addr.cast(), len) };
}

/// How a stack's guard pages are made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum GuardKind {
    /// `madvise(MADV_GUARD_INSTALL)`: no extra mapping per stack.
    Madvise,
    /// `mprotect(PROT_NONE)`: splits the slab, two mappings per stack.
    Mprotect,
}

/// Installs a guard over `addr..addr + len`, preferring `MADV_GUARD_INSTALL`.
///
/// # Safety
///
/// The range lies inside a mapping from [`map_stack_region`] and holds nothing in use.
pub(crate) unsafe fn install_guard(addr: *mut u8, len: usize, kind: GuardKind) -> io::Result<()> {
    match kind {
        GuardKind::Madvise => syscall!(madvise(addr.cast(), len, MADV_GUARD_INSTALL)).map(drop),
        GuardKind::Mprotect => syscall!(mprotect(addr.cast(), len, libc::PROT_NONE)).map(drop),
    }
}

/// The guard kind this kernel supports, probed once on a scratch mapping.
///
/// `WEFT_STACK_GUARD=mprotect` forces the fallback, so it can be tested on new kernels.
pub(crate) fn guard_kind() -> GuardKind {
    static KIND: OnceLock<GuardKind> = OnceLock::new();
    *KIND.get_or_init(|| {
        if std::env::var_os("WEFT_STACK_GUARD").is_some_and(|v| v == "mprotect") {
            return GuardKind::Mprotect;
        }
        let page = page_size();
        let Ok(addr) = map_stack_region(2 * page) else {
            return GuardKind::Mprotect;
        };
        // SAFETY: the scratch mapping is ours and empty; it is unmapped right after.
        let probe = unsafe { install_guard(addr, page, GuardKind::Madvise) };
        // SAFETY: nothing else knows about the scratch mapping.
        unsafe { unmap(addr, 2 * page) };
        if probe.is_ok() {
            GuardKind::Madvise
        } else {
            GuardKind::Mprotect
        }
    })
}

/// Gives the pages of `addr..addr + len` back to the kernel; they read as zero afterwards.
/// Guard markers survive this.
///
/// # Safety
///
/// The range lies inside a stack mapping and holds nothing in use.
pub(crate) unsafe fn discard(addr: *mut u8, len: usize) {
    // SAFETY: as the caller promises; MADV_DONTNEED on private anonymous memory only drops pages.
    unsafe { libc::madvise(addr.cast(), len, libc::MADV_DONTNEED) };
}

/// One readiness event, as `epoll_wait` returns it.
pub(crate) type Event = libc::epoll_event;

/// An epoll instance.
#[derive(Debug)]
pub(crate) struct Epoll {
    fd: OwnedFd,
}

impl Epoll {
    pub(crate) fn new() -> io::Result<Epoll> {
        let fd = syscall!(epoll_create1(libc::EPOLL_CLOEXEC))?;
        // SAFETY: epoll_create1 returned a fresh descriptor that nothing else owns.
        Ok(Epoll { fd: unsafe { OwnedFd::from_raw_fd(fd) } })
    }

    /// Registers `fd` for `events`, reporting `token` with each event.
    pub(crate) fn add(&self, fd: RawFd, events: u32, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event { events, u64: token };
        syscall!(epoll_ctl(self.fd.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev)).map(drop)
    }

    /// Removes `fd` from the set.
    pub(crate) fn delete(&self, fd: RawFd) -> io::Result<()> {
        // The event argument is ignored for EPOLL_CTL_DEL (and may be null since Linux 2.6.9).
        syscall!(epoll_ctl(self.fd.as_raw_fd(), libc::EPOLL_CTL_DEL, fd, ptr::null_mut())).map(drop)
    }

    /// Waits for events, at most `timeout` (rounded up to whole milliseconds, so a timer is
    /// never served early), or forever with `None`. `EINTR` reads as zero events.
    pub(crate) fn wait(
        &self,
        events: &mut [Event],
        timeout: Option<Duration>,
    ) -> io::Result<usize> {
        let ms = timeout_ms(timeout);
        let cap = events.len().min(i32::MAX as usize) as libc::c_int;
        match syscall!(epoll_wait(self.fd.as_raw_fd(), events.as_mut_ptr(), cap, ms)) {
            Ok(n) => Ok(n as usize),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(0),
            Err(e) => Err(e),
        }
    }
}

/// Blocks the thread in `poll(2)` until `fd` has one of `events`, or `timeout` passes (rounded
/// up to whole milliseconds; `None` waits without limit). A hang-up or error also ends it.
pub(crate) fn poll_one(
    fd: RawFd,
    events: libc::c_short,
    timeout: Option<Duration>,
) -> io::Result<()> {
    let mut pfd = libc::pollfd { fd, events, revents: 0 };
    syscall!(poll(&mut pfd, 1, timeout_ms(timeout))).map(drop)
}

/// A timeout in whole milliseconds for epoll_wait and poll, rounded up so a deadline is never
/// served early; `None` is -1, no limit.
fn timeout_ms(timeout: Option<Duration>) -> libc::c_int {
    match timeout {
        None => -1,
        Some(d) => d.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as libc::c_int,
    }
}

/// An eventfd used to wake a worker out of `epoll_wait`.
#[derive(Debug)]
pub(crate) struct EventFd {
    fd: OwnedFd,
}

impl EventFd {
    pub(crate) fn new() -> io::Result<EventFd> {
        let fd = syscall!(eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK))?;
        // SAFETY: eventfd returned a fresh descriptor that nothing else owns.
        Ok(EventFd { fd: unsafe { OwnedFd::from_raw_fd(fd) } })
    }

    /// Adds one to the counter. Registered edge-triggered, every write is a new edge, so the
    /// counter is never read back; it cannot realistically reach its 2^64 - 2 limit.
    pub(crate) fn notify(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64, as eventfd requires.
        let _ = unsafe { libc::write(self.fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }

    pub(crate) fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// Makes sure the calling thread has an alternate signal stack, so the overflow handler can run
/// when the coroutine stack is exhausted. std gives its own threads one; this covers the rest.
/// Returns the mapping to free when the thread ends, if one was made.
pub(crate) fn ensure_sigaltstack() -> Option<AltStack> {
    // SAFETY: reading the current alternate stack into a zeroed struct.
    let mut old: libc::stack_t = unsafe { std::mem::zeroed() };
    // SAFETY: a null new stack only queries.
    if unsafe { libc::sigaltstack(ptr::null(), &mut old) } == 0
        && old.ss_flags & libc::SS_DISABLE == 0
    {
        return None;
    }
    const SIZE: usize = 64 * 1024;
    let base = map_stack_region(SIZE).ok()?;
    let new = libc::stack_t { ss_sp: base.cast(), ss_flags: 0, ss_size: SIZE };
    // SAFETY: `new` describes a live mapping owned by the returned AltStack.
    if unsafe { libc::sigaltstack(&new, ptr::null_mut()) } != 0 {
        // SAFETY: the mapping was never installed.
        unsafe { unmap(base, SIZE) };
        return None;
    }
    Some(AltStack { base, size: SIZE })
}

/// An alternate signal stack installed by [`ensure_sigaltstack`].
pub(crate) struct AltStack {
    base: *mut u8,
    size: usize,
}

impl Drop for AltStack {
    fn drop(&mut self) {
        let off = libc::stack_t { ss_sp: ptr::null_mut(), ss_flags: libc::SS_DISABLE, ss_size: 0 };
        // SAFETY: disables this thread's alternate stack before the memory goes away; the
        // AltStack lives on the thread that installed it.
        unsafe {
            libc::sigaltstack(&off, ptr::null_mut());
            unmap(self.base, self.size);
        }
    }
}
