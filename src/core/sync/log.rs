//! The log entries a batch of recorded answers gives: one per pushed
//! mutation's answer, and one per conflict with what the collection's policy
//! made of it. Pulled changes get no entry each (a page can hold a thousand):
//! the `pulled` step counts them.

use serde::Serialize;
use tideway_protocol::PushStatus;

use super::engine::Step;
use crate::core::reconcile::{ConflictPolicy, Outcome, Policies, Resolution, ServerAnswer, Settled};

/// What the server said of one pushed mutation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum AnswerStatus {
    Applied,
    Conflict,
    /// Refused for good: by its result, or by a refusal of the whole push that blamed it.
    Rejected,
}

/// What a conflict came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ConflictOutcome {
    /// The policy's answer was the server's version, which the entity took.
    Server,
    /// The policy's answer (local or merged data) was queued to push.
    Queued,
    /// The entity waits in `conflict` for the app (`"manual"`, or a resolver that threw).
    Manual,
    /// The server left its data out of the answer; the pull that follows brings it and settles the conflict.
    Deferred,
}

/// The entries for `answers` as recorded (`settled`), in that order: answers first, then conflicts.
pub fn steps_of(answers: &[ServerAnswer], settled: &[Settled], policies: &Policies) -> Vec<Step> {
    let answered = answers.iter().filter_map(|answer| match answer {
        ServerAnswer::Pushed { mutation, result } => Some(Step::Answer {
            mutation_id: mutation.mutation_id,
            collection: mutation.collection.clone(),
            id: mutation.id.clone(),
            status: match result.status {
                PushStatus::Applied => AnswerStatus::Applied,
                PushStatus::Conflict => AnswerStatus::Conflict,
                PushStatus::Rejected => AnswerStatus::Rejected,
            },
            error: result.error.as_ref().map(|e| format!("{}: {}", e.code, e.message)),
        }),
        ServerAnswer::Refused { mutation, error } => Some(Step::Answer {
            mutation_id: mutation.mutation_id,
            collection: mutation.collection.clone(),
            id: mutation.id.clone(),
            status: AnswerStatus::Rejected,
            error: Some(error.clone()),
        }),
        ServerAnswer::Pulled { .. } => None,
    });
    let conflicts = settled.iter().filter_map(|item| {
        let outcome = match item.outcome {
            Outcome::Resolved(Resolution::Server) => ConflictOutcome::Server,
            Outcome::Resolved(Resolution::Queued) => ConflictOutcome::Queued,
            Outcome::Conflict => ConflictOutcome::Manual,
            Outcome::Withheld => ConflictOutcome::Deferred,
            Outcome::Pushed | Outcome::Pulled | Outcome::Unchanged | Outcome::Failed(_) => return None,
        };
        let policy = policy_name(policies.of(&item.collection));
        Some(Step::Conflict { collection: item.collection.clone(), id: item.id.clone(), policy, outcome })
    });
    answered.chain(conflicts).collect()
}

/// A policy as an app names it in `open({ collections })`.
fn policy_name(policy: &ConflictPolicy) -> &'static str {
    match policy {
        ConflictPolicy::ServerWins => "serverWins",
        ConflictPolicy::ClientWins => "clientWins",
        ConflictPolicy::Merge => "merge",
        ConflictPolicy::Manual => "manual",
        ConflictPolicy::Custom(_) => "function",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use tideway_protocol::{ErrorDetail, MutationResult, Op};
    use crate::core::sync::{MutationAnswer, ServerChange};
    use crate::core::DataText;

    use super::*;
    use crate::core::mutation::Mutation;

    fn mutation(mutation_id: u64, id: &str) -> Mutation {
        Mutation {
            mutation_id,
            collection: "notes".into(),
            id: id.into(),
            op: Op::Put,
            data: None,
            base_version: 0,
            created_at: 0.0,
            attempts: 0,
            last_error: None,
        }
    }

    fn result(mutation_id: u64, status: PushStatus) -> MutationAnswer {
        MutationResult { mutation_id, status, version: None, server_updated_at: None, remote_id: None, current: None, error: None }
    }

    fn settled(id: &str, outcome: Outcome) -> Settled {
        Settled { collection: "notes".into(), id: id.into(), entity: None, outcome }
    }

    #[test]
    fn each_pushed_answer_and_each_conflict_has_an_entry() {
        let mut refused = result(3, PushStatus::Rejected);
        refused.error = Some(ErrorDetail { code: "data_too_large".into(), message: "too big".into() });
        let answers = vec![
            ServerAnswer::Pushed { mutation: mutation(1, "a"), result: result(1, PushStatus::Applied) },
            ServerAnswer::Pushed { mutation: mutation(2, "b"), result: result(2, PushStatus::Conflict) },
            ServerAnswer::Pushed { mutation: mutation(3, "c"), result: refused },
        ];
        let recorded = vec![
            settled("a", Outcome::Pushed),
            settled("b", Outcome::Conflict),
            settled("c", Outcome::Failed("data_too_large: too big".into())),
        ];
        let policies = Policies { default: ConflictPolicy::Manual, ..Policies::default() };
        let steps = steps_of(&answers, &recorded, &policies);
        let entries: Vec<_> = steps.iter().map(|step| serde_json::to_value(step).unwrap()).collect();
        assert_eq!(
            entries,
            vec![
                json!({"step": "answer", "mutationId": 1, "collection": "notes", "id": "a", "status": "applied", "error": null}),
                json!({"step": "answer", "mutationId": 2, "collection": "notes", "id": "b", "status": "conflict", "error": null}),
                json!({"step": "answer", "mutationId": 3, "collection": "notes", "id": "c", "status": "rejected",
                       "error": "data_too_large: too big"}),
                json!({"step": "conflict", "collection": "notes", "id": "b", "policy": "manual", "outcome": "manual"}),
            ]
        );
    }

    #[test]
    fn pulled_changes_give_entries_only_for_conflicts() {
        let change = |id: &str| ServerChange {
            collection: "notes".into(),
            id: id.into(),
            data: DataText::of(&serde_json::Map::new()),
            version: 2,
            server_updated_at: 1,
            deleted: false,
        };
        let answers: Vec<_> = ["a", "b", "c", "d"].iter().map(|id| ServerAnswer::Pulled { id: id.to_string(), change: change(id) }).collect();
        let recorded = vec![
            settled("a", Outcome::Pulled),
            settled("b", Outcome::Resolved(Resolution::Server)),
            settled("c", Outcome::Resolved(Resolution::Queued)),
            settled("d", Outcome::Unchanged),
        ];
        let mut policies = Policies::default();
        policies.collections.insert("notes".into(), ConflictPolicy::ClientWins);
        let steps = steps_of(&answers, &recorded, &policies);
        assert_eq!(
            steps,
            vec![
                Step::Conflict { collection: "notes".into(), id: "b".into(), policy: "clientWins", outcome: ConflictOutcome::Server },
                Step::Conflict { collection: "notes".into(), id: "c".into(), policy: "clientWins", outcome: ConflictOutcome::Queued },
            ]
        );
    }

    #[test]
    fn a_refused_push_blames_its_mutation() {
        let answers = vec![ServerAnswer::Refused { mutation: mutation(7, "x"), error: "HTTP 413: too large".into() }];
        let steps = steps_of(&answers, &[settled("x", Outcome::Failed("HTTP 413: too large".into()))], &Policies::default());
        assert_eq!(
            steps,
            vec![Step::Answer {
                mutation_id: 7,
                collection: "notes".into(),
                id: "x".into(),
                status: AnswerStatus::Rejected,
                error: Some("HTTP 413: too large".into()),
            }]
        );
    }
}
