//! Reading a `KubeletConfiguration` file: decode, default, validate, as the kubelet does.
//!
//! The document is first read into a JSON value, on which the kubelet's "zero means unset"
//! defaulting and the list of accepted-but-ignored fields are applied; then it is decoded
//! strictly (unknown fields refused) through `serde_path_to_error`, so that a type error
//! names the path of the field; then values are checked.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::{
    API_VERSION, ConfigError, KIND, KubeletConfiguration, LoadedConfig, parse_go_duration,
};

/// Fields of the kubelet's `KubeletConfiguration` (v1.33) that ferrolet accepts and does not
/// apply. A file that sets one of them to something other than its zero value gets a warning.
const IGNORED_FIELDS: &[&str] = &[
    "allowedUnsafeSysctls",
    "containerLogMaxWorkers",
    "configMapAndSecretChangeDetectionStrategy",
    "contentType",
    "cpuCFSQuota",
    "cpuCFSQuotaPeriod",
    "cpuManagerPolicy",
    "cpuManagerPolicyOptions",
    "cpuManagerReconcilePeriod",
    "crashLoopBackOff",
    "enableControllerAttachDetach",
    "enableContentionProfiling",
    "enableDebugFlagsHandler",
    "enableDebuggingHandlers",
    "enableProfilingHandler",
    "enableServer",
    "enableSystemLogHandler",
    "enableSystemLogQuery",
    "enforceNodeAllocatable",
    "eventBurst",
    "eventRecordQPS",
    "evictionMaxPodGracePeriod",
    "evictionMinimumReclaim",
    "evictionPressureTransitionPeriod",
    "evictionSoft",
    "evictionSoftGracePeriod",
    "failCgroupV1",
    "hairpinMode",
    "httpCheckFrequency",
    "imageGCHighThresholdPercent",
    "imageGCLowThresholdPercent",
    "imageMaximumGCAge",
    "imageMinimumGCAge",
    "imagePullCredentialsVerificationPolicy",
    "iptablesDropBit",
    "iptablesMasqueradeBit",
    "kernelMemcgNotification",
    "kubeAPIBurst",
    "kubeAPIQPS",
    "kubeReservedCgroup",
    "kubeletCgroups",
    "localStorageCapacityIsolation",
    "logging",
    "makeIPTablesUtilChains",
    "maxOpenFiles",
    "maxParallelImagePulls",
    "memoryManagerPolicy",
    "memorySwap",
    "memoryThrottlingFactor",
    "mergeDefaultEvictionSettings",
    "nodeStatusMaxImages",
    "oomScoreAdj",
    "podCIDR",
    "podsPerCore",
    "preloadedImagesVerificationAllowlist",
    "protectKernelDefaults",
    "providerID",
    "qosReserved",
    "registryBurst",
    "registryPullQPS",
    "reservedMemory",
    "reservedSystemCPUs",
    "seccompDefault",
    "showHiddenMetricsForVersion",
    "shutdownGracePeriodByPodPriority",
    "shutdownGracePeriodCriticalPods",
    "singleProcessOOMKill",
    "staticPodURL",
    "staticPodURLHeader",
    "streamingConnectionIdleTimeout",
    "systemCgroups",
    "systemReservedCgroup",
    "tlsCipherSuites",
    "tlsMinVersion",
    "topologyManagerPolicy",
    "topologyManagerPolicyOptions",
    "topologyManagerScope",
    "tracing",
    "userNamespaces",
    "volumePluginDir",
    "volumeStatsAggPeriod",
];

/// Fields whose zero value (`0`, `""`, `"0s"`) the kubelet replaces with its default, or
/// reads as "not set".
const ZERO_MEANS_DEFAULT: &[&str] = &[
    "address",
    "staticPodPath",
    "imageServiceEndpoint",
    "cgroupRoot",
    "tlsCertFile",
    "tlsPrivateKeyFile",
    "port",
    "healthzBindAddress",
    "containerRuntimeEndpoint",
    "podLogsDir",
    "maxPods",
    "nodeStatusUpdateFrequency",
    "nodeStatusReportFrequency",
    "nodeLeaseDurationSeconds",
    "cgroupDriver",
    "syncFrequency",
    "fileCheckFrequency",
    "runtimeRequestTimeout",
    "containerLogMaxSize",
    "containerLogMonitorInterval",
];

/// The same for fields of `authentication` and `authorization`.
const NESTED_ZERO_MEANS_DEFAULT: &[(&str, &str, &str)] = &[
    ("authentication", "x509", "clientCAFile"),
    ("authentication", "webhook", "cacheTTL"),
    ("authorization", "webhook", "cacheAuthorizedTTL"),
    ("authorization", "webhook", "cacheUnauthorizedTTL"),
];

impl KubeletConfiguration {
    /// Reads a configuration file (YAML or JSON) with the kubelet's defaults.
    pub fn load(path: impl AsRef<Path>) -> Result<LoadedConfig, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_document(&text, path)
    }

    /// Reads a configuration from the text of a file; `origin` names it in errors.
    pub fn from_document(text: &str, origin: &Path) -> Result<LoadedConfig, ConfigError> {
        let loader = Loader {
            path: origin.to_owned(),
        };
        let mut warnings = Vec::new();
        let mut document = loader.parse(text)?;
        loader.check_type_meta(&document)?;
        strip_ignored(&mut document, &mut warnings);
        apply_zero_defaults(&mut document);
        // For backward compatibility the kubelet reports at the update frequency when only
        // that one is set (`SetDefaults_KubeletConfiguration`).
        let report_follows_update = document.contains_key("nodeStatusUpdateFrequency")
            && !document.contains_key("nodeStatusReportFrequency");
        let mut config: KubeletConfiguration =
            serde_path_to_error::deserialize(Value::Object(document))
                .map_err(|e| loader.decode_error(&e))?;
        if report_follows_update {
            config.node_status_report_frequency = config.node_status_update_frequency;
        }
        loader.validate(&config)?;
        if !config.eviction_hard.is_empty() {
            warnings.push(
                "field \"evictionHard\" is ignored: ferrolet does not evict pods; node \
                 pressure conditions use the kubelet's default thresholds"
                    .to_owned(),
            );
        }
        if !config.shutdown_grace_period.is_zero() {
            warnings.push(
                "field \"shutdownGracePeriod\" is ignored: ferrolet has no graceful node \
                 shutdown yet"
                    .to_owned(),
            );
        }
        Ok(LoadedConfig { config, warnings })
    }
}

struct Loader {
    path: PathBuf,
}

impl Loader {
    fn invalid(&self, field: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::InvalidField {
            path: self.path.clone(),
            field: field.to_owned(),
            message: message.into(),
        }
    }

    fn parse(&self, text: &str) -> Result<Map<String, Value>, ConfigError> {
        let syntax = |message: String| ConfigError::Syntax {
            path: self.path.clone(),
            message,
        };
        let value: Value = if text.trim_start().starts_with('{') {
            serde_json::from_str(text).map_err(|e| syntax(e.to_string()))?
        } else {
            serde_saphyr::from_str(text).map_err(|e| syntax(e.to_string()))?
        };
        match without_nulls(value) {
            Value::Object(map) => Ok(map),
            Value::Null => Err(syntax("the document is empty".to_owned())),
            _ => Err(syntax("the document is not a mapping".to_owned())),
        }
    }

    fn check_type_meta(&self, document: &Map<String, Value>) -> Result<(), ConfigError> {
        for (field, expected) in [("apiVersion", API_VERSION), ("kind", KIND)] {
            match document.get(field) {
                None => {
                    return Err(self.invalid(field, format!("missing, expected {expected:?}")));
                }
                Some(Value::String(s)) if s == expected => {}
                Some(other) => {
                    return Err(self.invalid(
                        field,
                        format!("unsupported value {other}, expected {expected:?}"),
                    ));
                }
            }
        }
        Ok(())
    }

    fn decode_error(&self, err: &serde_path_to_error::Error<serde_json::Error>) -> ConfigError {
        let path = err.path().to_string();
        let message = err.inner().to_string();
        if let Some(name) = message
            .strip_prefix("unknown field `")
            .and_then(|rest| rest.split('`').next())
        {
            // The path ends with the unknown field itself, except at the top level.
            let field = if path == "." || path.is_empty() {
                name.to_owned()
            } else {
                path
            };
            return ConfigError::UnknownField {
                path: self.path.clone(),
                field,
            };
        }
        self.invalid(&path, message)
    }

    fn validate(&self, c: &KubeletConfiguration) -> Result<(), ConfigError> {
        let port = |field: &str, value: i32, min: i32| {
            if (min..=65535).contains(&value) {
                Ok(())
            } else {
                Err(self.invalid(
                    field,
                    format!("invalid port {value}: must be between {min} and 65535"),
                ))
            }
        };
        port("port", c.port, 1)?;
        port("readOnlyPort", c.read_only_port, 0)?;
        port("healthzPort", c.healthz_port, 0)?;
        if c.max_pods < 0 {
            return Err(self.invalid(
                "maxPods",
                format!("must not be negative, got {}", c.max_pods),
            ));
        }
        if c.pod_pids_limit < -1 {
            return Err(self.invalid(
                "podPidsLimit",
                format!("must be -1 (no limit) or more, got {}", c.pod_pids_limit),
            ));
        }
        if c.node_lease_duration_seconds <= 0 {
            return Err(self.invalid(
                "nodeLeaseDurationSeconds",
                format!("must be positive, got {}", c.node_lease_duration_seconds),
            ));
        }
        if c.container_log_max_files < 2 {
            return Err(self.invalid(
                "containerLogMaxFiles",
                format!("must be greater than 1, got {}", c.container_log_max_files),
            ));
        }
        if c.container_log_max_size.is_negative() {
            return Err(self.invalid("containerLogMaxSize", "must not be negative"));
        }
        ferrolet_cri::RuntimeEndpoint::parse(&c.container_runtime_endpoint)
            .map_err(|e| self.invalid("containerRuntimeEndpoint", e.to_string()))?;
        if let Some(endpoint) = &c.image_service_endpoint {
            ferrolet_cri::RuntimeEndpoint::parse(endpoint)
                .map_err(|e| self.invalid("imageServiceEndpoint", e.to_string()))?;
        }
        if !c.pod_logs_dir.is_absolute() {
            return Err(self.invalid(
                "podLogsDir",
                format!("{} is not an absolute path", c.pod_logs_dir.display()),
            ));
        }
        if c.tls_cert_file.is_some() != c.tls_private_key_file.is_some() {
            let missing = if c.tls_cert_file.is_some() {
                "tlsPrivateKeyFile"
            } else {
                "tlsCertFile"
            };
            return Err(self.invalid(missing, "tlsCertFile and tlsPrivateKeyFile go together"));
        }
        for (i, taint) in c.register_with_taints.iter().enumerate() {
            if taint.key.is_empty() {
                return Err(
                    self.invalid(&format!("registerWithTaints[{i}].key"), "must not be empty")
                );
            }
        }
        for (field, reserved) in [
            ("kubeReserved", &c.kube_reserved),
            ("systemReserved", &c.system_reserved),
        ] {
            for (name, quantity) in reserved {
                if !["cpu", "memory", "ephemeral-storage", "pid"].contains(&name.as_str()) {
                    return Err(self.invalid(
                        &format!("{field}.{name}"),
                        "unsupported resource: only cpu, memory, ephemeral-storage and pid \
                         can be reserved",
                    ));
                }
                if quantity.is_negative() {
                    return Err(self.invalid(&format!("{field}.{name}"), "must not be negative"));
                }
            }
        }
        Ok(())
    }
}

/// Go decodes `null` as "not set": so do we.
fn without_nulls(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, without_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(without_nulls).collect()),
        other => other,
    }
}

/// Whether a value is what Go would write for an unset field.
fn is_zero(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty() || parse_go_duration(s).is_ok_and(|d| d.is_zero()),
        Value::Array(items) => items.is_empty(),
        Value::Object(map) => map.values().all(is_zero),
    }
}

fn strip_ignored(document: &mut Map<String, Value>, warnings: &mut Vec<String>) {
    for field in IGNORED_FIELDS {
        if let Some(value) = document.remove(*field)
            && !is_zero(&value)
        {
            warnings.push(format!(
                "field {field:?} is not supported by ferrolet and is ignored"
            ));
        }
    }
}

fn apply_zero_defaults(document: &mut Map<String, Value>) {
    for field in ZERO_MEANS_DEFAULT {
        if document.get(*field).is_some_and(is_zero) {
            document.remove(*field);
        }
    }
    for (outer, inner, field) in NESTED_ZERO_MEANS_DEFAULT {
        if let Some(Value::Object(section)) =
            document.get_mut(*outer).and_then(|o| o.get_mut(*inner))
            && section.get(*field).is_some_and(is_zero)
        {
            section.remove(*field);
        }
    }
}
