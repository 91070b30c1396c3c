//! The one rule for recording a batch of server answers. A store reads what
//! the answers touch inside its transaction, [`plan`] decides everything on
//! that, and the store carries the plan out in the same transaction, in the
//! order [`SettlementPlan`] documents. Both stores run this code, so they
//! cannot drift apart on the order in which answers take effect.

use std::collections::{BTreeSet, HashMap, HashSet};

use super::answer::{Outcome, ServerAnswer, Settled};
use super::policy::Policies;
use super::settle::settle;
use crate::core::entity::Entity;
use crate::core::mutation::{Mutation, MutationId};

/// An entity's place: its collection and local id.
pub type EntityKey = (String, String);

/// What the answers need to see of the store, read in the transaction that
/// will record them (see [`Reads`] for what to read).
#[derive(Debug, Clone, Default)]
pub struct Stored {
    /// Each entity the answers are about, as stored (`None`: absent). Answers
    /// about an entity missing from the map are left out of the plan: a store
    /// reads only the collections it declares.
    pub entities: HashMap<EntityKey, Option<Entity>>,
    /// Which of the answered mutations are still in the outbox.
    pub queued: BTreeSet<MutationId>,
}

/// What a store reads before planning: each entity and each outbox entry the
/// answers are about, once.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reads {
    /// In the order the answers name them.
    pub entities: Vec<EntityKey>,
    /// Ascending.
    pub mutations: Vec<MutationId>,
}

impl Reads {
    /// The reads `answers` need, leaving out collections `declared` refuses.
    pub fn of<'a>(answers: impl IntoIterator<Item = &'a ServerAnswer>, declared: impl Fn(&str) -> bool) -> Reads {
        let answers = answers.into_iter();
        let expected = answers.size_hint().0;
        let mut reads = Reads { entities: Vec::with_capacity(expected), mutations: Vec::with_capacity(expected) };
        let mut seen: HashSet<(&str, &str)> = HashSet::with_capacity(expected);
        for answer in answers {
            if !declared(answer.collection()) {
                continue;
            }
            if seen.insert((answer.collection(), answer.id())) {
                reads.entities.push((answer.collection().to_owned(), answer.id().to_owned()));
            }
            reads.mutations.extend(answer.mutation_id());
        }
        reads.mutations.sort_unstable();
        reads.mutations.dedup();
        reads
    }
}

/// What recording a batch of answers writes, in the order a store carries it
/// out, all in one transaction:
///
/// 1. delete the outbox entries in `remove`;
/// 2. delete every outbox entry of each entity in `superseded`;
/// 3. append `append`, in order (the store assigns their mutation ids);
/// 4. store each entity of `entities`;
/// 5. save `cursor`, when there is one.
///
/// Steps 1 and 2 touch only entries queued before the plan was made: the
/// plan's own appends come after them, and an append that a later answer
/// superseded is already left out.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SettlementPlan {
    /// Ascending.
    pub remove: Vec<MutationId>,
    pub superseded: Vec<EntityKey>,
    pub append: Vec<Mutation>,
    /// Each entity the answers changed, once, as the last of them left it.
    pub entities: Vec<(String, Entity)>,
    /// For each of `entities`, whether every answer that changed it
    /// acknowledged a push of it: only its sync metadata changed, so its
    /// data, and every index key made from it, are as stored.
    pub acknowledged: Vec<bool>,
    pub cursor: Option<String>,
    /// What each answer did, in answer order.
    pub settled: Vec<Settled>,
}

impl SettlementPlan {
    /// Whether step 2 has anything to do (it is the one step that needs the
    /// store to find an entity's entries).
    pub fn supersedes(&self, collection: &str, id: &str) -> bool {
        self.superseded.iter().any(|(c, i)| c == collection && i == id)
    }
}

/// Decides what `answers` do, in order, to what is `stored`, each entity's
/// conflicts settled with its collection's policy; `now` dates re-queued
/// mutations; `cursor` is the pull page's, saved with its changes.
///
/// Answers take effect in order, each on the entity as the answers before it
/// left it. An answer to a push counts only while its outbox entry is still
/// there: not when another context recorded it already (it is not in
/// `stored.queued`), nor when an earlier answer of the batch removed it or
/// superseded its entity's entries.
pub fn plan(answers: &[ServerAnswer], mut stored: Stored, policies: &Policies, now: f64, cursor: Option<&str>) -> SettlementPlan {
    let mut removed = BTreeSet::new();
    let mut superseded: Vec<EntityKey> = Vec::new();
    let mut append: Vec<(EntityKey, Mutation)> = Vec::new();
    // The entities changed, in the order first changed, and the same as a set.
    let mut changed: Vec<EntityKey> = Vec::new();
    let mut changed_set: HashSet<EntityKey> = HashSet::with_capacity(answers.len());
    // Those of them that only acknowledgements changed.
    let mut only_acknowledged: HashSet<EntityKey> = HashSet::with_capacity(answers.len());
    let mut settled = Vec::with_capacity(answers.len());
    for answer in answers {
        let key = (answer.collection().to_owned(), answer.id().to_owned());
        let Some(current) = stored.entities.get(&key) else {
            continue;
        };
        let entry_gone =
            answer.mutation_id().is_some_and(|id| !stored.queued.contains(&id) || removed.contains(&id) || superseded.contains(&key));
        if entry_gone {
            settled.push(Settled { collection: key.0, id: key.1, entity: None, outcome: Outcome::Unchanged });
            continue;
        }
        let decision = settle(current.as_ref(), answer, policies.of(&key.0), now);
        if decision.drop_pending {
            append.retain(|(appended_for, _)| *appended_for != key);
            if !superseded.contains(&key) {
                superseded.push(key.clone());
            }
        }
        removed.extend(decision.remove);
        if let Some(mutation) = decision.enqueue {
            append.push((key.clone(), mutation));
        }
        if let Some(entity) = &decision.entity {
            let acknowledges = decision.outcome == Outcome::Pushed;
            if changed_set.insert(key.clone()) {
                changed.push(key.clone());
                if acknowledges {
                    only_acknowledged.insert(key.clone());
                }
            } else if !acknowledges {
                only_acknowledged.remove(&key);
            }
            stored.entities.insert(key.clone(), Some(entity.clone()));
        }
        settled.push(Settled { collection: key.0, id: key.1, entity: decision.entity, outcome: decision.outcome });
    }
    let mut entities = Vec::with_capacity(changed.len());
    let mut acknowledged = Vec::with_capacity(changed.len());
    for key in changed {
        if let Some(entity) = stored.entities.remove(&key).flatten() {
            acknowledged.push(only_acknowledged.contains(&key));
            entities.push((key.0, entity));
        }
    }
    SettlementPlan {
        remove: removed.into_iter().collect(),
        superseded,
        append: append.into_iter().map(|(_, mutation)| mutation).collect(),
        entities,
        acknowledged,
        cursor: cursor.map(str::to_owned),
        settled,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use tideway_protocol::{MutationResult, PushStatus};
    use crate::core::sync::ServerChange;

    use super::*;
    use crate::core::entity::{Data, DataText, SyncStatus};
    use crate::core::mutation::Op;
    use crate::core::reconcile::{ConflictPolicy, Resolution};

    fn data(value: serde_json::Value) -> Data {
        value.as_object().cloned().expect("an object")
    }

    fn text(value: serde_json::Value) -> DataText {
        DataText::of(&data(value))
    }

    fn dirty(id: &str, title: &str, pending: u32) -> Entity {
        let mut entity = Entity::new(id.into(), data(json!({ "title": title })), 10.0);
        entity.set_base(Some(data(json!({ "title": "base" }))));
        entity.version = 1;
        entity.pending = pending;
        entity.sync_status = SyncStatus::Dirty;
        entity
    }

    fn mutation(mutation_id: MutationId, id: &str, title: &str) -> Mutation {
        Mutation {
            mutation_id,
            collection: "notes".into(),
            id: id.into(),
            op: Op::Put,
            data: Some(text(json!({ "title": title }))),
            base_version: 1,
            created_at: 5.0,
            attempts: 0,
            last_error: None,
        }
    }

    fn server(id: &str, title: &str, version: u64) -> ServerChange {
        ServerChange {
            collection: "notes".into(),
            id: id.into(),
            version,
            data: DataText::of(&data(json!({ "title": title }))),
            server_updated_at: 99,
            deleted: false,
        }
    }

    fn conflict(mutation: Mutation, current: ServerChange) -> ServerAnswer {
        let result = MutationResult {
            mutation_id: mutation.mutation_id,
            status: PushStatus::Conflict,
            version: Some(current.version),
            server_updated_at: Some(current.server_updated_at),
            remote_id: None,
            current: Some(current),
            error: None,
        };
        ServerAnswer::Pushed { mutation, result }
    }

    fn applied(mutation: Mutation, version: u64) -> ServerAnswer {
        let result = MutationResult {
            mutation_id: mutation.mutation_id,
            status: PushStatus::Applied,
            version: Some(version),
            server_updated_at: Some(50),
            remote_id: Some(mutation.id.clone()),
            current: None,
            error: None,
        };
        ServerAnswer::Pushed { mutation, result }
    }

    fn stored(entities: &[Entity], queued: &[MutationId]) -> Stored {
        Stored {
            entities: entities.iter().map(|e| (("notes".to_owned(), e.id.clone()), Some(e.clone()))).collect(),
            queued: queued.iter().copied().collect(),
        }
    }

    fn policies(policy: ConflictPolicy) -> Policies {
        Policies { default: policy, ..Policies::default() }
    }

    #[test]
    fn reads_name_each_entity_and_entry_once_and_skip_undeclared_collections() {
        let mut other = mutation(3, "b", "x");
        other.collection = "gone".into();
        let answers = [applied(mutation(2, "a", "x"), 2), applied(mutation(1, "a", "y"), 3), applied(other, 1)];
        let reads = Reads::of(&answers, |collection| collection == "notes");
        assert_eq!(reads, Reads { entities: vec![("notes".into(), "a".into())], mutations: vec![1, 2] });
    }

    /// Two queued writes of one entity both conflict: the first answer's
    /// resolution supersedes the second write, so the second answer finds its
    /// entry gone and the outbox ends with exactly one resolution.
    #[test]
    fn a_conflict_supersedes_the_answers_after_it_for_that_entity() {
        let answers =
            [conflict(mutation(1, "a", "one"), server("a", "theirs", 2)), conflict(mutation(2, "a", "two"), server("a", "theirs", 2))];
        let plan = plan(&answers, stored(&[dirty("a", "two", 2)], &[1, 2]), &policies(ConflictPolicy::ClientWins), 100.0, None);
        assert_eq!(plan.superseded, vec![("notes".to_owned(), "a".to_owned())]);
        assert_eq!(plan.append.len(), 1, "{:?}", plan.append);
        assert_eq!(plan.append[0].data, Some(text(json!({ "title": "two" }))));
        assert_eq!(plan.append[0].base_version, 2);
        assert_eq!(plan.settled[0].outcome, Outcome::Resolved(Resolution::Queued));
        assert_eq!(plan.settled[1].outcome, Outcome::Unchanged);
        assert_eq!(plan.entities.len(), 1);
    }

    /// A resolution queued by one answer and superseded by a later one (a
    /// pulled change of the same entity in the same batch) is not appended:
    /// the later resolution carries its effect.
    #[test]
    fn a_later_resolution_replaces_an_earlier_one_of_the_batch() {
        let pulled = ServerAnswer::Pulled { id: "a".into(), change: server("a", "newest", 3) };
        let answers = [conflict(mutation(1, "a", "mine"), server("a", "theirs", 2)), pulled];
        let plan = plan(&answers, stored(&[dirty("a", "mine", 1)], &[1]), &policies(ConflictPolicy::ClientWins), 100.0, None);
        assert_eq!(plan.append.len(), 1, "{:?}", plan.append);
        assert_eq!(plan.append[0].base_version, 3);
        assert_eq!(plan.entities[0].1.version, 3);
        assert_eq!(plan.entities[0].1.pending, 1);
    }

    #[test]
    fn an_answer_another_context_recorded_changes_nothing() {
        let plan = plan(&[applied(mutation(7, "a", "x"), 2)], stored(&[dirty("a", "x", 1)], &[]), &Policies::default(), 1.0, Some("c1"));
        assert!(plan.remove.is_empty() && plan.entities.is_empty() && plan.append.is_empty());
        assert_eq!(plan.settled[0].outcome, Outcome::Unchanged);
        assert_eq!(plan.cursor.as_deref(), Some("c1"));
    }

    /// Each answer sees the entity as the answers before it left it, and the
    /// entity is written once, as the last one left it.
    #[test]
    fn answers_take_effect_in_order_and_each_entity_is_written_once() {
        let answers = [applied(mutation(1, "a", "one"), 2), applied(mutation(2, "a", "two"), 3)];
        let plan = plan(&answers, stored(&[dirty("a", "two", 2)], &[1, 2]), &Policies::default(), 1.0, None);
        assert_eq!(plan.remove, vec![1, 2]);
        assert_eq!(plan.entities.len(), 1);
        let entity = &plan.entities[0].1;
        assert_eq!((entity.version, entity.pending, entity.sync_status), (3, 0, SyncStatus::Synced));
        assert_eq!(plan.settled.iter().map(|s| s.entity.as_ref().map(|e| e.version)).collect::<Vec<_>>(), vec![Some(2), Some(3)]);
    }

    #[test]
    fn answers_about_entities_not_read_are_left_out() {
        let plan = plan(&[applied(mutation(1, "a", "x"), 2)], Stored::default(), &Policies::default(), 1.0, None);
        assert_eq!(plan, SettlementPlan::default());
    }

    /// Acknowledgements change only an entity's sync metadata; any other
    /// answer about it in the same batch (a pulled change, a conflict) may
    /// change its data, and with it the index keys a store keeps.
    #[test]
    fn entities_only_acknowledged_are_told_apart() {
        let answers = [
            applied(mutation(1, "a", "a"), 2),
            applied(mutation(2, "b", "b"), 2),
            ServerAnswer::Pulled { id: "b".into(), change: server("b", "theirs", 3) },
            ServerAnswer::Pulled { id: "c".into(), change: server("c", "new", 1) },
        ];
        let stored = stored(&[dirty("a", "a", 1), dirty("b", "b", 1)], &[1, 2]);
        let plan = plan(&answers, stored, &Policies::default(), 1.0, None);
        let ids: Vec<&str> = plan.entities.iter().map(|(_, entity)| entity.id.as_str()).collect();
        assert_eq!(ids, ["a", "b"]);
        assert_eq!(plan.acknowledged, [true, false]);
    }
}
