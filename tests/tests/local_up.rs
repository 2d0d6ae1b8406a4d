//! `hack/local-up`, the README's first command: two instances side by side, each with its own
//! control plane, containerd and node in its own network namespace, each printing its
//! KUBECONFIG line, each running a pod that `kubectl apply` gives it, each stopping cleanly on
//! SIGTERM.

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
    /// After a failed assertion: SIGTERM, and whatever still runs of this instance a minute
    /// later is killed, so that a hanging instance cannot hang the test.
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
        let started = Instant::now();
        while matches!(self.child.try_wait(), Ok(None))
            && started.elapsed() < Duration::from_mins(1)
        {
            std::thread::sleep(Duration::from_millis(100));
        }
        let dir = self.dir.path().to_string_lossy().into_owned();
        let _ = Command::new("pkill").args(["-KILL", "-f", &dir]).status();
        let _ = self.child.kill();
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

/// Starts instance `index` (1, 2, ...) with settings of its own: state directory, runtime
/// directories, network namespace, pod CIDR, node link and cgroup.
fn start(index: u8, port: u16) -> Instance {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(repo_root().join("hack/local-up"))
        .env("FERROLET_LOCAL_DIR", dir.path().join("state"))
        .env("FERROLET_API_PORT", port.to_string())
        .env("FERROLET_PROFILE", "dev")
        .env("FERROLET_NODE_NAME", format!("local-{index}"))
        .env("FERROLET_RUN_DIR", dir.path().join("run"))
        .env("FERROLET_DATA_DIR", dir.path().join("data"))
        .env("FERROLET_NETNS", format!("ferrolet-lu{index}"))
        .env("FERROLET_NODE_LINK", format!("fl-lu{index}"))
        .env("FERROLET_POD_CIDR", format!("10.244.{}.0/24", 20 + index))
        .env(
            "FERROLET_NODE_SUBNET",
            format!("10.200.{}.0/30", 20 + index),
        )
        .env("FERROLET_CGROUP_PARENT", format!("ferrolet-lu{index}"))
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

/// `kubectl apply` of a busybox pod; waits until it runs and returns its IP as
/// `kubectl get pods -o wide` shows it.
fn run_pod(kubeconfig: &Path, dir: &Path) -> String {
    let manifest = dir.join("pod.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: hello\nspec:\n  \
         terminationGracePeriodSeconds: 1\n  containers:\n  - name: main\n    \
         image: busybox:1.35\n    command: [sleep, \"3600\"]\n",
    )
    .unwrap();
    kubectl(kubeconfig, &["apply", "-f", &manifest.to_string_lossy()]);
    kubectl(
        kubeconfig,
        &[
            "wait",
            "--for=jsonpath={.status.phase}=Running",
            "pod/hello",
            "--timeout=120s",
        ],
    );
    let wide = kubectl(kubeconfig, &["get", "pods", "-o", "wide", "--no-headers"]);
    // NAME READY STATUS RESTARTS AGE IP NODE ...
    let fields: Vec<&str> = wide.split_whitespace().collect();
    assert_eq!(fields.get(2), Some(&"Running"), "{wide}");
    let ip = fields
        .iter()
        .find(|f| f.parse::<std::net::Ipv4Addr>().is_ok())
        .unwrap_or_else(|| panic!("no IP in {wide}"));
    (*ip).to_owned()
}

fn assert_stops_cleanly(instance: &mut Instance, index: u8) {
    let pid = Pid::from_raw(i32::try_from(instance.child.id()).unwrap());
    kill(pid, Signal::SIGTERM).unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = instance.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_mins(1),
            "local-up did not stop"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "{status:?}");
    let dir = instance.dir.path().to_string_lossy().into_owned();
    let left = Command::new("pgrep").args(["-f", &dir]).output().unwrap();
    assert!(
        left.stdout.is_empty(),
        "processes left: {}",
        String::from_utf8_lossy(&left.stdout)
    );
    let mounts: Vec<String> = ferrolet_tests::mount_points()
        .into_iter()
        .filter(|m| m.starts_with(&dir))
        .collect();
    assert!(mounts.is_empty(), "mounts left: {mounts:?}");
    let netns = Command::new("ip").args(["netns", "list"]).output().unwrap();
    assert!(
        !String::from_utf8_lossy(&netns.stdout).contains(&format!("ferrolet-lu{index}")),
        "network namespace left"
    );
    let link = Command::new("ip")
        .args(["link", "show", &format!("fl-lu{index}")])
        .output()
        .unwrap();
    assert!(!link.status.success(), "link fl-lu{index} left");
    assert!(
        !Path::new(&format!("/sys/fs/cgroup/memory/ferrolet-lu{index}")).exists(),
        "cgroup left"
    );
}

#[test]
fn two_local_clusters_side_by_side() {
    let (port_a, port_b) = (free_port(), free_port());
    let mut a = start(1, port_a);
    let mut b = start(2, port_b);
    assert!(a.kubeconfig.is_absolute());
    assert!(
        a.kubeconfig
            .starts_with(a.dir.path().canonicalize().unwrap())
    );
    assert_ne!(a.kubeconfig, b.kubeconfig);
    // Each is its own cluster with its own node.
    kubectl(&a.kubeconfig, &["create", "namespace", "only-in-a"]);
    assert!(kubectl(&a.kubeconfig, &["get", "namespaces"]).contains("only-in-a"));
    assert!(!kubectl(&b.kubeconfig, &["get", "namespaces"]).contains("only-in-a"));
    assert!(kubectl(&b.kubeconfig, &["cluster-info"]).contains(&port_b.to_string()));
    let nodes = kubectl(&a.kubeconfig, &["get", "nodes", "--no-headers"]);
    assert!(
        nodes.starts_with("local-1 ") && nodes.contains(" Ready "),
        "{nodes}"
    );

    // A pod applied with kubectl runs, and its IP answers from the host.
    let ip_a = run_pod(&a.kubeconfig, a.dir.path());
    let ip_b = run_pod(&b.kubeconfig, b.dir.path());
    assert!(
        ip_a.starts_with("10.244.21.") && ip_b.starts_with("10.244.22."),
        "{ip_a} {ip_b}"
    );
    for ip in [&ip_a, &ip_b] {
        let ping = Command::new("ping")
            .args(["-c", "1", "-W", "3", ip])
            .output()
            .unwrap();
        assert!(ping.status.success(), "ping {ip}");
    }

    // kubectl exec and logs reach the node's kubelet server through the API server.
    let hostname = kubectl(
        &a.kubeconfig,
        &["exec", "hello", "--", "cat", "/etc/hostname"],
    );
    assert_eq!(hostname.trim(), "hello");
    kubectl(&a.kubeconfig, &["logs", "hello"]);

    // SIGTERM stops everything each started; the other keeps running until its own turn.
    assert_stops_cleanly(&mut a, 1);
    assert!(kubectl(&b.kubeconfig, &["get", "pods"]).contains("Running"));
    assert_stops_cleanly(&mut b, 2);
}
