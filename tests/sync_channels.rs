//! Channel integrity: every message sent through a `weft::sync` channel arrives exactly once,
//! intact, and in its sender's order, whatever mix of coroutines and plain threads sends and
//! receives and however the channel is bounded. (`Select` and `select!` over several channels
//! are tested in `tests/sync_select.rs`, on the same ledger.)
//!
//! Every message carries `(sender, seq)` and a checksum of the two. Each receiver keeps, per
//! sender, the last `seq` it took, and a shared [`Ledger`] (`tests/support/ledger.rs`) counts
//! every `(sender, seq)` taken:
//!
//! ```text
//!   producer p (of 64)                    receiver r (of 64 for mpmc, 1 for mpsc)
//!   for seq in 0..N:                      while let Ok(m) = rx.recv():
//!       tx.send((p, seq, check))              check intact?              else: corrupted
//!       [a yield every 1..64 sends]           seq > last[r][p]?          else: reordered/dup
//!   drop(tx)                                  ledger[p][seq] += 1
//!                                         (recv fails once the last sender is gone)
//! ```
//!
//! - A lost message leaves its ledger entry at 0, and the failure names it. If the loss also
//!   lost a wake-up, nothing moves any more: after `ledger::STALL_LIMIT` without progress the
//!   test fails naming the sides still running and the counts (and the watchdog backs that up).
//! - A duplicated message takes an entry to 2, and a receiver that takes both copies sees its
//!   order break.
//! - A message overtaken by a later one of its sender breaks the strict order at whichever
//!   receiver takes both; with one receiver (mpsc) every overtaking shows.
//! - A message torn or read from freed memory fails its checksum.
//!
//! The sides run as coroutines only (a two-worker runtime), plain threads only, or a mix (every
//! other producer and receiver a thread), so each kind of waiter is woken by each kind of
//! waker. mpmc (64 receivers) runs all three on unbounded (`channel()`, coroutines also with
//! migration), bounded(1) and rendezvous (`sync_channel(0)`) channels, and bounded(16) on
//! coroutines and mixed; mpsc (one receiver) runs all three unbounded, bounded(16) on migrating
//! coroutines, bounded(1) mixed, and rendezvous on coroutines and mixed.
//!
//! Sizes (messages per producer): 5,000 by default (1,500 for rendezvous channels, whose every
//! message is a hand-off), 100,000 (10,000) under `WEFT_STRESS=1`. In a debug build on two
//! cores the slowest test (bounded(1), 128 threads) takes about 3.5 s, most under one second.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use support::ledger::{self, finish, spawn_producers, Ledger, Msg, RecvFn, SendFn};
use support::{spawn_on, Mode, Rng, Side};
use weft::sync::{mpmc, mpsc};

/// Producers of the many-to-many and many-to-one runs.
const PRODUCERS: usize = 64;
/// Receivers of the many-to-many runs.
const MPMC_RECEIVERS: usize = 64;
/// Messages per producer in CI.
const CI_MESSAGES: usize = 5_000;
/// Messages per producer under `WEFT_STRESS=1`.
const FULL_MESSAGES: usize = 100_000;
/// Messages per producer through a rendezvous channel in CI: each one is a hand-off.
const CI_RENDEZVOUS_MESSAGES: usize = 1_500;
/// Messages per producer through a rendezvous channel under `WEFT_STRESS=1`.
const FULL_RENDEZVOUS_MESSAGES: usize = 10_000;
/// The watchdog budget of each test (×10 under `WEFT_STRESS=1`).
const BUDGET: Duration = Duration::from_secs(180);

fn messages() -> usize {
    support::sized(CI_MESSAGES, FULL_MESSAGES)
}

fn rendezvous_messages() -> usize {
    support::sized(CI_RENDEZVOUS_MESSAGES, FULL_RENDEZVOUS_MESSAGES)
}

// ---------------------------------------------------------------------------------------------
// Sides of a run
// ---------------------------------------------------------------------------------------------

/// Which sides a run puts where.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sides {
    Coroutines,
    Threads,
    /// Even producers are coroutines and odd ones threads; receivers the other way round (so
    /// the one receiver of an mpsc run is a thread).
    Mixed,
}

impl Sides {
    fn producer(self, k: usize) -> Side {
        match self {
            Sides::Coroutines => Side::Coroutine,
            Sides::Threads => Side::Thread,
            Sides::Mixed if k % 2 == 0 => Side::Coroutine,
            Sides::Mixed => Side::Thread,
        }
    }

    fn receiver(self, k: usize) -> Side {
        match self {
            Sides::Mixed => self.producer(k + 1),
            _ => self.producer(k),
        }
    }

    fn needs_runtime(self) -> bool {
        self != Sides::Threads
    }
}

// ---------------------------------------------------------------------------------------------
// Many producers, many or one receivers
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Mpmc,
    Mpsc,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flavor {
    /// `channel()`.
    Unbounded,
    /// `sync_channel(k)`; `sync_channel(0)` is a rendezvous channel.
    Bounded(usize),
}

/// `senders` sending ends and, for mpmc, `MPMC_RECEIVERS` receiving ends (for mpsc, one) of a
/// new channel; the originals are dropped, so the channel disconnects when these are.
fn endpoints(kind: Kind, flavor: Flavor, senders: usize) -> (Vec<SendFn>, Vec<RecvFn>) {
    fn mpmc_receiving(rx: mpmc::Receiver<Msg>) -> Vec<RecvFn> {
        (0..MPMC_RECEIVERS)
            .map(|_| {
                let rx = rx.clone();
                Box::new(move || rx.recv().ok()) as RecvFn
            })
            .collect()
    }
    match (kind, flavor) {
        (Kind::Mpmc, Flavor::Unbounded) => {
            let (tx, rx) = mpmc::channel();
            (ledger::senders(&tx, senders), mpmc_receiving(rx))
        }
        (Kind::Mpmc, Flavor::Bounded(k)) => {
            let (tx, rx) = mpmc::sync_channel(k);
            (ledger::senders(&tx, senders), mpmc_receiving(rx))
        }
        (Kind::Mpsc, Flavor::Unbounded) => {
            let (tx, rx) = mpsc::channel();
            let recv: RecvFn = Box::new(move || rx.recv().ok());
            (ledger::senders(&tx, senders), vec![recv])
        }
        (Kind::Mpsc, Flavor::Bounded(k)) => {
            let (tx, rx) = mpsc::sync_channel(k);
            let recv: RecvFn = Box::new(move || rx.recv().ok());
            (ledger::senders(&tx, senders), vec![recv])
        }
    }
}

/// One run: `PRODUCERS` producers send `per_sender` messages each through a new channel to
/// its receivers, placed as `sides` says; then the ledger is checked.
fn run(name: &str, kind: Kind, flavor: Flavor, sides: Sides, mode: Mode, per_sender: usize) {
    let wd = support::watchdog(name, support::budget(BUDGET));
    let seed = wd.seed();
    let mut rng = Rng::new(seed);
    let rt = sides.needs_runtime().then(|| support::runtime(2, mode));
    if let Some(rt) = &rt {
        wd.watch_runtime("rt", rt);
    }
    let label = format!("{name} ({kind:?} {flavor:?}, {sides:?}, {mode:?}, WEFT_SEED={seed})");
    let ledger = Arc::new(Ledger::new(&wd, label, PRODUCERS, per_sender));
    let (senders, receivers) = endpoints(kind, flavor, PRODUCERS);
    let started = Instant::now();

    let mut handles = Vec::new();
    for (r, recv) in receivers.into_iter().enumerate() {
        let who = format!("receiver {r} ({:?})", sides.receiver(r));
        let ledger = Arc::clone(&ledger);
        let body = {
            let who = who.clone();
            move || ledger.consume(&who, recv)
        };
        handles.push((who.clone(), spawn_on(sides.receiver(r), rt.as_deref(), &who, body)));
    }
    let producers = |p| sides.producer(p);
    handles.extend(spawn_producers(&ledger, senders, producers, rt.as_deref(), &mut rng));
    let panics = finish(&ledger, handles);
    ledger.verify(&panics);
    println!("[{}] {} in {:?}", ledger.label, ledger.counts(), started.elapsed());
}

#[test]
fn stress_mpmc_unbounded_coroutines() {
    let name = "stress_mpmc_unbounded_coroutines";
    run(name, Kind::Mpmc, Flavor::Unbounded, Sides::Coroutines, Mode::Pinned, messages());
}

#[test]
fn stress_mpmc_unbounded_coroutines_migrating() {
    let name = "stress_mpmc_unbounded_coroutines_migrating";
    run(name, Kind::Mpmc, Flavor::Unbounded, Sides::Coroutines, Mode::Migrating, messages());
}

#[test]
fn stress_mpmc_unbounded_threads() {
    let name = "stress_mpmc_unbounded_threads";
    run(name, Kind::Mpmc, Flavor::Unbounded, Sides::Threads, Mode::Pinned, messages());
}

#[test]
fn stress_mpmc_unbounded_mixed() {
    let name = "stress_mpmc_unbounded_mixed";
    run(name, Kind::Mpmc, Flavor::Unbounded, Sides::Mixed, Mode::Pinned, messages());
}

#[test]
fn stress_mpmc_bounded_1_coroutines() {
    let name = "stress_mpmc_bounded_1_coroutines";
    run(name, Kind::Mpmc, Flavor::Bounded(1), Sides::Coroutines, Mode::Pinned, messages());
}

#[test]
fn stress_mpmc_bounded_1_threads() {
    let name = "stress_mpmc_bounded_1_threads";
    run(name, Kind::Mpmc, Flavor::Bounded(1), Sides::Threads, Mode::Pinned, messages());
}

#[test]
fn stress_mpmc_bounded_1_mixed() {
    let name = "stress_mpmc_bounded_1_mixed";
    run(name, Kind::Mpmc, Flavor::Bounded(1), Sides::Mixed, Mode::Pinned, messages());
}

#[test]
fn stress_mpmc_bounded_16_coroutines() {
    let name = "stress_mpmc_bounded_16_coroutines";
    run(name, Kind::Mpmc, Flavor::Bounded(16), Sides::Coroutines, Mode::Pinned, messages());
}

#[test]
fn stress_mpmc_bounded_16_mixed() {
    let name = "stress_mpmc_bounded_16_mixed";
    run(name, Kind::Mpmc, Flavor::Bounded(16), Sides::Mixed, Mode::Pinned, messages());
}

#[test]
fn stress_mpmc_rendezvous_coroutines() {
    let name = "stress_mpmc_rendezvous_coroutines";
    let n = rendezvous_messages();
    run(name, Kind::Mpmc, Flavor::Bounded(0), Sides::Coroutines, Mode::Pinned, n);
}

#[test]
fn stress_mpmc_rendezvous_threads() {
    let name = "stress_mpmc_rendezvous_threads";
    let n = rendezvous_messages();
    run(name, Kind::Mpmc, Flavor::Bounded(0), Sides::Threads, Mode::Pinned, n);
}

#[test]
fn stress_mpmc_rendezvous_mixed() {
    let name = "stress_mpmc_rendezvous_mixed";
    let n = rendezvous_messages();
    run(name, Kind::Mpmc, Flavor::Bounded(0), Sides::Mixed, Mode::Pinned, n);
}

#[test]
fn stress_mpsc_unbounded_coroutines() {
    let name = "stress_mpsc_unbounded_coroutines";
    run(name, Kind::Mpsc, Flavor::Unbounded, Sides::Coroutines, Mode::Pinned, messages());
}

#[test]
fn stress_mpsc_unbounded_threads() {
    let name = "stress_mpsc_unbounded_threads";
    run(name, Kind::Mpsc, Flavor::Unbounded, Sides::Threads, Mode::Pinned, messages());
}

#[test]
fn stress_mpsc_unbounded_mixed() {
    let name = "stress_mpsc_unbounded_mixed";
    run(name, Kind::Mpsc, Flavor::Unbounded, Sides::Mixed, Mode::Pinned, messages());
}

#[test]
fn stress_mpsc_bounded_16_coroutines() {
    let name = "stress_mpsc_bounded_16_coroutines";
    run(name, Kind::Mpsc, Flavor::Bounded(16), Sides::Coroutines, Mode::Migrating, messages());
}

#[test]
fn stress_mpsc_bounded_1_mixed() {
    let name = "stress_mpsc_bounded_1_mixed";
    run(name, Kind::Mpsc, Flavor::Bounded(1), Sides::Mixed, Mode::Pinned, messages());
}

#[test]
fn stress_mpsc_rendezvous_coroutines() {
    let name = "stress_mpsc_rendezvous_coroutines";
    let n = rendezvous_messages();
    run(name, Kind::Mpsc, Flavor::Bounded(0), Sides::Coroutines, Mode::Pinned, n);
}

#[test]
fn stress_mpsc_rendezvous_mixed() {
    let name = "stress_mpsc_rendezvous_mixed";
    let n = rendezvous_messages();
    run(name, Kind::Mpsc, Flavor::Bounded(0), Sides::Mixed, Mode::Pinned, n);
}
