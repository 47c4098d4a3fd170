//! Links from the documentation to items behind a feature, as markdown link definitions.
//!
//! A doc that links an item behind a feature (`[`Server`]`, say) would have a broken link in
//! a build without that feature, and `cargo doc --no-default-features` would fail. Such a
//! doc writes the link in reference style and appends `#[doc = feature_links!()]`: with
//! the feature, each label below points at its item; without it, at the crate root's
//! feature table, which says what turns the item on. Link definitions that a doc does not
//! use show nothing.

/// Defines `$name!()`: the link definitions of the items that exist when `$cfg` holds,
/// after a blank line (a definition cannot interrupt a paragraph).
macro_rules! links_behind {
    ($name:ident, $cfg:meta, [$($label:literal => $path:literal),* $(,)?]) => {
        #[cfg($cfg)]
        macro_rules! $name {
            () => { concat!("\n", $("\n[`", $label, "`]: ", $path),*, "\n") };
        }
        #[cfg(not($cfg))]
        macro_rules! $name {
            () => { concat!("\n", $("\n[`", $label, "`]: crate#features"),*, "\n") };
        }
    };
}

links_behind!(server_links, feature = "server", [
    "serve" => "crate::serve",
    "serve_at" => "crate::serve_at",
    "Server" => "crate::http::Server",
    "Server::builder" => "crate::http::Server::builder",
    "Server::join" => "crate::http::Server::join",
    "Server::shutdown" => "crate::http::Server::shutdown",
    "ServerBuilder" => "crate::http::ServerBuilder",
    "ServerBuilder::bind_unix" => "crate::http::ServerBuilder::bind_unix",
    "ServerBuilder::grow_batches" => "crate::http::ServerBuilder::grow_batches",
    "ServerBuilder::health" => "crate::http::ServerBuilder::health",
    "ServerBuilder::max_body_memory" => "crate::http::ServerBuilder::max_body_memory",
    "ServerBuilder::ready" => "crate::http::ServerBuilder::ready",
    "ServerBuilder::route" => "crate::http::ServerBuilder::route",
    "ServerBuilder::shutdown_timeout" => "crate::http::ServerBuilder::shutdown_timeout",
    "ServerBuilder::start" => "crate::http::ServerBuilder::start",
    "ServerBuilder::stop_on_signals" => "crate::http::ServerBuilder::stop_on_signals",
    "ServerBuilder::unix_mode" => "crate::http::ServerBuilder::unix_mode",
    "ServerBuilder::workers" => "crate::http::ServerBuilder::workers",
    "BatchGrowth" => "crate::http::BatchGrowth",
]);

links_behind!(server_tls_links, all(feature = "server", feature = "tls"), [
    "ServerBuilder::tls" => "crate::http::ServerBuilder::tls",
]);

links_behind!(server_metrics_links, all(feature = "server", feature = "metrics"), [
    "ServerBuilder::metrics" => "crate::http::ServerBuilder::metrics",
]);

links_behind!(tls_links, feature = "tls", [
    "TlsConfig" => "crate::http::TlsConfig",
    "TlsConfig::client_ca" => "crate::http::TlsConfig::client_ca",
    "TlsConfig::client_names" => "crate::http::TlsConfig::client_names",
]);

links_behind!(testing_links, feature = "testing", [
    "statefun_sync::testing" => "crate::testing",
    "testing::v2::call_remote_with" => "crate::testing::v2::call_remote_with",
    "testing::v2::Reply" => "crate::testing::v2::Reply",
    "testing::v2::Reply::egresses_to" => "crate::testing::v2::Reply::egresses_to",
    "testing::v2::Reply::modified" => "crate::testing::v2::Reply::modified",
    "testing::Sent::unpack" => "crate::testing::Sent::unpack",
    "testing::v3" => "crate::testing::v3",
    "testing::v3::Reply::missing_states" => "crate::testing::v3::Reply::missing_states",
    "LocalRuntime" => "crate::testing::LocalRuntime",
    "LocalRuntime::advance" => "crate::testing::LocalRuntime::advance",
    "LocalRuntime::egress_values" => "crate::testing::LocalRuntime::egress_values",
    "LocalRuntime::kafka_records" => "crate::testing::LocalRuntime::kafka_records",
    "LocalRuntime::route_to_endpoint" => "crate::testing::LocalRuntime::route_to_endpoint",
    "LocalRuntime::v3" => "crate::testing::LocalRuntime::v3",
]);

links_behind!(testing_tls_links, all(feature = "testing", feature = "tls"), [
    "ClientTls" => "crate::testing::ClientTls",
    "LocalRuntime::remote_tls" => "crate::testing::LocalRuntime::remote_tls",
]);

links_behind!(tiny_http_links, feature = "tiny-http", [
    "http::tiny_http" => "crate::http::tiny_http",
    "tiny_http::answer" => "crate::http::tiny_http::answer",
]);

links_behind!(metrics_links, feature = "metrics", [
    "metrics" => "crate::metrics",
    "Metrics" => "crate::metrics::Metrics",
    "Metrics::CONTENT_TYPE" => "crate::metrics::Metrics::CONTENT_TYPE",
    "Metrics::register" => "crate::metrics::Metrics::register",
    "Metrics::render" => "crate::metrics::Metrics::render",
    "RequestReplyHandler::with_metrics" => "crate::RequestReplyHandler::with_metrics",
]);

links_behind!(json_links, feature = "json", [
    "json_type!" => "crate::json_type!",
]);

/// The link definitions of every item behind a feature.
macro_rules! feature_links {
    () => {
        concat!(
            server_links!(),
            server_tls_links!(),
            server_metrics_links!(),
            tls_links!(),
            tiny_http_links!(),
            metrics_links!(),
            json_links!(),
            testing_links!(),
            testing_tls_links!(),
        )
    };
}
