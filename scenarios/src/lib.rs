//! snapsim-scenarios: named jobs with their fault schedules, and running them with a verdict.
//!
//! The one design decision to know: a scenario is plain data drawn from a seed (job shape,
//! input logs, cluster, faults), so (scenario, seed, build) fixes the run. The verdict compares
//! the run with the same scenario's failure-free oracle, run by the in-process driver.

#![deny(missing_docs)]

pub mod bench;
pub mod generated;
pub mod sweep;

use serde::{Deserialize, Serialize};
use snapsim_core::bugs::SeededBug;
use snapsim_core::cluster::ClusterConfig;
use snapsim_core::config::{CheckpointingMode, RestartStrategyConfig};
use snapsim_core::ids::{EventTime, Key, TaskManagerId, Tick};
use snapsim_core::job::{
    AggregateFn, ExecutionPlan, InputSide, JobError, JobGraph, OperatorKind, Partitioning,
    SourceLog,
};
use snapsim_core::messages::Address;
use snapsim_core::record::SourceRecord;
use snapsim_core::testing::LocalCluster;
use snapsim_core::trace::{EngineEvent, JobStatus};
use snapsim_sim::check::{self, Property, Violation};
use snapsim_sim::disk::{CrashMode, DiskFaults, DiskOp};
use snapsim_sim::faults::{Fault, FaultEvent, FaultSchedule, WriteMoment};
use snapsim_sim::harness::{self, RunConfig, RunEnd, RunResult, INPUTS_MAX_DEFAULT};
use snapsim_sim::model::ReferenceModel;
use snapsim_sim::rng::{SimRng, Stream};
use snapsim_sim::trace::{TraceEntry, TraceEvent};
use std::collections::BTreeSet;
use std::sync::Arc;
use thiserror::Error;

/// A named scenario.
pub struct Scenario {
    /// Its name on the command line.
    pub name: &'static str,
    /// One line for `snapsim list`.
    pub description: &'static str,
    setup: fn(u64) -> Setup,
}

/// What a scenario draws from a seed.
pub struct Setup {
    /// The job.
    pub job: JobGraph,
    /// The cluster.
    pub cluster: ClusterConfig,
    /// The adversary.
    pub schedule: FaultSchedule,
}

/// Every scenario, in listing order.
pub fn scenarios() -> &'static [Scenario] {
    &[
        Scenario {
            name: "keyed-sum",
            description: "2 sources (p=2) → keyBy running sum (p=2) → 2PC sink, checkpoints on files; one TaskManager crash and restart",
            setup: keyed_sum_with_crash,
        },
        Scenario {
            name: "keyed-agg",
            description: "the benchmark's standard job: 2 sources → keyBy sum (p=4) → 2PC sink (p=4), 20,000 records, checkpoints every 50 ms, on files; three TaskManager crashes and two storage faults",
            setup: keyed_agg_standard,
        },
        Scenario {
            name: "keyed-sum-calm",
            description: "the keyed-sum job without faults, state in the JobManager's memory (the engine against its own oracle)",
            setup: keyed_sum_calm,
        },
        Scenario {
            name: "swarm",
            description: "the keyed-sum job (heap or incremental backend) under swarm faults: the seed switches fault kinds on (crashes of every node, partitions, clogs, slow links and operators, disk errors, full disk, corruption, torn writes, lost checkpoint RPCs) and draws their rates",
            setup: keyed_sum_swarm,
        },
        Scenario {
            name: "co-window",
            description: "two sources → keyed co-sum (two inputs) → 2PC sink, and left → tumbling window → 2PC sink; a TaskManager crash",
            setup: co_window_with_crash,
        },
    ]
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

/// The scenario called `name`.
pub fn find(name: &str) -> Result<&'static Scenario, UnknownScenario> {
    scenarios()
        .iter()
        .find(|s| s.name == name)
        .ok_or_else(|| UnknownScenario {
            name: name.to_string(),
            known: scenarios()
                .iter()
                .map(|s| s.name)
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// The verdict of one run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Verdict {
    /// Every property held.
    Passed,
    /// The engine panicked (an assertion failed).
    Crash,
    /// The job did not finish (time ran out, or the restart strategy gave up).
    Liveness,
    /// A correctness property was violated.
    Correctness,
}

/// Figures of one run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Checkpoints completed.
    pub checkpoints_completed: u64,
    /// Checkpoints aborted.
    pub checkpoints_aborted: u64,
    /// Failovers (restarts of the job).
    pub restarts: u64,
    /// Records in the committed output.
    pub records_committed: u64,
    /// Virtual time at the end, in ms.
    pub virtual_ticks: u64,
    /// Trace entries.
    pub trace_events: u64,
    /// At-least-once mode: effects committed more than once (allowed, counted).
    #[serde(default)]
    pub duplicates: u64,
}

/// The outcome of one run of a scenario.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Outcome {
    /// The scenario.
    pub scenario: String,
    /// The seed.
    pub seed: u64,
    /// The verdict.
    pub verdict: Verdict,
    /// Violated properties (empty when passed).
    pub violations: Vec<Violation>,
    /// Figures.
    pub stats: Stats,
    /// The trace hash (equal for equal (scenario, seed, build)).
    pub trace_hash: u64,
    /// Seeded bugs switched on (none in a normal run).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bugs: Vec<String>,
}

impl Outcome {
    /// The command that replays this run.
    pub fn replay_line(&self) -> String {
        let bugs: String = self.bugs.iter().map(|b| format!(" --bug {b}")).collect();
        format!(
            "cargo run --release -- run --scenario {} --seed {}{bugs}",
            self.scenario, self.seed
        )
    }
}

/// Runs a generated case with the seeded `bugs` switched on, judged against the bug-free
/// oracle.
pub fn run_case(
    case: &generated::Case,
    bugs: &BTreeSet<SeededBug>,
) -> Result<(Outcome, RunResult), JobError> {
    let mut setup = case.setup();
    setup.job.bugs.extend(bugs);
    judge("generated", case.seed, setup)
}

/// Draws the scenario's setup for `seed`.
pub fn setup(scenario: &Scenario, seed: u64) -> Setup {
    (scenario.setup)(seed)
}

/// Runs `scenario` with `seed` and judges it against the failure-free oracle.
pub fn run(scenario: &Scenario, seed: u64) -> (Outcome, RunResult) {
    run_with_bugs(scenario, seed, &BTreeSet::new())
}

/// Runs `scenario` with `seed` and the seeded `bugs` switched on, judged against the bug-free
/// oracle.
pub fn run_with_bugs(
    scenario: &Scenario,
    seed: u64,
    bugs: &BTreeSet<SeededBug>,
) -> (Outcome, RunResult) {
    let mut setup = setup(scenario, seed);
    setup.job.bugs.extend(bugs);
    judge(scenario.name, seed, setup).expect("built-in scenarios are valid jobs")
}

/// Runs a setup (a scenario's, perhaps changed: another schedule, another job option, seeded
/// bugs) and judges it against the failure-free oracle of its job without the bugs.
pub fn judge(name: &str, seed: u64, setup: Setup) -> Result<(Outcome, RunResult), JobError> {
    let plan = Arc::new(setup.job.clone().build()?);
    let setup_bugs: Vec<String> = setup.job.bugs.iter().map(|b| b.to_string()).collect();
    // The oracle never has the seeded bugs the run has.
    let mut clean = setup.job.clone();
    clean.bugs.clear();
    let model = ReferenceModel::new(&clean);
    let clean = Arc::new(clean.build().expect("the same job without bugs builds too"));
    let oracle = oracle(&clean, &setup);
    let deadline = setup.schedule.deadline();
    let first_trigger_delay = setup.cluster.first_trigger_delay_ticks;
    let result = harness::run(RunConfig {
        seed,
        plan: plan.clone(),
        cluster: setup.cluster,
        schedule: setup.schedule,
        inputs_max: INPUTS_MAX_DEFAULT,
    });
    // Properties of the run so far hold whether or not the job finished.
    let mut violations = check::oracle_agrees_with_model(&oracle, &clean, &model);
    violations.extend(check::consistent_cut(&result.trace, &plan, &model));
    violations.extend(check::recovery(&result.trace, &plan));
    violations.extend(check::cancellation(&result.trace, &plan));
    violations.extend(check::notification(&result.trace, &plan));
    let ended = match result.end {
        RunEnd::Terminated(status) => Some(status),
        _ => None,
    };
    violations.extend(check::storage(&result.trace, &plan, ended, &result.files));
    violations.extend(check::checkpoint_progress(
        &result.trace,
        &plan,
        first_trigger_delay,
    ));
    let mut duplicates = 0;
    match &result.end {
        RunEnd::Panicked(message) => violations.push(Violation {
            property: Property::NoCrash,
            message: message.clone(),
            at: Some(Tick(result.virtual_ticks)),
        }),
        RunEnd::Terminated(JobStatus::Finished) => {
            let expected = check::outputs(&oracle, &clean);
            let actual = check::outputs(&result.committed, &plan);
            match plan.checkpoint.mode {
                CheckpointingMode::ExactlyOnce => {
                    violations.extend(check::exactly_once(&actual, &expected));
                    violations.extend(check::state_consistency(
                        &result.committed,
                        &plan,
                        &model,
                        &result.trace,
                    ));
                    violations.extend(check::final_state(&actual, &expected));
                }
                CheckpointingMode::AtLeastOnce => {
                    let (found, counted) = check::at_least_once(&actual, &expected);
                    violations.extend(found);
                    duplicates = counted;
                }
            }
        }
        unfinished => {
            let message = match unfinished {
                RunEnd::TimedOut => format!(
                    "the job did not finish within {} ms of virtual time",
                    deadline.0
                ),
                RunEnd::InputLimit(limit) => {
                    format!("the nodes handled more than {limit} inputs (a livelock?)")
                }
                RunEnd::Terminated(status) => {
                    format!("the job ended {status:?} instead of finishing")
                }
                RunEnd::Panicked(_) => unreachable!("matched above"),
            };
            violations.push(Violation {
                property: Property::Liveness,
                message,
                at: Some(Tick(result.virtual_ticks)),
            });
        }
    };
    violations.sort_by_key(|v| v.property.rank());
    let verdict = verdict(&violations);
    let stats = Stats {
        duplicates,
        ..stats(&result)
    };
    let outcome = Outcome {
        scenario: name.to_string(),
        seed,
        verdict,
        violations,
        stats,
        trace_hash: result.trace_hash,
        bugs: setup_bugs,
    };
    Ok((outcome, result))
}

/// What `snapsim run` and `replay` print for a run: the verdict, its statistics, each
/// violation, the line that replays it, and the trace entries just before the first violation
/// with a time (what led to it).
pub fn describe_run(outcome: &Outcome, trace: &[TraceEntry], replay_line: &str) -> String {
    use std::fmt::Write;
    const ENTRIES: usize = 12;
    let s = &outcome.stats;
    let mut text = format!(
        "scenario {} seed {}: {:?}\n",
        outcome.scenario, outcome.seed, outcome.verdict
    );
    let _ = writeln!(
        text,
        "  checkpoints completed {} aborted {}, failovers {}, records committed {}, virtual time {} ms, trace hash {:016x}",
        s.checkpoints_completed, s.checkpoints_aborted, s.restarts, s.records_committed, s.virtual_ticks, outcome.trace_hash
    );
    for violation in &outcome.violations {
        let _ = writeln!(
            text,
            "  violated {}: {}",
            violation.property, violation.message
        );
    }
    let _ = writeln!(text, "  replay: {replay_line}");
    if let Some(at) = outcome.violations.iter().find_map(|v| v.at) {
        let end = trace.partition_point(|entry| entry.at <= at);
        let _ = writeln!(text, "  the trace up to {at}:");
        for entry in &trace[end.saturating_sub(ENTRIES)..end] {
            let _ = writeln!(text, "    {}", describe_entry(entry));
        }
    }
    text
}

/// One trace entry as a line: time, node, event.
pub fn describe_entry(entry: &TraceEntry) -> String {
    format!("{} {:?} {:?}", entry.at, entry.node, entry.event)
}

/// A run's verdict from its violations: a crash first, then correctness, then liveness (a
/// job that broke a safety property and then also hung is reported for the safety property).
fn verdict(violations: &[Violation]) -> Verdict {
    let has = |wanted: &[Property]| violations.iter().any(|v| wanted.contains(&v.property));
    if has(&[Property::NoCrash]) {
        Verdict::Crash
    } else if violations.iter().any(|v| v.property != Property::Liveness) {
        Verdict::Correctness
    } else if has(&[Property::Liveness]) {
        Verdict::Liveness
    } else {
        Verdict::Passed
    }
}

/// The failure-free run of the same job, in the in-process driver.
fn oracle(plan: &Arc<ExecutionPlan>, setup: &Setup) -> Vec<snapsim_core::sink::CommittedRecord> {
    let mut local = LocalCluster::start((**plan).clone(), setup.cluster.clone());
    let status = local.run_to_end(setup.schedule.deadline());
    assert_eq!(
        status,
        JobStatus::Finished,
        "the failure-free oracle of a built-in scenario finishes"
    );
    local.sink.committed().to_vec()
}

fn stats(result: &RunResult) -> Stats {
    let mut stats = Stats {
        virtual_ticks: result.virtual_ticks,
        trace_events: result.trace.len() as u64,
        ..Stats::default()
    };
    stats.records_committed = result.committed.len() as u64;
    for entry in &result.trace {
        match &entry.event {
            TraceEvent::Engine(EngineEvent::CheckpointCompleted { .. }) => {
                stats.checkpoints_completed += 1
            }
            TraceEvent::Engine(EngineEvent::CheckpointAborted { .. }) => {
                stats.checkpoints_aborted += 1
            }
            TraceEvent::Engine(EngineEvent::Failover { .. }) => stats.restarts += 1,
            _ => {}
        }
    }
    stats
}

fn log(rng: &mut SimRng, partitions: u16, records: u64, keys: u64) -> Arc<SourceLog> {
    let per_partition = records / u64::from(partitions);
    let partitions = (0..partitions)
        .map(|_| {
            let mut event_time = 0;
            (0..per_partition)
                .map(|_| {
                    event_time += rng.between(0, 3);
                    let value = rng.between(1, 100) as i64;
                    SourceRecord {
                        key: Key(rng.below(keys)),
                        value,
                        event_time: EventTime(event_time),
                    }
                })
                .collect()
        })
        .collect();
    Arc::new(SourceLog { partitions })
}

/// Every built-in scenario restarts after 100 ms, at most 10 times.
const SCENARIO_RESTART: RestartStrategyConfig = RestartStrategyConfig::FixedDelay {
    attempts: 10,
    delay_ticks: 100,
};
/// Every built-in scenario's faults stop by this time.
const SCENARIO_HEAL_AT: Tick = Tick(2_000);
/// And its job must finish within this much virtual time after.
const SCENARIO_LIVENESS_TICKS: u64 = 58_000;

fn schedule(events: Vec<FaultEvent>) -> FaultSchedule {
    FaultSchedule {
        disk: DiskFaults::default(),
        events,
        heal_at: SCENARIO_HEAL_AT,
        liveness_ticks: SCENARIO_LIVENESS_TICKS,
    }
}

/// The seed's independent streams, one per subsystem, so that drawing more faults never
/// changes the workload (STYLE §3.5).
struct Draws {
    workload: SimRng,
    faults: SimRng,
    timing: SimRng,
}

impl Draws {
    fn new(seed: u64) -> Draws {
        Draws {
            workload: SimRng::new(seed, Stream::Workload),
            faults: SimRng::new(seed, Stream::Faults),
            timing: SimRng::new(seed, Stream::Cluster),
        }
    }
}

fn cluster(rng: &mut SimRng, task_managers: u16, interval: u64) -> ClusterConfig {
    ClusterConfig {
        task_managers,
        first_trigger_delay_ticks: rng.between(0, interval),
        ..ClusterConfig::default()
    }
}

fn keyed_sum_job(rng: &mut SimRng) -> JobGraph {
    keyed_aggregation("keyed-sum", rng, (4_000, 64), 2)
}

/// 2 source subtasks over 4 partitions holding `records` records with `keys` keys → keyBy
/// running sum → 2PC sink, both at `parallelism`; checkpoints every 50 ms.
fn keyed_aggregation(
    name: &str,
    rng: &mut SimRng,
    (records, keys): (u64, u64),
    parallelism: u16,
) -> JobGraph {
    let mut job = JobGraph::new(name);
    let source = job.add(
        "source",
        OperatorKind::Source {
            log: log(rng, 4, records, keys),
            records_per_tick: 4,
        },
        2,
    );
    let sum = job.add(
        "sum",
        OperatorKind::KeyedAggregate(AggregateFn::Sum),
        parallelism,
    );
    let sink = job.add("sink", OperatorKind::TwoPhaseCommitSink, parallelism);
    job.connect(source, sum, Partitioning::KeyBy);
    job.connect(sum, sink, Partitioning::Forward);
    job.checkpoint.interval_ticks = Some(50);
    job.restart = SCENARIO_RESTART;
    job
}

fn tm_crash(rng: &mut SimRng, task_managers: u16, window: (u64, u64)) -> Vec<FaultEvent> {
    let victim = Address::TaskManager(TaskManagerId(rng.below(u64::from(task_managers)) as u16));
    let at = rng.between(window.0, window.1);
    let down = rng.between(50, 400);
    vec![
        FaultEvent {
            at: Tick(at),
            fault: Fault::Crash(victim),
        },
        FaultEvent {
            at: Tick(at + down),
            fault: Fault::Restart(victim),
        },
    ]
}

/// Where the scenarios' FileSystemCheckpointStorage puts checkpoints (`state.checkpoints.dir`).
pub const CHECKPOINT_DIRECTORY: &str = "checkpoints";

fn on_files(mut job: JobGraph) -> JobGraph {
    job.checkpoint.directory = Some(CHECKPOINT_DIRECTORY.to_string());
    job
}

fn keyed_sum_with_crash(seed: u64) -> Setup {
    let mut draws = Draws::new(seed);
    Setup {
        job: on_files(keyed_sum_job(&mut draws.workload)),
        cluster: cluster(&mut draws.timing, 2, 50),
        schedule: schedule(tm_crash(&mut draws.faults, 2, (100, 500))),
    }
}

fn keyed_agg_standard(seed: u64) -> Setup {
    let mut draws = Draws::new(seed);
    let job = keyed_aggregation("keyed-agg", &mut draws.workload, (20_000, 256), 4);
    let faults = &mut draws.faults;
    // Three crashes in three windows, each over before the next begins (a node cannot crash
    // while down), and a failed snapshot sync and a failed metadata write.
    let mut events: Vec<FaultEvent> = [(100, 300), (720, 880), (1_300, 1_500)]
        .into_iter()
        .flat_map(|window| tm_crash(faults, 2, window))
        .collect();
    for (op, path) in [(DiskOp::Sync, "/task-"), (DiskOp::Append, "_metadata")] {
        events.push(FaultEvent {
            at: Tick(faults.between(50, 1_800)),
            fault: Fault::FailNextDiskOp {
                op,
                path_contains: path.to_string(),
            },
        });
    }
    events.sort_by_key(|event| event.at);
    Setup {
        job: on_files(job),
        cluster: cluster(&mut draws.timing, 2, 50),
        schedule: schedule(events),
    }
}

fn keyed_sum_calm(seed: u64) -> Setup {
    let mut draws = Draws::new(seed);
    Setup {
        job: keyed_sum_job(&mut draws.workload),
        cluster: cluster(&mut draws.timing, 2, 50),
        schedule: schedule(Vec::new()),
    }
}

fn co_window_with_crash(seed: u64) -> Setup {
    let Draws {
        mut workload,
        mut faults,
        mut timing,
    } = Draws::new(seed);
    let mut job = JobGraph::new("co-window");
    let left = job.add(
        "left",
        OperatorKind::Source {
            log: log(&mut workload, 2, 2_000, 16),
            records_per_tick: 3,
        },
        2,
    );
    let right = job.add(
        "right",
        OperatorKind::Source {
            log: log(&mut workload, 3, 1_500, 16),
            records_per_tick: 2,
        },
        3,
    );
    let co = job.add("co-sum", OperatorKind::KeyedCoSum, 3);
    let totals = job.add("totals", OperatorKind::TwoPhaseCommitSink, 3);
    let window = job.add(
        "window",
        OperatorKind::TumblingWindow {
            size: 100,
            aggregate: AggregateFn::Sum,
        },
        2,
    );
    let windows = job.add("windows", OperatorKind::TwoPhaseCommitSink, 2);
    job.connect_side(left, co, Partitioning::KeyBy, InputSide::First);
    job.connect_side(right, co, Partitioning::KeyBy, InputSide::Second);
    job.connect(co, totals, Partitioning::Forward);
    // Window results must not depend on how two inputs interleave: window one input only.
    job.connect(left, window, Partitioning::KeyBy);
    job.connect(window, windows, Partitioning::Forward);
    job.checkpoint.interval_ticks = Some(40);
    job.checkpoint.directory = Some(CHECKPOINT_DIRECTORY.to_string());
    job.restart = SCENARIO_RESTART;
    Setup {
        job,
        cluster: cluster(&mut timing, 3, 40),
        schedule: schedule(tm_crash(&mut faults, 3, (100, 600))),
    }
}

/// The fault kinds swarm testing switches on and off per seed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum SwarmKind {
    TaskManagerCrash,
    JobManagerCrash,
    StorageCrash,
    TornWrite,
    JobManagerCrashOnWrite,
    Partition,
    ClogLink,
    SlowLink,
    SlowOperator,
    DiskErrors,
    DiskFull,
    Corruption,
    TargetedDiskFailure,
    LostCheckpointRpcs,
}

const SWARM_KINDS: [SwarmKind; 14] = [
    SwarmKind::TaskManagerCrash,
    SwarmKind::JobManagerCrash,
    SwarmKind::StorageCrash,
    SwarmKind::TornWrite,
    SwarmKind::JobManagerCrashOnWrite,
    SwarmKind::Partition,
    SwarmKind::ClogLink,
    SwarmKind::SlowLink,
    SwarmKind::SlowOperator,
    SwarmKind::DiskErrors,
    SwarmKind::DiskFull,
    SwarmKind::Corruption,
    SwarmKind::TargetedDiskFailure,
    SwarmKind::LostCheckpointRpcs,
];
/// The swarm's safety phase.
const SWARM_HEAL_AT: u64 = 3_000;

/// Swarm testing (Groce et al.; FoundationDB, VOPR): each seed enables a random subset of fault
/// kinds, so that rare combinations get runs of their own instead of drowning in the average.
fn swarm_schedule(rng: &mut SimRng, task_managers: u16) -> FaultSchedule {
    let enabled: BTreeSet<SwarmKind> = SWARM_KINDS
        .into_iter()
        .filter(|_| rng.below(2) == 1)
        .collect();
    let tm = |rng: &mut SimRng| {
        Address::TaskManager(TaskManagerId(rng.below(u64::from(task_managers)) as u16))
    };
    let mut events: Vec<(u64, Fault)> = Vec::new();
    let mut disk = DiskFaults {
        crash: CrashMode::Seeded,
        ..DiskFaults::default()
    };
    let at = |rng: &mut SimRng| rng.between(100, SWARM_HEAL_AT - 500);
    for kind in enabled {
        match kind {
            SwarmKind::TaskManagerCrash | SwarmKind::JobManagerCrash | SwarmKind::StorageCrash => {
                let node = match kind {
                    SwarmKind::TaskManagerCrash => tm(rng),
                    SwarmKind::JobManagerCrash => Address::JobManager,
                    _ => Address::Storage,
                };
                let t = at(rng);
                events.push((t, Fault::Crash(node)));
                events.push((t + rng.between(20, 400), Fault::Restart(node)));
            }
            SwarmKind::TornWrite | SwarmKind::JobManagerCrashOnWrite => {
                let targets = ["ha/", "_metadata", "/task-"];
                let path_contains = targets[rng.below(3) as usize].to_string();
                let (moment, node) = match kind {
                    SwarmKind::TornWrite => (WriteMoment::BeforeSync, Address::Storage),
                    _ => (WriteMoment::AfterSync, Address::JobManager),
                };
                let fault = Fault::CrashOnWrite {
                    path_contains,
                    moment,
                    node,
                    down_ticks: rng.between(20, 300),
                };
                events.push((at(rng), fault));
            }
            SwarmKind::Partition => {
                let (a, b) = (Address::JobManager, tm(rng));
                let t = at(rng);
                events.push((t, Fault::Partition { a, b }));
                events.push((t + rng.between(50, 900), Fault::HealPartition { a, b }));
            }
            SwarmKind::ClogLink => {
                let (from, to) = (tm(rng), tm(rng));
                let (from, to) = if from == to {
                    (from, Address::Storage)
                } else {
                    (from, to)
                };
                let t = at(rng);
                events.push((t, Fault::ClogLink { from, to }));
                events.push((t + rng.between(50, 1_500), Fault::UnclogLink { from, to }));
            }
            SwarmKind::SlowLink => {
                let fault = Fault::SlowLink {
                    from: tm(rng),
                    to: tm(rng),
                    extra_ticks: (rng.between(0, 10), rng.between(10, 60)),
                    for_ticks: rng.between(100, 2_000),
                };
                events.push((at(rng), fault));
            }
            SwarmKind::LostCheckpointRpcs => {
                let (mut from, mut to) = (Address::JobManager, tm(rng));
                if rng.below(2) == 1 {
                    (from, to) = (to, from);
                }
                let for_ticks = rng.between(1, 600);
                events.push((
                    at(rng),
                    Fault::LoseCheckpointRpcs {
                        from,
                        to,
                        for_ticks,
                    },
                ));
            }
            SwarmKind::SlowOperator => {
                let fault = Fault::SlowNode {
                    node: tm(rng),
                    per_input_ticks: rng.between(1, 3),
                    for_ticks: rng.between(100, 1_500),
                };
                events.push((at(rng), fault));
            }
            SwarmKind::DiskErrors => {
                disk.read_error_per_mille = rng.between(0, 50) as u16;
                disk.append_error_per_mille = rng.between(0, 50) as u16;
                disk.sync_error_per_mille = rng.between(0, 50) as u16;
                disk.latency_ticks = (0, rng.between(0, 20));
            }
            SwarmKind::Corruption => disk.corruption_per_mille = rng.between(1, 100) as u16,
            SwarmKind::DiskFull => {
                // Full for a while, then back to the background faults drawn so far (kinds
                // drawn after this one, corruption, hold only until the disk fills).
                let t = at(rng);
                let full = DiskFaults {
                    capacity_bytes: Some(rng.between(0, 4_000)),
                    ..disk.clone()
                };
                events.push((t, Fault::DiskFaults(full)));
                let healed = Fault::DiskFaults(disk.clone());
                events.push((t + rng.between(50, 1_000), healed));
            }
            SwarmKind::TargetedDiskFailure => {
                let ops = [DiskOp::Read, DiskOp::Append, DiskOp::Sync];
                let targets = ["ha/", "_metadata", "/task-"];
                let fault = Fault::FailNextDiskOp {
                    op: ops[rng.below(3) as usize],
                    path_contains: targets[rng.below(3) as usize].to_string(),
                };
                events.push((at(rng), fault));
            }
        }
    }
    // A client asks for savepoints in half the seeds; drawn after everything else, so that the
    // other draws of a seed stay what they were.
    if rng.below(2) == 1 {
        for _ in 0..rng.between(1, 3) {
            events.push((at(rng), Fault::TriggerSavepoint));
        }
    }
    // Stable: events at the same time keep the order they were drawn in. Undoing events that
    // fall after the safety phase are left to the heal, which undoes everything.
    events.sort_by_key(|(at, _)| *at);
    events.retain(|(at, _)| *at < SWARM_HEAL_AT);
    FaultSchedule {
        disk,
        ..FaultSchedule::at_times(events, Tick(SWARM_HEAL_AT), SCENARIO_LIVENESS_TICKS)
    }
}

fn keyed_sum_swarm(seed: u64) -> Setup {
    let mut draws = Draws::new(seed);
    let mut job = on_files(keyed_sum_job(&mut draws.workload));
    // Half the seeds keep keyed state in the incremental backend (runs in shared/). Drawn
    // after the job's input, so the other draws of a seed stay what they were.
    job.checkpoint.incremental = draws.workload.below(2) == 1;
    job.checkpoint.savepoint_directory = Some("savepoints".to_string());
    // Faults come in bursts: restart for as long as it takes, tolerate a few failures, and
    // expire checkpoints that a clog holds up.
    job.restart = RestartStrategyConfig::FixedDelay {
        attempts: 1_000,
        delay_ticks: 100,
    };
    job.checkpoint.tolerable_failed = draws.faults.between(0, 3) as u32;
    job.checkpoint.timeout_ticks = 1_000;
    Setup {
        job,
        cluster: cluster(&mut draws.timing, 2, 50),
        schedule: swarm_schedule(&mut draws.faults, 2),
    }
}
