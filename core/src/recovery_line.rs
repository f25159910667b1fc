//! Uncoordinated checkpointing's recovery line: each task snapshots on its own, and the
//! JobManager assembles a global state from the local snapshots it is told about.
//!
//! Every local snapshot counts, per data channel, the records its task has sent on each output
//! channel and processed from each input channel since the job began (cumulative, continued
//! across restores). A set of local snapshots, one per task, is a *consistent* global state when
//! no snapshot counts a record as processed that its sender's snapshot does not count as sent
//! (no orphan message). The records counted as sent and not as processed were in transit; the
//! sender keeps them in its log, and its snapshot holds the log, so a restore replays them.
//!
//! [`RecoveryLines::line`] finds the latest consistent set (the maximum consistent cut, as in
//! Wang's rollback-dependency tracking and the CheckMate study, Siachamis et al., ICDE 2024):
//! start from each task's latest snapshot, and while some channel has an orphan, roll its
//! receiver back to its latest snapshot that processed no more than the sender's snapshot sent.
//! Indices only decrease and the restored line is consistent, so it ends; the number of
//! snapshots rolled past is the domino effect.

use crate::ids::{Attempt, ChannelIndex, CheckpointId, TaskId};
use crate::record::Record;
use crate::storage::StateHandle;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// A data channel, named by its receiving end (unique in a job).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ChannelId {
    /// The task that receives on it.
    pub receiver: TaskId,
    /// Its index among the receiver's inputs.
    pub channel: ChannelIndex,
}

impl fmt::Display for ChannelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.receiver, self.channel)
    }
}

/// The records a local snapshot counts on its task's channels, cumulative since the job began.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelCounts {
    /// Per input channel, records processed (those still queued are not counted).
    pub received: Vec<(ChannelIndex, u64)>,
    /// Per output channel, records sent.
    pub sent: Vec<(ChannelId, u64)>,
}

impl ChannelCounts {
    /// Records processed from `channel`.
    pub fn received_on(&self, channel: ChannelIndex) -> u64 {
        let found = self.received.iter().find(|(c, _)| *c == channel);
        found.map_or(0, |(_, count)| *count)
    }

    /// Records sent on `channel`.
    pub fn sent_on(&self, channel: ChannelId) -> u64 {
        let found = self.sent.iter().find(|(c, _)| *c == channel);
        found.map_or(0, |(_, count)| *count)
    }
}

/// The records a sender keeps for one output channel: `records[i]` was sent as number
/// `first + i` (numbers start at 1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelLog {
    pub channel: ChannelId,
    pub first: u64,
    pub records: Vec<Record>,
}

/// A local snapshot that is durable, as its task reports it to the JobManager.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalSnapshot {
    pub task: TaskId,
    /// The attempt that took it.
    pub attempt: Attempt,
    /// Its number in the task's life (continued across restores).
    pub index: CheckpointId,
    /// Where it is.
    pub state: StateHandle,
    pub counts: ChannelCounts,
    /// Taken after the task processed all its input.
    pub after_end: bool,
}

/// A recovery line that completed, as every task learns of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineNotice {
    /// The checkpoint the line completed as.
    pub checkpoint: CheckpointId,
    /// Every member was taken after its task processed all its input: the job's last.
    pub final_line: bool,
    /// Each task's snapshot in the line.
    pub members: BTreeMap<TaskId, CheckpointId>,
    /// Per channel, the records its receiver's member processed: its sender needs to keep
    /// only the later ones.
    pub received: BTreeMap<ChannelId, u64>,
}

/// A consistent set of local snapshots, one per task.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    pub members: BTreeMap<TaskId, LocalSnapshot>,
    /// Local snapshots newer than the line's, which the line rolls past (the domino effect).
    pub rolled_back: u32,
}

impl Line {
    /// Each task's member index.
    pub fn indices(&self) -> BTreeMap<TaskId, CheckpointId> {
        (self.members.iter())
            .map(|(&task, snapshot)| (task, snapshot.index))
            .collect()
    }

    /// Whether every member was taken after its task's input ended, in `attempt`.
    pub fn is_final(&self, attempt: Attempt) -> bool {
        (self.members.values()).all(|s| s.after_end && s.attempt == attempt)
    }

    /// Per channel, the records its receiver's member processed.
    pub fn received(&self, channels: &[(TaskId, ChannelId)]) -> BTreeMap<ChannelId, u64> {
        let received = |c: ChannelId| self.members[&c.receiver].counts.received_on(c.channel);
        (channels.iter())
            .map(|&(_, channel)| (channel, received(channel)))
            .collect()
    }
}

/// The JobManager's view of the local snapshots of the running attempt, and the line they form.
///
/// Invariant: each task's snapshots are in increasing index order, and none is older than the
/// member of the last line completed or restored (the line never goes back).
#[derive(Clone, Debug)]
pub struct RecoveryLines {
    tasks: Vec<TaskId>,
    /// Every data channel, with its sender.
    channels: Vec<(TaskId, ChannelId)>,
    snapshots: BTreeMap<TaskId, Vec<LocalSnapshot>>,
    /// The line last completed or restored: a line is new if it differs.
    settled: BTreeMap<TaskId, CheckpointId>,
    /// Seeded bug [`crate::bugs::SeededBug::RecoveryLineIgnoresChannel`].
    ignores_first_channel: bool,
}

impl RecoveryLines {
    /// Lines over `tasks`, whose data channels are `channels` (sender, channel).
    pub fn new(tasks: Vec<TaskId>, channels: Vec<(TaskId, ChannelId)>) -> RecoveryLines {
        RecoveryLines {
            tasks,
            channels,
            snapshots: BTreeMap::new(),
            settled: BTreeMap::new(),
            ignores_first_channel: false,
        }
    }

    /// Seeded bug: the line search never looks at the first channel's counts.
    pub fn ignoring_first_channel(mut self) -> RecoveryLines {
        self.ignores_first_channel = true;
        self
    }

    /// Every data channel, with its sender.
    pub fn channels(&self) -> &[(TaskId, ChannelId)] {
        &self.channels
    }

    /// A new attempt starts: forget every snapshot (its tasks announce what they restored).
    pub fn reset(&mut self) {
        self.snapshots.clear();
        self.settled.clear();
    }

    /// A task reports a durable local snapshot; `restored` when it is the one the task restored
    /// (the line the attempt started from).
    pub fn add(&mut self, snapshot: LocalSnapshot, restored: bool) {
        let task = snapshot.task;
        let list = self.snapshots.entry(task).or_default();
        // A task announces what it restored before anything else (the links are FIFO), and
        // numbers its snapshots in increasing order.
        assert!(
            !restored || list.is_empty(),
            "{task} announced its restored snapshot after others"
        );
        assert!(
            list.last().is_none_or(|last| last.index < snapshot.index),
            "{task} reported snapshot {} out of order",
            snapshot.index
        );
        if restored {
            self.settled.insert(task, snapshot.index);
        }
        list.push(snapshot);
    }

    /// A line completed: the snapshots older than its members can never be in a line again.
    /// Returns those that were in no line (the previous line's members stay, the checkpoints
    /// that hold them decide).
    pub fn settle(&mut self, members: &BTreeMap<TaskId, CheckpointId>) -> Vec<StateHandle> {
        let mut unused = Vec::new();
        for (task, &index) in members {
            let previous = self.settled.insert(*task, index);
            let Some(list) = self.snapshots.get_mut(task) else {
                continue;
            };
            let (older, kept) = std::mem::take(list)
                .into_iter()
                .partition(|s| s.index < index);
            *list = kept;
            let never_in_a_line = older.into_iter().filter(|s| Some(s.index) != previous);
            unused.extend(never_in_a_line.map(|s| s.state));
        }
        unused
    }

    /// The latest consistent line, if every task has a snapshot in it and it differs from the
    /// line last completed or restored.
    pub fn new_line(&self) -> Option<Line> {
        let line = self.line()?;
        (line.indices() != self.settled).then_some(line)
    }

    /// The latest consistent line, if every task has a snapshot in it.
    pub fn line(&self) -> Option<Line> {
        let mut chosen: BTreeMap<TaskId, usize> = BTreeMap::new();
        for task in &self.tasks {
            let latest = self.snapshots.get(task)?.len().checked_sub(1)?;
            chosen.insert(*task, latest);
        }
        let skip = usize::from(self.ignores_first_channel);
        // Each pass rolls some receiver back by at least one snapshot, or ends.
        let snapshots: usize = self.snapshots.values().map(Vec::len).sum();
        for pass in 0.. {
            assert!(
                pass <= snapshots,
                "the line search rolls back at most every snapshot"
            );
            let mut rolled = false;
            for &(sender, channel) in self.channels.iter().skip(skip) {
                let sent = self.member(sender, &chosen).counts.sent_on(channel);
                let receiver = channel.receiver;
                let received = |s: &LocalSnapshot| s.counts.received_on(channel.channel);
                if received(self.member(receiver, &chosen)) <= sent {
                    continue;
                }
                let list = &self.snapshots[&receiver];
                let fits = list[..chosen[&receiver]]
                    .iter()
                    .rposition(|s| received(s) <= sent)?;
                chosen.insert(receiver, fits);
                rolled = true;
            }
            if !rolled {
                break;
            }
        }
        let rolled_back = (chosen.iter())
            .map(|(task, &at)| self.snapshots[task].len() - 1 - at)
            .sum::<usize>();
        let rolled_back = u32::try_from(rolled_back).expect("fewer snapshots than u32::MAX");
        let members = (chosen.iter())
            .map(|(&task, &at)| (task, self.snapshots[&task][at].clone()))
            .collect();
        Some(Line {
            members,
            rolled_back,
        })
    }

    fn member<'a>(&'a self, task: TaskId, chosen: &BTreeMap<TaskId, usize>) -> &'a LocalSnapshot {
        &self.snapshots[&task][chosen[&task]]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::StateLocation;

    const SOURCE: TaskId = TaskId(0);
    const SINK: TaskId = TaskId(1);
    const EDGE: ChannelId = ChannelId {
        receiver: SINK,
        channel: ChannelIndex(0),
    };

    fn snapshot(task: TaskId, index: u64, sent: u64, received: u64) -> LocalSnapshot {
        let counts = ChannelCounts {
            received: (task == SINK)
                .then_some((ChannelIndex(0), received))
                .into_iter()
                .collect(),
            sent: (task == SOURCE)
                .then_some((EDGE, sent))
                .into_iter()
                .collect(),
        };
        LocalSnapshot {
            task,
            attempt: Attempt(1),
            index: CheckpointId(index),
            state: StateHandle::new(StateLocation::InMemory(Vec::new()), &[]),
            counts,
            after_end: false,
        }
    }

    fn lines() -> RecoveryLines {
        RecoveryLines::new(vec![SOURCE, SINK], vec![(SOURCE, EDGE)])
    }

    #[test]
    fn a_receiver_ahead_of_its_sender_rolls_back_until_no_record_is_an_orphan() {
        let mut lines = lines();
        lines.add(snapshot(SOURCE, 1, 10, 0), false);
        for (index, received) in [(1, 4), (2, 9), (3, 12)] {
            lines.add(snapshot(SINK, index, 0, received), false);
        }
        let line = lines.line().expect("every task has a snapshot");
        assert_eq!(line.members[&SINK].index, CheckpointId(2));
        assert_eq!(line.rolled_back, 1);
        assert_eq!(line.received(lines.channels())[&EDGE], 9);
    }

    #[test]
    fn no_line_before_every_task_snapshotted_or_when_only_the_start_is_consistent() {
        let mut lines = lines();
        lines.add(snapshot(SINK, 1, 0, 3), false);
        assert_eq!(lines.line(), None);
        lines.add(snapshot(SOURCE, 1, 2, 0), false);
        assert_eq!(lines.line(), None, "the sink processed more than was sent");
    }

    #[test]
    fn a_settled_line_is_not_new_and_older_snapshots_go() {
        let mut lines = lines();
        lines.add(snapshot(SOURCE, 4, 10, 0), true);
        lines.add(snapshot(SINK, 7, 0, 8), true);
        assert_eq!(lines.new_line(), None);
        lines.add(snapshot(SINK, 8, 0, 10), false);
        lines.add(snapshot(SINK, 9, 0, 10), false);
        let line = lines.new_line().expect("the sink moved on");
        let unused = lines.settle(&line.indices());
        assert_eq!(lines.new_line(), None);
        assert_eq!(lines.snapshots[&SINK].len(), 1);
        assert_eq!(unused.len(), 1, "snapshot 8 was in no line; 7 was restored");
    }

    #[test]
    fn the_seeded_bug_accepts_an_orphan() {
        let mut lines = lines().ignoring_first_channel();
        lines.add(snapshot(SOURCE, 1, 2, 0), false);
        lines.add(snapshot(SINK, 1, 0, 3), false);
        let line = lines.line().expect("the orphan goes unseen");
        assert_eq!(line.members[&SINK].index, CheckpointId(1));
    }
}
