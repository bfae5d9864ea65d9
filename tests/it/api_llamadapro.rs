//! The normalized API served end to end over the LlamadaPro sandbox (connection
//! `acme.llamadapro`): every operation LlamadaPro supports, the ones it does not, and its
//! error mapping.

use crate::harness::*;
use reqwest::Method;
use serde_json::{json, Value};
use switchboard::api::ids::{Kind, ObjectId};
use switchboard::api::operation::Vendor;
use switchboard::sandbox::llamadapro::seed;
use switchboard::sandbox::{Credentials, Fault, Sandbox};

const CONN: &str = "llamadapro";

fn sandbox(h: &Harness) -> &Sandbox {
    h.sandbox(Vendor::LlamadaPro)
        .expect("the llamadapro sandbox")
}

fn state(h: &Harness) -> &switchboard::sandbox::LlamadaProState {
    sandbox(h).llamadapro().expect("llamadapro state")
}

/// An ID of the `acme.llamadapro` connection.
fn lp_id(kind: Kind, keys: &[&str]) -> String {
    ObjectId::new(
        kind,
        "acme",
        CONN,
        keys.iter().map(|k| (*k).to_owned()).collect(),
    )
    .encode()
}

fn valentina() -> String {
    lp_id(Kind::Contact, &[&seed::CONTACT_VALENTINA_ID.to_string()])
}

fn valentina_conversation() -> String {
    lp_id(
        Kind::Conversation,
        &[
            &seed::CONVERSATION_VALENTINA_ID.to_string(),
            seed::CONTACT_VALENTINA_WHATSAPP,
        ],
    )
}

async fn get(h: &Harness, path: &str, status: u16) -> Value {
    expect_status(h.get_on(CONN, path).await, status).await
}

async fn send(h: &Harness, method: Method, path: &str, body: Value, status: u16) -> Value {
    expect_status(h.send_on(CONN, method, path, body).await, status).await
}

fn ids(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|c| c["id"].as_str().expect("id").to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capabilities_tell_what_llamadapro_can_do() {
    let h = Harness::start().await;
    let caps = h.get_json("/v1/capabilities", 200).await;
    let entry = caps["data"]
        .as_array()
        .expect("data")
        .iter()
        .find(|c| c["connection"] == CONN)
        .expect("the llamadapro connection")
        .clone();
    assert_eq!(entry["vendor"], "llamadapro");
    assert_eq!(
        entry["operations"],
        json!([
            "contacts.list",
            "contacts.create",
            "contacts.get",
            "contacts.update",
            "contacts.delete",
            "conversations.create",
            "messages.get",
            "messages.send"
        ])
    );
    assert_eq!(
        entry["filters"],
        json!({"contacts.list": ["q", "email", "phone", "handle"]})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contacts_page_by_token_across_two_pages() {
    let h = Harness::start().await;
    let page1 = get(&h, "/v1/contacts?limit=10", 200).await;
    assert_eq!(ids(&page1).len(), 10);
    let first = &page1["data"][0];
    assert_eq!(first["vendor"], "llamadapro");
    assert_eq!(first["connection"], CONN);
    assert_eq!(first["id"], valentina().as_str());
    assert_eq!(first["remote_id"], "1001");
    assert_eq!(first["name"], "Valentina Muñoz");
    assert_eq!(first["emails"], json!([seed::CONTACT_VALENTINA_EMAIL]));
    assert_eq!(
        first["phones"],
        json!([
            seed::CONTACT_VALENTINA_WHATSAPP,
            seed::CONTACT_VALENTINA_PHONE
        ])
    );
    assert_eq!(
        first["handles"],
        json!([{"channel": "whatsapp", "value": seed::CONTACT_VALENTINA_WHATSAPP}])
    );
    assert_eq!(
        first["custom_fields"],
        json!({"source": "web", "plan": "pro"})
    );
    assert!(first.get("raw").is_none());
    // The deprecated top-level fields still read as the contact's email and phone.
    let benjamin = &page1["data"][3];
    assert_eq!(benjamin["emails"], json!([seed::CONTACT_BENJAMIN_EMAIL]));
    assert_eq!(benjamin["phones"], json!([seed::CONTACT_BENJAMIN_PHONE]));

    let cursor = page1["next_cursor"].as_str().expect("a second page");
    let page2 = get(&h, &format!("/v1/contacts?limit=10&cursor={cursor}"), 200).await;
    let (ids1, ids2) = (ids(&page1), ids(&page2));
    assert_eq!(ids2.len(), 10);
    assert!(
        ids2.iter().all(|id| !ids1.contains(id)),
        "page 2 repeats page 1"
    );
    assert_eq!(page2["data"][0]["remote_id"], "1011");
    // The vendor was asked for pageSize=10, then with its own nextPageToken.
    let queries: Vec<String> = sandbox(&h)
        .calls()
        .iter()
        .filter(|c| c.endpoint.as_deref() == Some("contacts.list"))
        .map(|c| c.query.clone().unwrap_or_default())
        .collect();
    assert_eq!(queries.len(), 2);
    assert_eq!(queries[0], "pageSize=10");
    assert!(queries[1].contains("pageToken="), "{queries:?}");

    // The last page has no cursor.
    let cursor = page2["next_cursor"].as_str().expect("a third page");
    let page3 = get(&h, &format!("/v1/contacts?limit=10&cursor={cursor}"), 200).await;
    assert_eq!(ids(&page3).len(), 10);
    assert!(page3["next_cursor"].is_null(), "{page3}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contacts_filter_through_search() {
    let h = Harness::start().await;
    let by_q = get(&h, "/v1/contacts?q=valentina", 200).await;
    assert_eq!(ids(&by_q), [valentina()]);
    let by_email = get(
        &h,
        &format!("/v1/contacts?email={}", seed::CONTACT_VALENTINA_EMAIL),
        200,
    )
    .await;
    assert_eq!(ids(&by_email), [valentina()]);
    let by_phone = get(&h, "/v1/contacts?phone=%2B56%202%202345%206789", 200).await;
    assert_eq!(ids(&by_phone), [valentina()]);
    let by_handle = get(&h, "/v1/contacts?handle=whatsapp:%2B56912345671", 200).await;
    assert_eq!(ids(&by_handle), [valentina()]);
    // Isabella's number is a PHONE address, not a WhatsApp one.
    let not_whatsapp = get(&h, "/v1/contacts?handle=whatsapp:%2B5215512345678", 200).await;
    assert_eq!(ids(&not_whatsapp).len(), 0);
    assert_eq!(sandbox(&h).calls_to("contacts.search"), 5);
    // Search pages too: 25 "Cliente" contacts, 10 at a time.
    let page1 = get(&h, "/v1/contacts?q=cliente&limit=10", 200).await;
    let cursor = page1["next_cursor"].as_str().expect("a second page");
    let page2 = get(
        &h,
        &format!("/v1/contacts?q=cliente&limit=10&cursor={cursor}"),
        200,
    )
    .await;
    assert!(ids(&page2).iter().all(|id| !ids(&page1).contains(id)));
    // A cursor is bound to its filters.
    let response = h
        .get_on(CONN, &format!("/v1/contacts?limit=10&cursor={cursor}"))
        .await;
    expect_problem(response, 400, "invalid_request").await;

    // LlamadaPro has no LINE: a handle on another channel is refused, with no vendor call.
    let before = sandbox(&h).call_count();
    let response = h.get_on(CONN, "/v1/contacts?handle=line:U1234").await;
    expect_problem(response, 400, "unsupported_filter").await;
    assert_eq!(sandbox(&h).call_count(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contacts_create_get_update_delete() {
    let h = Harness::start().await;
    let created = send(
        &h,
        Method::POST,
        "/v1/contacts",
        json!({
            "name": "Lucía Herrera",
            "emails": ["lucia@example.cl"],
            "phones": ["+56 2 2999 0000"],
            "handles": [{"channel": "whatsapp", "value": "+56987654321"}],
            "custom_fields": {"source": "test"},
            "vendor_fields": {"nationalId": "9.876.543-2"},
        }),
        201,
    )
    .await;
    assert_eq!(created["first_name"], "Lucía");
    assert_eq!(created["last_name"], "Herrera");
    assert_eq!(created["emails"], json!(["lucia@example.cl"]));
    assert_eq!(created["phones"], json!(["+56987654321", "+56229990000"]));
    assert_eq!(
        created["handles"],
        json!([{"channel": "whatsapp", "value": "+56987654321"}])
    );
    assert_eq!(created["custom_fields"], json!({"source": "test"}));
    let remote: i64 = created["remote_id"]
        .as_str()
        .expect("remote id")
        .parse()
        .expect("number");
    let stored = state(&h).contact(remote).expect("stored");
    assert_eq!(stored["nationalId"], "9.876.543-2");
    assert_eq!(stored["addresses"][0]["channelType"], "WHATSAPP");
    assert_eq!(
        stored["email"],
        Value::Null,
        "deprecated fields are not written"
    );

    let id = created["id"].as_str().expect("id").to_owned();
    let path = format!("/v1/contacts/{id}");
    let read = get(&h, &path, 200).await;
    assert_eq!(read["id"], id.as_str());
    let raw = get(&h, &format!("{path}?include=raw"), 200).await;
    assert_eq!(raw["raw"]["tenantId"], seed::TENANT_ID);

    // Partial: the name alone, then the emails (the phones and handles stay).
    let renamed = send(
        &h,
        Method::PATCH,
        &path,
        json!({"last_name": "Herrera Soto"}),
        200,
    )
    .await;
    assert_eq!(renamed["name"], "Lucía Herrera Soto");
    assert_eq!(renamed["emails"], created["emails"]);
    let updated = send(
        &h,
        Method::PATCH,
        &path,
        json!({"emails": ["lucia.h@example.cl"], "custom_fields": {"tier": "gold"}}),
        200,
    )
    .await;
    assert_eq!(updated["emails"], json!(["lucia.h@example.cl"]));
    assert_eq!(updated["phones"], created["phones"]);
    assert_eq!(updated["handles"], created["handles"]);
    assert_eq!(
        updated["custom_fields"],
        json!({"source": "test", "tier": "gold"})
    );
    // Dropping the WhatsApp number from phones drops its WhatsApp address.
    let fewer = send(
        &h,
        Method::PATCH,
        &path,
        json!({"phones": ["+56229990000"]}),
        200,
    )
    .await;
    assert_eq!(fewer["phones"], json!(["+56229990000"]));
    assert_eq!(fewer["handles"], json!([]));

    // What LlamadaPro cannot store is refused before any vendor call.
    let before = sandbox(&h).call_count();
    let response = h
        .send_on(CONN, Method::PATCH, &path, json!({"company": "Acme"}))
        .await;
    expect_problem(response, 501, "unsupported_operation").await;
    let response = h
        .send_on(
            CONN,
            Method::PATCH,
            &path,
            json!({"phones": ["0912345678"]}),
        )
        .await;
    expect_problem(response, 400, "invalid_request").await;
    let response = h
        .send_on(
            CONN,
            Method::POST,
            "/v1/contacts",
            json!({"handles": [{"channel": "line", "value": "U123"}]}),
        )
        .await;
    expect_problem(response, 400, "invalid_request").await;
    assert_eq!(sandbox(&h).call_count(), before);

    let response = h
        .http
        .delete(h.url(&path))
        .bearer_auth(h.acme())
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 204);
    assert!(state(&h).contact(remote).is_none());
    let response = h.get_on(CONN, &path).await;
    expect_problem(response, 404, "not_found").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conversations_are_created_on_a_whatsapp_number() {
    let h = Harness::start().await;
    let created = send(
        &h,
        Method::POST,
        "/v1/conversations",
        json!({"contact_id": valentina()}),
        201,
    )
    .await;
    assert_eq!(created["vendor"], "llamadapro");
    assert_eq!(created["contact_id"], valentina().as_str());
    assert_eq!(created["channel"], "whatsapp");
    assert_eq!(created["status"], "open");
    assert_eq!(created["vendor_status"], seed::STATUS_NEW_ID.to_string());
    let remote = created["remote_id"].as_str().expect("remote id").to_owned();
    assert_eq!(
        created["id"],
        lp_id(
            Kind::Conversation,
            &[&remote, seed::CONTACT_VALENTINA_WHATSAPP]
        )
        .as_str()
    );
    let stored = state(&h)
        .conversation(remote.parse().expect("number"))
        .expect("stored");
    assert_eq!(
        stored["funnelId"],
        seed::FUNNEL_SALES_ID,
        "the connection's default funnel"
    );

    // A new contact, in another funnel by vendor_fields.
    let created = send(
        &h,
        Method::POST,
        "/v1/conversations",
        json!({"contact": {"name": "Tomás Pérez", "phone": "+56 9 5555 0101", "email": "tomas@example.cl"}, "vendor_fields": {"funnelId": seed::FUNNEL_SUPPORT_ID}}),
        201,
    )
    .await;
    let remote: i64 = created["remote_id"]
        .as_str()
        .expect("id")
        .parse()
        .expect("number");
    assert_eq!(
        state(&h).conversation(remote).expect("stored")["funnelId"],
        seed::FUNNEL_SUPPORT_ID
    );
    let contact = get(
        &h,
        created["contact_id"]
            .as_str()
            .map(|c| format!("/v1/contacts/{c}"))
            .as_deref()
            .expect("contact"),
        200,
    )
    .await;
    assert_eq!(contact["name"], "Tomás Pérez");
    assert_eq!(contact["phones"], json!(["+56955550101"]));

    // Refused before any vendor call: no funnel, a subject, a first message, no phone.
    let before = sandbox(&h).call_count();
    for (body, status, detail) in [
        (
            json!({"contact_id": valentina(), "vendor_fields": {"funnelId": null}}),
            400,
            "vendor_fields.funnelId",
        ),
        (
            json!({"contact_id": valentina(), "vendor_fields": {"inbox_id": 1}}),
            400,
            "vendor_fields.inbox_id is not a llamadapro field",
        ),
        (
            json!({"contact_id": valentina(), "subject": "Hola"}),
            501,
            "no subject",
        ),
        (
            json!({"contact_id": valentina(), "text": "Hola"}),
            501,
            "POST /v1/messages",
        ),
        (
            json!({"contact": {"name": "Sin Número"}}),
            400,
            "contact.phone",
        ),
        (
            json!({"contact_id": valentina(), "channel": "email"}),
            400,
            "whatsapp",
        ),
    ] {
        let response = h
            .send_on(CONN, Method::POST, "/v1/conversations", body.clone())
            .await;
        let code = if status == 501 {
            "unsupported_operation"
        } else {
            "invalid_request"
        };
        let problem = expect_problem(response, status, code).await;
        assert!(
            problem["detail"]
                .as_str()
                .unwrap_or_default()
                .contains(detail),
            "{body}: {problem}"
        );
    }
    assert_eq!(sandbox(&h).call_count(), before);
    // A contact with no number is refused after reading it, before creating anything.
    let sofia = lp_id(Kind::Contact, &[&seed::CONTACT_SOFIA_ID.to_string()]);
    let conversations = state(&h).conversation_count();
    let response = h
        .send_on(
            CONN,
            Method::POST,
            "/v1/conversations",
            json!({"contact_id": sofia}),
        )
        .await;
    expect_problem(response, 400, "invalid_request").await;
    assert_eq!(state(&h).conversation_count(), conversations);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_send_text_and_templates_and_read_back() {
    let h = Harness::start().await;
    let conversation = valentina_conversation();
    let sent = send(
        &h,
        Method::POST,
        "/v1/messages",
        json!({"conversation_id": conversation, "text": "¡Hola Valentina!"}),
        201,
    )
    .await;
    assert_eq!(sent["conversation_id"], conversation.as_str());
    assert_eq!(sent["direction"], "outbound");
    assert_eq!(sent["type"], "text");
    assert_eq!(sent["text"], "¡Hola Valentina!");
    assert_eq!(sent["status"], "pending");
    assert_eq!(sent["private"], false);
    let remote = sent["remote_id"].as_str().expect("remote id");
    let stored = state(&h).message(remote).expect("stored");
    assert_eq!(stored["sender"]["address"], seed::FUNNEL_SALES_NUMBER);
    assert_eq!(
        stored["recipient"]["address"],
        seed::CONTACT_VALENTINA_WHATSAPP
    );
    assert_eq!(
        stored["funnelConversationId"],
        seed::CONVERSATION_VALENTINA_ID
    );

    let read = get(
        &h,
        &format!("/v1/messages/{}", sent["id"].as_str().expect("id")),
        200,
    )
    .await;
    assert_eq!(read["id"], sent["id"]);
    assert_eq!(read["conversation_id"], conversation.as_str());

    let template = send(
        &h,
        Method::POST,
        "/v1/messages",
        json!({"conversation_id": conversation, "template": {"name": seed::TEMPLATE_WELCOME, "language": "es", "variables": ["Valentina", "Ventas"]}}),
        201,
    )
    .await;
    assert_eq!(template["type"], "template");
    assert_eq!(
        template["text"],
        "Hola Valentina, gracias por escribir a Ventas."
    );
    assert_eq!(sandbox(&h).calls_to("messages.send_template"), 1);

    let media = send(
        &h,
        Method::POST,
        "/v1/messages",
        json!({"conversation_id": conversation, "text": "La cotización", "vendor_fields": {"fileId": seed::FILE_IMAGE_ID, "type": "image"}}),
        201,
    )
    .await;
    assert_eq!(media["type"], "image");
    assert_eq!(media["attachments"][0]["type"], "image");

    // A seeded inbound message with an image.
    let image = lp_id(
        Kind::Message,
        &[
            seed::MESSAGE_VALENTINA_IMAGE_ID,
            &seed::CONVERSATION_VALENTINA_ID.to_string(),
            seed::CONTACT_VALENTINA_WHATSAPP,
        ],
    );
    let read = get(&h, &format!("/v1/messages/{image}"), 200).await;
    assert_eq!(read["direction"], "inbound");
    assert_eq!(read["sender"]["type"], "contact");
    assert_eq!(read["sender"]["name"], "Valentina Muñoz");
    assert_eq!(read["type"], "image");
    assert_eq!(read["status"], "received");

    // The vendor refuses a template it does not have: its message comes through.
    let response = h
        .send_on(
            CONN,
            Method::POST,
            "/v1/messages",
            json!({"conversation_id": conversation, "template": {"name": "no_such", "language": "es"}}),
        )
        .await;
    let problem = expect_problem(response, 400, "invalid_request").await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("Template no_such (es) not found"),
        "{problem}"
    );
    assert_eq!(problem["vendor_status"], 400);

    // Refused before any vendor call.
    let before = sandbox(&h).call_count();
    for (body, status, code) in [
        (
            json!({"conversation_id": conversation, "text": "nota", "private": true}),
            501,
            "unsupported_operation",
        ),
        (
            json!({"conversation_id": conversation, "text": "x", "vendor_fields": {"fromPhoneNumber": "229145000"}}),
            400,
            "invalid_request",
        ),
        (
            json!({"conversation_id": conversation, "attachments": [{"type": "image/png", "name": "y.png", "url": "https://cdn.example.com/y.png"}]}),
            400,
            "invalid_request",
        ),
        (
            json!({"conversation_id": conversation, "template": {"name": "bienvenida"}}),
            400,
            "invalid_request",
        ),
    ] {
        let response = h.send_on(CONN, Method::POST, "/v1/messages", body).await;
        expect_problem(response, status, code).await;
    }
    assert_eq!(sandbox(&h).call_count(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_llamadapro_does_not_publish_is_501() {
    let h = Harness::start().await;
    let conversation = valentina_conversation();
    let token = h.acme();
    let responses = [
        h.get_on(CONN, "/v1/conversations").await,
        h.get_on(CONN, &format!("/v1/conversations/{conversation}"))
            .await,
        h.get_on(
            CONN,
            &format!("/v1/messages?conversation_id={conversation}"),
        )
        .await,
        h.get_on(CONN, &format!("/v1/conversations/{conversation}/messages"))
            .await,
        h.send_on(
            CONN,
            Method::PATCH,
            &format!("/v1/conversations/{conversation}"),
            json!({"status": "resolved"}),
        )
        .await,
        h.http
            .delete(h.url(&format!("/v1/conversations/{conversation}")))
            .bearer_auth(&token)
            .send()
            .await
            .expect("request"),
    ];
    for response in responses {
        expect_problem(response, 501, "unsupported_operation").await;
    }
    assert_eq!(sandbox(&h).call_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_ids_are_404_without_a_vendor_call() {
    let h = Harness::start().await;
    let before = sandbox(&h).call_count();
    for path in [
        format!("/v1/contacts/{}", lp_id(Kind::Contact, &["abc"])),
        format!("/v1/contacts/{}", lp_id(Kind::Contact, &["1001", "x"])),
        format!(
            "/v1/messages/{}",
            lp_id(Kind::Message, &[seed::MESSAGE_VALENTINA_IMAGE_ID])
        ),
        format!(
            "/v1/messages/{}",
            lp_id(
                Kind::Message,
                &[seed::MESSAGE_VALENTINA_IMAGE_ID, "501", "56912345671"]
            )
        ),
        "/v1/contacts/ct_garbage".to_owned(),
    ] {
        expect_problem(h.get_on(CONN, &path).await, 404, "not_found").await;
    }
    // A conversation ID without its WhatsApp number cannot be sent to.
    let response = h
        .send_on(
            CONN,
            Method::POST,
            "/v1/messages",
            json!({"conversation_id": lp_id(Kind::Conversation, &["501"]), "text": "hola"}),
        )
        .await;
    expect_problem(response, 404, "not_found").await;
    assert_eq!(sandbox(&h).call_count(), before);
    // A well-formed ID the vendor does not know: its 404.
    let response = h
        .get_on(
            CONN,
            &format!("/v1/contacts/{}", lp_id(Kind::Contact, &["999999"])),
        )
        .await;
    expect_problem(response, 404, "not_found").await;
    assert_eq!(sandbox(&h).call_count(), before + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_api_key_is_vendor_auth_failed() {
    // A sandbox of our own, so its URL can go into the extra connection before start.
    let own = Sandbox::start_vendor(
        Vendor::LlamadaPro,
        load_routes("llamadapro"),
        Credentials::new("llamadapro-key", ""),
    )
    .await
    .expect("sandbox");
    let extra = format!(
        "  wrongkey:\n    llamadapro:\n      vendor: llamadapro\n      base_url: {}\n      credentials: {{api_key: not-the-llamadapro-key}}\n      defaults: {{funnelId: 7, fromPhoneNumber: \"+56229145000\"}}\n",
        own.base_url()
    );
    let h = Harness::start_with(Options {
        extra_connections: extra,
        ..Options::default()
    })
    .await;
    let response = h
        .http
        .get(h.url("/v1/contacts"))
        .bearer_auth(h.token("wrongkey", ALL_SCOPES))
        .send()
        .await
        .expect("request");
    let body = expect_problem(response, 502, "vendor_auth_failed").await;
    assert_eq!(body["vendor"], "llamadapro");
    assert_eq!(body["vendor_status"], 401);
    assert!(
        !body.to_string().contains("not-the-llamadapro-key"),
        "credentials leaked: {body}"
    );
    // The sandbox saw the call, on the provisional header the routes file names.
    assert_eq!(own.calls_to("contacts.list"), 1);
    // The right key on the same sandbox works.
    expect_status(h.get_on(CONN, "/v1/contacts?limit=1").await, 200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vendor_faults_map_to_the_error_table() {
    let h = Harness::start().await;
    let path = format!("/v1/contacts/{}", valentina());
    sandbox(&h).inject(Fault::Status(503), Some(1));
    let body = expect_problem(h.get_on(CONN, &path).await, 502, "vendor_error").await;
    assert_eq!(body["vendor_status"], 503);
    assert_eq!(body["vendor"], "llamadapro");
    sandbox(&h).inject(
        Fault::RateLimit {
            retry_after_secs: 9,
        },
        Some(1),
    );
    let response = h.get_on(CONN, &path).await;
    assert_eq!(response.headers()["retry-after"], "9");
    let body = expect_problem(response, 429, "vendor_rate_limited").await;
    assert_eq!(body["retry_after"], 9);
    sandbox(&h).inject(Fault::Malformed, Some(1));
    expect_problem(
        h.get_on(CONN, "/v1/contacts").await,
        502,
        "vendor_bad_response",
    )
    .await;
    // Faults used up: the next call works.
    expect_status(h.get_on(CONN, &path).await, 200).await;
}

/// Issue 12 #2: LlamadaPro routes a WhatsApp send by its two phone numbers and answers the
/// conversation it filed the message under (`funnelConversationId`). A conversation created
/// with its business number carries it, so its messages leave from that number and land in
/// it; a message the vendor files elsewhere says where it went, never where it was asked to go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_land_where_the_vendor_files_them_and_leave_from_the_conversations_number() {
    let h = Harness::start().await;
    let mateo = lp_id(Kind::Contact, &[&seed::CONTACT_MATEO_ID.to_string()]);
    let created = send(
        &h,
        Method::POST,
        "/v1/conversations",
        json!({"contact_id": mateo, "vendor_fields": {"funnelId": seed::FUNNEL_SUPPORT_ID, "fromPhoneNumber": seed::FUNNEL_SUPPORT_NUMBER}}),
        201,
    )
    .await;
    let remote = created["remote_id"].as_str().expect("remote id").to_owned();
    let conversation = created["id"].as_str().expect("id").to_owned();
    assert_eq!(
        conversation,
        lp_id(
            Kind::Conversation,
            &[
                &remote,
                seed::CONTACT_MATEO_WHATSAPP,
                seed::FUNNEL_SUPPORT_NUMBER
            ]
        )
    );
    let sent = send(
        &h,
        Method::POST,
        "/v1/messages",
        json!({"conversation_id": conversation, "text": "Hola Mateo, le escribe Postventa"}),
        201,
    )
    .await;
    assert_eq!(sent["conversation_id"], conversation.as_str());
    let stored = state(&h)
        .message(sent["remote_id"].as_str().expect("remote id"))
        .expect("stored");
    assert_eq!(stored["sender"]["address"], seed::FUNNEL_SUPPORT_NUMBER);
    assert_eq!(stored["funnelConversationId"].to_string(), remote);
    let read = get(
        &h,
        &format!("/v1/messages/{}", sent["id"].as_str().expect("id")),
        200,
    )
    .await;
    assert_eq!(read["conversation_id"], conversation.as_str());

    // Without a business number the send leaves from the connection's default (Ventas), and
    // the vendor files it under Valentina's open Ventas conversation, not the new Postventa
    // one: the message says so.
    let postventa = send(
        &h,
        Method::POST,
        "/v1/conversations",
        json!({"contact_id": valentina(), "vendor_fields": {"funnelId": seed::FUNNEL_SUPPORT_ID}}),
        201,
    )
    .await;
    let sent = send(
        &h,
        Method::POST,
        "/v1/messages",
        json!({"conversation_id": postventa["id"], "text": "¿Sigue abierta la consulta?"}),
        201,
    )
    .await;
    let stored = state(&h)
        .message(sent["remote_id"].as_str().expect("remote id"))
        .expect("stored");
    assert_eq!(stored["sender"]["address"], seed::FUNNEL_SALES_NUMBER);
    assert_eq!(
        stored["funnelConversationId"],
        seed::CONVERSATION_VALENTINA_ID
    );
    assert_ne!(sent["conversation_id"], postventa["id"]);
    assert_eq!(
        sent["conversation_id"],
        lp_id(
            Kind::Conversation,
            &[
                &seed::CONVERSATION_VALENTINA_ID.to_string(),
                seed::CONTACT_VALENTINA_WHATSAPP,
                seed::FUNNEL_SALES_NUMBER
            ]
        )
        .as_str()
    );
}
