//! Token handling at the HTTP edge: one `Authorization` header, a case-insensitive `Bearer`
//! scheme, configured `iss`/`aud` required, `crit` refused — each refusal a 401 problem+json
//! counted under its reason.

// Runs against the vendor sandboxes: needs the `sandbox` feature (on by default).
#![cfg(feature = "sandbox")]
// Test helpers fail loudly: a broken fixture is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use serde_json::json;

async fn capabilities(h: &Harness, authorization: &[&str]) -> reqwest::Response {
    let mut request = h.http.get(h.url("/v1/capabilities"));
    for value in authorization {
        request = request.header("authorization", *value);
    }
    request.send().await.expect("request")
}

async fn auth_failures(h: &Harness, reason: &str) -> u64 {
    let text = h
        .http
        .get(format!("{}/metrics", h.admin))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let needle = format!("switchboard_auth_failures_total{{reason=\"{reason}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&needle))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no series for reason {reason}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_authorization_header_is_refused() {
    let h = Harness::start().await;
    let good = format!("Bearer {}", h.acme());
    let forged = format!("Bearer {}", h.token("other", ALL_SCOPES));
    let response = capabilities(&h, &[&good]).await;
    assert_eq!(response.status(), 200);
    for pair in [
        [good.as_str(), forged.as_str()],
        [good.as_str(), good.as_str()],
    ] {
        let body = expect_problem(capabilities(&h, &pair).await, 401, "unauthorized").await;
        assert!(
            body["detail"].as_str().unwrap().contains("exactly one"),
            "{body}"
        );
    }
    assert_eq!(auth_failures(&h, "repeated_header").await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bearer_scheme_is_case_insensitive() {
    let h = Harness::start().await;
    let token = h.acme();
    for scheme in ["Bearer", "bearer", "BEARER", "BeArEr"] {
        let header = format!("{scheme} {token}");
        let response = capabilities(&h, &[&header]).await;
        assert_eq!(response.status(), 200, "{scheme}");
    }
    expect_problem(
        capabilities(&h, &[&format!("Basic {token}")]).await,
        401,
        "unauthorized",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_issuer_and_audience_are_required_claims() {
    let h = Harness::start_with(Options {
        jwt: Some(format!(
            "  algorithm: HS256\n  secret: {SECRET}\n  audience: {AUDIENCE}\n  issuer: https://idp.example"
        )),
        ..Options::default()
    })
    .await;
    let both = token_with(
        "acme",
        ALL_SCOPES,
        json!({"aud": AUDIENCE, "iss": "https://idp.example"}),
    );
    assert_eq!(
        capabilities(&h, &[&format!("Bearer {both}")])
            .await
            .status(),
        200
    );
    // Minted by the same identity provider for another service: no `aud`, or no `iss`.
    for claims in [
        json!({"iss": "https://idp.example"}),
        json!({"aud": AUDIENCE}),
    ] {
        let token = token_with("acme", ALL_SCOPES, claims.clone());
        let body = expect_problem(
            capabilities(&h, &[&format!("Bearer {token}")]).await,
            401,
            "unauthorized",
        )
        .await;
        assert!(
            body["detail"].as_str().unwrap().contains("required claim"),
            "{claims}: {body}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_with_a_crit_header_is_refused() {
    let h = Harness::start().await;
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.crit = Some(vec!["http://example.invalid/unknown-extension".into()]);
    let token = jsonwebtoken::encode(
        &header,
        &json!({"tenant": "acme", "scope": ALL_SCOPES, "aud": AUDIENCE,
                "exp": jsonwebtoken::get_current_timestamp() + 600}),
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("sign");
    expect_problem(
        capabilities(&h, &[&format!("Bearer {token}")]).await,
        401,
        "unauthorized",
    )
    .await;
    assert_eq!(auth_failures(&h, "critical_extension").await, 1);
}
