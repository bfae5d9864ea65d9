//! The response cache: hits, TTLs, coalescing, invalidation, tenant isolation, bypass,
//! purge and the entry bound — vendor call counts read from the sandbox.

// Runs against the vendor sandboxes: needs the `sandbox` feature (on by default).
#![cfg(feature = "sandbox")]

mod common;

use std::time::Duration;

use common::*;
use reqwest::Method;
use serde_json::json;
use switchboard::sandbox::libredesk::seed;
use switchboard::sandbox::Fault;

fn contact_path(tenant: &str, id: i64) -> String {
    let id = switchboard::api::ids::ObjectId::new(
        switchboard::api::ids::Kind::Contact,
        tenant,
        "support",
        vec![id.to_string()],
    )
    .encode();
    format!("/v1/contacts/{id}")
}

fn conversation_path(uuid: &str) -> String {
    let id = switchboard::api::ids::ObjectId::new(
        switchboard::api::ids::Kind::Conversation,
        "acme",
        "support",
        vec![uuid.to_owned()],
    )
    .encode();
    format!("/v1/conversations/{id}")
}

fn header(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hit_after_a_miss_makes_no_vendor_call() {
    let h = Harness::start().await;
    let path = contact_path("acme", seed::CONTACT_ADA_ID);
    let first = h.get(&path, &h.acme()).await;
    assert_eq!(header(&first, "x-cache").as_deref(), Some("miss"));
    let first = expect_status(first, 200).await;
    let second = h.get(&path, &h.acme()).await;
    assert_eq!(header(&second, "x-cache").as_deref(), Some("hit"));
    assert!(header(&second, "age").is_some(), "a hit carries Age");
    let second = expect_status(second, 200).await;
    assert_eq!(first, second);
    assert_eq!(h.libredesk.calls_to("contacts.get"), 1);

    // include=raw is its own entry
    let raw = h.get(&format!("{path}?include=raw"), &h.acme()).await;
    assert_eq!(header(&raw, "x-cache").as_deref(), Some("miss"));
    assert!(expect_status(raw, 200).await["raw"].is_object());
    assert_eq!(h.libredesk.calls_to("contacts.get"), 2);

    let metrics = h
        .http
        .get(format!("{}/metrics", h.admin))
        .send()
        .await
        .expect("metrics");
    let text = metrics.text().await.expect("text");
    assert!(
        text.contains(
            r#"switchboard_cache_requests_total{operation="contacts.get",result="hit"} 1"#
        ),
        "{text}"
    );
    assert!(
        text.contains(
            r#"switchboard_cache_requests_total{operation="contacts.get",result="miss"} 2"#
        ),
        "{text}"
    );
}

fn one_second_contacts(name: &str, text: String) -> String {
    if name == "libredesk.yaml" {
        text.replace("contacts.get: 60", "contacts.get: 1")
    } else {
        text
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_expire_after_their_ttl() {
    let h = Harness::start_with(Options {
        routes_transform: Some(one_second_contacts),
        ..Options::default()
    })
    .await;
    let path = contact_path("acme", seed::CONTACT_ADA_ID);
    expect_status(h.get(&path, &h.acme()).await, 200).await;
    let hit = h.get(&path, &h.acme()).await;
    assert_eq!(header(&hit, "x-cache").as_deref(), Some("hit"));
    // The TTL is the behaviour under test: let it pass.
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let expired = h.get(&path, &h.acme()).await;
    assert_eq!(header(&expired, "x-cache").as_deref(), Some("miss"));
    assert_eq!(h.libredesk.calls_to("contacts.get"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_misses_make_one_vendor_call() {
    let h = Harness::start().await;
    let path = contact_path("acme", seed::CONTACT_CHARLES_ID);
    // Slow the vendor so all requests arrive while the first is still in flight.
    h.libredesk
        .inject(Fault::Latency(Duration::from_millis(300)), None);
    let token = h.acme();
    let requests = (0..8).map(|_| h.get(&path, &token));
    let responses = futures::future::join_all(requests).await;
    h.libredesk.clear_faults();
    let mut misses = 0;
    for response in responses {
        if header(&response, "x-cache").as_deref() == Some("miss") {
            misses += 1;
        }
        expect_status(response, 200).await;
    }
    assert_eq!(misses, 1);
    assert_eq!(h.libredesk.calls_to("contacts.get"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_invalidate_what_they_changed() {
    let h = Harness::start().await;
    let path = conversation_path(seed::CONVERSATION_OPEN_UUID);
    let before = expect_status(h.get(&path, &h.acme()).await, 200).await;
    assert_eq!(before["status"], "open");
    let hit = h.get(&path, &h.acme()).await;
    assert_eq!(header(&hit, "x-cache").as_deref(), Some("hit"));
    let patched = h
        .send(
            Method::PATCH,
            &path,
            &h.acme(),
            json!({"status": "resolved"}),
        )
        .await;
    expect_status(patched, 200).await;
    let after = h.get(&path, &h.acme()).await;
    assert_eq!(header(&after, "x-cache").as_deref(), Some("miss"));
    assert_eq!(expect_status(after, 200).await["status"], "resolved");

    // a contact update invalidates the contact
    let contact = contact_path("acme", seed::CONTACT_ADA_ID);
    expect_status(h.get(&contact, &h.acme()).await, 200).await;
    let updated = h
        .send(
            Method::PATCH,
            &contact,
            &h.acme(),
            json!({"last_name": "Byron"}),
        )
        .await;
    expect_status(updated, 200).await;
    let reread = h.get(&contact, &h.acme()).await;
    assert_eq!(header(&reread, "x-cache").as_deref(), Some("miss"));
    assert_eq!(expect_status(reread, 200).await["last_name"], "Byron");

    // sending a message invalidates its conversation (last_message_at moves)
    expect_status(h.get(&path, &h.acme()).await, 200).await;
    let conversation_id = before["id"].as_str().expect("id");
    let sent = h
        .send(
            Method::POST,
            "/v1/messages",
            &h.acme(),
            json!({"conversation_id": conversation_id, "text": "hi"}),
        )
        .await;
    expect_status(sent, 201).await;
    let after_send = h.get(&path, &h.acme()).await;
    assert_eq!(header(&after_send, "x-cache").as_deref(), Some("miss"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_is_never_served_to_another_tenant() {
    let h = Harness::start().await;
    // Both tenants have a connection named `support` on the same vendor account.
    let ours = h
        .get(&contact_path("acme", seed::CONTACT_ADA_ID), &h.acme())
        .await;
    expect_status(ours, 200).await;
    let theirs = h
        .get(
            &contact_path("other", seed::CONTACT_ADA_ID),
            &h.token("other", ALL_SCOPES),
        )
        .await;
    assert_eq!(header(&theirs, "x-cache").as_deref(), Some("miss"));
    let body = expect_status(theirs, 200).await;
    assert!(
        body["id"].as_str().expect("id")
            != contact_path("acme", seed::CONTACT_ADA_ID).trim_start_matches("/v1/contacts/")
    );
    assert_eq!(h.libredesk.calls_to("contacts.get"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_cache_bypasses_and_refreshes() {
    let h = Harness::start().await;
    let path = contact_path("acme", seed::CONTACT_ADA_ID);
    expect_status(h.get(&path, &h.acme()).await, 200).await;
    let bypass = h
        .http
        .get(h.url(&path))
        .bearer_auth(h.acme())
        .header("Cache-Control", "no-cache")
        .send()
        .await
        .expect("request");
    assert_eq!(header(&bypass, "x-cache").as_deref(), Some("bypass"));
    expect_status(bypass, 200).await;
    assert_eq!(h.libredesk.calls_to("contacts.get"), 2);
    let hit = h.get(&path, &h.acme()).await;
    assert_eq!(header(&hit, "x-cache").as_deref(), Some("hit"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_not_cached_but_vendor_404s_are_briefly() {
    let h = Harness::start().await;
    let path = contact_path("acme", seed::CONTACT_ADA_ID);
    h.libredesk.inject(Fault::Status(500), Some(1));
    expect_problem(h.get(&path, &h.acme()).await, 502, "vendor_error").await;
    let retry = h.get(&path, &h.acme()).await;
    assert_eq!(header(&retry, "x-cache").as_deref(), Some("miss"));
    expect_status(retry, 200).await;

    // negative_cache_seconds: 5 in routes/libredesk.yaml
    let missing = contact_path("acme", 987_654);
    expect_problem(h.get(&missing, &h.acme()).await, 404, "not_found").await;
    let again = h.get(&missing, &h.acme()).await;
    assert_eq!(header(&again, "x-cache").as_deref(), Some("hit"));
    expect_problem(again, 404, "not_found").await;
    assert_eq!(h.libredesk.calls_to("contacts.get"), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_purge_drops_all_one_connection_or_one_id() {
    let h = Harness::start().await;
    let ada = contact_path("acme", seed::CONTACT_ADA_ID);
    let charles = contact_path("acme", seed::CONTACT_CHARLES_ID);
    let purge = |body: serde_json::Value| {
        let request = h
            .http
            .post(format!("{}/admin/cache/purge", h.admin))
            .json(&body);
        async move { expect_status(request.send().await.expect("purge"), 200).await }
    };
    let x_cache = |path: String| {
        let request = h.http.get(h.url(&path)).bearer_auth(h.acme());
        async move { header(&request.send().await.expect("get"), "x-cache") }
    };
    x_cache(ada.clone()).await;
    x_cache(charles.clone()).await;
    let ada_id = ada.trim_start_matches("/v1/contacts/").to_owned();
    purge(json!({"id": ada_id})).await;
    assert_eq!(x_cache(ada.clone()).await.as_deref(), Some("miss"));
    assert_eq!(x_cache(charles.clone()).await.as_deref(), Some("hit"));

    purge(json!({"tenant": "acme", "connection": "support"})).await;
    assert_eq!(x_cache(charles.clone()).await.as_deref(), Some("miss"));

    purge(json!({})).await;
    assert_eq!(x_cache(ada.clone()).await.as_deref(), Some("miss"));

    let bad = h
        .http
        .post(format!("{}/admin/cache/purge", h.admin))
        .json(&json!({"tenant": "acme"}))
        .send()
        .await
        .expect("purge");
    assert_eq!(bad.status(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_entry_bound_is_kept() {
    let h = Harness::start_with(Options {
        cache_max_entries: 3,
        ..Options::default()
    })
    .await;
    for offset in 0..8 {
        let path = contact_path("acme", seed::FIRST_CONTACT_ID + offset);
        expect_status(h.get(&path, &h.acme()).await, 200).await;
    }
    h.app.cache.sync().await;
    let entries = h.app.cache.entry_count();
    assert!(entries <= 3, "{entries} entries in a cache bounded to 3");
    assert!(entries >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookups_by_email_and_handle_are_cached_and_invalidated_by_a_contact_write() {
    use switchboard::api::operation::Vendor;
    use switchboard::sandbox::{caac, llamadapro};
    let h = Harness::start().await;

    // LlamadaPro: lookup by email
    let email = format!(
        "/v1/contacts?email={}",
        llamadapro::seed::CONTACT_VALENTINA_EMAIL
    );
    let first = h.get_on("llamadapro", &email).await;
    assert_eq!(header(&first, "x-cache").as_deref(), Some("miss"));
    let found = expect_status(first, 200).await;
    let contact_id = found["data"][0]["id"].as_str().expect("found").to_owned();
    let second = h.get_on("llamadapro", &email).await;
    assert_eq!(header(&second, "x-cache").as_deref(), Some("hit"));
    let sandbox = h.sandbox(Vendor::LlamadaPro).expect("llamadapro sandbox");
    let calls = sandbox.call_count();
    // a contact update through the gateway drops the lookups of that connection
    let updated = h
        .send_on(
            "llamadapro",
            Method::PATCH,
            &format!("/v1/contacts/{contact_id}"),
            json!({"last_name": "Rojas"}),
        )
        .await;
    expect_status(updated, 200).await;
    assert!(sandbox.call_count() > calls);
    let after = h.get_on("llamadapro", &email).await;
    assert_eq!(header(&after, "x-cache").as_deref(), Some("miss"));
    assert_eq!(
        expect_status(after, 200).await["data"][0]["last_name"],
        "Rojas"
    );

    // CAAC: lookup by LINE handle
    let handle = format!(
        "/v1/contacts?handle=line:{}",
        caac::seed::MEMBER_WEITING_UID
    );
    let caac_sandbox = h.sandbox(Vendor::Caac).expect("caac sandbox");
    expect_status(h.get_on("caac", &handle).await, 200).await;
    let before = caac_sandbox.call_count();
    let hit = h.get_on("caac", &handle).await;
    assert_eq!(header(&hit, "x-cache").as_deref(), Some("hit"));
    expect_status(hit, 200).await;
    assert_eq!(
        caac_sandbox.call_count(),
        before,
        "a cached lookup calls no vendor"
    );
}
