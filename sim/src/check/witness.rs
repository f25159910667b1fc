//! Witnesses: for a violation, the few trace events that make it true, and one sentence that
//! reads them as its cause.
//!
//! A checker says *what* is wrong (an input's effect committed twice); its witness says *why*
//! (the transaction that committed it first was committed before its checkpoint completed, and
//! the failover after it restored an older checkpoint, so the input was read and committed
//! again). Violations whose witnesses have the same shape and the same cause are one finding:
//! [`group`] folds them into the first, counting the rest, so a run with thousands of
//! violations reads as a handful of causes.

use crate::trace::{MessageRecord, TraceEntry, TraceEvent};
use serde::{Deserialize, Serialize};
use snapsim_core::ids::{Attempt, CheckpointId, Offset, OperatorId, PartitionId, TaskId, Tick};
use snapsim_core::job::ExecutionPlan;
use snapsim_core::messages::Address;
use snapsim_core::operator::OperatorState;
use snapsim_core::record::InputRef;
use snapsim_core::sink::{TransactionEnd, TransactionId};
use snapsim_core::trace::EngineEvent;
use std::collections::BTreeMap;

/// Why a violation is one: its events and the cause they show.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Witness {
    /// The explanation's template (for example `duplicate-after-replay`): what kind of cause
    /// this is. Shrinking a case keeps it, so that a case does not shrink into another bug.
    pub shape: String,
    /// The cause, one sentence read off the events.
    pub cause: String,
    /// What the violations grouped under this witness have in common: the root of the cause,
    /// without what differs between them (their transactions, their times).
    pub root: String,
    /// The events that make the violation true, in time order.
    pub events: Vec<WitnessEvent>,
    /// What the violations with this cause are about (inputs, keys), the first few named.
    pub subjects: String,
    /// How many violations of the property this cause explains.
    pub instances: u64,
}

impl Witness {
    /// The witness of one violation (grouping counts the others and names their subjects).
    pub fn new(
        shape: impl Into<String>,
        cause: String,
        root: String,
        events: Vec<WitnessEvent>,
    ) -> Witness {
        Witness {
            shape: shape.into(),
            cause,
            root,
            events,
            subjects: String::new(),
            instances: 1,
        }
    }

    /// The logged messages that meet the witness's events: the ones its events' nodes sent
    /// at an event's time, and the ones they took at an event's time (at most
    /// [`MESSAGES_PER_EVENT`] each way per event), in the log's order (by send time).
    pub fn messages<'a>(&self, log: &'a [MessageRecord]) -> Vec<&'a MessageRecord> {
        let mut chosen: Vec<usize> = Vec::new();
        for event in &self.events {
            let sent = (log.iter().enumerate())
                .filter(|(_, m)| m.from == event.node && m.sent == event.at)
                .take(MESSAGES_PER_EVENT);
            let taken = (log.iter().enumerate())
                .filter(|(_, m)| m.to == event.node && m.delivered == Some(event.at))
                .take(MESSAGES_PER_EVENT);
            chosen.extend(sent.chain(taken).map(|(index, _)| index));
        }
        chosen.sort_unstable();
        chosen.dedup();
        chosen.into_iter().map(|index| &log[index]).collect()
    }
}

/// The most messages drawn into and out of one witness event.
const MESSAGES_PER_EVENT: usize = 4;

/// One event of a witness.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WitnessEvent {
    pub at: Tick,
    pub node: Address,
    /// The event, in words.
    pub what: String,
}

impl WitnessEvent {
    /// The event of a trace entry: its time and node, in `what` words.
    pub fn of(entry: &TraceEntry, what: String) -> WitnessEvent {
        WitnessEvent {
            at: entry.at,
            node: entry.node,
            what,
        }
    }

    /// An event of the JobManager at `at`.
    pub fn at_job_manager(at: Tick, what: String) -> WitnessEvent {
        WitnessEvent {
            at,
            node: Address::JobManager,
            what,
        }
    }
}

/// A violation as a checker finds it, before grouping: its message, what it is about, and its
/// witness when the checker can give one.
pub struct Finding {
    pub message: String,
    /// What it is about, in a few words (`input op-0/p2@376`, `key k39`).
    pub subject: String,
    pub witness: Option<Witness>,
}

/// Subjects named in a group's summary before "and N more".
const SUBJECTS_NAMED: usize = 3;

/// Folds findings with the same witness (shape and root) into the first of them; findings
/// without a witness stay one each. The order is that of each group's first finding.
pub fn group(findings: Vec<Finding>) -> Vec<(String, Option<Witness>)> {
    let mut grouped: Vec<(String, Option<Witness>, Vec<String>)> = Vec::new();
    let mut index: BTreeMap<(String, String), usize> = BTreeMap::new();
    for finding in findings {
        let Some(witness) = finding.witness else {
            grouped.push((finding.message, None, vec![finding.subject]));
            continue;
        };
        let key = (witness.shape.clone(), witness.root.clone());
        match index.get(&key) {
            Some(&at) => grouped[at].2.push(finding.subject),
            None => {
                index.insert(key, grouped.len());
                grouped.push((finding.message, Some(witness), vec![finding.subject]));
            }
        }
    }
    grouped
        .into_iter()
        .map(|(message, witness, subjects)| {
            let witness = witness.map(|mut witness| {
                witness.instances = subjects.len() as u64;
                witness.subjects = summarize_subjects(&subjects);
                witness
            });
            (message, witness)
        })
        .collect()
}

/// The distinct subjects, the first few named: "key k39, key k3, key k54 and 61 more".
fn summarize_subjects(subjects: &[String]) -> String {
    let mut seen = std::collections::BTreeSet::new();
    let distinct: Vec<&String> = subjects.iter().filter(|s| seen.insert(*s)).collect();
    let named: Vec<&str> = distinct
        .iter()
        .take(SUBJECTS_NAMED)
        .map(|s| s.as_str())
        .collect();
    let named = named.join(", ");
    match distinct.len() {
        n if n <= SUBJECTS_NAMED => named,
        n => format!("{named} and {} more", n - SUBJECTS_NAMED),
    }
}

/// The trace facts witnesses are built from, indexed once per judged run: commits, which
/// checkpoint each transaction was pre-committed for, how each checkpoint ended, failovers and
/// what they restored.
pub struct History<'t> {
    /// The sink system's commits: when each transaction's records became visible.
    commits: BTreeMap<TransactionId, TransactionEnd>,
    /// The same, in commit order.
    log: &'t [TransactionEnd],
    /// The sink's snapshot that pre-committed each transaction, and its checkpoint.
    pre_commits: BTreeMap<TransactionId, (CheckpointId, &'t TraceEntry)>,
    completed: BTreeMap<CheckpointId, &'t TraceEntry>,
    aborted: BTreeMap<CheckpointId, &'t TraceEntry>,
    /// Failovers, in trace order, with their causes.
    failovers: Vec<(&'t TraceEntry, &'t str)>,
    /// Deployments, in trace order: the attempt and the checkpoint it restored.
    deployments: Vec<(&'t TraceEntry, Attempt, Option<CheckpointId>)>,
    /// Source tasks' restores, in trace order.
    source_restores: Vec<SourceRestore<'t>>,
}

/// A source task's restore: the offsets it goes on from.
struct SourceRestore<'t> {
    entry: &'t TraceEntry,
    task: TaskId,
    checkpoint: CheckpointId,
    offsets: &'t BTreeMap<PartitionId, Offset>,
}

impl SourceRestore<'_> {
    /// The offset it restored for `input`'s partition, if it reads it.
    fn offset_of(&self, plan: &ExecutionPlan, input: &InputRef) -> Option<Offset> {
        let reads_it = plan.tasks[self.task.index()].operator == input.source;
        reads_it.then(|| self.offsets.get(&input.partition).copied())?
    }
}

impl<'t> History<'t> {
    pub fn of(trace: &'t [TraceEntry], sink_log: &'t [TransactionEnd]) -> History<'t> {
        let commits = (sink_log.iter())
            .filter(|end| end.committed)
            .map(|c| (c.transaction, *c));
        let mut history = History {
            commits: commits.collect(),
            log: sink_log,
            pre_commits: BTreeMap::new(),
            completed: BTreeMap::new(),
            aborted: BTreeMap::new(),
            failovers: Vec::new(),
            deployments: Vec::new(),
            source_restores: Vec::new(),
        };
        for entry in trace {
            let TraceEvent::Engine(event) = &entry.event else {
                continue;
            };
            match event {
                EngineEvent::SnapshotTaken {
                    checkpoint,
                    state: OperatorState::TwoPhaseCommitSink(sink),
                    ..
                } => {
                    for (pending, transaction) in &sink.pending {
                        if pending == checkpoint {
                            // The first: a transaction pre-committed again kept its id.
                            let first = history.pre_commits.entry(*transaction);
                            first.or_insert((*checkpoint, entry));
                        }
                    }
                }
                EngineEvent::CheckpointCompleted { checkpoint } => {
                    history.completed.insert(*checkpoint, entry);
                }
                EngineEvent::CheckpointAborted { checkpoint, .. } => {
                    history.aborted.insert(*checkpoint, entry);
                }
                EngineEvent::Failover { cause } => history.failovers.push((entry, cause)),
                EngineEvent::Deployed { attempt, restored } => {
                    history.deployments.push((entry, *attempt, *restored))
                }
                EngineEvent::Restored {
                    task,
                    checkpoint,
                    state: OperatorState::Source { offsets },
                } => history.source_restores.push(SourceRestore {
                    entry,
                    task: *task,
                    checkpoint: *checkpoint,
                    offsets,
                }),
                _ => {}
            }
        }
        history
    }

    /// The sink system's commit of `transaction`, as a witness event.
    pub fn commit_event(&self, transaction: TransactionId) -> Option<WitnessEvent> {
        let commit = self.commits.get(&transaction)?;
        Some(WitnessEvent {
            at: commit.at,
            node: Address::SinkSystem,
            what: format!(
                "commits {transaction}: {} records become visible",
                commit.records
            ),
        })
    }

    /// How `transaction` relates to its checkpoint: the clause of a cause, its root (what
    /// other transactions may share), and the events that show it (its pre-commit, the
    /// checkpoint's end).
    fn transaction_fate(&self, transaction: TransactionId) -> (String, String, Vec<WitnessEvent>) {
        let Some(&(checkpoint, snapshot)) = self.pre_commits.get(&transaction) else {
            return (format!("{transaction}"), "a transaction".into(), Vec::new());
        };
        let committed_at = self.commits.get(&transaction).map(|entry| entry.at);
        let mut events = vec![WitnessEvent::of(
            snapshot,
            format!("snapshot for checkpoint {checkpoint} pre-commits {transaction}"),
        )];
        let ended = match (
            self.completed.get(&checkpoint),
            self.aborted.get(&checkpoint),
        ) {
            (Some(completed), _) => {
                events.push(WitnessEvent::of(
                    completed,
                    format!("checkpoint {checkpoint} completed"),
                ));
                Ok(completed.at)
            }
            (None, Some(aborted)) => {
                events.push(WitnessEvent::of(
                    aborted,
                    format!("checkpoint {checkpoint} aborted"),
                ));
                Err(format!("was aborted at {}", aborted.at))
            }
            (None, None) => Err("never completed".to_string()),
        };
        let (clause, root) = match (committed_at, ended) {
            (Some(at), Ok(completed)) if at < completed => (
                format!("{transaction} was committed at {at}, before its checkpoint {checkpoint} completed at {completed}"),
                format!("transactions of {checkpoint} committed before it completed"),
            ),
            (Some(at), Ok(_)) => (
                format!("{transaction} of checkpoint {checkpoint} was committed at {at}, after the checkpoint completed"),
                format!("transactions of completed {checkpoint}"),
            ),
            (Some(at), Err(fate)) => (
                format!("{transaction} was committed at {at}, before its checkpoint {checkpoint} completed ({checkpoint} {fate})"),
                format!("transactions of {checkpoint} committed though it never completed"),
            ),
            (None, Ok(_)) => (
                format!("{transaction} of completed checkpoint {checkpoint}"),
                format!("transactions of completed {checkpoint}"),
            ),
            (None, Err(fate)) => (
                format!("{transaction} of checkpoint {checkpoint}, which {fate}"),
                format!("transactions of {checkpoint}, which never completed"),
            ),
        };
        (clause, root, events)
    }

    /// The checkpoint `transaction` was pre-committed for.
    fn checkpoint_of(&self, transaction: TransactionId) -> Option<CheckpointId> {
        self.pre_commits
            .get(&transaction)
            .map(|&(checkpoint, _)| checkpoint)
    }

    /// Whether the sink system committed `transaction` before its checkpoint completed.
    fn committed_early(&self, transaction: TransactionId) -> bool {
        let (Some(commit), Some(checkpoint)) = (
            self.commits.get(&transaction),
            self.checkpoint_of(transaction),
        ) else {
            return false;
        };
        self.completed
            .get(&checkpoint)
            .is_none_or(|completed| commit.at < completed.at)
    }

    /// A transaction of an older checkpoint than `transaction`'s, of the same sink task, that
    /// the sink system committed after it.
    pub fn older_committed_after(&self, transaction: TransactionId) -> Option<TransactionId> {
        let checkpoint = self.checkpoint_of(transaction)?;
        let position =
            (self.log.iter()).position(|c| c.committed && c.transaction == transaction)?;
        self.log[position + 1..]
            .iter()
            .filter(|c| c.committed)
            .map(|c| c.transaction)
            .find(|t| {
                t.sink == transaction.sink && self.checkpoint_of(*t).is_some_and(|c| c < checkpoint)
            })
    }

    /// Why `records` were written into `transaction` after it ended: it had been
    /// pre-committed for a checkpoint and committed, and the sink went on writing into it.
    pub fn write_after_end(&self, transaction: TransactionId, records: u64) -> Option<Witness> {
        let commit = self.commit_event(transaction)?;
        let &(checkpoint, snapshot) = self.pre_commits.get(&transaction)?;
        let cause = format!(
            "{transaction} was pre-committed for {checkpoint} at {} and committed at {}, yet the sink wrote {records} more record(s) into it: after its pre-commit the sink did not begin a new transaction (it kept the id), so these records went into an ended transaction and are lost",
            snapshot.at, commit.at
        );
        Some(Witness::new(
            "write-into-ended-transaction",
            cause,
            "writes into transactions already pre-committed and committed".into(),
            {
                let pre_commit = format!("snapshot for {checkpoint} pre-commits {transaction}");
                let mut events = vec![WitnessEvent::of(snapshot, pre_commit), commit];
                events.sort_by_key(|event| event.at);
                events
            },
        ))
    }

    /// Why effects at `sink` (an operator) were never committed: the sink system aborted a
    /// transaction of one of its tasks that had been pre-committed for a checkpoint that
    /// completed, so its records were dropped.
    pub fn aborted_after_completion(
        &self,
        plan: &ExecutionPlan,
        sink: OperatorId,
    ) -> Option<Witness> {
        let (abort, checkpoint, snapshot, completed) = self.log.iter().find_map(|end| {
            let of_sink = plan.tasks[end.transaction.sink.index()].operator == sink;
            let &(checkpoint, snapshot) = self.pre_commits.get(&end.transaction)?;
            let completed = self.completed.get(&checkpoint)?;
            (of_sink && !end.committed && end.records > 0)
                .then_some((end, checkpoint, snapshot, *completed))
        })?;
        let transaction = abort.transaction;
        let mut events = vec![
            WitnessEvent::of(
                snapshot,
                format!("snapshot for {checkpoint} pre-commits {transaction}"),
            ),
            WitnessEvent::of(completed, format!("{checkpoint} completed")),
        ];
        if let Some((failover, _)) = self.first_failover(completed.at, abort.at) {
            events.push(WitnessEvent::of(failover, "failover".to_string()));
        }
        events.push(WitnessEvent {
            at: abort.at,
            node: Address::SinkSystem,
            what: format!("aborts {transaction}: {} records dropped", abort.records),
        });
        let cause = format!(
            "{transaction} was pre-committed for {checkpoint}, which completed at {}, and was then aborted at {} instead of committed: the {} records it held, effects the completed checkpoint counts as done, are lost",
            completed.at, abort.at, abort.records
        );
        Some(Witness::new(
            "completed-checkpoint-transaction-aborted",
            cause,
            "transactions of completed checkpoints aborted".into(),
            events,
        ))
    }

    /// Why `input`'s effect was never committed, when a restore skipped it: the source that
    /// reads its partition restored an offset past it, so it was not read again, though its
    /// effect had not been committed before (it never was).
    pub fn skipped_by_restore(&self, plan: &ExecutionPlan, input: &InputRef) -> Option<Witness> {
        let (restored, offset) = self.source_restores.iter().find_map(|restored| {
            let offset = restored.offset_of(plan, input)?;
            (offset > input.offset).then_some((restored, offset))
        })?;
        let (restore, checkpoint) = (restored.entry, restored.checkpoint);
        let source = &plan.tasks[restored.task.index()].name;
        let partition = format!("{}/{}", input.source, input.partition);
        let mut events = Vec::new();
        if let Some((failover, cause)) =
            (self.failovers.iter().rev()).find(|(f, _)| f.at <= restore.at)
        {
            events.push(WitnessEvent::of(failover, format!("failover: {cause}")));
        }
        let what =
            format!("{source} restored from {checkpoint}: next offset of {partition} is {offset}");
        events.push(WitnessEvent::of(restore, what));
        let cause = format!(
            "{source} restored {checkpoint} at {} with next offset {offset} for {partition}, past input {}, so the input was not read again; its effect had not been committed before the restore and is not in what was restored",
            restore.at, input.offset
        );
        let root = format!(
            "inputs below {checkpoint}'s offset {offset} for {partition}, skipped by its restore"
        );
        Some(Witness::new("lost-skipped-by-restore", cause, root, events))
    }

    /// Why an effect the failure-free run never commits is in the output: the transaction
    /// that committed it.
    pub fn unexpected_effect(&self, what: &str, transaction: TransactionId) -> Option<Witness> {
        let commit = self.commit_event(transaction)?;
        let cause = format!(
            "{transaction} committed at {} the effect of {what}, which the failure-free run never commits",
            commit.at
        );
        let root = format!("effects the failure-free run lacks, committed by {transaction}");
        Some(Witness::new("unexpected-effect", cause, root, vec![commit]))
    }

    /// The last transaction of `sink` (a task) the sink system committed before the last
    /// failover ahead of `before`'s commit (one committed before its checkpoint completed, if
    /// any): output that the restore after that failover did not account for.
    pub fn last_early_commit(&self, sink: TaskId, before: TransactionId) -> Option<TransactionId> {
        let until = self.commits.get(&before)?.at;
        let failover = (self.failovers.iter())
            .map(|(entry, _)| entry.at)
            .filter(|at| *at < until)
            .max()?;
        let before_failover = || {
            (self.commits.values()).filter(move |c| c.transaction.sink == sink && c.at <= failover)
        };
        let last = |commits: &mut dyn Iterator<Item = &TransactionEnd>| {
            commits.max_by_key(|c| c.at).map(|c| c.transaction)
        };
        // An early commit is the likelier cause; otherwise the last output before the failover.
        last(&mut before_failover().filter(|c| self.committed_early(c.transaction)))
            .or_else(|| last(&mut before_failover()))
    }

    /// The first failover from `from` to `until`, and its cause.
    fn first_failover(&self, from: Tick, until: Tick) -> Option<(&'t TraceEntry, &'t str)> {
        (self.failovers.iter().copied()).find(|(entry, _)| entry.at >= from && entry.at <= until)
    }

    /// The failover between `after` and `before` and what the new attempt restored.
    fn replay_between(
        &self,
        plan: &ExecutionPlan,
        input: Option<&InputRef>,
        after: Tick,
        before: Tick,
    ) -> Option<Replay> {
        let (failover, cause) = self.first_failover(after, before)?;
        let mut replay = Replay {
            clause: format!("the failover at {}", failover.at),
            events: vec![WitnessEvent::of(failover, format!("failover: {cause}"))],
            failover: failover.at,
            restored_uncompleted: None,
        };
        let deployed = (self.deployments.iter()).find(|(entry, ..)| entry.at >= failover.at);
        let Some(&(deployed, attempt, restored)) = deployed else {
            return Some(replay);
        };
        let Some(checkpoint) = restored else {
            let what = format!("{attempt} deployed without state");
            replay.events.push(WitnessEvent::of(deployed, what));
            replay.clause = format!(
                "the failover at {} restarted the job from no checkpoint, so it read every input again",
                failover.at
            );
            return Some(replay);
        };
        let what = format!("{attempt} deployed from checkpoint {checkpoint}");
        replay.events.push(WitnessEvent::of(deployed, what));
        let completed = (self.completed.get(&checkpoint)).is_some_and(|c| c.at <= deployed.at);
        let which = match completed {
            true => ",",
            false => {
                replay.restored_uncompleted = Some(checkpoint);
                ", which had not completed,"
            }
        };
        let source = input
            .and_then(|input| self.source_restore(plan, input, checkpoint, deployed.at, before));
        replay.clause = match source {
            Some((event, offset)) => {
                replay.events.push(event);
                format!(
                    "the failover at {} restored checkpoint {checkpoint}{which} whose source offset {offset} is at or below these inputs, so they were read again",
                    failover.at
                )
            }
            None => format!(
                "the failover at {} restored checkpoint {checkpoint}{which} and the inputs were read again",
                failover.at
            ),
        };
        Some(replay)
    }

    /// The first restore, from `from` to `until`, of the source task that reads `input`'s
    /// partition, as a witness event, and the offset it restored for the partition.
    fn source_restore(
        &self,
        plan: &ExecutionPlan,
        input: &InputRef,
        checkpoint: CheckpointId,
        from: Tick,
        until: Tick,
    ) -> Option<(WitnessEvent, Offset)> {
        self.source_restores.iter().find_map(|restored| {
            let (entry, task) = (restored.entry, restored.task);
            let offset = restored.offset_of(plan, input)?;
            (entry.at >= from && entry.at <= until).then(|| {
                let what = format!(
                    "{} restored from checkpoint {checkpoint}: next offset of {}/{} is {offset}",
                    plan.tasks[task.index()].name,
                    input.source,
                    input.partition
                );
                (WitnessEvent::of(entry, what), offset)
            })
        })
    }

    /// The root of a cause in which `first` was committed, then `replay` read its inputs
    /// again: the commit came before its checkpoint completed, or the restore took a
    /// checkpoint that had not completed. `None` otherwise: reading inputs again after a
    /// failover is what recovery does, so it is not the cause (the witness claims none).
    fn replay_root(
        &self,
        first: TransactionId,
        fate_root: &str,
        replay: &Replay,
    ) -> Option<String> {
        if self.committed_early(first) {
            return Some(format!(
                "{fate_root}, then the failover at {} read their inputs again",
                replay.failover
            ));
        }
        let checkpoint = replay.restored_uncompleted?;
        Some(format!(
            "a failover restored {checkpoint}, which had not completed"
        ))
    }
}

/// A failover between two commits and what the attempt after it restored.
struct Replay {
    /// The clause of a cause that reads it.
    clause: String,
    events: Vec<WitnessEvent>,
    failover: Tick,
    /// The checkpoint restored, when it had not completed by the deployment.
    restored_uncompleted: Option<CheckpointId>,
}

/// Why `input`'s effect at `sink` was committed more than once, from the transactions that
/// committed it, in commit order.
pub fn duplicate_effect(
    history: &History,
    plan: &ExecutionPlan,
    sink: OperatorId,
    input: &InputRef,
    transactions: &[TransactionId],
) -> Option<Witness> {
    let (&first, &second) = (transactions.first()?, transactions.get(1)?);
    let (first_commit, second_commit) =
        (history.commit_event(first)?, history.commit_event(second)?);
    let (fate, fate_root, mut events) = history.transaction_fate(first);
    events.push(first_commit.clone());
    let replay = history.replay_between(plan, Some(input), first_commit.at, second_commit.at);
    let (shape, cause, root) = match replay {
        Some(replay) => {
            let root = history.replay_root(first, &fate_root, &replay)?;
            let cause = format!(
                "{fate}; {}, and {second} committed them a second time at {} ({sink})",
                replay.clause, second_commit.at
            );
            events.extend(replay.events);
            ("duplicate-after-replay", cause, root)
        }
        None => {
            let cause = format!(
                "{fate}, and {second} committed the same inputs again at {} with no failover between ({sink})",
                second_commit.at
            );
            let root = format!("{fate_root}, committed again without a failover");
            ("duplicate-without-replay", cause, root)
        }
    };
    events.push(second_commit);
    events.sort_by_key(|event| event.at);
    Some(Witness::new(shape, cause, root, events))
}

/// Why a sink made two effects visible in the wrong order: `first` was committed by the
/// transaction `earlier` (the sink system committed it first) though it should have followed
/// `second`, committed by `later`. `input` is what `second` derives from, when it is an input.
pub fn misordered(
    history: &History,
    plan: &ExecutionPlan,
    sink: &str,
    (earlier, later): (TransactionId, TransactionId),
    input: Option<&InputRef>,
) -> Option<Witness> {
    let (first_commit, second_commit) =
        (history.commit_event(earlier)?, history.commit_event(later)?);
    if earlier == later {
        let cause = format!(
            "both were made visible together by {earlier} at {}: a task on the way to {sink} processed them in the wrong order (no replay, no second transaction)",
            first_commit.at
        );
        return Some(Witness::new(
            "reordered-in-transaction",
            cause,
            format!("records reordered inside {sink}'s transactions"),
            vec![first_commit],
        ));
    }
    let replay = history.replay_between(plan, input, first_commit.at, second_commit.at);
    let checkpoints = (history.checkpoint_of(earlier), history.checkpoint_of(later));
    if let (Some(newer), Some(older), None) = (checkpoints.0, checkpoints.1, &replay) {
        if newer > older {
            let cause = format!(
                "{sink} committed {earlier} of {newer} at {} before {later} of the older {older} at {}: transactions committed out of checkpoint order",
                first_commit.at, second_commit.at
            );
            return Some(Witness::new(
                "commits-out-of-checkpoint-order",
                cause,
                format!("{sink} committing transactions out of checkpoint order"),
                vec![first_commit, second_commit],
            ));
        }
    }
    let replay = replay?;
    let (fate, fate_root, mut events) = history.transaction_fate(earlier);
    let root = history.replay_root(earlier, &fate_root, &replay)?;
    let shape = match history.committed_early(earlier) {
        true => "replay-after-early-commit",
        false => "replay-after-failover",
    };
    let cause = format!(
        "{fate}; {}, and {later} committed them at {}, after {earlier} had made later effects visible",
        replay.clause, second_commit.at
    );
    events.push(first_commit);
    events.extend(replay.events);
    events.push(second_commit);
    events.sort_by_key(|event| event.at);
    Some(Witness::new(shape, cause, root, events))
}
