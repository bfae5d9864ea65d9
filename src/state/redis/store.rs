//! [`RedisStore`]: the [`StateStore`] several replicas share.
//!
//! Every method is one script run (`EVALSHA`, loaded on first use and again after a Redis
//! restart) or one command: one round trip, atomic on the server, with the server's clock.
//!
//! | method | keys | script |
//! |---|---|---|
//! | `acquire` | `<prefix>rl:tenant:…` / `<prefix>rl:budget:…` (string `"<epoch_s>:<offset_ns>"`, `PX` = TAT − now) | `lua/acquire.lua`: [`crate::state::limit::gcra`] on `TIME` |
//! | `begin` | `<prefix>idem:<len>:<tenant>:<key>` (hash `f` fingerprint, `t` holder token, `a` answer; `PX` lease, then 24 h) | `lua/begin.lua`: `HSET`+`PEXPIRE` when absent, else InFlight / Replay / Mismatch |
//! | `complete` | the record | `lua/complete.lua`: compare the token, then store the answer for 24 h or delete |
//! | `release` | the record | `lua/release.lua`: compare-and-delete on the token (`allow-oom`: it only frees memory) |
//! | `pause` | `<prefix>pause:<len>:<tenant>:<connection>` (`PX` = the pause) | `lua/pause.lua`: set only if longer than the current `PTTL` |
//! | `paused_for` | the pause key | `PTTL` |
//!
//! The scripts start with a `#!lua` shebang (Redis ≥ 7, Valkey): a write script is then refused
//! *before* it runs when Redis is out of memory, instead of failing halfway.
//!
//! Numbers cross into Lua as decimal strings and stay below 2^52 (Lua numbers are doubles):
//! intervals, tolerances and waits are clamped to about 52 days, which no validated limit
//! reaches. Pause and lease durations are whole milliseconds (rounded up).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use redis::{Script, Value};

use super::{CallError, RedisHub, BACKEND};
use crate::state::idempotency::{should_store, RECORD_TTL};
use crate::state::{
    Admission, Begin, Completion, ConnectionKey, Lease, Limit, LimitKey, RecordKey,
    RequestFingerprint, StateError, StateStore, StoredAnswer,
};

/// Largest nanosecond figure handed to a script (2^52: exact in a double with room to add).
const MAX_SCRIPT_NANOS: u64 = 1 << 52;

struct Scripts {
    acquire: Script,
    begin: Script,
    complete: Script,
    release: Script,
    pause: Script,
}

impl Scripts {
    fn new() -> Scripts {
        Scripts {
            acquire: Script::new(include_str!("lua/acquire.lua")),
            begin: Script::new(include_str!("lua/begin.lua")),
            complete: Script::new(include_str!("lua/complete.lua")),
            release: Script::new(include_str!("lua/release.lua")),
            pause: Script::new(include_str!("lua/pause.lua")),
        }
    }
}

/// Shared limits, idempotency records and pauses on Redis. Cheap to clone.
#[derive(Clone)]
pub struct RedisStore {
    hub: Arc<RedisHub>,
    scripts: Arc<Scripts>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("hub", &self.hub)
            .finish()
    }
}

impl RedisStore {
    pub fn new(hub: Arc<RedisHub>) -> RedisStore {
        RedisStore {
            hub,
            scripts: Arc::new(Scripts::new()),
        }
    }

    pub fn hub(&self) -> &Arc<RedisHub> {
        &self.hub
    }

    pub(crate) fn limit_key(&self, key: &LimitKey) -> String {
        self.hub.key(&key.storage_key())
    }

    pub(crate) fn record_key(&self, record: &RecordKey) -> String {
        self.hub.key(&record.storage_key())
    }

    pub(crate) fn pause_key(&self, connection: &ConnectionKey) -> String {
        self.hub.key(&format!("pause:{}", connection.storage_key()))
    }
}

#[async_trait]
impl StateStore for RedisStore {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    async fn acquire(
        &self,
        key: &LimitKey,
        limit: Limit,
        max_wait: Duration,
    ) -> Result<Admission, StateError> {
        let interval = limit.interval().min(MAX_SCRIPT_NANOS);
        let tolerance = limit.tolerance().min(MAX_SCRIPT_NANOS);
        let max_wait = nanos(max_wait).min(MAX_SCRIPT_NANOS);
        let key = self.limit_key(key);
        let script = &self.scripts.acquire;
        let answer: Vec<i64> = self
            .hub
            .call(|mut conn| async move {
                script
                    .key(key)
                    .arg(interval)
                    .arg(tolerance)
                    .arg(max_wait)
                    .invoke_async(&mut conn)
                    .await
            })
            .await?;
        admission(&answer).map_err(|e| StateError::from(CallError::Unreadable(e)))
    }

    async fn begin(
        &self,
        record: &RecordKey,
        fingerprint: &RequestFingerprint,
        lease: Duration,
    ) -> Result<Begin, StateError> {
        let token = new_token();
        let key = self.record_key(record);
        let fingerprint = fingerprint.to_hex();
        let lease_ms = millis_up(lease);
        let script = &self.scripts.begin;
        let answer: Vec<Value> = self
            .hub
            .call(|mut conn| async move {
                script
                    .key(key)
                    .arg(fingerprint)
                    .arg(token.to_string())
                    .arg(lease_ms)
                    .invoke_async(&mut conn)
                    .await
            })
            .await?;
        let unreadable = |what: &str| StateError::from(CallError::Unreadable(what.to_owned()));
        match answer.as_slice() {
            [Value::BulkString(kind)] if kind == b"started" => Ok(Begin::Started(Lease {
                record: record.clone(),
                token,
            })),
            [Value::BulkString(kind)] if kind == b"mismatch" => Ok(Begin::Mismatch),
            [Value::BulkString(kind), Value::BulkString(answer)] if kind == b"replay" => {
                decode_answer(answer)
                    .map(Begin::Replay)
                    .ok_or_else(|| unreadable("a stored idempotent answer"))
            }
            [Value::BulkString(kind), Value::Int(ms)] if kind == b"in_flight" => {
                Ok(Begin::InFlight {
                    // -2/-1 (gone or no TTL in between): the lock ends at once at the latest.
                    lease_remaining: Duration::from_millis(u64::try_from(*ms).unwrap_or(0)),
                })
            }
            _ => Err(unreadable("the begin script's answer")),
        }
    }

    async fn complete(
        &self,
        lease: &Lease,
        answer: StoredAnswer,
    ) -> Result<Completion, StateError> {
        let keep = should_store(answer.status);
        let blob = if keep {
            encode_answer(&answer)
        } else {
            Vec::new()
        };
        let key = self.record_key(&lease.record);
        let token = lease.token.to_string();
        let ttl_ms = millis_up(RECORD_TTL);
        let script = &self.scripts.complete;
        let done: Result<String, CallError> = self
            .hub
            .call(|mut conn| async move {
                script
                    .key(key)
                    .arg(token)
                    .arg(if keep { "1" } else { "0" })
                    .arg(blob)
                    .arg(ttl_ms)
                    .invoke_async(&mut conn)
                    .await
            })
            .await;
        match done {
            Ok(word) => match word.as_str() {
                "stored" => Ok(Completion::Stored),
                "released" => Ok(Completion::Released),
                "lost" => Ok(Completion::LeaseLost),
                _ => Err(CallError::Unreadable("the complete script's answer".into()).into()),
            },
            Err(e) => {
                // The trait's promise: a failed completion releases the key (better a possible
                // retry than a key locked for the whole lease). Best effort: Redis may be gone.
                if let Err(release) = self.release(lease).await {
                    tracing::debug!(error = %release, "release after a failed completion failed");
                }
                Err(e.into())
            }
        }
    }

    async fn release(&self, lease: &Lease) -> Result<(), StateError> {
        let key = self.record_key(&lease.record);
        let token = lease.token.to_string();
        let script = &self.scripts.release;
        let _released: i64 = self
            .hub
            .call(
                |mut conn| async move { script.key(key).arg(token).invoke_async(&mut conn).await },
            )
            .await?;
        Ok(())
    }

    async fn pause(
        &self,
        connection: &ConnectionKey,
        duration: Duration,
    ) -> Result<Duration, StateError> {
        let key = self.pause_key(connection);
        let ms = millis_up(duration);
        let script = &self.scripts.pause;
        let now: i64 = self
            .hub
            .call(|mut conn| async move { script.key(key).arg(ms).invoke_async(&mut conn).await })
            .await?;
        Ok(Duration::from_millis(u64::try_from(now).unwrap_or(0)))
    }

    async fn paused_for(&self, connection: &ConnectionKey) -> Result<Option<Duration>, StateError> {
        let key = self.pause_key(connection);
        let ttl: i64 = self
            .hub
            .call(
                |mut conn| async move { redis::cmd("PTTL").arg(key).query_async(&mut conn).await },
            )
            .await?;
        Ok(u64::try_from(ttl)
            .ok()
            .filter(|ms| *ms > 0)
            .map(Duration::from_millis))
    }
}

/// The acquire script's `{kind, a, b}` as an [`Admission`] — the same meaning as
/// [`crate::state::limit::gcra`]'s answer with `now = 0`.
fn admission(answer: &[i64]) -> Result<Admission, String> {
    let ns = |n: i64| Duration::from_nanos(u64::try_from(n).unwrap_or(0));
    match *answer {
        [0, remaining, reset] => Ok(Admission::Allowed {
            remaining: u32::try_from(remaining.max(0)).unwrap_or(u32::MAX),
            reset: ns(reset),
        }),
        [1, wait, reset] => Ok(Admission::Reserved {
            wait: ns(wait),
            reset: ns(reset),
        }),
        [2, retry_after, reset] => Ok(Admission::Refused {
            retry_after: ns(retry_after),
            reset: ns(reset),
        }),
        _ => Err(format!("the acquire script answered {answer:?}")),
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Whole milliseconds, rounded up, at least 1 (Redis refuses `PX 0`), at most ~52 days.
fn millis_up(d: Duration) -> u64 {
    let ms = d.as_millis() + u128::from(d.subsec_nanos() % 1_000_000 > 0);
    u64::try_from(ms)
        .unwrap_or(u64::MAX)
        .clamp(1, MAX_SCRIPT_NANOS / 1_000_000)
}

/// A holder token unique across replicas (64 random bits, never 0).
fn new_token() -> u64 {
    rand::random::<u64>().max(1)
}

/// Answer blob magic and version.
const ANSWER_MAGIC: &[u8; 4] = b"SBA1";

/// `SBA1`, status (u16), header count (u16), each header as name length (u16), name, value
/// length (u16), value; then the body. Binary-safe (header values may be opaque bytes).
fn encode_answer(answer: &StoredAnswer) -> Vec<u8> {
    let mut out = Vec::with_capacity(answer.size() + 16);
    out.extend_from_slice(ANSWER_MAGIC);
    out.extend_from_slice(&answer.status.to_be_bytes());
    // Replayed headers are a handful of describing headers (see is_replayed_header).
    let headers: Vec<_> = answer
        .headers
        .iter()
        .filter(|(n, v)| {
            n.as_str().len() <= usize::from(u16::MAX) && v.len() <= usize::from(u16::MAX)
        })
        .take(usize::from(u16::MAX))
        .collect();
    out.extend_from_slice(&(headers.len() as u16).to_be_bytes());
    for (name, value) in headers {
        out.extend_from_slice(&(name.as_str().len() as u16).to_be_bytes());
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(&(value.len() as u16).to_be_bytes());
        out.extend_from_slice(value.as_bytes());
    }
    out.extend_from_slice(&answer.body);
    out
}

fn decode_answer(blob: &[u8]) -> Option<StoredAnswer> {
    let rest = blob.strip_prefix(ANSWER_MAGIC.as_slice())?;
    let (status, rest) = take_u16(rest)?;
    let (count, mut rest) = take_u16(rest)?;
    let mut headers = Vec::with_capacity(usize::from(count));
    for _ in 0..count {
        let (len, r) = take_u16(rest)?;
        let (name, r) = r.split_at_checked(usize::from(len))?;
        let (len, r) = take_u16(r)?;
        let (value, r) = r.split_at_checked(usize::from(len))?;
        headers.push((
            HeaderName::from_bytes(name).ok()?,
            HeaderValue::from_bytes(value).ok()?,
        ));
        rest = r;
    }
    Some(StoredAnswer {
        status,
        headers,
        body: Bytes::copy_from_slice(rest),
    })
}

fn take_u16(b: &[u8]) -> Option<(u16, &[u8])> {
    let (n, rest) = b.split_at_checked(2)?;
    Some((u16::from_be_bytes([n[0], n[1]]), rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_round_trip_binary_safe() {
        let answer = StoredAnswer {
            status: 201,
            headers: vec![
                (
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                ),
                (
                    http::header::LOCATION,
                    HeaderValue::from_bytes(b"/v1/m/\xfa\xfb").unwrap(),
                ),
            ],
            body: Bytes::from_static(b"{\"id\":\"m1\"}\x00\xff"),
        };
        assert_eq!(decode_answer(&encode_answer(&answer)), Some(answer));
        let empty = StoredAnswer::new(204, [], Bytes::new());
        assert_eq!(decode_answer(&encode_answer(&empty)), Some(empty));
    }

    #[test]
    fn damaged_answers_are_refused_not_guessed() {
        let blob = encode_answer(&StoredAnswer::new(
            200,
            [(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain"),
            )],
            Bytes::from_static(b"x"),
        ));
        assert_eq!(decode_answer(b"nope"), None);
        assert_eq!(decode_answer(&blob[..10]), None);
        let mut bad_name = blob.clone();
        bad_name[10] = b' ';
        assert_eq!(decode_answer(&bad_name), None);
    }

    #[test]
    fn script_answers_map_like_gcra() {
        assert_eq!(
            admission(&[0, 3, 250_000_000]).unwrap(),
            Admission::Allowed {
                remaining: 3,
                reset: Duration::from_millis(250)
            }
        );
        assert_eq!(
            admission(&[1, 200_000_000, 1_200_000_000]).unwrap(),
            Admission::Reserved {
                wait: Duration::from_millis(200),
                reset: Duration::from_millis(1200)
            }
        );
        assert_eq!(
            admission(&[2, 400_000_000, 900_000_000]).unwrap(),
            Admission::Refused {
                retry_after: Duration::from_millis(400),
                reset: Duration::from_millis(900)
            }
        );
        assert!(admission(&[3, 0, 0]).is_err());
        assert!(admission(&[0, 1]).is_err());
    }

    #[test]
    fn durations_become_whole_milliseconds_rounded_up() {
        assert_eq!(millis_up(Duration::ZERO), 1);
        assert_eq!(millis_up(Duration::from_micros(1)), 1);
        assert_eq!(millis_up(Duration::from_millis(1500)), 1500);
        assert_eq!(millis_up(Duration::from_micros(1_500_001)), 1501);
        assert_eq!(millis_up(Duration::MAX), MAX_SCRIPT_NANOS / 1_000_000);
    }
}
