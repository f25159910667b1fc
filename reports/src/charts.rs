//! SVG charts, drawn with plotters (its SVG backend, no fonts: the browser lays out the text).

use plotters::coord::ranged1d::{SegmentValue, SegmentedCoord};
use plotters::coord::types::{RangedCoordf64, RangedCoordu32, RangedCoordu64};
use plotters::prelude::*;
use snapsim_sim::analysis::{CheckpointSpan, Ending, Timeline};

const GREEN: RGBColor = RGBColor(46, 160, 67);
const RED: RGBColor = RGBColor(214, 39, 40);
const GREY: RGBColor = RGBColor(150, 150, 150);
const BLUE: RGBColor = RGBColor(31, 119, 180);
const PURPLE: RGBColor = RGBColor(148, 103, 189);
const ORANGE: RGBColor = RGBColor(255, 127, 14);
const DARK: RGBColor = RGBColor(60, 60, 60);

const WIDTH: u32 = 1100;
const ROW_PIXELS: u32 = 22;
const FONT: &str = "sans-serif";

/// One row of the timeline chart.
enum Row {
    Checkpoints(u32),
    Faults,
    Node(String),
    Task(String),
}

impl Row {
    fn label(&self) -> String {
        match self {
            Row::Checkpoints(0) => "checkpoints".to_string(),
            Row::Checkpoints(_) => "(overlapping)".to_string(),
            Row::Faults => "faults".to_string(),
            Row::Node(node) => format!("{node} down"),
            Row::Task(task) => format!("{task} aligning"),
        }
    }
}

/// The rows of the timeline chart, top to bottom: checkpoint lanes, faults, nodes down, tasks
/// aligning.
struct TimelineRows(Vec<Row>);

impl TimelineRows {
    /// A row per checkpoint lane (at least one), then the faults' row, a row per node that went
    /// down (by name) and one per task that aligned (by number).
    fn new(timeline: &Timeline, lanes: usize) -> Self {
        let mut rows: Vec<Row> = (0..lanes.max(1) as u32).map(Row::Checkpoints).collect();
        rows.push(Row::Faults);
        let mut nodes: Vec<&str> = timeline.downtimes.iter().map(|d| d.node.as_str()).collect();
        nodes.sort_unstable();
        nodes.dedup();
        rows.extend(nodes.iter().map(|node| Row::Node(node.to_string())));
        let mut tasks: Vec<&str> = timeline
            .alignments
            .iter()
            .map(|a| a.task.as_str())
            .collect();
        tasks.sort_by_key(|task| (task.len(), *task));
        tasks.dedup();
        rows.extend(tasks.iter().map(|task| Row::Task(task.to_string())));
        TimelineRows(rows)
    }

    fn count(&self) -> u32 {
        self.0.len() as u32
    }

    /// The chart's y segment of the first row `wanted` accepts (row 0 is drawn at the top).
    fn row_of(&self, wanted: &dyn Fn(&Row) -> bool) -> u32 {
        let index = self
            .0
            .iter()
            .position(wanted)
            .expect("every drawn thing has a row");
        self.count() - 1 - index as u32
    }

    /// The rows' labels, bottom to top as the y axis counts.
    fn labels(&self) -> Vec<String> {
        self.0.iter().rev().map(Row::label).collect()
    }
}

/// The timeline chart: virtual time (ms) across, a segment per row up.
type TimelineChart<'a, 'b> =
    ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, SegmentedCoord<RangedCoordu32>>>;

/// The timeline of a run: checkpoints from trigger to completion (green), abort (red) or the
/// end (grey), savepoints in blue, labelled with their ids; faults; nodes down; barrier
/// alignment per task; failovers (red lines) and the job running again (green lines).
pub fn timeline_svg(timeline: &Timeline) -> String {
    let (lanes, lane_count) = checkpoint_lanes(timeline);
    let rows = TimelineRows::new(timeline, lane_count);
    let count = rows.count();
    let end = (timeline.end.max(1)) as f64;
    let height = 90 + ROW_PIXELS * count;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE).expect("drawing into a string");
        let mut chart = ChartBuilder::on(&root)
            .margin(10)
            .caption("Timeline (virtual time)", (FONT, 18))
            .x_label_area_size(35)
            .y_label_area_size(130)
            .build_cartesian_2d(0f64..end, (0u32..count).into_segmented())
            .expect("a valid chart");
        let labels = rows.labels();
        chart
            .configure_mesh()
            .disable_y_mesh()
            .light_line_style(WHITE.mix(0.0))
            .y_labels(count as usize)
            .y_label_formatter(&|value| match value {
                SegmentValue::CenterOf(i) => labels.get(*i as usize).cloned().unwrap_or_default(),
                _ => String::new(),
            })
            .x_label_formatter(&|ms| format!("{ms:.0}"))
            .x_desc("ms")
            .label_style((FONT, 12))
            .draw()
            .expect("drawing into a string");
        draw_checkpoint_spans(&mut chart, timeline, &lanes, &rows);
        draw_downtimes_and_alignments(&mut chart, timeline, &rows);
        let faults_row = rows.row_of(&|r| matches!(r, Row::Faults));
        let faults = timeline.faults.iter().map(|fault| {
            TriangleMarker::new(
                (fault.at as f64, SegmentValue::CenterOf(faults_row)),
                6,
                ORANGE.filled(),
            )
        });
        chart.draw_series(faults).expect("drawing into a string");
        draw_recoveries(&mut chart, timeline, count);
        root.present().expect("drawing into a string");
    }
    svg
}

/// Each checkpoint's lane, so that overlapping ones do not cover each other: the first lane
/// free at its trigger. Also returns how many lanes there are.
fn checkpoint_lanes(timeline: &Timeline) -> (Vec<u32>, usize) {
    let mut lane_ends: Vec<u64> = Vec::new();
    let lanes: Vec<u32> = timeline
        .checkpoints
        .iter()
        .map(|span| {
            let end = span
                .ended_at
                .unwrap_or(timeline.end)
                .max(span.triggered_at + 1);
            let lane = match lane_ends.iter().position(|&e| e <= span.triggered_at) {
                Some(lane) => lane,
                None => {
                    lane_ends.push(0);
                    lane_ends.len() - 1
                }
            };
            lane_ends[lane] = end;
            lane as u32
        })
        .collect();
    (lanes, lane_ends.len())
}

/// A bar of the timeline in `row`, from `from` to `to` (at least 1 ms wide).
fn timeline_bar(
    row: u32,
    from: u64,
    to: u64,
    color: RGBColor,
) -> Rectangle<(f64, SegmentValue<u32>)> {
    let to = to.max(from + 1);
    let mut rect = Rectangle::new(
        [
            (from as f64, SegmentValue::Exact(row)),
            (to as f64, SegmentValue::Exact(row + 1)),
        ],
        color.filled(),
    );
    rect.set_margin(3, 3, 0, 0);
    rect
}

/// Each checkpoint's bar in its lane, coloured by how it ended, then its id above.
fn draw_checkpoint_spans(
    chart: &mut TimelineChart,
    timeline: &Timeline,
    lanes: &[u32],
    rows: &TimelineRows,
) {
    let checkpoint_bars = timeline.checkpoints.iter().zip(lanes).map(|(span, &lane)| {
        let color = match (&span.ending, span.savepoint) {
            (Ending::Completed, true) => BLUE,
            (Ending::Completed, false) => GREEN,
            (Ending::Aborted(_), _) => RED,
            (Ending::Pending, _) => GREY,
        };
        let row = rows.row_of(&|r| matches!(r, Row::Checkpoints(l) if *l == lane));
        timeline_bar(
            row,
            span.triggered_at,
            span.ended_at.unwrap_or(timeline.end),
            color,
        )
    });
    chart
        .draw_series(checkpoint_bars)
        .expect("drawing into a string");
    let ids = timeline.checkpoints.iter().zip(lanes).map(|(span, &lane)| {
        let row = rows.row_of(&|r| matches!(r, Row::Checkpoints(l) if *l == lane));
        Text::new(
            span.id.to_string(),
            (span.triggered_at as f64, SegmentValue::Exact(row + 1)),
            (FONT, 10).into_font().color(&BLACK),
        )
    });
    chart.draw_series(ids).expect("drawing into a string");
}

/// Each node's downtimes and each task's alignments, in their rows.
fn draw_downtimes_and_alignments(
    chart: &mut TimelineChart,
    timeline: &Timeline,
    rows: &TimelineRows,
) {
    let downtimes = timeline.downtimes.iter().map(|down| {
        let row = rows.row_of(&|r| matches!(r, Row::Node(n) if *n == down.node));
        timeline_bar(row, down.from, down.to.unwrap_or(timeline.end), DARK)
    });
    chart.draw_series(downtimes).expect("drawing into a string");
    let alignments = timeline.alignments.iter().map(|a| {
        let row = rows.row_of(&|r| matches!(r, Row::Task(t) if *t == a.task));
        timeline_bar(row, a.from, a.to, PURPLE)
    });
    chart
        .draw_series(alignments)
        .expect("drawing into a string");
}

/// Failovers (red) and the job running again (green) as lines across all `count` rows.
fn draw_recoveries(chart: &mut TimelineChart, timeline: &Timeline, count: u32) {
    let top = SegmentValue::Exact(count);
    let bottom = SegmentValue::Exact(0);
    let vertical = |at: u64, color: RGBColor| {
        PathElement::new(
            vec![(at as f64, bottom.clone()), (at as f64, top.clone())],
            color.stroke_width(2),
        )
    };
    let failovers = timeline
        .recoveries
        .iter()
        .map(|r| vertical(r.failed_at, RED));
    chart.draw_series(failovers).expect("drawing into a string");
    let running = timeline
        .recoveries
        .iter()
        .filter_map(|r| r.running_at)
        .map(|at| vertical(at, GREEN));
    chart.draw_series(running).expect("drawing into a string");
}

/// Each checkpoint's duration (trigger to completion, green; to abort, red) with its longest
/// barrier alignment (purple, inside), by checkpoint id.
pub fn checkpoint_chart_svg(timeline: &Timeline) -> String {
    let spans: Vec<_> = timeline
        .checkpoints
        .iter()
        .filter(|span| span.ended_at.is_some())
        .collect();
    let longest = spans
        .iter()
        .map(|span| span.ended_at.expect("filtered") - span.triggered_at)
        .max()
        .unwrap_or(1)
        .max(1);
    let count = spans.len().max(1) as u32;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, 320)).into_drawing_area();
        root.fill(&WHITE).expect("drawing into a string");
        let mut chart = ChartBuilder::on(&root)
            .margin(10)
            .caption(
                "Checkpoint duration (green: completed, red: aborted) and longest alignment (purple)",
                (FONT, 16),
            )
            .x_label_area_size(35)
            .y_label_area_size(50)
            .build_cartesian_2d((0u32..count).into_segmented(), 0f64..longest as f64 * 1.1)
            .expect("a valid chart");
        let ids: Vec<u64> = spans.iter().map(|span| span.id).collect();
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(count.min(40) as usize)
            .x_label_formatter(&|value| match value {
                SegmentValue::CenterOf(i) => {
                    ids.get(*i as usize).map_or(String::new(), u64::to_string)
                }
                _ => String::new(),
            })
            .x_desc("checkpoint id")
            .y_desc("ms")
            .y_labels(8)
            .light_line_style(WHITE.mix(0.0))
            .y_label_formatter(&|ms| format!("{ms:.0}"))
            .label_style((FONT, 12))
            .draw()
            .expect("drawing into a string");
        draw_durations_and_alignments(&mut chart, &spans);
        root.present().expect("drawing into a string");
    }
    svg
}

/// The checkpoint chart: a segment per checkpoint across, ms up.
type CheckpointChart<'a, 'b> =
    ChartContext<'a, SVGBackend<'b>, Cartesian2d<SegmentedCoord<RangedCoordu32>, RangedCoordf64>>;

/// Each checkpoint's duration as a column, coloured by how it ended, with its longest
/// alignment as a narrower column inside.
fn draw_durations_and_alignments(chart: &mut CheckpointChart, spans: &[&CheckpointSpan]) {
    let column = |i: usize, height: u64, color: RGBColor, inset: u32| {
        let mut rect = Rectangle::new(
            [
                (SegmentValue::Exact(i as u32), 0.0),
                (SegmentValue::Exact(i as u32 + 1), height as f64),
            ],
            color.filled(),
        );
        rect.set_margin(0, 0, inset, inset);
        rect
    };
    let durations = spans.iter().enumerate().map(|(i, span)| {
        let color = match span.ending {
            Ending::Completed => GREEN,
            _ => RED,
        };
        column(
            i,
            span.ended_at.expect("filtered") - span.triggered_at,
            color,
            2,
        )
    });
    chart.draw_series(durations).expect("drawing into a string");
    let alignments = spans
        .iter()
        .enumerate()
        .filter_map(|(i, span)| span.alignment_max.map(|ms| column(i, ms, PURPLE, 6)));
    chart
        .draw_series(alignments)
        .expect("drawing into a string");
}

/// A histogram of `values` (ms) in about 20 buckets of a round width.
pub fn histogram_svg(title: &str, values: &[u64]) -> String {
    let largest = values.iter().copied().max().unwrap_or(0);
    let width = round_bucket_width(largest / 20 + 1);
    let buckets = (largest / width + 1) as u32;
    let mut counts = vec![0u64; buckets as usize];
    for value in values {
        counts[(value / width) as usize] += 1;
    }
    let highest = counts.iter().copied().max().unwrap_or(0).max(1);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (540, 300)).into_drawing_area();
        root.fill(&WHITE).expect("drawing into a string");
        let mut chart = ChartBuilder::on(&root)
            .margin(10)
            .caption(title, (FONT, 16))
            .x_label_area_size(35)
            .y_label_area_size(50)
            .build_cartesian_2d(
                (0u32..buckets).into_segmented(),
                0u64..highest + highest / 10 + 1,
            )
            .expect("a valid chart");
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(buckets.min(12) as usize)
            .x_label_formatter(&|value| match value {
                SegmentValue::Exact(i) | SegmentValue::CenterOf(i) => {
                    (u64::from(*i) * width).to_string()
                }
                SegmentValue::Last => String::new(),
            })
            .x_desc("ms")
            .y_desc("count")
            .y_labels(8)
            .light_line_style(WHITE.mix(0.0))
            .label_style((FONT, 12))
            .draw()
            .expect("drawing into a string");
        // Bars drawn one by one, in bucket order: plotters' Histogram series keeps its buckets
        // in a HashMap, so its SVG changes from process to process.
        let bars = counts.iter().enumerate().map(|(i, &n)| {
            let mut rect = Rectangle::new(
                [
                    (SegmentValue::Exact(i as u32), 0),
                    (SegmentValue::Exact(i as u32 + 1), n),
                ],
                BLUE.filled(),
            );
            rect.set_margin(0, 0, 1, 1);
            rect
        });
        chart.draw_series(bars).expect("drawing into a string");
        root.present().expect("drawing into a string");
    }
    svg
}

/// The colours of the series of a grouped bar chart, in series order (then repeated).
const SERIES_COLORS: [RGBColor; 7] = [BLUE, ORANGE, GREEN, RED, PURPLE, GREY, DARK];

/// A bar chart of one figure: a group of bars per label of `groups` (x axis), one bar per
/// series in each, coloured by series with a legend. `series` holds (name, one value per group;
/// `None` leaves a gap).
pub fn grouped_bars_svg(
    title: &str,
    unit: &str,
    groups: &[String],
    series: &[(String, Vec<Option<u64>>)],
) -> String {
    assert!(
        series
            .iter()
            .all(|(_, values)| values.len() == groups.len()),
        "one value per group in every series"
    );
    // Each group takes a slot per series and one empty slot between groups.
    let slots_per_group = series.len() as u32 + 1;
    let slots = (groups.len() as u32 * slots_per_group).max(1);
    let highest = series
        .iter()
        .flat_map(|(_, values)| values.iter().flatten().copied())
        .max()
        .unwrap_or(0)
        .max(1);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, 360)).into_drawing_area();
        root.fill(&WHITE).expect("drawing into a string");
        let mut chart = ChartBuilder::on(&root)
            .margin(10)
            .caption(format!("{title} ({unit})"), (FONT, 16))
            .x_label_area_size(35)
            .y_label_area_size(60)
            .build_cartesian_2d(
                (0u32..slots).into_segmented(),
                0u64..top_with_room_for_legend(highest, series.len()),
            )
            .expect("a valid chart");
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(slots as usize)
            .x_label_formatter(&|value| match value {
                SegmentValue::CenterOf(slot)
                    if slot % slots_per_group == series.len() as u32 / 2 =>
                {
                    groups
                        .get((slot / slots_per_group) as usize)
                        .cloned()
                        .unwrap_or_default()
                }
                _ => String::new(),
            })
            .y_desc(unit)
            .y_labels(8)
            .light_line_style(WHITE.mix(0.0))
            .label_style((FONT, 12))
            .draw()
            .expect("drawing into a string");
        draw_series_with_legend(&mut chart, series, slots_per_group);
        root.present().expect("drawing into a string");
    }
    svg
}

/// The plot area's height in a grouped bar chart (px): the chart's less its margins, caption
/// and x labels.
const BARS_PLOT_PIXELS: u64 = 280;
/// The height of a legend row, and of the legend's margins (px).
const LEGEND_ROW_PIXELS: u64 = 15;
const LEGEND_MARGIN_PIXELS: u64 = 26;

/// The top of a grouped bar chart's y axis: the highest bar stays below the legend, which
/// takes the top of the plot area (with `rows` series), so that no bar hides behind it.
fn top_with_room_for_legend(highest: u64, rows: usize) -> u64 {
    let legend = LEGEND_ROW_PIXELS * rows as u64 + LEGEND_MARGIN_PIXELS;
    let free = BARS_PLOT_PIXELS
        .saturating_sub(legend)
        .max(BARS_PLOT_PIXELS / 3);
    (highest * BARS_PLOT_PIXELS).div_ceil(free) + 1
}

/// The grouped bar chart: a segment per slot across, the unit up.
type GroupedBarsChart<'a, 'b> =
    ChartContext<'a, SVGBackend<'b>, Cartesian2d<SegmentedCoord<RangedCoordu32>, RangedCoordu64>>;

/// Each series' bars, in its slot of every group it has a value for, then the legend.
fn draw_series_with_legend<'a, 'b: 'a>(
    chart: &mut GroupedBarsChart<'a, 'b>,
    series: &[(String, Vec<Option<u64>>)],
    slots_per_group: u32,
) {
    for (index, (name, values)) in series.iter().enumerate() {
        let color = SERIES_COLORS[index % SERIES_COLORS.len()];
        let bars = values.iter().enumerate().filter_map(|(group, value)| {
            let slot = group as u32 * slots_per_group + index as u32;
            let mut rect = Rectangle::new(
                [
                    (SegmentValue::Exact(slot), 0),
                    (SegmentValue::Exact(slot + 1), (*value)?),
                ],
                color.filled(),
            );
            rect.set_margin(0, 0, 1, 1);
            Some(rect)
        });
        chart
            .draw_series(bars)
            .expect("drawing into a string")
            .label(name.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled()));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(GREY)
        .label_font((FONT, 12))
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .expect("drawing into a string");
}

/// The smallest of 1, 2, 5, 10, 20, 50, … at least `width`.
fn round_bucket_width(width: u64) -> u64 {
    let mut round = 1;
    loop {
        for step in [1, 2, 5] {
            if round * step >= width {
                return round * step;
            }
        }
        round *= 10;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Why: the legend sits in the top left of the plot; the axis leaves the legend's rows
    /// free above the highest bar, so that no bar hides behind it.
    #[test]
    fn the_highest_bar_stays_below_the_legend() {
        for (highest, rows) in [(1, 1), (500, 4), (10_684, 5), (7, 7)] {
            let top = top_with_room_for_legend(highest, rows);
            let legend = LEGEND_ROW_PIXELS * rows as u64 + LEGEND_MARGIN_PIXELS;
            let bar_pixels = highest * BARS_PLOT_PIXELS / top;
            assert!(
                bar_pixels + legend <= BARS_PLOT_PIXELS,
                "{highest} with {rows} rows"
            );
        }
    }

    #[test]
    fn bucket_widths_are_round() {
        assert_eq!(round_bucket_width(1), 1);
        assert_eq!(round_bucket_width(3), 5);
        assert_eq!(round_bucket_width(11), 20);
        assert_eq!(round_bucket_width(51), 100);
    }
}
