//! Events on the API listener (docs/api.md "Events"): vendor intake
//! `POST /hooks/{tenant}/{connection}`, pull `GET /v1/events` and the stream
//! `GET /v1/events/stream`; plus [`EventsRuntime`], the store and workers behind them.
//!
//! ```text
//! intake: connection's intake settings ─▶ read body ─▶ verify (before anything else; 401, nothing
//!         stored) ─▶ parse ─▶ complete? append (durable) : inbox_put (durable) ─▶ invalidate
//!         cache ─▶ 2xx
//! pull:   JWT + events:read ─▶ store.list after the cursor ─▶ stored bodies, verbatim
//! stream: JWT + events:read ─▶ resume after Last-Event-ID ─▶ frames as events are stored,
//!         heartbeats while idle
//! ```
//!
//! The store comes in as an [`EventStore`] trait object: the embedded SQLite store under
//! `events.data_dir` by default, or any other backend (Redis, issue 15) handed to
//! [`super::App::try_new_with_events`].

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::prelude::Session;
use serde_json::{json, Value};

use super::{read_body, write_reply, Gateway, Reply, RequestCtx};
use crate::api::cursor::CursorScope;
use crate::api::ids::{Kind, ObjectId};
use crate::api::{ApiError, ErrorCode};
use crate::cache::Invalidation;
use crate::config_error::ConfigError;
use crate::events::caac::{self, OnFailure, ParsedCall};
use crate::events::clock::{Millis, SystemWallClock, WallClock};
use crate::events::libredesk::{self, ConversationKey, Parsed, Subject, Touch};
use crate::events::metrics::EventMetrics;
use crate::events::model::{parse_types, EventType, EventsSettings, NewEvent, Subscriptions};
use crate::events::pull;
use crate::events::sender::PingoraSender;
use crate::events::settings::Intake;
use crate::events::signing::{verify_libredesk, SignatureError};
use crate::events::store::{inbox_name, Appended, EventStore, InboxPut, NewInboxItem, SqliteStore};
use crate::metrics::Metrics;
use crate::snapshot::{Connection, Snapshot};
use crate::vendors::libredesk::webhook::{self, WebhookObject};

/// The scope `GET /v1/events` and the stream need.
pub const EVENTS_SCOPE: &str = "events:read";

/// Largest `limit` of `GET /v1/events`.
const MAX_LIMIT: usize = 100;
const DEFAULT_LIMIT: usize = 20;
/// Events written per stream round.
const STREAM_BATCH: usize = 100;

/// The store, the live subscriptions and the metrics behind every events route and worker.
pub struct EventsRuntime {
    pub store: Arc<dyn EventStore>,
    /// Swapped on every reload; the delivery worker reads it per attempt.
    pub subscriptions: Arc<ArcSwap<Subscriptions>>,
    pub metrics: Arc<EventMetrics>,
    /// As at start: `data_dir` and the delivery settings take effect at start only.
    pub settings: EventsSettings,
    /// Posts the CAAC agent bridge makes (API listener runtime).
    pub bridge: PingoraSender,
}

impl std::fmt::Debug for EventsRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventsRuntime")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl EventsRuntime {
    /// Start events for `snapshot`: `None` when it has no `events:` block. Without a `store`,
    /// the embedded SQLite store under `events.data_dir` is opened (and locked: a second
    /// process on the same folder fails here, with the reason).
    pub fn start(
        snapshot: &Snapshot,
        metrics: &Metrics,
        store: Option<Arc<dyn EventStore>>,
        gateway_file: &std::path::Path,
    ) -> Result<Option<Arc<EventsRuntime>>, ConfigError> {
        let Some(settings) = snapshot.events.settings.clone() else {
            return Ok(None);
        };
        let store =
            match store {
                Some(store) => store,
                None => Arc::new(SqliteStore::open(&settings.data_dir).map_err(|e| {
                    ConfigError::new(gateway_file, "events.data_dir", e.to_string())
                })?),
            };
        let event_metrics = EventMetrics::new()
            .and_then(|m| m.register(metrics.registry()).map(|()| m))
            .map_err(|e| {
                ConfigError::new(gateway_file, "events", format!("metrics registry: {e}"))
            })?;
        Ok(Some(Arc::new(EventsRuntime {
            store,
            subscriptions: Arc::new(ArcSwap::new(snapshot.events.subscriptions.clone())),
            metrics: Arc::new(event_metrics),
            settings,
            bridge: PingoraSender::new(),
        })))
    }

    /// A reload was applied: new subscriptions take effect for events stored from now on (and
    /// for pending deliveries at their next attempt). Settings read at start say so.
    pub fn reloaded(&self, next: &Snapshot) {
        self.subscriptions.store(next.events.subscriptions.clone());
        match &next.events.settings {
            Some(s) if s != &self.settings => tracing::warn!(
                "`events:` settings changed; they take effect after a restart (the store and \
                 the delivery worker are set up at start)"
            ),
            None => {
                tracing::warn!("`events:` was removed; events keep running until the next restart")
            }
            _ => {}
        }
    }
}

fn now_ms() -> Millis {
    SystemWallClock.now_ms()
}

/// Which events route a path is.
enum EventRoute {
    Hook(String),
    List,
    Stream,
}

fn event_route(path: &str) -> Option<EventRoute> {
    if let Some(rest) = path.strip_prefix("/hooks/") {
        return Some(EventRoute::Hook(rest.to_owned()));
    }
    match path {
        "/v1/events" => Some(EventRoute::List),
        "/v1/events/stream" => Some(EventRoute::Stream),
        _ => None,
    }
}

fn method_not_allowed(allow: &'static str) -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        format!("method not allowed here; allowed: {allow}"),
    )
    .with_allow(allow)
}

fn events_off() -> ApiError {
    ApiError::not_found("events are not enabled on this gateway (`events:` in the gateway file)")
}

fn store_failed(e: impl std::fmt::Display) -> ApiError {
    tracing::error!(error = %e, "event store failed");
    ApiError::internal("the event store could not be reached; nothing was accepted")
}

impl Gateway {
    /// Serve the request when it is an events route: `Some` with the listener's answer, `None`
    /// for every other path (the normalized API goes on as before).
    pub(super) async fn serve_events(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        snapshot: &Snapshot,
    ) -> Option<pingora::Result<bool>> {
        let route = event_route(session.req_header().uri.path())?;
        let method = session.req_header().method.clone();
        let result = match route {
            EventRoute::Hook(rest) => {
                ctx.operation = "events.intake";
                if method == http::Method::POST {
                    self.intake(session, ctx, snapshot, &rest).await
                } else {
                    Err(method_not_allowed("POST"))
                }
            }
            EventRoute::List => {
                ctx.operation = "events.list";
                if method == http::Method::GET || method == http::Method::HEAD {
                    self.list_events(session, ctx, snapshot).await
                } else {
                    Err(method_not_allowed("GET, HEAD"))
                }
            }
            EventRoute::Stream => {
                ctx.operation = "events.stream";
                if method == http::Method::GET {
                    match self.stream_events(session, ctx, snapshot).await {
                        Ok(()) => return Some(Ok(true)),
                        Err(e) => Err(e),
                    }
                } else {
                    Err(method_not_allowed("GET"))
                }
            }
        };
        let mut reply = match result {
            Ok(reply) => reply,
            Err(error) => {
                ctx.code = error.code.as_str();
                ctx.failure = error.cause.clone();
                if !session.is_body_done() {
                    session.set_keepalive(None);
                }
                Reply::problem(&error, &ctx.request_id)
            }
        };
        reply.headers.append(&mut ctx.limit_headers);
        ctx.status = reply.status;
        Some(write_reply(session, ctx, reply).await.map(|()| true))
    }

    fn runtime(&self) -> Result<&Arc<EventsRuntime>, ApiError> {
        self.app.events.as_ref().ok_or_else(events_off)
    }

    // ----- intake ---------------------------------------------------------------------------

    /// `POST /hooks/{tenant}/{connection}`: verify, store durably, then acknowledge.
    async fn intake(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        snapshot: &Snapshot,
        rest: &str,
    ) -> Result<Reply, ApiError> {
        let unknown = || ApiError::not_found("no webhook intake at this address");
        let (tenant, name) = rest.split_once('/').ok_or_else(unknown)?;
        if name.contains('/') {
            return Err(unknown());
        }
        let connection = snapshot
            .connection(tenant, name)
            .ok_or_else(unknown)?
            .clone();
        let events = snapshot
            .events
            .connection(tenant, name)
            .cloned()
            .ok_or_else(unknown)?;
        let intake = events.intake.as_ref().ok_or_else(unknown)?;
        ctx.vendor = connection.vendor.as_str();
        ctx.connection = Some(connection.name.clone());
        let runtime = self.runtime()?.clone();
        let vendor = connection.vendor.as_str();
        let body = read_body(
            session,
            snapshot.settings.body_limit_bytes,
            snapshot.settings.http.body_read_timeout,
        )
        .await?;
        let headers = &session.req_header().headers;
        let verified = match intake {
            Intake::Libredesk(secret) => verify_libredesk(secret, headers, &body),
            Intake::Caac { token, .. } => token.verify(headers),
        };
        if let Err(e) = verified {
            runtime.metrics.observe_intake(vendor, "unauthorized");
            tracing::warn!(
                connection = %connection.name,
                vendor,
                reason = e.reason(),
                "webhook refused: bad signature or token"
            );
            return Err(ApiError::unauthorized(refusal(e)));
        }
        match intake {
            Intake::Libredesk(_) => self.libredesk_intake(&runtime, &connection, body).await,
            Intake::Caac { agent, .. } => {
                self.caac_intake(&runtime, &connection, agent.as_ref(), &body)
                    .await
            }
        }
    }

    async fn libredesk_intake(
        &self,
        runtime: &EventsRuntime,
        connection: &Arc<Connection>,
        body: Bytes,
    ) -> Result<Reply, ApiError> {
        let metrics = &runtime.metrics;
        let vendor = connection.vendor.as_str();
        let parsed = libredesk::parse_webhook(&body).map_err(|e| {
            metrics.observe_intake(vendor, "invalid");
            ApiError::invalid(e.to_string())
        })?;
        let event = match parsed {
            Parsed::Ignored {
                vendor_event,
                reason,
            } => {
                metrics.observe_intake(vendor, "ignored");
                tracing::debug!(vendor_event, reason, "webhook acknowledged, nothing stored");
                return Reply::json(200, &json!({"status": "ignored"}));
            }
            Parsed::Event(event) => *event,
        };
        let store = &runtime.store;
        let (tenant, name) = (connection.tenant.as_str(), connection.name.as_str());
        let now = now_ms();
        if let Some((number, uuid)) = &event.learned {
            let key = libredesk::conversation_number_key(tenant, name, *number);
            store
                .state_put(&key, uuid.as_bytes(), now)
                .await
                .map_err(|e| {
                    metrics.observe_intake(vendor, "unavailable");
                    store_failed(e)
                })?;
        }
        let subject = resolve_subject(store.as_ref(), tenant, name, event.subject.clone())
            .await
            .map_err(|e| {
                metrics.observe_intake(vendor, "unavailable");
                store_failed(e)
            })?;
        let data = match (&event.object, subject.conversation_uuid()) {
            (Some(object), Some(conversation)) => {
                translate(connection, &subject, object, conversation)
            }
            _ => None,
        };
        let touched = touches(&event.touches, &subject);
        let reply = match data {
            Some(data) => {
                let new = NewEvent {
                    tenant: tenant.to_owned(),
                    connection: name.to_owned(),
                    vendor: vendor.to_owned(),
                    type_: event.event_type,
                    data,
                    dedup_key: event.dedup_key.clone(),
                    order_key: subject
                        .conversation_uuid()
                        .map(|u| conversation_id(tenant, name, u)),
                    created_at: now,
                };
                self.append(runtime, new).await?
            }
            None => {
                // Partial payload (or one this adapter cannot read): keep the verified body and
                // finish it with a vendor call after answering.
                let put = store
                    .inbox_put(NewInboxItem {
                        tenant: tenant.to_owned(),
                        connection: name.to_owned(),
                        vendor: vendor.to_owned(),
                        dedup_key: event.dedup_key.clone(),
                        body: body.to_vec(),
                        received_at: now,
                    })
                    .await
                    .map_err(|e| {
                        metrics.observe_intake(vendor, "unavailable");
                        store_failed(e)
                    })?;
                match put {
                    InboxPut::Stored { id } => {
                        metrics.observe_intake(vendor, "stored");
                        Reply::json(202, &json!({"status": "accepted", "id": inbox_name(id)}))?
                    }
                    InboxPut::Duplicate { .. } => {
                        metrics.observe_intake(vendor, "duplicate");
                        Reply::json(200, &json!({"status": "duplicate"}))?
                    }
                }
            }
        };
        for invalidation in touched {
            self.app.invalidate(connection, invalidation).await;
        }
        Ok(reply)
    }

    /// Store one event for its subscriptions and answer what happened.
    async fn append(&self, runtime: &EventsRuntime, new: NewEvent) -> Result<Reply, ApiError> {
        let metrics = &runtime.metrics;
        let vendor = new.vendor.clone();
        let type_ = new.type_;
        let subscriptions = runtime
            .subscriptions
            .load()
            .matching(&new.tenant, new.type_);
        let appended = runtime
            .store
            .append(new, subscriptions)
            .await
            .map_err(|e| {
                metrics.observe_intake(&vendor, "unavailable");
                store_failed(e)
            })?;
        match appended {
            Appended::Stored { event, .. } => {
                metrics.observe_intake(&vendor, "stored");
                metrics.observe_stored(&vendor, type_);
                Reply::json(200, &json!({"status": "stored", "id": event.id}))
            }
            Appended::Duplicate { id, .. } => {
                metrics.observe_intake(&vendor, "duplicate");
                Reply::json(200, &json!({"status": "duplicate", "id": id}))
            }
        }
    }

    /// CAAC's AI-agent call: store the customer's messages, then answer `{reply_text}` — the
    /// app's agent's reply when one is configured, else nothing.
    async fn caac_intake(
        &self,
        runtime: &EventsRuntime,
        connection: &Arc<Connection>,
        agent: Option<&caac::AgentSettings>,
        body: &[u8],
    ) -> Result<Reply, ApiError> {
        let metrics = &runtime.metrics;
        let vendor = connection.vendor.as_str();
        let call = match caac::parse_call(body) {
            Ok(ParsedCall::HealthCheck) => {
                metrics.observe_intake(vendor, "ignored");
                return Reply::json(200, &caac::health_reply());
            }
            Ok(ParsedCall::Conversation(call)) => call,
            Err(e) => {
                metrics.observe_intake(vendor, "invalid");
                return Err(ApiError::invalid(e.to_string()));
            }
        };
        let (tenant, name) = (connection.tenant.as_str(), connection.name.as_str());
        let now = now_ms();
        let inbound = call.inbound_events(tenant, name);
        if inbound.is_empty() {
            metrics.observe_intake(vendor, "ignored");
        }
        for message in inbound {
            self.append(
                runtime,
                NewEvent {
                    tenant: tenant.to_owned(),
                    connection: name.to_owned(),
                    vendor: vendor.to_owned(),
                    type_: message.event_type,
                    data: message.message,
                    dedup_key: message.dedup_key,
                    order_key: Some(message.conversation_id),
                    created_at: now,
                },
            )
            .await?;
        }
        let keys = [
            call.member.channel_id.to_string(),
            call.member.member_id.to_string(),
        ]
        .join("\u{1f}");
        self.app
            .cache
            .apply(connection, Invalidation::MessageIn(keys))
            .await;
        let reply = match agent {
            Some(agent) => {
                let (reply, outcome) = caac::bridge(
                    &runtime.bridge,
                    agent,
                    &call,
                    tenant,
                    name,
                    now.div_euclid(1000),
                )
                .await;
                tracing::debug!(connection = name, ?outcome, "AI-agent call bridged");
                reply
            }
            None => caac::failure_reply(OnFailure::Silent),
        };
        Reply::json(200, &reply)
    }

    // ----- pull -----------------------------------------------------------------------------

    /// `GET /v1/events?cursor=&types=&limit=`: the tenant's events oldest first. The feed has
    /// no end: `next_cursor` is always set (after the last event returned), so a client polls
    /// it again later for newer events.
    async fn list_events(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        snapshot: &Snapshot,
    ) -> Result<Reply, ApiError> {
        let principal = self.authenticate(session, snapshot).await?;
        // The tenant limit, as for every app request (a stream takes one slot when it opens).
        self.admit_request(ctx, snapshot, &principal.tenant).await?;
        require_scope(&principal)?;
        let runtime = self.runtime()?;
        let query = EventsQuery::parse(session.req_header().uri.query(), true)?;
        let types_key = types_key(&query.types);
        let scope = CursorScope {
            tenant: &principal.tenant,
            connection: "",
            operation: "events.list",
            filters: &types_key,
        };
        let after = match &query.cursor {
            Some(c) => Some(
                snapshot
                    .cursors
                    .decode(&scope, c)?
                    .get("after")
                    .and_then(Value::as_u64)
                    .ok_or_else(|| ApiError::invalid("cursor is malformed"))?,
            ),
            None => None,
        };
        let events = runtime
            .store
            .list(&principal.tenant, after, &query.types, query.limit)
            .await
            .map_err(store_failed)?;
        let position = events.last().map(|e| e.seq).or(after).unwrap_or(0);
        let cursor = snapshot.cursors.encode(&scope, &json!({"after": position}));
        Ok(Reply::ok_json(Bytes::from(pull::page_json(
            &events,
            Some(&cursor),
        ))))
    }

    /// `GET /v1/events/stream`: Server-Sent Events, resumed after `Last-Event-ID`, with
    /// heartbeats. Writes its own answer; returns when the client goes away.
    async fn stream_events(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        snapshot: &Snapshot,
    ) -> Result<(), ApiError> {
        let principal = self.authenticate(session, snapshot).await?;
        self.admit_request(ctx, snapshot, &principal.tenant).await?;
        require_scope(&principal)?;
        let runtime = self.runtime()?.clone();
        let query = EventsQuery::parse(session.req_header().uri.query(), false)?;
        let store = runtime.store.clone();
        let last_id = session
            .req_header()
            .headers
            .get("last-event-id")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| pull::last_event_id(Some(v)))
            .map(str::to_owned);
        let resumed = match &last_id {
            Some(id) => store
                .find(&principal.tenant, id)
                .await
                .map_err(store_failed)?
                .map(|e| e.seq),
            None => None,
        };
        let mut after = match resumed {
            Some(seq) => seq,
            None => store
                .last_seq(&principal.tenant)
                .await
                .map_err(store_failed)?
                .unwrap_or(0),
        };
        let mut header = ResponseHeader::build(200, Some(6)).map_err(internal)?;
        for (name, value) in [
            ("content-type", pull::EVENT_STREAM),
            ("cache-control", "no-store"),
            ("transfer-encoding", "chunked"),
            ("x-accel-buffering", "no"),
        ] {
            header.insert_header(name, value).map_err(internal)?;
        }
        header
            .insert_header("x-request-id", ctx.request_id.as_str())
            .map_err(internal)?;
        for (name, value) in std::mem::take(&mut ctx.limit_headers) {
            header.append_header(name, value).map_err(internal)?;
        }
        ctx.status = 200;
        let heartbeat = runtime.settings.heartbeat;
        let mut changes = store.changes();
        if session
            .write_response_header(Box::new(header), false)
            .await
            .is_err()
        {
            return Ok(());
        }
        let mut out = pull::stream_preamble();
        loop {
            changes.borrow_and_update();
            let batch = match store
                .list(&principal.tenant, Some(after), &query.types, STREAM_BATCH)
                .await
            {
                Ok(batch) => batch,
                Err(e) => {
                    tracing::error!(error = %e, "event store failed under a stream; closing it");
                    return Ok(());
                }
            };
            for event in &batch {
                out.push_str(&pull::sse_frame(event));
                after = event.seq;
            }
            if !out.is_empty() {
                let chunk = Bytes::from(std::mem::take(&mut out));
                if session
                    .write_response_body(Some(chunk), false)
                    .await
                    .is_err()
                {
                    return Ok(());
                }
            }
            if batch.len() == STREAM_BATCH {
                continue;
            }
            tokio::select! {
                changed = changes.changed() => {
                    if changed.is_err() {
                        return Ok(());
                    }
                }
                _ = tokio::time::sleep(heartbeat) => {
                    out.push_str(pull::heartbeat());
                }
            }
        }
    }
}

fn internal(e: Box<pingora::Error>) -> ApiError {
    ApiError::internal(format!("could not start the stream: {e}"))
}

fn require_scope(principal: &crate::auth::Principal) -> Result<(), ApiError> {
    if principal.has_scope(EVENTS_SCOPE) {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!(
            "events need scope {EVENTS_SCOPE}"
        )))
    }
}

/// What the 401 says (never the signature or the secret).
fn refusal(e: SignatureError) -> String {
    format!("the webhook was refused: {e}")
}

/// `cursor`, `types`, `limit` of the events routes; anything else is a 400 (never ignored).
struct EventsQuery {
    cursor: Option<String>,
    types: Vec<EventType>,
    limit: usize,
}

impl EventsQuery {
    fn parse(raw: Option<&str>, paged: bool) -> Result<EventsQuery, ApiError> {
        let mut query = EventsQuery {
            cursor: None,
            types: Vec::new(),
            limit: DEFAULT_LIMIT,
        };
        for (key, value) in url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
            match key.as_ref() {
                "types" => query.types = parse_types(&value).map_err(ApiError::invalid)?,
                "cursor" if paged => query.cursor = Some(value.into_owned()),
                "limit" if paged => {
                    query.limit = value
                        .parse::<usize>()
                        .ok()
                        .filter(|n| (1..=MAX_LIMIT).contains(n))
                        .ok_or_else(|| {
                            ApiError::invalid(format!("limit must be 1 to {MAX_LIMIT}"))
                        })?
                }
                other => {
                    return Err(ApiError::invalid(format!(
                        "unknown query parameter {:?}",
                        other.chars().take(40).collect::<String>()
                    )))
                }
            }
        }
        Ok(query)
    }
}

/// The `types` filter as a cursor binds it (sorted, so the order written does not matter).
fn types_key(types: &[EventType]) -> String {
    let mut names: Vec<&str> = types.iter().map(|t| t.as_str()).collect();
    names.sort_unstable();
    names.join(",")
}

/// The conversation's gateway ID for a Libredesk conversation uuid.
fn conversation_id(tenant: &str, connection: &str, uuid: &str) -> String {
    ObjectId::new(
        Kind::Conversation,
        tenant,
        connection,
        vec![uuid.to_owned()],
    )
    .encode()
}

/// A message whose payload only names the conversation's number: the uuid from what earlier
/// webhooks taught (`None` stays unresolved: the inbox worker finishes it).
pub(super) async fn resolve_subject(
    store: &dyn EventStore,
    tenant: &str,
    connection: &str,
    mut subject: Subject,
) -> Result<Subject, crate::events::store::StoreError> {
    if let Subject::Message {
        conversation: ConversationKey::Number(n),
        ..
    } = &subject
    {
        let key = libredesk::conversation_number_key(tenant, connection, *n);
        if let Some(uuid) = store.state_get(&key).await? {
            if let Ok(uuid) = String::from_utf8(uuid) {
                subject.resolve(&uuid);
            }
        }
    }
    Ok(subject)
}

/// The normalized resource of a complete payload, as JSON; `None` when the adapter cannot read
/// it (the inbox then fetches the object instead: nothing accepted is lost).
pub(super) fn translate(
    connection: &Connection,
    subject: &Subject,
    object: &Value,
    conversation_uuid: &str,
) -> Option<Value> {
    let kind = match subject {
        Subject::Conversation { .. } => WebhookObject::Conversation,
        Subject::Message { .. } => WebhookObject::Message,
    };
    match webhook::translate(
        &connection.tenant,
        &connection.name,
        kind,
        object,
        Some(conversation_uuid),
    ) {
        Ok(resource) => serde_json::to_value(&resource).ok(),
        Err(e) => {
            tracing::warn!(
                connection = %connection.name,
                error = %e,
                "webhook payload not translatable; fetching the object instead"
            );
            None
        }
    }
}

/// The cache entries a Libredesk event makes stale.
pub(super) fn touches(touches: &[Touch], subject: &Subject) -> Vec<Invalidation> {
    touches
        .iter()
        .map(|t| match t {
            Touch::Conversation(Some(keys)) => {
                Invalidation::Conversation(Some(keys.join("\u{1f}")))
            }
            Touch::Conversation(None) => Invalidation::Conversation(None),
            Touch::ContactLists => Invalidation::Contact(None),
            Touch::MessageIn(ConversationKey::Uuid(uuid)) => Invalidation::MessageIn(uuid.clone()),
            Touch::MessageIn(ConversationKey::Number(_)) => match subject.conversation_uuid() {
                Some(uuid) => Invalidation::MessageIn(uuid.to_owned()),
                None => Invalidation::Conversation(None),
            },
        })
        .collect()
}

/// How long the delivery and inbox workers wait at most with nothing to do.
pub(super) const IDLE_WAIT: Duration = Duration::from_secs(5);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_routes_are_recognized_and_nothing_else() {
        assert!(matches!(
            event_route("/hooks/acme/desk"),
            Some(EventRoute::Hook(rest)) if rest == "acme/desk"
        ));
        assert!(matches!(event_route("/v1/events"), Some(EventRoute::List)));
        assert!(matches!(
            event_route("/v1/events/stream"),
            Some(EventRoute::Stream)
        ));
        assert!(event_route("/v1/eventsx").is_none());
        assert!(event_route("/v1/conversations").is_none());
    }

    #[test]
    fn the_query_is_strict() {
        let q = EventsQuery::parse(
            Some("types=message.received,conversation.updated&limit=5&cursor=abc"),
            true,
        )
        .unwrap();
        assert_eq!(q.limit, 5);
        assert_eq!(q.cursor.as_deref(), Some("abc"));
        assert_eq!(types_key(&q.types), "conversation.updated,message.received");
        for bad in ["limit=0", "limit=101", "types=message.deleted", "since=1"] {
            assert!(EventsQuery::parse(Some(bad), true).is_err(), "{bad}");
        }
        assert!(EventsQuery::parse(Some("cursor=x"), false).is_err());
    }
}
