//! A writer for single-layer OCI images, packed as an OCI image-layout tar archive
//! (`oci-layout`, `index.json`, `blobs/sha256/…`). The output is deterministic: the same
//! recipe gives the same digests.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::json;
use sha2::{Digest, Sha256};

/// Errors while building an image.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("read {path}")]
    ReadSource {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("write image archive {path}")]
    WriteArchive {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("pack layer entry {path}")]
    PackLayer {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is dynamically linked: images hold no libc, link it statically")]
    DynamicProgram { path: PathBuf },
    #[error("{path} is not a 64-bit little-endian ELF program")]
    NotElf { path: PathBuf },
    #[error("image reference {reference:?} has no tag")]
    UntaggedReference { reference: String },
}

/// The result of building an image.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One entry of the image's root filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Dir { mode: u32 },
    File { mode: u32, content: Vec<u8> },
    Symlink { target: String },
}

/// The `config` section of an OCI image configuration: how the image's process starts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcessConfig {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub working_dir: String,
    pub user: String,
    pub exposed_ports: Vec<String>,
}

/// A single-layer image: a reference, a root filesystem and a process config.
#[derive(Debug, Clone)]
pub struct ImageRecipe {
    /// Fully qualified reference, e.g. `docker.io/library/busybox:1.35`.
    pub reference: String,
    /// Paths relative to `/` (no leading slash), in any order; parents are created.
    pub rootfs: BTreeMap<String, Entry>,
    pub config: ProcessConfig,
}

/// Digests of a built image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltImage {
    pub reference: String,
    /// `sha256:…` of the manifest: what `ImageStatus` reports as the image's repo digest.
    pub manifest_digest: String,
    /// `sha256:…` of the config: the image id runtimes report.
    pub config_digest: String,
    pub archive: PathBuf,
}

impl ImageRecipe {
    /// An empty image named `reference`.
    #[must_use]
    pub fn new(reference: &str) -> Self {
        ImageRecipe {
            reference: reference.to_owned(),
            rootfs: BTreeMap::new(),
            config: ProcessConfig::default(),
        }
    }

    /// Adds a directory.
    pub fn dir(&mut self, path: &str, mode: u32) -> &mut Self {
        self.rootfs.insert(clean(path), Entry::Dir { mode });
        self
    }

    /// Adds a regular file with the given content.
    pub fn file(&mut self, path: &str, mode: u32, content: impl Into<Vec<u8>>) -> &mut Self {
        self.rootfs.insert(
            clean(path),
            Entry::File {
                mode,
                content: content.into(),
            },
        );
        self
    }

    /// Adds a regular file copied from this machine.
    pub fn file_from_host(&mut self, path: &str, mode: u32, source: &Path) -> Result<&mut Self> {
        let content = std::fs::read(source).map_err(|source_err| Error::ReadSource {
            path: source.to_owned(),
            source: source_err,
        })?;
        Ok(self.file(path, mode, content))
    }

    /// Adds a symbolic link.
    pub fn symlink(&mut self, path: &str, target: &str) -> &mut Self {
        self.rootfs.insert(
            clean(path),
            Entry::Symlink {
                target: target.to_owned(),
            },
        );
        self
    }

    /// The layer as an uncompressed tar: parents before children, fixed owners and times.
    pub fn layer_tar(&self) -> Result<Vec<u8>> {
        let mut entries = self.rootfs.clone();
        for path in self.rootfs.keys() {
            let mut parent = Path::new(path).parent();
            while let Some(dir) = parent.filter(|p| !p.as_os_str().is_empty()) {
                entries
                    .entry(dir.to_string_lossy().into_owned())
                    .or_insert(Entry::Dir { mode: 0o755 });
                parent = dir.parent();
            }
        }
        let mut builder = tar::Builder::new(Vec::new());
        // BTreeMap order puts "a" before "a/b": every parent precedes its children.
        for (path, entry) in &entries {
            let mut header = tar::Header::new_gnu();
            header.set_uid(0);
            header.set_gid(0);
            header.set_mtime(0);
            let pack = |source| Error::PackLayer {
                path: path.clone(),
                source,
            };
            match entry {
                Entry::Dir { mode } => {
                    header.set_entry_type(tar::EntryType::Directory);
                    header.set_mode(*mode);
                    header.set_size(0);
                    builder
                        .append_data(&mut header, format!("{path}/"), std::io::empty())
                        .map_err(pack)?;
                }
                Entry::File { mode, content } => {
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_mode(*mode);
                    header.set_size(content.len() as u64);
                    builder
                        .append_data(&mut header, path, content.as_slice())
                        .map_err(pack)?;
                }
                Entry::Symlink { target } => {
                    header.set_entry_type(tar::EntryType::Symlink);
                    header.set_mode(0o777);
                    header.set_size(0);
                    builder
                        .append_link(&mut header, path, target)
                        .map_err(pack)?;
                }
            }
        }
        builder.into_inner().map_err(|source| Error::PackLayer {
            path: String::new(),
            source,
        })
    }

    /// Writes the image as an OCI image-layout tar archive at `archive`.
    pub fn write_oci_archive(&self, archive: &Path) -> Result<BuiltImage> {
        let tag = match self.reference.rsplit_once(':') {
            Some((_, tag)) if !tag.contains('/') => tag.to_owned(),
            _ => {
                return Err(Error::UntaggedReference {
                    reference: self.reference.clone(),
                });
            }
        };
        let write_err = |source| Error::WriteArchive {
            path: archive.to_owned(),
            source,
        };
        let layer = self.layer_tar()?;
        let diff_id = sha256(&layer);
        let mut gz = GzEncoder::new(Vec::new(), Compression::best());
        gz.write_all(&layer).map_err(write_err)?;
        let layer_gz = gz.finish().map_err(write_err)?;

        let config = self.config_json(&diff_id);
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": descriptor("application/vnd.oci.image.config.v1+json", &config),
            "layers": [descriptor("application/vnd.oci.image.layer.v1.tar+gzip", &layer_gz)],
        });
        let manifest = serde_json::to_vec(&manifest).expect("json values serialize");
        let mut manifest_descriptor =
            descriptor("application/vnd.oci.image.manifest.v1+json", &manifest);
        manifest_descriptor["annotations"] = json!({
            // containerd names imported images after this one, skopeo after the tag.
            "io.containerd.image.name": self.reference,
            "org.opencontainers.image.ref.name": tag,
        });
        manifest_descriptor["platform"] = json!({"architecture": arch(), "os": "linux"});
        let index = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [manifest_descriptor],
        });

        let file = std::fs::File::create(archive).map_err(write_err)?;
        let mut out = tar::Builder::new(std::io::BufWriter::new(file));
        let mut add = |name: &str, data: &[u8]| -> std::io::Result<()> {
            let mut header = tar::Header::new_gnu();
            header.set_mode(0o644);
            header.set_mtime(0);
            header.set_size(data.len() as u64);
            header.set_entry_type(tar::EntryType::Regular);
            out.append_data(&mut header, name, data)
        };
        add("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#).map_err(write_err)?;
        for blob in [&layer_gz, &config, &manifest] {
            add(&format!("blobs/sha256/{}", hex_sha256(blob)), blob).map_err(write_err)?;
        }
        let index = serde_json::to_vec(&index).expect("json values serialize");
        add("index.json", &index).map_err(write_err)?;
        out.into_inner()
            .and_then(|w| w.into_inner().map_err(std::io::IntoInnerError::into_error))
            .and_then(|f| f.sync_all())
            .map_err(write_err)?;

        Ok(BuiltImage {
            reference: self.reference.clone(),
            manifest_digest: sha256(&manifest),
            config_digest: sha256(&config),
            archive: archive.to_owned(),
        })
    }

    fn config_json(&self, diff_id: &str) -> Vec<u8> {
        let c = &self.config;
        let mut process = serde_json::Map::new();
        let mut set = |key: &str, value: serde_json::Value| {
            process.insert(key.to_owned(), value);
        };
        if !c.user.is_empty() {
            set("User", json!(c.user));
        }
        if !c.env.is_empty() {
            set("Env", json!(c.env));
        }
        if !c.entrypoint.is_empty() {
            set("Entrypoint", json!(c.entrypoint));
        }
        if !c.cmd.is_empty() {
            set("Cmd", json!(c.cmd));
        }
        if !c.working_dir.is_empty() {
            set("WorkingDir", json!(c.working_dir));
        }
        if !c.exposed_ports.is_empty() {
            let ports: serde_json::Map<_, _> = c
                .exposed_ports
                .iter()
                .map(|p| (p.clone(), json!({})))
                .collect();
            set("ExposedPorts", serde_json::Value::Object(ports));
        }
        let config = json!({
            "created": "1970-01-01T00:00:00Z",
            "architecture": arch(),
            "os": "linux",
            "config": process,
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
            "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "ferrolet-images"}],
        });
        serde_json::to_vec(&config).expect("json values serialize")
    }
}

fn clean(path: &str) -> String {
    path.trim_start_matches('/')
        .trim_end_matches('/')
        .to_owned()
}

fn hex_sha256(data: &[u8]) -> String {
    use std::fmt::Write as _;
    Sha256::digest(data)
        .iter()
        .fold(String::with_capacity(64), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex_sha256(data))
}

fn descriptor(media_type: &str, blob: &[u8]) -> serde_json::Value {
    json!({"mediaType": media_type, "digest": sha256(blob), "size": blob.len()})
}

/// The OCI architecture name of this machine.
#[must_use]
pub fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn recipe() -> ImageRecipe {
        let mut image = ImageRecipe::new("example.test/demo:1");
        image
            .file("bin/tool", 0o755, b"#!/bin/sh\n".to_vec())
            .symlink("usr/bin/alias", "/bin/tool")
            .dir("tmp", 0o1777);
        image.config.cmd = vec!["/bin/tool".into()];
        image
    }

    fn archive_entries(path: &Path) -> BTreeMap<String, Vec<u8>> {
        let mut archive = tar::Archive::new(std::fs::File::open(path).unwrap());
        archive
            .entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let mut data = Vec::new();
                e.read_to_end(&mut data).unwrap();
                (e.path().unwrap().to_string_lossy().into_owned(), data)
            })
            .collect()
    }

    #[test]
    fn layer_lists_parents_before_children_with_modes() {
        let layer = recipe().layer_tar().unwrap();
        let mut archive = tar::Archive::new(layer.as_slice());
        let entries: Vec<(String, u32, tar::EntryType)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (
                    e.path().unwrap().to_string_lossy().into_owned(),
                    h.mode().unwrap(),
                    h.entry_type(),
                )
            })
            .collect();
        let names: Vec<&str> = entries.iter().map(|(p, _, _)| p.as_str()).collect();
        assert_eq!(
            names,
            [
                "bin/",
                "bin/tool",
                "tmp/",
                "usr/",
                "usr/bin/",
                "usr/bin/alias"
            ]
        );
        assert_eq!(entries[1].1, 0o755);
        assert_eq!(entries[2].1, 0o1777);
        assert_eq!(entries[5].2, tar::EntryType::Symlink);
    }

    #[test]
    fn archive_is_a_valid_oci_layout_with_matching_digests() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("demo.tar");
        let built = recipe().write_oci_archive(&path).unwrap();
        let files = archive_entries(&path);
        let index: serde_json::Value = serde_json::from_slice(&files["index.json"]).unwrap();
        let desc = &index["manifests"][0];
        assert_eq!(desc["digest"], built.manifest_digest);
        assert_eq!(
            desc["annotations"]["io.containerd.image.name"],
            "example.test/demo:1"
        );
        assert_eq!(
            desc["annotations"]["org.opencontainers.image.ref.name"],
            "1"
        );
        // Every blob is stored under its own digest, and the config names the layer's
        // uncompressed digest.
        for (name, data) in &files {
            if let Some(hex) = name.strip_prefix("blobs/sha256/") {
                assert_eq!(hex_sha256(data), hex, "{name}");
            }
        }
        let manifest_hex = built.manifest_digest.trim_start_matches("sha256:");
        let manifest: serde_json::Value =
            serde_json::from_slice(&files[&format!("blobs/sha256/{manifest_hex}")]).unwrap();
        assert_eq!(manifest["config"]["digest"], built.config_digest);
        let config_hex = built.config_digest.trim_start_matches("sha256:");
        let config: serde_json::Value =
            serde_json::from_slice(&files[&format!("blobs/sha256/{config_hex}")]).unwrap();
        assert_eq!(config["config"]["Cmd"][0], "/bin/tool");
        let layer_hex = manifest["layers"][0]["digest"]
            .as_str()
            .unwrap()
            .trim_start_matches("sha256:");
        let mut layer = Vec::new();
        flate2::read::GzDecoder::new(files[&format!("blobs/sha256/{layer_hex}")].as_slice())
            .read_to_end(&mut layer)
            .unwrap();
        assert_eq!(config["rootfs"]["diff_ids"][0], sha256(&layer));
    }

    #[test]
    fn building_twice_gives_the_same_digests() {
        let dir = tempfile::tempdir().unwrap();
        let a = recipe()
            .write_oci_archive(&dir.path().join("a.tar"))
            .unwrap();
        let b = recipe()
            .write_oci_archive(&dir.path().join("b.tar"))
            .unwrap();
        assert_eq!(a.manifest_digest, b.manifest_digest);
        assert_eq!(a.config_digest, b.config_digest);
    }

    #[test]
    fn untagged_reference_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err = ImageRecipe::new("localhost:5000/untagged")
            .write_oci_archive(&dir.path().join("x.tar"))
            .unwrap_err();
        assert!(err.to_string().contains("localhost:5000/untagged"), "{err}");
    }
}
