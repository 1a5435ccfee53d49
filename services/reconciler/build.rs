//! Generates the reconciler's control API (`proto/cdc/reconciler/v1`) and its descriptor set
//! for reflection.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "../../proto/cdc/reconciler/v1/reconciler.proto";
    println!("cargo:rerun-if-changed={proto}");
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let mut prost_config = prost_build::Config::new();
    prost_config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("cdc_reconciler_descriptor.bin"))
        .compile_with_config(prost_config, &[proto], &["../../proto"])?;
    Ok(())
}
