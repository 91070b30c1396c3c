//! The sync state machine: push the outbox in mutation id order, in batches,
//! then pull pages of changes until the server has no more. Every answer is
//! recorded through the store's `settle`, then shown in the mirror.
//!
//! The engine decides nothing about *when* to sync: the browser layer calls
//! [`SyncEngine::sync`] on open, on `online`, after writes, on a timer, and
//! reads [`SyncEngine::state`] for the retry time after a failure.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::pin;
use std::rc::Rc;

use futures::channel::oneshot;
use futures::future::{self, Either, LocalBoxFuture};
use serde::Serialize;
use tideway_protocol::{validate_push_request, PullRequest, PushMutation};

use super::backoff::Backoff;
use super::full_pull::FullPull;
use super::log::{steps_of, AnswerStatus, ConflictOutcome};
use super::remote::{ErrorClass, PullPage, Push, PushAnswer, Remote, RemoteError, ServerChange};
use crate::core::reconcile::{Outcome, Policies, Resolution, ServerAnswer, Settled};
use crate::core::error::Error;
use crate::core::mutation::{Mutation, MutationId};
use crate::core::repository::Repository;
use crate::core::store::{Meanwhile, Store, SyncMeta};

/// How the engine pushes and pulls.
#[derive(Debug, Clone)]
pub struct SyncConfig {
    /// The most mutations in one push.
    pub push_batch: usize,
    /// The page size asked of pull.
    pub pull_limit: usize,
    pub backoff: Backoff,
    pub policies: Policies,
}

impl Default for SyncConfig {
    fn default() -> Self {
        // The protocol's largest batch and page: each push and each pull page
        // costs a round trip and a transaction, so the fewer the faster.
        SyncConfig {
            push_batch: tideway_protocol::MAX_PUSH_MUTATIONS,
            pull_limit: tideway_protocol::MAX_PULL_LIMIT,
            backoff: Backoff::default(),
            policies: Policies::default(),
        }
    }
}

/// Why a sync stopped early. Nothing is lost either way: unpushed mutations
/// stay in the outbox, and the cursor stays at the last applied page.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SyncError {
    /// The server or the network failed; the engine retries at `retry_at`.
    #[error("{message}")]
    Remote { message: String, class: ErrorClass, retry_at: f64 },
    /// Local storage failed.
    #[error("{0}")]
    Store(#[from] Error),
}

/// What one sync did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncReport {
    pub pushed: usize,
    pub pulled: usize,
    pub merged: usize,
    pub conflicted: usize,
    pub failed: usize,
}

impl SyncReport {
    /// What the answers `settled` did, counted.
    fn of(settled: &[Settled]) -> SyncReport {
        let mut report = SyncReport::default();
        for item in settled {
            match item.outcome {
                Outcome::Pushed => report.pushed += 1,
                Outcome::Pulled => report.pulled += 1,
                Outcome::Resolved(Resolution::Server | Resolution::Queued) => report.merged += 1,
                Outcome::Conflict => report.conflicted += 1,
                Outcome::Failed(_) => report.failed += 1,
                Outcome::Unchanged | Outcome::Withheld => {}
            }
        }
        report
    }

    fn add(&mut self, other: &SyncReport) {
        self.pushed += other.pushed;
        self.pulled += other.pulled;
        self.merged += other.merged;
        self.conflicted += other.conflicted;
        self.failed += other.failed;
    }
}

/// Totals since the engine started.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Counters {
    pub pushed: u64,
    pub pulled: u64,
    pub merged: u64,
    pub conflicted: u64,
    pub retried: u64,
    pub failed: u64,
}

/// Where the engine stands.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncState {
    pub syncing: bool,
    pub last_sync_at: Option<f64>,
    pub last_error: Option<String>,
    /// When the next automatic attempt is due after a failure.
    pub next_retry_at: Option<f64>,
    pub counters: Counters,
}

/// A step of a sync, for an app's log.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "step", rename_all = "camelCase")]
pub enum Step {
    #[serde(rename_all = "camelCase")]
    Push { mutations: usize, first_mutation_id: u64 },
    #[serde(rename_all = "camelCase")]
    Pushed { applied: usize, conflicts: usize, rejected: usize },
    #[serde(rename_all = "camelCase")]
    Pull { has_cursor: bool },
    #[serde(rename_all = "camelCase")]
    Pulled { changes: usize, has_more: bool },
    /// The pull cursor was refused; pulling again from the start.
    CursorReset,
    /// A 401 was answered by refreshing the credentials once.
    AuthRefresh,
    #[serde(rename_all = "camelCase")]
    Failed { error: String, retry_at: f64 },
    #[serde(rename_all = "camelCase")]
    Done { pushed: usize, pulled: usize },
    /// The server's answer to one pushed mutation (see [`super::log`]).
    #[serde(rename_all = "camelCase")]
    Answer { mutation_id: u64, collection: String, id: String, status: AnswerStatus, error: Option<String> },
    /// Both sides changed an entity, and the collection's policy settled it or left it to the app.
    #[serde(rename_all = "camelCase")]
    Conflict { collection: String, id: String, policy: &'static str, outcome: ConflictOutcome },
    /// After a failure: the `attempt`-th failure in a row, retried in `delay` ms.
    #[serde(rename_all = "camelCase")]
    RetryScheduled { attempt: u32, delay: f64, retry_at: f64 },
}

/// What the engine tells its listeners.
#[derive(Debug, Clone, PartialEq)]
pub enum SyncEvent {
    /// The state changed (a sync started or ended, a retry was scheduled).
    Status,
    /// An entity entered the `conflict` state and waits for the app.
    Conflict { collection: String, id: String },
    /// A sync failed, or a mutation was refused for good.
    Error { message: String, collection: Option<String>, id: Option<String> },
    Log(Step),
}

pub type Listener = Rc<dyn Fn(&SyncEvent)>;

#[derive(Default)]
struct Run {
    running: bool,
    /// Callers that asked while a sync was running: served by one more run.
    waiting: Vec<oneshot::Sender<Result<SyncReport, SyncError>>>,
}

pub struct SyncEngine<S: Store, R: Remote> {
    repository: Rc<Repository<S>>,
    remote: R,
    config: SyncConfig,
    random: Box<dyn Fn() -> f64>,
    run: RefCell<Run>,
    state: RefCell<SyncState>,
    meta: RefCell<SyncMeta>,
    listeners: RefCell<Vec<(u64, Listener)>>,
    next_listener: RefCell<u64>,
}

impl<S: Store + 'static, R: Remote> SyncEngine<S, R> {
    /// Reads the saved cursor and retry schedule. `random` is uniform in [0, 1), for jitter.
    pub async fn open(repository: Rc<Repository<S>>, remote: R, config: SyncConfig, random: Box<dyn Fn() -> f64>) -> Result<Rc<Self>, Error> {
        let meta = repository.store().sync_meta().await?;
        if let Some(learned) = &meta.remote {
            remote.recall(learned);
        }
        let state = SyncState { last_sync_at: meta.last_sync_at, next_retry_at: meta.retry_at, ..SyncState::default() };
        Ok(Rc::new(SyncEngine {
            repository,
            remote,
            config,
            random,
            run: RefCell::default(),
            state: RefCell::new(state),
            meta: RefCell::new(meta),
            listeners: RefCell::default(),
            next_listener: RefCell::new(0),
        }))
    }

    pub fn repository(&self) -> &Rc<Repository<S>> {
        &self.repository
    }

    pub fn remote(&self) -> &R {
        &self.remote
    }

    pub fn config(&self) -> &SyncConfig {
        &self.config
    }

    pub fn state(&self) -> SyncState {
        self.state.borrow().clone()
    }

    pub fn listen(&self, listener: Listener) -> u64 {
        let mut next = self.next_listener.borrow_mut();
        *next += 1;
        self.listeners.borrow_mut().push((*next, listener));
        *next
    }

    pub fn unlisten(&self, id: u64) {
        self.listeners.borrow_mut().retain(|(lid, _)| *lid != id);
    }

    /// Pushes, then pulls. One sync runs at a time: a call made while one
    /// runs waits for the next run, which starts as soon as the current ends,
    /// so it sees every write made before the call.
    pub async fn sync(&self) -> Result<SyncReport, SyncError> {
        let waiter = {
            let mut run = self.run.borrow_mut();
            if run.running {
                let (sender, receiver) = oneshot::channel();
                run.waiting.push(sender);
                Some(receiver)
            } else {
                run.running = true;
                None
            }
        };
        if let Some(receiver) = waiter {
            return receiver.await.unwrap_or_else(|_| Err(SyncError::Store(Error::DatabaseClosed("the sync was abandoned".into()))));
        }
        let mut result = self.run_once().await;
        loop {
            let waiting = std::mem::take(&mut self.run.borrow_mut().waiting);
            if waiting.is_empty() {
                break;
            }
            result = self.run_once().await;
            for waiter in waiting {
                let _ = waiter.send(result.clone());
            }
        }
        self.run.borrow_mut().running = false;
        result
    }

    async fn run_once(&self) -> Result<SyncReport, SyncError> {
        self.state.borrow_mut().syncing = true;
        self.emit(SyncEvent::Status);
        let mut report = SyncReport::default();
        let mut refreshed = false;
        // Before the push: what the push acknowledges is on the server.
        let full = self.meta.borrow().cursor.is_none().then(|| FullPull::begin(&self.repository));
        let mut ahead = PullAhead { full: full.as_ref(), page: None };
        let pushed = self.push_all(&mut report, &mut refreshed, Some(&mut ahead)).await;
        let ahead = ahead.page;
        let outcome = match pushed {
            Ok(Pushed::All) => self.pull_all(&mut report, &mut refreshed, full, ahead).await,
            // The pull brings the versions the server withheld, which settles
            // those conflicts and requeues what is left to push.
            Ok(Pushed::UntilWithheld) => match self.pull_all(&mut report, &mut refreshed, full, ahead).await {
                Ok(()) => self.push_all(&mut report, &mut refreshed, None).await.map(drop),
                Err(error) => Err(error),
            },
            Err(error) => Err(error),
        };
        let result = match outcome {
            Ok(()) => self.succeeded(&report).await.map(|()| report),
            Err(Failure::Store(error)) => Err(SyncError::Store(error)),
            Err(Failure::Remote(error)) => Err(self.failed(error).await),
        };
        self.state.borrow_mut().syncing = false;
        self.emit(SyncEvent::Status);
        result
    }

    /// Pushes the outbox batch after batch. While a batch is in flight, the
    /// answers to the one before are recorded and the next batch is read:
    /// it holds none of the in-flight batch's entities (their next mutations
    /// are based on the versions its answers bring). So the next batch goes
    /// out as soon as the answer comes, and the server still meets the
    /// mutations in order, one push after the other.
    ///
    /// Answers that applied a whole batch are recorded one batch after the
    /// other (a [`Recording`]) for as long as it takes, while the batches
    /// after them go out: a batch waits for them only if it holds one of
    /// their entities, whose version it must carry. Other answers are recorded
    /// before the outbox is read again.
    ///
    /// The first page of the pull that ends the sync comes into `ahead`
    /// without waiting for the last answers to be recorded: the push that
    /// empties the outbox carries the pull, where the remote takes it, and
    /// its answer brings the page; otherwise the page is asked for while
    /// those answers are recorded. Either way the server has applied every
    /// push first. The page is dropped if more writes are pushed after all.
    async fn push_all(
        &self,
        report: &mut SyncReport,
        refreshed: &mut bool,
        ahead: Option<&mut PullAhead<'_>>,
    ) -> Result<Pushed, Failure> {
        let mut recording = Recording::default();
        let mut marked: Vec<Rc<[(String, String)]>> = Vec::new();
        let pushed = self.push_batches(&mut recording, &mut marked, report, refreshed, ahead).await;
        // Every answer that came is recorded, whatever stopped the push.
        let recorded = self.finish(&mut recording, report).await;
        let result = pushed.and_then(|pushed| recorded.map(|()| pushed));
        if result.is_err() {
            // The entities whose answers were not recorded wait to be pushed again.
            for keys in &marked {
                self.repository.unmark_syncing(keys);
            }
        }
        result
    }

    /// `push_all`, which records what `recording` holds once this returns;
    /// `marked` gathers the entities of every batch sent, marked syncing.
    async fn push_batches<'a>(
        &'a self,
        recording: &mut Recording<'a>,
        marked: &mut Vec<Rc<[(String, String)]>>,
        report: &mut SyncReport,
        refreshed: &mut bool,
        mut ahead: Option<&mut PullAhead<'_>>,
    ) -> Result<Pushed, Failure> {
        // After a refusal that names no mutation, push one at a time to find it.
        let mut batch_size = self.config.push_batch.max(1);
        // The previous batch, answered in full, its answers not recorded yet.
        let mut answered: Option<Answered> = None;
        // The batch after it, read while it was in flight, with its request
        // if it was made ready to go then.
        let mut read_ahead: Option<(Read, Option<Push>)> = None;
        // Whether the last read reached the end of the outbox: then the answers
        // are recorded before it is read again, as nothing waits to be sent
        // meanwhile, and the entries answered leave the outbox without delay
        // (another context that syncs on its own may be about to read it).
        let mut reached_end = false;
        // Whether the last read took every entry the outbox held.
        let mut emptied = false;
        // The pull that ends the sync, for the push that empties the outbox
        // to carry where the remote takes it (see `Remote::pulls_with_push`).
        let carried = match &ahead {
            Some(ahead) if self.remote.pulls_with_push() => Some(PullRequest {
                cursor: self.meta.borrow().cursor.clone(),
                limit: self.config.pull_limit,
                client_id: self.own_writes_skipped(ahead.full).map(str::to_owned),
            }),
            _ => None,
        };
        let carry = |read: &Read| carried.clone().filter(|_| read.end && read.whole);
        loop {
            let (read, prepared) = match read_ahead.take() {
                Some(next) => next,
                None => {
                    if reached_end {
                        let pull_ahead = ahead.as_deref_mut().filter(|_| emptied);
                        if self.record_rest(recording, answered.take(), report, refreshed, pull_ahead).await? {
                            return Ok(Pushed::UntilWithheld);
                        }
                    }
                    let (after, in_flight) = answered.as_ref().map_or((0, &[][..]), |answered| (answered.last(), &answered.keys[..]));
                    (self.next_batch(batch_size, after, in_flight).await?, None)
                }
            };
            let pull = carry(&read);
            let Read { batch, end, whole } = read;
            (reached_end, emptied) = (end, end && whole);
            if batch.is_empty() {
                match answered.take() {
                    None => return Ok(Pushed::All),
                    Some(previous) => {
                        let pull_ahead = ahead.as_deref_mut().filter(|_| emptied);
                        if self.record_rest(recording, Some(previous), report, refreshed, pull_ahead).await? {
                            return Ok(Pushed::UntilWithheld);
                        }
                        // What is left (if anything) waited for those answers.
                        continue;
                    }
                }
            }
            // A batch after the pull was asked for ahead (of a write made while
            // the last answers were recorded): that page may miss what it brings.
            if let Some(ahead) = ahead.as_deref_mut() {
                ahead.page = None;
            }
            // Answers that applied everything touch nothing but their own
            // entities and outbox entries, all before this batch: they join
            // the recording, and the next batch is read meanwhile. Others are
            // recorded first, then the next batch is read.
            let previous = match answered.take() {
                Some(previous) if previous.all_applied() => {
                    self.record_later(recording, previous);
                    None
                }
                previous => {
                    self.finish(recording, report).await?;
                    previous
                }
            };
            // The request carries the versions the answers recorded brought: one
            // made ready before they were recorded is made again.
            let touched = recording.touches(&batch);
            if touched {
                self.finish(recording, report).await?;
            }
            let request = match prepared.filter(|_| !touched) {
                Some(request) => request,
                None => self.push_request(&batch, pull),
            };
            self.log(Step::Push { mutations: batch.len(), first_mutation_id: batch[0].mutation_id });
            let keys: Rc<[(String, String)]> = batch.iter().map(|m| (m.collection.clone(), m.id.clone())).collect();
            let last = batch[batch.len() - 1].mutation_id;
            self.repository.mark_syncing(&keys);
            marked.push(keys.clone());
            // The entities whose answers may still change what the next request carries.
            let unrecorded = if recording.pending.is_some() { recording.keys.clone() } else { Rc::default() };
            let meanwhile = async {
                let withheld = match previous {
                    Some(previous) => self.record_push(previous, report).await?,
                    None => false,
                };
                // Nothing to read ahead after the end, nor when pushing stops here.
                if end || withheld {
                    return Ok((withheld, None));
                }
                let next = self.next_batch(batch_size, last, &keys).await?;
                // Ready to go the moment this batch is answered (see `Remote::prepare`).
                let mut prepared = None;
                if !next.batch.is_empty() && !unrecorded.holds_any(&next.batch) {
                    let request = self.push_request(&next.batch, carry(&next));
                    self.remote.prepare(&request).await;
                    prepared = Some(request);
                }
                Ok((withheld, Some((next, prepared))))
            };
            // The request goes out first: recording and reading do work on this
            // thread before they wait, and the server need not wait for it.
            let both = async { futures::join!(self.send_push(&batch, &request, refreshed), meanwhile) };
            let (sent, meanwhile) = match recording.alongside(self, both).await {
                Ok((sent, Ok(meanwhile))) => (sent, meanwhile),
                Ok((_, Err(error))) | Err(error) => {
                    self.repository.unmark_syncing(&keys);
                    return Err(error);
                }
            };
            let (withheld, next) = meanwhile;
            match sent {
                Sent::Answered(mut response) => {
                    // The page of the pull it carried, if it carried one.
                    let page = response.pull.take().filter(|_| request.pull.is_some());
                    if let (Some(page), Some(ahead)) = (page, ahead.as_deref_mut()) {
                        self.log(Step::Pull { has_cursor: request.pull.as_ref().is_some_and(|pull| pull.cursor.is_some()) });
                        ahead.page = Some(Ok(page));
                    }
                    answered = Some(Answered { keys, answers: answers_of(batch, response) });
                    read_ahead = next;
                }
                // Answers about part of the batch: the rest is pushed again, so
                // they are recorded before the outbox is read for the next batch.
                Sent::Refused(answer) => {
                    self.finish(recording, report).await?;
                    if self.record_push(Answered { keys, answers: vec![*answer] }, report).await? {
                        return Ok(Pushed::UntilWithheld);
                    }
                }
                Sent::OneAtATime => {
                    self.repository.unmark_syncing(&keys);
                    batch_size = 1;
                }
                Sent::Failed(error) => {
                    self.repository.unmark_syncing(&keys);
                    self.note_failed_push(&batch, &error).await;
                    return Err(Failure::Remote(error));
                }
            }
            // Pushing on would send the same mutation again: it stays queued
            // until a pull brings the version the server withheld.
            if withheld {
                if let Some(current) = answered.take() {
                    self.record_push(current, report).await?;
                }
                return Ok(Pushed::UntilWithheld);
            }
        }
    }

    /// Adds the answers to a batch the server applied in full to `recording`,
    /// to be recorded after those already there; each batch is shown while the
    /// next one commits.
    fn record_later<'a>(&'a self, recording: &mut Recording<'a>, answered: Answered) {
        Rc::make_mut(&mut recording.keys).extend(&answered.keys);
        let before = recording.pending.take();
        recording.pending = Some(Box::pin(async move {
            let before = match before {
                Some(before) => before.await?,
                None => Chained::default(),
            };
            let mut shown = SyncReport::default();
            let show_before = || shown = before.show_last(self);
            let recorded = self.record_answers(answered, Box::new(show_before)).await?;
            Ok(Chained { shown, last: Some(recorded) })
        }));
    }

    /// Records everything not recorded yet: `recording`, then `answered`;
    /// with `ahead`, asks for the first page of the pull meanwhile (see
    /// [`SyncEngine::push_all`]), unless it was asked for already or
    /// `answered` holds other answers than acknowledgements (a conflict may
    /// queue a write to push). Whether an answer withheld the server's data
    /// (see [`Pushed::UntilWithheld`]).
    async fn record_rest(
        &self,
        recording: &mut Recording<'_>,
        answered: Option<Answered>,
        report: &mut SyncReport,
        refreshed: &mut bool,
        ahead: Option<&mut PullAhead<'_>>,
    ) -> Result<bool, Failure> {
        let acknowledged = answered.as_ref().is_none_or(Answered::all_applied);
        let recorded = async {
            self.finish(recording, report).await?;
            match answered {
                Some(answered) => self.record_push(answered, report).await,
                None => Ok(false),
            }
        };
        match ahead.filter(|ahead| ahead.page.is_none() && acknowledged) {
            Some(ahead) => {
                let cursor = self.meta.borrow().cursor.clone();
                // The request first: the server answers it while this thread records.
                let (page, recorded) = futures::join!(self.pull_page(refreshed, cursor.as_deref(), ahead.full), recorded);
                ahead.page = Some(page);
                recorded
            }
            None => recorded.await,
        }
    }

    /// Waits until everything in `recording` is recorded, shows it and counts it.
    async fn finish(&self, recording: &mut Recording<'_>, report: &mut SyncReport) -> Result<(), Failure> {
        if let Some(pending) = recording.pending.take() {
            recording.keys = Rc::default();
            let chained = pending.await?;
            recording.shown.add(&chained.show_last(self));
        }
        self.count(report, std::mem::take(&mut recording.shown));
        Ok(())
    }

    /// The next batch: the oldest queued mutations after key `after`, the
    /// last of the batch before (still queued: in flight, or its answers not
    /// recorded yet, its entities `in_flight`), up to the first of an entity
    /// in flight, or, unless the remote chains them, of an entity met before
    /// in the batch. A mutation of an entity whose last one is in flight
    /// waits for that one's answer, because its base version is the version
    /// that answer brings: sent before, it would conflict with its own
    /// predecessor, or apply over a change it never saw. Within one push, a
    /// remote that chains mutations applies each on the one before it (see
    /// [`SyncEngine::push_request`]).
    async fn next_batch(&self, batch_size: usize, after: MutationId, in_flight: &[(String, String)]) -> Result<Read, Failure> {
        // One entry more than a batch holds tells whether a full batch ends the outbox.
        let mut outbox = self.repository.store().pushable_after(after, batch_size + 1).await?;
        let end = outbox.len() <= batch_size;
        outbox.truncate(batch_size);
        let read = outbox.len();
        let mut seen: HashSet<(&str, &str)> = HashSet::with_capacity(in_flight.len() + outbox.len());
        seen.extend(in_flight.iter().map(|(collection, id)| (collection.as_str(), id.as_str())));
        let fits = if self.remote.chains() {
            outbox.iter().take_while(|m| !seen.contains(&(m.collection.as_str(), m.id.as_str()))).count()
        } else {
            outbox.iter().take_while(|m| seen.insert((m.collection.as_str(), m.id.as_str()))).count()
        };
        let mut batch = outbox;
        batch.truncate(fits);
        let batch = within_body_limit(batch);
        Ok(Read { whole: batch.len() == read, batch, end })
    }

    /// Sends one push and sorts out what came back.
    async fn send_push(&self, batch: &[Mutation], request: &Push, refreshed: &mut bool) -> Sent {
        // A stored mutation the server would refuse: never send it.
        if let Err(invalid) = validate_push_request(request) {
            return Sent::Refused(Box::new(self.refusal(batch, invalid.mutation_id, invalid.message)));
        }
        match self.call(refreshed, || self.remote.push(request)).await {
            Ok(response) => match check_answers(batch, &response) {
                Ok(()) => Sent::Answered(response),
                Err(error) => Sent::Failed(error),
            },
            Err(error) => match error.class() {
                ErrorClass::Permanent { mutation_id: Some(id) } if batch.iter().any(|m| m.mutation_id == id) => {
                    Sent::Refused(Box::new(self.refusal(batch, Some(id), error.to_string())))
                }
                ErrorClass::Permanent { .. } if error.is_about_content() && batch.len() == 1 => {
                    Sent::Refused(Box::new(self.refusal(batch, None, error.to_string())))
                }
                ErrorClass::Permanent { .. } if error.is_about_content() => Sent::OneAtATime,
                _ => Sent::Failed(error),
            },
        }
    }

    /// Records the answers to one push and shows them; whether one of them
    /// withheld the server's data (see [`Pushed::UntilWithheld`]).
    async fn record_push(&self, answered: Answered, report: &mut SyncReport) -> Result<bool, Failure> {
        let recorded = self.record_answers(answered, Box::new(|| ())).await?;
        let settled = self.show_push(recorded);
        self.count(report, SyncReport::of(&settled));
        Ok(settled.iter().any(|item| item.outcome == Outcome::Withheld))
    }

    /// Records the answers to one push; `meanwhile` as [`Store::settle`] has it.
    async fn record_answers(&self, answered: Answered, meanwhile: Meanwhile<'_>) -> Result<Recorded, Failure> {
        match self.record(&answered.answers, None, meanwhile).await {
            Ok(settled) => Ok(Recorded { answered, settled }),
            Err(error) => {
                self.repository.unmark_syncing(&answered.keys);
                Err(error)
            }
        }
    }

    /// Shows the recorded answers to one push; what they did.
    fn show_push(&self, Recorded { answered, settled }: Recorded) -> Vec<Settled> {
        let Answered { keys, answers, .. } = answered;
        self.show(&answers, &settled);
        self.repository.unmark_syncing(&keys);
        let (mut applied, mut conflicts, mut rejected) = (0, 0, 0);
        for answer in &answers {
            if let ServerAnswer::Pushed { result, .. } = answer {
                match result.status {
                    tideway_protocol::PushStatus::Applied => applied += 1,
                    tideway_protocol::PushStatus::Conflict => conflicts += 1,
                    tideway_protocol::PushStatus::Rejected => rejected += 1,
                }
            } else {
                rejected += 1;
            }
        }
        self.log(Step::Pushed { applied, conflicts, rejected });
        settled
    }

    /// The client id that asks the server to leave out this client's own pushes:
    /// their answers were recorded before the pull. Not on a pull from the start
    /// that must list the entities it may find deleted (see [`FullPull`]).
    fn own_writes_skipped(&self, full: Option<&FullPull>) -> Option<&str> {
        full.is_none_or(FullPull::is_empty).then(|| self.repository.client_id())
    }

    /// Pulls every page from the cursor on; `full`, on a pull from the start, is
    /// what the sync found synced before it pushed.
    /// `ahead` is its first page if it was asked for already.
    async fn pull_all(
        &self,
        report: &mut SyncReport,
        refreshed: &mut bool,
        full: Option<FullPull>,
        ahead: Option<Result<PullPage, RemoteError>>,
    ) -> Result<(), Failure> {
        let mut unshown = None;
        let pulled = self.pull_pages(report, refreshed, full, ahead, &mut unshown).await;
        // The last page recorded is shown whatever stopped the pull.
        if let Some((answers, settled)) = unshown {
            self.show(&answers, &settled);
        }
        pulled
    }

    /// `pull_all`, each page shown while the next one commits: `unshown` is
    /// the last page recorded and not shown yet.
    async fn pull_pages(
        &self,
        report: &mut SyncReport,
        refreshed: &mut bool,
        full: Option<FullPull>,
        ahead: Option<Result<PullPage, RemoteError>>,
        unshown: &mut Option<(Vec<ServerAnswer>, Vec<Settled>)>,
    ) -> Result<(), Failure> {
        let mut cursor = self.meta.borrow().cursor.clone();
        let mut reset = false;
        let mut full = match (&cursor, full) {
            (Some(_), _) => None,
            (None, full) => Some(full.unwrap_or_else(|| FullPull::begin(&self.repository))),
        };
        // Read once per pull: pulled changes never give an entity a remote id
        // other than its own, so the pages of one pull leave this map as it is.
        let mut local_ids = LocalIds::default();
        // The next page, fetched while the one before was recorded.
        let mut fetched = ahead;
        loop {
            let page = match fetched.take() {
                Some(page) => page,
                None => self.pull_page(refreshed, cursor.as_deref(), full.as_ref()).await,
            };
            let page = match page {
                Ok(page) => page,
                Err(error) => match error.class() {
                    // A cursor this server cannot serve (or never issued): start over
                    // once; pulled changes are applied by version, so nothing doubles.
                    ErrorClass::CursorExpired | ErrorClass::Permanent { .. } if cursor.is_some() && !reset => {
                        self.log(Step::CursorReset);
                        cursor = None;
                        reset = true;
                        full = Some(FullPull::begin(&self.repository));
                        continue;
                    }
                    _ => return Err(Failure::Remote(error)),
                },
            };
            let PullPage { changes, cursor: next, has_more } = page;
            if has_more && changes.is_empty() && cursor.as_deref() == Some(next.as_str()) {
                return Err(Failure::Remote(RemoteError::Malformed(
                    "pull answered hasMore with no changes and the same cursor".into(),
                )));
            }
            // A store may join ids with U+0000 where one call carries many
            // (the IndexedDB store does); local ids cannot hold it.
            if let Some(change) = changes.iter().find(|change| change.id.contains('\0')) {
                return Err(Failure::Remote(RemoteError::Malformed(format!(
                    "pull answered an id holding U+0000 in {:?}",
                    change.collection
                ))));
            }
            let count = changes.len();
            let mut answers = self.pulled_answers(changes, &mut local_ids, full.as_mut());
            if let Some(full) = &full {
                if !has_more {
                    answers.extend(full.deletes(&self.repository));
                }
            }
            let show_previous = || {
                if let Some((answers, settled)) = unshown.take() {
                    self.show(&answers, &settled);
                }
            };
            let recording = self.record(&answers, Some(&next), Box::new(show_previous));
            let settled = if has_more {
                let following = self.pull_page(refreshed, Some(next.as_str()), full.as_ref());
                // The request first, so the server prepares the next page while
                // this one is recorded.
                let (following, settled) = futures::join!(following, recording);
                fetched = Some(following);
                settled?
            } else {
                recording.await?
            };
            self.meta.borrow_mut().cursor = Some(next.clone());
            self.log(Step::Pulled { changes: count, has_more });
            self.count(report, SyncReport::of(&settled));
            *unshown = Some((answers, settled));
            cursor = Some(next);
            if !has_more {
                return Ok(());
            }
        }
    }

    /// Asks for the page of changes after `cursor`; `full` as in `pull_pages`.
    async fn pull_page(&self, refreshed: &mut bool, cursor: Option<&str>, full: Option<&FullPull>) -> Result<PullPage, RemoteError> {
        self.log(Step::Pull { has_cursor: cursor.is_some() });
        let own = self.own_writes_skipped(full);
        self.call(refreshed, || self.remote.pull(cursor, self.config.pull_limit, own)).await
    }

    /// Calls the remote, answering one 401 per sync with a credentials refresh.
    async fn call<T, F: std::future::Future<Output = Result<T, RemoteError>>>(
        &self,
        refreshed: &mut bool,
        request: impl Fn() -> F,
    ) -> Result<T, RemoteError> {
        match request().await {
            Err(error) if error.class() == ErrorClass::Auth && !*refreshed => {
                *refreshed = true;
                self.log(Step::AuthRefresh);
                self.remote.refresh_auth().await?;
                request().await
            }
            other => other,
        }
    }

    /// The push of `batch`, carrying `pull` if given.
    fn push_request(&self, batch: &[Mutation], pull: Option<PullRequest>) -> Push {
        let mut mutations: Vec<PushMutation<_>> = Vec::with_capacity(batch.len());
        // Where the mutation sent last for each entity of the batch is in
        // `mutations`, where the remote chains them: the next one is built on it.
        let mut last_sent: HashMap<(&str, &str), usize> = HashMap::with_capacity(batch.len());
        for mutation in batch {
            let key = (mutation.collection.as_str(), mutation.id.as_str());
            let (id, base_version, after) = match last_sent.insert(key, mutations.len()) {
                // Applied only where that one applied, on the version it made;
                // the base version says which one that would be.
                Some(before) => {
                    let before = &mutations[before];
                    (before.id.clone(), before.base_version + 1, Some(before.mutation_id))
                }
                None => {
                    // The server's id and version as this device last saw them: a
                    // mutation queued behind one that was acknowledged since is
                    // based on the acknowledged version, as its local data is.
                    let (remote_id, version) = self
                        .repository
                        .read(&mutation.collection, |c| c.get(&mutation.id).map(|e| (e.remote_id.clone(), e.version)))
                        .ok()
                        .flatten()
                        .unwrap_or((None, mutation.base_version));
                    (remote_id.unwrap_or_else(|| mutation.id.clone()), version, None)
                }
            };
            mutations.push(PushMutation {
                mutation_id: mutation.mutation_id,
                collection: mutation.collection.clone(),
                id,
                op: mutation.op,
                data: mutation.data.clone(),
                base_version,
                after,
            });
        }
        Push { client_id: self.repository.client_id().to_string(), mutations, pull }
    }

    fn refusal(&self, batch: &[Mutation], mutation_id: Option<u64>, error: String) -> ServerAnswer {
        let mutation = mutation_id
            .and_then(|id| batch.iter().find(|m| m.mutation_id == id))
            .unwrap_or(&batch[0])
            .clone();
        ServerAnswer::Refused { mutation, error }
    }

    /// Pulled changes addressed to local ids, for collections this database
    /// declares, leaving out those this context already holds at their
    /// version or later (say, its own pushes coming back): stored versions
    /// only grow, so the store would leave them unchanged, and reading them
    /// to find that out is most of what a pull of them costs.
    /// Also tells `full`, in a pull from the start, each entity listed, held or not.
    fn pulled_answers(
        &self,
        changes: Vec<ServerChange>,
        local_ids: &mut LocalIds,
        mut full: Option<&mut FullPull>,
    ) -> Vec<ServerAnswer> {
        changes
            .into_iter()
            .filter(|change| self.repository.schema().collection(&change.collection).is_ok())
            .filter_map(|change| {
                let ids = local_ids.entry(change.collection.clone()).or_insert_with(|| {
                    // Backends that assign their own ids: map them back to local ids.
                    self.repository
                        .read(&change.collection, |c| {
                            c.iter()
                                .filter_map(|e| e.remote_id.as_ref().filter(|r| **r != e.id).map(|r| (r.clone(), e.id.clone())))
                                .collect()
                        })
                        .unwrap_or_default()
                });
                let id = ids.get(&change.id).cloned().unwrap_or_else(|| change.id.clone());
                if let Some(full) = full.as_deref_mut() {
                    full.listed(&change.collection, &id);
                }
                let held = self
                    .repository
                    .read(&change.collection, |c| c.get(&id).is_some_and(|e| e.version >= change.version))
                    .unwrap_or(false);
                (!held).then_some(ServerAnswer::Pulled { id, change })
            })
            .collect()
    }

    /// Records `answers` in the store; `meanwhile` as [`Store::settle`] has it.
    async fn record(&self, answers: &[ServerAnswer], cursor: Option<&str>, meanwhile: Meanwhile<'_>) -> Result<Vec<Settled>, Failure> {
        let now = self.repository.now();
        Ok(self.repository.store().settle(answers, &self.config.policies, now, cursor, meanwhile).await?)
    }

    /// Shows what recording `answers` did: in the mirror (and so to the other
    /// contexts), in the sync log and as events.
    fn show(&self, answers: &[ServerAnswer], settled: &[Settled]) {
        self.repository.absorb(settled);
        for step in steps_of(answers, settled, &self.config.policies) {
            self.log(step);
        }
        for item in settled {
            match &item.outcome {
                Outcome::Conflict => {
                    self.emit(SyncEvent::Conflict { collection: item.collection.clone(), id: item.id.clone() })
                }
                Outcome::Failed(message) => self.emit(SyncEvent::Error {
                    message: message.clone(),
                    collection: Some(item.collection.clone()),
                    id: Some(item.id.clone()),
                }),
                _ => {}
            }
        }
    }

    /// Adds what answers did (`done`) to `report` and to the engine's counters.
    fn count(&self, report: &mut SyncReport, done: SyncReport) {
        report.add(&done);
        let counters = &mut self.state.borrow_mut().counters;
        counters.pushed += done.pushed as u64;
        counters.pulled += done.pulled as u64;
        counters.merged += done.merged as u64;
        counters.conflicted += done.conflicted as u64;
        counters.failed += done.failed as u64;
    }

    async fn succeeded(&self, report: &SyncReport) -> Result<(), SyncError> {
        let now = self.repository.now();
        let meta = {
            let mut meta = self.meta.borrow_mut();
            meta.failures = 0;
            meta.retry_at = None;
            meta.last_sync_at = Some(now);
            meta.remote = self.remote.learned().or(meta.remote.take());
            meta.clone()
        };
        self.repository.store().save_sync_meta(&meta).await?;
        {
            let mut state = self.state.borrow_mut();
            state.last_sync_at = Some(now);
            state.last_error = None;
            state.next_retry_at = None;
        }
        self.log(Step::Done { pushed: report.pushed, pulled: report.pulled });
        Ok(())
    }

    async fn failed(&self, error: RemoteError) -> SyncError {
        let now = self.repository.now();
        let class = error.class();
        let retry_after = match &class {
            ErrorClass::Transient { retry_after } => *retry_after,
            _ => None,
        };
        let meta = {
            let mut meta = self.meta.borrow_mut();
            meta.failures = meta.failures.saturating_add(1);
            let delay = self.config.backoff.delay(meta.failures, (self.random)(), retry_after);
            meta.retry_at = Some(now + delay);
            meta.remote = self.remote.learned().or(meta.remote.take());
            meta.clone()
        };
        let retry_at = meta.retry_at.unwrap_or(now);
        let message = error.to_string();
        {
            let mut state = self.state.borrow_mut();
            state.last_error = Some(message.clone());
            state.next_retry_at = Some(retry_at);
            state.counters.retried += 1;
        }
        self.log(Step::Failed { error: message.clone(), retry_at });
        self.log(Step::RetryScheduled { attempt: meta.failures, delay: retry_at - now, retry_at });
        self.emit(SyncEvent::Error { message: message.clone(), collection: None, id: None });
        if let Err(error) = self.repository.store().save_sync_meta(&meta).await {
            return SyncError::Store(error);
        }
        SyncError::Remote { message, class, retry_at }
    }

    /// Counts the failed push on its outbox entries, for people looking at the
    /// outbox. Bookkeeping only: if it cannot be stored, the sync's own failure
    /// is the one to report.
    async fn note_failed_push(&self, batch: &[Mutation], error: &RemoteError) {
        let ids: Vec<u64> = batch.iter().map(|m| m.mutation_id).collect();
        let _ = self.repository.store().note_failed_push(&ids, &error.to_string()).await;
    }

    fn log(&self, step: Step) {
        self.emit(SyncEvent::Log(step));
    }

    fn emit(&self, event: SyncEvent) {
        let listeners: Vec<Listener> = self.listeners.borrow().iter().map(|(_, l)| l.clone()).collect();
        for listener in listeners {
            listener(&event);
        }
    }
}

/// Per collection, the local id of each entity the server knows under another id.
type LocalIds = HashMap<String, HashMap<String, String>>;

/// The server's answers to a pushed batch, which hold its mutations.
struct Answered {
    /// Each mutation's entity, marked syncing (see `push_all`'s `marked`).
    keys: Rc<[(String, String)]>,
    answers: Vec<ServerAnswer>,
}

/// Answers to a push, recorded and not shown yet.
struct Recorded {
    answered: Answered,
    settled: Vec<Settled>,
}

/// What recording batches one after the other came to: each batch is shown
/// while the next one commits, so the last one is left to show. What was
/// shown is kept counted: a push that goes on for as long as writes come
/// would otherwise keep every entity it recorded until it ends.
#[derive(Default)]
struct Chained {
    shown: SyncReport,
    last: Option<Recorded>,
}

impl Chained {
    /// Shows the last batch: what every batch did, counted, all shown now.
    fn show_last<S: Store + 'static, R: Remote>(self, engine: &SyncEngine<S, R>) -> SyncReport {
        let Chained { mut shown, last } = self;
        if let Some(last) = last {
            shown.add(&SyncReport::of(&engine.show_push(last)));
        }
        shown
    }
}

impl Answered {
    /// The outbox key of the batch's last mutation.
    fn last(&self) -> MutationId {
        self.answers.last().and_then(ServerAnswer::mutation_id).unwrap_or(0)
    }

    /// Whether the server applied every mutation of the batch.
    fn all_applied(&self) -> bool {
        self.answers.iter().all(|answer| {
            matches!(answer, ServerAnswer::Pushed { result, .. } if result.status == tideway_protocol::PushStatus::Applied)
        })
    }
}

/// The answers to pushes applied in full, recorded one batch after the other
/// while later batches go out (see [`SyncEngine::push_all`]).
#[derive(Default)]
struct Recording<'a> {
    /// The entities of the batches not recorded yet; shared with the read of
    /// the next batch, which runs while the recording goes on.
    keys: Rc<EntitySet>,
    /// Recording them, each batch after the one before.
    pending: Option<LocalBoxFuture<'a, Result<Chained, Failure>>>,
    /// What was recorded and shown, counted, and not added to the report yet.
    shown: SyncReport,
}

impl Recording<'_> {
    /// Whether `batch` holds an entity whose answers are not recorded yet.
    fn touches(&self, batch: &[Mutation]) -> bool {
        self.pending.is_some() && self.keys.holds_any(batch)
    }

    /// Runs `work` while the recording goes on: returns once `work` is done,
    /// the recording left to go on if it has not finished.
    async fn alongside<T, S: Store + 'static, R: Remote>(
        &mut self,
        engine: &SyncEngine<S, R>,
        work: impl Future<Output = T>,
    ) -> Result<T, Failure> {
        let Some(pending) = self.pending.take() else { return Ok(work.await) };
        match future::select(pin!(work), pending).await {
            Either::Left((done, pending)) => {
                self.pending = Some(pending);
                Ok(done)
            }
            Either::Right((recorded, work)) => {
                self.keys = Rc::default();
                self.shown.add(&recorded?.show_last(engine));
                Ok(work.await)
            }
        }
    }
}

/// Entities by collection and id, looked up without copying either.
#[derive(Debug, Clone, Default)]
struct EntitySet(HashMap<String, HashSet<String>>);

impl EntitySet {
    fn extend(&mut self, keys: &[(String, String)]) {
        for (collection, id) in keys {
            match self.0.get_mut(collection) {
                Some(ids) => {
                    ids.insert(id.clone());
                }
                None => {
                    self.0.insert(collection.clone(), HashSet::from([id.clone()]));
                }
            }
        }
    }

    /// Whether `batch` holds a mutation of one of these entities.
    fn holds_any(&self, batch: &[Mutation]) -> bool {
        batch.iter().any(|m| self.0.get(&m.collection).is_some_and(|ids| ids.contains(&m.id)))
    }
}

/// A batch read from the outbox (see [`SyncEngine::next_batch`]).
struct Read {
    batch: Vec<Mutation>,
    /// Whether the read reached the end of the outbox.
    end: bool,
    /// Whether the batch holds every entry read for it: none held back for
    /// an entity met before or for the body limit.
    whole: bool,
}

/// The first page of the pull that ends a sync, asked for while the push's
/// last answers are recorded (see [`SyncEngine::push_all`]).
struct PullAhead<'a> {
    /// As the pull will have it (see `pull_pages`).
    full: Option<&'a FullPull>,
    page: Option<Result<PullPage, RemoteError>>,
}

/// What came of sending one push.
enum Sent {
    /// A result for every mutation, in order (see `check_answers`).
    Answered(PushAnswer),
    /// One mutation refused for good; the rest of the batch stays queued.
    Refused(Box<ServerAnswer>),
    /// Refused whole, naming no mutation: push one at a time to find it.
    OneAtATime,
    Failed(RemoteError),
}

/// How far a push went.
enum Pushed {
    /// The outbox is empty (of what could be pushed).
    All,
    /// A conflict came back without the server's data: the rest waits for a pull.
    UntilWithheld,
}

enum Failure {
    Remote(RemoteError),
    Store(Error),
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        Failure::Store(error)
    }
}

/// Room in a push body for everything but the mutations' data (ids, names,
/// versions), per mutation: far more than they take.
const PUSH_OVERHEAD_BYTES: usize = 512;

/// The longest prefix of `batch` whose push body stays within the server's
/// limit (never less than one mutation): a full batch of large entities would
/// otherwise be refused whole with a 413, and then pushed one at a time.
fn within_body_limit(mut batch: Vec<Mutation>) -> Vec<Mutation> {
    let mut bytes = 0;
    let fits = batch
        .iter()
        .take_while(|m| {
            bytes += PUSH_OVERHEAD_BYTES + m.data.as_ref().map_or(0, |data| data.as_str().len());
            bytes <= tideway_protocol::MAX_BODY_BYTES
        })
        .count();
    batch.truncate(fits.max(1));
    batch
}

/// Checks that `response` is the reply the protocol promises to `batch`: a
/// result for each mutation, in order.
fn check_answers(batch: &[Mutation], response: &PushAnswer) -> Result<(), RemoteError> {
    if response.results.len() != batch.len() {
        return Err(RemoteError::Malformed(format!(
            "push of {} mutations answered {} results",
            batch.len(),
            response.results.len()
        )));
    }
    for (mutation, result) in batch.iter().zip(&response.results) {
        if result.mutation_id != mutation.mutation_id {
            return Err(RemoteError::Malformed(format!(
                "push result for mutation {} where {} was expected",
                result.mutation_id, mutation.mutation_id
            )));
        }
        if result.status == tideway_protocol::PushStatus::Applied && result.version.is_none() {
            return Err(RemoteError::Malformed(format!("mutation {} applied without a version", mutation.mutation_id)));
        }
    }
    Ok(())
}

/// Pairs each pushed mutation with its result, `response` having passed
/// `check_answers`: the answers take the mutations, rather than copies.
fn answers_of(batch: Vec<Mutation>, response: PushAnswer) -> Vec<ServerAnswer> {
    batch.into_iter().zip(response.results).map(|(mutation, result)| ServerAnswer::Pushed { mutation, result }).collect()
}
