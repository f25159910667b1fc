//! Case files: a run written down so that it can be made again, replayed, shrunk and reported.
//!
//! A case is a generated [`Case`] (what the fuzz test writes) or a named scenario's run with
//! what it changed (`snapsim run --save-case`, and `snapsim shrink`, which may replace the
//! drawn fault schedule by a smaller one). With the build, a case fixes the trace.

use crate::generated::Case;
use crate::{judge, judge_variant, Catalog, NameError, Outcome, Variant, BUILD_COMMIT};
use serde::{Deserialize, Serialize};
use snapsim_core::bugs::SeededBug;
use snapsim_core::job::JobError;
use snapsim_sim::faults::FaultSchedule;
use snapsim_sim::harness::RunResult;
use std::path::Path;
use thiserror::Error;

/// A named scenario's run: the scenario, the seed, what it changed, and perhaps a fault
/// schedule of its own instead of the one its profile draws.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioRun {
    pub scenario: String,
    pub seed: u64,
    /// A fault profile instead of the scenario's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub faults: Option<String>,
    /// A snapshot algorithm instead of the scenario's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithm: Option<String>,
    /// A keyed-state backend instead of the scenario's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    /// This schedule instead of the one the profile draws.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<FaultSchedule>,
}

impl ScenarioRun {
    /// The run of `scenario` with `seed` changed as `variant` says (its bugs are the case
    /// file's), with the schedule its profile draws.
    pub fn of(scenario: &str, seed: u64, variant: &Variant) -> ScenarioRun {
        ScenarioRun {
            scenario: scenario.to_string(),
            seed,
            faults: variant.faults.clone(),
            algorithm: variant.algorithm.clone(),
            backend: variant.backend.clone(),
            schedule: None,
        }
    }
}

/// What a case file holds: a generated case or a scenario's run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Replayable {
    /// A generated case (job shape, options, fault episodes, seed).
    Generated(Case),
    /// A named scenario's run.
    Scenario(ScenarioRun),
}

/// Why a case could not be run.
#[derive(Debug, Error)]
pub enum ReplayError {
    /// It names a scenario, profile, algorithm or bug that does not exist.
    #[error(transparent)]
    Name(#[from] NameError),
    /// Its generated job's parameters are impossible.
    #[error("the generated job is invalid: {0}")]
    Case(String),
    /// Its job does not build.
    #[error("the job is invalid: {0}")]
    Job(#[from] JobError),
    /// Its fault schedule does not fit the cluster.
    #[error("the fault schedule is invalid: {0}")]
    Schedule(String),
}

impl Replayable {
    /// Runs the case with the seeded `bugs` switched on, judged against the bug-free oracle.
    pub fn run(
        &self,
        catalog: &Catalog,
        bugs: &[String],
    ) -> Result<(Outcome, RunResult), ReplayError> {
        self.run_logging(catalog, bugs, false)
    }

    /// Runs the case as [`run`](Self::run) does, keeping the log of messages between nodes
    /// that a report's message-sequence chart draws ([`RunResult::messages`]).
    pub fn run_for_report(
        &self,
        catalog: &Catalog,
        bugs: &[String],
    ) -> Result<(Outcome, RunResult), ReplayError> {
        self.run_logging(catalog, bugs, true)
    }

    fn run_logging(
        &self,
        catalog: &Catalog,
        bugs: &[String],
        logs_messages: bool,
    ) -> Result<(Outcome, RunResult), ReplayError> {
        match self {
            Replayable::Generated(case) => {
                let bugs = SeededBug::all_named(bugs).map_err(NameError::from)?;
                case.job.check().map_err(ReplayError::Case)?;
                // Checked and run from one setup (drawing it generates the input logs).
                let mut setup = case.setup(catalog)?;
                (setup.schedule.validate(&setup.cluster))
                    .map_err(|e| ReplayError::Schedule(e.to_string()))?;
                setup.job.bugs.extend(bugs);
                setup.logs_messages = logs_messages;
                Ok(judge(catalog, "generated", case.seed, setup)?)
            }
            Replayable::Scenario(run) => {
                let scenario = catalog.scenario(&run.scenario).map_err(NameError::from)?;
                let variant =
                    Variant::new(catalog, run.faults.clone(), run.algorithm.clone(), bugs)?
                        .with_backend(run.backend.clone())?;
                let mut setup = variant.setup(catalog, scenario, run.seed)?;
                if let Some(schedule) = &run.schedule {
                    schedule
                        .validate(&setup.cluster)
                        .map_err(|e| ReplayError::Schedule(e.to_string()))?;
                    setup.schedule = schedule.clone();
                }
                setup.logs_messages = logs_messages;
                Ok(judge_variant(catalog, scenario, run.seed, &variant, setup)?)
            }
        }
    }

    /// The fault schedule the case runs with.
    pub fn schedule(&self, catalog: &Catalog) -> Result<FaultSchedule, ReplayError> {
        match self {
            Replayable::Generated(case) => Ok(case.setup(catalog)?.schedule),
            Replayable::Scenario(ScenarioRun {
                schedule: Some(schedule),
                ..
            }) => Ok(schedule.clone()),
            Replayable::Scenario(run) => {
                let scenario = catalog.scenario(&run.scenario).map_err(NameError::from)?;
                let variant =
                    Variant::new(catalog, run.faults.clone(), run.algorithm.clone(), &[])?
                        .with_backend(run.backend.clone())?;
                Ok(variant.setup(catalog, scenario, run.seed)?.schedule)
            }
        }
    }
}

/// A case written down with what its run gave and the build that gave it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CaseFile {
    /// The commit of the build (`git describe`), so a replay can tell it runs another build.
    pub commit: String,
    pub case: Replayable,
    /// Seeded bugs switched on (names).
    #[serde(default)]
    pub bugs: Vec<String>,
    /// The expanded fault schedule, for people (a replay rebuilds it from the case).
    pub schedule: FaultSchedule,
    /// The run's trace hash: a replay with the same build gives the same.
    pub trace_hash: u64,
    /// The violations, one line each.
    pub violations: Vec<String>,
}

/// Errors reading or writing a case file.
#[derive(Debug, Error)]
pub enum CaseFileError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a case file.
    #[error("{path}: not a snapsim case file: {error}")]
    Format {
        /// The file.
        path: String,
        /// Why.
        error: String,
    },
}

impl CaseFile {
    /// The file of a case whose run gave `outcome`.
    pub fn recorded(
        catalog: &Catalog,
        case: Replayable,
        outcome: &Outcome,
    ) -> Result<CaseFile, ReplayError> {
        Ok(CaseFile {
            commit: BUILD_COMMIT.to_string(),
            schedule: case.schedule(catalog)?,
            case,
            bugs: outcome.variant.bugs.clone(),
            trace_hash: outcome.trace_hash,
            violations: outcome.violations.iter().map(|v| v.to_string()).collect(),
        })
    }

    /// Writes the file as pretty JSON.
    pub fn save(&self, path: &Path) -> Result<(), CaseFileError> {
        let text = serde_json::to_string_pretty(self).expect("case files serialize") + "\n";
        std::fs::write(path, text).map_err(|source| CaseFileError::Io {
            path: path.display().to_string(),
            source,
        })
    }

    /// Reads a file written by [`CaseFile::save`].
    pub fn load(path: &Path) -> Result<CaseFile, CaseFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| CaseFileError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let format = |error: String| CaseFileError::Format {
            path: path.display().to_string(),
            error,
        };
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| format(e.to_string()))?;
        // An untagged enum's own error says only that nothing matched: say which kind of case
        // the file looks like and what is wrong with it as that kind.
        let case = value
            .get("case")
            .ok_or_else(|| format("no \"case\" field".into()))?;
        if case.get("job").is_some() {
            serde_json::from_value::<Case>(case.clone())
                .map_err(|e| format(format!("case: a generated case, but {e}")))?;
        } else if case.get("scenario").is_some() {
            serde_json::from_value::<ScenarioRun>(case.clone())
                .map_err(|e| format(format!("case: a scenario run, but {e}")))?;
        } else {
            return Err(format(
                "case: neither a generated case (\"job\") nor a scenario run (\"scenario\")".into(),
            ));
        }
        serde_json::from_value(value).map_err(|e| format(e.to_string()))
    }
}
