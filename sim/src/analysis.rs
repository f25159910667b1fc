//! What happened when in a run, read off its trace: checkpoints from trigger to completion or
//! abort, barrier alignment per task, faults, crashes and restarts, failovers and restores.
//! Reports draw it; sweeps keep its checkpoint durations and recovery times.

use crate::faults::Fault;
use crate::trace::{StorageEvent, TraceEntry, TraceEvent};
use snapsim_core::codec::{self, Kind};
use snapsim_core::ids::{Attempt, CheckpointId, TaskId};
use snapsim_core::messages::Address;
use snapsim_core::operator::OperatorState;
use snapsim_core::record::InFlight;
use snapsim_core::sink::TransactionId;
use snapsim_core::trace::{EngineEvent, JobStatus, TriggerKind};
use std::collections::BTreeMap;

/// How a checkpoint ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ending {
    /// Completed (a savepoint: its `_metadata` durable).
    Completed,
    /// Aborted, for this reason.
    Aborted(String),
    /// Still pending when the run ended.
    Pending,
}

/// One checkpoint or savepoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointSpan {
    pub id: u64,
    /// A savepoint rather than a checkpoint.
    pub savepoint: bool,
    /// When the JobManager triggered it at the sources (ms).
    pub triggered_at: u64,
    /// When it completed or was aborted (ms).
    pub ended_at: Option<u64>,
    /// How it ended.
    pub ending: Ending,
    /// The longest barrier alignment of any task that received barriers for it, from its first
    /// barrier to its snapshot (ms; 0 when none had to wait), when some task received barriers.
    pub alignment_max: Option<u64>,
    /// Snapshots taken for it.
    pub snapshots: u32,
    /// The encoded size of the snapshots taken for it (whole state, as a full snapshot stores).
    pub state_bytes: u64,
    /// In-flight records persisted with its snapshots as channel state (unaligned,
    /// Chandy-Lamport).
    pub in_flight_records: u64,
    /// What that channel state adds to the snapshots' encoded size.
    pub in_flight_bytes: u64,
    /// The bytes of its files written since its trigger (Flink's "checkpointed data size"),
    /// once its completion is persisted; none for state kept in the JobManager's memory.
    pub uploaded_bytes: Option<u64>,
    /// The bytes of every file it consists of, earlier checkpoints' shared files included
    /// (Flink's "full checkpoint data size").
    pub full_bytes: Option<u64>,
}

impl CheckpointSpan {
    /// From trigger to completion, for a completed checkpoint.
    pub fn duration(&self) -> Option<u64> {
        match self.ending {
            Ending::Completed => self.ended_at.map(|end| end - self.triggered_at),
            _ => None,
        }
    }
}

/// A task's barrier alignment for one checkpoint: from its first barrier to its snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Alignment {
    /// The task (`task-N`).
    pub task: String,
    pub checkpoint: u64,
    /// The first barrier's arrival (ms).
    pub from: u64,
    /// The snapshot (ms).
    pub to: u64,
}

/// A node down, from its crash to its restart (or the end of the run).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Downtime {
    pub node: String,
    /// The crash (ms).
    pub from: u64,
    /// The restart (ms), if it came.
    pub to: Option<u64>,
}

/// A job failover and the recovery after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recovery {
    /// The failover (ms).
    pub failed_at: u64,
    /// Why.
    pub cause: String,
    /// The checkpoint the next attempt restored, if any.
    pub restored: Option<u64>,
    /// When the job ran again (ms), if it did.
    pub running_at: Option<u64>,
}

impl Recovery {
    /// From the failover to running again.
    pub fn duration(&self) -> Option<u64> {
        self.running_at.map(|at| at - self.failed_at)
    }
}

/// A fault injected (other than a crash or restart), at a time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FaultMark {
    /// When (ms).
    pub at: u64,
    /// What, in a few words.
    pub label: String,
}

/// A run's timeline.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Timeline {
    /// The last trace entry's time (ms).
    pub end: u64,
    /// Checkpoints and savepoints by id.
    pub checkpoints: Vec<CheckpointSpan>,
    /// Alignments that took time, in trace order.
    pub alignments: Vec<Alignment>,
    /// Nodes down.
    pub downtimes: Vec<Downtime>,
    /// Failovers.
    pub recoveries: Vec<Recovery>,
    /// Other faults.
    pub faults: Vec<FaultMark>,
}

impl Timeline {
    /// Reads the timeline off a trace.
    pub fn from_trace(trace: &[TraceEntry]) -> Timeline {
        let mut reader = TimelineReader::new(trace.last().map_or(0, |entry| entry.at.0));
        for entry in trace {
            reader.see(entry);
        }
        reader.finish()
    }
}

/// A timeline being read off a trace, with what it takes to pair events up (a trigger and its
/// end, a barrier and the snapshot, a crash and the restart); one method per event kind.
struct TimelineReader {
    timeline: Timeline,
    checkpoints: BTreeMap<u64, CheckpointSpan>,
    /// Ended spans whose id was taken again, in order: a resumed job takes the id the earlier
    /// job's last, cancelled checkpoint had; a JobManager that crashed before the id counter was
    /// durable takes its id again.
    retired: Vec<CheckpointSpan>,
    /// (task, attempt, checkpoint) → first barrier's arrival.
    first_barrier: BTreeMap<(TaskId, Attempt, CheckpointId), u64>,
    /// Each node down → its entry in `timeline.downtimes`.
    down: BTreeMap<String, usize>,
    /// Each file written: its size and when.
    written: BTreeMap<String, (u64, u64)>,
    /// Checkpointing without barriers: each local snapshot's time and encoded state size.
    local: BTreeMap<(TaskId, Attempt, CheckpointId), (u64, u64)>,
}

impl TimelineReader {
    /// A reader of a trace whose last entry is at `end`.
    fn new(end: u64) -> Self {
        TimelineReader {
            timeline: Timeline {
                end,
                ..Timeline::default()
            },
            checkpoints: BTreeMap::new(),
            retired: Vec::new(),
            first_barrier: BTreeMap::new(),
            down: BTreeMap::new(),
            written: BTreeMap::new(),
            local: BTreeMap::new(),
        }
    }

    fn see(&mut self, entry: &TraceEntry) {
        let at = entry.at.0;
        match &entry.event {
            TraceEvent::Engine(event) => self.see_engine(event, at),
            TraceEvent::Crash => self.crash(entry.node, at),
            TraceEvent::Restart => {
                if let Some(index) = self.down.remove(&entry.node.to_string()) {
                    self.timeline.downtimes[index].to = Some(at);
                }
            }
            TraceEvent::Fault(fault) => {
                if let Some(label) = fault_label(fault) {
                    self.timeline.faults.push(FaultMark { at, label });
                }
            }
            TraceEvent::Storage(StorageEvent::Written { path, bytes }) => {
                self.written.insert(path.clone(), (*bytes, at));
            }
            _ => {}
        }
    }

    /// The events of checkpoints and their snapshots; the others go to `see_job`.
    fn see_engine(&mut self, event: &EngineEvent, at: u64) {
        match event {
            // The span starts when the id is taken (an abort may come before the
            // trigger reaches the sources) and counts from the trigger once it does.
            EngineEvent::TriggerStarted { checkpoint, kind } => {
                // An id taken again after its checkpoint ended is a checkpoint of its own, so
                // no span ends before it starts and none adds up two checkpoints' snapshots.
                let ended =
                    (self.checkpoints.get(&checkpoint.0)).is_some_and(|s| s.ended_at.is_some());
                if ended {
                    let span = self.checkpoints.remove(&checkpoint.0).expect("present");
                    self.retired.push(span);
                }
                self.checkpoints
                    .entry(checkpoint.0)
                    .or_insert_with(|| CheckpointSpan::started(checkpoint.0, *kind, at));
            }
            EngineEvent::CheckpointTriggered { checkpoint }
            | EngineEvent::SavepointTriggered { checkpoint } => {
                if let Some(span) = self.checkpoints.get_mut(&checkpoint.0) {
                    span.triggered_at = at;
                }
            }
            EngineEvent::CheckpointCompleted { checkpoint }
            | EngineEvent::SavepointCompleted { checkpoint, .. } => {
                if let Some(span) = self.checkpoints.get_mut(&checkpoint.0) {
                    span.ended_at = Some(at);
                    span.ending = Ending::Completed;
                }
            }
            EngineEvent::CompletionPersisting { checkpoint, files } => {
                self.sizes(checkpoint.0, files);
            }
            EngineEvent::CheckpointAborted { checkpoint, reason } => {
                if let Some(span) = self.checkpoints.get_mut(&checkpoint.0) {
                    if span.ending == Ending::Pending {
                        span.ended_at = Some(at);
                        span.ending = Ending::Aborted(format!("{reason:?}"));
                    }
                }
            }
            EngineEvent::BarrierReceived {
                task,
                attempt,
                checkpoint,
                ..
            } => {
                self.first_barrier
                    .entry((*task, *attempt, *checkpoint))
                    .or_insert(at);
            }
            EngineEvent::InFlightRecorded {
                checkpoint,
                records,
                in_flight,
                ..
            } => {
                if let Some(span) = self.checkpoints.get_mut(&checkpoint.0) {
                    span.in_flight_records += records;
                    span.in_flight_bytes += channel_state_bytes(in_flight);
                }
            }
            EngineEvent::SnapshotTaken {
                task,
                attempt,
                checkpoint,
                state,
            } => self.snapshot_taken(*task, *attempt, *checkpoint, state, at),
            EngineEvent::LocalSnapshotTaken {
                task,
                attempt,
                snapshot,
                state,
                ..
            } => {
                let bytes = codec::encode(Kind::TaskSnapshot, state).len() as u64;
                self.local.insert((*task, *attempt, *snapshot), (at, bytes));
            }
            EngineEvent::RecoveryLineFound {
                checkpoint,
                members,
                ..
            } => self.line_found(checkpoint.0, members),
            _ => self.see_job(event, at),
        }
    }

    /// The uploaded and full sizes of a checkpoint that consists of `files`.
    fn sizes(&mut self, checkpoint: u64, files: &[String]) {
        let Some(span) = self.checkpoints.get_mut(&checkpoint) else {
            return;
        };
        if files.is_empty() {
            return; // State in the JobManager's memory.
        }
        let sizes = files.iter().filter_map(|f| self.written.get(f));
        let (mut uploaded, mut full) = (0, 0);
        for &(bytes, at) in sizes {
            full += bytes;
            if at >= span.triggered_at {
                uploaded += bytes;
            }
        }
        span.uploaded_bytes = Some(uploaded);
        span.full_bytes = Some(full);
    }

    /// A recovery line is a checkpoint whose snapshots are its members: it counts from the
    /// oldest of them, as a coordinated checkpoint counts from its trigger.
    fn line_found(&mut self, checkpoint: u64, members: &[(TaskId, Attempt, CheckpointId)]) {
        let Some(span) = self.checkpoints.get_mut(&checkpoint) else {
            return;
        };
        let taken: Vec<(u64, u64)> = (members.iter())
            .filter_map(|member| self.local.get(member).copied())
            .collect();
        if let Some(oldest) = taken.iter().map(|(at, _)| *at).min() {
            span.triggered_at = oldest;
        }
        span.snapshots = taken.len() as u32;
        span.state_bytes = taken.iter().map(|(_, bytes)| bytes).sum();
    }

    /// A snapshot counts for its checkpoint, and ends its task's alignment.
    fn snapshot_taken(
        &mut self,
        task: TaskId,
        attempt: Attempt,
        checkpoint: CheckpointId,
        state: &OperatorState,
        at: u64,
    ) {
        let aligned_from = self.first_barrier.remove(&(task, attempt, checkpoint));
        if let Some(span) = self.checkpoints.get_mut(&checkpoint.0) {
            span.snapshots += 1;
            span.state_bytes += codec::encode(Kind::TaskSnapshot, state).len() as u64;
            if let Some(from) = aligned_from {
                let took = at - from;
                span.alignment_max = Some(span.alignment_max.map_or(took, |max| max.max(took)));
            }
        }
        if let Some(from) = aligned_from.filter(|&from| from < at) {
            self.timeline.alignments.push(Alignment {
                task: task.to_string(),
                checkpoint: checkpoint.0,
                from,
                to: at,
            });
        }
    }

    /// The job's failovers, deployments and status.
    fn see_job(&mut self, event: &EngineEvent, at: u64) {
        match event {
            EngineEvent::Failover { cause } => self.timeline.recoveries.push(Recovery {
                failed_at: at,
                cause: cause.clone(),
                restored: None,
                running_at: None,
            }),
            EngineEvent::Deployed { restored, .. } => {
                if let Some(recovery) = self.timeline.recoveries.last_mut() {
                    if recovery.running_at.is_none() {
                        recovery.restored = restored.map(|id| id.0);
                    }
                }
            }
            // A JobManager starting (over) has no pending checkpoints.
            EngineEvent::JobStatus {
                status: JobStatus::Initializing,
                ..
            } => end_pending(&mut self.checkpoints, at, "JobManager started over"),
            EngineEvent::JobStatus {
                status: JobStatus::Running,
                ..
            } => {
                if let Some(recovery) = self.timeline.recoveries.last_mut() {
                    recovery.running_at.get_or_insert(at);
                }
            }
            _ => {}
        }
    }

    fn crash(&mut self, node: Address, at: u64) {
        // A JobManager that dies takes its pending checkpoints with it (no abort
        // is traced): they end here.
        if node == Address::JobManager {
            end_pending(&mut self.checkpoints, at, "JobManager crashed");
        }
        let node = node.to_string();
        self.down
            .insert(node.clone(), self.timeline.downtimes.len());
        self.timeline.downtimes.push(Downtime {
            node,
            from: at,
            to: None,
        });
    }

    fn finish(mut self) -> Timeline {
        let mut checkpoints = self.retired;
        checkpoints.extend(self.checkpoints.into_values());
        // By id, and a repeated id's spans in the order they were taken.
        checkpoints.sort_by_key(|span| span.id);
        self.timeline.checkpoints = checkpoints;
        self.timeline
    }
}

impl CheckpointSpan {
    /// A checkpoint (or savepoint) whose id was just taken, pending.
    fn started(id: u64, kind: TriggerKind, at: u64) -> Self {
        CheckpointSpan {
            id,
            savepoint: kind == TriggerKind::Savepoint,
            triggered_at: at,
            ended_at: None,
            ending: Ending::Pending,
            alignment_max: None,
            snapshots: 0,
            state_bytes: 0,
            in_flight_records: 0,
            in_flight_bytes: 0,
            uploaded_bytes: None,
            full_bytes: None,
        }
    }
}

fn end_pending(checkpoints: &mut BTreeMap<u64, CheckpointSpan>, at: u64, why: &str) {
    for span in checkpoints.values_mut() {
        if span.ending == Ending::Pending {
            span.ended_at = Some(at);
            span.ending = Ending::Aborted(why.to_string());
        }
    }
}

/// A fault in a few words; crashes and restarts are drawn as downtimes instead.
fn fault_label(fault: &Fault) -> Option<String> {
    Some(match fault {
        Fault::Crash(_) | Fault::Restart(_) => return None,
        Fault::ClogLink { from, to } => format!("clog {from}→{to}"),
        Fault::UnclogLink { from, to } => format!("unclog {from}→{to}"),
        Fault::ClogNode(node) => format!("clog {node}"),
        Fault::UnclogNode(node) => format!("unclog {node}"),
        Fault::Partition { a, b } => format!("partition {a}|{b}"),
        Fault::HealPartition { a, b } => format!("heal {a}|{b}"),
        Fault::SlowLink { from, to, .. } => format!("slow {from}→{to}"),
        Fault::LoseCheckpointRpcs { from, to, .. } => format!("lose RPCs {from}→{to}"),
        Fault::SlowNode { node, .. } => format!("slow {node}"),
        Fault::DiskFaults(_) => "disk faults".to_string(),
        Fault::FailNextDiskOp { op, path_contains } => format!("fail {op:?} {path_contains}"),
        Fault::CorruptNextRead { path_contains } => format!("corrupt read {path_contains}"),
        Fault::LoseFiles { .. } => "lose files".to_string(),
        Fault::TriggerSavepoint => "savepoint asked".to_string(),
        Fault::CancelJob => "cancel".to_string(),
        Fault::CrashOnWrite {
            path_contains,
            node,
            ..
        } => format!("crash {node} on write {path_contains}"),
    })
}

/// What checkpointing cost a run and what it cost to recover, as CheckMate compares the
/// protocols (Siachamis et al., ICDE 2024): snapshots and control messages, the sender logs
/// and the domino effect of checkpointing without barriers, work lost at a failover, and how
/// long output waits to be committed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProtocolFigures {
    /// Snapshots taken: one per task and checkpoint with barriers, every local snapshot
    /// without.
    pub snapshots: u64,
    /// Local snapshots forced by a record with a higher index (communication-induced).
    pub forced_snapshots: u64,
    /// Control messages of checkpointing: barriers delivered and acknowledgements with
    /// barriers; local snapshots reported without (the notifications are the same for both).
    pub control_messages: u64,
    /// Per completed recovery line, the sender logs its members hold (bytes, encoded).
    pub log_bytes: Vec<u64>,
    /// Per completed recovery line, the local snapshots rolled past (the domino effect).
    pub rolled_back: Vec<u64>,
    /// Per transaction a sink committed, from the snapshot that pre-committed it to the
    /// commit (ms): how long output waits for its checkpoint or line to complete.
    pub commit_delay_ms: Vec<u64>,
    /// Per failover, from the snapshot the restore goes back to (a checkpoint's trigger, a
    /// line's oldest member, the job's start when none completed) to the failover (ms).
    pub work_lost_ms: Vec<u64>,
    /// When every task had processed all its input (ms), in the attempt that got there last:
    /// the throughput the protocol allows, without the wait for the final checkpoint.
    pub input_done_at: Option<u64>,
}

impl ProtocolFigures {
    /// The figures of a run, read off its trace and its timeline (read off the same trace).
    pub fn from_trace(trace: &[TraceEntry], timeline: &Timeline) -> ProtocolFigures {
        let mut reader = ProtocolReader::default();
        for entry in trace {
            if let TraceEvent::Engine(event) = &entry.event {
                reader.see(event, entry.at.0);
            }
        }
        let mut figures = reader.figures;
        figures.work_lost_ms = work_lost(timeline, reader.running_since);
        figures
    }
}

/// [`ProtocolFigures`] being read off a trace, with what pairs events up.
#[derive(Default)]
struct ProtocolReader {
    figures: ProtocolFigures,
    /// Each local snapshot's sender logs (bytes).
    logs: BTreeMap<(TaskId, Attempt, CheckpointId), u64>,
    /// Transactions pre-committed and not yet committed, with when.
    pre_commits: BTreeMap<TransactionId, u64>,
    /// Lines numbered and not yet completed: snapshots rolled past and logs held.
    lines: BTreeMap<CheckpointId, (u64, u64)>,
    /// When the job first ran.
    running_since: Option<u64>,
}

impl ProtocolReader {
    fn see(&mut self, event: &EngineEvent, at: u64) {
        let figures = &mut self.figures;
        match event {
            EngineEvent::SnapshotTaken {
                checkpoint, state, ..
            } => {
                figures.snapshots += 1;
                pre_committed(state, *checkpoint, at, &mut self.pre_commits);
            }
            EngineEvent::LocalSnapshotTaken {
                task,
                attempt,
                snapshot,
                forced,
                state,
                logged,
                ..
            } => {
                figures.snapshots += 1;
                figures.control_messages += 1;
                figures.forced_snapshots += u64::from(*forced);
                self.logs
                    .insert((*task, *attempt, *snapshot), added_bytes(logged));
                pre_committed(state, *snapshot, at, &mut self.pre_commits);
            }
            EngineEvent::BarrierReceived { .. } | EngineEvent::Acknowledged { .. } => {
                figures.control_messages += 1
            }
            _ => self.see_lines_and_output(event, at),
        }
    }

    /// Lines numbered and completed, commits, and the job's progress.
    fn see_lines_and_output(&mut self, event: &EngineEvent, at: u64) {
        let figures = &mut self.figures;
        match event {
            EngineEvent::RecoveryLineFound {
                checkpoint,
                members,
                rolled_back,
            } => {
                let bytes = members.iter().filter_map(|m| self.logs.get(m)).sum();
                self.lines
                    .insert(*checkpoint, (u64::from(*rolled_back), bytes));
            }
            EngineEvent::CheckpointCompleted { checkpoint } => {
                if let Some((rolled_back, bytes)) = self.lines.remove(checkpoint) {
                    figures.rolled_back.push(rolled_back);
                    figures.log_bytes.push(bytes);
                }
            }
            EngineEvent::Committed { transaction, .. } => {
                if let Some(from) = self.pre_commits.remove(transaction) {
                    figures.commit_delay_ms.push(at - from);
                }
            }
            EngineEvent::JobStatus {
                status: JobStatus::Running,
                ..
            } => self.running_since = self.running_since.or(Some(at)),
            EngineEvent::InputConsumed { .. } => figures.input_done_at = Some(at),
            _ => {}
        }
    }
}

/// Per failover, the time back to what the restore returns to: the restored checkpoint's
/// trigger (a line's oldest member), or the job's start when none had completed.
fn work_lost(timeline: &Timeline, running_since: Option<u64>) -> Vec<u64> {
    let mut lost = Vec::new();
    for recovery in &timeline.recoveries {
        let from = match recovery.restored {
            Some(id) => (timeline.checkpoints.iter())
                .filter(|span| span.id == id && span.ending == Ending::Completed)
                .map(|span| span.triggered_at)
                .next_back(),
            None => running_since,
        };
        if let Some(from) = from.filter(|&from| from <= recovery.failed_at) {
            lost.push(recovery.failed_at - from);
        }
    }
    lost
}

/// Remembers when a 2PC sink's snapshot `checkpoint` pre-committed its transaction.
fn pre_committed(
    state: &OperatorState,
    checkpoint: CheckpointId,
    at: u64,
    pre_commits: &mut BTreeMap<TransactionId, u64>,
) {
    if let OperatorState::TwoPhaseCommitSink(sink) = state {
        for (pending, transaction) in &sink.pending {
            if *pending == checkpoint {
                pre_commits.entry(*transaction).or_insert(at);
            }
        }
    }
}

/// What channel state adds to a snapshot's encoded size.
fn channel_state_bytes(in_flight: &[InFlight]) -> u64 {
    added_bytes(&in_flight.to_vec())
}

/// What `value` adds to an encoded snapshot: its encoding less an empty one's.
fn added_bytes<T: serde::Serialize + Default>(value: &T) -> u64 {
    let encoded = |value: &T| codec::encode(Kind::TaskSnapshot, value).len();
    (encoded(value) - encoded(&T::default())) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use snapsim_core::ids::Tick;
    use snapsim_core::trace::CheckpointFailureReason;

    fn engine(at: u64, event: EngineEvent) -> TraceEntry {
        TraceEntry {
            at: Tick(at),
            node: Address::JobManager,
            event: TraceEvent::Engine(event),
        }
    }

    /// Why: one trace can take a checkpoint id twice (a job resumed from an earlier job's
    /// checkpoint takes the id of that job's last, cancelled one; a JobManager that crashed
    /// before its id counter was durable takes the id again): two checkpoints, two spans, and
    /// none ending before it starts.
    #[test]
    fn an_id_taken_again_is_a_span_of_its_own() {
        let id = CheckpointId(3);
        let started = EngineEvent::TriggerStarted {
            checkpoint: id,
            kind: TriggerKind::Periodic,
        };
        let triggered = EngineEvent::CheckpointTriggered { checkpoint: id };
        let trace = [
            engine(10, started.clone()),
            engine(11, triggered.clone()),
            engine(
                20,
                EngineEvent::CheckpointAborted {
                    checkpoint: id,
                    reason: CheckpointFailureReason::Expired,
                },
            ),
            engine(50, started),
            engine(51, triggered),
            engine(70, EngineEvent::CheckpointCompleted { checkpoint: id }),
        ];
        let spans = Timeline::from_trace(&trace).checkpoints;
        let times: Vec<(u64, Option<u64>)> =
            spans.iter().map(|s| (s.triggered_at, s.ended_at)).collect();
        assert_eq!(times, vec![(11, Some(20)), (51, Some(70))]);
    }
}
