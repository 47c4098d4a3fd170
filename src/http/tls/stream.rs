//! The encrypted stream: a rustls connection over a blocking socket, for the server and
//! for the testing kit's client.
//!
//! rustls' own `StreamOwned` drops the error of a write it could not finish (it surfaces
//! on the next call), and its handshake reads as long as the peer trickles bytes; this
//! stream reports every error where it happens, and bounds the handshake by one deadline.

use std::io::{self, Read, Write};
use std::time::Instant;

use crate::http::socket::{time_left as left, Socket};

/// A TLS connection over a socket. Reads and writes are bounded by the socket's
/// timeouts, as a plain socket's are.
pub(crate) struct TlsStream {
    conn: rustls::Connection,
    socket: Socket,
}

impl TlsStream {
    /// Runs the handshake of `conn` over `socket`, all of it by `deadline`: a peer that
    /// stalls, trickles bytes or sends garbage is cut off there. A failed handshake sends
    /// the peer rustls' alert before the error returns.
    pub(crate) fn handshake(
        conn: impl Into<rustls::Connection>,
        socket: Socket,
        deadline: Instant,
    ) -> io::Result<Self> {
        let mut stream = TlsStream {
            conn: conn.into(),
            socket,
        };
        while stream.conn.is_handshaking() {
            if stream.conn.wants_write() {
                stream.socket.set_write_timeout(Some(left(deadline)?))?;
                stream.flush_tls()?;
            } else {
                stream.socket.set_read_timeout(Some(left(deadline)?))?;
                if stream.read_tls()? == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the peer closed the connection during the TLS handshake",
                    ));
                }
            }
        }
        // TLS 1.3: the server's session tickets, sent after the handshake.
        if stream.conn.wants_write() {
            stream.socket.set_write_timeout(Some(left(deadline)?))?;
            stream.flush_tls()?;
        }
        Ok(stream)
    }

    /// The socket under the encryption (for its timeouts; never read or write it).
    pub(crate) fn socket(&self) -> &Socket {
        &self.socket
    }

    /// Tells the peer the connection ends (a `close_notify` alert), best effort.
    pub(crate) fn close_notify(&mut self) {
        self.conn.send_close_notify();
        let _ = self.flush_tls();
    }

    /// Reads records from the socket and processes them; 0 at the end of the stream. A
    /// record that does not decode or verify ends the connection with an alert.
    fn read_tls(&mut self) -> io::Result<usize> {
        let n = self.conn.read_tls(&mut self.socket)?;
        if let Err(err) = self.conn.process_new_packets() {
            // The alert rustls queued for the peer, then the error.
            let _ = self.flush_tls();
            return Err(io::Error::new(io::ErrorKind::InvalidData, err));
        }
        Ok(n)
    }

    /// Writes every record rustls has queued.
    fn flush_tls(&mut self) -> io::Result<()> {
        while self.conn.wants_write() {
            if self.conn.write_tls(&mut self.socket)? == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
        }
        Ok(())
    }
}

impl Read for TlsStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.conn.reader().read(buf) {
                Ok(n) => return Ok(n),
                // No plaintext yet: read more records.
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                // The peer closed without a close_notify. HTTP's framing tells a cut
                // message from a whole one, so this is an end of stream like any other.
                Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(err) => return Err(err),
            }
            // A key update's reply, or an alert, waiting to go out.
            self.flush_tls()?;
            if self.read_tls()? == 0 {
                // The reader now answers Ok(0) or UnexpectedEof: both ends the stream.
                return match self.conn.reader().read(buf) {
                    Ok(n) => Ok(n),
                    Err(err) if err.kind() == io::ErrorKind::WouldBlock => Ok(0),
                    Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => Ok(0),
                    Err(err) => Err(err),
                };
            }
        }
    }
}

impl Write for TlsStream {
    /// Encrypts `buf` and writes the records out, under the socket's write timeout.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.conn.writer().write(buf)?;
        self.flush_tls()?;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.flush_tls()?;
        self.socket.flush()
    }
}
