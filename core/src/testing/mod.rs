//! A deterministic in-process driver for tests: every node in one struct, messages delivered
//! after a fixed latency in send order, virtual time jumping to the next event. No madsim.

use crate::cluster::ClusterConfig;
use crate::ids::{TaskManagerId, Tick};
use crate::job::ExecutionPlan;
use crate::jobmanager::JobManager;
use crate::messages::{Address, Message, Node, Outbox, TickGate};
use crate::sink::SinkSystem;
use crate::storage::MemStorage;
use crate::storage_node::StorageNode;
use crate::taskmanager::TaskManager;
use crate::trace::{EngineEvent, JobStatus};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// Every node of a small cluster, driven in virtual time.
pub struct LocalCluster {
    /// The JobManager.
    pub job_manager: JobManager,
    /// The TaskManagers.
    pub task_managers: Vec<TaskManager>,
    /// Checkpoint storage.
    pub storage: StorageNode<MemStorage>,
    /// The external sink system.
    pub sink: SinkSystem,
    /// The trace: (time, node, event).
    pub trace: Vec<(Tick, Address, EngineEvent)>,
    now: Tick,
    latency_ticks: u64,
    in_flight: BTreeMap<(Tick, u64), (Address, Address, Message)>,
    sequence: u64,
    down: BTreeSet<Address>,
    /// Each node's timer rule.
    ticked: BTreeMap<Address, TickGate>,
}

impl LocalCluster {
    /// Starts every node at time 0.
    pub fn start(plan: ExecutionPlan, cluster: ClusterConfig) -> LocalCluster {
        let plan = Arc::new(plan);
        let task_managers = cluster
            .task_manager_ids()
            .map(|id| TaskManager::new(id, plan.clone(), cluster.clone()))
            .collect();
        let mut local = LocalCluster {
            job_manager: JobManager::new(plan, cluster),
            task_managers,
            storage: StorageNode::default(),
            sink: SinkSystem::default(),
            trace: Vec::new(),
            now: Tick(0),
            latency_ticks: 1,
            in_flight: BTreeMap::new(),
            sequence: 0,
            down: BTreeSet::new(),
            ticked: BTreeMap::new(),
        };
        for address in local.addresses() {
            local.restart(address);
        }
        local
    }

    /// Sends `message` from `from` to `to`, as a client would (e.g. a savepoint request).
    pub fn send(&mut self, from: Address, to: Address, message: Message) {
        let mut out = Outbox::default();
        out.send(to, message);
        self.carry_out(from, out);
    }

    /// Virtual time now.
    pub fn now(&self) -> Tick {
        self.now
    }

    /// Stops a node: it loses its volatile state and messages to it are dropped.
    pub fn crash(&mut self, address: Address) {
        self.down.insert(address);
    }

    /// Starts a node again with empty volatile state.
    pub fn restart(&mut self, address: Address) {
        self.down.remove(&address);
        let mut out = Outbox::default();
        let now = self.now;
        self.node(address).on_start(now, &mut out);
        self.carry_out(address, out);
    }

    /// Runs until `until` or until nothing is left to do.
    pub fn run_until(&mut self, until: Tick) {
        while let Some(next) = self.next_event_time() {
            if next > until {
                break;
            }
            self.step(next);
        }
        self.now = self.now.max(until);
    }

    /// Runs until the job reaches a terminal status or `limit` passes; returns the status.
    pub fn run_to_end(&mut self, limit: Tick) -> JobStatus {
        while !self.job_manager.status().is_terminal() {
            match self.next_event_time() {
                Some(next) if next <= limit => self.step(next),
                _ => break,
            }
        }
        self.job_manager.status()
    }

    /// The trace events only, without time and node.
    pub fn events(&self) -> impl Iterator<Item = &EngineEvent> {
        self.trace.iter().map(|(_, _, event)| event)
    }

    fn addresses(&self) -> Vec<Address> {
        let mut addresses = vec![Address::Storage, Address::SinkSystem, Address::JobManager];
        addresses.extend(
            (0..self.task_managers.len() as u16).map(|i| Address::TaskManager(TaskManagerId(i))),
        );
        addresses
    }

    fn node(&mut self, address: Address) -> &mut dyn Node {
        match address {
            Address::JobManager => &mut self.job_manager,
            Address::TaskManager(id) => &mut self.task_managers[usize::from(id.0)],
            Address::Storage => &mut self.storage,
            Address::SinkSystem => &mut self.sink,
        }
    }

    fn next_event_time(&mut self) -> Option<Tick> {
        let message = self.in_flight.keys().next().map(|&(at, _)| at);
        let mut deadline = None::<Tick>;
        for address in self.addresses() {
            if self.down.contains(&address) {
                continue;
            }
            if let Some(at) = self.node(address).next_deadline() {
                let gate = self.ticked.get(&address).copied().unwrap_or_default();
                let at = gate.next_tick(at, self.now);
                deadline = Some(deadline.map_or(at, |d| d.min(at)));
            }
        }
        [message, deadline]
            .into_iter()
            .flatten()
            .min()
            .map(|at| at.max(self.now))
    }

    fn step(&mut self, at: Tick) {
        self.now = at;
        if let Some(entry) = self.in_flight.first_entry() {
            if entry.key().0 <= at {
                let (from, to, message) = entry.remove();
                if !self.down.contains(&to) {
                    let mut out = Outbox::default();
                    self.node(to).on_message(at, from, message, &mut out);
                    self.carry_out(to, out);
                }
                return;
            }
        }
        for address in self.addresses() {
            if self.down.contains(&address) {
                continue;
            }
            let gate = self.ticked.get(&address).copied().unwrap_or_default();
            let due = self
                .node(address)
                .next_deadline()
                .is_some_and(|d| gate.is_due(d, at));
            if due {
                self.ticked.entry(address).or_default().ticked(at);
                let mut out = Outbox::default();
                self.node(address).on_tick(at, &mut out);
                self.carry_out(address, out);
            }
        }
    }

    fn carry_out(&mut self, from: Address, out: Outbox) {
        for event in out.events {
            self.trace.push((self.now, from, event));
        }
        let at = self.now.after(self.latency_ticks);
        for (to, message) in out.messages {
            self.in_flight
                .insert((at, self.sequence), (from, to, message));
            self.sequence += 1;
        }
    }
}

/// A small job for tests: `sources` sources of parallelism 2 over `records` records (keys
/// 0..8), a keyed running sum of parallelism 2, and a two-phase-commit sink.
pub fn keyed_sum_job(records: u64, interval_ticks: Option<u64>) -> crate::job::JobGraph {
    use crate::ids::{EventTime, Key};
    use crate::job::{AggregateFn, JobGraph, OperatorKind, Partitioning, SourceLog};
    use crate::record::SourceRecord;
    let partitions = (0..4u64)
        .map(|p| {
            (0..records / 4)
                .map(|i| SourceRecord {
                    key: Key((i * 7 + p) % 8),
                    value: (i % 13) as i64 + 1,
                    event_time: EventTime(i),
                })
                .collect()
        })
        .collect();
    let log = Arc::new(SourceLog { partitions });
    let mut graph = JobGraph::new("keyed-sum");
    let source = graph.add(
        "source",
        OperatorKind::Source {
            log,
            records_per_tick: 4,
        },
        2,
    );
    let sum = graph.add("sum", OperatorKind::KeyedAggregate(AggregateFn::Sum), 2);
    let sink = graph.add("sink", OperatorKind::TwoPhaseCommitSink, 2);
    graph.connect(source, sum, Partitioning::KeyBy);
    graph.connect(sum, sink, Partitioning::Forward);
    graph.checkpoint.interval_ticks = interval_ticks;
    graph.restart = crate::config::RestartStrategyConfig::FixedDelay {
        attempts: 5,
        delay_ticks: 20,
    };
    graph
}

/// The [`keyed_sum_job`] of 800 records on files under `ckpt/` with `retention`, checkpointing
/// every 20 ms, cancelled at 90 ms; the cluster once the cancellation settled.
pub fn cancelled_keyed_sum(retention: crate::retention::ExternalizedRetention) -> LocalCluster {
    let mut job = keyed_sum_job(800, Some(20));
    job.checkpoint.directory = Some("ckpt".to_string());
    job.checkpoint.retention = retention;
    let plan = job.build().expect("valid job");
    let mut cluster = LocalCluster::start(plan, ClusterConfig::default());
    cluster.run_until(Tick(90));
    cluster.send(Address::JobManager, Address::JobManager, Message::CancelJob);
    assert_eq!(cluster.run_to_end(Tick(5_000)), JobStatus::Canceled);
    cluster.run_until(cluster.now().after(10));
    cluster
}

#[cfg(test)]
mod tests;
