//! One run: the engine's nodes on a madsim runtime, an adversary, and the result.
//!
//! Each run gets its own OS thread and its own `Runtime::with_seed_and_config`, because madsim
//! seeds std's hash order only for the first runtime on a thread (madsim-rs/madsim#240).
//! The supervisor (madsim's main task) creates the nodes (see [`crate::driver`]), applies the
//! [`FaultSchedule`] in virtual time, heals everything at `heal_at`, and ends the run when the
//! job terminates, the deadline passes, or the input bound is hit. The sink system keeps its
//! state in the world (it is the external system, and the oracle's evidence); checkpoint
//! storage keeps its files on the storage node's [`SimDisk`], with real durability rules.

use crate::disk::SimDisk;
use crate::driver::nodes;
use crate::faults::Fault;
use crate::rng::{SimRng, Stream};
use crate::trace::{trace_hash, MessageRecord, StorageEvent, TraceEntry, TraceEvent};
use crate::world::{lock, Clock, SharedWorld, SlowLink, SlowNode, World};
use crate::world::{CrashTrigger, SETTLE_TICKS};
pub use crate::world::{Handover, RunConfig};
use futures::channel::mpsc;
use futures::StreamExt;
use madsim::net::NetSim;
use madsim::runtime::{Handle, Runtime};
use madsim::task::NodeId;
use madsim::time::timeout;
use serde::{Deserialize, Serialize};
use snapsim_core::ids::Tick;
use snapsim_core::messages::{Address, Message};
use snapsim_core::probes::{self, ProbeSet};
use snapsim_core::sink::{CommittedRecord, SinkAnomaly, TransactionEnd, TransactionId};
use snapsim_core::trace::JobStatus;
use std::any::Any;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often the supervisor looks at the job's status when no fault is due.
const SUPERVISOR_POLL_TICKS: u64 = 10;
/// The default bound on inputs per run: far above what any built-in scenario needs.
pub const INPUTS_MAX_DEFAULT: u64 = 20_000_000;

/// How a run ended, from the harness's point of view (checkers judge correctness after).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RunEnd {
    /// The job reached a terminal status.
    Terminated(JobStatus),
    /// The job did not finish by the schedule's deadline.
    TimedOut,
    /// The nodes handled more inputs than the bound allows.
    InputLimit(u64),
    /// The engine panicked (an assertion failed): a bug.
    Panicked(String),
}

/// What a run produced.
#[derive(Clone, Debug)]
pub struct RunResult {
    pub seed: u64,
    /// How it ended.
    pub end: RunEnd,
    /// Virtual time at the end.
    pub virtual_ticks: u64,
    /// The committed output of the sink system.
    pub committed: Vec<CommittedRecord>,
    /// Requests the sink system saw that a correct sink never makes.
    pub anomalies: Vec<SinkAnomaly>,
    /// The sink system's log of the transactions it committed or aborted.
    pub sink_log: Vec<TransactionEnd>,
    /// Transactions holding records that were neither committed nor aborted.
    pub dangling_transactions: Vec<TransactionId>,
    /// The ordered trace.
    pub trace: Vec<TraceEntry>,
    /// Its hash.
    pub trace_hash: u64,
    /// The storage node's files at the end (durable or not), after the clean-up that follows
    /// the job's end settled.
    pub files: Vec<String>,
    /// The engine's coverage probes the run reached (none when it panicked).
    pub probes: ProbeSet,
    /// What a following run needs, when asked for and the run did not panic.
    pub handover: Option<Arc<Handover>>,
    /// The messages between nodes, when asked for ([`RunConfig::logs_messages`]); this run's
    /// only, not an earlier job's it follows.
    pub messages: Vec<MessageRecord>,
}

/// Runs one simulation on a fresh OS thread and returns its result.
///
/// Panics if the schedule does not fit the cluster: validate it first
/// ([`FaultSchedule::validate`]).
pub fn run(config: RunConfig) -> RunResult {
    if let Err(error) = config.schedule.validate(&config.cluster) {
        panic!("invalid fault schedule: {error}");
    }
    let seed = config.seed;
    let before = config.after.clone();
    let (crash_requests, crash_requested) = mpsc::unbounded();
    let world = new_world(&config, crash_requests);
    let shared = world.clone();
    let thread = std::thread::Builder::new()
        .name(format!("snapsim-seed-{seed}"))
        // A fresh thread per run: madsim seeds std's hash order only for a thread's first runtime.
        .spawn(move || {
            let mut runtime = Runtime::with_seed_and_config(seed, madsim::Config::default());
            runtime.add_simulator::<SimDisk>();
            // A wall of virtual time beyond the deadline: the supervisor stops first.
            let deadline = config.schedule.deadline().after(start_at(&config).0);
            runtime.set_time_limit(Duration::from_millis(
                deadline.0.saturating_mul(2).max(1_000),
            ));
            let ended = runtime.block_on(supervise(config, shared, crash_requested));
            // The run had this thread to itself: every probe on it is the run's.
            (ended, probes::take())
        })
        .expect("the OS gives us a thread");
    let joined = thread.join();
    debug_assert!(
        joined.is_err() || Arc::strong_count(&world) == 1,
        "the run's tasks outlived it"
    );
    // A panic may leave the lock poisoned; the trace up to the panic is still what happened.
    let world = world
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let (ended, probes) = match joined {
        Ok(ended) => ended,
        Err(panic) => (panicked(panic.as_ref(), &world), ProbeSet::default()),
    };
    let probes = before.map_or(probes, |b| b.probes.union(probes));
    run_result(seed, ended, probes, &world)
}

/// The world a run starts in: empty, or what the run it follows left (its trace and sink).
fn new_world(
    config: &RunConfig,
    crash_requests: mpsc::UnboundedSender<(Address, u64)>,
) -> SharedWorld {
    let before = config.after.as_ref();
    Arc::new(Mutex::new(World {
        trace: before.map(|b| b.trace.clone()).unwrap_or_default(),
        sink: before.map(|b| b.sink.clone()).unwrap_or_default(),
        status: None,
        down: BTreeSet::new(),
        crashes: BTreeMap::new(),
        slow_links: BTreeMap::new(),
        losing_rpcs: BTreeMap::new(),
        slow_nodes: BTreeMap::new(),
        crash_triggers: Vec::new(),
        crash_requests,
        network_rng: SimRng::new(config.seed, Stream::Network),
        inputs: 0,
        inputs_max: config.inputs_max,
        inboxes: BTreeMap::new(),
        messages: config.logs_messages.then(Vec::new),
    }))
}

/// How a run whose thread panicked ended: at its last trace entry, with the panic's message.
fn panicked(panic: &(dyn Any + Send), world: &World) -> Ended {
    let message = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "panic without a message".to_string());
    let last = world.trace.last().map_or(0, |entry| entry.at.0);
    Ended {
        end: RunEnd::Panicked(message),
        virtual_ticks: last,
        files: Vec::new(),
        settled_at: Tick(last),
        durable: None,
    }
}

/// The result of a run that ended as `ended`, reached `probes` and left `world`.
fn run_result(seed: u64, ended: Ended, probes: ProbeSet, world: &World) -> RunResult {
    let handover = ended.durable.map(|files| {
        Arc::new(Handover {
            trace: world.trace.clone(),
            ended_at: ended.settled_at,
            files,
            sink: world.sink.clone(),
            probes,
        })
    });
    RunResult {
        seed,
        end: ended.end,
        virtual_ticks: ended.virtual_ticks,
        committed: world.sink.committed().to_vec(),
        anomalies: world.sink.anomalies().to_vec(),
        sink_log: world.sink.log().to_vec(),
        dangling_transactions: world.sink.dangling_transactions(),
        trace_hash: trace_hash(&world.trace),
        trace: world.trace.clone(),
        files: ended.files,
        probes,
        handover,
        messages: world.messages.clone().unwrap_or_default(),
    }
}

/// Where a run's time starts: 0, or where the run it follows ended.
fn start_at(config: &RunConfig) -> Tick {
    config
        .after
        .as_ref()
        .map_or(Tick(0), |before| before.ended_at)
}

/// How the supervisor ended a run.
struct Ended {
    end: RunEnd,
    virtual_ticks: u64,
    /// The storage node's files at the end.
    files: Vec<String>,
    /// When the supervisor stopped.
    settled_at: Tick,
    /// The storage node's durable files, for a run that follows.
    durable: Option<Vec<(String, Vec<u8>)>>,
}

/// The supervisor's view of the cluster: node ids and what it must undo at heal time.
struct Adversary {
    handle: Handle,
    disk: Arc<SimDisk>,
    nodes: BTreeMap<Address, NodeId>,
    addresses: BTreeMap<NodeId, Address>,
    clogged_links: BTreeSet<(Address, Address)>,
    clogged_nodes: BTreeSet<Address>,
    world: SharedWorld,
    clock: Clock,
}

impl Adversary {
    fn trace(&self, node: Address, event: TraceEvent) {
        lock(&self.world).record(self.clock.now(), node, event);
    }

    /// Moves what the disk did (crash outcomes, losses) into the trace.
    fn trace_disk(&self) {
        for (node, event) in self.disk.take_events() {
            let address = self.addresses[&node];
            self.trace(address, TraceEvent::Storage(StorageEvent::Disk(event)));
        }
    }

    fn crash(&self, address: Address) {
        {
            let mut world = lock(&self.world);
            if !world.down.insert(address) {
                return;
            }
            *world.crashes.entry(address).or_default() += 1;
        }
        // kill (not restart) resets the node's network and disk state: madsim calls
        // `Simulator::reset_node` on `Handle::kill` only.
        self.handle.kill(self.nodes[&address]);
        self.trace(address, TraceEvent::Crash);
        self.trace_disk();
    }

    fn restart(&self, address: Address) {
        if !lock(&self.world).down.remove(&address) {
            return;
        }
        self.handle.restart(self.nodes[&address]);
        self.trace(address, TraceEvent::Restart);
    }

    fn clog_link(&mut self, from: Address, to: Address, clogged: bool) {
        let (src, dst) = (self.nodes[&from], self.nodes[&to]);
        if clogged {
            NetSim::current().clog_link(src, dst);
            self.clogged_links.insert((from, to));
        } else {
            NetSim::current().unclog_link(src, dst);
            self.clogged_links.remove(&(from, to));
        }
    }

    fn apply(&mut self, fault: Fault) {
        match &fault {
            Fault::Crash(address) => return self.crash(*address),
            Fault::Restart(address) => return self.restart(*address),
            Fault::ClogLink { .. }
            | Fault::UnclogLink { .. }
            | Fault::Partition { .. }
            | Fault::HealPartition { .. }
            | Fault::ClogNode(_)
            | Fault::UnclogNode(_) => self.clog(&fault),
            Fault::SlowLink { .. } | Fault::LoseCheckpointRpcs { .. } | Fault::SlowNode { .. } => {
                self.slow_down(&fault)
            }
            Fault::DiskFaults(_)
            | Fault::FailNextDiskOp { .. }
            | Fault::CorruptNextRead { .. }
            | Fault::LoseFiles { .. }
            | Fault::CrashOnWrite { .. } => self.break_storage(&fault),
            Fault::TriggerSavepoint => self.client_command(Message::TriggerSavepoint),
            Fault::CancelJob => self.client_command(Message::CancelJob),
        }
        let node = fault.addresses()[0];
        self.trace(node, TraceEvent::Fault(fault));
        self.trace_disk();
    }

    /// Applies a fault that clogs or unclogs links or nodes in madsim's network.
    fn clog(&mut self, fault: &Fault) {
        match fault {
            &Fault::ClogLink { from, to } => self.clog_link(from, to, true),
            &Fault::UnclogLink { from, to } => self.clog_link(from, to, false),
            &Fault::Partition { a, b } => {
                self.clog_link(a, b, true);
                self.clog_link(b, a, true);
            }
            &Fault::HealPartition { a, b } => {
                self.clog_link(a, b, false);
                self.clog_link(b, a, false);
            }
            Fault::ClogNode(address) => {
                NetSim::current().clog_node(self.nodes[address]);
                self.clogged_nodes.insert(*address);
            }
            Fault::UnclogNode(address) => {
                NetSim::current().unclog_node(self.nodes[address]);
                self.clogged_nodes.remove(address);
            }
            _ => unreachable!("{fault:?} does not clog the network"),
        }
    }

    /// Applies a fault that slows links or nodes down, or loses RPCs, for a while: the world
    /// holds it and the nodes look it up.
    fn slow_down(&self, fault: &Fault) {
        let now = self.clock.now();
        match *fault {
            Fault::SlowLink {
                from,
                to,
                extra_ticks,
                for_ticks,
            } => {
                let slow = SlowLink {
                    until: now.after(for_ticks),
                    extra_ticks,
                };
                lock(&self.world).slow_links.insert((from, to), slow);
            }
            Fault::LoseCheckpointRpcs {
                from,
                to,
                for_ticks,
            } => {
                let until = now.after(for_ticks);
                lock(&self.world).losing_rpcs.insert((from, to), until);
            }
            Fault::SlowNode {
                node,
                per_input_ticks,
                for_ticks,
            } => {
                let slow = SlowNode {
                    until: now.after(for_ticks),
                    per_input_ticks,
                };
                lock(&self.world).slow_nodes.insert(node, slow);
            }
            _ => unreachable!("{fault:?} does not slow anything down"),
        }
    }

    /// Applies a fault of the storage node's disk, or arms a crash on a write.
    fn break_storage(&self, fault: &Fault) {
        let storage = self.nodes[&Address::Storage];
        match fault {
            Fault::DiskFaults(faults) => self.disk.set_faults(storage, faults.clone()),
            Fault::FailNextDiskOp { op, path_contains } => {
                self.disk.fail_next(storage, *op, path_contains.clone())
            }
            Fault::CorruptNextRead { path_contains } => {
                self.disk.corrupt_next_read(storage, path_contains.clone())
            }
            Fault::LoseFiles { path_prefix } => self.disk.lose(storage, path_prefix),
            Fault::CrashOnWrite {
                path_contains,
                moment,
                node,
                down_ticks,
            } => lock(&self.world).crash_triggers.push(CrashTrigger {
                path_contains: path_contains.clone(),
                moment: *moment,
                node: *node,
                down_ticks: *down_ticks,
            }),
            _ => unreachable!("{fault:?} does not touch storage"),
        }
    }

    /// A client's command to the JobManager; lost while it is down.
    fn client_command(&self, command: Message) {
        let world = lock(&self.world);
        if world.down.contains(&Address::JobManager) {
            return;
        }
        if let Some(inbox) = world.inboxes.get(&Address::JobManager) {
            // A JobManager that is going away drops it, as a real one would.
            let _ = inbox.unbounded_send((Address::JobManager, command, None));
        }
    }

    /// The end of the safety phase: undo every fault and bring every node back.
    fn heal(&mut self) {
        let net = NetSim::current();
        for (from, to) in std::mem::take(&mut self.clogged_links) {
            net.unclog_link(self.nodes[&from], self.nodes[&to]);
        }
        for address in std::mem::take(&mut self.clogged_nodes) {
            net.unclog_node(self.nodes[&address]);
        }
        {
            let mut world = lock(&self.world);
            world.slow_links.clear();
            world.losing_rpcs.clear();
            world.slow_nodes.clear();
            world.crash_triggers.clear();
        }
        self.disk.heal(self.nodes[&Address::Storage]);
        self.trace(Address::JobManager, TraceEvent::Healed);
        let down: Vec<Address> = lock(&self.world).down.iter().copied().collect();
        for address in down {
            self.restart(address);
        }
    }
}

async fn supervise(
    config: RunConfig,
    world: SharedWorld,
    mut crash_requested: mpsc::UnboundedReceiver<(Address, u64)>,
) -> Ended {
    let handle = Handle::current();
    let clock = Clock::start();
    // A run that follows another starts when that one ended, on the same clock.
    let offset = start_at(&config).0;
    if offset > 0 {
        madsim::time::sleep(Duration::from_millis(offset)).await;
    }
    let disk = SimDisk::current();
    disk.seed(config.seed);
    let adversary = start_nodes(&config, &world, &handle, &disk, clock.clone());
    let storage = adversary.nodes[&Address::Storage];
    if let Some(before) = &config.after {
        // Before any node runs: the files are there when the storage node serves its first.
        disk.install(storage, &before.files);
    }
    disk.set_faults(storage, config.schedule.disk.clone());
    let mut supervisor = Supervisor::new(adversary, &config, offset);
    let (end, virtual_ticks) = loop {
        let now = clock.now();
        let (status, inputs) = {
            let world = lock(&world);
            (world.status, world.inputs)
        };
        if let Some(end) = supervisor.run_end(now, status, inputs, config.inputs_max) {
            break end;
        }
        supervisor.apply_faults_due(now);
        let wake = supervisor.wake_at(now);
        let wait = clock.until(wake);
        if let Ok(Some((address, down_ticks))) = timeout(wait, crash_requested.next()).await {
            supervisor.crash_requested(address, down_ticks);
        }
    };
    let files = disk.files(storage);
    let settled_at = clock.now();
    let durable = config.hands_over.then(|| disk.durable_files(storage));
    // madsim does not drop the tasks of a runtime when the runtime is dropped, so every node's
    // state and the world they share would outlive the run (a sweep grew ~650 KB per run).
    // Killed, the nodes' tasks are dropped the next time the executor runs.
    for &id in supervisor.adversary.nodes.values() {
        handle.kill(id);
    }
    madsim::time::sleep(Duration::from_millis(1)).await;
    Ended {
        end,
        virtual_ticks,
        files,
        settled_at,
        durable,
    }
}

/// Creates the cluster's nodes (storage, sink system, JobManager, then the TaskManagers) and
/// the adversary that knows them.
fn start_nodes(
    config: &RunConfig,
    world: &SharedWorld,
    handle: &Handle,
    disk: &Arc<SimDisk>,
    clock: Clock,
) -> Adversary {
    let mut addresses = vec![Address::Storage, Address::SinkSystem, Address::JobManager];
    addresses.extend(config.cluster.task_manager_ids().map(Address::TaskManager));
    let mut adversary = Adversary {
        handle: handle.clone(),
        disk: disk.clone(),
        nodes: BTreeMap::new(),
        addresses: BTreeMap::new(),
        clogged_links: BTreeSet::new(),
        clogged_nodes: BTreeSet::new(),
        world: world.clone(),
        clock: clock.clone(),
    };
    for &address in &addresses {
        let id = nodes::create(handle, address, config, clock.clone(), world.clone());
        adversary.nodes.insert(address, id);
        adversary.addresses.insert(id, address);
    }
    adversary
}

/// The supervisor's loop state: the adversary, the faults due and the phase of the run.
struct Supervisor {
    adversary: Adversary,
    /// Faults due, by time then by order of arrival (scheduled first, then triggered restarts).
    due: BTreeMap<(Tick, u64), Fault>,
    /// The order of arrival the next triggered restart gets.
    order: u64,
    heal_at: Tick,
    deadline: Tick,
    healed: bool,
    /// When the job ended, and how.
    ended: Option<(JobStatus, Tick)>,
}

impl Supervisor {
    /// Schedules `config`'s faults, their times counted from `offset`.
    fn new(adversary: Adversary, config: &RunConfig, offset: u64) -> Self {
        let mut due: BTreeMap<(Tick, u64), Fault> = BTreeMap::new();
        for (order, event) in config.schedule.events.iter().enumerate() {
            due.insert((event.at.after(offset), order as u64), event.fault.clone());
        }
        let order = due.len() as u64;
        Supervisor {
            adversary,
            due,
            order,
            heal_at: config.schedule.heal_at.after(offset),
            deadline: config.schedule.deadline().after(offset),
            healed: false,
            ended: None,
        }
    }

    /// Drops the faults still due and undoes those applied.
    fn heal(&mut self) {
        self.healed = true;
        self.due.clear();
        self.adversary.heal();
    }

    /// Notes the job's end from its `status`, and says how the run ends if it ends `now`: the
    /// job's clean-up settled, the deadline passed, or the nodes handled too many `inputs`.
    fn run_end(
        &mut self,
        now: Tick,
        status: Option<JobStatus>,
        inputs: u64,
        inputs_max: u64,
    ) -> Option<(RunEnd, u64)> {
        if let (None, Some(status)) = (self.ended, status.filter(|s| s.is_terminal())) {
            self.ended = Some((status, now));
            // The adversary stops with the job: its clean-up is judged in a healthy world.
            if !self.healed {
                self.heal();
            }
        }
        if let Some((status, at)) = self.ended {
            if now >= at.after(SETTLE_TICKS) {
                return Some((RunEnd::Terminated(status), at.0));
            }
        } else if now >= self.deadline {
            return Some((RunEnd::TimedOut, now.0));
        }
        if inputs > inputs_max {
            return Some((RunEnd::InputLimit(inputs_max), now.0));
        }
        None
    }

    /// Heals at heal time, and applies every fault due by `now`.
    fn apply_faults_due(&mut self, now: Tick) {
        if !self.healed && now >= self.heal_at {
            self.heal();
        }
        while let Some(entry) = self.due.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let fault = entry.remove();
            self.adversary.apply(fault);
        }
    }

    /// When the supervisor next looks: at the next poll, fault due, heal time or end.
    fn wake_at(&self, now: Tick) -> Tick {
        let end = self
            .ended
            .map_or(self.deadline, |(_, at)| at.after(SETTLE_TICKS));
        let mut wake = now.after(SUPERVISOR_POLL_TICKS).min(end);
        if let Some(((at, _), _)) = self.due.first_key_value() {
            wake = wake.min(*at);
        }
        if !self.healed {
            wake = wake.min(self.heal_at);
        }
        wake
    }

    /// A crash trigger fired: crashes `address` now and restarts it `down_ticks` later.
    fn crash_requested(&mut self, address: Address, down_ticks: u64) {
        // Triggers are cleared at heal time; a request already on its way is dropped too.
        if !self.healed {
            self.adversary.crash(address);
            let restart_at = self.adversary.clock.now().after(down_ticks);
            self.due
                .insert((restart_at, self.order), Fault::Restart(address));
            self.order += 1;
        }
    }
}
