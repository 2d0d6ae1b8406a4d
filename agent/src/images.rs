//! Images for containers: pull by the container's pull policy, with the pod's
//! `imagePullSecrets` as registry credentials, reporting Pulling/Pulled/Failed events and the
//! kubelet's waiting reasons (`ErrImagePull`, `ImagePullBackOff`, `ErrImageNeverPull`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use base64::Engine as _;
use ferrolet_cri::{ImageService, api, image_ref, image_spec};

/// Why an image is not available, as container waiting reasons say it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    /// The pull failed (`ErrImagePull`).
    #[error("{message}")]
    Pull { message: String },
    /// Pull policy `Never` and the image is absent (`ErrImageNeverPull`).
    #[error("{message}")]
    NeverPull { message: String },
    /// The image reference cannot be pulled at all (`InvalidImageName`).
    #[error("{message}")]
    InvalidName { message: String },
}

impl ImageError {
    /// The container waiting reason.
    #[must_use]
    pub fn reason(&self) -> &'static str {
        match self {
            ImageError::Pull { .. } => "ErrImagePull",
            ImageError::NeverPull { .. } => "ErrImageNeverPull",
            ImageError::InvalidName { .. } => "InvalidImageName",
        }
    }
}

/// What ensuring an image did, for events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pulled {
    /// Present, not pulled.
    AlreadyPresent { image_ref: String },
    /// Pulled now.
    Pulled {
        image_ref: String,
        elapsed: std::time::Duration,
        size: u64,
    },
}

impl Pulled {
    #[must_use]
    pub fn image_ref(&self) -> &str {
        match self {
            Pulled::AlreadyPresent { image_ref } | Pulled::Pulled { image_ref, .. } => image_ref,
        }
    }
}

/// The registry host an image reference names (`docker.io` for short names).
#[must_use]
pub fn registry_host(image: &str) -> String {
    let full = image_ref::normalize(image);
    full.split('/').next().unwrap_or_default().to_owned()
}

/// Registry credentials from the data of `kubernetes.io/dockerconfigjson` or
/// `kubernetes.io/dockercfg` secrets that match `image`'s registry.
#[must_use]
pub fn auth_for(image: &str, secrets: &[BTreeMap<String, Vec<u8>>]) -> Vec<api::AuthConfig> {
    let host = registry_host(image);
    let aliases: Vec<String> = if host == "docker.io" {
        vec![
            "docker.io".into(),
            "index.docker.io".into(),
            "https://index.docker.io/v1/".into(),
            "registry-1.docker.io".into(),
        ]
    } else {
        vec![
            host.clone(),
            format!("https://{host}"),
            format!("http://{host}"),
        ]
    };
    let mut auths = Vec::new();
    for data in secrets {
        let entries: Option<serde_json::Value> = data
            .get(".dockerconfigjson")
            .and_then(|raw| serde_json::from_slice::<serde_json::Value>(raw).ok())
            .map(|v| v["auths"].clone())
            .or_else(|| {
                data.get(".dockercfg")
                    .and_then(|raw| serde_json::from_slice(raw).ok())
            });
        let Some(serde_json::Value::Object(entries)) = entries else {
            continue;
        };
        for (server, entry) in entries {
            let trimmed = server.trim_end_matches('/');
            if !aliases.iter().any(|a| a.trim_end_matches('/') == trimmed) {
                continue;
            }
            let mut username = entry["username"].as_str().unwrap_or_default().to_owned();
            let mut password = entry["password"].as_str().unwrap_or_default().to_owned();
            let auth = entry["auth"].as_str().unwrap_or_default().to_owned();
            if username.is_empty()
                && !auth.is_empty()
                && let Some((user, pass)) = base64::engine::general_purpose::STANDARD
                    .decode(&auth)
                    .ok()
                    .and_then(|d| String::from_utf8(d).ok())
                    .and_then(|s| s.split_once(':').map(|(u, p)| (u.to_owned(), p.to_owned())))
            {
                username = user;
                password = pass;
            }
            auths.push(api::AuthConfig {
                username,
                password,
                auth,
                server_address: server.clone(),
                identity_token: entry["identitytoken"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                registry_token: entry["registrytoken"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            });
        }
    }
    auths
}

/// Ensures images are present by pull policy.
#[derive(Clone)]
pub struct ImageManager {
    images: Arc<dyn ImageService>,
}

impl std::fmt::Debug for ImageManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageManager").finish_non_exhaustive()
    }
}

impl ImageManager {
    #[must_use]
    pub fn new(images: Arc<dyn ImageService>) -> Self {
        ImageManager { images }
    }

    /// The image service it pulls through.
    #[must_use]
    pub fn service(&self) -> &dyn ImageService {
        self.images.as_ref()
    }

    /// Makes `image` present according to `policy` (`Always`, `IfNotPresent`, `Never`),
    /// trying each credential (and none) in turn.
    pub async fn ensure(
        &self,
        image: &str,
        policy: &str,
        auths: &[api::AuthConfig],
        sandbox: Option<&api::PodSandboxConfig>,
    ) -> Result<Pulled, ImageError> {
        if image.trim().is_empty() || image.contains(char::is_whitespace) {
            return Err(ImageError::InvalidName {
                message: format!(
                    "Failed to apply default image tag {image:?}: couldn't parse image name {image:?}: invalid reference format"
                ),
            });
        }
        let spec = image_spec(image);
        if policy != "Always" {
            let present = self
                .images
                .image_status(&spec, false)
                .await
                .map_err(|e| ImageError::Pull {
                    message: e.to_string(),
                })?
                .image;
            if let Some(present) = present {
                return Ok(Pulled::AlreadyPresent {
                    image_ref: present.id,
                });
            }
            if policy == "Never" {
                return Err(ImageError::NeverPull {
                    message: format!(
                        "Container image {image:?} is not present with pull policy of Never"
                    ),
                });
            }
        }
        let started = Instant::now();
        let mut last_error = None;
        let attempts: Vec<Option<api::AuthConfig>> =
            auths.iter().cloned().map(Some).chain([None]).collect();
        for auth in attempts {
            match self.images.pull_image(&spec, auth, sandbox).await {
                Ok(image_ref) => {
                    let size = self
                        .images
                        .image_status(&spec, false)
                        .await
                        .ok()
                        .and_then(|s| s.image)
                        .map_or(0, |i| i.size);
                    return Ok(Pulled::Pulled {
                        image_ref,
                        elapsed: started.elapsed(),
                        size,
                    });
                }
                Err(err) => last_error = Some(err),
            }
        }
        let message = last_error.map_or_else(
            || "no pull attempted".to_owned(),
            |e| match e {
                ferrolet_cri::Error::Rpc { message, .. } => message,
                other => other.to_string(),
            },
        );
        Err(ImageError::Pull {
            message: format!("Failed to pull image {image:?}: {message}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrolet_cri::fake::FakeRuntime;

    fn docker_config(json: &str) -> BTreeMap<String, Vec<u8>> {
        BTreeMap::from([(".dockerconfigjson".to_owned(), json.as_bytes().to_vec())])
    }

    #[test]
    fn credentials_match_the_image_registry() {
        let secret = docker_config(
            r#"{"auths":{"registry.example:5000":{"auth":"dXNlcjpwYXNz"},"https://index.docker.io/v1/":{"username":"hub","password":"pw"}}}"#,
        );
        let private = auth_for("registry.example:5000/app:1", std::slice::from_ref(&secret));
        assert_eq!(private.len(), 1);
        assert_eq!(
            (private[0].username.as_str(), private[0].password.as_str()),
            ("user", "pass")
        );
        let hub = auth_for("busybox:1.35", std::slice::from_ref(&secret));
        assert_eq!(hub[0].username, "hub");
        assert!(auth_for("quay.io/x/y:1", &[secret]).is_empty());
    }

    #[tokio::test]
    async fn pull_policies() {
        let fake = FakeRuntime::new();
        fake.add_image("busybox:1.35");
        fake.add_pullable_image("registry.example/app:1");
        let manager = ImageManager::new(Arc::new(fake.clone()));
        let present = manager
            .ensure("busybox:1.35", "IfNotPresent", &[], None)
            .await
            .unwrap();
        assert!(matches!(present, Pulled::AlreadyPresent { .. }));
        let never = manager
            .ensure("registry.example/app:1", "Never", &[], None)
            .await
            .unwrap_err();
        assert_eq!(never.reason(), "ErrImageNeverPull");
        assert_eq!(
            never.to_string(),
            "Container image \"registry.example/app:1\" is not present with pull policy of Never"
        );
        let pulled = manager
            .ensure("registry.example/app:1", "IfNotPresent", &[], None)
            .await
            .unwrap();
        assert!(matches!(pulled, Pulled::Pulled { .. }));
        fake.clear_calls();
        manager
            .ensure("busybox:1.35", "Always", &[], None)
            .await
            .unwrap();
        assert!(fake.operations().contains(&"PullImage"), "Always pulls");
        let missing = manager
            .ensure("registry.example/nope:1", "IfNotPresent", &[], None)
            .await
            .unwrap_err();
        assert_eq!(missing.reason(), "ErrImagePull");
        assert!(missing.to_string().contains("nope:1"), "{missing}");
        assert_eq!(
            manager
                .ensure("bad name", "Always", &[], None)
                .await
                .unwrap_err()
                .reason(),
            "InvalidImageName"
        );
    }
}
