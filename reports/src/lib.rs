//! snapsim-reports: turns results into reports people read.
//!
//! The one design decision to know: rendering is a pure function from result data to text,
//! with no simulation logic, so reports can be snapshot-tested and re-rendered from files.
//! A run report ([`run::RunReport`]) is read off the run's trace ([`snapsim_sim::analysis::Timeline`]); a
//! sweep report ([`sweep`]) from the sweep's results. Both come as Markdown and as one
//! self-contained HTML page with SVG charts drawn by plotters ([`charts`]); a failing run's causes
//! each get a message-sequence chart laid out by hand ([`sequence`]).

pub mod campaign;
pub mod charts;
mod format;
pub mod run;
pub mod sequence;
pub mod sweep;

pub use format::{escape, markdown_table, markdown_text_table, percentile};
pub(crate) use format::{html_table, or_dash, out, STYLE};
