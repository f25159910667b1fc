//! Cancellation markers: a task that declines or skips a checkpoint tells every downstream
//! task.

use super::witness::{Finding, Witness, WitnessEvent};
use super::{summarize_findings, Property, Violation};
use super::{Checker, JudgedRun, Judgement};
use crate::trace::{TraceEntry, TraceEvent};
use snapsim_core::ids::{Attempt, ChannelIndex, CheckpointId, TaskId, Tick};
use snapsim_core::job::ExecutionPlan;
use snapsim_core::messages::Address;
use snapsim_core::trace::EngineEvent;
use std::collections::BTreeMap;
/// Cancellation: on every channel, once the upstream task took its snapshot of a checkpoint,
/// declined it or skipped it, the downstream task gets that checkpoint's barrier or a
/// cancellation marker before anything for a later checkpoint. A task that declines without a
/// marker leaves its downstream aligned on channels that wait for a barrier that never comes.
pub fn cancellation(trace: &[TraceEntry], plan: &ExecutionPlan) -> Vec<Violation> {
    super::over(CancellationCheck::new(plan), trace)
}

/// What each task of each attempt has handled: checkpoint → (how, when).
type Handled = BTreeMap<CheckpointId, (&'static str, Tick, Address)>;

/// The cancellation checker's state while it walks the trace.
struct CancellationCheck<'p> {
    plan: &'p ExecutionPlan,
    handled: BTreeMap<(Attempt, TaskId), Handled>,
    /// The newest checkpoint each channel delivered a barrier or marker for.
    delivered: BTreeMap<(Attempt, TaskId, ChannelIndex), CheckpointId>,
    findings: Vec<Finding>,
    first_at: Option<Tick>,
}

impl<'r> Judgement<'r> for CancellationCheck<'r> {
    fn observe(&mut self, entry: &'r TraceEntry) {
        let TraceEvent::Engine(event) = &entry.event else {
            return;
        };
        let (how, task, attempt, checkpoint) = match event {
            EngineEvent::SnapshotTaken {
                task,
                attempt,
                checkpoint,
                ..
            } => ("took its snapshot", task, attempt, checkpoint),
            EngineEvent::Declined {
                task,
                attempt,
                checkpoint,
                ..
            } => ("declined", task, attempt, checkpoint),
            EngineEvent::CheckpointSkipped {
                task,
                attempt,
                checkpoint,
            } => ("skipped", task, attempt, checkpoint),
            EngineEvent::BarrierReceived {
                task,
                attempt,
                channel,
                from,
                checkpoint,
            }
            | EngineEvent::CancelMarkerReceived {
                task,
                attempt,
                channel,
                from,
                checkpoint,
            } => {
                let what = match event {
                    EngineEvent::BarrierReceived { .. } => "barrier",
                    _ => "cancellation marker",
                };
                let channel = (*attempt, *task, *channel);
                self.delivered(what, channel, *from, *checkpoint, (entry.at, entry.node));
                return;
            }
            _ => return,
        };
        self.handled
            .entry((*attempt, *task))
            .or_default()
            .entry(*checkpoint)
            .or_insert((how, entry.at, entry.node));
    }

    fn finish(self: Box<Self>) -> Vec<Violation> {
        summarize_findings(Property::Cancellation, self.findings, self.first_at)
    }
}

impl<'p> CancellationCheck<'p> {
    fn new(plan: &'p ExecutionPlan) -> Self {
        CancellationCheck {
            plan,
            handled: BTreeMap::new(),
            delivered: BTreeMap::new(),
            findings: Vec::new(),
            first_at: None,
        }
    }

    /// `channel` (attempt, receiving task, channel index) delivered `what` (a barrier or a
    /// cancellation marker) of `checkpoint` from `from`: flags a checkpoint in between that
    /// `from` handled and the channel delivered nothing for.
    fn delivered(
        &mut self,
        what: &str,
        channel: (Attempt, TaskId, ChannelIndex),
        from: TaskId,
        checkpoint: CheckpointId,
        (at, node): (Tick, Address),
    ) {
        let plan = self.plan;
        let name = |task: &TaskId| plan.tasks[task.index()].name.as_str();
        let (attempt, task, _) = channel;
        let last = self.delivered.entry(channel).or_insert(CheckpointId(0));
        let upstream = self.handled.get(&(attempt, from));
        // A task may forward barrier n and then abort n (subsumed, or by a marker), so
        // a marker of n can follow n's barrier; nothing is missing then.
        let skipped = upstream
            .into_iter()
            .filter(|_| checkpoint > last.next())
            .flat_map(|h| h.range(last.next()..checkpoint))
            .next();
        if let Some((missing, (how, when, upstream_node))) = skipped {
            self.first_at = self.first_at.or(Some(at));
            let (task_name, from_name) = (name(&task), name(&from));
            let message = format!(
                "{task_name} got the {what} of checkpoint {checkpoint} from {from_name} at {at}, but nothing for checkpoint {missing}, which {from_name} {how} at {when}",
            );
            let forwards = match *how {
                "took its snapshot" => "forwarded no barrier",
                _ => "sent no cancellation marker",
            };
            let witness = Witness::new(format!("{}-without-marker", how.replace(' ', "-")), format!(
                    "{from_name} {how} {missing} at {when} and {forwards} downstream: {task_name} got the {what} of {checkpoint} at {at} with nothing for {missing} before it, so it cannot abort {missing}'s alignment"
                ), format!("{from_name} {forwards} for a checkpoint it {how}"), vec![
                    WitnessEvent { at: *when, node: *upstream_node, what: format!("{from_name} {how} {missing}") },
                    WitnessEvent { at, node, what: format!("{task_name} receives the {what} of {checkpoint} from {from_name}") },
                ]);
            self.findings.push(Finding {
                message,
                subject: format!("{task_name} {checkpoint}"),
                witness: Some(witness),
            });
        }
        *last = (*last).max(checkpoint);
    }
}

/// Cancellation markers reach every downstream task.
pub struct Cancellation;

impl Checker for Cancellation {
    fn property(&self) -> Property {
        Property::Cancellation
    }
    fn description(&self) -> &str {
        "a task that declines or skips a checkpoint sends a cancellation marker on every output channel before any later barrier"
    }
    fn judge<'r>(&self, run: &'r JudgedRun<'r>) -> Box<dyn Judgement<'r> + 'r> {
        Box::new(CancellationCheck::new(run.plan))
    }
}
