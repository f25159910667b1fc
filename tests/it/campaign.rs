//! Campaigns: algorithms side by side on the same scenarios, faults and seeds.

use crate::catalog;
use snapsim_scenarios::campaign::{planned_runs, run_campaign, Matrix, Preset};
use std::path::{Path, PathBuf};

fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn names(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| n.to_string()).collect()
}

fn matrix(bugs: &[&str]) -> Matrix {
    let algorithms = names(&["aligned", "unaligned"]);
    let scenarios = names(&["back-pressure"]);
    Matrix::new(
        catalog(),
        &algorithms,
        &scenarios,
        &names(&["none"]),
        0..2,
        &names(bugs),
    )
    .unwrap()
}

fn run(matrix: &Matrix, dir: &Path) -> snapsim_reports::campaign::CampaignReport {
    let mut runs = 0;
    let report = run_campaign(catalog(), Preset::Matrix, matrix, 2, dir, "test", |_| {
        runs += 1
    })
    .unwrap();
    assert_eq!(runs, planned_runs(catalog(), Preset::Matrix, matrix));
    report
}

/// Why: a researcher compares algorithms by the table a campaign writes; each cell must be
/// the runs of its algorithm, and every file the README names must be there.
#[test]
fn a_campaign_tables_each_algorithm_on_the_same_runs_and_writes_every_file() {
    let dir = scratch("campaign");
    let report = run(&matrix(&[]), &dir);
    assert!(report.passed(), "{}", report.markdown());
    let cells = &report.tables[0].cells;
    assert_eq!(cells.len(), 2);
    let (aligned, unaligned) = (&cells[0], &cells[1]);
    assert_eq!((aligned.algorithm.as_str(), aligned.runs), ("aligned", 2));
    // Under back-pressure, only unaligned checkpoints persist channel state, and they do not
    // wait behind the slow sink's backlog.
    assert!(aligned.in_flight_bytes.iter().all(|&b| b == 0));
    assert!(unaligned.in_flight_bytes.iter().any(|&b| b > 0));
    let median = |values: &[u64]| snapsim_reports::percentile(&mut values.to_vec(), 50);
    assert!(median(&unaligned.checkpoint_ms) < median(&aligned.checkpoint_ms));
    for file in [
        "campaign.md",
        "campaign.html",
        "campaign.csv",
        "matrix-checkpoint-p90.svg",
    ] {
        assert!(dir.join(file).exists(), "{file}");
    }
    for cell in ["aligned-none", "unaligned-none"] {
        let results = dir.join("cells").join(cell).join("results.jsonl");
        let lines = std::fs::read_to_string(results).unwrap().lines().count();
        assert_eq!(lines, 2, "{cell}: a sweep of its own, one line per run");
    }
    let csv = std::fs::read_to_string(dir.join("campaign.csv")).unwrap();
    assert_eq!(
        csv.lines().count(),
        3,
        "a header and a line per cell:\n{csv}"
    );
    assert!(csv
        .lines()
        .nth(2)
        .unwrap()
        .starts_with("matrix,unaligned,back-pressure,none,2,0,"));
}

/// Why: a campaign with a seeded bug shows which algorithms' checks catch it; the failing
/// runs must carry replay lines with the bug, and the verdict must fail.
#[test]
fn a_seeded_bug_fails_the_cells_it_breaks_with_replay_lines() {
    let dir = scratch("campaign-bug");
    let report = run(&matrix(&["in-flight-not-persisted"]), &dir);
    assert!(!report.passed());
    let cells = &report.tables[0].cells;
    assert_eq!(
        cells[0].passed, cells[0].runs,
        "aligned snapshots hold no channel state"
    );
    let unaligned = &cells[1];
    assert!(
        unaligned.violations.contains_key("consistent-cut"),
        "{unaligned:?}"
    );
    let failure = &unaligned.failures[0];
    assert!(failure
        .replay
        .contains("--algorithm unaligned --bug in-flight-not-persisted"));
    let report_file = failure.report.as_ref().expect("a run report");
    assert!(
        report_file.starts_with("cells/unaligned-none/"),
        "{report_file}"
    );
    assert!(dir.join(report_file).exists());
}

#[test]
fn bad_names_are_refused_with_what_exists() {
    let refused = |algorithms: &[&str], scenarios: &[&str], faults: &[&str], bugs: &[&str]| {
        let (a, s, f, b) = (
            names(algorithms),
            names(scenarios),
            names(faults),
            names(bugs),
        );
        Matrix::new(catalog(), &a, &s, &f, 0..2, &b)
            .unwrap_err()
            .to_string()
    };
    assert!(refused(&["fast"], &[], &[], &[]).contains("known: aligned, at-least-once"));
    assert!(refused(&[], &["nope"], &[], &[]).contains("unknown scenario 'nope'"));
    assert!(refused(&[], &[], &["meteor"], &[]).contains("unknown fault profile 'meteor'"));
    assert!(refused(&[], &[], &[], &["typo"]).contains("typo"));
    let empty = Matrix::new(catalog(), &[], &[], &[], 3..3, &[])
        .unwrap_err()
        .to_string();
    assert!(empty.contains("empty"), "{empty}");
    let preset = Preset::named("papers").unwrap_err().to_string();
    assert!(preset.contains("known: matrix, paper"), "{preset}");
}
