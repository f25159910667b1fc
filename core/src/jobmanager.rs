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
use crate::codec::{self, DecodeError, Kind};
use crate::config::{CheckpointStorageKind, RestartDecision, RestartStrategy};
use crate::coordinator::{CheckpointCoordinator, CoordinatorEffect, SavepointRefused};
use crate::ids::{Attempt, CheckpointId, TaskId, TaskManagerId, Tick};
use crate::job::ExecutionPlan;
use crate::messages::{Address, CheckpointFailureReason, Message, Node, Outbox};
use crate::probes::{self, Probe};
use crate::retention::ClaimMode;
use crate::retention::{Leaving, SharedStateRegistry, SnapshotKind};
use crate::storage::{
    StateHandle, StateLocation, StorageError, StorageOp, StoragePath, StorageReply,
};
use crate::storage_client::StorageClient;
use crate::store::{
    read_metadata, CheckpointMetadata, CheckpointProperties, CompletedCheckpoint,
    CompletedCheckpointStore, MetadataFile, RestoreError,
};
use crate::trace::{EngineEvent, JobStatus};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

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
}

/// The shared files a completed checkpoint's state consists of.
fn shared_files(checkpoint: &CompletedCheckpoint) -> Vec<StoragePath> {
    checkpoint
        .task_states
        .values()
        .flat_map(|state| &state.shared)
        .filter_map(|file| match &file.location {
            StateLocation::File(path) => Some(path.clone()),
            _ => None,
        })
        .collect()
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

    /// Restarts granted by the restart strategy.
    pub fn restarts(&self) -> u32 {
        self.restart.restarts()
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

    fn list_ha(&mut self, now: Tick, out: &mut Outbox) {
        let prefix = StoragePath::ha_dir(&self.plan.job);
        self.request(now, Request::ListHa, StorageOp::List { prefix }, out);
    }

    /// An HA write got no answer: it may or may not be durable. Start over from storage, which
    /// holds the truth, as a JobManager that lost leadership and regained it would.
    fn start_over(&mut self, now: Tick, cause: String, out: &mut Outbox) {
        probes::hit(Probe::JobManagerStartedOver);
        out.trace(EngineEvent::Failover { cause });
        if let Some(attempt) = self.deployed {
            self.broadcast(Message::CancelTasks { attempt }, out);
        }
        // The same client keeps request ids unique; the old incarnation's answers are ignored.
        let mut storage = std::mem::replace(&mut self.storage, StorageClient::new(1));
        storage.forget_all();
        let task_managers = std::mem::take(&mut self.task_managers);
        *self = JobManager::new(self.plan.clone(), self.cluster.clone());
        self.storage = storage;
        self.task_managers = task_managers;
        self.begin(now, out);
    }

    fn on_ha_listed(
        &mut self,
        now: Tick,
        result: Result<StorageReply, StorageError>,
        out: &mut Outbox,
    ) {
        let paths = match result {
            Ok(StorageReply::Listed(paths)) => paths,
            Ok(reply) => unreachable!("a list answers paths, not {reply:?}"),
            Err(_transient) => return self.list_ha(now, out),
        };
        let mut versions: Vec<(u64, StoragePath)> = paths
            .into_iter()
            .filter_map(|path| path.ha_record_version().map(|v| (v, path)))
            .collect();
        versions.sort();
        self.ha_versions = HaVersions {
            next: versions.last().map_or(0, |(v, _)| v + 1),
            oldest: versions.first().map_or(0, |(v, _)| *v),
            to_read: versions.into_iter().map(|(_, path)| path).collect(),
            ..HaVersions::default()
        };
        self.read_next_ha(now, out);
    }

    fn read_next_ha(&mut self, now: Tick, out: &mut Outbox) {
        match self.ha_versions.to_read.last().cloned() {
            Some(path) => {
                let op = StorageOp::Read { path: path.clone() };
                self.request(now, Request::ReadHa(path), op, out);
            }
            None if self.ha_versions.lost > 0 => {
                // A record vanished and none is readable: resuming from nothing could replay
                // committed output. Fail, do not guess.
                let (rejected, lost) = (self.ha_versions.rejected, self.ha_versions.lost);
                let cause = format!("no readable HA record ({rejected} rejected, {lost} lost)");
                self.fail_before_running(cause, out);
            }
            // Every record is torn: none was ever durable, so no JobManager acted on one, and
            // the job starts as if there were none (a swarm found a job failed for this).
            None if self.plan.restore.is_some() => self.read_restore_metadata(now, out),
            None => {
                let fresh = HaRecord {
                    job: self.plan.job.clone(),
                    next_checkpoint_id: CheckpointId::INITIAL,
                    attempt: Attempt(self.cluster.first_attempt),
                    completed: Vec::new(),
                    ended: None,
                };
                self.adopt(now, fresh, out);
            }
        }
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

    /// The path to restore from, as given: the directory and its `_metadata`.
    fn restore_paths(&self) -> Result<(StoragePath, StoragePath), RestoreError> {
        let restore = self.plan.restore.as_ref().expect("restoring");
        restore.paths().ok_or_else(|| RestoreError::NotFound {
            path: restore.path.clone(),
        })
    }

    /// A job without an HA record that is told to start from a snapshot path (`flink run -s`)
    /// reads its `_metadata` (`CheckpointCoordinator#restoreSavepoint`).
    fn read_restore_metadata(&mut self, now: Tick, out: &mut Outbox) {
        match self.restore_paths() {
            Ok((_, metadata)) => {
                let op = StorageOp::Read {
                    path: metadata.clone(),
                };
                self.request(now, Request::RestoreMetadata(metadata), op, out);
            }
            Err(error) => self.fail_restore(error, out),
        }
    }

    fn fail_restore(&mut self, error: RestoreError, out: &mut Outbox) {
        self.fail_before_running(error.to_string(), out);
    }

    /// The job cannot start (no trustworthy HA record, no usable snapshot): it fails for good.
    /// Nothing ran, so there is nothing to discard and no HA record to mark.
    fn fail_before_running(&mut self, cause: String, out: &mut Outbox) {
        out.trace(EngineEvent::Failover { cause });
        self.set_status(JobStatus::Failed, out);
    }

    fn on_restore_metadata(
        &mut self,
        now: Tick,
        path: StoragePath,
        result: Result<StorageReply, StorageError>,
        out: &mut Outbox,
    ) {
        let bytes = match result {
            Ok(StorageReply::Data(bytes)) => bytes,
            Ok(reply) => unreachable!("a read answers data, not {reply:?}"),
            Err(StorageError::NotFound { .. }) => {
                // Nothing there, or something that is not a snapshot? Look.
                let (prefix, _) = self.restore_paths().expect("resolved before");
                let op = StorageOp::List { prefix };
                return self.request(now, Request::RestoreProbe, op, out);
            }
            Err(_transient) => return self.read_restore_metadata(now, out),
        };
        let settings = self.plan.restore.clone().expect("restoring");
        let directory = path.parent().expect("a _metadata file has a directory");
        let restored = read_metadata(&path, &bytes)
            .map_err(RestoreError::from)
            .map(|file| file.resolved(&directory))
            .and_then(|file| {
                let states =
                    file.task_states_for(&path, &self.plan, settings.allow_non_restored_state)?;
                Ok((file, states))
            });
        let (file, task_states) = match restored {
            Ok(restored) => restored,
            Err(error) => return self.fail_restore(error, out),
        };
        // Checkpoints are not self-contained: check every file the metadata references exists,
        // so a moved checkpoint fails here, naming the file, not in every task.
        let directories: BTreeSet<StoragePath> = file
            .files()
            .filter_map(|handle| match &handle.location {
                StateLocation::File(file) => file.parent(),
                StateLocation::InMemory(_) | StateLocation::Relative(_) => None,
            })
            .collect();
        self.path_restore = Some(PathRestore {
            metadata_path: path,
            file,
            task_states,
            directories_left: directories.len(),
            found: BTreeSet::new(),
        });
        for prefix in directories {
            self.request(now, Request::RestoreVerify, StorageOp::List { prefix }, out);
        }
        self.finish_path_restore(now, out);
    }

    fn on_restore_probe(
        &mut self,
        now: Tick,
        result: Result<StorageReply, StorageError>,
        out: &mut Outbox,
    ) {
        let given = self.plan.restore.as_ref().expect("restoring").path.clone();
        match result {
            Ok(StorageReply::Listed(paths)) if paths.is_empty() => {
                self.fail_restore(RestoreError::NotFound { path: given }, out)
            }
            Ok(StorageReply::Listed(_)) => {
                self.fail_restore(RestoreError::NotASnapshot { path: given }, out)
            }
            Ok(reply) => unreachable!("a list answers paths, not {reply:?}"),
            Err(_transient) => self.read_restore_metadata(now, out),
        }
    }

    fn on_restore_verify(
        &mut self,
        now: Tick,
        result: Result<StorageReply, StorageError>,
        out: &mut Outbox,
    ) {
        match result {
            Ok(StorageReply::Listed(paths)) => {
                // An answer of a round that a failed list started over is not waited for.
                let Some(restore) = self.path_restore.as_mut() else {
                    return;
                };
                restore.found.extend(paths);
                restore.directories_left -= 1;
                self.finish_path_restore(now, out);
            }
            Ok(reply) => unreachable!("a list answers paths, not {reply:?}"),
            // Start the restore over: simpler than remembering which list failed.
            Err(_transient) => {
                self.path_restore = None;
                self.read_restore_metadata(now, out);
            }
        }
    }

    /// Once every referenced directory is listed: fail naming a missing file, or adopt the
    /// snapshot as the only completed checkpoint and continue with the id after it.
    fn finish_path_restore(&mut self, now: Tick, out: &mut Outbox) {
        let Some(restore) = &self.path_restore else {
            return;
        };
        if restore.directories_left > 0 {
            return;
        }
        let restore = self.path_restore.take().expect("checked");
        let missing = restore
            .file
            .files()
            .find_map(|handle| match &handle.location {
                StateLocation::File(file) if !restore.found.contains(file) => {
                    Some(file.to_string())
                }
                _ => None,
            });
        if let Some(file) = missing {
            let path = restore.metadata_path;
            return self.fail_restore(RestoreError::MissingFile { path, file }, out);
        }
        let claim = self.plan.restore.as_ref().expect("restoring").claim;
        let checkpoint = restore.file.checkpoint;
        probes::hit(Probe::RestoredFromPath);
        if claim == ClaimMode::Claim {
            probes::hit(Probe::RestoredFromPathClaimed);
        }
        out.trace(EngineEvent::RestoredFromPath {
            path: restore.metadata_path.to_string(),
            checkpoint,
            claimed: claim == ClaimMode::Claim,
            savepoint: restore.file.properties.savepoint,
        });
        let record = HaRecord {
            job: self.plan.job.clone(),
            next_checkpoint_id: checkpoint.next(),
            attempt: Attempt(self.cluster.first_attempt),
            completed: vec![CompletedCheckpoint {
                id: checkpoint,
                task_states: restore.task_states,
                metadata: Some(restore.metadata_path),
                completed_at: now,
                // Savepoints are never the job's to delete; checkpoints only when claimed.
                owned: (claim == ClaimMode::Claim
                    || self.plan.has_bug(SeededBug::NoClaimDeletesRestored))
                    && !restore.file.properties.savepoint,
            }],
            ended: None,
        };
        self.adopt(now, record, out);
    }

    fn on_ha_read(
        &mut self,
        now: Tick,
        path: StoragePath,
        result: Result<StorageReply, StorageError>,
        out: &mut Outbox,
    ) {
        let bytes = match result {
            Ok(StorageReply::Data(bytes)) => bytes,
            Ok(reply) => unreachable!("a read answers data, not {reply:?}"),
            Err(error @ StorageError::NotFound { .. }) => {
                self.ha_versions.lost += 1;
                return self.reject_ha(now, path, error.to_string(), out);
            }
            // An I/O failure or no answer: ask again.
            Err(_transient) => return self.read_next_ha(now, out),
        };
        let error = match codec::decode::<HaRecord>(Kind::HaRecord, &bytes) {
            Ok(record) => {
                self.ha_versions.durable = path.ha_record_version();
                return self.adopt(now, record, out);
            }
            Err(error) => error,
        };
        // A bit flipped on the way is not the file's fault: read again before judging it.
        self.ha_versions.failed_reads += 1;
        if matches!(error, DecodeError::Truncated { .. }) {
            self.ha_versions.truncated_reads += 1;
        }
        if self.ha_versions.failed_reads < HA_READS_BEFORE_JUDGING {
            return self.read_next_ha(now, out);
        }
        // Judged by most reads: one of them may have had a bit flipped on the way.
        if 2 * self.ha_versions.truncated_reads > self.ha_versions.failed_reads {
            // Torn: the write never completed, so no JobManager acted on it.
            return self.reject_ha(now, path, error.to_string(), out);
        }
        // Complete but damaged: it may hold a completion that tasks committed, so resuming
        // from an older version could replay committed output. Fail, do not guess.
        self.fail_before_running(format!("HA record {path} is corrupted: {error}"), out);
    }

    fn reject_ha(&mut self, now: Tick, path: StoragePath, error: String, out: &mut Outbox) {
        probes::hit(Probe::HaRecordTornSkipped);
        out.trace(EngineEvent::HaRecordRejected {
            path: path.to_string(),
            error,
        });
        self.ha_versions.to_read.pop();
        self.ha_versions.rejected += 1;
        self.ha_versions.failed_reads = 0;
        self.ha_versions.truncated_reads = 0;
        self.read_next_ha(now, out);
    }

    fn adopt(&mut self, now: Tick, record: HaRecord, out: &mut Outbox) {
        let config = &self.plan.checkpoint;
        assert_eq!(record.job, self.plan.job, "HA record of another job");
        self.attempt = record.attempt;
        // The registry is rebuilt from the store, as Flink's is on recovery.
        self.shared = SharedStateRegistry::default();
        for checkpoint in &record.completed {
            let files = shared_files(checkpoint);
            if checkpoint.owned {
                self.shared.register(checkpoint.id, files);
            } else {
                self.shared
                    .register_restored(checkpoint.id, files, ClaimMode::NoClaim);
            }
        }
        out.trace(EngineEvent::HaRecordAdopted {
            completed: record.completed.iter().map(|c| c.id).collect(),
        });
        let store = CompletedCheckpointStore::from_checkpoints(config.retained, record.completed);
        let tasks = self.plan.tasks.iter().map(|t| t.id).collect();
        let sources = self.plan.source_tasks().collect();
        let mut coordinator = CheckpointCoordinator::new(
            &self.plan.job,
            config.clone(),
            tasks,
            sources,
            record.next_checkpoint_id,
            store,
        );
        if self.plan.has_bug(SeededBug::PeriodicNotResumed) {
            coordinator.seed_periodic_not_resumed();
        }
        if self.plan.has_bug(SeededBug::FinalizeFailureCounted) {
            coordinator.seed_finalize_failure_counted();
        }
        self.coordinator = Some(coordinator);
        if let Some(ended) = record.ended {
            // The job ended before this JobManager started: it stays ended. The clean-up that
            // follows the end may not have happened (the record is written first): do it again;
            // deleting is idempotent. (Flink retries the clean-up of a job its JobResultStore
            // marks dirty the same way.)
            probes::hit(Probe::EndedJobAdopted);
            self.set_status(ended, out);
            self.end_recorded(out);
            self.discard_on_termination(now, Leaving::ended(ended), out);
            return;
        }
        self.set_status(JobStatus::Created, out);
        self.restart_at = Some(now);
        if std::mem::take(&mut self.cancel_requested) {
            return self.cancel(now, out);
        }
        self.try_deploy(now, out);
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

    fn write_ha(&mut self, now: Tick, write: HaWrite, out: &mut Outbox) {
        self.ha_queue.push_back(write);
        self.send_next_ha(now, out);
    }

    fn send_next_ha(&mut self, now: Tick, out: &mut Outbox) {
        if self.ha_in_flight {
            return;
        }
        let Some(write) = self.ha_queue.pop_front() else {
            return;
        };
        let coordinator = self
            .coordinator
            .as_ref()
            .expect("HA writes after the HA record was read");
        let mut completed: Vec<CompletedCheckpoint> =
            coordinator.store().checkpoints().cloned().collect();
        if let HaWrite::Completion(checkpoint) = &write {
            completed.push(checkpoint.clone());
            let excess = completed
                .len()
                .saturating_sub(self.plan.checkpoint.retained as usize);
            completed.drain(..excess);
        }
        let record = HaRecord {
            job: self.plan.job.clone(),
            next_checkpoint_id: coordinator.next_id(),
            attempt: self.attempt,
            completed,
            ended: self.status.is_terminal().then_some(self.status),
        };
        let bytes = codec::encode(Kind::HaRecord, &record);
        let version = self.ha_versions.next;
        self.ha_versions.next += 1;
        let path = StoragePath::ha_record(&self.plan.job, version);
        self.ha_in_flight = true;
        self.request(
            now,
            Request::WriteHa { write, version },
            StorageOp::Write { path, bytes },
            out,
        );
    }

    /// Keeps the newest two durable versions: the newest, and the one before in case the
    /// newest is damaged later.
    fn delete_old_ha_versions(&mut self, now: Tick, version: u64, out: &mut Outbox) {
        if let Some(previous) = self.ha_versions.durable.replace(version) {
            for old in self.ha_versions.oldest..previous {
                let prefix = StoragePath::ha_record(&self.plan.job, old);
                self.request(now, Request::Discard, StorageOp::DeleteAll { prefix }, out);
            }
            self.ha_versions.oldest = self.ha_versions.oldest.max(previous);
        }
    }

    fn on_ha_written(
        &mut self,
        now: Tick,
        write: HaWrite,
        version: u64,
        result: Result<StorageReply, StorageError>,
        out: &mut Outbox,
    ) {
        if let Err(error @ StorageError::TimedOut { .. }) = &result {
            if !self.status.is_terminal() {
                let cause = format!("HA record write outcome unknown: {error}");
                return self.start_over(now, cause, out);
            }
        }
        let written = result.is_ok();
        if written {
            self.delete_old_ha_versions(now, version, out);
        }
        self.ha_in_flight = false;
        let mut effects = Vec::new();
        let coordinator = self
            .coordinator
            .as_mut()
            .expect("HA writes after the HA record was read");
        match write {
            HaWrite::Counter => coordinator.on_counter_persisted(now, written, &mut effects),
            HaWrite::Completion(checkpoint) => {
                if written {
                    // Registered before the store subsumes, so nothing it uses is deleted.
                    self.shared
                        .register(checkpoint.id, shared_files(&checkpoint));
                }
                coordinator.on_completion_persisted(now, checkpoint, written, &mut effects)
            }
            // An ended job is not deployed again.
            HaWrite::Attempt if self.status.is_terminal() => {}
            HaWrite::Attempt if written => self.deploy(out),
            HaWrite::Attempt => {
                self.restart_at = Some(now.after(self.cluster.heartbeat_interval_ticks))
            }
            HaWrite::Ended if written => self.end_recorded(out),
            HaWrite::Ended => {
                probes::hit(Probe::EndRecordRetried);
                // Flink retries its job-result store until the end is recorded; so does this.
                let at = now.after(self.cluster.heartbeat_interval_ticks);
                self.end_record = EndRecord::RetryAt(at);
            }
        }
        self.apply(now, effects, out);
        self.delete_unused_shared(now, out);
        self.send_next_ha(now, out);
        self.try_deploy(now, out);
        self.try_discard(now, out);
    }

    /// Seeded bug [`SeededBug::AbortDiscardsPending`]: deletes what the pending checkpoints
    /// uploaded so far.
    fn discard_pending(&mut self, now: Tick, out: &mut Outbox) {
        let CheckpointStorageKind::FileSystem(root) = self.plan.checkpoint.storage(&self.plan.job)
        else {
            return;
        };
        for id in self.coordinator_mut().pending_ids() {
            let prefix = StoragePath::checkpoint_dir(root.as_str(), id);
            self.request(now, Request::Discard, StorageOp::DeleteAll { prefix }, out);
        }
    }

    fn on_metadata_written(
        &mut self,
        now: Tick,
        checkpoint: CheckpointId,
        written: bool,
        out: &mut Outbox,
    ) {
        // Seeded bug: the answer is handled twice, which the coordinator's assertions catch.
        let times = if self.plan.has_bug(SeededBug::MetadataAnsweredTwice) {
            2
        } else {
            1
        };
        for _ in 0..times {
            let mut effects = Vec::new();
            self.coordinator_mut()
                .on_metadata_written(now, checkpoint, written, &mut effects);
            self.apply(now, effects, out);
        }
    }

    fn apply(&mut self, now: Tick, effects: Vec<CoordinatorEffect>, out: &mut Outbox) {
        for effect in effects {
            match effect {
                CoordinatorEffect::PersistCounter => self.write_ha(now, HaWrite::Counter, out),
                CoordinatorEffect::Trigger {
                    checkpoint,
                    savepoint,
                    sources,
                } => self.trigger_sources(checkpoint, savepoint, sources, out),
                CoordinatorEffect::WriteMetadata {
                    savepoint,
                    path: Some(path),
                    metadata,
                } => self.write_metadata(now, savepoint, path, &metadata, out),
                CoordinatorEffect::WriteMetadata {
                    path: None,
                    metadata,
                    ..
                } => {
                    // JobManagerCheckpointStorage: the metadata stays in memory, "written" at once.
                    self.on_metadata_written(now, metadata.checkpoint, true, out);
                }
                CoordinatorEffect::PersistCompletion(checkpoint) => {
                    self.write_ha(now, HaWrite::Completion(checkpoint), out)
                }
                CoordinatorEffect::NotifyComplete {
                    checkpoint,
                    final_checkpoint,
                } => {
                    if let Some(attempt) = self.deployed {
                        let message = Message::NotifyCheckpointComplete {
                            attempt,
                            checkpoint,
                            final_checkpoint,
                        };
                        self.broadcast(message, out);
                    }
                }
                CoordinatorEffect::NotifyAborted {
                    checkpoint,
                    latest_completed,
                } => {
                    if let Some(attempt) = self.deployed {
                        let message = Message::NotifyCheckpointAborted {
                            attempt,
                            checkpoint,
                            latest_completed,
                        };
                        self.broadcast(message, out);
                    }
                }
                CoordinatorEffect::Discard {
                    checkpoint,
                    savepoint,
                } => self.discard(now, checkpoint, savepoint, out),
                CoordinatorEffect::DiscardCompleted(checkpoint) => {
                    self.discard_completed(now, &checkpoint, out)
                }
                CoordinatorEffect::FailJob { checkpoint, reason } => {
                    let cause = format!("exceeded checkpoint tolerable failure threshold at {checkpoint} ({reason:?})");
                    self.failover(now, cause, out);
                }
                CoordinatorEffect::Trace(event) => out.trace(event),
            }
        }
    }

    /// Sends the barrier of `checkpoint` to the source tasks, where it enters the stream.
    fn trigger_sources(
        &self,
        checkpoint: CheckpointId,
        savepoint: bool,
        sources: Vec<TaskId>,
        out: &mut Outbox,
    ) {
        let attempt = self.deployed.expect("triggers only while deployed");
        for task in sources {
            let barrier = crate::record::CheckpointBarrier {
                id: checkpoint,
                savepoint,
            };
            let message = Message::TriggerCheckpoint {
                attempt,
                task,
                barrier,
            };
            out.send(Address::TaskManager(self.cluster.placement(task)), message);
        }
    }

    fn write_metadata(
        &mut self,
        now: Tick,
        savepoint: bool,
        path: StoragePath,
        metadata: &CheckpointMetadata,
        out: &mut Outbox,
    ) {
        let properties = CheckpointProperties {
            savepoint,
            retention: self.plan.checkpoint.retention,
        };
        let mut file = MetadataFile::new(&self.plan, metadata, properties);
        // Exclusive files are named relative to `_metadata` (Flink's
        // RelativeFileStateHandle); shared runs keep their absolute paths, so a
        // savepoint (all exclusive) can be moved and an incremental checkpoint
        // cannot (`FsCheckpointStreamFactory`, `FsCheckpointStorageAccess`).
        let directory = path.parent().expect("a _metadata file has a directory");
        file.relativize(&directory);
        let bytes = codec::encode(Kind::CheckpointMetadata, &file);
        self.request(
            now,
            Request::Metadata(metadata.checkpoint),
            StorageOp::Write { path, bytes },
            out,
        );
    }

    /// Deletes what an aborted checkpoint or savepoint wrote.
    fn discard(&mut self, now: Tick, checkpoint: CheckpointId, savepoint: bool, out: &mut Outbox) {
        // State in the JobManager's memory goes with the checkpoint's handles.
        let config = &self.plan.checkpoint;
        let directory = match config.storage(&self.plan.job) {
            _ if savepoint => config.savepoint_dir(&self.plan.job, checkpoint),
            CheckpointStorageKind::FileSystem(root) => {
                Some(StoragePath::checkpoint_dir(root.as_str(), checkpoint))
            }
            CheckpointStorageKind::JobManager(_) => None,
        };
        if let Some(prefix) = directory {
            self.request(now, Request::Discard, StorageOp::DeleteAll { prefix }, out);
        }
        if self.plan.has_bug(SeededBug::AbortDiscardsPending) {
            self.discard_pending(now, out);
        }
    }

    /// Deletes the exclusive state of a checkpoint that left the store, if the job owns it.
    fn discard_completed(&mut self, now: Tick, checkpoint: &CompletedCheckpoint, out: &mut Outbox) {
        // Not owned: restored without claim; no path: state in memory. A claimed
        // snapshot whose directory holds this job's task-owned state keeps it.
        let directory = checkpoint
            .metadata
            .as_ref()
            .and_then(StoragePath::parent)
            .filter(|d| !self.holds_task_owned_state(d));
        if let (true, Some(prefix)) = (checkpoint.owned, directory) {
            self.request(now, Request::Discard, StorageOp::DeleteAll { prefix }, out);
        }
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

    /// Once every source has read all its input, the final checkpoint is requested.
    fn on_task_data_finished(
        &mut self,
        now: Tick,
        task: TaskId,
        effects: &mut Vec<CoordinatorEffect>,
    ) {
        self.set_task(task, TaskState::DataFinished);
        let sources_done = self.plan.source_tasks().all(|s| {
            matches!(
                self.tasks[&s],
                TaskState::DataFinished | TaskState::Finished
            )
        });
        if sources_done && self.status == JobStatus::Running {
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

    /// The job ended for good: delete the retained checkpoints the retention policy does not
    /// keep (`CompletedCheckpoint#shouldBeDiscardedOnShutdown`, called by Flink's
    /// `CompletedCheckpointStore#shutdown`). The job's directory stays; so do the HA records, which
    /// say which checkpoints exist.
    fn discard_on_termination(&mut self, now: Tick, reason: Leaving, out: &mut Outbox) {
        let kind = SnapshotKind::Checkpoint(self.plan.checkpoint.retention);
        let Some(coordinator) = self.coordinator.as_ref() else {
            return;
        };
        let discarded = kind.discarded_when(reason);
        let kept: BTreeSet<String> = if discarded {
            BTreeSet::new()
        } else {
            coordinator
                .store()
                .checkpoints()
                .flat_map(|c| c.files())
                .collect()
        };
        if discarded {
            // Only what the job owns (not a snapshot restored without claim), and only files
            // (state in memory goes with the JobManager).
            let doomed: Vec<StoragePath> = coordinator
                .store()
                .checkpoints()
                .filter(|c| c.owned)
                .filter_map(|c| c.metadata.as_ref().and_then(StoragePath::parent))
                .collect();
            let unused = self.shared.unregister_unused(CheckpointId(u64::MAX));
            for prefix in doomed.into_iter().chain(unused) {
                self.request(now, Request::Discard, StorageOp::DeleteAll { prefix }, out);
            }
        }
        // Orphans too: files of aborted snapshots that landed after their discard, torn files
        // of a storage crash, runs no completed checkpoint took up. Swept now and once more
        // after a storage timeout, for writes still on their way now. Not for a job restored
        // from a snapshot inside its own directory: that is another run's, and its files are
        // not the job's to delete. (Flink leaves orphans.)
        if !self.restored_from_own_directory() {
            let again_at = Some(now.after(self.cluster.storage_timeout_ticks));
            self.sweep = Some(Sweep { kept, again_at });
            self.request_sweep(now, out);
        }
    }

    /// Whether the job started from a snapshot under its own checkpoint directory.
    fn restored_from_own_directory(&self) -> bool {
        let Some(restore) = &self.plan.restore else {
            return false;
        };
        match self.plan.checkpoint.storage(&self.plan.job) {
            CheckpointStorageKind::FileSystem(root) => restore
                .paths()
                .is_none_or(|(directory, _)| directory.starts_with(&root)),
            CheckpointStorageKind::JobManager(_) => false,
        }
    }

    fn request_sweep(&mut self, now: Tick, out: &mut Outbox) {
        let storage = self.plan.checkpoint.storage(&self.plan.job);
        if let CheckpointStorageKind::FileSystem(root) = storage {
            self.request(now, Request::Sweep, StorageOp::List { prefix: root }, out);
        }
    }

    /// Deletes what a sweep found, except the files of the checkpoints the job keeps.
    fn on_swept(
        &mut self,
        now: Tick,
        result: Result<StorageReply, StorageError>,
        out: &mut Outbox,
    ) {
        let (Ok(StorageReply::Listed(paths)), Some(sweep)) = (result, &self.sweep) else {
            return; // Left to the second sweep; after it, a leak the storage checker reports.
        };
        // Savepoints belong to the user, wherever their directory is.
        let savepoints = self.plan.checkpoint.savepoint_directory.as_deref();
        let savepoints = savepoints.and_then(|dir| StoragePath::new(dir).ok());
        let doomed: Vec<StoragePath> = paths
            .into_iter()
            .filter(|path| !sweep.kept.contains(path.as_str()))
            .filter(|path| savepoints.as_ref().is_none_or(|dir| !path.starts_with(dir)))
            .collect();
        for prefix in doomed {
            self.request(now, Request::Discard, StorageOp::DeleteAll { prefix }, out);
        }
    }

    /// A client cancels the job: tasks stop, pending checkpoints are aborted, and retained
    /// checkpoints are deleted unless the retention policy keeps them on cancellation.
    fn cancel(&mut self, now: Tick, out: &mut Outbox) {
        if self.status.is_terminal() {
            return;
        }
        probes::hit(Probe::JobCancelled);
        if self.coordinator.is_none() {
            // Still reading the HA record: cancel once it is read.
            self.cancel_requested = true;
            return;
        }
        let mut effects = Vec::new();
        self.coordinator_mut()
            .stop(CheckpointFailureReason::CoordinatorSuspend, &mut effects);
        self.apply(now, effects, out);
        if let Some(attempt) = self.deployed.take() {
            self.broadcast(Message::CancelTasks { attempt }, out);
        }
        self.tasks.clear();
        self.restart_at = None;
        self.terminate(now, JobStatus::Canceled, Leaving::Canceled, out);
    }

    /// The job ended for good: record it durably, and delete what the retention policy does
    /// not keep once no completion is still settling (it would add a checkpoint after the
    /// deletion otherwise).
    fn terminate(&mut self, now: Tick, status: JobStatus, reason: Leaving, out: &mut Outbox) {
        assert!(status.is_terminal(), "{status:?} does not end a job");
        self.set_status(status, out);
        self.pending_discard = Some(reason);
        self.write_ha(now, HaWrite::Ended, out);
        self.try_discard(now, out);
    }

    fn end_recorded(&mut self, out: &mut Outbox) {
        assert!(
            self.status.is_terminal(),
            "only an ended job records its end"
        );
        self.end_record = EndRecord::Durable;
        out.trace(EngineEvent::EndRecorded);
    }

    fn try_discard(&mut self, now: Tick, out: &mut Outbox) {
        let settled = self
            .coordinator
            .as_ref()
            .is_some_and(|c| !c.is_finalizing());
        let recorded = self.end_record == EndRecord::Durable;
        if settled && recorded && !self.ha_in_flight && self.ha_queue.is_empty() {
            if let Some(reason) = self.pending_discard.take() {
                self.discard_on_termination(now, reason, out);
            }
        }
    }

    /// Deletes the shared files no retained checkpoint uses any more
    /// (`SharedStateRegistryImpl#unregisterUnusedState`), but
    /// only while no checkpoint is pending: a pending snapshot may have been taken on top of a
    /// checkpoint that a newer completion just subsumed, and use its runs.
    fn delete_unused_shared(&mut self, now: Tick, out: &mut Outbox) {
        let Some(coordinator) = self.coordinator.as_ref() else {
            return;
        };
        if coordinator.has_pending() || self.status.is_terminal() {
            return;
        }
        let retained: Vec<CheckpointId> = coordinator.store().checkpoints().map(|c| c.id).collect();
        let bound = if self.plan.has_bug(SeededBug::RegistryDeletesReferenced) {
            // Seeded bug: the newest retained checkpoint as the bound, not the oldest.
            retained.last().copied()
        } else {
            retained.first().copied()
        };
        let Some(lowest) = bound else {
            return;
        };
        for prefix in self.shared.unregister_unused(lowest) {
            probes::hit(Probe::SharedRunsDeleted);
            self.request(now, Request::Discard, StorageOp::DeleteAll { prefix }, out);
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
            Message::Heartbeat { task_manager } => {
                self.task_managers.insert(task_manager, now);
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
