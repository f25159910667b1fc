//! Checkpoint progress: periodic checkpoints keep coming while the job runs.

use super::{summarize, Property, Violation};
use super::{Checker, JudgedRun};
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
    let Some(interval) = plan.checkpoint.interval_ticks else {
        return Vec::new();
    };
    let bound = first_trigger_delay + 2 * interval + plan.checkpoint.min_pause_ticks;
    let mut messages = Vec::new();
    let mut first_at = None;
    // While running: the checkpoints being triggered or pending, and since when none was.
    let mut running = false;
    let mut pending: BTreeSet<CheckpointId> = BTreeSet::new();
    let mut idle_since = Tick(0);
    let mut final_from_id: Option<CheckpointId> = None;
    for entry in trace {
        let at = entry.at;
        if running && pending.is_empty() && at.since(idle_since) > bound {
            first_at = first_at.or(Some(at));
            messages.push(format!(
                "no checkpoint was triggered from {idle_since} to {at} while the job ran ({} ms; interval {interval} ms)",
                at.since(idle_since)
            ));
            // Report each idle stretch once.
            idle_since = at;
        }
        match &entry.event {
            TraceEvent::Crash | TraceEvent::Restart if entry.node == Address::JobManager => {
                running = false
            }
            TraceEvent::Engine(EngineEvent::JobStatus { status, .. }) => {
                running = *status == JobStatus::Running;
                pending.clear();
                idle_since = at;
                final_from_id = None;
            }
            TraceEvent::Engine(EngineEvent::TriggerStarted { checkpoint, .. }) => {
                pending.insert(*checkpoint);
            }
            TraceEvent::Engine(EngineEvent::TriggerRequestRefused { .. }) => idle_since = at,
            TraceEvent::Engine(EngineEvent::InputConsumed { final_from }) => {
                final_from_id = Some(*final_from)
            }
            TraceEvent::Engine(EngineEvent::CheckpointCompleted { checkpoint })
                if final_from_id.is_some_and(|first| *checkpoint >= first) =>
            {
                // The final checkpoint: nothing more is triggered in this attempt.
                running = false;
            }
            TraceEvent::Engine(
                EngineEvent::CheckpointCompleted { checkpoint }
                | EngineEvent::SavepointCompleted { checkpoint, .. }
                | EngineEvent::CheckpointAborted { checkpoint, .. },
            ) => {
                // An abort of an id never triggered is a trigger that failed: an attempt too.
                pending.remove(checkpoint);
                if pending.is_empty() {
                    idle_since = at;
                }
            }
            _ => {}
        }
    }
    summarize(Property::Liveness, messages, first_at)
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
    fn check(&self, run: &JudgedRun) -> Vec<Violation> {
        checkpoint_progress(run.own_trace(), run.plan, run.first_trigger_delay)
    }
}
