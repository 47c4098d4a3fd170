//! The protocol code under `src/proto/` is generated from `proto/*.proto` and
//! committed, so that users of the crate compile no `prost-build` and download
//! no `protoc`. This test is the one place that holds the `prost-build`
//! configuration: it generates the code again (with the `protoc` shipped in
//! `protoc-bin-vendored`) and fails when the committed files differ.
//!
//! After editing a `.proto` file, or upgrading `prost-build`, regenerate with
//!
//! ```text
//! STATEFUN_REGENERATE=1 cargo test --test generated_code
//! ```
//!
//! and commit the files it rewrites.

use std::fs;
use std::path::{Path, PathBuf};

/// The `.proto` files, relative to the crate root.
const PROTOS: [&str; 6] = [
    "proto/request-reply.proto",
    "proto/kafka-egress.proto",
    "proto/kinesis-egress.proto",
    "proto/v3/request-reply.proto",
    "proto/v3/types.proto",
    "proto/v3/egress.proto",
];

/// Where the generated files are committed, relative to the crate root.
const GENERATED_DIR: &str = "src/proto";

/// Set to `1` to overwrite the committed files with freshly generated ones.
const REGENERATE_VAR: &str = "STATEFUN_REGENERATE";

/// The command that regenerates the committed files.
const REGENERATE_CMD: &str = "STATEFUN_REGENERATE=1 cargo test --test generated_code";

/// The first lines of every committed file, ahead of what prost-build writes.
fn header() -> String {
    format!(
        "// Generated from the files under proto/ by tests/generated_code.rs; do not edit.\n\
         // To regenerate: {REGENERATE_CMD}\n"
    )
}

/// Runs prost-build on [`PROTOS`] into `out_dir`, the crate's only prost-build configuration.
fn generate(root: &Path, out_dir: &Path) {
    let protos: Vec<PathBuf> = PROTOS.iter().map(|p| root.join(p)).collect();
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path().expect("the vendored protoc"));
    config.out_dir(out_dir);
    // `prost::Name` on every message, so `Any::from_msg` packs with the right type URL.
    config.enable_type_names();
    config.type_name_domain(["."], "type.googleapis.com");
    // State values travel as `Bytes`: decoding a request from a `Bytes` buffer then
    // slices big states instead of copying them.
    config.bytes([
        ".org.apache.flink.statefun.flink.core.polyglot",
        ".io.statefun.sdk.reqreply",
    ]);
    config
        .compile_protos(&protos, &[root.join("proto")])
        .expect("prost-build failed on proto/");
}

/// The `.rs` files in `dir`, by file name, sorted.
fn rust_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").file_name())
        .filter_map(|name| name.into_string().ok())
        .filter(|name| name.ends_with(".rs"))
        .collect();
    names.sort();
    names
}

#[test]
fn committed_protocol_code_matches_the_proto_files() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let committed_dir = root.join(GENERATED_DIR);
    let out_dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("generated_code-{}", std::process::id()));
    if out_dir.exists() {
        fs::remove_dir_all(&out_dir).expect("removing a stale output directory");
    }
    fs::create_dir_all(&out_dir).expect("creating the output directory");
    generate(root, &out_dir);

    let regenerate = std::env::var(REGENERATE_VAR).is_ok_and(|v| v == "1");
    let generated = rust_files(&out_dir);
    assert!(!generated.is_empty(), "prost-build generated no file");
    let mut stale = Vec::new();
    for name in &generated {
        let fresh = header() + &fs::read_to_string(out_dir.join(name)).expect("a generated file");
        let committed_path = committed_dir.join(name);
        // Compare modulo line endings, so a checkout with CRLF does not fail.
        let committed = fs::read_to_string(&committed_path)
            .map(|s| s.replace("\r\n", "\n"))
            .ok();
        if committed.as_deref() == Some(fresh.as_str()) {
            continue;
        }
        if regenerate {
            fs::write(&committed_path, &fresh)
                .unwrap_or_else(|e| panic!("writing {}: {e}", committed_path.display()));
            eprintln!("regenerated {GENERATED_DIR}/{name}");
        } else {
            stale.push(if committed.is_some() {
                format!("{GENERATED_DIR}/{name} differs from what proto/ generates")
            } else {
                format!("{GENERATED_DIR}/{name} is missing")
            });
        }
    }
    // A generated file that the .proto files no longer produce (`mod.rs` is written by hand).
    for name in rust_files(&committed_dir) {
        if name != "mod.rs" && !generated.contains(&name) {
            stale.push(format!(
                "{GENERATED_DIR}/{name} is no longer generated from proto/: remove it"
            ));
        }
    }
    fs::remove_dir_all(&out_dir).ok();
    let fix = if regenerate {
        "Remove the files named above by hand, and their include! in src/proto/mod.rs.".to_string()
    } else {
        format!(
            "Regenerate it with `{REGENERATE_CMD}` and commit the result \
             (add an include! to src/proto/mod.rs for a new file, remove a stale one)."
        )
    };
    assert!(
        stale.is_empty(),
        "the committed protocol code is out of date:\n  {}\n{fix}",
        stale.join("\n  ")
    );
}
