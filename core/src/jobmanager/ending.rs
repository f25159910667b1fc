//! The job's end: cancellation, the terminal status recorded in the HA record, and the
//! clean-up after it (retention's discards, then the orphan sweep).

use super::{EndRecord, HaWrite, JobManager, Request, Sweep};
use crate::config::CheckpointStorageKind;
use crate::ids::{CheckpointId, Tick};
use crate::messages::{CheckpointFailureReason, Message, Outbox};
use crate::probes::{self, Probe};
use crate::retention::{Leaving, SnapshotKind};
use crate::storage::{StorageError, StorageOp, StoragePath, StorageReply};
use crate::trace::{EngineEvent, JobStatus};
use std::collections::BTreeSet;

impl JobManager {
    /// The job ended for good: delete the retained checkpoints the retention policy does not
    /// keep (`CompletedCheckpoint#shouldBeDiscardedOnShutdown`, called by Flink's
    /// `CompletedCheckpointStore#shutdown`). The job's directory stays; so do the HA records, which
    /// say which checkpoints exist.
    pub(super) fn discard_on_termination(&mut self, now: Tick, reason: Leaving, out: &mut Outbox) {
        let kind = SnapshotKind::Checkpoint(self.plan.checkpoint.retention);
        let Some(coordinator) = self.coordinator.as_ref() else {
            return;
        };
        let discarded = kind.discarded_when(reason);
        let kept: BTreeSet<String> = if discarded {
            BTreeSet::new()
        } else {
            coordinator
                .store()
                .checkpoints()
                .flat_map(|c| c.files())
                .collect()
        };
        if discarded {
            // Only what the job owns (not a snapshot restored without claim), and only files
            // (state in memory goes with the JobManager).
            let doomed: Vec<StoragePath> = coordinator
                .store()
                .checkpoints()
                .filter(|c| c.owned)
                .filter_map(|c| c.metadata.as_ref().and_then(StoragePath::parent))
                .collect();
            let unused = self.shared.unregister_unused(CheckpointId(u64::MAX));
            for prefix in doomed.into_iter().chain(unused) {
                self.request(now, Request::Discard, StorageOp::DeleteAll { prefix }, out);
            }
        }
        // Orphans too: files of aborted snapshots that landed after their discard, torn files
        // of a storage crash, runs no completed checkpoint took up. Swept now and once more
        // after a storage timeout, for writes still on their way now. Not for a job restored
        // from a snapshot inside its own directory: that is another run's, and its files are
        // not the job's to delete. (Flink leaves orphans.)
        if !self.restored_from_own_directory() {
            let again_at = Some(now.after(self.cluster.storage_timeout_ticks));
            self.sweep = Some(Sweep { kept, again_at });
            self.request_sweep(now, out);
        }
    }

    /// Whether the job started from a snapshot under its own checkpoint directory.
    pub(super) fn restored_from_own_directory(&self) -> bool {
        let Some(restore) = &self.plan.restore else {
            return false;
        };
        match self.plan.checkpoint.storage(&self.plan.job) {
            CheckpointStorageKind::FileSystem(root) => restore
                .paths()
                .is_none_or(|(directory, _)| directory.starts_with(&root)),
            CheckpointStorageKind::JobManager(_) => false,
        }
    }

    pub(super) fn request_sweep(&mut self, now: Tick, out: &mut Outbox) {
        let storage = self.plan.checkpoint.storage(&self.plan.job);
        if let CheckpointStorageKind::FileSystem(root) = storage {
            self.request(now, Request::Sweep, StorageOp::List { prefix: root }, out);
        }
    }

    /// Deletes what a sweep found, except the files of the checkpoints the job keeps.
    pub(super) fn on_swept(
        &mut self,
        now: Tick,
        result: Result<StorageReply, StorageError>,
        out: &mut Outbox,
    ) {
        let (Ok(StorageReply::Listed(paths)), Some(sweep)) = (result, &self.sweep) else {
            return; // Left to the second sweep; after it, a leak the storage checker reports.
        };
        // Savepoints belong to the user, wherever their directory is.
        let savepoints = self.plan.checkpoint.savepoint_directory.as_deref();
        let savepoints = savepoints.and_then(|dir| StoragePath::new(dir).ok());
        let doomed: Vec<StoragePath> = paths
            .into_iter()
            .filter(|path| !sweep.kept.contains(path.as_str()))
            .filter(|path| savepoints.as_ref().is_none_or(|dir| !path.starts_with(dir)))
            .collect();
        for prefix in doomed {
            self.request(now, Request::Discard, StorageOp::DeleteAll { prefix }, out);
        }
    }

    /// A client cancels the job: tasks stop, pending checkpoints are aborted, and retained
    /// checkpoints are deleted unless the retention policy keeps them on cancellation.
    pub(super) fn cancel(&mut self, now: Tick, out: &mut Outbox) {
        if self.status.is_terminal() {
            return;
        }
        probes::hit(Probe::JobCancelled);
        if self.coordinator.is_none() {
            // Still reading the HA record: cancel once it is read.
            self.cancel_requested = true;
            return;
        }
        let mut effects = Vec::new();
        self.coordinator_mut()
            .stop(CheckpointFailureReason::CoordinatorSuspend, &mut effects);
        self.apply(now, effects, out);
        if let Some(attempt) = self.deployed.take() {
            self.broadcast(Message::CancelTasks { attempt }, out);
        }
        self.tasks.clear();
        self.restart_at = None;
        self.terminate(now, JobStatus::Canceled, Leaving::Canceled, out);
    }

    /// The job ended for good: record it durably, and delete what the retention policy does
    /// not keep once no completion is still settling (it would add a checkpoint after the
    /// deletion otherwise).
    pub(super) fn terminate(
        &mut self,
        now: Tick,
        status: JobStatus,
        reason: Leaving,
        out: &mut Outbox,
    ) {
        assert!(status.is_terminal(), "{status:?} does not end a job");
        self.set_status(status, out);
        self.pending_discard = Some(reason);
        self.write_ha(now, HaWrite::Ended, out);
        self.try_discard(now, out);
    }

    pub(super) fn end_recorded(&mut self, out: &mut Outbox) {
        assert!(
            self.status.is_terminal(),
            "only an ended job records its end"
        );
        self.end_record = EndRecord::Durable;
        out.trace(EngineEvent::EndRecorded);
    }
}
