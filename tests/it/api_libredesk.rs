//! The normalized API served end to end over the Libredesk sandbox: every operation, and every
//! error code reachable with Libredesk.

use crate::harness::*;
use reqwest::Method;
use serde_json::json;
use switchboard::sandbox::Fault;

/// The harness options of this suite. The file runs twice: as `it::api_libredesk`, and as
/// `it::api_libredesk_tls::over_https` with the Libredesk sandbox behind HTTPS.
pub fn options() -> Options {
    Options {
        libredesk_tls: module_path!().ends_with("::over_https"),
        ..Options::default()
    }
}

async fn first_id(h: &Harness, path: &str) -> String {
    let page = h.get_json(path, 200).await;
    page["data"][0]["id"].as_str().expect("an id").to_owned()
}

fn assert_same_keys(object: &serde_json::Value, keys: &[&str]) {
    for key in keys {
        assert!(object.get(*key).is_some(), "missing `{key}` in {object}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contacts_list_get_search_and_paginate() {
    let h = Harness::start_with(options()).await;
    let page1 = h.get_json("/v1/contacts?limit=2", 200).await;
    let data = page1["data"].as_array().expect("data");
    assert_eq!(data.len(), 2);
    for c in data {
        assert_same_keys(c, CONTACT_KEYS);
        assert_eq!(c["vendor"], "libredesk");
        assert_eq!(c["connection"], "support");
        assert!(c.get("raw").is_none(), "raw only on request");
    }
    let cursor = page1["next_cursor"].as_str().expect("a next page");
    let page2 = h
        .get_json(&format!("/v1/contacts?limit=2&cursor={cursor}"), 200)
        .await;
    let ids1: Vec<_> = data.iter().map(|c| c["id"].clone()).collect();
    for c in page2["data"].as_array().expect("data") {
        assert!(!ids1.contains(&c["id"]), "page 2 repeats page 1");
    }
    // the vendor saw page=2
    assert!(h.libredesk.calls().iter().any(|c| c
        .query
        .as_deref()
        .unwrap_or_default()
        .contains("page=2")));

    let id = data[0]["id"].as_str().expect("id");
    let one = h.get_json(&format!("/v1/contacts/{id}"), 200).await;
    assert_eq!(one["id"], id);
    assert_same_keys(&one, CONTACT_KEYS);

    let name = one["first_name"].as_str().expect("first name").to_owned();
    let found = h
        .get_json(
            &format!("/v1/contacts?q={}", &name[..3.min(name.len())]),
            200,
        )
        .await;
    assert!(found["data"]
        .as_array()
        .expect("data")
        .iter()
        .any(|c| c["id"] == id));
    assert_eq!(h.libredesk.calls_to("contacts.search"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contact_update_merges_over_the_full_replace() {
    let h = Harness::start_with(options()).await;
    let id = first_id(&h, "/v1/contacts?limit=1").await;
    let before = h.get_json(&format!("/v1/contacts/{id}"), 200).await;
    let response = h
        .send(
            Method::PATCH,
            &format!("/v1/contacts/{id}"),
            &h.acme(),
            json!({"last_name": "Merged"}),
        )
        .await;
    let after = expect_status(response, 200).await;
    assert_eq!(after["last_name"], "Merged");
    // Everything not in the patch survives the vendor's full replace.
    for key in ["first_name", "emails", "phones", "avatar_url"] {
        assert_eq!(after[key], before[key], "{key} changed");
    }
    assert_eq!(h.libredesk.calls_to("contacts.update"), 1);
    let put = h
        .libredesk
        .calls()
        .into_iter()
        .find(|c| c.endpoint.as_deref() == Some("contacts.update"))
        .expect("PUT");
    assert!(put
        .content_type
        .unwrap_or_default()
        .starts_with("multipart/form-data"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contact_create_and_delete_are_unsupported() {
    let h = Harness::start_with(options()).await;
    let response = h
        .send(
            Method::POST,
            "/v1/contacts",
            &h.acme(),
            json!({"name": "New"}),
        )
        .await;
    expect_problem(response, 501, "unsupported_operation").await;
    let id = first_id(&h, "/v1/contacts?limit=1").await;
    let response = h
        .http
        .delete(h.url(&format!("/v1/contacts/{id}")))
        .bearer_auth(h.acme())
        .send()
        .await
        .expect("request");
    expect_problem(response, 501, "unsupported_operation").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conversations_list_filter_get_create_update() {
    let h = Harness::start_with(options()).await;
    let all = h.get_json("/v1/conversations?limit=50", 200).await;
    let all = all["data"].as_array().expect("data").clone();
    assert!(all.len() >= 2);
    for c in &all {
        // List items are partial (see conversation_list_items_are_partial_never_false).
        for key in CONVERSATION_KEYS {
            if !["contact_id", "assignee", "tags"].contains(key) {
                assert!(c.get(*key).is_some(), "missing `{key}` in {c}");
            }
        }
    }
    let open = h
        .get_json("/v1/conversations?status=open&limit=50", 200)
        .await;
    let open = open["data"].as_array().expect("data");
    assert!(!open.is_empty());
    assert!(open.iter().all(|c| c["status"] == "open"));
    assert!(open.len() < all.len(), "the status filter filtered nothing");

    let id = open[0]["id"].as_str().expect("id").to_owned();
    let one = h.get_json(&format!("/v1/conversations/{id}"), 200).await;
    assert_eq!(one["id"], id.as_str());
    assert_same_keys(&one, CONVERSATION_KEYS);

    // create
    let created = h
        .send(
            Method::POST,
            "/v1/conversations",
            &h.acme(),
            json!({"contact": {"name": "Grace Hopper", "email": "grace@example.com"}, "subject": "Compiler", "text": "Hello"}),
        )
        .await;
    let created = expect_status(created, 201).await;
    assert_same_keys(&created, CONVERSATION_KEYS);
    assert_eq!(created["subject"], "Compiler");
    assert_eq!(created["status"], "open");

    // update: priority, tags, assignee, then resolve (closes)
    let cid = created["id"].as_str().expect("id").to_owned();
    let updated = h
        .send(
            Method::PATCH,
            &format!("/v1/conversations/{cid}"),
            &h.acme(),
            json!({"priority": "high", "tags": ["vip", "billing"], "assignee": {"user_id": "1"}}),
        )
        .await;
    let updated = expect_status(updated, 200).await;
    assert_eq!(updated["priority"], "high");
    assert_eq!(updated["tags"], json!(["vip", "billing"]));
    assert_eq!(updated["assignee"]["user_id"], "1");
    let resolved = h
        .send(
            Method::PATCH,
            &format!("/v1/conversations/{cid}"),
            &h.acme(),
            json!({"status": "resolved"}),
        )
        .await;
    let resolved = expect_status(resolved, 200).await;
    assert_eq!(resolved["status"], "resolved");
    assert_eq!(resolved["vendor_status"], "Resolved");
    assert!(h.libredesk.calls_to("conversations.update_status") >= 1);
    let reread = h.get_json(&format!("/v1/conversations/{cid}"), 200).await;
    assert_eq!(reread["status"], "resolved");

    // unassign
    let unassigned = h
        .send(
            Method::PATCH,
            &format!("/v1/conversations/{cid}"),
            &h.acme(),
            json!({"assignee": null}),
        )
        .await;
    let unassigned = expect_status(unassigned, 200).await;
    assert!(unassigned["assignee"].is_null(), "{unassigned}");

    // delete is not a Libredesk operation
    let response = h
        .http
        .delete(h.url(&format!("/v1/conversations/{cid}")))
        .bearer_auth(h.acme())
        .send()
        .await
        .expect("request");
    expect_problem(response, 501, "unsupported_operation").await;
}

/// The remote id → gateway id of every seeded conversation, from the list.
async fn conversation_ids(h: &Harness) -> Vec<(String, String)> {
    let page = h.get_json("/v1/conversations?limit=50", 200).await;
    page["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|c| {
            let remote = c["remote_id"].as_str().expect("remote id").to_owned();
            (remote, c["id"].as_str().expect("id").to_owned())
        })
        .collect()
}

async fn conversation_id(h: &Harness, uuid: &str) -> String {
    let ids = conversation_ids(h).await;
    let found = ids.into_iter().find(|(remote, _)| remote == uuid);
    found.expect("a seeded conversation").1
}

/// Libredesk's `ConversationListItem` has no contact id, assignee or tags (issue 12 #4): the
/// list leaves them out and says `partial: true` — never `null` ("no contact",
/// "unassigned") or `[]` ("no tags") — and the conversation read by id has them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conversation_list_items_are_partial_never_false() {
    let h = Harness::start_with(options()).await;
    let page = h.get_json("/v1/conversations?limit=50", 200).await;
    let items = page["data"].as_array().expect("data");
    assert_eq!(items.len(), 5);
    for c in items {
        for field in ["contact_id", "assignee", "tags"] {
            assert!(c.get(field).is_none(), "`{field}` is not known here: {c}");
        }
        assert_eq!(c["partial"], true, "{c}");
    }
    // Seeded conversation 1: Ada's, tags billing + vip, Grace and team Support.
    let id = conversation_id(&h, "c0000000-0000-4000-8000-000000000001").await;
    let one = h.get_json(&format!("/v1/conversations/{id}"), 200).await;
    assert!(one.get("partial").is_none(), "{one}");
    assert_same_keys(&one, CONVERSATION_KEYS);
    assert_eq!(one["assignee"], json!({"user_id": "1", "team_id": "1"}));
    let tags = one["tags"].as_array().expect("tags");
    assert!(
        tags.contains(&json!("billing")) && tags.contains(&json!("vip")),
        "{one}"
    );
    let contact = one["contact_id"].as_str().expect("a contact id");
    let ada = h.get_json(&format!("/v1/contacts/{contact}"), 200).await;
    assert_eq!(ada["emails"], json!(["ada@example.com"]));
}

/// The published `ContactSearchResult` has no id (issue 12 #5): a search still answers
/// contacts that can be addressed, found by email in the contact list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contact_search_reads_the_documented_result_without_an_id() {
    let h = Harness::start_with(options()).await;
    let found = h.get_json("/v1/contacts?q=lovelace", 200).await;
    let data = found["data"].as_array().expect("data");
    assert_eq!(data.len(), 1, "{found}");
    assert_eq!(data[0]["remote_id"], "101");
    assert_eq!(data[0]["emails"], json!(["ada@example.com"]));
    assert_eq!(data[0]["name"], "Ada Lovelace");
    assert!(found["next_cursor"].is_null());
    assert_eq!(h.libredesk.calls_to("contacts.search"), 1);
    assert!(h.libredesk.calls().iter().any(|c| {
        c.endpoint.as_deref() == Some("contacts.list")
            && c.query
                .as_deref()
                .unwrap_or_default()
                .contains("page_size=100")
    }));
    let id = data[0]["id"].as_str().expect("id");
    let one = h.get_json(&format!("/v1/contacts/{id}"), 200).await;
    assert_eq!(one["phones"], json!(["+442079460101"]));
    // Many results, all found.
    let many = h.get_json("/v1/contacts?q=example.org&limit=50", 200).await;
    assert_eq!(many["data"].as_array().expect("data").len(), 15);
}

/// Libredesk lists `activity` entries (status, assignee, tag changes) among a conversation's
/// messages unless asked not to (issue 12 #7): the adapter asks for incoming and outgoing
/// messages only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_lists_leave_out_activity_entries() {
    let h = Harness::start_with(options()).await;
    // Seeded conversation 2: an incoming message, an agent reply, and "marked as Resolved".
    let id = conversation_id(&h, "c0000000-0000-4000-8000-000000000002").await;
    let listed = h
        .get_json(&format!("/v1/messages?conversation_id={id}&limit=50"), 200)
        .await;
    let data = listed["data"].as_array().expect("data");
    assert_eq!(data.len(), 2, "{listed}");
    assert!(
        data.iter().all(|m| m["sender"]["type"] != "system"),
        "{listed}"
    );
    let asked = h
        .libredesk
        .calls()
        .into_iter()
        .filter(|c| c.endpoint.as_deref() == Some("messages.list"))
        .map(|c| c.query.unwrap_or_default())
        .collect::<Vec<_>>();
    assert!(
        asked
            .iter()
            .all(|q| q.contains("type=incoming") && q.contains("type=outgoing")),
        "{asked:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_list_get_send_and_private_notes() {
    let h = Harness::start_with(options()).await;
    let conversation = first_id(&h, "/v1/conversations?limit=1").await;
    let listed = h
        .get_json(&format!("/v1/messages?conversation_id={conversation}"), 200)
        .await;
    let alias = h
        .get_json(&format!("/v1/conversations/{conversation}/messages"), 200)
        .await;
    assert_eq!(listed["data"], alias["data"]);
    let first = &listed["data"][0];
    assert_same_keys(first, MESSAGE_KEYS);
    assert_eq!(first["conversation_id"], conversation.as_str());
    let mid = first["id"].as_str().expect("id");
    let one = h.get_json(&format!("/v1/messages/{mid}"), 200).await;
    assert_eq!(one["id"], mid);

    let sent = h
        .send(
            Method::POST,
            "/v1/messages",
            &h.acme(),
            json!({"conversation_id": conversation, "text": "Thanks <3 & see you"}),
        )
        .await;
    let sent = expect_status(sent, 201).await;
    assert_same_keys(&sent, MESSAGE_KEYS);
    assert_eq!(sent["direction"], "outbound");
    assert_eq!(sent["private"], false);
    assert_eq!(sent["text"], "Thanks <3 & see you");

    let note = h
        .send(
            Method::POST,
            "/v1/messages",
            &h.acme(),
            json!({"conversation_id": conversation, "text": "internal", "private": true}),
        )
        .await;
    let note = expect_status(note, 201).await;
    assert_eq!(note["private"], true);
    let read_back = h
        .get_json(
            &format!("/v1/messages/{}", note["id"].as_str().expect("id")),
            200,
        )
        .await;
    assert_eq!(read_back["private"], true);
    assert_eq!(read_back["text"], "internal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capabilities_openapi_raw_and_request_ids() {
    let h = Harness::start_with(options()).await;
    let caps = h.get_json("/v1/capabilities", 200).await;
    let support = caps["data"]
        .as_array()
        .expect("data")
        .iter()
        .find(|c| c["connection"] == "support")
        .expect("support connection")
        .clone();
    assert_eq!(support["vendor"], "libredesk");
    let ops: Vec<&str> = support["operations"]
        .as_array()
        .expect("ops")
        .iter()
        .filter_map(|o| o.as_str())
        .collect();
    assert!(ops.contains(&"contacts.update") && ops.contains(&"messages.send"));
    assert!(!ops.contains(&"contacts.create") && !ops.contains(&"contacts.delete"));
    assert_eq!(support["filters"]["contacts.list"], json!(["q"]));
    assert_eq!(support["filters"]["conversations.list"], json!(["status"]));
    // the tenant sees only its own connections
    assert!(caps["data"]
        .as_array()
        .expect("data")
        .iter()
        .all(|c| c["connection"] != "only"));

    let doc = h
        .http
        .get(h.url("/openapi.json"))
        .send()
        .await
        .expect("openapi");
    let doc = expect_status(doc, 200).await;
    assert_eq!(doc["openapi"], "3.1.0");

    let id = first_id(&h, "/v1/contacts?limit=1").await;
    let raw = h
        .get_json(&format!("/v1/contacts/{id}?include=raw"), 200)
        .await;
    assert!(raw["raw"].is_object(), "{raw}");
    let no_scope = h
        .get(
            &format!("/v1/contacts/{id}?include=raw"),
            &h.token("acme", "contacts:read"),
        )
        .await;
    expect_problem(no_scope, 403, "forbidden").await;

    let echoed = h
        .http
        .get(h.url("/v1/capabilities"))
        .bearer_auth(h.acme())
        .header("X-Request-Id", "trace-abc-123")
        .send()
        .await
        .expect("request");
    assert_eq!(echoed.headers()["x-request-id"], "trace-abc-123");
    let generated = h.get("/v1/capabilities", &h.acme()).await;
    assert_eq!(generated.headers()["x-request-id"].len(), 32);
    // the request id is forwarded to the vendor
    let _ = h
        .http
        .get(h.url(&format!("/v1/contacts/{id}")))
        .bearer_auth(h.acme())
        .header("X-Request-Id", "fwd-42")
        .send()
        .await
        .expect("request");
    assert!(h
        .libredesk
        .calls()
        .iter()
        .any(|c| c.request_id.as_deref() == Some("fwd-42")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_are_unauthorized() {
    let h = Harness::start_with(options()).await;
    let future = jsonwebtoken::get_current_timestamp() + 600;
    let sign = |claims: serde_json::Value, secret: &[u8]| {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(secret),
        )
        .expect("sign")
    };
    let expired = sign(
        json!({"tenant": "acme", "scope": ALL_SCOPES, "aud": AUDIENCE, "exp": 1_000}),
        SECRET.as_bytes(),
    );
    let wrong_key = sign(
        json!({"tenant": "acme", "scope": ALL_SCOPES, "aud": AUDIENCE, "exp": future}),
        b"another-secret-entirely",
    );
    let wrong_aud = sign(
        json!({"tenant": "acme", "scope": ALL_SCOPES, "aud": "billing", "exp": future}),
        SECRET.as_bytes(),
    );
    let alg_none = {
        use base64::Engine;
        let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!(
            "{}.{}.",
            e.encode(br#"{"alg":"none","typ":"JWT"}"#),
            e.encode(
                json!({"tenant": "acme", "scope": ALL_SCOPES, "aud": AUDIENCE, "exp": future})
                    .to_string()
            )
        )
    };
    for token in [
        expired,
        wrong_key,
        wrong_aud,
        alg_none,
        "garbage".to_owned(),
    ] {
        let response = h.get("/v1/contacts", &token).await;
        expect_problem(response, 401, "unauthorized").await;
    }
    let missing = h
        .http
        .get(h.url("/v1/contacts"))
        .send()
        .await
        .expect("request");
    expect_problem(missing, 401, "unauthorized").await;
    assert_eq!(
        h.libredesk.call_count(),
        0,
        "no vendor call for a bad token"
    );
    // Request metrics are recorded in the logging phase, after the response is written:
    // poll until the last request is counted.
    let counted =
        "switchboard_http_requests_total{code=\"unauthorized\",operation=\"contacts.list\",vendor=\"none\"} 6";
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let text = loop {
        let metrics = h
            .http
            .get(format!("{}/metrics", h.admin))
            .send()
            .await
            .expect("metrics");
        let text = metrics.text().await.expect("text");
        if text.contains(counted) || std::time::Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert!(
        text.contains("switchboard_auth_failures_total{reason=\"expired\"} 1"),
        "{text}"
    );
    // refused requests are counted under the operation they asked for
    assert!(text.contains(counted), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scopes_and_tenants_are_enforced() {
    let h = Harness::start_with(options()).await;
    let read_only = h.token("acme", "contacts:read");
    let response = h.get("/v1/conversations", &read_only).await;
    expect_problem(response, 403, "forbidden").await;
    let response = h
        .send(
            Method::POST,
            "/v1/messages",
            &read_only,
            json!({"conversation_id": "x", "text": "hi"}),
        )
        .await;
    expect_problem(response, 403, "forbidden").await;

    // a selector naming a connection the tenant doesn't have
    let response = h
        .http
        .get(h.url("/v1/contacts"))
        .bearer_auth(h.acme())
        .header("X-Connection", "only")
        .send()
        .await
        .expect("request");
    expect_problem(response, 403, "forbidden").await;
    // several connections and no selector
    let response = h
        .http
        .get(h.url("/v1/contacts"))
        .bearer_auth(h.acme())
        .send()
        .await
        .expect("request");
    expect_problem(response, 400, "invalid_request").await;
    // one connection: it is the default
    let response = h
        .http
        .get(h.url("/v1/contacts?limit=1"))
        .bearer_auth(h.token("solo", ALL_SCOPES))
        .send()
        .await
        .expect("request");
    expect_status(response, 200).await;

    // another tenant's ID is a 404 and costs no vendor call
    let theirs = {
        let response = h
            .http
            .get(h.url("/v1/contacts?limit=1"))
            .bearer_auth(h.token("other", ALL_SCOPES))
            .send()
            .await
            .expect("request");
        expect_status(response, 200).await["data"][0]["id"]
            .as_str()
            .expect("id")
            .to_owned()
    };
    h.libredesk.reset_calls();
    let response = h.get(&format!("/v1/contacts/{theirs}"), &h.acme()).await;
    expect_problem(response, 404, "not_found").await;
    assert_eq!(h.libredesk.call_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_input_is_rejected_before_any_vendor_call() {
    let h = Harness::start_with(options()).await;
    let conversation = first_id(&h, "/v1/conversations?limit=1").await;
    h.libredesk.reset_calls();
    let token = h.acme();

    for bad_id in [
        "nope",
        "cv_!!!",
        "ct_WyJhY21lIl0",
        &conversation.replacen("cv_", "ct_", 1),
    ] {
        let response = h.get(&format!("/v1/conversations/{bad_id}"), &token).await;
        expect_problem(response, 404, "not_found").await;
    }
    let response = h.get("/v1/nowhere", &token).await;
    expect_problem(response, 404, "not_found").await;

    let bad_json = h
        .http
        .patch(h.url(&format!("/v1/conversations/{conversation}")))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{\"status\": ")
        .send()
        .await
        .expect("request");
    expect_problem(bad_json, 400, "invalid_request").await;
    let unknown_field = h
        .send(
            Method::PATCH,
            &format!("/v1/conversations/{conversation}"),
            &token,
            json!({"colour": "red"}),
        )
        .await;
    let body = expect_problem(unknown_field, 400, "invalid_request").await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("colour"),
        "{body}"
    );
    let bad_value = h
        .send(
            Method::PATCH,
            &format!("/v1/conversations/{conversation}"),
            &token,
            json!({"status": "frozen"}),
        )
        .await;
    expect_problem(bad_value, 400, "invalid_request").await;
    for query in [
        "limit=0",
        "limit=101",
        "limit=ten",
        "cursor=forged.cursor",
        "bogus=1",
        "status=frozen",
    ] {
        let response = h.get(&format!("/v1/conversations?{query}"), &token).await;
        expect_problem(response, 400, "invalid_request").await;
    }
    let unsupported = h.get("/v1/contacts?email=ada@example.com", &token).await;
    expect_problem(unsupported, 400, "unsupported_filter").await;
    let big = "x".repeat(70 * 1024);
    let too_large = h
        .send(
            Method::POST,
            "/v1/messages",
            &token,
            json!({"conversation_id": conversation, "text": big}),
        )
        .await;
    expect_problem(too_large, 413, "payload_too_large").await;
    assert_eq!(h.libredesk.call_count(), 0, "{:?}", h.libredesk.calls());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_cursor_is_rejected() {
    let h = Harness::start_with(options()).await;
    let page = h.get_json("/v1/contacts?limit=1", 200).await;
    let cursor = page["next_cursor"].as_str().expect("cursor").to_owned();
    let mut bytes = cursor.into_bytes();
    bytes[2] = if bytes[2] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(bytes).expect("utf8");
    let response = h
        .get(
            &format!("/v1/contacts?limit=1&cursor={tampered}"),
            &h.acme(),
        )
        .await;
    expect_problem(response, 400, "invalid_request").await;
    // a cursor from another list doesn't fit either
    let response = h
        .get(
            &format!(
                "/v1/conversations?limit=1&cursor={}",
                page["next_cursor"].as_str().expect("c")
            ),
            &h.acme(),
        )
        .await;
    expect_problem(response, 400, "invalid_request").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vendor_failures_map_to_the_error_table() {
    let h = Harness::start_with(Options {
        vendor_timeout_ms: 400,
        ..options()
    })
    .await;
    let id = first_id(&h, "/v1/contacts?limit=1").await;
    let path = format!("/v1/contacts/{id}");

    h.libredesk.inject(
        Fault::RateLimit {
            retry_after_secs: 7,
        },
        Some(1),
    );
    let response = h.get(&path, &h.acme()).await;
    assert_eq!(response.headers()["retry-after"], "7");
    let body = expect_problem(response, 429, "vendor_rate_limited").await;
    assert_eq!(body["retry_after"], 7);
    assert_eq!(body["vendor"], "libredesk");

    h.libredesk.inject(Fault::Status(503), Some(1));
    let body = expect_problem(h.get(&path, &h.acme()).await, 502, "vendor_error").await;
    assert_eq!(body["vendor_status"], 503);

    h.libredesk.inject(Fault::Malformed, Some(1));
    expect_problem(h.get(&path, &h.acme()).await, 502, "vendor_bad_response").await;

    h.libredesk.inject(
        Fault::Latency(std::time::Duration::from_millis(1500)),
        Some(1),
    );
    expect_problem(h.get(&path, &h.acme()).await, 504, "vendor_timeout").await;

    h.libredesk.inject(Fault::Reset, Some(1));
    expect_problem(h.get(&path, &h.acme()).await, 502, "vendor_error").await;

    // faults used up: the next call works again
    expect_status(h.get(&path, &h.acme()).await, 200).await;

    // wrong credentials
    let response = h
        .http
        .get(h.url("/v1/contacts"))
        .bearer_auth(h.acme())
        .header("X-Connection", "badcreds")
        .send()
        .await
        .expect("request");
    let body = expect_problem(response, 502, "vendor_auth_failed").await;
    assert!(
        !body.to_string().contains("wrong"),
        "credentials leaked: {body}"
    );

    // nothing listening
    let response = h
        .http
        .get(h.url("/v1/contacts"))
        .bearer_auth(h.acme())
        .header("X-Connection", "down")
        .send()
        .await
        .expect("request");
    let body = expect_problem(response, 503, "vendor_unavailable").await;
    assert!(
        !body.to_string().contains("127.0.0.1"),
        "internal address leaked: {body}"
    );

    // vendor 404
    let missing = switchboard::api::ids::ObjectId::new(
        switchboard::api::ids::Kind::Contact,
        "acme",
        "support",
        vec!["999999".into()],
    )
    .encode();
    expect_problem(
        h.get(&format!("/v1/contacts/{missing}"), &h.acme()).await,
        404,
        "not_found",
    )
    .await;
}

fn basic_auth(name: &str, text: String) -> String {
    if name == "libredesk.yaml" {
        text.replace("scheme: token", "scheme: basic")
    } else {
        text
    }
}

/// Libredesk also takes `Authorization: Basic base64(key:secret)`; the routes file picks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_basic_auth_scheme_works_too() {
    let h = Harness::start_with(Options {
        routes_transform: Some(basic_auth),
        ..options()
    })
    .await;
    expect_status(h.get("/v1/contacts?limit=1", &h.acme()).await, 200).await;
    let response = h
        .http
        .get(h.url("/v1/contacts"))
        .bearer_auth(h.acme())
        .header("X-Connection", "badcreds")
        .send()
        .await
        .expect("request");
    expect_problem(response, 502, "vendor_auth_failed").await;
}
