//! The performance benchmark behind `snapsim bench`: throughput of whole seeds (simulated run,
//! failure-free oracle, reference model and checks) on one core and on all, per-seed cost
//! split into its parts, and the cost of a seed against the sequential reference model's.
//!
//! Every figure is a median over repeats or seeds: the machines are shared and noisy.

use crate::{oracle, run, setup, sweep, Scenario};
use serde::Serialize;
use snapsim_sim::model::ReferenceModel;
use std::convert::Infallible;
use std::ops::Range;
use std::time::Duration;

/// What `snapsim bench` measures.
#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    /// The scenario.
    pub scenario: String,
    /// Seeds per repeat.
    pub seeds: u64,
    /// Repeats of each throughput measurement.
    pub repeats: u32,
    /// Threads of the all-cores measurement.
    pub cores: usize,
    /// Seeds per wall second, one run at a time (median over repeats).
    pub seeds_per_second_one_core: f64,
    /// Seeds per wall second on `cores` threads (median over repeats).
    pub seeds_per_second_all_cores: f64,
    /// Wall time of one seed, in ms (median over seeds, one at a time).
    pub wall_ms_per_seed: f64,
    /// Of which: the failure-free oracle run (median, ms).
    pub oracle_ms: f64,
    /// Of which: building the sequential reference model (median, ms).
    pub model_ms: f64,
    /// Simulated seconds per wall second, one core.
    pub simulated_seconds_per_wall_second: f64,
    /// Failovers (crash → restored) per wall second, one core.
    pub recovery_cycles_per_wall_second: f64,
    /// A seed's wall time over the reference model's for the same job (medians).
    pub cost_over_model: f64,
    /// The process's peak resident memory, in MB (Linux `VmHWM`; absent elsewhere).
    pub peak_memory_mb: Option<f64>,
}

/// Measures `scenario` over `seeds`, each throughput figure `repeats` times.
pub fn bench(scenario: &Scenario, seeds: Range<u64>, repeats: u32, cores: usize) -> BenchReport {
    let count = seeds.end - seeds.start;
    let mut one_core = Vec::new();
    let mut per_seed = Vec::new();
    let (mut virtual_ms, mut restarts, mut busy) = (0u64, 0u64, Duration::ZERO);
    for _ in 0..repeats.max(1) {
        let (wall, ()) = wall_time(|| {
            for seed in seeds.clone() {
                let (took, (outcome, _)) = wall_time(|| run(scenario, seed));
                per_seed.push(millis(took));
                virtual_ms += outcome.stats.virtual_ticks;
                restarts += outcome.stats.restarts;
                busy += took;
            }
        });
        one_core.push(count as f64 / wall.as_secs_f64());
    }
    let all_cores: Vec<f64> = (0..repeats.max(1))
        .map(|_| {
            let (wall, ()) = wall_time(|| on_threads(scenario, seeds.clone(), cores));
            count as f64 / wall.as_secs_f64()
        })
        .collect();
    let mut oracle_ms = Vec::new();
    let mut model_ms = Vec::new();
    for seed in seeds.clone() {
        let setup = setup(scenario, seed);
        let plan = std::sync::Arc::new(setup.job.clone().build().expect("a valid job"));
        oracle_ms.push(millis(wall_time(|| oracle(&plan, &setup)).0));
        model_ms.push(millis(wall_time(|| ReferenceModel::new(&setup.job)).0));
    }
    let wall_ms_per_seed = median(per_seed);
    let model = median(model_ms);
    BenchReport {
        scenario: scenario.name.to_string(),
        seeds: count,
        repeats: repeats.max(1),
        cores,
        seeds_per_second_one_core: median(one_core),
        seeds_per_second_all_cores: median(all_cores),
        wall_ms_per_seed,
        oracle_ms: median(oracle_ms),
        model_ms: model,
        simulated_seconds_per_wall_second: virtual_ms as f64 / 1e3 / busy.as_secs_f64(),
        recovery_cycles_per_wall_second: restarts as f64 / busy.as_secs_f64(),
        cost_over_model: wall_ms_per_seed / model,
        peak_memory_mb: peak_memory_mb(),
    }
}

/// Runs every seed once on `threads` threads.
fn on_threads(scenario: &Scenario, seeds: Range<u64>, threads: usize) {
    let seeds: Vec<u64> = seeds.collect();
    let done = |_, _| Ok::<(), Infallible>(());
    let Ok(()) = sweep::on_threads(&seeds, threads, |&seed| run(scenario, seed), done);
}

/// The benchmark is the one place that reads the wall clock: it measures, runs never do.
#[allow(clippy::disallowed_methods)]
pub fn wall_time<T>(work: impl FnOnce() -> T) -> (Duration, T) {
    let start = std::time::Instant::now();
    let value = work();
    (start.elapsed(), value)
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

/// The peak resident set size of this process, from `/proc/self/status` (Linux only).
fn peak_memory_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kilobytes: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kilobytes / 1024.0)
}
