//! The normalized API served end to end over the CAAC sandbox (connection `acme.caac`): every
//! operation CAAC supports, every one it does not, and the error codes reachable with CAAC.

use crate::harness::*;
use reqwest::Method;
use serde_json::{json, Value};
use switchboard::api::ids::{Kind, ObjectId};
use switchboard::api::operation::Vendor;
use switchboard::sandbox::caac::seed;
use switchboard::sandbox::{CaacState, Credentials, Fault, Sandbox};

const CONN: &str = "caac";

fn id(kind: Kind, keys: &[i64]) -> String {
    ObjectId::new(
        kind,
        "acme",
        CONN,
        keys.iter().map(ToString::to_string).collect(),
    )
    .encode()
}

fn contact(member: i64) -> String {
    id(Kind::Contact, &[seed::CHANNEL_LINE_ID, member])
}

fn conversation(member: i64) -> String {
    id(Kind::Conversation, &[seed::CHANNEL_LINE_ID, member])
}

fn caac(h: &Harness) -> &Sandbox {
    h.sandbox(Vendor::Caac)
        .expect("the harness serves a caac sandbox")
}

fn state(h: &Harness) -> &CaacState {
    caac(h).caac().expect("caac state")
}

async fn get(h: &Harness, path: &str, status: u16) -> Value {
    expect_status(h.get_on(CONN, path).await, status).await
}

async fn send(h: &Harness, method: Method, path: &str, body: Value) -> reqwest::Response {
    h.send_on(CONN, method, path, body).await
}

async fn delete(h: &Harness, path: &str) -> reqwest::Response {
    h.http
        .delete(h.url(path))
        .bearer_auth(h.acme())
        .send()
        .await
        .expect("request")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capabilities_list_exactly_what_caac_can_do() {
    let h = Harness::start().await;
    let caps = h.get_json("/v1/capabilities", 200).await;
    let entry = caps["data"]
        .as_array()
        .expect("data")
        .iter()
        .find(|c| c["connection"] == CONN)
        .expect("the caac connection")
        .clone();
    assert_eq!(entry["vendor"], "caac");
    assert_eq!(
        entry["operations"],
        json!([
            "contacts.list",
            "contacts.create",
            "contacts.get",
            "conversations.create",
            "conversations.get",
            "conversations.update",
            "messages.send"
        ])
    );
    assert_eq!(entry["filters"], json!({"contacts.list": ["handle"]}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contacts_get_and_look_up_by_handle() {
    let h = Harness::start().await;
    let weiting = contact(seed::MEMBER_WEITING_ID);
    let c = get(&h, &format!("/v1/contacts/{weiting}"), 200).await;
    assert_eq!(c["id"], weiting.as_str());
    assert_eq!(c["vendor"], "caac");
    assert_eq!(c["connection"], CONN);
    assert_eq!(c["remote_id"], "30001");
    assert_eq!(c["name"], "Wei-Ting Chen");
    assert_eq!(c["emails"], json!(["weiting.chen@example.com.tw"]));
    assert_eq!(c["phones"], json!(["+886912345678"]));
    assert_eq!(
        c["handles"],
        json!([{"channel": "line", "value": seed::MEMBER_WEITING_UID}])
    );
    assert_eq!(c["company"], "Formosa Tea Co.");
    assert_eq!(c["custom_fields"]["member_level"], "gold");
    assert_eq!(c["created_at"], "2025-03-10T09:00:00Z");
    assert!(c.get("raw").is_none());
    let raw = get(&h, &format!("/v1/contacts/{weiting}?include=raw"), 200).await;
    assert_eq!(raw["raw"]["processing_state"], "processing");

    let found = get(
        &h,
        &format!("/v1/contacts?handle=line:{}", seed::MEMBER_YUKI_UID),
        200,
    )
    .await;
    assert_eq!(found["next_cursor"], Value::Null);
    let items = found["data"].as_array().expect("data");
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["id"], contact(seed::MEMBER_YUKI_ID).as_str());
    assert_eq!(items[0]["phones"], json!(["+819012345678"]));
    let lookup = caac(&h)
        .calls()
        .into_iter()
        .find(|c| c.endpoint.as_deref() == Some("contacts.lookup"))
        .expect("a lookup call");
    assert_eq!(
        lookup.path,
        format!(
            "/openapi/v1/channels/{}/members/external/{}",
            seed::CHANNEL_LINE_ID,
            seed::MEMBER_YUKI_UID
        )
    );

    // No such member: an empty page, not an error.
    let none = get(
        &h,
        &format!("/v1/contacts?handle=line:{}", seed::UNUSED_LINE_UID),
        200,
    )
    .await;
    assert_eq!(none, json!({"data": [], "next_cursor": null}));

    // CAAC can only look up: a handle is required, and it is the only filter.
    let before = caac(&h).call_count();
    let body = expect_problem(h.get_on(CONN, "/v1/contacts").await, 400, "invalid_request").await;
    assert_eq!(
        body["detail"],
        "caac can only look contacts up: pass handle=line:<uid>"
    );
    for path in [
        "/v1/contacts?q=wei",
        "/v1/contacts?email=weiting.chen@example.com.tw",
        "/v1/contacts?phone=%2B886912345678",
    ] {
        expect_problem(h.get_on(CONN, path).await, 400, "unsupported_filter").await;
    }
    expect_problem(
        h.get_on(CONN, "/v1/contacts?handle=email:a@b.tw").await,
        400,
        "invalid_request",
    )
    .await;
    assert_eq!(caac(&h).call_count(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contacts_are_created_from_a_line_uid() {
    let h = Harness::start().await;
    let body = json!({"handles": [{"channel": "line", "value": seed::UNUSED_LINE_UID}]});
    let created = expect_status(
        send(&h, Method::POST, "/v1/contacts", body.clone()).await,
        201,
    )
    .await;
    assert_eq!(created["remote_id"], "30007");
    assert_eq!(created["id"], contact(30007).as_str());
    assert_eq!(
        created["handles"],
        json!([{"channel": "line", "value": seed::UNUSED_LINE_UID}])
    );
    assert!(created["created_at"].is_string());
    assert_eq!(state(&h).member_count(), seed::MEMBER_COUNT + 1);
    // Create or update: the same UID is the same member.
    let again = expect_status(send(&h, Method::POST, "/v1/contacts", body).await, 201).await;
    assert_eq!(again["id"], created["id"]);
    assert_eq!(state(&h).member_count(), seed::MEMBER_COUNT + 1);
    assert_eq!(caac(&h).calls_to("contacts.create"), 2);

    // What CAAC cannot store is refused, before any call.
    let before = caac(&h).call_count();
    for body in [
        json!({"name": "Ya-Ting", "handles": [{"channel": "line", "value": seed::UNUSED_LINE_UID}]}),
        json!({"emails": ["a@b.tw"]}),
        json!({"handles": [{"channel": "whatsapp", "value": "886912345678"}]}),
    ] {
        expect_problem(
            send(&h, Method::POST, "/v1/contacts", body).await,
            400,
            "invalid_request",
        )
        .await;
    }
    assert_eq!(caac(&h).call_count(), before);
    // The vendor's own refusal comes back as invalid_request with its reason.
    let body = json!({
        "handles": [{"channel": "line", "value": "U-not-a-line-uid"}],
    });
    let problem = expect_problem(
        send(&h, Method::POST, "/v1/contacts", body).await,
        400,
        "invalid_request",
    )
    .await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("not a LINE user ID"),
        "{problem}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conversations_get_and_update() {
    let h = Harness::start().await;
    let weiting = conversation(seed::MEMBER_WEITING_ID);
    let c = get(&h, &format!("/v1/conversations/{weiting}"), 200).await;
    assert_eq!(c["id"], weiting.as_str());
    assert_eq!(c["remote_id"], "30001");
    assert_eq!(c["contact_id"], contact(seed::MEMBER_WEITING_ID).as_str());
    assert_eq!(c["channel"], "line");
    assert_eq!(c["status"], "open");
    assert_eq!(c["vendor_status"], "processing");
    assert_eq!(c["assignee"], json!({"user_id": "501", "team_id": "71"}));
    assert_eq!(
        (&c["subject"], &c["priority"], &c["tags"]),
        (&Value::Null, &Value::Null, &json!([]))
    );
    assert_eq!(c["last_message_at"], "2025-03-10T12:27:00Z");
    let yuki = get(
        &h,
        &format!("/v1/conversations/{}", conversation(seed::MEMBER_YUKI_ID)),
        200,
    )
    .await;
    assert_eq!(
        (yuki["status"].as_str(), yuki["vendor_status"].as_str()),
        (Some("resolved"), Some("resolved"))
    );

    // status: resolved → Close Conversation, as the connection's default user.
    let somchai = conversation(seed::MEMBER_SOMCHAI_ID);
    let path = format!("/v1/conversations/{somchai}");
    let resolved = expect_status(
        send(&h, Method::PATCH, &path, json!({"status": "resolved"})).await,
        200,
    )
    .await;
    assert_eq!(resolved["status"], "resolved");
    assert_eq!(resolved["vendor_status"], "resolved");
    assert_eq!(
        state(&h)
            .processing_state(seed::CHANNEL_LINE_ID, seed::MEMBER_SOMCHAI_ID)
            .as_deref(),
        Some("resolved")
    );
    assert_eq!(caac(&h).calls_to("conversations.close"), 1);

    // assignee → Manual assignment; null unassigns.
    let assigned = expect_status(
        send(
            &h,
            Method::PATCH,
            &path,
            json!({"assignee": {"user_id": "503", "team_id": "72"}}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(
        assigned["assignee"],
        json!({"user_id": "503", "team_id": "72"})
    );
    let unassigned = expect_status(
        send(&h, Method::PATCH, &path, json!({"assignee": null})).await,
        200,
    )
    .await;
    assert_eq!(unassigned["assignee"], Value::Null);
    assert_eq!(
        state(&h).assignment(seed::CHANNEL_LINE_ID, seed::MEMBER_SOMCHAI_ID),
        Some(
            json!({"assign_type": "unassigned", "assignment_relationship": {"team_id": null, "user_id": null}})
        )
    );
    assert_eq!(caac(&h).calls_to("conversations.assign"), 2);

    // vendor_fields override the connection's defaults (here: a user CAAC does not know).
    let problem = expect_problem(
        send(
            &h,
            Method::PATCH,
            &path,
            json!({"status": "resolved", "vendor_fields": {"user_id": 999}}),
        )
        .await,
        400,
        "invalid_request",
    )
    .await;
    assert!(problem["detail"]
        .as_str()
        .unwrap_or_default()
        .contains("user 999"));

    // What CAAC cannot change: 501 (or 400 for bad input) before any vendor call.
    let before = caac(&h).call_count();
    for body in [
        json!({"priority": "high"}),
        json!({"tags": ["vip"]}),
        json!({"status": "open"}),
        json!({"status": "closed"}),
        json!({"status": "resolved", "priority": "low"}),
    ] {
        expect_problem(
            send(&h, Method::PATCH, &path, body).await,
            501,
            "unsupported_operation",
        )
        .await;
    }
    expect_problem(
        send(
            &h,
            Method::PATCH,
            &path,
            json!({"assignee": {"user_id": "mei"}}),
        )
        .await,
        400,
        "invalid_request",
    )
    .await;
    assert_eq!(caac(&h).call_count(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conversations_create_answers_the_members_implicit_conversation() {
    let h = Harness::start().await;
    let liming = contact(seed::MEMBER_LIMING_ID);
    let created = expect_status(
        send(
            &h,
            Method::POST,
            "/v1/conversations",
            json!({"contact_id": liming, "channel": "line", "text": "Welcome to Acme!"}),
        )
        .await,
        201,
    )
    .await;
    assert_eq!(created["id"], conversation(seed::MEMBER_LIMING_ID).as_str());
    assert_eq!(created["contact_id"], liming.as_str());
    assert_eq!(created["status"], "open");
    assert!(created["last_message_at"].is_string(), "{created}");
    let messages = state(&h).messages(seed::CHANNEL_LINE_ID, seed::MEMBER_LIMING_ID);
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["text"], "Welcome to Acme!");
    assert_eq!(messages[0]["sender_type"], "user");

    // Without text: nothing is sent.
    let sent = caac(&h).calls_to("messages.send");
    let quiet = expect_status(
        send(
            &h,
            Method::POST,
            "/v1/conversations",
            json!({"contact_id": contact(seed::MEMBER_NATTAYA_ID)}),
        )
        .await,
        201,
    )
    .await;
    assert_eq!(quiet["status"], "pending");
    assert_eq!(caac(&h).calls_to("messages.send"), sent);

    // A new person, or a subject: refused before any call.
    let before = caac(&h).call_count();
    let problem = expect_problem(
        send(
            &h,
            Method::POST,
            "/v1/conversations",
            json!({"contact": {"name": "New Person", "phone": "+886900000000"}}),
        )
        .await,
        400,
        "invalid_request",
    )
    .await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("existing member"),
        "{problem}"
    );
    expect_problem(
        send(
            &h,
            Method::POST,
            "/v1/conversations",
            json!({"contact_id": liming, "subject": "Refund"}),
        )
        .await,
        400,
        "invalid_request",
    )
    .await;
    assert_eq!(caac(&h).call_count(), before);
    // An unknown member is the vendor's 404.
    expect_problem(
        send(
            &h,
            Method::POST,
            "/v1/conversations",
            json!({"contact_id": contact(99_999)}),
        )
        .await,
        404,
        "not_found",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_are_sent_as_text_from_the_default_agent() {
    let h = Harness::start().await;
    let weiting = conversation(seed::MEMBER_WEITING_ID);
    let message = expect_status(
        send(
            &h,
            Method::POST,
            "/v1/messages",
            json!({"conversation_id": weiting, "text": "Your parcel left our warehouse."}),
        )
        .await,
        201,
    )
    .await;
    assert_eq!(message["conversation_id"], weiting.as_str());
    assert_eq!(message["direction"], "outbound");
    assert_eq!(
        message["sender"],
        json!({"type": "agent", "id": "501", "name": null})
    );
    assert_eq!(message["type"], "text");
    assert_eq!(message["text"], "Your parcel left our warehouse.");
    assert_eq!(
        (&message["private"], &message["status"]),
        (&json!(false), &json!("sent"))
    );
    let message_id = seed::FIRST_MESSAGE_ID + seed::MESSAGE_COUNT as i64;
    assert_eq!(message["remote_id"], message_id.to_string());
    let decoded = ObjectId::decode(Kind::Message, message["id"].as_str().unwrap_or_default())
        .expect("a message id");
    assert_eq!(
        decoded.keys,
        vec![
            seed::CHANNEL_LINE_ID.to_string(),
            seed::MEMBER_WEITING_ID.to_string(),
            message_id.to_string()
        ]
    );
    let stored = state(&h).messages(seed::CHANNEL_LINE_ID, seed::MEMBER_WEITING_ID);
    assert_eq!(stored.len(), 4);
    assert_eq!(stored[3]["text"], "Your parcel left our warehouse.");

    // Templates and internal notes: 501 before any call (attachments: 400, tests/it/attachments.rs).
    let before = caac(&h).call_count();
    for extra in [
        json!({"template": {"name": "shipping_update", "language": "zh_TW"}}),
        json!({"text": "internal", "private": true}),
    ] {
        let mut body = json!({"conversation_id": weiting});
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        expect_problem(
            send(&h, Method::POST, "/v1/messages", body).await,
            501,
            "unsupported_operation",
        )
        .await;
    }
    // CAAC has no call to read messages back.
    let message_path = format!(
        "/v1/messages/{}",
        message["id"].as_str().unwrap_or_default()
    );
    expect_problem(
        h.get_on(CONN, &message_path).await,
        501,
        "unsupported_operation",
    )
    .await;
    expect_problem(
        h.get_on(CONN, &format!("/v1/conversations/{weiting}/messages"))
            .await,
        501,
        "unsupported_operation",
    )
    .await;
    assert_eq!(caac(&h).call_count(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsupported_operations_answer_501_without_a_vendor_call() {
    let h = Harness::start().await;
    let weiting_contact = format!("/v1/contacts/{}", contact(seed::MEMBER_WEITING_ID));
    let weiting_conversation = format!(
        "/v1/conversations/{}",
        conversation(seed::MEMBER_WEITING_ID)
    );
    let before = caac(&h).call_count();
    expect_problem(
        send(&h, Method::PATCH, &weiting_contact, json!({"name": "Wei"})).await,
        501,
        "unsupported_operation",
    )
    .await;
    expect_problem(
        delete(&h, &weiting_contact).await,
        501,
        "unsupported_operation",
    )
    .await;
    expect_problem(
        h.get_on(CONN, "/v1/conversations").await,
        501,
        "unsupported_operation",
    )
    .await;
    expect_problem(
        delete(&h, &weiting_conversation).await,
        501,
        "unsupported_operation",
    )
    .await;
    assert_eq!(caac(&h).call_count(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_ids_are_404_without_a_vendor_call() {
    let h = Harness::start().await;
    let malformed = |kind, keys: &[&str]| {
        ObjectId::new(
            kind,
            "acme",
            CONN,
            keys.iter().map(ToString::to_string).collect(),
        )
        .encode()
    };
    let before = caac(&h).call_count();
    for path in [
        format!(
            "/v1/contacts/{}",
            malformed(Kind::Contact, &["abc", "30001"])
        ),
        format!("/v1/contacts/{}", malformed(Kind::Contact, &["30001"])),
        format!(
            "/v1/conversations/{}",
            malformed(Kind::Conversation, &["1201", "30001", "1"])
        ),
        format!(
            "/v1/conversations/{}",
            malformed(Kind::Conversation, &["1201", "0"])
        ),
        "/v1/contacts/ct_not-an-id".to_owned(),
    ] {
        expect_problem(h.get_on(CONN, &path).await, 404, "not_found").await;
    }
    expect_problem(
        send(
            &h,
            Method::POST,
            "/v1/messages",
            json!({"conversation_id": malformed(Kind::Conversation, &["x", "y"]), "text": "hi"}),
        )
        .await,
        404,
        "not_found",
    )
    .await;
    assert_eq!(caac(&h).call_count(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vendor_failures_map_to_the_error_table() {
    // A second CAAC sandbox whose key the `wrongkey` connection does not have.
    let strict = Sandbox::start_vendor(
        Vendor::Caac,
        load_routes("caac"),
        Credentials::new("the-right-key", ""),
    )
    .await
    .expect("sandbox");
    let extra = format!(
        "  wrongkey:\n    caac:\n      vendor: caac\n      base_url: {}\n      credentials: {{api_key: the-wrong-key}}\n      defaults: {{channel_id: 1201, user_id: 501, org_id: 8801}}\n",
        strict.base_url()
    );
    let h = Harness::start_with(Options {
        extra_connections: extra,
        ..Options::default()
    })
    .await;

    let theirs = ObjectId::new(
        Kind::Contact,
        "wrongkey",
        CONN,
        vec![
            seed::CHANNEL_LINE_ID.to_string(),
            seed::MEMBER_SOMCHAI_ID.to_string(),
        ],
    )
    .encode();
    let response = h
        .http
        .get(h.url(&format!("/v1/contacts/{theirs}")))
        .bearer_auth(h.token("wrongkey", ALL_SCOPES))
        .send()
        .await
        .expect("request");
    let body = expect_problem(response, 502, "vendor_auth_failed").await;
    assert_eq!(body["vendor"], "caac");
    assert_eq!(body["vendor_status"], 401);
    assert!(
        !body.to_string().contains("the-wrong-key"),
        "key leaked: {body}"
    );
    assert_eq!(strict.calls_to("contacts.get"), 1);

    let path = format!("/v1/contacts/{}", contact(seed::MEMBER_SOMCHAI_ID));
    // Each fault answers one call (each on an object not read before: no cache can answer).
    caac(&h).inject(Fault::Status(503), Some(1));
    let body = expect_problem(h.get_on(CONN, &path).await, 502, "vendor_error").await;
    assert_eq!(body["vendor_status"], 503);

    caac(&h).inject(
        Fault::RateLimit {
            retry_after_secs: 9,
        },
        Some(1),
    );
    let response = h
        .get_on(
            CONN,
            &format!("/v1/conversations/{}", conversation(seed::MEMBER_YUKI_ID)),
        )
        .await;
    assert_eq!(response.headers()["retry-after"], "9");
    let body = expect_problem(response, 429, "vendor_rate_limited").await;
    assert_eq!(body["retry_after"], 9);

    caac(&h).inject(Fault::Malformed, Some(1));
    expect_problem(
        h.get_on(
            CONN,
            &format!("/v1/contacts/{}", contact(seed::MEMBER_NATTAYA_ID)),
        )
        .await,
        502,
        "vendor_bad_response",
    )
    .await;

    // Faults used up: the same read works. A member CAAC does not have is a 404.
    let ok = get(&h, &path, 200).await;
    assert_eq!(ok["remote_id"], "30002");
    expect_problem(
        h.get_on(CONN, &format!("/v1/contacts/{}", contact(99_999)))
            .await,
        404,
        "not_found",
    )
    .await;
}

/// Issue 12 #1: every CAAC path is provisional, so a wrong lookup path — whose 404 says
/// nothing about a member — is a `vendor_error` naming the path, counted in the request
/// metrics, never an empty page. The sandbox still serves the routes file's real path, so
/// the same gateway with the right path answers a missing member with an empty page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lookup_404_that_names_no_member_is_a_vendor_error_not_an_empty_page() {
    fn wrong_lookup_path(name: &str, text: String) -> String {
        if name != "caac.yaml" {
            return text;
        }
        text.replace(
            "/members/external/{external_member_id}",
            "/members/by-external-id/{external_member_id}",
        )
    }
    let h = Harness::start_with(Options {
        routes_transform: Some(wrong_lookup_path),
        ..Options::default()
    })
    .await;
    let path = format!("/v1/contacts?handle=line:{}", seed::UNUSED_LINE_UID);
    let body = expect_problem(h.get_on(CONN, &path).await, 502, "vendor_error").await;
    assert_eq!(body["vendor"], "caac");
    assert_eq!(body["vendor_status"], 404);
    let detail = body["detail"].as_str().expect("detail");
    assert!(
        detail.contains(
            "/openapi/v1/channels/{channel_id}/members/by-external-id/{external_member_id}"
        ),
        "{detail}"
    );
    // The sandbox saw the call on a path it does not serve.
    let call = caac(&h).calls().pop().expect("a call");
    assert_eq!(call.endpoint, None);
    // The same goes for a member that does exist: the path is wrong, not the member.
    let path = format!("/v1/contacts?handle=line:{}", seed::MEMBER_YUKI_UID);
    expect_problem(h.get_on(CONN, &path).await, 502, "vendor_error").await;

    let counted = "switchboard_http_requests_total{code=\"vendor_error\",operation=\"contacts.list\",vendor=\"caac\"} 2";
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let text = loop {
        let text = h
            .http
            .get(format!("{}/metrics", h.admin))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        if text.contains(counted) || std::time::Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert!(text.contains(counted), "{text}");
    assert!(
        !text.contains("code=\"ok\",operation=\"contacts.list\",vendor=\"caac\""),
        "a wrong path must not count as a successful lookup: {text}"
    );
}

// ----- issue 12 #6: a member's `type` is provisional data ------------------------------------
//
// The vendor's document says only `"type": "string"`. What a word means is the routes file's
// `settings.member_types`; the sandbox serves the word as member data, in each plausible shape
// (`CaacState::set_member_type`). Alex Wong's external id is a Messenger PSID, not a LINE UID,
// so his channel can come from his `type` only; Nattaya's is a LINE UID, which says `line`
// whatever her `type` is.

/// Alex Wong, in the Messenger channel: `[channel_id, member_id]`.
const ALEX: [i64; 2] = [seed::CHANNEL_MESSENGER_ID, seed::MEMBER_ALEX_ID];
/// Nattaya Srisuk, in the LINE channel.
const NATTAYA: [i64; 2] = [seed::CHANNEL_LINE_ID, seed::MEMBER_NATTAYA_ID];

/// A GET on the caac connection, `fresh` past the response cache (`Cache-Control: no-cache`).
async fn read(h: &Harness, path: &str, fresh: bool) -> Value {
    let mut request = h
        .http
        .get(h.url(path))
        .bearer_auth(h.acme())
        .header("X-Connection", CONN);
    if fresh {
        request = request.header("Cache-Control", "no-cache");
    }
    expect_status(request.send().await.expect("request"), 200).await
}

/// What the gateway says of a member's channel: (the contact's handles, the conversation's
/// channel), read past the cache unless `fresh` is false.
async fn member_channel(h: &Harness, member: [i64; 2], fresh: bool) -> (Value, Value) {
    let contact = read(
        h,
        &format!("/v1/contacts/{}", id(Kind::Contact, &member)),
        fresh,
    )
    .await;
    let conversation = read(
        h,
        &format!("/v1/conversations/{}", id(Kind::Conversation, &member)),
        fresh,
    )
    .await;
    (contact["handles"].clone(), conversation["channel"].clone())
}

/// Serve `member` with the `type` shape `kind` (`None`: no field).
fn set_type(h: &Harness, member: [i64; 2], kind: Option<&str>) {
    assert!(
        state(h).set_member_type(member[0], member[1], kind),
        "no member {member:?}"
    );
}

fn handles(channel: &str, value: &str) -> Value {
    json!([{"channel": channel, "value": value}])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_type_the_routes_table_lists_is_the_members_channel() {
    let h = Harness::start().await;
    // Seeded `facebook`: the shipped table says `other`.
    assert_eq!(
        member_channel(&h, ALEX, true).await,
        (handles("other", seed::MEMBER_ALEX_PSID), json!("other"))
    );
    // `line` on a member whose id is not a LINE UID: only the table can say line.
    set_type(&h, ALEX, Some("line"));
    assert_eq!(
        member_channel(&h, ALEX, true).await,
        (handles("line", seed::MEMBER_ALEX_PSID), json!("line"))
    );
    // Words are matched in any case.
    set_type(&h, ALEX, Some("WhatsApp"));
    assert_eq!(
        member_channel(&h, ALEX, true).await,
        (
            handles("whatsapp", seed::MEMBER_ALEX_PSID),
            json!("whatsapp")
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_type_word_the_table_does_not_list_says_nothing() {
    let h = Harness::start().await;
    for word in ["user", "member", "customer"] {
        set_type(&h, ALEX, Some(word));
        assert_eq!(
            member_channel(&h, ALEX, true).await,
            (handles("other", seed::MEMBER_ALEX_PSID), Value::Null),
            "type {word:?}"
        );
        // The word reached the gateway as the vendor sent it.
        let raw = read(
            &h,
            &format!("/v1/contacts/{}?include=raw", id(Kind::Contact, &ALEX)),
            true,
        )
        .await;
        assert_eq!(raw["raw"]["type"], word);
        // A LINE UID still says line: the unknown word takes nothing away.
        set_type(&h, NATTAYA, Some(word));
        assert_eq!(
            member_channel(&h, NATTAYA, true).await,
            (handles("line", seed::MEMBER_NATTAYA_UID), json!("line")),
            "type {word:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_member_type_says_nothing() {
    let h = Harness::start().await;
    set_type(&h, ALEX, Some(""));
    assert_eq!(
        member_channel(&h, ALEX, true).await,
        (handles("other", seed::MEMBER_ALEX_PSID), Value::Null)
    );
    let raw = read(
        &h,
        &format!(
            "/v1/conversations/{}?include=raw",
            id(Kind::Conversation, &ALEX)
        ),
        true,
    )
    .await;
    assert_eq!(raw["raw"]["member"]["type"], "");
    set_type(&h, NATTAYA, Some(""));
    assert_eq!(
        member_channel(&h, NATTAYA, true).await,
        (handles("line", seed::MEMBER_NATTAYA_UID), json!("line"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_without_a_type_is_read_and_says_nothing() {
    let h = Harness::start().await;
    set_type(&h, ALEX, None);
    assert_eq!(
        member_channel(&h, ALEX, true).await,
        (handles("other", seed::MEMBER_ALEX_PSID), Value::Null)
    );
    let raw = read(
        &h,
        &format!("/v1/contacts/{}?include=raw", id(Kind::Contact, &ALEX)),
        true,
    )
    .await;
    assert!(raw["raw"].get("type").is_none(), "{raw}");
    assert_eq!(raw["raw"]["id"], seed::MEMBER_ALEX_ID);
    // Without a type, a LINE UID says line, in a read and in a lookup by handle.
    set_type(&h, NATTAYA, None);
    assert_eq!(
        member_channel(&h, NATTAYA, true).await,
        (handles("line", seed::MEMBER_NATTAYA_UID), json!("line"))
    );
    let found = read(
        &h,
        &format!("/v1/contacts?handle=line:{}", seed::MEMBER_NATTAYA_UID),
        true,
    )
    .await;
    assert_eq!(found["data"][0]["id"], id(Kind::Contact, &NATTAYA).as_str());
    assert_eq!(
        found["data"][0]["handles"],
        handles("line", seed::MEMBER_NATTAYA_UID)
    );
}

/// Ops correct the guess with one line of `routes/caac.yaml` and a reload: the next read —
/// cached before the reload — says what the new table says; a table the adapter refuses is
/// a 422 naming the key, and the old table keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_member_types_line_and_a_reload_change_what_a_type_means() {
    let h = Harness::start().await;
    set_type(&h, ALEX, Some("customer"));
    let unknown = (handles("other", seed::MEMBER_ALEX_PSID), Value::Null);
    assert_eq!(member_channel(&h, ALEX, false).await, unknown);
    // Cached: the same answer again, without a vendor call.
    let calls = caac(&h).call_count();
    assert_eq!(member_channel(&h, ALEX, false).await, unknown);
    assert_eq!(caac(&h).call_count(), calls);

    let reload = || async {
        let response = h
            .http
            .post(format!("{}/admin/reload", h.admin))
            .send()
            .await
            .expect("reload");
        let status = response.status().as_u16();
        (status, response.json::<Value>().await.expect("json"))
    };
    let shipped = h.read("routes/caac.yaml");
    let line = shipped
        .lines()
        .find(|l| l.trim_start().starts_with("member_types:"))
        .expect("a member_types line")
        .to_owned();
    let corrected = shipped.replace(
        &line,
        "  member_types: { customer: whatsapp, line: line, facebook: other } # provisional",
    );
    h.write("routes/caac.yaml", &corrected);
    let (status, body) = reload().await;
    assert_eq!(status, 200, "{body}");
    let whatsapp = (
        handles("whatsapp", seed::MEMBER_ALEX_PSID),
        json!("whatsapp"),
    );
    assert_eq!(member_channel(&h, ALEX, false).await, whatsapp);

    // A table the adapter refuses: 422 naming file and key; the corrected table still serves.
    h.write(
        "routes/caac.yaml",
        &shipped.replace(&line, "  member_types: { customer: telegram }"),
    );
    let (status, body) = reload().await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"]["file"]
            .as_str()
            .unwrap_or_default()
            .ends_with("routes/caac.yaml"),
        "{body}"
    );
    assert_eq!(body["error"]["key"], "settings.member_types", "{body}");
    assert!(
        body["error"]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("telegram"),
        "{body}"
    );
    assert_eq!(member_channel(&h, ALEX, true).await, whatsapp);
}
