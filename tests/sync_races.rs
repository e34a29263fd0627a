//! Races between a wake and a timeout in `weft::sync`, in loops with exact assertions: a
//! `Condvar::notify_one` racing a `wait_timeout`, and a `send` racing a `recv_timeout`. Each
//! iteration draws the waiter's timeout and the waker's delay from the same seeded spread, so
//! the timeout and the wake land together, in either order, again and again.
//!
//! The condvar race, with `W` waiters and `W` posters (`W` is 1 or 2). Per iteration `i`:
//!
//! ```text
//!   poster p                                 waiter w
//!   wait until consumed == (i-1)·W           wait until consumed == (i-1)·W
//!   let a seeded delay pass                  lock
//!   lock; push (i, p); notify_one            while the queue is empty:
//!   (inside or after the lock, seeded)           first: wait_timeout(seeded, like the delay)
//!                                                then:  wait_timeout(what is left of the
//!                                                       iteration's deadline)
//!                                            pop one item, check it is of iteration i
//!                                            consumed += 1
//! ```
//!
//! - Each waiter takes exactly one item per iteration and then waits for the iteration to end,
//!   so with two waiters the second item's `notify_one` must reach the waiter still waiting: a
//!   notification lost (or spent on a waiter whose wait had already ended) leaves that waiter
//!   asleep with an item in the queue. Its long `wait_timeout` then runs out while an item
//!   posted long before waits, and the test fails naming the iteration, rather than hanging.
//! - An item taken twice, or one of another iteration, fails the iteration check; the totals
//!   must come out at exactly `W` items per iteration.
//! - How often the first, short wait timed out, was notified, or was not needed is counted and
//!   printed, to show that both sides of the race happen; no ratio is asserted.
//!
//! The channel race. Per iteration `i`, the sender waits until message `i - 1` was received,
//! lets a seeded delay pass and sends `i`; the receiver calls `recv_timeout(seeded)` and, on
//! `Timeout`, `recv_timeout(ITERATION_DEADLINE)`. Every message must arrive exactly once and in
//! order: after a `Timeout` the next receive must return `i` (a message swallowed by the
//! timeout fails naming `i`), and once the sender is gone only `Disconnected` may come. It runs
//! on unbounded, bounded(1) and rendezvous channels, mpsc and mpmc.
//!
//! Both races run on coroutines (one worker, then two), on plain threads, and mixed (the waiter
//! a coroutine and the waker a thread, and the other way round).
//!
//! Sizes: 1,000 iterations per condvar phase and per channel kind, 20,000 and 10,000 under
//! `WEFT_STRESS=1`. In a debug build on two cores a test takes 1 to 5 s (up to 8 s for the
//! mixed channel race, which has eight phases), the whole file 10 to 20 s; the sides spin
//! through their delays, so the time varies with what else runs.

mod support;

use std::collections::VecDeque;
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::{delay, jitter, spawn_on, Mode, Rng, Side};
use weft::sync::{mpmc, mpsc, Condvar, Mutex};
use weft::Runtime;
use Side::{Coroutine as Co, Thread as Th};

/// Condvar iterations per phase in CI.
const CI_CONDVAR_ITERATIONS: usize = 1_000;
/// Condvar iterations per phase under `WEFT_STRESS=1`.
const FULL_CONDVAR_ITERATIONS: usize = 20_000;
/// Channel iterations per phase (one channel kind) in CI.
const CI_CHANNEL_ITERATIONS: usize = 1_000;
/// Channel iterations per phase under `WEFT_STRESS=1`.
const FULL_CHANNEL_ITERATIONS: usize = 10_000;
/// How long one iteration may take before its wake-up counts as lost: far above any
/// scheduling delay, far below the watchdog's budget.
const ITERATION_DEADLINE: Duration = Duration::from_secs(10);
/// How long a waking side waits for the waiting side to finish an iteration: longer than
/// `ITERATION_DEADLINE`, so that a lost wake-up is reported by the side that lost it.
const WAKER_DEADLINE: Duration = Duration::from_secs(20);
/// A waiter whose long wait timed out with an item in the queue fails only if the item had
/// been posted (and notified) at least this long before: posted later, the two just crossed.
const NOTIFY_GRACE: Duration = Duration::from_secs(1);
/// The watchdog budget of each test (×10 under `WEFT_STRESS=1`).
const BUDGET: Duration = Duration::from_secs(300);

// ---------------------------------------------------------------------------------------------
// Failures
// ---------------------------------------------------------------------------------------------

/// Reports a failed phase: straight to stderr as well (libtest's capture would lose the
/// message if a side left stuck made the runtime's shutdown end in the watchdog's abort).
fn fail(text: String) -> ! {
    let _ = writeln!(std::io::stderr(), "{text}");
    panic!("{text}");
}

// ---------------------------------------------------------------------------------------------
// Condvar: notify_one racing wait_timeout
// ---------------------------------------------------------------------------------------------

/// One posted item: its iteration, its poster, and when it was posted.
struct Item {
    iteration: usize,
    poster: usize,
    posted_at: Instant,
}

/// The shared state of one condvar phase; see the module docs.
struct CvRace {
    iterations: usize,
    /// Waiters, and as many posters.
    width: usize,
    queue: Mutex<VecDeque<Item>>,
    cv: Condvar,
    consumed: Arc<AtomicUsize>,
    /// The first failing iteration, 0 if none: the other sides stop at once.
    failed_at: AtomicUsize,
    /// The first wait of an iteration: not needed (an item was there), timed out, notified.
    not_needed: AtomicUsize,
    timed_out: AtomicUsize,
    notified: AtomicUsize,
    /// Wakes without a timeout that found the queue empty (allowed, as std allows them).
    spurious: AtomicUsize,
}

impl CvRace {
    /// Waits until iteration `i` may start (every item of `i - 1` consumed).
    fn await_start(&self, i: usize, who: &str) -> Result<(), String> {
        let ready = support::wait_until(ITERATION_DEADLINE, || {
            self.consumed.load(Ordering::SeqCst) >= (i - 1) * self.width
                || self.failed_at.load(Ordering::SeqCst) != 0
        });
        let failed_at = self.failed_at.load(Ordering::SeqCst);
        if failed_at != 0 {
            return Err(format!(
                "{who}: stopped at iteration {i}, as iteration {failed_at} failed"
            ));
        }
        if !ready {
            return Err(self.failure(i, format!("{who}: iteration {} never completed", i - 1)));
        }
        Ok(())
    }

    /// Marks iteration `i` failed, wakes every waiter, and returns `text`.
    fn failure(&self, i: usize, text: String) -> String {
        let _ = self.failed_at.compare_exchange(0, i, Ordering::SeqCst, Ordering::SeqCst);
        self.cv.notify_all();
        text
    }

    fn poster(&self, p: usize, mut rng: Rng) -> Result<(), String> {
        for i in 1..=self.iterations {
            self.await_start(i, &format!("poster {p}"))?;
            delay(jitter(&mut rng));
            let mut queue = self.queue.lock().expect("the queue's lock");
            queue.push_back(Item { iteration: i, poster: p, posted_at: Instant::now() });
            if rng.percent(50) {
                self.cv.notify_one();
                drop(queue);
            } else {
                drop(queue);
                self.cv.notify_one();
            }
        }
        Ok(())
    }

    fn waiter(&self, w: usize, mut rng: Rng) -> Result<(), String> {
        let who = format!("waiter {w}");
        for i in 1..=self.iterations {
            self.await_start(i, &who)?;
            let short = jitter(&mut rng);
            let deadline = Instant::now() + ITERATION_DEADLINE;
            let mut queue = self.queue.lock().expect("the queue's lock");
            let mut first = true;
            let item = loop {
                if let Some(item) = queue.pop_front() {
                    if first {
                        self.not_needed.fetch_add(1, Ordering::Relaxed);
                    }
                    break item;
                }
                if self.failed_at.load(Ordering::SeqCst) != 0 {
                    return Err(format!("{who}: stopped at iteration {i}"));
                }
                let now = Instant::now();
                if now >= deadline {
                    drop(queue);
                    return Err(self.failure(
                        i,
                        format!("{who}: iteration {i}: nothing was posted within {ITERATION_DEADLINE:?}"),
                    ));
                }
                let wait = if first { short } else { deadline - now };
                let (guard, result) = self.cv.wait_timeout(queue, wait).expect("wait_timeout");
                queue = guard;
                if first {
                    first = false;
                    let counter = if result.timed_out() { &self.timed_out } else { &self.notified };
                    counter.fetch_add(1, Ordering::Relaxed);
                } else if result.timed_out() {
                    if let Some(item) = queue.front() {
                        let waited = item.posted_at.elapsed();
                        if waited >= NOTIFY_GRACE {
                            let text = format!(
                                "{who}: iteration {i}: wait_timeout ran out its {wait:?} while \
                                 the item of poster {} had been posted and notified {waited:?} \
                                 before: a lost wake-up",
                                item.poster
                            );
                            drop(queue);
                            return Err(self.failure(i, text));
                        }
                    }
                }
                if !result.timed_out() && queue.is_empty() {
                    self.spurious.fetch_add(1, Ordering::Relaxed);
                }
            };
            drop(queue);
            if item.iteration != i {
                return Err(self.failure(
                    i,
                    format!(
                        "{who}: iteration {i}: took the item of iteration {} from poster {}",
                        item.iteration, item.poster
                    ),
                ));
            }
            self.consumed.fetch_add(1, Ordering::SeqCst);
        }
        Ok(())
    }
}

/// One condvar phase: `waiters[w]` and `posters[p]` say where each side runs.
fn condvar_phase(
    rt: &Runtime,
    wd: &support::Watchdog,
    label: &str,
    rng: &mut Rng,
    waiters: &[Side],
    posters: &[Side],
) {
    assert_eq!(waiters.len(), posters.len(), "one poster per waiter");
    let iterations = support::sized(CI_CONDVAR_ITERATIONS, FULL_CONDVAR_ITERATIONS);
    let race = Arc::new(CvRace {
        iterations,
        width: waiters.len(),
        queue: Mutex::new(VecDeque::new()),
        cv: Condvar::new(),
        consumed: wd.counter(&format!("{label}: items consumed")),
        failed_at: AtomicUsize::new(0),
        not_needed: AtomicUsize::new(0),
        timed_out: AtomicUsize::new(0),
        notified: AtomicUsize::new(0),
        spurious: AtomicUsize::new(0),
    });
    wd.note(label);
    let started = Instant::now();
    let mut sides = Vec::new();
    for (w, &side) in waiters.iter().enumerate() {
        let (race, rng) = (Arc::clone(&race), rng.fork());
        sides.push((
            format!("waiter {w}"),
            spawn_on(side, Some(rt), "waiter", move || race.waiter(w, rng)),
        ));
    }
    for (p, &side) in posters.iter().enumerate() {
        let (race, rng) = (Arc::clone(&race), rng.fork());
        sides.push((
            format!("poster {p}"),
            spawn_on(side, Some(rt), "poster", move || race.poster(p, rng)),
        ));
    }
    let errors: Vec<String> = sides
        .into_iter()
        .filter_map(|(who, handle)| handle.result(&who).and_then(|r| r).err())
        .collect();
    if !errors.is_empty() {
        fail(format!("{label}: {errors:#?}"));
    }
    let consumed = race.consumed.load(Ordering::SeqCst);
    assert_eq!(consumed, iterations * waiters.len(), "{label}: items consumed");
    let left = race.queue.lock().expect("the queue's lock").len();
    assert_eq!(left, 0, "{label}: items left in the queue");
    println!(
        "[{label}] {iterations} iterations in {:?}; first waits: {} timed out, {} notified, {} \
         not needed; {} spurious wakes",
        started.elapsed(),
        race.timed_out.load(Ordering::SeqCst),
        race.notified.load(Ordering::SeqCst),
        race.not_needed.load(Ordering::SeqCst),
        race.spurious.load(Ordering::SeqCst),
    );
}

/// Runs the condvar race on a runtime of `workers` workers, phase by phase: each phase is
/// (where the waiters run, where the posters run).
fn condvar_race(name: &str, workers: usize, phases: &[(&[Side], &[Side])]) {
    let wd = support::watchdog(name, support::budget(BUDGET));
    let seed = wd.seed();
    let mut rng = Rng::new(seed);
    let rt = support::runtime(workers, Mode::Pinned);
    wd.watch_runtime("rt", &rt);
    for (waiters, posters) in phases {
        let label = format!(
            "{name}: waiters {waiters:?}, posters {posters:?}, {workers} workers (WEFT_SEED={seed})"
        );
        condvar_phase(&rt, &wd, &label, &mut rng, waiters, posters);
    }
}

#[test]
fn stress_condvar_notify_races_wait_timeout_coroutines_1_worker() {
    let name = "stress_condvar_notify_races_wait_timeout_coroutines_1_worker";
    condvar_race(name, 1, &[(&[Co], &[Co]), (&[Co, Co], &[Co, Co])]);
}

#[test]
fn stress_condvar_notify_races_wait_timeout_coroutines_2_workers() {
    let name = "stress_condvar_notify_races_wait_timeout_coroutines_2_workers";
    condvar_race(name, 2, &[(&[Co], &[Co]), (&[Co, Co], &[Co, Co])]);
}

#[test]
fn stress_condvar_notify_races_wait_timeout_threads() {
    let name = "stress_condvar_notify_races_wait_timeout_threads";
    condvar_race(name, 2, &[(&[Th], &[Th]), (&[Th, Th], &[Th, Th])]);
}

#[test]
fn stress_condvar_notify_races_wait_timeout_mixed() {
    let name = "stress_condvar_notify_races_wait_timeout_mixed";
    condvar_race(name, 2, &[(&[Co], &[Th]), (&[Th], &[Co]), (&[Co, Th], &[Th, Co])]);
}

// ---------------------------------------------------------------------------------------------
// Channels: send racing recv_timeout
// ---------------------------------------------------------------------------------------------

/// What a `recv_timeout` returned, for either kind of channel.
#[derive(Debug, PartialEq, Eq)]
enum Recv {
    Msg(usize),
    Timeout,
    Disconnected,
}

/// A sending end: `false` if the receiver is gone.
type SendFn = Box<dyn FnMut(usize) -> bool + Send>;
/// A receiving end: `recv_timeout`.
type RecvFn = Box<dyn FnMut(Duration) -> Recv + Send>;

/// The channels the race runs on.
#[derive(Clone, Copy, Debug)]
enum Chan {
    MpscUnbounded,
    MpscRendezvous,
    MpmcBounded1,
    MpmcRendezvous,
}

const CHANS: [Chan; 4] =
    [Chan::MpscUnbounded, Chan::MpscRendezvous, Chan::MpmcBounded1, Chan::MpmcRendezvous];

fn from_mpsc(result: Result<usize, mpsc::RecvTimeoutError>) -> Recv {
    match result {
        Ok(v) => Recv::Msg(v),
        Err(mpsc::RecvTimeoutError::Timeout) => Recv::Timeout,
        Err(mpsc::RecvTimeoutError::Disconnected) => Recv::Disconnected,
    }
}

fn from_mpmc(result: Result<usize, mpmc::RecvTimeoutError>) -> Recv {
    match result {
        Ok(v) => Recv::Msg(v),
        Err(mpmc::RecvTimeoutError::Timeout) => Recv::Timeout,
        Err(mpmc::RecvTimeoutError::Disconnected) => Recv::Disconnected,
    }
}

fn endpoints(chan: Chan) -> (SendFn, RecvFn) {
    match chan {
        Chan::MpscUnbounded => {
            let (tx, rx) = mpsc::channel();
            (
                Box::new(move |v| tx.send(v).is_ok()),
                Box::new(move |t| from_mpsc(rx.recv_timeout(t))),
            )
        }
        Chan::MpscRendezvous => {
            let (tx, rx) = mpsc::sync_channel(0);
            (
                Box::new(move |v| tx.send(v).is_ok()),
                Box::new(move |t| from_mpsc(rx.recv_timeout(t))),
            )
        }
        Chan::MpmcBounded1 => {
            let (tx, rx) = mpmc::sync_channel(1);
            (
                Box::new(move |v| tx.send(v).is_ok()),
                Box::new(move |t| from_mpmc(rx.recv_timeout(t))),
            )
        }
        Chan::MpmcRendezvous => {
            let (tx, rx) = mpmc::sync_channel(0);
            (
                Box::new(move |v| tx.send(v).is_ok()),
                Box::new(move |t| from_mpmc(rx.recv_timeout(t))),
            )
        }
    }
}

/// The shared state of one channel phase.
struct ChanRace {
    iterations: usize,
    /// The last message received.
    received: Arc<AtomicUsize>,
    /// The last message whose `send` has begun.
    sending: AtomicUsize,
    /// The first `recv_timeout`: returned the message, or timed out.
    first_ok: AtomicUsize,
    timed_out: AtomicUsize,
}

impl ChanRace {
    fn sender(&self, mut send: SendFn, mut rng: Rng) -> Result<(), String> {
        for i in 1..=self.iterations {
            let taken = support::wait_until(WAKER_DEADLINE, || {
                self.received.load(Ordering::SeqCst) >= i - 1
            });
            if !taken {
                return Err(format!("sender: message {} was not received", i - 1));
            }
            delay(jitter(&mut rng));
            self.sending.store(i, Ordering::SeqCst);
            if !send(i) {
                return Err(format!("sender: send of {i} failed: the receiver is gone"));
            }
        }
        Ok(())
    }

    fn receiver(&self, mut recv: RecvFn, mut rng: Rng) -> Result<(), String> {
        for i in 1..=self.iterations {
            let got = match recv(jitter(&mut rng)) {
                Recv::Timeout => {
                    self.timed_out.fetch_add(1, Ordering::Relaxed);
                    match recv(ITERATION_DEADLINE) {
                        Recv::Timeout => {
                            return Err(format!(
                                "iteration {i}: recv_timeout timed out, and the next one waited \
                                 {ITERATION_DEADLINE:?} in vain: message {i} was lost (the \
                                 sender had begun sending {})",
                                self.sending.load(Ordering::SeqCst)
                            ))
                        }
                        got => got,
                    }
                }
                got => {
                    self.first_ok.fetch_add(1, Ordering::Relaxed);
                    got
                }
            };
            if got != Recv::Msg(i) {
                return Err(format!("iteration {i}: received {got:?}, expected message {i}"));
            }
            self.received.store(i, Ordering::SeqCst);
        }
        // Only the disconnection may follow, once the sender has returned.
        match recv(ITERATION_DEADLINE) {
            Recv::Disconnected => Ok(()),
            got => Err(format!("after the last message: {got:?}, expected Disconnected")),
        }
    }
}

/// Runs the channel race on a runtime of `workers` workers: for each (receiver side, sender
/// side) of `phases`, on each channel of [`CHANS`].
fn channel_race(name: &str, workers: usize, phases: &[(Side, Side)]) {
    let wd = support::watchdog(name, support::budget(BUDGET));
    let seed = wd.seed();
    let mut rng = Rng::new(seed);
    let rt = support::runtime(workers, Mode::Pinned);
    wd.watch_runtime("rt", &rt);
    let iterations = support::sized(CI_CHANNEL_ITERATIONS, FULL_CHANNEL_ITERATIONS);
    for &(receiver, sender) in phases {
        for chan in CHANS {
            let label = format!(
                "{name}: {chan:?}, receiver {receiver:?}, sender {sender:?}, {workers} workers \
                 (WEFT_SEED={seed})"
            );
            wd.note(label.clone());
            let race = Arc::new(ChanRace {
                iterations,
                received: wd.counter(&format!("{label}: received")),
                sending: AtomicUsize::new(0),
                first_ok: AtomicUsize::new(0),
                timed_out: AtomicUsize::new(0),
            });
            let (send, recv) = endpoints(chan);
            let started = Instant::now();
            let receiving = {
                let (race, rng) = (Arc::clone(&race), rng.fork());
                spawn_on(receiver, Some(&rt), "receiver", move || race.receiver(recv, rng))
            };
            let sending = {
                let (race, rng) = (Arc::clone(&race), rng.fork());
                spawn_on(sender, Some(&rt), "sender", move || race.sender(send, rng))
            };
            let received = receiving.result("receiver").and_then(|r| r);
            let sent = sending.result("sender").and_then(|r| r);
            if received.is_err() || sent.is_err() {
                fail(format!("{label}: receiver {received:?}; sender {sent:?}"));
            }
            println!(
                "[{label}] {iterations} messages in {:?}; first recv_timeout: {} received, {} \
                 timed out",
                started.elapsed(),
                race.first_ok.load(Ordering::SeqCst),
                race.timed_out.load(Ordering::SeqCst),
            );
        }
    }
}

#[test]
fn stress_recv_timeout_races_send_coroutines_1_worker() {
    channel_race("stress_recv_timeout_races_send_coroutines_1_worker", 1, &[(Co, Co)]);
}

#[test]
fn stress_recv_timeout_races_send_coroutines_2_workers() {
    channel_race("stress_recv_timeout_races_send_coroutines_2_workers", 2, &[(Co, Co)]);
}

#[test]
fn stress_recv_timeout_races_send_threads() {
    channel_race("stress_recv_timeout_races_send_threads", 2, &[(Th, Th)]);
}

#[test]
fn stress_recv_timeout_races_send_mixed() {
    channel_race("stress_recv_timeout_races_send_mixed", 2, &[(Co, Th), (Th, Co)]);
}
