//! Adapter translation benchmark (issue 11): one 30-item vendor list answer → the normalized
//! list, per vendor, through `switchboard::vendors::bench_support` (the adapters' own
//! translation functions). Goal: ≤ 50 µs each.
//!
//!     cargo bench --bench adapters               # all cases
//!     cargo bench --bench adapters -- libredesk  # cases whose name contains "libredesk"
//!
//! The bodies are `bench/bodies/` (built from `tests/fixtures/` by `bench/make-bodies.sh`;
//! the Libredesk conversations page is the one `scripts/bench.sh`'s static vendor serves).
//! Two groups:
//! - `translate`: vendor bytes → `Output::List` (parse, map every item, next page);
//! - `translate_serialize`: the same, then the `data` array serialized as JSON, which is most
//!   of the CPU work a list request costs the gateway apart from I/O.
//!
//! CAAC has no list call: its `contacts.list` is a lookup answering one member, so its case
//! translates 30 lookup answers, one after the other (the same per-item work).
//!
//! Under `cargo test --all-targets` every case runs once, as a smoke test.
//!
//! The bench runs on mimalloc, the allocator of the `switchboard` binary (`src/main.rs`), so
//! its figures are the shipped gateway's.

// Test helpers fail loudly: a broken fixture is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use serde_json::Value;
use switchboard::api::model::{Handle, HandleChannel};
use switchboard::api::request::{Output, Resource};
use switchboard::api::ApiError;
use switchboard::vendors::bench_support as vendors;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Items per list answer.
const ITEMS: usize = 30;

fn body(path: &str) -> Bytes {
    let path = format!("{}/bench/bodies/{path}", env!("CARGO_MANIFEST_DIR"));
    match std::fs::read(&path) {
        Ok(bytes) => Bytes::from(bytes),
        Err(e) => panic!("{path}: {e} (regenerate with bench/make-bodies.sh)"),
    }
}

/// One benchmark case: a name and the translation it runs.
struct Case {
    name: &'static str,
    run: Box<dyn Fn() -> Result<Vec<Resource>, ApiError>>,
}

fn items(output: Result<Output, ApiError>) -> Result<Vec<Resource>, ApiError> {
    match output? {
        Output::List { data, .. } => Ok(data),
        Output::Found(_) | Output::Created(_) | Output::Deleted => {
            panic!("a list translation answered something else")
        }
    }
}

fn cases() -> Vec<Case> {
    let limit = ITEMS as u32;
    let libredesk_conversations = body("libredesk/conversations_page.json");
    let libredesk_contacts = body("libredesk/contacts_page.json");
    let chatcaptain_conversations = body("chatcaptain/conversations.json");
    let chatcaptain_contacts = body("chatcaptain/contacts_page.json");
    let llamadapro_contacts = body("llamadapro/contacts_page.json");
    let members: Vec<Value> = match serde_json::from_slice(&body("caac/members.json")) {
        Ok(members) => members,
        Err(e) => panic!("bench/bodies/caac/members.json: {e}"),
    };
    // One lookup answer per member, each looked up by the member's own LINE uid.
    let caac_lookups: Vec<(Bytes, Handle)> = members
        .iter()
        .map(|member| {
            let handle = Handle {
                channel: HandleChannel::Line,
                value: member["external_member_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            };
            let bytes = serde_json::to_vec(member).unwrap_or_default();
            (Bytes::from(bytes), handle)
        })
        .collect();
    vec![
        Case {
            name: "libredesk/conversations.list",
            run: Box::new(move || {
                items(vendors::libredesk_conversations(
                    &libredesk_conversations,
                    limit,
                ))
            }),
        },
        Case {
            name: "libredesk/contacts.list",
            run: Box::new(move || items(vendors::libredesk_contacts(&libredesk_contacts, limit))),
        },
        Case {
            name: "chatcaptain/conversations.list",
            run: Box::new(move || {
                items(vendors::chatcaptain_conversations(
                    &chatcaptain_conversations,
                    limit,
                ))
            }),
        },
        Case {
            name: "chatcaptain/contacts.list",
            run: Box::new(move || {
                items(vendors::chatcaptain_contacts(&chatcaptain_contacts, limit))
            }),
        },
        Case {
            name: "llamadapro/contacts.list",
            run: Box::new(move || items(vendors::llamadapro_contacts(&llamadapro_contacts))),
        },
        Case {
            name: "caac/contacts.lookup_x30",
            run: Box::new(move || {
                let mut all = Vec::with_capacity(ITEMS);
                for (bytes, handle) in &caac_lookups {
                    all.extend(items(vendors::caac_contact_lookup(bytes, 1201, handle))?);
                }
                Ok(all)
            }),
        },
    ]
}

/// A benchmark of a translation that fails or comes up short would measure the wrong thing.
fn checked(cases: Vec<Case>) -> Vec<Case> {
    for case in &cases {
        match (case.run)() {
            Ok(data) if data.len() == ITEMS => {}
            Ok(data) => panic!("{}: {} items, want {ITEMS}", case.name, data.len()),
            Err(e) => panic!("{}: {e:?}", case.name),
        }
    }
    cases
}

fn adapters(c: &mut Criterion) {
    let cases = checked(cases());

    let mut group = c.benchmark_group("translate");
    group.throughput(Throughput::Elements(ITEMS as u64));
    for case in &cases {
        group.bench_function(case.name, |b| b.iter(|| black_box((case.run)())));
    }
    group.finish();

    let mut group = c.benchmark_group("translate_serialize");
    group.throughput(Throughput::Elements(ITEMS as u64));
    for case in &cases {
        group.bench_function(case.name, |b| {
            b.iter(|| {
                let data = (case.run)().unwrap_or_default();
                black_box(serde_json::to_vec(&data).unwrap_or_default())
            })
        });
    }
    group.finish();
}

/// Short runs by default (the whole bench takes about a minute); criterion's own flags
/// (`--measurement-time`, `--warm-up-time`, `--sample-size`) override them.
fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50)
}

criterion_group! {
    name = benches;
    config = config();
    targets = adapters
}
criterion_main!(benches);
