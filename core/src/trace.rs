//! Engine events for the trace: what happened, from the engine's point of view. The driver adds
//! the virtual time and node.

use crate::ids::{Attempt, ChannelIndex, CheckpointId, TaskId};
use crate::operator::OperatorState;
use crate::record::InFlight;
use crate::recovery_line::{ChannelCounts, ChannelId, ChannelLog};
use crate::sink::TransactionId;
pub use crate::status::{CheckpointFailureReason, JobStatus};
use serde::{Deserialize, Serialize};

/// What asked for a checkpoint: the rules differ (Flink's `CheckpointRequestDecider`,
/// `CheckpointProperties`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TriggerKind {
    /// The periodic scheduler: min pause and max concurrent apply.
    Periodic,
    /// A request that is not periodic (the final checkpoint): max concurrent applies.
    Requested,
    /// A savepoint: forced, neither applies.
    Savepoint,
    /// A recovery line found among local snapshots (checkpointing without barriers): complete
    /// already, neither applies.
    RecoveryLine,
}

/// A task's answer to a checkpoint's barrier.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CheckpointReply {
    /// An acknowledgement with the task's state.
    Acknowledge,
    /// A decline with a reason.
    Decline,
}

/// Why the coordinator ignored a reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum IgnoredBecause {
    /// The job has no such task.
    UnknownTask,
    /// The coordinator never took that id.
    NeverTriggered,
}

/// One meaningful event inside the engine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EngineEvent {
    /// The job changed status.
    JobStatus {
        /// The new status.
        status: JobStatus,
        attempt: Attempt,
    },
    /// Every task processed all its input: the first checkpoint from `final_from` on to complete
    /// is the final one, after which nothing more is triggered.
    InputConsumed {
        /// The first id that can be the final checkpoint.
        final_from: CheckpointId,
    },
    /// The coordinator took the next id for a checkpoint or savepoint and persists the id
    /// counter; the trigger follows once that is durable.
    TriggerStarted {
        /// The id taken.
        checkpoint: CheckpointId,
        /// What asked for it.
        kind: TriggerKind,
    },
    /// The coordinator triggered a checkpoint at the sources.
    CheckpointTriggered { checkpoint: CheckpointId },
    /// The coordinator triggered a savepoint at the sources.
    SavepointTriggered {
        /// The checkpoint id it uses.
        checkpoint: CheckpointId,
    },
    /// A savepoint is complete: its `_metadata` is durable in its own directory.
    SavepointCompleted {
        /// The checkpoint id it used.
        checkpoint: CheckpointId,
        /// Its directory.
        path: String,
    },
    /// A savepoint request was refused.
    SavepointRefused {
        /// Why.
        reason: String,
    },
    /// A trigger request was refused before it got a checkpoint id (min pause, full queue).
    TriggerRequestRefused {
        /// Why.
        reason: CheckpointFailureReason,
    },
    /// A task received a barrier on one channel.
    BarrierReceived {
        task: TaskId,
        attempt: Attempt,
        channel: ChannelIndex,
        /// The task at the channel's other end.
        from: TaskId,
        checkpoint: CheckpointId,
    },
    /// A task received a cancellation marker on one channel.
    CancelMarkerReceived {
        task: TaskId,
        attempt: Attempt,
        channel: ChannelIndex,
        /// The task at the channel's other end.
        from: TaskId,
        checkpoint: CheckpointId,
    },
    /// A task skipped a checkpoint the JobManager had aborted before its barrier came; it sends
    /// a cancellation marker on instead of the barrier
    /// (`SubtaskCheckpointCoordinatorImpl#checkpointState`).
    CheckpointSkipped {
        task: TaskId,
        attempt: Attempt,
        checkpoint: CheckpointId,
    },
    /// A task took its snapshot and forwarded the barrier (one atomic step).
    SnapshotTaken {
        task: TaskId,
        attempt: Attempt,
        checkpoint: CheckpointId,
        /// The state it snapshotted (whole, even when an incremental backend uploads only
        /// changes): the consistent-cut checker compares it with the reference model.
        state: OperatorState,
    },
    /// A task's snapshot could not be kept (a JobManagerCheckpointStorage limit); the task
    /// declines the checkpoint.
    SnapshotRefused {
        task: TaskId,
        checkpoint: CheckpointId,
        /// Why, in Flink's words where Flink has them.
        reason: String,
    },
    /// A task's snapshot is durable and acknowledged.
    Acknowledged {
        task: TaskId,
        checkpoint: CheckpointId,
    },
    /// A task declined a checkpoint.
    Declined {
        task: TaskId,
        attempt: Attempt,
        checkpoint: CheckpointId,
        /// Why.
        reason: CheckpointFailureReason,
    },
    /// The JobManager holds every task's acknowledgement: the timeout no longer applies
    /// (finalization has storage timeouts of its own).
    AllAcknowledged { checkpoint: CheckpointId },
    /// Every task acknowledged and the metadata is written: the JobManager now persists the
    /// completed store (the HA record). From here a restore may find the checkpoint even if
    /// the JobManager never learns that the write succeeded.
    CompletionPersisting {
        checkpoint: CheckpointId,
        /// Every file it consists of (`_metadata`, task states, shared runs): the storage
        /// checker proves each was durable by now.
        files: Vec<String>,
    },
    /// A checkpoint completed: metadata durable and in the completed store.
    CheckpointCompleted { checkpoint: CheckpointId },
    /// A pending checkpoint was aborted.
    CheckpointAborted {
        checkpoint: CheckpointId,
        /// Why.
        reason: CheckpointFailureReason,
    },
    /// A task learned that a checkpoint completed (the notification; older ones are ignored)
    /// and committed the side effects up to it.
    CheckpointNotified {
        task: TaskId,
        attempt: Attempt,
        checkpoint: CheckpointId,
    },
    /// A task's snapshot taken with channel state is complete: every channel delivered the
    /// barrier, and these in-flight records go with the operator state (Flink's
    /// `ChannelStatePersister`).
    InFlightRecorded {
        task: TaskId,
        attempt: Attempt,
        checkpoint: CheckpointId,
        /// How many records, all channels together.
        records: u64,
        /// The records, per input channel: the conservation check counts them.
        in_flight: Vec<InFlight>,
    },
    /// A restored task put its snapshot's in-flight records in front of its input.
    InFlightRestored {
        task: TaskId,
        /// The checkpoint restored.
        checkpoint: CheckpointId,
        /// How many records.
        records: u64,
    },
    /// A task that has not finished learned that a checkpoint was aborted.
    AbortNotified {
        task: TaskId,
        attempt: Attempt,
        /// The aborted checkpoint.
        checkpoint: CheckpointId,
        /// The latest completed checkpoint the notice carries: the task must have committed up
        /// to it once it handled the notice (FLINK-21080).
        latest_completed: Option<CheckpointId>,
    },
    /// A completed checkpoint left the store (retention).
    CheckpointSubsumed { checkpoint: CheckpointId },
    /// A JobManager took over the job from its HA record: these completed checkpoints are
    /// retained (a completion persisted just before a crash counts, traced or not).
    HaRecordAdopted {
        /// The retained checkpoints, oldest first.
        completed: Vec<CheckpointId>,
    },
    /// The job failed over: a task or TaskManager failed, or too many checkpoints failed.
    Failover {
        /// What failed.
        cause: String,
    },
    /// A new attempt was deployed, restoring this checkpoint (or none).
    Deployed {
        /// The new attempt.
        attempt: Attempt,
        /// The checkpoint restored.
        restored: Option<CheckpointId>,
    },
    /// A job without an HA record started from a snapshot path (`flink run -s`).
    RestoredFromPath {
        /// The `_metadata` file.
        path: String,
        /// The checkpoint restored; new checkpoints continue after it.
        checkpoint: CheckpointId,
        /// Whether the job took ownership of the snapshot's files.
        claimed: bool,
        /// Whether it is a savepoint (never the job's to delete, claimed or not).
        savepoint: bool,
    },
    /// A task restored its state.
    Restored {
        task: TaskId,
        checkpoint: CheckpointId,
        /// The state it restored: the recovery checker compares it with the state snapshotted.
        state: OperatorState,
    },
    /// The coordinator ignored a reply that no checkpoint of its can take: from a task the job
    /// does not have, or for an id it never took.
    ReplyIgnored {
        /// The task named in the reply.
        task: TaskId,
        /// The checkpoint named in the reply.
        checkpoint: CheckpointId,
        /// What the task sent.
        reply: CheckpointReply,
        /// Why it was ignored.
        why: IgnoredBecause,
    },
    /// The JobManager knows the job's end is durable in the HA record (it wrote it, or read it
    /// on start): from now on it may delete what the retention policy discards.
    EndRecorded,
    /// A storage request got no answer in time and counts as failed.
    StorageTimedOut {
        /// The operation, e.g. `write job/chk-3/task-1`.
        operation: String,
    },
    /// The JobManager skipped an HA record it could not read (torn by a crash, corrupted).
    HaRecordRejected {
        /// The record.
        path: String,
        /// Why.
        error: String,
    },
    /// A sink committed a transaction.
    Committed {
        /// The sink task.
        task: TaskId,
        transaction: TransactionId,
    },
    /// A changelog task started to materialize its keyed state.
    MaterializationStarted {
        task: TaskId,
        attempt: Attempt,
        number: u64,
        /// Its file.
        path: String,
    },
    /// A materialization is durable: later snapshots reference it instead of the changelog
    /// segments up to `up_to`.
    Materialized {
        task: TaskId,
        attempt: Attempt,
        number: u64,
        up_to: u64,
    },
    /// A materialization failed, the `failures`-th in a row.
    MaterializationFailed {
        task: TaskId,
        attempt: Attempt,
        number: u64,
        failures: u32,
    },
    /// A task took a local snapshot on its own (checkpointing without barriers).
    /// (The bulky parts are boxed: every trace entry is as large as the largest event.)
    LocalSnapshotTaken {
        task: TaskId,
        attempt: Attempt,
        snapshot: CheckpointId,
        /// Forced by a record with a higher index (communication-induced checkpointing).
        forced: bool,
        state: Box<OperatorState>,
        counts: Box<ChannelCounts>,
        /// The sender's log in the snapshot: the records a restore may have to replay.
        logged: Box<[ChannelLog]>,
    },
    /// The JobManager found a new recovery line and completes it as `checkpoint`.
    RecoveryLineFound {
        checkpoint: CheckpointId,
        /// Each task's local snapshot in it, by the attempt that took it.
        members: Vec<(TaskId, Attempt, CheckpointId)>,
        /// Local snapshots newer than the line's members (the domino effect).
        rolled_back: u32,
    },
    /// A restored task sent the records of its log again, ahead of anything new.
    LogReplayed {
        task: TaskId,
        attempt: Attempt,
        records: u64,
        /// Per output channel, the numbers of the first and last record sent again.
        channels: Vec<(ChannelId, u64, u64)>,
    },
}
