//! The reactor: readiness of file descriptors, delivered to the coroutines that wait for it.
//!
//! Each worker owns an epoll instance (in `worker::Remote`). An fd is registered once,
//! edge-triggered, on the epoll of the worker where it first has to wait, and stays there until
//! it is deregistered. I/O is syscall-first: [`Registration::io`] tries the non-blocking call,
//! and only on `WouldBlock` parks the coroutine until the fd's readiness changes.
//!
//! # Slots
//!
//! A registration's state lives in a `Slot` of a process-wide table. Slots are allocated in
//! chunks that are never freed, so an index stays valid forever (type-stable memory), and a
//! released slot is reused through a free list. Each use of a slot gets a new sequence number;
//! the epoll token is `index | seq << 32`. An event is dispatched only if its sequence number
//! is the slot's current one, checked under the slot's lock, so an event that was already in
//! a worker's buffer when its fd was closed and the slot reused cannot reach the new owner.
//!
//! ```text
//!   Slot
//!   +-------------------------------------------------------------+
//!   | seq    AtomicU32   which registration owns the slot          |
//!   | ticks  [AtomicU32; 2]  read, write: bumped on every edge     |
//!   | inner  Mutex { waiters: [Vec<Waker>; 2], home: epoll + fd }  |
//!   +-------------------------------------------------------------+
//! ```
//!
//! # Waiting without losing an edge
//!
//! Readiness is latched as a tick per direction. The reactor bumps the tick and wakes the
//! waiters of that direction in one critical section of the slot's lock. A caller:
//!
//! 1. reads the tick `t` (Acquire), before the syscall;
//! 2. makes the syscall, which fails with `WouldBlock`;
//! 3. begins a park, then, under the slot's lock, compares the tick with `t`: if it moved, an
//!    edge came after step 1, and the caller retries the syscall instead of parking; if not,
//!    it stores its waker, still under the lock;
//! 4. suspends; the worker commits the park (see the `state` module).
//!
//! An edge that matters to the caller is one the kernel raised after the syscall of step 2
//! found the fd not ready, so the reactor dispatches it after step 1. Its critical section
//! comes either before the one of step 3, which then sees the moved tick, or after it, and
//! finds the waker. A wake that lands between step 3 and the commit of step 4 is kept by the
//! park protocol as NOTIFIED. An edge that the reactor dispatched before step 1 reports a
//! readiness the syscall of step 2 already saw. So no edge is lost between the syscall and the
//! park.
//!
//! Registering happens at the first wait: the caller adds the fd to its worker's epoll and
//! retries the syscall without parking. `EPOLL_CTL_ADD` reports readiness that already holds as
//! an event, so an edge that came before the registration is not lost either. A caller whose
//! step 1 found no slot yet has no tick to compare, and another caller sharing the
//! registration may have registered the fd and seen an edge dispatched since; so such a
//! caller never parks, it retries with a snapshot.
//!
//! The syscall runs out of line (`call_op`), so that its read of `errno` is made on the
//! thread it runs on even if the coroutine migrated while parked.
//!
//! # Closing
//!
//! [`Registration::deregister`] (and the drop of a [`Registration`]) bumps the slot's sequence,
//! wakes every waiter with an error, removes the fd from its epoll and frees the slot. A caller
//! that parked on the old sequence sees the change when it wakes and returns the error.
//!
//! Outside a coroutine, a wait is a `poll(2)` on the fd with the caller's deadline; no slot is
//! needed.

use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::Ordering::Release;
use std::sync::atomic::{AtomicPtr, AtomicU32, Ordering::Acquire, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::park::{park_with, Woke};
use crate::runtime::Shared;
use crate::state::ParkKind;
use crate::sys::{self, Event};
use crate::task::Waker;
use crate::worker::{self, Local};

/// Which readiness a call waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interest {
    /// The fd has data to read, a connection to accept, or a hang-up to report.
    Readable,
    /// The fd can take more bytes, has finished connecting, or has an error to report.
    Writable,
}

impl Interest {
    fn index(self) -> usize {
        match self {
            Interest::Readable => 0,
            Interest::Writable => 1,
        }
    }

    fn poll_events(self) -> libc::c_short {
        match self {
            Interest::Readable => libc::POLLIN,
            Interest::Writable => libc::POLLOUT,
        }
    }
}

/// The epoll flags every fd is registered with.
const REGISTER_EVENTS: u32 =
    (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLPRI | libc::EPOLLET) as u32;
/// Events that concern readers: data, a hang-up (reads then return 0 or the error).
const READ_EVENTS: u32 =
    (libc::EPOLLIN | libc::EPOLLPRI | libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR) as u32;
/// Events that concern writers: room, or a hang-up or error that makes writes fail.
const WRITE_EVENTS: u32 = (libc::EPOLLOUT | libc::EPOLLHUP | libc::EPOLLERR) as u32;

// ---------------------------------------------------------------------------------------------
// The slot table
// ---------------------------------------------------------------------------------------------

/// Slots per chunk (a power of two, so an index splits with a shift and a mask).
const CHUNK_SHIFT: u32 = 10;
const CHUNK_LEN: usize = 1 << CHUNK_SHIFT;
/// Chunks at most: 4 Mi slots, more than the fds a process can have open on most systems.
const MAX_CHUNKS: usize = 1 << 12;
// The largest slot index lies beyond the table, so `u64::MAX`, the workers' eventfd token,
// can never name a slot.
const _: () = assert!((u32::MAX >> CHUNK_SHIFT) as usize >= MAX_CHUNKS);

/// The readiness state of one registration; see the module docs.
struct Slot {
    /// The current registration's sequence number; written under `inner`.
    seq: AtomicU32,
    /// Readiness ticks, by [`Interest::index`]; bumped under `inner`.
    ticks: [AtomicU32; 2],
    inner: Mutex<SlotInner>,
}

#[derive(Default)]
struct SlotInner {
    /// Parked callers, by [`Interest::index`].
    waiters: [Vec<Waker>; 2],
    /// The epoll the fd is registered on, while it is.
    home: Option<Home>,
}

/// Where a registered fd lives.
struct Home {
    shared: Arc<Shared>,
    worker: usize,
    fd: RawFd,
}

impl Home {
    /// Takes the fd out of this epoll set. The fd is still open (a registration is released
    /// before its fd is closed), so the removal is of this fd; an error means it was closed
    /// early, and then the kernel removed it already.
    fn leave(self) {
        let remote = &self.shared.remotes[self.worker];
        let _ = remote.epoll.delete(self.fd);
        remote.registered.fetch_sub(1, Relaxed);
    }
}

impl Slot {
    fn new() -> Slot {
        Slot {
            seq: AtomicU32::new(0),
            ticks: [AtomicU32::new(0), AtomicU32::new(0)],
            inner: Mutex::new(SlotInner::default()),
        }
    }
}

struct Table {
    chunks: [AtomicPtr<Slot>; MAX_CHUNKS],
    /// Released slot indices, and the next never-used index.
    free: Mutex<(Vec<u32>, u32)>,
}

static TABLE: Table = Table {
    chunks: [const { AtomicPtr::new(std::ptr::null_mut()) }; MAX_CHUNKS],
    free: Mutex::new((Vec::new(), 0)),
};

impl Table {
    fn get(&self, index: u32) -> Option<&'static Slot> {
        let chunk = self.chunks.get((index >> CHUNK_SHIFT) as usize)?.load(Acquire);
        if chunk.is_null() {
            return None;
        }
        // SAFETY: a non-null chunk pointer came from a leaked `Box<[Slot]>` of CHUNK_LEN slots
        // (published with Release in `alloc`), which is never freed; the offset is in bounds.
        Some(unsafe { &*chunk.add(index as usize & (CHUNK_LEN - 1)) })
    }

    /// A free slot and its index.
    fn alloc(&self) -> io::Result<(u32, &'static Slot)> {
        let mut free = self.free.lock();
        let index = match free.0.pop() {
            Some(index) => index,
            None => {
                let index = free.1;
                let chunk = (index >> CHUNK_SHIFT) as usize;
                if chunk >= MAX_CHUNKS {
                    return Err(io::Error::new(
                        io::ErrorKind::OutOfMemory,
                        "weft's reactor has no free registration slot",
                    ));
                }
                if index as usize & (CHUNK_LEN - 1) == 0 {
                    let slots: Box<[Slot]> = (0..CHUNK_LEN).map(|_| Slot::new()).collect();
                    // Pairs with the Acquire load in `get`, on any thread.
                    self.chunks[chunk].store(Box::leak(slots).as_mut_ptr(), Release);
                }
                free.1 = index + 1;
                index
            }
        };
        drop(free);
        Ok((index, self.get(index).expect("an allocated slot's chunk exists")))
    }

    fn release(&self, index: u32) {
        self.free.lock().0.push(index);
    }
}

/// Wakes and removes every waiter of a list (under its slot's lock).
fn wake_all(waiters: &mut Vec<Waker>) {
    for waker in waiters.drain(..) {
        waker.wake();
    }
}

fn token(index: u32, seq: u32) -> u64 {
    u64::from(index) | u64::from(seq) << 32
}

// ---------------------------------------------------------------------------------------------
// Registration
// ---------------------------------------------------------------------------------------------

/// Makes a non-blocking file descriptor blocking-style: a call that would block parks the
/// calling coroutine until the fd is ready, or blocks the calling thread in `poll(2)` outside
/// a coroutine.
///
/// `weft::net`'s sockets are built on it; use it for other fds (pipes, eventfds, terminals).
/// The fd must be in non-blocking mode (`O_NONBLOCK`), it may have one `Registration` only,
/// and the `Registration` must be dropped (or [deregistered](Registration::deregister)) before
/// the fd is closed: declare it before the fd in a struct, since fields drop in order.
///
/// ```
/// use std::io::{Read, Write};
/// use std::os::fd::AsRawFd;
/// use std::os::unix::net::UnixStream;
/// use weft::reactor::{Interest, Registration};
///
/// let (mut a, mut b) = UnixStream::pair()?;
/// b.set_nonblocking(true)?;
/// let reg = Registration::new();
/// let reader = weft::spawn(move || {
///     let mut buf = [0u8; 5];
///     let fd = b.as_raw_fd();
///     let n = reg.io(fd, Interest::Readable, || None, || (&b).read(&mut buf))?;
///     Ok::<_, std::io::Error>(buf[..n].to_vec())
/// });
/// a.write_all(b"hello")?;
/// assert_eq!(reader.join().unwrap()?, b"hello");
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Default)]
pub struct Registration {
    key: OnceLock<Key>,
}

/// The slot a registration holds, and the sequence number of its claim on it.
#[derive(Clone, Copy)]
struct Key {
    slot: &'static Slot,
    index: u32,
    seq: u32,
}

/// Why a wait ended without parking to the end.
enum Wait {
    /// Parked and woken; `true` if by a readiness edge of its direction.
    Woken { by_edge: bool },
    /// Did not park: retry the call at once.
    Retry,
}

impl Registration {
    /// A registration that holds nothing yet: the slot and the epoll registration come with
    /// the first wait, so an fd that never has to wait never pays for them.
    pub const fn new() -> Registration {
        Registration { key: OnceLock::new() }
    }

    /// Runs `op` until it returns something other than `WouldBlock` (`Interrupted` is
    /// retried), waiting for `interest` on `fd` in between.
    ///
    /// `timeout` is read each time the call has to wait; the deadline is the start of the
    /// first wait plus the timeout, so a timeout shortened while a caller waits (followed by
    /// [`Registration::notify`]) takes effect.
    ///
    /// # Errors
    ///
    /// - what `op` returns;
    /// - `TimedOut` once the deadline has passed;
    /// - `NotConnected` if the registration was [deregistered](Registration::deregister) while
    ///   the caller waited;
    /// - `Other` when the coroutine's runtime shuts down while the caller waits;
    /// - the error of `epoll_ctl` if the fd cannot be registered (for example, a regular file),
    ///   or `AlreadyExists` if another `Registration` has it.
    pub fn io<T>(
        &self,
        fd: RawFd,
        interest: Interest,
        timeout: impl Fn() -> Option<Duration>,
        op: impl FnMut() -> io::Result<T>,
    ) -> io::Result<T> {
        self.io_with(fd, interest, |start| timeout().and_then(|t| start.checked_add(t)), op)
    }

    /// As [`Registration::io`], with a fixed `deadline` in place of a timeout: every wait of
    /// the call ends by it, however many waits there are. Protocols use this for a budget
    /// that spans several calls, such as the time a peer has to send a whole request head.
    ///
    /// # Errors
    ///
    /// As [`Registration::io`]; `TimedOut` once `deadline` has passed, even if `op` was never
    /// tried (a passed deadline still gets one try of `op` first).
    pub fn io_until<T>(
        &self,
        fd: RawFd,
        interest: Interest,
        deadline: Option<Instant>,
        op: impl FnMut() -> io::Result<T>,
    ) -> io::Result<T> {
        self.io_with(fd, interest, |_| deadline, op)
    }

    /// The loop behind `io` and `io_until`: `deadline` maps the start of the first wait to
    /// the call's deadline, and is read again at each wait.
    fn io_with<T>(
        &self,
        fd: RawFd,
        interest: Interest,
        deadline: impl Fn(Instant) -> Option<Instant>,
        mut op: impl FnMut() -> io::Result<T>,
    ) -> io::Result<T> {
        let mut start = None;
        let mut woken_by_edge = false;
        loop {
            let snapshot = self.snapshot(interest);
            match call_op(&mut op) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                res => return res,
            }
            if woken_by_edge {
                worker::count_io(|c| &c.io_spurious);
            }
            let start = *start.get_or_insert_with(Instant::now);
            let deadline = deadline(start);
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(io::ErrorKind::TimedOut.into());
            }
            woken_by_edge = match self.wait(fd, interest, snapshot, deadline)? {
                Wait::Woken { by_edge } => by_edge,
                Wait::Retry => false,
            };
        }
    }

    /// Wakes every caller waiting for `interest`, so it re-reads its timeout and retries.
    pub fn notify(&self, interest: Interest) {
        if let Some(key) = self.key.get() {
            Notifier(*key).notify(interest);
        }
    }

    /// A handle that [notifies](Notifier::notify) this registration's callers from elsewhere,
    /// for as long as the registration lives; after that, it does nothing. Handles on one
    /// socket made with `dup` each have a registration, and a change made through one (a new
    /// timeout, a shutdown) must wake the callers waiting on the others.
    ///
    /// # Errors
    ///
    /// `OutOfMemory` if the reactor has no free slot for the registration.
    pub fn notifier(&self) -> io::Result<Notifier> {
        self.key().map(Notifier)
    }

    /// Removes the fd from its reactor and wakes every caller waiting on it, which then
    /// returns a `NotConnected` error, as every later wait does. Call it before closing the fd
    /// if others may be waiting on it; dropping the registration does it too.
    pub fn deregister(&self) {
        let Some(key) = self.key.get() else { return };
        let mut inner = key.slot.inner.lock();
        if key.slot.seq.load(Relaxed) != key.seq {
            return;
        }
        // From here no event with the old token reaches the slot (the reactor compares the
        // sequence under this lock), and every parked caller sees the change when it wakes.
        key.slot.seq.store(key.seq.wrapping_add(1), Relaxed);
        let home = inner.home.take();
        inner.waiters.iter_mut().for_each(wake_all);
        drop(inner);
        if let Some(home) = home {
            home.leave();
        }
        TABLE.release(key.index);
    }

    /// What a caller reads before its syscall: the tick of its direction, if it has a slot.
    fn snapshot(&self, interest: Interest) -> Option<u32> {
        // Acquire: pairs with the reactor's Release bump, so an edge seen here is one whose
        // readiness the following syscall observes.
        self.key.get().map(|k| k.slot.ticks[interest.index()].load(Acquire))
    }

    fn key(&self) -> io::Result<Key> {
        if let Some(key) = self.key.get() {
            return Ok(*key);
        }
        let (index, slot) = TABLE.alloc()?;
        let key = Key { slot, index, seq: slot.seq.load(Relaxed) };
        if self.key.set(key).is_err() {
            // Another caller claimed a slot for this registration first.
            TABLE.release(index);
        }
        Ok(*self.key.get().expect("set above"))
    }

    /// Waits once for `interest`: parks the coroutine (or polls the thread) until an edge, the
    /// deadline, a [`notify`](Registration::notify) or deregistration.
    fn wait(
        &self,
        fd: RawFd,
        interest: Interest,
        snapshot: Option<u32>,
        deadline: Option<Instant>,
    ) -> io::Result<Wait> {
        if !crate::is_coroutine() {
            poll_thread(fd, interest, deadline)?;
            return Ok(Wait::Retry);
        }
        let key = self.key()?;
        let dir = interest.index();
        // Without a snapshot (the caller's syscall came before this registration had a slot),
        // no tick can vouch that nothing happened since the syscall: another caller sharing
        // the registration may have registered the fd meanwhile, and an edge come and gone.
        // So such a wait never parks; it registers the fd if needed and retries.
        let mut outcome = Ok(Wait::Retry);
        let mut parked = false;
        let woke = park_with(ParkKind::Interruptible, deadline, |waker| {
            let mut inner = key.slot.inner.lock();
            if key.slot.seq.load(Relaxed) != key.seq {
                outcome = Err(deregistered());
                return false;
            }
            // The caller is a coroutine, so this thread runs a worker loop; the reference is
            // dropped before the park switches away.
            let local = worker::current_local().expect("a coroutine runs on a worker");
            if !inner.home.as_ref().is_some_and(|h| Arc::ptr_eq(&h.shared, &local.shared)) {
                // Not registered yet, or on a runtime other than this coroutine's: move it
                // here, then retry the call (the registration reports readiness that holds).
                outcome = register(&mut inner, fd, token(key.index, key.seq), local);
                return false;
            }
            if snapshot != Some(key.slot.ticks[dir].load(Relaxed)) {
                // An edge came after the snapshot, or there is none: retry, do not park.
                return false;
            }
            let waiters = &mut inner.waiters[dir];
            // A caller is in one park at a time, so its older wakers here are dead; so are
            // wakers of parks that already ended. Dropping them keeps the list short.
            waiters.retain(|w| !w.same_owner(&waker) && w.may_be_waiting());
            waiters.push(waker);
            parked = true;
            // Counted when the wait starts, so the metric shows callers parked right now.
            worker::count_io(|c| &c.io_waits);
            true
        });
        match woke {
            Woke::Cancelled => Err(shutting_down()),
            _ if key.slot.seq.load(Relaxed) != key.seq => Err(deregistered()),
            _ if parked => {
                Ok(Wait::Woken { by_edge: Some(key.slot.ticks[dir].load(Relaxed)) != snapshot })
            }
            _ => outcome,
        }
    }
}

/// Wakes the callers of one [`Registration`] from elsewhere; see
/// [`Registration::notifier`]. It holds no resource: slots are never freed, and the sequence
/// number tells whether the registration it was made from still lives.
#[derive(Clone, Copy)]
pub struct Notifier(Key);

impl Notifier {
    /// Wakes every caller waiting for `interest` on the registration, if it still lives.
    pub fn notify(&self, interest: Interest) {
        let key = self.0;
        let mut inner = key.slot.inner.lock();
        if key.slot.seq.load(Relaxed) == key.seq {
            wake_all(&mut inner.waiters[interest.index()]);
        }
    }

    /// Whether the registration it was made from still lives.
    pub fn is_live(&self) -> bool {
        self.0.slot.seq.load(Relaxed) == self.0.seq
    }

    /// Whether both were made from the same registration.
    pub fn same_registration(&self, other: &Notifier) -> bool {
        self.0.index == other.0.index && self.0.seq == other.0.seq
    }
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Notifier(slot {}, seq {})", self.0.index, self.0.seq)
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.deregister();
    }
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.key.get() {
            Some(key) => write!(f, "Registration(slot {}, seq {})", key.index, key.seq),
            None => f.write_str("Registration(unused)"),
        }
    }
}

/// Sleeps for `dur` as [`weft::sleep`](crate::sleep) does, for retry loops in I/O calls (a
/// backoff while fds or a listener's backlog run out): while the runtime shuts down it returns
/// the shutdown error at once, which the I/O call returns in turn, so such a loop ends.
///
/// ```
/// use std::time::Duration;
///
/// weft::reactor::sleep_io(Duration::from_millis(1))?;
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # Errors
///
/// `Other` ("weft runtime is shutting down") during the shutdown of the caller's runtime.
pub fn sleep_io(dur: Duration) -> io::Result<()> {
    match crate::park::sleep_unless_cancelled(dur) {
        Woke::Cancelled => Err(shutting_down()),
        _ => Ok(()),
    }
}

fn shutting_down() -> io::Error {
    io::Error::other("weft runtime is shutting down")
}

fn deregistered() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "the fd was deregistered while a call waited on it")
}

/// Adds `fd` to the epoll of `local`, first removing it from the one it was on.
fn register(inner: &mut SlotInner, fd: RawFd, token: u64, local: &Local) -> io::Result<Wait> {
    if let Some(old) = inner.home.take() {
        old.leave();
    }
    let remote = &local.shared.remotes[local.index];
    remote.epoll.add(fd, REGISTER_EVENTS, token).map_err(|e| {
        if e.raw_os_error() == Some(libc::EEXIST) {
            // Another Registration holds this fd on this epoll: taking its registration
            // over would leave its callers waiting for events that go elsewhere.
            io::Error::new(
                io::ErrorKind::AlreadyExists,
                "the fd is already registered with weft's reactor by another Registration",
            )
        } else {
            e
        }
    })?;
    remote.registered.fetch_add(1, Relaxed);
    inner.home = Some(Home { shared: local.shared.clone(), worker: local.index, fd });
    Ok(Wait::Retry)
}

/// Calls `op` out of line.
///
/// `op` reads `errno` after its syscall, and `errno` is a thread-local whose address libc's
/// `__errno_location` gives; the compiler may treat that call as constant and, with `op`
/// inlined into the loop of [`Registration::io`], hoist it out of the loop, across the park.
/// A coroutine that migrated while parked would then read the old thread's `errno`: that was
/// seen, as `EAGAIN` read for a send that had failed with `ECONNRESET`, and the coroutine
/// parked for good. Out of line, every call computes the address afresh on the thread it runs
/// on (the same rule as the runtime's own thread-locals, see `context`).
#[inline(never)]
fn call_op<T>(op: &mut impl FnMut() -> io::Result<T>) -> io::Result<T> {
    op()
}

/// The longest a thread waits in one `poll(2)` before it retries its call. Some changes raise
/// no readiness at all: a local `shutdown(Write)` of a Unix stream socket ends a blocked
/// `write` with `EPIPE` in the kernel, but reports nothing to `poll`; and a timeout changed
/// while a thread waits is seen only when it wakes. A coroutine is woken for both (through
/// [`Registration::notify`]); a thread in `poll(2)` cannot be, so it looks again this often.
/// Ten wake-ups a second of a blocked thread cost nothing measurable.
const THREAD_POLL_SLICE: Duration = Duration::from_millis(100);

/// Blocks the calling thread until `fd` is ready for `interest`, the deadline passes, or
/// [`THREAD_POLL_SLICE`] passes.
fn poll_thread(fd: RawFd, interest: Interest, deadline: Option<Instant>) -> io::Result<()> {
    let left = deadline.map_or(THREAD_POLL_SLICE, |d| d.saturating_duration_since(Instant::now()));
    let timeout = Some(left.min(THREAD_POLL_SLICE));
    match sys::poll_one(fd, interest.poll_events(), timeout) {
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(()),
        res => res,
    }
}

// ---------------------------------------------------------------------------------------------
// Dispatch
// ---------------------------------------------------------------------------------------------

/// Delivers events from an `epoll_wait` to their slots. Runs on any thread (a worker, or the
/// monitor serving a stalled worker's epoll). A token that names no slot, such as a worker's
/// own eventfd token (`u64::MAX`), is passed over.
pub(crate) fn dispatch(events: &[Event]) {
    for event in events {
        let (bits, token) = (event.events, event.u64);
        let Some(slot) = TABLE.get(token as u32) else { continue };
        let inner = &mut *slot.inner.lock();
        if slot.seq.load(Relaxed) != (token >> 32) as u32 {
            // For a registration that has since been released: dropped (see "Slots").
            continue;
        }
        for (dir, mask) in [(0, READ_EVENTS), (1, WRITE_EVENTS)] {
            if bits & mask != 0 {
                // Release: pairs with the Acquire snapshot of a caller (see `snapshot`).
                slot.ticks[dir].fetch_add(1, Release);
                wake_all(&mut inner.waiters[dir]);
            }
        }
    }
}
