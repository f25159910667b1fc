//! One run: the engine's nodes on a madsim runtime, an adversary, and the result.
//!
//! Each run gets its own OS thread and its own `Runtime::with_seed_and_config`, because madsim
//! seeds std's hash order only for the first runtime on a thread (madsim-rs/madsim#240).
//! The supervisor (madsim's main task) creates the nodes (see [`crate::nodes`]), applies the
//! [`FaultSchedule`] in virtual time, heals everything at `heal_at`, and ends the run when the
//! job terminates, the deadline passes, or the input bound is hit. The sink system keeps its
//! state in the world (it is the external system, and the oracle's evidence); checkpoint
//! storage keeps its files on the storage node's [`SimDisk`], with real durability rules.

use crate::disk::SimDisk;
use crate::faults::{Fault, FaultSchedule};
use crate::nodes::{self, CrashTrigger};
use crate::rng::{SimRng, Stream};
use crate::trace::{trace_hash, StorageEvent, TraceEntry, TraceEvent};
use futures::channel::mpsc;
use futures::StreamExt;
use madsim::net::NetSim;
use madsim::runtime::{Handle, Runtime};
use madsim::task::NodeId;
use madsim::time::{timeout, Instant};
use serde::{Deserialize, Serialize};
use snapsim_core::cluster::ClusterConfig;
use snapsim_core::ids::Tick;
use snapsim_core::job::ExecutionPlan;
use snapsim_core::messages::{Address, Message};
use snapsim_core::probes::{self, ProbeSet};
use snapsim_core::sink::{CommittedRecord, SinkAnomaly, SinkSystem, TransactionId};
use snapsim_core::trace::JobStatus;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often the supervisor looks at the job's status when no fault is due.
const SUPERVISOR_POLL_TICKS: u64 = 10;
/// The default bound on inputs per run: far above what any built-in scenario needs.
pub const INPUTS_MAX_DEFAULT: u64 = 20_000_000;

/// Everything a run needs: a pure function of this and the build gives the result.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// The seed of madsim's runtime (network latencies, task scheduling) and of the disk's and
    /// network's own draws.
    pub seed: u64,
    /// The job.
    pub plan: Arc<ExecutionPlan>,
    /// The cluster.
    pub cluster: ClusterConfig,
    /// The adversary: faults in the safety phase, then the liveness bound.
    pub schedule: FaultSchedule,
    /// A run whose nodes handle more inputs than this ends with a liveness verdict (a livelock
    /// that keeps virtual time nearly still would otherwise never end).
    pub inputs_max: u64,
    /// The run follows an earlier one on the same storage and sink system (a job resumed from
    /// the earlier job's snapshot): its trace goes on from the earlier trace, its time from
    /// the earlier end, and its schedule's times count from there.
    pub after: Option<Arc<Handover>>,
    /// Keep what a following run needs ([`RunResult::handover`]).
    pub hands_over: bool,
}

/// What a run leaves to a run that follows it on the same cluster: see [`RunConfig::after`].
#[derive(Clone, Debug)]
pub struct Handover {
    /// The trace so far.
    pub trace: Vec<TraceEntry>,
    /// When the run ended, after its clean-up settled: the next run starts here.
    pub ended_at: Tick,
    /// The storage node's files, durable bytes only.
    pub files: Vec<(String, Vec<u8>)>,
    /// The sink system: its transactions and committed output.
    pub sink: SinkSystem,
    /// The coverage probes reached so far.
    pub probes: ProbeSet,
}

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
    /// The seed.
    pub seed: u64,
    /// How it ended.
    pub end: RunEnd,
    /// Virtual time at the end.
    pub virtual_ticks: u64,
    /// Inputs (messages and timer wake-ups) the nodes handled.
    pub inputs: u64,
    /// The committed output of the sink system.
    pub committed: Vec<CommittedRecord>,
    /// Requests the sink system saw that a correct sink never makes.
    pub anomalies: Vec<SinkAnomaly>,
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
}

/// A slow link: until when, and the range each message's extra delay is drawn from.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SlowLink {
    pub(crate) until: Tick,
    pub(crate) extra_ticks: (u64, u64),
}

/// A slow node: until when, and how long it takes per input.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SlowNode {
    pub(crate) until: Tick,
    pub(crate) per_input_ticks: u64,
}

/// State shared by the supervisor and the nodes, outliving node crashes.
#[derive(Debug)]
pub(crate) struct World {
    pub(crate) trace: Vec<TraceEntry>,
    pub(crate) sink: SinkSystem,
    pub(crate) status: Option<JobStatus>,
    /// Nodes killed and not restarted: messages to them are lost.
    pub(crate) down: BTreeSet<Address>,
    pub(crate) slow_links: BTreeMap<(Address, Address), SlowLink>,
    /// Links whose checkpoint RPCs are lost, until when.
    pub(crate) losing_rpcs: BTreeMap<(Address, Address), Tick>,
    pub(crate) slow_nodes: BTreeMap<Address, SlowNode>,
    pub(crate) crash_triggers: Vec<CrashTrigger>,
    /// Crashes the storage node asks for (a trigger fired): node and ticks down.
    pub(crate) crash_requests: mpsc::UnboundedSender<(Address, u64)>,
    pub(crate) network_rng: SimRng,
    pub(crate) inputs: u64,
    pub(crate) inputs_max: u64,
    /// Each running node's inbox, for a client's commands.
    pub(crate) inboxes: BTreeMap<Address, mpsc::UnboundedSender<(Address, Message)>>,
}

impl World {
    pub(crate) fn record(&mut self, at: Tick, node: Address, event: TraceEvent) {
        // Logged as it happens (`snapsim run --log`); nothing is formatted unless asked for.
        tracing::debug!(target: "snapsim::trace", "{} {:?} {:?}", at, node, event);
        self.trace.push(TraceEntry { at, node, event });
    }

    /// The extra delay of the next message on a link, drawn when the link is slow.
    pub(crate) fn link_delay(&mut self, from: Address, to: Address, now: Tick) -> u64 {
        match self.slow_links.get(&(from, to)) {
            Some(slow) if now < slow.until => {
                let (low, high) = slow.extra_ticks;
                self.network_rng.between(low, high.max(low))
            }
            _ => 0,
        }
    }

    /// Whether the link loses `message` now.
    pub(crate) fn loses(&self, from: Address, to: Address, message: &Message, now: Tick) -> bool {
        message.is_checkpoint_rpc()
            && self
                .losing_rpcs
                .get(&(from, to))
                .is_some_and(|&until| now < until)
    }

    /// How long a node takes per input now.
    pub(crate) fn node_delay(&self, node: Address, now: Tick) -> u64 {
        match self.slow_nodes.get(&node) {
            Some(slow) if now < slow.until => slow.per_input_ticks,
            _ => 0,
        }
    }
}

pub(crate) type SharedWorld = Arc<Mutex<World>>;

pub(crate) fn lock(world: &SharedWorld) -> std::sync::MutexGuard<'_, World> {
    world
        .lock()
        .expect("the simulation is single-threaded; the lock is never poisoned")
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
    let world: SharedWorld = Arc::new(Mutex::new(World {
        trace: before.as_ref().map(|b| b.trace.clone()).unwrap_or_default(),
        sink: before.as_ref().map(|b| b.sink.clone()).unwrap_or_default(),
        status: None,
        down: BTreeSet::new(),
        slow_links: BTreeMap::new(),
        losing_rpcs: BTreeMap::new(),
        slow_nodes: BTreeMap::new(),
        crash_triggers: Vec::new(),
        crash_requests,
        network_rng: SimRng::new(config.seed, Stream::Network),
        inputs: 0,
        inputs_max: config.inputs_max,
        inboxes: BTreeMap::new(),
    }));
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
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic without a message".to_string());
            let last = world.trace.last().map_or(0, |entry| entry.at.0);
            let ended = Ended {
                end: RunEnd::Panicked(message),
                virtual_ticks: last,
                files: Vec::new(),
                settled_at: Tick(last),
                durable: None,
            };
            (ended, ProbeSet::default())
        }
    };
    let probes = before.map_or(probes, |b| b.probes.union(probes));
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
        inputs: world.inputs,
        committed: world.sink.committed().to_vec(),
        anomalies: world.sink.anomalies().to_vec(),
        dangling_transactions: world.sink.dangling_transactions(),
        trace_hash: trace_hash(&world.trace),
        trace: world.trace.clone(),
        files: ended.files,
        probes,
        handover,
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

/// madsim's virtual time. Inside a madsim runtime `Instant::now` reads the simulated clock,
/// never the wall clock; this is the one place the harness reads it.
#[allow(clippy::disallowed_methods)]
pub(crate) fn virtual_now() -> Instant {
    Instant::now()
}

/// The clock every node shares: ticks are milliseconds since the run began.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Clock(Instant);

impl Clock {
    pub(crate) fn now(self) -> Tick {
        Tick(u64::try_from(self.0.elapsed().as_millis()).expect("virtual time fits u64"))
    }

    pub(crate) fn instant(self, at: Tick) -> Instant {
        self.0 + Duration::from_millis(at.0)
    }
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
        if !lock(&self.world).down.insert(address) {
            return;
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
        let now = self.clock.now();
        let storage = self.nodes[&Address::Storage];
        match &fault {
            Fault::Crash(address) => return self.crash(*address),
            Fault::Restart(address) => return self.restart(*address),
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
            &Fault::SlowLink {
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
            &Fault::LoseCheckpointRpcs {
                from,
                to,
                for_ticks,
            } => {
                let until = now.after(for_ticks);
                lock(&self.world).losing_rpcs.insert((from, to), until);
            }
            &Fault::SlowNode {
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
            Fault::DiskFaults(faults) => self.disk.set_faults(storage, faults.clone()),
            Fault::FailNextDiskOp { op, path_contains } => {
                self.disk.fail_next(storage, *op, path_contains.clone())
            }
            Fault::CorruptNextRead { path_contains } => {
                self.disk.corrupt_next_read(storage, path_contains.clone())
            }
            Fault::LoseFiles { path_prefix } => self.disk.lose(storage, path_prefix),
            Fault::TriggerSavepoint => self.client_command(Message::TriggerSavepoint),
            Fault::CancelJob => self.client_command(Message::CancelJob),
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
        }
        let node = fault.addresses()[0];
        self.trace(node, TraceEvent::Fault(fault));
        self.trace_disk();
    }

    /// A client's command to the JobManager; lost while it is down.
    fn client_command(&self, command: Message) {
        let world = lock(&self.world);
        if world.down.contains(&Address::JobManager) {
            return;
        }
        if let Some(inbox) = world.inboxes.get(&Address::JobManager) {
            // A JobManager that is going away drops it, as a real one would.
            let _ = inbox.unbounded_send((Address::JobManager, command));
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

/// After the job ends, how long the run goes on before the storage node's files are listed, so
/// that the clean-up settles: deletions, and late writes of snapshots that no longer count
/// (longer than a storage request's default timeout).
const SETTLE_TICKS: u64 = 1_500;

async fn supervise(
    config: RunConfig,
    world: SharedWorld,
    mut crash_requested: mpsc::UnboundedReceiver<(Address, u64)>,
) -> Ended {
    let handle = Handle::current();
    let clock = Clock(virtual_now());
    // A run that follows another starts when that one ended, on the same clock.
    let offset = start_at(&config).0;
    if offset > 0 {
        madsim::time::sleep(Duration::from_millis(offset)).await;
    }
    let disk = SimDisk::current();
    disk.seed(config.seed);
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
        clock,
    };
    for &address in &addresses {
        let id = nodes::create(&handle, address, &config, clock, world.clone());
        adversary.nodes.insert(address, id);
        adversary.addresses.insert(id, address);
    }
    let storage = adversary.nodes[&Address::Storage];
    if let Some(before) = &config.after {
        // Before any node runs: the files are there when the storage node serves its first.
        disk.install(storage, &before.files);
    }
    disk.set_faults(storage, config.schedule.disk.clone());
    // Faults due, by time then by order of arrival (scheduled first, then triggered restarts).
    let mut due: BTreeMap<(Tick, u64), Fault> = BTreeMap::new();
    for (order, event) in config.schedule.events.iter().enumerate() {
        due.insert((event.at.after(offset), order as u64), event.fault.clone());
    }
    let mut order = due.len() as u64;
    let heal_at = config.schedule.heal_at.after(offset);
    let deadline = config.schedule.deadline().after(offset);
    let mut healed = false;
    // When the job ended, and how.
    let mut ended: Option<(JobStatus, Tick)> = None;
    let files = |disk: &SimDisk| disk.files(storage);
    let (end, virtual_ticks, files) = loop {
        let now = clock.now();
        let (status, inputs) = {
            let world = lock(&world);
            (world.status, world.inputs)
        };
        if let (None, Some(status)) = (ended, status.filter(|s| s.is_terminal())) {
            ended = Some((status, now));
            // The adversary stops with the job: its clean-up is judged in a healthy world.
            if !healed {
                healed = true;
                due.clear();
                adversary.heal();
            }
        }
        if let Some((status, at)) = ended {
            if now >= at.after(SETTLE_TICKS) {
                break (RunEnd::Terminated(status), at.0, files(&disk));
            }
        } else if now >= deadline {
            break (RunEnd::TimedOut, now.0, files(&disk));
        }
        if inputs > config.inputs_max {
            break (RunEnd::InputLimit(config.inputs_max), now.0, files(&disk));
        }
        if !healed && now >= heal_at {
            healed = true;
            due.clear();
            adversary.heal();
        }
        while let Some(entry) = due.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let fault = entry.remove();
            adversary.apply(fault);
        }
        let end = ended.map_or(deadline, |(_, at)| at.after(SETTLE_TICKS));
        let mut wake = now.after(SUPERVISOR_POLL_TICKS).min(end);
        if let Some(((at, _), _)) = due.first_key_value() {
            wake = wake.min(*at);
        }
        if !healed {
            wake = wake.min(heal_at);
        }
        let wait = clock.instant(wake).saturating_duration_since(virtual_now());
        if let Ok(Some((address, down_ticks))) = timeout(wait, crash_requested.next()).await {
            // Triggers are cleared at heal time; a request already on its way is dropped too.
            if !healed {
                adversary.crash(address);
                due.insert(
                    (clock.now().after(down_ticks), order),
                    Fault::Restart(address),
                );
                order += 1;
            }
        }
    };
    let settled_at = clock.now();
    let durable = config.hands_over.then(|| disk.durable_files(storage));
    // madsim does not drop the tasks of a runtime when the runtime is dropped, so every node's
    // state and the world they share would outlive the run (a sweep grew ~650 KB per run).
    // Killed, the nodes' tasks are dropped the next time the executor runs.
    for &id in adversary.nodes.values() {
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
