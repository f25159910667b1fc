//! The report of a sweep: seeds run, verdicts by property, failures with their replay lines,
//! and the distributions of checkpoint duration and recovery time.

use crate::charts::histogram_svg;
use crate::{escape, html_table, markdown_table, or_dash, out, percentile, STYLE};
use snapsim_core::probes::Probe;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// One failing run of a sweep.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailedRun {
    pub seed: u64,
    /// The verdict, as text.
    pub verdict: String,
    /// The first violated property and its message.
    pub first_violation: String,
    /// The command that replays it.
    pub replay: String,
    /// Its run report, relative to the sweep report, when one was written.
    pub report: Option<String>,
}

/// The results of one scenario over many seeds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScenarioSummary {
    pub scenario: String,
    /// Seeds run.
    pub seeds: u64,
    /// Seeds that passed.
    pub passed: u64,
    /// Median checkpoints completed per run.
    pub checkpoints_completed_median: u64,
    /// Median failovers per run.
    pub restarts_median: u64,
    /// Runs that violated each property.
    pub violations: BTreeMap<String, u64>,
    /// The duration of every completed checkpoint of every run (ms).
    pub checkpoint_ms: Vec<u64>,
    /// The recovery time of every failover of every run that ran again (ms).
    pub recovery_ms: Vec<u64>,
    /// The failures, in seed order.
    pub failures: Vec<FailedRun>,
    /// Runs that reached each coverage probe.
    pub probes: BTreeMap<Probe, u64>,
}

/// A sweep's report.
#[derive(Clone, Debug)]
pub struct SweepReport {
    pub title: String,
    /// One summary per scenario, in the sweep's order.
    pub scenarios: Vec<ScenarioSummary>,
}

/// The charts a sweep report shows, by file name.
pub const SWEEP_CHARTS: [&str; 2] = ["checkpoint-durations.svg", "recovery-times.svg"];

impl SweepReport {
    /// Whether every run passed.
    pub fn passed(&self) -> bool {
        self.scenarios.iter().all(|s| s.passed == s.seeds)
    }

    fn verdict(&self) -> String {
        let failed: u64 = self.scenarios.iter().map(|s| s.seeds - s.passed).sum();
        let runs: u64 = self.scenarios.iter().map(|s| s.seeds).sum();
        if failed == 0 {
            format!("PASSED ({runs} runs)")
        } else {
            format!("FAILED ({failed} of {runs} runs)")
        }
    }

    fn rows(&self) -> Vec<Vec<String>> {
        self.scenarios
            .iter()
            .map(|s| {
                let (mut checkpoints, mut recoveries) =
                    (s.checkpoint_ms.clone(), s.recovery_ms.clone());
                vec![
                    s.scenario.clone(),
                    s.seeds.to_string(),
                    s.passed.to_string(),
                    (s.seeds - s.passed).to_string(),
                    s.checkpoints_completed_median.to_string(),
                    s.restarts_median.to_string(),
                    or_dash(percentile(&mut checkpoints, 50)),
                    or_dash(percentile(&mut checkpoints, 99)),
                    or_dash(percentile(&mut recoveries, 50)),
                    or_dash(percentile(&mut recoveries, 99)),
                ]
            })
            .collect()
    }

    /// The table of runs violating each property (a row per property, a column per
    /// scenario), when some run violated one.
    fn by_property(&self) -> Option<(Vec<&str>, Vec<Vec<String>>)> {
        let properties: BTreeSet<&String> = self
            .scenarios
            .iter()
            .flat_map(|s| s.violations.keys())
            .collect();
        if properties.is_empty() {
            return None;
        }
        let headers = std::iter::once("property")
            .chain(self.scenarios.iter().map(|s| s.scenario.as_str()))
            .collect();
        let rows = (properties.into_iter())
            .map(|property| {
                let counts = self
                    .scenarios
                    .iter()
                    .map(|s| s.violations.get(property).copied().unwrap_or(0));
                std::iter::once(property.clone())
                    .chain(counts.map(|n| n.to_string()))
                    .collect()
            })
            .collect();
        Some((headers, rows))
    }

    /// Every coverage probe with the runs per scenario that reached it, and the names of
    /// those no run reached.
    pub fn coverage(&self) -> (Vec<&str>, Vec<Vec<String>>, Vec<String>) {
        let headers = std::iter::once("probe")
            .chain(self.scenarios.iter().map(|s| s.scenario.as_str()))
            .collect();
        let mut unreached = Vec::new();
        let rows = (Probe::ALL.into_iter())
            .map(|probe| {
                let runs: Vec<u64> = (self.scenarios.iter())
                    .map(|s| s.probes.get(&probe).copied().unwrap_or(0))
                    .collect();
                if runs.iter().all(|&n| n == 0) {
                    unreached.push(probe.name());
                }
                std::iter::once(probe.name())
                    .chain(runs.iter().map(u64::to_string))
                    .collect()
            })
            .collect();
        (headers, rows, unreached)
    }

    /// One line: how many probes were reached, and which never were.
    pub fn coverage_line(&self, unreached: &[String]) -> String {
        let total = Probe::ALL.len();
        let reached = total - unreached.len();
        if unreached.is_empty() {
            format!("All {total} coverage probes were reached.")
        } else {
            format!(
                "{reached} of {total} coverage probes were reached; never: {}.",
                unreached.join(", ")
            )
        }
    }

    fn all(&self, values: impl Fn(&ScenarioSummary) -> &[u64]) -> Vec<u64> {
        self.scenarios
            .iter()
            .flat_map(|s| values(s).iter().copied())
            .collect()
    }

    fn charts(&self) -> [String; 2] {
        [
            histogram_svg(
                "Checkpoint duration, trigger to completion",
                &self.all(|s| &s.checkpoint_ms),
            ),
            histogram_svg(
                "Recovery time, failover to running again",
                &self.all(|s| &s.recovery_ms),
            ),
        ]
    }

    /// The Markdown report; it shows [`SWEEP_CHARTS`] from its directory.
    pub fn markdown(&self) -> String {
        let mut text = String::new();
        let w = &mut text;
        out!(w, "# {}\n\nVerdict: **{}**\n", self.title, self.verdict());
        out!(w, "{}", markdown_table(&HEADERS, &self.rows()));
        if let Some((headers, rows)) = self.by_property() {
            out!(w, "\n## Runs violating each property\n");
            out!(w, "{}", markdown_table(&headers, &rows));
        }
        out!(w, "\n## Distributions\n");
        for chart in SWEEP_CHARTS {
            out!(w, "![{chart}]({chart})");
        }
        let (headers, rows, unreached) = self.coverage();
        out!(
            w,
            "\n## Coverage probes\n\n{}\n",
            self.coverage_line(&unreached)
        );
        out!(w, "Runs that reached each of the engine's probes (`snapsim coverage DIR` lists them too):\n");
        out!(w, "{}", markdown_table(&headers, &rows));
        for s in self.scenarios.iter().filter(|s| !s.failures.is_empty()) {
            out!(w, "\n## Failures of {}\n", s.scenario);
            for f in &s.failures {
                out!(
                    w,
                    "- seed {} — {}: {}\n  replay: `{}`",
                    f.seed,
                    f.verdict,
                    f.first_violation,
                    f.replay
                );
                if let Some(report) = &f.report {
                    out!(w, "  report: [{report}]({report})");
                }
            }
        }
        text
    }

    /// The HTML report: one file, the charts inline.
    pub fn html(&self) -> String {
        let mut page = String::new();
        let w = &mut page;
        let status = if self.passed() { "passed" } else { "failed" };
        out!(w, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{}</style></head><body>", escape(&self.title), STYLE);
        out!(
            w,
            "<h1>{}</h1><p class=\"verdict {status}\">Verdict: {}</p>",
            escape(&self.title),
            escape(&self.verdict())
        );
        out!(w, "{}", html_table(&HEADERS, &self.rows()));
        if let Some((headers, rows)) = self.by_property() {
            let table = html_table(&headers, &rows);
            out!(w, "<h2>Runs violating each property</h2>{table}");
        }
        let [checkpoints, recoveries] = self.charts();
        out!(
            w,
            "<h2>Distributions</h2><div class=\"chart\">{checkpoints}{recoveries}</div>"
        );
        let (headers, rows, unreached) = self.coverage();
        let line = escape(&self.coverage_line(&unreached));
        let table = html_table(&headers, &rows);
        out!(w, "<h2>Coverage probes</h2><p>{line}</p>{table}");
        for s in self.scenarios.iter().filter(|s| !s.failures.is_empty()) {
            out!(w, "<h2>Failures of {}</h2><ul>", escape(&s.scenario));
            for f in &s.failures {
                let link = f.report.as_ref().map_or(String::new(), |r| {
                    format!(" — <a href=\"{}\">report</a>", escape(r))
                });
                out!(
                    w,
                    "<li>seed {} — {}: {}{link}<br><code>{}</code></li>",
                    f.seed,
                    escape(&f.verdict),
                    escape(&f.first_violation),
                    escape(&f.replay)
                );
            }
            out!(w, "</ul>");
        }
        out!(w, "</body></html>");
        page
    }

    /// Writes `report.md`, `report.html` and [`SWEEP_CHARTS`] into `dir`.
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::write(dir.join("report.md"), self.markdown())?;
        std::fs::write(dir.join("report.html"), self.html())?;
        for (name, svg) in SWEEP_CHARTS.iter().zip(self.charts()) {
            std::fs::write(dir.join(name), svg)?;
        }
        Ok(())
    }
}

const HEADERS: [&str; 10] = [
    "scenario",
    "seeds",
    "passed",
    "failed",
    "checkpoints completed (median)",
    "failovers (median)",
    "checkpoint ms p50",
    "checkpoint ms p99",
    "recovery ms p50",
    "recovery ms p99",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> SweepReport {
        let failing = ScenarioSummary {
            scenario: "keyed-sum".into(),
            seeds: 4,
            passed: 3,
            checkpoints_completed_median: 9,
            restarts_median: 1,
            violations: BTreeMap::from([("exactly-once".to_string(), 1)]),
            checkpoint_ms: vec![12, 15, 15, 40, 41, 90],
            recovery_ms: vec![180, 230],
            failures: vec![FailedRun {
                seed: 1,
                verdict: "Correctness".into(),
                first_violation: "exactly-once: effect of <k3, 7> was committed 2 times".into(),
                replay: "cargo run --release -- run --scenario keyed-sum --seed 1".into(),
                report: Some("runs/keyed-sum-1/report.html".into()),
            }],
            probes: BTreeMap::from([(Probe::AbortExpired, 2)]),
        };
        let passing = ScenarioSummary {
            scenario: "keyed-sum-calm".into(),
            seeds: 4,
            passed: 4,
            checkpoints_completed_median: 8,
            checkpoint_ms: vec![10, 11],
            ..ScenarioSummary::default()
        };
        SweepReport {
            title: "snapsim sweep".into(),
            scenarios: vec![failing, passing],
        }
    }

    /// Why: the Markdown sweep report is what CI logs and users read first; its shape must not
    /// drift unnoticed (review changes with `cargo insta review`).
    #[test]
    fn the_markdown_of_a_sweep_with_a_failure() {
        insta::assert_snapshot!(report().markdown());
    }

    #[test]
    fn the_coverage_lists_every_probe_and_those_no_run_reached() {
        let report = report();
        let (headers, rows, unreached) = report.coverage();
        assert_eq!(headers, ["probe", "keyed-sum", "keyed-sum-calm"]);
        assert_eq!(rows.len(), Probe::ALL.len());
        assert_eq!(rows[0], ["abort-expired", "2", "0"]);
        assert_eq!(unreached.len(), Probe::ALL.len() - 1);
        assert!(!unreached.contains(&"abort-expired".to_string()));
        assert!(report
            .markdown()
            .contains("1 of 41 coverage probes were reached; never: abort-declined,"));
    }

    #[test]
    fn the_html_escapes_messages_and_links_the_failing_run() {
        let html = report().html();
        assert!(html.contains("effect of &lt;k3, 7&gt;"), "escaped");
        assert!(html.contains("<a href=\"runs/keyed-sum-1/report.html\">report</a>"));
        assert!(html.contains("FAILED (1 of 8 runs)"));
        assert_eq!(html.matches("<svg").count(), 2, "two histograms inline");
    }
}
