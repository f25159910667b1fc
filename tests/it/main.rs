//! The integration suite `cargo test` runs: end-to-end runs on madsim.
#![cfg(madsim)]

mod campaign;
mod coverage;
mod faults;
mod fuzz;
mod reports;
mod scenarios;
mod seeded_bugs;
mod snapshots;
mod sweep;
