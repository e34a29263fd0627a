//! `Select` and `weft::select!` over `weft::sync` channels: every message of several channels
//! is delivered once, a timed wait times out when nothing comes (and only then), and
//! disconnection is reported.
//!
//! The delivery tests put one selector in front of several channels of different kinds, fed
//! by producers on both kinds of side (coroutines and plain threads), and keep the ledger of
//! `tests/sync_channels.rs` (`tests/support/ledger.rs`): every message carries
//! `(sender, seq)` and a checksum, the selector checks each sender's order, and the ledger
//! counts every `(sender, seq)` taken. A lost message leaves its entry at 0 (and, if a wake-up
//! was lost with it, the run stalls and fails after [`STALL_LIMIT`] naming the sides still
//! running); a duplicated one takes it to 2; an overtaken one breaks the order; a torn one
//! fails its checksum. The selector waits with `ready`, `ready_timeout`, `try_ready` or
//! `select!`.
//!
//! Around that, in loops with a per-iteration deadline (a lost wake-up fails naming its
//! iteration): a timed select racing a send (after a timeout, the message must still come,
//! and be the expected one), and a blocked select racing the drop of a channel's last sender
//! (the disconnection must be reported, and an idle channel beside it never). Fixed checks:
//! empty channels time out (not before their timeout) and are never ready; buffered messages
//! come out before a disconnection, which is then reported for good.
//!
//! Sizes: the delivery tests send 1,000 messages per producer (20,000 under `WEFT_STRESS=1`)
//! and the races run 500 iterations (10,000).

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::ledger::{self, finish, spawn_producers, Ledger, Msg, SendFn, Tally, STALL_LIMIT};
use support::{delay, jitter, pause, spawn_on, Mode, Rng, Side};
use weft::sync::{mpmc, mpsc, Select};
use weft::Runtime;

/// The watchdog budget of each test (×10 under `WEFT_STRESS=1`).
const BUDGET: Duration = Duration::from_secs(180);
/// Producers per channel in the select runs.
const SELECT_PRODUCERS: usize = 4;
/// Messages per producer in the select runs, in CI.
const CI_SELECT_MESSAGES: usize = 1_000;
/// Messages per producer in the select runs, under `WEFT_STRESS=1`.
const FULL_SELECT_MESSAGES: usize = 20_000;
/// Iterations of the select races in CI.
const CI_SELECT_ITERATIONS: usize = 500;
/// Iterations of the select races under `WEFT_STRESS=1`.
const FULL_SELECT_ITERATIONS: usize = 10_000;
/// How long one race iteration may take before its wake-up counts as lost.
const ITERATION_DEADLINE: Duration = Duration::from_secs(10);
/// How long a waking side waits for the waiting side to finish an iteration: longer than
/// `ITERATION_DEADLINE`, so that a lost wake-up is reported by the side that lost it.
const WAKER_DEADLINE: Duration = Duration::from_secs(20);
/// The timeout the "nothing arrives" checks wait out.
const SHORT: Duration = Duration::from_millis(20);

fn select_messages() -> usize {
    support::sized(CI_SELECT_MESSAGES, FULL_SELECT_MESSAGES)
}

fn select_iterations() -> usize {
    support::sized(CI_SELECT_ITERATIONS, FULL_SELECT_ITERATIONS)
}

/// What a `try_recv` found.
#[derive(Debug)]
enum Got<T> {
    Msg(T),
    Empty,
    Disconnected,
}

fn got_mpsc<T>(result: Result<T, mpsc::TryRecvError>) -> Got<T> {
    match result {
        Ok(value) => Got::Msg(value),
        Err(mpsc::TryRecvError::Empty) => Got::Empty,
        Err(mpsc::TryRecvError::Disconnected) => Got::Disconnected,
    }
}

fn got_mpmc<T>(result: Result<T, mpmc::TryRecvError>) -> Got<T> {
    match result {
        Ok(value) => Got::Msg(value),
        Err(mpmc::TryRecvError::Empty) => Got::Empty,
        Err(mpmc::TryRecvError::Disconnected) => Got::Disconnected,
    }
}

/// The side of a select run that is not the selector: every other one a coroutine.
fn alternate(k: usize) -> Side {
    if k % 2 == 0 {
        Side::Coroutine
    } else {
        Side::Thread
    }
}

/// How often a selector found its pick not ready after all, or nothing ready on a `try_ready`.
#[derive(Default)]
struct SelectStats {
    spurious: AtomicUsize,
    idle: AtomicUsize,
    timeouts: AtomicUsize,
}

impl SelectStats {
    fn report(&self) -> String {
        format!(
            "{} timeouts, {} spurious readies, {} empty try_ready",
            self.timeouts.load(Ordering::SeqCst),
            self.spurious.load(Ordering::SeqCst),
            self.idle.load(Ordering::SeqCst)
        )
    }
}

/// The channels a `Select` waits on: one of each kind.
const CHANNELS: usize = 4;

/// The receiving ends of the four channels of [`select_four`].
struct Four {
    mpsc_unbounded: mpsc::Receiver<Msg>,
    mpsc_rendezvous: mpsc::Receiver<Msg>,
    mpmc_unbounded: mpmc::Receiver<Msg>,
    mpmc_bounded: mpmc::Receiver<Msg>,
}

/// Four new channels and `SELECT_PRODUCERS` sending ends of each, channel by channel.
fn four_channels() -> (Four, Vec<SendFn>) {
    let (tx0, mpsc_unbounded) = mpsc::channel();
    let (tx1, mpsc_rendezvous) = mpsc::sync_channel(0);
    let (tx2, mpmc_unbounded) = mpmc::channel();
    let (tx3, mpmc_bounded) = mpmc::sync_channel(1);
    let mut senders = ledger::senders(&tx0, SELECT_PRODUCERS);
    senders.extend(ledger::senders(&tx1, SELECT_PRODUCERS));
    senders.extend(ledger::senders(&tx2, SELECT_PRODUCERS));
    senders.extend(ledger::senders(&tx3, SELECT_PRODUCERS));
    (Four { mpsc_unbounded, mpsc_rendezvous, mpmc_unbounded, mpmc_bounded }, senders)
}

impl Four {
    fn try_recv(&self, channel: usize) -> Got<Msg> {
        match channel {
            0 => got_mpsc(self.mpsc_unbounded.try_recv()),
            1 => got_mpsc(self.mpsc_rendezvous.try_recv()),
            2 => got_mpmc(self.mpmc_unbounded.try_recv()),
            _ => got_mpmc(self.mpmc_bounded.try_recv()),
        }
    }

    /// Waits on the channels still `live` with `ready` (`how` 0), `ready_timeout` (1) or
    /// `try_ready` (2); returns the channel picked, `Ok(None)` if `try_ready` found none, and
    /// `Err` if `ready_timeout` waited `STALL_LIMIT` in vain.
    fn ready(&self, live: &[bool; CHANNELS], how: u64) -> Result<Option<usize>, ()> {
        let mut sel = Select::new();
        let mut picks = Vec::new();
        if live[0] {
            picks.push((sel.recv(&self.mpsc_unbounded), 0));
        }
        if live[1] {
            picks.push((sel.recv(&self.mpsc_rendezvous), 1));
        }
        if live[2] {
            picks.push((sel.recv(&self.mpmc_unbounded), 2));
        }
        if live[3] {
            picks.push((sel.recv(&self.mpmc_bounded), 3));
        }
        let index = match how {
            0 => Some(sel.ready()),
            1 => Some(sel.ready_timeout(STALL_LIMIT).map_err(|_| ())?),
            _ => sel.try_ready().ok(),
        };
        Ok(index.map(|index| {
            picks.iter().find(|&&(i, _)| i == index).expect("ready() returned an index of ours").1
        }))
    }
}

/// The selector of [`select_delivers_every_message_once`]: takes messages from whichever live
/// channel `Select` reports ready until all four are disconnected.
fn select_four(ledger: &Ledger, four: Four, stats: &SelectStats, mut rng: Rng) -> usize {
    let mut tally = Tally::new(ledger, "selector");
    let mut live = [true; CHANNELS];
    while live.contains(&true) {
        let channel = match four.ready(&live, rng.below(3)) {
            Ok(Some(channel)) => channel,
            Ok(None) => {
                stats.idle.fetch_add(1, Ordering::Relaxed);
                pause();
                continue;
            }
            Err(()) => {
                ledger.fault(format!(
                    "ready_timeout({STALL_LIMIT:?}) found no channel ready; live {live:?}, {}",
                    ledger.counts()
                ));
                return tally.count;
            }
        };
        match four.try_recv(channel) {
            Got::Msg(msg) => tally.take(msg),
            Got::Empty => {
                stats.spurious.fetch_add(1, Ordering::Relaxed);
            }
            Got::Disconnected => live[channel] = false,
        }
    }
    tally.count
}

/// `Select` over four channels (mpsc unbounded and rendezvous, mpmc unbounded and bounded(1)),
/// fed by four producers each (coroutines and threads), delivers every message exactly once
/// and in each producer's order, and reports each channel disconnected once its producers are
/// gone. The selector waits with `ready`, `ready_timeout` and `try_ready` (seeded), on a thread
/// and then in a coroutine.
#[test]
fn select_delivers_every_message_once() {
    let name = "select_delivers_every_message_once";
    let wd = support::watchdog(name, support::budget(BUDGET));
    let seed = wd.seed();
    let mut rng = Rng::new(seed);
    let rt = support::runtime(2, Mode::Pinned);
    wd.watch_runtime("rt", &rt);
    for selector in [Side::Thread, Side::Coroutine] {
        let label = format!("{name}, selector on a {selector:?} (WEFT_SEED={seed})");
        let ledger =
            Arc::new(Ledger::new(&wd, label, CHANNELS * SELECT_PRODUCERS, select_messages()));
        let stats = Arc::new(SelectStats::default());
        let (four, senders) = four_channels();
        let started = Instant::now();
        let mut handles = Vec::new();
        let body = {
            let (ledger, stats, rng) = (Arc::clone(&ledger), Arc::clone(&stats), rng.fork());
            move || select_four(&ledger, four, &stats, rng)
        };
        handles.push(("selector".to_owned(), spawn_on(selector, Some(&rt), "selector", body)));
        handles.extend(spawn_producers(&ledger, senders, alternate, Some(&rt), &mut rng));
        let panics = finish(&ledger, handles);
        ledger.verify(&panics);
        println!(
            "[{}] {} in {:?}; {}",
            ledger.label,
            ledger.counts(),
            started.elapsed(),
            stats.report()
        );
    }
}

/// The sending ends the `select!` loop keeps until it has every message, so that no channel
/// disconnects (and wins every `select!`) before the others are drained.
type Held = (mpsc::Sender<Msg>, mpmc::SyncSender<Msg>, mpsc::SyncSender<Msg>);

/// The selector of [`select_macro_delivers_every_message_once`].
fn select_macro_loop(
    ledger: &Ledger,
    (a, b, c): (mpsc::Receiver<Msg>, mpmc::Receiver<Msg>, mpsc::Receiver<Msg>),
    held: Held,
) -> usize {
    let mut tally = Tally::new(ledger, "select! loop");
    while tally.count < ledger.total() {
        let got: Result<Msg, &str> = weft::select! {
            recv(a) -> msg => msg.map_err(|_| "mpsc unbounded reported disconnected"),
            recv(b) -> msg => msg.map_err(|_| "mpmc bounded(16) reported disconnected"),
            recv(c) -> msg => msg.map_err(|_| "mpsc rendezvous reported disconnected"),
            default(STALL_LIMIT) => Err("nothing arrived for STALL_LIMIT"),
        };
        match got {
            Ok(msg) => tally.take(msg),
            Err(what) => {
                ledger.fault(format!(
                    "select! loop: {what}, with a sender held; {}",
                    ledger.counts()
                ));
                return tally.count;
            }
        }
    }
    // Every message is in. Once the producers and `held` are gone, each channel must report
    // disconnection: one `select!` over all three (blocking until the last producer has
    // dropped its sender), then each alone.
    drop(held);
    let all: Result<Msg, ()> = weft::select! {
        recv(a) -> msg => msg.map_err(drop),
        recv(b) -> msg => msg.map_err(drop),
        recv(c) -> msg => msg.map_err(drop),
        default(STALL_LIMIT) => {
            ledger.fault("select!: no channel reported disconnected".to_owned());
            Err(())
        }
    };
    let alone = [
        weft::select! { recv(a) -> msg => msg.ok(), default(STALL_LIMIT) => None },
        weft::select! { recv(b) -> msg => msg.ok(), default(STALL_LIMIT) => None },
        weft::select! { recv(c) -> msg => msg.ok(), default(STALL_LIMIT) => None },
    ];
    for extra in std::iter::once(all.ok()).chain(alone).flatten() {
        ledger.fault(format!("select!: a message after the last one: {extra:?}"));
    }
    let disconnected = [
        matches!(got_mpsc(a.try_recv()), Got::Disconnected),
        matches!(got_mpmc(b.try_recv()), Got::Disconnected),
        matches!(got_mpsc(c.try_recv()), Got::Disconnected),
    ];
    if disconnected != [true; 3] {
        ledger.fault(format!("after select!, try_recv found disconnected: {disconnected:?}"));
    }
    tally.count
}

/// `weft::select!` over three channels (mpsc unbounded, mpmc bounded(16), mpsc rendezvous),
/// fed by four producers each, delivers every message exactly once and in order; once the
/// senders are gone, `select!` reports each channel disconnected (`Err` in its arm), with no
/// message left over. The selector runs on a thread and then in a coroutine.
#[test]
fn select_macro_delivers_every_message_once() {
    let name = "select_macro_delivers_every_message_once";
    let wd = support::watchdog(name, support::budget(BUDGET));
    let seed = wd.seed();
    let mut rng = Rng::new(seed);
    let rt = support::runtime(2, Mode::Pinned);
    wd.watch_runtime("rt", &rt);
    for selector in [Side::Thread, Side::Coroutine] {
        let label = format!("{name}, selector on a {selector:?} (WEFT_SEED={seed})");
        let ledger = Arc::new(Ledger::new(&wd, label, 3 * SELECT_PRODUCERS, select_messages()));
        let (tx_a, a) = mpsc::channel();
        let (tx_b, b) = mpmc::sync_channel(16);
        let (tx_c, c) = mpsc::sync_channel(0);
        let mut senders = ledger::senders(&tx_a, SELECT_PRODUCERS);
        senders.extend(ledger::senders(&tx_b, SELECT_PRODUCERS));
        senders.extend(ledger::senders(&tx_c, SELECT_PRODUCERS));
        let started = Instant::now();
        let mut handles = Vec::new();
        let body = {
            let ledger = Arc::clone(&ledger);
            move || select_macro_loop(&ledger, (a, b, c), (tx_a, tx_b, tx_c))
        };
        handles.push(("selector".to_owned(), spawn_on(selector, Some(&rt), "selector", body)));
        handles.extend(spawn_producers(&ledger, senders, alternate, Some(&rt), &mut rng));
        let panics = finish(&ledger, handles);
        ledger.verify(&panics);
        println!("[{}] {} in {:?}", ledger.label, ledger.counts(), started.elapsed());
    }
}

/// On empty channels whose senders are alive: `try_ready` and `select!` with `default` find
/// nothing, `ready_timeout(SHORT)` and `select!` with `default(SHORT)` time out after at least
/// `SHORT`; then a message sent to either channel is found by each.
fn timeouts_on_empty_channels(what: &str) {
    let (tx_a, rx_a) = mpsc::channel::<u32>();
    let (tx_b, rx_b) = mpmc::sync_channel::<u32>(1);
    let mut sel = Select::new();
    let index_a = sel.recv(&rx_a);
    let index_b = sel.recv(&rx_b);
    assert!(sel.try_ready().is_err(), "{what}: try_ready found an empty channel ready");
    let t0 = Instant::now();
    assert!(
        sel.ready_timeout(SHORT).is_err(),
        "{what}: ready_timeout found an empty channel ready"
    );
    assert!(
        t0.elapsed() >= SHORT,
        "{what}: ready_timeout({SHORT:?}) returned after {:?}",
        t0.elapsed()
    );
    let t0 = Instant::now();
    let got = weft::select! {
        recv(rx_a) -> msg => Some(msg.ok()),
        recv(rx_b) -> msg => Some(msg.ok()),
        default(SHORT) => None,
    };
    assert_eq!(
        got, None,
        "{what}: select! with default({SHORT:?}) took an arm of an empty channel"
    );
    assert!(
        t0.elapsed() >= SHORT,
        "{what}: select! default({SHORT:?}) came after {:?}",
        t0.elapsed()
    );
    let got = weft::select! {
        recv(rx_a) -> msg => Some(msg.ok()),
        recv(rx_b) -> msg => Some(msg.ok()),
        default => None,
    };
    assert_eq!(got, None, "{what}: select! with default took an arm of an empty channel");

    tx_b.send(7).expect("send to b");
    assert_eq!(sel.ready_timeout(STALL_LIMIT).ok(), Some(index_b), "{what}: b holds a message");
    assert_eq!(rx_b.try_recv(), Ok(7), "{what}: b's message");
    tx_a.send(8).expect("send to a");
    assert_eq!(sel.ready_timeout(STALL_LIMIT).ok(), Some(index_a), "{what}: a holds a message");
    let got = weft::select! {
        recv(rx_a) -> msg => Some(msg.ok()),
        recv(rx_b) -> msg => Some(msg.ok()),
        default(STALL_LIMIT) => None,
    };
    assert_eq!(got, Some(Some(8)), "{what}: select! on a message in a");
    drop((tx_a, tx_b));
}

/// Per iteration `i`, a sender waits until message `i - 1` was taken, lets a seeded delay pass
/// and sends `i` on one of two channels (seeded); the selector waits with a seeded timeout of
/// the same spread, so the timeout and the message land together. After a timeout it waits
/// again, up to `ITERATION_DEADLINE`: a message must come, and it must be `i` (a lost one fails
/// naming `i`, a doubled one shows as `i - 1` again).
fn timeout_races_send(
    rt: &Runtime,
    label: &str,
    selector: Side,
    sender: Side,
    rng: &mut Rng,
) -> String {
    let iterations = select_iterations();
    let taken = Arc::new(AtomicUsize::new(0));
    let (tx_a, rx_a) = mpsc::channel::<usize>();
    let (tx_b, rx_b) = mpmc::channel::<usize>();
    let stats = Arc::new(SelectStats::default());
    let sending = {
        let (taken, mut rng) = (Arc::clone(&taken), rng.fork());
        move || -> Result<(), String> {
            for i in 1..=iterations {
                if !support::wait_until(WAKER_DEADLINE, || taken.load(Ordering::SeqCst) >= i - 1) {
                    return Err(format!("sender: message {} was not taken", i - 1));
                }
                delay(jitter(&mut rng));
                let sent =
                    if rng.percent(50) { tx_a.send(i).is_ok() } else { tx_b.send(i).is_ok() };
                if !sent {
                    return Err(format!("sender: send of {i} failed"));
                }
            }
            // Both senders live until the last message is taken: had one channel disconnected
            // first, `select!` could rightly pick its arm over the other's message.
            if support::wait_until(WAKER_DEADLINE, || taken.load(Ordering::SeqCst) >= iterations) {
                Ok(())
            } else {
                Err(format!("sender: message {iterations} was not taken"))
            }
        }
    };
    let selecting = {
        let (stats, mut rng) = (Arc::clone(&stats), rng.fork());
        move || -> Result<(), String> {
            for i in 1..=iterations {
                let timeout = jitter(&mut rng);
                let use_macro = rng.percent(50);
                let mut waited_long = false;
                let value = loop {
                    let wait = if waited_long { ITERATION_DEADLINE } else { timeout };
                    let got = if use_macro {
                        weft::select! {
                            recv(rx_a) -> msg => Some(msg.map_err(|_| "a disconnected")),
                            recv(rx_b) -> msg => Some(msg.map_err(|_| "b disconnected")),
                            default(wait) => None,
                        }
                    } else {
                        let mut sel = Select::new();
                        let index_a = sel.recv(&rx_a);
                        sel.recv(&rx_b);
                        match sel.ready_timeout(wait) {
                            Err(_) => None,
                            Ok(index) => {
                                let got = if index == index_a {
                                    got_mpsc(rx_a.try_recv())
                                } else {
                                    got_mpmc(rx_b.try_recv())
                                };
                                match got {
                                    Got::Msg(v) => Some(Ok(v)),
                                    Got::Disconnected => Some(Err("disconnected")),
                                    Got::Empty => {
                                        stats.spurious.fetch_add(1, Ordering::Relaxed);
                                        continue;
                                    }
                                }
                            }
                        }
                    };
                    match got {
                        Some(Ok(v)) => break v,
                        Some(Err(what)) => return Err(format!("iteration {i}: {what}")),
                        None if waited_long => {
                            return Err(format!(
                                "iteration {i}: nothing arrived within {ITERATION_DEADLINE:?} \
                                 after a timeout: message {i} was lost"
                            ))
                        }
                        None => {
                            stats.timeouts.fetch_add(1, Ordering::Relaxed);
                            waited_long = true;
                        }
                    }
                };
                if value != i {
                    return Err(format!("iteration {i}: received {value}, expected {i}"));
                }
                taken.store(i, Ordering::SeqCst);
            }
            // The sender is done or finishing: nothing more may come, only disconnection.
            match (rx_a.recv(), rx_b.recv()) {
                (Err(_), Err(_)) => Ok(()),
                extra => Err(format!("after the last iteration: {extra:?}")),
            }
        }
    };
    run_pair(rt, label, (selector, selecting), (sender, "sender", sending));
    format!("{iterations} iterations: {}", stats.report())
}

/// Timeouts: on empty channels nothing is ready and a timed wait times out (on a thread and in
/// a coroutine); then a timed select races a send, with the selector and the sender on each
/// kind of side, and every message still arrives exactly once, in order.
#[test]
fn select_timeout_fires_when_nothing_arrives() {
    race_test(
        "select_timeout_fires_when_nothing_arrives",
        ("empty channels", timeouts_on_empty_channels),
        "sender",
        timeout_races_send,
    );
}

/// A channel of the disconnection race: either kind.
enum Dying {
    Mpsc(mpsc::Receiver<u32>),
    Mpmc(mpmc::Receiver<u32>),
}

/// What one wait of the disconnection race saw.
#[derive(Debug)]
enum Seen {
    /// The dying channel reported disconnected: the iteration is done.
    Disconnected,
    /// The idle channel was picked (spurious), or the dying one was but held nothing yet.
    Nothing,
    /// Nothing was ready for `ITERATION_DEADLINE`.
    TimedOut,
    /// `select!` took the idle channel's arm, which has nothing to give.
    Idle(String),
    /// A message, where none is ever sent.
    Msg(u32),
}

impl Seen {
    fn of<E>(result: Result<u32, E>) -> Seen {
        result.map_or(Seen::Disconnected, Seen::Msg)
    }

    fn of_try(got: Got<u32>) -> Seen {
        match got {
            Got::Msg(v) => Seen::Msg(v),
            Got::Empty => Seen::Nothing,
            Got::Disconnected => Seen::Disconnected,
        }
    }
}

/// Buffered messages come out before the disconnection, which `Select` and `select!` then
/// report for good; an idle channel next to it never reports ready.
fn disconnection_after_buffered(what: &str) {
    let (_keep, idle) = mpsc::channel::<u32>();
    let (tx, rx) = mpsc::channel::<u32>();
    for v in 0..3 {
        tx.send(v).expect("send");
    }
    drop(tx);
    let mut sel = Select::new();
    sel.recv(&idle);
    let index = sel.recv(&rx);
    for v in 0..3 {
        assert_eq!(sel.ready_timeout(STALL_LIMIT).ok(), Some(index), "{what}: mpsc message {v}");
        assert_eq!(rx.try_recv(), Ok(v), "{what}: mpsc message {v}");
    }
    for round in 0..2 {
        assert_eq!(sel.ready_timeout(STALL_LIMIT).ok(), Some(index), "{what}: mpsc disconnection");
        assert_eq!(rx.try_recv(), Err(mpsc::TryRecvError::Disconnected), "{what}: round {round}");
    }
    assert_eq!(sel.try_ready().ok(), Some(index), "{what}: try_ready on a disconnected channel");

    let (tx, rx) = mpmc::sync_channel::<u32>(4);
    for v in 0..3 {
        tx.send(v).expect("send");
    }
    drop(tx);
    for v in 0..3 {
        let got = weft::select! {
            recv(idle) -> msg => Err(msg.ok()),
            recv(rx) -> msg => Ok(msg.ok()),
            default(STALL_LIMIT) => Err(None),
        };
        assert_eq!(got, Ok(Some(v)), "{what}: mpmc message {v} through select!");
    }
    for round in 0..2 {
        let got = weft::select! {
            recv(idle) -> msg => Err(msg.ok()),
            recv(rx) -> msg => Ok(msg.ok()),
            default(STALL_LIMIT) => Err(None),
        };
        assert_eq!(got, Ok(None), "{what}: select! must take rx's arm with Err, round {round}");
    }
}

/// Per iteration `i`, the selector blocks on an idle channel and channel `i`, and the dropper,
/// once the selector has started iteration `i`, lets a seeded delay pass and drops channel
/// `i`'s only sender. The selector must see the disconnection within `ITERATION_DEADLINE`
/// (a lost wake-up fails naming `i`); the idle channel must never be reported.
fn disconnect_races_select(
    rt: &Runtime,
    label: &str,
    selector: Side,
    dropper: Side,
    rng: &mut Rng,
) -> String {
    let iterations = select_iterations();
    let started = Arc::new(AtomicUsize::new(0));
    let stats = Arc::new(SelectStats::default());
    let mut senders: Vec<Box<dyn Send>> = Vec::new();
    let mut receivers = Vec::new();
    for i in 0..iterations {
        if i % 2 == 0 {
            let (tx, rx) = mpsc::channel::<u32>();
            senders.push(Box::new(tx));
            receivers.push(Dying::Mpsc(rx));
        } else {
            let (tx, rx) = mpmc::sync_channel::<u32>(0);
            senders.push(Box::new(tx));
            receivers.push(Dying::Mpmc(rx));
        }
    }
    let dropping = {
        let (started, mut rng) = (Arc::clone(&started), rng.fork());
        move || -> Result<(), String> {
            for (i, tx) in senders.into_iter().enumerate() {
                if !support::wait_until(WAKER_DEADLINE, || started.load(Ordering::SeqCst) > i) {
                    return Err(format!("dropper: iteration {i} did not start"));
                }
                delay(jitter(&mut rng));
                drop(tx);
            }
            Ok(())
        }
    };
    let selecting = {
        let (started, stats, mut rng) = (Arc::clone(&started), Arc::clone(&stats), rng.fork());
        move || -> Result<(), String> {
            let (_keep, idle) = mpsc::channel::<u32>();
            for (i, dying) in receivers.iter().enumerate() {
                started.store(i + 1, Ordering::SeqCst);
                let use_macro = rng.percent(50);
                loop {
                    // `recv(*rx)`: `select!` takes a receiver, not a reference to one.
                    let seen = match (dying, use_macro) {
                        (Dying::Mpsc(rx), true) => weft::select! {
                            recv(idle) -> msg => Seen::Idle(format!("{msg:?}")),
                            recv(*rx) -> msg => Seen::of(msg),
                            default(ITERATION_DEADLINE) => Seen::TimedOut,
                        },
                        (Dying::Mpmc(rx), true) => weft::select! {
                            recv(idle) -> msg => Seen::Idle(format!("{msg:?}")),
                            recv(*rx) -> msg => Seen::of(msg),
                            default(ITERATION_DEADLINE) => Seen::TimedOut,
                        },
                        (dying, false) => {
                            let mut sel = Select::new();
                            let index_idle = sel.recv(&idle);
                            match dying {
                                Dying::Mpsc(rx) => sel.recv(rx),
                                Dying::Mpmc(rx) => sel.recv(rx),
                            };
                            match sel.ready_timeout(ITERATION_DEADLINE) {
                                Err(_) => Seen::TimedOut,
                                Ok(index) if index == index_idle => Seen::Nothing,
                                Ok(_) => Seen::of_try(match dying {
                                    Dying::Mpsc(rx) => got_mpsc(rx.try_recv()),
                                    Dying::Mpmc(rx) => got_mpmc(rx.try_recv()),
                                }),
                            }
                        }
                    };
                    match seen {
                        Seen::Disconnected => break,
                        Seen::Nothing => {
                            stats.spurious.fetch_add(1, Ordering::Relaxed);
                        }
                        Seen::TimedOut => {
                            return Err(format!(
                                "iteration {i}: the disconnection was not reported within \
                                 {ITERATION_DEADLINE:?}: a lost wake-up"
                            ))
                        }
                        Seen::Msg(v) => {
                            return Err(format!("iteration {i}: message {v}, and none was sent"))
                        }
                        Seen::Idle(got) => {
                            return Err(format!("iteration {i}: the idle channel's arm got {got}"))
                        }
                    }
                }
            }
            Ok(())
        }
    };
    run_pair(rt, label, (selector, selecting), (dropper, "dropper", dropping));
    format!("{iterations} iterations: {}", stats.report())
}

/// Disconnection: buffered messages first, then `Err` for good (on a thread and in a
/// coroutine); then a sender dropped while the selector blocks is reported, with the selector
/// and the dropper on each kind of side.
#[test]
fn select_reports_disconnected() {
    race_test(
        "select_reports_disconnected",
        ("buffered", disconnection_after_buffered),
        "dropper",
        disconnect_races_select,
    );
}

// ---------------------------------------------------------------------------------------------
// The frame of the two race tests
// ---------------------------------------------------------------------------------------------

/// A race of the selector against one other side: `(runtime, label, selector's side, other's
/// side, generator)`; returns the report line.
type RaceFn = fn(&Runtime, &str, Side, Side, &mut Rng) -> String;

/// Runs `fixed` (a fixed check, noted as `topic`) on the test thread and in a coroutine, then
/// `race` with the selector and the `other` side on each pairing of sides.
fn race_test(name: &str, (topic, fixed): (&str, fn(&str)), other: &str, race: RaceFn) {
    let wd = support::watchdog(name, support::budget(BUDGET));
    let seed = wd.seed();
    let mut rng = Rng::new(seed);
    let rt = support::runtime(2, Mode::Pinned);
    wd.watch_runtime("rt", &rt);
    wd.note(format!("{topic}, on the test thread"));
    fixed("on a thread");
    wd.note(format!("{topic}, in a coroutine"));
    rt.block_on(|| fixed("in a coroutine"));
    for (selector, side) in [
        (Side::Thread, Side::Coroutine),
        (Side::Coroutine, Side::Thread),
        (Side::Coroutine, Side::Coroutine),
    ] {
        let label = format!("{name}: selector {selector:?}, {other} {side:?} (WEFT_SEED={seed})");
        wd.note(label.clone());
        let started = Instant::now();
        let report = race(&rt, &label, selector, side, &mut rng);
        println!("[{label}] {report} in {:?}", started.elapsed());
    }
}

/// Runs `selecting` on the selector's side and `other` (named `who`) on its own, joins both
/// and asserts both came back `Ok`; a panic counts as an `Err` with its message.
fn run_pair<S, O>(
    rt: &Runtime,
    label: &str,
    (side, selecting): (Side, S),
    (other_side, who, other): (Side, &str, O),
) where
    S: FnOnce() -> Result<(), String> + Send + 'static,
    O: FnOnce() -> Result<(), String> + Send + 'static,
{
    let other = spawn_on(other_side, Some(rt), who, other);
    let selector = spawn_on(side, Some(rt), "selector", selecting);
    let selector = selector.result("selector").and_then(|r| r);
    let other = other.result(who).and_then(|r| r);
    assert!(selector.is_ok() && other.is_ok(), "{label}: {selector:?}; {other:?}");
}
