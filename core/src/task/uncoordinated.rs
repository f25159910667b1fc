//! A task that checkpoints without barriers (uncoordinated and communication-induced
//! checkpointing): it numbers and logs every record it sends, counts the records it processes,
//! snapshots on its own timer (or, communication-induced, when a record carries a higher
//! snapshot index than its own), replays its log after a restore, and drops the replayed
//! records it had already processed. The JobManager assembles recovery lines from the local
//! snapshots (`crate::recovery_line`).

use super::{PendingSnapshot, Task, TaskEffect, TaskSnapshot, TaskStatus};
use crate::bugs::SeededBug;
use crate::codec::{self, Kind};
use crate::config::LoggingProtocol;
use crate::ids::{Attempt, ChannelIndex, CheckpointId, TaskId, Tick};
use crate::job::TaskSpec;
use crate::probes::{self, Probe};
use crate::record::{LoggedRecord, Record, StreamEvent};
use crate::recovery_line::{ChannelCounts, ChannelId, ChannelLog, LineNotice, LocalSnapshot};
use crate::storage::StateHandle;
use crate::trace::EngineEvent;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// A local snapshot as it is stored: the task's snapshot, its channel counts and its log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoggedSnapshot {
    pub snapshot: TaskSnapshot,
    /// The attempt that took it.
    pub attempt: Attempt,
    pub counts: ChannelCounts,
    /// Per output channel, the records sent and not yet known processed in a completed line.
    pub log: Vec<ChannelLog>,
    /// Taken after the task processed all its input.
    pub after_end: bool,
}

/// One output channel's count and log.
#[derive(Debug)]
struct OutputLog {
    channel: ChannelId,
    /// Records sent on it since the job began.
    sent: u64,
    /// The records after the last completed line's count, oldest first: `records[i]` is
    /// number `sent - records.len() + 1 + i`.
    records: VecDeque<Record>,
}

impl OutputLog {
    fn first(&self) -> u64 {
        self.sent - self.records.len() as u64 + 1
    }

    /// Drops the records its receiver processed in a completed line (`received` of them).
    /// The log holds everything after an earlier line's count, and lines only advance.
    fn truncate(&mut self, received: u64) {
        let first = self.first();
        assert!(
            received + 1 >= first && received <= self.sent,
            "{}: a line says {received} records were processed, the log holds {first}–{}",
            self.channel,
            self.sent
        );
        self.records.drain(..(received + 1 - first) as usize);
    }
}

/// A task's part in checkpointing without barriers.
///
/// Invariant: `arrived[c]` counts every record accepted on input channel `c`; those not yet
/// processed are still in the channel's queue.
#[derive(Debug)]
pub(super) struct LocalCheckpointing {
    protocol: LoggingProtocol,
    interval: u64,
    next_snapshot: Option<Tick>,
    /// The index of the latest local snapshot (0: none yet).
    index: CheckpointId,
    /// Per output of the task spec, the position of its first target in `outputs`.
    output_base: Vec<usize>,
    outputs: Vec<OutputLog>,
    arrived: Vec<u64>,
    /// Seeded bug [`SeededBug::LogReplaySkipped`].
    skips_replay: bool,
    /// Seeded bug [`SeededBug::ForcedSnapshotAfterRecord`].
    forces_late: bool,
}

impl LocalCheckpointing {
    pub(super) fn new(spec: &TaskSpec, protocol: LoggingProtocol, interval: u64) -> Self {
        // Output `o`'s targets start at `output_base[o]` in `outputs` (output channels in order).
        let output_base = (spec.outputs.iter())
            .scan(0, |next, output| {
                let base = *next;
                *next += output.targets.len();
                Some(base)
            })
            .collect();
        let outputs = (spec.output_channels())
            .map(|channel| OutputLog {
                channel,
                sent: 0,
                records: VecDeque::new(),
            })
            .collect();
        LocalCheckpointing {
            protocol,
            interval,
            next_snapshot: None,
            index: CheckpointId(0),
            output_base,
            outputs,
            arrived: vec![0; spec.inputs.len()],
            skips_replay: spec.has_bug(SeededBug::LogReplaySkipped),
            forces_late: spec.has_bug(SeededBug::ForcedSnapshotAfterRecord),
        }
    }

    /// When the snapshot after `now` is due: every interval, give or take a fifth, varied by
    /// task and index so that tasks do not snapshot in step (CheckMate draws each interval at
    /// random; the engine takes no randomness).
    fn schedule(&mut self, task: TaskId, now: Tick) {
        let spread = (2 * self.interval / 5).max(1);
        let mix = u64::from(task.0) * 7919 + self.index.0 * 104_729;
        let delay = self.interval - self.interval / 5 + mix % spread;
        self.next_snapshot = Some(now.after(delay.max(1)));
    }

    /// The index of the next basic snapshot.
    pub(super) fn next_index(&self) -> CheckpointId {
        self.index.next()
    }

    /// Numbers and logs a record sent to `position` of output `output`.
    pub(super) fn log_record(
        &mut self,
        output: usize,
        position: usize,
        record: Record,
    ) -> StreamEvent {
        let log = &mut self.outputs[self.output_base[output] + position];
        log.sent += 1;
        log.records.push_back(record);
        StreamEvent::Logged(Box::new(LoggedRecord {
            sequence: log.sent,
            index: self.index.0,
            record,
        }))
    }

    fn counts(&self, inputs: &[super::InputChannel]) -> ChannelCounts {
        let received = (self.arrived.iter().zip(inputs).enumerate())
            .map(|(index, (&arrived, input))| {
                let queued = (input.queue.iter())
                    .filter(|e| matches!(e, StreamEvent::Record(_)))
                    .count() as u64;
                (ChannelIndex(index as u16), arrived - queued)
            })
            .collect();
        let sent = self.outputs.iter().map(|o| (o.channel, o.sent)).collect();
        ChannelCounts { received, sent }
    }

    fn log(&self) -> Vec<ChannelLog> {
        (self.outputs.iter())
            .map(|o| ChannelLog {
                channel: o.channel,
                first: o.first(),
                records: o.records.iter().copied().collect(),
            })
            .collect()
    }
}

impl Task {
    /// Starts the local snapshot timer of a task that checkpoints without barriers.
    pub fn schedule_local_snapshots(&mut self, now: Tick) {
        let task = self.spec.id;
        if let Some(local) = self.local.as_mut() {
            local.schedule(task, now);
        }
    }

    /// The time of the next local snapshot, while the task has one to take.
    pub(super) fn next_local_snapshot(&self) -> Option<Tick> {
        let local = self.local.as_ref()?;
        (self.status < TaskStatus::Committing).then_some(local.next_snapshot?)
    }

    /// The local snapshot timer: snapshot if it is due.
    pub(super) fn on_local_timer(&mut self, now: Tick, out: &mut Vec<TaskEffect>) {
        if self.next_local_snapshot().is_some_and(|at| at <= now) {
            let index = (self.local.as_ref())
                .expect("a task with a local snapshot time checkpoints without barriers")
                .next_index();
            self.take_local_snapshot(index, false, out);
        }
    }

    /// A numbered record arrived on `channel`: the record to queue, or none for a replayed
    /// one the task already processed. Communication-induced, a record sent after a snapshot
    /// with a higher index than the task's own forces a snapshot first.
    pub(super) fn accept_logged(
        &mut self,
        channel: ChannelIndex,
        logged: LoggedRecord,
        out: &mut Vec<TaskEffect>,
    ) -> Option<StreamEvent> {
        let local = self
            .local
            .as_mut()
            .expect("only logging tasks receive numbered records");
        let arrived = &mut local.arrived[channel.index()];
        if logged.sequence <= *arrived {
            return None; // Replayed, and processed before the snapshot the task restored.
        }
        assert_eq!(
            logged.sequence,
            *arrived + 1,
            "{} {channel}: record {} after {} (channels are FIFO and lose nothing within an attempt)",
            self.spec.id,
            logged.sequence,
            arrived
        );
        let forced = local.protocol == LoggingProtocol::CommunicationInduced
            && logged.index > local.index.0
            && self.status < TaskStatus::Committing;
        if local.forces_late {
            // Seeded bug: the record counts as arrived (so as processed) before the snapshot.
            *arrived = logged.sequence;
        }
        if forced {
            // Before the record counts as arrived: the snapshot must not hold it.
            probes::hit(Probe::ForcedSnapshot);
            self.take_local_snapshot(CheckpointId(logged.index), true, out);
        }
        let local = self.local.as_mut().expect("a logging task");
        local.arrived[channel.index()] = logged.sequence;
        Some(StreamEvent::Record(logged.record))
    }

    /// Takes local snapshot `index` and stores it; the JobManager learns of it once it is
    /// durable (and a 2PC sink's pre-commit is confirmed).
    pub(super) fn take_local_snapshot(
        &mut self,
        index: CheckpointId,
        forced: bool,
        out: &mut Vec<TaskEffect>,
    ) {
        let latest = (self.local.as_ref())
            .expect("only logging tasks snapshot on their own")
            .index;
        assert!(
            index > latest,
            "{} snapshots {index} after {latest}",
            self.spec.id
        );
        let awaiting_sink = self.snapshot_sink(index, out);
        let state = self.operator_state_to_snapshot();
        let local = self.local.as_mut().expect("checked above");
        local.index = index;
        local.schedule(self.spec.id, self.now);
        let counts = local.counts(&self.inputs);
        let log = local.log();
        let after_end = self.status >= TaskStatus::DataFinished;
        out.push(TaskEffect::Trace(EngineEvent::LocalSnapshotTaken {
            task: self.spec.id,
            attempt: self.attempt,
            snapshot: index,
            forced,
            state: Box::new(state.clone()),
            counts: Box::new(counts.clone()),
            logged: log.clone().into_boxed_slice(),
        }));
        let stored = LoggedSnapshot {
            snapshot: TaskSnapshot {
                task: self.spec.id,
                checkpoint: index,
                state,
                shared: Vec::new(),
                in_flight: Vec::new(),
            },
            attempt: self.attempt,
            counts: counts.clone(),
            log,
            after_end,
        };
        self.pending.insert(
            index,
            PendingSnapshot {
                awaiting_sink,
                local: Some((counts, after_end)),
                ..PendingSnapshot::default()
            },
        );
        let bytes = codec::encode(Kind::LoggedSnapshot, &stored);
        out.push(TaskEffect::StoreLocal { index, bytes });
    }

    /// The local snapshot `index` is durable at `state` and confirmed by the sink: tell the
    /// JobManager.
    pub(super) fn report_local(
        &self,
        index: CheckpointId,
        state: StateHandle,
        (counts, after_end): (ChannelCounts, bool),
        out: &mut Vec<TaskEffect>,
    ) {
        let snapshot = LocalSnapshot {
            task: self.spec.id,
            attempt: self.attempt,
            index,
            state,
            counts,
            after_end,
        };
        out.push(TaskEffect::LocalSnapshotDone {
            snapshot: Box::new(snapshot),
            restored: false,
        });
    }

    /// A recovery line completed: commit up to this task's member, and keep in the log only
    /// what the line's receivers had not processed.
    pub fn on_line_complete(&mut self, notice: &LineNotice, out: &mut Vec<TaskEffect>) {
        let member =
            *(notice.members.get(&self.spec.id)).expect("a line has every task's snapshot");
        if let Some(local) = self.local.as_mut() {
            for log in &mut local.outputs {
                log.truncate(notice.received.get(&log.channel).copied().unwrap_or(0));
            }
        }
        self.on_notify_complete(member, notice.final_line, out);
    }

    /// Restores a task from its local snapshot in the line `checkpoint`: state, counts and log;
    /// then it sends its log again, ahead of anything new (each receiver drops what it had
    /// processed), and announces the snapshot to the JobManager.
    pub(super) fn restore_local(
        &mut self,
        stored: LoggedSnapshot,
        handle: &StateHandle,
        out: &mut Vec<TaskEffect>,
    ) {
        let index = stored.snapshot.checkpoint;
        let local = self.local.as_mut().expect("a logging task");
        local.index = index;
        for (channel, received) in &stored.counts.received {
            local.arrived[channel.index()] = *received;
        }
        for log in &stored.log {
            let output = (local.outputs.iter_mut())
                .find(|o| o.channel == log.channel)
                .expect("the snapshot's channels are the task's");
            output.sent = log.first - 1 + log.records.len() as u64;
            assert_eq!(
                output.sent,
                stored.counts.sent_on(log.channel),
                "{}'s log for {} ends where its count says",
                self.spec.id,
                log.channel
            );
            output.records = log.records.iter().copied().collect();
        }
        self.last_checkpoint = index;
        self.latest_notified = index;
        self.replay_log(out);
        let snapshot = LocalSnapshot {
            task: self.spec.id,
            attempt: stored.attempt,
            index,
            state: handle.clone(),
            counts: stored.counts,
            after_end: stored.after_end,
        };
        out.push(TaskEffect::LocalSnapshotDone {
            snapshot: Box::new(snapshot),
            restored: true,
        });
    }

    /// Sends every logged record again, in order, on its channel.
    fn replay_log(&mut self, out: &mut Vec<TaskEffect>) {
        let local = self.local.as_ref().expect("a logging task");
        let mut channels = Vec::new();
        for (position, log) in local.outputs.iter().enumerate() {
            if log.records.is_empty() || (local.skips_replay && position == 0) {
                continue; // Seeded bug (the second case): the first channel's log is lost.
            }
            let (target, channel) = (log.channel.receiver, log.channel.channel);
            for (offset, record) in log.records.iter().enumerate() {
                let event = StreamEvent::Logged(Box::new(LoggedRecord {
                    sequence: log.first() + offset as u64,
                    index: local.index.0,
                    record: *record,
                }));
                out.push(TaskEffect::Emit {
                    target,
                    channel,
                    event,
                });
            }
            channels.push((log.channel, log.first(), log.sent));
        }
        let records = (channels.iter())
            .map(|(_, first, last)| last + 1 - first)
            .sum();
        if records > 0 {
            probes::hit(Probe::LogReplayed);
        }
        out.push(TaskEffect::Trace(EngineEvent::LogReplayed {
            task: self.spec.id,
            attempt: self.attempt,
            records,
            channels,
        }));
    }
}

/// The operator state of a stored local snapshot, for a restore.
pub(super) fn decode_local(bytes: &[u8]) -> Result<LoggedSnapshot, codec::DecodeError> {
    codec::decode(Kind::LoggedSnapshot, bytes)
}
