//! The JobManager: job status, deployment, failover with a restart strategy, heartbeats, the
//! checkpoint coordinator, and the HA record that lets a restarted JobManager resume.
//!
//! The HA record (completed checkpoints, checkpoint id counter, attempt counter) is written to
//! checkpoint storage, one write at a time, each composed from the state at the moment it is
//! sent; a completion counts only once a record holding it is durable. Each write is a new
//! version (`ha/{job}/record-{n}`) and the two newest are kept, so a version torn by a storage
//! crash is rejected on reading and the one before it used. An HA write that gets no answer has
//! an unknown outcome: the JobManager then starts over from what storage holds, as a JobManager
//! that lost leadership does.

use crate::bugs::SeededBug;
use crate::cluster::ClusterConfig;
use crate::config::{CheckpointStorageKind, RestartDecision, RestartStrategy};
use crate::coordinator::{CheckpointCoordinator, CoordinatorEffect, SavepointRefused};
use crate::ids::{Attempt, CheckpointId, TaskId, TaskManagerId, Tick};
use crate::job::ExecutionPlan;
use crate::messages::{Address, CheckpointFailureReason, Message, Node, Outbox};
use crate::probes::{self, Probe};
use crate::retention::{Leaving, SharedStateRegistry};
use crate::storage::{
    StateHandle, StateLocation, StorageError, StorageOp, StoragePath, StorageReply,
};
use crate::storage_client::StorageClient;
use crate::store::{CompletedCheckpoint, MetadataFile};
use crate::trace::{EngineEvent, JobStatus};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

mod checkpoints;
mod ending;
mod ha;
mod lines;
mod restore;
use lines::LineTracking;

/// How often an HA record version that does not decode is read before it is judged: torn
/// (skipped) or corrupted (the job fails). Silent corruption on the read path goes away on
/// reading again; damage in the file does not.
const HA_READS_BEFORE_JUDGING: u32 = 5;

/// What the JobManager persists so that a restarted JobManager resumes the job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HaRecord {
    pub job: String,
    /// The next checkpoint id to hand out.
    pub next_checkpoint_id: CheckpointId,
    /// The newest attempt deployed.
    pub attempt: Attempt,
    /// The completed checkpoints, oldest first.
    pub completed: Vec<CompletedCheckpoint>,
    /// How the job ended, once it did: a JobManager that starts later does not run it again
    /// (Flink's job result store).
    #[serde(default)]
    pub ended: Option<JobStatus>,
}

#[derive(Clone, Debug)]
enum HaWrite {
    Counter,
    Completion(CompletedCheckpoint),
    Attempt,
    /// The job ended: persist that.
    Ended,
}

#[derive(Clone, Debug)]
enum Request {
    ListHa,
    ReadHa(StoragePath),
    WriteHa {
        write: HaWrite,
        version: u64,
    },
    Metadata(CheckpointId),
    Discard,
    /// Restoring from a path: the `_metadata` file.
    RestoreMetadata(StoragePath),
    /// Restoring from a path: what lies at it (the `_metadata` was not found).
    RestoreProbe,
    /// Restoring from a path: the files of one directory the metadata references.
    RestoreVerify,
    /// After the end: what lies in the job's checkpoint directory, to delete what no kept
    /// checkpoint references.
    Sweep,
}

/// The sweeps of the job's checkpoint directory after the end.
#[derive(Clone, Debug)]
struct Sweep {
    /// The files of the checkpoints the retention policy keeps.
    kept: BTreeSet<String>,
    /// When to sweep again (then none is due).
    again_at: Option<Tick>,
}

/// A restore from a path in progress: the metadata read, directories still to list.
#[derive(Clone, Debug)]
struct PathRestore {
    metadata_path: StoragePath,
    file: MetadataFile,
    task_states: BTreeMap<TaskId, crate::storage::StateHandle>,
    directories_left: usize,
    found: BTreeSet<StoragePath>,
}

/// Where the JobManager stands with its HA record versions.
#[derive(Clone, Debug, Default)]
struct HaVersions {
    /// Versions still to try when reading, newest last.
    to_read: Vec<StoragePath>,
    /// Versions rejected while reading.
    rejected: u32,
    /// Of them, versions listed but gone when read.
    lost: u32,
    /// Failed reads of the newest version still to try.
    failed_reads: u32,
    /// Of them, reads that found the version truncated.
    truncated_reads: u32,
    /// The version the next write takes; never reused, even after a failed write.
    next: u64,
    /// The newest version known durable.
    durable: Option<u64>,
    /// Versions below this one are gone (deleted, or never existed).
    oldest: u64,
}

/// Where the record of the job's end stands. The clean-up after the end waits until it is
/// durable: a JobManager that starts later and reads an older record ("running, latest
/// checkpoint N") would redeploy from deleted files or re-run committed work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum EndRecord {
    /// The job has not ended, or the write of its end is queued or in flight.
    NotDurable,
    /// The write failed or its outcome is unknown: write it again at this time.
    RetryAt(Tick),
    /// The newest durable HA record says the job ended.
    Durable,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TaskState {
    Deploying,
    Running,
    DataFinished,
    Finished,
}

/// The JobManager node.
#[derive(Debug)]
pub struct JobManager {
    plan: Arc<ExecutionPlan>,
    cluster: ClusterConfig,
    status: JobStatus,
    /// The newest attempt (persisted or being persisted).
    attempt: Attempt,
    /// The attempt whose tasks were sent out; task messages of other attempts are ignored.
    deployed: Option<Attempt>,
    coordinator: Option<CheckpointCoordinator>,
    /// Seeded bug [`SeededBug::RestoreFromPending`]: the pending checkpoint to restore next.
    pending_to_restore: Option<CompletedCheckpoint>,
    restart: RestartStrategy,
    restart_at: Option<Tick>,
    /// After the end: what the sweeps of the checkpoint directory keep, and when the second
    /// one is due.
    sweep: Option<Sweep>,
    task_managers: BTreeMap<TaskManagerId, Tick>,
    tasks: BTreeMap<TaskId, TaskState>,
    ha_queue: VecDeque<HaWrite>,
    ha_in_flight: bool,
    ha_versions: HaVersions,
    storage: StorageClient<Request>,
    path_restore: Option<PathRestore>,
    /// The job ended; what to delete once no completion is settling.
    pending_discard: Option<Leaving>,
    /// Whether the job's end is durable in the HA record.
    end_record: EndRecord,
    /// A cancellation that arrived before the HA record was read.
    cancel_requested: bool,
    /// Which shared files (incremental state) retained checkpoints still use.
    shared: SharedStateRegistry,
    /// Checkpointing without barriers: local snapshots and recovery lines.
    lines: Option<LineTracking>,
}

/// The shared files a completed checkpoint's state consists of.
/// A task's own file is shared when it is in `shared/`: a local snapshot of checkpointing
/// without barriers, which every recovery line containing it references.
fn shared_files(checkpoint: &CompletedCheckpoint) -> Vec<StoragePath> {
    let path = |file: &StateHandle| match &file.location {
        StateLocation::File(path) => Some(path.clone()),
        _ => None,
    };
    let own = (checkpoint.task_states.values())
        .filter_map(path)
        .filter(StoragePath::is_shared);
    let runs = (checkpoint.task_states.values())
        .flat_map(|state| &state.shared)
        .filter_map(path);
    own.chain(runs).collect()
}

impl JobManager {
    /// A JobManager for `plan`. It does nothing until [`Node::on_start`].
    pub fn new(plan: Arc<ExecutionPlan>, cluster: ClusterConfig) -> JobManager {
        JobManager {
            restart: RestartStrategy::new(plan.restart.clone()),
            status: JobStatus::Initializing,
            attempt: Attempt(cluster.first_attempt),
            deployed: None,
            coordinator: None,
            pending_to_restore: None,
            restart_at: None,
            sweep: None,
            task_managers: BTreeMap::new(),
            tasks: BTreeMap::new(),
            ha_queue: VecDeque::new(),
            ha_in_flight: false,
            ha_versions: HaVersions::default(),
            path_restore: None,
            pending_discard: None,
            end_record: EndRecord::NotDurable,
            cancel_requested: false,
            shared: SharedStateRegistry::default(),
            lines: LineTracking::of(&plan),
            storage: StorageClient::new(cluster.storage_timeout_ticks),
            plan,
            cluster,
        }
    }

    /// The job's status.
    pub fn status(&self) -> JobStatus {
        self.status
    }

    /// The coordinator, once the HA record was read.
    pub fn coordinator(&self) -> Option<&CheckpointCoordinator> {
        self.coordinator.as_ref()
    }

    fn request(&mut self, now: Tick, purpose: Request, op: StorageOp, out: &mut Outbox) {
        if let StorageOp::DeleteAll { prefix } = &op {
            assert!(
                !self.holds_task_owned_state(prefix),
                "the JobManager never deletes task-owned state, asked to delete {prefix}"
            );
        }
        self.storage.send(now, purpose, op, out);
    }

    /// Whether deleting `prefix` would delete the job's task-owned state (`taskowned/`).
    fn holds_task_owned_state(&self, prefix: &StoragePath) -> bool {
        match self.plan.checkpoint.storage(&self.plan.job) {
            CheckpointStorageKind::FileSystem(root) => {
                let taskowned = StoragePath::taskowned_dir(root.as_str());
                prefix.starts_with(&taskowned) || taskowned.starts_with(prefix)
            }
            CheckpointStorageKind::JobManager(_) => false,
        }
    }

    /// Starts (or starts over): read the newest readable HA record version.
    fn begin(&mut self, now: Tick, out: &mut Outbox) {
        out.trace(EngineEvent::JobStatus {
            status: JobStatus::Initializing,
            attempt: self.attempt,
        });
        self.storage.start(now);
        self.list_ha(now, out);
    }

    fn set_status(&mut self, status: JobStatus, out: &mut Outbox) {
        if self.status != status {
            self.status = status;
            out.trace(EngineEvent::JobStatus {
                status,
                attempt: self.attempt,
            });
        }
    }

    fn try_deploy(&mut self, now: Tick, out: &mut Outbox) {
        if self.status.is_terminal() {
            return;
        }
        let due = self.restart_at.is_some_and(|at| at <= now);
        let all_registered = self
            .cluster
            .task_manager_ids()
            .all(|tm| self.task_managers.contains_key(&tm));
        let coordinator = self
            .coordinator
            .as_ref()
            .expect("deploy after the HA record was read");
        if !due || !all_registered || coordinator.is_finalizing() || self.ha_in_flight {
            return;
        }
        self.restart_at = None;
        self.attempt = self.attempt.next();
        self.write_ha(now, HaWrite::Attempt, out);
    }

    fn deploy(&mut self, out: &mut Outbox) {
        let coordinator = self
            .coordinator
            .as_ref()
            .expect("deploy after the HA record was read");
        let mut latest = coordinator.store().latest().cloned();
        if let Some(pending) = self.pending_to_restore.take() {
            if latest.as_ref().is_none_or(|c| c.id < pending.id) {
                latest = Some(pending);
            }
        }
        self.deployed = Some(self.attempt);
        if let Some(lines) = self.lines.as_mut() {
            lines.reset();
        }
        self.tasks = self
            .plan
            .tasks
            .iter()
            .map(|t| (t.id, TaskState::Deploying))
            .collect();
        for tm in self.cluster.task_manager_ids() {
            let restore = match &latest {
                Some(checkpoint) => checkpoint
                    .task_states
                    .iter()
                    .filter(|(&task, _)| self.cluster.placement(task) == tm)
                    .map(|(&task, handle)| (task, handle.clone()))
                    .collect(),
                None => BTreeMap::new(),
            };
            let restored_checkpoint = latest.as_ref().map(|c| c.id);
            let message = Message::DeployTasks {
                attempt: self.attempt,
                restore,
                restored_checkpoint,
                force_full_snapshot: latest.as_ref().is_some_and(|c| !c.owned),
            };
            out.send(Address::TaskManager(tm), message);
        }
        out.trace(EngineEvent::Deployed {
            attempt: self.attempt,
            restored: latest.map(|c| c.id),
        });
        self.set_status(JobStatus::Created, out);
    }

    fn broadcast(&self, message: Message, out: &mut Outbox) {
        for tm in self.cluster.task_manager_ids() {
            out.send(Address::TaskManager(tm), message.clone());
        }
    }

    fn failover(&mut self, now: Tick, cause: String, out: &mut Outbox) {
        if self.status.is_terminal()
            || matches!(self.status, JobStatus::Initializing | JobStatus::Restarting)
        {
            return;
        }
        out.trace(EngineEvent::Failover { cause });
        let mut effects = Vec::new();
        if self.plan.has_bug(SeededBug::RestoreFromPending) {
            // Seeded bug: remember the newest pending checkpoint to restore it.
            self.pending_to_restore = self
                .coordinator
                .as_ref()
                .and_then(|c| c.newest_pending())
                .map(|(id, task_states)| CompletedCheckpoint {
                    id,
                    task_states,
                    metadata: None,
                    completed_at: now,
                    owned: true,
                });
        }
        if let Some(coordinator) = self.coordinator.as_mut() {
            coordinator.stop(CheckpointFailureReason::JobFailover, &mut effects);
        }
        self.apply(now, effects, out);
        if let Some(attempt) = self.deployed.take() {
            self.broadcast(Message::CancelTasks { attempt }, out);
        }
        self.tasks.clear();
        match self.restart.on_failure(now) {
            RestartDecision::RestartAt(at) => {
                self.restart_at = Some(at);
                self.set_status(JobStatus::Restarting, out);
            }
            RestartDecision::GiveUp => {
                probes::hit(Probe::RestartStrategyGaveUp);
                self.terminate(now, JobStatus::Failed, Leaving::Failed, out);
            }
        }
    }

    fn on_task_message(&mut self, now: Tick, message: Message, out: &mut Outbox) {
        let mut effects = Vec::new();
        match message {
            Message::TaskRunning { task, .. } => self.on_task_running(now, task, out),
            Message::TaskDataFinished { task, .. } => {
                self.on_task_data_finished(now, task, &mut effects)
            }
            Message::TaskFinished { task, .. } => {
                self.on_task_finished(now, task, &mut effects, out)
            }
            Message::TaskFailed { task, reason, .. } => {
                self.failover(now, format!("task {task} failed: {reason}"), out);
            }
            Message::Acknowledge {
                task,
                checkpoint,
                state,
                ..
            } => self.on_acknowledge(now, task, checkpoint, state, &mut effects, out),
            Message::Decline {
                task,
                checkpoint,
                reason,
                ..
            } => {
                self.coordinator_mut()
                    .on_decline(now, task, checkpoint, reason, &mut effects);
            }
            other => unreachable!("not a task message: {other:?}"),
        }
        self.apply(now, effects, out);
    }

    /// Once every task of a new deployment runs, the job runs and checkpointing starts.
    fn on_task_running(&mut self, now: Tick, task: TaskId, out: &mut Outbox) {
        self.set_task(task, TaskState::Running);
        if self.status == JobStatus::Created
            && self.tasks.values().all(|&s| s != TaskState::Deploying)
        {
            self.set_status(JobStatus::Running, out);
            let delay = self.cluster.first_trigger_delay_ticks;
            self.coordinator_mut().start(now, delay);
        }
    }

    /// Once every task has processed all its input, the final checkpoint is requested: a
    /// checkpoint triggered after that is each task's final one (Flink's per-task
    /// `finalCheckpointMinId`, FLIP-147), since every task takes its snapshot for it with
    /// nothing left to process. Checkpoints triggered while tasks still work off their input
    /// are ordinary ones (unaligned barriers overtake the input queued before its end).
    fn on_task_data_finished(
        &mut self,
        now: Tick,
        task: TaskId,
        effects: &mut Vec<CoordinatorEffect>,
    ) {
        self.set_task(task, TaskState::DataFinished);
        let all_done = (self.tasks.values())
            .all(|state| matches!(state, TaskState::DataFinished | TaskState::Finished));
        if all_done && self.status == JobStatus::Running {
            self.coordinator_mut()
                .request_final_checkpoint(now, effects);
        }
    }

    /// Once every task finished, so did the job.
    fn on_task_finished(
        &mut self,
        now: Tick,
        task: TaskId,
        effects: &mut Vec<CoordinatorEffect>,
        out: &mut Outbox,
    ) {
        self.set_task(task, TaskState::Finished);
        if self.tasks.values().all(|&s| s == TaskState::Finished) {
            self.coordinator_mut()
                .stop(CheckpointFailureReason::CoordinatorSuspend, effects);
            self.terminate(now, JobStatus::Finished, Leaving::Finished, out);
        }
    }

    /// Hands an acknowledgement to the coordinator, or declines it in the task's name when its
    /// state in memory would not fit the JobManager's budget.
    fn on_acknowledge(
        &mut self,
        now: Tick,
        task: TaskId,
        checkpoint: CheckpointId,
        state: StateHandle,
        effects: &mut Vec<CoordinatorEffect>,
        out: &mut Outbox,
    ) {
        let budget = self.plan.checkpoint.memory_storage.budget_bytes;
        let held = self.coordinator_mut().in_memory_bytes();
        let size = state.in_memory_bytes();
        if size > 0 && held + size > budget {
            // All state of all retained checkpoints must fit the JobManager's memory
            // (`JobManagerCheckpointStorage` Javadoc): refuse this one rather than run out.
            probes::hit(Probe::MemoryBudgetRefused);
            out.trace(EngineEvent::SnapshotRefused {
                task,
                checkpoint,
                reason: format!(
                    "{size} more bytes of state would exceed the JobManager's memory \
                     budget of {budget} bytes ({held} held)"
                ),
            });
            let reason = CheckpointFailureReason::Declined;
            self.coordinator_mut()
                .on_decline(now, task, checkpoint, reason, effects);
        } else {
            self.coordinator_mut()
                .on_acknowledge(now, task, checkpoint, state, effects);
        }
    }

    fn set_task(&mut self, task: TaskId, state: TaskState) {
        let entry = self
            .tasks
            .get_mut(&task)
            .expect("messages of the deployed attempt name its tasks");
        *entry = state;
    }

    fn on_storage_result(
        &mut self,
        now: Tick,
        purpose: Request,
        result: Result<StorageReply, StorageError>,
        out: &mut Outbox,
    ) {
        match purpose {
            Request::ListHa => self.on_ha_listed(now, result, out),
            Request::ReadHa(path) => self.on_ha_read(now, path, result, out),
            Request::WriteHa { write, version } => {
                self.on_ha_written(now, write, version, result, out)
            }
            Request::Metadata(checkpoint) => {
                self.on_metadata_written(now, checkpoint, result.is_ok(), out);
                self.try_deploy(now, out);
                // A completion that was settling when the job ended may settle here, by
                // failing: the clean-up that waited for it runs now.
                self.try_discard(now, out);
            }
            Request::Discard => {}
            Request::RestoreMetadata(path) => self.on_restore_metadata(now, path, result, out),
            Request::RestoreProbe => self.on_restore_probe(now, result, out),
            Request::RestoreVerify => self.on_restore_verify(now, result, out),
            Request::Sweep => self.on_swept(now, result, out),
        }
    }

    fn coordinator_mut(&mut self) -> &mut CheckpointCoordinator {
        self.coordinator
            .as_mut()
            .expect("the coordinator exists once the HA record was read")
    }

    fn hosts_tasks(&self, tm: TaskManagerId) -> bool {
        self.deployed.is_some()
            && self
                .tasks
                .keys()
                .any(|&task| self.cluster.placement(task) == tm)
    }
}

impl Node for JobManager {
    fn on_start(&mut self, now: Tick, out: &mut Outbox) {
        *self = JobManager::new(self.plan.clone(), self.cluster.clone());
        self.begin(now, out);
    }

    fn on_message(&mut self, now: Tick, _from: Address, message: Message, out: &mut Outbox) {
        self.handle_message(now, message, out);
        // An abort or a completion may have left no checkpoint pending.
        self.delete_unused_shared(now, out);
    }

    fn on_tick(&mut self, now: Tick, out: &mut Outbox) {
        self.handle_tick(now, out);
        self.delete_unused_shared(now, out);
    }

    fn next_deadline(&self) -> Option<Tick> {
        self.deadline()
    }
}

impl JobManager {
    fn handle_message(&mut self, now: Tick, message: Message, out: &mut Outbox) {
        match message {
            Message::RegisterTaskManager { task_manager } => {
                let lost_tasks = self.hosts_tasks(task_manager);
                self.task_managers.insert(task_manager, now);
                if lost_tasks {
                    self.failover(
                        now,
                        format!("{task_manager} restarted and lost its tasks"),
                        out,
                    );
                }
                if self.coordinator.is_some() {
                    self.try_deploy(now, out);
                }
            }
            Message::Heartbeat {
                task_manager,
                running,
            } => {
                self.task_managers.insert(task_manager, now);
                // Tasks of an attempt cancelled with the job, left running where the
                // cancellation never arrived (a partition, a lost message): nothing else would
                // ever stop them. (While the job runs, the next deployment replaces them.)
                let ended = self.status.is_terminal();
                if let Some(attempt) = running.filter(|&a| ended && self.deployed != Some(a)) {
                    let cancel = Message::CancelTasks { attempt };
                    out.send(Address::TaskManager(task_manager), cancel);
                }
                if self.coordinator.is_some() {
                    self.try_deploy(now, out);
                }
            }
            Message::CancelJob => self.cancel(now, out),
            Message::TriggerSavepoint => {
                let mut effects = Vec::new();
                let refused = match self.coordinator.as_mut() {
                    Some(coordinator) if self.status == JobStatus::Running => {
                        coordinator.request_savepoint(now, &mut effects).err()
                    }
                    _ => Some(SavepointRefused::NotRunning),
                };
                if let Some(reason) = refused {
                    let reason = reason.to_string();
                    out.trace(EngineEvent::SavepointRefused { reason });
                }
                self.apply(now, effects, out);
            }
            Message::StorageResult(response) => {
                // No answer is expected for a request that timed out or belongs to an
                // earlier life of this JobManager.
                if let Some((purpose, result)) = self.storage.answer(response) {
                    self.on_storage_result(now, purpose, result, out);
                }
            }
            Message::TaskRunning { attempt, .. }
            | Message::TaskDataFinished { attempt, .. }
            | Message::TaskFinished { attempt, .. }
            | Message::TaskFailed { attempt, .. }
            | Message::Acknowledge { attempt, .. }
            | Message::Decline { attempt, .. } => {
                if self.deployed == Some(attempt) {
                    self.on_task_message(now, message, out);
                }
            }
            Message::LocalSnapshotDone {
                attempt,
                snapshot,
                restored,
            } => {
                if self.deployed == Some(attempt) {
                    self.on_local_snapshot(now, *snapshot, restored, out);
                }
            }
            other => unreachable!("the JobManager does not handle {other:?}"),
        }
    }

    fn handle_tick(&mut self, now: Tick, out: &mut Outbox) {
        while let Some((purpose, error)) = self.storage.expire_next(now, out) {
            self.on_storage_result(now, purpose, Err(error), out);
        }
        if let EndRecord::RetryAt(at) = self.end_record {
            if at <= now {
                self.end_record = EndRecord::NotDurable;
                self.write_ha(now, HaWrite::Ended, out);
            }
        }
        if let Some(sweep) = self.sweep.as_mut() {
            if sweep.again_at.is_some_and(|at| at <= now) {
                sweep.again_at = None;
                self.request_sweep(now, out);
            }
        }
        let timeout = self.cluster.heartbeat_timeout_ticks;
        let lost: Vec<TaskManagerId> = self
            .task_managers
            .iter()
            .filter(|(_, &seen)| now.since(seen) > timeout)
            .map(|(&tm, _)| tm)
            .collect();
        for tm in lost {
            self.task_managers.remove(&tm);
            if self.hosts_tasks(tm) {
                probes::hit(Probe::HeartbeatTimedOut);
                self.failover(now, format!("heartbeat of {tm} timed out"), out);
            }
        }
        if let Some(coordinator) = self.coordinator.as_mut() {
            let mut effects = Vec::new();
            coordinator.on_tick(now, &mut effects);
            self.apply(now, effects, out);
            self.try_deploy(now, out);
        }
    }

    fn deadline(&self) -> Option<Tick> {
        let timeout = self.cluster.heartbeat_timeout_ticks;
        let heartbeat = self
            .task_managers
            .values()
            .map(|&seen| seen.after(timeout + 1))
            .min();
        let coordinator = self.coordinator.as_ref().and_then(|c| c.next_deadline());
        let storage = self.storage.next_deadline();
        let sweep = self.sweep.as_ref().and_then(|s| s.again_at);
        let end_retry = match self.end_record {
            EndRecord::RetryAt(at) => Some(at),
            _ => None,
        };
        [
            heartbeat,
            coordinator,
            self.restart_at,
            storage,
            sweep,
            end_retry,
        ]
        .into_iter()
        .flatten()
        .min()
    }
}
