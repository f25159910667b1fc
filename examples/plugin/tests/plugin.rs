//! The example crate's additions, judged as snapsim's own are: a sweep with the catalog
//! catches the weak algorithm, the extra checker fails on the seeded bug it is about, and the
//! fuzzing entry point runs with the crate's checker beside the built-in ones.
#![cfg(madsim)]

use snapsim_core::bugs::SeededBug;
use snapsim_scenarios::fuzz::{fuzz_or_panic, Fuzzing};
use snapsim_scenarios::sweep::{run_sweep, Manifest, Shard};
use snapsim_scenarios::{run_variant, Variant, Verdict};
use std::collections::BTreeSet;
use std::path::PathBuf;

fn sweep_dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name)
}

/// Why: the crate's scenario and profile are sound, so a red run with the weak algorithm is
/// the algorithm's fault: with Flink's aligned barriers every seed passes.
#[test]
fn the_fan_in_scenario_passes_with_aligned_barriers() {
    let catalog = snapsim_example::catalog();
    let manifest = Manifest::new(
        &catalog,
        &["fan-in".to_string()],
        0..4,
        Shard::WHOLE,
        Variant::default(),
    )
    .expect("a known scenario");
    let summary = run_sweep(&catalog, &manifest, 2, &sweep_dir("fan-in"), |_| {}).expect("ran");
    assert!(summary.passed(), "{}", summary.markdown);
}

/// Why: the built-in checkers catch an algorithm that snapshots before its channels are
/// aligned: every seed of the sweep fails consistent-cut.
#[test]
fn a_sweep_catches_the_weak_algorithm() {
    let catalog = snapsim_example::catalog();
    let variant = Variant::new(&catalog, None, Some("eager-snapshot".into()), &[]).expect("known");
    let manifest = Manifest::new(
        &catalog,
        &["fan-in".to_string()],
        0..4,
        Shard::WHOLE,
        variant,
    )
    .expect("a known scenario");
    let summary = run_sweep(&catalog, &manifest, 2, &sweep_dir("eager"), |_| {}).expect("ran");
    let fan_in = &summary.scenarios[0];
    assert_eq!(fan_in.passed, 0, "{}", summary.markdown);
    assert_eq!(
        fan_in.violations.get("consistent-cut"),
        Some(&4),
        "{:?}",
        fan_in.violations
    );
}

/// Why: a checker that cannot fail is a defect. With the seeded bug that reverses the order
/// of a sink's commits, the crate's commit-order checker fails in every run of a scenario
/// that completes several checkpoints at once; without it, it holds.
#[test]
fn the_commit_order_checker_fails_on_commits_out_of_order() {
    let catalog = snapsim_example::catalog();
    let scenario = catalog.scenario("chain-join").expect("built in");
    let bug = SeededBug::CommitOutOfOrder.name().to_string();
    let buggy = Variant::new(&catalog, None, None, &[bug]).expect("known");
    for seed in 0..3 {
        let (outcome, _) = run_variant(&catalog, scenario, seed, &buggy).expect("runs");
        let properties: BTreeSet<String> = (outcome.violations.iter())
            .map(|v| v.property.to_string())
            .collect();
        assert!(
            properties.contains("commit-order"),
            "seed {seed}: {properties:?}"
        );
        let (clean, _) = run_variant(&catalog, scenario, seed, &Variant::default()).expect("runs");
        assert_eq!(
            clean.verdict,
            Verdict::Passed,
            "seed {seed}: {:?}",
            clean.violations
        );
    }
}

/// Why: this is the crate's own `cargo test` fuzzing: generated cases judged by every
/// checker of its catalog, the built-in ones and commit-order (SNAPSIM_CASES and the other
/// variables change it, as for snapsim's own tests).
#[test]
fn generated_cases_keep_every_property_with_the_extra_checker() {
    let catalog = snapsim_example::catalog();
    let fuzzing = Fuzzing {
        failures: sweep_dir("snapsim-failures"),
        ..Fuzzing::from_env(&catalog, 8)
    };
    fuzz_or_panic(&catalog, &fuzzing);
}
