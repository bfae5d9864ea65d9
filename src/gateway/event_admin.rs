//! Events on the admin listener:
//!
//! - `GET /admin/events/dead?tenant=&after=&limit=`: dead-lettered deliveries, oldest first,
//!   and vendor events whose normalization was given up (`inbox`). Never a secret or a body.
//! - `POST /admin/events/{id}/replay`: put a dead delivery (`dlv_<n>`), every dead delivery of
//!   an event (`evt_…`) or a given-up vendor event (`inb_<n>`) back in the queue, with a fresh
//!   retry window.
//! - `GET /admin/events/backlog`: pending deliveries per tenant and subscription (which tenant
//!   is behind a growing `switchboard_event_backlog`).

use http::Response;
use serde_json::{json, Value};

use super::admin::json_response;
use super::App;
use crate::events::clock::{rfc3339, SystemWallClock, WallClock};
use crate::events::store::{delivery_name, inbox_name, ReplayTarget, MAX_PAGE};

/// Serve an events admin path; `None` for any other path.
pub(super) async fn serve(
    app: &App,
    method: &http::Method,
    path: &str,
    query: Option<&str>,
) -> Option<Response<Vec<u8>>> {
    let rest = path.strip_prefix("/admin/events/")?;
    let Some(runtime) = app.events.as_ref() else {
        return Some(json_response(
            404,
            &json!({"error": "events are not enabled (`events:` in the gateway file)"}),
        ));
    };
    let store = &runtime.store;
    let method_not_allowed = || Some(json_response(405, &json!({"error": "method not allowed"})));
    let failed = |e: crate::events::store::StoreError| {
        tracing::error!(error = %e, "event store failed under an admin call");
        json_response(
            503,
            &json!({"error": "the event store could not be reached"}),
        )
    };
    if rest == "dead" {
        if method != http::Method::GET {
            return method_not_allowed();
        }
        let params = match DeadQuery::parse(query) {
            Ok(p) => p,
            Err(e) => return Some(json_response(400, &json!({"error": e}))),
        };
        let dead = match store
            .dead_letters(params.tenant.as_deref(), params.after, params.limit)
            .await
        {
            Ok(d) => d,
            Err(e) => return Some(failed(e)),
        };
        let inbox = match store.inbox_dead(None, params.limit).await {
            Ok(i) => i,
            Err(e) => return Some(failed(e)),
        };
        let data: Vec<Value> = dead
            .iter()
            .map(|d| {
                json!({
                    "id": delivery_name(d.id),
                    "tenant": d.tenant,
                    "subscription": d.subscription,
                    "event_id": d.event_id,
                    "event_type": d.event_type,
                    "connection": d.connection,
                    "attempts": d.attempts,
                    "last_attempt_at": d.last_attempt_at.map(rfc3339),
                    "last_status": d.last_status,
                    "last_error": d.last_error,
                    "reason": d.dead_reason,
                    "dead_at": d.finished_at.map(rfc3339),
                    "event_created_at": rfc3339(d.event_created_at),
                })
            })
            .collect();
        let inbox: Vec<Value> = inbox
            .iter()
            .filter(|i| params.tenant.as_deref().is_none_or(|t| t == i.tenant))
            .map(|i| {
                json!({
                    "id": inbox_name(i.id),
                    "tenant": i.tenant,
                    "connection": i.connection,
                    "vendor": i.vendor,
                    "received_at": rfc3339(i.received_at),
                    "attempts": i.attempts,
                    "last_error": i.last_error,
                })
            })
            .collect();
        let next_after = (dead.len() >= params.limit)
            .then(|| dead.last().map(|d| d.id))
            .flatten();
        return Some(json_response(
            200,
            &json!({"data": data, "inbox": inbox, "next_after": next_after}),
        ));
    }
    if rest == "backlog" {
        if method != http::Method::GET {
            return method_not_allowed();
        }
        let backlog = match store.backlog().await {
            Ok(b) => b,
            Err(e) => return Some(failed(e)),
        };
        let data: Vec<Value> = backlog
            .iter()
            .map(|b| {
                json!({
                    "tenant": b.tenant,
                    "subscription": b.subscription,
                    "pending": b.pending,
                    "oldest_created_at": rfc3339(b.oldest_created_at),
                })
            })
            .collect();
        return Some(json_response(200, &json!({"data": data})));
    }
    if let Some(id) = rest.strip_suffix("/replay") {
        if method != http::Method::POST {
            return method_not_allowed();
        }
        let Some(target) = ReplayTarget::parse(id) else {
            return Some(json_response(
                404,
                &json!({"error": "not a delivery (dlv_<n>), event (evt_…) or inbox (inb_<n>) id"}),
            ));
        };
        return Some(
            match store.replay(&target, SystemWallClock.now_ms()).await {
                Ok(0) => json_response(404, &json!({"error": "nothing dead under that id"})),
                Ok(n) => {
                    tracing::info!(id, replayed = n, "dead event deliveries replayed");
                    json_response(200, &json!({"status": "replayed", "replayed": n}))
                }
                Err(e) => failed(e),
            },
        );
    }
    Some(json_response(404, &json!({"error": "not found"})))
}

struct DeadQuery {
    tenant: Option<String>,
    after: Option<u64>,
    limit: usize,
}

impl DeadQuery {
    fn parse(raw: Option<&str>) -> Result<DeadQuery, String> {
        let mut q = DeadQuery {
            tenant: None,
            after: None,
            limit: 100,
        };
        for (k, v) in url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
            match k.as_ref() {
                "tenant" => q.tenant = Some(v.into_owned()),
                "after" => {
                    q.after = Some(
                        v.trim_start_matches("dlv_")
                            .parse()
                            .map_err(|_| "after: a delivery id (dlv_<n>)".to_owned())?,
                    )
                }
                "limit" => {
                    q.limit = v
                        .parse()
                        .ok()
                        .filter(|n| (1..=MAX_PAGE).contains(n))
                        .ok_or(format!("limit: 1 to {MAX_PAGE}"))?
                }
                _ => return Err(format!("unknown query parameter {k:?}")),
            }
        }
        Ok(q)
    }
}
