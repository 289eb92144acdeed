//! Build script: compiles `proto/arbiter/v1/authorizer.proto` with protox (no system `protoc`), generates the
//! tonic client and server with tonic-prost-build, and writes the encoded FileDescriptorSet for server reflection.

#[cfg(not(feature = "server"))]
fn main() {
    // The library alone (`--no-default-features`) has no gRPC service to generate.
}

#[cfg(feature = "server")]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    let fds = protox::compile(["arbiter/v1/authorizer.proto"], ["proto"])?;
    std::fs::write(
        out_dir.join("arbiter_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;
    // Decoding errors are the caller's: `INVALID_ARGUMENT` naming the message (see `src/server/codec.rs`).
    tonic_prost_build::configure()
        .codec_path("crate::server::codec::ArbiterCodec")
        .compile_fds(fds)?;
    Ok(())
}
