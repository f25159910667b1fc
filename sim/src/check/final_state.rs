//! Final state: the last committed value per key (and every window result) equals the
//! failure-free oracle's.

use super::output::origin_counts;
use super::witness::{Finding, History, Witness};
use super::{at_end, Checker, Ending, JudgedRun, Judgement};
use super::{describe, summarize, summarize_findings, Output, Property, Violation};
use crate::model::ReferenceModel;
use snapsim_core::ids::{Key, OperatorId};
use snapsim_core::record::Origin;
use snapsim_core::sink::TransactionId;
use std::collections::{BTreeMap, BTreeSet};

/// Each sink's last committed value per key (of the sinks that have one, see
/// [`ReferenceModel::has_final_values`]) and every window result equal `expected`'s; in a sink
/// without final values whose values the model knows (behind stateless operators and keyed
/// chains only) every committed record's value equals the oracle's for its input.
fn mismatches(
    actual: &[Output],
    expected: &[Output],
    model: &ReferenceModel,
) -> Vec<(String, Mismatch)> {
    // Per sink: whether it has final values, and whether the model knows each input's value.
    let sinks: BTreeMap<OperatorId, (bool, bool)> = (actual.iter().chain(expected))
        .map(|(sink, _)| *sink)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .map(|sink| {
            let has_final = model.has_final_values(sink);
            (sink, (has_final, !has_final && model.knows_values(sink)))
        })
        .collect();
    let last = |outputs: &[Output]| -> BTreeMap<(OperatorId, Key), i64> {
        outputs
            .iter()
            .filter(|(sink, r)| matches!(r.origin, Origin::Input(_)) && sinks[sink].0)
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
            let known = sinks[sink].1;
            if matches!(record.origin, Origin::Input(_)) && known {
                values
                    .entry((*sink, record.origin))
                    .or_default()
                    .insert(record.value);
            }
        }
        values
    };
    let mut mismatches = Vec::new();
    let want = per_input(expected);
    for ((sink, origin), values) in per_input(actual) {
        if let Some(expected) = want.get(&(sink, origin)).filter(|e| **e != values) {
            let message = format!(
                "{sink}: effect of {} committed with value(s) {values:?}, the oracle has {expected:?}",
                describe(&origin)
            );
            mismatches.push((message, Mismatch::Effect(sink, origin)));
        }
    }
    let (want, found) = (last(expected), last(actual));
    for ((sink, key), value) in &want {
        match found.get(&(*sink, *key)) {
            Some(found) if found == value => {}
            found => {
                let message =
                    format!("{sink}: key {key}: final value {found:?}, the oracle has {value}");
                mismatches.push((message, Mismatch::Key(*sink, *key)));
            }
        }
    }
    let (want, found) = (windows(expected), windows(actual));
    for ((sink, window), value) in &want {
        match found.get(&(*sink, *window)) {
            Some(found) if found == value => {}
            found => {
                let message = format!(
                    "{sink}: {}: result {found:?}, the oracle has {value}",
                    describe(window)
                );
                mismatches.push((message, Mismatch::Effect(*sink, *window)));
            }
        }
    }
    mismatches
}

/// The final-state property of a run's output: see [`mismatches`].
pub fn final_state(
    actual: &[Output],
    expected: &[Output],
    model: &ReferenceModel,
) -> Vec<Violation> {
    let messages = (mismatches(actual, expected, model).into_iter())
        .map(|(message, _)| message)
        .collect();
    summarize(Property::FinalState, messages, None)
}

/// What a final-state violation is about.
#[derive(Clone, Copy)]
enum Mismatch {
    /// One effect (of an input, or a window's result) committed with another value.
    Effect(OperatorId, Origin),
    /// A key's last committed value.
    Key(OperatorId, Key),
}

/// Each violation of a run with its witness.
fn final_state_witnessed(run: &JudgedRun) -> Vec<Violation> {
    let mismatches = mismatches(run.actual, run.expected, run.model);
    if mismatches.is_empty() {
        return Vec::new();
    }
    let history = History::of(run.own_trace(), run.sink_log);
    let counts = origin_counts(run.actual);
    let findings = (mismatches.into_iter())
        .map(|(message, mismatch)| {
            let (subject, witness) = match mismatch {
                Mismatch::Effect(sink, origin) => {
                    let last = last_commit(run, |(s, r)| *s == sink && r.origin == origin);
                    let witness =
                        last.and_then(|txn| wrong_effect(&history, &describe(&origin), txn));
                    (describe(&origin), witness)
                }
                Mismatch::Key(sink, key) => {
                    let inputs = KeyInputs::of(run, &counts, sink, key);
                    let last = last_commit(run, |(s, r)| {
                        *s == sink && r.key == key && matches!(r.origin, Origin::Input(_))
                    });
                    (
                        format!("key {key}"),
                        inputs.witness(&history, sink, key, last),
                    )
                }
            };
            Finding {
                message,
                subject,
                witness,
            }
        })
        .collect();
    summarize_findings(Property::FinalState, findings, None)
}

/// The transaction that committed the last output `matches` accepts.
fn last_commit(run: &JudgedRun, matches: impl Fn(&Output) -> bool) -> Option<TransactionId> {
    (run.committed.iter().zip(run.actual))
        .rev()
        .find(|(_, output)| matches(output))
        .and_then(|(committed, _)| committed.transaction)
}

/// Why one effect has another value: the transaction that committed it.
fn wrong_effect(history: &History, what: &str, transaction: TransactionId) -> Option<Witness> {
    let commit = history.commit_event(transaction)?;
    let cause = format!(
        "{transaction} committed at {} the effect of {what} with another value than the failure-free run's: the state that computed it differed",
        commit.at
    );
    let root = "effects committed with another value".to_string();
    Some(Witness::new(
        "effect-with-another-value",
        cause,
        root,
        vec![commit],
    ))
}

/// A key's inputs at one sink (those the oracle commits an effect of), and which of them the
/// run committed never or more than once.
struct KeyInputs {
    count: usize,
    lost: Vec<Origin>,
    repeated: Vec<Origin>,
}

impl KeyInputs {
    fn of(
        run: &JudgedRun,
        counts: &[((OperatorId, Origin), u32)],
        sink: OperatorId,
        key: Key,
    ) -> KeyInputs {
        let origins: BTreeSet<Origin> = (run.expected.iter())
            .filter(|(s, r)| *s == sink && r.key == key && matches!(r.origin, Origin::Input(_)))
            .map(|(_, r)| r.origin)
            .collect();
        let count_of = |origin: &Origin| {
            (counts.binary_search_by_key(&(sink, *origin), |(effect, _)| *effect))
                .map_or(0, |index| counts[index].1)
        };
        KeyInputs {
            count: origins.len(),
            lost: origins
                .iter()
                .filter(|o| count_of(o) == 0)
                .copied()
                .collect(),
            repeated: origins
                .iter()
                .filter(|o| count_of(o) > 1)
                .copied()
                .collect(),
        }
    }

    /// Why the key's last value differs: inputs lost or committed again, or (every input
    /// committed once) a wrong state; with the commit of its last value when there is one.
    fn witness(
        &self,
        history: &History,
        sink: OperatorId,
        key: Key,
        last: Option<TransactionId>,
    ) -> Option<Witness> {
        let commit = last.and_then(|transaction| history.commit_event(transaction));
        let committed = match (&commit, last) {
            (Some(commit), Some(transaction)) => format!(
                "its last value was committed by {transaction} at {}",
                commit.at
            ),
            _ => "no value of it was committed".to_string(),
        };
        let (shape, cause, root) = match (self.lost.first(), self.repeated.first()) {
            (None, None) => (
                "final-value-from-wrong-state",
                format!("{sink} key {key}: {committed}, and each of its {} inputs was committed once: the state that computed its values was not the failure-free run's", self.count),
                "final values computed from another state".to_string(),
            ),
            (lost, repeated) => {
                let mut parts = Vec::new();
                if let Some(first) = lost {
                    parts.push(format!("{} never committed (first: {})", self.lost.len(), describe(first)));
                }
                if let Some(first) = repeated {
                    parts.push(format!("{} committed more than once (first: {})", self.repeated.len(), describe(first)));
                }
                (
                    "final-value-from-miscounted-inputs",
                    format!("{sink} key {key}: {committed}; of its {} inputs, {}: the value counts them as the output does (exactly-once says why)", self.count, parts.join(" and ")),
                    "final values off by inputs lost or committed more than once".to_string(),
                )
            }
        };
        Some(Witness::new(
            shape,
            cause,
            root,
            commit.into_iter().collect(),
        ))
    }
}

/// The final values are the oracle's.
pub struct FinalState;

impl Checker for FinalState {
    fn property(&self) -> Property {
        Property::FinalState
    }
    fn description(&self) -> &str {
        "a finished job's last value per key and every window result equal the failure-free oracle's (EXACTLY_ONCE)"
    }
    fn judge<'r>(&self, run: &'r JudgedRun<'r>) -> Box<dyn Judgement<'r> + 'r> {
        at_end(|| {
            if !run.exactly_once() || run.ending != Ending::Finished {
                return Vec::new();
            }
            final_state_witnessed(run)
        })
    }
}
