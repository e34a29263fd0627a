//! Integrity: an echo over real loopback TCP that loses, duplicates, reorders or corrupts no
//! byte, with both ends weft coroutines on one multi-worker runtime.
//!
//! `CONNECTIONS` clients connect at once to a weft echo server and send framed messages of
//! seeded random sizes (1 B to 16 KiB, spread evenly over the powers of two, both ends
//! included). A frame is
//!
//! ```text
//!   +---------+---------+---------+------------------+
//!   | seq u32 | len u32 | crc u32 | payload: len B   |     (little-endian header)
//!   +---------+---------+---------+------------------+
//! ```
//!
//! 1. The server reads each frame exactly, checks the CRC-32 of the payload against the header
//!    (client → server), and writes the frame back.
//! 2. The client checks the echoed header (seq and len as sent) and the CRC of the echoed
//!    payload (server → client). Even connections go in lock-step (write a frame, read it
//!    back); odd ones are pipelined: a writer coroutine and a reader coroutine share the
//!    stream (`&TcpStream`), so a read and a write park on one socket at once.
//! 3. After its last frame a client shuts down its write half; the server sees end-of-file at
//!    a frame boundary and closes; the client then reads `Ok(0)`: nothing extra came back.
//! 4. Once everything is dropped, the process's open fds return to the baseline, first with
//!    the runtime still up (no socket leaked), then after it is dropped.
//!
//! The runtime's io counters are printed, not asserted: with a reader and a writer on one
//! socket and several workers, an edge harvested by one worker just before a read on another
//! consumed the data can wake a later park for nothing, which `io_spurious` rightly counts
//! (`net_close` asserts zero where no data flows).
//!
//! Sizes: 1,000 connections always. Messages per connection: 200 under `WEFT_STRESS=1`;
//! otherwise `CI_MESSAGES_DEBUG` in a debug build and `CI_MESSAGES_RELEASE` in a release build,
//! where the CRC and the copies cost a tenth as much. Runs in both scheduling modes; the two
//! tests hold `support::serial()` since they count the process's fds.

mod support;

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::{Mode, Rng, Watchdog};
use weft::net::{TcpListener, TcpStream};

/// Clients connected at once.
const CONNECTIONS: usize = 1_000;
/// Messages per connection under `WEFT_STRESS=1`.
const FULL_MESSAGES: usize = 200;
/// Messages per connection in CI, debug build (1,000 × 60 × 3.3 KiB on average = 200 MiB each
/// way, about 8 s).
const CI_MESSAGES_DEBUG: usize = 60;
/// Messages per connection in CI, release build (about 5 s).
const CI_MESSAGES_RELEASE: usize = 200;
/// The largest payload.
const MAX_PAYLOAD: usize = 16 * 1024;
/// Bytes of a frame header: seq, len, crc.
const HEADER: usize = 12;
/// Workers of the runtime under test: more than the 2 cores CI has, so workers are also
/// preempted in the middle of their I/O.
const WORKERS: usize = 4;
/// How long the fds get to return to the baseline after the last drop.
const FD_SETTLE: Duration = Duration::from_secs(10);
/// At most this many error messages are kept for the report.
const KEPT_ERRORS: usize = 10;

// ---------------------------------------------------------------------------------------------
// CRC-32
// ---------------------------------------------------------------------------------------------

/// The CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320) byte table, built at compile time.
const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut bit = 0;
        while bit < 8 {
            c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
            bit += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

/// CRC-32 of `bytes`, one table lookup per byte.
fn crc32(bytes: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in bytes {
        c = CRC_TABLE[((c ^ u32::from(b)) & 0xFF) as usize] ^ (c >> 8);
    }
    !c
}

#[test]
fn crc32_matches_the_standard_check_value() {
    // The catalogue's check value for CRC-32/ISO-HDLC.
    assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    assert_eq!(crc32(b""), 0);
    // A flipped bit changes it.
    assert_ne!(crc32(b"123456788"), 0xCBF4_3926);
}

// ---------------------------------------------------------------------------------------------
// Frames
// ---------------------------------------------------------------------------------------------

/// A frame's header fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Header {
    seq: u32,
    len: u32,
    crc: u32,
}

impl Header {
    fn encode(self, out: &mut [u8]) {
        out[0..4].copy_from_slice(&self.seq.to_le_bytes());
        out[4..8].copy_from_slice(&self.len.to_le_bytes());
        out[8..12].copy_from_slice(&self.crc.to_le_bytes());
    }

    fn decode(bytes: &[u8]) -> Header {
        let word = |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().expect("4 bytes"));
        Header { seq: word(0), len: word(4), crc: word(8) }
    }
}

/// A payload size in `1..=MAX_PAYLOAD`: a power-of-two band picked uniformly, then a size
/// uniformly inside it, so small frames (header and payload split across reads) are as
/// common as large ones (a frame spread over several segments).
fn payload_size(rng: &mut Rng) -> usize {
    let band = rng.below(15); // 2^0 ..= 2^14 = MAX_PAYLOAD
    let lo = 1u64 << band;
    let hi = ((lo << 1) - 1).min(MAX_PAYLOAD as u64);
    rng.range(lo, hi) as usize
}

/// Writes message `seq` (seeded size and bytes) as a frame into `frame`; returns its header.
fn make_frame(rng: &mut Rng, seq: u32, frame: &mut Vec<u8>) -> Header {
    let len = payload_size(rng);
    frame.clear();
    frame.resize(HEADER + len, 0);
    for chunk in frame[HEADER..].chunks_mut(8) {
        let word = rng.next_u64().to_le_bytes();
        chunk.copy_from_slice(&word[..chunk.len()]);
    }
    let header = Header { seq, len: len as u32, crc: crc32(&frame[HEADER..]) };
    header.encode(&mut frame[..HEADER]);
    header
}

/// Fills `buf`, or returns `Ok(false)` on an end-of-file before its first byte.
fn read_exact_or_eof(stream: &mut &TcpStream, buf: &mut [u8]) -> io::Result<bool> {
    let mut filled = 0;
    while filled < buf.len() {
        match stream.read(&mut buf[filled..]) {
            Ok(0) if filled == 0 => return Ok(false),
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("end-of-file after {filled} of {} header bytes", buf.len()),
                ))
            }
            Ok(n) => filled += n,
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Reads one echoed frame into `buf` and checks it against `want()`, which is asked once the
/// header is in: header equal, CRC of the payload equal to the header's.
fn read_echo(
    stream: &mut &TcpStream,
    buf: &mut [u8],
    want: impl FnOnce() -> Option<Header>,
) -> Result<(), Failure> {
    if !read_exact_or_eof(stream, &mut buf[..HEADER]).map_err(|e| Failure::io("header", e))? {
        return Err(Failure::Io("end-of-file where an echo was due".into()));
    }
    let got = Header::decode(&buf[..HEADER]);
    let Some(want) = want() else {
        return Err(Failure::Mismatch(format!("echo {got:?} of a frame that was never sent")));
    };
    if got != want {
        return Err(Failure::Mismatch(format!("echo header {got:?}, sent {want:?}")));
    }
    let payload = &mut buf[HEADER..HEADER + want.len as usize];
    stream.read_exact(payload).map_err(|e| Failure::io("payload", e))?;
    let crc = crc32(payload);
    if crc != want.crc {
        return Err(Failure::Mismatch(format!(
            "echo {} ({} B): payload CRC {crc:#010x}, sent {:#010x}",
            want.seq, want.len, want.crc
        )));
    }
    Ok(())
}

/// Why a connection failed.
enum Failure {
    /// The bytes came back different: counted as a mismatch.
    Mismatch(String),
    /// An I/O error or a protocol breach.
    Io(String),
}

impl Failure {
    fn io(what: &str, e: io::Error) -> Failure {
        Failure::Io(format!("{what}: {:?}: {e}", e.kind()))
    }
}

// ---------------------------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------------------------

/// What both ends count. The first two are also progress counters of the watchdog's dump.
struct Stats {
    accepted: Arc<AtomicUsize>,
    /// Echoes the clients verified.
    client_frames: Arc<AtomicUsize>,
    /// Frames whose CRC the server verified.
    server_frames: AtomicUsize,
    /// Connections the server saw end cleanly at a frame boundary.
    server_eofs: AtomicUsize,
    /// Clients that read the final `Ok(0)`.
    client_done: AtomicUsize,
    mismatches: AtomicUsize,
    failures: AtomicUsize,
    errors: Mutex<Vec<String>>,
}

impl Stats {
    fn new(wd: &Watchdog, label: &str) -> Stats {
        Stats {
            accepted: wd.counter(&format!("{label}: accepted")),
            client_frames: wd.counter(&format!("{label}: echoes verified")),
            server_frames: AtomicUsize::new(0),
            server_eofs: AtomicUsize::new(0),
            client_done: AtomicUsize::new(0),
            mismatches: AtomicUsize::new(0),
            failures: AtomicUsize::new(0),
            errors: Mutex::new(Vec::new()),
        }
    }

    fn fail(&self, who: String, failure: Failure) {
        let text = match failure {
            Failure::Mismatch(text) => {
                self.mismatches.fetch_add(1, Ordering::SeqCst);
                format!("{who}: MISMATCH: {text}")
            }
            Failure::Io(text) => {
                self.failures.fetch_add(1, Ordering::SeqCst);
                format!("{who}: {text}")
            }
        };
        let mut errors = self.errors.lock().unwrap_or_else(|e| e.into_inner());
        if errors.len() < KEPT_ERRORS {
            errors.push(text);
        }
    }
}

/// Server side of one connection: verify and echo frames until end-of-file.
fn serve(stream: TcpStream, stats: &Stats) -> Result<(), Failure> {
    let mut stream = &stream;
    let mut buf = vec![0u8; HEADER + MAX_PAYLOAD];
    loop {
        if !read_exact_or_eof(&mut stream, &mut buf[..HEADER])
            .map_err(|e| Failure::io("server header", e))?
        {
            stats.server_eofs.fetch_add(1, Ordering::SeqCst);
            return Ok(());
        }
        let header = Header::decode(&buf[..HEADER]);
        let len = header.len as usize;
        if len == 0 || len > MAX_PAYLOAD {
            return Err(Failure::Mismatch(format!("server got a header {header:?}")));
        }
        let frame = &mut buf[..HEADER + len];
        stream.read_exact(&mut frame[HEADER..]).map_err(|e| Failure::io("server payload", e))?;
        let crc = crc32(&frame[HEADER..]);
        if crc != header.crc {
            return Err(Failure::Mismatch(format!(
                "server: frame {} ({len} B): payload CRC {crc:#010x}, header says {:#010x}",
                header.seq, header.crc
            )));
        }
        stats.server_frames.fetch_add(1, Ordering::SeqCst);
        stream.write_all(frame).map_err(|e| Failure::io("server echo", e))?;
    }
}

/// After the last frame: shut down the write half and expect the server's end-of-file.
fn finish(stream: &TcpStream, stats: &Stats) -> Result<(), Failure> {
    stream.shutdown(Shutdown::Write).map_err(|e| Failure::io("shutdown(Write)", e))?;
    let mut extra = [0u8; 64];
    match (&mut &*stream).read(&mut extra) {
        Ok(0) => {
            stats.client_done.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
        Ok(n) => Err(Failure::Mismatch(format!("{n} bytes came back after the last echo"))),
        Err(e) => Err(Failure::io("read after shutdown(Write)", e)),
    }
}

/// A lock-step client: write a frame, read its echo, `messages` times.
fn client_lockstep(
    addr: SocketAddr,
    messages: usize,
    mut rng: Rng,
    stats: &Stats,
) -> Result<(), Failure> {
    let stream = TcpStream::connect(addr).map_err(|e| Failure::io("connect", e))?;
    let mut frame = Vec::with_capacity(HEADER + MAX_PAYLOAD);
    let mut buf = vec![0u8; HEADER + MAX_PAYLOAD];
    for seq in 0..messages as u32 {
        let header = make_frame(&mut rng, seq, &mut frame);
        (&stream).write_all(&frame).map_err(|e| Failure::io("write", e))?;
        read_echo(&mut &stream, &mut buf, || Some(header))?;
        stats.client_frames.fetch_add(1, Ordering::SeqCst);
    }
    finish(&stream, stats)
}

/// A pipelined client: a writer coroutine sends every frame while this coroutine reads the
/// echoes, both on one `TcpStream`. The writer queues each header before it writes the frame,
/// so once an echo's header has come in, the reader finds the header that was sent.
fn client_pipelined(
    addr: SocketAddr,
    messages: usize,
    mut rng: Rng,
    stats: &Arc<Stats>,
) -> Result<(), Failure> {
    let stream = Arc::new(TcpStream::connect(addr).map_err(|e| Failure::io("connect", e))?);
    let sent: Arc<Mutex<VecDeque<Header>>> = Arc::default();
    let writer = {
        let (stream, sent) = (Arc::clone(&stream), Arc::clone(&sent));
        let mut rng = rng.fork();
        weft::spawn(move || -> Result<(), Failure> {
            let mut frame = Vec::with_capacity(HEADER + MAX_PAYLOAD);
            for seq in 0..messages as u32 {
                let header = make_frame(&mut rng, seq, &mut frame);
                sent.lock().unwrap_or_else(|e| e.into_inner()).push_back(header);
                (&*stream).write_all(&frame).map_err(|e| Failure::io("pipelined write", e))?;
            }
            Ok(())
        })
    };
    let mut buf = vec![0u8; HEADER + MAX_PAYLOAD];
    let mut result = Ok(());
    for _ in 0..messages {
        let want = || sent.lock().unwrap_or_else(|e| e.into_inner()).pop_front();
        if let Err(failure) = read_echo(&mut &*stream, &mut buf, want) {
            // Unblock a writer parked on a full socket: the read side has given up.
            let _ = stream.shutdown(Shutdown::Both);
            result = Err(failure);
            break;
        }
        stats.client_frames.fetch_add(1, Ordering::SeqCst);
    }
    // The reader's failure comes first: it is the cause of the writer's, if both failed.
    let written = writer.join();
    result?;
    match written {
        Ok(Ok(())) => finish(&stream, stats),
        Ok(Err(failure)) => Err(failure),
        Err(_) => Err(Failure::Io("the writer coroutine panicked".into())),
    }
}

/// Runs the echo with `connections` clients of `messages` frames each on `rt`; returns the
/// stats once every coroutine has finished and every socket is dropped.
fn run_echo(
    rt: &weft::Runtime,
    stats: Stats,
    connections: usize,
    messages: usize,
    mut rng: Rng,
) -> Arc<Stats> {
    let stats = Arc::new(stats);
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the echo server");
    let addr = listener.local_addr().expect("local_addr");
    rt.block_on(|| {
        let server = {
            let stats = Arc::clone(&stats);
            weft::spawn(move || {
                let mut handlers = Vec::with_capacity(connections);
                for _ in 0..connections {
                    let (stream, _) = match listener.accept() {
                        Ok(accepted) => accepted,
                        Err(e) => {
                            stats.fail("accept".into(), Failure::io("accept", e));
                            break;
                        }
                    };
                    stats.accepted.fetch_add(1, Ordering::SeqCst);
                    let stats = Arc::clone(&stats);
                    handlers.push(weft::spawn(move || {
                        if let Err(failure) = serve(stream, &stats) {
                            stats.fail("server".into(), failure);
                        }
                    }));
                }
                drop(listener);
                for handler in handlers {
                    if handler.join().is_err() {
                        stats.fail("server".into(), Failure::Io("a handler panicked".into()));
                    }
                }
            })
        };
        let clients: Vec<_> = (0..connections)
            .map(|i| {
                let (stats, rng) = (Arc::clone(&stats), rng.fork());
                weft::spawn(move || {
                    let result = if i % 2 == 0 {
                        client_lockstep(addr, messages, rng, &stats)
                    } else {
                        client_pipelined(addr, messages, rng, &stats)
                    };
                    if let Err(failure) = result {
                        stats.fail(format!("client {i}"), failure);
                    }
                })
            })
            .collect();
        for (i, client) in clients.into_iter().enumerate() {
            if client.join().is_err() {
                stats.fail(format!("client {i}"), Failure::Io("panicked".into()));
            }
        }
        if server.join().is_err() {
            stats.fail("server".into(), Failure::Io("the acceptor panicked".into()));
        }
    });
    stats
}

fn stress_echo_integrity(name: &str, mode: Mode) {
    let _serial = support::serial();
    let messages = if support::stress() {
        FULL_MESSAGES
    } else if cfg!(debug_assertions) {
        CI_MESSAGES_DEBUG
    } else {
        CI_MESSAGES_RELEASE
    };
    let wd = support::watchdog(name, support::budget(Duration::from_secs(120)));
    let seed = wd.seed();
    let mut rng = Rng::new(seed);
    let fds_before_runtime = support::open_fds();
    let rt = Arc::new(support::builder(WORKERS, mode).build().expect("build a runtime"));
    wd.watch_runtime("rt", &rt);

    // Warm up: lazily created process state (the reactor's slot table, thread caches) is then
    // part of the baseline.
    wd.note("warm-up");
    let warm = run_echo(&rt, Stats::new(&wd, "warm-up"), 4, 4, rng.fork());
    assert_eq!(warm.client_done.load(Ordering::SeqCst), 4, "warm-up: {:?}", warm.errors);
    drop(warm);
    let baseline = support::open_fds();

    wd.note(format!("{CONNECTIONS} connections x {messages} messages"));
    let t0 = Instant::now();
    let stats = run_echo(&rt, Stats::new(&wd, "run"), CONNECTIONS, messages, rng.fork());
    let took = t0.elapsed();
    let errors = stats.errors.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let seed = format!("WEFT_SEED={seed}");
    let total = CONNECTIONS * messages;
    assert_eq!(
        stats.mismatches.load(Ordering::SeqCst),
        0,
        "{mode:?}: corrupted or misordered frames ({seed}); first errors: {errors:#?}"
    );
    assert_eq!(
        stats.failures.load(Ordering::SeqCst),
        0,
        "{mode:?}: failed connections ({seed}); first errors: {errors:#?}"
    );
    assert_eq!(stats.accepted.load(Ordering::SeqCst), CONNECTIONS, "{mode:?}: accepted");
    assert_eq!(stats.server_frames.load(Ordering::SeqCst), total, "{mode:?}: frames verified");
    assert_eq!(stats.client_frames.load(Ordering::SeqCst), total, "{mode:?}: echoes verified");
    assert_eq!(stats.server_eofs.load(Ordering::SeqCst), CONNECTIONS, "{mode:?}: server EOFs");
    assert_eq!(stats.client_done.load(Ordering::SeqCst), CONNECTIONS, "{mode:?}: client EOFs");

    wd.note("waiting for the fds to return to the baseline (runtime up)");
    if let Err(leak) = support::fds_return_to(&baseline, FD_SETTLE) {
        panic!("{mode:?}: after every socket was dropped, with the runtime up: {leak}");
    }
    let metrics = rt.metrics();
    let io_waits = support::sum_workers(&metrics, |w| w.io_waits);
    let io_spurious = support::sum_workers(&metrics, |w| w.io_spurious);
    drop(rt);
    wd.note("waiting for the fds to return to the baseline (runtime dropped)");
    if let Err(leak) = support::fds_return_to(&fds_before_runtime, FD_SETTLE) {
        panic!("{mode:?}: after the runtime was dropped: {leak}");
    }
    println!(
        "[{name}] {CONNECTIONS} connections x {messages} messages in {took:?}; io_waits \
         {io_waits}, io_spurious {io_spurious}; {} fds at baseline",
        baseline.len()
    );
}

#[test]
fn stress_echo_integrity_pinned() {
    stress_echo_integrity("stress_echo_integrity_pinned", Mode::Pinned);
}

#[test]
fn stress_echo_integrity_migrating() {
    stress_echo_integrity("stress_echo_integrity_migrating", Mode::Migrating);
}
