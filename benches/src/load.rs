//! The suite's own load generator, on weft coroutines: one coroutine per connection.
//!
//! A run, in order:
//!
//! 1. Every connection connects (and, for HTTP, answers one untimed request). Timing starts
//!    only once all of them have connected or failed to: each waits at a gate, and the main
//!    coroutine opens it for all at once.
//! 2. Warm-up: messages go out but are not counted.
//! 3. The measured window, in one of two modes.
//!    - Closed loop: each connection sends a message, waits for the whole answer, records the
//!      round trip, and goes again at once. This finds a server's peak.
//!    - Fixed rate: each connection sends `rate / conns` messages a second on a fixed schedule,
//!      the schedules offset evenly so that the total is smooth. Latency runs from the time a
//!      message was *scheduled*, not from when it went out: a slow answer delays the next send,
//!      and that delay is counted too. This is the coordinated-omission correction (as in
//!      wrk2). A connection that fell behind sends its overdue messages back to back and never
//!      skips a slot; the measured slots still unsent when time is up are reported.
//! 4. The outcome: messages per second, latency percentiles (HdrHistogram, 3 significant
//!    digits), connection errors and wrong answers.
//!
//! Echo message `n` of connection `c` carries a byte pattern drawn from `(c, n)`, and every
//! echoed byte is checked, so a server that mixes up connections or drops, repeats or reorders
//! bytes shows up as mismatches. HTTP answers must be `200` with the plaintext body.
//!
//! A probe is called at the start and at the end of the measured window, so the runner can read
//! the server's CPU time over exactly that window.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use weft::net::http::Client;
use weft::net::TcpStream;
use weft::sync::WaitGroup;

/// How long a connect may take before it counts as a connection error.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long one read or write may wait. A slower answer is a connection error, so a stalled
/// server ends the run instead of hanging it.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// An echo message is written and read back in pieces of at most this size, less than any
/// socket buffer holds: writing a whole large message before reading could deadlock against a
/// server that echoes as it reads.
const CHUNK: usize = 32 * 1024;

/// Histograms are shared by connections with the same index modulo this; one per connection
/// would cost about 190 KB each. A shard's lock is held for one `record`.
const SHARDS: usize = 64;

/// The largest latency told apart, in microseconds: one hour.
const MAX_LATENCY_US: u64 = 3_600_000_000;

/// The path every HTTP server answers with its plaintext body.
pub const PLAINTEXT_PATH: &str = "/plaintext";

/// What each server answers [`PLAINTEXT_PATH`] with.
pub const PLAINTEXT_BODY: &[u8] = b"Hello, World!";

/// What one message is.
#[derive(Clone, Copy, Debug)]
pub enum Work {
    /// `size` bytes, echoed back.
    Echo {
        /// Bytes per message.
        size: usize,
    },
    /// `GET /plaintext` through weft's HTTP client, a client (and so a connection) per
    /// coroutine.
    Http,
}

/// A run of the load generator.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The server.
    pub addr: SocketAddr,
    /// Connections, one coroutine each.
    pub conns: usize,
    /// What each message is.
    pub work: Work,
    /// Unmeasured time before the window.
    pub warmup: Duration,
    /// The measured window.
    pub duration: Duration,
    /// Fixed rate, messages per second in all; `None` is closed loop.
    pub rate: Option<f64>,
}

/// Where the main coroutine is: the probe is called with each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// The measured window starts.
    Start,
    /// The measured window ends.
    End,
}

/// Latency percentiles of a run, in microseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// The largest.
    pub max: f64,
}

impl Latency {
    /// The percentiles and their labels, in order, for tables and charts.
    pub fn points(&self) -> [(&'static str, f64); 5] {
        [
            ("p50", self.p50),
            ("p90", self.p90),
            ("p99", self.p99),
            ("p99.9", self.p999),
            ("max", self.max),
        ]
    }
}

/// What a run measured.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    /// Messages answered in the window.
    pub msgs: u64,
    /// The window's length, in seconds.
    pub secs: f64,
    /// Latency of the messages of the window.
    pub latency: Latency,
    /// Connections that ended with an error.
    pub errors: usize,
    /// Wrong answers: echoes that differ from what was sent, HTTP answers that are not `200`
    /// with the plaintext body.
    pub mismatches: u64,
    /// Fixed rate: measured slots that time ran out for.
    pub unsent: u64,
    /// Error message → how many connections ended with it.
    pub error_kinds: BTreeMap<String, usize>,
}

impl Outcome {
    /// Messages per second over the window.
    pub fn per_sec(&self) -> f64 {
        if self.secs > 0.0 {
            self.msgs as f64 / self.secs
        } else {
            0.0
        }
    }

    /// A line naming what went wrong, or `None` if nothing did.
    pub fn trouble(&self) -> Option<String> {
        if self.errors == 0 && self.mismatches == 0 {
            return None;
        }
        let kinds: Vec<String> =
            self.error_kinds.iter().map(|(kind, n)| format!("{n} × {kind}")).collect();
        Some(format!(
            "{} connection errors ({}), {} wrong answers",
            self.errors,
            kinds.join("; "),
            self.mismatches
        ))
    }
}

/// A function called at each [`Phase`] of a run.
pub type Probe = Arc<dyn Fn(Phase) + Send + Sync>;

/// Runs `plan` on `rt`, calling `probe` as the measured window starts and ends.
///
/// The probe runs on a thread of its own that sleeps until each edge of the window, not on a
/// coroutine: with thousands of connections busy on one worker, a coroutine's timer can fire
/// a long way behind them in the run queue, and the window's edges must be on time.
pub fn run(rt: &weft::Runtime, plan: &Plan, probe: Probe) -> Outcome {
    let plan = Arc::new(plan.clone());
    let latencies = Arc::new(Latencies::new(SHARDS.min(plan.conns)));
    let (start_tx, start_rx) = std::sync::mpsc::channel::<Instant>();
    let timer = {
        let plan = Arc::clone(&plan);
        std::thread::spawn(move || {
            // No start: the run ended before its gate opened, and there is no window.
            let Ok(start) = start_rx.recv() else { return };
            let window = Window::new(start, &plan);
            std::thread::sleep(window.measured_from.saturating_duration_since(Instant::now()));
            probe(Phase::Start);
            std::thread::sleep(window.end.saturating_duration_since(Instant::now()));
            probe(Phase::End);
        })
    };
    let reports = rt.block_on({
        let (plan, latencies) = (Arc::clone(&plan), Arc::clone(&latencies));
        move || drive(&plan, &latencies, &start_tx)
    });
    timer.join().expect("the probe thread does not panic");
    summarize(&plan, &reports, &latencies.merged())
}

/// The main coroutine: starts the connections, opens the gate once all have connected, tells
/// the probe thread when, and collects the reports.
fn drive(
    plan: &Arc<Plan>,
    latencies: &Arc<Latencies>,
    started: &std::sync::mpsc::Sender<Instant>,
) -> Vec<ConnReport> {
    let gate = Arc::new(Gate::new(plan.conns));
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
    // The probe thread waits for this; it outlives the run, so the send cannot fail.
    let _ = started.send(gate.open());
    for handle in handles {
        let report = handle.join();
        reports.push(report.unwrap_or_else(|_| ConnReport::failed("panicked".to_owned())));
    }
    reports
}

fn sleep_until(t: Instant) {
    if let Some(left) = t.checked_duration_since(Instant::now()) {
        weft::sleep(left);
    }
}

/// One connection's coroutine: connect, wait at the gate, then exchange messages until the
/// time is up.
fn connection(id: usize, plan: &Plan, gate: &Gate, latencies: &Latencies) -> ConnReport {
    let connected = Peer::connect(id, plan);
    gate.arrive(connected.is_ok());
    let start = gate.wait_open();
    let mut peer = match connected {
        Ok(peer) => peer,
        Err(e) => return ConnReport::failed(format!("connect: {}", e.kind())),
    };
    let window = Window::new(start, plan);
    let mut report = ConnReport::default();
    let result = match plan.rate {
        None => peer.closed_loop(&window, latencies, &mut report),
        Some(rate) => {
            let interval = plan.conns as f64 / rate;
            // Connection `id` starts `id / conns` of an interval late, so that the sends of
            // all connections together are spread evenly.
            let phase = interval * id as f64 / plan.conns as f64;
            peer.fixed_rate(start, phase, interval, &window, latencies, &mut report)
        }
    };
    if let Err(e) = result {
        report.error = Some(format!("exchange: {}", e.kind()));
    }
    report
}

/// The measured part of a run.
struct Window {
    /// The end of the warm-up.
    measured_from: Instant,
    /// No message is sent from here on.
    end: Instant,
}

impl Window {
    fn new(start: Instant, plan: &Plan) -> Window {
        Window { measured_from: start + plan.warmup, end: start + plan.warmup + plan.duration }
    }
}

/// One connection's side of the exchange.
enum Peer {
    Echo { id: usize, stream: TcpStream, sent: Vec<u8>, echoed: Vec<u8> },
    Http { client: Client, url: String },
}

impl Peer {
    /// Connects; for HTTP, through one untimed request, which also opens the connection.
    fn connect(id: usize, plan: &Plan) -> io::Result<Peer> {
        match plan.work {
            Work::Echo { size } => {
                let stream = TcpStream::connect_timeout(&plan.addr, CONNECT_TIMEOUT)?;
                stream.set_nodelay(true)?;
                stream.set_read_timeout(Some(IO_TIMEOUT))?;
                stream.set_write_timeout(Some(IO_TIMEOUT))?;
                Ok(Peer::Echo { id, stream, sent: vec![0; size], echoed: vec![0; size] })
            }
            Work::Http => {
                let client = Client::new()
                    .connect_timeout(CONNECT_TIMEOUT)
                    .timeout(IO_TIMEOUT)
                    .max_idle_per_host(1);
                let mut peer =
                    Peer::Http { client, url: format!("http://{}{PLAINTEXT_PATH}", plan.addr) };
                if !peer.exchange(0)? {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, "wrong answer"));
                }
                Ok(peer)
            }
        }
    }

    /// Sends message `seq` and waits for the whole answer; returns whether it was right.
    fn exchange(&mut self, seq: u64) -> io::Result<bool> {
        match self {
            Peer::Echo { id, stream, sent, echoed } => {
                fill(sent, *id, seq);
                for (out, back) in sent.chunks(CHUNK).zip(echoed.chunks_mut(CHUNK)) {
                    stream.write_all(out)?;
                    stream.read_exact(back)?;
                }
                Ok(sent == echoed)
            }
            Peer::Http { client, url } => {
                let rsp = client.get(url)?;
                Ok(rsp.status() == 200 && rsp.body() == PLAINTEXT_BODY)
            }
        }
    }

    /// Closed loop: the next message goes out as soon as the last one is back.
    fn closed_loop(
        &mut self,
        window: &Window,
        latencies: &Latencies,
        report: &mut ConnReport,
    ) -> io::Result<()> {
        for seq in 0.. {
            let sent_at = Instant::now();
            if sent_at >= window.end {
                break;
            }
            self.timed(seq, sent_at, window, latencies, report)?;
        }
        Ok(())
    }

    /// Fixed rate: message `seq` is due at `start + phase + seq * interval` (seconds), and its
    /// latency runs from then.
    fn fixed_rate(
        &mut self,
        start: Instant,
        phase: f64,
        interval: f64,
        window: &Window,
        latencies: &Latencies,
        report: &mut ConnReport,
    ) -> io::Result<()> {
        let due = |seq: u64| start + Duration::from_secs_f64(phase + interval * seq as f64);
        for seq in 0.. {
            let scheduled = due(seq);
            if scheduled >= window.end {
                break;
            }
            if Instant::now() >= window.end {
                // Time is up while this connection is behind: its measured slots not sent yet
                // are reported, not silently dropped.
                report.unsent = (seq..)
                    .map(due)
                    .take_while(|&t| t < window.end)
                    .filter(|&t| t >= window.measured_from)
                    .count() as u64;
                break;
            }
            sleep_until(scheduled);
            self.timed(seq, scheduled, window, latencies, report)?;
        }
        Ok(())
    }

    /// Exchanges message `seq`; if `since` (its latency runs from there) is in the measured
    /// window, counts it and records its latency.
    fn timed(
        &mut self,
        seq: u64,
        since: Instant,
        window: &Window,
        latencies: &Latencies,
        report: &mut ConnReport,
    ) -> io::Result<()> {
        let right = self.exchange(seq)?;
        let latency = since.elapsed();
        report.mismatches += u64::from(!right);
        if since >= window.measured_from {
            report.msgs += 1;
            let id = match self {
                Peer::Echo { id, .. } => *id,
                Peer::Http { .. } => seq as usize,
            };
            latencies.record(id, latency);
        }
        Ok(())
    }
}

/// Fills `buf` with the pattern of message `seq` of connection `conn`: xorshift64* output from
/// a seed that mixes both, so no two messages of a run look alike.
pub fn fill(buf: &mut [u8], conn: usize, seq: u64) {
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
    fn new(expected: usize) -> Gate {
        let (connecting, closed) = (WaitGroup::new(), WaitGroup::new());
        connecting.add(expected);
        closed.add(1);
        Gate { connecting, failed: AtomicUsize::new(0), closed, start: OnceLock::new() }
    }

    fn arrive(&self, connected: bool) {
        if !connected {
            // A count only, read after `connecting` has synchronised: `Relaxed`.
            self.failed.fetch_add(1, Relaxed);
        }
        self.connecting.done();
    }

    /// Starts the run now and lets every connection go; returns the start.
    fn open(&self) -> Instant {
        let now = Instant::now();
        self.start.set(now).expect("the gate opens once");
        self.closed.done();
        now
    }

    fn wait_open(&self) -> Instant {
        self.closed.wait();
        *self.start.get().expect("the start is set before the gate opens")
    }
}

/// The latency histograms, in shards.
struct Latencies {
    /// Each lock is held for one `record` and never across a weft call.
    shards: Vec<Mutex<Histogram<u64>>>,
}

impl Latencies {
    fn new(shards: usize) -> Latencies {
        let shards = (0..shards.max(1)).map(|_| Mutex::new(histogram())).collect();
        Latencies { shards }
    }

    fn record(&self, key: usize, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        let shard = &self.shards[key % self.shards.len()];
        shard.lock().unwrap_or_else(PoisonError::into_inner).saturating_record(micros);
    }

    fn merged(&self) -> Histogram<u64> {
        let mut all = histogram();
        for shard in &self.shards {
            let shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
            all.add(&*shard).expect("shards share the bounds");
        }
        all
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid histogram bounds")
}

/// What one connection did.
#[derive(Default)]
struct ConnReport {
    msgs: u64,
    mismatches: u64,
    unsent: u64,
    error: Option<String>,
}

impl ConnReport {
    fn failed(error: String) -> ConnReport {
        ConnReport { error: Some(error), ..ConnReport::default() }
    }
}

fn summarize(plan: &Plan, reports: &[ConnReport], hist: &Histogram<u64>) -> Outcome {
    let mut error_kinds = BTreeMap::new();
    for error in reports.iter().filter_map(|r| r.error.as_ref()) {
        *error_kinds.entry(error.clone()).or_insert(0) += 1;
    }
    let at = |q: f64| hist.value_at_quantile(q) as f64;
    Outcome {
        msgs: reports.iter().map(|r| r.msgs).sum(),
        secs: plan.duration.as_secs_f64(),
        latency: Latency {
            p50: at(0.5),
            p90: at(0.9),
            p99: at(0.99),
            p999: at(0.999),
            max: hist.max() as f64,
        },
        errors: error_kinds.values().sum(),
        mismatches: reports.iter().map(|r| r.mismatches).sum(),
        unsent: reports.iter().map(|r| r.unsent).sum(),
        error_kinds,
    }
}
