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
//! HTTP handlers are plain functions too. [`net::http::Server`] calls one per request, in the
//! connection's coroutine, with a [`net::http::Request`] (the `http` crate's request, whose body
//! implements `Read`), and sends the [`net::http::Response`] it returns. The handler may block
//! on anything: here it calls another service through the blocking [`net::http::Client`].
//!
//! ```
//! use weft::net::http::{Client, Request, Response, Server, StatusCode};
//!
//! // A backend, and a front server whose handler calls it.
//! let backend = Server::bind("127.0.0.1:0")?;
//! let backend_url = format!("http://{}/greeting", backend.local_addr()?);
//! let backend_stop = backend.shutdown_handle();
//! weft::spawn(move || backend.serve(|_req: Request| Response::new("hello".into())));
//!
//! let front = Server::bind("127.0.0.1:0")?;
//! let front_url = format!("http://{}/", front.local_addr()?);
//! let front_stop = front.shutdown_handle();
//! let client = Client::new();
//! weft::spawn(move || {
//!     front.serve(move |req: Request| match client.get(&backend_url) {
//!         Ok(greeting) => {
//!             let name = req.uri().query().unwrap_or("world");
//!             Response::new(format!("{}, {name}", String::from_utf8_lossy(greeting.body())).into())
//!         }
//!         Err(_) => {
//!             let mut rsp = Response::new("backend down".into());
//!             *rsp.status_mut() = StatusCode::BAD_GATEWAY;
//!             rsp
//!         }
//!     })
//! });
//!
//! let resp = Client::new().get(&format!("{front_url}?weft"))?;
//! assert_eq!(resp.body(), b"hello, weft");
//! front_stop.shutdown(std::time::Duration::from_secs(1));
//! backend_stop.shutdown(std::time::Duration::from_secs(1));
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! Free functions act on the runtime of the calling coroutine; from a plain thread they use a
//! default runtime, started on first use with `WEFT_WORKERS` workers (default: one per core).
//! [`Runtime::builder`] makes a runtime of your own.

#![warn(missing_docs)]

pub use weft_runtime::*;

/// Networking on coroutines, mirroring `std::net`.
pub use weft_net as net;
