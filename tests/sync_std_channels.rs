//! std's documented behaviours of `std::sync::mpsc`, re-tested against `weft::sync`'s
//! channels: what a program ported from std by changing its `use` lines relies on. (The locks
//! are in `tests/sync_std_locks.rs`.)
//!
//! - `mpsc`: `SendError` gives the value back; `recv` drains what is buffered before
//!   `RecvError`; `try_recv` `Empty` vs `Disconnected`; `recv_timeout` `Timeout` vs
//!   `Disconnected`; a rendezvous `send` does not return before the receiver takes the value,
//!   and `try_send` on it is `Full` unless a receiver waits; `SyncSender` `Full` and
//!   `Disconnected`; `iter` ends on disconnection, `try_iter` does not block, `into_iter`; the
//!   messages of one sender arrive in order. `mpmc`: cloned receivers get each message once.
//! - The handles are `Send`/`Sync`/`Clone` as std's are: a missing bound fails the build.
//!
//! Most checks run on the test thread and in a coroutine on a two-worker runtime, pinned and
//! migrating (`support::on_thread_and_coroutines`). Where a check must know that a peer is
//! blocked in a call (a rendezvous `send`, a `recv` on an empty channel), [`start_blocked`]
//! returns only once it is: a peer thread is seen asleep in the kernel, a peer coroutine has
//! given its one worker back, inside the call.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::peers::{flag, peer, peer_on, start_blocked, Blocked, SHORT};
use support::{hang, Handle};
use weft::sync::mpsc::{self, RecvError, RecvTimeoutError, SendError, TryRecvError, TrySendError};
use weft::sync::{mpmc, Barrier, Condvar, Mutex, Once, OnceLock, RwLock};

// ---------------------------------------------------------------------------------------------
// mpsc
// ---------------------------------------------------------------------------------------------

/// Either kind of mpsc sender, for the checks that run over both kinds of channel.
enum AnySender<T> {
    Unbounded(mpsc::Sender<T>),
    Bounded(mpsc::SyncSender<T>),
}

impl<T> AnySender<T> {
    fn send(&self, value: T) -> Result<(), SendError<T>> {
        match self {
            AnySender::Unbounded(tx) => tx.send(value),
            AnySender::Bounded(tx) => tx.send(value),
        }
    }
}

impl<T> Clone for AnySender<T> {
    fn clone(&self) -> Self {
        match self {
            AnySender::Unbounded(tx) => AnySender::Unbounded(tx.clone()),
            AnySender::Bounded(tx) => AnySender::Bounded(tx.clone()),
        }
    }
}

/// `mpsc::channel()` for a `bound` of `None`, `mpsc::sync_channel(n)` for `Some(n)`.
fn channel_of<T>(bound: Option<usize>) -> (AnySender<T>, mpsc::Receiver<T>) {
    match bound {
        None => {
            let (tx, rx) = mpsc::channel();
            (AnySender::Unbounded(tx), rx)
        }
        Some(n) => {
            let (tx, rx) = mpsc::sync_channel(n);
            (AnySender::Bounded(tx), rx)
        }
    }
}

/// A peer blocked in `tx.send(value)`, and a flag it sets once `send` has returned.
fn start_blocked_send(
    tx: mpsc::SyncSender<u32>,
    value: u32,
) -> (Blocked<Result<(), SendError<u32>>>, Arc<AtomicBool>) {
    let returned = flag();
    let returned2 = Arc::clone(&returned);
    let sender = start_blocked(move || {
        let sent = tx.send(value);
        returned2.store(true, Ordering::SeqCst);
        sent
    });
    (sender, returned)
}

fn send_to_dropped_receiver() {
    let (tx, rx) = mpsc::channel();
    drop(rx);
    assert_eq!(tx.send(String::from("kept")), Err(SendError(String::from("kept"))));
    for bound in [0, 1] {
        let (tx, rx) = mpsc::sync_channel(bound);
        drop(rx);
        assert_eq!(tx.try_send(1), Err(TrySendError::Disconnected(1)), "sync_channel({bound})");
        assert_eq!(tx.send(2), Err(SendError(2)), "sync_channel({bound})");
    }

    // A sender blocked on a full channel gets its value back when the receiver goes.
    let (tx, rx) = mpsc::sync_channel(1);
    tx.send(1).unwrap();
    let sender = start_blocked(move || tx.send(2));
    drop(rx);
    assert_eq!(sender.value("the blocked sender"), Err(SendError(2)));
    // And so does one blocked on a rendezvous channel.
    let (tx, rx) = mpsc::sync_channel(0);
    let sender = start_blocked(move || tx.send(3));
    drop(rx);
    assert_eq!(sender.value("the blocked rendezvous sender"), Err(SendError(3)));
}

#[test]
fn mpsc_send_after_receiver_dropped_returns_the_value() {
    support::on_thread_and_coroutines(
        "mpsc_send_after_receiver_dropped_returns_the_value",
        send_to_dropped_receiver,
    );
}

fn recv_drains_then_disconnects() {
    let (tx, rx) = mpsc::channel();
    let tx2 = tx.clone();
    tx.send(1).unwrap();
    tx2.send(2).unwrap();
    tx.send(3).unwrap();
    drop(tx);
    assert_eq!(rx.recv(), Ok(1));
    drop(tx2);
    assert_eq!(rx.recv(), Ok(2), "buffered messages come before RecvError");
    assert_eq!(rx.recv(), Ok(3));
    assert_eq!(rx.recv(), Err(RecvError));
    assert_eq!(rx.recv(), Err(RecvError), "RecvError again");

    // Sent from a peer that is gone before the first recv.
    for bound in [None, Some(1_000)] {
        let (tx, rx) = channel_of(bound);
        let producer = peer(move || (0..1_000).for_each(|i| tx.send(i).unwrap()));
        producer.value("the producer");
        let got: Vec<u32> = std::iter::from_fn(|| rx.recv().ok()).collect();
        assert_eq!(got, (0..1_000).collect::<Vec<_>>(), "bound {bound:?}");
        assert_eq!(rx.recv(), Err(RecvError));
    }

    // A receiver blocked in recv wakes with RecvError when the last sender goes.
    let (tx, rx) = mpsc::channel::<u32>();
    let tx2 = tx.clone();
    let receiver = start_blocked(move || rx.recv());
    drop(tx);
    drop(tx2);
    assert_eq!(receiver.value("the blocked receiver"), Err(RecvError));
}

#[test]
fn mpsc_recv_drains_buffered_then_recv_error() {
    support::on_thread_and_coroutines(
        "mpsc_recv_drains_buffered_then_recv_error",
        recv_drains_then_disconnects,
    );
}

fn try_recv_states() {
    let (tx, rx) = mpsc::channel();
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    tx.send(1).unwrap();
    assert_eq!(rx.try_recv(), Ok(1));
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    tx.send(2).unwrap();
    drop(tx);
    assert_eq!(rx.try_recv(), Ok(2), "buffered before Disconnected");
    assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
    assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));

    // Rendezvous: Empty with no sender waiting; a waiting sender's value is taken.
    let (tx, rx) = mpsc::sync_channel(0);
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    let sender = start_blocked(move || {
        let sent = tx.send(5);
        (sent, tx)
    });
    assert_eq!(rx.try_recv(), Ok(5), "try_recv on a rendezvous channel with a sender waiting");
    let (sent, tx) = sender.value("the rendezvous sender");
    assert_eq!(sent, Ok(()));
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    drop(tx);
    assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
}

#[test]
fn mpsc_try_recv_empty_vs_disconnected() {
    support::on_thread_and_coroutines("mpsc_try_recv_empty_vs_disconnected", try_recv_states);
}

fn recv_timeout_states() {
    let (tx, rx) = mpsc::channel::<u32>();
    let start = Instant::now();
    assert_eq!(rx.recv_timeout(SHORT), Err(RecvTimeoutError::Timeout));
    let waited = start.elapsed();
    assert!(waited >= SHORT, "recv_timeout({SHORT:?}) timed out after {waited:?}");
    tx.send(1).unwrap();
    assert_eq!(rx.recv_timeout(SHORT), Ok(1));

    // A message that comes while it waits ends the wait.
    let receiver = start_blocked(move || (rx.recv_timeout(hang()), rx));
    tx.send(2).unwrap();
    let (got, rx) = receiver.value("the waiting receiver");
    assert_eq!(got, Ok(2));

    // The last sender going while it waits: Disconnected, not Timeout.
    let receiver = start_blocked(move || (rx.recv_timeout(hang()), rx));
    drop(tx);
    let (got, rx) = receiver.value("the waiting receiver");
    assert_eq!(got, Err(RecvTimeoutError::Disconnected));
    assert_eq!(rx.recv_timeout(SHORT), Err(RecvTimeoutError::Disconnected));

    // Buffered, then Disconnected; and the same on a bounded channel.
    let (tx, rx) = mpsc::sync_channel(2);
    let start = Instant::now();
    assert_eq!(rx.recv_timeout(SHORT), Err(RecvTimeoutError::Timeout));
    assert!(start.elapsed() >= SHORT);
    tx.send(3).unwrap();
    drop(tx);
    assert_eq!(rx.recv_timeout(SHORT), Ok(3));
    assert_eq!(rx.recv_timeout(SHORT), Err(RecvTimeoutError::Disconnected));
}

#[test]
fn mpsc_recv_timeout_timeout_vs_disconnected() {
    support::on_thread_and_coroutines(
        "mpsc_recv_timeout_timeout_vs_disconnected",
        recv_timeout_states,
    );
}

fn rendezvous_send() {
    let (tx, rx) = mpsc::sync_channel(0);
    let (sender, returned) = start_blocked_send(tx, 42);
    // The sender is blocked inside send, and no recv has been called.
    assert!(!returned.load(Ordering::SeqCst), "a rendezvous send returned before any recv");
    assert_eq!(rx.recv(), Ok(42));
    assert_eq!(sender.value("the rendezvous sender"), Ok(()));
    assert!(returned.load(Ordering::SeqCst));

    // The other way round: the receiver waits first, and a send hands the value over.
    let (tx, rx) = mpsc::sync_channel(0);
    let receiver = start_blocked(move || rx.recv());
    tx.send(43).unwrap();
    assert_eq!(receiver.value("the rendezvous receiver"), Ok(43));
}

#[test]
fn rendezvous_send_waits_for_the_receiver() {
    support::on_thread_and_coroutines("rendezvous_send_waits_for_the_receiver", rendezvous_send);
}

fn rendezvous_try_send() {
    let (tx, rx) = mpsc::sync_channel(0);
    assert_eq!(tx.try_send(1), Err(TrySendError::Full(1)), "no receiver waiting");
    let receiver = start_blocked(move || (rx.recv(), rx));
    assert_eq!(tx.try_send(2), Ok(()), "try_send on a rendezvous channel with a receiver waiting");
    let (got, rx) = receiver.value("the rendezvous receiver");
    assert_eq!(got, Ok(2));
    assert_eq!(tx.try_send(3), Err(TrySendError::Full(3)), "the receiver is no longer waiting");
    drop(rx);
    assert_eq!(tx.try_send(4), Err(TrySendError::Disconnected(4)));
}

#[test]
fn rendezvous_try_send_full_unless_a_receiver_waits() {
    support::on_thread_and_coroutines(
        "rendezvous_try_send_full_unless_a_receiver_waits",
        rendezvous_try_send,
    );
}

fn sync_sender_states() {
    let (tx, rx) = mpsc::sync_channel(2);
    assert_eq!(tx.try_send(1), Ok(()));
    assert_eq!(tx.try_send(2), Ok(()));
    assert_eq!(tx.try_send(3), Err(TrySendError::Full(3)));
    assert_eq!(rx.recv(), Ok(1));
    assert_eq!(tx.try_send(3), Ok(()));

    // A send on a full channel waits for room.
    let (sender, returned) = start_blocked_send(tx.clone(), 4);
    assert!(!returned.load(Ordering::SeqCst), "send on a full channel returned");
    assert_eq!(rx.recv(), Ok(2));
    assert_eq!(sender.value("the blocked sender"), Ok(()));
    assert_eq!(rx.recv(), Ok(3));
    assert_eq!(rx.recv(), Ok(4));
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));

    drop(rx);
    assert_eq!(tx.try_send(5), Err(TrySendError::Disconnected(5)));
    assert_eq!(tx.send(6), Err(SendError(6)));
}

#[test]
fn sync_sender_full_and_disconnected() {
    support::on_thread_and_coroutines("sync_sender_full_and_disconnected", sync_sender_states);
}

fn iterators() {
    // iter ends when the last sender goes, after everything sent.
    for bound in [None, Some(0), Some(3)] {
        let (tx, rx) = channel_of(bound);
        let producer = peer(move || (0..200).for_each(|i| tx.send(i).unwrap()));
        let got: Vec<u32> = rx.iter().collect();
        assert_eq!(got, (0..200).collect::<Vec<_>>(), "iter, bound {bound:?}");
        producer.value("the producer");
        let mut more = 0;
        for _ in &rx {
            more += 1;
        }
        assert_eq!(more, 0, "&Receiver iterates nothing after disconnection");
    }

    // try_iter takes what is there and returns, senders alive.
    let (tx, rx) = mpsc::channel();
    assert_eq!(rx.try_iter().next(), None);
    for i in 1..=3 {
        tx.send(i).unwrap();
    }
    assert_eq!(rx.try_iter().collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(rx.try_iter().next(), None);
    tx.send(4).unwrap();
    assert_eq!(rx.try_iter().collect::<Vec<_>>(), [4]);
    drop(tx);
    assert_eq!(rx.try_iter().next(), None);
}

#[test]
fn mpsc_iter_ends_on_disconnect_and_try_iter_does_not_block() {
    support::on_thread_and_coroutines(
        "mpsc_iter_ends_on_disconnect_and_try_iter_does_not_block",
        iterators,
    );
}

fn into_iter() {
    let (tx, rx) = mpsc::channel();
    let producer = peer(move || (0..100u64).for_each(|i| tx.send(i).unwrap()));
    let mut sum = 0;
    for i in rx {
        sum += i;
    }
    assert_eq!(sum, 4_950);
    producer.value("the producer");

    let (tx, rx) = mpsc::sync_channel(1);
    let producer = peer(move || ["a", "b", "c"].into_iter().for_each(|s| tx.send(s).unwrap()));
    let got: Vec<&str> = rx.into_iter().collect();
    assert_eq!(got, ["a", "b", "c"]);
    producer.value("the producer");
}

#[test]
fn mpsc_receiver_into_iter() {
    support::on_thread_and_coroutines("mpsc_receiver_into_iter", into_iter);
}

/// Producers of the ordering check, and messages each.
const PRODUCERS: usize = 4;
const PER_PRODUCER: usize = 500;

fn per_sender_order() {
    for bound in [None, Some(0), Some(4)] {
        let (tx, rx) = channel_of::<(usize, usize)>(bound);
        let producers: Vec<Handle<()>> = (0..PRODUCERS)
            .map(|p| {
                let tx = tx.clone();
                peer(move || (0..PER_PRODUCER).for_each(|i| tx.send((p, i)).unwrap()))
            })
            .collect();
        // Only the producers' clones keep the channel open.
        drop(tx);
        let mut next = [0; PRODUCERS];
        for (p, i) in rx.iter() {
            assert_eq!(i, next[p], "bound {bound:?}: producer {p}'s messages out of order");
            next[p] += 1;
        }
        assert_eq!(next, [PER_PRODUCER; PRODUCERS], "bound {bound:?}");
        producers.into_iter().for_each(|p| p.value("a producer"));
    }
}

#[test]
fn mpsc_messages_of_one_sender_arrive_in_order() {
    support::on_thread_and_coroutines(
        "mpsc_messages_of_one_sender_arrive_in_order",
        per_sender_order,
    );
}

// ---------------------------------------------------------------------------------------------
// mpmc
// ---------------------------------------------------------------------------------------------

/// Senders, receivers and messages per sender of the mpmc check.
const MPMC_SENDERS: usize = 3;
const MPMC_RECEIVERS: usize = 4;
const MPMC_PER_SENDER: usize = 2_000;

/// Receivers (clones of one, and two sharing one `Receiver` by reference: it is `Sync`), mixed
/// coroutines and threads, drain until disconnection; every message comes out exactly once.
fn mpmc_delivery<S: Clone + Send + 'static>(
    rt: &weft::Runtime,
    label: &str,
    tx: S,
    rx: mpmc::Receiver<usize>,
    send: fn(&S, usize),
) {
    let shared = Arc::new(rx.clone());
    let mut receivers: Vec<Handle<Vec<usize>>> = (0..MPMC_RECEIVERS)
        .map(|r| {
            let rx = rx.clone();
            peer_on(rt, r % 2 == 0, move || rx.iter().collect::<Vec<_>>())
        })
        .collect();
    drop(rx);
    for side in 0..2 {
        let shared = Arc::clone(&shared);
        let drain = move || std::iter::from_fn(|| shared.recv().ok()).collect::<Vec<_>>();
        receivers.push(peer_on(rt, side == 0, drain));
    }
    drop(shared);
    let senders: Vec<Handle<()>> = (0..MPMC_SENDERS)
        .map(|s| {
            let tx = tx.clone();
            peer_on(rt, s % 2 == 1, move || {
                (0..MPMC_PER_SENDER).for_each(|i| send(&tx, s * MPMC_PER_SENDER + i));
            })
        })
        .collect();
    drop(tx);
    senders.into_iter().for_each(|s| s.value(&format!("{label}: a sender")));
    let mut all: Vec<usize> =
        receivers.into_iter().flat_map(|r| r.value(&format!("{label}: a receiver"))).collect();
    all.sort_unstable();
    let total = MPMC_SENDERS * MPMC_PER_SENDER;
    let duplicates = all.windows(2).filter(|w| w[0] == w[1]).count();
    assert_eq!(duplicates, 0, "{label}: messages delivered twice");
    assert_eq!(all.len(), total, "{label}: messages lost");
    assert_eq!(all, (0..total).collect::<Vec<_>>(), "{label}");
}

#[test]
fn mpmc_receivers_clone_and_each_message_is_delivered_once() {
    let wd = support::watchdog(
        "mpmc_receivers_clone_and_each_message_is_delivered_once",
        support::budget(Duration::from_secs(120)),
    );
    for mode in support::MODES {
        let rt = support::runtime(2, mode);
        wd.watch_runtime("rt", &rt);
        wd.note(format!("{mode:?}: unbounded"));
        let (tx, rx) = mpmc::channel();
        mpmc_delivery(&rt, &format!("{mode:?} unbounded"), tx, rx, |tx, v| tx.send(v).unwrap());
        for bound in [0, 1, 16] {
            wd.note(format!("{mode:?}: sync_channel({bound})"));
            let (tx, rx) = mpmc::sync_channel(bound);
            let label = format!("{mode:?} sync_channel({bound})");
            mpmc_delivery(&rt, &label, tx, rx, |tx, v| tx.send(v).unwrap());
        }
    }
}

fn assert_send<T: Send>() {}
fn assert_sync<T: Sync>() {}
fn assert_clone<T: Clone>() {}

/// The handles are `Send`/`Sync`/`Clone` as std's are (and an mpmc `Receiver` also `Sync` and
/// `Clone`); a missing bound fails the build.
#[test]
fn channel_handles_are_send_sync_and_clone_as_std() {
    let _wd = support::watchdog(
        "channel_handles_are_send_sync_and_clone_as_std",
        support::budget(Duration::from_secs(30)),
    );
    assert_send::<mpsc::Sender<u8>>();
    assert_sync::<mpsc::Sender<u8>>();
    assert_clone::<mpsc::Sender<u8>>();
    assert_send::<mpsc::SyncSender<u8>>();
    assert_sync::<mpsc::SyncSender<u8>>();
    assert_clone::<mpsc::SyncSender<u8>>();
    assert_send::<mpsc::Receiver<u8>>();
    assert_send::<mpmc::Receiver<u8>>();
    assert_sync::<mpmc::Receiver<u8>>();
    assert_clone::<mpmc::Receiver<u8>>();
    assert_send::<Mutex<u8>>();
    assert_sync::<Mutex<u8>>();
    assert_sync::<RwLock<u8>>();
    assert_sync::<Condvar>();
    assert_sync::<Barrier>();
    assert_sync::<Once>();
    assert_sync::<OnceLock<u8>>();
    // An mpsc Receiver moved to a thread and back still receives.
    let (tx, rx) = mpsc::channel();
    let rx = std::thread::spawn(move || {
        assert_eq!(rx.recv(), Ok(1));
        rx
    });
    tx.send(1).unwrap();
    let rx = rx.join().expect("the thread");
    tx.send(2).unwrap();
    assert_eq!(rx.recv(), Ok(2));
}
