//! Records and the events that flow on data channels.

use crate::ids::{ChannelIndex, CheckpointId, EventTime, Key, Offset, OperatorId, PartitionId};
use serde::{Deserialize, Serialize};

/// One record as it sits in a source log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceRecord {
    /// The grouping key.
    pub key: Key,
    /// The payload.
    pub value: i64,
    /// Event time; non-decreasing within a partition, so watermarks never make a record late.
    pub event_time: EventTime,
}

/// The position of an input record in the source logs: its identity for provenance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct InputRef {
    /// The source operator that read it (each source reads its own log).
    pub source: OperatorId,
    /// The partition it was read from.
    pub partition: PartitionId,
    /// Its offset in that partition.
    pub offset: Offset,
}

/// What caused a record: the checkers use it to prove each input's effect is committed once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Origin {
    /// The record derives from this input record.
    Input(InputRef),
    /// The record is the result of the window `[start, start + size)` of `key`.
    Window {
        /// The key of the window.
        key: Key,
        /// The window's first event time.
        start: EventTime,
    },
}

/// The source partition a record derives from, `None` for a window's result. A key's records
/// of one lane reach a keyed operator over one chain of channels, so in the order they were
/// read; records of different lanes interleave as the channels deliver them.
pub type Lane = Option<(OperatorId, PartitionId)>;

impl Origin {
    /// The lane of a record with this origin.
    pub fn lane(&self) -> Lane {
        match self {
            Origin::Input(input) => Some((input.source, input.partition)),
            Origin::Window { .. } => None,
        }
    }
}

/// A record in flight between operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The grouping key.
    pub key: Key,
    /// The payload (an aggregate, after a stateful operator).
    pub value: i64,
    /// Event time.
    pub event_time: EventTime,
    /// Provenance.
    pub origin: Origin,
}

/// A checkpoint barrier. It carries the id and whether it is a savepoint's, never a timestamp
/// (so that no run depends on a clock); a savepoint's files go to the savepoint's own directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CheckpointBarrier {
    /// The checkpoint this barrier belongs to.
    pub id: CheckpointId,
    /// A savepoint (self-contained, taken on demand) rather than a checkpoint.
    pub savepoint: bool,
}

impl CheckpointBarrier {
    /// The barrier of an ordinary checkpoint.
    pub fn checkpoint(id: CheckpointId) -> CheckpointBarrier {
        CheckpointBarrier {
            id,
            savepoint: false,
        }
    }
}

/// Everything that travels on a data channel, in FIFO order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StreamEvent {
    /// A data record.
    Record(Record),
    /// No record with a smaller event time follows on this channel.
    Watermark(EventTime),
    /// A checkpoint barrier.
    Barrier(CheckpointBarrier),
    /// The upstream task declined this checkpoint: abort it here too (Flink's
    /// `CancelCheckpointMarker`, `SingleCheckpointBarrierHandler#processCancellationBarrier`).
    CancelMarker(CheckpointId),
    /// No more records follow on this channel; barriers still do, until the final checkpoint.
    EndOfData,
    /// A record of a job that checkpoints without barriers, numbered on its channel (the
    /// receiver drops a replayed one it already processed). Boxed: every event is as large as
    /// the largest, and plain records are most of them.
    Logged(Box<LoggedRecord>),
}

/// A record numbered on its channel, with its sender's snapshot index (the index
/// communication-induced checkpointing piggybacks).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoggedRecord {
    /// Its number on the channel, from 1, continued across restores.
    pub sequence: u64,
    /// The index of the sender's latest local snapshot when it was sent.
    pub index: u64,
    pub record: Record,
}

/// The records one input channel had in flight for a snapshot (Flink's `ChannelStatePersister`).
pub type InFlight = (ChannelIndex, Vec<Record>);
