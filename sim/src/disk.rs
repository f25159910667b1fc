//! SimDisk: a madsim simulator plugin that gives every node files with real durability rules.
//!
//! madsim's own file system applies writes at once and survives a kill with them (its
//! `power_fail` is a TODO, madsim-rs/madsim#28), so it cannot show a torn checkpoint. Here every file is append-only and has a durable
//! prefix: `append` adds pending bytes, `sync` makes them durable, and a crash (madsim `kill`,
//! which calls [`Simulator::reset_node`]) resolves each file's pending bytes by the node's
//! [`CrashMode`]: dropped, or a torn prefix of them kept. Metadata operations (create, delete,
//! rename) are durable at once, as on a journaling file system; so a file created and never
//! synced survives a crash empty or torn.
//!
//! Faults are set per node: error rates for read, append and sync (EIO), a capacity (ENOSPC),
//! silent bit flips on read (detected by the envelopes' checksums), a latency range per
//! operation, one-shot targeted failures, and lost files. Draws come from the disk's own seeded
//! stream ([`Stream::Disk`]), set by the harness before the run starts.

use crate::rng::{SimRng, Stream};
use madsim::plugin::{self, Simulator};
use madsim::rand::GlobalRng;
use madsim::task::NodeId;
use madsim::time::TimeHandle;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use thiserror::Error;

/// What a crash does to a file's pending (unsynced) bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum CrashMode {
    /// They are gone.
    DropPending,
    /// A prefix of them of seeded length survives (from none to all).
    TornPrefix,
    /// The seed chooses, per file, between the two.
    #[default]
    Seeded,
}

/// The operations a fault can target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum DiskOp {
    /// Reading a file.
    Read,
    /// Appending to a file.
    Append,
    /// Syncing a file.
    Sync,
}

/// A node's background disk faults. Rates are per mille of operations.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskFaults {
    /// EIO on read.
    pub read_error_per_mille: u16,
    /// EIO on append.
    pub append_error_per_mille: u16,
    /// EIO on sync.
    pub sync_error_per_mille: u16,
    /// A read returns the bytes with one bit flipped.
    pub corruption_per_mille: u16,
    /// Bytes the node's files may hold in all; an append beyond fails with ENOSPC.
    pub capacity_bytes: Option<u64>,
    /// Every operation takes a seeded time in this range, in ms (inclusive).
    pub latency_ticks: (u64, u64),
    /// Not a fault: the disk's bandwidth. An append or read of n bytes takes n / this many ms
    /// more (rounded up); none, size costs nothing. Set by the experiments whose claim is
    /// about bytes uploaded (the changelog backend's shorter checkpoints).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_per_tick: Option<u64>,
    /// What a crash does to pending bytes.
    pub crash: CrashMode,
}

/// What a disk operation moves, for the disk's bandwidth.
#[derive(Clone, Copy)]
enum Moves<'a> {
    Nothing,
    Bytes(u64),
    /// The file at this path, as it is.
    File(&'a str),
}

/// A disk operation that failed.
#[derive(Clone, Debug, PartialEq, Eq, Error, Serialize, Deserialize)]
pub enum DiskError {
    /// No such file.
    #[error("no file {path}")]
    NotFound { path: String },
    /// An injected I/O error.
    #[error("EIO on {op:?} of {path}")]
    Io {
        /// The operation.
        op: DiskOp,
        path: String,
    },
    /// The node's capacity would be exceeded.
    #[error("ENOSPC appending {bytes} bytes to {path}: capacity {capacity} bytes, {used} used")]
    NoSpace {
        path: String,
        /// The bytes refused.
        bytes: u64,
        capacity: u64,
        /// Bytes in use.
        used: u64,
    },
}

/// Something the disk did that the trace should show.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DiskEvent {
    /// A crash resolved a file's pending bytes.
    CrashResolved {
        /// The file.
        path: String,
        /// Pending bytes at the crash.
        pending: u64,
        /// How many of them survived (a torn file when between 0 and all).
        kept: u64,
    },
    /// A file was lost (a fault).
    Lost {
        /// The file.
        path: String,
    },
}

#[derive(Clone, Debug, Default)]
struct File {
    bytes: Vec<u8>,
    /// `bytes[..durable]` survives a crash.
    durable: usize,
}

/// The file model both drivers' storage uses: append-only files, each with a durable prefix.
/// Metadata operations (create, delete, rename) take effect at once. [`SimDisk`] adds latency,
/// faults and crashes; the in-process driver uses the files alone.
#[derive(Clone, Debug, Default)]
pub struct Files {
    files: BTreeMap<String, File>,
}

impl Files {
    fn not_found(path: &str) -> DiskError {
        DiskError::NotFound {
            path: path.to_string(),
        }
    }

    fn file_mut(&mut self, path: &str) -> Result<&mut File, DiskError> {
        self.files
            .get_mut(path)
            .ok_or_else(|| Files::not_found(path))
    }

    /// Bytes in use, pending ones included.
    pub fn used(&self) -> u64 {
        self.files.values().map(|f| f.bytes.len() as u64).sum()
    }

    /// Creates `path` empty, replacing any file there.
    pub fn create(&mut self, path: &str) {
        self.files.insert(path.to_string(), File::default());
    }

    /// Appends `bytes` to `path` as pending bytes.
    pub fn append(&mut self, path: &str, bytes: &[u8]) -> Result<(), DiskError> {
        self.file_mut(path)?.bytes.extend_from_slice(bytes);
        Ok(())
    }

    /// Makes every byte of `path` durable.
    pub fn sync(&mut self, path: &str) -> Result<(), DiskError> {
        let file = self.file_mut(path)?;
        file.durable = file.bytes.len();
        Ok(())
    }

    /// The length of `path`, pending bytes included; 0 for no file.
    pub fn len(&self, path: &str) -> u64 {
        self.files.get(path).map_or(0, |f| f.bytes.len() as u64)
    }

    /// All of `path`, pending bytes included (as a page cache would give them).
    pub fn read(&self, path: &str) -> Result<Vec<u8>, DiskError> {
        let file = self.files.get(path).ok_or_else(|| Files::not_found(path))?;
        Ok(file.bytes.clone())
    }

    /// Deletes `path`; whether it existed.
    pub fn delete(&mut self, path: &str) -> bool {
        self.files.remove(path).is_some()
    }

    /// Renames `from` to `to`, replacing `to`.
    pub fn rename(&mut self, from: &str, to: &str) -> Result<(), DiskError> {
        let file = self
            .files
            .remove(from)
            .ok_or_else(|| Files::not_found(from))?;
        self.files.insert(to.to_string(), file);
        Ok(())
    }

    /// The paths that start with `prefix`, in order.
    pub fn list(&self, prefix: &str) -> Vec<String> {
        (self.files.keys())
            .filter(|path| path.starts_with(prefix))
            .cloned()
            .collect()
    }

    /// Every file as a crash would leave it (its durable bytes), in path order.
    pub fn durable(&self) -> Vec<(String, Vec<u8>)> {
        (self.files.iter())
            .map(|(path, file)| (path.clone(), file.bytes[..file.durable].to_vec()))
            .collect()
    }

    /// Puts `files` here, durable.
    pub fn install(&mut self, files: &[(String, Vec<u8>)]) {
        for (path, bytes) in files {
            let file = File {
                bytes: bytes.clone(),
                durable: bytes.len(),
            };
            self.files.insert(path.clone(), file);
        }
    }

    /// A crash: each file's pending bytes are cut to the prefix `kept(pending)` says survives.
    fn crash(&mut self, mut kept: impl FnMut(usize) -> usize) -> Vec<DiskEvent> {
        let mut events = Vec::new();
        for (path, file) in self.files.iter_mut() {
            let pending = file.bytes.len() - file.durable;
            if pending == 0 {
                continue;
            }
            let kept = kept(pending);
            file.bytes.truncate(file.durable + kept);
            file.durable = file.bytes.len();
            events.push(DiskEvent::CrashResolved {
                path: path.clone(),
                pending: pending as u64,
                kept: kept as u64,
            });
        }
        events
    }

    /// Loses every file under `prefix`; their paths.
    fn lose(&mut self, prefix: &str) -> Vec<String> {
        let lost = self.list(prefix);
        for path in &lost {
            self.files.remove(path);
        }
        lost
    }
}

#[derive(Debug, Default)]
struct NodeDisk {
    files: Files,
    faults: DiskFaults,
    /// One-shot failures: the next `op` on a path containing the text fails with EIO.
    fail_next: Vec<(DiskOp, String)>,
    /// One-shot corruption: the next read of a path containing the text flips a bit.
    corrupt_next_read: Vec<String>,
}

impl NodeDisk {
    fn take_targeted(&mut self, op: DiskOp, path: &str) -> bool {
        let hit = self
            .fail_next
            .iter()
            .position(|(o, text)| *o == op && path.contains(text.as_str()));
        hit.map(|i| self.fail_next.remove(i)).is_some()
    }
}

#[derive(Debug)]
struct DiskState {
    rng: SimRng,
    nodes: BTreeMap<NodeId, NodeDisk>,
    events: Vec<(NodeId, DiskEvent)>,
}

impl DiskState {
    fn chance(&mut self, per_mille: u16) -> bool {
        per_mille > 0 && self.rng.below(1000) < u64::from(per_mille)
    }

    /// EIO for `op` on `path` if the node's rate draws it or a targeted fault names it; else
    /// the node's disk.
    fn inject(&mut self, node: NodeId, op: DiskOp, path: &str) -> Result<&mut NodeDisk, DiskError> {
        let faults = &self.nodes.entry(node).or_default().faults;
        let rate = match op {
            DiskOp::Read => faults.read_error_per_mille,
            DiskOp::Append => faults.append_error_per_mille,
            DiskOp::Sync => faults.sync_error_per_mille,
        };
        let drawn = self.chance(rate);
        let disk = self.nodes.get_mut(&node).expect("entered above");
        if drawn || disk.take_targeted(op, path) {
            return Err(DiskError::Io {
                op,
                path: path.to_string(),
            });
        }
        Ok(disk)
    }
}

/// The plugin. Get it with [`SimDisk::current`] inside a runtime that registered it.
#[derive(Debug)]
pub struct SimDisk {
    state: Mutex<DiskState>,
}

impl Simulator for SimDisk {
    fn new(_rand: &GlobalRng, _time: &TimeHandle, _config: &madsim::Config) -> SimDisk {
        SimDisk {
            state: Mutex::new(DiskState {
                rng: SimRng::new(0, Stream::Disk),
                nodes: BTreeMap::new(),
                events: Vec::new(),
            }),
        }
    }

    fn create_node(&self, id: NodeId) {
        self.lock().nodes.entry(id).or_default();
    }

    fn reset_node(&self, id: NodeId) {
        let mut state = self.lock();
        let state = &mut *state;
        let Some(node) = state.nodes.get_mut(&id) else {
            return;
        };
        let mode = node.faults.crash;
        let rng = &mut state.rng;
        let events = node.files.crash(|pending| {
            let torn = match mode {
                CrashMode::DropPending => false,
                CrashMode::TornPrefix => true,
                CrashMode::Seeded => rng.below(2) == 1,
            };
            if torn {
                rng.between(0, pending as u64) as usize
            } else {
                0
            }
        });
        state
            .events
            .extend(events.into_iter().map(|event| (id, event)));
    }
}

impl SimDisk {
    /// The disk of the running simulation.
    pub fn current() -> Arc<SimDisk> {
        plugin::simulator::<SimDisk>()
    }

    fn lock(&self) -> MutexGuard<'_, DiskState> {
        self.state
            .lock()
            .expect("the simulation is single-threaded; the lock is never poisoned")
    }

    /// Seeds the disk's draws for this run. Call before any node uses the disk.
    pub fn seed(&self, seed: u64) {
        self.lock().rng = SimRng::new(seed, Stream::Disk);
    }

    /// Sets `node`'s background faults.
    pub fn set_faults(&self, node: NodeId, faults: DiskFaults) {
        self.lock().nodes.entry(node).or_default().faults = faults;
    }

    /// Clears every fault of `node`, background and targeted.
    pub fn heal(&self, node: NodeId) {
        let mut state = self.lock();
        let disk = state.nodes.entry(node).or_default();
        // What a crash does and the bandwidth are the disk's nature, not faults.
        disk.faults = DiskFaults {
            crash: disk.faults.crash,
            bytes_per_tick: disk.faults.bytes_per_tick,
            ..DiskFaults::default()
        };
        disk.fail_next.clear();
        disk.corrupt_next_read.clear();
    }

    /// The next `op` of `node` on a path under `prefix` fails with EIO.
    pub fn fail_next(&self, node: NodeId, op: DiskOp, prefix: String) {
        let mut state = self.lock();
        state
            .nodes
            .entry(node)
            .or_default()
            .fail_next
            .push((op, prefix));
    }

    /// The next read of `node` of a path under `prefix` returns a flipped bit.
    pub fn corrupt_next_read(&self, node: NodeId, prefix: String) {
        let mut state = self.lock();
        let disk = state.nodes.entry(node).or_default();
        disk.corrupt_next_read.push(prefix);
    }

    /// Every file of `node` under `prefix` is lost.
    pub fn lose(&self, node: NodeId, prefix: &str) {
        let mut state = self.lock();
        let state = &mut *state;
        let lost = state.nodes.entry(node).or_default().files.lose(prefix);
        let lost = lost
            .into_iter()
            .map(|path| (node, DiskEvent::Lost { path }));
        state.events.extend(lost);
    }

    /// What happened since the last call, in order.
    pub fn take_events(&self) -> Vec<(NodeId, DiskEvent)> {
        std::mem::take(&mut self.lock().events)
    }

    /// The paths of `node`'s files as they are now (pending included), in order.
    pub fn files(&self, node: NodeId) -> Vec<String> {
        let state = self.lock();
        state
            .nodes
            .get(&node)
            .map(|disk| disk.files.list(""))
            .unwrap_or_default()
    }

    /// `node`'s files as a crash would leave them (their durable bytes), in path order.
    pub fn durable_files(&self, node: NodeId) -> Vec<(String, Vec<u8>)> {
        let state = self.lock();
        (state.nodes.get(&node))
            .map(|disk| disk.files.durable())
            .unwrap_or_default()
    }

    /// Puts `files` on `node`'s disk, durable: what a run before this one left there.
    pub fn install(&self, node: NodeId, files: &[(String, Vec<u8>)]) {
        let mut state = self.lock();
        state.nodes.entry(node).or_default().files.install(files);
    }

    /// The bytes of `node`'s file as they are now (pending included), for tests.
    pub fn peek(&self, node: NodeId, path: &str) -> Option<Vec<u8>> {
        let state = self.lock();
        state.nodes.get(&node)?.files.read(path).ok()
    }

    /// Waits the operation's latency (and the time its bytes take at the disk's bandwidth),
    /// then runs `apply` on the calling node's disk.
    async fn operate<T>(
        &self,
        moves: Moves<'_>,
        apply: impl FnOnce(&mut DiskState, NodeId) -> T,
    ) -> T {
        let node = plugin::node();
        let latency = {
            let mut state = self.lock();
            let disk = state.nodes.entry(node).or_default();
            let (low, high) = disk.faults.latency_ticks;
            let moved = |bandwidth: u64| {
                let bytes = match moves {
                    Moves::Nothing => 0,
                    Moves::Bytes(bytes) => bytes,
                    Moves::File(path) => disk.files.len(path),
                };
                bytes.div_ceil(bandwidth.max(1))
            };
            let transfer = disk.faults.bytes_per_tick.map_or(0, moved);
            state.rng.between(low, high.max(low)) + transfer
        };
        if latency > 0 {
            madsim::time::sleep(Duration::from_millis(latency)).await;
        }
        let mut state = self.lock();
        apply(&mut state, node)
    }

    /// Creates `path` empty, replacing any file there (durable at once).
    pub async fn create(&self, path: &str) {
        self.operate(Moves::Nothing, |state, node| {
            state.nodes.entry(node).or_default().files.create(path);
        })
        .await
    }

    /// Appends `bytes` to `path` as pending bytes.
    pub async fn append(&self, path: &str, bytes: &[u8]) -> Result<(), DiskError> {
        self.operate(Moves::Bytes(bytes.len() as u64), |state, node| {
            let disk = state.inject(node, DiskOp::Append, path)?;
            let used = disk.files.used();
            if let Some(capacity) = disk.faults.capacity_bytes {
                if used + bytes.len() as u64 > capacity {
                    return Err(DiskError::NoSpace {
                        path: path.to_string(),
                        bytes: bytes.len() as u64,
                        capacity,
                        used,
                    });
                }
            }
            disk.files.append(path, bytes)
        })
        .await
    }

    /// Makes every byte of `path` durable.
    pub async fn sync(&self, path: &str) -> Result<(), DiskError> {
        self.operate(Moves::Nothing, |state, node| {
            state.inject(node, DiskOp::Sync, path)?.files.sync(path)
        })
        .await
    }

    /// Reads all of `path` (pending bytes included, as a page cache would).
    pub async fn read(&self, path: &str) -> Result<Vec<u8>, DiskError> {
        self.operate(Moves::File(path), |state, node| {
            let faults = state.nodes.entry(node).or_default().faults.clone();
            let fails = state.chance(faults.read_error_per_mille);
            let corrupt_by_rate = state.chance(faults.corruption_per_mille);
            let disk = state.nodes.get_mut(&node).expect("entered above");
            if fails || disk.take_targeted(DiskOp::Read, path) {
                return Err(DiskError::Io {
                    op: DiskOp::Read,
                    path: path.to_string(),
                });
            }
            let targeted = disk
                .corrupt_next_read
                .iter()
                .position(|text| path.contains(text.as_str()))
                .map(|i| disk.corrupt_next_read.remove(i))
                .is_some();
            let mut bytes = disk.files.read(path)?;
            if (corrupt_by_rate || targeted) && !bytes.is_empty() {
                let bit = state.rng.below(bytes.len() as u64 * 8);
                bytes[(bit / 8) as usize] ^= 1 << (bit % 8);
            }
            Ok(bytes)
        })
        .await
    }

    /// Deletes `path`; whether it existed.
    pub async fn delete(&self, path: &str) -> bool {
        self.operate(Moves::Nothing, |state, node| {
            state.nodes.entry(node).or_default().files.delete(path)
        })
        .await
    }

    /// Renames `from` to `to`, replacing `to` (durable at once).
    pub async fn rename(&self, from: &str, to: &str) -> Result<(), DiskError> {
        self.operate(Moves::Nothing, |state, node| {
            state.nodes.entry(node).or_default().files.rename(from, to)
        })
        .await
    }

    /// The paths of the calling node's files that start with `prefix`, in order.
    pub async fn list(&self, prefix: &str) -> Vec<String> {
        self.operate(Moves::Nothing, |state, node| {
            state.nodes.entry(node).or_default().files.list(prefix)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use madsim::runtime::{Handle, Runtime};

    /// Runs `body` on a node of a fresh runtime with the disk registered and seeded; returns
    /// what it returns with the node's id.
    fn on_node<T: Send + 'static, F: std::future::Future<Output = T> + Send + 'static>(
        seed: u64,
        faults: DiskFaults,
        body: fn() -> F,
    ) -> (T, NodeId) {
        let runtime = Runtime::with_seed_and_config(seed, madsim::Config::default());
        runtime.add_simulator::<SimDisk>();
        runtime.block_on(async move {
            SimDisk::current().seed(seed);
            let node = Handle::current().create_node().name("n").build();
            SimDisk::current().set_faults(node.id(), faults);
            let result = node.spawn(body()).await.expect("the node task ends");
            (result, node.id())
        })
    }

    #[test]
    fn a_crash_keeps_synced_bytes_and_resolves_pending_ones_by_the_mode() {
        let runtime = Runtime::with_seed_and_config(3, madsim::Config::default());
        runtime.add_simulator::<SimDisk>();
        let outcomes = runtime.block_on(async {
            let disk = SimDisk::current();
            disk.seed(3);
            let mut outcomes = Vec::new();
            for mode in [CrashMode::DropPending, CrashMode::TornPrefix] {
                let node = Handle::current().create_node().build();
                disk.set_faults(
                    node.id(),
                    DiskFaults {
                        crash: mode,
                        ..DiskFaults::default()
                    },
                );
                node.spawn(async {
                    let disk = SimDisk::current();
                    disk.create("f").await;
                    disk.append("f", b"durable").await.expect("append");
                    disk.sync("f").await.expect("sync");
                    disk.append("f", &[7; 1000]).await.expect("append");
                })
                .await
                .expect("ran");
                assert_eq!(disk.peek(node.id(), "f").map(|b| b.len()), Some(1007));
                Handle::current().kill(node.id());
                outcomes.push(disk.peek(node.id(), "f").expect("the file survives"));
            }
            (outcomes, disk.take_events())
        });
        let (files, events) = outcomes;
        assert_eq!(files[0], b"durable", "dropped pending bytes");
        assert!(files[1].starts_with(b"durable") && files[1].len() <= 1007);
        assert!(
            matches!(
                &events[..],
                [
                    (
                        _,
                        DiskEvent::CrashResolved {
                            pending: 1000,
                            kept: 0,
                            ..
                        }
                    ),
                    (_, DiskEvent::CrashResolved { pending: 1000, .. })
                ]
            ),
            "{events:?}"
        );
    }

    #[test]
    fn targeted_and_capacity_faults_fail_the_operation_they_name() {
        let faults = DiskFaults {
            capacity_bytes: Some(10),
            ..DiskFaults::default()
        };
        let (results, _) = on_node(4, faults, || async {
            let disk = SimDisk::current();
            let node = plugin::node();
            disk.create("a/x").await;
            let full = disk.append("a/x", &[0; 11]).await;
            disk.append("a/x", &[1; 4]).await.expect("fits");
            disk.fail_next(node, DiskOp::Sync, "a/".to_string());
            let failed_sync = disk.sync("a/x").await;
            let second_sync = disk.sync("a/x").await;
            disk.corrupt_next_read(node, "a/".to_string());
            let corrupted = disk.read("a/x").await.expect("read");
            let clean = disk.read("a/x").await.expect("read");
            disk.rename("a/x", "b/y").await.expect("rename");
            let listed = (disk.list("a/").await, disk.list("b/").await);
            disk.rename("b/y", "a/x").await.expect("rename back");
            disk.lose(node, "a/");
            let lost = disk.read("a/x").await;
            assert_eq!(listed, (Vec::<String>::new(), vec!["b/y".to_string()]));
            (full, failed_sync, second_sync, corrupted, clean, lost)
        });
        let (full, failed_sync, second_sync, corrupted, clean, lost) = results;
        assert!(matches!(full, Err(DiskError::NoSpace { capacity: 10, .. })));
        assert!(matches!(
            failed_sync,
            Err(DiskError::Io {
                op: DiskOp::Sync,
                ..
            })
        ));
        assert_eq!(second_sync, Ok(()), "a targeted fault fires once");
        assert_eq!(clean, vec![1; 4]);
        let flipped: u32 = corrupted
            .iter()
            .zip(&clean)
            .map(|(a, b)| (a ^ b).count_ones())
            .sum();
        assert_eq!(flipped, 1, "one bit flipped");
        assert!(matches!(lost, Err(DiskError::NotFound { .. })));
    }
}
