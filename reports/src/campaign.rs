//! The report of a research campaign: snapshot algorithms compared on the same scenarios,
//! faults and seeds (tables of figures, as Markdown, CSV and HTML with bar charts), and the
//! experiments of the literature with the expected result beside the measured one.

use crate::charts::grouped_bars_svg;
use crate::sweep::FailedRun;
use crate::{
    escape, html_table, markdown_table, markdown_text_table, or_dash, out, percentile, STYLE,
};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The runs of one algorithm on one scenario under one fault profile.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CellSummary {
    /// The snapshot algorithm.
    pub algorithm: String,
    /// The scenario (or the experiment's job).
    pub scenario: String,
    /// The fault profile.
    pub faults: String,
    /// Runs (one per seed).
    pub runs: u64,
    /// Runs in which every property held.
    pub passed: u64,
    /// Runs that violated each property, by property name.
    pub violations: BTreeMap<String, u64>,
    /// Every completed checkpoint's duration, trigger to completion (ms).
    pub checkpoint_ms: Vec<u64>,
    /// Every completed checkpoint's longest barrier alignment at a task (ms).
    pub alignment_ms: Vec<u64>,
    /// Every completed checkpoint's files written since its trigger (bytes; on files only).
    pub uploaded_bytes: Vec<u64>,
    /// Every completed checkpoint's files, all of them (bytes; on files only).
    pub full_bytes: Vec<u64>,
    /// Every completed checkpoint's channel state, in-flight records (bytes).
    pub in_flight_bytes: Vec<u64>,
    /// Each run's records replayed after its failovers.
    pub replayed_records: Vec<u64>,
    /// Every failover's recovery time (ms).
    pub recovery_ms: Vec<u64>,
    /// Each run's snapshots per completed checkpoint (one per task with barriers; local
    /// snapshots per completed line without).
    pub snapshots_per_checkpoint: Vec<u64>,
    /// Each run's control messages per completed checkpoint (barriers delivered and
    /// acknowledgements; local snapshots reported).
    pub messages_per_checkpoint: Vec<u64>,
    /// Each run's forced snapshots (communication-induced).
    pub forced_snapshots: Vec<u64>,
    /// Every completed recovery line's sender logs (bytes).
    pub log_bytes: Vec<u64>,
    /// Every completed recovery line's snapshots rolled past.
    pub rolled_back: Vec<u64>,
    /// Every committed transaction's pre-commit to commit (ms).
    pub commit_delay_ms: Vec<u64>,
    /// Each run's virtual time until every task had processed all its input (ms).
    pub input_done_ms: Vec<u64>,
    /// Every failover's time back to the restored snapshot (ms).
    pub work_lost_ms: Vec<u64>,
    /// Effects committed more than once, all runs (at-least-once; 0 otherwise).
    pub duplicates: u64,
    /// The failing runs, in seed order.
    pub failures: Vec<FailedRun>,
}

impl CellSummary {
    /// Its label in charts: the scenario, with the fault profile unless `faults_alike`.
    fn label(&self, faults_alike: bool) -> String {
        if faults_alike {
            self.scenario.clone()
        } else {
            format!("{} / {}", self.scenario, self.faults)
        }
    }
}

/// A table of cells: the algorithms side by side on scenarios and fault profiles.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CellTable {
    /// Its heading.
    pub title: String,
    /// What it shows and how it was run, one paragraph.
    pub about: String,
    /// File-name stem of its charts and CSV (letters, digits and dashes).
    pub slug: String,
    /// The cells, grouped by scenario and faults, algorithms in order within each group.
    pub cells: Vec<CellSummary>,
    /// Which figures it shows.
    pub figures: Figures,
}

/// How a measured result compares with the literature's expectation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Agreement {
    /// The expectation holds.
    Agrees,
    /// The engine differs from Flink here on purpose; why, and where it is documented.
    DiffersAsDocumented(String),
    /// Neither the expectation nor the engine's documented behaviour holds: a finding to
    /// look into (the campaign fails).
    Unexpected,
}

/// One experiment of the literature (a claim of Flink's docs, source or blog), run and measured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Experiment {
    /// What was run.
    pub experiment: String,
    /// The expected result, and where the expectation comes from.
    pub expected: String,
    /// What was measured.
    pub measured: String,
    /// How the two compare.
    pub agreement: Agreement,
}

/// A campaign's report.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CampaignReport {
    pub title: String,
    /// The command that makes it again.
    pub command: String,
    /// The experiments of the literature (the paper preset), in order.
    pub experiments: Vec<Experiment>,
    /// The tables of cells.
    pub tables: Vec<CellTable>,
}

/// A column of a cell table: its name in the CSV and Markdown, the group it stands under on the
/// page with its short name there (no group: it spans both header rows), and its value.
struct Column {
    header: &'static str,
    group: &'static str,
    short: &'static str,
    value: fn(&CellSummary) -> String,
}

/// The percentile `rank` of `values`, or a dash.
fn p(values: &[u64], rank: u64) -> String {
    or_dash(percentile(&mut values.to_vec(), rank))
}

/// A column without a group.
const fn named(header: &'static str, value: fn(&CellSummary) -> String) -> Column {
    Column {
        header,
        group: "",
        short: header,
        value,
    }
}

/// A column under `group`, shown as `short`.
const fn under(
    group: &'static str,
    short: &'static str,
    header: &'static str,
    value: fn(&CellSummary) -> String,
) -> Column {
    Column {
        header,
        group,
        short,
        value,
    }
}

/// The cell's names and run counts, first in every table.
const NAMES: [Column; 5] = [
    named("algorithm", |c| c.algorithm.clone()),
    named("scenario", |c| c.scenario.clone()),
    named("faults", |c| c.faults.clone()),
    named("runs", |c| c.runs.to_string()),
    named("failed", |c| (c.runs - c.passed).to_string()),
];

/// Completed checkpoints (or recovery lines).
const COMPLETED: Column = named("checkpoints", |c| c.checkpoint_ms.len().to_string());
const DURATION_P50: Column = under(
    "checkpoint duration (ms)",
    "p50",
    "checkpoint ms p50",
    |c| p(&c.checkpoint_ms, 50),
);
const DURATION_P99: Column = under(
    "checkpoint duration (ms)",
    "p99",
    "checkpoint ms p99",
    |c| p(&c.checkpoint_ms, 99),
);

/// The columns of a table of [`Figures::Checkpoints`] after the names.
const CHECKPOINT_COLUMNS: [Column; 13] = [
    COMPLETED,
    DURATION_P50,
    under(
        "checkpoint duration (ms)",
        "p90",
        "checkpoint ms p90",
        |c| p(&c.checkpoint_ms, 90),
    ),
    DURATION_P99,
    under("longest alignment (ms)", "p50", "alignment ms p50", |c| {
        p(&c.alignment_ms, 50)
    }),
    under("longest alignment (ms)", "p99", "alignment ms p99", |c| {
        p(&c.alignment_ms, 99)
    }),
    under(
        "checkpoint files (bytes)",
        "uploaded p50",
        "uploaded bytes p50",
        |c| p(&c.uploaded_bytes, 50),
    ),
    under(
        "checkpoint files (bytes)",
        "full p50",
        "full bytes p50",
        |c| p(&c.full_bytes, 50),
    ),
    under(
        "channel state (bytes)",
        "p50",
        "channel-state bytes p50",
        |c| p(&c.in_flight_bytes, 50),
    ),
    under(
        "channel state (bytes)",
        "p99",
        "channel-state bytes p99",
        |c| p(&c.in_flight_bytes, 99),
    ),
    under(
        "records replayed per run",
        "p50",
        "replayed records per run p50",
        |c| p(&c.replayed_records, 50),
    ),
    under("recovery (ms)", "p50", "recovery ms p50", |c| {
        p(&c.recovery_ms, 50)
    }),
    under("recovery (ms)", "p99", "recovery ms p99", |c| {
        p(&c.recovery_ms, 99)
    }),
];

/// The columns of a table of [`Figures::Protocols`] after the names.
const PROTOCOL_COLUMNS: [Column; 16] = [
    COMPLETED,
    DURATION_P50,
    DURATION_P99,
    under(
        "per checkpoint, per run",
        "snapshots p50",
        "snapshots per checkpoint p50",
        |c| p(&c.snapshots_per_checkpoint, 50),
    ),
    under(
        "per checkpoint, per run",
        "messages p50",
        "control messages per checkpoint p50",
        |c| p(&c.messages_per_checkpoint, 50),
    ),
    under(
        "forced snapshots per run",
        "p50",
        "forced snapshots per run p50",
        |c| p(&c.forced_snapshots, 50),
    ),
    under(
        "per checkpoint (bytes)",
        "files p50",
        "full bytes p50",
        |c| p(&c.full_bytes, 50),
    ),
    under(
        "per checkpoint (bytes)",
        "sender logs p50",
        "log bytes per checkpoint p50",
        |c| p(&c.log_bytes, 50),
    ),
    under(
        "snapshots rolled past",
        "p50",
        "rolled back per line p50",
        |c| p(&c.rolled_back, 50),
    ),
    under(
        "snapshots rolled past",
        "p99",
        "rolled back per line p99",
        |c| p(&c.rolled_back, 99),
    ),
    under("commit delay (ms)", "p50", "commit delay ms p50", |c| {
        p(&c.commit_delay_ms, 50)
    }),
    under("commit delay (ms)", "p99", "commit delay ms p99", |c| {
        p(&c.commit_delay_ms, 99)
    }),
    under(
        "all input processed (ms)",
        "p50",
        "input processed ms p50",
        |c| p(&c.input_done_ms, 50),
    ),
    under(
        "at a failover",
        "replayed p50",
        "replayed records per run p50",
        |c| p(&c.replayed_records, 50),
    ),
    under("at a failover", "work lost p50", "work lost ms p50", |c| {
        p(&c.work_lost_ms, 50)
    }),
    under("at a failover", "recovery p50", "recovery ms p50", |c| {
        p(&c.recovery_ms, 50)
    }),
];

/// Which figures a cell table shows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Figures {
    /// Checkpoint duration, alignment, files, channel state, records replayed and recovery.
    #[default]
    Checkpoints,
    /// What the CheckMate study compares protocols by: snapshots, control messages and bytes
    /// per checkpoint, forced snapshots, sender logs, the domino effect, commit delay, the time
    /// to process all input, and what a failover costs.
    Protocols,
}

impl Figures {
    fn columns(self) -> Vec<&'static Column> {
        let figures: &'static [Column] = match self {
            Figures::Checkpoints => &CHECKPOINT_COLUMNS,
            Figures::Protocols => &PROTOCOL_COLUMNS,
        };
        NAMES.iter().chain(figures).collect()
    }

    fn charts(self) -> &'static [Figure] {
        match self {
            Figures::Checkpoints => &FIGURES,
            Figures::Protocols => &PROTOCOL_FIGURES,
        }
    }
}

/// A cell table as the page shows it (see [`CellTable::shown`]).
struct Shown {
    /// The indices of the table's columns shown.
    columns: Vec<usize>,
    /// The rows, with only those columns.
    rows: Vec<Vec<String>>,
}

/// A figure of a chart: its title, unit and value per cell.
struct Figure {
    title: &'static str,
    unit: &'static str,
    stem: &'static str,
    value: fn(&CellSummary) -> Option<u64>,
}

const FIGURES: [Figure; 5] = [
    Figure {
        title: "Checkpoint duration p90, trigger to completion",
        unit: "ms",
        stem: "checkpoint-p90",
        value: |c| percentile(&mut c.checkpoint_ms.clone(), 90),
    },
    Figure {
        title: "Longest barrier alignment per checkpoint, p99",
        unit: "ms",
        stem: "alignment-p99",
        value: |c| percentile(&mut c.alignment_ms.clone(), 99),
    },
    Figure {
        title: "Channel state persisted per checkpoint, p50",
        unit: "bytes",
        stem: "channel-state-p50",
        value: |c| percentile(&mut c.in_flight_bytes.clone(), 50),
    },
    Figure {
        title: "Records replayed after recovery, per run, p50",
        unit: "records",
        stem: "replayed-p50",
        value: |c| percentile(&mut c.replayed_records.clone(), 50),
    },
    Figure {
        title: "Recovery time p50, failover to running again",
        unit: "ms",
        stem: "recovery-p50",
        value: |c| percentile(&mut c.recovery_ms.clone(), 50),
    },
];

const PROTOCOL_FIGURES: [Figure; 6] = [
    Figure {
        title: "Snapshots per completed checkpoint, per run, p50",
        unit: "snapshots",
        stem: "snapshots-p50",
        value: |c| percentile(&mut c.snapshots_per_checkpoint.clone(), 50),
    },
    Figure {
        title: "Sender logs held by a recovery line, p50",
        unit: "bytes",
        stem: "log-bytes-p50",
        value: |c| percentile(&mut c.log_bytes.clone(), 50),
    },
    Figure {
        title: "Local snapshots a recovery line rolled past, p99 (the domino effect)",
        unit: "snapshots",
        stem: "rolled-back-p99",
        value: |c| percentile(&mut c.rolled_back.clone(), 99),
    },
    Figure {
        title: "Commit delay p50, pre-commit to commit",
        unit: "ms",
        stem: "commit-delay-p50",
        value: |c| percentile(&mut c.commit_delay_ms.clone(), 50),
    },
    Figure {
        title: "Work lost at a failover p50, back to the restored snapshot",
        unit: "ms",
        stem: "work-lost-p50",
        value: |c| percentile(&mut c.work_lost_ms.clone(), 50),
    },
    Figure {
        title: "Records replayed after recovery, per run, p50",
        unit: "records",
        stem: "replayed-p50",
        value: |c| percentile(&mut c.replayed_records.clone(), 50),
    },
];

impl CellTable {
    /// The table as the page shows it: the columns that hold a value in some row (a table of
    /// runs without a failover has no recovery time, say), and the rows with only those.
    fn shown(&self) -> Shown {
        let rows = self.rows();
        let count = self.figures.columns().len();
        let columns: Vec<usize> = (0..count)
            .filter(|&column| rows.iter().any(|row| row[column] != "–"))
            .collect();
        let rows = (rows.into_iter())
            .map(|row| columns.iter().map(|&c| row[c].clone()).collect())
            .collect();
        Shown { columns, rows }
    }

    /// The names of the table's columns at `indices`.
    fn headers(&self, indices: &[usize]) -> Vec<&'static str> {
        let columns = self.figures.columns();
        indices.iter().map(|&c| columns[c].header).collect()
    }

    /// The figures each chart draws, of those with a value above zero in some cell.
    fn drawn_figures(&self) -> Vec<&'static Figure> {
        (self.figures.charts().iter())
            .filter(|figure| {
                self.cells
                    .iter()
                    .any(|c| (figure.value)(c).unwrap_or(0) > 0)
            })
            .collect()
    }

    /// The figures no chart draws: every cell's value is zero or none.
    fn undrawn_figures(&self) -> Vec<&'static str> {
        let drawn = self.drawn_figures();
        (self.figures.charts().iter())
            .filter(|figure| !drawn.iter().any(|d| d.stem == figure.stem))
            .map(|figure| figure.title)
            .collect()
    }

    /// What the page says of the columns (those not in `shown`) and charts it leaves out, if
    /// any.
    fn left_out(&self, shown: &[usize]) -> Option<String> {
        let hidden: Vec<usize> = (0..self.figures.columns().len())
            .filter(|c| !shown.contains(c))
            .collect();
        let empty = self.headers(&hidden);
        let undrawn = self.undrawn_figures();
        let mut parts = Vec::new();
        if !empty.is_empty() {
            parts.push(format!(
                "columns without a value in any row: {}",
                empty.join(", ")
            ));
        }
        if !undrawn.is_empty() {
            parts.push(format!(
                "charts whose every value is zero or none: {}",
                undrawn.join("; ")
            ));
        }
        (!parts.is_empty()).then(|| {
            format!(
                "Left out: {} (the CSV has every column).",
                parts.join("; and ")
            )
        })
    }

    /// The table in HTML as `shown`: a header row of column groups (checkpoint duration,
    /// alignment, …) over their percentiles.
    fn html(&self, shown: &Shown) -> String {
        let columns = self.figures.columns();
        let mut groups = String::new();
        let mut names = String::new();
        let mut at = 0;
        while at < shown.columns.len() {
            let group = columns[shown.columns[at]].group;
            let span = (shown.columns[at..].iter())
                .take_while(|&&c| columns[c].group == group)
                .count();
            let run = &shown.columns[at..at + span];
            at += span;
            if group.is_empty() {
                for &column in run {
                    out!(
                        groups,
                        "<th rowspan=\"2\">{}</th>",
                        escape(columns[column].header)
                    );
                }
                continue;
            }
            out!(groups, "<th colspan=\"{span}\">{}</th>", escape(group));
            for &column in run {
                out!(names, "<th>{}</th>", escape(columns[column].short));
            }
        }
        let mut html = format!("<table class=\"cells\"><tr>{groups}</tr><tr>{names}</tr>");
        for row in &shown.rows {
            let cells: String = row
                .iter()
                .map(|cell| format!("<td>{}</td>", escape(cell)))
                .collect();
            out!(html, "<tr>{cells}</tr>");
        }
        html + "</table>"
    }

    fn rows(&self) -> Vec<Vec<String>> {
        let columns = self.figures.columns();
        (self.cells.iter())
            .map(|cell| columns.iter().map(|column| (column.value)(cell)).collect())
            .collect()
    }

    /// Runs violating each property, a row per cell that had a violation, a column per
    /// property that occurred; `None` when every run passed.
    fn by_property(&self) -> Option<(Vec<String>, Vec<Vec<String>>)> {
        let properties: BTreeSet<&String> = self
            .cells
            .iter()
            .flat_map(|c| c.violations.keys())
            .collect();
        if properties.is_empty() {
            return None;
        }
        let headers = ["algorithm", "scenario", "faults"]
            .into_iter()
            .map(String::from)
            .chain(properties.iter().map(|p| p.to_string()))
            .collect();
        let rows = self
            .cells
            .iter()
            .filter(|c| !c.violations.is_empty())
            .map(|c| {
                [c.algorithm.clone(), c.scenario.clone(), c.faults.clone()]
                    .into_iter()
                    .chain(
                        properties
                            .iter()
                            .map(|p| c.violations.get(*p).copied().unwrap_or(0).to_string()),
                    )
                    .collect()
            })
            .collect();
        Some((headers, rows))
    }

    /// The file name of each chart of [`charts`](CellTable::charts), without drawing them.
    fn chart_names(&self) -> Vec<String> {
        (self.drawn_figures().iter())
            .map(|figure| format!("{}-{}.svg", self.slug, figure.stem))
            .collect()
    }

    /// The file name of its CSV.
    fn csv_name(&self) -> String {
        format!("{}.csv", self.slug)
    }

    /// One chart per figure: a group of bars per scenario (and faults), a bar per algorithm.
    fn charts(&self) -> Vec<(String, String)> {
        let faults_alike = self.cells.windows(2).all(|w| w[0].faults == w[1].faults);
        let mut groups: Vec<String> = Vec::new();
        let mut algorithms: Vec<String> = Vec::new();
        for cell in &self.cells {
            let label = cell.label(faults_alike);
            if !groups.contains(&label) {
                groups.push(label);
            }
            if !algorithms.contains(&cell.algorithm) {
                algorithms.push(cell.algorithm.clone());
            }
        }
        (self.drawn_figures().into_iter())
            .zip(self.chart_names())
            .map(|(figure, name)| {
                let series: Vec<(String, Vec<Option<u64>>)> = algorithms
                    .iter()
                    .map(|algorithm| {
                        let values = groups
                            .iter()
                            .map(|group| {
                                self.cells
                                    .iter()
                                    .find(|c| {
                                        &c.algorithm == algorithm && &c.label(faults_alike) == group
                                    })
                                    .and_then(figure.value)
                            })
                            .collect();
                        (algorithm.clone(), values)
                    })
                    .collect();
                let svg = grouped_bars_svg(figure.title, figure.unit, &groups, &series);
                (name, svg)
            })
            .collect()
    }

    /// The table as CSV: a header line, then a line per cell with every figure and the runs
    /// violating each property (one column per property in `properties`).
    fn csv(&self, properties: &[&str]) -> String {
        let mut text = (self.figures.columns().iter())
            .map(|column| column.header)
            .chain(["duplicates"])
            .map(|h| h.to_string())
            .chain(properties.iter().map(|p| format!("violated {p}")))
            .collect::<Vec<_>>()
            .join(",");
        text.push('\n');
        for (cell, row) in self.cells.iter().zip(self.rows()) {
            let figures = row
                .into_iter()
                .map(|value| if value == "–" { String::new() } else { value });
            let violations = properties
                .iter()
                .map(|p| cell.violations.get(*p).copied().unwrap_or(0).to_string());
            let line: Vec<String> = figures
                .chain(std::iter::once(cell.duplicates.to_string()))
                .chain(violations)
                .collect();
            out!(text, "{}", line.join(","));
        }
        text
    }
}

impl Agreement {
    fn label(&self) -> &'static str {
        match self {
            Agreement::Agrees => "agrees",
            Agreement::DiffersAsDocumented(_) => "differs (documented)",
            Agreement::Unexpected => "UNEXPECTED",
        }
    }
}

impl CampaignReport {
    /// No run violated a property and no experiment gave an unexpected result.
    pub fn passed(&self) -> bool {
        let runs_passed = self
            .tables
            .iter()
            .flat_map(|t| &t.cells)
            .all(|c| c.passed == c.runs);
        runs_passed
            && self
                .experiments
                .iter()
                .all(|e| e.agreement != Agreement::Unexpected)
    }

    /// The one-line verdict.
    pub fn verdict(&self) -> String {
        let cells = self.tables.iter().flat_map(|t| &t.cells);
        let (runs, failed) = cells.fold((0, 0), |(runs, failed), c| {
            (runs + c.runs, failed + c.runs - c.passed)
        });
        let mut verdict = if failed == 0 {
            format!("PASSED: every property held in {runs} runs")
        } else {
            format!("FAILED: {failed} of {runs} runs violated a property")
        };
        if !self.experiments.is_empty() {
            let count = |wanted: fn(&Agreement) -> bool| {
                self.experiments
                    .iter()
                    .filter(|e| wanted(&e.agreement))
                    .count()
            };
            verdict += &format!(
                "; experiments: {} agree, {} differ as documented, {} unexpected",
                count(|a| *a == Agreement::Agrees),
                count(|a| matches!(a, Agreement::DiffersAsDocumented(_))),
                count(|a| *a == Agreement::Unexpected),
            );
        }
        verdict
    }

    fn experiment_rows(&self) -> Vec<Vec<String>> {
        self.experiments
            .iter()
            .map(|e| {
                vec![
                    e.experiment.clone(),
                    e.expected.clone(),
                    e.measured.clone(),
                    e.agreement.label().to_string(),
                ]
            })
            .collect()
    }

    fn differences(&self) -> Vec<(&str, &str)> {
        self.experiments
            .iter()
            .filter_map(|e| match &e.agreement {
                Agreement::DiffersAsDocumented(why) => Some((e.experiment.as_str(), why.as_str())),
                _ => None,
            })
            .collect()
    }

    /// Every property violated in some cell, in name order (the CSV's columns).
    fn properties(&self) -> Vec<&str> {
        let names: BTreeSet<&str> = self
            .tables
            .iter()
            .flat_map(|t| &t.cells)
            .flat_map(|c| c.violations.keys().map(String::as_str))
            .collect();
        names.into_iter().collect()
    }

    /// The Markdown report; it shows each table's charts from its directory.
    pub fn markdown(&self) -> String {
        let mut text = String::new();
        let w = &mut text;
        out!(w, "# {}\n\nVerdict: **{}**\n", self.title, self.verdict());
        out!(w, "Made by `{}`.\n", self.command);
        if !self.experiments.is_empty() {
            out!(w, "## Experiments of the literature\n");
            out!(
                w,
                "{}",
                markdown_text_table(&EXPERIMENT_HEADERS, &self.experiment_rows())
            );
            out!(w, "\nCSV: [experiments.csv](experiments.csv).\n");
            for (experiment, why) in self.differences() {
                out!(w, "- **{experiment}** differs: {why}");
            }
            out!(w);
        }
        for table in &self.tables {
            out!(w, "## {}\n\n{}\n", table.title, table.about);
            let shown = table.shown();
            let headers = table.headers(&shown.columns);
            out!(w, "{}", markdown_table(&headers, &shown.rows));
            out!(w, "\nCSV: [{0}]({0}).", table.csv_name());
            if let Some(left_out) = table.left_out(&shown.columns) {
                out!(w, "{left_out}");
            }
            match table.by_property() {
                Some((headers, rows)) => {
                    let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
                    out!(w, "\nRuns violating each property:\n");
                    out!(w, "{}", markdown_table(&headers, &rows));
                }
                None => out!(w, "\nNo run violated a property."),
            }
            for cell in table.cells.iter().filter(|c| !c.failures.is_empty()) {
                for f in &cell.failures {
                    out!(
                        w,
                        "- {} / {} / {} seed {} — {}: {}\n  replay: `{}`",
                        cell.algorithm,
                        cell.scenario,
                        cell.faults,
                        f.seed,
                        f.verdict,
                        f.first_violation,
                        f.replay
                    );
                }
            }
            out!(w);
            for name in table.chart_names() {
                out!(w, "![{name}]({name})");
            }
            out!(w);
        }
        text
    }

    /// The HTML report: one file, the charts inline.
    pub fn html(&self) -> String {
        let mut page = String::new();
        let w = &mut page;
        let status = if self.passed() { "passed" } else { "failed" };
        out!(w, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{}{CAMPAIGN_STYLE}</style></head><body>", escape(&self.title), STYLE);
        out!(
            w,
            "<h1>{}</h1><p class=\"verdict {status}\">Verdict: {}</p><p>Made by <code>{}</code>.</p>",
            escape(&self.title),
            escape(&self.verdict()),
            escape(&self.command)
        );
        self.html_experiments(w);
        for table in &self.tables {
            html_cell_table(w, table);
        }
        out!(w, "</body></html>");
        page
    }

    /// The experiments of the literature and how the results differ from them, if any.
    fn html_experiments(&self, w: &mut String) {
        if !self.experiments.is_empty() {
            out!(w, "<h2>Experiments of the literature</h2>");
            let table = html_table(&EXPERIMENT_HEADERS, &self.experiment_rows());
            out!(
                w,
                "{}<p class=\"note\">CSV: <a href=\"experiments.csv\">experiments.csv</a>.</p>",
                table.replacen("<table>", "<table class=\"prose\">", 1)
            );
            out!(w, "<ul>");
            for (experiment, why) in self.differences() {
                out!(
                    w,
                    "<li><b>{}</b> differs: {}</li>",
                    escape(experiment),
                    escape(why)
                );
            }
            out!(w, "</ul>");
        }
    }

    /// Writes `campaign.md`, `campaign.html`, `campaign.csv` (every table's cells, a column
    /// saying which table), `experiments.csv`, and each table's CSV and charts into `dir`.
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::write(dir.join("campaign.md"), self.markdown())?;
        std::fs::write(dir.join("campaign.html"), self.html())?;
        let properties = self.properties();
        let mut csv = String::new();
        for (index, table) in self.tables.iter().enumerate() {
            let lines = table.csv(&properties);
            let mut lines = lines.lines();
            let header = lines.next().expect("a header line");
            if index == 0 {
                out!(csv, "table,{header}");
            }
            for line in lines {
                out!(csv, "{},{line}", table.slug);
            }
        }
        std::fs::write(dir.join("campaign.csv"), csv)?;
        if !self.experiments.is_empty() {
            let mut experiments = String::from("experiment,expected,measured,agreement\n");
            for row in self.experiment_rows() {
                let quoted: Vec<String> = row
                    .iter()
                    .map(|cell| format!("\"{}\"", cell.replace('"', "\"\"")))
                    .collect();
                out!(experiments, "{}", quoted.join(","));
            }
            std::fs::write(dir.join("experiments.csv"), experiments)?;
        }
        for table in &self.tables {
            std::fs::write(dir.join(table.csv_name()), table.csv(&properties))?;
            for (name, svg) in table.charts() {
                std::fs::write(dir.join(name), svg)?;
            }
        }
        Ok(())
    }
}

/// One table's section of the HTML report: its cells, the runs violating each property, the
/// failed runs with their replay commands, and its charts.
fn html_cell_table(w: &mut String, table: &CellTable) {
    let shown = table.shown();
    out!(
        w,
        "<h2>{}</h2><p>{}</p>{}",
        escape(&table.title),
        escape(&table.about),
        table.html(&shown)
    );
    let csv = escape(&table.csv_name());
    out!(w, "<p class=\"note\">CSV: <a href=\"{csv}\">{csv}</a>.");
    if let Some(left_out) = table.left_out(&shown.columns) {
        out!(w, " {}", escape(&left_out));
    }
    out!(w, "</p>");
    match table.by_property() {
        Some((headers, rows)) => {
            let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
            out!(
                w,
                "<h3>Runs violating each property</h3>{}",
                html_table(&headers, &rows)
            );
        }
        None => out!(w, "<p>No run violated a property.</p>"),
    }
    let failures: Vec<String> = table
        .cells
        .iter()
        .flat_map(|c| c.failures.iter().map(move |f| (c, f)))
        .map(|(c, f)| {
            let link = f.report.as_ref().map_or(String::new(), |r| {
                format!(" — <a href=\"{}\">report</a>", escape(r))
            });
            format!(
                "<li>{} / {} / {} seed {} — {}: {}{link}<br><code>{}</code></li>",
                escape(&c.algorithm),
                escape(&c.scenario),
                escape(&c.faults),
                f.seed,
                escape(&f.verdict),
                escape(&f.first_violation),
                escape(&f.replay)
            )
        })
        .collect();
    if !failures.is_empty() {
        out!(w, "<ul>{}</ul>", failures.join(""));
    }
    let charts: String = table.charts().into_iter().map(|(_, svg)| svg).collect();
    out!(w, "<div class=\"chart\">{charts}</div>");
}

/// The campaign page's own rules: a cell table's names stay on one line and its figures are
/// compact, so that the widest table fits the page; prose tables read left to right.
const CAMPAIGN_STYLE: &str =
    "table.cells{font-size:13px}table.cells td,table.cells th{padding:2px 5px}\
table.cells td:nth-child(-n+3){text-align:left;white-space:nowrap}table.cells th{text-align:center}\
table.prose td,table.prose th{text-align:left;vertical-align:top}.note{font-size:13px;color:#555}";

const EXPERIMENT_HEADERS: [&str; 4] = ["experiment", "expected (source)", "measured", "result"];

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(algorithm: &str, scenario: &str, checkpoint_ms: Vec<u64>) -> CellSummary {
        CellSummary {
            algorithm: algorithm.into(),
            scenario: scenario.into(),
            faults: "none".into(),
            runs: 2,
            passed: 2,
            in_flight_bytes: vec![0, 100, 300],
            checkpoint_ms,
            ..CellSummary::default()
        }
    }

    fn report() -> CampaignReport {
        let mut failing = cell("unaligned", "back-pressure", vec![40, 60]);
        failing.passed = 1;
        failing.violations.insert("consistent-cut".into(), 1);
        failing.failures.push(FailedRun {
            seed: 7,
            verdict: "Correctness".into(),
            first_violation: "consistent-cut: sum[0] counts in-flight input twice".into(),
            replay: "cargo run --release -- run --scenario back-pressure --seed 7".into(),
            report: None,
        });
        CampaignReport {
            title: "snapsim campaign".into(),
            command: "snapsim campaign --seeds 0..2".into(),
            experiments: vec![Experiment {
                experiment: "timeout".into(),
                expected: "switches".into(),
                measured: "does not".into(),
                agreement: Agreement::DiffersAsDocumented("the timer starts later".into()),
            }],
            tables: vec![CellTable {
                title: "Matrix".into(),
                about: "all of them".into(),
                slug: "matrix".into(),
                figures: Figures::Checkpoints,
                cells: vec![
                    cell("aligned", "back-pressure", vec![100, 200, 300]),
                    failing,
                ],
            }],
        }
    }

    #[test]
    fn a_violation_fails_the_campaign_and_is_tabled_by_property_with_its_replay_line() {
        let report = report();
        assert!(!report.passed());
        assert!(report.verdict().starts_with("FAILED: 1 of 4 runs"));
        let markdown = report.markdown();
        assert!(markdown.contains("| unaligned | back-pressure | none | 1 |"));
        assert!(markdown.contains("run --scenario back-pressure --seed 7"));
        assert!(markdown.contains("**timeout** differs: the timer starts later"));
        let csv = report.tables[0].csv(&report.properties());
        let lines: Vec<&str> = csv.lines().collect();
        assert!(lines[0].ends_with("duplicates,violated consistent-cut"));
        assert_eq!(lines.len(), 3);
        // Percentiles of the aligned cell: p50 of [100, 200, 300] is 200, p99 is 300.
        assert!(lines[1].starts_with("aligned,back-pressure,none,2,0,3,200,300,300,"));
        assert!(lines[2].ends_with(",0,1"));
    }

    #[test]
    fn an_unexpected_experiment_fails_a_campaign_whose_runs_passed() {
        let mut report = report();
        report.tables[0].cells.truncate(1);
        assert!(report.passed(), "a documented difference is not a failure");
        report.experiments[0].agreement = Agreement::Unexpected;
        assert!(!report.passed());
        assert!(report.verdict().contains("1 unexpected"));
    }

    /// Why: a chart is drawn for every figure with a value above zero, a bar per algorithm;
    /// a chart of zeros and gaps would be an empty frame on a page meant for a paper, so it is
    /// left out and the page says so.
    #[test]
    fn every_figure_with_a_value_gets_a_chart_and_the_others_are_named() {
        let mut report = report();
        let table = &report.tables[0];
        let charts = table.charts();
        let names: Vec<&str> = charts.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(
            names,
            ["matrix-checkpoint-p90.svg", "matrix-channel-state-p50.svg"],
            "no alignment, replay or recovery in these cells"
        );
        assert_eq!(table.chart_names(), names);
        assert!(charts[0].1.contains("unaligned") && charts[0].1.contains("aligned"));
        let left_out = (table.left_out(&table.shown().columns)).expect("something is left out");
        assert!(
            left_out.contains("Records replayed after recovery"),
            "{left_out}"
        );
        report.tables[0].cells[0].recovery_ms = vec![0, 0];
        assert_eq!(report.tables[0].charts().len(), 2, "zeros draw nothing");
    }

    /// Why: the widest table must fit the page; a column no row has a value for (recovery
    /// times where nothing failed over) is left out of the page, named, and kept in the CSV.
    #[test]
    fn columns_without_values_are_left_out_of_the_page_but_not_the_csv() {
        let report = report();
        let table = &report.tables[0];
        let columns = table.shown().columns;
        let shown = table.headers(&columns);
        assert!(!shown.contains(&"recovery ms p50") && shown.contains(&"checkpoint ms p90"));
        assert!((table.left_out(&columns).expect("named")).contains("recovery ms p50"));
        let html = report.html();
        assert!(
            !html.contains(">recovery (ms)<"),
            "the group goes with its columns"
        );
        assert!(html.contains("<th colspan=\"3\">checkpoint duration (ms)</th>"));
        assert!(html.contains("<a href=\"matrix.csv\">matrix.csv</a>"));
        assert!(table
            .csv(&[])
            .lines()
            .next()
            .expect("a header")
            .contains("recovery ms p50"));
    }
}
