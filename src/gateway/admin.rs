//! The admin listener (separate address): metrics, health, reload, config view, cache purge.
//! It never serves the normalized API and never shows a secret.

use std::sync::Arc;

use async_trait::async_trait;
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use serde_json::json;

use super::App;
use crate::cache::{object_params, CACHE_NAME};
use crate::cluster::bus::{CacheChange, Invalidation};
use crate::state::redis::Readiness;

pub struct AdminApp {
    app: Arc<App>,
}

impl AdminApp {
    pub fn new(app: Arc<App>) -> Self {
        AdminApp { app }
    }
}

fn respond(status: u16, content_type: &str, body: Vec<u8>) -> Response<Vec<u8>> {
    let mut response = Response::new(body);
    *response.status_mut() =
        http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    let len = response.body().len();
    let headers = response.headers_mut();
    if let Ok(v) = http::HeaderValue::from_str(content_type) {
        headers.insert(http::header::CONTENT_TYPE, v);
    }
    headers.insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(len));
    headers.insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    response
}

pub(super) fn json_response(status: u16, value: &serde_json::Value) -> Response<Vec<u8>> {
    respond(
        status,
        "application/json",
        serde_json::to_vec(value).unwrap_or_default(),
    )
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let method = session.req_header().method.clone();
        let path = session.req_header().uri.path().to_owned();
        let body = match read_small_body(session).await {
            Ok(body) => body,
            Err(response) => return response,
        };
        let query = session.req_header().uri.query().map(str::to_owned);
        if let Some(r) =
            super::event_admin::serve(&self.app, &method, &path, query.as_deref()).await
        {
            return r;
        }
        match (method.as_str(), path.as_str()) {
            ("POST", "/admin/cache/purge") => purge(&self.app, &body).await,
            ("GET", "/metrics") => {
                let metrics = &self.app.metrics;
                let entries = metrics.cache_entries.with_label_values(&[CACHE_NAME]);
                let bytes = metrics.cache_bytes.with_label_values(&[CACHE_NAME]);
                self.app.cache.report_entries(&entries, &bytes).await;
                metrics.count_dropped_log_lines(crate::logging::dropped_lines());
                self.app.edge.report_circuits();
                respond(
                    200,
                    "text/plain; version=0.0.4; charset=utf-8",
                    self.app.metrics.render(),
                )
            }
            ("POST", "/admin/sandbox/faults") => match self.app.sandbox_faults() {
                Some(faults) => {
                    let (status, value) = faults.inject(&body);
                    json_response(status, &value)
                }
                None => not_demo(),
            },
            ("DELETE", "/admin/sandbox/faults") => match self.app.sandbox_faults() {
                Some(faults) => {
                    let (status, value) = faults.clear(&body);
                    json_response(status, &value)
                }
                None => not_demo(),
            },
            ("GET", "/admin/circuits") => json_response(200, &circuits(&self.app)),
            ("GET", "/healthz") => json_response(200, &json!({"status": "ok"})),
            ("GET", "/readyz") => json_response(200, &readiness(&self.app)),
            ("GET", "/admin/config") => json_response(200, &config_view(&self.app)),
            ("POST", "/admin/reload") => match reload(&self.app).await {
                Ok(reloaded) => json_response(
                    200,
                    &json!({
                        "status": "reloaded",
                        "generation": reloaded.generation,
                        "restart_required": reloaded.restart_required,
                    }),
                ),
                Err(e) => json_response(
                    422,
                    &json!({
                        "status": "rejected",
                        "generation": self.app.snapshot().generation,
                        "error": {"file": e.file.display().to_string(), "key": e.key, "reason": e.reason},
                    }),
                ),
            },
            (
                _,
                "/metrics"
                | "/healthz"
                | "/readyz"
                | "/admin/config"
                | "/admin/reload"
                | "/admin/cache/purge"
                | "/admin/sandbox/faults"
                | "/admin/circuits",
            ) => json_response(405, &json!({"error": "method not allowed"})),
            _ => json_response(404, &json!({"error": "not found"})),
        }
    }
}

/// `/admin/sandbox/faults` outside `switchboard demo`: there are no sandboxes to break.
fn not_demo() -> Response<Vec<u8>> {
    json_response(
        404,
        &json!({"error": "fault injection exists only in demo mode (switchboard demo)"}),
    )
}

/// Every connection's circuit on this replica (tenant and connection names: the admin
/// listener is private; metrics carry only the vendor).
fn circuits(app: &App) -> serde_json::Value {
    let circuits: Vec<_> = app
        .edge
        .guards()
        .circuits()
        .into_iter()
        .map(|(key, vendor, state)| {
            json!({
                "tenant": key.tenant,
                "connection": key.connection,
                "vendor": vendor.as_str(),
                "state": state.as_str(),
            })
        })
        .collect();
    json!({ "data": circuits })
}

/// `/readyz`: the config is loaded (its generation). In a cluster, also whether the state is
/// shared (`"cluster": "shared"`; `"subscribed"`: the other replicas' cache invalidations
/// arrive) or the replica serves degraded on local state because Redis
/// does not answer: `"status": "degraded"` with the reason (no address, no password), still
/// 200 — a replica without Redis keeps serving reads and writes, so the load balancer must not
/// drop it (taking every replica out at once would turn a Redis outage into a full outage).
fn readiness(app: &App) -> serde_json::Value {
    let generation = app.snapshot().generation;
    let Some(cluster) = &app.cluster else {
        return json!({"status": "ready", "generation": generation});
    };
    // Whether invalidations from the other replicas arrive now.
    let subscribed = cluster.subscribed();
    match cluster.readiness() {
        Readiness::Shared => json!({
            "status": "ready",
            "generation": generation,
            "cluster": "shared",
            "subscribed": subscribed,
        }),
        Readiness::Degraded { reason } => json!({
            "status": "degraded",
            "generation": generation,
            "cluster": "degraded",
            "subscribed": subscribed,
            "reason": reason,
            "degraded": [
                "tenant limits and vendor budgets count per replica (cluster.local_share)",
                "requests with an Idempotency-Key are refused with 503",
                "cache invalidations from other replicas are missed: the cache is flushed",
            ],
        }),
    }
}

/// Reload on a blocking thread: the loader reads files (a slow disk, a network mount) and the
/// admin listener has one thread that must keep answering `/healthz` meanwhile.
async fn reload(app: &Arc<App>) -> Result<super::Reloaded, crate::config_error::ConfigError> {
    let app = app.clone();
    match tokio::task::spawn_blocking(move || app.reload("admin")).await {
        Ok(result) => result,
        Err(e) => Err(crate::config_error::ConfigError {
            file: std::path::PathBuf::new(),
            key: String::new(),
            reason: format!("the reload did not finish: {e}"),
        }),
    }
}

/// The active generation, a hash per file, and each connection's vendor — never credentials.
fn config_view(app: &App) -> serde_json::Value {
    let snapshot = app.snapshot();
    let files: Vec<_> = snapshot
        .files
        .iter()
        .map(|f| json!({"path": f.path.display().to_string(), "sha256": f.sha256}))
        .collect();
    let mut tenants: Vec<_> = snapshot.tenants.iter().collect();
    tenants.sort_by(|a, b| a.0.cmp(b.0));
    let connections: Vec<_> = tenants
        .into_iter()
        .flat_map(|(tenant, conns)| {
            conns.values().map(move |c| {
                json!({
                    "tenant": tenant,
                    "connection": c.name,
                    "vendor": c.vendor.as_str(),
                    "operations": c.capabilities.iter().map(|(op, _)| op.as_str()).collect::<Vec<_>>(),
                })
            })
        })
        .collect();
    let cluster = snapshot.settings.cluster.as_ref().map(|c| {
        json!({
            "redis_url": c.redacted_url(),
            "key_prefix": c.key_prefix,
            "local_share": c.local_share,
        })
    });
    json!({
        "generation": snapshot.generation,
        "files": files,
        "connections": connections,
        "cluster": cluster,
    })
}

/// Admin request bodies are tiny JSON documents.
const MAX_ADMIN_BODY: usize = 64 * 1024;

async fn read_small_body(session: &mut ServerSession) -> Result<Vec<u8>, Response<Vec<u8>>> {
    let mut body = Vec::new();
    loop {
        match session.read_request_body().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_ADMIN_BODY {
                    return Err(json_response(413, &json!({"error": "body too large"})));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(e) => {
                return Err(json_response(
                    400,
                    &json!({"error": format!("could not read the body: {}", e.etype().as_str())}),
                ))
            }
        }
    }
}

/// What `POST /admin/cache/purge` accepts: `{}` (everything), `{"tenant", "connection"}`
/// (one connection), or `{"id"}` (one object, by its opaque ID).
#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PurgeRequest {
    #[serde(default)]
    tenant: Option<String>,
    #[serde(default)]
    connection: Option<String>,
    #[serde(default)]
    id: Option<String>,
}

async fn purge(app: &App, body: &[u8]) -> Response<Vec<u8>> {
    use crate::api::ids::{Kind, ObjectId};
    let request: PurgeRequest = if body.iter().all(u8::is_ascii_whitespace) {
        PurgeRequest::default()
    } else {
        match serde_json::from_slice(body) {
            Ok(r) => r,
            Err(e) => {
                return json_response(
                    400,
                    &json!({"error": format!("invalid purge request: {e}")}),
                )
            }
        }
    };
    let (scope, everywhere) = match (&request.tenant, &request.connection, &request.id) {
        (None, None, None) => {
            app.cache.invalidate_all();
            (json!({"purged": "all"}), Invalidation::All)
        }
        (Some(tenant), Some(connection), None) => {
            app.cache.invalidate_connection(tenant, connection);
            (
                json!({"purged": "connection", "tenant": tenant, "connection": connection}),
                Invalidation::on(tenant, connection, CacheChange::Connection),
            )
        }
        (None, None, Some(raw)) => {
            let Some(id) = [Kind::Contact, Kind::Conversation, Kind::Message]
                .into_iter()
                .find_map(|kind| ObjectId::decode(kind, raw))
            else {
                return json_response(400, &json!({"error": "id is not a switchboard ID"}));
            };
            let params = object_params(&id);
            app.cache
                .invalidate_keyed(&id.tenant, &id.connection, &params);
            (
                json!({"purged": "id", "id": raw}),
                Invalidation::on(&id.tenant, &id.connection, CacheChange::Keyed { params }),
            )
        }
        _ => {
            return json_response(
                400,
                &json!({"error": "give nothing (all), tenant + connection, or id"}),
            )
        }
    };
    app.cache.sync().await;
    // The other replicas purge the same (issue 15).
    if let Some(cluster) = &app.cluster {
        cluster.publish(everywhere).await;
    }
    json_response(200, &scope)
}
