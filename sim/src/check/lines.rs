//! Recovery lines read off the trace (checkpointing without barriers): the local snapshots
//! tasks took, and the global state each line the JobManager completed stands for.
//!
//! The checkers do not take the JobManager's word that a line is consistent: from the counts and
//! logs in the members' own trace events, a line is judged channel by channel. A receiver's
//! member must not count more records as processed than its sender's member counts as sent (an
//! orphan), and the sender's log must hold every record in between (in transit: a restore
//! replays them). The records in transit are the line's channel state, recorded at their
//! receivers as an unaligned checkpoint's in-flight records are.

use crate::trace::{TraceEntry, TraceEvent};
use snapsim_core::ids::{Attempt, CheckpointId, TaskId};
use snapsim_core::job::ExecutionPlan;
use snapsim_core::operator::OperatorState;
use snapsim_core::record::Record;
use snapsim_core::recovery_line::{ChannelCounts, ChannelId, ChannelLog};
use snapsim_core::trace::EngineEvent;
use std::collections::BTreeMap;

/// One local snapshot's trace event, taken apart.
#[derive(Clone, Copy, Debug)]
pub(super) struct Member<'r> {
    pub entry: &'r TraceEntry,
    pub state: &'r OperatorState,
    pub counts: &'r ChannelCounts,
    pub logged: &'r [ChannelLog],
}

/// A line as the trace shows it: each task's member, and the records in transit to each task.
#[derive(Debug, Default)]
pub(super) struct LineState<'r> {
    pub members: BTreeMap<TaskId, Member<'r>>,
    pub in_transit: BTreeMap<TaskId, Vec<&'r Record>>,
    /// Per sender, how many records it has in transit (a restore must replay them).
    pub to_replay: BTreeMap<TaskId, u64>,
    /// Why the line is not a consistent global state, one message per channel.
    pub broken: Vec<String>,
}

/// The local snapshots of a run so far, by task, attempt and index.
#[derive(Debug, Default)]
pub(super) struct LocalSnapshots<'r> {
    taken: BTreeMap<(TaskId, Attempt, CheckpointId), Member<'r>>,
}

impl<'r> LocalSnapshots<'r> {
    /// Remembers `entry` if it is a local snapshot.
    pub fn observe(&mut self, entry: &'r TraceEntry) {
        if let TraceEvent::Engine(EngineEvent::LocalSnapshotTaken {
            task,
            attempt,
            snapshot,
            state,
            counts,
            logged,
            ..
        }) = &entry.event
        {
            let member = Member {
                entry,
                state,
                counts,
                logged,
            };
            self.taken.insert((*task, *attempt, *snapshot), member);
        }
    }

    /// The local snapshot `index` that `task` took in `attempt`, if the trace has it.
    pub fn member(
        &self,
        task: TaskId,
        attempt: Attempt,
        index: CheckpointId,
    ) -> Option<Member<'r>> {
        self.taken.get(&(task, attempt, index)).copied()
    }

    /// The global state of the line made of `members`, judged channel by channel.
    pub fn line(
        &self,
        plan: &ExecutionPlan,
        checkpoint: CheckpointId,
        members: &[(TaskId, Attempt, CheckpointId)],
    ) -> LineState<'r> {
        let mut line = LineState::default();
        for &(task, attempt, index) in members {
            match self.member(task, attempt, index) {
                Some(member) => {
                    line.members.insert(task, member);
                }
                None => line.broken.push(format!(
                    "{checkpoint}: its member {index} of {task} ({attempt}) was never taken"
                )),
            }
        }
        for sender in &plan.tasks {
            for output in &sender.outputs {
                for &(receiver, channel) in &output.targets {
                    let channel = ChannelId { receiver, channel };
                    line.judge_channel(checkpoint, sender.id, channel);
                }
            }
        }
        line
    }
}

impl<'r> LineState<'r> {
    /// The records in transit on `channel` from `sender`: those its member sent and the
    /// receiver's member had not processed, taken from the sender's log.
    fn judge_channel(&mut self, checkpoint: CheckpointId, sender: TaskId, channel: ChannelId) {
        let (Some(from), Some(to)) = (
            self.members.get(&sender),
            self.members.get(&channel.receiver),
        ) else {
            return;
        };
        let sent = from.counts.sent_on(channel);
        let received = to.counts.received_on(channel.channel);
        if received > sent {
            self.broken.push(format!(
                "{checkpoint}: {} processed {received} records on {} but its sender {sender}'s member sent only {sent} (orphan records)",
                channel.receiver, channel.channel
            ));
            return;
        }
        let log = from.logged.iter().find(|log| log.channel == channel);
        let first = log.map_or(sent + 1, |log| log.first);
        if first > received + 1 {
            self.broken.push(format!(
                "{checkpoint}: records {}–{} in transit on {channel} are not in {sender}'s log (it starts at {first})",
                received + 1,
                sent
            ));
            return;
        }
        let records = log.map_or(&[][..], |log| &log.records[..]);
        let in_transit = (received + 1 - first) as usize..(sent + 1 - first) as usize;
        match records.get(in_transit) {
            Some(records) => {
                *self.to_replay.entry(sender).or_default() += records.len() as u64;
                (self.in_transit.entry(channel.receiver).or_default()).extend(records)
            }
            None => self.broken.push(format!(
                "{checkpoint}: {sender}'s log for {channel} ends before the {sent} records its member counts as sent"
            )),
        }
    }
}
