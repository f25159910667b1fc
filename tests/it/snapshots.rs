//! Snapshots (insta) of what users read: the report of a failing run, and the trace of a
//! small canonical run. A change to either is a change users see; review it with
//! `cargo insta review`.

use crate::catalog;
use snapsim_core::bugs::SeededBug;
use snapsim_core::config::CheckpointingMode;
use snapsim_core::ids::TaskManagerId;
use snapsim_core::job::AggregateFn;
use snapsim_core::messages::Address;
use snapsim_scenarios::generated::{Case, Episode, JobParams, Shape};
use snapsim_scenarios::report::run_report;
use snapsim_scenarios::{describe_entry, describe_run, run_case, Outcome, Verdict};
use snapsim_sim::harness::RunResult;
use std::collections::BTreeSet;

/// One source, one keyed sum, one 2PC sink: the smallest job with a checkpoint and a commit.
fn small_case(records: u64, episodes: Vec<Episode>) -> Case {
    Case {
        job: JobParams {
            shape: Shape::Aggregate,
            aggregate: AggregateFn::Sum,
            source_parallelism: 1,
            partitions: 1,
            keyed_parallelism: 1,
            records,
            keys: 2,
            mode: CheckpointingMode::ExactlyOnce,
            interval_ticks: 20,
            max_concurrent: 1,
            min_pause_ticks: 0,
            incremental: false,
            changelog: None,
            retained: 1,
            tolerable_failed: 0,
            algorithm: None,
            keyed_throughput: None,
        },
        episodes,
        seed: 1,
    }
}

/// The small job with a TaskManager crash and sources that snapshot the offset read.
fn failing_run() -> (Outcome, RunResult) {
    let crash = Episode::Crash {
        node: Address::TaskManager(TaskManagerId(0)),
        at: 30,
        down_ticks: 20,
    };
    let case = small_case(60, vec![crash]);
    let bugs = BTreeSet::from([SeededBug::SourceOffsetAtRead]);
    run_case(catalog(), &case, &bugs).expect("a valid job")
}

/// Why: the failure report is what a user starts from; its shape (verdict, statistics, each
/// violation with its key and time, the replay line, the trace before the first violation)
/// must not drift unnoticed. The trace hash changes with every engine change, so it is masked.
#[test]
fn the_report_of_a_failing_run() {
    let (outcome, result) = failing_run();
    assert_ne!(outcome.verdict, Verdict::Passed, "the seeded bug bites");
    let text = describe_run(
        &outcome,
        &result.trace,
        "cargo run --release -- replay case.json",
    );
    let text = text.replace(&format!("{:016x}", outcome.trace_hash), "<trace hash>");
    insta::assert_snapshot!(text);
}

/// Why: the run report is what a user opens after a failure; its Markdown (verdict, figures,
/// the first violation with the trace before it, the checkpoint table, the failovers) must not
/// drift unnoticed. The HTML carries the same content with the charts inline.
#[test]
fn the_run_report_of_a_failing_run() {
    let (outcome, result) = failing_run();
    let report = run_report(&outcome, &result, "cargo run --release -- replay case.json");
    let hash = format!("{:016x}", outcome.trace_hash);
    insta::assert_snapshot!(report.markdown().replace(&hash, "<trace hash>"));
    let html = report.html();
    assert_eq!(
        html.matches("<svg").count(),
        2 + report.causes.len(),
        "the timeline, the checkpoint chart and a message-sequence chart per cause"
    );
    assert!(html.contains("First violated property: consistent-cut"));
}

/// Why: the trace is the evidence every checker reads; this canonical run (12 records, no
/// faults) shows each kind of step once in order: start, trigger, snapshots, acknowledgements,
/// completion, commit, the final checkpoint, the end and the clean-up.
#[test]
fn the_trace_of_a_small_canonical_run() {
    let (outcome, result) =
        run_case(catalog(), &small_case(12, Vec::new()), &BTreeSet::new()).expect("valid");
    assert_eq!(outcome.verdict, Verdict::Passed, "{:?}", outcome.violations);
    let lines: Vec<String> = result.trace.iter().map(describe_entry).collect();
    insta::assert_snapshot!(lines.join("\n"));
}
