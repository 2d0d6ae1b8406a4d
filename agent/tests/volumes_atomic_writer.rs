//! The atomic writer on its own: readers see a whole old or a whole new set of files.

use std::collections::BTreeMap;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ferrolet_agent::volumes::atomic_writer::{AtomicWriter, FileProjection, Payload};

fn payload(version: usize) -> Payload {
    (0..8)
        .map(|i| {
            (
                format!("key{i}"),
                FileProjection {
                    data: format!("v{version}").into_bytes(),
                    mode: 0o644,
                },
            )
        })
        .collect::<BTreeMap<_, _>>()
}

/// Reads every key through one descriptor of `..data`, as a consistent reader does.
fn read_snapshot(dir: &std::path::Path) -> Option<Vec<String>> {
    let data = nix::fcntl::open(
        &dir.join("..data"),
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_DIRECTORY,
        nix::sys::stat::Mode::empty(),
    )
    .ok()?;
    let mut values = Vec::new();
    for i in 0..8 {
        let fd = nix::fcntl::openat(
            data.as_fd(),
            format!("key{i}").as_str(),
            nix::fcntl::OFlag::O_RDONLY,
            nix::sys::stat::Mode::empty(),
        )
        .ok()?;
        values.push(std::io::read_to_string(std::fs::File::from(fd)).ok()?);
    }
    Some(values)
}

#[test]
fn readers_see_either_the_old_or_the_new_set() {
    let dir = tempfile::tempdir().unwrap();
    let writer = AtomicWriter::new(dir.path());
    assert!(writer.write(&payload(0), None).unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let stop = stop.clone();
        let path = dir.path().to_owned();
        std::thread::spawn(move || {
            let mut seen = 0;
            while !stop.load(Ordering::SeqCst) {
                if let Some(values) = read_snapshot(&path) {
                    assert!(
                        values.iter().all(|v| *v == values[0]),
                        "mixed set: {values:?}"
                    );
                    seen += 1;
                }
                // Through the user-visible links, each file is whole.
                if let Ok(value) = std::fs::read_to_string(path.join("key3")) {
                    assert!(
                        value.starts_with('v') && value.len() > 1,
                        "torn file {value:?}"
                    );
                }
            }
            seen
        })
    };
    for version in 1..300 {
        assert!(writer.write(&payload(version), None).unwrap());
    }
    stop.store(true, Ordering::SeqCst);
    let seen = reader.join().unwrap();
    assert!(seen > 0, "the reader saw no complete set");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("key0")).unwrap(),
        "v299"
    );
}

#[test]
fn data_link_swaps_and_old_directories_go() {
    let dir = tempfile::tempdir().unwrap();
    let writer = AtomicWriter::new(dir.path());
    assert!(writer.write(&payload(1), None).unwrap());
    let first = std::fs::read_link(dir.path().join("..data")).unwrap();
    assert!(
        !writer.write(&payload(1), None).unwrap(),
        "unchanged: no swap"
    );
    assert_eq!(
        std::fs::read_link(dir.path().join("..data")).unwrap(),
        first
    );
    // A leftover of an interrupted write is removed with the old directory.
    std::fs::create_dir(dir.path().join("..2001_01_01_00_00_00.000000001")).unwrap();
    assert!(writer.write(&payload(2), None).unwrap());
    let second = std::fs::read_link(dir.path().join("..data")).unwrap();
    assert_ne!(first, second);
    let hidden: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".."))
        .collect();
    assert_eq!(
        hidden.len(),
        2,
        "only ..data and the current directory: {hidden:?}"
    );
    assert!(!dir.path().join("..data_tmp").exists());
}

#[test]
fn rejects_paths_outside_the_volume() {
    let dir = tempfile::tempdir().unwrap();
    let writer = AtomicWriter::new(dir.path());
    for bad in ["../x", "/etc/x", "..data", "a/../../b"] {
        let mut p = Payload::new();
        p.insert(
            bad.to_owned(),
            FileProjection {
                data: vec![],
                mode: 0o644,
            },
        );
        assert!(writer.write(&p, None).is_err(), "{bad} accepted");
    }
}
