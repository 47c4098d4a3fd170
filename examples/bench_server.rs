//! The HTTP bench server: `bench/greeter` and `bench/fanout` (the benchmark functions,
//! `benches/workloads/functions.rs`) at `http://127.0.0.1:PORT/statefun`.
//!
//! ```text
//! cargo build --release --example bench_server
//! target/release/examples/bench_server [--port 8080] [--seconds 600] [--tiny-http]
//!     [--tls-cert PEM --tls-key PEM] [--workers N] [--handler-us US]
//! ```
//!
//! By default it runs the crate's own server (`Server`, with the settings `serve()` uses);
//! `--tiny-http` runs a `tiny_http::Server` answering through `http::tiny_http` instead,
//! with two threads taking requests. Either way it stops by itself after `--seconds`.
//! `--tls-cert` and `--tls-key` serve TLS on the crate's server (`scripts/tls_bench.sh`).
//! `--workers` sets the crate's server's `workers` (default: its own default), and
//! `--handler-us` makes `bench/greeter` sleep that many microseconds before it greets, as
//! a function that waits on I/O (`scripts/permits_bench.sh`).

use std::sync::Arc;
use std::time::Duration;

use statefun_sync::http::Server;
use statefun_sync::RequestReplyHandler;

#[path = "../benches/workloads/functions.rs"]
mod workloads;

struct Options {
    port: u16,
    seconds: u64,
    tiny_http: bool,
    tls: Option<(String, String)>,
    workers: Option<usize>,
    handler_sleep: Duration,
}

const USAGE: &str = "usage: bench_server [--port 8080] [--seconds 600] [--tiny-http] \
    [--tls-cert PEM --tls-key PEM] [--workers N] [--handler-us US]";

fn options() -> Result<Options, String> {
    let mut options = Options {
        port: 8080,
        seconds: 600,
        tiny_http: false,
        tls: None,
        workers: None,
        handler_sleep: Duration::ZERO,
    };
    let mut cert = None;
    let mut key = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--port" => {
                let port = value("--port")?;
                options.port = port.parse().map_err(|_| format!("bad port `{port}`"))?;
            }
            "--seconds" => {
                let seconds = value("--seconds")?;
                options.seconds = seconds
                    .parse()
                    .map_err(|_| format!("bad --seconds `{seconds}`"))?;
            }
            "--tiny-http" => options.tiny_http = true,
            "--tls-cert" => cert = Some(value("--tls-cert")?),
            "--tls-key" => key = Some(value("--tls-key")?),
            "--workers" => {
                let workers = value("--workers")?;
                let workers = workers
                    .parse()
                    .map_err(|_| format!("bad --workers `{workers}`"))?;
                options.workers = Some(workers);
            }
            "--handler-us" => {
                let micros = value("--handler-us")?;
                let micros = micros
                    .parse()
                    .map_err(|_| format!("bad --handler-us `{micros}`"))?;
                options.handler_sleep = Duration::from_micros(micros);
            }
            "--help" | "-h" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument `{other}`; {USAGE}")),
        }
    }
    options.tls = match (cert, key) {
        (Some(cert), Some(key)) => Some((cert, key)),
        (None, None) => None,
        _ => return Err("TLS needs both --tls-cert and --tls-key".into()),
    };
    Ok(options)
}

fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let options = options()?;
    let address = ("127.0.0.1", options.port);
    let run_for = Duration::from_secs(options.seconds);
    let handler = Arc::new(if options.handler_sleep.is_zero() {
        workloads::handler()
    } else {
        sleepy_handler(options.handler_sleep)
    });

    if options.tiny_http {
        return tiny_http_server(handler, address, run_for);
    }
    let mut builder = Server::builder().bind(address);
    if let Some(workers) = options.workers {
        builder = builder.workers(workers);
    }
    let server = with_tls(builder, options.tls)?.start(handler)?;
    eprintln!(
        "bench_server (statefun_sync::http::Server) at {} for {} s{}{}",
        server.url(),
        options.seconds,
        options
            .workers
            .map_or(String::new(), |w| format!(", {w} workers")),
        if options.handler_sleep.is_zero() {
            String::new()
        } else {
            format!(", greeter sleeps {:?}", options.handler_sleep)
        }
    );
    std::thread::sleep(run_for);
    server.shutdown();
    Ok(())
}

/// `bench/greeter` as in the workloads, after sleeping `sleep` (a function that waits on
/// I/O: it holds a worker, not a core).
fn sleepy_handler(sleep: Duration) -> RequestReplyHandler {
    workloads::handler_with_greeter(move |ctx, message| {
        std::thread::sleep(sleep);
        workloads::greeter(ctx, message)
    })
}

#[cfg(feature = "tls")]
fn with_tls(
    builder: statefun_sync::http::ServerBuilder,
    tls: Option<(String, String)>,
) -> Result<statefun_sync::http::ServerBuilder, Box<dyn std::error::Error + Send + Sync>> {
    Ok(match tls {
        Some((cert, key)) => builder.tls(statefun_sync::http::TlsConfig::new(cert, key)),
        None => builder,
    })
}

#[cfg(not(feature = "tls"))]
fn with_tls(
    builder: statefun_sync::http::ServerBuilder,
    tls: Option<(String, String)>,
) -> Result<statefun_sync::http::ServerBuilder, Box<dyn std::error::Error + Send + Sync>> {
    match tls {
        Some(_) => Err("--tls-cert needs the `tls` feature".into()),
        None => Ok(builder),
    }
}

#[cfg(feature = "tiny-http")]
fn tiny_http_server(
    handler: Arc<statefun_sync::RequestReplyHandler>,
    address: (&str, u16),
    run_for: Duration,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let server = Arc::new(tiny_http::Server::http(address)?);
    eprintln!(
        "bench_server (http::tiny_http) at http://{}/statefun for {} s",
        server.server_addr(),
        run_for.as_secs()
    );
    let deadline = std::time::Instant::now() + run_for;
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let (server, handler) = (Arc::clone(&server), Arc::clone(&handler));
            std::thread::spawn(move || {
                while std::time::Instant::now() < deadline {
                    match server.recv_timeout(Duration::from_millis(100)) {
                        Ok(Some(request)) => {
                            if let Err(e) =
                                statefun_sync::http::tiny_http::answer(&handler, request)
                            {
                                eprintln!("could not answer: {e}");
                            }
                        }
                        Ok(None) => {}
                        Err(e) => eprintln!("could not receive: {e}"),
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        let _ = thread.join();
    }
    Ok(())
}

#[cfg(not(feature = "tiny-http"))]
fn tiny_http_server(
    _: Arc<statefun_sync::RequestReplyHandler>,
    _: (&str, u16),
    _: Duration,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    Err("--tiny-http needs the `tiny-http` feature".into())
}
