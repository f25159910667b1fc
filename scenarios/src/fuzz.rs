//! Seeded fuzzing, the entry point a `cargo test` calls: proptest draws whole cases (job
//! shape, options, fault episodes, seed), each runs in the simulation and is judged by the
//! catalog's checkers; the first failure is shrunk (fewer episodes, earlier times, a smaller
//! job), written to a case file and reported with the line that replays it.
//!
//! A crate that adds checkers or algorithms fuzzes with its own catalog:
//!
//! ```no_run
//! # use snapsim_scenarios::{catalog::Catalog, fuzz::{Fuzzing, fuzz_or_panic}};
//! #[test]
//! fn generated_cases_keep_every_property() {
//!     let catalog = Catalog::builtin(); // with the crate's own additions
//!     fuzz_or_panic(&catalog, &Fuzzing::from_env(&catalog, 16));
//! }
//! ```

use crate::generated::{self, Case};
use crate::replay::{CaseFile, Replayable};
use crate::verdict::Failure;
use crate::{run_case, Catalog, Verdict, BUILD_COMMIT};
use proptest::test_runner::{
    Config, FileFailurePersistence, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner,
};
use snapsim_core::bugs::SeededBug;
use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;
use std::path::PathBuf;

/// How many shrinking steps a failure gets by default.
pub const SHRINK_ITERS: u32 = 256;

/// What to fuzz.
#[derive(Clone, Debug)]
pub struct Fuzzing {
    /// Cases to run (after the committed regressions).
    pub cases: u32,
    /// The base seed of proptest's generator: the same seed draws the same cases.
    pub seed: u64,
    /// Seeded bugs switched on in every case.
    pub bugs: BTreeSet<SeededBug>,
    /// The most fault episodes a case has.
    pub episodes_max: usize,
    /// A snapshot algorithm of the catalog for every case, by name (none: the drawn mode's
    /// barrier handling).
    pub algorithm: Option<String>,
    /// Shrinking steps a failure gets.
    pub shrink_iters: u32,
    /// The file of failures found once and tried first ever after (proptest's regression
    /// file; not used while a seeded bug is on, whose failures are no regressions).
    pub regressions: Option<PathBuf>,
    /// Where the shrunk failing case's file is written.
    pub failures: PathBuf,
}

impl Fuzzing {
    /// The fuzzing `cargo test` runs by default (`cases` cases, base seed 0, up to 6
    /// episodes), changed by the environment:
    /// - `SNAPSIM_CASES`: how many cases;
    /// - `SNAPSIM_SEED`: the base seed of proptest's generator;
    /// - `SNAPSIM_BUG`: seeded bugs to switch on, comma-separated names (see `snapsim list`);
    /// - `SNAPSIM_EPISODES_MAX`: the most fault episodes per case;
    /// - `SNAPSIM_ALGORITHM`: a snapshot algorithm of `catalog` for every case.
    ///
    /// A malformed variable panics with its name: this is for tests.
    pub fn from_env(catalog: &Catalog, cases: u32) -> Fuzzing {
        let names = std::env::var("SNAPSIM_BUG").unwrap_or_default();
        let names: Vec<&str> = names.split(',').filter(|name| !name.is_empty()).collect();
        let bugs = SeededBug::all_named(&names).unwrap_or_else(|e| panic!("SNAPSIM_BUG: {e}"));
        let algorithm = std::env::var("SNAPSIM_ALGORITHM").ok();
        if let Some(name) = &algorithm {
            catalog
                .algorithm(name)
                .unwrap_or_else(|e| panic!("SNAPSIM_ALGORITHM: {e}"));
        }
        Fuzzing {
            cases: env_number("SNAPSIM_CASES", cases.into()) as u32,
            seed: env_number("SNAPSIM_SEED", 0),
            bugs,
            episodes_max: env_number("SNAPSIM_EPISODES_MAX", 6) as usize,
            algorithm,
            shrink_iters: SHRINK_ITERS,
            regressions: None,
            failures: std::env::temp_dir().join("snapsim-failures"),
        }
    }
}

fn env_number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(text) => text
            .parse()
            .unwrap_or_else(|_| panic!("{name}={text}: expected a whole number")),
        Err(_) => default,
    }
}

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

/// Runs the cases `fuzzing` asks for; shrinks the first failure. Returns the number of cases
/// run when all passed.
pub fn fuzz(catalog: &Catalog, fuzzing: &Fuzzing) -> Result<u32, Box<Found>> {
    let persistence = fuzzing
        .regressions
        .as_ref()
        .filter(|_| fuzzing.bugs.is_empty())
        .map(|path| {
            let path: &'static str = Box::leak(path.display().to_string().into_boxed_str());
            Box::new(FileFailurePersistence::Direct(path)) as Box<_>
        });
    let config = Config {
        cases: fuzzing.cases,
        failure_persistence: persistence,
        max_shrink_iters: fuzzing.shrink_iters,
        ..Config::default()
    };
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&fuzzing.seed.to_le_bytes());
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes);
    let mut runner = TestRunner::new_with_rng(config, rng);
    let ran = Cell::new(0u32);
    let first_failure = Cell::new(None::<u32>);
    // The first failure's property and witness shape: shrinking keeps both, so that a case
    // does not shrink into another bug (a simpler case failing otherwise counts as passing).
    let kept: RefCell<Option<Failure>> = RefCell::new(None);
    let algorithm = (fuzzing.algorithm.as_ref())
        .map(|name| catalog.algorithm(name).expect("checked by Fuzzing").clone());
    let strategy = generated::case_with(fuzzing.episodes_max, algorithm);
    let result = runner.run(&strategy, |case: Case| {
        if first_failure.get().is_none() {
            ran.set(ran.get() + 1);
        }
        let (outcome, _) =
            run_case(catalog, &case, &fuzzing.bugs).expect("generated jobs are valid");
        if outcome.verdict == Verdict::Passed {
            return Ok(());
        }
        first_failure.set(first_failure.get().or(Some(ran.get())));
        let mut kept = kept.borrow_mut();
        let failure = kept.get_or_insert_with(|| Failure::of(&outcome.violations[0]));
        match failure.found_in(&outcome.violations) {
            Some(violation) => Err(TestCaseError::fail(violation.to_string())),
            None => Ok(()),
        }
    });
    let case = match result {
        Ok(()) => return Ok(ran.get()),
        Err(TestError::Fail(_, case)) => case,
        Err(TestError::Abort(reason)) => panic!("fuzzing aborted: {reason}"),
    };
    let (outcome, _) = run_case(catalog, &case, &fuzzing.bugs).expect("generated jobs are valid");
    let file = CaseFile {
        commit: BUILD_COMMIT.to_string(),
        bugs: fuzzing.bugs.iter().map(|b| b.to_string()).collect(),
        schedule: case.setup(catalog).expect("it ran").schedule,
        trace_hash: outcome.trace_hash,
        violations: outcome.violations.iter().map(|v| v.to_string()).collect(),
        case: Replayable::Generated(case.clone()),
    };
    std::fs::create_dir_all(&fuzzing.failures).expect("the failures directory is writable");
    let path = (fuzzing.failures).join(format!("case-{:016x}.json", outcome.trace_hash));
    file.save(&path).expect("the case file is writable");
    Err(Box::new(Found {
        case,
        file,
        path,
        cases_to_find: first_failure.get().unwrap_or(ran.get()),
    }))
}

/// [`fuzz`] for a test: panics on a failure with the shrunk case's violations and the line
/// that replays it.
pub fn fuzz_or_panic(catalog: &Catalog, fuzzing: &Fuzzing) {
    let name = fuzzing.algorithm.as_deref().unwrap_or("the drawn mode");
    match fuzz(catalog, fuzzing) {
        // The committed regressions run first, then the new cases.
        Ok(ran) => assert!(ran >= fuzzing.cases, "every case ran: {ran}"),
        Err(found) => panic!(
            "a generated case ({name}) failed after {} cases (base seed {}), shrunk to {} fault episodes:\n  {}\nreplay: {} replay {}",
            found.cases_to_find,
            fuzzing.seed,
            found.case.episodes.len(),
            found.file.violations.join("\n  "),
            catalog.command(),
            found.path.display()
        ),
    }
}
