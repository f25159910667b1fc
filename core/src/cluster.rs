//! Cluster-level options shared by the JobManager and the TaskManagers.

use crate::ids::{TaskId, TaskManagerId};
use serde::{Deserialize, Serialize};

/// How the cluster is laid out and how failures are detected.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterConfig {
    /// Number of TaskManagers; task `t` runs on TaskManager `t mod task_managers`.
    pub task_managers: u16,
    /// How often a TaskManager sends a heartbeat.
    pub heartbeat_interval_ticks: u64,
    /// A TaskManager silent for longer is declared lost and the job fails over.
    pub heartbeat_timeout_ticks: u64,
    /// The delay of the first periodic trigger after the job runs. Flink draws it at random in
    /// `[min pause, interval]`; the engine takes no randomness, so the driver draws it.
    pub first_trigger_delay_ticks: u64,
    /// A storage request unanswered for this long counts as failed (the storage node may have
    /// crashed with it); a late answer is ignored.
    #[serde(default = "default_storage_timeout_ticks")]
    pub storage_timeout_ticks: u64,
    /// The number of a new job's first execution attempt. A cluster that ran a job before
    /// starts after that job's attempts, as Flink's execution attempt ids are unique across
    /// jobs: a transaction or a message of the old job is never taken for the new one's.
    #[serde(default)]
    pub first_attempt: u32,
}

fn default_storage_timeout_ticks() -> u64 {
    1_000
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            task_managers: 2,
            heartbeat_interval_ticks: 50,
            heartbeat_timeout_ticks: 500,
            first_trigger_delay_ticks: 0,
            storage_timeout_ticks: default_storage_timeout_ticks(),
            first_attempt: 0,
        }
    }
}

impl ClusterConfig {
    /// The TaskManager that runs `task`.
    pub fn placement(&self, task: TaskId) -> TaskManagerId {
        assert!(self.task_managers > 0, "a cluster has TaskManagers");
        TaskManagerId((task.0 % u32::from(self.task_managers)) as u16)
    }

    /// Every TaskManager.
    pub fn task_manager_ids(&self) -> impl Iterator<Item = TaskManagerId> {
        (0..self.task_managers).map(TaskManagerId)
    }
}
