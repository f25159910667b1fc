//! The coordinator's effects carried out: triggers sent to the sources, `_metadata` written,
//! completions persisted, discarded snapshots and unused shared state deleted.

use super::{EndRecord, HaWrite, JobManager, Request};
use crate::bugs::SeededBug;
use crate::codec::{self, Kind};
use crate::config::CheckpointStorageKind;
use crate::coordinator::CoordinatorEffect;
use crate::ids::{CheckpointId, TaskId, Tick};
use crate::messages::{Address, Message, Outbox};
use crate::probes::{self, Probe};
use crate::storage::{StorageOp, StoragePath};
use crate::store::{CheckpointMetadata, CheckpointProperties, CompletedCheckpoint, MetadataFile};

impl JobManager {
    /// Seeded bug [`SeededBug::AbortDiscardsPending`]: deletes what the pending checkpoints
    /// uploaded so far.
    pub(super) fn discard_pending(&mut self, now: Tick, out: &mut Outbox) {
        let CheckpointStorageKind::FileSystem(root) = self.plan.checkpoint.storage(&self.plan.job)
        else {
            return;
        };
        for id in self.coordinator_mut().pending_ids() {
            let prefix = StoragePath::checkpoint_dir(root.as_str(), id);
            self.request(now, Request::Discard, StorageOp::DeleteAll { prefix }, out);
        }
    }

    pub(super) fn on_metadata_written(
        &mut self,
        now: Tick,
        checkpoint: CheckpointId,
        written: bool,
        out: &mut Outbox,
    ) {
        // Seeded bug: the answer is handled twice, which the coordinator's assertions catch.
        let times = if self.plan.has_bug(SeededBug::MetadataAnsweredTwice) {
            2
        } else {
            1
        };
        for _ in 0..times {
            let mut effects = Vec::new();
            self.coordinator_mut()
                .on_metadata_written(now, checkpoint, written, &mut effects);
            self.apply(now, effects, out);
        }
    }

    pub(super) fn apply(&mut self, now: Tick, effects: Vec<CoordinatorEffect>, out: &mut Outbox) {
        for effect in effects {
            if self.is_line_effect(&effect) {
                self.apply_line_effect(now, effect, out);
                continue;
            }
            match effect {
                CoordinatorEffect::PersistCounter => self.write_ha(now, HaWrite::Counter, out),
                CoordinatorEffect::Trigger {
                    checkpoint,
                    savepoint,
                    sources,
                } => self.trigger_sources(checkpoint, savepoint, sources, out),
                CoordinatorEffect::WriteMetadata {
                    savepoint,
                    path: Some(path),
                    metadata,
                } => self.write_metadata(now, savepoint, path, &metadata, out),
                CoordinatorEffect::WriteMetadata {
                    path: None,
                    metadata,
                    ..
                } => {
                    // JobManagerCheckpointStorage: the metadata stays in memory, "written" at once.
                    self.on_metadata_written(now, metadata.checkpoint, true, out);
                }
                CoordinatorEffect::PersistCompletion(checkpoint) => {
                    self.write_ha(now, HaWrite::Completion(checkpoint), out)
                }
                CoordinatorEffect::NotifyComplete {
                    checkpoint,
                    final_checkpoint,
                } => {
                    if let Some(attempt) = self.deployed {
                        let message = Message::NotifyCheckpointComplete {
                            attempt,
                            checkpoint,
                            final_checkpoint,
                        };
                        self.broadcast(message, out);
                    }
                }
                CoordinatorEffect::NotifyAborted {
                    checkpoint,
                    latest_completed,
                } => {
                    if let Some(attempt) = self.deployed {
                        let message = Message::NotifyCheckpointAborted {
                            attempt,
                            checkpoint,
                            latest_completed,
                        };
                        self.broadcast(message, out);
                    }
                }
                CoordinatorEffect::Discard {
                    checkpoint,
                    savepoint,
                } => self.discard(now, checkpoint, savepoint, out),
                CoordinatorEffect::DiscardCompleted(checkpoint) => {
                    self.discard_completed(now, &checkpoint, out)
                }
                CoordinatorEffect::FailJob { checkpoint, reason } => {
                    let cause = format!("exceeded checkpoint tolerable failure threshold at {checkpoint} ({reason:?})");
                    self.failover(now, cause, out);
                }
                CoordinatorEffect::Trace(event) => out.trace(event),
                CoordinatorEffect::LineNumbered { .. } => {
                    unreachable!("lines are numbered only in jobs without barriers")
                }
            }
        }
        // A line that completed or failed makes way for the next one.
        self.propose_line(now, out);
    }

    /// Sends the barrier of `checkpoint` to the source tasks, where it enters the stream.
    pub(super) fn trigger_sources(
        &self,
        checkpoint: CheckpointId,
        savepoint: bool,
        sources: Vec<TaskId>,
        out: &mut Outbox,
    ) {
        let attempt = self.deployed.expect("triggers only while deployed");
        for task in sources {
            let barrier = crate::record::CheckpointBarrier {
                id: checkpoint,
                savepoint,
            };
            let message = Message::TriggerCheckpoint {
                attempt,
                task,
                barrier,
            };
            out.send(Address::TaskManager(self.cluster.placement(task)), message);
        }
    }

    pub(super) fn write_metadata(
        &mut self,
        now: Tick,
        savepoint: bool,
        path: StoragePath,
        metadata: &CheckpointMetadata,
        out: &mut Outbox,
    ) {
        let properties = CheckpointProperties {
            savepoint,
            retention: self.plan.checkpoint.retention,
        };
        let mut file = MetadataFile::new(&self.plan, metadata, properties);
        // Exclusive files are named relative to `_metadata` (Flink's
        // RelativeFileStateHandle); shared runs keep their absolute paths, so a
        // savepoint (all exclusive) can be moved and an incremental checkpoint
        // cannot (`FsCheckpointStreamFactory`, `FsCheckpointStorageAccess`).
        let directory = path.parent().expect("a _metadata file has a directory");
        file.relativize(&directory);
        let bytes = codec::encode(Kind::CheckpointMetadata, &file);
        self.request(
            now,
            Request::Metadata(metadata.checkpoint),
            StorageOp::Write { path, bytes },
            out,
        );
    }

    /// Deletes what an aborted checkpoint or savepoint wrote.
    pub(super) fn discard(
        &mut self,
        now: Tick,
        checkpoint: CheckpointId,
        savepoint: bool,
        out: &mut Outbox,
    ) {
        // State in the JobManager's memory goes with the checkpoint's handles.
        let config = &self.plan.checkpoint;
        let directory = match config.storage(&self.plan.job) {
            _ if savepoint => config.savepoint_dir(&self.plan.job, checkpoint),
            CheckpointStorageKind::FileSystem(root) => {
                Some(StoragePath::checkpoint_dir(root.as_str(), checkpoint))
            }
            CheckpointStorageKind::JobManager(_) => None,
        };
        if let Some(prefix) = directory {
            self.request(now, Request::Discard, StorageOp::DeleteAll { prefix }, out);
        }
        if self.plan.has_bug(SeededBug::AbortDiscardsPending) {
            self.discard_pending(now, out);
        }
    }

    /// Deletes the exclusive state of a checkpoint that left the store, if the job owns it.
    pub(super) fn discard_completed(
        &mut self,
        now: Tick,
        checkpoint: &CompletedCheckpoint,
        out: &mut Outbox,
    ) {
        // Not owned: restored without claim; no path: state in memory. A claimed
        // snapshot whose directory holds this job's task-owned state keeps it.
        let directory = checkpoint
            .metadata
            .as_ref()
            .and_then(StoragePath::parent)
            .filter(|d| !self.holds_task_owned_state(d));
        if let (true, Some(prefix)) = (checkpoint.owned, directory) {
            self.request(now, Request::Discard, StorageOp::DeleteAll { prefix }, out);
        }
    }

    pub(super) fn try_discard(&mut self, now: Tick, out: &mut Outbox) {
        let settled = self
            .coordinator
            .as_ref()
            .is_some_and(|c| !c.is_finalizing());
        let recorded = self.end_record == EndRecord::Durable;
        if settled && recorded && !self.ha_in_flight && self.ha_queue.is_empty() {
            if let Some(reason) = self.pending_discard.take() {
                self.discard_on_termination(now, reason, out);
            }
        }
    }

    /// Deletes the shared files no retained checkpoint uses any more
    /// (`SharedStateRegistryImpl#unregisterUnusedState`), but
    /// only while no checkpoint is pending: a pending snapshot may have been taken on top of a
    /// checkpoint that a newer completion just subsumed, and use its runs.
    pub(super) fn delete_unused_shared(&mut self, now: Tick, out: &mut Outbox) {
        let Some(coordinator) = self.coordinator.as_ref() else {
            return;
        };
        if coordinator.has_pending() || self.status.is_terminal() {
            return;
        }
        let retained: Vec<CheckpointId> = coordinator.store().checkpoints().map(|c| c.id).collect();
        let bound = if self.plan.has_bug(SeededBug::RegistryDeletesReferenced) {
            // Seeded bug: the newest retained checkpoint as the bound, not the oldest.
            retained.last().copied()
        } else {
            retained.first().copied()
        };
        let Some(lowest) = bound else {
            return;
        };
        for prefix in self.shared.unregister_unused(lowest) {
            probes::hit(Probe::SharedRunsDeleted);
            self.request(now, Request::Discard, StorageOp::DeleteAll { prefix }, out);
        }
    }
}
