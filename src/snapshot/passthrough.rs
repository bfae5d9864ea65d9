//! A vendor's passthrough rules (the `passthrough:` section of `routes/<vendor>.yaml`, compiled):
//! which vendor calls an app may make through `/v1/passthrough/{connection}/{vendor path…}`,
//! which of the app's headers travel with them, how large a request body may be and how long
//! the vendor may stay silent. Compiled once at load time; [`PassthroughRules::allows`] runs
//! per request and allocates nothing but the decoded segments.

use std::borrow::Cow;
use std::time::Duration;

use percent_encoding::percent_decode_str;

/// One segment of an allowed path pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatternSegment {
    /// Must equal the request's segment (after percent-decoding).
    Literal(String),
    /// `{name}`: exactly one non-empty segment.
    One,
    /// `{name*}`, last only: one or more further segments.
    Rest,
}

/// A path pattern such as `/api/v1/agents/{id}`, split once at load time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathPattern {
    source: String,
    segments: Vec<PatternSegment>,
}

impl PathPattern {
    /// Parse `source`: starts with `/`, no query, no dot segments, `{name}` placeholders that
    /// fill a whole segment, `{name*}` only as the last segment.
    pub fn parse(source: &str) -> Result<Self, String> {
        let rest = source
            .strip_prefix('/')
            .ok_or_else(|| format!("path {source:?} must start with '/'"))?;
        if source.contains(['?', '#', '%', '\\']) {
            return Err(format!(
                "path {source:?} must not contain '?', '#', '%' or '\\' (write the path as the vendor documents it)"
            ));
        }
        let parts: Vec<&str> = rest.split('/').collect();
        let mut segments = Vec::with_capacity(parts.len());
        for (i, part) in parts.iter().enumerate() {
            let segment = match *part {
                "" => return Err(format!("path {source:?} has an empty segment")),
                "." | ".." => return Err(format!("path {source:?} has a dot segment")),
                p if p.starts_with('{') && p.ends_with('}') => {
                    let name = &p[1..p.len() - 1];
                    let (name, rest) = match name.strip_suffix('*') {
                        Some(n) => (n, true),
                        None => (name, false),
                    };
                    if name.is_empty()
                        || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    {
                        return Err(format!("path {source:?}: bad placeholder {p}"));
                    }
                    if rest && i + 1 != parts.len() {
                        return Err(format!(
                            "path {source:?}: {p} matches the rest of the path and must be the last segment"
                        ));
                    }
                    if rest {
                        PatternSegment::Rest
                    } else {
                        PatternSegment::One
                    }
                }
                p if p.contains(['{', '}']) => {
                    return Err(format!(
                        "path {source:?}: a placeholder must be a whole segment, not {p:?}"
                    ))
                }
                p => PatternSegment::Literal(p.to_owned()),
            };
            segments.push(segment);
        }
        Ok(PathPattern {
            source: source.to_owned(),
            segments,
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    fn matches(&self, path: &[Cow<'_, str>]) -> bool {
        let mut i = 0;
        for segment in &self.segments {
            match segment {
                PatternSegment::Rest => {
                    return path.len() > i && path[i..].iter().all(|s| !s.is_empty())
                }
                PatternSegment::One => {
                    if path.get(i).is_none_or(|s| s.is_empty()) {
                        return false;
                    }
                }
                PatternSegment::Literal(l) => {
                    if path.get(i).is_none_or(|s| s != l) {
                        return false;
                    }
                }
            }
            i += 1;
        }
        i == path.len()
    }
}

/// One allowed vendor call: a method and a path pattern. A `GET` rule allows `HEAD` too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowRule {
    pub method: http::Method,
    pub path: PathPattern,
}

/// A vendor's compiled passthrough rules. The default allows nothing.
#[derive(Debug, Clone)]
pub struct PassthroughRules {
    pub allow: Vec<AllowRule>,
    /// Request headers passed from the app to the vendor (lowercase names). Everything else
    /// is dropped; credentials, cookies and hop-by-hop headers can never be listed.
    pub headers: Vec<http::HeaderName>,
    /// Largest request body streamed to the vendor.
    pub max_body_bytes: u64,
    /// How long the vendor may stay silent (connect, each read, each write).
    pub timeout: Duration,
}

/// Request headers passed when a routes file names none.
pub const DEFAULT_HEADERS: &[&str] = &[
    "accept",
    "accept-encoding",
    "accept-language",
    "content-type",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-unmodified-since",
    "range",
];

/// `max_body_bytes` when a routes file names none: 10 MiB.
pub const DEFAULT_MAX_BODY_BYTES: u64 = 10 * 1024 * 1024;

impl Default for PassthroughRules {
    fn default() -> Self {
        PassthroughRules {
            allow: Vec::new(),
            headers: DEFAULT_HEADERS
                .iter()
                .map(|h| http::HeaderName::from_static(h))
                .collect(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            timeout: Duration::from_secs(10),
        }
    }
}

/// Why a vendor path is not sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathRefused {
    /// A dot segment, or an encoded `/` or `\` inside a segment: the vendor could read the path
    /// differently from the allow-list check.
    #[error("the vendor path must not contain dot segments or encoded '/' or '\\'")]
    Ambiguous,
    /// No rule allows this method and path.
    #[error("no passthrough rule allows this call")]
    NotAllowed,
}

impl PassthroughRules {
    /// Whether `method` on `path` (the raw, percent-encoded vendor path, starting with `/`) is
    /// on the allow-list. Segments are compared percent-decoded; a path whose decoded form
    /// could climb or split segments is refused before any rule is read.
    pub fn allows(&self, method: &http::Method, path: &str) -> Result<(), PathRefused> {
        if path.is_empty() || path == "/" {
            return Err(PathRefused::NotAllowed);
        }
        let decoded = decode_segments(path)?;
        let method = if method == http::Method::HEAD {
            &http::Method::GET
        } else {
            method
        };
        if self
            .allow
            .iter()
            .any(|rule| rule.method == method && rule.path.matches(&decoded))
        {
            Ok(())
        } else {
            Err(PathRefused::NotAllowed)
        }
    }

    /// Whether `name` is a request header the app may pass.
    pub fn passes_header(&self, name: &http::HeaderName) -> bool {
        self.headers.contains(name)
    }
}

/// The percent-decoded segments of `path` (without its leading `/`).
fn decode_segments(path: &str) -> Result<Vec<Cow<'_, str>>, PathRefused> {
    let Some(rest) = path.strip_prefix('/') else {
        return Err(PathRefused::Ambiguous);
    };
    rest.split('/')
        .map(|raw| {
            if raw.contains('\\') {
                return Err(PathRefused::Ambiguous);
            }
            let segment = percent_decode_str(raw)
                .decode_utf8()
                .map_err(|_| PathRefused::Ambiguous)?;
            if segment == "." || segment == ".." || segment.contains(['/', '\\']) {
                return Err(PathRefused::Ambiguous);
            }
            Ok(segment)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(allow: &[(&str, &str)]) -> PassthroughRules {
        PassthroughRules {
            allow: allow
                .iter()
                .map(|(m, p)| AllowRule {
                    method: m.parse().unwrap(),
                    path: PathPattern::parse(p).unwrap(),
                })
                .collect(),
            ..PassthroughRules::default()
        }
    }

    #[test]
    fn literal_one_and_rest_segments_match_as_documented() {
        let r = rules(&[
            ("GET", "/api/v1/agents"),
            ("GET", "/api/v1/agents/{id}"),
            ("POST", "/files/{path*}"),
        ]);
        let get = http::Method::GET;
        assert_eq!(r.allows(&get, "/api/v1/agents"), Ok(()));
        assert_eq!(r.allows(&http::Method::HEAD, "/api/v1/agents"), Ok(()));
        assert_eq!(r.allows(&get, "/api/v1/agents/7"), Ok(()));
        assert_eq!(r.allows(&get, "/api/v1/agents/a%20b"), Ok(()));
        assert_eq!(
            r.allows(&http::Method::DELETE, "/api/v1/agents/7"),
            Err(PathRefused::NotAllowed)
        );
        assert_eq!(
            r.allows(&get, "/api/v1/agents/"),
            Err(PathRefused::NotAllowed)
        );
        assert_eq!(
            r.allows(&get, "/api/v1/agents/7/x"),
            Err(PathRefused::NotAllowed)
        );
        assert_eq!(
            r.allows(&get, "/api/v1/teams"),
            Err(PathRefused::NotAllowed)
        );
        assert_eq!(r.allows(&get, "/api/v1"), Err(PathRefused::NotAllowed));
        assert_eq!(r.allows(&get, ""), Err(PathRefused::NotAllowed));
        assert_eq!(r.allows(&get, "/"), Err(PathRefused::NotAllowed));
        let post = http::Method::POST;
        assert_eq!(r.allows(&post, "/files/a/b/c"), Ok(()));
        assert_eq!(r.allows(&post, "/files"), Err(PathRefused::NotAllowed));
        assert_eq!(r.allows(&post, "/files/a//c"), Err(PathRefused::NotAllowed));
    }

    #[test]
    fn paths_that_could_climb_or_split_a_segment_are_refused() {
        let r = rules(&[("GET", "/api/v1/agents/{id}"), ("GET", "/x/{p*}")]);
        for bad in [
            "/api/v1/agents/..",
            "/api/v1/agents/%2e%2E",
            "/api/v1/agents/.",
            "/api/v1/agents/a%2Fb",
            "/api/v1/agents/a%5cb",
            "/api/v1/agents/a\\b",
            "/x/../../admin",
            "/x/%2E%2E/admin",
            "/api/v1/agents/%ff",
            "api/v1/agents/1",
            "//api/v1/agents/..",
        ] {
            assert_eq!(
                r.allows(&http::Method::GET, bad),
                Err(PathRefused::Ambiguous),
                "{bad}"
            );
        }
    }

    #[test]
    fn bad_patterns_are_rejected_with_a_reason() {
        for (bad, says) in [
            ("api/v1", "must start with '/'"),
            ("/a//b", "empty segment"),
            ("/a/../b", "dot segment"),
            ("/a?x=1", "must not contain"),
            ("/a/%2F", "must not contain"),
            ("/a/{}", "bad placeholder"),
            ("/a/{x y}", "bad placeholder"),
            ("/a/{rest*}/b", "must be the last segment"),
            ("/a/x{id}", "whole segment"),
        ] {
            let e = PathPattern::parse(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }
}
