//! `hack/local-up`, the README's first command: two instances side by side, each printing
//! its KUBECONFIG line, each usable with kubectl, each stopping cleanly on SIGTERM.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

struct Instance {
    child: Child,
    kubeconfig: PathBuf,
    dir: tempfile::TempDir,
}

impl Drop for Instance {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
        let _ = self.child.wait();
    }
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start(port: u16) -> Instance {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(repo_root().join("hack/local-up"))
        .env("FERROLET_LOCAL_DIR", dir.path())
        .env("FERROLET_API_PORT", port.to_string())
        .env("FERROLET_PROFILE", "dev")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("run hack/local-up");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(path) = line.strip_prefix("KUBECONFIG=") {
                let _ = tx.send(PathBuf::from(path));
            }
        }
    });
    // Building ferrolet may take a while on a fresh machine.
    let kubeconfig = rx
        .recv_timeout(Duration::from_mins(15))
        .expect("hack/local-up printed no KUBECONFIG line");
    Instance {
        child,
        kubeconfig,
        dir,
    }
}

fn kubectl(kubeconfig: &Path, args: &[&str]) -> String {
    let out = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .expect("run kubectl");
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn two_local_clusters_side_by_side() {
    let (port_a, port_b) = (free_port(), free_port());
    let mut a = start(port_a);
    let b = start(port_b);
    assert!(a.kubeconfig.is_absolute());
    assert!(
        a.kubeconfig
            .starts_with(a.dir.path().canonicalize().unwrap())
    );
    assert_ne!(a.kubeconfig, b.kubeconfig);
    // Each is its own cluster: a namespace made in one is not in the other.
    let ns = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&a.kubeconfig)
        .args(["create", "namespace", "only-in-a"])
        .output()
        .unwrap();
    assert!(
        ns.status.success(),
        "{}",
        String::from_utf8_lossy(&ns.stderr)
    );
    assert!(kubectl(&a.kubeconfig, &["get", "namespaces"]).contains("only-in-a"));
    assert!(!kubectl(&b.kubeconfig, &["get", "namespaces"]).contains("only-in-a"));
    assert!(kubectl(&b.kubeconfig, &["cluster-info"]).contains(&port_b.to_string()));

    // SIGTERM stops it cleanly: exit status 0 and the port is free again.
    let pid = Pid::from_raw(i32::try_from(a.child.id()).unwrap());
    kill(pid, Signal::SIGTERM).unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = a.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "local-up did not stop"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "{status:?}");
    assert!(
        std::net::TcpListener::bind(("127.0.0.1", port_a)).is_ok(),
        "the API server still holds its port"
    );
    let left = Command::new("pgrep")
        .args(["-f", &a.dir.path().to_string_lossy()])
        .output()
        .unwrap();
    assert!(
        left.stdout.is_empty(),
        "processes left: {}",
        String::from_utf8_lossy(&left.stdout)
    );
}
