//! tracing setup: text or JSON lines on stderr, filtered by `RUST_LOG` when set, else by the
//! config's `log.filter`. Nothing logged anywhere carries a credential or a token: the auth
//! header is built once and marked sensitive, request logs carry ids, not headers, and the
//! dependency modules that dump raw HTTP headers at debug/trace are capped at info whatever
//! the filter says (see [`HEADER_DUMPING_TARGETS`]).
//!
//! Pingora (and other dependencies) log through the `log` crate; `try_init` installs the
//! `log` → tracing bridge, so their lines get the same format and filter as ours.
//! Every request writes one line with target `switchboard::access` (the `logging` phase of `crate::gateway::Gateway`).

use std::io::IsTerminal;

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

pub fn init(log: &LogSettings) {
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
            .with_writer(std::io::stderr)
            .boxed()
    } else {
        tracing_subscriber::fmt::layer()
            .with_ansi(ansi)
            .with_writer(std::io::stderr)
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
    if result.is_err() {
        // Already initialized (tests start several gateways in one process).
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
