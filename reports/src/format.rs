//! What every report shares: the page style, tables in Markdown and HTML, escaping, and the
//! percentiles the tables show.

/// The style sheet of the HTML reports.
pub(crate) const STYLE: &str = "body{font-family:sans-serif;margin:2em;max-width:1150px;color:#222}\
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}\
th{background:#f4f4f4}table.facts td,table.facts th,table.events td,table.events th{text-align:left}\
.verdict{font-size:1.3em;font-weight:bold}.passed{color:#2e7d32}.failed{color:#c62828}\
.violation{background:#fdecea;padding:.5em;border-left:4px solid #c62828}\
pre{background:#f6f8fa;padding:.5em;overflow-x:auto;font-size:12px}.chart svg{max-width:100%;height:auto}\
.legend{font-size:12px;color:#555;margin-top:0}";

/// Appends one formatted line to a String.
macro_rules! out {
    ($text:expr) => {
        $text.push('\n')
    };
    ($text:expr, $($arg:tt)*) => {{
        use std::fmt::Write as _;
        writeln!($text, $($arg)*).expect("writing to a String")
    }};
}
pub(crate) use out;

/// A Markdown table; the first column left-aligned, the others right (they hold figures).
pub fn markdown_table(headers: &[&str], rows: &[Vec<String>]) -> String {
    table_with_rule(headers, rows, "---:|")
}

/// A Markdown table of words (events, experiments): every column left-aligned.
pub fn markdown_text_table(headers: &[&str], rows: &[Vec<String>]) -> String {
    table_with_rule(headers, rows, "---|")
}

/// A Markdown table whose columns after the first are aligned by `rule`.
fn table_with_rule(headers: &[&str], rows: &[Vec<String>], rule: &str) -> String {
    let mut text = format!(
        "| {} |\n|---|{}\n",
        headers.join(" | "),
        rule.repeat(headers.len() - 1)
    );
    for row in rows {
        let cells: Vec<String> = row.iter().map(|cell| cell.replace('|', "/")).collect();
        out!(text, "| {} |", cells.join(" | "));
    }
    text
}

/// An HTML table, every cell escaped.
pub(crate) fn html_table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let cells = |tag: &str, row: &mut dyn Iterator<Item = &str>| -> String {
        row.map(|cell| format!("<{tag}>{}</{tag}>", escape(cell)))
            .collect()
    };
    let mut html = format!(
        "<table><tr>{}</tr>",
        cells("th", &mut headers.iter().copied())
    );
    for row in rows {
        out!(
            html,
            "<tr>{}</tr>",
            cells("td", &mut row.iter().map(String::as_str))
        );
    }
    html + "</table>"
}

/// A number, or a dash for none.
pub(crate) fn or_dash(value: Option<u64>) -> String {
    value.map_or("–".to_string(), |v| v.to_string())
}

/// Text made safe inside HTML elements and attributes.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The `p`th percentile (nearest rank) of `values`, sorting them; `None` when empty.
pub fn percentile(values: &mut [u64], p: u64) -> Option<u64> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable();
    let rank = (p * values.len() as u64).div_ceil(100).max(1);
    Some(values[rank as usize - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let mut values = vec![5, 1, 4, 2, 3];
        assert_eq!(percentile(&mut values, 50), Some(3));
        assert_eq!(percentile(&mut values, 90), Some(5));
        assert_eq!(percentile(&mut values, 1), Some(1));
        assert_eq!(percentile(&mut [], 50), None);
    }

    #[test]
    fn escaping_keeps_markup_out() {
        assert_eq!(
            escape("<a href=\"x\">&</a>"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&lt;/a&gt;"
        );
    }
}
