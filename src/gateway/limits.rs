//! The tenant limit step (docs/api.md, "Limits and circuits"): after authentication, each
//! request takes one slot of its tenant's `rate_limit` (`rate_limits:` in the connections
//! file) from the shared state store. Over the limit: 429 `rate_limited` with `Retry-After`.
//! A limited tenant's every answer carries `RateLimit-Policy` and `RateLimit`.
//!
//! When the state store cannot answer, the request goes through (a limit outage must not
//! become a full outage), counted in `switchboard_state_errors_total`.

use http::{HeaderName, HeaderValue};

use super::{App, Gateway, RequestCtx};
use crate::api::{ApiError, ErrorCode};
use crate::state::limit::{header_seconds, policy_header, ratelimit_header};
use crate::state::{Admission, LimitKey};

/// The policy name in `RateLimit-Policy` / `RateLimit`.
const POLICY: &str = "tenant";

/// What the tenant limit said about one request: the headers every answer carries, and
/// whether the request may go on.
#[derive(Debug)]
pub struct TenantAdmission {
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub result: Result<(), ApiError>,
}

impl TenantAdmission {
    fn open() -> Self {
        TenantAdmission {
            headers: Vec::new(),
            result: Ok(()),
        }
    }
}

impl Gateway {
    /// The limit step of an app request, right after authentication: one slot of the
    /// tenant's limit under `ctx.operation`; the limit's headers are kept in `ctx` for
    /// whatever is answered, and `Err` is the 429.
    pub(super) async fn admit_request(
        &self,
        ctx: &mut RequestCtx,
        snapshot: &crate::snapshot::Snapshot,
        tenant: &str,
    ) -> Result<(), ApiError> {
        let admission = self.app.admit_tenant(snapshot, tenant, ctx.operation).await;
        ctx.limit_headers = admission.headers;
        admission.result
    }
}

impl App {
    /// Take one request of `tenant`'s limit for `operation` (a metric label: an operation id
    /// or another bounded word). Tenants without a `rate_limit` are not limited and get no
    /// headers. Every app request comes through [`Gateway::admit_request`].
    pub async fn admit_tenant(
        &self,
        snapshot: &crate::snapshot::Snapshot,
        tenant: &str,
        operation: &str,
    ) -> TenantAdmission {
        let Some(limit) = snapshot.rate_limits.get(tenant) else {
            return TenantAdmission::open();
        };
        let state = self.edge.state();
        let key = LimitKey::Tenant(tenant.to_owned());
        let admission = match state.acquire(&key, *limit, std::time::Duration::ZERO).await {
            Ok(admission) => admission,
            Err(e) => {
                self.metrics
                    .resilience
                    .state_errors
                    .with_label_values(&[state.backend()])
                    .inc();
                tracing::warn!(error = %e, "tenant limit check failed; serving the request");
                return TenantAdmission::open();
            }
        };
        let headers = vec![
            (
                HeaderName::from_static("ratelimit-policy"),
                policy_header(POLICY, limit),
            ),
            (
                HeaderName::from_static("ratelimit"),
                ratelimit_header(POLICY, &admission),
            ),
        ];
        let result = match admission {
            Admission::Refused { retry_after, .. } => {
                self.metrics
                    .resilience
                    .rate_limited
                    .with_label_values(&[operation])
                    .inc();
                let seconds = header_seconds(retry_after);
                Err(ApiError::new(
                    ErrorCode::RateLimited,
                    format!(
                        "this tenant is over its limit of {} requests per second (burst {}); \
                         retry after {seconds} s",
                        limit.per_second, limit.burst
                    ),
                )
                .with_retry_after(Some(seconds)))
            }
            Admission::Allowed { .. } | Admission::Reserved { .. } => Ok(()),
        };
        TenantAdmission { headers, result }
    }
}
