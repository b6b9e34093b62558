//! Compiles the etcd API protos and detcd's peer protocol with madsim-tonic-build, which emits
//! both the real tonic code and the simulator code (`tonic::include_proto!` picks one).
//!
//! protoc comes from `protoc-bin-vendored` unless `PROTOC` is already set. It is set for this
//! build script only: raft-proto needs a protoc 3.x and must not see the vendored one.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::var_os("PROTOC").is_none() {
        std::env::set_var("PROTOC", protoc_bin_vendored::protoc_bin_path()?);
    }
    let protos = [
        "proto/mvccpb/kv.proto",
        "proto/authpb/auth.proto",
        "proto/etcdserverpb/rpc.proto",
        "proto/v3lockpb/v3lock.proto",
        "proto/v3electionpb/v3election.proto",
        "proto/detcdpb/peer.proto",
    ];
    tonic_build::configure()
        .bytes(["."])
        .compile_protos(&protos, &["proto"])?;
    for p in protos {
        println!("cargo:rerun-if-changed={p}");
    }
    Ok(())
}
