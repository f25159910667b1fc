//! Fault profiles: named recipes that draw a fault schedule from a seed's fault stream. A
//! scenario runs with its own profile unless `--faults` names another, so one job can be
//! judged under several adversaries and one adversary against several jobs.

use snapsim_core::ids::{TaskManagerId, Tick};
use snapsim_core::messages::Address;
use snapsim_sim::disk::{CrashMode, DiskFaults, DiskOp};
use snapsim_sim::faults::{Fault, FaultEvent, FaultSchedule, WriteMoment};
use snapsim_sim::rng::SimRng;
use std::collections::BTreeSet;
use std::sync::Arc;
use thiserror::Error;

/// Draws a fault schedule for a cluster of some TaskManagers from the seed's fault stream.
pub type DrawFn = dyn Fn(&mut SimRng, u16) -> FaultSchedule + Send + Sync;

/// A named way to draw faults.
pub struct FaultProfile {
    /// Its name on the command line.
    pub name: &'static str,
    /// One line for `snapsim list`.
    pub description: &'static str,
    draw: Arc<DrawFn>,
}

impl FaultProfile {
    /// A profile that draws its schedule with `draw` (given the fault stream and the number of
    /// TaskManagers).
    pub fn new(
        name: &'static str,
        description: &'static str,
        draw: impl Fn(&mut SimRng, u16) -> FaultSchedule + Send + Sync + 'static,
    ) -> FaultProfile {
        FaultProfile {
            name,
            description,
            draw: Arc::new(draw),
        }
    }

    /// The schedule for a cluster of `task_managers`, drawn from the seed's fault stream.
    pub fn draw(&self, faults: &mut SimRng, task_managers: u16) -> FaultSchedule {
        (self.draw)(faults, task_managers)
    }
}

/// The built-in fault profiles, in listing order.
pub fn builtin_profiles() -> Vec<FaultProfile> {
    vec![
        FaultProfile::new(
            "none",
            "no faults: the engine against its own oracle",
            |_, _| schedule(Vec::new()),
        ),
        FaultProfile::new(
            "tm-crash",
            "one TaskManager crashes between 100 and 500 ms and restarts 50–400 ms later",
            |rng, task_managers| schedule(tm_crash(rng, task_managers, (100, 500))),
        ),
        FaultProfile::new(
            "crashes-and-storage",
            "three TaskManager crashes in disjoint windows, a failed snapshot sync and a failed _metadata append",
            crashes_and_storage,
        ),
        FaultProfile::new(
            "swarm",
            "swarm testing: the seed switches fault kinds on (crashes of every node, partitions, clogged links and nodes, slow links and operators, disk errors, full disk, corruption, torn writes, lost checkpoint RPCs, savepoints, a client's cancellation) and draws their rates; faults until 3 s",
            swarm_schedule,
        ),
    ]
}

/// A fault profile name that does not exist.
#[derive(Debug, Error)]
#[error("unknown fault profile '{name}'; known: {known}")]
pub struct UnknownProfile {
    /// The name given.
    pub name: String,
    /// The names that exist.
    pub known: String,
}

/// Every profile but the swarm stops its faults by this time.
pub(crate) const SCENARIO_HEAL_AT: Tick = Tick(2_000);
/// And its job must finish within this much virtual time after.
pub(crate) const SCENARIO_LIVENESS_TICKS: u64 = 58_000;

/// A schedule of `events` with the liveness phase and deadline every built-in profile uses.
pub fn schedule(events: Vec<FaultEvent>) -> FaultSchedule {
    FaultSchedule {
        disk: DiskFaults::default(),
        events,
        heal_at: SCENARIO_HEAL_AT,
        liveness_ticks: SCENARIO_LIVENESS_TICKS,
    }
}

/// One TaskManager, drawn, crashes in `window` (ms) and restarts 50–400 ms later.
pub fn tm_crash(rng: &mut SimRng, task_managers: u16, window: (u64, u64)) -> Vec<FaultEvent> {
    let victim = Address::TaskManager(TaskManagerId(rng.below(u64::from(task_managers)) as u16));
    let at = rng.between(window.0, window.1);
    let down = rng.between(50, 400);
    vec![
        FaultEvent {
            at: Tick(at),
            fault: Fault::Crash(victim),
        },
        FaultEvent {
            at: Tick(at + down),
            fault: Fault::Restart(victim),
        },
    ]
}

fn crashes_and_storage(faults: &mut SimRng, task_managers: u16) -> FaultSchedule {
    // Three crashes in three windows, each over before the next begins (a node cannot crash
    // while down), and a failed snapshot sync and a failed metadata write.
    let mut events: Vec<FaultEvent> = [(100, 300), (720, 880), (1_300, 1_500)]
        .into_iter()
        .flat_map(|window| tm_crash(faults, task_managers, window))
        .collect();
    for (op, path) in [(DiskOp::Sync, "/task-"), (DiskOp::Append, "_metadata")] {
        events.push(FaultEvent {
            at: Tick(faults.between(50, 1_800)),
            fault: Fault::FailNextDiskOp {
                op,
                path_contains: path.to_string(),
            },
        });
    }
    events.sort_by_key(|event| event.at);
    schedule(events)
}

/// The fault kinds swarm testing switches on and off per seed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum SwarmKind {
    TaskManagerCrash,
    JobManagerCrash,
    StorageCrash,
    TornWrite,
    JobManagerCrashOnWrite,
    Partition,
    ClogLink,
    SlowLink,
    SlowOperator,
    DiskErrors,
    DiskFull,
    Corruption,
    TargetedDiskFailure,
    LostCheckpointRpcs,
}

const SWARM_KINDS: [SwarmKind; 14] = [
    SwarmKind::TaskManagerCrash,
    SwarmKind::JobManagerCrash,
    SwarmKind::StorageCrash,
    SwarmKind::TornWrite,
    SwarmKind::JobManagerCrashOnWrite,
    SwarmKind::Partition,
    SwarmKind::ClogLink,
    SwarmKind::SlowLink,
    SwarmKind::SlowOperator,
    SwarmKind::DiskErrors,
    SwarmKind::DiskFull,
    SwarmKind::Corruption,
    SwarmKind::TargetedDiskFailure,
    SwarmKind::LostCheckpointRpcs,
];
/// The swarm's safety phase.
const SWARM_HEAL_AT: u64 = 3_000;

/// Swarm testing (Groce et al.; FoundationDB, VOPR): each seed enables a random subset of fault
/// kinds, so that rare combinations get runs of their own instead of drowning in the average.
fn swarm_schedule(rng: &mut SimRng, task_managers: u16) -> FaultSchedule {
    let enabled: BTreeSet<SwarmKind> = SWARM_KINDS
        .into_iter()
        .filter(|_| rng.below(2) == 1)
        .collect();
    let mut events: Vec<(u64, Fault)> = Vec::new();
    let mut disk = DiskFaults {
        crash: CrashMode::Seeded,
        ..DiskFaults::default()
    };
    for kind in enabled {
        let drawn = outage_faults(kind, rng, task_managers)
            .or_else(|| link_faults(kind, rng, task_managers))
            .unwrap_or_else(|| disk_faults(kind, rng, &mut disk));
        events.extend(drawn);
    }
    late_swarm_faults(rng, task_managers, &mut events);
    // Stable: events at the same time keep the order they were drawn in. Undoing events that
    // fall after the safety phase are left to the heal, which undoes everything.
    events.sort_by_key(|(at, _)| *at);
    events.retain(|(at, _)| *at < SWARM_HEAL_AT);
    FaultSchedule {
        disk,
        ..FaultSchedule::at_times(events, Tick(SWARM_HEAL_AT), SCENARIO_LIVENESS_TICKS)
    }
}

/// A TaskManager of the swarm's cluster, drawn.
fn swarm_tm(rng: &mut SimRng, task_managers: u16) -> Address {
    Address::TaskManager(TaskManagerId(rng.below(u64::from(task_managers)) as u16))
}

/// When a swarm fault starts, drawn in the safety phase.
fn swarm_at(rng: &mut SimRng) -> u64 {
    rng.between(100, SWARM_HEAL_AT - 500)
}

/// The events of a swarm kind that takes a node down or cuts it off, if `kind` is one.
fn outage_faults(
    kind: SwarmKind,
    rng: &mut SimRng,
    task_managers: u16,
) -> Option<Vec<(u64, Fault)>> {
    let tm = |rng: &mut SimRng| swarm_tm(rng, task_managers);
    let at = swarm_at;
    let mut events = Vec::new();
    match kind {
        SwarmKind::TaskManagerCrash | SwarmKind::JobManagerCrash | SwarmKind::StorageCrash => {
            let node = match kind {
                SwarmKind::TaskManagerCrash => tm(rng),
                SwarmKind::JobManagerCrash => Address::JobManager,
                _ => Address::Storage,
            };
            let t = at(rng);
            events.push((t, Fault::Crash(node)));
            events.push((t + rng.between(20, 400), Fault::Restart(node)));
        }
        SwarmKind::TornWrite | SwarmKind::JobManagerCrashOnWrite => {
            let targets = ["ha/", "_metadata", "/task-"];
            let path_contains = targets[rng.below(3) as usize].to_string();
            let (moment, node) = match kind {
                SwarmKind::TornWrite => (WriteMoment::BeforeSync, Address::Storage),
                _ => (WriteMoment::AfterSync, Address::JobManager),
            };
            let fault = Fault::CrashOnWrite {
                path_contains,
                moment,
                node,
                down_ticks: rng.between(20, 300),
            };
            events.push((at(rng), fault));
        }
        SwarmKind::Partition => {
            let (a, b) = (Address::JobManager, tm(rng));
            let t = at(rng);
            events.push((t, Fault::Partition { a, b }));
            events.push((t + rng.between(50, 900), Fault::HealPartition { a, b }));
        }
        SwarmKind::ClogLink => {
            let (from, to) = (tm(rng), tm(rng));
            let (from, to) = if from == to {
                (from, Address::Storage)
            } else {
                (from, to)
            };
            let t = at(rng);
            events.push((t, Fault::ClogLink { from, to }));
            events.push((t + rng.between(50, 1_500), Fault::UnclogLink { from, to }));
        }
        _ => return None,
    }
    Some(events)
}

/// The events of a swarm kind that slows or drops messages, if `kind` is one.
fn link_faults(kind: SwarmKind, rng: &mut SimRng, task_managers: u16) -> Option<Vec<(u64, Fault)>> {
    let tm = |rng: &mut SimRng| swarm_tm(rng, task_managers);
    let at = swarm_at;
    let mut events = Vec::new();
    match kind {
        SwarmKind::SlowLink => {
            let fault = Fault::SlowLink {
                from: tm(rng),
                to: tm(rng),
                extra_ticks: (rng.between(0, 10), rng.between(10, 60)),
                for_ticks: rng.between(100, 2_000),
            };
            events.push((at(rng), fault));
        }
        SwarmKind::LostCheckpointRpcs => {
            let (mut from, mut to) = (Address::JobManager, tm(rng));
            if rng.below(2) == 1 {
                (from, to) = (to, from);
            }
            let for_ticks = rng.between(1, 600);
            events.push((
                at(rng),
                Fault::LoseCheckpointRpcs {
                    from,
                    to,
                    for_ticks,
                },
            ));
        }
        SwarmKind::SlowOperator => {
            let fault = Fault::SlowNode {
                node: tm(rng),
                per_input_ticks: rng.between(1, 3),
                for_ticks: rng.between(100, 1_500),
            };
            events.push((at(rng), fault));
        }
        _ => return None,
    }
    Some(events)
}

/// The events of a swarm kind of the storage disk; background rates go into `disk`.
fn disk_faults(kind: SwarmKind, rng: &mut SimRng, disk: &mut DiskFaults) -> Vec<(u64, Fault)> {
    let at = swarm_at;
    let mut events = Vec::new();
    match kind {
        SwarmKind::DiskErrors => {
            disk.read_error_per_mille = rng.between(0, 50) as u16;
            disk.append_error_per_mille = rng.between(0, 50) as u16;
            disk.sync_error_per_mille = rng.between(0, 50) as u16;
            disk.latency_ticks = (0, rng.between(0, 20));
        }
        SwarmKind::Corruption => disk.corruption_per_mille = rng.between(1, 100) as u16,
        SwarmKind::DiskFull => {
            // Full for a while, then back to the background faults drawn so far (kinds
            // drawn after this one, corruption, hold only until the disk fills).
            let t = at(rng);
            let full = DiskFaults {
                capacity_bytes: Some(rng.between(0, 4_000)),
                ..disk.clone()
            };
            events.push((t, Fault::DiskFaults(full)));
            let healed = Fault::DiskFaults(disk.clone());
            events.push((t + rng.between(50, 1_000), healed));
        }
        SwarmKind::TargetedDiskFailure => {
            let ops = [DiskOp::Read, DiskOp::Append, DiskOp::Sync];
            let targets = ["ha/", "_metadata", "/task-"];
            let fault = Fault::FailNextDiskOp {
                op: ops[rng.below(3) as usize],
                path_contains: targets[rng.below(3) as usize].to_string(),
            };
            events.push((at(rng), fault));
        }
        _ => unreachable!("outages and link faults are drawn apart"),
    }
    events
}

/// The swarm's draws after the kinds': each was added later and is drawn after everything
/// else, so that the earlier draws of a seed stay what they were.
fn late_swarm_faults(rng: &mut SimRng, task_managers: u16, events: &mut Vec<(u64, Fault)>) {
    let tm = |rng: &mut SimRng| swarm_tm(rng, task_managers);
    let at = swarm_at;
    // A client asks for savepoints in half the seeds; drawn after everything else, so that the
    // other draws of a seed stay what they were.
    if rng.below(2) == 1 {
        for _ in 0..rng.between(1, 3) {
            events.push((at(rng), Fault::TriggerSavepoint));
        }
    }
    // Drawn after that for the same reason: a whole node cut off for a while (every message to
    // and from it waits) in a quarter of the seeds, and a client cancelling the job in one
    // eighth (the run is then judged on what the job committed before it ended).
    if rng.below(4) == 0 {
        let nodes = [Address::JobManager, Address::Storage, tm(rng)];
        let node = nodes[rng.below(3) as usize];
        let t = at(rng);
        events.push((t, Fault::ClogNode(node)));
        events.push((t + rng.between(50, 1_000), Fault::UnclogNode(node)));
    }
    if rng.below(8) == 0 {
        events.push((at(rng), Fault::CancelJob));
    }
    // And after that: an operator deletes the job's savepoints in an eighth of the seeds. A
    // savepoint is the user's: the job never restores one on a failover nor deletes one, so it
    // must not notice. (A job started from a savepoint keeps it elsewhere: see the resume
    // scenario.)
    if rng.below(8) == 0 {
        let path_prefix = "savepoints/".to_string();
        events.push((at(rng), Fault::LoseFiles { path_prefix }));
    }
    // And then, in a quarter of the seeds, a TaskManager's acknowledgements lost for a moment
    // (10 to 60 ms): one checkpoint waits for its timeout while the next one completes and
    // subsumes it, where two may be pending at once.
    if rng.below(4) == 0 {
        let fault = Fault::LoseCheckpointRpcs {
            from: tm(rng),
            to: Address::JobManager,
            for_ticks: rng.between(10, 60),
        };
        events.push((at(rng), fault));
    }
}
