//! Compiles `vpc/agent/v1/agent.proto` with protox (pure Rust, no system
//! `protoc`) into prost messages and tonic client and server code, and writes
//! the encoded file descriptor set for gRPC reflection.

use std::path::PathBuf;

use prost::Message;

const PROTO: &str = "vpc/agent/v1/agent.proto";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed={PROTO}");
    let descriptors = protox::compile([PROTO], ["."])?;
    // tonic-prost-build ignores file_descriptor_set_path() on the compile_fds
    // path, so the set the reflection service serves is written here.
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("vpc_agent_v1_descriptor.bin"),
        descriptors.encode_to_vec(),
    )?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}
