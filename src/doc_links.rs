//! Links from the documentation to items behind a feature, as markdown link definitions.
//!
//! A doc that links an item behind a feature (`[`Server`]`, say) would have a broken link in
//! a build without that feature, and `cargo doc --no-default-features` would fail. Such a
//! doc writes the link in reference style and appends `#[doc = feature_links!()]`: with
//! the feature, each label below points at its item; without it, at the crate root's
//! feature table, which says what turns the item on. Link definitions that a doc does not
//! use show nothing.

/// Defines `$name!()`: the link definitions of the items behind `$feature`, after a blank
/// line (a definition cannot interrupt a paragraph).
macro_rules! links_behind {
    ($name:ident, $feature:literal, [$($label:literal => $path:literal),* $(,)?]) => {
        #[cfg(feature = $feature)]
        macro_rules! $name {
            () => { concat!("\n", $("\n[`", $label, "`]: ", $path),*, "\n") };
        }
        #[cfg(not(feature = $feature))]
        macro_rules! $name {
            () => { concat!("\n", $("\n[`", $label, "`]: crate#features"),*, "\n") };
        }
    };
}

links_behind!(server_links, "server", [
    "serve" => "crate::serve",
    "serve_at" => "crate::serve_at",
    "Server" => "crate::http::Server",
    "Server::join" => "crate::http::Server::join",
    "Server::shutdown" => "crate::http::Server::shutdown",
    "ServerBuilder" => "crate::http::ServerBuilder",
    "ServerBuilder::bind_unix" => "crate::http::ServerBuilder::bind_unix",
    "ServerBuilder::grow_batches" => "crate::http::ServerBuilder::grow_batches",
    "ServerBuilder::health" => "crate::http::ServerBuilder::health",
    "ServerBuilder::max_body_memory" => "crate::http::ServerBuilder::max_body_memory",
    "ServerBuilder::metrics" => "crate::http::ServerBuilder::metrics",
    "ServerBuilder::ready" => "crate::http::ServerBuilder::ready",
    "ServerBuilder::route" => "crate::http::ServerBuilder::route",
    "ServerBuilder::shutdown_timeout" => "crate::http::ServerBuilder::shutdown_timeout",
    "ServerBuilder::stop_on_signals" => "crate::http::ServerBuilder::stop_on_signals",
    "ServerBuilder::tls" => "crate::http::ServerBuilder::tls",
    "BatchGrowth" => "crate::http::BatchGrowth",
]);

links_behind!(tls_links, "tls", [
    "TlsConfig" => "crate::http::TlsConfig",
    "ClientTls" => "crate::testing::ClientTls",
    "LocalRuntime::remote_tls" => "crate::testing::LocalRuntime::remote_tls",
]);

links_behind!(tiny_http_links, "tiny-http", [
    "http::tiny_http" => "crate::http::tiny_http",
    "tiny_http::answer" => "crate::http::tiny_http::answer",
]);

links_behind!(metrics_links, "metrics", [
    "metrics" => "crate::metrics",
    "Metrics" => "crate::metrics::Metrics",
    "RequestReplyHandler::with_metrics" => "crate::RequestReplyHandler::with_metrics",
]);

links_behind!(json_links, "json", [
    "json_type!" => "crate::json_type!",
]);

/// The link definitions of every item behind a feature.
macro_rules! feature_links {
    () => {
        concat!(
            server_links!(),
            tls_links!(),
            tiny_http_links!(),
            metrics_links!(),
            json_links!(),
        )
    };
}
