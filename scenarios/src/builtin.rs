//! The built-in scenarios: the jobs the project judges itself by, drawn from a seed.

use crate::scenario::{Draws, Scenario};
use snapsim_core::algorithm::{LogBasedAlgorithm, SnapshotAlgorithm};
use snapsim_core::cluster::ClusterConfig;
use snapsim_core::config::{
    ChangelogOptions, LoggingProtocol, RestartStrategyConfig, StateBackend,
};
use snapsim_core::ids::{EventTime, Key, OperatorId};
use snapsim_core::job::{
    AggregateFn, InputSide, JobGraph, MapFn, OperatorKind, Partitioning, SourceLog,
};
use snapsim_core::record::SourceRecord;
use snapsim_sim::rng::SimRng;
use std::sync::Arc;

/// Why `memory-budget` refuses the algorithms that record channel state.
const MEMORY_BUDGET_REFUSAL: &str =
    "its memory budget is sized for aligned snapshots; the in-flight \
    records of a channel-state snapshot grow with back-pressure past any budget, and a job whose \
    every checkpoint is refused never commits its last records";

/// The built-in scenarios, in listing order.
pub(crate) fn builtin_scenarios() -> Vec<Scenario> {
    vec![
        Scenario::new(
            "keyed-sum",
            "2 sources (p=2) → keyBy running sum (p=2) → 2PC sink, 4,000 records, checkpoints every 50 ms, on files",
            "tm-crash",
            keyed_sum_on_files,
        ),
        Scenario::new(
            "keyed-agg",
            "the benchmark's standard job: 2 sources → keyBy sum (p=4) → 2PC sink (p=4), 20,000 records, checkpoints every 50 ms, on files",
            "crashes-and-storage",
            keyed_agg_standard,
        ),
        Scenario::new(
            "keyed-sum-calm",
            "the keyed-sum job with its state in the JobManager's memory",
            "none",
            keyed_sum_in_memory,
        ),
        Scenario::new(
            "swarm",
            "the keyed-sum job (heap or incremental backend, savepoints allowed, restarts without limit, 0–3 tolerable failures, 1 s checkpoint timeout)",
            "swarm",
            keyed_sum_for_swarm,
        ),
        Scenario::new(
            "changelog",
            "the swarm's keyed-sum job with its keyed state in the changelog backend (FLIP-158): a log segment every 5–20 ms, a materialization every 40–200 ms",
            "swarm",
            keyed_sum_with_changelog,
        )
        .refusing_without_barriers("its point is the changelog backend, and local snapshots hold the heap backend's whole state"),
        Scenario::new(
            "uncoordinated",
            "the swarm's keyed-sum job checkpointed without barriers, uncoordinated or communication-induced (drawn): each task snapshots on its own timer and logs what it sends, the JobManager completes recovery lines (no savepoints, heap backend)",
            "swarm",
            keyed_sum_uncoordinated,
        ),
        Scenario::new(
            "co-window",
            "two sources → keyed co-sum (two inputs) → 2PC sink, and left → tumbling window → 2PC sink, 3 TaskManagers",
            "tm-crash",
            co_window,
        ),
        Scenario::new(
            "back-pressure",
            "the keyed-sum job with a slow sink (3 records per tick and subtask against about 4 arriving): its input queues grow, aligned barriers wait behind them",
            "tm-crash",
            back_pressure,
        ),
        Scenario::new(
            "hot-key",
            "key skew: the keyed-sum job with half the records on one key and a slow sum (3 per tick and subtask): the hot key's subtask falls behind, the other does not",
            "tm-crash",
            hot_key,
        ),
        Scenario::new(
            "chain-join",
            "order-sensitive state and a deeper graph: left (p=2) → map → keyBy hash chain per key and source partition (p=2) → 2PC sink; right (p=2) → keyBy chain (p=3); both chains → keyBy co-sum (p=3) → 2PC sink; 3 TaskManagers, up to 2 checkpoints at once, a min pause of 20 ms",
            "crashes-and-storage",
            chain_join,
        ),
        Scenario::new(
            "memory-budget",
            "the keyed-sum job with its state in the JobManager's memory, up to 2 checkpoints at once, under a memory budget that holds about two checkpoints' state: an acknowledgement that would pass it is refused (a declined checkpoint, tolerated)",
            "tm-crash",
            keyed_sum_in_memory_budget,
        )
        .refusing_channel_state(MEMORY_BUDGET_REFUSAL)
        .refusing_without_barriers("its budget applies to checkpoint acknowledgements, which a job without barriers does not send, and local snapshots carry the sender logs, which grow with back-pressure"),
        Scenario::new(
            "resume",
            "a new job started from the snapshot an earlier job left (a savepoint before a cancellation, or its latest checkpoint retained on cancellation; CLAIM or NO_CLAIM, drawn), the keyed-sum job on files; judged with the earlier job's output",
            "tm-crash",
            resumed_keyed_sum,
        )
        .resuming()
        .refusing_without_barriers("its earlier job ends in a savepoint or a retained checkpoint of a coordinated job"),
        Scenario::new(
            "map-only",
            "2 sources (p=2) → map → 2PC sink over forward edges only: every task has one input channel, so nothing ever aligns",
            "tm-crash",
            map_only,
        ),
    ]
}

/// An input of `records` records over `partitions` partitions, keys drawn uniformly from
/// `keys`, values 1–99, event times increasing: the input of most built-in scenarios.
pub fn log(rng: &mut SimRng, partitions: u16, records: u64, keys: u64) -> Arc<SourceLog> {
    skewed_log(rng, partitions, (records, keys), 0)
}

/// A log in which `hot_percent` % of the records (drawn) have key 0, the hot key. With no hot
/// key it draws exactly what it drew before skew existed, so older scenarios keep their input.
fn skewed_log(
    rng: &mut SimRng,
    partitions: u16,
    (records, keys): (u64, u64),
    hot_percent: u64,
) -> Arc<SourceLog> {
    let per_partition = records / u64::from(partitions);
    let partitions = (0..partitions)
        .map(|_| {
            let mut event_time = 0;
            (0..per_partition)
                .map(|_| {
                    event_time += rng.between(0, 3);
                    let value = rng.between(1, 100) as i64;
                    let hot = hot_percent > 0 && rng.below(100) < hot_percent;
                    SourceRecord {
                        key: Key(if hot { 0 } else { rng.below(keys) }),
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

/// A cluster of `task_managers` TaskManagers whose first periodic checkpoint comes after a
/// delay drawn below `interval` (as Flink draws it at random).
pub fn cluster(rng: &mut SimRng, task_managers: u16, interval: u64) -> ClusterConfig {
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
    keyed_aggregation_of(name, log(rng, 4, records, keys), parallelism)
}

/// The keyed aggregation job over `log`; the operators are `source`, `sum` and `sink`
/// (ids 0, 1 and 2).
fn keyed_aggregation_of(name: &str, log: Arc<SourceLog>, parallelism: u16) -> JobGraph {
    let mut job = JobGraph::new(name);
    let source = job.add(
        "source",
        OperatorKind::Source {
            log,
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
    assert_eq!((sum, sink), (SUM, SINK), "the ids the scenarios throttle");
    job.connect(source, sum, Partitioning::KeyBy);
    job.connect(sum, sink, Partitioning::Forward);
    job.checkpoint.interval_ticks = Some(50);
    job.restart = SCENARIO_RESTART;
    job
}

/// Where the scenarios' FileSystemCheckpointStorage puts checkpoints (`state.checkpoints.dir`).
pub const CHECKPOINT_DIRECTORY: &str = "checkpoints";

fn on_files(mut job: JobGraph) -> JobGraph {
    job.checkpoint.directory = Some(CHECKPOINT_DIRECTORY.to_string());
    job
}

fn keyed_sum_on_files(draws: &mut Draws) -> (JobGraph, ClusterConfig) {
    let job = on_files(keyed_sum_job(&mut draws.workload));
    (job, cluster(&mut draws.timing, 2, 50))
}

fn keyed_agg_standard(draws: &mut Draws) -> (JobGraph, ClusterConfig) {
    let job = keyed_aggregation("keyed-agg", &mut draws.workload, (20_000, 256), 4);
    (on_files(job), cluster(&mut draws.timing, 2, 50))
}

fn keyed_sum_in_memory(draws: &mut Draws) -> (JobGraph, ClusterConfig) {
    let job = keyed_sum_job(&mut draws.workload);
    (job, cluster(&mut draws.timing, 2, 50))
}

/// The resume scenario's job: the keyed-sum job on files with twice the input, so the
/// earlier job is still running when it is stopped.
fn resumed_keyed_sum(draws: &mut Draws) -> (JobGraph, ClusterConfig) {
    let job = keyed_aggregation("resume", &mut draws.workload, (8_000, 64), 2);
    (on_files(job), cluster(&mut draws.timing, 2, 50))
}

fn keyed_sum_in_memory_budget(draws: &mut Draws) -> (JobGraph, ClusterConfig) {
    let mut job = keyed_sum_job(&mut draws.workload);
    job.name = "memory-budget".to_string();
    job.checkpoint.max_concurrent = 2;
    job.checkpoint.memory_storage.budget_bytes = MEMORY_BUDGET_BYTES;
    job.checkpoint.tolerable_failed = 100;
    (job, cluster(&mut draws.timing, 2, 50))
}

/// The memory-budget scenario's budget: a little more than two checkpoints of the keyed-sum
/// job (its sums, sources and sinks take about 350 to 400 bytes once every key has been seen).
const MEMORY_BUDGET_BYTES: u64 = 1_000;

fn co_window(draws: &mut Draws) -> (JobGraph, ClusterConfig) {
    let workload = &mut draws.workload;
    let mut job = JobGraph::new("co-window");
    let left = job.add(
        "left",
        OperatorKind::Source {
            log: log(workload, 2, 2_000, 16),
            records_per_tick: 3,
        },
        2,
    );
    let right = job.add(
        "right",
        OperatorKind::Source {
            log: log(workload, 3, 1_500, 16),
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
    (job, cluster(&mut draws.timing, 3, 40))
}

/// The operator ids of [`keyed_aggregation_of`]'s job.
const SUM: OperatorId = OperatorId(1);

const SINK: OperatorId = OperatorId(2);

/// Records per tick and subtask of the slow operator in the back-pressure and hot-key
/// scenarios: 2 sources emit 4 per tick each, so 2 subtasks downstream get about 4 per tick
/// each, one more than they handle.
const SLOW_THROUGHPUT: u32 = 3;

fn back_pressure(draws: &mut Draws) -> (JobGraph, ClusterConfig) {
    back_pressure_at(draws, Some(SLOW_THROUGHPUT))
}

/// The keyed-sum job on files (its own name) with the sink limited to `sink_throughput`
/// records per tick and subtask, if any.
pub(crate) fn back_pressure_at(
    draws: &mut Draws,
    sink_throughput: Option<u32>,
) -> (JobGraph, ClusterConfig) {
    let log = log(&mut draws.workload, 4, 4_000, 64);
    let mut job = on_files(keyed_aggregation_of("back-pressure", log, 2));
    if let Some(throughput) = sink_throughput {
        job.throttle(SINK, throughput);
    }
    (job, cluster(&mut draws.timing, 2, 50))
}

/// A keyed sum with a large state (20,000 records over 40,000 keys, 2 subtasks) on files, its
/// keyed state in `backend`: the changelog experiment's job.
pub(crate) fn large_state_on(
    draws: &mut Draws,
    backend: StateBackend,
) -> (JobGraph, ClusterConfig) {
    let mut job = on_files(keyed_aggregation(
        "backends",
        &mut draws.workload,
        (20_000, 40_000),
        2,
    ));
    backend.configure(&mut job.checkpoint);
    (job, cluster(&mut draws.timing, 2, 50))
}

fn hot_key(draws: &mut Draws) -> (JobGraph, ClusterConfig) {
    let log = skewed_log(&mut draws.workload, 4, (4_000, 64), 50);
    let mut job = on_files(keyed_aggregation_of("hot-key", log, 2));
    job.throttle(SUM, SLOW_THROUGHPUT);
    (job, cluster(&mut draws.timing, 2, 50))
}

fn map_only(draws: &mut Draws) -> (JobGraph, ClusterConfig) {
    let mut job = JobGraph::new("map-only");
    let source = job.add(
        "source",
        OperatorKind::Source {
            log: log(&mut draws.workload, 2, 4_000, 64),
            records_per_tick: 4,
        },
        2,
    );
    let map = job.add("map", OperatorKind::Map(MapFn::MultiplyBy(3)), 2);
    let sink = job.add("sink", OperatorKind::TwoPhaseCommitSink, 2);
    job.connect(source, map, Partitioning::Forward);
    job.connect(map, sink, Partitioning::Forward);
    job.checkpoint.interval_ticks = Some(50);
    job.restart = SCENARIO_RESTART;
    (on_files(job), cluster(&mut draws.timing, 2, 50))
}

fn chain_join(draws: &mut Draws) -> (JobGraph, ClusterConfig) {
    let workload = &mut draws.workload;
    let mut job = JobGraph::new("chain-join");
    let source = |job: &mut JobGraph, name: &str, log| {
        let kind = OperatorKind::Source {
            log,
            records_per_tick: 3,
        };
        job.add(name, kind, 2)
    };
    let left = source(&mut job, "left", log(workload, 4, 3_000, 32));
    let right = source(&mut job, "right", log(workload, 3, 2_400, 32));
    let shift = job.add("shift", OperatorKind::Map(MapFn::AddConstant(7)), 2);
    let chain = job.add("chain", OperatorKind::KeyedChain, 2);
    let chains = job.add("chains", OperatorKind::TwoPhaseCommitSink, 2);
    let right_chain = job.add("right chain", OperatorKind::KeyedChain, 3);
    let co = job.add("co-sum", OperatorKind::KeyedCoSum, 3);
    let totals = job.add("totals", OperatorKind::TwoPhaseCommitSink, 3);
    job.connect(left, shift, Partitioning::Forward);
    job.connect(shift, chain, Partitioning::KeyBy);
    job.connect(chain, chains, Partitioning::Forward);
    job.connect(right, right_chain, Partitioning::KeyBy);
    // The co-sum adds up what two chains emit: one value per input, whatever the interleaving,
    // so its state at a cut and its totals are the model's.
    job.connect_side(chain, co, Partitioning::KeyBy, InputSide::First);
    job.connect_side(right_chain, co, Partitioning::KeyBy, InputSide::Second);
    job.connect(co, totals, Partitioning::Forward);
    job.checkpoint.interval_ticks = Some(40);
    job.checkpoint.max_concurrent = 2;
    // Longer than most checkpoints take from trigger to completion minus the interval: the
    // periodic trigger is often refused and fires again when the pause is over.
    job.checkpoint.min_pause_ticks = 20;
    job.restart = SCENARIO_RESTART;
    (on_files(job), cluster(&mut draws.timing, 3, 40))
}

fn keyed_sum_with_changelog(draws: &mut Draws) -> (JobGraph, ClusterConfig) {
    let (mut job, cluster) = keyed_sum_for_swarm(draws);
    job.checkpoint.incremental = false;
    // Timers much shorter than Flink's defaults (10 ms, 10 minutes), so that a run of about a
    // second segments and materializes many times.
    job.checkpoint.changelog = Some(ChangelogOptions {
        persist_delay_ticks: draws.workload.between(5, 20),
        materialization_interval_ticks: draws.workload.between(40, 200),
        ..ChangelogOptions::default()
    });
    (job, cluster)
}

fn keyed_sum_uncoordinated(draws: &mut Draws) -> (JobGraph, ClusterConfig) {
    let (mut job, cluster) = keyed_sum_for_swarm(draws);
    // Drawn after the swarm's job, so that the job's other draws stay the swarm's.
    let protocol = match draws.workload.below(2) {
        0 => LoggingProtocol::Uncoordinated,
        _ => LoggingProtocol::CommunicationInduced,
    };
    LogBasedAlgorithm(protocol).configure(&mut job.checkpoint);
    (job, cluster)
}

fn keyed_sum_for_swarm(draws: &mut Draws) -> (JobGraph, ClusterConfig) {
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
    // Drawn from the fault stream ahead of the profile's schedule, as before profiles existed,
    // so swarm seeds (and the regression seeds pinned in tests) keep their faults.
    job.checkpoint.tolerable_failed = draws.faults.between(0, 3) as u32;
    job.checkpoint.timeout_ticks = 1_000;
    (job, cluster(&mut draws.timing, 2, 50))
}
