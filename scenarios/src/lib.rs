//! snapsim-scenarios: named jobs with their fault schedules, and running them with a verdict.
//!
//! The one design decision to know: a scenario is plain data drawn from a seed (job shape,
//! input logs, cluster, faults), so (scenario, seed, build) fixes the run. The verdict compares
//! the run with the same scenario's failure-free oracle, run by the in-process driver.

pub mod bench;
mod builtin;
pub mod campaign;
pub mod catalog;
mod checkmate;
pub mod cli;
pub mod fuzz;
pub mod generated;
mod paper;
pub mod profiles;
pub mod replay;
pub mod report;
mod resume;
mod scenario;
mod setup;
pub mod shrink;
mod summary;
pub mod sweep;
mod verdict;
mod version;

pub use builtin::{cluster, log, CHECKPOINT_DIRECTORY};
pub use catalog::{Catalog, NameError, UnknownScenario};
pub use scenario::{Draws, JobFn, Scenario};
pub use setup::{Earlier, Setup, Variant};
pub use verdict::{
    describe_entry, describe_run, explain_run, judge, judge_variant, run, run_case, run_variant,
    setup, trace_before_violation, CaseError, Failure, Outcome, RunError, Stats, Verdict,
};
pub use version::BUILD_COMMIT;
