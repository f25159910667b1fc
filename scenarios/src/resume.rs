//! A new job started from the snapshot an earlier job left (`flink run -s PATH`), on the same
//! checkpoint storage and sink system, under faults.
//!
//! The earlier job runs first, without faults, in a run of its own: it is either stopped with
//! a savepoint (a savepoint, then a cancellation, with no periodic checkpoint in between, so
//! nothing after the savepoint is committed) or cancelled with its checkpoints retained
//! (`RETAIN_ON_CANCELLATION`; nothing after its latest completed checkpoint is committed). The
//! new job then starts from that snapshot's path, claiming it or not (`CLAIM`, `NO_CLAIM`),
//! and the faults of the profile fall on it. The verdict judges the whole story: the earlier
//! job's committed output and the new job's together are each input's effect exactly once, as
//! the failure-free oracle (the same earlier run, then the new job without faults) has them.

use snapsim_core::cluster::ClusterConfig;
use snapsim_core::job::{JobGraph, RestoreSettings};
use snapsim_core::retention::{ClaimMode, ExternalizedRetention};
use snapsim_core::trace::{EngineEvent, JobStatus};
use snapsim_sim::faults::{Fault, FaultSchedule};
use snapsim_sim::harness::{self, Handover, RunConfig, RunEnd, INPUTS_MAX_DEFAULT};
use snapsim_sim::rng::SimRng;
use snapsim_sim::trace::TraceEvent;
use std::sync::Arc;

/// Where the earlier job's savepoints go: apart from `savepoints/`, whose files a fault
/// profile may lose (the new job's only completed checkpoint, until it takes one of its own,
/// is the snapshot it started from).
pub const EARLIER_SAVEPOINTS: &str = "archive/savepoints";

/// The snapshot the new job starts from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Snapshot {
    /// A savepoint the earlier job took just before it was cancelled.
    Savepoint,
    /// The earlier job's latest checkpoint, retained when it was cancelled.
    RetainedCheckpoint,
}

/// The new job, its cluster and the earlier run it follows.
pub(crate) struct Resumed {
    pub(crate) job: JobGraph,
    pub(crate) cluster: ClusterConfig,
    pub(crate) after: Arc<Handover>,
}

/// Runs the earlier job of `job` (its own name with `-before`) and returns `job` set to start
/// from the snapshot it left, or why the earlier job left none (the run's crash: the earlier
/// job runs without faults, so only an engine defect stops it short). Draws the kind of
/// snapshot, the claim mode and the moment of the stop from `rng`.
pub(crate) fn resume(
    rng: &mut SimRng,
    job: JobGraph,
    cluster: ClusterConfig,
    seed: u64,
) -> Result<Resumed, String> {
    let snapshot = match rng.below(2) {
        0 => Snapshot::Savepoint,
        _ => Snapshot::RetainedCheckpoint,
    };
    let claim = match rng.below(2) {
        0 => ClaimMode::NoClaim,
        _ => ClaimMode::Claim,
    };
    let stop_at = rng.between(200, 400);
    let (earlier, events) = earlier_job(&job, snapshot, stop_at);
    let plan = earlier.clone().build().map_err(|e| e.to_string())?;
    let heal_at = snapsim_core::ids::Tick(stop_at + 300);
    let run = harness::run(RunConfig {
        seed,
        plan: Arc::new(plan),
        cluster: cluster.clone(),
        schedule: FaultSchedule::at_times(events, heal_at, 60_000),
        inputs_max: INPUTS_MAX_DEFAULT,
        after: None,
        hands_over: true,
        logs_messages: false,
    });
    let (RunEnd::Terminated(JobStatus::Canceled), Some(after)) = (&run.end, run.handover) else {
        return Err(format!(
            "the earlier job, without faults, ended {:?} instead of being cancelled",
            run.end
        ));
    };
    let path = match snapshot {
        Snapshot::Savepoint => last_savepoint(&after),
        Snapshot::RetainedCheckpoint => last_retained_checkpoint(&after, &earlier),
    };
    let path = path.ok_or(format!(
        "the earlier job left no {snapshot:?} to resume from"
    ))?;
    let mut job = job;
    job.restore = Some(RestoreSettings {
        path,
        claim,
        allow_non_restored_state: false,
    });
    let cluster = ClusterConfig {
        first_attempt: last_attempt(&after) + 1,
        ..cluster
    };
    Ok(Resumed {
        job,
        cluster,
        after,
    })
}

/// The earlier job (`job` under its own name with `-before`) and the client's commands that
/// stop it at `stop_at` leaving `snapshot`.
fn earlier_job(job: &JobGraph, snapshot: Snapshot, stop_at: u64) -> (JobGraph, Vec<(u64, Fault)>) {
    let mut earlier = job.clone();
    earlier.name = format!("{}-before", job.name);
    let events = match snapshot {
        Snapshot::Savepoint => {
            // Only the savepoint commits: a periodic checkpoint after it would commit records
            // that the new job reads again.
            earlier.checkpoint.interval_ticks = None;
            earlier.checkpoint.savepoint_directory = Some(EARLIER_SAVEPOINTS.to_string());
            vec![
                (stop_at, Fault::TriggerSavepoint),
                (stop_at + 200, Fault::CancelJob),
            ]
        }
        Snapshot::RetainedCheckpoint => {
            earlier.checkpoint.retention = ExternalizedRetention::RetainOnCancellation;
            vec![(stop_at, Fault::CancelJob)]
        }
    };
    (earlier, events)
}

/// The directory of the earlier job's last completed savepoint.
fn last_savepoint(after: &Handover) -> Option<String> {
    after
        .trace
        .iter()
        .rev()
        .find_map(|entry| match &entry.event {
            TraceEvent::Engine(EngineEvent::SavepointCompleted { path, .. }) => Some(path.clone()),
            _ => None,
        })
}

/// The directory of the newest checkpoint the earlier job retained: the one whose
/// `_metadata` is durable with the highest id.
fn last_retained_checkpoint(after: &Handover, earlier: &JobGraph) -> Option<String> {
    let directory = earlier.checkpoint.directory.as_deref()?;
    let prefix = format!("{directory}/{}/chk-", earlier.name);
    after
        .files
        .iter()
        .filter_map(|(path, _)| {
            let id = path.strip_prefix(&prefix)?.strip_suffix("/_metadata")?;
            Some((id.parse::<u64>().ok()?, path))
        })
        .max()
        .map(|(_, path)| path.trim_end_matches("/_metadata").to_string())
}

/// The highest execution attempt the earlier job used.
fn last_attempt(after: &Handover) -> u32 {
    after
        .trace
        .iter()
        .filter_map(|entry| match &entry.event {
            TraceEvent::Engine(EngineEvent::JobStatus { attempt, .. }) => Some(attempt.0),
            _ => None,
        })
        .max()
        .unwrap_or(0)
}
