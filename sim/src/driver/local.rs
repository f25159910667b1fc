//! The in-process driver: every node of a small cluster in one struct, messages delivered
//! after a fixed latency in send order, virtual time jumping to the next event. No madsim, no
//! faults but the crashes and restarts a test asks for. It hosts the roles in the same
//! [`NodeHost`] and serves storage with the same `StorageService` as the madsim driver, and
//! records the same [`TraceEntry`]s, so the checkers can read its runs. The failure-free
//! oracle and the experiments that need no faults run here: it is the cheapest driver.

use super::host::{NodeHost, Wake};
use super::storage::{Collected, StorageService};
use crate::check::{self, Checker, Ending, JudgedRun, Property, Violation};
use crate::disk::Files;
use crate::model::ReferenceModel;
use crate::trace::{TraceEntry, TraceEvent};
use crate::world::SETTLE_TICKS;
use futures::FutureExt;
use snapsim_core::cluster::ClusterConfig;
use snapsim_core::ids::{TaskManagerId, Tick};
use snapsim_core::job::{ExecutionPlan, JobGraph};
use snapsim_core::jobmanager::JobManager;
use snapsim_core::messages::{Address, Message, Node, Outbox};
use snapsim_core::sink::SinkSystem;
use snapsim_core::storage::{
    StorageError, StorageOp, StoragePath, StorageReply, StorageRequest, StorageResponse,
};
use snapsim_core::taskmanager::TaskManager;
use snapsim_core::trace::{EngineEvent, JobStatus};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

/// Every node of a small cluster, driven in virtual time.
pub struct LocalCluster {
    plan: Arc<ExecutionPlan>,
    config: ClusterConfig,
    pub job_manager: NodeHost<JobManager>,
    pub task_managers: Vec<NodeHost<TaskManager>>,
    /// The external sink system.
    pub sink: NodeHost<SinkSystem>,
    storage: StorageService<RefCell<Files>, Collected>,
    pub trace: Vec<TraceEntry>,
    /// Whether `trace` is kept (a run whose trace nobody reads need not keep it).
    tracing: bool,
    now: Tick,
    latency_ticks: u64,
    /// Messages on their way, in delivery order: (when, from, to, message). Every message
    /// takes the same latency and time never goes back, so sending order is delivery order.
    in_flight: VecDeque<(Tick, Address, Address, Message)>,
    down: BTreeSet<Address>,
}

impl LocalCluster {
    /// Starts every node at time 0.
    pub fn start(plan: ExecutionPlan, cluster: ClusterConfig) -> LocalCluster {
        let plan = Arc::new(plan);
        let task_managers = cluster
            .task_manager_ids()
            .map(|id| NodeHost::new(TaskManager::new(id, plan.clone(), cluster.clone())))
            .collect();
        let mut local = LocalCluster {
            plan: plan.clone(),
            config: cluster.clone(),
            job_manager: NodeHost::new(JobManager::new(plan, cluster)),
            task_managers,
            sink: NodeHost::new(SinkSystem::default()),
            storage: StorageService {
                disk: RefCell::default(),
                world: Collected::default(),
            },
            trace: Vec::new(),
            tracing: true,
            now: Tick(0),
            latency_ticks: 1,
            in_flight: VecDeque::new(),
            down: BTreeSet::new(),
        };
        for address in local.hosts() {
            local.restart(address);
        }
        local
    }

    /// The cluster without its trace: for a run read only by its output and end (the
    /// failure-free oracle), which then neither grows nor frees a trace of every event.
    pub fn without_trace(mut self) -> LocalCluster {
        self.tracing = false;
        self.trace = Vec::new();
        self
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

    /// Starts a node again with empty volatile state (storage and the sink system keep theirs).
    pub fn restart(&mut self, address: Address) {
        self.down.remove(&address);
        let now = self.now;
        if let Some(host) = self.host(address) {
            let out = host.start(now);
            self.carry_out(address, out);
        }
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

    /// The engine's events, in order, without time and node.
    pub fn events(&self) -> impl Iterator<Item = &EngineEvent> {
        self.trace.iter().filter_map(|entry| match &entry.event {
            TraceEvent::Engine(event) => Some(event),
            _ => None,
        })
    }

    /// Executes `op` on checkpoint storage and traces what storage did: each request a node
    /// sends, or a test's own operation (to plant, corrupt or remove a file), as an operator
    /// with access to the file system would.
    pub fn storage(&mut self, op: StorageOp) -> Result<StorageReply, StorageError> {
        let request = StorageRequest {
            request: 0,
            op,
            deadline: None,
        };
        self.serve(request)
    }

    /// Serves a node's storage request now, tracing what storage did.
    fn serve(&mut self, request: StorageRequest) -> Result<StorageReply, StorageError> {
        let done = self.storage.serve(request, self.now).now_or_never();
        let result = done.expect("storage on plain files completes when called");
        let events = std::mem::take(&mut *self.storage.world.0.borrow_mut());
        for event in events {
            self.record(Address::Storage, TraceEvent::Storage(event));
        }
        result
    }

    /// The files in checkpoint storage, durable bytes, in path order.
    pub fn files(&self) -> BTreeMap<StoragePath, Vec<u8>> {
        (self.durable_files().into_iter())
            .map(|(path, bytes)| {
                (
                    StoragePath::new(path).expect("written at valid paths"),
                    bytes,
                )
            })
            .collect()
    }

    /// The files in checkpoint storage as [`crate::disk::SimDisk::durable_files`] gives them.
    pub fn durable_files(&self) -> Vec<(String, Vec<u8>)> {
        self.storage.disk.borrow().durable()
    }

    /// Puts `files` in checkpoint storage, durable: what an earlier job left there.
    pub fn install(&mut self, files: &[(String, Vec<u8>)]) {
        self.storage.disk.borrow_mut().install(files);
    }

    /// What `checkers` find in this run of `job` (the graph its plan was built from): the
    /// judgement a simulated run gets, for a unit test that crashes nodes by hand. The cluster
    /// first runs on until the job's clean-up settled (as a simulated run does after the job's
    /// end); the oracle is the job without its seeded bugs, run here without crashes. A job
    /// that did not finish is a `liveness` violation, and its output is not judged.
    pub fn judge(&mut self, job: &JobGraph, checkers: &[Arc<dyn Checker>]) -> Vec<Violation> {
        let status = self.job_manager.status();
        if status.is_terminal() {
            self.run_until(self.now.after(SETTLE_TICKS));
        }
        let mut clean_job = job.clone();
        clean_job.bugs.clear();
        let model = ReferenceModel::new(&clean_job);
        let clean = clean_job
            .build()
            .expect("the cluster's plan was built from it");
        let mut oracle = LocalCluster::start(clean.clone(), self.config.clone()).without_trace();
        let oracle_status = oracle.run_to_end(Tick(u64::MAX));
        assert_eq!(oracle_status, JobStatus::Finished, "the oracle finishes");
        let committed = self.sink.committed();
        let files = self.storage.disk.borrow().list("");
        let run = JudgedRun {
            plan: &self.plan,
            clean: &clean,
            model: &model,
            oracle: oracle.sink.committed(),
            committed,
            actual: &check::outputs(committed, &self.plan),
            expected: &check::outputs(oracle.sink.committed(), &clean),
            anomalies: self.sink.anomalies(),
            sink_log: self.sink.log(),
            trace: &self.trace,
            own_from: 0,
            files: &files,
            terminated: status.is_terminal().then_some(status),
            ending: match status {
                JobStatus::Finished => Ending::Finished,
                _ => Ending::NotJudged,
            },
            first_trigger_delay: self.config.first_trigger_delay_ticks,
            replays: false,
        };
        let mut violations = check::run_checkers(&run, checkers);
        if status != JobStatus::Finished {
            let message = format!("the job did not finish: it is {status:?} at {}", self.now);
            violations.push(Violation::new(Property::Liveness, message, Some(self.now)));
        }
        violations
    }

    /// The roles, in the order they start and are ticked in.
    fn hosts(&self) -> impl Iterator<Item = Address> + use<> {
        let task_managers = 0..self.task_managers.len() as u16;
        [Address::SinkSystem, Address::JobManager]
            .into_iter()
            .chain(task_managers.map(|i| Address::TaskManager(TaskManagerId(i))))
    }

    /// The role at `address`; `None` for storage, which is a service, not a role.
    fn host(&mut self, address: Address) -> Option<&mut NodeHost<dyn Node>> {
        Some(match address {
            Address::JobManager => &mut self.job_manager,
            Address::TaskManager(id) => &mut self.task_managers[usize::from(id.0)],
            Address::SinkSystem => &mut self.sink,
            Address::Storage => return None,
        })
    }

    fn next_event_time(&mut self) -> Option<Tick> {
        let message = self.in_flight.front().map(|&(at, ..)| at);
        let now = self.now;
        if message.is_some_and(|at| at <= now) {
            return Some(now); // A message is due: no deadline can come sooner.
        }
        let mut tick = None::<Tick>;
        for address in self.hosts() {
            if self.down.contains(&address) {
                continue;
            }
            let at = match self.host(address).expect("a role").wake(now) {
                Wake::Now => now,
                Wake::At(at) => at,
                Wake::Never => continue,
            };
            tick = Some(tick.map_or(at, |t| t.min(at)));
        }
        [message, tick]
            .into_iter()
            .flatten()
            .min()
            .map(|at| at.max(now))
    }

    fn step(&mut self, at: Tick) {
        self.now = at;
        if self.in_flight.front().is_some_and(|&(due, ..)| due <= at) {
            let (_, from, to, message) = self.in_flight.pop_front().expect("just seen");
            if !self.down.contains(&to) {
                self.deliver(from, to, message);
            }
            return;
        }
        for address in self.hosts() {
            if self.down.contains(&address) {
                continue;
            }
            let host = self.host(address).expect("a role");
            if host.wake(at) == Wake::Now {
                let out = host.tick(at);
                self.carry_out(address, out);
            }
        }
    }

    fn deliver(&mut self, from: Address, to: Address, message: Message) {
        let now = self.now;
        let Some(host) = self.host(to) else {
            let Message::Storage(request) = message else {
                unreachable!("storage only serves storage requests, got {message:?}")
            };
            let request_id = request.request;
            let result = self.serve(request);
            let response = StorageResponse {
                request: request_id,
                result,
            };
            self.send(Address::Storage, from, Message::StorageResult(response));
            return;
        };
        let out = host.deliver(now, from, message);
        self.carry_out(to, out);
    }

    fn record(&mut self, node: Address, event: TraceEvent) {
        if !self.tracing {
            return;
        }
        let at = self.now;
        self.trace.push(TraceEntry { at, node, event });
    }

    fn carry_out(&mut self, from: Address, out: Outbox) {
        for event in out.events {
            self.record(from, TraceEvent::Engine(event));
        }
        let at = self.now.after(self.latency_ticks);
        for (to, message) in out.messages {
            debug_assert!(self.in_flight.back().is_none_or(|&(last, ..)| last <= at));
            self.in_flight.push_back((at, from, to, message));
        }
    }
}

/// The [`keyed_sum_job`](snapsim_core::testing::keyed_sum_job) of 800 records on files under
/// `ckpt/` with `retention`, checkpointing every 20 ms, cancelled at 90 ms; the cluster once
/// the cancellation settled.
pub fn cancelled_keyed_sum(
    retention: snapsim_core::retention::ExternalizedRetention,
) -> LocalCluster {
    let mut job = snapsim_core::testing::keyed_sum_job(800, Some(20));
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
