//! snapsim-core: a Flink-style checkpointing engine as deterministic, sans-I/O state machines.
//!
//! The one design decision to know: nothing in this crate performs I/O, reads a clock, spawns a
//! thread or draws a random number. Every component ([`jobmanager::JobManager`],
//! [`taskmanager::TaskManager`], [`task::Task`], [`coordinator::CheckpointCoordinator`], the
//! storage and sink-system nodes) takes inputs (a message, `now`, a storage completion) and
//! appends effects to an outbox. A driver carries the effects out: `snapsim-sim` on madsim,
//! or [`testing::LocalCluster`] in unit tests. So every algorithm is testable without a runtime,
//! every run is a pure function of its inputs, and a snapshot algorithm is one trait
//! ([`barrier::BarrierHandler`]).

pub mod algorithm;
pub mod barrier;
pub mod bugs;
pub mod cluster;
pub mod codec;
pub mod config;
pub mod coordinator;
pub mod ids;
pub mod job;
pub mod jobmanager;
pub mod lsm;
pub mod messages;
pub mod operator;
pub mod probes;
pub mod record;
pub mod retention;
pub mod sink;
pub mod sink_node;
pub mod status;
pub mod storage;
pub mod storage_client;
pub mod storage_node;
pub mod store;
pub mod task;
pub mod taskmanager;
pub mod testing;
pub mod trace;
