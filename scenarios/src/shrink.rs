//! Shrinking a failing case outside proptest (`snapsim shrink FILE`): greedy delta debugging.
//!
//! proptest shrinks what it generated, inside the test; a case file (from a sweep's failure, a
//! hand-edited schedule, an older fuzz run) has no generator behind it. So the shrinker tries
//! simpler variants of the case one by one — a fault fewer, a shorter outage, an earlier fault,
//! a smaller job for a generated case; a fault fewer (with what undoes it) or a shorter outage
//! for a scenario run's schedule — keeps the first that still violates the property the
//! original violated first, with a witness of the same shape when the original's had one (so
//! that a case does not shrink into another bug), and starts over from it, until no variant
//! does. Every step is a deterministic run, so the same case shrinks to the same minimal case.

use crate::generated::{Case, Episode, Shape};
use crate::replay::{ReplayError, Replayable, ScenarioRun};
use crate::verdict::Failure;
use crate::{Catalog, Outcome, Verdict};
use snapsim_core::config::CheckpointingMode;
use snapsim_core::ids::Tick;
use snapsim_sim::disk::DiskFaults;
use snapsim_sim::faults::{Fault, FaultEvent};
use thiserror::Error;

/// The most runs one shrink makes (each a whole simulated run).
pub const RUNS_MAX: u32 = 2_000;

/// Why a case could not be shrunk.
#[derive(Debug, Error)]
pub enum ShrinkError {
    /// The case holds every property: there is no failure to keep.
    #[error("the case passes every property: nothing to shrink")]
    Passes,
    /// The case could not be run.
    #[error(transparent)]
    Replay(#[from] ReplayError),
}

/// A smaller case that still fails.
pub struct Shrunk {
    /// The minimal case found.
    pub case: Replayable,
    /// Its run.
    pub outcome: Outcome,
    /// The failure it keeps: the original's first.
    pub failure: Failure,
    /// Simplifications kept.
    pub steps: u32,
    /// Runs made.
    pub runs: u32,
}

/// Shrinks `case` (run with `bugs`); `on_step` sees each simplification kept, described.
pub fn shrink(
    catalog: &Catalog,
    case: &Replayable,
    bugs: &[String],
    mut on_step: impl FnMut(&str, &Outcome),
) -> Result<Shrunk, ShrinkError> {
    let (outcome, _) = case.run(catalog, bugs)?;
    if outcome.verdict == Verdict::Passed {
        return Err(ShrinkError::Passes);
    }
    let failure = Failure::of(&outcome.violations[0]);
    let mut current = materialize(catalog, case)?;
    let mut best = outcome;
    let (mut steps, mut runs) = (0, 1);
    'search: while runs < RUNS_MAX {
        for (what, candidate) in simpler(&current) {
            if runs >= RUNS_MAX {
                break 'search;
            }
            runs += 1;
            // A variant that does not run (an invalid job or schedule) is just not simpler.
            let Ok((outcome, _)) = candidate.run(catalog, bugs) else {
                continue;
            };
            if failure.found_in(&outcome.violations).is_some() {
                on_step(&what, &outcome);
                current = candidate;
                best = outcome;
                steps += 1;
                continue 'search;
            }
        }
        break;
    }
    Ok(Shrunk {
        case: current,
        outcome: best,
        failure,
        steps,
        runs,
    })
}

/// A scenario run with its drawn schedule written out, so that its events can be removed.
fn materialize(catalog: &Catalog, case: &Replayable) -> Result<Replayable, ReplayError> {
    Ok(match case {
        Replayable::Scenario(run) if run.schedule.is_none() => Replayable::Scenario(ScenarioRun {
            schedule: Some(case.schedule(catalog)?),
            ..run.clone()
        }),
        _ => case.clone(),
    })
}

/// The one-step simplifications of a case, most promising first, each described.
fn simpler(case: &Replayable) -> Vec<(String, Replayable)> {
    match case {
        Replayable::Generated(case) => simpler_case(case)
            .into_iter()
            .map(|(what, case)| (what, Replayable::Generated(case)))
            .collect(),
        Replayable::Scenario(run) => simpler_run(run)
            .into_iter()
            .map(|(what, run)| (what, Replayable::Scenario(run)))
            .collect(),
    }
}

fn simpler_case(case: &Case) -> Vec<(String, Case)> {
    let mut out = Vec::new();
    for i in 0..case.episodes.len() {
        let mut smaller = case.clone();
        let removed = smaller.episodes.remove(i);
        out.push((format!("without episode {removed:?}"), smaller));
    }
    let mut job_change = |what: &str, change: &dyn Fn(&mut Case)| {
        let mut smaller = case.clone();
        change(&mut smaller);
        if smaller != *case {
            out.push((what.to_string(), smaller));
        }
    };
    job_change("half the records", &|c| {
        c.job.records = (c.job.records / 2).max(1)
    });
    job_change("one source subtask", &|c| c.job.source_parallelism = 1);
    job_change("one partition per source subtask", &|c| {
        c.job.partitions = c.job.source_parallelism
    });
    job_change("keyed parallelism one less", &|c| {
        c.job.keyed_parallelism = (c.job.keyed_parallelism - 1).max(1)
    });
    job_change("half the keys", &|c| c.job.keys = (c.job.keys / 2).max(1));
    job_change("the aggregate shape", &|c| c.job.shape = Shape::Aggregate);
    job_change("exactly-once", &|c| {
        c.job.mode = CheckpointingMode::ExactlyOnce
    });
    job_change("one checkpoint at a time", &|c| c.job.max_concurrent = 1);
    job_change("no min pause", &|c| c.job.min_pause_ticks = 0);
    job_change("the heap backend", &|c| {
        c.job.incremental = false;
        c.job.changelog = None;
    });
    job_change("one retained checkpoint", &|c| c.job.retained = 1);
    job_change("no tolerable failures", &|c| c.job.tolerable_failed = 0);
    for (i, episode) in case.episodes.iter().enumerate() {
        for (what, simpler) in simpler_episode(episode) {
            let mut smaller = case.clone();
            smaller.episodes[i] = simpler;
            out.push((format!("episode {i}: {what}"), smaller));
        }
    }
    out
}

/// An episode with its outage halved, or moved halfway to the earliest fault time.
fn simpler_episode(episode: &Episode) -> Vec<(String, Episode)> {
    let mut out = Vec::new();
    let mut shorter = episode.clone();
    if let Some(ticks) = shorter.duration_mut().filter(|ticks| **ticks > 1) {
        *ticks /= 2;
        out.push(("half as long".to_string(), shorter));
    }
    let mut earlier = episode.clone();
    let at = earlier.at_mut();
    if *at > EARLIEST {
        *at = EARLIEST + (*at - EARLIEST) / 2;
        out.push(("earlier".to_string(), earlier));
    }
    out
}

/// The earliest time shrinking moves a fault to (what the generator draws from).
const EARLIEST: u64 = 20;

fn simpler_run(run: &ScenarioRun) -> Vec<(String, ScenarioRun)> {
    let schedule = run
        .schedule
        .as_ref()
        .expect("materialized before shrinking");
    let events = &schedule.events;
    let with_events = |events: Vec<FaultEvent>| {
        let mut smaller = run.clone();
        smaller.schedule.as_mut().expect("materialized").events = events;
        smaller
    };
    let mut out = Vec::new();
    // A fault and what undoes it go together: a crash without its restart would leave the
    // node down to the heal, a harsher fault, not a simpler one.
    for (i, event) in events.iter().enumerate() {
        let undo = undo_of(events, i);
        let mut fewer = events.clone();
        if let Some(j) = undo {
            fewer.remove(j);
        }
        fewer.remove(i);
        out.push((
            format!("without {:?} at {}", event.fault, event.at),
            with_events(fewer),
        ));
        if let Some(j) = undo {
            let end = events[j].at.0;
            let half = event.at.0 + (end - event.at.0) / 2;
            if half > event.at.0 && half < end {
                let mut shorter = events.clone();
                shorter[j].at = Tick(half);
                shorter.sort_by_key(|e| e.at);
                out.push((
                    format!("{:?} at {} half as long", event.fault, event.at),
                    with_events(shorter),
                ));
            }
        }
    }
    if schedule.disk != DiskFaults::default() {
        let mut smaller = run.clone();
        smaller.schedule.as_mut().expect("materialized").disk = DiskFaults {
            crash: schedule.disk.crash,
            ..DiskFaults::default()
        };
        if smaller != *run {
            out.push(("without background disk faults".to_string(), smaller));
        }
    }
    out
}

/// The index of the first later event that undoes event `i` (a restart after a crash, the heal
/// of a partition, the unclog of a clog), if `i` is a fault that has one.
fn undo_of(events: &[FaultEvent], i: usize) -> Option<usize> {
    let undoes = |later: &Fault| match (&events[i].fault, later) {
        (Fault::Crash(a), Fault::Restart(b)) => a == b,
        (Fault::Partition { a, b }, Fault::HealPartition { a: c, b: d }) => {
            (a, b) == (c, d) || (a, b) == (d, c)
        }
        (Fault::ClogLink { from, to }, Fault::UnclogLink { from: f, to: t }) => {
            (from, to) == (f, t)
        }
        (Fault::ClogNode(a), Fault::UnclogNode(b)) => a == b,
        _ => false,
    };
    (i + 1..events.len()).find(|&j| undoes(&events[j].fault))
}
