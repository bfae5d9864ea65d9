//! Assembling the pingora server: the API listener, the admin listener and the background
//! services (config watcher, SIGHUP), with the grace period and thread count from config.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::{RunArgs, Server, ShutdownSignal, ShutdownSignalWatch, ShutdownWatch};
use pingora::services::background::{background_service, BackgroundService};
use pingora::services::listening::Service;

use crate::gateway::admin::AdminApp;
use crate::gateway::listener::ApiListener;
use crate::gateway::App;
use crate::upstream::VendorClient;

/// How long the watcher waits for a burst of file events to settle before reloading.
const DEBOUNCE: Duration = Duration::from_millis(250);

/// Process-level switches for `switchboard run`.
#[derive(Debug, Clone, Default)]
pub struct ProcessOptions {
    /// Take over the listening sockets of a running switchboard (graceful upgrade).
    pub upgrade: bool,
    /// Run in the background.
    pub daemon: bool,
    /// Socket used to hand listeners over during a graceful upgrade.
    pub upgrade_sock: Option<String>,
    pub pid_file: Option<String>,
    /// More servers start in this process after this one stops (the in-process test
    /// harness): use tokio's work-stealing runtime. Pingora's no-steal runtime, the default,
    /// remembers each worker thread's runtime in a table keyed by thread ID that outlives the
    /// server; a later server's thread that is handed a recycled ID finds the stopped
    /// runtime there and spawns onto it (pingora-runtime 0.9.1, `current_handle`).
    pub shared_process: bool,
}

/// Build the server with every service. Call `run_forever` (or `run` in tests) next.
pub fn build_server(
    app: Arc<App>,
    options: &ProcessOptions,
    extra: Vec<Box<dyn pingora::services::ServiceWithDependents>>,
) -> Server {
    let snapshot = app.snapshot();
    let settings = &snapshot.settings;
    let mut conf = ServerConf {
        threads: settings
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get())),
        grace_period_seconds: Some(settings.grace_period_seconds),
        graceful_shutdown_timeout_seconds: Some(settings.graceful_shutdown_timeout_seconds),
        daemon: options.daemon,
        // One single-threaded runtime per worker thread (pingora's no-steal runtime): a
        // connection's tasks, its vendor calls and their wake-ups stay on the thread that
        // accepted it. Measured with scripts/bench.sh: 5–15 % more requests per second than
        // tokio's work-stealing runtime, whose steals and cross-thread wake-ups cost more than
        // they balance for short requests.
        work_stealing: options.shared_process,
        ..ServerConf::default()
    };
    if let Some(sock) = &options.upgrade_sock {
        conf.upgrade_sock = sock.clone();
    }
    if let Some(pid) = &options.pid_file {
        conf.pid_file = pid.clone();
    }
    let opt = Opt {
        upgrade: options.upgrade,
        daemon: options.daemon,
        ..Opt::default()
    };
    let mut server = Server::new_with_opt_and_conf(opt, conf);
    server.bootstrap();

    let mut api = Service::new(
        "switchboard api".to_owned(),
        ApiListener::new(app.clone(), &server.configuration),
    );
    api.add_tcp(&settings.listen.api);
    let mut admin = Service::new("switchboard admin".to_owned(), AdminApp::new(app.clone()));
    admin.add_tcp(&settings.listen.admin);
    admin.threads = Some(1);

    server.add_service(api);
    server.add_service(admin);
    server.add_service(background_service(
        "config watcher",
        ConfigWatcher { app: app.clone() },
    ));
    server.add_service(background_service(
        "jwks refresher",
        JwksRefresher {
            app: app.clone(),
            client: VendorClient::new(),
        },
    ));
    for service in crate::gateway::event_workers::services(&app) {
        server.add_boxed_service(service);
    }
    for service in extra {
        server.add_boxed_service(service);
    }
    server
}

/// Reloads the config when a watched file changes (debounced) or on SIGHUP.
struct ConfigWatcher {
    app: Arc<App>,
}

/// Folders to watch: the config file's, the connections file's, the routes folder and any
/// key file's. Editors replace files by renaming, so folders are watched, not files.
fn watched_dirs(app: &App) -> BTreeSet<PathBuf> {
    let snapshot = app.snapshot();
    let mut dirs: BTreeSet<PathBuf> = snapshot
        .files
        .iter()
        .filter_map(|f| f.path.parent().map(Path::to_path_buf))
        .collect();
    dirs.insert(snapshot.routes_dir.clone());
    dirs
}

/// Whether a file event may mean new content. Reads (`Access`) never do; everything else is
/// checked against the content hashes (any name: a Kubernetes ConfigMap swaps a `..data`
/// symlink, which has no extension).
fn may_change_content(event: &notify::Event) -> bool {
    !matches!(event.kind, notify::EventKind::Access(_))
}

#[async_trait]
impl BackgroundService for ConfigWatcher {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        use notify::{RecursiveMode, Watcher};
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
        let mut watcher = match notify::recommended_watcher(
            move |event: notify::Result<notify::Event>| {
                if let Ok(event) = event {
                    if may_change_content(&event) {
                        let _ = tx.send(());
                    }
                }
            },
        ) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::error!(error = %e, "cannot watch config files; use SIGHUP or POST /admin/reload");
                None
            }
        };
        let mut dirs = BTreeSet::new();
        let rewatch = |watcher: &mut Option<notify::RecommendedWatcher>,
                       dirs: &mut BTreeSet<PathBuf>| {
            let Some(w) = watcher.as_mut() else { return };
            let wanted = watched_dirs(&self.app);
            for gone in dirs.difference(&wanted) {
                let _ = w.unwatch(gone);
            }
            for dir in wanted.difference(dirs) {
                if let Err(e) = w.watch(dir, RecursiveMode::NonRecursive) {
                    tracing::warn!(dir = %dir.display(), error = %e, "cannot watch folder");
                }
            }
            *dirs = wanted;
        };
        rewatch(&mut watcher, &mut dirs);

        let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP");
                None
            }
        };
        loop {
            let trigger = tokio::select! {
                _ = shutdown.changed() => return,
                Some(()) = rx.recv() => {
                    // Debounce: wait until the folder has been quiet for DEBOUNCE.
                    while let Ok(Some(())) = tokio::time::timeout(DEBOUNCE, rx.recv()).await {}
                    "file change"
                }
                Some(()) = async { match hangup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => "SIGHUP",
            };
            let app = self.app.clone();
            // A file event reloads only when some content changed; SIGHUP always reloads.
            let result = tokio::task::spawn_blocking(move || match trigger {
                "SIGHUP" => Some(app.reload(trigger)),
                _ => app.reload_if_changed(trigger),
            })
            .await;
            if let Ok(Some(Ok(_))) = result {
                rewatch(&mut watcher, &mut dirs);
            }
        }
    }
}

/// How often the JWKS refresher looks at the active config when nothing is due (a reload may
/// switch to a JWKS URL, or away from one).
const JWKS_POLL: Duration = Duration::from_secs(5);

/// Refreshes the active config's JWKS in the background when its interval (the JWKS answer's
/// `Cache-Control: max-age`, within `jwt.jwks_min_refresh_seconds` and
/// `jwt.jwks_refresh_seconds`) has passed, so a key the identity provider removed stops being
/// trusted without waiting for an unknown `kid`. It has its own vendor client: pooled
/// connections belong to the runtime that opened them, and this service has its own runtime.
struct JwksRefresher {
    app: Arc<App>,
    client: VendorClient,
}

#[async_trait]
impl BackgroundService for JwksRefresher {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        loop {
            let store = self.app.snapshot().auth.jwks().cloned();
            let wait = match store {
                Some(store) => {
                    store.refresh_if_due(&self.client).await;
                    store
                        .until_due()
                        .map_or(JWKS_POLL, |d| d.clamp(Duration::from_millis(50), JWKS_POLL))
                }
                None => JWKS_POLL,
            };
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }
}

/// A shutdown signal that a test (or an embedding program) fires itself.
pub struct ShutdownTrigger {
    tx: tokio::sync::watch::Sender<bool>,
}

pub struct ShutdownOnTrigger {
    rx: tokio::sync::watch::Receiver<bool>,
}

impl ShutdownTrigger {
    pub fn new() -> (ShutdownTrigger, ShutdownOnTrigger) {
        let (tx, rx) = tokio::sync::watch::channel(false);
        (ShutdownTrigger { tx }, ShutdownOnTrigger { rx })
    }

    pub fn fire(&self) {
        let _ = self.tx.send(true);
    }
}

#[async_trait]
impl ShutdownSignalWatch for ShutdownOnTrigger {
    async fn recv(&self) -> ShutdownSignal {
        let mut rx = self.rx.clone();
        let _ = rx.wait_for(|fired| *fired).await;
        ShutdownSignal::FastShutdown
    }
}

/// Run a built server until `signal` fires (tests, embedding).
pub fn run_until(server: Server, signal: ShutdownOnTrigger) {
    server.run(RunArgs {
        shutdown_signal: Box::new(signal),
    });
}
