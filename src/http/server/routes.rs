//! The server's own routes beside the functions (`GET /health` and the like), from
//! [`ServerBuilder::route`](super::ServerBuilder::route).

use std::borrow::Cow;
use std::fmt;
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};

use log::{debug, error};

use crate::http::endpoint::{timer, Refusal, RequestHead, Response};
use crate::text::Shown;

/// What answers a route: the request's head and its whole body in, the response out.
type Handler = dyn Fn(&RequestHead<'_>, &[u8]) -> Response + Send + Sync;

/// One route: a method and an exact path, and its handler.
pub(super) struct Route {
    method: &'static str,
    path: String,
    handler: Box<Handler>,
}

/// The routes, in the order they were added.
#[derive(Default)]
pub(super) struct Routes(Vec<Route>);

impl Routes {
    /// Adds a route, replacing one with the same method and path.
    pub(super) fn add(&mut self, method: &'static str, path: String, handler: Box<Handler>) {
        self.0
            .retain(|r| !(r.path == path && r.method.eq_ignore_ascii_case(method)));
        self.0.push(Route {
            method,
            path,
            handler,
        });
    }

    /// Checks that every method is an HTTP token and every path starts with `/`.
    pub(super) fn check(&self) -> io::Result<()> {
        for route in &self.0 {
            let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
            if route.method.is_empty() || !route.method.bytes().all(token) {
                return Err(invalid(format!(
                    "route method {} is not an HTTP method",
                    Shown(route.method)
                )));
            }
            if !route.path.starts_with('/') {
                return Err(invalid(format!(
                    "route path {} does not start with `/`",
                    Shown(&route.path)
                )));
            }
        }
        Ok(())
    }

    /// The route that answers `head`: the one with its method and path (a `GET` route
    /// answers `HEAD` too). `None` for the functions, which answer their path and every
    /// path without a route; a 405 for another method on a route's path, whose `Allow`
    /// names the route's methods (and `POST` on the functions' path).
    #[inline]
    pub(super) fn find(
        &self,
        head: &RequestHead<'_>,
        functions_path: &str,
    ) -> Result<Option<&Route>, Refusal> {
        if self.0.is_empty() {
            return Ok(None);
        }
        let (method, path) = (head.method(), head.path());
        let on_path = || self.0.iter().filter(move |r| r.path == path);
        let with = |method: &str| on_path().find(|r| r.method.eq_ignore_ascii_case(method));
        if let Some(route) = with(method) {
            return Ok(Some(route));
        }
        if method.eq_ignore_ascii_case("HEAD") {
            if let Some(route) = with("GET") {
                return Ok(Some(route));
            }
        }
        let functions = path == functions_path;
        if on_path().next().is_none() || (functions && method.eq_ignore_ascii_case("POST")) {
            return Ok(None);
        }
        let mut allow: Vec<_> = on_path().map(|r| r.method).collect();
        if with("GET").is_some() && with("HEAD").is_none() {
            allow.push("HEAD");
        }
        if functions {
            allow.push("POST");
        }
        Err(Refusal::MethodNotAllowed {
            method: method.to_owned(),
            allow: Cow::Owned(allow),
        })
    }
}

impl Route {
    /// Runs the handler; a panic in it is a 500.
    pub(super) fn respond(&self, head: &RequestHead<'_>, body: &[u8]) -> Response {
        let started = timer();
        // AssertUnwindSafe: the handler is `Fn + Sync`, so a panic cannot leave it
        // half-updated through `&self`.
        let response = match catch_unwind(AssertUnwindSafe(|| (self.handler)(head, body))) {
            Ok(response) => response,
            Err(_) => {
                error!(
                    "{} {} 500: the handler panicked",
                    Shown(head.method()),
                    Shown(head.path())
                );
                Refusal::Panicked.response()
            }
        };
        if let Some(started) = started {
            debug!(
                "{} {} {}: {} bytes in, {} bytes out, {:?}",
                Shown(head.method()),
                Shown(head.path()),
                response.status(),
                body.len(),
                response.body().len(),
                started.elapsed()
            );
        }
        response
    }
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

impl fmt::Debug for Routes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut list = f.debug_list();
        for route in &self.0 {
            list.entry(&format_args!("{} {}", route.method, route.path));
        }
        list.finish()
    }
}
