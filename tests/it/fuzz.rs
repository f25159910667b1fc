//! Seeded fuzzing: proptest draws whole cases (job shape, options, fault episodes, seed), runs
//! each in the simulation and judges it; a failure is shrunk (fewer episodes, earlier times,
//! a smaller job), written to a case file and reported with the line that replays it.
//!
//! The default `cargo test` is deterministic (a fixed base seed) and draws 128 cases per test
//! (about 15 ms a case). The environment variables of `snapsim_scenarios::fuzz::Fuzzing::from_env`
//! change it (`SNAPSIM_CASES`, `SNAPSIM_SEED`, `SNAPSIM_BUG`, `SNAPSIM_EPISODES_MAX`,
//! `SNAPSIM_ALGORITHM`). The channel-state algorithms have a test of their own.

use snapsim_core::algorithm::{FlinkAlgorithm, SnapshotAlgorithm};
use snapsim_scenarios::fuzz::{fuzz_or_panic, Fuzzing};
use snapsim_scenarios::replay::CaseFile;
use snapsim_scenarios::{Catalog, Verdict};
use std::path::PathBuf;

/// The fuzzing of the default `cargo test`, changed by the environment.
pub fn fuzzing(catalog: &Catalog) -> Fuzzing {
    Fuzzing {
        // Regressions found once are tried first forever after (committed with the tests).
        regressions: Some(PathBuf::from("it/fuzz.proptest-regressions")),
        failures: PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("snapsim-failures"),
        ..Fuzzing::from_env(catalog, 128)
    }
}

/// Why: this is the fuzzing users run with `cargo test`; with every seeded bug off, every
/// generated case keeps every property. A failure says how to replay its shrunk case.
#[test]
fn generated_cases_keep_every_property() {
    let catalog = Catalog::builtin();
    fuzz_or_panic(&catalog, &fuzzing(&catalog));
}

/// Why: the snapshot algorithms that record channel state (unaligned, unaligned with the
/// aligned-checkpoint timeout, Chandy-Lamport) keep every property under the same fuzzed
/// faults, with and without back-pressure at the keyed operator; the consistent-cut check
/// counts their in-flight records (conservation).
#[test]
fn channel_state_algorithms_keep_every_property() {
    let catalog = Catalog::builtin();
    let base = fuzzing(&catalog);
    for algorithm in FlinkAlgorithm::ALL
        .into_iter()
        .filter(|a| a.records_channel_state())
    {
        let fuzzing = Fuzzing {
            algorithm: Some(algorithm.name().to_string()),
            ..base.clone()
        };
        fuzz_or_panic(&catalog, &fuzzing);
    }
}

/// Why: every case the fuzzing once failed on stays fixed. Each file in `tests/cases` is a
/// case file as a failure writes it (its recorded violations say what was wrong then); run
/// with the bugs it names off, it must keep every property now.
///
/// - `busy-link-starves-barriers.json` (18th case at base seed 0): madsim sleeps at least
///   1 ms per payload on a connection, so a link sending one payload per message carried at
///   most 1,000 messages per virtual second; the busiest TaskManager link fell 600 ms behind,
///   barriers never reached the sinks before the checkpoint timeout and no checkpoint ever
///   completed. Links now send every due message in one payload.
#[test]
fn committed_cases_keep_every_property() {
    let directory = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("cases");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&directory)
        .expect("tests/cases exists")
        .map(|entry| entry.expect("a readable directory entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    assert!(
        !paths.is_empty(),
        "no committed cases in {}",
        directory.display()
    );
    for path in paths {
        let file = CaseFile::load(&path).expect("a committed case file");
        let (outcome, _) = file
            .case
            .run(&Catalog::builtin(), &[])
            .expect("a valid case");
        assert_eq!(
            outcome.verdict,
            Verdict::Passed,
            "{}: {:?}",
            path.display(),
            outcome.violations
        );
    }
}
