//! The simulated world a run's nodes share with its supervisor: the run's configuration, the
//! state that outlives node crashes (trace, sink system, job status, faults in force), and the
//! virtual clock.

use crate::faults::FaultSchedule;
use crate::faults::WriteMoment;
use crate::rng::SimRng;
use crate::trace::{MessageRecord, TraceEntry, TraceEvent};
use futures::channel::mpsc;
use madsim::time::{Instant, TimeHandle};
use snapsim_core::cluster::ClusterConfig;
use snapsim_core::ids::Tick;
use snapsim_core::job::ExecutionPlan;
use snapsim_core::messages::{Address, Message};
use snapsim_core::probes::ProbeSet;
use snapsim_core::sink::SinkSystem;
use snapsim_core::trace::JobStatus;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Everything a run needs: a pure function of this and the build gives the result.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// The seed of madsim's runtime (network latencies, task scheduling) and of the disk's and
    /// network's own draws.
    pub seed: u64,
    /// The job.
    pub plan: Arc<ExecutionPlan>,
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
    /// Keep a log of the messages between nodes ([`RunResult::messages`]): about 30,000 a run,
    /// so only when a report draws them.
    pub logs_messages: bool,
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
    /// How often each node crashed: its incarnation. A message the network still holds when
    /// its sender has crashed and started again is dropped on arrival, as a rebooted host's old
    /// connections are.
    pub(crate) crashes: BTreeMap<Address, u64>,
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
    pub(crate) inboxes: BTreeMap<Address, mpsc::UnboundedSender<Envelope>>,
    /// The log of messages, when the run keeps one; a message carries its index here.
    pub(crate) messages: Option<Vec<MessageRecord>>,
}

/// A message on its way to a node's inbox: the sender, the message, and its entry in the
/// message log (if the run keeps one).
pub(crate) type Envelope = (Address, Message, Option<usize>);

impl World {
    /// How often `node` crashed so far: the life it is in.
    pub(crate) fn incarnation(&self, node: Address) -> u64 {
        self.crashes.get(&node).copied().unwrap_or(0)
    }

    pub(crate) fn record(&mut self, at: Tick, node: Address, event: TraceEvent) {
        // Logged as it happens (`snapsim run --log`); nothing is formatted unless asked for.
        tracing::debug!(target: "snapsim::trace", "{} {:?} {:?}", at, node, event);
        self.trace.push(TraceEntry { at, node, event });
    }

    /// Logs a message sent now (when the run keeps a log and the message has a label); its
    /// index in the log.
    pub(crate) fn log_sent(
        &mut self,
        from: Address,
        to: Address,
        message: &Message,
        now: Tick,
    ) -> Option<usize> {
        let log = self.messages.as_mut()?;
        let what = message.label()?;
        log.push(MessageRecord {
            from,
            to,
            sent: now,
            delivered: None,
            what,
        });
        Some(log.len() - 1)
    }

    /// Marks the logged message at `index` delivered now.
    pub(crate) fn log_delivered(&mut self, index: usize, now: Tick) {
        let log = self
            .messages
            .as_mut()
            .expect("a message has an index only when logged");
        log[index].delivered = Some(now);
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

/// After the job ends, how long a run goes on before the storage node's files are listed, so
/// that the clean-up settles: deletions, and late writes of snapshots that no longer count
/// (longer than a storage request's default timeout).
pub(crate) const SETTLE_TICKS: u64 = 1_500;

pub(crate) type SharedWorld = Arc<Mutex<World>>;

pub(crate) fn lock(world: &SharedWorld) -> std::sync::MutexGuard<'_, World> {
    world
        .lock()
        .expect("the simulation is single-threaded; the lock is never poisoned")
}

/// The clock every node shares: ticks are milliseconds since the run began, on madsim's
/// virtual time. It keeps madsim's time handle: `Instant::now` inside a madsim runtime finds the
/// runtime through a thread-local on every call, and a node reads the clock several times per
/// message (it was the costliest symbol of a simulated run).
#[derive(Clone)]
pub(crate) struct Clock {
    start: Instant,
    time: TimeHandle,
}

impl Clock {
    /// The clock of the running madsim runtime, starting now.
    pub(crate) fn start() -> Clock {
        let time = TimeHandle::current();
        Clock {
            start: time.now_instant(),
            time,
        }
    }

    pub(crate) fn now(&self) -> Tick {
        let elapsed = self.time.now_instant().duration_since(self.start);
        Tick(u64::try_from(elapsed.as_millis()).expect("virtual time fits u64"))
    }

    pub(crate) fn instant(&self, at: Tick) -> Instant {
        self.start + Duration::from_millis(at.0)
    }

    /// How long from now until `at` (zero once it passed).
    pub(crate) fn until(&self, at: Tick) -> Duration {
        self.instant(at)
            .saturating_duration_since(self.time.now_instant())
    }
}

/// A crash the storage node causes when it writes a matching path.
#[derive(Clone, Debug)]
pub(crate) struct CrashTrigger {
    pub(crate) path_contains: String,
    pub(crate) moment: WriteMoment,
    pub(crate) node: Address,
    pub(crate) down_ticks: u64,
}
