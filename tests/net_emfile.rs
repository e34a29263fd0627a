//! EMFILE: an accept loop that has run out of file descriptors neither spins nor stops; it
//! serves again as soon as fds are free.
//!
//! The server is a child process (`support::spawn_child`), so that it can lower its own
//! `RLIMIT_NOFILE` and the parent can watch its CPU time:
//!
//! 1. The child builds a weft runtime, binds a listener, lowers its soft fd limit to `LIMIT`,
//!    and prints its address and how many more fds it can open (`CAPACITY`). It then runs an
//!    echo server: an accept loop that retries every error, and a handler per connection that
//!    echoes until end-of-file. It prints a line for each accepted connection and for the first
//!    EMFILE of each burst.
//! 2. The parent (plain std sockets) opens `CAPACITY + EXTRA` connections and sends one byte on
//!    each; it keeps them all open. The child accepts until it runs out of fds and says EMFILE;
//!    the parent checks that exactly the connections the child accepted got their echo, and
//!    that some wait in the backlog.
//! 3. Starved, the child must idle: its CPU time (utime + stime from `/proc/<pid>/stat`) over
//!    `CPU_WINDOW` stays under `MAX_CPU_SHARE` of a core, and nothing more is served.
//! 4. The parent closes `CLOSE` of the served connections (a seeded choice). Their handlers see end-of-file and
//!    drop their streams; the accept loop gets fds again: `CLOSE` connections that were waiting
//!    in the backlog get their echo within `RECOVERY_LIMIT`, and one of them does a further
//!    round trip.
//! 5. The parent closes everything and the child's stdin; the child prints its totals and
//!    exits 0. Its EMFILE errors over the whole run are few (`MAX_EMFILE_ERRORS`): the accept
//!    loop retried through a backoff, not in a spin; no other accept error occurred.

mod support;

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::{Mode, Rng};
use weft::net::{TcpListener, TcpStream};

const TEST: &str = "emfile_accept_loop_backs_off_and_recovers";
/// The child's scenario name.
const SCENARIO: &str = "emfile-server";
/// The child's soft `RLIMIT_NOFILE`.
const LIMIT: u64 = 64;
/// Connections beyond the child's capacity that the parent opens: they wait in the backlog.
const EXTRA: usize = 32;
/// Served connections the parent closes to free fds in the child.
const CLOSE: usize = 8;
/// How long the child's CPU time is measured while it is starved.
const CPU_WINDOW: Duration = Duration::from_secs(1);
/// The most CPU the starved child may use, as a share of one core.
const MAX_CPU_SHARE: f64 = 0.10;
/// How soon after fds are freed waiting connections must be served: weft's accept backoff
/// tops out at 1 s, so a retry comes within about a second; the rest is slack for a loaded
/// machine.
const RECOVERY_LIMIT: Duration = Duration::from_secs(3);
/// The most EMFILE errors the child's accept loop may see over the whole test (a few seconds
/// of starvation). A backoff of 5 ms doubling to 1 s gives about a dozen; a loop that retried
/// at once would see hundreds of thousands.
const MAX_EMFILE_ERRORS: u128 = 100;
/// Line prefixes of the child's reports.
const ADDR: &str = "ADDR ";
const CAPACITY: &str = "CAPACITY ";
const ACCEPTED: &str = "ACCEPTED ";
const EMFILE: &str = "EMFILE ";
const TOTALS: &str = "TOTALS ";
/// How long the parent waits for any one line from the child.
const LINE_TIMEOUT: Duration = Duration::from_secs(60);
/// The child's own watchdog: longer than the parent needs it.
const CHILD_BUDGET: Duration = Duration::from_secs(150);

// ---------------------------------------------------------------------------------------------
// The server (child process)
// ---------------------------------------------------------------------------------------------

/// Lowers this process's soft fd limit to `limit`.
fn lower_fd_limit(limit: u64) {
    let mut rl = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit read or write the struct we pass, nothing else.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl), 0, "getrlimit");
        rl.rlim_cur = limit;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &rl), 0, "setrlimit");
    }
}

fn is_fd_exhaustion(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE))
}

/// Echoes until end-of-file or an error.
fn echo(stream: TcpStream) {
    let mut stream = &stream;
    let mut buf = [0u8; 256];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if stream.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
        }
    }
}

/// The child: see the module docs, step 1. Exits when its stdin closes.
fn server() {
    let _wd = support::watchdog(&format!("{TEST} (child)"), support::budget(CHILD_BUDGET));
    let rt = support::runtime(2, Mode::Pinned);
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("local_addr");
    lower_fd_limit(LIMIT);
    // Only fd numbers below the limit take room (an inherited fd may be above it), and
    // `open_fds` lists its own directory handle too.
    let below_limit = support::open_fds()
        .iter()
        .filter_map(|line| line.split(' ').next()?.parse::<u64>().ok())
        .filter(|&fd| fd < LIMIT)
        .count();
    let open = below_limit as u64 - 1;
    println!("{ADDR}{addr}");
    println!("{CAPACITY}{}", LIMIT.saturating_sub(open));

    let accepted = Arc::new(AtomicUsize::new(0));
    let exhausted = Arc::new(AtomicUsize::new(0));
    let other = Arc::new(AtomicUsize::new(0));
    {
        let (accepted, exhausted, other) =
            (Arc::clone(&accepted), Arc::clone(&exhausted), Arc::clone(&other));
        // The parent closes stdin when it is done: print the totals and exit.
        std::thread::spawn(move || {
            let _ = io::stdin().read_to_end(&mut Vec::new());
            println!(
                "{TOTALS}accepted={} emfile={} other={}",
                accepted.load(Ordering::SeqCst),
                exhausted.load(Ordering::SeqCst),
                other.load(Ordering::SeqCst)
            );
            std::process::exit(0);
        });
    }
    rt.block_on(move || {
        let mut in_burst = false;
        loop {
            match listener.accept() {
                Ok((stream, _)) => {
                    in_burst = false;
                    println!("{ACCEPTED}{}", accepted.fetch_add(1, Ordering::SeqCst) + 1);
                    // Detached: a handler ends on the parent's close.
                    let _ = weft::spawn(move || echo(stream));
                }
                Err(e) if is_fd_exhaustion(&e) => {
                    exhausted.fetch_add(1, Ordering::SeqCst);
                    if !std::mem::replace(&mut in_burst, true) {
                        println!("{EMFILE}{e}");
                    }
                }
                Err(e) => {
                    other.fetch_add(1, Ordering::SeqCst);
                    println!("ACCEPT_ERROR {:?}: {e}", e.kind());
                }
            }
        }
    })
}

// ---------------------------------------------------------------------------------------------
// The client (parent process)
// ---------------------------------------------------------------------------------------------

/// One of the parent's connections; its first byte is its index.
struct Conn {
    index: usize,
    stream: std::net::TcpStream,
    served: bool,
}

/// Reads the echo of every connection that has one by now; returns how many are served.
fn poll_served(conns: &mut [Conn]) -> usize {
    for conn in conns.iter_mut().filter(|c| !c.served) {
        let mut byte = [0u8; 1];
        match conn.stream.read(&mut byte) {
            Ok(1) => {
                assert_eq!(byte[0], conn.index as u8, "connection {}: echo byte", conn.index);
                conn.served = true;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            other => panic!("connection {}: read gave {other:?} instead of the echo", conn.index),
        }
    }
    conns.iter().filter(|c| c.served).count()
}

#[test]
fn emfile_accept_loop_backs_off_and_recovers() {
    if support::is_child(SCENARIO) {
        server();
        return;
    }
    let wd = support::watchdog(TEST, support::budget(Duration::from_secs(120)));
    let seed = wd.seed();
    let mut rng = Rng::new(seed);
    let mut child = support::spawn_child(TEST, SCENARIO, &[("WEFT_SEED", &seed.to_string())]);
    let pid = child.pid();
    let addr: SocketAddr = child.expect_line(ADDR, LINE_TIMEOUT).trim().parse().expect("ADDR");
    let capacity: usize =
        child.expect_line(CAPACITY, LINE_TIMEOUT).trim().parse().expect("CAPACITY");
    assert!(
        (CLOSE + 1..LIMIT as usize).contains(&capacity),
        "the child can open {capacity} more fds under a limit of {LIMIT}"
    );

    // Step 2: flood.
    wd.note("flooding the child with connections");
    let flood = capacity + EXTRA;
    let mut conns: Vec<Conn> = (0..flood)
        .map(|index| {
            let mut stream = std::net::TcpStream::connect_timeout(&addr, LINE_TIMEOUT)
                .unwrap_or_else(|e| panic!("connection {index}: connect: {e}"));
            stream.write_all(&[index as u8]).expect("send the first byte");
            stream.set_nonblocking(true).expect("set_nonblocking");
            Conn { index, stream, served: false }
        })
        .collect();
    let mut accepted = 0usize;
    loop {
        let line = child.line(LINE_TIMEOUT).unwrap_or_else(|| {
            panic!("the child never ran out of fds:\n{}", child.output_so_far())
        });
        if let Some((_, k)) = line.split_once(ACCEPTED) {
            accepted = k.trim().parse().expect("ACCEPTED count");
        } else if line.contains(EMFILE) {
            break;
        }
    }
    let mut served = 0;
    let all_served = support::wait_until(Duration::from_secs(10), || {
        served = poll_served(&mut conns);
        served >= accepted
    });
    assert!(all_served, "{served} of the {accepted} accepted connections got their echo");
    assert_eq!(served, accepted, "connections served, and accepted by the child");
    assert!(
        accepted < flood && accepted <= capacity,
        "the child accepted {accepted} of {flood} connections with room for {capacity} fds"
    );

    // Step 3: the starved child idles.
    wd.note("measuring the starved child's CPU time");
    let ticks_per_sec = support::clock_ticks_per_sec();
    let (ticks0, t0) = (support::cpu_ticks(pid), Instant::now());
    // A measurement window, not a wait for a condition.
    std::thread::sleep(CPU_WINDOW);
    let (ticks1, wall) = (support::cpu_ticks(pid), t0.elapsed());
    let share = (ticks1 - ticks0) as f64 / ticks_per_sec as f64 / wall.as_secs_f64();
    assert!(child.is_running(), "the child died while starved:\n{}", child.output_so_far());
    assert!(
        share < MAX_CPU_SHARE,
        "the child starved of fds used {:.1}% of a core over {wall:?} ({} ticks at {ticks_per_sec}/s): \
         its accept loop spins",
        share * 100.0,
        ticks1 - ticks0
    );
    assert_eq!(poll_served(&mut conns), served, "connections served while no fd was free");

    // Step 4: free fds; waiting connections are served.
    wd.note("closing connections to free fds in the child");
    let mut closed: Vec<usize> = conns.iter().filter(|c| c.served).map(|c| c.index).collect();
    for i in 0..CLOSE {
        let j = i + rng.below((closed.len() - i) as u64) as usize;
        closed.swap(i, j);
    }
    closed.truncate(CLOSE);
    conns.retain(|c| !closed.contains(&c.index));
    let freed_at = Instant::now();
    let mut first_new: Option<Duration> = None;
    let mut now_served = 0;
    let recovered = support::wait_until(RECOVERY_LIMIT + Duration::from_secs(5), || {
        now_served = poll_served(&mut conns);
        if now_served > served - CLOSE && first_new.is_none() {
            first_new = Some(freed_at.elapsed());
        }
        now_served >= served
    });
    assert!(
        recovered,
        "{} of the {CLOSE} connections waiting in the backlog were served after {CLOSE} served \
         ones closed:\n{}",
        now_served - (served - CLOSE),
        child.output_so_far()
    );
    let first_new = first_new.expect("a first newly served connection");
    assert!(
        first_new < RECOVERY_LIMIT,
        "the first waiting connection was served {first_new:?} after fds were freed"
    );
    // A further round trip on a connection that waited in the backlog.
    let waited = conns.iter_mut().rev().find(|c| c.served).expect("a newly served connection");
    waited.stream.set_nonblocking(false).expect("set_nonblocking(false)");
    waited.stream.set_read_timeout(Some(LINE_TIMEOUT)).expect("set_read_timeout");
    waited.stream.write_all(b"again").expect("write on a connection that waited");
    let mut back = [0u8; 5];
    waited.stream.read_exact(&mut back).expect("the echo on a connection that waited");
    assert_eq!(&back, b"again", "echo on connection {}", waited.index);

    // Step 5: wind down.
    let still_waiting = conns.iter().filter(|c| !c.served).count();
    drop(conns);
    let out = child.wait(Duration::from_secs(30));
    assert!(out.status.success(), "the child failed:\n{out}");
    let totals =
        support::report_fields(&out.stdout, TOTALS).unwrap_or_else(|| panic!("no totals:\n{out}"));
    let emfile = totals["emfile"];
    assert!(
        (1..=MAX_EMFILE_ERRORS).contains(&emfile),
        "the child's accept loop saw {emfile} EMFILE errors:\n{out}"
    );
    assert_eq!(totals["other"], 0, "other accept errors:\n{out}");
    println!(
        "[{TEST}] capacity {capacity}, flood {flood}, accepted {accepted}; starved CPU {:.2}% of \
         a core; first waiting connection served {first_new:?} after {CLOSE} closes; {emfile} \
         EMFILE errors in all; {still_waiting} still waiting at the end",
        share * 100.0
    );
}
