//! [`Server`]: listeners, acceptors, connection coroutines, and the graceful shutdown.
//!
//! Serving, step by step:
//!
//! 1. [`Server::bind`] opens one `SO_REUSEPORT` listener per worker; the kernel spreads new
//!    connections over them.
//! 2. [`Server::serve`] spawns one acceptor coroutine per listener, each placed on its own
//!    worker, and waits.
//! 3. An acceptor spawns a coroutine per connection on its worker (idle workers may steal it
//!    before it starts), after entering the connection in the registry.
//! 4. [`ShutdownHandle::shutdown`] sets `draining`, shuts the listeners down (the acceptors
//!    wake and end), and closes each connection that waits idle between requests. Busy
//!    connections finish the request in hand and close after its response.
//! 5. `serve` waits for the registry to empty, until the grace period ends; then it shuts
//!    down every connection left, which makes their reads and writes fail, and returns.
//!
//! A connection leaves the registry before its socket closes, and the registry's lock is held
//! while the server shuts a socket down, so an fd the registry names is always open.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use weft_runtime::sync::{Condvar, Mutex};

use super::conn::{self, Lifecycle, Watch, LINGER};
use super::{Limits, Request, Response};
use crate::{TcpListener, ToSocketAddrs};

/// An HTTP/1.1 server: listeners, limits, and [`serve`](Server::serve) to run a handler.
///
/// ```
/// use weft::net::http::{Client, Request, Response, Server};
///
/// let server = Server::bind("127.0.0.1:0")?;
/// let url = format!("http://{}/hello", server.local_addr()?);
/// let stop = server.shutdown_handle();
/// let serving = weft::spawn(move || server.serve(|req: Request| Response::new(format!("you asked for {}", req.uri().path()).into())));
///
/// let resp = Client::new().get(&url)?;
/// assert_eq!(resp.body(), b"you asked for /hello");
///
/// stop.shutdown(std::time::Duration::from_secs(1));
/// serving.join().unwrap()?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Server {
    shared: Arc<Shared>,
    limits: Limits,
    stack_size: Option<usize>,
}

struct Shared {
    listeners: Vec<TcpListener>,
    /// Set once by `shutdown`; read by connections between requests and by acceptors.
    draining: AtomicBool,
    state: Mutex<State>,
    /// Signalled when a shutdown starts and when the last connection leaves during one.
    changed: Condvar,
}

#[derive(Default)]
struct State {
    /// The end of the grace period, once a shutdown has started.
    deadline: Option<Instant>,
    next_id: u64,
    conns: HashMap<u64, Entry>,
}

struct Entry {
    fd: RawFd,
    life: Arc<Lifecycle>,
}

impl Server {
    /// Binds one `SO_REUSEPORT` listener per worker of the current runtime to `addr` (for
    /// port 0, the first listener's port is used for the rest).
    ///
    /// # Errors
    ///
    /// As [`TcpListener::bind_reuse_port`]: the address is in use, say.
    pub fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<Server> {
        let first = TcpListener::bind_reuse_port(addr)?;
        let addr = first.local_addr()?;
        let mut listeners = vec![first];
        for _ in 1..weft_runtime::workers() {
            listeners.push(TcpListener::bind_reuse_port(addr)?);
        }
        Ok(Server::with_listeners(listeners))
    }

    /// A server that accepts on `listener` alone, with one acceptor.
    pub fn from_listener(listener: TcpListener) -> Server {
        Server::with_listeners(vec![listener])
    }

    fn with_listeners(listeners: Vec<TcpListener>) -> Server {
        let shared = Shared {
            listeners,
            draining: AtomicBool::new(false),
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
        };
        Server { shared: Arc::new(shared), limits: Limits::default(), stack_size: None }
    }

    /// The address the server listens on.
    ///
    /// # Errors
    ///
    /// As [`TcpListener::local_addr`].
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.shared.listeners[0].local_addr()
    }

    /// The longest request line accepted, in bytes (default 8 KiB); longer gets 414.
    pub fn max_request_line(mut self, bytes: usize) -> Server {
        self.limits.max_request_line = bytes;
        self
    }

    /// The largest request head accepted, request line and fields, in bytes (default
    /// 64 KiB); larger gets 431. It also bounds a chunked body's trailer fields.
    pub fn max_head_size(mut self, bytes: usize) -> Server {
        self.limits.max_head = bytes;
        self
    }

    /// The most header fields a request may have (default 100); more gets 431.
    pub fn max_headers(mut self, fields: usize) -> Server {
        self.limits.max_headers = fields;
        self
    }

    /// The largest request body accepted, in bytes (default 8 MiB); larger gets 413.
    pub fn max_body_size(mut self, bytes: u64) -> Server {
        self.limits.max_body = bytes;
        self
    }

    /// The longest chunk-size line, extensions included, in bytes (default 1 KiB); longer is
    /// a malformed body (400).
    pub fn max_chunk_line(mut self, bytes: usize) -> Server {
        self.limits.max_chunk_line = bytes;
        self
    }

    /// How much of a request body the handler left unread the server reads and drops to
    /// keep the connection (default 256 KiB); past that it closes the connection.
    pub fn max_drain(mut self, bytes: u64) -> Server {
        self.limits.max_drain = bytes;
        self
    }

    /// How long a client has to send a whole request head, from its first byte (or, on a new
    /// connection, from the accept); default 30 s. Then it gets 408 and the connection
    /// closes. This is what stops slowloris.
    pub fn header_timeout(mut self, dur: Duration) -> Server {
        self.limits.header_timeout = dur;
        self
    }

    /// How long a keep-alive connection may wait for its next request (default 60 s).
    pub fn keep_alive_timeout(mut self, dur: Duration) -> Server {
        self.limits.keep_alive_timeout = dur;
        self
    }

    /// How long each read of a request body may wait for data (default 30 s). A read that
    /// times out fails with `TimedOut`, and the server answers 408.
    pub fn read_timeout(mut self, dur: Duration) -> Server {
        self.limits.read_timeout = dur;
        self
    }

    /// How long each write of a response may wait for the client to make room (default 30 s);
    /// then the connection is dropped.
    pub fn write_timeout(mut self, dur: Duration) -> Server {
        self.limits.write_timeout = dur;
        self
    }

    /// The stack size of connection coroutines (default: the runtime's). Handlers with deep
    /// call chains or large local buffers may need more.
    pub fn stack_size(mut self, bytes: usize) -> Server {
        self.stack_size = Some(bytes);
        self
    }

    /// A handle that stops this server; take it before [`serve`](Server::serve).
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle { shared: self.shared.clone() }
    }

    /// Serves connections with `handler` until a [`ShutdownHandle`] stops the server and its
    /// connections have finished (or the grace period has ended).
    ///
    /// The handler is called for each request, in the connection's coroutine; it may block.
    /// It runs on the current runtime (on a plain thread, the default runtime), and this call
    /// blocks the calling coroutine or thread.
    ///
    /// # Errors
    ///
    /// `OutOfMemory` if the acceptor coroutines cannot be spawned. Errors of single
    /// connections are the connection's: they close it and are not reported here.
    pub fn serve<F>(self, handler: F) -> io::Result<()>
    where
        F: Fn(Request<'_>) -> Response + Send + Sync + 'static,
    {
        let handler = Arc::new(handler);
        let limits = Arc::new(self.limits);
        let workers = weft_runtime::workers();
        let mut acceptors = Vec::new();
        for i in 0..self.shared.listeners.len() {
            let (shared, limits, handler) = (self.shared.clone(), limits.clone(), handler.clone());
            let stack_size = self.stack_size;
            let spawned = weft_runtime::Builder::new()
                .name(format!("http-accept-{i}"))
                .worker(i % workers)
                .spawn(move || accept_loop(&shared, i, &limits, stack_size, handler));
            match spawned {
                Ok(h) => acceptors.push(h),
                Err(e) => {
                    ShutdownHandle { shared: self.shared.clone() }.shutdown(Duration::ZERO);
                    acceptors
                        .into_iter()
                        .for_each(|h: weft_runtime::JoinHandle<()>| drop(h.join()));
                    return Err(e);
                }
            }
        }
        for acceptor in acceptors {
            if let Err(panic) = acceptor.join() {
                std::panic::resume_unwind(panic);
            }
        }
        self.shared.wait_for_connections();
        Ok(())
    }
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("listeners", &self.shared.listeners)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

fn accept_loop<F>(
    shared: &Arc<Shared>,
    index: usize,
    limits: &Arc<Limits>,
    stack_size: Option<usize>,
    handler: Arc<F>,
) where
    F: Fn(Request<'_>) -> Response + Send + Sync + 'static,
{
    let listener = &shared.listeners[index];
    loop {
        let stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(_) if shared.draining.load(SeqCst) => return,
            Err(e) => {
                // Out of fds, a connection reset before it was accepted: accept has backed
                // off already where that helps; the next connection is served.
                log::warn!("http: accept on {:?} failed: {e}", listener.local_addr());
                continue;
            }
        };
        if shared.draining.load(SeqCst) {
            return;
        }
        let accepted = Instant::now();
        // Responses are written whole; Nagle would only delay the last segment of each.
        let _ = stream.set_nodelay(true);
        let (id, life) = shared.register(stream.as_raw_fd());
        let (conn_shared, limits, handler) = (shared.clone(), limits.clone(), handler.clone());
        let conn_life = life.clone();
        let mut builder = weft_runtime::Builder::new();
        if let Some(size) = stack_size {
            builder = builder.stack_size(size);
        }
        let spawned = builder.spawn(move || {
            let watch = Watch { life: &conn_life, draining: &conn_shared.draining };
            conn::serve(&stream, &limits, Some(watch), accepted, &*handler);
            // Out of the registry before the fd closes (see the module docs).
            conn_shared.unregister(id);
            drop(stream);
        });
        if let Err(e) = spawned {
            // The closure, and the stream in it, are gone: the fd is closed already, so the
            // entry must go too. Nothing reads this fd number until then but under the lock.
            shared.unregister(id);
            log::warn!("http: no coroutine for a connection: {e}");
        }
        drop(life);
    }
}

impl Shared {
    fn register(&self, fd: RawFd) -> (u64, Arc<Lifecycle>) {
        let life = Arc::new(Lifecycle::default());
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let id = st.next_id;
        st.next_id += 1;
        st.conns.insert(id, Entry { fd, life: life.clone() });
        (id, life)
    }

    fn unregister(&self, id: u64) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.conns.remove(&id);
        if st.conns.is_empty() && st.deadline.is_some() {
            self.changed.notify_all();
        }
    }

    /// Waits until the shutdown has started and every connection has left, or the grace
    /// period has ended; then shuts down whatever connections are left, and gives them a
    /// moment to go.
    fn wait_for_connections(&self) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut forced_at = None;
        loop {
            let Some(deadline) = st.deadline else {
                st = self.changed.wait(st).unwrap_or_else(|e| e.into_inner());
                continue;
            };
            if st.conns.is_empty() {
                return;
            }
            let now = Instant::now();
            let until = match forced_at {
                None if now >= deadline => {
                    for entry in st.conns.values() {
                        shutdown_fd(entry.fd, libc::SHUT_RDWR);
                    }
                    forced_at = Some(now);
                    continue;
                }
                None => deadline,
                Some(at) if now >= at + LINGER * 2 => {
                    log::warn!(
                        "http: {} connections still busy after the shutdown's grace period",
                        st.conns.len()
                    );
                    return;
                }
                Some(at) => at + LINGER * 2,
            };
            st = self.changed.wait_timeout(st, until - now).unwrap_or_else(|e| e.into_inner()).0;
        }
    }
}

/// Stops a [`Server`] gracefully; see [`Server::shutdown_handle`].
///
/// It can be cloned and sent anywhere: a signal-handling thread, a coroutine of the
/// server's, a test.
#[derive(Clone)]
pub struct ShutdownHandle {
    shared: Arc<Shared>,
}

impl ShutdownHandle {
    /// Starts the server's shutdown, and returns at once; the server's
    /// [`serve`](Server::serve) returns when it is done.
    ///
    /// The listeners stop accepting, and idle keep-alive connections close. A request in
    /// progress is finished, and its response says `Connection: close`. Connections still
    /// open after `grace` are shut down. A second call does nothing.
    pub fn shutdown(&self, grace: Duration) {
        let shared = &self.shared;
        let mut st = shared.state.lock().unwrap_or_else(|e| e.into_inner());
        if st.deadline.is_some() {
            return;
        }
        st.deadline = Some(Instant::now() + grace);
        // Pairs with the connections' store of IDLE (see `conn::Lifecycle`).
        shared.draining.store(true, SeqCst);
        for listener in &shared.listeners {
            listener.stop_accepting();
        }
        for entry in st.conns.values() {
            if entry.life.close_if_idle() {
                shutdown_fd(entry.fd, libc::SHUT_RDWR);
            }
        }
        shared.changed.notify_all();
    }

    /// Whether [`shutdown`](ShutdownHandle::shutdown) has been called.
    pub fn is_shutdown(&self) -> bool {
        self.shared.draining.load(SeqCst)
    }
}

impl std::fmt::Debug for ShutdownHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShutdownHandle").field("is_shutdown", &self.is_shutdown()).finish()
    }
}

/// `shutdown(2)` on a connection the registry names. Its readers and writers wake: TCP
/// reports a local shutdown as readiness.
fn shutdown_fd(fd: RawFd, how: libc::c_int) {
    // SAFETY: plain FFI on an integer fd; the registry lock the caller holds keeps the fd
    // open (connections leave the registry before they close), and an error (the peer gone)
    // leaves nothing to undo.
    unsafe { libc::shutdown(fd, how) };
}
