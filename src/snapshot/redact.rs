//! Cutting a connection's credentials out of vendor text.
//!
//! Some vendors echo the request in an error (`"invalid token k:s"`, the Authorization header
//! in a debug field). Every vendor body is passed through the connection's [`Redactor`] before
//! an adapter reads it, so no credential can reach a response, a cached body or a log line.
//! It searches every form in which a credential can appear in a JSON body: as is, JSON-escaped,
//! percent-encoded, inside the Authorization header value, and as the Basic
//! `base64(key:secret)`.

use base64::Engine;
use bytes::Bytes;
use memchr::memmem::Finder;

/// What replaces a credential. Safe inside a JSON string (no quote, no backslash).
pub const REDACTED: &str = "[redacted]";

/// Shorter values are not searched for: they would match ordinary text (and are no secret).
pub const MIN_SECRET_LEN: usize = 6;

/// The credential forms of one connection, compiled once at config load.
#[derive(Clone, Default)]
pub struct Redactor {
    needles: Vec<Finder<'static>>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redactor({} forms)", self.needles.len())
    }
}

impl Redactor {
    /// `credentials` are the raw values; `auth_header` is the value sent to the vendor.
    pub fn new<'a>(credentials: impl IntoIterator<Item = &'a str>, auth_header: &str) -> Self {
        let mut forms: Vec<String> = Vec::new();
        let values: Vec<&str> = credentials.into_iter().collect();
        for value in &values {
            forms.push((*value).to_owned());
            // As it appears inside a JSON string.
            if let Ok(json) = serde_json::to_string(value) {
                forms.push(json[1..json.len() - 1].to_owned());
            }
            forms.push(
                percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC)
                    .to_string(),
            );
        }
        forms.push(auth_header.to_owned());
        if let Some((_, credentials)) = auth_header.split_once(' ') {
            forms.push(credentials.trim().to_owned());
        }
        // The Basic form of every key:secret pair a vendor could echo.
        if let [key, secret, ..] = values.as_slice() {
            let pair = format!("{key}:{secret}");
            forms.push(base64::engine::general_purpose::STANDARD.encode(&pair));
            forms.push(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&pair));
        }
        forms.retain(|f| f.len() >= MIN_SECRET_LEN);
        // Longest first, so a value inside a longer form never leaves the rest of it behind.
        forms.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        forms.dedup();
        Redactor {
            needles: forms
                .iter()
                .map(|f| Finder::new(f.as_bytes()).into_owned())
                .collect(),
        }
    }

    /// `body` with every credential form replaced by [`REDACTED`]; the same buffer, uncopied,
    /// when there is none (the common case).
    pub fn redact_bytes(&self, body: Bytes) -> Bytes {
        // One SIMD search per form. One aho-corasick pass over all forms was tried and made the
        // page of 30 (a 26 KB vendor body) cost ~10 µs more CPU per request: memmem skips
        // ahead on a form's rare bytes.
        if !self.needles.iter().any(|n| n.find(&body).is_some()) {
            return body;
        }
        let mut text = body.to_vec();
        for needle in &self.needles {
            text = replace_all(&text, needle);
        }
        Bytes::from(text)
    }
}

fn replace_all(haystack: &[u8], needle: &Finder<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(haystack.len());
    let mut rest = haystack;
    while let Some(at) = needle.find(rest) {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(REDACTED.as_bytes());
        rest = &rest[at + needle.needle().len()..];
    }
    out.extend_from_slice(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redactor() -> Redactor {
        Redactor::new(
            ["ld-key-123", "s3cr\"t/value"],
            "token ld-key-123:s3cr\"t/value",
        )
    }

    #[test]
    fn every_form_of_a_credential_is_cut_out() {
        let r = redactor();
        let basic = base64::engine::general_purpose::STANDARD.encode("ld-key-123:s3cr\"t/value");
        let body = format!(
            r#"{{"message":"invalid token ld-key-123:s3cr\"t/value","echo":"Basic {basic}","q":"key=ld-key-123&s=s3cr%22t%2Fvalue","raw":"s3cr\"t/value"}}"#
        );
        let out = r.redact_bytes(Bytes::from(body));
        let text = String::from_utf8(out.to_vec()).unwrap();
        for secret in ["ld-key-123", "s3cr", &basic] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        // Still JSON, with the structure intact.
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert!(value["message"].as_str().unwrap().contains(REDACTED));
    }

    /// The check must find each form on its own, not only when another is there too.
    #[test]
    fn each_form_alone_is_found() {
        let r = redactor();
        let pair = "ld-key-123:s3cr\"t/value";
        let std = base64::engine::general_purpose::STANDARD.encode(pair);
        let url = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(pair);
        for form in [
            "ld-key-123",
            "s3cr\"t/value",
            r#"s3cr\"t/value"#,
            "s3cr%22t%2Fvalue",
            &std,
            &url,
        ] {
            let body = format!("{{\"echo\":\"before {form} after\"}}");
            let out = r.redact_bytes(Bytes::from(body.clone()));
            let text = String::from_utf8(out.to_vec()).unwrap();
            assert_eq!(text, body.replace(form, REDACTED), "{form}");
        }
    }

    #[test]
    fn text_without_credentials_is_not_copied() {
        let r = redactor();
        let body = Bytes::from_static(b"{\"status\":\"success\"}");
        let out = r.redact_bytes(body.clone());
        assert_eq!(out.as_ptr(), body.as_ptr());
    }

    #[test]
    fn short_values_are_not_searched() {
        let r = Redactor::new(["k", "s"], "token k:s");
        let body = Bytes::from_static(b"{\"kinds\":\"s\"}");
        assert_eq!(r.redact_bytes(body.clone()), body);
    }
}
