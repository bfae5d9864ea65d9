//! [`VendorEdge`]: what the gateway holds to send any vendor call through the edge — the
//! shared state store, this replica's per-connection guards, the clock and the edge's metrics.
//! `CallContext::call` (translated operations) and the passthrough route call
//! [`VendorEdge::run`]; both get the same pause, breaker, budget and retry rules.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use super::breaker::{CircuitState, Permit};
use super::edge::{AttemptOutcome, Edge, EdgeReport, Refusal};
use super::metrics::ResilienceMetrics;
use super::retry::Replay;
use super::settings::ResilienceSettings;
use super::{ConnectionGuards, GuardRegistry};
use crate::api::operation::Vendor;
use crate::api::{ApiError, ErrorCode};
use crate::clock::Clock;
use crate::state::{ConnectionKey, StateStore};

/// The vendor edge of one gateway process.
pub struct VendorEdge {
    state: Arc<dyn StateStore>,
    guards: GuardRegistry,
    clock: Arc<dyn Clock>,
    metrics: ResilienceMetrics,
}

impl std::fmt::Debug for VendorEdge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VendorEdge")
            .field("state", &self.state.backend())
            .field("guards", &self.guards)
            .finish_non_exhaustive()
    }
}

impl VendorEdge {
    /// Every circuit transition is counted and logged (with tenant and connection: the log,
    /// unlike a metric label, may name them).
    pub fn new(
        state: Arc<dyn StateStore>,
        clock: Arc<dyn Clock>,
        metrics: ResilienceMetrics,
    ) -> Self {
        // At 0 from the start, so an alert on its increase sees the first error.
        metrics.state_errors.with_label_values(&[state.backend()]);
        let transitions = metrics.circuit_transitions.clone();
        let guards = GuardRegistry::new(clock.clone()).with_hook(Arc::new(
            move |key: &ConnectionKey, vendor: Vendor, t: &super::breaker::Transition| {
                transitions
                    .with_label_values(&[vendor.as_str(), t.to.as_str()])
                    .inc();
                let message = "circuit state changed";
                if t.to == CircuitState::Open {
                    tracing::warn!(tenant = %key.tenant, connection = %key.connection, %vendor,
                        from = t.from.as_str(), to = t.to.as_str(), cause = t.cause.as_str(), "{message}");
                } else {
                    tracing::info!(tenant = %key.tenant, connection = %key.connection, %vendor,
                        from = t.from.as_str(), to = t.to.as_str(), cause = t.cause.as_str(), "{message}");
                }
            },
        ));
        VendorEdge {
            state,
            guards,
            clock,
            metrics,
        }
    }

    /// The shared state store (tenant limits and idempotency records use it too).
    pub fn state(&self) -> &Arc<dyn StateStore> {
        &self.state
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    pub fn guards(&self) -> &GuardRegistry {
        &self.guards
    }

    /// The guards of one connection, built for its current settings.
    pub fn guards_for(
        &self,
        key: &ConnectionKey,
        vendor: Vendor,
        settings: &ResilienceSettings,
    ) -> Arc<ConnectionGuards> {
        self.guards.get(key, vendor, settings)
    }

    /// Set the circuit-state gauge (called at each scrape).
    pub fn report_circuits(&self) {
        self.metrics.report_circuits(
            self.guards
                .circuits()
                .into_iter()
                .map(|(_, vendor, state)| (vendor, state)),
        );
    }

    /// One vendor call of `operation` on the connection `key` through
    /// `pause → breaker → vendor budget → call ⟲ retry` ([`Edge::run`]), counted in the
    /// edge's metrics. `timeout` bounds every attempt and backoff together.
    #[allow(clippy::too_many_arguments)]
    pub async fn run<R, F, Fut, C>(
        &self,
        key: &ConnectionKey,
        vendor: Vendor,
        settings: &ResilienceSettings,
        operation: &str,
        replay: Replay,
        timeout: Duration,
        attempt: F,
        classify: C,
    ) -> (Result<R, Refusal>, EdgeReport)
    where
        F: FnMut(Duration) -> Fut,
        Fut: Future<Output = R>,
        C: Fn(&R) -> AttemptOutcome,
    {
        let guards = self.guards.get(key, vendor, settings);
        let edge = Edge::new(&*self.state, &guards, &*self.clock);
        let mut report = EdgeReport::default();
        let result = edge
            .run(replay, timeout, attempt, classify, &mut report)
            .await;
        self.metrics.observe_edge(
            vendor,
            operation,
            self.state.backend(),
            &report,
            result.as_ref().err(),
        );
        (result, report)
    }
}

/// A call admitted by [`VendorEdge::admit_once`], waiting for its outcome.
#[derive(Debug)]
pub struct Ticket {
    permit: Permit,
    guards: Arc<ConnectionGuards>,
}

impl VendorEdge {
    /// Admit one streamed call (passthrough) on the connection `key`: pause, breaker and
    /// vendor budget as for [`VendorEdge::run`], no retries (a streamed body cannot be sent
    /// twice). Refusals are counted like those of `run`.
    pub async fn admit_once(
        &self,
        key: &ConnectionKey,
        vendor: Vendor,
        settings: &ResilienceSettings,
        operation: &str,
        timeout: Duration,
    ) -> Result<Ticket, Refusal> {
        let guards = self.guards.get(key, vendor, settings);
        let edge = Edge::new(&*self.state, &guards, &*self.clock);
        let mut report = EdgeReport::default();
        let result = edge.admit_once(timeout, &mut report).await;
        self.metrics.observe_edge(
            vendor,
            operation,
            self.state.backend(),
            &report,
            result.as_ref().err(),
        );
        let permit = result?;
        Ok(Ticket { permit, guards })
    }

    /// Report how an admitted call ended: the breaker counts it, and a vendor 429 pauses the
    /// connection as it does for [`VendorEdge::run`].
    pub async fn finish(&self, ticket: Ticket, outcome: AttemptOutcome) {
        let Ticket { permit, guards } = ticket;
        match outcome {
            AttemptOutcome::Answered => permit.success(),
            AttemptOutcome::RateLimited { retry_after } => {
                permit.success();
                if let Some(pause) = guards.settings.vendor_pause.pause_for(retry_after) {
                    if let Err(e) = self.state.pause(&guards.key, pause).await {
                        tracing::warn!(error = %e, "could not record the vendor's pause");
                    }
                }
            }
            AttemptOutcome::Failed(failure) if failure.counts_against_circuit() => permit.failure(),
            AttemptOutcome::Failed(_) => permit.success(),
        }
    }
}

/// Whole seconds for `Retry-After`, rounded up (a client told 0 would come straight back).
pub fn retry_after_seconds(d: Duration) -> u64 {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    secs.max(1)
}

impl Refusal {
    /// The answer to a call the edge refused (docs/api.md, "Limits and circuits"): no vendor
    /// call was made.
    pub fn into_api_error(self, vendor: Vendor, connection: &str) -> ApiError {
        let seconds = retry_after_seconds(self.retry_after());
        let (code, detail) = match self {
            Refusal::CircuitOpen { .. } => (
                ErrorCode::VendorUnavailable,
                format!(
                    "the circuit of connection {connection:?} is open after repeated {vendor} \
                     failures; no call was made (retry after {seconds} s)"
                ),
            ),
            Refusal::Paused { .. } => (
                ErrorCode::VendorRateLimited,
                format!(
                    "{vendor} rate-limited connection {connection:?}; its calls are paused for \
                     {seconds} s and none was made"
                ),
            ),
            Refusal::BudgetExhausted { .. } => (
                ErrorCode::VendorRateLimited,
                format!(
                    "connection {connection:?} is over its vendor budget; no call was made \
                     (retry after {seconds} s)"
                ),
            ),
        };
        ApiError::vendor(code, vendor, detail).with_retry_after(Some(seconds))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_answer_the_documented_codes_with_retry_after() {
        let open = Refusal::CircuitOpen {
            retry_after: Duration::from_millis(4_200),
        }
        .into_api_error(Vendor::Libredesk, "desk");
        assert_eq!(
            (open.code, open.status()),
            (ErrorCode::VendorUnavailable, 503)
        );
        assert_eq!(open.retry_after, Some(5));
        let paused = Refusal::Paused {
            retry_after: Duration::from_secs(2),
        }
        .into_api_error(Vendor::Caac, "line");
        assert_eq!(
            (paused.code, paused.retry_after),
            (ErrorCode::VendorRateLimited, Some(2))
        );
        let budget = Refusal::BudgetExhausted {
            retry_after: Duration::from_millis(200),
        }
        .into_api_error(Vendor::Caac, "line");
        assert_eq!(budget.status(), 429);
        assert_eq!(budget.retry_after, Some(1), "never Retry-After: 0");
    }
}
