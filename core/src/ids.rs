//! Identifiers and counts as newtypes with sized integers, so that one kind of id cannot be
//! passed for another and every width is explicit (as TigerBeetle's style asks).

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! newtype {
    ($(#[$doc:meta])* $name:ident($inner:ty), $prefix:literal) => {
        $(#[$doc])*
        #[derive(
            Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
        )]
        pub struct $name(pub $inner);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "{}"), self.0)
            }
        }
    };
}

newtype!(
    /// The barrier sequence number of a checkpoint. Starts at 1 and strictly increases;
    /// an aborted attempt still consumes its id (Flink's `CheckpointIDCounter`).
    CheckpointId(u64), "chk-"
);
newtype!(
    /// A subtask of the job: one parallel instance of one operator. Dense, from 0.
    TaskId(u32), "task-"
);
newtype!(
    /// An operator (vertex) of the job graph. Dense, from 0, in the order they were added.
    OperatorId(u32), "op-"
);
newtype!(
    /// The index of an input channel of one task, in the order its inputs were wired.
    ChannelIndex(u16), "ch-"
);
newtype!(
    /// Virtual time in milliseconds since the start of the run. The engine never reads a clock.
    Tick(u64), "t="
);
newtype!(
    /// A partition of a replayable source log.
    PartitionId(u16), "p"
);
newtype!(
    /// A position in one source partition: the index of the next record to read.
    Offset(u64), "@"
);
newtype!(
    /// A grouping key of a record.
    Key(u64), "k"
);
newtype!(
    /// Event time carried by records and watermarks, in the source's own units.
    EventTime(u64), "et="
);
newtype!(
    /// An execution attempt of the whole job. Every failover deploys a new attempt; messages
    /// from an older attempt are ignored (Flink's ExecutionAttemptID plays this role).
    Attempt(u32), "attempt-"
);
newtype!(
    /// A TaskManager of the cluster.
    TaskManagerId(u16), "tm-"
);

impl CheckpointId {
    /// The first id a fresh job uses (Flink's `CheckpointIDCounter.INITIAL_CHECKPOINT_ID = 1`).
    pub const INITIAL: CheckpointId = CheckpointId(1);

    /// The id after this one.
    pub fn next(self) -> CheckpointId {
        CheckpointId(
            self.0
                .checked_add(1)
                .expect("checkpoint ids never overflow u64"),
        )
    }
}

impl Tick {
    /// `self + ticks`, saturating at the end of time.
    pub fn after(self, ticks: u64) -> Tick {
        Tick(self.0.saturating_add(ticks))
    }

    /// Ticks from `earlier` to `self`, zero if `earlier` is later.
    pub fn since(self, earlier: Tick) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

impl Offset {
    /// The offset after this one.
    pub fn next(self) -> Offset {
        Offset(self.0 + 1)
    }
}

impl Attempt {
    /// The attempt after this one.
    pub fn next(self) -> Attempt {
        Attempt(
            self.0
                .checked_add(1)
                .expect("attempts are bounded by the restart strategy"),
        )
    }
}

impl EventTime {
    /// The watermark that ends all event time: every window fires.
    pub const MAX: EventTime = EventTime(u64::MAX);
}

impl TaskId {
    /// For indexing dense per-task tables.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl ChannelIndex {
    /// For indexing a task's input channels.
    pub fn index(self) -> usize {
        usize::from(self.0)
    }
}
