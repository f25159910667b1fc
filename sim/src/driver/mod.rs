//! The drivers of the engine: they carry out what the sans-I/O roles ask for. Both share one
//! [`host::NodeHost`] (inputs in, outbox out, the timer rule), one storage service
//! (`storage::StorageService`: checkpoint files with a durable prefix) and one trace type
//! ([`crate::trace::TraceEntry`]). `nodes` runs them on madsim (latency, faults and crashes,
//! supervised by [`crate::harness`]); [`local::LocalCluster`] runs them in one struct, at
//! once, for unit tests, the failure-free oracle and the experiments without faults.

pub mod host;
pub mod local;
pub(crate) mod nodes;
pub(crate) mod storage;
