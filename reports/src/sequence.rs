//! The message-sequence chart of one cause: a lane per node, the witness's events as numbered
//! points, the messages sent or taken at those events as arrows, nodes down as bands and
//! failovers as lines, over only the time windows in which the cause happens.
//!
//! Laid out by hand as SVG, not with plotters as the other charts are: a sequence chart needs
//! a time axis broken between its windows and arrows from lane to lane, and plotters has
//! neither a broken axis nor arrowheads. What it draws is lines, circles and text.

use crate::{escape, out};
use snapsim_sim::analysis::Timeline;

const WIDTH: f64 = 1100.0;
/// The lane labels' column.
const LABELS: f64 = 100.0;
const RIGHT: f64 = 20.0;
/// Room above the first lane for failover and fault marks.
const TOP: f64 = 24.0;
const LANE: f64 = 40.0;
/// Room below the last lane for the time labels.
const AXIS: f64 = 28.0;
/// The gap drawn where the axis skips time.
const BREAK: f64 = 34.0;
/// The narrowest a window is drawn (when there is room: the windows share the chart first).
const WINDOW_MIN: f64 = 220.0;
/// Points closer than this (ms) share a window.
const JOIN_MS: u64 = 60;
/// Time (ms) a window shows before its first point and after its last.
const PAD_MS: u64 = 3;
/// At most this many windows; the closest are merged first.
const WINDOWS_MAX: usize = 6;
/// How long (ms) before the first event a crash still belongs to the picture.
const CRASH_LOOKBACK_MS: u64 = 200;
/// Label characters on an arrow (the whole label is its tooltip).
const LABEL_CHARS: usize = 36;
/// How far (px) an arrow of a lost message goes.
const LOST_PX: f64 = 36.0;

const BLUE: &str = "#1f77b4";
const RED: &str = "#d62728";
const ORANGE: &str = "#ff7f0e";

/// A message between nodes, as the chart draws it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageView {
    pub from: String,
    pub to: String,
    /// When it was sent (ms).
    pub sent: u64,
    /// When its receiver took it (ms); none when it was lost.
    pub delivered: Option<u64>,
    /// What it was, e.g. `ack chk-3 (task-1)`.
    pub what: String,
}

/// What a chart draws of one cause: its events (time in ms, node, what) and the messages
/// that meet them.
pub struct Sequence<'a> {
    pub events: &'a [(u64, String, String)],
    pub messages: &'a [MessageView],
}

/// A stretch of time the chart shows, and where it is drawn.
struct Window {
    from: u64,
    to: u64,
    x: f64,
    width: f64,
}

/// The chart's broken time axis: its windows, left to right.
struct Axis(Vec<Window>);

impl Axis {
    /// Windows around `points` (ms): points closer than [`JOIN_MS`] share one, at most
    /// [`WINDOWS_MAX`]; each gets width in proportion to its time, at least [`WINDOW_MIN`] where
    /// there is room.
    fn new(mut points: Vec<u64>) -> Axis {
        points.sort_unstable();
        points.dedup();
        let mut spans: Vec<(u64, u64)> = Vec::new();
        for at in points {
            match spans.last_mut() {
                Some((_, to)) if at <= *to + JOIN_MS => *to = at,
                _ => spans.push((at, at)),
            }
        }
        while spans.len() > WINDOWS_MAX {
            let closest = (1..spans.len())
                .min_by_key(|&i| spans[i].0 - spans[i - 1].1)
                .expect("more than one window");
            let (_, to) = spans.remove(closest);
            spans[closest - 1].1 = to;
        }
        let spans: Vec<(u64, u64)> = (spans.iter())
            .map(|&(from, to)| (from.saturating_sub(PAD_MS), to + PAD_MS))
            .collect();
        let widths = widths(&spans);
        let mut x = LABELS;
        let windows = (spans.iter().zip(widths))
            .map(|(&(from, to), width)| {
                let window = Window { from, to, x, width };
                x += width + BREAK;
                window
            })
            .collect();
        Axis(windows)
    }

    /// Where `at` is drawn, if a window shows it.
    fn x(&self, at: u64) -> Option<f64> {
        (self.0.iter())
            .find(|w| w.from <= at && at <= w.to)
            .map(|w| w.x + (at - w.from) as f64 / (w.to - w.from) as f64 * w.width)
    }

    /// The window drawn at `x`, or the nearest.
    fn window_at(&self, x: f64) -> &Window {
        (self.0.iter())
            .rev()
            .find(|w| w.x <= x)
            .unwrap_or(&self.0[0])
    }

    /// The parts of `from..to` that windows show, as x ranges.
    fn clip(&self, from: u64, to: u64) -> Vec<(f64, f64)> {
        (self.0.iter())
            .filter(|w| from <= w.to && w.from <= to)
            .map(|w| {
                let start = self.x(from.max(w.from)).expect("inside the window");
                let end = self.x(to.min(w.to)).expect("inside the window");
                (start, end)
            })
            .collect()
    }
}

/// The widths of windows spanning `spans`: in proportion to their time, each at least
/// [`WINDOW_MIN`] (or an equal share, when the windows are too many), together filling the
/// chart.
fn widths(spans: &[(u64, u64)]) -> Vec<f64> {
    let available = WIDTH - LABELS - RIGHT - BREAK * (spans.len() - 1) as f64;
    let narrowest = WINDOW_MIN.min(available / spans.len() as f64);
    let time: Vec<f64> = spans.iter().map(|(from, to)| (to - from) as f64).collect();
    let mut narrow = vec![false; spans.len()];
    loop {
        let fixed = narrow.iter().filter(|&&n| n).count() as f64 * narrowest;
        let proportional: f64 = (time.iter().zip(&narrow))
            .filter(|(_, &n)| !n)
            .map(|(t, _)| t)
            .sum();
        let scale = (available - fixed) / proportional.max(1.0);
        let mut changed = false;
        for (t, n) in time.iter().zip(narrow.iter_mut()) {
            if !*n && t * scale < narrowest {
                *n = true;
                changed = true;
            }
        }
        if !changed || narrow.iter().all(|&n| n) {
            return (time.iter().zip(&narrow))
                .map(|(t, &n)| if n { narrowest } else { t * scale })
                .collect();
        }
    }
}

/// The chart's lanes: a node per lane, top to bottom.
struct Lanes(Vec<String>);

impl Lanes {
    /// `nodes` in their order, then any other node the cause names.
    fn new(nodes: &[String], cause: &Sequence) -> Lanes {
        let mut lanes = nodes.to_vec();
        let named = (cause.events.iter().map(|(_, node, _)| node))
            .chain(cause.messages.iter().flat_map(|m| [&m.from, &m.to]));
        for node in named {
            if !lanes.contains(node) {
                lanes.push(node.clone());
            }
        }
        Lanes(lanes)
    }

    fn y(&self, node: &str) -> f64 {
        let index = (self.0.iter())
            .position(|lane| lane == node)
            .expect("every node the cause names has a lane");
        TOP + LANE * (index as f64 + 0.5)
    }

    fn bottom(&self) -> f64 {
        TOP + LANE * self.0.len() as f64
    }
}

/// The message-sequence chart of `cause` (`number` keeps its SVG ids apart from other
/// charts' on one page); none for a cause without events (nothing happened to draw).
pub fn sequence_svg(
    cause: &Sequence,
    number: usize,
    nodes: &[String],
    timeline: &Timeline,
) -> Option<String> {
    if cause.events.is_empty() {
        return None;
    }
    let lanes = Lanes::new(nodes, cause);
    let axis = Axis::new(points(cause, timeline));
    let height = lanes.bottom() + AXIS;
    let mut svg = String::new();
    let w = &mut svg;
    out!(
        w,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" viewBox=\"0 0 {WIDTH} {height}\" font-family=\"sans-serif\" font-size=\"11\">"
    );
    out!(
        w,
        "<defs><marker id=\"arrow-{number}\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" orient=\"auto-start-reverse\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"#555\"/></marker></defs>"
    );
    draw_lanes(w, &lanes, &axis);
    draw_downtimes(w, &lanes, &axis, timeline);
    draw_failovers_and_faults(w, &lanes, &axis, timeline);
    let points = event_points(&lanes, &axis, cause);
    let mut taken = Taken(points.iter().map(|p| p.area()).collect());
    let mut arrows = arrows(cause.messages);
    // Arrows from one event to another are the story: they get their labels' places first.
    arrows.sort_by_key(|arrow| !arrow.joins_events(cause));
    for arrow in arrows {
        let story = arrow.joins_events(cause);
        draw_message(w, &lanes, &axis, &arrow, number, &mut taken, story);
    }
    for point in &points {
        point.draw(w);
    }
    draw_time_labels(w, &lanes, &axis, cause);
    out!(w, "</svg>");
    Some(svg)
}

/// The times the chart must show: the events, the messages' ends, and crashes shortly before
/// or among the events.
fn points(cause: &Sequence, timeline: &Timeline) -> Vec<u64> {
    let mut points: Vec<u64> = cause.events.iter().map(|(at, _, _)| *at).collect();
    for message in cause.messages {
        points.push(message.sent);
        points.extend(message.delivered);
    }
    if let (Some(&first), Some(&last)) = (points.iter().min(), points.iter().max()) {
        let crashes = (timeline.downtimes.iter())
            .map(|down| down.from)
            .filter(|&at| first.saturating_sub(CRASH_LOOKBACK_MS) <= at && at <= last);
        points.extend(crashes);
    }
    points
}

/// Lane labels, the lanes inside each window, and the breaks between windows with the time
/// each skips.
fn draw_lanes(w: &mut String, lanes: &Lanes, axis: &Axis) {
    for node in &lanes.0 {
        let y = lanes.y(node);
        out!(
            w,
            "<text x=\"8\" y=\"{}\" font-weight=\"bold\">{}</text>",
            y + 4.0,
            escape(node)
        );
        for window in &axis.0 {
            out!(
                w,
                "<line x1=\"{:.1}\" y1=\"{y}\" x2=\"{:.1}\" y2=\"{y}\" stroke=\"#bbb\"/>",
                window.x,
                window.x + window.width
            );
        }
    }
    for pair in axis.0.windows(2) {
        let x = pair[0].x + pair[0].width + BREAK / 2.0;
        out!(
            w,
            "<line x1=\"{x:.1}\" y1=\"{TOP}\" x2=\"{x:.1}\" y2=\"{}\" stroke=\"#999\" stroke-dasharray=\"2,4\"/>",
            lanes.bottom()
        );
        out!(
            w,
            "<text x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\" fill=\"#777\">+{} ms</text>",
            lanes.bottom() + 22.0,
            pair[1].from - pair[0].to
        );
    }
}

/// Each node down, as a band on its lane wherever a window shows it.
fn draw_downtimes(w: &mut String, lanes: &Lanes, axis: &Axis, timeline: &Timeline) {
    let end = axis.0.last().map_or(0, |window| window.to);
    for down in &timeline.downtimes {
        if !lanes.0.contains(&down.node) {
            continue;
        }
        let y = lanes.y(&down.node);
        for (from, to) in axis.clip(down.from, down.to.unwrap_or(end)) {
            let width = (to - from).max(2.0);
            out!(
                w,
                "<rect x=\"{from:.1}\" y=\"{}\" width=\"{width:.1}\" height=\"16\" fill=\"#3c3c3c\" fill-opacity=\"0.3\"><title>{} down from {} ms</title></rect>",
                y - 8.0,
                escape(&down.node),
                down.from
            );
            if width >= 36.0 {
                out!(
                    w,
                    "<text x=\"{:.1}\" y=\"{}\" fill=\"#333\">down</text>",
                    from + 4.0,
                    y + 4.0
                );
            }
        }
    }
}

/// Failovers as red dashed lines across the lanes, other faults as orange marks above them.
fn draw_failovers_and_faults(w: &mut String, lanes: &Lanes, axis: &Axis, timeline: &Timeline) {
    for failover in &timeline.recoveries {
        let Some(x) = axis.x(failover.failed_at) else {
            continue;
        };
        out!(
            w,
            "<line x1=\"{x:.1}\" y1=\"{}\" x2=\"{x:.1}\" y2=\"{}\" stroke=\"{RED}\" stroke-dasharray=\"5,3\"><title>failover at {} ms: {}</title></line>",
            TOP - 4.0,
            lanes.bottom(),
            failover.failed_at,
            escape(&failover.cause)
        );
        out!(
            w,
            "<text x=\"{:.1}\" y=\"{}\" fill=\"{RED}\">failover</text>",
            x + 3.0,
            TOP - 8.0
        );
    }
    for fault in &timeline.faults {
        let Some(x) = axis.x(fault.at) else {
            continue;
        };
        out!(
            w,
            "<path d=\"M{:.1},{} l5,8 l-10,0 z\" fill=\"{ORANGE}\"><title>{} ms: {}</title></path>",
            x,
            TOP - 14.0,
            fault.at,
            escape(&fault.label)
        );
    }
}

/// Messages with the same ends and times (a batch on one link), drawn as one arrow.
struct Arrow<'a> {
    messages: Vec<&'a MessageView>,
}

impl Arrow<'_> {
    fn first(&self) -> &MessageView {
        self.messages[0]
    }

    /// The last message's name (what the batch led to: writes, then the commit), shortened,
    /// with the count of the others.
    fn label(&self) -> String {
        let last = &self.messages[self.messages.len() - 1].what;
        let mut label: String = match last.chars().count() > LABEL_CHARS {
            true => last.chars().take(LABEL_CHARS - 1).chain(['…']).collect(),
            false => last.clone(),
        };
        if self.messages.len() > 1 {
            label += &format!(" (+{})", self.messages.len() - 1);
        }
        label
    }

    /// Whether the arrow leaves one of the cause's events and arrives at another.
    fn joins_events(&self, cause: &Sequence) -> bool {
        let m = self.first();
        let at_event =
            |at: u64, node: &str| (cause.events.iter()).any(|e| e.0 == at && e.1 == node);
        at_event(m.sent, &m.from) && m.delivered.is_some_and(|at| at_event(at, &m.to))
    }

    /// Every message, in full, with its ends and times.
    fn title(&self) -> String {
        let m = self.first();
        let names: Vec<&str> = self.messages.iter().map(|m| m.what.as_str()).collect();
        let taken = m
            .delivered
            .map_or("lost".to_string(), |at| format!("taken {at} ms"));
        format!(
            "{} → {}, sent {} ms, {taken}: {}",
            m.from,
            m.to,
            m.sent,
            names.join("; ")
        )
    }
}

/// The messages as arrows, in order of their first message.
fn arrows(messages: &[MessageView]) -> Vec<Arrow<'_>> {
    let mut arrows: Vec<Arrow> = Vec::new();
    for message in messages {
        let same = |arrow: &&mut Arrow| {
            let first = arrow.first();
            (&first.from, &first.to, first.sent, first.delivered)
                == (&message.from, &message.to, message.sent, message.delivered)
        };
        match arrows.iter_mut().find(same) {
            Some(arrow) => arrow.messages.push(message),
            None => arrows.push(Arrow {
                messages: vec![message],
            }),
        }
    }
    arrows
}

/// A box on the chart: left, top, right, bottom.
type Area = (f64, f64, f64, f64);

/// What the chart's labels and points already cover, so that a label finds a free place.
struct Taken(Vec<Area>);

impl Taken {
    /// The first of `places` (each a label's left and baseline) where a label of `chars`
    /// characters overlaps nothing drawn and stays between `left` and `right`; it is then taken.
    fn place(
        &mut self,
        places: &[(f64, f64)],
        chars: usize,
        (left, right): (f64, f64),
    ) -> Option<(f64, f64)> {
        let width = chars as f64 * LABEL_CHAR_PX;
        let free = places.iter().copied().find(|&(x, y)| {
            let area = (x, y - 9.0, x + width, y + 2.0);
            let inside = left <= x && x + width <= right;
            inside && self.0.iter().all(|other| !overlaps(area, *other))
        })?;
        self.0
            .push((free.0, free.1 - 9.0, free.0 + width, free.1 + 2.0));
        Some(free)
    }
}

/// The width (px) of a label's character, about, at its font size.
const LABEL_CHAR_PX: f64 = 5.6;

fn overlaps(a: Area, b: Area) -> bool {
    a.0 < b.2 && b.0 < a.2 && a.1 < b.3 && b.1 < a.3
}

/// An arrow from its sender's lane to its receiver's, labelled where the label
/// has room (`story`: it joins two of the cause's events) (the tooltip always names it); a lost one ends short of the receiver with a cross.
fn draw_message(
    w: &mut String,
    lanes: &Lanes,
    axis: &Axis,
    arrow: &Arrow,
    number: usize,
    taken: &mut Taken,
    story: bool,
) {
    let message = arrow.first();
    let (Some(x1), y1) = (axis.x(message.sent), lanes.y(&message.from)) else {
        return;
    };
    let y_to = lanes.y(&message.to);
    let (x2, y2, lost) = match message.delivered.and_then(|at| axis.x(at)) {
        Some(x2) => (x2, y_to, false),
        None => (x1 + LOST_PX, (y1 + y_to) / 2.0, true),
    };
    let title = arrow.title();
    out!(
        w,
        "<line x1=\"{x1:.1}\" y1=\"{y1}\" x2=\"{x2:.1}\" y2=\"{y2}\" stroke=\"#555\" marker-end=\"url(#arrow-{number})\"><title>{}</title></line>",
        escape(&title)
    );
    if lost {
        out!(
            w,
            "<text x=\"{x2:.1}\" y=\"{}\" fill=\"{RED}\" font-size=\"14\" text-anchor=\"middle\">✕</text>",
            y2 + 5.0
        );
    }
    let label = arrow.label();
    // Along the arrow, from its middle outwards, just right of the line, else just left.
    let chars = label.chars().count();
    let width = chars as f64 * LABEL_CHAR_PX;
    let along = [0.5, 0.35, 0.65, 0.2, 0.8].map(|f| (x1 + (x2 - x1) * f, y1 + (y2 - y1) * f - 2.0));
    let right = along.iter().map(|&(x, y)| (x + 4.0, y));
    let left = along.iter().map(|&(x, y)| (x - 4.0 - width, y));
    let places: Vec<(f64, f64)> = right.chain(left).collect();
    // In the windows the arrow spans, so that no label sits at another time; a label of the
    // story may reach past them rather than be left out.
    let bounds = match story {
        true => (LABELS, WIDTH),
        false => (axis.window_at(x1.min(x2)).x, {
            let last = axis.window_at(x1.max(x2));
            last.x + last.width + BREAK / 2.0
        }),
    };
    let Some((x, y)) = taken.place(&places, chars, bounds) else {
        return;
    };
    out!(
        w,
        "<text x=\"{x:.1}\" y=\"{y:.1}\" fill=\"#444\" font-size=\"10\" paint-order=\"stroke\" stroke=\"#fff\" stroke-width=\"3\">{}<title>{}</title></text>",
        escape(&label),
        escape(&title)
    );
}

/// A witness event as the chart draws it: a numbered point (numbered as in the report's
/// table) on its node's lane.
struct EventPoint {
    x: f64,
    y: f64,
    number: usize,
    title: String,
}

impl EventPoint {
    fn area(&self) -> Area {
        (self.x - 9.0, self.y - 9.0, self.x + 9.0, self.y + 9.0)
    }

    fn draw(&self, w: &mut String) {
        let (x, y) = (self.x, self.y);
        out!(
            w,
            "<g><title>{}</title><circle cx=\"{x:.1}\" cy=\"{y}\" r=\"8\" fill=\"{BLUE}\"/><text x=\"{x:.1}\" y=\"{}\" fill=\"#fff\" font-size=\"10\" font-weight=\"bold\" text-anchor=\"middle\">{}</text></g>",
            escape(&self.title),
            y + 3.5,
            self.number
        );
    }
}

/// The witness's events as points; events of one node at one time side by side.
fn event_points(lanes: &Lanes, axis: &Axis, cause: &Sequence) -> Vec<EventPoint> {
    let mut points: Vec<EventPoint> = Vec::new();
    let mut drawn: Vec<(u64, &str)> = Vec::new();
    for (index, (at, node, what)) in cause.events.iter().enumerate() {
        let Some(x) = axis.x(*at) else {
            continue;
        };
        let beside = drawn.iter().filter(|d| **d == (*at, node.as_str())).count();
        drawn.push((*at, node));
        points.push(EventPoint {
            x: x + 16.0 * beside as f64,
            y: lanes.y(node),
            number: index + 1,
            title: format!("{} · {at} ms · {node}: {what}", index + 1),
        });
    }
    points
}

/// Time labels under the lanes: each window's start and end and each event's time, where
/// they do not crowd each other.
fn draw_time_labels(w: &mut String, lanes: &Lanes, axis: &Axis, cause: &Sequence) {
    let mut times: Vec<u64> = cause.events.iter().map(|(at, _, _)| *at).collect();
    for window in &axis.0 {
        times.extend([window.from, window.to]);
    }
    times.sort_unstable();
    times.dedup();
    let y = lanes.bottom() + 10.0;
    let mut last_right = f64::MIN;
    for at in times {
        let x = axis.x(at).expect("every time labelled is shown");
        let label = format!("{at} ms");
        let width = label.len() as f64 * TIME_CHAR_PX;
        // A label at the chart's right edge ends there rather than past it.
        let (anchor, left) = match x + width / 2.0 > WIDTH {
            true => ("end", x - width),
            false => ("middle", x - width / 2.0),
        };
        if left < last_right + 6.0 {
            continue; // It would crowd the label before it.
        }
        last_right = left + width;
        out!(
            w,
            "<line x1=\"{x:.1}\" y1=\"{}\" x2=\"{x:.1}\" y2=\"{}\" stroke=\"#999\"/>",
            lanes.bottom() - 2.0,
            lanes.bottom() + 2.0
        );
        out!(
            w,
            "<text x=\"{x:.1}\" y=\"{}\" text-anchor=\"{anchor}\" fill=\"#555\">{label}</text>",
            y + 2.0
        );
    }
}

/// The width (px) of a time label's character, about.
const TIME_CHAR_PX: f64 = 6.2;

#[cfg(test)]
mod tests {
    use super::*;
    use snapsim_sim::analysis::{Downtime, Recovery};

    fn message(from: &str, to: &str, sent: u64, delivered: Option<u64>, what: &str) -> MessageView {
        MessageView {
            from: from.into(),
            to: to.into(),
            sent,
            delivered,
            what: what.into(),
        }
    }

    fn events(events: &[(u64, &str)]) -> Vec<(u64, String, String)> {
        (events.iter())
            .map(|&(at, node)| (at, node.to_string(), format!("event at {at}")))
            .collect()
    }

    /// Why: the axis shows only the windows that matter, in time order, and fills the chart:
    /// close points share a window, time between far ones is skipped.
    #[test]
    fn close_points_share_a_window_and_far_ones_are_apart() {
        let axis = Axis::new(vec![505, 10, 15, 500]);
        assert_eq!(axis.0.len(), 2);
        assert_eq!((axis.0[0].from, axis.0[0].to), (7, 18));
        assert_eq!((axis.0[1].from, axis.0[1].to), (497, 508));
        assert!(axis.x(10) < axis.x(15) && axis.x(15) < axis.x(500));
        assert_eq!(axis.x(200), None, "skipped");
        let last = &axis.0[1];
        assert!((last.x + last.width - (WIDTH - RIGHT)).abs() < 0.01);
    }

    /// Why: a witness spread over a long run must still fit the chart's width.
    #[test]
    fn too_many_windows_merge_the_closest_and_fit() {
        let axis = Axis::new((0..12).map(|i| i * 1_000 + (i % 3) * 300).collect());
        assert_eq!(axis.0.len(), WINDOWS_MAX);
        let last = &axis.0[WINDOWS_MAX - 1];
        assert!(last.x + last.width <= WIDTH - RIGHT + 0.01);
        assert!(axis.0.iter().all(|w| w.width > 0.0));
    }

    /// Why: a batch on one link is one arrow, named by what it led to; the others are counted.
    #[test]
    fn a_batch_on_one_link_is_one_arrow() {
        let messages = vec![
            message(
                "tm-0",
                "sink-system",
                5,
                Some(7),
                "write 3 records to txn a",
            ),
            message("tm-0", "jm", 5, Some(6), "ack chk-1 (task-1)"),
            message("tm-0", "sink-system", 5, Some(7), "commit txn a"),
        ];
        let arrows = arrows(&messages);
        assert_eq!(arrows.len(), 2);
        assert_eq!(arrows[0].label(), "commit txn a (+1)");
        assert!(arrows[0]
            .title()
            .contains("write 3 records to txn a; commit txn a"));
        assert_eq!(arrows[1].label(), "ack chk-1 (task-1)");
    }

    /// Why: a label that would cover another is moved, or left to the tooltip.
    #[test]
    fn labels_do_not_overlap() {
        let mut taken = Taken(vec![(100.0, 90.0, 120.0, 110.0)]);
        let bounds = (LABELS, WIDTH);
        assert_eq!(
            taken.place(&[(105.0, 100.0)], 4, bounds),
            None,
            "on a point"
        );
        assert_eq!(
            taken.place(&[(200.0, 100.0)], 4, bounds),
            Some((200.0, 100.0))
        );
        let places = [(200.0, 100.0), (300.0, 100.0)];
        assert_eq!(taken.place(&places, 4, bounds), Some((300.0, 100.0)));
        assert_eq!(
            taken.place(&[(1_090.0, 50.0)], 4, bounds),
            None,
            "off the chart"
        );
    }

    /// Why: the chart draws what the cause names: a point per event, an arrow per message (a
    /// cross for a lost one), the node down as a band and the failover as a line.
    #[test]
    fn the_chart_draws_events_messages_downtimes_and_failovers() {
        let events = events(&[(10, "tm-0"), (14, "sink-system"), (40, "jm")]);
        let messages = [
            message("tm-0", "sink-system", 10, Some(14), "commit txn a"),
            message("jm", "tm-1", 40, None, "abort chk-2"),
        ];
        let cause = Sequence {
            events: &events,
            messages: &messages,
        };
        let timeline = Timeline {
            end: 100,
            downtimes: vec![Downtime {
                node: "tm-1".into(),
                from: 30,
                to: Some(90),
            }],
            recoveries: vec![Recovery {
                failed_at: 40,
                cause: "tm-1 lost".into(),
                restored: None,
                running_at: None,
            }],
            ..Timeline::default()
        };
        let nodes: Vec<String> = ["jm", "tm-0", "tm-1", "storage", "sink-system"]
            .map(String::from)
            .to_vec();
        let no_events = Sequence {
            events: &[],
            messages: &messages,
        };
        assert_eq!(sequence_svg(&no_events, 1, &nodes, &timeline), None);
        let svg = sequence_svg(&cause, 1, &nodes, &timeline).expect("events to draw");
        assert_eq!(svg.matches("<circle").count(), 3);
        assert_eq!(svg.matches("marker-end=\"url(#arrow-1)\"").count(), 2);
        assert_eq!(svg.matches('✕').count(), 1, "the lost abort notice");
        assert!(svg.contains(">commit txn a<"), "the commit is labelled");
        assert!(
            svg.contains("tm-1 down from 30 ms"),
            "the crash is within reach"
        );
        assert!(svg.contains(">failover<"));
        for node in &nodes {
            assert!(
                svg.contains(&format!(">{node}</text>")),
                "a lane for {node}"
            );
        }
    }
}
