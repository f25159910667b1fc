//! Final state: the last committed value per key (and every window result) equals the
//! failure-free oracle's.

use super::{at_end, Checker, Ending, JudgedRun, Judgement};
use super::{describe, summarize, Output, Property, Violation};
use crate::model::ReferenceModel;
use snapsim_core::ids::{Key, OperatorId};
use snapsim_core::record::Origin;
use std::collections::{BTreeMap, BTreeSet};
/// Each sink's last committed value per key (of the sinks that have one, see
/// [`ReferenceModel::has_final_values`]) and every window result equal `expected`'s; in a sink
/// without final values whose values the model knows (behind stateless operators and keyed
/// chains only) every committed record's value equals the oracle's for its input.
pub fn final_state(
    actual: &[Output],
    expected: &[Output],
    model: &ReferenceModel,
) -> Vec<Violation> {
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
            final_state(run.actual, run.expected, run.model)
        })
    }
}
