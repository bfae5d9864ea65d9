//! `switchboard demo`: sandbox vendors and a gateway on loopback, a dev token, and curl lines
//! that work when pasted. Also token minting for `switchboard token`.

pub mod faults;
mod requests;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::{background_service, BackgroundService};

use crate::api::operation::Vendor;
use crate::config::{Env, Loader};
use crate::events::clock::SystemWallClock;
use crate::events::receiver::DemoReceiver;
use crate::events::signing::SigningSecret;
use crate::gateway::App;
use crate::sandbox::{Credentials, Fault, Sandbox};
use crate::server::{build_server, ProcessOptions};
use crate::snapshot::routes::VendorRoutes;
use crate::snapshot::{Connection, Settings};
pub use requests::{demo_id, demo_requests, DemoRequest};

/// The tenant the demo config serves.
const DEMO_TENANT: &str = "demo";

/// Every scope, for the demo token.
pub const ALL_SCOPES: &str = "contacts:read contacts:write conversations:read conversations:write messages:read messages:write raw:read events:read passthrough";

/// The demo files, embedded so `switchboard demo` works from any folder.
const EMBEDDED: &[(&str, &str)] = &[
    ("config/demo.yaml", include_str!("../../config/demo.yaml")),
    (
        "config/demo-connections.yaml",
        include_str!("../../config/demo-connections.yaml"),
    ),
    (
        "routes/libredesk.yaml",
        include_str!("../../routes/libredesk.yaml"),
    ),
    ("routes/caac.yaml", include_str!("../../routes/caac.yaml")),
    (
        "routes/llamadapro.yaml",
        include_str!("../../routes/llamadapro.yaml"),
    ),
    (
        "routes/chatcaptain.yaml",
        include_str!("../../routes/chatcaptain.yaml"),
    ),
];

/// Which vendors have a sandbox, and the env variable the demo config reads its URL from.
fn sandbox_env(vendor: Vendor) -> Option<&'static str> {
    match vendor {
        Vendor::Libredesk => Some("SWITCHBOARD_SANDBOX_LIBREDESK_URL"),
        Vendor::Caac => Some("SWITCHBOARD_SANDBOX_CAAC_URL"),
        Vendor::LlamadaPro => Some("SWITCHBOARD_SANDBOX_LLAMADAPRO_URL"),
        Vendor::ChatCaptain => Some("SWITCHBOARD_SANDBOX_CHATCAPTAIN_URL"),
    }
}

/// Runs one vendor sandbox for the life of the server. The listener is bound before the server
/// starts (so the config can name its port) and served from inside the service runtime.
struct SandboxService {
    vendor: Vendor,
    /// The demo connection that calls this sandbox (the name fault injection uses).
    connection: String,
    faults: Arc<faults::DemoFaults>,
    listener: Mutex<Option<std::net::TcpListener>>,
    routes: Arc<VendorRoutes>,
    credentials: Credentials,
    /// Added to every sandbox answer (simulates a real vendor's latency).
    latency: Duration,
    /// Where the sandbox sends its webhooks, and the secret it signs them with (Libredesk).
    webhook: Option<(url::Url, String)>,
}

#[async_trait]
impl BackgroundService for SandboxService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let listener = match self.listener.lock() {
            Ok(mut l) => l.take(),
            Err(p) => p.into_inner().take(),
        };
        let Some(listener) = listener else { return };
        match Sandbox::serve_vendor(
            self.vendor,
            listener,
            self.routes.clone(),
            self.credentials.clone(),
        )
        .await
        {
            Ok(sandbox) => {
                if !self.latency.is_zero() {
                    sandbox.inject(Fault::Latency(self.latency), None);
                }
                if let (Some(desk), Some((url, secret))) = (sandbox.libredesk(), &self.webhook) {
                    if let Err(e) = desk.set_webhook(Some((url.clone(), secret))) {
                        tracing::error!(error = e, "the Libredesk sandbox's webhook is not set");
                    }
                }
                self.faults.register(&self.connection, Arc::new(sandbox));
                let _ = shutdown.changed().await;
                // The last handle: dropping it stops the sandbox.
                self.faults.unregister(&self.connection);
            }
            Err(e) => tracing::error!(vendor = %self.vendor, error = %e, "sandbox failed to start"),
        }
    }
}

fn credentials_of(conn: &Connection) -> Credentials {
    let get = |k: &str| {
        conn.credentials
            .get(k)
            .map(|s| s.expose().to_owned())
            .unwrap_or_default()
    };
    Credentials {
        api_key: get("api_key"),
        api_secret: get("api_secret"),
    }
}

/// Where the demo config is: the given path, ./config/demo.yaml, or the embedded copy written
/// to a fresh temporary folder.
fn demo_config(config: Option<PathBuf>) -> std::io::Result<PathBuf> {
    if let Some(path) = config {
        return Ok(path);
    }
    let local = PathBuf::from("config/demo.yaml");
    if local.exists() {
        return Ok(local);
    }
    let dir = std::env::temp_dir().join(format!("switchboard-demo-{}", std::process::id()));
    for (rel, content) in EMBEDDED {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, content)?;
    }
    Ok(dir.join("config/demo.yaml"))
}

pub fn run(config: Option<PathBuf>, api: &str, admin: &str, sandbox_latency: Duration) -> ExitCode {
    let path = match demo_config(config) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: cannot write the embedded demo config: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Bind every sandbox first, so the config can be loaded with their real ports.
    let mut env = Env::process()
        .with("SWITCHBOARD_DEMO_API", api)
        .with("SWITCHBOARD_DEMO_ADMIN", admin);
    // Events: a fresh store, the demo receiver's port and secret, the sandbox's webhook secret.
    let data_dir =
        std::env::temp_dir().join(format!("switchboard-demo-data-{}", std::process::id()));
    let receiver = match std::net::TcpListener::bind("127.0.0.1:0") {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot bind a loopback port for the demo receiver: {e}");
            return ExitCode::FAILURE;
        }
    };
    let receiver_url = match receiver.local_addr() {
        Ok(addr) => format!("http://{addr}/events"),
        Err(e) => {
            eprintln!("error: the demo receiver's port: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (receiver_secret, receiver_secret_text) = SigningSecret::generate();
    let webhook_secret = format!("demo-webhook-{:032x}", rand::random::<u128>());
    env = env
        .with("SWITCHBOARD_DEMO_DATA_DIR", data_dir.display().to_string())
        .with("SWITCHBOARD_DEMO_RECEIVER_URL", &receiver_url)
        .with("SWITCHBOARD_DEMO_RECEIVER_SECRET", &receiver_secret_text)
        .with("DEMO_LIBREDESK_WEBHOOK_SECRET", &webhook_secret);
    let mut listeners = Vec::new();
    for vendor in Vendor::ALL {
        let Some(var) = sandbox_env(vendor) else {
            continue;
        };
        match std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| Ok((l.local_addr()?, l))) {
            Ok((addr, listener)) => {
                env = env.with(var, format!("http://{addr}"));
                listeners.push((vendor, listener));
            }
            Err(e) => {
                eprintln!("error: cannot bind a loopback port for the {vendor} sandbox: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let app = match App::try_new(Loader::new(&path, env)) {
        Ok(app) => app,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let snapshot = app.snapshot();
    crate::logging::init(&snapshot.settings.log);
    let Some(connections) = snapshot.tenant_connections(DEMO_TENANT) else {
        eprintln!(
            "error: {}: the demo config has no tenant {DEMO_TENANT:?}",
            path.display()
        );
        return ExitCode::FAILURE;
    };
    let mut services: Vec<Box<dyn pingora::services::ServiceWithDependents>> = Vec::new();
    let demo_faults = Arc::new(faults::DemoFaults::default());
    app.set_sandbox_faults(demo_faults.clone());
    for (vendor, listener) in listeners {
        let (Some(conn), Some(routes)) = (
            connections.values().find(|c| c.vendor == vendor),
            snapshot.routes.get(&vendor),
        ) else {
            continue;
        };
        let webhook = (vendor == Vendor::Libredesk)
            .then(|| {
                format!(
                    "http://{}/hooks/{DEMO_TENANT}/{}",
                    snapshot.settings.listen.api, conn.name
                )
                .parse::<url::Url>()
                .ok()
            })
            .flatten()
            .map(|url| (url, webhook_secret.clone()));
        services.push(Box::new(background_service(
            &format!("{vendor} sandbox"),
            SandboxService {
                vendor,
                connection: conn.name.clone(),
                faults: demo_faults.clone(),
                listener: Mutex::new(Some(listener)),
                routes: routes.clone(),
                credentials: credentials_of(conn),
                latency: sandbox_latency,
                webhook,
            },
        )));
    }
    services.push(Box::new(background_service(
        "demo receiver",
        ReceiverService {
            listener: Mutex::new(Some(receiver)),
            secret: receiver_secret,
        },
    )));
    let token =
        match snapshot
            .settings
            .mint(DEMO_TENANT, ALL_SCOPES, Duration::from_secs(12 * 3600))
        {
            Ok(t) => t,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        };
    print!(
        "{}",
        banner(&snapshot.settings, &path, &token, connections.values())
    );
    build_server(app.clone(), &ProcessOptions::default(), services).run_forever()
}

/// The demo's webhook receiver ([`DemoReceiver`]): prints every event delivered to the demo
/// tenant's subscription, after checking its signature.
struct ReceiverService {
    listener: Mutex<Option<std::net::TcpListener>>,
    secret: SigningSecret,
}

#[async_trait]
impl BackgroundService for ReceiverService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let listener = match self.listener.lock() {
            Ok(mut l) => l.take(),
            Err(p) => p.into_inner().take(),
        };
        let Some(listener) = listener else { return };
        let listener = match listener
            .set_nonblocking(true)
            .and_then(|()| tokio::net::TcpListener::from_std(listener))
        {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "the demo receiver failed to start");
                return;
            }
        };
        let receiver = DemoReceiver::new(
            self.secret.clone(),
            Arc::new(SystemWallClock),
            Arc::new(|line: String| println!("{line}")),
        );
        let server = axum::serve(listener, receiver.router());
        tokio::select! {
            result = server => {
                if let Err(e) = result {
                    tracing::error!(error = %e, "the demo receiver stopped");
                }
            }
            _ = shutdown.changed() => {}
        }
    }
}

/// The text the demo prints: where things listen, the token, and curl lines per connection.
fn banner<'a>(
    settings: &Settings,
    config: &Path,
    token: &str,
    connections: impl Iterator<Item = &'a Arc<Connection>>,
) -> String {
    let api = &settings.listen.api;
    let admin = &settings.listen.admin;
    let mut out = String::new();
    let _ = writeln!(out, "switchboard demo: config {}", config.display());
    let _ = writeln!(
        out,
        "  API    http://{api}   (OpenAPI: http://{api}/openapi.json)"
    );
    let _ = writeln!(
        out,
        "  admin  http://{admin}/metrics  /healthz  /admin/config"
    );
    let _ = writeln!(out);
    let _ = writeln!(out, "export TOKEN={token}");
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "curl -s http://{api}/v1/capabilities -H \"Authorization: Bearer $TOKEN\""
    );
    for conn in connections {
        for line in demo_requests(conn) {
            let _ = writeln!(out, "{}", line.to_curl(api, &conn.name));
        }
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "# Events: the sandboxes push (Libredesk webhooks) or are polled (ChatCaptain); the\n\
         # receiver below prints each delivery. Change something, then pull or stream:"
    );
    let _ = writeln!(
        out,
        "curl -s http://{api}/v1/events -H \"Authorization: Bearer $TOKEN\""
    );
    // Indented: a stream never ends, and the admin line is no API call (the demo test runs
    // every line that starts with `curl `).
    let _ = writeln!(
        out,
        "  curl -sN http://{api}/v1/events/stream -H \"Authorization: Bearer $TOKEN\""
    );
    let _ = writeln!(
        out,
        "  curl -s http://{admin}/admin/events/dead    # dead letters; POST /admin/events/<id>/replay"
    );
    let _ = writeln!(out);
    let _ = writeln!(out, "Ctrl-C stops the demo.");
    out
}
