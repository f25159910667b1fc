//! Checkers: the properties every correct run has, one file each, with precise failure
//! messages (which property, which key, record or checkpoint, and when).
//!
//! Each property is a [`Checker`]: it reads a finished run ([`JudgedRun`]) and returns its
//! violations. [`builtin_checkers`] lists the project's own; a program adds its own checkers
//! beside them (through the scenarios crate's catalog), and every run is judged by all.
//!
//! A naive comparison of output lists is wrong: two correct runs may interleave channels
//! differently and print other intermediate values. The checkers instead judge what holds
//! regardless of interleaving, against the failure-free oracle (the same job run without
//! faults) and the sequential [`ReferenceModel`], which in turn cross-checks the oracle.

mod cancellation;
mod channel_order;
mod consistent_cut;
mod final_state;
mod lines;
mod notification;
mod oracle;
mod output;
mod progress;
mod recovery;
mod sink_protocol;
mod stall;
mod state_consistency;
mod storage;
#[cfg(test)]
mod tests;
mod tolerable_failures;
pub mod witness;

pub use cancellation::cancellation;
pub use channel_order::channel_order;
pub use consistent_cut::consistent_cut;
pub use final_state::final_state;
pub use notification::notification;
pub use oracle::oracle_agrees_with_model;
pub use output::{at_least_once, committed_part, duplicates, exactly_once};
pub use progress::checkpoint_progress;
pub use recovery::recovery;
pub use sink_protocol::sink_protocol;
pub use stall::stall_witness;
pub use state_consistency::state_consistency;
pub use storage::storage;
pub use tolerable_failures::{recount_failures, tolerable_failures, FailureRecount};

pub use witness::{Witness, WitnessEvent};

use crate::model::ReferenceModel;
use crate::trace::TraceEntry;
use serde::{Deserialize, Serialize};
use snapsim_core::config::CheckpointingMode;
use snapsim_core::ids::{OperatorId, Tick};
use snapsim_core::job::ExecutionPlan;
use snapsim_core::record::{Origin, Record};
use snapsim_core::sink::{CommittedRecord, SinkAnomaly, TransactionEnd};
use snapsim_core::trace::JobStatus;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};

/// A property a run must have.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
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
    /// No sink writes into or commits a transaction that ended, or commits one the sink
    /// system never saw (such a request loses records, or shows a sink that lost track).
    SinkProtocol,
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
    /// A property of a checker added by a program that uses snapsim (see [`Checker`]), by its
    /// name. Reported after the built-in properties.
    Extra(&'static str),
}

impl Property {
    /// Every property, the most telling first: a crash, a wrong oracle, a broken cut or a
    /// wrong restore explain the lost or duplicated output they cause.
    pub const ALL: [Property; 15] = [
        Property::NoCrash,
        Property::Oracle,
        Property::ConsistentCut,
        Property::Storage,
        Property::Recovery,
        Property::TolerableFailures,
        Property::Cancellation,
        Property::Notification,
        Property::SinkProtocol,
        Property::ChannelOrder,
        Property::StateConsistency,
        Property::ExactlyOnce,
        Property::AtLeastOnce,
        Property::FinalState,
        Property::Liveness,
    ];

    /// Its position in [`Property::ALL`] (an added property's after all of them): violations
    /// are reported in this order.
    pub fn rank(self) -> usize {
        Property::ALL
            .iter()
            .position(|p| *p == self)
            .unwrap_or(Property::ALL.len())
    }

    /// The built-in property called `name`, or an added one.
    pub fn named(name: &str) -> Property {
        let builtin = Property::ALL.into_iter().find(|p| p.name() == name);
        builtin.unwrap_or_else(|| Property::Extra(interned(name)))
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
            Property::SinkProtocol => "sink-protocol",
            Property::Oracle => "oracle",
            Property::Liveness => "liveness",
            Property::TolerableFailures => "tolerable-failures",
            Property::ChannelOrder => "channel-order",
            Property::NoCrash => "no-crash",
            Property::Extra(name) => name,
        }
    }
}

/// `name` kept for the program's life, once per name: added properties are few (one per
/// checker), while a results file names them once per violation.
fn interned(name: &str) -> &'static str {
    static NAMES: OnceLock<Mutex<BTreeSet<&'static str>>> = OnceLock::new();
    let mut names = (NAMES.get_or_init(Mutex::default).lock()).expect("never poisoned");
    if let Some(&known) = names.get(name) {
        return known;
    }
    let name: &'static str = Box::leak(name.to_string().into_boxed_str());
    names.insert(name);
    name
}

/// Written by its name, as on the command line.
impl Serialize for Property {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Property {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Property, D::Error> {
        let name = String::deserialize(deserializer)?;
        // Results written before properties were written by name have their variant names.
        let old = Property::ALL.into_iter().find(|p| format!("{p:?}") == name);
        Ok(old.unwrap_or_else(|| Property::named(&name)))
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
    pub property: Property,
    /// What exactly is wrong.
    pub message: String,
    /// The virtual time it became visible, when there is one: the trace around it explains it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<Tick>,
    /// Why: the events that make it a violation, read as a cause, and how many violations of
    /// the property share that cause.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub witness: Option<Witness>,
}

impl Violation {
    /// A violation without a witness.
    pub fn new(property: Property, message: String, at: Option<Tick>) -> Violation {
        Violation {
            property,
            message,
            at,
            witness: None,
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {}", self.property, self.message)
    }
}

/// A property judged in every run. A checker is shared by every run (and thread) that uses
/// it; [`judge`](Checker::judge) starts the judgement of one run, which sees each entry of the
/// job's own trace once, in order, and then finishes with the run's end state (every
/// judgement of a run shares the one pass: [`run_checkers`]). It returns what breaks the
/// property: at most a handful of violations (see [`summarize`]), none when it holds.
///
/// A checker must be able to fail: show it a run with a seeded bug, or a hand-made trace, that
/// breaks its property.
pub trait Checker: Send + Sync {
    /// The property its violations carry.
    fn property(&self) -> Property;
    /// One line for `snapsim list`.
    fn description(&self) -> &str;
    /// Starts judging `run`. A property of the committed output alone can judge it all at the
    /// end: [`at_end`].
    fn judge<'r>(&self, run: &'r JudgedRun<'r>) -> Box<dyn Judgement<'r> + 'r>;
}

/// The judgement of one run by one checker.
pub trait Judgement<'r> {
    /// The next entry of the job's own trace ([`JudgedRun::own_trace`]).
    fn observe(&mut self, _entry: &'r TraceEntry) {}
    /// The trace ended: the violations.
    fn finish(self: Box<Self>) -> Vec<Violation>;
}

/// A judgement made when the run ended, from what [`JudgedRun`] holds (the committed output,
/// the oracle's, the model, the anomalies, the files left).
pub fn at_end<'r>(judge: impl FnOnce() -> Vec<Violation> + 'r) -> Box<dyn Judgement<'r> + 'r> {
    struct AtEnd<F>(F);
    impl<'r, F: FnOnce() -> Vec<Violation>> Judgement<'r> for AtEnd<F> {
        fn finish(self: Box<Self>) -> Vec<Violation> {
            (self.0)()
        }
    }
    Box::new(AtEnd(judge))
}

/// Every checker's violations in `run`, in the checkers' order, from one pass over the job's
/// own trace.
pub fn run_checkers(run: &JudgedRun, checkers: &[Arc<dyn Checker>]) -> Vec<Violation> {
    let mut judgements: Vec<_> = checkers.iter().map(|checker| checker.judge(run)).collect();
    for entry in run.own_trace() {
        for judgement in &mut judgements {
            judgement.observe(entry);
        }
    }
    (judgements.into_iter())
        .flat_map(|judgement| judgement.finish())
        .collect()
}

/// `judgement` over `trace`, for a checker's own function of a trace (tests, the campaign).
fn over<'r>(mut judgement: impl Judgement<'r>, trace: &'r [TraceEntry]) -> Vec<Violation> {
    for entry in trace {
        judgement.observe(entry);
    }
    Box::new(judgement).finish()
}

/// How a run ended, as far as its committed output can be judged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// The job finished: its whole output is judged.
    Finished,
    /// The job ended for good without finishing, rightly (its restart strategy gave up under
    /// faults that justify it, a client cancelled it): judged on what it committed.
    EndedEarly(JobStatus),
    /// The engine crashed, or the job hung or ended without a reason: a `no-crash` or
    /// `liveness` violation says so, and the output is not judged.
    NotJudged,
}

/// A finished run with what it is judged against: what every checker reads.
pub struct JudgedRun<'a> {
    /// The job as it ran (with the run's seeded bugs).
    pub plan: &'a ExecutionPlan,
    /// The job as the failure-free oracle ran it (without the run's seeded bugs).
    pub clean: &'a ExecutionPlan,
    /// The sequential reference model of the job.
    pub model: &'a ReferenceModel,
    /// What the failure-free oracle committed.
    pub oracle: &'a [CommittedRecord],
    /// What the run committed (for a job resumed from an earlier job's snapshot, the earlier
    /// job's output first: the two are judged whole).
    pub committed: &'a [CommittedRecord],
    /// `committed` per sink operator.
    pub actual: &'a [Output],
    /// `oracle` per sink operator.
    pub expected: &'a [Output],
    /// What the sinks asked the sink system that a correct sink never asks (an earlier
    /// job's first).
    pub anomalies: &'a [SinkAnomaly],
    /// When the sink system committed or aborted each transaction (an earlier job's first).
    pub sink_log: &'a [TransactionEnd],
    /// The whole trace (an earlier job's first).
    pub trace: &'a [TraceEntry],
    /// Where the job's own trace begins in `trace`.
    pub own_from: usize,
    /// The files in checkpoint storage when the run ended.
    pub files: &'a [String],
    /// The job's terminal status, if it reached one.
    pub terminated: Option<JobStatus>,
    /// How far the committed output is judged.
    pub ending: Ending,
    /// When the first periodic checkpoint was due after the job started running.
    pub first_trigger_delay: u64,
    /// The job resumed at-least-once after an earlier one: it reads again what that one
    /// committed last.
    pub replays: bool,
}

impl JudgedRun<'_> {
    /// The job's own trace: after what an earlier job's run left.
    pub fn own_trace(&self) -> &[TraceEntry] {
        &self.trace[self.own_from..]
    }

    /// Whether the job runs in EXACTLY_ONCE mode.
    pub fn exactly_once(&self) -> bool {
        self.plan.checkpoint.mode == CheckpointingMode::ExactlyOnce
    }

    /// Whether the committed output is judged (the job finished or rightly ended early).
    pub fn output_judged(&self) -> bool {
        self.ending != Ending::NotJudged
    }
}

/// The project's own checkers, in the order they run.
pub fn builtin_checkers() -> Vec<Arc<dyn Checker>> {
    vec![
        Arc::new(oracle::OracleAgreesWithModel),
        Arc::new(consistent_cut::ConsistentCut),
        Arc::new(recovery::Recovery),
        Arc::new(tolerable_failures::TolerableFailures),
        Arc::new(cancellation::Cancellation),
        Arc::new(notification::Notification),
        Arc::new(sink_protocol::SinkProtocol),
        Arc::new(storage::Storage),
        Arc::new(progress::CheckpointProgress),
        Arc::new(output::ExactlyOnce),
        Arc::new(output::AtLeastOnce),
        Arc::new(channel_order::ChannelOrder),
        Arc::new(state_consistency::StateConsistency),
        Arc::new(final_state::FinalState),
    ]
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

/// How a record's provenance reads in a message.
pub fn describe(origin: &Origin) -> String {
    match origin {
        Origin::Input(input) => {
            format!("input {}/{}{}", input.source, input.partition, input.offset)
        }
        Origin::Window { key, start } => format!("window {key} from {start}"),
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

fn summarize(property: Property, messages: Vec<String>, at: Option<Tick>) -> Vec<Violation> {
    let findings = messages.into_iter().map(|message| (message, None));
    capped(property, findings.collect(), at)
}

/// Like [`summarize`], for findings that may have witnesses: those with the same cause are one
/// violation first (its witness counts them).
fn summarize_findings(
    property: Property,
    findings: Vec<witness::Finding>,
    at: Option<Tick>,
) -> Vec<Violation> {
    capped(property, witness::group(findings), at)
}

/// The first [`VIOLATIONS_PER_PROPERTY_MAX`] violations, then one that counts the rest.
fn capped(
    property: Property,
    findings: Vec<(String, Option<Witness>)>,
    at: Option<Tick>,
) -> Vec<Violation> {
    let total = findings.len();
    let mut violations: Vec<Violation> = findings
        .into_iter()
        .take(VIOLATIONS_PER_PROPERTY_MAX)
        .map(|(message, witness)| Violation {
            witness,
            ..Violation::new(property, message, at)
        })
        .collect();
    if total > VIOLATIONS_PER_PROPERTY_MAX {
        let message = format!("… and {} more", total - VIOLATIONS_PER_PROPERTY_MAX);
        violations.push(Violation::new(property, message, at));
    }
    violations
}
