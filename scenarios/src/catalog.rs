//! The catalog: every snapshot algorithm, scenario, fault profile and checker a program knows,
//! by name. The `snapsim` program is [`crate::cli::main`] with [`Catalog::builtin`]; a crate
//! that depends on snapsim adds its own beside the built-ins and gets the same program, sweeps,
//! shrinking and fuzzing for them:
//!
//! ```no_run
//! use snapsim_scenarios::catalog::Catalog;
//!
//! fn main() -> std::process::ExitCode {
//!     let catalog = Catalog::builtin(); // .with_algorithm(MyAlgorithm).with_checker(MyChecker) …
//!     snapsim_scenarios::cli::main(catalog)
//! }
//! ```
//!
//! `examples/plugin` in the repository is such a crate.

use crate::profiles::{builtin_profiles, FaultProfile, UnknownProfile};
use crate::scenario::Scenario;
use snapsim_core::algorithm::{FlinkAlgorithm, LogBasedAlgorithm, SnapshotAlgorithm};
use snapsim_sim::check::{builtin_checkers, Checker, Property};
use std::fmt;
use std::sync::Arc;
use thiserror::Error;

/// What a program can run: named algorithms, scenarios, fault profiles, and the checkers that
/// judge every run. Names are unique within each kind.
#[derive(Clone)]
pub struct Catalog {
    algorithms: Vec<Arc<dyn SnapshotAlgorithm>>,
    scenarios: Vec<Arc<Scenario>>,
    profiles: Vec<Arc<FaultProfile>>,
    checkers: Vec<Arc<dyn Checker>>,
    command: String,
}

impl fmt::Debug for Catalog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Catalog")
            .field(
                "algorithms",
                &names(self.algorithms.iter().map(|a| a.name())),
            )
            .field("scenarios", &names(self.scenarios.iter().map(|s| s.name)))
            .field("profiles", &names(self.profiles.iter().map(|p| p.name)))
            .field(
                "checkers",
                &names(self.checkers.iter().map(|c| c.property().name())),
            )
            .finish()
    }
}

impl Catalog {
    /// The project's own algorithms, scenarios, profiles and checkers.
    pub fn builtin() -> Catalog {
        let mut catalog = Catalog {
            algorithms: Vec::new(),
            scenarios: Vec::new(),
            profiles: Vec::new(),
            checkers: builtin_checkers(),
            command: "cargo run --release --".to_string(),
        };
        for algorithm in FlinkAlgorithm::ALL {
            catalog = catalog.with_algorithm(algorithm);
        }
        for algorithm in LogBasedAlgorithm::ALL {
            catalog = catalog.with_algorithm(algorithm);
        }
        for scenario in crate::builtin::builtin_scenarios() {
            catalog = catalog.with_scenario(scenario);
        }
        for profile in builtin_profiles() {
            catalog = catalog.with_profile(profile);
        }
        catalog
    }

    /// Adds a snapshot algorithm. Panics if one of that name is there: two registrations of
    /// a name are a mistake in the program, found on its first start.
    pub fn with_algorithm(mut self, algorithm: impl SnapshotAlgorithm + 'static) -> Catalog {
        let name = algorithm.name().to_string();
        assert_new("snapshot algorithm", &name, self.algorithm(&name).is_ok());
        self.algorithms.push(Arc::new(algorithm));
        self
    }

    /// Adds a scenario (panics on a name that is there). Its fault profile must be in the
    /// catalog by the time it runs.
    pub fn with_scenario(mut self, scenario: Scenario) -> Catalog {
        assert_new(
            "scenario",
            scenario.name,
            self.scenario(scenario.name).is_ok(),
        );
        self.scenarios.push(Arc::new(scenario));
        self
    }

    /// Adds a fault profile (panics on a name that is there).
    pub fn with_profile(mut self, profile: FaultProfile) -> Catalog {
        assert_new(
            "fault profile",
            profile.name,
            self.profile(profile.name).is_ok(),
        );
        self.profiles.push(Arc::new(profile));
        self
    }

    /// Adds a checker, judged in every run after the built-in ones (panics on a property
    /// name that is there, a built-in one's included).
    pub fn with_checker(mut self, checker: impl Checker + 'static) -> Catalog {
        let property = checker.property();
        let taken = self.checkers.iter().any(|c| c.property() == property)
            || Property::ALL.contains(&property);
        assert_new("checker of property", property.name(), taken);
        self.checkers.push(Arc::new(checker));
        self
    }

    /// Sets the command that starts this program, as replay lines print it (by default
    /// `cargo run --release --`, snapsim's own).
    pub fn with_command(mut self, command: &str) -> Catalog {
        self.command = command.to_string();
        self
    }

    /// The command that starts this program, for replay lines.
    pub fn command(&self) -> &str {
        &self.command
    }

    /// Every algorithm, in listing order.
    pub fn algorithms(&self) -> &[Arc<dyn SnapshotAlgorithm>] {
        &self.algorithms
    }

    /// Every scenario, in listing order.
    pub fn scenarios(&self) -> &[Arc<Scenario>] {
        &self.scenarios
    }

    /// Every fault profile, in listing order.
    pub fn profiles(&self) -> &[Arc<FaultProfile>] {
        &self.profiles
    }

    /// Every checker, in the order they judge.
    pub fn checkers(&self) -> &[Arc<dyn Checker>] {
        &self.checkers
    }

    /// The algorithm called `name`.
    pub fn algorithm(&self, name: &str) -> Result<&Arc<dyn SnapshotAlgorithm>, NameError> {
        let found = self.algorithms.iter().find(|a| a.name() == name);
        found.ok_or_else(|| NameError::Algorithm {
            name: name.to_string(),
            known: names(self.algorithms.iter().map(|a| a.name())),
        })
    }

    /// The scenario called `name`.
    pub fn scenario(&self, name: &str) -> Result<&Arc<Scenario>, UnknownScenario> {
        let found = self.scenarios.iter().find(|s| s.name == name);
        found.ok_or_else(|| UnknownScenario {
            name: name.to_string(),
            known: names(self.scenarios.iter().map(|s| s.name)),
        })
    }

    /// The fault profile called `name`.
    pub fn profile(&self, name: &str) -> Result<&Arc<FaultProfile>, UnknownProfile> {
        let found = self.profiles.iter().find(|p| p.name == name);
        found.ok_or_else(|| UnknownProfile {
            name: name.to_string(),
            known: names(self.profiles.iter().map(|p| p.name)),
        })
    }
}

fn names<'a>(names: impl Iterator<Item = &'a str>) -> String {
    names.collect::<Vec<_>>().join(", ")
}

fn assert_new(kind: &str, name: &str, taken: bool) {
    assert!(
        !taken,
        "the catalog has a {kind} named '{name}' already: each name is registered once"
    );
}

/// A scenario name that does not exist.
#[derive(Debug, Error)]
#[error("unknown scenario '{name}'; known: {known}")]
pub struct UnknownScenario {
    /// The name given.
    pub name: String,
    /// The names that exist.
    pub known: String,
}

/// A name on the command line (or in a results file) that names nothing.
#[derive(Debug, Error)]
pub enum NameError {
    /// Not a scenario.
    #[error(transparent)]
    Scenario(#[from] UnknownScenario),
    /// Not a fault profile.
    #[error(transparent)]
    Profile(#[from] UnknownProfile),
    /// Not a snapshot algorithm.
    #[error("unknown snapshot algorithm '{name}'; known: {known}")]
    Algorithm {
        /// The name given.
        name: String,
        /// The names that exist.
        known: String,
    },
    /// Not a seeded bug.
    #[error(transparent)]
    Bug(#[from] snapsim_core::bugs::UnknownBug),
    /// Not a keyed-state backend.
    #[error("unknown state backend '{name}'; known: {known}")]
    Backend {
        /// The name given.
        name: String,
        /// The names that exist.
        known: String,
    },
    /// A combination that cannot be judged fairly (see [`Scenario::refuses`]).
    #[error("{0}")]
    Refused(String),
}
