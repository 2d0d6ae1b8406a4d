//! The etcd v3 store, for clusters (`--etcd-servers`): several API servers can share one
//! etcd.
//!
//! Keys are stored exactly as the API server passes them (`/registry/pods/default/nginx`);
//! the `/registry` prefix is the API server's business, as with kube-apiserver's
//! `--etcd-prefix`. The trait's semantics map one to one onto etcd's: revisions are etcd's
//! revisions, conditional writes are transactions comparing `mod_revision` (and
//! `create_revision` to tell a missing key from a changed one), watches are etcd watches with
//! `prev_kv`, and compaction is etcd's.

mod watch;

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use etcd_client::{
    Client, CompactionOptions, Compare, CompareOp, ConnectOptions, DeleteOptions, GetOptions,
    PutOptions, Txn, TxnOp, TxnOpResponse, TxnResponse,
};

use super::{Error, EventStream, KeyValue, ListResult, Result, Revision, Store, prefix_range};

/// Keys per page when listing, so that a large list never exceeds a gRPC message.
const LIST_PAGE: i64 = 500;
/// The largest gRPC message accepted from etcd (a page of large objects, a watch batch).
const MAX_MESSAGE: usize = 64 * 1024 * 1024;

/// How to reach etcd.
#[derive(Debug, Clone)]
pub struct EtcdConfig {
    /// Client URLs (`http://127.0.0.1:2379`), as `--etcd-servers` gives them.
    pub endpoints: Vec<String>,
    /// How long to wait for a TCP connection to an endpoint.
    pub connect_timeout: Duration,
    /// How long one request (not a watch) may take before it fails.
    pub request_timeout: Duration,
}

impl EtcdConfig {
    /// The endpoints with default timeouts.
    pub fn new<S: Into<String>>(endpoints: impl IntoIterator<Item = S>) -> Self {
        Self {
            endpoints: endpoints.into_iter().map(Into::into).collect(),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(15),
        }
    }
}

/// Why the etcd store could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("no etcd endpoints given")]
    NoEndpoints,
    #[error("setting up the etcd client for {endpoints}")]
    Client {
        endpoints: String,
        #[source]
        source: etcd_client::Error,
    },
    #[error("etcd at {endpoints} did not answer")]
    Unreachable {
        endpoints: String,
        #[source]
        source: Error,
    },
}

/// The store on an etcd v3 cluster.
#[derive(Clone)]
pub struct EtcdStore {
    client: Client,
    /// The endpoints, for error messages.
    endpoints: Arc<str>,
    request_timeout: Duration,
}

impl fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdStore")
            .field("endpoints", &self.endpoints)
            .finish_non_exhaustive()
    }
}

impl EtcdStore {
    /// Connects to etcd and checks that it answers.
    pub async fn connect(config: EtcdConfig) -> Result<Self, ConnectError> {
        if config.endpoints.is_empty() {
            return Err(ConnectError::NoEndpoints);
        }
        let endpoints = config.endpoints.join(",");
        let options = ConnectOptions::new()
            .with_connect_timeout(config.connect_timeout)
            // Detect a dead connection under a quiet watch.
            .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5))
            .with_keep_alive_while_idle(true);
        let client = Client::connect(&config.endpoints, Some(options))
            .await
            .map_err(|source| ConnectError::Client {
                endpoints: endpoints.clone(),
                source,
            })?;
        let store = Self {
            client,
            endpoints: endpoints.clone().into(),
            request_timeout: config.request_timeout,
        };
        store
            .current_revision()
            .await
            .map_err(|source| ConnectError::Unreachable { endpoints, source })?;
        Ok(store)
    }

    fn backend(&self, operation: &'static str, reason: impl fmt::Display) -> Error {
        backend(operation, &self.endpoints, reason)
    }

    /// Runs one request with the request timeout.
    async fn call<T>(
        &self,
        operation: &'static str,
        request: impl Future<Output = Result<T, etcd_client::Error>>,
    ) -> Result<T> {
        match tokio::time::timeout(self.request_timeout, request).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(e)) => Err(self.backend(operation, e)),
            Err(_) => Err(self.backend(
                operation,
                format_args!("no answer within {:?}", self.request_timeout),
            )),
        }
    }

    async fn txn(&self, operation: &'static str, txn: Txn) -> Result<TxnResponse> {
        let mut kv = self.client.kv_client();
        self.call(operation, kv.txn(txn)).await
    }

    /// The key as the `or_else` branch of a transaction read it, to explain a refusal.
    fn refusal(
        &self,
        operation: &'static str,
        response: &TxnResponse,
        key: &str,
        expected: Option<Revision>,
    ) -> Error {
        let current = response.op_responses().into_iter().find_map(|r| match r {
            TxnOpResponse::Get(get) => get.kvs().first().map(etcd_client::KeyValue::mod_revision),
            _ => None,
        });
        match (current, expected) {
            (None, _) => Error::NotFound {
                key: key.to_owned(),
            },
            (Some(actual), Some(expected)) => Error::Conflict {
                key: key.to_owned(),
                expected,
                actual,
            },
            (Some(actual), None) => self.backend(
                operation,
                format_args!("key {key:?} exists at revision {actual} but the write was refused"),
            ),
        }
    }
}

/// The store's error for a failed etcd call.
fn backend(operation: &'static str, endpoints: &str, reason: impl fmt::Display) -> Error {
    Error::Backend {
        operation,
        reason: format!("etcd at {endpoints}: {reason}"),
    }
}

/// The store's key-value from etcd's.
fn key_value(
    operation: &'static str,
    endpoints: &str,
    kv: &etcd_client::KeyValue,
) -> Result<KeyValue> {
    Ok(KeyValue {
        key: kv
            .key_str()
            .map_err(|e| {
                backend(
                    operation,
                    endpoints,
                    format_args!("a key is not UTF-8: {e}"),
                )
            })?
            .to_owned(),
        value: kv.value().to_vec(),
        create_revision: kv.create_revision(),
        mod_revision: kv.mod_revision(),
    })
}

fn header_revision(response: &TxnResponse) -> Revision {
    response
        .header()
        .map_or(0, etcd_client::ResponseHeader::revision)
}

/// etcd's key range for a prefix: an empty start means "from the first key", and `\0` as
/// the end means "to the last key".
fn etcd_range(prefix: &str) -> (Vec<u8>, Vec<u8>) {
    let (start, end) = prefix_range(prefix);
    let start = if start.is_empty() { vec![0] } else { start };
    (start, end.unwrap_or_else(|| vec![0]))
}

#[async_trait]
impl Store for EtcdStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let mut kv = self
            .client
            .kv_client()
            .max_decoding_message_size(MAX_MESSAGE);
        let response = self.call("get", kv.get(key, None)).await?;
        response
            .kvs()
            .first()
            .map(|kv| key_value("get", &self.endpoints, kv))
            .transpose()
    }

    async fn list(&self, prefix: &str) -> Result<ListResult> {
        let (mut from, end) = etcd_range(prefix);
        let mut kv = self
            .client
            .kv_client()
            .max_decoding_message_size(MAX_MESSAGE);
        let mut kvs = Vec::new();
        // Later pages are read at the first page's revision: one consistent snapshot.
        let mut revision = 0;
        loop {
            let mut options = GetOptions::new()
                .with_range(end.clone())
                .with_limit(LIST_PAGE);
            if revision > 0 {
                options = options.with_revision(revision);
            }
            let response = self
                .call("list", kv.get(from.clone(), Some(options)))
                .await?;
            if revision == 0 {
                revision = response
                    .header()
                    .map_or(0, etcd_client::ResponseHeader::revision);
            }
            for kv in response.kvs() {
                kvs.push(key_value("list", &self.endpoints, kv)?);
            }
            match (response.more(), response.kvs().last()) {
                (true, Some(last)) => {
                    from = last.key().to_vec();
                    from.push(0);
                }
                _ => return Ok(ListResult { kvs, revision }),
            }
        }
    }

    async fn create(&self, key: &str, value: Vec<u8>) -> Result<KeyValue> {
        let txn = Txn::new()
            .when([Compare::create_revision(key, CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key, value.clone(), None)]);
        let response = self.txn("create", txn).await?;
        if !response.succeeded() {
            return Err(Error::AlreadyExists {
                key: key.to_owned(),
            });
        }
        let revision = header_revision(&response);
        Ok(KeyValue {
            key: key.to_owned(),
            value,
            create_revision: revision,
            mod_revision: revision,
        })
    }

    async fn update(&self, key: &str, value: Vec<u8>, expected: Revision) -> Result<KeyValue> {
        let txn = Txn::new()
            .when([
                Compare::create_revision(key, CompareOp::Greater, 0),
                Compare::mod_revision(key, CompareOp::Equal, expected),
            ])
            .and_then([TxnOp::put(
                key,
                value.clone(),
                Some(PutOptions::new().with_prev_key()),
            )])
            .or_else([TxnOp::get(key, Some(GetOptions::new().with_keys_only()))]);
        let response = self.txn("update", txn).await?;
        if !response.succeeded() {
            return Err(self.refusal("update", &response, key, Some(expected)));
        }
        let prev = response.op_responses().into_iter().find_map(|r| match r {
            TxnOpResponse::Put(mut put) => put.take_prev_key(),
            _ => None,
        });
        let prev = prev.ok_or_else(|| self.backend("update", "etcd returned no previous value"))?;
        Ok(KeyValue {
            key: key.to_owned(),
            value,
            create_revision: prev.create_revision(),
            mod_revision: header_revision(&response),
        })
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<KeyValue> {
        let mut compares = vec![Compare::create_revision(key, CompareOp::Greater, 0)];
        if let Some(expected) = expected {
            compares.push(Compare::mod_revision(key, CompareOp::Equal, expected));
        }
        let txn = Txn::new()
            .when(compares)
            .and_then([TxnOp::delete(
                key,
                Some(DeleteOptions::new().with_prev_key()),
            )])
            .or_else([TxnOp::get(key, Some(GetOptions::new().with_keys_only()))]);
        let response = self.txn("delete", txn).await?;
        if !response.succeeded() {
            return Err(self.refusal("delete", &response, key, expected));
        }
        let prev = response.op_responses().into_iter().find_map(|r| match r {
            TxnOpResponse::Delete(delete) => delete.prev_kvs().first().cloned(),
            _ => None,
        });
        let prev = prev.ok_or_else(|| self.backend("delete", "etcd returned no previous value"))?;
        Ok(KeyValue {
            mod_revision: header_revision(&response),
            ..key_value("delete", &self.endpoints, &prev)?
        })
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<EventStream> {
        watch::start(
            self.client
                .watch_client()
                .max_decoding_message_size(MAX_MESSAGE),
            Arc::clone(&self.endpoints),
            self.request_timeout,
            prefix,
            after.max(0),
        )
        .await
    }

    async fn current_revision(&self) -> Result<Revision> {
        let mut kv = self.client.kv_client();
        let options = GetOptions::new().with_count_only();
        let response = self
            .call("current revision", kv.get(vec![0], Some(options)))
            .await?;
        Ok(response
            .header()
            .map_or(0, etcd_client::ResponseHeader::revision))
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        let mut kv = self.client.kv_client();
        // Physical: return once the history is gone, not merely scheduled to go.
        let options = CompactionOptions::new().with_physical();
        match tokio::time::timeout(self.request_timeout, kv.compact(revision, Some(options))).await
        {
            Ok(Ok(_)) => Ok(()),
            // etcd refuses to compact at or below its last compaction; the trait does not.
            Ok(Err(etcd_client::Error::GRpcStatus(status)))
                if status.message().contains("has been compacted") =>
            {
                Ok(())
            }
            Ok(Err(e)) => Err(self.backend("compact", e)),
            Err(_) => Err(self.backend(
                "compact",
                format_args!("no answer within {:?}", self.request_timeout),
            )),
        }
    }
}
