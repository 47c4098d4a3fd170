//! A scripted remote endpoint: a loopback HTTP server that answers with responses written
//! beforehand and hands each request body back to the test, for what a remote function
//! may answer that no SDK does.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// An endpoint that answers its requests, one connection each, with `responses` in turn
/// (raw HTTP, e.g. from [`http_response`]), and sends back each request body it got.
/// Returns its URL (`http://<addr>/statefun`) and the receiver of the bodies. It gives up
/// after 10 seconds without a client, or when a client sends no whole request.
pub fn scripted_endpoint(responses: Vec<Vec<u8>>) -> (String, mpsc::Receiver<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    let (requests, received) = mpsc::channel();
    thread::spawn(move || {
        for response in responses {
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut stream = loop {
                match listener.accept() {
                    Ok((stream, _)) => break stream,
                    Err(_) if Instant::now() < deadline => thread::sleep(Duration::from_millis(5)),
                    Err(_) => return,
                }
            };
            stream.set_nonblocking(false).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let Some(body) = read_request(&mut stream) else {
                return;
            };
            let _ = requests.send(body);
            let _ = stream.write_all(&response);
        }
    });
    (format!("http://{addr}/statefun"), received)
}

/// An HTTP/1.1 response that closes its connection: `status` (e.g. `200 OK`), the
/// content type, and `body`.
pub fn http_response(status: &str, content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    response.extend_from_slice(body);
    response
}

/// The body of the request on `stream` (as long as its `Content-Length` says); `None`
/// when the stream ends or fails first.
fn read_request(stream: &mut impl Read) -> Option<Vec<u8>> {
    let mut request = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk).unwrap_or(0);
        if n == 0 {
            return None;
        }
        request.extend_from_slice(&chunk[..n]);
        let Some(end) = request.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&request[..end]).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        if request.len() >= end + 4 + length {
            return Some(request[end + 4..end + 4 + length].to_vec());
        }
    }
}
