//! The kubelet's token manager (`pkg/kubelet/token/token_manager.go`) in small: projected
//! service account tokens are cached per pod and requested again once 80% of their lifetime
//! (or 24 hours) has passed. When a new token cannot be had, the cached one is used while it
//! is still valid.

use std::collections::HashMap;
use std::sync::Mutex;

use jiff::Timestamp;

use super::sources::{ServiceAccountToken, ServiceAccountTokenRequest, SourceError, VolumeSources};

/// Tokens older than this are refreshed whatever their lifetime.
const MAX_TTL_SECONDS: i64 = 24 * 60 * 60;

#[derive(Debug, Clone)]
struct CachedToken {
    token: ServiceAccountToken,
    fetched_at: Timestamp,
}

impl CachedToken {
    /// Whether 80% of the lifetime (or 24 hours) has passed at `now`.
    fn requires_refresh(&self, now: Timestamp) -> bool {
        let fetched = self.fetched_at.as_second();
        let lifetime = self.token.expiration.as_second() - fetched;
        let refresh_at = fetched + (lifetime * 8 / 10).min(MAX_TTL_SECONDS);
        now.as_second() >= refresh_at
    }
}

/// Cached tokens, keyed by their request (which names the pod they are bound to).
#[derive(Debug, Default)]
pub struct TokenCache {
    tokens: Mutex<HashMap<ServiceAccountTokenRequest, CachedToken>>,
}

impl TokenCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ServiceAccountTokenRequest, CachedToken>> {
        self.tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The cached token for `request`, or a new one when there is none or it needs a refresh.
    pub async fn get(
        &self,
        sources: &dyn VolumeSources,
        request: &ServiceAccountTokenRequest,
        now: Timestamp,
    ) -> Result<ServiceAccountToken, SourceError> {
        let cached = self.lock().get(request).cloned();
        if let Some(cached) = &cached
            && !cached.requires_refresh(now)
        {
            return Ok(cached.token.clone());
        }
        match sources.service_account_token(request).await {
            Ok(token) => {
                self.lock().insert(
                    request.clone(),
                    CachedToken {
                        token: token.clone(),
                        fetched_at: now,
                    },
                );
                Ok(token)
            }
            Err(err) => match cached {
                Some(cached) if now < cached.token.expiration => {
                    tracing::warn!(%err, service_account = %request.service_account, "token refresh failed; using the cached token");
                    Ok(cached.token)
                }
                _ => Err(err),
            },
        }
    }

    /// Forgets the tokens of a pod.
    pub fn forget_pod(&self, pod_uid: &str) {
        self.lock().retain(|request, _| request.pod_uid != pod_uid);
    }

    /// Forgets the tokens of pods not in `live`.
    pub fn retain_pods(&self, live: &dyn Fn(&str) -> bool) {
        self.lock().retain(|request, _| live(&request.pod_uid));
    }
}
