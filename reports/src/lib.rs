//! snapsim-reports: turns results into reports people read.
//!
//! The one design decision to know: rendering is a pure function from result data to text,
//! with no simulation logic, so reports can be snapshot-tested and re-rendered from files.
//! Today: the Markdown summary of a sweep. The HTML run report with its SVG timeline is the
//! `snapsim` program issue's work.

#![deny(missing_docs)]

use std::fmt::Write;

/// One failing run of a sweep.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailedRun {
    /// The seed.
    pub seed: u64,
    /// The verdict, as text.
    pub verdict: String,
    /// The first violated property and its message.
    pub first_violation: String,
    /// The command that replays it.
    pub replay: String,
}

/// The results of one scenario over many seeds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScenarioSummary {
    /// The scenario.
    pub scenario: String,
    /// Seeds run.
    pub seeds: u64,
    /// Seeds that passed.
    pub passed: u64,
    /// Median checkpoints completed per run.
    pub checkpoints_completed_median: u64,
    /// Median failovers per run.
    pub restarts_median: u64,
    /// The failures, in seed order.
    pub failures: Vec<FailedRun>,
}

/// The Markdown report of a sweep.
pub fn sweep_markdown(title: &str, summaries: &[ScenarioSummary]) -> String {
    let mut text = String::new();
    let failed: u64 = summaries.iter().map(|s| s.seeds - s.passed).sum();
    let seeds: u64 = summaries.iter().map(|s| s.seeds).sum();
    let verdict = if failed == 0 {
        "PASSED".to_string()
    } else {
        format!("FAILED ({failed} of {seeds} runs)")
    };
    writeln!(text, "# {title}\n\nVerdict: **{verdict}**\n").expect("writing to a String");
    writeln!(text, "| scenario | seeds | passed | failed | checkpoints completed (median) | failovers (median) |").expect("writing to a String");
    writeln!(text, "|---|---:|---:|---:|---:|---:|").expect("writing to a String");
    for s in summaries {
        writeln!(
            text,
            "| {} | {} | {} | {} | {} | {} |",
            s.scenario,
            s.seeds,
            s.passed,
            s.seeds - s.passed,
            s.checkpoints_completed_median,
            s.restarts_median
        )
        .expect("writing to a String");
    }
    for s in summaries.iter().filter(|s| !s.failures.is_empty()) {
        writeln!(text, "\n## Failures of {}\n", s.scenario).expect("writing to a String");
        for f in &s.failures {
            writeln!(
                text,
                "- seed {} — {}: {}\n  replay: `{}`",
                f.seed, f.verdict, f.first_violation, f.replay
            )
            .expect("writing to a String");
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_makes_the_verdict_fail_and_lists_the_replay() {
        let summary = ScenarioSummary {
            scenario: "keyed-sum".into(),
            seeds: 2,
            passed: 1,
            checkpoints_completed_median: 9,
            restarts_median: 1,
            failures: vec![FailedRun {
                seed: 1,
                verdict: "Correctness".into(),
                first_violation: "exactly-once: effect of x was committed 2 times".into(),
                replay: "cargo run --release -- run --scenario keyed-sum --seed 1".into(),
            }],
        };
        let text = sweep_markdown("sweep", &[summary]);
        assert!(text.contains("Verdict: **FAILED (1 of 2 runs)**"), "{text}");
        assert!(text.contains("| keyed-sum | 2 | 1 | 1 | 9 | 1 |"), "{text}");
        assert!(
            text.contains("replay: `cargo run --release -- run --scenario keyed-sum --seed 1`"),
            "{text}"
        );
    }
}
