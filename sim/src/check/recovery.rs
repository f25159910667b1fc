//! Recovery and the configuration's rules: restores use the latest completed checkpoint and
//! restore what was snapshotted; ids increase; min pause, max concurrent and timeout hold.

use super::{differing_keys, fmt_opt, summarize, Property, Violation};
use super::{Checker, JudgedRun};
use crate::trace::{TraceEntry, TraceEvent};
use snapsim_core::config::CheckpointConfig;
use snapsim_core::ids::{CheckpointId, TaskId, Tick};
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
    let config: &CheckpointConfig = &plan.checkpoint;
    let mut messages = Vec::new();
    let mut first_at: Option<Tick> = None;
    let mut flag = |messages: &mut Vec<String>, at: Tick, message: String| {
        messages.push(format!("{message} (at {at})"));
        first_at = first_at.or(Some(at));
    };
    let mut latest_completed: Option<CheckpointId> = None;
    let mut persisting: BTreeSet<CheckpointId> = BTreeSet::new();
    let mut highest_triggered: Option<CheckpointId> = None;
    let mut triggered_at: BTreeMap<CheckpointId, Tick> = BTreeMap::new();
    let mut life = Coordination::default();
    let mut snapshots: BTreeMap<(TaskId, CheckpointId), &OperatorState> = BTreeMap::new();
    let mut in_flight_recorded: BTreeMap<(TaskId, CheckpointId), u64> = BTreeMap::new();
    // Each restore of a known snapshot: when, the task, the checkpoint, the in-flight records
    // recorded and those restored.
    let mut restores: Vec<(Tick, TaskId, CheckpointId, u64, u64)> = Vec::new();
    let mut latest_restore: BTreeMap<TaskId, usize> = BTreeMap::new();
    for entry in trace {
        let at = entry.at;
        let event = match &entry.event {
            TraceEvent::Crash | TraceEvent::Restart if entry.node == Address::JobManager => {
                life = Coordination::default();
                continue;
            }
            TraceEvent::Engine(event) => event,
            _ => continue,
        };
        match event {
            // A JobManager that starts over from its HA record has a new coordinator.
            EngineEvent::JobStatus {
                status: JobStatus::Initializing,
                ..
            } => life = Coordination::default(),
            EngineEvent::TriggerStarted { checkpoint, kind } => {
                // Judged where the coordinator decides (Flink's `CheckpointRequestDecider`).
                if *kind != TriggerKind::Savepoint
                    && life.pending.len() >= config.max_concurrent as usize
                {
                    flag(
                        &mut messages,
                        at,
                        format!(
                            "{checkpoint} triggered with {} pending (max concurrent {})",
                            life.pending.len(),
                            config.max_concurrent
                        ),
                    );
                }
                if let (TriggerKind::Periodic, Some(last)) = (kind, life.last_completion) {
                    if at.since(last) < config.min_pause_ticks {
                        flag(
                            &mut messages,
                            at,
                            format!(
                                "{checkpoint} triggered {} ms after the last completion (min pause {} ms)",
                                at.since(last),
                                config.min_pause_ticks
                            ),
                        );
                    }
                }
                life.pending.insert(*checkpoint, at);
            }
            EngineEvent::CheckpointTriggered { checkpoint }
            | EngineEvent::SavepointTriggered { checkpoint } => {
                if let Some(highest) = highest_triggered.filter(|h| checkpoint <= h) {
                    flag(
                        &mut messages,
                        at,
                        format!("{checkpoint} triggered after {highest}: ids must increase"),
                    );
                }
                highest_triggered = highest_triggered.max(Some(*checkpoint));
                triggered_at.insert(*checkpoint, at);
            }
            EngineEvent::SavepointCompleted { checkpoint, .. } => {
                // A savepoint's completion counts for the min pause too (Flink's `CheckpointRequestDecider`).
                life.pending.remove(checkpoint);
                life.last_completion = Some(at);
            }
            EngineEvent::CompletionPersisting { checkpoint, .. } => {
                persisting.insert(*checkpoint);
            }
            EngineEvent::AllAcknowledged { checkpoint } => {
                if let Some(&triggered) = triggered_at.get(checkpoint) {
                    if at.since(triggered) > config.timeout_ticks {
                        flag(
                            &mut messages,
                            at,
                            format!(
                                "{checkpoint} collected its last acknowledgement {} ms after its trigger (timeout {} ms)",
                                at.since(triggered),
                                config.timeout_ticks
                            ),
                        );
                    }
                }
            }
            EngineEvent::CheckpointCompleted { checkpoint } => {
                life.pending.remove(checkpoint);
                life.last_completion = Some(at);
                latest_completed = latest_completed.max(Some(*checkpoint));
            }
            EngineEvent::CheckpointAborted { checkpoint, reason } => {
                life.pending.remove(checkpoint);
                if *reason == CheckpointFailureReason::Expired {
                    if let Some(&triggered) = triggered_at.get(checkpoint) {
                        if at.since(triggered) < config.timeout_ticks {
                            flag(
                                &mut messages,
                                at,
                                format!(
                                    "{checkpoint} expired {} ms after its trigger (timeout {} ms)",
                                    at.since(triggered),
                                    config.timeout_ticks
                                ),
                            );
                        }
                    }
                }
            }
            // A job started from a path has that snapshot as its only completed checkpoint.
            EngineEvent::RestoredFromPath { checkpoint, .. } => {
                latest_completed = Some(*checkpoint);
                highest_triggered = highest_triggered.max(Some(*checkpoint));
            }
            EngineEvent::Deployed { attempt, restored } => {
                let wrong = match (restored, latest_completed) {
                    (None, None) => false,
                    (None, Some(_)) => true,
                    (Some(r), latest) => {
                        Some(*r) < latest || (Some(*r) > latest && !persisting.contains(r))
                    }
                };
                if wrong {
                    let restored = fmt_opt(restored.as_ref());
                    let latest = fmt_opt(latest_completed.as_ref());
                    flag(
                        &mut messages,
                        at,
                        format!("{attempt} restores {restored}, but the latest completed checkpoint is {latest}"),
                    );
                }
            }
            EngineEvent::SnapshotTaken {
                task,
                checkpoint,
                state,
                ..
            } => {
                snapshots.insert((*task, *checkpoint), state);
            }
            EngineEvent::InFlightRecorded {
                task,
                checkpoint,
                records,
                ..
            } => {
                in_flight_recorded.insert((*task, *checkpoint), *records);
            }
            EngineEvent::InFlightRestored {
                task,
                checkpoint,
                records,
            } => {
                if let Some(&index) = latest_restore.get(task) {
                    let restore = &mut restores[index];
                    if restore.2 == *checkpoint {
                        restore.4 += records;
                    }
                }
            }
            EngineEvent::Restored {
                task,
                checkpoint,
                state,
            } => {
                // Restores from a path read snapshots of another run: nothing to compare.
                if let Some(snapshotted) = snapshots.get(&(*task, *checkpoint)) {
                    let recorded = in_flight_recorded.get(&(*task, *checkpoint));
                    latest_restore.insert(*task, restores.len());
                    restores.push((at, *task, *checkpoint, *recorded.unwrap_or(&0), 0));
                    if *snapshotted != state {
                        flag(
                            &mut messages,
                            at,
                            format!("{task} restored {checkpoint} with another state than it snapshotted: {}", state_difference(snapshotted, state)),
                        );
                    }
                }
            }
            _ => {}
        }
    }
    for (at, task, checkpoint, recorded, restored) in restores {
        if recorded != restored {
            flag(
                &mut messages,
                at,
                format!("{task} restored {restored} in-flight records of {checkpoint}, its snapshot recorded {recorded}"),
            );
        }
    }
    summarize(Property::Recovery, messages, first_at)
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
    fn check(&self, run: &JudgedRun) -> Vec<Violation> {
        recovery(run.own_trace(), run.plan)
    }
}
