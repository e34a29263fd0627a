//! The channel both [`super::mpsc`] and [`super::mpmc`] are built on: a buffer and two wait
//! queues under one short lock.
//!
//! # The slot protocol
//!
//! - **Receivers** take from `buf`, or, on a rendezvous channel, straight from the entry of a
//!   waiting sender. A receiver that finds nothing queues a `Recv` entry and parks.
//! - **A sender** with room (or a receiver queued on a rendezvous channel) pushes into `buf`,
//!   and takes the first `Recv` entry off the queue to wake it. One message, one entry taken: a
//!   woken receiver always looks at `buf` before anything else (its timeout, shutdown), so a
//!   message never waits behind a parked receiver. If a running receiver takes the message
//!   first, the woken one finds `buf` empty and queues again, at the front.
//! - **A sender without room** parks with its message *in its entry* of `send_waiters`. A
//!   receiver that frees a slot moves the first waiting message into `buf`; on a rendezvous
//!   channel it takes the message from the entry itself. Either way it takes the entry off the
//!   queue, which tells the sender its message was delivered (the rule of [`super::queue`]). A
//!   sender that stops waiting (disconnection, shutdown) withdraws its entry and gets its
//!   message back, unless the entry is already gone.
//! - **Disconnection.** The last sender's drop wakes every receiver (they see `senders == 0`
//!   once `buf` is empty); the last receiver's drop drops the buffered messages and wakes the
//!   waiting senders in place, which withdraw with their messages.
//! - **Select** watchers wait in `select_waiters`; any change a receiver could act on wakes all
//!   of them, and they re-check.
//!
//! Everything happens under `inner`'s lock, so each step above is atomic with respect to the
//! others; the lost-wake-up argument is that a waiter queues under the same lock under which it
//! found nothing to do, and every event it waits for takes that lock and looks at the queue.

use std::collections::VecDeque;
use std::sync::mpsc::{RecvError, RecvTimeoutError, SendError, TryRecvError, TrySendError};
use std::time::Instant;

use super::queue::{wake_all, WaitQueue};
use super::shim::{Lock, LockGuard};
use crate::park::{park_with, Woke};
use crate::state::ParkKind;
use crate::task::Waker;

pub(crate) struct Chan<T> {
    inner: Lock<Inner<T>>,
}

struct Inner<T> {
    buf: VecDeque<T>,
    /// `None`: unbounded. `Some(0)`: rendezvous.
    cap: Option<usize>,
    senders: usize,
    receivers: usize,
    recv_waiters: WaitQueue<()>,
    send_waiters: WaitQueue<Option<T>>,
    select_waiters: WaitQueue<()>,
}

impl<T> Inner<T> {
    /// A receive that does not wait.
    fn take(&mut self) -> Result<T, TryRecvError> {
        if let Some(t) = self.buf.pop_front() {
            // A slot is free: the first waiting sender's message moves in. (A rendezvous
            // channel has no slots: its `buf` holds only messages handed to queued receivers.)
            if self.cap != Some(0) {
                if let Some(mut sender) = self.send_waiters.pop() {
                    let t = sender.data.take().expect("a waiting sender has a message");
                    self.buf.push_back(t);
                    sender.waker.wake();
                }
            }
            return Ok(t);
        }
        if let Some(mut sender) = self.send_waiters.pop() {
            // Rendezvous: straight from the sender.
            let t = sender.data.take().expect("a waiting sender has a message");
            sender.waker.wake();
            return Ok(t);
        }
        if self.senders == 0 {
            Err(TryRecvError::Disconnected)
        } else {
            Err(TryRecvError::Empty)
        }
    }

    /// A send that does not wait: `Err(Full(t))` if it would have to.
    fn put(&mut self, t: T) -> Result<(), TrySendError<T>> {
        if self.receivers == 0 {
            return Err(TrySendError::Disconnected(t));
        }
        let room = match self.cap {
            None => true,
            // A rendezvous send hands its message to a receiver parked in `recv`.
            Some(cap) => self.buf.len() < cap || (cap == 0 && !self.recv_waiters.is_empty()),
        };
        if !room {
            return Err(TrySendError::Full(t));
        }
        self.buf.push_back(t);
        self.wake_receiver();
        Ok(())
    }

    /// Something a receiver can take appeared: wake one receiver and every select.
    fn wake_receiver(&mut self) {
        if let Some(first) = self.recv_waiters.pop() {
            first.waker.wake();
        }
        if !self.select_waiters.is_empty() {
            wake_all(self.select_waiters.take_all());
        }
    }

    fn is_ready(&self) -> bool {
        !self.buf.is_empty() || !self.send_waiters.is_empty() || self.senders == 0
    }
}

/// How a blocking receive ended without a message.
pub(crate) enum RecvFailed {
    Disconnected,
    Timeout,
}

impl<T> Chan<T> {
    pub(crate) fn new(cap: Option<usize>) -> Chan<T> {
        Chan {
            inner: Lock::new(Inner {
                buf: VecDeque::new(),
                cap,
                senders: 1,
                receivers: 1,
                recv_waiters: WaitQueue::new(),
                send_waiters: WaitQueue::new(),
                select_waiters: WaitQueue::new(),
            }),
        }
    }

    fn lock(&self) -> LockGuard<'_, Inner<T>> {
        self.inner.lock()
    }

    pub(crate) fn add_sender(&self) {
        self.lock().senders += 1;
    }

    pub(crate) fn add_receiver(&self) {
        self.lock().receivers += 1;
    }

    pub(crate) fn drop_sender(&self) {
        let mut c = self.lock();
        c.senders -= 1;
        if c.senders == 0 {
            let receivers = c.recv_waiters.take_all();
            let selects = c.select_waiters.take_all();
            drop(c);
            wake_all(receivers);
            wake_all(selects);
        }
    }

    pub(crate) fn drop_receiver(&self) {
        let mut c = self.lock();
        c.receivers -= 1;
        if c.receivers == 0 {
            let buffered = std::mem::take(&mut c.buf);
            c.send_waiters.wake_in_place();
            drop(c);
            // The messages' destructors run outside the lock: they may use the channel.
            drop(buffered);
        }
    }

    pub(crate) fn try_send(&self, t: T) -> Result<(), TrySendError<T>> {
        self.lock().put(t)
    }

    /// An unbounded send.
    pub(crate) fn send_unbounded(&self, t: T) -> Result<(), SendError<T>> {
        self.try_send(t).map_err(|e| match e {
            TrySendError::Full(t) | TrySendError::Disconnected(t) => SendError(t),
        })
    }

    /// A send that parks while the channel is full.
    pub(crate) fn send(&self, t: T) -> Result<(), SendError<T>> {
        let mut message = match self.try_send(t) {
            Ok(()) => return Ok(()),
            Err(TrySendError::Disconnected(t)) => return Err(SendError(t)),
            Err(TrySendError::Full(t)) => Some(t),
        };
        loop {
            let mut queued = None;
            let mut done = None;
            let woke = park_with(ParkKind::Interruptible, None, |waker| {
                let mut c = self.lock();
                match c.put(message.take().expect("the message is ours")) {
                    Ok(()) => done = Some(Ok(())),
                    Err(TrySendError::Disconnected(t)) => done = Some(Err(SendError(t))),
                    Err(TrySendError::Full(t)) => {
                        queued = Some(c.send_waiters.push_back(waker, Some(t)));
                        // A rendezvous message is now there for the taking.
                        if c.cap == Some(0) && !c.select_waiters.is_empty() {
                            wake_all(c.select_waiters.take_all());
                        }
                        return true;
                    }
                }
                false
            });
            if let Some(done) = done {
                return done;
            }
            let Some(id) = queued else {
                // Shutdown refused the park before registering: the message was never taken.
                return Err(SendError(message.take().expect("not registered, not taken")));
            };
            let mut c = self.lock();
            let Some(entry) = c.send_waiters.remove(id) else {
                return Ok(()); // Taken off the queue: delivered.
            };
            let t = entry.data.expect("a queued entry keeps its message");
            let disconnected = c.receivers == 0;
            drop(c);
            if disconnected || woke == Woke::Cancelled {
                return Err(SendError(t));
            }
            message = Some(t);
        }
    }

    pub(crate) fn try_recv(&self) -> Result<T, TryRecvError> {
        self.lock().take()
    }

    /// A receive that parks until a message, disconnection, the deadline, or shutdown (which
    /// reports a disconnection).
    pub(crate) fn recv(&self, deadline: Option<Instant>) -> Result<T, RecvFailed> {
        // A message already there needs no park: no park generation, no waker.
        match self.try_recv() {
            Ok(t) => return Ok(t),
            Err(TryRecvError::Disconnected) => return Err(RecvFailed::Disconnected),
            Err(TryRecvError::Empty) => {}
        }
        let mut retry = false;
        loop {
            let mut queued = None;
            let mut got = None;
            let woke = park_with(ParkKind::Interruptible, deadline, |waker| {
                let mut c = self.lock();
                match c.take() {
                    Err(TryRecvError::Empty) => {}
                    other => {
                        got = Some(other);
                        return false;
                    }
                }
                queued = Some(if retry {
                    c.recv_waiters.push_front(waker, ())
                } else {
                    c.recv_waiters.push_back(waker, ())
                });
                true
            });
            let taken = match got {
                Some(got) => got,
                None => {
                    let mut c = self.lock();
                    // Taken off the queue means a message was put in for us; still queued
                    // means the deadline or shutdown ended the park.
                    retry = queued.is_some_and(|id| c.recv_waiters.remove(id).is_none());
                    c.take()
                }
            };
            match taken {
                Ok(t) => return Ok(t),
                Err(TryRecvError::Disconnected) => return Err(RecvFailed::Disconnected),
                Err(TryRecvError::Empty) => {}
            }
            if woke == Woke::Cancelled {
                return Err(RecvFailed::Disconnected);
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(RecvFailed::Timeout);
            }
        }
    }

    pub(crate) fn recv_blocking(&self) -> Result<T, RecvError> {
        self.recv(None).map_err(|_| RecvError)
    }

    pub(crate) fn recv_until(&self, deadline: Option<Instant>) -> Result<T, RecvTimeoutError> {
        self.recv(deadline).map_err(|e| match e {
            RecvFailed::Disconnected => RecvTimeoutError::Disconnected,
            RecvFailed::Timeout => RecvTimeoutError::Timeout,
        })
    }
}

/// What an endpoint's `Debug` shows: the channel's counts.
impl<T> std::fmt::Debug for Chan<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = self.lock();
        f.debug_struct("Chan")
            .field("buffered", &c.buf.len())
            .field("cap", &c.cap)
            .field("senders", &c.senders)
            .field("receivers", &c.receivers)
            .field("waiting_receivers", &c.recv_waiters.len())
            .field("waiting_senders", &c.send_waiters.len())
            .finish()
    }
}

/// A channel a [`super::Select`] can wait on, whatever its message type.
pub trait Watch {
    /// Whether a receive would not wait now.
    fn is_ready(&self) -> bool;
    /// Queues `waker` for the next change unless ready now (`None`).
    #[allow(private_interfaces)]
    fn watch(&self, waker: Waker) -> Option<u64>;
    /// Withdraws a watch, if still queued.
    fn unwatch(&self, id: u64);
}

impl<T> Watch for Chan<T> {
    fn is_ready(&self) -> bool {
        self.lock().is_ready()
    }

    fn watch(&self, waker: Waker) -> Option<u64> {
        let mut c = self.lock();
        if c.is_ready() {
            return None;
        }
        Some(c.select_waiters.push_back(waker, ()))
    }

    fn unwatch(&self, id: u64) {
        self.lock().select_waiters.remove(id);
    }
}
