//! The main example (`cargo run --example server`) stops gracefully on SIGTERM: while
//! clients keep sending batches over keep-alive connections, every request gets either a
//! whole 200 or its connection closed (or refused) before any byte of a reply, never a
//! cut reply, and the process exits 0 within the shutdown timeout (10 s).
#![cfg(all(unix, feature = "server"))]

mod support;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use statefun_sync::testing::v2::Request;
use statefun_sync::RequestReplyHandler;
use support::examples::{app, Count, User};
use support::http::{post, Client, Outcome};

/// The example's binary, beside this test's. `cargo test` has built it, but
/// `cargo test --test http_graceful_stop` does not, and it could be stale: cargo builds
/// it (at once when it is up to date; cargo has released its lock while tests run).
fn example_server() -> PathBuf {
    let status = Command::new(env!("CARGO"))
        .args(["build", "--quiet", "--example", "server"])
        .status()
        .unwrap();
    assert!(status.success(), "cargo build --example server: {status}");
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/<this test> -> target/<profile>/examples/server
    let profile_dir = exe.parent().unwrap().parent().unwrap();
    profile_dir.join("examples").join("server")
}

/// Kills the server when a test fails before it has exited.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What one client thread saw.
#[derive(Default, Debug)]
struct Tally {
    whole: usize,
    closed_before_reply: usize,
    /// Cut replies, other statuses, other bodies, refusals before the signal: failures.
    wrong: Vec<String>,
}

/// Sends `request` again and again, on a keep-alive connection while the server keeps
/// it, on a new one when it closes, until a connection is refused after the signal.
fn client(
    addr: std::net::SocketAddr,
    request: &[u8],
    expected: &[u8],
    signalled: &AtomicBool,
) -> Tally {
    let wire = post("/statefun", request);
    let mut tally = Tally::default();
    let mut conn: Option<Client> = None;
    loop {
        let client = match &mut conn {
            Some(client) => client,
            None => match Client::connect(addr) {
                Ok(client) => conn.insert(client),
                Err(err) => {
                    if !signalled.load(Ordering::SeqCst) {
                        tally
                            .wrong
                            .push(format!("refused before the signal: {err}"));
                    }
                    return tally;
                }
            },
        };
        if client.send(&wire).is_err() {
            tally.closed_before_reply += 1;
            conn = None;
            continue;
        }
        match client.read_outcome() {
            Outcome::Reply {
                status: 200,
                body,
                closes,
            } if body == expected => {
                tally.whole += 1;
                if closes {
                    conn = None;
                }
            }
            Outcome::Reply { status, body, .. } => {
                let body = String::from_utf8_lossy(&body).into_owned();
                tally.wrong.push(format!("a {status} reply: {body}"));
                conn = None;
            }
            Outcome::Closed => {
                tally.closed_before_reply += 1;
                conn = None;
            }
            Outcome::Partial(bytes) => {
                tally
                    .wrong
                    .push(format!("a cut reply, {} bytes", bytes.len()));
                conn = None;
            }
        }
    }
}

#[test]
fn sigterm_under_load_answers_each_request_whole_or_not_at_all_and_exits_0() {
    let mut server = Running(
        Command::new(example_server())
            .args(["--addr", "127.0.0.1:0"])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    // The example logs where it listens; the rest of its log is drained (and kept).
    let (lines, log) = mpsc::channel();
    let stderr = BufReader::new(server.0.stderr.take().unwrap());
    thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    let addr = loop {
        let line = log
            .recv_timeout(Duration::from_secs(60))
            .expect("the example logs where it listens");
        if let Some(at) = line.find("at http://") {
            let rest = &line[at + "at http://".len()..];
            break rest[..rest.find('/').unwrap()].parse().unwrap();
        }
    };

    let joe = User {
        user_id: "joe".into(),
        name: "Joe".into(),
    };
    let request = Request::to("example/count", "joe")
        .with_state_value("count", &Count { value: 2 })
        .invoke(&joe)
        .to_bytes();
    let expected = RequestReplyHandler::v2(app::functions())
        .handle(&request)
        .unwrap();
    let signalled = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (request, expected) = (request.clone(), expected.clone());
            let signalled = Arc::clone(&signalled);
            thread::spawn(move || client(addr, &request, &expected, &signalled))
        })
        .collect();

    thread::sleep(Duration::from_millis(500)); // under load
    signalled.store(true, Ordering::SeqCst);
    let status = Command::new("kill")
        .args(["-TERM", &server.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let sent = Instant::now();
    let exit = loop {
        if let Some(exit) = server.0.try_wait().unwrap() {
            break exit;
        }
        assert!(
            sent.elapsed() < Duration::from_secs(12),
            "the server did not exit within the 10 s shutdown timeout"
        );
        thread::sleep(Duration::from_millis(10));
    };
    let log: Vec<String> = log.try_iter().collect();
    assert!(exit.success(), "exit: {exit}; log:\n{}", log.join("\n"));

    let tallies: Vec<Tally> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    eprintln!("exited {:?} after SIGTERM; {tallies:?}", sent.elapsed());
    let whole: usize = tallies.iter().map(|t| t.whole).sum();
    let wrong: Vec<&String> = tallies.iter().flat_map(|t| &t.wrong).collect();
    assert!(wrong.is_empty(), "{wrong:#?}");
    assert!(whole >= 20, "too little load to test anything: {tallies:?}");
    assert!(
        log.iter().any(|l| l.contains("SIGTERM: shutting down")),
        "{}",
        log.join("\n")
    );
}
