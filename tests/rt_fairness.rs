//! Fairness on one worker: a `yield_now` hog must neither starve nor be starved by a
//! ping-pong pair sharing the worker.
//!
//! Three coroutines share a 1-worker runtime: the hog (`loop { hog += 1; yield_now() }`) and a
//! pair A, B passing a turn back and forth (`hops += 1` per pass). The run stops when the pair
//! reaches `STEPS` hops; the hog's count is read at that moment.
//!
//! The ratio is *hog yields per fair share of hops*, 1.0 under a fair round-robin:
//!
//! - park/unpark pair: only one partner is runnable at a time, so round-robin alternates the
//!   hog with the pair: one hop per hog yield, ratio = `hog / hops`;
//! - yield pair: both partners are runnable, round-robin runs hog, A, B, and each partner's
//!   turn is one hop: two hops per hog yield, ratio = `hog / (hops / 2)`.
//!
//! A scheduler that runs woken coroutines ahead of the queue without bound starves the hog
//! (ratio → 0); one whose `yield_now` does not really yield starves the pair (ratio → ∞). The
//! test asserts 0.5 <= ratio <= 2.
//!
//! Sizes: 10,000 hops by default, 200,000 under `WEFT_STRESS=1`.

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use support::Mode;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Pass {
    /// The waiting partner parks; the passer unparks it.
    ParkUnpark,
    /// The waiting partner spins on `yield_now`.
    Yield,
}

struct Shared {
    steps: usize,
    pass: Pass,
    started: AtomicUsize,
    stop: AtomicBool,
    hog: Arc<AtomicUsize>,
    hops: Arc<AtomicUsize>,
    /// The hog's count when the pair made its last hop.
    hog_at_finish: AtomicUsize,
    /// Whose turn it is: 0 for A, 1 for B.
    turn: AtomicUsize,
    players: [OnceLock<weft::Coroutine>; 2],
}

impl Shared {
    /// All three coroutines are running before anyone counts.
    fn gate(&self) {
        self.started.fetch_add(1, Ordering::SeqCst);
        while self.started.load(Ordering::SeqCst) < 3 {
            weft::yield_now();
        }
    }

    fn hog(&self) {
        self.gate();
        while !self.stop.load(Ordering::SeqCst) {
            self.hog.fetch_add(1, Ordering::SeqCst);
            weft::yield_now();
        }
    }

    fn player(&self, me: usize) {
        self.players[me].set(weft::current()).expect("player slot set twice");
        self.gate();
        let partner = self.players[1 - me].get().expect("partner registered before the gate");
        loop {
            while self.turn.load(Ordering::SeqCst) != me && !self.stop.load(Ordering::SeqCst) {
                match self.pass {
                    Pass::ParkUnpark => weft::park(),
                    Pass::Yield => weft::yield_now(),
                }
            }
            if self.stop.load(Ordering::SeqCst) {
                break;
            }
            if self.hops.fetch_add(1, Ordering::SeqCst) + 1 == self.steps {
                self.hog_at_finish.store(self.hog.load(Ordering::SeqCst), Ordering::SeqCst);
                self.stop.store(true, Ordering::SeqCst);
            }
            self.turn.store(1 - me, Ordering::SeqCst);
            if self.pass == Pass::ParkUnpark {
                partner.unpark();
            }
        }
        partner.unpark();
    }
}

fn fairness(name: &str, mode: Mode, pass: Pass) {
    let steps = support::sized(10_000, 200_000);
    let wd = support::watchdog(name, support::budget(Duration::from_secs(120)));
    let rt = support::runtime(1, mode);
    wd.watch_runtime("rt", &rt);
    assert_eq!(rt.metrics().workers.len(), 1, "a 1-worker runtime");
    let shared = Arc::new(Shared {
        steps,
        pass,
        started: AtomicUsize::new(0),
        stop: AtomicBool::new(false),
        hog: wd.counter("hog yields"),
        hops: wd.counter("ping-pong hops"),
        hog_at_finish: AtomicUsize::new(0),
        turn: AtomicUsize::new(0),
        players: [OnceLock::new(), OnceLock::new()],
    });
    rt.block_on(|| {
        let spawn = |role: usize| {
            let shared = Arc::clone(&shared);
            weft::spawn(move || match role {
                0 | 1 => shared.player(role),
                _ => shared.hog(),
            })
        };
        let handles = [spawn(2), spawn(0), spawn(1)];
        for handle in handles {
            handle.join().expect("fairness coroutine");
        }
    });

    let hog = shared.hog_at_finish.load(Ordering::SeqCst) as f64;
    let fair_hops_per_hog_yield = match pass {
        Pass::ParkUnpark => 1.0,
        Pass::Yield => 2.0,
    };
    let ratio = hog / (steps as f64 / fair_hops_per_hog_yield);
    println!("[{name}] {steps} hops, {hog} hog yields: ratio {ratio:.3} (1.0 is fair)");
    assert!(
        (0.5..=2.0).contains(&ratio),
        "unfair: {hog} hog yields against {steps} hops ({pass:?} pair, {mode:?}): ratio {ratio:.3} not in [0.5, 2]"
    );
}

#[test]
fn fairness_yield_hog_vs_park_pair_pinned() {
    fairness("fairness_yield_hog_vs_park_pair_pinned", Mode::Pinned, Pass::ParkUnpark);
}

#[test]
fn fairness_yield_hog_vs_park_pair_migrating() {
    fairness("fairness_yield_hog_vs_park_pair_migrating", Mode::Migrating, Pass::ParkUnpark);
}

#[test]
fn fairness_yield_hog_vs_yield_pair_pinned() {
    fairness("fairness_yield_hog_vs_yield_pair_pinned", Mode::Pinned, Pass::Yield);
}

#[test]
fn fairness_yield_hog_vs_yield_pair_migrating() {
    fairness("fairness_yield_hog_vs_yield_pair_migrating", Mode::Migrating, Pass::Yield);
}
