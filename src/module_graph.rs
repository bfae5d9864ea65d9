//! Checks that read `src/`. The top-level modules form layers: no module imports one that
//! imports it back, directly or through others (fails naming the circle). And production code
//! holds no `unwrap()` or `expect(` but those that cannot fail, each saying why on its line
//! (`// ok: …`): anything else is a panic waiting for bad input (fails naming each place).
//!
//! It looks at production code: `#[cfg(test)]` items and test-only files are left out (a test
//! may drive a module from above — an adapter's tests run against a sandbox). Doc comments
//! are not imports.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Files that hold only test code.
const TEST_FILES: &[&str] = &[
    "tests.rs",
    "test_support.rs",
    "test_redis.rs",
    "test_server.rs",
    "module_graph.rs",
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push(path);
        }
    }
}

/// The text without `#[cfg(test)]` items (a `mod x;` line, or a braced item) and comment
/// lines, each left as an empty line: a line keeps its number.
fn production_code(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i].trim();
        if line.starts_with("#[cfg(test)]") || line.starts_with("#[cfg(all(test") {
            let mut j = i + 1;
            while j < lines.len() && lines[j].trim().starts_with(['#', '/']) {
                j += 1;
            }
            if j < lines.len() && lines[j].trim_end().ends_with(';') {
                j += 1;
                out.extend(std::iter::repeat_n('\n', j - i));
                i = j;
                continue;
            }
            let (mut depth, mut opened) = (0i64, false);
            while j < lines.len() {
                let opens = lines[j].matches('{').count() as i64;
                depth += opens - lines[j].matches('}').count() as i64;
                opened |= opens > 0;
                j += 1;
                if opened && depth <= 0 {
                    break;
                }
            }
            out.extend(std::iter::repeat_n('\n', j - i));
            i = j;
            continue;
        }
        if !line.starts_with("//") {
            out.push_str(lines[i]);
        }
        out.push('\n');
        i += 1;
    }
    out
}

/// Top-level module → the top-level modules its production code names (`crate::x`).
fn graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut modules: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for entry in std::fs::read_dir(src).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            let mut files = Vec::new();
            rust_files(&path, &mut files);
            modules.entry(name).or_default().extend(files);
        } else if path.extension().is_some_and(|x| x == "rs")
            && !["lib", "main", "module_graph"].contains(&name.as_str())
        {
            modules.entry(name).or_default().push(path);
        }
    }
    let names: BTreeSet<String> = modules.keys().cloned().collect();
    let mut edges = BTreeMap::new();
    for (module, files) in &modules {
        let mut uses = BTreeSet::new();
        for file in files {
            let file_name = file.file_name().unwrap().to_string_lossy();
            if TEST_FILES.contains(&file_name.as_ref()) {
                continue;
            }
            let code = production_code(&std::fs::read_to_string(file).unwrap());
            for (at, _) in code.match_indices("crate::") {
                let rest = &code[at + "crate::".len()..];
                let targets: Vec<&str> = match rest.strip_prefix('{') {
                    Some(group) => group
                        .split('}')
                        .next()
                        .unwrap_or_default()
                        .split(',')
                        .map(|part| part.trim().split("::").next().unwrap_or_default())
                        .collect(),
                    None => vec![rest
                        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                        .next()
                        .unwrap_or_default()],
                };
                for target in targets {
                    if target != module && names.contains(target) {
                        uses.insert(target.to_owned());
                    }
                }
            }
        }
        edges.insert(module.clone(), uses);
    }
    edges
}

/// A circle through `start`, if there is one (depth-first search).
fn circle(
    edges: &BTreeMap<String, BTreeSet<String>>,
    start: &str,
    at: &str,
    path: &mut Vec<String>,
) -> Option<Vec<String>> {
    for next in &edges[at] {
        if next == start {
            let mut found = path.clone();
            found.push(start.to_owned());
            return Some(found);
        }
        if !path.contains(next) {
            path.push(next.clone());
            if let Some(found) = circle(edges, start, next, path) {
                return Some(found);
            }
            path.pop();
        }
    }
    None
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    let edges = graph(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    assert!(edges.contains_key("gateway") && edges["gateway"].contains("vendors"));
    for module in edges.keys() {
        let found = circle(&edges, module, module, &mut vec![module.clone()]);
        assert!(
            found.is_none(),
            "import circle: {}",
            found.unwrap().join(" -> ")
        );
    }
}

/// `file:line: code` of every `unwrap()` or `expect(` in `code` without an `// ok:` reason.
fn unexplained_panics(file: &str, code: &str) -> Vec<String> {
    code.lines()
        .enumerate()
        .filter(|(_, line)| {
            (line.contains(".unwrap()") || line.contains(".expect(")) && !line.contains("// ok:")
        })
        .map(|(n, line)| format!("{file}:{}: {}", n + 1, line.trim()))
        .collect()
}

#[test]
fn production_code_unwraps_only_what_cannot_fail_and_says_why() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    let mut found = Vec::new();
    for file in &files {
        let name = file.file_name().unwrap().to_string_lossy();
        if TEST_FILES.contains(&name.as_ref()) {
            continue;
        }
        let code = production_code(&std::fs::read_to_string(file).unwrap());
        let shown = file
            .strip_prefix(root)
            .unwrap_or(file)
            .display()
            .to_string();
        found.extend(unexplained_panics(&shown, &code));
    }
    assert!(
        found.is_empty(),
        "unwrap()/expect( in production code without `// ok:` saying why it cannot fail:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_panic_check_sees_unexplained_unwraps_only() {
    let code = production_code(
        "fn f() { a.unwrap() }\nfn g() { b.expect(\"x\") }\nfn h() { c.unwrap() } // ok: never empty\nfn i() { d.unwrap_or_default() }\n#[cfg(test)]\nmod tests {\n    fn t() { e.unwrap() }\n}\n",
    );
    let found = unexplained_panics("f.rs", &code);
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(found[0].contains("a.unwrap()") && found[1].contains("b.expect("));
}

#[test]
fn the_reader_sees_imports_and_skips_tests_and_comments() {
    let code = production_code(
        "use crate::api::X;\n// crate::gateway\n#[cfg(test)]\nmod t;\n#[cfg(test)]\nmod tests {\n    use crate::sandbox::Y;\n}\nfn f() { crate::upstream::g() }\n",
    );
    assert!(code.contains("crate::api") && code.contains("crate::upstream"));
    assert!(!code.contains("crate::gateway") && !code.contains("crate::sandbox"));
}
