//! The integration tests: one test binary, `it`, holding every suite as a module, so pingora
//! and the rest of the dependency tree are linked once instead of once per file.
//!
//! Each module drives real gateways (pingora on free loopback ports, in process) in front
//! of the vendor sandboxes, or runs the real `switchboard` binary; [`harness`] starts them.
//! Test names keep the file name: `cargo test --test it reload::` runs `tests/it/reload.rs`,
//! `cargo test --test it -- --exact tls::mtls_works_with_the_client_certificate_and_fails_without`
//! one test.
//!
//! Adding a suite:
//! 1. Put it in `tests/it/<name>.rs` with a `//!` header saying what it covers, and add
//!    `mod <name>;` below (alphabetical).
//! 2. Import the harness with `use crate::harness::*;` (or name what you use); keep the
//!    `use switchboard::…` lines together, so moves inside the crate stay mechanical fixes.
//! 3. Vendor answers and other data files go in `tests/fixtures/`; reach them and any other
//!    repository file through `harness::repo_path`, never outside the repository.
//! 4. Everything in this binary shares one process and runs in parallel with the other
//!    modules, in any order. So a test must not: set or remove environment variables (pass
//!    them to a child `Command`, or through `switchboard::config::Env`), change the current
//!    directory, send signals to its own process, install process-wide handlers or
//!    subscribers (the one exception is `tls`'s log capture, which filters by request id), or
//!    count anything process-global. Gateways, metrics registries and sandboxes are per
//!    harness, ports come from `harness::free_ports` (or a sandbox's own port-0 bind), files
//!    go in a `tempfile` directory.
//! 5. A suite that cannot follow 4. gets its own binary: `tests/<name>.rs` with
//!    `#[path = "it/harness/mod.rs"] mod harness;`, a `[[test]]` entry in Cargo.toml (the
//!    package sets `autotests = false`, so a file in `tests/` is not built by itself) and a
//!    comment saying why. Today that is only `tests/reload_sighup.rs`: SIGHUP reaches every
//!    gateway in the process. (`layout` fails for a file in `tests/` or `tests/it/` that
//!    nothing builds.)

// Test code fails loudly: a broken fixture or a wrong answer is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod harness;

mod access_log;
mod api_caac;
mod api_chatcaptain;
mod api_libredesk;
mod api_libredesk_tls;
mod api_llamadapro;
mod attachments;
mod cache;
mod cli;
mod cluster;
mod cross_vendor;
mod docs;
mod events;
mod http_protocol;
mod jwt_keys;
mod layout;
mod passthrough;
mod prometheus;
mod reload;
mod requests;
mod resilience;
mod sandbox_libredesk;
mod tls;
mod tokens;
mod vendor_answers;
