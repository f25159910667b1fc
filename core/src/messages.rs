//! Everything that travels between nodes, and the `Node` shape every role has.

use crate::ids::{Attempt, ChannelIndex, CheckpointId, TaskId, TaskManagerId, Tick};
use crate::record::{CheckpointBarrier, StreamEvent};
use crate::recovery_line::{LineNotice, LocalSnapshot};
use crate::sink::{SinkReply, SinkRequest};
pub use crate::status::CheckpointFailureReason;
use crate::storage::{StateHandle, StorageRequest, StorageResponse};
use crate::trace::EngineEvent;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// A node of the cluster. The simulation maps each address to a simulated host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Address {
    /// The JobManager.
    JobManager,
    /// A TaskManager.
    TaskManager(TaskManagerId),
    /// The checkpoint storage node (a distributed filesystem).
    Storage,
    /// The external transactional system the sinks write to.
    SinkSystem,
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::JobManager => f.write_str("jm"),
            Address::TaskManager(id) => write!(f, "{id}"),
            Address::Storage => f.write_str("storage"),
            Address::SinkSystem => f.write_str("sink-system"),
        }
    }
}

/// A message between nodes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Message {
    /// TaskManager → JobManager, at TaskManager start: it holds no tasks.
    RegisterTaskManager {
        /// The sender.
        task_manager: TaskManagerId,
    },
    /// TaskManager → JobManager, periodically.
    Heartbeat {
        /// The sender.
        task_manager: TaskManagerId,
        /// The attempt whose tasks it runs, if any: once the job ended, the JobManager cancels
        /// an attempt whose cancellation never arrived (Flink reconciles the executions a
        /// heartbeat reports, FLINK-17075).
        running: Option<Attempt>,
    },
    /// JobManager → TaskManager: run the tasks placed on it for this attempt, replacing any
    /// tasks of older attempts.
    DeployTasks {
        attempt: Attempt,
        /// The state to restore each task from (absent: start empty).
        restore: BTreeMap<TaskId, StateHandle>,
        /// The checkpoint restored, if any.
        restored_checkpoint: Option<CheckpointId>,
        /// The restored snapshot is not the job's (restored without claim): the first
        /// incremental snapshot of each task uploads everything, referencing none of its files.
        force_full_snapshot: bool,
    },
    /// JobManager → TaskManager: stop every task of this attempt or older.
    CancelTasks { attempt: Attempt },
    /// TaskManager → JobManager: a task restored its state and runs.
    TaskRunning { attempt: Attempt, task: TaskId },
    /// TaskManager → JobManager: a task consumed all its input (a source: read all its log).
    TaskDataFinished { attempt: Attempt, task: TaskId },
    /// TaskManager → JobManager: a task finished after its final checkpoint completed.
    TaskFinished { attempt: Attempt, task: TaskId },
    /// TaskManager → JobManager: a task failed.
    TaskFailed {
        attempt: Attempt,
        task: TaskId,
        /// What happened.
        reason: String,
    },
    /// JobManager → TaskManager: a source task injects this barrier.
    TriggerCheckpoint {
        attempt: Attempt,
        /// The source task.
        task: TaskId,
        barrier: CheckpointBarrier,
    },
    /// TaskManager → JobManager: the task's snapshot is durable.
    Acknowledge {
        attempt: Attempt,
        task: TaskId,
        checkpoint: CheckpointId,
        /// Where the snapshot is.
        state: StateHandle,
    },
    /// TaskManager → JobManager: the task cannot complete this checkpoint.
    Decline {
        attempt: Attempt,
        task: TaskId,
        checkpoint: CheckpointId,
        /// Why.
        reason: CheckpointFailureReason,
    },
    /// JobManager → TaskManager: a checkpoint completed.
    NotifyCheckpointComplete {
        attempt: Attempt,
        checkpoint: CheckpointId,
        /// It is the job's final checkpoint: tasks finish.
        final_checkpoint: bool,
    },
    /// JobManager → TaskManager: a checkpoint was aborted; carries the latest completed id so
    /// a lost completion notification is made up for (FLINK-21080).
    NotifyCheckpointAborted {
        attempt: Attempt,
        checkpoint: CheckpointId,
        /// The latest completed checkpoint, if any.
        latest_completed: Option<CheckpointId>,
    },
    /// TaskManager → TaskManager: events for one input channel of one task, in order.
    Data {
        attempt: Attempt,
        /// The receiving task.
        target: TaskId,
        /// The receiving channel.
        channel: ChannelIndex,
        events: Vec<StreamEvent>,
    },
    /// A client → JobManager: take a savepoint now (`flink savepoint`).
    TriggerSavepoint,
    /// A client → JobManager: cancel the job (`flink cancel`).
    CancelJob,
    /// Any node → storage.
    Storage(StorageRequest),
    /// Storage → the requesting node.
    StorageResult(StorageResponse),
    /// TaskManager → sink system.
    Sink(SinkRequest),
    /// Sink system → TaskManager.
    SinkResult(SinkReply),
    /// TaskManager → JobManager, checkpointing without barriers: a task's local snapshot is
    /// durable, or (`restored`) the task restored it. (Boxed, as is the notice below: every
    /// message is as large as the largest.)
    LocalSnapshotDone {
        attempt: Attempt,
        snapshot: Box<LocalSnapshot>,
        restored: bool,
    },
    /// JobManager → TaskManager, checkpointing without barriers: a recovery line completed.
    RecoveryLineComplete {
        attempt: Attempt,
        notice: Box<LineNotice>,
    },
}

impl Message {
    /// A short name for a message-sequence chart (`ack chk-3`, `commit txn task-4/attempt-2/#4`),
    /// or none for the bulk a chart leaves out: registrations, heartbeats, and data that
    /// carries only records and watermarks.
    pub fn label(&self) -> Option<String> {
        let label = match self {
            Message::RegisterTaskManager { .. } | Message::Heartbeat { .. } => return None,
            Message::DeployTasks {
                attempt,
                restored_checkpoint,
                ..
            } => match restored_checkpoint {
                Some(checkpoint) => format!("deploy {attempt} from {checkpoint}"),
                None => format!("deploy {attempt}"),
            },
            Message::CancelTasks { attempt } => format!("cancel {attempt}"),
            Message::TaskRunning { task, .. } => format!("{task} running"),
            Message::TaskDataFinished { task, .. } => format!("{task} read all"),
            Message::TaskFinished { task, .. } => format!("{task} finished"),
            Message::TaskFailed { task, .. } => format!("{task} failed"),
            Message::TriggerCheckpoint { barrier, .. } => format!("trigger {}", barrier.id),
            Message::Acknowledge {
                task, checkpoint, ..
            } => format!("ack {checkpoint} ({task})"),
            Message::Decline {
                task, checkpoint, ..
            } => format!("decline {checkpoint} ({task})"),
            Message::NotifyCheckpointComplete { checkpoint, .. } => {
                format!("{checkpoint} complete")
            }
            Message::NotifyCheckpointAborted { checkpoint, .. } => format!("abort {checkpoint}"),
            Message::Data { events, .. } => return data_label(events),
            Message::TriggerSavepoint => "savepoint".to_string(),
            Message::CancelJob => "cancel job".to_string(),
            Message::Storage(request) => request.op.to_string(),
            Message::StorageResult(response) => match &response.result {
                Ok(_) => "done".to_string(),
                Err(error) => format!("failed: {error}"),
            },
            Message::Sink(request) => request.to_string(),
            Message::SinkResult(reply) => reply.to_string(),
            Message::LocalSnapshotDone {
                snapshot, restored, ..
            } => match restored {
                true => format!("restored snapshot {} ({})", snapshot.index, snapshot.task),
                false => format!("snapshot {} ({})", snapshot.index, snapshot.task),
            },
            Message::RecoveryLineComplete { notice, .. } => {
                format!("line {} complete", notice.checkpoint)
            }
        };
        Some(label)
    }

    /// A checkpoint RPC: fire and forget, so losing it costs a checkpoint at most (a timeout,
    /// a later completion, or an abort notice makes up for it), never the job.
    pub fn is_checkpoint_rpc(&self) -> bool {
        matches!(
            self,
            Message::TriggerCheckpoint { .. }
                | Message::Acknowledge { .. }
                | Message::Decline { .. }
                | Message::NotifyCheckpointComplete { .. }
                | Message::NotifyCheckpointAborted { .. }
                | Message::LocalSnapshotDone { .. }
                | Message::RecoveryLineComplete { .. }
        )
    }
}

/// A data message's name on a chart: its barriers, cancellation markers and end of data (the
/// records between them are left out).
fn data_label(events: &[StreamEvent]) -> Option<String> {
    let names: Vec<String> = (events.iter())
        .filter_map(|event| match event {
            StreamEvent::Record(_) | StreamEvent::Watermark(_) | StreamEvent::Logged(_) => None,
            StreamEvent::Barrier(barrier) => Some(format!("barrier {}", barrier.id)),
            StreamEvent::CancelMarker(checkpoint) => Some(format!("cancel {checkpoint}")),
            StreamEvent::EndOfData => Some("end of data".to_string()),
        })
        .collect();
    (!names.is_empty()).then(|| names.join(", "))
}

/// What a node wants done after handling one input: messages to send, events to trace.
#[derive(Debug, Default)]
pub struct Outbox {
    /// Messages, in send order. Messages to one address arrive in this order (FIFO links).
    pub messages: Vec<(Address, Message)>,
    /// Trace events, in the order they happened.
    pub events: Vec<EngineEvent>,
}

impl Outbox {
    /// Queues a message.
    pub fn send(&mut self, target: Address, message: Message) {
        self.messages.push((target, message));
    }

    /// Records a trace event.
    pub fn trace(&mut self, event: EngineEvent) {
        self.events.push(event);
    }
}

/// A role of the cluster as a sans-I/O state machine. A driver delivers inputs, carries out the
/// outbox, and calls [`on_tick`](Node::on_tick) once virtual time reaches
/// [`next_deadline`](Node::next_deadline), at most once per tick (the node host of `snapsim-sim`
/// keeps that rule for both of its drivers).
pub trait Node {
    /// The node (re)starts with empty volatile state.
    fn on_start(&mut self, now: Tick, out: &mut Outbox);
    /// A message arrived.
    fn on_message(&mut self, now: Tick, from: Address, message: Message, out: &mut Outbox);
    /// Virtual time reached the deadline (or later).
    fn on_tick(&mut self, now: Tick, out: &mut Outbox);
    /// The next time the node wants `on_tick`, if any.
    fn next_deadline(&self) -> Option<Tick>;
}

/// A boxed node is a node, so a driver can hold roles of different types side by side.
impl<N: Node + ?Sized> Node for Box<N> {
    fn on_start(&mut self, now: Tick, out: &mut Outbox) {
        (**self).on_start(now, out)
    }
    fn on_message(&mut self, now: Tick, from: Address, message: Message, out: &mut Outbox) {
        (**self).on_message(now, from, message, out)
    }
    fn on_tick(&mut self, now: Tick, out: &mut Outbox) {
        (**self).on_tick(now, out)
    }
    fn next_deadline(&self) -> Option<Tick> {
        (**self).next_deadline()
    }
}
