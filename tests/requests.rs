//! Request bodies and IDs: a body is a JSON object sent as JSON (else 400 / 415), and an ID
//! whose vendor keys do not fit the connection's vendor grammar is a 404 — in every case
//! before any vendor call (the sandboxes' call counts say so).

// Runs against the vendor sandboxes: needs the `sandbox` feature (on by default).
#![cfg(feature = "sandbox")]
// Test helpers fail loudly: a broken fixture is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use reqwest::Method;
use serde_json::{json, Value};
use switchboard::api::ids::{Kind, ObjectId};
use switchboard::api::operation::Vendor;

/// Total calls every sandbox of the harness has received.
fn vendor_calls(h: &Harness) -> usize {
    h.libredesk.call_count() + h.others.iter().map(|s| s.call_count()).sum::<usize>()
}

async fn first_id(h: &Harness, connection: &str, path: &str) -> String {
    let page = expect_status(h.get_on(connection, path).await, 200).await;
    page["data"][0]["id"].as_str().expect("an id").to_owned()
}

async fn raw(
    h: &Harness,
    method: Method,
    path: &str,
    content_type: Option<&str>,
    body: &str,
) -> reqwest::Response {
    let mut request = h
        .http
        .request(method, h.url(path))
        .bearer_auth(h.acme())
        .header("X-Connection", "support")
        .body(body.to_owned());
    if let Some(ct) = content_type {
        request = request.header("content-type", ct);
    }
    request.send().await.expect("request")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_must_be_a_json_object() {
    let h = Harness::start().await;
    let conversation = first_id(&h, "support", "/v1/conversations?limit=1").await;
    let before = vendor_calls(&h);
    let cases: Vec<(&str, Method, String, Value)> = vec![
        (
            "support",
            Method::PATCH,
            format!("/v1/conversations/{conversation}"),
            json!(["closed"]),
        ),
        (
            "support",
            Method::POST,
            "/v1/conversations".into(),
            json!([]),
        ),
        (
            "support",
            Method::POST,
            "/v1/messages".into(),
            json!([conversation, "hi"]),
        ),
        (
            "chatcaptain",
            Method::POST,
            "/v1/contacts".into(),
            json!([]),
        ),
        (
            "llamadapro",
            Method::POST,
            "/v1/contacts".into(),
            json!(["Ada", "Lovelace"]),
        ),
        (
            "support",
            Method::POST,
            "/v1/conversations".into(),
            json!("text"),
        ),
        (
            "support",
            Method::POST,
            "/v1/conversations".into(),
            json!(null),
        ),
    ];
    for (connection, method, path, body) in cases {
        let response = h
            .send_on(connection, method.clone(), &path, body.clone())
            .await;
        let problem = expect_problem(response, 400, "invalid_request").await;
        assert!(
            problem["detail"].as_str().unwrap().contains("object"),
            "{method} {path} {body}: {problem}"
        );
    }
    assert_eq!(
        vendor_calls(&h),
        before,
        "no vendor call for a non-object body"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_is_not_json_is_unsupported_media_type() {
    let h = Harness::start().await;
    let conversation = first_id(&h, "support", "/v1/conversations?limit=1").await;
    let message = json!({"conversation_id": conversation, "text": "hello"}).to_string();
    let before = vendor_calls(&h);
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("text/plain; charset=utf-8"),
        Some("application/json; charset=latin1"),
        None,
    ] {
        let response = raw(&h, Method::POST, "/v1/messages", content_type, &message).await;
        let problem = expect_problem(response, 415, "unsupported_media_type").await;
        assert!(problem["detail"].is_string(), "{content_type:?}");
    }
    // A PATCH as text is refused the same way.
    let response = raw(
        &h,
        Method::PATCH,
        &format!("/v1/conversations/{conversation}"),
        Some("text/plain"),
        r#"{"priority": "high"}"#,
    )
    .await;
    expect_problem(response, 415, "unsupported_media_type").await;
    assert_eq!(
        vendor_calls(&h),
        before,
        "a refused body never reaches a vendor"
    );

    // JSON, with parameters, in any case, or as a +json type, is served.
    for content_type in [
        "application/json",
        "Application/JSON; charset=UTF-8",
        "application/merge-patch+json",
    ] {
        let response = raw(
            &h,
            Method::PATCH,
            &format!("/v1/conversations/{conversation}"),
            Some(content_type),
            r#"{"priority": "high"}"#,
        )
        .await;
        expect_status(response, 200).await;
    }
}

/// For each vendor connection, the ID layouts (keys per kind) and one request per kind that
/// would reach the vendor if the ID were accepted.
fn hostile_ids(connection: &str, kind: Kind, good: &[&str]) -> Vec<String> {
    let mut layouts: Vec<Vec<String>> = Vec::new();
    for position in 0..good.len() {
        for hostile in [
            ".",
            "..",
            "../..",
            "a/b",
            "%2e%2e",
            "a?b",
            "x#y",
            "a\u{0}b",
            "line\r\nbreak",
            " ",
            "not the grammar",
            "ü",
        ] {
            let mut keys: Vec<String> = good.iter().map(|k| (*k).to_owned()).collect();
            keys[position] = hostile.to_owned();
            layouts.push(keys);
        }
    }
    // The right keys in the wrong number.
    let mut more: Vec<String> = good.iter().map(|k| (*k).to_owned()).collect();
    more.push(good[0].to_owned());
    layouts.push(more);
    layouts.push(
        good[..good.len() - 1]
            .iter()
            .map(|k| (*k).to_owned())
            .collect(),
    );
    layouts
        .into_iter()
        .filter(|keys| !keys.is_empty())
        .map(|keys| ObjectId::new(kind, "acme", connection, keys).encode())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_id_keys_are_not_found_without_a_vendor_call() {
    let h = Harness::start().await;
    const UUID: &str = "0d5f8a2e-3b1c-4c7e-9f6a-2b8e4d1c7a90";
    // (connection, vendor, kind, well-formed keys of that vendor)
    let layouts: &[(&str, Vendor, Kind, &[&str])] = &[
        ("support", Vendor::Libredesk, Kind::Contact, &["12"]),
        ("support", Vendor::Libredesk, Kind::Conversation, &[UUID]),
        ("support", Vendor::Libredesk, Kind::Message, &[UUID, UUID]),
        ("caac", Vendor::Caac, Kind::Contact, &["1201", "30001"]),
        ("caac", Vendor::Caac, Kind::Conversation, &["1201", "30001"]),
        ("llamadapro", Vendor::LlamadaPro, Kind::Contact, &["501"]),
        (
            "llamadapro",
            Vendor::LlamadaPro,
            Kind::Conversation,
            &["501", "+5215512345678"],
        ),
        (
            "llamadapro",
            Vendor::LlamadaPro,
            Kind::Message,
            &["66a0c0de0000000000000003", "501", "+5215512345678"],
        ),
        (
            "chatcaptain",
            Vendor::ChatCaptain,
            Kind::Contact,
            &["ctc_0001"],
        ),
        (
            "chatcaptain",
            Vendor::ChatCaptain,
            Kind::Conversation,
            &["cnv_0001"],
        ),
        (
            "chatcaptain",
            Vendor::ChatCaptain,
            Kind::Message,
            &["cnv_0001", "msg_0001"],
        ),
    ];
    // Well-formed strings that are not the vendor's grammar: Libredesk conversation keys that
    // are not UUIDs reached the vendor and came back 502; numbers that are not positive
    // integers; phone numbers that are not E.164.
    let off_grammar: &[(&str, Kind, &[&str])] = &[
        ("support", Kind::Conversation, &["not-a-uuid"]),
        ("support", Kind::Message, &[UUID, "42"]),
        ("support", Kind::Contact, &["-1"]),
        ("support", Kind::Contact, &["0"]),
        ("support", Kind::Contact, &["1e3"]),
        ("support", Kind::Contact, &["9999999999999999999999"]),
        ("caac", Kind::Contact, &["1201", "abc"]),
        ("caac", Kind::Conversation, &["-1201", "30001"]),
        ("llamadapro", Kind::Contact, &["0501"]),
        ("llamadapro", Kind::Conversation, &["501", "5215512345678"]),
        ("llamadapro", Kind::Conversation, &["501", "+0215512345678"]),
    ];
    let mut checked = 0;
    for (connection, vendor, kind, good) in layouts {
        if h.sandbox(*vendor).is_none() {
            continue;
        }
        let sandbox = h.sandbox(*vendor).expect("sandbox");
        let before = sandbox.call_count();
        let mut ids = hostile_ids(connection, *kind, good);
        ids.extend(
            off_grammar
                .iter()
                .filter(|(c, k, _)| c == connection && k == kind)
                .map(|(c, k, keys)| {
                    ObjectId::new(
                        *k,
                        "acme",
                        c,
                        keys.iter().map(|s| (*s).to_owned()).collect(),
                    )
                    .encode()
                }),
        );
        for id in ids {
            let requests: Vec<(Method, String, Option<Value>)> = match kind {
                Kind::Contact => vec![
                    (Method::GET, format!("/v1/contacts/{id}"), None),
                    (Method::DELETE, format!("/v1/contacts/{id}"), None),
                    (
                        Method::PATCH,
                        format!("/v1/contacts/{id}"),
                        Some(json!({"name": "x"})),
                    ),
                    (
                        Method::GET,
                        format!("/v1/conversations?contact_id={id}"),
                        None,
                    ),
                ],
                Kind::Conversation => vec![
                    (Method::GET, format!("/v1/conversations/{id}"), None),
                    (Method::DELETE, format!("/v1/conversations/{id}"), None),
                    (
                        Method::PATCH,
                        format!("/v1/conversations/{id}"),
                        Some(json!({"status": "closed"})),
                    ),
                    (
                        Method::GET,
                        format!("/v1/conversations/{id}/messages"),
                        None,
                    ),
                    (
                        Method::POST,
                        "/v1/messages".into(),
                        Some(json!({"conversation_id": id, "text": "hi"})),
                    ),
                ],
                Kind::Message => vec![(Method::GET, format!("/v1/messages/{id}"), None)],
            };
            for (method, path, body) in requests {
                let mut request = h
                    .http
                    .request(method.clone(), h.url(&path))
                    .bearer_auth(h.acme());
                if let Some(body) = body {
                    request = request.json(&body);
                }
                let response = request.send().await.expect("request");
                expect_problem(response, 404, "not_found").await;
                checked += 1;
            }
        }
        assert_eq!(
            sandbox.call_count(),
            before,
            "{vendor:?} {kind:?}: a hostile ID reached the vendor"
        );
    }
    assert!(checked > 300, "only {checked} requests checked");
}
