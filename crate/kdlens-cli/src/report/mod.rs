//! Reports: CSV and Markdown tables, PNG plots and images.

mod plots;
mod tables;

pub use plots::{plot_confusion, plot_history, write_png};
pub use tables::{history_csv, markdown_table};
