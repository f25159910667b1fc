//! Storage: every file a checkpoint consists of is durable before its completion is
//! persisted, retained as the policy says, and nothing is left behind.

use super::witness::{Finding, Witness, WitnessEvent};
use super::{summarize_findings, Property, Violation};
use super::{Checker, JudgedRun, Judgement};
use crate::disk::DiskEvent;
use crate::trace::{StorageEvent, TraceEntry, TraceEvent};
use snapsim_core::config::CheckpointStorageKind;
use snapsim_core::ids::{CheckpointId, Tick};
use snapsim_core::job::ExecutionPlan;
use snapsim_core::retention::{Leaving, SnapshotKind};
use snapsim_core::storage::StoragePath;
use snapsim_core::trace::{EngineEvent, JobStatus};
use std::collections::{BTreeMap, BTreeSet};
/// The snapshot a job started from (`flink run -s`), followed through the trace for the
/// storage check's ownership rule: none of its files is deleted while it is the job's
/// retained checkpoint (until the job's end is durable: then it goes as the retention policy
/// says), nor ever unless the job claimed it (CLAIM) and it is a checkpoint; under NO_CLAIM,
/// and a savepoint always, it stays the user's.
#[derive(Default)]
struct RestoredSnapshot {
    /// Its directory (with a trailing `/`), its id, whether the job owns it, whether still
    /// retained; `None` for a job that did not start from a path.
    seen: Option<(String, CheckpointId, bool, bool)>,
}

impl RestoredSnapshot {
    /// Takes `event` into account; returns the violation it is, if it is one.
    fn see(&mut self, event: &TraceEvent, at: Tick, end_recorded: bool) -> Option<String> {
        match event {
            TraceEvent::Engine(EngineEvent::RestoredFromPath {
                path,
                checkpoint,
                claimed,
                savepoint,
            }) => {
                let directory = path.strip_suffix("/_metadata").unwrap_or(path);
                let owned = *claimed && !*savepoint;
                self.seen = Some((format!("{directory}/"), *checkpoint, owned, true));
                None
            }
            TraceEvent::Engine(EngineEvent::CheckpointSubsumed { checkpoint }) => {
                if let Some((_, id, _, retained)) = self.seen.as_mut() {
                    *retained &= *id != *checkpoint;
                }
                None
            }
            TraceEvent::Storage(StorageEvent::Deleted { path }) => {
                let (directory, id, owned, retained) = self.seen.as_ref()?;
                let may_go = *owned && (!*retained || end_recorded);
                if !path.starts_with(directory.as_str()) || may_go {
                    return None;
                }
                let why = if *retained {
                    "while it is the job's retained checkpoint"
                } else {
                    "though the job does not own it (NO_CLAIM, or a savepoint)"
                };
                Some(format!(
                    "{path} of {id}, the snapshot the job started from, was deleted at {at} {why}"
                ))
            }
            _ => None,
        }
    }
}

/// Storage, four rules:
/// - durability: every file a checkpoint references (`CompletionPersisting.files`) is on the
///   storage node and durable when its completion is persisted: synced, and not deleted or lost
///   since (a file synced once and deleted before the completion is as broken as one never
///   synced, though only a later restore would show it);
/// - retention: until the job's end is durable in its HA record, no file a retained checkpoint
///   references (completed, not yet subsumed) is deleted;
/// - no leaks: once the job ended and its clean-up settled (`files` is the storage node's
///   listing then), the job's checkpoint directory holds no file this run wrote other than
///   those of the checkpoints its retention policy keeps. Files the run did not write (a
///   snapshot it restored from) are not its to delete;
/// - ownership: the snapshot a job started from is deleted only as its claim mode allows
///   (see `RestoredSnapshot`).
pub fn storage(
    trace: &[TraceEntry],
    plan: &ExecutionPlan,
    ended: Option<JobStatus>,
    files: &[String],
) -> Vec<Violation> {
    super::over(StorageCheck::new(plan, ended, files, trace), trace)
}

/// The storage checker's state while it walks the trace, with one method per event kind.
struct StorageCheck<'t> {
    plan: &'t ExecutionPlan,
    /// How the job ended, if it did.
    ended: Option<JobStatus>,
    /// The storage node's files when the run ended.
    files: &'t [String],
    /// The time of the last entry seen.
    last_at: Tick,
    /// The files this run wrote.
    written: BTreeSet<&'t str>,
    /// What the storage node holds now: each file's durability, and when gone files went.
    durable: BTreeMap<&'t str, bool>,
    gone: BTreeMap<&'t str, (Tick, Gone)>,
    restored: RestoredSnapshot,
    referenced: BTreeMap<CheckpointId, &'t [String]>,
    retained: BTreeSet<CheckpointId>,
    terminal: bool,
    end_recorded: bool,
    findings: Vec<Finding>,
    first_at: Option<Tick>,
    /// The job's trace, and how many of its entries were observed: witnesses read the
    /// writes, acknowledgements, aborts, deletions and completions behind a violation there.
    trace: &'t [TraceEntry],
    observed: usize,
}

impl<'t> Judgement<'t> for StorageCheck<'t> {
    fn observe(&mut self, entry: &'t TraceEntry) {
        self.observed += 1;
        self.last_at = entry.at;
        self.see(entry);
    }

    fn finish(mut self: Box<Self>) -> Vec<Violation> {
        let plan = self.plan;
        if let (Some(status), CheckpointStorageKind::FileSystem(root)) =
            (self.ended, plan.checkpoint.storage(&plan.job))
        {
            let (files, end) = (self.files, self.last_at);
            self.flag_leaks(plan, status, &root, files, end);
        }
        summarize_findings(Property::Storage, self.findings, self.first_at)
    }
}

impl<'t> StorageCheck<'t> {
    fn new(
        plan: &'t ExecutionPlan,
        ended: Option<JobStatus>,
        files: &'t [String],
        trace: &'t [TraceEntry],
    ) -> Self {
        StorageCheck {
            plan,
            ended,
            files,
            last_at: Tick(0),
            written: BTreeSet::new(),
            durable: BTreeMap::new(),
            gone: BTreeMap::new(),
            restored: RestoredSnapshot::default(),
            referenced: BTreeMap::new(),
            retained: BTreeSet::new(),
            terminal: false,
            end_recorded: false,
            findings: Vec::new(),
            first_at: None,
            trace,
            observed: 0,
        }
    }

    fn violation(&mut self, at: Tick, message: String, subject: &str, witness: Option<Witness>) {
        self.first_at = self.first_at.or(Some(at));
        let subject = subject.to_string();
        self.findings.push(Finding {
            message,
            subject,
            witness,
        });
    }

    /// The latest observed entry that `wanted` picks.
    fn latest(&self, wanted: impl Fn(&TraceEvent) -> bool) -> Option<&'t TraceEntry> {
        self.trace[..self.observed]
            .iter()
            .rev()
            .find(|entry| wanted(&entry.event))
    }

    /// The latest write of `file`.
    fn write_of(&self, file: &str) -> Option<&'t TraceEntry> {
        self.latest(|e| matches!(e, TraceEvent::Storage(StorageEvent::Written { path, .. }) if path == file))
    }

    /// The latest deletion of `file`.
    fn deletion_of(&self, file: &str) -> Option<&'t TraceEntry> {
        self.latest(
            |e| matches!(e, TraceEvent::Storage(StorageEvent::Deleted { path }) if path == file),
        )
    }

    /// The latest persisted completion of `checkpoint`.
    fn completion_of(&self, checkpoint: CheckpointId) -> Option<&'t TraceEntry> {
        self.latest(|e| {
            matches!(e, TraceEvent::Engine(EngineEvent::CompletionPersisting { checkpoint: c, .. }) if *c == checkpoint)
        })
    }

    /// Why deleting a file of the snapshot the job started from is wrong: how the job took it.
    fn restored_snapshot_deleted(&self, deleted: &TraceEntry) -> Option<Witness> {
        let started =
            self.latest(|e| matches!(e, TraceEvent::Engine(EngineEvent::RestoredFromPath { .. })))?;
        let TraceEvent::Engine(EngineEvent::RestoredFromPath {
            path,
            checkpoint,
            claimed,
            savepoint,
        }) = &started.event
        else {
            return None;
        };
        let TraceEvent::Storage(StorageEvent::Deleted { path: file }) = &deleted.event else {
            return None;
        };
        let mode = match (claimed, savepoint) {
            (_, true) => "a savepoint, which the job never owns",
            (false, false) => "without claiming it (NO_CLAIM): the job does not own its files",
            (true, false) => {
                "claiming it: the job owns it, but it is still its retained checkpoint"
            }
        };
        Some(Witness::new(
            "restored-snapshot-deleted",
            format!(
                "the job started at {} from {path} ({checkpoint}), {mode}; it deleted {file} at {}",
                started.at, deleted.at
            ),
            "files of the snapshot the job started from deleted".into(),
            vec![
                WitnessEvent::of(started, format!("the job starts from {path}")),
                WitnessEvent::of(deleted, format!("{file} deleted")),
            ],
        ))
    }

    /// Why a completion lists `file` that was not durable (or never written): the task that
    /// writes it acknowledged before it was synced.
    fn not_durable(&self, checkpoint: CheckpointId, file: &str) -> Option<Witness> {
        let written = self.write_of(file);
        let completion = self.completion_of(checkpoint)?;
        if let Some(started) = self.materialization_of(file) {
            return self.materialization_not_durable(checkpoint, file, started, completion);
        }
        let task = file.rsplit('/').next()?;
        let acknowledged = self.latest(|e| {
            matches!(e, TraceEvent::Engine(EngineEvent::Acknowledged { task: t, checkpoint: c })
                if *c == checkpoint && t.to_string() == task)
        })?;
        let state = match written {
            Some(written) => format!("written at {}, was not synced yet", written.at),
            None => "was not even written yet".to_string(),
        };
        let cause = format!(
            "{task} acknowledged {checkpoint} at {} though its file {file} {state}: the completion at {} counted a snapshot that a crash could still lose",
            acknowledged.at, completion.at
        );
        let mut events: Vec<WitnessEvent> = written
            .map(|written| WitnessEvent::of(written, format!("{file} written, not synced")))
            .into_iter()
            .collect();
        Some(Witness::new(
            "acknowledged-before-durable",
            cause,
            "snapshots acknowledged before they were durable".into(),
            {
                events.push(WitnessEvent::of(
                    acknowledged,
                    format!("{task} acknowledges {checkpoint}"),
                ));
                let what = format!("{checkpoint}'s completion persisted, listing {file}");
                events.push(WitnessEvent::of(completion, what));
                events.sort_by_key(|event| event.at);
                events
            },
        ))
    }

    /// The start of the changelog materialization that writes `file`, if one does.
    fn materialization_of(&self, file: &str) -> Option<&'t TraceEntry> {
        self.latest(|e| {
            matches!(e, TraceEvent::Engine(EngineEvent::MaterializationStarted { path, .. }) if path == file)
        })
    }

    /// Why a completion lists a changelog materialization that was not durable: the task
    /// referenced it (and dropped the log before it) before its upload succeeded.
    fn materialization_not_durable(
        &self,
        checkpoint: CheckpointId,
        file: &str,
        started: &'t TraceEntry,
        completion: &'t TraceEntry,
    ) -> Option<Witness> {
        let TraceEvent::Engine(EngineEvent::MaterializationStarted { task, number, .. }) =
            &started.event
        else {
            unreachable!("found as a materialization's start")
        };
        let failed = self.latest(|e| {
            matches!(e, TraceEvent::Engine(EngineEvent::MaterializationFailed { task: t, number: n, .. })
                if t == task && n == number)
        });
        let mut events = vec![WitnessEvent::of(
            started,
            format!("{task} starts materialization {number}"),
        )];
        let outcome = match failed {
            Some(failed) => {
                events.push(WitnessEvent::of(
                    failed,
                    format!("materialization {number} fails"),
                ));
                format!("its upload failed at {}", failed.at)
            }
            None => "its upload had not succeeded".to_string(),
        };
        let what = format!("{checkpoint}'s completion persisted, listing {file}");
        events.push(WitnessEvent::of(completion, what));
        let cause = format!(
            "{task} started materialization {number} at {} and its snapshots referenced it (in place of the changelog before it) at once, but {outcome}: {checkpoint} completed at {} on a materialization that is not durable",
            started.at, completion.at
        );
        Some(Witness::new(
            "materialization-referenced-before-durable",
            cause,
            "changelogs truncated before their materialization was durable".into(),
            events,
        ))
    }

    /// Why a completion lists `file` that had been deleted: the discard that deleted it.
    fn deleted_before_completion(&self, checkpoint: CheckpointId, file: &str) -> Option<Witness> {
        let deleted = self.deletion_of(file)?;
        let completion = self.completion_of(checkpoint)?;
        let abort = (self.trace[..self.observed].iter().rev()).find(|entry| {
            entry.at <= deleted.at
                && matches!(
                    entry.event,
                    TraceEvent::Engine(EngineEvent::CheckpointAborted { .. })
                )
        });
        let mut events = vec![];
        if let Some(written) = self.write_of(file) {
            events.push(WitnessEvent::of(written, format!("{file} written")));
        }
        let by = match abort {
            Some(abort) => {
                let TraceEvent::Engine(EngineEvent::CheckpointAborted {
                    checkpoint: aborted,
                    ..
                }) = &abort.event
                else {
                    unreachable!("kept as an abort")
                };
                events.push(WitnessEvent::of(abort, format!("{aborted} aborted")));
                format!(", after {aborted} was aborted at {},", abort.at)
            }
            None => String::new(),
        };
        events.push(WitnessEvent::of(deleted, format!("{file} deleted")));
        events.push(WitnessEvent::of(
            completion,
            format!("{checkpoint}'s completion persisted, listing {file}"),
        ));
        let cause = format!(
            "{file} was deleted at {}{by} while {checkpoint}, still pending, referenced it; {checkpoint} then completed at {} listing a file that was gone",
            deleted.at, completion.at
        );
        Some(Witness::new(
            "pending-checkpoint-file-deleted",
            cause,
            "files of pending checkpoints deleted by a discard".into(),
            events,
        ))
    }

    /// Takes one trace entry into account, flagging what it breaks.
    fn see(&mut self, entry: &'t TraceEntry) {
        if let Some(message) = self.restored.see(&entry.event, entry.at, self.end_recorded) {
            let witness = self.restored_snapshot_deleted(entry);
            self.violation(entry.at, message, "the restored snapshot", witness);
        }
        match &entry.event {
            TraceEvent::Storage(StorageEvent::Written { path, .. }) => {
                self.written.insert(path.as_str());
                self.durable.insert(path, false);
            }
            TraceEvent::Storage(StorageEvent::Synced { path }) => {
                self.durable.insert(path, true);
            }
            TraceEvent::Storage(StorageEvent::Disk(DiskEvent::Lost { path })) => {
                self.durable.remove(path.as_str());
                self.gone.insert(path, (entry.at, Gone::Lost));
            }
            TraceEvent::Storage(StorageEvent::Deleted { path }) => self.deleted(path, entry.at),
            TraceEvent::Engine(EngineEvent::CompletionPersisting { checkpoint, files }) => {
                self.completion_persisting(*checkpoint, files, entry.at)
            }
            // A completion is persisted first, so its files are known.
            TraceEvent::Engine(EngineEvent::CheckpointCompleted { checkpoint })
                if self.referenced.contains_key(checkpoint) =>
            {
                self.retained.insert(*checkpoint);
            }
            TraceEvent::Engine(EngineEvent::CheckpointSubsumed { checkpoint }) => {
                self.retained.remove(checkpoint);
            }
            TraceEvent::Engine(EngineEvent::HaRecordAdopted { completed }) => {
                // Those whose files this run knows (not a snapshot restored from a path).
                self.retained = completed
                    .iter()
                    .copied()
                    .filter(|id| self.referenced.contains_key(id))
                    .collect();
            }
            TraceEvent::Engine(EngineEvent::JobStatus { status, .. }) if status.is_terminal() => {
                self.terminal = true;
            }
            TraceEvent::Engine(EngineEvent::EndRecorded) => self.end_recorded = true,
            _ => {}
        }
    }

    /// The retention rule: no file a retained checkpoint references is deleted before the
    /// job's end is durable.
    fn deleted(&mut self, path: &'t str, at: Tick) {
        self.durable.remove(path);
        self.gone.insert(path, (at, Gone::Deleted));
        if self.end_recorded {
            return;
        }
        let users: Vec<String> = self
            .retained
            .iter()
            .filter(|id| self.referenced[id].iter().any(|file| file == path))
            .map(|id| id.to_string())
            .collect();
        let when = if self.terminal {
            " after the job ended but before its end was durable in the HA record (a JobManager starting then restores from them)"
        } else {
            ""
        };
        if !users.is_empty() {
            let message = format!(
                "{path} was deleted at {at}{when} while retained checkpoint(s) {} reference it",
                users.join(", ")
            );
            let witness = self.retained_file_deleted(path, &users);
            self.violation(at, message, path, witness);
        }
    }

    /// Why deleting `path` broke retention: the completions of the retained checkpoints that
    /// reference it, then the deletion.
    fn retained_file_deleted(&self, path: &str, users: &[String]) -> Option<Witness> {
        let deleted = self.deletion_of(path)?;
        let mut events: Vec<WitnessEvent> = (self.retained.iter())
            .filter(|id| users.contains(&id.to_string()))
            .filter_map(|&id| Some((id, self.completion_of(id)?)))
            .map(|(id, entry)| {
                WitnessEvent::of(
                    entry,
                    format!("{id}'s completion persisted, listing {path}"),
                )
            })
            .collect();
        events.push(WitnessEvent::of(deleted, format!("{path} deleted")));
        let cause = format!(
            "{path} was deleted at {} though {} still retained (completed, not subsumed) reference(s) it: a restore from {} would find it gone",
            deleted.at,
            users.join(", "),
            users[0]
        );
        Some(Witness::new(
            "retained-file-deleted",
            cause,
            "files of retained checkpoints deleted".into(),
            events,
        ))
    }

    /// Why `file` was left behind: its write, its checkpoint's end, and the job's end
    /// (`discard_all`: the retention policy discards every checkpoint on this end).
    fn leaked(
        &self,
        file: &str,
        status: JobStatus,
        discard_all: bool,
        end: Tick,
    ) -> Option<Witness> {
        let written = self.write_of(file)?;
        let mut events = vec![WitnessEvent::of(written, format!("{file} written"))];
        let checkpoint = (self.referenced.iter())
            .find(|(_, files)| files.iter().any(|f| f == file))
            .map(|(id, _)| *id);
        let fate = checkpoint.and_then(|id| {
            let ended = self.latest(|e| match e {
                TraceEvent::Engine(EngineEvent::CheckpointSubsumed { checkpoint }) => {
                    *checkpoint == id
                }
                _ => false,
            })?;
            events.push(WitnessEvent::of(ended, format!("{id} subsumed")));
            Some(format!(
                "{id}, which listed it, was subsumed at {}",
                ended.at
            ))
        });
        let ended = self.latest(|e| matches!(e, TraceEvent::Engine(EngineEvent::JobStatus { status: s, .. }) if *s == status));
        if let Some(ended) = ended {
            events.push(WitnessEvent::of(ended, format!("the job {status:?}")));
        }
        let why = match (fate, discard_all) {
            (Some(fate), _) => format!("{fate}, so its discard should have deleted it"),
            (None, true) => format!(
                "the retention policy discards every checkpoint when the job ends {status:?}"
            ),
            (None, false) => "no retained checkpoint lists it".to_string(),
        };
        let cause = format!(
            "{file} was written at {} and was still there at the end ({end}): {why}, and no deletion reached it",
            written.at
        );
        Some(Witness::new(
            "file-leaked",
            cause,
            "files left behind in the checkpoint directory".into(),
            events,
        ))
    }

    /// The durability rule: every file of the completion is synced and still there.
    fn completion_persisting(&mut self, checkpoint: CheckpointId, files: &'t [String], at: Tick) {
        self.referenced.insert(checkpoint, files);
        for file in files {
            let file = file.as_str();
            if self.restored.seen.is_some() && !self.written.contains(file) {
                continue; // Not this run's: a snapshot it restored from.
            }
            let (state, witness) = match (self.durable.get(file), self.gone.get(file)) {
                (Some(true), _) => continue,
                (Some(false), _) => (
                    "was not durable".to_string(),
                    self.not_durable(checkpoint, file),
                ),
                // A fault's loss is the world's doing, not the engine's.
                (None, Some((_, Gone::Lost))) => continue,
                (None, Some((deleted_at, Gone::Deleted))) => (
                    format!("had been deleted at {deleted_at}"),
                    self.deleted_before_completion(checkpoint, file),
                ),
                (None, None) => (
                    "was never written".to_string(),
                    self.not_durable(checkpoint, file),
                ),
            };
            let message =
                format!("{checkpoint}: {file} {state} when the completion was persisted (at {at})");
            self.violation(at, message, file, witness);
        }
    }

    /// The no-leaks rule, once the job ended with `status` and its clean-up settled: the
    /// checkpoint directory under `root` holds only files of the checkpoints the retention
    /// policy keeps. `end` is when the trace ends.
    fn flag_leaks(
        &mut self,
        plan: &ExecutionPlan,
        status: JobStatus,
        root: &StoragePath,
        files: &[String],
        end: Tick,
    ) {
        let policy = SnapshotKind::Checkpoint(plan.checkpoint.retention);
        let kept: BTreeSet<&str> = if policy.discarded_when(Leaving::ended(status)) {
            BTreeSet::new()
        } else {
            self.retained
                .iter()
                .flat_map(|id| self.referenced[id].iter().map(String::as_str))
                .collect()
        };
        let prefix = format!("{root}/");
        let leaked: Vec<&str> = files
            .iter()
            .map(String::as_str)
            .filter(|f| f.starts_with(&prefix) && self.written.contains(f) && !kept.contains(f))
            .collect();
        if !leaked.is_empty() {
            let message = format!(
                "{} file(s) left behind after the job ended {status:?} and its clean-up settled: {}",
                leaked.len(),
                leaked.join(", ")
            );
            let witness = self.leaked(leaked[0], status, kept.is_empty(), end);
            self.violation(end, message, "the checkpoint directory", witness);
        }
    }
}

/// How a file left the storage node.
#[derive(Clone, Copy)]
enum Gone {
    /// The engine deleted it.
    Deleted,
    /// A fault lost it.
    Lost,
}

/// Durability, retention and clean-up of checkpoint storage.
pub struct Storage;

impl Checker for Storage {
    fn property(&self) -> Property {
        Property::Storage
    }
    fn description(&self) -> &str {
        "every file of a checkpoint is durable before its completion is persisted, is kept while a retained checkpoint needs it, and none is left behind"
    }
    fn judge<'r>(&self, run: &'r JudgedRun<'r>) -> Box<dyn Judgement<'r> + 'r> {
        Box::new(StorageCheck::new(
            run.plan,
            run.terminated,
            run.files,
            run.own_trace(),
        ))
    }
}
