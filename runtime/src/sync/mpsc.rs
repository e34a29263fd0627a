//! Multi-producer, single-consumer channels with [`std::sync::mpsc`]'s API and semantics,
//! whose waits park the coroutine (or the plain thread). The error types are std's own.
//!
//! Porting means changing the import: `std::sync::mpsc` → `weft::sync::mpsc`.
//!
//! ```
//! use weft::sync::mpsc;
//!
//! let (tx, rx) = mpsc::sync_channel(0); // rendezvous
//! let producer = weft::spawn(move || {
//!     for i in 0..3 {
//!         tx.send(i).unwrap(); // parks until the receiver takes it
//!     }
//! });
//! assert_eq!(rx.iter().collect::<Vec<_>>(), [0, 1, 2]);
//! producer.join().unwrap();
//! ```
//!
//! Beyond std: while the runtime of a waiting coroutine shuts down, `recv` reports
//! disconnection and a waiting `send` gives its message back in `SendError`, so loops over a
//! channel end.

use std::marker::PhantomData;
use std::time::Duration;

pub use super::mpmc::{
    IntoIter, Iter, RecvError, RecvTimeoutError, SendError, Sender, SyncSender, TryIter,
    TryRecvError, TrySendError,
};

use super::chan::Chan;
use super::mpmc;

/// An unbounded channel, as [`std::sync::mpsc::channel`].
pub fn channel<T>() -> (Sender<T>, Receiver<T>) {
    let (tx, rx) = mpmc::channel();
    (tx, Receiver::new(rx))
}

/// A bounded channel, as [`std::sync::mpsc::sync_channel`]; a `bound` of 0 makes a rendezvous
/// channel.
pub fn sync_channel<T>(bound: usize) -> (SyncSender<T>, Receiver<T>) {
    let (tx, rx) = mpmc::sync_channel(bound);
    (tx, Receiver::new(rx))
}

/// The receiving half, as [`std::sync::mpsc::Receiver`]: one owner, not `Clone` or `Sync`.
#[derive(Debug)]
pub struct Receiver<T> {
    inner: mpmc::Receiver<T>,
    _not_sync: PhantomData<std::cell::Cell<()>>,
}

impl<T> Receiver<T> {
    fn new(inner: mpmc::Receiver<T>) -> Receiver<T> {
        Receiver { inner, _not_sync: PhantomData }
    }

    pub(crate) fn chan(&self) -> &Chan<T> {
        self.inner.chan()
    }

    /// As [`mpmc::Receiver::recv`].
    ///
    /// # Errors
    ///
    /// `RecvError` once every sender is gone and the buffer is empty.
    pub fn recv(&self) -> Result<T, RecvError> {
        self.inner.recv()
    }

    /// As [`mpmc::Receiver::try_recv`].
    ///
    /// # Errors
    ///
    /// `Empty` or `Disconnected`.
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        self.inner.try_recv()
    }

    /// As [`mpmc::Receiver::recv_timeout`].
    ///
    /// # Errors
    ///
    /// `Timeout` or `Disconnected`.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T, RecvTimeoutError> {
        self.inner.recv_timeout(timeout)
    }

    /// Receives until disconnection.
    pub fn iter(&self) -> Iter<'_, T> {
        self.inner.iter()
    }

    /// The messages there now.
    pub fn try_iter(&self) -> TryIter<'_, T> {
        self.inner.try_iter()
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
        self.inner.into_iter()
    }
}
