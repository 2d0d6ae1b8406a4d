//! `ferrolet-pause`: the first process of every pod sandbox.
//!
//! It holds the pod's namespaces open, reaps the orphans that end up as its children when
//! the pod shares one PID namespace, and exits 0 on SIGINT or SIGTERM. Signals are taken
//! with `sigwait` on a blocked set: blocked signals are queued even for PID 1 of a PID
//! namespace, which would otherwise drop signals it has no handler for.

use nix::sys::signal::{SigSet, Signal};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};

fn main() {
    if std::env::args().nth(1).as_deref() == Some("-v") {
        println!("ferrolet-pause {}", env!("CARGO_PKG_VERSION"));
        return;
    }
    let mut signals = SigSet::empty();
    for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGCHLD] {
        signals.add(signal);
    }
    if let Err(err) = signals.thread_block() {
        eprintln!("ferrolet-pause: block signals: {err}");
        std::process::exit(1);
    }
    loop {
        match signals.wait() {
            Ok(Signal::SIGINT | Signal::SIGTERM) => std::process::exit(0),
            Ok(_) => reap_children(),
            Err(err) => {
                eprintln!("ferrolet-pause: wait for signals: {err}");
                std::process::exit(2);
            }
        }
    }
}

fn reap_children() {
    // One SIGCHLD may stand for several exits.
    while let Ok(status) = waitpid(None, Some(WaitPidFlag::WNOHANG)) {
        if status == WaitStatus::StillAlive {
            break;
        }
    }
}
