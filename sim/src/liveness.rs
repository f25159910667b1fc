//! How long the liveness phase may take, and which endings other than "finished" a correct
//! engine may reach.
//!
//! A liveness failure must mean a bug. TigerBeetle's VOPR counts one only when the cluster
//! could have recovered within the time it gives it; here that time follows from the run's own
//! configuration. After the heal, a correct engine can still be held up by what the safety phase
//! left behind: a checkpoint whose trigger or acknowledgement was lost stays pending until its
//! timeout, and only then can the final checkpoint be triggered; that expiry, a TaskManager lost
//! during the safety phase, or an HA write whose outcome is unknown can each fail the job over,
//! which costs a heartbeat timeout, a restart delay and storage round trips that time out; and
//! the job may have to run from its start again. [`LivenessBound`] adds these up.
//!
//! A job may also end for good without finishing, and rightly: its restart strategy gave up
//! (Flink fails the job when the attempts are used up), a client cancelled it, or the snapshot
//! it was to start from could not be read while faults corrupted or lost files (Flink fails a
//! job whose initial restore fails). [`justified_end`] recounts that from the trace,
//! independently of the engine's own counter.

use crate::disk::{DiskEvent, DiskFaults};
use crate::faults::Fault;
use crate::trace::{StorageEvent, TraceEntry, TraceEvent};
use snapsim_core::cluster::ClusterConfig;
use snapsim_core::config::RestartStrategyConfig;
use snapsim_core::job::ExecutionPlan;
use snapsim_core::trace::{EngineEvent, JobStatus};
use std::fmt;

/// Failovers the liveness phase allows for: a checkpoint expiry, a TaskManager lost during the
/// safety phase, and a JobManager starting over after an HA write of unknown outcome.
pub const LIVENESS_FAILOVERS_MAX: u64 = 3;

/// The parts of the liveness bound, each from the run's configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LivenessBound {
    /// The failure-free run's length: the job may run from its start again.
    pub job_ticks: u64,
    /// The checkpoint timeout: a checkpoint pending at the heal holds the final one back.
    pub checkpoint_timeout_ticks: u64,
    /// One failover: a heartbeat timeout, the longest restart delay and two storage timeouts.
    pub failover_ticks: u64,
}

impl LivenessBound {
    /// The bound of a run of `plan` on `cluster` whose failure-free run took `job_ticks`.
    pub fn of(plan: &ExecutionPlan, cluster: &ClusterConfig, job_ticks: u64) -> LivenessBound {
        let failover_ticks = cluster
            .heartbeat_timeout_ticks
            .saturating_add(longest_restart_delay(&plan.restart))
            .saturating_add(cluster.storage_timeout_ticks.saturating_mul(2));
        LivenessBound {
            job_ticks,
            checkpoint_timeout_ticks: plan.checkpoint.timeout_ticks,
            failover_ticks,
        }
    }

    /// The whole bound, in ticks.
    pub fn ticks(&self) -> u64 {
        let total = self
            .job_ticks
            .saturating_add(self.checkpoint_timeout_ticks)
            .saturating_add(LIVENESS_FAILOVERS_MAX.saturating_mul(self.failover_ticks));
        assert!(
            total >= self.checkpoint_timeout_ticks,
            "the bound covers an expiry"
        );
        total
    }
}

impl fmt::Display for LivenessBound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ms: the job's failure-free length {} ms + the checkpoint timeout {} ms + {} failovers of {} ms (heartbeat timeout, longest restart delay, two storage timeouts)",
            self.ticks(),
            self.job_ticks,
            self.checkpoint_timeout_ticks,
            LIVENESS_FAILOVERS_MAX,
            self.failover_ticks
        )
    }
}

/// The longest delay the restart strategy waits before a restart.
fn longest_restart_delay(restart: &RestartStrategyConfig) -> u64 {
    match *restart {
        RestartStrategyConfig::NoRestart => 0,
        RestartStrategyConfig::FixedDelay { delay_ticks, .. } => delay_ticks,
        RestartStrategyConfig::ExponentialDelay {
            max_backoff_ticks,
            jitter,
            ..
        } => max_backoff_ticks.saturating_add(jitter.apply(max_backoff_ticks)),
    }
}

/// Why a job that ended without finishing ended rightly, or why not: recounted from the trace.
///
/// - `Failed`: the failover that ended it found the restart strategy's attempts used up, counting
///   the failovers of a running job since the current JobManager started (its restart strategy
///   starts afresh then, as Flink's does with a new JobMaster). Any other failure for good is unjustified here.
/// - `Canceled`: a client's cancellation reached a running JobManager.
pub fn justified_end(
    trace: &[TraceEntry],
    plan: &ExecutionPlan,
    status: JobStatus,
    disk: &DiskFaults,
) -> Result<String, String> {
    assert!(status.is_terminal(), "{status:?} does not end a job");
    match status {
        JobStatus::Failed => restarts_used_up(trace, &plan.restart)
            .or_else(|why| restore_spoiled(trace, plan, disk).ok_or(why)),
        JobStatus::Canceled => cancelled_by_client(trace),
        other => Err(format!("the job ended {other:?}")),
    }
}

fn restarts_used_up(
    trace: &[TraceEntry],
    restart: &RestartStrategyConfig,
) -> Result<String, String> {
    let attempts = match *restart {
        RestartStrategyConfig::NoRestart => 0,
        RestartStrategyConfig::FixedDelay { attempts, .. }
        | RestartStrategyConfig::ExponentialDelay { attempts, .. } => u64::from(attempts),
    };
    // Failovers the restart strategy of the current JobManager saw (it is created afresh with
    // each JobManager: after a crash, or starting over from storage), and whether the latest
    // event was one of them. A failover from a job that was not running or created is not the
    // strategy's (a JobManager that cannot read its HA record fails the job at once).
    let mut failovers: u64 = 0;
    let mut last_failover = false;
    let mut status = JobStatus::Initializing;
    for entry in trace {
        let TraceEvent::Engine(event) = &entry.event else {
            continue;
        };
        match event {
            EngineEvent::JobStatus {
                status: JobStatus::Failed,
                ..
            } => {
                return if last_failover && failovers > attempts {
                    Ok(format!(
                        "its restart strategy gave up: failover {failovers} with {attempts} restart(s) allowed"
                    ))
                } else {
                    Err(format!(
                        "the job failed for good after {failovers} failover(s) with {attempts} restart(s) allowed"
                    ))
                };
            }
            EngineEvent::JobStatus { status: now, .. } => {
                if *now == JobStatus::Initializing {
                    failovers = 0;
                }
                status = *now;
                last_failover = false;
            }
            EngineEvent::Failover { .. } => {
                last_failover = matches!(status, JobStatus::Running | JobStatus::Created);
                failovers += u64::from(last_failover);
            }
            _ => {}
        }
    }
    Err("the job's failure is not in the trace".to_string())
}

/// Why the job's failure is the snapshot it was to start from being unreadable under a fault
/// that spoils its files, if it is: the job failed before it ran, naming the restore (every
/// `RestoreError` reads "cannot restore…"), and a fault that explains that error was on: a
/// missing file or snapshot needs a loss under the snapshot's directory, anything else (a
/// corrupt `_metadata`) bit flips on reads, background (`disk` holds the disk faults of the
/// run's start, which the trace does not show) or aimed at a path of the snapshot.
fn restore_spoiled(
    trace: &[TraceEntry],
    plan: &ExecutionPlan,
    disk: &DiskFaults,
) -> Option<String> {
    let (directory, metadata) = plan.restore.as_ref()?.paths()?;
    let directory = directory.as_str();
    let mut lost = false;
    let mut corrupting = disk.corruption_per_mille > 0;
    let mut ran = false;
    let mut cause = None;
    for entry in trace {
        match &entry.event {
            TraceEvent::Fault(Fault::DiskFaults(faults)) => {
                corrupting |= faults.corruption_per_mille > 0
            }
            TraceEvent::Fault(Fault::CorruptNextRead { path_contains }) => {
                corrupting |= metadata.as_str().contains(path_contains.as_str());
            }
            TraceEvent::Fault(Fault::LoseFiles { path_prefix }) => {
                lost |= directory.starts_with(path_prefix.as_str());
            }
            TraceEvent::Storage(StorageEvent::Disk(DiskEvent::Lost { path })) => {
                lost |= path.starts_with(directory);
            }
            TraceEvent::Engine(EngineEvent::JobStatus { status, .. }) => {
                ran |= matches!(status, JobStatus::Running | JobStatus::Created);
                if *status == JobStatus::Failed {
                    break;
                }
            }
            TraceEvent::Engine(EngineEvent::Failover { cause: text }) if !ran => {
                cause = Some(text.clone())
            }
            _ => {}
        }
    }
    let cause = cause.filter(|c| c.starts_with("cannot restore"))?;
    let missing = [
        "does not exist",
        "no checkpoint or savepoint there",
        "no _metadata in it",
    ]
    .iter()
    .any(|text| cause.contains(text));
    let explained = if missing { lost } else { corrupting };
    explained.then(|| {
        format!(
            "the snapshot it was to start from could not be read while faults spoiled its files ({cause})"
        )
    })
}

fn cancelled_by_client(trace: &[TraceEntry]) -> Result<String, String> {
    let mut cancel_requested = false;
    for entry in trace {
        match &entry.event {
            TraceEvent::Fault(Fault::CancelJob) => cancel_requested = true,
            TraceEvent::Engine(EngineEvent::JobStatus {
                status: JobStatus::Canceled,
                ..
            }) => {
                return if cancel_requested {
                    Ok("a client cancelled it".to_string())
                } else {
                    Err("the job was cancelled though no client asked".to_string())
                };
            }
            _ => {}
        }
    }
    Err("the job's cancellation is not in the trace".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::Fault;
    use snapsim_core::ids::{Attempt, Tick};
    use snapsim_core::messages::Address;
    use snapsim_core::testing::keyed_sum_job;

    fn plan(restart: RestartStrategyConfig) -> ExecutionPlan {
        let mut job = keyed_sum_job(40, Some(50));
        job.restart = restart;
        job.build().expect("valid job")
    }

    fn at(node: Address, event: TraceEvent) -> TraceEntry {
        TraceEntry {
            at: Tick(0),
            node,
            event,
        }
    }

    fn engine(event: EngineEvent) -> TraceEntry {
        at(Address::JobManager, TraceEvent::Engine(event))
    }

    fn failover() -> TraceEntry {
        engine(EngineEvent::Failover {
            cause: "a task failed".to_string(),
        })
    }

    fn status(status: JobStatus) -> TraceEntry {
        engine(EngineEvent::JobStatus {
            status,
            attempt: Attempt(1),
        })
    }

    #[test]
    fn the_bound_adds_the_job_the_checkpoint_timeout_and_three_failovers() {
        // Flink's defaults: a 10-minute checkpoint timeout, exponential delay up to 1 min with
        // 10 % jitter; heartbeats time out after 500 ms, storage requests after 1 s.
        let plan = plan(RestartStrategyConfig::default());
        let bound = LivenessBound::of(&plan, &ClusterConfig::default(), 700);
        assert_eq!(bound.checkpoint_timeout_ticks, 600_000);
        assert_eq!(bound.failover_ticks, 500 + 66_000 + 2_000);
        assert_eq!(bound.ticks(), 700 + 600_000 + 3 * 68_500);
    }

    #[test]
    fn a_failure_for_good_is_justified_only_once_the_restarts_are_used_up() {
        // Fixed delay with 2 attempts: the third failover since the JobManager started fails
        // the job; a JobManager restart starts the count again, as a new JobMaster's does.
        let plan = plan(RestartStrategyConfig::FixedDelay {
            attempts: 2,
            delay_ticks: 10,
        });
        let fail = || {
            [
                status(JobStatus::Running),
                failover(),
                status(JobStatus::Restarting),
            ]
        };
        let mut trace: Vec<TraceEntry> = [fail(), fail()].concat();
        trace.extend([
            status(JobStatus::Running),
            failover(),
            status(JobStatus::Failed),
        ]);
        assert!(justified_end(&trace, &plan, JobStatus::Failed, &calm()).is_ok());
        let mut early = fail().to_vec();
        early.extend([
            status(JobStatus::Running),
            failover(),
            status(JobStatus::Failed),
        ]);
        let why = justified_end(&early, &plan, JobStatus::Failed, &calm()).expect_err("too early");
        assert!(
            why.contains("after 2 failover(s) with 2 restart(s)"),
            "{why}"
        );
        let mut restarted = [fail(), fail()].concat();
        restarted.push(status(JobStatus::Initializing));
        restarted.extend([
            status(JobStatus::Running),
            failover(),
            status(JobStatus::Failed),
        ]);
        assert!(justified_end(&restarted, &plan, JobStatus::Failed, &calm()).is_err());
        // A JobManager that cannot read its HA record fails the job with a failover that is
        // not the restart strategy's, even after restarts were used up.
        let mut unreadable = [fail(), fail(), fail()].concat();
        unreadable.extend([
            status(JobStatus::Initializing),
            failover(),
            status(JobStatus::Failed),
        ]);
        assert!(justified_end(&unreadable, &plan, JobStatus::Failed, &calm()).is_err());
        // A failure for good that no failover preceded (a corrupted HA record, say).
        let unexplained = vec![status(JobStatus::Failed)];
        assert!(justified_end(&unexplained, &plan, JobStatus::Failed, &calm()).is_err());
    }

    fn calm() -> DiskFaults {
        DiskFaults::default()
    }

    #[test]
    fn an_unreadable_start_is_justified_only_under_a_fault_that_spoils_its_files() {
        let mut plan = plan(RestartStrategyConfig::NoRestart);
        plan.restore = Some(snapsim_core::job::RestoreSettings {
            path: "archive/savepoints/savepoint-old-3".to_string(),
            claim: snapsim_core::retention::ClaimMode::NoClaim,
            allow_non_restored_state: false,
        });
        let failed = |cause: &str| {
            let cause = cause.to_string();
            let failover = TraceEvent::Engine(EngineEvent::Failover { cause });
            vec![
                status(JobStatus::Initializing),
                at(Address::JobManager, failover),
                status(JobStatus::Failed),
            ]
        };
        let corrupt = failed("cannot restore: cannot read checkpoint metadata: bad magic");
        let corrupting = DiskFaults {
            corruption_per_mille: 10,
            ..DiskFaults::default()
        };
        let why = justified_end(&corrupt, &plan, JobStatus::Failed, &corrupting);
        assert!(why.is_ok_and(|why| why.contains("could not be read")));
        assert!(justified_end(&corrupt, &plan, JobStatus::Failed, &calm()).is_err());
        // A missing file needs a loss under the snapshot's directory, not bit flips, and not a
        // loss elsewhere.
        let missing = failed("cannot restore from x: it references y, which does not exist");
        assert!(justified_end(&missing, &plan, JobStatus::Failed, &corrupting).is_err());
        let lose = |prefix: &str| {
            let fault = Fault::LoseFiles {
                path_prefix: prefix.to_string(),
            };
            let mut trace = vec![at(Address::Storage, TraceEvent::Fault(fault))];
            trace.extend(missing.iter().cloned());
            trace
        };
        let elsewhere = lose("savepoints/");
        assert!(justified_end(&elsewhere, &plan, JobStatus::Failed, &calm()).is_err());
        let there = lose("archive/");
        assert!(justified_end(&there, &plan, JobStatus::Failed, &calm()).is_ok());
    }

    #[test]
    fn a_cancellation_is_justified_only_when_a_client_asked() {
        let plan = plan(RestartStrategyConfig::NoRestart);
        let asked = vec![
            at(Address::JobManager, TraceEvent::Fault(Fault::CancelJob)),
            status(JobStatus::Canceled),
        ];
        assert!(justified_end(&asked, &plan, JobStatus::Canceled, &calm()).is_ok());
        let unasked = vec![status(JobStatus::Canceled)];
        assert!(justified_end(&unasked, &plan, JobStatus::Canceled, &calm()).is_err());
    }
}
