//! Resilience at the vendor edge (issue 13), through real gateways in front of the Libredesk
//! sandbox with injected faults: idempotency keys (sequential, concurrent, a different body,
//! a 5xx releasing the key), the circuit breaker (opens, refuses without a vendor call,
//! half-opens, closes), the vendor-429 pause, the vendor budget under a 10× client, retried
//! reads and never-retried POSTs, tenant limits with their headers, and the demo's fault
//! endpoint. Vendor calls are counted by the sandbox itself.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;
use switchboard::sandbox::Fault;

use crate::harness::*;

/// The harness with the shipped vendor-edge defaults (the harness switches them off).
fn edge_on() -> Options {
    Options {
        vendor_edge: String::new(),
        ..Options::default()
    }
}

/// A conversation of the Libredesk sandbox, by its gateway ID.
async fn conversation(h: &Harness) -> String {
    let list = h.get_json("/v1/conversations?limit=1", 200).await;
    list["data"][0]["id"].as_str().expect("id").to_owned()
}

/// `POST /v1/messages` on `support` with an `Idempotency-Key`.
async fn send_with_key(h: &Harness, key: &str, body: &serde_json::Value) -> reqwest::Response {
    h.http
        .post(h.url("/v1/messages"))
        .bearer_auth(h.acme())
        .header("X-Connection", "support")
        .header("Idempotency-Key", key)
        .json(body)
        .send()
        .await
        .expect("request")
}

/// A value of the gateway's `/metrics` (a sample line starting with `series`).
async fn metric(h: &Harness, series: &str) -> f64 {
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
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Rewrite the Libredesk routes file with extra top-level keys (vendor-edge defaults).
fn libredesk_with(extra: &'static str) -> impl Fn(&str, String) -> String {
    move |name, text| {
        if name == "libredesk.yaml" {
            format!("{text}\n{extra}\n")
        } else {
            text
        }
    }
}

macro_rules! routes_with {
    ($extra:expr) => {{
        fn transform(name: &str, text: String) -> String {
            libredesk_with($extra)(name, text)
        }
        transform as fn(&str, String) -> String
    }};
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_repeated_with_one_key_reaches_the_vendor_once_and_replays() {
    let h = Harness::start_with(edge_on()).await;
    let cid = conversation(&h).await;
    let body = json!({"conversation_id": cid, "text": "exactly once"});
    let before = h.libredesk.calls_to("messages.send");
    let first = send_with_key(&h, "order-42", &body).await;
    assert_eq!(first.status(), 201);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first_body: serde_json::Value = first.json().await.expect("json");
    let again = send_with_key(&h, "order-42", &body).await;
    assert_eq!(again.status(), 201);
    assert_eq!(
        again
            .headers()
            .get("idempotent-replayed")
            .map(|v| v.as_bytes()),
        Some(&b"true"[..])
    );
    assert!(again.headers().get("x-request-id").is_some());
    let again_body: serde_json::Value = again.json().await.expect("json");
    assert_eq!(first_body, again_body, "the first answer, replayed");
    assert_eq!(h.libredesk.calls_to("messages.send") - before, 1);

    // The same key with another body: 422, and still no second vendor call.
    let other = json!({"conversation_id": cid, "text": "something else"});
    let reused = send_with_key(&h, "order-42", &other).await;
    expect_problem(reused, 422, "idempotency_key_reused").await;
    assert_eq!(h.libredesk.calls_to("messages.send") - before, 1);

    // Keys are per tenant: another key sends again.
    let fresh = send_with_key(&h, "order-43", &body).await;
    assert_eq!(fresh.status(), 201);
    assert_eq!(h.libredesk.calls_to("messages.send") - before, 2);

    // A malformed key is refused before anything runs.
    let bad = send_with_key(&h, "two words", &body).await;
    expect_problem(bad, 400, "invalid_request").await;
    assert_eq!(h.libredesk.calls_to("messages.send") - before, 2);
    assert_eq!(
        metric(
            &h,
            "switchboard_idempotency_requests_total{operation=\"messages.send\",result=\"replayed\"}"
        )
        .await,
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_posts_with_one_key_reach_the_vendor_once() {
    let h = Harness::start_with(edge_on()).await;
    let cid = conversation(&h).await;
    let body = json!({"conversation_id": cid, "text": "once, even in a race"});
    let before = h.libredesk.calls_to("messages.send");
    // The first call stays in flight long enough for the others to meet it.
    h.libredesk
        .inject(Fault::Latency(Duration::from_millis(500)), Some(1));
    let sends = (0..8).map(|_| send_with_key(&h, "race-1", &body));
    let answers = futures::future::join_all(sends).await;
    let mut statuses = Vec::new();
    for answer in answers {
        let status = answer.status().as_u16();
        if status == 409 {
            assert!(answer.headers().get("retry-after").is_some());
            expect_problem(answer, 409, "idempotency_in_progress").await;
        }
        statuses.push(status);
    }
    assert_eq!(
        h.libredesk.calls_to("messages.send") - before,
        1,
        "{statuses:?}"
    );
    assert!(statuses.contains(&201), "{statuses:?}");
    assert!(
        statuses.iter().all(|s| *s == 201 || *s == 409),
        "{statuses:?}"
    );
    // Once the first has finished, the key replays.
    let replay = send_with_key(&h, "race-1", &body).await;
    assert_eq!(replay.status(), 201);
    assert!(replay.headers().get("idempotent-replayed").is_some());
    assert_eq!(h.libredesk.calls_to("messages.send") - before, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_5xx_releases_the_key_so_the_client_may_retry() {
    let h = Harness::start_with(edge_on()).await;
    let cid = conversation(&h).await;
    let body = json!({"conversation_id": cid, "text": "retry me"});
    let before = h.libredesk.calls_to("messages.send");
    h.libredesk.inject(Fault::Status(500), Some(1));
    let failed = send_with_key(&h, "k-5xx", &body).await;
    expect_problem(failed, 502, "vendor_error").await;
    assert_eq!(
        h.libredesk.calls_to("messages.send") - before,
        1,
        "a POST that reached the vendor is not resent"
    );
    let retried = send_with_key(&h, "k-5xx", &body).await;
    assert_eq!(retried.status(), 201);
    assert!(retried.headers().get("idempotent-replayed").is_none());
    assert_eq!(h.libredesk.calls_to("messages.send") - before, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_is_not_resent_after_a_timeout_but_a_read_is_retried_after_a_reset() {
    fn short_send(name: &str, text: String) -> String {
        if name == "libredesk.yaml" {
            text.replace("timeout_ms: 15000", "timeout_ms: 300")
        } else {
            text
        }
    }
    let h = Harness::start_with(Options {
        routes_transform: Some(short_send),
        ..edge_on()
    })
    .await;
    // The very first call of this gateway meets the reset on a fresh connection (the pooled
    // client's own resend of a stale pooled connection cannot be what retries it).
    h.libredesk.inject(Fault::Reset, Some(1));
    let before = h.libredesk.call_count();
    let list = h.get_json("/v1/conversations?limit=1", 200).await;
    assert_eq!(h.libredesk.call_count() - before, 2, "one reset, one retry");
    assert_eq!(
        metric(
            &h,
            "switchboard_vendor_retries_total{operation=\"conversations.list\",reason=\"reset\",vendor=\"libredesk\"}"
        )
        .await,
        1.0
    );
    let cid = list["data"][0]["id"].as_str().expect("id").to_owned();

    let sends = h.libredesk.calls_to("messages.send");
    h.libredesk
        .inject(Fault::Latency(Duration::from_millis(1_000)), Some(1));
    let timed_out = h
        .send(
            Method::POST,
            "/v1/messages",
            &h.acme(),
            json!({"conversation_id": cid, "text": "maybe sent"}),
        )
        .await;
    expect_problem(timed_out, 504, "vendor_timeout").await;
    // The edge returns only after its retries: had it resent, the sandbox would have seen it.
    assert_eq!(h.libredesk.calls_to("messages.send") - sends, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_breaker_opens_refuses_without_a_vendor_call_then_half_opens_and_closes() {
    let h = Harness::start_with(Options {
        routes_transform: Some(routes_with!(
            "retry: {enabled: false}\ncircuit_breaker: {consecutive_failures: 3, open_seconds: 1}"
        )),
        ..edge_on()
    })
    .await;
    h.libredesk.inject(Fault::Status(503), None);
    let before = h.libredesk.call_count();
    for _ in 0..3 {
        let r = h.get_on("support", "/v1/conversations?limit=1").await;
        expect_problem(r, 502, "vendor_error").await;
    }
    assert_eq!(h.libredesk.call_count() - before, 3);
    let open = h.get_on("support", "/v1/conversations?limit=1").await;
    let retry_after: u64 = open.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=1).contains(&retry_after), "{retry_after}");
    let problem = expect_problem(open, 503, "vendor_unavailable").await;
    assert_eq!(problem["retry_after"], 1);
    assert_eq!(
        h.libredesk.call_count() - before,
        3,
        "no vendor call while open"
    );
    // Only this connection's circuit: another connection on the same sandbox still calls.
    let other_tenant = h
        .http
        .get(h.url("/v1/conversations?limit=1"))
        .bearer_auth(h.token("other", ALL_SCOPES))
        .send()
        .await
        .unwrap();
    expect_problem(other_tenant, 502, "vendor_error").await;
    assert_eq!(h.libredesk.call_count() - before, 4);
    assert_eq!(
        metric(
            &h,
            "switchboard_circuit_breakers{state=\"open\",vendor=\"libredesk\"}"
        )
        .await,
        1.0
    );

    // The vendor recovers; after open_seconds one probe goes through and closes the circuit.
    h.libredesk.clear_faults();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = h.get_on("support", "/v1/conversations?limit=1").await;
        if r.status() == 200 {
            break;
        }
        expect_problem(r, 503, "vendor_unavailable").await;
        assert!(Instant::now() < deadline, "the circuit never closed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        h.libredesk.call_count() - before,
        5,
        "exactly one probe, no call while it was still open"
    );
    let r = h.get_on("support", "/v1/conversations?limit=1").await;
    assert_eq!(r.status(), 200, "closed again");
    for to in ["open", "half_open", "closed"] {
        assert_eq!(
            metric(
                &h,
                &format!(
                    "switchboard_circuit_transitions_total{{to=\"{to}\",vendor=\"libredesk\"}}"
                )
            )
            .await,
            1.0,
            "{to}"
        );
    }
    let circuits: serde_json::Value = h
        .http
        .get(format!("{}/admin/circuits", h.admin))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(circuits["data"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["tenant"] == "acme" && c["connection"] == "support" && c["state"] == "closed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vendor_429_with_retry_after_2_stops_every_call_of_the_connection_for_2_s() {
    let h = Harness::start_with(edge_on()).await;
    let cid = conversation(&h).await;
    h.libredesk.inject(
        Fault::RateLimit {
            retry_after_secs: 2,
        },
        Some(1),
    );
    let before = h.libredesk.call_count();
    let started = Instant::now();
    let limited = h.get_on("support", "/v1/conversations?limit=1").await;
    expect_problem(limited, 429, "vendor_rate_limited").await;
    assert_eq!(h.libredesk.call_count() - before, 1);
    // Reads and writes alike are answered without a call while the pause lasts.
    let paused = h
        .send(
            Method::POST,
            "/v1/messages",
            &h.acme(),
            json!({"conversation_id": cid, "text": "later"}),
        )
        .await;
    assert!(paused.headers().get("retry-after").is_some());
    expect_problem(paused, 429, "vendor_rate_limited").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = h.get_on("support", "/v1/conversations?limit=1").await;
        if r.status() == 200 {
            break;
        }
        expect_problem(r, 429, "vendor_rate_limited").await;
        assert_eq!(
            h.libredesk.call_count() - before,
            1,
            "a call was sent during the pause"
        );
        assert!(Instant::now() < deadline, "the pause never ended");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "vendor 429 with Retry-After: 2 -> first vendor call again after {:?}, none before",
        started.elapsed()
    );
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "the pause ended after {:?}",
        started.elapsed()
    );
    assert_eq!(
        metric(&h, "switchboard_vendor_pauses_total{vendor=\"libredesk\"}").await,
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vendor_budget_of_5_rps_holds_under_a_50_rps_client() {
    let h = Harness::start_with(Options {
        routes_transform: Some(routes_with!(
            "vendor_budget: {requests_per_second: 5, burst: 5, max_wait_ms: 100}"
        )),
        ..edge_on()
    })
    .await;
    let before = h.libredesk.call_count();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..50u64 {
        let http = h.http.clone();
        let url = h.url("/v1/conversations?limit=1");
        let token = h.acme();
        let at = started + Duration::from_millis(20 * i);
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until(at.into()).await;
            let r = http
                .get(url)
                .bearer_auth(token)
                .header("X-Connection", "support")
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let code = if status == 429 {
                let body: serde_json::Value = r.json().await.unwrap();
                body["code"].as_str().unwrap().to_owned()
            } else {
                String::new()
            };
            (status, code)
        }));
    }
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.unwrap());
    }
    let elapsed = started.elapsed().as_secs_f64();
    let calls = h.libredesk.call_count() - before;
    let ok = answers.iter().filter(|(s, _)| *s == 200).count();
    let refused = answers
        .iter()
        .filter(|(s, c)| *s == 429 && c == "vendor_rate_limited")
        .count();
    println!(
        "vendor budget 5 rps, burst 5: 50 requests in {elapsed:.2} s -> {calls} vendor calls, \
         {refused} refused with 429 vendor_rate_limited"
    );
    assert_eq!(ok + refused, 50, "{answers:?}");
    assert_eq!(ok, calls, "every success is one vendor call");
    // burst 5, then 5 per second over the run.
    let allowed = 5.0 + 5.0 * elapsed + 1.0;
    assert!(
        (calls as f64) <= allowed,
        "{calls} vendor calls in {elapsed:.2} s (allowed {allowed:.1})"
    );
    assert!(refused >= 30, "{refused} refused");
    assert!(
        metric(
            &h,
            "switchboard_vendor_calls_refused_total{reason=\"budget_exhausted\",vendor=\"libredesk\"}"
        )
        .await
            >= refused as f64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_over_its_limit_gets_429_with_headers_while_another_is_unaffected() {
    let h = Harness::start_with(Options {
        extra_connections: "rate_limits:\n  acme: {requests_per_second: 0.5, burst: 3}\n"
            .to_owned(),
        ..edge_on()
    })
    .await;
    let capabilities = |token: String| {
        let http = h.http.clone();
        let url = h.url("/v1/capabilities");
        async move { http.get(url).bearer_auth(token).send().await.unwrap() }
    };
    for remaining in [2, 1, 0] {
        let r = capabilities(h.acme()).await;
        assert_eq!(r.status(), 200);
        assert_eq!(
            r.headers()["ratelimit-policy"].to_str().unwrap(),
            "\"tenant\";q=3;w=6"
        );
        let ratelimit = r.headers()["ratelimit"].to_str().unwrap().to_owned();
        assert!(
            ratelimit.starts_with(&format!("\"tenant\";r={remaining};t=")),
            "{ratelimit}"
        );
    }
    let refused = capabilities(h.acme()).await;
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    assert!(refused.headers()["ratelimit"]
        .to_str()
        .unwrap()
        .starts_with("\"tenant\";r=0;"));
    assert!(refused.headers().get("ratelimit-policy").is_some());
    expect_problem(refused, 429, "rate_limited").await;
    // A vendor call is refused too, before anything reaches the vendor.
    let before = h.libredesk.call_count();
    let r = h.get_on("support", "/v1/conversations?limit=1").await;
    expect_problem(r, 429, "rate_limited").await;
    assert_eq!(h.libredesk.call_count(), before);

    let other = capabilities(h.token("other", ALL_SCOPES)).await;
    assert_eq!(other.status(), 200);
    assert!(
        other.headers().get("ratelimit").is_none(),
        "tenant other has no limit"
    );
    assert_eq!(
        metric(
            &h,
            "switchboard_rate_limited_total{operation=\"capabilities\"}"
        )
        .await,
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_are_validated_and_reloaded() {
    let h = Harness::start_with(edge_on()).await;
    let connections = h.read("connections.yaml");
    // A limit for a tenant that does not exist is a named error; the old config serves on.
    h.write(
        "connections.yaml",
        &format!("{connections}rate_limits:\n  acme: {{requests_per_second: 1}}\n  acmee: {{requests_per_second: 1}}\n"),
    );
    let err = h.app.reload("test").unwrap_err();
    assert_eq!(err.key, "rate_limits.acmee");
    assert!(err.reason.contains("no such tenant"), "{}", err.reason);
    h.write(
        "connections.yaml",
        &format!("{connections}rate_limits:\n  acme: {{requests_per_second: 0}}\n"),
    );
    let err = h.app.reload("test").unwrap_err();
    assert_eq!(err.key, "rate_limits.acme.requests_per_second");
    h.write(
        "connections.yaml",
        &connections.replace(
            "      defaults: {inbox_id: 1}\n    badcreds:",
            "      defaults: {inbox_id: 1}\n      circuit_breaker: {open_secs: 5}\n    badcreds:",
        ),
    );
    let err = h.app.reload("test").unwrap_err();
    assert_eq!(err.key, "tenants.acme.support.circuit_breaker.open_secs");
    // A valid limit applies on reload.
    h.write(
        "connections.yaml",
        &format!("{connections}rate_limits:\n  acme: {{requests_per_second: 1, burst: 1}}\n"),
    );
    h.app.reload("test").unwrap();
    let first = h.get("/v1/capabilities", &h.acme()).await;
    assert_eq!(first.status(), 200);
    let second = h.get("/v1/capabilities", &h.acme()).await;
    expect_problem(second, 429, "rate_limited").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_injection_is_refused_outside_demo_mode() {
    let h = Harness::start_with(edge_on()).await;
    let r = h
        .http
        .post(format!("{}/admin/sandbox/faults", h.admin))
        .json(&json!({"connection": "support", "fault": "reset", "count": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert!(h.libredesk.active_faults().is_empty());
}

/// The demo process, killed when the test ends.
struct DemoProcess(std::process::Child);

impl Drop for DemoProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_injects_faults_that_open_the_circuit_and_clears_them() {
    use std::io::BufRead;
    let [api, admin] = free_ports();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .current_dir(repo_path(""))
        .args([
            "demo",
            "--api",
            &format!("127.0.0.1:{api}"),
            "--admin",
            &format!("127.0.0.1:{admin}"),
        ])
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("demo starts");
    let stdout = child.stdout.take().expect("stdout");
    let _demo = DemoProcess(child);
    let token = tokio::task::spawn_blocking(move || {
        std::io::BufReader::new(stdout)
            .lines()
            .map(|l| l.expect("line"))
            .find_map(|l| l.strip_prefix("export TOKEN=").map(str::to_owned))
            .expect("token line")
    })
    .await
    .unwrap();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let faults = format!("http://127.0.0.1:{admin}/admin/sandbox/faults");
    let list = format!("http://127.0.0.1:{api}/v1/conversations?limit=1");
    let get = || {
        http.get(&list)
            .bearer_auth(&token)
            .header("X-Connection", "libredesk")
            .send()
    };
    // Both listeners up, and the sandboxes registered (a call succeeds).
    let deadline = Instant::now() + Duration::from_secs(20);
    while !matches!(get().await, Ok(r) if r.status() == 200) {
        assert!(Instant::now() < deadline, "demo did not become ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let bad = http
        .post(&faults)
        .json(&json!({"connection": "libredesk", "fault": "explode"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let injected = http
        .post(&faults)
        .json(&json!({"connection": "libredesk", "fault": "status", "status": 503, "count": 3}))
        .send()
        .await
        .unwrap();
    assert_eq!(injected.status(), 201);
    let injected: serde_json::Value = injected.json().await.unwrap();
    assert_eq!(injected["faults"][0]["status"], 503);
    assert_eq!(injected["faults"][0]["remaining"], 3);
    let calls_before = injected["vendor_calls"].as_u64().unwrap();
    // One read, retried twice, meets all three 503s: the demo circuit (3 failures) opens.
    let failed = get().await.unwrap();
    expect_problem(failed, 502, "vendor_error").await;
    let open = get().await.unwrap();
    assert!(open.headers().get("retry-after").is_some());
    expect_problem(open, 503, "vendor_unavailable").await;
    let cleared = http
        .delete(&faults)
        .json(&json!({"connection": "libredesk"}))
        .send()
        .await
        .unwrap();
    assert_eq!(cleared.status(), 200);
    let cleared: serde_json::Value = cleared.json().await.unwrap();
    assert_eq!(cleared["faults"], json!([]));
    assert_eq!(
        cleared["vendor_calls"].as_u64().unwrap() - calls_before,
        3,
        "three attempts, then nothing while the circuit is open"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_read_with_stale_if_error_is_served_stale_while_the_vendor_fails() {
    fn stale_contacts(name: &str, text: String) -> String {
        if name != "libredesk.yaml" {
            return text;
        }
        let text = text.replace("  contacts.get: 60", "  contacts.get: 1");
        format!(
            "{}\nstale_if_error:\n  contacts.get: 300\n",
            text.trim_end()
        )
    }
    let h = Harness::start_with(Options {
        routes_transform: Some(stale_contacts),
        ..edge_on()
    })
    .await;
    let list = h.get_json("/v1/contacts?limit=1", 200).await;
    let path = format!("/v1/contacts/{}", list["data"][0]["id"].as_str().unwrap());
    let first = h.get(&path, &h.acme()).await;
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["x-cache"], "miss");
    let first: serde_json::Value = first.json().await.unwrap();

    h.libredesk.inject(Fault::Status(503), None);
    // Fresh for 1 s (hits), then past its TTL: the vendor fails, the old entry answers.
    let deadline = Instant::now() + Duration::from_secs(10);
    let stale = loop {
        let r = h.get(&path, &h.acme()).await;
        assert_eq!(r.status(), 200, "a cached read never fails here");
        if r.headers()["x-cache"] == "stale" {
            break r;
        }
        assert_eq!(r.headers()["x-cache"], "hit");
        assert!(Instant::now() < deadline, "never served stale");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let age: u64 = stale.headers()["age"].to_str().unwrap().parse().unwrap();
    assert!(age >= 1, "Age {age}");
    assert_eq!(stale.json::<serde_json::Value>().await.unwrap(), first);
    // The failures open the circuit; the stale entry keeps answering without a vendor call.
    for _ in 0..3 {
        let r = h.get(&path, &h.acme()).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["x-cache"], "stale");
    }
    let circuits: serde_json::Value = h
        .http
        .get(format!("{}/admin/circuits", h.admin))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(circuits["data"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["connection"] == "support" && c["state"] == "open"));
    // A read whose route sets no stale_if_error fails as usual.
    let r = h.get_on("support", "/v1/contacts?limit=1").await;
    expect_problem(r, 503, "vendor_unavailable").await;
}
