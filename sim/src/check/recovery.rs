//! Recovery and the configuration's rules: restores use the latest completed checkpoint and
//! restore what was snapshotted; ids increase; min pause, max concurrent and timeout hold.

use super::lines::{LocalSnapshots, RecordRange};
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
    super::over(RecoveryCheck::new(plan), trace)
}

/// Each restore of a known snapshot, kept to compare its in-flight records once the trace is
/// over (they are restored after the state, possibly in several parts).
struct Restore<'t> {
    /// The task's `Restored` entry.
    entry: &'t TraceEntry,
    task: TaskId,
    checkpoint: CheckpointId,
    /// The in-flight records the snapshot recorded, and where it recorded them.
    recorded: u64,
    recorded_entry: Option<&'t TraceEntry>,
    /// Those restored so far.
    restored: u64,
}

/// The recovery checker's state while it walks the trace, with one method per event kind.
struct RecoveryCheck<'t> {
    plan: &'t ExecutionPlan,
    config: &'t CheckpointConfig,
    findings: Vec<Finding>,
    first_at: Option<Tick>,
    latest_completed: Option<CheckpointId>,
    persisting: BTreeSet<CheckpointId>,
    highest_triggered: Option<CheckpointId>,
    triggered_at: BTreeMap<CheckpointId, Tick>,
    life: Coordination,
    snapshots: BTreeMap<(TaskId, CheckpointId), (&'t TraceEntry, &'t OperatorState)>,
    in_flight_recorded: BTreeMap<(TaskId, CheckpointId), (u64, &'t TraceEntry)>,
    restores: Vec<Restore<'t>>,
    /// Each task's latest entry in `restores`.
    latest_restore: BTreeMap<TaskId, usize>,
    /// Checkpointing without barriers: the local snapshots lines are made of, per line and
    /// sender the records in transit, and per restored task those it must replay.
    local: LocalSnapshots<'t>,
    to_replay: BTreeMap<(TaskId, CheckpointId), Vec<RecordRange>>,
    /// Per restored task, the records it must replay, with the line and its restore.
    replay_due: BTreeMap<TaskId, (CheckpointId, Vec<RecordRange>, &'t TraceEntry)>,
}

impl<'t> Judgement<'t> for RecoveryCheck<'t> {
    fn observe(&mut self, entry: &'t TraceEntry) {
        self.local.observe(entry);
        let event = match &entry.event {
            TraceEvent::Crash | TraceEvent::Restart if entry.node == Address::JobManager => {
                self.life = Coordination::default();
                return;
            }
            TraceEvent::Engine(event) => event,
            _ => return,
        };
        self.see(entry, event);
    }

    fn finish(self: Box<Self>) -> Vec<Violation> {
        self.violations()
    }
}

impl<'t> RecoveryCheck<'t> {
    fn new(plan: &'t ExecutionPlan) -> Self {
        RecoveryCheck {
            plan,
            config: &plan.checkpoint,
            local: LocalSnapshots::default(),
            to_replay: BTreeMap::new(),
            replay_due: BTreeMap::new(),
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

    /// Flags a broken rule: its message reads the `events` as the cause; `root` is what the
    /// violations of the rule share.
    fn broke(&mut self, shape: &str, root: &str, message: String, events: Vec<WitnessEvent>) {
        let at = events.last().expect("a rule is broken at an event").at;
        let witness = Witness::new(shape, message.clone(), root.to_string(), events);
        self.flag_witnessed(at, message, Some(witness));
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
    fn see(&mut self, entry: &'t TraceEntry, event: &'t EngineEvent) {
        let at = entry.at;
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
            _ => self.see_task_state(entry, event),
        }
    }

    /// The events about what tasks snapshot and restore.
    fn see_task_state(&mut self, entry: &'t TraceEntry, event: &'t EngineEvent) {
        match event {
            EngineEvent::SnapshotTaken {
                task,
                checkpoint,
                state,
                ..
            } => {
                self.snapshots.insert((*task, *checkpoint), (entry, state));
            }
            EngineEvent::InFlightRecorded {
                task,
                checkpoint,
                records,
                ..
            } => {
                self.in_flight_recorded
                    .insert((*task, *checkpoint), (*records, entry));
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
            } => self.restored(entry, (*task, *checkpoint), state),
            EngineEvent::RecoveryLineFound {
                checkpoint,
                members,
                ..
            } => self.line_found(*checkpoint, members),
            EngineEvent::LogReplayed { task, channels, .. } => {
                self.log_replayed(entry, *task, channels)
            }
            _ => {}
        }
    }

    /// Judged where the coordinator decides (Flink's `CheckpointRequestDecider`).
    fn trigger_started(&mut self, checkpoint: CheckpointId, kind: TriggerKind, at: Tick) {
        let config = self.config;
        let started = WitnessEvent::at_job_manager(at, format!("{checkpoint} started ({kind:?})"));
        if kind != TriggerKind::Savepoint
            && self.life.pending.len() >= config.max_concurrent as usize
        {
            let pending = self.life.pending.len();
            let mut events: Vec<WitnessEvent> = (self.life.pending.iter())
                .map(|(id, &at)| {
                    WitnessEvent::at_job_manager(at, format!("{id} started, still pending"))
                })
                .collect();
            events.push(started.clone());
            let message = format!(
                "{checkpoint} triggered with {pending} pending (max concurrent {})",
                config.max_concurrent
            );
            let root = "a trigger beyond the checkpoints' max concurrent";
            self.broke("max-concurrent-exceeded", root, message, events);
        }
        if let (TriggerKind::Periodic, Some(last)) = (kind, self.life.last_completion) {
            if at.since(last) < config.min_pause_ticks {
                let message = format!(
                    "{checkpoint} triggered {} ms after the last completion (min pause {} ms)",
                    at.since(last),
                    config.min_pause_ticks
                );
                let events = vec![
                    WitnessEvent::at_job_manager(last, "the last completion".to_string()),
                    started,
                ];
                let root = "periodic triggers within the min pause";
                self.broke("min-pause-not-kept", root, message, events);
            }
        }
        self.life.pending.insert(checkpoint, at);
    }

    fn triggered(&mut self, checkpoint: CheckpointId, at: Tick) {
        if let Some(highest) = self.highest_triggered.filter(|h| checkpoint <= *h) {
            let message = format!("{checkpoint} triggered after {highest}: ids must increase");
            let mut events: Vec<WitnessEvent> = self.trigger_of(highest).into_iter().collect();
            events.push(trigger(checkpoint, at));
            let root = "checkpoint ids that do not increase";
            self.broke("checkpoint-id-not-increasing", root, message, events);
        }
        self.highest_triggered = self.highest_triggered.max(Some(checkpoint));
        self.triggered_at.insert(checkpoint, at);
    }

    fn all_acknowledged(&mut self, checkpoint: CheckpointId, at: Tick) {
        if let Some(&triggered) = self.triggered_at.get(&checkpoint) {
            if at.since(triggered) > self.config.timeout_ticks {
                let message = format!(
                    "{checkpoint} collected its last acknowledgement {} ms after its trigger (timeout {} ms)",
                    at.since(triggered),
                    self.config.timeout_ticks
                );
                let events = vec![
                    trigger(checkpoint, triggered),
                    WitnessEvent::at_job_manager(
                        at,
                        format!("{checkpoint}'s last acknowledgement"),
                    ),
                ];
                let root = "checkpoints kept past their timeout";
                self.broke("kept-past-timeout", root, message, events);
            }
        }
    }

    fn aborted(&mut self, checkpoint: CheckpointId, reason: &CheckpointFailureReason, at: Tick) {
        self.life.pending.remove(&checkpoint);
        if *reason == CheckpointFailureReason::Expired {
            if let Some(&triggered) = self.triggered_at.get(&checkpoint) {
                if at.since(triggered) < self.config.timeout_ticks {
                    let message = format!(
                        "{checkpoint} expired {} ms after its trigger (timeout {} ms)",
                        at.since(triggered),
                        self.config.timeout_ticks
                    );
                    let events = vec![
                        trigger(checkpoint, triggered),
                        WitnessEvent::at_job_manager(
                            at,
                            format!("{checkpoint} aborted as expired"),
                        ),
                    ];
                    let root = "checkpoints expired before their timeout";
                    self.broke("expired-before-timeout", root, message, events);
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

    /// The trigger of `checkpoint`, if this run saw it.
    fn trigger_of(&self, checkpoint: CheckpointId) -> Option<WitnessEvent> {
        let at = *self.triggered_at.get(&checkpoint)?;
        Some(trigger(checkpoint, at))
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
        let mut events: Vec<WitnessEvent> = self.trigger_of(restored).into_iter().collect();
        events.push(WitnessEvent::at_job_manager(
            at,
            format!("{attempt} deployed from {restored}"),
        ));
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
                format!("{attempt} was deployed at {at} from {restored}, which never completed (no checkpoint had completed): a restore must take the latest completed checkpoint, or start from nothing"),
                format!("a failover restored {restored}, which had not completed"),
            ),
        };
        Some(Witness::new(shape, cause, root, events))
    }

    /// A recovery line: its members are the snapshots of `checkpoint`.
    fn line_found(
        &mut self,
        checkpoint: CheckpointId,
        members: &[(TaskId, Attempt, CheckpointId)],
    ) {
        let line = self.local.line(self.plan, checkpoint, members);
        for (task, member) in line.members {
            self.snapshots
                .insert((task, checkpoint), (member.entry, member.state));
        }
        for (task, records) in line.to_replay {
            self.to_replay.insert((task, checkpoint), records);
        }
    }

    /// A restored task replayed its log: on each channel, at least the records in transit from
    /// it at the line.
    fn log_replayed(&mut self, entry: &'t TraceEntry, task: TaskId, replayed: &[RecordRange]) {
        let Some((checkpoint, due, restore)) = self.replay_due.remove(&task) else {
            return;
        };
        let covered = |&(channel, from, to): &RecordRange| {
            (replayed.iter()).any(|&(c, first, last)| c == channel && first <= from && to <= last)
        };
        let Some(&(channel, from, to)) = due.iter().find(|range| !covered(range)) else {
            return;
        };
        let message = format!(
            "{task} did not replay records {from}–{to} of {channel} after restoring {checkpoint}: they were in transit at that line"
        );
        let sent = replayed
            .iter()
            .map(|(c, first, last)| format!("{first}–{last} on {c}"));
        let sent: Vec<String> = sent.collect();
        let events = vec![
            WitnessEvent::of(restore, format!("{task} restores {checkpoint}")),
            WitnessEvent::of(entry, format!("{task} replays [{}]", sent.join(", "))),
        ];
        let root = "restored senders not replaying the records in transit";
        self.broke("log-not-replayed", root, message, events);
    }

    /// A task's restore (`entry`) of its snapshot of a checkpoint.
    fn restored(
        &mut self,
        entry: &'t TraceEntry,
        (task, checkpoint): (TaskId, CheckpointId),
        state: &OperatorState,
    ) {
        if let Some(due) = self.to_replay.get(&(task, checkpoint)).cloned() {
            self.replay_due.insert(task, (checkpoint, due, entry));
        }
        // Restores from a path read snapshots of another run: nothing to compare.
        let Some(&(snapshot, snapshotted)) = self.snapshots.get(&(task, checkpoint)) else {
            return;
        };
        let recorded = self.in_flight_recorded.get(&(task, checkpoint));
        self.latest_restore.insert(task, self.restores.len());
        self.restores.push(Restore {
            entry,
            task,
            checkpoint,
            recorded: recorded.map_or(0, |(records, _)| *records),
            recorded_entry: recorded.map(|(_, entry)| *entry),
            restored: 0,
        });
        if snapshotted != state {
            let message = format!(
                "{task} restored {checkpoint} with another state than it snapshotted: {}",
                state_difference(snapshotted, state)
            );
            let events = vec![
                WitnessEvent::of(snapshot, format!("{task} snapshots {checkpoint}")),
                WitnessEvent::of(entry, format!("{task} restores {checkpoint}")),
            ];
            let root = "tasks restoring another state than they snapshotted";
            self.broke("restored-other-state", root, message, events);
        }
    }

    /// Flags the restores whose in-flight records differ from those recorded, and summarizes.
    fn violations(mut self) -> Vec<Violation> {
        for (task, (checkpoint, _, restore)) in std::mem::take(&mut self.replay_due) {
            let message = format!(
                "{task} restored {checkpoint} and never replayed its log, though records it had sent were in transit at that line"
            );
            let events = vec![WitnessEvent::of(
                restore,
                format!("{task} restores {checkpoint}"),
            )];
            let root = "restored senders not replaying the records in transit";
            self.broke("log-not-replayed", root, message, events);
        }
        for restore in std::mem::take(&mut self.restores) {
            let Restore {
                entry,
                task,
                checkpoint,
                recorded,
                recorded_entry,
                restored,
            } = restore;
            if recorded != restored {
                let message = format!("{task} restored {restored} in-flight records of {checkpoint}, its snapshot recorded {recorded}");
                let mut events = Vec::new();
                if let Some(recorded_entry) = recorded_entry {
                    let what =
                        format!("{task} records {recorded} in-flight records for {checkpoint}");
                    events.push(WitnessEvent::of(recorded_entry, what));
                }
                let what =
                    format!("{task} restores {checkpoint}; {restored} in-flight records follow");
                events.push(WitnessEvent::of(entry, what));
                let root = "restores with another count of in-flight records than recorded";
                self.broke("in-flight-count-differs", root, message, events);
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
        Box::new(RecoveryCheck::new(run.plan))
    }
}

/// The JobManager's trigger of `checkpoint` at `at`, as a witness event.
fn trigger(checkpoint: CheckpointId, at: Tick) -> WitnessEvent {
    WitnessEvent::at_job_manager(at, format!("{checkpoint} triggered"))
}
