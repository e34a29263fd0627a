//! Which workers are searching for work and which are asleep, and the rules for waking one.
//!
//! Waking a thread on another core costs about 40 µs on these machines, so the scheduler wakes
//! as few as it can:
//!
//! 1. At most half of the workers search (steal) at once ([`Idle::try_start_searching`]).
//! 2. New stealable work wakes a sleeper only when nobody is searching and somebody sleeps
//!    ([`Idle::notify_one`]); a searcher will find the work otherwise.
//! 3. A searcher that finds work and was the last searcher wakes one more worker, so a burst of
//!    work spreads one worker at a time.
//! 4. Every worker re-checks the injector and the other workers' deques after it has been
//!    counted out and before it sleeps.
//!
//! # Why stealable work is never stranded
//!
//! A producer pushes its work, then (SeqCst fence) reads the counters. A worker gives up by
//! decrementing the counters (SeqCst), then re-checks the queues. If the producer read
//! "somebody is searching" or "everybody is awake", the decrement of the worker that was
//! counted comes after the push in the SeqCst order, so its re-check sees the work. If it read
//! "nobody searches and somebody sleeps", it wakes a sleeper itself.
//!
//! Rule 4 once applied to the last searcher only. That stranded work: a worker refused
//! searching (another was searching) went to sleep without a re-check, while a spawner, seeing
//! it still awake, woke nobody; the task waited in the injector with one worker asleep and the
//! other held by a coroutine waiting for that very task.
//!
//! The counters pack into one word: searching workers in the low half, awake workers in the
//! high half.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use parking_lot::Mutex;

const SEARCH_MASK: usize = (1 << 16) - 1;
const AWAKE_ONE: usize = 1 << 16;

/// The idle-worker bookkeeping of one runtime.
#[derive(Debug)]
pub(crate) struct Idle {
    state: AtomicUsize,
    sleepers: Mutex<Vec<usize>>,
    workers: usize,
}

impl Idle {
    pub(crate) fn new(workers: usize) -> Idle {
        assert!(workers <= SEARCH_MASK, "at most {SEARCH_MASK} workers");
        Idle {
            state: AtomicUsize::new(workers * AWAKE_ONE),
            sleepers: Mutex::new(Vec::with_capacity(workers)),
            workers,
        }
    }

    /// Rule 1. Returns whether the caller is now counted as searching.
    pub(crate) fn try_start_searching(&self) -> bool {
        let mut state = self.state.load(SeqCst);
        loop {
            if 2 * (state & SEARCH_MASK) >= self.workers {
                return false;
            }
            match self.state.compare_exchange_weak(state, state + 1, SeqCst, SeqCst) {
                Ok(_) => return true,
                Err(actual) => state = actual,
            }
        }
    }

    /// A searcher found work or gives up searching while staying awake. Returns whether it was
    /// the last searcher (rule 3).
    pub(crate) fn stop_searching(&self) -> bool {
        self.state.fetch_sub(1, SeqCst) & SEARCH_MASK == 1
    }

    /// Rule 2: picks a sleeper to wake for new stealable work, counting it as awake and
    /// searching. The caller unparks it, and has issued a SeqCst fence after pushing the work
    /// (see the module docs).
    pub(crate) fn notify_one(&self) -> Option<usize> {
        if !self.should_wake() {
            return None;
        }
        let mut sleepers = self.sleepers.lock();
        // Re-check under the lock: another notifier may have woken a searcher meanwhile.
        if !self.should_wake() {
            return None;
        }
        let worker = sleepers.pop()?;
        self.state.fetch_add(AWAKE_ONE + 1, SeqCst);
        Some(worker)
    }

    fn should_wake(&self) -> bool {
        let state = self.state.load(SeqCst);
        state & SEARCH_MASK == 0 && state / AWAKE_ONE < self.workers
    }

    /// A worker goes to sleep; it must then re-check every queue (rule 4). Returns whether it
    /// was the last searcher.
    pub(crate) fn transition_to_parked(&self, worker: usize, searching: bool) -> bool {
        let mut sleepers = self.sleepers.lock();
        let dec = AWAKE_ONE + usize::from(searching);
        let prev = self.state.fetch_sub(dec, SeqCst);
        sleepers.push(worker);
        searching && prev & SEARCH_MASK == 1
    }

    /// A worker woke up. Returns true if it woke on its own (its inbox, a timer, an event) and
    /// is now counted awake but not searching; false if a notifier already took it off the
    /// list and counted it as a searcher.
    pub(crate) fn wake_self(&self, worker: usize, searching: bool) -> bool {
        let mut sleepers = self.sleepers.lock();
        match sleepers.iter().position(|&w| w == worker) {
            Some(at) => {
                sleepers.swap_remove(at);
                self.state.fetch_add(AWAKE_ONE + usize::from(searching), SeqCst);
                true
            }
            None => false,
        }
    }

    /// How many workers are searching now (for tests and the monitor).
    #[cfg(test)]
    pub(crate) fn searching(&self) -> usize {
        self.state.load(SeqCst) & SEARCH_MASK
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_half_search() {
        let idle = Idle::new(4);
        assert!(idle.try_start_searching());
        assert!(idle.try_start_searching());
        assert!(!idle.try_start_searching());
        assert!(!idle.stop_searching());
        assert!(idle.stop_searching());
        assert_eq!(idle.searching(), 0);
    }

    #[test]
    fn notify_wakes_only_when_nobody_searches() {
        let idle = Idle::new(2);
        assert_eq!(idle.notify_one(), None, "all awake: nobody to wake");
        assert!(!idle.transition_to_parked(1, false));
        assert_eq!(idle.notify_one(), Some(1));
        assert_eq!(idle.searching(), 1);
        assert_eq!(idle.notify_one(), None, "a searcher is out already");
        assert!(!idle.wake_self(1, false), "the notifier took it off the list");
        assert!(idle.transition_to_parked(1, true), "last searcher re-checks");
        assert!(idle.wake_self(1, false));
    }
}
