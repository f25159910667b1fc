//! The checkers must be able to fail: each is shown a run that breaks its property.

use super::*;
use crate::model::ReferenceModel;
use crate::trace::{StorageEvent, TraceEntry, TraceEvent};
use snapsim_core::ids::{Attempt, ChannelIndex, CheckpointId, Key, OperatorId, TaskId, Tick};
use snapsim_core::ids::{EventTime, Offset, PartitionId};
use snapsim_core::job::ExecutionPlan;
use snapsim_core::job::{OperatorKind, Partitioning};
use snapsim_core::messages::Address;
use snapsim_core::record::{InputRef, Origin, Record};
use snapsim_core::trace::EngineEvent;

fn output(offset: u64, key: u64, value: i64) -> Output {
    let origin = Origin::Input(InputRef {
        source: OperatorId(0),
        partition: PartitionId(0),
        offset: Offset(offset),
    });
    let record = Record {
        key: Key(key),
        value,
        event_time: EventTime(0),
        origin,
    };
    (OperatorId(2), record)
}

#[test]
fn exactly_once_fails_on_loss_and_on_duplicates() {
    // The checker must be able to fail: a lost and a duplicated effect are both reported.
    let oracle = vec![output(0, 1, 1), output(1, 1, 2)];
    assert!(exactly_once(&oracle, &oracle).is_empty());
    let lost = exactly_once(&oracle[..1], &oracle);
    assert_eq!(lost.len(), 1);
    assert!(lost[0].message.contains("never committed"), "{lost:?}");
    let twice = vec![output(0, 1, 1), output(0, 1, 1), output(1, 1, 2)];
    assert!(exactly_once(&twice, &oracle)[0]
        .message
        .contains("committed 2 times"));
    let (violations, duplicates) = at_least_once(&twice, &oracle);
    assert!(violations.is_empty());
    assert_eq!(duplicates, 1);
    assert_eq!(at_least_once(&oracle[..1], &oracle).0.len(), 1);
}

#[test]
fn an_effect_the_oracle_lacks_is_reported_after_the_lost_ones_in_both_modes() {
    let oracle = vec![output(0, 1, 1), output(1, 1, 2)];
    let actual = vec![output(1, 1, 2), output(7, 1, 9)];
    let messages = |violations: Vec<Violation>| -> Vec<String> {
        violations.into_iter().map(|v| v.message).collect()
    };
    assert_eq!(
        messages(exactly_once(&actual, &oracle)),
        [
            "op-2: effect of input op-0/p0@0 was never committed",
            "op-2: effect of input op-0/p0@7 committed 1 times but the oracle has none",
        ]
    );
    assert_eq!(
        messages(at_least_once(&actual, &oracle).0),
        [
            "op-2: effect of input op-0/p0@0 was never committed",
            "op-2: effect of input op-0/p0@7 committed but the oracle has none",
        ]
    );
}

pub(super) fn engine(at: u64, event: EngineEvent) -> TraceEntry {
    TraceEntry {
        at: Tick(at),
        node: Address::JobManager,
        event: TraceEvent::Engine(event),
    }
}

fn disk(at: u64, event: StorageEvent) -> TraceEntry {
    TraceEntry {
        at: Tick(at),
        node: Address::Storage,
        event: TraceEvent::Storage(event),
    }
}

#[test]
fn a_completion_listing_a_file_deleted_or_never_synced_before_it_is_flagged() {
    // The old rule asked only "was it ever synced?": a file synced and deleted before the
    // completion passed, though a restore from that checkpoint would fail.
    let plan = keyed_sum_plan();
    let file = "ckpt/job/chk-1/task-0".to_string();
    let written = disk(
        1,
        StorageEvent::Written {
            path: file.clone(),
            bytes: 8,
        },
    );
    let synced = disk(2, StorageEvent::Synced { path: file.clone() });
    let deleted = disk(3, StorageEvent::Deleted { path: file.clone() });
    let completion = engine(
        4,
        EngineEvent::CompletionPersisting {
            checkpoint: CheckpointId(1),
            files: vec![file],
        },
    );
    let judge = |trace: &[TraceEntry]| storage(trace, &plan, None, &[]);
    let whole = [written.clone(), synced.clone(), completion.clone()];
    assert!(judge(&whole).is_empty());
    let gone = judge(&[written.clone(), synced, deleted, completion.clone()]);
    assert_eq!(gone.len(), 1, "{gone:?}");
    assert!(
        gone[0].message.contains("had been deleted at t=3"),
        "{gone:?}"
    );
    let pending = judge(&[written, completion]);
    assert!(
        pending[0].message.contains("was not durable"),
        "{pending:?}"
    );
}

fn keyed_sum_plan() -> ExecutionPlan {
    snapsim_core::testing::keyed_sum_job(8, None)
        .build()
        .expect("the test job builds")
}

#[test]
fn cancellation_fails_when_a_channel_skips_a_declined_checkpoint() {
    let plan = keyed_sum_plan();
    let (source, sum) = (TaskId(0), TaskId(2));
    assert_eq!(plan.tasks[sum.index()].name, "sum[0]");
    let attempt = Attempt(1);
    let received = |at, marker: bool, checkpoint| {
        let (channel, from, checkpoint) = (ChannelIndex(0), source, CheckpointId(checkpoint));
        engine(
            at,
            if marker {
                EngineEvent::CancelMarkerReceived {
                    task: sum,
                    attempt,
                    channel,
                    from,
                    checkpoint,
                }
            } else {
                EngineEvent::BarrierReceived {
                    task: sum,
                    attempt,
                    channel,
                    from,
                    checkpoint,
                }
            },
        )
    };
    let skipped = engine(
        10,
        EngineEvent::CheckpointSkipped {
            task: source,
            attempt,
            checkpoint: CheckpointId(1),
        },
    );
    // Skipped 1, then barrier 2 with nothing for 1 in between: the downstream waited in vain.
    let broken = cancellation(&[skipped.clone(), received(20, false, 2)], &plan);
    assert_eq!(broken.len(), 1, "{broken:?}");
    assert_eq!(
        broken[0].message,
        "sum[0] got the barrier of checkpoint chk-2 from source[0] at t=20, but nothing for checkpoint chk-1, which source[0] skipped at t=10"
    );
    // With the marker first, the channel is in order; in another attempt nothing relates.
    let fine = [
        skipped.clone(),
        received(15, true, 1),
        received(20, false, 2),
    ];
    assert!(cancellation(&fine, &plan).is_empty());
    let mut other_attempt = received(20, false, 2);
    if let TraceEvent::Engine(EngineEvent::BarrierReceived { attempt, .. }) =
        &mut other_attempt.event
    {
        *attempt = Attempt(2);
    }
    assert!(cancellation(&[skipped, other_attempt], &plan).is_empty());
}

#[test]
fn notification_fails_when_an_abort_notice_is_not_made_up_for() {
    let plan = keyed_sum_plan();
    let (sink, attempt) = (TaskId(4), Attempt(1));
    let notice = engine(
        30,
        EngineEvent::AbortNotified {
            task: sink,
            attempt,
            checkpoint: CheckpointId(3),
            latest_completed: Some(CheckpointId(2)),
        },
    );
    let notified = |checkpoint| {
        engine(
            20,
            EngineEvent::CheckpointNotified {
                task: sink,
                attempt,
                checkpoint: CheckpointId(checkpoint),
            },
        )
    };
    let broken = notification(&[notified(1), notice.clone()], &plan);
    assert_eq!(broken.len(), 1, "{broken:?}");
    assert!(broken[0]
        .message
        .contains("committed only up to checkpoint chk-1"));
    assert!(notification(&[notified(2), notice.clone()], &plan).is_empty());
    // A task restored from checkpoint 2 starts out committed up to it.
    let deployed = engine(
        5,
        EngineEvent::Deployed {
            attempt,
            restored: Some(CheckpointId(2)),
        },
    );
    assert!(notification(&[deployed, notice], &plan).is_empty());
}

#[test]
fn final_state_fails_on_a_wrong_last_value() {
    let oracle = vec![output(0, 1, 1), output(1, 1, 2)];
    let wrong = vec![output(0, 1, 1), output(1, 1, 3)];
    let model = ReferenceModel::new(&snapsim_core::testing::keyed_sum_job(8, None));
    let violations = final_state(&wrong, &oracle, &model);
    assert_eq!(violations.len(), 1);
    assert_eq!(
        violations[0].message,
        "op-2: key k1: final value Some(3), the oracle has 2"
    );
    // Behind a map only, the last record of a key is whichever came last: not compared;
    // each record's value is.
    let mut map_only = snapsim_core::testing::keyed_sum_job(8, None);
    map_only.operators[1].kind = OperatorKind::Map(snapsim_core::job::MapFn::MultiplyBy(2));
    map_only.edges[0].partitioning = Partitioning::Forward;
    let map_model = ReferenceModel::new(&map_only);
    assert!(!map_model.has_final_values(OperatorId(2)));
    let reordered = vec![output(1, 1, 2), output(0, 1, 1)];
    assert!(final_state(&reordered, &oracle, &map_model).is_empty());
    assert_eq!(final_state(&reordered, &oracle, &model).len(), 1);
    let violations = final_state(&wrong, &oracle, &map_model);
    assert_eq!(violations.len(), 1);
    assert!(violations[0]
        .message
        .contains("committed with value(s) {3}, the oracle has {2}"));
}

/// Why: results name added properties once per violation; reading them back must give the
/// same property (and keep one copy of its name), and the built-in ones keep their names.
#[test]
fn a_property_reads_back_by_name_and_an_added_one_is_kept_once() {
    let added = Property::named("commit-order");
    let again: Property = serde_json::from_str("\"commit-order\"").expect("a name");
    assert_eq!(again, added);
    let (Property::Extra(a), Property::Extra(b)) = (added, again) else {
        panic!("an added property: {added:?}")
    };
    assert!(std::ptr::eq(a, b), "one copy of the name");
    assert_eq!(Property::named("consistent-cut"), Property::ConsistentCut);
    let old: Property = serde_json::from_str("\"ConsistentCut\"").expect("a variant name");
    assert_eq!(old, Property::ConsistentCut);
}

/// Why: a job that did not finish must say where it stopped: its last progress, the pending
/// checkpoint, and what each task waited for (here: one source's snapshot never acknowledged,
/// one aggregate aligning without the other source's barrier, the rest without a barrier), and
/// the TaskManager that stayed down.
#[test]
fn a_stalled_job_names_what_each_task_waited_for() {
    use snapsim_core::operator::OperatorState;
    use snapsim_core::trace::JobStatus;
    let plan = snapsim_core::testing::keyed_sum_job(8, None)
        .build()
        .expect("valid");
    let (attempt, chk) = (Attempt(1), CheckpointId(2));
    let engine = |at: u64, node: Address, event: EngineEvent| TraceEntry {
        at: Tick(at),
        node,
        event: TraceEvent::Engine(event),
    };
    let (jm, tm0, tm1) = (
        Address::JobManager,
        Address::TaskManager(snapsim_core::ids::TaskManagerId(0)),
        Address::TaskManager(snapsim_core::ids::TaskManagerId(1)),
    );
    let snapshot = |task: u32| EngineEvent::SnapshotTaken {
        task: TaskId(task),
        attempt,
        checkpoint: chk,
        state: OperatorState::Stateless,
    };
    let trace = vec![
        engine(
            1,
            jm,
            EngineEvent::JobStatus {
                status: JobStatus::Running,
                attempt,
            },
        ),
        engine(
            10,
            jm,
            EngineEvent::CheckpointCompleted {
                checkpoint: CheckpointId(1),
            },
        ),
        engine(20, jm, EngineEvent::CheckpointTriggered { checkpoint: chk }),
        engine(21, tm0, snapshot(0)),
        engine(
            21,
            tm0,
            EngineEvent::Acknowledged {
                task: TaskId(0),
                checkpoint: chk,
            },
        ),
        engine(22, tm0, snapshot(1)),
        engine(
            23,
            tm1,
            EngineEvent::BarrierReceived {
                task: TaskId(2),
                attempt,
                channel: ChannelIndex(0),
                from: TaskId(0),
                checkpoint: chk,
            },
        ),
        TraceEntry {
            at: Tick(25),
            node: tm1,
            event: TraceEvent::Crash,
        },
    ];
    let witness = stall_witness(&trace, &plan, Tick(500));
    assert_eq!(witness.shape, "stalled");
    for words in [
        "no progress after chk-1 completed at t=10",
        "at the end (t=500) it was Running",
        "chk-2, triggered at t=20, still pending",
        "acknowledged: source[0]",
        "aligning, no barrier from source[1]: sum[0]",
        "no barrier yet: sum[1], sink[0], sink[1]",
        "snapshotted, never acknowledged: source[1]",
        "tm-1 was down since t=25",
    ] {
        assert!(
            witness.cause.contains(words),
            "'{words}' not in: {}",
            witness.cause
        );
    }
    assert_eq!(
        witness.events.iter().map(|e| e.at.0).collect::<Vec<_>>(),
        [10, 20, 22, 23, 25],
        "the progress, the trigger, the unacknowledged snapshot, the aligning task's first barrier, the crash"
    );
}

/// Why: the recovery checker's configuration rules must be able to fail, each with the events
/// that break it as its witness: a trigger beyond max concurrent and within the min pause, an
/// id that does not increase, a checkpoint kept past its timeout and one expired before it, a
/// restore of another state than snapshotted and of fewer in-flight records than recorded.
#[test]
fn recovery_flags_each_broken_rule_with_its_events() {
    use snapsim_core::operator::OperatorState;
    use snapsim_core::trace::TriggerKind;
    let mut plan = snapsim_core::testing::keyed_sum_job(8, None)
        .build()
        .expect("valid");
    let config = &mut plan.checkpoint;
    (
        config.max_concurrent,
        config.min_pause_ticks,
        config.timeout_ticks,
    ) = (1, 50, 100);
    let (jm, tm) = (
        Address::JobManager,
        Address::TaskManager(snapsim_core::ids::TaskManagerId(0)),
    );
    let at = |at: u64, node: Address, event: EngineEvent| TraceEntry {
        at: Tick(at),
        node,
        event: TraceEvent::Engine(event),
    };
    let start = |checkpoint: u64| EngineEvent::TriggerStarted {
        checkpoint: CheckpointId(checkpoint),
        kind: TriggerKind::Periodic,
    };
    let trigger = |checkpoint: u64| EngineEvent::CheckpointTriggered {
        checkpoint: CheckpointId(checkpoint),
    };
    let keyed = |value: i64| OperatorState::Keyed {
        values: [(Key(1), value)].into(),
    };
    let (task, attempt) = (TaskId(2), Attempt(1));
    let trace = vec![
        at(10, jm, start(1)),
        at(10, jm, trigger(1)),
        at(
            20,
            jm,
            EngineEvent::CheckpointCompleted {
                checkpoint: CheckpointId(1),
            },
        ),
        // 10 ms after the completion, with chk-2 not yet ended: min pause and max concurrent.
        at(25, jm, start(2)),
        at(25, jm, trigger(2)),
        at(30, jm, start(3)),
        at(30, jm, trigger(3)),
        at(
            31,
            tm,
            EngineEvent::SnapshotTaken {
                task,
                attempt,
                checkpoint: CheckpointId(3),
                state: keyed(5),
            },
        ),
        at(
            31,
            tm,
            EngineEvent::InFlightRecorded {
                task,
                attempt,
                checkpoint: CheckpointId(3),
                records: 4,
                in_flight: Vec::new(),
            },
        ),
        at(
            40,
            jm,
            EngineEvent::CheckpointAborted {
                checkpoint: CheckpointId(3),
                reason: snapsim_core::messages::CheckpointFailureReason::Expired,
            },
        ),
        at(
            150,
            jm,
            EngineEvent::AllAcknowledged {
                checkpoint: CheckpointId(2),
            },
        ),
        at(160, jm, trigger(2)),
    ];
    // A property shows its first violations only: the restores are judged apart.
    let restores = [
        trace[7].clone(),
        trace[8].clone(),
        at(
            170,
            tm,
            EngineEvent::Restored {
                task,
                checkpoint: CheckpointId(3),
                state: keyed(6),
            },
        ),
        at(
            170,
            tm,
            EngineEvent::InFlightRestored {
                task,
                checkpoint: CheckpointId(3),
                records: 3,
            },
        ),
    ];
    let shapes = |trace: &[TraceEntry]| -> Vec<(String, Vec<u64>)> {
        let violations = recovery(trace, &plan);
        assert!(
            violations.iter().all(|v| v.witness.is_some()),
            "{violations:#?}"
        );
        (violations.iter())
            .filter_map(|v| v.witness.as_ref())
            .map(|w| (w.shape.clone(), w.events.iter().map(|e| e.at.0).collect()))
            .collect()
    };
    let expect = |expected: &[(&str, [u64; 2])]| -> Vec<(String, Vec<u64>)> {
        (expected.iter())
            .map(|(shape, at)| (shape.to_string(), at.to_vec()))
            .collect()
    };
    assert_eq!(
        shapes(&trace),
        expect(&[
            ("min-pause-not-kept", [20, 25]),
            ("max-concurrent-exceeded", [25, 30]),
            ("expired-before-timeout", [30, 40]),
            ("kept-past-timeout", [25, 150]),
            ("checkpoint-id-not-increasing", [30, 160]),
        ])
    );
    assert_eq!(
        shapes(&restores),
        expect(&[
            ("restored-other-state", [31, 170]),
            ("in-flight-count-differs", [31, 170]),
        ])
    );
}

/// Why: the no-leaks rule must be able to fail, and say which file was left behind by whom:
/// a file of a checkpoint that retention subsumed, still there when the finished job's
/// clean-up settled.
#[test]
fn a_file_left_behind_is_flagged_with_its_checkpoint() {
    use snapsim_core::trace::JobStatus;
    let mut plan = keyed_sum_plan();
    plan.checkpoint.directory = Some("ckpt".to_string());
    let file = "ckpt/keyed-sum/chk-1/task-0".to_string();
    let trace = [
        disk(
            1,
            StorageEvent::Written {
                path: file.clone(),
                bytes: 8,
            },
        ),
        disk(2, StorageEvent::Synced { path: file.clone() }),
        engine(
            3,
            EngineEvent::CompletionPersisting {
                checkpoint: CheckpointId(1),
                files: vec![file.clone()],
            },
        ),
        engine(
            4,
            EngineEvent::CheckpointCompleted {
                checkpoint: CheckpointId(1),
            },
        ),
        engine(
            9,
            EngineEvent::CheckpointSubsumed {
                checkpoint: CheckpointId(1),
            },
        ),
        engine(
            12,
            EngineEvent::JobStatus {
                status: JobStatus::Finished,
                attempt: Attempt(1),
            },
        ),
    ];
    let finished = Some(JobStatus::Finished);
    assert!(
        storage(&trace, &plan, finished, &[]).is_empty(),
        "nothing left"
    );
    let left = storage(&trace, &plan, finished, std::slice::from_ref(&file));
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(
        left[0].message.contains("1 file(s) left behind"),
        "{left:?}"
    );
    let witness = left[0].witness.as_ref().expect("a leak has a witness");
    assert_eq!(witness.shape, "file-leaked");
    assert!(
        witness
            .cause
            .contains("chk-1, which listed it, was subsumed at t=9"),
        "{}",
        witness.cause
    );
    let times: Vec<u64> = witness.events.iter().map(|e| e.at.0).collect();
    assert_eq!(times, [1, 9, 12], "written, subsumed, the job's end");
}
