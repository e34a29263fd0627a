//! Multi-producer, multi-consumer channels: [`std::sync::mpsc`]'s shape with a cloneable,
//! shareable [`Receiver`]. Each message goes to exactly one receiver.
//!
//! ```
//! use weft::sync::mpmc;
//!
//! let (tx, rx) = mpmc::channel();
//! let workers: Vec<_> = (0..4)
//!     .map(|_| {
//!         let rx = rx.clone();
//!         weft::spawn(move || rx.iter().sum::<u64>())
//!     })
//!     .collect();
//! drop(rx);
//! for i in 1..=100 {
//!     tx.send(i).unwrap();
//! }
//! drop(tx);
//! let total: u64 = workers.into_iter().map(|w| w.join().unwrap()).sum();
//! assert_eq!(total, 5050);
//! ```

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use std::sync::mpsc::{RecvError, RecvTimeoutError, SendError, TryRecvError, TrySendError};

use super::chan::Chan;

/// An unbounded channel: `send` never waits.
pub fn channel<T>() -> (Sender<T>, Receiver<T>) {
    let chan = Arc::new(Chan::new(None));
    (Sender { chan: chan.clone() }, Receiver { chan })
}

/// A bounded channel holding at most `bound` messages; `send` parks while it is full. With a
/// `bound` of 0 it is a rendezvous channel: `send` returns once a receiver has the message.
pub fn sync_channel<T>(bound: usize) -> (SyncSender<T>, Receiver<T>) {
    let chan = Arc::new(Chan::new(Some(bound)));
    (SyncSender { chan: chan.clone() }, Receiver { chan })
}

/// The sending half of [`channel`], as [`std::sync::mpsc::Sender`].
pub struct Sender<T> {
    chan: Arc<Chan<T>>,
}

/// The sending half of [`sync_channel`], as [`std::sync::mpsc::SyncSender`].
pub struct SyncSender<T> {
    chan: Arc<Chan<T>>,
}

/// The receiving half of either channel. Clones share the messages: each goes to one of them.
pub struct Receiver<T> {
    chan: Arc<Chan<T>>,
}

impl<T> Sender<T> {
    /// Sends `t` without waiting.
    ///
    /// # Errors
    ///
    /// `SendError(t)` if every receiver is gone.
    pub fn send(&self, t: T) -> Result<(), SendError<T>> {
        self.chan.send_unbounded(t)
    }
}

impl<T> SyncSender<T> {
    /// Sends `t`, parking while the channel is full (on a rendezvous channel, until a
    /// receiver takes it).
    ///
    /// # Errors
    ///
    /// `SendError(t)` if every receiver is gone, or goes while this waits, or the runtime of
    /// the calling coroutine shuts down meanwhile.
    pub fn send(&self, t: T) -> Result<(), SendError<T>> {
        self.chan.send(t)
    }

    /// Sends `t` if that needs no wait.
    ///
    /// # Errors
    ///
    /// `Full(t)` if the channel is full (a rendezvous channel: no receiver is waiting), and
    /// `Disconnected(t)` if every receiver is gone.
    pub fn try_send(&self, t: T) -> Result<(), TrySendError<T>> {
        self.chan.try_send(t)
    }
}

impl<T> Receiver<T> {
    pub(crate) fn chan(&self) -> &Chan<T> {
        &self.chan
    }

    /// Receives a message, parking until one comes.
    ///
    /// # Errors
    ///
    /// `RecvError` once every sender is gone and the buffer is empty, or when the runtime of
    /// the calling coroutine shuts down.
    pub fn recv(&self) -> Result<T, RecvError> {
        self.chan.recv_blocking()
    }

    /// Receives a message if one is there now.
    ///
    /// # Errors
    ///
    /// `Empty` if none is, `Disconnected` if none ever will be.
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        self.chan.try_recv()
    }

    /// Receives a message, parking for at most `timeout`.
    ///
    /// # Errors
    ///
    /// `Timeout` if none came in time, `Disconnected` as for [`recv`](Receiver::recv).
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T, RecvTimeoutError> {
        self.chan.recv_until(Instant::now().checked_add(timeout))
    }

    /// An iterator that receives until disconnection.
    pub fn iter(&self) -> Iter<'_, T> {
        Iter { chan: &self.chan }
    }

    /// An iterator over the messages there now; it never waits.
    pub fn try_iter(&self) -> TryIter<'_, T> {
        TryIter { chan: &self.chan }
    }
}

/// Makes each endpoint type count its clones and disconnect when the last one drops.
macro_rules! endpoint {
    ($ty:ident, $add:ident, $drop:ident) => {
        impl<T> Clone for $ty<T> {
            fn clone(&self) -> $ty<T> {
                self.chan.$add();
                $ty { chan: self.chan.clone() }
            }
        }

        impl<T> Drop for $ty<T> {
            fn drop(&mut self) {
                self.chan.$drop();
            }
        }

        impl<T> fmt::Debug for $ty<T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&*self.chan, f)
            }
        }
    };
}

endpoint!(Sender, add_sender, drop_sender);
endpoint!(SyncSender, add_sender, drop_sender);
endpoint!(Receiver, add_receiver, drop_receiver);

/// Iterator of [`Receiver::iter`]: `recv` until disconnection.
#[derive(Debug)]
pub struct Iter<'a, T> {
    chan: &'a Chan<T>,
}

/// Iterator of [`Receiver::try_iter`]: the messages there now.
#[derive(Debug)]
pub struct TryIter<'a, T> {
    chan: &'a Chan<T>,
}

/// Owning iterator of a [`Receiver`]: `recv` until disconnection.
#[derive(Debug)]
pub struct IntoIter<T> {
    rx: Receiver<T>,
}

impl<T> Iterator for Iter<'_, T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.chan.recv_blocking().ok()
    }
}

impl<T> Iterator for TryIter<'_, T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.chan.try_recv().ok()
    }
}

impl<T> Iterator for IntoIter<T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.rx.recv().ok()
    }
}

impl<'a, T> IntoIterator for &'a Receiver<T> {
    type Item = T;
    type IntoIter = Iter<'a, T>;
    fn into_iter(self) -> Iter<'a, T> {
        self.iter()
    }
}

impl<T> IntoIterator for Receiver<T> {
    type Item = T;
    type IntoIter = IntoIter<T>;
    fn into_iter(self) -> IntoIter<T> {
        IntoIter { rx: self }
    }
}
