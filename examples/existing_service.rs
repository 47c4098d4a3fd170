//! An existing threaded service that adds the function endpoint next to its own routes,
//! through the server-neutral adapter (`statefun_sync::http::Endpoint`). The service
//! here runs on tiny_http; with any other blocking server, only the two conversions
//! (its request into a `RequestHead` and a body, the `Response` into its response)
//! change.
//!
//! ```text
//! cargo run --example existing_service            # http://127.0.0.1:8000
//! curl http://127.0.0.1:8000/health               # the service's own route
//! cargo run --example client                      # the functions, at /statefun
//! ```

mod common;

#[cfg(feature = "tiny-http")]
fn main() -> anyhow::Result<()> {
    use std::sync::Arc;

    use statefun_sync::http::{Endpoint, RequestHead};
    use statefun_sync::RequestReplyHandler;
    use tiny_http::{Header, Request, Response};

    /// The service's own routes first; everything else goes to the functions, whose
    /// endpoint answers 404 for paths other than its own.
    fn route(
        endpoint: &Endpoint,
        handler: &RequestReplyHandler,
        mut request: Request,
    ) -> std::io::Result<()> {
        if request.url() == "/health" {
            return request.respond(Response::from_string("ok\n"));
        }
        let method = request.method().as_str().to_owned();
        let url = request.url().to_owned();
        let content_type = request
            .headers()
            .iter()
            .find(|h| h.field.equiv("Content-Type"))
            .map(|h| h.value.as_str().to_owned());
        let mut head = RequestHead::new(&method, &url);
        if let Some(content_type) = &content_type {
            head = head.content_type(content_type);
        }
        if let Some(length) = request.body_length() {
            head = head.content_length(length as u64);
        }

        let response = endpoint.respond(handler, &head, request.as_reader());

        let mut reply =
            Response::from_data(response.body().to_vec()).with_status_code(response.status());
        let headers = [("Content-Type", response.content_type())]
            .into_iter()
            .chain(response.headers().iter().copied());
        for (name, value) in headers {
            if let Ok(header) = Header::from_bytes(name, value) {
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
                    if let Err(err) = route(&endpoint, &handler, request) {
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
