//! A connection's socket, for the server and the testing kit's client alike: TCP or Unix
//! domain. The byte stream over it, in the clear or in TLS, is
//! [`Stream`](crate::http::stream::Stream), a module above this one and the TLS stream.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
#[cfg(unix)]
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// A connected socket: TCP, or a Unix domain socket.
pub(crate) enum Socket {
    Tcp(TcpStream),
    #[cfg(unix)]
    Unix(UnixStream),
}

/// Calls `$call` with `$s` bound to whichever socket it is.
macro_rules! on_socket {
    ($socket:expr, $s:ident => $call:expr) => {
        match $socket {
            Socket::Tcp($s) => $call,
            #[cfg(unix)]
            Socket::Unix($s) => $call,
        }
    };
}

impl Socket {
    /// Another handle to the same socket (to close it from the server's shutdown).
    #[cfg_attr(not(feature = "server"), allow(dead_code))]
    pub(crate) fn try_clone(&self) -> io::Result<Socket> {
        match self {
            Socket::Tcp(s) => s.try_clone().map(Socket::Tcp),
            #[cfg(unix)]
            Socket::Unix(s) => s.try_clone().map(Socket::Unix),
        }
    }

    pub(crate) fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        on_socket!(self, s => s.shutdown(how))
    }

    pub(crate) fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        on_socket!(self, s => s.set_read_timeout(timeout))
    }

    pub(crate) fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        on_socket!(self, s => s.set_write_timeout(timeout))
    }

    /// Bounds each read and each write by `timeout`.
    #[cfg_attr(not(feature = "testing"), allow(dead_code))]
    pub(crate) fn set_timeouts(&self, timeout: Duration) -> io::Result<()> {
        self.set_read_timeout(Some(timeout))?;
        self.set_write_timeout(Some(timeout))
    }
}

impl Read for Socket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        on_socket!(self, s => s.read(buf))
    }
}

impl Write for Socket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        on_socket!(self, s => s.write(buf))
    }
    fn flush(&mut self) -> io::Result<()> {
        on_socket!(self, s => s.flush())
    }
}

/// Writes through a shared handle, as `&TcpStream` does: the server's worker threads
/// answer a queued batch on the connection while its own thread reads it.
impl Write for &Socket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        on_socket!(*self, s => (&*s).write(buf))
    }
    fn flush(&mut self) -> io::Result<()> {
        on_socket!(*self, s => (&*s).flush())
    }
}

/// What is left until `deadline`, or a timeout error once it has passed: what a socket
/// timeout is set to so that a deadline bounds a whole exchange, not each call.
pub(crate) fn time_left(deadline: Instant) -> io::Result<Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        Err(io::ErrorKind::TimedOut.into())
    } else {
        Ok(left)
    }
}
