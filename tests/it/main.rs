//! The integration suite `cargo test` runs: end-to-end runs on madsim.
#![cfg(madsim)]

mod architecture;
mod campaign;
mod coverage;
mod faults;
mod fuzz;
mod reports;
mod scenarios;
mod seeded_bugs;
mod snapshots;
mod sweep;

use snapsim_scenarios::{Catalog, Scenario, UnknownScenario};
use std::sync::OnceLock;

/// The built-in catalog, made once for the whole suite.
pub fn catalog() -> &'static Catalog {
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    CATALOG.get_or_init(Catalog::builtin)
}

/// The built-in scenario called `name`.
pub fn find(name: &str) -> Result<&'static Scenario, UnknownScenario> {
    catalog().scenario(name).map(|scenario| scenario.as_ref())
}
