//! tracing setup: text or JSON lines on stderr, filtered by `RUST_LOG` when set, else by the
//! config's `log.filter`. Nothing logged anywhere carries a credential or a token: the auth
//! header is built once and marked sensitive, request logs carry ids, not headers, and the
//! dependency modules that dump raw HTTP headers at debug/trace are capped at info whatever
//! the filter says (see [`HEADER_DUMPING_TARGETS`]).
//!
//! Pingora (and other dependencies) log through the `log` crate; `try_init` installs the
//! `log` → tracing bridge, so their lines get the same format and filter as ours.
//! Every request writes one line with target `switchboard::access` (the `logging` phase of `crate::gateway::Gateway`).
//!
//! `switchboard run` writes through [`init_non_blocking`]: request threads format their line
//! and queue it (a bounded channel of [`QUEUED_LINES`]); one writer thread writes the queue to
//! a buffered stderr in batches ([`BATCH_INTERVAL`]). A request thread never waits for stderr:
//! when the queue is full (stderr blocked, a log collector stalled) the line is dropped and
//! counted ([`dropped_lines`], exported as `switchboard_log_lines_dropped_total`). The queue
//! is written out when the [`LogGuard`] drops, after the server stopped.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use tracing::{Level, Metadata};
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::snapshot::LogSettings;

/// Modules (with their submodules) whose debug/trace lines print whole HTTP headers: the
/// client's `Authorization: Bearer <JWT>` (pingora-proxy traces every downstream request
/// header) and the vendor credentials the gateway injects (pingora-core traces every upstream
/// request header it writes). Measured on pingora 0.9.1 with `RUST_LOG=trace`.
pub const HEADER_DUMPING_TARGETS: &[&str] = &[
    "pingora_proxy",
    "pingora_core::protocols::http",
    "pingora_core::apps",
];

/// Whether an event may be logged at all: below info, never from a header-dumping module.
fn allowed(target: &str, level: &Level) -> bool {
    if *level <= Level::INFO {
        return true;
    }
    !HEADER_DUMPING_TARGETS.iter().any(|prefix| {
        target
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
    })
}

/// Lines queued for the writer thread at most; more are dropped and counted. 8192 lines of
/// ~300 bytes bound the queue near 2.5 MB.
pub const QUEUED_LINES: usize = 8192;

/// Bytes gathered before one write to stderr.
const WRITE_BUFFER_BYTES: usize = 64 * 1024;

/// While lines keep coming, the writer thread writes what is queued, flushes, then sleeps this
/// long and lets the next batch gather: under load it wakes every 5 ms, not once per line (each
/// wake-up would be a futex call and a context switch on the cores the requests run on). When a
/// sleep gathered nothing it waits for the next line.
const BATCH_INTERVAL: Duration = Duration::from_millis(5);

/// How long dropping the [`LogGuard`] waits for the queued lines to be written.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// Lines dropped by the process's log queue because it was full.
static DROPPED: OnceLock<Arc<AtomicU64>> = OnceLock::new();

/// Lines dropped so far because the log queue was full (0 with the blocking writer).
pub fn dropped_lines() -> u64 {
    DROPPED
        .get()
        .map_or(0, |dropped| dropped.load(Ordering::Relaxed))
}

/// What the request threads queue for the writer thread.
enum Msg {
    Line(Vec<u8>),
    /// Write what is queued, flush and stop (sent by [`LogGuard`]'s drop).
    Stop,
}

/// The request threads' end of the log queue (a `MakeWriter`): each formatted line is queued
/// without waiting; a line that does not fit is dropped and counted.
struct QueueWriter {
    tx: SyncSender<Msg>,
    dropped: Arc<AtomicU64>,
}

/// One event's writer, borrowing the queue (no reference count touched per line).
struct QueueLine<'a>(&'a QueueWriter);

impl std::io::Write for QueueLine<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.0.tx.try_send(Msg::Line(buf.to_vec())).is_err() {
            self.0.dropped.fetch_add(1, Ordering::Relaxed);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for QueueWriter {
    type Writer = QueueLine<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        QueueLine(self)
    }
}

/// Keeps the log writer thread; dropping it writes every queued line (within
/// [`DRAIN_TIMEOUT`]). Hold it until the server has stopped.
#[must_use = "dropping the guard stops the log writer"]
pub struct LogGuard {
    tx: Option<SyncSender<Msg>>,
    stopped: Option<Receiver<()>>,
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        let (Some(tx), Some(stopped)) = (self.tx.take(), self.stopped.take()) else {
            return;
        };
        let deadline = Instant::now() + DRAIN_TIMEOUT;
        // The queue may be full for a moment: retry until the deadline, never block on it.
        let mut stop = Msg::Stop;
        loop {
            match tx.try_send(stop) {
                Ok(()) => break,
                Err(TrySendError::Full(back)) if Instant::now() < deadline => {
                    stop = back;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(_) => return,
            }
        }
        let _ = stopped.recv_timeout(deadline.saturating_duration_since(Instant::now()));
    }
}

/// Log to stderr from the calling thread (one locked write per line). For `switchboard demo`,
/// and for `run --daemon`, whose fork would leave a writer thread behind.
pub fn init(log: &LogSettings) {
    install(log, std::io::stderr);
}

/// Log through a bounded queue and a writer thread (see the module doc): no request thread ever
/// waits for stderr. Falls back to [`init`] if the thread cannot start.
pub fn init_non_blocking(log: &LogSettings) -> LogGuard {
    let stderr = std::io::BufWriter::with_capacity(WRITE_BUFFER_BYTES, std::io::stderr());
    let Ok((writer, guard)) = queue(stderr) else {
        init(log);
        return LogGuard {
            tx: None,
            stopped: None,
        };
    };
    let dropped = writer.dropped.clone();
    if install(log, writer) {
        let _ = DROPPED.set(dropped);
        guard
    } else {
        LogGuard {
            tx: None,
            stopped: None,
        }
    }
}

/// A bounded, lossy queue of [`QUEUED_LINES`] in front of `out`, written by its own thread.
fn queue<W: std::io::Write + Send + 'static>(
    mut out: W,
) -> std::io::Result<(QueueWriter, LogGuard)> {
    let (tx, rx) = sync_channel(QUEUED_LINES);
    let (done, stopped) = sync_channel(1);
    std::thread::Builder::new()
        .name("switchboard-log".to_owned())
        .spawn(move || {
            write_lines(&rx, &mut out);
            let _ = done.send(());
        })?;
    let writer = QueueWriter {
        tx: tx.clone(),
        dropped: Arc::new(AtomicU64::new(0)),
    };
    let guard = LogGuard {
        tx: Some(tx),
        stopped: Some(stopped),
    };
    Ok((writer, guard))
}

/// The writer thread: idle, it waits for a line; busy, it writes what is queued, flushes, and
/// sleeps [`BATCH_INTERVAL`] before looking again (see there). Ends at [`Msg::Stop`].
fn write_lines<W: std::io::Write>(rx: &Receiver<Msg>, out: &mut W) {
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        while let Some(msg) = next {
            match msg {
                // A failed write (stderr closed) loses the line; nothing else can be done.
                Msg::Line(line) => {
                    let _ = out.write_all(&line);
                }
                Msg::Stop => {
                    let _ = out.flush();
                    return;
                }
            }
            next = rx.try_recv().ok();
            if next.is_none() {
                let _ = out.flush();
                std::thread::sleep(BATCH_INTERVAL);
                next = rx.try_recv().ok();
            }
        }
    }
    let _ = out.flush();
}

/// Install the subscriber writing to `writer`; false when one was installed already.
fn install<W>(log: &LogSettings, writer: W) -> bool
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    // An error: initialized already (tests start several gateways in one process).
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&log.filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::registry()
        .with(filtered_layer(filter, &log.format, writer))
        .try_init()
        .is_ok()
}

/// The line format with both filters. The level filter is the outer one, so the layer's
/// max-level hint is the filter's (`info` by default): `try_init` hands it to the `log`
/// bridge, and the `debug!` lines pingora writes on every request stop at `log`'s level check
/// instead of going through the bridge and the filters for nothing.
fn filtered_layer<W>(
    filter: EnvFilter,
    format: &str,
    writer: W,
) -> impl Layer<tracing_subscriber::Registry> + Send + Sync
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    // Colors only for a person at a terminal: escape codes in a log file or a collector
    // split `key=value` pairs apart. `NO_COLOR` (https://no-color.org) turns them off too.
    let ansi = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let lines = if format == "json" {
        tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_writer(writer)
            .boxed()
    } else {
        tracing_subscriber::fmt::layer()
            .with_ansi(ansi)
            .with_writer(writer)
            .boxed()
    };
    lines
        .with_filter(filter_fn(|meta: &Metadata<'_>| {
            allowed(meta.target(), meta.level())
        }))
        .with_filter(filter)
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::mpsc;
    use std::sync::Mutex;

    use super::*;

    /// A writer stuck until the test lets it go, like stderr into a pipe nobody reads.
    struct Stuck {
        release: Arc<Mutex<mpsc::Receiver<()>>>,
        written: Arc<Mutex<Vec<u8>>>,
        released: bool,
    }

    impl Write for Stuck {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if !self.released {
                let _ = self.release.lock().unwrap().recv();
                self.released = true;
            }
            self.written.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// A shared buffer as the log's output.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_queued_line_is_written_without_waiting_for_more_and_the_guard_writes_the_rest() {
        use tracing_subscriber::fmt::MakeWriter;
        let out = Shared::default();
        let (writer, guard) = queue(out.clone()).unwrap();
        writer.make_writer().write_all(b"first\n").unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while out.0.lock().unwrap().as_slice() != b"first\n" {
            assert!(
                std::time::Instant::now() < deadline,
                "the line was never written"
            );
            std::thread::yield_now();
        }
        for i in 0..1000 {
            writer
                .make_writer()
                .write_all(format!("{i}\n").as_bytes())
                .unwrap();
        }
        drop(guard);
        let written = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert_eq!(written.lines().count(), 1001);
        assert!(written.ends_with("999\n"));
        assert_eq!(writer.dropped.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_full_log_queue_drops_and_counts_lines_instead_of_blocking() {
        let (release, stuck) = mpsc::channel();
        let written = Arc::new(Mutex::new(Vec::new()));
        let (writer, guard) = queue(Stuck {
            release: Arc::new(Mutex::new(stuck)),
            written: written.clone(),
            released: false,
        })
        .unwrap();
        let counter = writer.dropped.clone();
        let extra = 100;
        // A request thread writes far more lines than the queue holds while the output is
        // stuck; it must finish (bounded wait here), not block.
        let (done, finished) = mpsc::channel();
        std::thread::spawn(move || {
            use tracing_subscriber::fmt::MakeWriter;
            for i in 0..QUEUED_LINES + extra {
                let mut line = writer.make_writer();
                line.write_all(format!("line {i}\n").as_bytes()).unwrap();
            }
            done.send(()).unwrap();
        });
        finished
            .recv_timeout(Duration::from_secs(30))
            .expect("writing to a full log queue blocked");
        // the writer thread holds one line, the queue QUEUED_LINES: the rest were dropped
        let dropped = counter.load(Ordering::Relaxed) as usize;
        assert!(
            (extra - 1..=extra).contains(&dropped),
            "{dropped} lines dropped, expected about {extra}"
        );
        release.send(()).unwrap();
        drop(guard); // flushes the queue
        let written = String::from_utf8(written.lock().unwrap().clone()).unwrap();
        assert!(written.starts_with("line 0\n"), "{}", &written[..40]);
        assert_eq!(written.lines().count() + dropped, QUEUED_LINES + extra);
    }

    /// The `log` bridge takes its level from this hint: without it every `debug!` pingora
    /// writes goes through the bridge and the filters.
    #[test]
    fn the_layers_max_level_is_the_filters_level_in_both_formats() {
        use tracing_subscriber::filter::LevelFilter;
        for format in ["json", "text"] {
            for (directive, level) in [
                ("info", LevelFilter::INFO),
                ("warn,switchboard=debug", LevelFilter::DEBUG),
                ("error", LevelFilter::ERROR),
            ] {
                let layer = filtered_layer(EnvFilter::new(directive), format, std::io::sink);
                assert_eq!(
                    Layer::<tracing_subscriber::Registry>::max_level_hint(&layer),
                    Some(level),
                    "{format} {directive}"
                );
            }
        }
    }

    #[test]
    fn header_dumping_modules_are_capped_at_info() {
        for target in [
            "pingora_proxy",
            "pingora_proxy::proxy_h1",
            "pingora_core::protocols::http::v1::client",
            "pingora_core::apps::http_app",
        ] {
            assert!(!allowed(target, &Level::TRACE), "{target}");
            assert!(!allowed(target, &Level::DEBUG), "{target}");
            assert!(allowed(target, &Level::INFO), "{target}");
            assert!(allowed(target, &Level::ERROR), "{target}");
        }
        for target in [
            "pingora_core::server",
            "pingora_core::connectors",
            "pingora_proxyx",
            "switchboard::upstream::client",
        ] {
            assert!(allowed(target, &Level::TRACE), "{target}");
        }
    }
}
