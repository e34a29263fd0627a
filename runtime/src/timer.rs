//! A worker's timers: a 4-ary min-heap of `(deadline, task, park generation)`.
//!
//! Each worker owns one, so inserting takes no lock. A timer is inserted by a coroutine on the
//! worker it parks on, and fired by that worker: firing is a [`State::wake`] of the generation
//! it was set for, so a timer whose park already ended (the data came first) does nothing.
//! That makes cancellation lazy: nothing is removed when a park ends early. So that such dead
//! entries cannot pile up (a read with a 30 s timeout, a thousand times a second), the heap is
//! compacted whenever it has doubled since the last compaction, which keeps the cost amortised
//! O(1) per insert.
//!
//! Timers never fire early: an entry fires only once `now >= deadline`, and the worker's
//! `epoll_wait` timeout is rounded up to whole milliseconds.
//!
//! [`State::wake`]: crate::state::State::wake

use std::sync::Arc;
use std::time::Instant;

use crate::task::Task;

/// Compaction is not worth it below this many entries.
const MIN_COMPACT: usize = 1024;
/// Children per heap node: a shallower tree than binary, with siblings in one cache line.
const ARITY: usize = 4;

struct Entry {
    deadline: Instant,
    task: Arc<Task>,
    gen: u64,
}

impl Entry {
    fn is_live(&self) -> bool {
        self.task.state.is_parked_at(self.gen)
    }
}

/// The timer heap.
pub(crate) struct Timers {
    heap: Vec<Entry>,
    compact_at: usize,
}

impl Default for Timers {
    fn default() -> Self {
        Timers { heap: Vec::new(), compact_at: MIN_COMPACT }
    }
}

impl Timers {
    pub(crate) fn insert(&mut self, deadline: Instant, task: Arc<Task>, gen: u64) {
        if self.heap.len() >= self.compact_at {
            self.compact();
        }
        self.heap.push(Entry { deadline, task, gen });
        self.sift_up(self.heap.len() - 1);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// Entries held, live or dead.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }

    /// The earliest deadline of a live timer, dropping dead ones found on the way.
    pub(crate) fn next_deadline(&mut self) -> Option<Instant> {
        while let Some(top) = self.heap.first() {
            if top.is_live() {
                return Some(top.deadline);
            }
            self.pop();
        }
        None
    }

    /// Removes every entry due at `now` and hands each to `fire`.
    pub(crate) fn fire_due(&mut self, now: Instant, mut fire: impl FnMut(Arc<Task>, u64)) -> usize {
        let mut fired = 0;
        while self.heap.first().is_some_and(|top| top.deadline <= now) {
            let entry = self.pop();
            fire(entry.task, entry.gen);
            fired += 1;
        }
        fired
    }

    fn pop(&mut self) -> Entry {
        let last = self.heap.len() - 1;
        self.heap.swap(0, last);
        let entry = self.heap.pop().expect("pop from a non-empty heap");
        if !self.heap.is_empty() {
            self.sift_down(0);
        }
        entry
    }

    fn compact(&mut self) {
        self.heap.retain(Entry::is_live);
        for i in (0..self.heap.len()).rev() {
            self.sift_down(i);
        }
        self.compact_at = (self.heap.len() * 2).max(MIN_COMPACT);
    }

    fn sift_up(&mut self, mut i: usize) {
        while i > 0 {
            let parent = (i - 1) / ARITY;
            if self.heap[parent].deadline <= self.heap[i].deadline {
                break;
            }
            self.heap.swap(parent, i);
            i = parent;
        }
    }

    fn sift_down(&mut self, mut i: usize) {
        loop {
            let first = i * ARITY + 1;
            if first >= self.heap.len() {
                return;
            }
            let last = (first + ARITY).min(self.heap.len());
            let mut min = first;
            for c in first + 1..last {
                if self.heap[c].deadline < self.heap[min].deadline {
                    min = c;
                }
            }
            if self.heap[i].deadline <= self.heap[min].deadline {
                return;
            }
            self.heap.swap(i, min);
            i = min;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::Shared;
    use crate::state::ParkKind;
    use std::time::Duration;

    fn parked_task(shared: &Arc<Shared>) -> (Arc<Task>, u64) {
        let task = Arc::new(Task::new_detached_for_tests(shared.clone()));
        task.state.start_running();
        let gen = task.state.begin_park(ParkKind::Interruptible).unwrap();
        let _ = task.state.commit_park();
        (task, gen)
    }

    #[test]
    fn fires_in_deadline_order_and_never_early() {
        let shared = Shared::for_tests();
        let base = Instant::now();
        let mut timers = Timers::default();
        let mut order = Vec::new();
        for ms in [50u64, 10, 40, 20, 30, 10, 60] {
            let (task, gen) = parked_task(&shared);
            timers.insert(base + Duration::from_millis(ms), task, gen);
        }
        let fired = timers.fire_due(base + Duration::from_millis(35), |t, _| {
            order.push(t);
        });
        assert_eq!(fired, 4);
        assert_eq!(timers.next_deadline(), Some(base + Duration::from_millis(40)));
        assert_eq!(timers.fire_due(base + Duration::from_millis(39), |_, _| ()), 0);
        assert_eq!(timers.fire_due(base + Duration::from_secs(1), |_, _| ()), 3);
        assert!(timers.is_empty());
    }

    #[test]
    fn dead_entries_are_compacted() {
        let shared = Shared::for_tests();
        let base = Instant::now() + Duration::from_secs(3600);
        let mut timers = Timers::default();
        let (live, live_gen) = parked_task(&shared);
        timers.insert(base, live.clone(), live_gen);
        for i in 0..10 * MIN_COMPACT {
            let (task, gen) = parked_task(&shared);
            // The park ends before the timer: the entry is dead.
            assert!(task.state.wake(gen));
            timers.insert(base + Duration::from_millis(i as u64), task, gen);
        }
        assert!(timers.len() <= 2 * MIN_COMPACT, "{} entries kept", timers.len());
        assert_eq!(timers.next_deadline(), Some(base));
    }
}
