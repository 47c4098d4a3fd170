//! A small blocking HTTP/1.1 client for remote functions ([`LocalRuntime`]'s, and
//! [`call_remote`](super::v2::call_remote)): one `POST` per connection (`Connection: close`), as plain as the
//! runtime's own use of HTTP. It connects over TCP or a Unix domain socket, speaks TLS
//! over either with feature `tls` (the server's `TlsStream`, with a rustls client), and
//! writes the request and reads the response with the crate's HTTP/1 codec (the
//! server's).
//!
//! [`LocalRuntime`]: super::LocalRuntime

use std::error::Error as StdError;
use std::fmt;
#[cfg(feature = "tls")]
use std::io::Read;
use std::io::{self, Write};
use std::net::{TcpStream, ToSocketAddrs};
#[cfg(unix)]
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
#[cfg(feature = "tls")]
use std::sync::Arc;
use std::time::Duration;
#[cfg(feature = "tls")]
use std::time::Instant;

use crate::http::codec::{encode_request, Framing, Input, ReadError, Reader, ResponseHead};
use crate::http::socket::Socket;
use crate::http::stream::Stream;
use crate::http::OCTET_STREAM;
use crate::protocol::ProtocolVersion;

/// The most a response head (status line and headers) may take.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// The most a response body may take: far above any real reply, low enough that a
/// runaway server cannot exhaust a test's memory.
const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// Where a remote function is served: `http://host:port/path`, `https://…`, or a Unix
/// socket's `http+unix:///dir/fn.sock/path`, `https+unix://…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    url: String,
    to: Target,
    tls: bool,
    path: String,
}

/// What the client connects to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Tcp { host: String, port: u16 },
    Unix(PathBuf),
}

impl Endpoint {
    /// Parses a URL as the runtime reads an endpoint: `http://host[:port]/path`,
    /// `https://…` (feature `tls`), and on Unix `http+unix://<socket path>/path` and
    /// `https+unix://…`, where the socket's path ends with the first component whose name
    /// ends in `.sock`. The port defaults to 80 (443 for `https`) and the path to `/`.
    pub(crate) fn parse(url: &str) -> Result<Endpoint, &'static str> {
        let (scheme, rest) = url.split_once("://").ok_or(
            "the URL has no scheme: it must start with `http://`, `https://`, \
             `http+unix://` or `https+unix://`",
        )?;
        let (tls, unix) = match scheme.to_ascii_lowercase().as_str() {
            "http" => (false, false),
            "https" => (true, false),
            "http+unix" => (false, true),
            "https+unix" => (true, true),
            _ => return Err("the scheme is not `http`, `https`, `http+unix` or `https+unix`"),
        };
        if tls && !cfg!(feature = "tls") {
            return Err("`https` needs the crate's feature `tls`");
        }
        if unix && !cfg!(unix) {
            return Err("Unix domain sockets (`http+unix`, `https+unix`) need a Unix platform");
        }
        if rest.contains(|c: char| c.is_whitespace() || c.is_control()) {
            return Err("the URL contains whitespace or control characters");
        }
        let (to, path) = if unix {
            split_socket(rest)?
        } else {
            split_authority(rest, if tls { 443 } else { 80 })?
        };
        Ok(Endpoint {
            url: url.to_owned(),
            to,
            tls,
            path: path.to_owned(),
        })
    }

    /// The URL as given.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// Whether the endpoint speaks TLS (`https`, `https+unix`).
    #[cfg(feature = "tls")]
    pub(crate) fn is_tls(&self) -> bool {
        self.tls
    }

    /// The `Host` header: `host:port` (`[::1]:port`); `localhost` over a Unix socket.
    fn host_header(&self) -> String {
        match &self.to {
            Target::Tcp { host, port } if host.contains(':') => format!("[{host}]:{port}"),
            Target::Tcp { host, port } => format!("{host}:{port}"),
            Target::Unix(_) => "localhost".to_owned(),
        }
    }

    /// The name the server's certificate must be valid for, unless the client's TLS
    /// settings name another: the host; `localhost` over a Unix socket.
    #[cfg(feature = "tls")]
    fn server_name(&self) -> &str {
        match &self.to {
            Target::Tcp { host, .. } => host,
            Target::Unix(_) => "localhost",
        }
    }
}

/// Splits `host[:port]/path` (`[v6]:port/path`); `default_port` when none is given.
fn split_authority(rest: &str, default_port: u16) -> Result<(Target, &str), &'static str> {
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        return Err("the URL has no host");
    }
    if authority.contains('@') {
        return Err("credentials in the URL are not supported");
    }
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        // An IPv6 literal: `[::1]:8000`.
        let (host, after) = bracketed
            .split_once(']')
            .ok_or("the IPv6 host has no closing `]`")?;
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':').ok_or("junk after the IPv6 host")?),
        };
        (host, port)
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err("the URL has no host");
    }
    let port = match port {
        None => default_port,
        Some(port) => port
            .parse::<u16>()
            .map_err(|_| "the port is not a number from 0 to 65535")?,
    };
    let host = host.to_owned();
    Ok((Target::Tcp { host, port }, path))
}

/// Splits `/run/fn.sock/statefun` as the runtime does: the socket is the path up to and
/// including the first component whose name ends in `.sock`, the request path the rest
/// (`/` when nothing is left).
fn split_socket(rest: &str) -> Result<(Target, &str), &'static str> {
    if !rest.starts_with('/') {
        return Err("the socket's path must be absolute, after an empty host \
             (`http+unix:///run/functions.sock/statefun`)");
    }
    let mut start = 1;
    loop {
        let end = rest[start..].find('/').map_or(rest.len(), |i| start + i);
        if rest[start..end].ends_with(".sock") {
            let path = if end == rest.len() { "/" } else { &rest[end..] };
            return Ok((Target::Unix(PathBuf::from(&rest[..end])), path));
        }
        if end == rest.len() {
            return Err(
                "no component of the path ends in `.sock`, which is where the runtime ends \
                 the socket's path (`http+unix:///run/functions.sock/statefun`)",
            );
        }
        start = end + 1;
    }
}

/// How the testing kit's client calls a remote function: its timeout and, for `https`
/// and `https+unix` endpoints, its TLS settings. Give it to [`call_remote_with`](super::v2::call_remote_with) or
/// [`v3::call_remote_with`](super::v3::call_remote_with); a
/// [`LocalRuntime`](super::LocalRuntime) takes the same settings from
/// [`remote_timeout`](super::LocalRuntime::remote_timeout) and, with feature `tls`,
/// `remote_tls`.
///
/// `http` and `http+unix` need nothing beyond the timeout, which is what
/// [`call_remote`](super::v2::call_remote) takes.
#[derive(Debug, Clone)]
pub struct RemoteOptions {
    pub(crate) timeout: Duration,
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<ClientTls>,
}

impl RemoteOptions {
    /// Settings with `timeout` as the bound on connecting, on the TLS handshake, and on
    /// each read and write, and no TLS settings.
    pub fn new(timeout: Duration) -> Self {
        RemoteOptions {
            timeout,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }

    /// The TLS settings for `https` and `https+unix` endpoints (feature `tls`): the CA
    /// to trust and, for mutual TLS, the client certificate. Without them such an
    /// endpoint is an [`InvalidUrl`](RemoteError::InvalidUrl) error.
    #[cfg(feature = "tls")]
    pub fn tls(mut self, tls: ClientTls) -> Self {
        self.tls = Some(tls);
        self
    }
}

/// The testing kit's TLS settings as a client (feature `tls`): the CA bundle whose server
/// certificates it trusts and, for a server that requires mutual TLS, the certificate and
/// key it presents. For [`RemoteOptions::tls`] and `LocalRuntime::remote_tls`.
///
/// The files are read here, so a missing file or one without a certificate or key is an
/// error of [`new`](Self::new) or [`identity`](Self::identity), not of the first call. It
/// speaks TLS 1.3 and 1.2 with rustls' safe defaults, and resumes sessions across calls
/// with one `ClientTls` (clones share them).
///
/// ```no_run
/// use std::time::Duration;
/// use statefun_sync::testing::{ClientTls, RemoteOptions, v2::{call_remote_with, Request}};
///
/// let tls = ClientTls::new("tls/ca.crt")?
///     // Mutual TLS: a certificate from the CA the server's `client_ca` names.
///     .identity("tls/client.crt", "tls/client.key")?;
/// let options = RemoteOptions::new(Duration::from_secs(10)).tls(tls);
///
/// let request = Request::to("example/greeter", "alice").invoke(prost_types::Any::default());
/// let reply = call_remote_with("https://localhost:8443/statefun", &request, &options)?;
/// // The same settings over a Unix socket: the certificate must be valid for `localhost`.
/// let reply = call_remote_with("https+unix:///run/statefun/functions.sock/statefun", &request, &options)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[cfg(feature = "tls")]
#[derive(Clone)]
pub struct ClientTls {
    ca_bundle: PathBuf,
    roots: Arc<rustls::RootCertStore>,
    identity: Option<(PathBuf, PathBuf)>,
    config: Arc<rustls::ClientConfig>,
    server_name: Option<String>,
}

#[cfg(feature = "tls")]
impl ClientTls {
    /// Settings that trust the server certificates issued by one of the CA certificates in
    /// the PEM file `ca_bundle` (what the runtime's `trust_cacerts` names), and present no
    /// client certificate.
    ///
    /// # Errors
    ///
    /// An [`io::Error`] naming the file if it cannot be read, or holds no usable CA
    /// certificate.
    pub fn new(ca_bundle: impl Into<PathBuf>) -> io::Result<ClientTls> {
        use crate::http::tls::read_roots;
        let ca_bundle = ca_bundle.into();
        let roots = read_roots(&ca_bundle)?;
        let config = client_config(&roots, None).map_err(crate::http::tls::io_error)?;
        Ok(ClientTls {
            ca_bundle,
            roots,
            identity: None,
            config,
            server_name: None,
        })
    }

    /// Mutual TLS: presents the certificate chain in the PEM file `cert_chain` (the
    /// client's certificate first) with its private key in the PEM file `key` (PKCS#8,
    /// PKCS#1 or SEC1), as the runtime's `client_cert` and `client_key`.
    ///
    /// # Errors
    ///
    /// An [`io::Error`] naming the file if one cannot be read or holds no certificate or
    /// key, or naming both if the key is not the certificate's.
    pub fn identity(
        mut self,
        cert_chain: impl Into<PathBuf>,
        key: impl Into<PathBuf>,
    ) -> io::Result<ClientTls> {
        use crate::http::tls::{read_certs, read_key};
        let (cert_chain, key) = (cert_chain.into(), key.into());
        let identity = (read_certs(&cert_chain)?, read_key(&key)?);
        self.config = client_config(&self.roots, Some(identity)).map_err(|err| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{} with {}: {err}", cert_chain.display(), key.display()),
            )
        })?;
        self.identity = Some((cert_chain, key));
        Ok(self)
    }

    /// Checks the server's certificate against `name` (a DNS name or an IP address)
    /// instead of the URL's host (`localhost` for `https+unix`): for a certificate issued
    /// to the service's name, called by a loopback address in a test.
    pub fn server_name(mut self, name: impl Into<String>) -> ClientTls {
        self.server_name = Some(name.into());
        self
    }
}

#[cfg(feature = "tls")]
impl fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientTls")
            .field("ca_bundle", &self.ca_bundle)
            .field("identity", &self.identity)
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

/// The client's rustls configuration: `roots` to trust, and the client certificate and
/// key to present, if any.
#[cfg(feature = "tls")]
fn client_config(
    roots: &Arc<rustls::RootCertStore>,
    identity: Option<(
        Vec<rustls::pki_types::CertificateDer<'static>>,
        rustls::pki_types::PrivateKeyDer<'static>,
    )>,
) -> Result<Arc<rustls::ClientConfig>, rustls::Error> {
    let builder = rustls::ClientConfig::builder_with_provider(crate::http::tls::provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(Arc::clone(roots));
    let mut config = match identity {
        None => builder.with_no_client_auth(),
        Some((certs, key)) => builder.with_client_auth_cert(certs, key)?,
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Why a remote function did not answer a batch with a reply.
///
/// The runtime treats every one of these as a failed call (it retries until the
/// function's timeout, then fails the job); [`LocalRuntime`](super::LocalRuntime) stops at
/// the first.
#[derive(Debug)]
#[non_exhaustive]
pub enum RemoteError {
    /// Connecting, sending the request or reading the response failed (refused, reset,
    /// timed out, no socket file).
    Io {
        /// What the client was doing, e.g. `connecting to 127.0.0.1:8000`.
        during: String,
        /// The I/O error.
        source: io::Error,
    },
    /// TLS with an `https` or `https+unix` endpoint failed: the handshake (the server's
    /// certificate is not from the trusted CA or not valid for the server name, the
    /// endpoint does not speak TLS, the handshake timed out), or the server refused the
    /// client's certificate or its lack of one, which TLS 1.3 tells the client only when
    /// it reads the response.
    Tls {
        /// The URL called.
        url: String,
        /// What failed, e.g. `the server refused the client certificate`.
        reason: String,
        /// rustls' error (a received alert, a certificate it does not accept), or the
        /// socket's, inside an [`io::Error`].
        source: io::Error,
    },
    /// The response is not HTTP/1.x as the client reads it.
    MalformedResponse {
        /// What is wrong with it.
        reason: String,
    },
    /// The response status is not 2xx.
    Status {
        /// The status code.
        status: u16,
        /// The start of the response body, lossily decoded, for the error message.
        body: String,
    },
    /// The response's content type is not exactly `application/octet-stream`.
    ContentType {
        /// The `Content-Type` header, if there was one.
        content_type: Option<String>,
    },
    /// The response has an empty body (which only the 3.x runtime reads as an empty
    /// reply).
    EmptyBody,
    /// The body is not a serialized `FromFunction` with an invocation result.
    MalformedReply {
        /// What is wrong with it.
        reason: String,
    },
    /// The URL given to [`call_remote`](super::v2::call_remote) is not one the client can call
    /// (`http://host[:port]/path`, `https://…`, `http+unix:///dir/fn.sock/path`,
    /// `https+unix://…`), or is an `https` URL and no TLS settings were given.
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl fmt::Display for RemoteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RemoteError::Io { during, .. } => write!(f, "I/O error while {during}"),
            RemoteError::Tls { url, reason, .. } => write!(f, "TLS with {url} failed: {reason}"),
            RemoteError::MalformedResponse { reason } => {
                write!(f, "malformed HTTP response: {reason}")
            }
            RemoteError::Status { status, body } => {
                write!(f, "the endpoint answered HTTP {status}")?;
                if !body.is_empty() {
                    write!(f, " with {body:?}")?;
                }
                Ok(())
            }
            RemoteError::ContentType {
                content_type: Some(content_type),
            } => write!(
                f,
                "the response's content type is {content_type:?}, not \
                 \"application/octet-stream\""
            ),
            RemoteError::ContentType { content_type: None } => f.write_str(
                "the response has no content type (it must be \"application/octet-stream\")",
            ),
            RemoteError::EmptyBody => f.write_str("the response body is empty"),
            RemoteError::MalformedReply { reason } => {
                write!(f, "the response body is not a reply: {reason}")
            }
            RemoteError::InvalidUrl { url, reason } => {
                write!(f, "cannot call {url:?}: {reason}")
            }
        }
    }
}

impl StdError for RemoteError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            RemoteError::Io { source, .. } | RemoteError::Tls { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// A response: status, content type and body.
#[derive(Debug)]
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) content_type: Option<String>,
    pub(crate) body: Vec<u8>,
}

/// An `Io` error of `during`, as a `map_err` closure.
fn io(during: String) -> impl Fn(io::Error) -> RemoteError {
    move |source| RemoteError::Io {
        during: during.clone(),
        source,
    }
}

/// Connects to `endpoint`'s host or socket; each read and write bounded by `timeout`.
fn connect(endpoint: &Endpoint, timeout: Duration) -> Result<Socket, RemoteError> {
    match &endpoint.to {
        Target::Tcp { host, port } => {
            let connecting = format!("connecting to {}", endpoint.host_header());
            let addresses = (host.as_str(), *port)
                .to_socket_addrs()
                .map_err(io(connecting.clone()))?;
            let mut last_error = io::Error::new(io::ErrorKind::NotFound, "the host has no address");
            let mut connected = None;
            for address in addresses {
                match TcpStream::connect_timeout(&address, timeout) {
                    Ok(stream) => {
                        connected = Some(stream);
                        break;
                    }
                    Err(error) => last_error = error,
                }
            }
            let stream = connected.ok_or(RemoteError::Io {
                during: connecting,
                source: last_error,
            })?;
            let setup = io(format!(
                "setting up the connection to {}",
                endpoint.host_header()
            ));
            // Latency, not throughput, matters for one small request.
            stream.set_nodelay(true).map_err(&setup)?;
            let socket = Socket::Tcp(stream);
            socket.set_timeouts(timeout).map_err(setup)?;
            Ok(socket)
        }
        #[cfg(unix)]
        Target::Unix(path) => {
            // No timeout: connecting to a local socket does not wait on a network.
            let stream = UnixStream::connect(path).map_err(io(format!(
                "connecting to the Unix socket {} of {}",
                path.display(),
                endpoint.url
            )))?;
            let socket = Socket::Unix(stream);
            socket
                .set_timeouts(timeout)
                .map_err(io(format!("setting up the connection to {}", endpoint.url)))?;
            Ok(socket)
        }
        #[cfg(not(unix))]
        Target::Unix(_) => Err(RemoteError::InvalidUrl {
            url: endpoint.url.clone(),
            reason: "Unix domain sockets need a Unix platform".to_owned(),
        }),
    }
}

/// The TLS settings to call `endpoint` with: `None` for plain HTTP.
#[cfg(feature = "tls")]
fn tls_settings<'a>(
    endpoint: &Endpoint,
    options: &'a RemoteOptions,
) -> Result<Option<&'a ClientTls>, RemoteError> {
    if !endpoint.tls {
        return Ok(None);
    }
    match &options.tls {
        Some(tls) => Ok(Some(tls)),
        None => Err(RemoteError::InvalidUrl {
            url: endpoint.url.clone(),
            reason: NO_TLS_SETTINGS.to_owned(),
        }),
    }
}

/// Why an `https` endpoint cannot be called without TLS settings.
#[cfg(feature = "tls")]
pub(crate) const NO_TLS_SETTINGS: &str =
    "an `https` endpoint needs the client's TLS settings, a `ClientTls` (`RemoteOptions::tls`, \
     `LocalRuntime::remote_tls`)";

/// Runs the TLS handshake over `socket`, by `timeout`.
#[cfg(feature = "tls")]
fn handshake(
    endpoint: &Endpoint,
    tls: &ClientTls,
    socket: Socket,
    timeout: Duration,
) -> Result<Stream, RemoteError> {
    use crate::http::tls::stream::TlsStream;
    let failed = |reason: String, source: io::Error| RemoteError::Tls {
        url: endpoint.url.clone(),
        reason,
        source,
    };
    let name = tls
        .server_name
        .as_deref()
        .unwrap_or_else(|| endpoint.server_name());
    let server_name = rustls::pki_types::ServerName::try_from(name.to_owned()).map_err(|err| {
        failed(
            format!("the server name {name:?} is neither a DNS name nor an IP address"),
            io::Error::new(io::ErrorKind::InvalidInput, err.to_string()),
        )
    })?;
    let conn =
        rustls::ClientConnection::new(Arc::clone(&tls.config), server_name).map_err(|err| {
            failed(
                "the TLS session could not be set up".to_owned(),
                crate::http::tls::io_error(err),
            )
        })?;
    let now = Instant::now();
    // A timeout too long to add is no bound at all.
    let deadline = now
        .checked_add(timeout)
        .unwrap_or(now + Duration::from_secs(365 * 86_400));
    let stream = TlsStream::handshake(conn, socket, deadline).map_err(|err| {
        let reason =
            tls_failure(&err, tls.identity.is_some()).unwrap_or("the handshake did not complete");
        failed(reason.to_owned(), err)
    })?;
    // The handshake left the socket's timeouts at what was left of its deadline.
    stream
        .socket()
        .set_timeouts(timeout)
        .map_err(io(format!("setting up the connection to {}", endpoint.url)))?;
    Ok(Stream::Tls(Box::new(stream)))
}

/// What failed, when rustls' error is inside `err`; `identity`: whether the client
/// presented a certificate.
#[cfg(feature = "tls")]
fn tls_failure(err: &io::Error, identity: bool) -> Option<&'static str> {
    use rustls::AlertDescription as Alert;
    let error = err.get_ref()?.downcast_ref::<rustls::Error>()?;
    Some(match error {
        rustls::Error::InvalidCertificate(_) => {
            "the client does not accept the server's certificate"
        }
        rustls::Error::AlertReceived(Alert::CertificateRequired) => {
            "the server requires a client certificate, and none was given \
             (`ClientTls::identity`)"
        }
        rustls::Error::AlertReceived(
            Alert::BadCertificate
            | Alert::UnsupportedCertificate
            | Alert::CertificateRevoked
            | Alert::CertificateExpired
            | Alert::CertificateUnknown
            | Alert::UnknownCA
            | Alert::AccessDenied
            // rustls' answer to a certificate whose signature does not verify.
            | Alert::DecryptError,
        ) if identity => "the server refused the client certificate",
        rustls::Error::AlertReceived(_) => "the server ended the session with an alert",
        rustls::Error::InvalidMessage(_) => "the endpoint does not speak TLS",
        rustls::Error::PeerIncompatible(_) => {
            "the server and the client have no TLS version or cipher suite in common"
        }
        _ => "the TLS session failed",
    })
}

/// After a failed write over TLS: the alert the server sent before it closed the
/// connection, if one waits to be read. A server that refuses the client's certificate
/// may close before the request is written, and only its alert says why.
#[cfg(feature = "tls")]
fn pending_alert(connection: &mut Stream) -> Option<io::Error> {
    if !matches!(connection, Stream::Tls(_)) {
        return None;
    }
    match connection.read(&mut [0; 1]) {
        Err(error) if tls_failure(&error, false).is_some() => Some(error),
        _ => None,
    }
}

/// An I/O error of `during` on the connection to `endpoint`: a [`RemoteError::Tls`] when
/// TLS failed under it (a refused client certificate arrives as an alert at the first
/// read), else a [`RemoteError::Io`].
#[cfg_attr(not(feature = "tls"), allow(unused_variables))]
fn failed(
    endpoint: &Endpoint,
    options: &RemoteOptions,
    during: String,
    source: io::Error,
) -> RemoteError {
    #[cfg(feature = "tls")]
    if let Some(reason) = tls_failure(
        &source,
        options
            .tls
            .as_ref()
            .is_some_and(|tls| tls.identity.is_some()),
    ) {
        return RemoteError::Tls {
            url: endpoint.url.clone(),
            reason: reason.to_owned(),
            source,
        };
    }
    RemoteError::Io { during, source }
}

/// POSTs `body` to `endpoint` as `application/octet-stream` and reads the response.
/// `options.timeout` bounds connecting, the TLS handshake, and each read and write.
pub(crate) fn post(
    endpoint: &Endpoint,
    body: &[u8],
    options: &RemoteOptions,
) -> Result<Response, RemoteError> {
    let timeout = options.timeout;
    // Checked first: an `https` endpoint without TLS settings is not even connected to.
    #[cfg(feature = "tls")]
    let tls = tls_settings(endpoint, options)?;
    let socket = connect(endpoint, timeout)?;
    #[cfg(feature = "tls")]
    let mut connection = match tls {
        Some(tls) => handshake(endpoint, tls, socket, timeout)?,
        None => Stream::Plain(socket),
    };
    #[cfg(not(feature = "tls"))]
    let mut connection = Stream::Plain(socket);

    let request = encode_request(
        "POST",
        &endpoint.path,
        &endpoint.host_header(),
        OCTET_STREAM,
        body,
    );
    if let Err(error) = connection.write_all(&request) {
        #[cfg(feature = "tls")]
        let error = pending_alert(&mut connection).unwrap_or(error);
        return Err(failed(
            endpoint,
            options,
            format!("sending the request to {}", endpoint.url),
            error,
        ));
    }

    let mut reader = Reader::new(connection, MAX_HEAD_BYTES);
    let response = read_response(&mut reader).map_err(|error| match error {
        Unread::Io(source) => failed(
            endpoint,
            options,
            format!("reading the response from {}", endpoint.url),
            source,
        ),
        Unread::Malformed(reason) => RemoteError::MalformedResponse { reason },
    })?;
    // The whole response is read: end the session as TLS asks, so the server's side
    // sees a clean end rather than a cut connection.
    reader.stream_mut().close_write();
    Ok(response)
}

/// POSTs a batch and checks the response as the runtime of `version` does: a 2xx status,
/// the content type exactly `application/octet-stream`, and, on 2.2, a body (the 3.x
/// runtime reads an empty body as an empty `FromFunction`). Returns the body.
pub(crate) fn post_batch(
    endpoint: &Endpoint,
    body: &[u8],
    options: &RemoteOptions,
    version: ProtocolVersion,
) -> Result<Vec<u8>, RemoteError> {
    let response = post(endpoint, body, options)?;
    if !(200..300).contains(&response.status) {
        let end = response.body.len().min(200);
        return Err(RemoteError::Status {
            status: response.status,
            body: String::from_utf8_lossy(&response.body[..end]).into_owned(),
        });
    }
    if response.content_type.as_deref() != Some(OCTET_STREAM) {
        return Err(RemoteError::ContentType {
            content_type: response.content_type,
        });
    }
    if response.body.is_empty() && version == ProtocolVersion::V2 {
        return Err(RemoteError::EmptyBody);
    }
    Ok(response.body)
}

/// Parses `url` and [`post_batch`]es `body` to it: what [`call_remote_with`](super::v2::call_remote_with) and
/// [`v3::call_remote_with`](super::v3::call_remote_with) share.
pub(crate) fn exchange(
    url: &str,
    body: &[u8],
    options: &RemoteOptions,
    version: ProtocolVersion,
) -> Result<Vec<u8>, RemoteError> {
    let endpoint = Endpoint::parse(url).map_err(|reason| RemoteError::InvalidUrl {
        url: url.to_owned(),
        reason: reason.to_owned(),
    })?;
    post_batch(&endpoint, body, options, version)
}

/// Why a response could not be read.
enum Unread {
    Io(io::Error),
    Malformed(String),
}

fn malformed(reason: impl Into<String>) -> Unread {
    Unread::Malformed(reason.into())
}

/// Reads one response with the crate's codec: the head, then a body framed by
/// `Content-Length`, by chunked transfer coding, or by the end of the connection.
fn read_response(reader: &mut Reader<impl Input>) -> Result<Response, Unread> {
    let head = match reader.read_response_head() {
        Ok(head) => head,
        Err(ReadError::Closed) if reader.buffered().is_empty() => {
            return Err(malformed("the connection closed without a response"))
        }
        Err(ReadError::Closed) => {
            return Err(malformed(
                "the connection closed in the middle of the response head",
            ))
        }
        Err(error) => return Err(unread(error)),
    };
    let ResponseHead {
        status,
        content_type,
        framing,
    } = head;
    if let Framing::Length(length) = framing {
        if length > MAX_BODY_BYTES as u64 {
            return Err(malformed(format!(
                "the body of {length} bytes is longer than {MAX_BODY_BYTES} bytes"
            )));
        }
    }
    let body = match reader.read_body(framing, MAX_BODY_BYTES, None) {
        Ok(body) => body,
        Err(ReadError::Closed) => {
            return Err(malformed(match framing {
                Framing::Length(length) => {
                    format!("the connection closed before the {length} body bytes were read")
                }
                _ => "the connection closed in the middle of the chunked body".to_owned(),
            }))
        }
        Err(error) => return Err(unread(error)),
    };
    Ok(Response {
        status,
        content_type,
        body,
    })
}

/// What the codec could not read, said of a response.
fn unread(error: ReadError) -> Unread {
    use crate::http::endpoint::Refusal;
    match error {
        ReadError::Io(error) => Unread::Io(error),
        ReadError::Closed => malformed("the connection closed in the middle of the response"),
        ReadError::Refused(refusal) => malformed(match refusal {
            Refusal::HeadTooLarge { max } => {
                format!("the response head is longer than {max} bytes")
            }
            Refusal::TooManyHeaders { max } => {
                format!("bad response head: more than {max} headers")
            }
            Refusal::MalformedHead(error) => format!("bad response head: {error}"),
            Refusal::BadContentLength => "bad Content-Length: not a number".to_owned(),
            Refusal::BadFraming(what) => format!("bad chunked body: {what}"),
            Refusal::BodyTooLarge { .. } => {
                format!("the body is longer than {MAX_BODY_BYTES} bytes")
            }
            Refusal::TrailersTooLarge { max } => {
                format!("the trailer fields are longer than {max} bytes")
            }
            other => other.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(host: &str, port: u16) -> Target {
        Target::Tcp {
            host: host.to_owned(),
            port,
        }
    }

    fn unix(path: &str) -> Target {
        Target::Unix(PathBuf::from(path))
    }

    #[test]
    fn endpoints_parse_host_port_socket_and_path() {
        let mut cases = vec![
            (
                "http://127.0.0.1:8000/statefun",
                (tcp("127.0.0.1", 8000), false, "/statefun"),
            ),
            ("http://localhost/", (tcp("localhost", 80), false, "/")),
            ("http://localhost", (tcp("localhost", 80), false, "/")),
            ("HTTP://h/x", (tcp("h", 80), false, "/x")),
            ("http://[::1]:9000/a/b", (tcp("::1", 9000), false, "/a/b")),
        ];
        if cfg!(unix) {
            cases.extend([
                (
                    "http+unix:///run/fn.sock/statefun",
                    (unix("/run/fn.sock"), false, "/statefun"),
                ),
                ("http+unix:///fn.sock", (unix("/fn.sock"), false, "/")),
                ("http+unix:///fn.sock/", (unix("/fn.sock"), false, "/")),
                (
                    "http+unix:///a.b/c.sock/d.sock/e",
                    (unix("/a.b/c.sock"), false, "/d.sock/e"),
                ),
            ]);
        }
        if cfg!(feature = "tls") {
            cases.push(("https://h/x", (tcp("h", 443), true, "/x")));
            cases.push(("https://h:8443", (tcp("h", 8443), true, "/")));
        }
        if cfg!(all(unix, feature = "tls")) {
            cases.push((
                "https+unix:///tmp/x/fn.sock/statefun",
                (unix("/tmp/x/fn.sock"), true, "/statefun"),
            ));
        }
        for (url, (to, tls, path)) in cases {
            let endpoint = Endpoint::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
            assert_eq!(
                (&endpoint.to, endpoint.tls, endpoint.path.as_str()),
                (&to, tls, path),
                "url {url:?}"
            );
        }
    }

    #[test]
    fn the_host_header_names_the_host_or_localhost_for_a_socket() {
        let cases = [
            ("http://h/x", "h:80"),
            ("http://[::1]:9000/", "[::1]:9000"),
            ("http+unix:///tmp/fn.sock/x", "localhost"),
        ];
        for (url, host) in cases {
            if url.contains("+unix") && !cfg!(unix) {
                continue;
            }
            let endpoint = Endpoint::parse(url).unwrap();
            assert_eq!(endpoint.host_header(), host, "url {url:?}");
        }
    }

    #[test]
    fn bad_endpoints_are_refused_with_a_reason() {
        let cases = [
            ("ftp://h", "scheme"),
            ("h:80/x", "no scheme"),
            ("http://", "no host"),
            ("http://:80/", "no host"),
            ("http://h:port/", "port"),
            ("http://h:70000/", "port"),
            ("http://[::1/", "`]`"),
            ("http://u@h/", "credentials"),
            ("http://h/a b", "whitespace"),
            ("http+unix://run/fn.sock/x", "absolute"),
            ("http+unix:///run/fn/x", "`.sock`"),
            ("http+unix:///", "`.sock`"),
            (
                "https://h/x",
                if cfg!(feature = "tls") {
                    ""
                } else {
                    "feature `tls`"
                },
            ),
        ];
        for (url, reason) in cases {
            if reason.is_empty() {
                continue;
            }
            let err = Endpoint::parse(url).expect_err(url);
            if url.contains("+unix") && !cfg!(unix) {
                assert!(err.contains("Unix"), "url {url:?}: {err}");
            } else {
                assert!(err.contains(reason), "url {url:?}: {err}");
            }
        }
    }

    fn read(bytes: &[u8]) -> Result<Response, String> {
        read_response(&mut Reader::new(bytes, MAX_HEAD_BYTES)).map_err(|e| match e {
            Unread::Io(e) => e.to_string(),
            Unread::Malformed(reason) => reason,
        })
    }

    #[test]
    fn bodies_are_framed_by_length_chunks_or_close() {
        let cases: [(&[u8], &[u8]); 4] = [
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcdef",
                b"abc",
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n1;x=y\r\nc\r\n0\r\n\r\n",
                b"abc",
            ),
            (b"HTTP/1.0 200 OK\r\n\r\nabc", b"abc"),
            (
                b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nz",
                b"z",
            ),
        ];
        for (input, expected) in cases {
            let response = read(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
            assert_eq!(response.status, 200, "{input:?}");
            assert_eq!(response.body, expected, "{input:?}");
        }
    }

    #[test]
    fn truncated_or_bad_responses_are_errors_not_panics() {
        for input in [
            &b""[..],
            b"HTTP/1.1 200 OK\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc",
            b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXY0\r\n\r\n",
            b"NOT HTTP\r\n\r\n",
        ] {
            assert!(read(input).is_err(), "{input:?}");
        }
    }

    #[test]
    fn the_content_type_is_read() {
        let response = read(
            b"HTTP/1.1 500 Internal\r\ncontent-type: text/plain\r\nContent-Length: 2\r\n\r\nno",
        )
        .unwrap();
        assert_eq!(response.status, 500);
        assert_eq!(response.content_type.as_deref(), Some("text/plain"));
    }
}
