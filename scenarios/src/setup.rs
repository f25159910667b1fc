//! What a run of a scenario is made of: the setup drawn from the seed, and the variant that
//! changes the scenario's own choices (`--faults`, `--algorithm`, `--bug`).

use crate::catalog::{Catalog, NameError};
use crate::resume;
use crate::scenario::{Draws, Scenario};
use serde::{Deserialize, Serialize};
use snapsim_core::bugs::SeededBug;
use snapsim_core::cluster::ClusterConfig;
use snapsim_core::config::StateBackend;
use snapsim_core::job::JobGraph;
use snapsim_sim::faults::FaultSchedule;
use snapsim_sim::harness::Handover;
use std::sync::Arc;

/// What a scenario draws from a seed.
pub struct Setup {
    pub job: JobGraph,
    pub cluster: ClusterConfig,
    /// The adversary.
    pub schedule: FaultSchedule,
    /// The run of an earlier job on the same cluster, when this job resumes from the snapshot
    /// that one left (see [`resume`]); the oracle starts from it too.
    pub after: Option<Earlier>,
    /// Keep the log of messages between nodes for a report's message-sequence chart (see
    /// [`RunConfig::logs_messages`](snapsim_sim::world::RunConfig::logs_messages)).
    pub logs_messages: bool,
}

/// The run of an earlier job that a setup's job follows.
#[derive(Clone, Debug)]
pub enum Earlier {
    /// It left a snapshot to start from.
    Ran(Arc<Handover>),
    /// It did not (an engine defect, as it runs without faults): the run's crash.
    Failed(String),
}

impl Setup {
    pub(crate) fn handover(&self) -> Option<&Arc<Handover>> {
        match &self.after {
            Some(Earlier::Ran(handover)) => Some(handover),
            _ => None,
        }
    }
}

/// What a run of a named scenario changes from the scenario's own choices: `--faults`,
/// `--algorithm` and `--bug` on the command line. Outcomes, sweep manifests and replay lines
/// carry it, so every run can be made again.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Variant {
    /// A fault profile instead of the scenario's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub faults: Option<String>,
    /// A snapshot algorithm instead of the scenario's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithm: Option<String>,
    /// Seeded bugs switched on, by name, sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bugs: Vec<String>,
    /// A keyed-state backend instead of the scenario's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
}

impl Variant {
    /// A variant from command-line names, each checked (bugs sorted, each once).
    pub fn new(
        catalog: &Catalog,
        faults: Option<String>,
        algorithm: Option<String>,
        bugs: &[String],
    ) -> Result<Variant, NameError> {
        let variant = Variant {
            faults,
            algorithm,
            bugs: SeededBug::all_named(bugs)?
                .iter()
                .map(|b| b.to_string())
                .collect(),
            backend: None,
        };
        variant.check(catalog)?;
        Ok(variant)
    }

    /// This variant with `backend` (a name `snapsim list` shows) instead of the scenario's own.
    pub fn with_backend(mut self, backend: Option<String>) -> Result<Variant, NameError> {
        if let Some(name) = &backend {
            state_backend(name)?;
        }
        self.backend = backend;
        Ok(self)
    }

    /// Checks every name (a variant read from a file was never checked).
    pub fn check(&self, catalog: &Catalog) -> Result<(), NameError> {
        if let Some(name) = &self.backend {
            state_backend(name)?;
        }
        if let Some(name) = &self.faults {
            catalog.profile(name)?;
        }
        if let Some(name) = &self.algorithm {
            catalog.algorithm(name)?;
        }
        SeededBug::all_named(&self.bugs)?;
        Ok(())
    }

    /// The command-line flags that make this variant (empty for none).
    pub fn flags(&self) -> String {
        let mut flags = String::new();
        if let Some(name) = &self.faults {
            flags += &format!(" --faults {name}");
        }
        if let Some(name) = &self.algorithm {
            flags += &format!(" --algorithm {name}");
        }
        for bug in &self.bugs {
            flags += &format!(" --bug {bug}");
        }
        if let Some(name) = &self.backend {
            flags += &format!(" --backend {name}");
        }
        flags
    }

    /// Why `scenario` cannot be judged fairly with this variant, if it cannot (see
    /// [`Scenario::refuses`]); an unknown algorithm is no reason (its name is checked apart).
    pub fn refused_by(&self, catalog: &Catalog, scenario: &Scenario) -> Option<String> {
        let backend = self.backend.as_deref().and_then(StateBackend::named);
        let refused = backend.and_then(|backend| scenario.refuses_backend(backend));
        refused.or_else(|| self.algorithm_refused_by(catalog, scenario))
    }

    /// Why `scenario` cannot be judged fairly with this variant's algorithm, if it cannot.
    fn algorithm_refused_by(&self, catalog: &Catalog, scenario: &Scenario) -> Option<String> {
        let algorithm = catalog.algorithm(self.algorithm.as_deref()?).ok()?;
        scenario.refuses(algorithm.as_ref())
    }

    /// The setup of `scenario` with `seed` changed as this variant says.
    pub fn setup(
        &self,
        catalog: &Catalog,
        scenario: &Scenario,
        seed: u64,
    ) -> Result<Setup, NameError> {
        let profile = catalog.profile(self.faults.as_deref().unwrap_or(scenario.faults))?;
        if let Some(reason) = self.algorithm_refused_by(catalog, scenario) {
            return Err(NameError::Refused(reason));
        }
        let mut draws = Draws::new(seed);
        let (mut job, mut cluster) = (scenario.job)(&mut draws);
        if let Some(name) = &self.algorithm {
            let algorithm = catalog.algorithm(name)?;
            job.use_algorithm(algorithm);
        }
        if let Some(name) = &self.backend {
            // Judged on the job drawn, not on seed 0's again as `refused_by` does.
            let backend = state_backend(name)?;
            if let Some(reason) = scenario.refuses_backend_for(backend, &job) {
                return Err(NameError::Refused(reason));
            }
            backend.configure(&mut job.checkpoint);
        }
        let mut after = None;
        if scenario.resumes {
            // A panic in the earlier run's harness is caught there; one here is the run's too.
            let (earlier, on) = (job.clone(), cluster.clone());
            let resumed = guarded(|| resume::resume(&mut draws.timing, earlier, on, seed));
            after = Some(match resumed.and_then(|resumed| resumed) {
                Ok(resumed) => {
                    (job, cluster) = (resumed.job, resumed.cluster);
                    Earlier::Ran(resumed.after)
                }
                Err(why) => Earlier::Failed(why),
            });
        }
        job.bugs.extend(SeededBug::all_named(&self.bugs)?);
        let schedule = profile.draw(&mut draws.faults, cluster.task_managers);
        Ok(Setup {
            job,
            cluster,
            schedule,
            after,
            logs_messages: false,
        })
    }
}

/// Runs `f`, turning a panic into its message. The harness does the same for the simulated
/// run (its thread's panic); this covers what runs in the caller's thread: the oracle, the
/// model and the checkers.
pub(crate) fn guarded<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|panic| {
        panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "panic without a message".to_string())
    })
}

/// The keyed-state backend called `name`.
fn state_backend(name: &str) -> Result<StateBackend, NameError> {
    StateBackend::named(name).ok_or_else(|| NameError::Backend {
        name: name.to_string(),
        known: StateBackend::ALL.map(StateBackend::name).join(", "),
    })
}
