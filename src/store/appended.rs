//! The outbox entries an IndexedDB connection appended, kept as it wrote
//! them, so that a push takes them without reading their records back.
//! Pure, so it is tested natively.
//!
//! Reading an outbox record costs IndexedDB about 16 µs (its value is
//! fetched and cloned out), reading its key about 1 µs, and what a push sends
//! of an entry never changes once it is committed: its mutation id is never
//! reused, and only `attempts` and `last_error`, which a push does not send,
//! are ever rewritten. So a push reads the keys of the entries it would take
//! and takes them from here when every one is here, and reads the records
//! otherwise (entries another tab or worker appended, or more than are kept).

use std::cell::RefCell;

use crate::core::{Mutation, MutationId};

/// The most entries kept: the pushes of a backlog of this many written here
/// read no record. Each costs about 150 bytes beside its data, which it
/// shares with the entity written; later entries are read back.
const MOST_KEPT: usize = 20_000;

/// The kept entries, in mutation id order.
#[derive(Debug, Default)]
pub(crate) struct Appended(RefCell<Vec<Mutation>>);

impl Appended {
    /// Keeps the mutations a committed write appended (their mutation ids
    /// assigned), as long as there is room.
    pub(crate) fn keep<'a>(&self, mutations: impl IntoIterator<Item = &'a Mutation>) {
        let mutations: Vec<&Mutation> = mutations.into_iter().collect();
        let mut kept = self.0.borrow_mut();
        // Room for a large write's entries at once: grown by doubling, the
        // vector would hold up to twice the memory they need, and more while it
        // copies. Small writes still double it (at least as many as it holds).
        let (len, spare) = (kept.len(), kept.capacity() - kept.len());
        let room = MOST_KEPT.saturating_sub(len);
        let needed = mutations.len().min(room);
        if needed > spare {
            kept.reserve_exact(needed.max(len).min(room));
        }
        for mutation in mutations.into_iter().filter(|m| m.mutation_id > 0) {
            if kept.len() >= MOST_KEPT {
                return;
            }
            // Writes commit in mutation id order: an entry nearly always goes last.
            let at = kept.partition_point(|m| m.mutation_id < mutation.mutation_id);
            if kept.get(at).is_none_or(|m| m.mutation_id != mutation.mutation_id) {
                kept.insert(at, mutation.clone());
            }
        }
    }

    /// The entries whose mutation ids are `keys`, if every one is kept:
    /// `keys` being the outbox's keys past `after`, ascending, read up to a
    /// limit (`reached_end` if the outbox held fewer). A kept entry past
    /// `after` that is not among them has left the outbox (answered or
    /// superseded, here or in another context) and is forgotten: up to the
    /// last key, or past it too when the read reached the end.
    pub(crate) fn take(&self, after: MutationId, keys: &[MutationId], reached_end: bool) -> Option<Vec<Mutation>> {
        let mut kept = self.0.borrow_mut();
        // Every kept entry past `after` and up to here that is still queued is among the keys.
        let upto = if reached_end { MutationId::MAX } else { keys.last().copied().unwrap_or(after) };
        kept.retain(|m| m.mutation_id <= after || m.mutation_id > upto || keys.binary_search(&m.mutation_id).is_ok());
        release_if_empty(&mut kept);
        let start = kept.partition_point(|m| m.mutation_id <= after);
        let taken = kept.get(start..start + keys.len())?;
        taken.iter().map(|m| m.mutation_id).eq(keys.iter().copied()).then(|| taken.to_vec())
    }

    /// Whether any entry past `after` is kept: if none is, a push has nothing
    /// to take from here, and its keys need not be read first.
    pub(crate) fn holds_after(&self, after: MutationId) -> bool {
        self.0.borrow().last().is_some_and(|m| m.mutation_id > after)
    }

    /// Forgets the kept entries `left` says left the outbox.
    pub(crate) fn forget(&self, left: impl Fn(&Mutation) -> bool) {
        let mut kept = self.0.borrow_mut();
        kept.retain(|m| !left(m));
        release_if_empty(&mut kept);
    }
}

/// Gives the memory of `kept` back once every entry left, as after a push of
/// all of them.
fn release_if_empty(kept: &mut Vec<Mutation>) {
    if kept.is_empty() {
        *kept = Vec::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::Op;

    fn mutation(mutation_id: MutationId) -> Mutation {
        Mutation {
            mutation_id,
            collection: "notes".into(),
            id: format!("n{mutation_id}"),
            op: Op::Delete,
            data: None,
            base_version: 1,
            created_at: 0.0,
            attempts: 0,
            last_error: None,
        }
    }

    fn kept(ids: &[MutationId]) -> Appended {
        let appended = Appended::default();
        appended.keep(&ids.iter().copied().map(mutation).collect::<Vec<_>>());
        appended
    }

    fn ids(mutations: Option<Vec<Mutation>>) -> Option<Vec<MutationId>> {
        mutations.map(|mutations| mutations.iter().map(|m| m.mutation_id).collect())
    }

    #[test]
    fn the_entries_past_after_are_taken_when_every_key_is_kept() {
        let appended = kept(&[3, 4, 5, 6]);
        assert_eq!(ids(appended.take(3, &[4, 5], false)), Some(vec![4, 5]));
        assert_eq!(ids(appended.take(0, &[3, 4, 5, 6], true)), Some(vec![3, 4, 5, 6]));
    }

    #[test]
    fn a_key_not_kept_means_the_records_are_read() {
        // 5 was appended by another context.
        let appended = kept(&[3, 4, 6]);
        assert_eq!(appended.take(0, &[3, 4, 5, 6], true), None);
        // Those it has are still there for the next read.
        assert_eq!(ids(appended.take(4, &[6], true)), Some(vec![6]));
    }

    #[test]
    fn entries_that_left_the_outbox_are_forgotten_and_never_taken() {
        // 4 and 6 were answered (in another context, say).
        let appended = kept(&[3, 4, 5, 6, 7]);
        assert_eq!(ids(appended.take(0, &[3, 5], false)), Some(vec![3, 5]));
        // 7 lay past the last key read: it may still be queued.
        assert_eq!(ids(appended.take(5, &[7], true)), Some(vec![7]));
        assert_eq!(ids(appended.take(0, &[], true)), Some(vec![]));
        assert_eq!(appended.take(0, &[7], true), None, "everything was forgotten once the outbox was read empty");
    }

    #[test]
    fn only_entries_past_after_count_as_held() {
        assert!(!Appended::default().holds_after(0));
        let appended = kept(&[3, 4]);
        assert!(appended.holds_after(3));
        assert!(!appended.holds_after(4));
        appended.forget(|m| m.mutation_id == 4);
        assert!(!appended.holds_after(3));
    }

    #[test]
    fn forgotten_entries_are_read_again() {
        let appended = kept(&[1, 2, 3]);
        appended.forget(|m| m.mutation_id == 2);
        assert_eq!(appended.take(0, &[1, 2, 3], true), None);
    }

    #[test]
    fn entries_arrive_in_any_order_once_each_and_up_to_the_most_kept() {
        let appended = kept(&[5, 3]);
        appended.keep(&[mutation(4), mutation(3), mutation(0)]);
        assert_eq!(ids(appended.take(0, &[3, 4, 5], true)), Some(vec![3, 4, 5]));

        let full = Appended::default();
        let many: Vec<Mutation> = (1..=MOST_KEPT as MutationId + 1).map(mutation).collect();
        full.keep(&many);
        let last = MOST_KEPT as MutationId;
        assert_eq!(ids(full.take(last - 1, &[last], false)), Some(vec![last]));
        assert_eq!(full.take(last, &[last + 1], true), None);
    }
}
