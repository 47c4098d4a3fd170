//! Generates the protocol types from `proto/` with the `protoc` shipped in
//! `protoc-bin-vendored`, so a fresh machine needs no system protoc.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "proto/request-reply.proto",
        "proto/kafka-egress.proto",
        "proto/kinesis-egress.proto",
    ];
    for proto in protos {
        println!("cargo:rerun-if-changed={proto}");
    }

    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    // `prost::Name` on every message, so `Any::from_msg` packs with the right type URL.
    config.enable_type_names();
    config.type_name_domain(["."], "type.googleapis.com");
    // State values travel as `Bytes`: decoding a request from a `Bytes` buffer then
    // slices big states instead of copying them.
    config.bytes([".org.apache.flink.statefun.flink.core.polyglot"]);
    config.compile_protos(&protos, &["proto/"])?;
    Ok(())
}
