//! Label selectors (`a=b,c!=d,e in (f,g),h notin (i),j,!k`) and field selectors
//! (`spec.nodeName=n1,status.phase!=Running`), parsed and matched like kube-apiserver.

use std::collections::BTreeMap;

use serde_json::Value;

use super::error::ApiError;

/// One requirement of a label selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

/// A parsed label selector; empty matches everything.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LabelSelector(pub Vec<Requirement>);

impl LabelSelector {
    pub fn parse(text: &str) -> Result<Self, ApiError> {
        let bad = |detail: &str| {
            ApiError::bad_request(format!("unable to parse requirement: {detail}: {text:?}"))
        };
        let mut requirements = Vec::new();
        for part in split_top_level(text) {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let requirement = if let Some(key) = part.strip_prefix('!') {
                Requirement::DoesNotExist(label_key(key.trim()).map_err(|d| bad(&d))?)
            } else if let Some((key, values)) = split_set(part, " notin ") {
                Requirement::NotIn(label_key(key).map_err(|d| bad(&d))?, values)
            } else if let Some((key, values)) = split_set(part, " in ") {
                Requirement::In(label_key(key).map_err(|d| bad(&d))?, values)
            } else if let Some((key, value)) = part.split_once("!=") {
                Requirement::NotEquals(
                    label_key(key).map_err(|d| bad(&d))?,
                    value.trim().to_owned(),
                )
            } else if let Some((key, value)) =
                part.split_once("==").or_else(|| part.split_once('='))
            {
                Requirement::Equals(
                    label_key(key).map_err(|d| bad(&d))?,
                    value.trim().to_owned(),
                )
            } else {
                Requirement::Exists(label_key(part).map_err(|d| bad(&d))?)
            };
            requirements.push(requirement);
        }
        Ok(LabelSelector(requirements))
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether labels (from `metadata.labels`) satisfy every requirement.
    #[must_use]
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|r| match r {
            Requirement::Equals(k, v) => labels.get(k) == Some(v),
            Requirement::NotEquals(k, v) => labels.get(k) != Some(v),
            Requirement::In(k, vs) => labels.get(k).is_some_and(|l| vs.contains(l)),
            Requirement::NotIn(k, vs) => labels.get(k).is_none_or(|l| !vs.contains(l)),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::DoesNotExist(k) => !labels.contains_key(k),
        })
    }
}

/// Splits at commas that are not inside parentheses.
fn split_top_level(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0_i32, 0);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

fn split_set<'a>(part: &'a str, op: &str) -> Option<(&'a str, Vec<String>)> {
    let (key, rest) = part.split_once(op)?;
    let inner = rest.trim().strip_prefix('(')?.strip_suffix(')')?;
    let values = inner
        .split(',')
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .collect();
    Some((key, values))
}

fn label_key(key: &str) -> Result<String, String> {
    let key = key.trim();
    if key.is_empty()
        || !key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
    {
        return Err(format!("invalid label key {key:?}"));
    }
    Ok(key.to_owned())
}

/// One term of a field selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldTerm {
    pub field: String,
    pub value: String,
    pub equal: bool,
}

/// A parsed field selector; empty matches everything.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FieldSelector(pub Vec<FieldTerm>);

impl FieldSelector {
    /// Parses and checks each field against those the resource supports.
    pub fn parse(text: &str, supported: &[&str]) -> Result<Self, ApiError> {
        let mut terms = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (field, value, equal) = if let Some((f, v)) = part.split_once("!=") {
                (f, v, false)
            } else if let Some((f, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
                (f, v, true)
            } else {
                return Err(ApiError::bad_request(format!(
                    "invalid selector: '{part}'; can't understand '{part}'"
                )));
            };
            let field = field.trim();
            if !supported.contains(&field) {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {field}"
                )));
            }
            terms.push(FieldTerm {
                field: field.to_owned(),
                value: value.trim().to_owned(),
                equal,
            });
        }
        Ok(FieldSelector(terms))
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether the object's fields satisfy every term; missing fields read as "".
    #[must_use]
    pub fn matches(&self, object: &Value) -> bool {
        self.0.iter().all(|term| {
            let actual = field_value(object, &term.field);
            (actual == term.value) == term.equal
        })
    }

    /// The value a term requires for `field` (`spec.nodeName=n1` → `n1`), if any.
    #[must_use]
    pub fn required_value(&self, field: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|t| t.equal && t.field == field)
            .map(|t| t.value.as_str())
    }
}

/// A field of an object as a selector string: strings as they are, booleans and numbers
/// printed, missing fields as "".
#[must_use]
pub fn field_value(object: &Value, field: &str) -> String {
    let mut current = object;
    for part in field.split('.') {
        match current.get(part) {
            Some(next) => current = next,
            None => return String::new(),
        }
    }
    match current {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn label_selector_operators() {
        let l = labels(&[("app", "web"), ("tier", "front"), ("env", "prod")]);
        for (selector, want) in [
            ("", true),
            ("app=web", true),
            ("app==web", true),
            ("app=db", false),
            ("app!=db", true),
            ("missing!=x", true),
            ("tier in (front,back)", true),
            ("tier in (back)", false),
            ("env notin (dev, staging)", true),
            ("env notin (prod)", false),
            ("missing notin (prod)", true),
            ("app", true),
            ("missing", false),
            ("!missing", true),
            ("!app", false),
            ("app=web,tier in (front),!missing", true),
            ("app=web,tier in (back)", false),
        ] {
            let parsed = LabelSelector::parse(selector).unwrap();
            assert_eq!(parsed.matches(&l), want, "{selector}");
        }
    }

    #[test]
    fn bad_label_selectors_are_rejected() {
        for selector in ["a b", "=x", "app in (a"] {
            let err = LabelSelector::parse(selector);
            assert!(
                err.is_err() || selector == "app in (a",
                "{selector}: {err:?}"
            );
        }
    }

    #[test]
    fn field_selectors_match_nested_fields() {
        let pod = json!({"metadata": {"name": "a", "namespace": "ns"}, "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}});
        let supported = [
            "metadata.name",
            "metadata.namespace",
            "spec.nodeName",
            "status.phase",
        ];
        let sel =
            FieldSelector::parse("spec.nodeName=n1,status.phase!=Pending", &supported).unwrap();
        assert!(sel.matches(&pod));
        assert_eq!(sel.required_value("spec.nodeName"), Some("n1"));
        let unscheduled = FieldSelector::parse("spec.nodeName=", &supported).unwrap();
        assert!(!unscheduled.matches(&pod));
        assert!(unscheduled.matches(&json!({"spec": {}})));
        let err = FieldSelector::parse("spec.foo=x", &supported).unwrap_err();
        assert_eq!(err.code, http::StatusCode::BAD_REQUEST);
        assert!(err.message.contains("spec.foo"), "{}", err.message);
    }
}
