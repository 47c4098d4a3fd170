//! The cost of TLS on the crate's server, over loopback: one w1_greet request on a new
//! connection in the clear, with a full TLS handshake, and with a resumed one (TLS 1.3
//! tickets; TLS 1.2 session ids), and on an open keep-alive connection.
//!
//! ```text
//! cargo bench --bench tls
//! ```
//!
//! Client and server share the machine's cores, so each figure is the whole round trip:
//! the client's crypto, the server's, the kernel's loopback and the handler. Compare the
//! rows with each other, measured in the same run.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use statefun_sync::http::{Server, TlsConfig};

#[path = "workloads/functions.rs"]
mod workloads;

/// A CA and a server certificate for 127.0.0.1, written as PEM files into `dir`; the
/// CA's certificate is returned for the client to trust.
fn certificates(dir: &Path) -> CertificateDer<'static> {
    let ca_key = KeyPair::generate().expect("a CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).expect("the CA certificate");
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().expect("a server key");
    let cert = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .expect("server params")
        .signed_by(&key, &issuer)
        .expect("the server certificate");
    std::fs::write(dir.join("tls.crt"), cert.pem()).expect("write tls.crt");
    std::fs::write(dir.join("tls.key"), key.serialize_pem()).expect("write tls.key");
    ca_cert.der().clone()
}

static TLS13: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];
static TLS12: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS12];

fn client_config(
    ca: &CertificateDer<'static>,
    versions: &'static [&'static rustls::SupportedProtocolVersion],
    resume: bool,
) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(ca.clone()).expect("the CA as a root");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    if !resume {
        config.resumption = rustls::client::Resumption::disabled();
    }
    Arc::new(config)
}

/// POSTs `body` on `stream` and reads the whole response (its length from the head).
fn exchange(stream: &mut impl ReadWrite, request: &[u8], reply: &mut Vec<u8>) {
    stream.write_all(request).expect("send the request");
    reply.clear();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).expect("read the response");
        assert!(n > 0, "the server closed the connection");
        reply.extend_from_slice(&buf[..n]);
        if let Some(end) = reply.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = std::str::from_utf8(&reply[..end]).expect("an ASCII head");
            let length: usize = head
                .lines()
                .find_map(|line| {
                    line.strip_prefix("content-length: ")
                        .or_else(|| line.strip_prefix("Content-Length: "))
                })
                .expect("a Content-Length")
                .parse()
                .expect("a length");
            if reply.len() >= end + 4 + length {
                assert!(head.starts_with("HTTP/1.1 200"), "{head}");
                return;
            }
        }
    }
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

fn tls_connect(
    addr: SocketAddr,
    config: &Arc<ClientConfig>,
) -> StreamOwned<ClientConnection, TcpStream> {
    let name = ServerName::try_from("127.0.0.1").expect("a server name");
    let conn = ClientConnection::new(Arc::clone(config), name).expect("a client connection");
    let socket = TcpStream::connect(addr).expect("connect");
    socket.set_nodelay(true).expect("nodelay");
    StreamOwned::new(conn, socket)
}

fn bench(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("statefun-tls-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temp dir");
    let ca = certificates(&dir);
    let body = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/bench/requests/w1_greet.bin"
    ))
    .expect("../shared/bench/requests/w1_greet.bin");
    let mut request = format!(
        "POST /statefun HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(&body);

    let handler = Arc::new(workloads::handler());
    let plain = Server::builder()
        .bind("127.0.0.1:0")
        .start(Arc::clone(&handler))
        .expect("the plain server");
    let tls = Server::builder()
        .bind("127.0.0.1:0")
        .tls(TlsConfig::new(dir.join("tls.crt"), dir.join("tls.key")))
        .start(handler)
        .expect("the TLS server");
    let mut reply = Vec::new();

    let mut group = c.benchmark_group("tls");
    group.bench_function("new_connection_plain", |b| {
        b.iter(|| {
            let mut stream = TcpStream::connect(plain.local_addr().unwrap()).expect("connect");
            stream.set_nodelay(true).expect("nodelay");
            exchange(&mut stream, &request, &mut reply);
        })
    });
    for (label, versions) in [("tls13", TLS13), ("tls12", TLS12)] {
        let full = client_config(&ca, versions, false);
        group.bench_function(format!("new_connection_{label}_full_handshake"), |b| {
            b.iter(|| {
                let mut stream = tls_connect(tls.local_addr().unwrap(), &full);
                exchange(&mut stream, &request, &mut reply);
            })
        });
        let resumed = client_config(&ca, versions, true);
        // A first connection leaves a ticket (or session id) in the client's cache.
        exchange(
            &mut tls_connect(tls.local_addr().unwrap(), &resumed),
            &request,
            &mut reply,
        );
        group.bench_function(format!("new_connection_{label}_resumed"), |b| {
            b.iter(|| {
                let mut stream = tls_connect(tls.local_addr().unwrap(), &resumed);
                exchange(&mut stream, &request, &mut reply);
                assert_eq!(
                    stream.conn.handshake_kind(),
                    Some(rustls::HandshakeKind::Resumed),
                    "the handshake did not resume"
                );
            })
        });
    }
    let mut open_plain = TcpStream::connect(plain.local_addr().unwrap()).expect("connect");
    open_plain.set_nodelay(true).expect("nodelay");
    group.bench_function("keep_alive_plain", |b| {
        b.iter(|| exchange(&mut open_plain, &request, &mut reply))
    });
    let mut open_tls = tls_connect(
        tls.local_addr().unwrap(),
        &client_config(&ca, rustls::DEFAULT_VERSIONS, false),
    );
    group.bench_function("keep_alive_tls13", |b| {
        b.iter(|| exchange(&mut open_tls, &request, &mut reply))
    });
    group.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, bench);
criterion_main!(benches);
