//! Generated cases: job shape, options and fault episodes as plain data, drawn by proptest.
//!
//! A [`Case`] is everything a run depends on besides the build, so proptest can shrink it
//! (fewer fault episodes, earlier times, shorter outages, a smaller job) and a failure can be
//! written to a file and replayed exactly ([`crate::replay::CaseFile`]).

use crate::profiles::{SCENARIO_HEAL_AT, SCENARIO_LIVENESS_TICKS};
use crate::{log, Catalog, NameError, Setup, CHECKPOINT_DIRECTORY};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use snapsim_core::algorithm::SnapshotAlgorithm;
use snapsim_core::cluster::ClusterConfig;
use snapsim_core::config::{ChangelogOptions, CheckpointingMode, RestartStrategyConfig};
use snapsim_core::ids::{OperatorId, TaskManagerId, Tick};
use snapsim_core::job::{
    AggregateFn, FilterFn, InputSide, JobGraph, MapFn, OperatorKind, Partitioning,
};
use snapsim_core::messages::Address;
use snapsim_sim::disk::DiskOp;
use snapsim_sim::faults::{Fault, FaultSchedule, WriteMoment};
use snapsim_sim::rng::{SimRng, Stream};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The TaskManagers of every generated case.
pub const TASK_MANAGERS: u16 = 2;

/// The shape of a generated job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Shape {
    /// source → keyBy aggregate → sink.
    Aggregate,
    /// source → map → filter → keyBy aggregate → map → sink.
    MapFilterAggregate,
    /// two sources → keyBy co-sum → sink.
    CoSum,
    /// source → keyBy tumbling window → sink.
    Window,
    /// source → rebalance map (p=1) → keyBy chain → map → sink: order-sensitive state, fed
    /// through a stateless operator whose in-flight records come after the chain's own.
    Chain,
    /// left source → keyBy chain, right source → keyBy chain, both → keyBy co-sum → sink: a
    /// two-input operator fed by two keyed operators (chains, whose output for an input does
    /// not depend on how channels interleave, so the model knows the co-sum's state at a cut).
    ChainJoin,
}

/// A generated job: its shape, sizes and checkpoint options.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobParams {
    pub shape: Shape,
    /// The aggregate function (aggregate and window shapes).
    pub aggregate: AggregateFn,
    /// Parallelism of the sources.
    pub source_parallelism: u16,
    /// Partitions of each source log.
    pub partitions: u16,
    /// Parallelism of the keyed operator and the sink.
    pub keyed_parallelism: u16,
    /// Records per source log.
    pub records: u64,
    /// Distinct keys.
    pub keys: u64,
    /// EXACTLY_ONCE (2PC sink) or AT_LEAST_ONCE (plain sink).
    pub mode: CheckpointingMode,
    /// The periodic interval.
    pub interval_ticks: u64,
    /// Max concurrent checkpoints.
    pub max_concurrent: u32,
    /// Min pause between checkpoints.
    pub min_pause_ticks: u64,
    /// Keyed state in the incremental backend.
    pub incremental: bool,
    /// Keyed state in the changelog backend, with these timers (not with `incremental`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changelog: Option<ChangelogOptions>,
    /// Completed checkpoints retained.
    pub retained: u32,
    /// Tolerable checkpoint failures.
    pub tolerable_failed: u32,
    /// A snapshot algorithm of the catalog, by name, instead of the mode's barrier handling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithm: Option<String>,
    /// The keyed operator processes at most this many records per tick (back-pressure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyed_throughput: Option<u32>,
}

/// One fault episode of a generated schedule (an outage has its end built in, so removing an
/// episode while shrinking never leaves a dangling half).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Episode {
    /// A node crashes at `at` and restarts `down_ticks` later.
    Crash {
        node: Address,
        /// When.
        at: u64,
        /// For how long.
        down_ticks: u64,
    },
    /// The JobManager and a TaskManager are partitioned for a while.
    Partition {
        /// The TaskManager.
        task_manager: u16,
        /// When.
        at: u64,
        /// For how long.
        for_ticks: u64,
    },
    /// The data link from one TaskManager to another (or to storage) is clogged for a while.
    Clog {
        /// The sending TaskManager.
        from: u16,
        /// The receiver.
        to: Address,
        /// When.
        at: u64,
        /// For how long.
        for_ticks: u64,
    },
    /// Messages between two TaskManagers get an extra delay for a while.
    SlowLink {
        /// The sending TaskManager.
        from: u16,
        /// The receiving TaskManager.
        to: u16,
        /// When.
        at: u64,
        /// The largest extra delay per message.
        extra_ticks_max: u64,
        /// For how long.
        for_ticks: u64,
    },
    /// The checkpoint RPCs between the JobManager and a TaskManager, one way, are lost for a
    /// while (triggers and notices to it, or its acknowledgements and declines).
    LoseCheckpointRpcs {
        /// The TaskManager.
        task_manager: u16,
        /// Lose what the TaskManager sends, rather than what it receives.
        outgoing: bool,
        /// When.
        at: u64,
        /// For how long.
        for_ticks: u64,
    },
    /// The next disk operation of a kind on a matching path fails.
    FailNextDiskOp {
        /// The operation.
        op: DiskOp,
        /// Text the path contains.
        path_contains: String,
        /// When the fault is armed.
        at: u64,
    },
    /// The next read of a matching path returns flipped bits.
    CorruptNextRead {
        /// Text the path contains.
        path_contains: String,
        /// When the fault is armed.
        at: u64,
    },
    /// A node crashes right before or after the sync of the next matching write.
    CrashOnWrite {
        /// Text the path contains.
        path_contains: String,
        /// Before or after the sync.
        moment: WriteMoment,
        /// The node that crashes (storage or JobManager).
        node: Address,
        /// When the fault is armed.
        at: u64,
        /// For how long the node stays down.
        down_ticks: u64,
    },
    /// A client asks for a savepoint.
    Savepoint {
        /// When.
        at: u64,
    },
}

impl Episode {
    /// When the episode starts (or its fault is armed).
    pub fn at_mut(&mut self) -> &mut u64 {
        match self {
            Episode::Crash { at, .. }
            | Episode::Partition { at, .. }
            | Episode::Clog { at, .. }
            | Episode::SlowLink { at, .. }
            | Episode::LoseCheckpointRpcs { at, .. }
            | Episode::FailNextDiskOp { at, .. }
            | Episode::CorruptNextRead { at, .. }
            | Episode::CrashOnWrite { at, .. }
            | Episode::Savepoint { at } => at,
        }
    }

    /// How long the episode lasts, for the episodes that last.
    pub fn duration_mut(&mut self) -> Option<&mut u64> {
        match self {
            Episode::Crash { down_ticks, .. } | Episode::CrashOnWrite { down_ticks, .. } => {
                Some(down_ticks)
            }
            Episode::Partition { for_ticks, .. }
            | Episode::Clog { for_ticks, .. }
            | Episode::SlowLink { for_ticks, .. }
            | Episode::LoseCheckpointRpcs { for_ticks, .. } => Some(for_ticks),
            Episode::FailNextDiskOp { .. }
            | Episode::CorruptNextRead { .. }
            | Episode::Savepoint { .. } => None,
        }
    }
}

/// A generated case: job, fault episodes and the seed of workload and timing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Case {
    pub job: JobParams,
    /// The adversary, in the safety phase.
    pub episodes: Vec<Episode>,
    /// The seed of the input logs, the cluster's timing and madsim's runtime.
    pub seed: u64,
}

impl Case {
    /// The run's setup: the job, a cluster of [`TASK_MANAGERS`], the expanded schedule.
    pub fn setup(&self, catalog: &Catalog) -> Result<Setup, NameError> {
        let mut workload = SimRng::new(self.seed, Stream::Workload);
        let mut timing = SimRng::new(self.seed, Stream::Cluster);
        let mut job = self.job.graph(&mut workload);
        if let Some(name) = &self.job.algorithm {
            let algorithm = catalog.algorithm(name)?;
            job.use_algorithm(algorithm);
        }
        let cluster = ClusterConfig {
            task_managers: TASK_MANAGERS,
            first_trigger_delay_ticks: timing.between(0, self.job.interval_ticks),
            ..ClusterConfig::default()
        };
        Ok(Setup {
            job,
            cluster,
            schedule: schedule(&self.episodes),
            after: None,
            logs_messages: false,
        })
    }
}

impl JobParams {
    /// Checks what the job builder relies on (a hand-edited case file may break it).
    pub fn check(&self) -> Result<(), String> {
        let at_least_one = [
            ("source_parallelism", u64::from(self.source_parallelism)),
            ("keyed_parallelism", u64::from(self.keyed_parallelism)),
            ("records", self.records),
            ("keys", self.keys),
            ("interval_ticks", self.interval_ticks),
            ("max_concurrent", u64::from(self.max_concurrent)),
            ("retained", u64::from(self.retained)),
        ];
        if let Some((name, _)) = at_least_one.iter().find(|(_, value)| *value == 0) {
            return Err(format!("{name} must be at least 1"));
        }
        if self.partitions < self.source_parallelism {
            return Err(format!(
                "partitions ({}) must be at least source_parallelism ({}): every source subtask reads one",
                self.partitions, self.source_parallelism
            ));
        }
        Ok(())
    }

    fn graph(&self, rng: &mut SimRng) -> JobGraph {
        let mut job = JobGraph::new("generated");
        let (stateful, keyed) = self.operators(&mut job, rng);
        if let Some(records_per_tick) = self.keyed_throughput {
            job.throttle(stateful, records_per_tick);
        }
        let sink_kind = match self.mode {
            CheckpointingMode::ExactlyOnce => OperatorKind::TwoPhaseCommitSink,
            CheckpointingMode::AtLeastOnce => OperatorKind::PlainSink,
        };
        let sink = job.add("sink", sink_kind, self.keyed_parallelism);
        job.connect(keyed, sink, Partitioning::Forward);
        self.configure(&mut job);
        job
    }

    /// A source subtask group reading a fresh log drawn from `rng`.
    fn source(&self, job: &mut JobGraph, rng: &mut SimRng, name: &str) -> OperatorId {
        let log = log(rng, self.partitions, self.records, self.keys);
        let kind = OperatorKind::Source {
            log,
            records_per_tick: 1,
        };
        job.add(name, kind, self.source_parallelism)
    }

    /// The operators of the shape, up to the sink: the stateful operator (throttled for
    /// back-pressure) and the one the sink reads.
    fn operators(&self, job: &mut JobGraph, rng: &mut SimRng) -> (OperatorId, OperatorId) {
        let p = self.keyed_parallelism;
        match self.shape {
            Shape::Aggregate => {
                let input = self.source(job, rng, "source");
                let keyed = job.add("aggregate", OperatorKind::KeyedAggregate(self.aggregate), p);
                job.connect(input, keyed, Partitioning::KeyBy);
                (keyed, keyed)
            }
            Shape::MapFilterAggregate => {
                let input = self.source(job, rng, "source");
                let shifted = job.add("shift", OperatorKind::Map(MapFn::AddConstant(7)), 1);
                let filter = FilterFn::DropValueMultiplesOf(5);
                let filtered = job.add("filter", OperatorKind::Filter(filter), 1);
                let keyed = job.add("aggregate", OperatorKind::KeyedAggregate(self.aggregate), p);
                let doubled = job.add("double", OperatorKind::Map(MapFn::MultiplyBy(2)), p);
                job.connect(input, shifted, Partitioning::Rebalance);
                job.connect(shifted, filtered, Partitioning::Forward);
                job.connect(filtered, keyed, Partitioning::KeyBy);
                job.connect(keyed, doubled, Partitioning::Forward);
                (keyed, doubled)
            }
            Shape::CoSum | Shape::ChainJoin => self.two_inputs(job, rng),
            Shape::Chain => {
                let input = self.source(job, rng, "source");
                let shifted = job.add("shift", OperatorKind::Map(MapFn::AddConstant(7)), 1);
                let keyed = job.add("chain", OperatorKind::KeyedChain, p);
                let doubled = job.add("double", OperatorKind::Map(MapFn::MultiplyBy(2)), p);
                job.connect(input, shifted, Partitioning::Rebalance);
                job.connect(shifted, keyed, Partitioning::KeyBy);
                job.connect(keyed, doubled, Partitioning::Forward);
                (keyed, doubled)
            }
            Shape::Window => {
                let input = self.source(job, rng, "source");
                let kind = OperatorKind::TumblingWindow {
                    size: 50,
                    aggregate: self.aggregate,
                };
                let keyed = job.add("window", kind, p);
                job.connect(input, keyed, Partitioning::KeyBy);
                (keyed, keyed)
            }
        }
    }

    /// The two-input shapes: a keyed co-sum of two sources, directly or through a keyed chain
    /// each.
    fn two_inputs(&self, job: &mut JobGraph, rng: &mut SimRng) -> (OperatorId, OperatorId) {
        let p = self.keyed_parallelism;
        let mut left = self.source(job, rng, "left");
        let mut right = self.source(job, rng, "right");
        let chained = self.shape == Shape::ChainJoin;
        if chained {
            let first = job.add("left chain", OperatorKind::KeyedChain, p);
            let second = job.add("right chain", OperatorKind::KeyedChain, p);
            job.connect(left, first, Partitioning::KeyBy);
            job.connect(right, second, Partitioning::KeyBy);
            (left, right) = (first, second);
        }
        let keyed = job.add("co-sum", OperatorKind::KeyedCoSum, p);
        job.connect_side(left, keyed, Partitioning::KeyBy, InputSide::First);
        job.connect_side(right, keyed, Partitioning::KeyBy, InputSide::Second);
        (keyed, keyed)
    }

    /// The drawn checkpoint options, files for storage and savepoints, and restarts enough for
    /// any schedule.
    fn configure(&self, job: &mut JobGraph) {
        let config = &mut job.checkpoint;
        config.mode = self.mode;
        config.interval_ticks = Some(self.interval_ticks);
        config.max_concurrent = self.max_concurrent;
        config.min_pause_ticks = self.min_pause_ticks;
        config.incremental = self.incremental;
        config.changelog = self.changelog;
        config.retained = self.retained;
        config.tolerable_failed = self.tolerable_failed;
        config.timeout_ticks = 1_000;
        config.directory = Some(CHECKPOINT_DIRECTORY.to_string());
        config.savepoint_directory = Some("savepoints".to_string());
        job.restart = RestartStrategyConfig::FixedDelay {
            attempts: 1_000,
            delay_ticks: 100,
        };
    }
}

/// Expands episodes into a valid schedule: events sorted by time; an outage that overlaps an
/// earlier outage of the same node is dropped (a node cannot crash while down).
fn schedule(episodes: &[Episode]) -> FaultSchedule {
    let heal_at = SCENARIO_HEAL_AT.0;
    let mut events: Vec<(u64, Fault)> = Vec::new();
    let mut down_until: BTreeMap<Address, u64> = BTreeMap::new();
    for episode in episodes {
        match episode.clone() {
            Episode::Crash {
                node,
                at,
                down_ticks,
            } => {
                if down_until.get(&node).is_some_and(|&until| at <= until) {
                    continue;
                }
                down_until.insert(node, at + down_ticks);
                events.extend([
                    (at, Fault::Crash(node)),
                    (at + down_ticks, Fault::Restart(node)),
                ]);
            }
            other => events.extend(link_faults(&other).unwrap_or_else(|| storage_faults(other))),
        }
    }
    events.sort_by_key(|(at, _)| *at);
    events.retain(|(at, _)| *at < heal_at);
    FaultSchedule::at_times(events, Tick(heal_at), SCENARIO_LIVENESS_TICKS)
}

fn tm_address(id: u16) -> Address {
    Address::TaskManager(TaskManagerId(id))
}

/// The faults of an episode on the network, if it is one.
fn link_faults(episode: &Episode) -> Option<Vec<(u64, Fault)>> {
    let tm = tm_address;
    Some(match *episode {
        Episode::Partition {
            task_manager,
            at,
            for_ticks,
        } => {
            let (a, b) = (Address::JobManager, tm(task_manager));
            let (start, end) = (Fault::Partition { a, b }, Fault::HealPartition { a, b });
            vec![(at, start), (at + for_ticks, end)]
        }
        Episode::Clog {
            from,
            to,
            at,
            for_ticks,
        } => {
            let from = tm(from);
            let (start, end) = (Fault::ClogLink { from, to }, Fault::UnclogLink { from, to });
            vec![(at, start), (at + for_ticks, end)]
        }
        Episode::SlowLink {
            from,
            to,
            at,
            extra_ticks_max,
            for_ticks,
        } => vec![(
            at,
            Fault::SlowLink {
                from: tm(from),
                to: tm(to),
                extra_ticks: (0, extra_ticks_max),
                for_ticks,
            },
        )],
        Episode::LoseCheckpointRpcs {
            task_manager,
            outgoing,
            at,
            for_ticks,
        } => {
            let (mut from, mut to) = (Address::JobManager, tm(task_manager));
            if outgoing {
                (from, to) = (to, from);
            }
            vec![(
                at,
                Fault::LoseCheckpointRpcs {
                    from,
                    to,
                    for_ticks,
                },
            )]
        }
        _ => return None,
    })
}

/// The faults of an episode on storage or from a client.
fn storage_faults(episode: Episode) -> Vec<(u64, Fault)> {
    match episode {
        Episode::FailNextDiskOp {
            op,
            path_contains,
            at,
        } => vec![(at, Fault::FailNextDiskOp { op, path_contains })],
        Episode::CorruptNextRead { path_contains, at } => {
            vec![(at, Fault::CorruptNextRead { path_contains })]
        }
        Episode::CrashOnWrite {
            path_contains,
            moment,
            node,
            at,
            down_ticks,
        } => vec![(
            at,
            Fault::CrashOnWrite {
                path_contains,
                moment,
                node,
                down_ticks,
            },
        )],
        Episode::Savepoint { at } => vec![(at, Fault::TriggerSavepoint)],
        Episode::Crash { .. }
        | Episode::Partition { .. }
        | Episode::Clog { .. }
        | Episode::SlowLink { .. }
        | Episode::LoseCheckpointRpcs { .. } => {
            unreachable!("crashes and link faults are expanded apart")
        }
    }
}

/// Faults start after the job had time to run and end well before the heal.
const EPISODE_AT: std::ops::Range<u64> = 20..1_500;

fn task_manager() -> impl Strategy<Value = u16> {
    0..TASK_MANAGERS
}

fn node() -> impl Strategy<Value = Address> {
    prop_oneof![
        task_manager().prop_map(|id| Address::TaskManager(TaskManagerId(id))),
        Just(Address::JobManager),
        Just(Address::Storage),
    ]
}

fn path_target() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("/task-"),
        Just("_metadata"),
        Just("ha/"),
        Just("shared/")
    ]
    .prop_map(str::to_string)
}

/// One fault episode; times and durations shrink toward the earliest and shortest.
pub fn episode() -> impl Strategy<Value = Episode> {
    let op = prop_oneof![Just(DiskOp::Read), Just(DiskOp::Append), Just(DiskOp::Sync)];
    let moment = prop_oneof![Just(WriteMoment::BeforeSync), Just(WriteMoment::AfterSync)];
    let writer = prop_oneof![Just(Address::Storage), Just(Address::JobManager)];
    let receiver = prop_oneof![
        task_manager().prop_map(|id| Address::TaskManager(TaskManagerId(id))),
        Just(Address::Storage),
    ];
    prop_oneof![
        3 => (node(), EPISODE_AT, 20..400u64).prop_map(|(node, at, down_ticks)| {
            Episode::Crash { node, at, down_ticks }
        }),
        1 => (task_manager(), EPISODE_AT, 50..900u64).prop_map(|(task_manager, at, for_ticks)| {
            Episode::Partition { task_manager, at, for_ticks }
        }),
        1 => (task_manager(), receiver, EPISODE_AT, 50..1_500u64).prop_map(
            |(from, to, at, for_ticks)| Episode::Clog { from, to, at, for_ticks }
        ),
        1 => (task_manager(), task_manager(), EPISODE_AT, 1..60u64, 100..2_000u64).prop_map(
            |(from, to, at, extra_ticks_max, for_ticks)| Episode::SlowLink {
                from,
                to,
                at,
                extra_ticks_max,
                for_ticks
            }
        ),
        2 => (task_manager(), any::<bool>(), EPISODE_AT, 1..400u64).prop_map(
            |(task_manager, outgoing, at, for_ticks)| Episode::LoseCheckpointRpcs {
                task_manager,
                outgoing,
                at,
                for_ticks
            }
        ),
        1 => (op, path_target(), EPISODE_AT).prop_map(|(op, path_contains, at)| {
            Episode::FailNextDiskOp { op, path_contains, at }
        }),
        1 => (path_target(), EPISODE_AT)
            .prop_map(|(path_contains, at)| Episode::CorruptNextRead { path_contains, at }),
        1 => (path_target(), moment, writer, EPISODE_AT, 20..300u64).prop_map(
            |(path_contains, moment, node, at, down_ticks)| Episode::CrashOnWrite {
                path_contains,
                moment,
                node,
                at,
                down_ticks
            }
        ),
        1 => EPISODE_AT.prop_map(|at| Episode::Savepoint { at }),
    ]
}

/// A generated job with `algorithm` (its rules override the drawn mode and max concurrent),
/// and, with a channel-state algorithm, a keyed operator that may be slow (back-pressure, so
/// barriers have queued input to overtake).
pub fn job_params_with(
    algorithm: Option<Arc<dyn SnapshotAlgorithm>>,
) -> impl Strategy<Value = JobParams> {
    let throttles = algorithm
        .as_ref()
        .is_some_and(|a| a.records_channel_state());
    // Headroom over the sources' rate: backlogs after a stall drain, slowly, so the job stays
    // live (a keyed operator slower than its input would make aligned checkpoints expire
    // forever, whatever the algorithm).
    let headroom = if throttles {
        prop_oneof![Just(None), (1..=2u32).prop_map(Some)].boxed()
    } else {
        Just(None).boxed()
    };
    (plain_job_params(), headroom).prop_map(move |(mut params, headroom)| {
        if let Some(algorithm) = &algorithm {
            params.mode = algorithm.guarantee().mode();
            params.algorithm = Some(algorithm.name().to_string());
            if algorithm.without_barriers() {
                // Its local snapshots hold the heap backend's whole state.
                params.incremental = false;
                params.changelog = None;
            }
        }
        let sources = match params.shape {
            Shape::CoSum | Shape::ChainJoin => 2,
            _ => 1,
        };
        let source_rate = sources * u32::from(params.source_parallelism);
        params.keyed_throughput = headroom.map(|extra| source_rate + extra);
        params
    })
}

fn plain_job_params() -> impl Strategy<Value = JobParams> {
    let shape = prop_oneof![
        Just(Shape::Aggregate),
        Just(Shape::MapFilterAggregate),
        Just(Shape::CoSum),
        Just(Shape::Window),
        Just(Shape::Chain),
        Just(Shape::ChainJoin),
    ];
    let aggregate = prop_oneof![
        Just(AggregateFn::Sum),
        Just(AggregateFn::Count),
        Just(AggregateFn::Max)
    ];
    let mode = prop_oneof![
        3 => Just(CheckpointingMode::ExactlyOnce),
        1 => Just(CheckpointingMode::AtLeastOnce),
    ];
    let sizes = (1..=3u16, 1..=4u16, 1..=3u16, 60..=1_200u64, 1..=48u64);
    // Heap half the time; the changelog with timers short enough to segment and materialize
    // many times in a run.
    let backend = prop_oneof![
        2 => Just((false, None)),
        1 => Just((true, None)),
        1 => (5..=20u64, 40..=200u64).prop_map(|(persist, materialize)| {
            let changelog = ChangelogOptions {
                persist_delay_ticks: persist,
                materialization_interval_ticks: materialize,
                ..ChangelogOptions::default()
            };
            (false, Some(changelog))
        }),
    ];
    let options = (
        mode,
        20..=200u64,
        1..=3u32,
        0..=60u64,
        backend,
        1..=3u32,
        0..=3u32,
    );
    (shape, aggregate, sizes, options).prop_map(|(shape, aggregate, sizes, options)| {
        let (source_parallelism, extra_partitions, keyed_parallelism, records, keys) = sizes;
        // Every source subtask reads at least one partition.
        let partitions = source_parallelism + extra_partitions - 1;
        let (
            mode,
            interval_ticks,
            max_concurrent,
            min_pause_ticks,
            (incremental, changelog),
            retained,
            tolerable_failed,
        ) = options;
        JobParams {
            shape,
            aggregate,
            source_parallelism,
            partitions,
            keyed_parallelism,
            records,
            keys,
            mode,
            interval_ticks,
            max_concurrent,
            min_pause_ticks,
            incremental,
            changelog,
            retained,
            tolerable_failed,
            algorithm: None,
            keyed_throughput: None,
        }
    })
}

/// A whole case: a job, up to `episodes_max` fault episodes, a seed.
pub fn case(episodes_max: usize) -> impl Strategy<Value = Case> {
    case_with(episodes_max, None)
}

/// A whole case whose job uses `algorithm` (see [`job_params_with`]).
pub fn case_with(
    episodes_max: usize,
    algorithm: Option<Arc<dyn SnapshotAlgorithm>>,
) -> impl Strategy<Value = Case> {
    (
        job_params_with(algorithm),
        proptest::collection::vec(episode(), 0..=episodes_max),
        any::<u64>(),
    )
        .prop_map(|(job, episodes, seed)| Case {
            job,
            episodes,
            seed,
        })
}
