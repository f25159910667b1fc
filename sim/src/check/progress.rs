//! Checkpoint progress: periodic checkpoints keep coming while the job runs.

use super::witness::{Finding, Witness, WitnessEvent};
use super::{summarize_findings, Property, Violation};
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
struct Progress<'r> {
    interval: u64,
    /// The longest a running job may go without a pending checkpoint.
    bound: u64,
    findings: Vec<Finding>,
    first_at: Option<Tick>,
    /// For witnesses: the last trigger, the last failover, and when the job last began
    /// running.
    last_trigger: Option<&'r TraceEntry>,
    last_failover: Option<&'r TraceEntry>,
    running_since: Option<&'r TraceEntry>,
    // While running: the checkpoints being triggered or pending, and since when none was.
    running: bool,
    pending: BTreeSet<CheckpointId>,
    idle_since: Tick,
    final_from_id: Option<CheckpointId>,
}

impl<'r> Progress<'r> {
    /// `None` for a job without periodic checkpointing.
    fn new(plan: &ExecutionPlan, first_trigger_delay: u64) -> Option<Progress<'r>> {
        let interval = plan.checkpoint.interval_ticks?;
        Some(Progress {
            interval,
            bound: first_trigger_delay + 2 * interval + plan.checkpoint.min_pause_ticks,
            findings: Vec::new(),
            first_at: None,
            last_trigger: None,
            last_failover: None,
            running_since: None,
            running: false,
            pending: BTreeSet::new(),
            idle_since: Tick(0),
            final_from_id: None,
        })
    }
}

impl<'r> Judgement<'r> for Progress<'r> {
    fn observe(&mut self, entry: &'r TraceEntry) {
        let at = entry.at;
        if self.running && self.pending.is_empty() && at.since(self.idle_since) > self.bound {
            self.first_at = self.first_at.or(Some(at));
            let message = format!(
                "no checkpoint was triggered from {} to {at} while the job ran ({} ms; interval {} ms)",
                self.idle_since,
                at.since(self.idle_since),
                self.interval,
            );
            let witness = self.idle_witness(at);
            self.findings.push(Finding {
                message,
                subject: format!("{} to {at}", self.idle_since),
                witness: Some(witness),
            });
            // Report each idle stretch once.
            self.idle_since = at;
        }
        self.remember(entry);
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
        summarize_findings(Property::Liveness, self.findings, self.first_at)
    }
}

impl<'r> Progress<'r> {
    /// Keeps what a witness of an idle stretch shows: the last trigger, the last failover,
    /// and when the job last began running.
    fn remember(&mut self, entry: &'r TraceEntry) {
        match &entry.event {
            TraceEvent::Engine(EngineEvent::TriggerStarted { .. }) => {
                self.last_trigger = Some(entry)
            }
            TraceEvent::Engine(EngineEvent::Failover { .. }) => self.last_failover = Some(entry),
            TraceEvent::Engine(EngineEvent::JobStatus {
                status: JobStatus::Running,
                ..
            }) => self.running_since = Some(entry),
            _ => {}
        }
    }

    /// Why no checkpoint came until `now`: the last trigger, and the failover after it when
    /// there was one (the scheduler did not resume).
    fn idle_witness(&self, now: Tick) -> Witness {
        let remembered = [self.last_trigger, self.last_failover, self.running_since];
        let mut events: Vec<WitnessEvent> = remembered
            .into_iter()
            .flatten()
            .map(witness_event)
            .collect();
        events.sort_by_key(|event| event.at);
        let idle = now.since(self.idle_since);
        let after_failover = match (self.last_failover, self.last_trigger) {
            (Some(failover), Some(trigger)) if failover.at >= trigger.at => Some(failover.at),
            (Some(failover), None) => Some(failover.at),
            _ => None,
        };
        let (shape, cause, root) = match (after_failover, self.running_since) {
            (Some(failover), Some(running)) => (
                "no-trigger-after-failover",
                format!(
                    "after the failover at {failover} the job ran again from {} but no checkpoint was triggered for {idle} ms (interval {} ms): periodic triggering did not resume after the failover",
                    running.at, self.interval
                ),
                "periodic checkpoints not resumed after a failover".to_string(),
            ),
            _ => (
                "no-trigger-while-running",
                format!(
                    "the job ran from {} to {now} without a checkpoint being triggered (interval {} ms)",
                    self.idle_since, self.interval
                ),
                "periodic checkpoints stopped while the job ran".to_string(),
            ),
        };
        Witness::new(shape, cause, root, events)
    }
}

/// A remembered trigger, failover or start of running, as a witness event.
fn witness_event(entry: &TraceEntry) -> WitnessEvent {
    let what = match &entry.event {
        TraceEvent::Engine(EngineEvent::TriggerStarted { checkpoint, .. }) => {
            format!("{checkpoint} triggered")
        }
        TraceEvent::Engine(EngineEvent::Failover { cause }) => format!("failover: {cause}"),
        _ => "the job runs".to_string(),
    };
    WitnessEvent::of(entry, what)
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
