//! Which checkpoint files may be deleted, and when: the shared-state registry (Flink's
//! `SharedStateRegistryImpl`) and the discard table of retention policies (Flink's
//! `CheckpointProperties`).
//!
//! Both are pure bookkeeping: they say what to delete; the JobManager sends the deletes.

use crate::ids::CheckpointId;
use crate::storage::StoragePath;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Whether a restored snapshot becomes the job's to delete (Flink's `RestoreMode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClaimMode {
    /// The job takes ownership: the snapshot's files are deleted once no retained checkpoint
    /// needs them.
    Claim,
    /// The snapshot stays the user's: nothing of it is ever deleted by the job (Flink's
    /// default).
    #[default]
    NoClaim,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct SharedEntry {
    created_by: CheckpointId,
    last_used_by: CheckpointId,
}

/// The shared files (under `shared/`) of the job's checkpoints and the newest checkpoint that
/// uses each, Flink ≥ 1.15 style: no reference counts; a file is deleted once every retained
/// checkpoint is newer than the last one that used it (`SharedStateRegistryImpl`, FLINK-24611).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedStateRegistry {
    entries: BTreeMap<StoragePath, SharedEntry>,
    /// Files created up to this checkpoint belong to a snapshot restored without claim.
    highest_not_claimed: Option<CheckpointId>,
}

impl SharedStateRegistry {
    /// `checkpoint` completed and uses `files` (new uploads and files of earlier checkpoints).
    /// Call before the store subsumes anything, so that a file a new checkpoint still uses is
    /// never deleted.
    pub fn register(
        &mut self,
        checkpoint: CheckpointId,
        files: impl IntoIterator<Item = StoragePath>,
    ) {
        for file in files {
            let entry = self.entries.entry(file).or_insert(SharedEntry {
                created_by: checkpoint,
                last_used_by: checkpoint,
            });
            entry.last_used_by = entry.last_used_by.max(checkpoint);
        }
    }

    /// The job was restored from `checkpoint`, which uses `files`. Without claim, none of them
    /// (nor any file the snapshot created) is ever deleted by this job.
    pub fn register_restored(
        &mut self,
        checkpoint: CheckpointId,
        files: impl IntoIterator<Item = StoragePath>,
        claim: ClaimMode,
    ) {
        self.register(checkpoint, files);
        if claim == ClaimMode::NoClaim {
            self.highest_not_claimed = self.highest_not_claimed.max(Some(checkpoint));
        }
    }

    /// Forgets and returns the files no retained checkpoint uses: those whose last user is older
    /// than `lowest_retained`, except files of a snapshot restored without claim.
    pub fn unregister_unused(&mut self, lowest_retained: CheckpointId) -> Vec<StoragePath> {
        let protected = self.highest_not_claimed;
        let unused: Vec<StoragePath> = self
            .entries
            .iter()
            .filter(|(_, entry)| {
                entry.last_used_by < lowest_retained
                    && protected.is_none_or(|highest| entry.created_by > highest)
            })
            .map(|(path, _)| path.clone())
            .collect();
        for path in &unused {
            self.entries.remove(path);
        }
        unused
    }

    /// Every file the registry knows, in path order.
    pub fn files(&self) -> impl Iterator<Item = &StoragePath> {
        self.entries.keys()
    }
}

/// What the user asked to happen to checkpoints when the job ends (Flink's
/// `ExternalizedCheckpointRetention`, mapped to a policy by `StreamingJobGraphGenerator`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExternalizedRetention {
    /// Checkpoints are deleted whenever the job ends (Flink's default).
    #[default]
    NoExternalized,
    /// Checkpoints are kept when the job is cancelled or fails.
    RetainOnCancellation,
    /// Checkpoints are kept when the job fails, deleted when it is cancelled.
    DeleteOnCancellation,
}

/// Why a completed snapshot leaves the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Leaving {
    /// A newer checkpoint pushed it out of the retained set.
    Subsumed,
    /// The job finished.
    Finished,
    /// The job was cancelled.
    Canceled,
    /// The job failed for good (the restart strategy gave up); recoverable failovers keep it.
    Failed,
    /// The JobManager was suspended (lost leadership) without the job ending.
    Suspended,
}

impl Leaving {
    /// Why a job that ended with `status` leaves its checkpoints.
    pub fn ended(status: crate::status::JobStatus) -> Leaving {
        use crate::status::JobStatus;
        assert!(status.is_terminal(), "{status:?} does not end a job");
        match status {
            JobStatus::Finished => Leaving::Finished,
            JobStatus::Canceled => Leaving::Canceled,
            _ => Leaving::Failed,
        }
    }
}

/// A checkpoint made under a retention policy, or a savepoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SnapshotKind {
    /// A checkpoint.
    Checkpoint(ExternalizedRetention),
    /// A savepoint, or a snapshot restored without claim: never deleted by the job.
    Savepoint,
}

impl SnapshotKind {
    /// Flink's discard table (`CheckpointProperties`): whether the snapshot's files are deleted
    /// when it leaves the store for `reason`.
    pub fn discarded_when(self, reason: Leaving) -> bool {
        use ExternalizedRetention::*;
        use Leaving::*;
        match self {
            SnapshotKind::Savepoint => false,
            SnapshotKind::Checkpoint(NoExternalized) => true,
            SnapshotKind::Checkpoint(DeleteOnCancellation) => reason != Failed,
            SnapshotKind::Checkpoint(RetainOnCancellation) => {
                matches!(reason, Subsumed | Finished)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(names: &[&str]) -> Vec<StoragePath> {
        names
            .iter()
            .map(|n| StoragePath::new(format!("dir/job/shared/{n}")).expect("valid"))
            .collect()
    }

    /// The example of Flink's 2018 incremental-checkpointing blog post, one subtask, two retained:
    /// sst1–sst3 disappear exactly when checkpoint 4 completes, and no file that checkpoint 3
    /// or 4 uses is ever deleted.
    #[test]
    fn the_incremental_example_deletes_the_files_of_checkpoints_1_to_3_when_4_completes() {
        let mut registry = SharedStateRegistry::default();
        let retained = 2;
        let uses: [&[&str]; 4] = [
            &["sst1", "sst2"],
            &["sst1", "sst2", "sst3", "sst4"],
            &["sst123", "sst4", "sst5"],
            &["sst123", "sst456"],
        ];
        let mut deleted = Vec::new();
        for (index, used) in uses.iter().enumerate() {
            let checkpoint = CheckpointId(index as u64 + 1);
            registry.register(checkpoint, files(used));
            let lowest_retained = CheckpointId(checkpoint.0.saturating_sub(retained - 1).max(1));
            deleted.push(registry.unregister_unused(lowest_retained));
        }
        let none: Vec<StoragePath> = Vec::new();
        assert_eq!(deleted[0], none);
        assert_eq!(deleted[1], none);
        assert_eq!(
            deleted[2], none,
            "sst1 and sst2 are still used by checkpoint 2"
        );
        assert_eq!(deleted[3], files(&["sst1", "sst2", "sst3"]));
        let kept: Vec<&StoragePath> = registry.files().collect();
        let expected = files(&["sst123", "sst4", "sst456", "sst5"]);
        assert_eq!(kept, expected.iter().collect::<Vec<_>>());
    }

    #[test]
    fn a_snapshot_restored_without_claim_is_never_deleted_and_with_claim_it_is() {
        for (claim, expected) in [
            (ClaimMode::NoClaim, Vec::new()),
            (ClaimMode::Claim, files(&["old"])),
        ] {
            let mut registry = SharedStateRegistry::default();
            registry.register_restored(CheckpointId(7), files(&["old"]), claim);
            registry.register(CheckpointId(8), files(&["new"]));
            registry.register(CheckpointId(9), files(&["new"]));
            assert_eq!(
                registry.unregister_unused(CheckpointId(9)),
                expected,
                "{claim:?}"
            );
        }
    }

    #[test]
    fn a_shared_file_goes_only_when_its_last_user_is_older_than_every_retained_checkpoint() {
        // FLINK-24611: an aborted checkpoint registers nothing, so its uploads are not deleted with
        // it; checkpoint 3 reuses sst9 (uploaded by the aborted checkpoint 2) and registers it.
        let mut registry = SharedStateRegistry::default();
        registry.register(CheckpointId(1), files(&["a"]));
        registry.register(CheckpointId(3), files(&["a", "sst9"]));
        assert_eq!(registry.unregister_unused(CheckpointId(3)), Vec::new());
        registry.register(CheckpointId(4), files(&["b"]));
        assert_eq!(
            registry.unregister_unused(CheckpointId(4)),
            files(&["a", "sst9"])
        );
    }

    /// Flink's discard table (`CheckpointProperties`), row by row: discard on subsumed /
    /// finished / canceled / failed / suspended.
    #[test]
    fn the_discard_table() {
        use ExternalizedRetention::*;
        let reasons = [
            Leaving::Subsumed,
            Leaving::Finished,
            Leaving::Canceled,
            Leaving::Failed,
            Leaving::Suspended,
        ];
        let table = [
            (SnapshotKind::Checkpoint(NoExternalized), "TTTTT"),
            (SnapshotKind::Checkpoint(DeleteOnCancellation), "TTTFT"),
            (SnapshotKind::Checkpoint(RetainOnCancellation), "TTFFF"),
            (SnapshotKind::Savepoint, "FFFFF"),
        ];
        for (kind, row) in table {
            let actual: String = reasons
                .iter()
                .map(|&r| if kind.discarded_when(r) { 'T' } else { 'F' })
                .collect();
            assert_eq!(actual, row, "{kind:?}");
        }
    }
}
