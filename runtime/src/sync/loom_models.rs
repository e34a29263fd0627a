//! loom models of the wait-queue hand-off and the channel's slot protocol.
//!
//! Under `--cfg loom` the primitives' atomics and internal lock are loom's, and a plain
//! thread parks through loom's `park`/`unpark`, so these models run the real code: the lock
//! word and its queue, the park state word, and the waker. loom explores the interleavings
//! (bounded by a preemption bound to keep CI time modest) and fails on a deadlock, that is on a
//! lost wake-up, or on any failed assertion.
//!
//! Run: `RUSTFLAGS="--cfg loom" cargo test -p weft-runtime --release --lib loom_model`.

use loom::sync::Arc;
use loom::thread;

use super::mpsc::{self, RecvError, TryRecvError};
use super::{Condvar, Mutex, RwLock, Semaphore};

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(3);
    builder.check(f);
}

/// Two threads contend for a mutex: both get in, one at a time, and neither waits forever
/// (the unlock that finds `QUEUED` always reaches the waiter's entry). First with unlocks that
/// free the lock and let the woken waiter compete, then with direct hand-offs.
#[test]
fn loom_model_mutex_barging() {
    mutex_contention(false);
}

#[test]
fn loom_model_mutex_hand_off() {
    mutex_contention(true);
}

fn mutex_contention(hand_off: bool) {
    super::mutex::LOOM_HAND_OFF.with(|h| h.set(hand_off));
    model(|| {
        let m = Arc::new(Mutex::new(0));
        let m2 = m.clone();
        let t = thread::spawn(move || *m2.lock().unwrap() += 1);
        *m.lock().unwrap() += 1;
        t.join().unwrap();
        assert_eq!(*m.lock().unwrap(), 2);
    });
}

/// A writer queued behind a reader is granted the lock when the reader leaves, whichever of
/// the reader's fast-path release and the writer's queueing comes first.
#[test]
fn loom_model_rwlock_reader_to_writer() {
    model(|| {
        let l = Arc::new(RwLock::new(0));
        let l2 = l.clone();
        let r = l.read().unwrap();
        let t = thread::spawn(move || *l2.write().unwrap() += 1);
        drop(r);
        t.join().unwrap();
        assert_eq!(*l.read().unwrap(), 1);
    });
}

/// A released permit reaches the waiter queued for it.
#[test]
fn loom_model_semaphore_grant() {
    model(|| {
        let s = Arc::new(Semaphore::new(1));
        let s2 = s.clone();
        let held = s.acquire();
        let t = thread::spawn(move || s2.acquire().forget());
        drop(held);
        t.join().unwrap();
        assert_eq!(s.available_permits(), 0);
    });
}

/// A notify after the condition changed under the mutex reaches a waiter that checked the
/// condition before: the waiter queues before it releases the mutex.
#[test]
fn loom_model_condvar_notify_is_not_lost() {
    model(|| {
        let pair = Arc::new((Mutex::new(false), Condvar::new()));
        let pair2 = pair.clone();
        let t = thread::spawn(move || {
            let (flag, cv) = &*pair2;
            *flag.lock().unwrap() = true;
            cv.notify_one();
        });
        let (flag, cv) = &*pair;
        let guard = cv.wait_while(flag.lock().unwrap(), |set| !*set).unwrap();
        assert!(*guard);
        drop(guard);
        t.join().unwrap();
    });
}

/// Rendezvous: the sender's message sits in its queue entry until the receiver takes it
/// (or is handed over directly to a receiver already parked), and is received exactly once.
#[test]
fn loom_model_rendezvous_slot() {
    model(|| {
        let (tx, rx) = mpsc::sync_channel(0);
        let t = thread::spawn(move || tx.send(7).unwrap());
        assert_eq!(rx.recv(), Ok(7));
        t.join().unwrap();
        assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
    });
}

/// A bounded channel of one slot: the second send parks with its message in its entry, the
/// receive that frees the slot moves it in, and nothing is lost or duplicated.
#[test]
fn loom_model_bounded_slot_moves_waiting_message() {
    model(|| {
        let (tx, rx) = mpsc::sync_channel(1);
        let t = thread::spawn(move || {
            tx.send(1).unwrap();
            tx.send(2).unwrap();
        });
        assert_eq!(rx.recv(), Ok(1));
        assert_eq!(rx.recv(), Ok(2));
        assert_eq!(rx.recv(), Err(RecvError));
        t.join().unwrap();
    });
}

/// A receiver parked on an empty channel is woken by the last sender's drop, and a message
/// sent before that drop is received first.
#[test]
fn loom_model_disconnect_wakes_receiver() {
    model(|| {
        let (tx, rx) = mpsc::channel();
        let t = thread::spawn(move || {
            tx.send(5).unwrap();
            drop(tx);
        });
        assert_eq!(rx.recv(), Ok(5));
        assert_eq!(rx.recv(), Err(RecvError));
        t.join().unwrap();
    });
}
