//! The HA record: read at start (the newest readable version, a torn one skipped), adopted,
//! written one version at a time, the oldest versions deleted.

use super::{
    shared_files, EndRecord, HaRecord, HaVersions, HaWrite, JobManager, Request,
    HA_READS_BEFORE_JUDGING,
};
use crate::bugs::SeededBug;
use crate::codec::{self, DecodeError, Kind};
use crate::coordinator::CheckpointCoordinator;
use crate::ids::{Attempt, CheckpointId, Tick};
use crate::messages::{Message, Outbox};
use crate::probes::{self, Probe};
use crate::retention::ClaimMode;
use crate::retention::{Leaving, SharedStateRegistry};
use crate::storage::{StorageError, StorageOp, StoragePath, StorageReply};
use crate::storage_client::StorageClient;
use crate::store::{CompletedCheckpoint, CompletedCheckpointStore};
use crate::trace::{EngineEvent, JobStatus};

impl JobManager {
    pub(super) fn list_ha(&mut self, now: Tick, out: &mut Outbox) {
        let prefix = StoragePath::ha_dir(&self.plan.job);
        self.request(now, Request::ListHa, StorageOp::List { prefix }, out);
    }

    /// An HA write got no answer: it may or may not be durable. Start over from storage, which
    /// holds the truth, as a JobManager that lost leadership and regained it would.
    pub(super) fn start_over(&mut self, now: Tick, cause: String, out: &mut Outbox) {
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

    pub(super) fn on_ha_listed(
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

    pub(super) fn read_next_ha(&mut self, now: Tick, out: &mut Outbox) {
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

    pub(super) fn on_ha_read(
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

    pub(super) fn reject_ha(
        &mut self,
        now: Tick,
        path: StoragePath,
        error: String,
        out: &mut Outbox,
    ) {
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

    pub(super) fn adopt(&mut self, now: Tick, record: HaRecord, out: &mut Outbox) {
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

    pub(super) fn write_ha(&mut self, now: Tick, write: HaWrite, out: &mut Outbox) {
        self.ha_queue.push_back(write);
        self.send_next_ha(now, out);
    }

    pub(super) fn send_next_ha(&mut self, now: Tick, out: &mut Outbox) {
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
    pub(super) fn delete_old_ha_versions(&mut self, now: Tick, version: u64, out: &mut Outbox) {
        if let Some(previous) = self.ha_versions.durable.replace(version) {
            for old in self.ha_versions.oldest..previous {
                let prefix = StoragePath::ha_record(&self.plan.job, old);
                self.request(now, Request::Discard, StorageOp::DeleteAll { prefix }, out);
            }
            self.ha_versions.oldest = self.ha_versions.oldest.max(previous);
        }
    }

    pub(super) fn on_ha_written(
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
}
