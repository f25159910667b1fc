//! Faults as data: a [`FaultSchedule`] says everything the adversary does in one run.
//!
//! A schedule is plain serde data, readable in JSON, so that a failing run is replayed from a
//! file and proptest can generate and shrink schedules. It has two phases: until `heal_at` the
//! faults fire (the safety phase); at `heal_at` the harness heals the network, turns disk
//! faults off, restarts dead nodes, and the job must finish within `liveness_ticks` (the
//! liveness phase).

use crate::disk::{DiskFaults, DiskOp};
use serde::{Deserialize, Serialize};
use snapsim_core::cluster::ClusterConfig;
use snapsim_core::ids::Tick;
use snapsim_core::messages::Address;
use std::collections::BTreeSet;
use std::path::Path;
use thiserror::Error;

/// When a disk-triggered crash fires, relative to a write of the storage node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WriteMoment {
    /// The bytes are appended but not synced: the file is pending, a crash tears it.
    BeforeSync,
    /// The file is durable, the answer not sent yet.
    AfterSync,
}

/// One thing the adversary does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Fault {
    /// Kill a node: it loses volatile state and unsynced disk bytes; its connections break.
    Crash(Address),
    /// Start a killed node again.
    Restart(Address),
    /// Messages from `from` to `to` wait (FIFO kept, nothing lost) until unclogged.
    ClogLink {
        /// The sender.
        from: Address,
        /// The receiver.
        to: Address,
    },
    /// Undo [`Fault::ClogLink`].
    UnclogLink {
        /// The sender.
        from: Address,
        /// The receiver.
        to: Address,
    },
    /// Every message to and from the node waits until unclogged (the node is partitioned).
    ClogNode(Address),
    /// Undo [`Fault::ClogNode`].
    UnclogNode(Address),
    /// Both directions between two nodes are clogged (e.g. JobManager ↔ TaskManager).
    Partition {
        /// One side.
        a: Address,
        /// The other side.
        b: Address,
    },
    /// Undo [`Fault::Partition`].
    HealPartition {
        /// One side.
        a: Address,
        /// The other side.
        b: Address,
    },
    /// For a while, every message from `from` to `to` takes extra time (FIFO kept), so
    /// barriers sit behind data.
    SlowLink {
        /// The sender.
        from: Address,
        /// The receiver.
        to: Address,
        /// Extra delay per message, in ms (inclusive range, drawn per message).
        extra_ticks: (u64, u64),
        /// For how long.
        for_ticks: u64,
    },
    /// For a while, the checkpoint RPCs from `from` to `to` are lost (triggers, acknowledgements,
    /// declines, completion and abort notices): they are fire and forget, as in Flink, where
    /// a timeout, a later completion or an abort notice makes up for a lost one.
    LoseCheckpointRpcs {
        /// The sender.
        from: Address,
        /// The receiver.
        to: Address,
        /// For how long.
        for_ticks: u64,
    },
    /// For a while, the node takes this long to handle each input (a slow operator).
    SlowNode {
        node: Address,
        /// Time per input, in ms.
        per_input_ticks: u64,
        /// For how long.
        for_ticks: u64,
    },
    /// From now on, the storage node's disk has these background faults.
    DiskFaults(DiskFaults),
    /// The storage node's next `op` on a path that contains the text fails with EIO.
    FailNextDiskOp {
        /// The operation.
        op: DiskOp,
        /// Text the path contains, e.g. `/task-` for task snapshots.
        path_contains: String,
    },
    /// The storage node's next read of a path that contains the text returns a flipped bit.
    CorruptNextRead {
        /// Text the path contains.
        path_contains: String,
    },
    /// The storage node loses every file under the prefix.
    LoseFiles { path_prefix: String },
    /// A client asks the JobManager for a savepoint (lost if the JobManager is down).
    TriggerSavepoint,
    /// A client cancels the job (lost if the JobManager is down).
    CancelJob,
    /// When the storage node next writes a path that contains `path_contains` (e.g.
    /// `_metadata`, `ha/`), `node` crashes at `moment` and restarts `down_ticks` later: a crash
    /// placed exactly where it hurts.
    CrashOnWrite {
        /// Text the path contains.
        path_contains: String,
        /// Where in the write.
        moment: WriteMoment,
        /// The node that crashes (the storage node itself, or e.g. the JobManager).
        node: Address,
        /// How long it stays down.
        down_ticks: u64,
    },
}

/// A fault at a virtual time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultEvent {
    /// When.
    pub at: Tick,
    /// What.
    pub fault: Fault,
}

/// Everything the adversary does in one run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultSchedule {
    /// The storage node's disk faults from the start.
    #[serde(default)]
    pub disk: DiskFaults,
    /// The faults, in time order.
    pub events: Vec<FaultEvent>,
    /// The end of the safety phase: faults stop, everything is healed and restarted.
    pub heal_at: Tick,
    /// How long the job may take to finish after `heal_at`.
    pub liveness_ticks: u64,
}

impl FaultSchedule {
    /// A schedule of `(ms, fault)` events, without background disk faults.
    pub fn at_times(
        events: impl IntoIterator<Item = (u64, Fault)>,
        heal_at: Tick,
        liveness_ticks: u64,
    ) -> FaultSchedule {
        FaultSchedule {
            disk: DiskFaults::default(),
            events: events
                .into_iter()
                .map(|(at, fault)| FaultEvent {
                    at: Tick(at),
                    fault,
                })
                .collect(),
            heal_at,
            liveness_ticks,
        }
    }

    /// The end of the run: a job not finished by then fails the liveness check.
    pub fn deadline(&self) -> Tick {
        self.heal_at.after(self.liveness_ticks)
    }

    /// Checks the schedule against the cluster it will run on.
    pub fn validate(&self, cluster: &ClusterConfig) -> Result<(), ScheduleError> {
        let known = |address: Address| match address {
            Address::TaskManager(id) => id.0 < cluster.task_managers,
            _ => true,
        };
        let mut down = BTreeSet::new();
        let mut previous = Tick(0);
        for (index, event) in self.events.iter().enumerate() {
            let error = |problem: String| ScheduleError::Event {
                index,
                at: event.at,
                problem,
            };
            if event.at < previous {
                return Err(error(format!("comes before the event at {}", previous.0)));
            }
            previous = event.at;
            if event.at >= self.heal_at {
                return Err(error(format!(
                    "is not before heal_at {} (faults belong to the safety phase)",
                    self.heal_at.0
                )));
            }
            for address in event.fault.addresses() {
                if !known(address) {
                    return Err(error(format!(
                        "names {address}, but the cluster has {} TaskManagers",
                        cluster.task_managers
                    )));
                }
            }
            match event.fault {
                Fault::Crash(address) if !down.insert(address) => {
                    return Err(error(format!("crashes {address}, which is already down")))
                }
                Fault::Restart(address) if !down.remove(&address) => {
                    return Err(error(format!("restarts {address}, which is not down")))
                }
                Fault::Partition { a, b } | Fault::HealPartition { a, b } if a == b => {
                    return Err(error(format!("partitions {a} from itself")))
                }
                _ => {}
            }
        }
        if self.liveness_ticks == 0 {
            return Err(ScheduleError::NoLivenessPhase);
        }
        Ok(())
    }

    /// Reads a schedule from a JSON file.
    pub fn load(path: &Path) -> Result<FaultSchedule, ScheduleError> {
        let text = std::fs::read_to_string(path).map_err(|error| ScheduleError::File {
            path: path.display().to_string(),
            error: error.to_string(),
        })?;
        serde_json::from_str(&text).map_err(|error| ScheduleError::Parse {
            path: path.display().to_string(),
            error: error.to_string(),
        })
    }

    /// Writes the schedule as pretty JSON.
    pub fn save(&self, path: &Path) -> Result<(), ScheduleError> {
        let text = serde_json::to_string_pretty(self).expect("schedules always serialize");
        std::fs::write(path, text + "\n").map_err(|error| ScheduleError::File {
            path: path.display().to_string(),
            error: error.to_string(),
        })
    }
}

impl Fault {
    /// The nodes the fault names.
    pub fn addresses(&self) -> Vec<Address> {
        match self {
            Fault::Crash(a) | Fault::Restart(a) | Fault::ClogNode(a) | Fault::UnclogNode(a) => {
                vec![*a]
            }
            Fault::ClogLink { from, to }
            | Fault::UnclogLink { from, to }
            | Fault::SlowLink { from, to, .. }
            | Fault::LoseCheckpointRpcs { from, to, .. } => vec![*from, *to],
            Fault::Partition { a, b } | Fault::HealPartition { a, b } => vec![*a, *b],
            Fault::SlowNode { node, .. } | Fault::CrashOnWrite { node, .. } => vec![*node],
            Fault::TriggerSavepoint | Fault::CancelJob => vec![Address::JobManager],
            Fault::DiskFaults(_)
            | Fault::FailNextDiskOp { .. }
            | Fault::CorruptNextRead { .. }
            | Fault::LoseFiles { .. } => vec![Address::Storage],
        }
    }
}

/// A schedule that cannot run.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ScheduleError {
    /// One event is wrong.
    #[error("fault event #{index} (at {} ms) {problem}", at.0)]
    Event {
        /// Its position in `events`.
        index: usize,
        /// Its time.
        at: Tick,
        /// What is wrong.
        problem: String,
    },
    /// `liveness_ticks` is zero.
    #[error("liveness_ticks is 0: the job gets no time to finish after heal_at")]
    NoLivenessPhase,
    /// The file could not be read or written.
    #[error("schedule file {path}: {error}")]
    File {
        /// The file.
        path: String,
        /// The OS error.
        error: String,
    },
    /// The file is not a schedule.
    #[error("schedule file {path} is not a fault schedule: {error}")]
    Parse {
        /// The file.
        path: String,
        /// What serde said.
        error: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use snapsim_core::ids::TaskManagerId;

    fn schedule(events: Vec<(u64, Fault)>) -> FaultSchedule {
        FaultSchedule::at_times(events, Tick(1_000), 5_000)
    }

    #[test]
    fn each_bad_schedule_is_refused_with_the_event_and_the_reason() {
        let tm = |id| Address::TaskManager(TaskManagerId(id));
        let cluster = ClusterConfig::default();
        let cases = [
            (vec![(5, Fault::Restart(tm(0)))], "which is not down"),
            (
                vec![(5, Fault::Crash(tm(0))), (6, Fault::Crash(tm(0)))],
                "already down",
            ),
            (vec![(5, Fault::Crash(tm(7)))], "cluster has 2 TaskManagers"),
            (vec![(2_000, Fault::Crash(tm(0)))], "not before heal_at"),
            (
                vec![(9, Fault::Crash(tm(0))), (8, Fault::Restart(tm(0)))],
                "comes before",
            ),
            (
                vec![(
                    5,
                    Fault::Partition {
                        a: Address::JobManager,
                        b: Address::JobManager,
                    },
                )],
                "from itself",
            ),
        ];
        for (events, expected) in cases {
            let error = schedule(events.clone()).validate(&cluster).unwrap_err();
            assert!(
                error.to_string().contains(expected),
                "{events:?}: '{error}' should say '{expected}'"
            );
        }
        let fine = schedule(vec![(5, Fault::Crash(tm(1))), (50, Fault::Restart(tm(1)))]);
        assert_eq!(fine.validate(&cluster), Ok(()));
    }

    #[test]
    fn a_schedule_survives_a_round_trip_through_its_file() {
        let original = schedule(vec![(
            10,
            Fault::CrashOnWrite {
                path_contains: "ha/".to_string(),
                moment: WriteMoment::BeforeSync,
                node: Address::Storage,
                down_ticks: 100,
            },
        )]);
        let dir = std::env::temp_dir().join(format!("snapsim-schedule-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("schedule.json");
        original.save(&path).expect("save");
        assert_eq!(FaultSchedule::load(&path), Ok(original));
        std::fs::write(&path, "{\"events\": 3}").expect("write");
        let error = FaultSchedule::load(&path).unwrap_err();
        assert!(
            error.to_string().contains("is not a fault schedule"),
            "{error}"
        );
        std::fs::remove_dir_all(&dir).expect("clean up");
    }
}
