//! Notifications made up for: a task told a checkpoint completed has committed up to it
//! (FLINK-21080).

use super::witness::{Finding, Witness, WitnessEvent};
use super::{summarize_findings, Property, Violation};
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
    /// When each checkpoint completed, for witnesses.
    completions: BTreeMap<CheckpointId, &'r TraceEntry>,
    findings: Vec<Finding>,
    first_at: Option<Tick>,
}

impl<'r> Notified<'r> {
    fn new(plan: &'r ExecutionPlan) -> Notified<'r> {
        Notified {
            plan,
            restored: BTreeMap::new(),
            committed_up_to: BTreeMap::new(),
            completions: BTreeMap::new(),
            findings: Vec::new(),
            first_at: None,
        }
    }
}

impl<'r> Judgement<'r> for Notified<'r> {
    fn observe(&mut self, entry: &'r TraceEntry) {
        match &entry.event {
            TraceEvent::Engine(EngineEvent::CheckpointCompleted { checkpoint }) => {
                self.completions.insert(*checkpoint, entry);
            }
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
                    let name = &self.plan.tasks[task.index()].name;
                    let message = format!(
                        "{name} was told at {} that checkpoint {completed} completed (the abort notice of checkpoint {checkpoint}) but has committed only up to checkpoint {up_to}",
                        entry.at,
                    );
                    let mut events: Vec<WitnessEvent> = (self.completions.get(completed))
                        .map(|c| WitnessEvent::of(c, format!("{completed} completed")))
                        .into_iter()
                        .collect();
                    let what = format!("{name} gets the abort notice of {checkpoint}, naming {completed} the latest completed");
                    events.push(WitnessEvent::of(entry, what));
                    let witness = Witness::new("abort-notice-not-compensated", format!(
                            "{name} never got the notification that {completed} completed, and the abort notice of {checkpoint} at {}, which names {completed}, did not make it commit up to {completed}: it stays at {up_to}, so {completed}'s output is not committed",
                            entry.at
                        ), "lost completion notifications not made up for by abort notices".into(), events);
                    self.findings.push(Finding {
                        message,
                        subject: name.clone(),
                        witness: Some(witness),
                    });
                }
            }
            _ => {}
        }
    }

    fn finish(self: Box<Self>) -> Vec<Violation> {
        summarize_findings(Property::Notification, self.findings, self.first_at)
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
