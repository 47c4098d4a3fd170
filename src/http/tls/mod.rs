//! TLS and mutual TLS with rustls (feature `tls`): what the crate's server
//! ([`ServerBuilder::tls`](crate::http::ServerBuilder::tls)) and the testing kit's client
//! speak, blocking, over a socket of std's.
//!
//! Here: [`TlsConfig`], what a server is given; the PEM files read into rustls' types;
//! the encrypted stream both sides use is in `stream`, the server's reloading acceptor in
//! `acceptor`.

// With `tls` but neither the server nor the testing kit, nothing speaks TLS: `TlsConfig`
// remains, and the PEM readers below go unused.
#![cfg_attr(not(any(feature = "server", feature = "testing")), allow(dead_code))]

#[cfg(feature = "server")]
pub(crate) mod acceptor;
#[cfg(any(feature = "server", feature = "testing"))]
pub(crate) mod stream;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::RootCertStore;

/// How the crate's server speaks TLS: its certificate chain and key, and, for mutual TLS,
/// the CA bundle whose client certificates it accepts. Give it to
/// [`ServerBuilder::tls`]. The guide's [security](crate::guide::security) chapter has the
/// three ways to listen side by side, and the runtime's side of mutual TLS.
///
/// ```no_run
/// use statefun_sync::http::{Server, TlsConfig};
/// use statefun_sync::{RequestReplyHandler, StatefulFunctions};
///
/// let tls = TlsConfig::new("/etc/statefun/tls/tls.crt", "/etc/statefun/tls/tls.key")
///     // Mutual TLS: only clients with a certificate from this CA get through.
///     .client_ca("/etc/statefun/tls/ca.crt");
/// let server = Server::builder()
///     .bind("0.0.0.0:8443")
///     .tls(tls)
///     .start(RequestReplyHandler::v2(StatefulFunctions::new()))?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// It serves TLS 1.3 and 1.2 (rustls' safe defaults: no older version, no weak cipher
/// suite), with session resumption by tickets and by a session cache.
///
/// # Certificate rotation
///
/// The server watches the files: when a new connection arrives and the last look is at
/// least [`reload_check`](Self::reload_check) old (1 s by default), it compares their
/// modification times, sizes and inodes with those it loaded, and reloads them when one
/// changed. New connections get the new certificate; connections already open go on
/// with theirs. The files are looked at and loaded by that one connection's thread,
/// outside the lock new connections take: the others meanwhile get the current
/// certificate at once, however slow the file system. It watches rather than waiting for a signal because cert-manager and the
/// kubelet renew a secret's files in place and tell no process: nothing would send the
/// signal. A set of files that does not load (a certificate renewed before its key, a
/// half-written file) is logged at `warn` and the previous certificate kept, until the
/// files change again.
#[doc = feature_links!()]
#[derive(Clone)]
pub struct TlsConfig {
    pub(crate) cert_chain: PathBuf,
    pub(crate) key: PathBuf,
    pub(crate) client_ca: Option<PathBuf>,
    pub(crate) client_names: Vec<String>,
    pub(crate) reload_check: Duration,
}

impl TlsConfig {
    /// TLS with the certificate chain in the PEM file `cert_chain` (the server's
    /// certificate first, then the intermediates, as cert-manager writes `tls.crt`) and
    /// its private key in the PEM file `key` (PKCS#8, PKCS#1 or SEC1). The files are read
    /// when the server starts, and again when they change.
    pub fn new(cert_chain: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        TlsConfig {
            cert_chain: cert_chain.into(),
            key: key.into(),
            client_ca: None,
            client_names: Vec::new(),
            reload_check: Duration::from_secs(1),
        }
    }

    /// Mutual TLS: requires every client to present a certificate that chains to one of
    /// the CA certificates in the PEM file `ca_bundle`, and refuses the others at the
    /// handshake (no certificate, another CA's, expired), before the server reads a byte
    /// of their requests. Point the runtime's `trust_cacerts`, `client_cert` and
    /// `client_key` at the matching files (see the guide's
    /// [Three ways to listen](crate::guide::security#three-ways-to-listen-tcp-tls-and-mutual-tls-a-unix-socket)).
    pub fn client_ca(mut self, ca_bundle: impl Into<PathBuf>) -> Self {
        self.client_ca = Some(ca_bundle.into());
        self
    }

    /// With [`client_ca`](Self::client_ca): accepts only client certificates valid for
    /// one of `names` (DNS names or IP addresses, matched against the certificate's
    /// subject alternative names; a wildcard in a certificate, `*.example.com`, matches as
    /// it would for a server name), so that a CA which signs other services' certificates
    /// too lets only the Flink cluster's through. Empty (the default): any certificate of
    /// the CA. A name that is neither a DNS name nor an IP address (a wildcard among
    /// `names` included) is an error of [`start`][`ServerBuilder::start`].
    #[doc = feature_links!()]
    pub fn client_names<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.client_names = names.into_iter().map(Into::into).collect();
        self
    }

    /// How often, at most, a new connection makes the server look whether the files
    /// changed (default 1 s; zero: at every connection).
    pub fn reload_check(mut self, every: Duration) -> Self {
        self.reload_check = every;
        self
    }
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig")
            .field("cert_chain", &self.cert_chain)
            .field("key", &self.key)
            .field("client_ca", &self.client_ca)
            .field("client_names", &self.client_names)
            .field("reload_check", &self.reload_check)
            .finish()
    }
}

/// An `InvalidData` error naming `file`.
fn invalid(file: &Path, what: impl fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{}: {what}", file.display()),
    )
}

/// Reads the certificates in the PEM file `file`: at least one.
pub(crate) fn read_certs(file: &Path) -> io::Result<Vec<CertificateDer<'static>>> {
    let pem = read(file)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| invalid(file, format_args!("not a PEM certificate file: {err}")))?;
    if certs.is_empty() {
        return Err(invalid(file, "no CERTIFICATE in this PEM file"));
    }
    Ok(certs)
}

/// Reads the first private key in the PEM file `file`.
pub(crate) fn read_key(file: &Path) -> io::Result<PrivateKeyDer<'static>> {
    let pem = read(file)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|err| {
        invalid(
            file,
            format_args!("no private key (PKCS#8, PKCS#1 or SEC1 PEM): {err}"),
        )
    })
}

/// Reads the CA certificates in the PEM file `file` into a root store.
pub(crate) fn read_roots(file: &Path) -> io::Result<Arc<RootCertStore>> {
    let mut roots = RootCertStore::empty();
    for cert in read_certs(file)? {
        roots
            .add(cert)
            .map_err(|err| invalid(file, format_args!("not a usable CA certificate: {err}")))?;
    }
    Ok(Arc::new(roots))
}

/// The file's bytes, its name in the error.
fn read(file: &Path) -> io::Result<Vec<u8>> {
    std::fs::read(file)
        .map_err(|err| io::Error::new(err.kind(), format!("{}: {err}", file.display())))
}

/// rustls' crypto, ring's: the one provider the crate builds with.
pub(crate) fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A rustls error as an I/O error (for a handshake that failed, a config that did not
/// build).
pub(crate) fn io_error(err: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, err)
}
