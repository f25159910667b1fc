//! The madsim driver's nodes: each role in its [`NodeHost`] on a madsim node, the
//! [`StorageService`] on the simulated disk, and the links between them.
//!
//! Every node listens on one endpoint and sends through [`Links`]: one sender task per peer, so
//! each link is FIFO, may be slowed on its own (slow-link faults delay every message on the
//! link, so barriers queue behind data), and retries connecting while the link is clogged. A
//! message to a node that is down is lost, as it would be on a real network.

use super::host::{NodeHost, Wake};
use super::storage::{StorageService, StorageWorld};
use crate::disk::SimDisk;
use crate::faults::WriteMoment;
use crate::trace::{StorageEvent, TraceEvent};
use crate::world::{lock, Clock, Envelope, RunConfig, SharedWorld};
use futures::channel::mpsc::{self, TryRecvError};
use futures::channel::oneshot;
use futures::StreamExt;
use madsim::net::Endpoint;
use madsim::runtime::Handle;
use madsim::task::NodeId;
use madsim::time::{sleep, sleep_until, timeout};
use snapsim_core::cluster::ClusterConfig;
use snapsim_core::ids::{TaskManagerId, Tick};
use snapsim_core::job::ExecutionPlan;
use snapsim_core::jobmanager::JobManager;
use snapsim_core::messages::{Address, Message, Node, Outbox};
use snapsim_core::storage::StorageResponse;
use snapsim_core::taskmanager::TaskManager;
use snapsim_core::trace::EngineEvent;
use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

/// The port every node listens on.
const PORT: u16 = 7000;
/// How long a sender waits before connecting again over a clogged link.
const CONNECT_RETRY_TICKS: u64 = 5;

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

/// Creates the madsim node for `address`; restarting it runs its main function again.
pub(crate) fn create(
    handle: &Handle,
    address: Address,
    config: &RunConfig,
    clock: Clock,
    world: SharedWorld,
) -> NodeId {
    let (plan, cluster) = (config.plan.clone(), config.cluster.clone());
    // With a bandwidth, storage is an object store: every request at once, each taking its
    // bytes' time; without, a file system node serving one request at a time.
    let concurrent = config.schedule.disk.bytes_per_tick.is_some();
    handle
        .create_node()
        .name(address.to_string())
        .ip(ip(address))
        .init(move || {
            let (plan, cluster, world) = (plan.clone(), cluster.clone(), world.clone());
            let clock = clock.clone();
            async move {
                match address {
                    Address::Storage => storage_main(clock, world, concurrent).await,
                    _ => {
                        let role = role(address, plan, cluster, world.clone());
                        node_main(address, role, clock, world).await
                    }
                }
            }
        })
        .build()
        .id()
}

fn role(
    address: Address,
    plan: Arc<ExecutionPlan>,
    cluster: ClusterConfig,
    world: SharedWorld,
) -> Box<dyn Node + Send> {
    match address {
        Address::JobManager => Box::new(JobManager::new(plan, cluster)),
        Address::TaskManager(id) => Box::new(TaskManager::new(id, plan, cluster)),
        Address::SinkSystem => Box::new(WorldSink(world)),
        Address::Storage => unreachable!("the storage node runs storage_main"),
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

/// What goes over a connection: the sender, its messages in order (each with its entry in the
/// message log), and how the receiver says it has them.
struct Batch {
    from: Address,
    /// The sender's incarnation (crashes before it started).
    incarnation: u64,
    messages: Vec<(Message, Option<usize>)>,
    delivered: oneshot::Sender<()>,
}

/// Binds the node's endpoint and forwards every message it receives to one inbox.
async fn listen(
    address: Address,
    world: &SharedWorld,
) -> (Arc<Endpoint>, mpsc::UnboundedReceiver<Envelope>) {
    let endpoint = Endpoint::bind(SocketAddr::new(ip(address), PORT))
        .await
        .expect("each node binds its own address once");
    let endpoint = Arc::new(endpoint);
    let (inbox, incoming) = mpsc::unbounded::<Envelope>();
    // A client's commands (savepoint, cancel) enter the inbox directly.
    lock(world).inboxes.insert(address, inbox.clone());
    let acceptor = endpoint.clone();
    let world = world.clone();
    madsim::task::spawn(async move {
        while let Ok((_sender, mut receiver, _peer)) = acceptor.accept1().await {
            let inbox = inbox.clone();
            let world = world.clone();
            madsim::task::spawn(async move {
                while let Ok(payload) = receiver.recv().await {
                    let batch = *payload
                        .downcast::<Batch>()
                        .expect("nodes send only batches");
                    let from = batch.from;
                    if sent_by_an_earlier_life(&world, from, batch.incarnation) {
                        continue; // Lost with the life that sent it.
                    }
                    let delivered = batch.messages.into_iter().all(|(message, logged)| {
                        inbox.unbounded_send((from, message, logged)).is_ok()
                    });
                    if !delivered {
                        break;
                    }
                    // The sender may send its next batch (it may have gone away: no matter).
                    let _ = batch.delivered.send(());
                }
            });
        }
    });
    (endpoint, incoming)
}

/// Whether a batch of `from`'s `incarnation` arrives after `from` crashed and started again:
/// the network held it (a clog, a backoff) past its sender's life, and a restarted host's old
/// connections are gone, so it is dropped. A batch of a sender still down is delivered, as
/// packets already on the wire are.
fn sent_by_an_earlier_life(world: &SharedWorld, from: Address, incarnation: u64) -> bool {
    let world = lock(world);
    incarnation != world.incarnation(from) && !world.down.contains(&from)
}

/// Counts one input; false once the run's input bound is passed (the node then stops, and
/// the supervisor ends the run).
fn count_input(world: &SharedWorld) -> bool {
    let mut world = lock(world);
    world.inputs += 1;
    world.inputs <= world.inputs_max
}

/// Waits as long as a slow-node fault says this node takes per input.
async fn slow_down(address: Address, now: Tick, world: &SharedWorld) {
    let delay = lock(world).node_delay(address, now);
    if delay > 0 {
        sleep(Duration::from_millis(delay)).await;
    }
}

/// A node's life: deliver messages and deadlines to its host, send its outbox.
async fn node_main(address: Address, node: Box<dyn Node + Send>, clock: Clock, world: SharedWorld) {
    let (endpoint, mut incoming) = listen(address, &world).await;
    let mut links = Links::new(address, endpoint, clock.clone(), world.clone());
    let mut host = NodeHost::new(node);
    let started = clock.now();
    links.carry_out(started, host.start(started));
    loop {
        let next = match host.wake(clock.now()) {
            Wake::Now => None,
            // A message that waits already needs no timer (madsim's `timeout` would create one
            // only to return the message at once).
            Wake::At(at) => match incoming.try_recv() {
                Ok(waiting) => Some(Some(waiting)),
                Err(TryRecvError::Closed) => Some(None),
                Err(TryRecvError::Empty) => timeout(clock.until(at), incoming.next()).await.ok(),
            },
            Wake::Never => Some(incoming.next().await),
        };
        if !count_input(&world) {
            return futures::future::pending().await;
        }
        let now = clock.now();
        let out = match next {
            Some(Some((from, message, logged))) => {
                // Only a logged message takes the lock: this runs for every message.
                if let Some(index) = logged {
                    lock(&world).log_delivered(index, now);
                }
                host.deliver(now, from, message)
            }
            Some(None) => return, // The inbox closed: the node is going away.
            None => host.tick(now),
        };
        slow_down(address, now, &world).await;
        links.carry_out(clock.now(), out);
    }
}

/// The checkpoint storage node: the [`StorageService`] on the [`SimDisk`], serving requests
/// one at a time in arrival order, or, `concurrent`, each as it arrives (an object store whose
/// requests take their bytes' time at the disk's bandwidth, side by side).
async fn storage_main(clock: Clock, world: SharedWorld, concurrent: bool) {
    let address = Address::Storage;
    let (endpoint, mut incoming) = listen(address, &world).await;
    let links = Links::new(address, endpoint, clock.clone(), world.clone());
    let links = Rc::new(RefCell::new(links));
    let service = Rc::new(StorageService {
        disk: SimDisk::current(),
        world: SimStorageWorld {
            clock: clock.clone(),
            world: world.clone(),
        },
    });
    while let Some((from, message, logged)) = incoming.next().await {
        if !count_input(&world) {
            return futures::future::pending().await;
        }
        if let Some(index) = logged {
            lock(&world).log_delivered(index, clock.now());
        }
        let Message::Storage(request) = message else {
            unreachable!("the storage node only serves storage requests, got {message:?}")
        };
        let (service, links) = (service.clone(), links.clone());
        let (clock, world) = (clock.clone(), world.clone());
        let serve = async move {
            let request_id = request.request;
            let result = service.serve(request, clock.now()).await;
            slow_down(address, clock.now(), &world).await;
            let response = StorageResponse {
                request: request_id,
                result,
            };
            let answer = Message::StorageResult(response);
            links.borrow_mut().send(clock.now(), from, answer);
        };
        match concurrent {
            true => drop(madsim::task::spawn_local(serve)),
            false => serve.await,
        }
    }
}

/// The storage service's trace and crash triggers in the simulated world.
struct SimStorageWorld {
    clock: Clock,
    world: SharedWorld,
}

impl StorageWorld for SimStorageWorld {
    fn trace(&self, event: StorageEvent) {
        let now = self.clock.now();
        lock(&self.world).record(now, Address::Storage, TraceEvent::Storage(event));
    }

    /// Asks the supervisor for the crash a matching trigger names (each fires once). When the
    /// storage node itself is to crash, it waits for the kill here, in the middle of the write.
    async fn reached(&self, path: &str, moment: WriteMoment) {
        let fired = {
            let mut world = lock(&self.world);
            let hit = world
                .crash_triggers
                .iter()
                .position(|t| t.moment == moment && path.contains(t.path_contains.as_str()));
            hit.map(|i| world.crash_triggers.remove(i))
        };
        let Some(trigger) = fired else {
            return;
        };
        let request = (trigger.node, trigger.down_ticks);
        let sent = lock(&self.world).crash_requests.unbounded_send(request);
        sent.expect("the supervisor outlives every node");
        if trigger.node == Address::Storage {
            // The supervisor kills this node at this instant; the sleep never ends unless the
            // supervisor declined (the run is healing), and then the write goes on.
            sleep(Duration::from_millis(1)).await;
        }
    }
}

/// A node's outgoing links: one FIFO sender task per peer, started on first use.
struct Links {
    address: Address,
    /// The node's incarnation: its batches carry it.
    incarnation: u64,
    endpoint: Arc<Endpoint>,
    queues: BTreeMap<Address, mpsc::UnboundedSender<Queued>>,
    /// When the last message queued on each link may leave (slow links keep FIFO order).
    last_ready: BTreeMap<Address, Tick>,
    clock: Clock,
    world: SharedWorld,
}

impl Links {
    fn new(address: Address, endpoint: Arc<Endpoint>, clock: Clock, world: SharedWorld) -> Links {
        let incarnation = lock(&world).incarnation(address);
        Links {
            address,
            incarnation,
            endpoint,
            queues: BTreeMap::new(),
            last_ready: BTreeMap::new(),
            clock,
            world,
        }
    }

    /// Records the outbox's events and queues its messages.
    fn carry_out(&mut self, now: Tick, out: Outbox) {
        if !out.events.is_empty() {
            let mut world = lock(&self.world);
            for event in out.events {
                if let EngineEvent::JobStatus { status, .. } = &event {
                    if self.address == Address::JobManager {
                        world.status = Some(*status);
                    }
                }
                world.record(now, self.address, TraceEvent::Engine(event));
            }
        }
        for (target, message) in out.messages {
            self.send(now, target, message);
        }
    }

    /// Queues `message` on the link to `target` at `now` (unless a fault loses it).
    fn send(&mut self, now: Tick, target: Address, message: Message) {
        let mut world = lock(&self.world);
        let logged = world.log_sent(self.address, target, &message, now);
        if world.loses(self.address, target, &message, now) {
            let lost = TraceEvent::MessageLost {
                to: target,
                message: format!("{message:?}"),
            };
            world.record(now, self.address, lost);
            return;
        }
        let delay = world.link_delay(self.address, target, now);
        drop(world);
        let last = self.last_ready.get(&target).copied().unwrap_or(Tick(0));
        let ready = now.after(delay).max(last);
        self.last_ready.insert(target, ready);
        let queue = self.queues.entry(target).or_insert_with(|| {
            let (queue, messages) = mpsc::unbounded();
            let link = Link {
                from: self.address,
                incarnation: self.incarnation,
                to: target,
                endpoint: self.endpoint.clone(),
                clock: self.clock.clone(),
                world: self.world.clone(),
            };
            madsim::task::spawn(link.run(messages));
            queue
        });
        queue
            .unbounded_send((ready, message, logged))
            .expect("a link's task lives as long as its node");
    }
}

/// A message waiting on a link: when it may leave, and its entry in the message log.
type Queued = (Tick, Message, Option<usize>);

/// One direction between two nodes.
struct Link {
    from: Address,
    incarnation: u64,
    to: Address,
    endpoint: Arc<Endpoint>,
    clock: Clock,
    world: SharedWorld,
}

impl Link {
    /// Sends the link's messages in order, each no earlier than its ready time, one batch in
    /// flight at a time: every message due when the previous batch arrived leaves in the next.
    /// madsim delivers at most one payload per millisecond on a connection (its sleeps last at
    /// least 1 ms, and a payload sent over a clogged link waits out a backoff of its own), so
    /// a payload per message, or payloads sent without waiting, let a busy link fall ever
    /// further behind (a TCP connection coalesces small writes and keeps a window the same
    /// way).
    async fn run(self, mut messages: mpsc::UnboundedReceiver<Queued>) {
        let mut connection: Option<madsim::net::Sender> = None;
        let mut queued: VecDeque<Queued> = VecDeque::new();
        loop {
            if queued.is_empty() {
                match messages.next().await {
                    Some(next) => queued.push_back(next),
                    None => return, // The node went away.
                }
            }
            while let Ok(next) = messages.try_recv() {
                queued.push_back(next);
            }
            let (first_ready, _, _) = queued.front().expect("a message is queued");
            if *first_ready > self.clock.now() {
                sleep_until(self.clock.instant(*first_ready)).await;
                continue; // Take what arrived meanwhile too.
            }
            // Ready times never decrease along a link, so the due messages are a prefix.
            let now = self.clock.now();
            let due = queued
                .iter()
                .take_while(|(ready, _, _)| *ready <= now)
                .count();
            let batch: Vec<_> = (queued.drain(..due))
                .map(|(_, message, logged)| (message, logged))
                .collect();
            loop {
                if lock(&self.world).down.contains(&self.to) {
                    connection = None; // The messages are lost with their receiver.
                    break;
                }
                if connection.as_ref().is_some_and(|s| !s.is_closed()) {
                    break;
                }
                let peer = SocketAddr::new(ip(self.to), PORT);
                match self.endpoint.connect1(peer).await {
                    Ok((sender, _receiver)) => connection = Some(sender),
                    // Clogged, or the peer is between restart and bind: try again.
                    Err(_refused) => sleep(Duration::from_millis(CONNECT_RETRY_TICKS)).await,
                }
            }
            let Some(sender) = connection.as_ref() else {
                continue;
            };
            let (delivered, on_delivery) = oneshot::channel();
            let batch = Batch {
                from: self.from,
                incarnation: self.incarnation,
                messages: batch,
                delivered,
            };
            let payload: Box<dyn std::any::Any + Send + Sync> = Box::new(batch);
            if sender.send(payload).await.is_err() || on_delivery.await.is_err() {
                // The peer died: the messages are lost with it.
                connection = None;
            }
        }
    }
}
