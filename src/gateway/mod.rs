//! The API listener: a pingora `ProxyHttp` whose `request_filter` serves every translated
//! operation itself (terminate and re-originate), plus the shared [`App`] state.
//!
//! Why not pingora's proxy phases: they send the upstream request header before the body is
//! read and the downstream status before the vendor body is read, so a JSON-translating route
//! could neither set an exact Content-Length nor turn a vendor `200 {"error":…}` into a 4xx.
//! `request_filter` reads the capped body, calls the vendor through the pooled client, writes
//! the whole response and returns `Ok(true)`; `upstream_peer` is never reached.

pub mod admin;
mod event_admin;
pub mod event_workers;
pub mod events;
pub mod idempotency;
pub mod limits;
pub mod listener;
pub mod parse;
pub mod passthrough;
pub mod route;

use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use pingora::http::ResponseHeader;
use pingora::prelude::{HttpPeer, ProxyHttp, Session};
use pingora::proxy::FailToProxy;
use serde::Serialize;

use crate::api::operation::Operation;
use crate::api::request::Output;
use crate::api::{ApiError, ErrorCode};
use crate::auth::Principal;
use crate::cache::{self, Cacheable, Fetched, ResponseCache, Served};
use crate::clock::SystemClock;
use crate::cluster::bus::{CacheChange, Invalidation};
use crate::cluster::Cluster;
use crate::config::Loader;
use crate::config_error::ConfigError;
use crate::metrics::Metrics;
use crate::resilience::vendor_edge::VendorEdge;
use crate::snapshot::{FileHash, Snapshot};
use crate::state::cluster::ClusterSettings;
use crate::state::redis::ClusterMetrics;
use crate::state::{MemoryStore, StateStore};
use crate::upstream::tls::PoolIdentity;
use crate::upstream::{CallError, VendorClient};
use crate::vendors::{adapter_for, CallContext};
use route::{match_route, NoRoute, Route};

/// The normalized API's own OpenAPI document, served at `GET /openapi.json`.
static OPENAPI_JSON: &[u8] = include_bytes!("../../openapi/switchboard.openapi.json");

/// Longest `X-Request-Id` accepted from a client; longer ones are replaced.
const MAX_REQUEST_ID: usize = 128;

/// State shared by the API listener, the admin listener and background services.
pub struct App {
    snapshot: ArcSwap<Snapshot>,
    loader: Loader,
    pub client: VendorClient,
    pub metrics: Metrics,
    pub cache: ResponseCache,
    /// The parts shared with the other replicas (`cluster:`, issue 15); `None`: one process
    /// with in-process state.
    pub cluster: Option<Arc<Cluster>>,
    /// Serializes reloads (never held across an await: reloads are synchronous).
    reload_lock: Mutex<()>,
    /// The files of the last change the watcher tried and the loader rejected: the same bytes
    /// are not tried again until something changes.
    last_rejected: Mutex<Option<Vec<FileHash>>>,
    /// Events (store, subscriptions, metrics); `None` without `events:` in the gateway file.
    pub events: Option<Arc<events::EventsRuntime>>,
    /// Every vendor call's way out: the shared state store (tenant limits, vendor budgets,
    /// pauses, idempotency records), this replica's circuit breakers and retry budgets.
    pub edge: VendorEdge,
    /// Fault injection into the demo's sandboxes (`POST /admin/sandbox/faults`); set only by
    /// `switchboard demo`.
    sandbox_faults: std::sync::OnceLock<Arc<dyn SandboxFaults>>,
}

/// What the admin listener's `/admin/sandbox/faults` drives (the demo's sandboxes). Both
/// take the request body and answer a status and a JSON body.
pub trait SandboxFaults: Send + Sync + 'static {
    fn inject(&self, body: &[u8]) -> (u16, serde_json::Value);
    fn clear(&self, body: &[u8]) -> (u16, serde_json::Value);
}

impl App {
    /// Load generation 1 with the in-process state store. Fails with the first config error.
    pub fn try_new(loader: Loader) -> Result<Arc<App>, ConfigError> {
        Self::try_new_with_stores(loader, Arc::new(MemoryStore::new()), None)
    }

    /// Load generation 1 with `state` as the shared state store (the in-process
    /// [`MemoryStore`], or a Redis-backed store for several replicas).
    pub fn try_new_with_state(
        loader: Loader,
        state: Arc<dyn StateStore>,
    ) -> Result<Arc<App>, ConfigError> {
        Self::try_new_with_stores(loader, state, None)
    }

    /// [`App::try_new`] with the event store given (a shared backend for several replicas);
    /// `None` opens the embedded store under `events.data_dir`.
    pub fn try_new_with_events(
        loader: Loader,
        event_store: Option<Arc<dyn crate::events::store::EventStore>>,
    ) -> Result<Arc<App>, ConfigError> {
        Self::try_new_with_stores(loader, Arc::new(MemoryStore::new()), event_store)
    }

    /// Load generation 1 with both seams given: the state store and the event store (`None`:
    /// the embedded one under `events.data_dir`, when `events:` is configured).
    pub fn try_new_with_stores(
        loader: Loader,
        state: Arc<dyn StateStore>,
        event_store: Option<Arc<dyn crate::events::store::EventStore>>,
    ) -> Result<Arc<App>, ConfigError> {
        let snapshot = loader.load(1)?;
        let metrics = Metrics::new().map_err(|e| ConfigError {
            file: loader.config_path().to_path_buf(),
            key: String::new(),
            reason: format!("metrics registry: {e}"),
        })?;
        metrics.config_generation.set(1);
        let cache = ResponseCache::with_bounds(
            snapshot.settings.cache_max_entries,
            snapshot.settings.cache_max_bytes,
        );
        let cluster = match &snapshot.settings.cluster {
            Some(settings) => Some(Arc::new(start_cluster(
                loader.config_path(),
                settings,
                snapshot
                    .events
                    .settings
                    .as_ref()
                    .map(|events| events.data_dir.as_path()),
                &metrics,
            )?)),
            None => None,
        };
        // With `cluster:`, the state every replica must agree on lives in Redis (with the
        // local fallbacks of issue 15).
        let state: Arc<dyn StateStore> = match &cluster {
            Some(cluster) => cluster.state.clone(),
            None => state,
        };
        let edge = VendorEdge::new(
            state,
            Arc::new(SystemClock::new()),
            metrics.resilience.clone(),
        );
        // With `cluster:`, events go to the shared store on Redis (with its local spill).
        let event_store = event_store.or_else(|| {
            let shared = cluster.as_ref()?.events.clone()?;
            Some(shared as Arc<dyn crate::events::store::EventStore>)
        });
        let events =
            events::EventsRuntime::start(&snapshot, &metrics, event_store, loader.config_path())?;
        let app = Arc::new(App {
            edge,
            events,
            sandbox_faults: std::sync::OnceLock::new(),
            cache,
            cluster,
            snapshot: ArcSwap::from_pointee(snapshot),
            loader,
            client: VendorClient::new(),
            metrics,
            reload_lock: Mutex::new(()),
            last_rejected: Mutex::new(None),
        });
        if let Some(cluster) = &app.cluster {
            let replica: Weak<App> = Arc::downgrade(&app);
            cluster.follow(replica);
        }
        Ok(app)
    }

    /// The active snapshot. A request calls this once and keeps the `Arc` to its end.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    pub fn loader(&self) -> &Loader {
        &self.loader
    }

    /// Hand the demo's sandboxes to the admin listener (once; later calls are ignored).
    pub fn set_sandbox_faults(&self, faults: Arc<dyn SandboxFaults>) {
        let _ = self.sandbox_faults.set(faults);
    }

    /// The demo's fault injection, when this is `switchboard demo`.
    pub fn sandbox_faults(&self) -> Option<&Arc<dyn SandboxFaults>> {
        self.sandbox_faults.get()
    }

    /// Build a new snapshot from the files and swap it in; on any error the old snapshot keeps
    /// serving. Returns the new generation.
    pub fn reload(&self, trigger: &str) -> Result<Reloaded, ConfigError> {
        let _guard = match self.reload_lock.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let current = self.snapshot();
        match self.loader.load(current.generation + 1) {
            Ok(next) => {
                let restart_required = current.settings.restart_required(&next.settings);
                if !restart_required.is_empty() {
                    tracing::warn!(
                        keys = ?restart_required,
                        "these settings changed but take effect only after a restart or a \
                         graceful upgrade (see README, Operations); everything else is applied"
                    );
                }
                for warning in &next.warnings {
                    tracing::warn!(
                        file = %warning.file.display(),
                        key = %warning.key,
                        reason = %warning.reason,
                        "config warning"
                    );
                }
                let retired = retired_pools(&current, &next);
                let generation = next.generation;
                let live = next
                    .tenants
                    .values()
                    .flat_map(|conns| conns.values())
                    .map(|c| (c.tenant.clone(), c.name.clone(), c.fingerprint))
                    .collect();
                self.snapshot.store(Arc::new(next));
                // Breakers and retry budgets of removed connections are dropped.
                let snapshot = self.snapshot();
                self.edge
                    .guards()
                    .retain(|key| snapshot.connection(&key.tenant, &key.connection).is_some());
                if let Some(events) = &self.events {
                    events.reloaded(&self.snapshot());
                }
                // Entries of removed or changed connections are unreachable already (their
                // keys carry the old fingerprint); drop them to free the memory.
                self.cache.retain_connections(live);
                // Sessions made under a connection's old TLS settings are never reused (their
                // pool group differs); close the idle ones now rather than at their timeout.
                self.client.retire_pools(&retired);
                self.metrics
                    .config_reloads
                    .with_label_values(&["success"])
                    .inc();
                self.metrics.config_generation.set(generation as i64);
                tracing::info!(generation, trigger, "config reloaded");
                Ok(Reloaded {
                    generation,
                    restart_required,
                })
            }
            Err(e) => {
                self.metrics
                    .config_reloads
                    .with_label_values(&["failure"])
                    .inc();
                tracing::error!(
                    file = %e.file.display(),
                    key = %e.key,
                    reason = %e.reason,
                    trigger,
                    generation = current.generation,
                    "config reload rejected; the previous config keeps serving"
                );
                Err(e)
            }
        }
    }
}

/// Connect this replica to the cluster (or start it degraded when Redis does not answer yet):
/// its metrics go into the gateway's registry. Fails only on what Redis being down cannot
/// explain (the runtime, settings the client refuses), naming the `cluster` key.
fn start_cluster(
    file: &std::path::Path,
    settings: &ClusterSettings,
    spill_dir: Option<&std::path::Path>,
    metrics: &Metrics,
) -> Result<Cluster, ConfigError> {
    let fail = |reason: String| ConfigError {
        file: file.to_path_buf(),
        key: "cluster".to_owned(),
        reason,
    };
    let cluster_metrics = ClusterMetrics::new()
        .and_then(|m| m.register(metrics.registry()).map(|()| m))
        .map_err(|e| fail(format!("metrics registry: {e}")))?;
    Cluster::launch(settings.clone(), spill_dir, Some(cluster_metrics))
        .map_err(|e| fail(e.to_string()))
}

impl App {
    /// Drop what a change made stale from this replica's cache and, with `cluster:`, from the
    /// other replicas' caches (an event the vendor sent, a write seen by a background worker).
    pub async fn invalidate(
        &self,
        conn: &crate::snapshot::Connection,
        change: cache::Invalidation,
    ) {
        let shared = CacheChange::from_write(&change);
        self.cache.apply(conn, change).await;
        if let (Some(shared), Some(cluster)) = (shared, &self.cluster) {
            cluster
                .publish(Invalidation::on(&conn.tenant, &conn.name, shared))
                .await;
        }
    }
}

impl crate::cluster::Replica for App {
    fn cache(&self) -> &ResponseCache {
        &self.cache
    }

    fn snapshot(&self) -> Arc<Snapshot> {
        App::snapshot(self)
    }
}

/// Pool identities (TLS settings, server name, port) that connections of `current` used and no
/// connection of `next` uses: their idle pooled sessions are closed after the swap.
fn retired_pools(current: &Snapshot, next: &Snapshot) -> std::collections::BTreeSet<PoolIdentity> {
    let identities = |snapshot: &Snapshot| -> std::collections::BTreeSet<PoolIdentity> {
        snapshot
            .tenants
            .values()
            .flat_map(|conns| conns.values())
            .map(|c| PoolIdentity::of(&c.base_url, &c.tls))
            .collect()
    };
    let live = identities(next);
    identities(current)
        .into_iter()
        .filter(|identity| !live.contains(identity))
        .collect()
}

impl App {
    /// The watcher's reload: only when the watched files' content differs from what the active
    /// snapshot was built from (and from the last rejected attempt). File events alone prove
    /// nothing: reading a file (the reload itself, `switchboard token`) or saving it unchanged
    /// fires them too. `None` when nothing changed. Blocking: reads every watched file.
    pub fn reload_if_changed(&self, trigger: &str) -> Option<Result<Reloaded, ConfigError>> {
        let current = self.snapshot();
        let on_disk = current.files_on_disk();
        if on_disk == current.files_loaded() {
            return None;
        }
        if lock(&self.last_rejected).as_ref() == Some(&on_disk) {
            return None;
        }
        let result = self.reload(trigger);
        *lock(&self.last_rejected) = result.is_err().then_some(on_disk);
        Some(result)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// A reload that was applied.
#[derive(Debug, Clone)]
pub struct Reloaded {
    pub generation: u64,
    /// Changed settings that wait for a restart (listen addresses, threads, …).
    pub restart_required: Vec<&'static str>,
}

/// Per-request state, filled as the request moves through `request_filter`, read by
/// `logging` for the access log and metrics.
pub struct RequestCtx {
    pub request_id: String,
    started: Instant,
    operation: &'static str,
    vendor: &'static str,
    connection: Option<String>,
    status: u16,
    code: &'static str,
    vendor_time: Duration,
    vendor_calls: u32,
    cache: &'static str,
    /// What failed underneath the request's error (the vendor call's [`CallError`]), logged
    /// once by `logging`.
    failure: Option<Arc<dyn std::error::Error + Send + Sync>>,
    /// `RateLimit-Policy` / `RateLimit` of a limited tenant, added to whatever is answered.
    limit_headers: Vec<(http::HeaderName, http::HeaderValue)>,
    /// A passthrough call admitted for proxying ([`passthrough`]); `None` for everything else.
    passthrough: Option<passthrough::Plan>,
}

/// `{"data": [...], "next_cursor": "…" | null}`, serialized straight from the resources.
#[derive(Serialize)]
struct ListBody<'a> {
    data: &'a [crate::api::request::Resource],
    next_cursor: Option<String>,
}

/// A finished response, not yet written.
struct Reply {
    status: u16,
    content_type: &'static str,
    body: Bytes,
    headers: Vec<(http::HeaderName, http::HeaderValue)>,
}

/// A cached read is stored as its body and answered as 200 JSON.
impl Cacheable for Reply {
    fn into_body(self) -> Bytes {
        self.body
    }

    fn from_body(body: Bytes) -> Self {
        Reply::ok_json(body)
    }
}

impl Reply {
    /// 200 with a body that is JSON already.
    fn ok_json(body: Bytes) -> Reply {
        Reply {
            status: 200,
            content_type: "application/json",
            body,
            headers: Vec::new(),
        }
    }

    fn json(status: u16, value: &impl Serialize) -> Result<Reply, ApiError> {
        let body = serde_json::to_vec(value)
            .map_err(|e| ApiError::internal(format!("could not encode the response: {e}")))?;
        Ok(Reply {
            status,
            content_type: "application/json",
            body: Bytes::from(body),
            headers: Vec::new(),
        })
    }

    fn problem(error: &ApiError, request_id: &str) -> Reply {
        let body = serde_json::to_vec(&error.to_problem(request_id)).unwrap_or_else(|_| {
            br#"{"type":"about:blank","title":"Internal error","status":500,"code":"internal_error"}"#.to_vec()
        });
        let mut headers = Vec::new();
        if let Some(seconds) = error.retry_after {
            headers.push((http::header::RETRY_AFTER, http::HeaderValue::from(seconds)));
        }
        if let Some(allow) = error.allow {
            headers.push((http::header::ALLOW, http::HeaderValue::from_static(allow)));
        }
        Reply {
            status: error.status(),
            content_type: "application/problem+json",
            body: Bytes::from(body),
            headers,
        }
    }
}

pub struct Gateway {
    app: Arc<App>,
}

impl Gateway {
    pub fn new(app: Arc<App>) -> Self {
        Gateway { app }
    }

    /// The request flow of docs/architecture.md, one step per line. Any step may answer early
    /// with an error; nothing after it runs (in particular, no vendor call).
    async fn handle(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        snapshot: &Snapshot,
    ) -> Result<Reply, ApiError> {
        let header = session.req_header();
        let method = header.method.clone();
        let path = header.uri.path().to_owned();
        let query = header.uri.query().map(str::to_owned);
        let route = match_route(&method, &path).map_err(no_route)?;
        // Known from the route alone, so refused tokens are counted under their operation.
        ctx.operation = match &route {
            Route::OpenApi => "openapi",
            Route::Capabilities => "capabilities",
            Route::Operation { op, .. } => op.as_str(),
        };
        if route == Route::OpenApi {
            return Ok(Reply::ok_json(Bytes::from_static(OPENAPI_JSON)));
        }
        let principal = self.authenticate(session, snapshot).await?;
        self.admit_request(ctx, snapshot, &principal.tenant).await?;
        let (op, path_id) = match route {
            Route::Operation { op, id } => (op, id),
            _ => {
                return Reply::json(200, &capabilities(snapshot, &principal));
            }
        };
        self.authorize(&principal, op)?;
        check_media_type(op, &session.req_header().headers)?;
        let body = read_body(
            session,
            snapshot.settings.body_limit_bytes,
            snapshot.settings.http.body_read_timeout,
        )
        .await
        .inspect_err(|e| {
            if e.code == ErrorCode::RequestTimeout {
                self.app
                    .metrics
                    .read_timeouts
                    .with_label_values(&["body"])
                    .inc();
            }
        })?;
        let connection_header = session
            .req_header()
            .headers
            .get("x-connection")
            .map(|v| {
                v.to_str()
                    .map_err(|_| ApiError::invalid("X-Connection is not valid text"))
            })
            .transpose()?
            .map(str::to_owned);
        let raw = parse::RawRequest {
            op,
            path_id,
            query: query.as_deref(),
            connection_header: connection_header.as_deref(),
            body: &body,
        };
        let parsed = parse::parse(snapshot, &principal, &raw)?;
        let connection = parsed.connection.clone();
        ctx.vendor = connection.vendor.as_str();
        ctx.connection = Some(connection.name.clone());
        let in_flight = match idempotency::begin(
            &self.app,
            session.req_header(),
            &principal.tenant,
            &connection,
            op.as_str(),
            &body,
        )
        .await?
        {
            Some(idempotency::Idempotent::Replay(reply)) => return Ok(reply),
            Some(idempotency::Idempotent::Run(in_flight)) => Some(in_flight),
            None => None,
        };
        let plan = cache::Plan::new(
            &connection,
            &parsed.request,
            parsed.want_raw,
            &parsed.filters_key,
            wants_fresh(session),
        );
        // What a write changes, for the other replicas' caches (issue 15).
        let change = match &plan {
            cache::Plan::Pass { invalidation, .. } if self.app.cluster.is_some() => {
                CacheChange::from_write(invalidation)
            }
            _ => None,
        };
        let served = self
            .app
            .cache
            // Boxed: a cache hit never polls the fetch, but would move it through three futures.
            .serve(
                plan,
                Box::pin(async {
                    let result = self.execute(ctx, snapshot, parsed).await;
                    Fetched {
                        result,
                        reached_vendor: ctx.vendor_calls > 0,
                    }
                }),
            )
            .await;
        if let (Some(change), Some(cluster)) = (change, &self.app.cluster) {
            // Like the local invalidation: once the write reached the vendor. Sent before the
            // answer, so a client that reads through another replica next sees the write.
            if ctx.vendor_calls > 0 {
                cluster
                    .publish(Invalidation::on(
                        &connection.tenant,
                        &connection.name,
                        change,
                    ))
                    .await;
            }
        }
        let result = self.cache_answer(ctx, op, served);
        if let Some(in_flight) = in_flight {
            in_flight.finish(&result, &ctx.request_id).await;
        }
        result
    }

    /// How the cache answered a cached read: counted, logged, and told in `X-Cache` (and `Age`
    /// on a hit). Anything the cache did not serve passes through.
    fn cache_answer(
        &self,
        ctx: &mut RequestCtx,
        op: Operation,
        served: Served<Reply>,
    ) -> Result<Reply, ApiError> {
        let Some(outcome) = served.outcome else {
            return served.result;
        };
        ctx.cache = outcome.as_str();
        self.app
            .metrics
            .count_cache_request(op.as_str(), outcome.as_str());
        let mut reply = served.result?;
        reply.headers.push((
            http::HeaderName::from_static("x-cache"),
            http::HeaderValue::from_static(outcome.as_str()),
        ));
        if let Some(age) = served.age {
            reply
                .headers
                .push((http::header::AGE, http::HeaderValue::from(age)));
        }
        Ok(reply)
    }

    /// Run the operation on its vendor through the adapter and build the reply.
    async fn execute(
        &self,
        ctx: &mut RequestCtx,
        snapshot: &Snapshot,
        parsed: parse::Parsed,
    ) -> Result<Reply, ApiError> {
        let parse::Parsed {
            op,
            connection,
            request,
            want_raw,
            filters_key,
        } = parsed;
        let mut call = CallContext {
            connection: &connection,
            client: &self.app.client,
            metrics: &self.app.metrics,
            operation: op,
            request_id: &ctx.request_id,
            want_raw,
            vendor_time: Duration::ZERO,
            vendor_calls: 0,
            edge: Some(&self.app.edge),
        };
        let result = adapter_for(connection.vendor)
            .execute(&mut call, request)
            .await
            .map_err(|e| crate::vendors::forbidden_for(op, e));
        ctx.vendor_time += call.vendor_time;
        ctx.vendor_calls += call.vendor_calls;
        match result? {
            Output::Found(resource) => Reply::json(200, &resource),
            Output::Created(resource) => Reply::json(201, &resource),
            Output::Deleted => Ok(Reply {
                status: 204,
                content_type: "application/json",
                body: Bytes::new(),
                headers: Vec::new(),
            }),
            Output::List { data, next } => {
                let next_cursor = next.map(|state| {
                    snapshot
                        .cursors
                        .encode(&parse::cursor_scope(&connection, op, &filters_key), &state)
                });
                Reply::json(
                    200,
                    &ListBody {
                        data: &data,
                        next_cursor,
                    },
                )
            }
        }
    }

    async fn authenticate(
        &self,
        session: &Session,
        snapshot: &Snapshot,
    ) -> Result<Arc<Principal>, ApiError> {
        let verified = match crate::auth::authorization_value(&session.req_header().headers) {
            Ok(header) => snapshot.auth.verify(header, &self.app.client).await,
            Err(failure) => Err(failure),
        };
        verified.map_err(|failure| {
            self.app
                .metrics
                .auth_failures
                .with_label_values(&[failure.reason()])
                .inc();
            ApiError::unauthorized(failure.detail())
        })
    }

    fn authorize(&self, principal: &Principal, op: Operation) -> Result<(), ApiError> {
        if principal.has_scope(op.scope()) {
            return Ok(());
        }
        self.app
            .metrics
            .auth_failures
            .with_label_values(&["missing_scope"])
            .inc();
        Err(ApiError::forbidden(format!(
            "{op} needs scope {}",
            op.scope()
        )))
    }
}

/// `Cache-Control: no-cache` (or `Pragma: no-cache`): skip the cache, refresh the entry.
fn wants_fresh(session: &Session) -> bool {
    let headers = &session.req_header().headers;
    let says_no_cache = |name: http::HeaderName| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|d| {
                let d = d.trim();
                d.eq_ignore_ascii_case("no-cache") || d.eq_ignore_ascii_case("no-store")
            })
    };
    says_no_cache(http::header::CACHE_CONTROL) || says_no_cache(http::header::PRAGMA)
}

fn no_route(e: NoRoute) -> ApiError {
    match e {
        NoRoute::NotFound => ApiError::not_found("no such route; see GET /openapi.json"),
        NoRoute::MethodNotAllowed(allow) => ApiError::new(
            ErrorCode::MethodNotAllowed,
            format!("method not allowed here; allowed: {allow}"),
        )
        .with_allow(allow),
    }
}

/// `GET /v1/capabilities`: per connection of the caller's tenant, what it can do — generated
/// from the same table the router checks.
fn capabilities(snapshot: &Snapshot, principal: &Principal) -> serde_json::Value {
    let data: Vec<serde_json::Value> = snapshot
        .tenant_connections(&principal.tenant)
        .into_iter()
        .flat_map(|c| c.values())
        .map(|conn| {
            let operations: Vec<&str> = conn
                .capabilities
                .iter()
                .map(|(op, _)| op.as_str())
                .collect();
            let filters: serde_json::Map<String, serde_json::Value> = conn
                .capabilities
                .iter()
                .filter(|(op, _)| {
                    matches!(op, Operation::ContactsList | Operation::ConversationsList)
                })
                .map(|(op, f)| (op.as_str().to_owned(), serde_json::json!(f)))
                .collect();
            // Which form of attachment `messages.send` takes here, if any.
            let attachments = conn
                .capabilities
                .iter()
                .any(|(op, _)| *op == Operation::MessagesSend)
                .then(|| crate::vendors::adapter_for(conn.vendor).attachments(&conn.routes))
                .flatten()
                .map(|a| {
                    serde_json::json!({
                        "sources": a.sources,
                        "max_count": a.max_count,
                        "max_bytes": snapshot.settings.attachment_max_bytes,
                    })
                });
            serde_json::json!({
                "connection": conn.name,
                "vendor": conn.vendor.as_str(),
                "operations": operations,
                "filters": filters,
                "attachments": attachments,
                "passthrough": passthrough::capability(conn),
            })
        })
        .collect();
    serde_json::json!({ "data": data })
}

/// 415 unless a request body is JSON: any request that carries a body (or an operation that
/// takes one and names a type) must say `application/json` or a `*/*+json` type. Checked
/// before the body is read, so a refused body is never buffered.
fn check_media_type(op: Operation, headers: &http::HeaderMap) -> Result<(), ApiError> {
    let declares_body = headers.contains_key(http::header::TRANSFER_ENCODING)
        || headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() != "0");
    let refuse = |detail: String| Err(ApiError::new(ErrorCode::UnsupportedMediaType, detail));
    match headers.get(http::header::CONTENT_TYPE) {
        Some(value) if declares_body || op.takes_body() => match value.to_str() {
            Ok(ct) if parse::is_json_media_type(ct) => Ok(()),
            Ok(ct) => refuse(format!(
                "Content-Type {:?} is not JSON; send application/json",
                ct.chars().take(100).collect::<String>()
            )),
            Err(_) => refuse("Content-Type is not valid text; send application/json".into()),
        },
        None if declares_body => {
            refuse("a request body needs Content-Type: application/json".into())
        }
        _ => Ok(()),
    }
}

/// Read the request body, refusing more than `limit` bytes (413) — by Content-Length before
/// reading anything, and again while streaming, so a chunked body can't exceed it either —
/// and a body that takes longer than `timeout` in total (408: a client trickling bytes must
/// not hold a connection forever).
async fn read_body(
    session: &mut Session,
    limit: usize,
    timeout: Duration,
) -> Result<Bytes, ApiError> {
    match tokio::time::timeout(timeout, read_body_within(session, limit)).await {
        Ok(result) => result,
        Err(_) => Err(ApiError::new(
            ErrorCode::RequestTimeout,
            format!(
                "the request body did not arrive within {} ms",
                timeout.as_millis()
            ),
        )),
    }
}

async fn read_body_within(session: &mut Session, limit: usize) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("the request body is larger than {limit} bytes"),
        )
    };
    let declared = session
        .req_header()
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(too_large());
    }
    let mut body = BytesMut::new();
    loop {
        match session.read_request_body().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > limit {
                    return Err(too_large());
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(e) => {
                return Err(ApiError::invalid(format!(
                    "could not read the request body: {}",
                    e.etype().as_str()
                )))
            }
        }
    }
    Ok(body.freeze())
}

/// Echo a sane client `X-Request-Id`, or make one.
fn request_id(session: &Session) -> String {
    client_request_id(&session.req_header().headers).unwrap_or_else(new_request_id)
}

/// The client's `X-Request-Id`, when it is one we can echo (1–128 visible ASCII characters).
fn client_request_id(headers: &http::HeaderMap) -> Option<String> {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty() && v.len() <= MAX_REQUEST_ID && v.bytes().all(|b| b.is_ascii_graphic())
        })
        .map(str::to_owned)
}

fn new_request_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

async fn write_reply(session: &mut Session, ctx: &RequestCtx, reply: Reply) -> pingora::Result<()> {
    let mut header = ResponseHeader::build(reply.status, Some(6))?;
    // A 204 has no content: no Content-Type, and no Content-Length (RFC 9110 §8.6).
    if reply.status != 204 {
        header.insert_header(http::header::CONTENT_TYPE, reply.content_type)?;
        header.insert_header(http::header::CONTENT_LENGTH, reply.body.len())?;
    }
    header.insert_header("x-request-id", ctx.request_id.as_str())?;
    header.insert_header(http::header::CACHE_CONTROL, "no-store")?;
    for (name, value) in reply.headers {
        header.insert_header(name, value)?;
    }
    let head_only = session.req_header().method == http::Method::HEAD || reply.body.is_empty();
    session
        .write_response_header(Box::new(header), head_only)
        .await?;
    if !head_only {
        session.write_response_body(Some(reply.body), true).await?;
    }
    Ok(())
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> Self::CTX {
        RequestCtx {
            request_id: String::new(),
            started: Instant::now(),
            operation: "unknown",
            vendor: "none",
            connection: None,
            status: 0,
            code: "ok",
            vendor_time: Duration::ZERO,
            vendor_calls: 0,
            cache: "none",
            failure: None,
            limit_headers: Vec::new(),
            passthrough: None,
        }
    }

    /// Serves every request: authenticate, route, resolve the connection, call the vendor,
    /// write the response. Always returns `Ok(true)` ("response sent") unless writing to the
    /// client failed. The snapshot is loaded once here so a reload mid-request can't mix two
    /// configurations within one request.
    async fn request_filter(
        &self,
        session: &mut Session,
        ctx: &mut Self::CTX,
    ) -> pingora::Result<bool> {
        ctx.request_id = request_id(session);
        let snapshot = self.app.snapshot();
        if let Some(answered) = self.serve_events(session, ctx, &snapshot).await {
            return answered;
        }
        let handled = if passthrough::is_passthrough(session) {
            // Admitted: pingora's proxy phases stream it (see `passthrough`).
            self.admit_passthrough(session, ctx, &snapshot)
                .await
                .map(|()| None)
        } else {
            // Boxed: the flow's future (vendor call included) is several KB, and pingora's
            // phase futures around it are moved as they are polled; a pointer moves cheaper.
            Box::pin(self.handle(session, ctx, &snapshot))
                .await
                .map(Some)
        };
        let reply = match handled {
            Ok(Some(reply)) => reply,
            Ok(None) => return Ok(false),
            Err(error) => {
                ctx.code = error.code.as_str();
                ctx.failure = error.cause.clone();
                // The body may not have been read: don't reuse the connection.
                if !session.is_body_done() {
                    session.set_keepalive(None);
                }
                let mut reply = Reply::problem(&error, &ctx.request_id);
                if ctx.cache != "none" {
                    // A remembered vendor 404 (or a failed fetch) still says how the cache answered.
                    reply.headers.push((
                        http::HeaderName::from_static("x-cache"),
                        http::HeaderValue::from_static(ctx.cache),
                    ));
                }
                reply
            }
        };
        let mut reply = reply;
        reply.headers.append(&mut ctx.limit_headers);
        ctx.status = reply.status;
        write_reply(session, ctx, reply).await?;
        Ok(true)
    }

    /// Reached only by passthrough calls: `request_filter` answers every other request.
    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut Self::CTX,
    ) -> pingora::Result<Box<HttpPeer>> {
        match ctx.passthrough.as_mut() {
            Some(plan) => passthrough::upstream_peer(self, plan).await,
            None => Err(pingora::Error::explain(
                pingora::ErrorType::InternalError,
                "switchboard answers every request in request_filter",
            )),
        }
    }

    async fn connected_to_upstream(
        &self,
        _session: &mut Session,
        reused: bool,
        _peer: &HttpPeer,
        #[cfg(unix)] _fd: std::os::unix::io::RawFd,
        #[cfg(windows)] _sock: std::os::windows::io::RawSocket,
        digest: Option<&pingora::protocols::Digest>,
        ctx: &mut Self::CTX,
    ) -> pingora::Result<()> {
        let negotiated = digest
            .and_then(|d| d.ssl_digest.as_ref())
            .map(|d| d.version.to_string());
        match ctx.passthrough.as_mut() {
            Some(plan) => passthrough::check_session(plan, reused, negotiated),
            None => Ok(()),
        }
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream_request: &mut pingora::http::RequestHeader,
        ctx: &mut Self::CTX,
    ) -> pingora::Result<()> {
        match &ctx.passthrough {
            Some(plan) => passthrough::upstream_request(plan, &ctx.request_id, upstream_request),
            None => Ok(()),
        }
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        _end_of_stream: bool,
        ctx: &mut Self::CTX,
    ) -> pingora::Result<()> {
        match ctx.passthrough.as_mut() {
            Some(plan) => passthrough::count_body(plan, body.as_ref()),
            None => Ok(()),
        }
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut Self::CTX,
    ) -> pingora::Result<()> {
        match ctx.passthrough.as_mut() {
            Some(plan) => passthrough::downstream_response(
                plan,
                &mut ctx.status,
                &mut ctx.code,
                &ctx.request_id,
                &ctx.limit_headers,
                upstream_response,
            ),
            None => Ok(()),
        }
    }

    /// Pingora's own failures (a malformed request line, a body read error) still answer with
    /// problem+json instead of an empty body.
    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &pingora::Error,
        ctx: &mut Self::CTX,
    ) -> FailToProxy
    where
        Self::CTX: Send + Sync,
    {
        let passthrough_error = match ctx.passthrough.as_mut() {
            Some(plan) => passthrough::failure(self, plan, e).await,
            None => None,
        };
        if session.response_written().is_some() {
            // A streamed vendor answer broke off: its status is on the wire already.
            ctx.failure = passthrough_error.and_then(|error| error.cause);
            return FailToProxy {
                error_code: 0,
                can_reuse_downstream: false,
            };
        }
        let error = match (passthrough_error, e.etype()) {
            (Some(error), _) => error,
            (None, pingora::ErrorType::HTTPStatus(400) | pingora::ErrorType::InvalidHTTPHeader) => {
                ApiError::invalid("malformed HTTP request")
            }
            (
                None,
                pingora::ErrorType::ReadError
                | pingora::ErrorType::WriteError
                | pingora::ErrorType::ConnectionClosed,
            ) => {
                return FailToProxy {
                    error_code: 0,
                    can_reuse_downstream: false,
                }
            }
            (None, _) => ApiError::internal("the gateway failed to answer this request"),
        };
        if ctx.request_id.is_empty() {
            ctx.request_id = request_id(session);
        }
        ctx.failure = error.cause.clone();
        ctx.code = error.code.as_str();
        ctx.status = error.status();
        // The connection is not reused (below): say so, so the client does not send its next
        // request on it.
        session.set_keepalive(None);
        let reply = Reply::problem(&error, &ctx.request_id);
        if let Err(write_error) = write_reply(session, ctx, reply).await {
            tracing::debug!(error = %write_error, "could not write the error response");
        }
        FailToProxy {
            error_code: ctx.status,
            can_reuse_downstream: false,
        }
    }

    /// One access-log line and the request metrics, for every request.
    async fn logging(
        &self,
        _session: &mut Session,
        _e: Option<&pingora::Error>,
        ctx: &mut Self::CTX,
    ) {
        let elapsed = ctx.started.elapsed();
        if let Some(plan) = ctx.passthrough.as_mut() {
            passthrough::settle(self, plan).await;
            passthrough::observe(self, plan, ctx.vendor);
            (ctx.vendor_time, ctx.vendor_calls) = passthrough::vendor_time(plan);
        }
        if ctx.status == 0 {
            // The client went away before any response was written.
            ctx.code = "client_closed";
        }
        self.app
            .metrics
            .observe_request(ctx.operation, ctx.vendor, ctx.code, elapsed);
        let failed_call = ctx
            .failure
            .as_deref()
            .and_then(|cause| cause.downcast_ref::<CallError>());
        log_failure(ctx, failed_call);
        tracing::info!(
            target: "switchboard::access",
            request_id = %ctx.request_id,
            operation = ctx.operation,
            vendor = ctx.vendor,
            connection = ctx.connection.as_deref().unwrap_or("-"),
            status = ctx.status,
            code = ctx.code,
            duration_ms = elapsed.as_secs_f64() * 1000.0,
            vendor_ms = ctx.vendor_time.as_secs_f64() * 1000.0,
            vendor_calls = ctx.vendor_calls,
            cache = ctx.cache,
            vendor_failure = failed_call.map_or("-", CallError::cause),
            "request"
        );
    }
}

/// The failure underneath a request's error, logged once. A vendor connection failure
/// (refused, unreachable, TLS) is a warn line with what an operator needs to fix it — the
/// connection, the bounded cause, a reason — and no address or host name; any other cause is a
/// debug line with its own text.
fn log_failure(ctx: &RequestCtx, failed_call: Option<&CallError>) {
    let Some(cause) = ctx.failure.as_deref() else {
        return;
    };
    match failed_call {
        Some(call) if call.is_connection_failure() => tracing::warn!(
            request_id = %ctx.request_id,
            vendor = ctx.vendor,
            connection = ctx.connection.as_deref().unwrap_or("-"),
            operation = ctx.operation,
            outcome = call.outcome(),
            cause = call.cause(),
            reason = %call.safe_reason(),
            "vendor connection failed"
        ),
        Some(call) => tracing::debug!(
            request_id = %ctx.request_id,
            vendor = ctx.vendor,
            error = %call,
            "vendor call failed"
        ),
        None => tracing::debug!(request_id = %ctx.request_id, error = %cause, "request failed"),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    /// Log lines written as JSON into a shared buffer.
    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            lock(&self.0).extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Capture {
        fn lines(&self) -> Vec<serde_json::Value> {
            String::from_utf8_lossy(&lock(&self.0))
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect()
        }
    }

    fn logged(error: ApiError) -> Vec<serde_json::Value> {
        let capture = Capture::default();
        let writer = capture.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(move || writer.clone())
            .finish();
        let ctx = RequestCtx {
            request_id: "req-1".to_owned(),
            started: Instant::now(),
            operation: "contacts.get",
            vendor: "libredesk",
            connection: Some("desk".to_owned()),
            status: 503,
            code: error.code.as_str(),
            vendor_time: Duration::ZERO,
            vendor_calls: 1,
            cache: "none",
            failure: error.cause.clone(),
            limit_headers: Vec::new(),
            passthrough: None,
        };
        tracing::subscriber::with_default(subscriber, || {
            let failed_call = ctx
                .failure
                .as_deref()
                .and_then(|cause| cause.downcast_ref::<CallError>());
            log_failure(&ctx, failed_call);
        });
        capture.lines()
    }

    #[test]
    fn a_connection_failure_is_logged_once_as_a_warn_line_without_its_address() {
        let error = CallError::Refused("10.1.2.3:443: connection refused".to_owned())
            .into_api_error(crate::api::operation::Vendor::Libredesk);
        let lines = logged(error);
        assert_eq!(lines.len(), 1, "{lines:?}");
        let warn = &lines[0];
        assert_eq!(warn["level"], "WARN");
        assert_eq!(warn["message"], "vendor connection failed");
        assert_eq!(warn["cause"], "refused");
        assert_eq!(warn["connection"], "desk");
        assert_eq!(warn["request_id"], "req-1");
        assert!(!warn.to_string().contains("10.1.2.3"), "{warn}");
    }

    #[test]
    fn other_causes_are_logged_once_at_debug_and_errors_without_one_not_at_all() {
        let error = CallError::Timeout(Duration::from_millis(250))
            .into_api_error(crate::api::operation::Vendor::Libredesk);
        let lines = logged(error);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert_eq!(lines[0]["level"], "DEBUG");
        assert_eq!(lines[0]["message"], "vendor call failed");
        assert!(logged(ApiError::not_found("no")).is_empty());
    }

    #[test]
    fn building_an_api_error_from_a_call_error_logs_nothing() {
        let capture = Capture::default();
        let writer = capture.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let _ = CallError::Io("reset by 10.1.2.3".to_owned())
                .into_api_error(crate::api::operation::Vendor::Caac);
        });
        assert!(capture.lines().is_empty());
    }
}
