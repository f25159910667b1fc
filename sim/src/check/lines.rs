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
use std::collections::{BTreeMap, BTreeSet};

/// Records on a channel by their numbers, first to last.
pub(super) type RecordRange = (ChannelId, u64, u64);

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
    /// Per sender, the numbers of the first and last record it has in transit on each channel
    /// (a restore must replay them).
    pub to_replay: BTreeMap<TaskId, Vec<RecordRange>>,
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
        for (sender, channel) in plan.channels() {
            line.judge_channel(checkpoint, sender, channel);
        }
        line
    }
}

/// Why `to`'s snapshot and its sender `from`'s are not consistent on `channel`, if they are
/// not: the receiver processed records the sender had not sent (orphans).
fn orphans(from: &Member, to: &Member, sender: TaskId, channel: ChannelId) -> Option<String> {
    let sent = from.counts.sent_on(channel);
    let received = to.counts.received_on(channel.channel);
    (received > sent).then(|| {
        format!(
            "{} processed {received} records on {} but its sender {sender}'s member sent only {sent} (orphan records)",
            channel.receiver, channel.channel
        )
    })
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
        if let Some(orphans) = orphans(from, to, sender, channel) {
            self.broken.push(format!("{checkpoint}: {orphans}"));
            return;
        }
        let sent = from.counts.sent_on(channel);
        let received = to.counts.received_on(channel.channel);
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
                if received < sent {
                    let due = (channel, received + 1, sent);
                    self.to_replay.entry(sender).or_default().push(due);
                }
                (self.in_transit.entry(channel.receiver).or_default()).extend(records)
            }
            None => self.broken.push(format!(
                "{checkpoint}: {sender}'s log for {channel} ends before the {sent} records its member counts as sent"
            )),
        }
    }
}

/// The guarantee of communication-induced checkpointing (the index-based protocol of
/// Briatico, Ciuffoletti and Simoncini, 1984): in each attempt, for every index n, the first
/// local snapshot of each task with an index of at least n form a consistent global state (no
/// snapshot is useless, which bounds the domino effect). An attempt restored from a line starts
/// from the line's members.
#[derive(Debug, Default)]
pub(super) struct IndexLines<'r> {
    /// Per attempt, per task, its snapshots in the order taken (the restored member first).
    attempts: BTreeMap<Attempt, BTreeMap<TaskId, Vec<Member<'r>>>>,
    /// Each completed line's members, by checkpoint.
    lines: BTreeMap<CheckpointId, &'r [(TaskId, Attempt, CheckpointId)]>,
}

impl<'r> IndexLines<'r> {
    /// Remembers what `entry` says of snapshots and lines; `local` has observed it already.
    pub fn observe(&mut self, entry: &'r TraceEntry, local: &LocalSnapshots<'r>) {
        let TraceEvent::Engine(event) = &entry.event else {
            return;
        };
        match event {
            EngineEvent::LocalSnapshotTaken {
                task,
                attempt,
                snapshot,
                ..
            } => {
                let member = local.member(*task, *attempt, *snapshot).expect("observed");
                let tasks = self.attempts.entry(*attempt).or_default();
                tasks.entry(*task).or_default().push(member);
            }
            EngineEvent::RecoveryLineFound {
                checkpoint,
                members,
                ..
            } => {
                self.lines.insert(*checkpoint, members);
            }
            EngineEvent::Deployed {
                attempt,
                restored: Some(checkpoint),
            } => {
                let Some(members) = self.lines.get(checkpoint) else {
                    return; // Restored from a path: another run's snapshots.
                };
                let tasks = self.attempts.entry(*attempt).or_default();
                for &(task, taken_in, index) in members.iter() {
                    if let Some(member) = local.member(task, taken_in, index) {
                        tasks.entry(task).or_default().insert(0, member);
                    }
                }
            }
            _ => {}
        }
    }

    /// Why some index's line is not consistent, one message per attempt at most.
    pub fn broken(&self, plan: &ExecutionPlan) -> Vec<(String, Vec<Member<'r>>)> {
        let mut broken = Vec::new();
        let channels = plan.channels();
        for (attempt, tasks) in &self.attempts {
            let indices: BTreeSet<CheckpointId> = (tasks.values().flatten())
                .map(|member| member_index(member.entry))
                .collect();
            for n in indices {
                let first =
                    |task: TaskId| (tasks.get(&task)?.iter()).find(|m| member_index(m.entry) >= n);
                let line: Option<BTreeMap<TaskId, Member<'r>>> = (plan.tasks.iter())
                    .map(|t| Some((t.id, *first(t.id)?)))
                    .collect();
                let Some(line) = line else {
                    continue;
                };
                let orphan = (channels.iter()).find_map(|&(sender, channel)| {
                    orphans(&line[&sender], &line[&channel.receiver], sender, channel)
                });
                if let Some(why) = orphan {
                    let index = n.0;
                    let members = line.into_values().collect();
                    broken.push((format!("in {attempt}, index {index}: {why}"), members));
                    break;
                }
            }
        }
        broken
    }
}

/// The index of a local snapshot's event.
fn member_index(entry: &TraceEntry) -> CheckpointId {
    match &entry.event {
        TraceEvent::Engine(EngineEvent::LocalSnapshotTaken { snapshot, .. }) => *snapshot,
        _ => unreachable!("members are local snapshots"),
    }
}
