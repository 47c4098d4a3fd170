//! A connection's bytes, for the server and the testing kit's client alike: a TCP or Unix
//! domain [`Socket`], and the [`Stream`] over it, in the clear or in TLS.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
#[cfg(unix)]
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use crate::http::codec::Input;

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

/// A connection's byte stream: the socket itself, or TLS over it.
pub(crate) enum Stream {
    Plain(Socket),
    #[cfg(feature = "tls")]
    Tls(Box<crate::http::tls::stream::TlsStream>),
}

impl Stream {
    /// The socket under the stream, for its timeouts and its shutdown.
    pub(crate) fn socket(&self) -> &Socket {
        match self {
            Stream::Plain(socket) => socket,
            #[cfg(feature = "tls")]
            Stream::Tls(tls) => tls.socket(),
        }
    }

    /// Ends the sending side: a TLS `close_notify`, then the socket's shutdown.
    pub(crate) fn close_write(&mut self) {
        #[cfg(feature = "tls")]
        if let Stream::Tls(tls) = self {
            tls.close_notify();
        }
        let _ = self.socket().shutdown(Shutdown::Write);
    }

    /// Sets the read timeout to what is left until `deadline`.
    pub(crate) fn set_deadline(&self, deadline: Instant) -> io::Result<()> {
        self.socket().set_read_timeout(Some(time_left(deadline)?))
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

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(socket) => socket.read(buf),
            #[cfg(feature = "tls")]
            Stream::Tls(tls) => tls.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(socket) => socket.write(buf),
            #[cfg(feature = "tls")]
            Stream::Tls(tls) => tls.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(socket) => socket.flush(),
            #[cfg(feature = "tls")]
            Stream::Tls(tls) => tls.flush(),
        }
    }
}

impl Input for Stream {
    fn wait_until(&mut self, deadline: Option<Instant>) -> io::Result<()> {
        match deadline {
            Some(deadline) => self.set_deadline(deadline),
            None => Ok(()),
        }
    }
}
