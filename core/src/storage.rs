//! The checkpoint-storage seam: a durable key-value store of byte objects addressed by path.
//!
//! The engine never calls storage directly. Tasks and the JobManager send
//! [`StorageRequest`]s to the storage node and get [`StorageResponse`]s back as inputs, so the
//! simulation can delay, fail or lose any operation. The storage service that executes them
//! (one, for both drivers) is in `snapsim-sim`: files with a durable prefix, written, synced
//! and listed as a distributed file system would.

use crate::ids::{Attempt, CheckpointId, TaskId, Tick};
use serde::{Deserialize, Serialize};
use std::fmt;
use thiserror::Error;

const HA_RECORD_PREFIX: &str = "record-";
/// The top directory of the HA records; checkpoint directories may not lie in it.
pub const HA_DIRECTORY: &str = "ha";

/// A path in checkpoint storage, `/`-separated, relative to the storage root.
///
/// Invariant: not empty, no empty segment, no `.` or `..` segment.
/// Deserializing validates too, so a path read from a file (a `_metadata` that references
/// `../elsewhere`) is refused like one built in code.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct StoragePath(String);

impl TryFrom<String> for StoragePath {
    type Error = StorageError;

    fn try_from(path: String) -> Result<StoragePath, StorageError> {
        StoragePath::new(path)
    }
}

impl From<StoragePath> for String {
    fn from(path: StoragePath) -> String {
        path.0
    }
}

impl StoragePath {
    /// A validated path.
    pub fn new(path: impl Into<String>) -> Result<StoragePath, StorageError> {
        let path = path.into();
        let valid = !path.is_empty()
            && path
                .split('/')
                .all(|segment| !segment.is_empty() && segment != "." && segment != "..");
        if valid {
            Ok(StoragePath(path))
        } else {
            Err(StorageError::InvalidPath { path })
        }
    }

    /// `{root}/chk-{id}/`: the exclusive directory of one checkpoint
    /// (`AbstractFsCheckpointStorageAccess.CHECKPOINT_DIR_PREFIX`); `root`
    /// is the job's checkpoint directory, `{state.checkpoints.dir}/{job}`.
    pub fn checkpoint_dir(root: &str, id: CheckpointId) -> StoragePath {
        StoragePath::new(format!("{root}/chk-{}", id.0)).expect("roots are valid paths")
    }

    /// `{root}/chk-{id}/_metadata`.
    pub fn metadata(root: &str, id: CheckpointId) -> StoragePath {
        StoragePath::checkpoint_dir(root, id).join("_metadata")
    }

    /// `{root}/chk-{id}/task-{task}`: one task's exclusive snapshot.
    pub fn task_snapshot(root: &str, id: CheckpointId, task: TaskId) -> StoragePath {
        StoragePath::checkpoint_dir(root, id).join(&format!("task-{}", task.0))
    }

    /// `{root}/shared/`: files several checkpoints may use (incremental state).
    pub fn shared_dir(root: &str) -> StoragePath {
        StoragePath::new(format!("{root}/shared")).expect("roots are valid paths")
    }

    /// `{root}/shared/task-{task}-{attempt}-snapshot-{index}`: a local snapshot of checkpointing
    /// without barriers. It is shared state: every recovery line that contains it references
    /// it, and the shared-state registry deletes it once no retained checkpoint does.
    pub fn local_snapshot(
        root: &str,
        task: TaskId,
        attempt: Attempt,
        index: CheckpointId,
    ) -> StoragePath {
        StoragePath::shared_dir(root)
            .join(&format!("task-{}-{attempt}-snapshot-{}", task.0, index.0))
    }

    /// Whether the file is in a `shared/` directory (several checkpoints may reference it).
    pub fn is_shared(&self) -> bool {
        self.parent().is_some_and(|dir| dir.0.ends_with("/shared"))
    }

    /// `{root}/dstl/`: the changelog backend's log segments (Flink writes them to
    /// `{dstl.dfs.base-path}/{job}/dstl/`; here the base path is the checkpoint directory).
    pub fn changelog_dir(root: &str) -> StoragePath {
        StoragePath::new(format!("{root}/dstl")).expect("roots are valid paths")
    }

    /// `{root}/taskowned/`: files the JobManager must never delete.
    pub fn taskowned_dir(root: &str) -> StoragePath {
        StoragePath::new(format!("{root}/taskowned")).expect("roots are valid paths")
    }

    /// `ha/{job}/`: the JobManager's HA records, one file per version.
    pub fn ha_dir(job: &str) -> StoragePath {
        StoragePath::new(format!("{HA_DIRECTORY}/{job}"))
            .expect("job names are valid path segments")
    }

    /// `ha/{job}/record-{version}`: one version of the JobManager's HA record (completed
    /// checkpoints, id counter, attempt). Versions are zero-padded so that path order is
    /// version order.
    pub fn ha_record(job: &str, version: u64) -> StoragePath {
        StoragePath::ha_dir(job).join(&format!("{HA_RECORD_PREFIX}{version:020}"))
    }

    /// The version of an HA record path, if it is one.
    pub fn ha_record_version(&self) -> Option<u64> {
        let name = self.0.rsplit('/').next()?;
        name.strip_prefix(HA_RECORD_PREFIX)?.parse().ok()
    }

    /// This path with one more segment.
    pub fn join(&self, segment: &str) -> StoragePath {
        StoragePath::new(format!("{}/{segment}", self.0)).expect("joined segments are valid")
    }

    /// The path without its last segment, if it has more than one.
    pub fn parent(&self) -> Option<StoragePath> {
        self.0
            .rsplit_once('/')
            .map(|(parent, _)| StoragePath(parent.to_string()))
    }

    /// Whether `self` is `prefix` or lies below it.
    pub fn starts_with(&self, prefix: &StoragePath) -> bool {
        self.0 == prefix.0
            || (self.0.starts_with(&prefix.0) && self.0.as_bytes()[prefix.0.len()] == b'/')
    }

    /// The path as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StoragePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A reference to durable state: where it is, how big, and its checksum.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateHandle {
    /// Where the bytes are.
    pub location: StateLocation,
    /// How many bytes.
    pub size: u64,
    /// CRC-32 of the bytes, checked again after reading them back (a paired assertion).
    pub checksum: u32,
    /// Files in `shared/` the state also consists of (the incremental backend's runs), in
    /// order; the JobManager's shared-state registry decides when they may go.
    #[serde(default)]
    pub shared: Vec<StateHandle>,
}

/// Where a snapshot's bytes are.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum StateLocation {
    /// A file in checkpoint storage (FileSystemCheckpointStorage).
    File(StoragePath),
    /// The bytes themselves, held by the JobManager (JobManagerCheckpointStorage).
    InMemory(Vec<u8>),
    /// A file in the same directory as the `_metadata` that names it: how a savepoint refers
    /// to its files, so that it can be moved (Flink's `RelativeFileStateHandle`). Only inside
    /// `_metadata`.
    Relative(String),
}

impl fmt::Debug for StateLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for StateLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StateLocation::File(path) => write!(f, "{path}"),
            StateLocation::InMemory(bytes) => {
                write!(f, "<in JobManager memory, {} bytes>", bytes.len())
            }
            StateLocation::Relative(name) => write!(f, "./{name}"),
        }
    }
}

impl StateHandle {
    /// A handle for `bytes` at `location`.
    pub fn new(location: StateLocation, bytes: &[u8]) -> StateHandle {
        StateHandle {
            location,
            size: bytes.len() as u64,
            checksum: crate::codec::checksum(bytes),
            shared: Vec::new(),
        }
    }

    /// A handle that holds `bytes` themselves (JobManagerCheckpointStorage, inline state).
    pub fn in_memory(bytes: Vec<u8>) -> StateHandle {
        StateHandle {
            size: bytes.len() as u64,
            checksum: crate::codec::checksum(&bytes),
            location: StateLocation::InMemory(bytes),
            shared: Vec::new(),
        }
    }

    /// The bytes it holds in memory (JobManagerCheckpointStorage), 0 for a file.
    pub fn in_memory_bytes(&self) -> u64 {
        match &self.location {
            StateLocation::InMemory(bytes) => bytes.len() as u64,
            StateLocation::File(_) | StateLocation::Relative(_) => 0,
        }
    }
}

/// One storage operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StorageOp {
    /// Writes (or replaces) an object; durable once it succeeds.
    Write {
        /// Where.
        path: StoragePath,
        /// What.
        bytes: Vec<u8>,
    },
    /// Reads a whole object.
    Read {
        /// What.
        path: StoragePath,
    },
    /// Deletes every object at or below `prefix`; deleting nothing is not an error.
    DeleteAll {
        /// What.
        prefix: StoragePath,
    },
    /// Lists the objects at or below `prefix`, in path order.
    List {
        /// Where.
        prefix: StoragePath,
    },
}

impl fmt::Display for StorageOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StorageOp::Write { path, bytes } => write!(f, "write {path} ({} bytes)", bytes.len()),
            StorageOp::Read { path } => write!(f, "read {path}"),
            StorageOp::DeleteAll { prefix } => write!(f, "delete {prefix}"),
            StorageOp::List { prefix } => write!(f, "list {prefix}"),
        }
    }
}

/// What a successful operation returns.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StorageReply {
    /// The write is durable.
    Written,
    /// The object's bytes.
    Data(Vec<u8>),
    /// How many objects were deleted.
    Deleted(u64),
    /// The objects found, in path order.
    Listed(Vec<StoragePath>),
}

/// A storage operation that failed. These are environment faults the engine must survive.
#[derive(Clone, Debug, PartialEq, Eq, Error, Serialize, Deserialize)]
pub enum StorageError {
    /// No object at this path.
    #[error("no object at {path}")]
    NotFound { path: StoragePath },
    /// An I/O error (EIO).
    #[error("i/o error at {path}: {detail}")]
    Io {
        path: StoragePath,
        /// What failed.
        detail: String,
    },
    /// The storage is full (ENOSPC).
    #[error("no space left writing {path}")]
    NoSpace { path: StoragePath },
    /// No answer came in time (the storage node may have crashed with the request).
    #[error("no answer to '{operation}' within {ticks} ms")]
    TimedOut {
        operation: String,
        /// How long the caller waited.
        ticks: u64,
    },
    /// The request reached the storage after its sender stopped waiting: not executed.
    #[error("'{operation}' arrived after its deadline {deadline}: not executed")]
    Expired {
        operation: String,
        /// When its sender gave up on it.
        deadline: Tick,
    },
    /// A path that breaks the path rules.
    #[error("invalid storage path '{path}'")]
    InvalidPath {
        /// The rejected text.
        path: String,
    },
}

/// A request to the storage node. `request` is chosen by the sender to match the response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageRequest {
    /// The sender's id for this operation.
    pub request: u64,
    /// The operation.
    pub op: StorageOp,
    /// When the sender stops waiting for the answer. The storage does not execute a request
    /// that arrives later, as an object store refuses a request signed too long ago: a write
    /// delayed past it would land after its sender, and the job's clean-up, gave up on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<Tick>,
}

/// The storage node's answer to one request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageResponse {
    /// The id from the request.
    pub request: u64,
    /// The outcome.
    pub result: Result<StorageReply, StorageError>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_reject_escapes_and_empty_segments() {
        for bad in ["", "a//b", "../x", "a/./b", "a/"] {
            assert!(StoragePath::new(bad).is_err(), "{bad:?} must be rejected");
        }
        assert_eq!(
            StoragePath::task_snapshot("job", CheckpointId(3), TaskId(2)).as_str(),
            "job/chk-3/task-2"
        );
    }
}
