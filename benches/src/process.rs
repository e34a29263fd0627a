//! A server of the suite in a process of its own: `weft-bench serve STYLE PROTO`.

use std::io::{self, BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::servers::{Proto, Style};
use crate::sys;

/// How long a server may take to say it listens.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A running server; killed when dropped.
pub struct Server {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl Server {
    /// Starts `exe serve STYLE PROTO` with `workers` workers, pinned to `cpu` if given, and
    /// waits until it prints `listening on`.
    ///
    /// # Errors
    ///
    /// No free port, the process does not start, or it exits or stays silent for
    /// [`START_TIMEOUT`] instead of listening.
    pub fn start(
        exe: &Path,
        style: Style,
        proto: Proto,
        workers: usize,
        cpu: Option<usize>,
    ) -> io::Result<Server> {
        let addr = free_addr()?;
        let mut cmd = Command::new(exe);
        cmd.args(["serve", style.name(), proto.name(), "--addr", &addr.to_string()]);
        cmd.args(["--workers", &workers.to_string()]);
        if let Some(cpu) = cpu {
            cmd.args(["--cpu", &cpu.to_string()]);
        }
        let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).spawn()?;
        let stdout = child.stdout.take().expect("stdout is piped");
        // The first line comes from a thread, so that a server that never prints cannot hang
        // the runner; the thread then drains the pipe until the server exits.
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let _ = tx.send(lines.next());
            for _ in lines {}
        });
        let mut server = Server { child, addr };
        match rx.recv_timeout(START_TIMEOUT) {
            Ok(Some(Ok(line))) if line.starts_with("listening on") => Ok(server),
            Ok(other) => {
                let status = server.child.wait()?;
                Err(io::Error::other(format!(
                    "{style} {} did not start ({status}): {other:?}",
                    proto.name()
                )))
            }
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("{style} {} did not listen within {START_TIMEOUT:?}", proto.name()),
            )),
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its CPU time so far, in clock ticks.
    ///
    /// # Errors
    ///
    /// As [`sys::cpu_ticks`].
    pub fn cpu_ticks(&self) -> io::Result<u64> {
        sys::cpu_ticks(self.pid())
    }

    /// Its resident memory, in KiB.
    ///
    /// # Errors
    ///
    /// As [`sys::rss_kib`].
    pub fn rss_kib(&self) -> io::Result<u64> {
        sys::rss_kib(self.pid())
    }

    /// Whether it is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Already gone is fine: there is nothing else to do with it.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback address with a port no one listens on now. Some servers (may_minihttp) need a
/// real port, and every SO_REUSEPORT listener of a server binds the same one.
fn free_addr() -> io::Result<SocketAddr> {
    TcpListener::bind("127.0.0.1:0")?.local_addr()
}
