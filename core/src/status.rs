//! The job's status and why checkpoints fail: the vocabulary that the coordinator, the
//! barrier handlers, retention and the trace share, kept in a module of its own so that
//! none of them depends on another for it.

use serde::{Deserialize, Serialize};

/// The job's status as the JobManager sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum JobStatus {
    /// The JobManager is reading its HA record.
    Initializing,
    /// Waiting for TaskManagers, or for deployed tasks to report running.
    Created,
    /// Every task runs.
    Running,
    /// A failure was handled; the job restarts after the strategy's delay.
    Restarting,
    /// Every task finished after the final checkpoint.
    Finished,
    /// The restart strategy gave up.
    Failed,
    /// A client cancelled the job.
    Canceled,
}

impl JobStatus {
    /// The job ended for good: finished, failed or cancelled.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobStatus::Finished | JobStatus::Failed | JobStatus::Canceled
        )
    }
}

/// Why a checkpoint failed, with Flink's names (`CheckpointFailureReason`; Flink's
/// `CheckpointFailureManager#checkFailureCounter` says which ones count).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum CheckpointFailureReason {
    /// The timeout expired before all acks arrived (`CHECKPOINT_EXPIRED`, counted).
    Expired,
    /// A task declined for a reason of its own (`CHECKPOINT_DECLINED`, counted).
    Declined,
    /// The task's asynchronous part failed, e.g. a storage write (`CHECKPOINT_ASYNC_EXCEPTION`, counted).
    AsyncException,
    /// Writing metadata or the completed store failed (`FINALIZE_CHECKPOINT_FAILURE`, not
    /// counted: Flink's `CheckpointFailureManager#checkFailureCounter` ignores it).
    FinalizeFailure,
    /// A newer barrier arrived while aligning (`CHECKPOINT_DECLINED_SUBSUMED`, not counted).
    DeclinedSubsumed,
    /// A cancellation marker arrived (`CHECKPOINT_DECLINED_ON_CANCELLATION_BARRIER`, not counted).
    DeclinedOnCancellationBarrier,
    /// The task was not running when triggered (`CHECKPOINT_DECLINED_TASK_NOT_READY`, not counted).
    DeclinedTaskNotReady,
    /// A newer checkpoint completed first (`CHECKPOINT_SUBSUMED`, not counted).
    Subsumed,
    /// The job failed over (`JOB_FAILOVER_REGION`, not counted).
    JobFailover,
    /// Persisting the id counter failed (`TRIGGER_CHECKPOINT_FAILURE`, not counted).
    TriggerFailure,
    /// The periodic scheduler stopped (`CHECKPOINT_COORDINATOR_SUSPEND`, not counted).
    CoordinatorSuspend,
    /// The request queue was full (`TOO_MANY_CHECKPOINT_REQUESTS`, not counted).
    TooManyRequests,
    /// A periodic request came too soon after the last completion
    /// (`MINIMUM_TIME_BETWEEN_CHECKPOINTS`, not counted).
    MinimumTimeBetweenCheckpoints,
}

impl CheckpointFailureReason {
    /// Whether this reason counts toward the tolerable-failure limit: those that Flink's
    /// `CheckpointFailureManager#checkFailureCounter` counts (its
    /// `CheckpointFailureManagerTest#testTotalCountValue` asserts them; the fourth, IO_EXCEPTION,
    /// has no counterpart here).
    pub fn is_counted(self) -> bool {
        matches!(
            self,
            CheckpointFailureReason::Expired
                | CheckpointFailureReason::Declined
                | CheckpointFailureReason::AsyncException
        )
    }
}
