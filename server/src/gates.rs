//! Admission of write transactions in this process, so that no user can stall
//! the others: each user has one write in flight at a time (the rest wait here,
//! holding no database connection), and writers together hold at most a share
//! of the pool, so reads always find a connection.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub struct WriteGates {
    /// One single-permit gate per user with a write waiting or running; removed
    /// when the last holder leaves, so the map only holds active users.
    users: Mutex<HashMap<String, Arc<Semaphore>>>,
    /// Permits for write transactions across all users: the writers' share of
    /// the connection pool (one on SQLite, which has one writer anyway, so its
    /// writers queue here in order instead of polling SQLite's lock).
    writers: Arc<Semaphore>,
}

/// Held for the whole of one user's write request.
pub struct UserTurn {
    gates: Arc<WriteGates>,
    user: String,
    gate: Arc<Semaphore>,
    permit: Option<OwnedSemaphorePermit>,
}

/// Held for the duration of one write transaction.
pub struct WriterSlot(#[allow(dead_code)] OwnedSemaphorePermit);

impl WriteGates {
    pub fn new(writer_connections: usize) -> Arc<WriteGates> {
        Arc::new(WriteGates { users: Mutex::new(HashMap::new()), writers: Arc::new(Semaphore::new(writer_connections.max(1))) })
    }

    /// Waits until no other write of `user` runs in this process.
    pub async fn user_turn(self: &Arc<Self>, user: &str) -> UserTurn {
        let gate = {
            let mut users = self.users.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            users.entry(user.to_string()).or_insert_with(|| Arc::new(Semaphore::new(1))).clone()
        };
        // The semaphores are never closed, so acquiring only fails if that changes.
        let permit = gate.clone().acquire_owned().await.ok();
        UserTurn { gates: self.clone(), user: user.to_string(), gate, permit }
    }

    /// Waits for a writer's share of the connection pool.
    pub async fn writer_slot(&self) -> Option<WriterSlot> {
        self.writers.clone().acquire_owned().await.ok().map(WriterSlot)
    }
}

impl Drop for UserTurn {
    fn drop(&mut self) {
        self.permit.take();
        let mut users = self.gates.users.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        // Held by the map and by this turn only: nobody else waits for this user.
        if Arc::strong_count(&self.gate) == 2 {
            users.remove(&self.user);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_write_per_user_at_a_time_and_idle_users_are_forgotten() {
        let gates = WriteGates::new(4);
        let alice = gates.user_turn("alice").await;
        // Bob is not held up by Alice.
        let bob = gates.user_turn("bob").await;
        // Alice's second write waits for her first.
        let waiting = tokio::spawn({
            let gates = gates.clone();
            async move { gates.user_turn("alice").await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        drop(alice);
        let second = waiting.await.expect("second turn");
        drop(second);
        drop(bob);
        assert!(gates.users.lock().expect("lock").is_empty());
    }
}
