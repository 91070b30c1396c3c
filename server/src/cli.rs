//! Command-line options, and turning them into a running server's parts.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use axum::http::HeaderValue;
use clap::{Parser, Subcommand, ValueEnum};
use tideway_protocol::validate_entity_id;

use crate::app::{CorsPolicy, RequestLimits};
use crate::serve::ConnectionLimits;
use crate::store::StoreOptions;
use crate::tokens::{parse_digest, AuthThrottle, TokenConflict, Tokens, MIN_TOKEN_LEN};

/// Reference sync server for Tideway: idempotent batched push, cursor pull,
/// per-entity REST with ETags, per-user isolation. SQLite by default; point
/// --db at PostgreSQL to run several processes side by side.
///
/// Without a command it serves the API; the commands below maintain a database
/// and exit.
#[derive(Debug, Parser)]
#[command(name = "tideway-server", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Address to listen on. Port 0 picks a free port; the bound address is
    /// printed on stdout as "tideway-server listening on http://ADDR".
    #[arg(long, env = "TIDEWAY_LISTEN", default_value = "127.0.0.1:8787")]
    pub listen: SocketAddr,

    /// Database URL: sqlite://PATH (the file is created if missing) or
    /// postgres://USER[:PASSWORD]@HOST:PORT/DATABASE. Tables are created on start.
    #[arg(long, env = "TIDEWAY_DB", default_value = "sqlite://tideway.db", global = true)]
    pub db: String,

    /// Directory of static files served under / (for example the demo app in www/).
    /// Without it, paths outside /v1 answer 404.
    #[arg(long = "static", value_name = "DIR")]
    pub static_dir: Option<PathBuf>,

    /// The Content-Security-Policy header of static files (--static). The default
    /// allows the server's own origin only, no plugins and no framing, but lets
    /// scripts be inline and evaluate strings (as the demo's tests do): an app that
    /// does neither should drop 'unsafe-inline' and 'unsafe-eval'.
    #[arg(long, env = "TIDEWAY_CSP", default_value = crate::site::DEFAULT_CSP)]
    pub csp: String,

    /// A bearer token and the user it signs in, as TOKEN:USER, or as
    /// sha256:HEX:USER with the token's SHA-256 digest in hex. Repeatable. Tokens
    /// must have at least 16 characters unless the server listens on a loopback
    /// address only; a token given to two users is refused. Command lines are
    /// visible to other local users: prefer --tokens-file in production.
    #[arg(long = "token", value_name = "TOKEN:USER")]
    pub tokens: Vec<String>,

    /// A file of TOKEN:USER or sha256:HEX:USER lines (as for --token), read at
    /// start. Blank lines and lines starting with # are ignored. Combines with
    /// --token. A warning is logged if other users may read it (chmod 600 it).
    #[arg(long, value_name = "PATH", env = "TIDEWAY_TOKENS_FILE")]
    pub tokens_file: Option<PathBuf>,

    /// Send answers uncompressed whatever the client accepts (when a proxy in front
    /// compresses them, say), and take request bodies only plain. Compressing costs
    /// the server about as much CPU as answering a pull page. A static file's
    /// precompressed sibling is still sent.
    #[arg(long, env = "TIDEWAY_NO_COMPRESSION")]
    pub no_compression: bool,

    /// A browser origin allowed to call the API, e.g. https://app.example.com.
    /// Repeatable. "localhost" stands for http(s)://localhost, 127.0.0.1 and [::1]
    /// on any port, "*" for any origin. Default: localhost only.
    #[arg(long = "cors-origin", value_name = "ORIGIN")]
    pub cors_origins: Vec<String>,

    /// How long push results, Idempotency-Key outcomes and tombstones are kept
    /// (for example 30d, 12h, 90m, 0s). A client whose cursor is older than a
    /// purged tombstone gets 410 and pulls again from the start; a push replayed
    /// after its result was purged is answered `rejected` `out_of_order`. Keep it
    /// longer than clients stay offline.
    #[arg(long, env = "TIDEWAY_RETENTION", default_value = "30d", value_parser = parse_duration, global = true)]
    pub retention: Duration,

    /// How often the server purges what is older than --retention; 0 turns the
    /// schedule off (then run `tideway-server purge` from cron or by hand). With
    /// several processes on one database each purges on its own schedule, which is
    /// harmless.
    #[arg(long, env = "TIDEWAY_PURGE_INTERVAL", default_value = "1h", value_parser = parse_duration)]
    pub purge_interval: Duration,

    /// Time a client has to send a request's headers; also how long an idle
    /// keep-alive connection stays open.
    #[arg(long, env = "TIDEWAY_HEADER_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub header_timeout: Duration,

    /// The longest pause allowed between two pieces of a request body (a stalled
    /// upload answers 408).
    #[arg(long, env = "TIDEWAY_BODY_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub body_timeout: Duration,

    /// Time from a request's headers to its answer, body upload and database work
    /// included (408 past it; the database work is rolled back).
    #[arg(long, env = "TIDEWAY_REQUEST_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub request_timeout: Duration,

    /// Connections served at once; more wait in the operating system's backlog.
    #[arg(long, env = "TIDEWAY_MAX_HTTP_CONNECTIONS", default_value_t = 1024)]
    pub max_http_connections: usize,

    /// Requests handled at once; more answer 503 `unavailable` with Retry-After.
    #[arg(long, env = "TIDEWAY_MAX_REQUESTS", default_value_t = 256)]
    pub max_requests: usize,

    /// On SIGTERM or SIGINT the server stops accepting connections and gives
    /// in-flight requests this long to finish, then exits.
    #[arg(long, env = "TIDEWAY_SHUTDOWN_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,

    /// The most database connections this process opens.
    #[arg(long, env = "TIDEWAY_MAX_CONNECTIONS", default_value_t = 16)]
    pub max_connections: u32,

    /// The longest wait for a database lock (SQLite's busy timeout, PostgreSQL's
    /// lock_timeout); past it the request answers 503 and the client retries.
    /// Within one process, writes never wait in the database: one write per user
    /// runs at a time and, on SQLite, writers queue in order in the process.
    #[arg(long, env = "TIDEWAY_DB_LOCK_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub db_lock_timeout: Duration,

    /// PostgreSQL's statement_timeout for every statement (0 turns it off); past
    /// it the request answers 503.
    #[arg(long, env = "TIDEWAY_DB_STATEMENT_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub db_statement_timeout: Duration,

    /// Failed authentications allowed per client address and minute; past them
    /// its requests answer 429 with Retry-After until the minute is over, whatever
    /// token they carry. 0 turns the throttle off. Behind a reverse proxy every
    /// client shares the proxy's address: raise it accordingly.
    #[arg(long, env = "TIDEWAY_MAX_AUTH_FAILURES", default_value_t = 10)]
    pub max_auth_failures: u32,

    /// Log format on stderr: one line of text or one JSON object per event.
    /// The level comes from RUST_LOG (default info).
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

/// Maintenance of a database; each runs once and exits.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Give the database a new epoch, so that every cursor issued before answers
    /// 410 and its client pulls again from the start. Run it after restoring the
    /// database from a backup: the sequence numbers handed out since the backup
    /// will be handed out again, and a client holding a cursor from after the
    /// backup would otherwise skip those changes silently. Running servers see the
    /// new epoch at their next pull.
    RotateEpoch,
    /// Remove what is older than --retention (push results but each client's
    /// latest, Idempotency-Key outcomes, tombstones), print what was removed and
    /// exit. The server does the same every --purge-interval.
    Purge,
    /// Print every recorded push result, one JSON object a line (`user`,
    /// `clientId`, `mutationId`, `result` with its `status`, `version` and
    /// `remoteId`), and exit. An audit: each applied mutation has one record, and
    /// the versions an entity's applied records made are each made once.
    PushLog,
}

/// A duration as `<number><unit>` with unit ms, s, m, h or d (a bare number is
/// seconds): `30d`, `1h`, `500ms`, `0`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().map_err(|_| format!("{text:?} is not a duration like 30d, 12h, 90m, 10s or 500ms"))?;
    let seconds = match unit {
        "ms" => return Ok(Duration::from_millis(n)),
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("{text:?} has an unknown unit: use ms, s, m, h or d")),
    };
    n.checked_mul(seconds).map(Duration::from_secs).ok_or_else(|| format!("{text:?} is too long"))
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid token {0:?}: expected TOKEN:USER, a token without spaces or ':' and a user id of 1 to 128 letters, digits, '_', '-', '.' or ':'")]
    BadToken(String),
    #[error("cannot read the tokens file {path}: {source}")]
    TokensFile { path: PathBuf, source: std::io::Error },
    #[error("no tokens configured: pass --token TOKEN:USER or --tokens-file PATH")]
    NoTokens,
    #[error("the token for {0:?} is shorter than {MIN_TOKEN_LEN} characters, which is allowed only when listening on a loopback address")]
    ShortToken(String),
    #[error("one token is listed for two users, {0:?} and {1:?}: give each user their own")]
    TokenForTwoUsers(String, String),
    #[error("invalid --csp: a header value must be visible ASCII")]
    BadCsp,
    #[error("invalid --cors-origin {0:?}: expected an origin like https://app.example.com, \"localhost\" or \"*\"")]
    BadOrigin(String),
}

impl Cli {
    pub fn tokens(&self) -> Result<Tokens, ConfigError> {
        let mut tokens = Tokens::default();
        let mut lines: Vec<String> = self.tokens.clone();
        if let Some(path) = &self.tokens_file {
            let text = std::fs::read_to_string(path)
                .map_err(|source| ConfigError::TokensFile { path: path.clone(), source })?;
            if readable_by_others(path) {
                tracing::warn!(path = %path.display(), "the tokens file is readable by other users of this machine: chmod 600 it");
            }
            lines.extend(
                text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(String::from),
            );
        }
        let loopback_only = self.listen.ip().is_loopback();
        for line in &lines {
            let bad = || ConfigError::BadToken(redact(line));
            let (digest, user) = if let Some(rest) = line.strip_prefix("sha256:") {
                let (hex, user) = rest.split_once(':').ok_or_else(bad)?;
                (parse_digest(hex).ok_or_else(bad)?, user)
            } else {
                let (token, user) = line.split_once(':').ok_or_else(bad)?;
                if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
                    return Err(bad());
                }
                if token.chars().count() < MIN_TOKEN_LEN {
                    if !loopback_only {
                        return Err(ConfigError::ShortToken(user.to_string()));
                    }
                    tracing::warn!(user, "a token shorter than {MIN_TOKEN_LEN} characters, accepted only because the server listens on a loopback address");
                }
                (<[u8; 32]>::from(<sha2::Sha256 as sha2::Digest>::digest(token.as_bytes())), user)
            };
            if validate_entity_id(user).is_err() {
                return Err(bad());
            }
            tokens.insert_digest(digest, user).map_err(|TokenConflict::TwoUsers(a, b)| ConfigError::TokenForTwoUsers(a, b))?;
        }
        if tokens.is_empty() {
            return Err(ConfigError::NoTokens);
        }
        Ok(tokens)
    }

    pub fn csp(&self) -> Result<HeaderValue, ConfigError> {
        HeaderValue::from_str(&self.csp).map_err(|_| ConfigError::BadCsp)
    }

    pub fn auth_throttle(&self) -> AuthThrottle {
        AuthThrottle::new(self.max_auth_failures, Duration::from_secs(60))
    }

    pub fn store_options(&self) -> StoreOptions {
        StoreOptions {
            max_connections: self.max_connections,
            lock_timeout: self.db_lock_timeout,
            statement_timeout: self.db_statement_timeout,
        }
    }

    pub fn request_limits(&self) -> RequestLimits {
        RequestLimits { request_timeout: self.request_timeout, body_timeout: self.body_timeout, max_in_flight: self.max_requests.max(1) }
    }

    pub fn connection_limits(&self) -> ConnectionLimits {
        ConnectionLimits {
            max_connections: self.max_http_connections,
            header_timeout: self.header_timeout,
            shutdown_timeout: self.shutdown_timeout,
        }
    }

    pub fn cors(&self) -> Result<CorsPolicy, ConfigError> {
        if self.cors_origins.is_empty() {
            return Ok(CorsPolicy::Localhost);
        }
        let mut origins = Vec::new();
        let mut localhost = false;
        for origin in &self.cors_origins {
            match origin.as_str() {
                "*" => return Ok(CorsPolicy::AnyOrigin),
                "localhost" => localhost = true,
                o if (o.starts_with("http://") || o.starts_with("https://")) && !o.ends_with('/') => {
                    origins.push(HeaderValue::from_str(o).map_err(|_| ConfigError::BadOrigin(o.into()))?)
                }
                o => return Err(ConfigError::BadOrigin(o.into())),
            }
        }
        Ok(CorsPolicy::List { origins, localhost })
    }
}

/// Whether users other than the owner may read the file (on Unix).
fn readable_by_others(path: &std::path::Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o044 != 0)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        false
    }
}

/// Error messages name the user, never the secret.
fn redact(line: &str) -> String {
    match line.split_once(':') {
        Some((_, user)) => format!("***:{user}"),
        None => "***".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("tideway-server").chain(args.iter().copied())).expect("parse")
    }

    #[test]
    fn token_rules() {
        let long = "0123456789abcdef0123";
        assert!(cli(&["--listen", "0.0.0.0:8787", "--token", &format!("{long}:alice")]).tokens().is_ok());
        let short = cli(&["--listen", "0.0.0.0:8787", "--token", "dev:alice"]).tokens();
        assert!(matches!(short, Err(ConfigError::ShortToken(user)) if user == "alice"));
        assert!(cli(&["--listen", "127.0.0.1:8787", "--token", "dev:alice"]).tokens().is_ok(), "allowed on loopback");
        let twice = cli(&["--token", &format!("{long}:alice"), "--token", &format!("{long}:bob")]).tokens();
        assert!(matches!(twice, Err(ConfigError::TokenForTwoUsers(a, b)) if a == "alice" && b == "bob"));
        let digest: String = <sha2::Sha256 as sha2::Digest>::digest(long.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
        let hashed = cli(&["--listen", "0.0.0.0:8787", "--token", &format!("sha256:{digest}:carol")]).tokens().expect("hashed");
        assert_eq!(hashed.user(long), Some("carol"));
        assert!(matches!(cli(&["--token", "sha256:abcd:carol"]).tokens(), Err(ConfigError::BadToken(_))));
    }

    #[cfg(unix)]
    #[test]
    fn a_tokens_file_readable_by_others_is_noticed() {
        use std::os::unix::fs::PermissionsExt;
        let path = std::env::temp_dir().join(format!("tideway-tokens-{}", std::process::id()));
        std::fs::write(&path, "0123456789abcdef0123:alice\n").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        assert!(readable_by_others(&path));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        assert!(!readable_by_others(&path));
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert_eq!(parse_duration("90m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        for bad in ["", "d", "-1s", "1.5h", "3w", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
