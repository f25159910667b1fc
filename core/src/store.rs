//! Completed checkpoints: the store that failover restores from, with retention (Flink's
//! `CheckpointSubsumeHelper`).

use crate::codec::{self, DecodeError, Kind};
use crate::ids::{CheckpointId, TaskId, Tick};
use crate::job::{ExecutionPlan, TaskSpec};
use crate::retention::ExternalizedRetention;
use crate::storage::{StateHandle, StateLocation, StoragePath, HA_DIRECTORY};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use thiserror::Error;

/// A checkpoint whose metadata is durable and which is in the completed store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompletedCheckpoint {
    pub id: CheckpointId,
    /// Every task's state.
    pub task_states: BTreeMap<TaskId, StateHandle>,
    /// Where its `_metadata` is; `None` when it stays in the JobManager's memory.
    pub metadata: Option<StoragePath>,
    /// When it completed.
    pub completed_at: Tick,
    /// Whether the job owns its files and deletes them when it leaves the store: false for a
    /// snapshot the job was restored from without claim (Flink's `RestoreMode.NO_CLAIM`).
    #[serde(default = "owned_by_default")]
    pub owned: bool,
}

impl CompletedCheckpoint {
    /// Every file it consists of: `_metadata`, task state files and shared runs, in order.
    pub fn files(&self) -> Vec<String> {
        let mut files: Vec<String> = self.metadata.iter().map(|m| m.to_string()).collect();
        for handle in self.task_states.values() {
            for part in std::iter::once(handle).chain(&handle.shared) {
                if let StateLocation::File(path) = &part.location {
                    files.push(path.to_string());
                }
            }
        }
        files
    }
}

fn owned_by_default() -> bool {
    true
}

impl CompletedCheckpoint {
    /// The path to restore it from (`flink run -s`), or why it has none.
    pub fn external_pointer(&self) -> Result<&StoragePath, RestoreError> {
        self.metadata.as_ref().ok_or(RestoreError::NotAddressable {
            checkpoint: self.id,
        })
    }
}

/// What a checkpoint's `_metadata` says of itself (a subset of Flink's `CheckpointProperties`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointProperties {
    /// A savepoint (self-contained, never deleted by the job) rather than a checkpoint.
    pub savepoint: bool,
    /// The retention policy it was taken under.
    pub retention: ExternalizedRetention,
}

/// One operator's state in `_metadata`: its name (the uid that matches it on restore), its
/// parallelism, and one state handle per subtask.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorState {
    /// The operator's name.
    pub operator: String,
    /// Its parallelism when the snapshot was taken.
    pub parallelism: u16,
    /// The state of subtask `i` at index `i`.
    pub subtasks: Vec<StateHandle>,
}

/// The content of a `_metadata` file (format version in the envelope, magic 0x4960672d as
/// Flink's, `Checkpoints#storeCheckpointMetadata`): the job, the checkpoint id, its
/// properties, and every operator's state handles with their file references and checksums.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataFile {
    pub job: String,
    pub checkpoint: CheckpointId,
    pub properties: CheckpointProperties,
    /// Every operator's state, in the job's topological order.
    pub operators: Vec<OperatorState>,
}

impl MetadataFile {
    /// The file content for `metadata` of a checkpoint of `plan`.
    pub fn new(
        plan: &ExecutionPlan,
        metadata: &CheckpointMetadata,
        properties: CheckpointProperties,
    ) -> MetadataFile {
        let mut operators: Vec<OperatorState> = Vec::new();
        for task in &plan.tasks {
            let handle = metadata
                .task_states
                .get(&task.id)
                .cloned()
                .unwrap_or_else(|| {
                    panic!(
                        "a complete checkpoint has every task's state; {} is missing",
                        task.id
                    )
                });
            let name = operator_name(task);
            match operators.last_mut() {
                Some(last) if last.operator == name => last.subtasks.push(handle),
                _ => operators.push(OperatorState {
                    operator: name.to_string(),
                    parallelism: task.parallelism,
                    subtasks: vec![handle],
                }),
            }
        }
        MetadataFile {
            job: metadata.job.clone(),
            checkpoint: metadata.checkpoint,
            properties,
            operators,
        }
    }

    /// Refers to files in `directory` by their names (a savepoint's references).
    pub fn relativize(&mut self, directory: &StoragePath) {
        for handle in self
            .operators
            .iter_mut()
            .flat_map(|op| op.subtasks.iter_mut())
        {
            if let StateLocation::File(file) = &handle.location {
                if file.parent().as_ref() == Some(directory) {
                    let name = file.as_str().rsplit('/').next().expect("a file name");
                    handle.location = StateLocation::Relative(name.to_string());
                }
            }
        }
    }

    /// Refers to relative files by their paths in `directory`, where the `_metadata` is now.
    pub fn resolved(mut self, directory: &StoragePath) -> MetadataFile {
        for handle in self
            .operators
            .iter_mut()
            .flat_map(|op| op.subtasks.iter_mut())
        {
            if let StateLocation::Relative(name) = &handle.location {
                handle.location = StateLocation::File(directory.join(name));
            }
        }
        self
    }

    /// Every file the state consists of: each subtask's own and its shared runs.
    pub fn files(&self) -> impl Iterator<Item = &StateHandle> {
        self.handles()
            .flat_map(|handle| std::iter::once(handle).chain(&handle.shared))
    }

    /// Every state handle, in order.
    pub fn handles(&self) -> impl Iterator<Item = &StateHandle> {
        self.operators.iter().flat_map(|op| op.subtasks.iter())
    }

    /// The state of each task of `plan`, matched by operator name and subtask index. State of
    /// an operator `plan` does not have is an error unless `allow_non_restored_state`; an
    /// operator of `plan` without state starts empty.
    pub fn task_states_for(
        &self,
        path: &StoragePath,
        plan: &ExecutionPlan,
        allow_non_restored_state: bool,
    ) -> Result<BTreeMap<TaskId, StateHandle>, RestoreError> {
        let mut states = BTreeMap::new();
        for operator in &self.operators {
            let tasks: Vec<&TaskSpec> = plan
                .tasks
                .iter()
                .filter(|t| operator_name(t) == operator.operator)
                .collect();
            if tasks.is_empty() {
                if allow_non_restored_state {
                    continue;
                }
                return Err(RestoreError::NonRestoredState {
                    path: path.clone(),
                    operator: operator.operator.clone(),
                });
            }
            if tasks.len() != operator.subtasks.len() {
                return Err(RestoreError::ParallelismChanged {
                    path: path.clone(),
                    operator: operator.operator.clone(),
                    snapshot: operator.subtasks.len(),
                    job: tasks.len(),
                });
            }
            for (task, handle) in tasks.into_iter().zip(&operator.subtasks) {
                states.insert(task.id, handle.clone());
            }
        }
        Ok(states)
    }
}

/// The operator part of a task's name (`sum[1]` → `sum`).
fn operator_name(task: &TaskSpec) -> &str {
    task.name
        .rsplit_once('[')
        .map_or(task.name.as_str(), |(name, _)| name)
}

/// Why a job cannot start from a snapshot path; each names the path and what to do.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum RestoreError {
    /// Nothing at the path.
    #[error("cannot restore from '{path}': there is no checkpoint or savepoint there")]
    NotFound {
        /// The path given.
        path: String,
    },
    /// Files at the path, but no `_metadata`.
    #[error(
        "cannot restore from '{path}': it is not a checkpoint or savepoint (no _metadata in it)"
    )]
    NotASnapshot {
        /// The path given.
        path: String,
    },
    /// The `_metadata` file is unreadable.
    #[error("cannot restore: {0}")]
    Metadata(#[from] MetadataError),
    /// A file the metadata references is not there.
    #[error("cannot restore from {path}: it references {file}, which does not exist (checkpoints are not self-contained; was it moved?)")]
    MissingFile {
        /// The `_metadata` file.
        path: StoragePath,
        /// The missing file.
        file: String,
    },
    /// State of an operator the job does not have.
    #[error("cannot restore from {path}: it has state for operator '{operator}', which the job does not have (allow non-restored state to drop it)")]
    NonRestoredState {
        /// The `_metadata` file.
        path: StoragePath,
        operator: String,
    },
    /// An operator's parallelism differs (the engine does not rescale keyed state).
    #[error("cannot restore from {path}: operator '{operator}' had {snapshot} subtasks, the job has {job} (rescaling is not supported)")]
    ParallelismChanged {
        /// The `_metadata` file.
        path: StoragePath,
        operator: String,
        /// Subtasks in the snapshot.
        snapshot: usize,
        /// Subtasks in the job.
        job: usize,
    },
    /// The checkpoint lives in the JobManager's memory.
    #[error("{checkpoint} lives in the JobManager's memory (JobManagerCheckpointStorage): it has no path to restore from ('<checkpoint-not-externally-addressable>'); configure a checkpoint directory")]
    NotAddressable { checkpoint: CheckpointId },
}

/// A checkpoint's `_metadata` content.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointMetadata {
    pub job: String,
    pub checkpoint: CheckpointId,
    /// Every task's state.
    pub task_states: BTreeMap<TaskId, StateHandle>,
}

/// Why a `_metadata` file was refused: which file, and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum MetadataError {
    /// The bytes are not a checkpoint's metadata (truncated, corrupted, unknown version, a
    /// path that escapes the storage root).
    #[error("cannot read checkpoint metadata {path}: {error}")]
    Undecodable {
        /// The file.
        path: StoragePath,
        /// What the envelope said.
        error: DecodeError,
    },
    /// The metadata decodes but does not describe a checkpoint at this place.
    #[error("checkpoint metadata {path} is inconsistent: {problem}")]
    Inconsistent {
        /// The file.
        path: StoragePath,
        /// What does not fit.
        problem: String,
    },
}

/// Reads the `_metadata` file at `path`: the envelope (magic, version, length, checksum), then
/// every state handle, which must lie in checkpoint storage outside the HA records (paths are
/// validated on decoding) and carry a plausible size.
pub fn read_metadata(path: &StoragePath, bytes: &[u8]) -> Result<MetadataFile, MetadataError> {
    let metadata: MetadataFile =
        codec::decode(Kind::CheckpointMetadata, bytes).map_err(|error| {
            MetadataError::Undecodable {
                path: path.clone(),
                error,
            }
        })?;
    let inconsistent = |problem: String| MetadataError::Inconsistent {
        path: path.clone(),
        problem,
    };
    if metadata.checkpoint < CheckpointId::INITIAL {
        let id = metadata.checkpoint;
        return Err(inconsistent(format!(
            "checkpoint id {id} is below the first id"
        )));
    }
    for operator in &metadata.operators {
        if operator.subtasks.len() != usize::from(operator.parallelism) {
            return Err(inconsistent(format!(
                "operator '{}' has parallelism {} but {} subtask states",
                operator.operator,
                operator.parallelism,
                operator.subtasks.len()
            )));
        }
    }
    for handle in metadata.handles() {
        if handle.size > u64::from(codec::PAYLOAD_BYTES_MAX) + 64 {
            let (location, size) = (&handle.location, handle.size);
            return Err(inconsistent(format!(
                "state {location} claims {size} bytes"
            )));
        }
        match &handle.location {
            StateLocation::File(file) if file.as_str().split('/').next() == Some(HA_DIRECTORY) => {
                return Err(inconsistent(format!(
                    "state {file} lies among the HA records"
                )));
            }
            StateLocation::Relative(name)
                if name.contains('/') || StoragePath::new(name.clone()).is_err() =>
            {
                return Err(inconsistent(format!(
                    "relative state '{name}' leaves its directory"
                )));
            }
            _ => {}
        }
    }
    Ok(metadata)
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

    /// The checkpoint a failover restores from (`CompletedCheckpointStore#getLatestCheckpoint`).
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
    use crate::storage::StateLocation;
    use proptest::prelude::*;

    fn metadata_bytes(tasks: u32) -> Vec<u8> {
        let subtasks = (0..tasks)
            .map(|t| StateHandle {
                location: StateLocation::File(StoragePath::task_snapshot(
                    "job",
                    CheckpointId(4),
                    TaskId(t),
                )),
                size: 100 + u64::from(t),
                checksum: 0xfeed_0000 + t,
                shared: Vec::new(),
            })
            .collect();
        let metadata = MetadataFile {
            job: "job".to_string(),
            checkpoint: CheckpointId(4),
            properties: CheckpointProperties {
                savepoint: false,
                retention: ExternalizedRetention::NoExternalized,
            },
            operators: vec![OperatorState {
                operator: "sum".to_string(),
                parallelism: tasks as u16,
                subtasks,
            }],
        };
        codec::encode(Kind::CheckpointMetadata, &metadata)
    }

    fn metadata_path() -> StoragePath {
        StoragePath::metadata("job", CheckpointId(4))
    }

    /// A change to a valid file: flip bits, cut it short, or add bytes.
    #[derive(Clone, Debug)]
    enum Damage {
        Flip(Vec<(usize, u8)>),
        Truncate(usize),
        Append(Vec<u8>),
    }

    fn damage() -> impl Strategy<Value = Damage> {
        prop_oneof![
            prop::collection::vec((any::<usize>(), 1..=255u8), 1..8).prop_map(Damage::Flip),
            any::<usize>().prop_map(Damage::Truncate),
            prop::collection::vec(any::<u8>(), 1..16).prop_map(Damage::Append),
        ]
    }

    proptest! {
        // A fixed seed keeps `cargo test` reproducible.
        #![proptest_config(ProptestConfig {
            rng_seed: proptest::test_runner::RngSeed::Fixed(0x5eed),
            failure_persistence: None,
            // Enough cases that a huge length prefix (1 payload in 256 starts with one) shows up.
            cases: 4096,
            ..ProptestConfig::default()
        })]

        /// Arbitrary bytes never make the reader panic or allocate without bound.
        #[test]
        fn the_metadata_reader_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = read_metadata(&metadata_path(), &bytes);
        }

        /// Arbitrary bytes behind a valid header still never panic the payload decoder.
        #[test]
        fn the_payload_decoder_never_panics(payload in prop::collection::vec(any::<u8>(), 0..512)) {
            let mut bytes = metadata_bytes(0)[..6].to_vec();
            bytes.extend_from_slice(&(payload.len() as u32).to_be_bytes());
            bytes.extend_from_slice(&crc32fast::hash(&payload).to_be_bytes());
            bytes.extend_from_slice(&payload);
            let _ = read_metadata(&metadata_path(), &bytes);
        }

        /// A valid file with any damage is refused, with an error naming the file.
        #[test]
        fn a_damaged_metadata_file_is_never_accepted(tasks in 0..6u32, damage in damage()) {
            let original = metadata_bytes(tasks);
            let mut bytes = original.clone();
            match damage {
                Damage::Flip(flips) => {
                    for (at, mask) in flips {
                        let index = at % bytes.len();
                        bytes[index] ^= mask;
                    }
                }
                Damage::Truncate(at) => bytes.truncate(at % bytes.len()),
                Damage::Append(extra) => bytes.extend(extra),
            }
            prop_assume!(bytes != original, "flips that cancel out are no damage");
            let error = read_metadata(&metadata_path(), &bytes).expect_err("damage is detected");
            prop_assert!(error.to_string().contains("job/chk-4/_metadata"), "{}", error);
        }
    }

    #[test]
    fn a_metadata_file_that_references_a_path_outside_storage_is_refused() {
        let good = String::from_utf8_lossy(&metadata_bytes(1)).contains("job/chk-4/task-0");
        assert!(good, "the path is stored as text");
        // Rewrite the payload with an escaping path of the same length, with a valid checksum.
        let bytes = metadata_bytes(1);
        let payload = &bytes[14..];
        let text = b"job/chk-4/task-0";
        let at = payload
            .windows(text.len())
            .position(|w| w == text)
            .expect("found");
        let mut evil = payload.to_vec();
        evil[at..at + text.len()].copy_from_slice(b"../../etc/passwd");
        let mut forged = bytes[..10].to_vec();
        forged.extend_from_slice(&crc32fast::hash(&evil).to_be_bytes());
        forged.extend_from_slice(&evil);
        let error = read_metadata(&metadata_path(), &forged).expect_err("refused");
        assert!(
            error
                .to_string()
                .contains("invalid storage path '../../etc/passwd'"),
            "{error}"
        );
    }

    fn completed(id: u64) -> CompletedCheckpoint {
        CompletedCheckpoint {
            id: CheckpointId(id),
            task_states: BTreeMap::new(),
            metadata: Some(StoragePath::metadata("job", CheckpointId(id))),
            completed_at: Tick(id),
            owned: true,
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
