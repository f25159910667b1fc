//! Trigger decisions and bookkeeping of the coordinator against Flink's `CheckpointingOptions`,
//! `CheckpointCoordinator`, `CheckpointRequestDecider` and `CheckpointFailureManager`.
//!
//! Scripts for [`Driver`] have one line per input, `steps => effects` (steps joined by `;`; no
//! `=>`: nothing may happen). Steps: `start D`, `to T` (`on_tick` at each deadline up to T),
//! `ack-all ID`, `ack TASK ID`, `decline TASK ID REASON`, `hold` (leave persists unanswered),
//! `reply ok|fail` (the oldest held), `release`, `stop REASON`, `final`, `fail ID REASON` and
//! `succeed ID` (to the failure manager), `state`. Effects: `t=<tick> token, ..`, ` | ` between
//! deadlines or steps. `trigger N` is trace and Trigger at the sources, `complete N [final]`
//! trace and NotifyComplete, `abort N REASON` trace, Discard and NotifyAborted (naming the
//! latest completed), `skip N REASON` an id given up before triggering (trace only), `refuse REASON` a
//! request refused before it got an id, `retire N` trace and
//! Discard of a checkpoint leaving the store; `counter`, `metadata N`, `store N` the persists.

use super::*;
use crate::status::CheckpointFailureReason as R;
use crate::storage::StateLocation;
use std::collections::VecDeque;

const JOB: &str = "job";
/// The job's checkpoint directory: `{state.checkpoints.dir}/{job}`.
const ROOT: &str = "ckpt/job";
/// Tasks `0..TASKS`; task 0 is the only source.
const TASKS: u32 = 3;
/// The reasons the scripts name.
const REASONS: [R; 9] = [
    R::Expired,
    R::Declined,
    R::AsyncException,
    R::FinalizeFailure,
    R::DeclinedSubsumed,
    R::DeclinedOnCancellationBarrier,
    R::DeclinedTaskNotReady,
    R::Subsumed,
    R::JobFailover,
];

/// Periodic every `interval` (None: off), timeout 500, one pending at a time, and failures
/// tolerated generously so that only the tests about them see `fail-job`.
fn config(interval: Option<u64>) -> CheckpointConfig {
    let mut config = CheckpointConfig {
        directory: Some("ckpt".to_string()),
        ..CheckpointConfig::default()
    };
    (
        config.interval_ticks,
        config.timeout_ticks,
        config.tolerable_failed,
    ) = (interval, 500, 100);
    config
}

fn state(checkpoint: u64, task: u32) -> StateHandle {
    let path = StoragePath::task_snapshot(ROOT, CheckpointId(checkpoint), TaskId(task));
    StateHandle {
        location: StateLocation::File(path),
        size: 1,
        checksum: task,
        shared: Vec::new(),
    }
}

fn states(checkpoint: CheckpointId) -> BTreeMap<TaskId, StateHandle> {
    (0..TASKS)
        .map(|task| (TaskId(task), state(checkpoint.0, task)))
        .collect()
}

struct Driver {
    coordinator: CheckpointCoordinator,
    now: Tick,
    hold: bool,
    held: VecDeque<CoordinatorEffect>,
    tokens: Vec<String>,
}

type Out = Vec<CoordinatorEffect>;

impl Driver {
    /// One input to the coordinator; then, unless holding, answers every persist it asked for.
    fn apply(&mut self, input: impl FnOnce(&mut CheckpointCoordinator, Tick, &mut Out)) {
        let mut out = Vec::new();
        input(&mut self.coordinator, self.now, &mut out);
        self.render(&out);
        while !self.hold {
            let Some(request) = self.held.pop_front() else {
                return;
            };
            self.answer(request, true);
        }
    }

    fn answer(&mut self, request: CoordinatorEffect, ok: bool) {
        self.apply(|c, now, out| match request {
            CoordinatorEffect::PersistCounter => c.on_counter_persisted(now, ok, out),
            CoordinatorEffect::WriteMetadata { metadata: m, .. } => {
                c.on_metadata_written(now, m.checkpoint, ok, out)
            }
            CoordinatorEffect::PersistCompletion(completed) => {
                c.on_completion_persisted(now, completed, ok, out)
            }
            other => unreachable!("{other:?} is not a persist"),
        });
    }

    /// Renders the effects of one call, checking what a token leaves out.
    fn render(&mut self, out: &[CoordinatorEffect]) {
        use CoordinatorEffect as E;
        use EngineEvent as V;
        // One call completes at most one checkpoint, before any abort it causes.
        let latest = self.coordinator.store().latest().map(|c| c.id);
        let mut rest = out;
        while let [first, ..] = rest {
            let (token, used) = match rest {
                // Progress markers for the checkers, not decisions: left out of transcripts.
                [E::Trace(
                    V::TriggerStarted { .. }
                    | V::AllAcknowledged { .. }
                    | V::CompletionPersisting { .. }
                    | V::InputConsumed { .. },
                ), ..] => (String::new(), 1),
                [E::Trace(V::CheckpointAborted {
                    checkpoint: a,
                    reason,
                }), E::Discard {
                    checkpoint: b,
                    savepoint: false,
                }, E::NotifyAborted {
                    checkpoint: c,
                    latest_completed: l,
                }, ..]
                    if a == b && b == c =>
                {
                    assert_eq!(*l, latest, "the abort of {a} names the latest completed");
                    (format!("abort {} {reason:?}", a.0), 3)
                }
                [E::Trace(V::CheckpointAborted {
                    checkpoint: a,
                    reason,
                }), ..] => (format!("skip {} {reason:?}", a.0), 1),
                [E::Trace(V::ReplyIgnored {
                    task,
                    checkpoint,
                    reply,
                    why,
                }), ..] => (
                    format!("ignore {reply:?} {} {} {why:?}", task.0, checkpoint.0),
                    1,
                ),
                [E::Trace(V::TriggerRequestRefused { reason }), ..] => {
                    (format!("refuse {reason:?}"), 1)
                }
                [E::Trace(V::CheckpointTriggered { checkpoint: a }), E::Trigger {
                    checkpoint: b,
                    savepoint: false,
                    sources,
                }, ..]
                    if a == b =>
                {
                    assert_eq!(sources, &[TaskId(0)], "barriers go to the sources only");
                    (format!("trigger {}", a.0), 2)
                }
                [E::Trace(V::CheckpointCompleted { checkpoint: a }), E::NotifyComplete {
                    checkpoint: b,
                    final_checkpoint: f,
                }, ..]
                    if a == b =>
                {
                    (
                        format!("complete {}{}", a.0, if *f { " final" } else { "" }),
                        2,
                    )
                }
                [E::NotifyComplete {
                    checkpoint,
                    final_checkpoint: true,
                }, ..] => (format!("notify-again {} final", checkpoint.0), 1),
                [E::Trace(V::CheckpointSubsumed { checkpoint: a }), E::DiscardCompleted(b), ..]
                    if *a == b.id =>
                {
                    (format!("retire {}", a.0), 2)
                }
                [E::FailJob {
                    checkpoint: a,
                    reason,
                }, ..] => (format!("fail-job {} {reason:?}", a.0), 1),
                [E::PersistCounter, ..] => ("counter".to_string(), 1),
                [E::WriteMetadata {
                    path,
                    metadata: m,
                    savepoint: false,
                }, ..] => {
                    assert_eq!(path, &Some(StoragePath::metadata(ROOT, m.checkpoint)));
                    assert_eq!(
                        (m.job.as_str(), &m.task_states),
                        (JOB, &states(m.checkpoint))
                    );
                    (format!("metadata {}", m.checkpoint.0), 1)
                }
                [E::PersistCompletion(c), ..] => {
                    assert_eq!(c.metadata, Some(StoragePath::metadata(ROOT, c.id)));
                    assert_eq!((c.completed_at, &c.task_states), (self.now, &states(c.id)));
                    (format!("store {}", c.id.0), 1)
                }
                _ => (format!("unpaired {first:?}"), 1),
            };
            if matches!(
                first,
                E::PersistCounter | E::WriteMetadata { .. } | E::PersistCompletion(_)
            ) {
                self.held.push_back(first.clone());
            }
            if !token.is_empty() {
                self.tokens.push(token);
            }
            rest = &rest[used..];
        }
    }

    /// The tokens since the last flush, stamped with the current time.
    fn flush(&mut self) -> Option<String> {
        let tokens = std::mem::take(&mut self.tokens);
        (!tokens.is_empty()).then(|| format!("{} {}", self.now, tokens.join(", ")))
    }

    fn ack(&mut self, task: u32, id: u64) {
        let (task, id) = (TaskId(task), CheckpointId(id));
        self.apply(|c, now, out| c.on_acknowledge(now, task, id, state(id.0, task.0), out));
    }

    fn step(&mut self, words: &[&str]) -> String {
        let n = |i: usize| -> u64 { words[i].parse().expect("a number") };
        let reason = |i: usize| {
            *REASONS
                .iter()
                .find(|r| format!("{r:?}") == words[i])
                .expect("a reason")
        };
        let mut groups = Vec::new();
        match words[0] {
            "start" => self.coordinator.start(self.now, n(1)),
            "to" => {
                let (until, mut last) = (Tick(n(1)), None);
                while let Some(due) = self.coordinator.next_deadline().filter(|&d| d <= until) {
                    assert!(due >= self.now && last < Some(due), "stuck at {due}");
                    (last, self.now) = (Some(due), due);
                    self.apply(|c, now, out| c.on_tick(now, out));
                    groups.extend(self.flush());
                }
                self.now = until;
            }
            "ack-all" => (0..TASKS).for_each(|task| self.ack(task, n(1))),
            "ack" => self.ack(words[1].parse().expect("a task"), n(2)),
            "decline" => {
                let (task, id, reason) = (TaskId(n(1) as u32), CheckpointId(n(2)), reason(3));
                self.apply(|c, now, out| c.on_decline(now, task, id, reason, out));
            }
            "hold" => self.hold = true,
            "reply" => {
                let request = self.held.pop_front().expect("a persist is held");
                self.answer(request, words[1] == "ok");
            }
            "release" => {
                self.hold = false;
                self.apply(|_, _, _| {});
            }
            "stop" => self.apply(|c, _, out| c.stop(reason(1), out)),
            "final" => self.apply(|c, now, out| c.request_final_checkpoint(now, out)),
            "fail" => {
                if self
                    .coordinator
                    .failures
                    .on_failure(CheckpointId(n(1)), reason(2))
                {
                    self.tokens
                        .push(format!("fail-job {} {:?}", n(1), reason(2)));
                }
            }
            "succeed" => self.coordinator.failures.on_success(CheckpointId(n(1))),
            "state" => {
                let c = &self.coordinator;
                let pending: Vec<u64> = c.pending_ids().iter().map(|id| id.0).collect();
                let store: Vec<u64> = c.store().checkpoints().map(|cp| cp.id.0).collect();
                let due = c
                    .next_deadline()
                    .map_or("-".to_string(), |due| due.0.to_string());
                let (next, failures) = (c.next_id().0, c.failures.continuous_failures());
                return format!(
                    "pending={pending:?} next={next} store={store:?} failures={failures} due={due}"
                );
            }
            other => panic!("unknown step {other}"),
        }
        groups.extend(self.flush());
        groups.join(" | ")
    }
}

/// Runs `script` on a coordinator for tasks 0..3 that resumes from the completed checkpoints
/// `restored` and the id counter `next_id`, checking each line's rendering.
fn check_from(config: CheckpointConfig, restored: &[u64], next_id: u64, script: &str) {
    let completed = restored.iter().map(|&id| CompletedCheckpoint {
        id: CheckpointId(id),
        task_states: states(CheckpointId(id)),
        metadata: Some(StoragePath::metadata(ROOT, CheckpointId(id))),
        completed_at: Tick(0),
        owned: true,
    });
    let store = CompletedCheckpointStore::from_checkpoints(config.retained, completed.collect());
    let (tasks, sources) = ((0..TASKS).map(TaskId).collect(), vec![TaskId(0)]);
    let coordinator =
        CheckpointCoordinator::new(JOB, config, tasks, sources, CheckpointId(next_id), store);
    let (now, hold, held, tokens) = (Tick(0), false, VecDeque::new(), Vec::new());
    let mut driver = Driver {
        coordinator,
        now,
        hold,
        held,
        tokens,
    };
    let mut transcript = String::new();
    for line in script.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (steps, expected) = line.split_once("=>").unwrap_or((line, ""));
        let actual: Vec<String> = steps
            .split(';')
            .map(|step| driver.step(&step.split_whitespace().collect::<Vec<_>>()))
            .filter(|rendered| !rendered.is_empty())
            .collect();
        let actual = actual.join(" | ");
        assert_eq!(actual, expected.trim(), "at `{line}`, after:\n{transcript}");
        transcript.push_str(&format!("{} => {actual}\n", steps.trim()));
    }
}

fn check(config: CheckpointConfig, script: &str) {
    check_from(config, &[], 1, script);
}

#[test]
fn periodic_triggers_follow_the_effective_interval_at_a_fixed_rate() {
    // No interval, no periodic trigger however long the job runs (`CheckpointingOptions`).
    // Triggers at 0, 100, 200 whenever the previous one completed, not interval after it
    // (`ScheduledTrigger`). A min pause of 150 above the interval of 100 makes it 150 (the
    // `CheckpointCoordinator` constructor), with nothing at 100 or 200.
    check(
        config(None),
        "start 0; to 100000
         state => pending=[] next=1 store=[] failures=0 due=-",
    );
    check(
        config(Some(100)),
        "start 0; to 0    => t=0 counter, trigger 1
         to 30; ack-all 1 => t=30 metadata 1, store 1, complete 1
         to 199           => t=100 counter, trigger 2
         ack-all 2        => t=199 metadata 2, store 2, retire 1, complete 2
         to 200           => t=200 counter, trigger 3
         state            => pending=[3] next=4 store=[2] failures=0 due=300",
    );
    check(
        CheckpointConfig {
            min_pause_ticks: 150,
            ..config(Some(100))
        },
        "start 0; to 0 => t=0 counter, trigger 1
         ack-all 1     => t=0 metadata 1, store 1, complete 1
         to 150        => t=150 counter, trigger 2
         ack-all 2     => t=150 metadata 2, store 2, retire 1, complete 2
         to 300        => t=300 counter, trigger 3",
    );
}

#[test]
fn min_pause_counts_from_the_last_completion_not_from_an_abort() {
    // `CheckpointRequestDecider`: the request at 100 is too early (completion 50 + pause 90),
    // is refused without taking an id, and the trigger fires exactly at 140. The abort at 200
    // does not restart the pause, so the fixed-rate trigger at 240 goes ahead.
    check(
        CheckpointConfig { min_pause_ticks: 90, ..config(Some(100)) },
        "start 0; to 0                => t=0 counter, trigger 1
         to 50; ack-all 1             => t=50 metadata 1, store 1, complete 1
         to 140                       => t=100 refuse MinimumTimeBetweenCheckpoints | t=140 counter, trigger 2
         state                        => pending=[2] next=3 store=[1] failures=0 due=240
         to 200; decline 1 2 Declined => t=200 abort 2 Declined
         to 240                       => t=240 counter, trigger 3",
    );
}

#[test]
fn a_request_waits_while_max_concurrent_are_pending() {
    // `CheckpointRequestDecider`: with one allowed, the periodic requests at 100, 200 and 300
    // wait (also while 3 is being finalized) and run as soon as the slot frees by completion or
    // decline. With two allowed, two are pending and the third waits until completing 2
    // subsumes 1 (uncounted).
    check(
        config(Some(100)),
        "start 0; to 150              => t=0 counter, trigger 1
         state                        => pending=[1] next=2 store=[] failures=0 due=200
         ack-all 1                    => t=150 metadata 1, store 1, complete 1, counter, trigger 2
         to 250; decline 2 2 Declined => t=250 abort 2 Declined, counter, trigger 3
         hold; ack-all 3              => t=250 metadata 3
         to 350; release              => t=350 store 3, retire 1, complete 3, counter, trigger 4",
    );
    check(
        CheckpointConfig { max_concurrent: 2, ..config(Some(100)) },
        "start 0; to 200 => t=0 counter, trigger 1 | t=100 counter, trigger 2
         state           => pending=[1, 2] next=3 store=[] failures=0 due=300
         ack-all 2       => t=200 metadata 2, store 2, abort 1 Subsumed, complete 2, counter, trigger 3
         state           => pending=[3] next=4 store=[2] failures=0 due=300",
    );
}

#[test]
fn a_finalize_failure_frees_the_slot_for_a_queued_request() {
    // `CheckpointCoordinator#scheduleTriggerRequest`: after any abort the queue runs again, so
    // the request queued at 100 (200) is taken right when finalizing fails, whether the store
    // persist or the metadata write failed.
    check(
        config(Some(100)),
        "start 0; to 0      => t=0 counter, trigger 1
         hold; ack-all 1    => t=0 metadata 1
         reply ok           => t=0 store 1
         to 150; reply fail => t=150 abort 1 FinalizeFailure, counter
         reply ok           => t=150 trigger 2
         ack-all 2          => t=150 metadata 2
         to 250; reply fail => t=250 abort 2 FinalizeFailure, counter
         release            => t=250 trigger 3",
    );
}

#[test]
fn replies_for_ids_never_taken_or_from_unknown_tasks_are_ignored() {
    // Flink's `CheckpointCoordinatorTest#testHandleMessagesForNonExistingCheckpoints`: an ack or
    // decline for a checkpoint the coordinator never triggered, or from a task the job does not
    // have, changes nothing (it is traced); the pending checkpoint still completes.
    check(
        config(Some(100)),
        "start 0; to 0                 => t=0 counter, trigger 1
         ack 0 7                       => t=0 ignore Acknowledge 0 7 NeverTriggered
         decline 1 2 Declined          => t=0 ignore Decline 1 2 NeverTriggered
         ack 9 1                       => t=0 ignore Acknowledge 9 1 UnknownTask
         decline 9 1 Declined          => t=0 ignore Decline 9 1 UnknownTask
         state                         => pending=[1] next=2 store=[] failures=0 due=100
         ack-all 1                     => t=0 metadata 1, store 1, complete 1",
    );
}

#[test]
fn an_expired_checkpoint_is_aborted_and_late_acks_are_ignored() {
    // `CheckpointCoordinator.CheckpointCanceller`, FLINK-5063: 1 expires at trigger + timeout
    // however many acks it has, and later acks change nothing; a checkpoint being finalized no
    // longer expires.
    check(
        config(Some(1000)),
        "start 0; to 0 => t=0 counter, trigger 1
         to 100; ack 0 1; ack 1 1; to 499
         state         => pending=[1] next=2 store=[] failures=0 due=500
         to 500        => t=500 abort 1 Expired
         ack 2 1; ack-all 1
         state         => pending=[] next=2 store=[] failures=1 due=1000
         to 1000       => t=1000 counter, trigger 2
         hold; ack-all 2  => t=1000 metadata 2
         to 1600; release => t=1600 store 2, complete 2
         state         => pending=[] next=3 store=[2] failures=0 due=2000",
    );
}

#[test]
fn the_second_consecutive_counted_failure_fails_the_job() {
    // `CheckpointFailureManager` with one tolerated: expiry then decline fail the job (and reset
    // the count); async failure, success, decline does not, as the success in between resets
    // the count.
    check(
        CheckpointConfig {
            timeout_ticks: 50,
            tolerable_failed: 1,
            ..config(Some(100))
        },
        "start 0; to 50             => t=0 counter, trigger 1 | t=50 abort 1 Expired
         to 100                     => t=100 counter, trigger 2
         decline 2 2 Declined       => t=100 abort 2 Declined, fail-job 2 Declined
         state                      => pending=[] next=3 store=[] failures=0 due=200
         to 200                     => t=200 counter, trigger 3
         decline 0 3 AsyncException => t=200 abort 3 AsyncException
         to 300                     => t=300 counter, trigger 4
         ack-all 4                  => t=300 metadata 4, store 4, complete 4
         to 400                     => t=400 counter, trigger 5
         decline 1 5 Declined       => t=400 abort 5 Declined
         state                      => pending=[] next=6 store=[4] failures=1 due=500",
    );
}

#[test]
fn uncounted_reasons_never_fail_the_job() {
    // `CheckpointFailureManager#checkFailureCounter`: with Flink's default of zero tolerated,
    // declines for subsumption, cancellation or a task not ready, and the failover abort
    // (`JOB_FAILOVER_REGION`), fail nothing. The stop also ends periodic triggering
    // (`CheckpointCoordinatorDeActivator`).
    check(
        CheckpointConfig {
            tolerable_failed: 0,
            ..config(Some(100))
        },
        "start 0; to 0                             => t=0 counter, trigger 1
         decline 1 1 DeclinedSubsumed              => t=0 abort 1 DeclinedSubsumed
         to 100                                    => t=100 counter, trigger 2
         decline 1 2 DeclinedOnCancellationBarrier => t=100 abort 2 DeclinedOnCancellationBarrier
         to 200                                    => t=200 counter, trigger 3
         decline 2 3 DeclinedTaskNotReady          => t=200 abort 3 DeclinedTaskNotReady
         to 300                                    => t=300 counter, trigger 4
         stop JobFailover                          => t=300 abort 4 JobFailover
         to 10000
         state => pending=[] next=5 store=[] failures=0 due=-",
    );
}

#[test]
fn failures_count_once_per_id_and_only_after_the_last_success() {
    // `CheckpointFailureManager`, FLINK-18336: restored from 5, failures of 5 or older do not
    // count, an id counts once, an older success does not reset the count and an uncounted
    // reason (Subsumed, FinalizeFailure) does not count.
    check_from(
        CheckpointConfig {
            tolerable_failed: 1,
            ..config(None)
        },
        &[5],
        6,
        "fail 5 Expired; fail 3 Declined
         state => pending=[] next=6 store=[5] failures=0 due=-
         fail 6 Declined; fail 6 Expired; succeed 4; fail 7 Subsumed
         state => pending=[] next=6 store=[5] failures=1 due=-
         fail 8 AsyncException => t=0 fail-job 8 AsyncException
         state => pending=[] next=6 store=[5] failures=0 due=-
         fail 9 FinalizeFailure; fail 10 FinalizeFailure
         state => pending=[] next=6 store=[5] failures=0 due=-
         succeed 10; fail 8 Expired
         state => pending=[] next=6 store=[5] failures=0 due=-",
    );
}

#[test]
fn completion_persists_metadata_then_store_then_subsumes_notifies_and_retires() {
    // `CheckpointCoordinator#completePendingCheckpoint`: 2 enters the store and is announced
    // only after its metadata and the store are persisted; the older 1 is subsumed before the
    // notification, the newer 3 stays pending. `CheckpointSubsumeHelper`: keeping two, the
    // third completion (4) discards the oldest completed (2).
    check(
        CheckpointConfig { max_concurrent: 3, retained: 2, ..config(Some(100)) },
        "start 0; to 200 => t=0 counter, trigger 1 | t=100 counter, trigger 2 | t=200 counter, trigger 3
         hold; ack-all 2 => t=200 metadata 2
         reply ok        => t=200 store 2
         state           => pending=[1, 2, 3] next=4 store=[] failures=0 due=300
         reply ok        => t=200 abort 1 Subsumed, complete 2
         state           => pending=[3] next=4 store=[2] failures=0 due=300
         release; ack-all 3 => t=200 metadata 3, store 3, complete 3
         to 300; ack-all 4  => t=300 counter, trigger 4 | t=300 metadata 4, store 4, retire 2, complete 4
         state           => pending=[] next=5 store=[3, 4] failures=0 due=400",
    );
}

#[test]
fn a_failed_metadata_or_store_write_aborts_without_counting() {
    // Flink's `CheckpointFailureManager#checkFailureCounter` ignores FINALIZE_CHECKPOINT_FAILURE
    // (FLINK-32347): either persist failing aborts that checkpoint, nothing enters the store,
    // and even with zero tolerated failures the job keeps running; the next one completes.
    check(
        CheckpointConfig {
            tolerable_failed: 0,
            ..config(Some(100))
        },
        "start 0; to 0   => t=0 counter, trigger 1
         hold; ack-all 1 => t=0 metadata 1
         reply fail      => t=0 abort 1 FinalizeFailure
         release; to 100 => t=100 counter, trigger 2
         hold; ack-all 2 => t=100 metadata 2
         reply ok        => t=100 store 2
         reply fail      => t=100 abort 2 FinalizeFailure
         state           => pending=[] next=3 store=[] failures=0 due=200
         release; to 200; ack-all 3 => t=200 counter, trigger 3 | t=200 metadata 3, store 3, complete 3",
    );
}

#[test]
fn ids_continue_the_counter_and_every_attempt_consumes_one() {
    // `CheckpointIDCounter`: resuming at 7, ids strictly increase; the aborted 7 and the attempt
    // 9 whose counter write failed keep their ids; that failure triggers nothing and is not
    // counted (`CheckpointFailureManager#checkFailureCounter`).
    check_from(
        CheckpointConfig {
            tolerable_failed: 0,
            ..config(Some(100))
        },
        &[5],
        7,
        "start 0; to 0                    => t=0 counter, trigger 7
         decline 1 7 DeclinedTaskNotReady => t=0 abort 7 DeclinedTaskNotReady
         to 100                           => t=100 counter, trigger 8
         ack-all 8                        => t=100 metadata 8, store 8, retire 5, complete 8
         hold; to 200                     => t=200 counter
         reply fail                       => t=200 skip 9 TriggerFailure
         state                            => pending=[] next=10 store=[8] failures=0 due=300
         release; to 300                  => t=300 counter, trigger 10",
    );
}

#[test]
fn stop_aborts_collecting_checkpoints_and_ends_triggering() {
    // `CheckpointCoordinator#stopCheckpointScheduler`: the failover aborts 2 (uncounted); 1,
    // already being finalized, settles and completes; nothing is triggered afterwards and late
    // acks are ignored.
    check(
        CheckpointConfig {
            max_concurrent: 2,
            tolerable_failed: 0,
            ..config(Some(100))
        },
        "start 0; to 100  => t=0 counter, trigger 1 | t=100 counter, trigger 2
         hold; ack-all 1  => t=100 metadata 1
         stop JobFailover => t=100 abort 2 JobFailover
         release          => t=100 store 1, complete 1
         ack 0 2; to 1000
         state            => pending=[] next=3 store=[1] failures=0 due=-",
    );
}

#[test]
fn the_final_checkpoint_is_requested_until_one_triggered_after_the_request_completes() {
    // Without periodic checkpointing the request triggers at once and keeps a checkpoint coming
    // until one completes (marked final); then nothing more, not even on a second request.
    // With 1 pending at the request, 1 is not the final one: 2 follows at once, ignoring the min
    // pause (it is not periodic, `CheckpointRequestDecider`), and after 2 periodic triggering
    // stops; the periodic timer repeats 2's notification instead, for tasks whose notification
    // was lost.
    check(
        config(None),
        "start 0; to 1000; final           => t=1000 counter, trigger 1
         decline 1 1 DeclinedTaskNotReady  => t=1000 abort 1 DeclinedTaskNotReady, counter, trigger 2
         ack-all 2                         => t=1000 metadata 2, store 2, complete 2 final
         final; to 100000
         state                             => pending=[] next=3 store=[2] failures=0 due=-",
    );
    check(
        CheckpointConfig {
            min_pause_ticks: 90,
            ..config(Some(100))
        },
        "start 0; to 50; final => t=0 counter, trigger 1
         ack-all 1             => t=50 metadata 1, store 1, complete 1, counter, trigger 2
         to 100; ack-all 2     => t=100 metadata 2, store 2, retire 1, complete 2 final
         to 350                => t=200 notify-again 2 final | t=300 notify-again 2 final
         state                 => pending=[] next=3 store=[2] failures=0 due=400",
    );
}
