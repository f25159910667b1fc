//! The ordered trace of a run and its hash.

use crate::disk::DiskEvent;
use crate::faults::Fault;
use serde::{Deserialize, Serialize};
use snapsim_core::ids::Tick;
use snapsim_core::messages::Address;
use snapsim_core::trace::EngineEvent;

/// What happened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TraceEvent {
    /// An event inside the engine.
    Engine(EngineEvent),
    /// The simulation killed a node.
    Crash,
    /// The simulation restarted a node.
    Restart,
    /// The adversary injected a fault other than a crash or restart.
    Fault(Fault),
    /// The safety phase ended: network healed, disk faults off, every node up.
    Healed,
    /// The storage node's disk did something worth seeing.
    Storage(StorageEvent),
    /// A fault lost a message on its way to `to`.
    MessageLost {
        /// The receiver.
        to: Address,
        /// The message, for people.
        message: String,
    },
}

/// What the storage node's disk did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StorageEvent {
    /// A file's bytes were appended (pending, not yet durable).
    Written {
        /// The file.
        path: String,
        /// How many bytes.
        bytes: u64,
    },
    /// A file became durable.
    Synced {
        /// The file.
        path: String,
    },
    /// A file was deleted.
    Deleted {
        /// The file.
        path: String,
    },
    /// An operation failed.
    Failed { operation: String, error: String },
    /// A crash or a loss changed the disk.
    Disk(DiskEvent),
}

/// One trace entry: when, where, what.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceEntry {
    /// Virtual time.
    pub at: Tick,
    pub node: Address,
    pub event: TraceEvent,
}

/// The hash that proves determinism: FNV-1a (64 bit) over the bincode encoding of every entry,
/// One message between nodes, for a message-sequence chart: kept beside the trace only when a
/// run is asked for it ([`crate::world::RunConfig::logs_messages`]), and only messages with a
/// [`label`](snapsim_core::messages::Message::label).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageRecord {
    pub from: Address,
    pub to: Address,
    pub sent: Tick,
    /// When the receiver took it; none when it was lost (a fault, or a receiver that went down).
    pub delivered: Option<Tick>,
    /// What it was, e.g. `ack chk-3 (task-1)`.
    pub what: String,
}

/// in order. Equal traces give equal hashes on every platform.
pub fn trace_hash(trace: &[TraceEntry]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for entry in trace {
        let bytes = bincode::serde::encode_to_vec(entry, bincode::config::standard())
            .expect("trace entries always encode");
        for byte in bytes {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    hash
}
