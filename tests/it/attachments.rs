//! Attachments on `POST /v1/messages` (docs/api.md "Attachments"), end to end through the
//! gateway and the vendor sandboxes: the round trip where the vendor takes files (Libredesk:
//! media upload then the message with the media ids; LlamadaPro: UploadMedia then the message
//! with the `fileId`), the 400s (each naming the field) and the 413 for what is malformed or
//! too large — never a vendor call — the refusal on CAAC and ChatCaptain, capabilities, and a
//! failed upload that sends no message.

use crate::harness::*;
use reqwest::Method;
use serde_json::{json, Value};
use switchboard::api::ids::{Kind, ObjectId};
use switchboard::api::operation::Vendor;
use switchboard::sandbox::{Fault, Sandbox};

/// `attachment_max_bytes` of these harnesses: small, so the cap is cheap to cross.
const CAP: usize = 2048;

async fn harness() -> Harness {
    Harness::start_with(Options {
        gateway_extra: format!("attachment_max_bytes: {CAP}\n"),
        ..Options::default()
    })
    .await
}

fn sandbox(h: &Harness, vendor: Vendor) -> &Sandbox {
    h.sandbox(vendor).expect("sandbox")
}

fn id(kind: Kind, connection: &str, keys: &[&str]) -> String {
    ObjectId::new(
        kind,
        "acme",
        connection,
        keys.iter().map(|k| (*k).to_owned()).collect(),
    )
    .encode()
}

/// Libredesk's seeded open conversation (Ada's invoice question), connection `support`.
fn libredesk_conversation() -> String {
    use switchboard::sandbox::libredesk::seed;
    id(
        Kind::Conversation,
        "support",
        &[seed::CONVERSATION_OPEN_UUID],
    )
}

/// LlamadaPro's seeded conversation with Valentina, connection `llamadapro`.
fn llamadapro_conversation() -> String {
    use switchboard::sandbox::llamadapro::seed;
    id(
        Kind::Conversation,
        "llamadapro",
        &[
            &seed::CONVERSATION_VALENTINA_ID.to_string(),
            seed::CONTACT_VALENTINA_WHATSAPP,
        ],
    )
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A tiny PNG-looking file (the signature and a few bytes; nobody renders it).
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n0123456789";
const PDF: &[u8] = b"%PDF-1.4\n% switchboard test\n";

async fn post_message(h: &Harness, connection: &str, body: Value) -> reqwest::Response {
    h.send_on(connection, Method::POST, "/v1/messages", body)
        .await
}

fn detail(problem: &Value) -> &str {
    problem["detail"].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capabilities_say_which_connections_take_attachments() {
    let h = harness().await;
    let caps = h.get_json("/v1/capabilities", 200).await;
    let entry = |connection: &str| {
        caps["data"]
            .as_array()
            .expect("data")
            .iter()
            .find(|c| c["connection"] == connection)
            .unwrap_or_else(|| panic!("connection {connection}: {caps}"))
            .clone()
    };
    assert_eq!(
        entry("support")["attachments"],
        json!({"sources": ["data"], "max_count": 10, "max_bytes": CAP})
    );
    assert_eq!(
        entry("llamadapro")["attachments"],
        json!({"sources": ["data"], "max_count": 1, "max_bytes": CAP})
    );
    assert_eq!(entry("caac")["attachments"], Value::Null);
    assert_eq!(entry("chatcaptain")["attachments"], Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn libredesk_uploads_each_file_then_sends_the_message_with_the_media_ids() {
    let h = harness().await;
    let ld = sandbox(&h, Vendor::Libredesk);
    let conversation = libredesk_conversation();
    let sent = post_message(
        &h,
        "support",
        json!({
            "conversation_id": conversation,
            "text": "Here is the invoice and a screenshot.",
            "attachments": [
                {"data": b64(PDF), "name": "invoice-1042.pdf", "type": "application/pdf"},
                {"data": b64(PNG), "name": "screen shot.png", "type": "image/png"},
            ],
        }),
    )
    .await;
    let sent = expect_status(sent, 201).await;
    assert_eq!(ld.calls_to("media.upload"), 2);
    assert_eq!(ld.calls_to("messages.send"), 1);
    // The vendor recorded both uploads, as multipart files, now carried by the message.
    let media = ld.libredesk().expect("libredesk state").media();
    assert_eq!(media.len(), 2, "{media:?}");
    assert_eq!(media[0]["filename"], "invoice-1042.pdf");
    assert_eq!(media[0]["content_type"], "application/pdf");
    assert_eq!(media[0]["size"], PDF.len());
    assert_eq!(media[1]["filename"], "screen shot.png");
    assert_eq!(media[1]["size"], PNG.len());
    assert_eq!(media[0]["model_type"], "messages");
    assert!(ld
        .calls()
        .iter()
        .filter(|c| c.endpoint.as_deref() == Some("media.upload"))
        .all(|c| c
            .content_type
            .as_deref()
            .unwrap_or_default()
            .starts_with("multipart/form-data; boundary=")));

    let expected = |attachments: &Value| {
        let list = attachments.as_array().expect("attachments");
        assert_eq!(list.len(), 2, "{attachments}");
        assert_eq!(list[0]["type"], "file");
        assert_eq!(list[0]["name"], "invoice-1042.pdf");
        assert_eq!(list[0]["size"], PDF.len());
        assert_eq!(list[1]["type"], "image");
        assert_eq!(list[1]["name"], "screen shot.png");
        assert_eq!(list[1]["size"], PNG.len());
        for a in list {
            let url = a["url"].as_str().expect("url");
            assert!(url.contains("/uploads/"), "{url}");
        }
    };
    expected(&sent["attachments"]);
    assert_eq!(sent["text"], "Here is the invoice and a screenshot.");

    // Read back through the gateway: the same attachments.
    let read = h
        .get_json(
            &format!("/v1/messages/{}", sent["id"].as_str().expect("id")),
            200,
        )
        .await;
    expected(&read["attachments"]);
    let listed = h
        .get_json(&format!("/v1/conversations/{conversation}/messages"), 200)
        .await;
    let mine = listed["data"]
        .as_array()
        .expect("data")
        .iter()
        .find(|m| m["id"] == sent["id"])
        .expect("the sent message is listed")
        .clone();
    expected(&mine["attachments"]);

    // Attachments alone (no text) are a message too.
    let alone = post_message(
        &h,
        "support",
        json!({
            "conversation_id": conversation,
            "attachments": [{"data": b64(PNG), "name": "only.png", "type": "image/png"}],
        }),
    )
    .await;
    let alone = expect_status(alone, 201).await;
    assert_eq!(alone["type"], "file");
    assert_eq!(alone["attachments"][0]["name"], "only.png");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn llamadapro_uploads_the_file_then_sends_it_by_file_id() {
    use switchboard::sandbox::llamadapro::seed;
    let h = harness().await;
    let lp = sandbox(&h, Vendor::LlamadaPro);
    let state = lp.llamadapro().expect("llamadapro state");
    let sent = post_message(
        &h,
        "llamadapro",
        json!({
            "conversation_id": llamadapro_conversation(),
            "text": "La cotización",
            "attachments": [{"data": b64(PNG), "name": "cotizacion.png", "type": "image/png"}],
        }),
    )
    .await;
    let sent = expect_status(sent, 201).await;
    assert_eq!(lp.calls_to("media.upload"), 1);
    assert_eq!(lp.calls_to("messages.send"), 1);
    let uploads = state.uploads();
    assert_eq!(uploads.len(), 1);
    assert_eq!(uploads[0]["fileName"], "cotizacion.png");
    assert_eq!(uploads[0]["contentType"], "image/png");
    assert_eq!(uploads[0]["size"], PNG.len());
    // The message the vendor stored names the uploaded file, as an image, from the number.
    let stored = state
        .message(sent["remote_id"].as_str().expect("remote id"))
        .expect("stored");
    assert_eq!(stored["attachments"][0]["type"], "image");
    assert_eq!(stored["sender"]["address"], seed::FUNNEL_SALES_NUMBER);

    let check = |m: &Value| {
        assert_eq!(m["type"], "image", "{m}");
        assert_eq!(m["text"], "La cotización");
        let a = &m["attachments"][0];
        assert_eq!(a["type"], "image");
        assert_eq!(a["name"], "cotizacion.png");
        assert_eq!(a["size"], PNG.len());
        assert!(
            a["url"]
                .as_str()
                .is_some_and(|u| u.starts_with("https://") && u.contains("cotizacion.png")),
            "{a}"
        );
    };
    check(&sent);
    let read = expect_status(
        h.get_on(
            "llamadapro",
            &format!("/v1/messages/{}", sent["id"].as_str().expect("id")),
        )
        .await,
        200,
    )
    .await;
    check(&read);

    // WhatsApp carries one file per message.
    let before = lp.call_count();
    let two = post_message(
        &h,
        "llamadapro",
        json!({
            "conversation_id": llamadapro_conversation(),
            "attachments": [
                {"data": b64(PNG), "name": "a.png", "type": "image/png"},
                {"data": b64(PNG), "name": "b.png", "type": "image/png"},
            ],
        }),
    )
    .await;
    let problem = expect_problem(two, 400, "invalid_request").await;
    assert!(detail(&problem).contains("at most 1"), "{problem}");
    assert_eq!(lp.call_count(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_attachments_are_a_400_naming_the_field_and_call_no_vendor() {
    let h = harness().await;
    let ld = sandbox(&h, Vendor::Libredesk);
    let conversation = libredesk_conversation();
    let good = json!({"data": b64(PNG), "name": "a.png", "type": "image/png"});
    let cases = [
        (
            json!({"name": "a.png", "type": "image/png"}),
            "attachments[1]: give url",
        ),
        (
            json!({"url": "https://cdn.example.com/a.png", "data": b64(PNG), "name": "a.png", "type": "image/png"}),
            "attachments[1]: give exactly one of url or data",
        ),
        (
            json!({"data": "not base64!", "name": "a.png", "type": "image/png"}),
            "attachments[1].data is not valid base64",
        ),
        (
            json!({"data": "", "name": "a.png", "type": "image/png"}),
            "attachments[1].data is empty",
        ),
        (
            json!({"data": b64(PNG), "type": "image/png"}),
            "attachments[1].name is required",
        ),
        (
            json!({"data": b64(PNG), "name": "a\r\nX-Injected: 1", "type": "image/png"}),
            "attachments[1].name must not contain",
        ),
        (
            json!({"data": b64(PNG), "name": "a.png"}),
            "attachments[1].type is required",
        ),
        (
            json!({"data": b64(PNG), "name": "a.png", "type": "png"}),
            "attachments[1].type \"png\" is not a MIME type",
        ),
        (
            json!({"data": b64(PNG), "name": "a.png", "type": "message/rfc822"}),
            "attachments[1].type \"message/rfc822\" is not a file type",
        ),
        (
            json!({"url": "https://169.254.169.254/latest/meta-data", "name": "a", "type": "text/plain"}),
            "attachments[1].url must name a public host",
        ),
        (
            json!({"url": "file:///etc/passwd", "name": "a", "type": "text/plain"}),
            "attachments[1].url must be an https URL",
        ),
        (
            json!({"data": b64(PNG), "name": "a.png", "type": "image/png", "size": 3}),
            "attachments[1]",
        ),
    ];
    for (bad, expected) in cases {
        let response = post_message(
            &h,
            "support",
            json!({"conversation_id": conversation, "text": "x", "attachments": [good, bad]}),
        )
        .await;
        let problem = expect_problem(response, 400, "invalid_request").await;
        assert!(detail(&problem).contains(expected), "{bad}: {problem}");
    }
    assert_eq!(ld.call_count(), 0, "no vendor call for a malformed request");
    // A URL is well formed but Libredesk needs the bytes: the gateway does not fetch it.
    let response = post_message(
        &h,
        "support",
        json!({"conversation_id": conversation, "attachments": [
            {"url": "https://cdn.example.com/a.png", "name": "a.png", "type": "image/png"}
        ]}),
    )
    .await;
    let problem = expect_problem(response, 400, "invalid_request").await;
    assert!(
        detail(&problem).starts_with("attachments[0].url: libredesk stores the file itself"),
        "{problem}"
    );
    assert_eq!(ld.call_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attachments_over_the_cap_or_the_body_limit_are_refused_before_any_call() {
    let h = harness().await;
    let ld = sandbox(&h, Vendor::Libredesk);
    let conversation = libredesk_conversation();
    // At the cap: accepted.
    let at_cap = post_message(
        &h,
        "support",
        json!({"conversation_id": conversation, "attachments": [
            {"data": b64(&[1u8; CAP]), "name": "full.bin", "type": "application/octet-stream"}
        ]}),
    )
    .await;
    let at_cap = expect_status(at_cap, 201).await;
    assert_eq!(at_cap["attachments"][0]["size"], CAP);
    ld.reset_calls();
    // One byte over, decoded: 413 naming the field.
    let over = post_message(
        &h,
        "support",
        json!({"conversation_id": conversation, "attachments": [
            {"data": b64(&[1u8; CAP + 1]), "name": "over.bin", "type": "application/octet-stream"}
        ]}),
    )
    .await;
    let problem = expect_problem(over, 413, "payload_too_large").await;
    assert!(
        detail(&problem).contains(&format!(
            "attachments[0].data is {} bytes decoded; the limit is {CAP} bytes",
            CAP + 1
        )),
        "{problem}"
    );
    // The request body limit (64 KiB in the harness) still applies first.
    let huge = post_message(
        &h,
        "support",
        json!({"conversation_id": conversation, "attachments": [
            {"data": b64(&[1u8; 70 * 1024]), "name": "huge.bin", "type": "application/octet-stream"}
        ]}),
    )
    .await;
    expect_problem(huge, 413, "payload_too_large").await;
    assert_eq!(ld.call_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caac_and_chatcaptain_refuse_attachments_with_a_400_and_no_call() {
    use switchboard::sandbox::{caac, chatcaptain};
    let h = harness().await;
    let file = json!([{"data": b64(PNG), "name": "a.png", "type": "image/png"}]);
    let caac_conversation = id(
        Kind::Conversation,
        "caac",
        &[
            &caac::seed::CHANNEL_LINE_ID.to_string(),
            &caac::seed::MEMBER_WEITING_ID.to_string(),
        ],
    );
    let cc_conversation = id(
        Kind::Conversation,
        "chatcaptain",
        &[chatcaptain::seed::CONVERSATION_ANNA_ID],
    );
    for (connection, vendor, conversation) in [
        ("caac", Vendor::Caac, caac_conversation),
        ("chatcaptain", Vendor::ChatCaptain, cc_conversation),
    ] {
        let before = sandbox(&h, vendor).call_count();
        let response = post_message(
            &h,
            connection,
            json!({"conversation_id": conversation, "text": "see file", "attachments": file}),
        )
        .await;
        let problem = expect_problem(response, 400, "invalid_request").await;
        assert!(
            detail(&problem).starts_with(&format!(
                "attachments: {connection} cannot send attachments"
            )),
            "{problem}"
        );
        assert!(
            detail(&problem).contains("GET /v1/capabilities"),
            "{problem}"
        );
        assert_eq!(sandbox(&h, vendor).call_count(), before, "{connection}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_upload_sends_no_message() {
    let h = harness().await;
    // Libredesk: the media upload answers 500 → vendor_error, and no message call is made.
    let ld = sandbox(&h, Vendor::Libredesk);
    let state = ld.libredesk().expect("libredesk state");
    let uuid = switchboard::sandbox::libredesk::seed::CONVERSATION_OPEN_UUID;
    let messages = state.messages(uuid).len();
    ld.inject(Fault::Status(500), Some(1));
    let response = post_message(
        &h,
        "support",
        json!({"conversation_id": libredesk_conversation(), "text": "with file", "attachments": [
            {"data": b64(PDF), "name": "a.pdf", "type": "application/pdf"}
        ]}),
    )
    .await;
    let problem = expect_problem(response, 502, "vendor_error").await;
    assert_eq!(problem["vendor"], "libredesk");
    assert_eq!(ld.calls_to("media.upload"), 1);
    assert_eq!(ld.calls_to("messages.send"), 0);
    assert_eq!(state.messages(uuid).len(), messages);

    // LlamadaPro: UploadMedia answers 503 → vendor_error, and no WhatsApp message goes out.
    let lp = sandbox(&h, Vendor::LlamadaPro);
    let lp_state = lp.llamadapro().expect("llamadapro state");
    let count = lp_state.message_count();
    lp.inject(Fault::Status(503), Some(1));
    let response = post_message(
        &h,
        "llamadapro",
        json!({"conversation_id": llamadapro_conversation(), "attachments": [
            {"data": b64(PNG), "name": "a.png", "type": "image/png"}
        ]}),
    )
    .await;
    let problem = expect_problem(response, 502, "vendor_error").await;
    assert_eq!(problem["vendor"], "llamadapro");
    assert_eq!(lp.calls_to("media.upload"), 1);
    assert_eq!(lp.calls_to("messages.send"), 0);
    assert_eq!(lp_state.message_count(), count);
    assert!(lp_state.uploads().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_upload_route_a_connection_takes_no_attachments() {
    fn drop_media_upload(_: &str, text: String) -> String {
        text.lines()
            .filter(|l| !l.trim_start().starts_with("media.upload:"))
            .collect::<Vec<_>>()
            .join("\n")
    }
    let h = Harness::start_with(Options {
        routes_transform: Some(drop_media_upload),
        ..Options::default()
    })
    .await;
    let caps = h.get_json("/v1/capabilities", 200).await;
    let support = caps["data"]
        .as_array()
        .expect("data")
        .iter()
        .find(|c| c["connection"] == "support")
        .expect("support")
        .clone();
    assert_eq!(support["attachments"], Value::Null, "{support}");
    assert!(support["operations"]
        .as_array()
        .expect("operations")
        .contains(&json!("messages.send")));
    let ld = sandbox(&h, Vendor::Libredesk);
    let response = post_message(
        &h,
        "support",
        json!({"conversation_id": libredesk_conversation(), "text": "x", "attachments": [
            {"data": b64(PDF), "name": "a.pdf", "type": "application/pdf"}
        ]}),
    )
    .await;
    let problem = expect_problem(response, 400, "invalid_request").await;
    assert!(
        detail(&problem).contains("no media.upload call"),
        "{problem}"
    );
    assert_eq!(ld.call_count(), 0);
}
