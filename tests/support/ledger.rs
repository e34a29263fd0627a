//! The ledger of the channel integrity tests (`tests/sync_channels.rs`, `tests/sync_select.rs`):
//! messages that carry their sender, their place in its sequence and a checksum of both, and
//! a shared account of every message taken.
//!
//! ```text
//!   producer p                            receiver r
//!   for seq in 0..N:                      while let Some(m) = recv():
//!       send((p, seq, check))                 check intact?              else: corrupted
//!       [a yield every 1..64 sends]           seq > last[r][p]?          else: reordered/dup
//!   drop(send)                                ledger[p][seq] += 1
//!                                         (recv fails once the last sender is gone)
//! ```
//!
//! 1. [`Ledger::new`] sizes the account: `senders × per_sender` entries, all 0.
//! 2. Each producer runs [`Ledger::produce`]; each receiver [`Ledger::consume`], or feeds what
//!    it takes to its own [`Tally`]. A fault (a failed send, a corrupted or reordered message)
//!    is recorded and the side goes on, so that the run drains.
//! 3. [`finish`] joins every side, failing after [`STALL_LIMIT`] without one message sent or
//!    received: a lost wake-up is named with the counts and the sides still running.
//! 4. [`Ledger::verify`] asserts no fault, no panic and every entry exactly 1: a lost message
//!    leaves its entry at 0, a duplicated one takes it to 2, and the failure lists them.
//!
//! The sides run as coroutines or plain threads ([`super::Side`], [`super::spawn_on`]), so that
//! each kind of waiter is woken by each kind of waker.

use std::io::Write;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex as StdMutex, PoisonError};
use std::time::Duration;

use weft::sync::mpmc;
use weft::Runtime;

use super::{pause, spawn_on, Handle, Rng, Side};

/// A producer yields after a seeded 1..=MAX_PACE sends, so coroutines on one worker take turns.
const MAX_PACE: u64 = 64;
/// How long a run may go without one message sent or received before it counts as hung: far
/// above any scheduling delay, far below the watchdog's budget.
pub const STALL_LIMIT: Duration = Duration::from_secs(20);
/// How many faults a ledger keeps word for; the rest are only counted.
const MAX_FAULTS: usize = 16;
/// How many missing or duplicated messages a failure lists.
const MAX_LISTED: usize = 8;

/// A producer's handle on the channel: `Err` gives back a message that could not be sent.
pub type SendFn = Box<dyn FnMut(Msg) -> Result<(), Msg> + Send>;
/// A receiver's handle on the channel: `None` once the channel is disconnected and empty.
pub type RecvFn = Box<dyn FnMut() -> Option<Msg> + Send>;

// ---------------------------------------------------------------------------------------------
// Messages and the ledger
// ---------------------------------------------------------------------------------------------

/// One message: who sent it, its place in that sender's sequence, and a checksum of both.
#[derive(Debug)]
pub struct Msg {
    pub sender: u32,
    pub seq: u32,
    pub check: u64,
}

fn checksum(sender: u32, seq: u32) -> u64 {
    Rng::new((u64::from(sender) << 32) | u64::from(seq)).next_u64()
}

impl Msg {
    pub fn new(sender: usize, seq: usize) -> Msg {
        let (sender, seq) = (sender as u32, seq as u32);
        Msg { sender, seq, check: checksum(sender, seq) }
    }

    pub fn is_intact(&self) -> bool {
        self.check == checksum(self.sender, self.seq)
    }
}

/// What one run expects and what it has seen so far; shared by all its sides.
pub struct Ledger {
    pub label: String,
    pub senders: usize,
    pub per_sender: usize,
    /// `seen[sender * per_sender + seq]`: how many times that message was received.
    seen: Vec<AtomicU8>,
    pub sent: Arc<AtomicUsize>,
    pub received: Arc<AtomicUsize>,
    faults: StdMutex<Vec<String>>,
    fault_count: AtomicUsize,
}

impl Ledger {
    pub fn new(wd: &super::Watchdog, label: String, senders: usize, per_sender: usize) -> Ledger {
        let sent = wd.counter(&format!("{label}: sent"));
        let received = wd.counter(&format!("{label}: received"));
        Ledger {
            label,
            senders,
            per_sender,
            seen: (0..senders * per_sender).map(|_| AtomicU8::new(0)).collect(),
            sent,
            received,
            faults: StdMutex::new(Vec::new()),
            fault_count: AtomicUsize::new(0),
        }
    }

    pub fn total(&self) -> usize {
        self.senders * self.per_sender
    }

    /// Records a fault without stopping the side that found it: the run drains either way, and
    /// the faults are reported together at the end.
    pub fn fault(&self, text: String) {
        if self.fault_count.fetch_add(1, Ordering::SeqCst) < MAX_FAULTS {
            self.faults.lock().unwrap_or_else(PoisonError::into_inner).push(text);
        }
    }

    /// Sends the `per_sender` messages of `sender` with `send`, yielding every few sends;
    /// returns how many were sent.
    pub fn produce(&self, sender: usize, mut send: SendFn, mut rng: Rng) -> usize {
        let mut until_yield = rng.range(1, MAX_PACE);
        for seq in 0..self.per_sender {
            if let Err(msg) = send(Msg::new(sender, seq)) {
                self.fault(format!("producer {sender}: send of {msg:?} failed: no receiver left"));
                return seq;
            }
            self.sent.fetch_add(1, Ordering::Relaxed);
            until_yield -= 1;
            if until_yield == 0 {
                until_yield = rng.range(1, MAX_PACE);
                pause();
            }
        }
        self.per_sender
    }

    /// Receives with `recv` until it reports disconnection; returns how many were received.
    pub fn consume(&self, who: &str, mut recv: RecvFn) -> usize {
        let mut tally = Tally::new(self, who);
        while let Some(msg) = recv() {
            tally.take(msg);
        }
        tally.count
    }

    /// The first `MAX_LISTED` messages received `times` times, and how many there are.
    pub fn entries_seen(&self, matches: impl Fn(u8) -> bool) -> (usize, Vec<(usize, usize)>) {
        let mut count = 0;
        let mut listed = Vec::new();
        for (i, seen) in self.seen.iter().enumerate() {
            if matches(seen.load(Ordering::SeqCst)) {
                count += 1;
                if listed.len() < MAX_LISTED {
                    listed.push((i / self.per_sender, i % self.per_sender));
                }
            }
        }
        (count, listed)
    }

    /// The counts, for failure messages and the report line.
    pub fn counts(&self) -> String {
        format!(
            "sent {} and received {} of {}",
            self.sent.load(Ordering::SeqCst),
            self.received.load(Ordering::SeqCst),
            self.total()
        )
    }

    /// After every side has finished: no fault, no panic, and every message exactly once.
    pub fn verify(&self, panics: &[String]) {
        let faults = self.faults.lock().unwrap_or_else(PoisonError::into_inner);
        assert!(
            panics.is_empty() && faults.is_empty(),
            "{}: {} faults, {} panics ({}): faults {faults:#?}, panics {panics:#?}",
            self.label,
            self.fault_count.load(Ordering::SeqCst),
            panics.len(),
            self.counts()
        );
        let (missing, missing_listed) = self.entries_seen(|n| n == 0);
        let (doubled, doubled_listed) = self.entries_seen(|n| n > 1);
        assert!(
            missing == 0 && doubled == 0,
            "{}: {missing} messages lost, {doubled} received more than once ({}); \
             lost (sender, seq): {missing_listed:?}; doubled: {doubled_listed:?}",
            self.label,
            self.counts()
        );
        assert_eq!(self.received.load(Ordering::SeqCst), self.total(), "{}: received", self.label);
        assert_eq!(self.sent.load(Ordering::SeqCst), self.total(), "{}: sent", self.label);
    }
}

/// One receiver's view: the last `seq` it took from each sender.
pub struct Tally<'a> {
    ledger: &'a Ledger,
    who: &'a str,
    last: Vec<Option<u32>>,
    pub count: usize,
}

impl<'a> Tally<'a> {
    pub fn new(ledger: &'a Ledger, who: &'a str) -> Tally<'a> {
        Tally { ledger, who, last: vec![None; ledger.senders], count: 0 }
    }

    /// Checks `msg` against this receiver's order and enters it in the ledger.
    pub fn take(&mut self, msg: Msg) {
        let ledger = self.ledger;
        let (sender, seq) = (msg.sender as usize, msg.seq as usize);
        self.count += 1;
        ledger.received.fetch_add(1, Ordering::Relaxed);
        if !msg.is_intact() || sender >= ledger.senders || seq >= ledger.per_sender {
            ledger.fault(format!("{}: message #{} is corrupted: {msg:?}", self.who, self.count));
            return;
        }
        if let Some(last) = self.last[sender] {
            if msg.seq <= last {
                ledger.fault(format!(
                    "{}: from sender {sender}, seq {seq} came after seq {last}",
                    self.who
                ));
            }
        }
        self.last[sender] = Some(msg.seq);
        ledger.seen[sender * ledger.per_sender + seq].fetch_add(1, Ordering::SeqCst);
    }
}

// ---------------------------------------------------------------------------------------------
// Producers
// ---------------------------------------------------------------------------------------------

/// A sending end of any kind of `weft::sync` channel of [`Msg`].
pub trait Sending: Clone + Send + 'static {
    /// Sends `msg`; gives it back if no receiver is left.
    fn send_msg(&self, msg: Msg) -> Result<(), Msg>;
}

macro_rules! sending {
    ($($sender:ty),*) => {$(
        impl Sending for $sender {
            fn send_msg(&self, msg: Msg) -> Result<(), Msg> {
                self.send(msg).map_err(|e| e.0)
            }
        }
    )*};
}

// `mpsc` shares its sending ends with `mpmc`.
sending!(mpmc::Sender<Msg>, mpmc::SyncSender<Msg>);

/// `n` producers' handles on the sending end `tx`, each a clone of it.
pub fn senders(tx: &impl Sending, n: usize) -> Vec<SendFn> {
    (0..n)
        .map(|_| {
            let tx = tx.clone();
            Box::new(move |msg| tx.send_msg(msg)) as SendFn
        })
        .collect()
}

/// Starts producer `p` of `senders` on `side(p)` (a coroutine of `rt` or a thread), running
/// [`Ledger::produce`] with a generator forked from `rng`; returns the sides by name, for
/// [`finish`].
pub fn spawn_producers(
    ledger: &Arc<Ledger>,
    senders: Vec<SendFn>,
    side: impl Fn(usize) -> Side,
    rt: Option<&Runtime>,
    rng: &mut Rng,
) -> Vec<(String, Handle<usize>)> {
    senders
        .into_iter()
        .enumerate()
        .map(|(p, send)| {
            let who = format!("producer {p} ({:?})", side(p));
            let (ledger, rng) = (Arc::clone(ledger), rng.fork());
            let body = move || ledger.produce(p, send, rng);
            let handle = spawn_on(side(p), rt, &who, body);
            (who, handle)
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Finishing a run
// ---------------------------------------------------------------------------------------------

/// Waits for every side to finish, failing if the ledger stops moving for `STALL_LIMIT` first;
/// returns the sides' panics, by name.
pub fn finish<T>(ledger: &Ledger, sides: Vec<(String, Handle<T>)>) -> Vec<String> {
    let progress = || ledger.sent.load(Ordering::SeqCst) + ledger.received.load(Ordering::SeqCst);
    let mut last = progress();
    loop {
        super::wait_until(STALL_LIMIT, || {
            progress() != last || sides.iter().all(|(_, h)| h.is_finished())
        });
        if sides.iter().all(|(_, h)| h.is_finished()) {
            break;
        }
        let now = progress();
        if now == last {
            let running: Vec<&str> = sides
                .iter()
                .filter(|(_, h)| !h.is_finished())
                .map(|(name, _)| name.as_str())
                .take(MAX_LISTED)
                .collect();
            let (missing, listed) = ledger.entries_seen(|n| n == 0);
            let text = format!(
                "{}: nothing sent or received for {STALL_LIMIT:?}: a lost \
                 wake-up; {}; not yet received: {missing}, such as (sender, seq) {listed:?}; \
                 still running: {running:?}",
                ledger.label,
                ledger.counts()
            );
            // Straight to stderr, as the watchdog writes: libtest's capture would lose the
            // message if the runtime's shutdown, behind the stuck sides, ends in the abort.
            let _ = writeln!(std::io::stderr(), "{text}");
            panic!("{text}");
        }
        last = now;
    }
    sides
        .into_iter()
        .filter_map(|(name, handle)| {
            handle
                .join()
                .err()
                .map(|p| format!("{name} panicked: {}", super::panic_message(&*p).unwrap_or("?")))
        })
        .collect()
}
