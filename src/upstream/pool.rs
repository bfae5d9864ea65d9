//! The vendor client's keep-alive pool: idle HTTP/1 connections kept by peer, handed out
//! newest first.
//!
//! Why not pingora's own pool: pingora spawns a task per released connection to watch it
//! while it is idle (and, with the no-steal runtime, on a random worker thread), and wakes
//! that task through a channel when the connection is taken again — a spawn, a cross-thread
//! wake-up and a timer for every vendor call, which the uncached hot path paid on each
//! request. Here an idle connection is watched by nobody: it is checked when it is taken
//! (a non-blocking read must find nothing: a closed or chattering connection is dropped) and
//! dropped once it has been idle for longer than its idle timeout. One sweeper task per pool
//! (started by the first release, on that release's runtime) closes, every [`SWEEP_EVERY`],
//! the idle connections that expired or that the vendor closed, so a gateway whose traffic
//! stopped holds no dead connections (`CLOSE_WAIT`) to its vendors. What a check cannot see
//! (a FIN still in flight) is the stale-connection case [`super::client`] already retries.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use futures::FutureExt;
use pingora::protocols::Stream;
use tokio::io::AsyncReadExt;

use super::tls::PoolIdentity;

/// At most this many idle connections are kept per peer; one more is closed.
const MAX_IDLE_PER_PEER: usize = 128;
/// How often the sweeper closes every peer's expired connections and those the vendor closed
/// while they were idle.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// Idle connections by peer (`HttpPeer::reuse_hash`), with the pool identity each peer
/// belongs to (what [`IdlePool::retire`] closes).
pub(super) struct IdlePool {
    inner: Arc<Mutex<Inner>>,
    sweep_every: Duration,
    /// Whether a sweeper task is alive; it clears this when it ends (its runtime stopped),
    /// and the next release starts another.
    sweeping: Arc<AtomicBool>,
}

impl Default for IdlePool {
    fn default() -> Self {
        IdlePool {
            inner: Arc::default(),
            sweep_every: SWEEP_EVERY,
            sweeping: Arc::default(),
        }
    }
}

#[derive(Default)]
struct Inner {
    idle: HashMap<u64, Vec<Idle>>,
    identities: HashMap<u64, PoolIdentity>,
}

struct Idle {
    stream: Stream,
    expires: Instant,
}

impl IdlePool {
    /// The newest idle connection to `peer` that is still open and quiet, if any. Expired,
    /// closed and chattering connections met on the way are closed.
    pub(super) fn take(&self, peer: u64) -> Option<Stream> {
        let now = Instant::now();
        loop {
            let candidate = {
                let mut inner = self.lock();
                let idle = inner.idle.get_mut(&peer)?;
                idle.pop()?
            };
            // Dropped (closed) outside the lock when it does not pass.
            let mut stream = candidate.stream;
            if candidate.expires > now && is_quiet(&mut stream) {
                return Some(stream);
            }
        }
    }

    /// Keep `stream`, a connection to `peer` whose last exchange ended cleanly, for
    /// `idle_timeout`. `identity` is asked for only the first time a peer is seen. A
    /// connection that is not quiet, or one more than [`MAX_IDLE_PER_PEER`], is closed.
    pub(super) fn put(
        &self,
        peer: u64,
        identity: impl FnOnce() -> PoolIdentity,
        mut stream: Stream,
        idle_timeout: Duration,
    ) {
        if !is_quiet(&mut stream) {
            return;
        }
        let now = Instant::now();
        {
            let mut inner = self.lock();
            inner.identities.entry(peer).or_insert_with(identity);
            let idle = inner.idle.entry(peer).or_default();
            if idle.len() < MAX_IDLE_PER_PEER {
                idle.push(Idle {
                    stream,
                    expires: now + idle_timeout,
                });
            }
        }
        self.start_sweeper();
    }

    /// Start the sweeper task on the current runtime unless one is alive. It holds the pool
    /// weakly and ends with it (or with its runtime).
    fn start_sweeper(&self) {
        // A plain load first: on the hot path the flag is set, and a load keeps the cache line
        // shared between the worker threads.
        if self.sweeping.load(Ordering::Acquire) || self.sweeping.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.sweeping.store(false, Ordering::Release);
            return;
        };
        let pool = Arc::downgrade(&self.inner);
        let alive = Alive(Arc::clone(&self.sweeping));
        let every = self.sweep_every;
        runtime.spawn(async move {
            let _alive = alive;
            sweep_every(pool, every).await;
        });
    }

    /// Close every idle connection of the given pool identities; how many were closed.
    pub(super) fn retire(&self, retired: &BTreeSet<PoolIdentity>) -> usize {
        let closed: Vec<Idle> = {
            let mut inner = self.lock();
            let peers: Vec<u64> = inner
                .identities
                .iter()
                .filter(|(_, identity)| retired.contains(identity))
                .map(|(peer, _)| *peer)
                .collect();
            peers
                .iter()
                .filter_map(|peer| {
                    inner.identities.remove(peer);
                    inner.idle.remove(peer)
                })
                .flatten()
                .collect()
        };
        closed.len()
    }

    /// How many idle connections are kept for `peer`.
    #[cfg(test)]
    fn idle(&self, peer: u64) -> usize {
        self.lock().idle.get(&peer).map_or(0, Vec::len)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        lock(&self.inner)
    }
}

fn lock(inner: &Mutex<Inner>) -> std::sync::MutexGuard<'_, Inner> {
    inner.lock().unwrap_or_else(|p| p.into_inner())
}

/// Clears the pool's "sweeping" flag when the sweeper task ends or is dropped with its
/// runtime.
struct Alive(Arc<AtomicBool>);

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// The sweeper: every `every`, close the idle connections that expired or that the vendor
/// closed (one non-blocking read each). The connections are closed outside the lock.
async fn sweep_every(pool: Weak<Mutex<Inner>>, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        let Some(inner) = pool.upgrade() else {
            return;
        };
        let now = Instant::now();
        let mut closed = Vec::new();
        {
            let mut inner = lock(&inner);
            for idle in inner.idle.values_mut() {
                for mut c in std::mem::take(idle) {
                    if c.expires > now && is_quiet(&mut c.stream) {
                        idle.push(c);
                    } else {
                        closed.push(c);
                    }
                }
            }
        }
        drop(closed);
    }
}

/// Whether an idle connection has nothing to say: a read that is ready (end of stream, an
/// error, or bytes nobody asked for) means it cannot carry another request.
fn is_quiet(stream: &mut Stream) -> bool {
    let mut byte = [0u8; 1];
    // `unconstrained`: tokio's cooperative budget must not turn a ready read into "pending".
    tokio::task::unconstrained(stream.read(&mut byte))
        .now_or_never()
        .is_none()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;
    use tokio::net::{TcpListener, TcpStream};

    fn identity(port: u16) -> PoolIdentity {
        PoolIdentity {
            pool_key: 0,
            server_name: "127.0.0.1".to_owned(),
            port,
            tls: false,
        }
    }

    /// A connected pair: our side as a pingora stream, and the vendor's side.
    async fn pair(listener: &TcpListener) -> (Stream, TcpStream) {
        let addr = listener.local_addr().unwrap();
        let ours = TcpStream::connect(addr).await.unwrap();
        let (theirs, _) = listener.accept().await.unwrap();
        let ours: Stream = Box::new(pingora::protocols::l4::stream::Stream::from(ours));
        (ours, theirs)
    }

    /// The vendor's side of a connection we closed reads end of stream (within 5 s).
    async fn assert_closed_by_us(peer: &mut TcpStream) {
        let mut buf = [0u8; 1];
        let n = tokio::time::timeout(
            Duration::from_secs(5),
            tokio::io::AsyncReadExt::read(peer, &mut buf),
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(n, 0, "the connection is still open");
    }

    #[tokio::test]
    async fn the_newest_quiet_connection_is_taken_first() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let pool = IdlePool::default();
        let (older, _older_peer) = pair(&listener).await;
        let (newer, _newer_peer) = pair(&listener).await;
        let older_id = older.id();
        let newer_id = newer.id();
        pool.put(7, || identity(port), older, Duration::from_secs(60));
        pool.put(7, || identity(port), newer, Duration::from_secs(60));
        assert_eq!(pool.idle(7), 2);
        assert_eq!(pool.take(7).map(|s| s.id()), Some(newer_id));
        assert_eq!(pool.take(7).map(|s| s.id()), Some(older_id));
        assert!(pool.take(7).is_none());
        assert!(pool.take(8).is_none());
    }

    #[tokio::test]
    async fn a_connection_the_vendor_closed_or_wrote_on_is_never_handed_out() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let pool = IdlePool::default();
        let (closed, closed_peer) = pair(&listener).await;
        let (chatty, mut chatty_peer) = pair(&listener).await;
        pool.put(1, || identity(port), closed, Duration::from_secs(60));
        pool.put(2, || identity(port), chatty, Duration::from_secs(60));
        drop(closed_peer);
        chatty_peer
            .write_all(b"HTTP/1.1 408 Request Timeout\r\n\r\n")
            .await
            .unwrap();
        // Poll until the reactor has seen both (bounded), then neither may come out.
        let deadline = Instant::now() + Duration::from_secs(5);
        let (mut one, mut two) = (true, true);
        while (one || two) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
            // take() closes what fails its check; put a passing one back for the next look.
            one = match pool.take(1) {
                Some(s) => {
                    pool.put(1, || identity(port), s, Duration::from_secs(60));
                    true
                }
                None => false,
            };
            two = match pool.take(2) {
                Some(s) => {
                    pool.put(2, || identity(port), s, Duration::from_secs(60));
                    true
                }
                None => false,
            };
        }
        assert!(!one, "a closed connection was handed out");
        assert!(!two, "a connection with unasked-for bytes was handed out");
    }

    /// With no call after it, an idle connection the vendor closed, and one that expired, are
    /// closed by the sweeper (no `CLOSE_WAIT` left behind); an open one is kept.
    #[tokio::test]
    async fn the_sweeper_closes_dead_and_expired_idle_connections_without_any_call() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let pool = IdlePool {
            sweep_every: Duration::from_millis(10),
            ..IdlePool::default()
        };
        let (closed, closed_peer) = pair(&listener).await;
        let (expiring, mut expiring_peer) = pair(&listener).await;
        let (open, _open_peer) = pair(&listener).await;
        pool.put(4, || identity(port), closed, Duration::from_secs(60));
        pool.put(5, || identity(port), expiring, Duration::from_millis(50));
        pool.put(6, || identity(port), open, Duration::from_secs(60));
        drop(closed_peer);
        let deadline = Instant::now() + Duration::from_secs(5);
        while (pool.idle(4), pool.idle(5)) != (0, 0) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(pool.idle(4), 0, "the connection the vendor closed was kept");
        assert_eq!(pool.idle(5), 0, "the expired connection was kept");
        assert_eq!(pool.idle(6), 1, "the open connection was swept too");
        // The expired one was closed on our side.
        assert_closed_by_us(&mut expiring_peer).await;
    }

    /// The sweeper ends with its runtime; the next release on a live runtime starts another.
    #[test]
    fn a_sweeper_whose_runtime_stopped_is_started_again() {
        let pool = IdlePool {
            sweep_every: Duration::from_millis(10),
            ..IdlePool::default()
        };
        let runtime = || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
        };
        let first = runtime();
        let listener = first.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
        let (stream, _peer) = first.block_on(pair(&listener));
        first.block_on(async {
            pool.put(1, || identity(0), stream, Duration::from_secs(60));
        });
        assert!(pool.sweeping.load(Ordering::Acquire));
        drop(first);
        assert!(
            !pool.sweeping.load(Ordering::Acquire),
            "a dead sweeper counted as alive"
        );

        let second = runtime();
        second.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = listener.local_addr().unwrap().port();
            let (stream, peer) = pair(&listener).await;
            pool.put(2, || identity(port), stream, Duration::from_secs(60));
            drop(peer);
            let deadline = Instant::now() + Duration::from_secs(5);
            while pool.idle(2) != 0 && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            assert_eq!(pool.idle(2), 0, "no sweeper on the live runtime");
        });
    }

    #[tokio::test]
    async fn an_expired_connection_is_closed_not_handed_out() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let pool = IdlePool::default();
        let (stream, _peer) = pair(&listener).await;
        pool.put(3, || identity(port), stream, Duration::ZERO);
        assert!(pool.take(3).is_none());
    }

    #[tokio::test]
    async fn retiring_an_identity_closes_its_idle_connections_only() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let pool = IdlePool::default();
        let (a, mut a_peer) = pair(&listener).await;
        let (b, _b_peer) = pair(&listener).await;
        pool.put(10, || identity(port), a, Duration::from_secs(60));
        let mut other = identity(port);
        other.tls = true;
        pool.put(11, || other.clone(), b, Duration::from_secs(60));
        assert_eq!(pool.retire(&BTreeSet::from([identity(port)])), 1);
        assert_eq!((pool.idle(10), pool.idle(11)), (0, 1));
        // The retired connection was closed on our side.
        assert_closed_by_us(&mut a_peer).await;
        assert!(pool.take(11).is_some());
    }

    #[tokio::test]
    async fn a_peer_keeps_at_most_its_cap_of_idle_connections() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let pool = IdlePool::default();
        let mut peers = Vec::new();
        for _ in 0..MAX_IDLE_PER_PEER + 2 {
            let (stream, peer) = pair(&listener).await;
            peers.push(peer);
            pool.put(5, || identity(port), stream, Duration::from_secs(60));
        }
        assert_eq!(pool.idle(5), MAX_IDLE_PER_PEER);
    }
}
