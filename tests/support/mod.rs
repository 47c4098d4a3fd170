//! The one helper tree of the integration tests; a test file that needs a helper says
//! `mod support;`.
//!
//! - here: the message types of the Python SDK's test suite, and handler helpers;
//! - [`raise_fd_limit`], for tests that hold many sockets;
//! - [`TempDir`], a directory removed when dropped;
//! - [`http`]: the raw HTTP/1.1 test client (over TCP, a Unix socket or TLS), the
//!   requests and functions the HTTP tests use, and a tiny_http server;
//! - [`tls`] (feature `tls`): test certificates made at test time, and a rustls client;
//! - [`python`]: the Python reference SDK (a test virtualenv, or `$STATEFUN_PYTHON`);
//! - [`differential`]: what the two differential tests against it share;
//! - [`hostile`]: the raw protobuf encoders and error assertions of the hostile-input tests;
//! - [`scripted`]: a remote endpoint that answers with responses written beforehand;
//! - [`workloads`]: the benchmark functions and fixed workloads, the file the benches use;
//! - [`shapes`]: the hostile request shapes of the complexity bench, at any size;
//! - [`examples`]: what the examples share (their message types and app).
//!
//! Every test file is its own crate and uses its own subset of this tree, so the rest is
//! dead code there: allowed once, here, for the whole tree.
#![allow(dead_code)]

pub mod differential;
pub mod hostile;
pub mod http;
pub mod python;
pub mod scripted;
#[cfg(feature = "tls")]
pub mod tls;

#[path = "../../benches/workloads/functions.rs"]
pub mod workloads;

#[path = "../../benches/workloads/shapes.rs"]
pub mod shapes;

// It serves through the crate's own server.
#[cfg(feature = "server")]
#[path = "../../examples/common/mod.rs"]
pub mod examples;

use std::io::Write as _;

use prost_types::Any;
use statefun_sync::testing::v2::Reply;
use statefun_sync::{Address, Error, RequestReplyHandler, StatefulFunctions};

/// Raises this process's soft limit on open files towards its hard limit, for a test
/// that holds about `needed` descriptors at once (a client and a server socket per
/// loopback connection, both in this process). Asks for twice `needed`, since the other
/// tests of the binary run beside it and the limit is the whole process's.
///
/// Returns `false`, after printing why, when even the hard limit is below `needed`: the
/// test cannot run here and should return at once. The message goes straight to stderr,
/// so that the test harness shows it although the test passes.
///
/// # Panics
///
/// If the limit cannot be read or set.
pub fn raise_fd_limit(needed: u64) -> bool {
    let limit = rlimit::increase_nofile_limit(needed.saturating_mul(2))
        .unwrap_or_else(|e| panic!("cannot raise the open-files limit: {e}"));
    if limit >= needed {
        return true;
    }
    let test = std::thread::current()
        .name()
        .unwrap_or("this test")
        .to_owned();
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {test}: it needs {needed} open files, and this process may open at most \
         {limit} (the hard limit, `ulimit -Hn`, which only root can raise)"
    );
    false
}

/// A new empty directory under the system's temporary directory, removed with all it
/// holds when dropped. Its path is short, so that a Unix socket's path in it stays under
/// the 108 bytes a socket address holds.
pub struct TempDir(std::path::PathBuf);

impl TempDir {
    /// Creates the directory, named after `prefix`, this process and a counter.
    ///
    /// # Panics
    ///
    /// If it cannot be created.
    pub fn new(prefix: &str) -> TempDir {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let path = std::env::temp_dir().join(format!("{prefix}-{}-{n}", std::process::id()));
        // A directory left by an earlier process of the same id: start afresh.
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        TempDir(path)
    }

    pub fn path(&self) -> &std::path::Path {
        &self.0
    }

    /// The path of `name` in the directory.
    pub fn join(&self, name: &str) -> std::path::PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The Python SDK test suite's `LoginEvent` (package `k8s.demo`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct LoginEvent {
    #[prost(string, tag = "1")]
    pub user_name: String,
}

impl prost::Name for LoginEvent {
    const NAME: &'static str = "LoginEvent";
    const PACKAGE: &'static str = "k8s.demo";
}

/// The Python SDK test suite's `SeenCount` (package `k8s.demo`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct SeenCount {
    #[prost(int64, tag = "1")]
    pub seen: i64,
}

impl prost::Name for SeenCount {
    const NAME: &'static str = "SeenCount";
    const PACKAGE: &'static str = "k8s.demo";
}

/// A second message type, for union and mismatch tests.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Admin {
    #[prost(string, tag = "1")]
    pub name: String,
}

impl prost::Name for Admin {
    const NAME: &'static str = "Admin";
    const PACKAGE: &'static str = "k8s.demo";
}

/// A one-byte `Any` that no typed function accepts.
pub fn ping(n: u8) -> Any {
    Any {
        type_url: "type.googleapis.com/test.Ping".into(),
        value: vec![n],
    }
}

pub fn caller() -> Address {
    Address::new("org.foo", "greeter-java", "0").unwrap()
}

/// A handler with one function bound under `typename`.
pub fn handler_for<F>(typename: &str, function: F) -> RequestReplyHandler
where
    F: Fn(&mut statefun_sync::Context<'_>, Any) -> anyhow::Result<()> + Send + Sync + 'static,
{
    let mut functions = StatefulFunctions::new();
    functions.bind(typename, function).unwrap();
    RequestReplyHandler::v2(functions)
}

/// Runs `request` and decodes the reply, failing the test on an error.
pub fn run(handler: &RequestReplyHandler, request: &[u8]) -> Reply {
    let bytes = handler
        .handle(request)
        .unwrap_or_else(|e| panic!("{}", e.report()));
    Reply::decode(&bytes).unwrap()
}

/// Runs `request`, expecting an error.
pub fn run_err(handler: &RequestReplyHandler, request: &[u8]) -> Error {
    match handler.handle(request) {
        Ok(reply) => panic!(
            "expected an error, got a reply: {:?}",
            Reply::decode(&reply)
        ),
        Err(e) => e,
    }
}
