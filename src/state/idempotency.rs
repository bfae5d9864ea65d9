//! Idempotency records, as docs/api.md "Writes that are safe to repeat" defines them: the values a
//! backend stores and the rules every backend shares (what is a valid key, what identifies
//! "the same request", which answers are stored).
//!
//! Life of a record (per tenant + key):
//!
//! ```text
//!   begin ──absent/expired──▶ InFlight(lease) ──complete(< 500, not 429)──▶ Done(answer), 24 h
//!     │                          │  └──complete(≥ 500 or 429) / release──▶ gone (client may retry)
//!     │                          └──lease expires (the first request died)──▶ gone
//!     ├─ same request, InFlight ─▶ 409 idempotency_in_progress
//!     ├─ same request, Done ─────▶ replay the stored answer, no vendor call
//!     └─ different request ──────▶ 422 idempotency_key_reused
//! ```

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use sha2::{Digest, Sha256};

/// How long a completed record is kept (docs/api.md: 24 h).
pub const RECORD_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// Longest accepted `Idempotency-Key`.
pub const MAX_KEY_LEN: usize = 255;

/// Added to the longest time a request can run to get its in-flight lease.
pub const LEASE_MARGIN: Duration = Duration::from_secs(5);

/// The lease for a request that can run at most `longest_run` (the sum of its vendor calls'
/// endpoint timeouts and budget waits, or the gateway's request deadline). A lease shorter
/// than the request would let a retry start a second copy while the first still runs; one
/// much longer only delays a retry after a crash.
pub fn lease_for(longest_run: Duration) -> Duration {
    longest_run.saturating_add(LEASE_MARGIN)
}

/// The header that carries the key.
pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";

/// The header set on a replayed answer.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";

/// A client's `Idempotency-Key`: 1–255 visible ASCII characters (`!`..=`~`).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

/// Why an `Idempotency-Key` header was refused (400 `invalid_request`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidKey {
    #[error("Idempotency-Key is empty")]
    Empty,
    #[error("Idempotency-Key is longer than {MAX_KEY_LEN} characters")]
    TooLong,
    #[error("Idempotency-Key may contain only visible ASCII characters (no spaces)")]
    BadCharacter,
}

impl IdempotencyKey {
    /// Parse a header value. The value itself never appears in the error (it may be
    /// anything a client sent).
    pub fn parse(raw: &[u8]) -> Result<Self, InvalidKey> {
        if raw.is_empty() {
            return Err(InvalidKey::Empty);
        }
        if raw.len() > MAX_KEY_LEN {
            return Err(InvalidKey::TooLong);
        }
        if !raw.iter().all(|b| b.is_ascii_graphic()) {
            return Err(InvalidKey::BadCharacter);
        }
        Ok(IdempotencyKey(raw.iter().map(|&b| char::from(b)).collect()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdempotencyKey({:?})", self.0)
    }
}

/// Where a record lives: keys are scoped per tenant, so two tenants never collide.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RecordKey {
    pub tenant: String,
    pub key: IdempotencyKey,
}

impl RecordKey {
    pub fn new(tenant: impl Into<String>, key: IdempotencyKey) -> Self {
        RecordKey {
            tenant: tenant.into(),
            key,
        }
    }

    /// The key's name in a shared store: `idem:<len>:<tenant>:<key>` (length-prefixed, so
    /// no tenant/key pair can collide with another whatever characters they contain).
    pub fn storage_key(&self) -> String {
        format!(
            "idem:{}:{}:{}",
            self.tenant.len(),
            self.tenant,
            self.key.as_str()
        )
    }
}

/// "The same request": SHA-256 of the method, path, connection and body (docs/api.md), each
/// length-prefixed so that moving bytes between fields changes the hash.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct RequestFingerprint([u8; 32]);

impl RequestFingerprint {
    /// `path` is the request path without its query; `connection` is the resolved
    /// connection name (so `X-Connection: a` and `?connection=a` are the same request).
    pub fn new(method: &str, path: &str, connection: &str, body: &[u8]) -> Self {
        let mut h = Sha256::new();
        for part in [
            method.as_bytes(),
            path.as_bytes(),
            connection.as_bytes(),
            body,
        ] {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part);
        }
        RequestFingerprint(h.finalize().into())
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Debug for RequestFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RequestFingerprint({})", &self.to_hex()[..12])
    }
}

/// The first request's answer, as replayed: status, the headers that describe the body,
/// and the body.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredAnswer {
    pub status: u16,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Bytes,
}

impl StoredAnswer {
    /// Keep only the headers worth replaying (see [`is_replayed_header`]).
    pub fn new(
        status: u16,
        headers: impl IntoIterator<Item = (HeaderName, HeaderValue)>,
        body: Bytes,
    ) -> Self {
        StoredAnswer {
            status,
            headers: headers
                .into_iter()
                .filter(|(name, _)| is_replayed_header(name))
                .collect(),
            body,
        }
    }

    /// Approximate bytes held, for a store's memory bound.
    pub fn size(&self) -> usize {
        self.body.len()
            + self
                .headers
                .iter()
                .map(|(n, v)| n.as_str().len() + v.len() + 16)
                .sum::<usize>()
    }
}

/// Headers that belong to the answer (replayed) rather than to one delivery of it
/// (`X-Request-Id`, `RateLimit`, `Date`, `Content-Length` … are made fresh per response).
pub fn is_replayed_header(name: &HeaderName) -> bool {
    name == http::header::CONTENT_TYPE
        || name == http::header::LOCATION
        || name == http::header::CONTENT_LOCATION
        || name == http::header::ETAG
        || name == http::header::LAST_MODIFIED
}

/// Whether an answer with this status is stored for replay.
///
/// docs/api.md: "Answers below 500 are stored; a 5xx releases the key". One deliberate
/// exception: a 429 (the vendor's, or the connection's budget or pause) means nothing was
/// done yet and the client is told to come back later; storing it would replay "come back
/// later" for 24 hours. So a 429 releases the key too.
pub fn should_store(status: u16) -> bool {
    status < 500 && status != 429
}

/// A held in-flight lock on a record: proof that this request is the one running it.
///
/// The lock expires after the lease given to `begin`, so a first request that dies (a crash,
/// a panic, a dropped future) blocks its key only that long; after that the key can be
/// started again. `complete`/`release` with an expired lease that someone else has taken
/// over change nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub record: RecordKey,
    /// Unique per `begin`; identifies this holder.
    pub token: u64,
}

/// What `begin` found.
#[derive(Debug, Clone, PartialEq)]
pub enum Begin {
    /// No record: this request runs, holding `Lease` until complete/release or expiry.
    Started(Lease),
    /// The same request is running elsewhere (409 `idempotency_in_progress`); its lease
    /// ends within `lease_remaining` at the latest.
    InFlight { lease_remaining: Duration },
    /// The same request finished before: replay this, with no vendor call.
    Replay(StoredAnswer),
    /// The key was used with a different request (422 `idempotency_key_reused`).
    Mismatch,
}

/// What `complete` did with the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completion {
    /// Stored for replay.
    Stored,
    /// Not storable ([`should_store`] said no): the key was released.
    Released,
    /// The lease had expired and the key was taken over (or is gone): nothing changed.
    LeaseLost,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_one_to_255_visible_ascii() {
        assert!(IdempotencyKey::parse(b"a").is_ok());
        assert!(IdempotencyKey::parse(b"order-42:retry/1~!").is_ok());
        assert!(IdempotencyKey::parse(&[b'k'; 255]).is_ok());
        assert_eq!(IdempotencyKey::parse(b""), Err(InvalidKey::Empty));
        assert_eq!(
            IdempotencyKey::parse(&[b'k'; 256]),
            Err(InvalidKey::TooLong)
        );
        assert_eq!(
            IdempotencyKey::parse(b"two words"),
            Err(InvalidKey::BadCharacter)
        );
        assert_eq!(
            IdempotencyKey::parse("caf\u{e9}".as_bytes()),
            Err(InvalidKey::BadCharacter)
        );
        assert_eq!(
            IdempotencyKey::parse(b"tab\there"),
            Err(InvalidKey::BadCharacter)
        );
    }

    #[test]
    fn fingerprint_covers_method_path_connection_and_body() {
        let base = RequestFingerprint::new("POST", "/v1/messages", "main", b"{\"text\":\"hi\"}");
        assert_eq!(
            base,
            RequestFingerprint::new("POST", "/v1/messages", "main", b"{\"text\":\"hi\"}")
        );
        for other in [
            RequestFingerprint::new("PUT", "/v1/messages", "main", b"{\"text\":\"hi\"}"),
            RequestFingerprint::new("POST", "/v1/contacts", "main", b"{\"text\":\"hi\"}"),
            RequestFingerprint::new("POST", "/v1/messages", "other", b"{\"text\":\"hi\"}"),
            RequestFingerprint::new("POST", "/v1/messages", "main", b"{\"text\":\"ho\"}"),
        ] {
            assert_ne!(base, other);
        }
        // Length prefixes: shifting bytes between fields is a different request.
        assert_ne!(
            RequestFingerprint::new("POST", "/a", "bc", b""),
            RequestFingerprint::new("POST", "/ab", "c", b"")
        );
        assert_eq!(base.to_hex().len(), 64);
    }

    #[test]
    fn storage_keys_cannot_collide_across_tenants() {
        let a = RecordKey::new("a:b", IdempotencyKey::parse(b"c").unwrap());
        let b = RecordKey::new("a", IdempotencyKey::parse(b"b:c").unwrap());
        assert_ne!(a.storage_key(), b.storage_key());
        assert_eq!(a.storage_key(), "idem:3:a:b:c");
    }

    #[test]
    fn a_lease_outlasts_the_longest_run() {
        assert_eq!(
            lease_for(Duration::from_secs(30)),
            Duration::from_secs(30) + LEASE_MARGIN
        );
        assert_eq!(lease_for(Duration::MAX), Duration::MAX);
    }

    #[test]
    fn answers_below_500_are_stored_except_429() {
        assert!(should_store(201));
        assert!(should_store(404));
        assert!(should_store(422));
        assert!(!should_store(429));
        assert!(!should_store(500));
        assert!(!should_store(503));
    }

    #[test]
    fn stored_answers_keep_only_headers_that_describe_the_body() {
        let answer = StoredAnswer::new(
            201,
            [
                (
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                ),
                (
                    HeaderName::from_static("x-request-id"),
                    HeaderValue::from_static("first"),
                ),
                (
                    HeaderName::from_static("ratelimit"),
                    HeaderValue::from_static("\"tenant\";r=1;t=1"),
                ),
                (http::header::LOCATION, HeaderValue::from_static("/v1/x")),
            ],
            Bytes::from_static(b"{}"),
        );
        let names: Vec<&str> = answer.headers.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["content-type", "location"]);
        assert!(answer.size() >= 2);
    }
}
