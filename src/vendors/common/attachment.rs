//! Attachments of `POST /v1/messages`, checked once for every vendor: [`prepare`] turns the
//! caller's `attachments: [{url | data, name, type}]` into [`AttachmentFile`]s (or the first
//! problem, naming the field: `attachments[1].data`), and the helpers below are what an
//! adapter needs to hand a file to its vendor (a multipart upload, the bytes, a refusal).
//!
//! The rules, in the order they are checked (docs/api.md "Attachments"):
//!
//! - at most [`MAX_ATTACHMENTS`] per message;
//! - exactly one of `url` or `data`;
//! - `name`: 1–255 characters, no control characters, quotes, slashes or backslashes (it goes
//!   into a multipart header and into the vendor's file name);
//! - `type`: a MIME type `top/sub` with `top` one of image, audio, video, application, text,
//!   no parameters;
//! - `data`: standard base64 (RFC 4648 §4, padding optional, no line breaks), not empty, and
//!   at most the configured `attachment_max_bytes` once decoded (else 413
//!   `payload_too_large`); the request's `body_limit_bytes` applies before any of this;
//! - `url`: an absolute `https` URL of at most 2048 characters, without credentials, whose
//!   host is a name or a public address (never `localhost`, a loopback, private, link-local
//!   or unspecified address).
//!
//! The gateway never fetches a `url`: a vendor that takes a link fetches it itself; a vendor
//! that needs the bytes gets `data`, and a `url` for it is refused ([`data_only`]). So an
//! attachment can never make the gateway reach into the network it runs in.

use std::net::IpAddr;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;

use super::vocab::attachment_type;
use crate::api::model::{AttachmentContent, AttachmentFile, NewAttachment};
use crate::api::operation::Vendor;
use crate::api::{ApiError, ErrorCode};
use crate::upstream::VendorBody;

/// Most attachments one message may carry (vendors that take fewer say so themselves).
pub const MAX_ATTACHMENTS: usize = 10;

/// The default of `attachment_max_bytes` (the gateway file): 5 MiB decoded.
pub const DEFAULT_MAX_BYTES: usize = 5 * 1024 * 1024;

const MAX_NAME_CHARS: usize = 255;
const MAX_URL_CHARS: usize = 2048;
const MIME_FAMILIES: &[&str] = &["image", "audio", "video", "application", "text"];

/// Standard alphabet; padding optional (both `aGk=` and `aGk` read as "hi").
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// What a connection's vendor takes, for `GET /v1/capabilities`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttachmentSupport {
    /// `data`, `url`, or both: the fields an attachment may use on this vendor.
    pub sources: &'static [&'static str],
    /// Most attachments per message on this vendor.
    pub max_count: usize,
}

/// Check and decode every attachment of a message; `max_bytes` caps each decoded file.
/// Runs before any vendor call, whatever the vendor.
pub fn prepare(
    attachments: &[NewAttachment],
    max_bytes: usize,
) -> Result<Vec<AttachmentFile>, ApiError> {
    if attachments.len() > MAX_ATTACHMENTS {
        return Err(ApiError::invalid(format!(
            "attachments: at most {MAX_ATTACHMENTS} per message, got {}",
            attachments.len()
        )));
    }
    attachments
        .iter()
        .enumerate()
        .map(|(i, a)| prepare_one(i, a, max_bytes))
        .collect()
}

fn prepare_one(
    i: usize,
    attachment: &NewAttachment,
    max_bytes: usize,
) -> Result<AttachmentFile, ApiError> {
    let field = |name: &str| format!("attachments[{i}].{name}");
    let content = match (&attachment.url, &attachment.data) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(format!(
                "attachments[{i}]: give exactly one of url or data, not both"
            )))
        }
        (None, None) => {
            return Err(ApiError::invalid(format!(
                "attachments[{i}]: give url (a public https link) or data (the file in base64)"
            )))
        }
        (Some(url), None) => AttachmentContent::Url(check_url(&field("url"), url)?),
        (None, Some(data)) => AttachmentContent::Data(decode(&field("data"), data, max_bytes)?),
    };
    let name = check_name(&field("name"), attachment.name.as_deref())?;
    let mime = check_mime(&field("type"), attachment.type_.as_deref())?;
    Ok(AttachmentFile {
        name,
        kind: attachment_type(Some(&mime)),
        mime,
        content,
    })
}

fn check_name(field: &str, name: Option<&str>) -> Result<String, ApiError> {
    let name = name.map(str::trim).unwrap_or_default();
    if name.is_empty() {
        return Err(ApiError::invalid(format!(
            "{field} is required: the file's name, e.g. invoice.pdf"
        )));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(ApiError::invalid(format!(
            "{field} is longer than {MAX_NAME_CHARS} characters"
        )));
    }
    if name
        .chars()
        .any(|c| c.is_control() || matches!(c, '"' | '/' | '\\'))
    {
        return Err(ApiError::invalid(format!(
            "{field} must not contain control characters, quotes, slashes or backslashes"
        )));
    }
    Ok(name.to_owned())
}

/// `top/sub`, RFC 6838 restricted-name characters, `top` in [`MIME_FAMILIES`]; lower-cased.
fn check_mime(field: &str, mime: Option<&str>) -> Result<String, ApiError> {
    let Some(mime) = mime.map(str::trim).filter(|m| !m.is_empty()) else {
        return Err(ApiError::invalid(format!(
            "{field} is required: the file's MIME type, e.g. image/png"
        )));
    };
    let mime = mime.to_ascii_lowercase();
    let restricted_name = |s: &str| {
        !s.is_empty()
            && s.len() <= 127
            && s.starts_with(|c: char| c.is_ascii_alphanumeric())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "!#$&-^_.+".contains(c))
    };
    match mime.split_once('/') {
        Some((top, sub)) if restricted_name(top) && restricted_name(sub) => {
            if MIME_FAMILIES.contains(&top) {
                Ok(mime)
            } else {
                Err(ApiError::invalid(format!(
                    "{field} {mime:?} is not a file type a message can carry; use an {} type",
                    MIME_FAMILIES.join(", ")
                )))
            }
        }
        _ => Err(ApiError::invalid(format!(
            "{field} {mime:?} is not a MIME type such as image/png (no parameters)"
        ))),
    }
}

fn decode(field: &str, data: &str, max_bytes: usize) -> Result<Vec<u8>, ApiError> {
    let too_large = |size: String| {
        ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("{field} is {size} bytes decoded; the limit is {max_bytes} bytes"),
        )
    };
    // Refuse before decoding anything when even the shortest reading is over the cap.
    let least = (data.len() / 4 * 3).saturating_sub(2);
    if least > max_bytes {
        return Err(too_large(format!("at least {least}")));
    }
    let bytes = BASE64.decode(data.as_bytes()).map_err(|e| {
        ApiError::invalid(format!(
            "{field} is not valid base64 (standard alphabet, no line breaks): {e}"
        ))
    })?;
    if bytes.is_empty() {
        return Err(ApiError::invalid(format!("{field} is empty")));
    }
    if bytes.len() > max_bytes {
        return Err(too_large(bytes.len().to_string()));
    }
    Ok(bytes)
}

fn check_url(field: &str, raw: &str) -> Result<String, ApiError> {
    let bad = |why: &str| ApiError::invalid(format!("{field} {why}"));
    if raw.len() > MAX_URL_CHARS {
        return Err(bad(&format!("is longer than {MAX_URL_CHARS} characters")));
    }
    let url = url::Url::parse(raw.trim()).map_err(|e| bad(&format!("is not a URL: {e}")))?;
    if url.scheme() != "https" {
        return Err(bad("must be an https URL"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("must not carry credentials"));
    }
    let public = match url.host() {
        Some(url::Host::Domain(name)) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            !(name == "localhost"
                || name.ends_with(".localhost")
                || name.ends_with(".local")
                || name.ends_with(".internal")
                || !name.contains('.'))
        }
        Some(url::Host::Ipv4(ip)) => is_public(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => is_public(IpAddr::V6(ip)),
        None => false,
    };
    if !public {
        return Err(bad(
            "must name a public host, not a local or private address",
        ));
    }
    Ok(url.into())
}

fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_documentation()
                // 100.64.0.0/10, carrier-grade NAT (shared address space)
                || (v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || (first & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (first & 0xffc0) == 0xfe80) // link local fe80::/10
        }
    }
}

/// The files of a vendor that stores attachments itself and so needs their bytes: each file
/// with its data, or a 400 naming the first attachment given as a `url` (the gateway does not
/// fetch URLs), or one beyond `max_count`.
pub fn data_only(
    vendor: Vendor,
    files: &[AttachmentFile],
    max_count: usize,
) -> Result<Vec<(&AttachmentFile, &[u8])>, ApiError> {
    if files.len() > max_count {
        return Err(ApiError::invalid(format!(
            "attachments: {vendor} takes at most {max_count} per message"
        )));
    }
    files
        .iter()
        .enumerate()
        .map(|(i, file)| match &file.content {
            AttachmentContent::Data(bytes) => Ok((file, bytes.as_slice())),
            AttachmentContent::Url(_) => Err(ApiError::invalid(format!(
                "attachments[{i}].url: {vendor} stores the file itself and the gateway never \
                 fetches URLs; send the file's bytes in attachments[{i}].data"
            ))),
        })
        .collect()
}

/// The 400 for attachments on a vendor that cannot take them; `why` says why.
pub fn refused(vendor: Vendor, why: &str) -> ApiError {
    ApiError::invalid(format!(
        "attachments: {vendor} cannot send attachments ({why}); see `attachments` in \
         GET /v1/capabilities"
    ))
}

/// A `multipart/form-data` body with one file part `field` (the file's name and type in its
/// headers) followed by the text `fields`. `file.name` and `file.mime` passed [`prepare`], so
/// neither can break out of its header line.
pub fn multipart_file(
    field: &str,
    file: &AttachmentFile,
    bytes: &[u8],
    fields: &[(&str, String)],
) -> VendorBody {
    let boundary = format!("switchboard-{:016x}", rand::random::<u64>());
    let mut body = Vec::with_capacity(bytes.len() + 256);
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; \
             filename=\"{}\"\r\nContent-Type: {}\r\n\r\n",
            file.name, file.mime
        )
        .as_bytes(),
    );
    body.extend_from_slice(bytes);
    body.extend_from_slice(b"\r\n");
    for (name, value) in fields {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n")
                .as_bytes(),
        );
        body.extend_from_slice(value.as_bytes());
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    VendorBody::Multipart { boundary, body }
}

/// The file's bytes in standard base64 (for vendors that take a file inside JSON).
pub fn base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::api::model::MessageType;

    fn one(json: serde_json::Value) -> Result<AttachmentFile, ApiError> {
        let attachment: NewAttachment = serde_json::from_value(json).unwrap();
        prepare(&[attachment], 16).map(|mut v| v.remove(0))
    }

    fn problem(json: serde_json::Value) -> (ErrorCode, String) {
        let e = one(json).unwrap_err();
        (e.code, e.detail)
    }

    #[test]
    fn data_is_decoded_and_typed() {
        let file =
            one(serde_json::json!({"data": "aGVsbG8=", "name": "a.txt", "type": "Text/Plain"}))
                .unwrap();
        assert_eq!(file.content, AttachmentContent::Data(b"hello".to_vec()));
        assert_eq!(file.mime, "text/plain");
        assert_eq!(file.kind, MessageType::File);
        let unpadded =
            one(serde_json::json!({"data": "aGVsbG8", "name": "p.png", "type": "image/png"}))
                .unwrap();
        assert_eq!(unpadded.content, AttachmentContent::Data(b"hello".to_vec()));
        assert_eq!(unpadded.kind, MessageType::Image);
    }

    #[test]
    fn each_malformed_field_is_named() {
        for (json, field) in [
            (
                serde_json::json!({"name": "a", "type": "image/png"}),
                "attachments[0]:",
            ),
            (
                serde_json::json!({"url": "https://example.com/a", "data": "aGk=", "name": "a", "type": "image/png"}),
                "not both",
            ),
            (
                serde_json::json!({"data": "a*b=", "name": "a", "type": "image/png"}),
                "attachments[0].data is not valid base64",
            ),
            (
                serde_json::json!({"data": "", "name": "a", "type": "image/png"}),
                "attachments[0].data is empty",
            ),
            (
                serde_json::json!({"data": "aGk=", "type": "image/png"}),
                "attachments[0].name is required",
            ),
            (
                serde_json::json!({"data": "aGk=", "name": "a\"\r\nX: y", "type": "image/png"}),
                "attachments[0].name must not",
            ),
            (
                serde_json::json!({"data": "aGk=", "name": "a"}),
                "attachments[0].type is required",
            ),
            (
                serde_json::json!({"data": "aGk=", "name": "a", "type": "png"}),
                "attachments[0].type \"png\" is not a MIME type",
            ),
            (
                serde_json::json!({"data": "aGk=", "name": "a", "type": "text/plain; charset=utf-8"}),
                "is not a MIME type",
            ),
            (
                serde_json::json!({"data": "aGk=", "name": "a", "type": "multipart/mixed"}),
                "is not a file type",
            ),
            (
                serde_json::json!({"url": "http://example.com/a", "name": "a", "type": "image/png"}),
                "attachments[0].url must be an https URL",
            ),
            (
                serde_json::json!({"url": "https://u:p@example.com/a", "name": "a", "type": "image/png"}),
                "credentials",
            ),
        ] {
            let (code, detail) = problem(json.clone());
            assert_eq!(code, ErrorCode::InvalidRequest, "{json}");
            assert!(detail.contains(field), "{json}: {detail}");
        }
    }

    #[test]
    fn urls_must_name_public_hosts() {
        for url in [
            "https://localhost/a",
            "https://127.0.0.1/a",
            "https://10.1.2.3/a",
            "https://192.168.0.1/a",
            "https://169.254.169.254/latest/meta-data",
            "https://100.64.0.1/a",
            "https://[::1]/a",
            "https://[fd00::1]/a",
            "https://[::ffff:10.0.0.1]/a",
            "https://metadata.internal/a",
            "https://intranet/a",
        ] {
            let (code, detail) =
                problem(serde_json::json!({"url": url, "name": "a", "type": "image/png"}));
            assert_eq!(code, ErrorCode::InvalidRequest, "{url}");
            assert!(detail.contains("public host"), "{url}: {detail}");
        }
        let ok = one(
            serde_json::json!({"url": "https://cdn.example.com/a.png", "name": "a.png", "type": "image/png"}),
        )
        .unwrap();
        assert_eq!(
            ok.content,
            AttachmentContent::Url("https://cdn.example.com/a.png".into())
        );
    }

    #[test]
    fn the_cap_is_on_decoded_bytes() {
        // 16 bytes decoded (24 characters of base64) is exactly the cap of these tests.
        let at_cap = base64(&[7u8; 16]);
        assert!(one(serde_json::json!({"data": at_cap, "name": "a", "type": "image/png"})).is_ok());
        let over = base64(&[7u8; 17]);
        let (code, detail) =
            problem(serde_json::json!({"data": over, "name": "a", "type": "image/png"}));
        assert_eq!(code, ErrorCode::PayloadTooLarge);
        assert!(
            detail.contains("attachments[0].data is 17 bytes"),
            "{detail}"
        );
        let huge = "A".repeat(4000);
        let (code, _) =
            problem(serde_json::json!({"data": huge, "name": "a", "type": "image/png"}));
        assert_eq!(code, ErrorCode::PayloadTooLarge);
    }

    #[test]
    fn too_many_attachments_are_refused() {
        let many = vec![NewAttachment::default(); MAX_ATTACHMENTS + 1];
        let e = prepare(&many, 16).unwrap_err();
        assert!(e.detail.contains("at most 10"), "{}", e.detail);
    }

    #[test]
    fn later_attachments_are_named_by_index() {
        let good: NewAttachment = serde_json::from_value(
            serde_json::json!({"data": "aGk=", "name": "a", "type": "image/png"}),
        )
        .unwrap();
        let bad: NewAttachment = serde_json::from_value(
            serde_json::json!({"data": "!!", "name": "a", "type": "image/png"}),
        )
        .unwrap();
        let e = prepare(&[good, bad], 16).unwrap_err();
        assert!(e.detail.starts_with("attachments[1].data"), "{}", e.detail);
    }

    #[test]
    fn a_file_part_carries_name_type_and_bytes() {
        let file = one(serde_json::json!({"data": "aGk=", "name": "a b.png", "type": "image/png"}))
            .unwrap();
        let VendorBody::Multipart { boundary, body } = multipart_file(
            "files",
            &file,
            b"hi",
            &[("disposition", "attachment".into())],
        ) else {
            panic!("multipart expected");
        };
        let text = String::from_utf8(body).unwrap();
        assert!(text.starts_with(&format!("--{boundary}\r\n")));
        assert!(text.contains(
            "Content-Disposition: form-data; name=\"files\"; filename=\"a b.png\"\r\nContent-Type: image/png\r\n\r\nhi\r\n"
        ));
        assert!(text.contains("name=\"disposition\"\r\n\r\nattachment\r\n"));
        assert!(text.ends_with(&format!("--{boundary}--\r\n")));
    }

    #[test]
    fn vendors_that_keep_files_refuse_urls() {
        let files = prepare(
            &[serde_json::from_value(
                serde_json::json!({"url": "https://cdn.example.com/a.png", "name": "a", "type": "image/png"}),
            )
            .unwrap()],
            16,
        )
        .unwrap();
        let e = data_only(Vendor::Libredesk, &files, 10).unwrap_err();
        assert!(e.detail.starts_with("attachments[0].url"), "{}", e.detail);
        assert!(e.detail.contains("attachments[0].data"), "{}", e.detail);
    }
}
