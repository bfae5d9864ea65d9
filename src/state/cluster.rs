//! The `cluster:` block of the gateway file: several replicas sharing their state on Redis or
//! Valkey (issue 15). Without the block a gateway is one process with in-process state (the
//! embedded default).
//!
//! ```yaml
//! cluster:
//!   redis_url: ${SWITCHBOARD_REDIS_URL}   # redis://[user:password@]host:port[/db], or rediss:// (TLS)
//!   key_prefix: "switchboard:"            # every key and channel of this deployment starts with it
//!   connect_timeout_ms: 1000              # one connection attempt
//!   command_timeout_ms: 250               # one round trip; past it the call fails and Redis counts as down
//!   health_interval_ms: 1000              # PING this often (also how soon a returned Redis is noticed)
//!   local_share: 0.34                     # while Redis is unreachable each replica allows itself this
//!                                         # fraction of every tenant limit and vendor budget
//! ```
//!
//! The URL usually carries a password: it is only ever shown redacted
//! ([`ClusterSettings::redacted_url`]), and `Debug` redacts it too.
//!
//! [`crate::cluster::Cluster::start`] assembles what one replica runs on those settings.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::config_error::ConfigError;

/// The `cluster:` block as written.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterFile {
    pub redis_url: String,
    #[serde(default = "default_key_prefix")]
    pub key_prefix: String,
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    #[serde(default = "default_command_timeout_ms")]
    pub command_timeout_ms: u64,
    #[serde(default = "default_health_interval_ms")]
    pub health_interval_ms: u64,
    #[serde(default = "default_local_share")]
    pub local_share: f64,
}

impl fmt::Debug for ClusterFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterFile")
            .field("redis_url", &redact(&self.redis_url))
            .field("key_prefix", &self.key_prefix)
            .finish_non_exhaustive()
    }
}

fn default_key_prefix() -> String {
    "switchboard:".to_owned()
}
fn default_connect_timeout_ms() -> u64 {
    1_000
}
fn default_command_timeout_ms() -> u64 {
    250
}
fn default_health_interval_ms() -> u64 {
    1_000
}
/// One replica's view: a lone replica keeps its whole limit. Set `1 / replicas` (rounded up a
/// little) for a deployment of several.
fn default_local_share() -> f64 {
    1.0
}

/// The validated `cluster:` block.
#[derive(Clone, PartialEq)]
pub struct ClusterSettings {
    /// The URL as configured (may hold a password: never log it, use [`Self::redacted_url`]).
    redis_url: String,
    pub key_prefix: String,
    pub connect_timeout: Duration,
    pub command_timeout: Duration,
    pub health_interval: Duration,
    /// In (0, 1].
    pub local_share: f64,
}

impl fmt::Debug for ClusterSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterSettings")
            .field("redis_url", &self.redacted_url())
            .field("key_prefix", &self.key_prefix)
            .field("connect_timeout", &self.connect_timeout)
            .field("command_timeout", &self.command_timeout)
            .field("health_interval", &self.health_interval)
            .field("local_share", &self.local_share)
            .finish()
    }
}

impl ClusterSettings {
    /// Validate `raw`, read from `file` (named in every error).
    pub fn try_build(file: &Path, raw: &ClusterFile) -> Result<ClusterSettings, ConfigError> {
        let err = |key: &str, reason: &str| ConfigError {
            file: file.to_path_buf(),
            key: format!("cluster.{key}"),
            reason: reason.to_owned(),
        };
        check_url(&raw.redis_url).map_err(|reason| err("redis_url", &reason))?;
        let prefix = &raw.key_prefix;
        if prefix.is_empty() || prefix.len() > 64 || !prefix.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(err(
                "key_prefix",
                "use 1 to 64 visible ASCII characters (no spaces), e.g. \"switchboard:\"",
            ));
        }
        if !(50..=30_000).contains(&raw.connect_timeout_ms) {
            return Err(err("connect_timeout_ms", "use 50 to 30000"));
        }
        if !(10..=10_000).contains(&raw.command_timeout_ms) {
            return Err(err("command_timeout_ms", "use 10 to 10000"));
        }
        if !(50..=60_000).contains(&raw.health_interval_ms) {
            return Err(err("health_interval_ms", "use 50 to 60000"));
        }
        let share = raw.local_share;
        if !(share.is_finite() && share > 0.0 && share <= 1.0) {
            return Err(err(
                "local_share",
                "use a fraction above 0 and at most 1 (e.g. 0.34 for three replicas)",
            ));
        }
        Ok(ClusterSettings {
            redis_url: raw.redis_url.trim().to_owned(),
            key_prefix: prefix.clone(),
            connect_timeout: Duration::from_millis(raw.connect_timeout_ms),
            command_timeout: Duration::from_millis(raw.command_timeout_ms),
            health_interval: Duration::from_millis(raw.health_interval_ms),
            local_share: share,
        })
    }

    /// Settings for a Redis at `redis_url` with every other key at its default (tests, tools).
    pub fn for_url(redis_url: &str) -> Result<ClusterSettings, ConfigError> {
        ClusterSettings::try_build(
            Path::new("<cluster>"),
            &ClusterFile {
                redis_url: redis_url.to_owned(),
                key_prefix: default_key_prefix(),
                connect_timeout_ms: default_connect_timeout_ms(),
                command_timeout_ms: default_command_timeout_ms(),
                health_interval_ms: default_health_interval_ms(),
                local_share: default_local_share(),
            },
        )
    }

    /// The URL to connect to. Holds the password when there is one: for the client only.
    pub fn redis_url(&self) -> &str {
        &self.redis_url
    }

    /// The URL with any user name and password replaced by `***`: for the operator's own config
    /// views (`switchboard check`, `/admin/config`). Logs and `/readyz` name no address at all.
    pub fn redacted_url(&self) -> String {
        redact(&self.redis_url)
    }

    /// Every cluster setting needs a restart: the connections and tasks are made once.
    pub fn restart_required(this: Option<&Self>, next: Option<&Self>) -> Vec<&'static str> {
        if this == next {
            Vec::new()
        } else {
            vec!["cluster"]
        }
    }
}

/// `redis://` or `rediss://`, a host, an optional numeric database, and nothing the client
/// would silently ignore.
fn check_url(raw: &str) -> Result<(), String> {
    let raw = raw.trim();
    let url = url::Url::parse(raw)
        .map_err(|_| "not a URL; use redis://host:6379 or rediss://host:6379 (TLS)".to_owned())?;
    if !matches!(url.scheme(), "redis" | "rediss") {
        return Err(format!(
            "scheme {:?} is not supported; use redis:// or rediss:// (TLS)",
            url.scheme()
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("names no host".to_owned());
    }
    let db = url.path().trim_start_matches('/');
    if !db.is_empty() && db.parse::<u16>().is_err() {
        return Err(format!("the path must be a database number, not {db:?}"));
    }
    if url.fragment().is_some() {
        return Err("a #fragment means nothing here".to_owned());
    }
    // The client's own parser has the last word (it knows its query options).
    redis::Client::open(raw)
        .map_err(|e| format!("rejected by the Redis client: {}", e.kind_str()))?;
    Ok(())
}

/// `redis://user:secret@host/0` → `redis://***@host/0`.
fn redact(raw: &str) -> String {
    match url::Url::parse(raw.trim()) {
        Ok(mut url) => {
            if !url.username().is_empty() || url.password().is_some() {
                // Both setters only fail for URLs that cannot have credentials.
                let _ = url.set_password(None);
                let _ = url.set_username("***");
            }
            url.to_string()
        }
        Err(_) => "<unparsable URL>".to_owned(),
    }
}

/// A short name for a client error kind, without the message (which may echo the input).
trait KindStr {
    fn kind_str(&self) -> String;
}

impl KindStr for redis::RedisError {
    fn kind_str(&self) -> String {
        format!("{:?}", self.kind())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(url: &str) -> ClusterFile {
        ClusterFile {
            redis_url: url.into(),
            key_prefix: default_key_prefix(),
            connect_timeout_ms: 1000,
            command_timeout_ms: 250,
            health_interval_ms: 1000,
            local_share: 0.5,
        }
    }

    fn build(raw: &ClusterFile) -> Result<ClusterSettings, ConfigError> {
        ClusterSettings::try_build(Path::new("/etc/switchboard.yaml"), raw)
    }

    #[test]
    fn redis_and_rediss_urls_are_accepted() {
        for url in [
            "redis://127.0.0.1:6379",
            "redis://redis",
            "redis://redis:6379/2",
            "rediss://user:s3cret@redis.internal:6380/0",
            "redis://:s3cret@redis:6379",
        ] {
            assert!(build(&file(url)).is_ok(), "{url}");
        }
    }

    #[test]
    fn bad_urls_are_named_with_file_key_and_reason() {
        for (url, reason) in [
            ("http://redis:6379", "scheme \"http\""),
            ("valkey-host:6379", "scheme"),
            ("not a url", "not a URL"),
            ("redis://redis:6379/cache", "database number"),
            ("redis:///0", "no host"),
        ] {
            let e = build(&file(url)).unwrap_err();
            assert_eq!(e.key, "cluster.redis_url", "{url}");
            assert!(e.reason.contains(reason), "{url}: {}", e.reason);
            assert!(e
                .to_string()
                .starts_with("/etc/switchboard.yaml: cluster.redis_url: "));
        }
    }

    #[test]
    fn out_of_range_numbers_are_refused() {
        let mut raw = file("redis://redis");
        raw.local_share = 0.0;
        assert_eq!(build(&raw).unwrap_err().key, "cluster.local_share");
        raw.local_share = 1.5;
        assert_eq!(build(&raw).unwrap_err().key, "cluster.local_share");
        raw.local_share = f64::NAN;
        assert_eq!(build(&raw).unwrap_err().key, "cluster.local_share");
        raw.local_share = 1.0;
        raw.command_timeout_ms = 0;
        assert_eq!(build(&raw).unwrap_err().key, "cluster.command_timeout_ms");
        raw.command_timeout_ms = 250;
        raw.connect_timeout_ms = 10;
        assert_eq!(build(&raw).unwrap_err().key, "cluster.connect_timeout_ms");
        raw.connect_timeout_ms = 1000;
        raw.health_interval_ms = 0;
        assert_eq!(build(&raw).unwrap_err().key, "cluster.health_interval_ms");
        raw.health_interval_ms = 1000;
        raw.key_prefix = "two words".into();
        assert_eq!(build(&raw).unwrap_err().key, "cluster.key_prefix");
        raw.key_prefix = String::new();
        assert_eq!(build(&raw).unwrap_err().key, "cluster.key_prefix");
    }

    #[test]
    fn yaml_defaults_and_unknown_keys() {
        let raw: ClusterFile = serde_yaml::from_str("redis_url: redis://redis:6379\n").unwrap();
        let s = build(&raw).unwrap();
        assert_eq!(s.key_prefix, "switchboard:");
        assert_eq!(s.connect_timeout, Duration::from_secs(1));
        assert_eq!(s.command_timeout, Duration::from_millis(250));
        assert_eq!(s.health_interval, Duration::from_secs(1));
        assert_eq!(s.local_share, 1.0);
        let unknown = serde_yaml::from_str::<ClusterFile>("redis_url: redis://r\nredis_ulr: x\n");
        assert!(unknown.unwrap_err().to_string().contains("redis_ulr"));
    }

    #[test]
    fn the_password_never_shows() {
        let s = build(&file("rediss://admin:hunter2@redis.internal:6380/1")).unwrap();
        assert_eq!(s.redacted_url(), "rediss://***@redis.internal:6380/1");
        assert!(!format!("{s:?}").contains("hunter2"));
        assert!(!format!("{:?}", file("redis://:hunter2@r")).contains("hunter2"));
        assert!(
            s.redis_url().contains("hunter2"),
            "the client still gets it"
        );
        let e = build(&file("http://admin:hunter2@redis")).unwrap_err();
        assert!(!e.to_string().contains("hunter2"));
    }

    #[test]
    fn any_change_needs_a_restart() {
        let a = build(&file("redis://a")).unwrap();
        let b = build(&file("redis://b")).unwrap();
        assert!(ClusterSettings::restart_required(Some(&a), Some(&a)).is_empty());
        assert_eq!(
            ClusterSettings::restart_required(Some(&a), Some(&b)),
            ["cluster"]
        );
        assert_eq!(
            ClusterSettings::restart_required(None, Some(&b)),
            ["cluster"]
        );
    }
}
