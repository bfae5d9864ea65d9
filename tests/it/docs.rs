//! The repository documents itself: the error codes of the contract (`docs/api.md`), of the
//! OpenAPI document and of the gateway are the same set with the same statuses; the vendor
//! documents the tests use live inside the repository; nothing reads or links the developers'
//! folder outside it (a fresh clone has only what is in the repository).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use switchboard::api::ErrorCode;

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// `code → status` from the rows of a markdown error table (`| \`code\` | 404 | … |`).
fn table_codes(markdown: &str) -> BTreeMap<String, u16> {
    markdown
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let code = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
            let status = cells.get(2)?.parse().ok()?;
            Some((code.to_owned(), status))
        })
        .collect()
}

fn gateway_codes() -> BTreeMap<String, u16> {
    ErrorCode::ALL
        .iter()
        .map(|c| (c.as_str().to_owned(), c.status()))
        .collect()
}

#[test]
fn the_contract_lists_every_error_code_the_gateway_answers() {
    let api = std::fs::read_to_string(repo("docs/api.md")).expect("docs/api.md");
    let errors = &api[api.find("## Errors").expect("an Errors section")..];
    let documented = table_codes(errors);
    // The contract may be ahead of the gateway (codes of features still to come), never behind.
    for (code, status) in gateway_codes() {
        assert_eq!(
            documented.get(&code),
            Some(&status),
            "docs/api.md does not list `{code}` with status {status}"
        );
    }
}

#[test]
fn the_openapi_document_lists_the_same_error_codes() {
    let doc: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo("openapi/switchboard.openapi.json")).expect("openapi"),
    )
    .expect("JSON");
    let enumerated: std::collections::BTreeSet<String> = doc["components"]["schemas"]["Problem"]
        ["properties"]["code"]["enum"]
        .as_array()
        .expect("code enum")
        .iter()
        .map(|c| c.as_str().expect("code").to_owned())
        .collect();
    let gateway = gateway_codes();
    assert_eq!(
        enumerated,
        gateway.keys().cloned().collect(),
        "Problem.code enum vs ErrorCode"
    );
    let description = doc["info"]["description"].as_str().expect("description");
    let errors = &description[description.find("## Errors").expect("an Errors section")..];
    assert_eq!(
        table_codes(errors),
        gateway,
        "the OpenAPI error table vs ErrorCode"
    );
    // Every problem response the operations reference says its code and status.
    for (name, response) in doc["components"]["responses"]
        .as_object()
        .expect("responses")
    {
        let Some(example) = response["content"]["application/problem+json"]["example"].as_object()
        else {
            continue;
        };
        let code = example["code"].as_str().expect("code");
        assert_eq!(
            Some(&(example["status"].as_u64().expect("status") as u16)),
            gateway.get(code),
            "response {name}"
        );
    }
}

#[test]
fn the_vendor_documents_the_tests_use_are_in_the_repository() {
    let libredesk: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo("docs/vendors/libredesk.openapi.json"))
            .expect("docs/vendors/libredesk.openapi.json"),
    )
    .expect("JSON");
    assert!(libredesk["openapi"]
        .as_str()
        .is_some_and(|v| v.starts_with("3.")));
    assert!(repo("docs/vendors/README.md").is_file());
    assert!(repo("docs/architecture.md").is_file());
}

#[test]
fn nothing_reads_or_links_outside_the_repository() {
    // Built at run time, so this file does not match itself.
    let forbidden = [format!("..{}shared", '/'), format!("/work{}shared", '/')];
    let mut hits = Vec::new();
    let mut stack = vec![repo("")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read_dir") {
            let path = entry.expect("entry").path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            if path.is_dir() {
                if !matches!(name, "target" | ".git") {
                    stack.push(path);
                }
                continue;
            }
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue; // binary
            };
            for needle in &forbidden {
                if text.contains(needle.as_str()) {
                    hits.push(format!("{}: {needle}", path.display()));
                }
            }
        }
    }
    assert!(hits.is_empty(), "{hits:#?}");
}
