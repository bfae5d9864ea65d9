//! The dashboards and alert rules against a REAL Prometheus scraping a loaded gateway.
//!
//! Needs `prometheus` and `promtool` on PATH (Debian/Ubuntu package `prometheus`; CI installs
//! it with `scripts/ensure-system-packages.sh test`). Without them the test fails with the
//! install command: a dashboard that was never queried is not a tested dashboard.
//!
//! 1. `promtool check rules` / `promtool test rules` on dashboards/, `promtool check config`
//!    on the generated prometheus.yml.
//! 2. A harness gateway (vendor timeout 300 ms) and a Prometheus child process scraping its
//!    admin `/metrics` every second, with dashboards/alerts.yml loaded.
//! 3. Two bursts of traffic, each seen by a scrape: every vendor of the harness (a read, a
//!    429, a 5xx, a timeout), a connect error, a TLS error (a Libredesk sandbox on HTTPS with a
//!    certificate the gateway does not trust), cache hit/miss/bypass, a bad token, reloads.
//! 4. Every panel target of dashboards/switchboard.json (Grafana variables substituted like
//!    dashboards/queries.py does) returns data; every vendor shows up where a panel is per
//!    vendor; the dashboard's variable queries have values; every alert rule evaluates
//!    healthily, and the ones this traffic should trip are pending or firing.
//! 5. `/metrics` itself: names, types and label sets exactly as ARCHITECTURE.md lists them,
//!    label values from their bounded sets, vendor histogram buckets 1 ms … 45 s.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::*;
use serde_json::Value;
use switchboard::api::operation::{Operation, Vendor};
use switchboard::sandbox::Fault;

const INSTALL: &str = "sudo apt-get update && sudo apt-get install -y prometheus   \
                       (or run scripts/ensure-system-packages.sh test)";

/// Vendor timeout of the harness, and the injected latency that exceeds it.
const VENDOR_TIMEOUT_MS: u64 = 300;
const SLOW: Duration = Duration::from_millis(800);

/// How long one wait on Prometheus (start, a scrape, a query) may take.
const WAIT: Duration = Duration::from_secs(20);

/// ARCHITECTURE.md, "Metric names": family → (type, label names). Keep in step with it.
const CONTRACT: &[(&str, &str, &[&str])] = &[
    (
        "switchboard_http_requests_total",
        "counter",
        &["operation", "vendor", "code"],
    ),
    (
        "switchboard_http_request_duration_seconds",
        "histogram",
        &["operation", "vendor"],
    ),
    (
        "switchboard_vendor_requests_total",
        "counter",
        &["vendor", "operation", "outcome"],
    ),
    (
        "switchboard_vendor_request_duration_seconds",
        "histogram",
        &["vendor", "operation"],
    ),
    (
        "switchboard_cache_requests_total",
        "counter",
        &["operation", "result"],
    ),
    ("switchboard_cache_entries", "gauge", &["cache"]),
    ("switchboard_cache_bytes", "gauge", &["cache"]),
    ("switchboard_log_lines_dropped_total", "counter", &[]),
    ("switchboard_auth_failures_total", "counter", &["reason"]),
    ("switchboard_config_reloads_total", "counter", &["result"]),
    ("switchboard_config_generation", "gauge", &[]),
    (
        "switchboard_http_read_timeouts_total",
        "counter",
        &["phase"],
    ),
    // The vendor edge (issue 13): src/resilience/metrics.rs.
    (
        "switchboard_vendor_retries_total",
        "counter",
        &["vendor", "operation", "reason"],
    ),
    (
        "switchboard_vendor_retries_denied_total",
        "counter",
        &["vendor", "reason"],
    ),
    (
        "switchboard_circuit_breakers",
        "gauge",
        &["vendor", "state"],
    ),
    (
        "switchboard_circuit_transitions_total",
        "counter",
        &["vendor", "to"],
    ),
    (
        "switchboard_vendor_calls_refused_total",
        "counter",
        &["vendor", "reason"],
    ),
    (
        "switchboard_vendor_budget_wait_seconds",
        "histogram",
        &["vendor"],
    ),
    ("switchboard_vendor_pauses_total", "counter", &["vendor"]),
    ("switchboard_rate_limited_total", "counter", &["operation"]),
    (
        "switchboard_idempotency_requests_total",
        "counter",
        &["operation", "result"],
    ),
    ("switchboard_state_errors_total", "counter", &["backend"]),
];

const OUTCOMES: &[&str] = &[
    "ok",
    "client_error",
    "server_error",
    "timeout",
    "rate_limited",
    "connect_error",
    "tls_error",
];

/// The tenant whose connections keep the vendor edge on (their own keys override the
/// harness's edge-off routes defaults): `flaky` (every call 503; its circuit opens) and
/// `metered` (a vendor budget of 0.5 calls/s, burst 2).
const EDGE_TENANT: &str = "edgeco";
/// A tenant with a tiny `rate_limit` (burst 2), to trip `rate_limited`.
const LIMITED_TENANT: &str = "limitco";

/// The tenant and connection whose vendor serves HTTPS with a certificate from a CA the
/// gateway does not trust: every call is a `tls_error`.
const TLS_TENANT: &str = "tlsco";
const UNTRUSTED: &str = "untrusted";

/// The `code` label: "ok", an error word of API.md, or "client_closed".
const CODES: &[&str] = &[
    "ok",
    "client_closed",
    "unauthorized",
    "forbidden",
    "not_found",
    "method_not_allowed",
    "invalid_request",
    "unsupported_filter",
    "payload_too_large",
    "unsupported_media_type",
    "request_timeout",
    "header_too_large",
    "unsupported_operation",
    "idempotency_key_reused",
    "idempotency_in_progress",
    "idempotency_unavailable",
    "rate_limited",
    "vendor_rate_limited",
    "vendor_auth_failed",
    "vendor_error",
    "vendor_bad_response",
    "vendor_timeout",
    "vendor_unavailable",
    "internal_error",
];

/// Fail (never skip) when a tool is missing, with the command that installs it.
fn require_tool(name: &str) {
    let found = Command::new(name)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "`{name}` is not installed or not on PATH; the dashboard tests need a real Prometheus.\n\
         Install it with:\n    {INSTALL}"
    );
}

/// Run a command to completion; panic with its output unless it succeeds.
fn run_ok(command: &mut Command) -> String {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("could not run {command:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\n{text}",
        output.status
    );
    text
}

/// A Prometheus server child process, killed on drop.
pub(crate) struct Prometheus {
    child: Child,
    url: String,
    log: PathBuf,
    http: reqwest::Client,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    pub(crate) fn start(config: &Path, data: &Path, log: PathBuf) -> Prometheus {
        let port = free_port();
        let out = std::fs::File::create(&log).expect("prometheus log file");
        let err = out.try_clone().expect("prometheus log file");
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", data.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("could not start prometheus ({e}); install: {INSTALL}"));
        Prometheus {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .expect("client"),
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    fn assert_alive(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("prometheus exited ({status}):\n{}", self.log_tail());
        }
    }

    /// An API GET; `Err` carries why there is no usable answer yet.
    async fn api(&self, path: &str, params: &[(&str, &str)]) -> Result<Value, String> {
        let response = self
            .http
            .get(format!("{}{path}", self.url))
            .query(params)
            .send()
            .await
            .map_err(|e| format!("request failed: {e}"))?;
        let status = response.status();
        let body: Value = response
            .json()
            .await
            .map_err(|e| format!("HTTP {status}, body is not JSON: {e}"))?;
        if body["status"] != "success" {
            return Err(format!("HTTP {status}: {body}"));
        }
        Ok(body["data"].clone())
    }

    /// An instant query's `data.result` (possibly empty).
    pub(crate) async fn query(&self, expr: &str) -> Result<Vec<Value>, String> {
        let data = self.api("/api/v1/query", &[("query", expr)]).await?;
        data["result"]
            .as_array()
            .cloned()
            .ok_or_else(|| format!("no data.result in {data}"))
    }

    /// Poll `expr` until `accept` holds for its result (bounded by [`WAIT`]).
    pub(crate) async fn wait_for(
        &mut self,
        what: &str,
        expr: &str,
        accept: impl Fn(&[Value]) -> bool,
    ) -> Result<Vec<Value>, String> {
        let deadline = Instant::now() + WAIT;
        loop {
            self.assert_alive();
            let last = match self.query(expr).await {
                Ok(result) if accept(&result) => return Ok(result),
                Ok(result) => format!("result did not qualify: {}", Value::from(result)),
                Err(e) => e,
            };
            if Instant::now() >= deadline {
                return Err(format!(
                    "{what}: no qualifying answer within {WAIT:?} to\n    {expr}\nlast: {last}"
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub(crate) async fn wait_ready(&mut self) {
        let deadline = Instant::now() + WAIT;
        loop {
            self.assert_alive();
            let ready = self.http.get(format!("{}/-/ready", self.url)).send().await;
            if matches!(&ready, Ok(r) if r.status() == 200) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "prometheus not ready within {WAIT:?}:\n{}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn value_of(sample: &Value) -> f64 {
    sample["value"][1]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

fn label<'a>(sample: &'a Value, name: &str) -> Option<&'a str> {
    sample["metric"][name].as_str()
}

// ------------------------------------------------------------------------------------------
// Dashboard targets

/// One panel target, as PromQL Prometheus accepts.
struct Target {
    panel: String,
    ref_id: String,
    expr: String,
}

/// Replace the Grafana variables exactly like dashboards/queries.py: `$vendor`,
/// `$operation` → `.*` (the "All" value), `$__rate_interval`, `$__interval` → `1m`.
/// Any other variable fails the test: queries.py and this test would both need to learn it.
fn substitute(expr: &str) -> String {
    let mut out = String::with_capacity(expr.len());
    let mut rest = expr;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        rest = &rest[at + 1..];
        let (name, len) = if let Some(braced) = rest.strip_prefix('{') {
            let end = braced
                .find('}')
                .unwrap_or_else(|| panic!("unclosed ${{ in {expr}"));
            // `${vendor:regex}` and friends: the format does not matter for ".*".
            let name = braced[..end].split(':').next().unwrap_or_default();
            (name, end + 2)
        } else {
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            (&rest[..end], end)
        };
        let value = match name {
            "vendor" | "operation" => ".*",
            "__rate_interval" | "__interval" => "1m",
            other => panic!(
                "dashboard variable ${other} has no substitution (teach dashboards/queries.py \
                 and tests/it/prometheus.rs): {expr}"
            ),
        };
        out.push_str(value);
        rest = &rest[len..];
    }
    out.push_str(rest);
    out
}

fn dashboard() -> Value {
    let text = std::fs::read_to_string(repo_path("dashboards/switchboard.json"))
        .expect("dashboards/switchboard.json");
    serde_json::from_str(&text).expect("dashboards/switchboard.json is JSON")
}

/// Every panel target with an expression, rows' nested panels included (like queries.py).
fn targets(dashboard: &Value) -> Vec<Target> {
    fn walk(panels: &Value, out: &mut Vec<Target>) {
        for panel in panels.as_array().into_iter().flatten() {
            for target in panel["targets"].as_array().into_iter().flatten() {
                if let Some(expr) = target["expr"].as_str().filter(|e| !e.is_empty()) {
                    out.push(Target {
                        panel: panel["title"].as_str().unwrap_or_default().to_owned(),
                        ref_id: target["refId"].as_str().unwrap_or_default().to_owned(),
                        expr: substitute(expr),
                    });
                }
            }
            walk(&panel["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    out
}

/// `label_values(metric, label)` queries of the dashboard's template variables.
fn variable_queries(dashboard: &Value) -> Vec<(String, String, String)> {
    dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["type"] == "query")
        .filter_map(|v| {
            let query = v["query"]
                .as_str()
                .or_else(|| v["query"]["query"].as_str())?;
            let args = query.strip_prefix("label_values(")?.strip_suffix(')')?;
            let (metric, label) = args.split_once(',')?;
            Some((
                v["name"].as_str().unwrap_or_default().to_owned(),
                metric.trim().to_owned(),
                label.trim().to_owned(),
            ))
        })
        .collect()
}

// ------------------------------------------------------------------------------------------
// Traffic

/// The connection of `vendor` in tenant `acme` of the harness.
fn connection_of(vendor: Vendor) -> &'static str {
    match vendor {
        Vendor::Libredesk => "support",
        other => other.as_str(),
    }
}

/// A read that calls the vendor: the first GET that reaches the vendor and answers 200 or
/// 404 (a vendor 404 is a vendor call too), among the demo's example reads for the
/// connection (seeded IDs; `switchboard::demo::demo_requests`), then by the connection's
/// operations (GET /v1/capabilities): a list of contacts or conversations, a get of an ID that
/// does not exist. Some vendors take no unfiltered list (CAAC looks contacts up by handle).
async fn read_path(h: &Harness, vendor: Vendor, capabilities: &Value) -> String {
    use switchboard::api::ids::{Kind, ObjectId};
    let connection = connection_of(vendor);
    let entry = capabilities["data"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["connection"] == connection)
        .unwrap_or_else(|| panic!("no connection {connection} in {capabilities}"));
    let supports = |op: Operation| {
        entry["operations"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|o| o == op.as_str())
    };
    let snapshot = h.app.snapshot();
    let conn = snapshot
        .tenant_connections("acme")
        .and_then(|c| c.get(connection))
        .unwrap_or_else(|| panic!("no connection acme.{connection}"));
    let mut candidates: Vec<String> = switchboard::demo::demo_requests(conn)
        .into_iter()
        .filter(|r| r.method == "GET")
        .map(|r| r.path)
        .collect();
    let missing = |kind| ObjectId::new(kind, "acme", connection, vec!["999999".into()]).encode();
    for (op, path) in [
        (Operation::ContactsList, "/v1/contacts?limit=1".to_owned()),
        (
            Operation::ConversationsList,
            "/v1/conversations?limit=1".to_owned(),
        ),
        (
            Operation::ContactsGet,
            format!("/v1/contacts/{}", missing(Kind::Contact)),
        ),
        (
            Operation::ConversationsGet,
            format!("/v1/conversations/{}", missing(Kind::Conversation)),
        ),
    ] {
        if supports(op) {
            candidates.push(path);
        }
    }
    let sandbox = h.sandbox(vendor).expect("sandbox");
    let mut tried = Vec::new();
    for path in candidates {
        let before = sandbox.call_count();
        let (status, body) = fresh_get(h, connection, &path).await;
        if sandbox.call_count() > before && (status == 200 || status == 404) {
            return path;
        }
        tried.push(format!("GET {path}: {status} {body}"));
    }
    panic!("{vendor}: no read reaches the vendor; capabilities: {entry}; tried: {tried:#?}")
}

/// A GET on `connection` that skips the cache, so the vendor is always called.
/// Returns the status and the body (for failure messages).
async fn fresh_get(h: &Harness, connection: &str, path: &str) -> (u16, String) {
    let response = h
        .http
        .get(h.url(path))
        .bearer_auth(h.acme())
        .header("X-Connection", connection)
        .header("Cache-Control", "no-cache")
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

/// One burst: per vendor a read, a 429, a 5xx and a timeout; a connect error; the cache; a
/// bad token; capabilities; a reload.
async fn burst(h: &Harness, vendors: &[Vendor], contact: &str) {
    let capabilities = h.get_json("/v1/capabilities", 200).await;
    for &vendor in vendors {
        let sandbox = h.sandbox(vendor).expect("sandbox");
        let connection = connection_of(vendor);
        let path = read_path(h, vendor, &capabilities).await;
        let name = vendor.as_str();
        let before = sandbox.call_count();
        let (status, body) = fresh_get(h, connection, &path).await;
        assert!(
            status == 200 || status == 404,
            "{name}: GET {path} answered {status}: {body}"
        );
        assert!(
            sandbox.call_count() > before,
            "{name}: the vendor was not called"
        );

        for (fault, want) in [
            (
                Fault::RateLimit {
                    retry_after_secs: 1,
                },
                429,
            ),
            (Fault::Status(503), 502),
            (Fault::Latency(SLOW), 504),
        ] {
            sandbox.inject(fault.clone(), Some(1));
            let (status, body) = fresh_get(h, connection, &path).await;
            assert_eq!(status, want, "{name}: GET {path} with {fault:?}: {body}");
        }
        sandbox.clear_faults();
    }

    // Nothing listens behind connection `down`: a connect error.
    assert_eq!(fresh_get(h, "down", "/v1/contacts?limit=1").await.0, 503);

    // An HTTPS vendor whose certificate no trusted CA issued: a TLS error.
    let response = h
        .http
        .get(h.url("/v1/contacts?limit=1"))
        .bearer_auth(h.token(TLS_TENANT, ALL_SCOPES))
        .header("X-Connection", UNTRUSTED)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 503);
    let body = response.text().await.expect("body");
    assert!(body.contains("untrusted_issuer"), "{body}");

    // Cache: contacts.get is cached for Libredesk (routes/libredesk.yaml).
    let first = h.get(contact, &h.acme()).await;
    assert_eq!(first.status(), 200);
    let second = h.get(contact, &h.acme()).await;
    assert_eq!(second.status(), 200);
    assert_eq!(second.headers()["x-cache"], "hit");
    assert_eq!(fresh_get(h, "support", contact).await.0, 200); // bypass

    // Authentication failures.
    let forged = token_with(
        "acme",
        ALL_SCOPES,
        serde_json::json!({"aud": "someone-else"}),
    );
    assert_eq!(h.get("/v1/contacts", &forged).await.status(), 401);
    assert_eq!(h.get("/v1/contacts", "not-a-jwt").await.status(), 401);

    // A config reload.
    let response = h
        .http
        .post(format!("{}/admin/reload", h.admin))
        .send()
        .await
        .expect("reload");
    assert_eq!(response.status(), 200);
}

/// The vendor edge's traffic, once: a read on `edgeco.flaky` (every call 503) is retried once,
/// opens the circuit (2 failures) and the next read is refused without a call; on
/// `edgeco.metered` a list and an idempotent send take the budget, the same send replays at
/// no cost, and a read is refused by the budget; `limitco` runs into its `rate_limit`.
async fn edge_traffic(h: &Harness, flaky: &switchboard::sandbox::Sandbox) {
    let token = h.token(EDGE_TENANT, ALL_SCOPES);
    let get = |connection: &'static str, path: &'static str| {
        h.http
            .get(h.url(path))
            .bearer_auth(&token)
            .header("X-Connection", connection)
            .send()
    };
    flaky.inject(Fault::Status(503), None);
    let before = flaky.call_count();
    expect_problem(
        get("flaky", "/v1/conversations?limit=1")
            .await
            .expect("request"),
        502,
        "vendor_error",
    )
    .await;
    assert_eq!(flaky.call_count() - before, 2, "one read, retried once");
    expect_problem(
        get("flaky", "/v1/conversations?limit=1")
            .await
            .expect("request"),
        503,
        "vendor_unavailable",
    )
    .await;
    assert_eq!(
        flaky.call_count() - before,
        2,
        "no call while the circuit is open"
    );

    let list = expect_status(
        get("metered", "/v1/conversations?limit=1")
            .await
            .expect("request"),
        200,
    )
    .await;
    let conversation = list["data"][0]["id"].as_str().expect("a conversation");
    for replayed in [false, true] {
        let sent = h
            .http
            .post(h.url("/v1/messages"))
            .bearer_auth(&token)
            .header("X-Connection", "metered")
            .header("Idempotency-Key", "prometheus-1")
            .json(&serde_json::json!({"conversation_id": conversation, "text": "once"}))
            .send()
            .await
            .expect("request");
        assert_eq!(sent.status(), 201);
        assert_eq!(sent.headers().contains_key("idempotent-replayed"), replayed);
    }
    expect_problem(
        get("metered", "/v1/conversations?limit=1")
            .await
            .expect("request"),
        429,
        "vendor_rate_limited",
    )
    .await;

    let limited = h.token(LIMITED_TENANT, ALL_SCOPES);
    for _ in 0..2 {
        assert_eq!(h.get("/v1/capabilities", &limited).await.status(), 200);
    }
    expect_problem(
        h.get("/v1/capabilities", &limited).await,
        429,
        "rate_limited",
    )
    .await;
}

/// A reload the gateway must reject (the previous config keeps serving), then the file
/// restored and reloaded.
async fn failed_reload(h: &Harness) {
    let good = h.read("connections.yaml");
    h.write("connections.yaml", "tenants: [not a map\n");
    let response = h
        .http
        .post(format!("{}/admin/reload", h.admin))
        .send()
        .await
        .expect("reload");
    assert_eq!(response.status(), 422);
    h.write("connections.yaml", &good);
    let response = h
        .http
        .post(format!("{}/admin/reload", h.admin))
        .send()
        .await
        .expect("reload");
    assert_eq!(response.status(), 200);
}

/// `sum(switchboard_http_requests_total)` as the gateway itself reports it.
async fn requests_counted(h: &Harness) -> f64 {
    let text = scrape(h).await;
    parse_exposition(&text)
        .samples
        .iter()
        .filter(|s| s.name == "switchboard_http_requests_total")
        .map(|s| s.value)
        .sum()
}

async fn scrape(h: &Harness) -> String {
    h.http
        .get(format!("{}/metrics", h.admin))
        .send()
        .await
        .expect("scrape")
        .text()
        .await
        .expect("metrics text")
}

// ------------------------------------------------------------------------------------------
// The exposition format

struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

struct Exposition {
    types: BTreeMap<String, String>,
    samples: Vec<Sample>,
}

/// A small parser of the Prometheus text format (what the `prometheus` crate writes).
fn parse_exposition(text: &str) -> Exposition {
    let mut types = BTreeMap::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("# TYPE name type");
            types.insert(name.to_owned(), kind.to_owned());
            continue;
        }
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("sample value");
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or(f64::NAN),
        };
        let (name, labels) = match series.split_once('{') {
            None => (series.to_owned(), BTreeMap::new()),
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').expect("closing brace");
                (name.to_owned(), parse_labels(body))
            }
        };
        samples.push(Sample {
            name,
            labels,
            value,
        });
    }
    Exposition { types, samples }
}

fn parse_labels(body: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut chars = body.chars().peekable();
    loop {
        let name: String = chars.by_ref().take_while(|&c| c != '=').collect();
        let name = name.trim().trim_start_matches(',').trim().to_owned();
        if name.is_empty() {
            return labels;
        }
        assert_eq!(chars.next(), Some('"'), "label {name} has a quoted value");
        let mut value = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(other) => value.push(other),
                    None => break,
                },
                '"' => break,
                c => value.push(c),
            }
        }
        labels.insert(name, value);
    }
}

/// Names, types, label sets, label values and buckets of `/metrics`.
fn check_exposition(text: &str, vendors: &[Vendor]) {
    let exposition = parse_exposition(text);
    let families: BTreeMap<&str, (&str, &[&str])> = CONTRACT
        .iter()
        .map(|(name, kind, labels)| (*name, (*kind, *labels)))
        .collect();

    // Exactly the families of the contract, each with its type.
    let exported: BTreeMap<&str, &str> = exposition
        .types
        .iter()
        .filter(|(name, _)| name.starts_with("switchboard_"))
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    let expected: BTreeMap<&str, &str> = families.iter().map(|(n, (t, _))| (*n, *t)).collect();
    assert_eq!(
        exported, expected,
        "metric families differ from ARCHITECTURE.md"
    );

    let operations: BTreeSet<&str> = Operation::ALL.iter().map(|o| o.as_str()).collect();
    let vendor_names: BTreeSet<&str> = Vendor::ALL.iter().map(|v| v.as_str()).collect();
    let mut seen_families = BTreeSet::new();
    for sample in &exposition.samples {
        assert!(
            sample.name.starts_with("switchboard_"),
            "a metric outside the switchboard_ namespace: {}",
            sample.name
        );
        let (family, suffix) = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| {
                let family = sample.name.strip_suffix(suffix)?;
                (families.get(family)?.0 == "histogram").then_some((family, *suffix))
            })
            .unwrap_or((sample.name.as_str(), ""));
        let (_, labels) = families
            .get(family)
            .unwrap_or_else(|| panic!("metric {} is not in ARCHITECTURE.md", sample.name));
        seen_families.insert(family.to_owned());
        let mut want: BTreeSet<&str> = labels.iter().copied().collect();
        if suffix == "_bucket" {
            want.insert("le");
        }
        let got: BTreeSet<&str> = sample.labels.keys().map(String::as_str).collect();
        assert_eq!(got, want, "label names of {}", sample.name);

        // Bounded label values.
        for (name, value) in &sample.labels {
            let ok = match (family, name.as_str()) {
                (_, "le") => value == "+Inf" || value.parse::<f64>().is_ok(),
                ("switchboard_http_requests_total", "code") => CODES.contains(&value.as_str()),
                ("switchboard_vendor_requests_total", "outcome") => {
                    OUTCOMES.contains(&value.as_str())
                }
                ("switchboard_cache_requests_total", "result") => {
                    ["hit", "miss", "bypass", "stale"].contains(&value.as_str())
                }
                ("switchboard_http_read_timeouts_total", "phase") => {
                    ["header", "body"].contains(&value.as_str())
                }
                ("switchboard_config_reloads_total", "result") => {
                    ["success", "failure"].contains(&value.as_str())
                }
                ("switchboard_auth_failures_total", "reason") => {
                    switchboard::metrics::AUTH_FAILURE_REASONS.contains(&value.as_str())
                }
                ("switchboard_vendor_retries_total", "reason") => [
                    "connect_error",
                    "stale_connection",
                    "reset",
                    "timeout",
                    "server_error",
                    "tls_error",
                ]
                .contains(&value.as_str()),
                ("switchboard_vendor_retries_denied_total", "reason") => {
                    switchboard::resilience::metrics::RETRY_DENIED_REASONS.contains(&value.as_str())
                }
                ("switchboard_circuit_breakers", "state")
                | ("switchboard_circuit_transitions_total", "to") => {
                    switchboard::resilience::metrics::CIRCUIT_STATES.contains(&value.as_str())
                }
                ("switchboard_vendor_calls_refused_total", "reason") => {
                    switchboard::resilience::metrics::REFUSAL_REASONS.contains(&value.as_str())
                }
                ("switchboard_idempotency_requests_total", "result") => {
                    switchboard::resilience::metrics::IDEMPOTENCY_RESULTS.contains(&value.as_str())
                }
                ("switchboard_state_errors_total", "backend") => {
                    ["memory", "redis"].contains(&value.as_str())
                }
                ("switchboard_rate_limited_total", "operation") => {
                    operations.contains(value.as_str()) || value == "capabilities"
                }
                ("switchboard_cache_entries" | "switchboard_cache_bytes", "cache") => {
                    !value.is_empty() && value.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
                }
                (f, "vendor") if f.starts_with("switchboard_http_") => {
                    vendor_names.contains(value.as_str()) || value == "none"
                }
                (_, "vendor") => vendor_names.contains(value.as_str()),
                (f, "operation") if f.starts_with("switchboard_http_") => {
                    operations.contains(value.as_str())
                        || ["capabilities", "openapi", "unknown"].contains(&value.as_str())
                }
                (_, "operation") => operations.contains(value.as_str()),
                _ => false,
            };
            assert!(ok, "unexpected {name}=\"{value}\" on {}", sample.name);
        }
    }
    let all: BTreeSet<String> = families.keys().map(|s| (*s).to_owned()).collect();
    assert_eq!(
        seen_families, all,
        "every family has at least one series after the traffic"
    );

    // Vendor call histogram: buckets 1 ms … 45 s, then +Inf, for every vendor.
    for vendor in vendors {
        let mut les: Vec<f64> = exposition
            .samples
            .iter()
            .filter(|s| s.name == "switchboard_vendor_request_duration_seconds_bucket")
            .filter(|s| s.labels["vendor"] == vendor.as_str())
            .map(|s| match s.labels["le"].as_str() {
                "+Inf" => f64::INFINITY,
                v => v.parse().expect("le"),
            })
            .collect();
        les.sort_by(f64::total_cmp);
        les.dedup();
        assert!(
            les.len() >= 3,
            "{}: no vendor duration buckets",
            vendor.as_str()
        );
        assert_eq!(les[0], 0.001, "{}: smallest bucket", vendor.as_str());
        assert_eq!(
            les[les.len() - 2],
            45.0,
            "{}: largest bucket",
            vendor.as_str()
        );
        assert_eq!(les[les.len() - 1], f64::INFINITY);

        // Every outcome this test provoked, per vendor (TLS errors: Libredesk only).
        let mut provoked = vec!["ok", "rate_limited", "server_error", "timeout"];
        if *vendor == Vendor::Libredesk {
            provoked.push("tls_error");
        }
        for outcome in provoked {
            let count: f64 = exposition
                .samples
                .iter()
                .filter(|s| s.name == "switchboard_vendor_requests_total")
                .filter(|s| s.labels["vendor"] == vendor.as_str() && s.labels["outcome"] == outcome)
                .map(|s| s.value)
                .sum();
            assert!(
                count >= 2.0,
                "{}: outcome {outcome} counted {count} times, want one per burst",
                vendor.as_str()
            );
        }
    }
}

// ------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboards_and_alerts_against_a_real_prometheus() {
    let started = Instant::now();
    require_tool("promtool");
    require_tool("prometheus");

    // 1. The rule files on their own.
    let dashboards = repo_path("dashboards");
    let alerts = dashboards.join("alerts.yml");
    run_ok(
        Command::new("promtool")
            .args(["check", "rules"])
            .arg(&alerts),
    );
    let tests = run_ok(
        Command::new("promtool")
            .args(["test", "rules"])
            .arg(dashboards.join("alerts_test.yml"))
            .current_dir(repo_path(".")),
    );
    println!("promtool test rules: {}", tests.trim());

    // 2. Gateway and Prometheus.
    let untrusted_ca = crate::harness::tls::ca("a CA nobody trusts");
    let untrusted_cert = crate::harness::tls::server(&untrusted_ca, LIBREDESK_TLS_NAME);
    let https_vendor = switchboard::sandbox::Sandbox::start_libredesk(
        load_routes("libredesk"),
        switchboard::sandbox::Credentials::new(LD_KEY, LD_SECRET),
    )
    .await
    .expect("HTTPS sandbox")
    .with_tls(
        switchboard::sandbox::SandboxTls::new(
            &untrusted_cert.cert_pem(),
            &untrusted_cert.key_pem(),
        )
        .expect("sandbox TLS"),
    );
    // Two more Libredesk sandboxes behind tenant `edgeco`, whose connections keep the vendor
    // edge on.
    let edge_vendor = || {
        switchboard::sandbox::Sandbox::start_libredesk(
            load_routes("libredesk"),
            switchboard::sandbox::Credentials::new(LD_KEY, LD_SECRET),
        )
    };
    let flaky = edge_vendor().await.expect("flaky sandbox");
    let metered = edge_vendor().await.expect("metered sandbox");
    let edge_connection = |name: &str, base: String, edge: &str| {
        format!(
            "    {name}:\n      vendor: libredesk\n      base_url: {base}\n      \
             credentials: {{api_key: {LD_KEY}, api_secret: {LD_SECRET}}}\n      \
             defaults: {{inbox_id: 1}}\n{edge}"
        )
    };
    let h = Harness::start_with(Options {
        vendor_timeout_ms: VENDOR_TIMEOUT_MS,
        extra_connections: format!(
            "  {TLS_TENANT}:\n    {UNTRUSTED}:\n      vendor: libredesk\n      base_url: {}\n      \
             credentials: {{api_key: {LD_KEY}, api_secret: {LD_SECRET}}}\n      \
             defaults: {{inbox_id: 1}}\n      tls: {{server_name: {LIBREDESK_TLS_NAME}}}\n\
             \x20 {EDGE_TENANT}:\n{}{}\
             \x20 {LIMITED_TENANT}: {{}}\n\
             rate_limits:\n  {LIMITED_TENANT}: {{requests_per_second: 0.01, burst: 2}}\n",
            https_vendor.base_url(),
            edge_connection(
                "flaky",
                flaky.base_url(),
                "      retry: {enabled: true, max_attempts: 2}\n      \
                 circuit_breaker: {enabled: true, consecutive_failures: 2, open_seconds: 600}\n"
            ),
            edge_connection(
                "metered",
                metered.base_url(),
                "      vendor_budget: {requests_per_second: 0.5, burst: 2, max_wait_ms: 0}\n"
            ),
        ),
        ..Options::default()
    })
    .await;
    let vendors: Vec<Vendor> = [
        Vendor::Libredesk,
        Vendor::Caac,
        Vendor::LlamadaPro,
        Vendor::ChatCaptain,
    ]
    .into_iter()
    .filter(|v| h.sandbox(*v).is_some())
    .collect();
    let vendor_names: Vec<&str> = vendors.iter().map(|v| v.as_str()).collect();
    println!("vendors in the harness: {vendor_names:?}");

    let prom_dir = tempfile::tempdir().expect("tempdir");
    let admin = h.admin.trim_start_matches("http://");
    let config = prom_dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            r#"global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - {alerts}
scrape_configs:
  - job_name: switchboard
    metrics_path: /metrics
    scrape_interval: 1s
    static_configs:
      - targets: ["{admin}"]
"#,
            alerts = alerts.display()
        ),
    )
    .expect("prometheus.yml");
    run_ok(
        Command::new("promtool")
            .args(["check", "config"])
            .arg(&config),
    );
    let data = prom_dir.path().join("data");
    let mut prom = Prometheus::start(&config, &data, prom_dir.path().join("prometheus.log"));
    prom.wait_ready().await;
    prom.wait_for("the gateway is scraped", r#"up{job="switchboard"}"#, |r| {
        r.len() == 1 && value_of(&r[0]) == 1.0
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\nprometheus log:\n{}", prom.log_tail()));

    // 3. Two bursts, each seen by a scrape, so rate() and increase() see change.
    let contact_id = h.get_json("/v1/contacts?limit=1", 200).await["data"][0]["id"]
        .as_str()
        .expect("a contact")
        .to_owned();
    let contact = format!("/v1/contacts/{contact_id}");
    for round in 1..=2 {
        burst(&h, &vendors, &contact).await;
        if round == 1 {
            edge_traffic(&h, &flaky).await;
        }
        if round == 2 {
            failed_reload(&h).await;
        }
        let counted = requests_counted(&h).await;
        prom.wait_for(
            &format!("burst {round} scraped"),
            "sum(switchboard_http_requests_total)",
            |r| r.len() == 1 && value_of(&r[0]) >= counted,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        println!(
            "burst {round}: {counted} requests scraped ({:?} in)",
            started.elapsed()
        );
    }

    // 4. Every panel target has data; per-vendor panels show every vendor.
    let dashboard = dashboard();
    let targets = targets(&dashboard);
    assert!(!targets.is_empty(), "no panel targets in the dashboard");
    let mut failures = Vec::new();
    for target in &targets {
        let what = format!("panel {:?} target {}", target.panel, target.ref_id);
        let result = prom
            .wait_for(&what, &target.expr, |r| {
                !r.is_empty() && covers_vendors(r, &vendor_names)
            })
            .await;
        match result {
            Ok(result) => println!("ok   {what}: {} series", result.len()),
            Err(e) => {
                println!("FAIL {e}");
                failures.push(e);
            }
        }
    }
    // The TLS panel shows the TLS errors of the burst (not just the 0 line of every vendor).
    let tls_panel = targets
        .iter()
        .find(|t| t.panel == "Vendor TLS errors by vendor")
        .expect("a TLS errors panel in the Vendors row");
    if let Err(e) = prom
        .wait_for("TLS panel shows libredesk's errors", &tls_panel.expr, |r| {
            r.iter()
                .any(|s| label(s, "vendor") == Some("libredesk") && value_of(s) > 0.0)
        })
        .await
    {
        failures.push(e);
    }
    for (name, metric, label) in variable_queries(&dashboard) {
        let values = prom
            .api(
                &format!("/api/v1/label/{label}/values"),
                &[("match[]", metric.as_str())],
            )
            .await
            .unwrap_or_else(|e| panic!("variable {name}: {e}"));
        let values: Vec<&str> = values
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        println!("variable ${name}: {values:?}");
        if values.is_empty() {
            failures.push(format!(
                "variable ${name}: label_values({metric}, {label}) is empty"
            ));
        }
        if label == "vendor" {
            for vendor in &vendor_names {
                if !values.contains(vendor) {
                    failures.push(format!(
                        "variable ${name} lacks vendor {vendor}: {values:?}"
                    ));
                }
            }
        }
    }

    // Every rule evaluates without error; the ones this traffic trips are active.
    let deadline = Instant::now() + WAIT;
    let rules = loop {
        let data = prom
            .api("/api/v1/rules", &[])
            .await
            .unwrap_or_else(|e| panic!("rules: {e}"));
        let rules: Vec<Value> = data["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
            .collect();
        if !rules.is_empty() && rules.iter().all(|r| r["health"] == "ok") {
            break rules;
        }
        assert!(
            Instant::now() < deadline,
            "alert rules not all healthy within {WAIT:?}: {}",
            Value::from(rules)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    println!("{} alert rules evaluate healthily", rules.len());
    for (alert, state) in [
        ("SwitchboardCircuitOpen", "pending"),
        ("SwitchboardVendorBudgetExhausted", "pending"),
        ("SwitchboardConfigReloadFailed", "firing"),
        ("SwitchboardVendorRateLimited", "pending"),
        ("SwitchboardVendorErrorRatioHigh", "pending"),
        ("SwitchboardVendorTlsErrors", "pending"),
    ] {
        let expr = format!(r#"ALERTS{{alertname="{alert}", alertstate="{state}"}}"#);
        // Per-vendor alerts cover every vendor; TLS errors only happen at the HTTPS Libredesk.
        let vendors: &[&str] = match alert {
            "SwitchboardVendorTlsErrors"
            | "SwitchboardCircuitOpen"
            | "SwitchboardVendorBudgetExhausted" => &["libredesk"],
            a if a.starts_with("SwitchboardVendor") => &vendor_names,
            _ => &[],
        };
        match prom
            .wait_for(&format!("alert {alert} {state}"), &expr, |r| {
                !r.is_empty() && covers_vendors(r, vendors)
            })
            .await
        {
            Ok(r) => println!("ok   alert {alert} is {state} ({} series)", r.len()),
            Err(e) => failures.push(e),
        }
    }
    let down = prom
        .query(r#"ALERTS{alertname="SwitchboardDown"}"#)
        .await
        .expect("ALERTS query");
    assert!(down.is_empty(), "SwitchboardDown is active: {down:?}");

    assert!(
        failures.is_empty(),
        "{} check(s) lacked data ({} panel targets in the dashboard):\n{}",
        failures.len(),
        targets.len(),
        failures.join("\n\n")
    );

    // 5. The exposition itself.
    check_exposition(&scrape(&h).await, &vendors);
    println!("done in {:?}", started.elapsed());
}

/// When the series carry a `vendor` label, every vendor of the harness is among them.
fn covers_vendors(result: &[Value], vendors: &[&str]) -> bool {
    let labelled: BTreeSet<&str> = result.iter().filter_map(|s| label(s, "vendor")).collect();
    labelled.is_empty() || vendors.iter().all(|v| labelled.contains(v))
}
