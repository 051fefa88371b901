//! Reports: CSV and Markdown tables, PNG plots and images.

mod plots;
mod tables;

pub use plots::{Panel, plot_confusion, plot_history, plot_lines, write_png};
pub use tables::{history_csv, markdown_table};
