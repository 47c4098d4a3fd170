//! An existing threaded tiny_http service that adds the function endpoint next to its own
//! routes: it answers its own `GET /health`, and hands every other request to
//! `statefun_sync::http::tiny_http::answer_with`, whose endpoint answers 404 for paths
//! other than `/statefun`. With another blocking server, `statefun_sync::http::Endpoint`
//! takes the request's method, path, content type and body, and returns the response to
//! send (see its documentation).
//!
//! ```text
//! cargo run --example existing_service            # http://127.0.0.1:8000
//! curl http://127.0.0.1:8000/health               # the service's own route
//! cargo run --example client                      # the functions, at /statefun
//! ```
//!
//! A service that can start the crate's own server instead needs none of this: a route
//! beside the functions is one line there,
//! `Server::builder().route("GET", "/health", |_, _| Response::text(200, "ok\n"))`.

mod common;

#[cfg(feature = "tiny-http")]
fn main() -> anyhow::Result<()> {
    use std::sync::Arc;

    use statefun_sync::http::{tiny_http::answer_with, Endpoint};
    use statefun_sync::RequestReplyHandler;

    /// Answers one request: the service's own routes first, then the functions.
    fn answer(
        endpoint: &Endpoint,
        handler: &RequestReplyHandler,
        request: tiny_http::Request,
    ) -> std::io::Result<()> {
        let path = request.url().split('?').next().unwrap_or_default();
        if request.method() == &tiny_http::Method::Get && path == "/health" {
            return request.respond(tiny_http::Response::from_string("ok\n"));
        }
        answer_with(endpoint, handler, request)
    }

    let options = common::options();
    let functions = common::app::functions();
    if options.module_yaml {
        print!("{}", functions.module_yaml_v2(&options.endpoint));
        return Ok(());
    }
    common::init_logging();
    let handler = Arc::new(RequestReplyHandler::v2(functions));
    let endpoint = Arc::new(Endpoint::new().with_path("/statefun"));
    let server =
        Arc::new(tiny_http::Server::http(options.addr.as_str()).map_err(|e| anyhow::anyhow!(e))?);
    log::info!(
        "service at http://{0}: GET /health, and the functions at http://{0}/statefun",
        options.addr
    );
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (server, handler, endpoint) = (
                Arc::clone(&server),
                Arc::clone(&handler),
                Arc::clone(&endpoint),
            );
            std::thread::spawn(move || {
                for request in server.incoming_requests() {
                    if let Err(err) = answer(&endpoint, &handler, request) {
                        log::warn!("could not send a response: {err}");
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
