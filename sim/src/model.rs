//! The sequential reference model of a job: every source record pushed through the job graph
//! one at a time, in log order, with no concurrency, no checkpoints and no failures.
//!
//! It is the yardstick the checkers measure a run against. Besides the job's output it knows
//! what reaches each operator, by provenance, so a checker can ask what a key's state must be
//! after exactly a given set of inputs: after the inputs committed before an output (state
//! consistency), or after the inputs below a checkpoint's source offsets (consistent cut).
//! That question has an answer only for keyed operators fed from sources through stateless
//! operators and keyed chains ("order-free": their state does not depend on how channels
//! interleave).

use snapsim_core::ids::{EventTime, Key, Offset, OperatorId, PartitionId};
use snapsim_core::job::{Edge, FilterFn, InputSide, JobGraph, MapFn, OperatorKind, Partitioning};
use snapsim_core::operator::{aggregate, chain, map};
use snapsim_core::record::{InputRef, Lane, Origin, Record};
use std::collections::{BTreeMap, BTreeSet};

/// Where each source partition's consumed prefix ends: offsets below are consumed.
pub type Cut = BTreeMap<(OperatorId, PartitionId), Offset>;

/// A keyed operator's state as the model computes it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ModelState {
    /// KeyedAggregate: the aggregate per key.
    pub values: BTreeMap<Key, i64>,
    /// KeyedCoSum: (first input's sum, second input's sum) per key.
    pub co_sums: BTreeMap<Key, (i64, i64)>,
    /// TumblingWindow: the aggregate per (window start, key) with an input below the cut.
    pub windows: BTreeMap<(EventTime, Key), i64>,
    /// KeyedChain: the hash chain per (key, lane).
    pub chains: BTreeMap<(Key, Lane), i64>,
}

/// How a sink's records derive from one keyed operator through maps only, on forward edges:
/// then a key's records reach the sink in the order that operator processed them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputChain {
    /// The keyed operator (KeyedAggregate, KeyedCoSum or KeyedChain) that computes each output
    /// value.
    pub keyed: OperatorId,
    /// The maps applied to its output, in order.
    pub maps: Vec<MapFn>,
}

/// The reference model of one job.
#[derive(Clone, Debug)]
pub struct ReferenceModel {
    graph: JobGraph,
    /// What reaches each order-free keyed operator and each sink fed straight from sources,
    /// by the input record it derives from.
    arrivals: BTreeMap<OperatorId, Arrivals>,
    /// The job's output, in the model's order: (sink operator, record).
    outputs: Vec<(OperatorId, Record)>,
}

impl ReferenceModel {
    /// Runs `graph` sequentially over its whole input.
    pub fn new(graph: &JobGraph) -> ReferenceModel {
        let mut downstream = vec![Vec::new(); graph.operators.len()];
        for edge in &graph.edges {
            downstream[edge.source.0 as usize].push(*edge);
        }
        let mut run = SequentialRun {
            graph,
            downstream,
            direct: direct_operators(graph),
            states: BTreeMap::new(),
            arrivals: BTreeMap::new(),
            outputs: Vec::new(),
        };
        for spec in &graph.operators {
            let OperatorKind::Source { log, .. } = &spec.kind else {
                continue;
            };
            for (partition, records) in log.partitions.iter().enumerate() {
                for (offset, entry) in records.iter().enumerate() {
                    let origin = Origin::Input(InputRef {
                        source: spec.id,
                        partition: PartitionId(partition as u16),
                        offset: Offset(offset as u64),
                    });
                    let record = Record {
                        key: entry.key,
                        value: entry.value,
                        event_time: entry.event_time,
                        origin,
                    };
                    run.emit(spec.id, record);
                }
            }
        }
        run.fire_all_windows();
        ReferenceModel {
            graph: graph.clone(),
            arrivals: run.arrivals,
            outputs: run.outputs,
        }
    }

    /// The job's output in the model's order: (sink operator, record).
    pub fn outputs(&self) -> &[(OperatorId, Record)] {
        &self.outputs
    }

    /// The record input `input` makes arrive at `operator`, and on which side, if `operator`
    /// is fed from sources through stateless operators and the input is not filtered out.
    pub fn arrival(&self, operator: OperatorId, input: &InputRef) -> Option<(InputSide, Record)> {
        self.arrivals.get(&operator)?.get(input)
    }

    /// Whether the model knows the value of each record `sink` commits for its input: the sink
    /// is fed from sources through stateless operators and keyed chains only.
    pub fn knows_values(&self, sink: OperatorId) -> bool {
        self.arrivals.contains_key(&sink)
    }

    /// Whether `operator`'s state is determined by the set of inputs it consumed.
    pub fn is_order_free(&self, operator: OperatorId) -> bool {
        let spec = &self.graph.operators[operator.0 as usize];
        spec.kind.is_keyed() && self.arrivals.contains_key(&operator)
    }

    /// The state of order-free keyed `operator` after exactly the inputs below `cut`.
    pub fn state_at(&self, operator: OperatorId, cut: &Cut) -> Option<ModelState> {
        if !self.is_order_free(operator) {
            return None;
        }
        let below = |input: &InputRef| {
            cut.get(&(input.source, input.partition))
                .is_some_and(|end| input.offset < *end)
        };
        let mut state = ModelState::default();
        let kind = &self.graph.operators[operator.0 as usize].kind;
        for (input, (side, record)) in self.arrivals[&operator].iter() {
            if below(&input) {
                fold(kind, &mut state, *side, record);
            }
        }
        Some(state)
    }

    /// One key's arrivals at order-free keyed `operator`, to fold below many cuts: what a
    /// witness tries when it looks for the inputs that explain a snapshot's state of the key.
    pub fn key_arrivals(&self, operator: OperatorId, key: Key) -> Option<KeyArrivals<'_>> {
        if !self.is_order_free(operator) {
            return None;
        }
        let arrivals = (self.arrivals[&operator].iter())
            .filter(|(_, (_, record))| record.key == key)
            .map(|(input, (side, record))| (input, *side, record))
            .collect();
        Some(KeyArrivals {
            kind: &self.graph.operators[operator.0 as usize].kind,
            arrivals,
        })
    }

    /// The state of order-free keyed `operator` at successive cuts, each folded from the last
    /// (see [`StateAt`]): what [`state_at`](Self::state_at) gives, without folding every input
    /// again for each cut.
    pub fn states_of(&self, operator: OperatorId) -> Option<StateAt<'_>> {
        if !self.is_order_free(operator) {
            return None;
        }
        Some(StateAt {
            kind: &self.graph.operators[operator.0 as usize].kind,
            arrivals: &self.arrivals[&operator],
            reached: Cut::new(),
            state: ModelState::default(),
        })
    }

    /// How `sink`'s output values derive from one order-free keyed operator, if they do.
    pub fn output_chain(&self, sink: OperatorId) -> Option<OutputChain> {
        let mut maps = Vec::new();
        let mut operator = sink;
        loop {
            let [edge] = self.incoming(operator)[..] else {
                return None;
            };
            if edge.partitioning != Partitioning::Forward {
                return None;
            }
            let upstream = &self.graph.operators[edge.source.0 as usize];
            match upstream.kind {
                OperatorKind::Map(function) => maps.push(function),
                OperatorKind::KeyedAggregate(_)
                | OperatorKind::KeyedCoSum
                | OperatorKind::KeyedChain
                    if self.is_order_free(upstream.id) =>
                {
                    maps.reverse();
                    return Some(OutputChain {
                        keyed: upstream.id,
                        maps,
                    });
                }
                _ => return None,
            }
            operator = upstream.id;
        }
    }

    /// Whether `sink` has a final value per key: its records come from a keyed aggregate (or
    /// co-sum) through maps on forward edges, whose last value per key does not depend on how
    /// inputs interleave. (A sink behind stateless operators only, say, has none: its last
    /// record of a key is whichever came last; nor has one behind a keyed chain, whose last
    /// record of a key is of whichever lane came last.)
    pub fn has_final_values(&self, sink: OperatorId) -> bool {
        let mut operator = sink;
        loop {
            let [edge] = self.incoming(operator)[..] else {
                return false;
            };
            if edge.partitioning != Partitioning::Forward {
                return false;
            }
            match self.graph.operators[edge.source.0 as usize].kind {
                OperatorKind::Map(_) => operator = edge.source,
                OperatorKind::KeyedAggregate(_) | OperatorKind::KeyedCoSum => return true,
                _ => return false,
            }
        }
    }

    /// Whether records at `operator`'s input reach `target`: it is `target` or upstream of it.
    pub fn feeds(&self, operator: OperatorId, target: OperatorId) -> bool {
        let mut frontier = vec![target];
        let mut visited = BTreeSet::new();
        while let Some(current) = frontier.pop() {
            if current == operator {
                return true;
            }
            if visited.insert(current) {
                frontier.extend(self.incoming(current).iter().map(|edge| edge.source));
            }
        }
        false
    }

    /// The name of `operator`.
    pub fn operator_name(&self, operator: OperatorId) -> &str {
        &self.graph.operators[operator.0 as usize].name
    }

    /// The kind of `operator`.
    pub fn operator_kind(&self, operator: OperatorId) -> &OperatorKind {
        &self.graph.operators[operator.0 as usize].kind
    }

    fn incoming(&self, operator: OperatorId) -> Vec<Edge> {
        self.graph
            .edges
            .iter()
            .filter(|e| e.target == operator)
            .copied()
            .collect()
    }
}

/// What reaches one operator from the sources: per source partition, by offset (`None` for an
/// input that does not reach it). Dense, as every offset of a partition is read.
#[derive(Clone, Debug, Default)]
struct Arrivals {
    by_partition: BTreeMap<(OperatorId, PartitionId), Vec<Option<Arrival>>>,
}

/// A record arriving at an operator, and on which input.
type Arrival = (InputSide, Record);

impl Arrivals {
    /// Records what `input` makes arrive; false if something arrived for it already.
    fn insert(&mut self, input: InputRef, arrival: Arrival) -> bool {
        let partition = (self.by_partition)
            .entry((input.source, input.partition))
            .or_default();
        let at = input.offset.0 as usize;
        if partition.len() <= at {
            partition.resize(at + 1, None);
        }
        partition[at].replace(arrival).is_none()
    }

    fn get(&self, input: &InputRef) -> Option<Arrival> {
        let partition = self.by_partition.get(&(input.source, input.partition))?;
        *partition.get(input.offset.0 as usize)?
    }

    /// Everything that arrived, in input order.
    fn iter(&self) -> impl Iterator<Item = (InputRef, &Arrival)> {
        let partitions = self.by_partition.iter();
        partitions.flat_map(|(&(source, partition), arrivals)| {
            let arrived = arrivals.iter().enumerate();
            arrived.filter_map(move |(offset, arrival)| {
                let input = InputRef {
                    source,
                    partition,
                    offset: Offset(offset as u64),
                };
                Some((input, arrival.as_ref()?))
            })
        })
    }

    /// What arrived from `partition` at offsets `start..end`, in order.
    fn between(
        &self,
        partition: (OperatorId, PartitionId),
        start: Offset,
        end: Offset,
    ) -> impl Iterator<Item = &Arrival> {
        let arrivals = self.by_partition.get(&partition).map_or(&[][..], |a| a);
        let end = (end.0 as usize).min(arrivals.len());
        let start = (start.0 as usize).min(end);
        arrivals[start..end].iter().flatten()
    }
}

/// One key's arrivals at an order-free keyed operator ([`ReferenceModel::key_arrivals`]).
pub struct KeyArrivals<'m> {
    kind: &'m OperatorKind,
    arrivals: Vec<(InputRef, InputSide, &'m Record)>,
}

impl KeyArrivals<'_> {
    /// The offsets of the key's inputs from one source partition, in order.
    pub fn offsets(
        &self,
        (source, partition): (OperatorId, PartitionId),
    ) -> impl DoubleEndedIterator<Item = Offset> + '_ {
        (self.arrivals.iter())
            .filter(move |(input, ..)| input.source == source && input.partition == partition)
            .map(|(input, ..)| input.offset)
    }

    /// The key's state after exactly its inputs below `cut`.
    pub fn state_at(&self, cut: &Cut) -> ModelState {
        let mut state = ModelState::default();
        for (input, side, record) in &self.arrivals {
            let below =
                (cut.get(&(input.source, input.partition))).is_some_and(|end| input.offset < *end);
            if below {
                fold(self.kind, &mut state, *side, record);
            }
        }
        state
    }
}

/// One order-free keyed operator's model state at a cut, moved from cut to cut. An order-free
/// operator's state depends only on which inputs it consumed (per lane, a prefix in offset
/// order), so the state at a cut that is at or above the last one in every source partition
/// is the last state plus the inputs in between. A cut below the last one in some partition
/// (a checkpoint completed after a restore to an older one) is folded from the start again.
pub struct StateAt<'m> {
    kind: &'m OperatorKind,
    arrivals: &'m Arrivals,
    /// The cut `state` is at.
    reached: Cut,
    state: ModelState,
}

impl StateAt<'_> {
    /// The state after exactly the inputs below `cut`.
    pub fn at(&mut self, cut: &Cut) -> &ModelState {
        let behind = |(partition, offset): (&(OperatorId, PartitionId), &Offset)| {
            cut.get(partition).is_none_or(|end| end < offset)
        };
        if self.reached.iter().any(behind) {
            self.reached.clear();
            self.state = ModelState::default();
        }
        for (&(source, partition), &end) in cut {
            let start = self.reached.get(&(source, partition)).copied();
            let start = start.unwrap_or(Offset(0));
            if end <= start {
                continue;
            }
            for (side, record) in self.arrivals.between((source, partition), start, end) {
                fold(self.kind, &mut self.state, *side, record);
            }
            self.reached.insert((source, partition), end);
        }
        &self.state
    }
}

/// Folds one arriving record into a keyed operator's model state.
pub fn fold(kind: &OperatorKind, state: &mut ModelState, side: InputSide, record: &Record) {
    match kind {
        OperatorKind::KeyedAggregate(function) => {
            let value = aggregate(
                *function,
                state.values.get(&record.key).copied(),
                record.value,
            );
            state.values.insert(record.key, value);
        }
        OperatorKind::KeyedCoSum => {
            let sums = state.co_sums.entry(record.key).or_insert((0, 0));
            match side {
                InputSide::First => sums.0 = sums.0.wrapping_add(record.value),
                InputSide::Second => sums.1 = sums.1.wrapping_add(record.value),
            }
        }
        OperatorKind::KeyedChain => {
            let slot = state
                .chains
                .entry((record.key, record.origin.lane()))
                .or_insert(0);
            *slot = chain(*slot, record.value);
        }
        OperatorKind::TumblingWindow {
            size,
            aggregate: function,
        } => {
            let start = window_start(record.event_time, *size);
            let slot = state.windows.get(&(start, record.key)).copied();
            state.windows.insert(
                (start, record.key),
                aggregate(*function, slot, record.value),
            );
        }
        other => unreachable!("{other:?} keeps no keyed state"),
    }
}

/// The value a keyed operator emits for `record` folded into `state`: its new aggregate.
pub fn emitted_value(kind: &OperatorKind, state: &ModelState, record: &Record) -> i64 {
    let key = record.key;
    match kind {
        OperatorKind::KeyedAggregate(_) => state.values[&key],
        OperatorKind::KeyedCoSum => {
            let (first, second) = state.co_sums[&key];
            first.wrapping_add(second)
        }
        OperatorKind::KeyedChain => state.chains[&(key, record.origin.lane())],
        other => unreachable!("{other:?} emits no value per input"),
    }
}

fn window_start(event_time: EventTime, size: u64) -> EventTime {
    EventTime(event_time.0 - event_time.0 % size)
}

/// Operators whose input comes from sources through stateless operators and keyed chains
/// only: what reaches them for an input does not depend on how channels interleave (a chain's
/// output for an input depends only on the inputs before it in its lane, all below any cut the
/// input is below).
fn direct_operators(graph: &JobGraph) -> BTreeSet<OperatorId> {
    let single_path = single_path_operators(graph);
    let mut direct = BTreeSet::new();
    // Iterate to a fixpoint; graphs are acyclic and small (≤ 64 operators).
    loop {
        let before = direct.len();
        for spec in &graph.operators {
            let inputs: Vec<&Edge> = graph.edges.iter().filter(|e| e.target == spec.id).collect();
            let upstream_direct = |e: &&Edge| {
                let upstream = &graph.operators[e.source.0 as usize];
                direct.contains(&e.source)
                    && matches!(
                        upstream.kind,
                        OperatorKind::Source { .. }
                            | OperatorKind::Map(_)
                            | OperatorKind::Filter(_)
                            | OperatorKind::KeyedChain
                    )
            };
            // A chain's state depends on the order of each of its lanes: it is direct only
            // where every record of a key and lane reaches it over one path.
            let ordered = spec.kind != OperatorKind::KeyedChain || single_path.contains(&spec.id);
            let is_direct = matches!(spec.kind, OperatorKind::Source { .. })
                || (ordered && !inputs.is_empty() && inputs.iter().all(upstream_direct));
            if is_direct {
                direct.insert(spec.id);
            }
        }
        if direct.len() == before {
            return direct;
        }
    }
}

/// Operators that every record of one key and source partition reaches over one path of
/// channels, in the order it was read: forward and key-by edges keep a key's records of a
/// subtask on one channel, a rebalance only into a single subtask, and no two inputs of an
/// operator carry records of one source.
fn single_path_operators(graph: &JobGraph) -> BTreeSet<OperatorId> {
    let mut single = BTreeSet::new();
    // The sources whose records reach each operator, to see two inputs share one.
    let mut sources: BTreeMap<OperatorId, BTreeSet<OperatorId>> = BTreeMap::new();
    loop {
        let before = (single.len(), sources.len());
        for spec in &graph.operators {
            let inputs: Vec<&Edge> = graph.edges.iter().filter(|e| e.target == spec.id).collect();
            if inputs.is_empty() {
                single.insert(spec.id);
                sources.insert(spec.id, BTreeSet::from([spec.id]));
                continue;
            }
            if !inputs.iter().all(|e| sources.contains_key(&e.source)) {
                continue; // Upstream not seen yet: the next round.
            }
            let mut reaching = BTreeSet::new();
            let mut disjoint = true;
            for edge in &inputs {
                let from = &sources[&edge.source];
                disjoint &= reaching.is_disjoint(from);
                reaching.extend(from.iter().copied());
            }
            sources.insert(spec.id, reaching);
            let one_channel = (inputs.iter())
                .all(|e| e.partitioning != Partitioning::Rebalance || spec.parallelism == 1);
            if disjoint && one_channel && inputs.iter().all(|e| single.contains(&e.source)) {
                single.insert(spec.id);
            }
        }
        if (single.len(), sources.len()) == before {
            return single;
        }
    }
}

/// The state of the sequential run while it builds the model.
struct SequentialRun<'g> {
    graph: &'g JobGraph,
    /// Each operator's outgoing edges, by operator index.
    downstream: Vec<Vec<Edge>>,
    direct: BTreeSet<OperatorId>,
    states: BTreeMap<OperatorId, ModelState>,
    arrivals: BTreeMap<OperatorId, Arrivals>,
    outputs: Vec<(OperatorId, Record)>,
}

impl SequentialRun<'_> {
    /// `operator` emits `record` to every downstream operator.
    fn emit(&mut self, operator: OperatorId, record: Record) {
        for i in 0..self.downstream[operator.0 as usize].len() {
            let edge = self.downstream[operator.0 as usize][i];
            self.receive(edge.target, edge.side, record);
        }
    }

    fn receive(&mut self, operator: OperatorId, side: InputSide, record: Record) {
        let kind = &self.graph.operators[operator.0 as usize].kind;
        if let (true, Origin::Input(input)) = (self.direct.contains(&operator), record.origin) {
            if kind.is_keyed() || kind.is_sink() {
                let arrivals = self.arrivals.entry(operator).or_default();
                let first = arrivals.insert(input, (side, record));
                assert!(first, "{input:?} reaches {operator} once");
            }
        }
        match kind {
            OperatorKind::Source { .. } => unreachable!("sources have no inputs"),
            OperatorKind::Map(function) => {
                let value = map(*function, record.value);
                self.emit(operator, Record { value, ..record });
            }
            OperatorKind::Filter(FilterFn::DropValueMultiplesOf(n)) => {
                if record.value % n != 0 {
                    self.emit(operator, record);
                }
            }
            OperatorKind::KeyedAggregate(_)
            | OperatorKind::KeyedCoSum
            | OperatorKind::KeyedChain => {
                let state = self.states.entry(operator).or_default();
                fold(kind, state, side, &record);
                let value = emitted_value(kind, state, &record);
                self.emit(operator, Record { value, ..record });
            }
            OperatorKind::TumblingWindow { .. } => {
                let state = self.states.entry(operator).or_default();
                fold(kind, state, side, &record);
            }
            OperatorKind::TwoPhaseCommitSink | OperatorKind::PlainSink => {
                self.outputs.push((operator, record))
            }
        }
    }

    /// The end of input: every window fires, in (operator, start, key) order.
    fn fire_all_windows(&mut self) {
        for spec in &self.graph.operators {
            let OperatorKind::TumblingWindow { size, .. } = spec.kind else {
                continue;
            };
            let windows = std::mem::take(&mut self.states.entry(spec.id).or_default().windows);
            for ((start, key), value) in windows {
                let record = Record {
                    key,
                    value,
                    event_time: EventTime(start.0 + size - 1),
                    origin: Origin::Window { key, start },
                };
                self.emit(spec.id, record);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use snapsim_core::job::{AggregateFn, SourceLog};
    use snapsim_core::record::SourceRecord;
    use std::sync::Arc;

    fn log(values: &[(u64, i64)]) -> Arc<SourceLog> {
        let partition = values
            .iter()
            .enumerate()
            .map(|(t, &(key, value))| SourceRecord {
                key: Key(key),
                value,
                event_time: EventTime(t as u64),
            })
            .collect();
        Arc::new(SourceLog {
            partitions: vec![partition],
        })
    }

    /// A source of one subtask over one partition of (key, value) records.
    fn add_source(job: &mut JobGraph, values: &[(u64, i64)]) -> OperatorId {
        let kind = OperatorKind::Source {
            log: log(values),
            records_per_tick: 1,
        };
        job.add("source", kind, 1)
    }

    #[test]
    fn the_model_sums_per_key_and_answers_for_a_cut() {
        let mut job = JobGraph::new("model");
        let source = add_source(&mut job, &[(1, 5), (2, 7), (1, 10)]);
        let doubled = job.add("double", OperatorKind::Map(MapFn::MultiplyBy(2)), 1);
        let sum = job.add("sum", OperatorKind::KeyedAggregate(AggregateFn::Sum), 1);
        let sink = job.add("sink", OperatorKind::TwoPhaseCommitSink, 1);
        job.connect(source, doubled, Partitioning::Forward);
        job.connect(doubled, sum, Partitioning::KeyBy);
        job.connect(sum, sink, Partitioning::Forward);
        let model = ReferenceModel::new(&job);
        let values: Vec<i64> = model.outputs().iter().map(|(_, r)| r.value).collect();
        assert_eq!(values, [10, 14, 30]);
        let cut = Cut::from([((source, PartitionId(0)), Offset(2))]);
        let state = model.state_at(sum, &cut).expect("sum is order-free");
        assert_eq!(state.values, BTreeMap::from([(Key(1), 10), (Key(2), 14)]));
        let chain = model
            .output_chain(sink)
            .expect("sum feeds the sink directly");
        assert_eq!((chain.keyed, chain.maps), (sum, vec![]));
        // The sink is fed by a keyed operator, not from sources: no arrivals there.
        assert!(!model.is_order_free(sink));
    }

    #[test]
    fn a_chain_depends_on_each_lanes_order_but_not_on_how_lanes_interleave() {
        let record = |partition: u16, offset: u64, value: i64| Record {
            key: Key(1),
            value,
            event_time: EventTime(0),
            origin: Origin::Input(InputRef {
                source: OperatorId(0),
                partition: PartitionId(partition),
                offset: Offset(offset),
            }),
        };
        let (a1, a2, b1) = (record(0, 0, 5), record(0, 1, 7), record(1, 0, 9));
        let folded = |records: &[&Record]| {
            let mut state = ModelState::default();
            for record in records {
                fold(
                    &OperatorKind::KeyedChain,
                    &mut state,
                    InputSide::First,
                    record,
                );
            }
            state.chains
        };
        let interleaved = folded(&[&a1, &b1, &a2]);
        assert_eq!(interleaved, folded(&[&b1, &a1, &a2]));
        assert_eq!(interleaved, folded(&[&a1, &a2, &b1]));
        assert_ne!(interleaved, folded(&[&a2, &a1, &b1]), "a lane out of order");
        assert_eq!(interleaved.len(), 2, "one chain per lane");
    }

    #[test]
    fn a_keyed_operator_behind_a_chain_is_order_free() {
        let mut job = JobGraph::new("behind a chain");
        let source = add_source(&mut job, &[(1, 5), (1, 7)]);
        let chained = job.add("chain", OperatorKind::KeyedChain, 1);
        let sum = job.add("sum", OperatorKind::KeyedAggregate(AggregateFn::Sum), 1);
        let sink = job.add("sink", OperatorKind::TwoPhaseCommitSink, 1);
        job.connect(source, chained, Partitioning::KeyBy);
        job.connect(chained, sum, Partitioning::KeyBy);
        job.connect(sum, sink, Partitioning::Forward);
        let model = ReferenceModel::new(&job);
        assert!(model.is_order_free(chained) && model.is_order_free(sum));
        let cut = Cut::from([((source, PartitionId(0)), Offset(2))]);
        let state = model.state_at(sum, &cut).expect("order-free");
        let first = chain(0, 5);
        assert_eq!(state.values[&Key(1)], first.wrapping_add(chain(first, 7)));
    }

    #[test]
    fn a_chain_whose_lanes_spread_over_several_channels_is_not_order_free() {
        let mut job = JobGraph::new("spread");
        let source = add_source(&mut job, &[(1, 5), (1, 7)]);
        let spread = job.add("spread", OperatorKind::Map(MapFn::AddConstant(1)), 2);
        let chained = job.add("chain", OperatorKind::KeyedChain, 1);
        let sink = job.add("sink", OperatorKind::TwoPhaseCommitSink, 1);
        job.connect(source, spread, Partitioning::Rebalance);
        job.connect(spread, chained, Partitioning::KeyBy);
        job.connect(chained, sink, Partitioning::Forward);
        let model = ReferenceModel::new(&job);
        assert!(!model.is_order_free(chained));
        assert!(!model.knows_values(sink));
        assert!(model.output_chain(sink).is_none());
    }

    #[test]
    fn a_keyed_operator_behind_another_is_not_order_free() {
        let mut job = JobGraph::new("chain");
        let source = add_source(&mut job, &[(1, 5)]);
        let first = job.add("first", OperatorKind::KeyedAggregate(AggregateFn::Sum), 1);
        let second = job.add("second", OperatorKind::KeyedAggregate(AggregateFn::Max), 1);
        let sink = job.add("sink", OperatorKind::PlainSink, 1);
        job.connect(source, first, Partitioning::KeyBy);
        job.connect(first, second, Partitioning::KeyBy);
        job.connect(second, sink, Partitioning::Forward);
        let model = ReferenceModel::new(&job);
        assert!(model.is_order_free(first));
        assert!(!model.is_order_free(second));
        assert!(model.output_chain(sink).is_none());
        assert_eq!(model.outputs().len(), 1);
    }

    #[test]
    fn a_state_moved_from_cut_to_cut_is_the_state_folded_at_each_cut() {
        let model = ReferenceModel::new(&snapsim_core::testing::keyed_sum_job(400, None));
        let (source, sum) = (OperatorId(0), OperatorId(1));
        let cut = |offsets: &[(u16, u64)]| -> Cut {
            (offsets.iter())
                .map(|&(p, o)| ((source, PartitionId(p)), Offset(o)))
                .collect()
        };
        let cuts = [
            cut(&[(0, 10), (1, 5)]),
            cut(&[(0, 30), (1, 5), (2, 7), (3, 1)]),
            cut(&[(0, 30), (1, 40), (2, 7), (3, 99)]),
            // Below the last in partition 0 (a restore to an older checkpoint), and without
            // partition 3.
            cut(&[(0, 20), (1, 60), (2, 70)]),
            cut(&[(0, 100), (1, 100), (2, 100), (3, 100)]),
        ];
        let mut states = model.states_of(sum).expect("the sum is order-free");
        for cut in &cuts {
            let folded = model.state_at(sum, cut).expect("order-free");
            assert_eq!(states.at(cut), &folded, "at {cut:?}");
        }
        assert!(
            model.states_of(source).is_none(),
            "a source keeps no keyed state"
        );
    }
}
