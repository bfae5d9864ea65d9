//! Signatures in both directions.
//!
//! - **Outbound** (gateway → subscriber): Standard Webhooks. Headers `webhook-id` (the event ID,
//!   the same on every retry, the receiver's idempotency key), `webhook-timestamp` (Unix
//!   seconds of *this attempt*) and `webhook-signature: v1,<base64 HMAC-SHA256 of
//!   "id.timestamp.body">`. The secret is written `whsec_<base64>` (24–64 random bytes), the
//!   format the Standard Webhooks libraries read, so a receiver can verify with any of them.
//! - **Inbound** (vendor → gateway), checked before anything else is read:
//!   Libredesk `sha256=<hex HMAC-SHA256(secret, raw body)>` in `X-Libredesk-Signature` (what the
//!   server sends) or `X-Signature-256` (what its docs page says); CAAC's AI-agent call carries
//!   `Authorization: Bearer <token>`.
//!
//! Every comparison is constant time (`hmac`'s `verify_slice`), and no error carries a secret,
//! a token or the signature received.

use std::fmt;
use std::sync::OnceLock;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::Mac;
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::api::cursor::{hmac_sha256, HmacSha256};

pub const WEBHOOK_ID: HeaderName = HeaderName::from_static("webhook-id");
pub const WEBHOOK_TIMESTAMP: HeaderName = HeaderName::from_static("webhook-timestamp");
pub const WEBHOOK_SIGNATURE: HeaderName = HeaderName::from_static("webhook-signature");

/// Prefix of a Standard Webhooks symmetric secret.
pub const SECRET_PREFIX: &str = "whsec_";

/// A Standard Webhooks signing secret (the decoded key bytes). Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningSecret(Vec<u8>);

impl SigningSecret {
    /// Parse `whsec_<base64>`; the key must be 24 to 64 bytes (Standard Webhooks).
    /// The error never quotes the value.
    pub fn parse(raw: &str) -> Result<SigningSecret, &'static str> {
        let body = raw
            .trim()
            .strip_prefix(SECRET_PREFIX)
            .ok_or("use the Standard Webhooks format whsec_<base64 of 24 to 64 random bytes>")?;
        let key = STANDARD
            .decode(body)
            .map_err(|_| "the part after whsec_ is not valid base64")?;
        if !(24..=64).contains(&key.len()) {
            return Err("the key must decode to 24 to 64 bytes");
        }
        Ok(SigningSecret(key))
    }

    /// A fresh random secret (the demo mints one per run).
    pub fn generate() -> (SigningSecret, String) {
        let key: [u8; 32] = rand::random();
        let text = format!("{SECRET_PREFIX}{}", STANDARD.encode(key));
        (SigningSecret(key.to_vec()), text)
    }

    fn mac(&self) -> HmacSha256 {
        hmac_sha256(&self.0)
    }
}

impl fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

fn signed_mac(secret: &SigningSecret, id: &str, timestamp: i64, body: &[u8]) -> HmacSha256 {
    let mut mac = secret.mac();
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`.
pub fn sign(secret: &SigningSecret, id: &str, timestamp: i64, body: &[u8]) -> String {
    let tag = signed_mac(secret, id, timestamp, body)
        .finalize()
        .into_bytes();
    format!("v1,{}", STANDARD.encode(tag))
}

/// The three Standard Webhooks headers for one delivery attempt at `timestamp` (Unix seconds).
pub fn webhook_headers(
    secret: &SigningSecret,
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<[(HeaderName, HeaderValue); 3], SignatureError> {
    let value = |s: String| HeaderValue::from_str(&s).map_err(|_| SignatureError::Malformed);
    let mut signature = value(sign(secret, id, timestamp, body))?;
    signature.set_sensitive(true);
    Ok([
        (WEBHOOK_ID, value(id.to_owned())?),
        (WEBHOOK_TIMESTAMP, HeaderValue::from(timestamp)),
        (WEBHOOK_SIGNATURE, signature),
    ])
}

/// Why a signature or token was refused. Deliberately coarse: the caller answers 401 either way
/// and logs the variant, never the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("no signature header")]
    Missing,
    #[error("the signature header is malformed")]
    Malformed,
    #[error("the signature does not match the body")]
    Mismatch,
    #[error("the timestamp is outside the tolerated window")]
    Stale,
}

impl SignatureError {
    /// A bounded word for metric labels and logs.
    pub fn reason(self) -> &'static str {
        match self {
            SignatureError::Missing => "missing",
            SignatureError::Malformed => "malformed",
            SignatureError::Mismatch => "mismatch",
            SignatureError::Stale => "stale",
        }
    }
}

/// Verify a Standard Webhooks delivery the way a receiver does (the demo receiver, tests):
/// the timestamp within `tolerance_secs` of `now_secs`, and any of the space-separated `v1,`
/// signatures matching.
pub fn verify_standard(
    secret: &SigningSecret,
    headers: &HeaderMap,
    body: &[u8],
    now_secs: i64,
    tolerance_secs: i64,
) -> Result<(), SignatureError> {
    let text = |name: &HeaderName| -> Result<&str, SignatureError> {
        headers
            .get(name)
            .ok_or(SignatureError::Missing)?
            .to_str()
            .map_err(|_| SignatureError::Malformed)
    };
    let id = text(&WEBHOOK_ID)?;
    let timestamp: i64 = text(&WEBHOOK_TIMESTAMP)?
        .trim()
        .parse()
        .map_err(|_| SignatureError::Malformed)?;
    if (now_secs - timestamp).abs() > tolerance_secs {
        return Err(SignatureError::Stale);
    }
    let mut seen_v1 = false;
    for candidate in text(&WEBHOOK_SIGNATURE)?.split(' ') {
        let Some(encoded) = candidate.strip_prefix("v1,") else {
            continue;
        };
        seen_v1 = true;
        let Ok(tag) = STANDARD.decode(encoded) else {
            continue;
        };
        if signed_mac(secret, id, timestamp, body)
            .verify_slice(&tag)
            .is_ok()
        {
            return Ok(());
        }
    }
    Err(if seen_v1 {
        SignatureError::Mismatch
    } else {
        SignatureError::Malformed
    })
}

// ----- inbound: Libredesk -----------------------------------------------------------------

/// The header the Libredesk server sends.
pub const LIBREDESK_SIGNATURE: HeaderName = HeaderName::from_static("x-libredesk-signature");
/// The header Libredesk's webhooks docs page names.
pub const LIBREDESK_SIGNATURE_DOCS: HeaderName = HeaderName::from_static("x-signature-256");

/// A Libredesk connection's `webhook_secret` (used as raw bytes, as Libredesk does). Never
/// printed.
#[derive(Clone, PartialEq, Eq)]
pub struct LibredeskSecret(Vec<u8>);

impl LibredeskSecret {
    pub fn new(secret: &str) -> Result<LibredeskSecret, &'static str> {
        if secret.len() < 16 {
            return Err("use at least 16 characters (the secret set on the Libredesk webhook)");
        }
        Ok(LibredeskSecret(secret.as_bytes().to_vec()))
    }
}

impl fmt::Debug for LibredeskSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// `sha256=<hex>` as Libredesk computes it (for the sandbox that plays Libredesk, and tests).
pub fn libredesk_signature(secret: &LibredeskSecret, body: &[u8]) -> String {
    let mut mac = hmac_sha256(&secret.0);
    mac.update(body);
    let tag = mac.finalize().into_bytes();
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256=");
    for b in tag {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// Verify a Libredesk webhook: `sha256=<hex>` in `X-Libredesk-Signature`, else in
/// `X-Signature-256`, over the raw body. Hex digits of either case are accepted.
pub fn verify_libredesk(
    secret: &LibredeskSecret,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), SignatureError> {
    let value = headers
        .get(LIBREDESK_SIGNATURE)
        .or_else(|| headers.get(LIBREDESK_SIGNATURE_DOCS))
        .ok_or(SignatureError::Missing)?;
    let text = value
        .to_str()
        .map_err(|_| SignatureError::Malformed)?
        .trim();
    let hex = text
        .strip_prefix("sha256=")
        .ok_or(SignatureError::Malformed)?;
    let tag = decode_hex(hex).ok_or(SignatureError::Malformed)?;
    let mut mac = hmac_sha256(&secret.0);
    mac.update(body);
    mac.verify_slice(&tag).map_err(|_| SignatureError::Mismatch)
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() != 64 {
        return None;
    }
    let digit = |c: u8| -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    };
    s.as_bytes()
        .chunks(2)
        .map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect()
}

// ----- inbound: CAAC bearer token ---------------------------------------------------------

/// The token configured in CAAC for its AI-agent call. Never printed. Compared in constant
/// time by MAC-ing both sides under a per-process random key, so neither the content nor the
/// length of the expected token leaks through timing.
#[derive(Clone)]
pub struct BearerToken {
    digest: [u8; 32],
}

fn token_key() -> &'static [u8; 32] {
    static KEY: OnceLock<[u8; 32]> = OnceLock::new();
    KEY.get_or_init(rand::random)
}

fn token_mac(token: &[u8]) -> HmacSha256 {
    let mut mac = hmac_sha256(token_key());
    mac.update(token);
    mac
}

impl BearerToken {
    pub fn new(token: &str) -> Result<BearerToken, &'static str> {
        if token.len() < 16 {
            return Err("use at least 16 characters");
        }
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("use visible ASCII characters only");
        }
        Ok(BearerToken {
            digest: token_mac(token.as_bytes()).finalize().into_bytes().into(),
        })
    }

    /// Check `Authorization: Bearer <token>` (scheme case-insensitive, RFC 9110).
    pub fn verify(&self, headers: &HeaderMap) -> Result<(), SignatureError> {
        let value = headers
            .get(http::header::AUTHORIZATION)
            .ok_or(SignatureError::Missing)?;
        let text = value.to_str().map_err(|_| SignatureError::Malformed)?;
        let (scheme, token) = text.split_once(' ').ok_or(SignatureError::Malformed)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(SignatureError::Malformed);
        }
        token_mac(token.trim().as_bytes())
            .verify_slice(&self.digest)
            .map_err(|_| SignatureError::Mismatch)
    }
}

impl fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    /// The test vector of the Standard Webhooks reference libraries (Go `TestWebhookSign`).
    #[test]
    fn signs_the_standard_webhooks_test_vector() {
        let secret = SigningSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(
            sign(
                &secret,
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                br#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    /// The second published vector (the Rust reference library's `test_sign`).
    #[test]
    fn signs_the_rust_reference_library_vector() {
        let secret = SigningSecret::parse("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap();
        assert_eq!(
            sign(
                &secret,
                "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
                1649367553,
                br#"{"email":"test@example.com","username":"test_user"}"#
            ),
            "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="
        );
    }

    #[test]
    fn headers_verify_and_any_change_breaks_them() {
        let (secret, text) = SigningSecret::generate();
        assert!(text.starts_with("whsec_"));
        assert_eq!(SigningSecret::parse(&text).unwrap(), secret);
        let body = br#"{"id":"evt_1","type":"message.received"}"#;
        let mut map = HeaderMap::new();
        for (k, v) in webhook_headers(&secret, "evt_1", 1_700_000_000, body).unwrap() {
            map.insert(k, v);
        }
        assert!(map.get(WEBHOOK_SIGNATURE).unwrap().is_sensitive());
        assert_eq!(
            verify_standard(&secret, &map, body, 1_700_000_010, 300),
            Ok(())
        );
        assert_eq!(
            verify_standard(&secret, &map, b"{}", 1_700_000_010, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_standard(&secret, &map, body, 1_700_001_000, 300),
            Err(SignatureError::Stale)
        );
        let (other, _) = SigningSecret::generate();
        assert_eq!(
            verify_standard(&other, &map, body, 1_700_000_000, 300),
            Err(SignatureError::Mismatch)
        );
        let mut tampered = map.clone();
        tampered.insert(WEBHOOK_ID, HeaderValue::from_static("evt_2"));
        assert_eq!(
            verify_standard(&secret, &tampered, body, 1_700_000_000, 300),
            Err(SignatureError::Mismatch)
        );
        // Rotation: several signatures, one valid, is accepted.
        let valid = map
            .get(WEBHOOK_SIGNATURE)
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        let mut rotated = map.clone();
        rotated.insert(
            WEBHOOK_SIGNATURE,
            HeaderValue::from_str(&format!("v1,AAAA {valid}")).unwrap(),
        );
        assert_eq!(
            verify_standard(&secret, &rotated, body, 1_700_000_000, 300),
            Ok(())
        );
        let mut missing = map.clone();
        missing.remove(WEBHOOK_TIMESTAMP);
        assert_eq!(
            verify_standard(&secret, &missing, body, 1_700_000_000, 300),
            Err(SignatureError::Missing)
        );
    }

    #[test]
    fn secrets_must_be_standard_webhooks_keys_and_never_print() {
        assert!(SigningSecret::parse("plain-secret-value-123456789").is_err());
        assert!(SigningSecret::parse("whsec_c2hvcnQ=").is_err()); // 5 bytes
        assert!(SigningSecret::parse("whsec_%%%").is_err());
        let long = format!("whsec_{}", STANDARD.encode([7u8; 65]));
        assert!(SigningSecret::parse(&long).is_err());
        let s = SigningSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(format!("{s:?}"), "<redacted>");
    }

    const LIBREDESK_BODY: &[u8] =
        include_bytes!("../../tests/fixtures/libredesk/webhooks/message_created.json");

    #[test]
    fn libredesk_signature_is_accepted_in_either_header() {
        let secret = LibredeskSecret::new("libredesk-webhook-secret").unwrap();
        let sig = libredesk_signature(&secret, LIBREDESK_BODY);
        assert!(sig.starts_with("sha256=") && sig.len() == 71, "{sig}");
        for header in ["X-Libredesk-Signature", "X-Signature-256"] {
            assert_eq!(
                verify_libredesk(&secret, &headers(&[(header, &sig)]), LIBREDESK_BODY),
                Ok(()),
                "{header}"
            );
        }
        let upper = format!("sha256={}", sig["sha256=".len()..].to_ascii_uppercase());
        assert_eq!(
            verify_libredesk(
                &secret,
                &headers(&[("x-libredesk-signature", &upper)]),
                LIBREDESK_BODY
            ),
            Ok(())
        );
    }

    #[test]
    fn libredesk_signature_refuses_what_does_not_match() {
        let secret = LibredeskSecret::new("libredesk-webhook-secret").unwrap();
        let sig = libredesk_signature(&secret, LIBREDESK_BODY);
        let other = LibredeskSecret::new("another-webhook-secret!").unwrap();
        assert_eq!(
            verify_libredesk(
                &other,
                &headers(&[("x-libredesk-signature", &sig)]),
                LIBREDESK_BODY
            ),
            Err(SignatureError::Mismatch)
        );
        let mut body = LIBREDESK_BODY.to_vec();
        body.push(b' ');
        assert_eq!(
            verify_libredesk(&secret, &headers(&[("x-libredesk-signature", &sig)]), &body),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_libredesk(&secret, &HeaderMap::new(), LIBREDESK_BODY),
            Err(SignatureError::Missing)
        );
        for bad in [
            sig.trim_start_matches("sha256=").to_owned(), // no prefix
            "sha256=zz".to_owned(),
            format!("sha1={}", &sig[7..]),
            format!("sha256={}", &sig[7..69]), // short
            format!("sha256={}g", &sig[7..70]),
        ] {
            assert_eq!(
                verify_libredesk(
                    &secret,
                    &headers(&[("x-signature-256", &bad)]),
                    LIBREDESK_BODY
                ),
                Err(SignatureError::Malformed),
                "{bad}"
            );
        }
        assert!(LibredeskSecret::new("short").is_err());
        assert_eq!(format!("{secret:?}"), "<redacted>");
    }

    #[test]
    fn bearer_token_is_checked_exactly() {
        let token = BearerToken::new("caac-agent-token-0123456789").unwrap();
        assert_eq!(
            token.verify(&headers(&[(
                "authorization",
                "Bearer caac-agent-token-0123456789"
            )])),
            Ok(())
        );
        assert_eq!(
            token.verify(&headers(&[(
                "authorization",
                "bearer caac-agent-token-0123456789"
            )])),
            Ok(())
        );
        for (value, want) in [
            (
                "Bearer caac-agent-token-012345678",
                SignatureError::Mismatch,
            ),
            (
                "Bearer caac-agent-token-01234567890",
                SignatureError::Mismatch,
            ),
            ("Bearer ", SignatureError::Mismatch),
            (
                "Basic caac-agent-token-0123456789",
                SignatureError::Malformed,
            ),
            ("caac-agent-token-0123456789", SignatureError::Malformed),
        ] {
            assert_eq!(
                token.verify(&headers(&[("authorization", value)])),
                Err(want),
                "{value}"
            );
        }
        assert_eq!(
            token.verify(&HeaderMap::new()),
            Err(SignatureError::Missing)
        );
        assert!(BearerToken::new("short").is_err());
        assert!(BearerToken::new("has a space in it, sixteen+").is_err());
        assert_eq!(format!("{token:?}"), "<redacted>");
    }
}
