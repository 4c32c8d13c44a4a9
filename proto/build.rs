//! Compiles the protocols with protox (pure Rust, no system `protoc`) into
//! prost messages and tonic client and server code, and writes the encoded
//! file descriptor set of each for gRPC reflection: `vpc/agent/v1/agent.proto`
//! (manager ↔ router agent) and `vpc/host/v1/host.proto` (manager ↔ host
//! agent). Each is compiled on its own, so the agent's descriptor set holds
//! the agent's file only, as before.

use std::path::PathBuf;

use prost::Message;

const AGENT_PROTO: &str = "vpc/agent/v1/agent.proto";
const HOST_PROTO: &str = "vpc/host/v1/host.proto";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    for (proto, descriptor) in [
        (AGENT_PROTO, "vpc_agent_v1_descriptor.bin"),
        (HOST_PROTO, "vpc_host_v1_descriptor.bin"),
    ] {
        println!("cargo:rerun-if-changed={proto}");
        let descriptors = protox::compile([proto], ["."])?;
        // tonic-prost-build ignores file_descriptor_set_path() on the
        // compile_fds path, so the set the reflection service serves is
        // written here.
        std::fs::write(out_dir.join(descriptor), descriptors.encode_to_vec())?;
        tonic_prost_build::configure()
            .build_client(true)
            .build_server(true)
            .compile_fds(descriptors)?;
    }
    Ok(())
}
