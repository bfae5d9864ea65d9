//! HTTPS vendors end to end: Libredesk sandboxes serving TLS on loopback with certificates
//! this test makes (a vendor CA, another CA, a client CA), a real gateway in front, driven over
//! HTTP like a client.
//!
//! - trust: a private CA in `ca_file` → 200; the system roots alone do not trust it;
//!   `ca_mode: add` keeps the system roots too.
//! - failures: untrusted issuer, wrong name, expired, refused → 503 `vendor_unavailable`
//!   naming the class, the class in the access log (`vendor_failure`) and a warn line (`cause`),
//!   outcome `tls_error` (refused: `connect_error`) in `switchboard_vendor_requests_total`.
//! - mTLS: the client certificate works; without it (or with a foreign one) the call fails.
//! - `min_version: 1.3` refuses a vendor that stops at TLS 1.2.
//! - rotating `ca_file` on disk is picked up by the watcher, without a restart, and a pooled
//!   session made under the old trust is never reused.
//! - a reload closes the idle pooled sessions of a connection whose TLS changed, and only those.
//! - `switchboard check` names file, key and reason for every bad `tls` value, and warns about
//!   expiring certificates.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::harness::tls::{self as certs, Issued};
use crate::harness::*;
use serde_json::Value;
use switchboard::config::{Env, Loader};
use switchboard::sandbox::{Credentials, Sandbox, SandboxTls};

/// How long any wait in these tests may take.
const DEADLINE: Duration = Duration::from_secs(15);
/// The name in the vendor's certificate.
const NAME: &str = "libredesk.test";
/// The tenant whose connections these tests add.
const TENANT: &str = "tlsco";

// ------------------------------------------------------------------------------------------
// Certificates and sandboxes

/// The certificates of one test, and a folder for their PEM files.
struct Pki {
    dir: tempfile::TempDir,
    vendor_ca: Issued,
    other_ca: Issued,
    client_ca: Issued,
}

impl Pki {
    fn new() -> Pki {
        Pki {
            dir: tempfile::tempdir().expect("tempdir"),
            vendor_ca: certs::ca("Vendor CA"),
            other_ca: certs::ca("Other CA"),
            client_ca: certs::ca("Client CA"),
        }
    }

    /// Write `bytes` to `<dir>/<name>`; the absolute path.
    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, bytes).expect("write PEM");
        path
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }
}

/// A Libredesk sandbox serving HTTPS with `tls`.
async fn https_sandbox(tls: SandboxTls) -> Sandbox {
    Sandbox::start_libredesk(
        load_routes("libredesk"),
        Credentials::new(LD_KEY, LD_SECRET),
    )
    .await
    .expect("sandbox starts")
    .with_tls(tls)
}

fn serving(cert: &Issued) -> SandboxTls {
    SandboxTls::new(&cert.cert_pem(), &cert.key_pem()).expect("sandbox TLS")
}

/// One Libredesk connection of tenant [`TENANT`]; `tls` is a YAML flow map or "".
fn connection(name: &str, base_url: &str, tls: &str) -> String {
    let tls = if tls.is_empty() {
        String::new()
    } else {
        format!("      tls: {tls}\n")
    };
    format!(
        "    {name}:\n      vendor: libredesk\n      base_url: {base_url}\n      credentials: \
         {{api_key: {LD_KEY}, api_secret: {LD_SECRET}}}\n      defaults: {{inbox_id: 1}}\n{tls}"
    )
}

async fn start(connections: &[String]) -> Harness {
    capture_logs();
    Harness::start_with(Options {
        extra_connections: format!("  {TENANT}:\n{}", connections.concat()),
        libredesk_tls: false,
        ..Options::default()
    })
    .await
}

/// GET a list on a connection of [`TENANT`]; the response and its request id.
async fn list(h: &Harness, connection: &str) -> (u16, Value, String) {
    let response = h
        .http
        .get(h.url("/v1/contacts?limit=1"))
        .bearer_auth(h.token(TENANT, ALL_SCOPES))
        .header("X-Connection", connection)
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .expect("request id")
        .to_owned();
    let text = response.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body, request_id)
}

/// A 503 `vendor_unavailable` that names `class`, without an address or the vendor's host.
async fn expect_failure(h: &Harness, connection: &str, class: &str) -> String {
    let (status, body, request_id) = list(h, connection).await;
    assert_eq!(status, 503, "{connection}: {body}");
    assert_eq!(body["code"], "vendor_unavailable", "{connection}: {body}");
    assert_eq!(body["vendor"], "libredesk", "{body}");
    let detail = body["detail"].as_str().expect("detail");
    assert!(
        detail.contains(&format!("({class})")),
        "{connection}: the detail names the class {class}: {detail}"
    );
    let text = body.to_string();
    assert!(
        !text.contains("127.0.0.1") && !text.contains(NAME) && !text.contains("SNI"),
        "no address or host in the problem: {text}"
    );
    request_id
}

// ------------------------------------------------------------------------------------------
// Logs and metrics

/// Every log line of this test process, as JSON (one global subscriber, installed once). The
/// `it` binary runs other modules' gateways beside these tests: their lines land here too, and
/// are told apart by request id.
fn capture_logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let sink = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || LogSink(sink.clone()))
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("one log subscriber");
        buffer
    })
    .clone()
}

struct LogSink(Arc<Mutex<Vec<u8>>>);

impl Write for LogSink {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The access line and the other lines of one request (polled: the access line is written
/// after the response).
async fn request_log(request_id: &str) -> (Value, Vec<Value>) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        // The buffer holds the lines of every test in the process: only lines naming the
        // request are parsed.
        let logs = capture_logs();
        let lines: Vec<Value> = String::from_utf8_lossy(&logs.lock().expect("logs"))
            .lines()
            .filter(|l| l.contains(request_id))
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|l| l["request_id"] == request_id)
            .collect();
        if let Some(access) = lines
            .iter()
            .find(|l| l["target"] == "switchboard::access")
            .cloned()
        {
            let others = lines
                .into_iter()
                .filter(|l| l["target"] != "switchboard::access")
                .collect();
            return (access, others);
        }
        assert!(Instant::now() < deadline, "no access line for {request_id}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The request's access line says `vendor_failure=<cause>`, and one warn line carries the
/// cause, the connection and a reason — and no address.
async fn expect_logged(request_id: &str, connection: &str, cause: &str) -> String {
    let (access, others) = request_log(request_id).await;
    assert_eq!(access["vendor_failure"], cause, "{access}");
    assert_eq!(access["code"], "vendor_unavailable", "{access}");
    assert_eq!(access["status"], 503, "{access}");
    let warn = others
        .iter()
        .find(|l| l["level"] == "WARN" && l["message"] == "vendor connection failed")
        .unwrap_or_else(|| panic!("no warn line for {request_id}: {others:?}"));
    assert_eq!(warn["cause"], cause, "{warn}");
    assert_eq!(warn["connection"], connection, "{warn}");
    assert_eq!(warn["vendor"], "libredesk", "{warn}");
    for line in others.iter().chain([&access]) {
        let text = line.to_string();
        assert!(
            !text.contains("127.0.0.1") && !text.contains(NAME),
            "an address or host in a log line: {text}"
        );
    }
    warn["reason"].as_str().expect("reason").to_owned()
}

/// `switchboard_vendor_requests_total` of Libredesk by outcome.
async fn outcomes(h: &Harness) -> BTreeMap<String, f64> {
    let text = h
        .http
        .get(format!("{}/metrics", h.admin))
        .send()
        .await
        .expect("scrape")
        .text()
        .await
        .expect("metrics");
    let mut counts = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| l.starts_with("switchboard_vendor_requests_total{"))
        .filter(|l| l.contains("vendor=\"libredesk\""))
    {
        let outcome = line
            .split("outcome=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .expect("outcome label");
        let value: f64 = line
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse().ok())
            .expect("value");
        *counts.entry(outcome.to_owned()).or_insert(0.0) += value;
    }
    counts
}

async fn outcome(h: &Harness, outcome: &str) -> f64 {
    outcomes(h).await.get(outcome).copied().unwrap_or(0.0)
}

/// Poll `condition` until it holds (bounded by [`DEADLINE`]).
async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !condition() {
        assert!(Instant::now() < deadline, "{what}: not within {DEADLINE:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ------------------------------------------------------------------------------------------
// Trust

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_ca_in_ca_file_is_trusted_and_the_system_roots_alone_are_not() {
    let pki = Pki::new();
    pki.write("vendor-ca.pem", &pki.vendor_ca.cert_pem());
    let sandbox = https_sandbox(serving(&certs::server(&pki.vendor_ca, NAME))).await;
    let base = sandbox.base_url();
    assert!(base.starts_with("https://"));
    let ca = pki.path("vendor-ca.pem");
    let h = start(&[
        connection(
            "trusted",
            &base,
            &format!("{{ca_file: {ca}, server_name: {NAME}}}"),
        ),
        connection(
            "added",
            &base,
            &format!("{{ca_file: {ca}, ca_mode: add, server_name: {NAME}}}"),
        ),
        connection("system", &base, &format!("{{server_name: {NAME}}}")),
    ])
    .await;

    let (status, body, _) = list(&h, "trusted").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"][0]["vendor"], "libredesk");
    let (status, body, _) = list(&h, "added").await;
    assert_eq!(status, 200, "{body}");

    // `ca_mode: add` keeps the system roots; the default replaces them.
    let snapshot = h.app.snapshot();
    let ca_count = |name: &str| {
        snapshot
            .connection(TENANT, name)
            .and_then(|c| c.tls.ca.as_ref().map(|ca| ca.len()))
    };
    assert_eq!(ca_count("trusted"), Some(1));
    assert!(
        ca_count("added").is_some_and(|n| n > 1),
        "system roots added"
    );
    assert_eq!(
        ca_count("system"),
        None,
        "system roots: pingora's default store"
    );

    let request_id = expect_failure(&h, "system", "untrusted_issuer").await;
    expect_logged(&request_id, "system", "untrusted_issuer").await;
    assert_eq!(outcome(&h, "ok").await, 2.0);
    assert_eq!(outcome(&h, "tls_error").await, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_failures_answer_503_and_name_their_class_in_logs_and_metrics() {
    let pki = Pki::new();
    pki.write("vendor-ca.pem", &pki.vendor_ca.cert_pem());
    pki.write("other-ca.pem", &pki.other_ca.cert_pem());
    let good = https_sandbox(serving(&certs::server(&pki.vendor_ca, NAME))).await;
    let expired = https_sandbox(serving(&certs::leaf(
        &pki.vendor_ca,
        NAME,
        certs::Usage::Server,
        -30,
        -1,
    )))
    .await;
    let closed = format!("https://127.0.0.1:{}", free_port());
    let vendor_ca = pki.path("vendor-ca.pem");
    let other_ca = pki.path("other-ca.pem");
    let h = start(&[
        connection(
            "untrusted",
            &good.base_url(),
            &format!("{{ca_file: {other_ca}, server_name: {NAME}}}"),
        ),
        connection(
            "wrongname",
            &good.base_url(),
            &format!("{{ca_file: {vendor_ca}, server_name: other.test}}"),
        ),
        connection(
            "expired",
            &expired.base_url(),
            &format!("{{ca_file: {vendor_ca}, server_name: {NAME}}}"),
        ),
        connection(
            "refused",
            &closed,
            &format!("{{ca_file: {vendor_ca}, server_name: {NAME}}}"),
        ),
    ])
    .await;

    for (connection, class) in [
        ("untrusted", "untrusted_issuer"),
        ("wrongname", "hostname_mismatch"),
        ("expired", "expired"),
    ] {
        let request_id = expect_failure(&h, connection, class).await;
        let reason = expect_logged(&request_id, connection, class).await;
        println!("{connection}: {class}: {reason}");
    }
    // The second failure of a peer is named the same (the diagnosis is cached).
    let request_id = expect_failure(&h, "untrusted", "untrusted_issuer").await;
    expect_logged(&request_id, "untrusted", "untrusted_issuer").await;
    assert_eq!(outcome(&h, "tls_error").await, 4.0);

    let request_id = expect_failure(&h, "refused", "refused").await;
    expect_logged(&request_id, "refused", "refused").await;
    assert_eq!(outcome(&h, "connect_error").await, 1.0);
    assert_eq!(
        outcome(&h, "tls_error").await,
        4.0,
        "refused is not a TLS error"
    );
    assert_eq!(
        good.calls().len() + expired.calls().len(),
        0,
        "no request got through"
    );
}

// ------------------------------------------------------------------------------------------
// Client certificates and versions

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mtls_works_with_the_client_certificate_and_fails_without() {
    let pki = Pki::new();
    let vendor_ca = pki.write("vendor-ca.pem", &pki.vendor_ca.cert_pem());
    let client = certs::client(&pki.client_ca, "switchboard");
    let (cert, key) = client.write(pki.dir.path(), "client");
    let foreign = certs::client(&pki.other_ca, "switchboard");
    let (foreign_cert, foreign_key) = foreign.write(pki.dir.path(), "foreign");
    let server = certs::server(&pki.vendor_ca, NAME);
    let mtls = https_sandbox(
        SandboxTls::builder(&server.cert_pem(), &server.key_pem())
            .and_then(|b| b.require_client_certificate(&pki.client_ca.cert_pem()))
            .expect("mTLS sandbox")
            .build(),
    )
    .await;
    let mtls12 = https_sandbox(
        SandboxTls::builder(&server.cert_pem(), &server.key_pem())
            .and_then(|b| b.require_client_certificate(&pki.client_ca.cert_pem()))
            .and_then(|b| b.max_tls12())
            .expect("mTLS sandbox, TLS 1.2")
            .build(),
    )
    .await;
    let trust = |extra: &str| {
        format!(
            "{{ca_file: {}, server_name: {NAME}{extra}}}",
            vendor_ca.display()
        )
    };
    let with_cert = trust(&format!(
        ", client_cert_file: {}, client_key_file: {}",
        cert.display(),
        key.display()
    ));
    let h = start(&[
        connection("mtls", &mtls.base_url(), &with_cert),
        connection("nocert", &mtls.base_url(), &trust("")),
        connection(
            "foreign",
            &mtls.base_url(),
            &trust(&format!(
                ", client_cert_file: {}, client_key_file: {}",
                foreign_cert.display(),
                foreign_key.display()
            )),
        ),
        connection("mtls12", &mtls12.base_url(), &with_cert),
        connection("nocert12", &mtls12.base_url(), &trust("")),
    ])
    .await;

    let (status, body, _) = list(&h, "mtls").await;
    assert_eq!(status, 200, "{body}");
    let (status, body, _) = list(&h, "mtls12").await;
    assert_eq!(status, 200, "{body}");

    // TLS 1.3: the vendor's verdict arrives as an alert after the handshake.
    let request_id = expect_failure(&h, "nocert", "client_certificate").await;
    let reason = expect_logged(&request_id, "nocert", "client_certificate").await;
    assert!(reason.contains("requires a client certificate"), "{reason}");
    let request_id = expect_failure(&h, "foreign", "client_certificate").await;
    let reason = expect_logged(&request_id, "foreign", "client_certificate").await;
    assert!(reason.contains("unknown_ca"), "{reason}");
    // TLS 1.2: the server ends the handshake with a generic alert.
    let request_id = expect_failure(&h, "nocert12", "handshake").await;
    let reason = expect_logged(&request_id, "nocert12", "handshake").await;
    assert!(reason.contains("client certificate"), "{reason}");

    assert_eq!(outcome(&h, "ok").await, 2.0);
    assert_eq!(outcome(&h, "tls_error").await, 3.0);
    assert_eq!(
        mtls.calls().len(),
        1,
        "only the call with a certificate got through"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn min_version_1_3_refuses_a_vendor_that_stops_at_tls_1_2() {
    let pki = Pki::new();
    let ca = pki.write("vendor-ca.pem", &pki.vendor_ca.cert_pem());
    let server = certs::server(&pki.vendor_ca, NAME);
    let old = https_sandbox(
        SandboxTls::builder(&server.cert_pem(), &server.key_pem())
            .and_then(|b| b.max_tls12())
            .expect("TLS 1.2 sandbox")
            .build(),
    )
    .await;
    let ca = ca.display();
    let h = start(&[
        connection(
            "floor13",
            &old.base_url(),
            &format!("{{ca_file: {ca}, server_name: {NAME}, min_version: \"1.3\"}}"),
        ),
        // YAML reads an unquoted 1.2 as a number: accepted all the same.
        connection(
            "floor12",
            &old.base_url(),
            &format!("{{ca_file: {ca}, server_name: {NAME}, min_version: 1.2}}"),
        ),
    ])
    .await;
    let request_id = expect_failure(&h, "floor13", "handshake").await;
    let reason = expect_logged(&request_id, "floor13", "handshake").await;
    assert!(reason.contains("below min_version 1.3"), "{reason}");
    assert_eq!(
        old.calls().len(),
        0,
        "no request on a session below the floor"
    );
    let (status, body, _) = list(&h, "floor12").await;
    assert_eq!(status, 200, "{body}");
}

// ------------------------------------------------------------------------------------------
// Reloads

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_ca_file_on_disk_takes_effect_without_a_restart() {
    let pki = Pki::new();
    // The vendor moved to a certificate from a new CA; our file still holds the old one.
    let ca_file = pki.write("vendor-ca.crt", &pki.vendor_ca.cert_pem());
    let sandbox = https_sandbox(serving(&certs::server(&pki.other_ca, NAME))).await;
    let h = start(&[connection(
        "rotating",
        &sandbox.base_url(),
        &format!("{{ca_file: {}, server_name: {NAME}}}", ca_file.display()),
    )])
    .await;
    let generation = || h.app.snapshot().generation;
    let first = generation();
    expect_failure(&h, "rotating", "untrusted_issuer").await;

    // The operator drops the new CA into place; the watcher reloads.
    std::fs::write(&ca_file, pki.other_ca.cert_pem()).expect("rotate");
    eventually("the watcher reloads the rotated ca_file", || {
        generation() > first
    })
    .await;
    let (status, body, _) = list(&h, "rotating").await;
    assert_eq!(status, 200, "{body}");
    assert!(sandbox.open_connections() >= 1, "a pooled session");

    // Rotating back to a CA that does not vouch for the vendor: the session pooled under the
    // old trust is not reused.
    let second = generation();
    std::fs::write(&ca_file, pki.vendor_ca.cert_pem()).expect("rotate back");
    eventually("the watcher reloads again", || generation() > second).await;
    expect_failure(&h, "rotating", "untrusted_issuer").await;
    assert_eq!(
        sandbox.calls().len(),
        1,
        "only the trusted call reached the vendor"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_closes_the_idle_sessions_of_a_connection_whose_tls_changed() {
    let pki = Pki::new();
    let changing_ca = pki.write("changing-ca.pem", &pki.vendor_ca.cert_pem());
    let steady_ca = pki.write("steady-ca.pem", &pki.vendor_ca.cert_pem());
    let changing = https_sandbox(serving(&certs::server(&pki.vendor_ca, NAME))).await;
    let steady = https_sandbox(serving(&certs::server(&pki.vendor_ca, NAME))).await;
    let h = start(&[
        connection(
            "changing",
            &changing.base_url(),
            &format!(
                "{{ca_file: {}, server_name: {NAME}}}",
                changing_ca.display()
            ),
        ),
        connection(
            "steady",
            &steady.base_url(),
            &format!("{{ca_file: {}, server_name: {NAME}}}", steady_ca.display()),
        ),
    ])
    .await;
    for connection in ["changing", "steady"] {
        let (status, body, _) = list(&h, connection).await;
        assert_eq!(status, 200, "{connection}: {body}");
    }
    assert_eq!(changing.open_connections(), 1, "pooled");
    assert_eq!(steady.open_connections(), 1, "pooled");

    // Still trusted, but a different trust store: a different pool, the old sessions closed.
    let bundle = [pki.vendor_ca.cert_pem(), pki.other_ca.cert_pem()].concat();
    std::fs::write(&changing_ca, bundle).expect("new bundle");
    let response = h
        .http
        .post(format!("{}/admin/reload", h.admin))
        .send()
        .await
        .expect("reload");
    assert_eq!(response.status(), 200);
    eventually("the changed connection's idle session is closed", || {
        changing.open_connections() == 0
    })
    .await;
    assert_eq!(
        steady.open_connections(),
        1,
        "an unchanged connection keeps its session"
    );

    let (status, body, _) = list(&h, "changing").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(changing.open_connections(), 1);
}

// ------------------------------------------------------------------------------------------
// Config checks

/// A config folder with the Libredesk routes and one connection `t.c` with `tls`.
fn config_with(dir: &Path, base_url: &str, tls: &str) -> PathBuf {
    let routes = dir.join("routes");
    std::fs::create_dir_all(&routes).expect("routes dir");
    std::fs::copy(
        repo_path("routes/libredesk.yaml"),
        routes.join("libredesk.yaml"),
    )
    .expect("routes");
    let tls = if tls.is_empty() {
        String::new()
    } else {
        format!("\n      tls: {tls}")
    };
    std::fs::write(
        dir.join("connections.yaml"),
        format!(
            "tenants:\n  t:\n    c:\n      vendor: libredesk\n      base_url: {base_url}\n      \
             credentials: {{api_key: k, api_secret: s}}\n      defaults: {{inbox_id: 1}}{tls}\n"
        ),
    )
    .expect("connections");
    let config = dir.join("switchboard.yaml");
    std::fs::write(
        &config,
        format!(
            "listen: {{api: 127.0.0.1:1, admin: 127.0.0.1:2}}\nroutes_dir: routes\n\
             connections: connections.yaml\njwt: {{algorithm: HS256, secret: {SECRET}}}\n"
        ),
    )
    .expect("config");
    config
}

#[test]
fn bad_tls_settings_are_named_by_file_key_and_reason() {
    let pki = Pki::new();
    let dir = pki.dir.path();
    let ca = pki.write("ca.pem", &pki.vendor_ca.cert_pem());
    pki.write("not-pem.pem", b"hello, I am not a certificate\n");
    let client = certs::client(&pki.client_ca, "switchboard");
    let (cert, key) = client.write(dir, "client");
    let other = certs::client(&pki.client_ca, "someone else");
    let (_, other_key) = other.write(dir, "other");
    let encrypted = pki.write(
        "encrypted.key",
        &client
            .key
            .private_key_to_pem_pkcs8_passphrase(openssl::symm::Cipher::aes_256_cbc(), b"pw")
            .expect("encrypted key"),
    );
    let https = "https://desk.example";
    let (ca, cert, key, other_key, encrypted) = (
        ca.display(),
        cert.display(),
        key.display(),
        other_key.display(),
        encrypted.display(),
    );
    let cases: Vec<(&str, String, &str, &str)> = vec![
        (
            https,
            "{ca_file: missing.pem}".into(),
            "tls.ca_file",
            "No such file",
        ),
        (
            https,
            "{ca_file: not-pem.pem}".into(),
            "tls.ca_file",
            "no PEM certificate",
        ),
        (
            https,
            "{ca_mode: add}".into(),
            "tls.ca_mode",
            "needs ca_file",
        ),
        (
            https,
            format!("{{ca_file: {ca}, ca_mode: sometimes}}"),
            "tls.ca_mode",
            "unknown variant",
        ),
        (
            https,
            format!("{{client_cert_file: {cert}}}"),
            "tls.client_key_file",
            "required with client_cert_file",
        ),
        (
            https,
            format!("{{client_key_file: {key}}}"),
            "tls.client_cert_file",
            "required with client_key_file",
        ),
        (
            https,
            format!("{{client_cert_file: {cert}, client_key_file: {other_key}}}"),
            "tls.client_key_file",
            "does not belong to the certificate",
        ),
        (
            https,
            format!("{{client_cert_file: {cert}, client_key_file: {encrypted}}}"),
            "tls.client_key_file",
            "encrypted",
        ),
        (
            https,
            format!("{{client_cert_file: {ca}, client_key_file: {ca}}}"),
            "tls.client_key_file",
            "no PEM private key",
        ),
        (
            https,
            "{min_version: \"1.1\"}".into(),
            "tls.min_version",
            "use \"1.2\" or \"1.3\"",
        ),
        (https, "{min_version: 1.0}".into(), "tls.min_version", "1.3"),
        (
            https,
            "{server_name: \"https://desk\"}".into(),
            "tls.server_name",
            "not a DNS name",
        ),
        (
            "http://desk.example",
            format!("{{ca_file: {ca}}}"),
            "tls",
            "need an https base_url",
        ),
        // No switch turns verification off.
        (
            https,
            "{verify: false}".into(),
            "tls.verify",
            "unknown field `verify`",
        ),
        (
            https,
            "{danger_accept_invalid_certs: true}".into(),
            "tls.danger_accept_invalid_certs",
            "unknown field",
        ),
    ];
    for (base_url, tls, key_suffix, reason) in cases {
        let config = config_with(dir, base_url, &tls);
        let error = Loader::new(&config, Env::default())
            .load(1)
            .err()
            .unwrap_or_else(|| panic!("tls {tls} was accepted"));
        assert!(
            error.file.ends_with("connections.yaml"),
            "{tls}: file {}",
            error.file.display()
        );
        assert_eq!(
            error.key,
            format!("tenants.t.c.{key_suffix}"),
            "{tls}: {error}"
        );
        assert!(error.reason.contains(reason), "{tls}: {error}");
        assert!(!error.to_string().contains("PRIVATE KEY"), "{error}");
    }

    // The same files, right: loads.
    let config = config_with(
        dir,
        https,
        "{ca_file: ca.pem, server_name: desk.example, client_cert_file: client.crt, \
         client_key_file: client.key, min_version: \"1.3\"}",
    );
    let snapshot = Loader::new(&config, Env::default()).load(1).expect("loads");
    let tls = &snapshot.connection("t", "c").expect("connection").tls;
    assert!(tls.client_cert_key.is_some() && tls.ca.is_some());
    assert!(snapshot.warnings.is_empty(), "{:?}", snapshot.warnings);
    // Every TLS file is watched and hashed (never shown).
    for name in ["ca.pem", "client.crt", "client.key"] {
        assert!(
            snapshot.files.iter().any(|f| f.path.ends_with(name)),
            "{name} in {:?}",
            snapshot.files
        );
    }
}

#[test]
fn switchboard_check_warns_about_expiring_certificates_and_ip_hosts() {
    let pki = Pki::new();
    let dir = pki.dir.path();
    let expired_ca = certs::leaf(&pki.vendor_ca, "old CA", certs::Usage::Server, -60, -1);
    pki.write("ca.pem", &expired_ca.cert_pem());
    let soon = certs::leaf(&pki.client_ca, "switchboard", certs::Usage::Client, -1, 10);
    soon.write(dir, "client");
    let config = config_with(
        dir,
        "https://10.1.2.3:8443",
        "{ca_file: ca.pem, client_cert_file: client.crt, client_key_file: client.key}",
    );
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .arg("check")
        .arg("--config")
        .arg(&config)
        .output()
        .expect("run switchboard check");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "warnings do not fail: {stderr}");
    for (key, words) in [
        ("tenants.t.c.tls.ca_file", "expired on"),
        ("tenants.t.c.tls.client_cert_file", "expires on"),
        ("tenants.t.c.tls.server_name", "IP address"),
    ] {
        assert!(
            stderr.lines().any(|l| l.starts_with("warning: ")
                && l.contains("connections.yaml")
                && l.contains(key)
                && l.contains(words)),
            "no warning for {key} ({words}):\n{stderr}"
        );
    }
}

#[test]
fn any_change_to_the_tls_settings_changes_the_pool_group() {
    use pingora::upstreams::peer::Peer;
    let pki = Pki::new();
    let dir = pki.dir.path();
    pki.write("a.pem", &pki.vendor_ca.cert_pem());
    pki.write("b.pem", &pki.other_ca.cert_pem());
    certs::client(&pki.client_ca, "switchboard").write(dir, "client");
    let reuse_hash = |tls: &str| {
        let config = config_with(dir, "https://desk.example", tls);
        let snapshot = Loader::new(&config, Env::default()).load(1).expect("loads");
        let connection = snapshot.connection("t", "c").expect("connection").clone();
        let addr = "127.0.0.1:443".parse().expect("addr");
        switchboard::upstream::tls::vendor_peer(addr, &connection.base_url, &connection.tls)
            .reuse_hash()
    };
    let variants = [
        "",
        "{ca_file: a.pem}",
        "{ca_file: b.pem}",
        "{ca_file: a.pem, ca_mode: add}",
        "{ca_file: a.pem, min_version: \"1.3\"}",
        "{ca_file: a.pem, server_name: other.example}",
        "{ca_file: a.pem, client_cert_file: client.crt, client_key_file: client.key}",
    ];
    let hashes: Vec<u64> = variants.iter().map(|tls| reuse_hash(tls)).collect();
    for (i, a) in hashes.iter().enumerate() {
        for (j, b) in hashes.iter().enumerate().skip(i + 1) {
            assert_ne!(a, b, "{} and {} share a pool", variants[i], variants[j]);
        }
    }
    // The same settings again: the same pool (sessions are shared, not multiplied).
    assert_eq!(reuse_hash("{ca_file: b.pem}"), hashes[2]);
}
