//! Sweeps: many (scenario, seed) runs on all cores, their outcomes streamed to JSON lines in a
//! fixed order; shards of one sweep for many machines; and the merge of the shards' results
//! into exactly the files and summary one sweep would have written.
//!
//! A sweep directory holds `sweep.json` (what was swept: the [`Manifest`]), `results.jsonl`
//! (one [`Outcome`] per line, scenario by scenario in the order given, seeds ascending) and
//! `report.md`. The summary is always computed from `results.jsonl`, by the sweep and by the
//! merge alike, so four shards merged give the same summary as one sweep.

use crate::report::{write_failure_reports, FailureReports};
use crate::{run_variant, Catalog, Outcome, Scenario, Variant, Verdict, BUILD_COMMIT};
use serde::{Deserialize, Serialize};
use snapsim_core::probes::Probe;
use snapsim_reports::sweep::{FailedRun, ScenarioSummary, SweepReport};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use thiserror::Error;

/// What can go wrong before, during or after a sweep (all of it bad input or a file problem).
#[derive(Debug, Error)]
pub enum SweepError {
    /// A seed range that is not `A..B` with `A < B`.
    #[error("invalid seed range '{0}': expected A..B with A < B, for example 0..100")]
    BadSeeds(String),
    /// A shard that is not `K/N` with `1 <= K <= N`.
    #[error("invalid shard '{0}': expected K/N with 1 <= K <= N, for example 2/4")]
    BadShard(String),
    /// An unknown scenario or seeded bug.
    #[error("{0}")]
    Unknown(String),
    /// A scenario named with a variant it cannot be judged with.
    #[error("{0}")]
    Refused(String),
    /// A file could not be read or written.
    #[error("{path}: {error}")]
    File {
        /// The file.
        path: String,
        /// What the OS said.
        error: String,
    },
    /// A file is not what a sweep writes.
    #[error("{path}: {error}")]
    Malformed {
        /// The file (and line).
        path: String,
        /// What is wrong.
        error: String,
    },
    /// The directories given to merge are not the shards of one sweep.
    #[error("cannot merge: {0}")]
    Shards(String),
}

pub(crate) fn file_error(path: &Path, error: impl fmt::Display) -> SweepError {
    SweepError::File {
        path: path.display().to_string(),
        error: error.to_string(),
    }
}

/// Parses a seed range `A..B` (B excluded).
pub fn parse_seeds(text: &str) -> Result<Range<u64>, SweepError> {
    let bad = || SweepError::BadSeeds(text.to_string());
    let (low, high) = text.split_once("..").ok_or_else(bad)?;
    let low: u64 = low.trim().parse().map_err(|_| bad())?;
    let high: u64 = high.trim().parse().map_err(|_| bad())?;
    if low >= high {
        return Err(bad());
    }
    Ok(low..high)
}

/// A deterministic share of a sweep's seeds: shard `index` of `count` takes the seeds whose
/// position in the range is `index - 1` modulo `count`, every scenario of them, so shards are
/// balanced and a batch scheduler's index (a Kubernetes indexed Job, a CI matrix) names one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Shard {
    /// 1-based.
    pub index: u32,
    /// How many shards the sweep is split into.
    pub count: u32,
}

impl Shard {
    /// The whole sweep, unsplit.
    pub const WHOLE: Shard = Shard { index: 1, count: 1 };

    /// Whether the seed at `position` in the range belongs to this shard.
    pub fn takes(self, position: u64) -> bool {
        position % u64::from(self.count) == u64::from(self.index - 1)
    }
}

impl FromStr for Shard {
    type Err = SweepError;
    fn from_str(text: &str) -> Result<Shard, SweepError> {
        let bad = || SweepError::BadShard(text.to_string());
        let (index, count) = text.split_once('/').ok_or_else(bad)?;
        let index: u32 = index.trim().parse().map_err(|_| bad())?;
        let count: u32 = count.trim().parse().map_err(|_| bad())?;
        if index == 0 || index > count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Serialize for Shard {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Shard {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Shard, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// What a sweep directory holds results of (`sweep.json`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The scenarios, in the order of the results.
    pub scenarios: Vec<String>,
    /// Why each scenario of "every scenario" that the variant cannot be judged on was left out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub left_out: Vec<String>,
    /// The seed range (end excluded).
    pub seeds: Range<u64>,
    /// The share of the seeds this directory holds.
    pub shard: Shard,
    /// What every run changes from its scenario's own choices.
    #[serde(flatten)]
    pub variant: Variant,
    /// The build that ran it.
    pub commit: String,
}

impl Manifest {
    /// The manifest of a sweep of `names` over `seeds`, checking every name.
    pub fn new(
        catalog: &Catalog,
        names: &[String],
        seeds: Range<u64>,
        shard: Shard,
        variant: Variant,
    ) -> Result<Manifest, SweepError> {
        let mut left_out = Vec::new();
        let scenarios = if names.is_empty() {
            let mut judged = Vec::new();
            for scenario in catalog.scenarios() {
                match variant.refused_by(catalog, scenario) {
                    Some(reason) => left_out.push(reason),
                    None => judged.push(scenario.name.to_string()),
                }
            }
            judged
        } else {
            let mut unique: Vec<String> = Vec::new();
            for name in names {
                let scenario =
                    (catalog.scenario(name)).map_err(|e| SweepError::Unknown(e.to_string()))?;
                if let Some(reason) = variant.refused_by(catalog, scenario) {
                    return Err(SweepError::Refused(reason));
                }
                if !unique.contains(name) {
                    unique.push(name.clone());
                }
            }
            unique
        };
        Ok(Manifest {
            left_out,
            scenarios,
            seeds,
            shard,
            variant,
            commit: BUILD_COMMIT.to_string(),
        })
    }

    /// The runs of this shard, in result order.
    pub fn work<'c>(&self, catalog: &'c Catalog) -> Vec<(&'c Scenario, u64)> {
        let seeds: Vec<u64> = self
            .seeds
            .clone()
            .filter(|seed| self.shard.takes(seed - self.seeds.start))
            .collect();
        self.scenarios
            .iter()
            .map(|name| {
                let scenario = catalog.scenario(name);
                scenario
                    .expect("checked when the manifest was made")
                    .as_ref()
            })
            .flat_map(|scenario| seeds.iter().map(move |&seed| (scenario, seed)))
            .collect()
    }

    fn load(catalog: &Catalog, dir: &Path) -> Result<Manifest, SweepError> {
        let path = dir.join(MANIFEST);
        let text = std::fs::read_to_string(&path).map_err(|e| file_error(&path, e))?;
        let malformed = |error: String| SweepError::Malformed {
            path: path.display().to_string(),
            error,
        };
        let manifest: Manifest = serde_json::from_str(&text)
            .map_err(|e| malformed(format!("not a sweep manifest: {e}")))?;
        for name in &manifest.scenarios {
            catalog
                .scenario(name)
                .map_err(|e| malformed(e.to_string()))?;
        }
        manifest
            .variant
            .check(catalog)
            .map_err(|e| malformed(e.to_string()))?;
        Ok(manifest)
    }

    fn save(&self, dir: &Path) -> Result<(), SweepError> {
        let path = dir.join(MANIFEST);
        let text = serde_json::to_string_pretty(self).expect("manifests serialize") + "\n";
        std::fs::write(&path, text).map_err(|e| file_error(&path, e))
    }
}

const MANIFEST: &str = "sweep.json";
const RESULTS: &str = "results.jsonl";
const REPORT: &str = "report.md";
const HTML_REPORT: &str = "report.html";

/// What a finished sweep (or merge) wrote.
#[derive(Clone, Debug)]
pub struct SweepSummary {
    /// Per scenario, in the manifest's order.
    pub scenarios: Vec<ScenarioSummary>,
    /// The Markdown report.
    pub markdown: String,
    /// `results.jsonl`.
    pub results: PathBuf,
    /// `report.md`.
    pub report: PathBuf,
    /// `report.html`.
    pub html: PathBuf,
}

impl SweepSummary {
    /// Every run passed.
    pub fn passed(&self) -> bool {
        self.scenarios.iter().all(|s| s.passed == s.seeds)
    }
}

/// Runs the manifest's share on `jobs` threads, streaming outcomes to `out/results.jsonl` in
/// result order; `on_done` sees each outcome as it finishes (for a progress bar).
pub fn run_sweep(
    catalog: &Catalog,
    manifest: &Manifest,
    jobs: usize,
    out: &Path,
    mut on_done: impl FnMut(&Outcome),
) -> Result<SweepSummary, SweepError> {
    manifest
        .variant
        .check(catalog)
        .map_err(|e| SweepError::Unknown(e.to_string()))?;
    let work = manifest.work(catalog);
    std::fs::create_dir_all(out).map_err(|e| file_error(out, e))?;
    manifest.save(out)?;
    let results = out.join(RESULTS);
    let file = std::fs::File::create(&results).map_err(|e| file_error(&results, e))?;
    let mut writer = BufWriter::new(file);
    // Outcomes arrive out of order; they are written in order, holding only those that
    // finished ahead of a slower one.
    let mut ahead: BTreeMap<usize, Outcome> = BTreeMap::new();
    let mut to_write = 0;
    on_threads(
        &work,
        jobs,
        |&(scenario, seed)| {
            run_variant(catalog, scenario, seed, &manifest.variant)
                .unwrap_or_else(|e| panic!("{}: {e}", scenario.name))
                .0
        },
        |index, outcome| {
            on_done(&outcome);
            ahead.insert(index, outcome);
            while let Some(outcome) = ahead.remove(&to_write) {
                let line = serde_json::to_string(&outcome).expect("outcomes serialize");
                writeln!(writer, "{line}").map_err(|e| file_error(&results, e))?;
                to_write += 1;
            }
            Ok(())
        },
    )?;
    assert_eq!(to_write, work.len(), "every run's outcome was written");
    writer.flush().map_err(|e| file_error(&results, e))?;
    summarize_into(catalog, manifest, &results, out)
}

/// Runs `work` on every item on `threads` threads; `each` gets each result, with the item's
/// index, on the calling thread as runs finish. An error from `each` stops the workers once
/// their runs in progress end, and is returned.
pub fn on_threads<T: Sync, R: Send, E>(
    items: &[T],
    threads: usize,
    work: impl Fn(&T) -> R + Sync,
    mut each: impl FnMut(usize, R) -> Result<(), E>,
) -> Result<(), E> {
    let next = AtomicUsize::new(0);
    let (done, finished) = mpsc::channel::<(usize, R)>();
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            let (done, next, work) = (done.clone(), &next, &work);
            scope.spawn(move || loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(index) else {
                    break;
                };
                if done.send((index, work(item))).is_err() {
                    break; // `each` failed: stop early.
                }
            });
        }
        drop(done);
        finished
            .into_iter()
            .try_for_each(|(index, result)| each(index, result))
    })
}

/// Merges the results of the shards in `dirs` (each a sweep directory of the same sweep, every
/// shard once) into `out`: the files one unsharded sweep would have written.
pub fn merge(catalog: &Catalog, dirs: &[PathBuf], out: &Path) -> Result<SweepSummary, SweepError> {
    let mut manifests = Vec::new();
    for dir in dirs {
        manifests.push((dir, Manifest::load(catalog, dir)?));
    }
    let whole = whole_sweep(&manifests)?;
    let lines = results_in_order(catalog, &whole, dirs)?;
    std::fs::create_dir_all(out).map_err(|e| file_error(out, e))?;
    whole.save(out)?;
    let results = out.join(RESULTS);
    let text: String = lines.into_iter().map(|l| l + "\n").collect();
    std::fs::write(&results, text).map_err(|e| file_error(&results, e))?;
    summarize_into(catalog, &whole, &results, out)
}

/// The manifest of the whole sweep the shards in `manifests` make up, once each shard is
/// there exactly once and all are of one sweep.
fn whole_sweep(manifests: &[(&PathBuf, Manifest)]) -> Result<Manifest, SweepError> {
    let Some((first_dir, first)) = manifests.first() else {
        return Err(SweepError::Shards("no sweep directory given".into()));
    };
    let count = first.shard.count;
    let mut seen: BTreeMap<u32, &PathBuf> = BTreeMap::new();
    for (dir, manifest) in manifests {
        let same_sweep = Manifest {
            shard: first.shard,
            ..manifest.clone()
        };
        let (shown_first, shown) = (first_dir.display(), dir.display());
        if same_sweep != *first {
            return Err(SweepError::Shards(format!(
                "{shown_first} and {shown} are not shards of one sweep (scenarios, seeds, variant or build differ)"
            )));
        }
        if manifest.shard.count != count {
            return Err(SweepError::Shards(format!(
                "{shown_first} is shard {} but {shown} is shard {}",
                first.shard, manifest.shard
            )));
        }
        if let Some(other) = seen.insert(manifest.shard.index, dir) {
            return Err(SweepError::Shards(format!(
                "{} and {shown} are both shard {}",
                other.display(),
                manifest.shard
            )));
        }
    }
    let missing: Vec<String> = (1..=count)
        .filter(|index| !seen.contains_key(index))
        .map(|index| format!("{index}/{count}"))
        .collect();
    if !missing.is_empty() {
        let missing = missing.join(", ");
        return Err(SweepError::Shards(format!("shard {missing} missing")));
    }
    Ok(Manifest {
        shard: Shard::WHOLE,
        ..first.clone()
    })
}

/// The result lines of the shards in `dirs`, in the whole sweep's order: every run from
/// exactly one shard.
fn results_in_order(
    catalog: &Catalog,
    whole: &Manifest,
    dirs: &[PathBuf],
) -> Result<Vec<String>, SweepError> {
    let position: BTreeMap<(String, u64), usize> = whole
        .work(catalog)
        .iter()
        .enumerate()
        .map(|(i, (scenario, seed))| ((scenario.name.to_string(), *seed), i))
        .collect();
    let mut lines: Vec<Option<String>> = vec![None; position.len()];
    for dir in dirs {
        let path = dir.join(RESULTS);
        for (line, outcome) in read_results(&path)? {
            let key = (outcome.scenario.clone(), outcome.seed);
            let at = *position.get(&key).ok_or_else(|| SweepError::Malformed {
                path: path.display().to_string(),
                error: format!("{} seed {} is not part of the sweep", key.0, key.1),
            })?;
            if lines[at].replace(line).is_some() {
                let (scenario, seed) = key;
                return Err(SweepError::Shards(format!(
                    "{scenario} seed {seed} appears twice"
                )));
            }
        }
    }
    if let Some(at) = lines.iter().position(Option::is_none) {
        let (scenario, seed) = whole.work(catalog)[at];
        return Err(SweepError::Shards(format!(
            "no result for {} seed {seed}: a shard did not finish",
            scenario.name
        )));
    }
    Ok(lines.into_iter().flatten().collect())
}

/// The outcomes in a sweep directory's results, in result order.
pub fn outcomes(dir: &Path) -> Result<Vec<Outcome>, SweepError> {
    let results = read_results(&dir.join(RESULTS))?;
    Ok(results.into_iter().map(|(_, outcome)| outcome).collect())
}

/// Each line of a results file with its outcome.
fn read_results(path: &Path) -> Result<Vec<(String, Outcome)>, SweepError> {
    let file = std::fs::File::open(path).map_err(|e| file_error(path, e))?;
    let mut read = Vec::new();
    for (number, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| file_error(path, e))?;
        let outcome: Outcome = serde_json::from_str(&line).map_err(|e| SweepError::Malformed {
            path: format!("{}:{}", path.display(), number + 1),
            error: format!("not a run outcome: {e}"),
        })?;
        read.push((line, outcome));
    }
    Ok(read)
}

/// Summarizes the results file and writes the sweep report into `out` (report.md,
/// report.html, its charts, and a run report for each of the first failing runs).
fn summarize_into(
    catalog: &Catalog,
    manifest: &Manifest,
    results: &Path,
    out: &Path,
) -> Result<SweepSummary, SweepError> {
    let mut by_scenario: BTreeMap<&str, Vec<Outcome>> = BTreeMap::new();
    for (_, outcome) in read_results(results)? {
        let name = manifest
            .scenarios
            .iter()
            .find(|name| **name == outcome.scenario)
            .ok_or_else(|| SweepError::Malformed {
                path: results.display().to_string(),
                error: format!("scenario {} is not part of the sweep", outcome.scenario),
            })?;
        by_scenario.entry(name).or_default().push(outcome);
    }
    let outcomes = |name: &String| by_scenario.get(name.as_str()).map_or(&[][..], |v| v);
    let failures: Vec<&Outcome> = manifest
        .scenarios
        .iter()
        .flat_map(|name| {
            outcomes(name)
                .iter()
                .filter(|o| o.verdict != Verdict::Passed)
        })
        .collect();
    let reports = write_failure_reports(catalog, &failures, out).map_err(|e| file_error(out, e))?;
    let scenarios: Vec<ScenarioSummary> = manifest
        .scenarios
        .iter()
        .map(|name| summarize(catalog, name, outcomes(name), &reports))
        .collect();
    let title = match manifest.shard {
        Shard::WHOLE => "snapsim sweep".to_string(),
        shard => format!("snapsim sweep, shard {shard}"),
    };
    let report = SweepReport { title, scenarios };
    report.write(out).map_err(|e| file_error(out, e))?;
    Ok(SweepSummary {
        markdown: report.markdown(),
        scenarios: report.scenarios,
        results: results.to_path_buf(),
        report: out.join(REPORT),
        html: out.join(HTML_REPORT),
    })
}

/// Writes the report of an existing sweep directory again (`snapsim report DIR`).
pub fn report(catalog: &Catalog, dir: &Path) -> Result<SweepSummary, SweepError> {
    let manifest = Manifest::load(catalog, dir)?;
    summarize_into(catalog, &manifest, &dir.join(RESULTS), dir)
}

/// The summaries of a sweep directory's results, writing nothing: what `snapsim coverage`
/// reads the probes from.
pub fn summaries(catalog: &Catalog, dir: &Path) -> Result<SweepReport, SweepError> {
    let manifest = Manifest::load(catalog, dir)?;
    let mut by_scenario: BTreeMap<String, Vec<Outcome>> = BTreeMap::new();
    for (_, outcome) in read_results(&dir.join(RESULTS))? {
        by_scenario
            .entry(outcome.scenario.clone())
            .or_default()
            .push(outcome);
    }
    let scenarios = (manifest.scenarios.iter())
        .map(|name| {
            let outcomes = by_scenario.get(name).map_or(&[][..], |v| v);
            summarize(catalog, name, outcomes, &FailureReports::new())
        })
        .collect();
    let title = "snapsim sweep".to_string();
    Ok(SweepReport { title, scenarios })
}

fn median(mut values: Vec<u64>) -> u64 {
    values.sort_unstable();
    values.get(values.len() / 2).copied().unwrap_or(0)
}

/// A failing run as reports show it, with its run report if one was written.
pub(crate) fn failed_run(
    catalog: &Catalog,
    outcome: &Outcome,
    report: Option<String>,
) -> FailedRun {
    FailedRun {
        seed: outcome.seed,
        verdict: format!("{:?}", outcome.verdict),
        first_violation: outcome
            .violations
            .first()
            .map(|v| format!("{}: {}", v.property, v.message))
            .unwrap_or_default(),
        replay: outcome.replay_line(catalog),
        report,
    }
}

/// How many of `outcomes` violated each property (a run counts once per property).
pub(crate) fn violations_by_property<'o>(
    outcomes: impl IntoIterator<Item = &'o Outcome>,
) -> BTreeMap<String, u64> {
    let mut violations: BTreeMap<String, u64> = BTreeMap::new();
    for outcome in outcomes {
        let properties: BTreeSet<String> = outcome
            .violations
            .iter()
            .map(|v| v.property.to_string())
            .collect();
        for property in properties {
            *violations.entry(property).or_default() += 1;
        }
    }
    violations
}

fn summarize(
    catalog: &Catalog,
    scenario: &str,
    outcomes: &[Outcome],
    reports: &FailureReports,
) -> ScenarioSummary {
    let failures = outcomes
        .iter()
        .filter(|o| o.verdict != Verdict::Passed)
        .map(|o| {
            failed_run(
                catalog,
                o,
                reports.get(&(o.scenario.clone(), o.seed)).cloned(),
            )
        })
        .collect();
    let violations = violations_by_property(outcomes);
    let mut probes: BTreeMap<Probe, u64> = BTreeMap::new();
    for probe in outcomes.iter().flat_map(|o| &o.stats.probes) {
        *probes.entry(*probe).or_insert(0) += 1;
    }
    ScenarioSummary {
        scenario: scenario.to_string(),
        seeds: outcomes.len() as u64,
        passed: outcomes
            .iter()
            .filter(|o| o.verdict == Verdict::Passed)
            .count() as u64,
        checkpoints_completed_median: median(
            outcomes
                .iter()
                .map(|o| o.stats.checkpoints_completed)
                .collect(),
        ),
        restarts_median: median(outcomes.iter().map(|o| o.stats.restarts).collect()),
        violations,
        checkpoint_ms: outcomes
            .iter()
            .flat_map(|o| o.stats.checkpoint_ms.iter().copied())
            .collect(),
        recovery_ms: outcomes
            .iter()
            .flat_map(|o| o.stats.recovery_ms.iter().copied())
            .collect(),
        failures,
        probes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_split_the_seeds_evenly_and_bad_shards_are_refused() {
        let shards: Vec<Shard> = (1..=4).map(|k| Shard { index: k, count: 4 }).collect();
        for position in 0..100u64 {
            let owners = shards.iter().filter(|s| s.takes(position)).count();
            assert_eq!(owners, 1, "seed position {position} belongs to one shard");
        }
        assert_eq!("2/4".parse::<Shard>().unwrap(), shards[1]);
        for bad in ["3/2", "0/4", "4", "a/b", "1/0", ""] {
            let error = bad.parse::<Shard>().unwrap_err().to_string();
            assert!(
                error.starts_with(&format!("invalid shard '{bad}'")),
                "{error}"
            );
        }
    }

    #[test]
    fn bad_seed_ranges_are_refused() {
        assert_eq!(parse_seeds("3..7").unwrap(), 3..7);
        for bad in ["7..3", "5..5", "x..2", "10", "-1..4"] {
            assert!(parse_seeds(bad).is_err(), "{bad}");
        }
    }
}
