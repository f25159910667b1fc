//! The figures of a group of runs as one cell of a campaign table, with the line that makes
//! each failing run again.

use crate::sweep;
use crate::{Catalog, Outcome, Verdict};
use snapsim_reports::campaign::CellSummary;
use snapsim_reports::sweep::FailedRun;

/// The figures of `runs` (one algorithm on one scenario under one fault profile).
pub fn cell_summary(
    catalog: &Catalog,
    algorithm: &str,
    scenario: &str,
    faults: &str,
    runs: &[&Outcome],
) -> CellSummary {
    let all = |figure: fn(&Outcome) -> &Vec<u64>| -> Vec<u64> {
        runs.iter()
            .flat_map(|o| figure(o).iter().copied())
            .collect()
    };
    let failures = runs
        .iter()
        .filter(|o| o.verdict != Verdict::Passed)
        .map(|o| FailedRun {
            // A throughput-table run is not a named scenario: its rerun is the preset.
            replay: rerun_line(catalog, o),
            ..sweep::failed_run(catalog, o, None)
        })
        .collect();
    CellSummary {
        algorithm: algorithm.to_string(),
        scenario: scenario.to_string(),
        faults: faults.to_string(),
        runs: runs.len() as u64,
        passed: runs.iter().filter(|o| o.verdict == Verdict::Passed).count() as u64,
        violations: sweep::violations_by_property(runs.iter().copied()),
        checkpoint_ms: all(|o| &o.stats.checkpoint_ms),
        alignment_ms: all(|o| &o.stats.alignment_ms),
        uploaded_bytes: all(|o| &o.stats.uploaded_bytes),
        full_bytes: all(|o| &o.stats.full_bytes),
        in_flight_bytes: all(|o| &o.stats.in_flight_bytes),
        replayed_records: runs.iter().map(|o| o.stats.replayed_records).collect(),
        recovery_ms: all(|o| &o.stats.recovery_ms),
        snapshots_per_checkpoint: per_checkpoint(runs, |o| o.stats.snapshots),
        messages_per_checkpoint: per_checkpoint(runs, |o| o.stats.control_messages),
        forced_snapshots: runs.iter().map(|o| o.stats.forced_snapshots).collect(),
        log_bytes: all(|o| &o.stats.log_bytes),
        rolled_back: all(|o| &o.stats.rolled_back),
        commit_delay_ms: all(|o| &o.stats.commit_delay_ms),
        input_done_ms: runs.iter().filter_map(|o| o.stats.input_done_ms).collect(),
        work_lost_ms: all(|o| &o.stats.work_lost_ms),
        duplicates: runs.iter().map(|o| o.stats.duplicates).sum(),
        failures,
    }
}

/// Each run's `figure` per completed checkpoint (rounded), for runs that completed one.
fn per_checkpoint(runs: &[&Outcome], figure: fn(&Outcome) -> u64) -> Vec<u64> {
    (runs.iter())
        .filter(|o| o.stats.checkpoints_completed > 0)
        .map(|o| (figure(o) + o.stats.checkpoints_completed / 2) / o.stats.checkpoints_completed)
        .collect()
}

/// The command that makes `outcome`'s run again: its replay line when it is a named scenario
/// as the variant leaves it, else the preset (the experiment changed the job or schedule).
pub(crate) fn rerun_line(catalog: &Catalog, outcome: &Outcome) -> String {
    match catalog.scenario(&outcome.scenario) {
        Ok(_) => outcome.replay_line(catalog),
        Err(_) => format!(
            "rerun: {} campaign --preset paper (a changed job, not a named scenario)",
            catalog.command()
        ),
    }
}
