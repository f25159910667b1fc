//! Completed checkpoints: the store that failover restores from, with retention (reference §I.53).

use crate::ids::{CheckpointId, TaskId, Tick};
use crate::storage::{StateHandle, StoragePath};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};

/// A checkpoint whose metadata is durable and which is in the completed store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompletedCheckpoint {
    /// Its id.
    pub id: CheckpointId,
    /// Every task's state.
    pub task_states: BTreeMap<TaskId, StateHandle>,
    /// Where its `_metadata` is.
    pub metadata: StoragePath,
    /// When it completed.
    pub completed_at: Tick,
}

/// A checkpoint's `_metadata` content.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointMetadata {
    /// The job.
    pub job: String,
    /// The checkpoint.
    pub checkpoint: CheckpointId,
    /// Every task's state.
    pub task_states: BTreeMap<TaskId, StateHandle>,
}

/// The newest `retained` completed checkpoints, oldest first.
///
/// Invariant: ids strictly increase; never more than `retained` entries; never empty after the
/// first add (the newest is never subsumed).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompletedCheckpointStore {
    retained: u32,
    checkpoints: VecDeque<CompletedCheckpoint>,
}

impl CompletedCheckpointStore {
    /// An empty store keeping `retained` checkpoints.
    pub fn new(retained: u32) -> CompletedCheckpointStore {
        assert!(
            retained >= 1,
            "the store keeps at least the latest checkpoint"
        );
        CompletedCheckpointStore {
            retained,
            checkpoints: VecDeque::new(),
        }
    }

    /// A store holding `checkpoints` (from the HA record), checked for the invariants.
    pub fn from_checkpoints(
        retained: u32,
        checkpoints: Vec<CompletedCheckpoint>,
    ) -> CompletedCheckpointStore {
        let mut store = CompletedCheckpointStore::new(retained);
        for checkpoint in checkpoints {
            let _subsumed = store.add(checkpoint);
        }
        store
    }

    /// Adds the newest checkpoint; returns the ones it subsumes (to discard).
    #[must_use]
    pub fn add(&mut self, checkpoint: CompletedCheckpoint) -> Vec<CompletedCheckpoint> {
        if let Some(latest) = self.latest() {
            assert!(
                checkpoint.id > latest.id,
                "completed ids must increase: {} <= {}",
                checkpoint.id,
                latest.id
            );
        }
        self.checkpoints.push_back(checkpoint);
        let excess = self
            .checkpoints
            .len()
            .saturating_sub(self.retained as usize);
        let subsumed: Vec<CompletedCheckpoint> = self.checkpoints.drain(..excess).collect();
        assert!(
            !self.checkpoints.is_empty(),
            "the newest checkpoint is never subsumed"
        );
        subsumed
    }

    /// The checkpoint a failover restores from (reference §N.76).
    pub fn latest(&self) -> Option<&CompletedCheckpoint> {
        self.checkpoints.back()
    }

    /// Every retained checkpoint, oldest first.
    pub fn checkpoints(&self) -> impl Iterator<Item = &CompletedCheckpoint> {
        self.checkpoints.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn completed(id: u64) -> CompletedCheckpoint {
        CompletedCheckpoint {
            id: CheckpointId(id),
            task_states: BTreeMap::new(),
            metadata: StoragePath::metadata("job", CheckpointId(id)),
            completed_at: Tick(id),
        }
    }

    #[test]
    fn retention_subsumes_the_oldest_and_restore_uses_the_latest() {
        let mut store = CompletedCheckpointStore::new(2);
        assert!(store.add(completed(1)).is_empty());
        assert!(store.add(completed(3)).is_empty());
        let subsumed: Vec<u64> = store.add(completed(4)).iter().map(|c| c.id.0).collect();
        assert_eq!(subsumed, vec![1]);
        assert_eq!(store.latest().map(|c| c.id), Some(CheckpointId(4)));
        assert_eq!(
            store.checkpoints().map(|c| c.id.0).collect::<Vec<_>>(),
            vec![3, 4]
        );
    }
}
