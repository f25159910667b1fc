//! The seeded-bug catalog against the checkers: with a bug switched on, the default fuzzing
//! (the generated cases of `cargo test`, base seed 0) finds a violation of the property the
//! catalog names within a stated number of cases, and shrinks it.

use snapsim_core::algorithm::{FlinkAlgorithm, SnapshotAlgorithm};
use snapsim_core::bugs::SeededBug;
use snapsim_scenarios::fuzz::{fuzz, Fuzzing, SHRINK_ITERS};
use snapsim_scenarios::{explain_run, run_case, run_variant, Catalog, Outcome, Variant, Verdict};
use std::collections::BTreeSet;
use std::path::PathBuf;

/// The generated cases the default fuzzing tries before giving up on a bug.
const CASES_MAX: u32 = 200;

/// Why: a checker that cannot fail is a defect; each seeded bug must be caught by the default
/// fuzzing, and reported as the property the catalog says it violates.
#[test]
// Wall time of the search, outside any simulated run, printed for the reader only.
#[allow(clippy::disallowed_methods)]
fn each_seeded_bug_is_found_and_named_by_its_property() {
    for bug in SeededBug::ALL {
        if let Some(scenario) = bug.scenario() {
            found_by_the_scenario(bug, scenario);
            continue;
        }
        let started = std::time::Instant::now();
        // A bug in channel state shows only where snapshots hold channel state.
        let algorithm = (bug == SeededBug::InFlightNotPersisted)
            .then(|| FlinkAlgorithm::Unaligned.name().to_string());
        let fuzzing = Fuzzing {
            cases: CASES_MAX,
            seed: 0,
            bugs: BTreeSet::from([bug]),
            episodes_max: 6,
            algorithm,
            shrink_iters: SHRINK_ITERS,
            regressions: None,
            failures: PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("snapsim-failures"),
        };
        let found = match fuzz(&Catalog::builtin(), &fuzzing) {
            Ok(ran) => panic!(
                "{bug} ({}) was not found in {ran} generated cases",
                bug.description()
            ),
            Err(found) => found,
        };
        let mut properties: Vec<&str> = found
            .file
            .violations
            .iter()
            .filter_map(|v| v.strip_prefix('[')?.split(']').next())
            .collect();
        properties.dedup();
        assert!(
            properties.contains(&bug.violates()),
            "{bug} found after {} cases: violated {properties:?}, the catalog says {}",
            found.cases_to_find,
            bug.violates()
        );
        let bugs = BTreeSet::from([bug]);
        let (outcome, _) = run_case(&Catalog::builtin(), &found.case, &bugs).expect("it ran");
        explained_as_the_catalog_says(bug, &outcome);
        // Figures for the reader, never asserted beyond the bound (the machines are noisy).
        eprintln!(
            "{bug}: found after {} case(s), shrunk to {} fault episode(s) ({} schedule events), {} records, in {:?}, as {properties:?}",
            found.cases_to_find,
            found.case.episodes.len(),
            found.file.schedule.events.len(),
            found.case.job.records,
            started.elapsed()
        );
    }
}

/// The seeds of its scenario tried before giving up on a bug no generated case reaches.
const SEEDS_MAX: u64 = 40;

/// A bug only a named scenario reaches is found by its seeds, as the catalog's property.
fn found_by_the_scenario(bug: SeededBug, name: &str) {
    let catalog = Catalog::builtin();
    let scenario = (catalog.scenario(name)).expect("the catalog names a built-in scenario");
    let variant =
        Variant::new(&catalog, None, None, &[bug.name().to_string()]).expect("a catalog bug");
    for seed in 0..SEEDS_MAX {
        let (outcome, _) = run_variant(&catalog, scenario, seed, &variant).expect("judged");
        if outcome.verdict == Verdict::Passed {
            continue;
        }
        let properties: Vec<String> = outcome
            .violations
            .iter()
            .map(|v| v.property.to_string())
            .collect();
        assert!(
            properties.iter().any(|p| p == bug.violates()),
            "{bug} found by {name} seed {seed}: violated {properties:?}, the catalog says {}",
            bug.violates()
        );
        eprintln!("{bug}: found by {name} seed {seed}, as {properties:?}");
        explained_as_the_catalog_says(bug, &outcome);
        return;
    }
    panic!(
        "{bug} ({}) was not found in {SEEDS_MAX} seeds of {name}",
        bug.description()
    );
}

/// The explanation each bug's shrunk case must give: the template (witness shape) of its
/// property's first violation, and words of the cause the catalog describes.
fn expected_explanation(bug: SeededBug) -> (&'static str, &'static str) {
    use SeededBug as B;
    match bug {
        B::AlignmentWithoutBlocking => ("cut-includes-inputs-after-barrier", "after the barrier"),
        B::CommitAtSnapshot => ("duplicate-after-replay", "before its checkpoint"),
        B::AbortPreCommittedOnRestore => ("completed-checkpoint-transaction-aborted", "aborted"),
        B::SourceOffsetAtRead => ("cut-misses-inputs-before-barrier", "the source's offset"),
        B::AckBeforeDurable => ("acknowledged-before-durable", "acknowledged"),
        B::RestoreFromPending => ("restored-uncompleted-checkpoint", "never completed"),
        B::ReusedTransactionId => ("write-into-ended-transaction", "kept the id"),
        B::PeriodicNotResumed => ("no-trigger-after-failover", "did not resume"),
        B::CommitOutOfOrder => ("commits-out-of-checkpoint-order", "out of checkpoint order"),
        B::RegistryDeletesReferenced => ("retained-file-deleted", "still retained"),
        B::NewerBarrierNotAborting => ("cut-misses-inputs-before-barrier", "missing"),
        B::DeclineWithoutMarker => ("declined-without-marker", "no cancellation marker"),
        B::LostNotificationNotCompensated => ("abort-notice-not-compensated", "abort notice"),
        B::InFlightNotPersisted => ("cut-misses-inputs-before-barrier", "channel state"),
        B::MetadataAnsweredTwice => ("engine-assertion-failed", "written twice"),
        B::AbortDiscardsPending => ("pending-checkpoint-file-deleted", "still pending"),
        B::FinalizeFailureCounted => ("failover-on-uncounted-failures", "FinalizeFailure"),
        B::AdjacentRecordsSwapped => ("reordered-in-transaction", "wrong order"),
        B::NoClaimDeletesRestored => ("restored-snapshot-deleted", "NO_CLAIM"),
        B::ChangelogTruncatedEarly => ("materialization-referenced-before-durable", "not durable"),
        B::LogReplaySkipped => ("log-not-replayed", "in transit"),
        B::RecoveryLineIgnoresChannel => ("recovery-line-not-consistent", "orphan"),
        B::ForcedSnapshotAfterRecord => ("index-line-not-consistent", "forced snapshot"),
    }
}

/// Why: a failing run must say its cause, not only its symptom; for each bug of the catalog,
/// the explanation of its shrunk case names the cause the catalog describes.
fn explained_as_the_catalog_says(bug: SeededBug, outcome: &Outcome) {
    let (shape, words) = expected_explanation(bug);
    let violation = (outcome.violations.iter())
        .find(|v| v.property.to_string() == bug.violates())
        .expect("the catalog's property is violated");
    let witness = violation.witness.as_ref().unwrap_or_else(|| {
        panic!(
            "{bug}: its {} violation has no witness: {}",
            bug.violates(),
            violation.message
        )
    });
    assert_eq!(witness.shape, shape, "{bug}: {}", witness.cause);
    assert!(
        witness.cause.contains(words),
        "{bug}: '{words}' not in: {}",
        witness.cause
    );
    if matches!(
        bug,
        SeededBug::CommitAtSnapshot
            | SeededBug::AlignmentWithoutBlocking
            | SeededBug::AckBeforeDurable
    ) {
        insta::assert_snapshot!(format!("explain-{}", bug.name()), explain_run(outcome));
    }
}
