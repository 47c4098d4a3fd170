//! The Python SDK's Flask example, on tiny_http: the example app served by a few threads
//! that each answer requests with `http::tiny_http::answer`.
//!
//! ```text
//! cargo run --example flask                       # http://127.0.0.1:8000/statefun
//! cargo run --example client
//! ```
//!
//! tiny_http 0.12 leaves some connections of a burst of new connections unanswered (see
//! `statefun_sync::http::tiny_http`): for the runtime's connection pool, use `serve()`
//! as the `server` example does. This one is for services that already run tiny_http.

mod common;

#[cfg(feature = "tiny-http")]
fn main() -> anyhow::Result<()> {
    use std::sync::Arc;

    use statefun_sync::http::tiny_http as adapter;
    use statefun_sync::RequestReplyHandler;

    let options = common::options();
    let functions = common::app::functions();
    if options.module_yaml {
        print!("{}", functions.module_yaml_v2(&options.endpoint));
        return Ok(());
    }
    common::init_logging();
    let handler = Arc::new(RequestReplyHandler::v2(functions));
    let server =
        Arc::new(tiny_http::Server::http(options.addr.as_str()).map_err(|e| anyhow::anyhow!(e))?);
    log::info!(
        "serving the example app at http://{}/statefun on tiny_http",
        options.addr
    );

    // Flask's development server is threaded; so is this one.
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (server, handler) = (Arc::clone(&server), Arc::clone(&handler));
            std::thread::spawn(move || {
                for request in server.incoming_requests() {
                    if let Err(err) = adapter::answer(&handler, request) {
                        log::warn!("could not send a reply: {err}");
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
fn main() {
    eprintln!("this example needs the `tiny-http` feature (on by default)");
}
