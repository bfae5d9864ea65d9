//! A vendor's compiled routes (`routes/<vendor>.yaml` after loading): the auth scheme, each
//! vendor call's method, path template and timeout, and the cache TTLs. Templates are split
//! and durations resolved once, so the hot path never parses anything; the file format and
//! its checks are the loader's ([`crate::config::routes`]).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::api::operation::Vendor;

/// Cacheable operations, as keys of a routes file's `cache:` section.
pub const CACHE_KEYS: &[&str] = &[
    "contacts.get",
    "conversations.get",
    "messages.get",
    "contacts.lookup",
    "contacts.list",
    "conversations.list",
    "messages.list",
];

/// How the connection's credentials are put on every vendor call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthScheme {
    /// `Authorization: token <api_key>:<api_secret>` (Libredesk).
    Token,
    /// `Authorization: Basic base64(<api_key>:<api_secret>)`.
    Basic,
    /// `Authorization: Bearer <api_key>`.
    Bearer,
    /// `<header>: <api_key>` (CAAC `apikey`, ChatCaptain `x-chatcaptain-key`, …).
    Header(http::HeaderName),
}

impl AuthScheme {
    /// Credential keys the scheme reads from a connection.
    pub fn required_credentials(&self) -> &'static [&'static str] {
        match self {
            AuthScheme::Token | AuthScheme::Basic => &["api_key", "api_secret"],
            AuthScheme::Bearer | AuthScheme::Header(_) => &["api_key"],
        }
    }
}

/// One piece of a compiled path template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
}

/// A path such as `/api/v1/conversations/{uuid}/messages`, split once at load time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathTemplate {
    source: String,
    segments: Vec<Segment>,
}

/// Characters left as they are inside one path segment (RFC 3986 unreserved).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

impl PathTemplate {
    pub fn parse(source: &str) -> Result<Self, String> {
        if !source.starts_with('/') {
            return Err(format!("path {source:?} must start with '/'"));
        }
        if source.contains('?') || source.contains('#') {
            return Err(format!(
                "path {source:?} must not contain a query or fragment"
            ));
        }
        let mut segments = Vec::new();
        let mut rest = source;
        while let Some(open) = rest.find('{') {
            let close = rest[open..]
                .find('}')
                .map(|c| open + c)
                .ok_or_else(|| format!("path {source:?}: unclosed '{{'"))?;
            if open > 0 {
                segments.push(Segment::Literal(rest[..open].to_owned()));
            }
            let name = &rest[open + 1..close];
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("path {source:?}: bad placeholder {{{name}}}"));
            }
            segments.push(Segment::Param(name.to_owned()));
            rest = &rest[close + 1..];
        }
        if rest.contains('}') {
            return Err(format!("path {source:?}: stray '}}'"));
        }
        if !rest.is_empty() {
            segments.push(Segment::Literal(rest.to_owned()));
        }
        Ok(PathTemplate {
            source: source.to_owned(),
            segments,
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn placeholders(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().filter_map(|s| match s {
            Segment::Param(p) => Some(p.as_str()),
            Segment::Literal(_) => None,
        })
    }

    /// Fill the placeholders, percent-encoding each value as exactly one path segment: every
    /// byte outside the unreserved set is encoded, and a value that is a dot segment (`.`,
    /// `..`) is sent as `%2E`/`%2E%2E` so no value can climb the vendor's path. An empty value
    /// is refused (it would address the collection instead of an object).
    pub fn render(&self, lookup: impl Fn(&str) -> Option<String>) -> Result<String, String> {
        let mut out = String::with_capacity(self.source.len() + 32);
        for segment in &self.segments {
            match segment {
                Segment::Literal(l) => out.push_str(l),
                Segment::Param(p) => {
                    let value = lookup(p).ok_or_else(|| format!("no value for {{{p}}}"))?;
                    match value.as_str() {
                        "" => return Err(format!("empty value for {{{p}}}")),
                        "." => out.push_str("%2E"),
                        ".." => out.push_str("%2E%2E"),
                        _ => {
                            let _ = write!(out, "{}", utf8_percent_encode(&value, SEGMENT));
                        }
                    }
                }
            }
        }
        Ok(out)
    }
}

/// One compiled vendor call.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub name: &'static str,
    pub method: http::Method,
    pub path: PathTemplate,
    pub timeout: Duration,
    /// The request body's envelope, for calls whose adapter reads one (`None` for the rest).
    pub body_envelope: Option<BodyEnvelope>,
}

/// Where a request body's fields go, when a vendor's documents do not say (routes files:
/// `body_envelope: none | <key>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyEnvelope {
    /// The fields at the top level: `{"archived": true}`.
    None,
    /// The fields inside one key: `{"conversation": {"archived": true}}`.
    Wrap(String),
}

impl BodyEnvelope {
    /// `none`, or a wrapper key: letters, digits and `_`, starting with a letter.
    pub fn parse(text: &str) -> Result<BodyEnvelope, String> {
        let text = text.trim();
        if text == "none" {
            return Ok(BodyEnvelope::None);
        }
        let mut chars = text.chars();
        let starts_with_letter = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
        if starts_with_letter && chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
            Ok(BodyEnvelope::Wrap(text.to_owned()))
        } else {
            Err(format!(
                "{text:?} is neither `none` nor a key name (letters, digits and _, e.g. \
                 `conversation`)"
            ))
        }
    }

    /// An adapter's default, as its endpoint table writes it (`""` = none).
    pub fn from_default(key: &'static str) -> BodyEnvelope {
        if key.is_empty() {
            BodyEnvelope::None
        } else {
            BodyEnvelope::Wrap(key.to_owned())
        }
    }

    /// `fields` in this envelope.
    pub fn wrap(&self, fields: serde_json::Value) -> serde_json::Value {
        match self {
            BodyEnvelope::None => fields,
            BodyEnvelope::Wrap(key) => {
                let mut body = serde_json::Map::new();
                body.insert(key.clone(), fields);
                serde_json::Value::Object(body)
            }
        }
    }
}

/// A vendor's compiled routes file.
#[derive(Debug, Clone)]
pub struct VendorRoutes {
    pub vendor: Vendor,
    pub auth: AuthScheme,
    pub endpoints: BTreeMap<&'static str, Endpoint>,
    /// Response cache TTL per cache key (see [`CACHE_KEYS`]); absent = not cached.
    pub cache: BTreeMap<&'static str, Duration>,
    /// TTL of a remembered vendor 404, when enabled.
    pub negative_cache: Option<Duration>,
    /// How long past its TTL an entry may answer while the vendor fails, per cache key.
    pub stale_if_error: BTreeMap<&'static str, Duration>,
    /// The vendor-edge defaults of this vendor's connections, as written (validated).
    pub resilience: crate::resilience::settings::ResilienceFile,
    /// The vendor calls apps may make through `/v1/passthrough/…`.
    pub passthrough: super::passthrough::PassthroughRules,
    /// The routes file's `settings`, as checked by the vendor's adapter.
    pub settings: BTreeMap<String, serde_json::Value>,
}

impl VendorRoutes {
    pub fn endpoint(&self, name: &str) -> Option<&Endpoint> {
        self.endpoints.get(name)
    }

    pub fn has(&self, name: &str) -> bool {
        self.endpoints.contains_key(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_renders_and_encodes() {
        let t = PathTemplate::parse("/api/v1/conversations/{uuid}/messages").unwrap();
        assert_eq!(t.placeholders().collect::<Vec<_>>(), vec!["uuid"]);
        let path = t.render(|_| Some("a/b c".to_owned())).unwrap();
        assert_eq!(path, "/api/v1/conversations/a%2Fb%20c/messages");
        assert!(t.render(|_| None).is_err());
    }

    #[test]
    fn template_values_never_leave_their_segment() {
        let t = PathTemplate::parse("/api/v1/contacts/{id}").unwrap();
        let render = |v: &str| t.render(|_| Some(v.to_owned()));
        assert_eq!(render("..").unwrap(), "/api/v1/contacts/%2E%2E");
        assert_eq!(render(".").unwrap(), "/api/v1/contacts/%2E");
        assert_eq!(
            render("../../admin").unwrap(),
            "/api/v1/contacts/..%2F..%2Fadmin"
        );
        assert_eq!(render("a?b#c%d").unwrap(), "/api/v1/contacts/a%3Fb%23c%25d");
        assert_eq!(render("x\r\ny").unwrap(), "/api/v1/contacts/x%0D%0Ay");
        assert_eq!(render("ü").unwrap(), "/api/v1/contacts/%C3%BC");
        assert_eq!(
            render("ctc_0001.v2~x").unwrap(),
            "/api/v1/contacts/ctc_0001.v2~x"
        );
        assert!(render("").is_err());
    }

    #[test]
    fn bad_templates_are_rejected() {
        for bad in ["api/v1", "/a/{", "/a/{}", "/a/{x y}", "/a?b=1", "/a/}"] {
            assert!(PathTemplate::parse(bad).is_err(), "{bad}");
        }
    }
}
