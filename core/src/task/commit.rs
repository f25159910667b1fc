//! A sink task's commits: pre-commits and writes confirmed, transactions committed up to a
//! completed checkpoint (also one an abort notice carries), and finishing after the final
//! commit is confirmed.

use super::{Task, TaskEffect, TaskStatus, ABORTED_EARLY_MAX};
use crate::bugs::SeededBug;
use crate::ids::CheckpointId;
use crate::operator::{Emitted, SinkWait};
use crate::probes::{self, Probe};
use crate::sink::{TransactionId, WriteId};
use crate::trace::EngineEvent;

impl Task {
    /// The sink system confirmed a pre-commit.
    pub fn on_pre_committed(&mut self, transaction: TransactionId, out: &mut Vec<TaskEffect>) {
        self.sink_confirmed(|wait| wait == SinkWait::PreCommit(transaction), out);
    }

    /// The sink system applied a plain sink's write, and so every earlier one.
    pub fn on_written(&mut self, write: WriteId, out: &mut Vec<TaskEffect>) {
        self.latest_written = self.latest_written.max(Some(write.sequence));
        self.sink_confirmed(
            |wait| matches!(wait, SinkWait::Written(w) if w.sequence <= write.sequence),
            out,
        );
    }

    /// Acknowledges the snapshots whose sink wait `confirmed` ends, if they are stored.
    pub(super) fn sink_confirmed(
        &mut self,
        confirmed: impl Fn(SinkWait) -> bool,
        out: &mut Vec<TaskEffect>,
    ) {
        let ready: Vec<CheckpointId> = self
            .pending
            .iter_mut()
            .filter(|(_, p)| p.awaiting_sink.is_some_and(&confirmed))
            .map(|(&id, p)| {
                p.awaiting_sink = None;
                id
            })
            .collect();
        for checkpoint in ready {
            self.acknowledge_if_ready(checkpoint, out);
        }
    }

    /// The JobManager says `checkpoint` completed: commit side effects up to it
    /// (Flink's `TwoPhaseCommitSinkFunction#notifyCheckpointComplete`). After the job's final
    /// checkpoint the task finishes.
    pub fn on_notify_complete(
        &mut self,
        checkpoint: CheckpointId,
        final_checkpoint: bool,
        out: &mut Vec<TaskEffect>,
    ) {
        if self.status >= TaskStatus::Committing {
            return;
        }
        // Notifications are monotone; older ones are ignored (FLINK-24096). The final checkpoint's
        // may come twice: an abort of an older checkpoint subsumed by it carries it as the
        // latest completed, and may overtake its own notification, which alone says it is final.
        let repeated = checkpoint == self.latest_notified;
        if checkpoint < self.latest_notified || (repeated && !final_checkpoint) {
            return;
        }
        if !repeated {
            self.commit_up_to(checkpoint, out);
        }
        if final_checkpoint {
            // The final checkpoint was triggered after every source ended, so every task took
            // its snapshot after its own end of data.
            assert_eq!(
                self.status,
                TaskStatus::DataFinished,
                "{} finishes before its input ended",
                self.spec.id
            );
            self.status = TaskStatus::Committing;
            self.finish_if_committed(out);
        }
    }

    /// Commits the side effects of every checkpoint up to `checkpoint`, which completed.
    pub(super) fn commit_up_to(&mut self, checkpoint: CheckpointId, out: &mut Vec<TaskEffect>) {
        self.latest_notified = checkpoint;
        out.push(TaskEffect::Trace(EngineEvent::CheckpointNotified {
            task: self.spec.id,
            attempt: self.attempt,
            checkpoint,
        }));
        let mut emitted = Emitted::default();
        for transaction in self.operator.notify_complete(checkpoint, &mut emitted) {
            self.commits_in_flight.insert(transaction);
            out.push(TaskEffect::Trace(EngineEvent::Committed {
                task: self.spec.id,
                transaction,
            }));
        }
        self.emit(&mut emitted, out);
        // Older snapshots still in flight are subsumed by this completion.
        self.pending
            .retain(|&id, pending| id > checkpoint || pending.savepoint);
        if self
            .recording
            .as_ref()
            .is_some_and(|r| r.checkpoint() <= checkpoint && !r.savepoint)
        {
            self.recording = None;
        }
    }

    /// The sink system confirmed a commit. The confirmation may answer a request of an earlier
    /// attempt: commits are idempotent, so it still means the transaction is committed.
    pub fn on_committed(&mut self, transaction: TransactionId, out: &mut Vec<TaskEffect>) {
        self.commits_in_flight.remove(&transaction);
        self.finish_if_committed(out);
    }

    pub(super) fn finish_if_committed(&mut self, out: &mut Vec<TaskEffect>) {
        if self.status == TaskStatus::Committing && self.commits_in_flight.is_empty() {
            self.status = TaskStatus::Finished;
            out.push(TaskEffect::Finished);
        }
    }

    /// The JobManager aborted `checkpoint`. A newer completed checkpoint is made up for first,
    /// in case its notification was lost (FLINK-21080); a barrier still to come is skipped.
    pub fn on_notify_aborted(
        &mut self,
        checkpoint: CheckpointId,
        latest_completed: Option<CheckpointId>,
        out: &mut Vec<TaskEffect>,
    ) {
        self.abort_local(checkpoint);
        if self.status >= TaskStatus::Committing {
            return; // The final checkpoint completed: nothing is left to make up for.
        }
        match latest_completed {
            // Seeded bug: the completion the notice carries is not made up for.
            Some(_) if self.spec.has_bug(SeededBug::LostNotificationNotCompensated) => {}
            Some(completed) => {
                if completed > self.latest_notified {
                    probes::hit(Probe::LostNotificationCompensated);
                }
                self.on_notify_complete(completed, false, out)
            }
            None => {}
        }
        out.push(TaskEffect::Trace(EngineEvent::AbortNotified {
            task: self.spec.id,
            attempt: self.attempt,
            checkpoint,
            latest_completed,
        }));
        if checkpoint > self.last_checkpoint {
            self.aborted_early.insert(checkpoint);
            if self.aborted_early.len() > ABORTED_EARLY_MAX {
                self.aborted_early.pop_first();
            }
        }
    }
}
