//! Bearer tokens mapped to users, and the throttle on failed sign-ins. Tokens
//! are kept only as SHA-256 digests (and may be configured as digests), so a
//! lookup's timing says nothing useful about a token's characters.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// The shortest token accepted when the server listens beyond the loopback
/// interface: 16 random characters are out of reach of online guessing.
pub const MIN_TOKEN_LEN: usize = 16;

#[derive(Debug, Default, Clone)]
pub struct Tokens {
    users_by_digest: HashMap<[u8; 32], String>,
}

/// Why a token cannot be added.
#[derive(Debug, PartialEq, Eq)]
pub enum TokenConflict {
    /// The same token (or digest) was already given to another user; names both users.
    TwoUsers(String, String),
}

impl Tokens {
    /// Adds a plaintext token.
    pub fn insert(&mut self, token: &str, user: &str) -> Result<(), TokenConflict> {
        self.insert_digest(Sha256::digest(token.as_bytes()).into(), user)
    }

    /// Adds a token given as its SHA-256 digest (`sha256:<hex>` in a tokens file).
    pub fn insert_digest(&mut self, digest: [u8; 32], user: &str) -> Result<(), TokenConflict> {
        match self.users_by_digest.get(&digest) {
            Some(existing) if existing != user => Err(TokenConflict::TwoUsers(existing.clone(), user.to_string())),
            _ => {
                self.users_by_digest.insert(digest, user.to_string());
                Ok(())
            }
        }
    }

    pub fn user(&self, token: &str) -> Option<&str> {
        self.users_by_digest.get(&<[u8; 32]>::from(Sha256::digest(token.as_bytes()))).map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.users_by_digest.is_empty()
    }
}

/// Parses the 64 hex digits of a SHA-256 digest.
pub fn parse_digest(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut digest = [0u8; 32];
    for (i, byte) in digest.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(digest)
}

/// Failed authentications per client address within a window: past the limit,
/// requests from that address answer 429 until the window ends, whatever token
/// they carry, so guessing tokens gets nowhere.
pub struct AuthThrottle {
    max_failures: u32,
    window: Duration,
    failures: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl AuthThrottle {
    /// `max_failures` 0 turns the throttle off.
    pub fn new(max_failures: u32, window: Duration) -> AuthThrottle {
        AuthThrottle { max_failures, window, failures: Mutex::new(HashMap::new()) }
    }

    /// `Some(wait)` while `client` has used up its failures.
    pub fn blocked(&self, client: IpAddr) -> Option<Duration> {
        if self.max_failures == 0 {
            return None;
        }
        let failures = self.failures.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let (since, count) = failures.get(&client)?;
        let left = self.window.checked_sub(since.elapsed())?;
        (*count >= self.max_failures).then_some(left)
    }

    pub fn record_failure(&self, client: IpAddr) {
        if self.max_failures == 0 {
            return;
        }
        let mut failures = self.failures.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        // Forget finished windows now and then, so the table holds recent clients only.
        if failures.len() >= 10_000 {
            let window = self.window;
            failures.retain(|_, (since, _)| since.elapsed() < window);
        }
        let entry = failures.entry(client).or_insert((Instant::now(), 0));
        if entry.0.elapsed() >= self.window {
            *entry = (Instant::now(), 0);
        }
        entry.1 += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_belongs_to_one_user() {
        let mut tokens = Tokens::default();
        assert_eq!(tokens.insert("0123456789abcdef", "alice"), Ok(()));
        assert_eq!(tokens.insert("0123456789abcdef", "alice"), Ok(()), "the same line twice is harmless");
        assert_eq!(
            tokens.insert("0123456789abcdef", "bob"),
            Err(TokenConflict::TwoUsers("alice".into(), "bob".into()))
        );
        assert_eq!(tokens.user("0123456789abcdef"), Some("alice"));
    }

    #[test]
    fn digests_sign_in_their_token() {
        let mut tokens = Tokens::default();
        let hex: String = Sha256::digest(b"secret-token-of-carol").iter().map(|b| format!("{b:02x}")).collect();
        tokens.insert_digest(parse_digest(&hex).expect("digest"), "carol").expect("insert");
        assert_eq!(tokens.user("secret-token-of-carol"), Some("carol"));
        assert_eq!(tokens.user(&hex), None, "the digest itself is not a token");
        assert_eq!(parse_digest("abc"), None);
        assert_eq!(parse_digest(&"g".repeat(64)), None);
    }

    #[test]
    fn failures_past_the_limit_block_the_address_for_the_window() {
        let throttle = AuthThrottle::new(2, Duration::from_secs(60));
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().expect("ip"), "10.0.0.2".parse().expect("ip"));
        throttle.record_failure(a);
        assert_eq!(throttle.blocked(a), None);
        throttle.record_failure(a);
        assert!(throttle.blocked(a).is_some_and(|wait| wait <= Duration::from_secs(60)));
        assert_eq!(throttle.blocked(b), None, "other addresses are not affected");
        let off = AuthThrottle::new(0, Duration::from_secs(60));
        off.record_failure(a);
        off.record_failure(a);
        assert_eq!(off.blocked(a), None);
    }
}
