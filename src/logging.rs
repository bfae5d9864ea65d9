//! tracing setup: text or JSON lines on stderr, filtered by `RUST_LOG` when set, else by the
//! config's `log.filter`. Nothing logged anywhere carries a credential or a token: the auth
//! header is built once and marked sensitive, and request logs carry ids, not headers.

use tracing_subscriber::EnvFilter;

use crate::config::LogFile;

pub fn init(log: &LogFile) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&log.filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = if log.format == "json" {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
    if result.is_err() {
        // Already initialized (tests start several gateways in one process).
    }
}
