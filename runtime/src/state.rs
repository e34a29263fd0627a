//! The park state word: the one protocol by which every blocking call in weft sleeps and wakes.
//!
//! Each coroutine (and each plain thread that blocks in weft) owns one `State`, a packed
//! `AtomicU64`:
//!
//! ```text
//!  63                                    8   7   6    5     4     3     2    1   0
//! +-----------------------------------+-----+-----+-----+-----+-----+-----+--------+
//! |        generation (56 bits)       |  -  | UNI | CAN | TOK | USR | NOT |  LIFE  |
//! +-----------------------------------+-----+-----+-----+-----+-----+-----+--------+
//!
//! LIFE  QUEUED  (0)  in exactly one run queue, or handed to a worker, or not started
//!       RUNNING (1)  on a worker (or, for a thread, awake)
//!       PARKED  (2)  suspended; the next wake of this generation re-queues it
//!       DONE    (3)  finished
//! NOT   a wake of the current generation arrived while RUNNING, before the park was committed
//! USR   the current park is a user `park()`, which `unpark()` may end
//! TOK   the `unpark()` token of `std::thread::park` semantics
//! CAN   the runtime is shutting down: interruptible parks return at once
//! UNI   the current park is uninterruptible: cancellation marks it but does not end it, so it
//!       ends only by a wake of its generation (or its own deadline)
//! ```
//!
//! # The protocol
//!
//! 1. The coroutine, still RUNNING on its own stack, calls [`State::begin_park`]. That bumps the
//!    generation `g` and clears a stale `NOT`. Nothing yet says it is parked.
//! 2. It registers wakers `(state, g)` wherever it waits (a wait list, a timer), then suspends
//!    and hands its worker a park request.
//! 3. The worker, back on its own stack, calls [`State::commit_park`]: RUNNING(g) → PARKED(g).
//!    If `NOT` was set, a wake came between 1 and 3; the commit instead returns `Requeue` and the
//!    worker queues the coroutine again at once.
//! 4. A waker calls [`State::wake`] with `g`. A different generation is stale and ignored: for
//!    example a timer that fires after the data already came. PARKED(g) → QUEUED(g) makes the
//!    waker the one owner of the re-queue; RUNNING(g) only sets `NOT`; QUEUED and DONE ignore it.
//! 5. The worker that pops the coroutine calls [`State::start_running`]: QUEUED → RUNNING.
//!
//! # Why a coroutine is never in two queues and never resumed twice
//!
//! Only two transitions put a coroutine into a queue: PARKED → QUEUED (by the wake that wins the
//! compare-exchange) and the worker's own RUNNING → QUEUED (commit with `NOT`, or a yield). Both
//! leave the state QUEUED, from which no wake enqueues again, and the only way out of QUEUED is
//! `start_running`, done by the single worker that popped it. A coroutine is resumed only after
//! that pop, so it is resumed once per enqueue.
//!
//! A coroutine that yields stays RUNNING while it waits in its worker's queue: no wake queues
//! a RUNNING coroutine (they set `NOT`, or `TOK` since `USR` is clear after a resume), so the
//! worker's own push is still its only queue entry, and resuming it skips the transition
//! ([`State::resume_from_yield`]). That saves two atomic read-modify-writes per yield.
//!
//! # Why no wake-up is lost
//!
//! A wake of generation `g` either finds PARKED(g), and enqueues, or RUNNING(g), and sets `NOT`,
//! which step 3 observes in the same compare-exchange that would have parked. A wake can reach
//! the word only after the waker was registered in step 2, so it never sees an older generation
//! than `g`.
//!
//! # Why a waker's writes are seen
//!
//! A waker writes its data (a flag, a message) and then wakes; the owner's next transition
//! must see that data, or it re-checks its condition, finds it stale, and parks for good.
//! Every wake-side transition ([`State::wake`], [`State::unpark`], [`State::cancel`]) is
//! therefore an `AcqRel` read-modify-write of the word *even when it changes nothing*: when
//! the token is already set, or another waker already set `NOT`. The owner's later
//! transitions are read-modify-writes too, so they read from the waker's write or a later one
//! in the word's modification order, and acquire what the waker released. A plain load on the
//! no-op path lost exactly this: a coroutine holding a stale token consumed it, re-read the
//! flag, saw the old value and parked for good, while the unpark that came with the new value
//! had found the token set and written nothing (the loom model
//! `unpark_with_a_stale_token_is_not_lost` below fails on that code every time).

#[cfg(loom)]
use loom::sync::atomic::{AtomicU64, Ordering::AcqRel, Ordering::Acquire};
#[cfg(not(loom))]
use std::sync::atomic::{AtomicU64, Ordering::AcqRel, Ordering::Acquire};

const LIFE_MASK: u64 = 0b11;
const QUEUED: u64 = 0;
const RUNNING: u64 = 1;
const PARKED: u64 = 2;
const DONE: u64 = 3;
const NOTIFIED: u64 = 1 << 2;
const USER: u64 = 1 << 3;
const TOKEN: u64 = 1 << 4;
const CANCELLED: u64 = 1 << 5;
const UNINTERRUPTIBLE: u64 = 1 << 6;
const GEN_SHIFT: u32 = 8;
const GEN_ONE: u64 = 1 << GEN_SHIFT;

/// What kind of wait a park is, which decides what may end it early.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ParkKind {
    /// `weft::park`: the unpark token ends it; so does cancellation.
    User,
    /// A blocking call that can report an error: cancellation ends it.
    Interruptible,
    /// A wait that must not end before its condition, whatever happens (scope and join waits,
    /// which guard borrowed data).
    Uninterruptible,
}

/// Why [`State::begin_park`] declined to park.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NoPark {
    /// An `unpark` token was waiting and is now consumed.
    Token,
    /// The runtime is shutting down.
    Cancelled,
}

/// Result of [`State::commit_park`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub(crate) enum Commit {
    /// Now PARKED: the wakers own the way back.
    Parked,
    /// A wake arrived first: the state is QUEUED and the caller queues it again.
    Requeue,
}

/// The packed park state word; see the module docs.
#[derive(Debug)]
pub(crate) struct State(AtomicU64);

impl State {
    /// A state for a coroutine that is about to be queued for its first run.
    pub(crate) fn new_queued() -> State {
        State(AtomicU64::new(QUEUED))
    }

    /// A state for a plain thread, which is awake when created.
    pub(crate) fn new_running() -> State {
        State(AtomicU64::new(RUNNING))
    }

    fn update(&self, mut f: impl FnMut(u64) -> Option<u64>) -> Result<u64, u64> {
        let mut cur = self.0.load(Acquire);
        loop {
            let Some(next) = f(cur) else { return Err(cur) };
            match self.0.compare_exchange_weak(cur, next, AcqRel, Acquire) {
                Ok(prev) => return Ok(prev),
                Err(actual) => cur = actual,
            }
        }
    }

    /// Step 1: opens park generation `g` and returns it, or says why not to park.
    /// Called by the owner while RUNNING.
    pub(crate) fn begin_park(&self, kind: ParkKind) -> Result<u64, NoPark> {
        let mut refused = None;
        let prev = self.update(|cur| {
            debug_assert_eq!(cur & LIFE_MASK, RUNNING, "begin_park while not running");
            if kind != ParkKind::Uninterruptible && cur & CANCELLED != 0 {
                refused = Some(NoPark::Cancelled);
                return None;
            }
            if kind == ParkKind::User && cur & TOKEN != 0 {
                refused = Some(NoPark::Token);
                return Some(cur & !TOKEN);
            }
            refused = None;
            let kind_bits = match kind {
                ParkKind::User => USER,
                ParkKind::Interruptible => 0,
                ParkKind::Uninterruptible => UNINTERRUPTIBLE,
            };
            Some((cur & !(NOTIFIED | USER | UNINTERRUPTIBLE)).wrapping_add(GEN_ONE) | kind_bits)
        });
        match (prev, refused) {
            (_, Some(why)) => Err(why),
            (Ok(prev), None) => Ok(gen_of(prev.wrapping_add(GEN_ONE))),
            (Err(_), None) => unreachable!("begin_park update declined without a reason"),
        }
    }

    /// Step 3: RUNNING → PARKED, or → QUEUED if a wake came first. Called by the worker (or the
    /// thread) after the owner stopped running.
    pub(crate) fn commit_park(&self) -> Commit {
        let prev = self
            .update(|cur| {
                debug_assert_eq!(cur & LIFE_MASK, RUNNING, "commit_park while not running");
                if cur & NOTIFIED != 0 {
                    Some((cur & !(NOTIFIED | LIFE_MASK)) | QUEUED)
                } else {
                    Some((cur & !LIFE_MASK) | PARKED)
                }
            })
            .unwrap_or_else(|cur| cur);
        if prev & NOTIFIED != 0 {
            Commit::Requeue
        } else {
            Commit::Parked
        }
    }

    /// Step 4: wakes park generation `gen`. Returns true when the caller now owns the re-queue.
    pub(crate) fn wake(&self, gen: u64) -> bool {
        let prev = self.publish(|cur| {
            if gen_of(cur) != gen {
                return cur;
            }
            match cur & LIFE_MASK {
                PARKED => (cur & !LIFE_MASK) | QUEUED,
                RUNNING => cur | NOTIFIED,
                _ => cur,
            }
        });
        gen_of(prev) == gen && prev & LIFE_MASK == PARKED
    }

    /// `unpark()`: ends a user park in progress, or leaves the token for the next one.
    /// Returns true when the caller now owns the re-queue.
    pub(crate) fn unpark(&self) -> bool {
        let prev = self.publish(|cur| {
            let in_user_park = cur & USER != 0;
            match cur & LIFE_MASK {
                PARKED if in_user_park => (cur & !LIFE_MASK) | QUEUED,
                RUNNING if in_user_park => cur | NOTIFIED,
                DONE => cur,
                // Not in a user park, or already woken from one (say by its timeout): keep the
                // token, so the next park returns at once. A spurious return is allowed; a lost
                // token is not.
                _ => cur | TOKEN,
            }
        });
        prev & LIFE_MASK == PARKED && prev & USER != 0
    }

    /// Marks the owner cancelled and wakes its current park, unless that park is
    /// uninterruptible: such a park (a lock's, a join's) ends only by its own wake, so whoever
    /// holds its waker may treat the wake as the hand-off it stands for. Returns true when the
    /// caller now owns the re-queue.
    pub(crate) fn cancel(&self) -> bool {
        let prev = self.publish(|cur| match cur & LIFE_MASK {
            _ if cur & UNINTERRUPTIBLE != 0 => cur | CANCELLED,
            PARKED => (cur & !LIFE_MASK) | QUEUED | CANCELLED,
            RUNNING => cur | NOTIFIED | CANCELLED,
            DONE => cur,
            _ => cur | CANCELLED,
        });
        prev & LIFE_MASK == PARKED && prev & UNINTERRUPTIBLE == 0
    }

    /// A wake-side transition: always a read-modify-write, even when `f` changes nothing.
    /// See "Why a waker's writes are seen" in the module docs. Returns the previous word.
    fn publish(&self, f: impl Fn(u64) -> u64) -> u64 {
        self.update(|cur| Some(f(cur))).unwrap_or_else(|cur| cur)
    }

    /// Step 5: QUEUED → RUNNING, ending the user park if one was in progress. Returns whether
    /// the owner is cancelled. Only the worker that popped the coroutine calls this.
    pub(crate) fn start_running(&self) -> bool {
        let prev = self
            .update(|cur| {
                debug_assert_eq!(cur & LIFE_MASK, QUEUED, "resumed while not queued");
                Some((cur & !(LIFE_MASK | USER | UNINTERRUPTIBLE)) | RUNNING)
            })
            .unwrap_or_else(|cur| cur);
        prev & CANCELLED != 0
    }

    /// For a popped coroutine that may have yielded (and so is still RUNNING): whether it is
    /// cancelled, or `None` if it is QUEUED and needs [`State::start_running`].
    pub(crate) fn resume_from_yield(&self) -> Option<bool> {
        let cur = self.0.load(Acquire);
        (cur & LIFE_MASK == RUNNING).then_some(cur & CANCELLED != 0)
    }

    /// A thread that stops waiting on its own (a timeout): PARKED or QUEUED → RUNNING.
    /// Returns true if it was still PARKED, that is, no wake came.
    pub(crate) fn withdraw(&self) -> bool {
        let prev = self
            .update(|cur| Some((cur & !(LIFE_MASK | USER | NOTIFIED | UNINTERRUPTIBLE)) | RUNNING))
            .unwrap_or_else(|cur| cur);
        prev & LIFE_MASK == PARKED
    }

    /// → DONE. Later wakes are ignored.
    pub(crate) fn finish(&self) {
        let _ = self.update(|cur| Some((cur & !LIFE_MASK) | DONE));
    }

    /// Whether park generation `gen` is still waiting: a timer for it is still useful.
    pub(crate) fn is_parked_at(&self, gen: u64) -> bool {
        let cur = self.0.load(Acquire);
        gen_of(cur) == gen && cur & LIFE_MASK == PARKED
    }

    /// Whether park generation `gen` may still be waiting: it is the current generation, and
    /// the owner is running (about to commit it) or parked. False means a waker for `gen` can
    /// only be stale.
    pub(crate) fn may_be_in_park(&self, gen: u64) -> bool {
        let cur = self.0.load(Acquire);
        gen_of(cur) == gen && matches!(cur & LIFE_MASK, RUNNING | PARKED)
    }

    /// Whether the state is PARKED (for a thread waiting for its wake).
    pub(crate) fn is_parked(&self) -> bool {
        self.0.load(Acquire) & LIFE_MASK == PARKED
    }
}

fn gen_of(word: u64) -> u64 {
    word >> GEN_SHIFT
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn masks_do_not_overlap() {
        let flags = [LIFE_MASK, NOTIFIED, USER, TOKEN, CANCELLED, UNINTERRUPTIBLE];
        for (i, a) in flags.iter().enumerate() {
            for b in &flags[i + 1..] {
                assert_eq!(a & b, 0);
            }
            assert!(*a < GEN_ONE);
        }
    }

    fn running() -> State {
        let s = State::new_queued();
        assert!(!s.start_running());
        s
    }

    #[test]
    fn wake_before_commit_requeues() {
        let s = running();
        let g = s.begin_park(ParkKind::Interruptible).unwrap();
        assert!(!s.wake(g), "a wake while running does not enqueue");
        assert_eq!(s.commit_park(), Commit::Requeue);
        assert!(!s.wake(g), "a second wake of the same park is a no-op");
        assert!(!s.start_running());
    }

    #[test]
    fn wake_after_commit_enqueues_once() {
        let s = running();
        let g = s.begin_park(ParkKind::Interruptible).unwrap();
        assert_eq!(s.commit_park(), Commit::Parked);
        assert!(s.wake(g));
        assert!(!s.wake(g));
    }

    #[test]
    fn stale_generation_is_ignored() {
        let s = running();
        let g1 = s.begin_park(ParkKind::Interruptible).unwrap();
        assert_eq!(s.commit_park(), Commit::Parked);
        assert!(s.wake(g1));
        s.start_running();
        // A second waker of the first park arrives late, while running: it sets NOT, which
        // the next begin_park must clear.
        assert!(!s.wake(g1));
        let g2 = s.begin_park(ParkKind::Interruptible).unwrap();
        assert_ne!(g1, g2);
        assert!(!s.wake(g1));
        assert_eq!(s.commit_park(), Commit::Parked);
        assert!(!s.is_parked_at(g1));
        assert!(s.is_parked_at(g2));
        assert!(s.wake(g2));
    }

    #[test]
    fn unpark_token_is_kept_and_consumed() {
        let s = running();
        assert!(!s.unpark());
        assert_eq!(s.begin_park(ParkKind::User), Err(NoPark::Token));
        // Consumed: the next park waits.
        let g = s.begin_park(ParkKind::User).unwrap();
        assert_eq!(s.commit_park(), Commit::Parked);
        assert!(s.unpark());
        assert!(!s.is_parked_at(g));
    }

    #[test]
    fn unpark_does_not_end_an_internal_park() {
        let s = running();
        let g = s.begin_park(ParkKind::Interruptible).unwrap();
        assert_eq!(s.commit_park(), Commit::Parked);
        assert!(!s.unpark());
        assert!(s.is_parked_at(g));
        assert!(s.wake(g));
        s.start_running();
        assert_eq!(s.begin_park(ParkKind::User), Err(NoPark::Token));
    }

    #[test]
    fn unpark_after_user_park_timed_out_keeps_token() {
        let s = running();
        let g = s.begin_park(ParkKind::User).unwrap();
        assert_eq!(s.commit_park(), Commit::Parked);
        assert!(s.wake(g), "the timer fires");
        assert!(!s.unpark(), "already queued: the token is kept instead");
        s.start_running();
        assert_eq!(s.begin_park(ParkKind::User), Err(NoPark::Token));
    }

    #[test]
    fn a_yielded_coroutine_is_not_queued_by_wakes() {
        let s = running();
        let g = s.begin_park(ParkKind::Interruptible).unwrap();
        assert_eq!(s.commit_park(), Commit::Parked);
        assert!(s.wake(g));
        s.start_running();
        // It yields: still RUNNING in its worker's queue.
        assert_eq!(s.resume_from_yield(), Some(false));
        assert!(!s.wake(g), "a late wake does not queue it twice");
        assert!(!s.unpark(), "unpark leaves a token");
        assert!(!s.cancel(), "cancel only marks it");
        assert_eq!(s.resume_from_yield(), Some(true));
        assert_eq!(s.begin_park(ParkKind::User), Err(NoPark::Cancelled));
    }

    #[test]
    fn cancel_wakes_and_refuses_later_parks() {
        let s = running();
        let _ = s.begin_park(ParkKind::Interruptible).unwrap();
        assert_eq!(s.commit_park(), Commit::Parked);
        assert!(s.cancel());
        assert!(s.start_running());
        assert_eq!(s.begin_park(ParkKind::Interruptible), Err(NoPark::Cancelled));
        assert_eq!(s.begin_park(ParkKind::User), Err(NoPark::Cancelled));
        assert!(s.begin_park(ParkKind::Uninterruptible).is_ok());
    }

    #[test]
    fn cancel_marks_but_does_not_end_an_uninterruptible_park() {
        let s = running();
        let g = s.begin_park(ParkKind::Uninterruptible).unwrap();
        assert!(!s.cancel(), "a committing uninterruptible park is not notified");
        assert_eq!(s.commit_park(), Commit::Parked);
        assert!(!s.cancel(), "a parked uninterruptible park is not ended");
        assert!(s.wake(g), "its own wake still ends it");
        assert!(s.start_running());
        assert_eq!(s.begin_park(ParkKind::Interruptible), Err(NoPark::Cancelled));
        assert_eq!(s.begin_park(ParkKind::User), Err(NoPark::Cancelled));
        assert!(s.begin_park(ParkKind::Uninterruptible).is_ok());
    }

    #[test]
    fn withdraw_reports_whether_a_wake_came() {
        let s = State::new_running();
        let g = s.begin_park(ParkKind::Interruptible).unwrap();
        assert_eq!(s.commit_park(), Commit::Parked);
        assert!(s.withdraw());
        let g2 = s.begin_park(ParkKind::Interruptible).unwrap();
        assert_eq!(s.commit_park(), Commit::Parked);
        assert!(s.wake(g2));
        assert!(!s.withdraw());
        assert!(!s.wake(g));
    }
}

#[cfg(all(loom, test))]
mod loom_model {
    use super::*;
    use loom::sync::atomic::AtomicUsize;
    use loom::sync::atomic::Ordering::SeqCst;
    use loom::sync::Arc;

    /// Two wakers race the park commit: the coroutine is queued exactly once.
    #[test]
    fn two_wakes_race_commit() {
        loom::model(|| {
            let s = Arc::new(State::new_queued());
            s.start_running();
            let g = s.begin_park(ParkKind::Interruptible).unwrap();
            let enqueued = Arc::new(AtomicUsize::new(0));
            let wakers: Vec<_> = (0..2)
                .map(|_| {
                    let (s, enqueued) = (s.clone(), enqueued.clone());
                    loom::thread::spawn(move || {
                        if s.wake(g) {
                            enqueued.fetch_add(1, SeqCst);
                        }
                    })
                })
                .collect();
            if s.commit_park() == Commit::Requeue {
                enqueued.fetch_add(1, SeqCst);
            }
            for w in wakers {
                w.join().unwrap();
            }
            assert_eq!(enqueued.load(SeqCst), 1);
        });
    }

    /// The waker's data travels with the word even when `unpark` finds the token already
    /// set: the owner that consumes a stale token and re-reads the flag either sees the new
    /// value, or its next park is ended.
    #[test]
    fn unpark_with_a_stale_token_is_not_lost() {
        use loom::sync::atomic::AtomicBool;
        use loom::sync::atomic::Ordering::{Acquire, Release};
        loom::model(|| {
            let s = Arc::new(State::new_queued());
            s.start_running();
            assert!(!s.unpark(), "a stale token from an earlier round");
            let turn = Arc::new(AtomicBool::new(false));
            let (s2, turn2) = (s.clone(), turn.clone());
            let waker = loom::thread::spawn(move || {
                turn2.store(true, Release);
                s2.unpark()
            });
            // Each pass consumes at most one token, and there are at most two (the stale one
            // and the waker's), so three passes settle it.
            let mut woke = false;
            for _ in 0..3 {
                if turn.load(Acquire) {
                    woke = true;
                    break;
                }
                match s.begin_park(ParkKind::User) {
                    Err(_) => continue,
                    Ok(_) => {
                        woke = s.commit_park() == Commit::Requeue;
                        break;
                    }
                }
            }
            let enqueued_by_unpark = waker.join().unwrap();
            assert!(woke || enqueued_by_unpark, "parked with the turn unseen and no wake");
        });
    }

    /// `unpark` races a user park: either the park is ended or the token is left.
    #[test]
    fn unpark_races_user_park() {
        loom::model(|| {
            let s = Arc::new(State::new_queued());
            s.start_running();
            let s2 = s.clone();
            let t = loom::thread::spawn(move || s2.unpark());
            let woke = match s.begin_park(ParkKind::User) {
                Err(NoPark::Token) => true,
                Err(NoPark::Cancelled) => unreachable!(),
                Ok(_) => s.commit_park() == Commit::Requeue,
            };
            let enqueued_by_unpark = t.join().unwrap();
            assert!(woke || enqueued_by_unpark, "the unpark was lost");
            assert!(!(woke && enqueued_by_unpark), "woken twice");
        });
    }
}
