//! What each operator does to records, and the state it snapshots.
//!
//! An [`Operator`] is pure computation over its [`OperatorState`]: the task feeds it records
//! and watermarks and routes what it emits. Sources read their log; sinks turn records into
//! requests to the sink system.

use crate::bugs::SeededBug;
use crate::ids::{Attempt, CheckpointId, EventTime, Key, Offset, OperatorId, PartitionId, TaskId};
use crate::job::{AggregateFn, FilterFn, InputSide, MapFn, OperatorKind, SourceLog, TaskSpec};
use crate::record::{InputRef, Lane, Origin, Record, StreamEvent};
use crate::sink::{SinkRequest, TransactionId, TwoPhaseCommitState, WriteId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The snapshot-able state of one operator subtask.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OperatorState {
    /// A source: the next offset to read in each of its partitions.
    Source {
        /// Next offset per partition.
        offsets: BTreeMap<PartitionId, Offset>,
    },
    /// Map and filter keep nothing.
    Stateless,
    /// A keyed aggregate: one value per key (keyed value state).
    Keyed {
        /// The aggregate per key.
        values: BTreeMap<Key, i64>,
    },
    /// Tumbling windows not yet fired, by (window start, key).
    Windows {
        /// The aggregate per open window.
        #[serde(with = "pairs")]
        windows: BTreeMap<(EventTime, Key), i64>,
    },
    /// A keyed co-sum: the running sum of each input per key.
    CoSum {
        /// (first input's sum, second input's sum) per key.
        sums: BTreeMap<Key, (i64, i64)>,
    },
    /// A two-phase-commit sink's transactions.
    TwoPhaseCommitSink(TwoPhaseCommitState),
    /// A plain sink keeps nothing.
    PlainSink,
    /// A keyed chain: the hash chain of each key's values per lane.
    Chains {
        /// The chain per (key, lane).
        #[serde(with = "pairs")]
        chains: BTreeMap<(Key, Lane), i64>,
    },
}

/// A map whose keys are tuples, as a sequence of (key, value) pairs: JSON (a trace written by
/// `run --trace`) has only strings for map keys. Bincode writes the same bytes either way.
mod pairs {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::collections::BTreeMap;

    pub fn serialize<S: Serializer, K: Serialize, V: Serialize>(
        map: &BTreeMap<K, V>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(map)
    }

    pub fn deserialize<'de, D, K, V>(deserializer: D) -> Result<BTreeMap<K, V>, D::Error>
    where
        D: Deserializer<'de>,
        K: Deserialize<'de> + Ord,
        V: Deserialize<'de>,
    {
        Ok(Vec::<(K, V)>::deserialize(deserializer)?
            .into_iter()
            .collect())
    }
}

/// What an operator emitted while handling one input.
#[derive(Debug, Default)]
pub struct Emitted {
    /// Records for the downstream operators.
    pub records: Vec<Record>,
    /// Requests for the sink system (sinks only), in order.
    pub sink: Vec<SinkRequest>,
}

/// A sink's actions after a restore (Flink's `TwoPhaseCommitSinkFunction#initializeState`).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RecoveredTransactions {
    /// Pre-committed transactions to commit again (idempotent).
    pub commit: Vec<TransactionId>,
    /// The open transaction of the failed attempt, to abort.
    pub abort: Option<TransactionId>,
}

/// What a sink's snapshot waits for before it is acknowledged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SinkWait {
    /// A 2PC sink: the pre-commit of its transaction.
    PreCommit(TransactionId),
    /// A plain sink: the confirmation of this write (and so of all before it).
    Written(WriteId),
}

/// One operator subtask at work.
#[derive(Debug)]
pub struct Operator {
    kind: OperatorKind,
    state: OperatorState,
    /// Records a sink received since its last write to the sink system.
    sink_buffer: Vec<Record>,
    /// A plain sink's writes so far in this attempt.
    plain_writes: u64,
    attempt: Attempt,
    task: TaskId,
    operator: OperatorId,
    /// Seeded bug [`ReusedTransactionId`](SeededBug::ReusedTransactionId).
    reuses_transaction_id: bool,
    /// Seeded bug [`CommitOutOfOrder`](SeededBug::CommitOutOfOrder).
    commits_out_of_order: bool,
}

/// A state that does not belong to this operator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("task {task}: snapshot holds {found} state, the operator is a {expected}")]
pub struct StateMismatch {
    pub task: TaskId,
    /// What the snapshot holds.
    pub found: &'static str,
    /// What the operator needs.
    pub expected: &'static str,
}

impl Operator {
    /// A fresh operator for `spec` in `attempt`.
    pub fn new(spec: &TaskSpec, attempt: Attempt) -> Operator {
        let state = match &spec.kind {
            OperatorKind::Source { .. } => OperatorState::Source {
                offsets: spec.partitions.iter().map(|&p| (p, Offset(0))).collect(),
            },
            OperatorKind::Map(_) | OperatorKind::Filter(_) => OperatorState::Stateless,
            OperatorKind::KeyedAggregate(_) => OperatorState::Keyed {
                values: BTreeMap::new(),
            },
            OperatorKind::TumblingWindow { .. } => OperatorState::Windows {
                windows: BTreeMap::new(),
            },
            OperatorKind::KeyedCoSum => OperatorState::CoSum {
                sums: BTreeMap::new(),
            },
            OperatorKind::KeyedChain => OperatorState::Chains {
                chains: BTreeMap::new(),
            },
            OperatorKind::TwoPhaseCommitSink => {
                OperatorState::TwoPhaseCommitSink(TwoPhaseCommitState::new(spec.id, attempt))
            }
            OperatorKind::PlainSink => OperatorState::PlainSink,
        };
        Operator {
            kind: spec.kind.clone(),
            state,
            sink_buffer: Vec::new(),
            plain_writes: 0,
            attempt,
            task: spec.id,
            operator: spec.operator,
            reuses_transaction_id: spec.has_bug(SeededBug::ReusedTransactionId),
            commits_out_of_order: spec.has_bug(SeededBug::CommitOutOfOrder),
        }
    }

    /// An operator restored from `state` in a new `attempt`; a sink also says which
    /// transactions to re-commit and abort.
    pub fn restore(
        spec: &TaskSpec,
        attempt: Attempt,
        state: OperatorState,
    ) -> Result<(Operator, RecoveredTransactions), StateMismatch> {
        let mut operator = Operator::new(spec, attempt);
        if std::mem::discriminant(&operator.state) != std::mem::discriminant(&state) {
            let (found, expected) = (state_name(&state), state_name(&operator.state));
            return Err(StateMismatch {
                task: spec.id,
                found,
                expected,
            });
        }
        if let OperatorState::Source { offsets } = &state {
            let restored: Vec<PartitionId> = offsets.keys().copied().collect();
            if restored != spec.partitions {
                return Err(StateMismatch {
                    task: spec.id,
                    found: "other partitions'",
                    expected: "source",
                });
            }
        }
        operator.state = state;
        let mut recovered = RecoveredTransactions::default();
        if let OperatorState::TwoPhaseCommitSink(sink) = &mut operator.state {
            let (commit, abort) = sink.recover(attempt);
            recovered = RecoveredTransactions {
                commit,
                abort: Some(abort),
            };
        }
        Ok((operator, recovered))
    }

    /// The state to snapshot. A 2PC sink's state is complete only after
    /// [`snapshot_sink`](Self::snapshot_sink) pre-committed and began the next transaction.
    pub fn state(&self) -> &OperatorState {
        &self.state
    }

    /// Handles a record on `side` (not for sources).
    pub fn process(&mut self, side: InputSide, record: Record, out: &mut Emitted) {
        match (&self.kind, &mut self.state) {
            (OperatorKind::Map(function), _) => out.records.push(Record {
                value: map(*function, record.value),
                ..record
            }),
            (OperatorKind::Filter(FilterFn::DropValueMultiplesOf(n)), _) => {
                if record.value % n != 0 {
                    out.records.push(record);
                }
            }
            (OperatorKind::KeyedAggregate(function), OperatorState::Keyed { values }) => {
                let value = aggregate(*function, values.get(&record.key).copied(), record.value);
                values.insert(record.key, value);
                out.records.push(Record { value, ..record });
            }
            (
                OperatorKind::TumblingWindow {
                    size,
                    aggregate: function,
                },
                OperatorState::Windows { windows },
            ) => {
                let start = EventTime(record.event_time.0 - record.event_time.0 % size);
                let slot = windows.get(&(start, record.key)).copied();
                windows.insert(
                    (start, record.key),
                    aggregate(*function, slot, record.value),
                );
            }
            (OperatorKind::KeyedCoSum, OperatorState::CoSum { sums }) => {
                let sum = sums.entry(record.key).or_insert((0, 0));
                match side {
                    InputSide::First => sum.0 = sum.0.wrapping_add(record.value),
                    InputSide::Second => sum.1 = sum.1.wrapping_add(record.value),
                }
                out.records.push(Record {
                    value: sum.0.wrapping_add(sum.1),
                    ..record
                });
            }
            (OperatorKind::KeyedChain, OperatorState::Chains { chains }) => {
                let slot = chains
                    .entry((record.key, record.origin.lane()))
                    .or_insert(0);
                *slot = chain(*slot, record.value);
                out.records.push(Record {
                    value: *slot,
                    ..record
                });
            }
            (OperatorKind::TwoPhaseCommitSink | OperatorKind::PlainSink, _) => {
                self.sink_buffer.push(record)
            }
            (kind, state) => {
                unreachable!("operator {kind:?} with state {state:?} cannot process records")
            }
        }
    }

    /// The combined input watermark advanced to `watermark`: fire the windows it closes.
    pub fn on_watermark(&mut self, watermark: EventTime, out: &mut Emitted) {
        let (OperatorKind::TumblingWindow { size, .. }, OperatorState::Windows { windows }) =
            (&self.kind, &mut self.state)
        else {
            return;
        };
        // A window [start, start + size) is complete once the watermark reaches its last time.
        while let Some((&(start, key), &value)) = windows.first_key_value() {
            let last = EventTime(start.0 + size - 1);
            if last > watermark {
                break;
            }
            windows.pop_first();
            out.records.push(Record {
                key,
                value,
                event_time: last,
                origin: Origin::Window { key, start },
            });
        }
    }

    /// Moves records a sink buffered into a write request (call at the end of each step and
    /// before a snapshot, so writes precede their pre-commit or the snapshot's wait).
    pub fn flush_sink(&mut self, out: &mut Emitted) {
        if self.sink_buffer.is_empty() {
            return;
        }
        let records = std::mem::take(&mut self.sink_buffer);
        let request = match &self.state {
            OperatorState::TwoPhaseCommitSink(sink) => SinkRequest::Write {
                transaction: sink.current,
                records,
            },
            OperatorState::PlainSink => {
                let write = WriteId {
                    sink: self.task,
                    attempt: self.attempt,
                    sequence: self.plain_writes,
                };
                self.plain_writes += 1;
                SinkRequest::WriteCommitted { write, records }
            }
            state => unreachable!("only sinks buffer records, not {state:?}"),
        };
        out.sink.push(request);
    }

    /// For a sink, at a snapshot: flush, and for a 2PC sink pre-commit the current transaction
    /// under `checkpoint` and begin the next. Returns what the snapshot waits for: the
    /// pre-commit, or a plain sink's last write.
    pub fn snapshot_sink(
        &mut self,
        checkpoint: CheckpointId,
        out: &mut Emitted,
    ) -> Option<SinkWait> {
        self.flush_sink(out);
        match &mut self.state {
            OperatorState::TwoPhaseCommitSink(sink) => {
                let transaction = sink.snapshot(checkpoint);
                if self.reuses_transaction_id {
                    // Seeded bug: the next records go into the transaction just pre-committed.
                    sink.current = transaction;
                }
                out.sink.push(SinkRequest::PreCommit { transaction });
                Some(SinkWait::PreCommit(transaction))
            }
            OperatorState::PlainSink => {
                let last = self.plain_writes.checked_sub(1)?;
                Some(SinkWait::Written(WriteId {
                    sink: self.task,
                    attempt: self.attempt,
                    sequence: last,
                }))
            }
            _ => None,
        }
    }

    /// For a 2PC sink: commit every transaction pre-committed up to `checkpoint`.
    pub fn notify_complete(
        &mut self,
        checkpoint: CheckpointId,
        out: &mut Emitted,
    ) -> Vec<TransactionId> {
        let OperatorState::TwoPhaseCommitSink(sink) = &mut self.state else {
            return Vec::new();
        };
        let mut committed = sink.complete(checkpoint);
        if self.commits_out_of_order {
            // Seeded bug: the newest transaction first, so an older one commits after it.
            committed.reverse();
        }
        out.sink.extend(
            committed
                .iter()
                .map(|&transaction| SinkRequest::Commit { transaction }),
        );
        committed
    }

    /// For a source: reads up to `budget` records round-robin over its partitions and appends
    /// them, followed by the new watermark if it advanced. Returns whether the log is exhausted.
    pub fn read_source(
        &mut self,
        budget: u32,
        events: &mut Vec<StreamEvent>,
        watermark: &mut EventTime,
    ) -> bool {
        let (OperatorKind::Source { log, .. }, OperatorState::Source { offsets }) =
            (&self.kind, &mut self.state)
        else {
            unreachable!("only sources read")
        };
        let log: &Arc<SourceLog> = log;
        let mut read = 0;
        let mut progressed = true;
        while read < budget && progressed {
            progressed = false;
            for (&partition, offset) in offsets.iter_mut() {
                if read == budget {
                    break;
                }
                let Some(entry) = log.partitions[usize::from(partition.0)].get(offset.0 as usize)
                else {
                    continue;
                };
                let origin = Origin::Input(InputRef {
                    source: self.operator,
                    partition,
                    offset: *offset,
                });
                events.push(StreamEvent::Record(Record {
                    key: entry.key,
                    value: entry.value,
                    event_time: entry.event_time,
                    origin,
                }));
                *offset = offset.next();
                read += 1;
                progressed = true;
            }
        }
        // No record with an event time below the next unread one follows (logs are ordered).
        let next_times = offsets
            .iter()
            .filter_map(|(p, o)| log.partitions[usize::from(p.0)].get(o.0 as usize));
        let exhausted = next_times.clone().next().is_none();
        let new_watermark = next_times
            .map(|r| EventTime(r.event_time.0.saturating_sub(1)))
            .min()
            .unwrap_or(EventTime::MAX);
        if new_watermark > *watermark {
            *watermark = new_watermark;
            events.push(StreamEvent::Watermark(new_watermark));
        }
        exhausted
    }
}

fn state_name(state: &OperatorState) -> &'static str {
    match state {
        OperatorState::Source { .. } => "source",
        OperatorState::Stateless => "stateless",
        OperatorState::Keyed { .. } => "keyed",
        OperatorState::Windows { .. } => "window",
        OperatorState::CoSum { .. } => "co-sum",
        OperatorState::TwoPhaseCommitSink(_) => "two-phase-commit sink",
        OperatorState::PlainSink => "plain sink",
        OperatorState::Chains { .. } => "chain",
    }
}

/// Applies a map function.
pub fn map(function: MapFn, value: i64) -> i64 {
    match function {
        MapFn::AddConstant(n) => value.wrapping_add(n),
        MapFn::MultiplyBy(n) => value.wrapping_mul(n),
    }
}

/// The next link of a hash chain (an empty chain is 0): unlike a sum, swapping two values
/// changes the result.
pub fn chain(previous: i64, value: i64) -> i64 {
    const ODD: u64 = 0x9e37_79b9_7f4a_7c15; // 2^64 / golden ratio: spreads every bit
    ((previous.rotate_left(23) ^ value) as u64).wrapping_mul(ODD) as i64
}

/// Folds `value` into the aggregate `previous` (absent for a key's first value).
pub fn aggregate(function: AggregateFn, previous: Option<i64>, value: i64) -> i64 {
    match (function, previous) {
        (AggregateFn::Sum, None) => value,
        (AggregateFn::Sum, Some(sum)) => sum.wrapping_add(value),
        (AggregateFn::Count, None) => 1,
        (AggregateFn::Count, Some(count)) => count + 1,
        (AggregateFn::Max, None) => value,
        (AggregateFn::Max, Some(max)) => max.max(value),
    }
}
