//! Barrier handling at a task's inputs: the pluggable snapshot algorithm.
//!
//! A [`BarrierHandler`] sees every barrier and cancellation marker of a task and decides when
//! the task snapshots, which checkpoints it aborts, and which channels are blocked. The task
//! stays the same for every algorithm; a researcher adds one by implementing this trait.
//! Built in: [`BarrierAligner`] (EXACTLY_ONCE, reference §D) and [`BarrierTracker`]
//! (AT_LEAST_ONCE, reference §E).

use crate::config::CheckpointingMode;
use crate::ids::{ChannelIndex, CheckpointId};
use crate::messages::CheckpointFailureReason;
use crate::record::CheckpointBarrier;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// The most partially seen checkpoints the tracker keeps (Flink's `MAX_CHECKPOINTS_TO_TRACK`).
pub const TRACKED_CHECKPOINTS_MAX: usize = 50;

/// What the task must do after the handler saw a barrier or marker, in this order: first the
/// aborts (decline and forward a cancellation marker each), then the snapshot.
#[must_use]
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BarrierActions {
    /// Checkpoints to abort locally, with the reason to decline them with.
    pub aborted: Vec<(CheckpointId, CheckpointFailureReason)>,
    /// Take the snapshot for this barrier and forward it.
    pub triggered: Option<CheckpointBarrier>,
}

impl BarrierActions {
    fn none() -> BarrierActions {
        BarrierActions::default()
    }

    fn trigger(barrier: CheckpointBarrier) -> BarrierActions {
        BarrierActions {
            aborted: Vec::new(),
            triggered: Some(barrier),
        }
    }
}

/// The contract between a task and its snapshot algorithm.
///
/// The task calls the handler for every barrier and marker in channel order and never delivers
/// an event from a channel for which [`is_blocked`](BarrierHandler::is_blocked) is true.
pub trait BarrierHandler: fmt::Debug + Send {
    /// A barrier arrived on `channel`.
    fn on_barrier(&mut self, channel: ChannelIndex, barrier: CheckpointBarrier) -> BarrierActions;
    /// A cancellation marker arrived on `channel`.
    fn on_cancel_marker(
        &mut self,
        channel: ChannelIndex,
        checkpoint: CheckpointId,
    ) -> BarrierActions;
    /// Whether events from `channel` must wait.
    fn is_blocked(&self, channel: ChannelIndex) -> bool;
}

/// The handler for a checkpointing mode.
pub fn handler_for(mode: CheckpointingMode, channels: u16) -> Box<dyn BarrierHandler> {
    match mode {
        CheckpointingMode::ExactlyOnce => Box::new(BarrierAligner::new(channels)),
        CheckpointingMode::AtLeastOnce => Box::new(BarrierTracker::new(channels)),
    }
}

/// EXACTLY_ONCE alignment: a channel blocks when its barrier arrives; when every channel has
/// delivered it, the task snapshots and forwards, then all channels unblock (reference §D).
///
/// Invariant: `blocked` is empty unless `aligning` is some; every blocked channel delivered the
/// barrier of `aligning`.
#[derive(Debug)]
pub struct BarrierAligner {
    channels: u16,
    /// The newest checkpoint id seen (barrier or marker).
    current: CheckpointId,
    aligning: Option<CheckpointBarrier>,
    blocked: BTreeSet<ChannelIndex>,
    /// Seeded bug: a newer barrier takes over the alignment without aborting the older
    /// checkpoint, and the channels blocked for it count for the newer one.
    newer_barrier_joins: bool,
}

impl BarrierAligner {
    /// An aligner over `channels` inputs.
    pub fn new(channels: u16) -> BarrierAligner {
        assert!(channels > 0, "only tasks with inputs align");
        BarrierAligner {
            channels,
            current: CheckpointId(0),
            aligning: None,
            blocked: BTreeSet::new(),
            newer_barrier_joins: false,
        }
    }

    /// The aligner with the seeded bug "barrier n+1 does not abort a pending n".
    pub fn with_newer_barrier_joining(mut self) -> BarrierAligner {
        self.newer_barrier_joins = true;
        self
    }

    fn unblock_all(&mut self) {
        self.aligning = None;
        self.blocked.clear();
    }

    fn assert_invariants(&self) {
        assert!(
            self.aligning.is_some() || self.blocked.is_empty(),
            "blocked channels without alignment"
        );
        if let Some(barrier) = self.aligning {
            assert_eq!(
                barrier.id, self.current,
                "the aligned checkpoint is the newest seen"
            );
            assert!(
                self.blocked.len() < usize::from(self.channels),
                "a complete alignment was not released"
            );
        }
    }
}

impl BarrierHandler for BarrierAligner {
    fn on_barrier(&mut self, channel: ChannelIndex, barrier: CheckpointBarrier) -> BarrierActions {
        assert!(channel.0 < self.channels, "barrier on unknown {channel}");
        assert!(
            !self.blocked.contains(&channel),
            "barrier {} on {channel} which is blocked",
            barrier.id
        );
        let is_current_alignment = self.aligning.map(|b| b.id) == Some(barrier.id);
        // Older barriers, or the current id after it completed or was cancelled: ignore (§D.25).
        if barrier.id < self.current || (barrier.id == self.current && !is_current_alignment) {
            return BarrierActions::none();
        }
        let mut actions = BarrierActions::none();
        if barrier.id > self.current {
            // A newer barrier while aligning aborts the older checkpoint (§D.26).
            if let Some(older) = self.aligning.filter(|_| !self.newer_barrier_joins) {
                actions
                    .aborted
                    .push((older.id, CheckpointFailureReason::DeclinedSubsumed));
                self.unblock_all();
            }
            self.current = barrier.id;
            self.aligning = Some(barrier);
        }
        self.blocked.insert(channel);
        if self.blocked.len() == usize::from(self.channels) {
            // Snapshot and forward first, then unblock (§D.23).
            actions.triggered = Some(barrier);
            self.unblock_all();
        }
        self.assert_invariants();
        actions
    }

    fn on_cancel_marker(
        &mut self,
        channel: ChannelIndex,
        checkpoint: CheckpointId,
    ) -> BarrierActions {
        assert!(channel.0 < self.channels, "marker on unknown {channel}");
        let aligning = self.aligning.map(|b| b.id);
        let mut actions = BarrierActions::none();
        if checkpoint > self.current || aligning == Some(checkpoint) {
            if let Some(older) = aligning.filter(|&id| id < checkpoint) {
                actions
                    .aborted
                    .push((older, CheckpointFailureReason::DeclinedSubsumed));
            }
            actions.aborted.push((
                checkpoint,
                CheckpointFailureReason::DeclinedOnCancellationBarrier,
            ));
            self.current = checkpoint;
            self.unblock_all();
        }
        self.assert_invariants();
        actions
    }

    fn is_blocked(&self, channel: ChannelIndex) -> bool {
        self.blocked.contains(&channel)
    }
}

/// AT_LEAST_ONCE tracking: counts the channels that delivered each barrier and snapshots when
/// all have; never blocks, so records after a barrier on a fast channel enter the snapshot and
/// are replayed after a restore (reference §E).
///
/// Invariant: at most [`TRACKED_CHECKPOINTS_MAX`] partial checkpoints, all newer than `latest`.
#[derive(Debug)]
pub struct BarrierTracker {
    channels: u16,
    /// The newest checkpoint triggered or aborted here.
    latest: CheckpointId,
    seen: BTreeMap<CheckpointId, BTreeSet<ChannelIndex>>,
}

impl BarrierTracker {
    /// A tracker over `channels` inputs.
    pub fn new(channels: u16) -> BarrierTracker {
        assert!(channels > 0, "only tasks with inputs track barriers");
        BarrierTracker {
            channels,
            latest: CheckpointId(0),
            seen: BTreeMap::new(),
        }
    }
}

impl BarrierHandler for BarrierTracker {
    fn on_barrier(&mut self, channel: ChannelIndex, barrier: CheckpointBarrier) -> BarrierActions {
        assert!(channel.0 < self.channels, "barrier on unknown {channel}");
        if barrier.id <= self.latest {
            return BarrierActions::none();
        }
        let newest_partial = self.seen.keys().next_back().copied();
        if !self.seen.contains_key(&barrier.id) && newest_partial.is_some_and(|id| barrier.id < id)
        {
            // "There cannot be a successful checkpoint for that id anyway" (§E.30).
            return BarrierActions::none();
        }
        let channels = self.seen.entry(barrier.id).or_default();
        assert!(
            channels.insert(channel),
            "barrier {} twice on {channel}",
            barrier.id
        );
        if channels.len() < usize::from(self.channels) {
            if self.seen.len() > TRACKED_CHECKPOINTS_MAX {
                self.seen.pop_first();
            }
            return BarrierActions::none();
        }
        // Complete: older partial checkpoints are dropped silently (§E.29).
        self.seen = self.seen.split_off(&barrier.id.next());
        self.latest = barrier.id;
        BarrierActions::trigger(barrier)
    }

    fn on_cancel_marker(
        &mut self,
        channel: ChannelIndex,
        checkpoint: CheckpointId,
    ) -> BarrierActions {
        assert!(channel.0 < self.channels, "marker on unknown {channel}");
        if checkpoint <= self.latest {
            return BarrierActions::none();
        }
        // Abort every partial checkpoint up to this one, each once (§E.32).
        let newer = self.seen.split_off(&checkpoint.next());
        let mut aborted: Vec<(CheckpointId, CheckpointFailureReason)> = self
            .seen
            .keys()
            .filter(|&&id| id < checkpoint)
            .map(|&id| (id, CheckpointFailureReason::DeclinedSubsumed))
            .collect();
        aborted.push((
            checkpoint,
            CheckpointFailureReason::DeclinedOnCancellationBarrier,
        ));
        self.seen = newer;
        self.latest = checkpoint;
        BarrierActions {
            aborted,
            triggered: None,
        }
    }

    fn is_blocked(&self, _channel: ChannelIndex) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An input event for the data-driven checks: `b(ch, id)` a barrier, `m(ch, id)` a marker.
    enum Input {
        Barrier(u16, u64),
        Marker(u16, u64),
    }
    fn b(channel: u16, id: u64) -> Input {
        Input::Barrier(channel, id)
    }
    fn m(channel: u16, id: u64) -> Input {
        Input::Marker(channel, id)
    }

    /// Feeds `inputs` and renders each step as "actions | blocked channels".
    fn check(handler: &mut dyn BarrierHandler, channels: u16, inputs: &[Input], expected: &[&str]) {
        let mut actual = Vec::new();
        for input in inputs {
            let actions = match *input {
                Input::Barrier(ch, id) => handler.on_barrier(
                    ChannelIndex(ch),
                    CheckpointBarrier::checkpoint(CheckpointId(id)),
                ),
                Input::Marker(ch, id) => {
                    handler.on_cancel_marker(ChannelIndex(ch), CheckpointId(id))
                }
            };
            let mut text: Vec<String> = actions
                .aborted
                .iter()
                .map(|(id, reason)| format!("abort {} {reason:?}", id.0))
                .collect();
            if let Some(barrier) = actions.triggered {
                text.push(format!("snapshot {}", barrier.id.0));
            }
            let blocked: Vec<String> = (0..channels)
                .filter(|&c| handler.is_blocked(ChannelIndex(c)))
                .map(|c| c.to_string())
                .collect();
            actual.push(format!("{} | {}", text.join(", "), blocked.join(",")));
        }
        assert_eq!(actual, expected);
    }

    #[test]
    fn aligner_blocks_until_all_channels_then_snapshots_and_unblocks() {
        let mut aligner = BarrierAligner::new(3);
        check(
            &mut aligner,
            3,
            &[b(1, 1), b(0, 1), b(2, 1)],
            &[" | 1", " | 0,1", "snapshot 1 | "],
        );
    }

    #[test]
    fn aligner_single_channel_snapshots_at_once() {
        check(
            &mut BarrierAligner::new(1),
            1,
            &[b(0, 1), b(0, 2)],
            &["snapshot 1 | ", "snapshot 2 | "],
        );
    }

    #[test]
    fn aligner_newer_barrier_aborts_the_pending_one() {
        let mut aligner = BarrierAligner::new(2);
        check(
            &mut aligner,
            2,
            // 2 overtakes 1 on channel 1 (1 was lost upstream with a cancellation), then 1's
            // late barrier on channel 1 is ignored.
            &[b(0, 1), b(1, 2), b(0, 2), b(1, 1)],
            &[
                " | 0",
                "abort 1 DeclinedSubsumed | 1",
                "snapshot 2 | ",
                " | ",
            ],
        );
    }

    #[test]
    fn seeded_bug_a_newer_barrier_joins_the_alignment_instead_of_aborting() {
        let mut aligner = BarrierAligner::new(2).with_newer_barrier_joining();
        // Channel 0 stays blocked at 1, yet counts for 2: the snapshot of 2 misses channel 0's
        // records between 1 and 2.
        check(
            &mut aligner,
            2,
            &[b(0, 1), b(1, 2)],
            &[" | 0", "snapshot 2 | "],
        );
    }

    #[test]
    fn aligner_cancellation_marker_aborts_and_later_barriers_are_ignored() {
        let mut aligner = BarrierAligner::new(2);
        check(
            &mut aligner,
            2,
            &[b(0, 1), m(1, 1), b(1, 1), m(0, 3), b(0, 3)],
            &[
                " | 0",
                "abort 1 DeclinedOnCancellationBarrier | ",
                " | ",
                "abort 3 DeclinedOnCancellationBarrier | ",
                " | ",
            ],
        );
    }

    #[test]
    fn tracker_never_blocks_and_drops_older_partials_silently() {
        let mut tracker = BarrierTracker::new(2);
        check(
            &mut tracker,
            2,
            &[b(0, 1), b(0, 2), b(1, 2), b(1, 1), b(0, 3), m(1, 4)],
            &[
                " | ",
                " | ",
                "snapshot 2 | ",
                " | ",
                " | ",
                "abort 3 DeclinedSubsumed, abort 4 DeclinedOnCancellationBarrier | ",
            ],
        );
    }

    #[test]
    fn tracker_ignores_first_barrier_older_than_a_partial_one() {
        let mut tracker = BarrierTracker::new(2);
        check(
            &mut tracker,
            2,
            &[b(0, 5), b(1, 4), b(1, 5)],
            &[" | ", " | ", "snapshot 5 | "],
        );
    }

    #[test]
    fn tracker_bounds_partial_checkpoints() {
        let mut tracker = BarrierTracker::new(2);
        for id in 1..=(TRACKED_CHECKPOINTS_MAX as u64 + 10) {
            let _ = tracker.on_barrier(
                ChannelIndex(0),
                CheckpointBarrier::checkpoint(CheckpointId(id)),
            );
        }
        assert!(tracker.seen.len() <= TRACKED_CHECKPOINTS_MAX + 1);
    }
}
