//! Running a setup and judging it: the failure-free oracle, every checker of the catalog, the
//! run's verdict and figures, and how a run is told.

use crate::catalog::{Catalog, NameError};
use crate::generated;
use crate::scenario::Scenario;
use crate::setup::{guarded, Earlier, Setup, Variant};
use serde::{Deserialize, Serialize};
use snapsim_core::bugs::SeededBug;
use snapsim_core::config::CheckpointingMode;
use snapsim_core::ids::{Offset, PartitionId, TaskId, Tick};
use snapsim_core::job::{ExecutionPlan, JobError, JobGraph};
use snapsim_core::operator::OperatorState;
use snapsim_core::probes::Probe;
use snapsim_core::trace::{EngineEvent, JobStatus};
use snapsim_sim::analysis::{ProtocolFigures, Timeline};
use snapsim_sim::check::{
    self, Checker, Ending, JudgedRun, Property, Violation, Witness, WitnessEvent,
};
use snapsim_sim::disk::DiskFaults;
use snapsim_sim::driver::local::LocalCluster;
use snapsim_sim::harness::{self, RunConfig, RunEnd, RunResult, INPUTS_MAX_DEFAULT};
use snapsim_sim::liveness::{self, LivenessBound};
use snapsim_sim::model::ReferenceModel;
use snapsim_sim::trace::{TraceEntry, TraceEvent};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use thiserror::Error;

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
    /// Each completed checkpoint's files written since its trigger (bytes; on files only).
    #[serde(default)]
    pub uploaded_bytes: Vec<u64>,
    /// Each completed checkpoint's files, all of them (bytes; on files only).
    #[serde(default)]
    pub full_bytes: Vec<u64>,
    /// Records replayed after failovers: in-flight records restored from channel state (or,
    /// without barriers, the records restored senders sent again from their logs), plus
    /// source records read again from the restored offsets up to the furthest offsets the
    /// failed attempt snapshotted (a lower bound of what it had read).
    #[serde(default)]
    pub replayed_records: u64,
    /// Snapshots taken: one per task and checkpoint with barriers, every local snapshot
    /// without.
    #[serde(default)]
    pub snapshots: u64,
    /// Local snapshots forced by a record with a higher index (communication-induced).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub forced_snapshots: u64,
    /// Checkpointing's control messages: barriers delivered and acknowledgements; local
    /// snapshots reported.
    #[serde(default)]
    pub control_messages: u64,
    /// Per completed recovery line, the sender logs in its members (bytes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub log_bytes: Vec<u64>,
    /// Per completed recovery line, the local snapshots it rolled past (the domino effect).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rolled_back: Vec<u64>,
    /// Per committed transaction, from the snapshot that pre-committed it to its commit (ms).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub commit_delay_ms: Vec<u64>,
    /// Per failover, the time back to the snapshot the restore returns to (ms).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub work_lost_ms: Vec<u64>,
    /// When every task had processed all its input (virtual ms), if they did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_done_ms: Option<u64>,
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
    pub scenario: String,
    pub seed: u64,
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
    let failure_free = guarded(|| FailureFree::of(&clean, &clean_plan, &setup));
    let job_ticks = failure_free.as_ref().map_or(0, |f| f.job_ticks);
    let simulated = Simulated::run(seed, &plan, setup, job_ticks);
    let (mut violations, duplicates, ended_early) =
        simulated.violations(catalog, &plan, &clean_plan, failure_free);
    let result = simulated.result;
    let figures = guarded(|| stats(&result)).unwrap_or_else(|message| {
        let message = format!("reading the run's figures panicked: {message}");
        violations.push(crash(&result, message));
        Stats::default()
    });
    violations.sort_by_key(|v| v.property.rank());
    let outcome = Outcome {
        scenario: name.to_string(),
        seed,
        verdict: verdict(&violations),
        violations,
        stats: Stats {
            duplicates,
            ended_early,
            ..figures
        },
        trace_hash: result.trace_hash,
        variant,
    };
    Ok((outcome, result))
}

/// The `no-crash` violation of a panic around `result`, at its end.
fn crash(result: &RunResult, message: String) -> Violation {
    Violation::new(Property::NoCrash, message, Some(Tick(result.virtual_ticks)))
}

/// A failure as shrinking (`snapsim shrink`, the fuzz tests) keeps it: the property a violation
/// breaks and, when it has a witness, the witness's shape, so that a case does not shrink into
/// another bug.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub property: Property,
    pub shape: Option<String>,
}

impl Failure {
    pub fn of(violation: &Violation) -> Failure {
        Failure {
            property: violation.property,
            shape: violation.witness.as_ref().map(|w| w.shape.clone()),
        }
    }

    /// The violation of `violations` that is this failure, if one is.
    pub fn found_in<'v>(&self, violations: &'v [Violation]) -> Option<&'v Violation> {
        violations.iter().find(|v| {
            let shape = v.witness.as_ref().map(|w| &w.shape);
            v.property == self.property && (self.shape.is_none() || shape == self.shape.as_ref())
        })
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.shape {
            Some(shape) => write!(f, "{} (a witness of shape {shape})", self.property),
            None => write!(f, "{}", self.property),
        }
    }
}

/// Trace entries a crash's witness shows: the last ones before it.
const CRASH_ENTRIES: usize = 4;

/// Why a run crashed: the engine's own assertion, `where` it fired, after the last of `trace`.
fn assertion_witness(message: &str, place: &str, trace: &[TraceEntry]) -> Witness {
    let assertion = message.lines().next().unwrap_or(message);
    let events = trace[trace.len().saturating_sub(CRASH_ENTRIES)..]
        .iter()
        .map(|entry| WitnessEvent::of(entry, format!("{:?}", entry.event)))
        .collect();
    Witness::new(
        "engine-assertion-failed",
        format!("an invariant of the engine failed in {place}: {assertion}"),
        format!("the engine's assertion: {assertion}"),
        events,
    )
}

/// What a run is judged against: the same job without faults, in process, and the model.
struct FailureFree {
    model: ReferenceModel,
    oracle: Vec<snapsim_core::sink::CommittedRecord>,
    /// How long the failure-free job took (virtual ms).
    job_ticks: u64,
}

impl FailureFree {
    fn of(clean: &JobGraph, clean_plan: &Arc<ExecutionPlan>, setup: &Setup) -> FailureFree {
        let model = ReferenceModel::new(clean);
        let (oracle, job_ticks) = oracle(clean_plan, setup);
        FailureFree {
            model,
            oracle,
            job_ticks,
        }
    }
}

/// A simulated run with what judging it needs of its setup.
struct Simulated {
    result: RunResult,
    phase: LivenessPhase,
    /// Trace entries an earlier job's run left.
    earlier: usize,
    disk: DiskFaults,
    first_trigger_delay: u64,
}

impl Simulated {
    /// Runs `setup` on the simulated cluster, its liveness phase long enough for a job that
    /// takes `job_ticks` without faults.
    fn run(seed: u64, plan: &Arc<ExecutionPlan>, setup: Setup, job_ticks: u64) -> Simulated {
        // The liveness phase lasts the profile's window or what the configuration needs,
        // whichever is longer (see `snapsim_sim::liveness`).
        let bound = LivenessBound::of(plan, &setup.cluster, job_ticks);
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
        let logs_messages = setup.logs_messages;
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
            logs_messages,
        });
        Simulated {
            result,
            phase,
            earlier,
            disk,
            first_trigger_delay,
        }
    }

    /// Every checker's violations, the duplicates (at-least-once) and how a job that ended
    /// early ended; a panic of the oracle or of a checker is a `no-crash` violation.
    fn violations(
        &self,
        catalog: &Catalog,
        plan: &ExecutionPlan,
        clean: &ExecutionPlan,
        failure_free: Result<FailureFree, String>,
    ) -> (Vec<Violation>, u64, Option<String>) {
        let result = &self.result;
        let failure_free = match failure_free {
            Ok(failure_free) => failure_free,
            Err(message) => {
                let witness =
                    assertion_witness(&message, "the failure-free oracle, which has no fault", &[]);
                let message = format!(
                    "the failure-free oracle (the same job without faults, in-process) panicked: {message}"
                );
                let mut violations = vec![Violation {
                    witness: Some(witness),
                    ..crash(result, message)
                }];
                if let RunEnd::Panicked(message) = &result.end {
                    violations.push(crash(result, message.clone()));
                }
                return (violations, 0, None);
            }
        };
        let checkers = catalog.checkers();
        guarded(|| self.judged(plan, clean, &failure_free, checkers)).unwrap_or_else(|message| {
            let message = format!("a checker panicked: {message}");
            (vec![crash(result, message)], 0, None)
        })
    }
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
        committed: Vec::new(),
        anomalies: Vec::new(),
        sink_log: Vec::new(),
        dangling_transactions: Vec::new(),
        trace: Vec::new(),
        trace_hash: snapsim_sim::trace::trace_hash(&[]),
        files: Vec::new(),
        probes: Default::default(),
        handover: None,
        messages: Vec::new(),
    };
    let violation = Violation::new(Property::NoCrash, message, None);
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

impl Simulated {
    /// Every property: the violations, the duplicates (at-least-once) and, for a job that
    /// ended for good rightly without finishing, how it ended.
    fn judged(
        &self,
        plan: &ExecutionPlan,
        clean: &ExecutionPlan,
        failure_free: &FailureFree,
        checkers: &[Arc<dyn Checker>],
    ) -> (Vec<Violation>, u64, Option<String>) {
        let result = &self.result;
        let (ending, end_violations, ended_early) = self.ending(plan);
        let actual = check::outputs(&result.committed, plan);
        let expected = check::outputs(&failure_free.oracle, clean);
        let run = JudgedRun {
            plan,
            clean,
            model: &failure_free.model,
            oracle: &failure_free.oracle,
            committed: &result.committed,
            actual: &actual,
            expected: &expected,
            anomalies: &result.anomalies,
            sink_log: &result.sink_log,
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
        let mut violations = check::run_checkers(&run, checkers);
        violations.extend(end_violations);
        (violations, check::duplicates(&run), ended_early)
    }

    /// How far the run's output can be judged, the violation that says why when it cannot, and
    /// for a job that ended for good rightly without finishing, how it ended.
    fn ending(&self, plan: &ExecutionPlan) -> (Ending, Vec<Violation>, Option<String>) {
        let at = Some(Tick(self.result.virtual_ticks));
        let own_trace = &self.result.trace[self.earlier..];
        // The job did not finish: its witness is where it stopped.
        let not_judged = |property, message| {
            let stalled = check::stall_witness(own_trace, plan, Tick(self.result.virtual_ticks));
            let violation = Violation {
                witness: Some(stalled),
                ..Violation::new(property, message, at)
            };
            (Ending::NotJudged, vec![violation], None)
        };
        match &self.result.end {
            RunEnd::Panicked(message) => {
                let place = format!("the simulated run at {}", Tick(self.result.virtual_ticks));
                let witness = assertion_witness(message, &place, &self.result.trace);
                let violation = Violation {
                    witness: Some(witness),
                    ..Violation::new(Property::NoCrash, message.clone(), at)
                };
                (Ending::NotJudged, vec![violation], None)
            }
            RunEnd::Terminated(JobStatus::Finished) => (Ending::Finished, Vec::new(), None),
            RunEnd::Terminated(status) => {
                match liveness::justified_end(own_trace, plan, *status, &self.disk) {
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

/// What `snapsim run` and `replay` print for a run, in at most a screenful: the verdict and its
/// statistics, the causes the witnesses give (each once, with the violations it explains),
/// each violated property's first violation, the line that replays it, and (when no witness
/// explains anything) the trace entries just before the first violation with a time.
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
    let causes = causes(&outcome.violations);
    for cause in causes.iter().take(CAUSES_SHOWN) {
        text.push_str(&describe_cause(cause, "  ", WITNESS_EVENTS_SHOWN));
    }
    if causes.len() > CAUSES_SHOWN {
        let more = causes.len() - CAUSES_SHOWN;
        let _ = writeln!(
            text,
            "  … {more} more causes (`snapsim explain` lists them)"
        );
    }
    text.push_str(&describe_properties(&outcome.violations));
    let _ = writeln!(text, "  replay: {replay_line}");
    if causes.is_empty() {
        if let Some((at, entries)) = trace_before_violation(outcome, trace) {
            let _ = writeln!(text, "  the trace up to {at}:");
            for entry in entries {
                let _ = writeln!(text, "    {}", describe_entry(entry));
            }
        }
    }
    text
}

/// What `snapsim explain` prints for a run: every cause with its events, then each violated
/// property's first violation that no witness explains.
pub fn explain_run(outcome: &Outcome) -> String {
    use std::fmt::Write;
    let mut text = format!(
        "scenario {} seed {}: {:?}\n",
        outcome.scenario, outcome.seed, outcome.verdict
    );
    if outcome.violations.is_empty() {
        text.push_str("  every property held: nothing to explain\n");
        return text;
    }
    let causes = causes(&outcome.violations);
    for (number, cause) in causes.iter().enumerate() {
        let _ = writeln!(text, "cause {} of {}:", number + 1, causes.len());
        text.push_str(&describe_cause(cause, "  ", EXPLAIN_EVENTS_SHOWN));
    }
    let unexplained = || (outcome.violations.iter()).filter(|v| v.witness.is_none());
    if unexplained().next().is_some() {
        let _ = writeln!(text, "without a witness:");
        text.push_str(&describe_properties(unexplained()));
    }
    text
}

/// Witness events `snapsim explain` shows at most per cause.
const EXPLAIN_EVENTS_SHOWN: usize = 24;

/// Causes `describe_run` shows before pointing to `snapsim explain`.
const CAUSES_SHOWN: usize = 3;

/// One cause of a run's violations: a witness, and how many violations of each property it
/// explains.
pub struct Cause<'o> {
    pub witness: &'o Witness,
    pub explains: Vec<(Property, u64)>,
}

impl Cause<'_> {
    /// The violations it explains, e.g. `channel-order ×8, exactly-once ×672`.
    pub fn explains_text(&self) -> String {
        let explains: Vec<String> = (self.explains.iter())
            .map(|(property, count)| format!("{property} ×{count}"))
            .collect();
        explains.join(", ")
    }

    /// What its violations share, and the first few things they are about.
    pub fn about(&self) -> String {
        match self.witness.subjects.is_empty() {
            true => self.witness.root.clone(),
            false => format!("{}; {}", self.witness.root, self.witness.subjects),
        }
    }
}

/// The distinct causes of `violations` (by root), in the order they first appear.
pub fn causes(violations: &[Violation]) -> Vec<Cause<'_>> {
    let mut causes: Vec<Cause> = Vec::new();
    for violation in violations {
        let Some(witness) = &violation.witness else {
            continue;
        };
        // One root is one cause, whichever property's template reads it.
        let same = |c: &&mut Cause| c.witness.root == witness.root;
        let cause = match causes.iter_mut().find(same) {
            Some(cause) => cause,
            None => {
                causes.push(Cause {
                    witness,
                    explains: Vec::new(),
                });
                causes.last_mut().expect("just pushed")
            }
        };
        match cause
            .explains
            .iter_mut()
            .find(|(p, _)| *p == violation.property)
        {
            Some((_, count)) => *count += witness.instances,
            None => cause.explains.push((violation.property, witness.instances)),
        }
    }
    causes
}

/// A cause as lines starting with `indent`: the sentence, what it explains, and up to
/// `events_shown` of its events (the first and the last ones: the cause and the symptom).
pub fn describe_cause(cause: &Cause, indent: &str, events_shown: usize) -> String {
    use std::fmt::Write;
    let witness = cause.witness;
    let mut text = String::new();
    let _ = writeln!(text, "{indent}why: {}", witness.cause);
    let _ = writeln!(
        text,
        "{indent}  explains {} ({})",
        cause.explains_text(),
        cause.about()
    );
    let events = &witness.events;
    let shown = events.len().min(events_shown);
    let (head, tail) = (shown / 2 + shown % 2, shown / 2);
    let line =
        |event: &WitnessEvent| format!("{indent}    {} {} {}\n", event.at, event.node, event.what);
    text.extend(events[..head].iter().map(line));
    if events.len() > shown {
        let _ = writeln!(text, "{indent}    … {} more events", events.len() - shown);
    }
    text.extend(events[events.len() - tail..].iter().map(line));
    text
}

/// Each violated property's first violation, and whether it has more.
fn describe_properties<'v>(violations: impl IntoIterator<Item = &'v Violation>) -> String {
    use std::fmt::Write;
    let violations: Vec<&Violation> = violations.into_iter().collect();
    let mut text = String::new();
    for same in violations.chunk_by(|a, b| a.property == b.property) {
        let first = same[0];
        let _ = write!(text, "  violated {}: {}", first.property, first.message);
        match same.len() {
            1 => text.push('\n'),
            _ => text.push_str(" (more in `run --json`)\n"),
        }
    }
    text
}

/// Witness events shown at most under a cause in `snapsim run`.
const WITNESS_EVENTS_SHOWN: usize = 8;

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

/// The failure-free run of the same job, in the in-process driver (the cheapest): what it
/// committed, and how long it took (virtual ms).
pub(crate) fn oracle(
    plan: &Arc<ExecutionPlan>,
    setup: &Setup,
) -> (Vec<snapsim_core::sink::CommittedRecord>, u64) {
    let mut local = LocalCluster::start((**plan).clone(), setup.cluster.clone()).without_trace();
    if let Some(before) = setup.handover() {
        // The same start as the run's: the earlier job's files and sink system.
        local.install(&before.files);
        *local.sink = before.sink.clone();
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
    stats.uploaded_bytes = completed().filter_map(|span| span.uploaded_bytes).collect();
    stats.full_bytes = completed().filter_map(|span| span.full_bytes).collect();
    stats.replayed_records = replayed_records(&result.trace);
    let protocol = ProtocolFigures::from_trace(&result.trace, &timeline);
    stats.snapshots = protocol.snapshots;
    stats.forced_snapshots = protocol.forced_snapshots;
    stats.control_messages = protocol.control_messages;
    stats.log_bytes = protocol.log_bytes;
    stats.rolled_back = protocol.rolled_back;
    stats.commit_delay_ms = protocol.commit_delay_ms;
    stats.work_lost_ms = protocol.work_lost_ms;
    stats.input_done_ms = protocol.input_done_at;
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
        // A source's snapshot, with or without barriers.
        let snapshotted = match event {
            EngineEvent::SnapshotTaken { task, state, .. } => Some((task, state)),
            EngineEvent::LocalSnapshotTaken { task, state, .. } => Some((task, &**state)),
            _ => None,
        };
        match event {
            _ if snapshotted.is_some() => {
                let Some((task, OperatorState::Source { offsets })) = snapshotted else {
                    continue;
                };
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
            // Checkpointing without barriers: a restored sender sends its log again.
            EngineEvent::InFlightRestored { records, .. }
            | EngineEvent::LogReplayed { records, .. } => replayed += records,
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

fn is_zero(value: &u64) -> bool {
    *value == 0
}
