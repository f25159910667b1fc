//! One subtask at work: input channels, the barrier handler, the operator, and its snapshots.
//!
//! A [`Task`] takes inputs (data on a channel, a trigger, a storage completion, a notification)
//! and appends [`TaskEffect`]s. Taking the snapshot and forwarding the barrier happen in one call,
//! so no record can slip between them (Flink's `SubtaskCheckpointCoordinatorImpl#checkpointState`);
//! the acknowledgement waits until the snapshot is durable and, for a two-phase-commit sink, the
//! pre-commit is confirmed (Flink's `AsyncCheckpointRunnable`, FLINK-25305).

use crate::barrier::BarrierHandler;
use crate::bugs::SeededBug;
use crate::changelog::{ChangelogBackend, ChangelogFile, ChangelogUpload, Written};
use crate::config::ChangelogOptions;
use crate::config::CheckpointConfig;
use crate::ids::{Attempt, ChannelIndex, CheckpointId, EventTime, TaskId, Tick};
use crate::job::{key_owner, InputSide, OperatorKind, Partitioning, TaskSpec};
use crate::lsm::{self, LsmBackend};
use crate::operator::{Emitted, Operator, SinkWait};
use crate::probes::{self, Probe};
use crate::record::{Record, StreamEvent};
use crate::recovery_line::{ChannelCounts, LocalSnapshot};
use crate::sink::{SinkRequest, TransactionId};
use crate::status::CheckpointFailureReason;
use crate::storage::{StateHandle, StoragePath};
use crate::trace::EngineEvent;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

mod checkpoint;
mod commit;
mod restore;
mod uncoordinated;

use checkpoint::barrier_handler;
pub use restore::{SnapshotRead, TaskSnapshot};
use uncoordinated::LocalCheckpointing;

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
    /// Upload a file of the changelog backend, then call [`Task::on_changelog_written`].
    UploadChangelog(ChangelogUpload),
    /// Delete a file of the changelog backend that no snapshot lists (fire and forget: one
    /// left behind goes with the job's clean-up).
    DiscardChangelog(StoragePath),
    /// Write this local snapshot (checkpointing without barriers) to checkpoint storage, then
    /// call [`Task::on_snapshot_durable`] or [`Task::on_snapshot_failed`].
    StoreLocal {
        index: CheckpointId,
        /// The encoded [`LoggedSnapshot`].
        bytes: Vec<u8>,
    },
    /// Tell the JobManager a local snapshot is durable, or (`restored`) that the task
    /// restored it.
    LocalSnapshotDone {
        snapshot: Box<LocalSnapshot>,
        restored: bool,
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
    /// Tell the JobManager the task failed, and why.
    Fail(String),
    /// Record a trace event.
    Trace(EngineEvent),
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
    /// Changelog segments the snapshot references that are not durable yet.
    awaiting_log: BTreeSet<u64>,
    /// A local snapshot's channel counts and whether it was taken after the end of input: it
    /// is reported to the JobManager instead of acknowledged.
    local: Option<(ChannelCounts, bool)>,
}

/// Where a task keeps its keyed state between snapshots.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyedBackend {
    /// In the task's own snapshot file (Flink's hashmap backend).
    Heap,
    /// Sorted runs uploaded into this `shared/` directory (the incremental backend).
    Incremental { shared_dir: StoragePath },
    /// A changelog of segments in `log_dir`, materialized into `shared_dir` (FLIP-158).
    Changelog {
        log_dir: StoragePath,
        shared_dir: StoragePath,
        options: ChangelogOptions,
    },
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
    /// The changelog backend, when the job uses it.
    changelog: Option<ChangelogBackend>,
    /// The snapshot whose channel state is being recorded (unaligned, Chandy-Lamport).
    recording: Option<Recording>,
    /// Checkpointing without barriers: the task's counts, log and snapshot timer.
    local: Option<LocalCheckpointing>,
    /// The time of the input being handled.
    now: Tick,
    /// A throttled task's records left to process at `now`.
    budget: u32,
    /// The channel a throttled task's next round of processing starts at.
    drain_start: usize,
    /// Seeded bug [`AdjacentRecordsSwapped`](SeededBug::AdjacentRecordsSwapped), at a keyed
    /// operator (a second swap further down could undo it); read once, not per record.
    swaps_adjacent_records: bool,
    /// What the operator emits for one record, a buffer kept between records (emptied by
    /// [`Task::emit`]) so that the data path allocates no vector per record.
    emitted: Emitted,
}

impl Task {
    /// Keeps keyed state in `backend` from `now` on (only a keyed operator has any).
    pub fn use_backend(&mut self, backend: &KeyedBackend, now: Tick) {
        if !self.spec.kind.is_keyed() {
            return;
        }
        match backend {
            KeyedBackend::Heap => {}
            KeyedBackend::Incremental { shared_dir } => {
                self.lsm = Some(LsmBackend::new(shared_dir.clone(), self.spec.id));
            }
            KeyedBackend::Changelog {
                log_dir,
                shared_dir,
                options,
            } => {
                let (task, attempt) = (self.spec.id, self.attempt);
                let (log_dir, shared_dir) = (log_dir.clone(), shared_dir.clone());
                let backend =
                    ChangelogBackend::new(log_dir, shared_dir, task, attempt, *options, now);
                self.changelog = Some(backend);
            }
        }
    }

    /// Uploads the whole keyed state with the next snapshot, referencing nothing older.
    pub fn force_full_snapshot(&mut self) {
        if let Some(lsm) = self.lsm.as_mut() {
            lsm.force_full();
        }
        if let Some(changelog) = self.changelog.as_mut() {
            changelog.force_full();
        }
    }

    /// The changelog's timers: a segment of the changes so far, a materialization.
    fn on_changelog_timer(&mut self, now: Tick, out: &mut Vec<TaskEffect>) {
        let Some(changelog) = self.changelog.as_mut() else {
            return;
        };
        if now < changelog.next_timer() {
            return;
        }
        let truncates_early = self.spec.has_bug(SeededBug::ChangelogTruncatedEarly);
        let entries = lsm::split(self.operator.state()).map(|(_, entries)| entries);
        let entries = entries.expect("only keyed operators keep a changelog");
        for upload in changelog.on_timer(now, &entries, truncates_early) {
            if let ChangelogFile::Materialization(number) = upload.file {
                probes::hit(Probe::ChangelogMaterializing);
                out.push(TaskEffect::Trace(EngineEvent::MaterializationStarted {
                    task: self.spec.id,
                    attempt: self.attempt,
                    number,
                    path: upload.path.to_string(),
                }));
            }
            out.push(TaskEffect::UploadChangelog(upload));
        }
    }

    /// The answer to an upload of the changelog's `file`.
    pub fn on_changelog_written(
        &mut self,
        file: ChangelogFile,
        durable: bool,
        out: &mut Vec<TaskEffect>,
    ) {
        let Some(changelog) = self.changelog.as_mut() else {
            return;
        };
        let written = changelog.on_written(file, durable);
        let (task, attempt) = (self.spec.id, self.attempt);
        match written {
            Written::SegmentDurable(sequence) => {
                let waiting: Vec<CheckpointId> = (self.pending.iter_mut())
                    .filter_map(|(&id, p)| p.awaiting_log.remove(&sequence).then_some(id))
                    .collect();
                for checkpoint in waiting {
                    self.acknowledge_if_ready(checkpoint, out);
                }
            }
            Written::SegmentFailed(sequence) => {
                probes::hit(Probe::ChangelogSegmentFailed);
                let doomed: Vec<CheckpointId> = (self.pending.iter())
                    .filter(|(_, p)| p.awaiting_log.contains(&sequence))
                    .map(|(&id, _)| id)
                    .collect();
                for checkpoint in doomed {
                    self.on_snapshot_failed(checkpoint, out);
                }
            }
            Written::Materialized {
                number,
                up_to,
                discard,
            } => {
                let event = EngineEvent::Materialized {
                    task,
                    attempt,
                    number,
                    up_to,
                };
                out.push(TaskEffect::Trace(event));
                out.extend(discard.into_iter().map(TaskEffect::DiscardChangelog));
            }
            Written::MaterializationFailed { number, failures } => {
                probes::hit(Probe::ChangelogMaterializationFailed);
                out.push(TaskEffect::Trace(EngineEvent::MaterializationFailed {
                    task,
                    attempt,
                    number,
                    failures,
                }));
                if self
                    .changelog
                    .as_ref()
                    .is_some_and(|c| c.too_many_failures())
                {
                    let reason = format!("{failures} materializations in a row failed");
                    out.push(TaskEffect::Fail(reason));
                }
            }
            Written::Stale => {}
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
            changelog: None,
            recording: None,
            local: (config.logging).map(|protocol| {
                let interval = config
                    .interval_ticks
                    .expect("validated: logging needs an interval");
                LocalCheckpointing::new(spec, protocol, interval)
            }),
            now: Tick(0),
            budget: spec.throughput.unwrap_or(u32::MAX),
            drain_start: 0,
            swaps_adjacent_records: spec.kind.is_keyed()
                && spec.has_bug(SeededBug::AdjacentRecordsSwapped),
            emitted: Emitted::default(),
        }
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
            let event = match event {
                StreamEvent::Logged(logged) => match self.accept_logged(channel, *logged, out) {
                    Some(record) => record,
                    None => continue,
                },
                event => event,
            };
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
        if self.status == TaskStatus::Running {
            self.on_changelog_timer(now, out);
        }
        self.on_local_timer(now, out);
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
        // After its input ended a task's state changes no more: its final snapshot uploads
        // the last changes.
        let changelog = (self.changelog.as_ref())
            .filter(|_| self.status == TaskStatus::Running)
            .map(ChangelogBackend::next_timer);
        handler
            .into_iter()
            .chain(next_budget)
            .chain(changelog)
            .chain(self.next_local_snapshot())
            .min()
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
        self.emit(&mut emitted, out);
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
                let mut emitted = std::mem::take(&mut self.emitted);
                self.operator
                    .process(self.inputs[channel.index()].side, record, &mut emitted);
                self.emit(&mut emitted, out);
                self.emitted = emitted;
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
            StreamEvent::Logged(_) => unreachable!("numbered records are queued as records"),
            StreamEvent::EndOfData => {
                self.inputs[channel.index()].data_finished = true;
                self.advance_watermark(out);
                if self.inputs.iter().all(|input| input.data_finished) {
                    self.end_of_data(out);
                }
            }
        }
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
        self.emit(&mut emitted, out);
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
        self.emit(&mut emitted, out);
        self.broadcast(&StreamEvent::EndOfData, out);
        out.push(TaskEffect::DataFinished);
        if let Some(local) = self.local.as_ref() {
            // Its snapshot from here on is its last: take it now, so the final line need not
            // wait for the timer.
            self.take_local_snapshot(local.next_index(), false, out);
        }
    }

    /// Routes what the operator emitted and sends its sink requests; leaves `emitted` empty.
    fn emit(&mut self, emitted: &mut Emitted, out: &mut Vec<TaskEffect>) {
        for record in emitted.records.drain(..) {
            self.route(record, out);
        }
        out.extend(emitted.sink.drain(..).map(TaskEffect::Sink));
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
            let event = match self.local.as_mut() {
                Some(local) => local.log_record(index, position, record),
                None => StreamEvent::Record(record),
            };
            out.push(TaskEffect::Emit {
                target,
                channel,
                event,
            });
        }
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
mod tests;
