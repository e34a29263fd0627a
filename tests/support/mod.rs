//! Shared helpers for the runtime and net integration tests (`tests/rt_*.rs`, `tests/net_*.rs`).
//!
//! Every test follows the same shape:
//!
//! 1. `let wd = support::watchdog("name", budget)` arms a watchdog. If the guard is still alive
//!    when the budget runs out, a background thread prints the test name, its seed, the phase
//!    note, the progress counters and the metrics of every registered runtime, and then calls
//!    `std::process::abort()`: a lost wake-up fails in minutes instead of eating CI's time.
//! 2. `let seed = wd.seed()` reads `WEFT_SEED` (or derives a seed from the clock), prints it and
//!    records it for the dump. Randomised tests draw from [`Rng::new`] and quote the seed in
//!    their assertion messages.
//! 3. [`sized`] picks a stress size: the default normally, the full size under `WEFT_STRESS=1`.
//!
//! Environment:
//!
//! | variable              | meaning                                                         |
//! |-----------------------|-----------------------------------------------------------------|
//! | `WEFT_SEED=<u64>`     | replay a seed (decimal or `0x` hex)                             |
//! | `WEFT_STRESS=1`       | full stress sizes, and watchdog budgets ×[`STRESS_BUDGET_FACTOR`] |
//! | `WEFT_TEST_CHILD=<s>` | set by [`run_child`]: the re-executed binary runs scenario `s`  |
//!
//! The watchdog writes with `std::io::stderr()` directly, not `eprintln!`: libtest captures
//! `eprintln!` per test (and in every thread spawned from a test), and a captured dump would
//! vanish with the abort.
//!
//! Helpers that only a few binaries share live in submodules: [`ledger`] (messages, the ledger
//! and the sides of the channel tests, `tests/sync_channels.rs` and `tests/sync_select.rs`), and
//! [`http`] (a server under test and a raw HTTP/1.1 reader, for `tests/http_*.rs`).

#![allow(dead_code)]

pub mod http;
pub mod ledger;
pub mod peers;
pub mod tasks;

use std::any::Any;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use weft::Runtime;

// ---------------------------------------------------------------------------------------------
// Sizes and seeds
// ---------------------------------------------------------------------------------------------

/// Watchdog budgets are multiplied by this under `WEFT_STRESS=1`, where sizes grow about 10×.
pub const STRESS_BUDGET_FACTOR: u32 = 10;

/// Whether `WEFT_STRESS` asks for the full stress sizes (any value but empty or `0`).
pub fn stress() -> bool {
    std::env::var("WEFT_STRESS").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// `default` normally, `full` under `WEFT_STRESS=1`.
pub fn sized(default: usize, full: usize) -> usize {
    if stress() {
        full
    } else {
        default
    }
}

/// A watchdog budget: `base` normally, `base × STRESS_BUDGET_FACTOR` under `WEFT_STRESS=1`.
pub fn budget(base: Duration) -> Duration {
    if stress() {
        base * STRESS_BUDGET_FACTOR
    } else {
        base
    }
}

/// The seed from `WEFT_SEED`, else one derived from the clock and the pid.
pub fn seed_from_env() -> u64 {
    if let Ok(text) = std::env::var("WEFT_SEED") {
        let text = text.trim();
        let parsed = match text.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16),
            None => text.parse(),
        };
        return parsed.unwrap_or_else(|_| panic!("WEFT_SEED={text:?} is not a u64"));
    }
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    Rng::new(nanos ^ (u64::from(std::process::id()) << 32)).next_u64()
}

/// A small seeded PRNG (SplitMix64): good enough to pick sizes, delays and victims, and
/// reproducible from one `u64`.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`), by multiply-high: no modulo bias worth the name.
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "Rng::below(0)");
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        assert!(lo <= hi, "Rng::range({lo}, {hi})");
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `percent / 100`.
    pub fn percent(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// An independent generator, for handing to a coroutine.
    pub fn fork(&mut self) -> Rng {
        Rng::new(self.next_u64())
    }
}

// ---------------------------------------------------------------------------------------------
// Watchdog
// ---------------------------------------------------------------------------------------------

/// Arms a watchdog for the test `name`; see [`Watchdog`].
pub fn watchdog(name: &str, budget: Duration) -> Watchdog {
    Watchdog::new(name, budget)
}

/// Aborts the process with a dump if it is not dropped within its budget.
///
/// Dropping the guard (normally, or while a failed assertion unwinds) disarms it.
pub struct Watchdog {
    state: Arc<WatchState>,
    thread: Option<std::thread::JoinHandle<()>>,
}

struct WatchState {
    name: String,
    budget: Duration,
    disarmed: Mutex<bool>,
    cv: Condvar,
    seed: Mutex<Option<u64>>,
    note: Mutex<String>,
    counters: Mutex<Vec<(String, Arc<AtomicUsize>)>>,
    runtimes: Mutex<Vec<(String, Weak<Runtime>)>>,
}

/// How long the dump may spend reading metrics before the watchdog aborts anyway: a hung
/// runtime may hold the lock that `metrics()` needs.
const DUMP_GRACE: Duration = Duration::from_secs(5);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Watchdog {
    fn new(name: &str, budget: Duration) -> Watchdog {
        let state = Arc::new(WatchState {
            name: name.to_owned(),
            budget,
            disarmed: Mutex::new(false),
            cv: Condvar::new(),
            seed: Mutex::new(None),
            note: Mutex::new(String::new()),
            counters: Mutex::new(Vec::new()),
            runtimes: Mutex::new(Vec::new()),
        });
        let watcher = Arc::clone(&state);
        let thread = std::thread::Builder::new()
            .name(format!("watchdog:{name}"))
            .spawn(move || watcher.watch())
            .expect("spawn the watchdog thread");
        Watchdog { state, thread: Some(thread) }
    }

    /// Reads the seed (see [`seed_from_env`]), prints it, and records it for the dump.
    pub fn seed(&self) -> u64 {
        let seed = seed_from_env();
        eprintln!("[{}] seed: WEFT_SEED={seed}", self.state.name);
        *lock(&self.state.seed) = Some(seed);
        seed
    }

    /// Records what the test is doing now (a phase, an iteration); shown in the dump.
    pub fn note(&self, text: impl Into<String>) {
        *lock(&self.state.note) = text.into();
    }

    /// A new progress counter, shown in the dump under `label`.
    pub fn counter(&self, label: &str) -> Arc<AtomicUsize> {
        let counter = Arc::new(AtomicUsize::new(0));
        self.watch_counter(label, &counter);
        counter
    }

    /// Shows an existing counter in the dump under `label`.
    pub fn watch_counter(&self, label: &str, counter: &Arc<AtomicUsize>) {
        lock(&self.state.counters).push((label.to_owned(), Arc::clone(counter)));
    }

    /// Shows `rt.metrics()` in the dump while `rt` is alive. Only a weak reference is kept, so
    /// dropping the test's `Arc` still drops the runtime.
    pub fn watch_runtime(&self, label: &str, rt: &Arc<Runtime>) {
        lock(&self.state.runtimes).push((label.to_owned(), Arc::downgrade(rt)));
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        *lock(&self.state.disarmed) = true;
        self.state.cv.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl WatchState {
    fn watch(&self) {
        let deadline = Instant::now() + self.budget;
        let mut disarmed = lock(&self.disarmed);
        while !*disarmed {
            let now = Instant::now();
            if now >= deadline {
                drop(disarmed);
                self.fire();
            }
            disarmed = self
                .cv
                .wait_timeout(disarmed, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    fn fire(&self) -> ! {
        let mut err = std::io::stderr().lock();
        let _ = writeln!(
            err,
            "\n===== WATCHDOG: test '{}' still running after {:?} =====",
            self.name, self.budget
        );
        match *lock(&self.seed) {
            Some(seed) => {
                let _ = writeln!(err, "seed: WEFT_SEED={seed}");
            }
            None => {
                let _ = writeln!(err, "seed: (none drawn)");
            }
        }
        let _ = writeln!(err, "phase: {}", lock(&self.note));
        for (label, counter) in lock(&self.counters).iter() {
            let _ = writeln!(err, "progress {label}: {}", counter.load(Ordering::SeqCst));
        }
        let _ = err.flush();
        drop(err);

        // Reading metrics may block on a wedged runtime: give it DUMP_GRACE, then abort anyway.
        let _ = std::thread::Builder::new().name("watchdog-grace".into()).spawn(|| {
            std::thread::sleep(DUMP_GRACE);
            let _ = writeln!(std::io::stderr(), "(metrics did not come within {DUMP_GRACE:?})");
            std::process::abort();
        });
        for (label, rt) in lock(&self.runtimes).iter() {
            let text = match rt.upgrade() {
                Some(rt) => format!("{:#?}", rt.metrics()),
                None => "(dropped)".to_owned(),
            };
            let _ = writeln!(std::io::stderr(), "metrics {label}: {text}");
        }
        let _ = writeln!(std::io::stderr(), "===== WATCHDOG: aborting =====");
        std::process::abort();
    }
}

// ---------------------------------------------------------------------------------------------
// Waiting on conditions
// ---------------------------------------------------------------------------------------------

/// Polls `cond` until it holds or `timeout` passes; returns whether it held.
///
/// Inside a coroutine it yields between polls so other coroutines on the worker run; on a
/// thread it yields, then polls every 200 µs.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    let mut polls = 0u32;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return cond();
        }
        polls += 1;
        if weft::is_coroutine() {
            weft::yield_now();
        } else if polls < 64 {
            std::thread::yield_now();
        } else {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
}

/// The bound on anything that must happen: far above any scheduling delay, below the
/// watchdog's budget.
pub fn hang() -> Duration {
    budget(Duration::from_secs(30))
}

/// Gives the processor to others briefly: a coroutine yields its worker, a thread its core.
pub fn pause() {
    if weft::is_coroutine() {
        weft::yield_now();
    } else {
        std::thread::yield_now();
    }
}

/// Seeded delays and timeouts are uniform in `0..=2^e µs`, with `e` uniform in
/// `0..=MAX_JITTER_EXP`: short and long ones (up to 2 ms, past the 1 ms a worker's idle timer
/// wait rounds to) both come up often.
pub const MAX_JITTER_EXP: u64 = 11;

/// A seeded delay or timeout; see [`MAX_JITTER_EXP`].
pub fn jitter(rng: &mut Rng) -> Duration {
    let exp = rng.below(MAX_JITTER_EXP + 1);
    Duration::from_nanos(rng.below((1000 << exp) + 1))
}

/// Lets `d` pass, yielding (in a coroutine, so that a timer of the same worker can fire) or
/// spinning (on a thread).
pub fn delay(d: Duration) {
    let until = Instant::now() + d;
    while Instant::now() < until {
        if weft::is_coroutine() {
            weft::yield_now();
        } else {
            std::hint::spin_loop();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Sides: coroutines and plain threads
// ---------------------------------------------------------------------------------------------

/// Where one side of a test executes, so that each kind of waiter meets each kind of waker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// A coroutine on the runtime under test.
    Coroutine,
    /// A plain thread.
    Thread,
}

/// A running side: a coroutine or a thread.
pub enum Handle<T> {
    Coroutine(weft::JoinHandle<T>),
    Thread(std::thread::JoinHandle<T>),
}

impl<T> Handle<T> {
    pub fn is_finished(&self) -> bool {
        match self {
            Handle::Coroutine(h) => h.is_finished(),
            Handle::Thread(h) => h.is_finished(),
        }
    }

    pub fn join(self) -> std::thread::Result<T> {
        match self {
            Handle::Coroutine(h) => h.join(),
            Handle::Thread(h) => h.join(),
        }
    }

    /// Joins the side; a panic comes back as `Err("<who> panicked: <message>")`.
    pub fn result(self, who: &str) -> Result<T, String> {
        self.join().map_err(|p| format!("{who} panicked: {}", panic_message(&*p).unwrap_or("?")))
    }

    /// Joins a side that must finish (within [`hang`]) without panicking.
    pub fn value(self, what: &str) -> T {
        assert!(
            wait_until(hang(), || self.is_finished()),
            "{what}: still blocked after {:?}",
            hang()
        );
        self.join()
            .unwrap_or_else(|p| panic!("{what}: panicked: {}", panic_message(&*p).unwrap_or("?")))
    }
}

/// Starts `f` on `side`: a coroutine of `rt`, or a new thread named `name`.
pub fn spawn_on<T, F>(side: Side, rt: Option<&Runtime>, name: &str, f: F) -> Handle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    match side {
        Side::Coroutine => Handle::Coroutine(rt.expect("a runtime for coroutines").spawn(f)),
        Side::Thread => Handle::Thread(
            std::thread::Builder::new().name(name.to_owned()).spawn(f).expect("spawn a thread"),
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// Runtimes
// ---------------------------------------------------------------------------------------------

/// The two scheduling modes every scheduler-touching test runs in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The default: a started coroutine always resumes on its home worker.
    Pinned,
    /// `migrate_started_coroutines()`: started coroutines may be stolen too.
    Migrating,
}

/// Both modes, for the tests that run in each.
pub const MODES: [Mode; 2] = [Mode::Pinned, Mode::Migrating];

/// A runtime builder with `workers` workers in `mode`.
pub fn builder(workers: usize, mode: Mode) -> weft::runtime::Builder {
    let builder = Runtime::builder().workers(workers);
    match mode {
        Mode::Pinned => builder,
        // SAFETY: the contract is that no coroutine keeps a thread-affine value (a
        // `thread_local!` reference, an `Rc` from thread-local state, a std `MutexGuard`) across
        // a switch. The test coroutines hold only `Arc`s, atomics and plain data across their
        // `park`/`yield_now`/`sleep` calls.
        Mode::Migrating => unsafe { builder.migrate_started_coroutines() },
    }
}

/// A runtime with `workers` workers in `mode`, in an `Arc` so a watchdog can watch it.
pub fn runtime(workers: usize, mode: Mode) -> Arc<Runtime> {
    Arc::new(builder(workers, mode).build().expect("build a runtime"))
}

/// Sum of a per-worker counter over all workers.
pub fn sum_workers(
    metrics: &weft::RuntimeMetrics,
    field: impl Fn(&weft::WorkerMetrics) -> u64,
) -> u64 {
    metrics.workers.iter().map(field).sum()
}

/// Sum of `io_waits` (parks on fd readiness) over the workers of `rt`.
pub fn io_waits(rt: &Runtime) -> u64 {
    sum_workers(&rt.metrics(), |w| w.io_waits)
}

/// Runs `check` on this thread, then as a coroutine on a two-worker runtime in each mode.
pub fn on_thread_and_coroutines(name: &str, check: fn()) {
    let wd = watchdog(name, Duration::from_secs(60));
    wd.note("on the test thread");
    check();
    for mode in MODES {
        wd.note(format!("in a coroutine, {mode:?}"));
        let rt = runtime(2, mode);
        wd.watch_runtime("rt", &rt);
        rt.block_on(check);
    }
}

// ---------------------------------------------------------------------------------------------
// Sockets
// ---------------------------------------------------------------------------------------------

/// A connected pair of loopback TCP streams: (client, server).
pub fn tcp_pair() -> (weft::net::TcpStream, weft::net::TcpStream) {
    let listener = weft::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback listener");
    let addr = listener.local_addr().expect("listener address");
    let client = weft::net::TcpStream::connect(addr).expect("connect to the loopback listener");
    let (server, peer) = listener.accept().expect("accept");
    assert_eq!(peer, client.local_addr().expect("client address"));
    (client, server)
}

/// The stream sockets, TCP and Unix, for the checks that run over either: a second handle on
/// the same socket, and a half-close.
pub trait Stream: Read + Write + Send + Sync + Sized + 'static {
    fn try_clone(&self) -> std::io::Result<Self>;
    fn shutdown(&self, how: std::net::Shutdown) -> std::io::Result<()>;
}

macro_rules! stream {
    ($($stream:ty),*) => {$(
        impl Stream for $stream {
            fn try_clone(&self) -> std::io::Result<Self> {
                <$stream>::try_clone(self)
            }

            fn shutdown(&self, how: std::net::Shutdown) -> std::io::Result<()> {
                <$stream>::shutdown(self, how)
            }
        }
    )*};
}

stream!(weft::net::TcpStream, weft::net::UnixStream);

/// A socket path under the temp dir, `weft-<pid>-<n>-<tag>.sock`, unique in this process and
/// removed on drop (and, should a stale one exist, at creation).
pub struct TempPath(PathBuf);

impl TempPath {
    /// A fresh path whose file name ends in `<tag>.sock`.
    pub fn new(tag: &str) -> TempPath {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("weft-{}-{n}-{tag}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        TempPath(path)
    }

    /// The path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Echoes `stream` back to itself until EOF; returns the bytes echoed.
pub fn echo_until_eof(mut stream: impl Read + Write) -> usize {
    let mut buf = vec![0u8; 16 << 10];
    let mut total = 0;
    loop {
        let n = stream.read(&mut buf).expect("echo read");
        if n == 0 {
            return total;
        }
        stream.write_all(&buf[..n]).expect("echo write");
        total += n;
    }
}

/// Whether `fd`'s open file is in non-blocking mode (`O_NONBLOCK`).
pub fn is_nonblocking(fd: RawFd) -> bool {
    // SAFETY: fcntl(F_GETFL) reads the flags of an fd the caller holds open; no pointers.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    assert!(flags >= 0, "fcntl(F_GETFL): {}", std::io::Error::last_os_error());
    flags & libc::O_NONBLOCK != 0
}

/// Makes a close of `fd`'s socket send a reset (SO_LINGER on, 0 s).
pub fn set_linger_zero(fd: &impl AsRawFd) {
    let linger = libc::linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: setsockopt(2) reads `size_of::<linger>()` bytes from a live `linger`.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "setsockopt(SO_LINGER): {}", std::io::Error::last_os_error());
}

// ---------------------------------------------------------------------------------------------
// Threads seen blocking
// ---------------------------------------------------------------------------------------------

/// Whether thread `tid` of this process is asleep in the kernel (state `S` in its
/// `/proc/self/task/<tid>/stat`).
pub fn thread_sleeping(tid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")) else {
        return false;
    };
    // The state follows the parenthesised command name, which may itself hold spaces.
    stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next()) == Some("S")
}

/// Stores the calling thread's id in `slot`, for [`wait_sleeping`].
pub fn publish_tid(slot: &AtomicI32) {
    // SAFETY: gettid(2) has no preconditions.
    slot.store(unsafe { libc::gettid() }, Ordering::SeqCst);
}

/// Waits up to `timeout` until a thread has published its id in `slot` ([`publish_tid`]) and
/// sleeps in the kernel ([`thread_sleeping`]); returns whether it did.
pub fn wait_sleeping(slot: &AtomicI32, timeout: Duration) -> bool {
    wait_until(timeout, || {
        let tid = slot.load(Ordering::SeqCst);
        tid != 0 && thread_sleeping(tid)
    })
}

// ---------------------------------------------------------------------------------------------
// Panic payloads
// ---------------------------------------------------------------------------------------------

/// The message of a `panic!` payload (`&'static str` or `String`), if it is one.
pub fn panic_message(payload: &(dyn Any + Send)) -> Option<&str> {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        Some(s)
    } else {
        payload.downcast_ref::<String>().map(String::as_str)
    }
}

// ---------------------------------------------------------------------------------------------
// Process resources
// ---------------------------------------------------------------------------------------------

/// Serialises tests of one binary that measure process-wide resources (fds, mappings, RSS):
/// libtest runs a binary's tests on parallel threads.
pub fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    lock(&SERIAL)
}

/// The open file descriptors of this process, as `fd -> target` lines (from `/proc/self/fd`).
/// The directory handle that reads them is listed too, the same way every time.
pub fn open_fds() -> Vec<String> {
    let mut fds: Vec<String> = std::fs::read_dir("/proc/self/fd")
        .expect("read /proc/self/fd")
        .filter_map(Result::ok)
        .map(|entry| {
            let target = std::fs::read_link(entry.path())
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            format!("{} -> {target}", entry.file_name().to_string_lossy())
        })
        .collect();
    fds.sort();
    fds
}

/// The number of memory mappings of this process (lines of `/proc/self/maps`).
pub fn mappings() -> usize {
    std::fs::read_to_string("/proc/self/maps").expect("read /proc/self/maps").lines().count()
}

fn statm_field(index: usize) -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("read /proc/self/statm");
    let pages: u64 = statm
        .split_whitespace()
        .nth(index)
        .and_then(|f| f.parse().ok())
        .expect("parse /proc/self/statm");
    pages * page_size()
}

/// The page size in bytes.
pub fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).expect("sysconf(_SC_PAGESIZE)")
}

/// Virtual memory size of this process, in bytes.
pub fn vm_size() -> u64 {
    statm_field(0)
}

/// Resident set size of this process, in bytes.
pub fn rss() -> u64 {
    statm_field(1)
}

// ---------------------------------------------------------------------------------------------
// Child processes
// ---------------------------------------------------------------------------------------------

/// The environment variable that tells a re-executed test binary which scenario to run.
pub const CHILD_ENV: &str = "WEFT_TEST_CHILD";

/// True when this process is a child started by [`run_child`] for `scenario`. Core dumps are
/// then disabled, since some scenarios end in `abort()` on purpose.
pub fn is_child(scenario: &str) -> bool {
    if std::env::var(CHILD_ENV).ok().as_deref() != Some(scenario) {
        return false;
    }
    let no_core = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: setrlimit reads the struct we pass; prctl(PR_SET_DUMPABLE, 0) takes no pointers.
    unsafe {
        libc::setrlimit(libc::RLIMIT_CORE, &no_core);
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
    }
    true
}

/// What a child run produced.
#[derive(Debug)]
pub struct ChildOutput {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl std::fmt::Display for ChildOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "child {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// Re-runs this test binary as `<exe> --exact <test> --nocapture --test-threads=1` with
/// `WEFT_TEST_CHILD=<scenario>` and `envs`, and waits up to `timeout` for it. A child that
/// outlives the timeout is killed with SIGKILL and the call panics with its output.
pub fn run_child(
    test: &str,
    scenario: &str,
    envs: &[(&str, &str)],
    timeout: Duration,
) -> ChildOutput {
    let mut child = child_command(test, scenario, envs, Stdio::null())
        .spawn()
        .expect("spawn the child test process");
    let pid = child.id();
    let stdout = drain(child.stdout.take().expect("child stdout"));
    let stderr = drain(child.stderr.take().expect("child stderr"));
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    let status = match rx.recv_timeout(timeout) {
        Ok(status) => status.expect("wait for the child"),
        Err(_) => {
            // SAFETY: kill(2) on the pid of the child we spawned and have not reaped yet.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            let status = rx.recv().expect("child waiter").expect("wait for the killed child");
            let out =
                ChildOutput { status, stdout: join_drain(stdout), stderr: join_drain(stderr) };
            panic!("child scenario '{scenario}' still running after {timeout:?}; killed it\n{out}");
        }
    };
    ChildOutput { status, stdout: join_drain(stdout), stderr: join_drain(stderr) }
}

/// `<this test binary> --exact <test> --nocapture --test-threads=1` with
/// `WEFT_TEST_CHILD=<scenario>` and `envs`, stdin from `stdin`, stdout and stderr piped.
fn child_command(test: &str, scenario: &str, envs: &[(&str, &str)], stdin: Stdio) -> Command {
    let exe = std::env::current_exe().expect("current_exe");
    let mut command = Command::new(exe);
    command
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, scenario)
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, value) in envs {
        command.env(key, value);
    }
    command
}

fn drain(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

fn join_drain(handle: std::thread::JoinHandle<String>) -> String {
    handle.join().unwrap_or_else(|_| "(reader thread panicked)".to_owned())
}

// ---------------------------------------------------------------------------------------------
// Statistics
// ---------------------------------------------------------------------------------------------

/// The `key=value` fields after `prefix` in the first line of `stdout` that holds it (a child's
/// report line; libtest's "test ... " may precede it on the line).
pub fn report_fields(
    stdout: &str,
    prefix: &str,
) -> Option<std::collections::HashMap<String, u128>> {
    let line = stdout.lines().find_map(|l| l.split_once(prefix).map(|(_, rest)| rest))?;
    line.split_whitespace()
        .map(|kv| {
            let (k, v) = kv.split_once('=')?;
            Some((k.to_owned(), v.parse().ok()?))
        })
        .collect()
}

/// The `p`-th percentile (0..=100) of sorted `values`, nearest-rank.
pub fn percentile(sorted: &[Duration], p: u32) -> Duration {
    assert!(!sorted.is_empty(), "percentile of nothing");
    let rank = (sorted.len() * p as usize).div_ceil(100).max(1);
    sorted[rank - 1]
}

/// Waits up to `timeout` until this process's open fds are exactly `baseline` (as
/// [`open_fds`] lists them); on failure, says which fds are new and which are gone.
pub fn fds_return_to(baseline: &[String], timeout: Duration) -> Result<(), String> {
    let mut now = Vec::new();
    if wait_until(timeout, || {
        now = open_fds();
        now == baseline
    }) {
        return Ok(());
    }
    let new: Vec<_> = now.iter().filter(|fd| !baseline.contains(fd)).collect();
    let gone: Vec<_> = baseline.iter().filter(|fd| !now.contains(fd)).collect();
    Err(format!(
        "{} fds open after {timeout:?}, baseline {}; {} new (first: {:?}); {} gone (first: {:?})",
        now.len(),
        baseline.len(),
        new.len(),
        &new[..new.len().min(8)],
        gone.len(),
        &gone[..gone.len().min(8)],
    ))
}

/// Clock ticks per second, the unit of the times in `/proc/<pid>/stat`.
pub fn clock_ticks_per_sec() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(ticks).ok().filter(|&t| t > 0).expect("sysconf(_SC_CLK_TCK)")
}

/// CPU time (user + system) that process `pid` has used so far, from `/proc/<pid>/stat`, in
/// clock ticks (see [`clock_ticks_per_sec`]).
pub fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/stat: {e}"));
    // The command name (field 2) is in parentheses and may hold spaces: count from the last
    // ')'. After it come field 3 (state) onwards; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')').expect("a ')' in /proc/<pid>/stat") + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| -> u64 {
        fields[n - 3].parse().unwrap_or_else(|_| panic!("field {n} of /proc/{pid}/stat: {stat}"))
    };
    field(14) + field(15)
}

/// A child process started by [`spawn_child`]: its pid is known while it runs, its stdout
/// comes line by line, and it is killed (SIGKILL) and reaped if dropped while still running.
/// The kernel also kills it if the thread that spawned it dies (`PR_SET_PDEATHSIG`), so a
/// parent that aborts leaves no orphan.
pub struct Child {
    scenario: String,
    child: std::process::Child,
    lines: mpsc::Receiver<String>,
    /// Every stdout line so far, including those not yet taken by [`Child::line`].
    stdout: Arc<Mutex<String>>,
    stderr: Option<std::thread::JoinHandle<String>>,
    reaped: bool,
}

/// Starts this test binary as a child, as [`run_child`] does, but returns at once with a
/// [`Child`] handle. The child's stdin is a pipe; [`Child::close_stdin`] closes it.
pub fn spawn_child(test: &str, scenario: &str, envs: &[(&str, &str)]) -> Child {
    use std::os::unix::process::CommandExt;

    let mut command = child_command(test, scenario, envs, Stdio::piped());
    // SAFETY: the closure runs between fork and exec and only calls prctl(2), which is
    // async-signal-safe and touches no memory of ours.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command.spawn().expect("spawn the child test process");
    let out = child.stdout.take().expect("child stdout");
    let stderr = drain(child.stderr.take().expect("child stderr"));
    let stdout = Arc::new(Mutex::new(String::new()));
    let (tx, lines) = mpsc::channel();
    let all = Arc::clone(&stdout);
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            let mut all = lock(&all);
            all.push_str(&line);
            all.push('\n');
            drop(all);
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    Child {
        scenario: scenario.to_owned(),
        child,
        lines,
        stdout,
        stderr: Some(stderr),
        reaped: false,
    }
}

impl Child {
    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The next stdout line, waiting up to `timeout`; `None` on timeout or end of output.
    pub fn line(&mut self, timeout: Duration) -> Option<String> {
        self.lines.recv_timeout(timeout).ok()
    }

    /// Skips stdout lines until one holds `prefix` and returns the rest of it after `prefix`;
    /// panics with the child's output if none comes within `timeout`. (`prefix` need not
    /// start the line: libtest's `test <name> ... ` comes before the first line a test
    /// prints.)
    pub fn expect_line(&mut self, prefix: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.line(left) {
                Some(line) => {
                    if let Some((_, rest)) = line.split_once(prefix) {
                        return rest.to_owned();
                    }
                }
                None => {
                    let why = match self.child.try_wait() {
                        Ok(Some(status)) => format!("it exited: {status:?}"),
                        _ => format!("none within {timeout:?}"),
                    };
                    panic!(
                        "child scenario '{}': no stdout line with {prefix:?}: {why}\n{}",
                        self.scenario,
                        self.output_so_far()
                    );
                }
            }
        }
    }

    /// Closes the child's stdin, which a child may take as the signal to finish.
    pub fn close_stdin(&mut self) {
        drop(self.child.stdin.take());
    }

    /// Whether the child is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Stdout so far (stderr is only available after the child ends).
    pub fn output_so_far(&self) -> String {
        format!("--- stdout so far ---\n{}", lock(&self.stdout))
    }

    /// Waits up to `timeout` for the child to exit and returns its output; a child still
    /// running then is killed, and the call panics with its output.
    pub fn wait(mut self, timeout: Duration) -> ChildOutput {
        self.close_stdin();
        let exited = wait_until(timeout, || !matches!(self.child.try_wait(), Ok(None)));
        if !exited {
            let _ = self.child.kill();
        }
        let status = self.child.wait().expect("wait for the child");
        self.reaped = true;
        // The stdout reader ends at EOF, which the exit brings; give it a moment to append.
        let _ = wait_until(Duration::from_secs(5), || {
            matches!(self.lines.try_recv(), Err(mpsc::TryRecvError::Disconnected))
        });
        let out = ChildOutput {
            status,
            stdout: lock(&self.stdout).clone(),
            stderr: self.stderr.take().map_or_else(String::new, join_drain),
        };
        if !exited {
            panic!(
                "child scenario '{}' still running after {timeout:?}; killed it\n{out}",
                self.scenario
            );
        }
        out
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if !self.reaped {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// A listener whose backlog is full
// ---------------------------------------------------------------------------------------------

/// How long a plain connect waits while the backlog is being filled: a connect that hangs
/// this long means the backlog is full.
const FILL_PROBE: Duration = Duration::from_millis(50);

/// A loopback listener that is never accepted from, with its accept queue full: a new SYN to
/// it is dropped, so a connect to it hangs until its timeout.
pub struct FullListener {
    pub addr: std::net::SocketAddr,
    _listener: std::net::TcpListener,
    _queued: Vec<std::net::TcpStream>,
}

/// Binds a listener with a backlog of 0 (std's bind listens with 128; a second `listen(2)`
/// on a listening socket only changes the backlog) and connects plain std streams to it until
/// one hangs for `FILL_PROBE`.
pub fn full_listener() -> FullListener {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a std listener");
    // SAFETY: listen(2) on a socket fd that `listener` owns and keeps open.
    let rc = unsafe { libc::listen(listener.as_raw_fd(), 0) };
    assert_eq!(rc, 0, "listen(fd, 0): {}", std::io::Error::last_os_error());
    let addr = listener.local_addr().expect("listener address");
    let mut queued = Vec::new();
    for _ in 0..8 {
        match std::net::TcpStream::connect_timeout(&addr, FILL_PROBE) {
            Ok(stream) => queued.push(stream),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
                ) =>
            {
                return FullListener { addr, _listener: listener, _queued: queued };
            }
            Err(e) => panic!("filling the backlog: connect failed: {e}"),
        }
    }
    panic!("8 connects to a listener with backlog 0 all succeeded: cannot make a full backlog");
}
