//! The changelog state backend (FLIP-158, Flink 1.15; Flink's blog post of 2022-05-30 on
//! generic log-based incremental checkpoints).
//!
//! Keyed state changes are uploaded as they happen, a log segment every persist delay, into
//! `dstl/`. A checkpoint uploads only the changes since the last segment and references the
//! last materialization plus every segment after it, so its duration depends on how much
//! changed since the last upload, not on the state's size. Periodically the whole keyed state
//! is materialized into `shared/`; once that file is durable, later checkpoints reference it
//! instead of the segments before it (the log is truncated). A restore replays the
//! materialization, then the segments, in order: both are sorted runs of puts and deletes
//! (the incremental backend's format), so the restore is the incremental backend's.
//!
//! Where this differs from Flink, on purpose:
//! - A segment holds the net changes since the previous one, not every state change: the
//!   same state after replay, fewer bytes.
//! - Flink writes a materialization to `taskowned/`; here it goes to `shared/`, because it is
//!   the JobManager's shared-state registry that deletes it once no retained checkpoint uses
//!   it, and in this engine's layout the JobManager never deletes anything in `taskowned/`.
//! - Flink's TaskManager deletes a log file once it is truncated and no checkpoint it could be
//!   part of is pending (`TaskChangelogRegistry`); here a task deletes the segments and
//!   materializations that no snapshot ever listed, once dropped, and leaves those a snapshot
//!   listed to the JobManager's registry (the checkpoint completed) or the job's clean-up (it
//!   did not).
//! - A failed segment upload drops that segment and every later one and uploads their changes
//!   again; the snapshots that referenced it fail (Flink retries the upload, then fails them).

use crate::codec::{self, Kind};
use crate::config::ChangelogOptions;
use crate::ids::{Attempt, TaskId, Tick};
use crate::lsm::{self, Entries, SortedRun};
use crate::storage::{StateHandle, StateLocation, StoragePath};
use std::collections::BTreeSet;

/// The file a handle names, if it is one.
fn file_of(handle: &StateHandle) -> Option<StoragePath> {
    match &handle.location {
        StateLocation::File(path) => Some(path.clone()),
        _ => None,
    }
}

/// A file the changelog uploads outside a snapshot's own writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ChangelogFile {
    /// Log segment `n` (numbers grow with the log).
    Segment(u64),
    /// Materialization `n`.
    Materialization(u64),
}

/// An upload the task asks for: which file, where, and its bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct ChangelogUpload {
    pub file: ChangelogFile,
    pub path: StoragePath,
    pub bytes: Vec<u8>,
}

/// What a snapshot of the keyed state consists of.
#[derive(Debug, Default)]
pub struct ChangelogSnapshot {
    /// The last segment, with the changes since the one before; none when nothing changed.
    pub upload: Option<ChangelogUpload>,
    /// The materialization and the segments after it, oldest first.
    pub runs: Vec<StateHandle>,
    /// Segments referenced and not yet durable: the acknowledgement waits for them.
    pub awaiting: BTreeSet<u64>,
}

/// What an upload's answer changed.
#[derive(Debug, PartialEq, Eq)]
pub enum Written {
    /// A segment is durable.
    SegmentDurable(u64),
    /// A segment failed: it and the segments after it are dropped (their changes go into the
    /// next segment); snapshots that referenced it cannot complete.
    SegmentFailed(u64),
    /// A materialization is durable; the log before it is truncated, and the files it dropped
    /// that no snapshot ever listed may go.
    Materialized {
        number: u64,
        up_to: u64,
        discard: Vec<StoragePath>,
    },
    /// A materialization failed, the `failures`-th in a row.
    MaterializationFailed { number: u64, failures: u32 },
    /// The answer concerns a file the backend forgot (a materialization given up).
    Stale,
}

#[derive(Clone, Debug)]
struct Segment {
    sequence: u64,
    handle: StateHandle,
    run: SortedRun,
    durable: bool,
    /// A snapshot lists it: only the JobManager's registry or the job's clean-up deletes it.
    listed: bool,
}

#[derive(Clone, Debug)]
struct Materialization {
    number: u64,
    /// The newest segment whose changes it holds.
    up_to: u64,
    handle: StateHandle,
    entries: Entries,
}

/// One task's changelog backend.
///
/// Invariant: replaying `materialized` then every segment gives `logged`, and the segments'
/// sequences increase.
#[derive(Clone, Debug)]
pub struct ChangelogBackend {
    log_dir: StoragePath,
    shared_dir: StoragePath,
    /// Names files: a restored attempt must not overwrite a file an older checkpoint uses.
    prefix: String,
    options: ChangelogOptions,
    /// The runs the log starts from: the last durable materialization, or what a restore read.
    materialized: Vec<StateHandle>,
    /// A snapshot lists the materialized runs (restored ones always count as listed).
    materialized_listed: bool,
    materialized_entries: Entries,
    segments: Vec<Segment>,
    /// What the materialization and the segments add up to; the next segment is the changes
    /// since.
    logged: Entries,
    next_sequence: u64,
    next_materialization: u64,
    materializing: Option<Materialization>,
    failed_materializations: u32,
    next_persist: Tick,
    next_materialize: Tick,
}

impl ChangelogBackend {
    /// An empty backend for `task` of `attempt`, started at `now`.
    pub fn new(
        log_dir: StoragePath,
        shared_dir: StoragePath,
        task: TaskId,
        attempt: Attempt,
        options: ChangelogOptions,
        now: Tick,
    ) -> ChangelogBackend {
        ChangelogBackend {
            log_dir,
            shared_dir,
            prefix: format!("task-{}-attempt-{}", task.0, attempt.0),
            options,
            materialized: Vec::new(),
            materialized_listed: false,
            materialized_entries: Entries::new(),
            segments: Vec::new(),
            logged: Entries::new(),
            next_sequence: 1,
            next_materialization: 1,
            materializing: None,
            failed_materializations: 0,
            next_persist: now.after(options.persist_delay_ticks),
            next_materialize: now.after(options.materialization_interval_ticks),
        }
    }

    /// Restored from a snapshot made of `runs`, holding `entries`: they are the base the log
    /// starts from until the first materialization.
    pub fn restored(&mut self, runs: Vec<StateHandle>, entries: Entries) {
        self.materialized = runs;
        self.materialized_listed = true;
        self.materialized_entries = entries.clone();
        self.logged = entries;
    }

    /// Forgets the base, so the next segment holds the whole state (after a restore from a
    /// snapshot the job does not own, Flink's `RestoreMode.NO_CLAIM`).
    pub fn force_full(&mut self) {
        self.materialized.clear();
        self.materialized_entries.clear();
        self.segments.clear();
        self.logged.clear();
    }

    /// When the backend wants [`ChangelogBackend::on_timer`].
    pub fn next_timer(&self) -> Tick {
        self.next_persist.min(self.next_materialize)
    }

    /// The timers due at `now`: a segment with the changes since the last, and every
    /// materialization interval a materialization. `truncate_early` is the seeded bug that
    /// truncates the log before the materialization is durable.
    pub fn on_timer(
        &mut self,
        now: Tick,
        entries: &Entries,
        truncate_early: bool,
    ) -> Vec<ChangelogUpload> {
        let mut uploads = Vec::new();
        if now >= self.next_persist {
            self.next_persist = now.after(self.options.persist_delay_ticks);
            uploads.extend(self.append(entries));
        }
        if now >= self.next_materialize {
            self.next_materialize = now.after(self.options.materialization_interval_ticks);
            uploads.extend(self.materialize(entries, truncate_early));
        }
        uploads
    }

    /// The snapshot of `entries`: the changes since the last segment as a new one, and the
    /// runs the state consists of.
    pub fn snapshot(&mut self, entries: &Entries) -> ChangelogSnapshot {
        let upload = self.append(entries);
        self.materialized_listed = true;
        self.segments.iter_mut().for_each(|s| s.listed = true);
        let runs = (self.materialized.iter().cloned())
            .chain(self.segments.iter().map(|s| s.handle.clone()))
            .collect();
        let awaiting = (self.segments.iter())
            .filter(|s| !s.durable)
            .map(|s| s.sequence)
            .collect();
        ChangelogSnapshot {
            upload,
            runs,
            awaiting,
        }
    }

    /// Appends a segment with the changes since the last one, if anything changed.
    fn append(&mut self, entries: &Entries) -> Option<ChangelogUpload> {
        let run = lsm::changes(&self.logged, entries);
        if run.entries.is_empty() {
            return None;
        }
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        let path = (self.log_dir).join(&format!("{}-segment-{sequence}", self.prefix));
        let bytes = codec::encode(Kind::SharedState, &run);
        let handle = StateHandle::new(StateLocation::File(path.clone()), &bytes);
        self.segments.push(Segment {
            sequence,
            handle,
            run,
            durable: false,
            listed: false,
        });
        self.logged = entries.clone();
        Some(ChangelogUpload {
            file: ChangelogFile::Segment(sequence),
            path,
            bytes,
        })
    }

    /// Starts a materialization of `entries`, after a segment with the changes up to them, so
    /// that it holds exactly the log up to that segment. One at a time.
    fn materialize(&mut self, entries: &Entries, truncate_early: bool) -> Vec<ChangelogUpload> {
        if self.materializing.is_some() {
            return Vec::new(); // Flink's `initMaterialization` skips a round too.
        }
        let mut uploads: Vec<ChangelogUpload> = self.append(entries).into_iter().collect();
        let number = self.next_materialization;
        self.next_materialization += 1;
        let path = (self.shared_dir).join(&format!("{}-materialization-{number}", self.prefix));
        let bytes = codec::encode(Kind::SharedState, &lsm::whole(entries));
        let materialization = Materialization {
            number,
            up_to: self.next_sequence - 1,
            handle: StateHandle::new(StateLocation::File(path.clone()), &bytes),
            entries: entries.clone(),
        };
        if truncate_early {
            // Seeded bug: later snapshots reference the materialization at once, durable or not.
            self.truncate(materialization.clone());
        }
        self.materializing = Some(materialization);
        uploads.push(ChangelogUpload {
            file: ChangelogFile::Materialization(number),
            path,
            bytes,
        });
        uploads
    }

    /// Later snapshots start from `materialization` instead of the log before it; returns the
    /// files dropped that no snapshot ever listed.
    fn truncate(&mut self, materialization: Materialization) -> Vec<StoragePath> {
        let new = materialization.handle;
        let old = std::mem::replace(&mut self.materialized, vec![new.clone()]);
        let mut discard: Vec<StoragePath> = match self.materialized_listed {
            true => Vec::new(),
            // Not the new one: the seeded bug truncates at the start and again when durable.
            false => (old.iter())
                .filter(|h| **h != new)
                .filter_map(file_of)
                .collect(),
        };
        self.materialized_listed = false;
        self.materialized_entries = materialization.entries;
        let up_to = materialization.up_to;
        let dropped = (self.segments.iter()).filter(|s| s.sequence <= up_to && !s.listed);
        discard.extend(dropped.filter_map(|s| file_of(&s.handle)));
        self.segments.retain(|s| s.sequence > up_to);
        discard
    }

    /// The answer to an upload of `file`.
    pub fn on_written(&mut self, file: ChangelogFile, durable: bool) -> Written {
        match (file, durable) {
            (ChangelogFile::Segment(sequence), true) => {
                if let Some(segment) = self.segments.iter_mut().find(|s| s.sequence == sequence) {
                    segment.durable = true;
                }
                Written::SegmentDurable(sequence)
            }
            (ChangelogFile::Segment(sequence), false) => {
                self.drop_from(sequence);
                Written::SegmentFailed(sequence)
            }
            (ChangelogFile::Materialization(number), true) => {
                match self.materializing.take_if(|m| m.number == number) {
                    Some(materialization) => {
                        let up_to = materialization.up_to;
                        self.failed_materializations = 0;
                        let discard = self.truncate(materialization);
                        Written::Materialized {
                            number,
                            up_to,
                            discard,
                        }
                    }
                    None => Written::Stale,
                }
            }
            (ChangelogFile::Materialization(number), false) => {
                match self.materializing.take_if(|m| m.number == number) {
                    Some(_) => {
                        self.failed_materializations += 1;
                        let failures = self.failed_materializations;
                        Written::MaterializationFailed { number, failures }
                    }
                    None => Written::Stale,
                }
            }
        }
    }

    /// Whether the materializations failed in a row are more than the task survives.
    pub fn too_many_failures(&self) -> bool {
        self.failed_materializations > self.options.materialization_failures_allowed
    }

    /// Drops segment `sequence` and every later one (their changes were counted from it), so
    /// that the next segment holds their changes again. A materialization that holds the
    /// dropped segments' changes is given up: the segments after it would be counted from
    /// another base.
    fn drop_from(&mut self, sequence: u64) {
        if !self.segments.iter().any(|s| s.sequence == sequence) {
            return; // Truncated by a materialization already, or dropped with an earlier one.
        }
        self.segments.retain(|s| s.sequence < sequence);
        if self
            .materializing
            .as_ref()
            .is_some_and(|m| m.up_to >= sequence)
        {
            self.materializing = None;
        }
        let runs = self.segments.iter().map(|s| &s.run);
        let logged = lsm::replay_onto(self.materialized_entries.clone(), runs);
        self.logged = logged;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::Key;
    use crate::operator::OperatorState;
    use std::collections::BTreeMap;

    fn entries(pairs: &[(u64, i64)]) -> Entries {
        let values = pairs.iter().map(|&(k, v)| (Key(k), v)).collect();
        let (_, entries) = lsm::split(&OperatorState::Keyed { values }).expect("keyed");
        entries
    }

    fn backend(options: ChangelogOptions) -> ChangelogBackend {
        let dir = |d: &str| StoragePath::new(format!("ckpt/job/{d}")).expect("valid");
        let (task, attempt) = (TaskId(1), Attempt(1));
        ChangelogBackend::new(dir("dstl"), dir("shared"), task, attempt, options, Tick(0))
    }

    const OPTIONS: ChangelogOptions = ChangelogOptions {
        persist_delay_ticks: 10,
        materialization_interval_ticks: 30,
        materialization_failures_allowed: 3,
    };

    /// Storage as the tests see it: what each upload wrote.
    #[derive(Default)]
    struct Uploaded(BTreeMap<String, Vec<u8>>);

    impl Uploaded {
        fn take(
            &mut self,
            uploads: impl IntoIterator<Item = ChangelogUpload>,
        ) -> Vec<ChangelogFile> {
            (uploads.into_iter())
                .map(|u| {
                    assert!(
                        self.0.insert(u.path.to_string(), u.bytes).is_none(),
                        "written once"
                    );
                    u.file
                })
                .collect()
        }

        /// The state a snapshot's runs replay to.
        fn replay(&self, runs: &[StateHandle]) -> Entries {
            let runs: Vec<SortedRun> = (runs.iter())
                .map(|h| lsm::read_run(&self.0[&h.location.to_string()]).expect("a run"))
                .collect();
            lsm::replay(&runs)
        }
    }

    #[test]
    fn a_snapshot_replays_to_the_state_and_the_log_is_cut_only_once_the_materialization_is_durable()
    {
        let mut changelog = backend(OPTIONS);
        let mut storage = Uploaded::default();
        let states = [
            entries(&[(1, 10)]),
            entries(&[(1, 11), (2, 20)]),
            entries(&[(2, 21)]),
        ];
        for (i, state) in states.iter().enumerate() {
            let files = storage.take(changelog.on_timer(Tick(10 * (i as u64 + 1)), state, false));
            assert_eq!(files.first(), Some(&ChangelogFile::Segment(i as u64 + 1)));
        }
        // At 30 the materialization started (after segment 3): not durable, not referenced.
        let now = entries(&[(2, 22), (3, 30)]);
        let snapshot = changelog.snapshot(&now);
        storage.take(snapshot.upload);
        assert_eq!(snapshot.runs.len(), 4, "segments 1–4");
        assert_eq!(storage.replay(&snapshot.runs), now);
        assert_eq!(snapshot.awaiting, BTreeSet::from([1, 2, 3, 4]));
        for sequence in 1..=4 {
            changelog.on_written(ChangelogFile::Segment(sequence), true);
        }
        let materialized = changelog.on_written(ChangelogFile::Materialization(1), true);
        assert_eq!(
            materialized,
            Written::Materialized {
                number: 1,
                up_to: 3,
                discard: Vec::new(),
            },
            "a snapshot lists segments 1–3: the registry or the clean-up deletes them"
        );
        let later = changelog.snapshot(&now);
        assert_eq!(later.upload, None, "nothing changed");
        assert_eq!(later.runs.len(), 2, "the materialization and segment 4");
        assert!(later.runs[0]
            .location
            .to_string()
            .contains("materialization-1"));
        assert_eq!(storage.replay(&later.runs), now);
        assert!(later.awaiting.is_empty());
    }

    #[test]
    fn files_no_snapshot_listed_are_discarded_once_dropped() {
        let mut changelog = backend(OPTIONS);
        let states = [entries(&[(1, 1)]), entries(&[(1, 2)]), entries(&[(1, 3)])];
        for (i, state) in states.iter().enumerate() {
            changelog.on_timer(Tick(10 * (i as u64 + 1)), state, false);
        }
        let Written::Materialized { discard, .. } =
            changelog.on_written(ChangelogFile::Materialization(1), true)
        else {
            panic!("materialized");
        };
        let names: Vec<&str> = discard.iter().map(|p| p.as_str()).collect();
        assert_eq!(
            names,
            [1, 2, 3].map(|n| format!("ckpt/job/dstl/task-1-attempt-1-segment-{n}")),
            "segments 1–3, which no snapshot listed"
        );
        // A snapshot lists materialization 1; the next one does not discard it.
        changelog.snapshot(&entries(&[(1, 4)]));
        changelog.on_timer(Tick(60), &entries(&[(1, 5)]), false);
        let Written::Materialized { discard, .. } =
            changelog.on_written(ChangelogFile::Materialization(2), true)
        else {
            panic!("materialized");
        };
        assert!(
            discard.iter().all(|p| p.as_str().contains("segment")),
            "{discard:?}"
        );
        assert!(
            !discard.is_empty(),
            "segment 5, cut with materialization 2, no snapshot listed"
        );
    }

    #[test]
    fn a_failed_segment_is_uploaded_again_and_fails_what_referenced_it() {
        let mut changelog = backend(OPTIONS);
        let mut storage = Uploaded::default();
        storage.take(changelog.on_timer(Tick(10), &entries(&[(1, 1), (2, 2)]), false));
        storage.take(changelog.on_timer(Tick(20), &entries(&[(1, 1)]), false));
        let now = entries(&[(1, 5), (3, 3)]);
        let referencing = changelog.snapshot(&now);
        assert!(referencing.awaiting.contains(&2));
        // Segment 2 (the delete of key 2) fails: it and segment 3 are dropped.
        let failed = changelog.on_written(ChangelogFile::Segment(2), false);
        assert_eq!(failed, Written::SegmentFailed(2));
        storage
            .0
            .retain(|path, _| !path.contains("segment-2") && !path.contains("segment-3"));
        let again = changelog.snapshot(&now);
        storage.take(again.upload);
        assert_eq!(
            storage.replay(&again.runs),
            now,
            "the delete is uploaded again"
        );
        assert_eq!(again.awaiting, BTreeSet::from([1, 4]));
    }

    #[test]
    fn a_failed_materialization_is_counted_and_leaves_the_log_whole() {
        let mut changelog = backend(OPTIONS);
        let mut storage = Uploaded::default();
        let state = entries(&[(1, 1)]);
        storage.take(changelog.on_timer(Tick(30), &state, false));
        let failed = changelog.on_written(ChangelogFile::Materialization(1), false);
        assert_eq!(
            failed,
            Written::MaterializationFailed {
                number: 1,
                failures: 1
            }
        );
        assert!(!changelog.too_many_failures(), "one failure of 3 allowed");
        for number in 2..=4 {
            storage.take(changelog.on_timer(Tick(30 * number), &state, false));
            changelog.on_written(ChangelogFile::Materialization(number), false);
            let too_many = number > OPTIONS.materialization_failures_allowed.into();
            assert_eq!(changelog.too_many_failures(), too_many, "{number} in a row");
        }
        let snapshot = changelog.snapshot(&state);
        assert!(snapshot
            .runs
            .iter()
            .all(|h| h.location.to_string().contains("segment")));
        assert_eq!(storage.replay(&snapshot.runs), state);
    }

    #[test]
    fn the_seeded_bug_references_a_materialization_before_it_is_durable() {
        let mut changelog = backend(OPTIONS);
        let state = entries(&[(1, 1)]);
        changelog.on_timer(Tick(30), &state, true);
        let snapshot = changelog.snapshot(&state);
        assert!(snapshot.runs[0]
            .location
            .to_string()
            .contains("materialization-1"));
    }
}
