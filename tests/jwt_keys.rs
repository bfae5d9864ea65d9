//! RS256 and ES256 tokens, with a PEM public key or a JWKS URL (fetched on first use, refetched
//! on an unknown `kid`, at most once per refresh interval).

// Runs against the vendor sandboxes: needs the `sandbox` feature (on by default).
#![cfg(feature = "sandbox")]
// Test helpers fail loudly: a broken fixture is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

fn key_path(name: &str) -> String {
    repo_path(&format!("tests/fixtures/keys/{name}"))
        .display()
        .to_string()
}

fn encoding_key(name: &str, alg: Algorithm) -> EncodingKey {
    let pem = std::fs::read(key_path(name)).expect("key file");
    match alg {
        Algorithm::RS256 => EncodingKey::from_rsa_pem(&pem).expect("rsa key"),
        _ => EncodingKey::from_ec_pem(&pem).expect("ec key"),
    }
}

fn sign(alg: Algorithm, key: &EncodingKey, kid: Option<&str>) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    let claims = json!({
        "tenant": "acme",
        "scope": ALL_SCOPES,
        "aud": AUDIENCE,
        "exp": jsonwebtoken::get_current_timestamp() + 600,
    });
    jsonwebtoken::encode(&header, &claims, key).expect("sign")
}

async fn capabilities(h: &Harness, token: &str) -> u16 {
    h.http
        .get(h.url("/v1/capabilities"))
        .bearer_auth(token)
        .send()
        .await
        .expect("request")
        .status()
        .as_u16()
}

async fn pem_harness(alg: &str, public: &str) -> Harness {
    Harness::start_with(Options {
        jwt: Some(format!(
            "  algorithm: {alg}\n  public_key_file: {}\n  audience: {AUDIENCE}",
            key_path(public)
        )),
        ..Options::default()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rs256_with_a_pem_key() {
    let h = pem_harness("RS256", "rsa-public.pem").await;
    let good = sign(
        Algorithm::RS256,
        &encoding_key("rsa-private.pem", Algorithm::RS256),
        None,
    );
    assert_eq!(capabilities(&h, &good).await, 200);
    let other_key = sign(
        Algorithm::RS256,
        &encoding_key("rsa2-private.pem", Algorithm::RS256),
        None,
    );
    assert_eq!(capabilities(&h, &other_key).await, 401);
    // an HS256 token signed with the public key as secret: the classic algorithm confusion
    let public = std::fs::read(key_path("rsa-public.pem")).expect("pem");
    let confused = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &json!({"tenant": "acme", "scope": ALL_SCOPES, "aud": AUDIENCE, "exp": jsonwebtoken::get_current_timestamp() + 600}),
        &EncodingKey::from_secret(&public),
    )
    .expect("sign");
    assert_eq!(capabilities(&h, &confused).await, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn es256_with_a_pem_key() {
    let h = pem_harness("ES256", "ec-public.pem").await;
    let good = sign(
        Algorithm::ES256,
        &encoding_key("ec-private.pem", Algorithm::ES256),
        None,
    );
    assert_eq!(capabilities(&h, &good).await, 200);
    let rs = sign(
        Algorithm::RS256,
        &encoding_key("rsa-private.pem", Algorithm::RS256),
        None,
    );
    assert_eq!(capabilities(&h, &rs).await, 401);
}

/// A JWKS endpoint on loopback that counts its fetches and can rotate keys, answer late,
/// send `Cache-Control`, and remembers the query string it was fetched with.
struct JwksServer {
    url: String,
    fetches: Arc<AtomicUsize>,
    keys: Arc<Mutex<JwkSet>>,
    behaviour: Arc<Mutex<Behaviour>>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Default, Clone)]
struct Behaviour {
    latency: Duration,
    cache_control: Option<String>,
    last_query: Option<String>,
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn jwk(name: &str, kid: &str) -> Jwk {
    let mut jwk = Jwk::from_encoding_key(&encoding_key(name, Algorithm::RS256), Algorithm::RS256)
        .expect("jwk");
    jwk.common.key_id = Some(kid.to_owned());
    jwk
}

async fn jwks_server(keys: Vec<Jwk>) -> JwksServer {
    let fetches = Arc::new(AtomicUsize::new(0));
    let set = Arc::new(Mutex::new(JwkSet { keys }));
    let behaviour = Arc::new(Mutex::new(Behaviour::default()));
    let (f, s, b) = (fetches.clone(), set.clone(), behaviour.clone());
    let app = axum::Router::new().route(
        "/.well-known/jwks.json",
        axum::routing::get(move |uri: axum::http::Uri| {
            let (f, s, b) = (f.clone(), s.clone(), b.clone());
            async move {
                let behaviour = {
                    let mut b = b.lock().expect("lock");
                    b.last_query = uri.query().map(str::to_owned);
                    b.clone()
                };
                tokio::time::sleep(behaviour.latency).await;
                f.fetch_add(1, Ordering::SeqCst);
                let body = serde_json::to_string(&*s.lock().expect("lock")).expect("json");
                let mut headers = axum::http::HeaderMap::new();
                headers.insert("content-type", "application/json".parse().expect("value"));
                if let Some(cc) = behaviour.cache_control {
                    headers.insert("cache-control", cc.parse().expect("value"));
                }
                (headers, body)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!(
        "http://{}/.well-known/jwks.json",
        listener.local_addr().expect("addr")
    );
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    JwksServer {
        url,
        fetches,
        keys: set,
        behaviour,
        task,
    }
}

async fn jwks_harness(url: &str, extra: &str) -> Harness {
    Harness::start_with(Options {
        jwt: Some(format!(
            "  algorithm: RS256\n  jwks_url: \"{url}\"\n  audience: {AUDIENCE}\n{extra}"
        )),
        ..Options::default()
    })
    .await
}

fn k1() -> String {
    sign(
        Algorithm::RS256,
        &encoding_key("rsa-private.pem", Algorithm::RS256),
        Some("k1"),
    )
}

/// Requests that need keys while a fetch is running wait for that fetch instead of failing
/// with `unknown_key`, and it stays one fetch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_fetch_is_single_flight() {
    let jwks = jwks_server(vec![jwk("rsa-private.pem", "k1")]).await;
    jwks.behaviour.lock().expect("lock").latency = Duration::from_millis(400);
    let h = jwks_harness(&jwks.url, "  jwks_min_refresh_seconds: 60").await;
    let token = k1();
    let statuses = futures::future::join_all((0..10).map(|_| capabilities(&h, &token))).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(jwks.fetches.load(Ordering::SeqCst), 1);
}

/// A key the identity provider removes stops being trusted without any unknown `kid`: the
/// background refresh honours the JWKS answer's `Cache-Control: max-age`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_removed_from_the_jwks_stops_being_trusted() {
    let jwks = jwks_server(vec![
        jwk("rsa-private.pem", "k1"),
        jwk("rsa2-private.pem", "k2"),
    ])
    .await;
    jwks.behaviour.lock().expect("lock").cache_control = Some("public, max-age=1".into());
    let h = jwks_harness(
        &jwks.url,
        "  jwks_min_refresh_seconds: 1\n  jwks_refresh_seconds: 600",
    )
    .await;
    let token = k1();
    assert_eq!(capabilities(&h, &token).await, 200);
    // The identity provider retires k1.
    jwks.keys
        .lock()
        .expect("lock")
        .keys
        .retain(|k| k.common.key_id.as_deref() != Some("k1"));
    let before = jwks.fetches.load(Ordering::SeqCst);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if capabilities(&h, &token).await == 401 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "k1 is still trusted 10 s after the JWKS dropped it (max-age=1)"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        jwks.fetches.load(Ordering::SeqCst) > before,
        "refreshed in the background"
    );
}

/// Entra ID's JWKS URLs carry a query string: config validation accepts it and the fetch
/// sends it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jwks_url_with_a_query_string() {
    let jwks = jwks_server(vec![jwk("rsa-private.pem", "k1")]).await;
    let url = format!("{}?appid=6731de76-14a6-49ae-97bc-6eba6914391e", jwks.url);
    let h = jwks_harness(&url, "").await;
    assert_eq!(capabilities(&h, &k1()).await, 200);
    assert_eq!(
        jwks.behaviour.lock().expect("lock").last_query.as_deref(),
        Some("appid=6731de76-14a6-49ae-97bc-6eba6914391e")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_is_fetched_refreshed_on_unknown_kid_and_rate_limited() {
    let jwks = jwks_server(vec![jwk("rsa-private.pem", "k1")]).await;
    let h = Harness::start_with(Options {
        jwt: Some(format!(
            "  algorithm: RS256\n  jwks_url: {}\n  jwks_min_refresh_seconds: 1\n  audience: {AUDIENCE}",
            jwks.url
        )),
        ..Options::default()
    })
    .await;
    let k1 = sign(
        Algorithm::RS256,
        &encoding_key("rsa-private.pem", Algorithm::RS256),
        Some("k1"),
    );
    assert_eq!(capabilities(&h, &k1).await, 200);
    assert_eq!(capabilities(&h, &k1).await, 200);
    assert_eq!(
        jwks.fetches.load(Ordering::SeqCst),
        1,
        "known kid: no refetch"
    );

    // The identity provider rotates in k2.
    jwks.keys
        .lock()
        .expect("lock")
        .keys
        .push(jwk("rsa2-private.pem", "k2"));
    let k2 = sign(
        Algorithm::RS256,
        &encoding_key("rsa2-private.pem", Algorithm::RS256),
        Some("k2"),
    );
    // Within the refresh interval an unknown kid does not refetch...
    let first = capabilities(&h, &k2).await;
    // ...once it has passed, it does (the interval is the behaviour under test).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(capabilities(&h, &k2).await, 200);
    let after_rotation = jwks.fetches.load(Ordering::SeqCst);
    assert!(
        first == 401 && after_rotation == 2,
        "first={first} fetches={after_rotation}"
    );

    // A flood of forged kids costs at most one fetch per refresh interval.
    let flood = std::time::Instant::now();
    for i in 0..20 {
        let forged = sign(
            Algorithm::RS256,
            &encoding_key("rsa-private.pem", Algorithm::RS256),
            Some(&format!("forged-{i}")),
        );
        assert_eq!(capabilities(&h, &forged).await, 401);
    }
    let intervals = flood.elapsed().as_secs() as usize + 1;
    let fetched = jwks.fetches.load(Ordering::SeqCst) - after_rotation;
    assert!(
        fetched <= intervals,
        "{fetched} fetches for 20 forged kids in {intervals} interval(s)"
    );
}
