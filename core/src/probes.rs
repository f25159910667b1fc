//! Coverage probes: named points at the engine's interesting decisions (FoundationDB's
//! `CODE_PROBE`, TigerBeetle's coverage marks). A sweep counts the runs that reached each, so a
//! user sees which decisions the adversary never drove the engine into.
//!
//! A probe is one bit in a per-thread set: hitting it is an OR, reading the set takes and
//! clears it. The driver reads it at the end of a run on the run's own thread (a simulated run
//! has one thread to itself). Probes never feed back into the engine, so they cannot change a
//! run; and they are not in the trace, so they do not change its hash.

use serde::{Deserialize, Serialize};
use std::cell::Cell;

/// One interesting decision of the engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Probe {
    /// A checkpoint expired before every task acknowledged it.
    AbortExpired,
    /// A task declined a checkpoint (counted).
    AbortDeclined,
    /// A task's asynchronous part failed (a snapshot write or sync).
    AbortAsyncException,
    /// Writing `_metadata` or the HA record of a completion failed.
    AbortFinalizeFailure,
    /// A newer barrier arrived while a task aligned: the task declined the older checkpoint.
    DeclinedSubsumed,
    /// A cancellation marker made a task decline.
    DeclinedOnCancellationBarrier,
    /// A task that was not ready (restoring its channel state) declined.
    DeclinedTaskNotReady,
    /// A newer checkpoint completed first.
    AbortSubsumed,
    /// The job failed over with checkpoints pending.
    AbortJobFailover,
    /// Persisting the id counter failed: the trigger was given up.
    AbortTriggerFailure,
    /// The scheduler stopped with checkpoints pending (cancellation, the end).
    AbortCoordinatorSuspend,
    /// A periodic trigger was refused: too many checkpoints pending.
    RefusedTooManyRequests,
    /// A periodic trigger was refused: the min pause since the last completion.
    RefusedMinPause,
    /// The consecutive counted failures passed the tolerable number: the job fails over.
    ToleranceExceeded,
    /// A completion retired an older checkpoint from the store.
    CheckpointRetired,
    /// A savepoint completed.
    SavepointCompleted,
    /// The final checkpoint's notification was sent again for a task still waiting.
    FinalNotificationRepeated,
    /// A checkpoint switched from aligned to unaligned after the aligned-checkpoint timeout.
    AlignedTimeoutSwitched,
    /// An unaligned barrier overtook queued input.
    BarrierOvertook,
    /// A task skipped a checkpoint aborted before its barrier came and sent a marker on.
    CheckpointSkipped,
    /// A restored task put in-flight records from channel state in front of its input.
    InFlightRestored,
    /// An abort notice made a task commit up to the latest completed checkpoint it had missed.
    LostNotificationCompensated,
    /// A restored 2PC sink committed transactions pre-committed before the failure.
    PreCommittedRecommitted,
    /// A storage request got no answer in time.
    StorageRequestTimedOut,
    /// A TaskManager's heartbeat timed out while it held tasks: the job fails over.
    HeartbeatTimedOut,
    /// The restart strategy gave up: the job fails for good.
    RestartStrategyGaveUp,
    /// The JobManager started over from storage (an HA write's outcome was unknown).
    JobManagerStartedOver,
    /// A torn HA record version was skipped for the one before it.
    HaRecordTornSkipped,
    /// A JobManager took over a job whose HA record says it ended: it cleans up again.
    EndedJobAdopted,
    /// The write of the job's end failed or timed out and is retried.
    EndRecordRetried,
    /// A client cancelled the job.
    JobCancelled,
    /// The JobManager refused a snapshot past its memory budget (JobManager storage).
    MemoryBudgetRefused,
    /// The shared-state registry deleted runs no retained checkpoint uses.
    SharedRunsDeleted,
    /// A new job started from a snapshot path (`flink run -s`).
    RestoredFromPath,
    /// ... and claimed it (CLAIM mode).
    RestoredFromPathClaimed,
    /// A changelog task started a materialization.
    ChangelogMaterializing,
    /// A changelog segment's upload failed: its changes go into the next segment.
    ChangelogSegmentFailed,
    /// A changelog materialization failed.
    ChangelogMaterializationFailed,
    /// A communication-induced task took a forced snapshot.
    ForcedSnapshot,
    /// A restored task checkpointing without barriers replayed records of its log.
    LogReplayed,
    /// A recovery line rolled a task back past a newer local snapshot (the domino effect).
    LineRolledBack,
}

impl Probe {
    /// Every probe, in listing order.
    pub const ALL: [Probe; 41] = [
        Probe::AbortExpired,
        Probe::AbortDeclined,
        Probe::AbortAsyncException,
        Probe::AbortFinalizeFailure,
        Probe::DeclinedSubsumed,
        Probe::DeclinedOnCancellationBarrier,
        Probe::DeclinedTaskNotReady,
        Probe::AbortSubsumed,
        Probe::AbortJobFailover,
        Probe::AbortTriggerFailure,
        Probe::AbortCoordinatorSuspend,
        Probe::RefusedTooManyRequests,
        Probe::RefusedMinPause,
        Probe::ToleranceExceeded,
        Probe::CheckpointRetired,
        Probe::SavepointCompleted,
        Probe::FinalNotificationRepeated,
        Probe::AlignedTimeoutSwitched,
        Probe::BarrierOvertook,
        Probe::CheckpointSkipped,
        Probe::InFlightRestored,
        Probe::LostNotificationCompensated,
        Probe::PreCommittedRecommitted,
        Probe::StorageRequestTimedOut,
        Probe::HeartbeatTimedOut,
        Probe::RestartStrategyGaveUp,
        Probe::JobManagerStartedOver,
        Probe::HaRecordTornSkipped,
        Probe::EndedJobAdopted,
        Probe::EndRecordRetried,
        Probe::JobCancelled,
        Probe::MemoryBudgetRefused,
        Probe::SharedRunsDeleted,
        Probe::RestoredFromPath,
        Probe::RestoredFromPathClaimed,
        Probe::ChangelogMaterializing,
        Probe::ChangelogSegmentFailed,
        Probe::ChangelogMaterializationFailed,
        Probe::ForcedSnapshot,
        Probe::LogReplayed,
        Probe::LineRolledBack,
    ];

    /// Its name in reports: kebab-case, as serde writes it in results.
    pub fn name(self) -> String {
        kebab_case(self)
    }

    fn bit(self) -> u64 {
        1 << (self as u32)
    }
}

/// The kebab-case name, as serde writes it, without a JSON dependency in core.
fn kebab_case(probe: Probe) -> String {
    let debug = format!("{probe:?}");
    let mut name = String::with_capacity(debug.len() + 8);
    for (i, c) in debug.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                name.push('-');
            }
            name.push(c.to_ascii_lowercase());
        } else {
            name.push(c);
        }
    }
    name
}

const _: () = assert!(Probe::ALL.len() <= 64, "probes fit one u64");

/// A set of probes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProbeSet(u64);

impl ProbeSet {
    /// The probes in either set.
    pub fn union(self, other: ProbeSet) -> ProbeSet {
        ProbeSet(self.0 | other.0)
    }

    /// The probes in the set, in listing order.
    pub fn iter(self) -> impl Iterator<Item = Probe> {
        Probe::ALL
            .into_iter()
            .filter(move |p| self.0 & p.bit() != 0)
    }
}

thread_local! {
    static HIT: Cell<u64> = const { Cell::new(0) };
}

/// Marks `probe` as reached on this thread.
pub fn hit(probe: Probe) {
    HIT.with(|hit| hit.set(hit.get() | probe.bit()));
}

/// The probes reached on this thread since the last call; clears them.
pub fn take() -> ProbeSet {
    ProbeSet(HIT.with(|hit| hit.replace(0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_are_taken_once_and_named_in_kebab_case() {
        let _ = take();
        hit(Probe::AbortExpired);
        hit(Probe::RestoredFromPathClaimed);
        hit(Probe::AbortExpired);
        let taken = take();
        let names: Vec<String> = taken.iter().map(Probe::name).collect();
        assert_eq!(names, ["abort-expired", "restored-from-path-claimed"]);
        assert_eq!(take(), ProbeSet::default(), "taking clears");
        assert!(
            Probe::ALL.windows(2).all(|w| w[0] < w[1]),
            "listed in order"
        );
    }
}
