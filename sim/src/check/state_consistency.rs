//! State consistency: each committed value is the reference model's for exactly the inputs
//! committed before it in its key's order.

use super::witness::{self, Finding, History, Witness};
use super::{at_end, Checker, JudgedRun, Judgement};
use super::{describe, summarize, summarize_findings, Property, Violation};
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

/// A committed value that is not the model's.
struct Inconsistent {
    /// Its index in the committed output.
    index: usize,
    /// The model's value.
    want: i64,
    /// The inputs of its key committed up to it.
    count: u64,
    /// The transaction that committed the key's previous value, when another one did.
    earlier: Option<TransactionId>,
}

/// State consistency: in each sink fed by an order-free keyed operator (through maps, on
/// forward edges), a key's committed records arrive in the order that operator processed
/// them, so each committed value must equal the reference model's fold of exactly the inputs
/// committed before it for that key, and its own. (Exactly-once mode; sinks of other shapes
/// are covered by the exactly-once and final-state checks: the latter compares each record's
/// value behind stateless operators only.)
fn inconsistent(
    committed: &[CommittedRecord],
    plan: &ExecutionPlan,
    model: &ReferenceModel,
) -> Vec<Inconsistent> {
    let mut found = Vec::new();
    // Per (sink, key): the model's fold, the inputs folded, and the transactions of the last
    // value and of the one before it from another transaction.
    type Fold = (
        ModelState,
        u64,
        Option<TransactionId>,
        Option<TransactionId>,
    );
    let mut folds: BTreeMap<(OperatorId, Key), Fold> = BTreeMap::new();
    let mut chains = BTreeMap::new();
    for (index, record) in committed.iter().enumerate() {
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
        let kind = model.operator_kind(chain.keyed);
        let (state, count, last, earlier) = folds.entry((sink, record.record.key)).or_default();
        fold(kind, state, side, &arrived);
        *count += 1;
        if *last != record.transaction {
            *earlier = *last;
            *last = record.transaction;
        }
        let want = chain
            .maps
            .iter()
            .fold(emitted_value(kind, state, &arrived), |v, f| map(*f, v));
        if record.record.value != want {
            found.push(Inconsistent {
                index,
                want,
                count: *count,
                earlier: *earlier,
            });
        }
    }
    found
}

impl Inconsistent {
    /// `commit_at`: when the commit of the value's transaction was requested.
    fn message(
        &self,
        record: &CommittedRecord,
        model: &ReferenceModel,
        plan: &ExecutionPlan,
        commit_at: Option<Tick>,
    ) -> String {
        let sink = plan.tasks[record.sink.index()].operator;
        let key = record.record.key;
        let when = match (record.transaction, commit_at) {
            (Some(t), Some(at)) => format!(" ({t}, commit requested at {at})"),
            (Some(t), None) => format!(" ({t})"),
            (None, _) => String::new(),
        };
        format!(
            "{} ({sink}) key {key}: committed {} for {}, but the reference model has {} \
             after the {} inputs of {key} committed up to it{when}",
            model.operator_name(sink),
            record.record.value,
            describe(&record.record.origin),
            self.want,
            self.count,
        )
    }
}

/// State consistency of `committed` (see [`inconsistent`]); `trace` says when commits were
/// requested.
pub fn state_consistency(
    committed: &[CommittedRecord],
    plan: &ExecutionPlan,
    model: &ReferenceModel,
    trace: &[TraceEntry],
) -> Vec<Violation> {
    let (messages, first_at) = messages(committed, plan, model, trace);
    summarize(
        Property::StateConsistency,
        messages.into_iter().map(|(m, _)| m).collect(),
        first_at,
    )
}

/// Each inconsistent value's message, and when the first one's commit was requested.
#[allow(clippy::type_complexity)]
fn messages(
    committed: &[CommittedRecord],
    plan: &ExecutionPlan,
    model: &ReferenceModel,
    trace: &[TraceEntry],
) -> (Vec<(String, Inconsistent)>, Option<Tick>) {
    let found = inconsistent(committed, plan, model);
    if found.is_empty() {
        return (Vec::new(), None);
    }
    let times = commit_times(trace);
    let mut first_at = None;
    let messages = found
        .into_iter()
        .map(|wrong| {
            let record = &committed[wrong.index];
            let at = record.transaction.and_then(|t| times.get(&t).copied());
            first_at = first_at.or(at);
            (wrong.message(record, model, plan, at), wrong)
        })
        .collect();
    (messages, first_at)
}

/// State consistency as the run's checker judges it: each violation with its witness.
fn state_consistency_witnessed(run: &JudgedRun) -> Vec<Violation> {
    let (messages, first_at) = messages(run.committed, run.plan, run.model, run.trace);
    if messages.is_empty() {
        return Vec::new();
    }
    let history = History::of(run.own_trace(), run.sink_log);
    let findings = messages
        .into_iter()
        .map(|(message, wrong)| {
            let record = &run.committed[wrong.index];
            let witness = value_witness(&history, run.plan, record, wrong.earlier);
            Finding {
                message,
                subject: format!("key {}", record.record.key),
                witness,
            }
        })
        .collect();
    summarize_findings(Property::StateConsistency, findings, first_at)
}

/// Why `record`'s value is not the model's, read off the transactions around its own: the
/// key's previous value came from another transaction (`earlier`) committed out of order, or
/// the value was computed after a restore that output already visible did not survive, or
/// its own transaction went first, before one of an older checkpoint.
fn value_witness(
    history: &History,
    plan: &ExecutionPlan,
    record: &CommittedRecord,
    earlier: Option<TransactionId>,
) -> Option<Witness> {
    let later = record.transaction?;
    let sink = &plan.tasks[record.sink.index()].name;
    let input = match &record.record.origin {
        Origin::Input(input) => Some(input),
        Origin::Window { .. } => None,
    };
    let misordered = |first, then| witness::misordered(history, plan, sink, (first, then), input);
    (earlier.and_then(|earlier| misordered(earlier, later)))
        .or_else(|| misordered(history.last_early_commit(record.sink, later)?, later))
        .or_else(|| misordered(later, history.older_committed_after(later)?))
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
            state_consistency_witnessed(run)
        })
    }
}
