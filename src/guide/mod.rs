//! The guide: how to write, test, serve and run Stateful Functions with this crate, one
//! chapter per topic. It holds no items; the API is documented at the
//! [crate root](crate), and each chapter links to the items it explains.
//!
//! | chapter | what it answers |
//! |---|---|
//! | [`getting_started`] | From `cargo new` to a function of your own: `Cargo.toml`, a `.proto`, `build.rs`, the function, `main.rs`, running it, its test |
//! | [`functions`] | How a function is bound and takes its message; the [`Context`](crate::Context) reference: every call, what it does and how it fails; declared states and the 2.2 `module.yaml` |
//! | [`protocols`] | 2.2 or 3.x: what differs, the 3.x greeter, typed values, the 3.x `module.yaml`, the state handshake; which runtime versions each serves |
//! | [`python_3_3`] | Coming from the Python SDK 3.3 (and the 3.5 fork): each call in Rust, where the two answer differently, how that is checked |
//! | [`python_2_2`] | Coming from the Python SDK 2.2: each call in Rust, the deliberate differences, how that is checked |
//! | [`errors`] | What a failed batch returns, the status of each error, and what the runtime does with it |
//! | [`serving`] | The crate's server, its table of requests and statuses, routes of your own, the examples, hosting the handler in your own server, blocking or async |
//! | [`security`] | Plain TCP, TLS and mutual TLS, a Unix socket, and the runtime's side of each; bad input, limits and what the fuzzing and soak runs found |
//! | [`deployment`] | Kubernetes: the liveness and readiness probes, the graceful stop on SIGTERM, the pod's settings |
//! | [`operations`] | What is logged and at which level; the Prometheus metrics and a scrape configuration |
//! | [`performance`] | How fast `handle()` and the server are; batching, and the runtime's cost per request |
//! | [`testing`] | A function tested one batch at a time, on 2.2 and 3.x; this crate's own tests and CI |
//! | [`local_runtime`] | A whole app on `LocalRuntime`: state, routing, batching, delayed messages on a virtual clock, egress, remote endpoints, the 3.x handshake and expiry |
//!
//! Looking for one answer:
//!
//! - How do I test my function? [Testing a function](testing), then
//!   [Running an app locally](local_runtime).
//! - What does a 500 do? [Errors and HTTP statuses](errors): which errors are a 500, and
//!   what each runtime does with it; the [table of requests and
//!   statuses](serving#serving-over-http) has every status the server answers.
//! - Which feature do I need? The [feature table](crate#features).
//! - How do I deploy it? [`module.yaml`](protocols#the-3x-moduleyaml) for the runtime,
//!   [Kubernetes](deployment) for the pod, [TLS](security) for the connection.
//!
//! Every Rust block in the guide is compiled as a doctest (`cargo test --doc`), and most of
//! them run. Where a block needs what a doctest lacks (the `OUT_DIR` of a build script, a
//! web framework), lines hidden from the page stand in for it.

// One convention: each chapter is a markdown file beside this one, included as the docs of
// an empty module, and followed by the link definitions of the items behind a feature
// (`src/doc_links.rs`), so that a chapter may link `[`Server`]` and still build without
// the feature.

#[doc = include_str!("getting_started.md")]
#[doc = feature_links!()]
pub mod getting_started {}

#[doc = include_str!("functions.md")]
#[doc = feature_links!()]
pub mod functions {}

#[doc = include_str!("protocols.md")]
#[doc = feature_links!()]
pub mod protocols {}

#[doc = include_str!("python_3_3.md")]
#[doc = feature_links!()]
pub mod python_3_3 {}

#[doc = include_str!("python_2_2.md")]
#[doc = feature_links!()]
pub mod python_2_2 {}

#[doc = include_str!("errors.md")]
#[doc = feature_links!()]
pub mod errors {}

#[doc = include_str!("serving.md")]
#[doc = feature_links!()]
pub mod serving {}

#[doc = include_str!("security.md")]
#[doc = feature_links!()]
pub mod security {}

#[doc = include_str!("deployment.md")]
#[doc = feature_links!()]
pub mod deployment {}

#[doc = include_str!("operations.md")]
#[doc = feature_links!()]
pub mod operations {}

#[doc = include_str!("performance.md")]
#[doc = feature_links!()]
pub mod performance {}

#[doc = include_str!("testing.md")]
#[doc = feature_links!()]
pub mod testing {}

#[doc = include_str!("local_runtime.md")]
#[doc = feature_links!()]
pub mod local_runtime {}
