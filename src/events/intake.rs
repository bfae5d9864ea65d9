//! The intake inbox worker: vendor bodies that were accepted (stored, answered 2xx) but need
//! a vendor call before they can become events.
//!
//! Why an inbox: intake must answer fast and must not lose what it accepted, and Libredesk
//! never retries. A `conversation.status_changed` payload carries no conversation, so its event
//! needs a `GET` — which can be slow, rate limited, or fail while the vendor is down. Intake
//! therefore stores the verified body ([`EventStore::inbox_put`]), answers 2xx, and this worker
//! does the vendor work afterwards:
//!
//! - per connection in arrival order (the store leases only a connection's oldest pending
//!   item), so a conversation's events keep the order the vendor sent them;
//! - a failure that may pass (vendor down, timeout, 429, 5xx) is retried with the delivery
//!   backoff for the retry window; a failure that cannot (the object is gone: vendor 404) or
//!   the end of the window gives the item up — listed by [`EventStore::inbox_dead`] and
//!   replayable as `inb_<n>`;
//! - the events and the closing of the item are one transaction
//!   ([`EventStore::inbox_complete`]).
//!
//! Payloads complete in themselves (a Libredesk message, a CAAC call) need no inbox: intake
//! appends their events directly.
//!
//! The vendor work itself (adapters, the vendor client, cache invalidation) is the gateway's:
//! it implements [`Normalizer`].

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use tokio::sync::watch;

use super::clock::{SystemWallClock, WallClock};
use super::delivery::Backoff;
use super::model::NewEvent;
use super::store::{Appended, EventStore, InboxItem, StoreError};

/// Why an item could not be normalized this time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NormalizeError {
    /// Worth another try later (vendor unavailable, timeout, rate limited, 5xx).
    #[error("{0}")]
    Retry(String),
    /// Will not get better (the object is gone, the body is not understood any more).
    #[error("{0}")]
    Fatal(String),
}

/// The gateway's half: vendor calls and translation.
#[async_trait]
pub trait Normalizer: Send + Sync + 'static {
    /// The events an item becomes, each with the subscriptions it fans out to.
    async fn normalize(
        &self,
        item: &InboxItem,
    ) -> Result<Vec<(NewEvent, Vec<String>)>, NormalizeError>;

    /// Called once the events are stored (invalidate the cache entries they touch).
    async fn stored(&self, _item: &InboxItem, _appended: &[Appended]) {}
}

/// What happened to one item.
#[derive(Debug, Clone, PartialEq)]
pub enum InboxOutcome {
    Stored(Vec<Appended>),
    Retry {
        at: i64,
        error: String,
    },
    GivenUp {
        error: String,
    },
    /// The lease was lost meanwhile; another worker owns the item.
    LeaseLost,
}

pub struct InboxWorker {
    store: Arc<dyn EventStore>,
    normalizer: Arc<dyn Normalizer>,
    clock: Arc<dyn WallClock>,
    policy: Backoff,
    /// One item's whole normalization (vendor calls included) must fit in it.
    lease: Duration,
    batch: usize,
    idle_wait: Duration,
    jitter: Arc<dyn Fn() -> f64 + Send + Sync>,
}

impl std::fmt::Debug for InboxWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InboxWorker")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl InboxWorker {
    pub fn new(
        store: Arc<dyn EventStore>,
        normalizer: Arc<dyn Normalizer>,
        retry_window: Duration,
    ) -> InboxWorker {
        InboxWorker {
            store,
            normalizer,
            clock: Arc::new(SystemWallClock),
            policy: Backoff::with_window(retry_window),
            lease: Duration::from_secs(120),
            batch: 16,
            idle_wait: Duration::from_secs(5),
            jitter: Arc::new(rand::random::<f64>),
        }
    }

    pub fn with_clock(mut self, clock: Arc<dyn WallClock>) -> Self {
        self.clock = clock;
        self
    }

    pub fn with_jitter(mut self, jitter: impl Fn() -> f64 + Send + Sync + 'static) -> Self {
        self.jitter = Arc::new(jitter);
        self
    }

    pub fn with_idle_wait(mut self, idle_wait: Duration) -> Self {
        self.idle_wait = idle_wait;
        self
    }

    /// Normalize what is due now (one item per connection), concurrently across connections.
    pub async fn run_once(&self) -> Result<Vec<(u64, InboxOutcome)>, StoreError> {
        let now = self.clock.now_ms();
        let items = self.store.inbox_claim(now, self.batch, self.lease).await?;
        let work = items.into_iter().map(|item| async move {
            let outcome = self.process(&item).await?;
            Ok::<_, StoreError>((item.id, outcome))
        });
        futures::future::join_all(work).await.into_iter().collect()
    }

    async fn process(&self, item: &InboxItem) -> Result<InboxOutcome, StoreError> {
        let result = self.normalizer.normalize(item).await;
        let now = self.clock.now_ms();
        match result {
            Ok(events) => match self.store.inbox_complete(item, events, now).await? {
                Some(appended) => {
                    self.normalizer.stored(item, &appended).await;
                    Ok(InboxOutcome::Stored(appended))
                }
                None => Ok(InboxOutcome::LeaseLost),
            },
            Err(e) => {
                let error = e.to_string();
                let retry_at = match e {
                    NormalizeError::Retry(_) => self.policy.next_attempt(
                        item.received_at,
                        item.attempts.saturating_add(1),
                        now,
                        None,
                        (self.jitter)(),
                    ),
                    NormalizeError::Fatal(_) => None,
                };
                if !self.store.inbox_failed(item, retry_at, &error, now).await? {
                    return Ok(InboxOutcome::LeaseLost);
                }
                Ok(match retry_at {
                    Some(at) => InboxOutcome::Retry { at, error },
                    None => {
                        tracing::warn!(
                            inbox = item.id,
                            connection = %item.connection,
                            error = %error,
                            "vendor event given up; listed with the dead letters"
                        );
                        InboxOutcome::GivenUp { error }
                    }
                })
            }
        }
    }

    /// The loop: normalize what is due, then wait for new items, the next retry, or shutdown.
    pub async fn run(&self, mut shutdown: watch::Receiver<bool>) {
        let mut changes = self.store.changes();
        loop {
            if *shutdown.borrow() {
                return;
            }
            changes.mark_unchanged();
            let wait = match self.run_once().await {
                Ok(done) if !done.is_empty() => Duration::ZERO,
                Ok(_) => self.idle_wait,
                Err(e) => {
                    tracing::error!(error = %e, "event store unavailable to the inbox worker");
                    self.idle_wait
                }
            };
            if wait.is_zero() {
                continue;
            }
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = changes.changed() => {}
                _ = shutdown.changed() => {}
            }
        }
    }
}

#[async_trait]
impl BackgroundService for InboxWorker {
    async fn start(&self, shutdown: ShutdownWatch) {
        self.run(shutdown).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::clock::{ManualWallClock, Millis};
    use crate::events::model::EventType;
    use crate::events::store::{InboxPut, NewInboxItem, ReplayTarget, SqliteStore};
    use serde_json::json;
    use std::collections::{HashMap, VecDeque};
    use std::sync::Mutex;

    const T0: Millis = 1_750_000_000_000;

    /// Stands in for the gateway's adapter calls: answers per body from a script, in order;
    /// success once a body's script is used up.
    #[derive(Default)]
    struct Scripted {
        answers: Mutex<HashMap<String, VecDeque<Result<(), NormalizeError>>>>,
        seen: Mutex<Vec<String>>,
        stored: Mutex<usize>,
    }

    #[async_trait]
    impl Normalizer for Scripted {
        async fn normalize(
            &self,
            item: &InboxItem,
        ) -> Result<Vec<(NewEvent, Vec<String>)>, NormalizeError> {
            let body = String::from_utf8(item.body.clone()).unwrap();
            self.seen.lock().unwrap().push(body.clone());
            let answer = self
                .answers
                .lock()
                .unwrap()
                .get_mut(&body)
                .and_then(VecDeque::pop_front)
                .unwrap_or(Ok(()));
            answer?;
            Ok(vec![(
                NewEvent {
                    tenant: item.tenant.clone(),
                    connection: item.connection.clone(),
                    vendor: item.vendor.clone(),
                    type_: EventType::ConversationUpdated,
                    data: json!({"id": body}),
                    dedup_key: item.dedup_key.clone(),
                    order_key: Some("cv_1".into()),
                    created_at: item.received_at,
                },
                vec!["crm".into()],
            )])
        }

        async fn stored(&self, _item: &InboxItem, _appended: &[Appended]) {
            *self.stored.lock().unwrap() += 1;
        }
    }

    struct Fixture {
        store: Arc<SqliteStore>,
        clock: Arc<ManualWallClock>,
        normalizer: Arc<Scripted>,
        worker: InboxWorker,
        _dir: tempfile::TempDir,
    }

    fn fixture(window: Duration) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(dir.path()).unwrap());
        let clock = Arc::new(ManualWallClock::new(T0));
        let normalizer = Arc::new(Scripted::default());
        let worker = InboxWorker::new(store.clone(), normalizer.clone(), window)
            .with_clock(clock.clone())
            .with_jitter(|| 0.0);
        Fixture {
            store,
            clock,
            normalizer,
            worker,
            _dir: dir,
        }
    }

    async fn put(f: &Fixture, connection: &str, key: &str) -> InboxPut {
        f.store
            .inbox_put(NewInboxItem {
                tenant: "acme".into(),
                connection: connection.into(),
                vendor: "libredesk".into(),
                dedup_key: key.into(),
                body: key.as_bytes().to_vec(),
                received_at: f.clock.now_ms(),
            })
            .await
            .unwrap()
    }

    fn retry() -> Result<(), NormalizeError> {
        Err(NormalizeError::Retry(
            "libredesk did not answer within 5000 ms".into(),
        ))
    }

    fn script(f: &Fixture, body: &str, answers: Vec<Result<(), NormalizeError>>) {
        f.normalizer
            .answers
            .lock()
            .unwrap()
            .insert(body.to_owned(), answers.into());
    }

    fn stored_ids(outcome: &InboxOutcome) -> Vec<String> {
        match outcome {
            InboxOutcome::Stored(appended) => appended
                .iter()
                .map(|a| match a {
                    Appended::Stored { event, .. } => event.event().unwrap().data["id"]
                        .as_str()
                        .unwrap()
                        .to_owned(),
                    Appended::Duplicate { id, .. } => format!("duplicate of {id}"),
                })
                .collect(),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_failing_vendor_call_is_retried_and_order_per_connection_is_kept() {
        let f = fixture(Duration::from_secs(24 * 3600));
        script(&f, "a", vec![retry(), retry()]);
        let InboxPut::Stored { id: a } = put(&f, "desk", "a").await else {
            panic!()
        };
        let InboxPut::Stored { id: b } = put(&f, "desk", "b").await else {
            panic!()
        };
        let InboxPut::Stored { id: c } = put(&f, "other", "c").await else {
            panic!()
        };
        assert_eq!(put(&f, "desk", "a").await, InboxPut::Duplicate { id: a });

        // t=0: a fails (due again at +5 s); c, on another connection, is not held up; b waits.
        let mut done = f.worker.run_once().await.unwrap();
        done.sort_by_key(|(id, _)| *id);
        assert_eq!(done.len(), 2);
        assert_eq!(done[0].0, a);
        assert_eq!(
            done[0].1,
            InboxOutcome::Retry {
                at: T0 + 5_000,
                error: "libredesk did not answer within 5000 ms".into()
            }
        );
        assert_eq!(
            (done[1].0, stored_ids(&done[1].1)),
            (c, vec!["c".to_owned()])
        );
        assert!(
            f.worker.run_once().await.unwrap().is_empty(),
            "b waits behind a"
        );
        assert_eq!(
            f.store.inbox_backlog().await.unwrap(),
            crate::events::store::InboxBacklog {
                pending: 2,
                oldest_received_at: Some(T0)
            }
        );

        f.clock.set(T0 + 5_000);
        assert!(
            matches!(f.worker.run_once().await.unwrap()[0].1, InboxOutcome::Retry { at, .. } if at == T0 + 20_000)
        );
        f.clock.set(T0 + 20_000);
        let done = f.worker.run_once().await.unwrap();
        assert_eq!(
            (done[0].0, stored_ids(&done[0].1)),
            (a, vec!["a".to_owned()])
        );
        let done = f.worker.run_once().await.unwrap();
        assert_eq!(
            (done[0].0, stored_ids(&done[0].1)),
            (b, vec!["b".to_owned()])
        );

        let order: Vec<String> = f
            .store
            .list("acme", None, &[], 10)
            .await
            .unwrap()
            .iter()
            .map(|e| e.event().unwrap().data["id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(order, ["c", "a", "b"]);
        assert_eq!(f.store.inbox_backlog().await.unwrap().pending, 0);
        assert_eq!(
            *f.normalizer.stored.lock().unwrap(),
            3,
            "stored() after each item"
        );
        assert_eq!(f.store.backlog().await.unwrap()[0].pending, 3, "fanned out");
        // A late resend of a normalized change is still a duplicate.
        assert_eq!(put(&f, "desk", "b").await, InboxPut::Duplicate { id: b });
    }

    #[tokio::test]
    async fn a_gone_object_is_given_up_at_once_and_can_be_replayed() {
        let f = fixture(Duration::from_secs(24 * 3600));
        script(
            &f,
            "a",
            vec![Err(NormalizeError::Fatal(
                "libredesk has no such object".into(),
            ))],
        );
        let InboxPut::Stored { id } = put(&f, "desk", "a").await else {
            panic!()
        };
        let done = f.worker.run_once().await.unwrap();
        assert_eq!(
            done,
            vec![(
                id,
                InboxOutcome::GivenUp {
                    error: "libredesk has no such object".into()
                }
            )]
        );
        let dead = f.store.inbox_dead(None, 10).await.unwrap();
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].body, b"a");
        assert_eq!(
            dead[0].last_error.as_deref(),
            Some("libredesk has no such object")
        );
        // The next item of the connection is no longer blocked.
        put(&f, "desk", "b").await;
        assert!(matches!(
            f.worker.run_once().await.unwrap()[0].1,
            InboxOutcome::Stored(_)
        ));

        let target = ReplayTarget::parse(&crate::events::store::inbox_name(id)).unwrap();
        assert_eq!(f.store.replay(&target, f.clock.now_ms()).await.unwrap(), 1);
        assert!(matches!(
            f.worker.run_once().await.unwrap()[0].1,
            InboxOutcome::Stored(_)
        ));
        assert!(f.store.inbox_dead(None, 10).await.unwrap().is_empty());
        assert_eq!(f.store.list("acme", None, &[], 10).await.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn retries_end_with_the_window() {
        let f = fixture(Duration::from_secs(60));
        script(&f, "a", (0..20).map(|_| retry()).collect());
        put(&f, "desk", "a").await;
        let mut last = None;
        for _ in 0..20 {
            let done = f.worker.run_once().await.unwrap();
            if let Some((_, o)) = done.into_iter().next() {
                last = Some(o.clone());
                if matches!(o, InboxOutcome::GivenUp { .. }) {
                    break;
                }
            }
            f.clock.advance(Duration::from_secs(10));
        }
        assert!(
            matches!(last, Some(InboxOutcome::GivenUp { .. })),
            "{last:?}"
        );
        assert!(f.clock.now_ms() >= T0 + 60_000);
        assert!(f
            .store
            .list("acme", None, &[], 10)
            .await
            .unwrap()
            .is_empty());
    }

    #[tokio::test]
    async fn an_inbox_item_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = SqliteStore::open(dir.path()).unwrap();
            store
                .inbox_put(NewInboxItem {
                    tenant: "acme".into(),
                    connection: "desk".into(),
                    vendor: "libredesk".into(),
                    dedup_key: "k".into(),
                    body: b"raw".to_vec(),
                    received_at: T0,
                })
                .await
                .unwrap();
            // Leased when the process died.
            assert_eq!(
                store
                    .inbox_claim(T0, 10, Duration::from_secs(600))
                    .await
                    .unwrap()
                    .len(),
                1
            );
        }
        let store = SqliteStore::open(dir.path()).unwrap();
        let items = store
            .inbox_claim(T0, 10, Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].body, b"raw");
        // A stale lease cannot complete it.
        let mut stale = items[0].clone();
        stale.lease = 0;
        assert_eq!(
            store.inbox_complete(&stale, vec![], T0).await.unwrap(),
            None
        );
        assert_eq!(
            store.inbox_complete(&items[0], vec![], T0).await.unwrap(),
            Some(vec![])
        );
    }
}
