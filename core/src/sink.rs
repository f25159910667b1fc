//! The external transactional sink system and the two-phase-commit protocol sinks speak to it.
//!
//! The sink system is outside the failure domain (like a Kafka cluster): its committed output
//! is what the checkers read. Transactions move Open → PreCommitted → Committed, or to Aborted;
//! commit is idempotent, so a sink may re-commit after a restore (Flink's
//! `TwoPhaseCommitSinkFunction#initializeState`).

use crate::ids::{Attempt, CheckpointId, TaskId, Tick};
use crate::record::Record;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The identity of one transaction. Unique over the job's whole life: a new one per checkpoint
/// and per attempt (reusing one is FLINK-8132).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TransactionId {
    /// The sink subtask that owns it.
    pub sink: TaskId,
    /// The attempt that began it.
    pub attempt: Attempt,
    /// Its number within the sink's life, continued across restores.
    pub sequence: u64,
}

impl std::fmt::Display for TransactionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "txn {}/{}/#{}", self.sink, self.attempt, self.sequence)
    }
}

/// The identity of one batch of records a plain (at-least-once) sink writes: the sink system
/// confirms each, and a snapshot waits for the writes before its barrier (Flink's
/// at-least-once sinks flush in `snapshotState`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct WriteId {
    /// The sink subtask.
    pub sink: TaskId,
    /// The attempt that wrote it (a confirmation for an older attempt is ignored).
    pub attempt: Attempt,
    /// Its number within the attempt.
    pub sequence: u64,
}

/// A request from a sink task.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SinkRequest {
    /// Appends records to an open transaction (beginning it if new).
    Write {
        transaction: TransactionId,
        records: Vec<Record>,
    },
    /// Flushes a transaction; the sink system answers [`SinkReply::PreCommitted`].
    PreCommit { transaction: TransactionId },
    /// Makes a transaction's records visible. Idempotent.
    Commit { transaction: TransactionId },
    /// Drops a transaction's records.
    Abort { transaction: TransactionId },
    /// A plain (at-least-once) sink's records, visible at once; answered by
    /// [`SinkReply::Written`].
    WriteCommitted {
        write: WriteId,
        records: Vec<Record>,
    },
}

/// An answer from the sink system.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SinkReply {
    /// The transaction is flushed and can be committed later.
    PreCommitted { transaction: TransactionId },
    /// The commit request was applied: the transaction's records are visible (or the request
    /// was an anomaly, recorded as such). A sink's commit is a synchronous call in Flink, so a
    /// task counts its commits done only on this answer.
    Committed { transaction: TransactionId },
    /// A plain sink's write is applied (and so are its earlier ones: requests are applied in
    /// order).
    Written { write: WriteId },
}

impl std::fmt::Display for SinkRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SinkRequest::Write {
                transaction,
                records,
            } => write!(f, "write {} records to {transaction}", records.len()),
            SinkRequest::PreCommit { transaction } => write!(f, "pre-commit {transaction}"),
            SinkRequest::Commit { transaction } => write!(f, "commit {transaction}"),
            SinkRequest::Abort { transaction } => write!(f, "abort {transaction}"),
            SinkRequest::WriteCommitted { records, .. } => {
                write!(f, "write {} records", records.len())
            }
        }
    }
}

impl std::fmt::Display for SinkReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SinkReply::PreCommitted { transaction } => write!(f, "{transaction} pre-committed"),
            SinkReply::Committed { transaction } => write!(f, "{transaction} committed"),
            SinkReply::Written { .. } => f.write_str("written"),
        }
    }
}

/// One record in the committed output.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommittedRecord {
    /// The sink subtask that wrote it.
    pub sink: TaskId,
    /// The transaction it was committed in (none for a plain sink).
    pub transaction: Option<TransactionId>,
    pub record: Record,
}

/// Something the sink system was asked to do that a correct sink never asks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SinkAnomaly {
    /// A write into a transaction that was already committed or aborted: the records are lost.
    WriteAfterEnd {
        transaction: TransactionId,
        /// Records dropped.
        records: u64,
    },
    /// A commit of a transaction that was aborted: its records are lost.
    CommitAfterAbort { transaction: TransactionId },
    /// A commit of a transaction the system never saw.
    CommitUnknown { transaction: TransactionId },
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Transaction {
    Open(Vec<Record>),
    PreCommitted(Vec<Record>),
    Committed,
    Aborted,
}

/// A transaction the sink system ended: committed (its records became visible) or aborted
/// (its records dropped).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransactionEnd {
    pub at: Tick,
    pub transaction: TransactionId,
    pub committed: bool,
    /// The records it made visible, or dropped.
    pub records: u64,
}

/// The external sink system as a node.
#[derive(Clone, Debug, Default)]
pub struct SinkSystem {
    transactions: BTreeMap<TransactionId, Transaction>,
    committed: Vec<CommittedRecord>,
    /// Its log of commits and aborts: what a witness reads to say when an effect became
    /// visible or was dropped (a sink may do either without saying so in the trace, as a
    /// seeded bug does).
    log: Vec<TransactionEnd>,
    anomalies: Vec<SinkAnomaly>,
}

impl SinkSystem {
    /// The committed output, in commit order.
    pub fn committed(&self) -> &[CommittedRecord] {
        &self.committed
    }

    /// The transactions committed or aborted with records, in order.
    pub fn log(&self) -> &[TransactionEnd] {
        &self.log
    }

    /// Requests a correct sink never makes.
    pub fn anomalies(&self) -> &[SinkAnomaly] {
        &self.anomalies
    }

    /// Transactions holding records that were neither committed nor aborted (left behind by
    /// failed attempts, or lost).
    pub fn dangling_transactions(&self) -> Vec<TransactionId> {
        self.transactions
            .iter()
            .filter(|(_, t)| matches!(t, Transaction::Open(r) | Transaction::PreCommitted(r) if !r.is_empty()))
            .map(|(&id, _)| id)
            .collect()
    }

    /// Applies one request, arrived at `now`; returns the reply to send, if any.
    pub fn apply(&mut self, now: Tick, request: SinkRequest) -> Option<SinkReply> {
        match request {
            SinkRequest::Write {
                transaction,
                records,
            } => {
                let entry = self
                    .transactions
                    .entry(transaction)
                    .or_insert(Transaction::Open(Vec::new()));
                match entry {
                    Transaction::Open(buffer) | Transaction::PreCommitted(buffer) => {
                        buffer.extend(records)
                    }
                    Transaction::Committed | Transaction::Aborted => {
                        let records = records.len() as u64;
                        self.anomalies.push(SinkAnomaly::WriteAfterEnd {
                            transaction,
                            records,
                        });
                    }
                }
                None
            }
            SinkRequest::PreCommit { transaction } => {
                let entry = self
                    .transactions
                    .entry(transaction)
                    .or_insert(Transaction::Open(Vec::new()));
                if let Transaction::Open(buffer) = entry {
                    *entry = Transaction::PreCommitted(std::mem::take(buffer));
                }
                Some(SinkReply::PreCommitted { transaction })
            }
            SinkRequest::Commit { transaction } => {
                self.commit(now, transaction);
                Some(SinkReply::Committed { transaction })
            }
            SinkRequest::Abort { transaction } => {
                match self.transactions.get(&transaction) {
                    Some(Transaction::Committed) => {}
                    ended => {
                        if let Some(
                            Transaction::Open(records) | Transaction::PreCommitted(records),
                        ) = ended
                        {
                            self.log.push(TransactionEnd {
                                at: now,
                                transaction,
                                committed: false,
                                records: records.len() as u64,
                            });
                        }
                        self.transactions.insert(transaction, Transaction::Aborted);
                    }
                }
                None
            }
            SinkRequest::WriteCommitted { write, records } => {
                let records = records.into_iter().map(|record| CommittedRecord {
                    sink: write.sink,
                    transaction: None,
                    record,
                });
                self.committed.extend(records);
                Some(SinkReply::Written { write })
            }
        }
    }

    fn commit(&mut self, now: Tick, transaction: TransactionId) {
        let Some(state) = self.transactions.get_mut(&transaction) else {
            self.anomalies
                .push(SinkAnomaly::CommitUnknown { transaction });
            return;
        };
        match std::mem::replace(state, Transaction::Committed) {
            Transaction::Open(records) | Transaction::PreCommitted(records) => {
                self.log.push(TransactionEnd {
                    at: now,
                    transaction,
                    committed: true,
                    records: records.len() as u64,
                });
                let sink = transaction.sink;
                let records = records.into_iter().map(|record| CommittedRecord {
                    sink,
                    transaction: Some(transaction),
                    record,
                });
                self.committed.extend(records);
            }
            Transaction::Committed => {}
            Transaction::Aborted => {
                *state = Transaction::Aborted;
                self.anomalies
                    .push(SinkAnomaly::CommitAfterAbort { transaction });
            }
        }
    }
}

/// The state of a two-phase-commit sink subtask (Flink's `TwoPhaseCommitSinkFunction`).
///
/// Invariant: `pending` is ordered by checkpoint id, and no transaction appears twice.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TwoPhaseCommitState {
    /// The transaction records are written into now.
    pub current: TransactionId,
    /// Pre-committed transactions waiting for their checkpoint to complete.
    pub pending: Vec<(CheckpointId, TransactionId)>,
    /// The sequence number the next transaction gets.
    pub next_sequence: u64,
}

impl TwoPhaseCommitState {
    /// A fresh sink: transaction 0 of this attempt is open.
    pub fn new(sink: TaskId, attempt: Attempt) -> TwoPhaseCommitState {
        TwoPhaseCommitState {
            current: TransactionId {
                sink,
                attempt,
                sequence: 0,
            },
            pending: Vec::new(),
            next_sequence: 1,
        }
    }

    /// `snapshotState`: pre-commits the current transaction under `checkpoint` and begins the
    /// next one. Returns the transaction to pre-commit.
    pub fn snapshot(&mut self, checkpoint: CheckpointId) -> TransactionId {
        if let Some(&(last, _)) = self.pending.last() {
            assert!(
                checkpoint > last,
                "sink snapshots in checkpoint order: {checkpoint} after {last}"
            );
        }
        let pre_committed = self.current;
        self.pending.push((checkpoint, pre_committed));
        self.current = TransactionId {
            sequence: self.next_sequence,
            ..pre_committed
        };
        self.next_sequence += 1;
        pre_committed
    }

    /// `notifyCheckpointComplete`: every pending transaction with a checkpoint id up to
    /// `checkpoint`, in order, leaves `pending` and is returned to be committed.
    pub fn complete(&mut self, checkpoint: CheckpointId) -> Vec<TransactionId> {
        let split = self.pending.partition_point(|&(id, _)| id <= checkpoint);
        self.pending
            .drain(..split)
            .map(|(_, transaction)| transaction)
            .collect()
    }

    /// `initializeState` on restore: returns (transactions to re-commit, the open transaction to
    /// abort) and begins a new transaction in `attempt`.
    pub fn recover(&mut self, attempt: Attempt) -> (Vec<TransactionId>, TransactionId) {
        let commit: Vec<TransactionId> = self
            .pending
            .drain(..)
            .map(|(_, transaction)| transaction)
            .collect();
        let abort = self.current;
        self.current = TransactionId {
            sink: abort.sink,
            attempt,
            sequence: self.next_sequence,
        };
        self.next_sequence += 1;
        (commit, abort)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{EventTime, Key, Offset, OperatorId, PartitionId};
    use crate::record::{InputRef, Origin};

    fn record(offset: u64) -> Record {
        let origin = Origin::Input(InputRef {
            source: OperatorId(0),
            partition: PartitionId(0),
            offset: Offset(offset),
        });
        Record {
            key: Key(1),
            value: 1,
            event_time: EventTime(0),
            origin,
        }
    }

    #[test]
    fn two_phase_commit_recovers_pending_and_aborts_open() {
        let mut system = SinkSystem::default();
        let mut sink = TwoPhaseCommitState::new(TaskId(7), Attempt(1));
        let first = sink.current;
        system.apply(
            Tick(0),
            SinkRequest::Write {
                transaction: first,
                records: vec![record(0)],
            },
        );
        assert_eq!(sink.snapshot(CheckpointId(1)), first);
        system.apply(Tick(0), SinkRequest::PreCommit { transaction: first });
        let second = sink.current;
        system.apply(
            Tick(0),
            SinkRequest::Write {
                transaction: second,
                records: vec![record(1)],
            },
        );
        assert_ne!(first, second, "a new transaction per checkpoint");
        assert!(
            system.committed().is_empty(),
            "nothing is visible before completion"
        );

        // The snapshot of checkpoint 1 is restored after a crash before the notification.
        let mut restored = sink.clone();
        let (commit, abort) = restored.recover(Attempt(2));
        assert_eq!((commit.clone(), abort), (vec![first], second));
        for transaction in commit {
            system.apply(Tick(0), SinkRequest::Commit { transaction });
        }
        system.apply(Tick(0), SinkRequest::Abort { transaction: abort });
        assert_eq!(
            system.committed().len(),
            1,
            "the pre-committed record is committed once"
        );
        assert_eq!(system.committed()[0].record, record(0));
        assert_eq!(restored.current.attempt, Attempt(2));
        assert_eq!(
            restored.current.sequence, 2,
            "sequences continue across restores"
        );

        // A late re-commit of the same transaction is a no-op (idempotent).
        system.apply(Tick(0), SinkRequest::Commit { transaction: first });
        assert_eq!(system.committed().len(), 1);
        assert!(system.anomalies().is_empty());
    }

    #[test]
    fn completion_commits_everything_up_to_the_id_in_order() {
        let mut sink = TwoPhaseCommitState::new(TaskId(0), Attempt(1));
        let a = sink.snapshot(CheckpointId(2));
        let b = sink.snapshot(CheckpointId(3));
        let c = sink.snapshot(CheckpointId(5));
        assert_eq!(
            sink.complete(CheckpointId(4)),
            vec![a, b],
            "an aborted 2 is covered by 4"
        );
        assert_eq!(
            sink.complete(CheckpointId(4)),
            vec![],
            "a repeated notification commits nothing"
        );
        assert_eq!(sink.complete(CheckpointId(9)), vec![c]);
    }

    #[test]
    fn commit_after_abort_is_an_anomaly() {
        let mut system = SinkSystem::default();
        let transaction = TransactionId {
            sink: TaskId(0),
            attempt: Attempt(1),
            sequence: 0,
        };
        system.apply(
            Tick(0),
            SinkRequest::Write {
                transaction,
                records: vec![record(0)],
            },
        );
        system.apply(Tick(0), SinkRequest::Abort { transaction });
        system.apply(Tick(0), SinkRequest::Commit { transaction });
        assert_eq!(
            system.anomalies(),
            &[SinkAnomaly::CommitAfterAbort { transaction }]
        );
        assert!(system.committed().is_empty());
    }
}
