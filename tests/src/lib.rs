//! Support for ferrolet's integration tests: reaching the real components that `hack/test`
//! starts, and checking that a test left nothing behind on the host.
//!
//! A test whose prerequisite is missing fails with a message saying how to get it; it never
//! passes quietly.

use std::path::{Path, PathBuf};
use std::time::Duration;

pub mod cluster;
pub mod cri_bare;
pub mod cri_facts;
pub mod measure;
pub mod pods;
pub mod process;
pub mod suite;

use ferrolet_cri::{ConnectOptions, RemoteRuntime, RuntimeEndpoint};

/// How to get every prerequisite at once.
const HOW_TO_RUN: &str = "run the tests through hack/test, or start the services with \
     `hack/containerd start && hack/images && hack/registry start` and export the variables \
     hack/lib.sh sets";

/// The value of an environment variable that `hack/` sets, or a failure that says so.
#[must_use]
pub fn required_env(name: &str) -> String {
    match std::env::var(name) {
        Ok(value) if !value.is_empty() => value,
        _ => panic!("{name} is not set: {HOW_TO_RUN}"),
    }
}

/// The CRI endpoint of hack/containerd's containerd.
#[must_use]
pub fn containerd_endpoint() -> RuntimeEndpoint {
    let endpoint = required_env("FERROLET_CONTAINERD_ENDPOINT");
    RuntimeEndpoint::parse(&endpoint).expect("FERROLET_CONTAINERD_ENDPOINT")
}

/// A client connected to hack/containerd's containerd.
pub async fn containerd() -> RemoteRuntime {
    let endpoint = containerd_endpoint();
    let options = ConnectOptions {
        connect_timeout: Duration::from_secs(5),
        request_timeout: Duration::from_mins(1),
        ..ConnectOptions::default()
    };
    RemoteRuntime::connect(&endpoint, options)
        .await
        .unwrap_or_else(|err| panic!("{err}: is containerd running? {HOW_TO_RUN}"))
}

/// The network namespace the dev node (containerd and its pods) lives in.
#[must_use]
pub fn node_netns() -> String {
    required_env("FERROLET_NETNS")
}

/// The pod CIDR of the dev node's CNI bridge, as (network address, prefix length).
#[must_use]
pub fn pod_cidr() -> (std::net::Ipv4Addr, u8) {
    let cidr = required_env("FERROLET_POD_CIDR");
    let (net, len) = cidr.split_once('/').expect("FERROLET_POD_CIDR is a CIDR");
    (
        net.parse().expect("FERROLET_POD_CIDR address"),
        len.parse().expect("FERROLET_POD_CIDR prefix length"),
    )
}

/// Whether `ip` lies in the CIDR `(net, len)`.
#[must_use]
pub fn cidr_contains((net, len): (std::net::Ipv4Addr, u8), ip: std::net::Ipv4Addr) -> bool {
    let mask = if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len))
    };
    u32::from(ip) & mask == u32::from(net) & mask
}

/// The loopback registry of `hack/registry`, as `host:port`.
#[must_use]
pub fn registry() -> String {
    format!("127.0.0.1:{}", required_env("FERROLET_REGISTRY_PORT"))
}

/// Names of the network links in a network namespace.
#[must_use]
pub fn links_in_netns(netns: &str) -> Vec<String> {
    let output = std::process::Command::new("ip")
        .args(["-n", netns, "-o", "link", "show"])
        .output()
        .expect("run ip (package iproute2: hack/install-deps)");
    assert!(
        output.status.success(),
        "ip -n {netns} link show: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split(": ").nth(1))
        .map(|name| name.split('@').next().unwrap_or(name).to_owned())
        .collect()
}

/// The mount points of this mount namespace.
#[must_use]
pub fn mount_points() -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .expect("read /proc/self/mountinfo")
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(str::to_owned)
        .collect()
}

/// Whether a process exists (a zombie awaiting its parent counts as gone).
#[must_use]
pub fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z')),
        Err(_) => false,
    }
}

/// A cgroup parent of its own for one test's pods (`/$FERROLET_CGROUP_PARENT/<test>-<token>`),
/// so the test can prove that its pods left no cgroup or process behind.
#[derive(Debug)]
pub struct CgroupParent {
    name: String,
}

impl CgroupParent {
    #[must_use]
    pub fn new(test: &str) -> Self {
        CgroupParent {
            name: format!(
                "/{}/{test}-{}",
                required_env("FERROLET_CGROUP_PARENT"),
                ferrolet_cri::contract::unique_token()
            ),
        }
    }

    /// A cgroup parent that already exists (or will), at `path` relative to each hierarchy,
    /// such as a test node's cgroup root, so that it can be removed.
    #[must_use]
    pub fn at(path: &str) -> Self {
        CgroupParent {
            name: format!("/{}", path.trim_start_matches('/')),
        }
    }

    /// The path to put in `LinuxPodSandboxConfig.cgroup_parent`.
    #[must_use]
    pub fn path(&self) -> &str {
        &self.name
    }

    fn dirs(&self) -> Vec<PathBuf> {
        let relative = self.name.trim_start_matches('/');
        let mut dirs = Vec::new();
        if let Ok(hierarchies) = std::fs::read_dir("/sys/fs/cgroup") {
            for hierarchy in hierarchies.flatten() {
                let dir = hierarchy.path().join(relative);
                if dir.is_dir() {
                    dirs.push(dir);
                }
            }
        }
        dirs
    }

    /// Removes the parent from every cgroup hierarchy. Fails, naming the cgroup, if a pod's
    /// cgroup or a process is still in it: that is a leak.
    pub fn remove(&self) -> Result<(), String> {
        let mut problems = Vec::new();
        for dir in self.dirs() {
            if let Err(err) = remove_cgroup_tree(&dir) {
                problems.push(format!("{}: {err}", dir.display()));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }
}

impl Drop for CgroupParent {
    fn drop(&mut self) {
        // Best effort for tests that failed before calling remove().
        let _ = self.remove();
    }
}

fn remove_cgroup_tree(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            remove_cgroup_tree(&entry.path())?;
        }
    }
    std::fs::remove_dir(dir)
}

/// Polls `check` every 100 ms until it returns `Some`, or panics after `limit` with `what`.
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_membership() {
        let cidr = ("10.244.0.0".parse().unwrap(), 24);
        assert!(cidr_contains(cidr, "10.244.0.7".parse().unwrap()));
        assert!(!cidr_contains(cidr, "10.244.1.7".parse().unwrap()));
        assert!(cidr_contains(
            ("0.0.0.0".parse().unwrap(), 0),
            "1.2.3.4".parse().unwrap()
        ));
    }

    #[test]
    fn this_process_is_alive_and_a_bogus_pid_is_not() {
        assert!(process_alive(std::process::id()));
        assert!(!process_alive(u32::MAX - 1));
    }
}
