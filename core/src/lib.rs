//! snapsim-core: a Flink-style checkpointing engine as deterministic, sans-I/O state machines.
//!
//! The one design decision to know: nothing in this crate performs I/O, reads a clock, spawns a
//! thread or draws a random number. Every component ([`jobmanager::JobManager`],
//! [`taskmanager::TaskManager`], `Task`, `CheckpointCoordinator`, the
//! sink-system node) takes inputs (a message, `now`, a storage completion) and
//! appends effects to an outbox. A driver carries the effects out: `snapsim-sim` has two, one on
//! madsim and one in process for tests. So every algorithm is testable without a runtime,
//! every run is a pure function of its inputs, and a snapshot algorithm is one trait
//! ([`algorithm::SnapshotAlgorithm`], with its [`barrier::BarrierHandler`]).
//!
//! The public modules are what drivers, checkers and a researcher's crate use: the nodes and
//! the messages between them, jobs and their options, records, operators' state, storage,
//! the trace, and the algorithm seam. The machinery inside a node (the task, the coordinator
//! and its store, the incremental backend, storage requests) is private to the crate.

pub mod algorithm;
pub mod barrier;
pub mod bugs;
mod changelog;
pub mod cluster;
pub mod codec;
pub mod config;
mod coordinator;
pub mod ids;
pub mod job;
pub mod jobmanager;
mod lsm;
pub mod messages;
pub mod operator;
pub mod probes;
pub mod record;
pub mod recovery_line;
pub mod retention;
pub mod sink;
mod sink_node;
mod status;
pub mod storage;
mod storage_client;
mod store;
mod task;
pub mod taskmanager;
pub mod testing;
pub mod trace;
