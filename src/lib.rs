//! # weft
//!
//! Stackful coroutines for Rust with a blocking-style API. Write handlers as ordinary
//! sequential code; when a call would block, only the coroutine is suspended and its worker
//! thread runs other coroutines.
//!
//! ```
//! use std::time::Duration;
//!
//! let handles: Vec<_> = (0..1000)
//!     .map(|i| {
//!         weft::spawn(move || {
//!             weft::sleep(Duration::from_millis(10)); // parks the coroutine, not the thread
//!             i
//!         })
//!     })
//!     .collect();
//! let sum: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
//! assert_eq!(sum, 499_500);
//! ```
//!
//! The API mirrors `std::thread`: [`spawn`], [`Builder`], [`JoinHandle::join`], [`scope`],
//! [`sleep`], [`yield_now`], [`park`], [`current`]. Porting thread-per-task code means changing
//! `std::thread::` to `weft::`.
//!
//! Sockets work the same way. [`net`] mirrors `std::net` and `std::os::unix::net`: a call that
//! would block parks the coroutine (and, outside a coroutine, blocks the thread), so a
//! thread-per-connection server becomes a coroutine-per-connection one by changing its `use`
//! lines:
//!
//! ```
//! use std::io::{Read, Write};
//! use weft::net::{TcpListener, TcpStream};
//!
//! let listener = TcpListener::bind("127.0.0.1:0")?;
//! let addr = listener.local_addr()?;
//! weft::spawn(move || {
//!     for stream in listener.incoming() {
//!         let Ok(mut stream) = stream else { continue };
//!         weft::spawn(move || -> std::io::Result<()> {
//!             let mut buf = [0u8; 1024];
//!             loop {
//!                 let n = stream.read(&mut buf)?; // parks this coroutine only
//!                 if n == 0 {
//!                     return Ok(());
//!                 }
//!                 stream.write_all(&buf[..n])?;
//!             }
//!         });
//!     }
//! });
//! let mut client = TcpStream::connect(addr)?;
//! client.write_all(b"hello")?;
//! let mut echo = [0u8; 5];
//! client.read_exact(&mut echo)?;
//! assert_eq!(&echo, b"hello");
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! Locks and channels too: [`sync`] mirrors `std::sync` (`Mutex`, `RwLock`, `Condvar`,
//! `Barrier`, `Once`, `OnceLock`, `mpsc`) with waits that park the coroutine, and adds a
//! `Semaphore`, a `WaitGroup`, `mpmc` channels and [`select!`]. A guard may be held across any
//! blocking call, and coroutines and plain threads can share every type:
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use weft::sync::{mpsc, Mutex};
//!
//! let log = Arc::new(Mutex::new(Vec::new()));
//! let (tx, rx) = mpsc::sync_channel(0); // rendezvous, as std's
//! for id in 0..3 {
//!     let (log, tx) = (log.clone(), tx.clone());
//!     weft::spawn(move || {
//!         let mut entries = log.lock().unwrap();
//!         weft::sleep(Duration::from_millis(1)); // holding a weft guard across a park is fine
//!         entries.push(id);
//!         drop(entries);
//!         tx.send(id).unwrap();
//!     });
//! }
//! drop(tx);
//! let mut done: Vec<i32> = rx.iter().collect();
//! done.sort();
//! assert_eq!(done, [0, 1, 2]);
//! assert_eq!(log.lock().unwrap().len(), 3);
//! ```
//!
//! Free functions act on the runtime of the calling coroutine; from a plain thread they use a
//! default runtime, started on first use with `WEFT_WORKERS` workers (default: one per core).
//! [`Runtime::builder`] makes a runtime of your own.

#![warn(missing_docs)]

pub use weft_runtime::*;

/// Networking on coroutines, mirroring `std::net`.
pub use weft_net as net;
