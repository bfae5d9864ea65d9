//! The admin listener (separate address): metrics, health, reload, config view, cache purge.
//! It never serves the normalized API and never shows a secret.

use std::sync::Arc;

use async_trait::async_trait;
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use serde_json::json;

use super::App;

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

fn json_response(status: u16, value: &serde_json::Value) -> Response<Vec<u8>> {
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
        // Admin bodies are small or empty; drain whatever was sent so the connection can be reused.
        if let Err(e) = session.drain_request_body().await {
            tracing::debug!(error = %e, "admin: could not drain the request body");
        }
        match (method.as_str(), path.as_str()) {
            ("GET", "/metrics") => respond(
                200,
                "text/plain; version=0.0.4; charset=utf-8",
                self.app.metrics.render(),
            ),
            ("GET", "/healthz") => json_response(200, &json!({"status": "ok"})),
            ("GET", "/readyz") => {
                let snapshot = self.app.snapshot();
                json_response(
                    200,
                    &json!({"status": "ready", "generation": snapshot.generation}),
                )
            }
            ("GET", "/admin/config") => json_response(200, &config_view(&self.app)),
            ("POST", "/admin/reload") => match self.app.reload("admin") {
                Ok(generation) => json_response(
                    200,
                    &json!({"status": "reloaded", "generation": generation}),
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
            (_, "/metrics" | "/healthz" | "/readyz" | "/admin/config" | "/admin/reload") => {
                json_response(405, &json!({"error": "method not allowed"}))
            }
            _ => json_response(404, &json!({"error": "not found"})),
        }
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
    json!({
        "generation": snapshot.generation,
        "files": files,
        "connections": connections,
    })
}
