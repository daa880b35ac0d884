//! Compiles `proglog/v1/log.proto` and the internal `raft.proto` with protox (pure Rust, no system
//! `protoc`), generates prost messages and tonic client/server code, and
//! writes the encoded file descriptor set for server reflection.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "proglog/v1/log.proto",
        "proglog/v1/raft.proto",
        "proglog/v1/cluster.proto",
    ];
    for proto in protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    let descriptors = protox::compile(protos, ["."])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("proglog_descriptor.bin"),
        prost::Message::encode_to_vec(&descriptors),
    )?;
    tonic_prost_build::configure()
        .bytes(".proglog.v1.Record.value")
        .bytes(".proglog.v1.ForwardRequest.values")
        .compile_fds(descriptors)?;
    Ok(())
}
