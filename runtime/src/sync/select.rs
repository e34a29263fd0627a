//! [`Select`] and [`select!`](crate::select): waiting on several receivers at once.
//!
//! A select looks at each receiver in turn, starting one further along each time so that no
//! receiver is always first. If none is ready it parks once, with a watch queued on every
//! receiver's channel, each re-checked under that channel's lock before the watch is queued.
//! Any event a receiver could act on wakes every watch on its channel, so the select cannot
//! miss one. Watches never take a message: a receive after the select does, and on an mpmc
//! channel it may find that another receiver was quicker, which the macro handles by waiting
//! again.

use std::fmt;
use std::time::{Duration, Instant};

use super::chan::Watch;
use super::{mpmc, mpsc};
use crate::park::{park_with, Woke};
use crate::state::ParkKind;

/// The error of [`Select::ready_timeout`] and [`Select::try_ready`]: no receiver was ready.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SelectTimeoutError;

impl fmt::Display for SelectTimeoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("no receiver became ready in time")
    }
}

impl std::error::Error for SelectTimeoutError {}

/// A receiver a [`Select`] can wait on: [`mpsc::Receiver`] or [`mpmc::Receiver`].
pub trait SelectRecv: sealed::Sealed {
    /// The message type.
    type Item;
    #[doc(hidden)]
    fn __try_recv(&self) -> Result<Self::Item, std::sync::mpsc::TryRecvError>;
}

mod sealed {
    pub trait Sealed {
        fn watch(&self) -> &dyn super::Watch;
    }
}

impl<T> sealed::Sealed for mpsc::Receiver<T> {
    fn watch(&self) -> &dyn Watch {
        self.chan()
    }
}

impl<T> sealed::Sealed for mpmc::Receiver<T> {
    fn watch(&self) -> &dyn Watch {
        self.chan()
    }
}

impl<T> SelectRecv for mpsc::Receiver<T> {
    type Item = T;
    fn __try_recv(&self) -> Result<T, std::sync::mpsc::TryRecvError> {
        self.try_recv()
    }
}

impl<T> SelectRecv for mpmc::Receiver<T> {
    type Item = T;
    fn __try_recv(&self) -> Result<T, std::sync::mpsc::TryRecvError> {
        self.try_recv()
    }
}

impl<R: sealed::Sealed + ?Sized> sealed::Sealed for &R {
    fn watch(&self) -> &dyn Watch {
        (**self).watch()
    }
}

/// A reference to a receiver selects as the receiver does, so `select!` takes `recv(rx)` for
/// a `rx: &Receiver<T>` too.
impl<R: SelectRecv + ?Sized> SelectRecv for &R {
    type Item = R::Item;
    fn __try_recv(&self) -> Result<R::Item, std::sync::mpsc::TryRecvError> {
        (**self).__try_recv()
    }
}

/// Waits until one of several receivers is ready: it has a message, or it is disconnected.
///
/// Add receivers with [`recv`](Select::recv), which numbers them from 0, then wait with
/// [`ready`](Select::ready), [`ready_timeout`](Select::ready_timeout) or
/// [`try_ready`](Select::try_ready), and receive from the one it names with `try_recv`. On an
/// mpmc channel another receiver may take the message first; the [`select!`](crate::select)
/// macro deals with that for you and reads better in most code.
///
/// ```
/// use std::time::Duration;
/// use weft::sync::{mpsc, Select};
///
/// let (tx1, rx1) = mpsc::channel::<u32>();
/// let (tx2, rx2) = mpsc::channel::<&str>();
/// tx2.send("hello").unwrap();
///
/// let mut sel = Select::new();
/// let i1 = sel.recv(&rx1);
/// let i2 = sel.recv(&rx2);
/// let ready = sel.ready_timeout(Duration::from_secs(1)).unwrap();
/// assert_eq!(ready, i2);
/// assert_eq!(rx2.try_recv(), Ok("hello"));
/// # let _ = (tx1, i1);
/// ```
///
/// While the runtime of the waiting coroutine shuts down, `ready` returns at once, naming a
/// receiver that may still be empty.
pub struct Select<'a> {
    watched: Vec<&'a dyn Watch>,
    next_start: usize,
    cancelled: bool,
}

impl<'a> Select<'a> {
    /// A select with no receivers yet.
    pub fn new() -> Select<'a> {
        Select { watched: Vec::new(), next_start: 0, cancelled: false }
    }

    /// Adds a receiver; returns its index.
    pub fn recv<R: SelectRecv>(&mut self, rx: &'a R) -> usize {
        self.watched.push(sealed::Sealed::watch(rx));
        self.watched.len() - 1
    }

    /// Parks until a receiver is ready; returns its index.
    pub fn ready(&mut self) -> usize {
        self.ready_deadline(None).expect("a wait without a deadline ends ready")
    }

    /// As [`ready`](Select::ready), for at most `timeout`.
    ///
    /// # Errors
    ///
    /// If no receiver became ready in time.
    pub fn ready_timeout(&mut self, timeout: Duration) -> Result<usize, SelectTimeoutError> {
        self.ready_deadline(Instant::now().checked_add(timeout))
    }

    /// As [`ready`](Select::ready), until `deadline` (`None`: no deadline).
    ///
    /// # Errors
    ///
    /// If no receiver became ready by the deadline.
    pub fn ready_deadline(
        &mut self,
        deadline: Option<Instant>,
    ) -> Result<usize, SelectTimeoutError> {
        self.cancelled = false;
        let mut ids = Vec::with_capacity(self.watched.len());
        loop {
            if let Some(i) = self.scan() {
                return Ok(i);
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(SelectTimeoutError);
            }
            let mut ready_now = None;
            let woke = park_with(ParkKind::Interruptible, deadline, |waker| {
                for (i, w) in self.watched.iter().enumerate() {
                    match w.watch(waker.clone()) {
                        Some(id) => ids.push((i, id)),
                        None => {
                            ready_now = Some(i);
                            return false;
                        }
                    }
                }
                true
            });
            for (i, id) in ids.drain(..) {
                self.watched[i].unwatch(id);
            }
            if let Some(i) = ready_now {
                return Ok(i);
            }
            if woke == Woke::Cancelled {
                self.cancelled = true;
                return Ok(self.scan().unwrap_or(0));
            }
        }
    }

    /// The index of a receiver ready now, without waiting.
    ///
    /// # Errors
    ///
    /// If none is.
    pub fn try_ready(&mut self) -> Result<usize, SelectTimeoutError> {
        self.scan().ok_or(SelectTimeoutError)
    }

    /// Whether the last wait was cut short by the runtime's shutdown.
    #[doc(hidden)]
    pub fn __cancelled(&self) -> bool {
        self.cancelled
    }

    fn scan(&mut self) -> Option<usize> {
        let n = self.watched.len();
        let start = self.next_start;
        self.next_start = if n == 0 { 0 } else { (start + 1) % n };
        (0..n).map(|k| (start + k) % n).find(|&i| self.watched[i].is_ready())
    }
}

impl Default for Select<'_> {
    fn default() -> Self {
        Select::new()
    }
}

impl fmt::Debug for Select<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Select").field("receivers", &self.watched.len()).finish()
    }
}

/// For the `select!` macro: an empty slot typed by the receiver's message type.
#[doc(hidden)]
pub fn __slot<R: SelectRecv>(_: &R) -> Option<Result<R::Item, std::sync::mpsc::RecvError>> {
    None
}

/// For the `select!` macro: the receive after a select named `rx`. `None` if another
/// receiver was quicker and the select should wait again.
#[doc(hidden)]
pub fn __take<R: SelectRecv>(
    rx: &R,
    cancelled: bool,
) -> Option<Result<R::Item, std::sync::mpsc::RecvError>> {
    use std::sync::mpsc::{RecvError, TryRecvError};
    match rx.__try_recv() {
        Ok(t) => Some(Ok(t)),
        Err(TryRecvError::Disconnected) => Some(Err(RecvError)),
        Err(TryRecvError::Empty) if cancelled => Some(Err(RecvError)),
        Err(TryRecvError::Empty) => None,
    }
}

/// Waits on several receivers ([`mpsc`](crate::sync::mpsc) or [`mpmc`](crate::sync::mpmc))
/// and runs the arm of the first that has a message or is disconnected.
///
/// Each `recv(rx) -> msg => body` arm binds `msg: Result<T, RecvError>` (`Err` once `rx` is
/// disconnected). An optional last arm runs if no receiver is ready: `default => body` at
/// once, `default(timeout) => body` after `timeout`. Without one, `select!` parks until a
/// receiver is ready. Receivers are tried from a rotating start, so none is starved.
///
/// ```
/// use std::time::Duration;
/// use weft::sync::mpsc;
///
/// let (tx_num, rx_num) = mpsc::channel();
/// let (_tx_word, rx_word) = mpsc::channel::<String>();
/// weft::spawn(move || tx_num.send(42).unwrap());
///
/// let got = weft::select! {
///     recv(rx_num) -> n => n.unwrap(),
///     recv(rx_word) -> w => w.unwrap().len(),
///     default(Duration::from_secs(5)) => panic!("nothing arrived"),
/// };
/// assert_eq!(got, 42);
///
/// // Nothing more will come on either: with `default`, the select does not wait.
/// let rx_ref = &rx_word; // references to receivers work as well
/// let nothing = weft::select! {
///     recv(rx_ref) -> _w => false,
///     default => true,
/// };
/// assert!(nothing);
/// ```
#[macro_export]
macro_rules! select {
    ($($arms:tt)+) => {
        $crate::__select_parse!([] $($arms)+)
    };
}

/// Parses `select!` arms into `[ (rx) (pattern) (body) ... ]` and an optional default.
#[doc(hidden)]
#[macro_export]
macro_rules! __select_parse {
    ([$($arms:tt)*] recv($rx:expr) -> $msg:pat => $body:block $(,)? $($rest:tt)*) => {
        $crate::__select_parse!([$($arms)* (($rx) ($msg) ($body))] $($rest)*)
    };
    ([$($arms:tt)*] recv($rx:expr) -> $msg:pat => $body:expr, $($rest:tt)*) => {
        $crate::__select_parse!([$($arms)* (($rx) ($msg) ($body))] $($rest)*)
    };
    ([$($arms:tt)*] recv($rx:expr) -> $msg:pat => $body:expr) => {
        $crate::__select_parse!([$($arms)* (($rx) ($msg) ($body))])
    };
    ([$($arms:tt)*] default($timeout:expr) => $body:expr $(,)?) => {
        $crate::__select_slots!([] [$($arms)*] (Some($timeout)) ($body))
    };
    ([$($arms:tt)*] default => $body:expr $(,)?) => {
        $crate::__select_slots!([] [$($arms)*] (Some(::std::time::Duration::ZERO)) ($body))
    };
    ([$($arms:tt)*]) => {
        $crate::__select_slots!([] [$($arms)*] (None) (unreachable!("select! without a default arm ended without a receiver")))
    };
}

/// Gives each arm its own slot and receiver binding (each recursion level's `__slot` and
/// `__rx` are distinct identifiers, by hygiene), then expands the select.
#[doc(hidden)]
#[macro_export]
macro_rules! __select_slots {
    ([$($done:tt)*] [(($rx:expr) ($msg:pat) ($body:expr)) $($rest:tt)*] $timeout:tt $default:tt) => {
        $crate::__select_slots!([$($done)* (__slot __rx ($rx) ($msg) ($body))] [$($rest)*] $timeout $default)
    };
    ([$(($slot:ident $rxv:ident ($rx:expr) ($msg:pat) ($body:expr)))*] [] ($timeout:expr) ($default:expr)) => {{
        $( let $rxv = &$rx; let mut $slot = $crate::sync::__slot($rxv); )*
        let __timeout: ::std::option::Option<::std::time::Duration> = $timeout;
        let __deadline = __timeout.and_then(|t| ::std::time::Instant::now().checked_add(t));
        let mut __sel = $crate::sync::Select::new();
        $( __sel.recv($rxv); )*
        loop {
            let __ready = match __timeout {
                Some(t) if t.is_zero() => __sel.try_ready(),
                Some(_) => __sel.ready_deadline(__deadline),
                None => Ok(__sel.ready()),
            };
            let Ok(__ready) = __ready else { break };
            let __cancelled = __sel.__cancelled();
            let mut __index = 0usize;
            let mut __got = false;
            $(
                if __index == __ready {
                    $slot = $crate::sync::__take($rxv, __cancelled);
                    __got = $slot.is_some();
                }
                __index += 1;
            )*
            let _ = __index;
            if __got {
                break;
            }
        }
        drop(__sel);
        $( if let Some(__msg) = $slot { let $msg = __msg; $body } else )* { $default }
    }};
}
