//! The experiments of the literature (Flink's docs, source and blog posts; each row names its
//! source), run on the engine and measured from its traces, each with the expected result
//! beside the measured one.
//!
//! Each experiment runs a job (a named scenario, changed where the experiment needs it, or a
//! small in-process cluster) and reads the figure it is about off the trace; the expectation
//! is a predicate on that figure, so a regression in the engine turns a row UNEXPECTED. Where
//! the engine differs from Flink on purpose, the row says so and why.

use crate::summary::{cell_summary, rerun_line};
use crate::sweep::on_threads;
use crate::{judge, judge_variant, Catalog, Outcome, Setup, Variant, Verdict};
use snapsim_core::algorithm::{FlinkAlgorithm, SnapshotAlgorithm, ALIGNED_TIMEOUT_TICKS};
use snapsim_core::bugs::SeededBug;
use snapsim_core::cluster::ClusterConfig;
use snapsim_core::config::{
    CheckpointStorageKind, RestartStrategyConfig, StateBackend, CHECKPOINT_TIMEOUT_DEFAULT_TICKS,
};
use snapsim_core::ids::{CheckpointId, EventTime, Key, TaskManagerId, Tick};
use snapsim_core::job::{
    AggregateFn, JobGraph, OperatorKind, Partitioning, RestoreSettings, SourceLog,
};
use snapsim_core::messages::{Address, CheckpointFailureReason};
use snapsim_core::record::SourceRecord;
use snapsim_core::retention::{ClaimMode, ExternalizedRetention, SharedStateRegistry};
use snapsim_core::storage::StoragePath;
use snapsim_core::testing::keyed_sum_job;
use snapsim_core::trace::{EngineEvent, JobStatus, TriggerKind};
use snapsim_reports::campaign::{Agreement, CellSummary, CellTable, Experiment, Figures};
use snapsim_reports::percentile;
use snapsim_sim::check;
use snapsim_sim::disk::DiskOp;
use snapsim_sim::driver::local::{cancelled_keyed_sum, LocalCluster};
use snapsim_sim::faults::{Fault, FaultSchedule};
use snapsim_sim::harness::RunResult;
use snapsim_sim::trace::TraceEvent;
use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::ops::Range;
use std::sync::Arc;
use std::sync::OnceLock;

/// The seeds of each simulated experiment.
pub(crate) const SEEDS: Range<u64> = 0..20;

/// The simulated runs of [`experiments`]: the seeds of each simulated experiment (two
/// scenarios for the first, four for the third, two settings for max concurrent).
pub(crate) const SIMULATED_RUNS: u64 = (SEEDS.end - SEEDS.start) * (2 + 1 + 4 + 1 + 2 + 1 + 1);

/// The runs of [`throughput_table`] over `seeds` seeds.
pub(crate) fn throughput_runs(seeds: u64) -> u64 {
    (SINK_THROUGHPUTS.len() * THROUGHPUT_ALGORITHMS.len()) as u64 * seeds
}

/// Runs every experiment on `jobs` threads; `on_done` sees each simulated run's outcome.
pub(crate) fn experiments(runner: &mut Runner) -> Vec<Experiment> {
    vec![
        at_least_once_with_two_inputs(runner),
        at_least_once_map_only(runner),
        aligned_exactly_once_under_crashes(runner),
        min_pause_under_slow_checkpoints(runner),
        max_concurrent_one(runner),
        newer_barrier_subsumes_older(runner),
        tolerable_failures(runner),
        incremental_example(),
        retain_on_cancellation(),
        delete_on_cancellation(),
        job_manager_storage_limit(),
    ]
}

/// The engine's events of a run, with their times.
fn engine(result: &RunResult) -> impl Iterator<Item = (Tick, &EngineEvent)> {
    result.trace.iter().filter_map(|entry| match &entry.event {
        TraceEvent::Engine(event) => Some((entry.at, event)),
        _ => None,
    })
}

/// What the simulated experiments run with.
pub(crate) struct Runner<'a> {
    /// What the runs are judged with.
    pub catalog: &'a Catalog,
    /// Runs at once.
    pub jobs: usize,
    /// The seeds of each simulated experiment ([`SEEDS`] but in tests).
    pub seeds: Range<u64>,
    /// Seeded bugs switched on in every simulated run, by name.
    pub bugs: Vec<String>,
    /// Sees each run's outcome.
    pub on_done: &'a mut dyn FnMut(&Outcome),
}

impl Runner<'_> {
    /// Runs `setup_of(seed)` with the seeded bugs for each of its seeds, judged as
    /// `name`, and measures each run's trace: (outcome, measure) in seed order.
    fn measured<M: Send>(
        &mut self,
        name: &str,
        setup_of: impl Fn(u64) -> (Setup, Variant) + Sync,
        measure: impl Fn(&RunResult) -> M + Sync,
    ) -> Vec<(Outcome, M)> {
        let seeds: Vec<u64> = self.seeds.clone().collect();
        let catalog = self.catalog;
        let scenario = catalog.scenario(name).ok();
        let bugs = SeededBug::all_named(&self.bugs).expect("checked by the command line");
        let mut results: Vec<Option<(Outcome, M)>> = seeds.iter().map(|_| None).collect();
        let on_done = &mut self.on_done;
        on_threads(
            &seeds,
            self.jobs,
            |&seed| {
                let (mut setup, mut variant) = setup_of(seed);
                setup.job.bugs.extend(bugs.iter().copied());
                variant.bugs = self.bugs.clone();
                let judged = match scenario {
                    Some(scenario) => judge_variant(catalog, scenario, seed, &variant, setup),
                    None => judge(catalog, name, seed, setup),
                };
                let (outcome, result) = judged.expect("the experiments' jobs are valid");
                let figure = measure(&result);
                (outcome, figure)
            },
            |index, run| {
                on_done(&run.0);
                results[index] = Some(run);
                Ok::<(), Infallible>(())
            },
        )
        .expect("nothing fails");
        results
            .into_iter()
            .map(|r| r.expect("every seed ran"))
            .collect()
    }
}

impl Runner<'_> {
    /// The outcomes of the named `scenarios`, unchanged, under `faults` with `algorithm`.
    fn scenario_outcomes(
        &mut self,
        scenarios: &[&str],
        faults: &str,
        algorithm: FlinkAlgorithm,
    ) -> Vec<Outcome> {
        let mut outcomes = Vec::new();
        for &name in scenarios {
            let runs = self.measured(
                name,
                |seed| scenario_setup(name, seed, faults, algorithm),
                |_| (),
            );
            outcomes.extend(runs.into_iter().map(|(outcome, ())| outcome));
        }
        outcomes
    }
}

/// The built-in catalog, made once: the experiments draw a setup from it for every seed.
fn builtin_catalog() -> &'static Catalog {
    static BUILTIN: OnceLock<Catalog> = OnceLock::new();
    BUILTIN.get_or_init(Catalog::builtin)
}

/// A built-in scenario's setup with `faults` and `algorithm`, and the variant that names them
/// (the experiments are about the built-in scenarios, whatever else a catalog holds).
fn scenario_setup(
    name: &str,
    seed: u64,
    faults: &str,
    algorithm: FlinkAlgorithm,
) -> (Setup, Variant) {
    let catalog = builtin_catalog();
    let variant = Variant::new(
        catalog,
        Some(faults.into()),
        Some(algorithm.name().into()),
        &[],
    )
    .expect("known names");
    let scenario = catalog.scenario(name).expect("a known scenario");
    let setup = variant.setup(catalog, scenario, seed).expect("known names");
    (setup, variant)
}

/// "All N runs passed", or how many failed and the first one's replay line and violation.
fn verdicts(catalog: &Catalog, outcomes: &[&Outcome]) -> (bool, String) {
    let failed: Vec<&&Outcome> = outcomes
        .iter()
        .filter(|o| o.verdict != Verdict::Passed)
        .collect();
    match failed.first() {
        None => (
            true,
            format!("all {} runs passed every check", outcomes.len()),
        ),
        Some(first) => (
            false,
            format!(
                "{} of {} runs FAILED, first seed {}: {} ({})",
                failed.len(),
                outcomes.len(),
                first.seed,
                first
                    .violations
                    .first()
                    .map_or(String::new(), |v| format!("{}: {}", v.property, v.message)),
                rerun_line(catalog, first)
            ),
        ),
    }
}

fn agreement(holds: bool) -> Agreement {
    if holds {
        Agreement::Agrees
    } else {
        Agreement::Unexpected
    }
}

fn at_least_once_with_two_inputs(runner: &mut Runner) -> Experiment {
    let outcomes = runner.scenario_outcomes(
        &["keyed-sum", "co-window"],
        "tm-crash",
        FlinkAlgorithm::AtLeastOnce,
    );
    let all: Vec<&Outcome> = outcomes.iter().collect();
    let (passed, runs) = verdicts(runner.catalog, &all);
    let with_duplicates = outcomes.iter().filter(|o| o.stats.duplicates > 0).count();
    let duplicates: u64 = outcomes.iter().map(|o| o.stats.duplicates).sum();
    let failovers: u64 = outcomes.iter().map(|o| o.stats.restarts).sum();
    Experiment {
        experiment: format!(
            "Crash-inject, AT_LEAST_ONCE, operators with ≥ 2 input channels (keyed-sum: keyBy from 2 sources; co-window: a two-input co-sum), tm-crash, seeds {}..{}",
            runner.seeds.start, runner.seeds.end
        ),
        expected: "output ⊇ oracle: no loss, duplicates possible (docs \"Exactly Once vs. At Least Once\")".into(),
        measured: format!(
            "{runs} (no effect lost) across {failovers} failovers; {with_duplicates} of {} runs committed duplicates, {duplicates} in all",
            outcomes.len()
        ),
        agreement: agreement(passed && failovers > 0),
    }
}

fn at_least_once_map_only(runner: &mut Runner) -> Experiment {
    let runs = runner.scenario_outcomes(&["map-only"], "tm-crash", FlinkAlgorithm::AtLeastOnce);
    let outcomes: Vec<&Outcome> = runs.iter().collect();
    let (passed, verdict) = verdicts(runner.catalog, &outcomes);
    let duplicates: u64 = outcomes.iter().map(|o| o.stats.duplicates).sum();
    let failovers: u64 = outcomes.iter().map(|o| o.stats.restarts).sum();
    Experiment {
        experiment: format!(
            "The same with a map-only pipeline (map-only: forward edges, one input channel per task), tm-crash, seeds {}..{}",
            runner.seeds.start, runner.seeds.end
        ),
        expected: "output = oracle even in AT_LEAST_ONCE: no duplicates (same docs)".into(),
        measured: format!("{verdict}; {duplicates} duplicates after {failovers} failovers"),
        agreement: agreement(passed && duplicates == 0 && failovers > 0),
    }
}

fn aligned_exactly_once_under_crashes(runner: &mut Runner) -> Experiment {
    let names = ["keyed-sum", "co-window", "back-pressure", "hot-key"];
    let outcomes = runner.scenario_outcomes(&names, "crashes-and-storage", FlinkAlgorithm::Aligned);
    let failovers: u64 = outcomes.iter().map(|o| o.stats.restarts).sum();
    let all: Vec<&Outcome> = outcomes.iter().collect();
    let (passed, verdict) = verdicts(runner.catalog, &all);
    Experiment {
        experiment: format!(
            "Crash-inject, EXACTLY_ONCE aligned, 2PC sink: {} under crashes-and-storage (3 TaskManager crashes, a failed snapshot sync and a failed _metadata append), seeds {}..{}",
            names.join(", "),
            runner.seeds.start,
            runner.seeds.end
        ),
        expected: "committed output = oracle (2PC, blog 2018-02-28)".into(),
        measured: format!("{verdict} (exactly-once, final state, consistent cut…) across {failovers} failovers"),
        agreement: agreement(passed && failovers > 0),
    }
}

/// When each periodic checkpoint's trigger started, and the completions: for the min pause.
fn min_pause_gaps(result: &RunResult) -> Vec<u64> {
    let mut last_completion: Option<Tick> = None;
    let mut gaps = Vec::new();
    for (at, event) in engine(result) {
        match event {
            EngineEvent::CheckpointCompleted { .. } => last_completion = Some(at),
            EngineEvent::TriggerStarted {
                kind: TriggerKind::Periodic,
                ..
            } => gaps.extend(last_completion.map(|done| at.0 - done.0)),
            _ => {}
        }
    }
    gaps
}

/// The back-pressure scenario (slow sink: checkpoints slower than the interval) with its
/// checkpoint options changed, without faults.
fn slow_checkpoints(seed: u64, change: impl Fn(&mut JobGraph)) -> (Setup, Variant) {
    let (mut setup, variant) =
        scenario_setup("back-pressure", seed, "none", FlinkAlgorithm::Aligned);
    change(&mut setup.job);
    (setup, variant)
}

fn min_pause_under_slow_checkpoints(runner: &mut Runner) -> Experiment {
    const PAUSE: u64 = 60;
    let runs = runner.measured(
        "back-pressure (min pause 60 ms)",
        |seed| slow_checkpoints(seed, |job| job.checkpoint.min_pause_ticks = PAUSE),
        min_pause_gaps,
    );
    let outcomes: Vec<&Outcome> = runs.iter().map(|(o, _)| o).collect();
    let (passed, verdict) = verdicts(runner.catalog, &outcomes);
    let gaps: Vec<u64> = runs.iter().flat_map(|(_, g)| g.iter().copied()).collect();
    let shortest = gaps.iter().min().copied();
    let mut durations: Vec<u64> = outcomes
        .iter()
        .flat_map(|o| o.stats.checkpoint_ms.iter().copied())
        .collect();
    let p50 = percentile(&mut durations, 50).unwrap_or(0);
    Experiment {
        experiment: format!(
            "min pause P = {PAUSE} ms, interval 50 ms, slow checkpoints (back-pressure: slow sink), no faults, seeds {}..{}",
            runner.seeds.start, runner.seeds.end
        ),
        expected: "start(k+1) ≥ end(k) + P for periodic checkpoints (CheckpointRequestDecider)".into(),
        measured: format!(
            "{} periodic triggers after a completion; shortest completion-to-trigger gap {} ms; checkpoints took {p50} ms at p50; {verdict}",
            gaps.len(),
            shortest.map_or("–".into(), |g| g.to_string())
        ),
        agreement: agreement(passed && shortest.is_some_and(|g| g >= PAUSE)),
    }
}

/// The most checkpoints (not savepoints) pending at once: from the trigger's start to
/// completion or abort.
fn most_pending(result: &RunResult) -> usize {
    let mut pending: BTreeSet<CheckpointId> = BTreeSet::new();
    let mut most = 0;
    for (_, event) in engine(result) {
        match event {
            EngineEvent::TriggerStarted { checkpoint, kind } if *kind != TriggerKind::Savepoint => {
                pending.insert(*checkpoint);
                most = most.max(pending.len());
            }
            EngineEvent::CheckpointCompleted { checkpoint }
            | EngineEvent::CheckpointAborted { checkpoint, .. } => {
                pending.remove(checkpoint);
            }
            _ => {}
        }
    }
    most
}

fn max_concurrent_one(runner: &mut Runner) -> Experiment {
    let mut most = BTreeMap::new();
    let mut outcomes = Vec::new();
    for max_concurrent in [1, 3] {
        let runs = runner.measured(
            "back-pressure (max concurrent)",
            |seed| slow_checkpoints(seed, |job| job.checkpoint.max_concurrent = max_concurrent),
            most_pending,
        );
        let highest = runs.iter().map(|(_, n)| *n).max().unwrap_or(0);
        most.insert(max_concurrent, highest);
        outcomes.extend(runs.into_iter().map(|(o, _)| o));
    }
    let all: Vec<&Outcome> = outcomes.iter().collect();
    let (passed, verdict) = verdicts(runner.catalog, &all);
    Experiment {
        experiment: format!(
            "maxConcurrent = 1 (and 3, to show the measure sees overlap), interval 50 ms, slow checkpoints (back-pressure), no savepoints, seeds {}..{}",
            runner.seeds.start, runner.seeds.end
        ),
        expected: "never two pending checkpoints, savepoints aside (CheckpointRequestDecider)".into(),
        measured: format!(
            "most pending at once: {} with maxConcurrent 1, {} with 3; {verdict}",
            most[&1], most[&3]
        ),
        agreement: agreement(passed && most[&1] == 1 && most[&3] > 1),
    }
}

/// Subsumed checkpoints: (aborted as DECLINED_SUBSUMED, of those whose n + 1 completed,
/// completion, failovers for checkpoint failures).
fn subsumed(result: &RunResult) -> (usize, usize, usize) {
    let mut aborted = Vec::new();
    let mut completed = Vec::new();
    let mut threshold_failovers = 0;
    for (_, event) in engine(result) {
        match event {
            EngineEvent::CheckpointAborted {
                checkpoint,
                reason: CheckpointFailureReason::DeclinedSubsumed,
            } => aborted.push(*checkpoint),
            EngineEvent::CheckpointCompleted { checkpoint } => completed.push(*checkpoint),
            EngineEvent::Failover { cause } if cause.contains("tolerable failure threshold") => {
                threshold_failovers += 1
            }
            _ => {}
        }
    }
    let followed = aborted
        .iter()
        .filter(|n| completed.contains(&CheckpointId(n.0 + 1)))
        .count();
    (aborted.len(), followed, threshold_failovers)
}

fn newer_barrier_subsumes_older(runner: &mut Runner) -> Experiment {
    // Triggers to TaskManager 0 (source 0) are lost for 30 ms now and then: where one is, the
    // sums see barrier n from source 1 and then n + 1 from source 0.
    let losses: Vec<(u64, Fault)> = (0..8)
        .map(|i| {
            let fault = Fault::LoseCheckpointRpcs {
                from: Address::JobManager,
                to: Address::TaskManager(TaskManagerId(0)),
                for_ticks: 30,
            };
            (150 + i * 170, fault)
        })
        .collect();
    let runs = runner.measured(
        "keyed-sum (max concurrent 2, lost triggers)",
        |seed| {
            let (mut setup, variant) =
                scenario_setup("keyed-sum", seed, "none", FlinkAlgorithm::Aligned);
            setup.job.checkpoint.max_concurrent = 2;
            setup.job.checkpoint.tolerable_failed = 0;
            let heal = setup.schedule.heal_at;
            let liveness = setup.schedule.liveness_ticks;
            setup.schedule = FaultSchedule::at_times(losses.clone(), heal, liveness);
            (setup, variant)
        },
        subsumed,
    );
    let outcomes: Vec<&Outcome> = runs.iter().map(|(o, _)| o).collect();
    let (passed, verdict) = verdicts(runner.catalog, &outcomes);
    let (aborted, followed, failovers) = runs.iter().fold((0, 0, 0), |acc, (_, (a, f, t))| {
        (acc.0 + a, acc.1 + f, acc.2 + t)
    });
    Experiment {
        experiment: format!(
            "Barrier n+1 reaches a task before n completes (EXACTLY_ONCE aligned, maxConcurrent 2, tolerable 0; triggers to one source lost now and then), keyed-sum, seeds {}..{}",
            runner.seeds.start, runner.seeds.end
        ),
        expected: "n declined with CHECKPOINT_DECLINED_SUBSUMED, not counted; n+1 may complete (SingleCheckpointBarrierHandler, CheckpointFailureManager)".into(),
        measured: format!(
            "{aborted} checkpoints aborted as DECLINED_SUBSUMED, n+1 completed for {followed} of them; {failovers} failovers for checkpoint failures (tolerable 0: a counted one would fail over); {verdict}"
        ),
        agreement: agreement(passed && aborted > 0 && followed > 0 && failovers == 0),
    }
}

/// Flink's rule, applied to the trace by the tolerable-failures checker (not the engine's
/// counter): (the count at each threshold failover, times the count reached `tolerable + 1`
/// with no threshold failover before the next checkpoint event).
fn consecutive_failures(result: &RunResult, tolerable: u32, timeout_ticks: u64) -> (Vec<u32>, u32) {
    let recount = check::recount_failures(&result.trace, tolerable, timeout_ticks);
    (recount.at_failover, recount.missed)
}

/// The tolerable failures of the job in [`tolerable_failures`].
const TOLERABLE: u32 = 2;

/// The job tolerating [`TOLERABLE`] failures whose task-snapshot syncs fail every 25 ms from
/// 100 to 700 ms (checkpoint after checkpoint fails; then they succeed again), its runs
/// measured by Flink's rule with `judged_tolerable`: (outcome, (count at each threshold
/// failover, times the count passed without one)).
fn tolerable_failures_measured(
    runner: &mut Runner,
    judged_tolerable: u32,
) -> Vec<(Outcome, (Vec<u32>, u32))> {
    let failures: Vec<(u64, Fault)> = (0..25)
        .map(|i| {
            let fault = Fault::FailNextDiskOp {
                op: DiskOp::Sync,
                path_contains: "/task-".into(),
            };
            (100 + i * 25, fault)
        })
        .collect();
    runner.measured(
        "keyed-sum (tolerable 2, failing syncs)",
        |seed| {
            let (mut setup, variant) =
                scenario_setup("keyed-sum", seed, "none", FlinkAlgorithm::Aligned);
            setup.job.checkpoint.tolerable_failed = TOLERABLE;
            setup.job.restart = RestartStrategyConfig::FixedDelay {
                attempts: 100,
                delay_ticks: 100,
            };
            let heal = setup.schedule.heal_at;
            let liveness = setup.schedule.liveness_ticks;
            setup.schedule = FaultSchedule::at_times(failures.clone(), heal, liveness);
            (setup, variant)
        },
        |result| consecutive_failures(result, judged_tolerable, CHECKPOINT_TIMEOUT_DEFAULT_TICKS),
    )
}

fn tolerable_failures(runner: &mut Runner) -> Experiment {
    let runs = tolerable_failures_measured(runner, TOLERABLE);
    let outcomes: Vec<&Outcome> = runs.iter().map(|(o, _)| o).collect();
    let (passed, verdict) = verdicts(runner.catalog, &outcomes);
    let counts: Vec<u32> = runs
        .iter()
        .flat_map(|(_, (c, _))| c.iter().copied())
        .collect();
    let missed: u32 = runs.iter().map(|(_, (_, m))| m).sum();
    let distinct: BTreeSet<u32> = counts.iter().copied().collect();
    Experiment {
        experiment: format!(
            "tolerable = {TOLERABLE}, a failing task-snapshot sync every 25 ms from 100 to 700 ms, keyed-sum, seeds {}..{}",
            runner.seeds.start, runner.seeds.end
        ),
        expected: format!(
            "the job fails on counted failure number {} in a row; any success resets (CheckpointFailureManager)",
            TOLERABLE + 1
        ),
        measured: format!(
            "{} failovers for checkpoint failures, each at consecutive count {:?} (recounted from the trace by Flink's rule); {missed} times the count passed {TOLERABLE} without one; {verdict}",
            counts.len(),
            distinct
        ),
        agreement: agreement(
            passed && !counts.is_empty() && distinct == BTreeSet::from([TOLERABLE + 1]) && missed == 0,
        ),
    }
}

fn incremental_example() -> Experiment {
    // The blog's example (2018-01-30), num-retained 2, on the engine's shared-state registry:
    // each checkpoint registers the files it references; files whose last user is older than
    // the oldest retained checkpoint are deleted.
    let files = |names: &[&str]| -> Vec<StoragePath> {
        names
            .iter()
            .map(|n| StoragePath::new(format!("shared/{n}")).expect("a valid path"))
            .collect()
    };
    let checkpoints: [&[&str]; 4] = [
        &["sst1", "sst2"],
        &["sst1", "sst2", "sst3", "sst4"],
        &["sst123", "sst4", "sst5"],
        &["sst123", "sst456"],
    ];
    let mut registry = SharedStateRegistry::default();
    let mut deleted_at: Vec<String> = Vec::new();
    for (index, referenced) in checkpoints.iter().enumerate() {
        let id = index as u64 + 1;
        registry.register(CheckpointId(id), files(referenced));
        let oldest_retained = CheckpointId(id.saturating_sub(1).max(1));
        let deleted: Vec<String> = registry
            .unregister_unused(oldest_retained)
            .iter()
            .map(|p| p.as_str().trim_start_matches("shared/").to_string())
            .collect();
        deleted_at.push(format!(
            "CP{id}: {}",
            if deleted.is_empty() {
                "–".to_string()
            } else {
                deleted.join(", ")
            }
        ));
    }
    let expected_deletions = ["CP1: –", "CP2: –", "CP3: –", "CP4: sst1, sst2, sst3"];
    Experiment {
        experiment: "Incremental CP1–CP4 (one subtask, num-retained 2: CP3 compacts sst1–3, CP4 compacts sst4–6), on the engine's shared-state registry".into(),
        expected: "sst1–3 deleted exactly at CP4; nothing CP3 or CP4 references is deleted (blog 2018-01-30)".into(),
        measured: format!("deleted: {}", deleted_at.join("; ")),
        agreement: agreement(deleted_at == expected_deletions),
    }
}

/// The `chk-N` directories left in a cluster's storage, by id.
fn checkpoint_directories(cluster: &LocalCluster) -> BTreeMap<u64, String> {
    cluster
        .files()
        .keys()
        .filter(|p| p.as_str().ends_with("/_metadata"))
        .filter_map(|p| p.parent())
        .filter_map(|dir| {
            let id = dir.as_str().rsplit("chk-").next()?.parse().ok()?;
            Some((id, dir.to_string()))
        })
        .collect()
}

fn retain_on_cancellation() -> Experiment {
    let cluster = cancelled_keyed_sum(ExternalizedRetention::RetainOnCancellation);
    let directories = checkpoint_directories(&cluster);
    let measured = match directories.last_key_value() {
        None => (
            false,
            "no chk-N directory left after the cancellation".to_string(),
        ),
        Some((&newest, directory)) => {
            // A new job started from the newest one's _metadata.
            let mut job = keyed_sum_job(800, Some(20));
            job.name = "keyed-sum-resumed".to_string();
            job.checkpoint.directory = Some("ckpt".to_string());
            job.restore = Some(RestoreSettings {
                path: format!("{directory}/_metadata"),
                claim: ClaimMode::NoClaim,
                allow_non_restored_state: false,
            });
            let plan = job.build().expect("a valid job");
            let mut resumed = LocalCluster::start(plan, ClusterConfig::default());
            resumed.install(&cluster.durable_files());
            let status = resumed.run_to_end(Tick(100_000));
            let restored = resumed.events().find_map(|e| match e {
                EngineEvent::RestoredFromPath { checkpoint, .. } => Some(checkpoint.0),
                _ => None,
            });
            let next = resumed.events().find_map(|e| match e {
                EngineEvent::CheckpointTriggered { checkpoint } => Some(checkpoint.0),
                _ => None,
            });
            let holds = status == JobStatus::Finished
                && restored == Some(newest)
                && next == Some(newest + 1);
            let text = format!(
                "{} chk-N left ({}); a new job from chk-{newest}/_metadata restored {}, ended {status:?}, next id {}",
                directories.len(),
                directories.keys().map(|id| format!("chk-{id}")).collect::<Vec<_>>().join(", "),
                restored.map_or("nothing".into(), |id| format!("chk-{id}")),
                next.map_or("–".into(), |id| id.to_string()),
            );
            (holds, text)
        }
    };
    Experiment {
        experiment: "RETAIN_ON_CANCELLATION, cancel at 90 ms (keyed-sum on files, 800 records, interval 20 ms, in-process cluster)".into(),
        expected: "chk-N remains; restore from chk-N/_metadata succeeds; next id = N+1 (CheckpointProperties, restoreSavepoint)".into(),
        measured: measured.1,
        agreement: agreement(measured.0),
    }
}

fn delete_on_cancellation() -> Experiment {
    let cluster = cancelled_keyed_sum(ExternalizedRetention::DeleteOnCancellation);
    let left = checkpoint_directories(&cluster).len();
    let job_files = cluster
        .files()
        .keys()
        .filter(|p| p.as_str().starts_with("ckpt/keyed-sum/"))
        .count();
    Experiment {
        experiment: "DELETE_ON_CANCELLATION, cancel at 90 ms (the same job)".into(),
        expected: "chk-* deleted; the {job} directory remains (CheckpointProperties, docs)".into(),
        measured: format!("{left} chk-N left; {job_files} objects left under ckpt/keyed-sum/"),
        agreement: if left > 0 {
            Agreement::Unexpected
        } else {
            Agreement::DiffersAsDocumented(
                "the simulated checkpoint storage is an object store: a directory is only the \
                 prefix of the objects in it, so an emptied {job} directory cannot remain (and \
                 the JobManager's clean-up after the job ended removes orphaned files Flink \
                 would leave) (ARCHITECTURE, differences from Flink)"
                    .into(),
            )
        },
    }
}

/// Keys of [`large_state_job`].
const LARGE_STATE_KEYS: u64 = 400_000;

/// One sum subtask whose keyed state passes 5 MiB: 400,000 distinct large keys with large
/// values (about 18 bytes a pair encoded), read in 40 ms; no restarts.
fn large_state_job() -> JobGraph {
    let records: Vec<SourceRecord> = (0..LARGE_STATE_KEYS)
        .map(|i| SourceRecord {
            key: Key(u64::MAX - i),
            value: i64::MAX / 2,
            event_time: EventTime(i),
        })
        .collect();
    let mut job = JobGraph::new("large-state");
    let source = job.add(
        "source",
        OperatorKind::Source {
            log: Arc::new(SourceLog {
                partitions: vec![records],
            }),
            records_per_tick: 10_000,
        },
        1,
    );
    let sum = job.add("sum", OperatorKind::KeyedAggregate(AggregateFn::Sum), 1);
    let sink = job.add("sink", OperatorKind::TwoPhaseCommitSink, 1);
    job.connect(source, sum, Partitioning::KeyBy);
    job.connect(sum, sink, Partitioning::Forward);
    job.checkpoint.interval_ticks = Some(10);
    job.restart = RestartStrategyConfig::NoRestart;
    job
}

/// A task state over JobManagerCheckpointStorage's 5 MiB limit is declined and counted.
fn job_manager_storage_limit() -> Experiment {
    let job = large_state_job();
    let plan = job.build().expect("a valid job");
    let in_memory = matches!(
        plan.checkpoint.storage(&plan.job),
        CheckpointStorageKind::JobManager(limits) if limits.max_state_bytes == 5 * 1024 * 1024
    );
    let mut cluster = LocalCluster::start(plan, ClusterConfig::default());
    let status = cluster.run_to_end(Tick(10_000));
    let refused = cluster.events().find_map(|e| match e {
        EngineEvent::SnapshotRefused {
            checkpoint, reason, ..
        } => Some((*checkpoint, reason.clone())),
        _ => None,
    });
    let aborted = refused.as_ref().and_then(|(id, _)| {
        cluster.events().find_map(|e| match e {
            EngineEvent::CheckpointAborted { checkpoint, reason } if checkpoint == id => {
                Some(*reason)
            }
            _ => None,
        })
    });
    let failover = cluster.events().find_map(|e| match e {
        EngineEvent::Failover { cause } => Some(cause.clone()),
        _ => None,
    });
    let completed_before = cluster
        .events()
        .filter(|e| matches!(e, EngineEvent::CheckpointCompleted { .. }))
        .count();
    let holds = in_memory
        && refused
            .as_ref()
            .is_some_and(|(_, r)| r.contains("maxSize=5242880"))
        && aborted == Some(CheckpointFailureReason::AsyncException)
        && failover
            .as_ref()
            .is_some_and(|c| c.contains("tolerable failure threshold"));
    Experiment {
        experiment: format!(
            "JobManagerCheckpointStorage (default limits), one keyed sum growing to {LARGE_STATE_KEYS} keys, tolerable 0, in-process cluster"
        ),
        expected: "a task state > 5 MiB is declined (CHECKPOINT_ASYNC_EXCEPTION) and counted (MemCheckpointStreamFactory, CheckpointFailureManager)".into(),
        measured: format!(
            "{completed_before} checkpoints completed while the state was small; then refused: \"{}\"; aborted as {}; {}; job {status:?}",
            refused.map_or("nothing".into(), |(id, r)| format!("{id}: {r}")),
            aborted.map_or("–".into(), |r| format!("{r:?}")),
            failover.map_or("no failover".into(), |c| format!("counted: failover \"{c}\"")),
        ),
        agreement: agreement(holds),
    }
}

/// The sink throughputs of the back-pressure table: unthrottled, then slower and slower.
const SINK_THROUGHPUTS: [Option<u32>; 4] = [None, Some(4), Some(3), Some(2)];

/// The algorithms of the throughput table: the exactly-once ones.
const THROUGHPUT_ALGORITHMS: [FlinkAlgorithm; 4] = [
    FlinkAlgorithm::Aligned,
    FlinkAlgorithm::Unaligned,
    FlinkAlgorithm::AlignedTimeout,
    FlinkAlgorithm::ChandyLamport,
];

/// One run of the back-pressure job with the sink at `throughput`, under `algorithm`, no faults.
fn throughput_run(
    catalog: &Catalog,
    bugs: &BTreeSet<SeededBug>,
    throughput: Option<u32>,
    algorithm: FlinkAlgorithm,
    seed: u64,
) -> Outcome {
    let mut draws = crate::Draws::new(seed);
    let (mut job, cluster) = crate::builtin::back_pressure_at(&mut draws, throughput);
    algorithm.configure(&mut job.checkpoint);
    let profile = catalog.profile("none").expect("a built-in profile");
    let schedule = profile.draw(&mut draws.faults, cluster.task_managers);
    let setup = table_setup(job, cluster, schedule, bugs);
    let judged = judge(catalog, &sink_label(throughput), seed, setup);
    judged.expect("a valid job").0
}

/// The setup of a table's run (not a named scenario), with `bugs` switched on.
fn table_setup(
    mut job: JobGraph,
    cluster: ClusterConfig,
    schedule: FaultSchedule,
    bugs: &BTreeSet<SeededBug>,
) -> Setup {
    job.bugs.extend(bugs.iter().copied());
    Setup {
        job,
        cluster,
        schedule,
        after: None,
        logs_messages: false,
    }
}

/// Runs `run` for each item of `work` on the runner's threads, each outcome seen by its
/// `on_done`: the outcomes in `work`'s order.
fn table_outcomes<W: Sync>(
    runner: &mut Runner,
    work: &[W],
    run: impl Fn(&W, &BTreeSet<SeededBug>) -> Outcome + Sync,
) -> Vec<Outcome> {
    let mut outcomes: Vec<Option<Outcome>> = work.iter().map(|_| None).collect();
    let bugs = SeededBug::all_named(&runner.bugs).expect("checked by the command line");
    let on_done = &mut runner.on_done;
    on_threads(
        work,
        runner.jobs,
        |item| run(item, &bugs),
        |index, outcome| {
            on_done(&outcome);
            outcomes[index] = Some(outcome);
            Ok::<(), Infallible>(())
        },
    )
    .expect("nothing fails");
    outcomes.into_iter().map(|o| o.expect("ran")).collect()
}

/// Checkpoint duration and channel state against the sink's throughput (FLIP-76, Flink's docs on
/// unaligned checkpoints: "the checkpoint duration becomes independent of the current
/// throughput"), no faults.
pub(crate) fn throughput_table(runner: &mut Runner, seeds: Range<u64>) -> CellTable {
    let algorithms = THROUGHPUT_ALGORITHMS;
    let mut work: Vec<(Option<u32>, FlinkAlgorithm, u64)> = Vec::new();
    for throughput in SINK_THROUGHPUTS {
        for algorithm in algorithms {
            work.extend(seeds.clone().map(|seed| (throughput, algorithm, seed)));
        }
    }
    let catalog = runner.catalog;
    let outcomes = table_outcomes(runner, &work, |&(throughput, algorithm, seed), bugs| {
        throughput_run(catalog, bugs, throughput, algorithm, seed)
    });
    let mut cells = Vec::new();
    for throughput in SINK_THROUGHPUTS {
        for algorithm in algorithms {
            let runs: Vec<&Outcome> = work
                .iter()
                .zip(&outcomes)
                .filter(|((t, a, _), _)| *t == throughput && *a == algorithm)
                .map(|(_, o)| o)
                .collect();
            cells.push(cell_summary(
                catalog,
                algorithm.name(),
                &sink_label(throughput),
                "none",
                &runs,
            ));
        }
    }
    CellTable {
        title: "Checkpoint duration against the sink's throughput (back-pressure)".into(),
        about: format!(
            "The back-pressure job (2 sources emit 4 records per tick each; the sink's 2 \
             subtasks get about 4 per tick each) with the sink limited to the given records per \
             tick and subtask, no faults, seeds {}..{}. Expected (FLIP-76): aligned \
             checkpoints take longer as the sink slows, unaligned ones do not, at the price of \
             channel state. These runs are not named scenarios: rerun them with this command.",
            seeds.start, seeds.end
        ),
        slug: "throughput".into(),
        figures: Figures::Checkpoints,
        cells,
    }
}

/// The rows about unaligned checkpoints (FLIP-76) read off the throughput table: their duration
/// against throughput, and the aligned-checkpoint timeout.
pub(crate) fn back_pressure_experiments(table: &CellTable) -> Vec<Experiment> {
    let table = Throughputs(table);
    let failed = table.0.cells.iter().any(|c| c.passed != c.runs);
    vec![
        unaligned_under_back_pressure(&table, failed),
        aligned_timeout_under_back_pressure(&table, failed),
    ]
}

/// The back-pressure table, read per algorithm and sink throughput.
struct Throughputs<'a>(&'a CellTable);

impl Throughputs<'_> {
    /// The median of `figure` over the cell of `algorithm` at `throughput`.
    fn p50(
        &self,
        algorithm: FlinkAlgorithm,
        throughput: Option<u32>,
        figure: fn(&CellSummary) -> &Vec<u64>,
    ) -> Option<u64> {
        self.percentile(algorithm, throughput, figure, 50)
    }

    /// The `rank` percentile of `figure` over the cell of `algorithm` at `throughput`.
    fn percentile(
        &self,
        algorithm: FlinkAlgorithm,
        throughput: Option<u32>,
        figure: fn(&CellSummary) -> &Vec<u64>,
        rank: u64,
    ) -> Option<u64> {
        (self.0.cells.iter())
            .find(|c| c.algorithm == algorithm.name() && c.scenario == sink_label(throughput))
            .and_then(|c| percentile(&mut figure(c).clone(), rank))
    }

    /// The throughput levels at which unaligned checkpoints' p90 or p99 duration is above
    /// aligned ones' by more than the noise between two runs of the same path (a tenth, and
    /// 2 ms): without back-pressure both kinds take the same path, and either may come out
    /// a few ms ahead.
    fn unaligned_tails_above_aligned(&self) -> Vec<String> {
        let tail = |algorithm, level, rank| self.percentile(algorithm, level, duration, rank);
        (SINK_THROUGHPUTS.iter())
            .filter(|&&level| {
                [90, 99].iter().any(|&rank| {
                    match (
                        tail(FlinkAlgorithm::Unaligned, level, rank),
                        tail(FlinkAlgorithm::Aligned, level, rank),
                    ) {
                        (Some(unaligned), Some(aligned)) => unaligned > aligned + aligned / 10 + 2,
                        _ => true,
                    }
                })
            })
            .map(|&level| sink_label(level))
            .collect()
    }

    /// The median checkpoint duration at each throughput, as the sink slows.
    fn series(&self, algorithm: FlinkAlgorithm) -> String {
        SINK_THROUGHPUTS
            .iter()
            .map(|&t| {
                let p50 = self.p50(algorithm, t, duration);
                p50.map_or("–".into(), |ms| format!("{ms} ms"))
            })
            .collect::<Vec<_>>()
            .join(" → ")
    }

    /// The median checkpoint duration unthrottled and at the slowest sink.
    fn fast_and_slow(&self, algorithm: FlinkAlgorithm) -> Option<(u64, u64)> {
        let slowest = *SINK_THROUGHPUTS.last().expect("levels");
        let fast = self.p50(algorithm, None, duration);
        fast.zip(self.p50(algorithm, slowest, duration))
    }
}

fn duration(cell: &CellSummary) -> &Vec<u64> {
    &cell.checkpoint_ms
}

fn channel_state(cell: &CellSummary) -> &Vec<u64> {
    &cell.in_flight_bytes
}

/// Unaligned checkpoints take about as long whatever the throughput, and persist channel
/// state, while aligned ones at least double.
fn unaligned_under_back_pressure(table: &Throughputs, failed: bool) -> Experiment {
    let slowest = *SINK_THROUGHPUTS.last().expect("levels");
    let unaligned_bytes =
        (table.p50(FlinkAlgorithm::Unaligned, slowest, channel_state)).unwrap_or(0);
    let levels = SINK_THROUGHPUTS.map(sink_label).join(" → ");
    // Independent of throughput: within half again of the unthrottled duration, while
    // aligned checkpoints at least double.
    let independent = match (
        table.fast_and_slow(FlinkAlgorithm::Aligned),
        table.fast_and_slow(FlinkAlgorithm::Unaligned),
    ) {
        (Some((aligned_fast, aligned_slow)), Some((fast, slow))) => {
            aligned_fast > 0 && aligned_slow >= 2 * aligned_fast && slow * 2 <= fast * 3
        }
        _ => false,
    };
    // The tails too: a checkpoint aligned where the literature says unaligned (say, after a
    // channel's end of data) shows in the p90 and p99 before it moves the median.
    let tails_above = table.unaligned_tails_above_aligned();
    let tails = match tails_above.is_empty() {
        true => "unaligned p90 and p99 at or below aligned at every level (within a tenth where both take the same path)".to_string(),
        false => format!(
            "unaligned p90 or p99 above aligned at {}",
            tails_above.join(", ")
        ),
    };
    Experiment {
        experiment: format!(
            "Back-pressure, aligned vs. unaligned: checkpoint duration p50 (and its p90 and p99) as the sink slows ({levels}), no faults (table below)"
        ),
        expected: "unaligned duration ~ independent of throughput, in its tail too; unaligned persisted bytes > 0 (docs, unaligned checkpoints)".into(),
        measured: format!(
            "aligned {}; unaligned {}; {tails}; unaligned channel state p50 {unaligned_bytes} bytes per checkpoint at {}",
            table.series(FlinkAlgorithm::Aligned),
            table.series(FlinkAlgorithm::Unaligned),
            sink_label(slowest)
        ),
        agreement: agreement(!failed && independent && tails_above.is_empty() && unaligned_bytes > 0),
    }
}

/// The aligned-checkpoint timeout switches to unaligned; where it cannot help (a backlog on a
/// task's only channel), it waits as aligned does, as documented.
fn aligned_timeout_under_back_pressure(table: &Throughputs, failed: bool) -> Experiment {
    // Evidence that the timeout switches at all: some aligned-timeout checkpoint of the
    // table persisted channel state.
    let timeout_switched = (table.0.cells.iter())
        .filter(|c| c.algorithm == FlinkAlgorithm::AlignedTimeout.name())
        .any(|c| c.in_flight_bytes.iter().any(|&b| b > 0));
    let agreement = match (
        table.fast_and_slow(FlinkAlgorithm::AlignedTimeout),
        table.fast_and_slow(FlinkAlgorithm::Aligned),
    ) {
        _ if failed || !timeout_switched => Agreement::Unexpected,
        (Some((_, timeout_slow)), Some((_, aligned_slow))) if timeout_slow * 2 <= aligned_slow => {
            Agreement::Agrees
        }
        // What ARCHITECTURE predicts: behind a slow single-channel backlog, as aligned (±15 %).
        (Some((_, timeout_slow)), Some((_, aligned_slow)))
            if timeout_slow.abs_diff(aligned_slow) * 100 <= aligned_slow * 15 =>
        {
            Agreement::DiffersAsDocumented(format!(
                "the aligned-checkpoint timeout runs from the first barrier a task handles (barriers \
                 carry no trigger time here, and a new checkpoint's barrier does not overtake \
                 before the switch), so a barrier behind a slow sink's backlog (one input \
                 channel: nothing to align) waits as an aligned one does: {timeout_slow} ms \
                 against {aligned_slow} ms aligned; the switch does happen where a task aligns \
                 (channel state > 0 in some checkpoints) (ARCHITECTURE, differences from Flink)"
            ))
        }
        _ => Agreement::Unexpected,
    };
    Experiment {
        experiment: format!(
            "Back-pressure, aligned-checkpoint timeout {} ms: duration p50 as the sink slows",
            ALIGNED_TIMEOUT_TICKS
        ),
        expected: "starts aligned, switches to unaligned after the timeout (measured from the global start), so durations stay near timeout + unaligned (FLIP-76)".into(),
        measured: format!("aligned-timeout {}", table.series(FlinkAlgorithm::AlignedTimeout)),
        agreement,
    }
}

/// The backends of the changelog table, the changelog last.
const BACKENDS: [StateBackend; 3] = [
    StateBackend::Heap,
    StateBackend::Incremental,
    StateBackend::Changelog,
];

/// The checkpoint storage's bandwidth in the changelog table (bytes per ms): uploads and
/// restores take time in proportion to their bytes, as they do on S3.
const STORAGE_BYTES_PER_TICK: u64 = 200;

/// The runs of [`backends_table`] over `seeds` seeds.
pub(crate) fn backend_runs(seeds: u64) -> u64 {
    BACKENDS.len() as u64 * seeds
}

fn backend_label(backend: StateBackend) -> String {
    format!("{} backend", backend.name())
}

/// One run of the large-state job with `backend`, one TaskManager crash.
fn backend_run(
    catalog: &Catalog,
    bugs: &BTreeSet<SeededBug>,
    backend: StateBackend,
    seed: u64,
) -> Outcome {
    let mut draws = crate::Draws::new(seed);
    let (job, cluster) = crate::builtin::large_state_on(&mut draws, backend);
    let profile = catalog.profile("tm-crash").expect("a built-in profile");
    let mut schedule = profile.draw(&mut draws.faults, cluster.task_managers);
    schedule.disk.bytes_per_tick = Some(STORAGE_BYTES_PER_TICK);
    let setup = table_setup(job, cluster, schedule, bugs);
    let judged = judge(catalog, &backend_label(backend), seed, setup);
    judged.expect("a valid job").0
}

/// Checkpoint duration, size and recovery per keyed-state backend (FLIP-158; Flink's blog post
/// of 2022-05-30 on the changelog backend), one TaskManager crash per run.
pub(crate) fn backends_table(runner: &mut Runner, seeds: Range<u64>) -> CellTable {
    let work: Vec<(StateBackend, u64)> = (BACKENDS.iter())
        .flat_map(|&backend| seeds.clone().map(move |seed| (backend, seed)))
        .collect();
    let catalog = runner.catalog;
    let outcomes = table_outcomes(runner, &work, |&(backend, seed), bugs| {
        backend_run(catalog, bugs, backend, seed)
    });
    let cells = (BACKENDS.iter())
        .map(|&backend| {
            let runs: Vec<&Outcome> = (work.iter().zip(&outcomes))
                .filter(|((b, _), _)| *b == backend)
                .map(|(_, o)| o)
                .collect();
            let label = backend_label(backend);
            cell_summary(catalog, "aligned", &label, "tm-crash", &runs)
        })
        .collect();
    CellTable {
        title: "Keyed-state backends: checkpoint duration, size and recovery".into(),
        about: format!(
            "A keyed sum over 40,000 keys (20,000 records, 2 subtasks, checkpoints every 50 ms) \
             with its state in each backend, one TaskManager crash per run (tm-crash), \
             checkpoint storage moving {STORAGE_BYTES_PER_TICK} bytes per ms, seeds {}..{}. \
             The changelog uploads a segment every 10 ms and materializes every 500 ms. \
             Uploaded bytes are a checkpoint's files written after its trigger; full bytes \
             all its files. Expected (Flink's blog post on the changelog backend): much shorter \
             checkpoints with the changelog, at the price of more bytes in all and a longer \
             recovery. These runs are not named scenarios: rerun them with this command.",
            seeds.start, seeds.end
        ),
        slug: "backends".into(),
        figures: Figures::Checkpoints,
        cells,
    }
}

/// The changelog backend's trade-off, read off the backends table.
pub(crate) fn changelog_experiment(table: &CellTable) -> Experiment {
    let failed = table.cells.iter().any(|c| c.passed != c.runs);
    let figures = |backend: StateBackend| {
        let cell = (table.cells.iter())
            .find(|c| c.scenario == backend_label(backend))
            .expect("a cell per backend");
        let p = |values: &Vec<u64>, rank| percentile(&mut values.clone(), rank).unwrap_or(0);
        BackendFigures {
            p50: p(&cell.checkpoint_ms, 50),
            p99: p(&cell.checkpoint_ms, 99),
            full: p(&cell.full_bytes, 50),
            recovery: p(&cell.recovery_ms, 50),
        }
    };
    let changelog = figures(StateBackend::Changelog);
    let others = [StateBackend::Heap, StateBackend::Incremental].map(figures);
    // The literature's claim: much shorter checkpoints (at least twice, in the tail), more
    // bytes in all, a longer recovery.
    let much_shorter = others.iter().all(|o| 2 * changelog.p99 <= o.p99);
    let shorter = others.iter().all(|o| changelog.p99 < o.p99);
    let larger = others.iter().all(|o| changelog.full > o.full);
    let longer_recovery = others.iter().all(|o| changelog.recovery > o.recovery);
    // Within a tenth of the longest other recovery.
    let recovery_alike = others
        .iter()
        .all(|o| changelog.recovery * 10 <= o.recovery.max(1) * 11);
    let agreement = match (failed, much_shorter && larger && longer_recovery) {
        (false, true) => Agreement::Agrees,
        (false, false) if shorter && larger && (longer_recovery || recovery_alike) => {
            Agreement::DiffersAsDocumented(CHANGELOG_DIFFERENCE.into())
        }
        _ => Agreement::Unexpected,
    };
    let [heap, incremental] = others;
    Experiment {
        experiment: "Changelog backend vs. heap and incremental: checkpoint duration p50 / p99, full checkpoint size p50, recovery time p50, one crash per run (table below)".into(),
        expected: "changelog: checkpoints much shorter (p99 at most half), more bytes in all, longer recovery (blog 2022-05-30: duration ↓ ~10× at p99.9, size ↑ ~30%, recovery ↑ 66–225%)".into(),
        measured: format!(
            "changelog {changelog}; heap {heap}; incremental {incremental}"
        ),
        agreement,
    }
}

/// Why the changelog's checkpoints are shorter in the tail here, but not by the literature's
/// factor, and its recovery about as long.
const CHANGELOG_DIFFERENCE: &str =
    "shorter in the tail and larger, but not twice as short, and its recovery about as long: \
     the incremental backend here uploads only the keys changed since the last checkpoint \
     (RocksDB's uploads new SST files, flushes and compactions included, which the changelog \
     avoids); every _metadata and HA record lists each log segment a checkpoint references, \
     which costs upload time the short tail saves; and a restore reads a checkpoint's files \
     side by side and replays them at no cost (README, state backends)";

/// A backend's figures in the changelog experiment.
struct BackendFigures {
    p50: u64,
    p99: u64,
    full: u64,
    recovery: u64,
}

impl std::fmt::Display for BackendFigures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} / {} ms, full {} bytes, recovery {} ms",
            self.p50, self.p99, self.full, self.recovery
        )
    }
}

fn sink_label(throughput: Option<u32>) -> String {
    match throughput {
        None => "sink unthrottled".into(),
        Some(t) => format!("sink {t}/tick"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `experiment` over seeds 0..4 with `bugs` switched on.
    fn run<T>(bugs: &[&str], experiment: impl FnOnce(&mut Runner) -> T) -> T {
        let mut ignore = |_: &Outcome| {};
        let catalog = Catalog::builtin();
        let mut runner = Runner {
            catalog: &catalog,
            jobs: 2,
            seeds: 0..4,
            bugs: bugs.iter().map(|b| b.to_string()).collect(),
            on_done: &mut ignore,
        };
        experiment(&mut runner)
    }

    #[test]
    fn experiments_agree_without_bugs_and_turn_unexpected_on_the_bug_they_are_about() {
        type Run = fn(&mut Runner) -> Experiment;
        let cases: [(&str, Run); 2] = [
            ("newer-barrier-not-aborting", newer_barrier_subsumes_older),
            (
                "alignment-without-blocking",
                aligned_exactly_once_under_crashes,
            ),
        ];
        for (bug, experiment) in cases {
            let clean = run(&[], experiment);
            assert_eq!(clean.agreement, Agreement::Agrees, "{clean:?}");
            let buggy = run(&[bug], experiment);
            assert_eq!(buggy.agreement, Agreement::Unexpected, "{bug}: {buggy:?}");
        }
        let rows = run(&[], |r| {
            back_pressure_experiments(&throughput_table(r, 0..2))
        });
        assert_eq!(rows[0].agreement, Agreement::Agrees, "{rows:?}");
        let rows = run(&["in-flight-not-persisted"], |r| {
            back_pressure_experiments(&throughput_table(r, 0..2))
        });
        assert_eq!(rows[0].agreement, Agreement::Unexpected, "{rows:?}");
        let table = run(&[], |r| backends_table(r, 0..2));
        let row = changelog_experiment(&table);
        assert_ne!(row.agreement, Agreement::Unexpected, "{row:?}");
        // Changelog checkpoints three times as long (a regression) turn the row UNEXPECTED.
        let mut slow = table.clone();
        let changelog = slow.cells.last_mut().expect("the changelog's cell");
        changelog.checkpoint_ms.iter_mut().for_each(|ms| *ms *= 3);
        let row = changelog_experiment(&slow);
        assert_eq!(row.agreement, Agreement::Unexpected, "{row:?}");
    }

    #[test]
    fn the_measures_see_a_pause_too_short_and_a_failover_at_the_wrong_count() {
        // Run without a min pause, the shortest completion-to-trigger gap is below 60 ms.
        let gaps = run(&[], |r| {
            r.measured(
                "back-pressure",
                |seed| slow_checkpoints(seed, |_| {}),
                min_pause_gaps,
            )
        });
        let shortest = gaps.iter().flat_map(|(_, g)| g.iter().copied()).min();
        assert!(shortest.is_some_and(|g| g < 60), "{shortest:?}");
        // The job tolerates 2 failures; judged by a rule of 1, the count passes 1 without a
        // failover, and the failovers that do come are not where that rule puts them.
        let runs = run(&[], |r| tolerable_failures_measured(r, 1));
        assert!(runs.iter().any(|(_, (_, missed))| *missed > 0));
        assert!(runs.iter().all(|(_, (at, _))| !at.contains(&3)), "{runs:?}");
    }

    #[test]
    fn the_in_process_experiments_agree_or_differ_as_documented() {
        assert_eq!(incremental_example().agreement, Agreement::Agrees);
        assert_eq!(retain_on_cancellation().agreement, Agreement::Agrees);
        assert!(matches!(
            delete_on_cancellation().agreement,
            Agreement::DiffersAsDocumented(_)
        ));
    }
}
