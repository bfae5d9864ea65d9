//! The `switchboard` command as a user runs it: check, token, demo (whose printed curl lines
//! must work when pasted).

// Runs against the vendor sandboxes: needs the `sandbox` feature (on by default).
#![cfg(feature = "sandbox")]
// Test helpers fail loudly: a broken fixture is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, repo_path};

const BIN: &str = env!("CARGO_BIN_EXE_switchboard");

#[test]
fn check_accepts_the_shipped_configs() {
    let demo = Command::new(BIN)
        .args(["check", "--config"])
        .arg(repo_path("config/demo.yaml"))
        .output()
        .expect("runs");
    assert!(
        demo.status.success(),
        "{}",
        String::from_utf8_lossy(&demo.stderr)
    );
    let production = Command::new(BIN)
        .args(["check", "--config"])
        .arg(repo_path("config/switchboard.yaml"))
        .env("SWITCHBOARD_JWT_SECRET", "check-secret-0123456789abcdef")
        .env("SWITCHBOARD_CURSOR_SECRET", "check-cursor-0123456789")
        .env("ACME_LIBREDESK_API_KEY", "k")
        .env("ACME_LIBREDESK_API_SECRET", "s")
        .output()
        .expect("runs");
    assert!(
        production.status.success(),
        "{}",
        String::from_utf8_lossy(&production.stderr)
    );
}

#[test]
fn check_names_file_key_and_reason() {
    let production = Command::new(BIN)
        .args(["check", "--config"])
        .arg(repo_path("config/switchboard.yaml"))
        .env_remove("SWITCHBOARD_JWT_SECRET")
        .output()
        .expect("runs");
    assert!(!production.status.success());
    let stderr = String::from_utf8_lossy(&production.stderr);
    assert!(
        stderr.contains(
            "switchboard.yaml: jwt.secret: environment variable SWITCHBOARD_JWT_SECRET is not set"
        ),
        "{stderr}"
    );

    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("bad.yaml"), "listen: {api: nowhere, admin: 127.0.0.1:1}\nroutes_dir: r\nconnections: c.yaml\njwt: {algorithm: HS256, secret: 0123456789abcdef0}\n").expect("write");
    let bad = Command::new(BIN)
        .args(["check", "--config"])
        .arg(dir.path().join("bad.yaml"))
        .output()
        .expect("runs");
    assert!(!bad.status.success());
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        stderr.contains("bad.yaml: listen.api: \"nowhere\" is not an address"),
        "{stderr}"
    );
}

#[test]
fn token_mints_a_token_the_config_accepts() {
    let out = Command::new(BIN)
        .args(["token", "--config"])
        .arg(repo_path("config/demo.yaml"))
        .args([
            "--tenant",
            "demo",
            "--scope",
            "contacts:read messages:write",
            "--ttl",
            "30m",
        ])
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).expect("utf8");
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.set_audience(&["switchboard"]);
    let claims = jsonwebtoken::decode::<serde_json::Value>(
        token.trim(),
        &jsonwebtoken::DecodingKey::from_secret(b"switchboard-demo-secret-not-for-production"),
        &validation,
    )
    .expect("valid token")
    .claims;
    assert_eq!(claims["tenant"], "demo");
    assert_eq!(claims["scope"], "contacts:read messages:write");
    let ttl = claims["exp"].as_u64().expect("exp") - claims["iat"].as_u64().expect("iat");
    assert_eq!(ttl, 1800);

    let bad_ttl = Command::new(BIN)
        .args(["token", "--config"])
        .arg(repo_path("config/demo.yaml"))
        .args(["--tenant", "demo", "--scope", "x", "--ttl", "soon"])
        .output()
        .expect("runs");
    assert!(!bad_ttl.status.success());
}

struct Demo(Child);

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn demo_prints_curl_lines_that_work() {
    demo_from(&repo_path(""), "config/demo.yaml");
}

/// Outside the repository the demo runs on its embedded config.
#[test]
fn demo_runs_from_any_folder_on_the_embedded_config() {
    let dir = tempfile::tempdir().expect("tempdir");
    demo_from(dir.path(), "switchboard-demo-");
}

fn demo_from(cwd: &std::path::Path, config_hint: &str) {
    let (api, admin) = (free_port(), free_port());
    let mut child = Command::new(BIN)
        .current_dir(cwd)
        .args([
            "demo",
            "--api",
            &format!("127.0.0.1:{api}"),
            "--admin",
            &format!("127.0.0.1:{admin}"),
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("demo starts");
    let stdout = child.stdout.take().expect("stdout");
    let demo = Demo(child);
    let mut lines = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("line");
        let last = line.starts_with("Ctrl-C");
        lines.push(line);
        if last {
            break;
        }
    }
    assert!(
        lines.first().is_some_and(|l| l.contains(config_hint)),
        "{lines:#?}"
    );
    let token_line = lines
        .iter()
        .find(|l| l.starts_with("export TOKEN="))
        .expect("token line");
    let token = token_line.trim_start_matches("export TOKEN=").to_owned();
    let curls: Vec<&String> = lines.iter().filter(|l| l.starts_with("curl ")).collect();
    assert!(curls.len() >= 3, "{lines:#?}");

    // wait for the listeners
    let deadline = Instant::now() + Duration::from_secs(20);
    while Command::new("curl")
        .args(["-sf", &format!("http://127.0.0.1:{admin}/readyz")])
        .output()
        .map(|o| !o.status.success())
        .unwrap_or(true)
    {
        assert!(Instant::now() < deadline, "demo did not become ready");
        std::thread::sleep(Duration::from_millis(50));
    }

    let mut vendors_written = std::collections::BTreeSet::new();
    let mut vendors_read = std::collections::BTreeSet::new();
    for curl in curls {
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!("{curl} -w '\\n%{{http_code}}'"))
            .env("TOKEN", &token)
            .output()
            .expect("curl runs");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let (body, status) = text.rsplit_once('\n').expect("status line");
        let status: u16 = status.trim().parse().expect("status");
        assert!((200..300).contains(&status), "{curl}\n→ {status} {body}");
        let json: serde_json::Value =
            serde_json::from_str(body).unwrap_or_else(|e| panic!("{curl}: {e}: {body}"));
        let vendor = json["vendor"]
            .as_str()
            .or_else(|| json["data"][0]["vendor"].as_str())
            .map(str::to_owned);
        if let Some(vendor) = vendor {
            if curl.contains(" -X ") {
                vendors_written.insert(vendor);
            } else {
                vendors_read.insert(vendor);
            }
        }
    }
    // every demo connection has at least one working read and one working write
    let caps = Command::new("curl")
        .args([
            "-s",
            &format!("http://127.0.0.1:{api}/v1/capabilities"),
            "-H",
            &format!("Authorization: Bearer {token}"),
        ])
        .output()
        .expect("curl");
    let caps: serde_json::Value = serde_json::from_slice(&caps.stdout).expect("capabilities");
    for conn in caps["data"].as_array().expect("data") {
        let vendor = conn["vendor"].as_str().expect("vendor").to_owned();
        assert!(
            vendors_read.contains(&vendor),
            "no working read for {vendor}"
        );
        assert!(
            vendors_written.contains(&vendor),
            "no working write for {vendor}"
        );
    }
    drop(demo);
}
