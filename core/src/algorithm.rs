//! Snapshot algorithms as a researcher sees them: a name, a guarantee, the checkpoint options
//! the algorithm needs, and the [`BarrierHandler`] each task runs.
//!
//! The five built-in algorithms ([`FlinkAlgorithm`]) are combinations of Flink's own options,
//! and the options choose their handler ([`handler_for`]), as in Flink. An algorithm from
//! outside the engine is *plugged*: the job carries it ([`crate::job::JobGraph::use_algorithm`]),
//! and every task asks it for its handler. The rest of the engine (snapshots, acknowledgements,
//! the coordinator, restore) is the same for every algorithm.

use crate::barrier::{handler_for, BarrierHandler, NoBarriers};
use crate::config::{CheckpointConfig, CheckpointingMode, LoggingProtocol};
use std::fmt;
use std::sync::Arc;

/// What a run with the algorithm is judged against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Guarantee {
    /// Every input's effect is committed once.
    ExactlyOnce,
    /// Every input's effect is committed at least once (duplicates counted, not failed).
    AtLeastOnce,
}

impl Guarantee {
    /// The checkpointing mode that asks for this guarantee.
    pub fn mode(self) -> CheckpointingMode {
        match self {
            Guarantee::ExactlyOnce => CheckpointingMode::ExactlyOnce,
            Guarantee::AtLeastOnce => CheckpointingMode::AtLeastOnce,
        }
    }
}

/// A snapshot algorithm: how tasks handle barriers, and what the job's options must be for it.
pub trait SnapshotAlgorithm: Send + Sync {
    /// Its name on the command line, in outcomes and replay lines (unique in a catalog).
    fn name(&self) -> &str;
    /// One line for `snapsim list`.
    fn description(&self) -> &str;
    /// What its runs are judged against.
    fn guarantee(&self) -> Guarantee;
    /// Whether its snapshots hold channel state (in-flight records). Such snapshots can grow
    /// without bound under back-pressure, so a scenario with a memory budget may refuse them.
    fn records_channel_state(&self) -> bool {
        false
    }
    /// Sets the job's checkpoint options for the algorithm. The default sets the mode its
    /// guarantee needs and, for an algorithm that records channel state, one checkpoint at a
    /// time (the engine stores channel state of one checkpoint per task at once).
    fn configure(&self, options: &mut CheckpointConfig) {
        options.mode = self.guarantee().mode();
        if self.records_channel_state() {
            options.max_concurrent = 1;
        }
    }
    /// The handler of one task with `channels` input channels.
    fn handler(&self, options: &CheckpointConfig, channels: u16) -> Box<dyn BarrierHandler>;
    /// Whether the job's options alone choose its handler (the built-ins): then the job runs
    /// as Flink would with those options and carries no plugged algorithm.
    fn chosen_by_options(&self) -> bool {
        false
    }
    /// Whether it checkpoints without barriers (tasks snapshot on their own and log what they
    /// send): such a job takes no savepoints and keeps its state in the heap backend.
    fn without_barriers(&self) -> bool {
        let mut options = CheckpointConfig::default();
        self.configure(&mut options);
        options.logging.is_some()
    }
}

/// A snapshot algorithm from outside the engine's options, carried by the job (see
/// [`crate::job::JobGraph::use_algorithm`]).
/// Two are equal when their names are.
#[derive(Clone)]
pub struct Plugged(pub Arc<dyn SnapshotAlgorithm>);

impl fmt::Debug for Plugged {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Plugged({})", self.0.name())
    }
}

impl PartialEq for Plugged {
    fn eq(&self, other: &Plugged) -> bool {
        self.0.name() == other.0.name()
    }
}

impl Eq for Plugged {}

/// The aligned-checkpoint timeout of [`FlinkAlgorithm::AlignedTimeout`], in ticks (ms).
pub const ALIGNED_TIMEOUT_TICKS: u64 = 20;

/// The built-in algorithms: combinations of Flink's checkpoint options (and classic
/// Chandy-Lamport, which is not a Flink mode but shares the unaligned handler).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlinkAlgorithm {
    /// EXACTLY_ONCE with aligned barriers (Flink's `CheckpointBarrierHandler` aligning).
    Aligned,
    /// AT_LEAST_ONCE barrier tracking (Flink's `CheckpointBarrierTracker`).
    AtLeastOnce,
    /// Unaligned checkpoints (FLIP-76).
    Unaligned,
    /// Unaligned with an aligned-checkpoint timeout of [`ALIGNED_TIMEOUT_TICKS`].
    AlignedTimeout,
    /// Classic Chandy-Lamport: markers in FIFO order, channel state recorded.
    ChandyLamport,
}

impl FlinkAlgorithm {
    /// Every built-in algorithm, in listing order.
    pub const ALL: [FlinkAlgorithm; 5] = [
        FlinkAlgorithm::Aligned,
        FlinkAlgorithm::AtLeastOnce,
        FlinkAlgorithm::Unaligned,
        FlinkAlgorithm::AlignedTimeout,
        FlinkAlgorithm::ChandyLamport,
    ];
}

impl SnapshotAlgorithm for FlinkAlgorithm {
    fn name(&self) -> &str {
        match self {
            FlinkAlgorithm::Aligned => "aligned",
            FlinkAlgorithm::AtLeastOnce => "at-least-once",
            FlinkAlgorithm::Unaligned => "unaligned",
            FlinkAlgorithm::AlignedTimeout => "aligned-timeout",
            FlinkAlgorithm::ChandyLamport => "chandy-lamport",
        }
    }

    fn description(&self) -> &str {
        match self {
            FlinkAlgorithm::Aligned => "aligned barriers, EXACTLY_ONCE (Flink's default): channels whose barrier came block until all came; judged exactly-once",
            FlinkAlgorithm::AtLeastOnce => "barrier tracking, AT_LEAST_ONCE: nothing blocks, the snapshot waits for the last barrier; judged at-least-once (duplicates counted)",
            FlinkAlgorithm::Unaligned => "unaligned checkpoints (FLIP-76): barriers overtake queued input, in-flight records persisted as channel state; max concurrent forced to 1; judged exactly-once",
            FlinkAlgorithm::AlignedTimeout => "unaligned with a 20 ms aligned-checkpoint timeout: starts aligned, switches to unaligned at a task aligning for 20 ms; max concurrent 1; judged exactly-once",
            FlinkAlgorithm::ChandyLamport => "classic Chandy-Lamport: markers in FIFO order, snapshot on the first, channel state recorded until each channel's marker; max concurrent 1; judged exactly-once",
        }
    }

    fn guarantee(&self) -> Guarantee {
        match self {
            FlinkAlgorithm::AtLeastOnce => Guarantee::AtLeastOnce,
            _ => Guarantee::ExactlyOnce,
        }
    }

    fn records_channel_state(&self) -> bool {
        matches!(
            self,
            FlinkAlgorithm::Unaligned
                | FlinkAlgorithm::AlignedTimeout
                | FlinkAlgorithm::ChandyLamport
        )
    }

    fn configure(&self, options: &mut CheckpointConfig) {
        options.mode = self.guarantee().mode();
        options.unaligned = matches!(
            self,
            FlinkAlgorithm::Unaligned | FlinkAlgorithm::AlignedTimeout
        );
        options.aligned_timeout_ticks = match self {
            FlinkAlgorithm::AlignedTimeout => ALIGNED_TIMEOUT_TICKS,
            _ => 0,
        };
        options.chandy_lamport = *self == FlinkAlgorithm::ChandyLamport;
        options.logging = None;
        if self.records_channel_state() {
            options.max_concurrent = 1;
        }
    }

    fn handler(&self, options: &CheckpointConfig, channels: u16) -> Box<dyn BarrierHandler> {
        handler_for(options, channels)
    }

    fn chosen_by_options(&self) -> bool {
        true
    }
}

/// The built-in algorithms without barriers: tasks snapshot on their own and log what they send,
/// and the JobManager completes recovery lines from their local snapshots
/// (`crate::recovery_line`). Not Flink modes: the protocols the CheckMate study compares with
/// Flink's (Siachamis et al., ICDE 2024).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogBasedAlgorithm(pub LoggingProtocol);

impl LogBasedAlgorithm {
    /// Both, in listing order.
    pub const ALL: [LogBasedAlgorithm; 2] = [
        LogBasedAlgorithm(LoggingProtocol::Uncoordinated),
        LogBasedAlgorithm(LoggingProtocol::CommunicationInduced),
    ];
}

impl SnapshotAlgorithm for LogBasedAlgorithm {
    fn name(&self) -> &str {
        match self.0 {
            LoggingProtocol::Uncoordinated => "uncoordinated",
            LoggingProtocol::CommunicationInduced => "communication-induced",
        }
    }

    fn description(&self) -> &str {
        match self.0 {
            LoggingProtocol::Uncoordinated => "uncoordinated checkpointing: no barriers, each task snapshots on its own timer and logs what it sends; the JobManager completes the latest consistent set of local snapshots (recovery line), restores roll back to it and senders replay their logs; judged exactly-once",
            LoggingProtocol::CommunicationInduced => "communication-induced checkpointing: uncoordinated, and records carry their sender's snapshot index; a task receiving a higher index takes a forced snapshot first, which bounds how far a recovery line rolls back (the domino effect; index-based, BCS); judged exactly-once",
        }
    }

    fn guarantee(&self) -> Guarantee {
        Guarantee::ExactlyOnce
    }

    /// Local snapshots hold the heap backend's whole state, and a savepoint is a coordinated
    /// snapshot: the incremental backend and savepoints are turned off (a client's savepoint
    /// request is refused for want of a directory).
    fn configure(&self, options: &mut CheckpointConfig) {
        options.mode = CheckpointingMode::ExactlyOnce;
        options.unaligned = false;
        options.aligned_timeout_ticks = 0;
        options.chandy_lamport = false;
        options.incremental = false;
        options.savepoint_directory = None;
        options.logging = Some(self.0);
    }

    fn handler(&self, _options: &CheckpointConfig, _channels: u16) -> Box<dyn BarrierHandler> {
        Box::new(NoBarriers)
    }

    fn chosen_by_options(&self) -> bool {
        true
    }
}
