//! Checkpoint progress: periodic checkpoints keep coming while the job runs.

use super::witness::{Finding, Witness, WitnessEvent};
use super::{summarize_findings, Property, Violation};
use super::{Checker, JudgedRun, Judgement};
use crate::trace::{TraceEntry, TraceEvent};
use snapsim_core::ids::{CheckpointId, TaskId, Tick};
use snapsim_core::job::ExecutionPlan;
use snapsim_core::messages::Address;
use snapsim_core::trace::{EngineEvent, JobStatus};
use std::collections::{BTreeMap, BTreeSet};
/// Checkpoint progress (a liveness property): while the job runs with periodic checkpointing,
/// it never goes without a pending checkpoint for longer than the first trigger delay plus two
/// intervals plus the min pause. A scheduler that stopped after a failover shows here long
/// before the job ends.
pub fn checkpoint_progress(
    trace: &[TraceEntry],
    plan: &ExecutionPlan,
    first_trigger_delay: u64,
) -> Vec<Violation> {
    if let Some(local) = LocalProgress::new(plan) {
        return super::over(local, trace);
    }
    match Progress::new(plan, first_trigger_delay) {
        Some(progress) => super::over(progress, trace),
        None => Vec::new(),
    }
}

/// Progress without barriers: nothing is triggered, so while the job runs every task takes a
/// local snapshot at least every two intervals and a fifth (its timer fires every interval,
/// give or take a fifth). Not judged from a crash or restart of a TaskManager or the
/// JobManager until the next
/// deployment runs: a crashed TaskManager's tasks stop, and the JobManager may report the job
/// running before it learns of the crash.
struct LocalProgress<'r> {
    interval: u64,
    bound: u64,
    findings: Vec<Finding>,
    first_at: Option<Tick>,
    running: bool,
    /// A node crashed or restarted since the last deployment.
    disturbed: bool,
    /// Per task, its last local snapshot (or when the job began running), as a trace entry.
    last: BTreeMap<TaskId, (Tick, Option<&'r TraceEntry>)>,
    running_since: Option<&'r TraceEntry>,
    final_from_id: Option<CheckpointId>,
    tasks: Vec<TaskId>,
}

impl<'r> LocalProgress<'r> {
    /// `None` for a job with barriers.
    fn new(plan: &ExecutionPlan) -> Option<LocalProgress<'r>> {
        plan.checkpoint.logging?;
        let interval = plan
            .checkpoint
            .interval_ticks
            .expect("validated: logging has an interval");
        Some(LocalProgress {
            interval,
            bound: 2 * interval + interval / 5,
            findings: Vec::new(),
            first_at: None,
            running: false,
            disturbed: false,
            last: BTreeMap::new(),
            running_since: None,
            final_from_id: None,
            tasks: plan.tasks.iter().map(|t| t.id).collect(),
        })
    }

    fn stalled(&mut self, now: Tick) {
        let late: Vec<TaskId> = (self.last.iter())
            .filter(|(_, (since, _))| now.since(*since) > self.bound)
            .map(|(&task, _)| task)
            .collect();
        for task in late {
            let (since, snapshot) = self.last.insert(task, (now, None)).expect("present");
            self.first_at = self.first_at.or(Some(now));
            let mut events: Vec<WitnessEvent> = [snapshot, self.running_since]
                .into_iter()
                .flatten()
                .map(|entry| WitnessEvent::of(entry, local_event(entry)))
                .collect();
            events.sort_by_key(|event| event.at);
            let cause = format!(
                "{task} took no local snapshot from {since} to {now} while the job ran ({} ms; interval {} ms)",
                now.since(since),
                self.interval
            );
            self.findings.push(Finding {
                message: cause.clone(),
                subject: format!("{task} {since} to {now}"),
                witness: Some(Witness::new(
                    "no-local-snapshot-while-running",
                    cause,
                    "a task's local snapshot timer stopped while the job ran".to_string(),
                    events,
                )),
            });
        }
    }
}

/// A local snapshot or the start of running, as a witness event.
fn local_event(entry: &TraceEntry) -> String {
    match &entry.event {
        TraceEvent::Engine(EngineEvent::LocalSnapshotTaken { task, snapshot, .. }) => {
            format!("{task} takes local snapshot {snapshot}")
        }
        _ => "the job runs".to_string(),
    }
}

impl<'r> Judgement<'r> for LocalProgress<'r> {
    fn observe(&mut self, entry: &'r TraceEntry) {
        let at = entry.at;
        if self.running {
            self.stalled(at);
        }
        match &entry.event {
            // The storage's crash stops no task's timer.
            TraceEvent::Crash | TraceEvent::Restart if entry.node != Address::Storage => {
                self.running = false;
                self.disturbed = true;
            }
            TraceEvent::Engine(EngineEvent::Deployed { .. }) => self.disturbed = false,
            TraceEvent::Engine(EngineEvent::JobStatus { status, .. }) => {
                self.running = *status == JobStatus::Running && !self.disturbed;
                self.final_from_id = None;
                self.running_since = Some(entry);
                self.last = self.tasks.iter().map(|&t| (t, (at, None))).collect();
            }
            TraceEvent::Engine(EngineEvent::LocalSnapshotTaken { task, .. }) => {
                self.last.insert(*task, (at, Some(entry)));
            }
            TraceEvent::Engine(EngineEvent::InputConsumed { final_from }) => {
                self.final_from_id = Some(*final_from)
            }
            TraceEvent::Engine(EngineEvent::CheckpointCompleted { checkpoint })
                if self.final_from_id.is_some_and(|first| *checkpoint >= first) =>
            {
                self.running = false; // The final line: tasks finish.
            }
            _ => {}
        }
    }

    fn finish(self: Box<Self>) -> Vec<Violation> {
        summarize_findings(Property::Liveness, self.findings, self.first_at)
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
        if let Some(local) = LocalProgress::new(run.plan) {
            return Box::new(local);
        }
        match Progress::new(run.plan, run.first_trigger_delay) {
            Some(progress) => Box::new(progress),
            None => super::at_end(Vec::new),
        }
    }
}
