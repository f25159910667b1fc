//! The seeded-bug catalog against the checkers: with a bug switched on, the default fuzzing of
//! the `keyed-sum` scenario (a TaskManager crash) finds a violation of the property the catalog
//! names, within a stated number of seeds.

use snapsim_core::bugs::SeededBug;
use snapsim_scenarios::{find, judge, setup, Verdict};
use std::sync::Arc;

/// The seeds the default fuzzing tries before giving up on a bug.
const SEEDS_MAX: u64 = 40;

/// The first seed whose run with `bug` violates a property, and that property's name.
fn first_violation(bug: SeededBug) -> Option<(u64, String)> {
    let scenario = find("keyed-sum").expect("built-in");
    (0..SEEDS_MAX).find_map(|seed| {
        let (_, mut setup) = setup(scenario, seed);
        setup.job.bugs.insert(bug);
        let plan = Arc::new(setup.job.clone().build().expect("a valid job"));
        let (outcome, _) = judge(scenario.name, seed, plan, setup);
        (outcome.verdict != Verdict::Passed).then(|| {
            let property = outcome.violations[0].property.to_string();
            (seed, property)
        })
    })
}

/// Why: a checker that cannot fail is a defect; each seeded bug must be caught, and reported
/// as the property the catalog says it violates.
#[test]
fn each_seeded_bug_is_found_and_named_by_its_property() {
    for bug in SeededBug::ALL {
        let found = first_violation(bug);
        let Some((seed, property)) = found else {
            panic!(
                "{bug} ({}) was not found in {SEEDS_MAX} seeds",
                bug.description()
            );
        };
        assert_eq!(property, bug.violates(), "{bug} at seed {seed}");
        eprintln!("{bug}: found at seed {seed} as {property}");
    }
}
