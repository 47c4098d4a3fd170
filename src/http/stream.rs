//! A connection's byte stream, for the server and the testing kit's client alike: the
//! [`Socket`] itself, or TLS over it. Above both the socket and the TLS stream, so that
//! imports go one way: this module uses them, and they use neither it nor each other's
//! users.

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::time::Instant;

use crate::http::codec::Input;
use crate::http::socket::{time_left, Socket};

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
