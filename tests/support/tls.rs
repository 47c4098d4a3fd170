//! TLS for the tests (feature `tls`): certificates made at test time with rcgen, as PEM
//! files in a temporary directory ([`Pki`]), and a rustls client whose connections the
//! raw [`Client`] runs over ([`connect`], [`connect_unix`], [`TlsStream`]).
//!
//! [`Pki::new`] makes a CA, a server certificate for `localhost` and `127.0.0.1`, two
//! client certificates of that CA (`flink.example`, the runtime, and `intruder.example`,
//! another service the CA signs for), and a client certificate for `flink.example` from
//! a second CA the server does not trust.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
#[cfg(unix)]
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::client::Resumption;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{
    ClientConfig, ClientConnection, RootCertStore, StreamOwned, SupportedProtocolVersion,
};
use statefun_sync::http::TlsConfig;

use super::http::{Client, Transport};
use super::TempDir;

/// The name the clients expect the server's certificate to carry.
pub const SERVER_NAME: &str = "localhost";

/// A certificate and its key, as PEM files, and the certificate's DER (what a client
/// sees as the peer's certificate).
#[derive(Clone, Debug)]
pub struct Identity {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub der: CertificateDer<'static>,
}

/// The test certificates: see the module's documentation.
pub struct Pki {
    /// Where the PEM files are; removed with the `Pki`.
    pub dir: TempDir,
    /// The CA's certificate: what the server trusts for client certificates
    /// ([`TlsConfig::client_ca`]) and the clients trust for the server's.
    pub ca_cert: PathBuf,
    ca: Issuer<'static, KeyPair>,
    /// The server's certificate (`localhost`, `127.0.0.1`), of the CA.
    pub server: Identity,
    /// A client certificate for `flink.example`, of the CA.
    pub client: Identity,
    /// A client certificate for `intruder.example`, of the CA.
    pub intruder: Identity,
    /// The second CA's certificate, which the server does not trust.
    pub other_ca_cert: PathBuf,
    /// A client certificate for `flink.example`, of a second CA.
    pub stranger: Identity,
}

impl Pki {
    /// Makes the certificates and writes them into a new temporary directory.
    ///
    /// # Panics
    ///
    /// If rcgen fails or a file cannot be written.
    pub fn new() -> Pki {
        let dir = TempDir::new("statefun-tls");
        let ca = new_ca("statefun-sync test CA");
        let ca_cert = dir.join("ca.pem");
        std::fs::write(&ca_cert, ca.1.pem()).unwrap();
        let ca = ca.0;
        let server = issue(&ca, &dir, "server", &[SERVER_NAME, "127.0.0.1"], true);
        let client = issue(&ca, &dir, "client", &["flink.example"], false);
        let intruder = issue(&ca, &dir, "intruder", &["intruder.example"], false);
        let (other_ca, other_ca_cert) = new_ca("another CA");
        let other_ca_pem = dir.join("other-ca.pem");
        std::fs::write(&other_ca_pem, other_ca_cert.pem()).unwrap();
        let stranger = issue(&other_ca, &dir, "stranger", &["flink.example"], false);
        Pki {
            dir,
            ca_cert,
            ca,
            server,
            client,
            intruder,
            other_ca_cert: other_ca_pem,
            stranger,
        }
    }

    /// A new server certificate of the CA, with a new key and serial number, in the files
    /// `<name>.pem` and `<name>.key` (for a rotation).
    pub fn issue_server(&self, name: &str) -> Identity {
        issue(&self.ca, &self.dir, name, &[SERVER_NAME, "127.0.0.1"], true)
    }

    /// A new client certificate of the CA for `names`, in `<name>.pem` and `<name>.key`.
    pub fn issue_client(&self, name: &str, names: &[&str]) -> Identity {
        issue(&self.ca, &self.dir, name, names, false)
    }

    /// TLS with the server's certificate: no client certificate asked for.
    pub fn tls(&self) -> TlsConfig {
        TlsConfig::new(&self.server.cert, &self.server.key)
    }

    /// Mutual TLS: [`tls`](Self::tls), and client certificates of the CA required.
    pub fn mutual_tls(&self) -> TlsConfig {
        self.tls().client_ca(&self.ca_cert)
    }

    /// A client that trusts the CA, presents `identity`'s certificate (none: `None`), and
    /// speaks TLS 1.3 or 1.2. Every connection makes a full handshake: no resumption, so
    /// that each one sees the certificate the server has now.
    pub fn client(&self, identity: Option<&Identity>) -> Arc<ClientConfig> {
        Arc::new(self.client_config(identity, rustls::DEFAULT_VERSIONS))
    }

    /// [`client`](Self::client), with the TLS `versions` given and its config open to
    /// changes (its `resumption`, say).
    pub fn client_config(
        &self,
        identity: Option<&Identity>,
        versions: &[&'static SupportedProtocolVersion],
    ) -> ClientConfig {
        let mut roots = RootCertStore::empty();
        roots.add(self.server_ca_der()).unwrap();
        let builder =
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_protocol_versions(versions)
                .unwrap()
                .with_root_certificates(roots);
        let mut config = match identity {
            None => builder.with_no_client_auth(),
            Some(identity) => {
                let chain = vec![identity.der.clone()];
                let key = PrivateKeyDer::from_pem_file(&identity.key).unwrap();
                builder.with_client_auth_cert(chain, key).unwrap()
            }
        };
        config.resumption = Resumption::disabled();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        config
    }

    fn server_ca_der(&self) -> CertificateDer<'static> {
        CertificateDer::from_pem_file(&self.ca_cert).unwrap()
    }
}

/// A self-signed CA, and its certificate.
fn new_ca(name: &str) -> (Issuer<'static, KeyPair>, rcgen::Certificate) {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    (Issuer::new(params, key), cert)
}

/// A certificate of `ca` for `names`, for a server or a client, with a new key and a
/// random serial number, written to `<name>.pem` and `<name>.key` in `dir`.
fn issue(
    ca: &Issuer<'static, KeyPair>,
    dir: &TempDir,
    name: &str,
    names: &[&str],
    server: bool,
) -> Identity {
    let mut params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name.push(DnType::CommonName, names[0]);
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![if server {
        ExtendedKeyUsagePurpose::ServerAuth
    } else {
        ExtendedKeyUsagePurpose::ClientAuth
    }];
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, ca).unwrap();
    let identity = Identity {
        cert: dir.join(&format!("{name}.pem")),
        key: dir.join(&format!("{name}.key")),
        der: cert.der().clone(),
    };
    std::fs::write(&identity.cert, cert.pem()).unwrap();
    std::fs::write(&identity.key, key.serialize_pem()).unwrap();
    identity
}

/// Puts the files of `identity` at `cert` and `key` by renaming copies over them, each
/// file at once, as the kubelet and cert-manager renew a secret's files.
pub fn replace_files(identity: &Identity, cert: &Path, key: &Path) {
    replace_file(cert, &std::fs::read(&identity.cert).unwrap());
    replace_file(key, &std::fs::read(&identity.key).unwrap());
}

/// Replaces the file at `path` with one holding `bytes`, by a rename: a new inode.
pub fn replace_file(path: &Path, bytes: &[u8]) {
    let new = path.with_extension("new");
    std::fs::write(&new, bytes).unwrap();
    std::fs::rename(&new, path).unwrap();
}

/// A rustls client connection over a socket, as the raw [`Client`] runs over it.
pub type TlsStream<S> = StreamOwned<ClientConnection, S>;

impl<S: Transport> Transport for TlsStream<S> {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.sock.set_read_timeout(timeout)
    }
}

/// Connects to the TLS server at `addr` and completes the handshake (as far as the
/// client's side goes: in TLS 1.3 a server that refuses the client's certificate says so
/// after it, at the first read).
pub fn connect(
    addr: SocketAddr,
    config: &Arc<ClientConfig>,
) -> io::Result<Client<TlsStream<TcpStream>>> {
    handshake(Client::connect(addr)?.stream, config)
}

/// [`connect`] over the Unix socket at `path`.
#[cfg(unix)]
pub fn connect_unix(
    path: &Path,
    config: &Arc<ClientConfig>,
) -> io::Result<Client<TlsStream<UnixStream>>> {
    handshake(Client::connect_unix(path)?.stream, config)
}

/// Runs the client's side of the handshake for [`SERVER_NAME`] over `sock`.
pub fn handshake<S: Transport>(
    mut sock: S,
    config: &Arc<ClientConfig>,
) -> io::Result<Client<TlsStream<S>>> {
    let name = ServerName::try_from(SERVER_NAME).unwrap();
    let mut conn = ClientConnection::new(Arc::clone(config), name).map_err(io::Error::other)?;
    while conn.is_handshaking() {
        if conn.complete_io(&mut sock)? == (0, 0) {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the server closed the connection during the handshake",
            ));
        }
    }
    Ok(Client::over(StreamOwned::new(conn, sock)))
}

/// The certificate the server presented on `client`'s connection.
pub fn peer_cert<S>(client: &Client<TlsStream<S>>) -> CertificateDer<'static>
where
    S: Read + Write,
{
    client
        .stream
        .conn
        .peer_certificates()
        .expect("a handshake completed with a certificate")[0]
        .clone()
}

/// The bytes of a ClientHello, as a rustls client sends it first.
pub fn client_hello(config: &Arc<ClientConfig>) -> Vec<u8> {
    let name = ServerName::try_from(SERVER_NAME).unwrap();
    let mut conn = ClientConnection::new(Arc::clone(config), name).unwrap();
    let mut bytes = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut bytes).unwrap();
    }
    bytes
}

/// The TLS error under an I/O error of the client, if it is one.
pub fn tls_error(err: &io::Error) -> Option<&rustls::Error> {
    err.get_ref()?.downcast_ref::<rustls::Error>()
}
