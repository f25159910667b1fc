//! The seeded-bug catalog against the checkers: with a bug switched on, the default fuzzing
//! (seed by seed, the `keyed-sum`, `swarm` and `co-window` scenarios in turn) finds a violation
//! of the property the catalog names, within a stated number of seeds.

use snapsim_core::bugs::SeededBug;
use snapsim_scenarios::{find, run_with_bugs, Verdict};
use std::collections::BTreeSet;

/// The seeds the default fuzzing tries before giving up on a bug.
const SEEDS_MAX: u64 = 40;

/// The scenarios of the default fuzzing, tried in this order for each seed.
const SCENARIOS: [&str; 3] = ["keyed-sum", "swarm", "co-window"];

/// The first run with `bug` that violates a property: its scenario, seed and the names of
/// the properties violated.
fn first_violation(bug: SeededBug) -> Option<(&'static str, u64, Vec<String>)> {
    (0..SEEDS_MAX).find_map(|seed| {
        SCENARIOS.into_iter().find_map(|name| {
            let scenario = find(name).expect("built-in");
            let (outcome, _) = run_with_bugs(scenario, seed, &BTreeSet::from([bug]));
            (outcome.verdict != Verdict::Passed).then(|| {
                let mut properties: Vec<String> = outcome
                    .violations
                    .iter()
                    .map(|v| v.property.to_string())
                    .collect();
                properties.dedup();
                (scenario.name, seed, properties)
            })
        })
    })
}

/// Why: a checker that cannot fail is a defect; each seeded bug must be caught, and reported
/// as the property the catalog says it violates.
#[test]
// Wall time of the search, outside any simulated run, printed for the reader only.
#[allow(clippy::disallowed_methods)]
fn each_seeded_bug_is_found_and_named_by_its_property() {
    for bug in SeededBug::ALL {
        let started = std::time::Instant::now();
        let found = first_violation(bug);
        let Some((scenario, seed, properties)) = found else {
            panic!(
                "{bug} ({}) was not found in {SEEDS_MAX} seeds",
                bug.description()
            );
        };
        assert!(
            properties.iter().any(|p| p == bug.violates()),
            "{bug} at {scenario} seed {seed}: violated {properties:?}, the catalog says {}",
            bug.violates()
        );
        // Wall time is information for the reader, never asserted (the machines are noisy).
        eprintln!(
            "{bug}: found at {scenario} seed {seed} ({:?}) as {properties:?}",
            started.elapsed()
        );
    }
}
