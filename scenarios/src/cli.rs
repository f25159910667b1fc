//! The `snapsim` program over a [`Catalog`]: run scenarios on the simulated cluster, one seed
//! or a sweep; replay, shrink and report runs; compare algorithms; measure. The `snapsim`
//! binary is [`main`] with the built-in catalog; a crate that adds algorithms, checkers,
//! scenarios or fault profiles calls it with its own and gets the same commands.
//!
//! Exit codes: 0 every property held, 1 a property was violated, 2 bad input.

use crate::bench::{self, wall_time, BenchReport};
use crate::campaign::{self, Matrix, Preset};
use crate::checkmate;
use crate::replay::{CaseFile, Replayable, ScenarioRun};
use crate::sweep::{self, Manifest, Shard, SweepError, SweepSummary};
use crate::{describe_run, explain_run, report, shrink, Catalog, Variant, Verdict, BUILD_COMMIT};
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use snapsim_core::bugs::SeededBug;
use snapsim_core::config::StateBackend;
use snapsim_sim::faults::FaultSchedule;
use snapsim_sim::trace::TraceEntry;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Prints a line on stdout. A closed stdout (`snapsim list | head`) ends the program quietly
/// instead of panicking as `println!` does.
macro_rules! say {
    ($($arg:tt)*) => {
        stdout_or_exit(writeln!(std::io::stdout(), $($arg)*))
    };
}

/// [`say!`] without the newline.
macro_rules! say_raw {
    ($($arg:tt)*) => {
        stdout_or_exit(write!(std::io::stdout(), $($arg)*))
    };
}

fn stdout_or_exit(written: std::io::Result<()>) {
    if let Err(error) = written {
        if error.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        panic!("writing to stdout: {error}");
    }
}

#[derive(Parser)]
#[command(
    name = "snapsim",
    version,
    about = "Deterministic simulation testing of Flink-style checkpointing",
    long_about = "Deterministic simulation testing of Flink-style checkpointing.\n\n\
                  Without a command: the default sweep (every scenario, seeds 0..32), which prints \
                  a verdict and writes snapsim-out/report.html.\n\n\
                  Exit codes: 0 every property held, 1 a property was violated, 2 bad input."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

/// What a run of a scenario may change from the scenario's own choices.
#[derive(Args, Clone, Default)]
struct VariantArgs {
    /// Draw faults with this profile instead of the scenario's own (see `snapsim list`).
    #[arg(long, value_name = "PROFILE")]
    faults: Option<String>,
    /// Use this snapshot algorithm instead of the scenario's own (see `snapsim list`).
    #[arg(long, value_name = "NAME")]
    algorithm: Option<String>,
    /// Switch a seeded bug on (repeatable; see `snapsim list`).
    #[arg(long, value_name = "NAME")]
    bug: Vec<String>,
    /// Keep keyed state in this backend instead of the scenario's own (see `snapsim list`).
    #[arg(long, value_name = "NAME")]
    backend: Option<String>,
}

impl VariantArgs {
    /// The variant these flags name, every name checked.
    fn checked(self, catalog: &Catalog) -> Result<Variant, String> {
        Variant::new(catalog, self.faults, self.algorithm, &self.bug)
            .and_then(|variant| variant.with_backend(self.backend))
            .map_err(|e| e.to_string())
    }
}

/// What `run` and `replay` print and write besides the verdict.
#[derive(Args, Clone, Default)]
struct RunOutput {
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Log every trace event as it happens (virtual time, node, event) on stderr.
    #[arg(long)]
    log: bool,
    /// Write the run's trace here, one JSON object per line.
    #[arg(long, value_name = "FILE")]
    trace: Option<PathBuf>,
    /// Write the run as a case file here, to replay, shrink or report it later.
    #[arg(long, value_name = "FILE")]
    save_case: Option<PathBuf>,
    /// Write the run report (report.html, report.md) into this directory.
    #[arg(long, value_name = "DIR")]
    report: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Lists the scenarios, fault profiles, snapshot algorithms and seeded bugs.
    List {
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Runs one scenario with one seed and prints its verdict, statistics and replay line.
    Run {
        /// The scenario (see `snapsim list`).
        #[arg(long)]
        scenario: String,
        /// The seed.
        #[arg(long)]
        seed: u64,
        #[command(flatten)]
        variant: VariantArgs,
        /// Replay this fault schedule (JSON) instead of the one the seed draws.
        #[arg(long, value_name = "FILE")]
        schedule: Option<PathBuf>,
        /// Write the fault schedule of the run (JSON) here, to edit and replay it.
        #[arg(long, value_name = "FILE")]
        save_schedule: Option<PathBuf>,
        #[command(flatten)]
        output: RunOutput,
    },
    /// Reproduces a run exactly: a case file (written by a failing fuzz test, `run
    /// --save-case` or `shrink`), saying whether it gives the recorded trace hash, or a scenario
    /// and seed.
    Replay {
        /// The case file (JSON).
        #[arg(required_unless_present = "scenario", conflicts_with = "scenario")]
        file: Option<PathBuf>,
        /// The scenario (with --seed), instead of a file.
        #[arg(long, requires = "seed")]
        scenario: Option<String>,
        /// The seed (with --scenario).
        #[arg(long, requires = "scenario")]
        seed: Option<u64>,
        #[command(flatten)]
        variant: VariantArgs,
        #[command(flatten)]
        output: RunOutput,
    },
    /// Explains a failing case: runs it and prints each cause its violations have (the events
    /// that make them violations, read as one sentence), then the violations no witness
    /// explains.
    Explain {
        /// The case file (JSON), as `run --save-case`, `shrink` or a failing fuzz test wrote it.
        file: PathBuf,
    },
    /// Minimises a failing case (fewer faults, a smaller job) that still violates the same
    /// property, and writes it as a case file.
    Shrink {
        /// The failing case file.
        file: PathBuf,
        /// Where the minimal case goes (default: beside the input, `.min.json`).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Lists the engine's coverage probes with the runs of a sweep that reached each, and those
    /// no run reached (exit 1 if any).
    Coverage {
        /// A sweep's output directory.
        #[arg(default_value = "snapsim-out")]
        dir: PathBuf,
    },
    /// Renders the report of a sweep directory (report.html, report.md, and a report per
    /// failing run under runs/) or of a case file (report.html, report.md).
    Report {
        /// A sweep's output directory, or a case file.
        path: PathBuf,
        /// Where a case file's report goes (default: beside the file, `<name>-report/`).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// Measures a scenario (build with --release): seeds per second on one core and on all,
    /// wall time per seed and its parts, simulated seconds and recovery cycles per wall second,
    /// peak memory, and a seed's cost over the sequential reference model's. Medians.
    Bench {
        /// The scenario (the standard one by default).
        #[arg(long, default_value = "keyed-agg")]
        scenario: String,
        /// Seeds as A..B (B excluded).
        #[arg(long, default_value = "0..40")]
        seeds: String,
        /// Repeats of each throughput measurement.
        #[arg(long, default_value_t = 3)]
        repeat: u32,
        /// Threads of the all-cores measurement (default: the number of cores).
        #[arg(long)]
        jobs: Option<usize>,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
        /// An earlier `bench --json` of the same scenario: print each figure beside it, with
        /// the ratio (with --json: `{"now", "before", "compared"}`).
        #[arg(long, value_name = "FILE")]
        compare: Option<PathBuf>,
    },
    /// Runs scenarios over a range of seeds on all cores, prints a verdict and writes
    /// sweep.json, results.jsonl and the report (report.html, report.md, charts, and runs/ with
    /// a run report per failing run, the first 20).
    Sweep(SweepArgs),
    /// Compares snapshot algorithms: runs a matrix (algorithms × scenarios × fault profiles ×
    /// seeds; each (algorithm, faults) pair a sweep under cells/) and writes campaign.md,
    /// campaign.html (with charts) and campaign.csv. `--preset paper` also runs the experiments
    /// of the literature with expected and measured results
    /// (experiments.csv) and checkpoint duration against the sink's throughput; `--preset
    /// checkmate` compares coordinated, uncoordinated and communication-induced checkpointing.
    Campaign(CampaignArgs),
    /// Joins the result directories of a sharded sweep into the results and report one
    /// unsharded sweep would have written.
    Merge {
        /// The shards' output directories (every shard of the sweep once).
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
        /// Where the merged results and report go.
        #[arg(long, default_value = "snapsim-out")]
        out: PathBuf,
    },
}

/// What `sweep` runs.
#[derive(Args)]
struct SweepArgs {
    /// Scenarios to run (repeatable); all by default.
    #[arg(long)]
    scenario: Vec<String>,
    /// Seeds as A..B (B excluded).
    #[arg(long, default_value = "0..32")]
    seeds: String,
    /// Where the results and the report go.
    #[arg(long, default_value = "snapsim-out")]
    out: PathBuf,
    /// Runs at once (default: the number of cores).
    #[arg(long)]
    jobs: Option<usize>,
    /// Run only shard K of N (1-based): a deterministic share of the seeds, for spreading
    /// one sweep over machines; join the shards with `snapsim merge`.
    #[arg(long, value_name = "K/N")]
    shard: Option<String>,
    #[command(flatten)]
    variant: VariantArgs,
}

/// What `campaign` runs.
#[derive(Args)]
struct CampaignArgs {
    /// `matrix` (the matrix only), `paper` (the experiments, then the matrix) or `checkmate`
    /// (coordinated, uncoordinated and communication-induced checkpointing on uniform and
    /// skewed keys, without faults and with a crash, and the CheckMate study's claims).
    #[arg(long, default_value = "matrix")]
    preset: String,
    /// Snapshot algorithms (repeatable); all by default.
    #[arg(long)]
    algorithm: Vec<String>,
    /// Scenarios (repeatable); default keyed-sum, back-pressure, hot-key, co-window.
    #[arg(long)]
    scenario: Vec<String>,
    /// Fault profiles (repeatable); default none and tm-crash.
    #[arg(long)]
    faults: Vec<String>,
    /// Switch a seeded bug on in every simulated run (repeatable; see `snapsim list`):
    /// which algorithms' checks catch it, and which experiments turn UNEXPECTED.
    #[arg(long, value_name = "NAME")]
    bug: Vec<String>,
    /// Seeds of every cell, as A..B (B excluded).
    #[arg(long, default_value = "0..10")]
    seeds: String,
    /// Where the results and the report go.
    #[arg(long, default_value = "snapsim-campaign")]
    out: PathBuf,
    /// Runs at once (default: the number of cores).
    #[arg(long)]
    jobs: Option<usize>,
}

/// Runs the program over `catalog` with the process's arguments.
pub fn main(catalog: Catalog) -> ExitCode {
    let cli = Cli::parse();
    // Without a command: the default sweep the README's first command runs.
    let default_sweep = Command::Sweep(SweepArgs {
        scenario: Vec::new(),
        seeds: "0..32".into(),
        out: PathBuf::from("snapsim-out"),
        jobs: None,
        shard: None,
        variant: VariantArgs::default(),
    });
    match dispatch(&catalog, cli.command.unwrap_or(default_sweep)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

/// Runs one command: whether every property held, or what was wrong with the input.
fn dispatch(catalog: &Catalog, command: Command) -> Result<bool, String> {
    match command {
        Command::List { json } => list(catalog, json),
        Command::Run {
            scenario,
            seed,
            variant,
            schedule,
            save_schedule,
            output,
        } => {
            let files = (schedule, save_schedule);
            run_scenario(catalog, (&scenario, seed), variant, files, &output)
        }
        Command::Replay {
            file,
            scenario,
            seed,
            variant,
            output,
        } => replay(catalog, file, scenario.zip(seed), variant, &output),
        Command::Explain { file } => explain_file(catalog, &file),
        Command::Shrink { file, out } => shrink_file(catalog, &file, out),
        Command::Report { path, out } => report_path(catalog, &path, out),
        Command::Coverage { dir } => coverage(catalog, &dir),
        Command::Bench {
            scenario,
            seeds,
            repeat,
            jobs,
            json,
            compare,
        } => bench(
            catalog,
            &scenario,
            &seeds,
            repeat,
            jobs,
            json,
            compare.as_deref(),
        ),
        Command::Sweep(args) => sweep_command(catalog, args),
        Command::Campaign(args) => campaign_command(catalog, args),
        Command::Merge { dirs, out } => {
            let summary = sweep::merge(catalog, &dirs, &out).map_err(|e| e.to_string())?;
            print_summary(&summary);
            Ok(summary.passed())
        }
    }
}

/// `sweep`: a manifest from the arguments, then the sweep.
fn sweep_command(catalog: &Catalog, args: SweepArgs) -> Result<bool, String> {
    let seeds = sweep::parse_seeds(&args.seeds).map_err(|e| e.to_string())?;
    let shard = match args.shard {
        Some(text) => text.parse().map_err(|e: SweepError| e.to_string())?,
        None => Shard::WHOLE,
    };
    let variant = args.variant.checked(catalog)?;
    let manifest =
        Manifest::new(catalog, &args.scenario, seeds, shard, variant).map_err(|e| e.to_string())?;
    run_sweep(catalog, &manifest, args.jobs, &args.out)
}

/// `campaign`: a matrix from the arguments, then the campaign.
fn campaign_command(catalog: &Catalog, args: CampaignArgs) -> Result<bool, String> {
    let preset = Preset::named(&args.preset).map_err(|e| e.to_string())?;
    let seeds = sweep::parse_seeds(&args.seeds).map_err(|e| e.to_string())?;
    // The CheckMate comparison has its own matrix, unless the command line names one.
    let or_checkmate = |given: &[String], defaults: &[&str]| -> Vec<String> {
        match (preset, given.is_empty()) {
            (Preset::Checkmate, true) => defaults.iter().map(|s| s.to_string()).collect(),
            _ => given.to_vec(),
        }
    };
    let matrix = Matrix::new(
        catalog,
        &or_checkmate(&args.algorithm, &checkmate::ALGORITHMS),
        &or_checkmate(&args.scenario, &checkmate::SCENARIOS),
        &or_checkmate(&args.faults, &checkmate::FAULTS),
        seeds,
        &args.bug,
    )
    .map_err(|e| e.to_string())?;
    run_campaign(catalog, preset, &matrix, args.jobs, &args.out)
}

/// `run`: one run of a named scenario, perhaps with a schedule of its own.
/// `(schedule, save_schedule)`: the schedule file to run with instead of the drawn one, and
/// where to write the schedule run.
fn run_scenario(
    catalog: &Catalog,
    (scenario, seed): (&str, u64),
    variant: VariantArgs,
    (schedule, save_schedule): (Option<PathBuf>, Option<PathBuf>),
    output: &RunOutput,
) -> Result<bool, String> {
    let schedule = match schedule {
        Some(path) => Some(FaultSchedule::load(&path).map_err(|e| e.to_string())?),
        None => None,
    };
    let variant = variant.checked(catalog)?;
    let case = Replayable::Scenario(ScenarioRun {
        schedule,
        ..ScenarioRun::of(scenario, seed, &variant)
    });
    if let Some(path) = save_schedule {
        let schedule = case.schedule(catalog).map_err(|e| e.to_string())?;
        schedule.save(&path).map_err(|e| e.to_string())?;
    }
    execute(catalog, &case, &variant.bugs, output, None)
}

/// `replay`: a case file, or a named scenario's seed.
fn replay(
    catalog: &Catalog,
    file: Option<PathBuf>,
    scenario: Option<(String, u64)>,
    variant: VariantArgs,
    output: &RunOutput,
) -> Result<bool, String> {
    match (file, scenario) {
        (Some(path), _) => {
            if variant.faults.is_some() || variant.algorithm.is_some() || !variant.bug.is_empty() {
                Err("--faults, --algorithm and --bug go with --scenario; a case file carries its own".to_string())
            } else {
                replay_file(catalog, &path, output)
            }
        }
        (None, Some((scenario, seed))) => {
            let variant = variant.checked(catalog)?;
            let case = Replayable::Scenario(ScenarioRun::of(&scenario, seed, &variant));
            execute(catalog, &case, &variant.bugs, output, None)
        }
        _ => unreachable!("clap requires a file or a scenario with a seed"),
    }
}

fn list(catalog: &Catalog, json: bool) -> Result<bool, String> {
    if json {
        let scenarios: Vec<_> = catalog
            .scenarios()
            .iter()
            .map(|s| serde_json::json!({"name": s.name, "description": s.description, "faults": s.faults}))
            .collect();
        let profiles: Vec<_> = catalog
            .profiles()
            .iter()
            .map(|p| serde_json::json!({"name": p.name, "description": p.description}))
            .collect();
        let algorithms: Vec<_> = catalog
            .algorithms()
            .iter()
            .map(|a| {
                let guarantee = format!("{:?}", a.guarantee());
                serde_json::json!({"name": a.name(), "description": a.description(), "guarantee": guarantee})
            })
            .collect();
        let checkers: Vec<_> = catalog
            .checkers()
            .iter()
            .map(|c| serde_json::json!({"property": c.property().name(), "description": c.description()}))
            .collect();
        let bugs: Vec<_> = SeededBug::ALL
            .iter()
            .map(|b| {
                serde_json::json!({"name": b.name(), "description": b.description(),
                    "violates": b.violates(), "reference": b.reference()})
            })
            .collect();
        let backends: Vec<_> = StateBackend::ALL
            .iter()
            .map(|b| serde_json::json!({"name": b.name(), "description": b.description()}))
            .collect();
        let list = serde_json::json!({ "scenarios": scenarios, "fault_profiles": profiles,
            "algorithms": algorithms, "state_backends": backends, "checkers": checkers,
            "seeded_bugs": bugs });
        say!("{list}");
        return Ok(true);
    }
    say!("scenarios (--scenario NAME; each with its fault profile):");
    for s in catalog.scenarios() {
        say!("  {:<16} [{}] {}", s.name, s.faults, s.description);
    }
    say!("\nfault profiles (--faults NAME):");
    for p in catalog.profiles() {
        say!("  {:<20} {}", p.name, p.description);
    }
    say!("\nsnapshot algorithms (--algorithm NAME; the scenarios use aligned):");
    for a in catalog.algorithms() {
        say!("  {:<16} {}", a.name(), a.description());
    }
    say!("\nstate backends (--backend NAME; the scenarios' own are in their descriptions, heap otherwise):");
    for b in StateBackend::ALL {
        say!("  {:<16} {}", b.name(), b.description());
    }
    say!("\nproperties (judged in every run):");
    for c in catalog.checkers() {
        say!("  {:<18} {}", c.property().name(), c.description());
    }
    say!("\nseeded bugs (--bug NAME; off unless named):");
    for b in SeededBug::ALL {
        say!(
            "  {:<34} {} (violates {})",
            b.name(),
            b.description(),
            b.violates()
        );
    }
    Ok(true)
}

/// Runs a case, writes what `output` asks for and prints the run; a replayed case file gives
/// its recorded trace hash and replay line.
fn execute(
    catalog: &Catalog,
    case: &Replayable,
    bugs: &[String],
    output: &RunOutput,
    recorded: Option<(u64, String)>,
) -> Result<bool, String> {
    if output.log {
        // The run's trace as it happens; madsim's own logs only when they warn.
        let filter = tracing_subscriber::filter::Targets::new()
            .with_target("snapsim", tracing::Level::DEBUG)
            .with_default(tracing::Level::WARN);
        tracing_subscriber::registry()
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_ansi(std::io::stderr().is_terminal())
                    .without_time()
                    .with_target(false),
            )
            .with(filter)
            .init();
    }
    let (wall, ran) = match output.report {
        // The report's message-sequence charts draw the run's messages: keep their log.
        Some(_) => wall_time(|| case.run_for_report(catalog, bugs)),
        None => wall_time(|| case.run(catalog, bugs)),
    };
    let (outcome, result) = ran.map_err(|e| e.to_string())?;
    write_trace(output.trace.as_deref(), &result.trace)?;
    let replay_line = match (&recorded, &output.save_case) {
        (Some((_, line)), _) => line.clone(),
        (None, Some(path)) => format!("{} replay {}", catalog.command(), path.display()),
        (None, None) => match case {
            Replayable::Scenario(ScenarioRun { schedule: None, .. }) => {
                outcome.replay_line(catalog)
            }
            _ => "(a changed schedule: replay it with --save-case FILE)".to_string(),
        },
    };
    if let Some(path) = &output.save_case {
        let file =
            CaseFile::recorded(catalog, case.clone(), &outcome).map_err(|e| e.to_string())?;
        file.save(path).map_err(|e| e.to_string())?;
    }
    if let Some(dir) = &output.report {
        report::write_run_report(dir, &outcome, &result, &replay_line)
            .map_err(|e| e.to_string())?;
    }
    let recorded_hash = recorded.map(|(hash, _)| hash);
    if output.json {
        let mut json = serde_json::to_value(&outcome).expect("outcomes serialize");
        json["wall_ms"] = serde_json::json!(wall.as_secs_f64() * 1e3);
        if let Some(hash) = recorded_hash {
            json["recorded_trace_hash"] = serde_json::json!(hash);
        }
        say!("{json}");
        return Ok(outcome.verdict == Verdict::Passed);
    }
    say_raw!("{}", describe_run(&outcome, &result.trace, &replay_line));
    say!("  wall time {:.0} ms", wall.as_secs_f64() * 1e3);
    if let Some(hash) = recorded_hash {
        let same = outcome.trace_hash == hash;
        say!(
            "  trace hash {:016x}: {} the recorded {hash:016x}",
            outcome.trace_hash,
            if same { "equal to" } else { "DIFFERENT from" },
        );
    }
    if let Some(dir) = &output.report {
        say!("  report: {}", dir.join("report.html").display());
    }
    Ok(outcome.verdict == Verdict::Passed)
}

fn replay_file(catalog: &Catalog, path: &Path, output: &RunOutput) -> Result<bool, String> {
    let file = CaseFile::load(path).map_err(|e| e.to_string())?;
    if file.commit != BUILD_COMMIT {
        eprintln!(
            "note: the case was recorded with build {}, this is {BUILD_COMMIT}: the trace may differ",
            file.commit
        );
    }
    let replay_line = format!("{} replay {}", catalog.command(), path.display());
    execute(
        catalog,
        &file.case,
        &file.bugs,
        output,
        Some((file.trace_hash, replay_line)),
    )
}

fn explain_file(catalog: &Catalog, path: &Path) -> Result<bool, String> {
    let file = CaseFile::load(path).map_err(|e| e.to_string())?;
    let (outcome, _) = file
        .case
        .run(catalog, &file.bugs)
        .map_err(|e| e.to_string())?;
    if outcome.trace_hash != file.trace_hash {
        eprintln!(
            "note: the run's trace hash {:016x} is not the recorded {:016x} (recorded with build {}, this is {BUILD_COMMIT})",
            outcome.trace_hash, file.trace_hash, file.commit
        );
    }
    say_raw!("{}", explain_run(&outcome));
    Ok(outcome.verdict == Verdict::Passed)
}

fn write_trace(path: Option<&Path>, trace: &[TraceEntry]) -> Result<(), String> {
    let Some(path) = path else {
        return Ok(());
    };
    let lines: String = trace
        .iter()
        .map(|entry| serde_json::to_string(entry).expect("trace entries serialize") + "\n")
        .collect();
    std::fs::write(path, lines).map_err(|e| format!("{}: {e}", path.display()))
}

/// A progress bar over `runs` runs.
fn progress_bar(runs: u64) -> ProgressBar {
    let progress = ProgressBar::new(runs);
    progress.set_style(
        ProgressStyle::with_template(
            "{elapsed_precise} [{wide_bar}] {pos}/{len} runs, {per_sec}, ETA {eta} {msg}",
        )
        .expect("the template is valid")
        .progress_chars("=> "),
    );
    progress
}

fn run_campaign(
    catalog: &Catalog,
    preset: Preset,
    matrix: &Matrix,
    jobs: Option<usize>,
    out: &Path,
) -> Result<bool, String> {
    let jobs = cores(jobs);
    let runs = campaign::planned_runs(catalog, preset, matrix);
    say!(
        "campaign: {} algorithm(s) × {} scenario(s) × {} fault profile(s) × seeds {}..{}{} = {runs} runs on {jobs} threads",
        matrix.algorithms.len(),
        matrix.scenarios.len(),
        matrix.faults.len(),
        matrix.seeds.start,
        matrix.seeds.end,
        if preset == Preset::Paper { ", after the experiments of the literature" } else { "" },
    );
    for reason in matrix.refused(catalog) {
        say!("left out: {reason}");
    }
    let command = std::env::args()
        .map(|arg| {
            if arg.contains(' ') {
                format!("'{arg}'")
            } else {
                arg
            }
        })
        .collect::<Vec<_>>()
        .join(" ");
    let progress = progress_bar(runs);
    let mut failed = 0u64;
    let (wall, report) = wall_time(|| {
        campaign::run_campaign(catalog, preset, matrix, jobs, out, &command, |outcome| {
            if outcome.verdict != Verdict::Passed {
                failed += 1;
                progress.set_message(format!("· {failed} failed"));
            }
            progress.inc(1);
        })
    });
    progress.finish_and_clear();
    let report = report.map_err(|e| e.to_string())?;
    say_raw!("{}", report.markdown());
    say!(
        "\nreport:  {} (open it in a browser; Markdown: {}; tables: {})\n{runs} runs in {:.1} s\nverdict: {}",
        out.join("campaign.html").display(),
        out.join("campaign.md").display(),
        out.join("campaign.csv").display(),
        wall.as_secs_f64(),
        report.verdict()
    );
    Ok(report.passed())
}

/// Runs a sweep with a progress bar on stderr (hidden when it is not a terminal).
fn run_sweep(
    catalog: &Catalog,
    manifest: &Manifest,
    jobs: Option<usize>,
    out: &Path,
) -> Result<bool, String> {
    let jobs = cores(jobs);
    let runs = manifest.work(catalog).len() as u64;
    say!(
        "sweep: {} scenario(s) × seeds {}..{}{} = {runs} runs on {jobs} threads",
        manifest.scenarios.len(),
        manifest.seeds.start,
        manifest.seeds.end,
        match manifest.shard {
            Shard::WHOLE => String::new(),
            shard => format!(" (shard {shard})"),
        },
    );
    for reason in &manifest.left_out {
        say!("left out: {reason}");
    }
    let progress = progress_bar(runs);
    let mut failed = 0u64;
    let (wall, summary) = wall_time(|| {
        sweep::run_sweep(catalog, manifest, jobs, out, |outcome| {
            if outcome.verdict != Verdict::Passed {
                failed += 1;
                progress.set_message(format!("· {failed} failed"));
            }
            progress.inc(1);
        })
    });
    progress.finish_and_clear();
    let summary = summary.map_err(|e| e.to_string())?;
    print_summary(&summary);
    say!(
        "{runs} runs in {:.1} s ({:.0} runs/s)",
        wall.as_secs_f64(),
        runs as f64 / wall.as_secs_f64()
    );
    Ok(summary.passed())
}

fn print_summary(summary: &SweepSummary) {
    say_raw!("{}", summary.markdown);
    say!(
        "\nresults: {}\nreport:  {} (open it in a browser; Markdown: {})",
        summary.results.display(),
        summary.html.display(),
        summary.report.display()
    );
}

fn shrink_file(catalog: &Catalog, path: &Path, out: Option<PathBuf>) -> Result<bool, String> {
    let file = CaseFile::load(path).map_err(|e| e.to_string())?;
    let out = out.unwrap_or_else(|| path.with_extension("min.json"));
    say!("shrinking {} ...", path.display());
    let shrunk = shrink::shrink(catalog, &file.case, &file.bugs, |what, outcome| {
        say!(
            "  kept: {what} (still {}, {} trace entries)",
            outcome.violations[0].property,
            outcome.stats.trace_events
        );
    })
    .map_err(|e| format!("{}: {e}", path.display()))?;
    let minimal =
        CaseFile::recorded(catalog, shrunk.case, &shrunk.outcome).map_err(|e| e.to_string())?;
    minimal.save(&out).map_err(|e| e.to_string())?;
    say!(
        "{} simplification(s) kept in {} runs; the minimal case still violates {}:\n  {}\nwritten to {}\nreplay: {} replay {}",
        shrunk.steps,
        shrunk.runs,
        shrunk.failure,
        minimal.violations.join("\n  "),
        out.display(),
        catalog.command(),
        out.display()
    );
    Ok(true)
}

fn report_path(catalog: &Catalog, path: &Path, out: Option<PathBuf>) -> Result<bool, String> {
    if path.is_dir() {
        if out.is_some() {
            return Err(
                "--out is for a case file; a sweep's report goes into its directory".into(),
            );
        }
        let summary = sweep::report(catalog, path).map_err(|e| e.to_string())?;
        print_summary(&summary);
        return Ok(summary.passed());
    }
    let dir = out.unwrap_or_else(|| {
        let stem = path
            .file_stem()
            .map_or("case".into(), |s| s.to_string_lossy());
        path.with_file_name(format!("{stem}-report"))
    });
    let outcome = report::report_case_file(catalog, path, &dir).map_err(|e| e.to_string())?;
    say!(
        "{} seed {}: {:?}\nreport: {} (open it in a browser; Markdown: {})",
        outcome.scenario,
        outcome.seed,
        outcome.verdict,
        dir.join("report.html").display(),
        dir.join("report.md").display()
    );
    Ok(outcome.verdict == Verdict::Passed)
}

fn coverage(catalog: &Catalog, dir: &Path) -> Result<bool, String> {
    let report = sweep::summaries(catalog, dir).map_err(|e| e.to_string())?;
    let (headers, rows, unreached) = report.coverage();
    let runs: u64 = report.scenarios.iter().map(|s| s.seeds).sum();
    say!("{} runs in {}", runs, dir.display());
    say_raw!("{}", snapsim_reports::markdown_table(&headers, &rows));
    say!("{}", report.coverage_line(&unreached));
    Ok(unreached.is_empty())
}

fn bench(
    catalog: &Catalog,
    name: &str,
    seeds: &str,
    repeats: u32,
    jobs: Option<usize>,
    json: bool,
    compare: Option<&Path>,
) -> Result<bool, String> {
    let scenario = catalog.scenario(name).map_err(|e| e.to_string())?;
    let seeds = sweep::parse_seeds(seeds).map_err(|e| e.to_string())?;
    if repeats == 0 {
        return Err("--repeat must be at least 1".to_string());
    }
    // Read before measuring, which takes minutes: a bad file is said at once.
    let before = compare.map(BenchReport::read).transpose()?;
    if let Some(before) = &before {
        bench::same_scenario(name, before)?;
    }
    if !json {
        say!("bench: scenario {name}, seeds {seeds:?}, {repeats} repeat(s)");
    }
    let report = bench::bench(catalog, scenario, seeds, repeats, cores(jobs));
    let compared = match &before {
        Some(before) => Some(bench::compare(&report, before)?),
        None => None,
    };
    if json {
        let text = match (&before, &compared) {
            (Some(before), Some(compared)) => serde_json::json!({
                "now": report,
                "before": before,
                "compared": compared,
            })
            .to_string(),
            _ => serde_json::to_string(&report).expect("reports serialize"),
        };
        say!("{text}");
        return Ok(true);
    }
    print_bench(&report);
    if let (Some(path), Some(compared)) = (compare, compared) {
        print_comparison(path, &compared);
    }
    Ok(true)
}

/// The benchmark's figures, each beside its target.
fn print_bench(r: &BenchReport) {
    say!(
        "seeds/s, one core:          {:>9.1}\n\
         seeds/s, {} threads:         {:>9.1}   (target for keyed-agg: 200 on 2 cores)\n\
         wall per seed:              {:>9.2} ms (of which failure-free oracle {:.2} ms, reference model {:.2} ms)\n\
         simulated s per wall s:     {:>9.1}\n\
         recovery cycles per wall s: {:>9.1}\n\
         seed cost / model cost:     {:>9.1} × (target: at most 10×)\n\
         peak memory:                {:>9} (target: under 200 MB)",
        r.seeds_per_second_one_core,
        r.cores,
        r.seeds_per_second_all_cores,
        r.wall_ms_per_seed,
        r.oracle_ms,
        r.model_ms,
        r.simulated_seconds_per_wall_second,
        r.recovery_cycles_per_wall_second,
        r.cost_over_model,
        r.peak_memory_mb
            .map_or("unknown".to_string(), |mb| format!("{mb:.0} MB")),
    );
}

/// Each figure beside the one of an earlier benchmark, with the ratio.
fn print_comparison(path: &Path, compared: &[bench::Compared]) {
    say!("\ncompared with {}:", path.display());
    say!(
        "{:<28} {:>10} {:>10} {:>8}",
        "figure",
        "now",
        "before",
        "ratio"
    );
    for c in compared {
        say!(
            "{:<28} {:>10.2} {:>10.2} {:>7.2}× {}",
            c.figure,
            c.now,
            c.before,
            c.ratio,
            c.verdict()
        );
    }
}

fn cores(jobs: Option<usize>) -> usize {
    jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1)
}
