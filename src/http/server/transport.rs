//! What the server listens on: a TCP port or a Unix domain socket ([`Listener`],
//! [`ListenAddr`]), the Unix socket's file ([`SocketFile`]), and the wake-up of the accept
//! loop. The connections' bytes flow through `http::socket`.

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
#[cfg(unix)]
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::http::socket::Socket;

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
    /// [`Server::url`](super::Server::url) is this for the server's path and transport.
    pub(super) fn url(&self, path: &str, tls: bool) -> String {
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
