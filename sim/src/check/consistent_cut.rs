//! Consistent cut: every completed checkpoint's state is the reference model's at its source
//! offsets, with the in-flight records it persisted.

use super::{describe, differing_keys, fmt_opt, summarize, Property, Violation};
use super::{Checker, JudgedRun, Judgement};
use crate::model::{fold, Cut, ModelState, ReferenceModel, StateAt};
use crate::trace::{TraceEntry, TraceEvent};
use snapsim_core::config::CheckpointingMode;
use snapsim_core::ids::{CheckpointId, OperatorId, TaskId, Tick};
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
    match Cuts::new(plan, model) {
        Some(cuts) => super::over(cuts, trace),
        None => Vec::new(),
    }
}

/// The consistent-cut checker's state while it walks the trace.
struct Cuts<'r> {
    plan: &'r ExecutionPlan,
    model: &'r ReferenceModel,
    messages: Vec<String>,
    first_at: Option<Tick>,
    /// Per checkpoint id, each task's snapshot: the latest taken so far.
    snapshots: BTreeMap<CheckpointId, BTreeMap<TaskId, &'r OperatorState>>,
    /// Per checkpoint id, each task's recorded in-flight records.
    in_flight: BTreeMap<CheckpointId, BTreeMap<TaskId, Vec<&'r Record>>>,
    /// The model's state of each order-free keyed operator, at the last cut checked.
    states: BTreeMap<OperatorId, StateAt<'r>>,
}

impl<'r> Cuts<'r> {
    /// `None` for a job not in EXACTLY_ONCE mode.
    fn new(plan: &'r ExecutionPlan, model: &'r ReferenceModel) -> Option<Cuts<'r>> {
        (plan.checkpoint.mode == CheckpointingMode::ExactlyOnce).then(|| Cuts {
            plan,
            model,
            messages: Vec::new(),
            first_at: None,
            snapshots: BTreeMap::new(),
            in_flight: BTreeMap::new(),
            states: BTreeMap::new(),
        })
    }
}

impl<'r> Judgement<'r> for Cuts<'r> {
    fn observe(&mut self, entry: &'r TraceEntry) {
        let checkpoint = match &entry.event {
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
        let Some(snapshots) = self.snapshots.get(&checkpoint) else {
            return;
        };
        let before = self.messages.len();
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
            check_operator(
                &context,
                &states,
                want,
                recorded,
                &flying,
                &mut self.messages,
            );
        }
        if self.messages.len() > before {
            self.first_at = self.first_at.or(Some(entry.at));
        }
    }

    fn finish(self: Box<Self>) -> Vec<Violation> {
        summarize(Property::ConsistentCut, self.messages, self.first_at)
    }
}

/// Checks one order-free keyed operator at a completed checkpoint: its subtasks' `states`,
/// with the in-flight records `recorded` on their way to it, are the model's state `want` at
/// the checkpoint's cut.
fn check_operator(
    context: &str,
    states: &[&OperatorState],
    want: &ModelState,
    recorded: &BTreeMap<TaskId, Vec<&Record>>,
    flying: &InFlightToward,
    messages: &mut Vec<String>,
) {
    let mut found = union_of_states(states);
    let folded = flying.fold_into(&mut found, recorded, context, messages);
    let context = match folded {
        0 => context.to_string(),
        n => format!("{context}, its state plus {n} in-flight records"),
    };
    compare_cut(&context, &found, want, messages);
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
        match Cuts::new(run.plan, run.model) {
            Some(cuts) => Box::new(cuts),
            None => super::at_end(Vec::new),
        }
    }
}
