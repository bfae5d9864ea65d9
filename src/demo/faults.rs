//! `POST /admin/sandbox/faults` and `DELETE /admin/sandbox/faults` of `switchboard demo`:
//! break a demo connection's sandbox on purpose and watch the gateway's edge react (retries,
//! the breaker opening and closing, the vendor-429 pause, budgets holding).
//!
//! ```json
//! {"connection": "libredesk", "fault": "status", "status": 503, "count": 5}
//! {"connection": "caac", "fault": "rate_limit", "retry_after_seconds": 2, "count": 1}
//! {"connection": "libredesk", "fault": "latency", "latency_ms": 3000, "duration_seconds": 30}
//! {"connection": "libredesk", "fault": "reset" | "malformed", "count": 1}
//! ```
//!
//! `count` limits the fault to that many vendor calls, `duration_seconds` to that much time;
//! with neither it stays until `DELETE` (body `{"connection": …}`, or none for every
//! sandbox).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};

use crate::gateway::SandboxFaults;
use crate::sandbox::{Fault, Sandbox};

/// Longest latency or duration accepted (an hour): a demo knob, not a way to hang a process.
const MAX_SECONDS: u64 = 3_600;

/// The demo's running sandboxes, by the demo connection that calls each.
#[derive(Default)]
pub struct DemoFaults {
    sandboxes: Mutex<BTreeMap<String, Arc<Sandbox>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InjectRequest {
    connection: String,
    fault: String,
    #[serde(default)]
    count: Option<u32>,
    #[serde(default)]
    duration_seconds: Option<u64>,
    /// `status`: the HTTP status to answer (default 503).
    #[serde(default)]
    status: Option<u16>,
    /// `latency`: added to each call (default 1000).
    #[serde(default)]
    latency_ms: Option<u64>,
    /// `rate_limit`: the vendor's `Retry-After` (default 2).
    #[serde(default)]
    retry_after_seconds: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClearRequest {
    #[serde(default)]
    connection: Option<String>,
}

fn bad(reason: impl Into<String>) -> (u16, Value) {
    (400, json!({"error": reason.into()}))
}

fn describe(fault: &Fault) -> Value {
    match fault {
        Fault::Latency(d) => json!({"fault": "latency", "latency_ms": d.as_millis() as u64}),
        Fault::Status(s) => json!({"fault": "status", "status": s}),
        Fault::RateLimit { retry_after_secs } => {
            json!({"fault": "rate_limit", "retry_after_seconds": retry_after_secs})
        }
        Fault::Reset => json!({"fault": "reset"}),
        Fault::Malformed => json!({"fault": "malformed"}),
    }
}

impl DemoFaults {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Arc<Sandbox>>> {
        self.sandboxes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// A sandbox started: faults for `connection` now reach it.
    pub fn register(&self, connection: &str, sandbox: Arc<Sandbox>) {
        self.lock().insert(connection.to_owned(), sandbox);
    }

    pub fn unregister(&self, connection: &str) {
        self.lock().remove(connection);
    }

    fn sandbox(&self, connection: &str) -> Result<Arc<Sandbox>, (u16, Value)> {
        let sandboxes = self.lock();
        sandboxes.get(connection).cloned().ok_or_else(|| {
            let known: Vec<&str> = sandboxes.keys().map(String::as_str).collect();
            (
                404,
                json!({"error": format!("no demo connection {connection:?}; known: {}", known.join(", "))}),
            )
        })
    }

    fn state_of(connection: &str, sandbox: &Sandbox) -> Value {
        let faults: Vec<Value> = sandbox
            .active_faults()
            .iter()
            .map(|(fault, remaining)| {
                let mut v = describe(fault);
                v["remaining"] = json!(remaining);
                v
            })
            .collect();
        json!({"connection": connection, "faults": faults, "vendor_calls": sandbox.call_count()})
    }
}

fn parse_fault(request: &InjectRequest) -> Result<Fault, (u16, Value)> {
    let fault = match request.fault.as_str() {
        "latency" => {
            let ms = request.latency_ms.unwrap_or(1_000);
            if ms == 0 || ms > MAX_SECONDS * 1_000 {
                return Err(bad(format!("latency_ms: use 1 to {}", MAX_SECONDS * 1_000)));
            }
            Fault::Latency(Duration::from_millis(ms))
        }
        "status" => {
            let status = request.status.unwrap_or(503);
            if !(400..=599).contains(&status) {
                return Err(bad("status: use an error status, 400 to 599"));
            }
            Fault::Status(status)
        }
        "rate_limit" => {
            let secs = request.retry_after_seconds.unwrap_or(2);
            if secs > MAX_SECONDS {
                return Err(bad(format!("retry_after_seconds: at most {MAX_SECONDS}")));
            }
            Fault::RateLimit {
                retry_after_secs: secs,
            }
        }
        "reset" => Fault::Reset,
        "malformed" => Fault::Malformed,
        other => {
            return Err(bad(format!(
                "unknown fault {other:?}; use latency, status, reset, malformed or rate_limit"
            )))
        }
    };
    let extra = [
        (
            "status",
            request.status.is_some() && request.fault != "status",
        ),
        (
            "latency_ms",
            request.latency_ms.is_some() && request.fault != "latency",
        ),
        (
            "retry_after_seconds",
            request.retry_after_seconds.is_some() && request.fault != "rate_limit",
        ),
    ];
    if let Some((key, _)) = extra.iter().find(|(_, set)| *set) {
        return Err(bad(format!(
            "{key} does not apply to fault {:?}",
            request.fault
        )));
    }
    Ok(fault)
}

impl SandboxFaults for DemoFaults {
    fn inject(&self, body: &[u8]) -> (u16, Value) {
        let request: InjectRequest = match serde_json::from_slice(body) {
            Ok(r) => r,
            Err(e) => return bad(format!("body: {e}")),
        };
        let fault = match parse_fault(&request) {
            Ok(f) => f,
            Err(answer) => return answer,
        };
        let sandbox = match self.sandbox(&request.connection) {
            Ok(s) => s,
            Err(answer) => return answer,
        };
        match (request.count, request.duration_seconds) {
            (Some(_), Some(_)) => return bad("set count or duration_seconds, not both"),
            (Some(0), None) => return bad("count: at least 1"),
            (Some(n), None) => sandbox.inject(fault, Some(n)),
            (None, Some(s)) if s == 0 || s > MAX_SECONDS => {
                return bad(format!("duration_seconds: use 1 to {MAX_SECONDS}"))
            }
            (None, Some(s)) => sandbox.inject_for(fault, Duration::from_secs(s)),
            (None, None) => sandbox.inject(fault, None),
        }
        (201, Self::state_of(&request.connection, &sandbox))
    }

    fn clear(&self, body: &[u8]) -> (u16, Value) {
        let request: ClearRequest = if body.iter().all(u8::is_ascii_whitespace) {
            ClearRequest::default()
        } else {
            match serde_json::from_slice(body) {
                Ok(r) => r,
                Err(e) => return bad(format!("body: {e}")),
            }
        };
        match request.connection {
            Some(connection) => match self.sandbox(&connection) {
                Ok(sandbox) => {
                    sandbox.clear_faults();
                    (200, Self::state_of(&connection, &sandbox))
                }
                Err(answer) => answer,
            },
            None => {
                let sandboxes = self.lock();
                let cleared: Vec<Value> = sandboxes
                    .iter()
                    .map(|(connection, sandbox)| {
                        sandbox.clear_faults();
                        Self::state_of(connection, sandbox)
                    })
                    .collect();
                (200, json!({"data": cleared}))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(body: &str) -> InjectRequest {
        serde_json::from_str(body).unwrap()
    }

    #[test]
    fn faults_parse_with_their_defaults_and_refuse_misplaced_keys() {
        assert_eq!(
            parse_fault(&request(r#"{"connection":"c","fault":"status"}"#)).unwrap(),
            Fault::Status(503)
        );
        assert_eq!(
            parse_fault(&request(
                r#"{"connection":"c","fault":"rate_limit","retry_after_seconds":2}"#
            ))
            .unwrap(),
            Fault::RateLimit {
                retry_after_secs: 2
            }
        );
        assert_eq!(
            parse_fault(&request(
                r#"{"connection":"c","fault":"latency","latency_ms":250}"#
            ))
            .unwrap(),
            Fault::Latency(Duration::from_millis(250))
        );
        for bad_body in [
            r#"{"connection":"c","fault":"explode"}"#,
            r#"{"connection":"c","fault":"status","status":200}"#,
            r#"{"connection":"c","fault":"reset","status":500}"#,
            r#"{"connection":"c","fault":"latency","latency_ms":0}"#,
        ] {
            assert_eq!(
                parse_fault(&request(bad_body)).unwrap_err().0,
                400,
                "{bad_body}"
            );
        }
    }

    #[test]
    fn unknown_connections_and_bad_bodies_are_refused() {
        let faults = DemoFaults::default();
        assert_eq!(faults.inject(b"{").0, 400);
        assert_eq!(
            faults
                .inject(br#"{"connection":"nope","fault":"reset","count":1}"#)
                .0,
            404
        );
        assert_eq!(faults.clear(b"").0, 200);
        assert_eq!(faults.clear(br#"{"connection":"nope"}"#).0, 404);
    }
}
