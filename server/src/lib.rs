//! The Tideway reference sync server, as a library so tests and benchmarks can
//! reuse its parts; `main.rs` only parses the command line and calls [`run`].
//!
//! Layout: `serve` (connections) runs the router of `routes` (handlers and
//! layers), which uses `auth`, `extract` and `site` (validated inputs, static
//! files) → `error` (the one HTTP error type) → `app` (shared state) → `store`
//! (SQL on SQLite or PostgreSQL, admitted by `gates`) and `tokens`; `cli` turns
//! flags into each part's settings. No two modules import each other, directly
//! or through others: a test below keeps it so.

pub mod app;
pub mod auth;
pub mod cli;
pub mod cursor;
pub mod error;
pub mod extract;
pub mod gates;
pub mod routes;
pub mod serve;
pub mod site;
pub mod store;
pub mod tokens;

use std::sync::Arc;

use app::AppState;
use cli::{Cli, Command, ConfigError};
use site::Site;
use store::{Store, StoreError, StoreOptions};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot open the database: {0}")]
    Store(#[from] StoreError),
    #[error("cannot serve the static folder {dir}: {source}")]
    Static { dir: std::path::PathBuf, source: std::io::Error },
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: std::net::SocketAddr, source: std::io::Error },
    #[error("server failed: {0}")]
    Serve(std::io::Error),
}

/// Runs the command given on the command line: a maintenance command, or by
/// default the server.
pub async fn run(cli: Cli) -> Result<(), StartError> {
    match cli.command {
        Some(Command::RotateEpoch) => {
            let store = Store::open(&cli.db, StoreOptions::maintenance()).await?;
            let epoch = store.rotate_epoch().await?;
            println!("tideway-server: new database epoch {epoch}; every cursor issued before answers 410 from now on");
            Ok(())
        }
        Some(Command::Purge) => {
            let store = Store::open(&cli.db, StoreOptions::maintenance()).await?;
            let report = store.purge(cli.retention).await?;
            println!(
                "tideway-server: purged {} push results, {} Idempotency-Key outcomes and {} tombstones older than {:?}",
                report.push_records, report.rest_records, report.tombstones, cli.retention
            );
            Ok(())
        }
        Some(Command::PushLog) => {
            let store = Store::open(&cli.db, StoreOptions::maintenance()).await?;
            for record in store.push_records().await? {
                println!("{}", serde_json::to_string(&record).map_err(|e| StoreError::Corrupt(e.to_string()))?);
            }
            Ok(())
        }
        None => serve(cli).await,
    }
}

/// Serves until SIGINT or SIGTERM, then lets in-flight requests finish for at
/// most `--shutdown-timeout` and returns.
async fn serve(cli: Cli) -> Result<(), StartError> {
    let tokens = cli.tokens()?;
    let cors = cli.cors()?;
    let store = Store::open(&cli.db, cli.store_options()).await?;
    tracing::info!(backend = ?store.backend(), "database ready");
    if !cli.purge_interval.is_zero() {
        tokio::spawn(purge_on_schedule(store.clone(), cli.retention, cli.purge_interval));
    }
    let state = Arc::new(AppState { store, tokens, auth_throttle: cli.auth_throttle() });
    let site = match &cli.static_dir {
        Some(dir) => Some(Arc::new(Site::new(dir, cli.csp()?).map_err(|source| StartError::Static { dir: dir.clone(), source })?)),
        None => None,
    };
    let app = routes::router(state, site, cors, cli.request_limits(), !cli.no_compression);
    let listener =
        tokio::net::TcpListener::bind(cli.listen).await.map_err(|source| StartError::Bind { addr: cli.listen, source })?;
    let addr = listener.local_addr().map_err(StartError::Serve)?;
    // On stdout, for whoever started us with port 0 (tests, scripts).
    println!("tideway-server listening on http://{addr}");
    tracing::info!(%addr, "listening");
    serve::serve(listener, app, cli.connection_limits(), shutdown_signal()).await;
    Ok(())
}

/// Purges every `interval`, starting one interval after start-up; a failed purge
/// is logged and tried again at the next tick.
async fn purge_on_schedule(store: Store, retention: std::time::Duration, interval: std::time::Duration) {
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match store.purge(retention).await {
            Ok(report) => tracing::info!(?report, "purged records older than the retention period"),
            Err(error) => tracing::warn!(%error, "purge failed; trying again at the next interval"),
        }
    }
}

async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {},
        _ = terminate => {},
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    /// Which modules of this crate each module names (`crate::NAME`), from the sources.
    fn module_imports() -> BTreeMap<String, BTreeSet<String>> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut graph = BTreeMap::new();
        for entry in std::fs::read_dir(&dir).expect("read src") {
            let path = entry.expect("dir entry").path();
            let (Some(stem), Some("rs")) = (path.file_stem().and_then(|s| s.to_str()), path.extension().and_then(|s| s.to_str())) else {
                continue;
            };
            if matches!(stem, "lib" | "main") {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("read module");
            let mut names = BTreeSet::new();
            for line in text.lines().filter(|l| !l.trim_start().starts_with("//")) {
                for (at, _) in line.match_indices("crate::") {
                    let name: String = line[at + 7..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                    if name != stem && !name.is_empty() {
                        names.insert(name);
                    }
                }
            }
            graph.insert(stem.to_string(), names);
        }
        graph
    }

    #[test]
    fn modules_import_each_other_without_cycles() {
        let graph = module_imports();
        assert!(graph.len() >= 8, "found only {graph:?}");
        // Depth-first search; a module met again while still on the path closes a cycle.
        fn visit<'a>(m: &'a str, graph: &'a BTreeMap<String, BTreeSet<String>>, path: &mut Vec<&'a str>, done: &mut BTreeSet<&'a str>) {
            if done.contains(m) {
                return;
            }
            if let Some(at) = path.iter().position(|p| *p == m) {
                panic!("module cycle: {} -> {m}", path[at..].join(" -> "));
            }
            path.push(m);
            for next in graph.get(m).into_iter().flatten() {
                visit(next, graph, path, done);
            }
            path.pop();
            done.insert(m);
        }
        let mut done = BTreeSet::new();
        for m in graph.keys() {
            visit(m, &graph, &mut Vec::new(), &mut done);
        }
    }
}
