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
//! `switchboard run` writes through [`init_non_blocking`]: a worker thread formats nothing, it
//! only writes lines that request threads queued (a bounded channel of [`QUEUED_LINES`]) to a
//! buffered stderr, one write per batch. A worker never waits for stderr: when the queue is full
//! (stderr blocked, a log collector stalled) the line is dropped and counted
//! ([`dropped_lines`], exported as `switchboard_log_lines_dropped_total`). The queue is flushed
//! when the [`LogGuard`] drops, after the server stopped.

use std::io::IsTerminal;
use std::sync::OnceLock;

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
/// ~300 bytes bound the queue near 2.5 MB (tracing-appender's default, 128 000, could hold 40 MB
/// while stderr is blocked).
pub const QUEUED_LINES: usize = 8192;

/// Bytes gathered before one write to stderr (the writer flushes whenever the queue is empty).
const WRITE_BUFFER_BYTES: usize = 64 * 1024;

/// Lines the non-blocking writer dropped because its queue was full.
static DROPPED: OnceLock<tracing_appender::non_blocking::ErrorCounter> = OnceLock::new();

/// Lines dropped so far because the log queue was full (0 with the blocking writer).
pub fn dropped_lines() -> u64 {
    DROPPED
        .get()
        .map_or(0, |counter| counter.dropped_lines() as u64)
}

/// Keeps the log writer thread; dropping it writes every queued line. Hold it until the server
/// has stopped.
#[must_use = "dropping the guard stops the log writer"]
pub struct LogGuard {
    _writer: Option<tracing_appender::non_blocking::WorkerGuard>,
}

/// Log to stderr from the calling thread (one locked write per line). For `switchboard demo`,
/// and for `run --daemon`, whose fork would leave a writer thread behind.
pub fn init(log: &LogSettings) {
    install(log, std::io::stderr);
}

/// Log through a bounded queue and a writer thread (see the module doc): no request thread ever
/// waits for stderr.
pub fn init_non_blocking(log: &LogSettings) -> LogGuard {
    let (writer, guard) = queue(std::io::BufWriter::with_capacity(
        WRITE_BUFFER_BYTES,
        std::io::stderr(),
    ));
    let counter = writer.error_counter();
    if install(log, writer) {
        let _ = DROPPED.set(counter);
        LogGuard {
            _writer: Some(guard),
        }
    } else {
        LogGuard { _writer: None }
    }
}

/// A bounded, lossy queue of [`QUEUED_LINES`] in front of `out`, written by its own thread.
fn queue<W: std::io::Write + Send + 'static>(
    out: W,
) -> (
    tracing_appender::non_blocking::NonBlocking,
    tracing_appender::non_blocking::WorkerGuard,
) {
    tracing_appender::non_blocking::NonBlockingBuilder::default()
        .buffered_lines_limit(QUEUED_LINES)
        .lossy(true)
        .thread_name("switchboard-log")
        .finish(out)
}

/// Install the subscriber writing to `writer`; false when one was installed already.
fn install<W>(log: &LogSettings, writer: W) -> bool
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&log.filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // Colors only for a person at a terminal: escape codes in a log file or a collector
    // split `key=value` pairs apart. `NO_COLOR` (https://no-color.org) turns them off too.
    let ansi = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let format = if log.format == "json" {
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
    let result = tracing_subscriber::registry()
        .with(
            format
                .with_filter(filter)
                .with_filter(filter_fn(|meta: &Metadata<'_>| {
                    allowed(meta.target(), meta.level())
                })),
        )
        .try_init();
    // An error: initialized already (tests start several gateways in one process).
    result.is_ok()
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::mpsc;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

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

    #[test]
    fn a_full_log_queue_drops_and_counts_lines_instead_of_blocking() {
        let (release, stuck) = mpsc::channel();
        let written = Arc::new(Mutex::new(Vec::new()));
        let (writer, guard) = queue(Stuck {
            release: Arc::new(Mutex::new(stuck)),
            written: written.clone(),
            released: false,
        });
        let counter = writer.error_counter();
        let extra = 100;
        // A request thread writes far more lines than the queue holds while the output is
        // stuck; it must finish (bounded wait here), not block.
        let (done, finished) = mpsc::channel();
        std::thread::spawn(move || {
            let mut writer = writer;
            for i in 0..QUEUED_LINES + extra {
                writer.write_all(format!("line {i}\n").as_bytes()).unwrap();
            }
            done.send(()).unwrap();
        });
        finished
            .recv_timeout(Duration::from_secs(30))
            .expect("writing to a full log queue blocked");
        // the writer thread holds one line, the queue QUEUED_LINES: the rest were dropped
        let dropped = counter.dropped_lines();
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
