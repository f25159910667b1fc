//! Exactly-once and at-least-once by provenance: each input's effect committed once (or at
//! least once) per sink, counted against the failure-free oracle.

use super::witness::{self, Finding, History, Witness};
use super::{at_end, Checker, Ending, JudgedRun, Judgement};
use super::{describe, summarize, summarize_findings, Output, Property, Violation};
use snapsim_core::ids::OperatorId;
use snapsim_core::record::Origin;
use snapsim_core::sink::{SinkAnomaly, TransactionId};
use std::collections::BTreeMap;
/// Each (sink, origin) of `outputs` with how often it occurs, in order. (Sorting a list is
/// several times cheaper than counting in an ordered map, and this runs over every output
/// record of every run.)
pub(super) fn origin_counts(outputs: &[Output]) -> Vec<((OperatorId, Origin), u32)> {
    let mut effects: Vec<(OperatorId, Origin)> = (outputs.iter())
        .map(|(sink, record)| (*sink, record.origin))
        .collect();
    effects.sort_unstable();
    let mut counts: Vec<((OperatorId, Origin), u32)> = Vec::with_capacity(effects.len());
    for effect in effects {
        match counts.last_mut() {
            Some((last, count)) if *last == effect => *count += 1,
            _ => counts.push((effect, 1)),
        }
    }
    counts
}

/// Every (sink, origin) of `expected` or `actual`, in order, with how often each has it.
fn side_by_side(expected: &[Output], actual: &[Output]) -> Vec<((OperatorId, Origin), u32, u32)> {
    let (expected, actual) = (origin_counts(expected), origin_counts(actual));
    let mut merged = Vec::with_capacity(expected.len().max(actual.len()));
    let (mut e, mut a) = (
        expected.into_iter().peekable(),
        actual.into_iter().peekable(),
    );
    loop {
        let next = match (e.peek(), a.peek()) {
            (None, None) => return merged,
            (Some(&(effect, want)), Some(&(other, found))) if effect == other => {
                e.next();
                a.next();
                (effect, want, found)
            }
            (Some(&(effect, want)), Some(&(other, _))) if effect < other => {
                e.next();
                (effect, want, 0)
            }
            (Some(&(effect, want)), None) => {
                e.next();
                (effect, want, 0)
            }
            (_, Some(&(other, found))) => {
                a.next();
                (other, 0, found)
            }
        };
        merged.push(next);
    }
}

/// Every (sink, origin) is committed as often as `expected` has it (once), and nothing else.
pub fn exactly_once(actual: &[Output], expected: &[Output]) -> Vec<Violation> {
    let (miscounted, _) = effect_counts(actual, expected, Committed::EveryOnce);
    summarize(
        Property::ExactlyOnce,
        messages(&miscounted, Committed::EveryOnce),
        None,
    )
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
    let (miscounted, duplicates) = effect_counts(actual, expected, rule);
    (
        summarize(property, messages(&miscounted, rule), None),
        duplicates,
    )
}

/// How often each expected effect must be committed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Committed {
    /// As often as expected (once): exactly-once, finished.
    EveryOnce,
    /// At most as often as expected: exactly-once, ended early.
    AtMostOnce,
    /// At least once: at-least-once, finished (duplicates counted).
    AtLeastOnce,
    /// Any number of times: at-least-once, ended early (duplicates counted).
    Any,
}

/// An effect committed as often as its rule forbids.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Miscount {
    /// Never committed.
    Lost,
    /// Committed `found` times where `want` were expected.
    Times { found: u32, want: u32 },
    /// Committed though the oracle never commits it.
    Unexpected { found: u32 },
}

/// One (sink, origin) whose count breaks the rule.
struct Miscounted {
    sink: OperatorId,
    origin: Origin,
    miscount: Miscount,
}

impl Miscounted {
    fn message(&self, rule: Committed) -> String {
        let (sink, what) = (self.sink, describe(&self.origin));
        match self.miscount {
            Miscount::Lost => format!("{sink}: effect of {what} was never committed"),
            Miscount::Times { found, want } => {
                format!("{sink}: effect of {what} was committed {found} times, not {want}")
            }
            Miscount::Unexpected { found } => {
                // At-least-once says only that it was committed: how often is no matter there.
                let times = match rule {
                    Committed::AtLeastOnce => String::new(),
                    _ => format!(" {found} times"),
                };
                format!("{sink}: effect of {what} committed{times} but the oracle has none")
            }
        }
    }
}

/// The effects of `actual` judged against `expected` by `rule`, and never one the oracle lacks:
/// the miscounted ones (unexpected effects last) and the duplicates counted.
fn effect_counts(
    actual: &[Output],
    expected: &[Output],
    rule: Committed,
) -> (Vec<Miscounted>, u64) {
    let mut miscounted = Vec::new();
    let mut unexpected = Vec::new();
    let mut duplicates = 0;
    for ((sink, origin), want, found) in side_by_side(expected, actual) {
        let miscount = match found {
            found if want == 0 => {
                unexpected.push(Miscounted {
                    sink,
                    origin,
                    miscount: Miscount::Unexpected { found },
                });
                continue;
            }
            0 if matches!(rule, Committed::EveryOnce | Committed::AtLeastOnce) => Miscount::Lost,
            found
                if (rule == Committed::EveryOnce && found != want)
                    || (rule == Committed::AtMostOnce && found > want) =>
            {
                Miscount::Times { found, want }
            }
            found => {
                duplicates += u64::from(found.saturating_sub(want));
                continue;
            }
        };
        miscounted.push(Miscounted {
            sink,
            origin,
            miscount,
        });
    }
    miscounted.extend(unexpected);
    (miscounted, duplicates)
}

/// The messages of `miscounted`.
fn messages(miscounted: &[Miscounted], rule: Committed) -> Vec<String> {
    miscounted.iter().map(|m| m.message(rule)).collect()
}

/// Exactly-once or at-least-once (`property`) as the run's checker judges it by `rule`: each
/// violation with its witness.
fn witnessed(run: &JudgedRun, rule: Committed, property: Property) -> Vec<Violation> {
    let (miscounted, _) = effect_counts(run.actual, run.expected, rule);
    if miscounted.is_empty() {
        return Vec::new();
    }
    let history = History::of(run.own_trace(), run.sink_log);
    let transactions = committing_transactions(run, &miscounted);
    // A sink's lost effects share one witness: looked for once per sink.
    let mut lost_at: BTreeMap<OperatorId, Option<Witness>> = BTreeMap::new();
    let findings = miscounted
        .iter()
        .map(|m| {
            let committed_in =
                (transactions.get(&(m.sink, m.origin))).map_or(&[][..], Vec::as_slice);
            let witness = match (m.miscount, m.origin) {
                (Miscount::Times { found, want }, Origin::Input(input)) if found > want => {
                    witness::duplicate_effect(&history, run.plan, m.sink, &input, committed_in)
                }
                (Miscount::Lost, origin) => (lost_at.entry(m.sink))
                    .or_insert_with(|| {
                        (history.aborted_after_completion(run.plan, m.sink))
                            .or_else(|| written_after_end(run, &history, m.sink))
                    })
                    .clone()
                    .or_else(|| match origin {
                        Origin::Input(input) => history.skipped_by_restore(run.plan, &input),
                        _ => None,
                    }),
                (Miscount::Unexpected { .. }, origin) => (committed_in.first())
                    .and_then(|first| history.unexpected_effect(&describe(&origin), *first)),
                _ => None,
            };
            Finding {
                message: m.message(rule),
                subject: describe(&m.origin),
                witness,
            }
        })
        .collect();
    summarize_findings(property, findings, None)
}

/// Why effects at `sink` (an operator) were lost, when one of its tasks wrote records into a
/// transaction that had already ended (the sink-protocol violation that drops them).
fn written_after_end(run: &JudgedRun, history: &History, sink: OperatorId) -> Option<Witness> {
    run.anomalies.iter().find_map(|anomaly| match anomaly {
        SinkAnomaly::WriteAfterEnd {
            transaction,
            records,
        } if run.plan.tasks[transaction.sink.index()].operator == sink => {
            history.write_after_end(*transaction, *records)
        }
        _ => None,
    })
}

/// The transactions that committed each miscounted effect, in commit order.
fn committing_transactions(
    run: &JudgedRun,
    miscounted: &[Miscounted],
) -> BTreeMap<(OperatorId, Origin), Vec<TransactionId>> {
    let mut transactions: BTreeMap<(OperatorId, Origin), Vec<TransactionId>> = miscounted
        .iter()
        .map(|m| ((m.sink, m.origin), Vec::new()))
        .collect();
    for (committed, (sink, record)) in run.committed.iter().zip(run.actual) {
        if let (Some(list), Some(transaction)) = (
            transactions.get_mut(&(*sink, record.origin)),
            committed.transaction,
        ) {
            list.push(transaction);
        }
    }
    transactions
}

/// At-least-once mode: every expected (sink, origin) is committed at least once and nothing
/// unexpected is. Returns the violations and the number of duplicate commits (allowed).
pub fn at_least_once(actual: &[Output], expected: &[Output]) -> (Vec<Violation>, u64) {
    let (miscounted, duplicates) = effect_counts(actual, expected, Committed::AtLeastOnce);
    let messages = messages(&miscounted, Committed::AtLeastOnce);
    (summarize(Property::AtLeastOnce, messages, None), duplicates)
}

/// Exactly-once: each input's effect committed once per sink (at most once by a job that ended
/// early).
pub struct ExactlyOnce;

impl Checker for ExactlyOnce {
    fn property(&self) -> Property {
        Property::ExactlyOnce
    }
    fn description(&self) -> &str {
        "EXACTLY_ONCE: every input record's effect is committed once by each sink it reaches, and nothing else"
    }
    fn judge<'r>(&self, run: &'r JudgedRun<'r>) -> Box<dyn Judgement<'r> + 'r> {
        at_end(|| match run.ending {
            _ if !run.exactly_once() => Vec::new(),
            Ending::Finished => witnessed(run, Committed::EveryOnce, Property::ExactlyOnce),
            Ending::EndedEarly(_) => witnessed(run, Committed::AtMostOnce, Property::ExactlyOnce),
            Ending::NotJudged => Vec::new(),
        })
    }
}

/// At-least-once: each input's effect committed at least once per sink (duplicates allowed).
pub struct AtLeastOnce;

impl Checker for AtLeastOnce {
    fn property(&self) -> Property {
        Property::AtLeastOnce
    }
    fn description(&self) -> &str {
        "AT_LEAST_ONCE: every input record's effect is committed at least once by each sink it reaches, and nothing else"
    }
    fn judge<'r>(&self, run: &'r JudgedRun<'r>) -> Box<dyn Judgement<'r> + 'r> {
        at_end(|| match run.ending {
            _ if run.exactly_once() => Vec::new(),
            Ending::Finished => witnessed(run, Committed::AtLeastOnce, Property::AtLeastOnce),
            Ending::EndedEarly(_) => witnessed(run, Committed::Any, Property::AtLeastOnce),
            Ending::NotJudged => Vec::new(),
        })
    }
}

/// The duplicate commits an at-least-once run made (allowed, counted).
pub fn duplicates(run: &JudgedRun) -> u64 {
    match run.ending {
        _ if run.exactly_once() => 0,
        Ending::Finished => at_least_once(run.actual, run.expected).1,
        Ending::EndedEarly(_) => committed_part(run.actual, run.expected, Property::AtLeastOnce).1,
        Ending::NotJudged => 0,
    }
}
