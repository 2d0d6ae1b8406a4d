//! A control plane for one test: started in-process on a free port with its own data
//! directory, driven by the real kubectl, stopped at the end.

#![allow(
    dead_code,
    reason = "each test binary uses a different part of the harness"
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use ferrolet_controlplane::run::{ControlPlane, ControlPlaneConfig};
use tokio_util::sync::CancellationToken;

pub struct Cluster {
    pub control_plane: Option<ControlPlane>,
    pub kubeconfig: PathBuf,
    pub dir: tempfile::TempDir,
}

/// The real kubectl; a test fails with a hint when it is missing.
pub fn kubectl_path() -> &'static str {
    for candidate in ["/usr/bin/kubectl", "/usr/local/bin/kubectl"] {
        if Path::new(candidate).exists() {
            return candidate;
        }
    }
    panic!("kubectl is not installed: run hack/install-deps");
}

impl Cluster {
    pub async fn start() -> Cluster {
        Self::start_with(|_| {}).await
    }

    /// A cluster with settings changed by `configure`.
    pub async fn start_with(configure: impl FnOnce(&mut ControlPlaneConfig)) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let mut config = ControlPlaneConfig::new(dir.path().join("data"));
        config.secure_port = 0;
        config.compaction_interval = Duration::from_hours(1);
        configure(&mut config);
        let control_plane = ControlPlane::start(config, CancellationToken::new())
            .await
            .unwrap();
        Cluster {
            kubeconfig: control_plane.kubeconfig.clone(),
            control_plane: Some(control_plane),
            dir,
        }
    }

    /// Runs kubectl against this cluster (blocking, off the runtime's threads).
    pub async fn kubectl(&self, args: &[&str]) -> Output {
        let kubeconfig = self.kubeconfig.clone();
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        tokio::task::spawn_blocking(move || {
            Command::new(kubectl_path())
                .arg("--kubeconfig")
                .arg(&kubeconfig)
                .args(&args)
                .output()
                .expect("run kubectl")
        })
        .await
        .unwrap()
    }

    /// Runs kubectl and returns stdout, failing the test with stderr if it fails.
    pub async fn ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args).await;
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Writes a manifest into the test's directory and returns its path.
    pub fn manifest(&self, name: &str, yaml: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, yaml).unwrap();
        path.to_string_lossy().into_owned()
    }

    /// A kube-rs client with the admin credentials.
    pub async fn client(&self) -> kube::Client {
        let kubeconfig = kube::config::Kubeconfig::read_from(&self.kubeconfig).unwrap();
        let config = kube::Config::from_custom_kubeconfig(
            kubeconfig,
            &kube::config::KubeConfigOptions::default(),
        )
        .await
        .unwrap();
        kube::Client::try_from(config).unwrap()
    }

    pub async fn stop(mut self) {
        if let Some(cp) = self.control_plane.take() {
            cp.stop().await;
        }
    }
}
