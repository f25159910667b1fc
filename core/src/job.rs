//! Job graphs, their validation, and the execution plan of subtasks and channels.
//!
//! A [`JobGraph`] is what a user writes: operators with a parallelism and edges between them.
//! [`JobGraph::build`] validates it and expands it into an [`ExecutionPlan`]: one task per
//! subtask, with numbered input channels and output routes. Every rule violation is a
//! [`JobError`] that names the operator and the rule.

use crate::algorithm::{Plugged, SnapshotAlgorithm};
use crate::bugs::SeededBug;
use crate::config::{CheckpointConfig, ConfigError, RestartStrategyConfig};
use crate::ids::{ChannelIndex, Key, OperatorId, PartitionId, TaskId};
use crate::record::SourceRecord;
use crate::recovery_line::ChannelId;
use crate::retention::ClaimMode;
use crate::storage::StoragePath;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::sync::Arc;
use thiserror::Error;

/// The largest parallelism of one operator.
pub const PARALLELISM_MAX: u16 = 256;
/// The largest number of operators in one job.
pub const OPERATORS_MAX: usize = 64;
/// The largest number of tasks (subtasks of all operators).
pub const TASKS_MAX: usize = 4096;

/// A replayable, partitioned log (like a Kafka topic): immutable, read by offset.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceLog {
    /// The records of each partition, in offset order.
    pub partitions: Vec<Vec<SourceRecord>>,
}

impl SourceLog {
    /// The number of records over all partitions.
    pub fn records(&self) -> u64 {
        self.partitions
            .iter()
            .map(|partition| partition.len() as u64)
            .sum()
    }
}

/// A stateless record transformation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MapFn {
    /// `value + n` (wrapping).
    AddConstant(i64),
    /// `value × n` (wrapping).
    MultiplyBy(i64),
}

/// A stateless record predicate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FilterFn {
    /// Keeps records whose value is not a multiple of `n` (n > 0).
    DropValueMultiplesOf(i64),
}

/// A keyed aggregate function over the values of a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AggregateFn {
    /// The running sum (wrapping).
    Sum,
    /// The running count.
    Count,
    /// The running maximum.
    Max,
}

/// What an operator does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OperatorKind {
    /// Reads a partitioned log; subtask `s` reads partitions `p` with `p % parallelism == s`.
    Source {
        /// The log it reads.
        log: Arc<SourceLog>,
        /// Records a subtask emits per step of virtual time (one tick).
        records_per_tick: u32,
    },
    /// Stateless transformation.
    Map(MapFn),
    /// Stateless predicate.
    Filter(FilterFn),
    /// Keyed running aggregate in keyed value state; emits the new aggregate for every input.
    KeyedAggregate(AggregateFn),
    /// Keyed event-time tumbling windows; emits one result per key and window when the
    /// watermark passes the window's end.
    TumblingWindow {
        /// The window length in event-time units.
        size: u64,
        /// The function applied within a window.
        aggregate: AggregateFn,
    },
    /// A two-input keyed operator: keeps a running sum per key of each input and emits the
    /// combined sum for every input record.
    KeyedCoSum,
    /// Keyed state that depends on the order of its input, as last-value state, sessions or
    /// deduplication do: per key and [lane](crate::record::Lane), a hash chain of the values in
    /// the order processed; emits the new chain for every input. A record processed out of its
    /// channel's order changes every later value of its key and lane, while any interleaving
    /// of channels leaves them as they are.
    KeyedChain,
    /// Exactly-once sink with two-phase commit into the external sink system (Flink's
    /// `TwoPhaseCommitSinkFunction`).
    TwoPhaseCommitSink,
    /// At-least-once sink: writes straight into the external system's committed output.
    PlainSink,
}

impl OperatorKind {
    /// How many input sides the operator has.
    pub fn input_sides(&self) -> usize {
        match self {
            OperatorKind::Source { .. } => 0,
            OperatorKind::KeyedCoSum => 2,
            _ => 1,
        }
    }

    /// Whether the operator keeps keyed state, so its inputs must be partitioned by key.
    pub fn is_keyed(&self) -> bool {
        matches!(
            self,
            OperatorKind::KeyedAggregate(_)
                | OperatorKind::TumblingWindow { .. }
                | OperatorKind::KeyedCoSum
                | OperatorKind::KeyedChain
        )
    }

    /// Whether the operator is a sink (no outputs allowed).
    pub fn is_sink(&self) -> bool {
        matches!(
            self,
            OperatorKind::TwoPhaseCommitSink | OperatorKind::PlainSink
        )
    }

    fn name(&self) -> &'static str {
        match self {
            OperatorKind::Source { .. } => "source",
            OperatorKind::Map(_) => "map",
            OperatorKind::Filter(_) => "filter",
            OperatorKind::KeyedAggregate(_) => "keyed aggregate",
            OperatorKind::TumblingWindow { .. } => "tumbling window",
            OperatorKind::KeyedCoSum => "keyed co-sum",
            OperatorKind::KeyedChain => "keyed chain",
            OperatorKind::TwoPhaseCommitSink => "two-phase-commit sink",
            OperatorKind::PlainSink => "plain sink",
        }
    }
}

/// How records of an edge are distributed over the downstream subtasks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Partitioning {
    /// Subtask `i` sends to subtask `i` (equal parallelism required).
    Forward,
    /// All-to-all: each record goes to the subtask that owns its key.
    KeyBy,
    /// All-to-all: records go round-robin over the downstream subtasks.
    Rebalance,
}

/// Which input of a two-input operator an edge feeds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum InputSide {
    /// The first (or only) input.
    First,
    /// The second input of a two-input operator.
    Second,
}

/// An operator of a job graph.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperatorSpec {
    /// Its id, the position in the graph.
    pub id: OperatorId,
    /// A name for people.
    pub name: String,
    /// What it does.
    pub kind: OperatorKind,
    /// Its number of subtasks.
    pub parallelism: u16,
    /// At most this many records a subtask processes per tick (a slow operator: back-pressure
    /// builds up in its input queues); `None`: as fast as input arrives. Not for sources,
    /// whose rate is `records_per_tick`.
    pub throughput: Option<u32>,
}

/// An edge of a job graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Edge {
    /// The upstream operator.
    pub source: OperatorId,
    /// The downstream operator.
    pub target: OperatorId,
    /// How records are distributed.
    pub partitioning: Partitioning,
    /// Which input of the target it feeds.
    pub side: InputSide,
}

/// A job as the user describes it. Build it with [`JobGraph::new`], [`JobGraph::add`] and
/// [`JobGraph::connect`], then validate and expand it with [`JobGraph::build`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobGraph {
    /// A name for people; also the job id in storage paths.
    pub name: String,
    /// The operators, indexed by `OperatorId`.
    pub operators: Vec<OperatorSpec>,
    pub edges: Vec<Edge>,
    /// Checkpoint options.
    pub checkpoint: CheckpointConfig,
    /// Restart strategy.
    pub restart: RestartStrategyConfig,
    /// Start from a retained checkpoint or a savepoint (`flink run -s`), if set.
    pub restore: Option<RestoreSettings>,
    /// Seeded bugs switched on (none in a normal run): see [`SeededBug`].
    pub bugs: BTreeSet<SeededBug>,
    /// A snapshot algorithm from outside the engine, whose handler every task runs instead of
    /// the one the checkpoint options choose (see [`crate::algorithm`]).
    pub plugged: Option<Plugged>,
}

/// Where a new job starts from, and on what terms (`flink run -s`, Flink's `RestoreMode`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreSettings {
    /// The snapshot: its directory (`…/chk-7`) or its `_metadata` file.
    pub path: String,
    /// Whether the job takes ownership of the snapshot's files.
    pub claim: ClaimMode,
    /// Whether state of operators the job no longer has may be dropped.
    pub allow_non_restored_state: bool,
}

impl RestoreSettings {
    /// The snapshot's directory and its `_metadata` file, from a path that names either;
    /// `None` for a path that is not a storage path.
    pub fn paths(&self) -> Option<(StoragePath, StoragePath)> {
        let path = StoragePath::new(self.path.clone()).ok()?;
        if path.as_str().rsplit('/').next() == Some("_metadata") {
            Some((path.parent()?, path))
        } else {
            let metadata = path.join("_metadata");
            Some((path, metadata))
        }
    }
}

/// A job graph that breaks a rule. The message names the operator and the rule.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum JobError {
    /// An option of the checkpoint or restart config is invalid.
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    /// A job needs at least one source.
    #[error("job '{job}' has no source")]
    NoSource { job: String },
    /// A job needs at least one sink.
    #[error("job '{job}' has no sink")]
    NoSink { job: String },
    /// Too many operators.
    #[error("job has {count} operators, at most {max} are allowed")]
    TooManyOperators {
        count: usize,
        /// The bound.
        max: usize,
    },
    /// Too many subtasks in all.
    #[error("job has {count} subtasks, at most {max} are allowed")]
    TooManyTasks {
        count: usize,
        /// The bound.
        max: usize,
    },
    /// Parallelism out of range.
    #[error("operator '{operator}': parallelism must be between 1 and {max}, got {value}")]
    Parallelism {
        operator: String,
        /// The configured value.
        value: u16,
        /// The bound.
        max: u16,
    },
    /// An edge names an operator that does not exist.
    #[error("edge {upstream} -> {target} names an unknown operator")]
    UnknownOperator {
        /// The edge's source.
        upstream: OperatorId,
        /// The edge's target.
        target: OperatorId,
    },
    /// Two operators share a name; the name identifies an operator's state in checkpoints
    /// (Flink's uid), so it must be unique.
    #[error(
        "two operators are named '{operator}'; operator names identify state and must be unique"
    )]
    DuplicateOperatorName {
        /// The name.
        operator: String,
    },
    /// The graph has a cycle (iterations are not supported).
    #[error("job graph has a cycle through operator '{operator}'")]
    Cycle {
        /// An operator on the cycle.
        operator: String,
    },
    /// An operator has the wrong number of inputs on one side.
    #[error(
        "operator '{operator}' ({kind}) needs exactly one input on side {side:?}, got {count}"
    )]
    InputCount {
        operator: String,
        kind: &'static str,
        side: InputSide,
        /// The edges found.
        count: usize,
    },
    /// A sink has an outgoing edge.
    #[error("operator '{operator}' is a sink and cannot have outputs")]
    SinkWithOutput { operator: String },
    /// A non-sink operator has no outgoing edge: its records would vanish.
    #[error("operator '{operator}' has no output; only sinks may end a pipeline")]
    DanglingOutput { operator: String },
    /// A keyed operator must receive its input through a keyBy edge.
    #[error("operator '{operator}' keeps keyed state, so its input from '{upstream}' must use KeyBy, not {partitioning:?}")]
    KeyedInputNotKeyBy {
        /// The keyed operator.
        operator: String,
        /// The upstream operator.
        upstream: String,
        /// The edge's partitioning.
        partitioning: Partitioning,
    },
    /// A forward edge needs equal parallelism at both ends.
    #[error("forward edge '{upstream}' -> '{operator}' needs equal parallelism, got {upstream_parallelism} and {parallelism}")]
    ForwardParallelism {
        /// The upstream operator.
        upstream: String,
        /// The downstream operator.
        operator: String,
        /// Upstream parallelism.
        upstream_parallelism: u16,
        /// Downstream parallelism.
        parallelism: u16,
    },
    /// A source has more subtasks than partitions or an empty log.
    #[error("source '{operator}' has {partitions} partitions, which must be at least its parallelism {parallelism} and at least 1")]
    SourcePartitions {
        /// The source.
        operator: String,
        /// The log's partitions.
        partitions: usize,
        /// The source's parallelism.
        parallelism: u16,
    },
    /// A source must emit at least one record per tick.
    #[error("source '{operator}': records per tick must be positive")]
    SourceRate {
        /// The source.
        operator: String,
    },
    /// A window must have a positive size; a filter a positive divisor.
    #[error("operator '{operator}': {rule}")]
    OperatorArgument {
        operator: String,
        /// The rule broken.
        rule: &'static str,
    },
}

impl JobGraph {
    /// Runs the job with `algorithm`: its checkpoint options as the algorithm sets them, and
    /// the algorithm itself plugged in unless the options alone choose its handler.
    pub fn use_algorithm(&mut self, algorithm: &Arc<dyn SnapshotAlgorithm>) {
        algorithm.configure(&mut self.checkpoint);
        self.plugged = (!algorithm.chosen_by_options()).then(|| Plugged(algorithm.clone()));
    }

    /// An empty job with Flink's default options.
    pub fn new(name: impl Into<String>) -> JobGraph {
        JobGraph {
            name: name.into(),
            operators: Vec::new(),
            edges: Vec::new(),
            checkpoint: CheckpointConfig::default(),
            restart: RestartStrategyConfig::default(),
            restore: None,
            bugs: BTreeSet::new(),
            plugged: None,
        }
    }

    /// Adds an operator and returns its id.
    pub fn add(
        &mut self,
        name: impl Into<String>,
        kind: OperatorKind,
        parallelism: u16,
    ) -> OperatorId {
        let id = OperatorId(u32::try_from(self.operators.len()).expect("operator count fits u32"));
        self.operators.push(OperatorSpec {
            id,
            name: name.into(),
            kind,
            parallelism,
            throughput: None,
        });
        id
    }

    /// Adds an edge into the first input of `target`.
    pub fn connect(&mut self, source: OperatorId, target: OperatorId, partitioning: Partitioning) {
        self.connect_side(source, target, partitioning, InputSide::First);
    }

    /// Limits `operator` to `records_per_tick` records per subtask and tick: a slow operator,
    /// under which back-pressure builds up.
    pub fn throttle(&mut self, operator: OperatorId, records_per_tick: u32) {
        self.operators[operator.0 as usize].throughput = Some(records_per_tick);
    }

    /// Adds an edge into the given input of `target`.
    pub fn connect_side(
        &mut self,
        source: OperatorId,
        target: OperatorId,
        partitioning: Partitioning,
        side: InputSide,
    ) {
        self.edges.push(Edge {
            source,
            target,
            partitioning,
            side,
        });
    }

    /// Validates the graph and its options and expands it into an execution plan.
    pub fn build(mut self) -> Result<ExecutionPlan, JobError> {
        let warnings = self.checkpoint.cap();
        self.checkpoint.validate()?;
        self.restart.validate()?;
        self.validate_operators()?;
        self.validate_edges()?;
        let topological = self.topological_order()?;
        let mut plan = ExecutionPlan::expand(self, &topological);
        plan.warnings = warnings;
        Ok(plan)
    }

    fn validate_operators(&self) -> Result<(), JobError> {
        self.validate_size()?;
        self.validate_unique_names()?;
        for op in &self.operators {
            validate_operator(op)?;
        }
        self.validate_has_source_and_sink()
    }

    /// The job stays within [`OPERATORS_MAX`] operators and [`TASKS_MAX`] tasks.
    fn validate_size(&self) -> Result<(), JobError> {
        if self.operators.len() > OPERATORS_MAX {
            return Err(JobError::TooManyOperators {
                count: self.operators.len(),
                max: OPERATORS_MAX,
            });
        }
        let tasks: usize = self
            .operators
            .iter()
            .map(|op| usize::from(op.parallelism))
            .sum();
        if tasks > TASKS_MAX {
            return Err(JobError::TooManyTasks {
                count: tasks,
                max: TASKS_MAX,
            });
        }
        Ok(())
    }

    /// Operator names identify state, so no two operators may share one.
    fn validate_unique_names(&self) -> Result<(), JobError> {
        let mut names = std::collections::BTreeSet::new();
        for op in &self.operators {
            if !names.insert(op.name.as_str()) {
                return Err(JobError::DuplicateOperatorName {
                    operator: op.name.clone(),
                });
            }
        }
        Ok(())
    }

    fn validate_has_source_and_sink(&self) -> Result<(), JobError> {
        let job = self.name.clone();
        if !self
            .operators
            .iter()
            .any(|op| matches!(op.kind, OperatorKind::Source { .. }))
        {
            return Err(JobError::NoSource { job });
        }
        if !self.operators.iter().any(|op| op.kind.is_sink()) {
            return Err(JobError::NoSink { job });
        }
        Ok(())
    }

    fn validate_edges(&self) -> Result<(), JobError> {
        let count = self.operators.len();
        for edge in &self.edges {
            if edge.source.0 as usize >= count || edge.target.0 as usize >= count {
                return Err(JobError::UnknownOperator {
                    upstream: edge.source,
                    target: edge.target,
                });
            }
        }
        for op in &self.operators {
            let sides: &[InputSide] = match op.kind.input_sides() {
                0 => &[],
                1 => &[InputSide::First],
                _ => &[InputSide::First, InputSide::Second],
            };
            let incoming = || self.edges.iter().filter(|edge| edge.target == op.id);
            for &side in [InputSide::First, InputSide::Second].iter() {
                let found = incoming().filter(|edge| edge.side == side).count();
                let expected = usize::from(sides.contains(&side));
                if found != expected {
                    let (operator, kind) = (op.name.clone(), op.kind.name());
                    return Err(JobError::InputCount {
                        operator,
                        kind,
                        side,
                        count: found,
                    });
                }
            }
            for edge in incoming() {
                let upstream = &self.operators[edge.source.0 as usize];
                if op.kind.is_keyed() && edge.partitioning != Partitioning::KeyBy {
                    return Err(JobError::KeyedInputNotKeyBy {
                        operator: op.name.clone(),
                        upstream: upstream.name.clone(),
                        partitioning: edge.partitioning,
                    });
                }
                if edge.partitioning == Partitioning::Forward
                    && upstream.parallelism != op.parallelism
                {
                    return Err(JobError::ForwardParallelism {
                        upstream: upstream.name.clone(),
                        operator: op.name.clone(),
                        upstream_parallelism: upstream.parallelism,
                        parallelism: op.parallelism,
                    });
                }
            }
            let outgoing = self
                .edges
                .iter()
                .filter(|edge| edge.source == op.id)
                .count();
            if op.kind.is_sink() && outgoing > 0 {
                return Err(JobError::SinkWithOutput {
                    operator: op.name.clone(),
                });
            }
            if !op.kind.is_sink() && outgoing == 0 {
                return Err(JobError::DanglingOutput {
                    operator: op.name.clone(),
                });
            }
        }
        Ok(())
    }

    /// Kahn's algorithm over operator ids (ordered, so the result is deterministic).
    fn topological_order(&self) -> Result<Vec<OperatorId>, JobError> {
        let mut indegree = vec![0usize; self.operators.len()];
        for edge in &self.edges {
            indegree[edge.target.0 as usize] += 1;
        }
        let mut ready: std::collections::BTreeSet<u32> = (0..self.operators.len() as u32)
            .filter(|&i| indegree[i as usize] == 0)
            .collect();
        let mut order = Vec::with_capacity(self.operators.len());
        while let Some(next) = ready.pop_first() {
            order.push(OperatorId(next));
            for edge in self.edges.iter().filter(|edge| edge.source.0 == next) {
                let target = edge.target.0 as usize;
                indegree[target] -= 1;
                if indegree[target] == 0 {
                    ready.insert(edge.target.0);
                }
            }
        }
        if order.len() != self.operators.len() {
            let stuck = indegree
                .iter()
                .position(|&d| d > 0)
                .expect("a cycle leaves an indegree");
            return Err(JobError::Cycle {
                operator: self.operators[stuck].name.clone(),
            });
        }
        Ok(order)
    }
}

/// An operator's own arguments: its parallelism and what its kind requires.
fn validate_operator(op: &OperatorSpec) -> Result<(), JobError> {
    let operator = op.name.clone();
    if op.parallelism == 0 || op.parallelism > PARALLELISM_MAX {
        let (value, max) = (op.parallelism, PARALLELISM_MAX);
        return Err(JobError::Parallelism {
            operator,
            value,
            max,
        });
    }
    match &op.kind {
        OperatorKind::Source {
            log,
            records_per_tick,
        } => {
            let partitions = log.partitions.len();
            if partitions == 0 || partitions < usize::from(op.parallelism) {
                let parallelism = op.parallelism;
                return Err(JobError::SourcePartitions {
                    operator,
                    partitions,
                    parallelism,
                });
            }
            if *records_per_tick == 0 {
                return Err(JobError::SourceRate { operator });
            }
            if op.throughput.is_some() {
                let rule = "a source's rate is records_per_tick, not a throughput";
                return Err(JobError::OperatorArgument { operator, rule });
            }
        }
        _ if op.throughput == Some(0) => {
            let rule = "throughput must be positive";
            return Err(JobError::OperatorArgument { operator, rule });
        }
        OperatorKind::TumblingWindow { size: 0, .. } => {
            let rule = "window size must be positive";
            return Err(JobError::OperatorArgument { operator, rule });
        }
        OperatorKind::Filter(FilterFn::DropValueMultiplesOf(n)) if *n <= 0 => {
            let rule = "filter divisor must be positive";
            return Err(JobError::OperatorArgument { operator, rule });
        }
        _ => {}
    }
    Ok(())
}

/// One input channel of a task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InputChannelSpec {
    /// The task at the other end.
    pub upstream: TaskId,
    /// Which input of the operator it feeds.
    pub side: InputSide,
}

/// One output edge of a task: the downstream tasks and the channel index at each of them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputSpec {
    /// How records are distributed over `targets`.
    pub partitioning: Partitioning,
    /// Downstream tasks in subtask order, with this task's channel index at each.
    pub targets: Vec<(TaskId, ChannelIndex)>,
}

/// One subtask of the job, with its wiring.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskSpec {
    /// Its id in the plan.
    pub id: TaskId,
    pub operator: OperatorId,
    /// Its subtask index within the operator.
    pub subtask: u16,
    /// The operator's parallelism.
    pub parallelism: u16,
    /// `operator name[subtask]`, for people.
    pub name: String,
    /// What it does.
    pub kind: OperatorKind,
    /// Input channels, indexed by `ChannelIndex`.
    pub inputs: Vec<InputChannelSpec>,
    /// Output edges.
    pub outputs: Vec<OutputSpec>,
    /// The source partitions this subtask reads (sources only).
    pub partitions: Vec<PartitionId>,
    /// Seeded bugs switched on (none in a normal run).
    pub bugs: BTreeSet<SeededBug>,
    /// The job's plugged snapshot algorithm, if it has one.
    pub plugged: Option<Plugged>,
    /// The operator's throughput limit, records per tick.
    pub throughput: Option<u32>,
}

impl TaskSpec {
    /// Whether `bug` is switched on.
    pub fn has_bug(&self, bug: SeededBug) -> bool {
        self.bugs.contains(&bug)
    }

    /// Its output channels, output by output, each named by its receiving end.
    pub fn output_channels(&self) -> impl Iterator<Item = ChannelId> + '_ {
        (self.outputs.iter().flat_map(|output| &output.targets))
            .map(|&(receiver, channel)| ChannelId { receiver, channel })
    }
}

/// A validated job expanded into tasks and channels.
///
/// Invariant: tasks are in topological order of their operators, and every channel index
/// named in an `OutputSpec` exists at its target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecutionPlan {
    /// The job's name, also its id in storage paths.
    pub job: String,
    /// Every subtask, indexed by `TaskId`.
    pub tasks: Vec<TaskSpec>,
    /// Checkpoint options (validated).
    pub checkpoint: CheckpointConfig,
    /// Restart strategy (validated).
    pub restart: RestartStrategyConfig,
    /// Where the job starts from when it has no HA record yet.
    pub restore: Option<RestoreSettings>,
    /// Options that were out of range and were brought into it, as Flink does (with a log
    /// warning there): one line each, for a program that builds jobs to show its user (no
    /// built-in scenario or generated case sets such an option).
    pub warnings: Vec<String>,
}

/// The tasks of every operator, without channels yet, and each operator's first task. Task
/// ids are dense and follow the topological order of operators.
fn expand_operators(graph: &JobGraph, topological: &[OperatorId]) -> (Vec<TaskSpec>, Vec<TaskId>) {
    let mut first_task = vec![TaskId(0); graph.operators.len()];
    let mut tasks: Vec<TaskSpec> = Vec::new();
    for &op_id in topological {
        let op = &graph.operators[op_id.0 as usize];
        first_task[op_id.0 as usize] = TaskId(tasks.len() as u32);
        for subtask in 0..op.parallelism {
            tasks.push(TaskSpec {
                id: TaskId(tasks.len() as u32),
                operator: op.id,
                subtask,
                parallelism: op.parallelism,
                name: format!("{}[{}]", op.name, subtask),
                kind: op.kind.clone(),
                inputs: Vec::new(),
                outputs: Vec::new(),
                partitions: source_partitions(op, subtask),
                bugs: graph.bugs.clone(),
                plugged: graph.plugged.clone(),
                throughput: op.throughput,
            });
        }
    }
    (tasks, first_task)
}

/// The log partitions a source's subtask reads (round robin); none for other operators.
fn source_partitions(op: &OperatorSpec, subtask: u16) -> Vec<PartitionId> {
    match &op.kind {
        OperatorKind::Source { log, .. } => (0..log.partitions.len() as u16)
            .filter(|p| p % op.parallelism == subtask)
            .map(PartitionId)
            .collect(),
        _ => Vec::new(),
    }
}

/// Adds the channels of `edge`: an output at each upstream task, and at each of its
/// downstream tasks the next input channel index.
fn wire_edge(graph: &JobGraph, edge: &Edge, first_task: &[TaskId], tasks: &mut [TaskSpec]) {
    let upstream = &graph.operators[edge.source.0 as usize];
    let downstream = &graph.operators[edge.target.0 as usize];
    let up_first = first_task[edge.source.0 as usize].0;
    let down_first = first_task[edge.target.0 as usize].0;
    for up in 0..upstream.parallelism {
        let up_task = TaskId(up_first + u32::from(up));
        let downs: Vec<u16> = match edge.partitioning {
            Partitioning::Forward => vec![up],
            Partitioning::KeyBy | Partitioning::Rebalance => (0..downstream.parallelism).collect(),
        };
        let mut targets = Vec::with_capacity(downs.len());
        for down in downs {
            let down_task = TaskId(down_first + u32::from(down));
            let inputs = &mut tasks[down_task.index()].inputs;
            let channel = ChannelIndex(u16::try_from(inputs.len()).expect("channels fit u16"));
            inputs.push(InputChannelSpec {
                upstream: up_task,
                side: edge.side,
            });
            targets.push((down_task, channel));
        }
        let partitioning = edge.partitioning;
        tasks[up_task.index()].outputs.push(OutputSpec {
            partitioning,
            targets,
        });
    }
}

impl ExecutionPlan {
    fn expand(graph: JobGraph, topological: &[OperatorId]) -> ExecutionPlan {
        let (mut tasks, first_task) = expand_operators(&graph, topological);
        for edge in &graph.edges {
            wire_edge(&graph, edge, &first_task, &mut tasks);
        }
        let plan = ExecutionPlan {
            job: graph.name,
            tasks,
            checkpoint: graph.checkpoint,
            restart: graph.restart,
            restore: graph.restore,
            warnings: Vec::new(),
        };
        plan.assert_wiring();
        plan
    }

    fn assert_wiring(&self) {
        for task in &self.tasks {
            for output in &task.outputs {
                for &(target, channel) in &output.targets {
                    let input = self.tasks[target.index()].inputs[channel.index()];
                    assert_eq!(
                        input.upstream, task.id,
                        "channel {channel} of {target} is wired to {}",
                        task.id
                    );
                }
            }
        }
    }

    /// Every data channel, with its sender, in task order.
    pub fn channels(&self) -> Vec<(TaskId, ChannelId)> {
        (self.tasks.iter())
            .flat_map(|task| {
                task.output_channels()
                    .map(move |channel| (task.id, channel))
            })
            .collect()
    }

    /// Whether seeded `bug` is switched on (for every task of the job).
    pub fn has_bug(&self, bug: SeededBug) -> bool {
        self.tasks.iter().any(|t| t.has_bug(bug))
    }

    /// The source tasks: the ones that receive trigger messages.
    pub fn source_tasks(&self) -> impl Iterator<Item = TaskId> + '_ {
        self.tasks
            .iter()
            .filter(|t| matches!(t.kind, OperatorKind::Source { .. }))
            .map(|t| t.id)
    }

    /// The task with this id.
    pub fn task(&self, id: TaskId) -> &TaskSpec {
        &self.tasks[id.index()]
    }
}

/// The downstream subtask that owns `key` among `parallelism` subtasks: a fixed mix of the key,
/// so that ownership never depends on hash-map seeds.
pub fn key_owner(key: Key, parallelism: u16) -> u16 {
    assert!(parallelism > 0, "parallelism is validated positive");
    let mut mix = key.0.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    mix ^= mix >> 29;
    (mix % u64::from(parallelism)) as u16
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{EventTime, Key};

    fn log(partitions: usize) -> Arc<SourceLog> {
        let record = SourceRecord {
            key: Key(1),
            value: 1,
            event_time: EventTime(0),
        };
        Arc::new(SourceLog {
            partitions: vec![vec![record]; partitions],
        })
    }

    fn source(graph: &mut JobGraph, parallelism: u16) -> OperatorId {
        graph.add(
            "src",
            OperatorKind::Source {
                log: log(4),
                records_per_tick: 1,
            },
            parallelism,
        )
    }

    fn check(graph: JobGraph, expected: &str) {
        let actual = match graph.build() {
            Ok(plan) => format!("ok: {} tasks", plan.tasks.len()),
            Err(error) => error.to_string(),
        };
        assert_eq!(actual, expected);
    }

    #[test]
    fn a_min_pause_above_one_year_builds_capped_and_says_so() {
        // Flink caps the pause rather than refusing the job; the plan carries the warning.
        let mut graph = JobGraph::new("job");
        let src = source(&mut graph, 1);
        let sink = graph.add("sink", OperatorKind::TwoPhaseCommitSink, 1);
        graph.connect(src, sink, Partitioning::Forward);
        graph.checkpoint.min_pause_ticks = u64::MAX;
        let plan = graph.build().expect("a capped pause builds");
        assert_eq!(
            plan.checkpoint.min_pause_ticks,
            crate::config::MIN_PAUSE_MAX_TICKS
        );
        assert_eq!(plan.warnings.len(), 1, "{:?}", plan.warnings);
    }

    #[test]
    fn keyby_is_all_to_all() {
        let mut graph = JobGraph::new("job");
        let src = source(&mut graph, 2);
        let agg = graph.add("agg", OperatorKind::KeyedAggregate(AggregateFn::Sum), 3);
        let sink = graph.add("sink", OperatorKind::TwoPhaseCommitSink, 3);
        graph.connect(src, agg, Partitioning::KeyBy);
        graph.connect(agg, sink, Partitioning::Forward);
        let plan = graph.build().expect("valid");
        assert_eq!(plan.tasks.len(), 8);
        let agg_task = &plan.tasks[2];
        assert_eq!(
            agg_task.inputs.len(),
            2,
            "each aggregate subtask hears from both sources"
        );
        assert_eq!(plan.tasks[0].outputs[0].targets.len(), 3);
        assert_eq!(
            plan.tasks[5].inputs.len(),
            1,
            "forward edges are one-to-one"
        );
        assert_eq!(
            plan.tasks[0].partitions,
            vec![PartitionId(0), PartitionId(2)]
        );
    }

    #[test]
    fn rules_are_named() {
        let mut graph = JobGraph::new("job");
        let src = source(&mut graph, 2);
        let agg = graph.add("agg", OperatorKind::KeyedAggregate(AggregateFn::Sum), 2);
        let sink = graph.add("sink", OperatorKind::PlainSink, 2);
        graph.connect(src, agg, Partitioning::Forward);
        graph.connect(agg, sink, Partitioning::Forward);
        check(
            graph,
            "operator 'agg' keeps keyed state, so its input from 'src' must use KeyBy, not Forward",
        );

        let mut graph = JobGraph::new("job");
        let src = source(&mut graph, 2);
        let sink = graph.add("sink", OperatorKind::PlainSink, 3);
        graph.connect(src, sink, Partitioning::Forward);
        check(
            graph,
            "forward edge 'src' -> 'sink' needs equal parallelism, got 2 and 3",
        );

        let mut graph = JobGraph::new("job");
        let src = source(&mut graph, 1);
        let map = graph.add("map", OperatorKind::Map(MapFn::AddConstant(1)), 1);
        graph.add("sink", OperatorKind::PlainSink, 1);
        graph.connect(src, map, Partitioning::Forward);
        check(
            graph,
            "operator 'map' has no output; only sinks may end a pipeline",
        );

        let mut graph = JobGraph::new("job");
        let src = source(&mut graph, 1);
        let co = graph.add("co", OperatorKind::KeyedCoSum, 1);
        let sink = graph.add("sink", OperatorKind::PlainSink, 1);
        graph.connect(src, co, Partitioning::KeyBy);
        graph.connect(co, sink, Partitioning::Forward);
        check(
            graph,
            "operator 'co' (keyed co-sum) needs exactly one input on side Second, got 0",
        );

        let mut graph = JobGraph::new("job");
        source(&mut graph, 8);
        check(graph, "source 'src' has 4 partitions, which must be at least its parallelism 8 and at least 1");

        let mut graph = JobGraph::new("job");
        let src = source(&mut graph, 1);
        let sink = graph.add("sink", OperatorKind::PlainSink, 1);
        graph.connect(src, sink, Partitioning::Forward);
        graph.checkpoint.interval_ticks = Some(1);
        check(
            graph,
            "invalid configuration: checkpoint interval must be at least 10 ms, got 1 ms",
        );
    }

    #[test]
    fn cycles_are_rejected() {
        let mut graph = JobGraph::new("job");
        let src = source(&mut graph, 1);
        let co = graph.add("co", OperatorKind::KeyedCoSum, 1);
        let map = graph.add("map", OperatorKind::Map(MapFn::AddConstant(1)), 1);
        let sink = graph.add("sink", OperatorKind::PlainSink, 1);
        graph.connect(src, co, Partitioning::KeyBy);
        graph.connect(co, map, Partitioning::Forward);
        graph.connect_side(map, co, Partitioning::KeyBy, InputSide::Second);
        graph.connect(map, sink, Partitioning::Forward);
        check(graph, "job graph has a cycle through operator 'co'");
    }

    #[test]
    fn key_owner_spreads_keys() {
        let mut counts = [0u32; 4];
        for key in 0..400 {
            counts[usize::from(key_owner(Key(key), 4))] += 1;
        }
        assert!(
            counts.iter().all(|&c| c > 50),
            "keys spread over subtasks: {counts:?}"
        );
    }
}
