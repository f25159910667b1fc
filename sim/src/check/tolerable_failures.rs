//! Tolerable checkpoint failures, recounted from the trace by Flink's rule, independently of
//! the engine's `CheckpointFailureManager`: when the job must fail over for failed checkpoints,
//! and when it must not.
//!
//! Flink's rule (`CheckpointFailureManager#checkFailureCounter` and `#handleCheckpointException`,
//! asserted by `CheckpointFailureManagerTest`):
//! - exactly four reasons count: IO_EXCEPTION (none here), CHECKPOINT_ASYNC_EXCEPTION,
//!   CHECKPOINT_DECLINED and CHECKPOINT_EXPIRED; every other reason (subsumed, declined on a
//!   cancellation barrier or because a task was not ready, a finalization failure, a failover,
//!   ...) does not;
//! - a checkpoint counts at most once, and only if its id is above the last completed one
//!   (FLINK-18336); savepoints never count;
//! - a completion with a higher id than the last one resets the count;
//! - when the count exceeds the tolerable number, the job fails over and the count starts
//!   again from zero; a new JobManager starts with a new count.
//!
//! The reasons themselves are checked against what the trace shows, so that an engine that
//! names the wrong reason is caught too: an expiry no earlier than the checkpoint's timeout
//! after its trigger, a decline or an asynchronous failure only when a task declined with it.

use super::witness::{Finding, Witness, WitnessEvent};
use super::{summarize_findings, Property, Violation};
use super::{Checker, JudgedRun, Judgement};
use crate::trace::{TraceEntry, TraceEvent};
use snapsim_core::ids::{CheckpointId, Tick};
use snapsim_core::job::ExecutionPlan;
use snapsim_core::messages::CheckpointFailureReason;
use snapsim_core::trace::{EngineEvent, JobStatus, TriggerKind};
use std::collections::{BTreeMap, BTreeSet};

/// The words of the engine's failover cause for the threshold (Flink: "Exceeded checkpoint
/// tolerable failure threshold.").
const THRESHOLD_CAUSE: &str = "tolerable failure threshold";

/// Whether Flink counts a failure with this reason toward the tolerable number.
fn counts(reason: CheckpointFailureReason) -> bool {
    use CheckpointFailureReason as R;
    match reason {
        R::Expired | R::Declined | R::AsyncException => true,
        R::FinalizeFailure
        | R::DeclinedSubsumed
        | R::DeclinedOnCancellationBarrier
        | R::DeclinedTaskNotReady
        | R::Subsumed
        | R::JobFailover
        | R::TriggerFailure
        | R::CoordinatorSuspend
        | R::TooManyRequests
        | R::MinimumTimeBetweenCheckpoints => false,
    }
}

/// What the recount found in one run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FailureRecount {
    /// The count at each failover the engine made for the threshold.
    pub at_failover: Vec<u32>,
    /// Times the count exceeded the tolerable number with no failover for it.
    pub missed: u32,
    /// What disagrees with the rule, each with when it became visible.
    pub findings: Vec<(Tick, String)>,
}

/// Recounts the run's checkpoint failures with `tolerable` failures tolerated.
pub fn recount_failures(
    trace: &[TraceEntry],
    tolerable: u32,
    timeout_ticks: u64,
) -> FailureRecount {
    let mut recounter = Recounter::new(tolerable, timeout_ticks);
    for entry in trace {
        recounter.observe(entry);
    }
    recounter.recount()
}

/// The recount as it walks the trace.
struct Recounter {
    tolerable: u32,
    timeout_ticks: u64,
    recount: FailureRecount,
    /// Ids taken by savepoints (of the current JobManager: ids are taken again after one
    /// starts over from an older durable counter).
    savepoints: BTreeSet<CheckpointId>,
    triggered: BTreeMap<CheckpointId, Tick>,
    declined: BTreeSet<(CheckpointId, CheckpointFailureReason)>,
    counter: Counter,
    /// The count passed the threshold while the job ran: its failover must follow before any
    /// other checkpoint event (when, which checkpoint, the count then).
    due: Option<(Tick, CheckpointId, u32)>,
    status: JobStatus,
    /// The aborts since the last completion, and the witnesses of findings (by index).
    aborts: Vec<(Tick, CheckpointId, CheckpointFailureReason)>,
    witnesses: BTreeMap<usize, Witness>,
}

impl<'r> Judgement<'r> for Recounter {
    fn observe(&mut self, entry: &'r TraceEntry) {
        if let TraceEvent::Engine(event) = &entry.event {
            self.see(entry.at, event);
        }
    }

    fn finish(mut self: Box<Self>) -> Vec<Violation> {
        let mut witnesses = std::mem::take(&mut self.witnesses);
        let recount = self.recount();
        let first_at = recount.findings.first().map(|(at, _)| *at);
        let findings = (recount.findings.into_iter().enumerate())
            .map(|(index, (at, message))| Finding {
                message,
                subject: format!("{at}"),
                witness: witnesses.remove(&index),
            })
            .collect();
        summarize_findings(Property::TolerableFailures, findings, first_at)
    }
}

impl Recounter {
    fn new(tolerable: u32, timeout_ticks: u64) -> Recounter {
        Recounter {
            tolerable,
            timeout_ticks,
            recount: FailureRecount::default(),
            savepoints: BTreeSet::new(),
            triggered: BTreeMap::new(),
            declined: BTreeSet::new(),
            counter: Counter::default(),
            due: None,
            status: JobStatus::Initializing,
            aborts: Vec::new(),
            witnesses: BTreeMap::new(),
        }
    }

    /// The recount once the trace is over.
    fn recount(self) -> FailureRecount {
        let Recounter {
            mut recount,
            due,
            tolerable,
            ..
        } = self;
        recount.miss(due, tolerable);
        recount
    }

    fn see(&mut self, at: Tick, event: &EngineEvent) {
        match event {
            EngineEvent::JobStatus { status, .. } => self.status = *status,
            EngineEvent::HaRecordAdopted { .. } => {
                // A new coordinator, with a new failure manager.
                self.counter = Counter::default();
                self.savepoints.clear();
                self.triggered.clear();
                self.declined.clear();
            }
            EngineEvent::TriggerStarted { checkpoint, kind } => {
                if *kind == TriggerKind::Savepoint {
                    self.savepoints.insert(*checkpoint);
                } else {
                    self.savepoints.remove(checkpoint);
                }
            }
            EngineEvent::CheckpointTriggered { checkpoint } => {
                self.triggered.insert(*checkpoint, at);
            }
            EngineEvent::Declined {
                checkpoint, reason, ..
            } => {
                self.declined.insert((*checkpoint, *reason));
            }
            EngineEvent::SnapshotRefused { checkpoint, .. } => {
                self.declined
                    .insert((*checkpoint, CheckpointFailureReason::Declined));
            }
            EngineEvent::CheckpointCompleted { checkpoint } => {
                self.aborts.clear();
                self.recount.miss(self.due.take(), self.tolerable);
                self.counter.succeeded(*checkpoint);
            }
            EngineEvent::CheckpointAborted { checkpoint, reason }
                if !self.savepoints.contains(checkpoint) =>
            {
                self.recount.miss(self.due.take(), self.tolerable);
                self.aborts.push((at, *checkpoint, *reason));
                self.aborted(at, *checkpoint, *reason);
            }
            EngineEvent::Failover { cause } if cause.contains(THRESHOLD_CAUSE) => {
                match self.due.take() {
                    Some((_, _, count)) => self.recount.at_failover.push(count),
                    None => {
                        let witness = self.uncounted_failover(at);
                        self.witnesses.insert(self.recount.findings.len(), witness);
                        self.recount.findings.push((at, format!(
                            "the job failed over for the tolerable-failure threshold with {} consecutive counted failure(s) and {} tolerated: {cause}",
                            self.counter.consecutive, self.tolerable
                        )))
                    }
                }
            }
            _ => {}
        }
    }

    /// Why the failover at `at` for the threshold had no cause: the aborts since the last
    /// completion, and which of them Flink's rule counts.
    fn uncounted_failover(&self, at: Tick) -> Witness {
        let jm = WitnessEvent::at_job_manager;
        let mut events: Vec<WitnessEvent> = (self.aborts.iter())
            .map(|(at, checkpoint, reason)| {
                let counted = if counts(*reason) {
                    "counted"
                } else {
                    "not counted"
                };
                jm(*at, format!("{checkpoint} aborted: {reason:?} ({counted})"))
            })
            .collect();
        events.push(jm(
            at,
            "failover for the tolerable-failure threshold".into(),
        ));
        let uncounted: Vec<String> = (self.aborts.iter())
            .filter(|(_, _, reason)| !counts(*reason))
            .map(|(_, checkpoint, reason)| format!("{checkpoint} ({reason:?})"))
            .collect();
        let cause = format!(
            "the job failed over at {at} for the tolerable-failure threshold ({} tolerated), but Flink's rule counts only {} of the failures since the last completion (not counted: {})",
            self.tolerable,
            self.counter.consecutive,
            match uncounted.is_empty() {
                true => "none".to_string(),
                false => uncounted.join(", "),
            }
        );
        Witness::new(
            "failover-on-uncounted-failures",
            cause,
            "failovers for the threshold on failures Flink does not count".into(),
            events,
        )
    }

    fn aborted(&mut self, at: Tick, checkpoint: CheckpointId, reason: CheckpointFailureReason) {
        let evidence = Evidence {
            triggered: self.triggered.get(&checkpoint).copied(),
            declined: &self.declined,
            timeout_ticks: self.timeout_ticks,
        };
        if let Some(finding) = evidence.contradicts(at, checkpoint, reason) {
            self.recount.findings.push((at, finding));
        }
        if counts(reason) && self.counter.failed(checkpoint) > self.tolerable {
            // Flink starts counting again at once; the failover it asks for happens only if
            // the job runs (one already restarting ignores it).
            let count = self.counter.consecutive;
            self.counter.passed_threshold();
            if matches!(self.status, JobStatus::Running | JobStatus::Created) {
                self.due = Some((at, checkpoint, count));
            }
        }
    }
}

impl FailureRecount {
    /// The count passed the threshold at `due` and no failover followed.
    fn miss(&mut self, due: Option<(Tick, CheckpointId, u32)>, tolerable: u32) {
        if let Some((at, checkpoint, _)) = due {
            self.missed += 1;
            self.findings.push((at, format!(
                "the failure of {checkpoint} made {} consecutive counted failures with {tolerable} tolerated, and the job did not fail over",
                tolerable + 1
            )));
        }
    }
}

/// The tolerable-failures property of a run: its recount finds nothing against the rule.
pub fn tolerable_failures(trace: &[TraceEntry], plan: &ExecutionPlan) -> Vec<Violation> {
    let config = &plan.checkpoint;
    super::over(
        Recounter::new(config.tolerable_failed, config.timeout_ticks),
        trace,
    )
}

/// Flink's consecutive-failure counter.
#[derive(Default)]
struct Counter {
    consecutive: u32,
    counted: BTreeSet<CheckpointId>,
    last_succeeded: CheckpointId,
}

impl Counter {
    /// A counted failure of `checkpoint`; returns the count after it.
    fn failed(&mut self, checkpoint: CheckpointId) -> u32 {
        if checkpoint > self.last_succeeded && self.counted.insert(checkpoint) {
            self.consecutive += 1;
        }
        self.consecutive
    }

    fn passed_threshold(&mut self) {
        self.consecutive = 0;
        self.counted.clear();
    }

    fn succeeded(&mut self, checkpoint: CheckpointId) {
        if checkpoint > self.last_succeeded {
            self.last_succeeded = checkpoint;
            self.consecutive = 0;
            self.counted.retain(|id| *id > checkpoint);
        }
    }
}

/// What the trace shows about one aborted checkpoint.
struct Evidence<'a> {
    triggered: Option<Tick>,
    declined: &'a BTreeSet<(CheckpointId, CheckpointFailureReason)>,
    timeout_ticks: u64,
}

impl Evidence<'_> {
    /// Why the trace contradicts aborting `checkpoint` at `at` for `reason`, if it does.
    fn contradicts(
        &self,
        at: Tick,
        checkpoint: CheckpointId,
        reason: CheckpointFailureReason,
    ) -> Option<String> {
        use CheckpointFailureReason as R;
        match reason {
            R::Expired => match self.triggered {
                Some(triggered) if at.since(triggered) < self.timeout_ticks => Some(format!(
                    "{checkpoint} was aborted as expired at {at}, {} ms after its trigger at {triggered}; the timeout is {} ms",
                    at.since(triggered),
                    self.timeout_ticks
                )),
                None => Some(format!("{checkpoint} was aborted as expired at {at} but never triggered")),
                Some(_) => None,
            },
            R::Declined | R::AsyncException if !self.declined.contains(&(checkpoint, reason)) => {
                Some(format!(
                    "{checkpoint} was aborted at {at} for {reason:?}, which no task declined it with"
                ))
            }
            _ => None,
        }
    }
}

/// Failovers for failed checkpoints as Flink's rule says.
pub struct TolerableFailures;

impl Checker for TolerableFailures {
    fn property(&self) -> Property {
        Property::TolerableFailures
    }
    fn description(&self) -> &str {
        "the job fails over for failed checkpoints exactly when Flink's CheckpointFailureManager rule, recounted from the trace, says so"
    }
    fn judge<'r>(&self, run: &'r JudgedRun<'r>) -> Box<dyn Judgement<'r> + 'r> {
        let config = &run.plan.checkpoint;
        Box::new(Recounter::new(
            config.tolerable_failed,
            config.timeout_ticks,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::tests::engine;
    use snapsim_core::ids::{Attempt, TaskId};

    fn aborted(at: u64, id: u64, reason: CheckpointFailureReason) -> TraceEntry {
        let checkpoint = CheckpointId(id);
        engine(at, EngineEvent::CheckpointAborted { checkpoint, reason })
    }

    fn triggered(at: u64, id: u64) -> TraceEntry {
        engine(
            at,
            EngineEvent::CheckpointTriggered {
                checkpoint: CheckpointId(id),
            },
        )
    }

    fn declined(at: u64, id: u64, reason: CheckpointFailureReason) -> [TraceEntry; 2] {
        let checkpoint = CheckpointId(id);
        let task = TaskId(1);
        let attempt = Attempt(1);
        [
            engine(
                at,
                EngineEvent::Declined {
                    task,
                    attempt,
                    checkpoint,
                    reason,
                },
            ),
            aborted(at, id, reason),
        ]
    }

    fn threshold_failover(at: u64) -> TraceEntry {
        let cause = format!("exceeded checkpoint {THRESHOLD_CAUSE} at chk-2 (Declined)");
        engine(at, EngineEvent::Failover { cause })
    }

    #[test]
    fn the_job_fails_over_exactly_when_the_count_passes_the_tolerable_number() {
        // One tolerated: the second consecutive counted failure fails the job over; a
        // finalization failure between them counts for nothing.
        use CheckpointFailureReason as R;
        let running = engine(
            0,
            EngineEvent::JobStatus {
                status: JobStatus::Running,
                attempt: Attempt(1),
            },
        );
        let mut trace = vec![running, triggered(0, 1), triggered(10, 2), triggered(20, 3)];
        trace.extend(declined(30, 1, R::Declined));
        trace.push(aborted(31, 3, R::FinalizeFailure));
        trace.extend(declined(40, 2, R::AsyncException));
        let mut right = trace.clone();
        right.push(threshold_failover(40));
        let recount = recount_failures(&right, 1, 1_000);
        assert_eq!((recount.at_failover, recount.missed), (vec![2], 0));
        assert!(recount.findings.is_empty(), "{:?}", recount.findings);
        // No failover: missed. A failover one failure early: unjustified.
        assert_eq!(recount_failures(&trace, 1, 1_000).missed, 1);
        let mut early = trace[..7].to_vec();
        early.push(threshold_failover(31));
        let findings = recount_failures(&early, 1, 1_000).findings;
        assert!(
            findings[0]
                .1
                .contains("with 1 consecutive counted failure(s)"),
            "{findings:?}"
        );
        // A job already restarting ignores the failover the count asks for (and so does the
        // engine's failure manager, which starts counting again).
        let mut restarting = trace.clone();
        restarting[0] = engine(
            0,
            EngineEvent::JobStatus {
                status: JobStatus::Restarting,
                attempt: Attempt(1),
            },
        );
        assert!(recount_failures(&restarting, 1, 1_000).findings.is_empty());
    }

    #[test]
    fn reasons_the_trace_contradicts_are_flagged() {
        // An expiry before the timeout, and a decline reason no task gave.
        use CheckpointFailureReason as R;
        let early_expiry = vec![triggered(0, 1), aborted(500, 1, R::Expired)];
        let findings = recount_failures(&early_expiry, 5, 1_000).findings;
        assert!(
            findings[0].1.contains("500 ms after its trigger"),
            "{findings:?}"
        );
        let made_up = vec![triggered(0, 1), aborted(5, 1, R::Declined)];
        let findings = recount_failures(&made_up, 5, 1_000).findings;
        assert!(
            findings[0].1.contains("which no task declined it with"),
            "{findings:?}"
        );
    }
}
