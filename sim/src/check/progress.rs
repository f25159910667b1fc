//! Checkpoint progress: periodic checkpoints keep coming while the job runs.

use super::{summarize, Property, Violation};
use super::{Checker, JudgedRun, Judgement};
use crate::trace::{TraceEntry, TraceEvent};
use snapsim_core::ids::{CheckpointId, Tick};
use snapsim_core::job::ExecutionPlan;
use snapsim_core::messages::Address;
use snapsim_core::trace::{EngineEvent, JobStatus};
use std::collections::BTreeSet;
/// Checkpoint progress (a liveness property): while the job runs with periodic checkpointing,
/// it never goes without a pending checkpoint for longer than the first trigger delay plus two
/// intervals plus the min pause. A scheduler that stopped after a failover shows here long
/// before the job ends.
pub fn checkpoint_progress(
    trace: &[TraceEntry],
    plan: &ExecutionPlan,
    first_trigger_delay: u64,
) -> Vec<Violation> {
    match Progress::new(plan, first_trigger_delay) {
        Some(progress) => super::over(progress, trace),
        None => Vec::new(),
    }
}

/// The progress checker's state while it walks the trace.
struct Progress {
    interval: u64,
    /// The longest a running job may go without a pending checkpoint.
    bound: u64,
    messages: Vec<String>,
    first_at: Option<Tick>,
    // While running: the checkpoints being triggered or pending, and since when none was.
    running: bool,
    pending: BTreeSet<CheckpointId>,
    idle_since: Tick,
    final_from_id: Option<CheckpointId>,
}

impl Progress {
    /// `None` for a job without periodic checkpointing.
    fn new(plan: &ExecutionPlan, first_trigger_delay: u64) -> Option<Progress> {
        let interval = plan.checkpoint.interval_ticks?;
        Some(Progress {
            interval,
            bound: first_trigger_delay + 2 * interval + plan.checkpoint.min_pause_ticks,
            messages: Vec::new(),
            first_at: None,
            running: false,
            pending: BTreeSet::new(),
            idle_since: Tick(0),
            final_from_id: None,
        })
    }
}

impl<'r> Judgement<'r> for Progress {
    fn observe(&mut self, entry: &'r TraceEntry) {
        let at = entry.at;
        if self.running && self.pending.is_empty() && at.since(self.idle_since) > self.bound {
            self.first_at = self.first_at.or(Some(at));
            self.messages.push(format!(
                "no checkpoint was triggered from {} to {at} while the job ran ({} ms; interval {} ms)",
                self.idle_since,
                at.since(self.idle_since),
                self.interval,
            ));
            // Report each idle stretch once.
            self.idle_since = at;
        }
        match &entry.event {
            TraceEvent::Crash | TraceEvent::Restart if entry.node == Address::JobManager => {
                self.running = false
            }
            TraceEvent::Engine(EngineEvent::JobStatus { status, .. }) => {
                self.running = *status == JobStatus::Running;
                self.pending.clear();
                self.idle_since = at;
                self.final_from_id = None;
            }
            TraceEvent::Engine(EngineEvent::TriggerStarted { checkpoint, .. }) => {
                self.pending.insert(*checkpoint);
            }
            TraceEvent::Engine(EngineEvent::TriggerRequestRefused { .. }) => self.idle_since = at,
            TraceEvent::Engine(EngineEvent::InputConsumed { final_from }) => {
                self.final_from_id = Some(*final_from)
            }
            TraceEvent::Engine(EngineEvent::CheckpointCompleted { checkpoint })
                if self.final_from_id.is_some_and(|first| *checkpoint >= first) =>
            {
                // The final checkpoint: nothing more is triggered in this attempt.
                self.running = false;
            }
            TraceEvent::Engine(
                EngineEvent::CheckpointCompleted { checkpoint }
                | EngineEvent::SavepointCompleted { checkpoint, .. }
                | EngineEvent::CheckpointAborted { checkpoint, .. },
            ) => {
                // An abort of an id never triggered is a trigger that failed: an attempt too.
                self.pending.remove(checkpoint);
                if self.pending.is_empty() {
                    self.idle_since = at;
                }
            }
            _ => {}
        }
    }

    fn finish(self: Box<Self>) -> Vec<Violation> {
        summarize(Property::Liveness, self.messages, self.first_at)
    }
}

/// Periodic checkpoints keep coming.
pub struct CheckpointProgress;

impl Checker for CheckpointProgress {
    fn property(&self) -> Property {
        Property::Liveness
    }
    fn description(&self) -> &str {
        "while the job runs with periodic checkpointing, checkpoints keep being triggered"
    }
    fn judge<'r>(&self, run: &'r JudgedRun<'r>) -> Box<dyn Judgement<'r> + 'r> {
        match Progress::new(run.plan, run.first_trigger_delay) {
            Some(progress) => Box::new(progress),
            None => super::at_end(Vec::new),
        }
    }
}
