//! `routes/<vendor>.yaml`: which vendor call serves each operation, with which auth scheme
//! and timeout. Provisional vendor facts live here, never in code.
//!
//! The file format (`RoutesFile`) is parsed, checked against the vendor adapter's endpoint
//! table, then compiled into [`VendorRoutes`] (templates pre-split, durations resolved) so the
//! hot path never parses anything.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use crate::api::operation::Vendor;
use crate::resilience::settings::{ResilienceFile, ResilienceSettings};
use crate::snapshot::routes::{
    AuthScheme, BodyEnvelope, Endpoint, PathTemplate, VendorRoutes, CACHE_KEYS,
};
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
    /// By cache key (those of `cache`): how long past its TTL an entry may still answer, as
    /// `X-Cache: stale`, while the vendor fails (5xx, timeout, unreachable, circuit open,
    /// 429). 0 or absent = never.
    #[serde(default)]
    pub stale_if_error: BTreeMap<String, u64>,
    /// Vendor facts the adapter reads as data rather than code (provisional ones, so ops can
    /// correct a guess with one line and a reload), by name. Each adapter checks its own
    /// ([`Adapter::check_settings`](crate::vendors::Adapter::check_settings)); each routes
    /// file documents the ones it sets.
    #[serde(default)]
    pub settings: BTreeMap<String, serde_json::Value>,
    /// Defaults of the vendor edge for every connection of this vendor (a connection's own
    /// keys win, key by key): see [`crate::resilience::settings`].
    #[serde(default)]
    pub retry: Option<serde_yaml::Value>,
    #[serde(default)]
    pub circuit_breaker: Option<serde_yaml::Value>,
    #[serde(default)]
    pub vendor_budget: Option<serde_yaml::Value>,
    #[serde(default)]
    pub vendor_pause: Option<serde_yaml::Value>,
    /// The vendor calls apps may make through `/v1/passthrough/…` (absent: none).
    #[serde(default)]
    pub passthrough: Option<super::passthrough::PassthroughFile>,
}

impl RoutesFile {
    /// The vendor-edge sections as written, for merging under each connection's.
    pub fn resilience(&self) -> ResilienceFile {
        ResilienceFile {
            retry: self.retry.clone(),
            circuit_breaker: self.circuit_breaker.clone(),
            vendor_budget: self.vendor_budget.clone(),
            vendor_pause: self.vendor_pause.clone(),
        }
    }
}

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
    /// The request body's envelope, for a call whose adapter lets it be configured
    /// ([`EndpointSpec::body_envelope`]): `none` (the fields at the top level) or the one
    /// key the fields are wrapped in (`conversation` → `{"conversation": {…}}`). Absent: the
    /// adapter's default.
    #[serde(default)]
    pub body_envelope: Option<String>,
}

/// A validation failure inside one routes file: `key` is the dotted path, `reason` says
/// what is wrong and, where possible, how to fix it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{key}: {reason}")]
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
        let body_envelope = match &entry.body_envelope {
            None => spec.body_envelope.map(BodyEnvelope::from_default),
            Some(_) if spec.body_envelope.is_none() => {
                return Err(err(
                    format!("{key}.body_envelope"),
                    format!("{vendor}'s {name} sends no body whose envelope can be configured"),
                ))
            }
            Some(text) => Some(
                BodyEnvelope::parse(text)
                    .map_err(|reason| err(format!("{key}.body_envelope"), reason))?,
            ),
        };
        endpoints.insert(
            spec.name,
            Endpoint {
                name: spec.name,
                method,
                path,
                timeout,
                body_envelope,
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
    let mut stale_if_error = BTreeMap::new();
    for (key, seconds) in &file.stale_if_error {
        let known = cache.keys().find(|k| *k == key).ok_or_else(|| {
            err(
                format!("stale_if_error.{key}"),
                "only a cached operation can be served stale; give it a TTL under `cache` first",
            )
        })?;
        if *seconds > MAX_CACHE_SECONDS {
            return Err(err(
                format!("stale_if_error.{key}"),
                format!("{seconds} is over the {MAX_CACHE_SECONDS} s maximum"),
            ));
        }
        if *seconds > 0 {
            stale_if_error.insert(*known, Duration::from_secs(*seconds));
        }
    }
    if file.negative_cache_seconds > MAX_CACHE_SECONDS {
        return Err(err(
            "negative_cache_seconds",
            format!("over the {MAX_CACHE_SECONDS} s maximum"),
        ));
    }
    // The defaults must be valid on their own: a connection that sets none of these keys
    // gets exactly them.
    let resilience = file.resilience();
    ResilienceSettings::resolve(&resilience, &ResilienceFile::default())
        .map_err(|e| err(e.error.key, e.error.reason))?;
    let auth_header = match &auth {
        AuthScheme::Header(name) => name.clone(),
        _ => http::header::AUTHORIZATION,
    };
    let passthrough =
        super::passthrough::compile(file.passthrough.as_ref(), default_timeout, &auth_header)?;
    adapter
        .check_settings(&file.settings)
        .map_err(|e| err(e.key, e.reason))?;
    Ok(VendorRoutes {
        vendor,
        auth,
        passthrough,
        endpoints,
        cache,
        negative_cache: (file.negative_cache_seconds > 0)
            .then(|| Duration::from_secs(file.negative_cache_seconds)),
        stale_if_error,
        resilience,
        settings: file.settings.clone(),
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
    fn a_routes_error_is_an_error_naming_key_and_reason() {
        let file: RoutesFile = serde_yaml::from_str(
            "vendor: libredesk\nauth: {scheme: token}\noperations:\n  contacts.get: {method: GET, path: /x, timeout_ms: 0}\n",
        )
        .unwrap();
        let e: Box<dyn std::error::Error> = Box::new(compile(&file).unwrap_err());
        assert_eq!(
            e.to_string(),
            "operations.contacts.get.path: must contain {id}"
        );
    }

    fn chatcaptain(update: &str) -> Result<VendorRoutes, RoutesError> {
        let yaml = format!(
            "vendor: chatcaptain\nauth: {{scheme: header, header: x-chatcaptain-key}}\n\
             operations:\n  conversations.update: {{method: PATCH, path: \"/c/{{conversation_id}}\"{update}}}\n"
        );
        compile(&serde_yaml::from_str(&yaml).unwrap())
    }

    #[test]
    fn a_body_envelope_is_none_or_a_key_and_only_where_the_adapter_reads_one() {
        let envelope = |routes: VendorRoutes| {
            routes
                .endpoint("conversations.update")
                .unwrap()
                .body_envelope
                .clone()
        };
        assert_eq!(envelope(chatcaptain("").unwrap()), Some(BodyEnvelope::None));
        assert_eq!(
            envelope(chatcaptain(", body_envelope: none").unwrap()),
            Some(BodyEnvelope::None)
        );
        assert_eq!(
            envelope(chatcaptain(", body_envelope: updateConversation").unwrap()),
            Some(BodyEnvelope::Wrap("updateConversation".into()))
        );
        let err = chatcaptain(", body_envelope: \"a b\"").unwrap_err();
        assert_eq!(err.key, "operations.conversations.update.body_envelope");
        assert!(
            err.reason.contains("neither `none` nor a key name"),
            "{}",
            err.reason
        );
        let file: RoutesFile = serde_yaml::from_str(
            "vendor: libredesk\nauth: {scheme: token}\noperations:\n  contacts.get: {method: GET, path: \"/c/{id}\", body_envelope: contact}\n",
        )
        .unwrap();
        let err = compile(&file).unwrap_err();
        assert_eq!(err.key, "operations.contacts.get.body_envelope");
        assert_eq!(
            err.reason,
            "libredesk's contacts.get sends no body whose envelope can be configured"
        );
    }

    fn libredesk(extra: &str) -> Result<VendorRoutes, RoutesError> {
        let file: RoutesFile = serde_yaml::from_str(&format!(
            "vendor: libredesk\nauth: {{scheme: token}}\noperations:\n  contacts.get: {{method: GET, path: \"/c/{{id}}\"}}\n{extra}"
        ))
        .unwrap();
        compile(&file)
    }

    #[test]
    fn stale_if_error_needs_a_cached_operation_and_a_bounded_time() {
        let routes =
            libredesk("cache: {contacts.get: 60}\nstale_if_error: {contacts.get: 600}\n").unwrap();
        assert_eq!(
            routes.stale_if_error.get("contacts.get"),
            Some(&Duration::from_secs(600))
        );
        let e = libredesk("stale_if_error: {contacts.get: 600}\n").unwrap_err();
        assert_eq!(e.key, "stale_if_error.contacts.get");
        assert!(e.reason.contains("cache"), "{e}");
        let e = libredesk("cache: {contacts.get: 60}\nstale_if_error: {contacts.get: 86401}\n")
            .unwrap_err();
        assert_eq!(e.key, "stale_if_error.contacts.get");
    }

    #[test]
    fn vendor_edge_defaults_are_validated_in_the_routes_file() {
        let routes = libredesk(
            "circuit_breaker: {open_seconds: 5}\nvendor_budget: {requests_per_second: 2}\n",
        )
        .unwrap();
        assert!(routes.resilience.circuit_breaker.is_some());
        let e = libredesk("retry: {max_attempts: 0}\n").unwrap_err();
        assert_eq!(e.key, "retry.max_attempts");
        let e = libredesk("vendor_budget: {burst: 3}\n").unwrap_err();
        assert_eq!(e.key, "vendor_budget");
    }
}
