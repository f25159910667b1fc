//! A task's part in a checkpoint: barriers and markers through the barrier handler, the
//! snapshot taken and forwarded in one step, channel state recorded, the acknowledgement
//! once the snapshot is durable, declines with a cancellation marker downstream.

use super::{PendingSnapshot, Recording, Task, TaskEffect, TaskSnapshot, TaskStatus};
use crate::algorithm::Plugged;
use crate::barrier::{handler_for, BarrierActions, BarrierAligner, BarrierHandler, ChannelCapture};
use crate::bugs::SeededBug;
use crate::codec::{self, Kind};
use crate::config::{CheckpointConfig, CheckpointingMode};
use crate::ids::{ChannelIndex, CheckpointId};
use crate::job::{OperatorKind, TaskSpec};
use crate::lsm::{self, IncrementalSnapshot};
use crate::operator::{Emitted, OperatorState, SinkWait};
use crate::probes::{self, Probe};
use crate::record::{CheckpointBarrier, InFlight, StreamEvent};
use crate::sink::SinkRequest;
use crate::status::CheckpointFailureReason;
use crate::storage::{StateHandle, StoragePath};
use crate::trace::EngineEvent;
use std::collections::{BTreeMap, BTreeSet};

/// The task's snapshot algorithm, with the seeded bugs that live in it.
pub(super) fn barrier_handler(
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

impl Task {
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
        match self.pending.remove(&checkpoint) {
            // A local snapshot is no checkpoint of the JobManager's: it is just not reported.
            Some(pending) if pending.local.is_some() => {}
            Some(_) => self.decline(checkpoint, CheckpointFailureReason::AsyncException, out),
            None => {}
        }
    }

    /// A barrier on `channel`: handled as it arrived (`overtook`, ahead of the channel's
    /// queue) or in channel order.
    pub(super) fn on_barrier(
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

    pub(super) fn handler_mut(&mut self) -> &mut dyn BarrierHandler {
        self.handler
            .as_deref_mut()
            .expect("tasks with inputs have a barrier handler")
    }

    pub(super) fn apply(&mut self, actions: BarrierActions, out: &mut Vec<TaskEffect>) {
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
    pub(super) fn decline_and_cancel(
        &mut self,
        checkpoint: CheckpointId,
        reason: CheckpointFailureReason,
        out: &mut Vec<TaskEffect>,
    ) {
        self.decline(checkpoint, reason, out);
        self.cancel_downstream(checkpoint, out);
    }

    /// Forgets what this task holds of `checkpoint`, which it aborts.
    pub(super) fn abort_local(&mut self, checkpoint: CheckpointId) {
        if self.recording.as_ref().map(Recording::checkpoint) == Some(checkpoint) {
            self.recording = None;
        }
        self.pending.remove(&checkpoint);
    }

    /// Every channel delivered the barrier of `checkpoint`: store its snapshot with the
    /// recorded channel state.
    pub(super) fn store_recording(&mut self, checkpoint: CheckpointId, out: &mut Vec<TaskEffect>) {
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
    pub(super) fn start_recording(
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
    pub(super) fn perform_checkpoint(
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
        let (state, incremental, awaiting_log) = self.split_keyed(barrier, state, out);
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
                awaiting_log,
                local: None,
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
    pub(super) fn skip_checkpoint(&mut self, checkpoint: CheckpointId, out: &mut Vec<TaskEffect>) {
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
    pub(super) fn snapshot_sink(
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
        self.emit(&mut emitted, out);
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
    pub(super) fn operator_state_to_snapshot(&self) -> OperatorState {
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

    /// With the incremental or the changelog backend, keyed state leaves the task's own file
    /// for shared runs: returns the state left in the file, the runs to reference and upload
    /// with it, and the changelog segments it waits for (the last one's upload is pushed to
    /// `out`, ahead of the snapshot's own file). Savepoints are always full and self-contained.
    pub(super) fn split_keyed(
        &mut self,
        barrier: CheckpointBarrier,
        state: OperatorState,
        out: &mut Vec<TaskEffect>,
    ) -> (OperatorState, IncrementalSnapshot, BTreeSet<u64>) {
        let keyed = (self.lsm.is_some() || self.changelog.is_some()) && !barrier.savepoint;
        let Some((skeleton, entries)) = keyed.then(|| lsm::split(&state)).flatten() else {
            return (state, IncrementalSnapshot::default(), BTreeSet::new());
        };
        if let Some(lsm) = &mut self.lsm {
            return (
                skeleton,
                lsm.snapshot(barrier.id, &entries),
                BTreeSet::new(),
            );
        }
        let changelog = self.changelog.as_mut().expect("one of the two backends");
        let snapshot = changelog.snapshot(&entries);
        out.extend(snapshot.upload.map(TaskEffect::UploadChangelog));
        let runs = IncrementalSnapshot {
            uploads: Vec::new(),
            runs: snapshot.runs,
        };
        (skeleton, runs, snapshot.awaiting)
    }

    pub(super) fn acknowledge_if_ready(
        &mut self,
        checkpoint: CheckpointId,
        out: &mut Vec<TaskEffect>,
    ) {
        let pending = &self.pending[&checkpoint];
        if pending.awaiting_sink.is_some() || !pending.awaiting_log.is_empty() {
            return;
        }
        let Some(state) = pending.stored.clone() else {
            return;
        };
        let pending = self.pending.remove(&checkpoint).expect("present");
        if let Some(local) = pending.local {
            self.report_local(checkpoint, state, local, out);
            return;
        }
        out.push(TaskEffect::Acknowledge { checkpoint, state });
        out.push(TaskEffect::Trace(EngineEvent::Acknowledged {
            task: self.spec.id,
            checkpoint,
        }));
    }

    pub(super) fn decline(
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

    /// Tells every downstream task not to wait for this task's barrier of `checkpoint`.
    pub(super) fn cancel_downstream(&self, checkpoint: CheckpointId, out: &mut Vec<TaskEffect>) {
        if self.spec.has_bug(SeededBug::DeclineWithoutMarker) {
            return; // Seeded bug: downstream keeps waiting for a barrier that never comes.
        }
        self.broadcast(&StreamEvent::CancelMarker(checkpoint), out);
    }
}
