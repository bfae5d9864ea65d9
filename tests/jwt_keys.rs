//! RS256 and ES256 tokens, with a PEM public key or a JWKS URL (fetched on first use, refetched
//! on an unknown `kid`, at most once per refresh interval).

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

/// A JWKS endpoint on loopback that counts its fetches and can rotate keys.
struct JwksServer {
    url: String,
    fetches: Arc<AtomicUsize>,
    keys: Arc<Mutex<JwkSet>>,
    task: tokio::task::JoinHandle<()>,
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
    let (f, s) = (fetches.clone(), set.clone());
    let app = axum::Router::new().route(
        "/.well-known/jwks.json",
        axum::routing::get(move || {
            let (f, s) = (f.clone(), s.clone());
            async move {
                f.fetch_add(1, Ordering::SeqCst);
                let body = serde_json::to_string(&*s.lock().expect("lock")).expect("json");
                ([("content-type", "application/json")], body)
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
        task,
    }
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
