//! Each fault kind of the simulated world, firing, and the engine surviving it with a correct
//! result. Every test checks in the trace that the fault did what it is named for, so a fault
//! that silently stopped firing fails the test instead of passing it vacuously.

use crate::{catalog, find};
use snapsim_core::ids::{CheckpointId, TaskId, TaskManagerId, Tick};
use snapsim_core::messages::{Address, CheckpointFailureReason};
use snapsim_core::trace::EngineEvent;
use snapsim_scenarios::{judge, run_variant, setup, Outcome, Setup, Variant, Verdict};
use snapsim_sim::disk::{CrashMode, DiskEvent, DiskFaults, DiskOp};
use snapsim_sim::faults::{Fault, FaultSchedule, WriteMoment};
use snapsim_sim::harness::RunResult;
use snapsim_sim::trace::{StorageEvent, TraceEntry, TraceEvent};

const TM0: Address = Address::TaskManager(TaskManagerId(0));
const TM1: Address = Address::TaskManager(TaskManagerId(1));

/// The keyed-sum job of `seed` under `events` (healed at 3 s), with `change` applied to the
/// setup first (job options, disk faults).
fn keyed_sum(seed: u64, events: Vec<(u64, Fault)>, change: impl FnOnce(&mut Setup)) -> RunResult {
    let mut setup = setup(catalog(), find("keyed-sum").expect("built-in"), seed);
    setup.schedule = FaultSchedule::at_times(events, Tick(3_000), 60_000);
    change(&mut setup);
    let (outcome, result) = judge(catalog(), "keyed-sum", seed, setup).expect("a valid job");
    assert_passed(&outcome);
    result
}

fn engine_events(result: &RunResult) -> impl Iterator<Item = (&TraceEntry, &EngineEvent)> {
    result.trace.iter().filter_map(|entry| match &entry.event {
        TraceEvent::Engine(event) => Some((entry, event)),
        _ => None,
    })
}

fn failover_causes(result: &RunResult) -> Vec<String> {
    engine_events(result)
        .filter_map(|(_, event)| match event {
            EngineEvent::Failover { cause } => Some(cause.clone()),
            _ => None,
        })
        .collect()
}

fn aborted_for(result: &RunResult, reason: CheckpointFailureReason) -> usize {
    engine_events(result)
        .filter(|(_, event)| {
            matches!(event, EngineEvent::CheckpointAborted { reason: r, .. } if *r == reason)
        })
        .count()
}

/// Why: a TaskManager that dies while one of its tasks is aligning (barrier in on one channel,
/// still waiting on the other) must not leave a half-aligned checkpoint behind. A slow link
/// TM0→TM1 keeps task 3's (sum, on TM1) alignment open long; the crash lands inside it.
#[test]
fn a_task_manager_crash_during_alignment_recovers_exactly_once() {
    let slow = Fault::SlowLink {
        from: TM0,
        to: TM1,
        extra_ticks: (20, 40),
        for_ticks: 2_500,
    };
    let seed = 3;
    let calm = keyed_sum(seed, vec![(0, slow.clone())], |_| {});
    let aligning = TaskId(3);
    // The first alignment of task 3 that stays open for a while, in the run without the crash.
    let (opened, checkpoint) = first_open_alignment(&calm, aligning, Tick(100))
        .expect("task 3 aligns behind the slow link");
    let crash_at = opened.0 + 2;
    let crashed = keyed_sum(
        seed,
        vec![
            (0, slow),
            (crash_at, Fault::Crash(TM1)),
            (crash_at + 200, Fault::Restart(TM1)),
        ],
        |_| {},
    );
    let crash = crashed
        .trace
        .iter()
        .position(|e| e.node == TM1 && e.event == TraceEvent::Crash)
        .expect("TM1 crashed");
    let before_crash = &crashed.trace[..crash];
    let received = before_crash.iter().any(|e| {
        matches!(&e.event, TraceEvent::Engine(EngineEvent::BarrierReceived { task, checkpoint: c, .. })
            if *task == aligning && *c == checkpoint)
    });
    let snapshotted = before_crash.iter().any(|e| {
        matches!(&e.event, TraceEvent::Engine(EngineEvent::SnapshotTaken { task, checkpoint: c, .. })
            if *task == aligning && *c == checkpoint)
    });
    assert!(
        received && !snapshotted,
        "the crash at {crash_at} ms landed inside task 3's alignment of {checkpoint}"
    );
}

/// When `task` got a barrier for a checkpoint after `after` and took its snapshot more than
/// 2 ms later: (time of the first barrier, checkpoint).
fn first_open_alignment(
    result: &RunResult,
    task: TaskId,
    after: Tick,
) -> Option<(Tick, CheckpointId)> {
    let events: Vec<_> = engine_events(result).collect();
    events.iter().find_map(|(entry, event)| match event {
        EngineEvent::BarrierReceived {
            task: t,
            checkpoint,
            ..
        } if *t == task && entry.at > after => {
            let snapshot = events.iter().find(|(_, e)| {
                matches!(e, EngineEvent::SnapshotTaken { task: t, checkpoint: c, .. }
                    if *t == task && c == checkpoint)
            })?;
            (snapshot.0.at.0 > entry.at.0 + 2).then_some((entry.at, *checkpoint))
        }
        _ => None,
    })
}

/// Why: the JobManager can die after `_metadata` is durable but before it stored the
/// completion and notified the tasks; the checkpoint then never counts, and the restarted
/// JobManager resumes from the one before. Also the narrower window: the HA record holding the
/// completion is durable but nobody was notified; the restarted JobManager restores it and the
/// sinks commit its transactions on restore.
#[test]
fn a_job_manager_crash_between_metadata_and_notification_recovers_exactly_once() {
    for (contains, seed) in [("_metadata", 1), ("ha/", 2)] {
        let crash = Fault::CrashOnWrite {
            path_contains: contains.to_string(),
            moment: WriteMoment::AfterSync,
            node: Address::JobManager,
            down_ticks: 150,
        };
        // At 400 ms the job runs and checkpoints, so the next such write is a completion's.
        let result = keyed_sum(seed, vec![(400, crash)], |_| {});
        let crash = result
            .trace
            .iter()
            .position(|e| e.node == Address::JobManager && e.event == TraceEvent::Crash)
            .expect("the JobManager crashed");
        let synced = match &result.trace[crash - 1].event {
            TraceEvent::Storage(StorageEvent::Synced { path }) => path.clone(),
            other => panic!("the crash follows a durable write, not {other:?}"),
        };
        assert!(synced.contains(contains), "{synced}");
        let notified_after = result.trace[crash..].iter().any(|e| {
            e.node == Address::JobManager
                && matches!(
                    e.event,
                    TraceEvent::Engine(EngineEvent::CheckpointCompleted { .. })
                )
        });
        assert!(notified_after, "checkpoints complete after the restart");
    }
}

/// Why: a failed sync of a task snapshot fails that checkpoint (asynchronous part failed), and
/// that failure counts toward the tolerable-failure limit: with 0 tolerated the job fails over,
/// with 1 tolerated it does not.
#[test]
fn a_storage_sync_error_fails_one_checkpoint_which_counts_toward_tolerable_failures() {
    let sync_fails = || Fault::FailNextDiskOp {
        op: DiskOp::Sync,
        path_contains: "/task-".to_string(),
    };
    let strict = keyed_sum(5, vec![(300, sync_fails())], |_| {});
    assert_eq!(
        aborted_for(&strict, CheckpointFailureReason::AsyncException),
        1
    );
    let causes = failover_causes(&strict);
    assert!(
        causes.iter().any(|c| c.contains("tolerable failure")),
        "{causes:?}"
    );
    let lenient = keyed_sum(5, vec![(300, sync_fails())], |setup| {
        setup.job.checkpoint.tolerable_failed = 1;
    });
    assert_eq!(
        aborted_for(&lenient, CheckpointFailureReason::AsyncException),
        1
    );
    assert!(failover_causes(&lenient).is_empty());
}

/// Why: the storage node crashing in the middle of an HA record write leaves a torn file (some
/// of its unsynced bytes survive). The JobManager's write gets no answer, so it starts over
/// from storage, rejects the torn version and resumes from the one before.
#[test]
fn a_crash_with_pending_writes_leaves_a_torn_file_that_restore_rejects_and_skips() {
    let crash = Fault::CrashOnWrite {
        path_contains: "ha/".to_string(),
        moment: WriteMoment::BeforeSync,
        node: Address::Storage,
        down_ticks: 100,
    };
    let result = keyed_sum(4, vec![(400, crash)], |setup| {
        setup.schedule.disk.crash = CrashMode::TornPrefix;
    });
    let torn = result.trace.iter().find_map(|e| match &e.event {
        TraceEvent::Storage(StorageEvent::Disk(DiskEvent::CrashResolved {
            path,
            pending,
            kept,
        })) if path.contains("ha/") => Some((path.clone(), *pending, *kept)),
        _ => None,
    });
    let (path, pending, kept) = torn.expect("the crash resolved the HA record's pending bytes");
    assert!(kept < pending, "{path}: {kept} of {pending} bytes kept");
    let rejected = engine_events(&result).any(
        |(_, event)| matches!(event, EngineEvent::HaRecordRejected { path: p, .. } if *p == path),
    );
    assert!(rejected, "the JobManager rejected {path}");
}

/// Why: a clogged data link holds barriers back (FIFO, nothing lost), so checkpoints expire by
/// their timeout; once unclogged, the job completes checkpoints again and finishes.
#[test]
fn a_clogged_link_makes_checkpoints_expire_by_timeout() {
    let result = keyed_sum(
        6,
        vec![
            (300, Fault::ClogLink { from: TM0, to: TM1 }),
            (1_500, Fault::UnclogLink { from: TM0, to: TM1 }),
        ],
        |setup| {
            setup.job.checkpoint.timeout_ticks = 300;
            setup.job.checkpoint.tolerable_failed = 100;
        },
    );
    assert!(aborted_for(&result, CheckpointFailureReason::Expired) >= 1);
    assert!(failover_causes(&result).is_empty());
}

/// Why: a JobManager ↔ TaskManager partition longer than the heartbeat timeout makes the
/// JobManager declare the TaskManager lost and fail over; after the partition heals the job
/// recovers exactly once.
#[test]
fn a_job_manager_task_manager_partition_fails_over_and_recovers() {
    let result = keyed_sum(
        7,
        vec![
            (
                300,
                Fault::Partition {
                    a: Address::JobManager,
                    b: TM1,
                },
            ),
            (
                1_200,
                Fault::HealPartition {
                    a: Address::JobManager,
                    b: TM1,
                },
            ),
        ],
        |_| {},
    );
    let causes = failover_causes(&result);
    assert!(
        causes.iter().any(|c| c.contains("heartbeat of tm-1")),
        "{causes:?}"
    );
}

/// Why: slow operators and slow disks stretch checkpoints but must not change the output.
#[test]
fn slow_operators_and_a_slow_disk_change_timing_not_output() {
    let result = keyed_sum(
        8,
        vec![
            (
                200,
                Fault::SlowNode {
                    node: TM1,
                    per_input_ticks: 1,
                    for_ticks: 1_500,
                },
            ),
            (
                200,
                Fault::DiskFaults(DiskFaults {
                    latency_ticks: (5, 30),
                    ..DiskFaults::default()
                }),
            ),
        ],
        |_| {},
    );
    let faults = result
        .trace
        .iter()
        .filter(|e| matches!(e.event, TraceEvent::Fault(_)))
        .count();
    assert_eq!(faults, 2);
}

/// Why: EIO on reads, ENOSPC and silent bit flips on read are survived: a corrupted snapshot is
/// caught by its checksum on restore (the task fails, the next attempt reads it clean), and a
/// full disk fails checkpoints until it has room again.
#[test]
fn corruption_read_errors_and_a_full_disk_are_detected_and_survived() {
    let result = keyed_sum(
        9,
        vec![
            (
                300,
                Fault::CorruptNextRead {
                    path_contains: "/task-".to_string(),
                },
            ),
            (400, Fault::Crash(TM0)),
            (500, Fault::Restart(TM0)),
            (
                800,
                Fault::DiskFaults(DiskFaults {
                    capacity_bytes: Some(1),
                    ..DiskFaults::default()
                }),
            ),
        ],
        |setup| setup.job.checkpoint.tolerable_failed = 100,
    );
    let causes = failover_causes(&result);
    assert!(
        causes.iter().any(|c| c.contains("checksum")),
        "the corrupted snapshot was rejected: {causes:?}"
    );
    let no_space = result.trace.iter().any(|e| {
        matches!(&e.event, TraceEvent::Storage(StorageEvent::Failed { error, .. }) if error.contains("no space"))
    });
    assert!(no_space, "the full disk refused a write");
}

/// Fails with the violations and the replay line unless every property held.
fn assert_passed(outcome: &Outcome) {
    assert_eq!(
        outcome.verdict,
        Verdict::Passed,
        "seed {}: {:?}",
        outcome.seed,
        outcome.violations,
    );
}

/// Why: a client's savepoint request reaches the JobManager in the simulation too; the
/// savepoint completes on the simulated disk while checkpoints go on, and the output stays
/// exactly once (a savepoint commits nothing).
#[test]
fn a_savepoint_requested_by_a_client_completes_in_the_simulation() {
    let result = keyed_sum(10, vec![(400, Fault::TriggerSavepoint)], |setup| {
        setup.job.checkpoint.savepoint_directory = Some("savepoints".to_string());
    });
    let path = engine_events(&result).find_map(|(_, event)| match event {
        EngineEvent::SavepointCompleted { path, .. } => Some(path.clone()),
        _ => None,
    });
    let path = path.expect("the savepoint completed");
    let synced = result.trace.iter().any(|e| {
        matches!(&e.event, TraceEvent::Storage(StorageEvent::Synced { path: p }) if *p == format!("{path}/_metadata"))
    });
    assert!(synced, "its _metadata is durable on the simulated disk");
}

/// Why: checkpoint RPCs are fire and forget; a lost one may cost a checkpoint, never the job.
/// Here every RPC from the JobManager to TM0 is lost from the moment the final checkpoint
/// completes: its notification never reaches TM0's tasks, which wait for it to finish, so the
/// JobManager repeats it (on the periodic timer) and the job finishes once the loss ends.
#[test]
fn a_lost_final_notification_is_repeated_and_the_job_finishes() {
    let final_completed = |result: &RunResult| {
        let final_from = engine_events(result).find_map(|(_, event)| match event {
            EngineEvent::InputConsumed { final_from } => Some(*final_from),
            _ => None,
        });
        engine_events(result).find_map(|(entry, event)| match event {
            EngineEvent::CheckpointCompleted { checkpoint } if Some(*checkpoint) >= final_from => {
                Some(entry.at)
            }
            _ => None,
        })
    };
    let calm = keyed_sum(3, Vec::new(), |_| {});
    let at = final_completed(&calm).expect("the calm run completes a final checkpoint");
    let lose = Fault::LoseCheckpointRpcs {
        from: Address::JobManager,
        to: TM0,
        for_ticks: 400,
    };
    let result = keyed_sum(3, vec![(at.0, lose)], |_| {});
    let lost_final = result.trace.iter().any(|e| {
        matches!(&e.event, TraceEvent::MessageLost { to, message }
            if *to == TM0 && message.starts_with("NotifyCheckpointComplete")
                && message.contains("final_checkpoint: true"))
    });
    assert!(lost_final, "the final notification to TM0 was lost");
    assert_eq!(
        final_completed(&result),
        Some(at),
        "the run went the same way"
    );
}

/// Why: the JobManager records the job's end in its HA record before deleting the retained
/// checkpoints. If that write is lost and the clean-up goes ahead anyway, the durable record
/// still says "running, latest checkpoint N": a JobManager that starts again redeploys from
/// deleted files (the storage checker flags a retained file deleted before the end is durable).
/// Here the storage node is down from just after the final checkpoint's completion record until
/// the job ends, so the end record times out; it is written again, and only then is anything
/// deleted (Flink retries its job-result store the same way).
#[test]
fn a_lost_end_record_is_written_again_before_the_clean_up_deletes_anything() {
    let seed = 4;
    let calm = keyed_sum(seed, Vec::new(), |_| {});
    let ha_syncs: Vec<Tick> = (calm.trace.iter())
        .filter(|e| matches!(&e.event, TraceEvent::Storage(StorageEvent::Synced { path }) if path.starts_with("ha/")))
        .map(|e| e.at)
        .collect();
    // The last HA write records the end; the one before, the final checkpoint's completion.
    let [.., completion, end] = ha_syncs[..] else {
        panic!("the calm run writes HA records: {ha_syncs:?}");
    };
    assert!(completion < end, "{completion} then {end}");
    let events = vec![
        (completion.0 + 1, Fault::Crash(Address::Storage)),
        (end.0 + 200, Fault::Restart(Address::Storage)),
    ];
    let result = keyed_sum(seed, events, |_| {});
    let timed_out = engine_events(&result).position(|(_, event)| {
        matches!(event, EngineEvent::StorageTimedOut { operation } if operation.contains("ha/"))
    });
    let recorded = engine_events(&result).position(|(_, event)| *event == EngineEvent::EndRecorded);
    assert!(timed_out.is_some(), "the first end record was lost");
    assert!(timed_out < recorded, "the end was recorded after the loss");
}

/// Why: a job whose restart strategy gives up fails for good, as Flink's does; that is not a
/// liveness failure. The run is judged on what it committed (at most once, consistent values),
/// and the outcome says how the job ended. With one restart allowed, two TaskManager crashes
/// end the job.
#[test]
fn a_job_whose_restart_strategy_gives_up_is_judged_on_what_it_committed() {
    let mut setup = setup(catalog(), find("keyed-sum").expect("built-in"), 2);
    setup.job.restart = snapsim_core::config::RestartStrategyConfig::FixedDelay {
        attempts: 1,
        delay_ticks: 50,
    };
    let events = vec![
        (150, Fault::Crash(TM0)),
        (200, Fault::Restart(TM0)),
        (450, Fault::Crash(TM1)),
        (500, Fault::Restart(TM1)),
    ];
    setup.schedule = FaultSchedule::at_times(events, Tick(3_000), 60_000);
    let (outcome, result) = judge(catalog(), "keyed-sum", 2, setup).expect("a valid job");
    assert_passed(&outcome);
    let ended = outcome.stats.ended_early.as_deref().unwrap_or_default();
    assert!(
        ended.starts_with("Failed: its restart strategy gave up"),
        "{ended:?}"
    );
    assert!(
        result.committed.len() < 4_000,
        "it committed a part of its output"
    );
}

/// Regression, found by the swarm once it cancelled jobs (keyed-sum seed 225 under `swarm`):
/// the clean-up after the end waits for a completion that is settling; when that completion
/// settled by failing (its `_metadata` write timed out, the storage node having crashed with
/// it), nothing ran the clean-up, and the cancelled job left its retained checkpoint behind.
#[test]
fn r_swarm_keyed_sum_225_the_clean_up_runs_once_a_failing_completion_settles() {
    let variant =
        Variant::new(catalog(), Some("swarm".to_string()), None, &[]).expect("known profile");
    let scenario = find("keyed-sum").expect("built-in");
    let (outcome, result) = run_variant(catalog(), scenario, 225, &variant).expect("valid names");
    assert_passed(&outcome);
    let ended = outcome.stats.ended_early.as_deref().unwrap_or_default();
    assert!(ended.starts_with("Canceled"), "{ended:?}");
    let cancelled_at = engine_events(&result)
        .find(|(_, e)| matches!(e, EngineEvent::JobStatus { status, .. } if status.is_terminal()))
        .map(|(entry, _)| entry.at)
        .expect("the job ended");
    let settled_by_failing = engine_events(&result).any(|(entry, e)| {
        entry.at > cancelled_at
            && matches!(
                e,
                EngineEvent::CheckpointAborted {
                    reason: CheckpointFailureReason::FinalizeFailure,
                    ..
                }
            )
    });
    assert!(
        settled_by_failing,
        "a completion settled by failing after the end"
    );
}
