//! What the server listens on: the address it is given ([`BindAddr`]), a TCP port or a
//! Unix domain socket ([`Listener`], [`ListenAddr`]), the Unix socket's file
//! ([`SocketFile`]), and the wake-up of the accept loop. The connections' bytes flow
//! through `http::socket`.

use std::fmt;
use std::io;
use std::net::{
    IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, TcpListener, TcpStream,
    ToSocketAddrs,
};
#[cfg(unix)]
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::http::socket::Socket;

/// A TCP address to listen on, as [`ServerBuilder::bind`](super::ServerBuilder::bind)
/// takes it: a host name is kept as written, and resolved when the server starts.
///
/// It is made from what [`ToSocketAddrs`] takes: a `"host:port"` string (`&str`,
/// `String`), a `(host, port)` pair (a `&str`, `String`, [`IpAddr`], [`Ipv4Addr`] or
/// [`Ipv6Addr`] host), a [`SocketAddr`] (V4 or V6), or a list of them (`Vec` or slice).
///
/// ```
/// use std::net::{Ipv4Addr, SocketAddr};
/// use statefun_sync::http::BindAddr;
///
/// assert_eq!(BindAddr::from("0.0.0.0:8000").to_string(), "0.0.0.0:8000");
/// assert_eq!(BindAddr::from(("functions", 8000)).to_string(), "functions:8000");
/// let any = SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0));
/// assert_eq!(BindAddr::from(any).to_string(), "0.0.0.0:0");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BindAddr(Named);

#[derive(Clone, Debug, PartialEq, Eq)]
enum Named {
    /// `host:port`, as written.
    Text(String),
    HostPort(String, u16),
    Resolved(Vec<SocketAddr>),
}

impl BindAddr {
    /// The addresses it names, looked up now (a host name through the system's resolver).
    ///
    /// # Errors
    ///
    /// The resolver's error, or `InvalidInput` when it names no address; both name it.
    pub(super) fn resolve(&self) -> io::Result<Vec<SocketAddr>> {
        let resolved = match &self.0 {
            Named::Text(text) => text.to_socket_addrs().map(Iterator::collect),
            Named::HostPort(host, port) => (host.as_str(), *port)
                .to_socket_addrs()
                .map(Iterator::collect),
            Named::Resolved(addrs) => Ok(addrs.clone()),
        };
        match resolved {
            Ok(addrs) if addrs.is_empty() => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{self}: names no address to listen on"),
            )),
            Ok(addrs) => Ok(addrs),
            Err(err) => Err(io::Error::new(
                err.kind(),
                format!("cannot resolve {self}: {err}"),
            )),
        }
    }
}

impl fmt::Display for BindAddr {
    /// `0.0.0.0:8000`, `functions:8000`, `[::1]:8000`; a list as `a, b`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Named::Text(text) => f.write_str(text),
            Named::HostPort(host, port) if host.contains(':') => write!(f, "[{host}]:{port}"),
            Named::HostPort(host, port) => write!(f, "{host}:{port}"),
            Named::Resolved(addrs) if addrs.is_empty() => f.write_str("(no address)"),
            Named::Resolved(addrs) => {
                for (i, addr) in addrs.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    addr.fmt(f)?;
                }
                Ok(())
            }
        }
    }
}

impl From<&str> for BindAddr {
    fn from(text: &str) -> Self {
        BindAddr(Named::Text(text.to_owned()))
    }
}

impl From<String> for BindAddr {
    fn from(text: String) -> Self {
        BindAddr(Named::Text(text))
    }
}

impl From<&String> for BindAddr {
    fn from(text: &String) -> Self {
        BindAddr::from(text.as_str())
    }
}

impl From<(&str, u16)> for BindAddr {
    fn from((host, port): (&str, u16)) -> Self {
        BindAddr(Named::HostPort(host.to_owned(), port))
    }
}

impl From<(String, u16)> for BindAddr {
    fn from((host, port): (String, u16)) -> Self {
        BindAddr(Named::HostPort(host, port))
    }
}

impl From<SocketAddr> for BindAddr {
    fn from(addr: SocketAddr) -> Self {
        BindAddr(Named::Resolved(vec![addr]))
    }
}

impl From<&SocketAddr> for BindAddr {
    fn from(addr: &SocketAddr) -> Self {
        BindAddr::from(*addr)
    }
}

impl From<SocketAddrV4> for BindAddr {
    fn from(addr: SocketAddrV4) -> Self {
        BindAddr::from(SocketAddr::V4(addr))
    }
}

impl From<SocketAddrV6> for BindAddr {
    fn from(addr: SocketAddrV6) -> Self {
        BindAddr::from(SocketAddr::V6(addr))
    }
}

impl From<(IpAddr, u16)> for BindAddr {
    fn from(pair: (IpAddr, u16)) -> Self {
        BindAddr::from(SocketAddr::from(pair))
    }
}

impl From<(Ipv4Addr, u16)> for BindAddr {
    fn from(pair: (Ipv4Addr, u16)) -> Self {
        BindAddr::from(SocketAddr::from(pair))
    }
}

impl From<(Ipv6Addr, u16)> for BindAddr {
    fn from(pair: (Ipv6Addr, u16)) -> Self {
        BindAddr::from(SocketAddr::from(pair))
    }
}

impl From<Vec<SocketAddr>> for BindAddr {
    fn from(addrs: Vec<SocketAddr>) -> Self {
        BindAddr(Named::Resolved(addrs))
    }
}

impl From<&[SocketAddr]> for BindAddr {
    fn from(addrs: &[SocketAddr]) -> Self {
        BindAddr::from(addrs.to_vec())
    }
}

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
