//! The TaskManager: hosts tasks, moves their data, writes their snapshots, restores them.
//!
//! Everything here is plumbing around [`Task`]: it turns task effects into messages (data to
//! other TaskManagers, snapshots to storage, acks to the JobManager, requests to the sink
//! system) and turns answers back into task inputs. Data for a task that is still restoring is
//! held until it runs.

use crate::bugs::SeededBug;
use crate::changelog::ChangelogFile;
use crate::cluster::ClusterConfig;
use crate::config::{CheckpointStorageKind, MemoryStorageLimits};
use crate::ids::{Attempt, ChannelIndex, CheckpointId, TaskId, TaskManagerId, Tick};
use crate::job::ExecutionPlan;
use crate::messages::{Address, Message, Node, Outbox};
use crate::record::StreamEvent;
use crate::sink::SinkReply;
use crate::storage::{
    StateHandle, StateLocation, StorageError, StorageOp, StoragePath, StorageReply,
};
use crate::storage_client::StorageClient;
use crate::task::{KeyedBackend, SnapshotRead, Task, TaskEffect};
use crate::trace::EngineEvent;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

/// A snapshot kept in the JobManager's memory, or why it may not be (Flink's messages from
/// `MemCheckpointStreamFactory`, so that the user sees what to change).
fn in_memory_state(limits: &MemoryStorageLimits, bytes: Vec<u8>) -> Result<StateHandle, String> {
    let size = bytes.len() as u64;
    if size > limits.max_state_bytes {
        return Err(format!(
            "Size of the state is larger than the maximum permitted memory-backed state. \
             Size={size}, maxSize={}. Consider using a different checkpoint storage, like the \
             FileSystemCheckpointStorage.",
            limits.max_state_bytes
        ));
    }
    if size > limits.frame_bytes {
        return Err(format!(
            "the acknowledgement carries {size} bytes of state, more than the message frame \
             size of {} bytes",
            limits.frame_bytes
        ));
    }
    Ok(StateHandle::in_memory(bytes))
}

/// A task could not restore, or failed: the JobManager fails the job over.
fn task_failed(attempt: Attempt, task: TaskId, reason: String, out: &mut Outbox) {
    let failed = Message::TaskFailed {
        attempt,
        task,
        reason,
    };
    out.send(Address::JobManager, failed);
}

/// Events for one input channel of a task.
type Batch = (TaskId, ChannelIndex, Vec<StreamEvent>);

/// A task's emitted events batched per target channel, so that a batch of effects sends each
/// channel one message, its events in order; local targets apart from remote ones.
#[derive(Debug, Default)]
struct Batches {
    local: Vec<Batch>,
    remote: Vec<Batch>,
}

impl Batches {
    /// Appends `event` to the batch for its target channel, or starts one.
    fn add(&mut self, is_local: bool, target: TaskId, channel: ChannelIndex, event: StreamEvent) {
        let batches = if is_local {
            &mut self.local
        } else {
            &mut self.remote
        };
        match batches
            .iter_mut()
            .rev()
            .find(|(t, c, _)| (*t, *c) == (target, channel))
        {
            Some((_, _, events)) => events.push(event),
            None => {
                // Room for a typical batch, so that it does not grow one event at a time.
                let mut events = Vec::with_capacity(BATCH_CAPACITY);
                events.push(event);
                batches.push((target, channel, events));
            }
        }
    }
}

/// The events a new batch has room for before it grows.
const BATCH_CAPACITY: usize = 16;
/// Ticks between two reads of a source.
const SOURCE_TICK_INTERVAL: u64 = 1;
/// Batches held for an attempt not deployed here yet (its deployment is on its way).
const EARLY_BATCHES_MAX: usize = 1 << 20;

#[derive(Debug)]
enum Request {
    /// One file of a snapshot to restore: the task's own (part 0) or shared run `part - 1`.
    Restore {
        task: TaskId,
        checkpoint: CheckpointId,
        part: usize,
    },
    /// One file of a snapshot being written (its shared runs and its own file).
    SnapshotPart {
        task: TaskId,
        checkpoint: CheckpointId,
    },
    /// A file of a task's changelog.
    Changelog { task: TaskId, file: ChangelogFile },
    /// A changelog file no snapshot lists, deleted.
    ChangelogDiscard,
}

/// A snapshot's writes still outstanding.
#[derive(Debug)]
struct SnapshotWrites {
    left: usize,
    failed: bool,
    handle: StateHandle,
}

/// What a snapshot is for, which decides where its file goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SnapshotKind {
    /// A checkpoint's: `chk-N/task-K`.
    Checkpoint,
    /// A savepoint's: the savepoint's own directory.
    Savepoint,
    /// A local snapshot of checkpointing without barriers, by the attempt that takes it: in
    /// `shared/`, since each recovery line that contains it references it.
    Local(Attempt),
}

/// A snapshot as its task hands it over: its own file, the new shared runs to upload first,
/// and every shared run it consists of.
#[derive(Debug)]
struct SnapshotFiles {
    bytes: Vec<u8>,
    uploads: Vec<(StoragePath, Vec<u8>)>,
    shared: Vec<StateHandle>,
}

/// A restore's reads: the handle and the parts read so far.
#[derive(Debug)]
struct RestoreReads {
    handle: StateHandle,
    parts: Vec<Option<Vec<u8>>>,
}

#[derive(Debug)]
enum Slot {
    /// Reading its snapshot; data that arrives meanwhile waits here.
    Restoring(Vec<(ChannelIndex, Vec<StreamEvent>)>),
    Running(Box<Task>),
}

/// The TaskManager node.
#[derive(Debug)]
pub struct TaskManager {
    id: TaskManagerId,
    plan: Arc<ExecutionPlan>,
    cluster: ClusterConfig,
    attempt: Option<Attempt>,
    tasks: BTreeMap<TaskId, Slot>,
    storage: StorageClient<Request>,
    /// The time of the input being handled (storage requests take their deadline from it).
    now: Tick,
    next_heartbeat: Tick,
    next_source_read: Option<Tick>,
    /// Snapshot writes in flight, by task and checkpoint.
    snapshot_writes: BTreeMap<(TaskId, CheckpointId), SnapshotWrites>,
    /// Restore reads in flight, by task.
    restore_reads: BTreeMap<TaskId, RestoreReads>,
    /// The attempt restored a snapshot the job does not own: first snapshots are full.
    force_full_snapshot: bool,
    /// Snapshots kept in memory this input, to hand back to their tasks (or refuse).
    stored_in_memory: Vec<(TaskId, CheckpointId, Result<StateHandle, String>)>,
    /// Data of a newer attempt that arrived before its deployment (another TaskManager got its
    /// deployment first and its tasks already send).
    early: Vec<(Attempt, TaskId, ChannelIndex, Vec<StreamEvent>)>,
}

impl TaskManager {
    /// A TaskManager. It does nothing until [`Node::on_start`].
    pub fn new(id: TaskManagerId, plan: Arc<ExecutionPlan>, cluster: ClusterConfig) -> TaskManager {
        TaskManager {
            id,
            plan,
            attempt: None,
            tasks: BTreeMap::new(),
            storage: StorageClient::new(cluster.storage_timeout_ticks),
            now: Tick(0),
            next_heartbeat: Tick(0),
            next_source_read: None,
            early: Vec::new(),
            stored_in_memory: Vec::new(),
            snapshot_writes: BTreeMap::new(),
            restore_reads: BTreeMap::new(),
            force_full_snapshot: false,
            cluster,
        }
    }

    /// The running tasks hosted here.
    pub fn tasks(&self) -> impl Iterator<Item = &Task> {
        self.tasks.values().filter_map(|slot| match slot {
            Slot::Running(task) => Some(task.as_ref()),
            Slot::Restoring(_) => None,
        })
    }

    fn request(&mut self, purpose: Request, op: StorageOp, out: &mut Outbox) {
        self.storage.send(self.now, purpose, op, out);
    }

    fn deploy(
        &mut self,
        now: Tick,
        attempt: Attempt,
        restore: BTreeMap<TaskId, StateHandle>,
        restored: Option<CheckpointId>,
        out: &mut Outbox,
    ) {
        self.attempt = Some(attempt);
        self.tasks.clear();
        // Answers to requests of the old attempt are ignored (unknown request ids).
        self.storage.forget_all();
        self.snapshot_writes.clear();
        self.restore_reads.clear();
        let mine = self.placed_here();
        let backend = self.keyed_backend();
        // State in the JobManager's memory is restored once every task of this TaskManager has
        // its slot: a restored task's in-flight records produce output at once, and output for
        // a local task without a slot yet would be lost.
        let mut in_memory: Vec<(TaskId, CheckpointId, Vec<u8>)> = Vec::new();
        for task in mine {
            match (restore.get(&task), restored) {
                (Some(handle), Some(checkpoint)) => {
                    if let Some(bytes) = self.start_restore(task, handle, checkpoint, out) {
                        in_memory.push((task, checkpoint, bytes));
                    }
                }
                _ => self.start_fresh(now, task, attempt, &backend, out),
            }
        }
        for (task, checkpoint, bytes) in in_memory {
            let read = Ok(StorageReply::Data(bytes));
            self.on_restore_read(now, task, checkpoint, 0, read, out);
        }
        self.deliver_early(attempt, out);
        self.schedule_sources(now);
    }

    /// The tasks of the plan that run on this TaskManager, in task order.
    fn placed_here(&self) -> Vec<TaskId> {
        self.plan
            .tasks
            .iter()
            .map(|t| t.id)
            .filter(|&t| self.cluster.placement(t) == self.id)
            .collect()
    }

    /// Gives `task` a restoring slot and requests the files of its snapshot. State kept in the
    /// JobManager's memory needs no read: its bytes are returned, for the caller to restore.
    fn start_restore(
        &mut self,
        task: TaskId,
        handle: &StateHandle,
        checkpoint: CheckpointId,
        out: &mut Outbox,
    ) -> Option<Vec<u8>> {
        self.tasks.insert(task, Slot::Restoring(Vec::new()));
        let reads = RestoreReads {
            handle: handle.clone(),
            parts: vec![None; 1 + handle.shared.len()],
        };
        self.restore_reads.insert(task, reads);
        match &handle.location {
            StateLocation::File(_) => {
                let files = std::iter::once(handle).chain(&handle.shared);
                for (part, file) in files.enumerate() {
                    let StateLocation::File(path) = &file.location else {
                        unreachable!("shared runs are files")
                    };
                    let op = StorageOp::Read { path: path.clone() };
                    let purpose = Request::Restore {
                        task,
                        checkpoint,
                        part,
                    };
                    self.request(purpose, op, out);
                }
                None
            }
            StateLocation::InMemory(bytes) => Some(bytes.clone()),
            StateLocation::Relative(name) => {
                unreachable!("the JobManager resolves relative state '{name}' before deploying")
            }
        }
    }

    /// Starts `task` without state, and tells the JobManager it runs.
    fn start_fresh(
        &mut self,
        now: Tick,
        task: TaskId,
        attempt: Attempt,
        backend: &KeyedBackend,
        out: &mut Outbox,
    ) {
        let spec = self.plan.task(task);
        let mut fresh = Task::new(spec, attempt, &self.plan.checkpoint);
        fresh.use_backend(backend, now);
        fresh.schedule_local_snapshots(now);
        self.tasks.insert(task, Slot::Running(Box::new(fresh)));
        out.send(Address::JobManager, Message::TaskRunning { attempt, task });
    }

    /// Data of this attempt is delivered; data of a newer attempt waits for its own
    /// deployment (a late deployment of an attempt the JobManager already replaced arrives
    /// after the newer attempt's data); data of older attempts is dropped.
    fn deliver_early(&mut self, attempt: Attempt, out: &mut Outbox) {
        let early = std::mem::take(&mut self.early);
        let (mine, newer): (Vec<_>, Vec<_>) = early
            .into_iter()
            .filter(|(a, ..)| *a >= attempt)
            .partition(|(a, ..)| *a == attempt);
        self.early = newer;
        for (_, target, channel, events) in mine {
            self.deliver(target, channel, events, out);
        }
    }

    /// Where the tasks keep keyed state, as the job's configuration says.
    fn keyed_backend(&self) -> KeyedBackend {
        let config = &self.plan.checkpoint;
        let CheckpointStorageKind::FileSystem(root) = config.storage(&self.plan.job) else {
            return KeyedBackend::Heap;
        };
        let shared_dir = StoragePath::shared_dir(root.as_str());
        match config.changelog {
            Some(options) => KeyedBackend::Changelog {
                log_dir: StoragePath::changelog_dir(root.as_str()),
                shared_dir,
                options,
            },
            None if config.incremental => KeyedBackend::Incremental { shared_dir },
            None => KeyedBackend::Heap,
        }
    }

    fn schedule_sources(&mut self, now: Tick) {
        let reading = self
            .tasks()
            .any(|task| task.is_source() && task.status() == crate::task::TaskStatus::Running);
        self.next_source_read = reading.then(|| now.after(SOURCE_TICK_INTERVAL));
    }

    fn on_restore_read(
        &mut self,
        now: Tick,
        task: TaskId,
        checkpoint: CheckpointId,
        part: usize,
        result: Result<StorageReply, StorageError>,
        out: &mut Outbox,
    ) {
        let attempt = self.attempt.expect("restores belong to a deployed attempt");
        let Some(Slot::Restoring(_)) = self.tasks.get(&task) else {
            return;
        };
        let Some(reads) = self.restore_reads.get_mut(&task) else {
            return; // An earlier part failed; the task already failed.
        };
        let bytes = match result {
            Ok(StorageReply::Data(bytes)) => bytes,
            Ok(other) => unreachable!("a read answers data, not {other:?}"),
            Err(error) => {
                let file = match part {
                    0 => &reads.handle,
                    run => &reads.handle.shared[run - 1],
                };
                let reason = format!("cannot read snapshot {}: {error}", file.location);
                self.restore_reads.remove(&task);
                return task_failed(attempt, task, reason, out);
            }
        };
        reads.parts[part] = Some(bytes);
        if reads.parts.iter().any(Option::is_none) {
            return;
        }
        self.restore_task(now, attempt, task, checkpoint, out);
    }

    /// Every file of the task's snapshot is read: restores the task from them, or fails it.
    fn restore_task(
        &mut self,
        now: Tick,
        attempt: Attempt,
        task: TaskId,
        checkpoint: CheckpointId,
        out: &mut Outbox,
    ) {
        let reads = self.restore_reads.remove(&task).expect("present");
        let handle = reads.handle;
        let mut parts = reads.parts.into_iter().map(|p| p.expect("all read"));
        let bytes = parts.next().expect("the task's own file");
        let shared: Vec<Vec<u8>> = parts.collect();
        let backend = self.keyed_backend();
        let spec = self.plan.task(task);
        let mut effects = Vec::new();
        let read = SnapshotRead {
            checkpoint,
            handle: &handle,
            bytes: &bytes,
            shared: &shared,
        };
        match Task::restore(
            spec,
            attempt,
            &self.plan.checkpoint,
            now,
            read,
            &backend,
            &mut effects,
        ) {
            Ok(restored) => self.run_restored(now, attempt, task, restored, effects, out),
            Err(error) => task_failed(attempt, task, error.to_string(), out),
        }
    }

    /// Puts a restored task in its slot, carries out what the restore produced and hands it
    /// the data held while it restored.
    fn run_restored(
        &mut self,
        now: Tick,
        attempt: Attempt,
        task: TaskId,
        mut restored: Task,
        effects: Vec<TaskEffect>,
        out: &mut Outbox,
    ) {
        if self.force_full_snapshot {
            restored.force_full_snapshot();
        }
        let Some(Slot::Restoring(held)) =
            self.tasks.insert(task, Slot::Running(Box::new(restored)))
        else {
            unreachable!("on_restore_read checked that the slot is restoring")
        };
        out.send(Address::JobManager, Message::TaskRunning { attempt, task });
        // Restored in-flight records may already have produced output.
        for (target, channel, events) in self.apply(task, effects, out) {
            self.deliver(target, channel, events, out);
        }
        for (channel, events) in held {
            self.deliver(task, channel, events, out);
        }
        self.schedule_sources(now);
    }

    /// Hands events to a local task and carries out what follows, including data for other
    /// local tasks (a work queue, so local delivery never recurses).
    fn deliver(
        &mut self,
        task: TaskId,
        channel: ChannelIndex,
        events: Vec<StreamEvent>,
        out: &mut Outbox,
    ) {
        let mut work = VecDeque::from([(task, channel, events)]);
        while let Some((task, channel, events)) = work.pop_front() {
            let effects = match self.tasks.get_mut(&task) {
                Some(Slot::Running(running)) => {
                    let mut effects = Vec::new();
                    running.on_data(channel, events, self.now, &mut effects);
                    effects
                }
                Some(Slot::Restoring(held)) => {
                    held.push((channel, events));
                    continue;
                }
                None => continue, // The task ended; its input is moot.
            };
            work.extend(self.apply(task, effects, out));
        }
    }

    /// Turns a task's effects into messages; returns data for local tasks.
    #[must_use]
    fn apply(&mut self, task: TaskId, effects: Vec<TaskEffect>, out: &mut Outbox) -> Vec<Batch> {
        let attempt = self.attempt.expect("tasks run in a deployed attempt");
        let mut batches = Batches::default();
        for effect in effects {
            match effect {
                TaskEffect::Emit {
                    target,
                    channel,
                    event,
                } => {
                    let is_local = self.cluster.placement(target) == self.id;
                    batches.add(is_local, target, channel, event);
                }
                TaskEffect::Store {
                    checkpoint,
                    savepoint,
                    bytes,
                    uploads,
                    shared,
                } => {
                    let files = SnapshotFiles {
                        bytes,
                        uploads,
                        shared,
                    };
                    let kind = match savepoint {
                        true => SnapshotKind::Savepoint,
                        false => SnapshotKind::Checkpoint,
                    };
                    self.store_snapshot(task, checkpoint, kind, files, out);
                }
                TaskEffect::StoreLocal { index, bytes } => {
                    let files = SnapshotFiles {
                        bytes,
                        uploads: Vec::new(),
                        shared: Vec::new(),
                    };
                    let kind = SnapshotKind::Local(attempt);
                    self.store_snapshot(task, index, kind, files, out);
                }
                TaskEffect::LocalSnapshotDone { snapshot, restored } => {
                    let message = Message::LocalSnapshotDone {
                        attempt,
                        snapshot,
                        restored,
                    };
                    out.send(Address::JobManager, message);
                }
                TaskEffect::UploadChangelog(upload) => {
                    let purpose = Request::Changelog {
                        task,
                        file: upload.file,
                    };
                    let (path, bytes) = (upload.path, upload.bytes);
                    self.request(purpose, StorageOp::Write { path, bytes }, out);
                }
                TaskEffect::DiscardChangelog(prefix) => {
                    let purpose = Request::ChangelogDiscard;
                    self.request(purpose, StorageOp::DeleteAll { prefix }, out);
                }
                TaskEffect::Acknowledge { checkpoint, state } => {
                    out.send(
                        Address::JobManager,
                        Message::Acknowledge {
                            attempt,
                            task,
                            checkpoint,
                            state,
                        },
                    );
                }
                TaskEffect::Decline { checkpoint, reason } => {
                    out.send(
                        Address::JobManager,
                        Message::Decline {
                            attempt,
                            task,
                            checkpoint,
                            reason,
                        },
                    );
                }
                TaskEffect::Sink(request) => out.send(Address::SinkSystem, Message::Sink(request)),
                TaskEffect::DataFinished => out.send(
                    Address::JobManager,
                    Message::TaskDataFinished { attempt, task },
                ),
                TaskEffect::Finished => {
                    out.send(Address::JobManager, Message::TaskFinished { attempt, task })
                }
                TaskEffect::Fail(reason) => task_failed(attempt, task, reason, out),
                TaskEffect::Trace(event) => out.trace(event),
            }
        }
        self.send_remote(attempt, batches.remote, out);
        batches.local
    }

    /// Sends batches for tasks on other TaskManagers, one message per target channel.
    fn send_remote(&self, attempt: Attempt, remote: Vec<Batch>, out: &mut Outbox) {
        for (target, channel, events) in remote {
            let tm = self.cluster.placement(target);
            out.send(
                Address::TaskManager(tm),
                Message::Data {
                    attempt,
                    target,
                    channel,
                    events,
                },
            );
        }
    }

    /// Stores a task's snapshot: inline in `_metadata` when small, in the JobManager's memory
    /// with JobManagerCheckpointStorage, otherwise as files (savepoints always as files).
    fn store_snapshot(
        &mut self,
        task: TaskId,
        checkpoint: CheckpointId,
        kind: SnapshotKind,
        files: SnapshotFiles,
        out: &mut Outbox,
    ) {
        let savepoint = kind == SnapshotKind::Savepoint;
        let SnapshotFiles {
            bytes,
            uploads,
            shared,
        } = files;
        let config = &self.plan.checkpoint;
        let small = (bytes.len() as u64) < config.inline_threshold_bytes;
        // Only a state without shared runs: a restore of an inlined state reads no
        // files.
        if small && shared.is_empty() && !savepoint {
            // Inline in `_metadata` (FLINK-11829): no file of its own.
            let handle = StateHandle::in_memory(bytes);
            self.stored_in_memory.push((task, checkpoint, Ok(handle)));
            return;
        }
        let path = match config.storage(&self.plan.job) {
            // Savepoints always go to files, in their own directory.
            _ if savepoint => config
                .savepoint_dir(&self.plan.job, checkpoint)
                .expect("savepoints are triggered only when configured")
                .join(&format!("task-{}", task.0)),
            CheckpointStorageKind::FileSystem(root) => match kind {
                SnapshotKind::Local(attempt) => {
                    StoragePath::local_snapshot(root.as_str(), task, attempt, checkpoint)
                }
                _ => StoragePath::task_snapshot(root.as_str(), checkpoint, task),
            },
            CheckpointStorageKind::JobManager(limits) => {
                let stored = in_memory_state(&limits, bytes);
                self.stored_in_memory.push((task, checkpoint, stored));
                return;
            }
        };
        let handle = StateHandle {
            shared,
            ..StateHandle::new(StateLocation::File(path.clone()), &bytes)
        };
        // Shared runs first: storage serves requests in order, so the task's own
        // file is durable last; the snapshot counts only when all are.
        if self.plan.tasks[task.index()].has_bug(SeededBug::AckBeforeDurable) {
            // Seeded bug: durable as far as the task knows, before any write ends.
            self.stored_in_memory
                .push((task, checkpoint, Ok(handle.clone())));
        } else {
            let writes = SnapshotWrites {
                left: uploads.len() + 1,
                failed: false,
                handle,
            };
            self.snapshot_writes.insert((task, checkpoint), writes);
        }
        for (path, bytes) in uploads.into_iter().chain([(path, bytes)]) {
            let purpose = Request::SnapshotPart { task, checkpoint };
            self.request(purpose, StorageOp::Write { path, bytes }, out);
        }
    }

    fn with_task(
        &mut self,
        task: TaskId,
        out: &mut Outbox,
        step: impl FnOnce(&mut Task, &mut Vec<TaskEffect>),
    ) {
        let Some(Slot::Running(running)) = self.tasks.get_mut(&task) else {
            return;
        };
        let mut effects = Vec::new();
        step(running, &mut effects);
        for (target, channel, events) in self.apply(task, effects, out) {
            self.deliver(target, channel, events, out);
        }
    }

    fn on_storage_result(
        &mut self,
        now: Tick,
        purpose: Request,
        result: Result<StorageReply, StorageError>,
        out: &mut Outbox,
    ) {
        match purpose {
            Request::Restore {
                task,
                checkpoint,
                part,
            } => self.on_restore_read(now, task, checkpoint, part, result, out),
            Request::ChangelogDiscard => {} // Whatever happened, the clean-up sweeps later.
            Request::Changelog { task, file } => {
                let durable = result.is_ok();
                self.with_task(task, out, |task, effects| {
                    task.on_changelog_written(file, durable, effects)
                });
            }
            Request::SnapshotPart { task, checkpoint } => {
                let Some(writes) = self.snapshot_writes.get_mut(&(task, checkpoint)) else {
                    return;
                };
                writes.left -= 1;
                writes.failed |= result.is_err();
                if writes.left > 0 {
                    return;
                }
                let writes = self
                    .snapshot_writes
                    .remove(&(task, checkpoint))
                    .expect("present");
                if writes.failed {
                    self.with_task(task, out, |task, effects| {
                        task.on_snapshot_failed(checkpoint, effects)
                    });
                } else {
                    self.with_task(task, out, |task, effects| {
                        task.on_snapshot_durable(checkpoint, writes.handle, effects)
                    });
                }
            }
        }
    }

    /// Hands the snapshots kept in memory (JobManagerCheckpointStorage) to their tasks, as a
    /// storage answer would; called once per input, after everything else.
    fn settle_in_memory(&mut self, out: &mut Outbox) {
        while !self.stored_in_memory.is_empty() {
            for (task, checkpoint, stored) in std::mem::take(&mut self.stored_in_memory) {
                match stored {
                    Ok(handle) => self.with_task(task, out, |task, effects| {
                        task.on_snapshot_durable(checkpoint, handle, effects)
                    }),
                    Err(reason) => {
                        out.trace(EngineEvent::SnapshotRefused {
                            task,
                            checkpoint,
                            reason,
                        });
                        self.with_task(task, out, |task, effects| {
                            task.on_snapshot_failed(checkpoint, effects)
                        });
                    }
                }
            }
        }
    }

    fn running_ids(&self) -> Vec<TaskId> {
        self.tasks().map(|task| task.id()).collect()
    }
}

impl Node for TaskManager {
    fn on_start(&mut self, now: Tick, out: &mut Outbox) {
        *self = TaskManager::new(self.id, self.plan.clone(), self.cluster.clone());
        self.now = now;
        self.storage.start(now);
        self.next_heartbeat = now.after(self.cluster.heartbeat_interval_ticks);
        out.send(
            Address::JobManager,
            Message::RegisterTaskManager {
                task_manager: self.id,
            },
        );
    }

    fn on_message(&mut self, now: Tick, _from: Address, message: Message, out: &mut Outbox) {
        self.handle_message(now, message, out);
        self.settle_in_memory(out);
    }

    fn on_tick(&mut self, now: Tick, out: &mut Outbox) {
        self.handle_tick(now, out);
        self.settle_in_memory(out);
    }

    fn next_deadline(&self) -> Option<Tick> {
        let task_timers = self.tasks().filter_map(Task::next_timer);
        [
            Some(self.next_heartbeat),
            self.next_source_read,
            self.storage.next_deadline(),
        ]
        .into_iter()
        .flatten()
        .chain(task_timers)
        .min()
    }
}

impl TaskManager {
    fn handle_message(&mut self, now: Tick, message: Message, out: &mut Outbox) {
        self.now = now;
        let current = |attempt: Attempt| Some(attempt) == self.attempt;
        match message {
            Message::DeployTasks {
                attempt,
                restore,
                restored_checkpoint,
                force_full_snapshot,
            } => {
                if self.attempt.is_none_or(|a| attempt > a) {
                    self.force_full_snapshot = force_full_snapshot;
                    self.deploy(now, attempt, restore, restored_checkpoint, out);
                }
            }
            Message::CancelTasks { attempt } => self.cancel(attempt),
            Message::TriggerCheckpoint {
                attempt,
                task,
                barrier,
            } if current(attempt) => {
                self.with_task(task, out, |task, effects| task.on_trigger(barrier, effects));
            }
            Message::NotifyCheckpointComplete {
                attempt,
                checkpoint,
                final_checkpoint,
            } if current(attempt) => {
                self.on_checkpoint_complete(now, checkpoint, final_checkpoint, out);
            }
            Message::NotifyCheckpointAborted {
                attempt,
                checkpoint,
                latest_completed,
            } if current(attempt) => {
                self.on_checkpoint_aborted(checkpoint, latest_completed, out);
            }
            Message::RecoveryLineComplete { attempt, notice } if current(attempt) => {
                for task in self.running_ids() {
                    self.with_task(task, out, |task, effects| {
                        task.on_line_complete(&notice, effects)
                    });
                }
                self.schedule_sources(now);
            }
            Message::Data {
                attempt,
                target,
                channel,
                events,
            } if current(attempt) => {
                self.deliver(target, channel, events, out);
            }
            Message::Data {
                attempt,
                target,
                channel,
                events,
            } if self.attempt.is_none_or(|a| attempt > a) => {
                self.hold_early(attempt, target, channel, events);
            }
            Message::StorageResult(response) => {
                // Answers to requests that timed out or belong to an old attempt are ignored.
                if let Some((purpose, result)) = self.storage.answer(response) {
                    self.on_storage_result(now, purpose, result, out);
                }
            }
            Message::SinkResult(reply) => self.on_sink_result(reply, out),
            // Messages of an older attempt.
            Message::TriggerCheckpoint { .. }
            | Message::NotifyCheckpointComplete { .. }
            | Message::NotifyCheckpointAborted { .. }
            | Message::RecoveryLineComplete { .. }
            | Message::Data { .. } => {}
            other => unreachable!("a TaskManager does not handle {other:?}"),
        }
    }

    /// Drops the tasks of `attempt` or an older one; a newer deployment is not cancelled.
    fn cancel(&mut self, attempt: Attempt) {
        if self.attempt.is_some_and(|a| a <= attempt) {
            self.tasks.clear();
            self.next_source_read = None;
        }
    }

    fn on_checkpoint_complete(
        &mut self,
        now: Tick,
        checkpoint: CheckpointId,
        final_checkpoint: bool,
        out: &mut Outbox,
    ) {
        for task in self.running_ids() {
            self.with_task(task, out, |task, effects| {
                task.on_notify_complete(checkpoint, final_checkpoint, effects)
            });
        }
        self.schedule_sources(now);
    }

    fn on_checkpoint_aborted(
        &mut self,
        checkpoint: CheckpointId,
        latest_completed: Option<CheckpointId>,
        out: &mut Outbox,
    ) {
        for task in self.running_ids() {
            self.with_task(task, out, |task, effects| {
                task.on_notify_aborted(checkpoint, latest_completed, effects)
            });
        }
    }

    /// Holds data of a newer attempt until its deployment arrives.
    fn hold_early(
        &mut self,
        attempt: Attempt,
        target: TaskId,
        channel: ChannelIndex,
        events: Vec<StreamEvent>,
    ) {
        self.early.push((attempt, target, channel, events));
        assert!(
            self.early.len() <= EARLY_BATCHES_MAX,
            "{} holds too much data of an undeployed attempt",
            self.id
        );
    }

    fn on_sink_result(&mut self, reply: SinkReply, out: &mut Outbox) {
        let current = |attempt: Attempt| Some(attempt) == self.attempt;
        match reply {
            SinkReply::PreCommitted { transaction } => {
                if current(transaction.attempt) {
                    self.with_task(transaction.sink, out, |task, effects| {
                        task.on_pre_committed(transaction, effects)
                    });
                }
            }
            SinkReply::Written { write } => {
                if current(write.attempt) {
                    self.with_task(write.sink, out, |task, effects| {
                        task.on_written(write, effects)
                    });
                }
            }
            SinkReply::Committed { transaction } => {
                // Routed by sink, not attempt: a restored sink re-commits older attempts'
                // transactions.
                self.with_task(transaction.sink, out, |task, effects| {
                    task.on_committed(transaction, effects)
                });
            }
        }
    }

    fn handle_tick(&mut self, now: Tick, out: &mut Outbox) {
        self.now = now;
        while let Some((purpose, error)) = self.storage.expire_next(now, out) {
            self.on_storage_result(now, purpose, Err(error), out);
        }
        if now >= self.next_heartbeat {
            out.send(
                Address::JobManager,
                Message::Heartbeat {
                    task_manager: self.id,
                    running: self.attempt.filter(|_| !self.tasks.is_empty()),
                },
            );
            self.next_heartbeat = now.after(self.cluster.heartbeat_interval_ticks);
        }
        if self.next_source_read.is_some_and(|at| at <= now) {
            let sources: Vec<TaskId> = self
                .tasks()
                .filter(|t| t.is_source())
                .map(|t| t.id())
                .collect();
            for task in sources {
                self.with_task(task, out, |task, effects| task.on_source_tick(effects));
            }
            self.schedule_sources(now);
        }
        let due: Vec<TaskId> = self
            .tasks()
            .filter(|task| task.next_timer().is_some_and(|at| at <= now))
            .map(Task::id)
            .collect();
        for task in due {
            self.with_task(task, out, |task, effects| task.on_timer(now, effects));
        }
    }
}
