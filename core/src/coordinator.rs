//! The `CheckpointCoordinator`: triggers, tracks, completes and aborts checkpoints.
//!
//! It lives in the JobManager and is pure: time comes in as `now`, and every action goes out as
//! a [`CoordinatorEffect`]. Persisting the id counter, writing `_metadata` and persisting the
//! completed store are asynchronous: the JobManager carries them out and reports back through
//! `on_counter_persisted`, `on_metadata_written` and `on_completion_persisted`. Completion
//! follows Flink's `CheckpointCoordinator#completePendingCheckpoint`: metadata durable, then
//! the store, then notifications.

use crate::config::{CheckpointConfig, CheckpointStorageKind};
use crate::ids::{CheckpointId, TaskId, Tick};
use crate::probes::{self, Probe};
use crate::status::CheckpointFailureReason;
use crate::storage::{StateHandle, StoragePath};
use crate::store::{CheckpointMetadata, CompletedCheckpoint, CompletedCheckpointStore};
use crate::trace::{CheckpointReply, EngineEvent, IgnoredBecause, TriggerKind};
use std::collections::{BTreeMap, BTreeSet};

/// Why a savepoint was not started.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SavepointRefused {
    /// No `state.savepoints.dir`.
    #[error("no savepoint directory is configured (state.savepoints.dir)")]
    NoDirectory,
    /// The job is not running (deploying, restarting, finishing or ended).
    #[error("the job is not running")]
    NotRunning,
}

/// Flink's bound on queued trigger requests (`CheckpointRequestDecider`).
pub const QUEUED_REQUESTS_MAX: u32 = 1000;

/// What the coordinator asks the JobManager to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CoordinatorEffect {
    /// Persist the id counter (the HA record), then call `on_counter_persisted`.
    PersistCounter,
    /// Send the barrier of `checkpoint` to these source tasks.
    Trigger {
        checkpoint: CheckpointId,
        /// It is a savepoint.
        savepoint: bool,
        /// The source tasks.
        sources: Vec<TaskId>,
    },
    /// Write `_metadata` (unless it stays in memory: no path), then call `on_metadata_written`.
    WriteMetadata {
        /// It is a savepoint's: self-contained, with references relative to its directory.
        savepoint: bool,
        /// Where; `None` with JobManagerCheckpointStorage.
        path: Option<StoragePath>,
        /// What.
        metadata: CheckpointMetadata,
    },
    /// Persist the completed store with this checkpoint added (the HA record), then call
    /// `on_completion_persisted`.
    PersistCompletion(CompletedCheckpoint),
    /// Tell every task the checkpoint completed.
    NotifyComplete {
        checkpoint: CheckpointId,
        /// It is the final checkpoint: triggered after every source consumed its input, so
        /// every task snapshotted after its end of data and may finish.
        final_checkpoint: bool,
    },
    /// Tell every task the checkpoint was aborted.
    NotifyAborted {
        /// The aborted checkpoint.
        checkpoint: CheckpointId,
        /// The latest completed checkpoint.
        latest_completed: Option<CheckpointId>,
    },
    /// Delete the exclusive state of this aborted checkpoint (or savepoint).
    Discard {
        checkpoint: CheckpointId,
        /// It is a savepoint: its directory goes.
        savepoint: bool,
    },
    /// This completed checkpoint left the store: delete its exclusive state if the job owns it.
    DiscardCompleted(CompletedCheckpoint),
    /// Too many counted failures in a row: fail the job (Flink's `CheckpointFailureManager`).
    FailJob {
        /// The checkpoint whose failure crossed the threshold.
        checkpoint: CheckpointId,
        /// Its failure reason.
        reason: CheckpointFailureReason,
    },
    /// Record a trace event.
    Trace(EngineEvent),
    /// The recovery line proposed last is complete as `checkpoint` and being finalized
    /// (checkpointing without barriers).
    LineNumbered { checkpoint: CheckpointId },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Waiting for acknowledgements.
    Collecting,
    /// Every task acknowledged; waiting for its turn to finalize.
    Acknowledged,
    /// `_metadata` is being written.
    WritingMetadata,
    /// The completed store is being persisted.
    PersistingStore,
}

#[derive(Clone, Debug)]
struct PendingCheckpoint {
    savepoint: bool,
    expires_at: Tick,
    acks: BTreeMap<TaskId, StateHandle>,
    phase: Phase,
}

/// Counts checkpoint failures and decides when the job must fail, as Flink's
/// `CheckpointFailureManager` does.
///
/// Invariant: `counted` holds only ids above `last_succeeded`, and
/// `continuous <= tolerable` between calls.
#[derive(Clone, Debug)]
pub struct CheckpointFailureManager {
    tolerable: u32,
    continuous: u32,
    counted: BTreeSet<CheckpointId>,
    last_succeeded: CheckpointId,
    /// Seeded bug [`FinalizeFailureCounted`](crate::bugs::SeededBug::FinalizeFailureCounted).
    finalize_failure_counted: bool,
}

impl CheckpointFailureManager {
    /// A manager that tolerates `tolerable` consecutive counted failures.
    pub fn new(tolerable: u32) -> CheckpointFailureManager {
        CheckpointFailureManager {
            tolerable,
            continuous: 0,
            counted: BTreeSet::new(),
            last_succeeded: CheckpointId(0),
            finalize_failure_counted: false,
        }
    }

    /// Records a failure; returns true when the job must fail. Counts only the reasons Flink's
    /// `CheckpointFailureManager#checkFailureCounter` counts, once per id, and only for ids
    /// after the last success (FLINK-18336).
    #[must_use]
    pub fn on_failure(
        &mut self,
        checkpoint: CheckpointId,
        reason: CheckpointFailureReason,
    ) -> bool {
        let counted = reason.is_counted()
            || (self.finalize_failure_counted
                && reason == CheckpointFailureReason::FinalizeFailure);
        if !counted || checkpoint <= self.last_succeeded || !self.counted.insert(checkpoint) {
            return false;
        }
        self.continuous += 1;
        if self.continuous > self.tolerable {
            self.continuous = 0;
            self.counted.clear();
            return true;
        }
        false
    }

    /// Records a success: a newer one resets the count.
    pub fn on_success(&mut self, checkpoint: CheckpointId) {
        if checkpoint > self.last_succeeded {
            self.last_succeeded = checkpoint;
            self.continuous = 0;
            self.counted.retain(|&id| id > checkpoint);
        }
    }

    /// Counted failures since the last success.
    #[cfg(test)]
    pub(crate) fn continuous_failures(&self) -> u32 {
        self.continuous
    }
}

/// The checkpoint coordinator of one job.
///
/// Invariants: pending ids are below `next_id`; at most one checkpoint is past `Acknowledged`
/// (finalization is serial, in id order); at most `max_concurrent` are pending.
#[derive(Clone, Debug)]
pub struct CheckpointCoordinator {
    job: String,
    config: CheckpointConfig,
    tasks: Vec<TaskId>,
    sources: Vec<TaskId>,
    next_id: CheckpointId,
    pending: BTreeMap<CheckpointId, PendingCheckpoint>,
    store: CompletedCheckpointStore,
    failures: CheckpointFailureManager,
    /// Whether the job runs (the scheduler is started).
    running: bool,
    /// When the periodic trigger fires next; `None` when periodic checkpointing is off/stopped.
    next_periodic: Option<Tick>,
    queued_periodic: u32,
    queued_requested: u32,
    /// Savepoints requested and not yet triggered; they go first and are forced.
    queued_savepoints: u32,
    /// The checkpoint being triggered is a savepoint.
    triggering_savepoint: bool,
    /// The id whose counter write is in flight (Flink's `isTriggering`).
    triggering: Option<CheckpointId>,
    last_completion: Option<Tick>,
    /// All input is consumed since this id: keep a checkpoint coming until one with this id
    /// or later completes (the final checkpoint).
    finishing_since: Option<CheckpointId>,
    /// The scheduler ran before (this is a restart after a failover).
    started_before: bool,
    /// Seeded bug [`PeriodicNotResumed`](crate::bugs::SeededBug::PeriodicNotResumed).
    periodic_not_resumed: bool,
    /// Checkpointing without barriers: nothing is triggered; the JobManager proposes recovery
    /// lines, complete already, and the periodic timer only repeats the final notification.
    without_barriers: bool,
    /// The recovery line whose id is being taken: each task's local snapshot.
    proposed_line: Option<BTreeMap<TaskId, StateHandle>>,
}

impl CheckpointCoordinator {
    /// A coordinator for the tasks of a job, resuming from a persisted counter and store.
    pub fn new(
        job: &str,
        config: CheckpointConfig,
        tasks: Vec<TaskId>,
        sources: Vec<TaskId>,
        next_id: CheckpointId,
        store: CompletedCheckpointStore,
    ) -> CheckpointCoordinator {
        assert!(
            config.validate().is_ok(),
            "checkpoint config validated at job build"
        );
        assert!(
            next_id >= CheckpointId::INITIAL,
            "checkpoint ids start at 1"
        );
        if let Some(latest) = store.latest() {
            assert!(
                next_id > latest.id,
                "the counter is ahead of every completed checkpoint"
            );
        }
        let mut failures = CheckpointFailureManager::new(config.tolerable_failed);
        if let Some(latest) = store.latest() {
            failures.on_success(latest.id);
        }
        let without_barriers = config.logging.is_some();
        CheckpointCoordinator {
            job: job.to_string(),
            config,
            tasks,
            sources,
            next_id,
            pending: BTreeMap::new(),
            store,
            failures,
            running: false,
            next_periodic: None,
            queued_periodic: 0,
            queued_requested: 0,
            queued_savepoints: 0,
            triggering_savepoint: false,
            triggering: None,
            last_completion: None,
            finishing_since: None,
            started_before: false,
            periodic_not_resumed: false,
            without_barriers,
            proposed_line: None,
        }
    }

    /// Whether nothing is being triggered, collected or finalized: a recovery line may be
    /// proposed.
    pub fn is_idle(&self) -> bool {
        self.running && self.triggering.is_none() && self.pending.is_empty()
    }

    /// The final checkpoint completed: tasks are finishing.
    pub fn final_done(&self) -> bool {
        self.final_completed().is_some()
    }

    /// Every task processed all its input (the final checkpoint was requested).
    pub fn is_finishing(&self) -> bool {
        self.finishing_since.is_some()
    }

    /// Checkpointing without barriers: completes the recovery line of these local snapshots
    /// as the next checkpoint id. The id is persisted first (so no id repeats); then the line,
    /// acknowledged by every task already, is finalized as a triggered checkpoint would be.
    pub fn propose_line(
        &mut self,
        snapshots: BTreeMap<TaskId, StateHandle>,
        out: &mut Vec<CoordinatorEffect>,
    ) {
        assert!(
            self.without_barriers,
            "only jobs without barriers propose lines"
        );
        assert!(
            self.is_idle(),
            "a line is proposed only when nothing is pending"
        );
        assert_eq!(
            snapshots.len(),
            self.tasks.len(),
            "a line has every task's snapshot"
        );
        self.proposed_line = Some(snapshots);
        self.start_triggering(TriggerKind::RecoveryLine, out);
    }

    /// The next id the counter hands out (what the HA record persists).
    pub fn next_id(&self) -> CheckpointId {
        self.next_id
    }

    /// The completed store.
    pub fn store(&self) -> &CompletedCheckpointStore {
        &self.store
    }

    /// State bytes the JobManager holds in memory: every retained and pending checkpoint's
    /// (JobManagerCheckpointStorage; 0 with files).
    pub fn in_memory_bytes(&self) -> u64 {
        let retained = self
            .store
            .checkpoints()
            .flat_map(|c| c.task_states.values());
        let pending = self.pending.values().flat_map(|p| p.acks.values());
        retained
            .chain(pending)
            .map(StateHandle::in_memory_bytes)
            .sum()
    }

    /// Whether a checkpoint is triggered and not yet completed or aborted.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Checkpoints not yet completed or aborted.
    pub fn pending_ids(&self) -> Vec<CheckpointId> {
        self.pending.keys().copied().collect()
    }

    /// Whether a completion is being persisted (a failover waits for it to settle).
    pub fn is_finalizing(&self) -> bool {
        self.pending
            .values()
            .any(|p| matches!(p.phase, Phase::WritingMetadata | Phase::PersistingStore))
    }

    /// The job runs: start periodic triggering after `first_delay` (Flink's
    /// `CheckpointCoordinatorDeActivator`; Flink draws the delay at random in
    /// `[min pause, interval]` in `getRandomInitDelay`, the driver draws it from the seed).
    pub fn start(&mut self, now: Tick, first_delay: u64) {
        assert!(!self.running, "the scheduler starts once per attempt");
        self.running = true;
        self.next_periodic = self
            .config
            .effective_interval_ticks()
            .map(|_| now.after(first_delay));
        if std::mem::replace(&mut self.started_before, true) && self.periodic_not_resumed {
            // Seeded bug: the periodic scheduler stays off after a failover.
            self.next_periodic = None;
        }
    }

    /// Switches seeded bug [`PeriodicNotResumed`](crate::bugs::SeededBug::PeriodicNotResumed) on.
    pub fn seed_periodic_not_resumed(&mut self) {
        self.periodic_not_resumed = true;
    }

    /// Switches seeded bug
    /// [`FinalizeFailureCounted`](crate::bugs::SeededBug::FinalizeFailureCounted) on.
    pub fn seed_finalize_failure_counted(&mut self) {
        self.failures.finalize_failure_counted = true;
    }

    /// The job stops running (failover or end): stop the scheduler, drop queued requests and
    /// abort every checkpoint still collecting acknowledgements. A completion already being
    /// persisted settles on its own.
    pub fn stop(&mut self, reason: CheckpointFailureReason, out: &mut Vec<CoordinatorEffect>) {
        self.running = false;
        self.next_periodic = None;
        self.queued_periodic = 0;
        self.queued_requested = 0;
        self.queued_savepoints = 0;
        self.finishing_since = None;
        let collecting: Vec<CheckpointId> = self
            .pending
            .iter()
            .filter(|(_, p)| matches!(p.phase, Phase::Collecting | Phase::Acknowledged))
            .map(|(&id, _)| id)
            .collect();
        for id in collecting {
            self.abort(id, reason, out);
        }
    }

    /// The newest pending checkpoint (not a savepoint) and the states acknowledged so far: only
    /// seeded bug [`RestoreFromPending`](crate::bugs::SeededBug::RestoreFromPending) looks.
    pub fn newest_pending(&self) -> Option<(CheckpointId, BTreeMap<TaskId, StateHandle>)> {
        self.pending
            .iter()
            .rev()
            .find(|(_, p)| !p.savepoint)
            .map(|(&id, p)| (id, p.acks.clone()))
    }

    /// A savepoint is asked for (`CheckpointCoordinator#triggerSavepoint`, FLINK-25191):
    /// triggered before queued checkpoints, ignoring the min pause and the concurrency limit,
    /// written to the savepoint directory, never added to the store and never notified, so
    /// nothing is committed from it.
    pub fn request_savepoint(
        &mut self,
        now: Tick,
        out: &mut Vec<CoordinatorEffect>,
    ) -> Result<(), SavepointRefused> {
        if self.config.savepoint_directory.is_none() {
            return Err(SavepointRefused::NoDirectory);
        }
        if !self.running || self.finishing_since.is_some() {
            return Err(SavepointRefused::NotRunning);
        }
        self.queued_savepoints += 1;
        self.try_trigger(now, out);
        Ok(())
    }

    /// The final checkpoint, once it completed.
    fn final_completed(&self) -> Option<CheckpointId> {
        let first = self.finishing_since?;
        self.store.latest().map(|c| c.id).filter(|&id| id >= first)
    }

    /// Every task processed all its input: a checkpoint must follow and complete (the final one).
    pub fn request_final_checkpoint(&mut self, now: Tick, out: &mut Vec<CoordinatorEffect>) {
        if self.finishing_since.is_none() {
            self.finishing_since = Some(self.next_id);
            out.push(CoordinatorEffect::Trace(EngineEvent::InputConsumed {
                final_from: self.next_id,
            }));
        }
        self.try_trigger(now, out);
    }

    /// The earliest time the coordinator needs `on_tick`.
    pub fn next_deadline(&self) -> Option<Tick> {
        let expiry = self
            .pending
            .values()
            .filter(|p| p.phase == Phase::Collecting)
            .map(|p| p.expires_at)
            .min();
        [expiry, self.next_periodic].into_iter().flatten().min()
    }

    /// Fires expirations and the periodic trigger due by `now`.
    pub fn on_tick(&mut self, now: Tick, out: &mut Vec<CoordinatorEffect>) {
        let expired: Vec<CheckpointId> = self
            .pending
            .iter()
            .filter(|(_, p)| p.phase == Phase::Collecting && p.expires_at <= now)
            .map(|(&id, _)| id)
            .collect();
        for id in expired {
            self.abort(id, CheckpointFailureReason::Expired, out);
        }
        if let (Some(at), Some(interval)) =
            (self.next_periodic, self.config.effective_interval_ticks())
        {
            if at <= now {
                // Fixed rate: the schedule does not drift with completions (Flink's
                // `CheckpointCoordinator.ScheduledTrigger`).
                let missed = now.since(at) / interval;
                self.next_periodic = Some(at.after((missed + 1) * interval));
                match self.final_completed() {
                    // A task whose notification was lost waits for it to finish: repeat it.
                    Some(checkpoint) => {
                        probes::hit(Probe::FinalNotificationRepeated);
                        out.push(CoordinatorEffect::NotifyComplete {
                            checkpoint,
                            final_checkpoint: true,
                        })
                    }
                    None if self.without_barriers => {}
                    None => self.queue_request(true, out),
                }
            }
        }
        self.try_trigger(now, out);
    }

    /// A task acknowledged `checkpoint` with its state.
    pub fn on_acknowledge(
        &mut self,
        now: Tick,
        task: TaskId,
        checkpoint: CheckpointId,
        state: StateHandle,
        out: &mut Vec<CoordinatorEffect>,
    ) {
        if !self.replies_to_known(task, checkpoint, CheckpointReply::Acknowledge, out) {
            return;
        }
        let Some(pending) = self.pending.get_mut(&checkpoint) else {
            return; // Late ack for an aborted or completed checkpoint (FLINK-5063).
        };
        if pending.phase != Phase::Collecting || pending.acks.contains_key(&task) {
            return; // Duplicate.
        }
        pending.acks.insert(task, state);
        if pending.acks.len() == self.tasks.len() {
            pending.phase = Phase::Acknowledged;
            out.push(CoordinatorEffect::Trace(EngineEvent::AllAcknowledged {
                checkpoint,
            }));
            self.try_finalize(now, out);
        }
    }

    /// A task declined `checkpoint`: abort it with the task's reason
    /// (`CheckpointCoordinator#receiveDeclineMessage`).
    pub fn on_decline(
        &mut self,
        now: Tick,
        task: TaskId,
        checkpoint: CheckpointId,
        reason: CheckpointFailureReason,
        out: &mut Vec<CoordinatorEffect>,
    ) {
        if !self.replies_to_known(task, checkpoint, CheckpointReply::Decline, out) {
            return;
        }
        if self
            .pending
            .get(&checkpoint)
            .is_some_and(|p| p.phase == Phase::Collecting)
        {
            self.abort(checkpoint, reason, out);
            self.try_trigger(now, out);
        }
    }

    /// Whether a reply comes from a task of this job for an id this coordinator took. One that
    /// does not (a stray or corrupted message) is traced and ignored, as Flink ignores it
    /// (`CheckpointCoordinatorTest#testHandleMessagesForNonExistingCheckpoints`).
    fn replies_to_known(
        &self,
        task: TaskId,
        checkpoint: CheckpointId,
        reply: CheckpointReply,
        out: &mut Vec<CoordinatorEffect>,
    ) -> bool {
        let why = if !self.tasks.contains(&task) {
            IgnoredBecause::UnknownTask
        } else if checkpoint >= self.next_id {
            IgnoredBecause::NeverTriggered
        } else {
            return true;
        };
        out.push(CoordinatorEffect::Trace(EngineEvent::ReplyIgnored {
            task,
            checkpoint,
            reply,
            why,
        }));
        false
    }

    /// The id counter was persisted (or not): trigger the checkpoint at the sources.
    pub fn on_counter_persisted(
        &mut self,
        now: Tick,
        persisted: bool,
        out: &mut Vec<CoordinatorEffect>,
    ) {
        let id = self
            .triggering
            .take()
            .expect("a counter write is in flight");
        let savepoint = std::mem::take(&mut self.triggering_savepoint);
        if let Some(snapshots) = self.proposed_line.take() {
            self.line_numbered(now, id, snapshots, persisted, out);
            return;
        }
        if !persisted {
            let reason = CheckpointFailureReason::TriggerFailure;
            probes::hit(Probe::AbortTriggerFailure);
            out.push(CoordinatorEffect::Trace(EngineEvent::CheckpointAborted {
                checkpoint: id,
                reason,
            }));
        } else if self.running {
            let expires_at = now.after(self.config.timeout_ticks);
            self.pending.insert(
                id,
                PendingCheckpoint {
                    savepoint,
                    expires_at,
                    acks: BTreeMap::new(),
                    phase: Phase::Collecting,
                },
            );
            let triggered = if savepoint {
                EngineEvent::SavepointTriggered { checkpoint: id }
            } else {
                EngineEvent::CheckpointTriggered { checkpoint: id }
            };
            out.push(CoordinatorEffect::Trace(triggered));
            out.push(CoordinatorEffect::Trigger {
                checkpoint: id,
                savepoint,
                sources: self.sources.clone(),
            });
        } else {
            // The job stopped while the counter was written: the id is spent, never triggered.
            out.push(CoordinatorEffect::Trace(EngineEvent::CheckpointAborted {
                checkpoint: id,
                reason: CheckpointFailureReason::JobFailover,
            }));
        }
        self.try_trigger(now, out);
    }

    /// The id of a proposed recovery line is persisted (or not): finalize the line.
    fn line_numbered(
        &mut self,
        now: Tick,
        id: CheckpointId,
        snapshots: BTreeMap<TaskId, StateHandle>,
        persisted: bool,
        out: &mut Vec<CoordinatorEffect>,
    ) {
        if !persisted || !self.running {
            let reason = match persisted {
                false => CheckpointFailureReason::TriggerFailure,
                true => CheckpointFailureReason::JobFailover,
            };
            out.push(CoordinatorEffect::Trace(EngineEvent::CheckpointAborted {
                checkpoint: id,
                reason,
            }));
            return;
        }
        let pending = PendingCheckpoint {
            savepoint: false,
            expires_at: now.after(self.config.timeout_ticks),
            acks: snapshots,
            phase: Phase::Acknowledged,
        };
        self.pending.insert(id, pending);
        out.push(CoordinatorEffect::LineNumbered { checkpoint: id });
        self.try_finalize(now, out);
    }

    /// `_metadata` of `checkpoint` was written (or not).
    pub fn on_metadata_written(
        &mut self,
        now: Tick,
        checkpoint: CheckpointId,
        written: bool,
        out: &mut Vec<CoordinatorEffect>,
    ) {
        let pending = self
            .pending
            .get_mut(&checkpoint)
            .expect("metadata written for a pending checkpoint");
        assert_eq!(
            pending.phase,
            Phase::WritingMetadata,
            "metadata of {checkpoint} written twice"
        );
        if !written {
            self.abort(checkpoint, CheckpointFailureReason::FinalizeFailure, out);
            self.try_finalize(now, out);
            self.try_trigger(now, out);
            return;
        }
        if pending.savepoint {
            // Done: not in the store, no notification (FLINK-25191); the min pause counts
            // from here too (Flink's `lastCheckpointCompletionRelativeTime`).
            self.pending.remove(&checkpoint);
            self.last_completion = Some(now);
            let directory = self.config.savepoint_dir(&self.job, checkpoint);
            let path = directory.expect("savepoints need a directory").to_string();
            probes::hit(Probe::SavepointCompleted);
            out.push(CoordinatorEffect::Trace(EngineEvent::SavepointCompleted {
                checkpoint,
                path,
            }));
            self.try_finalize(now, out);
            self.try_trigger(now, out);
            return;
        }
        pending.phase = Phase::PersistingStore;
        let completed = CompletedCheckpoint {
            id: checkpoint,
            task_states: pending.acks.clone(),
            metadata: self.metadata_path(checkpoint),
            completed_at: now,
            owned: true,
        };
        out.push(CoordinatorEffect::Trace(
            EngineEvent::CompletionPersisting {
                checkpoint,
                files: completed.files(),
            },
        ));
        out.push(CoordinatorEffect::PersistCompletion(completed));
    }

    /// The completed store with `checkpoint` was persisted (or not). On success the checkpoint
    /// is complete: older pending ones are subsumed, then tasks are notified
    /// (`CheckpointCoordinator#completePendingCheckpoint`).
    pub fn on_completion_persisted(
        &mut self,
        now: Tick,
        completed: CompletedCheckpoint,
        persisted: bool,
        out: &mut Vec<CoordinatorEffect>,
    ) {
        let checkpoint = completed.id;
        let phase = self.pending.get(&checkpoint).map(|p| p.phase);
        assert_eq!(
            phase,
            Some(Phase::PersistingStore),
            "completion of {checkpoint} persisted out of order"
        );
        if !persisted {
            self.abort(checkpoint, CheckpointFailureReason::FinalizeFailure, out);
            self.try_finalize(now, out);
            self.try_trigger(now, out);
            return;
        }
        self.pending.remove(&checkpoint);
        for subsumed in self.store.add(completed) {
            probes::hit(Probe::CheckpointRetired);
            out.push(CoordinatorEffect::Trace(EngineEvent::CheckpointSubsumed {
                checkpoint: subsumed.id,
            }));
            out.push(CoordinatorEffect::DiscardCompleted(subsumed));
        }
        self.failures.on_success(checkpoint);
        self.last_completion = Some(now);
        // Older pending checkpoints are subsumed; savepoints are not
        // (`PendingCheckpoint#canBeSubsumed`).
        let older: Vec<CheckpointId> = self
            .pending
            .range(..checkpoint)
            .filter(|(_, p)| !p.savepoint)
            .map(|(&id, _)| id)
            .collect();
        for id in older {
            self.abort(id, CheckpointFailureReason::Subsumed, out);
        }
        out.push(CoordinatorEffect::Trace(EngineEvent::CheckpointCompleted {
            checkpoint,
        }));
        let final_checkpoint = self
            .finishing_since
            .is_some_and(|first| checkpoint >= first);
        out.push(CoordinatorEffect::NotifyComplete {
            checkpoint,
            final_checkpoint,
        });
        self.try_finalize(now, out);
        self.try_trigger(now, out);
    }

    fn queue_request(&mut self, periodic: bool, out: &mut Vec<CoordinatorEffect>) {
        if self.queued_periodic + self.queued_requested >= QUEUED_REQUESTS_MAX {
            // The lowest-priority entry (a periodic one) is evicted, or the new one refused.
            let reason = CheckpointFailureReason::TooManyRequests;
            probes::hit(Probe::RefusedTooManyRequests);
            out.push(CoordinatorEffect::Trace(
                EngineEvent::TriggerRequestRefused { reason },
            ));
            if !periodic && self.queued_periodic > 0 {
                self.queued_periodic -= 1;
            } else {
                return;
            }
        }
        if periodic {
            self.queued_periodic += 1;
        } else {
            self.queued_requested += 1;
        }
    }

    /// Takes the next queued request if the rules allow (Flink's
    /// `CheckpointRequestDecider#chooseRequestToExecute`).
    fn try_trigger(&mut self, now: Tick, out: &mut Vec<CoordinatorEffect>) {
        if !self.running || self.triggering.is_some() || self.without_barriers {
            return;
        }
        if self.final_completed().is_some() {
            // The final checkpoint completed: tasks are finishing, nothing more to snapshot.
            // The periodic timer goes on to repeat its notification (see on_tick).
            self.queued_periodic = 0;
            self.queued_requested = 0;
            return;
        }
        if self.queued_savepoints > 0 {
            // Forced: neither the min pause nor the concurrency limit holds a savepoint back.
            self.queued_savepoints -= 1;
            self.triggering_savepoint = true;
            self.start_triggering(TriggerKind::Savepoint, out);
            return;
        }
        if self.finishing_since.is_some()
            && self.pending.is_empty()
            && self.queued_periodic + self.queued_requested == 0
        {
            self.queue_request(false, out);
        }
        let periodic = match (self.queued_requested, self.queued_periodic) {
            (0, 0) => return,
            (0, _) => true,
            _ => false,
        };
        // Every pending checkpoint counts, also one being finalized (Flink completes under
        // its lock, so there a finalizing checkpoint is still pending).
        if self.pending.len() >= self.config.max_concurrent as usize {
            return; // Stays queued until a slot frees, not failed (`CheckpointRequestDecider`).
        }
        if periodic {
            if self.refuse_within_min_pause(now, out) {
                return;
            }
            self.queued_periodic -= 1;
        } else {
            self.queued_requested -= 1;
        }
        let kind = if periodic {
            TriggerKind::Periodic
        } else {
            TriggerKind::Requested
        };
        self.start_triggering(kind, out);
    }

    /// Refuses the queued periodic request when the minimum pause since the last completion
    /// has not passed; returns whether it did.
    fn refuse_within_min_pause(&mut self, now: Tick, out: &mut Vec<CoordinatorEffect>) -> bool {
        let Some(last) = self.last_completion else {
            return false;
        };
        let earliest = last.after(self.config.min_pause_ticks);
        if now >= earliest {
            return false;
        }
        // Fails, and the periodic trigger fires again exactly when allowed
        // (`CheckpointRequestDecider#nextTriggerDelayMillis`).
        self.queued_periodic -= 1;
        let reason = CheckpointFailureReason::MinimumTimeBetweenCheckpoints;
        probes::hit(Probe::RefusedMinPause);
        out.push(CoordinatorEffect::Trace(
            EngineEvent::TriggerRequestRefused { reason },
        ));
        self.next_periodic = Some(earliest);
        true
    }

    /// Takes the next checkpoint id for a trigger of `kind`. The barriers go out only once the
    /// id counter is persisted, so that no id is used twice across JobManager failovers.
    fn start_triggering(&mut self, kind: TriggerKind, out: &mut Vec<CoordinatorEffect>) {
        let id = self.next_id;
        self.next_id = id.next();
        self.triggering = Some(id);
        out.push(CoordinatorEffect::Trace(EngineEvent::TriggerStarted {
            checkpoint: id,
            kind,
        }));
        out.push(CoordinatorEffect::PersistCounter);
    }

    /// Starts finalizing the oldest fully acknowledged checkpoint, if none is finalizing.
    fn try_finalize(&mut self, _now: Tick, out: &mut Vec<CoordinatorEffect>) {
        if self.is_finalizing() {
            return;
        }
        let Some((&id, pending)) = self
            .pending
            .iter_mut()
            .find(|(_, p)| p.phase == Phase::Acknowledged)
        else {
            return;
        };
        pending.phase = Phase::WritingMetadata;
        let savepoint = pending.savepoint;
        let metadata = CheckpointMetadata {
            job: self.job.clone(),
            checkpoint: id,
            task_states: pending.acks.clone(),
        };
        let path = if savepoint {
            let directory = self.config.savepoint_dir(&self.job, id);
            Some(
                directory
                    .expect("savepoints need a directory")
                    .join("_metadata"),
            )
        } else {
            self.metadata_path(id)
        };
        out.push(CoordinatorEffect::WriteMetadata {
            savepoint,
            path,
            metadata,
        });
    }

    /// Where `_metadata` goes: a file with FileSystemCheckpointStorage, nowhere (the
    /// JobManager's memory) with JobManagerCheckpointStorage
    /// (`NonPersistentMetadataCheckpointStorageLocation`).
    fn metadata_path(&self, checkpoint: CheckpointId) -> Option<StoragePath> {
        match self.config.storage(&self.job) {
            CheckpointStorageKind::FileSystem(root) => {
                Some(StoragePath::metadata(root.as_str(), checkpoint))
            }
            CheckpointStorageKind::JobManager(_) => None,
        }
    }

    fn abort(
        &mut self,
        checkpoint: CheckpointId,
        reason: CheckpointFailureReason,
        out: &mut Vec<CoordinatorEffect>,
    ) {
        let removed = self.pending.remove(&checkpoint);
        let savepoint = removed
            .unwrap_or_else(|| panic!("abort of {checkpoint} which is not pending"))
            .savepoint;
        if let Some(probe) = abort_probe(reason) {
            probes::hit(probe);
        }
        out.push(CoordinatorEffect::Trace(EngineEvent::CheckpointAborted {
            checkpoint,
            reason,
        }));
        out.push(CoordinatorEffect::Discard {
            checkpoint,
            savepoint,
        });
        let latest_completed = self.store.latest().map(|c| c.id);
        out.push(CoordinatorEffect::NotifyAborted {
            checkpoint,
            latest_completed,
        });
        // A failed savepoint does not count toward the tolerable checkpoint failures.
        if !savepoint && self.failures.on_failure(checkpoint, reason) {
            probes::hit(Probe::ToleranceExceeded);
            out.push(CoordinatorEffect::FailJob { checkpoint, reason });
        }
    }
}

/// The coverage probe of an abort (or a refusal) for `reason`; none for the reasons a task
/// declines with, whose probes mark the task's decision (which decline reaches the
/// coordinator first is a race).
fn abort_probe(reason: CheckpointFailureReason) -> Option<Probe> {
    use CheckpointFailureReason as R;
    let probe = match reason {
        R::Expired => Probe::AbortExpired,
        R::Declined => Probe::AbortDeclined,
        R::AsyncException => Probe::AbortAsyncException,
        R::FinalizeFailure => Probe::AbortFinalizeFailure,
        R::DeclinedSubsumed | R::DeclinedOnCancellationBarrier | R::DeclinedTaskNotReady => {
            return None
        }
        R::Subsumed => Probe::AbortSubsumed,
        R::JobFailover => Probe::AbortJobFailover,
        R::TriggerFailure => Probe::AbortTriggerFailure,
        R::CoordinatorSuspend => Probe::AbortCoordinatorSuspend,
        R::TooManyRequests => Probe::RefusedTooManyRequests,
        R::MinimumTimeBetweenCheckpoints => Probe::RefusedMinPause,
    };
    Some(probe)
}

#[cfg(test)]
mod tests;
