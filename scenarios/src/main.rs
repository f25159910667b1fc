//! `snapsim`: run scenarios on the simulated cluster, one seed or a sweep.
//!
//! Exit codes: 0 every property held, 1 a property was violated, 2 bad input.

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use snapsim_core::bugs::SeededBug;
use snapsim_scenarios::bench::wall_time;
use snapsim_scenarios::generated::{CaseFile, BUILD_COMMIT};
use snapsim_scenarios::run_case;
use snapsim_scenarios::sweep::{self, Manifest, Shard, SweepError, SweepSummary};
use snapsim_scenarios::{describe_run, find, judge, scenarios, setup, Outcome, Verdict};
use snapsim_sim::faults::FaultSchedule;
use snapsim_sim::trace::TraceEntry;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "snapsim",
    version,
    about = "Deterministic simulation testing of Flink-style checkpointing"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Lists the scenarios.
    List {
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Runs one scenario with one seed and prints its verdict.
    Run {
        /// The scenario (see `snapsim list`).
        #[arg(long)]
        scenario: String,
        /// The seed.
        #[arg(long)]
        seed: u64,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
        /// Replay this fault schedule (JSON) instead of the one the seed draws.
        #[arg(long, value_name = "FILE")]
        schedule: Option<PathBuf>,
        /// Write the fault schedule of the run (JSON) here, to edit and replay it.
        #[arg(long, value_name = "FILE")]
        save_schedule: Option<PathBuf>,
        /// Switch a seeded bug on (repeatable; see `snapsim list`).
        #[arg(long, value_name = "NAME")]
        bug: Vec<String>,
        /// Write the run's trace here, one JSON object per line.
        #[arg(long, value_name = "FILE")]
        trace: Option<PathBuf>,
    },
    /// Replays a case file written by a failing fuzz test (or `--save-case`) and checks that
    /// it gives the recorded trace hash.
    Replay {
        /// The case file (JSON).
        file: PathBuf,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
        /// Write the run's trace here, one JSON object per line.
        #[arg(long, value_name = "FILE")]
        trace: Option<PathBuf>,
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
    },
    /// Runs scenarios over a range of seeds on all cores, prints a verdict and writes
    /// sweep.json, results.jsonl and report.md.
    Sweep {
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
        /// Switch a seeded bug on (repeatable; see `snapsim list`).
        #[arg(long, value_name = "NAME")]
        bug: Vec<String>,
    },
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Without a command: the default sweep the README's first command runs.
    let command = cli.command.unwrap_or(Command::Sweep {
        scenario: Vec::new(),
        seeds: "0..32".into(),
        out: PathBuf::from("snapsim-out"),
        jobs: None,
        shard: None,
        bug: Vec::new(),
    });
    let result =
        match command {
            Command::List { json } => list(json),
            Command::Run {
                scenario,
                seed,
                json,
                schedule,
                save_schedule,
                bug,
                trace,
            } => parse_bugs(&bug).and_then(|bugs| {
                let files = RunFiles {
                    schedule,
                    save_schedule,
                    trace,
                };
                run_one(&scenario, seed, json, files, &bugs)
            }),
            Command::Replay { file, json, trace } => replay(&file, json, trace),
            Command::Bench {
                scenario,
                seeds,
                repeat,
                jobs,
                json,
            } => bench(&scenario, &seeds, repeat, jobs, json),
            Command::Sweep {
                scenario,
                seeds,
                out,
                jobs,
                shard,
                bug,
            } => parse_bugs(&bug).and_then(|bugs| {
                let seeds = sweep::parse_seeds(&seeds).map_err(|e| e.to_string())?;
                let shard = match shard {
                    Some(text) => text.parse().map_err(|e: SweepError| e.to_string())?,
                    None => Shard::WHOLE,
                };
                let manifest =
                    Manifest::new(&scenario, seeds, shard, &bugs).map_err(|e| e.to_string())?;
                run_sweep(&manifest, jobs, &out)
            }),
            Command::Merge { dirs, out } => sweep::merge(&dirs, &out)
                .map_err(|e| e.to_string())
                .map(|summary| {
                    print_summary(&summary);
                    summary.passed()
                }),
        };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

fn list(json: bool) -> Result<bool, String> {
    if json {
        let list: Vec<_> = scenarios()
            .iter()
            .map(|s| serde_json::json!({"name": s.name, "description": s.description}))
            .collect();
        let bugs: Vec<_> = SeededBug::ALL
            .iter()
            .map(|b| {
                serde_json::json!({"name": b.name(), "description": b.description(),
                    "violates": b.violates(), "reference": b.reference()})
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({ "scenarios": list, "seeded_bugs": bugs })
        );
    } else {
        for s in scenarios() {
            println!("{:<16} {}", s.name, s.description);
        }
        println!("\nseeded bugs (--bug NAME; off unless named):");
        for b in SeededBug::ALL {
            println!(
                "{:<32} {} (violates {})",
                b.name(),
                b.description(),
                b.violates()
            );
        }
    }
    Ok(true)
}

/// The files `snapsim run` reads and writes.
struct RunFiles {
    schedule: Option<PathBuf>,
    save_schedule: Option<PathBuf>,
    trace: Option<PathBuf>,
}

fn run_one(
    name: &str,
    seed: u64,
    json: bool,
    files: RunFiles,
    bugs: &BTreeSet<SeededBug>,
) -> Result<bool, String> {
    let RunFiles {
        schedule,
        save_schedule,
        trace,
    } = files;
    let scenario = find(name).map_err(|e| e.to_string())?;
    let mut setup = setup(scenario, seed);
    setup.job.bugs.extend(bugs);
    if let Some(path) = schedule {
        let replayed = FaultSchedule::load(&path).map_err(|e| e.to_string())?;
        replayed
            .validate(&setup.cluster)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        setup.schedule = replayed;
    }
    if let Some(path) = save_schedule {
        setup.schedule.save(&path).map_err(|e| e.to_string())?;
    }
    let (outcome, result) = judge(scenario.name, seed, setup).map_err(|e| e.to_string())?;
    write_trace(trace, &result.trace)?;
    print_run(&outcome, &result.trace, json, &outcome.replay_line());
    Ok(outcome.verdict == Verdict::Passed)
}

fn replay(path: &Path, json: bool, trace: Option<PathBuf>) -> Result<bool, String> {
    let file = CaseFile::load(path).map_err(|e| e.to_string())?;
    let bugs = parse_bugs(&file.bugs)?;
    if file.commit != BUILD_COMMIT {
        eprintln!(
            "note: the case was recorded with build {}, this is {BUILD_COMMIT}: the trace may differ",
            file.commit
        );
    }
    let (outcome, result) = run_case(&file.case, &bugs).map_err(|e| e.to_string())?;
    write_trace(trace, &result.trace)?;
    let replay_line = format!("cargo run --release -- replay {}", path.display());
    print_run(&outcome, &result.trace, json, &replay_line);
    if !json {
        let same = outcome.trace_hash == file.trace_hash;
        println!(
            "  trace hash {:016x}: {} the recorded {:016x}",
            outcome.trace_hash,
            if same { "equal to" } else { "DIFFERENT from" },
            file.trace_hash
        );
    }
    Ok(outcome.verdict == Verdict::Passed)
}

/// Prints one run: a JSON object, or the outcome and the trace before its first violation.
fn print_run(outcome: &Outcome, trace: &[TraceEntry], json: bool, replay_line: &str) {
    if json {
        println!(
            "{}",
            serde_json::to_string(outcome).expect("outcomes serialize")
        );
    } else {
        print!("{}", describe_run(outcome, trace, replay_line));
    }
}

fn write_trace(path: Option<PathBuf>, trace: &[TraceEntry]) -> Result<(), String> {
    let Some(path) = path else {
        return Ok(());
    };
    let lines: String = trace
        .iter()
        .map(|entry| serde_json::to_string(entry).expect("trace entries serialize") + "\n")
        .collect();
    std::fs::write(&path, lines).map_err(|e| format!("{}: {e}", path.display()))
}

fn parse_bugs(names: &[String]) -> Result<BTreeSet<SeededBug>, String> {
    SeededBug::all_named(names).map_err(|e| e.to_string())
}

/// Runs a sweep with a progress bar on stderr (hidden when it is not a terminal).
fn run_sweep(manifest: &Manifest, jobs: Option<usize>, out: &Path) -> Result<bool, String> {
    let jobs = cores(jobs);
    let runs = manifest.work().len() as u64;
    println!(
        "sweep: {} scenario(s) × seeds {}..{}{} = {runs} runs on {jobs} threads",
        manifest.scenarios.len(),
        manifest.seeds.start,
        manifest.seeds.end,
        match manifest.shard {
            Shard::WHOLE => String::new(),
            shard => format!(" (shard {shard})"),
        },
    );
    let progress = ProgressBar::new(runs);
    progress.set_style(
        ProgressStyle::with_template(
            "{elapsed_precise} [{wide_bar}] {pos}/{len} runs, {per_sec}, ETA {eta} {msg}",
        )
        .expect("the template is valid")
        .progress_chars("=> "),
    );
    let mut failed = 0u64;
    let (wall, summary) = wall_time(|| {
        sweep::run_sweep(manifest, jobs, out, |outcome| {
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
    println!(
        "{runs} runs in {:.1} s ({:.0} runs/s)",
        wall.as_secs_f64(),
        runs as f64 / wall.as_secs_f64()
    );
    Ok(summary.passed())
}

fn print_summary(summary: &SweepSummary) {
    print!("{}", summary.markdown);
    println!(
        "\nresults: {}\nreport:  {}",
        summary.results.display(),
        summary.report.display()
    );
}

fn bench(
    name: &str,
    seeds: &str,
    repeats: u32,
    jobs: Option<usize>,
    json: bool,
) -> Result<bool, String> {
    let scenario = find(name).map_err(|e| e.to_string())?;
    let seeds = sweep::parse_seeds(seeds).map_err(|e| e.to_string())?;
    if repeats == 0 {
        return Err("--repeat must be at least 1".to_string());
    }
    if !json {
        println!("bench: scenario {name}, seeds {seeds:?}, {repeats} repeat(s)");
    }
    let report = snapsim_scenarios::bench::bench(scenario, seeds, repeats, cores(jobs));
    if json {
        println!(
            "{}",
            serde_json::to_string(&report).expect("reports serialize")
        );
        return Ok(true);
    }
    let r = &report;
    println!(
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
    Ok(true)
}

fn cores(jobs: Option<usize>) -> usize {
    jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1)
}
