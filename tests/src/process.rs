//! Child processes of a test (control plane, node agent): output to a log file, stopped with
//! SIGTERM then SIGKILL when dropped, so a failing test leaves no process behind.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// How long a child gets to exit after SIGTERM before it is killed.
pub const STOP_GRACE: Duration = Duration::from_secs(15);

/// A child process that is stopped when dropped. Its stdout and stderr go to one log file.
#[derive(Debug)]
pub struct ChildProcess {
    name: String,
    command: Vec<std::ffi::OsString>,
    envs: Vec<(String, String)>,
    child: Child,
    log: PathBuf,
}

impl ChildProcess {
    /// Starts `program args...` with `envs`, appending its output to `log`.
    pub fn spawn(
        name: &str,
        command: Vec<std::ffi::OsString>,
        envs: Vec<(String, String)>,
        log: &Path,
    ) -> Result<Self> {
        let child = start(name, &command, &envs, log)?;
        Ok(Self {
            name: name.to_owned(),
            command,
            envs,
            child,
            log: log.to_owned(),
        })
    }

    #[must_use]
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    #[must_use]
    pub fn log(&self) -> &Path {
        &self.log
    }

    /// The last `lines` lines of the log.
    #[must_use]
    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.log, lines)
    }

    /// Fails, with the end of its log, if the process has exited.
    pub fn ensure_running(&mut self) -> Result<()> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => bail!(
                "{} exited ({status}); last lines of {}:\n{}",
                self.name,
                self.log.display(),
                self.log_tail(30)
            ),
            Err(err) => Err(err).with_context(|| format!("checking on {}", self.name)),
        }
    }

    /// SIGKILL, as a crash: the process gets no chance to clean up.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the same command again (after [`ChildProcess::kill9`] or
    /// [`ChildProcess::stop`]); the log continues.
    pub fn restart(&mut self) -> Result<()> {
        self.stop();
        self.child = start(&self.name, &self.command, &self.envs, &self.log)?;
        Ok(())
    }

    /// SIGTERM, up to [`STOP_GRACE`] to exit, then SIGKILL; reaps the process.
    pub fn stop(&mut self) {
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
        self.kill9();
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

fn start(
    name: &str,
    command: &[std::ffi::OsString],
    envs: &[(String, String)],
    log: &Path,
) -> Result<Child> {
    let (program, args) = command.split_first().context("an empty command")?;
    let out = File::options()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening {}", log.display()))?;
    let err = out.try_clone()?;
    Command::new(program)
        .args(args)
        .envs(envs.iter().map(|(k, v)| (k, v)))
        // Plain log lines in the file.
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .with_context(|| format!("starting {name} ({command:?})"))
}

/// The last `lines` lines of a file, for error messages.
#[must_use]
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
