//! snapsim-scenarios: named jobs with their fault schedules, and running them with a verdict.
//!
//! The one design decision to know: a scenario is plain data drawn from a seed (job shape,
//! input logs, cluster, faults), so (scenario, seed, build) fixes the run. The verdict compares
//! the run with the same scenario's failure-free oracle, run by the in-process driver.

#![deny(missing_docs)]

pub mod bench;
pub mod campaign;
pub mod catalog;
pub mod cli;
pub mod fuzz;
pub mod generated;
mod paper;
pub mod profiles;
pub mod replay;
pub mod report;
mod resume;
pub mod shrink;
pub mod sweep;

pub use catalog::{Catalog, Draws, NameError, Scenario, UnknownScenario};

use serde::{Deserialize, Serialize};
use snapsim_core::bugs::SeededBug;
use snapsim_core::cluster::ClusterConfig;
use snapsim_core::config::{CheckpointingMode, RestartStrategyConfig};
use snapsim_core::ids::{EventTime, Key, Offset, OperatorId, PartitionId, TaskId, Tick};
use snapsim_core::job::{
    AggregateFn, ExecutionPlan, InputSide, JobError, JobGraph, MapFn, OperatorKind, Partitioning,
    SourceLog,
};
use snapsim_core::operator::OperatorState;
use snapsim_core::probes::Probe;
use snapsim_core::record::SourceRecord;
use snapsim_core::storage::{CheckpointStorage, StorageOp, StoragePath};
use snapsim_core::testing::LocalCluster;
use snapsim_core::trace::{EngineEvent, JobStatus};
use snapsim_reports::timeline::Timeline;
use snapsim_sim::check::{self, Checker, Ending, JudgedRun, Property, Violation};
use snapsim_sim::disk::DiskFaults;
use snapsim_sim::faults::FaultSchedule;
use snapsim_sim::harness::{self, Handover, RunConfig, RunEnd, RunResult, INPUTS_MAX_DEFAULT};
use snapsim_sim::liveness::{self, LivenessBound};
use snapsim_sim::model::ReferenceModel;
use snapsim_sim::rng::SimRng;
use snapsim_sim::trace::{TraceEntry, TraceEvent};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use thiserror::Error;

/// The commit this build was made from (set by the build script; "unknown" outside git).
pub const BUILD_COMMIT: &str = env!("SNAPSIM_COMMIT");

/// What a scenario draws from a seed.
pub struct Setup {
    /// The job.
    pub job: JobGraph,
    /// The cluster.
    pub cluster: ClusterConfig,
    /// The adversary.
    pub schedule: FaultSchedule,
    /// The run of an earlier job on the same cluster, when this job resumes from the snapshot
    /// that one left (see [`resume`]); the oracle starts from it too.
    pub after: Option<Earlier>,
}

/// The run of an earlier job that a setup's job follows.
#[derive(Clone, Debug)]
pub enum Earlier {
    /// It left a snapshot to start from.
    Ran(Arc<Handover>),
    /// It did not (an engine defect, as it runs without faults): the run's crash.
    Failed(String),
}

impl Setup {
    fn handover(&self) -> Option<&Arc<Handover>> {
        match &self.after {
            Some(Earlier::Ran(handover)) => Some(handover),
            _ => None,
        }
    }
}

/// The built-in scenarios, in listing order.
pub(crate) fn builtin_scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "keyed-sum",
            description: "2 sources (p=2) → keyBy running sum (p=2) → 2PC sink, 4,000 records, checkpoints every 50 ms, on files",
            faults: "tm-crash",
            job: Arc::new(keyed_sum_on_files),
            resumes: false,
            refuses_channel_state: None,
        },
        Scenario {
            name: "keyed-agg",
            description: "the benchmark's standard job: 2 sources → keyBy sum (p=4) → 2PC sink (p=4), 20,000 records, checkpoints every 50 ms, on files",
            faults: "crashes-and-storage",
            job: Arc::new(keyed_agg_standard),
            resumes: false,
            refuses_channel_state: None,
        },
        Scenario {
            name: "keyed-sum-calm",
            description: "the keyed-sum job with its state in the JobManager's memory",
            faults: "none",
            job: Arc::new(keyed_sum_in_memory),
            resumes: false,
            refuses_channel_state: None,
        },
        Scenario {
            name: "swarm",
            description: "the keyed-sum job (heap or incremental backend, savepoints allowed, restarts without limit, 0–3 tolerable failures, 1 s checkpoint timeout)",
            faults: "swarm",
            job: Arc::new(keyed_sum_for_swarm),
            resumes: false,
            refuses_channel_state: None,
        },
        Scenario {
            name: "co-window",
            description: "two sources → keyed co-sum (two inputs) → 2PC sink, and left → tumbling window → 2PC sink, 3 TaskManagers",
            faults: "tm-crash",
            job: Arc::new(co_window),
            resumes: false,
            refuses_channel_state: None,
        },
        Scenario {
            name: "back-pressure",
            description: "the keyed-sum job with a slow sink (3 records per tick and subtask against about 4 arriving): its input queues grow, aligned barriers wait behind them",
            faults: "tm-crash",
            job: Arc::new(back_pressure),
            resumes: false,
            refuses_channel_state: None,
        },
        Scenario {
            name: "hot-key",
            description: "key skew: the keyed-sum job with half the records on one key and a slow sum (3 per tick and subtask): the hot key's subtask falls behind, the other does not",
            faults: "tm-crash",
            job: Arc::new(hot_key),
            resumes: false,
            refuses_channel_state: None,
        },
        Scenario {
            name: "chain-join",
            description: "order-sensitive state and a deeper graph: left (p=2) → map → keyBy hash chain per key and source partition (p=2) → 2PC sink; right (p=2) → keyBy chain (p=3); both chains → keyBy co-sum (p=3) → 2PC sink; 3 TaskManagers, up to 2 checkpoints at once, a min pause of 20 ms",
            faults: "crashes-and-storage",
            job: Arc::new(chain_join),
            resumes: false,
            refuses_channel_state: None,
        },
        Scenario {
            name: "memory-budget",
            description: "the keyed-sum job with its state in the JobManager's memory, up to 2 checkpoints at once, under a memory budget that holds about two checkpoints' state: an acknowledgement that would pass it is refused (a declined checkpoint, tolerated)",
            faults: "tm-crash",
            job: Arc::new(keyed_sum_in_memory_budget),
            resumes: false,
            refuses_channel_state: Some(
                "its memory budget is sized for aligned snapshots; the in-flight records of a \
                 channel-state snapshot grow with back-pressure past any budget, and a job whose \
                 every checkpoint is refused never commits its last records",
            ),
        },
        Scenario {
            name: "resume",
            description: "a new job started from the snapshot an earlier job left (a savepoint before a cancellation, or its latest checkpoint retained on cancellation; CLAIM or NO_CLAIM, drawn), the keyed-sum job on files; judged with the earlier job's output",
            faults: "tm-crash",
            job: Arc::new(resumed_keyed_sum),
            resumes: true,
            refuses_channel_state: None,
        },
        Scenario {
            name: "map-only",
            description: "2 sources (p=2) → map → 2PC sink over forward edges only: every task has one input channel, so nothing ever aligns",
            faults: "tm-crash",
            job: Arc::new(map_only),
            resumes: false,
            refuses_channel_state: None,
        },
    ]
}

/// The verdict of one run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Verdict {
    /// Every property held.
    Passed,
    /// The engine panicked (an assertion failed).
    Crash,
    /// The job did not finish (time ran out, or the restart strategy gave up).
    Liveness,
    /// A correctness property was violated.
    Correctness,
}

/// Figures of one run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Checkpoints completed.
    pub checkpoints_completed: u64,
    /// Checkpoints aborted.
    pub checkpoints_aborted: u64,
    /// Failovers (restarts of the job).
    pub restarts: u64,
    /// Records in the committed output.
    pub records_committed: u64,
    /// Virtual time at the end, in ms.
    pub virtual_ticks: u64,
    /// Trace entries.
    pub trace_events: u64,
    /// At-least-once mode: effects committed more than once (allowed, counted).
    #[serde(default)]
    pub duplicates: u64,
    /// The duration of each completed checkpoint, trigger to completion (ms).
    #[serde(default)]
    pub checkpoint_ms: Vec<u64>,
    /// The recovery time of each failover after which the job ran again (ms).
    #[serde(default)]
    pub recovery_ms: Vec<u64>,
    /// Each completed checkpoint's longest barrier alignment at a task (ms).
    #[serde(default)]
    pub alignment_ms: Vec<u64>,
    /// Each completed checkpoint's operator state, encoded (bytes).
    #[serde(default)]
    pub state_bytes: Vec<u64>,
    /// Each completed checkpoint's channel state: in-flight records persisted, encoded (bytes).
    #[serde(default)]
    pub in_flight_bytes: Vec<u64>,
    /// Records replayed after failovers: in-flight records restored from channel state, plus
    /// source records read again from the restored offsets up to the furthest offsets the
    /// failed attempt snapshotted (a lower bound of what it had read).
    #[serde(default)]
    pub replayed_records: u64,
    /// How the job ended when it ended for good without finishing and rightly so (its restart
    /// strategy gave up, a client cancelled it); such a run is judged on what it committed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_early: Option<String>,
    /// The engine's coverage probes the run reached (`snapsim_core::probes`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub probes: Vec<Probe>,
}

/// The outcome of one run of a scenario.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Outcome {
    /// The scenario.
    pub scenario: String,
    /// The seed.
    pub seed: u64,
    /// The verdict.
    pub verdict: Verdict,
    /// Violated properties (empty when passed).
    pub violations: Vec<Violation>,
    /// Figures.
    pub stats: Stats,
    /// The trace hash (equal for equal (scenario, seed, build)).
    pub trace_hash: u64,
    /// What the run changed from the scenario's own choices (nothing in a plain run).
    #[serde(flatten)]
    pub variant: Variant,
}

impl Outcome {
    /// The command that replays this run.
    pub fn replay_line(&self, catalog: &Catalog) -> String {
        format!(
            "{} run --scenario {} --seed {}{}",
            catalog.command(),
            self.scenario,
            self.seed,
            self.variant.flags()
        )
    }
}

/// What a run of a named scenario changes from the scenario's own choices: `--faults`,
/// `--algorithm` and `--bug` on the command line. Outcomes, sweep manifests and replay lines
/// carry it, so every run can be made again.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Variant {
    /// A fault profile instead of the scenario's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub faults: Option<String>,
    /// A snapshot algorithm instead of the scenario's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithm: Option<String>,
    /// Seeded bugs switched on, by name, sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bugs: Vec<String>,
}

impl Variant {
    /// A variant from command-line names, each checked (bugs sorted, each once).
    pub fn new(
        catalog: &Catalog,
        faults: Option<String>,
        algorithm: Option<String>,
        bugs: &[String],
    ) -> Result<Variant, NameError> {
        let variant = Variant {
            faults,
            algorithm,
            bugs: SeededBug::all_named(bugs)?
                .iter()
                .map(|b| b.to_string())
                .collect(),
        };
        variant.check(catalog)?;
        Ok(variant)
    }

    /// Checks every name (a variant read from a file was never checked).
    pub fn check(&self, catalog: &Catalog) -> Result<(), NameError> {
        if let Some(name) = &self.faults {
            catalog.profile(name)?;
        }
        if let Some(name) = &self.algorithm {
            catalog.algorithm(name)?;
        }
        SeededBug::all_named(&self.bugs)?;
        Ok(())
    }

    /// The command-line flags that make this variant (empty for none).
    pub fn flags(&self) -> String {
        let mut flags = String::new();
        if let Some(name) = &self.faults {
            flags += &format!(" --faults {name}");
        }
        if let Some(name) = &self.algorithm {
            flags += &format!(" --algorithm {name}");
        }
        for bug in &self.bugs {
            flags += &format!(" --bug {bug}");
        }
        flags
    }

    /// Why `scenario` cannot be judged fairly with this variant, if it cannot (see
    /// [`Scenario::refuses`]); an unknown algorithm is no reason (its name is checked apart).
    pub fn refused_by(&self, catalog: &Catalog, scenario: &Scenario) -> Option<String> {
        let algorithm = catalog.algorithm(self.algorithm.as_deref()?).ok()?;
        scenario.refuses(algorithm.as_ref())
    }

    /// The setup of `scenario` with `seed` changed as this variant says.
    pub fn setup(
        &self,
        catalog: &Catalog,
        scenario: &Scenario,
        seed: u64,
    ) -> Result<Setup, NameError> {
        let profile = catalog.profile(self.faults.as_deref().unwrap_or(scenario.faults))?;
        if let Some(reason) = self.refused_by(catalog, scenario) {
            return Err(NameError::Refused(reason));
        }
        let mut draws = Draws::new(seed);
        let (mut job, mut cluster) = (scenario.job)(&mut draws);
        if let Some(name) = &self.algorithm {
            let algorithm = catalog.algorithm(name)?;
            job.plugged = snapsim_core::algorithm::configure(&mut job.checkpoint, algorithm);
        }
        let mut after = None;
        if scenario.resumes {
            // A panic in the earlier run's harness is caught there; one here is the run's too.
            let (earlier, on) = (job.clone(), cluster.clone());
            let resumed = guarded(|| resume::resume(&mut draws.timing, earlier, on, seed));
            after = Some(match resumed.and_then(|resumed| resumed) {
                Ok(resumed) => {
                    (job, cluster) = (resumed.job, resumed.cluster);
                    Earlier::Ran(resumed.after)
                }
                Err(why) => Earlier::Failed(why),
            });
        }
        job.bugs.extend(SeededBug::all_named(&self.bugs)?);
        let schedule = profile.draw(&mut draws.faults, cluster.task_managers);
        Ok(Setup {
            job,
            cluster,
            schedule,
            after,
        })
    }
}

/// Runs a generated case with the seeded `bugs` switched on, judged against the bug-free
/// oracle.
pub fn run_case(
    catalog: &Catalog,
    case: &generated::Case,
    bugs: &BTreeSet<SeededBug>,
) -> Result<(Outcome, RunResult), CaseError> {
    let mut setup = case.setup(catalog)?;
    setup.job.bugs.extend(bugs);
    Ok(judge(catalog, "generated", case.seed, setup)?)
}

/// Why a generated case cannot run.
#[derive(Debug, Error)]
pub enum CaseError {
    /// It names an algorithm the catalog lacks.
    #[error(transparent)]
    Name(#[from] NameError),
    /// Its job breaks a rule of the engine.
    #[error(transparent)]
    Job(#[from] JobError),
}

/// Draws the scenario's setup for `seed`, with its own fault profile.
pub fn setup(catalog: &Catalog, scenario: &Scenario, seed: u64) -> Setup {
    Variant::default()
        .setup(catalog, scenario, seed)
        .expect("a scenario's own profile exists")
}

/// Runs `scenario` with `seed` and judges it against the failure-free oracle.
pub fn run(catalog: &Catalog, scenario: &Scenario, seed: u64) -> (Outcome, RunResult) {
    run_variant(catalog, scenario, seed, &Variant::default()).expect("a plain run names nothing")
}

/// Runs `scenario` with `seed` changed as `variant` says, judged against the failure-free
/// oracle of the same job without seeded bugs.
pub fn run_variant(
    catalog: &Catalog,
    scenario: &Scenario,
    seed: u64,
    variant: &Variant,
) -> Result<(Outcome, RunResult), RunError> {
    let setup = variant.setup(catalog, scenario, seed)?;
    Ok(judge_variant(catalog, scenario, seed, variant, setup)?)
}

/// Why a scenario cannot run.
#[derive(Debug, Error)]
pub enum RunError {
    /// A name of the variant names nothing, or the combination is refused.
    #[error(transparent)]
    Name(#[from] NameError),
    /// The scenario's job breaks a rule of the engine (a scenario's mistake).
    #[error("scenario's job is not valid: {0}")]
    Job(#[from] JobError),
}

/// Judges `setup`, a run of `scenario` changed as `variant` says (and perhaps given its own
/// schedule), and records the variant in the outcome.
pub fn judge_variant(
    catalog: &Catalog,
    scenario: &Scenario,
    seed: u64,
    variant: &Variant,
    setup: Setup,
) -> Result<(Outcome, RunResult), JobError> {
    let (mut outcome, result) = judge(catalog, scenario.name, seed, setup)?;
    outcome.variant = variant.clone();
    Ok((outcome, result))
}

/// Runs a setup (a scenario's, perhaps changed: another schedule, another job option, seeded
/// bugs) and judges it against the failure-free oracle of its job without the bugs.
///
/// A panic anywhere (an engine assertion in the run or in the oracle, a checker's) is this
/// run's `no-crash` failure, never the caller's: a sweep goes on with its other runs.
pub fn judge(
    catalog: &Catalog,
    name: &str,
    seed: u64,
    setup: Setup,
) -> Result<(Outcome, RunResult), JobError> {
    let plan = Arc::new(setup.job.clone().build()?);
    let setup_bugs: Vec<String> = setup.job.bugs.iter().map(|b| b.to_string()).collect();
    let variant = Variant {
        bugs: setup_bugs,
        ..Variant::default()
    };
    if let Some(Earlier::Failed(why)) = &setup.after {
        let message = format!("the earlier job this one was to resume from failed: {why}");
        return Ok(earlier_failed(name, seed, variant, message));
    }
    // The oracle has none of the run's seeded bugs but those on every run's path.
    let mut clean = setup.job.clone();
    clean.bugs.retain(|bug| bug.in_oracle());
    let clean_plan = Arc::new(clean.clone().build()?);
    let failure_free = guarded(|| {
        let model = ReferenceModel::new(&clean);
        let (oracle, job_ticks) = oracle(&clean_plan, &setup);
        (model, oracle, job_ticks)
    });
    // The liveness phase lasts the profile's window or what the configuration needs, whichever
    // is longer (see `snapsim_sim::liveness`).
    let job_ticks = failure_free.as_ref().map_or(0, |(_, _, ticks)| *ticks);
    let bound = LivenessBound::of(&plan, &setup.cluster, job_ticks);
    let handover = setup.handover().cloned();
    let mut schedule = setup.schedule;
    schedule.liveness_ticks = schedule.liveness_ticks.max(bound.ticks());
    // In the run's own time: a run that follows an earlier one starts where that one ended.
    let start = handover.as_ref().map_or(0, |before| before.ended_at.0);
    let phase = LivenessPhase {
        heal_at: schedule.heal_at.after(start),
        deadline: schedule.deadline().after(start),
        bound,
    };
    let first_trigger_delay = setup.cluster.first_trigger_delay_ticks;
    let earlier = handover.as_ref().map_or(0, |before| before.trace.len());
    let disk = schedule.disk.clone();
    let result = harness::run(RunConfig {
        seed,
        plan: plan.clone(),
        cluster: setup.cluster,
        schedule,
        inputs_max: INPUTS_MAX_DEFAULT,
        after: handover,
        hands_over: false,
    });
    let crash = |message: String| Violation {
        property: Property::NoCrash,
        message,
        at: Some(Tick(result.virtual_ticks)),
    };
    let (mut violations, duplicates, ended_early) = match failure_free {
        Ok((model, oracle, _)) => {
            let run = RunUnderJudgement {
                plan: &plan,
                clean: &clean_plan,
                model: &model,
                oracle: &oracle,
                result: &result,
                earlier,
                disk: &disk,
                first_trigger_delay,
                phase: &phase,
            };
            guarded(|| run.check(catalog.checkers())).unwrap_or_else(|message| {
                (
                    vec![crash(format!("a checker panicked: {message}"))],
                    0,
                    None,
                )
            })
        }
        Err(message) => {
            let mut violations = vec![crash(format!(
                "the failure-free oracle (the same job without faults, in-process) panicked: {message}"
            ))];
            if let RunEnd::Panicked(message) = &result.end {
                violations.push(crash(message.clone()));
            }
            (violations, 0, None)
        }
    };
    let figures = guarded(|| stats(&result)).unwrap_or_else(|message| {
        violations.push(crash(format!(
            "reading the run's figures panicked: {message}"
        )));
        Stats::default()
    });
    violations.sort_by_key(|v| v.property.rank());
    let verdict = verdict(&violations);
    let stats = Stats {
        duplicates,
        ended_early,
        ..figures
    };
    let outcome = Outcome {
        scenario: name.to_string(),
        seed,
        verdict,
        violations,
        stats,
        trace_hash: result.trace_hash,
        variant,
    };
    Ok((outcome, result))
}

/// The outcome of a run whose earlier job failed: a crash, with nothing run.
fn earlier_failed(
    name: &str,
    seed: u64,
    variant: Variant,
    message: String,
) -> (Outcome, RunResult) {
    let result = RunResult {
        seed,
        end: RunEnd::Panicked(message.clone()),
        virtual_ticks: 0,
        inputs: 0,
        committed: Vec::new(),
        anomalies: Vec::new(),
        dangling_transactions: Vec::new(),
        trace: Vec::new(),
        trace_hash: snapsim_sim::trace::trace_hash(&[]),
        files: Vec::new(),
        probes: Default::default(),
        handover: None,
    };
    let violation = Violation {
        property: Property::NoCrash,
        message,
        at: None,
    };
    let outcome = Outcome {
        scenario: name.to_string(),
        seed,
        verdict: Verdict::Crash,
        violations: vec![violation],
        stats: Stats::default(),
        trace_hash: result.trace_hash,
        variant,
    };
    (outcome, result)
}

/// Runs `f`, turning a panic into its message. The harness does the same for the simulated
/// run (its thread's panic); this covers what runs in the caller's thread: the oracle, the
/// model and the checkers.
fn guarded<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|panic| {
        panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "panic without a message".to_string())
    })
}

/// When the liveness phase began and ended, and why it lasted that long.
struct LivenessPhase {
    heal_at: Tick,
    deadline: Tick,
    bound: LivenessBound,
}

impl LivenessPhase {
    fn timed_out(&self) -> String {
        format!(
            "the job did not finish within {} ms of virtual time (faults healed at {}; liveness bound {})",
            self.deadline.0, self.heal_at, self.bound
        )
    }
}

/// A finished simulated run with what it is judged against.
struct RunUnderJudgement<'a> {
    plan: &'a ExecutionPlan,
    /// The job as the oracle ran it (without the run's seeded bugs).
    clean: &'a ExecutionPlan,
    model: &'a ReferenceModel,
    oracle: &'a [snapsim_core::sink::CommittedRecord],
    result: &'a RunResult,
    /// How many entries of the trace an earlier job's run left (see [`resume`]): the
    /// properties of the job's own history are judged after them.
    earlier: usize,
    /// The storage node's disk faults from the start (the trace shows only later changes).
    disk: &'a DiskFaults,
    first_trigger_delay: u64,
    phase: &'a LivenessPhase,
}

impl RunUnderJudgement<'_> {
    /// Every property: the violations, the duplicates (at-least-once) and, for a job that
    /// ended for good rightly without finishing, how it ended.
    fn check(&self, checkers: &[Arc<dyn Checker>]) -> (Vec<Violation>, u64, Option<String>) {
        let (plan, result) = (self.plan, self.result);
        let (ending, end_violations, ended_early) = self.ending();
        let actual = check::outputs(&result.committed, plan);
        let expected = check::outputs(self.oracle, self.clean);
        let run = JudgedRun {
            plan,
            clean: self.clean,
            model: self.model,
            oracle: self.oracle,
            committed: &result.committed,
            actual: &actual,
            expected: &expected,
            trace: &result.trace,
            own_from: self.earlier,
            files: &result.files,
            terminated: match result.end {
                RunEnd::Terminated(status) => Some(status),
                _ => None,
            },
            ending,
            first_trigger_delay: self.first_trigger_delay,
            // An at-least-once job that follows another reads again what that one committed last.
            replays: self.earlier > 0 && plan.checkpoint.mode == CheckpointingMode::AtLeastOnce,
        };
        let mut violations: Vec<Violation> = checkers.iter().flat_map(|c| c.check(&run)).collect();
        violations.extend(end_violations);
        (violations, check::duplicates(&run), ended_early)
    }

    /// How far the run's output can be judged, the violation that says why when it cannot, and
    /// for a job that ended for good rightly without finishing, how it ended.
    fn ending(&self) -> (Ending, Vec<Violation>, Option<String>) {
        let at = Some(Tick(self.result.virtual_ticks));
        let not_judged = |property, message| {
            let violation = Violation {
                property,
                message,
                at,
            };
            (Ending::NotJudged, vec![violation], None)
        };
        match &self.result.end {
            RunEnd::Panicked(message) => not_judged(Property::NoCrash, message.clone()),
            RunEnd::Terminated(JobStatus::Finished) => (Ending::Finished, Vec::new(), None),
            RunEnd::Terminated(status) => {
                let own_trace = &self.result.trace[self.earlier..];
                match liveness::justified_end(own_trace, self.plan, *status, self.disk) {
                    Ok(why) => {
                        let how = format!("{status:?}: {why}");
                        (Ending::EndedEarly(*status), Vec::new(), Some(how))
                    }
                    Err(why) => not_judged(
                        Property::Liveness,
                        format!("the job ended {status:?} instead of finishing: {why}"),
                    ),
                }
            }
            RunEnd::TimedOut => not_judged(Property::Liveness, self.phase.timed_out()),
            RunEnd::InputLimit(limit) => not_judged(
                Property::Liveness,
                format!("the nodes handled more than {limit} inputs (a livelock?)"),
            ),
        }
    }
}

/// What `snapsim run` and `replay` print for a run: the verdict, its statistics, each
/// violation, the line that replays it, and the trace entries just before the first violation
/// with a time (what led to it).
pub fn describe_run(outcome: &Outcome, trace: &[TraceEntry], replay_line: &str) -> String {
    use std::fmt::Write;
    let s = &outcome.stats;
    let mut text = format!(
        "scenario {} seed {}: {:?}\n",
        outcome.scenario, outcome.seed, outcome.verdict
    );
    let _ = writeln!(
        text,
        "  checkpoints completed {} aborted {}, failovers {}, records committed {}, virtual time {} ms, trace hash {:016x}",
        s.checkpoints_completed, s.checkpoints_aborted, s.restarts, s.records_committed, s.virtual_ticks, outcome.trace_hash
    );
    if let Some(end) = &s.ended_early {
        let _ = writeln!(text, "  the job ended {end}; judged on what it committed");
    }
    for violation in &outcome.violations {
        let _ = writeln!(
            text,
            "  violated {}: {}",
            violation.property, violation.message
        );
    }
    let _ = writeln!(text, "  replay: {replay_line}");
    if let Some((at, entries)) = trace_before_violation(outcome, trace) {
        let _ = writeln!(text, "  the trace up to {at}:");
        for entry in entries {
            let _ = writeln!(text, "    {}", describe_entry(entry));
        }
    }
    text
}

/// The last trace entries up to the first violation that has a time, with that time.
pub fn trace_before_violation<'t>(
    outcome: &Outcome,
    trace: &'t [TraceEntry],
) -> Option<(Tick, &'t [TraceEntry])> {
    const ENTRIES: usize = 12;
    let at = outcome.violations.iter().find_map(|v| v.at)?;
    let end = trace.partition_point(|entry| entry.at <= at);
    Some((at, &trace[end.saturating_sub(ENTRIES)..end]))
}

/// One trace entry as a line: time, node, event.
pub fn describe_entry(entry: &TraceEntry) -> String {
    format!("{} {:?} {:?}", entry.at, entry.node, entry.event)
}

/// A run's verdict from its violations: a crash first, then correctness, then liveness (a
/// job that broke a safety property and then also hung is reported for the safety property).
fn verdict(violations: &[Violation]) -> Verdict {
    let has = |wanted: &[Property]| violations.iter().any(|v| wanted.contains(&v.property));
    if has(&[Property::NoCrash]) {
        Verdict::Crash
    } else if violations.iter().any(|v| v.property != Property::Liveness) {
        Verdict::Correctness
    } else if has(&[Property::Liveness]) {
        Verdict::Liveness
    } else {
        Verdict::Passed
    }
}

/// The failure-free run of the same job, in the in-process driver: what it committed, and how
/// long it took (virtual ms).
fn oracle(
    plan: &Arc<ExecutionPlan>,
    setup: &Setup,
) -> (Vec<snapsim_core::sink::CommittedRecord>, u64) {
    let mut local = LocalCluster::start((**plan).clone(), setup.cluster.clone());
    if let Some(before) = setup.handover() {
        // The same start as the run's: the earlier job's files and sink system.
        for (path, bytes) in &before.files {
            let path = StoragePath::new(path.clone()).expect("the earlier run wrote it");
            let bytes = bytes.clone();
            local
                .storage
                .storage
                .execute(StorageOp::Write { path, bytes })
                .expect("in memory");
        }
        local.sink = before.sink.clone();
    }
    let status = local.run_to_end(setup.schedule.deadline());
    assert_eq!(
        status,
        JobStatus::Finished,
        "the failure-free oracle of a built-in scenario finishes"
    );
    (local.sink.committed().to_vec(), local.now().0)
}

fn stats(result: &RunResult) -> Stats {
    let mut stats = Stats {
        probes: result.probes.iter().collect(),
        records_committed: result.committed.len() as u64,
        virtual_ticks: result.virtual_ticks,
        trace_events: result.trace.len() as u64,
        ..Stats::default()
    };
    for entry in &result.trace {
        match &entry.event {
            TraceEvent::Engine(EngineEvent::CheckpointCompleted { .. }) => {
                stats.checkpoints_completed += 1
            }
            TraceEvent::Engine(EngineEvent::CheckpointAborted { .. }) => {
                stats.checkpoints_aborted += 1
            }
            TraceEvent::Engine(EngineEvent::Failover { .. }) => stats.restarts += 1,
            _ => {}
        }
    }
    let timeline = Timeline::from_trace(&result.trace);
    let completed = || {
        (timeline.checkpoints.iter()).filter(|span| !span.savepoint && span.duration().is_some())
    };
    stats.checkpoint_ms = completed().filter_map(|span| span.duration()).collect();
    stats.alignment_ms = completed().map(|s| s.alignment_max.unwrap_or(0)).collect();
    stats.state_bytes = completed().map(|span| span.state_bytes).collect();
    stats.in_flight_bytes = completed().map(|span| span.in_flight_bytes).collect();
    stats.replayed_records = replayed_records(&result.trace);
    stats.recovery_ms = (timeline.recoveries.iter())
        .filter_map(|r| r.duration())
        .collect();
    stats
}

/// Records replayed after failovers (see [`Stats::replayed_records`]).
fn replayed_records(trace: &[TraceEntry]) -> u64 {
    // The furthest offset each source partition snapshotted since the last restore of it.
    let mut furthest: BTreeMap<(TaskId, PartitionId), Offset> = BTreeMap::new();
    let mut replayed = 0;
    for entry in trace {
        let TraceEvent::Engine(event) = &entry.event else {
            continue;
        };
        match event {
            EngineEvent::SnapshotTaken {
                task,
                state: OperatorState::Source { offsets },
                ..
            } => {
                for (partition, offset) in offsets {
                    let seen = furthest.entry((*task, *partition)).or_insert(*offset);
                    *seen = (*seen).max(*offset);
                }
            }
            EngineEvent::Restored {
                task,
                state: OperatorState::Source { offsets },
                ..
            } => {
                for (partition, offset) in offsets {
                    if let Some(seen) = furthest.insert((*task, *partition), *offset) {
                        replayed += seen.0.saturating_sub(offset.0);
                    }
                }
            }
            EngineEvent::InFlightRestored { records, .. } => replayed += records,
            // Started over without a checkpoint: everything read so far is read again.
            EngineEvent::Deployed { restored: None, .. } => {
                replayed += furthest.values().map(|offset| offset.0).sum::<u64>();
                furthest.clear();
            }
            _ => {}
        }
    }
    replayed
}

/// An input of `records` records over `partitions` partitions, keys drawn uniformly from
/// `keys`, values 1–99, event times increasing: the input of most built-in scenarios.
pub fn log(rng: &mut SimRng, partitions: u16, records: u64, keys: u64) -> Arc<SourceLog> {
    skewed_log(rng, partitions, (records, keys), 0)
}

/// A log in which `hot_percent` % of the records (drawn) have key 0, the hot key. With no hot
/// key it draws exactly what it drew before skew existed, so older scenarios keep their input.
fn skewed_log(
    rng: &mut SimRng,
    partitions: u16,
    (records, keys): (u64, u64),
    hot_percent: u64,
) -> Arc<SourceLog> {
    let per_partition = records / u64::from(partitions);
    let partitions = (0..partitions)
        .map(|_| {
            let mut event_time = 0;
            (0..per_partition)
                .map(|_| {
                    event_time += rng.between(0, 3);
                    let value = rng.between(1, 100) as i64;
                    let hot = hot_percent > 0 && rng.below(100) < hot_percent;
                    SourceRecord {
                        key: Key(if hot { 0 } else { rng.below(keys) }),
                        value,
                        event_time: EventTime(event_time),
                    }
                })
                .collect()
        })
        .collect();
    Arc::new(SourceLog { partitions })
}

/// Every built-in scenario restarts after 100 ms, at most 10 times.
const SCENARIO_RESTART: RestartStrategyConfig = RestartStrategyConfig::FixedDelay {
    attempts: 10,
    delay_ticks: 100,
};
/// A cluster of `task_managers` TaskManagers whose first periodic checkpoint comes after a
/// delay drawn below `interval` (as Flink draws it at random).
pub fn cluster(rng: &mut SimRng, task_managers: u16, interval: u64) -> ClusterConfig {
    ClusterConfig {
        task_managers,
        first_trigger_delay_ticks: rng.between(0, interval),
        ..ClusterConfig::default()
    }
}

fn keyed_sum_job(rng: &mut SimRng) -> JobGraph {
    keyed_aggregation("keyed-sum", rng, (4_000, 64), 2)
}

/// 2 source subtasks over 4 partitions holding `records` records with `keys` keys → keyBy
/// running sum → 2PC sink, both at `parallelism`; checkpoints every 50 ms.
fn keyed_aggregation(
    name: &str,
    rng: &mut SimRng,
    (records, keys): (u64, u64),
    parallelism: u16,
) -> JobGraph {
    keyed_aggregation_of(name, log(rng, 4, records, keys), parallelism)
}

/// The keyed aggregation job over `log`; the operators are `source`, `sum` and `sink`
/// (ids 0, 1 and 2).
fn keyed_aggregation_of(name: &str, log: Arc<SourceLog>, parallelism: u16) -> JobGraph {
    let mut job = JobGraph::new(name);
    let source = job.add(
        "source",
        OperatorKind::Source {
            log,
            records_per_tick: 4,
        },
        2,
    );
    let sum = job.add(
        "sum",
        OperatorKind::KeyedAggregate(AggregateFn::Sum),
        parallelism,
    );
    let sink = job.add("sink", OperatorKind::TwoPhaseCommitSink, parallelism);
    assert_eq!((sum, sink), (SUM, SINK), "the ids the scenarios throttle");
    job.connect(source, sum, Partitioning::KeyBy);
    job.connect(sum, sink, Partitioning::Forward);
    job.checkpoint.interval_ticks = Some(50);
    job.restart = SCENARIO_RESTART;
    job
}

/// Where the scenarios' FileSystemCheckpointStorage puts checkpoints (`state.checkpoints.dir`).
pub const CHECKPOINT_DIRECTORY: &str = "checkpoints";

fn on_files(mut job: JobGraph) -> JobGraph {
    job.checkpoint.directory = Some(CHECKPOINT_DIRECTORY.to_string());
    job
}

fn keyed_sum_on_files(draws: &mut Draws) -> (JobGraph, ClusterConfig) {
    let job = on_files(keyed_sum_job(&mut draws.workload));
    (job, cluster(&mut draws.timing, 2, 50))
}

fn keyed_agg_standard(draws: &mut Draws) -> (JobGraph, ClusterConfig) {
    let job = keyed_aggregation("keyed-agg", &mut draws.workload, (20_000, 256), 4);
    (on_files(job), cluster(&mut draws.timing, 2, 50))
}

fn keyed_sum_in_memory(draws: &mut Draws) -> (JobGraph, ClusterConfig) {
    let job = keyed_sum_job(&mut draws.workload);
    (job, cluster(&mut draws.timing, 2, 50))
}

/// The resume scenario's job: the keyed-sum job on files with twice the input, so the
/// earlier job is still running when it is stopped.
fn resumed_keyed_sum(draws: &mut Draws) -> (JobGraph, ClusterConfig) {
    let job = keyed_aggregation("resume", &mut draws.workload, (8_000, 64), 2);
    (on_files(job), cluster(&mut draws.timing, 2, 50))
}

fn keyed_sum_in_memory_budget(draws: &mut Draws) -> (JobGraph, ClusterConfig) {
    let mut job = keyed_sum_job(&mut draws.workload);
    job.name = "memory-budget".to_string();
    job.checkpoint.max_concurrent = 2;
    job.checkpoint.memory_storage.budget_bytes = MEMORY_BUDGET_BYTES;
    job.checkpoint.tolerable_failed = 100;
    (job, cluster(&mut draws.timing, 2, 50))
}

/// The memory-budget scenario's budget: a little more than two checkpoints of the keyed-sum
/// job (its sums, sources and sinks take about 350 to 400 bytes once every key has been seen).
const MEMORY_BUDGET_BYTES: u64 = 1_000;

fn co_window(draws: &mut Draws) -> (JobGraph, ClusterConfig) {
    let workload = &mut draws.workload;
    let mut job = JobGraph::new("co-window");
    let left = job.add(
        "left",
        OperatorKind::Source {
            log: log(workload, 2, 2_000, 16),
            records_per_tick: 3,
        },
        2,
    );
    let right = job.add(
        "right",
        OperatorKind::Source {
            log: log(workload, 3, 1_500, 16),
            records_per_tick: 2,
        },
        3,
    );
    let co = job.add("co-sum", OperatorKind::KeyedCoSum, 3);
    let totals = job.add("totals", OperatorKind::TwoPhaseCommitSink, 3);
    let window = job.add(
        "window",
        OperatorKind::TumblingWindow {
            size: 100,
            aggregate: AggregateFn::Sum,
        },
        2,
    );
    let windows = job.add("windows", OperatorKind::TwoPhaseCommitSink, 2);
    job.connect_side(left, co, Partitioning::KeyBy, InputSide::First);
    job.connect_side(right, co, Partitioning::KeyBy, InputSide::Second);
    job.connect(co, totals, Partitioning::Forward);
    // Window results must not depend on how two inputs interleave: window one input only.
    job.connect(left, window, Partitioning::KeyBy);
    job.connect(window, windows, Partitioning::Forward);
    job.checkpoint.interval_ticks = Some(40);
    job.checkpoint.directory = Some(CHECKPOINT_DIRECTORY.to_string());
    job.restart = SCENARIO_RESTART;
    (job, cluster(&mut draws.timing, 3, 40))
}

/// The operator ids of [`keyed_aggregation_of`]'s job.
const SUM: OperatorId = OperatorId(1);
const SINK: OperatorId = OperatorId(2);

/// Records per tick and subtask of the slow operator in the back-pressure and hot-key
/// scenarios: 2 sources emit 4 per tick each, so 2 subtasks downstream get about 4 per tick
/// each, one more than they handle.
const SLOW_THROUGHPUT: u32 = 3;

fn back_pressure(draws: &mut Draws) -> (JobGraph, ClusterConfig) {
    back_pressure_at(draws, Some(SLOW_THROUGHPUT))
}

/// The keyed-sum job on files (its own name) with the sink limited to `sink_throughput`
/// records per tick and subtask, if any.
pub(crate) fn back_pressure_at(
    draws: &mut Draws,
    sink_throughput: Option<u32>,
) -> (JobGraph, ClusterConfig) {
    let log = log(&mut draws.workload, 4, 4_000, 64);
    let mut job = on_files(keyed_aggregation_of("back-pressure", log, 2));
    if let Some(throughput) = sink_throughput {
        job.throttle(SINK, throughput);
    }
    (job, cluster(&mut draws.timing, 2, 50))
}

fn hot_key(draws: &mut Draws) -> (JobGraph, ClusterConfig) {
    let log = skewed_log(&mut draws.workload, 4, (4_000, 64), 50);
    let mut job = on_files(keyed_aggregation_of("hot-key", log, 2));
    job.throttle(SUM, SLOW_THROUGHPUT);
    (job, cluster(&mut draws.timing, 2, 50))
}

fn map_only(draws: &mut Draws) -> (JobGraph, ClusterConfig) {
    let mut job = JobGraph::new("map-only");
    let source = job.add(
        "source",
        OperatorKind::Source {
            log: log(&mut draws.workload, 2, 4_000, 64),
            records_per_tick: 4,
        },
        2,
    );
    let map = job.add("map", OperatorKind::Map(MapFn::MultiplyBy(3)), 2);
    let sink = job.add("sink", OperatorKind::TwoPhaseCommitSink, 2);
    job.connect(source, map, Partitioning::Forward);
    job.connect(map, sink, Partitioning::Forward);
    job.checkpoint.interval_ticks = Some(50);
    job.restart = SCENARIO_RESTART;
    (on_files(job), cluster(&mut draws.timing, 2, 50))
}

fn chain_join(draws: &mut Draws) -> (JobGraph, ClusterConfig) {
    let workload = &mut draws.workload;
    let mut job = JobGraph::new("chain-join");
    let source = |job: &mut JobGraph, name: &str, log| {
        let kind = OperatorKind::Source {
            log,
            records_per_tick: 3,
        };
        job.add(name, kind, 2)
    };
    let left = source(&mut job, "left", log(workload, 4, 3_000, 32));
    let right = source(&mut job, "right", log(workload, 3, 2_400, 32));
    let shift = job.add("shift", OperatorKind::Map(MapFn::AddConstant(7)), 2);
    let chain = job.add("chain", OperatorKind::KeyedChain, 2);
    let chains = job.add("chains", OperatorKind::TwoPhaseCommitSink, 2);
    let right_chain = job.add("right chain", OperatorKind::KeyedChain, 3);
    let co = job.add("co-sum", OperatorKind::KeyedCoSum, 3);
    let totals = job.add("totals", OperatorKind::TwoPhaseCommitSink, 3);
    job.connect(left, shift, Partitioning::Forward);
    job.connect(shift, chain, Partitioning::KeyBy);
    job.connect(chain, chains, Partitioning::Forward);
    job.connect(right, right_chain, Partitioning::KeyBy);
    // The co-sum adds up what two chains emit: one value per input, whatever the interleaving,
    // so its state at a cut and its totals are the model's.
    job.connect_side(chain, co, Partitioning::KeyBy, InputSide::First);
    job.connect_side(right_chain, co, Partitioning::KeyBy, InputSide::Second);
    job.connect(co, totals, Partitioning::Forward);
    job.checkpoint.interval_ticks = Some(40);
    job.checkpoint.max_concurrent = 2;
    // Longer than most checkpoints take from trigger to completion minus the interval: the
    // periodic trigger is often refused and fires again when the pause is over.
    job.checkpoint.min_pause_ticks = 20;
    job.restart = SCENARIO_RESTART;
    (on_files(job), cluster(&mut draws.timing, 3, 40))
}

fn keyed_sum_for_swarm(draws: &mut Draws) -> (JobGraph, ClusterConfig) {
    let mut job = on_files(keyed_sum_job(&mut draws.workload));
    // Half the seeds keep keyed state in the incremental backend (runs in shared/). Drawn
    // after the job's input, so the other draws of a seed stay what they were.
    job.checkpoint.incremental = draws.workload.below(2) == 1;
    job.checkpoint.savepoint_directory = Some("savepoints".to_string());
    // Faults come in bursts: restart for as long as it takes, tolerate a few failures, and
    // expire checkpoints that a clog holds up.
    job.restart = RestartStrategyConfig::FixedDelay {
        attempts: 1_000,
        delay_ticks: 100,
    };
    // Drawn from the fault stream ahead of the profile's schedule, as before profiles existed,
    // so swarm seeds (and the regression seeds pinned in tests) keep their faults.
    job.checkpoint.tolerable_failed = draws.faults.between(0, 3) as u32;
    job.checkpoint.timeout_ticks = 1_000;
    (job, cluster(&mut draws.timing, 2, 50))
}
