//! The main example: the whole example app (hello, goodbye, caller, delay, count) on the
//! crate's own blocking server, at http://127.0.0.1:8000/statefun.
//!
//! ```text
//! cargo run --example server                      # then, in another terminal:
//! cargo run --example client                      # POSTs a batch, prints the reply
//! cargo run --example server -- --addr 0.0.0.0:8000        # reachable from other hosts
//! cargo run --example server -- --module-yaml              # examples/deploy/server.yaml
//! cargo run --example server -- --module-yaml --endpoint http://my-host:8000/statefun
//! ```
//!
//! The transports the runtime offers (see "Three ways to listen" in the guide's security
//! chapter, `src/guide/security.md`):
//!
//! ```text
//! cargo run --example server -- --tls-cert tls.crt --tls-key tls.key                   # https
//! cargo run --example server -- --tls-cert tls.crt --tls-key tls.key --client-ca ca.crt # mutual TLS
//! cargo run --example server -- --unix /tmp/functions.sock        # http+unix, no port
//! ```
//!
//! It also answers `GET /health` (liveness), `GET /ready` (readiness: 503 once it is
//! stopping) and `GET /metrics` (Prometheus; feature `metrics`, on by default), and stops
//! gracefully on SIGTERM or Ctrl-C: it refuses new connections, answers the requests in
//! flight, and exits within 10 s; a second signal exits at once.
//!
//! ```text
//! curl -i http://127.0.0.1:8000/health            # 200 ok
//! curl -i http://127.0.0.1:8000/ready             # 200 ready (503 while stopping)
//! curl -s http://127.0.0.1:8000/metrics           # batches, times, errors, bytes...
//! RUST_LOG=debug cargo run --example server       # one line per request
//! RUST_LOG=statefun_sync=debug cargo run --example server   # the crate's lines only
//! ```
//!
//! At `debug`, each request logs one line: the function type, the id, the invocations,
//! the states changed, the sizes and the time; each failed batch logs one line at `warn`
//! (4xx) or `error` (5xx), naming the function type, the address and the error. The
//! functions are in `examples/common/app.rs`; `flask` serves the same app on tiny_http.

mod common;

fn main() -> anyhow::Result<()> {
    common::serve_from_args(common::app::functions())
}
