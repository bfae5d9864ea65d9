//! The `switchboard` command: run | check | demo | token.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use pingora::server::RunArgs;

use switchboard::config::{Env, Loader};
use switchboard::gateway::App;
use switchboard::server::{build_server, ProcessOptions};

/// mimalloc, as pingora deployments use a production allocator: glibc malloc/free was a
/// quarter of the CPU on the list path (issue 11; README, Performance).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "switchboard",
    version,
    about = "One normalized, JWT-protected API over four customer-conversation vendors"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API and admin listeners.
    Run {
        #[arg(long, default_value = "config/switchboard.yaml")]
        config: PathBuf,
        /// Take over the listeners of a running switchboard (graceful upgrade; see README).
        #[arg(long)]
        upgrade: bool,
        /// Run in the background.
        #[arg(long)]
        daemon: bool,
        /// Socket for handing listeners over during a graceful upgrade.
        #[arg(long, default_value = "/tmp/switchboard_upgrade.sock")]
        upgrade_sock: String,
        #[arg(long, default_value = "/tmp/switchboard.pid")]
        pid_file: String,
    },
    /// Validate a config file, its connections and routes; exit non-zero naming file, key and reason.
    Check {
        #[arg(long)]
        config: PathBuf,
    },
    /// Start sandbox vendors and a gateway on loopback, print a dev token and curl lines
    /// (needs a build with the `sandbox` feature, the default).
    Demo {
        /// Defaults to config/demo.yaml when present, else the embedded demo config.
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long, default_value = "127.0.0.1:8080")]
        api: String,
        #[arg(long, default_value = "127.0.0.1:9090")]
        admin: String,
        /// Make every sandbox answer this many milliseconds late, like a real vendor.
        #[arg(long, default_value_t = 0)]
        sandbox_latency_ms: u64,
    },
    /// Mint an HS256 token with the config's JWT secret.
    Token {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        tenant: String,
        /// Space-separated scopes, e.g. "contacts:read conversations:read".
        #[arg(long)]
        scope: String,
        /// Lifetime, e.g. 1h, 30m, 7d.
        #[arg(long, default_value = "1h")]
        ttl: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run {
            config,
            upgrade,
            daemon,
            upgrade_sock,
            pid_file,
        } => {
            let app = match App::try_new(Loader::new(&config, Env::process())) {
                Ok(app) => app,
                Err(e) => return fail(&e),
            };
            if daemon && app.cluster.is_some() {
                eprintln!(
                    "error: --daemon cannot be used with a cluster: block (its Redis tasks \
                     would not survive the fork); run switchboard in the foreground under a \
                     supervisor (systemd, Kubernetes)"
                );
                return ExitCode::from(2);
            }
            // The daemon's fork would leave the log writer thread behind in the parent: a daemon
            // writes from the request threads.
            let log_guard = if daemon {
                switchboard::logging::init(&app.snapshot().settings.log);
                None
            } else {
                Some(switchboard::logging::init_non_blocking(
                    &app.snapshot().settings.log,
                ))
            };
            if let Some(cluster) = &app.cluster {
                match cluster.readiness() {
                    switchboard::state::redis::Readiness::Shared => {
                        tracing::info!("cluster: state shared with the other replicas on redis")
                    }
                    switchboard::state::redis::Readiness::Degraded { reason } => tracing::warn!(
                        reason,
                        "redis unreachable at start: serving degraded with local state"
                    ),
                }
            }
            for warning in &app.snapshot().warnings {
                tracing::warn!(
                    file = %warning.file.display(),
                    key = %warning.key,
                    reason = %warning.reason,
                    "config warning"
                );
            }
            let options = ProcessOptions {
                upgrade,
                daemon,
                upgrade_sock: Some(upgrade_sock),
                pid_file: Some(pid_file),
                shared_process: false,
            };
            tracing::info!(
                api = %app.snapshot().settings.listen.api,
                admin = %app.snapshot().settings.listen.admin,
                "switchboard starting"
            );
            build_server(app, &options, Vec::new()).run(RunArgs::default());
            // Write the lines still queued (the last requests', shutdown's) before exiting.
            drop(log_guard);
            ExitCode::SUCCESS
        }
        Command::Check { config } => match Loader::new(&config, Env::process()).load(0) {
            Ok(snapshot) => {
                for warning in &snapshot.warnings {
                    eprintln!("warning: {warning}");
                }
                let connections: usize = snapshot.tenants.values().map(|c| c.len()).sum();
                let vendors: Vec<&str> = snapshot.routes.keys().map(|v| v.as_str()).collect();
                println!(
                    "ok: {} ({} tenant(s), {connections} connection(s), routes for {})",
                    config.display(),
                    snapshot.tenants.len(),
                    vendors.join(", ")
                );
                ExitCode::SUCCESS
            }
            Err(e) => fail(&e),
        },
        #[cfg(feature = "sandbox")]
        Command::Demo {
            config,
            api,
            admin,
            sandbox_latency_ms,
        } => switchboard::demo::run(
            config,
            &api,
            &admin,
            Duration::from_millis(sandbox_latency_ms),
        ),
        #[cfg(not(feature = "sandbox"))]
        Command::Demo { .. } => {
            eprintln!(
                "error: this switchboard was built without the sandboxes (cargo feature \
                 `sandbox`), so it has no demo; build it with the default features \
                 (`cargo build --release`) to run `switchboard demo`"
            );
            ExitCode::from(2)
        }
        Command::Token {
            config,
            tenant,
            scope,
            ttl,
        } => {
            let ttl: Duration = match humantime::parse_duration(&ttl) {
                Ok(d) if d.as_secs() > 0 => d,
                _ => {
                    eprintln!("error: --ttl {ttl:?} is not a duration such as 1h, 30m or 7d");
                    return ExitCode::from(2);
                }
            };
            let snapshot = match Loader::new(&config, Env::process()).load(0) {
                Ok(s) => s,
                Err(e) => return fail(&e),
            };
            match snapshot.settings.mint(&tenant, &scope, ttl) {
                Ok(token) => {
                    println!("{token}");
                    ExitCode::SUCCESS
                }
                Err(reason) => {
                    eprintln!("error: {reason}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn fail(e: &switchboard::config_error::ConfigError) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::FAILURE
}
