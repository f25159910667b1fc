//! Notifications made up for: a task told a checkpoint completed has committed up to it
//! (FLINK-21080).

use super::{summarize, Property, Violation};
use super::{Checker, JudgedRun, Judgement};
use crate::trace::{TraceEntry, TraceEvent};
use snapsim_core::ids::{Attempt, CheckpointId, TaskId, Tick};
use snapsim_core::job::ExecutionPlan;
use snapsim_core::trace::EngineEvent;
use std::collections::BTreeMap;
/// Notification: when a task handles an abort notice that carries the latest completed
/// checkpoint, it has committed up to that checkpoint, by the notice or before it. A restored
/// task starts out having committed up to the checkpoint it restored.
pub fn notification(trace: &[TraceEntry], plan: &ExecutionPlan) -> Vec<Violation> {
    super::over(Notified::new(plan), trace)
}

/// The notification checker's state while it walks the trace.
struct Notified<'r> {
    plan: &'r ExecutionPlan,
    /// The checkpoint each attempt restored.
    restored: BTreeMap<Attempt, CheckpointId>,
    committed_up_to: BTreeMap<(Attempt, TaskId), CheckpointId>,
    messages: Vec<String>,
    first_at: Option<Tick>,
}

impl<'r> Notified<'r> {
    fn new(plan: &'r ExecutionPlan) -> Notified<'r> {
        Notified {
            plan,
            restored: BTreeMap::new(),
            committed_up_to: BTreeMap::new(),
            messages: Vec::new(),
            first_at: None,
        }
    }
}

impl<'r> Judgement<'r> for Notified<'r> {
    fn observe(&mut self, entry: &'r TraceEntry) {
        match &entry.event {
            TraceEvent::Engine(EngineEvent::Deployed {
                attempt,
                restored: Some(checkpoint),
            }) => {
                self.restored.insert(*attempt, *checkpoint);
            }
            TraceEvent::Engine(EngineEvent::CheckpointNotified {
                task,
                attempt,
                checkpoint,
            }) => {
                let up_to = self.committed_up_to.entry((*attempt, *task)).or_default();
                *up_to = (*up_to).max(*checkpoint);
            }
            TraceEvent::Engine(EngineEvent::AbortNotified {
                task,
                attempt,
                checkpoint,
                latest_completed: Some(completed),
            }) => {
                let start = self.restored.get(attempt).copied().unwrap_or_default();
                let up_to = (self.committed_up_to.get(&(*attempt, *task)).copied())
                    .unwrap_or_default()
                    .max(start);
                if up_to < *completed {
                    self.first_at = self.first_at.or(Some(entry.at));
                    self.messages.push(format!(
                        "{} was told at {} that checkpoint {completed} completed (the abort notice of checkpoint {checkpoint}) but has committed only up to checkpoint {up_to}",
                        self.plan.tasks[task.index()].name,
                        entry.at,
                    ));
                }
            }
            _ => {}
        }
    }

    fn finish(self: Box<Self>) -> Vec<Violation> {
        summarize(Property::Notification, self.messages, self.first_at)
    }
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
    fn judge<'r>(&self, run: &'r JudgedRun<'r>) -> Box<dyn Judgement<'r> + 'r> {
        Box::new(Notified::new(run.plan))
    }
}
