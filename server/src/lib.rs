//! The Tideway reference sync server, as a library so tests and benchmarks can
//! reuse its parts; `main.rs` only parses the command line and calls [`run`].
//!
//! Layout: `routes` (HTTP handlers and layers) → `extract` (validated inputs) →
//! `store` (SQL on SQLite or PostgreSQL). `error` is the one HTTP error type.

pub mod auth;
pub mod cli;
pub mod cursor;
pub mod error;
pub mod extract;
pub mod routes;
pub mod store;

use std::sync::Arc;

use cli::{Cli, ConfigError};
use routes::AppState;
use store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot open the database: {0}")]
    Store(#[from] StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: std::net::SocketAddr, source: std::io::Error },
    #[error("server failed: {0}")]
    Serve(std::io::Error),
}

/// Serves until SIGINT or SIGTERM, then finishes in-flight requests and returns.
pub async fn run(cli: Cli) -> Result<(), StartError> {
    let tokens = cli.tokens()?;
    let cors = cli.cors()?;
    let store = Store::open(&cli.db, cli.max_connections).await?;
    tracing::info!(backend = ?store.backend(), "database ready");
    let state = Arc::new(AppState { store, tokens });
    let app = routes::router(state, cli.static_dir.clone(), cors);
    let listener =
        tokio::net::TcpListener::bind(cli.listen).await.map_err(|source| StartError::Bind { addr: cli.listen, source })?;
    let addr = listener.local_addr().map_err(StartError::Serve)?;
    // On stdout, for whoever started us with port 0 (tests, scripts).
    println!("tideway-server listening on http://{addr}");
    tracing::info!(%addr, "listening");
    axum::serve(listener, app).with_graceful_shutdown(shutdown_signal()).await.map_err(StartError::Serve)
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
