//! Generates the CSI, kubelet plugin-registration and device-plugin bindings from the vendored
//! `.proto` files under `vendor/` (see README.md). CRI and gRPC health come from crates.

use std::env;
use std::path::{Path, PathBuf};

/// Vendored protos, relative to `vendor/` (each keeps its upstream import path).
const PROTOS: &[&str] = &[
    "github.com/container-storage-interface/spec/csi.proto",
    "k8s.io/kubelet/pkg/apis/pluginregistration/v1/api.proto",
    "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1/api.proto",
];

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=PROTOC");

    let compiler = find_protoc().unwrap_or_else(|| {
        panic!(
            "protoc (the Protocol Buffers compiler) was not found: set PROTOC or put `protoc` \
             on PATH. Run `hack/install-deps`, which installs Debian's `protobuf-compiler` \
             (protoc 3.21) and `libprotobuf-dev` (the google/protobuf/*.proto includes)."
        )
    });
    let vendor = Path::new(env!("CARGO_MANIFEST_DIR")).join("vendor");
    let protos: Vec<PathBuf> = PROTOS.iter().map(|p| vendor.join(p)).collect();
    for proto in &protos {
        println!("cargo:rerun-if-changed={}", proto.display());
    }

    let mut includes = vec![vendor.clone()];
    // Debian installs the well-known types next to protoc (/usr/include/google/protobuf);
    // protoc finds them itself, but name the directory too in case PROTOC points elsewhere.
    if let Some(dir) = well_known_include(&compiler) {
        includes.push(dir);
    }

    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(&compiler);
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_with_config(config, &protos, &includes)
        .unwrap_or_else(|e| {
            panic!(
                "compiling the vendored protos with {}: {e}",
                compiler.display()
            )
        });
}

/// `$PROTOC` if set, else the first `protoc` on `$PATH`.
fn find_protoc() -> Option<PathBuf> {
    if let Some(path) = env::var_os("PROTOC") {
        let path = PathBuf::from(path);
        return path.is_file().then_some(path);
    }
    env::split_paths(&env::var_os("PATH")?)
        .map(|dir| dir.join("protoc"))
        .find(|candidate| candidate.is_file())
}

/// The `include` directory beside `bin/protoc` holding `google/protobuf/descriptor.proto`.
fn well_known_include(protoc: &Path) -> Option<PathBuf> {
    let dir = protoc.parent()?.parent()?.join("include");
    dir.join("google/protobuf/descriptor.proto")
        .is_file()
        .then_some(dir)
}
