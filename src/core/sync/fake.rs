//! A sync server in memory with the reference server's rules (versions,
//! idempotent replay by `(clientId, mutationId)`, out-of-order refusal,
//! pull by change sequence) and scripted faults, for native engine tests.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::rc::Rc;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};
use tideway_protocol::{
    codes, decide, Decision, ErrorDetail, MutationResult, Op, PullResponse, PushRequest, PushResponse, PushStatus, ServerEntity,
    standing_version,
};

use super::remote::{PullPage, Push, PushAnswer, Remote, RemoteError};

/// A scripted misbehaviour for the next push or pull.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer as usual: a fault for a later call goes after it.
    Pass,
    /// Fail without doing anything.
    Before(RemoteError),
    /// Do the work, then lose the response.
    After(RemoteError),
    /// Answer this body instead of the real one (after doing nothing).
    Reply(PushResponse),
}

/// One write the server applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Application {
    pub client_id: String,
    pub mutation_id: u64,
    pub id: String,
    pub op: Op,
}

#[derive(Default)]
pub struct Server {
    pub entities: BTreeMap<(String, String), (ServerEntity, u64)>,
    /// The client whose push made an entity's latest change (absent: another
    /// client's write through [`Server::write`]).
    pushed_by: HashMap<(String, String), String>,
    seq: u64,
    results: HashMap<(String, u64), MutationResult>,
    highest: HashMap<String, u64>,
    /// Every write that took effect, in order: which client sent it under
    /// which mutation id, and what it did to which entity. A mutation applied
    /// twice (sent again under a new id, or replayed past the idempotency
    /// record) shows up twice.
    pub applications: Vec<Application>,
    pub push_faults: VecDeque<Fault>,
    pub pull_faults: VecDeque<Fault>,
    /// Requests answered 401 until credentials are refreshed this many times.
    pub expired_tokens: u32,
    pub refreshes: u32,
    pub pushes: u32,
    /// `pull` calls, as `GET /v1/pull`.
    pub pulls: u32,
    /// Pulls carried by a push and served in its answer.
    pub pulls_with_push: u32,
    /// Leave out the pulls pushes carry, as a server that does not serve them.
    pub ignores_pulls_with_push: bool,
    /// Changes listed by every pull so far.
    pub served: usize,
    /// Assign server ids `srv-N` instead of keeping the client's (a custom backend).
    pub assigns_ids: bool,
    /// Leave the entity's data out of conflict answers.
    pub withholds_current: bool,
    /// Take mutations built on the one before them in a push (`after`), as
    /// a server listing that feature does.
    pub chains: bool,
    next_server_id: u64,
    pub clock: i64,
    /// What the server's answers say about it, for [`Remote::learned`].
    pub says: Option<String>,
    /// Each [`Remote::recall`], in order.
    pub recalled: Vec<String>,
}

impl Server {
    /// Another client's write, straight into the server.
    pub fn write(&mut self, collection: &str, id: &str, data: Value, deleted: bool) {
        let key = (collection.to_string(), id.to_string());
        let version = self.entities.get(&key).map_or(0, |(e, _)| e.version) + 1;
        self.seq += 1;
        self.clock += 1;
        let entity = ServerEntity {
            collection: collection.into(),
            id: id.into(),
            data: if deleted { Map::new() } else { data.as_object().cloned().unwrap_or_default() },
            version,
            server_updated_at: self.clock,
            deleted,
        };
        self.pushed_by.remove(&key);
        self.entities.insert(key, (entity, self.seq));
    }

    /// The page of changes after `cursor`, as `GET /v1/pull` serves it.
    fn page(&mut self, cursor: Option<&str>, limit: usize, client_id: Option<&str>) -> Result<PullResponse, RemoteError> {
        let after: u64 = match cursor {
            None => 0,
            Some(text) => text
                .strip_prefix("c")
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| RemoteError::status(400, codes::INVALID_CURSOR, "not a cursor of this server"))?,
        };
        // As the reference server: a client's own pushes are left out of its pulls.
        let own = |key: &(String, String)| client_id.is_some_and(|client| self.pushed_by.get(key).is_some_and(|w| w == client));
        let mut newer: Vec<&(ServerEntity, u64)> =
            self.entities.iter().filter(|(key, (_, seq))| *seq > after && !own(key)).map(|(_, change)| change).collect();
        newer.sort_by_key(|(_, seq)| *seq);
        let page: Vec<_> = newer.iter().take(limit).collect();
        let has_more = newer.len() > limit;
        let mut last = page.last().map_or(after, |(_, seq)| *seq);
        if client_id.is_some() && !has_more {
            // Past the client's own changes up to the head.
            last = last.max(self.seq);
        }
        let response = PullResponse { changes: page.iter().map(|(e, _)| e.clone()).collect(), cursor: format!("c{last}"), has_more };
        self.served += response.changes.len();
        Ok(response)
    }

    pub fn get(&self, collection: &str, id: &str) -> Option<&ServerEntity> {
        self.entities.get(&(collection.to_string(), id.to_string())).map(|(e, _)| e)
    }

    /// Applies `m` on `base_version`: its `baseVersion`, or the version the
    /// mutation its `after` names made; `None` (that one did not apply): a
    /// conflict, as the reference server answers.
    fn apply(&mut self, client_id: &str, m: &tideway_protocol::PushMutation, base_version: Option<u64>) -> MutationResult {
        let key = (client_id.to_string(), m.mutation_id);
        if let Some(result) = self.results.get(&key) {
            return result.clone();
        }
        let result = self.decide(client_id, m, base_version);
        if result.status == PushStatus::Applied {
            let application = Application { client_id: client_id.into(), mutation_id: m.mutation_id, id: m.id.clone(), op: m.op };
            self.applications.push(application);
        }
        let highest = self.highest.entry(client_id.to_string()).or_default();
        *highest = (*highest).max(m.mutation_id);
        self.results.insert(key, result.clone());
        result
    }

    fn decide(&mut self, client_id: &str, m: &tideway_protocol::PushMutation, base_version: Option<u64>) -> MutationResult {
        let reject = |code: &str| MutationResult {
            mutation_id: m.mutation_id,
            status: PushStatus::Rejected,
            version: None,
            server_updated_at: None,
            remote_id: None,
            current: None,
            error: Some(ErrorDetail { code: code.into(), message: format!("{code} (fake server)") }),
        };
        if m.mutation_id <= self.highest.get(client_id).copied().unwrap_or(0) {
            return reject(codes::OUT_OF_ORDER);
        }
        if m.collection == "forbidden" {
            return reject(codes::INVALID_DATA);
        }
        let id = if self.assigns_ids && m.op == Op::Put && !self.entities.keys().any(|(c, i)| *c == m.collection && *i == m.id) {
            self.next_server_id += 1;
            format!("srv-{}", self.next_server_id)
        } else {
            m.id.clone()
        };
        // The reference server's own apply rule.
        let current = self.get(&m.collection, &id).cloned();
        let decision = match base_version {
            Some(base_version) => decide(current.as_ref(), &tideway_protocol::PushMutation { base_version, ..m.clone() }),
            None => Decision::Conflict,
        };
        let (data, deleted) = match decision {
            Decision::Write { data, deleted } => (Value::Object(data), deleted),
            Decision::Reject { code, .. } => return reject(code),
            Decision::Conflict => {
                let version = current.as_ref().map_or(0, |c| c.version);
                return MutationResult {
                    mutation_id: m.mutation_id,
                    status: PushStatus::Conflict,
                    version: Some(version),
                    server_updated_at: current.as_ref().map(|c| c.server_updated_at),
                    remote_id: None,
                    // As the reference server does past its byte budget for them.
                    current: if self.withholds_current { None } else { current },
                    error: None,
                };
            }
        };
        self.write(&m.collection, &id, data, deleted);
        self.pushed_by.insert((m.collection.clone(), id.clone()), client_id.to_string());
        let stored = self.get(&m.collection, &id).expect("just written");
        MutationResult {
            mutation_id: m.mutation_id,
            status: PushStatus::Applied,
            version: Some(stored.version),
            server_updated_at: Some(stored.server_updated_at),
            remote_id: Some(id),
            current: None,
            error: None,
        }
    }
}

/// A [`Remote`] talking to a shared [`Server`].
#[derive(Clone, Default)]
pub struct FakeRemote(pub Rc<RefCell<Server>>);

impl FakeRemote {
    pub fn server(&self) -> std::cell::RefMut<'_, Server> {
        self.0.borrow_mut()
    }

    fn authorized(&self) -> Result<(), RemoteError> {
        if self.0.borrow().expired_tokens > 0 {
            Err(RemoteError::status(401, codes::UNAUTHORIZED, "token expired"))
        } else {
            Ok(())
        }
    }
}

impl Remote for FakeRemote {
    async fn push(&self, request: &Push) -> Result<PushAnswer, RemoteError> {
        // Read as a server reads it, from the JSON that goes over the wire.
        let json = serde_json::to_string(request).expect("a push serializes");
        let request: PushRequest = serde_json::from_str(&json).expect("a push reads back as the protocol's request");
        self.0.borrow_mut().pushes += 1;
        self.authorized()?;
        let fault = self.0.borrow_mut().push_faults.pop_front();
        match fault {
            Some(Fault::Before(error)) => return Err(error),
            Some(Fault::Reply(response)) => return Ok(over_the_wire(&response)),
            _ => {}
        }
        let mut server = self.0.borrow_mut();
        let mut results: Vec<MutationResult> = Vec::with_capacity(request.mutations.len());
        for m in &request.mutations {
            assert!(m.after.is_none() || server.chains, "a chained mutation pushed to a server that does not take them");
            let base_version = standing_version(m, &results);
            results.push(server.apply(&request.client_id, m, base_version));
        }
        // Served after the push, as the reference server does; left out where
        // a scripted pull fault waits for the next pull.
        let pull = match &request.pull {
            Some(pull) if !server.ignores_pulls_with_push && server.pull_faults.is_empty() => {
                server.pulls_with_push += 1;
                server.page(pull.cursor.as_deref(), pull.limit, pull.client_id.as_deref()).ok()
            }
            _ => None,
        };
        match fault {
            Some(Fault::After(error)) => Err(error),
            _ => Ok(over_the_wire(&PushResponse { results, pull })),
        }
    }

    fn pulls_with_push(&self) -> bool {
        true
    }

    fn chains(&self) -> bool {
        self.0.borrow().chains
    }

    async fn pull(&self, cursor: Option<&str>, limit: usize, client_id: Option<&str>) -> Result<PullPage, RemoteError> {
        self.0.borrow_mut().pulls += 1;
        self.authorized()?;
        let fault = self.0.borrow_mut().pull_faults.pop_front();
        if let Some(Fault::Before(error)) = fault {
            return Err(error);
        }
        let response = self.0.borrow_mut().page(cursor, limit, client_id)?;
        match fault {
            Some(Fault::After(error)) => Err(error),
            _ => Ok(over_the_wire(&response)),
        }
    }

    async fn refresh_auth(&self) -> Result<(), RemoteError> {
        let mut server = self.0.borrow_mut();
        server.refreshes += 1;
        server.expired_tokens = server.expired_tokens.saturating_sub(1);
        Ok(())
    }

    fn learned(&self) -> Option<String> {
        self.0.borrow().says.clone()
    }

    fn recall(&self, learned: &str) {
        self.0.borrow_mut().recalled.push(learned.to_owned());
    }
}

/// `answer` as a client reads it: from the JSON that goes over the wire.
fn over_the_wire<A: Serialize, B: DeserializeOwned>(answer: &A) -> B {
    let json = serde_json::to_string(answer).expect("an answer serializes");
    serde_json::from_str(&json).expect("an answer reads back as a client reads it")
}
