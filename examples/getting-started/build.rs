//! Generates the app's message types from `proto/greeter.proto` into `OUT_DIR/example.rs`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/greeter.proto");
    let mut config = prost_build::Config::new();
    // The protoc shipped in protoc-bin-vendored, so no system protoc is needed.
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    // `prost::Name` on every message, with the type URLs every Stateful Functions SDK
    // uses (`type.googleapis.com/example.GreetRequest`): `protobuf_type!`, packing into
    // an `Any` and `bind_typed` need it.
    config.enable_type_names();
    config.type_name_domain(["."], "type.googleapis.com");
    config.compile_protos(&["proto/greeter.proto"], &["proto/"])?;
    Ok(())
}
