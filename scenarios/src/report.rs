//! Reports of runs and sweeps from outcomes and traces (the rendering is `snapsim-reports`).

use crate::replay::{CaseFile, CaseFileError, ReplayError, Replayable, ScenarioRun};
use crate::verdict::causes;
use crate::{describe_entry, trace_before_violation, Catalog, Outcome, Verdict};
use snapsim_core::messages::Address;
use snapsim_reports::run::{CauseView, MessageView, RunReport, ViolationView};
use snapsim_sim::analysis::Timeline;
use snapsim_sim::harness::RunResult;
use snapsim_sim::trace::MessageRecord;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use thiserror::Error;

/// The most failing runs of a sweep that get a run report of their own (each is run again).
pub const FAILURE_REPORTS_MAX: usize = 20;

/// Why a report could not be written.
#[derive(Debug, Error)]
pub enum ReportError {
    /// A file could not be read or written.
    #[error("{path}: {error}")]
    File {
        /// The file.
        path: String,
        /// What the OS said.
        error: std::io::Error,
    },
    /// The case file is not one.
    #[error(transparent)]
    CaseFile(#[from] CaseFileError),
    /// The case could not be run.
    #[error(transparent)]
    Replay(#[from] ReplayError),
}

/// A run's causes, as the report shows them, with the logged messages that meet each.
fn cause_views(outcome: &Outcome, messages: &[MessageRecord]) -> Vec<CauseView> {
    (causes(&outcome.violations).iter())
        .map(|cause| CauseView {
            cause: cause.witness.cause.clone(),
            explains: cause.explains_text(),
            root: cause.about(),
            events: (cause.witness.events.iter())
                .map(|e| (e.at.0, e.node.to_string(), e.what.clone()))
                .collect(),
            messages: (cause.witness.messages(messages).into_iter())
                .map(|m| MessageView {
                    from: m.from.to_string(),
                    to: m.to.to_string(),
                    sent: m.sent.0,
                    delivered: m.delivered.map(|at| at.0),
                    what: m.what.clone(),
                })
                .collect(),
        })
        .collect()
}

/// The nodes of a run, in lane order (JobManager, TaskManagers, storage, sink system): every
/// node that traced an event or sent or took a message.
fn nodes(result: &RunResult) -> Vec<String> {
    let traced = result.trace.iter().map(|entry| entry.node);
    let messaging = (result.messages.iter()).flat_map(|m| [m.from, m.to]);
    let nodes: BTreeSet<Address> = traced.chain(messaging).collect();
    nodes.iter().map(|node| node.to_string()).collect()
}

/// The report of one run.
pub fn run_report(outcome: &Outcome, result: &RunResult, replay_line: &str) -> RunReport {
    let trace = &result.trace;
    let s = &outcome.stats;
    let mut facts = vec![
        ("scenario".to_string(), outcome.scenario.clone()),
        ("seed".to_string(), outcome.seed.to_string()),
    ];
    let variant = outcome.variant.flags();
    if !variant.is_empty() {
        facts.push(("changed".to_string(), variant.trim().to_string()));
    }
    facts.extend([
        (
            "trace hash".to_string(),
            format!("{:016x}", outcome.trace_hash),
        ),
        (
            "checkpoints completed".to_string(),
            s.checkpoints_completed.to_string(),
        ),
        (
            "checkpoints aborted".to_string(),
            s.checkpoints_aborted.to_string(),
        ),
        ("failovers".to_string(), s.restarts.to_string()),
        (
            "records committed".to_string(),
            s.records_committed.to_string(),
        ),
        (
            "virtual time".to_string(),
            format!("{} ms", s.virtual_ticks),
        ),
        ("trace entries".to_string(), s.trace_events.to_string()),
    ]);
    if s.duplicates > 0 {
        facts.push((
            "duplicates (at-least-once)".to_string(),
            s.duplicates.to_string(),
        ));
    }
    RunReport {
        title: format!("{} seed {}", outcome.scenario, outcome.seed),
        verdict: format!("{:?}", outcome.verdict),
        passed: outcome.verdict == Verdict::Passed,
        facts,
        causes: cause_views(outcome, &result.messages),
        violations: outcome
            .violations
            .iter()
            .map(|v| ViolationView {
                property: v.property.to_string(),
                message: v.message.clone(),
                at: v.at.map(|at| at.0),
            })
            .collect(),
        trace_before: trace_before_violation(outcome, trace)
            .map(|(_, entries)| entries.iter().map(describe_entry).collect())
            .unwrap_or_default(),
        replay: replay_line.to_string(),
        nodes: nodes(result),
        timeline: Timeline::from_trace(trace),
    }
}

/// Writes the report of a run into `dir`.
pub fn write_run_report(
    dir: &Path,
    outcome: &Outcome,
    result: &RunResult,
    replay_line: &str,
) -> Result<(), ReportError> {
    run_report(outcome, result, replay_line)
        .write(dir)
        .map_err(|error| ReportError::File {
            path: dir.display().to_string(),
            error,
        })
}

/// Replays a case file and writes its report into `dir`; returns the outcome.
pub fn report_case_file(
    catalog: &Catalog,
    path: &Path,
    dir: &Path,
) -> Result<Outcome, ReportError> {
    let file = CaseFile::load(path)?;
    let (outcome, result) = file.case.run_for_report(catalog, &file.bugs)?;
    let replay_line = format!("{} replay {}", catalog.command(), path.display());
    write_run_report(dir, &outcome, &result, &replay_line)?;
    Ok(outcome)
}

/// The run reports written for a sweep's failures: (scenario, seed) → the report's path
/// relative to the sweep's directory.
pub type FailureReports = BTreeMap<(String, u64), String>;

/// Runs each of the first [`FAILURE_REPORTS_MAX`] failing outcomes again and writes its report
/// (and case file) under `out/runs/<scenario>-<seed>/`.
pub fn write_failure_reports(
    catalog: &Catalog,
    failures: &[&Outcome],
    out: &Path,
) -> Result<FailureReports, ReportError> {
    let mut written = FailureReports::new();
    for outcome in failures.iter().take(FAILURE_REPORTS_MAX) {
        let name = format!("{}-{}", outcome.scenario, outcome.seed);
        let relative = PathBuf::from("runs").join(&name);
        let dir = out.join(&relative);
        let case = Replayable::Scenario(ScenarioRun::of(
            &outcome.scenario,
            outcome.seed,
            &outcome.variant,
        ));
        let (again, result) = case.run_for_report(catalog, &outcome.variant.bugs)?;
        std::fs::create_dir_all(&dir).map_err(|error| ReportError::File {
            path: dir.display().to_string(),
            error,
        })?;
        CaseFile::recorded(catalog, case, &again)?.save(&dir.join("case.json"))?;
        let mut report = run_report(&again, &result, &outcome.replay_line(catalog));
        if again.trace_hash != outcome.trace_hash {
            // Another build (or a determinism bug): the report shows this run, not the sweep's.
            report.facts.push((
                "NOTE".to_string(),
                format!(
                    "this re-run gave trace hash {:016x}, the sweep recorded {:016x}",
                    again.trace_hash, outcome.trace_hash
                ),
            ));
        }
        report.write(&dir).map_err(|error| ReportError::File {
            path: dir.display().to_string(),
            error,
        })?;
        let link = relative.join("report.html").display().to_string();
        written.insert((outcome.scenario.clone(), outcome.seed), link);
    }
    Ok(written)
}
