//! Consistent cut: every completed checkpoint's state is the reference model's at its source
//! offsets, with the in-flight records it persisted.

use super::lines::{IndexLines, LocalSnapshots, Member};
use super::witness::{Finding, Witness, WitnessEvent};
use super::{describe, differing_keys, fmt_opt, summarize_findings, Property, Violation};
use super::{Checker, JudgedRun, Judgement};
use crate::model::{fold, Cut, ModelState, ReferenceModel, StateAt};
use crate::trace::{TraceEntry, TraceEvent};
use snapsim_core::config::{CheckpointingMode, LoggingProtocol};
use snapsim_core::ids::{
    Attempt, CheckpointId, Key, Offset, OperatorId, PartitionId, TaskId, Tick,
};
use snapsim_core::job::ExecutionPlan;
use snapsim_core::operator::OperatorState;
use snapsim_core::record::{InputRef, Origin, Record};
use snapsim_core::trace::EngineEvent;
use std::collections::btree_map::Entry;
use std::collections::BTreeMap;
/// Consistent cut (exactly-once mode): every completed checkpoint and savepoint holds, for each
/// order-free keyed operator, exactly the state the reference model reaches from the inputs
/// below the checkpoint's source offsets. With channel state (unaligned, Chandy-Lamport) this
/// is conservation: each input below the cut counts once, in the operator's state or in the
/// in-flight records recorded on the way to it (its own channels' or those of the stateless
/// operators before it), and nothing in flight is above the cut or recorded twice.
pub fn consistent_cut(
    trace: &[TraceEntry],
    plan: &ExecutionPlan,
    model: &ReferenceModel,
) -> Vec<Violation> {
    match Cuts::new(plan, model, trace) {
        Some(cuts) => super::over(cuts, trace),
        None => Vec::new(),
    }
}

/// The consistent-cut checker's state while it walks the trace.
struct Cuts<'r> {
    plan: &'r ExecutionPlan,
    model: &'r ReferenceModel,
    findings: Vec<Finding>,
    first_at: Option<Tick>,
    /// The job's trace, and how many of its entries were observed: a witness reads a
    /// checkpoint's snapshots, barriers and channel state there.
    trace: &'r [TraceEntry],
    observed: usize,
    /// Per checkpoint id, each task's snapshot: the latest taken so far.
    snapshots: BTreeMap<CheckpointId, BTreeMap<TaskId, &'r OperatorState>>,
    /// Per checkpoint id, each task's recorded in-flight records.
    in_flight: BTreeMap<CheckpointId, BTreeMap<TaskId, Vec<&'r Record>>>,
    /// The model's state of each order-free keyed operator, at the last cut checked.
    states: BTreeMap<OperatorId, StateAt<'r>>,
    /// Checkpointing without barriers: the local snapshots recovery lines are made of.
    local: LocalSnapshots<'r>,
    /// Communication-induced checkpointing: the index-based lines its guarantee is about.
    index_lines: Option<IndexLines<'r>>,
}

impl<'r> Cuts<'r> {
    /// `None` for a job not in EXACTLY_ONCE mode.
    fn new(
        plan: &'r ExecutionPlan,
        model: &'r ReferenceModel,
        trace: &'r [TraceEntry],
    ) -> Option<Cuts<'r>> {
        (plan.checkpoint.mode == CheckpointingMode::ExactlyOnce).then(|| Cuts {
            plan,
            model,
            findings: Vec::new(),
            first_at: None,
            trace,
            observed: 0,
            snapshots: BTreeMap::new(),
            in_flight: BTreeMap::new(),
            states: BTreeMap::new(),
            local: LocalSnapshots::default(),
            index_lines: (plan.checkpoint.logging == Some(LoggingProtocol::CommunicationInduced))
                .then(IndexLines::default),
        })
    }
}

impl<'r> Judgement<'r> for Cuts<'r> {
    fn observe(&mut self, entry: &'r TraceEntry) {
        self.observed += 1;
        self.local.observe(entry);
        if let Some(index_lines) = self.index_lines.as_mut() {
            index_lines.observe(entry, &self.local);
        }
        let checkpoint = match &entry.event {
            TraceEvent::Engine(EngineEvent::RecoveryLineFound {
                checkpoint,
                members,
                ..
            }) => {
                self.line_found(*checkpoint, members, entry);
                return;
            }
            TraceEvent::Engine(EngineEvent::SnapshotTaken {
                task,
                checkpoint,
                state,
                ..
            }) => {
                let snapshots = self.snapshots.entry(*checkpoint).or_default();
                snapshots.insert(*task, state);
                return;
            }
            TraceEvent::Engine(EngineEvent::InFlightRecorded {
                task,
                checkpoint,
                in_flight: channels,
                ..
            }) => {
                let records = channels.iter().flat_map(|(_, records)| records).collect();
                let in_flight = self.in_flight.entry(*checkpoint).or_default();
                in_flight.insert(*task, records);
                return;
            }
            TraceEvent::Engine(EngineEvent::CheckpointCompleted { checkpoint })
            | TraceEvent::Engine(EngineEvent::SavepointCompleted { checkpoint, .. }) => *checkpoint,
            _ => return,
        };
        self.judge_checkpoint(checkpoint, entry);
    }

    fn finish(mut self: Box<Self>) -> Vec<Violation> {
        let broken = (self.index_lines.take()).map_or(Vec::new(), |lines| lines.broken(self.plan));
        for (why, members) in broken {
            self.index_line_broken(why, members);
        }
        summarize_findings(Property::ConsistentCut, self.findings, self.first_at)
    }
}

impl<'r> Cuts<'r> {
    /// A recovery line: its members are the checkpoint's snapshots and the records in transit
    /// between them its channel state, once it is judged a consistent global state.
    fn line_found(
        &mut self,
        checkpoint: CheckpointId,
        members: &[(TaskId, Attempt, CheckpointId)],
        entry: &'r TraceEntry,
    ) {
        let line = self.local.line(self.plan, checkpoint, members);
        let snapshots = (line.members.iter())
            .map(|(&task, member)| (task, member.state))
            .collect();
        self.snapshots.insert(checkpoint, snapshots);
        self.in_flight.insert(checkpoint, line.in_transit);
        if line.broken.is_empty() {
            return;
        }
        self.first_at = self.first_at.or(Some(entry.at));
        let mut events: Vec<WitnessEvent> = (line.members.values())
            .map(|m| WitnessEvent::of(m.entry, member_event(self.plan, m.entry)))
            .collect();
        events.sort_by_key(|event| event.at);
        events.push(WitnessEvent::of(
            entry,
            format!("the JobManager completes them as {checkpoint}"),
        ));
        let cause = format!(
            "the recovery line {checkpoint} is not a consistent global state: {}",
            line.broken[0]
        );
        let witness = Witness::new(
            "recovery-line-not-consistent",
            cause,
            "a recovery line with orphan or unlogged records".to_string(),
            events,
        );
        self.findings
            .extend(line.broken.into_iter().map(|message| Finding {
                message,
                subject: format!("{checkpoint}"),
                witness: Some(witness.clone()),
            }));
    }

    /// Communication-induced checkpointing broke its guarantee: the first snapshots of each
    /// task at some index are not a consistent global state.
    fn index_line_broken(&mut self, why: String, members: Vec<Member<'r>>) {
        let mut events: Vec<WitnessEvent> = (members.iter())
            .map(|m| WitnessEvent::of(m.entry, member_event(self.plan, m.entry)))
            .collect();
        events.sort_by_key(|event| event.at);
        let at = events.last().map(|e| e.at);
        self.first_at = self.first_at.min(at).or(self.first_at).or(at);
        let cause = format!(
            "communication-induced checkpointing took a snapshot that no index-based line can use: {why}; a forced snapshot must come before the record that forces it counts as processed"
        );
        let witness = Witness::new(
            "index-line-not-consistent",
            cause.clone(),
            "forced snapshots that do not keep index-based lines consistent".to_string(),
            events,
        );
        self.findings.push(Finding {
            message: cause,
            subject: why,
            witness: Some(witness),
        });
    }

    /// Judges the completed `checkpoint` (its completion is `entry`): each order-free keyed
    /// operator's snapshots against the model at the sources' offsets.
    fn judge_checkpoint(&mut self, checkpoint: CheckpointId, entry: &'r TraceEntry) {
        let Some(snapshots) = self.snapshots.get(&checkpoint) else {
            return;
        };
        let before = self.findings.len();
        let no_records = BTreeMap::new();
        let recorded = self.in_flight.get(&checkpoint).unwrap_or(&no_records);
        let (plan, model) = (self.plan, self.model);
        let cut = source_cut(plan, snapshots);
        for (operator, states) in group_by_operator(plan, snapshots) {
            let at = match self.states.entry(operator) {
                Entry::Occupied(at) => at.into_mut(),
                Entry::Vacant(slot) => match model.states_of(operator) {
                    Some(at) => slot.insert(at),
                    None => continue,
                },
            };
            let want = at.at(&cut);
            let context = format!(
                "{checkpoint} {} ({operator})",
                model.operator_name(operator)
            );
            let flying = InFlightToward {
                operator,
                plan,
                model,
                cut: &cut,
            };
            let mut messages = Vec::new();
            let found = check_operator(&context, &states, want, recorded, &flying, &mut messages);
            if messages.is_empty() {
                continue;
            }
            let shown = CutShown {
                checkpoint,
                operator,
                cut: &cut,
                channel_state: !recorded.is_empty(),
                trace: &self.trace[..self.observed],
                completed: entry,
            };
            let witness = shown.witness(plan, model, &found, want);
            self.findings
                .extend(messages.into_iter().map(|message| Finding {
                    message,
                    subject: format!("{checkpoint} {operator}"),
                    witness: witness.clone(),
                }));
        }
        if self.findings.len() > before {
            self.first_at = self.first_at.or(Some(entry.at));
        }
    }
}

/// Checks one order-free keyed operator at a completed checkpoint: its subtasks' `states`,
/// with the in-flight records `recorded` on their way to it, are the model's state `want` at
/// the checkpoint's cut. Returns what they hold together.
fn check_operator(
    context: &str,
    states: &[&OperatorState],
    want: &ModelState,
    recorded: &BTreeMap<TaskId, Vec<&Record>>,
    flying: &InFlightToward,
    messages: &mut Vec<String>,
) -> ModelState {
    let mut found = union_of_states(states);
    let folded = flying.fold_into(&mut found, recorded, context, messages);
    let context = match folded {
        0 => context.to_string(),
        n => format!("{context}, its state plus {n} in-flight records"),
    };
    compare_cut(&context, &found, want, messages);
    found
}

/// Inputs of one key, on one lane, moved across the cut at most.
const KEY_INPUTS_MOVED: usize = 64;

/// One operator's part of a completed checkpoint that is not a consistent cut, and the
/// checkpoint's events.
struct CutShown<'a, 'r> {
    checkpoint: CheckpointId,
    operator: OperatorId,
    cut: &'a Cut,
    /// The snapshot has channel state.
    channel_state: bool,
    /// The trace up to the completion.
    trace: &'r [TraceEntry],
    completed: &'r TraceEntry,
}

/// The inputs of a key on one lane that, moved across the cut, give the state a snapshot holds.
struct Moved {
    lane: (OperatorId, PartitionId),
    /// Above the cut (in the snapshot though after it) or below (before it, missing).
    above: bool,
    offsets: Vec<Offset>,
}

impl CutShown<'_, '_> {
    /// Why the snapshot is not at the cut: the inputs of its first differing key on one lane
    /// that are in it though above the cut, or missing though below.
    fn witness(
        &self,
        plan: &ExecutionPlan,
        model: &ReferenceModel,
        found: &ModelState,
        want: &ModelState,
    ) -> Option<Witness> {
        let key = (differing_keys(&found.values, &want.values).map(|(k, ..)| *k))
            .chain(differing_keys(&found.co_sums, &want.co_sums).map(|(k, ..)| *k))
            .next()?;
        let moved = self.moved_inputs(model, found, key)?;
        let (source, partition) = moved.lane;
        let (first, last) = (moved.offsets.first()?, moved.offsets.last()?);
        let at = match first == last {
            true => format!("{first}"),
            false => format!("{first}–{last}"),
        };
        let end = self.cut[&moved.lane];
        let task = owner(plan, self.operator, key);
        let name = &plan.tasks[task.index()].name;
        let count = moved.offsets.len();
        let (checkpoint, operator) = (self.checkpoint, self.operator);
        let (shape, cause, root) = if moved.above {
            (
                "cut-includes-inputs-after-barrier",
                format!(
                    "{name}'s snapshot for {checkpoint} holds {count} input(s) of key {key} from {source}/{partition} at {at}, at or above the offset {end} the source snapshotted: it took in records that came after the barrier on their channel"
                ),
                format!("{operator}'s snapshots ahead of the sources' offsets"),
            )
        } else {
            let missing_from = match self.channel_state {
                true => "from it and from its channel state",
                false => "from it",
            };
            (
                "cut-misses-inputs-before-barrier",
                format!(
                    "{name}'s snapshot for {checkpoint} lacks {count} input(s) of key {key} from {source}/{partition} at {at}, below the offset {end} the source snapshotted: the source's offset counts them as sent before the barrier, but they are missing {missing_from}"
                ),
                format!("{operator}'s snapshots behind the sources' offsets"),
            )
        };
        Some(Witness::new(
            shape,
            cause,
            root,
            self.witness_events(plan, task, source),
        ))
    }

    /// The inputs of `key` on one lane that, moved across the cut, make the model's state of
    /// the key what the snapshot holds.
    fn moved_inputs(&self, model: &ReferenceModel, found: &ModelState, key: Key) -> Option<Moved> {
        let holds = |state: &ModelState| {
            state.values.get(&key) == found.values.get(&key)
                && state.co_sums.get(&key) == found.co_sums.get(&key)
        };
        let arrivals = model.key_arrivals(self.operator, key)?;
        for (&lane, &end) in self.cut {
            for above in [true, false] {
                let offsets: Vec<Offset> = match above {
                    true => (arrivals.offsets(lane).filter(|o| *o >= end))
                        .take(KEY_INPUTS_MOVED)
                        .collect(),
                    false => (arrivals.offsets(lane).rev().filter(|o| *o < end))
                        .take(KEY_INPUTS_MOVED)
                        .collect(),
                };
                for moved in 1..=offsets.len() {
                    let edge = offsets[moved - 1];
                    let mut cut = self.cut.clone();
                    cut.insert(lane, if above { Offset(edge.0 + 1) } else { edge });
                    if holds(&arrivals.state_at(&cut)) {
                        let mut offsets = offsets[..moved].to_vec();
                        offsets.sort();
                        return Some(Moved {
                            lane,
                            above,
                            offsets,
                        });
                    }
                }
            }
        }
        None
    }

    /// The events that show the cut: the source's snapshot of the lane, the owning task's
    /// barriers, channel state and snapshot, and the completion.
    fn witness_events(
        &self,
        plan: &ExecutionPlan,
        task: TaskId,
        source: OperatorId,
    ) -> Vec<WitnessEvent> {
        let mut events = Vec::new();
        for entry in self.trace {
            let TraceEvent::Engine(event) = &entry.event else {
                continue;
            };
            if part_of(event) != Some(self.checkpoint) {
                continue;
            }
            let what = match event {
                EngineEvent::SnapshotTaken {
                    task: t,
                    state: OperatorState::Source { offsets },
                    ..
                } if plan.tasks[t.index()].operator == source => {
                    let offsets: Vec<String> =
                        offsets.iter().map(|(p, o)| format!("{p} {o}")).collect();
                    format!(
                        "{} snapshots {}: next offsets {}",
                        plan.tasks[t.index()].name,
                        self.checkpoint,
                        offsets.join(", ")
                    )
                }
                EngineEvent::BarrierReceived {
                    task: t,
                    channel,
                    from,
                    ..
                } if *t == task => format!(
                    "{} receives the barrier of {} on {channel} (from {})",
                    plan.tasks[t.index()].name,
                    self.checkpoint,
                    plan.tasks[from.index()].name
                ),
                EngineEvent::InFlightRecorded { task: t, .. } if *t == task => {
                    format!(
                        "{} records its channel state for {}",
                        plan.tasks[t.index()].name,
                        self.checkpoint
                    )
                }
                EngineEvent::SnapshotTaken { task: t, .. } if *t == task => {
                    format!(
                        "{} snapshots {}",
                        plan.tasks[t.index()].name,
                        self.checkpoint
                    )
                }
                _ => continue,
            };
            events.push(WitnessEvent::of(entry, what));
        }
        events.push(WitnessEvent {
            at: self.completed.at,
            node: self.completed.node,
            what: format!("{} completed", self.checkpoint),
        });
        events
    }
}

/// A local snapshot's event in a witness: the task, its index and what it counted.
fn member_event(plan: &ExecutionPlan, entry: &TraceEntry) -> String {
    let TraceEvent::Engine(EngineEvent::LocalSnapshotTaken {
        task,
        snapshot,
        counts,
        ..
    }) = &entry.event
    else {
        unreachable!("members are local snapshots")
    };
    let name = &plan.tasks[task.index()].name;
    let received: Vec<String> = (counts.received.iter())
        .map(|(c, n)| format!("{n} on {c}"))
        .collect();
    let sent: Vec<String> = (counts.sent.iter())
        .map(|(c, n)| format!("{n} to {c}"))
        .collect();
    format!(
        "{name} takes local snapshot {snapshot}: processed [{}], sent [{}]",
        received.join(", "),
        sent.join(", ")
    )
}

/// The checkpoint a snapshot, a barrier or recorded channel state belongs to.
fn part_of(event: &EngineEvent) -> Option<CheckpointId> {
    match event {
        EngineEvent::SnapshotTaken { checkpoint, .. }
        | EngineEvent::BarrierReceived { checkpoint, .. }
        | EngineEvent::InFlightRecorded { checkpoint, .. } => Some(*checkpoint),
        _ => None,
    }
}

/// The task of `operator` that owns `key`.
fn owner(plan: &ExecutionPlan, operator: OperatorId, key: Key) -> TaskId {
    let tasks: Vec<&snapsim_core::job::TaskSpec> = (plan.tasks.iter())
        .filter(|t| t.operator == operator)
        .collect();
    let subtask = snapsim_core::job::key_owner(key, tasks.len() as u16);
    tasks[usize::from(subtask)].id
}

/// The checkpoint's cut: each source partition's offset in the sources' snapshots.
fn source_cut(plan: &ExecutionPlan, snapshots: &BTreeMap<TaskId, &OperatorState>) -> Cut {
    let mut cut = Cut::new();
    for (task, state) in snapshots {
        if let OperatorState::Source { offsets } = state {
            let source = plan.tasks[task.index()].operator;
            cut.extend(offsets.iter().map(|(p, o)| ((source, *p), *o)));
        }
    }
    cut
}

fn group_by_operator<'a>(
    plan: &ExecutionPlan,
    snapshots: &BTreeMap<TaskId, &'a OperatorState>,
) -> BTreeMap<OperatorId, Vec<&'a OperatorState>> {
    let mut grouped: BTreeMap<OperatorId, Vec<&OperatorState>> = BTreeMap::new();
    for (task, state) in snapshots {
        grouped
            .entry(plan.tasks[task.index()].operator)
            .or_default()
            .push(state);
    }
    grouped
}

/// The union of one keyed operator's task states, in the model's terms.
fn union_of_states(states: &[&OperatorState]) -> ModelState {
    let mut union = ModelState::default();
    for state in states {
        match state {
            OperatorState::Keyed { values } => union.values.extend(values),
            OperatorState::CoSum { sums } => union.co_sums.extend(sums),
            OperatorState::Windows { windows } => union.windows.extend(windows),
            OperatorState::Chains { chains } => union.chains.extend(chains),
            _ => {}
        }
    }
    union
}

/// The in-flight records of one checkpoint that are on their way to one order-free keyed
/// operator: recorded at its own inputs or at a stateless operator before it.
struct InFlightToward<'a> {
    operator: OperatorId,
    plan: &'a ExecutionPlan,
    model: &'a ReferenceModel,
    cut: &'a Cut,
}

impl InFlightToward<'_> {
    /// Folds each such record, as the model says it arrives at the operator, into `state`;
    /// flags one recorded twice or derived from an input above the cut. Returns how many it
    /// folded.
    fn fold_into(
        &self,
        state: &mut ModelState,
        recorded: &BTreeMap<TaskId, Vec<&Record>>,
        context: &str,
        messages: &mut Vec<String>,
    ) -> usize {
        let mut folded = 0;
        let kind = self.model.operator_kind(self.operator);
        let mut seen: BTreeMap<InputRef, TaskId> = BTreeMap::new();
        // Downstream tasks first (tasks are numbered in topological order): a lane's records
        // recorded nearer the operator were sent before those recorded further up, and an
        // order-sensitive operator must fold them in that order.
        for (task, records) in recorded.iter().rev() {
            let at = self.plan.tasks[task.index()].operator;
            if !self.model.feeds(at, self.operator) {
                continue;
            }
            for record in records {
                let Origin::Input(input) = record.origin else {
                    continue;
                };
                let Some((side, arriving)) = self.model.arrival(self.operator, &input) else {
                    continue; // Filtered out on the way.
                };
                let input_text = describe(&record.origin);
                if let Some(first) = seen.insert(input, *task) {
                    messages.push(format!(
                        "{context}: {input_text} is in flight twice, recorded by {first} and {task} (conservation)"
                    ));
                    continue;
                }
                let below = self
                    .cut
                    .get(&(input.source, input.partition))
                    .is_some_and(|end| input.offset < *end);
                if !below {
                    messages.push(format!(
                        "{context}: {input_text} is in flight at {task}, but above the checkpoint's source offsets (conservation)"
                    ));
                    continue;
                }
                fold(kind, state, side, &arriving);
                folded += 1;
            }
        }
        folded
    }
}

/// Compares one operator's state at the cut (with its in-flight records folded in) with the
/// model's.
fn compare_cut(context: &str, found: &ModelState, want: &ModelState, messages: &mut Vec<String>) {
    let mut report = |key: String, found: String, model: String| {
        messages.push(format!(
            "{context}: {key} holds {found}, the reference model has {model} after the inputs below the checkpoint's source offsets"
        ));
    };
    for (key, found, model) in differing_keys(&found.values, &want.values) {
        report(format!("key {key}"), fmt_opt(found), fmt_opt(model));
    }
    for (key, found, model) in differing_keys(&found.co_sums, &want.co_sums) {
        report(format!("key {key}"), fmt_opt(found), fmt_opt(model));
    }
    for ((key, lane), found, model) in differing_keys(&found.chains, &want.chains) {
        let lane = match lane {
            Some((source, partition)) => format!("{source}/{partition}"),
            None => "windows".to_string(),
        };
        report(
            format!("key {key} lane {lane}"),
            fmt_opt(found),
            fmt_opt(model),
        );
    }
    // Fired windows left the state, and which have fired depends on watermarks: check only
    // that each open window holds exactly the inputs below the cut.
    for (window, found) in &found.windows {
        let model = want.windows.get(window);
        if Some(found) != model {
            let (start, key) = window;
            report(
                format!("window {key} from {start}"),
                found.to_string(),
                fmt_opt(model),
            );
        }
    }
}

/// Every completed checkpoint is a consistent cut.
pub struct ConsistentCut;

impl Checker for ConsistentCut {
    fn property(&self) -> Property {
        Property::ConsistentCut
    }
    fn description(&self) -> &str {
        "each completed checkpoint's state (with its channel state) equals the reference model's at its source offsets"
    }
    fn judge<'r>(&self, run: &'r JudgedRun<'r>) -> Box<dyn Judgement<'r> + 'r> {
        match Cuts::new(run.plan, run.model, run.own_trace()) {
            Some(cuts) => Box::new(cuts),
            None => super::at_end(Vec::new),
        }
    }
}
