//! Resident memory per sleeping coroutine, for weft and for may.
//!
//! ```text
//! cargo run --release -p weft-bench --bin rss -- [--n 100000] [--workers W] [--rt weft|may|both]
//! ```
//!
//! For one runtime, in a fresh process:
//!
//! 1. start the runtime and run one coroutine to completion, so that worker threads, their
//!    queues and the first stack are in the baseline;
//! 2. read `VmRSS` from `/proc/self/status` (and count the mappings in `/proc/self/maps`);
//! 3. spawn N coroutines from the main thread; each bumps a counter, unparks the main thread and
//!    sleeps for an hour; the main thread parks until the counter reads N;
//! 4. read `VmRSS` again; (after - before) / N is the cost of one sleeping coroutine: its
//!    touched stack pages, its bookkeeping and its timer entry. When the count reaches N, up to
//!    one coroutine per worker may still be between its `arrive` and the commit of its sleep;
//!    its stack pages are touched already, so what the reading can miss is a timer entry per
//!    worker, tens of bytes in all. Neither runtime counts parked coroutines, so there is no
//!    tighter condition to wait on;
//! 5. weft only: drop the runtime, which cancels the sleeps and joins the workers, and time it.
//!    may has no way to stop its global scheduler, so its process just exits.
//!
//! `--rt both`, the default, runs this binary once per runtime, so that neither measurement sees
//! the other's memory. `--workers` defaults to the number of cores, for both runtimes.
//!
//! may is configured with 0x2000-word (64 KiB) stacks, weft's default size (may's own default
//! is 0x1000 words, 32 KiB), and a stack pool of 1 (may fills its pool of 1,000 stacks when its
//! scheduler starts, which would put them in the baseline). may maps a guard per stack, two
//! mappings per stack, so under the default `vm.max_map_count` of 65530 it stops near 32k
//! coroutines; the binary then measures the ones that did spawn and says so.

use std::fs::File;
use std::io::{self, Read};
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::Thread;
use std::time::{Duration, Instant};

/// Longer than any run: the coroutines must still be asleep when memory is read.
const SLEEP: Duration = Duration::from_secs(3600);
/// may's stack size is counted in words: 0x2000 words = 64 KiB, weft's default.
const MAY_STACK_WORDS: usize = 0x2000;

struct Args {
    n: usize,
    workers: usize,
    rt: String,
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(msg) => {
            eprintln!("{msg}");
            eprintln!("usage: rss [--n N] [--workers W] [--rt weft|may|both]");
            return ExitCode::from(2);
        }
    };
    match args.rt.as_str() {
        "weft" => measure_weft(&args),
        "may" => measure_may(&args),
        "both" => {
            for rt in ["weft", "may"] {
                if !rerun(&args, rt) {
                    return ExitCode::FAILURE;
                }
            }
        }
        other => {
            eprintln!("unknown runtime {other:?}: expected weft, may or both");
            return ExitCode::from(2);
        }
    }
    ExitCode::SUCCESS
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        n: 100_000,
        workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
        rt: "both".to_string(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--n" => args.n = parse_count(&flag, &value()?)?,
            "--workers" => args.workers = parse_count(&flag, &value()?)?,
            "--rt" => args.rt = value()?,
            "-h" | "--help" => return Err("rss: bytes of RSS per sleeping coroutine".into()),
            _ => return Err(format!("unknown argument {flag:?}")),
        }
    }
    Ok(args)
}

fn parse_count(flag: &str, value: &str) -> Result<usize, String> {
    match value.replace('_', "").parse() {
        Ok(0) | Err(_) => Err(format!("{flag} wants a positive integer, got {value:?}")),
        Ok(n) => Ok(n),
    }
}

/// Runs this binary again for one runtime; returns whether it succeeded.
fn rerun(args: &Args, rt: &str) -> bool {
    let exe = std::env::current_exe().expect("path of this binary");
    let status = Command::new(exe)
        .args(["--rt", rt])
        .args(["--n", &args.n.to_string()])
        .args(["--workers", &args.workers.to_string()])
        .status()
        .expect("run rss for one runtime");
    status.success()
}

/// Counts coroutines that have started, and wakes the waiting thread at each arrival.
struct Arrivals {
    count: AtomicUsize,
    waiter: Thread,
}

impl Arrivals {
    fn new() -> Arc<Self> {
        Arc::new(Arrivals { count: AtomicUsize::new(0), waiter: std::thread::current() })
    }

    fn arrive(&self) {
        // Release: pairs with the Acquire load in `wait`.
        self.count.fetch_add(1, Ordering::Release);
        // Cheap unless the waiter sleeps: std's unpark makes a syscall only for a parked thread.
        self.waiter.unpark();
    }

    /// Blocks the thread that created `self` until `n` coroutines have arrived. No lost
    /// wake-up: an unpark that comes before `park` leaves the token set, and each return from
    /// `park` re-checks the count.
    fn wait(&self, n: usize) {
        while self.count.load(Ordering::Acquire) < n {
            std::thread::park();
        }
    }
}

/// Memory figures of this process.
#[derive(Clone, Copy)]
struct Memory {
    rss_kib: u64,
    mappings: usize,
}

impl Memory {
    fn read() -> Memory {
        let rss_kib = weft_bench::sys::rss_kib(std::process::id()).expect("VmRSS of this process");
        Memory { rss_kib, mappings: count_mappings() }
    }
}

/// Lines of `/proc/self/maps`, read through a buffer on the stack: at `vm.max_map_count` a
/// heap buffer of the whole file (megabytes, so an mmap of its own) could not be allocated.
fn count_mappings() -> usize {
    let mut maps = File::open("/proc/self/maps").expect("open /proc/self/maps");
    let mut buf = [0u8; 16 * 1024];
    let mut lines = 0;
    loop {
        match maps.read(&mut buf) {
            Ok(0) => return lines,
            Ok(n) => lines += buf[..n].iter().filter(|&&b| b == b'\n').count(),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => panic!("read /proc/self/maps: {e}"),
        }
    }
}

fn report(name: &str, args: &Args, before: Memory, after: Memory, spawn: Duration) {
    let grown = after.rss_kib.saturating_sub(before.rss_kib) * 1024;
    println!("{name}: {} sleeping coroutines on {} workers", args.n, args.workers);
    println!(
        "  VmRSS {} KiB -> {} KiB: {} bytes per coroutine",
        before.rss_kib,
        after.rss_kib,
        grown / args.n as u64
    );
    println!(
        "  mappings {} -> {}; spawning until all were asleep took {:.1} ms",
        before.mappings,
        after.mappings,
        spawn.as_secs_f64() * 1e3
    );
}

fn measure_weft(args: &Args) {
    let rt = weft::Runtime::builder().workers(args.workers).build().expect("build weft runtime");
    rt.block_on(|| ());
    let before = Memory::read();

    let start = Instant::now();
    let arrivals = Arrivals::new();
    for _ in 0..args.n {
        let arrivals = arrivals.clone();
        // The handle is dropped: the coroutine runs detached, as a dropped std JoinHandle does.
        rt.spawn(move || {
            arrivals.arrive();
            weft::sleep(SLEEP);
        });
    }
    arrivals.wait(args.n);
    let spawn = start.elapsed();
    let after = Memory::read();
    report("weft", args, before, after, spawn);

    let start = Instant::now();
    drop(rt);
    println!(
        "  dropping the runtime (cancel every sleep, join the workers) took {:.1} ms",
        start.elapsed().as_secs_f64() * 1e3
    );
}

fn measure_may(args: &Args) {
    let config = may::config();
    config
        .set_workers(args.workers)
        .set_stack_size(MAY_STACK_WORDS)
        // may fills its pool when its scheduler starts: keep those stacks out of the baseline.
        .set_pool_capacity(1);
    config.set_worker_pin(false);
    // `go!` is may's unsafe `spawn` behind a safe face; these coroutines use no thread-local
    // storage and little stack, as may asks.
    may::go!(|| ()).join().expect("may warm-up coroutine");
    let before = Memory::read();

    let start = Instant::now();
    let arrivals = Arrivals::new();
    // may maps each stack with its own guard mapping, two mappings per stack, so it runs into
    // `vm.max_map_count` near 32k stacks; its spawn panics then. Measure what did spawn.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let mut spawned = 0;
    let mut failure = None;
    while spawned < args.n {
        let arrivals = arrivals.clone();
        let spawn = std::panic::catch_unwind(|| {
            may::go!(move || {
                arrivals.arrive();
                may::coroutine::sleep(SLEEP);
            })
        });
        match spawn {
            Ok(_) => spawned += 1,
            Err(payload) => {
                failure = Some(panic_message(&*payload));
                break;
            }
        }
    }
    std::panic::set_hook(hook);
    arrivals.wait(spawned);
    let spawn = start.elapsed();
    let after = Memory::read();
    if let Some(msg) = failure {
        let max_map_count = std::fs::read_to_string("/proc/sys/vm/max_map_count")
            .map_or_else(|_| "?".to_string(), |s| s.trim().to_string());
        println!(
            "may: spawn {} failed ({msg}; vm.max_map_count = {max_map_count}); \
             measuring the {spawned} that did spawn",
            spawned + 1,
        );
    }
    let args = Args { n: spawned, workers: args.workers, rt: args.rt.clone() };
    report("may", &args, before, after, spawn);
    println!("  (may: 0x{MAY_STACK_WORDS:x}-word stacks; the process exits with them asleep)");
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic".to_string()
    }
}
