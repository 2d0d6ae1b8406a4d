//! Query parameters of API requests (`ListOptions`, `CreateOptions`, `DeleteOptions`, ...)
//! and content negotiation.

use serde::Deserialize;
use serde_json::Value;

use super::error::ApiError;

/// The query parameters kube-apiserver understands on resource requests.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct QueryOptions {
    pub label_selector: Option<String>,
    pub field_selector: Option<String>,
    pub watch: Option<String>,
    pub resource_version: Option<String>,
    pub resource_version_match: Option<String>,
    pub limit: Option<i64>,
    #[serde(rename = "continue")]
    pub continue_token: Option<String>,
    pub allow_watch_bookmarks: Option<String>,
    pub send_initial_events: Option<String>,
    pub timeout_seconds: Option<u64>,
    pub field_validation: Option<String>,
    pub dry_run: Option<String>,
    pub field_manager: Option<String>,
    pub grace_period_seconds: Option<i64>,
    pub propagation_policy: Option<String>,
    pub include_object: Option<String>,
    pub pretty: Option<String>,
    pub force: Option<String>,
    // pods/log, exec, attach, portforward
    pub container: Option<String>,
}

fn truthy(value: Option<&String>) -> bool {
    value.is_some_and(|v| v == "true" || v == "1")
}

impl QueryOptions {
    /// Parses a query string; unknown parameters are ignored like kube-apiserver does.
    pub fn parse(query: Option<&str>) -> Result<Self, ApiError> {
        serde_urlencoded_parse(query.unwrap_or_default())
    }

    #[must_use]
    pub fn is_watch(&self) -> bool {
        truthy(self.watch.as_ref())
    }

    #[must_use]
    pub fn bookmarks(&self) -> bool {
        truthy(self.allow_watch_bookmarks.as_ref())
    }

    #[must_use]
    pub fn send_initial_events(&self) -> bool {
        truthy(self.send_initial_events.as_ref())
    }

    #[must_use]
    pub fn dry_run(&self) -> bool {
        self.dry_run.as_deref() == Some("All")
    }

    /// `Strict`, `Warn` (kube-apiserver's default) or `Ignore`.
    pub fn field_validation(&self) -> Result<&str, ApiError> {
        match self.field_validation.as_deref() {
            None | Some("" | "Warn") => Ok("Warn"),
            Some(v @ ("Strict" | "Ignore")) => Ok(v),
            Some(other) => Err(ApiError::bad_request(format!(
                "fieldValidation must be one of \"Ignore\", \"Warn\", or \"Strict\", got {other:?}"
            ))),
        }
    }
}

/// Query strings are a handful of `key=value` pairs; decoding them by hand keeps the
/// dependency list short.
fn serde_urlencoded_parse(query: &str) -> Result<QueryOptions, ApiError> {
    let mut map = serde_json::Map::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let key = percent_decode(key);
        let value = percent_decode(value);
        let json_value = match key.as_str() {
            "limit" | "timeoutSeconds" | "gracePeriodSeconds" => {
                value.parse::<i64>().map(Value::from).map_err(|_| {
                    ApiError::bad_request(format!("invalid value for {key}: {value:?}"))
                })?
            }
            _ => Value::String(value),
        };
        map.insert(key, json_value);
    }
    serde_json::from_value(Value::Object(map))
        .map_err(|err| ApiError::bad_request(format!("invalid query parameters: {err}")))
}

/// Decodes `%xx` escapes and `+` as space.
#[must_use]
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What representation the client asked for in `Accept`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Representation {
    /// The objects themselves.
    Object,
    /// `meta.k8s.io/v1` `Table` (what `kubectl get` asks for).
    Table,
    /// `PartialObjectMetadata` / `PartialObjectMetadataList`.
    Metadata,
}

/// Picks the first representation in `Accept` the server can produce.
#[must_use]
pub fn negotiate(accept: Option<&str>) -> Representation {
    let Some(accept) = accept else {
        return Representation::Object;
    };
    for choice in accept.split(',') {
        let params: Vec<&str> = choice.split(';').map(str::trim).collect();
        let has = |p: &str| params.contains(&p);
        if has("as=Table") && has("g=meta.k8s.io") && (has("v=v1") || has("v=v1beta1")) {
            return Representation::Table;
        }
        if (has("as=PartialObjectMetadata") || has("as=PartialObjectMetadataList"))
            && has("g=meta.k8s.io")
            && (has("v=v1") || has("v=v1beta1"))
        {
            return Representation::Metadata;
        }
        let media = params.first().copied().unwrap_or_default();
        if (media == "application/json" || media == "*/*" || media == "application/*")
            && !params.iter().any(|p| p.starts_with("as="))
        {
            return Representation::Object;
        }
    }
    Representation::Object
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_list_and_watch_options() {
        let opts = QueryOptions::parse(Some(
            "labelSelector=app%3Dweb%2Ctier+in+%28a%2Cb%29&watch=true&resourceVersion=12&limit=500&continue=abc&allowWatchBookmarks=true",
        ))
        .unwrap();
        assert_eq!(
            opts.label_selector.as_deref(),
            Some("app=web,tier in (a,b)")
        );
        assert!(opts.is_watch() && opts.bookmarks());
        assert_eq!(opts.limit, Some(500));
        assert_eq!(opts.continue_token.as_deref(), Some("abc"));
        assert!(QueryOptions::parse(Some("limit=x")).is_err());
        assert_eq!(
            QueryOptions::parse(Some("fieldValidation=Strict"))
                .unwrap()
                .field_validation()
                .unwrap(),
            "Strict"
        );
        assert!(
            QueryOptions::parse(Some("fieldValidation=Loud"))
                .unwrap()
                .field_validation()
                .is_err()
        );
    }

    #[test]
    fn negotiates_tables_like_kubectl_asks() {
        let kubectl = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(negotiate(Some(kubectl)), Representation::Table);
        assert_eq!(negotiate(Some("application/json")), Representation::Object);
        assert_eq!(negotiate(None), Representation::Object);
        assert_eq!(
            negotiate(Some(
                "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"
            )),
            Representation::Metadata
        );
        assert_eq!(
            negotiate(Some("application/vnd.kubernetes.protobuf, */*")),
            Representation::Object
        );
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%3Db+c"), "a=b c");
        assert_eq!(percent_decode("100%"), "100%");
    }
}
