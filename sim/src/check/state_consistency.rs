//! State consistency: each committed value is the reference model's for exactly the inputs
//! committed before it in its key's order.

use super::{at_end, Checker, JudgedRun, Judgement};
use super::{describe, summarize, Property, Violation};
use crate::model::{emitted_value, fold, ModelState, ReferenceModel};
use crate::trace::{TraceEntry, TraceEvent};
use snapsim_core::ids::{Key, OperatorId, Tick};
use snapsim_core::job::ExecutionPlan;
use snapsim_core::operator::map;
use snapsim_core::record::Origin;
use snapsim_core::sink::{CommittedRecord, TransactionId};
use snapsim_core::trace::EngineEvent;
use std::collections::BTreeMap;
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
    // Read off the trace only for a run with a violation to explain.
    let mut times: Option<BTreeMap<TransactionId, Tick>> = None;
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
            let times = times.get_or_insert_with(|| commit_times(trace));
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

/// Each committed value is the model's.
pub struct StateConsistency;

impl Checker for StateConsistency {
    fn property(&self) -> Property {
        Property::StateConsistency
    }
    fn description(&self) -> &str {
        "each committed value equals the reference model's for exactly the inputs committed before it in its key's order (EXACTLY_ONCE)"
    }
    fn judge<'r>(&self, run: &'r JudgedRun<'r>) -> Box<dyn Judgement<'r> + 'r> {
        at_end(|| {
            if !run.exactly_once() || !run.output_judged() {
                return Vec::new();
            }
            state_consistency(run.committed, run.plan, run.model, run.trace)
        })
    }
}
