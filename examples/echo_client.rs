//! The load generator of the echo benchmarks, itself on weft coroutines: one coroutine per
//! connection.
//!
//! ```text
//! cargo run --release --example echo_client -- [--addr 127.0.0.1:9000] [--conns 100]
//!     [--size 64] [--duration 10] [--rate MSGS_PER_SEC] [--warmup 0] [--workers N]
//! ```
//!
//! A run, in order:
//!
//! 1. Every connection connects. Timing starts only once all of them have connected (or
//!    failed to): the main coroutine waits at a gate, then opens it for all at once.
//! 2. Warm-up, `--warmup` seconds: messages go out but are not counted.
//! 3. Measurement, `--duration` seconds (fractions allowed), in one of two modes.
//!    - Closed loop (no `--rate`): each connection writes a message, reads back exactly
//!      `--size` bytes, records the round trip, and goes again at once.
//!    - Fixed rate (`--rate R`): each connection sends `R / conns` messages a second on a fixed
//!      schedule, and the schedules of the connections are offset evenly so that the total is
//!      smooth. Latency runs from the time a message was *scheduled*, not from when it went
//!      out: a slow reply delays the next send, and that delay is counted too (the
//!      coordinated-omission correction of wrk2). A connection that fell behind sends its
//!      overdue messages back to back and never skips a slot; the slots still unsent when time
//!      is up are reported as `unsent`.
//! 4. The report: messages per second, latency percentiles in microseconds (HdrHistogram,
//!    3 significant digits), connection errors and mismatched echoes.
//!
//! Message `n` of connection `c` carries a byte pattern drawn from `(c, n)`, and every echoed
//! byte is checked against what was sent, so a server that mixes up connections, or drops,
//! repeats or reorders bytes, shows up as mismatches.
//!
//! The last line of output is for scripts; `rate=0` means closed loop:
//!
//! ```text
//! RESULT conns=100 size=64 rate=0 msgs=245210 secs=2.000 msgs_per_sec=122605 p50_us=780
//!     p99_us=1630 p999_us=2630 max_us=5003 errors=0 mismatches=0 unsent=0
//! ```
//!
//! (printed as one line). The exit status is 0; 1 when an echo mismatched or every connection
//! failed; 2 for a bad command line.

#[path = "common/cli.rs"]
mod cli;

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use weft::net::TcpStream;
use weft::sync::WaitGroup;

/// How long a connect may take before it counts as a connection error.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long one read or write may park. A slower reply counts as a connection error, so a
/// stalled server ends the run instead of hanging it.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// A message is written and read back in pieces of at most this size. Less than any socket
/// buffer holds, so the echo of one piece always fits in our receive buffer while we are still
/// writing: writing a whole large message before reading could deadlock against a server that
/// echoes as it reads.
const CHUNK: usize = 32 * 1024;

/// Latency histograms, each shared by the connections with the same index modulo this.
/// A histogram per connection would cost about 190 KB each (2 GB at 10,000 connections); the
/// lock of a shard is held only for one `record`, so 64 of them make contention negligible.
const SHARDS: usize = 64;

/// The largest latency the histograms tell apart: one hour, in microseconds. Longer ones are
/// recorded as this.
const MAX_LATENCY_US: u64 = 3_600_000_000;

/// Significant decimal digits of the histograms.
const SIGFIG: u8 = 3;

/// The `--help` text.
const USAGE: &str = "\
usage: echo_client [--addr ADDR] [--conns N] [--size BYTES] [--duration SECS]
                   [--rate MSGS_PER_SEC] [--warmup SECS] [--workers N]

  --addr ADDR        echo server address (default 127.0.0.1:9000)
  --conns N          connections, one coroutine each (default 100)
  --size BYTES       message size (default 64)
  --duration SECS    measured time, fractions allowed (default 10)
  --rate R           fixed rate: R messages/s in total, latency from the scheduled send time
                     (default: closed loop, each connection sends as soon as its echo is back)
  --warmup SECS      unmeasured time before the measurement (default 0)
  --workers N        worker threads (default: WEFT_WORKERS, else one per core)
  -h, --help         show this help";

/// The command line.
struct Options {
    addr: String,
    conns: usize,
    size: usize,
    duration: Duration,
    rate: Option<f64>,
    warmup: Duration,
    workers: Option<usize>,
}

/// What every connection coroutine needs to know; shared, read-only.
struct Plan {
    addr: SocketAddr,
    conns: usize,
    size: usize,
    warmup: Duration,
    duration: Duration,
    /// Fixed-rate mode: seconds between two sends of one connection.
    interval: Option<f64>,
}

fn main() -> ExitCode {
    let opts = match cli::parse("echo_client", USAGE, parse_args) {
        Ok(opts) => opts,
        Err(code) => return code,
    };
    match run(&opts) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("echo_client: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the benchmark and prints the report.
///
/// # Errors
///
/// An address that does not resolve, or a runtime that does not start.
fn run(opts: &Options) -> io::Result<ExitCode> {
    // Resolved here, on the main thread before the runtime starts, so no worker ever waits on a
    // name lookup; each connection then connects to a literal address.
    let addr = opts.addr.to_socket_addrs()?.next().ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidInput, format!("{} resolves to nothing", opts.addr))
    })?;
    let rt = cli::runtime(opts.workers)?;
    let plan = Arc::new(Plan {
        addr,
        conns: opts.conns,
        size: opts.size,
        warmup: opts.warmup,
        duration: opts.duration,
        interval: opts.rate.map(|rate| opts.conns as f64 / rate),
    });
    let mode = match opts.rate {
        Some(rate) => format!("fixed rate {rate} msgs/s"),
        None => "closed loop".to_owned(),
    };
    println!(
        "echo_client: {} connections to {addr}, {}-byte messages, {mode}, {:.3} s after {:.3} s \
         of warm-up, {} workers",
        plan.conns,
        plan.size,
        plan.duration.as_secs_f64(),
        plan.warmup.as_secs_f64(),
        rt.metrics().workers.len()
    );

    let latencies = Arc::new(Latencies::new(SHARDS.min(plan.conns)));
    let reports = rt.block_on(|| drive(&plan, &latencies));
    drop(rt);

    let summary = Summary::new(&plan, &reports, &latencies.merged());
    summary.print(opts.rate.unwrap_or(0.0));
    let failed = summary.mismatches > 0 || summary.errors == plan.conns;
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// The main coroutine: starts the connections, opens the gate once all have connected, and
/// collects their reports.
fn drive(plan: &Arc<Plan>, latencies: &Arc<Latencies>) -> Vec<ConnReport> {
    let gate = Arc::new(Gate::new(plan.conns));
    let connecting = Instant::now();
    let mut handles = Vec::with_capacity(plan.conns);
    let mut reports = Vec::with_capacity(plan.conns);
    for id in 0..plan.conns {
        let (plan, latencies, shared_gate) =
            (Arc::clone(plan), Arc::clone(latencies), Arc::clone(&gate));
        let spawned =
            weft::Builder::new().spawn(move || connection(id, &plan, &shared_gate, &latencies));
        match spawned {
            Ok(handle) => handles.push(handle),
            Err(e) => {
                gate.arrive(false);
                reports.push(ConnReport::failed(format!("spawn: {e}")));
            }
        }
    }
    gate.connecting.wait();
    println!(
        "connected {} of {} in {:.1} ms",
        plan.conns - gate.failed.load(Relaxed),
        plan.conns,
        connecting.elapsed().as_secs_f64() * 1e3
    );
    gate.open();
    for handle in handles {
        let report = handle.join();
        reports.push(report.unwrap_or_else(|_| ConnReport::failed("panicked".to_owned())));
    }
    reports
}

/// One connection's coroutine: connect, wait at the gate, then exchange messages until the
/// time is up.
fn connection(id: usize, plan: &Plan, gate: &Gate, latencies: &Latencies) -> ConnReport {
    let connected = TcpStream::connect_timeout(&plan.addr, CONNECT_TIMEOUT).and_then(|stream| {
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        Ok(stream)
    });
    gate.arrive(connected.is_ok());
    let start = gate.wait_open();
    let stream = match connected {
        Ok(stream) => stream,
        Err(e) => return ConnReport::failed(format!("connect: {e}")),
    };
    let mut conn =
        Conn { id, stream, sent: vec![0; plan.size], echoed: vec![0; plan.size], latencies };
    let window =
        Window { measured_from: start + plan.warmup, end: start + plan.warmup + plan.duration };
    let mut report = ConnReport::default();
    let result = match plan.interval {
        None => conn.closed_loop(&window, &mut report),
        Some(interval) => {
            // Connection `id` starts `id / conns` of an interval late, so that the sends of all
            // connections together are spread evenly.
            let phase = interval * id as f64 / plan.conns as f64;
            conn.fixed_rate(start, phase, interval, &window, &mut report)
        }
    };
    if let Err(e) = result {
        report.error = Some(format!("exchange: {e}"));
    }
    report
}

/// The measured part of the run.
struct Window {
    /// The end of the warm-up.
    measured_from: Instant,
    /// No message is sent from here on.
    end: Instant,
}

/// One connection and its buffers.
struct Conn<'a> {
    id: usize,
    stream: TcpStream,
    sent: Vec<u8>,
    echoed: Vec<u8>,
    latencies: &'a Latencies,
}

impl Conn<'_> {
    /// Closed loop: the next message goes out as soon as the last one is back.
    ///
    /// # Errors
    ///
    /// The first failed read or write; the connection ends there.
    fn closed_loop(&mut self, window: &Window, report: &mut ConnReport) -> io::Result<()> {
        for seq in 0.. {
            fill(&mut self.sent, self.id, seq);
            let sent_at = Instant::now();
            if sent_at >= window.end {
                break;
            }
            self.exchange(sent_at, window, report)?;
        }
        Ok(())
    }

    /// Fixed rate: message `seq` is due at `start + phase + seq * interval` (in seconds), and
    /// its latency runs from then.
    ///
    /// # Errors
    ///
    /// The first failed read or write; the connection ends there.
    fn fixed_rate(
        &mut self,
        start: Instant,
        phase: f64,
        interval: f64,
        window: &Window,
        report: &mut ConnReport,
    ) -> io::Result<()> {
        let due = |seq: u64| start + Duration::from_secs_f64(phase + interval * seq as f64);
        for seq in 0.. {
            let scheduled = due(seq);
            if scheduled >= window.end {
                break;
            }
            if Instant::now() >= window.end {
                // Time is up while this connection is behind: the measured slots it has not
                // sent yet are reported, not silently dropped.
                report.unsent = (seq..)
                    .map(due)
                    .take_while(|&t| t < window.end)
                    .filter(|&t| t >= window.measured_from)
                    .count() as u64;
                break;
            }
            fill(&mut self.sent, self.id, seq);
            if let Some(early) = scheduled.checked_duration_since(Instant::now()) {
                weft::sleep(early);
            }
            self.exchange(scheduled, window, report)?;
        }
        Ok(())
    }

    /// Sends the message in `sent` and checks its echo. If `since` (its latency runs from there)
    /// is in the measured window, counts it and records its latency.
    ///
    /// # Errors
    ///
    /// As [`Conn::round_trip`].
    fn exchange(
        &mut self,
        since: Instant,
        window: &Window,
        report: &mut ConnReport,
    ) -> io::Result<()> {
        self.round_trip()?;
        let latency = since.elapsed();
        report.mismatches += u64::from(self.sent != self.echoed);
        if since >= window.measured_from {
            report.msgs += 1;
            self.latencies.record(self.id, latency);
        }
        Ok(())
    }

    /// Writes `sent` and reads exactly as many bytes back into `echoed`, one [`CHUNK`] at a
    /// time.
    ///
    /// # Errors
    ///
    /// A failed write or read, `UnexpectedEof` if the server closed, `TimedOut` after
    /// [`IO_TIMEOUT`].
    fn round_trip(&mut self) -> io::Result<()> {
        for (out, back) in self.sent.chunks(CHUNK).zip(self.echoed.chunks_mut(CHUNK)) {
            self.stream.write_all(out)?;
            self.stream.read_exact(back).map_err(|e| match e.kind() {
                io::ErrorKind::UnexpectedEof => {
                    io::Error::new(e.kind(), "the server closed the connection mid-echo")
                }
                _ => e,
            })?;
        }
        Ok(())
    }
}

/// Fills `buf` with the pattern of message `seq` of connection `conn`: xorshift64* output from
/// a seed that mixes both, so no two messages of a run look alike.
fn fill(buf: &mut [u8], conn: usize, seq: u64) {
    let mut x = (conn as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ (seq + 1).wrapping_mul(0xD1B5_4A32_D192_ED03);
    for chunk in buf.chunks_mut(8) {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        let word = x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
        chunk.copy_from_slice(&word[..chunk.len()]);
    }
}

/// Holds every connection until all have connected, then lets them go at once.
struct Gate {
    /// Connections still connecting; the main coroutine waits for none.
    connecting: WaitGroup,
    /// Connections whose connect failed.
    failed: AtomicUsize,
    /// One until the gate opens; the connections wait for zero.
    closed: WaitGroup,
    /// The start of the run, set as the gate opens.
    start: OnceLock<Instant>,
}

impl Gate {
    /// A closed gate for `expected` connections.
    fn new(expected: usize) -> Gate {
        let (connecting, closed) = (WaitGroup::new(), WaitGroup::new());
        connecting.add(expected);
        closed.add(1);
        Gate { connecting, failed: AtomicUsize::new(0), closed, start: OnceLock::new() }
    }

    /// A connection is done connecting.
    fn arrive(&self, connected: bool) {
        if !connected {
            // A count only, read after `connecting` has synchronised: `Relaxed`.
            self.failed.fetch_add(1, Relaxed);
        }
        self.connecting.done();
    }

    /// Starts the run now and lets every connection go.
    fn open(&self) {
        self.start.set(Instant::now()).expect("the gate opens once");
        self.closed.done();
    }

    /// A connection waits for the gate to open; returns the start of the run.
    fn wait_open(&self) -> Instant {
        self.closed.wait();
        *self.start.get().expect("the start is set before the gate opens")
    }
}

/// The latency histograms, in [`SHARDS`] shards.
struct Latencies {
    /// Each lock is held for one `record` and never across a weft call.
    shards: Vec<Mutex<Histogram<u64>>>,
}

impl Latencies {
    /// `shards` empty histograms (at least one).
    fn new(shards: usize) -> Latencies {
        let shards = (0..shards.max(1))
            .map(|_| {
                let hist = Histogram::new_with_bounds(1, MAX_LATENCY_US, SIGFIG);
                Mutex::new(hist.expect("valid histogram bounds"))
            })
            .collect();
        Latencies { shards }
    }

    /// Records one round trip of connection `conn`, in microseconds.
    fn record(&self, conn: usize, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        let shard = &self.shards[conn % self.shards.len()];
        shard.lock().unwrap_or_else(PoisonError::into_inner).saturating_record(micros);
    }

    /// All shards added together.
    fn merged(&self) -> Histogram<u64> {
        let mut all = Histogram::new_with_bounds(1, MAX_LATENCY_US, SIGFIG).expect("valid bounds");
        for shard in &self.shards {
            let shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
            all.add(&*shard).expect("shards share the bounds");
        }
        all
    }
}

/// What one connection did.
#[derive(Default)]
struct ConnReport {
    /// Messages sent in the measured window and echoed back.
    msgs: u64,
    /// Echoes that differed from what was sent, warm-up included.
    mismatches: u64,
    /// Fixed rate: measured slots not sent because time ran out.
    unsent: u64,
    /// The error that ended the connection, if one did.
    error: Option<String>,
}

impl ConnReport {
    /// A connection that ended with `error` before measuring anything.
    fn failed(error: String) -> ConnReport {
        ConnReport { error: Some(error), ..ConnReport::default() }
    }
}

/// The totals of a run.
struct Summary {
    conns: usize,
    size: usize,
    msgs: u64,
    secs: f64,
    p50: u64,
    p99: u64,
    p999: u64,
    max: u64,
    errors: usize,
    mismatches: u64,
    unsent: u64,
    /// Error message → how many connections ended with it.
    error_kinds: BTreeMap<String, usize>,
    /// Fairness: the fewest, median and most messages one connection got through, among the
    /// connections that ended without an error; `None` if none did.
    per_conn: Option<[u64; 3]>,
}

impl Summary {
    /// Adds up the connections' reports.
    fn new(plan: &Plan, reports: &[ConnReport], latencies: &Histogram<u64>) -> Summary {
        let mut error_kinds = BTreeMap::new();
        for error in reports.iter().filter_map(|r| r.error.as_ref()) {
            *error_kinds.entry(error.clone()).or_insert(0) += 1;
        }
        let mut counts: Vec<u64> =
            reports.iter().filter(|r| r.error.is_none()).map(|r| r.msgs).collect();
        counts.sort_unstable();
        let per_conn = counts.last().map(|&most| [counts[0], counts[counts.len() / 2], most]);
        Summary {
            conns: plan.conns,
            size: plan.size,
            msgs: reports.iter().map(|r| r.msgs).sum(),
            secs: plan.duration.as_secs_f64(),
            p50: latencies.value_at_quantile(0.50),
            p99: latencies.value_at_quantile(0.99),
            p999: latencies.value_at_quantile(0.999),
            max: latencies.max(),
            errors: error_kinds.values().sum(),
            mismatches: reports.iter().map(|r| r.mismatches).sum(),
            unsent: reports.iter().map(|r| r.unsent).sum(),
            error_kinds,
            per_conn,
        }
    }

    /// Prints the report for people, then the `RESULT` line for scripts.
    fn print(&self, rate: f64) {
        let per_sec = self.msgs as f64 / self.secs;
        println!("throughput: {per_sec:.0} msgs/s ({} messages in {:.3} s)", self.msgs, self.secs);
        println!(
            "latency:    p50 {} us, p99 {} us, p99.9 {} us, max {} us",
            self.p50, self.p99, self.p999, self.max
        );
        if let Some([fewest, median, most]) = self.per_conn {
            println!("per conn:   {fewest} fewest, {median} median, {most} most messages");
        }
        println!(
            "errors:     {} connection errors, {} mismatched echoes, {} unsent",
            self.errors, self.mismatches, self.unsent
        );
        for (error, count) in &self.error_kinds {
            println!("  {count} x {error}");
        }
        println!(
            "RESULT conns={} size={} rate={rate} msgs={} secs={:.3} msgs_per_sec={per_sec:.0} \
             p50_us={} p99_us={} p999_us={} max_us={} errors={} mismatches={} unsent={}",
            self.conns,
            self.size,
            self.msgs,
            self.secs,
            self.p50,
            self.p99,
            self.p999,
            self.max,
            self.errors,
            self.mismatches,
            self.unsent
        );
    }
}

/// Parses the command line.
///
/// # Errors
///
/// `--help`, or a message naming the bad argument.
fn parse_args(args: &mut cli::Args) -> Result<Options, cli::Stop> {
    let mut opts = Options {
        addr: "127.0.0.1:9000".to_owned(),
        conns: 100,
        size: 64,
        duration: Duration::from_secs(10),
        rate: None,
        warmup: Duration::ZERO,
        workers: None,
    };
    while let Some(mut flag) = args.next()? {
        match flag.name() {
            "--addr" => opts.addr = flag.value()?,
            "--conns" => opts.conns = flag.positive()?,
            "--size" => opts.size = flag.positive()?,
            "--workers" => opts.workers = Some(flag.positive()?),
            "--duration" => opts.duration = flag.seconds(false)?,
            "--warmup" => opts.warmup = flag.seconds(true)?,
            "--rate" => {
                let rate = flag.value_as("a positive number", |text| {
                    text.parse::<f64>().ok().filter(|rate| rate.is_finite() && *rate > 0.0)
                })?;
                opts.rate = Some(rate);
            }
            _ => return Err(flag.unknown()),
        }
    }
    Ok(opts)
}
