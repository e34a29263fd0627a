//! The wait queue each primitive keeps under its lock: FIFO entries of a [`Waker`] and what
//! the waiter wants.
//!
//! Every primitive follows the same hand-off rule: **a waiter that is no longer in the queue
//! was taken off by the other side**, which then owns waking it and has already done for it
//! whatever the entry asked (granted the lock, delivered the value, notified it). A waiter
//! that stops waiting on its own (a timeout, shutdown) removes its entry under the same lock;
//! finding it gone instead means the hand-off won the race, and the waiter takes what it was
//! handed. So a hand-off is never lost and never done twice: the lock orders the taker and the
//! withdrawer, and exactly one of them removes the entry.
//!
//! Ids grow from the back and shrink from the front, so the queue stays sorted and a
//! withdrawal finds its entry by binary search. They are unique for the queue's life.

use std::collections::VecDeque;

use crate::task::Waker;

/// One waiter.
pub(crate) struct Entry<D> {
    pub(crate) id: u64,
    pub(crate) waker: Waker,
    pub(crate) data: D,
}

/// A FIFO of waiters.
pub(crate) struct WaitQueue<D> {
    entries: VecDeque<Entry<D>>,
    /// The id of the next `push_back`; every id at the back so far is below it.
    next_back: u64,
    /// The id of the next `push_front`; every id at the front so far is above it.
    next_front: u64,
}

/// Far from both ends of `u64`, so ids can grow either way without meeting.
const FIRST_ID: u64 = 1 << 62;

impl<D> WaitQueue<D> {
    pub(crate) const fn new() -> WaitQueue<D> {
        WaitQueue { entries: VecDeque::new(), next_back: FIRST_ID, next_front: FIRST_ID - 1 }
    }

    /// Queues a waiter last; returns its id.
    pub(crate) fn push_back(&mut self, waker: Waker, data: D) -> u64 {
        let id = self.next_back;
        self.next_back += 1;
        self.entries.push_back(Entry { id, waker, data });
        id
    }

    /// Queues a waiter first (one that already waited its turn); returns its id.
    ///
    /// Ids are never reused, not even ones long gone: a waiter that was taken off but has not
    /// yet looked would otherwise find a newcomer's entry under its old id and withdraw it.
    pub(crate) fn push_front(&mut self, waker: Waker, data: D) -> u64 {
        let id = self.next_front;
        self.next_front -= 1;
        self.entries.push_front(Entry { id, waker, data });
        id
    }

    pub(crate) fn front(&self) -> Option<&Entry<D>> {
        self.entries.front()
    }

    pub(crate) fn pop(&mut self) -> Option<Entry<D>> {
        self.entries.pop_front()
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn position(&self, id: u64) -> Option<usize> {
        self.entries.binary_search_by_key(&id, |e| e.id).ok()
    }

    /// Withdraws waiter `id`: its entry if it was still queued, `None` if it was taken off.
    pub(crate) fn remove(&mut self, id: u64) -> Option<Entry<D>> {
        let at = self.position(id)?;
        self.entries.remove(at)
    }

    /// Wakes every waiter and leaves them queued: each re-checks and withdraws itself. For a
    /// change that concerns everyone but hands nothing to anyone (a disconnection).
    pub(crate) fn wake_in_place(&self) {
        for entry in &self.entries {
            entry.waker.clone().wake();
        }
    }

    /// Takes every waiter off; the caller wakes them once its lock is released.
    pub(crate) fn take_all(&mut self) -> VecDeque<Entry<D>> {
        std::mem::take(&mut self.entries)
    }
}

impl<D> Default for WaitQueue<D> {
    fn default() -> Self {
        WaitQueue::new()
    }
}

/// Wakes a batch taken with [`WaitQueue::take_all`].
pub(crate) fn wake_all<D>(entries: VecDeque<Entry<D>>) {
    for entry in entries {
        entry.waker.wake();
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::task::ThreadInner;
    use std::sync::Arc;

    fn waker() -> Waker {
        Waker::Thread(Arc::new(ThreadInner::unbound(None)), 0)
    }

    /// A waiter taken off the queue withdraws by id only after it runs again; a newcomer
    /// queued at the front meanwhile must not get its id, or the withdrawal removes the
    /// newcomer's entry and that waiter is never woken.
    #[test]
    fn ids_are_never_reused() {
        let mut q = WaitQueue::new();
        q.push_back(waker(), ());
        let first = q.push_front(waker(), ());
        assert_eq!(q.pop().map(|e| e.id), Some(first));
        let second = q.push_front(waker(), ());
        assert_ne!(first, second);
        assert!(q.remove(first).is_none(), "the old id names nothing");
        assert!(q.remove(second).is_some());
    }

    #[test]
    fn withdrawal_finds_entries_from_either_end() {
        let mut q = WaitQueue::new();
        let ids: Vec<u64> = (0..6)
            .map(|i| if i % 2 == 0 { q.push_back(waker(), i) } else { q.push_front(waker(), i) })
            .collect();
        for (i, id) in ids.iter().enumerate().rev() {
            assert_eq!(q.remove(*id).map(|e| e.data), Some(i));
        }
        assert!(q.is_empty());
    }
}
