//! The normalized API served end to end over the ChatCaptain sandbox (connection
//! `acme.chatcaptain`): every operation, the capabilities entry, what ChatCaptain cannot do,
//! and the vendor's error mapping.

use crate::harness::*;
use reqwest::Method;
use serde_json::{json, Value};
use switchboard::api::ids::{Kind, ObjectId};
use switchboard::api::operation::Vendor;
use switchboard::sandbox::chatcaptain::seed;
use switchboard::sandbox::{Credentials, Fault, Sandbox};

const CONN: &str = "chatcaptain";

fn id(kind: Kind, keys: &[&str]) -> String {
    ObjectId::new(
        kind,
        "acme",
        CONN,
        keys.iter().map(|k| (*k).to_owned()).collect(),
    )
    .encode()
}

fn sandbox(h: &Harness) -> &Sandbox {
    h.sandbox(Vendor::ChatCaptain)
        .expect("the harness starts the ChatCaptain sandbox")
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

fn ids(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|o| o["id"].as_str().expect("id").to_owned())
        .collect()
}

/// Follow `next_cursor` from `first` to the end; every page's ids, in order.
async fn all_pages(h: &Harness, first: &str) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    let mut path = first.to_owned();
    loop {
        let page = get(h, &path, 200).await;
        pages.push(ids(&page));
        match page["next_cursor"].as_str() {
            Some(cursor) => {
                let sep = if first.contains('?') { '&' } else { '?' };
                path = format!("{first}{sep}cursor={cursor}");
            }
            None => return pages,
        }
        assert!(pages.len() < 20, "pagination does not end");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capabilities_list_every_operation_and_the_honest_filters() {
    let h = Harness::start().await;
    let caps = h.get_json("/v1/capabilities", 200).await;
    let entry = caps["data"]
        .as_array()
        .expect("data")
        .iter()
        .find(|c| c["connection"] == CONN)
        .expect("the chatcaptain connection")
        .clone();
    assert_eq!(entry["vendor"], "chatcaptain");
    let mut ops: Vec<&str> = entry["operations"]
        .as_array()
        .expect("operations")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    ops.sort_unstable();
    assert_eq!(
        ops,
        [
            "contacts.create",
            "contacts.delete",
            "contacts.get",
            "contacts.list",
            "contacts.update",
            "conversations.create",
            "conversations.delete",
            "conversations.get",
            "conversations.list",
            "conversations.update",
            "messages.get",
            "messages.list",
            "messages.send",
        ]
    );
    assert_eq!(entry["filters"]["contacts.list"], json!(["q"]));
    assert_eq!(
        entry["filters"]["conversations.list"],
        json!(["status", "contact_id"])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contacts_page_by_created_date_across_every_page() {
    let h = Harness::start().await;
    let pages = all_pages(&h, "/v1/contacts?limit=10").await;
    // 30 contacts: three full pages, then the empty page a full last page leads to.
    let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
    assert_eq!(sizes, [10, 10, 10, 0]);
    let mut all: Vec<String> = pages.concat();
    assert_eq!(all.len(), seed::CONTACT_COUNT);
    // Newest first: the oldest contact (Anna) closes the list.
    assert_eq!(
        all.last().map(String::as_str),
        Some(id(Kind::Contact, &[seed::CONTACT_ANNA_ID]).as_str())
    );
    all.sort();
    all.dedup();
    assert_eq!(all.len(), seed::CONTACT_COUNT, "a page repeated a contact");
    // The vendor paged by date: the second call carried the first page's last `created`.
    let calls = sandbox(&h).calls();
    let second = calls
        .iter()
        .filter(|c| c.endpoint.as_deref() == Some("contacts.list"))
        .nth(1)
        .expect("a second page call");
    assert!(
        second
            .query
            .as_deref()
            .unwrap_or_default()
            .contains("pageToken=2025-01-07T"),
        "{second:?}"
    );
    assert!(second
        .path
        .starts_with(&format!("/v1/chatbots/{}/", seed::CHATBOT_ID)));

    // The shape of one contact.
    let anna = get(
        &h,
        &format!(
            "/v1/contacts/{}",
            id(Kind::Contact, &[seed::CONTACT_ANNA_ID])
        ),
        200,
    )
    .await;
    assert_eq!(anna["vendor"], "chatcaptain");
    assert_eq!(anna["connection"], CONN);
    assert_eq!(anna["name"], "Anna Schmidt");
    assert_eq!(anna["first_name"], "Anna");
    assert_eq!(anna["last_name"], "Schmidt");
    assert_eq!(anna["emails"], json!([seed::CONTACT_ANNA_EMAIL]));
    assert_eq!(anna["phones"], json!([seed::CONTACT_ANNA_PHONE]));
    assert_eq!(
        anna["handles"],
        json!([{"channel": "whatsapp", "value": "4917612345601"}])
    );
    assert_eq!(anna["custom_fields"]["kundennummer"], "K-4711");
    assert_eq!(anna["created_at"], seed::FIRST_CONTACT_CREATED);
    assert!(anna.get("raw").is_none());
    let raw = get(
        &h,
        &format!(
            "/v1/contacts/{}?include=raw",
            id(Kind::Contact, &[seed::CONTACT_ANNA_ID])
        ),
        200,
    )
    .await;
    assert_eq!(raw["raw"]["language"], "de");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contacts_search_pages_by_number() {
    let h = Harness::start().await;
    let found = get(&h, "/v1/contacts?q=anna", 200).await;
    assert!(ids(&found).contains(&id(Kind::Contact, &[seed::CONTACT_ANNA_ID])));
    assert!(found["next_cursor"].is_null());

    let pages = all_pages(&h, "/v1/contacts?q=kunde&limit=10").await;
    let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
    // 25 "Kunde NN" contacts; the search answer's `found` ends the paging exactly.
    assert_eq!(sizes, [10, 10, 5]);
    let searches: Vec<String> = sandbox(&h)
        .calls()
        .into_iter()
        .filter(|c| c.endpoint.as_deref() == Some("contacts.search"))
        .map(|c| c.query.unwrap_or_default())
        .collect();
    assert_eq!(searches.len(), 4);
    assert!(searches[3].contains("page=3"), "{searches:?}");
    assert!(searches[3].contains("pageSize=10"), "{searches:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contacts_create_update_and_delete() {
    let h = Harness::start().await;
    let created = send(
        &h,
        Method::POST,
        "/v1/contacts",
        json!({
            "first_name": "Greta",
            "last_name": "Krüger",
            "emails": ["greta@example.de"],
            "phones": ["+49 160 5550123"],
            "handles": [{"channel": "whatsapp", "value": "4916055501234"}],
            "avatar_url": "https://cdn.example.de/greta.png"
        }),
    )
    .await;
    let created = expect_status(created, 201).await;
    assert_eq!(created["name"], "Greta Krüger");
    assert_eq!(
        created["phones"],
        json!(["+491605550123", "+4916055501234"])
    );
    assert_eq!(created["avatar_url"], "https://cdn.example.de/greta.png");
    let remote = created["remote_id"].as_str().expect("remote id");
    // The connection's default language went along.
    let stored = sandbox(&h)
        .chatcaptain()
        .expect("state")
        .contact(remote)
        .expect("stored");
    assert_eq!(stored["language"], "de");
    assert_eq!(stored["whatsappId"], "4916055501234");

    let path = format!("/v1/contacts/{}", created["id"].as_str().expect("id"));
    let fetched = get(&h, &path, 200).await;
    assert_eq!(fetched["emails"], json!(["greta@example.de"]));

    // A half name is completed from the stored one; custom fields are ChatCaptain variables.
    let before = sandbox(&h).calls_to("contacts.get");
    let updated = send(
        &h,
        Method::PATCH,
        &path,
        json!({"last_name": "Schulz", "custom_fields": {"tier": "gold"}, "vendor_fields": {"language": "en"}}),
    )
    .await;
    let updated = expect_status(updated, 200).await;
    assert_eq!(updated["name"], "Greta Schulz");
    assert_eq!(updated["custom_fields"], json!({"tier": "gold"}));
    assert_eq!(updated["emails"], json!(["greta@example.de"]), "untouched");
    assert_eq!(sandbox(&h).calls_to("contacts.get"), before + 1);
    assert_eq!(
        sandbox(&h)
            .chatcaptain()
            .expect("state")
            .contact(remote)
            .expect("stored")["language"],
        "en"
    );

    // What ChatCaptain cannot store is refused before any call.
    let calls = sandbox(&h).call_count();
    for body in [
        json!({"company": "Acme"}),
        json!({"emails": ["a@x.de", "b@x.de"]}),
        json!({"handles": [{"channel": "line", "value": "U123"}]}),
    ] {
        let response = send(&h, Method::PATCH, &path, body).await;
        expect_problem(response, 400, "invalid_request").await;
    }
    let response = send(
        &h,
        Method::POST,
        "/v1/contacts",
        json!({"name": "X", "vendor_fields": {"language": ""}}),
    )
    .await;
    expect_problem(response, 400, "invalid_request").await;
    assert_eq!(sandbox(&h).call_count(), calls);

    let response = delete(&h, &path).await;
    assert_eq!(response.status(), 204);
    expect_problem(h.get_on(CONN, &path).await, 404, "not_found").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conversations_list_filter_and_window() {
    let h = Harness::start().await;
    let all = get(&h, "/v1/conversations?limit=50", 200).await;
    let all = all["data"].as_array().expect("data").clone();
    assert_eq!(all.len(), seed::CONVERSATION_COUNT);
    for c in &all {
        assert_eq!(c["vendor"], "chatcaptain");
        assert!(c["subject"].is_null() && c["assignee"].is_null() && c["priority"].is_null());
    }
    let open = get(&h, "/v1/conversations?status=open&limit=50", 200).await;
    let open = open["data"].as_array().expect("data").clone();
    assert_eq!(open.len(), seed::CONVERSATION_COUNT - seed::ARCHIVED_COUNT);
    assert!(open
        .iter()
        .all(|c| c["status"] == "open" && c["vendor_status"] == "active"));
    let closed = get(&h, "/v1/conversations?status=closed", 200).await;
    let closed = closed["data"].as_array().expect("data").clone();
    assert_eq!(closed.len(), seed::ARCHIVED_COUNT);
    assert!(closed.iter().all(|c| c["vendor_status"] == "archived"));
    // No ChatCaptain conversation reads as pending or resolved: exact, hence empty.
    for status in ["pending", "resolved"] {
        let none = get(&h, &format!("/v1/conversations?status={status}"), 200).await;
        assert_eq!(none["data"], json!([]), "{status}");
    }

    let anna = id(Kind::Contact, &[seed::CONTACT_ANNA_ID]);
    let hers = get(&h, &format!("/v1/conversations?contact_id={anna}"), 200).await;
    let hers = hers["data"].as_array().expect("data").clone();
    assert_eq!(hers.len(), 2);
    assert!(hers.iter().all(|c| c["contact_id"] == anna.as_str()));
    let listed = sandbox(&h)
        .calls()
        .into_iter()
        .rfind(|c| c.endpoint.as_deref() == Some("conversations.list"))
        .expect("a list call");
    assert_eq!(
        listed.query.as_deref(),
        Some(format!("contactId={}", seed::CONTACT_ANNA_ID).as_str())
    );

    // ChatCaptain answers the whole list; the gateway serves it in windows.
    let pages = all_pages(&h, "/v1/conversations?limit=2").await;
    let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
    assert_eq!(sizes, [2, 2, 1]);
    let expected: Vec<String> = all
        .iter()
        .map(|c| c["id"].as_str().expect("id").to_owned())
        .collect();
    assert_eq!(pages.concat(), expected);
    let windowed = all_pages(&h, "/v1/conversations?status=open&limit=2").await;
    assert_eq!(windowed.concat().len(), open.len());

    let one = get(
        &h,
        &format!(
            "/v1/conversations/{}",
            id(Kind::Conversation, &[seed::CONVERSATION_ANNA_ID])
        ),
        200,
    )
    .await;
    assert_eq!(one["channel"], "whatsapp");
    assert_eq!(one["contact_id"], anna.as_str());
    assert_eq!(one["status"], "open");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conversations_create_update_and_delete() {
    let h = Harness::start().await;
    // A new contact, with a first message.
    let created = send(
        &h,
        Method::POST,
        "/v1/conversations",
        json!({"contact": {"name": "Paul Neumann", "email": "paul@example.de"}, "text": "Guten Tag, Herr Neumann!"}),
    )
    .await;
    let created = expect_status(created, 201).await;
    assert_eq!(created["status"], "open");
    assert_eq!(
        created["channel"], "web",
        "the connection's default channel"
    );
    let cid = created["id"].as_str().expect("id").to_owned();
    let messages = get(&h, &format!("/v1/conversations/{cid}/messages"), 200).await;
    assert_eq!(messages["data"][0]["text"], "Guten Tag, Herr Neumann!");
    assert_eq!(messages["data"][0]["sender"]["type"], "agent");
    let contact = get(
        &h,
        &format!(
            "/v1/contacts/{}",
            created["contact_id"].as_str().expect("contact")
        ),
        200,
    )
    .await;
    assert_eq!(contact["emails"], json!(["paul@example.de"]));

    // An existing contact, in another channel.
    let anna = id(Kind::Contact, &[seed::CONTACT_ANNA_ID]);
    let second = send(
        &h,
        Method::POST,
        "/v1/conversations",
        json!({"contact_id": anna, "vendor_fields": {"channel_id": seed::CHANNEL_WHATSAPP_ID}}),
    )
    .await;
    let second = expect_status(second, 201).await;
    assert_eq!(second["contact_id"], anna.as_str());
    assert_eq!(second["channel"], "whatsapp");

    // A channel the chatbot does not have: the vendor's 400, passed on.
    let response = send(
        &h,
        Method::POST,
        "/v1/conversations",
        json!({"contact": {"name": "X"}, "vendor_fields": {"channel_id": "chn_fax"}}),
    )
    .await;
    let body = expect_problem(response, 400, "invalid_request").await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("Invalid input data."),
        "{body}"
    );

    // Resolve archives; open unarchives.
    let path = format!("/v1/conversations/{cid}");
    let resolved = send(&h, Method::PATCH, &path, json!({"status": "resolved"})).await;
    let resolved = expect_status(resolved, 200).await;
    assert_eq!(resolved["status"], "closed");
    assert_eq!(resolved["vendor_status"], "archived");
    let remote = resolved["remote_id"].as_str().expect("remote id");
    assert_eq!(
        sandbox(&h)
            .chatcaptain()
            .expect("state")
            .conversation(remote)
            .expect("stored")["archived"],
        true
    );
    assert_eq!(get(&h, &path, 200).await["status"], "closed");
    let reopened = send(&h, Method::PATCH, &path, json!({"status": "open"})).await;
    assert_eq!(expect_status(reopened, 200).await["status"], "open");

    // What ChatCaptain cannot change: 501 before any call.
    let calls = sandbox(&h).call_count();
    for body in [
        json!({"status": "pending"}),
        json!({"priority": "high"}),
        json!({"tags": ["vip"]}),
        json!({"assignee": {"user_id": "7"}}),
        json!({"status": "closed", "assignee": null}),
    ] {
        let response = send(&h, Method::PATCH, &path, body).await;
        expect_problem(response, 501, "unsupported_operation").await;
    }
    let response = send(
        &h,
        Method::POST,
        "/v1/conversations",
        json!({"contact": {"name": "X"}, "subject": "Hello"}),
    )
    .await;
    expect_problem(response, 400, "invalid_request").await;
    assert_eq!(sandbox(&h).call_count(), calls);

    let response = delete(&h, &path).await;
    assert_eq!(response.status(), 204);
    expect_problem(h.get_on(CONN, &path).await, 404, "not_found").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_list_get_and_send() {
    let h = Harness::start().await;
    let conversation = id(Kind::Conversation, &[seed::CONVERSATION_ANNA_ID]);
    let listed = get(
        &h,
        &format!("/v1/messages?conversation_id={conversation}"),
        200,
    )
    .await;
    let alias = get(
        &h,
        &format!("/v1/conversations/{conversation}/messages"),
        200,
    )
    .await;
    assert_eq!(listed["data"], alias["data"]);
    let rows: Vec<(Value, Value, Value)> = listed["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|m| {
            (
                m["sender"]["type"].clone(),
                m["direction"].clone(),
                m["type"].clone(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            (json!("contact"), json!("inbound"), json!("text")),
            (json!("bot"), json!("outbound"), json!("text")),
            (json!("agent"), json!("outbound"), json!("text")),
            (json!("contact"), json!("inbound"), json!("image")),
        ]
    );
    assert_eq!(listed["data"][3]["attachments"][0]["name"], "paket.jpg");

    // The whole list, served in windows.
    let pages = all_pages(
        &h,
        &format!("/v1/conversations/{conversation}/messages?limit=3"),
    )
    .await;
    let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
    assert_eq!(sizes, [3, 1]);

    let mid = id(
        Kind::Message,
        &[seed::CONVERSATION_JONAS_ID, seed::MESSAGE_TEMPLATE_ID],
    );
    let template = get(&h, &format!("/v1/messages/{mid}"), 200).await;
    assert_eq!(template["type"], "template");
    assert_eq!(template["sender"]["type"], "bot");
    assert_eq!(
        template["conversation_id"],
        id(Kind::Conversation, &[seed::CONVERSATION_JONAS_ID]).as_str()
    );
    // A message addressed through another conversation does not exist there.
    let wrong = id(
        Kind::Message,
        &[seed::CONVERSATION_ANNA_ID, seed::MESSAGE_TEMPLATE_ID],
    );
    expect_problem(
        h.get_on(CONN, &format!("/v1/messages/{wrong}")).await,
        404,
        "not_found",
    )
    .await;

    let sent = send(
        &h,
        Method::POST,
        "/v1/messages",
        json!({"conversation_id": conversation, "text": "Die Sendungsnummer ist 00340434."}),
    )
    .await;
    let sent = expect_status(sent, 201).await;
    assert_eq!(sent["direction"], "outbound");
    assert_eq!(sent["sender"]["type"], "agent");
    assert_eq!(sent["status"], "sent");
    assert_eq!(sent["private"], false);
    assert_eq!(sent["text"], "Die Sendungsnummer ist 00340434.");
    let read_back = get(
        &h,
        &format!("/v1/messages/{}", sent["id"].as_str().expect("id")),
        200,
    )
    .await;
    assert_eq!(read_back["text"], sent["text"]);

    let file = send(
        &h,
        Method::POST,
        "/v1/messages",
        json!({
            "conversation_id": conversation,
            "vendor_fields": {"attachment_ref": seed::ATTACHMENT_REF}
        }),
    )
    .await;
    let file = expect_status(file, 201).await;
    assert_eq!(file["type"], "file");
    assert_eq!(file["attachments"][0]["name"], "lieferschein.pdf");
    let after = get(
        &h,
        &format!("/v1/conversations/{conversation}/messages"),
        200,
    )
    .await;
    assert_eq!(after["data"].as_array().expect("data").len(), 6);

    // No private notes, no templates: 501 before any call.
    let calls = sandbox(&h).call_count();
    for body in [
        json!({"conversation_id": conversation, "text": "intern", "private": true}),
        json!({"conversation_id": conversation, "template": {"name": "welcome"}}),
    ] {
        let response = send(&h, Method::POST, "/v1/messages", body).await;
        expect_problem(response, 501, "unsupported_operation").await;
    }
    assert_eq!(sandbox(&h).call_count(), calls);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsupported_filters_and_malformed_ids_never_reach_the_vendor() {
    let h = Harness::start().await;
    sandbox(&h).reset_calls();
    for query in [
        "email=anna.schmidt@example.de",
        "phone=%2B4917612345601",
        "handle=whatsapp:4917612345601",
    ] {
        let response = h.get_on(CONN, &format!("/v1/contacts?{query}")).await;
        expect_problem(response, 400, "unsupported_filter").await;
    }
    let good = id(Kind::Conversation, &[seed::CONVERSATION_ANNA_ID]);
    for path in [
        "/v1/contacts/nope".to_owned(),
        "/v1/conversations/cv_!!!".to_owned(),
        // A conversation ID where a contact ID belongs.
        format!("/v1/contacts/{good}"),
        // A message ID needs the conversation and the message.
        format!(
            "/v1/messages/{}",
            id(Kind::Message, &[seed::MESSAGE_AGENT_REPLY_ID])
        ),
        format!("/v1/conversations/{}", id(Kind::Conversation, &["a", "b"])),
    ] {
        let response = h.get_on(CONN, &path).await;
        expect_problem(response, 404, "not_found").await;
    }
    let response = h
        .get_on(
            CONN,
            &format!(
                "/v1/conversations?contact_id={}",
                id(Kind::Contact, &["a", "b"])
            ),
        )
        .await;
    expect_problem(response, 404, "not_found").await;
    assert_eq!(sandbox(&h).call_count(), 0, "{:?}", sandbox(&h).calls());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_key_or_another_chatbot_is_vendor_auth_failed() {
    // A sandbox of our own, so the connections can name its address before the harness starts.
    let own = Sandbox::start_vendor(
        Vendor::ChatCaptain,
        load_routes("chatcaptain"),
        Credentials::new("right-key", ""),
    )
    .await
    .expect("sandbox");
    let base = own.base_url();
    let h = Harness::start_with(Options {
        extra_connections: format!(
            "  wrongkey:\n    chatcaptain:\n      vendor: chatcaptain\n      base_url: {base}\n      credentials: {{api_key: not-the-key}}\n      defaults: {{chatbot_id: {bot}, channel_id: chn_web, language: de}}\n    otherbot:\n      vendor: chatcaptain\n      base_url: {base}\n      credentials: {{api_key: right-key}}\n      defaults: {{chatbot_id: bot_someone_else, channel_id: chn_web, language: de}}\n    rightkey:\n      vendor: chatcaptain\n      base_url: {base}\n      credentials: {{api_key: right-key}}\n      defaults: {{chatbot_id: {bot}, channel_id: chn_web, language: de}}\n",
            bot = seed::CHATBOT_ID
        ),
        ..Options::default()
    })
    .await;
    let token = h.token("wrongkey", ALL_SCOPES);
    let call = |connection: &'static str| {
        h.http
            .get(h.url("/v1/conversations"))
            .bearer_auth(&token)
            .header("X-Connection", connection)
            .send()
    };
    for connection in ["chatcaptain", "otherbot"] {
        let body = expect_problem(
            call(connection).await.expect("request"),
            502,
            "vendor_auth_failed",
        )
        .await;
        assert_eq!(body["vendor"], "chatcaptain");
        assert_eq!(body["vendor_status"], 403);
        assert!(
            !body.to_string().contains("not-the-key") && !body.to_string().contains("right-key"),
            "credentials leaked: {body}"
        );
    }
    expect_status(call("rightkey").await.expect("request"), 200).await;
    let calls = own.calls();
    assert_eq!(calls.len(), 3);
    assert!(calls[1].path.contains("/bot_someone_else/"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vendor_faults_map_to_the_error_table() {
    let h = Harness::start_with(Options {
        vendor_timeout_ms: 400,
        ..Options::default()
    })
    .await;
    let path = format!(
        "/v1/conversations/{}/messages",
        id(Kind::Conversation, &[seed::CONVERSATION_LENA_ID])
    );
    let sandbox = sandbox(&h);

    sandbox.inject(Fault::Status(503), Some(1));
    let body = expect_problem(h.get_on(CONN, &path).await, 502, "vendor_error").await;
    assert_eq!(body["vendor_status"], 503);
    assert_eq!(body["vendor"], "chatcaptain");

    sandbox.inject(
        Fault::RateLimit {
            retry_after_secs: 9,
        },
        Some(1),
    );
    let response = h.get_on(CONN, &path).await;
    assert_eq!(response.headers()["retry-after"], "9");
    let body = expect_problem(response, 429, "vendor_rate_limited").await;
    assert_eq!(body["retry_after"], 9);

    sandbox.inject(Fault::Malformed, Some(1));
    expect_problem(h.get_on(CONN, &path).await, 502, "vendor_bad_response").await;

    sandbox.inject(
        Fault::Latency(std::time::Duration::from_millis(1500)),
        Some(1),
    );
    expect_problem(h.get_on(CONN, &path).await, 504, "vendor_timeout").await;

    // Faults used up: the next call works again.
    let page = get(&h, &path, 200).await;
    assert_eq!(page["data"].as_array().expect("data").len(), 2);

    // The vendor's 404 for an unknown conversation.
    let missing = id(Kind::Conversation, &["cnv_9999"]);
    expect_problem(
        h.get_on(CONN, &format!("/v1/conversations/{missing}"))
            .await,
        404,
        "not_found",
    )
    .await;
}
