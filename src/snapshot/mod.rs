//! The runtime model: the immutable [`Snapshot`] a request reads — settings, the verifier of
//! tokens, each tenant's connections ready to call, the compiled routes — and what it is made
//! of. The loader ([`crate::config`]) builds one from the files; nothing here reads YAML.
//!
//! A request loads the current snapshot once at its start and uses it to its end, so a reload
//! mid-request can't mix two configurations.

pub mod passthrough;
pub mod redact;
pub mod routes;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::api::cursor::CursorCodec;
use crate::api::operation::{Operation, Vendor};
use crate::auth::Authenticator;
use crate::config_error::ConfigWarning;
use crate::state::cluster::ClusterSettings;
use crate::upstream::tls::TlsSettings;
use crate::upstream::BaseUrl;
use redact::Redactor;
use routes::VendorRoutes;

/// A credential value. Never printed: `Debug` shows `<redacted>`, and there is no `Display`.
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// One tenant's connection to one vendor account, ready to call.
pub struct Connection {
    pub tenant: String,
    pub name: String,
    pub vendor: Vendor,
    pub base_url: BaseUrl,
    /// The auth header, built once from the credentials; marked sensitive.
    pub auth_header: (http::HeaderName, http::HeaderValue),
    /// The raw credentials (the demo hands them to its sandboxes). Never logged.
    pub credentials: BTreeMap<String, Secret>,
    /// Cuts every form of these credentials out of the vendor's answers.
    pub redactor: Redactor,
    pub defaults: Map<String, Value>,
    /// How sessions to the vendor are made and verified (https base URLs).
    pub tls: TlsSettings,
    pub routes: Arc<VendorRoutes>,
    /// Supported operations and their filters: what the router and capabilities read.
    pub capabilities: Vec<(Operation, Vec<&'static str>)>,
    /// Changes whenever anything about the connection changes (cache keys include it).
    pub fingerprint: u64,
    /// The vendor edge of this connection: retries, circuit breaker, vendor budget, vendor
    /// pause (its own keys merged over its vendor's routes-file defaults).
    pub resilience: crate::resilience::settings::ResilienceSettings,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("tenant", &self.tenant)
            .field("name", &self.name)
            .field("vendor", &self.vendor)
            .field("base_url", &self.base_url.host)
            .field("credentials", &"<redacted>")
            .finish_non_exhaustive()
    }
}

impl Connection {
    pub fn supports(&self, op: Operation) -> Option<&[&'static str]> {
        self.capabilities
            .iter()
            .find(|(o, _)| *o == op)
            .map(|(_, f)| f.as_slice())
    }

    /// A default rendered as a string (for path placeholders such as `{chatbot_id}`).
    pub fn default_string(&self, name: &str) -> Option<String> {
        match self.defaults.get(name)? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }
}

/// Where the two listeners bind (`listen:` in the gateway file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listen {
    pub api: String,
    pub admin: String,
}

/// How the process logs (`log:` in the gateway file): `text` or `json`, and an env-filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    pub format: String,
    pub filter: String,
}

/// The client-side limits of the API listener, in runtime form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    pub header_read_timeout: Duration,
    pub body_read_timeout: Duration,
    pub max_header_bytes: usize,
    pub keepalive_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: Listen,
    pub threads: Option<usize>,
    pub grace_period_seconds: u64,
    pub graceful_shutdown_timeout_seconds: u64,
    pub body_limit_bytes: usize,
    /// Largest decoded attachment of a message send (`attachment_max_bytes`).
    pub attachment_max_bytes: usize,
    pub http: HttpLimits,
    pub cache_max_entries: u64,
    pub cache_max_bytes: u64,
    pub log: LogSettings,
    /// The HS256 secret, when configured: `switchboard token` and the demo mint with it.
    pub dev_secret: Option<Secret>,
    pub tenant_claim: String,
    /// First configured issuer and audience, put into minted tokens.
    pub issuer: Option<String>,
    pub audience: Option<String>,
    /// `cluster:` (issue 15): share state with other replicas on Redis. `None`: one process.
    pub cluster: Option<ClusterSettings>,
}

impl Settings {
    /// Mint an HS256 token with the config's secret, carrying its audience and issuer (for
    /// `switchboard token` and the demo).
    pub fn mint(&self, tenant: &str, scope: &str, ttl: Duration) -> Result<String, String> {
        let secret = self.dev_secret.as_ref().ok_or(
            "this config verifies tokens with a public key; mint them with your identity provider",
        )?;
        let mut extra = serde_json::Map::new();
        if let Some(aud) = &self.audience {
            extra.insert("aud".to_owned(), aud.clone().into());
        }
        if let Some(iss) = &self.issuer {
            extra.insert("iss".to_owned(), iss.clone().into());
        }
        crate::auth::mint_hs256(
            secret.expose().as_bytes(),
            &self.tenant_claim,
            tenant,
            scope,
            ttl,
            &extra,
        )
        .map_err(|e| format!("could not sign the token: {e}"))
    }

    /// The settings that only take effect at start: a reload that changes them applies the
    /// rest and says which of these wait for a restart (or a graceful upgrade).
    pub fn restart_required(&self, next: &Settings) -> Vec<&'static str> {
        let mut keys = Vec::new();
        let mut check = |changed: bool, key: &'static str| {
            if changed {
                keys.push(key);
            }
        };
        check(self.listen.api != next.listen.api, "listen.api");
        check(self.listen.admin != next.listen.admin, "listen.admin");
        check(self.threads != next.threads, "threads");
        check(
            self.grace_period_seconds != next.grace_period_seconds,
            "grace_period_seconds",
        );
        check(
            self.graceful_shutdown_timeout_seconds != next.graceful_shutdown_timeout_seconds,
            "graceful_shutdown_timeout_seconds",
        );
        check(
            self.cache_max_entries != next.cache_max_entries,
            "cache.max_entries",
        );
        check(
            self.cache_max_bytes != next.cache_max_bytes,
            "cache.max_bytes",
        );
        check(self.log != next.log, "log");
        keys.extend(ClusterSettings::restart_required(
            self.cluster.as_ref(),
            next.cluster.as_ref(),
        ));
        keys
    }
}

/// A file that went into a snapshot, with the SHA-256 of its bytes (never its content).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileHash {
    pub path: PathBuf,
    pub sha256: String,
}

/// Everything a request needs, immutable. A request loads the current snapshot once at its
/// start and uses it to its end, so a reload mid-request can't mix two configurations.
#[derive(Debug)]
pub struct Snapshot {
    pub generation: u64,
    pub settings: Settings,
    pub auth: Authenticator,
    pub cursors: CursorCodec,
    pub tenants: HashMap<String, BTreeMap<String, Arc<Connection>>>,
    pub routes: BTreeMap<Vendor, Arc<VendorRoutes>>,
    pub files: Vec<FileHash>,
    /// The folder whose changes trigger a reload.
    pub routes_dir: PathBuf,
    /// What `switchboard check` warns about; the snapshot serves all the same.
    pub warnings: Vec<ConfigWarning>,
    /// Each tenant's own request limit (`rate_limits:` in the connections file); a tenant
    /// without an entry is not limited.
    pub rate_limits: HashMap<String, crate::state::Limit>,
    /// Event settings: `events:`, subscriptions, each connection's webhook, agent and poller.
    pub events: Arc<crate::events::settings::EventsConfig>,
}

impl Snapshot {
    pub fn connection(&self, tenant: &str, name: &str) -> Option<&Arc<Connection>> {
        self.tenants.get(tenant)?.get(name)
    }

    pub fn tenant_connections(&self, tenant: &str) -> Option<&BTreeMap<String, Arc<Connection>>> {
        self.tenants.get(tenant)
    }

    /// The files this snapshot was built from, with their hashes, sorted by path.
    pub fn files_loaded(&self) -> Vec<FileHash> {
        let mut files = self.files.clone();
        files.sort_by(|a, b| a.path.cmp(&b.path));
        files
    }

    /// The same files as they are on disk now, plus any routes file that appeared in the
    /// routes folder, sorted by path. It differs from [`Snapshot::files_loaded`] exactly when
    /// a reload would read different bytes: an editor's save, a Kubernetes `..data` swap or
    /// a new vendor's routes file — never a mere read or a rewrite with the same content.
    pub fn files_on_disk(&self) -> Vec<FileHash> {
        let mut paths: Vec<PathBuf> = self.files.iter().map(|f| f.path.clone()).collect();
        if let Ok(entries) = std::fs::read_dir(&self.routes_dir) {
            paths.extend(
                entries
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml")),
            );
        }
        paths.sort();
        paths.dedup();
        paths
            .into_iter()
            .map(|path| FileHash {
                sha256: match std::fs::read(&path) {
                    Ok(bytes) => sha256_hex(&bytes),
                    Err(e) => format!("unreadable: {}", e.kind()),
                },
                path,
            })
            .collect()
    }
}

/// The SHA-256 of `bytes`, in lowercase hex.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}
