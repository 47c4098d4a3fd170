//! The crate's TLS server and Unix socket with clients this crate did not write: `curl`
//! (OpenSSL's TLS: `--cacert`, `--cert`/`--key`, `--unix-socket`) and Python's `ssl` and
//! `http.client`. Each test skips, saying so, where its tool is missing.

#![cfg(all(feature = "server", feature = "tls"))]

mod support;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use statefun_sync::http::{Server, ServerBuilder};
use support::http::{echo_request, handler};
use support::tls::{Identity, Pki};

/// Whether `program args…` runs and succeeds; if not, says the test skips.
fn tool(program: &str, args: &[&str], what: &str) -> bool {
    let found = Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !found {
        eprintln!(
            "skipping: {what} not found (`{program} {}` failed)",
            args.join(" ")
        );
    }
    found
}

fn has_curl() -> bool {
    tool("curl", &["--version"], "curl")
}

/// The Python interpreter `python3` runs, with its `ssl` module: its own path, past any
/// wrapper script on PATH (pyenv's takes longer to start than the test runs).
fn python_with_ssl() -> Option<String> {
    let found = Command::new("python3")
        .args(["-c", "import ssl, http.client, sys; print(sys.executable)"])
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| text(&out.stdout).trim().to_owned())
        .filter(|exe| !exe.is_empty());
    if found.is_none() {
        eprintln!("skipping: python3 with its ssl module not found");
    }
    found
}

fn start(builder: ServerBuilder) -> Server {
    builder.bind("127.0.0.1:0").start(handler()).unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs `curl` with `args` (silent but for errors, 20 s at most), POSTing the request
/// body in the file `body` as the runtime does, once per URL in `args`. Its stdout is one
/// `<status> <connections opened>` line per URL.
fn curl(body: &Path, args: &[&str]) -> Output {
    let data = format!("@{}", body.display());
    Command::new("curl")
        .args(["-sS", "--max-time", "20"])
        .args(["-H", "Content-Type: application/octet-stream"])
        .args(["--data-binary", &data])
        .args(["-w", "%{http_code} %{num_connects}\\n"])
        .args(args)
        .output()
        .unwrap()
}

/// The request the interop tests send, in a file of `pki`'s directory, and the reply the
/// handler gives it.
fn request_file(pki: &Pki) -> (std::path::PathBuf, Vec<u8>) {
    let request = echo_request("interop", 7);
    let path = pki.dir.join("request.bin");
    std::fs::write(&path, &request).unwrap();
    (path, handler().handle(&request).unwrap())
}

fn path_str(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// `--cert`/`--key` for `identity`.
fn cert_args(identity: &Identity) -> Vec<&str> {
    vec![
        "--cert",
        path_str(&identity.cert),
        "--key",
        path_str(&identity.key),
    ]
}

#[test]
fn curl_with_a_client_certificate_is_served_over_mutual_tls_1_3_and_1_2_kept_alive() {
    if !has_curl() {
        return;
    }
    let pki = Pki::new();
    let server = start(Server::builder().tls(pki.mutual_tls()));
    let (body, expected) = request_file(&pki);
    let port = server.local_addr().unwrap().port();
    // `localhost`, the name in the server's certificate, resolved to the server.
    let resolve = format!("localhost:{port}:127.0.0.1");
    let url = format!("https://localhost:{port}/statefun");
    let first = pki.dir.join("first.bin");
    let second = pki.dir.join("second.bin");

    for versions in [&["--tlsv1.3"][..], &["--tlsv1.2", "--tls-max", "1.2"][..]] {
        let mut args = vec!["--resolve", &resolve, "--cacert", path_str(&pki.ca_cert)];
        args.extend(cert_args(&pki.client));
        args.extend(versions);
        // Two requests: the second on the first's connection.
        args.extend(["-o", path_str(&first), &url, "-o", path_str(&second), &url]);

        let out = curl(&body, &args);

        assert!(out.status.success(), "{versions:?}: {}", text(&out.stderr));
        assert_eq!(text(&out.stdout), "200 1\n200 0\n", "{versions:?}");
        assert_eq!(std::fs::read(&first).unwrap(), expected, "{versions:?}");
        assert_eq!(std::fs::read(&second).unwrap(), expected, "{versions:?}");
    }
}

#[test]
fn curl_without_a_client_certificate_or_with_another_cas_is_refused() {
    if !has_curl() {
        return;
    }
    let pki = Pki::new();
    let server = start(Server::builder().tls(pki.mutual_tls()));
    let (body, _) = request_file(&pki);
    let url = format!(
        "https://127.0.0.1:{}/statefun",
        server.local_addr().unwrap().port()
    );
    let ca = ["--cacert", path_str(&pki.ca_cert)];

    for (what, identity) in [
        ("no certificate", None),
        ("another CA's", Some(&pki.stranger)),
    ] {
        for versions in [&["--tlsv1.3"][..], &["--tlsv1.2", "--tls-max", "1.2"][..]] {
            let mut args = ca.to_vec();
            if let Some(identity) = identity {
                args.extend(cert_args(identity));
            }
            args.extend(versions);
            args.extend(["-o", "/dev/null", &url]);

            let out = curl(&body, &args);

            // 35: the handshake failed; 56: the connection failed after it (TLS 1.3, where
            // the server refuses after the client's side is done); 98: the server asked
            // for a certificate. Not 60: curl trusted the server.
            assert!(
                matches!(out.status.code(), Some(35 | 56 | 98)),
                "{what} {versions:?}: {} {}",
                out.status,
                text(&out.stderr)
            );
            // No HTTP status came back: the refusal is the handshake's.
            assert_eq!(text(&out.stdout), "000 1\n", "{what} {versions:?}");
            eprintln!(
                "{what} {versions:?}: curl says {}",
                text(&out.stderr).trim()
            );
        }
    }
}

#[cfg(unix)]
#[test]
fn curl_over_a_unix_socket_in_the_clear_and_in_tls() {
    if !has_curl() {
        return;
    }
    let version = Command::new("curl").arg("--version").output().unwrap();
    if !text(&version.stdout).contains("UnixSockets") {
        eprintln!("skipping: this curl has no --unix-socket");
        return;
    }
    let pki = Pki::new();
    let (body, expected) = request_file(&pki);
    let reply = pki.dir.join("reply.bin");

    let plain_socket = pki.dir.join("plain.sock");
    let _plain = Server::builder()
        .bind_unix(&plain_socket)
        .start(handler())
        .unwrap();
    let out = curl(
        &body,
        &[
            "--unix-socket",
            path_str(&plain_socket),
            "-o",
            path_str(&reply),
            "http://localhost/statefun",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "200 1\n");
    assert_eq!(std::fs::read(&reply).unwrap(), expected);

    let tls_socket = pki.dir.join("tls.sock");
    let _tls = Server::builder()
        .bind_unix(&tls_socket)
        .tls(pki.mutual_tls())
        .start(handler())
        .unwrap();
    let mut args = vec![
        "--unix-socket",
        path_str(&tls_socket),
        "--cacert",
        path_str(&pki.ca_cert),
    ];
    args.extend(cert_args(&pki.client));
    args.extend(["-o", path_str(&reply), "https://localhost/statefun"]);
    std::fs::remove_file(&reply).unwrap();
    let out = curl(&body, &args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "200 1\n");
    assert_eq!(std::fs::read(&reply).unwrap(), expected);
}

/// Python's `ssl` and `http.client`: POSTs stdin's bytes to `https://localhost:<port>`
/// twice on one connection, trusting the CA and, unless `-`, with a client certificate,
/// at most TLS `max` (`1.2`, or `-`). Prints `<status> <TLS version> <body hex>` per
/// request; a refused connection prints `refused: …` and exits 3.
const PYTHON_CLIENT: &str = r#"
import http.client, ssl, sys
ca, cert, key, port, max_version = sys.argv[1:6]
body = sys.stdin.buffer.read()
ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca)
if cert != "-":
    ctx.load_cert_chain(cert, key)
if max_version == "1.2":
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
conn = http.client.HTTPSConnection("localhost", int(port), context=ctx, timeout=20)
try:
    for _ in range(2):
        conn.request("POST", "/statefun", body=body,
                     headers={"Content-Type": "application/octet-stream"})
        response = conn.getresponse()
        data = response.read()
        print(response.status, conn.sock.version(), data.hex())
except OSError as err:
    print("refused:", type(err).__name__, err)
    sys.exit(3)
"#;

fn python(
    exe: &str,
    pki: &Pki,
    port: u16,
    identity: Option<&Identity>,
    max: &str,
    body: &[u8],
) -> Output {
    use std::io::Write as _;
    let (cert, key) = identity.map_or(("-", "-"), |i| (path_str(&i.cert), path_str(&i.key)));
    let mut child = Command::new(exe)
        .args(["-c", PYTHON_CLIENT, path_str(&pki.ca_cert), cert, key])
        .arg(port.to_string())
        .arg(max)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(body).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn python_ssl_with_a_client_certificate_is_served_and_without_one_refused() {
    let Some(exe) = python_with_ssl() else {
        return;
    };
    let pki = Pki::new();
    let server = start(Server::builder().tls(pki.mutual_tls()));
    let port = server.local_addr().unwrap().port();
    let request = echo_request("python", 3);
    let hex: String = handler()
        .handle(&request)
        .unwrap()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();

    for (max, version) in [("-", "TLSv1.3"), ("1.2", "TLSv1.2")] {
        let out = python(&exe, &pki, port, Some(&pki.client), max, &request);

        assert!(out.status.success(), "{version}: {}", text(&out.stderr));
        let line = format!("200 {version} {hex}\n");
        assert_eq!(text(&out.stdout), line.repeat(2), "{version}");
    }

    for (what, identity) in [
        ("no certificate", None),
        ("another CA's", Some(&pki.stranger)),
    ] {
        for max in ["-", "1.2"] {
            let out = python(&exe, &pki, port, identity, max, &request);

            assert_eq!(
                out.status.code(),
                Some(3),
                "{what}, TLS max {max}: {}{}",
                text(&out.stdout),
                text(&out.stderr)
            );
            eprintln!("{what}, TLS max {max}: {}", text(&out.stdout).trim());
        }
    }
}
