//! Notifications made up for: a task told a checkpoint completed has committed up to it
//! (FLINK-21080).

use super::{summarize, Property, Violation};
use super::{Checker, JudgedRun};
use crate::trace::{TraceEntry, TraceEvent};
use snapsim_core::ids::{Attempt, CheckpointId, TaskId};
use snapsim_core::job::ExecutionPlan;
use snapsim_core::trace::EngineEvent;
use std::collections::BTreeMap;
/// Notification: when a task handles an abort notice that carries the latest completed
/// checkpoint, it has committed up to that checkpoint, by the notice or before it. A restored
/// task starts out having committed up to the checkpoint it restored.
pub fn notification(trace: &[TraceEntry], plan: &ExecutionPlan) -> Vec<Violation> {
    let mut restored: BTreeMap<Attempt, CheckpointId> = BTreeMap::new();
    let mut committed_up_to: BTreeMap<(Attempt, TaskId), CheckpointId> = BTreeMap::new();
    let mut messages = Vec::new();
    let mut first_at = None;
    for entry in trace {
        match &entry.event {
            TraceEvent::Engine(EngineEvent::Deployed {
                attempt,
                restored: Some(checkpoint),
            }) => {
                restored.insert(*attempt, *checkpoint);
            }
            TraceEvent::Engine(EngineEvent::CheckpointNotified {
                task,
                attempt,
                checkpoint,
            }) => {
                let up_to = committed_up_to.entry((*attempt, *task)).or_default();
                *up_to = (*up_to).max(*checkpoint);
            }
            TraceEvent::Engine(EngineEvent::AbortNotified {
                task,
                attempt,
                checkpoint,
                latest_completed: Some(completed),
            }) => {
                let start = restored.get(attempt).copied().unwrap_or_default();
                let up_to = committed_up_to
                    .get(&(*attempt, *task))
                    .copied()
                    .unwrap_or_default()
                    .max(start);
                if up_to < *completed {
                    first_at = first_at.or(Some(entry.at));
                    messages.push(format!(
                        "{} was told at {} that checkpoint {completed} completed (the abort notice of checkpoint {checkpoint}) but has committed only up to checkpoint {up_to}",
                        plan.tasks[task.index()].name,
                        entry.at,
                    ));
                }
            }
            _ => {}
        }
    }
    summarize(Property::Notification, messages, first_at)
}

/// Lost completion notifications are made up for.
pub struct Notification;

impl Checker for Notification {
    fn property(&self) -> Property {
        Property::Notification
    }
    fn description(&self) -> &str {
        "a task told that a checkpoint completed (by its notification or an abort notice carrying it) commits up to it (FLINK-21080)"
    }
    fn check(&self, run: &JudgedRun) -> Vec<Violation> {
        notification(run.own_trace(), run.plan)
    }
}
