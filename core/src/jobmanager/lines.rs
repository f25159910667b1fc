//! Checkpointing without barriers at the JobManager: the local snapshots tasks report, the
//! recovery lines proposed to the coordinator as they advance, and the notices that tell tasks
//! a line completed.

use super::{JobManager, Request};
use crate::bugs::SeededBug;
use crate::coordinator::CoordinatorEffect;
use crate::ids::{CheckpointId, Tick};
use crate::job::ExecutionPlan;
use crate::messages::{Message, Outbox};
use crate::probes::{self, Probe};
use crate::recovery_line::{Line, LineNotice, LocalSnapshot, RecoveryLines};
use crate::status::JobStatus;
use crate::storage::{StateLocation, StorageOp};
use crate::trace::EngineEvent;
use std::collections::BTreeMap;

/// The lines of one JobManager life.
#[derive(Debug)]
pub(super) struct LineTracking {
    lines: RecoveryLines,
    /// The line proposed to the coordinator, until it has its id.
    proposed: Option<Line>,
    /// The lines numbered in this life, by checkpoint id: a completion notifies its tasks.
    numbered: BTreeMap<CheckpointId, LineNotice>,
}

/// Notices kept for lines that may still complete or be notified again (the final one).
const NOTICES_KEPT: usize = 4;

impl LineTracking {
    /// The tracking of a job without barriers, or none.
    pub(super) fn of(plan: &ExecutionPlan) -> Option<LineTracking> {
        plan.checkpoint.logging?;
        let tasks = plan.tasks.iter().map(|t| t.id).collect();
        let mut lines = RecoveryLines::new(tasks, plan.channels());
        if plan.has_bug(SeededBug::RecoveryLineIgnoresChannel) {
            lines = lines.ignoring_first_channel();
        }
        Some(LineTracking {
            lines,
            proposed: None,
            numbered: BTreeMap::new(),
        })
    }

    /// A new attempt is deployed: its tasks announce the snapshots they restored.
    pub(super) fn reset(&mut self) {
        self.lines.reset();
        self.proposed = None;
        self.numbered.clear();
    }
}

impl JobManager {
    /// A task of the deployed attempt reports a local snapshot.
    pub(super) fn on_local_snapshot(
        &mut self,
        now: Tick,
        snapshot: LocalSnapshot,
        restored: bool,
        out: &mut Outbox,
    ) {
        let Some(tracking) = self.lines.as_mut() else {
            return;
        };
        tracking.lines.add(snapshot, restored);
        self.propose_line(now, out);
    }

    /// Proposes the latest recovery line to the coordinator if it is new and nothing else is
    /// pending. Once every task processed all its input, only a final line (every member taken
    /// after its task's end of input, in this attempt) is proposed.
    pub(super) fn propose_line(&mut self, now: Tick, out: &mut Outbox) {
        let (Some(tracking), Some(coordinator), Some(attempt)) = (
            self.lines.as_mut(),
            self.coordinator.as_mut(),
            self.deployed,
        ) else {
            return;
        };
        // After the final line completed, tasks are finishing: nothing more is proposed.
        if self.status != JobStatus::Running || !coordinator.is_idle() || coordinator.final_done() {
            return;
        }
        let Some(line) = tracking.lines.new_line() else {
            return;
        };
        if coordinator.is_finishing() && !line.is_final(attempt) {
            return;
        }
        let snapshots = (line.members.iter())
            .map(|(&task, snapshot)| (task, snapshot.state.clone()))
            .collect();
        tracking.proposed = Some(line);
        let mut effects = Vec::new();
        coordinator.propose_line(snapshots, &mut effects);
        self.apply(now, effects, out);
    }

    /// The proposed line has its id: trace it and keep its notice for the completion.
    pub(super) fn on_line_numbered(&mut self, checkpoint: CheckpointId, out: &mut Outbox) {
        let attempt = self.deployed;
        let Some(tracking) = self.lines.as_mut() else {
            return;
        };
        let line = tracking.proposed.take().expect("a line was proposed");
        if line.rolled_back > 0 {
            probes::hit(Probe::LineRolledBack);
        }
        out.trace(EngineEvent::RecoveryLineFound {
            checkpoint,
            members: (line.members.values())
                .map(|s| (s.task, s.attempt, s.index))
                .collect(),
            rolled_back: line.rolled_back,
        });
        let notice = LineNotice {
            checkpoint,
            // Whether it may be final; the coordinator decides at its completion.
            final_line: attempt.is_some_and(|a| line.is_final(a)),
            members: line.indices(),
            received: line.received(tracking.lines.channels()),
        };
        tracking.numbered.insert(checkpoint, notice);
        while tracking.numbered.len() > NOTICES_KEPT {
            tracking.numbered.pop_first();
        }
    }

    /// A line completed (or its final notification is repeated): tell the tasks, and delete the
    /// local snapshots older than its members that no line ever held.
    pub(super) fn notify_line(
        &mut self,
        now: Tick,
        checkpoint: CheckpointId,
        final_checkpoint: bool,
        out: &mut Outbox,
    ) {
        let (Some(tracking), Some(attempt)) = (self.lines.as_mut(), self.deployed) else {
            return;
        };
        let Some(mut notice) = tracking.numbered.get(&checkpoint).cloned() else {
            return; // Numbered for an earlier attempt or life of this JobManager.
        };
        // The coordinator says which is the final one; only a line of snapshots taken after
        // the end of input is proposed once the final checkpoint was requested.
        assert!(
            notice.final_line || !final_checkpoint,
            "{checkpoint} is final, but not all its members were taken after the end of input"
        );
        notice.final_line = final_checkpoint;
        let unused = tracking.lines.settle(&notice.members);
        let notice = Box::new(notice);
        let message = Message::RecoveryLineComplete { attempt, notice };
        self.broadcast(message, out);
        for state in unused {
            if let StateLocation::File(prefix) = state.location {
                self.request(now, Request::Discard, StorageOp::DeleteAll { prefix }, out);
            }
        }
    }

    /// Whether coordinator effects are about lines: handled here, or passed on.
    pub(super) fn is_line_effect(&self, effect: &CoordinatorEffect) -> bool {
        self.lines.is_some()
            && matches!(
                effect,
                CoordinatorEffect::LineNumbered { .. }
                    | CoordinatorEffect::NotifyComplete { .. }
                    | CoordinatorEffect::NotifyAborted { .. }
            )
    }

    /// Carries out a coordinator effect about lines (see [`JobManager::is_line_effect`]).
    pub(super) fn apply_line_effect(
        &mut self,
        now: Tick,
        effect: CoordinatorEffect,
        out: &mut Outbox,
    ) {
        match effect {
            CoordinatorEffect::LineNumbered { checkpoint } => {
                self.on_line_numbered(checkpoint, out)
            }
            CoordinatorEffect::NotifyComplete {
                checkpoint,
                final_checkpoint,
            } => self.notify_line(now, checkpoint, final_checkpoint, out),
            // Tasks know lines by their own snapshot indices, not by checkpoint ids: an aborted
            // line leaves them as they are, and the next completed line commits up to its
            // members.
            CoordinatorEffect::NotifyAborted { .. } => {}
            other => unreachable!("not a line effect: {other:?}"),
        }
    }
}
