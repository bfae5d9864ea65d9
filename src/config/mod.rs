//! The config loader: the user-facing files (YAML DTOs), their validation, and the build of
//! the runtime [`Snapshot`] from them.
//!
//! Loading is one code path for startup, `switchboard check` and every reload:
//! read → interpolate `${ENV}` → parse → validate → build a complete [`Snapshot`]. Nothing
//! half-built is ever visible: the caller swaps the finished snapshot in atomically.

pub mod env;
pub mod passthrough;
pub mod routes;
pub mod tls;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::api::cursor::CursorCodec;
use crate::api::operation::Vendor;
use crate::auth::{AuthSettings, Authenticator, JwksIntervals, JwksStore, KeySource};
use crate::config_error::{ConfigError, ConfigWarning};
use crate::resilience::settings::{Layer, RateLimitSettings, ResilienceFile, ResilienceSettings};
use crate::snapshot::redact::Redactor;
use crate::snapshot::routes::{AuthScheme, VendorRoutes};
use crate::snapshot::{
    sha256_hex, Connection, FileHash, HttpLimits, Listen, LogSettings, Secret, Settings, Snapshot,
};
use crate::state::cluster::{ClusterFile, ClusterSettings};
use crate::upstream::BaseUrl;
use crate::vendors::{adapter_for, supported_operations};
pub use env::Env;
use routes::RoutesFile;

// ----- the file format ---------------------------------------------------------------------

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayFile {
    pub listen: ListenFile,
    #[serde(default)]
    pub threads: Option<usize>,
    #[serde(default = "default_grace")]
    pub grace_period_seconds: u64,
    #[serde(default = "default_shutdown_timeout")]
    pub graceful_shutdown_timeout_seconds: u64,
    #[serde(default = "default_body_limit")]
    pub body_limit_bytes: usize,
    /// Largest attachment of `POST /v1/messages`, decoded (the body limit applies first).
    #[serde(default = "default_attachment_max")]
    pub attachment_max_bytes: usize,
    /// Folder of `<vendor>.yaml` routes files, relative to this file.
    pub routes_dir: String,
    /// The connections file, relative to this file.
    pub connections: String,
    pub jwt: JwtFile,
    /// Key for cursor tags. Without it, a random key per process (cursors die on restart).
    #[serde(default)]
    pub cursor_secret: Option<Secret>,
    #[serde(default)]
    pub cache: CacheFile,
    #[serde(default)]
    pub log: LogFile,
    #[serde(default)]
    pub http: HttpFile,
    /// Several replicas sharing state on Redis (issue 15); absent: one process, in-process state.
    #[serde(default)]
    pub cluster: Option<ClusterFile>,
    /// Events (issue 14): the durable store's folder, retention, delivery. Absent: events off.
    #[serde(default)]
    pub events: Option<crate::events::model::EventsFile>,
}

/// How long and how much a client may take to send a request (`http:` in the gateway file).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpFile {
    /// From accepting a connection (or from the first byte of a later request on it) to the
    /// end of the request header.
    #[serde(default = "default_header_read_timeout")]
    pub header_read_timeout_ms: u64,
    /// From the end of the request header to the end of its body.
    #[serde(default = "default_body_read_timeout")]
    pub body_read_timeout_ms: u64,
    /// Largest request header (request line and every header field), in bytes.
    #[serde(default = "default_max_header_bytes")]
    pub max_header_bytes: usize,
    /// How long an idle keep-alive connection waits for its next request.
    #[serde(default = "default_keepalive_timeout")]
    pub keepalive_timeout_seconds: u64,
}

impl Default for HttpFile {
    fn default() -> Self {
        HttpFile {
            header_read_timeout_ms: default_header_read_timeout(),
            body_read_timeout_ms: default_body_read_timeout(),
            max_header_bytes: default_max_header_bytes(),
            keepalive_timeout_seconds: default_keepalive_timeout(),
        }
    }
}

fn default_header_read_timeout() -> u64 {
    10_000
}
fn default_body_read_timeout() -> u64 {
    30_000
}
fn default_max_header_bytes() -> usize {
    64 * 1024
}
fn default_keepalive_timeout() -> u64 {
    60
}

/// Pingora's own hard limit on a request header (`MAX_HEADER_SIZE`).
const PINGORA_MAX_HEADER_BYTES: usize = 1_048_575;

fn default_grace() -> u64 {
    10
}
fn default_shutdown_timeout() -> u64 {
    5
}
fn default_body_limit() -> usize {
    1024 * 1024
}
fn default_attachment_max() -> usize {
    crate::vendors::DEFAULT_ATTACHMENT_MAX_BYTES
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ListenFile {
    pub api: String,
    pub admin: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtFile {
    pub algorithm: String,
    /// The HS256 shared secret (`${ENV}`); never printed.
    #[serde(default)]
    pub secret: Option<Secret>,
    #[serde(default)]
    pub public_key_file: Option<String>,
    #[serde(default)]
    pub jwks_url: Option<String>,
    #[serde(default = "default_jwks_refresh")]
    pub jwks_min_refresh_seconds: u64,
    /// Background refresh period without `Cache-Control: max-age`, and the longest one with it.
    #[serde(default = "default_jwks_periodic_refresh")]
    pub jwks_refresh_seconds: u64,
    #[serde(default)]
    pub issuer: Option<OneOrMany>,
    #[serde(default)]
    pub audience: Option<OneOrMany>,
    #[serde(default = "default_tenant_claim")]
    pub tenant_claim: String,
    #[serde(default = "default_leeway")]
    pub leeway_seconds: u64,
}

fn default_jwks_refresh() -> u64 {
    30
}
fn default_jwks_periodic_refresh() -> u64 {
    300
}
fn default_tenant_claim() -> String {
    "tenant".to_owned()
}
fn default_leeway() -> u64 {
    30
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheFile {
    #[serde(default = "default_cache_entries")]
    pub max_entries: u64,
    /// Bytes the response cache may hold (bodies, keys, per-entry overhead).
    #[serde(default = "default_cache_bytes")]
    pub max_bytes: u64,
}

impl Default for CacheFile {
    fn default() -> Self {
        CacheFile {
            max_entries: default_cache_entries(),
            max_bytes: default_cache_bytes(),
        }
    }
}

fn default_cache_bytes() -> u64 {
    crate::cache::DEFAULT_MAX_BYTES
}

fn default_cache_entries() -> u64 {
    10_000
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LogFile {
    #[serde(default = "default_log_format")]
    pub format: String,
    #[serde(default = "default_log_filter")]
    pub filter: String,
}

impl Default for LogFile {
    fn default() -> Self {
        LogFile {
            format: default_log_format(),
            filter: default_log_filter(),
        }
    }
}

fn default_log_format() -> String {
    "text".to_owned()
}
fn default_log_filter() -> String {
    "info".to_owned()
}

/// `connections.yaml`: tenant → connection name → connection.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionsFile {
    pub tenants: BTreeMap<String, BTreeMap<String, ConnectionFile>>,
    /// Per tenant, where events are pushed: `{url, secret, events[]}` by subscription name.
    #[serde(default)]
    pub subscriptions: crate::events::model::SubscriptionsFile,
    /// Each tenant's own request limit, `tenant: {requests_per_second, burst}`; a tenant
    /// without an entry is not limited (docs/api.md, "Limits and circuits").
    #[serde(default)]
    pub rate_limits: BTreeMap<String, RateLimitSettings>,
}

/// One connection as written. `Debug` leaves the credentials out.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionFile {
    pub vendor: String,
    pub base_url: String,
    #[serde(default)]
    pub credentials: BTreeMap<String, String>,
    #[serde(default)]
    pub defaults: Map<String, Value>,
    /// TLS toward the vendor (https base URLs): trust, server name, client certificate.
    #[serde(default)]
    pub tls: Option<tls::TlsFile>,
    /// Libredesk: the secret its webhooks are signed with (`${ENV}`).
    #[serde(default)]
    pub webhook_secret: Option<Secret>,
    /// CAAC: the bearer token its AI-agent call carries (`${ENV}`).
    #[serde(default)]
    pub webhook_token: Option<Secret>,
    /// CAAC: the app's agent the AI-agent call is bridged to.
    #[serde(default)]
    pub agent: Option<crate::events::caac::AgentFile>,
    /// Vendors without push: list differences become events every `interval_seconds`.
    #[serde(default)]
    pub poll: Option<crate::events::settings::PollFile>,
    /// The vendor edge of this connection, key by key over its routes file's defaults
    /// ([`crate::resilience::settings`]).
    #[serde(default)]
    pub retry: Option<serde_yaml::Value>,
    #[serde(default)]
    pub circuit_breaker: Option<serde_yaml::Value>,
    #[serde(default)]
    pub vendor_budget: Option<serde_yaml::Value>,
    #[serde(default)]
    pub vendor_pause: Option<serde_yaml::Value>,
}

impl ConnectionFile {
    fn resilience(&self) -> ResilienceFile {
        ResilienceFile {
            retry: self.retry.clone(),
            circuit_breaker: self.circuit_breaker.clone(),
            vendor_budget: self.vendor_budget.clone(),
            vendor_pause: self.vendor_pause.clone(),
        }
    }
}

impl std::fmt::Debug for ConnectionFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionFile")
            .field("vendor", &self.vendor)
            .field("base_url", &self.base_url)
            .field("credentials", &"<redacted>")
            .field("defaults", &self.defaults)
            .field("tls", &self.tls)
            .field("retry", &self.retry)
            .field("circuit_breaker", &self.circuit_breaker)
            .field("vendor_budget", &self.vendor_budget)
            .field("vendor_pause", &self.vendor_pause)
            .finish()
    }
}

/// Builds snapshots. Keeps what must survive reloads: the environment, JWKS stores (keyed by
/// URL) and the per-process cursor key.
pub struct Loader {
    config_path: PathBuf,
    env: Env,
    jwks: Mutex<HashMap<String, Arc<JwksStore>>>,
    process_cursor_key: [u8; 32],
}

impl Loader {
    pub fn new(config_path: impl Into<PathBuf>, env: Env) -> Self {
        Loader {
            config_path: config_path.into(),
            env,
            jwks: Mutex::new(HashMap::new()),
            process_cursor_key: rand::random(),
        }
    }

    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// Read, validate and build a snapshot with the given generation number.
    pub fn load(&self, generation: u64) -> Result<Snapshot, ConfigError> {
        let path = &self.config_path;
        let (gateway, gateway_hash): (GatewayFile, _) = read_yaml(path, &self.env)?;
        let base_dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        let mut files = vec![FileHash {
            path: path.clone(),
            sha256: gateway_hash,
        }];

        check_listen(path, &gateway.listen)?;
        if gateway.body_limit_bytes == 0 {
            return Err(ConfigError::new(
                path,
                "body_limit_bytes",
                "must be greater than 0",
            ));
        }
        if gateway.attachment_max_bytes == 0 {
            return Err(ConfigError::new(
                path,
                "attachment_max_bytes",
                "must be greater than 0",
            ));
        }
        let http = http_limits(path, &gateway.http)?;
        if gateway.cache.max_bytes == 0 {
            return Err(ConfigError::new(
                path,
                "cache.max_bytes",
                "must be greater than 0 (32 MiB when left out)",
            ));
        }
        if !matches!(gateway.log.format.as_str(), "text" | "json") {
            return Err(ConfigError::new(path, "log.format", "use `text` or `json`"));
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&gateway.log.filter) {
            return Err(ConfigError::new(path, "log.filter", e.to_string()));
        }

        let cluster = gateway
            .cluster
            .as_ref()
            .map(|raw| ClusterSettings::try_build(path, raw))
            .transpose()?;

        let (auth, dev_secret) = self.build_auth(path, &base_dir, &gateway.jwt, &mut files)?;

        // Routes: every *.yaml in the folder, one vendor per file.
        let routes_dir = base_dir.join(&gateway.routes_dir);
        let mut routes: BTreeMap<Vendor, Arc<VendorRoutes>> = BTreeMap::new();
        let mut entries: Vec<PathBuf> = std::fs::read_dir(&routes_dir)
            .map_err(|e| {
                ConfigError::new(path, "routes_dir", format!("{}: {e}", routes_dir.display()))
            })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
            .collect();
        entries.sort();
        for file in entries {
            let (parsed, hash): (RoutesFile, _) = read_yaml(&file, &self.env)?;
            let compiled =
                routes::compile(&parsed).map_err(|e| ConfigError::new(&file, e.key, e.reason))?;
            if routes.contains_key(&compiled.vendor) {
                return Err(ConfigError::new(
                    &file,
                    "vendor",
                    format!(
                        "a second routes file for {}; keep one per vendor",
                        compiled.vendor
                    ),
                ));
            }
            routes.insert(compiled.vendor, Arc::new(compiled));
            files.push(FileHash {
                path: file,
                sha256: hash,
            });
        }

        let connections_path = base_dir.join(&gateway.connections);
        let (connections, hash): (ConnectionsFile, _) = read_yaml(&connections_path, &self.env)?;
        files.push(FileHash {
            path: connections_path.clone(),
            sha256: hash,
        });
        let mut warnings = Vec::new();
        let tenants = build_connections(
            &connections_path,
            &connections,
            &routes,
            &mut files,
            &mut warnings,
        )?;
        let rate_limits = tenant_rate_limits(&connections_path, &connections)?;

        let events = events_config(path, &gateway, &connections_path, &connections, &tenants)?;

        let cursors = match &gateway.cursor_secret {
            Some(s) if s.expose().len() >= 16 => CursorCodec::new(s.expose().as_bytes()),
            Some(_) => {
                return Err(ConfigError::new(
                    path,
                    "cursor_secret",
                    "use at least 16 characters",
                ))
            }
            None => CursorCodec::new(&self.process_cursor_key),
        };

        Ok(Snapshot {
            generation,
            settings: Settings {
                listen: Listen {
                    api: gateway.listen.api.clone(),
                    admin: gateway.listen.admin.clone(),
                },
                threads: gateway.threads,
                grace_period_seconds: gateway.grace_period_seconds,
                graceful_shutdown_timeout_seconds: gateway.graceful_shutdown_timeout_seconds,
                body_limit_bytes: gateway.body_limit_bytes,
                attachment_max_bytes: gateway.attachment_max_bytes,
                http,
                cache_max_entries: gateway.cache.max_entries,
                cache_max_bytes: gateway.cache.max_bytes,
                log: LogSettings {
                    format: gateway.log.format.clone(),
                    filter: gateway.log.filter.clone(),
                },
                dev_secret,
                tenant_claim: gateway.jwt.tenant_claim.clone(),
                issuer: gateway
                    .jwt
                    .issuer
                    .clone()
                    .and_then(|i| i.into_vec().into_iter().next()),
                audience: gateway
                    .jwt
                    .audience
                    .clone()
                    .and_then(|a| a.into_vec().into_iter().next()),
                cluster,
            },
            auth,
            cursors,
            tenants,
            routes,
            files,
            routes_dir,
            warnings,
            events: Arc::new(events),
            rate_limits,
        })
    }

    fn build_auth(
        &self,
        path: &Path,
        base_dir: &Path,
        jwt: &JwtFile,
        files: &mut Vec<FileHash>,
    ) -> Result<(Authenticator, Option<Secret>), ConfigError> {
        use jsonwebtoken::{Algorithm, DecodingKey};
        let algorithm = match jwt.algorithm.as_str() {
            "HS256" => Algorithm::HS256,
            "RS256" => Algorithm::RS256,
            "ES256" => Algorithm::ES256,
            other => {
                return Err(ConfigError::new(
                    path,
                    "jwt.algorithm",
                    format!("{other:?} is not accepted; use HS256, RS256 or ES256"),
                ))
            }
        };
        let sources = [
            jwt.secret.is_some(),
            jwt.public_key_file.is_some(),
            jwt.jwks_url.is_some(),
        ]
        .iter()
        .filter(|x| **x)
        .count();
        if sources != 1 {
            return Err(ConfigError::new(
                path,
                "jwt",
                "set exactly one of `secret` (HS256), `public_key_file` or `jwks_url` (RS256/ES256)",
            ));
        }
        let mut dev_secret = None;
        let keys = if let Some(secret) = &jwt.secret {
            if algorithm != Algorithm::HS256 {
                return Err(ConfigError::new(
                    path,
                    "jwt.secret",
                    "a shared secret only works with HS256",
                ));
            }
            if secret.expose().len() < 16 {
                return Err(ConfigError::new(
                    path,
                    "jwt.secret",
                    "use at least 16 characters",
                ));
            }
            dev_secret = Some(secret.clone());
            KeySource::Static(DecodingKey::from_secret(secret.expose().as_bytes()))
        } else if let Some(file) = &jwt.public_key_file {
            if algorithm == Algorithm::HS256 {
                return Err(ConfigError::new(
                    path,
                    "jwt.public_key_file",
                    "HS256 uses `secret`",
                ));
            }
            let key_path = base_dir.join(file);
            let pem = std::fs::read(&key_path).map_err(|e| {
                ConfigError::new(
                    path,
                    "jwt.public_key_file",
                    format!("{}: {e}", key_path.display()),
                )
            })?;
            let key = match algorithm {
                Algorithm::RS256 => DecodingKey::from_rsa_pem(&pem),
                _ => DecodingKey::from_ec_pem(&pem),
            }
            .map_err(|e| {
                ConfigError::new(
                    &key_path,
                    "",
                    format!("not a {algorithm:?} public key: {e}"),
                )
            })?;
            files.push(FileHash {
                sha256: sha256_hex(&pem),
                path: key_path,
            });
            KeySource::Static(key)
        } else {
            let url = jwt.jwks_url.clone().unwrap_or_default();
            if algorithm == Algorithm::HS256 {
                return Err(ConfigError::new(
                    path,
                    "jwt.jwks_url",
                    "HS256 uses `secret`",
                ));
            }
            check_jwks_url(&url).map_err(|r| ConfigError::new(path, "jwt.jwks_url", r))?;
            if jwt.jwks_refresh_seconds == 0 {
                return Err(ConfigError::new(
                    path,
                    "jwt.jwks_refresh_seconds",
                    "must be greater than 0",
                ));
            }
            let intervals = JwksIntervals {
                min_refresh: Duration::from_secs(jwt.jwks_min_refresh_seconds.max(1)),
                refresh: Duration::from_secs(jwt.jwks_refresh_seconds),
            };
            let mut stores = match self.jwks.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            let store = stores
                .entry(url.clone())
                .or_insert_with(|| Arc::new(JwksStore::new(url, intervals)))
                .clone();
            store.set_intervals(intervals);
            KeySource::Jwks(store)
        };
        if jwt.tenant_claim.is_empty() {
            return Err(ConfigError::new(
                path,
                "jwt.tenant_claim",
                "must not be empty",
            ));
        }
        let auth = Authenticator::new(AuthSettings {
            algorithm,
            keys,
            issuer: jwt.issuer.clone().map(OneOrMany::into_vec),
            audience: jwt.audience.clone().map(OneOrMany::into_vec),
            tenant_claim: jwt.tenant_claim.clone(),
            leeway_seconds: jwt.leeway_seconds,
        });
        Ok((auth, dev_secret))
    }
}

/// A JWKS URL: http(s), a host, no credentials or fragment. Unlike a vendor base URL it may
/// carry a query string (Entra ID's JWKS URLs have one: `…/keys?appid=…`).
fn check_jwks_url(raw: &str) -> Result<(), String> {
    let url = url::Url::parse(raw).map_err(|e| format!("{raw:?} is not a URL: {e}"))?;
    if !matches!(url.scheme(), "https" | "http") {
        return Err(format!(
            "scheme {:?} is not supported; use https or http",
            url.scheme()
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("{raw:?} has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("a JWKS URL carries no credentials".to_owned());
    }
    if url.fragment().is_some() {
        return Err("a JWKS URL has no fragment".to_owned());
    }
    Ok(())
}

fn http_limits(path: &Path, http: &HttpFile) -> Result<HttpLimits, ConfigError> {
    for (key, value) in [
        ("http.header_read_timeout_ms", http.header_read_timeout_ms),
        ("http.body_read_timeout_ms", http.body_read_timeout_ms),
        (
            "http.keepalive_timeout_seconds",
            http.keepalive_timeout_seconds,
        ),
    ] {
        if value == 0 {
            return Err(ConfigError::new(path, key, "must be greater than 0"));
        }
    }
    if !(1024..=PINGORA_MAX_HEADER_BYTES).contains(&http.max_header_bytes) {
        return Err(ConfigError::new(
            path,
            "http.max_header_bytes",
            format!("must be from 1024 to {PINGORA_MAX_HEADER_BYTES}"),
        ));
    }
    Ok(HttpLimits {
        header_read_timeout: Duration::from_millis(http.header_read_timeout_ms),
        body_read_timeout: Duration::from_millis(http.body_read_timeout_ms),
        max_header_bytes: http.max_header_bytes,
        keepalive_timeout: Duration::from_secs(http.keepalive_timeout_seconds),
    })
}

fn check_listen(path: &Path, listen: &ListenFile) -> Result<(), ConfigError> {
    for (key, addr) in [("listen.api", &listen.api), ("listen.admin", &listen.admin)] {
        addr.parse::<std::net::SocketAddr>().map_err(|_| {
            ConfigError::new(
                path,
                key,
                format!("{addr:?} is not an address such as 127.0.0.1:8080"),
            )
        })?;
    }
    if listen.api == listen.admin {
        return Err(ConfigError::new(
            path,
            "listen.admin",
            "must differ from listen.api",
        ));
    }
    Ok(())
}

/// The event settings of this generation (see [`crate::events::settings`]).
fn events_config(
    path: &Path,
    gateway: &GatewayFile,
    connections_path: &Path,
    file: &ConnectionsFile,
    tenants: &HashMap<String, BTreeMap<String, Arc<Connection>>>,
) -> Result<crate::events::settings::EventsConfig, ConfigError> {
    use crate::api::operation::Operation;
    use crate::events::settings::{ConnectionEventsRaw, ConnectionInput, EventsConfig};
    let inputs = file.tenants.iter().flat_map(|(tenant, conns)| {
        conns.iter().filter_map(move |(name, conn)| {
            let built = tenants.get(tenant)?.get(name)?;
            Some(ConnectionInput {
                tenant,
                name,
                vendor: built.vendor,
                can_list_conversations: built.supports(Operation::ConversationsList).is_some(),
                raw: ConnectionEventsRaw {
                    webhook_secret: conn.webhook_secret.as_ref().map(Secret::expose),
                    webhook_token: conn.webhook_token.as_ref().map(Secret::expose),
                    agent: conn.agent.as_ref(),
                    poll: conn.poll.as_ref(),
                },
            })
        })
    });
    EventsConfig::try_build(
        path,
        gateway.events.as_ref(),
        connections_path,
        &file.subscriptions,
        |t| tenants.contains_key(t),
        inputs,
    )
}

fn build_connections(
    path: &Path,
    file: &ConnectionsFile,
    routes: &BTreeMap<Vendor, Arc<VendorRoutes>>,
    files: &mut Vec<FileHash>,
    warnings: &mut Vec<ConfigWarning>,
) -> Result<HashMap<String, BTreeMap<String, Arc<Connection>>>, ConfigError> {
    let mut tenants = HashMap::new();
    // Loaded once per snapshot, and only when a connection says `ca_mode: add`.
    let mut system_roots: Option<Result<Vec<openssl::x509::X509>, String>> = None;
    let mut roots = || system_roots.get_or_insert_with(tls::system_roots).clone();
    for (tenant, connections) in &file.tenants {
        if !valid_name(tenant) {
            return Err(ConfigError::new(
                path,
                format!("tenants.{tenant}"),
                "use letters, digits, '-' and '_'",
            ));
        }
        let mut built = BTreeMap::new();
        for (name, conn) in connections {
            let key = format!("tenants.{tenant}.{name}");
            if !valid_name(name) {
                return Err(ConfigError::new(
                    path,
                    &key,
                    "use letters, digits, '-' and '_'",
                ));
            }
            let vendor = Vendor::parse(&conn.vendor).ok_or_else(|| {
                ConfigError::new(
                    path,
                    format!("{key}.vendor"),
                    format!(
                        "unknown vendor {:?}; known: caac, llamadapro, chatcaptain, libredesk",
                        conn.vendor
                    ),
                )
            })?;
            let vendor_routes = routes.get(&vendor).cloned().ok_or_else(|| {
                ConfigError::new(
                    path,
                    format!("{key}.vendor"),
                    format!("no routes file for {vendor} in routes_dir"),
                )
            })?;
            let base_url = BaseUrl::parse(&conn.base_url)
                .map_err(|r| ConfigError::new(path, format!("{key}.base_url"), r))?;
            for needed in vendor_routes.auth.required_credentials() {
                if conn.credentials.get(*needed).is_none_or(|v| v.is_empty()) {
                    return Err(ConfigError::new(
                        path,
                        format!("{key}.credentials.{needed}"),
                        format!("required by the {vendor} auth scheme"),
                    ));
                }
            }
            let adapter = adapter_for(vendor);
            for needed in adapter.required_defaults() {
                if !conn.defaults.contains_key(*needed) {
                    return Err(ConfigError::new(
                        path,
                        format!("{key}.defaults.{needed}"),
                        format!("{vendor} needs it"),
                    ));
                }
            }
            let auth_header = auth_header(&vendor_routes.auth, &conn.credentials)
                .map_err(|r| ConfigError::new(path, format!("{key}.credentials"), r))?;
            let tls = tls::build(
                conn.tls.as_ref(),
                &base_url,
                &tls::Place {
                    file: path,
                    key: &key,
                },
                files,
                warnings,
                &mut roots,
            )?;
            let redactor = redactor(&conn.credentials, &auth_header.1);
            let capabilities = supported_operations(adapter, &vendor_routes);
            let resilience =
                ResilienceSettings::resolve(&vendor_routes.resilience, &conn.resilience())
                    .map_err(|e| {
                        let reason = match e.layer {
                            Layer::Connection => e.error.reason,
                            Layer::VendorDefaults => format!(
                                "{} (merged with the defaults of routes/{vendor}.yaml)",
                                e.error.reason
                            ),
                        };
                        ConfigError::new(path, format!("{key}.{}", e.error.key), reason)
                    })?;
            let fingerprint = fingerprint(tenant, name, conn, &vendor_routes);
            built.insert(
                name.clone(),
                Arc::new(Connection {
                    tenant: tenant.clone(),
                    name: name.clone(),
                    vendor,
                    base_url,
                    auth_header,
                    credentials: conn
                        .credentials
                        .iter()
                        .map(|(k, v)| (k.clone(), Secret::new(v.clone())))
                        .collect(),
                    redactor,
                    defaults: conn.defaults.clone(),
                    tls,
                    routes: vendor_routes,
                    capabilities,
                    fingerprint,
                    resilience,
                }),
            );
        }
        tenants.insert(tenant.clone(), built);
    }
    Ok(tenants)
}

/// `rate_limits:` of the connections file: each entry names a configured tenant and is a
/// valid limit (a typo in a tenant name would otherwise switch its limit off silently).
fn tenant_rate_limits(
    path: &Path,
    file: &ConnectionsFile,
) -> Result<HashMap<String, crate::state::Limit>, ConfigError> {
    let mut limits = HashMap::new();
    for (tenant, settings) in &file.rate_limits {
        let key = format!("rate_limits.{tenant}");
        if !file.tenants.contains_key(tenant) {
            let known: Vec<&str> = file.tenants.keys().map(String::as_str).collect();
            return Err(ConfigError::new(
                path,
                key,
                format!("no such tenant; known: {}", known.join(", ")),
            ));
        }
        settings
            .validate()
            .map_err(|e| ConfigError::new(path, format!("{key}.{}", e.key), e.reason))?;
        limits.insert(tenant.clone(), settings.limit());
    }
    Ok(limits)
}

/// The credential forms to cut out of this connection's vendor answers: `api_key` and
/// `api_secret` first (their Basic pair), then any other credential, and the auth header.
fn redactor(credentials: &BTreeMap<String, String>, auth_header: &http::HeaderValue) -> Redactor {
    let ordered = ["api_key", "api_secret"]
        .iter()
        .filter_map(|k| credentials.get(*k))
        .chain(
            credentials
                .iter()
                .filter(|(k, _)| !matches!(k.as_str(), "api_key" | "api_secret"))
                .map(|(_, v)| v),
        )
        .map(String::as_str);
    Redactor::new(ordered, auth_header.to_str().unwrap_or_default())
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn auth_header(
    scheme: &AuthScheme,
    credentials: &BTreeMap<String, String>,
) -> Result<(http::HeaderName, http::HeaderValue), String> {
    let key = credentials
        .get("api_key")
        .map(String::as_str)
        .unwrap_or_default();
    let secret = credentials
        .get("api_secret")
        .map(String::as_str)
        .unwrap_or_default();
    let (name, value) = match scheme {
        AuthScheme::Token => (http::header::AUTHORIZATION, format!("token {key}:{secret}")),
        AuthScheme::Basic => (
            http::header::AUTHORIZATION,
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{key}:{secret}"))
            ),
        ),
        AuthScheme::Bearer => (http::header::AUTHORIZATION, format!("Bearer {key}")),
        AuthScheme::Header(name) => (name.clone(), key.to_owned()),
    };
    let mut value = http::HeaderValue::from_str(&value)
        .map_err(|_| "credentials contain characters not allowed in a header".to_owned())?;
    value.set_sensitive(true);
    Ok((name, value))
}

fn fingerprint(tenant: &str, name: &str, conn: &ConnectionFile, routes: &VendorRoutes) -> u64 {
    let mut h = Sha256::new();
    for part in [tenant, name, &conn.vendor, &conn.base_url] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    for (k, v) in &conn.credentials {
        h.update(k.as_bytes());
        h.update(v.as_bytes());
        h.update([0]);
    }
    h.update(serde_json::to_vec(&conn.defaults).unwrap_or_default());
    h.update(format!("{:?}", routes.endpoints).as_bytes());
    // Settings change what an answer says (CAAC's `member_types`), so cached answers with them.
    h.update(serde_json::to_vec(&routes.settings).unwrap_or_default());
    let digest = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// Keys whose values must never appear in an error message.
fn is_secret_key(key: &str) -> bool {
    ["credentials", "secret", "password", "token", "api_key"]
        .iter()
        .any(|s| key.contains(s))
}

/// Read a YAML file, interpolate `${ENV}`, and deserialize it, naming the key on failure.
fn read_yaml<T: DeserializeOwned>(path: &Path, env: &Env) -> Result<(T, String), ConfigError> {
    let bytes =
        std::fs::read(path).map_err(|e| ConfigError::new(path, "", format!("cannot read: {e}")))?;
    let hash = sha256_hex(&bytes);
    let mut value: serde_yaml::Value = serde_yaml::from_slice(&bytes).map_err(|e| {
        let at = e
            .location()
            .map(|l| format!("line {}, column {}", l.line(), l.column()))
            .unwrap_or_default();
        ConfigError::new(path, at, format!("not valid YAML: {e}"))
    })?;
    env::interpolate(&mut value, env, &mut Vec::new())
        .map_err(|(key, reason)| ConfigError::new(path, key, reason))?;
    let parsed = serde_path_to_error::deserialize(value).map_err(|e| {
        let key = e.path().to_string();
        // serde quotes the offending value ("invalid type: string \"…\""): never for a secret.
        let reason = if is_secret_key(&key) {
            "invalid value (not shown: this key holds a secret)".to_owned()
        } else {
            e.into_inner().to_string()
        };
        ConfigError::new(path, if key == "." { String::new() } else { key }, reason)
    })?;
    Ok((parsed, hash))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_never_quote_a_secret() {
        let dir = std::env::temp_dir().join(format!("sb-secret-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("connections.yaml");
        std::fs::write(
            &file,
            "tenants:\n  t:\n    c:\n      vendor: libredesk\n      base_url: http://x\n      credentials: \"TOPSECRETKEY:TOPSECRETSECRET\"\n",
        )
        .unwrap();
        let err = read_yaml::<ConnectionsFile>(&file, &Env::default()).unwrap_err();
        assert_eq!(err.key, "tenants.t.c.credentials");
        assert!(!err.to_string().contains("TOPSECRET"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_jwt_and_cursor_secrets_are_never_printed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("routes")).unwrap();
        std::fs::write(
            dir.path().join("switchboard.yaml"),
            "listen: {api: 127.0.0.1:1, admin: 127.0.0.1:2}\nroutes_dir: routes\n\
             connections: connections.yaml\n\
             jwt: {algorithm: HS256, secret: JWT-TOPSECRET-0123456789}\n\
             cursor_secret: CURSOR-TOPSECRET-0123456789\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("connections.yaml"), "tenants: {}\n").unwrap();
        let snapshot = Loader::new(dir.path().join("switchboard.yaml"), Env::default())
            .load(1)
            .unwrap();
        let secret = snapshot.settings.dev_secret.as_ref().unwrap();
        assert_eq!(secret.expose(), "JWT-TOPSECRET-0123456789");
        let printed = format!("{snapshot:?}");
        assert!(printed.contains("<redacted>"), "{printed}");
        assert!(!printed.contains("TOPSECRET"), "{printed}");
        let file: GatewayFile = serde_yaml::from_str(
            "listen: {api: a, admin: b}\nroutes_dir: r\nconnections: c\n\
             jwt: {algorithm: HS256, secret: JWT-TOPSECRET-0123456789}\n\
             cursor_secret: CURSOR-TOPSECRET-0123456789\n",
        )
        .unwrap();
        assert!(!format!("{file:?}").contains("TOPSECRET"));
    }

    #[test]
    fn cache_max_bytes_defaults_to_32_mib_and_must_be_positive() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("routes")).unwrap();
        std::fs::write(dir.path().join("connections.yaml"), "tenants: {}\n").unwrap();
        let load = |cache: &str| {
            std::fs::write(
                dir.path().join("switchboard.yaml"),
                format!(
                    "listen: {{api: 127.0.0.1:1, admin: 127.0.0.1:2}}\nroutes_dir: routes\n\
                     connections: connections.yaml\n\
                     jwt: {{algorithm: HS256, secret: a-secret-of-some-length}}\n{cache}"
                ),
            )
            .unwrap();
            Loader::new(dir.path().join("switchboard.yaml"), Env::default()).load(1)
        };
        let defaults = load("").unwrap();
        assert_eq!(defaults.settings.cache_max_bytes, 32 * 1024 * 1024);
        let set = load("cache: {max_entries: 50, max_bytes: 1048576}\n").unwrap();
        assert_eq!(set.settings.cache_max_bytes, 1_048_576);
        let zero = load("cache: {max_bytes: 0}\n").unwrap_err();
        assert_eq!(zero.key, "cache.max_bytes");
        let text = load("cache: {max_bytes: lots}\n").unwrap_err();
        assert_eq!(text.key, "cache.max_bytes");
    }

    #[test]
    fn jwks_urls_may_have_a_query_string() {
        assert!(check_jwks_url(
            "https://login.microsoftonline.com/common/discovery/v2.0/keys?appid=6731de76"
        )
        .is_ok());
        assert!(check_jwks_url("http://127.0.0.1:8080/jwks.json").is_ok());
        for bad in [
            "ftp://idp.example/keys",
            "https://user:pw@idp.example/keys",
            "https://idp.example/keys#frag",
            "not a url",
        ] {
            assert!(check_jwks_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn http_limits_are_validated() {
        let path = Path::new("switchboard.yaml");
        let limits = http_limits(path, &HttpFile::default()).unwrap();
        assert_eq!(limits.header_read_timeout, Duration::from_secs(10));
        assert_eq!(limits.max_header_bytes, 65536);
        for (file, key) in [
            (
                HttpFile {
                    header_read_timeout_ms: 0,
                    ..HttpFile::default()
                },
                "http.header_read_timeout_ms",
            ),
            (
                HttpFile {
                    body_read_timeout_ms: 0,
                    ..HttpFile::default()
                },
                "http.body_read_timeout_ms",
            ),
            (
                HttpFile {
                    max_header_bytes: 10,
                    ..HttpFile::default()
                },
                "http.max_header_bytes",
            ),
            (
                HttpFile {
                    max_header_bytes: 2 * 1024 * 1024,
                    ..HttpFile::default()
                },
                "http.max_header_bytes",
            ),
        ] {
            assert_eq!(http_limits(path, &file).unwrap_err().key, key);
        }
    }

    #[test]
    fn auth_headers_follow_the_scheme_and_are_sensitive() {
        let creds: BTreeMap<String, String> = [
            ("api_key".to_owned(), "k".to_owned()),
            ("api_secret".to_owned(), "s".to_owned()),
        ]
        .into();
        let (n, v) = auth_header(&AuthScheme::Token, &creds).unwrap();
        assert_eq!(n, http::header::AUTHORIZATION);
        assert_eq!(v, "token k:s");
        assert!(v.is_sensitive());
        let (_, v) = auth_header(&AuthScheme::Basic, &creds).unwrap();
        assert_eq!(v, "Basic azpz");
        let (n, v) = auth_header(
            &AuthScheme::Header(http::HeaderName::from_static("apikey")),
            &creds,
        )
        .unwrap();
        assert_eq!(n, "apikey");
        assert_eq!(v, "k");
    }
}
