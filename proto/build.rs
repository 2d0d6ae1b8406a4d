//! Generates the CSI, kubelet plugin-registration and device-plugin bindings from the vendored
//! `.proto` files under `vendor/` (see README.md). CRI and gRPC health come from crates.
//! Compiles the vendored Kubernetes API schemas (`vendor/k8s.io/{api,apimachinery}`) into one
//! encoded `FileDescriptorSet`, `$OUT_DIR/kubernetes.fds`; no Rust types are generated for them.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Vendored protos, relative to `vendor/` (each keeps its upstream import path).
const PROTOS: &[&str] = &[
    "github.com/container-storage-interface/spec/csi.proto",
    "k8s.io/kubelet/pkg/apis/pluginregistration/v1/api.proto",
    "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1/api.proto",
];

/// Kubernetes API schemas (Kubernetes v1.33.1), relative to `vendor/`; their imports are
/// vendored too and land in the descriptor set through `--include_imports`.
const KUBERNETES_PROTOS: &[&str] = &[
    "k8s.io/api/core/v1/generated.proto",
    "k8s.io/api/apps/v1/generated.proto",
    "k8s.io/api/authentication/v1/generated.proto",
    "k8s.io/api/authorization/v1/generated.proto",
    "k8s.io/api/autoscaling/v1/generated.proto",
    "k8s.io/api/batch/v1/generated.proto",
    "k8s.io/api/certificates/v1/generated.proto",
    "k8s.io/api/coordination/v1/generated.proto",
    "k8s.io/api/discovery/v1/generated.proto",
    "k8s.io/api/events/v1/generated.proto",
    "k8s.io/api/networking/v1/generated.proto",
    "k8s.io/api/node/v1/generated.proto",
    "k8s.io/api/policy/v1/generated.proto",
    "k8s.io/api/rbac/v1/generated.proto",
    "k8s.io/api/scheduling/v1/generated.proto",
    "k8s.io/api/storage/v1/generated.proto",
    "k8s.io/apimachinery/pkg/api/resource/generated.proto",
    "k8s.io/apimachinery/pkg/apis/meta/v1/generated.proto",
    "k8s.io/apimachinery/pkg/runtime/generated.proto",
    "k8s.io/apimachinery/pkg/runtime/schema/generated.proto",
    "k8s.io/apimachinery/pkg/util/intstr/generated.proto",
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

    // CSI servers implement only the calls they advertise; generated default stubs answer
    // the rest with Unimplemented, as the spec requires. The other services keep required
    // methods (and their streaming associated types).
    let (csi, others): (Vec<PathBuf>, Vec<PathBuf>) =
        protos.into_iter().partition(|p| p.ends_with("csi.proto"));
    for (set, default_stubs) in [(csi, true), (others, false)] {
        let mut config = tonic_prost_build::Config::new();
        config.protoc_executable(&compiler);
        tonic_prost_build::configure()
            .build_client(true)
            .build_server(true)
            .generate_default_stubs(default_stubs)
            .compile_with_config(config, &set, &includes)
            .unwrap_or_else(|e| {
                panic!(
                    "compiling the vendored protos with {}: {e}",
                    compiler.display()
                )
            });
    }

    compile_kubernetes_descriptors(&compiler, &vendor);
}

/// Runs protoc over the Kubernetes API schemas and writes `$OUT_DIR/kubernetes.fds`.
fn compile_kubernetes_descriptors(compiler: &Path, vendor: &Path) {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR for build scripts"))
        .join("kubernetes.fds");
    for proto in KUBERNETES_PROTOS {
        println!("cargo:rerun-if-changed={}", vendor.join(proto).display());
    }
    let output = Command::new(compiler)
        .arg(format!("--proto_path={}", vendor.display()))
        .arg(format!("--descriptor_set_out={}", out.display()))
        .arg("--include_imports")
        .args(KUBERNETES_PROTOS.iter().map(|p| vendor.join(p)))
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", compiler.display()));
    // protoc warns about imports upstream declares but does not use; only failures matter.
    assert!(
        output.status.success(),
        "compiling the Kubernetes API protos with {} failed ({}):\n{}",
        compiler.display(),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
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
