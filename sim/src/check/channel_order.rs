//! Channel order: every task processes each upstream channel's records in the order they were
//! sent, across restores (Flink's channels are FIFO, and jobs depend on it: last-value state,
//! sessions, deduplication). Two correct executions interleave *different* channels
//! differently, so the check looks only at what one channel carries.
//!
//! What the committed output shows of it: a source partition is read in offset order, and where
//! every record of that partition reaches a sink subtask over one chain of channels, FIFO at
//! every hop means the sink commits the partition's effects in increasing offset order, also
//! after a restore (exactly-once resumes after the last committed offset). A task that reorders
//! records within a channel, or replays restored in-flight records after newer ones, breaks it.
//! At-least-once sinks commit replayed records again, so their order restarts at each restore:
//! the check applies to exactly-once jobs.

use super::witness::{self, Finding, History};
use super::{at_end, Checker, JudgedRun, Judgement};
use super::{describe, summarize, summarize_findings, Property, Violation};
use snapsim_core::ids::{Offset, OperatorId, PartitionId, TaskId};
use snapsim_core::job::{ExecutionPlan, Partitioning};
use snapsim_core::record::{InputRef, Origin};
use snapsim_core::sink::{CommittedRecord, TransactionId};
use std::collections::{BTreeMap, BTreeSet};

/// The channel-order property of a run's committed output.
pub fn channel_order(committed: &[CommittedRecord], plan: &ExecutionPlan) -> Vec<Violation> {
    let messages = misordered(committed, plan).into_iter().map(|m| m.message);
    summarize(Property::ChannelOrder, messages.collect(), None)
}

/// An effect committed after one of a higher offset of its partition.
struct Misordered {
    message: String,
    input: InputRef,
    sink: TaskId,
    /// The transactions of the effect committed first (the higher offset) and of this one.
    transactions: Option<(TransactionId, TransactionId)>,
}

fn misordered(committed: &[CommittedRecord], plan: &ExecutionPlan) -> Vec<Misordered> {
    let ordered = partition_ordered(plan);
    type Last = (Offset, Option<TransactionId>);
    let mut last: BTreeMap<(TaskId, OperatorId, PartitionId), Last> = BTreeMap::new();
    let mut found = Vec::new();
    for record in committed {
        let sink = plan.tasks[record.sink.index()].operator;
        let Origin::Input(input) = record.record.origin else {
            continue;
        };
        if !ordered.contains(&sink) {
            continue;
        }
        let group = (record.sink, input.source, input.partition);
        match last.insert(group, (input.offset, record.transaction)) {
            // An equal offset is a duplicate, which the exactly-once check reports.
            Some((before, earlier)) if before > input.offset => found.push(Misordered {
                message: format!(
                    "{}: committed the effect of {} after the one of {before} of the same partition",
                    plan.tasks[record.sink.index()].name,
                    describe(&record.record.origin),
                ),
                input,
                sink: record.sink,
                transactions: earlier.zip(record.transaction),
            }),
            _ => {}
        }
    }
    found
}

/// Channel order as the run's checker judges it: each violation with its witness.
fn channel_order_witnessed(run: &JudgedRun) -> Vec<Violation> {
    let found = misordered(run.committed, run.plan);
    if found.is_empty() {
        return Vec::new();
    }
    let history = History::of(run.own_trace(), run.sink_log);
    let findings = found
        .into_iter()
        .map(|m| {
            let sink = &run.plan.tasks[m.sink.index()].name;
            let witness = m.transactions.and_then(|transactions| {
                witness::misordered(&history, run.plan, sink, transactions, Some(&m.input))
            });
            Finding {
                message: m.message,
                subject: describe(&Origin::Input(m.input)),
                witness,
            }
        })
        .collect();
    summarize_findings(Property::ChannelOrder, findings, None)
}

/// The operators at whose subtasks every source partition's records arrive over one chain of
/// channels. A source reads each partition at one subtask ("concentrated"); a forward edge
/// keeps a subtask's records on one channel; an all-to-all edge (key-by, rebalance) does only
/// from an operator where each partition is still concentrated, and keeps it concentrated only
/// into a single subtask; and no two inputs of an operator may carry records of one source.
fn partition_ordered(plan: &ExecutionPlan) -> BTreeSet<OperatorId> {
    // Operator edges, from the tasks' outputs.
    let mut edges: BTreeSet<(OperatorId, OperatorId, bool)> = BTreeSet::new();
    let mut parallelism: BTreeMap<OperatorId, u16> = BTreeMap::new();
    // Operators that one upstream operator feeds over two edges (both inputs of a co-sum).
    let mut fed_twice: BTreeSet<OperatorId> = BTreeSet::new();
    for task in &plan.tasks {
        parallelism.insert(task.operator, task.parallelism);
        let mut targets: BTreeSet<OperatorId> = BTreeSet::new();
        for output in &task.outputs {
            let forward = output.partitioning == Partitioning::Forward;
            let target = output
                .targets
                .first()
                .map(|(t, _)| plan.tasks[t.index()].operator);
            if let Some(target) = target.filter(|t| !targets.insert(*t)) {
                fed_twice.insert(target);
            }
            for (target, _) in &output.targets {
                edges.insert((task.operator, plan.tasks[target.index()].operator, forward));
            }
        }
    }
    let mut ordered = BTreeSet::new();
    let mut concentrated = BTreeSet::new();
    // The sources whose records reach each operator: two inputs sharing one (a diamond) carry
    // the same partition over two channels, whose order against each other nobody keeps.
    let mut sources: BTreeMap<OperatorId, BTreeSet<OperatorId>> = BTreeMap::new();
    // Tasks are in topological order, so each operator's inputs come first.
    let operators: Vec<OperatorId> = {
        let mut seen = BTreeSet::new();
        (plan.tasks.iter())
            .map(|t| t.operator)
            .filter(|op| seen.insert(*op))
            .collect()
    };
    for op in operators {
        let inputs: Vec<(OperatorId, bool)> = (edges.iter())
            .filter(|(_, target, _)| *target == op)
            .map(|(source, _, forward)| (*source, *forward))
            .collect();
        let single = parallelism[&op] == 1;
        let mut reaching: BTreeSet<OperatorId> = BTreeSet::new();
        let mut disjoint = !fed_twice.contains(&op);
        for (u, _) in &inputs {
            let from = sources.get(u).cloned().unwrap_or_default();
            disjoint &= reaching.is_disjoint(&from);
            reaching.extend(from);
        }
        if inputs.is_empty() {
            reaching.insert(op);
        }
        sources.insert(op, reaching);
        let is_ordered = disjoint
            && inputs
                .iter()
                .all(|(u, forward)| ordered.contains(u) && (*forward || concentrated.contains(u)));
        let is_concentrated = inputs
            .iter()
            .all(|(u, forward)| concentrated.contains(u) && (*forward || single));
        if is_ordered {
            ordered.insert(op);
        }
        if is_concentrated {
            concentrated.insert(op);
        }
    }
    ordered
}

/// Each channel's order kept, seen at the sinks.
pub struct ChannelOrder;

impl Checker for ChannelOrder {
    fn property(&self) -> Property {
        Property::ChannelOrder
    }
    fn description(&self) -> &str {
        "each sink commits a source partition's effects in offset order where they reach it over one chain of channels (EXACTLY_ONCE)"
    }
    fn judge<'r>(&self, run: &'r JudgedRun<'r>) -> Box<dyn Judgement<'r> + 'r> {
        at_end(|| {
            if !run.exactly_once() || !run.output_judged() {
                return Vec::new();
            }
            channel_order_witnessed(run)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use snapsim_core::ids::{EventTime, Key};
    use snapsim_core::record::{InputRef, Record};
    use snapsim_core::testing::keyed_sum_job;

    fn committed(sink: u32, partition: u16, offset: u64) -> CommittedRecord {
        let origin = Origin::Input(InputRef {
            source: OperatorId(0),
            partition: PartitionId(partition),
            offset: Offset(offset),
        });
        CommittedRecord {
            sink: TaskId(sink),
            transaction: None,
            record: Record {
                key: Key(1),
                value: 1,
                event_time: EventTime(0),
                origin,
            },
        }
    }

    #[test]
    fn a_partition_committed_out_of_offset_order_is_flagged_and_partitions_may_interleave() {
        let plan = keyed_sum_job(40, Some(50)).build().expect("valid job");
        let sink = plan.tasks.last().expect("a sink").id.0;
        let interleaved = [
            committed(sink, 0, 0),
            committed(sink, 1, 0),
            committed(sink, 0, 1),
        ];
        assert!(channel_order(&interleaved, &plan).is_empty());
        let swapped = [
            committed(sink, 0, 1),
            committed(sink, 1, 0),
            committed(sink, 0, 0),
        ];
        let found = channel_order(&swapped, &plan);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].message.contains("after the one of @1"),
            "{found:?}"
        );
    }

    #[test]
    fn a_partition_spread_over_subtasks_and_merged_again_is_not_judged() {
        // source → key-by sum (p=2) → key-by max (p=2) → sink: a partition's records reach
        // each max subtask from both sum subtasks, so their order there is not FIFO's.
        use snapsim_core::job::{AggregateFn, OperatorKind};
        let mut job = keyed_sum_job(40, Some(50));
        let max = job.add("max", OperatorKind::KeyedAggregate(AggregateFn::Max), 2);
        let sink = job.add("sink-2", OperatorKind::TwoPhaseCommitSink, 2);
        job.connect(OperatorId(1), max, Partitioning::KeyBy);
        job.connect(max, sink, Partitioning::Forward);
        let plan = job.build().expect("valid job");
        let ordered = partition_ordered(&plan);
        let names: Vec<u32> = ordered.iter().map(|op| op.0).collect();
        assert_eq!(
            names,
            [0, 1, 2],
            "source, sum and sum's sink; not max or its sink"
        );
    }

    #[test]
    fn an_operator_fed_one_source_over_two_inputs_is_not_judged() {
        // A diamond: the source feeds both inputs of a co-sum, so one partition's records reach
        // a co-sum subtask over two channels, whose order against each other nobody keeps.
        use snapsim_core::job::{InputSide, OperatorKind};
        let mut job = keyed_sum_job(40, Some(50));
        let co = job.add("co-sum", OperatorKind::KeyedCoSum, 2);
        let sink = job.add("sink-2", OperatorKind::TwoPhaseCommitSink, 2);
        job.connect_side(OperatorId(0), co, Partitioning::KeyBy, InputSide::First);
        job.connect_side(OperatorId(0), co, Partitioning::KeyBy, InputSide::Second);
        job.connect(co, sink, Partitioning::Forward);
        let plan = job.build().expect("valid job");
        let ordered = partition_ordered(&plan);
        assert!(
            !ordered.contains(&co) && !ordered.contains(&sink),
            "{ordered:?}"
        );
    }
}
