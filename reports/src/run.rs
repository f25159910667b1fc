//! The report of one run: verdict, figures, the first violation and the trace before it, the
//! timeline, and checkpoint statistics; as Markdown (with the charts as SVG files beside it)
//! and as one self-contained HTML page.

use crate::charts::{checkpoint_chart_svg, timeline_svg};
pub use crate::sequence::MessageView;
use crate::sequence::{sequence_svg, Sequence};
use crate::{
    escape, html_table, markdown_table, markdown_text_table, or_dash, out, percentile, STYLE,
};
use snapsim_sim::analysis::{Ending, Timeline};
use std::path::Path;

/// A violated property, as the report shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ViolationView {
    pub property: String,
    /// What is wrong: the records and checkpoints involved.
    pub message: String,
    /// When it became visible (ms).
    pub at: Option<u64>,
}

/// One cause of a run's violations, as the report shows it (from a witness).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CauseView {
    /// The cause, one sentence.
    pub cause: String,
    /// The violations it explains, e.g. `exactly-once ×672, state-consistency ×2504`.
    pub explains: String,
    /// What they have in common, and what they are about.
    pub root: String,
    /// The events that make the violations true: time (ms), node, what.
    pub events: Vec<(u64, String, String)>,
    /// The messages sent or taken at those events (when the run logged its messages).
    pub messages: Vec<MessageView>,
}

impl CauseView {
    /// What its message-sequence chart draws.
    fn sequence(&self) -> Sequence<'_> {
        Sequence {
            events: &self.events,
            messages: &self.messages,
        }
    }
}

/// Everything a run report shows.
#[derive(Clone, Debug)]
pub struct RunReport {
    /// What ran, e.g. `keyed-sum seed 3`.
    pub title: String,
    pub verdict: String,
    /// Whether every property held.
    pub passed: bool,
    /// Figures and identifiers, in order (scenario, seed, trace hash, checkpoints, …).
    pub facts: Vec<(String, String)>,
    /// Why the run failed: its causes, each with its events (empty when no witness explains a
    /// violation).
    pub causes: Vec<CauseView>,
    /// Violations, the first first.
    pub violations: Vec<ViolationView>,
    /// The trace entries up to the first violation, one line each.
    pub trace_before: Vec<String>,
    /// The command that replays the run.
    pub replay: String,
    /// The cluster's nodes, one lane each in the message-sequence charts: JobManager,
    /// TaskManagers, storage, sink system.
    pub nodes: Vec<String>,
    /// What happened when.
    pub timeline: Timeline,
}

/// The columns of a cause's events.
const EVENT_HEADERS: [&str; 4] = ["#", "time", "node", "event"];

/// What a message-sequence chart shows, under it.
const SEQUENCE_LEGEND: &str = "One lane per node. The numbered points are the events in the table below; arrows are the messages sent or taken at them (✕: lost); grey bands: the node was down; red dashed lines: failovers; orange marks: other faults. Dotted gaps skip time in which nothing of this cause happens.";

/// The file of the message-sequence chart of the `number`th cause (from 1).
fn sequence_file(number: usize) -> String {
    format!("cause-{number}.svg")
}

/// The files a run report always consists of; a failing run's report adds a
/// message-sequence chart per cause (`cause-1.svg`, …).
pub const RUN_FILES: [&str; 4] = [
    "report.md",
    "report.html",
    "timeline.svg",
    "checkpoints.svg",
];

impl RunReport {
    /// The Markdown report; it shows `timeline.svg` and `checkpoints.svg` from its directory.
    pub fn markdown(&self) -> String {
        let mut text = String::new();
        let w = &mut text;
        out!(w, "# {}\n", self.title);
        out!(w, "Verdict: **{}**\n", self.verdict);
        for (number, cause) in self.causes.iter().enumerate() {
            out!(w, "## Why ({} of {})\n", number + 1, self.causes.len());
            out!(w, "{}\n", cause.cause);
            out!(w, "It explains {} ({}).\n", cause.explains, cause.root);
            if self.sequence_chart(number).is_some() {
                let file = sequence_file(number + 1);
                out!(w, "![message-sequence chart]({file})\n");
                out!(w, "{SEQUENCE_LEGEND}\n");
            }
            out!(
                w,
                "{}",
                markdown_text_table(&EVENT_HEADERS, &event_rows(cause))
            );
        }
        out!(w, "| | |\n|---|---|");
        for (name, value) in &self.facts {
            out!(w, "| {name} | {value} |");
        }
        out!(w, "\nReplay: `{}`\n", self.replay);
        if let Some(first) = self.violations.first() {
            out!(w, "## First violated property: {}\n", first.property);
            out!(w, "{}{}\n", first.message, at_suffix(first.at));
            for other in &self.violations[1..] {
                out!(
                    w,
                    "- also {}: {}{}",
                    other.property,
                    other.message,
                    at_suffix(other.at)
                );
            }
            if self.violations.len() > 1 {
                out!(w);
            }
            if !self.trace_before.is_empty() {
                out!(w, "The trace before it:\n\n```");
                for entry in &self.trace_before {
                    out!(w, "{entry}");
                }
                out!(w, "```\n");
            }
        }
        out!(w, "## Timeline\n\n![timeline](timeline.svg)\n");
        out!(w, "{}\n", LEGEND);
        out!(w, "## Checkpoints\n\n{}\n", self.checkpoint_summary());
        out!(w, "![checkpoint durations](checkpoints.svg)\n");
        out!(
            w,
            "{}",
            markdown_table(&CHECKPOINT_HEADERS, &self.checkpoint_rows())
        );
        if !self.timeline.recoveries.is_empty() {
            out!(w, "## Failovers\n");
            out!(
                w,
                "{}",
                markdown_table(&FAILOVER_HEADERS, &self.failover_rows())
            );
        }
        text
    }

    /// The HTML report: one file, the charts inline.
    pub fn html(&self) -> String {
        let mut page = String::new();
        let w = &mut page;
        let status = if self.passed { "passed" } else { "failed" };
        out!(w, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style></head><body>", escape(&self.title));
        out!(w, "<h1>{}</h1>", escape(&self.title));
        out!(
            w,
            "<p class=\"verdict {status}\">Verdict: {}</p>",
            escape(&self.verdict)
        );
        self.html_causes(w);
        self.html_facts(w);
        self.html_violations(w);
        self.html_checkpoints(w);
        self.html_failovers_and_faults(w);
        out!(w, "</body></html>");
        page
    }

    /// The message-sequence chart of the cause at `index`, if it has events to draw.
    fn sequence_chart(&self, index: usize) -> Option<String> {
        let cause = &self.causes[index];
        sequence_svg(&cause.sequence(), index + 1, &self.nodes, &self.timeline)
    }

    /// The causes first: what the reader needs before any figure.
    fn html_causes(&self, w: &mut String) {
        for (number, cause) in self.causes.iter().enumerate() {
            out!(
                w,
                "<h2>Why ({} of {})</h2><p class=\"violation\">{}</p><p>It explains {} ({}).</p>",
                number + 1,
                self.causes.len(),
                escape(&cause.cause),
                escape(&cause.explains),
                escape(&cause.root)
            );
            if let Some(chart) = self.sequence_chart(number) {
                out!(
                    w,
                    "<div class=\"chart\">{chart}</div><p class=\"legend\">{}</p>",
                    escape(SEQUENCE_LEGEND)
                );
            }
            let table = html_table(&EVENT_HEADERS, &event_rows(cause));
            out!(
                w,
                "{}",
                table.replacen("<table>", "<table class=\"events\">", 1)
            );
        }
    }

    /// The facts' table and the replay command.
    fn html_facts(&self, w: &mut String) {
        out!(w, "<table class=\"facts\">");
        for (name, value) in &self.facts {
            out!(
                w,
                "<tr><th>{}</th><td>{}</td></tr>",
                escape(name),
                escape(value)
            );
        }
        out!(
            w,
            "</table><p>Replay: <code>{}</code></p>",
            escape(&self.replay)
        );
    }

    /// The first violation, the others listed, and the trace before the first; nothing for a
    /// run that passed.
    fn html_violations(&self, w: &mut String) {
        if let Some(first) = self.violations.first() {
            out!(
                w,
                "<h2>First violated property: {}</h2><p class=\"violation\">{}{}</p>",
                escape(&first.property),
                escape(&first.message),
                escape(&at_suffix(first.at))
            );
            if self.violations.len() > 1 {
                out!(w, "<ul>");
                for other in &self.violations[1..] {
                    out!(
                        w,
                        "<li>also {}: {}{}</li>",
                        escape(&other.property),
                        escape(&other.message),
                        escape(&at_suffix(other.at))
                    );
                }
                out!(w, "</ul>");
            }
            if !self.trace_before.is_empty() {
                out!(
                    w,
                    "<p>The trace before it:</p><pre>{}</pre>",
                    escape(&self.trace_before.join("\n"))
                );
            }
        }
    }

    /// The timeline chart, then the checkpoints' summary, chart and table.
    fn html_checkpoints(&self, w: &mut String) {
        out!(
            w,
            "<h2>Timeline</h2><div class=\"chart\">{}</div><p>{}</p>",
            timeline_svg(&self.timeline),
            escape(LEGEND)
        );
        out!(
            w,
            "<h2>Checkpoints</h2><p>{}</p><div class=\"chart\">{}</div>",
            escape(&self.checkpoint_summary()),
            checkpoint_chart_svg(&self.timeline)
        );
        out!(
            w,
            "{}",
            html_table(&CHECKPOINT_HEADERS, &self.checkpoint_rows())
        );
    }

    /// The failovers' and the faults' tables, each only when there is one.
    fn html_failovers_and_faults(&self, w: &mut String) {
        if !self.timeline.recoveries.is_empty() {
            out!(
                w,
                "<h2>Failovers</h2>{}",
                html_table(&FAILOVER_HEADERS, &self.failover_rows())
            );
        }
        if !self.timeline.faults.is_empty() {
            let rows: Vec<Vec<String>> = (self.timeline.faults.iter())
                .map(|fault| vec![fault.at.to_string(), fault.label.clone()])
                .collect();
            out!(
                w,
                "<h2>Faults</h2>{}",
                html_table(&["at (ms)", "fault"], &rows)
            );
        }
    }

    /// Writes [`RUN_FILES`] into `dir` (created if missing).
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("report.md"), self.markdown())?;
        std::fs::write(dir.join("report.html"), self.html())?;
        std::fs::write(dir.join("timeline.svg"), timeline_svg(&self.timeline))?;
        for number in 0..self.causes.len() {
            if let Some(chart) = self.sequence_chart(number) {
                std::fs::write(dir.join(sequence_file(number + 1)), chart)?;
            }
        }
        std::fs::write(
            dir.join("checkpoints.svg"),
            checkpoint_chart_svg(&self.timeline),
        )
    }

    fn checkpoint_summary(&self) -> String {
        // Checkpoints only, as the figures above count them; savepoints are listed in the table.
        let spans: Vec<_> = (self.timeline.checkpoints.iter())
            .filter(|s| !s.savepoint)
            .collect();
        let completed = spans
            .iter()
            .filter(|s| s.ending == Ending::Completed)
            .count();
        let aborted = (spans.iter())
            .filter(|s| matches!(s.ending, Ending::Aborted(_)))
            .count();
        let mut durations: Vec<u64> = spans.iter().filter_map(|s| s.duration()).collect();
        let mut alignments: Vec<u64> = spans.iter().filter_map(|s| s.alignment_max).collect();
        let mut sizes: Vec<u64> = (spans.iter())
            .filter(|s| s.ending == Ending::Completed)
            .map(|s| s.state_bytes)
            .collect();
        let savepoints = self.timeline.checkpoints.len() - spans.len();
        format!(
            "{} checkpoints triggered, {completed} completed, {aborted} aborted (and {savepoints} savepoints). Duration (ms) p50 {} p90 {} max {}; longest alignment per checkpoint (ms) p50 {} max {}; state per completed checkpoint (bytes) p50 {} max {}.",
            spans.len(),
            or_dash(percentile(&mut durations, 50)),
            or_dash(percentile(&mut durations, 90)),
            or_dash(durations.iter().copied().max()),
            or_dash(percentile(&mut alignments, 50)),
            or_dash(alignments.iter().copied().max()),
            or_dash(percentile(&mut sizes, 50)),
            or_dash(sizes.iter().copied().max()),
        )
    }

    fn failover_rows(&self) -> Vec<Vec<String>> {
        (self.timeline.recoveries.iter())
            .map(|r| {
                vec![
                    r.failed_at.to_string(),
                    r.cause.clone(),
                    or_dash(r.restored),
                    or_dash(r.running_at),
                    or_dash(r.duration()),
                ]
            })
            .collect()
    }

    fn checkpoint_rows(&self) -> Vec<Vec<String>> {
        self.timeline
            .checkpoints
            .iter()
            .map(|span| {
                let (result, duration) = match &span.ending {
                    Ending::Completed => ("completed".to_string(), or_dash(span.duration())),
                    Ending::Aborted(reason) => (format!("aborted: {reason}"), "–".to_string()),
                    Ending::Pending => ("pending at the end".to_string(), "–".to_string()),
                };
                vec![
                    span.id.to_string(),
                    if span.savepoint {
                        "savepoint"
                    } else {
                        "checkpoint"
                    }
                    .to_string(),
                    span.triggered_at.to_string(),
                    or_dash(span.ended_at),
                    result,
                    duration,
                    or_dash(span.alignment_max),
                    span.snapshots.to_string(),
                    span.state_bytes.to_string(),
                    or_dash(span.uploaded_bytes),
                    or_dash(span.full_bytes),
                ]
            })
            .collect()
    }
}

const CHECKPOINT_HEADERS: [&str; 11] = [
    "id",
    "kind",
    "triggered (ms)",
    "ended (ms)",
    "result",
    "duration (ms)",
    "longest alignment (ms)",
    "snapshots",
    "state (bytes)",
    "uploaded (bytes)",
    "all files (bytes)",
];

const FAILOVER_HEADERS: [&str; 5] = [
    "at (ms)",
    "cause",
    "restored checkpoint",
    "running again (ms)",
    "recovery (ms)",
];

const LEGEND: &str = "Checkpoints from trigger to completion (green), abort (red) or the end of the run (grey), savepoints in blue, each labelled with its id; faults (orange triangles); nodes down from crash to restart (dark); barrier alignment per task from its first barrier to its snapshot (purple); failovers (red lines) and the job running again (green lines).";

/// A cause's events as table rows, numbered as the chart numbers them.
fn event_rows(cause: &CauseView) -> Vec<Vec<String>> {
    (cause.events.iter().enumerate())
        .map(|(index, (at, node, what))| {
            let number = (index + 1).to_string();
            vec![number, format!("{at} ms"), node.clone(), what.clone()]
        })
        .collect()
}

fn at_suffix(at: Option<u64>) -> String {
    at.map_or(String::new(), |at| format!(" (at {at} ms)"))
}
