//! Exactly-once and at-least-once by provenance: each input's effect committed once (or at
//! least once) per sink, counted against the failure-free oracle.

use super::{at_end, Checker, Ending, JudgedRun, Judgement};
use super::{describe, summarize, Output, Property, Violation};
use snapsim_core::ids::OperatorId;
use snapsim_core::record::Origin;
/// Each (sink, origin) of `outputs` with how often it occurs, in order. (Sorting a list is
/// several times cheaper than counting in an ordered map, and this runs over every output
/// record of every run.)
fn origin_counts(outputs: &[Output]) -> Vec<((OperatorId, Origin), u32)> {
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
    /// At least once: at-least-once, finished (duplicates counted).
    AtLeastOnce,
    /// Any number of times: at-least-once, ended early (duplicates counted).
    Any,
}

/// The effects of `actual` judged against `expected` by `rule`, and never one the oracle lacks:
/// the messages and the duplicates counted.
fn effect_counts(actual: &[Output], expected: &[Output], rule: Committed) -> (Vec<String>, u64) {
    let mut messages = Vec::new();
    let mut unexpected = Vec::new();
    let mut duplicates = 0;
    for ((sink, origin), want, found) in side_by_side(expected, actual) {
        let what = || describe(&origin);
        match found {
            count if want == 0 => {
                // At-least-once says only that it was committed: how often is no matter there.
                let times = match rule {
                    Committed::AtLeastOnce => String::new(),
                    _ => format!(" {count} times"),
                };
                unexpected.push(format!(
                    "{sink}: effect of {} committed{times} but the oracle has none",
                    what()
                ))
            }
            0 if matches!(rule, Committed::EveryOnce | Committed::AtLeastOnce) => {
                messages.push(format!("{sink}: effect of {} was never committed", what()))
            }
            n if (rule == Committed::EveryOnce && n != want)
                || (rule == Committed::AtMostOnce && n > want) =>
            {
                messages.push(format!(
                    "{sink}: effect of {} was committed {n} times, not {want}",
                    what()
                ))
            }
            n => duplicates += u64::from(n.saturating_sub(want)),
        }
    }
    messages.extend(unexpected);
    (messages, duplicates)
}

/// At-least-once mode: every expected (sink, origin) is committed at least once and nothing
/// unexpected is. Returns the violations and the number of duplicate commits (allowed).
pub fn at_least_once(actual: &[Output], expected: &[Output]) -> (Vec<Violation>, u64) {
    let (messages, duplicates) = effect_counts(actual, expected, Committed::AtLeastOnce);
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
            Ending::Finished => exactly_once(run.actual, run.expected),
            Ending::EndedEarly(_) => {
                committed_part(run.actual, run.expected, Property::ExactlyOnce).0
            }
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
            Ending::Finished => at_least_once(run.actual, run.expected).0,
            Ending::EndedEarly(_) => {
                committed_part(run.actual, run.expected, Property::AtLeastOnce).0
            }
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
