//! The test layout keeps every suite running: Cargo.toml sets `autotests = false`, so a file in
//! `tests/` that no `[[test]]` target names, or a file in `tests/it/` that `main.rs` does not
//! declare as a module, would be silently never built nor run.

use std::collections::BTreeSet;

use crate::harness::repo_path;

/// The `.rs` files directly in `dir` (relative to the repository), by file stem.
fn rust_files(dir: &str) -> BTreeSet<String> {
    std::fs::read_dir(repo_path(dir))
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "rs"))
        .map(|path| {
            path.file_stem()
                .expect("stem")
                .to_string_lossy()
                .into_owned()
        })
        .collect()
}

#[test]
fn every_file_in_tests_is_a_test_target() {
    let manifest = std::fs::read_to_string(repo_path("Cargo.toml")).expect("Cargo.toml");
    assert!(
        manifest.lines().any(|l| l.trim() == "autotests = false"),
        "Cargo.toml no longer sets autotests = false: update this test and tests/it/main.rs"
    );
    let paths: BTreeSet<&str> = manifest
        .lines()
        .filter_map(|l| l.trim().strip_prefix("path = \"tests/"))
        .filter_map(|rest| rest.strip_suffix('"'))
        .collect();
    assert!(paths.contains("it/main.rs"), "{paths:?}");
    for stem in rust_files("tests") {
        let file = format!("{stem}.rs");
        assert!(
            paths.contains(file.as_str()),
            "tests/{file} is built by no [[test]] target in Cargo.toml: make it a module of \
             tests/it (see tests/it/main.rs), or give it a [[test]] entry saying why it needs \
             its own process"
        );
    }
}

#[test]
fn every_file_in_tests_it_is_a_module() {
    let main = std::fs::read_to_string(repo_path("tests/it/main.rs")).expect("main.rs");
    let declared: BTreeSet<&str> = main
        .lines()
        .filter_map(|l| l.strip_prefix("mod "))
        .filter_map(|rest| rest.strip_suffix(';'))
        .collect();
    let mut files = rust_files("tests/it");
    files.remove("main");
    for entry in std::fs::read_dir(repo_path("tests/it")).expect("tests/it") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            files.insert(
                path.file_name()
                    .expect("name")
                    .to_string_lossy()
                    .into_owned(),
            );
        }
    }
    for module in &files {
        assert!(
            declared.contains(module.as_str()),
            "tests/it/{module} is not declared in tests/it/main.rs: add `mod {module};`"
        );
    }
    assert!(
        files.contains("harness") && files.contains("layout"),
        "{files:?}"
    );
}
