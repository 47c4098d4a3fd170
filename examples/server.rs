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
//! `RUST_LOG=debug` logs every request with its timing. The functions are in
//! `examples/common/app.rs`; `flask` serves the same app on tiny_http.

mod common;

fn main() -> anyhow::Result<()> {
    common::serve_from_args(common::app::functions())
}
