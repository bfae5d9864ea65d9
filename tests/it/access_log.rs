//! The access log of the real `switchboard` binary: run as a subprocess (`switchboard run`)
//! in front of an in-process Libredesk sandbox, its stderr read line by line.
//!
//! - JSON format: exactly one `switchboard::access` line per request, with every field, the
//!   request id of the `X-Request-Id` response header, and no credential, token or secret on
//!   any line (pingora's own `log` lines included).
//! - text format: plain `key=value` lines, no JSON and no color escape codes.
//! - `RUST_LOG=warn` overrides the config's `log.filter: info`: no access lines.
//! - `RUST_LOG=trace` still logs no credential, token or secret.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::harness::{free_ports, load_routes, repo_path, ALL_SCOPES};
use serde_json::Value;
use switchboard::api::operation::Vendor;
use switchboard::sandbox::{Credentials, Fault, Sandbox};

/// Distinctive values, so a leak anywhere in the log is unmistakable.
const VENDOR_KEY: &str = "ldkey-7Q2xWv9pZk";
const VENDOR_SECRET: &str = "ldsecret-Hm4Rt8Ys1N";
const JWT_SECRET: &str = "jwtsecret-Bf6Lq3Xe0Jc-0123456789";
const CURSOR_SECRET: &str = "cursorsecret-Ua5Kp2Gd7V-0123456789";
const AUDIENCE: &str = "switchboard";

/// How long any single wait in these tests may take.
const DEADLINE: Duration = Duration::from_secs(20);

/// The access-log fields every request line carries.
const ACCESS_FIELDS: &[&str] = &[
    "request_id",
    "operation",
    "vendor",
    "connection",
    "status",
    "code",
    "duration_ms",
    "vendor_ms",
    "cache",
    "vendor_failure",
];

/// A `switchboard run` child process with its stderr collected by a reader thread.
/// Dropping it kills the process if it is still running.
struct Gateway {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
    api: String,
    admin: String,
    dir: tempfile::TempDir,
    http: reqwest::Client,
}

impl Gateway {
    /// Write a config for `sandbox` into a tempdir and start the binary on free ports.
    /// `rust_log`: the `RUST_LOG` of the child (`None`: unset, so the config's filter rules).
    async fn start(sandbox: &Sandbox, format: &str, rust_log: Option<&str>) -> Gateway {
        let dir = tempfile::tempdir().expect("tempdir");
        let routes = dir.path().join("routes");
        std::fs::create_dir_all(&routes).expect("routes dir");
        // Only the vendor this config connects to: another vendor's routes file being edited
        // elsewhere in the tree must not stop this gateway from starting.
        std::fs::copy(
            repo_path("routes/libredesk.yaml"),
            routes.join("libredesk.yaml"),
        )
        .expect("copy routes/libredesk.yaml");
        std::fs::write(dir.path().join("connections.yaml"), connections(sandbox))
            .expect("connections");
        let [api_port, admin_port] = free_ports();
        let config = format!(
            r#"listen:
  api: 127.0.0.1:{api_port}
  admin: 127.0.0.1:{admin_port}
threads: 2
grace_period_seconds: 0
graceful_shutdown_timeout_seconds: 1
routes_dir: routes
connections: connections.yaml
jwt:
  algorithm: HS256
  secret: {JWT_SECRET}
  audience: {AUDIENCE}
cursor_secret: {CURSOR_SECRET}
cache:
  max_entries: 100
log:
  format: {format}
  filter: info
"#
        );
        let config_path = dir.path().join("switchboard.yaml");
        std::fs::write(&config_path, config).expect("config");

        let mut command = Command::new(env!("CARGO_BIN_EXE_switchboard"));
        command
            .arg("run")
            .arg("--config")
            .arg(&config_path)
            .arg("--pid-file")
            .arg(dir.path().join("switchboard.pid"))
            .arg("--upgrade-sock")
            .arg(dir.path().join("upgrade.sock"))
            .env_remove("RUST_LOG")
            .env_remove("NO_COLOR")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(filter) = rust_log {
            command.env("RUST_LOG", filter);
        }
        let mut child = command.spawn().expect("spawn switchboard");
        let stderr = child.stderr.take().expect("stderr");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let reader = std::thread::spawn(move || {
            let mut stderr = BufReader::new(stderr);
            let mut line = Vec::new();
            loop {
                line.clear();
                match stderr.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {
                        let text = String::from_utf8_lossy(&line).trim_end().to_owned();
                        sink.lock().expect("lines").push(text);
                    }
                }
            }
        });
        let mut gateway = Gateway {
            child,
            lines,
            reader: Some(reader),
            api: format!("http://127.0.0.1:{api_port}"),
            admin: format!("http://127.0.0.1:{admin_port}"),
            dir,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("client"),
        };
        gateway.wait_ready().await;
        gateway
    }

    /// Poll until the admin `/readyz` answers 200 and the API listener accepts a connection
    /// (bounded; pingora binds each listener on its own, so one may be up before the other; a
    /// bare connection logs no access line); fail with the log if the process exits or the
    /// deadline passes.
    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "switchboard exited during start-up ({status}); stderr:\n{}",
                    self.log()
                );
            }
            let ready = self.http.get(format!("{}/readyz", self.admin)).send().await;
            let api = self.api.trim_start_matches("http://");
            let accepts = tokio::net::TcpStream::connect(api).await.is_ok();
            if accepts && matches!(&ready, Ok(r) if r.status() == 200) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "switchboard not ready after {DEADLINE:?}; stderr:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().expect("lines").clone()
    }

    fn log(&self) -> String {
        self.lines().join("\n")
    }

    /// Poll the collected stderr until `pred` holds for it (bounded).
    async fn wait_for_lines(&self, what: &str, pred: impl Fn(&[String]) -> bool) {
        let deadline = Instant::now() + DEADLINE;
        while !pred(&self.lines()) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; stderr so far:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Poll `/metrics` until `switchboard_http_requests_total` adds up to `n` (bounded).
    /// The access line is written right after the counter moves, in the same call.
    async fn wait_for_requests_counted(&self, n: u64) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let text = self
                .http
                .get(format!("{}/metrics", self.admin))
                .send()
                .await
                .expect("metrics")
                .text()
                .await
                .expect("metrics body");
            let counted: u64 = text
                .lines()
                .filter(|l| l.starts_with("switchboard_http_requests_total{"))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
                .sum();
            if counted >= n {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "gateway counted {counted} of {n} requests after {DEADLINE:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `GET {api}{path}` on connection `support`; returns (status, X-Request-Id).
    async fn get(&self, path: &str, token: &str) -> (u16, String) {
        let response = self
            .http
            .get(format!("{}{path}", self.api))
            .bearer_auth(token)
            .header("X-Connection", "support")
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        let id = response
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .expect("every response carries X-Request-Id")
            .to_owned();
        (status, id)
    }

    /// SIGTERM, then wait (bounded) for the exit and the end of stderr. Returns every line.
    fn stop(mut self) -> Vec<String> {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        let deadline = Instant::now() + DEADLINE;
        let exited = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if sent && Instant::now() < deadline => {
                    std::thread::park_timeout(Duration::from_millis(20));
                }
                _ => break None,
            }
        };
        if exited.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        assert!(
            exited.is_some(),
            "switchboard did not exit within {DEADLINE:?} of SIGTERM; stderr:\n{}",
            self.log()
        );
        self.lines()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn connections(sandbox: &Sandbox) -> String {
    format!(
        r#"tenants:
  acme:
    support:
      vendor: libredesk
      base_url: {}
      credentials: {{api_key: {VENDOR_KEY}, api_secret: {VENDOR_SECRET}}}
      defaults: {{inbox_id: 1}}
"#,
        sandbox.base_url()
    )
}

async fn sandbox() -> Sandbox {
    Sandbox::start_vendor(
        Vendor::Libredesk,
        load_routes("libredesk"),
        Credentials::new(VENDOR_KEY, VENDOR_SECRET),
    )
    .await
    .expect("libredesk sandbox starts")
}

fn token(secret: &str) -> String {
    switchboard::auth::mint_hs256(
        secret.as_bytes(),
        "tenant",
        "acme",
        ALL_SCOPES,
        Duration::from_secs(600),
        &serde_json::json!({"aud": AUDIENCE})
            .as_object()
            .cloned()
            .unwrap_or_default(),
    )
    .expect("mint")
}

fn is_access(line: &Value) -> bool {
    line["target"] == "switchboard::access"
}

/// Every stderr line as JSON; a line that is not JSON fails the test.
fn parse_json_lines(lines: &[String]) -> Vec<Value> {
    lines
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| {
                panic!(
                    "log line is not JSON ({e}): {l}\nall:\n{}",
                    lines.join("\n")
                )
            })
        })
        .collect()
}

fn access_count_json(lines: &[String]) -> usize {
    lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(is_access)
        .count()
}

/// Every form a secret could take on the wire or in a log.
fn forbidden_strings(jwts: &[&str]) -> Vec<String> {
    use base64::Engine;
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("{VENDOR_KEY}:{VENDOR_SECRET}"));
    let mut out = vec![
        VENDOR_KEY.to_owned(),
        VENDOR_SECRET.to_owned(),
        JWT_SECRET.to_owned(),
        CURSOR_SECRET.to_owned(),
        basic,
    ];
    for jwt in jwts {
        out.push((*jwt).to_owned());
        // The signature alone is enough to replay nothing, but has no business in a log.
        if let Some(signature) = jwt.rsplit('.').next() {
            out.push(signature.to_owned());
        }
    }
    out
}

fn assert_no_secrets(lines: &[String], jwts: &[&str]) {
    for secret in forbidden_strings(jwts) {
        for line in lines {
            assert!(
                !line.contains(&secret),
                "a log line carries a secret ({}…): {line}",
                &secret[..secret.len().min(6)]
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_access_log_has_one_line_per_request_and_no_secrets() {
    let sandbox = sandbox().await;
    let gw = Gateway::start(&sandbox, "json", None).await;
    let good = token(JWT_SECRET);
    let forged = token("not-the-gateway-secret-0123456789");

    // 1. ok
    let (status, ok_id) = gw.get("/v1/contacts?limit=1", &good).await;
    assert_eq!(status, 200);
    // 2. the vendor fails (every attempt: a read is tried 3 times by default)
    sandbox.inject(Fault::Status(503), Some(3));
    let (status, vendor_error_id) = gw.get("/v1/contacts?limit=1", &good).await;
    assert_eq!(status, 502);
    // 3. a token signed with another secret
    let (status, bad_token_id) = gw.get("/v1/contacts?limit=1", &forged).await;
    assert_eq!(status, 401);
    // 4. the client's own request id is echoed and logged
    let response = gw
        .http
        .get(format!("{}/v1/contacts?limit=1", gw.api))
        .bearer_auth(&good)
        .header("X-Connection", "support")
        .header("X-Request-Id", "client-chosen-id-42")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-request-id"], "client-chosen-id-42");

    let ids = [
        ok_id.as_str(),
        vendor_error_id.as_str(),
        bad_token_id.as_str(),
        "client-chosen-id-42",
    ];
    gw.wait_for_lines("4 access lines", |lines| access_count_json(lines) >= 4)
        .await;
    let lines = gw.stop();
    let events = parse_json_lines(&lines);

    let access: Vec<&Value> = events.iter().filter(|e| is_access(e)).collect();
    assert_eq!(
        access.len(),
        ids.len(),
        "one access line per request; got:\n{}",
        lines.join("\n")
    );
    let line_for = |id: &str| -> &Value {
        let matching: Vec<&&Value> = access.iter().filter(|e| e["request_id"] == id).collect();
        assert_eq!(
            matching.len(),
            1,
            "exactly one access line for request {id}; got:\n{}",
            lines.join("\n")
        );
        matching[0]
    };
    for id in ids {
        let line = line_for(id);
        for field in ACCESS_FIELDS {
            assert!(line.get(*field).is_some(), "no `{field}` in {line}");
        }
        assert_eq!(line["level"], "INFO", "{line}");
        assert!(
            line["duration_ms"].as_f64().is_some_and(|d| d >= 0.0),
            "{line}"
        );
        assert!(
            line["vendor_ms"].as_f64().is_some_and(|d| d >= 0.0),
            "{line}"
        );
        assert!(line["status"].is_u64(), "{line}");
    }

    let ok = line_for(&ok_id);
    assert_eq!(ok["operation"], "contacts.list", "{ok}");
    assert_eq!(ok["vendor"], "libredesk", "{ok}");
    assert_eq!(ok["connection"], "support", "{ok}");
    assert_eq!(ok["status"], 200, "{ok}");
    assert_eq!(ok["code"], "ok", "{ok}");
    assert_eq!(ok["cache"], "none", "lists are not cached: {ok}");
    assert_eq!(ok["vendor_failure"], "-", "{ok}");
    assert!(ok["vendor_ms"].as_f64().is_some_and(|d| d > 0.0), "{ok}");
    assert!(
        ok["duration_ms"].as_f64() >= ok["vendor_ms"].as_f64(),
        "the whole request includes the vendor call: {ok}"
    );

    let failed = line_for(&vendor_error_id);
    assert_eq!(failed["operation"], "contacts.list", "{failed}");
    assert_eq!(failed["vendor"], "libredesk", "{failed}");
    assert_eq!(failed["connection"], "support", "{failed}");
    assert_eq!(failed["status"], 502, "{failed}");
    assert_eq!(failed["code"], "vendor_error", "{failed}");
    assert_eq!(
        failed["vendor_failure"], "-",
        "the vendor answered (5xx): {failed}"
    );
    assert_eq!(
        failed["vendor_calls"], 3,
        "the read and its 2 retries: {failed}"
    );

    let refused = line_for(&bad_token_id);
    assert_eq!(refused["status"], 401, "{refused}");
    assert_eq!(refused["code"], "unauthorized", "{refused}");
    assert_eq!(refused["vendor"], "none", "no vendor is reached: {refused}");
    assert_eq!(refused["connection"], "-", "{refused}");
    assert_eq!(refused["vendor_ms"].as_f64(), Some(0.0), "{refused}");

    // Pingora logs through the `log` crate: its lines reach the same JSON output.
    assert!(
        events.iter().any(|e| e["target"]
            .as_str()
            .is_some_and(|t| t.starts_with("pingora"))),
        "no pingora (log crate) line in the JSON log:\n{}",
        lines.join("\n")
    );
    assert_no_secrets(&lines, &[good.as_str(), forged.as_str()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_format_writes_plain_key_value_lines() {
    let sandbox = sandbox().await;
    let gw = Gateway::start(&sandbox, "text", None).await;
    let good = token(JWT_SECRET);
    let (status, id) = gw.get("/v1/contacts?limit=1", &good).await;
    assert_eq!(status, 200);
    let needle = format!("request_id={id}");
    gw.wait_for_lines("the text access line", |lines| {
        lines.iter().any(|l| l.contains(&needle))
    })
    .await;
    let lines = gw.stop();

    let access: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("switchboard::access"))
        .collect();
    assert_eq!(access.len(), 1, "one access line:\n{}", lines.join("\n"));
    let line = access[0];
    assert!(line.contains(" INFO "), "{line}");
    for expected in [
        needle.as_str(),
        "operation=\"contacts.list\"",
        "vendor=\"libredesk\"",
        "connection=\"support\"",
        "status=200",
        "code=\"ok\"",
        "duration_ms=",
        "vendor_ms=",
        "cache=\"none\"",
    ] {
        assert!(line.contains(expected), "no `{expected}` in: {line}");
    }
    for line in &lines {
        assert!(
            serde_json::from_str::<Value>(line).is_err(),
            "format: text wrote a JSON line: {line}"
        );
        assert!(
            !line.contains('\u{1b}'),
            "color escape codes in a log that is not a terminal: {line:?}"
        );
    }
    assert_no_secrets(&lines, &[good.as_str()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_log_overrides_the_config_filter() {
    let sandbox = sandbox().await;
    let gw = Gateway::start(&sandbox, "json", Some("warn")).await;
    let good = token(JWT_SECRET);
    assert_eq!(gw.get("/v1/contacts?limit=1", &good).await.0, 200);
    assert_eq!(gw.get("/v1/contacts?limit=1", "not-a-jwt").await.0, 401);
    gw.wait_for_requests_counted(2).await;

    // Positive control: an error (above warn) still gets through — a rejected reload.
    let connections = gw.dir.path().join("connections.yaml");
    write_broken(&connections);
    let response = gw
        .http
        .post(format!("{}/admin/reload", gw.admin))
        .send()
        .await
        .expect("reload");
    assert_eq!(response.status(), 422);
    gw.wait_for_lines("the rejected-reload error line", |lines| {
        lines.iter().any(|l| l.contains("config reload rejected"))
    })
    .await;
    let lines = gw.stop();

    let events = parse_json_lines(&lines);
    for event in &events {
        assert!(
            matches!(event["level"].as_str(), Some("WARN" | "ERROR")),
            "RUST_LOG=warn let a lower level through: {event}"
        );
        assert!(
            !is_access(event),
            "RUST_LOG=warn let an access line through: {event}"
        );
    }
}

/// Pingora prints whole request headers at debug/trace (the client's bearer token, the
/// vendor credentials it writes upstream): even `RUST_LOG=trace` must not put them in the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_logging_never_prints_credentials_or_tokens() {
    let sandbox = sandbox().await;
    let gw = Gateway::start(&sandbox, "json", Some("trace")).await;
    let good = token(JWT_SECRET);
    let forged = token("not-the-gateway-secret-0123456789");
    assert_eq!(gw.get("/v1/contacts?limit=1", &good).await.0, 200);
    // Every attempt of the read (3 by default) fails.
    sandbox.inject(Fault::Status(503), Some(3));
    assert_eq!(gw.get("/v1/contacts?limit=1", &good).await.0, 502);
    assert_eq!(gw.get("/v1/contacts?limit=1", &forged).await.0, 401);
    gw.wait_for_lines("3 access lines", |lines| access_count_json(lines) >= 3)
        .await;
    let lines = gw.stop();
    let events = parse_json_lines(&lines);
    assert!(
        events
            .iter()
            .any(|e| matches!(e["level"].as_str(), Some("TRACE" | "DEBUG"))),
        "RUST_LOG=trace produced no debug or trace line:\n{}",
        lines.join("\n")
    );
    assert_no_secrets(&lines, &[good.as_str(), forged.as_str()]);
}

fn write_broken(path: &Path) {
    std::fs::write(path, "tenants: [this is not a map\n").expect("write broken connections");
}
