//! JWT verification: the first step of every `/v1` request.
//!
//! The algorithm is pinned by config and the token's own `alg` is never trusted (a token
//! whose header says anything else, `none` included, is rejected). A configured issuer or
//! audience is a *required* claim: a token without it is refused like a token with the wrong
//! one. A token whose `crit` header names an extension is refused (RFC 7515 §4.1.11: this
//! gateway implements none). Keys come from a shared secret (HS256), a PEM public key
//! (RS256/ES256) or a JWKS URL. JWKS keys are fetched on first use, again when a token names
//! an unknown `kid` — at most once per `jwks_min_refresh_seconds`, so a flood of forged `kid`s
//! can't turn the gateway into a JWKS load generator — and periodically in the background
//! ([`JwksStore::refresh_if_due`]), so a key the identity provider removed stops being trusted.
//! Requests that need keys while a fetch is running wait for that one fetch (single flight).
//!
//! A verified token is reused ([`VerifiedTokens`]): the next request with the very same token
//! skips decoding and the signature check. An entry is keyed by the token's SHA-256, lives
//! in the [`Authenticator`] of one config generation (a reload starts empty), is never used
//! past the token's `exp` or before its `nbf` (leeway included), and is ignored once the JWKS
//! keys it was checked with were replaced (a JWKS fetch bumps [`JwksStore`]'s key generation).
//! Refusals are never cached: each one is counted in `switchboard_auth_failures_total`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::upstream::VendorClient;

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
/// `switchboard_auth_failures_total`; `detail()` (also its `Display`) is safe to show the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.detail())]
pub enum AuthFailure {
    Missing,
    /// More than one `Authorization` header: which one counts is ambiguous.
    RepeatedHeader,
    Malformed,
    /// The token's `crit` header names extensions this gateway does not implement.
    CriticalExtension,
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
            AuthFailure::RepeatedHeader => "repeated_header",
            AuthFailure::Malformed => "malformed",
            AuthFailure::CriticalExtension => "critical_extension",
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
            AuthFailure::RepeatedHeader => "send exactly one `Authorization` header",
            AuthFailure::Malformed => "the bearer token is not a well-formed JWT",
            AuthFailure::CriticalExtension => {
                "the token's `crit` header names extensions this gateway does not support"
            }
            AuthFailure::Expired => "the token has expired",
            AuthFailure::NotYetValid => "the token is not valid yet (nbf)",
            AuthFailure::BadSignature => "the token signature does not verify",
            AuthFailure::WrongAlgorithm => {
                "the token is signed with an algorithm this gateway does not accept"
            }
            AuthFailure::WrongIssuer => "the token's issuer is not accepted",
            AuthFailure::WrongAudience => "the token's audience is not accepted",
            AuthFailure::MissingClaim => {
                "the token lacks a required claim (exp, the tenant claim, scope, and iss and aud \
                 when the gateway is configured with them)"
            }
            AuthFailure::UnknownKey => "the token is signed by an unknown key",
        }
    }
}

/// The one `Authorization` value of a request: `None` when absent; refused when repeated
/// (RFC 9110 §5.3: it is not a list, so two of them are ambiguous) or not visible ASCII.
pub fn authorization_value(headers: &http::HeaderMap) -> Result<Option<&str>, AuthFailure> {
    let mut values = headers.get_all(http::header::AUTHORIZATION).iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(AuthFailure::RepeatedHeader);
    }
    first
        .map(|v| v.to_str().map_err(|_| AuthFailure::Malformed))
        .transpose()
}

/// The token of `Bearer <token>`. The scheme is case-insensitive (RFC 9110 §11.1); one or more
/// spaces separate it from the token, which is a single token68 (no inner whitespace).
fn bearer_token(header: &str) -> Result<&str, AuthFailure> {
    let (scheme, rest) = header.split_once(' ').ok_or(AuthFailure::Missing)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthFailure::Missing);
    }
    let token = rest.trim_matches(|c| c == ' ' || c == '\t');
    if token.is_empty() {
        return Err(AuthFailure::Missing);
    }
    if token.bytes().any(|b| b.is_ascii_whitespace()) {
        return Err(AuthFailure::Malformed);
    }
    Ok(token)
}

/// The parts of the JOSE header this gateway reads, decoded from the token itself (not through
/// jsonwebtoken's `Header`, which drops `crit`).
struct JoseHeader {
    alg: Option<String>,
    kid: Option<String>,
}

fn jose_header(token: &str) -> Result<JoseHeader, AuthFailure> {
    let encoded = token.split('.').next().ok_or(AuthFailure::Malformed)?;
    let bytes = URL_SAFE_NO_PAD
        .decode(encoded.trim_end_matches('='))
        .map_err(|_| AuthFailure::Malformed)?;
    let header: serde_json::Map<String, Value> =
        serde_json::from_slice(&bytes).map_err(|_| AuthFailure::Malformed)?;
    // RFC 7515 §4.1.11: a recipient that does not understand every listed extension must
    // reject the token. This gateway implements no extension, so any `crit` (an empty or
    // malformed one is invalid too) is a refusal.
    if header.contains_key("crit") {
        return Err(AuthFailure::CriticalExtension);
    }
    let text = |name: &str| -> Result<Option<String>, AuthFailure> {
        match header.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(AuthFailure::Malformed),
        }
    };
    Ok(JoseHeader {
        alg: text("alg")?,
        kid: text("kid")?,
    })
}

/// Where verification keys come from.
pub enum KeySource {
    Static(DecodingKey),
    Jwks(Arc<JwksStore>),
}

/// Verified tokens reused per config generation, at most this many (LRU beyond).
const VERIFIED_TOKENS: u64 = 10_000;

/// The longest a verified token is reused before it is checked again, whatever its `exp`.
const VERIFIED_REUSE: Duration = Duration::from_secs(300);

/// A token that verified: who it names and the wall-clock window (unix seconds, leeway
/// included) in which it stays valid.
#[derive(Debug, Clone)]
struct VerifiedToken {
    principal: Arc<Principal>,
    /// `nbf - leeway`: before it, the token is not valid yet (0 without `nbf`).
    not_before: u64,
    /// `exp + leeway`: after it, the token has expired.
    not_after: u64,
    /// The JWKS key generation its signature was checked against (0 for a static key).
    key_generation: u64,
}

/// Each entry lives until its token expires, [`VERIFIED_REUSE`] at most.
struct UntilExpiry {
    wall_clock: fn() -> u64,
}

impl moka::Expiry<[u8; 32], Arc<VerifiedToken>> for UntilExpiry {
    fn expire_after_create(
        &self,
        _key: &[u8; 32],
        value: &Arc<VerifiedToken>,
        _now: Instant,
    ) -> Option<Duration> {
        let left = value.not_after.saturating_sub((self.wall_clock)());
        Some(Duration::from_secs(left).min(VERIFIED_REUSE))
    }
}

/// The verified-token cache of one [`Authenticator`], keyed by the token's SHA-256.
type VerifiedTokens = moka::future::Cache<[u8; 32], Arc<VerifiedToken>>;

/// Verifies tokens for one config generation.
pub struct Authenticator {
    algorithm: Algorithm,
    keys: KeySource,
    validation: Validation,
    tenant_claim: String,
    leeway: u64,
    verified: VerifiedTokens,
    /// Unix seconds now; tests move it.
    wall_clock: fn() -> u64,
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
        // A configured issuer or audience is required, not merely checked when present: a
        // token the same identity provider minted for another service (no `aud`) must fail.
        let mut required = vec!["exp"];
        match &settings.audience {
            Some(aud) => {
                validation.set_audience(aud);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        if let Some(iss) = &settings.issuer {
            validation.set_issuer(iss);
            required.push("iss");
        }
        validation.set_required_spec_claims(&required);
        let wall_clock = jsonwebtoken::get_current_timestamp;
        Authenticator {
            algorithm: settings.algorithm,
            keys: settings.keys,
            validation,
            tenant_claim: settings.tenant_claim,
            leeway: settings.leeway_seconds,
            verified: moka::future::Cache::builder()
                .max_capacity(VERIFIED_TOKENS)
                .expire_after(UntilExpiry { wall_clock })
                .build(),
            wall_clock,
        }
    }

    /// The JWKS store, when keys come from a JWKS URL (the background refresher reads it).
    pub fn jwks(&self) -> Option<&Arc<JwksStore>> {
        match &self.keys {
            KeySource::Jwks(store) => Some(store),
            KeySource::Static(_) => None,
        }
    }

    /// Verify the `Authorization` header value and return who is calling (shared with the
    /// verified-token cache: a reused token costs no copy).
    pub async fn verify(
        &self,
        authorization: Option<&str>,
        client: &VendorClient,
    ) -> Result<Arc<Principal>, AuthFailure> {
        self.verify_reusing(authorization, client)
            .await
            .map(|(principal, _)| principal)
    }

    /// [`Self::verify`], saying whether a verified token was reused.
    async fn verify_reusing(
        &self,
        authorization: Option<&str>,
        client: &VendorClient,
    ) -> Result<(Arc<Principal>, Reuse), AuthFailure> {
        let header = authorization.ok_or(AuthFailure::Missing)?;
        let token = bearer_token(header)?;
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        // Read before the key is: an entry tagged with it is stale once the keys change.
        let key_generation = self.key_generation();
        if let Some(entry) = self.verified.get(&digest).await {
            let now = (self.wall_clock)();
            if entry.key_generation == key_generation
                && entry.not_before <= now
                && now <= entry.not_after
            {
                return Ok((Arc::clone(&entry.principal), Reuse::Reused));
            }
        }
        let (principal, window) = self.verify_token(token, client).await?;
        let principal = Arc::new(principal);
        if let Some((not_before, not_after)) = window {
            let entry = VerifiedToken {
                principal: Arc::clone(&principal),
                not_before,
                not_after,
                key_generation,
            };
            self.verified.insert(digest, Arc::new(entry)).await;
        }
        Ok((principal, Reuse::Verified))
    }

    /// The JWKS key generation (0 for a static key, which only a reload changes).
    fn key_generation(&self) -> u64 {
        match &self.keys {
            KeySource::Static(_) => 0,
            KeySource::Jwks(store) => store.key_generation(),
        }
    }

    /// Decode and check one token; with who it names, the wall-clock window in which it may be
    /// reused (`None`: not reusable, its `exp` or `nbf` not plain seconds).
    async fn verify_token(
        &self,
        token: &str,
        client: &VendorClient,
    ) -> Result<(Principal, Option<(u64, u64)>), AuthFailure> {
        let jose = jose_header(token)?;
        let alg = jose
            .alg
            .as_deref()
            .and_then(|a| a.parse::<Algorithm>().ok());
        if alg != Some(self.algorithm) {
            return Err(AuthFailure::WrongAlgorithm);
        }
        let claims = match &self.keys {
            KeySource::Static(key) => self.decode(token, key)?,
            KeySource::Jwks(store) => {
                let key = store.key_for(jose.kid.as_deref(), client).await?;
                self.decode(token, &key)?
            }
        };
        let window = self.reuse_window(&claims);
        Ok((self.principal(claims)?, window))
    }

    /// `(nbf - leeway, exp + leeway)` in unix seconds, the bounds jsonwebtoken checked.
    fn reuse_window(&self, claims: &Value) -> Option<(u64, u64)> {
        let not_after = claims.get("exp")?.as_u64()?.saturating_add(self.leeway);
        let not_before = match claims.get("nbf") {
            None => 0,
            Some(nbf) => nbf.as_u64()?.saturating_sub(self.leeway),
        };
        Some((not_before, not_after))
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

/// Whether [`Authenticator::verify_reusing`] checked the token or reused an earlier check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reuse {
    Verified,
    Reused,
}

/// How often a JWKS is fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JwksIntervals {
    /// An unknown `kid` refetches at most this often; also the shortest periodic interval.
    pub min_refresh: Duration,
    /// The periodic interval when the JWKS answer carries no `Cache-Control: max-age`, and the
    /// longest one when it does.
    pub refresh: Duration,
}

impl JwksIntervals {
    /// When to refresh next after a fetch whose answer said `max-age` (if it did): the
    /// identity provider's own hint, kept within `[min_refresh, refresh]`.
    fn next_interval(&self, max_age: Option<u64>) -> Duration {
        match max_age {
            Some(seconds) => Duration::from_secs(seconds)
                .max(self.min_refresh)
                .min(self.refresh.max(self.min_refresh)),
            None => self.refresh.max(self.min_refresh),
        }
    }
}

/// Fetch bookkeeping; held only to read and update, never across an await.
#[derive(Debug, Default)]
struct FetchState {
    /// When the last fetch started (guards the unknown-`kid` refetch rate).
    last_attempt: Option<Instant>,
    /// When the periodic refresher should fetch next (`None` before the first fetch).
    next_due: Option<Instant>,
}

/// Keys fetched from a JWKS URL. Survives config reloads while the URL stays the same.
pub struct JwksStore {
    url: String,
    intervals: Mutex<JwksIntervals>,
    keys: ArcSwap<HashMap<String, Arc<DecodingKey>>>,
    state: Mutex<FetchState>,
    /// Single flight: the one fetch in progress holds it; requests that need keys meanwhile
    /// wait for it and then read its result instead of failing or fetching again.
    in_flight: tokio::sync::Mutex<()>,
    /// Completed fetches (successful or not): a waiter that sees it change knows a fetch
    /// finished while it waited.
    completed: AtomicU64,
    /// +1 each time `keys` is replaced (after the store): a verified token remembered under an
    /// older generation is checked again.
    key_generation: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

impl JwksStore {
    pub fn new(url: String, intervals: JwksIntervals) -> Self {
        JwksStore {
            url,
            intervals: Mutex::new(intervals),
            keys: ArcSwap::from_pointee(HashMap::new()),
            state: Mutex::new(FetchState::default()),
            in_flight: tokio::sync::Mutex::new(()),
            completed: AtomicU64::new(0),
            key_generation: AtomicU64::new(0),
        }
    }

    /// Which set of keys is current; changes whenever a fetch replaced them.
    pub fn key_generation(&self) -> u64 {
        self.key_generation.load(Ordering::Acquire)
    }

    /// Replace the keys, then bump the key generation (in this order: a reader that sees the
    /// new generation sees the new keys).
    fn replace_keys(&self, keys: HashMap<String, Arc<DecodingKey>>) {
        self.keys.store(Arc::new(keys));
        self.key_generation.fetch_add(1, Ordering::Release);
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// A reload may change the intervals of a store it keeps (same URL).
    pub fn set_intervals(&self, intervals: JwksIntervals) {
        *lock(&self.intervals) = intervals;
    }

    fn intervals(&self) -> JwksIntervals {
        *lock(&self.intervals)
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
        let seen = self.completed.load(Ordering::Acquire);
        let _flight = self.in_flight.lock().await;
        // A fetch finished while this request waited: use its result, don't fetch again.
        if self.completed.load(Ordering::Acquire) == seen && self.claim_refresh() {
            self.fetch(client).await;
        }
        self.keys
            .load()
            .get(kid)
            .cloned()
            .ok_or(AuthFailure::UnknownKey)
    }

    /// True when an unknown `kid` may fetch now (first fetch, or the interval has passed).
    fn claim_refresh(&self) -> bool {
        let min_refresh = self.intervals().min_refresh;
        let mut state = lock(&self.state);
        let now = Instant::now();
        match state.last_attempt {
            Some(at) if now.duration_since(at) < min_refresh => false,
            _ => {
                state.last_attempt = Some(now);
                true
            }
        }
    }

    /// How long until the periodic refresh is due; `None` before the first fetch (the first
    /// request that needs a key fetches).
    pub fn until_due(&self) -> Option<Duration> {
        lock(&self.state)
            .next_due
            .map(|due| due.saturating_duration_since(Instant::now()))
    }

    /// The periodic refresh: fetch when due, so a key the identity provider removed stops
    /// being trusted within one interval. Called by the JWKS refresher background service.
    pub async fn refresh_if_due(&self, client: &VendorClient) {
        if self.until_due().is_none_or(|d| !d.is_zero()) {
            return;
        }
        let _flight = self.in_flight.lock().await;
        if self.until_due().is_none_or(|d| !d.is_zero()) {
            return; // a fetch finished while this one waited
        }
        lock(&self.state).last_attempt = Some(Instant::now());
        self.fetch(client).await;
    }

    /// One fetch; the caller holds `in_flight`. A failed fetch keeps the current keys and
    /// schedules the next periodic attempt after `min_refresh`.
    async fn fetch(&self, client: &VendorClient) {
        let intervals = self.intervals();
        let outcome = self.fetch_keys(client).await;
        let next = match outcome {
            Some((keys, max_age)) => {
                tracing::info!(keys = keys.len(), "JWKS refreshed");
                self.replace_keys(keys);
                intervals.next_interval(max_age)
            }
            None => intervals.min_refresh,
        };
        lock(&self.state).next_due = Some(Instant::now() + next);
        self.completed.fetch_add(1, Ordering::Release);
    }

    async fn fetch_keys(
        &self,
        client: &VendorClient,
    ) -> Option<(HashMap<String, Arc<DecodingKey>>, Option<u64>)> {
        let response = match client.fetch_url(&self.url, JWKS_FETCH_TIMEOUT).await {
            Ok(r) if r.is_success() => r,
            Ok(r) => {
                tracing::warn!(status = r.status, "JWKS fetch answered an error status");
                return None;
            }
            Err(e) => {
                tracing::warn!(error = %e, "JWKS fetch failed");
                return None;
            }
        };
        let set: JwkSet = match serde_json::from_slice(&response.body) {
            Ok(set) => set,
            Err(e) => {
                tracing::warn!(error = %e, "JWKS document is not a JWK set");
                return None;
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
        Some((keys, response.max_age))
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
impl Authenticator {
    /// The same authenticator reading the time from `wall_clock` when it reuses a token.
    fn with_wall_clock(mut self, wall_clock: fn() -> u64) -> Self {
        self.wall_clock = wall_clock;
        self
    }
}

#[cfg(test)]
impl JwksStore {
    /// Install keys as a fetch would, and mark a fetch as just attempted (so an unknown `kid`
    /// does not fetch from the URL).
    fn install_keys(&self, keys: &[(&str, &[u8])]) {
        lock(&self.state).last_attempt = Some(Instant::now());
        self.replace_keys(
            keys.iter()
                .map(|(kid, secret)| {
                    (
                        (*kid).to_owned(),
                        Arc::new(DecodingKey::from_secret(secret)),
                    )
                })
                .collect(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_auth_failure_is_an_error_whose_text_is_its_safe_detail() {
        let e: Box<dyn std::error::Error> = Box::new(AuthFailure::Expired);
        assert_eq!(e.to_string(), AuthFailure::Expired.detail());
    }

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
    async fn a_configured_issuer_or_audience_is_a_required_claim() {
        let client = VendorClient::new();
        let auth = Authenticator::new(AuthSettings {
            algorithm: Algorithm::HS256,
            keys: KeySource::Static(DecodingKey::from_secret(b"s")),
            issuer: Some(vec!["https://idp.example".into()]),
            audience: Some(vec!["switchboard".into()]),
            tenant_claim: "tenant".into(),
            leeway_seconds: 0,
        });
        let claims = |extra: Value| {
            let mut c = serde_json::json!({"exp": future(), "tenant": "t", "scope": "x"});
            for (k, v) in extra.as_object().unwrap() {
                c[k] = v.clone();
            }
            format!("Bearer {}", token(b"s", c))
        };
        let both = claims(serde_json::json!({"iss": "https://idp.example", "aud": "switchboard"}));
        assert!(auth.verify(Some(&both), &client).await.is_ok());
        // minted by the same identity provider for another service: no `aud`
        let no_aud = claims(serde_json::json!({"iss": "https://idp.example"}));
        assert_eq!(
            auth.verify(Some(&no_aud), &client).await.unwrap_err(),
            AuthFailure::MissingClaim
        );
        let no_iss = claims(serde_json::json!({"aud": "switchboard"}));
        assert_eq!(
            auth.verify(Some(&no_iss), &client).await.unwrap_err(),
            AuthFailure::MissingClaim
        );
        // without configuration, neither claim is needed
        let open = hs_without_audience(b"s");
        assert!(open
            .verify(Some(&claims(serde_json::json!({}))), &client)
            .await
            .is_ok());
    }

    fn hs_without_audience(secret: &[u8]) -> Authenticator {
        Authenticator::new(AuthSettings {
            algorithm: Algorithm::HS256,
            keys: KeySource::Static(DecodingKey::from_secret(secret)),
            issuer: None,
            audience: None,
            tenant_claim: "tenant".into(),
            leeway_seconds: 0,
        })
    }

    #[tokio::test]
    async fn a_crit_header_is_refused() {
        let client = VendorClient::new();
        let claims = serde_json::json!({"exp": future(), "tenant": "acme", "scope": "x", "aud": "switchboard"});
        for crit in [vec!["exp".to_owned()], vec!["b64".to_owned()], vec![]] {
            let mut header = jsonwebtoken::Header::new(Algorithm::HS256);
            header.crit = Some(crit.clone());
            let t = jsonwebtoken::encode(
                &header,
                &claims,
                &jsonwebtoken::EncodingKey::from_secret(b"s"),
            )
            .unwrap();
            assert_eq!(
                hs(b"s")
                    .verify(Some(&format!("Bearer {t}")), &client)
                    .await
                    .unwrap_err(),
                AuthFailure::CriticalExtension,
                "crit {crit:?}"
            );
        }
        // the same token without `crit` is fine
        let t = token(b"s", claims);
        assert!(hs(b"s")
            .verify(Some(&format!("Bearer {t}")), &client)
            .await
            .is_ok());
    }

    #[tokio::test]
    async fn the_bearer_scheme_is_case_insensitive() {
        let client = VendorClient::new();
        let t = token(
            b"s",
            serde_json::json!({"exp": future(), "tenant": "acme", "scope": "x", "aud": "switchboard"}),
        );
        for scheme in ["Bearer", "bearer", "BEARER", "BeArEr"] {
            for sep in [" ", "   "] {
                let header = format!("{scheme}{sep}{t}");
                assert!(
                    hs(b"s").verify(Some(&header), &client).await.is_ok(),
                    "{header:?}"
                );
            }
        }
        for bad in [
            format!("Bearer{t}"),
            format!("Bearerx {t}"),
            "Bearer ".to_owned(),
        ] {
            assert_eq!(
                hs(b"s").verify(Some(&bad), &client).await.unwrap_err(),
                AuthFailure::Missing,
                "{bad:?}"
            );
        }
        assert_eq!(
            hs(b"s")
                .verify(Some(&format!("Bearer {t} extra")), &client)
                .await
                .unwrap_err(),
            AuthFailure::Malformed
        );
    }

    #[test]
    fn a_repeated_authorization_header_is_refused() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(authorization_value(&headers), Ok(None));
        headers.append(
            http::header::AUTHORIZATION,
            http::HeaderValue::from_static("Bearer a"),
        );
        assert_eq!(authorization_value(&headers), Ok(Some("Bearer a")));
        headers.append(
            http::header::AUTHORIZATION,
            http::HeaderValue::from_static("Bearer b"),
        );
        assert_eq!(
            authorization_value(&headers),
            Err(AuthFailure::RepeatedHeader)
        );
    }

    #[test]
    fn jwks_refresh_honours_max_age_within_bounds() {
        let intervals = JwksIntervals {
            min_refresh: Duration::from_secs(30),
            refresh: Duration::from_secs(300),
        };
        assert_eq!(intervals.next_interval(None), Duration::from_secs(300));
        assert_eq!(intervals.next_interval(Some(120)), Duration::from_secs(120));
        assert_eq!(intervals.next_interval(Some(0)), Duration::from_secs(30));
        assert_eq!(
            intervals.next_interval(Some(86_400)),
            Duration::from_secs(300)
        );
    }

    fn claims_with(exp: u64, extra: Value) -> Value {
        let mut c =
            serde_json::json!({"exp": exp, "tenant": "acme", "scope": "x", "aud": "switchboard"});
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    }

    #[tokio::test]
    async fn a_verified_token_is_reused_and_a_refusal_is_not() {
        let client = VendorClient::new();
        let auth = hs(b"s");
        let bearer = format!(
            "Bearer {}",
            token(b"s", claims_with(future(), serde_json::json!({})))
        );
        let first = auth.verify_reusing(Some(&bearer), &client).await.unwrap();
        assert_eq!(first.1, Reuse::Verified);
        let again = auth.verify_reusing(Some(&bearer), &client).await.unwrap();
        assert_eq!(again.1, Reuse::Reused);
        assert_eq!(again.0.tenant, "acme");
        // another token is its own entry: same claims but another tenant
        let other = format!(
            "Bearer {}",
            token(
                b"s",
                claims_with(future(), serde_json::json!({"tenant": "globex"}))
            )
        );
        let (principal, reuse) = auth.verify_reusing(Some(&other), &client).await.unwrap();
        assert_eq!(
            (principal.tenant.as_str(), reuse),
            ("globex", Reuse::Verified)
        );
        // a refusal is checked (and counted) every time
        let forged = format!(
            "Bearer {}",
            token(b"other", claims_with(future(), serde_json::json!({})))
        );
        for _ in 0..2 {
            assert_eq!(
                auth.verify_reusing(Some(&forged), &client)
                    .await
                    .unwrap_err(),
                AuthFailure::BadSignature
            );
        }
    }

    /// The wall clock of the reuse tests: real time plus an offset each test sets.
    static LATE: AtomicU64 = AtomicU64::new(0);
    static EARLY: AtomicU64 = AtomicU64::new(0);

    fn late_clock() -> u64 {
        jsonwebtoken::get_current_timestamp() + LATE.load(Ordering::SeqCst)
    }

    fn early_clock() -> u64 {
        jsonwebtoken::get_current_timestamp() - EARLY.load(Ordering::SeqCst)
    }

    #[tokio::test]
    async fn a_verified_token_is_never_reused_past_exp_plus_leeway() {
        let client = VendorClient::new();
        let auth = hs(b"s").with_wall_clock(late_clock);
        let now = jsonwebtoken::get_current_timestamp();
        // valid for 100 s more in real time (jsonwebtoken checks real time)
        let bearer = format!(
            "Bearer {}",
            token(b"s", claims_with(now + 100, serde_json::json!({})))
        );
        auth.verify_reusing(Some(&bearer), &client).await.unwrap();
        LATE.store(90, Ordering::SeqCst);
        let (_, reuse) = auth.verify_reusing(Some(&bearer), &client).await.unwrap();
        assert_eq!(reuse, Reuse::Reused, "before exp");
        // the reuse clock is past exp: the token is checked again, not served from memory
        LATE.store(200, Ordering::SeqCst);
        let (_, reuse) = auth.verify_reusing(Some(&bearer), &client).await.unwrap();
        assert_eq!(reuse, Reuse::Verified, "past exp");
    }

    #[tokio::test]
    async fn a_verified_token_is_never_reused_before_nbf_minus_leeway() {
        let client = VendorClient::new();
        let auth = hs(b"s").with_wall_clock(early_clock);
        let now = jsonwebtoken::get_current_timestamp();
        let bearer = format!(
            "Bearer {}",
            token(
                b"s",
                claims_with(future(), serde_json::json!({"nbf": now - 50}))
            )
        );
        auth.verify_reusing(Some(&bearer), &client).await.unwrap();
        EARLY.store(10, Ordering::SeqCst);
        let (_, reuse) = auth.verify_reusing(Some(&bearer), &client).await.unwrap();
        assert_eq!(reuse, Reuse::Reused, "after nbf");
        // the reuse clock went back before nbf (a stepped clock): checked again
        EARLY.store(500, Ordering::SeqCst);
        let (_, reuse) = auth.verify_reusing(Some(&bearer), &client).await.unwrap();
        assert_eq!(reuse, Reuse::Verified, "before nbf");
    }

    #[tokio::test]
    async fn a_verified_token_is_checked_again_after_the_jwks_keys_change() {
        let client = VendorClient::new();
        let store = Arc::new(JwksStore::new(
            "http://127.0.0.1:9/jwks".into(),
            JwksIntervals {
                min_refresh: Duration::from_secs(600),
                refresh: Duration::from_secs(600),
            },
        ));
        store.install_keys(&[("k1", b"first")]);
        let auth = Authenticator::new(AuthSettings {
            algorithm: Algorithm::HS256,
            keys: KeySource::Jwks(store.clone()),
            issuer: None,
            audience: Some(vec!["switchboard".into()]),
            tenant_claim: "tenant".into(),
            leeway_seconds: 0,
        });
        let signed = |kid: &str, secret: &[u8]| {
            let mut header = jsonwebtoken::Header::new(Algorithm::HS256);
            header.kid = Some(kid.to_owned());
            let t = jsonwebtoken::encode(
                &header,
                &claims_with(future(), serde_json::json!({})),
                &jsonwebtoken::EncodingKey::from_secret(secret),
            )
            .unwrap();
            format!("Bearer {t}")
        };
        let bearer = signed("k1", b"first");
        auth.verify_reusing(Some(&bearer), &client).await.unwrap();
        let (_, reuse) = auth.verify_reusing(Some(&bearer), &client).await.unwrap();
        assert_eq!(reuse, Reuse::Reused);
        // the identity provider rotated k1 out
        store.install_keys(&[("k2", b"second")]);
        assert_eq!(
            auth.verify_reusing(Some(&bearer), &client)
                .await
                .unwrap_err(),
            AuthFailure::UnknownKey
        );
        // … or kept the kid with new key material
        store.install_keys(&[("k1", b"rotated")]);
        assert_eq!(
            auth.verify_reusing(Some(&bearer), &client)
                .await
                .unwrap_err(),
            AuthFailure::BadSignature
        );
        let fresh = signed("k1", b"rotated");
        auth.verify_reusing(Some(&fresh), &client).await.unwrap();
        let (_, reuse) = auth.verify_reusing(Some(&fresh), &client).await.unwrap();
        assert_eq!(reuse, Reuse::Reused);
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
