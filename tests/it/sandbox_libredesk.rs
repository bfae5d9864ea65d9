//! The Libredesk sandbox over real sockets: auth, envelopes, pagination, the contract of every
//! endpoint, faults, call records, hot route swaps, and a contract check against Libredesk's
//! published OpenAPI document.

// Runs against the vendor sandboxes: needs the `sandbox` feature (on by default).
#![cfg(feature = "sandbox")]
// Test helpers fail loudly: a broken fixture is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use switchboard::config::routes::{compile, RoutesFile};
use switchboard::sandbox::libredesk::seed;
use switchboard::sandbox::{CallRecord, Credentials, Fault, Sandbox};
use switchboard::snapshot::routes::VendorRoutes;

const KEY: &str = "sandbox-key";
const SECRET: &str = "sandbox-secret";
const OPENAPI: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/docs/vendors/libredesk.openapi.json"
);

fn routes_yaml() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/routes/libredesk.yaml"
    ))
    .unwrap()
}

fn routes_from(yaml: &str) -> Arc<VendorRoutes> {
    let file: RoutesFile = serde_yaml::from_str(yaml).unwrap();
    Arc::new(compile(&file).unwrap())
}

async fn start() -> (Sandbox, Api) {
    let sandbox =
        Sandbox::start_libredesk(routes_from(&routes_yaml()), Credentials::new(KEY, SECRET))
            .await
            .unwrap();
    let api = Api::new(&sandbox);
    (sandbox, api)
}

fn token() -> String {
    format!("token {KEY}:{SECRET}")
}

/// A small client that speaks to the sandbox like the gateway would.
struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    fn new(sandbox: &Sandbox) -> Self {
        Api {
            base: format!("{}/api/v1", sandbox.base_url()),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
        }
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .header("Authorization", token())
    }

    async fn call(&self, builder: reqwest::RequestBuilder) -> (StatusCode, Value) {
        let response = builder.send().await.unwrap();
        let status = response.status();
        let bytes = response.bytes().await.unwrap();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&bytes)));
        (status, body)
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(self.request(Method::GET, path)).await
    }

    async fn send(
        &self,
        method: Method,
        path: impl AsRef<str>,
        body: Value,
    ) -> (StatusCode, Value) {
        self.call(self.request(method, path.as_ref()).json(&body))
            .await
    }

    /// GET and unwrap the success envelope.
    async fn data(&self, path: &str) -> Value {
        let (status, body) = self.get(path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        assert_eq!(body["status"], "success", "{body}");
        body["data"].clone()
    }
}

#[track_caller]
fn assert_error(status: StatusCode, body: &Value, want_status: u16, error_type: &str) {
    assert_eq!(status.as_u16(), want_status, "{body}");
    assert_eq!(body["status"], "error", "{body}");
    assert_eq!(body["data"], Value::Null, "{body}");
    assert_eq!(body["error_type"], error_type, "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

fn filters(value: Value) -> String {
    let raw = value.to_string();
    url::form_urlencoded::byte_serialize(raw.as_bytes()).collect()
}

// ----- auth ------------------------------------------------------------------------------------

#[tokio::test]
async fn both_auth_forms_are_accepted() {
    let (sandbox, api) = start().await;
    let url = format!("{}/contacts/{}", api.base, seed::CONTACT_ADA_ID);
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{KEY}:{SECRET}"))
    );
    for header in [token(), basic] {
        let (status, body) = api
            .call(api.http.get(&url).header("Authorization", header))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["status"], "success");
        assert_eq!(body["data"]["email"], seed::CONTACT_ADA_EMAIL);
    }
    sandbox.shutdown();
}

#[tokio::test]
async fn wrong_or_missing_credentials_are_refused_like_libredesk() {
    let (_sandbox, api) = start().await;
    let url = format!("{}/contacts/{}", api.base, seed::CONTACT_ADA_ID);
    let post_url = format!("{}/conversations", api.base);

    // A parsable header with the wrong secret: 401.
    let wrong = format!("token {KEY}:nope");
    let (status, body) = api
        .call(api.http.get(&url).header("Authorization", &wrong))
        .await;
    assert_error(status, &body, 401, "GeneralException");
    let (status, body) = api
        .call(
            api.http
                .post(&post_url)
                .header("Authorization", &wrong)
                .json(&json!({})),
        )
        .await;
    assert_error(status, &body, 401, "GeneralException");

    // No header: session auth, which wants a CSRF token on POST/PUT/DELETE.
    let (status, body) = api.call(api.http.get(&url)).await;
    assert_error(status, &body, 401, "GeneralException");
    let (status, body) = api.call(api.http.post(&post_url).json(&json!({}))).await;
    assert_error(status, &body, 403, "PermissionException");
    assert_eq!(body["message"], "csrf token mismatch");
    let status_url = format!(
        "{}/conversations/{}/status",
        api.base,
        seed::CONVERSATION_OPEN_UUID
    );
    let (status, body) = api
        .call(api.http.put(&status_url).json(&json!({"status": "Open"})))
        .await;
    assert_error(status, &body, 403, "PermissionException");

    // Prefixes are case-sensitive: "Token" is not parsed, so it counts as missing.
    let capital = format!("Token {KEY}:{SECRET}");
    let (status, body) = api
        .call(api.http.get(&url).header("Authorization", &capital))
        .await;
    assert_error(status, &body, 401, "GeneralException");
    let (status, body) = api
        .call(
            api.http
                .post(&post_url)
                .header("Authorization", &capital)
                .json(&json!({})),
        )
        .await;
    assert_error(status, &body, 403, "PermissionException");
}

// ----- contacts ----------------------------------------------------------------------------------

#[tokio::test]
async fn contacts_list_is_paged_with_libredesk_envelope() {
    let (_sandbox, api) = start().await;
    let first = api.data("/contacts").await;
    assert_eq!(first["total"], 35);
    assert_eq!(first["per_page"], 30);
    assert_eq!(first["total_pages"], 2);
    assert_eq!(first["page"], 1);
    assert_eq!(first["results"].as_array().unwrap().len(), 30);
    assert_eq!(first["results"][0]["id"], seed::CONTACT_ADA_ID);
    // ContactList items carry no phone (fetch the contact for that).
    assert!(first["results"][0].get("phone_number").is_none());

    let second = api.data("/contacts?page=2").await;
    assert_eq!(second["results"].as_array().unwrap().len(), 5);
    let last = api.data("/contacts?page=4&page_size=10").await;
    assert_eq!(last["results"].as_array().unwrap().len(), 5);
    assert_eq!(
        (last["total_pages"].as_u64(), last["per_page"].as_u64()),
        (Some(4), Some(10))
    );
    let beyond = api.data("/contacts?page=9&page_size=10").await;
    assert_eq!(beyond["results"], json!([]));
    // The published maximum of every list is 100.
    let clamped = api.data("/contacts?page_size=1000").await;
    assert_eq!(clamped["per_page"], 100);
    let sorted = api
        .data("/contacts?order_by=users.first_name&order=desc&page_size=1")
        .await;
    assert_eq!(sorted["results"][0]["first_name"], "Margaret");

    let (status, body) = api.get("/contacts?page=abc").await;
    assert_error(status, &body, 400, "InputException");
    let (status, body) = api.get("/contacts?page_size=ten").await;
    assert_error(status, &body, 400, "InputException");
}

#[tokio::test]
async fn contacts_search_needs_three_characters_and_answers_a_plain_array() {
    let (_sandbox, api) = start().await;
    let (status, body) = api.get("/contacts/search?query=ad").await;
    assert_error(status, &body, 400, "InputException");
    let (status, body) = api.get("/contacts/search").await;
    assert_error(status, &body, 400, "InputException");

    // The published ContactSearchResult: no id.
    let found = api.data("/contacts/search?query=LOVELACE").await;
    assert_eq!(found.as_array().unwrap().len(), 1);
    assert_eq!(found[0]["email"], seed::CONTACT_ADA_EMAIL);
    assert!(found[0].get("id").is_none(), "{found}");
    let by_phone = api.data("/contacts/search?query=207946").await;
    assert_eq!(by_phone.as_array().unwrap().len(), 2);
    let by_email = api.data("/contacts/search?query=example.nl").await;
    assert_eq!(by_email[0]["last_name"], "Dijkstra");
    let capped = api.data("/contacts/search?query=example.org").await;
    assert_eq!(capped.as_array().unwrap().len(), 15);
    assert_eq!(
        api.data("/contacts/search?query=nobody-here").await,
        json!([])
    );
}

#[tokio::test]
async fn contacts_get_validates_the_id() {
    let (_sandbox, api) = start().await;
    let ada = api
        .data(&format!("/contacts/{}", seed::CONTACT_ADA_ID))
        .await;
    assert_eq!(ada["first_name"], "Ada");
    assert_eq!(ada["phone_number"], "2079460101");
    assert_eq!(ada["phone_number_country_code"], "GB");
    assert_eq!(ada["avatar_url"], "https://avatars.example.com/ada.png");
    assert_eq!(ada["custom_attributes"], json!({"plan": "enterprise"}));
    let linus = api
        .data(&format!("/contacts/{}", seed::CONTACT_LINUS_ID))
        .await;
    assert_eq!(linus["phone_number"], Value::Null);

    let (status, body) = api.get("/contacts/abc").await;
    assert_error(status, &body, 400, "InputException");
    let (status, body) = api.get("/contacts/0").await;
    assert_error(status, &body, 400, "InputException");
    let (status, body) = api.get("/contacts/9999").await;
    assert_error(status, &body, 404, "NotFoundException");
}

#[tokio::test]
async fn contact_update_is_a_multipart_full_replace() {
    let (sandbox, api) = start().await;
    let path = format!("/contacts/{}", seed::CONTACT_ADA_ID);
    let form = || {
        reqwest::multipart::Form::new()
            .text("first_name", "Ada")
            .text("last_name", "King")
            .text("email", seed::CONTACT_ADA_EMAIL)
    };

    // JSON is not what the handler reads: fasthttp's MultipartForm() fails → 500.
    let (status, body) = api
        .send(
            Method::PUT,
            &path,
            json!({"first_name": "Ada", "email": seed::CONTACT_ADA_EMAIL}),
        )
        .await;
    assert_error(status, &body, 500, "GeneralException");

    // Required fields.
    let no_email = reqwest::multipart::Form::new().text("first_name", "Ada");
    let (status, body) = api
        .call(api.request(Method::PUT, &path).multipart(no_email))
        .await;
    assert_error(status, &body, 400, "InputException");
    let no_first = reqwest::multipart::Form::new().text("email", seed::CONTACT_ADA_EMAIL);
    let (status, body) = api
        .call(api.request(Method::PUT, &path).multipart(no_first))
        .await;
    assert_error(status, &body, 400, "InputException");
    let taken = reqwest::multipart::Form::new()
        .text("first_name", "Ada")
        .text("email", "charles@example.com");
    let (status, body) = api
        .call(api.request(Method::PUT, &path).multipart(taken))
        .await;
    assert_error(status, &body, 400, "InputException");
    let (status, body) = api.get("/contacts/abc").await;
    assert_error(status, &body, 400, "InputException");
    let (status, body) = api
        .call(api.request(Method::PUT, "/contacts/9999").multipart(form()))
        .await;
    assert_error(status, &body, 404, "NotFoundException");

    // Keeping the avatar means sending it back.
    let keep = form()
        .text("avatar_url", "https://avatars.example.com/ada.png")
        .text("phone_number", "2079460101")
        .text("phone_number_country_code", "GB");
    let (status, body) = api
        .call(api.request(Method::PUT, &path).multipart(keep))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["last_name"], "King");
    assert_eq!(
        body["data"]["avatar_url"],
        "https://avatars.example.com/ada.png"
    );

    // Omitted fields are replaced by nothing: the avatar and the phone are gone.
    let (status, body) = api
        .call(api.request(Method::PUT, &path).multipart(form()))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let updated = &body["data"];
    assert_eq!(updated["last_name"], "King");
    assert_eq!(updated["avatar_url"], Value::Null);
    assert_eq!(updated["phone_number"], Value::Null);
    assert_eq!(updated["phone_number_country_code"], Value::Null);
    let stored = sandbox
        .libredesk()
        .unwrap()
        .contact(seed::CONTACT_ADA_ID)
        .unwrap();
    assert_eq!(stored["avatar_url"], Value::Null);
    assert_eq!(stored["last_name"], "King");
}

// ----- conversations ---------------------------------------------------------------------------

#[tokio::test]
async fn conversations_list_orders_filters_and_pages() {
    let (_sandbox, api) = start().await;
    let all = api.data("/conversations/all").await;
    assert_eq!(all["total"], 5);
    // Default order: last_message_at DESC.
    assert_eq!(
        all["results"][0]["uuid"],
        seed::CONVERSATION_ADA_SECOND_UUID
    );
    assert_eq!(all["results"][4]["uuid"], seed::CONVERSATION_OPEN_UUID);
    // The item's contact is a ContactSummary: names, no id, no email.
    assert_eq!(all["results"][0]["contact"]["first_name"], "Ada");
    assert!(all["results"][0]["contact"].get("email").is_none());
    for field in ["contact_id", "assigned_user_id", "assigned_team_id"] {
        assert!(all["results"][0].get(field).is_none(), "{field}");
    }
    assert!(
        all["results"][0].get("tags").is_none(),
        "list items carry no tags"
    );
    let oldest_first = api
        .data("/conversations/all?order_by=conversations.created_at&order=asc")
        .await;
    assert_eq!(
        oldest_first["results"][0]["uuid"],
        seed::CONVERSATION_OPEN_UUID
    );
    let paged = api.data("/conversations/all?page=2&page_size=2").await;
    assert_eq!(paged["results"].as_array().unwrap().len(), 2);
    assert_eq!(paged["total_pages"], 3);
    assert_eq!(
        api.data("/conversations/all?page_size=500").await["per_page"],
        100
    );

    let open = filters(
        json!([{"model": "conversations", "field": "status_id", "operator": "equals", "value": "1"}]),
    );
    let open = api
        .data(&format!("/conversations/all?filters={open}"))
        .await;
    assert_eq!(open["total"], 2);
    assert!(open["results"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["status"] == "Open"));
    // By status name, through the joined conversation_statuses row (case-sensitive).
    let by_name = filters(
        json!([{"model": "conversation_statuses", "field": "name", "operator": "equals", "value": "Resolved"}]),
    );
    let resolved = api
        .data(&format!("/conversations/all?filters={by_name}"))
        .await;
    assert_eq!(resolved["total"], 1);
    assert_eq!(
        resolved["results"][0]["uuid"],
        seed::CONVERSATION_RESOLVED_UUID
    );
    let lower = filters(
        json!([{"model": "conversation_statuses", "field": "name", "operator": "equals", "value": "resolved"}]),
    );
    assert_eq!(
        api.data(&format!("/conversations/all?filters={lower}"))
            .await["total"],
        0
    );
    let unassigned = filters(
        json!([{"model": "conversations", "field": "assigned_user_id", "operator": "not set"}]),
    );
    assert_eq!(
        api.data(&format!("/conversations/all?filters={unassigned}"))
            .await["total"],
        3
    );
    let group = filters(json!({"logic": "OR", "rules": [
        {"model": "conversations", "field": "status_id", "operator": "equals", "value": "3"},
        {"model": "conversations", "field": "status_id", "operator": "equals", "value": "4"},
    ]}));
    assert_eq!(
        api.data(&format!("/conversations/all?filters={group}"))
            .await["total"],
        2
    );

    for bad in [
        "not-json".to_owned(),
        filters(
            json!([{"model": "conversations", "field": "status", "operator": "equals", "value": "Open"}]),
        ),
        filters(
            json!([{"model": "conversations", "field": "status_id", "operator": "equals", "value": 1}]),
        ),
        filters(
            json!([{"model": "conversations", "field": "status_id", "operator": "equals", "value": "Open"}]),
        ),
    ] {
        let (status, body) = api.get(&format!("/conversations/all?filters={bad}")).await;
        assert_error(status, &body, 400, "InputException");
    }
    let (status, body) = api.get("/conversations/all?order_by=subject").await;
    assert_error(status, &body, 400, "InputException");
}

#[tokio::test]
async fn conversation_get_answers_the_full_object() {
    let (_sandbox, api) = start().await;
    let c = api
        .data(&format!("/conversations/{}", seed::CONVERSATION_OPEN_UUID))
        .await;
    assert_eq!(c["status"], "Open");
    assert_eq!(c["priority"], "High");
    assert_eq!(c["tags"], json!(["billing", "vip"]));
    assert_eq!(c["assigned_user_id"], seed::AGENT_GRACE_ID);
    assert_eq!(c["assigned_team_id"], seed::TEAM_SUPPORT_ID);
    assert_eq!(c["inbox_id"], seed::INBOX_EMAIL_ID);
    assert_eq!(c["inbox_channel"], "email");
    assert_eq!(c["contact"]["id"], seed::CONTACT_ADA_ID);
    assert_eq!(c["contact_id"], seed::CONTACT_ADA_ID);
    assert_eq!(c["last_message_sender"], "contact");
    assert_eq!(
        c["previous_conversations"][0]["uuid"],
        seed::CONVERSATION_ADA_SECOND_UUID
    );
    let snoozed = api
        .data(&format!(
            "/conversations/{}",
            seed::CONVERSATION_SNOOZED_UUID
        ))
        .await;
    assert_eq!(snoozed["snoozed_until"], "2030-01-01T00:00:00Z");
    assert_eq!(snoozed["priority"], "Medium");
    let closed = api
        .data(&format!(
            "/conversations/{}",
            seed::CONVERSATION_CLOSED_UUID
        ))
        .await;
    assert_eq!(
        (closed["status"].as_str(), closed["priority"].clone()),
        (Some("Closed"), Value::Null)
    );

    let (status, body) = api
        .get("/conversations/00000000-0000-4000-8000-00000000dead")
        .await;
    assert_error(status, &body, 404, "NotFoundException");
    // Not a UUID: Postgres refuses the query, the real server answers 500.
    let (status, body) = api.get("/conversations/not-a-uuid").await;
    assert_error(status, &body, 500, "GeneralException");
}

#[tokio::test]
async fn conversation_create_validates_and_creates_contact_and_first_message() {
    let (sandbox, api) = start().await;
    let state = sandbox.libredesk().unwrap();
    let create = |body: Value| api.send(Method::POST, "/conversations", body);
    let valid = json!({
        "inbox_id": seed::INBOX_EMAIL_ID,
        "contact_email": "  Grace.Kelly@Example.com ",
        "first_name": "Grace",
        "last_name": "Kelly",
        "subject": "Order status",
        "content": "<p>Where is my order?</p>",
        "initiator": "contact",
    });

    for (field, value, want) in [
        ("first_name", Value::Null, 400),
        ("content", json!(""), 400),
        ("contact_email", json!("not-an-email"), 400),
        ("initiator", json!("bot"), 400),
        ("inbox_id", json!("1"), 400),
        ("inbox_id", json!(seed::INBOX_LIVECHAT_ID), 400),
        ("inbox_id", json!(99), 404),
    ] {
        let mut body = valid.clone();
        body[field] = value;
        let (status, body) = create(body).await;
        assert_eq!(status.as_u16(), want, "{field}: {body}");
    }
    // The published CreateConversationRequest requires `subject` and `last_name`.
    for field in ["subject", "last_name"] {
        let mut body = valid.clone();
        body.as_object_mut().unwrap().remove(field);
        let (status, body) = create(body).await;
        assert_error(status, &body, 400, "InputException");
        assert!(body["message"].as_str().unwrap().contains(field), "{body}");
    }
    let (status, body) = api
        .call(
            api.request(Method::POST, "/conversations")
                .body(valid.to_string()),
        )
        .await;
    assert_error(status, &body, 400, "InputException");
    assert_eq!(state.conversation_count(), seed::CONVERSATION_COUNT);

    let (status, body) = create(valid.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let created = &body["data"];
    assert_eq!(created["status"], "Open");
    assert_eq!(created["subject"], "Order status");
    assert_eq!(created["contact"]["email"], "grace.kelly@example.com");
    assert_eq!(created["last_message_sender"], "contact");
    assert_eq!(created["uuid"], "c0000000-0000-4000-8000-000000000006");
    assert_eq!(state.contact_count(), seed::CONTACT_COUNT + 1);
    let messages = state.messages(created["uuid"].as_str().unwrap());
    assert_eq!(messages.len(), 1);
    assert_eq!(
        (messages[0]["type"].as_str(), messages[0]["status"].as_str()),
        (Some("incoming"), Some("received"))
    );

    // An existing contact is reused; an agent-initiated conversation starts with a reply.
    let mut again = valid.clone();
    again["contact_email"] = json!(seed::CONTACT_ADA_EMAIL);
    again["initiator"] = json!("agent");
    again["team_id"] = json!(seed::TEAM_BILLING_ID);
    again["agent_id"] = json!(seed::AGENT_ALAN_ID);
    let (status, body) = create(again).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["contact_id"], seed::CONTACT_ADA_ID);
    assert_eq!(body["data"]["contact"]["first_name"], "Ada");
    assert_eq!(body["data"]["assigned_team_id"], seed::TEAM_BILLING_ID);
    assert_eq!(body["data"]["assigned_user_id"], seed::AGENT_ALAN_ID);
    assert_eq!(body["data"]["last_message_sender"], "agent");
    assert_eq!(state.contact_count(), seed::CONTACT_COUNT + 1);
    assert_eq!(state.conversation_count(), seed::CONVERSATION_COUNT + 2);
}

#[tokio::test]
async fn status_priority_assignees_and_tags_change_state() {
    let (sandbox, api) = start().await;
    let state = sandbox.libredesk().unwrap();
    let uuid = seed::CONVERSATION_OPEN_UUID;
    let put = |suffix: &str, body: Value| {
        api.send(Method::PUT, format!("/conversations/{uuid}/{suffix}"), body)
    };

    let (status, body) = put("status", json!({"status": "Resolved"})).await;
    assert_eq!(
        (status, body["data"].clone()),
        (StatusCode::OK, json!(true)),
        "{body}"
    );
    assert_eq!(state.conversation_status(uuid).as_deref(), Some("Resolved"));
    assert!(state.conversation(uuid).unwrap()["resolved_at"].is_string());
    for bad in [
        json!({"status": "Done"}),
        json!({"status": "open"}),
        json!({}),
        json!({"status": "Snoozed"}),
        json!({"status": "Snoozed", "snoozed_until": "2030-01-01T00:00:00Z"}),
        json!({"status": 1}),
    ] {
        let (status, body) = put("status", bad.clone()).await;
        assert_error(status, &body, 400, "InputException");
    }
    let (status, body) = put(
        "status",
        json!({"status": "Snoozed", "snoozed_until": "1h30m"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(state.conversation_status(uuid).as_deref(), Some("Snoozed"));
    assert!(state.conversation(uuid).unwrap()["snoozed_until"].is_string());
    let (status, body) = api
        .send(
            Method::PUT,
            "/conversations/00000000-0000-4000-8000-00000000dead/status",
            json!({"status": "Open"}),
        )
        .await;
    assert_error(status, &body, 404, "NotFoundException");

    let (status, body) = put("priority", json!({"priority": "Urgent"})).await;
    assert_error(status, &body, 400, "InputException");
    let (status, _) = put("priority", json!({"priority": "Low"})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(state.conversation(uuid).unwrap()["priority"], "Low");

    let (status, _) = put("assignee/user", json!({"assignee_id": seed::AGENT_ALAN_ID})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        state.conversation(uuid).unwrap()["assigned_user_id"],
        seed::AGENT_ALAN_ID
    );
    let (status, body) = put("assignee/user", json!({"assignee_id": 99})).await;
    assert_error(status, &body, 404, "NotFoundException");
    let (status, body) = put("assignee/user", json!({"assignee_id": "2"})).await;
    assert_error(status, &body, 400, "InputException");
    let (status, _) = put(
        "assignee/team",
        json!({"assignee_id": seed::TEAM_BILLING_ID}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let after_team = state.conversation(uuid).unwrap();
    assert_eq!(after_team["assigned_team_id"], seed::TEAM_BILLING_ID);
    assert_eq!(
        after_team["assigned_user_id"],
        Value::Null,
        "a team change clears the user"
    );
    let (status, body) = put("assignee/team", json!({"assignee_id": 42})).await;
    assert_error(status, &body, 404, "NotFoundException");
    let (status, _) = put("assignee/team/remove", json!({})).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = put("assignee/user/remove", json!({})).await;
    assert_eq!(status, StatusCode::OK);
    let cleared = state.conversation(uuid).unwrap();
    assert_eq!(
        (
            cleared["assigned_user_id"].clone(),
            cleared["assigned_team_id"].clone()
        ),
        (Value::Null, Value::Null)
    );

    let tags = |body: Value| api.send(Method::POST, format!("/conversations/{uuid}/tags"), body);
    assert_eq!(
        tags(json!({"tags": ["refund", "vip", "refund"]})).await.0,
        StatusCode::OK
    );
    assert_eq!(
        state.conversation(uuid).unwrap()["tags"],
        json!(["refund", "vip"])
    );
    assert_eq!(
        tags(json!({"tags": ["urgent"], "action": "add"})).await.0,
        StatusCode::OK
    );
    assert_eq!(
        state.conversation(uuid).unwrap()["tags"],
        json!(["refund", "vip", "urgent"])
    );
    let (status, body) = tags(json!({"tags": "vip"})).await;
    assert_error(status, &body, 400, "InputException");

    // Every change left an activity message, like the real server.
    let activities = api
        .data(&format!(
            "/conversations/{uuid}/messages?type=activity&page_size=100"
        ))
        .await;
    assert!(activities["total"].as_u64().unwrap() >= 8, "{activities}");
    assert!(activities["results"]
        .as_array()
        .unwrap()
        .iter()
        .all(|m| m["private"] == true));
}

// ----- messages ----------------------------------------------------------------------------------

#[tokio::test]
async fn messages_list_newest_first_with_filters() {
    let (_sandbox, api) = start().await;
    let uuid = seed::CONVERSATION_OPEN_UUID;
    let all = api.data(&format!("/conversations/{uuid}/messages")).await;
    assert_eq!(all["total"], 4);
    assert_eq!(all["results"][0]["uuid"], seed::MESSAGE_ADA_FOLLOWUP_UUID);
    assert_eq!(all["results"][3]["uuid"], seed::MESSAGE_ADA_FIRST_UUID);
    let second = api
        .data(&format!(
            "/conversations/{uuid}/messages?page=2&page_size=1"
        ))
        .await;
    assert_eq!(
        second["results"][0]["uuid"],
        seed::MESSAGE_PRIVATE_NOTE_UUID
    );
    assert_eq!(second["total_pages"], 4);
    let private = api
        .data(&format!("/conversations/{uuid}/messages?private=true"))
        .await;
    assert_eq!(private["total"], 1);
    let incoming = api
        .data(&format!("/conversations/{uuid}/messages?type=incoming"))
        .await;
    assert_eq!(incoming["total"], 2);
    let resolved = api
        .data(&format!(
            "/conversations/{}/messages?type=incoming&type=outgoing",
            seed::CONVERSATION_RESOLVED_UUID
        ))
        .await;
    assert_eq!(resolved["total"], 2, "the activity is filtered out");
    let (status, body) = api
        .get(&format!("/conversations/{uuid}/messages?type=note"))
        .await;
    assert_error(status, &body, 400, "InputException");
    let (status, body) = api
        .get("/conversations/00000000-0000-4000-8000-00000000dead/messages")
        .await;
    assert_error(status, &body, 404, "NotFoundException");
}

#[tokio::test]
async fn message_get_checks_the_conversation() {
    let (_sandbox, api) = start().await;
    let uuid = seed::CONVERSATION_OPEN_UUID;
    let m = api
        .data(&format!(
            "/conversations/{uuid}/messages/{}",
            seed::MESSAGE_GRACE_REPLY_UUID
        ))
        .await;
    assert_eq!(m["type"], "outgoing");
    assert_eq!(m["sender_type"], "agent");
    assert_eq!(m["sender_id"], seed::AGENT_GRACE_ID);
    assert_eq!(m["conversation_uuid"], uuid);
    assert_eq!(m["content_type"], "html");
    assert_eq!(
        m["text_content"],
        "Hi Ada, I've re-sent invoice #1042 to ada@example.com."
    );
    let (status, body) = api
        .get(&format!(
            "/conversations/{uuid}/messages/{}",
            seed::MESSAGE_ACTIVITY_UUID
        ))
        .await;
    assert_error(status, &body, 403, "PermissionException");
    let (status, body) = api
        .get(&format!(
            "/conversations/{uuid}/messages/e0000000-0000-4000-8000-0000000000ff"
        ))
        .await;
    assert_error(status, &body, 404, "NotFoundException");
}

#[tokio::test]
async fn messages_send_requires_sender_type() {
    let (sandbox, api) = start().await;
    let uuid = seed::CONVERSATION_OPEN_UUID;
    let path = format!("/conversations/{uuid}/messages");

    let (status, body) = api
        .send(Method::POST, &path, json!({"message": "<p>Hello</p>"}))
        .await;
    assert_error(status, &body, 400, "InputException");
    assert_eq!(body["message"], "sender_type required");
    let (status, body) = api
        .send(
            Method::POST,
            &path,
            json!({"message": "<p>Hi</p>", "sender_type": "contact", "private": true}),
        )
        .await;
    assert_error(status, &body, 400, "InputException");
    let (status, body) = api
        .send(Method::POST, &path, json!({"sender_type": "agent"}))
        .await;
    assert_error(status, &body, 400, "InputException");
    let (status, body) = api
        .send(
            Method::POST,
            &path,
            json!({"message": "<p>x</p>", "sender_type": "agent", "attachments": [5]}),
        )
        .await;
    assert_error(status, &body, 400, "InputException");
    // The Go handler answers an undecodable body with 500 + InputException.
    let (status, body) = api
        .send(
            Method::POST,
            &path,
            json!({"message": 5, "sender_type": "agent"}),
        )
        .await;
    assert_error(status, &body, 500, "InputException");

    let (status, body) = api
        .send(
            Method::POST,
            &path,
            json!({"message": "<p>On it, Ada.</p>", "sender_type": "agent"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let sent = &body["data"];
    assert_eq!(
        (sent["type"].as_str(), sent["status"].as_str()),
        (Some("outgoing"), Some("pending"))
    );
    assert_eq!(sent["private"], false);
    assert_eq!(sent["conversation_uuid"], uuid);
    assert_eq!(sent["meta"]["to"], json!([seed::CONTACT_ADA_EMAIL]));
    let newest = api.data(&format!("{path}?page_size=1")).await;
    assert_eq!(newest["results"][0]["uuid"], sent["uuid"]);
    assert_eq!(newest["results"][0]["status"], "sent");
    let conversation = sandbox.libredesk().unwrap().conversation(uuid).unwrap();
    assert_eq!(conversation["last_message"], "On it, Ada.");
    assert_eq!(conversation["last_message_sender"], "agent");

    let (status, body) = api
        .send(
            Method::POST,
            &path,
            json!({"message": "<p>internal</p>", "sender_type": "agent", "private": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (
            body["data"]["private"].clone(),
            body["data"]["status"].clone()
        ),
        (json!(true), json!("sent"))
    );
    let (status, body) = api
        .send(
            Method::POST,
            &path,
            json!({"message": "<p>from Ada</p>", "sender_type": "contact"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["type"], "incoming");
    assert_eq!(body["data"]["sender_id"], seed::CONTACT_ADA_ID);
}

// ----- faults ----------------------------------------------------------------------------------

#[tokio::test]
async fn latency_fault_outlasts_a_short_client_timeout() {
    let (sandbox, api) = start().await;
    sandbox.inject(Fault::Latency(Duration::from_millis(1500)), Some(1));
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(250))
        .build()
        .unwrap();
    let error = impatient
        .get(format!("{}/contacts/{}", api.base, seed::CONTACT_ADA_ID))
        .header("Authorization", token())
        .send()
        .await
        .unwrap_err();
    assert!(error.is_timeout(), "{error:?}");
    assert!(sandbox.active_faults().is_empty(), "one use, consumed");
    assert_eq!(api.get("/contacts/101").await.0, StatusCode::OK);
}

#[tokio::test]
async fn status_rate_limit_and_malformed_faults_count_down() {
    let (sandbox, api) = start().await;
    let path = format!("/contacts/{}", seed::CONTACT_ADA_ID);

    sandbox.inject(Fault::Status(503), Some(2));
    for _ in 0..2 {
        let (status, body) = api.get(&path).await;
        assert_error(status, &body, 503, "GeneralException");
    }
    assert_eq!(api.get(&path).await.0, StatusCode::OK);

    sandbox.inject(
        Fault::RateLimit {
            retry_after_secs: 7,
        },
        Some(1),
    );
    let response = api.request(Method::GET, &path).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.headers()["retry-after"], "7");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error_type"], "RateLimitException");

    sandbox.inject(Fault::Malformed, Some(1));
    let response = api.request(Method::GET, &path).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = response.bytes().await.unwrap();
    assert!(serde_json::from_slice::<Value>(&bytes).is_err());
    assert_eq!(api.get(&path).await.0, StatusCode::OK);

    // Faults come before auth, and last until cleared when `times` is None.
    sandbox.inject(Fault::Status(500), None);
    for _ in 0..3 {
        let (status, body) = api.call(api.http.get(format!("{}{path}", api.base))).await;
        assert_error(status, &body, 500, "GeneralException");
    }
    assert_eq!(sandbox.active_faults(), vec![(Fault::Status(500), None)]);
    // ...but only in front of routes-file endpoints.
    let (status, body) = api.get("/no/such/path").await;
    assert_error(status, &body, 404, "NotFoundException");
    sandbox.clear_faults();
    assert_eq!(api.get(&path).await.0, StatusCode::OK);
}

#[tokio::test]
async fn reset_fault_drops_the_connection_without_a_response() {
    let (sandbox, api) = start().await;
    sandbox.inject(Fault::Reset, Some(2));

    let error = api
        .request(Method::GET, "/contacts/101")
        .send()
        .await
        .unwrap_err();
    assert!(error.status().is_none(), "{error:?}");
    assert!(!error.is_timeout(), "{error:?}");

    // On the wire: not one byte of a status line, then EOF or RST.
    let mut stream = TcpStream::connect(sandbox.addr()).await.unwrap();
    let request = format!(
        "GET /api/v1/contacts/101 HTTP/1.1\r\nHost: sandbox\r\nAuthorization: {}\r\n\r\n",
        token()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut received = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut received))
        .await
        .expect("the sandbox closed the connection");
    match read {
        Ok(_) => {}
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
    }
    assert!(
        received.is_empty(),
        "{}",
        String::from_utf8_lossy(&received)
    );

    assert_eq!(api.get("/contacts/101").await.0, StatusCode::OK);
    assert_eq!(sandbox.calls_to("contacts.get"), 3);
}

// ----- server robustness ------------------------------------------------------------------------

/// Read one HTTP/1.1 response with a Content-Length body from a raw stream.
async fn read_response(stream: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&buf).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap())
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + length {
                return text;
            }
        }
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut chunk))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "connection closed mid-response: {text}");
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[tokio::test]
async fn keep_alive_and_abrupt_clients() {
    let (sandbox, api) = start().await;

    // Two requests on one connection.
    let mut stream = TcpStream::connect(sandbox.addr()).await.unwrap();
    for id in [101, 102] {
        let request = format!(
            "GET /api/v1/contacts/{id} HTTP/1.1\r\nHost: sandbox\r\nAuthorization: {}\r\n\r\n",
            token()
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let response = read_response(&mut stream).await;
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        assert!(response.contains(&format!("\"id\":{id}")), "{response}");
    }

    // A client that hangs up mid-request, and one that sends garbage.
    let mut half = TcpStream::connect(sandbox.addr()).await.unwrap();
    half.write_all(b"PUT /api/v1/contacts/101 HTTP/1.1\r\nContent-Length: 500\r\n\r\n{\"a\"")
        .await
        .unwrap();
    drop(half);
    let mut garbage = TcpStream::connect(sandbox.addr()).await.unwrap();
    garbage
        .write_all(b"\x00\x01\x02 NOT HTTP AT ALL\r\n\r\n")
        .await
        .unwrap();
    let mut sink = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), garbage.read_to_end(&mut sink)).await;

    // A body over the size cap is refused, not buffered.
    let (status, body) = api
        .call(
            api.request(Method::POST, "/conversations")
                .header("Content-Type", "application/json")
                .body(vec![b' '; 3 * 1024 * 1024]),
        )
        .await;
    assert_error(status, &body, 413, "InputException");

    assert_eq!(api.get("/contacts/101").await.0, StatusCode::OK);
}

#[tokio::test]
async fn calls_are_recorded_without_credentials() {
    let (sandbox, api) = start().await;
    api.call(
        api.request(Method::GET, "/contacts?page=2&page_size=5")
            .header("X-Request-Id", "req-1"),
    )
    .await;
    api.get("/contacts/101").await;
    api.send(
        Method::POST,
        &format!("/conversations/{}/tags", seed::CONVERSATION_OPEN_UUID),
        json!({"tags": []}),
    )
    .await;
    let (status, body) = api.get("/nowhere").await;
    assert_error(status, &body, 404, "NotFoundException");
    let (status, body) = api.send(Method::DELETE, "/contacts/101", json!({})).await;
    assert_error(status, &body, 405, "InputException");

    let calls = sandbox.calls();
    assert_eq!(sandbox.call_count(), 5);
    assert_eq!(
        calls[0],
        CallRecord {
            method: "GET".into(),
            path: "/api/v1/contacts".into(),
            query: Some("page=2&page_size=5".into()),
            endpoint: Some("contacts.list".into()),
            content_type: None,
            request_id: Some("req-1".into()),
            authorization_schemes: vec!["token".into()],
        }
    );
    assert_eq!(
        calls[2].endpoint.as_deref(),
        Some("conversations.update_tags")
    );
    assert_eq!(calls[2].content_type.as_deref(), Some("application/json"));
    assert_eq!(
        (calls[3].endpoint.clone(), calls[3].path.as_str()),
        (None, "/api/v1/nowhere")
    );
    assert_eq!(calls[4].endpoint, None);
    assert_eq!(sandbox.calls_to("contacts.get"), 1);
    assert!(!format!("{calls:?}").contains(SECRET));
    sandbox.reset_calls();
    assert_eq!(sandbox.call_count(), 0);
}

#[tokio::test]
async fn set_routes_moves_a_path_for_the_next_request() {
    let (sandbox, api) = start().await;
    let old = format!(
        "/conversations/{}/messages/{}",
        seed::CONVERSATION_OPEN_UUID,
        seed::MESSAGE_ADA_FIRST_UUID
    );
    let new = format!(
        "/conversations/{}/msgs/{}",
        seed::CONVERSATION_OPEN_UUID,
        seed::MESSAGE_ADA_FIRST_UUID
    );
    assert_eq!(api.get(&old).await.0, StatusCode::OK);
    let (status, body) = api.get(&new).await;
    assert_error(status, &body, 404, "NotFoundException");

    let yaml = routes_yaml().replace(
        "/api/v1/conversations/{uuid}/messages/{message_uuid}",
        "/api/v1/conversations/{uuid}/msgs/{message_uuid}",
    );
    sandbox.set_routes(routes_from(&yaml)).unwrap();
    let (status, body) = api.get(&old).await;
    assert_error(status, &body, 404, "NotFoundException");
    assert_eq!(api.data(&new).await["uuid"], seed::MESSAGE_ADA_FIRST_UUID);
    assert_eq!(sandbox.calls_to("messages.get"), 2);
    assert_eq!(sandbox.base_url(), format!("http://{}", sandbox.addr()));
}

#[tokio::test]
async fn serve_uses_a_listener_bound_by_the_caller() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let sandbox = Sandbox::serve_libredesk(
        listener,
        routes_from(&routes_yaml()),
        Credentials::new(KEY, SECRET),
    )
    .await
    .unwrap();
    assert_eq!(sandbox.addr(), addr);
    let api = Api::new(&sandbox);
    assert_eq!(
        api.data("/contacts/search?query=ada").await[0]["email"],
        seed::CONTACT_ADA_EMAIL
    );
    drop(sandbox);
    // Dropping the sandbox stops the server.
    let refused = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if TcpStream::connect(addr).await.is_err() {
                break;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(
        refused.is_ok(),
        "the listener is closed once the sandbox is dropped"
    );
}

// ----- contract check against the published OpenAPI document -----------------------------------

fn openapi() -> Value {
    let text = std::fs::read_to_string(OPENAPI).unwrap_or_else(|e| panic!("{OPENAPI}: {e}"));
    serde_json::from_str(&text).unwrap()
}

/// Do two path templates name the same route? Literal segments must be equal; placeholders
/// match placeholders by position, whatever their names (ours `{uuid}/…/{message_uuid}`, the
/// document's `{cuuid}/…/{uuid}`).
fn same_route(ours: &str, theirs: &str) -> bool {
    let is_param = |s: &str| s.starts_with('{') && s.ends_with('}');
    let a: Vec<&str> = ours.split('/').collect();
    let b: Vec<&str> = theirs.split('/').collect();
    a.len() == b.len()
        && a.iter()
            .zip(&b)
            .all(|(x, y)| if is_param(x) { is_param(y) } else { x == y })
}

#[test]
fn every_routes_file_call_exists_in_the_openapi_document() {
    let doc = openapi();
    let paths = doc["paths"].as_object().unwrap();
    let routes = routes_from(&routes_yaml());
    assert!(!routes.endpoints.is_empty());
    for endpoint in routes.endpoints.values() {
        let method = endpoint.method.as_str().to_ascii_lowercase();
        let matches: Vec<&String> = paths
            .iter()
            .filter(|(path, ops)| {
                same_route(endpoint.path.source(), path) && ops.get(&method).is_some()
            })
            .map(|(path, _)| path)
            .collect();
        assert_eq!(
            matches.len(),
            1,
            "{} {} {}: expected exactly one matching operation in the document, found {matches:?}",
            endpoint.name,
            endpoint.method,
            endpoint.path.source()
        );
    }
}

/// Properties where the sandbox follows the Go server instead of the document's type.
const TYPE_DEVIATIONS: &[(&str, &str)] = &[
    // The document says array; the Go model is a JSON object (`json.RawMessage`, default '{}').
    ("Conversation", "meta"),
];

/// Check `value` against a component schema: every `required` property present; and, as
/// the document marks none required for these objects, every property it lists present too
/// (the sandbox implements them all); non-null values of the documented type and enum.
/// Every property of `value` is one `schema_name` documents.
fn check_only_documented(doc: &Value, schema_name: &str, value: &Value) {
    let properties = doc["components"]["schemas"][schema_name]["properties"]
        .as_object()
        .unwrap_or_else(|| panic!("{schema_name}: no properties"));
    for key in value.as_object().unwrap().keys() {
        assert!(
            properties.contains_key(key),
            "{schema_name} has no `{key}`: {value}"
        );
    }
}

fn check_object(doc: &Value, schema_name: &str, value: &Value) {
    let schema = &doc["components"]["schemas"][schema_name];
    let properties = schema["properties"]
        .as_object()
        .unwrap_or_else(|| panic!("{schema_name}: no properties"));
    let object = value
        .as_object()
        .unwrap_or_else(|| panic!("{schema_name}: not an object: {value}"));
    let required: Vec<&str> = schema["required"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for name in &required {
        assert!(
            object.contains_key(*name),
            "{schema_name}.{name} is required"
        );
    }
    for (name, property) in properties {
        let Some(actual) = object.get(name) else {
            panic!("{schema_name}.{name} missing from {value}");
        };
        if actual.is_null() || TYPE_DEVIATIONS.contains(&(schema_name, name.as_str())) {
            continue;
        }
        let ok = match property["type"].as_str() {
            Some("integer") => actual.is_i64(),
            Some("number") => actual.is_number(),
            Some("string") => actual.is_string(),
            Some("boolean") => actual.is_boolean(),
            Some("array") => actual.is_array(),
            Some("object") => actual.is_object(),
            _ => true, // $ref
        };
        assert!(
            ok,
            "{schema_name}.{name}: {actual} is not a {}",
            property["type"]
        );
        if property["format"] == "date-time" {
            let text = actual.as_str().unwrap_or_default();
            assert!(
                text.len() >= 20 && text.ends_with('Z') && text.as_bytes()[10] == b'T',
                "{schema_name}.{name}: {text}"
            );
        }
        if let Some(allowed) = property["enum"].as_array() {
            assert!(
                allowed.contains(actual),
                "{schema_name}.{name}: {actual} not in {allowed:?}"
            );
        }
    }
}

/// Endpoint → schema mapping checked here (the document's response schemas):
/// contacts.get → Contact, contacts.list items → ContactList, contacts.search items →
/// ContactSearchResult, conversations.get/create → Conversation (its `contact` → Contact),
/// conversations.list items → ConversationListItem, messages.get/send and messages.list items
/// → Message. Envelopes: `{status, data}` (…Response schemas).
#[tokio::test]
async fn sandbox_objects_carry_every_documented_property() {
    let doc = openapi();
    let (_sandbox, api) = start().await;

    let (_, envelope) = api
        .get(&format!("/contacts/{}", seed::CONTACT_ADA_ID))
        .await;
    for key in doc["components"]["schemas"]["ContactResponse"]["properties"]
        .as_object()
        .unwrap()
        .keys()
    {
        assert!(envelope.get(key).is_some(), "envelope lacks {key}");
    }
    check_object(&doc, "Contact", &envelope["data"]);
    check_object(
        &doc,
        "Contact",
        &api.data(&format!("/contacts/{}", seed::CONTACT_LINUS_ID))
            .await,
    );
    // List and search items carry exactly their schema's fields: a gateway that reads a
    // field the vendor's list item does not have fails here, not in production.
    for item in api.data("/contacts?page_size=3").await["results"]
        .as_array()
        .unwrap()
    {
        check_object(&doc, "ContactList", item);
        check_only_documented(&doc, "ContactList", item);
    }
    for item in api
        .data("/contacts/search?query=lovelace")
        .await
        .as_array()
        .unwrap()
    {
        check_object(&doc, "ContactSearchResult", item);
        check_only_documented(&doc, "ContactSearchResult", item);
    }

    for uuid in [
        seed::CONVERSATION_OPEN_UUID,
        seed::CONVERSATION_CLOSED_UUID,
        seed::CONVERSATION_SNOOZED_UUID,
    ] {
        let conversation = api.data(&format!("/conversations/{uuid}")).await;
        check_object(&doc, "Conversation", &conversation);
        check_object(&doc, "Contact", &conversation["contact"]);
    }
    for item in api.data("/conversations/all").await["results"]
        .as_array()
        .unwrap()
    {
        check_object(&doc, "ConversationListItem", item);
        check_only_documented(&doc, "ConversationListItem", item);
        check_only_documented(&doc, "ContactSummary", &item["contact"]);
    }

    let message = api
        .data(&format!(
            "/conversations/{}/messages/{}",
            seed::CONVERSATION_OPEN_UUID,
            seed::MESSAGE_ADA_FIRST_UUID
        ))
        .await;
    check_object(&doc, "Message", &message);
    for item in api
        .data(&format!(
            "/conversations/{}/messages",
            seed::CONVERSATION_OPEN_UUID
        ))
        .await["results"]
        .as_array()
        .unwrap()
    {
        check_object(&doc, "Message", item);
    }
    let (status, sent) = api
        .send(
            Method::POST,
            &format!("/conversations/{}/messages", seed::CONVERSATION_OPEN_UUID),
            json!({"message": "<p>ok</p>", "sender_type": "agent"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    check_object(&doc, "Message", &sent["data"]);

    // Request bodies the sandbox enforces use the document's field names.
    let schemas = &doc["components"]["schemas"];
    for field in [
        "inbox_id",
        "contact_email",
        "first_name",
        "content",
        "initiator",
    ] {
        assert!(
            schemas["CreateConversationRequest"]["properties"]
                .get(field)
                .is_some(),
            "{field}"
        );
    }
    assert_eq!(
        schemas["PriorityUpdateRequest"]["properties"]["priority"]["enum"],
        json!(["Low", "Medium", "High"])
    );
    assert!(schemas["MessageRequest"]["properties"]
        .get("sender_type")
        .is_some());
    assert!(schemas["UserAssignRequest"]["required"] == json!(["assignee_id"]));
}
