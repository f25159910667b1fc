//! Campaigns: snapshot algorithms compared on the same scenarios, fault profiles and seeds.
//!
//! A campaign is a matrix of cells (algorithm × scenario × fault profile), each run over the
//! same seeds. Every (algorithm, fault profile) pair is an ordinary sweep in its own directory
//! under `cells/`, so a failing run has its replay line and run report as in any sweep, and
//! `snapsim report` re-renders a cell. The campaign report puts the cells side by side.

use crate::summary::cell_summary;
use crate::sweep::{self, run_sweep, Manifest, Shard, SweepError};
use crate::{checkmate, paper, Catalog, Outcome, Variant};
use snapsim_reports::campaign::{CampaignReport, CellSummary, CellTable, Figures};
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;

/// The matrix of a campaign.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Matrix {
    /// The snapshot algorithms, by name.
    pub algorithms: Vec<String>,
    /// The scenarios, by name.
    pub scenarios: Vec<String>,
    /// The fault profiles, by name.
    pub faults: Vec<String>,
    /// The seeds every cell runs.
    pub seeds: Range<u64>,
    /// Seeded bugs switched on in every run, by name (sorted, each once).
    pub bugs: Vec<String>,
}

/// The scenarios of the default campaign: a plain job, a job under back-pressure, one under
/// key skew, and one with a two-input operator.
pub const DEFAULT_SCENARIOS: [&str; 4] = ["keyed-sum", "back-pressure", "hot-key", "co-window"];
/// The fault profiles of the default campaign: none, and a TaskManager crash (recovery).
pub const DEFAULT_FAULTS: [&str; 2] = ["none", "tm-crash"];

impl Matrix {
    /// A matrix from command-line names; empty lists take the defaults (every algorithm,
    /// [`DEFAULT_SCENARIOS`], [`DEFAULT_FAULTS`]). Every name is checked.
    pub fn new(
        catalog: &Catalog,
        algorithms: &[String],
        scenarios: &[String],
        faults: &[String],
        seeds: Range<u64>,
        bugs: &[String],
    ) -> Result<Matrix, SweepError> {
        let unknown = |e: crate::NameError| SweepError::Unknown(e.to_string());
        let or_default = |given: &[String], default: &[&str]| -> Vec<String> {
            let mut names: Vec<String> = Vec::new();
            let all = if given.is_empty() {
                default.iter().map(|s| s.to_string()).collect()
            } else {
                given.to_vec()
            };
            for name in all {
                if !names.contains(&name) {
                    names.push(name);
                }
            }
            names
        };
        let all_algorithms: Vec<&str> = catalog.algorithms().iter().map(|a| a.name()).collect();
        let algorithms = or_default(algorithms, &all_algorithms);
        for name in &algorithms {
            catalog.algorithm(name).map_err(unknown)?;
        }
        let scenarios = or_default(scenarios, &DEFAULT_SCENARIOS);
        for name in &scenarios {
            catalog.scenario(name).map_err(|e| unknown(e.into()))?;
        }
        let faults = or_default(faults, &DEFAULT_FAULTS);
        for name in &faults {
            catalog.profile(name).map_err(|e| unknown(e.into()))?;
        }
        if seeds.is_empty() {
            return Err(SweepError::Unknown("the seed range is empty".into()));
        }
        let bugs = Variant::new(catalog, None, None, bugs)
            .map_err(unknown)?
            .bugs;
        Ok(Matrix {
            algorithms,
            scenarios,
            faults,
            seeds,
            bugs,
        })
    }

    /// Runs in the whole matrix, less the cells that cannot be judged.
    pub fn runs(&self, catalog: &Catalog) -> u64 {
        let judged = self.algorithms.len() * self.scenarios.len() - self.refused(catalog).len();
        (judged * self.faults.len()) as u64 * (self.seeds.end - self.seeds.start)
    }

    /// Why each (algorithm, scenario) of the matrix that cannot be judged fairly is left out.
    pub fn refused(&self, catalog: &Catalog) -> Vec<String> {
        let pairs =
            (self.algorithms.iter()).flat_map(|a| self.scenarios.iter().map(move |name| (a, name)));
        pairs
            .filter_map(|(algorithm, name)| {
                let variant = Variant {
                    algorithm: Some(algorithm.clone()),
                    ..Variant::default()
                };
                variant.refused_by(catalog, catalog.scenario(name).ok()?)
            })
            .collect()
    }

    /// Runs every cell on `jobs` threads, one sweep per (algorithm, fault profile) in
    /// `out/cells/ALGORITHM-FAULTS/`; `on_done` sees each outcome. The cells come grouped by
    /// scenario and fault profile, the algorithms in order within each group.
    pub fn run(
        &self,
        catalog: &Catalog,
        jobs: usize,
        out: &Path,
        mut on_done: impl FnMut(&Outcome),
    ) -> Result<Vec<CellSummary>, SweepError> {
        let mut cells: BTreeMap<(usize, usize, usize), CellSummary> = BTreeMap::new();
        for (a, algorithm) in self.algorithms.iter().enumerate() {
            for (f, faults) in self.faults.iter().enumerate() {
                let variant = Variant::new(
                    catalog,
                    Some(faults.clone()),
                    Some(algorithm.clone()),
                    &self.bugs,
                )
                .map_err(|e| SweepError::Unknown(e.to_string()))?;
                // A cell that cannot be judged fairly is left out of the table, not run red.
                let judged: Vec<String> = (self.scenarios.iter())
                    .filter(|name| {
                        (catalog.scenario(name))
                            .is_ok_and(|s| variant.refused_by(catalog, s).is_none())
                    })
                    .cloned()
                    .collect();
                if judged.is_empty() {
                    continue;
                }
                let manifest =
                    Manifest::new(catalog, &judged, self.seeds.clone(), Shard::WHOLE, variant)?;
                let name = format!("{algorithm}-{faults}");
                let dir = out.join("cells").join(&name);
                let summary = run_sweep(catalog, &manifest, jobs, &dir, &mut on_done)?;
                let outcomes = sweep::outcomes(&dir)?;
                for scenario in &summary.scenarios {
                    // Grouped by the matrix's scenario order, whatever a cell left out.
                    let s = (self.scenarios.iter())
                        .position(|name| *name == scenario.scenario)
                        .expect("a cell runs the matrix's scenarios");
                    let runs: Vec<&Outcome> = outcomes
                        .iter()
                        .filter(|o| o.scenario == scenario.scenario)
                        .collect();
                    let mut cell =
                        cell_summary(catalog, algorithm, &scenario.scenario, faults, &runs);
                    // Failures as the cell's sweep reported them, reports relative to here.
                    cell.failures = scenario.failures.clone();
                    for failure in &mut cell.failures {
                        if let Some(report) = &mut failure.report {
                            *report = format!("cells/{name}/{report}");
                        }
                    }
                    cells.insert((s, f, a), cell);
                }
            }
        }
        Ok(cells.into_values().collect())
    }
}

/// A campaign preset: what `snapsim campaign --preset NAME` runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preset {
    /// The matrix as given (defaults: every algorithm × [`DEFAULT_SCENARIOS`] ×
    /// [`DEFAULT_FAULTS`]).
    Matrix,
    /// The experiments of the literature (Flink's docs, source and blog posts) with expected
    /// and measured results, the checkpoint duration against the sink's throughput, and the
    /// default matrix.
    Paper,
    /// The CheckMate comparison (`crate::checkmate`): coordinated, uncoordinated and
    /// communication-induced checkpointing on uniform and skewed keys, without faults and with
    /// a TaskManager crash, and the study's claims measured.
    Checkmate,
}

impl Preset {
    /// The preset called `name`.
    pub fn named(name: &str) -> Result<Preset, SweepError> {
        match name {
            "matrix" => Ok(Preset::Matrix),
            "paper" => Ok(Preset::Paper),
            "checkmate" => Ok(Preset::Checkmate),
            _ => Err(SweepError::Unknown(format!(
                "unknown campaign preset '{name}'; known: matrix, paper, checkmate"
            ))),
        }
    }
}

/// The runs a campaign makes (the simulated ones, each reported to `on_done`).
pub fn planned_runs(catalog: &Catalog, preset: Preset, matrix: &Matrix) -> u64 {
    let seeds = matrix.seeds.end - matrix.seeds.start;
    matrix.runs(catalog)
        + match preset {
            Preset::Matrix | Preset::Checkmate => 0,
            Preset::Paper => {
                paper::SIMULATED_RUNS + paper::throughput_runs(seeds) + paper::backend_runs(seeds)
            }
        }
}

/// Runs a campaign and writes its report (campaign.md, campaign.html, campaign.csv, charts,
/// and experiments.csv for the paper preset) into `out`; `on_done` sees each run's outcome
/// (the matrix's and the back-pressure table's; the experiments report when each ends).
pub fn run_campaign(
    catalog: &Catalog,
    preset: Preset,
    matrix: &Matrix,
    jobs: usize,
    out: &Path,
    command: &str,
    mut on_done: impl FnMut(&Outcome),
) -> Result<CampaignReport, SweepError> {
    let mut runs = 0;
    let mut on_done = |outcome: &Outcome| {
        runs += 1;
        on_done(outcome);
    };
    std::fs::create_dir_all(out).map_err(|e| sweep::file_error(out, e))?;
    let mut report = CampaignReport {
        title: match preset {
            Preset::Matrix => "snapsim campaign".to_string(),
            Preset::Paper => "snapsim campaign: the experiments of the literature".to_string(),
            Preset::Checkmate => {
                "snapsim campaign: checkpointing protocols compared (CheckMate)".to_string()
            }
        },
        command: command.to_string(),
        ..CampaignReport::default()
    };
    if preset == Preset::Paper {
        run_paper(catalog, jobs, matrix, &mut on_done, &mut report);
    }
    let cells = matrix.run(catalog, jobs, out, &mut on_done)?;
    match preset {
        Preset::Checkmate => {
            let table = checkmate::table(&matrix.seeds, cells);
            report.experiments = checkmate::experiments(&table);
            report.tables.push(table);
        }
        Preset::Matrix | Preset::Paper => report.tables.push(matrix_table(matrix, cells)),
    }
    report.write(out).map_err(|e| sweep::file_error(out, e))?;
    assert_eq!(
        runs,
        planned_runs(catalog, preset, matrix),
        "the progress shown counts every run"
    );
    Ok(report)
}

/// The paper preset's experiments and tables before the matrix: the experiments of the
/// literature, checkpoint duration against the sink's throughput, the keyed-state backends.
fn run_paper(
    catalog: &Catalog,
    jobs: usize,
    matrix: &Matrix,
    on_done: &mut dyn FnMut(&Outcome),
    report: &mut CampaignReport,
) {
    let mut runner = paper::Runner {
        catalog,
        jobs,
        seeds: paper::SEEDS,
        bugs: matrix.bugs.clone(),
        on_done,
    };
    report.experiments = paper::experiments(&mut runner);
    let throughput = paper::throughput_table(&mut runner, matrix.seeds.clone());
    (report.experiments).extend(paper::back_pressure_experiments(&throughput));
    report.tables.push(throughput);
    let backends = paper::backends_table(&mut runner, matrix.seeds.clone());
    (report.experiments).push(paper::changelog_experiment(&backends));
    report.tables.push(backends);
}

/// The matrix's table: every algorithm side by side.
fn matrix_table(matrix: &Matrix, cells: Vec<CellSummary>) -> CellTable {
    CellTable {
        title: "Snapshot algorithms side by side".to_string(),
        about: format!(
            "Every algorithm on the same scenarios, fault profiles and seeds ({}..{}); \
             back-pressure has a slow sink, hot-key half the records on one key and a slow \
             sum. Figures are percentiles over every completed checkpoint (or failover) of \
             every run of a cell; records replayed are per run. Each (algorithm, faults) pair \
             is a sweep in cells/.",
            matrix.seeds.start, matrix.seeds.end
        ),
        slug: "matrix".to_string(),
        figures: Figures::Checkpoints,
        cells,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkmate::{experiments, table, ALGORITHMS, FAULTS, SCENARIOS};
    use snapsim_reports::campaign::Agreement;

    /// Why: each claim is a predicate on the measured figures; the comparison must agree on the
    /// engine as it is, and a protocol that stopped doing what the claim is about turns its row
    /// UNEXPECTED.
    #[test]
    fn the_claims_agree_and_turn_unexpected_when_the_figure_they_are_about_goes() {
        let catalog = Catalog::builtin();
        let strings =
            |names: &[&str]| -> Vec<String> { names.iter().map(|n| n.to_string()).collect() };
        let matrix = Matrix::new(
            &catalog,
            &strings(&ALGORITHMS),
            &strings(&SCENARIOS),
            &strings(&FAULTS),
            0..4,
            &[],
        )
        .expect("known names");
        let out = std::env::temp_dir().join(format!("snapsim-checkmate-{}", std::process::id()));
        let cells = matrix
            .run(&catalog, 2, &out, |_| {})
            .expect("the matrix runs");
        let _ = std::fs::remove_dir_all(&out);
        let table = table(&matrix.seeds, cells);
        let rows = experiments(&table);
        for row in &rows {
            assert_eq!(row.agreement, Agreement::Agrees, "{row:?}");
        }
        let mut no_forced = table.clone();
        (no_forced.cells.iter_mut())
            .for_each(|c| c.forced_snapshots.iter_mut().for_each(|f| *f = 0));
        assert_eq!(experiments(&no_forced)[2].agreement, Agreement::Unexpected);
        let mut no_logs = table.clone();
        (no_logs.cells.iter_mut()).for_each(|c| c.log_bytes.clear());
        assert_eq!(experiments(&no_logs)[3].agreement, Agreement::Unexpected);
        let mut missing = table.clone();
        missing.cells.retain(|c| c.faults != "tm-crash");
        assert_eq!(
            experiments(&missing)[0].agreement,
            Agreement::Unexpected,
            "not measured"
        );
        let mut slow_tail = table;
        for cell in (slow_tail.cells.iter_mut()).filter(|c| c.algorithm == "uncoordinated") {
            cell.commit_delay_ms.iter_mut().for_each(|ms| *ms *= 10);
        }
        assert_eq!(experiments(&slow_tail)[1].agreement, Agreement::Unexpected);
    }
}
