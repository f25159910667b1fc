//! A new job started from a path (`flink run -s`): its `_metadata` read and validated, every
//! file it names checked, the snapshot adopted as the only completed checkpoint.

use super::{HaRecord, JobManager, PathRestore, Request};
use crate::bugs::SeededBug;
use crate::ids::{Attempt, Tick};
use crate::messages::Outbox;
use crate::probes::{self, Probe};
use crate::retention::ClaimMode;
use crate::storage::{StateLocation, StorageError, StorageOp, StoragePath, StorageReply};
use crate::store::{read_metadata, CompletedCheckpoint, RestoreError};
use crate::trace::{EngineEvent, JobStatus};
use std::collections::BTreeSet;

impl JobManager {
    /// The path to restore from, as given: the directory and its `_metadata`.
    pub(super) fn restore_paths(&self) -> Result<(StoragePath, StoragePath), RestoreError> {
        let restore = self.plan.restore.as_ref().expect("restoring");
        restore.paths().ok_or_else(|| RestoreError::NotFound {
            path: restore.path.clone(),
        })
    }

    /// A job without an HA record that is told to start from a snapshot path (`flink run -s`)
    /// reads its `_metadata` (`CheckpointCoordinator#restoreSavepoint`).
    pub(super) fn read_restore_metadata(&mut self, now: Tick, out: &mut Outbox) {
        match self.restore_paths() {
            Ok((_, metadata)) => {
                let op = StorageOp::Read {
                    path: metadata.clone(),
                };
                self.request(now, Request::RestoreMetadata(metadata), op, out);
            }
            Err(error) => self.fail_restore(error, out),
        }
    }

    pub(super) fn fail_restore(&mut self, error: RestoreError, out: &mut Outbox) {
        self.fail_before_running(error.to_string(), out);
    }

    /// The job cannot start (no trustworthy HA record, no usable snapshot): it fails for good.
    /// Nothing ran, so there is nothing to discard and no HA record to mark.
    pub(super) fn fail_before_running(&mut self, cause: String, out: &mut Outbox) {
        out.trace(EngineEvent::Failover { cause });
        self.set_status(JobStatus::Failed, out);
    }

    pub(super) fn on_restore_metadata(
        &mut self,
        now: Tick,
        path: StoragePath,
        result: Result<StorageReply, StorageError>,
        out: &mut Outbox,
    ) {
        let bytes = match result {
            Ok(StorageReply::Data(bytes)) => bytes,
            Ok(reply) => unreachable!("a read answers data, not {reply:?}"),
            Err(StorageError::NotFound { .. }) => {
                // Nothing there, or something that is not a snapshot? Look.
                let (prefix, _) = self.restore_paths().expect("resolved before");
                let op = StorageOp::List { prefix };
                return self.request(now, Request::RestoreProbe, op, out);
            }
            Err(_transient) => return self.read_restore_metadata(now, out),
        };
        let settings = self.plan.restore.clone().expect("restoring");
        let directory = path.parent().expect("a _metadata file has a directory");
        let restored = read_metadata(&path, &bytes)
            .map_err(RestoreError::from)
            .map(|file| file.resolved(&directory))
            .and_then(|file| {
                let states =
                    file.task_states_for(&path, &self.plan, settings.allow_non_restored_state)?;
                Ok((file, states))
            });
        let (file, task_states) = match restored {
            Ok(restored) => restored,
            Err(error) => return self.fail_restore(error, out),
        };
        // Checkpoints are not self-contained: check every file the metadata references exists,
        // so a moved checkpoint fails here, naming the file, not in every task.
        let directories: BTreeSet<StoragePath> = file
            .files()
            .filter_map(|handle| match &handle.location {
                StateLocation::File(file) => file.parent(),
                StateLocation::InMemory(_) | StateLocation::Relative(_) => None,
            })
            .collect();
        self.path_restore = Some(PathRestore {
            metadata_path: path,
            file,
            task_states,
            directories_left: directories.len(),
            found: BTreeSet::new(),
        });
        for prefix in directories {
            self.request(now, Request::RestoreVerify, StorageOp::List { prefix }, out);
        }
        self.finish_path_restore(now, out);
    }

    pub(super) fn on_restore_probe(
        &mut self,
        now: Tick,
        result: Result<StorageReply, StorageError>,
        out: &mut Outbox,
    ) {
        let given = self.plan.restore.as_ref().expect("restoring").path.clone();
        match result {
            Ok(StorageReply::Listed(paths)) if paths.is_empty() => {
                self.fail_restore(RestoreError::NotFound { path: given }, out)
            }
            Ok(StorageReply::Listed(_)) => {
                self.fail_restore(RestoreError::NotASnapshot { path: given }, out)
            }
            Ok(reply) => unreachable!("a list answers paths, not {reply:?}"),
            Err(_transient) => self.read_restore_metadata(now, out),
        }
    }

    pub(super) fn on_restore_verify(
        &mut self,
        now: Tick,
        result: Result<StorageReply, StorageError>,
        out: &mut Outbox,
    ) {
        match result {
            Ok(StorageReply::Listed(paths)) => {
                // An answer of a round that a failed list started over is not waited for.
                let Some(restore) = self.path_restore.as_mut() else {
                    return;
                };
                restore.found.extend(paths);
                restore.directories_left -= 1;
                self.finish_path_restore(now, out);
            }
            Ok(reply) => unreachable!("a list answers paths, not {reply:?}"),
            // Start the restore over: simpler than remembering which list failed.
            Err(_transient) => {
                self.path_restore = None;
                self.read_restore_metadata(now, out);
            }
        }
    }

    /// Once every referenced directory is listed: fail naming a missing file, or adopt the
    /// snapshot as the only completed checkpoint and continue with the id after it.
    pub(super) fn finish_path_restore(&mut self, now: Tick, out: &mut Outbox) {
        let Some(restore) = &self.path_restore else {
            return;
        };
        if restore.directories_left > 0 {
            return;
        }
        let restore = self.path_restore.take().expect("checked");
        let missing = restore
            .file
            .files()
            .find_map(|handle| match &handle.location {
                StateLocation::File(file) if !restore.found.contains(file) => {
                    Some(file.to_string())
                }
                _ => None,
            });
        if let Some(file) = missing {
            let path = restore.metadata_path;
            return self.fail_restore(RestoreError::MissingFile { path, file }, out);
        }
        let claim = self.plan.restore.as_ref().expect("restoring").claim;
        let checkpoint = restore.file.checkpoint;
        probes::hit(Probe::RestoredFromPath);
        if claim == ClaimMode::Claim {
            probes::hit(Probe::RestoredFromPathClaimed);
        }
        out.trace(EngineEvent::RestoredFromPath {
            path: restore.metadata_path.to_string(),
            checkpoint,
            claimed: claim == ClaimMode::Claim,
            savepoint: restore.file.properties.savepoint,
        });
        let record = HaRecord {
            job: self.plan.job.clone(),
            next_checkpoint_id: checkpoint.next(),
            attempt: Attempt(self.cluster.first_attempt),
            completed: vec![CompletedCheckpoint {
                id: checkpoint,
                task_states: restore.task_states,
                metadata: Some(restore.metadata_path),
                completed_at: now,
                // Savepoints are never the job's to delete; checkpoints only when claimed.
                owned: (claim == ClaimMode::Claim
                    || self.plan.has_bug(SeededBug::NoClaimDeletesRestored))
                    && !restore.file.properties.savepoint,
            }],
            ended: None,
        };
        self.adopt(now, record, out);
    }
}
