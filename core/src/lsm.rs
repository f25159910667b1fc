//! The incremental state backend: keyed state kept as immutable sorted runs, each uploaded once
//! into `shared/` and referenced by every later checkpoint that still needs it (Flink's
//! 2018 blog post on incremental checkpointing, the RocksDB backend's incremental checkpoints).
//!
//! A snapshot uploads one new run with what changed since the last *durable* snapshot (puts and
//! deletes), and lists the runs that make up the state; when the list grows past
//! [`RUNS_MAX`], the snapshot compacts: it uploads one run with the whole state and drops the
//! rest. Basing a snapshot on the last durable one (not the last taken) means a run is
//! referenced only once its upload is known to have succeeded. Which shared files may be
//! deleted is the JobManager's [`SharedStateRegistry`](crate::retention::SharedStateRegistry)'s
//! call. Operator state that is not keyed (source offsets, sink transactions) stays in the
//! task's own snapshot file, as in Flink.

use crate::codec::{self, DecodeError, Kind};
use crate::ids::{CheckpointId, TaskId};
use crate::operator::OperatorState;
use crate::storage::{StateHandle, StateLocation, StoragePath};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::collections::BTreeMap;

/// How many runs a snapshot may list before it compacts them into one.
pub const RUNS_MAX: usize = 3;

/// Keyed state as sorted entries: encoded key → encoded value.
pub type Entries = BTreeMap<Vec<u8>, Vec<u8>>;

/// One immutable sorted file: puts (`Some`) and deletes (`None`), in key order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SortedRun {
    pub entries: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    bincode::serde::encode_to_vec(value, bincode::config::standard())
        .expect("keys and values always encode")
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> T {
    let (value, _) = bincode::serde::decode_from_slice(bytes, bincode::config::standard())
        .expect("entries were encoded by `encode` and checksummed in their run");
    value
}

fn entries_of<K: Serialize, V: Serialize>(map: &BTreeMap<K, V>) -> Entries {
    map.iter().map(|(k, v)| (encode(k), encode(v))).collect()
}

fn map_of<K: DeserializeOwned + Ord, V: DeserializeOwned>(entries: &Entries) -> BTreeMap<K, V> {
    entries
        .iter()
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

/// The keyed part of `state` as entries, and the rest (the skeleton that goes into the task's
/// own file); `None` for state that is not keyed.
pub fn split(state: &OperatorState) -> Option<(OperatorState, Entries)> {
    match state {
        OperatorState::Keyed { values } => Some((
            OperatorState::Keyed {
                values: BTreeMap::new(),
            },
            entries_of(values),
        )),
        OperatorState::Windows { windows } => Some((
            OperatorState::Windows {
                windows: BTreeMap::new(),
            },
            entries_of(windows),
        )),
        OperatorState::CoSum { sums } => Some((
            OperatorState::CoSum {
                sums: BTreeMap::new(),
            },
            entries_of(sums),
        )),
        OperatorState::Chains { chains } => Some((
            OperatorState::Chains {
                chains: BTreeMap::new(),
            },
            entries_of(chains),
        )),
        _ => None,
    }
}

/// The inverse of [`split`].
pub fn join(skeleton: OperatorState, entries: &Entries) -> OperatorState {
    match skeleton {
        OperatorState::Keyed { .. } => OperatorState::Keyed {
            values: map_of(entries),
        },
        OperatorState::Windows { .. } => OperatorState::Windows {
            windows: map_of(entries),
        },
        OperatorState::CoSum { .. } => OperatorState::CoSum {
            sums: map_of(entries),
        },
        OperatorState::Chains { .. } => OperatorState::Chains {
            chains: map_of(entries),
        },
        other => {
            assert!(entries.is_empty(), "entries for state that is not keyed");
            other
        }
    }
}

/// The state the runs add up to, oldest run first.
pub fn replay(runs: &[SortedRun]) -> Entries {
    replay_onto(Entries::new(), runs)
}

/// `entries` with the runs applied to them, oldest run first.
pub fn replay_onto<'a>(
    mut entries: Entries,
    runs: impl IntoIterator<Item = &'a SortedRun>,
) -> Entries {
    for run in runs {
        for (key, value) in &run.entries {
            match value {
                Some(value) => entries.insert(key.clone(), value.clone()),
                None => entries.remove(key),
            };
        }
    }
    entries
}

/// A run that puts every entry: replayed alone, it gives `entries`.
pub fn whole(entries: &Entries) -> SortedRun {
    SortedRun {
        entries: (entries.iter())
            .map(|(k, v)| (k.clone(), Some(v.clone())))
            .collect(),
    }
}

/// The run that turns `base` into `entries`: the puts of what changed and the deletes of what
/// went, in key order.
pub fn changes(base: &Entries, entries: &Entries) -> SortedRun {
    let changed = entries
        .iter()
        .filter(|(k, v)| base.get(*k) != Some(v))
        .map(|(k, v)| (k.clone(), Some(v.clone())));
    let deleted = base
        .keys()
        .filter(|k| !entries.contains_key(*k))
        .map(|k| (k.clone(), None));
    let mut run: Vec<_> = changed.chain(deleted).collect();
    run.sort_by(|a, b| a.0.cmp(&b.0));
    SortedRun { entries: run }
}

/// Decodes a run read back from `shared/`.
pub fn read_run(bytes: &[u8]) -> Result<SortedRun, DecodeError> {
    codec::decode(Kind::SharedState, bytes)
}

#[derive(Clone, Debug, Default)]
struct Base {
    runs: Vec<StateHandle>,
    entries: Entries,
}

/// One task's incremental backend: what its last durable snapshot consisted of.
#[derive(Clone, Debug)]
pub struct LsmBackend {
    shared_dir: StoragePath,
    task: TaskId,
    base: Base,
    /// Snapshots taken and not yet durable, with what they consist of.
    pending: BTreeMap<CheckpointId, Base>,
}

/// What a snapshot of the keyed state needs: files to upload, and every run it consists of.
#[derive(Clone, Debug, Default)]
pub struct IncrementalSnapshot {
    /// New runs: where, and their bytes.
    pub uploads: Vec<(StoragePath, Vec<u8>)>,
    /// The runs, oldest first (the new ones included).
    pub runs: Vec<StateHandle>,
}

impl LsmBackend {
    /// A backend for `task` that uploads into `shared_dir`, starting empty.
    pub fn new(shared_dir: StoragePath, task: TaskId) -> LsmBackend {
        LsmBackend {
            shared_dir,
            task,
            base: Base::default(),
            pending: BTreeMap::new(),
        }
    }

    /// Restored from a snapshot made of `runs`, holding `entries`.
    pub fn restored(&mut self, runs: Vec<StateHandle>, entries: Entries) {
        self.base = Base { runs, entries };
        self.pending.clear();
    }

    /// Forgets what was uploaded, so the next snapshot uploads the whole state (after a restore
    /// from a snapshot the job does not own: Flink's `RestoreMode.NO_CLAIM`, `forceFullSnapshot`).
    pub fn force_full(&mut self) {
        self.base = Base::default();
    }

    /// The snapshot of `entries` for `checkpoint`.
    pub fn snapshot(&mut self, checkpoint: CheckpointId, entries: &Entries) -> IncrementalSnapshot {
        let compact = self.base.runs.len() >= RUNS_MAX;
        let run = if compact {
            whole(entries)
        } else {
            changes(&self.base.entries, entries)
        };
        let mut runs = if compact {
            Vec::new()
        } else {
            self.base.runs.clone()
        };
        let mut uploads = Vec::new();
        if !run.entries.is_empty() || compact {
            let name = format!("task-{}-chk-{}.sst", self.task.0, checkpoint.0);
            let path = self.shared_dir.join(&name);
            let bytes = codec::encode(Kind::SharedState, &run);
            runs.push(StateHandle::new(StateLocation::File(path.clone()), &bytes));
            uploads.push((path, bytes));
        }
        let taken = Base {
            runs: runs.clone(),
            entries: entries.clone(),
        };
        self.pending.insert(checkpoint, taken);
        IncrementalSnapshot { uploads, runs }
    }

    /// The snapshot of `checkpoint` is durable: later snapshots build on it.
    pub fn on_durable(&mut self, checkpoint: CheckpointId) {
        if let Some(base) = self.pending.remove(&checkpoint) {
            self.base = base;
        }
        self.pending.retain(|&id, _| id > checkpoint);
    }

    /// The snapshot of `checkpoint` failed: nothing builds on it.
    pub fn on_failed(&mut self, checkpoint: CheckpointId) {
        self.pending.remove(&checkpoint);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(pairs: &[(u64, i64)]) -> Entries {
        let map: BTreeMap<u64, i64> = pairs.iter().copied().collect();
        entries_of(&map)
    }

    fn runs_of(
        snapshot: &IncrementalSnapshot,
        uploaded: &BTreeMap<String, Vec<u8>>,
    ) -> Vec<SortedRun> {
        snapshot
            .runs
            .iter()
            .map(|h| {
                let bytes = &uploaded[&h.location.to_string()];
                read_run(bytes).expect("a run")
            })
            .collect()
    }

    #[test]
    fn snapshots_upload_changes_once_reuse_durable_runs_and_compact() {
        let shared = StoragePath::new("ckpt/job/shared").expect("valid");
        let mut backend = LsmBackend::new(shared, TaskId(2));
        let mut uploaded = BTreeMap::new();
        let states = [
            entries(&[(1, 10), (2, 20)]),
            entries(&[(1, 10), (2, 21), (3, 30)]),
            entries(&[(2, 21), (3, 30)]),
            entries(&[(2, 22), (3, 30)]),
            entries(&[(2, 22), (3, 31)]),
        ];
        let mut run_counts = Vec::new();
        for (index, state) in states.iter().enumerate() {
            let checkpoint = CheckpointId(index as u64 + 1);
            let snapshot = backend.snapshot(checkpoint, state);
            for (path, bytes) in &snapshot.uploads {
                assert!(
                    uploaded.insert(path.to_string(), bytes.clone()).is_none(),
                    "each file is uploaded once"
                );
            }
            assert_eq!(
                &replay(&runs_of(&snapshot, &uploaded)),
                state,
                "{checkpoint}"
            );
            run_counts.push(snapshot.runs.len());
            backend.on_durable(checkpoint);
        }
        // 1, 2, 3 runs, then compaction into one, then one more.
        assert_eq!(run_counts, vec![1, 2, 3, 1, 2]);
    }

    #[test]
    fn a_snapshot_never_builds_on_one_that_is_not_durable() {
        let shared = StoragePath::new("s").expect("valid");
        let mut backend = LsmBackend::new(shared, TaskId(0));
        let first = backend.snapshot(CheckpointId(1), &entries(&[(1, 1)]));
        backend.on_durable(CheckpointId(1));
        let failed = backend.snapshot(CheckpointId(2), &entries(&[(1, 2)]));
        backend.on_failed(CheckpointId(2));
        let third = backend.snapshot(CheckpointId(3), &entries(&[(1, 3)]));
        assert!(third.runs.starts_with(&first.runs));
        assert!(!third.runs.iter().any(|h| failed.runs.last() == Some(h)));
    }

    #[test]
    fn split_and_join_are_inverse_for_keyed_state() {
        let state = OperatorState::Keyed {
            values: [(crate::ids::Key(3), 7i64)].into_iter().collect(),
        };
        let (skeleton, entries) = split(&state).expect("keyed");
        assert_eq!(join(skeleton, &entries), state);
        assert!(split(&OperatorState::Stateless).is_none());
    }
}
