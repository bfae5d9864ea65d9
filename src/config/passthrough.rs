//! The `passthrough:` section of `routes/<vendor>.yaml`: the vendor calls apps may make through
//! `/v1/passthrough/{connection}/{vendor path…}`. Parsed and checked here, compiled into
//! [`PassthroughRules`]; a mistake is a named error (`passthrough.allow[2].path: …`) that
//! `switchboard check` prints and a reload refuses (the old rules keep serving).

use std::time::Duration;

use serde::Deserialize;

use super::routes::RoutesError;
use crate::snapshot::passthrough::{AllowRule, PassthroughRules, PathPattern};

/// Largest `max_body_bytes` accepted: 1 GiB.
const MAX_BODY_LIMIT: u64 = 1024 * 1024 * 1024;
const MAX_TIMEOUT_MS: u64 = 300_000;

/// Headers an app can never pass: its own credentials and cookies, the connection's auth
/// (injected by the gateway), the request's routing and the hop-by-hop headers of RFC 9110
/// §7.6.1. Framing (`Content-Length`, `Transfer-Encoding`) is the gateway's own business.
const NEVER_PASSED: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "host",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "x-request-id",
    "x-connection",
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PassthroughFile {
    /// The allowed calls. Absent or empty: passthrough is off for this vendor.
    #[serde(default)]
    pub allow: Vec<AllowFile>,
    /// Request headers passed from the app (default: content negotiation, conditionals and
    /// `Range`, see [`crate::snapshot::passthrough::DEFAULT_HEADERS`]).
    #[serde(default)]
    pub headers: Option<Vec<String>>,
    /// Largest request body streamed to the vendor (default 10 MiB).
    #[serde(default)]
    pub max_body_bytes: Option<u64>,
    /// How long the vendor may stay silent: connect, and between two reads or writes
    /// (default: the file's `timeout_ms`). Not a limit on a whole download.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllowFile {
    pub method: String,
    pub path: String,
}

fn err(key: impl Into<String>, reason: impl Into<String>) -> RoutesError {
    RoutesError {
        key: key.into(),
        reason: reason.into(),
    }
}

/// Check and compile a routes file's `passthrough:` section. `default_timeout` is the file's
/// `timeout_ms`; `auth_header` the connection auth header the vendor's scheme uses (it can
/// never be listed in `headers`).
pub fn compile(
    file: Option<&PassthroughFile>,
    default_timeout: Duration,
    auth_header: &http::HeaderName,
) -> Result<PassthroughRules, RoutesError> {
    let mut rules = PassthroughRules {
        timeout: default_timeout,
        ..PassthroughRules::default()
    };
    let Some(file) = file else {
        return Ok(rules);
    };
    for (i, entry) in file.allow.iter().enumerate() {
        let key = format!("passthrough.allow[{i}]");
        let method = match entry.method.to_ascii_uppercase().as_str() {
            m @ ("GET" | "POST" | "PUT" | "PATCH" | "DELETE") => {
                http::Method::from_bytes(m.as_bytes())
                    .map_err(|_| err(format!("{key}.method"), "bad method"))?
            }
            other => {
                return Err(err(
                    format!("{key}.method"),
                    format!(
                        "unsupported method {other:?}; use GET (which allows HEAD too), POST, PUT, PATCH or DELETE"
                    ),
                ))
            }
        };
        let path = PathPattern::parse(&entry.path).map_err(|r| err(format!("{key}.path"), r))?;
        let rule = AllowRule { method, path };
        if rules.allow.contains(&rule) {
            return Err(err(
                key,
                format!("{} {} is listed twice", rule.method, rule.path.source()),
            ));
        }
        rules.allow.push(rule);
    }
    if let Some(headers) = &file.headers {
        rules.headers.clear();
        for (i, name) in headers.iter().enumerate() {
            let key = format!("passthrough.headers[{i}]");
            let header = http::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| err(&key, format!("{name:?} is not a valid header name")))?;
            if NEVER_PASSED.contains(&header.as_str()) || header == auth_header {
                return Err(err(
                    &key,
                    format!(
                        "{header} is never passed: the gateway injects the connection's credentials \
                         and drops the app's credentials, cookies, routing and hop-by-hop headers"
                    ),
                ));
            }
            if !rules.headers.contains(&header) {
                rules.headers.push(header);
            }
        }
    }
    if let Some(limit) = file.max_body_bytes {
        if limit > MAX_BODY_LIMIT {
            return Err(err(
                "passthrough.max_body_bytes",
                format!("{limit} is over the {MAX_BODY_LIMIT} byte maximum"),
            ));
        }
        rules.max_body_bytes = limit;
    }
    if let Some(ms) = file.timeout_ms {
        if ms == 0 || ms > MAX_TIMEOUT_MS {
            return Err(err(
                "passthrough.timeout_ms",
                format!("{ms} is out of range; use 1..={MAX_TIMEOUT_MS} ms"),
            ));
        }
        rules.timeout = Duration::from_millis(ms);
    }
    Ok(rules)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::passthrough::DEFAULT_HEADERS;

    fn compiled(yaml: &str) -> Result<PassthroughRules, RoutesError> {
        let file: PassthroughFile = serde_yaml::from_str(yaml).unwrap();
        compile(
            Some(&file),
            Duration::from_secs(10),
            &http::header::AUTHORIZATION,
        )
    }

    #[test]
    fn a_section_compiles_into_rules_headers_limit_and_timeout() {
        let rules = compiled(
            "allow:\n  - {method: get, path: /api/v1/agents}\n  - {method: POST, path: \"/api/v1/x/{id}\"}\n\
             headers: [Accept, x-custom]\nmax_body_bytes: 1000\ntimeout_ms: 2500\n",
        )
        .unwrap();
        assert_eq!(rules.allow.len(), 2);
        assert_eq!(rules.allow[0].method, http::Method::GET);
        assert_eq!(rules.headers, vec!["accept", "x-custom"]);
        assert_eq!(rules.max_body_bytes, 1000);
        assert_eq!(rules.timeout, Duration::from_millis(2500));
        let none = compile(None, Duration::from_secs(3), &http::header::AUTHORIZATION).unwrap();
        assert!(none.allow.is_empty());
        assert_eq!(none.timeout, Duration::from_secs(3));
        assert_eq!(none.headers.len(), DEFAULT_HEADERS.len());
    }

    #[test]
    fn every_mistake_is_named_by_its_key() {
        for (yaml, key, says) in [
            (
                "allow: [{method: TRACE, path: /a}]",
                "passthrough.allow[0].method",
                "unsupported method",
            ),
            (
                "allow: [{method: GET, path: /a}, {method: GET, path: a}]",
                "passthrough.allow[1].path",
                "must start with '/'",
            ),
            (
                "allow: [{method: GET, path: /a}, {method: get, path: /a}]",
                "passthrough.allow[1]",
                "listed twice",
            ),
            (
                "headers: [accept, Cookie]",
                "passthrough.headers[1]",
                "never passed",
            ),
            (
                "headers: [authorization]",
                "passthrough.headers[0]",
                "never passed",
            ),
            (
                "headers: [connection]",
                "passthrough.headers[0]",
                "never passed",
            ),
            (
                "headers: [\"bad header\"]",
                "passthrough.headers[0]",
                "not a valid header name",
            ),
            (
                "max_body_bytes: 99999999999",
                "passthrough.max_body_bytes",
                "maximum",
            ),
            ("timeout_ms: 0", "passthrough.timeout_ms", "out of range"),
        ] {
            let e = compiled(yaml).unwrap_err();
            assert_eq!(e.key, key, "{yaml}: {e}");
            assert!(e.reason.contains(says), "{yaml}: {e}");
        }
    }

    #[test]
    fn the_vendors_own_auth_header_can_never_be_passed() {
        let file: PassthroughFile = serde_yaml::from_str("headers: [apikey]").unwrap();
        let e = compile(
            Some(&file),
            Duration::from_secs(1),
            &http::HeaderName::from_static("apikey"),
        )
        .unwrap_err();
        assert_eq!(e.key, "passthrough.headers[0]");
    }
}
