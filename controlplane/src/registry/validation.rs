//! Name and metadata validation with kube-apiserver's rules and messages.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::api::error::FieldError;

const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const DNS1035_LABEL_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
const QUALIFIED_NAME_MSG: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const CONFIG_KEY_MSG: &str = "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')";

/// Which name rule a resource's names follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    Dns1123Subdomain,
    Dns1123Label,
    Dns1035Label,
}

fn is_lower_alnum(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

fn is_dns1123_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars().all(|c| is_lower_alnum(c) || c == '-')
        && s.starts_with(is_lower_alnum)
        && s.ends_with(is_lower_alnum)
}

/// Whether `s` is an RFC 1123 subdomain (`my-app.example`).
#[must_use]
pub fn is_dns1123_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns1123_label)
}

fn is_dns1035_label(s: &str) -> bool {
    is_dns1123_label(s) && s.starts_with(|c: char| c.is_ascii_lowercase())
}

/// Errors for an object name under a rule (empty if valid).
#[must_use]
pub fn name_errors(field: &str, name: &str, rule: NameRule) -> Vec<FieldError> {
    let value = json!(name);
    let mut errors = Vec::new();
    let (ok, message, max) = match rule {
        NameRule::Dns1123Subdomain => (is_dns1123_subdomain(name), DNS1123_SUBDOMAIN_MSG, 253),
        NameRule::Dns1123Label => (is_dns1123_label(name), DNS1123_LABEL_MSG, 63),
        NameRule::Dns1035Label => (is_dns1035_label(name), DNS1035_LABEL_MSG, 63),
    };
    if name.len() > max {
        errors.push(FieldError::invalid(
            field,
            &value,
            &format!("must be no more than {max} characters"),
        ));
    } else if !ok {
        errors.push(FieldError::invalid(field, &value, message));
    }
    errors
}

fn is_qualified_name_part(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric())
}

/// Errors for a label or annotation key (`prefix/name`).
#[must_use]
pub fn qualified_name_errors(field: &str, key: &str) -> Vec<FieldError> {
    let value = json!(key);
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    let mut errors = Vec::new();
    if let Some(prefix) = prefix
        && !is_dns1123_subdomain(prefix)
    {
        errors.push(FieldError::invalid(
            field,
            &value,
            &format!("prefix part {DNS1123_SUBDOMAIN_MSG}"),
        ));
    }
    if !is_qualified_name_part(name) {
        errors.push(FieldError::invalid(field, &value, QUALIFIED_NAME_MSG));
    }
    errors
}

/// Errors for labels: keys are qualified names, values at most 63 valid characters.
#[must_use]
pub fn label_errors(field: &str, labels: &BTreeMap<String, String>) -> Vec<FieldError> {
    let mut errors = Vec::new();
    for (key, value) in labels {
        errors.extend(qualified_name_errors(field, key));
        let valid = value.is_empty()
            || (value.len() <= 63
                && value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
                && value.starts_with(|c: char| c.is_ascii_alphanumeric())
                && value.ends_with(|c: char| c.is_ascii_alphanumeric()));
        if !valid {
            errors.push(FieldError::invalid(field, &json!(value), LABEL_VALUE_MSG));
        }
    }
    errors
}

/// Errors for `ConfigMap` and Secret data keys.
#[must_use]
pub fn config_key_errors(field: &str, key: &str) -> Vec<FieldError> {
    let valid = !key.is_empty()
        && key.len() <= 253
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && key != "."
        && key != ".."
        && !key.starts_with("..");
    if valid {
        Vec::new()
    } else {
        vec![FieldError::invalid(field, &json!(key), CONFIG_KEY_MSG)]
    }
}

/// Metadata checks common to every object: a name (or generateName) in the resource's rule,
/// valid labels and annotation keys, the namespace of namespaced objects.
#[must_use]
pub fn metadata_errors(object: &Value, rule: NameRule, namespaced: bool) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let meta = &object["metadata"];
    match meta.get("name").and_then(Value::as_str) {
        Some(name) if !name.is_empty() => errors.extend(name_errors("metadata.name", name, rule)),
        _ => errors.push(FieldError::required("metadata.name")),
    }
    if namespaced {
        match meta.get("namespace").and_then(Value::as_str) {
            Some(ns) if !ns.is_empty() => errors.extend(name_errors(
                "metadata.namespace",
                ns,
                NameRule::Dns1123Label,
            )),
            _ => errors.push(FieldError::required("metadata.namespace")),
        }
    }
    if let Some(labels) = meta
        .get("labels")
        .and_then(|l| serde_json::from_value::<BTreeMap<String, String>>(l.clone()).ok())
    {
        errors.extend(label_errors("metadata.labels", &labels));
    }
    if let Some(annotations) = meta.get("annotations").and_then(Value::as_object) {
        let total: usize = annotations
            .iter()
            .map(|(k, v)| k.len() + v.as_str().map_or(0, str::len))
            .sum();
        for key in annotations.keys() {
            errors.extend(qualified_name_errors(
                "metadata.annotations",
                &key.to_ascii_lowercase(),
            ));
        }
        if total > 256 * 1024 {
            errors.push(FieldError {
                reason: "FieldValueTooLong",
                field: "metadata.annotations".into(),
                message: "Too long: must have at most 262144 bytes".into(),
            });
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_names() {
        assert!(is_dns1123_subdomain("my-app.example"));
        assert!(!is_dns1123_subdomain("My-App"));
        assert!(!is_dns1123_subdomain("-a"));
        assert!(is_dns1123_label("a1"));
        assert!(!is_dns1123_label("a.b"));
        assert!(is_dns1035_label("abc-123"));
        assert!(!is_dns1035_label("1abc"));
        let errors = name_errors("metadata.name", "Bad_Name", NameRule::Dns1123Subdomain);
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0]
                .message
                .starts_with("Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain")
        );
    }

    #[test]
    fn metadata_requires_a_name_and_namespace() {
        let errors = metadata_errors(&json!({"metadata": {}}), NameRule::Dns1123Subdomain, true);
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["metadata.name", "metadata.namespace"]);
        let ok = json!({"metadata": {"name": "a", "namespace": "b", "labels": {"app.kubernetes.io/name": "x"}}});
        assert!(metadata_errors(&ok, NameRule::Dns1123Subdomain, true).is_empty());
        let bad_label = json!({"metadata": {"name": "a", "labels": {"app": "not valid!"}}});
        assert_eq!(
            metadata_errors(&bad_label, NameRule::Dns1123Subdomain, false)[0].field,
            "metadata.labels"
        );
    }

    #[test]
    fn config_keys() {
        assert!(config_key_errors("data", "app.properties").is_empty());
        assert!(!config_key_errors("data", "a/b").is_empty());
        assert!(!config_key_errors("data", "..data").is_empty());
    }
}
