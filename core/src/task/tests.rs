use super::*;
use crate::config::CheckpointingMode;
use crate::ids::{Key, Offset, OperatorId, PartitionId};
use crate::record::{CheckpointBarrier, InputRef, Origin};
use crate::storage::{StateLocation, StoragePath};
use crate::testing::keyed_sum_job;

/// A one-byte state file at `path`.
fn file_handle(path: &str) -> StateHandle {
    StateHandle {
        location: StateLocation::File(StoragePath::new(path).expect("valid")),
        size: 1,
        checksum: 0,
        shared: Vec::new(),
    }
}

fn sink_task() -> Task {
    let plan = keyed_sum_job(8, None).build().expect("valid job");
    let spec = plan
        .tasks
        .iter()
        .find(|spec| matches!(spec.kind, OperatorKind::TwoPhaseCommitSink))
        .expect("the job has a sink");
    Task::new(spec, Attempt(1), &CheckpointConfig::default())
}

/// Why: found by fuzzing AT_LEAST_ONCE jobs. A plain sink acknowledged its snapshot while
/// its writes were still on their way to the sink system; a crash of its TaskManager lost
/// them, and the restore from that checkpoint did not replay them.
#[test]
fn a_plain_sinks_snapshot_waits_for_its_writes_to_be_confirmed() {
    let plan = keyed_sum_job(8, None).build().expect("valid job");
    let mut spec = plan
        .tasks
        .iter()
        .find(|spec| matches!(spec.kind, OperatorKind::TwoPhaseCommitSink))
        .expect("the job has a sink")
        .clone();
    spec.kind = OperatorKind::PlainSink;
    let config = CheckpointConfig {
        mode: CheckpointingMode::AtLeastOnce,
        ..CheckpointConfig::default()
    };
    let mut task = Task::new(&spec, Attempt(1), &config);
    let channel = ChannelIndex(0);
    let mut out = Vec::new();
    task.on_data(
        channel,
        vec![StreamEvent::Record(record())],
        Tick(0),
        &mut out,
    );
    let requests = sink_requests(&out);
    let [SinkRequest::WriteCommitted { write, .. }] = requests[..] else {
        panic!("the record is written: {requests:?}")
    };

    out.clear();
    let checkpoint = CheckpointId(1);
    let barrier = StreamEvent::Barrier(CheckpointBarrier::checkpoint(checkpoint));
    task.on_data(channel, vec![barrier], Tick(0), &mut out);
    let handle = file_handle("job/chk-1/sink");
    task.on_snapshot_durable(checkpoint, handle, &mut out);
    let acknowledged = |out: &[TaskEffect]| {
        out.iter()
            .any(|e| matches!(e, TaskEffect::Acknowledge { .. }))
    };
    assert!(!acknowledged(&out), "no ack before the write is confirmed");
    task.on_written(write, &mut out);
    assert!(acknowledged(&out), "acknowledged once it is: {out:?}");

    // With every write confirmed, the next snapshot waits for nothing.
    out.clear();
    let barrier = StreamEvent::Barrier(CheckpointBarrier::checkpoint(CheckpointId(2)));
    task.on_data(channel, vec![barrier], Tick(0), &mut out);
    let handle = file_handle("job/chk-2/sink");
    task.on_snapshot_durable(CheckpointId(2), handle, &mut out);
    assert!(acknowledged(&out));
}

/// Review finding: a savepoint's snapshot still being written must survive the completion
/// of a later checkpoint whose snapshot was stored first (kept in memory), or the savepoint
/// is never acknowledged and expires.
#[test]
fn a_pending_savepoint_snapshot_survives_a_later_checkpoints_notification() {
    let plan = keyed_sum_job(8, None).build().expect("valid job");
    let spec = plan
        .tasks
        .iter()
        .find(|spec| matches!(spec.kind, OperatorKind::Source { .. }))
        .expect("the job has a source");
    let mut task = Task::new(spec, Attempt(1), &CheckpointConfig::default());
    let (savepoint, checkpoint) = (CheckpointId(1), CheckpointId(2));
    let mut out = Vec::new();
    let barrier = CheckpointBarrier {
        id: savepoint,
        savepoint: true,
    };
    task.on_trigger(barrier, &mut out);
    task.on_trigger(CheckpointBarrier::checkpoint(checkpoint), &mut out);
    let handle = |name: &str| StateHandle {
        location: StateLocation::File(StoragePath::new(name).expect("valid")),
        size: 1,
        checksum: 0,
        shared: Vec::new(),
    };
    task.on_snapshot_durable(checkpoint, handle("c"), &mut out);
    task.on_notify_complete(checkpoint, false, &mut out);
    out.clear();
    task.on_snapshot_durable(savepoint, handle("s"), &mut out);
    let acked = out.iter().any(|effect| {
        matches!(effect, TaskEffect::Acknowledge { checkpoint, .. } if *checkpoint == savepoint)
    });
    assert!(acked, "the savepoint is acknowledged: {out:?}");
}

/// Review finding: under unaligned checkpoints, a checkpoint's first barrier taken from
/// the queue in channel order (it queued behind an older barrier, here a savepoint's) must
/// not record what follows it on its own channel as channel state: after a restore those
/// records would come twice, from the channel state and from upstream again.
#[test]
fn a_first_barrier_taken_in_order_records_nothing_after_it_on_its_channel() {
    let plan = keyed_sum_job(8, None).build().expect("valid job");
    let spec = plan
        .tasks
        .iter()
        .find(|spec| matches!(spec.kind, OperatorKind::KeyedAggregate(_)))
        .expect("the job has a sum");
    assert_eq!(spec.inputs.len(), 2, "one channel per source subtask");
    let config = CheckpointConfig {
        unaligned: true,
        ..CheckpointConfig::default()
    };
    let mut task = Task::new(spec, Attempt(1), &config);
    let value = |value: i64| StreamEvent::Record(Record { value, ..record() });
    let savepoint = StreamEvent::Barrier(CheckpointBarrier {
        id: CheckpointId(1),
        savepoint: true,
    });
    let checkpoint = || StreamEvent::Barrier(CheckpointBarrier::checkpoint(CheckpointId(2)));
    let (first, second) = (ChannelIndex(0), ChannelIndex(1));
    let mut out = Vec::new();
    // Before checkpoint 2's barrier: 10 on the first channel, 20 on the second; after it:
    // 11 and 21. The savepoint's barriers are queued ahead, so neither barrier overtakes.
    let before_and_after =
        |before, after| vec![savepoint.clone(), value(before), checkpoint(), value(after)];
    task.on_data(first, before_and_after(10, 11), Tick(1), &mut out);
    task.on_data(second, before_and_after(20, 21), Tick(1), &mut out);
    let recorded: Vec<(ChannelIndex, i64)> = out
        .iter()
        .find_map(|effect| match effect {
            TaskEffect::Trace(EngineEvent::InFlightRecorded {
                checkpoint: CheckpointId(2),
                in_flight,
                ..
            }) => Some(
                in_flight
                    .iter()
                    .flat_map(|(channel, records)| records.iter().map(|r| (*channel, r.value)))
                    .collect(),
            ),
            _ => None,
        })
        .expect("checkpoint 2's channel state is complete");
    // Whichever channel's barrier came first, only the other channel's record before its
    // barrier is channel state; neither record after a barrier is.
    assert!(
        recorded == [(second, 20)] || recorded == [(first, 10)],
        "{recorded:?}"
    );
}

fn record() -> Record {
    Record {
        key: Key(1),
        value: 1,
        event_time: EventTime(0),
        origin: Origin::Input(InputRef {
            source: OperatorId(0),
            partition: PartitionId(0),
            offset: Offset(0),
        }),
    }
}

fn sink_requests(effects: &[TaskEffect]) -> Vec<SinkRequest> {
    effects
        .iter()
        .filter_map(|effect| match effect {
            TaskEffect::Sink(request) => Some(request.clone()),
            _ => None,
        })
        .collect()
}

/// A sink that wrote one record, reached its end of data and took the final checkpoint 1,
/// acknowledged: what remains is the completion notice. Returns its pre-committed
/// transaction.
fn sink_with_final_checkpoint_acknowledged() -> (Task, TransactionId) {
    let mut task = sink_task();
    let channel = ChannelIndex(0);
    let mut out = Vec::new();
    task.on_data(
        channel,
        vec![StreamEvent::Record(record()), StreamEvent::EndOfData],
        Tick(0),
        &mut out,
    );
    assert!(out.contains(&TaskEffect::DataFinished));
    assert!(
        matches!(&sink_requests(&out)[..], [SinkRequest::Write { records, .. }] if records.len() == 1),
        "the record is written into the open transaction: {out:?}"
    );

    out.clear();
    let final_checkpoint = CheckpointId(1);
    task.on_data(
        channel,
        vec![StreamEvent::Barrier(CheckpointBarrier::checkpoint(
            final_checkpoint,
        ))],
        Tick(0),
        &mut out,
    );
    let requests = sink_requests(&out);
    let [SinkRequest::PreCommit { transaction }] = requests[..] else {
        panic!("the snapshot pre-commits: {requests:?}")
    };

    out.clear();
    let handle = file_handle("job/chk-1/sink");
    task.on_snapshot_durable(final_checkpoint, handle, &mut out);
    assert!(out.is_empty(), "no ack before the pre-commit is confirmed");
    task.on_pre_committed(transaction, &mut out);
    assert!(matches!(out[0], TaskEffect::Acknowledge { .. }));
    (task, transaction)
}

/// Why: a job was reported finished while the final commit was still on its way to the sink
/// system, so a run could end with the last transaction neither committed nor aborted.
#[test]
fn a_sink_finishes_only_after_the_final_commit_is_confirmed() {
    let (mut task, transaction) = sink_with_final_checkpoint_acknowledged();
    let final_checkpoint = CheckpointId(1);
    let mut out = Vec::new();
    task.on_notify_complete(final_checkpoint, true, &mut out);
    assert_eq!(
        sink_requests(&out),
        vec![SinkRequest::Commit { transaction }]
    );
    assert!(!out.contains(&TaskEffect::Finished));
    assert_eq!(task.status(), TaskStatus::Committing);

    out.clear();
    task.on_committed(transaction, &mut out);
    assert_eq!(out, vec![TaskEffect::Finished]);
    assert_eq!(task.status(), TaskStatus::Finished);
}

/// Why: found by fuzzing (a job that never finished). The abort of an older checkpoint
/// subsumed by the final one carries the final one as the latest completed and reached the
/// task first; the task committed up to it and then ignored the final notification as a
/// repeat, so it never finished.
#[test]
fn a_final_notification_after_an_abort_that_carried_it_still_finishes() {
    let (mut task, transaction) = sink_with_final_checkpoint_acknowledged();
    let final_checkpoint = CheckpointId(1);
    let mut out = Vec::new();
    task.on_notify_aborted(CheckpointId(0), Some(final_checkpoint), &mut out);
    assert_eq!(
        sink_requests(&out),
        vec![SinkRequest::Commit { transaction }]
    );
    assert_eq!(task.status(), TaskStatus::DataFinished);

    out.clear();
    task.on_notify_complete(final_checkpoint, true, &mut out);
    assert!(sink_requests(&out).is_empty(), "committed once: {out:?}");
    assert_eq!(task.status(), TaskStatus::Committing);
    task.on_committed(transaction, &mut out);
    assert_eq!(task.status(), TaskStatus::Finished);
}

/// The keyed sum of `keyed_sum_job` checkpointing without barriers, with `protocol`.
fn logging_sum_task(protocol: crate::config::LoggingProtocol) -> Task {
    let mut job = keyed_sum_job(8, Some(20));
    use crate::algorithm::SnapshotAlgorithm;
    crate::algorithm::LogBasedAlgorithm(protocol).configure(&mut job.checkpoint);
    let plan = job.build().expect("valid job");
    let spec = (plan.tasks.iter())
        .find(|spec| matches!(spec.kind, OperatorKind::KeyedAggregate(_)))
        .expect("the job has a sum");
    let mut task = Task::new(spec, Attempt(1), &plan.checkpoint);
    task.schedule_local_snapshots(Tick(0));
    task
}

fn logged(sequence: u64, index: u64) -> StreamEvent {
    StreamEvent::Logged(Box::new(crate::record::LoggedRecord {
        sequence,
        index,
        record: record(),
    }))
}

fn emitted_sequences(out: &[TaskEffect]) -> Vec<u64> {
    (out.iter())
        .filter_map(|e| match e {
            TaskEffect::Emit {
                event: StreamEvent::Logged(logged),
                ..
            } => Some(logged.sequence),
            _ => None,
        })
        .collect()
}

/// Why: a restored sender replays its whole log; the receiver must process a record it had
/// processed before its snapshot no second time, and count only processed records in a
/// snapshot (those still queued are in transit, the sender's log keeps them).
#[test]
fn a_logging_task_drops_replayed_records_and_counts_only_what_it_processed() {
    let mut task = logging_sum_task(crate::config::LoggingProtocol::Uncoordinated);
    let mut out = Vec::new();
    let channel = ChannelIndex(0);
    task.on_data(channel, vec![logged(1, 0), logged(2, 0)], Tick(1), &mut out);
    assert_eq!(
        emitted_sequences(&out),
        [1, 2],
        "each record numbered on its output"
    );
    out.clear();
    task.on_data(
        channel,
        vec![logged(1, 0), logged(2, 0), logged(3, 0)],
        Tick(2),
        &mut out,
    );
    assert_eq!(
        emitted_sequences(&out),
        [3],
        "1 and 2 came again and were dropped"
    );
    let index = task.local.as_ref().expect("logging").next_index();
    out.clear();
    task.take_local_snapshot(index, false, &mut out);
    let counts = (out.iter())
        .find_map(|e| match e {
            TaskEffect::Trace(EngineEvent::LocalSnapshotTaken { counts, logged, .. }) => {
                Some((counts.clone(), logged.clone()))
            }
            _ => None,
        })
        .expect("a local snapshot");
    assert_eq!(counts.0.received, [(channel, 3), (ChannelIndex(1), 0)]);
    assert_eq!(counts.0.sent.iter().map(|(_, n)| n).sum::<u64>(), 3);
    assert_eq!(counts.1.iter().map(|l| l.records.len()).sum::<usize>(), 3);
}

/// Why: a sender keeps in its log only what the receivers of the latest line had not
/// processed; and, communication-induced, a record sent after a snapshot with a higher index
/// forces a snapshot before it counts.
#[test]
fn a_line_cuts_the_log_and_a_higher_index_forces_a_snapshot_first() {
    let mut task = logging_sum_task(crate::config::LoggingProtocol::CommunicationInduced);
    let mut out = Vec::new();
    let channel = ChannelIndex(0);
    task.on_data(channel, vec![logged(1, 0), logged(2, 0)], Tick(1), &mut out);
    out.clear();
    task.on_data(channel, vec![logged(3, 5)], Tick(2), &mut out);
    let snapshot = |out: &[TaskEffect]| {
        (out.iter()).find_map(|e| match e {
            TaskEffect::Trace(EngineEvent::LocalSnapshotTaken {
                snapshot,
                forced,
                counts,
                logged,
                ..
            }) => Some((
                *snapshot,
                *forced,
                counts.received_on(channel),
                logged.clone(),
            )),
            _ => None,
        })
    };
    let (index, forced, received, log) = snapshot(&out).expect("a forced snapshot");
    assert_eq!(
        (index, forced, received),
        (CheckpointId(5), true, 2),
        "before record 3 counts"
    );
    let kept = |log: &[crate::recovery_line::ChannelLog]| -> Vec<(u64, usize)> {
        log.iter().map(|l| (l.first, l.records.len())).collect()
    };
    assert_eq!(
        kept(&log),
        [(1, 2)],
        "records 1 and 2 went to the sum's one output"
    );
    let notice = crate::recovery_line::LineNotice {
        checkpoint: CheckpointId(1),
        final_line: false,
        members: [(task.id(), CheckpointId(5))].into(),
        received: [(log[0].channel, 1)].into(),
    };
    task.on_line_complete(&notice, &mut out);
    out.clear();
    task.take_local_snapshot(CheckpointId(6), false, &mut out);
    let (.., log) = snapshot(&out).expect("a snapshot");
    assert_eq!(
        kept(&log),
        [(2, 2)],
        "record 1, processed in the line, left the log; 2 and 3 stay"
    );
}
