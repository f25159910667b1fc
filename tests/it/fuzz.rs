//! Seeded fuzzing: proptest draws whole cases (job shape, options, fault episodes, seed), runs
//! each in the simulation and judges it; a failure is shrunk (fewer episodes, earlier times,
//! a smaller job), written to a case file and reported with the line that replays it.
//!
//! The default `cargo test` is deterministic (a fixed base seed). Environment variables:
//! - `SNAPSIM_CASES`: how many cases (default 16);
//! - `SNAPSIM_SEED`: the base seed of proptest's generator (default 0);
//! - `SNAPSIM_BUG`: seeded bugs to switch on, comma-separated names (see `snapsim list`);
//! - `SNAPSIM_EPISODES_MAX`: the most fault episodes per case (default 6);
//! - `SNAPSIM_ALGORITHM`: a snapshot algorithm for every case (see `snapsim list`; default:
//!   the drawn mode's barrier handling). The channel-state algorithms have a test of their own.

use proptest::test_runner::{
    Config, FileFailurePersistence, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner,
};
use snapsim_core::bugs::SeededBug;
use snapsim_scenarios::generated::{self, Case};
use snapsim_scenarios::replay::{CaseFile, Replayable};
use snapsim_scenarios::BUILD_COMMIT;
use snapsim_scenarios::{run_case, Algorithm, Verdict};
use std::cell::Cell;
use std::collections::BTreeSet;
use std::path::PathBuf;

/// The fuzzing knobs, from the environment.
struct Knobs {
    cases: u32,
    seed: u64,
    bugs: BTreeSet<SeededBug>,
    episodes_max: usize,
    algorithm: Option<Algorithm>,
}

fn env_number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(text) => text
            .parse()
            .unwrap_or_else(|_| panic!("{name}={text}: expected a whole number")),
        Err(_) => default,
    }
}

impl Knobs {
    fn from_env() -> Knobs {
        let names = std::env::var("SNAPSIM_BUG").unwrap_or_default();
        let names: Vec<&str> = names.split(',').filter(|name| !name.is_empty()).collect();
        let bugs = SeededBug::all_named(&names).unwrap_or_else(|e| panic!("SNAPSIM_BUG: {e}"));
        Knobs {
            cases: env_number("SNAPSIM_CASES", 16) as u32,
            seed: env_number("SNAPSIM_SEED", 0),
            bugs,
            episodes_max: env_number("SNAPSIM_EPISODES_MAX", 6) as usize,
            algorithm: std::env::var("SNAPSIM_ALGORITHM").ok().map(|name| {
                Algorithm::named(&name).unwrap_or_else(|e| panic!("SNAPSIM_ALGORITHM: {e}"))
            }),
        }
    }
}

/// How many shrinking steps a failure gets.
pub const SHRINK_ITERS: u32 = 256;

/// What a fuzzing session found: the shrunk failing case written to a file, and how many
/// cases ran before the first failure.
pub struct Found {
    /// The shrunk case.
    pub case: Case,
    /// The case file.
    pub file: CaseFile,
    /// Where it was written.
    pub path: PathBuf,
    /// Cases run up to and including the first failing one (before shrinking).
    pub cases_to_find: u32,
}

/// Runs `cases` generated cases from base `seed` with `bugs` on (and every job with
/// `algorithm`, if given); shrinks the first failure. Returns the number of cases run when all
/// passed.
pub fn fuzz(
    cases: u32,
    seed: u64,
    bugs: &BTreeSet<SeededBug>,
    episodes_max: usize,
    algorithm: Option<Algorithm>,
    shrink_iters: u32,
) -> Result<u32, Box<Found>> {
    // Regressions found once are tried first forever after (committed with the tests); a
    // failure with a seeded bug on is no regression.
    let persistence = FileFailurePersistence::Direct("it/fuzz.proptest-regressions");
    let config = Config {
        cases,
        failure_persistence: bugs.is_empty().then(|| Box::new(persistence) as Box<_>),
        max_shrink_iters: shrink_iters,
        ..Config::default()
    };
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes);
    let mut runner = TestRunner::new_with_rng(config, rng);
    let ran = Cell::new(0u32);
    let first_failure = Cell::new(None::<u32>);
    let strategy = generated::case_with(episodes_max, algorithm);
    let result = runner.run(&strategy, |case: Case| {
        if first_failure.get().is_none() {
            ran.set(ran.get() + 1);
        }
        let (outcome, _) = run_case(&case, bugs).expect("generated jobs are valid");
        if outcome.verdict == Verdict::Passed {
            return Ok(());
        }
        first_failure.set(first_failure.get().or(Some(ran.get())));
        let first = &outcome.violations[0];
        Err(TestCaseError::fail(first.to_string()))
    });
    let case = match result {
        Ok(()) => return Ok(ran.get()),
        Err(TestError::Fail(_, case)) => case,
        Err(TestError::Abort(reason)) => panic!("fuzzing aborted: {reason}"),
    };
    let (outcome, _) = run_case(&case, bugs).expect("generated jobs are valid");
    let file = CaseFile {
        commit: BUILD_COMMIT.to_string(),
        bugs: bugs.iter().map(|b| b.to_string()).collect(),
        schedule: case.setup().schedule,
        trace_hash: outcome.trace_hash,
        violations: outcome.violations.iter().map(|v| v.to_string()).collect(),
        case: Replayable::Generated(case.clone()),
    };
    let directory = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("snapsim-failures");
    std::fs::create_dir_all(&directory).expect("the target directory is writable");
    let path = directory.join(format!("case-{:016x}.json", outcome.trace_hash));
    file.save(&path).expect("the case file is writable");
    Err(Box::new(Found {
        case,
        file,
        path,
        cases_to_find: first_failure.get().unwrap_or(ran.get()),
    }))
}

/// Why: this is the fuzzing users run with `cargo test`; with every seeded bug off, every
/// generated case keeps every property. A failure says how to replay its shrunk case.
#[test]
fn generated_cases_keep_every_property() {
    let knobs = Knobs::from_env();
    fuzz_and_report(&knobs, knobs.algorithm);
}

/// Why: the snapshot algorithms that record channel state (unaligned, unaligned with the
/// aligned-checkpoint timeout, Chandy-Lamport) keep every property under the same fuzzed
/// faults, with and without back-pressure at the keyed operator; the consistent-cut check
/// counts their in-flight records (conservation).
#[test]
fn channel_state_algorithms_keep_every_property() {
    let knobs = Knobs::from_env();
    for algorithm in Algorithm::ALL
        .into_iter()
        .filter(|a| a.records_channel_state())
    {
        fuzz_and_report(&knobs, Some(algorithm));
    }
}

fn fuzz_and_report(knobs: &Knobs, algorithm: Option<Algorithm>) {
    let name = algorithm.map_or("the drawn mode", Algorithm::name);
    match fuzz(
        knobs.cases,
        knobs.seed,
        &knobs.bugs,
        knobs.episodes_max,
        algorithm,
        SHRINK_ITERS,
    ) {
        // The committed regressions run first, then the new cases.
        Ok(ran) => assert!(ran >= knobs.cases, "every case ran: {ran}"),
        Err(found) => panic!(
            "a generated case ({name}) failed after {} cases (base seed {}), shrunk to {} fault episodes:\n  {}\nreplay: cargo run --release -- replay {}",
            found.cases_to_find,
            knobs.seed,
            found.case.episodes.len(),
            found.file.violations.join("\n  "),
            found.path.display()
        ),
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
        let (outcome, _) = file.case.run(&[]).expect("a valid case");
        assert_eq!(
            outcome.verdict,
            Verdict::Passed,
            "{}: {:?}",
            path.display(),
            outcome.violations
        );
    }
}
