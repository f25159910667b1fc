//! Recovery and the configuration's rules: restores use the latest completed checkpoint and
//! restore what was snapshotted; ids increase; min pause, max concurrent and timeout hold.

use super::witness::{Finding, Witness, WitnessEvent};
use super::{differing_keys, fmt_opt, summarize_findings, Property, Violation};
use super::{Checker, JudgedRun, Judgement};
use crate::trace::{TraceEntry, TraceEvent};
use snapsim_core::config::CheckpointConfig;
use snapsim_core::ids::{Attempt, CheckpointId, TaskId, Tick};
use snapsim_core::job::ExecutionPlan;
use snapsim_core::messages::{Address, CheckpointFailureReason};
use snapsim_core::operator::OperatorState;
use snapsim_core::trace::{EngineEvent, JobStatus, TriggerKind};
use std::collections::{BTreeMap, BTreeSet};
/// What the recovery checker tracks about one JobManager life.
#[derive(Default)]
struct Coordination {
    /// Checkpoints and savepoints started and not yet resolved: id → start time.
    pending: BTreeMap<CheckpointId, Tick>,
    last_completion: Option<Tick>,
}

/// Recovery and the checkpoint config rules:
/// - every deployment restores the latest completed checkpoint, or a later one whose
///   completion was being persisted (the JobManager cannot know it failed);
/// - every task restores exactly the state it snapshotted for that checkpoint;
/// - checkpoint ids strictly increase, across JobManager restarts too;
/// - periodic triggers keep `min_pause_ticks` after the last completion and never exceed
///   `max_concurrent` pending checkpoints; a checkpoint expires at its timeout, not before,
///   unless all acknowledgements are in (finalization has its own storage timeouts).
pub fn recovery(trace: &[TraceEntry], plan: &ExecutionPlan) -> Vec<Violation> {
    super::over(RecoveryCheck::new(&plan.checkpoint), trace)
}

/// Each restore of a known snapshot, kept to compare its in-flight records once the trace is
/// over (they are restored after the state, possibly in several parts).
struct Restore {
    at: Tick,
    task: TaskId,
    checkpoint: CheckpointId,
    /// The in-flight records the snapshot recorded.
    recorded: u64,
    /// Those restored so far.
    restored: u64,
}

/// The recovery checker's state while it walks the trace, with one method per event kind.
struct RecoveryCheck<'t> {
    config: &'t CheckpointConfig,
    findings: Vec<Finding>,
    first_at: Option<Tick>,
    latest_completed: Option<CheckpointId>,
    persisting: BTreeSet<CheckpointId>,
    highest_triggered: Option<CheckpointId>,
    triggered_at: BTreeMap<CheckpointId, Tick>,
    life: Coordination,
    snapshots: BTreeMap<(TaskId, CheckpointId), &'t OperatorState>,
    in_flight_recorded: BTreeMap<(TaskId, CheckpointId), u64>,
    restores: Vec<Restore>,
    /// Each task's latest entry in `restores`.
    latest_restore: BTreeMap<TaskId, usize>,
}

impl<'t> Judgement<'t> for RecoveryCheck<'t> {
    fn observe(&mut self, entry: &'t TraceEntry) {
        let event = match &entry.event {
            TraceEvent::Crash | TraceEvent::Restart if entry.node == Address::JobManager => {
                self.life = Coordination::default();
                return;
            }
            TraceEvent::Engine(event) => event,
            _ => return,
        };
        self.see(event, entry.at);
    }

    fn finish(self: Box<Self>) -> Vec<Violation> {
        self.violations()
    }
}

impl<'t> RecoveryCheck<'t> {
    fn new(config: &'t CheckpointConfig) -> Self {
        RecoveryCheck {
            config,
            findings: Vec::new(),
            first_at: None,
            latest_completed: None,
            persisting: BTreeSet::new(),
            highest_triggered: None,
            triggered_at: BTreeMap::new(),
            life: Coordination::default(),
            snapshots: BTreeMap::new(),
            in_flight_recorded: BTreeMap::new(),
            restores: Vec::new(),
            latest_restore: BTreeMap::new(),
        }
    }

    fn flag(&mut self, at: Tick, message: String) {
        self.flag_witnessed(at, message, None);
    }

    fn flag_witnessed(&mut self, at: Tick, message: String, witness: Option<Witness>) {
        self.findings.push(Finding {
            message: format!("{message} (at {at})"),
            subject: format!("the restore at {at}"),
            witness,
        });
        self.first_at = self.first_at.or(Some(at));
    }

    /// Takes one engine event into account, flagging what it breaks.
    fn see(&mut self, event: &'t EngineEvent, at: Tick) {
        match event {
            // A JobManager that starts over from its HA record has a new coordinator.
            EngineEvent::JobStatus {
                status: JobStatus::Initializing,
                ..
            } => self.life = Coordination::default(),
            EngineEvent::TriggerStarted { checkpoint, kind } => {
                self.trigger_started(*checkpoint, *kind, at)
            }
            EngineEvent::CheckpointTriggered { checkpoint }
            | EngineEvent::SavepointTriggered { checkpoint } => self.triggered(*checkpoint, at),
            EngineEvent::SavepointCompleted { checkpoint, .. } => {
                // A savepoint's completion counts for the min pause too (Flink's `CheckpointRequestDecider`).
                self.life.pending.remove(checkpoint);
                self.life.last_completion = Some(at);
            }
            EngineEvent::CompletionPersisting { checkpoint, .. } => {
                self.persisting.insert(*checkpoint);
            }
            EngineEvent::AllAcknowledged { checkpoint } => self.all_acknowledged(*checkpoint, at),
            EngineEvent::CheckpointCompleted { checkpoint } => {
                self.life.pending.remove(checkpoint);
                self.life.last_completion = Some(at);
                self.latest_completed = self.latest_completed.max(Some(*checkpoint));
            }
            EngineEvent::CheckpointAborted { checkpoint, reason } => {
                self.aborted(*checkpoint, reason, at)
            }
            // A job started from a path has that snapshot as its only completed checkpoint.
            EngineEvent::RestoredFromPath { checkpoint, .. } => {
                self.latest_completed = Some(*checkpoint);
                self.highest_triggered = self.highest_triggered.max(Some(*checkpoint));
            }
            EngineEvent::Deployed { attempt, restored } => {
                self.deployed(attempt, restored.as_ref(), at)
            }
            _ => self.see_task_state(event, at),
        }
    }

    /// The events about what tasks snapshot and restore.
    fn see_task_state(&mut self, event: &'t EngineEvent, at: Tick) {
        match event {
            EngineEvent::SnapshotTaken {
                task,
                checkpoint,
                state,
                ..
            } => {
                self.snapshots.insert((*task, *checkpoint), state);
            }
            EngineEvent::InFlightRecorded {
                task,
                checkpoint,
                records,
                ..
            } => {
                self.in_flight_recorded
                    .insert((*task, *checkpoint), *records);
            }
            EngineEvent::InFlightRestored {
                task,
                checkpoint,
                records,
            } => {
                if let Some(&index) = self.latest_restore.get(task) {
                    let restore = &mut self.restores[index];
                    if restore.checkpoint == *checkpoint {
                        restore.restored += records;
                    }
                }
            }
            EngineEvent::Restored {
                task,
                checkpoint,
                state,
            } => self.restored(*task, *checkpoint, state, at),
            _ => {}
        }
    }

    /// Judged where the coordinator decides (Flink's `CheckpointRequestDecider`).
    fn trigger_started(&mut self, checkpoint: CheckpointId, kind: TriggerKind, at: Tick) {
        let config = self.config;
        if kind != TriggerKind::Savepoint
            && self.life.pending.len() >= config.max_concurrent as usize
        {
            let pending = self.life.pending.len();
            self.flag(
                at,
                format!(
                    "{checkpoint} triggered with {pending} pending (max concurrent {})",
                    config.max_concurrent
                ),
            );
        }
        if let (TriggerKind::Periodic, Some(last)) = (kind, self.life.last_completion) {
            if at.since(last) < config.min_pause_ticks {
                self.flag(
                    at,
                    format!(
                        "{checkpoint} triggered {} ms after the last completion (min pause {} ms)",
                        at.since(last),
                        config.min_pause_ticks
                    ),
                );
            }
        }
        self.life.pending.insert(checkpoint, at);
    }

    fn triggered(&mut self, checkpoint: CheckpointId, at: Tick) {
        if let Some(highest) = self.highest_triggered.filter(|h| checkpoint <= *h) {
            self.flag(
                at,
                format!("{checkpoint} triggered after {highest}: ids must increase"),
            );
        }
        self.highest_triggered = self.highest_triggered.max(Some(checkpoint));
        self.triggered_at.insert(checkpoint, at);
    }

    fn all_acknowledged(&mut self, checkpoint: CheckpointId, at: Tick) {
        if let Some(&triggered) = self.triggered_at.get(&checkpoint) {
            if at.since(triggered) > self.config.timeout_ticks {
                self.flag(
                    at,
                    format!(
                        "{checkpoint} collected its last acknowledgement {} ms after its trigger (timeout {} ms)",
                        at.since(triggered),
                        self.config.timeout_ticks
                    ),
                );
            }
        }
    }

    fn aborted(&mut self, checkpoint: CheckpointId, reason: &CheckpointFailureReason, at: Tick) {
        self.life.pending.remove(&checkpoint);
        if *reason == CheckpointFailureReason::Expired {
            if let Some(&triggered) = self.triggered_at.get(&checkpoint) {
                if at.since(triggered) < self.config.timeout_ticks {
                    self.flag(
                        at,
                        format!(
                            "{checkpoint} expired {} ms after its trigger (timeout {} ms)",
                            at.since(triggered),
                            self.config.timeout_ticks
                        ),
                    );
                }
            }
        }
    }

    fn deployed(&mut self, attempt: &Attempt, restored: Option<&CheckpointId>, at: Tick) {
        let latest_completed = self.latest_completed;
        let wrong = match (restored, latest_completed) {
            (None, None) => false,
            (None, Some(_)) => true,
            (Some(r), latest) => {
                Some(*r) < latest || (Some(*r) > latest && !self.persisting.contains(r))
            }
        };
        if wrong {
            let witness = self.wrong_restore(attempt, restored.copied(), at);
            let restored = fmt_opt(restored);
            let latest = fmt_opt(latest_completed.as_ref());
            let message = format!(
                "{attempt} restores {restored}, but the latest completed checkpoint is {latest}"
            );
            self.flag_witnessed(at, message, witness);
        }
    }

    /// Why restoring `restored` is wrong: when it was triggered, and what had completed.
    fn wrong_restore(
        &self,
        attempt: &Attempt,
        restored: Option<CheckpointId>,
        at: Tick,
    ) -> Option<Witness> {
        let restored = restored?;
        let latest = self.latest_completed;
        let jm = |at: Tick, what: String| WitnessEvent {
            at,
            node: Address::JobManager,
            what,
        };
        let mut events = Vec::new();
        if let Some(&triggered) = self.triggered_at.get(&restored) {
            events.push(jm(triggered, format!("{restored} triggered")));
        }
        events.push(jm(at, format!("{attempt} deployed from {restored}")));
        let (shape, cause, root) = match latest {
            Some(latest) if restored > latest => (
                "restored-uncompleted-checkpoint",
                format!("{attempt} was deployed at {at} from {restored}, which never completed (the latest completed checkpoint was {latest}): a restore must take the latest completed checkpoint"),
                format!("a failover restored {restored}, which had not completed"),
            ),
            Some(latest) => (
                "restored-older-checkpoint",
                format!("{attempt} was deployed at {at} from {restored}, older than the latest completed {latest}: the output committed since {restored} is read again"),
                format!("a failover restored {restored}, older than the latest completed {latest}"),
            ),
            None => (
                "restored-uncompleted-checkpoint",
                format!("{attempt} was deployed at {at} from {restored}, though no checkpoint had completed"),
                format!("a failover restored {restored}, which had not completed"),
            ),
        };
        Some(Witness::new(shape, cause, root, events))
    }

    fn restored(
        &mut self,
        task: TaskId,
        checkpoint: CheckpointId,
        state: &OperatorState,
        at: Tick,
    ) {
        // Restores from a path read snapshots of another run: nothing to compare.
        if let Some(&snapshotted) = self.snapshots.get(&(task, checkpoint)) {
            let recorded = self.in_flight_recorded.get(&(task, checkpoint));
            self.latest_restore.insert(task, self.restores.len());
            self.restores.push(Restore {
                at,
                task,
                checkpoint,
                recorded: *recorded.unwrap_or(&0),
                restored: 0,
            });
            if snapshotted != state {
                self.flag(
                    at,
                    format!(
                        "{task} restored {checkpoint} with another state than it snapshotted: {}",
                        state_difference(snapshotted, state)
                    ),
                );
            }
        }
    }

    /// Flags the restores whose in-flight records differ from those recorded, and summarizes.
    fn violations(mut self) -> Vec<Violation> {
        for restore in std::mem::take(&mut self.restores) {
            let Restore {
                at,
                task,
                checkpoint,
                recorded,
                restored,
            } = restore;
            if recorded != restored {
                self.flag(
                    at,
                    format!("{task} restored {restored} in-flight records of {checkpoint}, its snapshot recorded {recorded}"),
                );
            }
        }
        summarize_findings(Property::Recovery, self.findings, self.first_at)
    }
}

/// A short description of how two states differ.
fn state_difference(snapshotted: &OperatorState, restored: &OperatorState) -> String {
    match (snapshotted, restored) {
        (OperatorState::Keyed { values: a }, OperatorState::Keyed { values: b }) => {
            let differing: Vec<String> = differing_keys(a, b)
                .take(3)
                .map(|(k, a, b)| {
                    format!(
                        "key {k} snapshotted {}, restored {}",
                        fmt_opt(a),
                        fmt_opt(b)
                    )
                })
                .collect();
            differing.join("; ")
        }
        _ => format!("snapshotted {snapshotted:?}, restored {restored:?}"),
    }
}

/// Restores and the configuration's rules.
pub struct Recovery;

impl Checker for Recovery {
    fn property(&self) -> Property {
        Property::Recovery
    }
    fn description(&self) -> &str {
        "restores use the latest completed checkpoint and restore what was snapshotted; ids increase; min pause, max concurrent and timeout hold"
    }
    fn judge<'r>(&self, run: &'r JudgedRun<'r>) -> Box<dyn Judgement<'r> + 'r> {
        Box::new(RecoveryCheck::new(&run.plan.checkpoint))
    }
}
