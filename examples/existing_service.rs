//! An existing threaded service that adds the function endpoint next to its own routes,
//! through the server-neutral rules (`statefun_sync::http::Endpoint`). The service here
//! runs on tiny_http; with any other blocking server, only the two conversions at the
//! bottom change (its request into a `RequestHead` and a body, a `Response` into its
//! response). Every route answers with a `statefun_sync::http::Response`, the service's
//! own ones too.
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
    use std::io::Read;
    use std::sync::Arc;

    use statefun_sync::http::{Endpoint, RequestHead, Response};
    use statefun_sync::RequestReplyHandler;

    /// The service's routes: its own first; everything else goes to the functions, whose
    /// endpoint answers 404 for paths other than its own.
    fn route(
        endpoint: &Endpoint,
        handler: &RequestReplyHandler,
        head: &RequestHead<'_>,
        body: &mut dyn Read,
    ) -> Response {
        match (head.method(), head.path()) {
            ("GET", "/health") => Response::text(200, "ok\n"),
            _ => endpoint.respond(handler, head, body),
        }
    }

    /// Answers one tiny_http request: its head and body in, the routed `Response` out.
    fn answer(
        endpoint: &Endpoint,
        handler: &RequestReplyHandler,
        mut request: tiny_http::Request,
    ) -> std::io::Result<()> {
        // tiny_http's request into a `RequestHead`.
        let method = request.method().as_str().to_owned();
        let url = request.url().to_owned();
        let content_type = request
            .headers()
            .iter()
            .find(|h| h.field.equiv("Content-Type"))
            .map(|h| h.value.as_str().to_owned());
        let mut head = RequestHead::new(&method, &url);
        if let Some(content_type) = &content_type {
            head = head.with_content_type(content_type);
        }
        if let Some(length) = request.body_length() {
            head = head.with_content_length(length as u64);
        }

        let response = route(endpoint, handler, &head, request.as_reader());

        // The `Response` into tiny_http's.
        let (status, content_type) = (response.status(), response.content_type());
        let headers = response.headers().to_vec();
        let mut reply =
            tiny_http::Response::from_data(response.into_body()).with_status_code(status);
        for (name, value) in [("Content-Type", content_type)].into_iter().chain(headers) {
            if let Ok(header) = tiny_http::Header::from_bytes(name, value) {
                reply.add_header(header);
            }
        }
        request.respond(reply)
    }

    let options = common::options();
    let functions = common::app::functions();
    if options.module_yaml {
        print!("{}", functions.module_yaml(&options.endpoint));
        return Ok(());
    }
    common::init_logging();
    let handler = Arc::new(RequestReplyHandler::new(functions));
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
