//! One subtask at work: input channels, the barrier handler, the operator, and its snapshots.
//!
//! A [`Task`] takes inputs (data on a channel, a trigger, a storage completion, a notification)
//! and appends [`TaskEffect`]s. Taking the snapshot and forwarding the barrier happen in one call,
//! so no record can slip between them (Flink's `SubtaskCheckpointCoordinatorImpl#checkpointState`);
//! the acknowledgement waits until the snapshot is durable and, for a two-phase-commit sink, the
//! pre-commit is confirmed (Flink's `AsyncCheckpointRunnable`, FLINK-25305).

use crate::algorithm::Plugged;
use crate::barrier::{handler_for, BarrierActions, BarrierAligner, BarrierHandler, ChannelCapture};
use crate::bugs::SeededBug;
use crate::codec::{self, DecodeError, Kind};
use crate::config::{CheckpointConfig, CheckpointingMode};
use crate::ids::{Attempt, ChannelIndex, CheckpointId, EventTime, TaskId, Tick};
use crate::job::{key_owner, InputSide, OperatorKind, Partitioning, TaskSpec};
use crate::lsm::{self, IncrementalSnapshot, LsmBackend, SortedRun};
use crate::operator::{
    Emitted, Operator, OperatorState, RecoveredTransactions, SinkWait, StateMismatch,
};
use crate::probes::{self, Probe};
use crate::record::{CheckpointBarrier, InFlight, Record, StreamEvent};
use crate::sink::{SinkRequest, TransactionId, WriteId};
use crate::status::CheckpointFailureReason;
use crate::storage::{StateHandle, StoragePath};
use crate::trace::EngineEvent;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use thiserror::Error;

/// Events one input channel may hold; past this the run is broken (no flow control yet).
pub const INPUT_QUEUE_EVENTS_MAX: usize = 1 << 22;
/// Events taken from one channel before the task looks at the next (fairness).
const CHANNEL_BATCH_EVENTS: usize = 64;
/// Checkpoints remembered as aborted before their barrier arrived.
const ABORTED_EARLY_MAX: usize = 64;

/// Where a task is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum TaskStatus {
    /// Processing input.
    Running,
    /// All input consumed; waiting for a checkpoint taken from here on to complete.
    DataFinished,
    /// The final checkpoint completed; waiting for the sink system to confirm its commits.
    Committing,
    /// The final checkpoint completed and its side effects are committed; the task is done.
    Finished,
}

/// What a task asks its TaskManager to do.
#[derive(Clone, Debug, PartialEq)]
pub enum TaskEffect {
    /// Send an event on a data channel.
    Emit {
        /// The receiving task.
        target: TaskId,
        /// The receiving channel.
        channel: ChannelIndex,
        event: StreamEvent,
    },
    /// Write this snapshot to checkpoint storage, then call
    /// [`Task::on_snapshot_durable`] or [`Task::on_snapshot_failed`].
    Store {
        checkpoint: CheckpointId,
        /// It is a savepoint's: the file goes to the savepoint's directory.
        savepoint: bool,
        /// The encoded snapshot.
        bytes: Vec<u8>,
        /// New runs of the incremental backend to upload first (path, bytes).
        uploads: Vec<(StoragePath, Vec<u8>)>,
        /// Every run the snapshot consists of (the uploads included).
        shared: Vec<StateHandle>,
    },
    /// Tell the JobManager the snapshot is durable.
    Acknowledge {
        checkpoint: CheckpointId,
        /// Where the state is.
        state: StateHandle,
    },
    /// Tell the JobManager this task cannot complete the checkpoint.
    Decline {
        checkpoint: CheckpointId,
        /// Why.
        reason: CheckpointFailureReason,
    },
    /// Send a request to the sink system.
    Sink(SinkRequest),
    /// Tell the JobManager all input is consumed.
    DataFinished,
    /// Tell the JobManager the task finished.
    Finished,
    /// Record a trace event.
    Trace(EngineEvent),
}

/// The task's snapshot algorithm, with the seeded bugs that live in it.
fn barrier_handler(
    spec: &TaskSpec,
    config: &CheckpointConfig,
    channels: u16,
) -> Box<dyn BarrierHandler> {
    if let Some(Plugged(algorithm)) = &spec.plugged {
        return algorithm.handler(config, channels);
    }
    let aligned =
        config.mode == CheckpointingMode::ExactlyOnce && config.channel_state_algorithm().is_none();
    if spec.has_bug(SeededBug::AlignmentWithoutBlocking) && aligned {
        let tracker = CheckpointConfig {
            mode: CheckpointingMode::AtLeastOnce,
            ..config.clone()
        };
        return handler_for(&tracker, channels); // Nothing blocks.
    }
    if spec.has_bug(SeededBug::NewerBarrierNotAborting) && aligned {
        return Box::new(BarrierAligner::new(channels).with_newer_barrier_joining());
    }
    handler_for(config, channels)
}

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

#[derive(Debug)]
struct InputChannel {
    side: InputSide,
    queue: VecDeque<StreamEvent>,
    watermark: EventTime,
    data_finished: bool,
    /// Restored in-flight records at the front of `queue`, not yet processed.
    restored: usize,
}

/// A snapshot taken with channel state whose in-flight records are still being recorded: it
/// is stored once every channel delivered the checkpoint's barrier.
#[derive(Debug)]
struct Recording {
    snapshot: TaskSnapshot,
    savepoint: bool,
    uploads: Vec<(StoragePath, Vec<u8>)>,
    /// Channels whose arriving records still belong to the channel state.
    open: BTreeSet<ChannelIndex>,
    in_flight: BTreeMap<ChannelIndex, Vec<Record>>,
}

impl Recording {
    fn checkpoint(&self) -> CheckpointId {
        self.snapshot.checkpoint
    }

    /// Whether `event`, arriving on an open channel, ends that channel's recording.
    fn ends_with(&self, event: &StreamEvent) -> bool {
        match event {
            StreamEvent::Barrier(barrier) => barrier.id >= self.checkpoint(),
            StreamEvent::CancelMarker(checkpoint) => *checkpoint >= self.checkpoint(),
            _ => false,
        }
    }

    /// Records `event` arriving on `channel`, if the channel is open.
    fn observe(&mut self, channel: ChannelIndex, event: &StreamEvent) {
        if !self.open.contains(&channel) {
            return;
        }
        if self.ends_with(event) {
            self.open.remove(&channel);
        } else if let StreamEvent::Record(record) = event {
            self.in_flight.entry(channel).or_default().push(*record);
        }
    }
}

#[derive(Debug, Default)]
struct PendingSnapshot {
    /// A savepoint's: a completed checkpoint does not subsume it.
    savepoint: bool,
    stored: Option<StateHandle>,
    /// What a sink waits for before acknowledging: its pre-commit or its writes.
    awaiting_sink: Option<SinkWait>,
}

/// A running subtask.
///
/// Invariants: every pending snapshot id is at most `last_checkpoint`; a finished task holds no
/// queued input it has not seen; `latest_notified` never decreases.
#[derive(Debug)]
pub struct Task {
    spec: TaskSpec,
    attempt: Attempt,
    operator: Operator,
    handler: Option<Box<dyn BarrierHandler>>,
    inputs: Vec<InputChannel>,
    status: TaskStatus,
    /// The combined watermark forwarded downstream.
    watermark: EventTime,
    /// The newest checkpoint this task snapshotted (or skipped as aborted).
    last_checkpoint: CheckpointId,
    pending: BTreeMap<CheckpointId, PendingSnapshot>,
    aborted_early: BTreeSet<CheckpointId>,
    latest_notified: CheckpointId,
    rebalance_cursor: Vec<usize>,
    /// Commits sent to the sink system and not yet confirmed; the task finishes only when
    /// none is left, or a job could end with its last output still in flight.
    commits_in_flight: BTreeSet<TransactionId>,
    /// A plain sink's newest write the sink system confirmed.
    latest_written: Option<u64>,
    /// The incremental backend, when the job uses it.
    lsm: Option<LsmBackend>,
    /// The snapshot whose channel state is being recorded (unaligned, Chandy-Lamport).
    recording: Option<Recording>,
    /// The time of the input being handled.
    now: Tick,
    /// A throttled task's records left to process at `now`.
    budget: u32,
    /// The channel a throttled task's next round of processing starts at.
    drain_start: usize,
    /// Seeded bug [`AdjacentRecordsSwapped`](SeededBug::AdjacentRecordsSwapped), at a keyed
    /// operator (a second swap further down could undo it); read once, not per record.
    swaps_adjacent_records: bool,
}

impl Task {
    /// Keeps keyed state in the incremental backend, uploading runs into `shared_dir`.
    pub fn enable_incremental(&mut self, shared_dir: StoragePath) {
        self.lsm = Some(LsmBackend::new(shared_dir, self.spec.id));
    }

    /// Uploads the whole keyed state with the next snapshot, referencing nothing older.
    pub fn force_full_snapshot(&mut self) {
        if let Some(lsm) = self.lsm.as_mut() {
            lsm.force_full();
        }
    }

    /// A fresh task, taking snapshots as `config` says.
    pub fn new(spec: &TaskSpec, attempt: Attempt, config: &CheckpointConfig) -> Task {
        let handler = match spec.inputs.len() {
            0 => None,
            channels => {
                let channels = u16::try_from(channels).expect("channels fit u16");
                Some(barrier_handler(spec, config, channels))
            }
        };
        let inputs = spec
            .inputs
            .iter()
            .map(|input| InputChannel {
                side: input.side,
                queue: VecDeque::new(),
                watermark: EventTime(0),
                data_finished: false,
                restored: 0,
            })
            .collect();
        Task {
            operator: Operator::new(spec, attempt),
            spec: spec.clone(),
            attempt,
            handler,
            inputs,
            status: TaskStatus::Running,
            watermark: EventTime(0),
            last_checkpoint: CheckpointId(0),
            pending: BTreeMap::new(),
            aborted_early: BTreeSet::new(),
            latest_notified: CheckpointId(0),
            rebalance_cursor: vec![0; spec.outputs.len()],
            commits_in_flight: BTreeSet::new(),
            latest_written: None,
            lsm: None,
            recording: None,
            now: Tick(0),
            budget: spec.throughput.unwrap_or(u32::MAX),
            drain_start: 0,
            swaps_adjacent_records: spec.kind.is_keyed()
                && spec.has_bug(SeededBug::AdjacentRecordsSwapped),
        }
    }

    /// A task restored from `read`, the snapshot of a checkpoint, at `now`. A sink re-commits
    /// its pre-committed transactions and aborts the open one (Flink's
    /// `TwoPhaseCommitSinkFunction#initializeState`). With
    /// `shared_dir`, keyed state goes on in the incremental backend. Restored in-flight
    /// records are processed before any new input (Flink's docs, "Unaligned Recovery").
    pub fn restore(
        spec: &TaskSpec,
        attempt: Attempt,
        config: &CheckpointConfig,
        now: Tick,
        read: SnapshotRead<'_>,
        shared_dir: Option<StoragePath>,
        out: &mut Vec<TaskEffect>,
    ) -> Result<Task, RestoreError> {
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
        if let Some(shared_dir) = shared_dir {
            task.enable_incremental(shared_dir);
            let lsm = task.lsm.as_mut().expect("enabled");
            lsm.restored(state.shared.clone(), entries);
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

    /// A restored sink re-commits the transactions it had pre-committed (their checkpoint
    /// completed, or may have) and aborts the one that was open when the attempt failed.
    fn recover_transactions(
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
    fn restore_in_flight(
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

    /// The task's id.
    pub fn id(&self) -> TaskId {
        self.spec.id
    }

    /// Its status.
    pub fn status(&self) -> TaskStatus {
        self.status
    }

    /// Whether this is a source task.
    pub fn is_source(&self) -> bool {
        matches!(self.spec.kind, OperatorKind::Source { .. })
    }

    /// Events arrived on `channel` at `now`: queue them, then process whatever is not
    /// blocked. A barrier that overtakes (unaligned) is handled at once, ahead of the queue.
    pub fn on_data(
        &mut self,
        channel: ChannelIndex,
        events: Vec<StreamEvent>,
        now: Tick,
        out: &mut Vec<TaskEffect>,
    ) {
        self.advance_time(now);
        for event in events {
            if let Some(recording) = self.recording.as_mut() {
                recording.observe(channel, &event);
            }
            // A barrier or marker overtakes records, never an older barrier or marker queued on
            // its channel: each channel's checkpoints are handled in the order they were sent.
            let priority = self.handler_mut().overtakes(channel, &event)
                && !self.inputs[channel.index()].queue.iter().any(|queued| {
                    matches!(
                        queued,
                        StreamEvent::Barrier(_) | StreamEvent::CancelMarker(_)
                    )
                });
            if priority {
                if !self.inputs[channel.index()].queue.is_empty() {
                    probes::hit(Probe::BarrierOvertook);
                }
                match event {
                    StreamEvent::Barrier(barrier) => self.on_barrier(channel, barrier, true, out),
                    marker => self.process(channel, marker, out),
                }
                continue;
            }
            if event == StreamEvent::EndOfData {
                self.handler_mut().on_end_of_data(channel);
            }
            self.inputs[channel.index()].queue.push_back(event);
        }
        assert!(
            self.inputs[channel.index()].queue.len() <= INPUT_QUEUE_EVENTS_MAX,
            "input queue of {} {channel} over its bound",
            self.spec.id
        );
        self.drain(out);
    }

    /// Virtual time reached [`next_timer`](Task::next_timer): the aligned-checkpoint timeout
    /// may switch to unaligned, and a throttled task goes on with its queued input.
    pub fn on_timer(&mut self, now: Tick, out: &mut Vec<TaskEffect>) {
        self.advance_time(now);
        if let Some(handler) = self.handler.as_deref_mut() {
            let actions = handler.on_timer(now);
            self.apply(actions, out);
        }
        self.drain(out);
    }

    /// When the task wants [`on_timer`](Task::on_timer), if ever.
    pub fn next_timer(&self) -> Option<Tick> {
        let handler = self.handler.as_ref().and_then(|h| h.next_timer());
        let throttled = self.budget == 0 && self.inputs.iter().any(|i| !i.queue.is_empty());
        let next_budget = throttled.then(|| self.now.after(1));
        handler.into_iter().chain(next_budget).min()
    }

    fn advance_time(&mut self, now: Tick) {
        if now > self.now {
            self.now = now;
            self.budget = self.spec.throughput.unwrap_or(u32::MAX);
        }
    }

    /// A source reads up to its per-tick budget and emits; at the end of its log it sends
    /// end-of-data and waits for the final checkpoint.
    pub fn on_source_tick(&mut self, out: &mut Vec<TaskEffect>) {
        let OperatorKind::Source {
            records_per_tick, ..
        } = self.spec.kind
        else {
            unreachable!("only sources are ticked")
        };
        if self.status != TaskStatus::Running {
            return;
        }
        let mut events = Vec::new();
        let exhausted =
            self.operator
                .read_source(records_per_tick, &mut events, &mut self.watermark);
        for event in events {
            match event {
                StreamEvent::Record(record) => self.route(record, out),
                other => self.broadcast(&other, out),
            }
        }
        if exhausted {
            self.end_of_data(out);
        }
    }

    /// The JobManager triggers a checkpoint at this source.
    pub fn on_trigger(&mut self, barrier: CheckpointBarrier, out: &mut Vec<TaskEffect>) {
        assert!(self.is_source(), "only sources are triggered");
        if barrier.id <= self.last_checkpoint || self.status >= TaskStatus::Committing {
            // A stale trigger after a restore, or after the task ended: ignore it.
            return;
        }
        self.perform_checkpoint(barrier, None, out);
    }

    /// The snapshot of `checkpoint` is durable at `state`.
    pub fn on_snapshot_durable(
        &mut self,
        checkpoint: CheckpointId,
        state: StateHandle,
        out: &mut Vec<TaskEffect>,
    ) {
        if let Some(lsm) = self.lsm.as_mut() {
            lsm.on_durable(checkpoint);
        }
        if let Some(pending) = self.pending.get_mut(&checkpoint) {
            assert!(
                pending.stored.is_none(),
                "snapshot {checkpoint} of {} stored twice",
                self.spec.id
            );
            pending.stored = Some(state);
            self.acknowledge_if_ready(checkpoint, out);
        }
    }

    /// Writing the snapshot of `checkpoint` failed: decline it (a counted failure in Flink's
    /// `CheckpointFailureManager`).
    pub fn on_snapshot_failed(&mut self, checkpoint: CheckpointId, out: &mut Vec<TaskEffect>) {
        if let Some(lsm) = self.lsm.as_mut() {
            lsm.on_failed(checkpoint);
        }
        if self.pending.remove(&checkpoint).is_some() {
            self.decline(checkpoint, CheckpointFailureReason::AsyncException, out);
        }
    }

    /// The sink system confirmed a pre-commit.
    pub fn on_pre_committed(&mut self, transaction: TransactionId, out: &mut Vec<TaskEffect>) {
        self.sink_confirmed(|wait| wait == SinkWait::PreCommit(transaction), out);
    }

    /// The sink system applied a plain sink's write, and so every earlier one.
    pub fn on_written(&mut self, write: WriteId, out: &mut Vec<TaskEffect>) {
        self.latest_written = self.latest_written.max(Some(write.sequence));
        self.sink_confirmed(
            |wait| matches!(wait, SinkWait::Written(w) if w.sequence <= write.sequence),
            out,
        );
    }

    /// Acknowledges the snapshots whose sink wait `confirmed` ends, if they are stored.
    fn sink_confirmed(&mut self, confirmed: impl Fn(SinkWait) -> bool, out: &mut Vec<TaskEffect>) {
        let ready: Vec<CheckpointId> = self
            .pending
            .iter_mut()
            .filter(|(_, p)| p.awaiting_sink.is_some_and(&confirmed))
            .map(|(&id, p)| {
                p.awaiting_sink = None;
                id
            })
            .collect();
        for checkpoint in ready {
            self.acknowledge_if_ready(checkpoint, out);
        }
    }

    /// The JobManager says `checkpoint` completed: commit side effects up to it
    /// (Flink's `TwoPhaseCommitSinkFunction#notifyCheckpointComplete`). After the job's final
    /// checkpoint the task finishes.
    pub fn on_notify_complete(
        &mut self,
        checkpoint: CheckpointId,
        final_checkpoint: bool,
        out: &mut Vec<TaskEffect>,
    ) {
        if self.status >= TaskStatus::Committing {
            return;
        }
        // Notifications are monotone; older ones are ignored (FLINK-24096). The final checkpoint's
        // may come twice: an abort of an older checkpoint subsumed by it carries it as the
        // latest completed, and may overtake its own notification, which alone says it is final.
        let repeated = checkpoint == self.latest_notified;
        if checkpoint < self.latest_notified || (repeated && !final_checkpoint) {
            return;
        }
        if !repeated {
            self.commit_up_to(checkpoint, out);
        }
        if final_checkpoint {
            // The final checkpoint was triggered after every source ended, so every task took
            // its snapshot after its own end of data.
            assert_eq!(
                self.status,
                TaskStatus::DataFinished,
                "{} finishes before its input ended",
                self.spec.id
            );
            self.status = TaskStatus::Committing;
            self.finish_if_committed(out);
        }
    }

    /// Commits the side effects of every checkpoint up to `checkpoint`, which completed.
    fn commit_up_to(&mut self, checkpoint: CheckpointId, out: &mut Vec<TaskEffect>) {
        self.latest_notified = checkpoint;
        out.push(TaskEffect::Trace(EngineEvent::CheckpointNotified {
            task: self.spec.id,
            attempt: self.attempt,
            checkpoint,
        }));
        let mut emitted = Emitted::default();
        for transaction in self.operator.notify_complete(checkpoint, &mut emitted) {
            self.commits_in_flight.insert(transaction);
            out.push(TaskEffect::Trace(EngineEvent::Committed {
                task: self.spec.id,
                transaction,
            }));
        }
        self.emit(emitted, out);
        // Older snapshots still in flight are subsumed by this completion.
        self.pending
            .retain(|&id, pending| id > checkpoint || pending.savepoint);
        if self
            .recording
            .as_ref()
            .is_some_and(|r| r.checkpoint() <= checkpoint && !r.savepoint)
        {
            self.recording = None;
        }
    }

    /// The sink system confirmed a commit. The confirmation may answer a request of an earlier
    /// attempt: commits are idempotent, so it still means the transaction is committed.
    pub fn on_committed(&mut self, transaction: TransactionId, out: &mut Vec<TaskEffect>) {
        self.commits_in_flight.remove(&transaction);
        self.finish_if_committed(out);
    }

    fn finish_if_committed(&mut self, out: &mut Vec<TaskEffect>) {
        if self.status == TaskStatus::Committing && self.commits_in_flight.is_empty() {
            self.status = TaskStatus::Finished;
            out.push(TaskEffect::Finished);
        }
    }

    /// The JobManager aborted `checkpoint`. A newer completed checkpoint is made up for first,
    /// in case its notification was lost (FLINK-21080); a barrier still to come is skipped.
    pub fn on_notify_aborted(
        &mut self,
        checkpoint: CheckpointId,
        latest_completed: Option<CheckpointId>,
        out: &mut Vec<TaskEffect>,
    ) {
        self.abort_local(checkpoint);
        if self.status >= TaskStatus::Committing {
            return; // The final checkpoint completed: nothing is left to make up for.
        }
        match latest_completed {
            // Seeded bug: the completion the notice carries is not made up for.
            Some(_) if self.spec.has_bug(SeededBug::LostNotificationNotCompensated) => {}
            Some(completed) => {
                if completed > self.latest_notified {
                    probes::hit(Probe::LostNotificationCompensated);
                }
                self.on_notify_complete(completed, false, out)
            }
            None => {}
        }
        out.push(TaskEffect::Trace(EngineEvent::AbortNotified {
            task: self.spec.id,
            attempt: self.attempt,
            checkpoint,
            latest_completed,
        }));
        if checkpoint > self.last_checkpoint {
            self.aborted_early.insert(checkpoint);
            if self.aborted_early.len() > ABORTED_EARLY_MAX {
                self.aborted_early.pop_first();
            }
        }
    }

    /// Processes queued input round-robin over the channels that are not blocked.
    fn drain(&mut self, out: &mut Vec<TaskEffect>) {
        let channels = self.inputs.len();
        if self.spec.throughput.is_some() && channels > 0 {
            // A throttled task starts each round at the next channel, or the first channel
            // would take the whole budget while it has a backlog.
            self.drain_start = (self.drain_start + 1) % channels;
        }
        loop {
            let mut progressed = false;
            for offset in 0..channels {
                let channel = ChannelIndex(((self.drain_start + offset) % channels) as u16);
                for _ in 0..CHANNEL_BATCH_EVENTS {
                    if self.is_blocked(channel) {
                        break;
                    }
                    let input = &mut self.inputs[channel.index()];
                    let is_record = matches!(input.queue.front(), Some(StreamEvent::Record(_)));
                    if is_record && self.budget == 0 {
                        break; // Throttled: the rest waits for the next tick.
                    }
                    let Some(event) = input.queue.pop_front() else {
                        break;
                    };
                    if is_record {
                        self.budget -= 1;
                        input.restored = input.restored.saturating_sub(1);
                    }
                    if is_record && self.swaps_adjacent_records {
                        // Seeded bug: the record behind this one on the channel goes first.
                        let next_is_record =
                            matches!(input.queue.front(), Some(StreamEvent::Record(_)));
                        if next_is_record && self.budget > 0 {
                            let next = input.queue.pop_front().expect("a record is queued");
                            self.budget -= 1;
                            input.restored = input.restored.saturating_sub(1);
                            self.process(channel, next, out);
                        }
                    }
                    self.process(channel, event, out);
                    progressed = true;
                }
            }
            if !progressed {
                break;
            }
        }
        let mut emitted = Emitted::default();
        self.operator.flush_sink(&mut emitted);
        self.emit(emitted, out);
    }

    fn is_blocked(&self, channel: ChannelIndex) -> bool {
        self.handler
            .as_ref()
            .is_some_and(|handler| handler.is_blocked(channel))
    }

    fn process(&mut self, channel: ChannelIndex, event: StreamEvent, out: &mut Vec<TaskEffect>) {
        match event {
            StreamEvent::Record(record) => {
                assert_eq!(
                    self.status,
                    TaskStatus::Running,
                    "{} got a record after end of data",
                    self.spec.id
                );
                let mut emitted = Emitted::default();
                self.operator
                    .process(self.inputs[channel.index()].side, record, &mut emitted);
                self.emit(emitted, out);
            }
            StreamEvent::Watermark(watermark) => {
                let input = &mut self.inputs[channel.index()];
                input.watermark = input.watermark.max(watermark);
                self.advance_watermark(out);
            }
            StreamEvent::Barrier(barrier) => self.on_barrier(channel, barrier, false, out),
            StreamEvent::CancelMarker(checkpoint) => {
                let trace = EngineEvent::CancelMarkerReceived {
                    task: self.spec.id,
                    attempt: self.attempt,
                    channel,
                    from: self.spec.inputs[channel.index()].upstream,
                    checkpoint,
                };
                out.push(TaskEffect::Trace(trace));
                let actions = self.handler_mut().on_cancel_marker(channel, checkpoint);
                self.apply(actions, out);
            }
            StreamEvent::EndOfData => {
                self.inputs[channel.index()].data_finished = true;
                self.advance_watermark(out);
                if self.inputs.iter().all(|input| input.data_finished) {
                    self.end_of_data(out);
                }
            }
        }
    }

    /// A barrier on `channel`: handled as it arrived (`overtook`, ahead of the channel's
    /// queue) or in channel order.
    fn on_barrier(
        &mut self,
        channel: ChannelIndex,
        barrier: CheckpointBarrier,
        overtook: bool,
        out: &mut Vec<TaskEffect>,
    ) {
        let trace = EngineEvent::BarrierReceived {
            task: self.spec.id,
            attempt: self.attempt,
            channel,
            from: self.spec.inputs[channel.index()].upstream,
            checkpoint: barrier.id,
        };
        out.push(TaskEffect::Trace(trace));
        let now = self.now;
        let mut actions = self.handler_mut().on_barrier(channel, barrier, now);
        if let (Some(capture), false) = (actions.channel_state.as_mut(), overtook) {
            // Taken from the queue in order: what is still queued on its channel came after it.
            capture.queued.retain(|&queued| queued != channel);
        }
        self.apply(actions, out);
    }

    fn handler_mut(&mut self) -> &mut dyn BarrierHandler {
        self.handler
            .as_deref_mut()
            .expect("tasks with inputs have a barrier handler")
    }

    fn apply(&mut self, actions: BarrierActions, out: &mut Vec<TaskEffect>) {
        for (checkpoint, reason) in actions.aborted {
            self.abort_local(checkpoint);
            self.decline_and_cancel(checkpoint, reason, out);
        }
        if let Some(barrier) = actions.triggered {
            if self.inputs.iter().any(|input| input.restored > 0) {
                // Restored in-flight records come first; no snapshot before (FLINK-20654).
                self.last_checkpoint = self.last_checkpoint.max(barrier.id);
                let reason = CheckpointFailureReason::DeclinedTaskNotReady;
                self.decline_and_cancel(barrier.id, reason, out);
            } else {
                self.perform_checkpoint(barrier, actions.channel_state, out);
            }
        }
        if let Some(checkpoint) = actions.channel_state_complete {
            self.store_recording(checkpoint, out);
        }
    }

    /// Declines `checkpoint` and tells downstream not to wait for its barrier.
    fn decline_and_cancel(
        &mut self,
        checkpoint: CheckpointId,
        reason: CheckpointFailureReason,
        out: &mut Vec<TaskEffect>,
    ) {
        self.decline(checkpoint, reason, out);
        self.cancel_downstream(checkpoint, out);
    }

    /// Forgets what this task holds of `checkpoint`, which it aborts.
    fn abort_local(&mut self, checkpoint: CheckpointId) {
        if self.recording.as_ref().map(Recording::checkpoint) == Some(checkpoint) {
            self.recording = None;
        }
        self.pending.remove(&checkpoint);
    }

    /// Every channel delivered the barrier of `checkpoint`: store its snapshot with the
    /// recorded channel state.
    fn store_recording(&mut self, checkpoint: CheckpointId, out: &mut Vec<TaskEffect>) {
        if self.recording.as_ref().map(Recording::checkpoint) != Some(checkpoint) {
            return; // Declined or aborted meanwhile.
        }
        let mut recording = self.recording.take().expect("checked");
        assert!(
            recording.open.is_empty(),
            "{} stores {checkpoint} while recording channels {:?}",
            self.spec.id,
            recording.open
        );
        if self.spec.has_bug(SeededBug::InFlightNotPersisted) {
            recording.in_flight.clear(); // Seeded bug: the channel state is lost.
        }
        let in_flight: Vec<InFlight> = recording.in_flight.into_iter().collect();
        let records = in_flight.iter().map(|(_, r)| r.len() as u64).sum();
        out.push(TaskEffect::Trace(EngineEvent::InFlightRecorded {
            task: self.spec.id,
            attempt: self.attempt,
            checkpoint,
            records,
            in_flight: in_flight.clone(),
        }));
        let mut snapshot = recording.snapshot;
        snapshot.in_flight = in_flight;
        let shared = snapshot.shared.clone();
        out.push(TaskEffect::Store {
            checkpoint,
            savepoint: recording.savepoint,
            bytes: codec::encode(Kind::TaskSnapshot, &snapshot),
            uploads: recording.uploads,
            shared,
        });
    }

    /// Starts recording channel state for the snapshot just taken: the queued records `capture`
    /// names (up to the barrier, where it is queued), then the records arriving on its open
    /// channels. A barrier found queued on an open channel that now overtakes is handled.
    fn start_recording(
        &mut self,
        snapshot: TaskSnapshot,
        savepoint: bool,
        uploads: Vec<(StoragePath, Vec<u8>)>,
        capture: ChannelCapture,
        out: &mut Vec<TaskEffect>,
    ) {
        let checkpoint = snapshot.checkpoint;
        let mut recording = Recording {
            snapshot,
            savepoint,
            uploads,
            open: capture.open.iter().copied().collect(),
            in_flight: BTreeMap::new(),
        };
        let mut overtaking = Vec::new();
        for &channel in &capture.queued {
            let was_open = recording.open.contains(&channel);
            recording.open.insert(channel);
            let mut behind_control = false;
            for event in &self.inputs[channel.index()].queue {
                recording.observe(channel, event);
                if !recording.open.contains(&channel) {
                    // Pulled forward only if no older barrier or marker is queued before it.
                    if let (StreamEvent::Barrier(barrier), false) = (event, behind_control) {
                        overtaking.push((channel, *barrier));
                    }
                    break;
                }
                behind_control |= matches!(
                    event,
                    StreamEvent::Barrier(_) | StreamEvent::CancelMarker(_)
                );
            }
            if !was_open {
                recording.open.remove(&channel); // Its barrier arrived already.
            }
        }
        self.recording = Some(recording);
        for (channel, barrier) in overtaking {
            let event = StreamEvent::Barrier(barrier);
            if barrier.id != checkpoint || !self.handler_mut().overtakes(channel, &event) {
                continue;
            }
            let queue = &mut self.inputs[channel.index()].queue;
            let position = queue
                .iter()
                .position(|e| *e == StreamEvent::Barrier(barrier))
                .expect("seen above");
            queue.remove(position);
            self.on_barrier(channel, barrier, true, out);
        }
    }

    /// Snapshot and barrier forwarding as one atomic step (Flink's
    /// `SubtaskCheckpointCoordinatorImpl#checkpointState`). With
    /// `channel_state`, the snapshot is stored once its channel state is recorded.
    fn perform_checkpoint(
        &mut self,
        barrier: CheckpointBarrier,
        channel_state: Option<ChannelCapture>,
        out: &mut Vec<TaskEffect>,
    ) {
        assert!(
            barrier.id > self.last_checkpoint,
            "{} snapshots {} after {}",
            self.spec.id,
            barrier.id,
            self.last_checkpoint
        );
        self.last_checkpoint = barrier.id;
        if self.aborted_early.remove(&barrier.id) {
            self.skip_checkpoint(barrier.id, out);
            return;
        }
        self.broadcast(&StreamEvent::Barrier(barrier), out);
        let awaiting_sink = self.snapshot_sink(barrier.id, out);
        let state = self.operator_state_to_snapshot();
        let snapshotted = state.clone();
        let (state, incremental) = self.split_incremental(barrier, state);
        let snapshot = TaskSnapshot {
            task: self.spec.id,
            checkpoint: barrier.id,
            state,
            shared: incremental.runs.clone(),
            in_flight: Vec::new(),
        };
        out.push(TaskEffect::Trace(EngineEvent::SnapshotTaken {
            task: self.spec.id,
            attempt: self.attempt,
            checkpoint: barrier.id,
            state: snapshotted,
        }));
        self.pending.insert(
            barrier.id,
            PendingSnapshot {
                savepoint: barrier.savepoint,
                stored: None,
                awaiting_sink,
            },
        );
        match channel_state {
            Some(capture) => {
                let uploads = incremental.uploads;
                self.start_recording(snapshot, barrier.savepoint, uploads, capture, out);
            }
            None => out.push(TaskEffect::Store {
                checkpoint: barrier.id,
                savepoint: barrier.savepoint,
                bytes: codec::encode(Kind::TaskSnapshot, &snapshot),
                uploads: incremental.uploads,
                shared: incremental.runs,
            }),
        }
    }

    /// The JobManager already aborted the checkpoint: skip it and tell downstream with a
    /// `CancelCheckpointMarker`, as Flink's `checkpointState` does.
    fn skip_checkpoint(&mut self, checkpoint: CheckpointId, out: &mut Vec<TaskEffect>) {
        probes::hit(Probe::CheckpointSkipped);
        out.push(TaskEffect::Trace(EngineEvent::CheckpointSkipped {
            task: self.spec.id,
            attempt: self.attempt,
            checkpoint,
        }));
        self.cancel_downstream(checkpoint, out);
    }

    /// A sink's part of the snapshot: it may emit (a 2PC sink pre-commits) and returns what
    /// the acknowledgement must wait for.
    fn snapshot_sink(
        &mut self,
        checkpoint: CheckpointId,
        out: &mut Vec<TaskEffect>,
    ) -> Option<SinkWait> {
        let mut emitted = Emitted::default();
        let awaiting_sink = match self.operator.snapshot_sink(checkpoint, &mut emitted) {
            // A plain sink whose writes are all confirmed waits for nothing.
            Some(SinkWait::Written(write)) if Some(write.sequence) <= self.latest_written => None,
            wait => wait,
        };
        self.emit(emitted, out);
        if let (Some(SinkWait::PreCommit(transaction)), true) = (
            awaiting_sink,
            self.spec.has_bug(SeededBug::CommitAtSnapshot),
        ) {
            // Seeded bug: commit now, before the checkpoint completes.
            self.commits_in_flight.insert(transaction);
            out.push(TaskEffect::Sink(SinkRequest::Commit { transaction }));
        }
        awaiting_sink
    }

    /// The operator's state as of the barrier (unless a seeded bug skews it).
    fn operator_state_to_snapshot(&self) -> OperatorState {
        let mut state = self.operator.state().clone();
        if let (
            OperatorState::Source { offsets },
            OperatorKind::Source {
                records_per_tick, ..
            },
        ) = (&mut state, &self.spec.kind)
        {
            if self.spec.has_bug(SeededBug::SourceOffsetAtRead) {
                // Seeded bug: the offset read ahead (the next batch), not the one at the barrier.
                for offset in offsets.values_mut() {
                    offset.0 += u64::from(*records_per_tick);
                }
            }
        }
        state
    }

    /// With the incremental backend, keyed state leaves the task's own file for shared runs:
    /// returns the state left in the file and the runs to reference and upload. Savepoints are
    /// always full and self-contained.
    fn split_incremental(
        &mut self,
        barrier: CheckpointBarrier,
        state: OperatorState,
    ) -> (OperatorState, IncrementalSnapshot) {
        let keyed = match (&mut self.lsm, barrier.savepoint) {
            (Some(lsm), false) => lsm::split(&state).map(|(skeleton, entries)| {
                let incremental = lsm.snapshot(barrier.id, &entries);
                (skeleton, incremental)
            }),
            _ => None,
        };
        match keyed {
            Some((skeleton, incremental)) => (skeleton, incremental),
            None => (state, IncrementalSnapshot::default()),
        }
    }

    fn acknowledge_if_ready(&mut self, checkpoint: CheckpointId, out: &mut Vec<TaskEffect>) {
        let pending = &self.pending[&checkpoint];
        if pending.awaiting_sink.is_some() {
            return;
        }
        let Some(state) = pending.stored.clone() else {
            return;
        };
        self.pending.remove(&checkpoint);
        out.push(TaskEffect::Acknowledge { checkpoint, state });
        out.push(TaskEffect::Trace(EngineEvent::Acknowledged {
            task: self.spec.id,
            checkpoint,
        }));
    }

    fn decline(
        &mut self,
        checkpoint: CheckpointId,
        reason: CheckpointFailureReason,
        out: &mut Vec<TaskEffect>,
    ) {
        let probe = match reason {
            CheckpointFailureReason::DeclinedSubsumed => Some(Probe::DeclinedSubsumed),
            CheckpointFailureReason::DeclinedOnCancellationBarrier => {
                Some(Probe::DeclinedOnCancellationBarrier)
            }
            CheckpointFailureReason::DeclinedTaskNotReady => Some(Probe::DeclinedTaskNotReady),
            _ => None,
        };
        if let Some(probe) = probe {
            probes::hit(probe);
        }
        out.push(TaskEffect::Decline { checkpoint, reason });
        out.push(TaskEffect::Trace(EngineEvent::Declined {
            task: self.spec.id,
            attempt: self.attempt,
            checkpoint,
            reason,
        }));
    }

    fn advance_watermark(&mut self, out: &mut Vec<TaskEffect>) {
        let combined = self
            .inputs
            .iter()
            .map(|input| {
                if input.data_finished {
                    EventTime::MAX
                } else {
                    input.watermark
                }
            })
            .min()
            .expect("only tasks with inputs combine watermarks");
        if combined <= self.watermark {
            return;
        }
        self.watermark = combined;
        let mut emitted = Emitted::default();
        self.operator.on_watermark(combined, &mut emitted);
        self.emit(emitted, out);
        self.broadcast(&StreamEvent::Watermark(combined), out);
    }

    fn end_of_data(&mut self, out: &mut Vec<TaskEffect>) {
        assert_eq!(
            self.status,
            TaskStatus::Running,
            "end of data reached twice at {}",
            self.spec.id
        );
        self.status = TaskStatus::DataFinished;
        let mut emitted = Emitted::default();
        self.operator.flush_sink(&mut emitted);
        self.emit(emitted, out);
        self.broadcast(&StreamEvent::EndOfData, out);
        out.push(TaskEffect::DataFinished);
    }

    fn emit(&mut self, emitted: Emitted, out: &mut Vec<TaskEffect>) {
        for record in emitted.records {
            self.route(record, out);
        }
        out.extend(emitted.sink.into_iter().map(TaskEffect::Sink));
    }

    fn route(&mut self, record: Record, out: &mut Vec<TaskEffect>) {
        for (index, output) in self.spec.outputs.iter().enumerate() {
            let position = match output.partitioning {
                Partitioning::Forward => 0,
                Partitioning::KeyBy => {
                    usize::from(key_owner(record.key, output.targets.len() as u16))
                }
                Partitioning::Rebalance => {
                    let cursor = &mut self.rebalance_cursor[index];
                    *cursor = (*cursor + 1) % output.targets.len();
                    *cursor
                }
            };
            let (target, channel) = output.targets[position];
            out.push(TaskEffect::Emit {
                target,
                channel,
                event: StreamEvent::Record(record),
            });
        }
    }

    /// Tells every downstream task not to wait for this task's barrier of `checkpoint`.
    fn cancel_downstream(&self, checkpoint: CheckpointId, out: &mut Vec<TaskEffect>) {
        if self.spec.has_bug(SeededBug::DeclineWithoutMarker) {
            return; // Seeded bug: downstream keeps waiting for a barrier that never comes.
        }
        self.broadcast(&StreamEvent::CancelMarker(checkpoint), out);
    }

    fn broadcast(&self, event: &StreamEvent, out: &mut Vec<TaskEffect>) {
        for output in &self.spec.outputs {
            for &(target, channel) in &output.targets {
                out.push(TaskEffect::Emit {
                    target,
                    channel,
                    event: event.clone(),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{Key, Offset, OperatorId, PartitionId};
    use crate::record::{InputRef, Origin};
    use crate::storage::{StateLocation, StoragePath};
    use crate::testing::keyed_sum_job;

    /// A one-byte state file at `path`.
    fn file_handle(path: &str) -> StateHandle {
        StateHandle {
            location: StateLocation::File(StoragePath::new(path).expect("valid")),
            size: 1,
            checksum: 0,
            shared: Vec::new(),
        }
    }

    fn sink_task() -> Task {
        let plan = keyed_sum_job(8, None).build().expect("valid job");
        let spec = plan
            .tasks
            .iter()
            .find(|spec| matches!(spec.kind, OperatorKind::TwoPhaseCommitSink))
            .expect("the job has a sink");
        Task::new(spec, Attempt(1), &CheckpointConfig::default())
    }

    /// Why: found by fuzzing AT_LEAST_ONCE jobs. A plain sink acknowledged its snapshot while
    /// its writes were still on their way to the sink system; a crash of its TaskManager lost
    /// them, and the restore from that checkpoint did not replay them.
    #[test]
    fn a_plain_sinks_snapshot_waits_for_its_writes_to_be_confirmed() {
        let plan = keyed_sum_job(8, None).build().expect("valid job");
        let mut spec = plan
            .tasks
            .iter()
            .find(|spec| matches!(spec.kind, OperatorKind::TwoPhaseCommitSink))
            .expect("the job has a sink")
            .clone();
        spec.kind = OperatorKind::PlainSink;
        let config = CheckpointConfig {
            mode: CheckpointingMode::AtLeastOnce,
            ..CheckpointConfig::default()
        };
        let mut task = Task::new(&spec, Attempt(1), &config);
        let channel = ChannelIndex(0);
        let mut out = Vec::new();
        task.on_data(
            channel,
            vec![StreamEvent::Record(record())],
            Tick(0),
            &mut out,
        );
        let requests = sink_requests(&out);
        let [SinkRequest::WriteCommitted { write, .. }] = requests[..] else {
            panic!("the record is written: {requests:?}")
        };

        out.clear();
        let checkpoint = CheckpointId(1);
        let barrier = StreamEvent::Barrier(CheckpointBarrier::checkpoint(checkpoint));
        task.on_data(channel, vec![barrier], Tick(0), &mut out);
        let handle = file_handle("job/chk-1/sink");
        task.on_snapshot_durable(checkpoint, handle, &mut out);
        let acknowledged = |out: &[TaskEffect]| {
            out.iter()
                .any(|e| matches!(e, TaskEffect::Acknowledge { .. }))
        };
        assert!(!acknowledged(&out), "no ack before the write is confirmed");
        task.on_written(write, &mut out);
        assert!(acknowledged(&out), "acknowledged once it is: {out:?}");

        // With every write confirmed, the next snapshot waits for nothing.
        out.clear();
        let barrier = StreamEvent::Barrier(CheckpointBarrier::checkpoint(CheckpointId(2)));
        task.on_data(channel, vec![barrier], Tick(0), &mut out);
        let handle = file_handle("job/chk-2/sink");
        task.on_snapshot_durable(CheckpointId(2), handle, &mut out);
        assert!(acknowledged(&out));
    }

    /// Review finding: a savepoint's snapshot still being written must survive the completion
    /// of a later checkpoint whose snapshot was stored first (kept in memory), or the savepoint
    /// is never acknowledged and expires.
    #[test]
    fn a_pending_savepoint_snapshot_survives_a_later_checkpoints_notification() {
        let plan = keyed_sum_job(8, None).build().expect("valid job");
        let spec = plan
            .tasks
            .iter()
            .find(|spec| matches!(spec.kind, OperatorKind::Source { .. }))
            .expect("the job has a source");
        let mut task = Task::new(spec, Attempt(1), &CheckpointConfig::default());
        let (savepoint, checkpoint) = (CheckpointId(1), CheckpointId(2));
        let mut out = Vec::new();
        let barrier = CheckpointBarrier {
            id: savepoint,
            savepoint: true,
        };
        task.on_trigger(barrier, &mut out);
        task.on_trigger(CheckpointBarrier::checkpoint(checkpoint), &mut out);
        let handle = |name: &str| StateHandle {
            location: StateLocation::File(StoragePath::new(name).expect("valid")),
            size: 1,
            checksum: 0,
            shared: Vec::new(),
        };
        task.on_snapshot_durable(checkpoint, handle("c"), &mut out);
        task.on_notify_complete(checkpoint, false, &mut out);
        out.clear();
        task.on_snapshot_durable(savepoint, handle("s"), &mut out);
        let acked = out.iter().any(|effect| {
            matches!(effect, TaskEffect::Acknowledge { checkpoint, .. } if *checkpoint == savepoint)
        });
        assert!(acked, "the savepoint is acknowledged: {out:?}");
    }

    /// Review finding: under unaligned checkpoints, a checkpoint's first barrier taken from
    /// the queue in channel order (it queued behind an older barrier, here a savepoint's) must
    /// not record what follows it on its own channel as channel state: after a restore those
    /// records would come twice, from the channel state and from upstream again.
    #[test]
    fn a_first_barrier_taken_in_order_records_nothing_after_it_on_its_channel() {
        let plan = keyed_sum_job(8, None).build().expect("valid job");
        let spec = plan
            .tasks
            .iter()
            .find(|spec| matches!(spec.kind, OperatorKind::KeyedAggregate(_)))
            .expect("the job has a sum");
        assert_eq!(spec.inputs.len(), 2, "one channel per source subtask");
        let config = CheckpointConfig {
            unaligned: true,
            ..CheckpointConfig::default()
        };
        let mut task = Task::new(spec, Attempt(1), &config);
        let value = |value: i64| StreamEvent::Record(Record { value, ..record() });
        let savepoint = StreamEvent::Barrier(CheckpointBarrier {
            id: CheckpointId(1),
            savepoint: true,
        });
        let checkpoint = || StreamEvent::Barrier(CheckpointBarrier::checkpoint(CheckpointId(2)));
        let (first, second) = (ChannelIndex(0), ChannelIndex(1));
        let mut out = Vec::new();
        // Before checkpoint 2's barrier: 10 on the first channel, 20 on the second; after it:
        // 11 and 21. The savepoint's barriers are queued ahead, so neither barrier overtakes.
        let before_and_after =
            |before, after| vec![savepoint.clone(), value(before), checkpoint(), value(after)];
        task.on_data(first, before_and_after(10, 11), Tick(1), &mut out);
        task.on_data(second, before_and_after(20, 21), Tick(1), &mut out);
        let recorded: Vec<(ChannelIndex, i64)> = out
            .iter()
            .find_map(|effect| match effect {
                TaskEffect::Trace(EngineEvent::InFlightRecorded {
                    checkpoint: CheckpointId(2),
                    in_flight,
                    ..
                }) => Some(
                    in_flight
                        .iter()
                        .flat_map(|(channel, records)| records.iter().map(|r| (*channel, r.value)))
                        .collect(),
                ),
                _ => None,
            })
            .expect("checkpoint 2's channel state is complete");
        // Whichever channel's barrier came first, only the other channel's record before its
        // barrier is channel state; neither record after a barrier is.
        assert!(
            recorded == [(second, 20)] || recorded == [(first, 10)],
            "{recorded:?}"
        );
    }

    fn record() -> Record {
        Record {
            key: Key(1),
            value: 1,
            event_time: EventTime(0),
            origin: Origin::Input(InputRef {
                source: OperatorId(0),
                partition: PartitionId(0),
                offset: Offset(0),
            }),
        }
    }

    fn sink_requests(effects: &[TaskEffect]) -> Vec<SinkRequest> {
        effects
            .iter()
            .filter_map(|effect| match effect {
                TaskEffect::Sink(request) => Some(request.clone()),
                _ => None,
            })
            .collect()
    }

    /// A sink that wrote one record, reached its end of data and took the final checkpoint 1,
    /// acknowledged: what remains is the completion notice. Returns its pre-committed
    /// transaction.
    fn sink_with_final_checkpoint_acknowledged() -> (Task, TransactionId) {
        let mut task = sink_task();
        let channel = ChannelIndex(0);
        let mut out = Vec::new();
        task.on_data(
            channel,
            vec![StreamEvent::Record(record()), StreamEvent::EndOfData],
            Tick(0),
            &mut out,
        );
        assert!(out.contains(&TaskEffect::DataFinished));
        assert!(
            matches!(&sink_requests(&out)[..], [SinkRequest::Write { records, .. }] if records.len() == 1),
            "the record is written into the open transaction: {out:?}"
        );

        out.clear();
        let final_checkpoint = CheckpointId(1);
        task.on_data(
            channel,
            vec![StreamEvent::Barrier(CheckpointBarrier::checkpoint(
                final_checkpoint,
            ))],
            Tick(0),
            &mut out,
        );
        let requests = sink_requests(&out);
        let [SinkRequest::PreCommit { transaction }] = requests[..] else {
            panic!("the snapshot pre-commits: {requests:?}")
        };

        out.clear();
        let handle = file_handle("job/chk-1/sink");
        task.on_snapshot_durable(final_checkpoint, handle, &mut out);
        assert!(out.is_empty(), "no ack before the pre-commit is confirmed");
        task.on_pre_committed(transaction, &mut out);
        assert!(matches!(out[0], TaskEffect::Acknowledge { .. }));
        (task, transaction)
    }

    /// Why: a job was reported finished while the final commit was still on its way to the sink
    /// system, so a run could end with the last transaction neither committed nor aborted.
    #[test]
    fn a_sink_finishes_only_after_the_final_commit_is_confirmed() {
        let (mut task, transaction) = sink_with_final_checkpoint_acknowledged();
        let final_checkpoint = CheckpointId(1);
        let mut out = Vec::new();
        task.on_notify_complete(final_checkpoint, true, &mut out);
        assert_eq!(
            sink_requests(&out),
            vec![SinkRequest::Commit { transaction }]
        );
        assert!(!out.contains(&TaskEffect::Finished));
        assert_eq!(task.status(), TaskStatus::Committing);

        out.clear();
        task.on_committed(transaction, &mut out);
        assert_eq!(out, vec![TaskEffect::Finished]);
        assert_eq!(task.status(), TaskStatus::Finished);
    }

    /// Why: found by fuzzing (a job that never finished). The abort of an older checkpoint
    /// subsumed by the final one carries the final one as the latest completed and reached the
    /// task first; the task committed up to it and then ignored the final notification as a
    /// repeat, so it never finished.
    #[test]
    fn a_final_notification_after_an_abort_that_carried_it_still_finishes() {
        let (mut task, transaction) = sink_with_final_checkpoint_acknowledged();
        let final_checkpoint = CheckpointId(1);
        let mut out = Vec::new();
        task.on_notify_aborted(CheckpointId(0), Some(final_checkpoint), &mut out);
        assert_eq!(
            sink_requests(&out),
            vec![SinkRequest::Commit { transaction }]
        );
        assert_eq!(task.status(), TaskStatus::DataFinished);

        out.clear();
        task.on_notify_complete(final_checkpoint, true, &mut out);
        assert!(sink_requests(&out).is_empty(), "committed once: {out:?}");
        assert_eq!(task.status(), TaskStatus::Committing);
        task.on_committed(transaction, &mut out);
        assert_eq!(task.status(), TaskStatus::Finished);
    }
}
