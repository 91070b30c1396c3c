//! Bearer tokens mapped to users. Tokens are kept only as SHA-256 digests, so
//! a lookup's timing says nothing useful about a token's characters.

use std::collections::HashMap;

use sha2::{Digest, Sha256};

#[derive(Debug, Default, Clone)]
pub struct Tokens {
    users_by_digest: HashMap<[u8; 32], String>,
}

impl Tokens {
    pub fn insert(&mut self, token: &str, user: &str) {
        self.users_by_digest.insert(Sha256::digest(token.as_bytes()).into(), user.to_string());
    }

    pub fn user(&self, token: &str) -> Option<&str> {
        self.users_by_digest.get(&<[u8; 32]>::from(Sha256::digest(token.as_bytes()))).map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.users_by_digest.is_empty()
    }
}
