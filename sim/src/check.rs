//! Checkers: properties every correct run has, judged against the failure-free oracle.
//!
//! A naive comparison of output lists is wrong (two correct runs may interleave channels
//! differently). This first slice checks what must hold regardless of interleaving:
//! `ExactlyOnceChecker` — every input's effect is committed exactly once (by provenance); and
//! `FinalStateChecker` — each key's last committed value and each window result equal the
//! oracle's. The full catalog (state consistency per output, consistent cut, recovery,
//! storage, liveness) grows from here.

use serde::{Deserialize, Serialize};
use snapsim_core::ids::Key;
use snapsim_core::record::Origin;
use snapsim_core::sink::CommittedRecord;
use std::collections::BTreeMap;
use std::fmt;

/// A property a run must have.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Property {
    /// Every input record's effect is committed exactly once.
    ExactlyOnce,
    /// Final per-key values and window results equal the failure-free oracle's.
    FinalState,
    /// The job finishes once faults stop.
    Liveness,
    /// No assertion inside the engine fails.
    NoCrash,
}

impl fmt::Display for Property {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Property::ExactlyOnce => "exactly-once",
            Property::FinalState => "final-state",
            Property::Liveness => "liveness",
            Property::NoCrash => "no-crash",
        };
        f.write_str(name)
    }
}

/// One violated property, with a message that names the record or key involved.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    /// The property.
    pub property: Property,
    /// What exactly is wrong.
    pub message: String,
}

/// Violations listed at most per property, so a broken run stays readable.
const VIOLATIONS_PER_PROPERTY_MAX: usize = 5;

fn origin_counts(committed: &[CommittedRecord]) -> BTreeMap<Origin, u32> {
    let mut counts = BTreeMap::new();
    for record in committed {
        *counts.entry(record.record.origin).or_insert(0) += 1;
    }
    counts
}

/// Every origin the oracle committed is committed exactly once, and nothing else is.
pub fn exactly_once(committed: &[CommittedRecord], oracle: &[CommittedRecord]) -> Vec<Violation> {
    let expected = origin_counts(oracle);
    let actual = origin_counts(committed);
    let mut violations = Vec::new();
    for (origin, &count) in &expected {
        assert_eq!(
            count, 1,
            "the failure-free oracle commits each effect once: {origin:?}"
        );
        match actual.get(origin).copied().unwrap_or(0) {
            1 => {}
            0 => violations.push(format!("effect of {origin:?} was never committed")),
            n => violations.push(format!("effect of {origin:?} was committed {n} times")),
        }
    }
    for (origin, count) in &actual {
        if !expected.contains_key(origin) {
            violations.push(format!(
                "effect of {origin:?} committed {count} times but the oracle has none"
            ));
        }
    }
    summarize(Property::ExactlyOnce, violations)
}

/// Each key's last committed value and every window result equal the oracle's.
pub fn final_state(committed: &[CommittedRecord], oracle: &[CommittedRecord]) -> Vec<Violation> {
    let last = |records: &[CommittedRecord]| -> BTreeMap<Key, i64> {
        records
            .iter()
            .filter(|r| matches!(r.record.origin, Origin::Input(_)))
            .map(|r| (r.record.key, r.record.value))
            .collect()
    };
    let windows = |records: &[CommittedRecord]| -> BTreeMap<Origin, i64> {
        records
            .iter()
            .filter(|r| matches!(r.record.origin, Origin::Window { .. }))
            .map(|r| (r.record.origin, r.record.value))
            .collect()
    };
    let mut violations = Vec::new();
    let (expected, actual) = (last(oracle), last(committed));
    for (key, value) in &expected {
        match actual.get(key) {
            Some(found) if found == value => {}
            found => violations.push(format!(
                "key {key}: final value {found:?}, the oracle has {value}"
            )),
        }
    }
    let (expected, actual) = (windows(oracle), windows(committed));
    for (window, value) in &expected {
        match actual.get(window) {
            Some(found) if found == value => {}
            found => violations.push(format!(
                "{window:?}: result {found:?}, the oracle has {value}"
            )),
        }
    }
    summarize(Property::FinalState, violations)
}

fn summarize(property: Property, messages: Vec<String>) -> Vec<Violation> {
    let total = messages.len();
    let mut violations: Vec<Violation> = messages
        .into_iter()
        .take(VIOLATIONS_PER_PROPERTY_MAX)
        .map(|message| Violation { property, message })
        .collect();
    if total > VIOLATIONS_PER_PROPERTY_MAX {
        let message = format!("… and {} more", total - VIOLATIONS_PER_PROPERTY_MAX);
        violations.push(Violation { property, message });
    }
    violations
}

#[cfg(test)]
mod tests {
    use super::*;
    use snapsim_core::ids::{EventTime, Offset, OperatorId, PartitionId, TaskId};
    use snapsim_core::record::{InputRef, Record};

    fn committed(offset: u64, key: u64, value: i64) -> CommittedRecord {
        let origin = Origin::Input(InputRef {
            source: OperatorId(0),
            partition: PartitionId(0),
            offset: Offset(offset),
        });
        CommittedRecord {
            sink: TaskId(0),
            transaction: None,
            record: Record {
                key: Key(key),
                value,
                event_time: EventTime(0),
                origin,
            },
        }
    }

    #[test]
    fn exactly_once_fails_on_loss_and_on_duplicates() {
        // The checker must be able to fail: a lost and a duplicated effect are both reported.
        let oracle = vec![committed(0, 1, 1), committed(1, 1, 2)];
        assert!(exactly_once(&oracle, &oracle).is_empty());
        let lost = exactly_once(&oracle[..1], &oracle);
        assert_eq!(lost.len(), 1);
        assert!(lost[0].message.contains("never committed"), "{lost:?}");
        let twice = vec![committed(0, 1, 1), committed(0, 1, 1), committed(1, 1, 2)];
        assert!(exactly_once(&twice, &oracle)[0]
            .message
            .contains("committed 2 times"));
    }

    #[test]
    fn final_state_fails_on_a_wrong_last_value() {
        let oracle = vec![committed(0, 1, 1), committed(1, 1, 2)];
        let wrong = vec![committed(0, 1, 1), committed(1, 1, 3)];
        let violations = final_state(&wrong, &oracle);
        assert_eq!(violations.len(), 1);
        assert_eq!(
            violations[0].message,
            "key k1: final value Some(3), the oracle has 2"
        );
    }
}
