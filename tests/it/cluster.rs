//! Several replicas on one Redis (issue 15): a real `redis-server` on a loopback port and three
//! real `switchboard run` processes with a `cluster:` block, in front of the Libredesk
//! sandbox. Covers cross-replica cache invalidation (a write and an admin purge), `/readyz`
//! and the metrics while Redis goes away and comes back, a replica that starts with Redis
//! down, and that the Redis URL's password shows nowhere. Every wait is a poll with a deadline.

#[path = "../../src/state/redis/test_server.rs"]
mod redis_server;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use redis_server::RedisServer;
use reqwest::Method;
use serde_json::{json, Value};

use crate::harness::*;
use switchboard::api::ids::{Kind, ObjectId};
use switchboard::sandbox::libredesk::seed;
use switchboard::sandbox::{Credentials, Sandbox};

const BIN: &str = env!("CARGO_BIN_EXE_switchboard");

/// Each deployment gets its own key prefix (several run against one server only by accident,
/// but then they must not see each other).
static DEPLOYMENT: AtomicU64 = AtomicU64::new(0);

/// One `switchboard run` process, killed on drop.
struct Replica {
    child: Mutex<Child>,
    api: String,
    admin: String,
    log: PathBuf,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let child = self.child.get_mut().unwrap_or_else(PoisonError::into_inner);
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Replica {
    /// Whether the process has ended (it failed to start, or crashed).
    fn exited(&self) -> bool {
        let mut child = self.child.lock().unwrap_or_else(PoisonError::into_inner);
        !matches!(child.try_wait(), Ok(None))
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// The sandbox, the config folder and three replicas.
struct Deployment {
    sandbox: Sandbox,
    /// Configs and logs; removed when the deployment is dropped.
    _dir: tempfile::TempDir,
    replicas: Vec<Replica>,
    http: reqwest::Client,
    token: String,
}

/// More YAML for a deployment: appended to the connections file (`{ld}`: the Libredesk
/// sandbox's URL) and to each replica's gateway file (`{i}`: the replica's index).
#[derive(Default)]
struct Extra {
    connections: String,
    gateway: String,
}

/// The `cluster:` block; the URL comes from the environment (`${SB_REDIS_URL}`), as a
/// production config does it.
fn cluster_block(prefix: &str) -> String {
    format!(
        "cluster:\n  redis_url: ${{SB_REDIS_URL}}\n  key_prefix: \"{prefix}\"\n  \
         connect_timeout_ms: 200\n  command_timeout_ms: 200\n  health_interval_ms: 100\n  \
         local_share: 0.34\n"
    )
}

impl Deployment {
    /// Start `replicas` gateways sharing the Redis at `redis_url`, and wait until each is
    /// ready and (when `wait_shared`) shares its state and hears the others.
    async fn start(redis_url: &str, replicas: usize, wait_shared: bool) -> Deployment {
        Self::start_with(redis_url, replicas, wait_shared, &Extra::default()).await
    }

    /// [`Deployment::start`] with more connections and gateway settings.
    async fn start_with(
        redis_url: &str,
        replicas: usize,
        wait_shared: bool,
        extra: &Extra,
    ) -> Deployment {
        let sandbox = Sandbox::start_libredesk(
            load_routes("libredesk"),
            Credentials {
                api_key: LD_KEY.into(),
                api_secret: LD_SECRET.into(),
            },
        )
        .await
        .expect("sandbox starts");
        let dir = tempfile::tempdir().expect("tempdir");
        let routes = dir.path().join("routes");
        std::fs::create_dir_all(&routes).expect("routes dir");
        std::fs::copy(
            repo_path("routes/libredesk.yaml"),
            routes.join("libredesk.yaml"),
        )
        .expect("routes");
        std::fs::write(
            dir.path().join("connections.yaml"),
            format!(
                "tenants:\n  acme:\n    support:\n      vendor: libredesk\n      base_url: {}\n      \
                 credentials: {{api_key: {LD_KEY}, api_secret: {LD_SECRET}}}\n      \
                 defaults: {{inbox_id: 1}}\n{}",
                sandbox.base_url(),
                extra.connections.replace("{ld}", &sandbox.base_url()),
            ),
        )
        .expect("connections");
        let prefix = format!(
            "it{}-{}:",
            std::process::id(),
            DEPLOYMENT.fetch_add(1, Ordering::Relaxed)
        );
        let mut started = Vec::new();
        for i in 0..replicas {
            let [api, admin] = free_ports();
            let config = dir.path().join(format!("replica{i}.yaml"));
            std::fs::write(
                &config,
                format!(
                    "listen:\n  api: 127.0.0.1:{api}\n  admin: 127.0.0.1:{admin}\nthreads: 1\n\
                     grace_period_seconds: 0\ngraceful_shutdown_timeout_seconds: 1\n\
                     routes_dir: routes\nconnections: connections.yaml\n\
                     jwt:\n  algorithm: HS256\n  secret: {SECRET}\n  audience: {AUDIENCE}\n\
                     cursor_secret: test-cursor-secret-0123456789\n\
                     log:\n  format: text\n  filter: info\n{}{}",
                    cluster_block(&prefix),
                    extra.gateway.replace("{i}", &i.to_string()),
                ),
            )
            .expect("config");
            let log = dir.path().join(format!("replica{i}.log"));
            let out = std::fs::File::create(&log).expect("log file");
            let child = Command::new(BIN)
                .arg("run")
                .arg("--config")
                .arg(&config)
                .arg("--upgrade-sock")
                .arg(dir.path().join(format!("upgrade{i}.sock")))
                .arg("--pid-file")
                .arg(dir.path().join(format!("replica{i}.pid")))
                .env("SB_REDIS_URL", redis_url)
                .env_remove("RUST_LOG")
                .stdin(Stdio::null())
                .stdout(out.try_clone().expect("log file"))
                .stderr(out)
                .spawn()
                .expect("switchboard runs");
            started.push(Replica {
                child: Mutex::new(child),
                api: format!("http://127.0.0.1:{api}"),
                admin: format!("http://127.0.0.1:{admin}"),
                log,
            });
        }
        let deployment = Deployment {
            sandbox,
            _dir: dir,
            replicas: started,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("client"),
            token: token_with("acme", ALL_SCOPES, json!({"aud": AUDIENCE})),
        };
        for i in 0..replicas {
            if wait_shared {
                deployment.wait_readyz(i, "shared replica", is_shared).await;
            } else {
                deployment.wait_readyz(i, "ready", |_| true).await;
            }
            deployment.wait_api(i).await;
        }
        deployment
    }

    /// Poll until replica `i`'s API listener accepts connections: `/readyz` answers from the
    /// admin listener, which can be up a moment before the API one.
    async fn wait_api(&self, i: usize) {
        let addr = self.replicas[i]
            .api
            .trim_start_matches("http://")
            .to_owned();
        let deadline = Instant::now() + Duration::from_secs(30);
        while tokio::net::TcpStream::connect(&addr).await.is_err() {
            assert!(
                Instant::now() < deadline,
                "replica {i}'s API listener never accepted a connection; log:\n{}",
                self.replicas[i].log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `/readyz` of replica `i`: its HTTP status and body (`None` while it does not answer).
    async fn readyz(&self, i: usize) -> Option<(u16, Value)> {
        let response = self
            .http
            .get(format!("{}/readyz", self.replicas[i].admin))
            .send()
            .await
            .ok()?;
        let status = response.status().as_u16();
        Some((status, response.json().await.ok()?))
    }

    /// Poll replica `i`'s `/readyz` until it answers 200 with a body that `check` accepts.
    async fn wait_readyz(&self, i: usize, what: &str, check: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some((200, body)) = self.readyz(i).await {
                if check(&body) {
                    return body;
                }
            }
            let exited = self.replicas[i].exited();
            assert!(
                Instant::now() < deadline && !exited,
                "replica {i} not {what} within 30 s; log:\n{}",
                self.replicas[i].log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn get(&self, i: usize, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.replicas[i].api))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("GET")
    }

    async fn send(&self, i: usize, method: Method, path: &str, body: Value) -> reqwest::Response {
        self.http
            .request(method, format!("{}{path}", self.replicas[i].api))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .expect("request")
    }

    async fn admin(&self, i: usize, method: Method, path: &str, body: Option<Value>) -> String {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.replicas[i].admin));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("admin");
        assert_eq!(response.status(), 200, "{path}");
        response.text().await.expect("admin body")
    }

    /// Read `path` on replica `i` until it is a cache hit (a miss first, then a hit).
    async fn cached_on(&self, i: usize, path: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let response = self.get(i, path).await;
            let hit = x_cache(&response).as_deref() == Some("hit");
            let body = expect_status(response, 200).await;
            if hit {
                return body;
            }
            assert!(Instant::now() < deadline, "replica {i} never cached {path}");
        }
    }

    /// Poll `path` on replica `i` until `check` accepts the answer; returns how long it took
    /// and the `X-Cache` of that answer.
    async fn until_on(
        &self,
        i: usize,
        path: &str,
        within: Duration,
        check: impl Fn(&Value) -> bool,
    ) -> (Duration, Option<String>) {
        let started = Instant::now();
        let deadline = started + within.max(Duration::from_secs(5));
        loop {
            let response = self.get(i, path).await;
            let cache = x_cache(&response);
            let body = expect_status(response, 200).await;
            if check(&body) {
                return (started.elapsed(), cache);
            }
            assert!(
                Instant::now() < deadline,
                "replica {i} still serves {body} for {path}"
            );
        }
    }

    /// Poll `path` on replica `i` until the cache misses (its entry was dropped).
    async fn until_miss(&self, i: usize, path: &str) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let response = self.get(i, path).await;
            if x_cache(&response).as_deref() == Some("miss") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "replica {i} kept its entry for {path}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn metric(&self, i: usize, name: &str) -> f64 {
        let text = self
            .http
            .get(format!("{}/metrics", self.replicas[i].admin))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics text");
        text.lines()
            .find_map(|line| {
                let (key, value) = line.rsplit_once(' ')?;
                (key == name).then(|| value.parse().ok())?
            })
            .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
    }
}

fn is_shared(body: &Value) -> bool {
    body["status"] == "ready" && body["cluster"] == "shared" && body["subscribed"] == true
}

fn is_degraded(body: &Value) -> bool {
    body["status"] == "degraded" && body["cluster"] == "degraded"
}

fn x_cache(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get("x-cache")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn conversation_path(uuid: &str) -> String {
    let id = ObjectId::new(Kind::Conversation, "acme", "support", vec![uuid.to_owned()]);
    format!("/v1/conversations/{}", id.encode())
}

fn contact_id(id: i64) -> String {
    ObjectId::new(Kind::Contact, "acme", "support", vec![id.to_string()]).encode()
}

/// The issue's bound: a write through A is visible on B within 100 ms.
const INVALIDATION_BOUND: Duration = Duration::from_millis(100);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_through_one_replica_invalidates_the_cached_reads_of_the_others() {
    let redis = RedisServer::start();
    let d = Deployment::start(&redis.url(), 3, true).await;
    let path = conversation_path(seed::CONVERSATION_OPEN_UUID);
    for i in 0..3 {
        assert_eq!(d.cached_on(i, &path).await["status"], "open");
    }
    let calls = d.sandbox.calls_to("conversations.get");

    let patched = d
        .send(0, Method::PATCH, &path, json!({"status": "resolved"}))
        .await;
    assert_eq!(expect_status(patched, 200).await["status"], "resolved");
    for i in [1, 2] {
        let (took, cache) = d
            .until_on(i, &path, INVALIDATION_BOUND, |b| b["status"] == "resolved")
            .await;
        assert!(
            took <= INVALIDATION_BOUND,
            "replica {i} served the stale read for {took:?}"
        );
        assert_eq!(cache.as_deref(), Some("miss"), "replica {i} refetched");
    }
    // Each replica refetched once (its own entry was dropped, not served past the write).
    assert!(d.sandbox.calls_to("conversations.get") >= calls + 2);
    assert!(
        d.metric(
            0,
            "switchboard_cluster_invalidations_total{direction=\"sent\"}"
        )
        .await
            >= 1.0
    );
    for i in [1, 2] {
        let received = d
            .metric(
                i,
                "switchboard_cluster_invalidations_total{direction=\"received\"}",
            )
            .await;
        assert!(received >= 1.0, "replica {i} received {received}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_purge_on_one_replica_purges_the_others() {
    let redis = RedisServer::start();
    let d = Deployment::start(&redis.url(), 3, true).await;
    let ada = contact_id(seed::CONTACT_ADA_ID);
    let path = format!("/v1/contacts/{ada}");
    for i in 0..3 {
        d.cached_on(i, &path).await;
    }
    d.admin(
        0,
        Method::POST,
        "/admin/cache/purge",
        Some(json!({"id": ada})),
    )
    .await;
    for i in [1, 2] {
        d.until_miss(i, &path).await;
    }
    // Purge everything through replica 2: replica 0's entry goes too.
    d.cached_on(0, &path).await;
    d.admin(2, Method::POST, "/admin/cache/purge", None).await;
    d.until_miss(0, &path).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_going_away_degrades_the_replicas_and_its_return_resumes_shared_state() {
    let mut redis = RedisServer::start();
    let d = Deployment::start(&redis.url(), 3, true).await;
    let path = conversation_path(seed::CONVERSATION_OPEN_UUID);
    for i in 0..3 {
        assert_eq!(d.metric(i, "switchboard_cluster_redis_up").await, 1.0);
        d.cached_on(i, &path).await;
    }

    redis.stop();
    for i in 0..3 {
        let body = d
            .wait_readyz(i, "degraded", |b| {
                is_degraded(b) && b["subscribed"] == false
            })
            .await;
        let reason = body["reason"].as_str().expect("a reason");
        assert!(reason.starts_with("redis "), "{body}");
        assert!(!reason.contains("127.0.0.1"), "no address: {body}");
        assert_eq!(d.metric(i, "switchboard_cluster_redis_up").await, 0.0);
        // The subscription is lost, so invalidations may be missed: the cache was flushed
        // (the entry's TTL is 15 s, far beyond this deadline).
        d.until_miss(i, &path).await;
    }
    // Traffic keeps flowing: reads and writes on every replica.
    for i in 0..3 {
        expect_status(d.get(i, &path).await, 200).await;
    }
    let patched = d
        .send(1, Method::PATCH, &path, json!({"status": "pending"}))
        .await;
    assert_eq!(expect_status(patched, 200).await["status"], "pending");
    // Replica 2 cached the conversation during the outage (the documented degradation: its
    // entry may be stale until it expires or the subscription resumes).
    d.cached_on(2, &path).await;

    redis.restart();
    for i in 0..3 {
        d.wait_readyz(i, "shared again", is_shared).await;
        assert_eq!(d.metric(i, "switchboard_cluster_redis_up").await, 1.0);
        assert!(
            d.metric(i, "switchboard_cluster_subscription_losses_total")
                .await
                >= 1.0
        );
    }
    // Resubscribed: what was cached during the outage is gone.
    let (_, cache) = d
        .until_on(2, &path, Duration::from_secs(5), |b| {
            b["status"] == "pending"
        })
        .await;
    assert_eq!(cache.as_deref(), Some("miss"));
    // Shared again: a write through one replica invalidates the others.
    for i in 0..3 {
        d.cached_on(i, &path).await;
    }
    let patched = d
        .send(2, Method::PATCH, &path, json!({"status": "open"}))
        .await;
    expect_status(patched, 200).await;
    for i in [0, 1] {
        let (took, _) = d
            .until_on(i, &path, INVALIDATION_BOUND, |b| b["status"] == "open")
            .await;
        assert!(took <= INVALIDATION_BOUND, "replica {i}: {took:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_starts_degraded_without_redis_and_never_shows_the_password() {
    // Nothing listens there: the replica starts degraded and serves.
    let closed = free_port();
    let url = format!("redis://admin:hunter2-secret@127.0.0.1:{closed}/0");
    let d = Deployment::start(&url, 1, false).await;
    let body = d.wait_readyz(0, "degraded", is_degraded).await;
    let path = conversation_path(seed::CONVERSATION_OPEN_UUID);
    expect_status(d.get(0, &path).await, 200).await;
    let config = d.admin(0, Method::GET, "/admin/config", None).await;
    let config: Value = serde_json::from_str(&config).expect("config JSON");
    assert_eq!(
        config["cluster"]["redis_url"],
        format!("redis://***@127.0.0.1:{closed}/0")
    );
    let metrics = d.admin(0, Method::GET, "/metrics", None).await;
    assert!(
        metrics.contains("switchboard_cluster_redis_up 0"),
        "{metrics}"
    );
    for (what, text) in [
        ("/readyz", body.to_string()),
        ("/admin/config", config.to_string()),
        ("/metrics", metrics),
        ("the log", d.replicas[0].log()),
    ] {
        assert!(
            !text.contains("hunter2"),
            "{what} shows the password: {text}"
        );
    }
    assert!(
        d.replicas[0].log().contains("redis unreachable"),
        "the log says it runs degraded:\n{}",
        d.replicas[0].log()
    );
}

#[test]
fn check_names_a_bad_cluster_block() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("routes")).expect("routes");
    std::fs::copy(
        repo_path("routes/libredesk.yaml"),
        dir.path().join("routes/libredesk.yaml"),
    )
    .expect("routes");
    std::fs::write(dir.path().join("c.yaml"), "tenants: {}\n").expect("connections");
    let check = |cluster: &str, env: &[(&str, &str)]| {
        let path = dir.path().join("gw.yaml");
        std::fs::write(
            &path,
            format!(
                "listen: {{api: 127.0.0.1:1, admin: 127.0.0.1:2}}\nroutes_dir: routes\n\
                 connections: c.yaml\njwt: {{algorithm: HS256, secret: {SECRET}}}\n{cluster}"
            ),
        )
        .expect("config");
        let mut command = Command::new(BIN);
        command.args(["check", "--config"]).arg(&path);
        for (k, v) in env {
            command.env(k, v);
        }
        let out = command.output().expect("runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, stderr) = check("cluster:\n  redis_url: ${SB_TEST_REDIS_URL_UNSET}\n", &[]);
    assert!(!ok);
    assert!(
        stderr.contains("gw.yaml: cluster.redis_url: environment variable SB_TEST_REDIS_URL_UNSET"),
        "{stderr}"
    );
    let (ok, stderr) = check(
        "cluster:\n  redis_url: ${SB_URL}\n",
        &[("SB_URL", "http://user:hunter2@redis:6379")],
    );
    assert!(!ok);
    assert!(
        stderr.contains("gw.yaml: cluster.redis_url: scheme"),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "{stderr}");
    let (ok, stderr) = check(
        "cluster:\n  redis_url: redis://redis:6379\n  local_share: 2\n",
        &[],
    );
    assert!(!ok);
    assert!(stderr.contains("gw.yaml: cluster.local_share:"), "{stderr}");
    let (ok, stderr) = check(
        "cluster:\n  redis_url: ${SB_URL}\n  local_share: 0.34\n",
        &[("SB_URL", "redis://:hunter2@redis:6379/0")],
    );
    assert!(ok, "{stderr}");
}

// ----- deploy/: the manifests' configs are real configs ----------------------------------------

/// The `data:` of a ConfigMap in `deploy/kubernetes/<file>`.
fn configmap_data(file: &str) -> std::collections::BTreeMap<String, String> {
    let text =
        std::fs::read_to_string(repo_path(&format!("deploy/kubernetes/{file}"))).expect("manifest");
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).expect("manifest YAML");
    assert_eq!(doc["kind"], "ConfigMap", "{file}");
    serde_yaml::from_value(doc["data"].clone()).expect("data: file name → content")
}

/// Lay `data` out in `dir` the way the kubelet mounts a ConfigMap volume: the files in a
/// timestamped folder, `..data` pointing at it, and each name a symlink through `..data`. A
/// second call is an update: a new folder, then `..data` swapped atomically (rename).
fn mount_configmap(
    dir: &std::path::Path,
    version: &str,
    data: &std::collections::BTreeMap<String, String>,
) {
    use std::os::unix::fs::symlink;
    let folder = format!("..{version}");
    std::fs::create_dir_all(dir.join(&folder)).expect("version folder");
    for (name, content) in data {
        std::fs::write(dir.join(&folder).join(name), content).expect("file");
    }
    symlink(&folder, dir.join("..data_tmp")).expect("..data_tmp");
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).expect("swap ..data");
    for name in data.keys() {
        if std::fs::symlink_metadata(dir.join(name)).is_err() {
            symlink(format!("..data/{name}"), dir.join(name)).expect("file link");
        }
    }
}

#[test]
fn the_routes_configmap_is_the_routes_folder() {
    let data = configmap_data("configmap-routes.yaml");
    let mut expected = std::collections::BTreeMap::new();
    for entry in std::fs::read_dir(repo_path("routes")).expect("routes") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        expected.insert(name, std::fs::read_to_string(&path).expect("routes file"));
    }
    assert_eq!(
        data, expected,
        "deploy/kubernetes/configmap-routes.yaml is stale: run scripts/deploy-routes.sh"
    );
}

/// The env the Deployment fills from its Secret, with made-up values.
const DEPLOY_ENV: &[(&str, &str)] = &[
    (
        "SWITCHBOARD_JWT_SECRET",
        "deploy-check-secret-0123456789abcdef",
    ),
    (
        "SWITCHBOARD_CURSOR_SECRET",
        "deploy-check-cursor-0123456789",
    ),
    (
        "SWITCHBOARD_REDIS_URL",
        "redis://:redis-password@redis:6379/0",
    ),
    ("ACME_LIBREDESK_API_KEY", "k"),
    ("ACME_LIBREDESK_API_SECRET", "s"),
];

/// `switchboard check` on a gateway file whose `routes_dir` is the container's mount path,
/// pointed at `routes` instead.
fn check_deploy_config(config: &str, connections: &str, routes: &std::path::Path) {
    let dir = tempfile::tempdir().expect("tempdir");
    assert!(config.contains("routes_dir: /etc/switchboard/routes\n"));
    let config = config.replace(
        "routes_dir: /etc/switchboard/routes\n",
        &format!("routes_dir: {}\n", routes.display()),
    );
    std::fs::write(dir.path().join("switchboard.yaml"), config).expect("config");
    std::fs::write(dir.path().join("connections.yaml"), connections).expect("connections");
    let mut command = Command::new(BIN);
    command
        .args(["check", "--config"])
        .arg(dir.path().join("switchboard.yaml"));
    for (k, v) in DEPLOY_ENV {
        command.env(k, v);
    }
    let out = command.output().expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_kubernetes_and_compose_configs_pass_switchboard_check() {
    let config = configmap_data("configmap-config.yaml");
    let routes = tempfile::tempdir().expect("tempdir");
    mount_configmap(
        routes.path(),
        "2026_01_01",
        &configmap_data("configmap-routes.yaml"),
    );
    check_deploy_config(
        &config["switchboard.yaml"],
        &config["connections.yaml"],
        routes.path(),
    );
    assert!(config["switchboard.yaml"].contains("redis_url: ${SWITCHBOARD_REDIS_URL}"));

    let compose = |name: &str| {
        std::fs::read_to_string(repo_path(&format!("deploy/compose/{name}"))).expect("compose file")
    };
    check_deploy_config(
        &compose("switchboard.yaml"),
        &compose("connections.yaml"),
        &repo_path("routes"),
    );
}

/// Routes mounted from a ConfigMap reload when Kubernetes swaps `..data`: the same swap done
/// on disk under a running replica.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_reloads_routes_when_the_configmap_swaps_its_data_link() {
    let redis = RedisServer::start();
    let d = Deployment::start(&redis.url(), 1, true).await;
    // Re-mount this replica's routes folder as a ConfigMap volume (same content), then update it.
    let routes = d._dir.path().join("routes");
    let mut data = std::collections::BTreeMap::new();
    data.insert(
        "libredesk.yaml".to_owned(),
        std::fs::read_to_string(routes.join("libredesk.yaml")).expect("routes"),
    );
    std::fs::remove_file(routes.join("libredesk.yaml")).expect("rm");
    mount_configmap(&routes, "v1", &data);
    let ada = format!("/v1/contacts/{}", contact_id(seed::CONTACT_ADA_ID));
    d.cached_on(0, &ada).await;
    let generation = d.wait_readyz(0, "ready", |_| true).await["generation"]
        .as_u64()
        .expect("generation");

    // The update stops caching contacts.get.
    let updated = data["libredesk.yaml"].replace("  contacts.get: 60\n", "");
    assert_ne!(updated, data["libredesk.yaml"]);
    data.insert("libredesk.yaml".to_owned(), updated);
    mount_configmap(&routes, "v2", &data);
    d.wait_readyz(0, "reloaded", |b| b["generation"].as_u64() > Some(1))
        .await;
    let after = d.wait_readyz(0, "ready", |_| true).await;
    assert!(after["generation"].as_u64() > Some(generation), "{after}");
    let response = d.get(0, &ada).await;
    assert_eq!(x_cache(&response), None, "contacts.get is no longer cached");
    expect_status(response, 200).await;
}

// ----- dashboards/: the cluster dashboard and alerts against a real Prometheus ------------------

/// Every panel of dashboards/switchboard-cluster.json has data for three replicas, and
/// `SwitchboardClusterDegraded` goes pending for each while Redis is stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_dashboard_and_alerts_against_a_real_prometheus() {
    use crate::prometheus::Prometheus;
    let mut redis = RedisServer::start();
    let d = Deployment::start(&redis.url(), 3, true).await;
    let prom_dir = tempfile::tempdir().expect("tempdir");
    let targets: Vec<String> = d
        .replicas
        .iter()
        .map(|r| format!("\"{}\"", r.admin.trim_start_matches("http://")))
        .collect();
    let config = prom_dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n  - {}\nscrape_configs:\n  - job_name: switchboard\n    \
             static_configs:\n      - targets: [{}]\n",
            repo_path("dashboards/alerts.yml").display(),
            targets.join(", ")
        ),
    )
    .expect("prometheus.yml");
    let mut prom = Prometheus::start(
        &config,
        &prom_dir.path().join("data"),
        prom_dir.path().join("prometheus.log"),
    );
    prom.wait_ready().await;
    prom.wait_for(
        "three replicas scraped",
        r#"up{job="switchboard"} == 1"#,
        |r| r.len() == 3,
    )
    .await
    .expect("scraped");

    // Traffic: a write (invalidations sent and received), then an outage and a return.
    let path = conversation_path(seed::CONVERSATION_OPEN_UUID);
    for i in 0..3 {
        d.cached_on(i, &path).await;
    }
    let patched = d
        .send(0, Method::PATCH, &path, json!({"status": "resolved"}))
        .await;
    expect_status(patched, 200).await;
    prom.wait_for(
        "invalidations received",
        r#"sum(switchboard_cluster_invalidations_total{direction="received"}) >= 2"#,
        |r| !r.is_empty(),
    )
    .await
    .expect("invalidations scraped");
    redis.stop();
    for i in 0..3 {
        d.wait_readyz(i, "degraded", is_degraded).await;
        expect_status(d.get(i, &path).await, 200).await;
    }
    prom.wait_for(
        "SwitchboardClusterDegraded pending on every replica",
        r#"ALERTS{alertname="SwitchboardClusterDegraded"}"#,
        |r| r.len() == 3,
    )
    .await
    .expect("the alert is active");
    redis.restart();
    for i in 0..3 {
        d.wait_readyz(i, "shared again", is_shared).await;
    }
    prom.wait_for(
        "redis up again everywhere",
        "min(switchboard_cluster_redis_up) == 1",
        |r| !r.is_empty(),
    )
    .await
    .expect("redis up scraped");

    let text = std::fs::read_to_string(repo_path("dashboards/switchboard-cluster.json"))
        .expect("dashboard");
    let dashboard: Value = serde_json::from_str(&text).expect("dashboard JSON");
    let mut checked = 0;
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"]
                .as_str()
                .expect("expr")
                .replace("$__rate_interval", "1m");
            assert!(!expr.contains('$'), "unsubstituted variable in {expr}");
            let result = prom
                .wait_for(&format!("panel {}", panel["title"]), &expr, |r| {
                    !r.is_empty()
                })
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            checked += 1;
            println!("ok   {} ({} series)", panel["title"], result.len());
        }
    }
    assert_eq!(checked, 6, "every panel target was queried");
    // The outage shows: every replica lost its subscription once.
    prom.wait_for(
        "subscription losses",
        "switchboard_cluster_subscription_losses_total >= 1",
        |r| r.len() == 3,
    )
    .await
    .expect("losses scraped");
}

#[test]
fn run_refuses_daemon_mode_with_a_cluster_block() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("routes")).expect("routes");
    std::fs::copy(
        repo_path("routes/libredesk.yaml"),
        dir.path().join("routes/libredesk.yaml"),
    )
    .expect("routes");
    std::fs::write(dir.path().join("c.yaml"), "tenants: {}\n").expect("connections");
    let [api, admin, closed] = free_ports();
    std::fs::write(
        dir.path().join("gw.yaml"),
        format!(
            "listen: {{api: 127.0.0.1:{api}, admin: 127.0.0.1:{admin}}}\nroutes_dir: routes\n\
             connections: c.yaml\njwt: {{algorithm: HS256, secret: {SECRET}}}\n\
             cluster:\n  redis_url: redis://127.0.0.1:{closed}\n  connect_timeout_ms: 100\n  \
             command_timeout_ms: 100\n"
        ),
    )
    .expect("config");
    let out = Command::new(BIN)
        .args(["run", "--daemon", "--config"])
        .arg(dir.path().join("gw.yaml"))
        .arg("--pid-file")
        .arg(dir.path().join("pid"))
        .arg("--upgrade-sock")
        .arg(dir.path().join("sock"))
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--daemon cannot be used with a cluster: block"),
        "{stderr}"
    );
}

// ----- resilience: shared idempotency records and tenant limits ------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_idempotency_key_sent_to_two_replicas_reaches_the_vendor_once() {
    let redis = RedisServer::start();
    let d = Deployment::start(&redis.url(), 3, true).await;
    let conversation = ObjectId::new(
        Kind::Conversation,
        "acme",
        "support",
        vec![seed::CONVERSATION_OPEN_UUID.to_owned()],
    )
    .encode();
    let body = json!({"conversation_id": conversation, "text": "once"});
    let send = |i: usize| {
        d.http
            .post(format!("{}/v1/messages", d.replicas[i].api))
            .bearer_auth(&d.token)
            .header("Idempotency-Key", "send-once-1")
            .json(&body)
            .send()
    };
    let first = send(0).await.expect("first");
    let first = expect_status(first, 201).await;
    let calls = d.sandbox.calls_to("messages.send");
    assert_eq!(calls, 1, "the first send reached the vendor");
    // The client's retry lands on another replica: replayed, not sent again.
    for i in [1, 2] {
        let again = send(i).await.expect("retry");
        assert_eq!(
            again
                .headers()
                .get("idempotent-replayed")
                .and_then(|v| v.to_str().ok()),
            Some("true"),
            "replica {i}"
        );
        assert_eq!(expect_status(again, 201).await, first);
    }
    assert_eq!(d.sandbox.calls_to("messages.send"), 1);

    // Without Redis no replica can know: a keyed request is refused, never a possible duplicate.
    let mut redis = redis;
    redis.stop();
    d.wait_readyz(1, "degraded", is_degraded).await;
    let refused = d
        .http
        .post(format!("{}/v1/messages", d.replicas[1].api))
        .bearer_auth(&d.token)
        .header("Idempotency-Key", "send-once-2")
        .json(&body)
        .send()
        .await
        .expect("request");
    assert_eq!(refused.status(), 503);
    assert_eq!(d.sandbox.calls_to("messages.send"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_limit_holds_across_three_replicas() {
    let redis = RedisServer::start();
    // 10 requests per second, a burst of 10: over 1 s of traffic the tenant gets ~20.
    let extra = Extra {
        connections: "rate_limits:\n  acme: {requests_per_second: 10, burst: 10}\n".to_owned(),
        gateway: String::new(),
    };
    let d = Deployment::start_with(&redis.url(), 3, true, &extra).await;
    let path = conversation_path(seed::CONVERSATION_OPEN_UUID);
    let started = Instant::now();
    let mut allowed = 0;
    let mut limited = 0;
    let mut n = 0;
    // Round robin over the replicas for one second.
    while started.elapsed() < Duration::from_secs(1) {
        let response = d.get(n % 3, &path).await;
        match response.status().as_u16() {
            200 => allowed += 1,
            429 => limited += 1,
            other => panic!("unexpected {other}"),
        }
        n += 1;
    }
    let elapsed = started.elapsed().as_secs_f64();
    // The shared GCRA allows the burst plus the rate over the elapsed time, whatever replica
    // answers: ±10 % (three separate limits would allow three times as much).
    let expected = 10.0 + 10.0 * elapsed;
    assert!(
        limited > 0,
        "the limit was reached ({allowed} allowed of {n})"
    );
    assert!(
        (allowed as f64) <= expected * 1.1 + 1.0 && (allowed as f64) >= expected * 0.9 - 1.0,
        "{allowed} allowed in {elapsed:.2} s, expected about {expected:.1}"
    );
}

// ----- events: one shared outbox, each event delivered once ---------------------------------

const LD_WEBHOOK_SECRET: &str = "libredesk-webhook-secret-0123";
const SUB_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// A loopback webhook subscriber that records every delivery's body and answers 204.
struct Subscriber {
    url: String,
    received: std::sync::Arc<Mutex<Vec<Value>>>,
    _task: tokio::task::JoinHandle<()>,
}

impl Subscriber {
    async fn start() -> Subscriber {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        let received = std::sync::Arc::new(Mutex::new(Vec::new()));
        let sink = received.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |body: bytes::Bytes| {
                let sink = sink.clone();
                async move {
                    let event: Value = serde_json::from_slice(&body).expect("an event");
                    sink.lock().expect("lock").push(event);
                    axum::http::StatusCode::NO_CONTENT
                }
            }),
        );
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("subscriber");
        });
        Subscriber {
            url,
            received,
            _task: task,
        }
    }

    fn ids(&self) -> Vec<String> {
        self.received
            .lock()
            .expect("lock")
            .iter()
            .map(|e| e["id"].as_str().expect("event id").to_owned())
            .collect()
    }
}

fn message_webhook(uuid: &str, text: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "event": "message.created",
        "timestamp": "2025-06-15T10:31:00Z",
        "payload": {
            "id": 986, "created_at": "2025-06-15T10:31:00Z", "updated_at": "2025-06-15T10:31:00Z",
            "uuid": uuid, "type": "incoming", "status": "received", "conversation_id": 1,
            "conversation_uuid": seed::CONVERSATION_OPEN_UUID,
            "content": format!("<p>{text}</p>"), "text_content": text, "content_type": "html",
            "private": false, "sender_id": 1, "sender_type": "contact", "meta": {}, "attachments": []
        }
    }))
    .expect("JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_is_delivered_once_although_three_replicas_run() {
    use switchboard::events::signing::{libredesk_signature, LibredeskSecret};
    let mut redis = RedisServer::start();
    let subscriber = Subscriber::start().await;
    let extra = Extra {
        connections: format!(
            "  hooked:\n    desk:\n      vendor: libredesk\n      base_url: {{ld}}\n      \
             credentials: {{api_key: {LD_KEY}, api_secret: {LD_SECRET}}}\n      \
             defaults: {{inbox_id: 1}}\n      webhook_secret: {LD_WEBHOOK_SECRET}\n\
             subscriptions:\n  hooked:\n    crm:\n      url: {}\n      secret: {SUB_SECRET}\n      \
             events: [\"*\"]\n",
            subscriber.url
        ),
        gateway: "events:\n  data_dir: data{i}\n  delivery:\n    first_retry_ms: 100\n".to_owned(),
    };
    let d = Deployment::start_with(&redis.url(), 3, true, &extra).await;
    let secret = LibredeskSecret::new(LD_WEBHOOK_SECRET).expect("secret");
    let mut stored = Vec::new();
    for n in 0..6 {
        let body = message_webhook(&format!("e0000000-0000-4000-8000-0000000001{n:02}"), "hi");
        let signature = libredesk_signature(&secret, &body);
        // Each webhook through one replica, and the vendor's retry of it through the next:
        // the shared store keeps one event.
        let mut ids = Vec::new();
        for i in [n % 3, (n + 1) % 3] {
            let response = d
                .http
                .post(format!("{}/hooks/hooked/desk", d.replicas[i].api))
                .header("X-Libredesk-Signature", &signature)
                .body(body.clone())
                .send()
                .await
                .expect("webhook");
            ids.push(expect_status(response, 200).await["id"].clone());
        }
        assert_eq!(ids[0], ids[1], "the retried webhook is the same event");
        stored.push(ids[0].as_str().expect("id").to_owned());
    }
    // Every event reaches the subscriber, and the backlog drains on every replica.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut drained = true;
        for i in 0..3 {
            let backlog = d.admin(i, Method::GET, "/admin/events/backlog", None).await;
            let backlog: Value = serde_json::from_str(&backlog).expect("backlog JSON");
            let pending: u64 = backlog["data"]
                .as_array()
                .expect("data")
                .iter()
                .map(|b| b["pending"].as_u64().unwrap_or(0))
                .sum();
            drained &= pending == 0;
        }
        if drained && subscriber.ids().len() >= stored.len() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not delivered within 30 s: {:?}",
            subscriber.ids()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut delivered = subscriber.ids();
    delivered.sort();
    let mut expected = stored.clone();
    expected.sort();
    assert_eq!(delivered, expected, "each event exactly once");

    // Redis stops: a webhook is still accepted (into replica 0's local spill) and is
    // delivered once Redis is back.
    redis.stop();
    d.wait_readyz(0, "degraded", is_degraded).await;
    let body = message_webhook("e0000000-0000-4000-8000-0000000002aa", "spilled");
    let response = d
        .http
        .post(format!("{}/hooks/hooked/desk", d.replicas[0].api))
        .header("X-Libredesk-Signature", libredesk_signature(&secret, &body))
        .body(body)
        .send()
        .await
        .expect("webhook");
    let spilled = expect_status(response, 200).await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    assert!(d.metric(0, "switchboard_cluster_spill_pending").await >= 1.0);
    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !subscriber.ids().contains(&spilled) {
        assert!(
            Instant::now() < deadline,
            "the spilled event was not delivered after Redis returned"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        subscriber.ids().iter().filter(|id| **id == spilled).count(),
        1
    );
    // The replicas never opened an embedded store of their own: the outbox is shared.
    for i in 0..3 {
        assert!(!d
            ._dir
            .path()
            .join(format!("data{i}/events.sqlite3"))
            .exists());
    }
}
