//! Generates the event, schema and value messages from `proto/cdc/v1`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_root = "../../proto";
    let files = [
        "../../proto/cdc/v1/value.proto",
        "../../proto/cdc/v1/schema.proto",
        "../../proto/cdc/v1/event.proto",
        "../../proto/cdc/v1/command.proto",
    ];
    for file in files {
        println!("cargo:rerun-if-changed={file}");
    }
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    config.compile_protos(&files, &[proto_root])?;
    Ok(())
}
