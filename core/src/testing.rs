//! A job for tests of the engine and of the drivers and checkers built on it.

use std::sync::Arc;

/// A small job for tests: a source of parallelism 2 over `records` records in 4 partitions
/// (keys 0..8), a keyed running sum of parallelism 2, and a two-phase-commit sink.
pub fn keyed_sum_job(records: u64, interval_ticks: Option<u64>) -> crate::job::JobGraph {
    use crate::ids::{EventTime, Key};
    use crate::job::{AggregateFn, JobGraph, OperatorKind, Partitioning, SourceLog};
    use crate::record::SourceRecord;
    let partitions = (0..4u64)
        .map(|p| {
            (0..records / 4)
                .map(|i| SourceRecord {
                    key: Key((i * 7 + p) % 8),
                    value: (i % 13) as i64 + 1,
                    event_time: EventTime(i),
                })
                .collect()
        })
        .collect();
    let log = Arc::new(SourceLog { partitions });
    let mut graph = JobGraph::new("keyed-sum");
    let source = graph.add(
        "source",
        OperatorKind::Source {
            log,
            records_per_tick: 4,
        },
        2,
    );
    let sum = graph.add("sum", OperatorKind::KeyedAggregate(AggregateFn::Sum), 2);
    let sink = graph.add("sink", OperatorKind::TwoPhaseCommitSink, 2);
    graph.connect(source, sum, Partitioning::KeyBy);
    graph.connect(sum, sink, Partitioning::Forward);
    graph.checkpoint.interval_ticks = interval_ticks;
    graph.restart = crate::config::RestartStrategyConfig::FixedDelay {
        attempts: 5,
        delay_ticks: 20,
    };
    graph
}
