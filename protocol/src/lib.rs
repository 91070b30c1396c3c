//! The Tideway sync protocol: the JSON shapes exchanged between a client and a
//! sync server, and the rules both sides enforce on names and sizes.
//!
//! `docs/protocol.md` is the normative description; this crate is its Rust
//! expression, shared by the browser client and the reference server so the two
//! can never disagree on a limit. Every type ignores unknown fields, so either
//! side can add fields without breaking the other.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub mod strict;

/// The longest collection name, in bytes.
pub const MAX_COLLECTION_NAME_LEN: usize = 64;
/// The longest entity id, in bytes.
pub const MAX_ENTITY_ID_LEN: usize = 128;
/// How deeply objects and arrays may nest inside an entity's `data`.
pub const MAX_DATA_DEPTH: usize = 32;
/// The largest serialized `data` of one entity, in bytes.
pub const MAX_DATA_BYTES: usize = 1024 * 1024;

/// The largest request body the server accepts, in bytes (413 above it).
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;
/// The most mutations one `POST /v1/push` may carry (413 above it).
pub const MAX_PUSH_MUTATIONS: usize = 1000;
/// The most changes one `GET /v1/pull` page may ask for.
pub const MAX_PULL_LIMIT: usize = 1000;
/// The bytes of entity data after which a `GET /v1/pull` page stops, before
/// `limit` is reached (`hasMore` is then `true`). A page always holds at least
/// one change, so one entity of up to [`MAX_DATA_BYTES`] is always delivered.
pub const MAX_PULL_PAGE_BYTES: usize = 4 * 1024 * 1024;
/// The page size of `GET /v1/pull` when `limit` is absent.
pub const DEFAULT_PULL_LIMIT: usize = 100;
/// The longest client id, in bytes.
pub const MAX_CLIENT_ID_LEN: usize = 128;
/// The longest `Idempotency-Key` header value, in bytes.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;
/// The most bytes of entity data that the `current` fields of one push
/// response carry together. Conflicts get their `current` in order until the
/// next one would pass this budget; from there on `current` is left out (the
/// result still gives the entity's `version`) and the client fetches what it
/// lacks. At least one `current` always fits, since it is above [`MAX_DATA_BYTES`].
pub const MAX_CONFLICT_CURRENT_BYTES: usize = 2 * 1024 * 1024;
/// The largest `mutationId` or `baseVersion`: integers above 2^53 - 1 lose
/// precision in JavaScript, so the protocol never lets them on the wire.
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// The header every answer of a server carries to list the optional parts
/// of the protocol it serves, comma-separated (see [`serves_feature`]).
pub const FEATURES_HEADER: &str = "Tideway-Features";
/// The feature of a server that takes a mutation's `after` ([`PushMutation::after`]).
pub const FEATURE_AFTER: &str = "after";

/// Whether a server's [`FEATURES_HEADER`] lists `feature`.
pub fn serves_feature(features: &str, feature: &str) -> bool {
    features.split(',').any(|listed| listed.trim().eq_ignore_ascii_case(feature))
}

/// The stable `code` strings of error bodies and `rejected` results.
/// Clients switch on these; the messages beside them are for people.
pub mod codes {
    /// 400: the body is not JSON.
    pub const MALFORMED_JSON: &str = "malformed_json";
    /// 400: the body is JSON but not the expected shape (types, missing fields).
    pub const INVALID_REQUEST: &str = "invalid_request";
    /// 400: `clientId` breaks the id syntax.
    pub const INVALID_CLIENT_ID: &str = "invalid_client_id";
    /// 400: a `mutationId` is 0, too large, or not strictly increasing within the batch.
    pub const INVALID_MUTATION_ID: &str = "invalid_mutation_id";
    /// 400: a `baseVersion` is above [`super::MAX_SAFE_INTEGER`].
    pub const INVALID_BASE_VERSION: &str = "invalid_base_version";
    /// 400: an `after` names no mutation of the same push that is the one
    /// before it for the same entity.
    pub const INVALID_AFTER: &str = "invalid_after";
    /// 400: a collection name breaks its syntax.
    pub const INVALID_COLLECTION: &str = "invalid_collection";
    /// 400: an entity id breaks its syntax.
    pub const INVALID_ID: &str = "invalid_id";
    /// 400: `data` is missing where needed, not an object, or nested too deep.
    pub const INVALID_DATA: &str = "invalid_data";
    /// 400: `cursor` is not one this server could have issued.
    pub const INVALID_CURSOR: &str = "invalid_cursor";
    /// 400: `limit` is not an integer from 1 to [`super::MAX_PULL_LIMIT`].
    pub const INVALID_LIMIT: &str = "invalid_limit";
    /// 400: an `If-Match` or `Idempotency-Key` header is malformed.
    pub const INVALID_HEADER: &str = "invalid_header";
    /// 401: no valid `Authorization: Bearer` token.
    pub const UNAUTHORIZED: &str = "unauthorized";
    /// 429: too many failed authentications from this client's address; retry
    /// after `Retry-After`.
    pub const TOO_MANY_REQUESTS: &str = "too_many_requests";
    /// 404: no such route, or no such entity for this user. Also a `rejected`
    /// code: a `patch` or `delete` of an entity that does not exist.
    pub const NOT_FOUND: &str = "not_found";
    /// 405: the route exists but not with this method.
    pub const METHOD_NOT_ALLOWED: &str = "method_not_allowed";
    /// 409: the entity exists and the request did not say which version it replaces.
    pub const CONFLICT: &str = "conflict";
    /// 410: the cursor can no longer be served; pull again from the start.
    pub const CURSOR_EXPIRED: &str = "cursor_expired";
    /// 412: `If-Match` does not match the entity's current version.
    pub const PRECONDITION_FAILED: &str = "precondition_failed";
    /// 413: the request body is larger than [`super::MAX_BODY_BYTES`].
    pub const PAYLOAD_TOO_LARGE: &str = "payload_too_large";
    /// 413: a push carries more than [`super::MAX_PUSH_MUTATIONS`] mutations.
    pub const BATCH_TOO_LARGE: &str = "batch_too_large";
    /// 413: an entity's serialized data exceeds [`super::MAX_DATA_BYTES`].
    /// Also a `rejected` code, when a patch would grow data past the limit.
    pub const DATA_TOO_LARGE: &str = "data_too_large";
    /// 408: the request was not received and answered in time (a stalled
    /// upload, or work past the server's request timeout). Retry with backoff.
    pub const REQUEST_TIMEOUT: &str = "request_timeout";
    /// 415: the body is not sent as `application/json`.
    pub const UNSUPPORTED_MEDIA_TYPE: &str = "unsupported_media_type";
    /// 415: the body comes in a `Content-Encoding` the server does not take.
    /// The answer's `Accept-Encoding` lists those it does (RFC 7694); send
    /// the body again plain.
    pub const UNSUPPORTED_ENCODING: &str = "unsupported_encoding";
    /// 422: an `Idempotency-Key` was reused for a different request.
    pub const IDEMPOTENCY_KEY_REUSED: &str = "idempotency_key_reused";
    /// `rejected` only: a `mutationId` at or below the highest this client
    /// already had processed, that the server never saw (sent out of order).
    pub const OUT_OF_ORDER: &str = "out_of_order";
    /// 503: the database is busy or unreachable; retry with backoff.
    pub const UNAVAILABLE: &str = "unavailable";
    /// 500: a server fault; retry with backoff.
    pub const INTERNAL: &str = "internal";
}

/// Why a name or an entity's data breaks the protocol's rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid(pub String);

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Invalid {}

/// The most bytes of a client's input that an error message quotes.
pub const MAX_ECHOED_BYTES: usize = 64;

/// `input` quoted for an error message, cut to [`MAX_ECHOED_BYTES`] (at a
/// character boundary) with its full length said, so that a huge invalid input
/// never comes back whole in the answer.
pub fn echo(input: &str) -> String {
    if input.len() <= MAX_ECHOED_BYTES {
        return format!("{input:?}");
    }
    let mut end = MAX_ECHOED_BYTES;
    while !input.is_char_boundary(end) {
        end -= 1;
    }
    format!("{:?}… ({} bytes)", &input[..end], input.len())
}

/// Whether a server's `Accept-Encoding`, which in an answer lists the encodings
/// it takes a request body in (RFC 7694), names gzip with a weight above zero.
pub fn takes_gzip_bodies(accept_encoding: &str) -> bool {
    accept_encoding.split(',').any(|coding| {
        let mut parts = coding.split(';').map(str::trim);
        let zero_weight = |param: &str| param.strip_prefix("q=").is_some_and(|weight| weight.bytes().all(|b| b == b'0' || b == b'.'));
        parts.next().is_some_and(|name| name.eq_ignore_ascii_case("gzip")) && !parts.any(zero_weight)
    })
}

/// A collection name: 1 to 64 ASCII letters, digits, `_` or `-`, starting with a letter.
pub fn validate_collection_name(name: &str) -> Result<(), Invalid> {
    let mut chars = name.chars();
    let starts_with_letter = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if starts_with_letter && rest_ok && name.len() <= MAX_COLLECTION_NAME_LEN {
        Ok(())
    } else {
        Err(Invalid(format!(
            "collection name {} is invalid: use 1 to {MAX_COLLECTION_NAME_LEN} ASCII letters, digits, '_' or '-', starting with a letter",
            echo(name)
        )))
    }
}

/// An entity id: 1 to 128 ASCII letters, digits, `_`, `-`, `.` or `:`, and not
/// `.` or `..` (a URL path cannot address them: they are its dot-segments).
/// UUIDs, ULIDs, numeric ids and `type:123` style ids all fit.
pub fn validate_entity_id(id: &str) -> Result<(), Invalid> {
    let ok = !id.is_empty()
        && id.len() <= MAX_ENTITY_ID_LEN
        && id != "."
        && id != ".."
        && id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'));
    if ok {
        Ok(())
    } else {
        Err(Invalid(format!(
            "entity id {} is invalid: use 1 to {MAX_ENTITY_ID_LEN} ASCII letters, digits, '_', '-', '.' or ':', not . or ..",
            echo(id)
        )))
    }
}

/// Checks that `data` nests at most [`MAX_DATA_DEPTH`] levels deep.
/// (Its size is checked by whoever serializes it.)
pub fn validate_data_depth(data: &Map<String, Value>) -> Result<(), Invalid> {
    fn depth(value: &Value) -> usize {
        match value {
            Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
            Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
            _ => 0,
        }
    }
    let deepest = 1 + data.values().map(depth).max().unwrap_or(0);
    if deepest > MAX_DATA_DEPTH {
        Err(Invalid(format!("data nests {deepest} levels deep; at most {MAX_DATA_DEPTH} are allowed")))
    } else {
        Ok(())
    }
}

/// A client id: the same syntax as an entity id (1 to 128 ASCII letters,
/// digits, `_`, `-`, `.` or `:`).
pub fn validate_client_id(id: &str) -> Result<(), Invalid> {
    validate_entity_id(id).map_err(|_| {
        Invalid(format!(
            "client id {} is invalid: use 1 to {MAX_CLIENT_ID_LEN} ASCII letters, digits, '_', '-', '.' or ':', not . or ..",
            echo(id)
        ))
    })
}

/// An `Idempotency-Key` header value: 1 to 255 visible ASCII characters.
pub fn validate_idempotency_key(key: &str) -> Result<(), Invalid> {
    let ok = !key.is_empty()
        && key.len() <= MAX_IDEMPOTENCY_KEY_LEN
        && key.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Ok(())
    } else {
        Err(Invalid(format!(
            "Idempotency-Key is invalid: use 1 to {MAX_IDEMPOTENCY_KEY_LEN} visible ASCII characters"
        )))
    }
}

/// The size of `data` once serialized, in bytes, without allocating it.
pub fn data_size(data: &Map<String, Value>) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Writing to a counter cannot fail, and a map of JSON values always serializes.
    let _ = serde_json::to_writer(&mut count, data);
    count.0
}

/// Checks an entity's data against the depth and size limits, answering
/// the error code that fits ([`codes::INVALID_DATA`] or [`codes::DATA_TOO_LARGE`]).
pub fn validate_data(data: &Map<String, Value>) -> Result<(), (&'static str, Invalid)> {
    validate_data_depth(data).map_err(|e| (codes::INVALID_DATA, e))?;
    let size = data_size(data);
    if size > MAX_DATA_BYTES {
        return Err((
            codes::DATA_TOO_LARGE,
            Invalid(format!("data is {size} bytes serialized; at most {MAX_DATA_BYTES} are allowed")),
        ));
    }
    Ok(())
}

/// Checks an entity's data held as the compact JSON text of an object (as
/// `serde_json` writes it) against the same limits as [`validate_data`]
/// without parsing it: its size is the text's length, its depth is counted
/// on the text, strings skipped.
pub fn validate_data_text(json: &str) -> Result<(), (&'static str, Invalid)> {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let mut bytes = json.bytes();
    while let Some(byte) = bytes.next() {
        match byte {
            b'"' => {
                while let Some(byte) = bytes.next() {
                    match byte {
                        b'\\' => {
                            bytes.next();
                        }
                        b'"' => break,
                        _ => {}
                    }
                }
            }
            b'{' | b'[' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    if deepest > MAX_DATA_DEPTH {
        return Err((
            codes::INVALID_DATA,
            Invalid(format!("data nests {deepest} levels deep; at most {MAX_DATA_DEPTH} are allowed")),
        ));
    }
    if json.len() > MAX_DATA_BYTES {
        return Err((
            codes::DATA_TOO_LARGE,
            Invalid(format!("data is {} bytes serialized; at most {MAX_DATA_BYTES} are allowed", json.len())),
        ));
    }
    Ok(())
}

/// A mutation's data in the form a push holds it: parsed, as a server reads
/// a push, or as the JSON text a client keeps it in. Both serialize to the
/// same JSON object.
pub trait PushData {
    /// Checks the data against the depth and size limits ([`validate_data`]).
    fn validate(&self) -> Result<(), (&'static str, Invalid)>;
}

impl PushData for Map<String, Value> {
    fn validate(&self) -> Result<(), (&'static str, Invalid)> {
        validate_data(self)
    }
}

/// What a `patch` does to an entity's data: each given top-level field
/// replaces the stored one, and a field set to `null` is removed. Client and
/// server apply patches with this one function, so they cannot disagree.
pub fn apply_patch(data: &mut Map<String, Value>, fields: &Map<String, Value>) {
    for (field, value) in fields {
        if value.is_null() {
            data.shift_remove(field);
        } else {
            data.insert(field.clone(), value.clone());
        }
    }
}

/// What the protocol's apply rule makes of one pushed mutation: see [`decide`].
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// The mutation applies: the entity's next version holds `data` (`{}` and
    /// `deleted: true` for a tombstone).
    Write { data: Map<String, Value>, deleted: bool },
    /// `baseVersion` is not the entity's current version: nothing changes, and
    /// the answer is `conflict` with the current version.
    Conflict,
    /// A permanent refusal of this mutation: the answer is `rejected` with this
    /// `code` (one of [`codes`]) and a message for people.
    Reject { code: &'static str, message: String },
}

/// The version `mutation` is applied on: its `baseVersion`, or, with an
/// `after`, the version the mutation it names made, if that one applied.
/// `None` (that one did not apply): `mutation` does not apply either, and is
/// answered as a conflict. `earlier` holds the results of the push's earlier
/// mutations, in mutationId order.
pub fn standing_version<D>(mutation: &PushMutation<D>, earlier: &[MutationResult]) -> Option<u64> {
    let Some(after) = mutation.after else { return Some(mutation.base_version) };
    let before = earlier.binary_search_by_key(&after, |result| result.mutation_id).ok().map(|i| &earlier[i])?;
    before.version.filter(|_| before.status == PushStatus::Applied)
}

/// The protocol's apply rule: what a validated mutation does to the entity it
/// names, given that entity as the server holds it for the user (`None` when it
/// never existed; a tombstone is `Some` with `deleted: true`).
///
/// - `baseVersion` must equal the current version (0 when absent, the delete's
///   version for a tombstone), otherwise [`Decision::Conflict`].
/// - `put` replaces the data, creating the entity or reviving a tombstone.
/// - `patch` shallow-merges with [`apply_patch`]; on an absent or deleted entity
///   it is rejected [`codes::NOT_FOUND`], and past [`MAX_DATA_BYTES`] it is
///   rejected [`codes::DATA_TOO_LARGE`].
/// - `delete` makes a tombstone; on an absent or deleted entity it is rejected
///   [`codes::NOT_FOUND`].
///
/// Pure: a server applies [`Decision::Write`] as the entity's next version, and a
/// test double can run the very same rule in memory.
pub fn decide(current: Option<&ServerEntity>, mutation: &PushMutation) -> Decision {
    let current_version = current.map_or(0, |c| c.version);
    if mutation.base_version != current_version {
        return Decision::Conflict;
    }
    let live = current.filter(|c| !c.deleted);
    match (mutation.op, live) {
        (Op::Put, _) => Decision::Write { data: mutation.data.clone().unwrap_or_default(), deleted: false },
        (Op::Patch | Op::Delete, None) => Decision::Reject {
            code: codes::NOT_FOUND,
            message: format!(
                "{}/{} does not exist (or is deleted); use put to create it",
                mutation.collection, mutation.id
            ),
        },
        (Op::Patch, Some(entity)) => {
            let mut data = entity.data.clone();
            if let Some(fields) = &mutation.data {
                apply_patch(&mut data, fields);
            }
            let size = data_size(&data);
            if size > MAX_DATA_BYTES {
                return Decision::Reject {
                    code: codes::DATA_TOO_LARGE,
                    message: format!("the patched data would be {size} bytes; at most {MAX_DATA_BYTES} are allowed"),
                };
            }
            Decision::Write { data, deleted: false }
        }
        // A tombstone keeps no data: the client only needs to know it is gone.
        (Op::Delete, Some(_)) => Decision::Write { data: Map::new(), deleted: true },
    }
}

/// Why a whole push request is refused before anything is applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushRequestError {
    /// One of [`codes`].
    pub code: &'static str,
    pub message: String,
    /// The offending mutation, when one is to blame.
    pub mutation_id: Option<u64>,
}

/// Checks everything about a push that does not depend on server state:
/// the batch size, the client id, mutation ids strictly increasing, and each
/// mutation's collection, id, base version and data. A server refuses the whole
/// batch on the first failure, so a client that runs this before enqueuing a
/// mutation never has its queue refused.
pub fn validate_push_request<D: PushData>(request: &PushRequest<D>) -> Result<(), PushRequestError> {
    let whole = |code: &'static str, message: String| PushRequestError { code, message, mutation_id: None };
    if request.mutations.len() > MAX_PUSH_MUTATIONS {
        return Err(whole(
            codes::BATCH_TOO_LARGE,
            format!("{} mutations in one push; at most {MAX_PUSH_MUTATIONS} are allowed", request.mutations.len()),
        ));
    }
    validate_client_id(&request.client_id).map_err(|e| whole(codes::INVALID_CLIENT_ID, e.0))?;
    let mut previous = 0u64;
    // The last mutation of each entity so far, for the `after`s to name.
    let mut last_of: std::collections::HashMap<(&str, &str), u64> = std::collections::HashMap::new();
    for m in &request.mutations {
        let fail = |code: &'static str, message: String| PushRequestError {
            code,
            message: format!("mutation {}: {message}", m.mutation_id),
            mutation_id: Some(m.mutation_id),
        };
        if m.mutation_id == 0 || m.mutation_id > MAX_SAFE_INTEGER {
            return Err(fail(codes::INVALID_MUTATION_ID, format!("mutationId must be from 1 to {MAX_SAFE_INTEGER}")));
        }
        if m.mutation_id <= previous {
            return Err(fail(
                codes::INVALID_MUTATION_ID,
                "mutationIds must be strictly increasing within a push".to_string(),
            ));
        }
        previous = m.mutation_id;
        if m.base_version > MAX_SAFE_INTEGER {
            return Err(fail(codes::INVALID_BASE_VERSION, format!("baseVersion must be at most {MAX_SAFE_INTEGER}")));
        }
        validate_collection_name(&m.collection).map_err(|e| fail(codes::INVALID_COLLECTION, e.0))?;
        validate_entity_id(&m.id).map_err(|e| fail(codes::INVALID_ID, e.0))?;
        let before = last_of.insert((&m.collection, &m.id), m.mutation_id);
        if let Some(after) = m.after {
            if before != Some(after) {
                return Err(fail(
                    codes::INVALID_AFTER,
                    format!("after must name the mutation before this one in the push for {}/{}", m.collection, m.id),
                ));
            }
        }
        match (m.op, &m.data) {
            (Op::Put | Op::Patch, None) => {
                return Err(fail(codes::INVALID_DATA, format!("{} needs a data object", m.op.name())));
            }
            (Op::Put | Op::Patch, Some(data)) => data.validate().map_err(|(code, e)| fail(code, e.0))?,
            // A delete's data, if any, is ignored.
            (Op::Delete, _) => {}
        }
    }
    Ok(())
}

/// What a mutation does to its entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    /// Replace the entity's data (creating the entity if needed).
    Put,
    /// Shallow-merge the given fields into the entity's data; `null` removes a field.
    Patch,
    /// Mark the entity deleted (a tombstone).
    Delete,
}

impl Op {
    /// The operation's name, as the protocol spells it.
    pub fn name(self) -> &'static str {
        match self {
            Op::Put => "put",
            Op::Patch => "patch",
            Op::Delete => "delete",
        }
    }
}

/// One queued change, as a client pushes it. Its `data` is parsed where a
/// server reads it, and may be any [`PushData`] where a client writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", bound(serialize = "D: Serialize", deserialize = "D: From<Map<String, Value>>"))]
pub struct PushMutation<D = Map<String, Value>> {
    pub mutation_id: u64,
    pub collection: String,
    pub id: String,
    pub op: Op,
    /// Read strictly: see [`strict`].
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "strict::optional_data")]
    pub data: Option<D>,
    pub base_version: u64,
    /// The mutation before this one in the same push for the same entity,
    /// which this one builds on: it applies only if that one applied, on the
    /// version that one made, and `base_version` is not used. A server takes
    /// it only where it lists [`FEATURE_AFTER`] in its [`FEATURES_HEADER`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<u64>,
}

/// `POST /v1/push` request body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", bound(serialize = "D: Serialize", deserialize = "D: From<Map<String, Value>>"))]
pub struct PushRequest<D = Map<String, Value>> {
    pub client_id: String,
    pub mutations: Vec<PushMutation<D>>,
    /// The pull to answer once the push is applied, in the same answer
    /// ([`PushResponse::pull`]): a client that has nothing more to push saves
    /// the round trip of a `GET /v1/pull`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull: Option<PullRequest>,
}

/// A `GET /v1/pull`'s parameters, carried by a push ([`PushRequest::pull`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PullRequest {
    /// Absent: from the beginning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    pub limit: usize,
    /// Present: leave out the changes whose latest write was this client's own push.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
}

/// The outcome of one pushed mutation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PushStatus {
    Applied,
    Conflict,
    Rejected,
}

/// An entity as the server holds it. Its `data` is a parsed object where a
/// server writes it, and may be any type that reads an object where a client
/// reads it (its JSON text, say, kept as it came).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerEntity<D = Map<String, Value>> {
    pub collection: String,
    pub id: String,
    pub data: D,
    pub version: u64,
    pub server_updated_at: i64,
    #[serde(default)]
    pub deleted: bool,
}

/// A machine-readable error: a stable `code` and a sentence for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
}

/// The body of every error response: `{"error": {"code", "message"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// The server's answer for one mutation of a push.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", bound(deserialize = "D: Deserialize<'de>"))]
pub struct MutationResult<D = Map<String, Value>> {
    pub mutation_id: u64,
    pub status: PushStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_updated_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_id: Option<String>,
    /// The server's current entity, on `conflict`, when the entity exists and its
    /// data fits the response's budget ([`MAX_CONFLICT_CURRENT_BYTES`]). A conflict
    /// with `version` but without `current` means the entity exists at that
    /// version and its data was left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<ServerEntity<D>>,
    /// Why, on `rejected`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorDetail>,
}

/// `POST /v1/push` response body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound(deserialize = "D: Deserialize<'de>"))]
pub struct PushResponse<D = Map<String, Value>> {
    pub results: Vec<MutationResult<D>>,
    /// The page the push's `pull` asked for, served after the push was
    /// applied; absent where the server left it out (it need not serve it),
    /// and then the client asks `GET /v1/pull`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull: Option<PullResponse<D>>,
}

/// `GET /v1/pull` response body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PullResponse<D = Map<String, Value>> {
    pub changes: Vec<ServerEntity<D>>,
    pub cursor: String,
    pub has_more: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_bodies_taken() {
        for yes in ["gzip", "GZip", "identity, gzip", "br;q=1, gzip ; q=0.5", "gzip;q=1.0"] {
            assert!(takes_gzip_bodies(yes), "{yes}");
        }
        for no in ["", "identity", "br", "gzip;q=0", "gzip; q=0.000", "x-gzip", "gzipped"] {
            assert!(!takes_gzip_bodies(no), "{no}");
        }
    }

    #[test]
    fn collection_names() {
        for ok in ["notes", "Notes2", "a", "todo_items", "x-y"] {
            assert!(validate_collection_name(ok).is_ok(), "{ok}");
        }
        let too_long = "a".repeat(MAX_COLLECTION_NAME_LEN + 1);
        for bad in ["", "1notes", "_x", "no tes", "nötes", "a/b", too_long.as_str()] {
            assert!(validate_collection_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn entity_ids() {
        for ok in ["0f8fad5b-d9cb-469f-a165-70867728950e", "42", "user:7", "a.b_c"] {
            assert!(validate_entity_id(ok).is_ok(), "{ok}");
        }
        let too_long = "a".repeat(MAX_ENTITY_ID_LEN + 1);
        for bad in ["", "a b", "a/b", "é", ".", "..", too_long.as_str()] {
            assert!(validate_entity_id(bad).is_err(), "{bad}");
        }
        assert!(validate_entity_id("...").is_ok() && validate_entity_id(".a").is_ok());
    }

    #[test]
    fn invalid_input_is_echoed_cut_short() {
        let huge = "é".repeat(1_000_000);
        let message = validate_entity_id(&huge).unwrap_err().0;
        assert!(message.len() < 300, "{} bytes", message.len());
        assert!(message.contains("(2000000 bytes)"), "{message}");
        assert!(validate_collection_name(&huge).unwrap_err().0.len() < 300);
        assert!(validate_client_id(&huge).unwrap_err().0.len() < 300);
        assert_eq!(echo("a/b"), "\"a/b\"");
    }

    #[test]
    fn depth_limit() {
        let mut value = Value::from(1);
        for _ in 0..MAX_DATA_DEPTH - 1 {
            value = Value::Array(vec![value]);
        }
        let mut data = Map::new();
        data.insert("x".into(), value.clone());
        assert!(validate_data_depth(&data).is_ok());
        data.insert("x".into(), Value::Array(vec![value]));
        assert!(validate_data_depth(&data).is_err());
    }

    /// The text check answers what the parsed one does, brackets inside strings
    /// (escaped quotes included) not counting.
    #[test]
    fn data_text_is_checked_as_its_parsed_data() {
        let nested = |levels: usize| "[".repeat(levels) + &"]".repeat(levels);
        let texts = [
            r#"{}"#.to_string(),
            r#"{"a":"[[[{{{\"[[[","b":{"c":[1,{"d":null}]}}"#.to_string(),
            format!(r#"{{"x":{}}}"#, nested(MAX_DATA_DEPTH - 1)),
            format!(r#"{{"x":{}}}"#, nested(MAX_DATA_DEPTH)),
            format!(r#"{{"x":"{}"}}"#, "[".repeat(MAX_DATA_DEPTH + 5)),
            format!(r#"{{"blob":"{}"}}"#, "x".repeat(MAX_DATA_BYTES - 11)),
            format!(r#"{{"blob":"{}"}}"#, "x".repeat(MAX_DATA_BYTES - 10)),
        ];
        for text in texts {
            let parsed: Map<String, Value> = serde_json::from_str(&text).unwrap();
            let code = |result: Result<(), (&'static str, Invalid)>| result.err().map(|(code, _)| code);
            assert_eq!(code(validate_data_text(&text)), code(validate_data(&parsed)), "{}", &text[..text.len().min(80)]);
        }
        assert_eq!(validate_data_text(&format!(r#"{{"x":{}}}"#, nested(MAX_DATA_DEPTH))).unwrap_err().0, codes::INVALID_DATA);
        let too_large = format!(r#"{{"blob":"{}"}}"#, "x".repeat(MAX_DATA_BYTES));
        assert_eq!(validate_data_text(&too_large).unwrap_err().0, codes::DATA_TOO_LARGE);
    }

    fn mutation(mutation_id: u64) -> PushMutation {
        let mut data = Map::new();
        data.insert("title".into(), Value::from("x"));
        PushMutation { mutation_id, collection: "notes".into(), id: "n1".into(), op: Op::Put, data: Some(data), base_version: 0, after: None }
    }

    #[test]
    fn push_requests() {
        let ok = PushRequest { client_id: "c1".into(), mutations: vec![mutation(1), mutation(5)], pull: None };
        assert_eq!(validate_push_request(&ok), Ok(()));
        let code = |r: PushRequest| validate_push_request(&r).unwrap_err().code;
        assert_eq!(code(PushRequest { client_id: "".into(), mutations: vec![], pull: None }), codes::INVALID_CLIENT_ID);
        assert_eq!(code(PushRequest { client_id: "c".into(), mutations: vec![mutation(2), mutation(2)], pull: None }), codes::INVALID_MUTATION_ID);
        assert_eq!(code(PushRequest { client_id: "c".into(), mutations: vec![mutation(0)], pull: None }), codes::INVALID_MUTATION_ID);
        let mut no_data = mutation(1);
        no_data.data = None;
        assert_eq!(code(PushRequest { client_id: "c".into(), mutations: vec![no_data.clone()], pull: None }), codes::INVALID_DATA);
        no_data.op = Op::Delete;
        assert_eq!(validate_push_request(&PushRequest { client_id: "c".into(), mutations: vec![no_data], pull: None }), Ok(()));
        let mut big = mutation(1);
        big.data.as_mut().unwrap().insert("blob".into(), Value::from("x".repeat(MAX_DATA_BYTES)));
        assert_eq!(code(PushRequest { client_id: "c".into(), mutations: vec![big], pull: None }), codes::DATA_TOO_LARGE);
        let many = (1..=MAX_PUSH_MUTATIONS as u64 + 1).map(mutation).collect();
        assert_eq!(code(PushRequest { client_id: "c".into(), mutations: many, pull: None }), codes::BATCH_TOO_LARGE);
    }

    #[test]
    fn an_after_names_the_mutation_before_it_for_its_entity() {
        let after = |mutation_id, after| PushMutation { after, ..mutation(mutation_id) };
        let other = |mutation_id| PushMutation { id: "n2".into(), ..mutation(mutation_id) };
        let push = |mutations| PushRequest { client_id: "c".into(), mutations, pull: None };
        assert_eq!(validate_push_request(&push(vec![mutation(1), after(2, Some(1)), other(3), after(4, Some(2))])), Ok(()));
        for wrong in [
            vec![after(1, Some(1))],
            vec![after(2, Some(1))],
            vec![mutation(1), after(2, Some(3))],
            vec![mutation(1), after(2, Some(1)), after(3, Some(1))],
            vec![other(1), after(2, Some(1))],
        ] {
            let error = validate_push_request(&push(wrong.clone())).unwrap_err();
            assert_eq!((error.code, error.mutation_id), (codes::INVALID_AFTER, wrong.last().map(|m| m.mutation_id)), "{wrong:?}");
        }
        let json = serde_json::to_value(after(2, Some(1))).unwrap();
        assert_eq!(json["after"], 1);
        assert!(serde_json::to_value(mutation(1)).unwrap().get("after").is_none(), "left out when absent");
    }

    #[test]
    fn features_are_listed_by_name() {
        assert!(serves_feature("after", FEATURE_AFTER));
        assert!(serves_feature("attachments, After", FEATURE_AFTER));
        assert!(!serves_feature("afterwards", FEATURE_AFTER));
        assert!(!serves_feature("", FEATURE_AFTER));
    }

    fn entity(version: u64, deleted: bool, data: Value) -> ServerEntity {
        ServerEntity {
            collection: "notes".into(),
            id: "n".into(),
            data: data.as_object().cloned().unwrap_or_default(),
            version,
            server_updated_at: 0,
            deleted,
        }
    }

    fn op(op: Op, base_version: u64, data: Option<Value>) -> PushMutation {
        PushMutation {
            mutation_id: 1,
            collection: "notes".into(),
            id: "n".into(),
            op,
            data: data.and_then(|d| d.as_object().cloned()),
            base_version,
            after: None,
        }
    }

    #[test]
    fn decide_patch_merges_shallowly_and_null_removes() {
        let current = entity(2, false, serde_json::json!({"a": 1, "b": {"x": 1}, "c": 3}));
        let m = op(Op::Patch, 2, Some(serde_json::json!({"b": {"y": 2}, "c": null, "d": 4})));
        let Decision::Write { data, deleted: false } = decide(Some(&current), &m) else { panic!("not a write") };
        assert_eq!(Value::Object(data), serde_json::json!({"a": 1, "b": {"y": 2}, "d": 4}));
    }

    #[test]
    fn decide_base_version_must_match() {
        let current = entity(3, false, serde_json::json!({}));
        assert_eq!(decide(Some(&current), &op(Op::Put, 2, Some(serde_json::json!({})))), Decision::Conflict);
        assert_eq!(decide(Some(&current), &op(Op::Delete, 4, None)), Decision::Conflict);
        assert_eq!(decide(None, &op(Op::Put, 1, Some(serde_json::json!({})))), Decision::Conflict);
        assert_eq!(
            decide(None, &op(Op::Put, 0, Some(serde_json::json!({"t": 1})))),
            Decision::Write { data: serde_json::json!({"t": 1}).as_object().cloned().unwrap_or_default(), deleted: false }
        );
        assert_eq!(decide(Some(&current), &op(Op::Delete, 3, None)), Decision::Write { data: Map::new(), deleted: true });
    }

    #[test]
    fn decide_tombstones() {
        let tomb = entity(4, true, serde_json::json!({}));
        assert!(matches!(decide(Some(&tomb), &op(Op::Put, 4, Some(serde_json::json!({})))), Decision::Write { deleted: false, .. }));
        assert_eq!(decide(Some(&tomb), &op(Op::Put, 0, Some(serde_json::json!({})))), Decision::Conflict);
        assert!(matches!(decide(Some(&tomb), &op(Op::Patch, 4, Some(serde_json::json!({})))), Decision::Reject { code: codes::NOT_FOUND, .. }));
        assert!(matches!(decide(Some(&tomb), &op(Op::Delete, 4, None)), Decision::Reject { code: codes::NOT_FOUND, .. }));
        assert!(matches!(decide(None, &op(Op::Delete, 0, None)), Decision::Reject { code: codes::NOT_FOUND, .. }));
    }

    #[test]
    fn decide_refuses_a_patch_growing_data_past_the_limit() {
        let current = entity(1, false, serde_json::json!({"a": "x".repeat(MAX_DATA_BYTES - 20)}));
        let m = op(Op::Patch, 1, Some(serde_json::json!({"b": "y".repeat(40)})));
        assert!(matches!(decide(Some(&current), &m), Decision::Reject { code: codes::DATA_TOO_LARGE, .. }));
    }

    #[test]
    fn data_size_matches_serialization() {
        let data: Map<String, Value> = serde_json::from_str(r#"{"a":[1,2,{"b":"\u00e9\n"}],"c":null}"#).unwrap();
        assert_eq!(data_size(&data), serde_json::to_vec(&data).unwrap().len());
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let body = r#"{"results":[{"mutationId":1,"status":"applied","version":3,"future":true}],"extra":1}"#;
        let parsed: PushResponse = serde_json::from_str(body).unwrap();
        assert_eq!(parsed.results[0].version, Some(3));
    }
}
