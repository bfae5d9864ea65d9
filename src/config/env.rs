//! `${ENV_VAR}` interpolation for config values.
//!
//! Secrets never live in config files: a value may reference `${NAME}` (required) or
//! `${NAME:-default}` (with a fallback). Interpolation runs on the parsed YAML tree, never on
//! the raw text, so a variable's content can't change the document's structure.

use std::collections::HashMap;

use serde_yaml::Value;

/// Where `${NAME}` is looked up: the process environment plus an overlay (the demo uses the
/// overlay to hand sandbox addresses to its own config without touching the real env).
#[derive(Debug, Clone, Default)]
pub struct Env {
    overlay: HashMap<String, String>,
}

impl Env {
    pub fn process() -> Self {
        Env::default()
    }

    pub fn with(mut self, name: &str, value: impl Into<String>) -> Self {
        self.overlay.insert(name.to_owned(), value.into());
        self
    }

    pub fn get(&self, name: &str) -> Option<String> {
        self.overlay
            .get(name)
            .cloned()
            .or_else(|| std::env::var(name).ok())
    }
}

/// Replace every `${…}` in every string of `value`. On failure, returns the key path of the
/// offending value and the reason.
pub fn interpolate(
    value: &mut Value,
    env: &Env,
    path: &mut Vec<String>,
) -> Result<(), (String, String)> {
    match value {
        Value::String(s) if s.contains("${") => {
            *s = expand(s, env).map_err(|reason| (path.join("."), reason))?;
        }
        Value::Mapping(map) => {
            for (k, v) in map.iter_mut() {
                path.push(key_name(k));
                interpolate(v, env, path)?;
                path.pop();
            }
        }
        Value::Sequence(seq) => {
            for (i, v) in seq.iter_mut().enumerate() {
                path.push(i.to_string());
                interpolate(v, env, path)?;
                path.pop();
            }
        }
        Value::Tagged(t) => interpolate(&mut t.value, env, path)?,
        _ => {}
    }
    Ok(())
}

fn key_name(k: &Value) -> String {
    match k {
        Value::String(s) => s.clone(),
        other => serde_yaml::to_string(other)
            .unwrap_or_default()
            .trim()
            .to_owned(),
    }
}

fn expand(s: &str, env: &Env) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| "unterminated ${…} reference".to_owned())?;
        let inner = &after[..end];
        let (name, default) = match inner.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (inner, None),
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("invalid environment variable name {name:?}"));
        }
        match (env.get(name), default) {
            (Some(v), _) if !v.is_empty() => out.push_str(&v),
            (_, Some(d)) => out.push_str(d),
            (Some(_), None) => {
                return Err(format!("environment variable {name} is empty"));
            }
            (None, None) => {
                return Err(format!(
                    "environment variable {name} is not set (export it, or write ${{{name}:-default}})"
                ));
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(yaml: &str, env: &Env) -> Result<Value, (String, String)> {
        let mut v: Value = serde_yaml::from_str(yaml).unwrap();
        interpolate(&mut v, env, &mut Vec::new())?;
        Ok(v)
    }

    #[test]
    fn expands_required_and_defaulted_references() {
        let env = Env::default().with("SB_TEST_KEY", "s3cret");
        let v = run(
            "a: {b: 'k=${SB_TEST_KEY}', c: '${SB_TEST_NOPE:-fallback}'}",
            &env,
        )
        .unwrap();
        assert_eq!(v["a"]["b"], Value::from("k=s3cret"));
        assert_eq!(v["a"]["c"], Value::from("fallback"));
    }

    #[test]
    fn missing_variable_names_the_key() {
        let err = run("creds: [{key: '${SB_TEST_MISSING_VAR}'}]", &Env::default()).unwrap_err();
        assert_eq!(err.0, "creds.0.key");
        assert!(err.1.contains("SB_TEST_MISSING_VAR"), "{}", err.1);
    }

    #[test]
    fn malformed_references_are_errors() {
        assert!(run("a: '${UNCLOSED'", &Env::default()).is_err());
        assert!(run("a: '${bad name}'", &Env::default()).is_err());
    }
}
