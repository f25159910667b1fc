//! The catalog of seeded bugs: switchable mistakes in the engine, each a known way checkpointing
//! goes wrong, so that the checkers can be shown to catch them. Every bug is off by default and
//! unreachable unless a job names it in [`JobGraph::bugs`](crate::job::JobGraph::bugs).

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;
use thiserror::Error;

/// A name that is not in the catalog.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("unknown seeded bug '{name}'; known: {known}")]
pub struct UnknownBug {
    /// The name given.
    pub name: String,
    /// The names that exist.
    pub known: String,
}

/// One seeded bug.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum SeededBug {
    /// EXACTLY_ONCE alignment that never blocks a channel: silently the AT_LEAST_ONCE tracker.
    AlignmentWithoutBlocking,
    /// A two-phase-commit sink commits its transaction when it snapshots, not when the
    /// checkpoint completes.
    CommitAtSnapshot,
    /// A restored sink aborts the pre-committed transactions it finds instead of committing
    /// them.
    AbortPreCommittedOnRestore,
    /// A source snapshots the offset it has read up to (its next batch included) instead of the
    /// offset at the barrier.
    SourceOffsetAtRead,
    /// A task acknowledges its snapshot as soon as it is taken, before its file is durable.
    AckBeforeDurable,
    /// A failover restores the newest triggered (pending) checkpoint, with whatever
    /// acknowledgements it has, instead of the latest completed one.
    RestoreFromPending,
    /// A 2PC sink keeps one transaction identity across checkpoints (FLINK-8132): records
    /// written after a pre-commit join the pre-committed transaction.
    ReusedTransactionId,
    /// After a failover the coordinator no longer triggers periodic checkpoints (FLINK-13256).
    PeriodicNotResumed,
    /// A 2PC sink that commits several transactions at once commits the newest first: a lower
    /// checkpoint's transaction is committed after a higher one's.
    CommitOutOfOrder,
    /// The shared-state registry deletes the runs older than the newest retained checkpoint,
    /// not the oldest: files an older retained checkpoint references are deleted.
    RegistryDeletesReferenced,
    /// A barrier n+1 arriving while n is aligning does not abort n: the alignment goes on for
    /// n+1 with the channels blocked for n counted as aligned.
    NewerBarrierNotAborting,
    /// A task that declines or skips a checkpoint sends no cancellation marker downstream.
    DeclineWithoutMarker,
    /// An abort notice's latest completed checkpoint is ignored, so a lost completion
    /// notification is never made up for (FLINK-21080).
    LostNotificationNotCompensated,
    /// Unaligned and Chandy-Lamport snapshots leave out their channel state: the in-flight
    /// records are not persisted.
    InFlightNotPersisted,
    /// The JobManager handles the answer to a `_metadata` write twice, so the coordinator's
    /// assertions fire at the first completion of every run, the failure-free oracle's too
    /// (the bug is on the path every run takes, faults or not: see [`SeededBug::in_oracle`]).
    MetadataAnsweredTwice,
    /// Discarding an aborted checkpoint also deletes what the checkpoints still pending
    /// uploaded (a discard by too wide a prefix): one of them completes listing deleted files.
    AbortDiscardsPending,
    /// A failed `_metadata` or HA-record write at finalization counts toward the tolerable
    /// failures (this engine's own defect until it was fixed; Flink ignores the reason).
    FinalizeFailureCounted,
    /// A keyed operator's task processes two records queued back to back on one channel in the
    /// opposite order (a batching bug): order-insensitive state (sums, counts) does not show it.
    AdjacentRecordsSwapped,
    /// A job started from a checkpoint without claiming it (NO_CLAIM) takes its files as its
    /// own and deletes them once a newer checkpoint subsumes it.
    NoClaimDeletesRestored,
    /// The changelog backend truncates its log when a materialization starts, not once it is
    /// durable: checkpoints reference a materialization that may never become durable.
    ChangelogTruncatedEarly,
    /// A restored task that checkpoints without barriers does not replay its log on its first
    /// output channel: the records in transit there at the recovery line are lost.
    LogReplaySkipped,
    /// The JobManager's recovery line search never looks at the first channel: a line may hold
    /// a receiver's snapshot that processed records its sender's snapshot had not sent.
    RecoveryLineIgnoresChannel,
    /// Communication-induced checkpointing takes its forced snapshot after the record that
    /// forces it counts as processed: the snapshot counts a record its state does not hold.
    ForcedSnapshotAfterRecord,
}

impl SeededBug {
    /// Every bug, in catalog order.
    pub const ALL: [SeededBug; 23] = [
        SeededBug::AlignmentWithoutBlocking,
        SeededBug::CommitAtSnapshot,
        SeededBug::AbortPreCommittedOnRestore,
        SeededBug::SourceOffsetAtRead,
        SeededBug::AckBeforeDurable,
        SeededBug::RestoreFromPending,
        SeededBug::ReusedTransactionId,
        SeededBug::PeriodicNotResumed,
        SeededBug::CommitOutOfOrder,
        SeededBug::RegistryDeletesReferenced,
        SeededBug::NewerBarrierNotAborting,
        SeededBug::DeclineWithoutMarker,
        SeededBug::LostNotificationNotCompensated,
        SeededBug::InFlightNotPersisted,
        SeededBug::MetadataAnsweredTwice,
        SeededBug::AbortDiscardsPending,
        SeededBug::FinalizeFailureCounted,
        SeededBug::AdjacentRecordsSwapped,
        SeededBug::NoClaimDeletesRestored,
        SeededBug::ChangelogTruncatedEarly,
        SeededBug::LogReplaySkipped,
        SeededBug::RecoveryLineIgnoresChannel,
        SeededBug::ForcedSnapshotAfterRecord,
    ];

    /// Whether the failure-free oracle keeps the bug. The oracle is meant to be correct, so it
    /// runs without seeded bugs, except one that models an engine bug on the path every run
    /// takes: such a bug shows as the oracle itself failing, which the judge must report as
    /// the run's finding, never as a crash of the sweep.
    pub fn in_oracle(self) -> bool {
        self == SeededBug::MetadataAnsweredTwice
    }

    /// Its name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            SeededBug::AlignmentWithoutBlocking => "alignment-without-blocking",
            SeededBug::CommitAtSnapshot => "commit-at-snapshot",
            SeededBug::AbortPreCommittedOnRestore => "abort-pre-committed-on-restore",
            SeededBug::SourceOffsetAtRead => "source-offset-at-read",
            SeededBug::AckBeforeDurable => "ack-before-durable",
            SeededBug::RestoreFromPending => "restore-from-pending",
            SeededBug::ReusedTransactionId => "reused-transaction-id",
            SeededBug::PeriodicNotResumed => "periodic-not-resumed",
            SeededBug::CommitOutOfOrder => "commit-out-of-order",
            SeededBug::RegistryDeletesReferenced => "registry-deletes-referenced",
            SeededBug::NewerBarrierNotAborting => "newer-barrier-not-aborting",
            SeededBug::DeclineWithoutMarker => "decline-without-marker",
            SeededBug::LostNotificationNotCompensated => "lost-notification-not-compensated",
            SeededBug::InFlightNotPersisted => "in-flight-not-persisted",
            SeededBug::MetadataAnsweredTwice => "metadata-answered-twice",
            SeededBug::AbortDiscardsPending => "abort-discards-pending",
            SeededBug::FinalizeFailureCounted => "finalize-failure-counted",
            SeededBug::AdjacentRecordsSwapped => "adjacent-records-swapped",
            SeededBug::NoClaimDeletesRestored => "no-claim-deletes-restored",
            SeededBug::ChangelogTruncatedEarly => "changelog-truncated-early",
            SeededBug::LogReplaySkipped => "log-replay-skipped",
            SeededBug::RecoveryLineIgnoresChannel => "recovery-line-ignores-channel",
            SeededBug::ForcedSnapshotAfterRecord => "forced-snapshot-after-record",
        }
    }

    /// What goes wrong, in one line.
    pub fn description(self) -> &'static str {
        match self {
            SeededBug::AlignmentWithoutBlocking => {
                "exactly-once alignment does not block channels (it is the at-least-once tracker)"
            }
            SeededBug::CommitAtSnapshot => {
                "the 2PC sink commits at snapshot time instead of on checkpoint completion"
            }
            SeededBug::AbortPreCommittedOnRestore => {
                "a restored 2PC sink aborts, instead of re-committing, its pre-committed transactions"
            }
            SeededBug::SourceOffsetAtRead => {
                "sources snapshot the offset read, not the offset at the barrier"
            }
            SeededBug::AckBeforeDurable => {
                "tasks acknowledge a snapshot before its file is durable"
            }
            SeededBug::RestoreFromPending => {
                "a failover restores the newest pending checkpoint, not the latest completed"
            }
            SeededBug::ReusedTransactionId => {
                "the 2PC sink reuses one transaction identity across checkpoints (FLINK-8132)"
            }
            SeededBug::PeriodicNotResumed => {
                "periodic checkpoints are not triggered again after a failover (FLINK-13256)"
            }
            SeededBug::CommitOutOfOrder => {
                "the 2PC sink commits a lower checkpoint's transaction after a higher one's"
            }
            SeededBug::RegistryDeletesReferenced => {
                "the shared-state registry deletes files an older retained checkpoint references"
            }
            SeededBug::NewerBarrierNotAborting => {
                "a barrier n+1 arriving while n is aligning does not abort n"
            }
            SeededBug::DeclineWithoutMarker => {
                "a task declines or skips a checkpoint without a cancellation marker downstream"
            }
            SeededBug::LostNotificationNotCompensated => {
                "a lost completion notification is never made up for (FLINK-21080)"
            }
            SeededBug::InFlightNotPersisted => {
                "unaligned and Chandy-Lamport snapshots do not persist their channel state (in-flight records)"
            }
            SeededBug::MetadataAnsweredTwice => {
                "the JobManager handles a _metadata write's answer twice: an engine assertion fails in every run, the failure-free oracle's too"
            }
            SeededBug::AbortDiscardsPending => {
                "discarding an aborted checkpoint also deletes the files of the checkpoints still pending"
            }
            SeededBug::FinalizeFailureCounted => {
                "a failed _metadata or HA-record write counts toward the tolerable checkpoint failures"
            }
            SeededBug::AdjacentRecordsSwapped => {
                "a keyed operator's task processes two records queued back to back on a channel in the opposite order"
            }
            SeededBug::NoClaimDeletesRestored => {
                "a job started from a checkpoint in NO_CLAIM mode deletes that checkpoint once a newer one subsumes it"
            }
            SeededBug::ChangelogTruncatedEarly => {
                "the changelog backend drops its log when a materialization starts, before the materialization is durable"
            }
            SeededBug::LogReplaySkipped => {
                "uncoordinated checkpointing: a restored task does not replay its log on its first output channel"
            }
            SeededBug::RecoveryLineIgnoresChannel => {
                "uncoordinated checkpointing: the recovery line search ignores one channel, so a line may hold orphan records"
            }
            SeededBug::ForcedSnapshotAfterRecord => {
                "communication-induced checkpointing: the forced snapshot counts the record that forced it as processed, though its state does not hold it"
            }
        }
    }

    /// The property a checker reports when the bug bites (`check::Property`'s name).
    pub fn violates(self) -> &'static str {
        match self {
            // The snapshot holds records after the barrier, or misses records before it.
            SeededBug::AlignmentWithoutBlocking | SeededBug::SourceOffsetAtRead => "consistent-cut",
            // Replayed records committed again, or records never committed.
            SeededBug::CommitAtSnapshot | SeededBug::AbortPreCommittedOnRestore => "exactly-once",
            // A new transaction under a committed one's id: its writes go into an ended
            // transaction and are lost.
            SeededBug::ReusedTransactionId => "sink-protocol",
            SeededBug::AckBeforeDurable => "storage",
            SeededBug::RestoreFromPending => "recovery",
            SeededBug::PeriodicNotResumed => "liveness",
            // A key's newer value is committed before its older one.
            SeededBug::CommitOutOfOrder => "state-consistency",
            SeededBug::RegistryDeletesReferenced => "storage",
            // The snapshot of n+1 misses the records between n and n+1 on the early channels.
            SeededBug::NewerBarrierNotAborting => "consistent-cut",
            // A channel delivers a later barrier before anything for the declined checkpoint.
            SeededBug::DeclineWithoutMarker => "cancellation",
            // A task told that a checkpoint completed has not committed up to it.
            SeededBug::LostNotificationNotCompensated => "notification",
            // Operator state plus channel state miss the records that were in flight.
            SeededBug::InFlightNotPersisted => "consistent-cut",
            // The coordinator asserts that a checkpoint's metadata is written once.
            SeededBug::MetadataAnsweredTwice => "no-crash",
            // A completion lists a file deleted before it (caught at completion, not restore).
            SeededBug::AbortDiscardsPending => "storage",
            // The job fails over with fewer counted failures than Flink's rule needs.
            SeededBug::FinalizeFailureCounted => "tolerable-failures",
            // A sink commits a partition's effects out of offset order.
            SeededBug::AdjacentRecordsSwapped => "channel-order",
            // The user's snapshot is deleted.
            SeededBug::NoClaimDeletesRestored => "storage",
            // A completed checkpoint references a materialization that is not durable.
            SeededBug::ChangelogTruncatedEarly => "storage",
            // The restored sender replays fewer records than were in transit at the line.
            SeededBug::LogReplaySkipped => "recovery",
            // The receiver's snapshot holds inputs its sender's snapshot had not yet sent.
            SeededBug::RecoveryLineIgnoresChannel => "consistent-cut",
            // A line's snapshot lacks a record that is not in transit either.
            SeededBug::ForcedSnapshotAfterRecord => "consistent-cut",
        }
    }

    /// Where Flink says how it should be.
    pub fn reference(self) -> &'static str {
        match self {
            SeededBug::AlignmentWithoutBlocking => {
                "AbstractAlignedBarrierHandlerState (a channel blocks once its barrier arrived)"
            }
            SeededBug::CommitAtSnapshot => {
                "TwoPhaseCommitSinkFunction (commit only in notifyCheckpointComplete)"
            }
            SeededBug::AbortPreCommittedOnRestore => {
                "TwoPhaseCommitSinkFunction#initializeState (recoverAndCommit on restore)"
            }
            SeededBug::SourceOffsetAtRead => {
                "Flink docs, Stateful Stream Processing, \"Recovery\" (sources re-read from the offset in the checkpoint)"
            }
            SeededBug::AckBeforeDurable => {
                "AsyncCheckpointRunnable, FLINK-25305 (acknowledge after the asynchronous part completed)"
            }
            SeededBug::RestoreFromPending => {
                "CheckpointCoordinator#restoreLatestCheckpointedStateInternal (restore the latest completed checkpoint)"
            }
            SeededBug::ReusedTransactionId => "FLINK-8132; TwoPhaseCommitSinkFunction#snapshotState",
            SeededBug::PeriodicNotResumed => "FLINK-13256; CheckpointCoordinator.ScheduledTrigger",
            SeededBug::CommitOutOfOrder => {
                "TwoPhaseCommitSinkFunction#notifyCheckpointComplete (pending transactions committed in checkpoint id order)"
            }
            SeededBug::RegistryDeletesReferenced => {
                "SharedStateRegistryImpl#unregisterUnusedState (a shared file is deleted only when no retained checkpoint uses it)"
            }
            SeededBug::NewerBarrierNotAborting => {
                "SingleCheckpointBarrierHandler#checkNewCheckpoint (a newer barrier aborts the pending checkpoint)"
            }
            SeededBug::DeclineWithoutMarker => {
                "SubtaskCheckpointCoordinatorImpl#checkpointState and #abortCheckpointOnBarrier, StreamTask#performCheckpoint (broadcast CancelCheckpointMarker)"
            }
            SeededBug::LostNotificationNotCompensated => "FLINK-21080; SubtaskCheckpointCoordinatorImpl#notifyCheckpoint (an abort notice first commits the latest completed)",
            SeededBug::InFlightNotPersisted => {
                "ChannelStatePersister#maybePersist (in-flight input persisted as channel state)"
            }
            SeededBug::MetadataAnsweredTwice => {
                "CheckpointCoordinator#completePendingCheckpoint (a pending checkpoint is finalized once)"
            }
            SeededBug::AbortDiscardsPending => {
                "PendingCheckpoint#abort (discards its own state only)"
            }
            SeededBug::FinalizeFailureCounted => {
                "CheckpointFailureManager#checkFailureCounter (FINALIZE_CHECKPOINT_FAILURE is ignored)"
            }
            SeededBug::AdjacentRecordsSwapped => {
                "Flink's input channels are FIFO (InputGate, RecordDeserializer): records in send order"
            }
            SeededBug::NoClaimDeletesRestored => {
                "RestoreMode.NO_CLAIM: the snapshot gets CheckpointProperties.forUnclaimedSnapshot, never discarded"
            }
            SeededBug::ChangelogTruncatedEarly => {
                "ChangelogKeyedStateBackend#handleMaterializationResult (the log is cut only after the materialization's upload succeeded)"
            }
            SeededBug::LogReplaySkipped => {
                "sender-based message logging: a restored sender re-sends every logged message its receiver's restored state had not processed (Johnson and Zwaenepoel 1987; CheckMate's replay_from_log)"
            }
            SeededBug::RecoveryLineIgnoresChannel => {
                "the recovery line is a consistent global state: no receiver's checkpoint records a message its sender's checkpoint did not send (Wang 1997, rollback-dependency graph; CheckMate's find_recovery_line)"
            }
            SeededBug::ForcedSnapshotAfterRecord => {
                "index-based communication-induced checkpointing takes the forced checkpoint before the message is processed (Briatico, Ciuffoletti and Simoncini 1984; CheckMate's cic_cycle_detection runs before the message)"
            }
        }
    }

    /// The named scenario whose runs reach the bug's path, for a bug no generated case can
    /// reach (generated jobs never start from another job's snapshot, nor use the changelog).
    pub fn scenario(self) -> Option<&'static str> {
        match self {
            SeededBug::NoClaimDeletesRestored => Some("resume"),
            SeededBug::ChangelogTruncatedEarly => Some("changelog"),
            SeededBug::LogReplaySkipped
            | SeededBug::RecoveryLineIgnoresChannel
            | SeededBug::ForcedSnapshotAfterRecord => Some("uncoordinated"),
            _ => None,
        }
    }

    /// The bug called `name`.
    pub fn named(name: &str) -> Option<SeededBug> {
        SeededBug::ALL.into_iter().find(|bug| bug.name() == name)
    }

    /// The bugs called `names`, or the first name that is not in the catalog.
    pub fn all_named<S: AsRef<str>>(names: &[S]) -> Result<BTreeSet<SeededBug>, UnknownBug> {
        names
            .iter()
            .map(|name| {
                SeededBug::named(name.as_ref()).ok_or_else(|| UnknownBug {
                    name: name.as_ref().to_string(),
                    known: SeededBug::ALL.map(SeededBug::name).join(", "),
                })
            })
            .collect()
    }
}

impl fmt::Display for SeededBug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
