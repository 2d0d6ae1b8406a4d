//! What the node status says about the machine: CPUs, memory, the root filesystem, PIDs and
//! the machine's identity, read from `/proc`, `/sys`, `statvfs` and `uname` as cAdvisor reads
//! them for the kubelet.
//!
//! [`HostInfo`] is the boundary: [`LinuxHost`] reads the real machine, [`StaticHost`] answers
//! with a fixed [`HostSnapshot`] for tests.

use std::path::{Path, PathBuf};

/// One reading of the machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSnapshot {
    /// Online CPUs.
    pub num_cpus: u32,
    /// `MemTotal` of `/proc/meminfo`, in bytes.
    pub memory_total_bytes: u64,
    /// `MemAvailable` of `/proc/meminfo`, in bytes.
    pub memory_available_bytes: u64,
    /// Size of the filesystem holding the kubelet's root directory, in bytes.
    pub root_fs_capacity_bytes: u64,
    /// Bytes of that filesystem available to unprivileged users.
    pub root_fs_available_bytes: u64,
    /// `/proc/sys/kernel/pid_max`.
    pub pid_max: u64,
    /// Processes (threads) that exist now.
    pub running_processes: u64,
    /// `/etc/machine-id` (or dbus's copy), empty when there is none.
    pub machine_id: String,
    /// `/sys/class/dmi/id/product_uuid`, empty when it cannot be read (it needs root).
    pub system_uuid: String,
    /// `/proc/sys/kernel/random/boot_id`.
    pub boot_id: String,
    /// The kernel release, as `uname -r`.
    pub kernel_version: String,
    /// `PRETTY_NAME` of `/etc/os-release`.
    pub os_image: String,
    /// The architecture in Go's `GOARCH` names (`amd64`, `arm64`).
    pub architecture: String,
}

/// Reads the machine's facts and usage.
pub trait HostInfo: Send + Sync {
    /// A fresh reading.
    fn snapshot(&self) -> Result<HostSnapshot, HostError>;
}

/// A machine fact that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// A file could not be read.
    #[error("read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file did not have the expected content.
    #[error("parse {}: {reason}", path.display())]
    Parse { path: PathBuf, reason: String },
    /// `statvfs` of the root directory failed.
    #[error("statvfs {}: {source}", path.display())]
    Statvfs {
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
}

/// The real machine, through the Linux interfaces.
#[derive(Debug, Clone)]
pub struct LinuxHost {
    root_dir: PathBuf,
}

impl LinuxHost {
    /// Reads the machine; `root_dir` is the kubelet's root directory (`/var/lib/kubelet`),
    /// whose filesystem is the node's ephemeral storage (its nearest existing ancestor while
    /// it does not exist yet).
    #[must_use]
    pub fn new(root_dir: impl Into<PathBuf>) -> Self {
        LinuxHost {
            root_dir: root_dir.into(),
        }
    }
}

fn read(path: &str) -> Result<String, HostError> {
    std::fs::read_to_string(path).map_err(|source| HostError::Read {
        path: path.into(),
        source,
    })
}

fn parse_error(path: &str, reason: impl Into<String>) -> HostError {
    HostError::Parse {
        path: path.into(),
        reason: reason.into(),
    }
}

impl HostInfo for LinuxHost {
    #[allow(
        clippy::useless_conversion,
        reason = "statvfs counts are u32 on 32-bit targets"
    )]
    fn snapshot(&self) -> Result<HostSnapshot, HostError> {
        const MEMINFO: &str = "/proc/meminfo";
        const CPU_ONLINE: &str = "/sys/devices/system/cpu/online";
        const PID_MAX: &str = "/proc/sys/kernel/pid_max";
        const LOADAVG: &str = "/proc/loadavg";

        let (memory_total_bytes, memory_available_bytes) =
            parse_meminfo(&read(MEMINFO)?).map_err(|r| parse_error(MEMINFO, r))?;
        let num_cpus = match std::fs::read_to_string(CPU_ONLINE) {
            Ok(text) => parse_cpu_list(&text).map_err(|r| parse_error(CPU_ONLINE, r))?,
            // Without sysfs (some sandboxes), the CPUs this process may run on.
            Err(_) => std::thread::available_parallelism()
                .map_or(1, |n| u32::try_from(n.get()).unwrap_or(u32::MAX)),
        };
        let fs_path = existing_ancestor(&self.root_dir);
        let fs = nix::sys::statvfs::statvfs(fs_path).map_err(|source| HostError::Statvfs {
            path: fs_path.to_owned(),
            source,
        })?;
        let fragment = u64::from(fs.fragment_size());
        let pid_max = read(PID_MAX)?
            .trim()
            .parse()
            .map_err(|_| parse_error(PID_MAX, "not a number"))?;
        let running_processes =
            parse_loadavg_processes(&read(LOADAVG)?).map_err(|r| parse_error(LOADAVG, r))?;
        let os_image = std::fs::read_to_string("/etc/os-release")
            .ok()
            .and_then(|text| parse_os_release_pretty_name(&text))
            .unwrap_or_else(|| "Linux".to_owned());
        Ok(HostSnapshot {
            num_cpus,
            memory_total_bytes,
            memory_available_bytes,
            root_fs_capacity_bytes: u64::from(fs.blocks()).saturating_mul(fragment),
            root_fs_available_bytes: u64::from(fs.blocks_available()).saturating_mul(fragment),
            pid_max,
            running_processes,
            // cAdvisor's places for it; some containers have neither.
            machine_id: ["/etc/machine-id", "/var/lib/dbus/machine-id"]
                .iter()
                .find_map(|p| std::fs::read_to_string(p).ok())
                .map(|s| s.trim().to_owned())
                .unwrap_or_default(),
            system_uuid: std::fs::read_to_string("/sys/class/dmi/id/product_uuid")
                .map(|s| s.trim().to_owned())
                .unwrap_or_default(),
            boot_id: read("/proc/sys/kernel/random/boot_id")?.trim().to_owned(),
            kernel_version: nix::sys::utsname::uname()
                .map(|u| u.release().to_string_lossy().into_owned())
                .unwrap_or_default(),
            os_image,
            architecture: go_arch().to_owned(),
        })
    }
}

fn existing_ancestor(path: &Path) -> &Path {
    path.ancestors()
        .find(|p| p.exists())
        .unwrap_or_else(|| Path::new("/"))
}

/// A machine that always reads the same: for tests, and for callers that measured it already.
#[derive(Debug, Clone)]
pub struct StaticHost(pub HostSnapshot);

impl HostInfo for StaticHost {
    fn snapshot(&self) -> Result<HostSnapshot, HostError> {
        Ok(self.0.clone())
    }
}

/// This build's architecture as Go's `GOARCH` names it, which is what the
/// `kubernetes.io/arch` label and `nodeInfo.architecture` carry.
#[must_use]
pub fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
        "loongarch64" => "loong64",
        other => other,
    }
}

/// `MemTotal` and `MemAvailable` of `/proc/meminfo`, in bytes.
pub fn parse_meminfo(text: &str) -> Result<(u64, u64), String> {
    let field = |name: &str| -> Result<u64, String> {
        let line = text
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .ok_or_else(|| format!("no {name}"))?;
        let mut parts = line.split_whitespace();
        let value: u64 = parts
            .next()
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("{name} is not a number"))?;
        match parts.next() {
            Some("kB") => Ok(value.saturating_mul(1024)),
            None => Ok(value),
            Some(unit) => Err(format!("{name} has unit {unit:?}")),
        }
    };
    Ok((field("MemTotal")?, field("MemAvailable")?))
}

/// The number of CPUs in a sysfs CPU list such as `0-3,6,8-9`.
pub fn parse_cpu_list(text: &str) -> Result<u32, String> {
    let mut count = 0u32;
    for range in text.trim().split(',').filter(|r| !r.is_empty()) {
        let bad = || format!("invalid CPU list {:?}", text.trim());
        let (first, last) = match range.split_once('-') {
            Some((a, b)) => (a.parse::<u32>(), b.parse::<u32>()),
            None => (range.parse::<u32>(), range.parse::<u32>()),
        };
        let (first, last) = (first.map_err(|_| bad())?, last.map_err(|_| bad())?);
        if last < first {
            return Err(bad());
        }
        count += last - first + 1;
    }
    if count == 0 {
        return Err("no online CPU".to_owned());
    }
    Ok(count)
}

/// The total of the `running/total` field of `/proc/loadavg`: every thread on the machine.
pub fn parse_loadavg_processes(text: &str) -> Result<u64, String> {
    text.split_whitespace()
        .nth(3)
        .and_then(|f| f.split_once('/'))
        .and_then(|(_, total)| total.parse().ok())
        .ok_or_else(|| format!("unexpected content {:?}", text.trim()))
}

/// `PRETTY_NAME` of an os-release file, unquoted.
#[must_use]
pub fn parse_os_release_pretty_name(text: &str) -> Option<String> {
    let value = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("PRETTY_NAME="))?;
    let value = value.trim();
    let unquoted = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
        .unwrap_or(value);
    Some(unquoted.replace("\\\"", "\"")).filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_in_bytes() {
        let text = "MemTotal:       16375316 kB\nMemFree:  1 kB\nMemAvailable:   8000000 kB\n";
        assert_eq!(
            parse_meminfo(text),
            Ok((16_375_316 * 1024, 8_000_000 * 1024))
        );
        assert!(parse_meminfo("MemFree: 1 kB\n").is_err());
    }

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0-1\n"), Ok(2));
        assert_eq!(parse_cpu_list("0-3,6,8-9"), Ok(7));
        assert_eq!(parse_cpu_list("0"), Ok(1));
        assert!(parse_cpu_list("3-1").is_err());
        assert!(parse_cpu_list("").is_err());
    }

    #[test]
    fn loadavg_total_threads() {
        assert_eq!(
            parse_loadavg_processes("0.10 0.20 0.30 2/345 6789\n"),
            Ok(345)
        );
        assert!(parse_loadavg_processes("garbage").is_err());
    }

    #[test]
    fn os_release_pretty_name() {
        let text = "NAME=\"Debian GNU/Linux\"\nPRETTY_NAME=\"Debian GNU/Linux 13 (trixie)\"\n";
        assert_eq!(
            parse_os_release_pretty_name(text).as_deref(),
            Some("Debian GNU/Linux 13 (trixie)")
        );
        assert_eq!(
            parse_os_release_pretty_name("PRETTY_NAME=Alpine").as_deref(),
            Some("Alpine")
        );
        assert_eq!(parse_os_release_pretty_name("NAME=x"), None);
    }

    #[test]
    fn reads_this_machine() {
        let host = LinuxHost::new("/var/lib/ferrolet-does-not-exist/kubelet");
        let s = host.snapshot().expect("read this machine");
        assert!(s.num_cpus >= 1);
        assert!(s.memory_total_bytes > 0 && s.memory_available_bytes <= s.memory_total_bytes);
        assert!(s.root_fs_capacity_bytes >= s.root_fs_available_bytes);
        assert!(s.pid_max > 0 && s.running_processes > 0);
        assert!(!s.boot_id.is_empty() && !s.kernel_version.is_empty());
        assert!(
            ["amd64", "arm64"].contains(&s.architecture.as_str()) || !s.architecture.is_empty()
        );
    }
}
