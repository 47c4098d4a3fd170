//! What the server listens on and speaks over: a TCP port or a Unix domain socket
//! ([`Listener`], [`Socket`]), in the clear or in TLS ([`Stream`]). The connection loop
//! sees one [`Stream`] whatever is under it.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
#[cfg(unix)]
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::http::codec::Input;

/// Where a [`Server`](super::Server) listens: a TCP address, or the path of a Unix
/// domain socket ([`ServerBuilder::bind_unix`](super::ServerBuilder::bind_unix)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListenAddr {
    /// A TCP address, with the actual port when bound to port 0.
    Tcp(SocketAddr),
    /// The path of a Unix domain socket.
    Unix(PathBuf),
}

impl ListenAddr {
    /// The URL the runtime calls a function served at `path` by: `http://host:port/path`,
    /// `https://…` with TLS; on a Unix socket `http+unix://<socket path><path>` (or
    /// `https+unix`), as the runtime parses it (the socket's file name ends in `.sock`).
    pub fn url(&self, path: &str, tls: bool) -> String {
        let s = if tls { "s" } else { "" };
        match self {
            ListenAddr::Tcp(addr) => format!("http{s}://{addr}{path}"),
            ListenAddr::Unix(socket) => format!("http{s}+unix://{}{path}", socket.display()),
        }
    }
}

impl fmt::Display for ListenAddr {
    /// `127.0.0.1:8000`, or `unix:/run/statefun/functions.sock`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenAddr::Tcp(addr) => addr.fmt(f),
            ListenAddr::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// A listening socket.
pub(super) enum Listener {
    Tcp(TcpListener),
    #[cfg(unix)]
    Unix(UnixListener),
}

impl Listener {
    pub(super) fn accept(&self) -> io::Result<Socket> {
        match self {
            Listener::Tcp(listener) => {
                let (stream, _) = listener.accept()?;
                let _ = stream.set_nodelay(true);
                Ok(Socket::Tcp(stream))
            }
            #[cfg(unix)]
            Listener::Unix(listener) => Ok(Socket::Unix(listener.accept()?.0)),
        }
    }
}

/// Connects to the listener at `addr`, to wake the accept loop blocked on it; whether
/// that connection reached it. On a Unix socket it cannot when the file was removed or
/// replaced meanwhile (`file`, the one the server bound): then nothing can connect to the
/// listener, and its thread is left blocked, to end with the process.
pub(super) fn wake(addr: &ListenAddr, file: Option<&SocketFileOf>) -> bool {
    match addr {
        ListenAddr::Tcp(addr) => {
            TcpStream::connect_timeout(&wake_address(*addr), Duration::from_secs(1)).is_ok()
        }
        #[cfg(unix)]
        ListenAddr::Unix(path) => {
            file.is_some_and(SocketFile::is_in_place) && UnixStream::connect(path).is_ok()
        }
        #[cfg(not(unix))]
        ListenAddr::Unix(_) => {
            let _ = file;
            false
        }
    }
}

#[cfg(unix)]
pub(super) type SocketFileOf = SocketFile;
#[cfg(not(unix))]
pub(super) type SocketFileOf = std::convert::Infallible;

/// Where to connect to wake an accept() on `local`: the same port on loopback when
/// bound to every interface.
fn wake_address(local: SocketAddr) -> SocketAddr {
    match local.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::from((Ipv4Addr::LOCALHOST, local.port()))
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::from((Ipv6Addr::LOCALHOST, local.port()))
        }
        _ => local,
    }
}

/// An accepted connection's socket.
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
    /// Another handle to the same socket (to close it from the shutdown).
    pub(super) fn try_clone(&self) -> io::Result<Socket> {
        match self {
            Socket::Tcp(s) => s.try_clone().map(Socket::Tcp),
            #[cfg(unix)]
            Socket::Unix(s) => s.try_clone().map(Socket::Unix),
        }
    }

    pub(super) fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        on_socket!(self, s => s.shutdown(how))
    }

    pub(super) fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        on_socket!(self, s => s.set_read_timeout(timeout))
    }

    pub(super) fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        on_socket!(self, s => s.set_write_timeout(timeout))
    }
}

#[cfg(feature = "tls")]
impl crate::http::tls::stream::Socket for Socket {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        Socket::set_read_timeout(self, timeout)
    }
    fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        Socket::set_write_timeout(self, timeout)
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
pub(super) enum Stream {
    Plain(Socket),
    #[cfg(feature = "tls")]
    Tls(Box<crate::http::tls::stream::TlsStream<Socket>>),
}

impl Stream {
    /// The socket under the stream, for its timeouts and its shutdown.
    pub(super) fn socket(&self) -> &Socket {
        match self {
            Stream::Plain(socket) => socket,
            #[cfg(feature = "tls")]
            Stream::Tls(tls) => tls.socket(),
        }
    }

    /// Ends the sending side: a TLS `close_notify`, then the socket's shutdown.
    pub(super) fn close_write(&mut self) {
        #[cfg(feature = "tls")]
        if let Stream::Tls(tls) = self {
            tls.close_notify();
        }
        let _ = self.socket().shutdown(Shutdown::Write);
    }

    /// Sets the read timeout to what is left until `deadline`.
    pub(super) fn set_deadline(&self, deadline: Instant) -> io::Result<()> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        self.socket().set_read_timeout(Some(left))
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

/// A Unix socket file the server created, removed when the server stops, unless another
/// file has replaced it meanwhile.
#[cfg(unix)]
pub(super) struct SocketFile {
    path: PathBuf,
    inode: u64,
}

#[cfg(unix)]
impl SocketFile {
    /// Binds a Unix socket at `path` with permissions `mode`. A socket file left by a
    /// server that is gone is removed first; a live server's, or a file that is not a
    /// socket, is an error.
    pub(super) fn bind(path: &Path, mode: u32) -> io::Result<(UnixListener, SocketFile)> {
        use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_socket() => {
                if UnixStream::connect(path).is_ok() {
                    return Err(io::Error::new(
                        io::ErrorKind::AddrInUse,
                        format!("{}: another server is listening on it", path.display()),
                    ));
                }
                // Nobody listens: a stale file of a server that did not stop cleanly.
                std::fs::remove_file(path)?;
            }
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!(
                        "{}: exists and is not a socket (not removing it)",
                        path.display()
                    ),
                ))
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(with_path(err, path)),
        }
        let listener = UnixListener::bind(path).map_err(|err| with_path(err, path))?;
        let file = SocketFile {
            path: path.to_owned(),
            inode: std::fs::symlink_metadata(path)?.ino(),
        };
        // The mode is set once the file exists: until then the umask's mode applies
        // (0o755 under the usual 022, which lets no other user connect).
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .map_err(|err| with_path(err, path))?;
        Ok((listener, file))
    }

    /// Whether the file at the path is still the one this server bound.
    fn is_in_place(&self) -> bool {
        use std::os::unix::fs::MetadataExt;
        std::fs::symlink_metadata(&self.path).is_ok_and(|meta| meta.ino() == self.inode)
    }

    /// Removes the file if it is still the one this server bound.
    pub(super) fn remove(&self) {
        if self.is_in_place() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(unix)]
fn with_path(err: io::Error, path: &Path) -> io::Error {
    io::Error::new(err.kind(), format!("{}: {err}", path.display()))
}
