//! One run: the engine's nodes on a madsim runtime, a fault schedule, and the result.
//!
//! Each run gets its own OS thread and its own `Runtime::with_seed_and_config`, because madsim
//! seeds std's hash order only for the first runtime on a thread (reference: dst-anchors §0.4).
//! Nodes are madsim nodes; each runs [`node_main`], a loop that feeds messages and deadlines to
//! a sans-I/O [`Node`] and sends its outbox over madsim streams (FIFO per pair of nodes, broken
//! when a node dies). The checkpoint storage and the sink system keep their state outside the
//! nodes (durable), so killing them loses nothing but in-flight work.

use crate::trace::{trace_hash, TraceEntry, TraceEvent};
use futures::channel::mpsc;
use futures::StreamExt;
use madsim::net::Endpoint;
use madsim::runtime::{Handle, Runtime};
use madsim::time::{sleep_until, timeout, Instant};
use serde::{Deserialize, Serialize};
use snapsim_core::cluster::ClusterConfig;
use snapsim_core::ids::{TaskManagerId, Tick};
use snapsim_core::job::ExecutionPlan;
use snapsim_core::jobmanager::JobManager;
use snapsim_core::messages::{Address, Message, Node, Outbox};
use snapsim_core::sink::{CommittedRecord, SinkAnomaly, SinkSystem, TransactionId};
use snapsim_core::storage::{CheckpointStorage, MemStorage, StorageError, StorageOp, StorageReply};
use snapsim_core::storage_node::StorageNode;
use snapsim_core::taskmanager::TaskManager;
use snapsim_core::trace::{EngineEvent, JobStatus};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The port every node listens on.
const PORT: u16 = 7000;
/// How often the supervisor looks at the job's status.
const SUPERVISOR_POLL_TICKS: u64 = 10;

/// A fault the simulation injects at a virtual time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Fault {
    /// Kill a node (it loses volatile state; its connections break).
    Crash(Address),
    /// Start a killed node again.
    Restart(Address),
}

/// A fault at a virtual time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultEvent {
    /// When.
    pub at: Tick,
    /// What.
    pub fault: Fault,
}

/// Everything a run needs: a pure function of this and the build gives the result.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// The seed of madsim's runtime (network latencies, task scheduling).
    pub seed: u64,
    /// The job.
    pub plan: Arc<ExecutionPlan>,
    /// The cluster.
    pub cluster: ClusterConfig,
    /// The faults, in time order.
    pub faults: Vec<FaultEvent>,
    /// A run that has not ended by then ends with a liveness verdict.
    pub ticks_max: u64,
}

/// How a run ended, from the harness's point of view (checkers judge correctness after).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RunEnd {
    /// The job reached a terminal status.
    Terminated(JobStatus),
    /// Virtual time ran out first.
    TimedOut,
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
}

/// State that outlives node crashes: the trace, the storage's objects and the sink system.
#[derive(Debug, Default)]
struct World {
    trace: Vec<TraceEntry>,
    storage: MemStorage,
    sink: SinkSystem,
    status: Option<JobStatus>,
}

type SharedWorld = Arc<Mutex<World>>;

fn lock(world: &SharedWorld) -> std::sync::MutexGuard<'_, World> {
    world
        .lock()
        .expect("the simulation is single-threaded; the lock is never poisoned")
}

/// Storage whose objects live in the world, so a storage-node crash keeps them.
struct WorldStorage(SharedWorld);

impl CheckpointStorage for WorldStorage {
    fn execute(&mut self, op: StorageOp) -> Result<StorageReply, StorageError> {
        lock(&self.0).storage.execute(op)
    }
}

/// The sink system as a node whose state lives in the world.
struct WorldSink(SharedWorld);

impl Node for WorldSink {
    fn on_start(&mut self, _now: Tick, _out: &mut Outbox) {}
    fn on_message(&mut self, now: Tick, from: Address, message: Message, out: &mut Outbox) {
        lock(&self.0).sink.on_message(now, from, message, out);
    }
    fn on_tick(&mut self, _now: Tick, _out: &mut Outbox) {}
    fn next_deadline(&self) -> Option<Tick> {
        None
    }
}

/// Runs one simulation on a fresh OS thread and returns its result.
pub fn run(config: RunConfig) -> RunResult {
    let seed = config.seed;
    let thread = std::thread::Builder::new()
        .name(format!("snapsim-seed-{seed}"))
        // A fresh thread per run: madsim seeds std's hash order only for a thread's first runtime.
        .spawn(move || run_on_this_thread(config))
        .expect("the OS gives us a thread");
    match thread.join() {
        Ok(result) => result,
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic without a message".to_string());
            RunResult {
                seed,
                end: RunEnd::Panicked(message),
                virtual_ticks: 0,
                committed: Vec::new(),
                anomalies: Vec::new(),
                dangling_transactions: Vec::new(),
                trace: Vec::new(),
                trace_hash: 0,
            }
        }
    }
}

fn run_on_this_thread(config: RunConfig) -> RunResult {
    let mut runtime = Runtime::with_seed_and_config(config.seed, madsim::Config::default());
    // A generous wall of virtual time beyond ticks_max: the supervisor stops first.
    runtime.set_time_limit(Duration::from_millis(
        config.ticks_max.saturating_mul(2).max(1_000),
    ));
    let world: SharedWorld = Arc::new(Mutex::new(World::default()));
    let (end, virtual_ticks) = runtime.block_on(supervise(config.clone(), world.clone()));
    let world = Arc::try_unwrap(world)
        .map(|m| m.into_inner().expect("not poisoned"))
        .unwrap_or_else(|shared| {
            // Node tasks may still hold the world; copy what the result needs.
            let guard = lock(&shared);
            World {
                trace: guard.trace.clone(),
                storage: guard.storage.clone(),
                sink: guard.sink.clone(),
                status: guard.status,
            }
        });
    RunResult {
        seed: config.seed,
        end,
        virtual_ticks,
        committed: world.sink.committed().to_vec(),
        anomalies: world.sink.anomalies().to_vec(),
        dangling_transactions: world.sink.dangling_transactions(),
        trace_hash: trace_hash(&world.trace),
        trace: world.trace,
    }
}

fn ip(address: Address) -> IpAddr {
    match address {
        Address::JobManager => IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
        Address::Storage => IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
        Address::SinkSystem => IpAddr::V4(Ipv4Addr::new(10, 0, 0, 3)),
        Address::TaskManager(TaskManagerId(id)) => {
            IpAddr::V4(Ipv4Addr::new(10, 0, 1 + (id >> 8) as u8, (id & 0xff) as u8))
        }
    }
}

/// madsim's virtual time. Inside a madsim runtime `Instant::now` reads the simulated clock,
/// never the wall clock; this is the one place the harness reads it.
#[allow(clippy::disallowed_methods)]
fn virtual_now() -> Instant {
    Instant::now()
}

/// The clock every node shares: ticks are milliseconds since the run began.
#[derive(Clone, Copy)]
struct Clock(Instant);

impl Clock {
    fn now(self) -> Tick {
        Tick(u64::try_from(self.0.elapsed().as_millis()).expect("virtual time fits u64"))
    }

    fn instant(self, at: Tick) -> Instant {
        self.0 + Duration::from_millis(at.0)
    }
}

async fn supervise(config: RunConfig, world: SharedWorld) -> (RunEnd, u64) {
    let handle = Handle::current();
    let clock = Clock(virtual_now());
    let mut addresses = vec![Address::Storage, Address::SinkSystem, Address::JobManager];
    addresses.extend(config.cluster.task_manager_ids().map(Address::TaskManager));
    let mut nodes = BTreeMap::new();
    for &address in &addresses {
        let (plan, cluster, world) = (config.plan.clone(), config.cluster.clone(), world.clone());
        let node = handle
            .create_node()
            .name(address.to_string())
            .ip(ip(address))
            .init(move || {
                let role = make_node(address, plan.clone(), cluster.clone(), world.clone());
                node_main(address, role, clock, world.clone())
            })
            .build();
        nodes.insert(address, node.id());
    }
    let mut faults = config.faults.iter().peekable();
    loop {
        let now = clock.now();
        let status = lock(&world).status;
        if matches!(status, Some(JobStatus::Finished | JobStatus::Failed)) {
            return (RunEnd::Terminated(status.expect("matched")), now.0);
        }
        if now.0 >= config.ticks_max {
            return (RunEnd::TimedOut, now.0);
        }
        let next_poll = now.after(SUPERVISOR_POLL_TICKS);
        match faults.peek() {
            Some(event) if event.at <= next_poll => {
                sleep_until(clock.instant(event.at)).await;
                let event = faults.next().expect("peeked");
                let node = nodes[match &event.fault {
                    Fault::Crash(address) | Fault::Restart(address) => address,
                }];
                let (address, traced) = match event.fault {
                    Fault::Crash(address) => {
                        // kill (not restart) resets the node's network state (dst-anchors §0.3).
                        handle.kill(node);
                        (address, TraceEvent::Crash)
                    }
                    Fault::Restart(address) => {
                        handle.restart(node);
                        (address, TraceEvent::Restart)
                    }
                };
                lock(&world).trace.push(TraceEntry {
                    at: clock.now(),
                    node: address,
                    event: traced,
                });
            }
            _ => sleep_until(clock.instant(next_poll)).await,
        }
    }
}

fn make_node(
    address: Address,
    plan: Arc<ExecutionPlan>,
    cluster: ClusterConfig,
    world: SharedWorld,
) -> Box<dyn Node + Send> {
    match address {
        Address::JobManager => Box::new(JobManager::new(plan, cluster)),
        Address::TaskManager(id) => Box::new(TaskManager::new(id, plan, cluster)),
        Address::Storage => Box::new(StorageNode {
            storage: WorldStorage(world),
        }),
        Address::SinkSystem => Box::new(WorldSink(world)),
    }
}

type Envelope = (Address, Message);

/// A node's life: deliver messages and deadlines to its state machine, send its outbox.
async fn node_main(
    address: Address,
    mut node: Box<dyn Node + Send>,
    clock: Clock,
    world: SharedWorld,
) {
    let endpoint = Endpoint::bind(SocketAddr::new(ip(address), PORT))
        .await
        .expect("each node binds its own address once");
    let endpoint = Arc::new(endpoint);
    let (inbox, mut incoming) = mpsc::unbounded::<Envelope>();
    let acceptor = endpoint.clone();
    madsim::task::spawn(async move {
        while let Ok((_sender, mut receiver, _peer)) = acceptor.accept1().await {
            let inbox = inbox.clone();
            madsim::task::spawn(async move {
                while let Ok(payload) = receiver.recv().await {
                    let envelope = *payload
                        .downcast::<Envelope>()
                        .expect("nodes send only envelopes");
                    if inbox.unbounded_send(envelope).is_err() {
                        break;
                    }
                }
            });
        }
    });
    let mut links = Links {
        endpoint,
        senders: BTreeMap::new(),
        address,
    };
    let mut out = Outbox::default();
    node.on_start(clock.now(), &mut out);
    links.carry_out(out, clock, &world).await;
    let mut last_tick: Option<Tick> = None;
    loop {
        // A due deadline goes first, so a stream of messages never starves the node's timers;
        // but a node is ticked at most once per millisecond, so a deadline it cannot act on yet
        // (a restart waiting for TaskManagers) does not spin without virtual time advancing.
        let now = clock.now();
        let next = match node.next_deadline() {
            Some(deadline) if deadline <= now && last_tick != Some(now) => None,
            Some(deadline) => {
                let due = clock.instant(deadline.max(now.after(1)));
                let wait = due.saturating_duration_since(virtual_now());
                timeout(wait, incoming.next()).await.ok()
            }
            None => Some(incoming.next().await),
        };
        let mut out = Outbox::default();
        match next {
            Some(Some((from, message))) => node.on_message(clock.now(), from, message, &mut out),
            Some(None) => return, // The inbox closed: the node is going away.
            None => {
                last_tick = Some(clock.now());
                node.on_tick(clock.now(), &mut out);
            }
        }
        links.carry_out(out, clock, &world).await;
    }
}

/// A node's outgoing connections, one FIFO stream per peer, opened on first use.
struct Links {
    endpoint: Arc<Endpoint>,
    senders: BTreeMap<Address, madsim::net::Sender>,
    address: Address,
}

impl Links {
    async fn carry_out(&mut self, out: Outbox, clock: Clock, world: &SharedWorld) {
        if !out.events.is_empty() {
            let now = clock.now();
            let mut world = lock(world);
            for event in out.events {
                if let EngineEvent::JobStatus { status, .. } = &event {
                    if self.address == Address::JobManager {
                        world.status = Some(*status);
                    }
                }
                world.trace.push(TraceEntry {
                    at: now,
                    node: self.address,
                    event: TraceEvent::Engine(event),
                });
            }
        }
        for (target, message) in out.messages {
            self.send(target, message).await;
        }
    }

    /// Sends in order; a message to a dead peer is lost, as on a real network. A link whose
    /// peer died is replaced by a fresh connection before sending, so the message (often a
    /// large data batch) is built once and never copied.
    async fn send(&mut self, target: Address, message: Message) {
        if self
            .senders
            .get(&target)
            .is_some_and(|sender| sender.is_closed())
        {
            self.senders.remove(&target);
        }
        if !self.senders.contains_key(&target) {
            match self
                .endpoint
                .connect1(SocketAddr::new(ip(target), PORT))
                .await
            {
                Ok((sender, _receiver)) => {
                    self.senders.insert(target, sender);
                }
                Err(_refused) => return,
            }
        }
        let sender = self.senders.get(&target).expect("inserted above");
        let payload: Box<dyn std::any::Any + Send + Sync> = Box::new((self.address, message));
        if sender.send(payload).await.is_err() {
            // The peer died after the check: the message is lost with it.
            self.senders.remove(&target);
        }
    }
}
