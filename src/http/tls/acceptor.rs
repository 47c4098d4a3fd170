//! The server's side of TLS: the rustls configuration built from a [`TlsConfig`],
//! rebuilt when its files change (certificate rotation), and the check of client
//! certificates' names.

use std::fs;
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Instant, SystemTime};

use log::{info, warn};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ServerSessionMemoryCache, StoresServerSessions, WebPkiClientVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, ServerConfig, SignatureScheme};

use super::{io_error, provider, read_certs, read_key, read_roots, TlsConfig};

/// How many TLS sessions the server remembers for resumption by session id (TLS 1.2
/// clients without tickets); tickets need no memory.
const SESSION_CACHE_SIZE: usize = 1024;

/// The rustls configuration new connections get, reloaded when the files change.
pub(crate) struct Acceptor {
    config: TlsConfig,
    /// Kept across reloads, so sessions resume over a rotation.
    sessions: Arc<dyn StoresServerSessions>,
    ticketer: Arc<dyn rustls::server::ProducesTickets>,
    /// Taken by every new connection: held only to read or swap, never while the files
    /// are looked at or loaded, which may take any time (a slow or hung file system).
    current: Mutex<Current>,
}

struct Current {
    server_config: Arc<ServerConfig>,
    /// The files as they were when `server_config` was loaded from them.
    loaded: Vec<Stamp>,
    /// The files as they were when they last failed to load: not tried again as they are.
    failed: Option<Vec<Stamp>>,
    checked: Instant,
    /// A connection is looking at the files (and loading them): the others leave them be.
    reloading: bool,
}

/// What tells that a file changed: its modification time, size and inode. Kubernetes
/// renews a mounted secret by switching a symlink to new files, which changes all three.
#[derive(Clone, PartialEq, Eq, Debug)]
struct Stamp(Option<(SystemTime, u64, u64)>);

impl Stamp {
    fn of(path: &Path) -> Stamp {
        Stamp(fs::metadata(path).ok().map(|meta| {
            let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
            (modified, meta.len(), inode(&meta))
        }))
    }
}

#[cfg(unix)]
fn inode(meta: &fs::Metadata) -> u64 {
    std::os::unix::fs::MetadataExt::ino(meta)
}

#[cfg(not(unix))]
fn inode(_: &fs::Metadata) -> u64 {
    0
}

impl Acceptor {
    /// Loads the files of `config`.
    ///
    /// # Errors
    ///
    /// A file that cannot be read or holds no certificate or key (the error names it), a
    /// key that does not match the certificate, a client name that is not a name.
    pub(crate) fn new(config: TlsConfig) -> io::Result<Acceptor> {
        let sessions: Arc<dyn StoresServerSessions> =
            ServerSessionMemoryCache::new(SESSION_CACHE_SIZE);
        let ticketer = rustls::crypto::ring::Ticketer::new().map_err(io_error)?;
        let loaded = stamps(&config);
        let server_config = build(&config, &sessions, &ticketer)?;
        Ok(Acceptor {
            config,
            sessions,
            ticketer,
            current: Mutex::new(Current {
                server_config,
                loaded,
                failed: None,
                checked: Instant::now(),
                reloading: false,
            }),
        })
    }

    /// The configuration for a new connection: the current one, reloaded first if the
    /// files changed since (looked at no more often than `reload_check`, by one
    /// connection at a time; the others meanwhile get the current one at once).
    pub(crate) fn server_config(&self) -> Arc<ServerConfig> {
        let (loaded, failed) = {
            let mut current = self.current();
            if current.reloading || current.checked.elapsed() < self.config.reload_check {
                return Arc::clone(&current.server_config);
            }
            current.checked = Instant::now();
            current.reloading = true;
            (current.loaded.clone(), current.failed.clone())
        };
        // Outside the lock: new connections must not wait for the file system.
        let reload = Reload(self);
        let now = stamps(&self.config);
        if now == loaded || failed.as_ref() == Some(&now) {
            drop(reload);
            return Arc::clone(&self.current().server_config);
        }
        let built = build(&self.config, &self.sessions, &self.ticketer);
        let server_config = {
            let mut current = self.current();
            match built {
                Ok(server_config) => {
                    info!(
                        "TLS: reloaded the certificate {} and its key",
                        self.config.cert_chain.display()
                    );
                    current.server_config = server_config;
                    current.loaded = now;
                    current.failed = None;
                }
                Err(err) => {
                    warn!("TLS: the changed files do not load, keeping the previous certificate: {err}");
                    current.failed = Some(now);
                }
            }
            Arc::clone(&current.server_config)
        };
        drop(reload);
        server_config
    }

    fn current(&self) -> MutexGuard<'_, Current> {
        self.current.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A new connection's rustls state.
    pub(crate) fn connection(&self) -> io::Result<rustls::ServerConnection> {
        rustls::ServerConnection::new(self.server_config()).map_err(io_error)
    }
}

/// A reload under way: it ends however the loading ends, a panic included, so that the
/// files are looked at again later.
struct Reload<'a>(&'a Acceptor);

impl Drop for Reload<'_> {
    fn drop(&mut self) {
        self.0.current().reloading = false;
    }
}

fn stamps(config: &TlsConfig) -> Vec<Stamp> {
    let mut files = vec![config.cert_chain.as_path(), config.key.as_path()];
    files.extend(config.client_ca.as_deref());
    files.into_iter().map(Stamp::of).collect()
}

/// The rustls configuration of `config`'s files.
fn build(
    config: &TlsConfig,
    sessions: &Arc<dyn StoresServerSessions>,
    ticketer: &Arc<dyn rustls::server::ProducesTickets>,
) -> io::Result<Arc<ServerConfig>> {
    let certs = read_certs(&config.cert_chain)?;
    let key = read_key(&config.key)?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(io_error)?;
    let builder = match &config.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let roots = read_roots(ca)?;
            let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider())
                .build()
                .map_err(|err| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("{}: {err}", ca.display()),
                    )
                })?;
            if config.client_names.is_empty() {
                builder.with_client_cert_verifier(verifier)
            } else {
                builder.with_client_cert_verifier(Arc::new(NamedClients::new(
                    verifier,
                    &config.client_names,
                )?))
            }
        }
    };
    let mut server_config = builder.with_single_cert(certs, key).map_err(|err| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{} with {}: {err}",
                config.cert_chain.display(),
                config.key.display()
            ),
        )
    })?;
    server_config.session_storage = Arc::clone(sessions);
    server_config.ticketer = Arc::clone(ticketer);
    server_config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(server_config))
}

/// A client verifier that accepts, of the certificates its CA verifier accepts, only
/// those valid for one of the names ([`TlsConfig::client_names`]).
#[derive(Debug)]
struct NamedClients {
    inner: Arc<dyn ClientCertVerifier>,
    names: Vec<ServerName<'static>>,
}

impl NamedClients {
    fn new(inner: Arc<dyn ClientCertVerifier>, names: &[String]) -> io::Result<Self> {
        let names = names
            .iter()
            .map(|name| {
                ServerName::try_from(name.clone()).map_err(|err| {
                    io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("TLS client name {name:?}: {err}"),
                    )
                })
            })
            .collect::<io::Result<_>>()?;
        Ok(NamedClients { inner, names })
    }
}

impl ClientCertVerifier for NamedClients {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        let cert = webpki::EndEntityCert::try_from(end_entity)
            .map_err(|err| rustls::Error::General(format!("client certificate: {err}")))?;
        if self
            .names
            .iter()
            .any(|name| cert.verify_is_valid_for_subject_name(name).is_ok())
        {
            Ok(verified)
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
