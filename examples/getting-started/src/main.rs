//! Serves the app's functions at `http://127.0.0.1:8000/statefun`, or at `--addr HOST:PORT`.

use anyhow::Context as _;
use statefun_sync::RequestReplyHandler;

fn main() -> anyhow::Result<()> {
    // statefun-sync logs through `log`: without a logger nothing shows, not even errors.
    // `info` shows where it serves and every failed request; RUST_LOG overrides it.
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();

    let addr = addr_from_args()?;
    let handler = RequestReplyHandler::v2(getting_started::functions());
    // Blocks: serves, with GET /health and /ready, until SIGTERM or Ctrl-C.
    statefun_sync::serve(handler, addr.as_str())
        .with_context(|| format!("cannot serve at {addr}"))?;
    Ok(())
}

/// `--addr HOST:PORT`, default `127.0.0.1:8000` (`0.0.0.0:8000` to accept other hosts).
fn addr_from_args() -> anyhow::Result<String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [] => Ok("127.0.0.1:8000".to_owned()),
        [flag, addr] if flag == "--addr" => Ok(addr.clone()),
        _ => anyhow::bail!("usage: getting-started [--addr HOST:PORT]"),
    }
}
