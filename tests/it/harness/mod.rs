//! Test harness: a real switchboard server (pingora listeners on free loopback ports, see
//! [`free_ports`]) in front of real vendor sandboxes, driven over HTTP like a client would.
#![allow(dead_code)]
// Harness helpers fail loudly: a broken fixture is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod tls;

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use switchboard::api::operation::Vendor;
use switchboard::config::routes::{compile, RoutesFile};
use switchboard::config::{Env, Loader};
use switchboard::gateway::App;
use switchboard::sandbox::{Credentials, Sandbox};
use switchboard::server::{build_server, run_until, ProcessOptions, ShutdownTrigger};
use switchboard::snapshot::routes::VendorRoutes;

pub const SECRET: &str = "test-secret-0123456789abcdef";
pub const AUDIENCE: &str = "switchboard";
pub const ALL_SCOPES: &str =
    "contacts:read contacts:write conversations:read conversations:write messages:read messages:write raw:read passthrough";
pub const LD_KEY: &str = "ld-key";
pub const LD_SECRET: &str = "ld-secret";

/// A port that was free a moment ago, see [`free_ports`].
pub fn free_port() -> u16 {
    let [port] = free_ports();
    port
}

/// Where the harness picks ports: below the kernel's ephemeral range (Linux: 32768–60999),
/// which is where a socket bound to port 0 (a sandbox) or a client connection gets its port.
const PORTS: std::ops::Range<u16> = 20_000..32_768;

/// Every port handed out in this process: never handed out twice.
static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// `N` distinct ports that were free a moment ago, for listeners pingora binds itself (so the
/// harness releases them first). While one gateway's ports wait to be bound again, neither the
/// kernel (they are outside its ephemeral range) nor this function (each port is handed out
/// once per process) gives them to anything else: two gateways of tests running side by side
/// never share a port, and a test never talks to another test's gateway.
pub fn free_ports<const N: usize>() -> [u16; N] {
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(PoisonError::into_inner);
    let mut held = Vec::with_capacity(N);
    for _ in 0..10_000 {
        if held.len() == N {
            break;
        }
        let port = rand::random_range(PORTS);
        if handed_out.contains(&port) {
            continue;
        }
        if let Ok(listener) = TcpListener::bind(("127.0.0.1", port)) {
            handed_out.insert(port);
            held.push(listener);
        }
    }
    assert_eq!(held.len(), N, "no free port left in {PORTS:?}");
    std::array::from_fn(|i| held[i].local_addr().expect("bound port").port())
}

pub fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

pub fn load_routes(vendor: &str) -> Arc<VendorRoutes> {
    try_load_routes(vendor).unwrap_or_else(|e| panic!("routes/{vendor}.yaml: {e}"))
}

pub fn try_load_routes(vendor: &str) -> Result<Arc<VendorRoutes>, String> {
    let text = std::fs::read_to_string(repo_path(&format!("routes/{vendor}.yaml")))
        .map_err(|e| e.to_string())?;
    let file: RoutesFile = serde_yaml::from_str(&text).map_err(|e| e.to_string())?;
    compile(&file)
        .map(Arc::new)
        .map_err(|e| format!("{}: {}", e.key, e.reason))
}

/// Every key API.md documents on each normalized object (`raw` aside).
pub const CONTACT_KEYS: &[&str] = &[
    "id",
    "connection",
    "vendor",
    "remote_id",
    "created_at",
    "updated_at",
    "name",
    "first_name",
    "last_name",
    "emails",
    "phones",
    "handles",
    "company",
    "avatar_url",
    "custom_fields",
];
pub const CONVERSATION_KEYS: &[&str] = &[
    "id",
    "connection",
    "vendor",
    "remote_id",
    "created_at",
    "updated_at",
    "contact_id",
    "channel",
    "status",
    "vendor_status",
    "subject",
    "assignee",
    "priority",
    "tags",
    "last_message_at",
];
pub const MESSAGE_KEYS: &[&str] = &[
    "id",
    "connection",
    "vendor",
    "remote_id",
    "created_at",
    "updated_at",
    "conversation_id",
    "direction",
    "sender",
    "type",
    "text",
    "html",
    "attachments",
    "private",
    "status",
];

/// Options for one harness.
pub struct Options {
    pub body_limit: usize,
    /// Replaces every `timeout_ms` in the copied routes files.
    pub vendor_timeout_ms: u64,
    /// Extra YAML appended under `tenants:` in connections.yaml.
    pub extra_connections: String,
    /// `cache.max_entries` in the gateway config.
    pub cache_max_entries: u64,
    /// Rewrites each copied routes file: (file name, content) → content.
    pub routes_transform: Option<fn(&str, String) -> String>,
    /// Replaces the `jwt:` block of the gateway config (YAML lines indented by two spaces).
    pub jwt: Option<String>,
    /// Extra top-level YAML appended to the gateway config (e.g. an `http:` block).
    pub gateway_extra: String,
    /// Appended to every copied routes file: the vendor edge's defaults for these tests. By
    /// default retries, the circuit breaker and the vendor-429 pause are off, so one injected
    /// fault answers one request (the suites that check error mapping rely on it);
    /// `tests/it/resilience.rs` sets it empty and gets the shipped defaults.
    pub vendor_edge: String,
    /// Serve the Libredesk sandbox over HTTPS with a certificate for [`LIBREDESK_TLS_NAME`]
    /// from a test CA; the Libredesk connections trust it through `tls.ca_file` and name it
    /// with `tls.server_name`. Off by default; `api_libredesk_tls` runs the whole
    /// `api_libredesk` suite with it on.
    pub libredesk_tls: bool,
}

/// [`Options::vendor_edge`] by default: retries, breaker and pause off.
pub const EDGE_OFF: &str =
    "retry: {enabled: false}\ncircuit_breaker: {enabled: false}\nvendor_pause: {enabled: false}\n";

/// The name in the Libredesk sandbox's certificate when it serves HTTPS.
pub const LIBREDESK_TLS_NAME: &str = "libredesk.test";

impl Default for Options {
    fn default() -> Self {
        Options {
            body_limit: 64 * 1024,
            vendor_timeout_ms: 2000,
            extra_connections: String::new(),
            cache_max_entries: 1000,
            routes_transform: None,
            jwt: None,
            gateway_extra: String::new(),
            libredesk_tls: false,
            vendor_edge: EDGE_OFF.to_owned(),
        }
    }
}

pub struct Harness {
    pub api: String,
    pub admin: String,
    pub dir: tempfile::TempDir,
    pub libredesk: Sandbox,
    /// Sandboxes of the other vendors, each serving connection `acme.<vendor>`.
    pub others: Vec<Sandbox>,
    pub app: Arc<App>,
    pub http: reqwest::Client,
    trigger: ShutdownTrigger,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Harness {
    pub async fn start() -> Harness {
        Self::start_with(Options::default()).await
    }

    pub async fn start_with(options: Options) -> Harness {
        let libredesk = Sandbox::start_libredesk(
            load_routes("libredesk"),
            Credentials {
                api_key: LD_KEY.into(),
                api_secret: LD_SECRET.into(),
            },
        )
        .await
        .expect("sandbox starts");
        let dir = tempfile::tempdir().expect("tempdir");
        // `tls:` of every Libredesk connection (YAML flow map), when the sandbox serves HTTPS.
        let ld_tls = if options.libredesk_tls {
            let ca = tls::ca("switchboard test CA");
            let server = tls::server(&ca, LIBREDESK_TLS_NAME);
            libredesk.set_tls(Some(
                switchboard::sandbox::SandboxTls::new(&server.cert_pem(), &server.key_pem())
                    .expect("sandbox TLS"),
            ));
            std::fs::write(dir.path().join("libredesk-ca.pem"), ca.cert_pem()).expect("CA file");
            format!("\n      tls: {{ca_file: libredesk-ca.pem, server_name: {LIBREDESK_TLS_NAME}}}")
        } else {
            String::new()
        };
        let routes_dir = dir.path().join("routes");
        std::fs::create_dir_all(&routes_dir).expect("routes dir");
        for entry in std::fs::read_dir(repo_path("routes")).expect("routes") {
            let path = entry.expect("entry").path();
            let vendor = path
                .file_stem()
                .expect("stem")
                .to_string_lossy()
                .to_string();
            if let Err(e) = try_load_routes(&vendor) {
                // `switchboard check` in CI catches a broken routes file; here, serve the rest.
                eprintln!("harness: skipping routes/{vendor}.yaml: {e}");
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("read routes");
            let text = text.replace(
                "timeout_ms: 10000",
                &format!("timeout_ms: {}", options.vendor_timeout_ms),
            );
            let name = path
                .file_name()
                .expect("name")
                .to_string_lossy()
                .to_string();
            let text = format!("{}\n{}", text.trim_end(), options.vendor_edge);
            let text = match options.routes_transform {
                Some(transform) => transform(&name, text),
                None => text,
            };
            std::fs::write(routes_dir.join(&name), text).expect("write routes");
        }
        // Every other vendor with a sandbox gets a connection `acme.<vendor>`, with the
        // defaults the demo config gives it.
        let demo: serde_yaml::Value = serde_yaml::from_str(
            &std::fs::read_to_string(repo_path("config/demo-connections.yaml"))
                .expect("demo connections"),
        )
        .expect("demo yaml");
        let mut others = Vec::new();
        let mut other_connections = String::new();
        for vendor in [Vendor::Caac, Vendor::LlamadaPro, Vendor::ChatCaptain] {
            let name = vendor.as_str();
            let credentials = Credentials::new(format!("{name}-key"), format!("{name}-secret"));
            if demo["tenants"]["demo"][name].is_null() {
                // No demo connection for this vendor: nothing to copy defaults from.
                continue;
            }
            let Ok(routes) = try_load_routes(name) else {
                continue;
            };
            let Ok(sandbox) = Sandbox::start_vendor(vendor, routes, credentials).await else {
                continue;
            };
            let defaults = demo["tenants"]["demo"][name]["defaults"].clone();
            let defaults = serde_json::to_string(&defaults).expect("defaults as JSON");
            other_connections.push_str(&format!(
                "    {name}:\n      vendor: {name}\n      base_url: {}\n      credentials: {{api_key: {name}-key, api_secret: {name}-secret}}\n      defaults: {defaults}\n",
                sandbox.base_url()
            ));
            others.push(sandbox);
        }
        let [closed_port, api_port, admin_port] = free_ports();
        let connections = format!(
            r#"tenants:
  acme:
    support:
      vendor: libredesk
      base_url: {ld}
      credentials: {{api_key: {LD_KEY}, api_secret: {LD_SECRET}}}
      defaults: {{inbox_id: 1}}{ld_tls}
    badcreds:
      vendor: libredesk
      base_url: {ld}
      credentials: {{api_key: wrong, api_secret: wrong}}
      defaults: {{inbox_id: 1}}{ld_tls}
    down:
      vendor: libredesk
      base_url: http://127.0.0.1:{closed_port}
      credentials: {{api_key: {LD_KEY}, api_secret: {LD_SECRET}}}
      defaults: {{inbox_id: 1}}
{other_connections}  other:
    support:
      vendor: libredesk
      base_url: {ld}
      credentials: {{api_key: {LD_KEY}, api_secret: {LD_SECRET}}}
      defaults: {{inbox_id: 1}}{ld_tls}
  solo:
    only:
      vendor: libredesk
      base_url: {ld}
      credentials: {{api_key: {LD_KEY}, api_secret: {LD_SECRET}}}
      defaults: {{inbox_id: 1}}{ld_tls}
{extra}"#,
            ld = libredesk.base_url(),
            extra = options.extra_connections,
        );
        std::fs::write(dir.path().join("connections.yaml"), connections).expect("connections");
        let config = format!(
            r#"listen:
  api: 127.0.0.1:{api_port}
  admin: 127.0.0.1:{admin_port}
threads: 2
grace_period_seconds: 0
graceful_shutdown_timeout_seconds: 1
body_limit_bytes: {limit}
routes_dir: routes
connections: connections.yaml
jwt:
{jwt}
cursor_secret: test-cursor-secret-0123456789
cache:
  max_entries: {max_entries}
log:
  format: text
  filter: warn
{gateway_extra}"#,
            limit = options.body_limit,
            max_entries = options.cache_max_entries,
            gateway_extra = options.gateway_extra,
            jwt = options.jwt.clone().unwrap_or_else(|| format!(
                "  algorithm: HS256\n  secret: {SECRET}\n  audience: {AUDIENCE}"
            )),
        );
        let config_path = dir.path().join("switchboard.yaml");
        std::fs::write(&config_path, config).expect("config");
        let app = App::try_new(Loader::new(&config_path, Env::process())).expect("config loads");
        let (trigger, signal) = ShutdownTrigger::new();
        let server_app = app.clone();
        let thread = std::thread::spawn(move || {
            // The next test's gateway starts in this same process.
            let options = ProcessOptions {
                shared_process: true,
                ..ProcessOptions::default()
            };
            let server = build_server(server_app, &options, Vec::new());
            run_until(server, signal);
        });
        let harness = Harness {
            api: format!("http://127.0.0.1:{api_port}"),
            admin: format!("http://127.0.0.1:{admin_port}"),
            dir,
            libredesk,
            others,
            app,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .expect("client"),
            trigger,
            thread: Some(thread),
        };
        harness.wait_ready().await;
        harness
    }

    /// Poll both listeners until they answer (bounded).
    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let admin = self.http.get(format!("{}/readyz", self.admin)).send().await;
            let api = self
                .http
                .get(format!("{}/openapi.json", self.api))
                .send()
                .await;
            if matches!((&admin, &api), (Ok(a), Ok(b)) if a.status() == 200 && b.status() == 200) {
                return;
            }
            assert!(Instant::now() < deadline, "gateway did not become ready");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The sandbox serving `vendor` (connection `support` for Libredesk, `<vendor>` otherwise).
    pub fn sandbox(&self, vendor: Vendor) -> Option<&Sandbox> {
        if vendor == Vendor::Libredesk {
            return Some(&self.libredesk);
        }
        self.others.iter().find(|s| s.vendor() == vendor)
    }

    pub fn token(&self, tenant: &str, scope: &str) -> String {
        token_with(tenant, scope, serde_json::json!({"aud": AUDIENCE}))
    }

    pub fn acme(&self) -> String {
        self.token("acme", ALL_SCOPES)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.api)
    }

    pub async fn get(&self, path: &str, token: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .bearer_auth(token)
            .header("X-Connection", "support")
            .send()
            .await
            .expect("request")
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: serde_json::Value,
    ) -> reqwest::Response {
        self.http
            .request(method, self.url(path))
            .bearer_auth(token)
            .header("X-Connection", "support")
            .json(&body)
            .send()
            .await
            .expect("request")
    }

    /// GET on a named connection (`X-Connection: <connection>`).
    pub async fn get_on(&self, connection: &str, path: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .bearer_auth(self.acme())
            .header("X-Connection", connection)
            .send()
            .await
            .expect("request")
    }

    /// A request with a JSON body on a named connection.
    pub async fn send_on(
        &self,
        connection: &str,
        method: reqwest::Method,
        path: &str,
        body: serde_json::Value,
    ) -> reqwest::Response {
        self.http
            .request(method, self.url(path))
            .bearer_auth(self.acme())
            .header("X-Connection", connection)
            .json(&body)
            .send()
            .await
            .expect("request")
    }

    /// GET and decode JSON, asserting the status.
    pub async fn get_json(&self, path: &str, status: u16) -> serde_json::Value {
        let response = self.get(path, &self.acme()).await;
        expect_status(response, status).await
    }

    /// Rewrite a file in the config folder.
    pub fn write(&self, rel: &str, content: &str) {
        std::fs::write(self.dir.path().join(rel), content).expect("write config file");
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(rel)).expect("read config file")
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.trigger.fire();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

pub fn token_with(tenant: &str, scope: &str, extra: serde_json::Value) -> String {
    let extra = extra.as_object().cloned().unwrap_or_default();
    switchboard::auth::mint_hs256(
        SECRET.as_bytes(),
        "tenant",
        tenant,
        scope,
        Duration::from_secs(600),
        &extra,
    )
    .expect("mint")
}

/// Assert the status and return the JSON body; on mismatch, show the body.
pub async fn expect_status(response: reqwest::Response, status: u16) -> serde_json::Value {
    let got = response.status().as_u16();
    let text = response.text().await.expect("body");
    assert_eq!(got, status, "unexpected status; body: {text}");
    if text.is_empty() {
        return serde_json::Value::Null;
    }
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Assert a problem+json error with the given status and code.
pub async fn expect_problem(
    response: reqwest::Response,
    status: u16,
    code: &str,
) -> serde_json::Value {
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let request_id = response
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = expect_status(response, status).await;
    assert_eq!(content_type, "application/problem+json", "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["status"], status, "{body}");
    assert_eq!(body["request_id"], request_id.as_str(), "{body}");
    assert!(
        body["title"].is_string() && body["detail"].is_string(),
        "{body}"
    );
    body
}
