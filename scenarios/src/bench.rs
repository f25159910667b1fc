//! The performance benchmark behind `snapsim bench`: throughput of whole seeds (simulated run,
//! failure-free oracle, reference model and checks) on one core and on all, per-seed cost
//! split into its parts, and the cost of a seed against the sequential reference model's.
//!
//! Every figure is a median over repeats or seeds: the machines are shared and noisy.

use crate::verdict::oracle;
use crate::{run, setup, sweep, Catalog, Scenario};
use serde::{Deserialize, Serialize};
use snapsim_sim::model::ReferenceModel;
use std::convert::Infallible;
use std::ops::Range;
use std::time::Duration;

/// What `snapsim bench` measures (`bench --json` writes it; `bench --compare` reads it back).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BenchReport {
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
pub fn bench(
    catalog: &Catalog,
    scenario: &Scenario,
    seeds: Range<u64>,
    repeats: u32,
    cores: usize,
) -> BenchReport {
    let count = seeds.end - seeds.start;
    let mut one_core = Vec::new();
    let mut per_seed = Vec::new();
    let (mut virtual_ms, mut restarts, mut busy) = (0u64, 0u64, Duration::ZERO);
    for _ in 0..repeats.max(1) {
        let (wall, ()) = wall_time(|| {
            for seed in seeds.clone() {
                let (took, (outcome, _)) = wall_time(|| run(catalog, scenario, seed));
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
            let (wall, ()) = wall_time(|| on_threads(catalog, scenario, seeds.clone(), cores));
            count as f64 / wall.as_secs_f64()
        })
        .collect();
    let mut oracle_ms = Vec::new();
    let mut model_ms = Vec::new();
    for seed in seeds.clone() {
        let setup = setup(catalog, scenario, seed);
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

/// One figure of a benchmark beside the same figure of an earlier one.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Compared {
    /// What it measures.
    pub figure: &'static str,
    /// This run's value.
    pub now: f64,
    /// The earlier run's value.
    pub before: f64,
    /// `now / before`.
    pub ratio: f64,
    /// Whether a higher value is the better one (throughput), or a lower (cost, memory).
    pub higher_is_better: bool,
}

impl Compared {
    /// "better", "worse" or "same" (within 2 %, less than the machines' noise).
    pub fn verdict(&self) -> &'static str {
        match self.ratio {
            r if !r.is_finite() => "n/a",
            r if (r - 1.0).abs() < 0.02 => "same",
            r if (r > 1.0) == self.higher_is_better => "better",
            _ => "worse",
        }
    }
}

impl BenchReport {
    /// The figures, named, in print order, each with whether higher is better.
    fn figures(&self) -> Vec<(&'static str, Option<f64>, bool)> {
        vec![
            (
                "seeds/s, one core",
                Some(self.seeds_per_second_one_core),
                true,
            ),
            (
                "seeds/s, all cores",
                Some(self.seeds_per_second_all_cores),
                true,
            ),
            ("wall ms per seed", Some(self.wall_ms_per_seed), false),
            ("oracle ms", Some(self.oracle_ms), false),
            ("model ms", Some(self.model_ms), false),
            (
                "simulated s per wall s",
                Some(self.simulated_seconds_per_wall_second),
                true,
            ),
            (
                "recovery cycles per wall s",
                Some(self.recovery_cycles_per_wall_second),
                true,
            ),
            ("seed cost / model cost", Some(self.cost_over_model), false),
            ("peak memory MB", self.peak_memory_mb, false),
        ]
    }

    /// Reads a report that `bench --json` wrote, naming what is wrong with it.
    pub fn read(path: &std::path::Path) -> Result<BenchReport, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        serde_json::from_str(text.trim()).map_err(|e| {
            format!(
                "{} is not what `snapsim bench --json` writes: {e}",
                path.display()
            )
        })
    }
}

/// Whether `before` measured `scenario`, as a comparison needs.
pub fn same_scenario(scenario: &str, before: &BenchReport) -> Result<(), String> {
    if before.scenario == scenario {
        return Ok(());
    }
    Err(format!(
        "the earlier benchmark measured scenario {}, this one {scenario}: compare runs of one scenario",
        before.scenario
    ))
}

/// Every figure of `now` beside `before`'s (a figure either lacks is left out), or why the
/// two cannot be compared: they measured different scenarios.
pub fn compare(now: &BenchReport, before: &BenchReport) -> Result<Vec<Compared>, String> {
    same_scenario(&now.scenario, before)?;
    let earlier = before.figures();
    Ok(now
        .figures()
        .into_iter()
        .zip(earlier)
        .filter_map(|((figure, now, higher_is_better), (_, before, _))| {
            let (now, before) = (now?, before?);
            Some(Compared {
                figure,
                now,
                before,
                ratio: now / before,
                higher_is_better,
            })
        })
        .collect())
}

/// Runs every seed once on `threads` threads.
fn on_threads(catalog: &Catalog, scenario: &Scenario, seeds: Range<u64>, threads: usize) {
    let seeds: Vec<u64> = seeds.collect();
    let done = |_, _| Ok::<(), Infallible>(());
    let Ok(()) = sweep::on_threads(&seeds, threads, |&seed| run(catalog, scenario, seed), done);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn report(seeds_per_second: f64, peak: Option<f64>) -> BenchReport {
        BenchReport {
            scenario: "keyed-agg".to_string(),
            seeds: 40,
            repeats: 3,
            cores: 2,
            seeds_per_second_one_core: seeds_per_second,
            seeds_per_second_all_cores: seeds_per_second * 2.0,
            wall_ms_per_seed: 1000.0 / seeds_per_second,
            oracle_ms: 20.0,
            model_ms: 4.0,
            simulated_seconds_per_wall_second: 30.0,
            recovery_cycles_per_wall_second: 5.0,
            cost_over_model: 25.0,
            peak_memory_mb: peak,
        }
    }

    #[test]
    fn each_figure_is_printed_beside_the_earlier_one_with_its_ratio_and_direction() {
        let compared =
            compare(&report(20.0, Some(50.0)), &report(10.0, None)).expect("same scenario");
        let throughput = &compared[0];
        assert_eq!(
            (throughput.now, throughput.before, throughput.ratio),
            (20.0, 10.0, 2.0)
        );
        assert_eq!(throughput.verdict(), "better");
        let wall = compared
            .iter()
            .find(|c| c.figure == "wall ms per seed")
            .expect("a figure");
        assert_eq!((wall.ratio, wall.verdict()), (0.5, "better"));
        let oracle = compared
            .iter()
            .find(|c| c.figure == "oracle ms")
            .expect("a figure");
        assert_eq!(oracle.verdict(), "same");
        // Memory the earlier run did not measure is left out, not compared with nothing.
        assert!(compared.iter().all(|c| c.figure != "peak memory MB"));
        let slower = compare(&report(5.0, None), &report(10.0, None)).expect("same scenario");
        assert_eq!(slower[0].verdict(), "worse");
    }

    #[test]
    fn reports_of_other_scenarios_and_files_that_are_not_reports_are_refused() {
        let mut other = report(10.0, None);
        other.scenario = "keyed-sum".to_string();
        let why = compare(&report(10.0, None), &other).expect_err("another scenario");
        assert!(why.contains("scenario keyed-sum"), "{why}");
        let dir = std::env::temp_dir().join(format!("snapsim-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let written = dir.join("before.json");
        let json = serde_json::to_string(&report(10.0, Some(1.0))).expect("serializes");
        std::fs::write(&written, json).expect("writable");
        assert_eq!(BenchReport::read(&written), Ok(report(10.0, Some(1.0))));
        let garbage = dir.join("garbage.json");
        std::fs::write(&garbage, "{\"scenario\": 3}").expect("writable");
        let why = BenchReport::read(&garbage).expect_err("not a report");
        assert!(
            why.contains("is not what `snapsim bench --json` writes"),
            "{why}"
        );
        let why = BenchReport::read(&dir.join("missing.json")).expect_err("no file");
        assert!(why.starts_with("cannot read"), "{why}");
    }
}
