//! Checkers: the properties every correct run has, each a separate function with precise
//! failure messages (which property, which key, record or checkpoint, and when).
//!
//! A naive comparison of output lists is wrong: two correct runs may interleave channels
//! differently and print other intermediate values. The checkers instead judge what holds
//! regardless of interleaving, against the failure-free oracle (the same job run without
//! faults) and the sequential [`ReferenceModel`], which in turn cross-checks the oracle.

mod channel_order;
mod tolerable_failures;

pub use channel_order::channel_order;
pub use tolerable_failures::{recount_failures, tolerable_failures, FailureRecount};

use crate::disk::DiskEvent;
use crate::model::{emitted_value, fold, Cut, ModelState, ReferenceModel};
use crate::trace::{StorageEvent, TraceEntry, TraceEvent};
use serde::{Deserialize, Serialize};
use snapsim_core::config::{CheckpointConfig, CheckpointStorageKind, CheckpointingMode};
use snapsim_core::ids::{Attempt, ChannelIndex, CheckpointId, Key, OperatorId, TaskId, Tick};
use snapsim_core::job::ExecutionPlan;
use snapsim_core::messages::{Address, CheckpointFailureReason};
use snapsim_core::operator::{map, OperatorState};
use snapsim_core::record::{InputRef, Origin, Record};
use snapsim_core::retention::{Leaving, SnapshotKind};
use snapsim_core::sink::{CommittedRecord, TransactionId};
use snapsim_core::trace::{EngineEvent, JobStatus, TriggerKind};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// A property a run must have.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Property {
    /// Every input record's effect is committed exactly once.
    ExactlyOnce,
    /// At-least-once mode: every input record's effect is committed at least once.
    AtLeastOnce,
    /// Each committed value equals the reference model's for exactly the inputs committed
    /// before it in its key's order.
    StateConsistency,
    /// Final per-key values and window results equal the failure-free oracle's.
    FinalState,
    /// Each completed checkpoint's state equals the reference model's at its source offsets.
    ConsistentCut,
    /// Restores use the latest completed checkpoint and restore what was snapshotted; ids
    /// increase; min pause, max concurrent and timeout hold.
    Recovery,
    /// Every file a checkpoint consists of is durable before its completion is persisted.
    Storage,
    /// A task that declines or skips a checkpoint it forwarded no barrier for tells every
    /// downstream task with a cancellation marker: no channel delivers a later barrier or
    /// marker before one for that checkpoint.
    Cancellation,
    /// A task told that a checkpoint completed, by its notification or by an abort notice
    /// carrying it, has committed up to it (FLINK-21080).
    Notification,
    /// The failure-free oracle agrees with the sequential reference model.
    Oracle,
    /// Periodic checkpoints keep coming while the job runs, and the job finishes once faults
    /// stop.
    Liveness,
    /// Each sink commits every source partition's effects in offset order where they reach it
    /// over one chain of channels: every task keeps each channel's order (FIFO), across
    /// restores.
    ChannelOrder,
    /// The job fails over for failed checkpoints exactly when Flink's rule, recounted from the
    /// trace, says it must, and each abort's reason agrees with what the trace shows.
    TolerableFailures,
    /// No assertion inside the engine fails.
    NoCrash,
}

impl Property {
    /// Every property, the most telling first: a crash, a wrong oracle, a broken cut or a
    /// wrong restore explain the lost or duplicated output they cause.
    pub const ALL: [Property; 14] = [
        Property::NoCrash,
        Property::Oracle,
        Property::ConsistentCut,
        Property::Storage,
        Property::Recovery,
        Property::TolerableFailures,
        Property::Cancellation,
        Property::Notification,
        Property::ChannelOrder,
        Property::StateConsistency,
        Property::ExactlyOnce,
        Property::AtLeastOnce,
        Property::FinalState,
        Property::Liveness,
    ];

    /// Its position in [`Property::ALL`]: violations are reported in this order.
    pub fn rank(self) -> usize {
        Property::ALL
            .iter()
            .position(|p| *p == self)
            .expect("ALL lists every property")
    }

    /// Its name in messages and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Property::ExactlyOnce => "exactly-once",
            Property::AtLeastOnce => "at-least-once",
            Property::StateConsistency => "state-consistency",
            Property::FinalState => "final-state",
            Property::ConsistentCut => "consistent-cut",
            Property::Recovery => "recovery",
            Property::Storage => "storage",
            Property::Cancellation => "cancellation",
            Property::Notification => "notification",
            Property::Oracle => "oracle",
            Property::Liveness => "liveness",
            Property::TolerableFailures => "tolerable-failures",
            Property::ChannelOrder => "channel-order",
            Property::NoCrash => "no-crash",
        }
    }
}

impl fmt::Display for Property {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One violated property, with a message that names the record, key or checkpoint involved.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    /// The property.
    pub property: Property,
    /// What exactly is wrong.
    pub message: String,
    /// The virtual time it became visible, when there is one: the trace around it explains it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<Tick>,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {}", self.property, self.message)
    }
}

/// Violations listed at most per property, so a broken run stays readable.
const VIOLATIONS_PER_PROPERTY_MAX: usize = 5;

/// One record of a job's output: the sink operator that wrote it, and the record.
pub type Output = (OperatorId, Record);

/// The committed records as outputs of their sink operators.
pub fn outputs(committed: &[CommittedRecord], plan: &ExecutionPlan) -> Vec<Output> {
    committed
        .iter()
        .map(|c| (plan.tasks[c.sink.index()].operator, c.record))
        .collect()
}

fn origin_counts(outputs: &[Output]) -> BTreeMap<(OperatorId, Origin), u32> {
    let mut counts = BTreeMap::new();
    for (sink, record) in outputs {
        *counts.entry((*sink, record.origin)).or_insert(0) += 1;
    }
    counts
}

/// How a record's provenance reads in a message.
pub fn describe(origin: &Origin) -> String {
    match origin {
        Origin::Input(input) => {
            format!("input {}/{}{}", input.source, input.partition, input.offset)
        }
        Origin::Window { key, start } => format!("window {key} from {start}"),
    }
}

/// Every (sink, origin) is committed as often as `expected` has it (once), and nothing else.
pub fn exactly_once(actual: &[Output], expected: &[Output]) -> Vec<Violation> {
    let (messages, _) = effect_counts(actual, expected, Committed::EveryOnce);
    summarize(Property::ExactlyOnce, messages, None)
}

/// A job that ended for good before finishing (its restart strategy gave up, a client cancelled
/// it) committed a part of its output: under exactly-once each (sink, origin) at most as often as
/// `expected` has it (once), under at-least-once any number of times; and nothing else. Returns
/// the violations (as `property`) and the duplicates (at-least-once).
pub fn committed_part(
    actual: &[Output],
    expected: &[Output],
    property: Property,
) -> (Vec<Violation>, u64) {
    let rule = match property {
        Property::ExactlyOnce => Committed::AtMostOnce,
        _ => Committed::Any,
    };
    let (messages, duplicates) = effect_counts(actual, expected, rule);
    (summarize(property, messages, None), duplicates)
}

/// How often each expected effect must be committed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Committed {
    /// As often as expected (once): exactly-once, finished.
    EveryOnce,
    /// At most as often as expected: exactly-once, ended early.
    AtMostOnce,
    /// Any number of times: at-least-once, ended early (duplicates counted).
    Any,
}

/// The effects of `actual` judged against `expected` by `rule`, and never one the oracle lacks:
/// the messages and the duplicates counted.
fn effect_counts(actual: &[Output], expected: &[Output], rule: Committed) -> (Vec<String>, u64) {
    let expected = origin_counts(expected);
    let actual = origin_counts(actual);
    let mut messages = Vec::new();
    let mut duplicates = 0;
    for ((sink, origin), &want) in &expected {
        let found = actual.get(&(*sink, *origin)).copied().unwrap_or(0);
        let what = describe(origin);
        match found {
            0 if rule == Committed::EveryOnce => {
                messages.push(format!("{sink}: effect of {what} was never committed"))
            }
            n if (rule == Committed::EveryOnce && n != want)
                || (rule == Committed::AtMostOnce && n > want) =>
            {
                messages.push(format!(
                    "{sink}: effect of {what} was committed {n} times, not {want}"
                ))
            }
            n => duplicates += u64::from(n.saturating_sub(want)),
        }
    }
    for ((sink, origin), count) in &actual {
        if !expected.contains_key(&(*sink, *origin)) {
            let what = describe(origin);
            messages.push(format!(
                "{sink}: effect of {what} committed {count} times but the oracle has none"
            ));
        }
    }
    (messages, duplicates)
}

/// At-least-once mode: every expected (sink, origin) is committed at least once and nothing
/// unexpected is. Returns the violations and the number of duplicate commits (allowed).
pub fn at_least_once(actual: &[Output], expected: &[Output]) -> (Vec<Violation>, u64) {
    let expected = origin_counts(expected);
    let actual = origin_counts(actual);
    let mut messages = Vec::new();
    let mut duplicates = 0;
    for ((sink, origin), want) in &expected {
        match actual.get(&(*sink, *origin)).copied().unwrap_or(0) {
            0 => messages.push(format!(
                "{sink}: effect of {} was never committed",
                describe(origin)
            )),
            n => duplicates += u64::from(n.saturating_sub(*want)),
        }
    }
    for (sink, origin) in actual.keys() {
        if !expected.contains_key(&(*sink, *origin)) {
            messages.push(format!(
                "{sink}: effect of {} committed but the oracle has none",
                describe(origin)
            ));
        }
    }
    (summarize(Property::AtLeastOnce, messages, None), duplicates)
}

/// Each sink's last committed value per key (of the sinks that have one, see
/// [`ReferenceModel::has_final_values`]) and every window result equal `expected`'s; in a sink
/// without final values whose values the model knows (behind stateless operators and keyed
/// chains only) every committed record's value equals the oracle's for its input.
pub fn final_state(
    actual: &[Output],
    expected: &[Output],
    model: &ReferenceModel,
) -> Vec<Violation> {
    let last = |outputs: &[Output]| -> BTreeMap<(OperatorId, Key), i64> {
        outputs
            .iter()
            .filter(|(sink, r)| {
                matches!(r.origin, Origin::Input(_)) && model.has_final_values(*sink)
            })
            .map(|(sink, r)| ((*sink, r.key), r.value))
            .collect()
    };
    let windows = |outputs: &[Output]| -> BTreeMap<(OperatorId, Origin), i64> {
        outputs
            .iter()
            .filter(|(_, r)| matches!(r.origin, Origin::Window { .. }))
            .map(|(sink, r)| ((*sink, r.origin), r.value))
            .collect()
    };
    let per_input = |outputs: &[Output]| -> BTreeMap<(OperatorId, Origin), BTreeSet<i64>> {
        let mut values: BTreeMap<(OperatorId, Origin), BTreeSet<i64>> = BTreeMap::new();
        for (sink, record) in outputs {
            // Only where the model knows each input's value: a sink behind a keyed operator
            // the interleaving of channels shapes (a sum over a key-by, say) has no such value.
            let known = !model.has_final_values(*sink) && model.knows_values(*sink);
            if matches!(record.origin, Origin::Input(_)) && known {
                values
                    .entry((*sink, record.origin))
                    .or_default()
                    .insert(record.value);
            }
        }
        values
    };
    let mut messages = Vec::new();
    let want = per_input(expected);
    for ((sink, origin), values) in per_input(actual) {
        if let Some(expected) = want.get(&(sink, origin)).filter(|e| **e != values) {
            messages.push(format!(
                "{sink}: effect of {} committed with value(s) {values:?}, the oracle has {expected:?}",
                describe(&origin)
            ));
        }
    }
    let (want, found) = (last(expected), last(actual));
    for ((sink, key), value) in &want {
        match found.get(&(*sink, *key)) {
            Some(found) if found == value => {}
            found => messages.push(format!(
                "{sink}: key {key}: final value {found:?}, the oracle has {value}"
            )),
        }
    }
    let (want, found) = (windows(expected), windows(actual));
    for ((sink, window), value) in &want {
        match found.get(&(*sink, *window)) {
            Some(found) if found == value => {}
            found => messages.push(format!(
                "{sink}: {}: result {found:?}, the oracle has {value}",
                describe(window)
            )),
        }
    }
    summarize(Property::FinalState, messages, None)
}

/// The failure-free oracle against the sequential reference model: the same effects, the same
/// final values, and each of its values consistent. A violation here is a bug in the engine
/// that needs no fault at all, or in the model.
///
/// `replays` says the oracle reads input again by design (an at-least-once job resumed from an
/// earlier job's snapshot commits what that job committed after it once more, and its state
/// may count some inputs twice, as at-least-once allows): then each effect is judged at least
/// once, and nothing else.
pub fn oracle_agrees_with_model(
    oracle: &[CommittedRecord],
    plan: &ExecutionPlan,
    model: &ReferenceModel,
    replays: bool,
) -> Vec<Violation> {
    let outputs = outputs(oracle, plan);
    let mut violations = if replays {
        at_least_once(&outputs, model.outputs()).0
    } else {
        let mut violations = exactly_once(&outputs, model.outputs());
        violations.extend(final_state(&outputs, model.outputs(), model));
        violations.extend(state_consistency(oracle, plan, model, &[]));
        violations
    };
    for violation in &mut violations {
        violation.message = format!(
            "the failure-free run disagrees with the reference model ({}): {}",
            violation.property, violation.message
        );
        violation.property = Property::Oracle;
    }
    violations
}

/// When each transaction's commit was requested (the first time), from the trace.
fn commit_times(trace: &[TraceEntry]) -> BTreeMap<TransactionId, Tick> {
    let mut times = BTreeMap::new();
    for entry in trace {
        if let TraceEvent::Engine(EngineEvent::Committed { transaction, .. }) = &entry.event {
            times.entry(*transaction).or_insert(entry.at);
        }
    }
    times
}

/// State consistency: in each sink fed by an order-free keyed operator (through maps, on
/// forward edges), a key's committed records arrive in the order that operator processed
/// them, so each committed value must equal the reference model's fold of exactly the inputs
/// committed before it for that key, and its own. (Exactly-once mode; sinks of other shapes
/// are covered by the exactly-once and final-state checks: the latter compares each record's
/// value behind stateless operators only.)
pub fn state_consistency(
    committed: &[CommittedRecord],
    plan: &ExecutionPlan,
    model: &ReferenceModel,
    trace: &[TraceEntry],
) -> Vec<Violation> {
    let times = commit_times(trace);
    let mut messages = Vec::new();
    let mut first_at = None;
    let mut folds: BTreeMap<(OperatorId, Key), (ModelState, u64)> = BTreeMap::new();
    let mut chains = BTreeMap::new();
    for record in committed {
        let sink = plan.tasks[record.sink.index()].operator;
        let chain = chains
            .entry(sink)
            .or_insert_with(|| model.output_chain(sink));
        let (Some(chain), Origin::Input(input)) = (chain.as_ref(), record.record.origin) else {
            continue;
        };
        let Some((side, arrived)) = model.arrival(chain.keyed, &input) else {
            continue;
        };
        let key = record.record.key;
        let kind = model.operator_kind(chain.keyed);
        let (state, count) = folds.entry((sink, key)).or_default();
        fold(kind, state, side, &arrived);
        *count += 1;
        let want = chain
            .maps
            .iter()
            .fold(emitted_value(kind, state, &arrived), |v, f| map(*f, v));
        if record.record.value != want {
            let at = record.transaction.and_then(|t| times.get(&t).copied());
            first_at = first_at.or(at);
            let when = match (record.transaction, at) {
                (Some(t), Some(at)) => format!(" ({t}, commit requested at {at})"),
                (Some(t), None) => format!(" ({t})"),
                (None, _) => String::new(),
            };
            messages.push(format!(
                "{} ({sink}) key {key}: committed {} for {}, but the reference model has {want} \
                 after the {count} inputs of {key} committed up to it{when}",
                model.operator_name(sink),
                record.record.value,
                describe(&record.record.origin),
            ));
        }
    }
    summarize(Property::StateConsistency, messages, first_at)
}

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
    if plan.checkpoint.mode != CheckpointingMode::ExactlyOnce {
        return Vec::new();
    }
    let mut messages = Vec::new();
    let mut first_at = None;
    // Per checkpoint id, each task's snapshot: the latest taken so far; and its in-flight records.
    let mut snapshots: BTreeMap<CheckpointId, BTreeMap<TaskId, &OperatorState>> = BTreeMap::new();
    let mut in_flight: BTreeMap<CheckpointId, BTreeMap<TaskId, Vec<&Record>>> = BTreeMap::new();
    for entry in trace {
        let checkpoint = match &entry.event {
            TraceEvent::Engine(EngineEvent::SnapshotTaken {
                task,
                checkpoint,
                state,
                ..
            }) => {
                snapshots
                    .entry(*checkpoint)
                    .or_default()
                    .insert(*task, state);
                continue;
            }
            TraceEvent::Engine(EngineEvent::InFlightRecorded {
                task,
                checkpoint,
                in_flight: channels,
                ..
            }) => {
                let records = channels.iter().flat_map(|(_, records)| records).collect();
                in_flight
                    .entry(*checkpoint)
                    .or_default()
                    .insert(*task, records);
                continue;
            }
            TraceEvent::Engine(EngineEvent::CheckpointCompleted { checkpoint })
            | TraceEvent::Engine(EngineEvent::SavepointCompleted { checkpoint, .. }) => *checkpoint,
            _ => continue,
        };
        let Some(snapshots) = snapshots.get(&checkpoint) else {
            continue;
        };
        let before = messages.len();
        let mut cut = Cut::new();
        for (task, state) in snapshots {
            if let OperatorState::Source { offsets } = state {
                let source = plan.tasks[task.index()].operator;
                cut.extend(offsets.iter().map(|(p, o)| ((source, *p), *o)));
            }
        }
        let by_operator = group_by_operator(plan, snapshots);
        let no_records = BTreeMap::new();
        let recorded = in_flight.get(&checkpoint).unwrap_or(&no_records);
        for (operator, states) in by_operator {
            let Some(want) = model.state_at(operator, &cut) else {
                continue;
            };
            let name = model.operator_name(operator);
            let context = format!("{checkpoint} {name} ({operator})");
            let mut found = union_of_states(&states);
            let flying = InFlightToward {
                operator,
                plan,
                model,
                cut: &cut,
            };
            let folded = flying.fold_into(&mut found, recorded, &context, &mut messages);
            let context = match folded {
                0 => context,
                n => format!("{context}, its state plus {n} in-flight records"),
            };
            compare_cut(&context, &found, &want, &mut messages);
        }
        if messages.len() > before {
            first_at = first_at.or(Some(entry.at));
        }
    }
    summarize(Property::ConsistentCut, messages, first_at)
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

/// The keys where two maps differ, in key order, with the value each has.
fn differing_keys<'a, K: Ord, V: PartialEq>(
    found: &'a BTreeMap<K, V>,
    want: &'a BTreeMap<K, V>,
) -> impl Iterator<Item = (&'a K, Option<&'a V>, Option<&'a V>)> + 'a {
    let keys: BTreeSet<&K> = found.keys().chain(want.keys()).collect();
    keys.into_iter()
        .map(|k| (k, found.get(k), want.get(k)))
        .filter(|(_, found, want)| found != want)
}

fn fmt_opt<T: fmt::Debug>(value: Option<T>) -> String {
    match value {
        Some(value) => format!("{value:?}"),
        None => "nothing".to_string(),
    }
}

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
                // Judged where the coordinator decides (reference §B.11–13).
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
                // A savepoint's completion counts for the min pause too (reference §B.12).
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

/// The snapshot a job started from (`flink run -s`), followed through the trace for the
/// storage check's ownership rule: none of its files is deleted while it is the job's
/// retained checkpoint (until the job's end is durable: then it goes as the retention policy
/// says), nor ever unless the job claimed it (CLAIM) and it is a checkpoint; under NO_CLAIM,
/// and a savepoint always, it stays the user's.
#[derive(Default)]
struct RestoredSnapshot {
    /// Its directory (with a trailing `/`), its id, whether the job owns it, whether still
    /// retained; `None` for a job that did not start from a path.
    seen: Option<(String, CheckpointId, bool, bool)>,
}

impl RestoredSnapshot {
    /// Takes `event` into account; returns the violation it is, if it is one.
    fn see(&mut self, event: &TraceEvent, at: Tick, end_recorded: bool) -> Option<String> {
        match event {
            TraceEvent::Engine(EngineEvent::RestoredFromPath {
                path,
                checkpoint,
                claimed,
                savepoint,
            }) => {
                let directory = path.strip_suffix("/_metadata").unwrap_or(path);
                let owned = *claimed && !*savepoint;
                self.seen = Some((format!("{directory}/"), *checkpoint, owned, true));
                None
            }
            TraceEvent::Engine(EngineEvent::CheckpointSubsumed { checkpoint }) => {
                if let Some((_, id, _, retained)) = self.seen.as_mut() {
                    *retained &= *id != *checkpoint;
                }
                None
            }
            TraceEvent::Storage(StorageEvent::Deleted { path }) => {
                let (directory, id, owned, retained) = self.seen.as_ref()?;
                let may_go = *owned && (!*retained || end_recorded);
                if !path.starts_with(directory.as_str()) || may_go {
                    return None;
                }
                let why = if *retained {
                    "while it is the job's retained checkpoint"
                } else {
                    "though the job does not own it (NO_CLAIM, or a savepoint)"
                };
                Some(format!(
                    "{path} of {id}, the snapshot the job started from, was deleted at {at} {why}"
                ))
            }
            _ => None,
        }
    }
}

/// Storage, four rules:
/// - durability: every file a checkpoint references (`CompletionPersisting.files`) is on the
///   storage node and durable when its completion is persisted: synced, and not deleted or lost
///   since (a file synced once and deleted before the completion is as broken as one never
///   synced, though only a later restore would show it);
/// - retention: until the job's end is durable in its HA record, no file a retained checkpoint
///   references (completed, not yet subsumed) is deleted;
/// - no leaks: once the job ended and its clean-up settled (`files` is the storage node's
///   listing then), the job's checkpoint directory holds no file this run wrote other than
///   those of the checkpoints its retention policy keeps. Files the run did not write (a
///   snapshot it restored from) are not its to delete;
/// - ownership: the snapshot a job started from is deleted only as its claim mode allows
///   (see `RestoredSnapshot`).
pub fn storage(
    trace: &[TraceEntry],
    plan: &ExecutionPlan,
    ended: Option<JobStatus>,
    files: &[String],
) -> Vec<Violation> {
    let mut written = BTreeSet::new();
    // What the storage node holds now: each file's durability, and when gone files went.
    let mut durable: BTreeMap<&str, bool> = BTreeMap::new();
    let mut gone: BTreeMap<&str, (Tick, Gone)> = BTreeMap::new();
    let mut restored = RestoredSnapshot::default();
    let mut referenced: BTreeMap<CheckpointId, &[String]> = BTreeMap::new();
    let mut retained: BTreeSet<CheckpointId> = BTreeSet::new();
    let mut terminal = false;
    let mut end_recorded = false;
    let mut messages = Vec::new();
    let mut first_at = None;
    for entry in trace {
        let mut violation = |message: String| {
            first_at = first_at.or(Some(entry.at));
            messages.push(message);
        };
        if let Some(message) = restored.see(&entry.event, entry.at, end_recorded) {
            violation(message);
        }
        match &entry.event {
            TraceEvent::Storage(StorageEvent::Written { path, .. }) => {
                written.insert(path.as_str());
                durable.insert(path, false);
            }
            TraceEvent::Storage(StorageEvent::Synced { path }) => {
                durable.insert(path, true);
            }
            TraceEvent::Storage(StorageEvent::Disk(DiskEvent::Lost { path })) => {
                durable.remove(path.as_str());
                gone.insert(path, (entry.at, Gone::Lost));
            }
            TraceEvent::Storage(StorageEvent::Deleted { path }) => {
                durable.remove(path.as_str());
                gone.insert(path, (entry.at, Gone::Deleted));
                if end_recorded {
                    continue;
                }
                let users: Vec<String> = retained
                    .iter()
                    .filter(|id| referenced[id].contains(path))
                    .map(|id| id.to_string())
                    .collect();
                let when = if terminal {
                    " after the job ended but before its end was durable in the HA record (a JobManager starting then restores from them)"
                } else {
                    ""
                };
                if !users.is_empty() {
                    violation(format!(
                        "{path} was deleted at {}{when} while retained checkpoint(s) {} reference it",
                        entry.at,
                        users.join(", ")
                    ));
                }
            }
            TraceEvent::Engine(EngineEvent::CompletionPersisting { checkpoint, files }) => {
                referenced.insert(*checkpoint, files);
                for file in files {
                    let file = file.as_str();
                    if restored.seen.is_some() && !written.contains(file) {
                        continue; // Not this run's: a snapshot it restored from.
                    }
                    let state = match (durable.get(file), gone.get(file)) {
                        (Some(true), _) => continue,
                        (Some(false), _) => "was not durable".to_string(),
                        // A fault's loss is the world's doing, not the engine's.
                        (None, Some((_, Gone::Lost))) => continue,
                        (None, Some((at, Gone::Deleted))) => format!("had been deleted at {at}"),
                        (None, None) => "was never written".to_string(),
                    };
                    violation(format!(
                        "{checkpoint}: {file} {state} when the completion was persisted (at {})",
                        entry.at
                    ));
                }
            }
            // A completion is persisted first, so its files are known.
            TraceEvent::Engine(EngineEvent::CheckpointCompleted { checkpoint })
                if referenced.contains_key(checkpoint) =>
            {
                retained.insert(*checkpoint);
            }
            TraceEvent::Engine(EngineEvent::CheckpointSubsumed { checkpoint }) => {
                retained.remove(checkpoint);
            }
            TraceEvent::Engine(EngineEvent::HaRecordAdopted { completed }) => {
                // Those whose files this run knows (not a snapshot restored from a path).
                retained = completed
                    .iter()
                    .copied()
                    .filter(|id| referenced.contains_key(id))
                    .collect();
            }
            TraceEvent::Engine(EngineEvent::JobStatus { status, .. }) if status.is_terminal() => {
                terminal = true;
            }
            TraceEvent::Engine(EngineEvent::EndRecorded) => end_recorded = true,
            _ => {}
        }
    }
    if let (Some(status), CheckpointStorageKind::FileSystem(root)) =
        (ended, plan.checkpoint.storage(&plan.job))
    {
        let policy = SnapshotKind::Checkpoint(plan.checkpoint.retention);
        let kept: BTreeSet<&str> = if policy.discarded_when(Leaving::ended(status)) {
            BTreeSet::new()
        } else {
            retained
                .iter()
                .flat_map(|id| referenced[id].iter().map(String::as_str))
                .collect()
        };
        let prefix = format!("{root}/");
        let leaked: Vec<&str> = files
            .iter()
            .map(String::as_str)
            .filter(|f| f.starts_with(&prefix) && written.contains(f) && !kept.contains(f))
            .collect();
        if !leaked.is_empty() {
            let end = trace.last().map_or(Tick(0), |entry| entry.at);
            first_at = first_at.or(Some(end));
            messages.push(format!(
                "{} file(s) left behind after the job ended {status:?} and its clean-up settled: {}",
                leaked.len(),
                leaked.join(", ")
            ));
        }
    }
    summarize(Property::Storage, messages, first_at)
}

/// How a file left the storage node.
#[derive(Clone, Copy)]
enum Gone {
    /// The engine deleted it.
    Deleted,
    /// A fault lost it.
    Lost,
}

/// Checkpoint progress (a liveness property): while the job runs with periodic checkpointing,
/// it never goes without a pending checkpoint for longer than the first trigger delay plus two
/// intervals plus the min pause. A scheduler that stopped after a failover shows here long
/// before the job ends.
pub fn checkpoint_progress(
    trace: &[TraceEntry],
    plan: &ExecutionPlan,
    first_trigger_delay: u64,
) -> Vec<Violation> {
    let Some(interval) = plan.checkpoint.interval_ticks else {
        return Vec::new();
    };
    let bound = first_trigger_delay + 2 * interval + plan.checkpoint.min_pause_ticks;
    let mut messages = Vec::new();
    let mut first_at = None;
    // While running: the checkpoints being triggered or pending, and since when none was.
    let mut running = false;
    let mut pending: BTreeSet<CheckpointId> = BTreeSet::new();
    let mut idle_since = Tick(0);
    let mut final_from_id: Option<CheckpointId> = None;
    for entry in trace {
        let at = entry.at;
        if running && pending.is_empty() && at.since(idle_since) > bound {
            first_at = first_at.or(Some(at));
            messages.push(format!(
                "no checkpoint was triggered from {idle_since} to {at} while the job ran ({} ms; interval {interval} ms)",
                at.since(idle_since)
            ));
            // Report each idle stretch once.
            idle_since = at;
        }
        match &entry.event {
            TraceEvent::Crash | TraceEvent::Restart if entry.node == Address::JobManager => {
                running = false
            }
            TraceEvent::Engine(EngineEvent::JobStatus { status, .. }) => {
                running = *status == JobStatus::Running;
                pending.clear();
                idle_since = at;
                final_from_id = None;
            }
            TraceEvent::Engine(EngineEvent::TriggerStarted { checkpoint, .. }) => {
                pending.insert(*checkpoint);
            }
            TraceEvent::Engine(EngineEvent::TriggerRequestRefused { .. }) => idle_since = at,
            TraceEvent::Engine(EngineEvent::InputConsumed { final_from }) => {
                final_from_id = Some(*final_from)
            }
            TraceEvent::Engine(EngineEvent::CheckpointCompleted { checkpoint })
                if final_from_id.is_some_and(|first| *checkpoint >= first) =>
            {
                // The final checkpoint: nothing more is triggered in this attempt.
                running = false;
            }
            TraceEvent::Engine(
                EngineEvent::CheckpointCompleted { checkpoint }
                | EngineEvent::SavepointCompleted { checkpoint, .. }
                | EngineEvent::CheckpointAborted { checkpoint, .. },
            ) => {
                // An abort of an id never triggered is a trigger that failed: an attempt too.
                pending.remove(checkpoint);
                if pending.is_empty() {
                    idle_since = at;
                }
            }
            _ => {}
        }
    }
    summarize(Property::Liveness, messages, first_at)
}

/// Cancellation: on every channel, once the upstream task took its snapshot of a checkpoint,
/// declined it or skipped it, the downstream task gets that checkpoint's barrier or a
/// cancellation marker before anything for a later checkpoint. A task that declines without a
/// marker leaves its downstream aligned on channels that wait for a barrier that never comes.
pub fn cancellation(trace: &[TraceEntry], plan: &ExecutionPlan) -> Vec<Violation> {
    let name = |task: &TaskId| plan.tasks[task.index()].name.as_str();
    // What each task of each attempt has handled: checkpoint → (how, when).
    type Handled = BTreeMap<CheckpointId, (&'static str, Tick)>;
    let mut handled: BTreeMap<(Attempt, TaskId), Handled> = BTreeMap::new();
    // The newest checkpoint each channel delivered a barrier or marker for.
    let mut delivered: BTreeMap<(Attempt, TaskId, ChannelIndex), CheckpointId> = BTreeMap::new();
    let mut messages = Vec::new();
    let mut first_at = None;
    for entry in trace {
        let TraceEvent::Engine(event) = &entry.event else {
            continue;
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
                let last = delivered
                    .entry((*attempt, *task, *channel))
                    .or_insert(CheckpointId(0));
                let upstream = handled.get(&(*attempt, *from));
                // A task may forward barrier n and then abort n (subsumed, or by a marker), so
                // a marker of n can follow n's barrier; nothing is missing then.
                let skipped = upstream
                    .into_iter()
                    .filter(|_| *checkpoint > last.next())
                    .flat_map(|h| h.range(last.next()..*checkpoint))
                    .next();
                if let Some((missing, (how, when))) = skipped {
                    first_at = first_at.or(Some(entry.at));
                    messages.push(format!(
                        "{} got the {what} of checkpoint {checkpoint} from {} at {}, but nothing for checkpoint {missing}, which {} {how} at {when}",
                        name(task),
                        name(from),
                        entry.at,
                        name(from),
                    ));
                }
                *last = (*last).max(*checkpoint);
                continue;
            }
            _ => continue,
        };
        handled
            .entry((*attempt, *task))
            .or_default()
            .entry(*checkpoint)
            .or_insert((how, entry.at));
    }
    summarize(Property::Cancellation, messages, first_at)
}

/// Notification: when a task handles an abort notice that carries the latest completed
/// checkpoint, it has committed up to that checkpoint, by the notice or before it. A restored
/// task starts out having committed up to the checkpoint it restored.
pub fn notification(trace: &[TraceEntry], plan: &ExecutionPlan) -> Vec<Violation> {
    let mut restored: BTreeMap<Attempt, CheckpointId> = BTreeMap::new();
    let mut committed_up_to: BTreeMap<(Attempt, TaskId), CheckpointId> = BTreeMap::new();
    let mut messages = Vec::new();
    let mut first_at = None;
    for entry in trace {
        match &entry.event {
            TraceEvent::Engine(EngineEvent::Deployed {
                attempt,
                restored: Some(checkpoint),
            }) => {
                restored.insert(*attempt, *checkpoint);
            }
            TraceEvent::Engine(EngineEvent::CheckpointNotified {
                task,
                attempt,
                checkpoint,
            }) => {
                let up_to = committed_up_to.entry((*attempt, *task)).or_default();
                *up_to = (*up_to).max(*checkpoint);
            }
            TraceEvent::Engine(EngineEvent::AbortNotified {
                task,
                attempt,
                checkpoint,
                latest_completed: Some(completed),
            }) => {
                let start = restored.get(attempt).copied().unwrap_or_default();
                let up_to = committed_up_to
                    .get(&(*attempt, *task))
                    .copied()
                    .unwrap_or_default()
                    .max(start);
                if up_to < *completed {
                    first_at = first_at.or(Some(entry.at));
                    messages.push(format!(
                        "{} was told at {} that checkpoint {completed} completed (the abort notice of checkpoint {checkpoint}) but has committed only up to checkpoint {up_to}",
                        plan.tasks[task.index()].name,
                        entry.at,
                    ));
                }
            }
            _ => {}
        }
    }
    summarize(Property::Notification, messages, first_at)
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

fn summarize(property: Property, messages: Vec<String>, at: Option<Tick>) -> Vec<Violation> {
    let total = messages.len();
    let mut violations: Vec<Violation> = messages
        .into_iter()
        .take(VIOLATIONS_PER_PROPERTY_MAX)
        .map(|message| Violation {
            property,
            message,
            at,
        })
        .collect();
    if total > VIOLATIONS_PER_PROPERTY_MAX {
        let message = format!("… and {} more", total - VIOLATIONS_PER_PROPERTY_MAX);
        violations.push(Violation {
            property,
            message,
            at,
        });
    }
    violations
}

#[cfg(test)]
mod tests {
    use super::*;
    use snapsim_core::ids::{EventTime, Offset, PartitionId};
    use snapsim_core::job::{OperatorKind, Partitioning};
    use snapsim_core::record::InputRef;

    fn output(offset: u64, key: u64, value: i64) -> Output {
        let origin = Origin::Input(InputRef {
            source: OperatorId(0),
            partition: PartitionId(0),
            offset: Offset(offset),
        });
        let record = Record {
            key: Key(key),
            value,
            event_time: EventTime(0),
            origin,
        };
        (OperatorId(2), record)
    }

    #[test]
    fn exactly_once_fails_on_loss_and_on_duplicates() {
        // The checker must be able to fail: a lost and a duplicated effect are both reported.
        let oracle = vec![output(0, 1, 1), output(1, 1, 2)];
        assert!(exactly_once(&oracle, &oracle).is_empty());
        let lost = exactly_once(&oracle[..1], &oracle);
        assert_eq!(lost.len(), 1);
        assert!(lost[0].message.contains("never committed"), "{lost:?}");
        let twice = vec![output(0, 1, 1), output(0, 1, 1), output(1, 1, 2)];
        assert!(exactly_once(&twice, &oracle)[0]
            .message
            .contains("committed 2 times"));
        let (violations, duplicates) = at_least_once(&twice, &oracle);
        assert!(violations.is_empty());
        assert_eq!(duplicates, 1);
        assert_eq!(at_least_once(&oracle[..1], &oracle).0.len(), 1);
    }

    pub(super) fn engine(at: u64, event: EngineEvent) -> TraceEntry {
        TraceEntry {
            at: Tick(at),
            node: Address::JobManager,
            event: TraceEvent::Engine(event),
        }
    }

    fn disk(at: u64, event: StorageEvent) -> TraceEntry {
        TraceEntry {
            at: Tick(at),
            node: Address::Storage,
            event: TraceEvent::Storage(event),
        }
    }

    #[test]
    fn a_completion_listing_a_file_deleted_or_never_synced_before_it_is_flagged() {
        // The old rule asked only "was it ever synced?": a file synced and deleted before the
        // completion passed, though a restore from that checkpoint would fail.
        let plan = keyed_sum_plan();
        let file = "ckpt/job/chk-1/task-0".to_string();
        let written = disk(
            1,
            StorageEvent::Written {
                path: file.clone(),
                bytes: 8,
            },
        );
        let synced = disk(2, StorageEvent::Synced { path: file.clone() });
        let deleted = disk(3, StorageEvent::Deleted { path: file.clone() });
        let completion = engine(
            4,
            EngineEvent::CompletionPersisting {
                checkpoint: CheckpointId(1),
                files: vec![file],
            },
        );
        let judge = |trace: &[TraceEntry]| storage(trace, &plan, None, &[]);
        let whole = [written.clone(), synced.clone(), completion.clone()];
        assert!(judge(&whole).is_empty());
        let gone = judge(&[written.clone(), synced, deleted, completion.clone()]);
        assert_eq!(gone.len(), 1, "{gone:?}");
        assert!(
            gone[0].message.contains("had been deleted at t=3"),
            "{gone:?}"
        );
        let pending = judge(&[written, completion]);
        assert!(
            pending[0].message.contains("was not durable"),
            "{pending:?}"
        );
    }

    fn keyed_sum_plan() -> ExecutionPlan {
        snapsim_core::testing::keyed_sum_job(8, None)
            .build()
            .expect("the test job builds")
    }

    #[test]
    fn cancellation_fails_when_a_channel_skips_a_declined_checkpoint() {
        let plan = keyed_sum_plan();
        let (source, sum) = (TaskId(0), TaskId(2));
        assert_eq!(plan.tasks[sum.index()].name, "sum[0]");
        let attempt = Attempt(1);
        let received = |at, marker: bool, checkpoint| {
            let (channel, from, checkpoint) = (ChannelIndex(0), source, CheckpointId(checkpoint));
            engine(
                at,
                if marker {
                    EngineEvent::CancelMarkerReceived {
                        task: sum,
                        attempt,
                        channel,
                        from,
                        checkpoint,
                    }
                } else {
                    EngineEvent::BarrierReceived {
                        task: sum,
                        attempt,
                        channel,
                        from,
                        checkpoint,
                    }
                },
            )
        };
        let skipped = engine(
            10,
            EngineEvent::CheckpointSkipped {
                task: source,
                attempt,
                checkpoint: CheckpointId(1),
            },
        );
        // Skipped 1, then barrier 2 with nothing for 1 in between: the downstream waited in vain.
        let broken = cancellation(&[skipped.clone(), received(20, false, 2)], &plan);
        assert_eq!(broken.len(), 1, "{broken:?}");
        assert_eq!(
            broken[0].message,
            "sum[0] got the barrier of checkpoint chk-2 from source[0] at t=20, but nothing for checkpoint chk-1, which source[0] skipped at t=10"
        );
        // With the marker first, the channel is in order; in another attempt nothing relates.
        let fine = [
            skipped.clone(),
            received(15, true, 1),
            received(20, false, 2),
        ];
        assert!(cancellation(&fine, &plan).is_empty());
        let mut other_attempt = received(20, false, 2);
        if let TraceEvent::Engine(EngineEvent::BarrierReceived { attempt, .. }) =
            &mut other_attempt.event
        {
            *attempt = Attempt(2);
        }
        assert!(cancellation(&[skipped, other_attempt], &plan).is_empty());
    }

    #[test]
    fn notification_fails_when_an_abort_notice_is_not_made_up_for() {
        let plan = keyed_sum_plan();
        let (sink, attempt) = (TaskId(4), Attempt(1));
        let notice = engine(
            30,
            EngineEvent::AbortNotified {
                task: sink,
                attempt,
                checkpoint: CheckpointId(3),
                latest_completed: Some(CheckpointId(2)),
            },
        );
        let notified = |checkpoint| {
            engine(
                20,
                EngineEvent::CheckpointNotified {
                    task: sink,
                    attempt,
                    checkpoint: CheckpointId(checkpoint),
                },
            )
        };
        let broken = notification(&[notified(1), notice.clone()], &plan);
        assert_eq!(broken.len(), 1, "{broken:?}");
        assert!(broken[0]
            .message
            .contains("committed only up to checkpoint chk-1"));
        assert!(notification(&[notified(2), notice.clone()], &plan).is_empty());
        // A task restored from checkpoint 2 starts out committed up to it.
        let deployed = engine(
            5,
            EngineEvent::Deployed {
                attempt,
                restored: Some(CheckpointId(2)),
            },
        );
        assert!(notification(&[deployed, notice], &plan).is_empty());
    }

    #[test]
    fn final_state_fails_on_a_wrong_last_value() {
        let oracle = vec![output(0, 1, 1), output(1, 1, 2)];
        let wrong = vec![output(0, 1, 1), output(1, 1, 3)];
        let model = ReferenceModel::new(&snapsim_core::testing::keyed_sum_job(8, None));
        let violations = final_state(&wrong, &oracle, &model);
        assert_eq!(violations.len(), 1);
        assert_eq!(
            violations[0].message,
            "op-2: key k1: final value Some(3), the oracle has 2"
        );
        // Behind a map only, the last record of a key is whichever came last: not compared;
        // each record's value is.
        let mut map_only = snapsim_core::testing::keyed_sum_job(8, None);
        map_only.operators[1].kind = OperatorKind::Map(snapsim_core::job::MapFn::MultiplyBy(2));
        map_only.edges[0].partitioning = Partitioning::Forward;
        let map_model = ReferenceModel::new(&map_only);
        assert!(!map_model.has_final_values(OperatorId(2)));
        let reordered = vec![output(1, 1, 2), output(0, 1, 1)];
        assert!(final_state(&reordered, &oracle, &map_model).is_empty());
        assert_eq!(final_state(&reordered, &oracle, &model).len(), 1);
        let violations = final_state(&wrong, &oracle, &map_model);
        assert_eq!(violations.len(), 1);
        assert!(violations[0]
            .message
            .contains("committed with value(s) {3}, the oracle has {2}"));
    }
}
