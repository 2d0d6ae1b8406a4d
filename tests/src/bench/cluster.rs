//! The processes one run needs: etcd (for the etcd backend) and `ferrolet control-plane`,
//! each in its own temporary directory. Both are stopped (SIGTERM, then SIGKILL) and their
//! directories removed when dropped, so a failed run, a panic or an interrupt leaves
//! nothing behind.

use std::fmt;
use std::fs::File;
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
pub use ferrolet_tests::measure::ProcessUsage;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tempfile::TempDir;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// How long etcd and the control plane get to become ready.
const START_TIMEOUT: Duration = Duration::from_mins(1);
/// How long a child gets to exit after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// The store behind the control plane.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Backend {
    /// The embedded store in the control plane's data directory (the default).
    Embedded,
    /// etcd through `--etcd-servers`.
    Etcd,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Embedded => "embedded",
            Backend::Etcd => "etcd",
        })
    }
}

/// A child process that is stopped when dropped. Its stdout and stderr go to files.
#[derive(Debug)]
struct ChildProcess {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl ChildProcess {
    /// Starts `command` in its own process group, so that a Ctrl-C in the terminal reaches
    /// only the bench, which then stops its children in order.
    fn spawn(name: &'static str, mut command: Command, stdout: &Path, log: &Path) -> Result<Self> {
        let out = File::create(stdout).with_context(|| format!("creating {}", stdout.display()))?;
        let err = File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting {name} ({command:?})"))?;
        Ok(Self {
            name,
            child,
            log: log.to_owned(),
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fails, with the end of its log, if the process has exited.
    fn ensure_running(&mut self) -> Result<()> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => bail!(
                "{} exited ({status}); last lines of {}:\n{}",
                self.name,
                self.log.display(),
                tail(&self.log, 20)
            ),
            Err(err) => Err(err).with_context(|| format!("checking on {}", self.name)),
        }
    }

    fn usage(&self) -> Result<ProcessUsage> {
        ProcessUsage::of(&self.pid().to_string()).with_context(|| format!("usage of {}", self.name))
    }

    /// SIGTERM, up to [`STOP_GRACE`] to exit, then SIGKILL; reaps the process.
    fn stop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!(
            "{} did not stop within {STOP_GRACE:?}; killing it",
            self.name
        );
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The last `lines` lines of a file, for error messages.
fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A loopback port that was free a moment ago.
fn free_port() -> Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

/// A single-member etcd on loopback ports with a temporary data directory.
#[derive(Debug)]
pub struct Etcd {
    // Declared before the directory: fields drop in order, so the process stops first.
    process: ChildProcess,
    /// The client URL, for `--etcd-servers`.
    pub endpoint: String,
    dir: TempDir,
}

impl Etcd {
    /// Starts `binary` under `parent` and waits until `/health` says so.
    pub async fn start(binary: &Path, parent: &Path) -> Result<Self> {
        if !binary.exists() {
            bail!(
                "{} is missing: the etcd backend needs Debian's etcd (run hack/install-deps as root)",
                binary.display()
            );
        }
        let dir = tempfile::Builder::new()
            .prefix("etcd-")
            .tempdir_in(parent)
            .with_context(|| format!("creating a directory under {}", parent.display()))?;
        let (client_port, peer_port) = (free_port()?, free_port()?);
        let endpoint = format!("http://127.0.0.1:{client_port}");
        let peer = format!("http://127.0.0.1:{peer_port}");
        let mut command = Command::new(binary);
        command
            .arg("--name=bench")
            .arg(format!("--data-dir={}", dir.path().join("data").display()))
            .arg(format!("--listen-client-urls={endpoint}"))
            .arg(format!("--advertise-client-urls={endpoint}"))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster=bench={peer}"))
            .arg("--logger=zap")
            .arg("--log-level=warn");
        let process = ChildProcess::spawn(
            "etcd",
            command,
            &dir.path().join("stdout"),
            &dir.path().join("etcd.log"),
        )?;
        let mut etcd = Self {
            process,
            endpoint,
            dir,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            etcd.process.ensure_running()?;
            if health(client_port).await {
                return Ok(etcd);
            }
            if Instant::now() > deadline {
                bail!(
                    "etcd did not become healthy within {START_TIMEOUT:?}; last lines of its log:\n{}",
                    tail(&etcd.process.log, 20)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn usage(&self) -> Result<ProcessUsage> {
        self.process.usage()
    }

    /// Where etcd keeps its data and log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// Whether etcd on `port` answers `/health` with `"health":"true"`.
async fn health(port: u16) -> bool {
    let probe = async {
        let mut stream = tokio::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port)).await?;
        stream
            .write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .await?;
        let mut response = String::new();
        stream.read_to_string(&mut response).await?;
        Ok::<_, std::io::Error>(response.contains(r#""health":"true""#))
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(2), probe).await,
        Ok(Ok(true))
    )
}

/// `ferrolet control-plane` on a free loopback port with a temporary data directory.
#[derive(Debug)]
pub struct ControlPlane {
    // Declared before the directory: fields drop in order, so the process stops first.
    process: ChildProcess,
    /// The admin kubeconfig the control plane wrote.
    pub kubeconfig: PathBuf,
    dir: TempDir,
}

impl ControlPlane {
    /// Starts `ferrolet` under `parent` (on etcd when `etcd` is given) and waits until the
    /// admin kubeconfig exists and `/readyz` answers `ok`.
    pub async fn start(ferrolet: &Path, parent: &Path, etcd: Option<&Etcd>) -> Result<Self> {
        if !ferrolet.exists() {
            bail!(
                "{} is missing: build it with `cargo build --release --bin ferrolet` \
                 (hack/bench-controlplane does)",
                ferrolet.display()
            );
        }
        let dir = tempfile::Builder::new()
            .prefix("control-plane-")
            .tempdir_in(parent)
            .with_context(|| format!("creating a directory under {}", parent.display()))?;
        let mut command = Command::new(ferrolet);
        command
            .arg("control-plane")
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["--bind-address", "127.0.0.1", "--secure-port", "0"]);
        if let Some(etcd) = etcd {
            command.arg("--etcd-servers").arg(&etcd.endpoint);
        }
        // Plain log lines in the log file, at the default level a user runs with.
        command.env("NO_COLOR", "1");
        let stdout = dir.path().join("stdout");
        let process = ChildProcess::spawn(
            "the control plane",
            command,
            &stdout,
            &dir.path().join("control-plane.log"),
        )?;
        let mut control_plane = Self {
            process,
            kubeconfig: PathBuf::new(),
            dir,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        control_plane.kubeconfig = loop {
            control_plane.process.ensure_running()?;
            let printed = std::fs::read_to_string(&stdout).unwrap_or_default();
            if let Some(path) = printed
                .lines()
                .find_map(|l| l.strip_prefix("admin kubeconfig: "))
            {
                break PathBuf::from(path.trim());
            }
            if Instant::now() > deadline {
                bail!(
                    "the control plane printed no admin kubeconfig within {START_TIMEOUT:?}; \
                     last lines of its log:\n{}",
                    control_plane.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let client = control_plane.client().await?;
        loop {
            control_plane.process.ensure_running()?;
            let request = http::Request::get("/readyz").body(Vec::new())?;
            match client.request_text(request).await {
                Ok(body) if body.trim() == "ok" => return Ok(control_plane),
                outcome if Instant::now() > deadline => bail!(
                    "the API server was not ready within {START_TIMEOUT:?} ({outcome:?}); \
                     last lines of its log:\n{}",
                    control_plane.log_tail()
                ),
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// A client with the admin credentials. Its own connection pool; no retries, so the
    /// latencies are those of single requests.
    pub async fn client(&self) -> Result<kube::Client> {
        let kubeconfig = kube::config::Kubeconfig::read_from(&self.kubeconfig)
            .with_context(|| format!("reading {}", self.kubeconfig.display()))?;
        let mut config = kube::Config::from_custom_kubeconfig(
            kubeconfig,
            &kube::config::KubeConfigOptions::default(),
        )
        .await
        .context("loading the admin kubeconfig")?;
        config.default_retry = false;
        kube::Client::try_from(config).context("building a client")
    }

    pub fn usage(&self) -> Result<ProcessUsage> {
        self.process.usage()
    }

    /// Fails, with the end of its log, if the control plane has exited.
    pub fn ensure_running(&mut self) -> Result<()> {
        self.process.ensure_running()
    }

    /// The last lines of the control plane's log.
    pub fn log_tail(&self) -> String {
        tail(&self.process.log, 20)
    }

    /// The control plane's log file.
    pub fn log(&self) -> &Path {
        &self.process.log
    }

    /// Where the control plane keeps its data and log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}
