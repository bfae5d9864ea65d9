//! Hot reload: routes, connections and JWT settings change while the gateway serves; broken
//! files never replace a good config; nothing in flight fails.

// Runs against the vendor sandboxes: needs the `sandbox` feature (on by default).
#![cfg(feature = "sandbox")]
// Test helpers fail loudly: a broken fixture is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;
use switchboard::config::routes::{compile, RoutesFile};
use switchboard::sandbox::libredesk::seed;

fn ada_path() -> String {
    let id = switchboard::api::ids::ObjectId::new(
        switchboard::api::ids::Kind::Contact,
        "acme",
        "support",
        vec![seed::CONTACT_ADA_ID.to_string()],
    )
    .encode();
    format!("/v1/contacts/{id}")
}

async fn admin_config(h: &Harness) -> Value {
    let response = h
        .http
        .get(format!("{}/admin/config", h.admin))
        .send()
        .await
        .expect("config");
    expect_status(response, 200).await
}

async fn generation(h: &Harness) -> u64 {
    admin_config(h).await["generation"]
        .as_u64()
        .expect("generation")
}

async fn admin_reload(h: &Harness) -> (u16, Value) {
    let response = h
        .http
        .post(format!("{}/admin/reload", h.admin))
        .send()
        .await
        .expect("reload");
    let status = response.status().as_u16();
    (status, response.json().await.expect("json"))
}

/// Poll until the active generation is at least `want` (the watcher reloads asynchronously).
async fn wait_for_generation(h: &Harness, want: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while generation(h).await < want {
        assert!(Instant::now() < deadline, "no reload to generation {want}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn get_fresh(h: &Harness, path: &str) -> reqwest::Response {
    h.http
        .get(h.url(path))
        .bearer_auth(h.acme())
        .header("Cache-Control", "no-cache")
        .send()
        .await
        .expect("request")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_vendor_path_is_used_after_the_file_changes() {
    let h = Harness::start().await;
    expect_status(get_fresh(&h, &ada_path()).await, 200).await;
    assert_eq!(
        h.libredesk.calls().last().expect("call").path,
        "/api/v1/contacts/101"
    );

    // Move the vendor path in the routes file (the sandbox follows the same file).
    let moved = h
        .read("routes/libredesk.yaml")
        .replace("\"/api/v1/contacts/{id}\"", "\"/api/v1/people/{id}\"");
    let file: RoutesFile = serde_yaml::from_str(&moved).expect("yaml");
    h.libredesk
        .set_routes(Arc::new(compile(&file).expect("compile")))
        .expect("sandbox routes");
    let before = generation(&h).await;
    h.write("routes/libredesk.yaml", &moved);
    wait_for_generation(&h, before + 1).await;

    expect_status(get_fresh(&h, &ada_path()).await, 200).await;
    assert_eq!(
        h.libredesk.calls().last().expect("call").path,
        "/api/v1/people/101"
    );
    let hashes = admin_config(&h).await;
    assert!(hashes["files"]
        .as_array()
        .expect("files")
        .iter()
        .any(|f| f["path"]
            .as_str()
            .unwrap_or_default()
            .ends_with("routes/libredesk.yaml")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_credential_is_used_and_cached_answers_are_not_served_after_it() {
    let h = Harness::start().await;
    // cache Ada under the current connection config
    expect_status(h.get(&ada_path(), &h.acme()).await, 200).await;
    let hit = h.get(&ada_path(), &h.acme()).await;
    assert_eq!(hit.headers()["x-cache"], "hit");

    let original = h.read("connections.yaml");
    let rotated = original.replacen(
        &format!("credentials: {{api_key: {LD_KEY}, api_secret: {LD_SECRET}}}"),
        "credentials: {api_key: rotated-key, api_secret: rotated-secret}",
        1,
    );
    assert_ne!(rotated, original);
    h.write("connections.yaml", &rotated);
    let (status, body) = admin_reload(&h).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["restart_required"], serde_json::json!([]), "{body}");

    // The sandbox doesn't know the rotated key: the new credential is what is sent, and the
    // answer cached under the old connection config is not served.
    let response = h.get(&ada_path(), &h.acme()).await;
    expect_problem(response, 502, "vendor_auth_failed").await;

    h.write("connections.yaml", &original);
    let (status, body) = admin_reload(&h).await;
    assert_eq!(status, 200, "{body}");
    expect_status(get_fresh(&h, &ada_path()).await, 200).await;

    // The admin view shows hashes, never credentials.
    let view = admin_config(&h).await.to_string();
    assert!(
        !view.contains(LD_KEY) && !view.contains(LD_SECRET) && !view.contains("rotated"),
        "{view}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_settings_reload() {
    let h = Harness::start().await;
    let old_token = h.acme();
    expect_status(h.get("/v1/capabilities", &old_token).await, 200).await;
    let config = h
        .read("switchboard.yaml")
        .replace(SECRET, "a-brand-new-secret-0123456789");
    h.write("switchboard.yaml", &config);
    let (status, body) = admin_reload(&h).await;
    assert_eq!(status, 200, "{body}");
    expect_problem(
        h.get("/v1/capabilities", &old_token).await,
        401,
        "unauthorized",
    )
    .await;
    let new_token = switchboard::auth::mint_hs256(
        b"a-brand-new-secret-0123456789",
        "tenant",
        "acme",
        ALL_SCOPES,
        Duration::from_secs(60),
        &serde_json::json!({"aud": AUDIENCE})
            .as_object()
            .cloned()
            .unwrap_or_default(),
    )
    .expect("mint");
    expect_status(h.get("/v1/capabilities", &new_token).await, 200).await;
}

/// (file, how to break it, the key the error must name, a word the reason must contain)
fn broken_variants(h: &Harness) -> Vec<(&'static str, String, &'static str, &'static str)> {
    let routes = h.read("routes/libredesk.yaml");
    let connections = h.read("connections.yaml");
    vec![
        (
            "routes/libredesk.yaml",
            format!("{routes}\n  bad: [unclosed\n"),
            "line",
            "YAML",
        ),
        (
            "routes/libredesk.yaml",
            routes.replace("vendor: libredesk", "vendor: zendesk"),
            "vendor",
            "unknown vendor",
        ),
        (
            "routes/libredesk.yaml",
            routes.replace("\"/api/v1/contacts/{id}\"", "\"/api/v1/contacts/{member}\""),
            "operations.contacts.get.path",
            "unknown placeholder {member}",
        ),
        (
            "connections.yaml",
            connections.replacen(
                &format!("api_key: {LD_KEY}"),
                "api_key: \"${SWITCHBOARD_TEST_SURELY_UNSET_VAR}\"",
                1,
            ),
            "tenants.acme.support.credentials.api_key",
            "SWITCHBOARD_TEST_SURELY_UNSET_VAR",
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_files_never_replace_a_good_config() {
    let h = Harness::start().await;
    let metrics = |h: &Harness| {
        let request = h.http.get(format!("{}/metrics", h.admin));
        async move {
            request
                .send()
                .await
                .expect("metrics")
                .text()
                .await
                .expect("text")
        }
    };
    for (file, broken, key, reason) in broken_variants(&h) {
        let good = h.read(file);
        let generation_before = generation(&h).await;
        h.write(file, &broken);
        let (status, body) = admin_reload(&h).await;
        assert_eq!(status, 422, "{file}: {body}");
        assert!(
            body["error"]["file"]
                .as_str()
                .expect("file")
                .ends_with(file),
            "{body}"
        );
        assert!(
            body["error"]["key"].as_str().expect("key").starts_with(key),
            "{body}"
        );
        assert!(
            body["error"]["reason"]
                .as_str()
                .expect("reason")
                .contains(reason),
            "{body}"
        );
        assert!(!body.to_string().contains(LD_SECRET), "secret in {body}");

        // `switchboard check` runs the same validation and names the same file, key and reason.
        let check = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .args(["check", "--config"])
            .arg(h.dir.path().join("switchboard.yaml"))
            .output()
            .expect("check runs");
        assert!(!check.status.success(), "check accepted a broken {file}");
        let stderr = String::from_utf8_lossy(&check.stderr);
        assert!(
            stderr.contains(body["error"]["reason"].as_str().expect("reason")),
            "{stderr}"
        );
        assert!(
            stderr.contains(body["error"]["key"].as_str().expect("key")),
            "{stderr}"
        );

        // The old config keeps serving.
        expect_status(get_fresh(&h, &ada_path()).await, 200).await;
        assert_eq!(generation(&h).await, generation_before);
        h.write(file, &good);
        let (status, body) = admin_reload(&h).await;
        assert_eq!(status, 200, "{body}");
    }
    let text = metrics(&h).await;
    let failures = text
        .lines()
        .find(|l| l.starts_with("switchboard_config_reloads_total{result=\"failure\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .expect("failure counter");
    assert!(failures >= 4.0, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_reloads_under_steady_traffic_drop_nothing() {
    let h = Arc::new(Harness::start().await);
    let done = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let mut clients = Vec::new();
    for client in 0..2 {
        let (h, done, ok, failed) = (h.clone(), done.clone(), ok.clone(), failed.clone());
        clients.push(tokio::spawn(async move {
            let token = h.acme();
            let mut n = 0u64;
            while !done.load(Ordering::Relaxed) {
                n += 1;
                let request = h.http.get(h.url(&ada_path())).bearer_auth(&token);
                // alternate cached reads and reads that go to the vendor
                let request = if (n + client) % 2 == 0 {
                    request.header("Cache-Control", "no-cache")
                } else {
                    request
                };
                match request.send().await {
                    Ok(r) if r.status() == 200 => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(r) => {
                        eprintln!("failed: {} {:?}", r.status(), r.text().await);
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        eprintln!("failed: {e}");
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    let routes = h.read("routes/libredesk.yaml");
    let started = Instant::now();
    let mut reloads = 0;
    for i in 0..60u64 {
        // a real change each time: the vendor timeout moves between 2000 and 2059 ms
        h.write(
            "routes/libredesk.yaml",
            &routes.replace("timeout_ms: 2000", &format!("timeout_ms: {}", 2000 + i)),
        );
        let (status, body) = admin_reload(&h).await;
        assert_eq!(status, 200, "{body}");
        reloads += 1;
    }
    done.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.expect("client task");
    }
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    println!(
        "reload load test: {reloads} admin reloads (generation {}) in {:?}; requests ok={ok} failed={failed}",
        generation(&h).await,
        started.elapsed()
    );
    assert!(reloads >= 50);
    assert!(ok > 0);
    assert_eq!(failed, 0, "requests failed during reloads");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_that_need_a_restart_are_named_and_the_rest_applies() {
    let h = Harness::start().await;
    let config = h.read("switchboard.yaml");
    let api_line = config
        .lines()
        .find(|l| l.trim_start().starts_with("api: "))
        .expect("api line")
        .to_owned();
    let moved = config
        .replace(&api_line, &format!("  api: 127.0.0.1:{}", free_port()))
        .replace("body_limit_bytes: 65536", "body_limit_bytes: 1024");
    h.write("switchboard.yaml", &moved);
    let (status, body) = admin_reload(&h).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["restart_required"],
        serde_json::json!(["listen.api"]),
        "{body}"
    );
    // still serving on the old address, with the new body limit applied
    let big = serde_json::json!({"conversation_id": "x", "text": "y".repeat(2000)});
    let response = h
        .send(reqwest::Method::POST, "/v1/messages", &h.acme(), big)
        .await;
    expect_problem(response, 413, "payload_too_large").await;
}

async fn successful_reloads(h: &Harness) -> u64 {
    let text = h
        .http
        .get(format!("{}/metrics", h.admin))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    text.lines()
        .find_map(|l| l.strip_prefix("switchboard_config_reloads_total{result=\"success\"} "))
        .and_then(|v| v.trim().parse().ok())
        .expect("reload counter")
}

/// Only a real content change reloads: not the reload's own reads, not another program
/// reading the files (`switchboard token --config …`), not a save with the same bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_and_unchanged_saves_never_reload() {
    let h = Harness::start().await;
    let (status, body) = admin_reload(&h).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(successful_reloads(&h).await, 1);
    let files: Vec<String> = admin_config(&h).await["files"]
        .as_array()
        .expect("files")
        .iter()
        .map(|f| f["path"].as_str().expect("path").to_owned())
        .collect();
    assert!(files.len() >= 3, "{files:?}");
    for path in &files {
        let bytes = std::fs::read(path).expect("read a watched file");
        // Saved again with the same content: a modify event, no change.
        std::fs::write(path, &bytes).expect("rewrite");
    }
    // The absence of a reload is the behaviour: watch the counter for five seconds.
    let window = Instant::now() + Duration::from_secs(5);
    while Instant::now() < window {
        assert_eq!(
            successful_reloads(&h).await,
            1,
            "a reload happened though no file changed"
        );
        assert_eq!(generation(&h).await, 2);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A real change still reloads.
    let connections = h.read("connections.yaml");
    h.write("connections.yaml", &format!("{connections}\n# changed\n"));
    wait_for_generation(&h, 3).await;
    assert_eq!(successful_reloads(&h).await, 2);
}

/// `POST /admin/reload` reads files on a blocking thread: while a reload waits on a slow file
/// (a FIFO nobody writes yet), the single-threaded admin listener keeps answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reload_does_not_stall_the_admin_listener() {
    use std::sync::atomic::AtomicBool;
    let h = Harness::start().await;
    // The FIFO lives outside the watched folders, and what it finally yields is not valid
    // YAML: no snapshot ever includes it, so only reloads (one at a time) ever read it.
    let slow_dir = tempfile::tempdir().expect("tempdir");
    let fifo = slow_dir.path().join("connections.yaml");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo");
    assert!(made.success());
    let config = h.read("switchboard.yaml");
    h.write(
        "switchboard.yaml",
        &config.replace(
            "connections: connections.yaml",
            &format!("connections: {}", fifo.display()),
        ),
    );
    let admin = h.admin.clone();
    let http = h.http.clone();
    let reload = tokio::spawn(async move {
        http.post(format!("{admin}/admin/reload"))
            .send()
            .await
            .map(|r| r.status().as_u16())
    });
    // While the reload waits for the FIFO, /healthz answers (a one-second bound each).
    let quick = reqwest::Client::builder()
        .timeout(Duration::from_secs(1))
        .build()
        .expect("client");
    let mut answers = Vec::new();
    for _ in 0..10 {
        let ok = quick
            .get(format!("{}/healthz", h.admin))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200);
        answers.push(ok);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let waited = !reload.is_finished();
    // Feed the FIFO to every reader until the reload has answered.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, fifo) = (stop.clone(), fifo.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                if let Ok(mut f) = std::fs::OpenOptions::new().write(true).open(&fifo) {
                    use std::io::Write;
                    let _ = f.write_all(b"tenants: [not yaml");
                }
            }
        })
    };
    let status = reload.await.expect("task").expect("reload answered");
    h.write("switchboard.yaml", &config);
    stop.store(true, Ordering::SeqCst);
    {
        use std::os::unix::fs::OpenOptionsExt;
        // Opening the read side (non-blocking) lets a writer waiting in open() finish.
        let _reader = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(2048) // O_NONBLOCK
            .open(&fifo);
        writer.join().expect("writer");
    }
    assert!(waited, "the reload did not wait for the FIFO");
    assert!(
        answers.iter().all(|ok| *ok),
        "the admin listener stalled during a reload: {answers:?}"
    );
    assert_eq!(status, 422, "the bad file is rejected");
    assert_eq!(generation(&h).await, 1, "the old config keeps serving");
}

/// A Kubernetes ConfigMap volume: every file is a symlink through `..data`, which is swapped
/// atomically to a new timestamped folder. The swap changes no watched file's name or
/// extension, only what they resolve to — a content change, so it reloads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configmap_style_symlink_swap_reloads() {
    use std::os::unix::fs::symlink;
    let h = Harness::start().await;
    let dir = h.dir.path();
    let connections = h.read("connections.yaml");
    std::fs::create_dir(dir.join("..v1")).expect("v1");
    std::fs::write(dir.join("..v1/connections.yaml"), &connections).expect("v1 file");
    symlink("..v1", dir.join("..data")).expect("..data");
    std::fs::remove_file(dir.join("connections.yaml")).expect("rm");
    symlink("..data/connections.yaml", dir.join("connections.yaml")).expect("link");
    // Same content through the links: nothing to reload.
    let (status, _) = admin_reload(&h).await;
    assert_eq!(status, 200);
    assert_eq!(generation(&h).await, 2);

    // The new version: a connection fewer (tenant `solo` goes).
    let trimmed = connections
        .split("\n  solo:")
        .next()
        .expect("before solo")
        .to_owned()
        + "\n";
    std::fs::create_dir(dir.join("..v2")).expect("v2");
    std::fs::write(dir.join("..v2/connections.yaml"), trimmed).expect("v2 file");
    symlink("..v2", dir.join("..data_tmp")).expect("tmp link");
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).expect("swap");
    wait_for_generation(&h, 3).await;
    let solo = h
        .http
        .get(h.url("/v1/capabilities"))
        .bearer_auth(h.token("solo", ALL_SCOPES))
        .send()
        .await
        .expect("request");
    let body = expect_status(solo, 200).await;
    assert_eq!(body["data"], serde_json::json!([]), "{body}");
}
