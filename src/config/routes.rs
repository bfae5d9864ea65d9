//! `routes/<vendor>.yaml`: which vendor call serves each operation, with which auth scheme
//! and timeout. Provisional vendor facts live here, never in code.
//!
//! The file format (`RoutesFile`) is parsed, checked against the vendor adapter's endpoint
//! table, then compiled into `VendorRoutes` (templates pre-split, durations resolved) so the
//! hot path never parses anything.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::Deserialize;

use crate::api::operation::Vendor;
use crate::vendors::{adapter_for, EndpointSpec};

const DEFAULT_TIMEOUT_MS: u64 = 10_000;
const MAX_TIMEOUT_MS: u64 = 120_000;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutesFile {
    pub vendor: String,
    pub auth: AuthFile,
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    pub operations: BTreeMap<String, EndpointFile>,
    /// Response cache TTLs in seconds, by operation (0 or absent = not cached). Keys:
    /// `contacts.get`, `conversations.get`, `messages.get`, `contacts.lookup` (contacts.list
    /// filtered by email, phone or handle) and, opt-in, the lists `contacts.list`,
    /// `conversations.list`, `messages.list`.
    #[serde(default)]
    pub cache: BTreeMap<String, u64>,
    /// How long a vendor 404 for a cached operation is remembered (0 = never).
    #[serde(default)]
    pub negative_cache_seconds: u64,
}

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

/// Longest accepted cache TTL (a day): vendor data older than that is a bug, not a cache.
const MAX_CACHE_SECONDS: u64 = 86_400;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthFile {
    pub scheme: String,
    /// Header name, for `scheme: header`.
    #[serde(default)]
    pub header: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointFile {
    pub method: String,
    pub path: String,
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

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
}

impl VendorRoutes {
    pub fn endpoint(&self, name: &str) -> Option<&Endpoint> {
        self.endpoints.get(name)
    }

    pub fn has(&self, name: &str) -> bool {
        self.endpoints.contains_key(name)
    }
}

/// A validation failure inside one routes file: `key` is the dotted path, `reason` says
/// what is wrong and, where possible, how to fix it.
#[derive(Debug, Clone)]
pub struct RoutesError {
    pub key: String,
    pub reason: String,
}

fn err(key: impl Into<String>, reason: impl Into<String>) -> RoutesError {
    RoutesError {
        key: key.into(),
        reason: reason.into(),
    }
}

/// Validate a parsed routes file against the vendor's adapter and compile it.
pub fn compile(file: &RoutesFile) -> Result<VendorRoutes, RoutesError> {
    let vendor = Vendor::parse(&file.vendor).ok_or_else(|| {
        err(
            "vendor",
            format!(
                "unknown vendor {:?}; known: caac, llamadapro, chatcaptain, libredesk",
                file.vendor
            ),
        )
    })?;
    let adapter = adapter_for(vendor);
    let auth = match file.auth.scheme.as_str() {
        "token" => AuthScheme::Token,
        "basic" => AuthScheme::Basic,
        "bearer" => AuthScheme::Bearer,
        "header" => {
            let name = file
                .auth
                .header
                .as_deref()
                .ok_or_else(|| err("auth.header", "scheme `header` needs a header name"))?;
            AuthScheme::Header(http::HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                err(
                    "auth.header",
                    format!("{name:?} is not a valid header name"),
                )
            })?)
        }
        other => {
            return Err(err(
                "auth.scheme",
                format!("unknown scheme {other:?}; known: token, basic, bearer, header"),
            ))
        }
    };
    if !matches!(auth, AuthScheme::Header(_)) && file.auth.header.is_some() {
        return Err(err(
            "auth.header",
            "only scheme `header` takes a header name",
        ));
    }
    let default_timeout =
        check_timeout("timeout_ms", file.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS))?;
    let known: Vec<&EndpointSpec> = adapter.endpoints().iter().collect();
    let mut endpoints = BTreeMap::new();
    for (name, entry) in &file.operations {
        let key = format!("operations.{name}");
        let spec = known.iter().find(|s| s.name == name).ok_or_else(|| {
            let names: Vec<&str> = known.iter().map(|s| s.name).collect();
            err(
                &key,
                format!(
                    "unknown operation for {vendor}; known: {}",
                    names.join(", ")
                ),
            )
        })?;
        let method = match entry.method.to_ascii_uppercase().as_str() {
            m @ ("GET" | "POST" | "PUT" | "PATCH" | "DELETE") => {
                http::Method::from_bytes(m.as_bytes())
                    .map_err(|_| err(format!("{key}.method"), "bad method"))?
            }
            other => {
                return Err(err(
                    format!("{key}.method"),
                    format!("unsupported method {other:?}; use GET, POST, PUT, PATCH or DELETE"),
                ))
            }
        };
        let path = PathTemplate::parse(&entry.path).map_err(|r| err(format!("{key}.path"), r))?;
        let allowed: Vec<&str> = spec
            .params
            .iter()
            .chain(adapter.connection_params())
            .copied()
            .collect();
        for placeholder in path.placeholders() {
            if !allowed.contains(&placeholder) {
                let known: Vec<String> = allowed.iter().map(|p| format!("{{{p}}}")).collect();
                return Err(err(
                    format!("{key}.path"),
                    format!(
                        "unknown placeholder {{{placeholder}}}; known: {}",
                        if known.is_empty() {
                            "none".to_owned()
                        } else {
                            known.join(", ")
                        }
                    ),
                ));
            }
        }
        for required in spec.params {
            if !path.placeholders().any(|p| p == *required) {
                return Err(err(
                    format!("{key}.path"),
                    format!("must contain {{{required}}}"),
                ));
            }
        }
        let timeout = match entry.timeout_ms {
            Some(ms) => check_timeout(&format!("{key}.timeout_ms"), ms)?,
            None => default_timeout,
        };
        endpoints.insert(
            spec.name,
            Endpoint {
                name: spec.name,
                method,
                path,
                timeout,
            },
        );
    }
    let mut cache = BTreeMap::new();
    for (key, seconds) in &file.cache {
        let known = CACHE_KEYS.iter().find(|k| *k == key).ok_or_else(|| {
            err(
                format!("cache.{key}"),
                format!(
                    "not a cacheable operation; use one of {}",
                    CACHE_KEYS.join(", ")
                ),
            )
        })?;
        if *seconds > MAX_CACHE_SECONDS {
            return Err(err(
                format!("cache.{key}"),
                format!("{seconds} is over the {MAX_CACHE_SECONDS} s maximum"),
            ));
        }
        if *seconds > 0 {
            cache.insert(*known, Duration::from_secs(*seconds));
        }
    }
    if file.negative_cache_seconds > MAX_CACHE_SECONDS {
        return Err(err(
            "negative_cache_seconds",
            format!("over the {MAX_CACHE_SECONDS} s maximum"),
        ));
    }
    Ok(VendorRoutes {
        vendor,
        auth,
        endpoints,
        cache,
        negative_cache: (file.negative_cache_seconds > 0)
            .then(|| Duration::from_secs(file.negative_cache_seconds)),
    })
}

fn check_timeout(key: &str, ms: u64) -> Result<Duration, RoutesError> {
    if ms == 0 || ms > MAX_TIMEOUT_MS {
        return Err(err(
            key,
            format!("{ms} is out of range; use 1..={MAX_TIMEOUT_MS} ms"),
        ));
    }
    Ok(Duration::from_millis(ms))
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
