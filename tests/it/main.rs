//! The integration suite `cargo test` runs: end-to-end runs on madsim.
#![cfg(madsim)]

mod faults;
mod scenarios;
mod seeded_bugs;
