//! The background services of events, each a pingora `BackgroundService` with its own
//! runtime (and so its own pooled clients):
//!
//! - the delivery worker ([`crate::events::delivery::DeliveryWorker`]): outbox → signed POSTs;
//! - the inbox worker ([`crate::events::intake::InboxWorker`]) with [`GatewayNormalizer`]: an
//!   accepted vendor body whose payload was partial becomes events after a vendor `GET`;
//! - the poller ([`Poller`]): vendors without push — list differences become events.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::{background_service, BackgroundService};
use serde_json::Value;

use super::events::{resolve_subject, touches, translate, IDLE_WAIT};
use super::App;
use crate::api::ids::{Kind, ObjectId};
use crate::api::operation::Operation;
use crate::api::request::{ConversationFilters, OperationRequest, Output, Page};
use crate::api::{ApiError, ErrorCode};
use crate::cache::Invalidation;
use crate::events::clock::{parse_rfc3339, Millis, SystemWallClock, WallClock};
use crate::events::delivery::DeliveryWorker;
use crate::events::intake::{InboxWorker, NormalizeError, Normalizer};
use crate::events::libredesk::{self, Parsed, Subject};
use crate::events::model::NewEvent;
use crate::events::poll::{self, Observed, Seen};
use crate::events::sender::PingoraSender;
use crate::events::store::{Appended, InboxItem, StoreError};
use crate::snapshot::Connection;
use crate::upstream::VendorClient;
use crate::vendors::{adapter_for, CallContext};

/// The events services for `app` (none when events are off).
pub fn services(app: &Arc<App>) -> Vec<Box<dyn pingora::services::ServiceWithDependents>> {
    let Some(runtime) = app.events.clone() else {
        return Vec::new();
    };
    let delivery = DeliveryWorker::new(
        runtime.store.clone(),
        runtime.subscriptions.clone(),
        Arc::new(PingoraSender::new()),
        &runtime.settings,
    )
    .with_metrics(runtime.metrics.clone())
    .with_idle_wait(IDLE_WAIT);
    let inbox = InboxWorker::new(
        runtime.store.clone(),
        Arc::new(GatewayNormalizer {
            app: app.clone(),
            client: VendorClient::new(),
        }),
        runtime.settings.retry_window,
    )
    .with_idle_wait(IDLE_WAIT);
    vec![
        Box::new(background_service("event delivery", delivery)),
        Box::new(background_service("event inbox", inbox)),
        Box::new(background_service(
            "event poller",
            Poller {
                app: app.clone(),
                client: VendorClient::new(),
            },
        )),
    ]
}

/// Run one operation on a connection from a background service.
async fn call(
    app: &App,
    client: &VendorClient,
    connection: &Connection,
    op: Operation,
    request: OperationRequest,
) -> Result<Output, ApiError> {
    let request_id = format!("evt-{:016x}", rand::random::<u64>());
    let mut ctx = CallContext {
        connection,
        client,
        metrics: &app.metrics,
        operation: op,
        request_id: &request_id,
        want_raw: false,
        vendor_time: Duration::ZERO,
        vendor_calls: 0,
        // Through the connection's vendor budget, breaker and pauses, like API calls.
        edge: Some(&app.edge),
    };
    adapter_for(connection.vendor)
        .execute(&mut ctx, request)
        .await
}

/// A vendor failure that may pass is retried; the object being gone, or a contract the
/// adapter cannot read, is not.
fn normalize_error(e: ApiError) -> NormalizeError {
    match e.code {
        ErrorCode::NotFound | ErrorCode::UnsupportedOperation | ErrorCode::InvalidRequest => {
            NormalizeError::Fatal(format!("{}: {}", e.code.as_str(), e.detail))
        }
        _ => NormalizeError::Retry(format!("{}: {}", e.code.as_str(), e.detail)),
    }
}

fn found(output: Output) -> Result<Value, NormalizeError> {
    match output {
        Output::Found(resource) => serde_json::to_value(&resource)
            .map_err(|e| NormalizeError::Fatal(format!("unserializable resource: {e}"))),
        _ => Err(NormalizeError::Fatal(
            "the vendor answered something else than the object".to_owned(),
        )),
    }
}

/// The gateway's half of the inbox: fetch what a partial Libredesk payload left out.
pub struct GatewayNormalizer {
    app: Arc<App>,
    client: VendorClient,
}

impl GatewayNormalizer {
    fn connection(&self, item: &InboxItem) -> Result<Arc<Connection>, NormalizeError> {
        self.app
            .snapshot()
            .connection(&item.tenant, &item.connection)
            .cloned()
            .ok_or_else(|| {
                NormalizeError::Fatal("the connection is no longer configured".to_owned())
            })
    }
}

#[async_trait]
impl Normalizer for GatewayNormalizer {
    async fn normalize(
        &self,
        item: &InboxItem,
    ) -> Result<Vec<(NewEvent, Vec<String>)>, NormalizeError> {
        let runtime = self
            .app
            .events
            .as_ref()
            .ok_or_else(|| NormalizeError::Retry("events are not running".to_owned()))?;
        let connection = self.connection(item)?;
        let event = match libredesk::parse_webhook(&item.body) {
            Ok(Parsed::Event(event)) => *event,
            Ok(Parsed::Ignored { .. }) => return Ok(Vec::new()),
            Err(e) => return Err(NormalizeError::Fatal(e.to_string())),
        };
        let subject = resolve_subject(
            runtime.store.as_ref(),
            &item.tenant,
            &item.connection,
            event.subject.clone(),
        )
        .await
        .map_err(|e| NormalizeError::Retry(e.to_string()))?;
        let conversation = subject
            .conversation_uuid()
            .map(str::to_owned)
            .ok_or_else(|| {
                NormalizeError::Retry(
                    "the message names only its conversation's number, not yet seen with its uuid"
                        .to_owned(),
                )
            })?;
        let (tenant, name) = (item.tenant.as_str(), item.connection.as_str());
        let translated = event
            .object
            .as_ref()
            .and_then(|o| translate(&connection, &subject, o, &conversation));
        let data = match (translated, &subject) {
            (Some(data), _) => data,
            (None, Subject::Conversation { uuid }) => {
                let id = ObjectId::new(Kind::Conversation, tenant, name, vec![uuid.clone()]);
                found(
                    call(
                        &self.app,
                        &self.client,
                        &connection,
                        Operation::ConversationsGet,
                        OperationRequest::ConversationsGet(id),
                    )
                    .await
                    .map_err(normalize_error)?,
                )?
            }
            (None, Subject::Message { uuid, .. }) => {
                let id = ObjectId::new(
                    Kind::Message,
                    tenant,
                    name,
                    vec![conversation.clone(), uuid.clone()],
                );
                found(
                    call(
                        &self.app,
                        &self.client,
                        &connection,
                        Operation::MessagesGet,
                        OperationRequest::MessagesGet(id),
                    )
                    .await
                    .map_err(normalize_error)?,
                )?
            }
        };
        let new = NewEvent {
            tenant: item.tenant.clone(),
            connection: item.connection.clone(),
            vendor: item.vendor.clone(),
            type_: event.event_type,
            data,
            dedup_key: item.dedup_key.clone(),
            order_key: Some(
                ObjectId::new(Kind::Conversation, tenant, name, vec![conversation]).encode(),
            ),
            created_at: item.received_at,
        };
        let subscriptions = runtime
            .subscriptions
            .load()
            .matching(&new.tenant, new.type_);
        Ok(vec![(new, subscriptions)])
    }

    async fn stored(&self, item: &InboxItem, appended: &[Appended]) {
        let Some(runtime) = self.app.events.as_ref() else {
            return;
        };
        for a in appended {
            if let Appended::Stored { event, .. } = a {
                runtime.metrics.observe_stored(&item.vendor, event.type_);
            }
        }
        // The vendor changed again since intake invalidated: a read in between may have cached
        // the state this event reports as old.
        if let (Ok(connection), Ok(Parsed::Event(event))) =
            (self.connection(item), libredesk::parse_webhook(&item.body))
        {
            for invalidation in touches(&event.touches, &event.subject) {
                self.app.invalidate(&connection, invalidation).await;
            }
        }
    }
}

// ----- the poller --------------------------------------------------------------------------

/// Lists per poll (the first page, newest first where the vendor sorts so).
const POLL_PAGE: u32 = 100;

/// Polls every connection with `poll:` at its interval. Reloads add and remove pollers; what
/// each saw is kept in the store, so a restart resumes instead of re-announcing everything.
pub struct Poller {
    app: Arc<App>,
    client: VendorClient,
}

#[async_trait]
impl BackgroundService for Poller {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut due: HashMap<(String, String), Instant> = HashMap::new();
        loop {
            if *shutdown.borrow() {
                return;
            }
            let snapshot = self.app.snapshot();
            let pollers = snapshot.events.pollers();
            due.retain(|k, _| pollers.iter().any(|(t, c, _)| (t, c) == (&k.0, &k.1)));
            let mut next = Instant::now() + Duration::from_secs(1);
            for (tenant, name, settings) in pollers {
                let key = (tenant.clone(), name.clone());
                let at = *due.entry(key.clone()).or_insert_with(Instant::now);
                if at <= Instant::now() {
                    if let Some(connection) = snapshot.connection(&tenant, &name) {
                        if let Err(e) = self.poll(connection).await {
                            tracing::warn!(
                                connection = %name,
                                error = %e,
                                "poll failed; trying again at the next interval"
                            );
                        }
                    }
                    due.insert(key.clone(), Instant::now() + settings.interval);
                }
                next = next.min(due.get(&key).copied().unwrap_or(next));
            }
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep_until(next.into()) => {}
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum PollError {
    #[error(transparent)]
    Vendor(#[from] ApiError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Poller {
    async fn list(
        &self,
        connection: &Connection,
        op: Operation,
        request: OperationRequest,
        kind: Kind,
    ) -> Result<Vec<Observed>, ApiError> {
        match call(&self.app, &self.client, connection, op, request).await? {
            Output::List { data, .. } => Ok(data
                .iter()
                .filter_map(|r| serde_json::to_value(r).ok())
                .map(|data| Observed { kind, data })
                .collect()),
            _ => Ok(Vec::new()),
        }
    }

    /// One poll of one connection: conversations, then the messages of every conversation
    /// that is new or changed. Events are stored before what was seen is saved, so a crash in
    /// between repeats the differences, which dedup absorbs.
    async fn poll(&self, connection: &Arc<Connection>) -> Result<(), PollError> {
        let Some(runtime) = self.app.events.clone() else {
            return Ok(());
        };
        let store = &runtime.store;
        let (tenant, name) = (connection.tenant.as_str(), connection.name.as_str());
        let now = SystemWallClock.now_ms();
        let conversations_key = poll::state_key(tenant, name, "conversations");
        let baseline_key = poll::state_key(tenant, name, "baseline_at");
        let seen = load_seen(store.as_ref(), &conversations_key).await?;
        let baseline_at: Millis = match store.state_get(&baseline_key).await? {
            Some(bytes) => String::from_utf8_lossy(&bytes).parse().unwrap_or(now),
            None => {
                store
                    .state_put(&baseline_key, now.to_string().as_bytes(), now)
                    .await?;
                now
            }
        };
        let observed = self
            .list(
                connection,
                Operation::ConversationsList,
                OperationRequest::ConversationsList(
                    Page {
                        limit: POLL_PAGE,
                        cursor: None,
                    },
                    ConversationFilters::default(),
                ),
                Kind::Conversation,
            )
            .await?;
        let (events, next) = poll::diff(&seen, &observed);
        let mut changed: Vec<(String, bool)> = Vec::new();
        for event in &events {
            if let Some(id) = event.data.get("id").and_then(Value::as_str) {
                let created = !seen.objects.contains_key(id);
                changed.push((id.to_owned(), created));
            }
        }
        self.store_polled(&runtime, connection, events).await?;
        store
            .state_put(&conversations_key, &next.to_bytes(), now)
            .await?;
        let can_list_messages = connection.supports(Operation::MessagesList).is_some();
        for (conversation, created) in changed {
            let Some(id) = ObjectId::decode(Kind::Conversation, &conversation) else {
                continue;
            };
            self.app
                .cache
                .apply(
                    connection,
                    Invalidation::Conversation(Some(id.keys.join("\u{1f}"))),
                )
                .await;
            if !can_list_messages {
                continue;
            }
            let key = poll::state_key(tenant, name, &format!("messages:{conversation}"));
            let observed = self
                .list(
                    connection,
                    Operation::MessagesList,
                    OperationRequest::MessagesList(
                        id,
                        Page {
                            limit: POLL_PAGE,
                            cursor: None,
                        },
                    ),
                    Kind::Message,
                )
                .await?;
            let mut seen = load_seen(store.as_ref(), &key).await?;
            if !seen.primed {
                // First look at this conversation's messages: a new conversation's are all
                // new; in one known before, those older than the poller's baseline are not.
                seen.primed = true;
                if !created {
                    let old: Vec<Observed> = observed
                        .iter()
                        .filter(|o| {
                            o.data
                                .get("created_at")
                                .and_then(Value::as_str)
                                .and_then(parse_rfc3339)
                                .is_some_and(|at| at < baseline_at)
                        })
                        .cloned()
                        .collect();
                    seen.objects = poll::diff(&Seen::default(), &old).1.objects;
                }
            }
            let (events, next) = poll::diff(&seen, &observed);
            self.store_polled(&runtime, connection, events).await?;
            store.state_put(&key, &next.to_bytes(), now).await?;
        }
        Ok(())
    }

    async fn store_polled(
        &self,
        runtime: &super::events::EventsRuntime,
        connection: &Connection,
        events: Vec<poll::PolledEvent>,
    ) -> Result<(), StoreError> {
        let now = SystemWallClock.now_ms();
        let vendor = connection.vendor.as_str();
        for event in events {
            let subscriptions = runtime
                .subscriptions
                .load()
                .matching(&connection.tenant, event.event_type);
            let appended = runtime
                .store
                .append(
                    NewEvent {
                        tenant: connection.tenant.clone(),
                        connection: connection.name.clone(),
                        vendor: vendor.to_owned(),
                        type_: event.event_type,
                        data: event.data,
                        dedup_key: event.dedup_key,
                        order_key: event.order_key,
                        created_at: now,
                    },
                    subscriptions,
                )
                .await?;
            if let Appended::Stored { event, .. } = appended {
                runtime.metrics.observe_stored(vendor, event.type_);
            }
        }
        Ok(())
    }
}

async fn load_seen(
    store: &dyn crate::events::store::EventStore,
    key: &str,
) -> Result<Seen, StoreError> {
    Ok(store
        .state_get(key)
        .await?
        .map(|b| Seen::from_bytes(&b))
        .unwrap_or_default())
}
