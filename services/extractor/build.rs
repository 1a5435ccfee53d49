//! Generates the extractor's control API and checkpoint (`proto/cdc/extractor/v1`) and its
//! descriptor set for reflection; the `cdc.v1` messages come from `cdc-model`.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "../../proto/cdc/extractor/v1/extractor.proto";
    println!("cargo:rerun-if-changed={proto}");
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let mut prost_config = prost_build::Config::new();
    prost_config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    prost_config.extern_path(".cdc.v1", "::cdc_model::proto");
    tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("cdc_extractor_descriptor.bin"))
        .compile_with_config(prost_config, &[proto], &["../../proto"])?;
    Ok(())
}
