//! Docker-style image reference normalization, as containerd, CRI-O and the kubelet apply it:
//! `busybox` → `docker.io/library/busybox:latest`.

/// The registry that names without a registry host refer to.
pub const DEFAULT_REGISTRY: &str = "docker.io";

/// Returns the fully qualified form of an image reference: registry host, repository path
/// (with `library/` for official Docker Hub images) and a tag (`latest` unless the reference
/// has a tag or a digest).
#[must_use]
pub fn normalize(reference: &str) -> String {
    let (name, digest) = match reference.split_once('@') {
        Some((name, digest)) => (name, Some(digest)),
        None => (reference, None),
    };
    // A tag is the part after the last ':' when no '/' follows it (a ':' before a '/' is a
    // registry port).
    let (name, tag) = match name.rfind(':') {
        Some(colon) if !name[colon..].contains('/') => (&name[..colon], Some(&name[colon + 1..])),
        _ => (name, None),
    };
    let mut full = match name.split_once('/') {
        Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            name.to_owned()
        }
        Some(_) => format!("{DEFAULT_REGISTRY}/{name}"),
        None => format!("{DEFAULT_REGISTRY}/library/{name}"),
    };
    match (tag, digest) {
        (Some(tag), _) => {
            full.push(':');
            full.push_str(tag);
        }
        (None, None) => full.push_str(":latest"),
        (None, Some(_)) => {}
    }
    if let Some(digest) = digest {
        full.push('@');
        full.push_str(digest);
    }
    full
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn normalizes_like_docker_reference_parsing() {
        for (given, want) in [
            ("busybox", "docker.io/library/busybox:latest"),
            ("busybox:1.35", "docker.io/library/busybox:1.35"),
            ("library/busybox:1.35", "docker.io/library/busybox:1.35"),
            (
                "docker.io/library/busybox:1.35",
                "docker.io/library/busybox:1.35",
            ),
            ("registry.k8s.io/pause:3.9", "registry.k8s.io/pause:3.9"),
            (
                "localhost/ferrolet/pause",
                "localhost/ferrolet/pause:latest",
            ),
            ("127.0.0.1:5000/busybox:1.35", "127.0.0.1:5000/busybox:1.35"),
            ("127.0.0.1:5000/busybox", "127.0.0.1:5000/busybox:latest"),
            (
                "busybox@sha256:0123abcd",
                "docker.io/library/busybox@sha256:0123abcd",
            ),
            (
                "quay.io/a/b:v1@sha256:0123abcd",
                "quay.io/a/b:v1@sha256:0123abcd",
            ),
        ] {
            assert_eq!(normalize(given), want, "{given}");
        }
    }
}
