//! An example of snapsim as a framework: a crate that depends on snapsim and adds, without
//! changing a file of it, a snapshot algorithm, a checker, a scenario and a fault profile.
//! [`catalog`] registers them beside the built-ins; `src/main.rs` turns that catalog into the
//! whole `snapsim` program, and `tests/` fuzzes and sweeps with it.
//!
//! - [`EagerSnapshot`] is a deliberately weak algorithm: it claims exactly-once but snapshots
//!   on the first barrier without blocking the other channels and without recording what they
//!   still deliver. The built-in checkers catch it (consistent-cut, exactly-once).
//! - [`CommitOrder`] checks an extra property: each sink subtask commits its transactions in
//!   the order it began them. The seeded bug `commit-out-of-order` breaks it.
//! - The `fan-in` scenario: three sources into a keyed sum under [`late_crash`].

use snapsim_core::algorithm::{Guarantee, SnapshotAlgorithm};
use snapsim_core::barrier::{BarrierActions, BarrierHandler};
use snapsim_core::cluster::ClusterConfig;
use snapsim_core::config::{CheckpointConfig, RestartStrategyConfig};
use snapsim_core::ids::{ChannelIndex, CheckpointId, TaskId, Tick};
use snapsim_core::job::{AggregateFn, ExecutionPlan, JobGraph, OperatorKind, Partitioning};
use snapsim_core::messages::CheckpointFailureReason;
use snapsim_core::record::CheckpointBarrier;
use snapsim_core::trace::EngineEvent;
use snapsim_scenarios::profiles::{schedule, tm_crash, FaultProfile};
use snapsim_scenarios::{Catalog, Draws, Scenario};
use snapsim_sim::check::{Checker, JudgedRun, Judgement, Property, Violation};
use snapsim_sim::faults::FaultSchedule;
use snapsim_sim::rng::SimRng;
use snapsim_sim::trace::{TraceEntry, TraceEvent};
use std::collections::BTreeMap;

/// snapsim's catalog with this crate's additions.
pub fn catalog() -> Catalog {
    Catalog::builtin()
        .with_algorithm(EagerSnapshot)
        .with_checker(CommitOrder)
        .with_profile(FaultProfile::new(
            "late-crash",
            "one TaskManager crashes between 400 and 700 ms, after several checkpoints completed",
            late_crash,
        ))
        .with_scenario(Scenario::new(
            "fan-in",
            "3 sources (p=3) → keyBy sum (p=2) → 2PC sink (p=2), 6,000 records, checkpoints every 40 ms, on files",
            "late-crash",
            fan_in,
        ))
        .with_command("cargo run --release -p snapsim-example --example snapsim-example --")
}

/// Snapshots on the first barrier of a checkpoint, blocking nothing and recording nothing:
/// what the other channels deliver before their barrier is in no snapshot, so a restore loses
/// it. A weak algorithm on purpose, to show the checkers catch it.
pub struct EagerSnapshot;

impl SnapshotAlgorithm for EagerSnapshot {
    fn name(&self) -> &str {
        "eager-snapshot"
    }

    fn description(&self) -> &str {
        "(example crate) snapshot on the first barrier, block nothing, record nothing; claims exactly-once and is wrong"
    }

    fn guarantee(&self) -> Guarantee {
        Guarantee::ExactlyOnce
    }

    fn handler(&self, _options: &CheckpointConfig, _channels: u16) -> Box<dyn BarrierHandler> {
        Box::new(EagerHandler { newest: None })
    }
}

/// The handler of [`EagerSnapshot`] at one task.
#[derive(Debug)]
struct EagerHandler {
    /// The newest checkpoint this task snapshotted or aborted.
    newest: Option<CheckpointId>,
}

impl EagerHandler {
    fn is_new(&self, checkpoint: CheckpointId) -> bool {
        self.newest.is_none_or(|newest| checkpoint > newest)
    }
}

impl BarrierHandler for EagerHandler {
    fn on_barrier(
        &mut self,
        _channel: ChannelIndex,
        barrier: CheckpointBarrier,
        _now: Tick,
    ) -> BarrierActions {
        if !self.is_new(barrier.id) {
            return BarrierActions::default();
        }
        self.newest = Some(barrier.id);
        BarrierActions {
            triggered: Some(barrier),
            ..BarrierActions::default()
        }
    }

    fn on_cancel_marker(
        &mut self,
        _channel: ChannelIndex,
        checkpoint: CheckpointId,
    ) -> BarrierActions {
        if !self.is_new(checkpoint) {
            return BarrierActions::default();
        }
        self.newest = Some(checkpoint);
        let reason = CheckpointFailureReason::DeclinedOnCancellationBarrier;
        BarrierActions {
            aborted: vec![(checkpoint, reason)],
            ..BarrierActions::default()
        }
    }

    fn is_blocked(&self, _channel: ChannelIndex) -> bool {
        false
    }
}

/// Each sink subtask commits its transactions in the order it began them. A deployment
/// starts over: a restored sink first commits again the transactions its snapshot holds, which
/// may be older than ones committed before the failure (re-commits are idempotent).
pub struct CommitOrder;

impl Checker for CommitOrder {
    fn property(&self) -> Property {
        Property::named("commit-order")
    }

    fn description(&self) -> &str {
        "(example crate) between deployments, each sink subtask commits its transactions in the order it began them"
    }

    fn judge<'r>(&self, run: &'r JudgedRun<'r>) -> Box<dyn Judgement<'r> + 'r> {
        Box::new(CommitOrderJudgement {
            plan: run.plan,
            highest: BTreeMap::new(),
            violation: None,
        })
    }
}

/// One run's judgement: it sees each trace entry once.
struct CommitOrderJudgement<'r> {
    plan: &'r ExecutionPlan,
    /// The newest transaction each sink subtask committed since the last deployment.
    highest: BTreeMap<TaskId, u64>,
    /// The first out-of-order commit (one is enough to show the property broken).
    violation: Option<Violation>,
}

impl<'r> Judgement<'r> for CommitOrderJudgement<'r> {
    fn observe(&mut self, entry: &'r TraceEntry) {
        let TraceEvent::Engine(event) = &entry.event else {
            return;
        };
        let (task, transaction) = match event {
            EngineEvent::Deployed { .. } => {
                self.highest.clear();
                return;
            }
            EngineEvent::Committed { task, transaction } => (task, transaction),
            _ => return,
        };
        let before = self.highest.entry(*task).or_insert(transaction.sequence);
        if transaction.sequence < *before && self.violation.is_none() {
            let name = &self.plan.tasks[task.index()].name;
            let message = format!("{name} committed {transaction} after transaction #{before}");
            let property = Property::named("commit-order");
            self.violation = Some(Violation::new(property, message, Some(entry.at)));
        }
        *before = (*before).max(transaction.sequence);
    }

    fn finish(self: Box<Self>) -> Vec<Violation> {
        self.violation.into_iter().collect()
    }
}

/// One TaskManager crashes between 400 and 700 ms and restarts 50–400 ms later.
pub fn late_crash(rng: &mut SimRng, task_managers: u16) -> FaultSchedule {
    schedule(tm_crash(rng, task_managers, (400, 700)))
}

/// Three sources (one subtask each) into a keyed running sum and a 2PC sink: every sum task
/// has three input channels to align.
fn fan_in(draws: &mut Draws) -> (JobGraph, ClusterConfig) {
    let mut job = JobGraph::new("fan-in");
    let log = snapsim_scenarios::log(&mut draws.workload, 3, 6_000, 48);
    let source = job.add(
        "source",
        OperatorKind::Source {
            log,
            records_per_tick: 2,
        },
        3,
    );
    let sum = job.add("sum", OperatorKind::KeyedAggregate(AggregateFn::Sum), 2);
    let sink = job.add("sink", OperatorKind::TwoPhaseCommitSink, 2);
    job.connect(source, sum, Partitioning::KeyBy);
    job.connect(sum, sink, Partitioning::Forward);
    job.checkpoint.interval_ticks = Some(40);
    job.checkpoint.directory = Some("checkpoints".to_string());
    job.restart = RestartStrategyConfig::FixedDelay {
        attempts: 10,
        delay_ticks: 100,
    };
    let cluster = snapsim_scenarios::cluster(&mut draws.timing, 2, 40);
    (job, cluster)
}
