//! Sandboxes: in-memory, stateful simulators of the vendor APIs, for `switchboard demo` and
//! for integration tests.
//!
//! A sandbox is a real HTTP/1.1 server on a loopback port. Its router is built from the
//! vendor's compiled routes file (`routes/<vendor>.yaml`), so a sandbox answers exactly the
//! paths the gateway will call, and a routes edit that moves a path moves it here too
//! ([`Sandbox::set_routes`]). Each endpoint is dispatched by its routes-file *name* to the
//! vendor simulator, which enforces the vendor's contract: auth header, envelopes, required
//! fields, pagination and error bodies.
//!
//! This module is vendor-neutral: the accept loop, the router, fault injection and call
//! records. A vendor plugs in through the crate-private `VendorSimulator` trait; see
//! [`libredesk`].
//!
//! Request flow inside the sandbox, per request:
//!
//! ```text
//! accept ─▶ hyper http1 connection (keep-alive) ─▶ current router (ArcSwap, loaded per request)
//!   ├─ routes-file endpoint ─▶ record call ─▶ faults ─▶ vendor simulator (auth, contract, state)
//!   └─ anything else         ─▶ record call (endpoint: None) ─▶ vendor-shaped 404 / 405
//! ```

pub mod caac;
pub mod chatcaptain;
pub mod libredesk;
pub mod llamadapro;
pub mod tls;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use arc_swap::{ArcSwap, ArcSwapOption};
use axum::body::{Body, Bytes};
use axum::extract::rejection::RawPathParamsRejection;
use axum::extract::{RawPathParams, Request};
use axum::response::Response;
use axum::routing::{MethodFilter, MethodRouter};
use axum::Router;
use futures::future::BoxFuture;
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::{JoinHandle, JoinSet};
use tower::ServiceExt;

use crate::api::operation::Vendor;
use crate::snapshot::routes::VendorRoutes;
pub use caac::CaacState;
pub use libredesk::LibredeskState;
pub use llamadapro::LlamadaProState;
pub use tls::{SandboxTls, SandboxTlsBuilder};

/// Request bodies above this size are refused with a vendor-shaped 413: the sandbox buffers
/// bodies whole, and no vendor call the gateway makes comes near it.
const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

/// A client that has not sent complete request headers after this long is disconnected.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// A failure injected in front of every routes-file endpoint (before auth), for tests of
/// timeouts, retries and error mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Wait this long before answering (adds up with the other faults, never ends a call).
    Latency(Duration),
    /// Answer with this status and the vendor's error body (e.g. 500, 503).
    Status(u16),
    /// Answer 429 with `Retry-After: <secs>` and the vendor's rate-limit body.
    RateLimit { retry_after_secs: u64 },
    /// Close the TCP connection (with an RST) without writing any response.
    Reset,
    /// Answer 200 with a body that is not JSON (a truncated envelope).
    Malformed,
}

#[derive(Debug)]
struct ActiveFault {
    fault: Fault,
    /// `None` = until cleared.
    remaining: Option<u32>,
    /// Gone after this instant (`None` = no time limit).
    expires: Option<std::time::Instant>,
}

/// One request the sandbox received. No header is recorded except the two below and the
/// scheme words of `Authorization`; in particular never an `Authorization` credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRecord {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    /// The routes-file name of the endpoint that matched (`None` for 404/405).
    pub endpoint: Option<String>,
    pub content_type: Option<String>,
    /// The `X-Request-Id` the caller sent (the gateway forwards its request id).
    pub request_id: Option<String>,
    /// The first word of each `Authorization` header that arrived (`token`, `Bearer`, …),
    /// never what follows it: shows whose credentials reached the vendor.
    pub authorization_schemes: Vec<String>,
}

/// The API credentials a sandbox accepts. `Debug` never prints them.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub api_key: String,
    pub api_secret: String,
}

impl Credentials {
    pub fn new(api_key: impl Into<String>, api_secret: impl Into<String>) -> Self {
        Credentials {
            api_key: api_key.into(),
            api_secret: api_secret.into(),
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("api_key", &"<redacted>")
            .field("api_secret", &"<redacted>")
            .finish()
    }
}

/// One call to a routes-file endpoint, body already read, as a vendor simulator sees it.
/// Deliberately not `Debug`: the headers hold the caller's credentials.
pub(crate) struct SandboxRequest {
    pub method: Method,
    pub headers: HeaderMap,
    /// Path placeholders by their routes-file names, percent-decoded.
    pub params: Vec<(String, String)>,
    pub query: Option<String>,
    pub body: Bytes,
}

impl SandboxRequest {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn content_type(&self) -> Option<&str> {
        self.headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
    }

    /// Whether the `Content-Type` mentions `application/json` (case-insensitive), the test the
    /// Go (fastglue) and Node (Express, NestJS) JSON body parsers make.
    pub fn says_json(&self) -> bool {
        self.content_type()
            .is_some_and(|ct| ct.to_ascii_lowercase().contains("application/json"))
    }
}

/// What a vendor plugs into the shared sandbox server.
pub(crate) trait VendorSimulator: Send + Sync + 'static {
    /// Serve one call to the routes-file endpoint `endpoint`: check auth, enforce the contract,
    /// read or change state. Runs after faults; must never panic on any input.
    fn handle(
        self: Arc<Self>,
        endpoint: &'static str,
        request: SandboxRequest,
    ) -> BoxFuture<'static, Response>;

    /// The vendor's error response for `status` (faults, unknown paths, unreadable requests).
    fn error(&self, status: StatusCode, message: &str) -> Response;

    /// Vendor calls the simulator serves beyond the routes file's endpoints — calls no adapter
    /// makes, which apps reach through `/v1/passthrough/…`: (name, method, path), dispatched to
    /// [`VendorSimulator::handle`] by name like any endpoint.
    fn passthrough_endpoints(&self) -> &'static [(&'static str, Method, &'static str)] {
        &[]
    }

    /// The vendor's 429, with `Retry-After`.
    fn rate_limited(&self, retry_after_secs: u64) -> Response {
        let mut response = self.error(StatusCode::TOO_MANY_REQUESTS, "Too many requests");
        response.headers_mut().insert(
            http::header::RETRY_AFTER,
            HeaderValue::from(retry_after_secs),
        );
        response
    }

    /// A 200 whose body claims to be JSON and is not: a success envelope cut short.
    fn malformed(&self) -> Response {
        json_bytes_response(
            StatusCode::OK,
            r#"{"status":"success","data":{"results":[{"id":"#,
        )
    }
}

/// State shared by every connection and every router generation: the vendor simulator,
/// injected faults and call records. Handlers hold it; it never holds the router (no cycle).
struct SandboxCore {
    vendor: Vendor,
    simulator: Arc<dyn VendorSimulator>,
    faults: Mutex<Vec<ActiveFault>>,
    calls: Mutex<Vec<CallRecord>>,
}

impl SandboxCore {
    fn record(&self, parts: &Parts, endpoint: Option<&str>) {
        let header = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let record = CallRecord {
            method: parts.method.to_string(),
            path: parts.uri.path().to_owned(),
            query: parts.uri.query().map(str::to_owned),
            endpoint: endpoint.map(str::to_owned),
            content_type: header(http::header::CONTENT_TYPE.as_str()),
            request_id: header("x-request-id"),
            authorization_schemes: parts
                .headers
                .get_all(http::header::AUTHORIZATION)
                .iter()
                .map(|v| {
                    String::from_utf8_lossy(v.as_bytes())
                        .split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_owned()
                })
                .collect(),
        };
        lock(&self.calls).push(record);
    }

    /// Consume one use of every active fault that applies to this call: the summed latency
    /// and the first terminal fault (later terminal faults wait for a later call).
    fn take_faults(&self) -> (Duration, Option<Fault>) {
        let mut faults = lock(&self.faults);
        let now = std::time::Instant::now();
        faults.retain(|f| f.expires.is_none_or(|at| now < at));
        let mut delay = Duration::ZERO;
        let mut terminal = None;
        for active in faults.iter_mut() {
            let applies = match &active.fault {
                Fault::Latency(d) => {
                    delay += *d;
                    true
                }
                other if terminal.is_none() => {
                    terminal = Some(other.clone());
                    true
                }
                _ => false,
            };
            if applies {
                if let Some(n) = active.remaining.as_mut() {
                    *n = n.saturating_sub(1);
                }
            }
        }
        faults.retain(|f| f.remaining != Some(0));
        (delay, terminal)
    }

    /// Apply the faults for one call. `Some` answers the call; `None` lets it through.
    async fn apply_faults(&self, parts: &Parts) -> Option<Response> {
        let (delay, terminal) = self.take_faults();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        match terminal? {
            Fault::Latency(_) => None,
            Fault::Status(code) => {
                let status =
                    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                Some(self.simulator.error(status, "Injected sandbox fault"))
            }
            Fault::RateLimit { retry_after_secs } => {
                Some(self.simulator.rate_limited(retry_after_secs))
            }
            Fault::Malformed => Some(self.simulator.malformed()),
            Fault::Reset => match parts.extensions.get::<ConnectionControl>() {
                Some(control) => {
                    control.reset();
                    // The connection task drops this request (and the socket) right away.
                    std::future::pending::<Option<Response>>().await
                }
                None => Some(self.simulator.error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "reset fault outside a sandbox connection",
                )),
            },
        }
    }
}

// ----- helpers shared by the vendor simulators -----------------------------------------------
//
// Only what is the same for every vendor that uses it lives here; anything that encodes a
// vendor's contract (error bodies, statuses, validation rules, time formats of one server)
// stays in that vendor's module.

/// A response with a JSON `Content-Type` (`application/json; charset=utf-8`, as every
/// simulated vendor sends it) and `body` as is: it need not be valid JSON (see
/// [`VendorSimulator::malformed`]).
pub(crate) fn json_bytes_response(status: StatusCode, body: impl Into<Body>) -> Response {
    let mut response = Response::new(body.into());
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    response
}

/// `body`, serialized, as a JSON response with `status`.
pub(crate) fn json_response(status: StatusCode, body: &serde_json::Value) -> Response {
    json_bytes_response(status, serde_json::to_vec(body).unwrap_or_default())
}

/// A request's query string, decoded (`+` and `%XX`), repeated keys kept in order.
pub(crate) struct Query(Vec<(String, String)>);

impl Query {
    /// Decode a raw query string; `None` (no `?`) is an empty query.
    pub fn parse(raw: Option<&str>) -> Self {
        Query(
            url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
                .into_owned()
                .collect(),
        )
    }

    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `key`, in order.
    pub fn all(&self, key: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
pub(crate) const fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = (if y >= 0 { y } else { y - 399 }) / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `(year, month, day)` of a day count since 1970-01-01: the inverse of [`days_from_civil`].
pub(crate) fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// Seconds since the Unix epoch of a UTC date and time, for seed data.
pub(crate) const fn unix_seconds(year: i64, month: i64, day: i64, hour: i64, minute: i64) -> i64 {
    days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60
}

/// The time since the Unix epoch in whole `unit`s (`Duration::from_millis(1)` for
/// milliseconds …); saturates at `i64::MAX`, 0 before the epoch.
pub(crate) fn unix_now(unit: Duration) -> i64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since.as_nanos() / unit.as_nanos().max(1)).unwrap_or(i64::MAX)
}

/// JavaScript's `Date.prototype.toISOString()` of milliseconds since the epoch: UTC, always
/// three fraction digits (`2025-01-06T09:00:00.000Z`).
pub(crate) fn js_iso_string(t: i64) -> String {
    let secs = t.div_euclid(1000);
    let millis = t.rem_euclid(1000);
    let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

/// Lock a mutex, recovering the data if a previous holder panicked: sandbox state stays
/// usable, and no lock is ever held across an `.await`.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Per-connection handle that lets a request ask for its connection to be torn down.
#[derive(Clone, Default)]
struct ConnectionControl(Arc<Notify>);

impl ConnectionControl {
    fn reset(&self) {
        // notify_one stores a permit when nobody waits yet, so the request cannot be lost.
        self.0.notify_one();
    }

    async fn reset_requested(&self) {
        self.0.notified().await;
    }
}

/// The vendor state behind a sandbox, for direct access from tests and the demo.
enum VendorState {
    Libredesk(Arc<LibredeskState>),
    ChatCaptain(Arc<chatcaptain::ChatCaptainState>),
    Caac(Arc<CaacState>),
    LlamadaPro(Arc<LlamadaProState>),
}

/// A running vendor sandbox. Dropping it (or [`Sandbox::shutdown`]) stops the server and
/// closes every open connection.
pub struct Sandbox {
    addr: SocketAddr,
    core: Arc<SandboxCore>,
    router: Arc<ArcSwap<Router>>,
    state: VendorState,
    task: JoinHandle<()>,
    /// HTTPS when set; read per accepted connection.
    tls: Arc<ArcSwapOption<SandboxTls>>,
    /// Client connections being served right now.
    open: Arc<AtomicUsize>,
}

impl fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sandbox")
            .field("vendor", &self.core.vendor)
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Sandbox {
    /// Start the sandbox of `vendor` on `127.0.0.1:<ephemeral>`, seeded. Must be called inside
    /// a tokio runtime; the server runs on it. Fails for a vendor without a sandbox.
    pub async fn start_vendor(
        vendor: Vendor,
        routes: Arc<VendorRoutes>,
        credentials: Credentials,
    ) -> std::io::Result<Sandbox> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        Self::start_vendor_on(vendor, listener, routes, credentials)
    }

    /// Serve the sandbox of `vendor` on a listener the caller bound (the demo picks its ports).
    pub async fn serve_vendor(
        vendor: Vendor,
        listener: std::net::TcpListener,
        routes: Arc<VendorRoutes>,
        credentials: Credentials,
    ) -> std::io::Result<Sandbox> {
        listener.set_nonblocking(true)?;
        Self::start_vendor_on(
            vendor,
            TcpListener::from_std(listener)?,
            routes,
            credentials,
        )
    }

    fn start_vendor_on(
        vendor: Vendor,
        listener: TcpListener,
        routes: Arc<VendorRoutes>,
        credentials: Credentials,
    ) -> std::io::Result<Sandbox> {
        match vendor {
            Vendor::Libredesk => Self::start_libredesk_on(listener, routes, credentials),
            Vendor::ChatCaptain => chatcaptain::start(listener, routes, credentials),
            Vendor::Caac => caac::start(listener, &routes, credentials),
            // One arm per vendor sandbox; see sandbox/<vendor>.rs.
            Vendor::LlamadaPro => llamadapro::start(listener, routes, credentials),
        }
    }

    /// Start the Libredesk sandbox on `127.0.0.1:<ephemeral>`, seeded (see [`libredesk`]).
    /// Must be called inside a tokio runtime; the server runs on it.
    pub async fn start_libredesk(
        routes: Arc<VendorRoutes>,
        credentials: Credentials,
    ) -> std::io::Result<Sandbox> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        Self::start_libredesk_on(listener, routes, credentials)
    }

    /// Serve the Libredesk sandbox on a listener the caller bound (the demo picks its ports).
    pub async fn serve_libredesk(
        listener: std::net::TcpListener,
        routes: Arc<VendorRoutes>,
        credentials: Credentials,
    ) -> std::io::Result<Sandbox> {
        listener.set_nonblocking(true)?;
        Self::start_libredesk_on(TcpListener::from_std(listener)?, routes, credentials)
    }

    fn start_libredesk_on(
        listener: TcpListener,
        routes: Arc<VendorRoutes>,
        credentials: Credentials,
    ) -> std::io::Result<Sandbox> {
        let state = Arc::new(LibredeskState::new(credentials));
        Self::start(
            listener,
            &routes,
            Vendor::Libredesk,
            state.clone(),
            VendorState::Libredesk(state),
        )
    }

    fn start(
        listener: TcpListener,
        routes: &VendorRoutes,
        vendor: Vendor,
        simulator: Arc<dyn VendorSimulator>,
        state: VendorState,
    ) -> std::io::Result<Sandbox> {
        let addr = listener.local_addr()?;
        let core = Arc::new(SandboxCore {
            vendor,
            simulator,
            faults: Mutex::new(Vec::new()),
            calls: Mutex::new(Vec::new()),
        });
        let router = Arc::new(ArcSwap::from_pointee(build_router(&core, routes)?));
        let tls = Arc::new(ArcSwapOption::empty());
        let open = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn(accept_loop(
            listener,
            router.clone(),
            tls.clone(),
            open.clone(),
        ));
        Ok(Sandbox {
            tls,
            open,
            addr,
            core,
            router,
            state,
            task,
        })
    }

    /// `http://127.0.0.1:PORT` (`https://` when serving TLS), no trailing slash: the
    /// connection `base_url` for the gateway.
    pub fn base_url(&self) -> String {
        let scheme = if self.tls.load().is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.addr)
    }

    /// Serve HTTPS with `tls` (or plain HTTP with `None`) from the next accepted connection
    /// on: a test can rotate the sandbox's certificate while the gateway keeps running.
    pub fn set_tls(&self, tls: Option<SandboxTls>) {
        self.tls.store(tls.map(Arc::new));
    }

    /// [`Sandbox::set_tls`] for a sandbox just started.
    pub fn with_tls(self, tls: SandboxTls) -> Sandbox {
        self.set_tls(Some(tls));
        self
    }

    /// Client connections open right now (a gateway's pooled keep-alive sessions count).
    pub fn open_connections(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn vendor(&self) -> Vendor {
        self.core.vendor
    }

    /// Inject a fault in front of every endpoint call, `times` calls long (`None` = until
    /// [`Sandbox::clear_faults`]). Faults stack: latencies add up, and terminal faults
    /// (status, rate limit, reset, malformed) answer calls in the order they were injected.
    pub fn inject(&self, fault: Fault, times: Option<u32>) {
        if times == Some(0) {
            return;
        }
        lock(&self.core.faults).push(ActiveFault {
            fault,
            remaining: times,
            expires: None,
        });
    }

    /// Inject a fault for `duration` of wall time (then it is gone by itself), stacking like
    /// [`Sandbox::inject`].
    pub fn inject_for(&self, fault: Fault, duration: Duration) {
        lock(&self.core.faults).push(ActiveFault {
            fault,
            remaining: None,
            expires: Some(std::time::Instant::now() + duration),
        });
    }

    pub fn clear_faults(&self) {
        lock(&self.core.faults).clear();
    }

    /// Faults still active, with their remaining use counts.
    pub fn active_faults(&self) -> Vec<(Fault, Option<u32>)> {
        let now = std::time::Instant::now();
        lock(&self.core.faults)
            .iter()
            .filter(|f| f.expires.is_none_or(|at| now < at))
            .map(|f| (f.fault.clone(), f.remaining))
            .collect()
    }

    /// Every request received since start (or [`Sandbox::reset_calls`]), oldest first.
    pub fn calls(&self) -> Vec<CallRecord> {
        lock(&self.core.calls).clone()
    }

    pub fn call_count(&self) -> usize {
        lock(&self.core.calls).len()
    }

    /// Calls that matched the routes-file endpoint `endpoint` (e.g. `"messages.send"`).
    pub fn calls_to(&self, endpoint: &str) -> usize {
        lock(&self.core.calls)
            .iter()
            .filter(|c| c.endpoint.as_deref() == Some(endpoint))
            .count()
    }

    pub fn reset_calls(&self) {
        lock(&self.core.calls).clear();
    }

    /// Rebuild the router from new routes; the next request (even on an open keep-alive
    /// connection) sees it. A routes set the router cannot serve (wrong vendor, two
    /// endpoints on one method+path, conflicting paths) is refused and the current router
    /// stays in place.
    pub fn set_routes(&self, routes: Arc<VendorRoutes>) -> std::io::Result<()> {
        let router = build_router(&self.core, &routes)?;
        self.router.store(Arc::new(router));
        Ok(())
    }

    /// The Libredesk state, when this is a Libredesk sandbox.
    pub fn libredesk(&self) -> Option<&LibredeskState> {
        match &self.state {
            VendorState::Libredesk(state) => Some(state),
            _ => None,
        }
    }

    /// The ChatCaptain state, when this is a ChatCaptain sandbox.
    pub fn chatcaptain(&self) -> Option<&chatcaptain::ChatCaptainState> {
        match &self.state {
            VendorState::ChatCaptain(state) => Some(state),
            _ => None,
        }
    }

    /// The CAAC state, when this is a CAAC sandbox.
    pub fn caac(&self) -> Option<&CaacState> {
        match &self.state {
            VendorState::Caac(state) => Some(state),
            _ => None,
        }
    }

    /// The LlamadaPro state, when this is a LlamadaPro sandbox.
    pub fn llamadapro(&self) -> Option<&LlamadaProState> {
        match &self.state {
            VendorState::LlamadaPro(state) => Some(state),
            _ => None,
        }
    }

    /// Stop the server and close every connection (the same as dropping the sandbox).
    pub fn shutdown(self) {
        drop(self);
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        // Aborting the accept loop drops its JoinSet, which aborts every connection task.
        self.task.abort();
    }
}

fn invalid_routes(vendor: Vendor, reason: String) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidInput,
        format!("{vendor} sandbox routes: {reason}"),
    )
}

/// Build the router for one routes generation: every endpoint's path template registered
/// with its method, endpoints sharing a path grouped into one `MethodRouter`, each call
/// dispatched by endpoint name. Everything axum would panic on is checked first and
/// returned as an error.
fn build_router(core: &Arc<SandboxCore>, routes: &VendorRoutes) -> std::io::Result<Router> {
    let vendor = core.vendor;
    if routes.vendor != vendor {
        return Err(invalid_routes(
            vendor,
            format!("routes are for {}, not {vendor}", routes.vendor),
        ));
    }
    let mut by_path: BTreeMap<&str, Vec<(&'static str, &Method)>> = BTreeMap::new();
    for endpoint in routes.endpoints.values() {
        by_path
            .entry(endpoint.path.source())
            .or_default()
            .push((endpoint.name, &endpoint.method));
    }
    for (name, method, path) in core.simulator.passthrough_endpoints() {
        let taken = by_path
            .get(*path)
            .is_some_and(|e| e.iter().any(|(_, m)| *m == method));
        if !taken {
            by_path.entry(*path).or_default().push((*name, method));
        }
    }
    // axum panics on conflicting paths; the same matchit version tells us first.
    let mut check = matchit::Router::new();
    // Templates use `{name}` placeholders only; a literal `:` or `*` segment is a literal.
    let mut router = Router::new().without_v07_checks();
    for (path, endpoints) in by_path {
        if !path.starts_with('/') {
            return Err(invalid_routes(
                vendor,
                format!("path {path:?} must start with '/'"),
            ));
        }
        check
            .insert(path, ())
            .map_err(|e| invalid_routes(vendor, format!("path {path:?}: {e}")))?;
        let mut methods: MethodRouter = MethodRouter::new();
        let mut seen: Vec<(&Method, &str)> = Vec::new();
        for (name, method) in endpoints {
            if let Some((_, other)) = seen.iter().find(|(m, _)| *m == method) {
                return Err(invalid_routes(
                    vendor,
                    format!("{other} and {name} both use {method} {path}"),
                ));
            }
            seen.push((method, name));
            let filter = MethodFilter::try_from(method.clone())
                .map_err(|e| invalid_routes(vendor, format!("{name}: {e}")))?;
            let core = core.clone();
            methods = methods.on(
                filter,
                move |params: Result<RawPathParams, RawPathParamsRejection>, request: Request| {
                    call_endpoint(core, name, params, request)
                },
            );
        }
        let core = core.clone();
        methods = methods.fallback(move |request: Request| async move {
            unmatched(&core, request, StatusCode::METHOD_NOT_ALLOWED)
        });
        router = router.route(path, methods);
    }
    let core = core.clone();
    Ok(router.fallback(move |request: Request| async move {
        unmatched(&core, request, StatusCode::NOT_FOUND)
    }))
}

/// One call to a routes-file endpoint: record, faults, then the vendor simulator.
async fn call_endpoint(
    core: Arc<SandboxCore>,
    endpoint: &'static str,
    params: Result<RawPathParams, RawPathParamsRejection>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    core.record(&parts, Some(endpoint));
    if let Some(response) = core.apply_faults(&parts).await {
        return response;
    }
    let params = match params {
        Ok(params) => params
            .iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        Err(_) => {
            return core
                .simulator
                .error(StatusCode::BAD_REQUEST, "Invalid path parameter")
        }
    };
    let body = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(body) => body,
        Err(_) => {
            return core.simulator.error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "Request body too large or unreadable",
            )
        }
    };
    let request = SandboxRequest {
        method: parts.method,
        headers: parts.headers,
        params,
        query: parts.uri.query().map(str::to_owned),
        body,
    };
    core.simulator.clone().handle(endpoint, request).await
}

/// A request no endpoint serves: recorded, answered with the vendor's 404 (unknown path)
/// or 405 (known path, other method).
fn unmatched(core: &SandboxCore, request: Request, status: StatusCode) -> Response {
    let (parts, _) = request.into_parts();
    core.record(&parts, None);
    let message = if status == StatusCode::NOT_FOUND {
        "Not found"
    } else {
        "Method not allowed"
    };
    core.simulator.error(status, message)
}

/// Accept connections until the sandbox is dropped. Connection tasks live in a `JoinSet`
/// owned by this task, so aborting it closes every connection too.
async fn accept_loop(
    listener: TcpListener,
    router: Arc<ArcSwap<Router>>,
    tls: Arc<ArcSwapOption<SandboxTls>>,
    open: Arc<AtomicUsize>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let counted = OpenConnection::new(open.clone());
                    connections.spawn(serve_connection(stream, router.clone(), tls.load_full(), counted));
                }
                Err(error) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(%error, "sandbox accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Serve one connection with hyper's HTTP/1.1 server (keep-alive on). The router is loaded
/// per request, so a routes swap applies to open connections at their next request.
///
/// A `Fault::Reset` asks, through [`ConnectionControl`], for the connection to be dropped
/// before any byte of a response is written. A second handle on the socket, kept aside,
/// sets `SO_LINGER=0` first, so the close is an RST rather than a polite FIN.
///
/// With TLS the handshake comes first (bounded by the header read timeout); a client that
/// fails it is simply disconnected, as a vendor would.
async fn serve_connection(
    stream: TcpStream,
    router: Arc<ArcSwap<Router>>,
    tls: Option<Arc<SandboxTls>>,
    _open: OpenConnection,
) {
    let _ = stream.set_nodelay(true);
    let (stream, spare) = match split_handle(stream) {
        Ok(pair) => pair,
        Err(error) => {
            tracing::warn!(%error, "sandbox connection setup failed");
            return;
        }
    };
    let Some(tls) = tls else {
        return serve_http(stream, spare, router).await;
    };
    let handshake = async {
        let ssl = openssl::ssl::Ssl::new(tls.acceptor.context()).ok()?;
        let mut stream = tokio_openssl::SslStream::new(ssl, stream).ok()?;
        match std::pin::Pin::new(&mut stream).accept().await {
            Ok(()) => Some(Ok(stream)),
            Err(error) => {
                tracing::debug!(%error, "sandbox TLS handshake failed");
                Some(Err(stream))
            }
        }
    };
    match tokio::time::timeout(HEADER_READ_TIMEOUT, handshake).await {
        Ok(Some(Ok(stream))) => serve_http(stream, spare, router).await,
        Ok(Some(Err(mut failed))) => linger_close(failed.get_mut()).await,
        _ => {}
    }
}

/// Close after a failed handshake the way a careful server does: the alert OpenSSL wrote is
/// followed by a FIN, and what the client sent meanwhile (with TLS 1.3, its first request) is
/// read and dropped, so the close is not an RST that could discard the alert before the client
/// reads it.
async fn linger_close(stream: &mut TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let _ = stream.shutdown().await;
    let drain = async {
        let mut buf = [0u8; 4096];
        while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
}

/// Counts a connection as open from accept until its task ends (dropped with it).
struct OpenConnection(Arc<AtomicUsize>);

impl OpenConnection {
    fn new(open: Arc<AtomicUsize>) -> Self {
        open.fetch_add(1, Ordering::SeqCst);
        OpenConnection(open)
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// HTTP/1.1 over a plain or TLS stream.
async fn serve_http<I>(stream: I, spare: Option<std::net::TcpStream>, router: Arc<ArcSwap<Router>>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let control = ConnectionControl::default();
    let request_control = control.clone();
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let router = router.load_full();
        let mut request = request.map(Body::new);
        request.extensions_mut().insert(request_control.clone());
        async move {
            let response: Result<Response, Infallible> =
                Router::clone(&router).oneshot(request).await;
            response
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .keep_alive(true);
    let mut connection = Box::pin(builder.serve_connection(TokioIo::new(stream), service));
    let reset = tokio::select! {
        // Errors here are client-side trouble (disconnects, garbage): nothing to do.
        _ = connection.as_mut() => false,
        () = control.reset_requested() => true,
    };
    if reset {
        if let Some(spare) = spare {
            if let Ok(spare) = TcpStream::from_std(spare) {
                let _ = spare.set_zero_linger();
                drop(connection);
                drop(spare);
            }
        }
    }
}

/// The stream for hyper, plus a duplicate handle on the same socket for `SO_LINGER`.
fn split_handle(stream: TcpStream) -> std::io::Result<(TcpStream, Option<std::net::TcpStream>)> {
    let std_stream = stream.into_std()?;
    let spare = std_stream.try_clone().ok();
    Ok((TcpStream::from_std(std_stream)?, spare))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The repository's `routes/<file>.yaml`, with `edit` applied to the text, compiled: the
    /// routes the vendor modules' tests run against.
    pub(crate) fn repo_routes(file: &str, edit: impl Fn(String) -> String) -> VendorRoutes {
        let path = format!("{}/routes/{file}.yaml", env!("CARGO_MANIFEST_DIR"));
        let text = edit(std::fs::read_to_string(path).unwrap());
        let file: crate::config::routes::RoutesFile = serde_yaml::from_str(&text).unwrap();
        crate::config::routes::compile(&file).unwrap()
    }

    fn core() -> SandboxCore {
        SandboxCore {
            vendor: Vendor::Libredesk,
            simulator: Arc::new(LibredeskState::new(Credentials::new("k", "s"))),
            faults: Mutex::new(Vec::new()),
            calls: Mutex::new(Vec::new()),
        }
    }

    #[test]
    fn credentials_debug_is_redacted() {
        let shown = format!("{:?}", Credentials::new("key-123", "secret-456"));
        assert!(!shown.contains("key-123"), "{shown}");
        assert!(!shown.contains("secret-456"), "{shown}");
    }

    #[test]
    fn faults_count_down_and_stack() {
        let core = core();
        lock(&core.faults).push(ActiveFault {
            fault: Fault::Latency(Duration::from_millis(5)),
            remaining: None,
            expires: None,
        });
        lock(&core.faults).push(ActiveFault {
            fault: Fault::Status(503),
            remaining: Some(2),
            expires: None,
        });
        lock(&core.faults).push(ActiveFault {
            fault: Fault::Reset,
            remaining: Some(1),
            expires: None,
        });
        assert_eq!(
            core.take_faults(),
            (Duration::from_millis(5), Some(Fault::Status(503)))
        );
        assert_eq!(
            core.take_faults(),
            (Duration::from_millis(5), Some(Fault::Status(503)))
        );
        assert_eq!(
            core.take_faults(),
            (Duration::from_millis(5), Some(Fault::Reset))
        );
        assert_eq!(core.take_faults(), (Duration::from_millis(5), None));
        assert_eq!(lock(&core.faults).len(), 1);
    }

    #[test]
    fn a_timed_fault_is_gone_once_it_expires() {
        let core = core();
        lock(&core.faults).push(ActiveFault {
            fault: Fault::Status(503),
            remaining: None,
            expires: Some(std::time::Instant::now()),
        });
        lock(&core.faults).push(ActiveFault {
            fault: Fault::Reset,
            remaining: None,
            expires: Some(std::time::Instant::now() + Duration::from_secs(3600)),
        });
        assert_eq!(core.take_faults(), (Duration::ZERO, Some(Fault::Reset)));
        assert_eq!(lock(&core.faults).len(), 1);
    }

    #[test]
    fn routes_for_another_vendor_are_refused() {
        let core = Arc::new(core());
        let mut routes = libredesk::tests::routes();
        routes.vendor = Vendor::Caac;
        let error = build_router(&core, &routes).err().map(|e| e.to_string());
        assert!(error.unwrap_or_default().contains("not libredesk"));
    }

    #[test]
    fn conflicting_paths_are_refused_without_panicking() {
        let core = Arc::new(core());
        let mut routes = libredesk::tests::routes();
        // Same shape as /api/v1/conversations/{uuid}, different placeholder name.
        let mut endpoint = routes.endpoints["contacts.get"].clone();
        endpoint.path =
            crate::snapshot::routes::PathTemplate::parse("/api/v1/conversations/{id}").unwrap();
        routes.endpoints.insert("contacts.get", endpoint);
        assert!(build_router(&core, &routes).is_err());

        let mut routes = libredesk::tests::routes();
        let mut endpoint = routes.endpoints["contacts.update"].clone();
        endpoint.method = Method::GET;
        routes.endpoints.insert("contacts.update", endpoint);
        let error = build_router(&core, &routes).err().map(|e| e.to_string());
        assert!(error.unwrap_or_default().contains("both use GET"));

        assert!(build_router(&core, &libredesk::tests::routes()).is_ok());
    }
}
