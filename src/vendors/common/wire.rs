//! Reading vendor answers: the status check every adapter makes first, typed wire structs
//! read from a body or from a tree already parsed, and the errors both produce.
//!
//! Every failure here is `vendor_bad_response` (the answer broke the vendor's contract) or a
//! row of the error table chosen by status ([`status_error`]), never a panic: a vendor body is
//! untrusted input.

use std::marker::PhantomData;

use bytes::Bytes;
use serde::de::DeserializeSeed;
use serde::Deserialize;
use serde_json::Value;

use crate::api::operation::Vendor;
use crate::api::{ApiError, ErrorCode};
// The upstream client's answer type, through the vendors module's re-export.
use crate::upstream::VendorResponse;

/// Something a wire struct can be read from: the vendor's body as it came off the socket, or
/// a JSON tree already parsed from one (an object inside an envelope, one item of a list).
/// Reading from the bytes is what lets a wire struct borrow its strings from the body
/// (`&'de str` fields) instead of copying them through a `Value`.
pub(crate) trait WireSource<'de> {
    fn read<T: Deserialize<'de>>(self) -> Result<T, serde_json::Error>;
}

impl<'de> WireSource<'de> for &'de Value {
    fn read<T: Deserialize<'de>>(self) -> Result<T, serde_json::Error> {
        T::deserialize(self)
    }
}

impl<'de> WireSource<'de> for &'de [u8] {
    fn read<T: Deserialize<'de>>(self) -> Result<T, serde_json::Error> {
        from_body(self)
    }
}

impl<'de> WireSource<'de> for &'de Bytes {
    fn read<T: Deserialize<'de>>(self) -> Result<T, serde_json::Error> {
        from_body(self)
    }
}

/// `serde_json::from_slice`, with the same result and the same error, faster (issue 11): a
/// body that is valid UTF-8 as a whole (every body but a broken one) is checked once and read
/// as a `str`, so the parser does not check every string it borrows again. A body that is not
/// is read as bytes, which reports the broken string where it is (or accepts it where the
/// wire struct skips it), exactly as before.
pub(crate) fn from_body<'de, T: Deserialize<'de>>(body: &'de [u8]) -> Result<T, serde_json::Error> {
    seed_from_body(body, PhantomData)
}

/// [`from_body`] with a `DeserializeSeed`: the whole body is one value (trailing characters
/// are an error), as `serde_json::from_slice` reads it.
pub(crate) fn seed_from_body<'de, S: DeserializeSeed<'de>>(
    body: &'de [u8],
    seed: S,
) -> Result<S::Value, serde_json::Error> {
    match std::str::from_utf8(body) {
        Ok(text) => {
            let mut de = serde_json::Deserializer::from_str(text);
            let value = seed.deserialize(&mut de)?;
            de.end()?;
            Ok(value)
        }
        Err(_) => {
            let mut de = serde_json::Deserializer::from_slice(body);
            let value = seed.deserialize(&mut de)?;
            de.end()?;
            Ok(value)
        }
    }
}

/// Read `what` (a member, a page, …) of a `vendor` answer into its wire struct; a shape that
/// does not fit is `vendor_bad_response` naming `what` and serde's reason.
pub(crate) fn parse_wire<'de, T: Deserialize<'de>>(
    vendor: Vendor,
    what: &str,
    source: impl WireSource<'de>,
) -> Result<T, ApiError> {
    source
        .read()
        .map_err(|e| bad_response(vendor, format!("{what}: {e}")))
}

/// Parse a whole JSON body, or fail with `vendor_bad_response`.
pub fn parse_json<T: serde::de::DeserializeOwned>(
    vendor: Vendor,
    body: &Bytes,
) -> Result<T, ApiError> {
    from_body(body).map_err(|e| bad_response(vendor, e))
}

/// The vendor answered 2xx, but not with what its contract promises.
pub fn bad_response(vendor: Vendor, what: impl std::fmt::Display) -> ApiError {
    ApiError::vendor(
        ErrorCode::VendorBadResponse,
        vendor,
        format!("{vendor} sent a response that does not match its contract: {what}"),
    )
}

/// The first check on every answer: a 2xx passes; anything else is its row of the error table
/// ([`status_error`]) with the vendor's own error text, which `error_text` reads from the body
/// in the vendor's error shape.
pub(crate) fn check_status(
    vendor: Vendor,
    response: &VendorResponse,
    error_text: impl FnOnce(&[u8]) -> Option<String>,
) -> Result<(), ApiError> {
    if response.is_success() {
        return Ok(());
    }
    let message = error_text(&response.body);
    Err(status_error(vendor, response, message.as_deref()))
}

/// The vendor's own error text in a non-2xx body: the first of `keys` (in the vendor's order of
/// preference) that holds text — a string, an object's `message`, or an array of strings
/// (joined with `"; "`) — trimmed. `None` for a body that is not a JSON object or has none.
pub(crate) fn error_text(body: &[u8], keys: &[&str]) -> Option<String> {
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(body) else {
        return None;
    };
    keys.iter().filter_map(|k| body.get(*k)).find_map(text_of)
}

fn text_of(value: &Value) -> Option<String> {
    let text = match value {
        Value::String(s) => s.trim().to_owned(),
        Value::Object(o) => return o.get("message").and_then(text_of),
        Value::Array(items) => {
            let texts: Vec<&str> = items
                .iter()
                .filter_map(Value::as_str)
                .map(str::trim)
                .collect();
            texts.join("; ")
        }
        _ => return None,
    };
    (!text.is_empty()).then_some(text)
}

/// The vendor said the connection's credentials are bad: `vendor_auth_failed` (502).
pub fn credentials_rejected(vendor: Vendor, response: &VendorResponse) -> ApiError {
    ApiError::vendor(
        ErrorCode::VendorAuthFailed,
        vendor,
        format!("{vendor} rejected the connection's credentials"),
    )
    .with_vendor_status(response.status)
}

/// The default mapping of a vendor's non-2xx answer to the error table (docs/api.md).
/// `message` is the vendor's own error text, passed through for 4xx input errors and 403s
/// (it is already redacted: see [`CallContext::call`](crate::vendors::CallContext::call)).
///
/// A 401 means bad credentials. A 403 does not: the credentials are valid but the vendor
/// account may not do this (Libredesk answers 403 for a key that may not see one
/// conversation), so it is `forbidden` here and becomes `not_found` for a read by ID
/// ([`forbidden_for`](crate::vendors::forbidden_for)). A vendor whose 403 *is* its
/// bad-credentials answer (ChatCaptain) maps it with [`credentials_rejected`] itself.
pub fn status_error(vendor: Vendor, response: &VendorResponse, message: Option<&str>) -> ApiError {
    let status = response.status;
    let (code, detail) = match status {
        401 => return credentials_rejected(vendor, response),
        403 => (
            ErrorCode::Forbidden,
            format!(
                "{vendor} does not allow this connection's account to do this: {}",
                truncate(message.unwrap_or("no reason given"), 200)
            ),
        ),
        404 => (ErrorCode::NotFound, format!("{vendor} has no such object")),
        429 => (
            ErrorCode::VendorRateLimited,
            format!("{vendor} is rate limiting this connection"),
        ),
        400 | 409 | 422 => (
            ErrorCode::InvalidRequest,
            format!(
                "{vendor} rejected the request: {}",
                truncate(message.unwrap_or("no reason given"), 200)
            ),
        ),
        s if s >= 500 => (
            ErrorCode::VendorError,
            format!("{vendor} failed with status {s}"),
        ),
        s => (
            ErrorCode::VendorError,
            format!("{vendor} answered with unexpected status {s}"),
        ),
    };
    ApiError::vendor(code, vendor, detail)
        .with_vendor_status(status)
        .with_retry_after(if status == 429 {
            response.retry_after
        } else {
            None
        })
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;

    #[derive(Debug, Deserialize)]
    struct Borrowed<'a> {
        name: &'a str,
    }

    /// `from_body` answers what `serde_json::from_slice` answers, error text included, for
    /// bodies that are valid UTF-8 (read as `str`) and bodies that are not (read as bytes).
    #[test]
    fn from_body_answers_what_from_slice_answers() {
        #[derive(Debug, PartialEq, Deserialize)]
        struct Wire<'a> {
            #[serde(borrow)]
            name: std::borrow::Cow<'a, str>,
        }
        let bodies: &[&[u8]] = &[
            br#"{"name": "Ada"}"#,
            br#"{"name": "A\"da \u00e9"}"#,
            "{\"name\": \"Zo\u{eb}\"}".as_bytes(),
            // Not UTF-8 in a field the struct skips: accepted, as from_slice accepts it.
            b"{\"name\": \"Ada\", \"other\": \"\xff\"}",
            // Not UTF-8 in a field it reads: the same error at the same place.
            b"{\"name\": \"\xffAda\"}",
            br#"{"name": "Ad"#,
            br#"{"name": "Ada"} trailing"#,
            br#"{"name": 1}"#,
            b"{\"name\": \"a\x01b\"}",
            b"",
        ];
        for body in bodies {
            let fast = from_body::<Wire<'_>>(body).map_err(|e| e.to_string());
            let slow = serde_json::from_slice::<Wire<'_>>(body).map_err(|e| e.to_string());
            assert_eq!(fast, slow, "{}", String::from_utf8_lossy(body));
        }
        assert!(from_body::<Wire<'_>>(b"{\"name\": \"Ada\", \"other\": \"\xff\"}").is_ok());
        assert!(from_body::<Wire<'_>>(b"{\"name\": \"\xffAda\"}").is_err());
    }

    #[test]
    fn a_wire_struct_reads_from_a_tree_or_borrows_from_the_bytes() {
        let tree = json!({"name": "Ada"});
        let owned: std::collections::BTreeMap<String, String> =
            parse_wire(Vendor::Caac, "x", &tree).unwrap();
        assert_eq!(owned["name"], "Ada");
        let body = Bytes::from_static(br#"{"name":"Ada"}"#);
        let borrowed: Borrowed<'_> = parse_wire(Vendor::Caac, "x", &body).unwrap();
        assert_eq!(borrowed.name, "Ada");
    }

    #[test]
    fn a_shape_that_does_not_fit_is_a_bad_response_naming_what() {
        for vendor in Vendor::ALL {
            let err = parse_wire::<Borrowed<'_>>(vendor, "member", &json!({"id": 1})).unwrap_err();
            assert_eq!(err.code, ErrorCode::VendorBadResponse);
            assert_eq!(err.vendor, Some(vendor));
            assert!(
                err.detail.contains("member: missing field `name`"),
                "{}",
                err.detail
            );
            let err = parse_wire::<Borrowed<'_>>(vendor, "page", b"{".as_slice()).unwrap_err();
            assert_eq!(err.code, ErrorCode::VendorBadResponse);
        }
    }

    #[test]
    fn error_text_is_the_first_key_with_text() {
        let keys = ["message", "error", "detail"];
        for (body, text) in [
            (
                r#"{"message": " Invalid `email` ", "error": "x"}"#,
                Some("Invalid `email`"),
            ),
            (r#"{"message": "", "error": "bad data"}"#, Some("bad data")),
            (
                r#"{"error": {"message": "member not found"}}"#,
                Some("member not found"),
            ),
            (
                r#"{"message": ["name is required", "email is invalid"]}"#,
                Some("name is required; email is invalid"),
            ),
            (
                r#"{"message": 42, "detail": "Not authenticated"}"#,
                Some("Not authenticated"),
            ),
            (r#"{"statusCode": 500}"#, None),
            (r#"["x"]"#, None),
            ("<html>502</html>", None),
        ] {
            assert_eq!(
                error_text(body.as_bytes(), &keys).as_deref(),
                text,
                "{body}"
            );
        }
    }

    #[test]
    fn only_a_non_2xx_reads_the_error_text() {
        let ok = VendorResponse {
            status: 204,
            ..VendorResponse::default()
        };
        check_status(Vendor::Caac, &ok, |_| panic!("a 2xx has no error text")).unwrap();
        let refused = VendorResponse {
            status: 422,
            body: Bytes::from_static(b"name is required"),
            ..VendorResponse::default()
        };
        let err = check_status(Vendor::Caac, &refused, |body| {
            Some(String::from_utf8_lossy(body).into_owned())
        })
        .unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidRequest);
        assert!(err.detail.ends_with("name is required"), "{}", err.detail);
    }
}
