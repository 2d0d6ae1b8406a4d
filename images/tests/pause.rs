//! The pause program ends cleanly on the signals a runtime sends it.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

fn wait_for_exit(child: &mut std::process::Child, limit: Duration) -> std::process::ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            started.elapsed() < limit,
            "pause did not exit within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn exits_zero_on_sigterm_and_sigint() {
    for signal in [Signal::SIGTERM, Signal::SIGINT] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ferrolet-pause"))
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        // Give it time to block its signals; a signal before that kills it by default,
        // which the assertion below would report.
        std::thread::sleep(Duration::from_millis(200));
        assert!(
            child.try_wait().unwrap().is_none(),
            "pause exited by itself"
        );
        kill(Pid::from_raw(i32::try_from(child.id()).unwrap()), signal).unwrap();
        let status = wait_for_exit(&mut child, Duration::from_secs(5));
        assert_eq!(status.code(), Some(0), "{signal}: {status:?}");
    }
}

#[test]
fn ignores_sigchld_and_keeps_running() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferrolet-pause"))
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let pid = Pid::from_raw(i32::try_from(child.id()).unwrap());
    kill(pid, Signal::SIGCHLD).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        child.try_wait().unwrap().is_none(),
        "SIGCHLD must not end pause"
    );
    kill(pid, Signal::SIGKILL).unwrap();
    child.wait().unwrap();
}
