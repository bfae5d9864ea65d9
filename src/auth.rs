//! JWT verification: the first step of every `/v1` request.
//!
//! The algorithm is pinned by config and the token's own `alg` is never trusted (a token
//! whose header says anything else, `none` included, is rejected). Keys come from a shared
//! secret (HS256), a PEM public key (RS256/ES256) or a JWKS URL, which is fetched on first
//! use and again when a token names an unknown `kid` — at most once per refresh interval, so
//! a flood of forged `kid`s can't turn the gateway into a JWKS load generator.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

use crate::vendors::VendorClient;

const JWKS_FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// Who is calling: the tenant whose connections they may use and the scopes they hold.
#[derive(Debug, Clone)]
pub struct Principal {
    pub tenant: String,
    pub scopes: Vec<String>,
}

impl Principal {
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }
}

/// Why a token was refused. `reason()` is the `reason` label of
/// `switchboard_auth_failures_total`; `detail()` is safe to show the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    Missing,
    Malformed,
    Expired,
    NotYetValid,
    BadSignature,
    WrongAlgorithm,
    WrongIssuer,
    WrongAudience,
    MissingClaim,
    UnknownKey,
}

impl AuthFailure {
    pub fn reason(self) -> &'static str {
        match self {
            AuthFailure::Missing => "missing",
            AuthFailure::Malformed => "malformed",
            AuthFailure::Expired => "expired",
            AuthFailure::NotYetValid => "not_yet_valid",
            AuthFailure::BadSignature => "bad_signature",
            AuthFailure::WrongAlgorithm => "wrong_algorithm",
            AuthFailure::WrongIssuer => "wrong_issuer",
            AuthFailure::WrongAudience => "wrong_audience",
            AuthFailure::MissingClaim => "missing_claim",
            AuthFailure::UnknownKey => "unknown_key",
        }
    }

    pub fn detail(self) -> &'static str {
        match self {
            AuthFailure::Missing => "an `Authorization: Bearer <token>` header is required",
            AuthFailure::Malformed => "the bearer token is not a well-formed JWT",
            AuthFailure::Expired => "the token has expired",
            AuthFailure::NotYetValid => "the token is not valid yet (nbf)",
            AuthFailure::BadSignature => "the token signature does not verify",
            AuthFailure::WrongAlgorithm => {
                "the token is signed with an algorithm this gateway does not accept"
            }
            AuthFailure::WrongIssuer => "the token's issuer is not accepted",
            AuthFailure::WrongAudience => "the token's audience is not accepted",
            AuthFailure::MissingClaim => "the token lacks a required claim (exp, tenant, scope)",
            AuthFailure::UnknownKey => "the token is signed by an unknown key",
        }
    }
}

/// Where verification keys come from.
pub enum KeySource {
    Static(DecodingKey),
    Jwks(Arc<JwksStore>),
}

/// Verifies tokens for one config generation.
pub struct Authenticator {
    algorithm: Algorithm,
    keys: KeySource,
    validation: Validation,
    tenant_claim: String,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("algorithm", &self.algorithm)
            .field("tenant_claim", &self.tenant_claim)
            .finish_non_exhaustive()
    }
}

pub struct AuthSettings {
    pub algorithm: Algorithm,
    pub keys: KeySource,
    pub issuer: Option<Vec<String>>,
    pub audience: Option<Vec<String>>,
    pub tenant_claim: String,
    pub leeway_seconds: u64,
}

impl Authenticator {
    pub fn new(settings: AuthSettings) -> Self {
        let mut validation = Validation::new(settings.algorithm);
        validation.algorithms = vec![settings.algorithm];
        validation.leeway = settings.leeway_seconds;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp"]);
        match &settings.audience {
            Some(aud) => validation.set_audience(aud),
            None => validation.validate_aud = false,
        }
        if let Some(iss) = &settings.issuer {
            validation.set_issuer(iss);
        }
        Authenticator {
            algorithm: settings.algorithm,
            keys: settings.keys,
            validation,
            tenant_claim: settings.tenant_claim,
        }
    }

    /// Verify the `Authorization` header value and return who is calling.
    pub async fn verify(
        &self,
        authorization: Option<&str>,
        client: &VendorClient,
    ) -> Result<Principal, AuthFailure> {
        let header = authorization.ok_or(AuthFailure::Missing)?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(AuthFailure::Missing)?;
        let token_header =
            jsonwebtoken::decode_header(token).map_err(|_| AuthFailure::Malformed)?;
        if token_header.alg != self.algorithm {
            return Err(AuthFailure::WrongAlgorithm);
        }
        let claims = match &self.keys {
            KeySource::Static(key) => self.decode(token, key)?,
            KeySource::Jwks(store) => {
                let key = store.key_for(token_header.kid.as_deref(), client).await?;
                self.decode(token, &key)?
            }
        };
        self.principal(claims)
    }

    fn decode(&self, token: &str, key: &DecodingKey) -> Result<Value, AuthFailure> {
        use jsonwebtoken::errors::ErrorKind as K;
        jsonwebtoken::decode::<Value>(token, key, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                K::ExpiredSignature => AuthFailure::Expired,
                K::ImmatureSignature => AuthFailure::NotYetValid,
                K::InvalidSignature => AuthFailure::BadSignature,
                K::InvalidAlgorithm | K::MissingAlgorithm => AuthFailure::WrongAlgorithm,
                K::InvalidIssuer => AuthFailure::WrongIssuer,
                K::InvalidAudience => AuthFailure::WrongAudience,
                K::MissingRequiredClaim(_) | K::InvalidClaimFormat(_) => AuthFailure::MissingClaim,
                _ => AuthFailure::Malformed,
            })
    }

    fn principal(&self, claims: Value) -> Result<Principal, AuthFailure> {
        let tenant = claims
            .get(&self.tenant_claim)
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or(AuthFailure::MissingClaim)?
            .to_owned();
        let scopes = match claims.get("scope") {
            Some(Value::String(s)) => s.split_whitespace().map(str::to_owned).collect(),
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            _ => return Err(AuthFailure::MissingClaim),
        };
        Ok(Principal { tenant, scopes })
    }
}

/// Keys fetched from a JWKS URL. Survives config reloads while the URL stays the same.
pub struct JwksStore {
    url: String,
    min_refresh: Duration,
    keys: ArcSwap<HashMap<String, Arc<DecodingKey>>>,
    /// When the last fetch started; guards the refresh rate. Held only to read and set the
    /// instant, never across an await.
    last_fetch: Mutex<Option<Instant>>,
}

impl JwksStore {
    pub fn new(url: String, min_refresh: Duration) -> Self {
        JwksStore {
            url,
            min_refresh,
            keys: ArcSwap::from_pointee(HashMap::new()),
            last_fetch: Mutex::new(None),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    async fn key_for(
        &self,
        kid: Option<&str>,
        client: &VendorClient,
    ) -> Result<Arc<DecodingKey>, AuthFailure> {
        let kid = kid.ok_or(AuthFailure::UnknownKey)?;
        if let Some(key) = self.keys.load().get(kid) {
            return Ok(key.clone());
        }
        if self.claim_refresh() {
            self.refresh(client).await;
        }
        self.keys
            .load()
            .get(kid)
            .cloned()
            .ok_or(AuthFailure::UnknownKey)
    }

    /// True when this caller may fetch now (first fetch, or the interval has passed).
    fn claim_refresh(&self) -> bool {
        let mut last = match self.last_fetch.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let now = Instant::now();
        match *last {
            Some(at) if now.duration_since(at) < self.min_refresh => false,
            _ => {
                *last = Some(now);
                true
            }
        }
    }

    async fn refresh(&self, client: &VendorClient) {
        let response = match client.fetch_url(&self.url, JWKS_FETCH_TIMEOUT).await {
            Ok(r) if r.is_success() => r,
            Ok(r) => {
                tracing::warn!(status = r.status, "JWKS fetch answered an error status");
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "JWKS fetch failed");
                return;
            }
        };
        let set: JwkSet = match serde_json::from_slice(&response.body) {
            Ok(set) => set,
            Err(e) => {
                tracing::warn!(error = %e, "JWKS document is not a JWK set");
                return;
            }
        };
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            let Some(kid) = jwk.common.key_id.clone() else {
                continue;
            };
            match DecodingKey::from_jwk(jwk) {
                Ok(key) => {
                    keys.insert(kid, Arc::new(key));
                }
                Err(e) => tracing::warn!(kid = %kid, error = %e, "skipping unusable JWK"),
            }
        }
        tracing::info!(keys = keys.len(), "JWKS refreshed");
        self.keys.store(Arc::new(keys));
    }
}

/// Mint an HS256 token (for `switchboard token`, demos and tests).
pub fn mint_hs256(
    secret: &[u8],
    tenant_claim: &str,
    tenant: &str,
    scope: &str,
    ttl: Duration,
    extra: &serde_json::Map<String, Value>,
) -> Result<String, jsonwebtoken::errors::Error> {
    let now = jsonwebtoken::get_current_timestamp();
    let mut claims = extra.clone();
    claims.insert(tenant_claim.to_owned(), Value::from(tenant));
    claims.insert("scope".to_owned(), Value::from(scope));
    claims.insert("iat".to_owned(), Value::from(now));
    claims.insert("exp".to_owned(), Value::from(now + ttl.as_secs()));
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hs(secret: &[u8]) -> Authenticator {
        Authenticator::new(AuthSettings {
            algorithm: Algorithm::HS256,
            keys: KeySource::Static(DecodingKey::from_secret(secret)),
            issuer: None,
            audience: Some(vec!["switchboard".into()]),
            tenant_claim: "tenant".into(),
            leeway_seconds: 0,
        })
    }

    fn token(secret: &[u8], claims: Value) -> String {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(secret),
        )
        .unwrap()
    }

    fn future() -> u64 {
        jsonwebtoken::get_current_timestamp() + 600
    }

    #[tokio::test]
    async fn accepts_a_good_token() {
        let t = token(
            b"s",
            serde_json::json!({"exp": future(), "tenant": "acme", "scope": "contacts:read raw:read", "aud": "switchboard"}),
        );
        let p = hs(b"s")
            .verify(Some(&format!("Bearer {t}")), &VendorClient::new())
            .await
            .unwrap();
        assert_eq!(p.tenant, "acme");
        assert!(p.has_scope("raw:read"));
        assert!(!p.has_scope("contacts:write"));
    }

    #[tokio::test]
    async fn rejects_bad_tokens_with_a_reason() {
        let client = VendorClient::new();
        let auth = hs(b"s");
        let good = serde_json::json!({"exp": future(), "tenant": "acme", "scope": "x", "aud": "switchboard"});
        let cases = [
            (None, AuthFailure::Missing),
            (Some("Basic abc".to_owned()), AuthFailure::Missing),
            (Some("Bearer not.a.jwt".to_owned()), AuthFailure::Malformed),
            (
                Some(format!("Bearer {}", token(b"other", good.clone()))),
                AuthFailure::BadSignature,
            ),
            (
                Some(format!(
                    "Bearer {}",
                    token(
                        b"s",
                        serde_json::json!({"exp": 1000, "tenant": "a", "scope": "x", "aud": "switchboard"})
                    )
                )),
                AuthFailure::Expired,
            ),
            (
                Some(format!(
                    "Bearer {}",
                    token(
                        b"s",
                        serde_json::json!({"exp": future(), "tenant": "a", "scope": "x", "aud": "other"})
                    )
                )),
                AuthFailure::WrongAudience,
            ),
            (
                Some(format!(
                    "Bearer {}",
                    token(
                        b"s",
                        serde_json::json!({"exp": future(), "scope": "x", "aud": "switchboard"})
                    )
                )),
                AuthFailure::MissingClaim,
            ),
        ];
        for (header, want) in cases {
            let got = auth.verify(header.as_deref(), &client).await.unwrap_err();
            assert_eq!(got, want, "{header:?}");
        }
    }

    #[tokio::test]
    async fn enforces_issuer_and_not_before_when_configured() {
        let auth = Authenticator::new(AuthSettings {
            algorithm: Algorithm::HS256,
            keys: KeySource::Static(DecodingKey::from_secret(b"s")),
            issuer: Some(vec!["https://idp.example".into()]),
            audience: None,
            tenant_claim: "tenant".into(),
            leeway_seconds: 0,
        });
        let client = VendorClient::new();
        let now = jsonwebtoken::get_current_timestamp();
        let good = token(
            b"s",
            serde_json::json!({"exp": future(), "tenant": "t", "scope": "x", "iss": "https://idp.example", "nbf": now - 10}),
        );
        assert!(auth
            .verify(Some(&format!("Bearer {good}")), &client)
            .await
            .is_ok());
        let foreign = token(
            b"s",
            serde_json::json!({"exp": future(), "tenant": "t", "scope": "x", "iss": "https://evil.example"}),
        );
        assert_eq!(
            auth.verify(Some(&format!("Bearer {foreign}")), &client)
                .await
                .unwrap_err(),
            AuthFailure::WrongIssuer
        );
        let early = token(
            b"s",
            serde_json::json!({"exp": future(), "tenant": "t", "scope": "x", "iss": "https://idp.example", "nbf": now + 600}),
        );
        assert_eq!(
            auth.verify(Some(&format!("Bearer {early}")), &client)
                .await
                .unwrap_err(),
            AuthFailure::NotYetValid
        );
        // a custom tenant claim and an array of scopes
        let custom = Authenticator::new(AuthSettings {
            algorithm: Algorithm::HS256,
            keys: KeySource::Static(DecodingKey::from_secret(b"s")),
            issuer: None,
            audience: None,
            tenant_claim: "org".into(),
            leeway_seconds: 0,
        });
        let t = token(
            b"s",
            serde_json::json!({"exp": future(), "org": "acme", "scope": ["a", "b"]}),
        );
        let p = custom
            .verify(Some(&format!("Bearer {t}")), &client)
            .await
            .unwrap();
        assert_eq!(p.tenant, "acme");
        assert!(p.has_scope("b"));
    }

    #[tokio::test]
    async fn rejects_alg_none() {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use base64::Engine;
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let claims = URL_SAFE_NO_PAD.encode(
            serde_json::to_vec(&serde_json::json!({"exp": future(), "tenant": "acme", "scope": "x", "aud": "switchboard"})).unwrap(),
        );
        let got = hs(b"s")
            .verify(
                Some(&format!("Bearer {header}.{claims}.")),
                &VendorClient::new(),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(got, AuthFailure::Malformed | AuthFailure::WrongAlgorithm),
            "{got:?}"
        );
    }
}
