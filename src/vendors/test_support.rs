//! Scaffolding shared by the adapters' `execute` tests: a scripted vendor on loopback that
//! records what it is sent, a connection to it built from the vendor's routes file, and `run`,
//! which serves one operation through the vendor's adapter.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Map, Value};

use super::{adapter_for, CallContext, VendorClient, VendorResponse};
use crate::api::operation::{Operation, Vendor};
use crate::api::request::{OperationRequest, Output};
use crate::api::ApiError;
use crate::config::routes::RoutesFile;
use crate::metrics::Metrics;
use crate::snapshot::routes::{AuthScheme, VendorRoutes};
use crate::snapshot::Connection;
use crate::upstream::BaseUrl;

/// The vendor's routes file, as shipped in `routes/`.
pub(crate) fn routes_file(vendor: Vendor) -> RoutesFile {
    let yaml = match vendor {
        Vendor::Libredesk => include_str!("../../routes/libredesk.yaml"),
        Vendor::Caac => include_str!("../../routes/caac.yaml"),
        Vendor::LlamadaPro => include_str!("../../routes/llamadapro.yaml"),
        Vendor::ChatCaptain => include_str!("../../routes/chatcaptain.yaml"),
    };
    serde_yaml::from_str(yaml).unwrap()
}

pub(crate) fn compiled_routes(vendor: Vendor) -> VendorRoutes {
    crate::config::routes::compile(&routes_file(vendor)).unwrap()
}

/// The header the vendor's routes file puts the credentials in.
pub(crate) fn auth_header(vendor: Vendor) -> http::HeaderName {
    match compiled_routes(vendor).auth {
        AuthScheme::Header(name) => name,
        AuthScheme::Token | AuthScheme::Basic | AuthScheme::Bearer => http::header::AUTHORIZATION,
    }
}

/// One request the scripted vendor received.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) query: String,
    /// The value of the vendor's auth header ([`auth_header`]).
    pub(crate) key: String,
    pub(crate) content_type: String,
    pub(crate) body: String,
}

impl Seen {
    pub(crate) fn query_param(&self, name: &str) -> Option<String> {
        url::form_urlencoded::parse(self.query.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }

    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

/// Canned replies by `(method, path)`, and the requests received so far.
pub(crate) struct Script {
    replies: Vec<(String, String, u16, String)>,
    /// The body of the 404 for a `(method, path)` without a reply.
    not_found: String,
    auth_header: http::HeaderName,
    seen: Mutex<Vec<Seen>>,
}

async fn answer(
    axum::extract::State(script): axum::extract::State<Arc<Script>>,
    method: http::Method,
    uri: http::Uri,
    headers: http::HeaderMap,
    body: bytes::Bytes,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let header = |name: &http::HeaderName| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    script.seen.lock().unwrap().push(Seen {
        method: method.to_string(),
        path: uri.path().to_owned(),
        query: uri.query().unwrap_or_default().to_owned(),
        key: header(&script.auth_header),
        content_type: header(&http::header::CONTENT_TYPE),
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    let (status, body) = script
        .replies
        .iter()
        .find(|(m, p, _, _)| m == method.as_str() && p == uri.path())
        .map(|(_, _, s, b)| (*s, b.clone()))
        .unwrap_or((404, script.not_found.clone()));
    (
        http::StatusCode::from_u16(status).unwrap(),
        [(http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

/// A `vendor` on loopback that answers `(method, path, status, body)` replies, and `not_found`
/// with a 404 to anything else. Answers its base URL and the script, to read what it was sent.
pub(crate) async fn serve<M, P, B>(
    vendor: Vendor,
    not_found: &str,
    replies: impl IntoIterator<Item = (M, P, u16, B)>,
) -> (String, Arc<Script>)
where
    M: Into<String>,
    P: Into<String>,
    B: Into<String>,
{
    let script = Arc::new(Script {
        replies: replies
            .into_iter()
            .map(|(m, p, s, b)| (m.into(), p.into(), s, b.into()))
            .collect(),
        not_found: not_found.to_owned(),
        auth_header: auth_header(vendor),
        seen: Mutex::new(Vec::new()),
    });
    let app = axum::Router::new()
        .fallback(answer)
        .with_state(script.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), script)
}

/// The requests the scripted vendor received, in order.
pub(crate) fn seen(script: &Script) -> Vec<Seen> {
    script.seen.lock().unwrap().clone()
}

/// A vendor answer with `status` and `body`.
pub(crate) fn response(status: u16, body: &str) -> VendorResponse {
    VendorResponse {
        status,
        body: bytes::Bytes::from(body.to_owned()),
        ..VendorResponse::default()
    }
}

/// The objects and the next cursor of a list output, as JSON.
pub(crate) fn list_json(output: Output) -> (Vec<Value>, Option<Value>) {
    match output {
        Output::List { data, next } => (
            data.iter()
                .map(|r| serde_json::to_value(r).unwrap())
                .collect(),
            next,
        ),
        other => panic!("expected a list, got {other:?}"),
    }
}

/// Whether one object was found or created, and the object as JSON.
pub(crate) fn object_json(output: Output) -> (&'static str, Value) {
    match output {
        Output::Found(r) => ("found", serde_json::to_value(r).unwrap()),
        Output::Created(r) => ("created", serde_json::to_value(r).unwrap()),
        other => panic!("expected one object, got {other:?}"),
    }
}

/// A connection `name` of tenant `acme` to `vendor` at `base`: the vendor's routes file less
/// the operations in `without`, `key` as the value of its auth header, and `defaults`.
pub(crate) fn connection(
    vendor: Vendor,
    name: &str,
    base: &str,
    key: &'static str,
    defaults: Map<String, Value>,
    without: &[&str],
) -> Connection {
    let mut file = routes_file(vendor);
    for name in without {
        file.operations.remove(*name);
    }
    Connection {
        tenant: "acme".into(),
        name: name.into(),
        vendor,
        base_url: BaseUrl::parse(base).unwrap(),
        auth_header: (auth_header(vendor), http::HeaderValue::from_static(key)),
        credentials: Default::default(),
        redactor: Default::default(),
        defaults,
        tls: Default::default(),
        routes: Arc::new(crate::config::routes::compile(&file).unwrap()),
        capabilities: Vec::new(),
        fingerprint: 0,
        resilience: Default::default(),
    }
}

/// Run one operation through the connection's adapter; answers the result and the number of
/// vendor calls made.
pub(crate) async fn run(
    connection: &Connection,
    request: OperationRequest,
) -> (Result<Output, ApiError>, u32) {
    let client = VendorClient::new();
    let metrics = Metrics::new().unwrap();
    let mut ctx = CallContext {
        connection,
        client: &client,
        metrics: &metrics,
        operation: Operation::ContactsGet,
        request_id: "req-1",
        want_raw: false,
        vendor_time: Duration::ZERO,
        vendor_calls: 0,
        edge: None,
    };
    let result = adapter_for(connection.vendor)
        .execute(&mut ctx, request)
        .await;
    (result, ctx.vendor_calls)
}

// ----- golden translations (the adapters' `golden` modules) ----------------------------------

/// A file of the repository, by path relative to its root.
pub(crate) fn repo_file(path: &str) -> String {
    let path = format!("{}/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A recorded golden file: `tests/fixtures/golden/<name>`.
pub(crate) fn golden_fixture(name: &str) -> String {
    repo_file(&format!("tests/fixtures/golden/{name}"))
}

/// The recorded vendor answer `<name>.vendor.json`, as a 200.
pub(crate) fn golden_vendor(name: &str) -> VendorResponse {
    response(200, &golden_fixture(&format!("{name}.vendor.json")))
}

/// `actual` is, byte for byte, the recorded `<name>.normalized.json` (without its last newline).
pub(crate) fn assert_golden(name: &str, actual: impl AsRef<str>) {
    let expected = golden_fixture(&format!("{name}.normalized.json"));
    assert_eq!(actual.as_ref(), expected.trim_end(), "{name}");
}

/// The mapper of tenant `demo`'s `connection`, as the golden files were recorded with.
pub(crate) fn golden_mapper(connection: &str, want_raw: bool) -> super::common::mapper::Mapper {
    super::common::mapper::Mapper {
        tenant: "demo".into(),
        connection: connection.into(),
        want_raw,
    }
}
