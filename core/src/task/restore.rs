//! A task's snapshot as stored, and a task restored from one: its operator state, its
//! transactions, and the in-flight records put back in front of its input.

use super::{uncoordinated, KeyedBackend, Task, TaskEffect};
use crate::bugs::SeededBug;
use crate::codec::{self, DecodeError, Kind};
use crate::config::CheckpointConfig;
use crate::ids::{Attempt, ChannelIndex, CheckpointId, TaskId, Tick};
use crate::job::TaskSpec;
use crate::lsm::{self, SortedRun};
use crate::operator::{Operator, OperatorState, RecoveredTransactions, StateMismatch};
use crate::probes::{self, Probe};
use crate::record::{InFlight, StreamEvent};
use crate::sink::SinkRequest;
use crate::storage::StateHandle;
use crate::trace::EngineEvent;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// One task's snapshot as it is stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskSnapshot {
    pub task: TaskId,
    pub checkpoint: CheckpointId,
    /// The operator's state (its keyed part is in `shared` with the incremental backend).
    pub state: OperatorState,
    /// The incremental backend's runs the keyed state consists of, oldest first.
    #[serde(default)]
    pub shared: Vec<StateHandle>,
    /// Channel state: the in-flight input records, per channel: those the snapshot's barrier
    /// overtook (unaligned) and those that arrived after the snapshot and before the channel's
    /// barrier (unaligned and Chandy-Lamport). Empty for aligned and at-least-once snapshots.
    #[serde(default)]
    pub in_flight: Vec<InFlight>,
}

/// Why a task could not restore.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum RestoreError {
    /// The bytes read do not match the handle's checksum or size.
    #[error("snapshot {path} of task {task}: read {size} bytes with checksum {checksum:#010x}, the handle says {expected_size} bytes with {expected_checksum:#010x}")]
    HandleMismatch {
        task: TaskId,
        /// The file.
        path: String,
        /// Bytes read.
        size: u64,
        /// Their checksum.
        checksum: u32,
        /// The handle's size.
        expected_size: u64,
        /// The handle's checksum.
        expected_checksum: u32,
    },
    /// The snapshot does not decode.
    #[error("snapshot of task {task} does not decode: {source}")]
    Decode {
        task: TaskId,
        /// Why.
        source: DecodeError,
    },
    /// The snapshot belongs to another task or checkpoint.
    #[error("snapshot of task {found_task} for {found_checkpoint} given to task {task} restoring {checkpoint}")]
    WrongSnapshot {
        /// The task restoring.
        task: TaskId,
        /// The checkpoint it restores.
        checkpoint: CheckpointId,
        /// The task in the snapshot.
        found_task: TaskId,
        /// The checkpoint in the snapshot.
        found_checkpoint: CheckpointId,
    },
    /// The state is of another operator kind.
    #[error(transparent)]
    State(#[from] StateMismatch),
    /// The snapshot's list of shared runs is not the one its handle promised.
    #[error("snapshot of task {task} lists {listed} shared runs, its handle {promised}")]
    SharedMismatch {
        task: TaskId,
        /// Runs in the snapshot file.
        listed: usize,
        /// Runs in the handle.
        promised: usize,
    },
    /// The snapshot's channel state names an input channel the task does not have.
    #[error(
        "snapshot of task {task} holds channel state of {channel}, which the task does not have"
    )]
    UnknownChannel { task: TaskId, channel: ChannelIndex },
}

/// A snapshot read back for a restore: the task's own file and its shared runs.
#[derive(Clone, Copy, Debug)]
pub struct SnapshotRead<'a> {
    /// The checkpoint it belongs to.
    pub checkpoint: CheckpointId,
    /// The handle the JobManager has for it.
    pub handle: &'a StateHandle,
    /// The task's own file.
    pub bytes: &'a [u8],
    /// The shared runs, in the handle's order.
    pub shared: &'a [Vec<u8>],
}

/// Checks bytes read back against the handle that promised them.
fn check_read(task: TaskId, handle: &StateHandle, bytes: &[u8]) -> Result<(), RestoreError> {
    let checksum = codec::checksum(bytes);
    if checksum != handle.checksum || bytes.len() as u64 != handle.size {
        return Err(RestoreError::HandleMismatch {
            task,
            path: handle.location.to_string(),
            size: bytes.len() as u64,
            checksum,
            expected_size: handle.size,
            expected_checksum: handle.checksum,
        });
    }
    Ok(())
}

/// The task's own snapshot file, checked against its handle and against what the restore
/// expects: this task, this checkpoint and the shared runs the handle promises.
fn decode_snapshot(task: TaskId, read: SnapshotRead<'_>) -> Result<TaskSnapshot, RestoreError> {
    let SnapshotRead {
        checkpoint,
        handle: state,
        bytes,
        shared,
    } = read;
    check_read(task, state, bytes)?;
    let snapshot: TaskSnapshot = codec::decode(Kind::TaskSnapshot, bytes)
        .map_err(|source| RestoreError::Decode { task, source })?;
    if snapshot.task != task || snapshot.checkpoint != checkpoint {
        return Err(RestoreError::WrongSnapshot {
            task,
            checkpoint,
            found_task: snapshot.task,
            found_checkpoint: snapshot.checkpoint,
        });
    }
    if snapshot.shared != state.shared || shared.len() != state.shared.len() {
        return Err(RestoreError::SharedMismatch {
            task,
            listed: snapshot.shared.len(),
            promised: state.shared.len(),
        });
    }
    Ok(snapshot)
}

/// The shared runs of an incremental snapshot, each checked against its handle, oldest first.
fn read_shared_runs(task: TaskId, read: SnapshotRead<'_>) -> Result<Vec<SortedRun>, RestoreError> {
    let mut runs = Vec::new();
    for (handle, bytes) in read.handle.shared.iter().zip(read.shared) {
        check_read(task, handle, bytes)?;
        let run = lsm::read_run(bytes).map_err(|source| RestoreError::Decode { task, source })?;
        runs.push(run);
    }
    Ok(runs)
}

impl Task {
    /// A task restored from `read`, the snapshot of a checkpoint, at `now`. A sink re-commits
    /// its pre-committed transactions and aborts the open one (Flink's
    /// `TwoPhaseCommitSinkFunction#initializeState`). With
    /// Keyed state goes on in `backend`. Restored in-flight
    /// records are processed before any new input (Flink's docs, "Unaligned Recovery").
    pub fn restore(
        spec: &TaskSpec,
        attempt: Attempt,
        config: &CheckpointConfig,
        now: Tick,
        read: SnapshotRead<'_>,
        backend: &KeyedBackend,
        out: &mut Vec<TaskEffect>,
    ) -> Result<Task, RestoreError> {
        if config.logging.is_some() {
            return Task::restore_logged(spec, attempt, config, now, read, out);
        }
        let snapshot = decode_snapshot(spec.id, read)?;
        let runs = read_shared_runs(spec.id, read)?;
        let SnapshotRead {
            checkpoint,
            handle: state,
            ..
        } = read;
        let entries = lsm::replay(&runs);
        let operator_state = if runs.is_empty() {
            snapshot.state
        } else {
            lsm::join(snapshot.state, &entries)
        };
        let restored_state = operator_state.clone();
        let (operator, recovered) = Operator::restore(spec, attempt, operator_state)?;
        let mut task = Task::new(spec, attempt, config);
        task.now = now;
        task.use_backend(backend, now);
        if let Some(lsm) = task.lsm.as_mut() {
            lsm.restored(state.shared.clone(), entries);
        } else if let Some(changelog) = task.changelog.as_mut() {
            changelog.restored(state.shared.clone(), entries);
        }
        task.operator = operator;
        task.last_checkpoint = checkpoint;
        // Notifications for checkpoints up to the restored one are stale (FLINK-24096).
        task.latest_notified = checkpoint;
        task.recover_transactions(recovered, out);
        out.push(TaskEffect::Trace(EngineEvent::Restored {
            task: spec.id,
            checkpoint,
            state: restored_state,
        }));
        task.restore_in_flight(snapshot.in_flight, out)?;
        Ok(task)
    }

    /// A task that checkpoints without barriers, restored from its local snapshot in the
    /// recovery line `read.checkpoint`.
    fn restore_logged(
        spec: &TaskSpec,
        attempt: Attempt,
        config: &CheckpointConfig,
        now: Tick,
        read: SnapshotRead<'_>,
        out: &mut Vec<TaskEffect>,
    ) -> Result<Task, RestoreError> {
        let task = spec.id;
        check_read(task, read.handle, read.bytes)?;
        let stored = uncoordinated::decode_local(read.bytes)
            .map_err(|source| RestoreError::Decode { task, source })?;
        if stored.snapshot.task != task {
            return Err(RestoreError::WrongSnapshot {
                task,
                checkpoint: read.checkpoint,
                found_task: stored.snapshot.task,
                found_checkpoint: stored.snapshot.checkpoint,
            });
        }
        let restored_state = stored.snapshot.state.clone();
        let (operator, recovered) =
            Operator::restore(spec, attempt, stored.snapshot.state.clone())?;
        let mut restored = Task::new(spec, attempt, config);
        restored.now = now;
        restored.operator = operator;
        restored.recover_transactions(recovered, out);
        out.push(TaskEffect::Trace(EngineEvent::Restored {
            task,
            checkpoint: read.checkpoint,
            state: restored_state,
        }));
        restored.restore_local(stored, read.handle, out);
        restored.schedule_local_snapshots(now);
        Ok(restored)
    }

    /// A restored sink re-commits the transactions it had pre-committed (their checkpoint
    /// completed, or may have) and aborts the one that was open when the attempt failed.
    pub(super) fn recover_transactions(
        &mut self,
        recovered: RecoveredTransactions,
        out: &mut Vec<TaskEffect>,
    ) {
        for transaction in recovered.commit {
            if self.spec.has_bug(SeededBug::AbortPreCommittedOnRestore) {
                // Seeded bug: the pre-committed output is thrown away.
                out.push(TaskEffect::Sink(SinkRequest::Abort { transaction }));
                continue;
            }
            probes::hit(Probe::PreCommittedRecommitted);
            self.commits_in_flight.insert(transaction);
            out.push(TaskEffect::Sink(SinkRequest::Commit { transaction }));
            out.push(TaskEffect::Trace(EngineEvent::Committed {
                task: self.spec.id,
                transaction,
            }));
        }
        if let Some(transaction) = recovered.abort {
            out.push(TaskEffect::Sink(SinkRequest::Abort { transaction }));
        }
    }

    /// Puts restored channel state in front of the input queues and starts processing it.
    pub(super) fn restore_in_flight(
        &mut self,
        in_flight: Vec<InFlight>,
        out: &mut Vec<TaskEffect>,
    ) -> Result<(), RestoreError> {
        if in_flight.is_empty() {
            return Ok(());
        }
        probes::hit(Probe::InFlightRestored);
        let mut records = 0;
        for (channel, restored) in in_flight {
            let Some(input) = self.inputs.get_mut(channel.index()) else {
                return Err(RestoreError::UnknownChannel {
                    task: self.spec.id,
                    channel,
                });
            };
            records += restored.len() as u64;
            input.restored = restored.len();
            input.queue = restored.into_iter().map(StreamEvent::Record).collect();
        }
        out.push(TaskEffect::Trace(EngineEvent::InFlightRestored {
            task: self.spec.id,
            checkpoint: self.last_checkpoint,
            records,
        }));
        self.drain(out);
        Ok(())
    }
}
