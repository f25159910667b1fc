//! The witness of a job that did not finish: its last progress, and what each task of the
//! current attempt was waiting for when the run ended.
//!
//! A stalled job's symptom is only "it did not finish in time". Its cause is where the
//! protocol stopped: a checkpoint pending with some tasks still aligning (which channel's
//! barrier never came, and from whom), snapshots taken but never acknowledged, a final
//! checkpoint never triggered after every task processed its input, or a TaskManager that stayed
//! down. Read off the trace in one pass.

use super::witness::{Witness, WitnessEvent};
use crate::trace::{TraceEntry, TraceEvent};
use snapsim_core::ids::{Attempt, ChannelIndex, CheckpointId, TaskId, Tick};
use snapsim_core::job::ExecutionPlan;
use snapsim_core::messages::Address;
use snapsim_core::trace::EngineEvent;
use std::collections::{BTreeMap, BTreeSet};

/// Tasks named per kind of wait before "and N more".
const TASKS_NAMED: usize = 4;

/// What the trace says about the job at its end.
#[derive(Default)]
struct Ending<'t> {
    /// The last event that moved the job towards its end, and its name.
    progress: Option<(&'t TraceEntry, String)>,
    attempt: Attempt,
    status: Option<String>,
    /// Checkpoints triggered and not ended: id → the trigger.
    pending: BTreeMap<CheckpointId, &'t TraceEntry>,
    /// Per task, for the current attempt: the channels its barrier of each checkpoint came on,
    /// and the first of them.
    barriers: BTreeMap<(CheckpointId, TaskId), (BTreeSet<ChannelIndex>, &'t TraceEntry)>,
    snapshots: BTreeMap<(CheckpointId, TaskId), &'t TraceEntry>,
    acknowledged: BTreeSet<(CheckpointId, TaskId)>,
    /// When every task had processed its input (and the first id that can be the final one).
    consumed: Option<(&'t TraceEntry, CheckpointId)>,
    /// Nodes down at the end, each with its crash.
    down: BTreeMap<Address, &'t TraceEntry>,
}

impl<'t> Ending<'t> {
    fn of(trace: &'t [TraceEntry]) -> Ending<'t> {
        let mut ending = Ending::default();
        for entry in trace {
            match &entry.event {
                TraceEvent::Engine(event) => ending.see(entry, event),
                TraceEvent::Crash => {
                    ending.down.insert(entry.node, entry);
                }
                TraceEvent::Restart => {
                    ending.down.remove(&entry.node);
                }
                _ => {}
            }
        }
        ending
    }

    fn see(&mut self, entry: &'t TraceEntry, event: &EngineEvent) {
        let progress = match event {
            EngineEvent::JobStatus { status, attempt } => {
                self.status = Some(format!("{status:?}"));
                self.attempt = *attempt;
                format!("the job {status:?}")
            }
            EngineEvent::Deployed { attempt, restored } => {
                self.attempt = *attempt;
                self.barriers.clear();
                self.snapshots.clear();
                match restored {
                    Some(checkpoint) => format!("{attempt} deployed from {checkpoint}"),
                    None => format!("{attempt} deployed"),
                }
            }
            EngineEvent::InputConsumed { final_from } => {
                self.consumed = Some((entry, *final_from));
                "every task processed its input".to_string()
            }
            EngineEvent::CheckpointCompleted { checkpoint } => {
                self.pending.remove(checkpoint);
                format!("{checkpoint} completed")
            }
            EngineEvent::Committed { task, transaction } => {
                format!("{task} committed {transaction}")
            }
            _ => return self.see_step(entry, event),
        };
        self.progress = Some((entry, progress));
    }

    /// A step of a checkpoint: not progress by itself.
    fn see_step(&mut self, entry: &'t TraceEntry, event: &EngineEvent) {
        match event {
            EngineEvent::CheckpointTriggered { checkpoint }
            | EngineEvent::SavepointTriggered { checkpoint } => {
                self.pending.insert(*checkpoint, entry);
            }
            EngineEvent::CheckpointAborted { checkpoint, .. }
            | EngineEvent::SavepointCompleted { checkpoint, .. } => {
                self.pending.remove(checkpoint);
            }
            EngineEvent::BarrierReceived {
                task,
                attempt,
                channel,
                checkpoint,
                ..
            } if *attempt == self.attempt => {
                let key = (*checkpoint, *task);
                let (channels, _) = (self.barriers.entry(key)).or_insert((BTreeSet::new(), entry));
                channels.insert(*channel);
            }
            EngineEvent::SnapshotTaken {
                task,
                attempt,
                checkpoint,
                ..
            } if *attempt == self.attempt => {
                self.snapshots.insert((*checkpoint, *task), entry);
            }
            EngineEvent::Acknowledged { task, checkpoint } => {
                self.acknowledged.insert((*checkpoint, *task));
            }
            _ => {}
        }
    }
}

/// The witness of a job that did not finish by `end`: `trace` is the run's own (not an earlier
/// job's it follows).
pub fn stall_witness(trace: &[TraceEntry], plan: &ExecutionPlan, end: Tick) -> Witness {
    let ending = Ending::of(trace);
    let mut events: Vec<WitnessEvent> = Vec::new();
    let since = match &ending.progress {
        Some((entry, what)) => {
            events.push(WitnessEvent::of(entry, what.clone()));
            format!("after {} at t={}", what, entry.at.0)
        }
        None => "at all".to_string(),
    };
    let mut clauses: Vec<String> = Vec::new();
    match ending.pending.iter().next_back() {
        Some((&checkpoint, trigger)) => {
            events.push(WitnessEvent::of(trigger, format!("{checkpoint} triggered")));
            clauses.push(pending_clause(
                &ending,
                plan,
                checkpoint,
                trigger,
                &mut events,
            ));
        }
        None => clauses.push(idle_clause(&ending, &mut events)),
    }
    for (node, crash) in &ending.down {
        events.push(WitnessEvent::of(crash, format!("{node} crashed")));
        clauses.push(format!("{node} was down since t={}", crash.at.0));
    }
    events.sort_by_key(|e| e.at);
    let status = ending.status.as_deref().unwrap_or("not started");
    Witness::new(
        "stalled",
        format!(
            "the job made no progress {since}; at the end (t={}) it was {status}: {}",
            end.0,
            clauses.join("; ")
        ),
        format!("the job stalled {since}"),
        events,
    )
}

/// What kept the latest pending checkpoint from completing, task by task.
fn pending_clause(
    ending: &Ending,
    plan: &ExecutionPlan,
    checkpoint: CheckpointId,
    trigger: &TraceEntry,
    events: &mut Vec<WitnessEvent>,
) -> String {
    let mut waits: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for task in &plan.tasks {
        let key = (checkpoint, task.id);
        if ending.acknowledged.contains(&key) {
            let wait = "acknowledged".to_string();
            waits.entry(wait).or_default().push(task.name.clone());
        } else if let Some(snapshot) = ending.snapshots.get(&key) {
            let wait = "snapshotted, never acknowledged".to_string();
            let tasks = waits.entry(wait).or_default();
            if tasks.len() < TASKS_NAMED {
                events.push(WitnessEvent::of(
                    snapshot,
                    format!("{} snapshots {checkpoint}", task.name),
                ));
            }
            tasks.push(task.name.clone());
        } else {
            let arrived = ending.barriers.get(&key);
            let missing: Vec<&str> = (task.inputs.iter().enumerate())
                .filter(|(index, _)| {
                    let channel = ChannelIndex(*index as u16);
                    !arrived.is_some_and(|(arrived, _)| arrived.contains(&channel))
                })
                .map(|(_, input)| plan.tasks[input.upstream.0 as usize].name.as_str())
                .collect();
            let wait = match (arrived, task.inputs.is_empty()) {
                (_, true) => "a source without its barrier (trigger lost?)".to_string(),
                (None, false) => "no barrier yet".to_string(),
                (Some(_), false) => format!("aligning, no barrier from {}", missing.join(", ")),
            };
            let tasks = waits.entry(wait).or_default();
            if let (Some((_, first)), true) = (arrived, tasks.len() < TASKS_NAMED) {
                let what = format!("{} aligns {checkpoint}: its first barrier", task.name);
                events.push(WitnessEvent::of(first, what));
            }
            tasks.push(task.name.clone());
        }
    }
    let tasks: Vec<String> = (waits.iter())
        .map(|(wait, tasks)| format!("{wait}: {}", named(tasks)))
        .collect();
    format!(
        "{checkpoint}, triggered at t={}, still pending ({})",
        trigger.at.0,
        tasks.join("; ")
    )
}

/// What the job waited for with no checkpoint pending.
fn idle_clause(ending: &Ending, events: &mut Vec<WitnessEvent>) -> String {
    match ending.consumed {
        Some((consumed, final_from)) => {
            let what = "every task processed its input".to_string();
            events.push(WitnessEvent::of(consumed, what));
            format!(
                "every task had processed its input at t={}, but no final checkpoint (from {final_from} on) was pending",
                consumed.at.0
            )
        }
        None => "no checkpoint was pending".to_string(),
    }
}

/// The first few task names, and how many more.
fn named(tasks: &[String]) -> String {
    let mut text = tasks[..tasks.len().min(TASKS_NAMED)].join(", ");
    if tasks.len() > TASKS_NAMED {
        text += &format!(" and {} more", tasks.len() - TASKS_NAMED);
    }
    text
}
