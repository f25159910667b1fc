//! Reports and shrinking: what the timeline reads off a run agrees with the run's own figures,
//! and `snapsim shrink` keeps the failure while making the case smaller.

use crate::{catalog, find};
use snapsim_reports::run::RUN_FILES;
use snapsim_scenarios::replay::{CaseFile, Replayable, ScenarioRun};
use snapsim_scenarios::report::{run_report, write_run_report};
use snapsim_scenarios::shrink::{shrink, ShrinkError};
use snapsim_scenarios::{run, Verdict};
use snapsim_sim::analysis::{Ending, Timeline};
use std::path::PathBuf;

/// Why: the report's checkpoint table and the sweep's distributions come from the timeline; it
/// must count what the engine did (the run's figures count the trace's own events): every checkpoint completed or aborted, a duration for each
/// completed one, a recovery for each failover, the crash's downtime.
#[test]
fn the_timeline_counts_what_the_run_did() {
    let (outcome, result) = run(catalog(), find("keyed-agg").expect("built in"), 3);
    assert_eq!(outcome.verdict, Verdict::Passed, "{:?}", outcome.violations);
    let timeline = Timeline::from_trace(&result.trace);
    let completed = timeline
        .checkpoints
        .iter()
        .filter(|s| s.ending == Ending::Completed);
    assert_eq!(
        completed.clone().count() as u64,
        outcome.stats.checkpoints_completed
    );
    assert!(completed
        .clone()
        .all(|s| s.duration().is_some() && s.snapshots > 0));
    assert!(
        completed.clone().all(|s| s.state_bytes > 0),
        "snapshots have a size"
    );
    let aborted = timeline
        .checkpoints
        .iter()
        .filter(|s| matches!(s.ending, Ending::Aborted(_)));
    assert_eq!(aborted.count() as u64, outcome.stats.checkpoints_aborted);
    assert_eq!(timeline.recoveries.len() as u64, outcome.stats.restarts);
    assert_eq!(
        timeline.downtimes.len(),
        3,
        "the profile's three TaskManager crashes"
    );
    assert!(
        timeline.downtimes.iter().all(|d| d.to.is_some()),
        "each restarted"
    );
    assert!(
        !timeline.alignments.is_empty(),
        "keyBy tasks align two channels"
    );
    assert_eq!(
        outcome.stats.checkpoint_ms.len() as u64,
        outcome.stats.checkpoints_completed
    );

    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("run-report");
    let _ = std::fs::remove_dir_all(&dir);
    write_run_report(&dir, &outcome, &result, &outcome.replay_line(catalog())).expect("writable");
    for file in RUN_FILES {
        let text = std::fs::read_to_string(dir.join(file)).expect("written");
        assert!(text.len() > 200, "{file} has content");
    }
}

/// A committed case (three fault episodes) that the seeded bug makes fail.
fn case_with_bug(bug: &str) -> (Replayable, Vec<String>) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("cases")
        .join("final-notice-after-subsuming-abort.json");
    let file = CaseFile::load(&path).expect("a committed case file");
    (file.case, vec![bug.to_string()])
}

/// Why: `snapsim shrink` must keep the failure (the same property violated), make the case no
/// bigger, and be deterministic (the same minimal case twice); a passing case is refused.
#[test]
fn shrinking_keeps_the_failure_and_makes_the_case_smaller() {
    let (case, bugs) = case_with_bug("commit-at-snapshot");
    let (before, _) = case.run(catalog(), &bugs).expect("runs");
    assert_ne!(
        before.verdict,
        Verdict::Passed,
        "the seeded bug bites this case"
    );
    let shrunk = shrink(catalog(), &case, &bugs, |_, _| {}).expect("shrinks");
    assert_eq!(shrunk.failure.property, before.violations[0].property);
    let (after, _) = shrunk.case.run(catalog(), &bugs).expect("runs");
    assert!(after
        .violations
        .iter()
        .any(|v| v.property == shrunk.failure.property));
    let (Replayable::Generated(original), Replayable::Generated(minimal)) = (&case, &shrunk.case)
    else {
        panic!("a generated case stays one");
    };
    assert!(shrunk.steps > 0, "something was simpler");
    assert_ne!(minimal, original, "the minimal case is another case");
    let again = shrink(catalog(), &case, &bugs, |_, _| {}).expect("shrinks");
    assert_eq!(again.case, shrunk.case, "deterministic");

    let passing = Replayable::Scenario(ScenarioRun {
        scenario: "keyed-sum-calm".into(),
        seed: 1,
        faults: None,
        algorithm: None,
        backend: None,
        schedule: None,
    });
    assert!(matches!(
        shrink(catalog(), &passing, &[], |_, _| {}),
        Err(ShrinkError::Passes)
    ));
}

/// Why: a scenario run shrinks by dropping events of its drawn schedule (the job is the
/// scenario's); the minimal schedule still fails the same property and is no longer.
#[test]
fn a_scenario_run_shrinks_its_schedule() {
    let case = Replayable::Scenario(ScenarioRun {
        scenario: "keyed-agg".into(),
        seed: 1,
        faults: None,
        algorithm: None,
        backend: None,
        schedule: None,
    });
    let bugs = vec!["restore-from-pending".to_string()];
    let (before, _) = case.run(catalog(), &bugs).expect("runs");
    assert_ne!(
        before.verdict,
        Verdict::Passed,
        "the seeded bug bites this run"
    );
    let events_before = case.schedule(catalog()).expect("drawn").events.len();
    let shrunk = shrink(catalog(), &case, &bugs, |_, _| {}).expect("shrinks");
    let Replayable::Scenario(ScenarioRun {
        schedule: Some(schedule),
        ..
    }) = &shrunk.case
    else {
        panic!("a shrunk scenario run carries its schedule");
    };
    assert!(
        schedule.events.len() < events_before,
        "{} events",
        schedule.events.len()
    );
    let (after, _) = shrunk.case.run(catalog(), &bugs).expect("runs");
    assert!(after
        .violations
        .iter()
        .any(|v| v.property == shrunk.failure.property));
}

/// Why: a message-sequence chart must draw the messages that carry the cause, and logging
/// them must not change the run. With `commit-at-snapshot`, the snapshot's commit request
/// goes from the sink task's TaskManager to the sink system and arrives as the early commit:
/// the chart's arrow joins the two events of the witness.
#[test]
fn the_chart_of_an_early_commit_draws_the_commit_request() {
    let (case, bugs) = case_with_bug("commit-at-snapshot");
    let (plain, _) = case.run(catalog(), &bugs).expect("runs");
    let (outcome, result) = case.run_for_report(catalog(), &bugs).expect("runs");
    assert_eq!(
        outcome.trace_hash, plain.trace_hash,
        "the log is not the run"
    );
    assert!(!result.messages.is_empty(), "asked for, the log is kept");

    let report = run_report(&outcome, &result, "replay");
    let cause = (report.causes.iter())
        .find(|cause| cause.cause.contains("before its checkpoint"))
        .expect("the early commit is a cause");
    let snapshot = (cause.events.iter())
        .find(|(_, _, what)| what.contains("pre-commits"))
        .expect("the snapshot that committed early");
    let commit = (cause.events.iter())
        .find(|(_, node, _)| node == "sink-system")
        .expect("the early commit");
    let request = (cause.messages.iter()).find(|m| {
        (m.from == snapshot.1 && m.sent == snapshot.0)
            && (m.to == commit.1 && m.delivered == Some(commit.0))
            && m.what.starts_with("commit txn")
    });
    assert!(
        request.is_some(),
        "no commit request from {snapshot:?} to {commit:?} in {:#?}",
        cause.messages
    );
    let html = report.html();
    assert_eq!(
        html.matches("<svg").count(),
        2 + report.causes.len(),
        "the timeline, the checkpoint chart and a chart per cause"
    );
}
