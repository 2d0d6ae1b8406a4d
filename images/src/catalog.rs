//! The images ferrolet builds locally, their names and contents.
//!
//! Names are the ones manifests and runtime configs already use, so that `image: busybox:1.35`
//! and containerd's `sandbox_image` resolve offline with the default pull policy.

use std::path::{Path, PathBuf};

use crate::layout::{Error, ImageRecipe, Result};

/// General-purpose shell image: busybox-static with every applet linked.
pub const BUSYBOX: &str = "docker.io/library/busybox:1.35";

/// The pod sandbox ("infra") image: ferrolet's static pause program. Named like the
/// kubelet's default `--pod-infra-container-image`.
pub const PAUSE: &str = "registry.k8s.io/pause:3.10";

/// The probe and hook target of the e2e tests (like the Kubernetes e2e tests' agnhost):
/// `ferrolet-testserver` as the entrypoint, with busybox's applets for exec probes and hooks.
pub const TEST_SERVER: &str = "docker.io/ferrolet/test-server:1";

/// Repository path under which `hack/registry` serves busybox (prefix it with the registry
/// host, e.g. `127.0.0.1:5000/`).
pub const REGISTRY_BUSYBOX: &str = "ferrolet/busybox:1.35";

/// An image that only `hack/registry` serves (under this repository path), never imported
/// into the runtime: pull tests pull and remove it. It must differ from every imported image,
/// because a runtime removes an image by id, with all its names.
pub const REGISTRY_ONLY: &str = "ferrolet/pull-test:1";

/// Where an image goes once built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    /// Imported into the runtime and pushed to the loopback registry.
    RuntimeAndRegistry,
    /// Only pushed to the loopback registry.
    RegistryOnly,
}

impl Destination {
    /// The word `ferrolet-images build` prints for it.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Destination::RuntimeAndRegistry => "runtime+registry",
            Destination::RegistryOnly => "registry",
        }
    }
}

/// `PATH` of images with a shell, as Docker Hub's images set it.
const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Files on this machine that the images are built from.
#[derive(Debug, Clone)]
pub struct Sources {
    /// A statically linked busybox (Debian's busybox-static: `/bin/busybox`).
    pub busybox: PathBuf,
    /// The statically linked `ferrolet-pause` program.
    pub pause: PathBuf,
    /// The statically linked `ferrolet-testserver` program.
    pub test_server: PathBuf,
}

/// The recipes of every local image, with where each goes.
pub fn all(sources: &Sources) -> Result<Vec<(ImageRecipe, Destination)>> {
    Ok(vec![
        (busybox(&sources.busybox)?, Destination::RuntimeAndRegistry),
        (pause(&sources.pause)?, Destination::RuntimeAndRegistry),
        (
            test_server(&sources.busybox, &sources.test_server)?,
            Destination::RuntimeAndRegistry,
        ),
        (pull_test(&sources.busybox)?, Destination::RegistryOnly),
    ])
}

/// busybox with a marker file, so that its digest differs from the imported busybox.
pub fn pull_test(busybox_binary: &Path) -> Result<ImageRecipe> {
    let mut image = busybox(busybox_binary)?;
    image.reference = format!("docker.io/{REGISTRY_ONLY}");
    image.file("etc/ferrolet-image", 0o644, "pull-test\n");
    Ok(image)
}

/// busybox plus `/testserver` as the entrypoint (its flags as the command).
pub fn test_server(busybox_binary: &Path, program: &Path) -> Result<ImageRecipe> {
    require_static(program)?;
    let mut image = busybox(busybox_binary)?;
    TEST_SERVER.clone_into(&mut image.reference);
    image.file_from_host("testserver", 0o755, program)?;
    image.config.entrypoint = vec!["/testserver".into()];
    image.config.cmd = Vec::new();
    Ok(image)
}

/// busybox with every applet busybox reports (`busybox --list-full`) as a symlink.
pub fn busybox(binary: &Path) -> Result<ImageRecipe> {
    require_static(binary)?;
    let output = std::process::Command::new(binary)
        .arg("--list-full")
        .output()
        .map_err(|source| Error::ReadSource {
            path: binary.to_owned(),
            source,
        })?;
    let applets = String::from_utf8_lossy(&output.stdout);
    let mut image = ImageRecipe::new(BUSYBOX);
    image.file_from_host("bin/busybox", 0o755, binary)?;
    for applet in applets.lines().map(str::trim).filter(|a| !a.is_empty()) {
        if applet != "bin/busybox" {
            image.symlink(applet, "/bin/busybox");
        }
    }
    image
        .file(
            "etc/passwd",
            0o644,
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n",
        )
        .file("etc/group", 0o644, "root:x:0:\nnobody:x:65534:\n")
        .dir("root", 0o700)
        .dir("home", 0o755)
        .dir("tmp", 0o1777)
        .dir("var/tmp", 0o1777)
        .dir("proc", 0o555)
        .dir("sys", 0o555)
        .dir("dev", 0o755)
        .dir("etc", 0o755);
    image.config.cmd = vec!["sh".into()];
    image.config.env = vec![DEFAULT_PATH.into()];
    Ok(image)
}

/// The pause image: `/pause` as the entrypoint, running as 65535 like the upstream image.
pub fn pause(binary: &Path) -> Result<ImageRecipe> {
    require_static(binary)?;
    let mut image = ImageRecipe::new(PAUSE);
    image.file_from_host("pause", 0o755, binary)?;
    image.config.entrypoint = vec!["/pause".into()];
    image.config.user = "65535:65535".into();
    Ok(image)
}

/// Refuses a dynamically linked program: in an image without a libc it would fail at
/// container start with a bare "no such file or directory".
fn require_static(binary: &Path) -> Result<()> {
    let data = std::fs::read(binary).map_err(|source| Error::ReadSource {
        path: binary.to_owned(),
        source,
    })?;
    match elf_interpreter(&data) {
        Some(true) => Err(Error::DynamicProgram {
            path: binary.to_owned(),
        }),
        Some(false) => Ok(()),
        None => Err(Error::NotElf {
            path: binary.to_owned(),
        }),
    }
}

/// Whether a 64-bit little-endian ELF file asks for a program interpreter (`PT_INTERP`), i.e.
/// is dynamically linked; `None` if it is no such file.
fn elf_interpreter(data: &[u8]) -> Option<bool> {
    const PT_INTERP: u32 = 3;
    if data.get(..6)? != b"\x7fELF\x02\x01" {
        return None;
    }
    let u16_at = |at: usize| Some(u16::from_le_bytes(data.get(at..at + 2)?.try_into().ok()?));
    let phoff = usize::try_from(u64::from_le_bytes(data.get(0x20..0x28)?.try_into().ok()?)).ok()?;
    let phentsize = usize::from(u16_at(0x36)?);
    let phnum = usize::from(u16_at(0x38)?);
    for i in 0..phnum {
        let at = phoff.checked_add(i.checked_mul(phentsize)?)?;
        let p_type = u32::from_le_bytes(data.get(at..at + 4)?.try_into().ok()?);
        if p_type == PT_INTERP {
            return Some(true);
        }
    }
    Some(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_dynamic_from_static_programs() {
        // The test binary itself is dynamically linked; busybox-static is not.
        let me = std::env::current_exe().unwrap();
        assert_eq!(elf_interpreter(&std::fs::read(&me).unwrap()), Some(true));
        let err = pause(&me).unwrap_err();
        assert!(err.to_string().contains("dynamically linked"), "{err}");
        assert_eq!(elf_interpreter(b"#!/bin/sh\n"), None);
        assert_eq!(
            elf_interpreter(b"\x7fELF\x02\x01"),
            None,
            "truncated header"
        );
    }

    #[test]
    fn busybox_image_links_every_applet() {
        let busybox_path = Path::new("/bin/busybox");
        assert!(
            busybox_path.exists(),
            "/bin/busybox is missing: run hack/install-deps (Debian package busybox-static)"
        );
        let image = busybox(busybox_path).unwrap();
        for applet in ["bin/sh", "bin/sleep", "bin/cat", "usr/bin/wget"] {
            assert_eq!(
                image.rootfs.get(applet),
                Some(&crate::layout::Entry::Symlink {
                    target: "/bin/busybox".into()
                }),
                "{applet}"
            );
        }
        assert_eq!(image.config.cmd, ["sh"]);
    }
}
