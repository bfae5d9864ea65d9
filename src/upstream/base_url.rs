//! Where an upstream is: scheme, host, port and path prefix of a base URL, split once when the
//! config is loaded so the hot path never parses a URL.

/// A vendor base URL, split once at load time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrl {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    /// Value of the `Host` header.
    pub host_header: http::HeaderValue,
    /// Path prefix without a trailing slash ("" for none).
    pub path_prefix: String,
}

impl BaseUrl {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let url = url::Url::parse(raw).map_err(|e| format!("{raw:?} is not a URL: {e}"))?;
        let tls = match url.scheme() {
            "https" => true,
            "http" => false,
            other => {
                return Err(format!(
                    "scheme {other:?} is not supported; use https or http"
                ))
            }
        };
        if url.query().is_some() || url.fragment().is_some() {
            return Err("a base URL has no query or fragment".to_owned());
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("put credentials in `credentials`, never in the URL".to_owned());
        }
        let host = url
            .host_str()
            .ok_or_else(|| format!("{raw:?} has no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = url
            .port_or_known_default()
            .ok_or_else(|| format!("{raw:?} has no port"))?;
        let host_header = match url.port() {
            Some(p) => format!("{}:{p}", url.host_str().unwrap_or_default()),
            None => url.host_str().unwrap_or_default().to_owned(),
        };
        Ok(BaseUrl {
            tls,
            host,
            port,
            host_header: http::HeaderValue::from_str(&host_header)
                .map_err(|_| format!("{raw:?}: bad host"))?,
            path_prefix: url.path().trim_end_matches('/').to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_splits_scheme_host_port_and_prefix() {
        let b = BaseUrl::parse("https://desk.example.com/helpdesk/").unwrap();
        assert!(b.tls);
        assert_eq!(b.port, 443);
        assert_eq!(b.path_prefix, "/helpdesk");
        assert_eq!(b.host_header, "desk.example.com");
        let b = BaseUrl::parse("http://127.0.0.1:9000").unwrap();
        assert!(!b.tls);
        assert_eq!(b.host_header, "127.0.0.1:9000");
        assert_eq!(b.path_prefix, "");
        assert!(BaseUrl::parse("ftp://x").is_err());
        assert!(BaseUrl::parse("https://user:pw@x").is_err());
        assert!(BaseUrl::parse("not a url").is_err());
    }
}
